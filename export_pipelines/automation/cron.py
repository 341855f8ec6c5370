"""Spec schedules as cron strings, which the schedule module hands to Dagster.

How far apart ticks can fall is a load-time check and lives with the spec (spec/timing.py).
"""

from __future__ import annotations

from export_pipelines.spec.export import (
    WEEKDAYS,
    DailySchedule,
    EverySchedule,
    MonthlySchedule,
    OnDateSchedule,
    WeeklySchedule,
)
from export_pipelines.spec.timing import SpecSchedule

def cron_string(schedule: SpecSchedule) -> str:
    match schedule:
        case DailySchedule(at=at):
            return f"{at.minute} {at.hour} * * *"
        case WeeklySchedule(days=days, at=at):
            # cron counts weekdays from Sunday = 0.
            numbers = sorted({(WEEKDAYS.index(day) + 1) % 7 for day in days})
            return f"{at.minute} {at.hour} * * {','.join(map(str, numbers))}"
        case MonthlySchedule(days=days, at=at):
            numbers = sorted({day for day in days if day != "last"})
            fields = [*map(str, numbers), *(["L"] if "last" in days else [])]
            return f"{at.minute} {at.hour} {','.join(fields)} * *"
        case EverySchedule(every=every):
            minutes = int(every.total_seconds() // 60)
            if minutes < 60:
                return f"*/{minutes} * * * *"
            hours = minutes // 60
            return "0 * * * *" if hours == 1 else "0 0 * * *" if hours == 24 else f"0 */{hours} * * *"
        case OnDateSchedule(on=on):
            return f"{on.minute} {on.hour} {on.day} {on.month} *"
    raise TypeError(f"not a schedule: {schedule!r}")
