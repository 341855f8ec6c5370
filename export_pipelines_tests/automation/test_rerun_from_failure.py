"""A failed delivery is re-executed from the failed step: the source is not queried again."""

from __future__ import annotations

import io
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from export_pipelines.automation.windows import range_tags
from export_pipelines.spec.loader import CONFIG_ENV_VAR
from export_pipelines.source import SOURCE_URL_ENV_VAR
from export_pipelines.targets.registry import downloads_folder
from export_pipelines_tests.automation.reexecution_target import JOB_EXPORT_ENV_VAR, export_job
from export_pipelines_tests.automation.window_data import (
    RANGE,
    WINDOW_END,
    WINDOW_START,
    create_window_transactions,
    ids_in_window,
    incremental_spec,
)
from export_pipelines_tests.conftest import write_config


def started_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    return [record.event_log_entry.dagster_event.step_key.rsplit("__", 1)[1] for record in records]


def test_rerun_from_failure_delivers_without_extracting_again(tmp_path, monkeypatch):
    source_url = f"sqlite:///{tmp_path / 'window.sqlite'}"
    create_window_transactions(source_url)
    config = write_config(tmp_path / "config", [incremental_spec("tx_rerun", "event_date")])
    monkeypatch.setenv(CONFIG_ENV_VAR, str(config))
    monkeypatch.setenv(SOURCE_URL_ENV_VAR, source_url)
    monkeypatch.setenv(JOB_EXPORT_ENV_VAR, "tx_rerun")
    job = dg.reconstructable(export_job)

    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        # A plain file where the download folder belongs: delivery fails (even for root).
        blocked = downloads_folder(Path(instance.storage_directory()), "tx_rerun")
        blocked.parent.mkdir(parents=True)
        blocked.write_text("in the way")
        with dg.execute_job(job, instance=instance, tags=range_tags(RANGE), raise_on_error=False) as first:
            assert not first.success
            assert started_steps(instance, first.run_id) == ["extract", "map", "serialize", "upload"]
            parent_tags = first.dagster_run.tags

        blocked.unlink()
        # Dagster wants the parent's partition range on the re-execution too.
        partition_tags = {key: parent_tags[key] for key in (ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG)}
        options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
        with dg.execute_job(job, instance=instance, reexecution_options=options, tags=partition_tags) as rerun:
            assert rerun.success
            assert started_steps(instance, rerun.run_id) == ["upload"]
            files = list(blocked.iterdir())

        # The failed run re-executed a second time: its files were delivered and removed, so the
        # step fails with what happened and what to do, not a bare "file not found".
        options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
        with dg.execute_job(job, instance=instance, reexecution_options=options, tags=partition_tags, raise_on_error=False) as again:
            assert not again.success
            [failure] = [event for event in again.all_events if event.event_type_value == "STEP_FAILURE"]
            cause = failure.event_specific_data.error.message
        assert "For export tx_rerun, this re-execution needs the files an earlier run left in" in cause
        assert "that run's files were delivered (by the run's own step, or a re-execution of it" in cause
        assert [file.name for file in blocked.iterdir()] == ["tx_20260327_20260331.csv"]

    assert [file.name for file in files] == ["tx_20260327_20260331.csv"]
    delivered = sorted(int(value) for value in pd.read_csv(io.BytesIO(files[0].read_bytes()))["id"])
    assert delivered == ids_in_window(source_url, "created_at", WINDOW_START, WINDOW_END)
