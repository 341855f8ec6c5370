"""Runs the command line executes in its own process, recorded in DAGSTER_HOME like any run:
one export over a window range (`run`), a re-execution from failure (`rerun`), the demo.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import dagster as dg
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, PARTITION_NAME_TAG

from export_pipelines.automation.notifications import step_errors
from export_pipelines.naming import HOST_TAG, TRIGGER_TAG

# The code location's module (workspace.yaml, pyproject's [tool.dagster]) and the function that builds it.
CODE_LOCATION_MODULE = "export_pipelines.definitions"
CODE_LOCATION_FUNCTION = "load_definitions"
# Asset jobs Dagster builds for scripts' materialize(); the code location's own implicit
# asset job (__ASSET_JOB: UI backfills and Materialize, `dagster asset materialize`) has their steps.
EPHEMERAL_JOB_PREFIX = "__ephemeral"
PARTITION_TAGS = (PARTITION_NAME_TAG, ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG)


def code_location_job(job_name: str) -> ReconstructableJob:
    """A job of the code location by name, as Dagster rebuilds it in each step's process: any
    of its jobs, `__ASSET_JOB` included (a job function handed to dg.reconstructable cannot be
    called that: Dagster reserves the name for a repository's own implicit asset job)."""
    if job_name.startswith(EPHEMERAL_JOB_PREFIX):
        job_name = IMPLICIT_ASSET_JOB_NAME
    repository = ReconstructableRepository.for_module(CODE_LOCATION_MODULE, CODE_LOCATION_FUNCTION)
    return repository.get_reconstructable_job(job_name)


def console_run_config(log_level: str, redirect_to_download: bool = False) -> dict:
    """Run config for a run in this process: what its console shows (the run log keeps every
    event at DEBUG whatever this says; errors without their stack traces, since describe() prints
    each failed step's cause at the end), and optionally delivery redirected to the download folder."""
    config: dict = {"loggers": {"console": {"config": {"log_level": log_level, "stack_traces": False}}}}
    if redirect_to_download:
        config["resources"] = {"delivery_settings": {"config": {"redirect_to_download": True}}}
    return config


def execute(instance: dg.DagsterInstance, job_name: str, run_config: Mapping, tags: Mapping[str, str]) -> dg.JobExecutionResult:
    """Execute a job of the code location in this process; the run is recorded in `instance`."""
    with dg.execute_job(code_location_job(job_name), instance=instance, run_config=dict(run_config), tags=dict(tags)) as result:
        return result


def reexecute(instance: dg.DagsterInstance, parent: dg.DagsterRun, console_log_level: str) -> dg.JobExecutionResult:
    """Re-execute `parent`: from its failed steps when it failed (the earlier steps' files are
    reused), else in full. The new run keeps the parent's run config (an ad-hoc request, a
    redirected delivery) and its window and export tags; Dagster needs the partition (range)
    tags of a partitioned run's re-execution."""
    failed = parent.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    options = (
        dg.ReexecutionOptions.from_failure(parent.run_id, instance) if failed else dg.ReexecutionOptions(parent_run_id=parent.run_id)
    )
    # The host is where the new run's steps will run: its first step records it.
    kept = {
        key: value
        for key, value in parent.tags.items()
        if key in PARTITION_TAGS or (key.startswith("export_pipelines/") and key != HOST_TAG)
    }
    tags = {**kept, TRIGGER_TAG: "rerun"}
    run_config = {**parent.run_config, **console_run_config(console_log_level)}
    with dg.execute_job(
        code_location_job(parent.job_name), instance=instance, reexecution_options=options, tags=tags, run_config=run_config
    ) as result:
        return result


def describe(instance: dg.DagsterInstance, result: dg.JobExecutionResult) -> Iterator[str]:
    """What a finished run delivered (rows, location, window, files per export), or each failed step's cause."""
    # A range run records one materialization per window, all with the same files: describe one.
    latest_by_asset = {event.asset_key: event.materialization for event in result.get_asset_materialization_events()}
    for asset_key, materialization in latest_by_asset.items():
        metadata = materialization.metadata
        yield f"{asset_key.to_user_string()}: {metadata['rows_written'].value} rows -> {metadata['location'].value}"
        yield f"    window: {metadata['window'].value}"
        for file_name in metadata["file_names"].value:
            yield f"    {file_name}"
    for step, cause in step_errors(instance, result.run_id):
        yield f"FAILED {step}:"
        yield from (f"    {line}" for line in cause.splitlines())
