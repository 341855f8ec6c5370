"""Time keys that cannot work are load errors naming the file, the key path and what to write instead."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import write_config

BASE = {"name": "probe", "model": "customers", "fields": ["id"]}
DAILY = {"by": "updated_at", "grain": "daily", "start": "2024-01-01", "timezone": "Europe/Budapest"}


def with_base(**changes) -> dict:
    return {**BASE, **changes}


CASES = [
    ("unknown_incremental_timezone", with_base(incremental={**DAILY, "timezone": "Europe/Budapst"}),
     "incremental.timezone", ["unknown timezone 'Europe/Budapst'", "Europe/Budapest"]),
    ("unknown_schedule_timezone", with_base(schedule={"repeated": "daily", "at": "02:00", "timezone": "Mars/Olympus"}),
     "schedule.timezone", ["unknown timezone 'Mars/Olympus'"]),
    ("weekday_out_of_range", with_base(schedule={"repeated": "weekly", "days": ["mon", "thursday"]}),
     "schedule.days[1]", ["'thursday'", "did you mean thu?", "one of: mon, tue, wed, thu, fri, sat, sun"]),
    ("month_day_out_of_range", with_base(schedule={"repeated": "monthly", "days": [15, 32]}),
     "schedule.days[1]", ["32 is not a day of the month", "1..31 or last"]),
    ("month_day_zero", with_base(schedule={"repeated": "monthly", "days": [0]}), "schedule.days[0]", ["0 is not a day"]),
    ("hour_out_of_range", with_base(schedule={"repeated": "daily", "at": "25:00"}), "schedule.at", ["not a time of day HH:MM"]),
    ("unquoted_yaml_time", with_base(schedule={"repeated": "daily", "at": 120}), "schedule.at", ["quote it"]),
    ("unknown_repetition", with_base(schedule={"repeated": "hourly"}), "schedule.repeated",
     ["unknown value 'hourly'", "one of: daily, weekly, monthly, every", "on: DATE-TIME"]),
    ("no_repetition", with_base(schedule={"at": "02:00"}), "schedule",
     ["repeated: daily | weekly | monthly | every", "on: DATE-TIME"]),
    ("every_not_dividing_an_hour", with_base(schedule={"repeated": "every", "every": "7m"}), "schedule.every",
     ["must divide an hour"]),
    ("every_zero_minutes", with_base(schedule={"repeated": "every", "every": "0m"}), "schedule.every",
     ["at least 1m"]),
    ("every_zero_hours", with_base(schedule={"repeated": "every", "every": "0h"}), "schedule.every", ["at least 1m"]),
    ("every_in_seconds", with_base(schedule={"repeated": "every", "every": "90s"}), "schedule.every",
     ["whole number of minutes"]),
    ("every_not_a_duration", with_base(schedule={"repeated": "every", "every": "half an hour"}), "schedule.every",
     ["not a duration", "30m"]),
    ("on_date_before_incremental_start", with_base(incremental=DAILY, schedule={"on": "2023-12-01T06:00"}), "schedule.on",
     ["2023-12-01T06:00 is before the end of the first daily window", "incremental.start 2024-01-01"]),
    ("on_date_within_the_first_window", with_base(incremental=DAILY, schedule={"on": "2024-01-01T23:00"}), "schedule.on",
     ["no complete window"]),
    ("on_date_with_offset", with_base(schedule={"on": "2099-01-01T06:00+01:00"}), "schedule.on", ["without an offset"]),
    ("every_shorter_than_the_window", with_base(incremental=DAILY, schedule={"repeated": "every", "every": "30m"}),
     "schedule.every", ["every 30m is shorter than the daily windows"]),
    ("weekly_longer_than_max_window", with_base(incremental=DAILY, max_window_days=5, schedule={"repeated": "weekly", "days": ["mon"]}),
     "schedule", ["7 days apart", "max_window_days 5"]),
    ("monthly_last_longer_than_max_window", with_base(incremental=DAILY, max_window_days=30, schedule={"repeated": "monthly", "days": ["last"]}),
     "schedule", ["31 days apart", "max_window_days 30"]),
    ("one_off_range_longer_than_a_year", with_base(incremental=DAILY, schedule={"on": "2099-01-01T06:00"}),
     "schedule.on", ["more than max_window_days 366", "incremental.start"]),
    ("unknown_window_kind", with_base(incremental={**DAILY, "by": "created"}), "incremental.by", ["'created'", "one of: event_date, updated_at"]),
    ("start_with_a_time", with_base(incremental={**DAILY, "start": "2024-01-01T05:00:00"}), "incremental.start",
     ["start is a date"]),
    ("schedule_and_after", with_base(schedule={"repeated": "daily"}, after={"export": "other"}), "after",
     ["remove either `after` or `schedule`"]),
    ("window_tokens_on_a_snapshot", with_base(file_name="x_{window_start:%Y%m%d}.{ext}"), "file_name", ["need an incremental export"]),
    ("zero_max_window", with_base(max_window_days=0), "max_window_days", ["greater than 0"]),
]


@pytest.mark.parametrize(("spec", "key_path", "fragments"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_time_key_errors_name_the_key_and_the_fix(tmp_path, spec, key_path, fragments):
    config = load_config(write_config(tmp_path, [spec]))
    assert "probe" not in config.plans
    [problem] = config.problems
    assert (problem.file, problem.key_path) == ("exports/probe.yaml", key_path), str(problem)
    for fragment in fragments:
        assert fragment in problem.message, problem.message


def test_an_unquoted_on_key_is_read_as_on_not_as_yaml_true(tmp_path):
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "probe.yaml").write_text(
        "name: probe\nmodel: customers\nfields: [id]\nschedule: {on: 2020-06-01T06:00, timezone: UTC}\n"
    )
    config = load_config(tmp_path)
    assert not config.problems, [str(p) for p in config.problems]
    assert config.plans["probe"].spec.schedule.on == dt.datetime(2020, 6, 1, 6, 0)


def test_an_error_under_an_unquoted_on_key_names_schedule_on(tmp_path):
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "probe.yaml").write_text(
        "name: probe\nmodel: customers\nfields: [id]\nschedule: {on: 2099-06-01 06:00:00+01:00}\n"
    )
    [problem] = load_config(tmp_path).problems
    assert problem.key_path == "schedule.on"
    assert "without an offset" in problem.message


def problems_by_file(folder: Path, specs: list[dict]) -> dict[str, list[str]]:
    config = load_config(write_config(folder, specs))
    return {problem.file: f"{problem.key_path}: {problem.message}" for problem in config.problems} | {"valid": sorted(config.plans)}


def test_after_naming_an_unknown_export_suggests_the_closest(tmp_path):
    customers = {**BASE, "name": "customers"}
    orders = {**BASE, "name": "orders", "after": {"export": "custmers", "delay": "30m"}}
    found = problems_by_file(tmp_path, [customers, orders])
    assert found["valid"] == ["customers"]
    assert found["exports/orders.yaml"] == "after.export: no export named 'custmers'; did you mean customers?"


def test_after_cycles_are_reported_for_every_export_in_them(tmp_path):
    specs = [
        {**BASE, "name": "a", "after": {"export": "b"}},
        {**BASE, "name": "b", "after": {"export": "c"}},
        {**BASE, "name": "c", "after": {"export": "b"}},
        {**BASE, "name": "self_loop", "after": {"export": "self_loop"}},
        {**BASE, "name": "fine"},
    ]
    found = problems_by_file(tmp_path, specs)
    assert found["valid"] == ["fine"]
    assert "cycle: a -> b -> c -> b" in found["exports/a.yaml"]
    assert "cycle: b -> c -> b" in found["exports/b.yaml"]
    assert "cycle: self_loop -> self_loop" in found["exports/self_loop.yaml"]


def test_an_export_after_a_broken_export_is_reported_too(tmp_path):
    broken = {**BASE, "name": "customers", "fields": ["emial"]}
    orders = {**BASE, "name": "orders", "after": {"export": "customers"}}
    found = problems_by_file(tmp_path, [broken, orders])
    assert found["valid"] == []
    assert found["exports/orders.yaml"] == "after.export: export customers does not load; fix exports/customers.yaml first"


def test_an_incremental_export_follows_only_an_export_with_the_same_windows(tmp_path):
    snapshot = {**BASE, "name": "customers"}
    hourly = {**BASE, "name": "hourly", "incremental": {**DAILY, "grain": "hourly"}}
    orders = {**BASE, "name": "orders", "incremental": DAILY, "after": {"export": "customers"}}
    orders_hourly = {**BASE, "name": "orders_hourly", "incremental": DAILY, "after": {"export": "hourly"}}
    found = problems_by_file(tmp_path, [snapshot, hourly, orders, orders_hourly])
    assert found["valid"] == ["customers", "hourly"]
    assert "needs the same incremental grain and timezone" in found["exports/orders.yaml"]
    assert "needs the same incremental grain and timezone" in found["exports/orders_hourly.yaml"]


def test_a_zero_interval_is_reported_and_the_other_exports_still_load(tmp_path):
    specs = [with_base(schedule={"repeated": "every", "every": "0m"}), {**BASE, "name": "other"}]
    found = problems_by_file(tmp_path, specs)
    assert found["valid"] == ["other"]
    assert found["exports/probe.yaml"].startswith("schedule.every: every must be a whole number of minutes, at least 1m")
