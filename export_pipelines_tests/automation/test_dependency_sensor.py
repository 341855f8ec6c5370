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
from export_pipelines.naming import after_sensor_name_for, asset_key_for, export_job_name
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


def evaluate_sensor(config: ExportConfig, instance, cursor: str | None = None) -> dg.SensorExecutionData:
    sensor = build_definitions(config).get_sensor_def(after_sensor_name_for("orders_after", "customers_first"))
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))


def finished_at(instance, run_id: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(instance.get_run_record_by_id(run_id).end_time, dt.UTC)


def requested_ranges(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in result.run_requests or []]


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
    early = follow_upstream(instance, plan, finished + dt.timedelta(minutes=29), waiting.cursor)
    assert not early.run_requests and "(delay 30m)" in early.skip_reason.skip_message
    due = follow_upstream(instance, plan, finished + dt.timedelta(minutes=30), early.cursor)
    assert requested_ranges(due) == [("2026-03-27", "2026-03-28")]
    assert upstream.run_id in due.run_requests[0].run_key
    later = follow_upstream(instance, plan, finished + dt.timedelta(hours=5), due.cursor)
    assert not later.run_requests
    sensor = build_definitions(config).get_sensor_def(after_sensor_name_for("orders_after", "customers_first"))
    assert sensor.job_name == export_job_name("orders_after")


def test_two_upstream_runs_within_the_delay_lead_to_two_downstream_runs(config, instance, source_url):
    plan = config.plans["orders_after"]
    before = evaluate_sensor(config, instance)
    scheduled = run_customers(config, instance, source_url, FIRST_RANGE)
    backfill = run_customers(config, instance, source_url, dg.PartitionKeyRange("2026-03-01", "2026-03-05"))
    assert scheduled.success and backfill.success
    first_due = finished_at(instance, scheduled.run_id) + dt.timedelta(minutes=30)
    second_due = finished_at(instance, backfill.run_id) + dt.timedelta(minutes=30)
    assert first_due < second_due

    first = follow_upstream(instance, plan, first_due, before.cursor)
    assert requested_ranges(first) == [("2026-03-27", "2026-03-28")]
    second = follow_upstream(instance, plan, second_due, first.cursor)
    assert requested_ranges(second) == [("2026-03-01", "2026-03-05")]
    assert first.run_requests[0].run_key != second.run_requests[0].run_key
    assert not follow_upstream(instance, plan, second_due + dt.timedelta(hours=1), second.cursor).run_requests

    # Evaluated only once both are due, the sensor still requests both, in the order they ran.
    both = follow_upstream(instance, plan, second_due, before.cursor)
    assert requested_ranges(both) == [("2026-03-27", "2026-03-28"), ("2026-03-01", "2026-03-05")]
    # The sensor itself, evaluated now, keeps both waiting for their delay.
    through_the_sensor = evaluate_sensor(config, instance, before.cursor)
    assert not through_the_sensor.run_requests and "(delay 30m)" in through_the_sensor.skip_message
    assert through_the_sensor.cursor == before.cursor


def test_a_failed_upstream_run_stops_the_downstream_and_says_why(config, instance, source_url, tmp_path):
    plan = config.plans["orders_after"]
    succeeded = run_customers(config, instance, source_url, FIRST_RANGE)
    assert succeeded.success
    followed = follow_upstream(instance, plan, finished_at(instance, succeeded.run_id) + dt.timedelta(minutes=31), None)
    assert requested_ranges(followed) == [("2026-03-27", "2026-03-28")]

    failed = run_customers(config, instance, f"sqlite:///{tmp_path / 'missing' / 'nothing.sqlite'}", SECOND_RANGE)
    assert not failed.success
    a_day_later = finished_at(instance, failed.run_id) + dt.timedelta(days=1)
    skipped = follow_upstream(instance, plan, a_day_later, followed.cursor)
    assert not skipped.run_requests
    message = skipped.skip_reason.skip_message
    assert f"exports/customers_first run {failed.run_id[:8]} for 2026-03-29...2026-03-29 ended FAILURE" in message
    assert "exports/orders_after does not run" in message
    sensor_result = evaluate_sensor(config, instance, skipped.cursor)
    assert not sensor_result.run_requests and "FAILURE" in sensor_result.skip_message

    rerun = run_customers(config, instance, source_url, SECOND_RANGE)
    after_rerun = follow_upstream(instance, plan, finished_at(instance, rerun.run_id) + dt.timedelta(minutes=31), skipped.cursor)
    assert requested_ranges(after_rerun) == [("2026-03-29", "2026-03-29")]


def test_upstream_windows_before_the_downstream_start_are_cut_off(tmp_path, instance, source_url):
    orders = {**ORDERS, "incremental": {**WINDOW, "start": "2026-03-20"}}
    config = load_config(write_config(tmp_path / "late_start", [CUSTOMERS, orders]))
    assert not config.problems, [str(p) for p in config.problems]
    plan = config.plans["orders_after"]
    before = follow_upstream(instance, plan, dt.datetime.now(dt.UTC), None)

    outside = run_customers(config, instance, source_url, dg.PartitionKeyRange("2026-03-01", "2026-03-02"))
    skipped = follow_upstream(instance, plan, finished_at(instance, outside.run_id) + dt.timedelta(minutes=31), before.cursor)
    assert not skipped.run_requests
    assert "exports/orders_after has no window in 2026-03-01...2026-03-02" in skipped.skip_reason.skip_message

    straddling = run_customers(config, instance, source_url, dg.PartitionKeyRange("2026-03-18", "2026-03-22"))
    due = finished_at(instance, straddling.run_id) + dt.timedelta(minutes=31)
    [request] = follow_upstream(instance, plan, due, skipped.cursor).run_requests
    assert (request.tags[ASSET_PARTITION_RANGE_START_TAG], request.tags[ASSET_PARTITION_RANGE_END_TAG]) == ("2026-03-20", "2026-03-22")
    downstream = dg.materialize(
        [build_export_asset(plan)], instance=instance, resources=export_resources(source_url), tags=dict(request.tags)
    )
    assert downstream.success


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


def test_the_dependency_is_an_edge_of_the_lineage_graph_and_the_sensor_still_launches(config):
    defs = build_definitions(config)
    graph = defs.resolve_asset_graph()
    downstream, upstream = graph.get(asset_key_for("orders_after")), graph.get(asset_key_for("customers_first"))
    assert downstream.parent_keys == {upstream.key} and upstream.child_keys == {downstream.key}
    # Same grain and timezone (the loader's rule): window 2026-03-28 follows window 2026-03-28.
    mapping = graph.get_partition_mapping(downstream.key, upstream.key)
    assert mapping.get_upstream_mapped_partitions_result_for_partitions(
        downstream.partitions_def.subset_with_partition_keys(["2026-03-28"]), downstream.partitions_def, upstream.partitions_def
    ).partitions_subset.get_partition_keys() == ["2026-03-28"]
    # Exports stay grouped by their model; the edge does not make the upstream part of the downstream's runs.
    assert downstream.group_name == upstream.group_name == "transactions"
    job = defs.resolve_job_def(export_job_name("orders_after"))
    assert job.asset_layer.selected_asset_keys == {downstream.key}
    assert downstream.automation_condition is None


def test_a_run_that_materialized_both_exports_is_not_followed_again(config, instance, source_url):
    """Materialize all in the lineage view: one run holds the upstream and the export that follows it,
    in order; the sensor must not deliver the same window a second time after the delay."""
    assets = [build_export_asset(config.plans["customers_first"]), build_export_asset(config.plans["orders_after"])]
    both = dg.materialize(assets, instance=instance, resources=export_resources(source_url), tags=range_tags(FIRST_RANGE), raise_on_error=False)
    assert both.success
    first = evaluate_sensor(config, instance)
    assert not first.run_requests
    assert f"run {both.run_id} materialized orders_after together with customers_first." in first.skip_message
    due = follow_upstream(instance, config.plans["orders_after"], finished_at(instance, both.run_id) + dt.timedelta(hours=1), first.cursor)
    assert not due.run_requests
