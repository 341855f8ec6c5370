"""Load-time checks of an export's time keys: incremental window, schedule, after, max_window_days.

A schedule that cannot fire, or whose run would cover more than max_window_days, is
reported when the config loads, not at 3 a.m. when the tick comes.
"""

from __future__ import annotations

import datetime as dt
import functools

from export_pipelines.catalog.models import ModelDef
from export_pipelines.spec.export import (
    WEEKDAYS,
    DailySchedule,
    EverySchedule,
    ExportSpec,
    MonthlySchedule,
    OnDateSchedule,
    WeeklySchedule,
)

SpecSchedule = DailySchedule | WeeklySchedule | MonthlySchedule | EverySchedule | OnDateSchedule

GRAIN_LENGTH = {"daily": dt.timedelta(days=1), "hourly": dt.timedelta(hours=1)}
# Four years hold every month length, a leap day and every weekday pattern.
_CALENDAR_CYCLE_START = dt.date(2024, 1, 1)
_CALENDAR_CYCLE_DAYS = 4 * 366


def window_field_name(spec: ExportSpec, model: ModelDef) -> str | None:
    """The model field an incremental export windows on: its event_date or updated_at field."""
    if spec.incremental is None:
        return None
    return model.event_date if spec.incremental.by == "event_date" else model.updated_at


def timing_problems(spec: ExportSpec, model_name: str | None, model: ModelDef | None) -> list[tuple[str, str]]:
    """(key path, message) for every time key that cannot work as written; without a model, those that need none."""
    problems: list[tuple[str, str]] = []
    incremental, schedule = spec.incremental, spec.schedule
    if incremental is not None and model is not None:
        field_name = window_field_name(spec, model)
        if field_name is None:
            problems.append(
                ("incremental.by", f"model {model_name} names no {incremental.by} field; set one in models.yaml")
            )
        elif model.fields[field_name].type != "timestamp":
            problems.append(("incremental.by", f"{incremental.by} of {model_name} is {field_name}, not a timestamp field"))
    if spec.after is not None and schedule is not None:
        problems.append(
            ("after", f"export {spec.name} runs when {spec.after.export} has run; remove either `after` or `schedule`")
        )
    if schedule is None:
        return problems

    if isinstance(schedule, OnDateSchedule):
        # A past on-date is no error: a one-off that has fired stays loaded and never fires again.
        if incremental is not None:
            # A one-off incremental run exports every complete window from `start` until the on-date.
            start = dt.datetime.combine(incremental.start, dt.time())
            span = schedule.on.replace(tzinfo=None) - start
            if span < GRAIN_LENGTH[incremental.grain]:
                problems.append(
                    ("schedule.on", f"{schedule.on:%Y-%m-%dT%H:%M} is before the end of the first {incremental.grain} "
                     f"window (incremental.start {incremental.start}), so the one run would have no complete window "
                     "to export; give a later date or an earlier start")
                )
            elif span > dt.timedelta(days=spec.max_window_days):
                problems.append(
                    ("schedule.on", f"the one run would export {span.days} days ({incremental.start} until {schedule.on:%Y-%m-%d}), "
                     f"more than max_window_days {spec.max_window_days}; move incremental.start later")
                )
        return problems

    if isinstance(schedule, EverySchedule) and incremental is not None:
        grain = GRAIN_LENGTH[incremental.grain]
        if schedule.every < grain:
            problems.append(
                ("schedule.every", f"every {minutes(schedule.every)} is shorter than the {incremental.grain} windows of this "
                 "incremental export, so most ticks would find no complete window; schedule it at least once per window")
            )
    gap = longest_tick_gap(schedule)
    if incremental is not None and gap is not None and gap > dt.timedelta(days=spec.max_window_days):
        problems.append(
            ("schedule", f"ticks of this schedule can be {gap.days} days apart, so one run would cover more than "
             f"max_window_days {spec.max_window_days}")
        )
    return problems


def longest_tick_gap(schedule: SpecSchedule) -> dt.timedelta | None:
    """The longest time between two consecutive ticks (wall clock); None for a one-off."""
    match schedule:
        case EverySchedule(every=every):
            return every
        case OnDateSchedule():
            return None
        case DailySchedule():
            return _longest_gap("daily", ())
        case WeeklySchedule(days=days) | MonthlySchedule(days=days):
            return _longest_gap(schedule.repeated, tuple(sorted(set(days), key=str)))


@functools.cache
def _longest_gap(repeated: str, days: tuple[str | int, ...]) -> dt.timedelta:
    # The same few day sets recur across hundreds of specs: walking the four-year cycle once each is enough.
    dates = [day for day in _cycle_days() if _fires_on(repeated, days, day)]
    return max(later - earlier for earlier, later in zip(dates, dates[1:], strict=False))


def _cycle_days() -> list[dt.date]:
    return [_CALENDAR_CYCLE_START + dt.timedelta(days=offset) for offset in range(_CALENDAR_CYCLE_DAYS)]


def _fires_on(repeated: str, days: tuple[str | int, ...], day: dt.date) -> bool:
    """Whether a daily, weekly (`days` of the week) or monthly (`days` of the month, `last`) schedule fires on `day`."""
    match repeated:
        case "daily":
            return True
        case "weekly":
            return WEEKDAYS[day.weekday()] in days
        case "monthly":
            last = (day + dt.timedelta(days=1)).month != day.month
            return day.day in days or (last and "last" in days)
    return False


def minutes(duration: dt.timedelta) -> str:
    """A duration as the spec writes it: 30m."""
    return f"{int(duration.total_seconds() // 60)}m"
