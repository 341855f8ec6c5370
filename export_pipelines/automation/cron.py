"""Spec schedules as cron strings, and how far apart their ticks can fall.

Pure functions: the schedule module hands the cron to Dagster, the spec checks use the
tick gaps to hold a scheduled run's windows within max_window_days.
"""

from __future__ import annotations

import datetime as dt

from export_pipelines.spec.export import (
    WEEKDAYS,
    DailySchedule,
    EverySchedule,
    MonthlySchedule,
    OnDateSchedule,
    WeeklySchedule,
)

SpecSchedule = DailySchedule | WeeklySchedule | MonthlySchedule | EverySchedule | OnDateSchedule
# Four years hold every month length, a leap day and every weekday pattern.
_CALENDAR_CYCLE_START = dt.date(2024, 1, 1)
_CALENDAR_CYCLE_DAYS = 4 * 366


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


def longest_tick_gap(schedule: SpecSchedule) -> dt.timedelta | None:
    """The longest time between two consecutive ticks (wall clock); None for a one-off."""
    match schedule:
        case EverySchedule(every=every):
            return every
        case OnDateSchedule():
            return None
    dates = [day for day in _cycle_days() if _fires_on(schedule, day)]
    gaps = [later - earlier for earlier, later in zip(dates, dates[1:], strict=False)]
    return max(gaps)


def _cycle_days() -> list[dt.date]:
    return [_CALENDAR_CYCLE_START + dt.timedelta(days=offset) for offset in range(_CALENDAR_CYCLE_DAYS)]


def _fires_on(schedule: DailySchedule | WeeklySchedule | MonthlySchedule, day: dt.date) -> bool:
    match schedule:
        case DailySchedule():
            return True
        case WeeklySchedule(days=days):
            return WEEKDAYS[day.weekday()] in days
        case MonthlySchedule(days=days):
            last = (day + dt.timedelta(days=1)).month != day.month
            return day.day in days or (last and "last" in days)
    return False


def minutes(duration: dt.timedelta) -> str:
    """A duration as the spec writes it: 30m."""
    return f"{int(duration.total_seconds() // 60)}m"
