"""Schedule ticks evaluated at chosen instants: month ends, leap day, DST nights, on-dates."""

from __future__ import annotations

import datetime as dt
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._utils.schedules import schedule_execution_time_iterator

from export_pipelines.definitions import build_definitions
from export_pipelines.naming import export_job_name, schedule_name_for
from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import write_config

BUDAPEST = ZoneInfo("Europe/Budapest")
DAILY_BUDAPEST = {"by": "updated_at", "grain": "daily", "start": "2024-01-01", "timezone": "Europe/Budapest"}


def schedule_for(tmp_path: Path, schedule: dict, incremental: dict | None = None) -> dg.ScheduleDefinition:
    spec = {"name": "probe", "model": "customers", "fields": ["id"], "schedule": schedule}
    if incremental:
        spec["incremental"] = incremental
    config = load_config(write_config(tmp_path, [spec]))
    assert not config.problems, [str(p) for p in config.problems]
    return build_definitions(config).get_schedule_def(schedule_name_for("probe"))


def tick(schedule: dg.ScheduleDefinition, at: dt.datetime):
    return schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=at))


def requested_range(schedule: dg.ScheduleDefinition, at: dt.datetime) -> tuple[str, str]:
    [request] = tick(schedule, at).run_requests
    return request.tags[ASSET_PARTITION_RANGE_START_TAG], request.tags[ASSET_PARTITION_RANGE_END_TAG]


def ticks(schedule: dg.ScheduleDefinition, after: dt.datetime, count: int) -> list[dt.datetime]:
    times = schedule_execution_time_iterator(after.timestamp(), schedule.cron_schedule, schedule.execution_timezone)
    return list(islice(times, count))


def at_budapest(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=BUDAPEST)


def test_monthly_last_fires_on_the_last_day_of_every_month_leap_years_included(tmp_path):
    schedule = schedule_for(tmp_path, {"repeated": "monthly", "days": ["last"], "at": "02:00", "timezone": "Europe/Budapest"})
    assert schedule.cron_schedule == "0 2 L * *"
    days_2026 = [moment.date().isoformat() for moment in ticks(schedule, at_budapest(2026, 1, 1), 4)]
    assert days_2026 == ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]
    assert [moment.date().isoformat() for moment in ticks(schedule, at_budapest(2028, 2, 1), 1)] == ["2028-02-29"]
    assert all(moment.hour == 2 and moment.tzinfo.key == "Europe/Budapest" for moment in ticks(schedule, at_budapest(2026, 1, 1), 12))


@pytest.mark.parametrize(
    ("tick_day", "expected"),
    [
        # Each run holds the complete days since the previous run: never the day of the tick.
        ((2026, 1, 31), ("2025-12-31", "2026-01-30")),
        ((2026, 2, 28), ("2026-01-31", "2026-02-27")),
        ((2026, 4, 30), ("2026-03-31", "2026-04-29")),
        ((2028, 2, 29), ("2028-01-31", "2028-02-28")),
    ],
)
def test_monthly_last_tick_requests_one_run_over_the_days_since_the_previous_tick(tmp_path, tick_day, expected):
    schedule = schedule_for(
        tmp_path, {"repeated": "monthly", "days": ["last"], "at": "02:00", "timezone": "Europe/Budapest"}, DAILY_BUDAPEST
    )
    assert requested_range(schedule, at_budapest(*tick_day, 2, 0)) == expected


@pytest.mark.parametrize(
    ("tick_day", "expected"),
    [((2026, 3, 1), ("2026-02-01", "2026-02-28")), ((2028, 3, 1), ("2028-02-01", "2028-02-29")), ((2026, 1, 1), ("2025-12-01", "2025-12-31"))],
)
def test_monthly_on_the_first_exports_the_previous_month(tmp_path, tick_day, expected):
    schedule = schedule_for(tmp_path, {"repeated": "monthly", "days": [1], "at": "02:00", "timezone": "Europe/Budapest"}, DAILY_BUDAPEST)
    assert requested_range(schedule, at_budapest(*tick_day, 2, 0)) == expected


def test_monthly_days_mixing_numbers_and_last_fire_on_each(tmp_path):
    schedule = schedule_for(tmp_path, {"repeated": "monthly", "days": ["last", 15], "at": "06:00", "timezone": "Europe/Budapest"}, DAILY_BUDAPEST)
    days = [moment.date().isoformat() for moment in ticks(schedule, at_budapest(2028, 2, 1), 4)]
    assert days == ["2028-02-15", "2028-02-29", "2028-03-15", "2028-03-31"]
    assert requested_range(schedule, at_budapest(2028, 2, 29, 6, 0)) == ("2028-02-15", "2028-02-28")


