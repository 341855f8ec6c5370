"""A schedule per export with a `schedule` key: repeated (daily, weekly, monthly, every) or on-date.

For an incremental export a tick requests ONE run over every window completed since the
previous tick, so a weekly run delivers one file set for the last 7 days and a monthly
run one for the previous month; the run key names the range, so a tick evaluated twice
launches one run.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import dagster as dg
from dagster._utils.schedules import reverse_cron_string_iterator, schedule_execution_time_iterator

from export_pipelines.automation.cron import cron_string
from export_pipelines.automation.windows import partitions_for, range_tags, windows_between
from export_pipelines.naming import TRIGGER_TAG, schedule_name_for, window_tag
from export_pipelines.spec.export import OnDateSchedule
from export_pipelines.spec.plan import ExportPlan


def build_export_schedule(
    plan: ExportPlan, job: dg.UnresolvedAssetJobDefinition, now: dt.datetime | None = None
) -> dg.ScheduleDefinition:
    """An on-date schedule whose date has passed stays visible, stopped, and skips every tick."""
    schedule = plan.spec.schedule
    assert schedule is not None, "only exports with a schedule get one"
    cron = cron_string(schedule)
    now = now or dt.datetime.now(dt.UTC)
    running = schedule.active and not (isinstance(schedule, OnDateSchedule) and on_date_fire_time(schedule) <= now)

    def export_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        return request_for_tick(plan, cron, tick)

    # A plain ScheduleDefinition: the @schedule decorator costs four times as much per export.
    return dg.ScheduleDefinition(
        name=schedule_name_for(plan.name),
        cron_schedule=cron,
        execution_timezone=schedule.timezone,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
        description=describe_schedule(plan, now),
        execution_fn=export_schedule,
    )


def request_for_tick(plan: ExportPlan, cron: str, tick: dt.datetime) -> dg.RunRequest | dg.SkipReason:
    schedule = plan.spec.schedule
    previous: dt.datetime | None
    if isinstance(schedule, OnDateSchedule):
        if tick.timestamp() != on_date_fire_time(schedule).timestamp():
            # The cron names a day of a month, so it comes back every year: only the on-date's own tick counts.
            local_tick = tick.astimezone(zoneinfo.ZoneInfo(schedule.timezone))
            return dg.SkipReason(
                f"exports/{plan.name} runs once, on {schedule.on:%Y-%m-%dT%H:%M} {schedule.timezone}; "
                f"this tick ({local_tick:%Y-%m-%dT%H:%M}) is not that date"
            )
        previous = None
    else:
        previous = previous_tick(cron, schedule.timezone, tick)

    partitions = partitions_for(plan.spec.incremental)
    if partitions is None:
        return dg.RunRequest(run_key=f"{plan.name}@{tick.astimezone(dt.UTC):%Y-%m-%dT%H:%MZ}", tags={TRIGGER_TAG: "schedule"})
    key_range = windows_between(partitions, previous, tick)
    if key_range is None:
        since = f"since {previous.isoformat()}" if previous else f"since {plan.spec.incremental.start}"
        return dg.SkipReason(f"no window of exports/{plan.name} was completed {since} (until {tick.isoformat()})")
    tags = {**range_tags(key_range), **window_tag(plan.name, key_range.start, key_range.end), TRIGGER_TAG: "schedule"}
    return dg.RunRequest(run_key=f"{plan.name}:{key_range.start}...{key_range.end}", tags=tags)


def on_date_fire_time(schedule: OnDateSchedule) -> dt.datetime:
    """The instant the on-date's tick comes, as Dagster's scheduler computes it.

    Not simply the local time made aware: a time in the DST gap (02:30 on the spring night)
    ticks when the clocks jump (03:00), and one that occurs twice ticks once; the cron
    names the day, so its first tick after the day before is the on-date's.
    """
    day_before = (schedule.on - dt.timedelta(days=1)).replace(tzinfo=zoneinfo.ZoneInfo(schedule.timezone))
    return next(schedule_execution_time_iterator(day_before.timestamp(), cron_string(schedule), schedule.timezone))


def previous_tick(cron: str, timezone: str, tick: dt.datetime) -> dt.datetime:
    """The scheduled tick before `tick`, in the schedule's own timezone (DST-shifted ticks included)."""
    return next(earlier for earlier in reverse_cron_string_iterator(tick.timestamp(), cron, timezone) if earlier < tick)


def describe_schedule(plan: ExportPlan, now: dt.datetime | None = None) -> str:
    spec = plan.spec
    schedule = spec.schedule
    if schedule is None:
        return f"after exports/{spec.after.export}" if spec.after else "none (run on demand)"
    if isinstance(schedule, OnDateSchedule):
        fires = on_date_fire_time(schedule).astimezone(zoneinfo.ZoneInfo(schedule.timezone))
        on_text = f"{schedule.on:%Y-%m-%dT%H:%M} {schedule.timezone}"
        if fires.replace(tzinfo=None) != schedule.on:
            on_text += f" (that local time does not exist then; the tick comes at {fires:%H:%M})"
        # Dagster's schedule list shows the cron, which has no year, with this description as its
        # tooltip: it says that the day's yearly return does not run the export.
        if fires <= (now or dt.datetime.now(dt.UTC)):
            fired = "fired once" if schedule.active else "was due once (inactive)"
            return f"{fired} on {on_text}, will not run again (the cron repeats yearly; every tick skips)"
        when = f"once on {on_text} (the cron repeats yearly; other years' ticks skip)"
    else:
        when = f"{schedule.repeated} ({cron_string(schedule)} {schedule.timezone})"
    covers = "every window completed since the previous tick" if spec.incremental else "a snapshot"
    status = "" if schedule.active else ", inactive"
    return f"{when}{status}: {covers}"
