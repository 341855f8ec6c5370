"""Load-time checks of an export's time keys: incremental window, schedule, after, max_window_days.

A schedule that cannot fire, or whose run would cover more than max_window_days, is
reported when the config loads, not at 3 a.m. when the tick comes.
"""

from __future__ import annotations

import datetime as dt

from export_pipelines.automation.cron import longest_tick_gap, minutes
from export_pipelines.catalog.models import ModelDef
from export_pipelines.spec.export import EverySchedule, ExportSpec, OnDateSchedule

GRAIN_LENGTH = {"daily": dt.timedelta(days=1), "hourly": dt.timedelta(hours=1)}


def window_field_name(spec: ExportSpec, model: ModelDef) -> str | None:
    """The model field an incremental export windows on: its event_date or updated_at field."""
    if spec.incremental is None:
        return None
    return model.event_date if spec.incremental.by == "event_date" else model.updated_at


def timing_problems(spec: ExportSpec, model_name: str, model: ModelDef) -> list[tuple[str, str]]:
    """(key path, message) for every time key that cannot work as written."""
    problems: list[tuple[str, str]] = []
    incremental, schedule = spec.incremental, spec.schedule
    if incremental is not None:
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

