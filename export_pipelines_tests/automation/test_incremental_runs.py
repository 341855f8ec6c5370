"""Incremental exports run for real: one range run, one file, exactly the rows of the window."""

from __future__ import annotations

import io
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from export_pipelines.automation.windows import range_tags
from export_pipelines.definitions import build_definitions
from export_pipelines.factory import build_export_asset
from export_pipelines.naming import asset_key_for, export_job_name
from export_pipelines.spec.loader import load_config
from export_pipelines_tests.automation.window_data import (
    RANGE,
    WINDOW_END,
    WINDOW_START,
    create_window_transactions,
    ids_in_window,
    incremental_spec,
)
from export_pipelines_tests.conftest import METADATA_SOURCES, export_resources, source_url, write_config

@pytest.fixture(params=METADATA_SOURCES)
def window_source_url(request, tmp_path: Path) -> str:
    url = source_url(request, tmp_path, request.param)
    create_window_transactions(url)
    return url


def materialize_range(spec: dict, source_url: str, tmp_path: Path, key_range: dg.PartitionKeyRange):
    config = load_config(write_config(tmp_path / "config", [spec]))
    assert not config.problems, [str(p) for p in config.problems]
    asset = build_export_asset(config.plans[spec["name"]])
    instance_dir = tmp_path / "instance"
    instance_dir.mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(instance_dir)) as instance:
        return dg.materialize(
            [asset],
            resources=export_resources(source_url),
            instance=instance,
            tags=range_tags(key_range),
            raise_on_error=False,
        )


def delivered_ids(result: dg.ExecuteInProcessResult) -> tuple[list[str], list[int]]:
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    folder = Path(metadata["location"].value)
    names = metadata["file_names"].value
    frames = [pd.read_csv(io.BytesIO((folder / name).read_bytes())) for name in names]
    return names, sorted(int(value) for frame in frames for value in frame["id"])


def test_a_range_backfill_is_one_run_with_one_file_holding_exactly_the_window(window_source_url, tmp_path):
    spec = incremental_spec("tx_by_event", "event_date")
    result = materialize_range(spec, window_source_url, tmp_path, RANGE)
    assert result.success

    names, ids = delivered_ids(result)
    assert names == ["tx_20260327_20260331.csv"]
    assert ids == ids_in_window(window_source_url, "created_at", WINDOW_START, WINDOW_END)
    assert ids == [2, 3, 4, 7]
    # One run, and a materialization for each of the four windows it covered.
    materializations = result.get_asset_materialization_events()
    assert sorted(event.partition for event in materializations) == ["2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30"]
    window = materializations[0].materialization.metadata["window"].value
    assert window == "created_at in [2026-03-27T00:00:00+01:00, 2026-03-31T00:00:00+02:00)"


def test_event_date_and_updated_at_windows_select_different_rows(window_source_url, tmp_path):
    by_event = materialize_range(incremental_spec("tx_by_event", "event_date"), window_source_url, tmp_path / "event", RANGE)
    by_update = materialize_range(incremental_spec("tx_by_update", "updated_at"), window_source_url, tmp_path / "update", RANGE)

    _, event_ids = delivered_ids(by_event)
    _, update_ids = delivered_ids(by_update)
    assert update_ids == ids_in_window(window_source_url, "updated_at", WINDOW_START, WINDOW_END)
    assert update_ids == [1, 3, 5, 8]
    assert event_ids != update_ids


def test_a_single_partition_run_covers_one_day_in_the_exports_timezone(window_source_url, tmp_path):
    spec = incremental_spec("tx_by_event", "event_date")
    result = materialize_range(spec, window_source_url, tmp_path, dg.PartitionKeyRange("2026-03-29", "2026-03-29"))
    names, ids = delivered_ids(result)
    start, end = WINDOW_START.replace(day=29), WINDOW_START.replace(day=30)
    assert names == ["tx_20260329_20260330.csv"]
    assert ids == ids_in_window(window_source_url, "created_at", start, end) == [3]


def test_a_range_longer_than_max_window_days_fails_before_querying(tmp_path):
    url = f"sqlite:///{tmp_path / 'window.sqlite'}"
    create_window_transactions(url)
    spec = incremental_spec("tx_short", "event_date", max_window_days=3)
    result = materialize_range(spec, url, tmp_path, RANGE)
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key.endswith("tx_short__extract")
    message = str(failure.step_failure_data.user_failure_data or failure.step_failure_data.error)
    assert "spans 4 days" in message and "max_window_days 3" in message


def test_export_job_and_asset_are_partitioned_with_a_single_run_backfill_policy(tmp_path):
    defs = build_definitions(load_config(write_config(tmp_path, [incremental_spec("tx_by_event", "event_date")])))
    asset = defs.resolve_assets_def(asset_key_for("tx_by_event"))
    assert asset.backfill_policy == dg.BackfillPolicy.single_run()
    partitions = asset.partitions_def
    assert isinstance(partitions, dg.TimeWindowPartitionsDefinition)
    assert (partitions.timezone, partitions.start.date().isoformat(), partitions.end_offset) == ("Europe/Budapest", "2026-01-01", 0)
    assert defs.resolve_job_def(export_job_name("tx_by_event")).partitions_def == partitions
