"""`after`: the dependent export follows its upstream's successful run for the same window, delay later."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from export_pipelines.automation.dependencies import follow_upstream
from export_pipelines.automation.windows import range_tags
from export_pipelines.definitions import build_definitions
from export_pipelines.factory import build_export_asset
from export_pipelines.naming import after_sensor_name_for, export_job_name
from export_pipelines.spec.loader import ExportConfig, load_config
from export_pipelines_tests.automation.window_data import create_window_transactions
from export_pipelines_tests.conftest import export_resources, write_config

WINDOW = {"by": "updated_at", "grain": "daily", "start": "2026-01-01", "timezone": "Europe/Budapest"}
CUSTOMERS = {
    "name": "customers_first",
    "model": "transactions",
    "fields": ["id"],
    "incremental": WINDOW,
    "schedule": {"repeated": "daily", "at": "02:00", "timezone": "Europe/Budapest"},
}
ORDERS = {
    "name": "orders_after",
    "model": "transactions",
    "fields": ["id", "number"],
    "incremental": WINDOW,
    "after": {"export": "customers_first", "delay": "30m"},
}
FIRST_RANGE = dg.PartitionKeyRange("2026-03-27", "2026-03-28")
SECOND_RANGE = dg.PartitionKeyRange("2026-03-29", "2026-03-29")


@pytest.fixture
def config(tmp_path: Path) -> ExportConfig:
    loaded = load_config(write_config(tmp_path / "config", [CUSTOMERS, ORDERS]))
    assert not loaded.problems, [str(p) for p in loaded.problems]
    return loaded


@pytest.fixture
def instance(tmp_path: Path):
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as test_instance:
        yield test_instance


@pytest.fixture
def source_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'window.sqlite'}"
    create_window_transactions(url)
    return url


def run_customers(config: ExportConfig, instance, url: str, key_range: dg.PartitionKeyRange) -> dg.ExecuteInProcessResult:
    asset = build_export_asset(config.plans["customers_first"])
    return dg.materialize(
        [asset], instance=instance, resources=export_resources(url), tags=range_tags(key_range), raise_on_error=False
    )


def evaluate_sensor(config: ExportConfig, instance) -> dg.SensorExecutionData:
    sensor = build_definitions(config).get_sensor_def(after_sensor_name_for("orders_after", "customers_first"))
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance))


def finished_at(instance, run_id: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(instance.get_run_record_by_id(run_id).end_time, dt.UTC)


def test_nothing_runs_before_the_upstream_ever_ran(config, instance):
    result = evaluate_sensor(config, instance)
    assert not result.run_requests
    assert "exports/customers_first has not run yet" in result.skip_message


def test_after_success_the_downstream_waits_for_the_delay_then_runs_the_same_window(config, instance, source_url):
    upstream = run_customers(config, instance, source_url, FIRST_RANGE)
    assert upstream.success

    waiting = evaluate_sensor(config, instance)
    assert not waiting.run_requests
    assert "succeeded" in waiting.skip_message and "starts at" in waiting.skip_message and "(delay 30m)" in waiting.skip_message

    finished = finished_at(instance, upstream.run_id)
    plan = config.plans["orders_after"]
    assert isinstance(follow_upstream(instance, plan, finished + dt.timedelta(minutes=29)), dg.SkipReason)
    request = follow_upstream(instance, plan, finished + dt.timedelta(minutes=30))
    assert isinstance(request, dg.RunRequest)
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == "2026-03-27"
    assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == "2026-03-28"
    assert upstream.run_id in request.run_key
    sensor = build_definitions(config).get_sensor_def(after_sensor_name_for("orders_after", "customers_first"))
    assert sensor.job_name == export_job_name("orders_after")


def test_a_failed_upstream_run_stops_the_downstream_and_says_why(config, instance, source_url, tmp_path):
    assert run_customers(config, instance, source_url, FIRST_RANGE).success
    failed = run_customers(config, instance, f"sqlite:///{tmp_path / 'missing' / 'nothing.sqlite'}", SECOND_RANGE)
    assert not failed.success

    plan = config.plans["orders_after"]
    a_day_later = finished_at(instance, failed.run_id) + dt.timedelta(days=1)
    skipped = follow_upstream(instance, plan, a_day_later)
    assert isinstance(skipped, dg.SkipReason)
    assert f"exports/customers_first run {failed.run_id[:8]} for 2026-03-29...2026-03-29 ended FAILURE" in skipped.skip_message
    assert "exports/orders_after does not run" in skipped.skip_message
    sensor_result = evaluate_sensor(config, instance)
    assert not sensor_result.run_requests and "FAILURE" in sensor_result.skip_message

    rerun = run_customers(config, instance, source_url, SECOND_RANGE)
    request = follow_upstream(instance, plan, finished_at(instance, rerun.run_id) + dt.timedelta(minutes=31))
    assert isinstance(request, dg.RunRequest)
    assert (request.tags[ASSET_PARTITION_RANGE_START_TAG], request.tags[ASSET_PARTITION_RANGE_END_TAG]) == ("2026-03-29", "2026-03-29")


def test_a_snapshot_export_follows_a_snapshot_export_once_per_upstream_run(tmp_path, instance, source_url):
    first = {"name": "first", "model": "transactions", "fields": ["id"], "schedule": {"repeated": "every", "every": "30m"}}
    second = {"name": "second", "model": "transactions", "fields": ["id"], "after": {"export": "first"}}
    config = load_config(write_config(tmp_path / "snapshots", [first, second]))
    asset = build_export_asset(config.plans["first"])
    upstream = dg.materialize([asset], instance=instance, resources=export_resources(source_url))

    sensor = build_definitions(config).get_sensor_def(after_sensor_name_for("second", "first"))
    [request] = sensor.evaluate_tick(dg.build_sensor_context(instance=instance)).run_requests
    assert request.run_key == f"second:after:{upstream.run_id}"
    assert ASSET_PARTITION_RANGE_START_TAG not in request.tags