def test_weekly_ticks_split_the_week_between_the_chosen_days_across_the_spring_dst_switch(tmp_path):
    schedule = schedule_for(
        tmp_path, {"repeated": "weekly", "days": ["thu", "mon"], "at": "02:00", "timezone": "Europe/Budapest"}, DAILY_BUDAPEST
    )
    # Clocks went forward in the night to Sunday 2026-03-29.
    assert requested_range(schedule, at_budapest(2026, 3, 30, 2, 0)) == ("2026-03-26", "2026-03-29")
    assert requested_range(schedule, at_budapest(2026, 4, 2, 2, 0)) == ("2026-03-30", "2026-04-01")


def test_weekly_on_one_day_exports_the_last_seven_days(tmp_path):
    schedule = schedule_for(tmp_path, {"repeated": "weekly", "days": ["mon"], "at": "06:00", "timezone": "Europe/Budapest"}, DAILY_BUDAPEST)
    assert requested_range(schedule, at_budapest(2026, 11, 2, 6, 0)) == ("2026-10-26", "2026-11-01")


def test_a_daily_tick_in_the_missing_hour_of_the_dst_night_runs_once_after_it(tmp_path):
    schedule = schedule_for(tmp_path, {"repeated": "daily", "at": "02:30", "timezone": "Europe/Budapest"}, DAILY_BUDAPEST)
    [spring_tick] = [moment for moment in ticks(schedule, at_budapest(2026, 3, 29), 3) if moment.day == 29]
    assert spring_tick == at_budapest(2026, 3, 29, 3, 0)
    assert requested_range(schedule, spring_tick) == ("2026-03-28", "2026-03-28")
    autumn = [moment for moment in ticks(schedule, at_budapest(2026, 10, 24, 12), 3)]
    assert [moment.date().isoformat() for moment in autumn] == ["2026-10-25", "2026-10-26", "2026-10-27"]
    assert requested_range(schedule, autumn[0]) == ("2026-10-24", "2026-10-24")


def test_hourly_windows_across_the_autumn_switch_are_all_in_one_daily_run(tmp_path):
    hourly = {**DAILY_BUDAPEST, "grain": "hourly"}
    schedule = schedule_for(tmp_path, {"repeated": "daily", "at": "00:00", "timezone": "Europe/Budapest"}, hourly)
    # 2026-10-25 has 25 hours; the run starts at its first hour and ends with its last.
    assert requested_range(schedule, at_budapest(2026, 10, 26, 0, 0)) == ("2026-10-25-00:00", "2026-10-25-23:00")


def test_every_30_minutes_snapshot_requests_a_run_per_tick(tmp_path):
    schedule = schedule_for(tmp_path, {"repeated": "every", "every": "30m"})
    assert schedule.cron_schedule == "*/30 * * * *"
    moments = ticks(schedule, dt.datetime(2026, 5, 1, 9, 10, tzinfo=dt.UTC), 3)
    assert [f"{moment:%H:%M}" for moment in moments] == ["09:30", "10:00", "10:30"]
    first, second = (tick(schedule, moment).run_requests for moment in moments[:2])
    assert first[0].run_key != second[0].run_key
    assert ASSET_PARTITION_RANGE_START_TAG not in first[0].tags
    assert schedule.job_name == export_job_name("probe")


def test_an_on_date_schedule_fires_on_that_date_only(tmp_path):
    schedule = schedule_for(tmp_path, {"on": "2099-03-01T06:00", "timezone": "Europe/Budapest"})
    on_date = dt.datetime(2099, 3, 1, 6, 0, tzinfo=BUDAPEST)
    assert ticks(schedule, on_date - dt.timedelta(days=1), 1) == [on_date]
    assert len(tick(schedule, on_date).run_requests) == 1
    a_year_later = tick(schedule, on_date.replace(year=2100))
    assert not a_year_later.run_requests
    assert "runs once, on 2099-03-01T06:00" in a_year_later.skip_message


def test_a_past_on_date_still_loads_keeps_its_job_and_never_fires_again(tmp_path):
    # Once a one-off has fired, its date is in the past at the next reload: the export must stay valid.
    spec = {"name": "probe", "model": "customers", "fields": ["id"], "schedule": {"on": "2020-01-01T06:00", "timezone": "Europe/Budapest"}}
    config = load_config(write_config(tmp_path, [spec]))
    assert not config.problems, [str(p) for p in config.problems]
    definitions = build_definitions(config)
    assert definitions.resolve_job_def(export_job_name("probe")).name == export_job_name("probe")
    schedule = definitions.get_schedule_def(schedule_name_for("probe"))
    assert schedule.description == (
        "fired once on 2020-01-01T06:00 Europe/Budapest, will not run again (the cron repeats yearly; every tick skips)"
    )
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    for later in (at_budapest(2021, 1, 1, 6, 0), at_budapest(2030, 1, 1, 6, 0)):
        skipped = tick(schedule, later)
        assert not skipped.run_requests and "runs once, on 2020-01-01T06:00" in skipped.skip_message


def test_a_past_incremental_on_date_loads_too(tmp_path):
    schedule = schedule_for(tmp_path, {"on": "2024-03-01T06:00", "timezone": "Europe/Budapest"}, DAILY_BUDAPEST)
    assert schedule.description.startswith("fired once on 2024-03-01T06:00 Europe/Budapest")
    assert not tick(schedule, at_budapest(2025, 3, 1, 6, 0)).run_requests


def test_a_future_on_date_schedule_is_running_until_it_fires(tmp_path):
    schedule = schedule_for(tmp_path, {"on": "2099-03-01T06:00", "timezone": "Europe/Budapest"})
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.description == "once on 2099-03-01T06:00 Europe/Budapest (the cron repeats yearly; other years' ticks skip): a snapshot"


def test_an_on_date_in_the_spring_dst_gap_fires_once_when_the_clocks_jump(tmp_path):
    # 2099-03-29 is the last Sunday of March: 02:00-03:00 does not exist in Budapest; Dagster ticks at 03:00 CEST.
    schedule = schedule_for(tmp_path, {"on": "2099-03-29T02:30", "timezone": "Europe/Budapest"})
    jump = dt.datetime(2099, 3, 29, 1, 0, tzinfo=dt.UTC)
    assert ticks(schedule, at_budapest(2099, 3, 1), 1) == [jump]
    assert len(tick(schedule, jump).run_requests) == 1
    assert not tick(schedule, dt.datetime(2100, 3, 29, 0, 30, tzinfo=dt.UTC)).run_requests
    assert "does not exist then; the tick comes at 03:00" in schedule.description


def test_an_on_date_in_the_repeated_autumn_hour_fires_once(tmp_path):
    # 2099-10-25 is the last Sunday of October: 02:30 happens at 00:30 and again at 01:30 UTC.
    schedule = schedule_for(tmp_path, {"on": "2099-10-25T02:30", "timezone": "Europe/Budapest"})
    [scheduled] = ticks(schedule, at_budapest(2099, 10, 1), 1)
    occurrences = [dt.datetime(2099, 10, 25, 0, 30, tzinfo=dt.UTC), dt.datetime(2099, 10, 25, 1, 30, tzinfo=dt.UTC)]
    # Compared as timestamps: Python never finds a fold=1 time equal to a time in another zone.
    instants = [moment.timestamp() for moment in occurrences]
    assert scheduled.timestamp() in instants
    requests = [len(tick(schedule, moment).run_requests) for moment in occurrences]
    assert sorted(requests) == [0, 1] and requests[instants.index(scheduled.timestamp())] == 1


def test_an_incremental_on_date_run_covers_every_window_from_start(tmp_path):
    incremental = {**DAILY_BUDAPEST, "start": "2099-01-01"}
    schedule = schedule_for(tmp_path, {"on": "2099-03-01T06:00", "timezone": "Europe/Budapest"}, incremental)
    assert requested_range(schedule, at_budapest(2099, 3, 1, 6, 0)) == ("2099-01-01", "2099-02-28")


def test_evaluating_a_tick_twice_requests_the_same_run_key(tmp_path):
    schedule = schedule_for(tmp_path, {"repeated": "daily", "at": "02:00", "timezone": "Europe/Budapest"}, DAILY_BUDAPEST)
    moment = at_budapest(2026, 6, 10, 2, 0)
    assert tick(schedule, moment).run_requests[0].run_key == tick(schedule, moment).run_requests[0].run_key


def test_active_sets_the_default_status(tmp_path):
    on = schedule_for(tmp_path / "on", {"repeated": "daily", "at": "02:00"})
    off = schedule_for(tmp_path / "off", {"repeated": "daily", "at": "02:00", "active": False})
    assert on.default_status == dg.DefaultScheduleStatus.RUNNING
    assert off.default_status == dg.DefaultScheduleStatus.STOPPED
