"""Runs the command line executes in its own process, recorded in DAGSTER_HOME like any run:
one export over a window range (`run`), a re-execution from failure (`rerun`), the demo.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping

import dagster as dg
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.execution.plan.state import KnownExecutionState
from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, PARTITION_NAME_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from export_pipelines.automation.notifications import step_errors
from export_pipelines.naming import HOST_TAG, TRIGGER_TAG

# The code location's module (workspace.yaml, pyproject's [tool.dagster]) and the function that builds it.
CODE_LOCATION_MODULE = "export_pipelines.definitions"
CODE_LOCATION_FUNCTION = "load_definitions"
# The code location's name in the webserver's workspace (workspace.yaml, deploy/workspace.yaml,
# pyproject's [tool.dagster]): the command line's runs record it, so the UI can re-execute them.
LOCATION_NAME_ENV_VAR = "EXPORT_CODE_LOCATION_NAME"
DEFAULT_LOCATION_NAME = "export_pipelines"
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


def remote_origin(job_name: str) -> RemoteJobOrigin:
    """Where the webserver finds the job: the code location named $EXPORT_CODE_LOCATION_NAME
    (default export_pipelines, as the repository's workspace files name it). A run created in
    this process with it can be re-executed from the UI (Re-execute > From failure), which looks
    the job up in its workspace by location and repository name; without one Dagster refuses."""
    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=CODE_LOCATION_MODULE, working_directory=os.getcwd()),
        os.environ.get(LOCATION_NAME_ENV_VAR) or DEFAULT_LOCATION_NAME,
    )
    return RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME).get_job_origin(job_name)


def console_run_config(log_level: str, redirect_to_download: bool = False) -> dict:
    """Run config for a run in this process: what its console shows (the run log keeps every
    event at DEBUG whatever this says; errors without their stack traces, since describe() prints
    each failed step's cause at the end), and optionally delivery redirected to the download folder."""
    config: dict = {"loggers": {"console": {"config": {"log_level": log_level, "stack_traces": False}}}}
    if redirect_to_download:
        config["resources"] = {"delivery_settings": {"config": {"redirect_to_download": True}}}
    return config


def execute(instance: dg.DagsterInstance, job_name: str, run_config: Mapping, tags: Mapping[str, str]) -> dg.JobExecutionResult:
    """Execute a job of the code location in this process; the run is recorded in `instance` with
    its origin in the webserver's workspace (remote_origin), as dg.execute_job would record it but for that."""
    job = code_location_job(job_name)
    run = instance.create_run_for_job(
        job_def=job.get_definition(),
        run_config=dict(run_config),
        tags=dict(tags),
        job_code_origin=job.get_python_origin(),
        remote_job_origin=remote_origin(job_name),
    )
    _ensure_pools(instance, job, run)
    with execute_run(job, run, instance) as result:
        return result


def reexecute(instance: dg.DagsterInstance, parent: dg.DagsterRun, console_log_level: str) -> dg.JobExecutionResult:
    """Re-execute `parent`: from its failed steps when it failed (the earlier steps' files are
    reused), else in full. The new run keeps the parent's run config (an ad-hoc request, a
    redirected delivery) and its window and export tags; Dagster needs the partition (range)
    tags of a partitioned run's re-execution."""
    failed = parent.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    # The host is where the new run's steps will run: its first step records it.
    kept = {
        key: value
        for key, value in parent.tags.items()
        if key in PARTITION_TAGS or (key.startswith("export_pipelines/") and key != HOST_TAG)
    }
    tags = {**kept, TRIGGER_TAG: "rerun"}
    run_config = {**parent.run_config, **console_run_config(console_log_level)}
    job = code_location_job(parent.job_name)
    # As dg.execute_job(reexecution_options=...) plans it (dagster._core.execution.api._reexecute_job),
    # the run recorded with its origin in the webserver's workspace.
    plan = None
    if failed:
        step_keys, known_state = KnownExecutionState.build_resume_retry_reexecution(instance=instance, parent_run=parent)
        plan = create_execution_plan(job, run_config, step_keys_to_execute=step_keys, known_state=known_state, tags=parent.tags)
    if parent.asset_selection:
        job = job.get_subset(op_selection=None, asset_selection=parent.asset_selection)
    run = instance.create_run_for_job(
        job_def=job.get_definition(),
        execution_plan=plan,
        run_config=run_config,
        tags=tags,
        op_selection=parent.op_selection,
        asset_selection=parent.asset_selection,
        resolved_op_selection=parent.resolved_op_selection,
        root_run_id=parent.root_run_id or parent.run_id,
        parent_run_id=parent.run_id,
        job_code_origin=job.get_python_origin(),
        remote_job_origin=remote_origin(parent.job_name),
    )
    _ensure_pools(instance, job, run)
    with execute_run(job, run, instance) as result:
        return result


def _ensure_pools(instance: dg.DagsterInstance, job: ReconstructableJob, run: dg.DagsterRun) -> None:
    """Create the pools of the exports `run` delivers before it starts (run_coordinator.ensure_export_pools)."""
    from export_pipelines.naming import export_names_of_assets
    from export_pipelines.run_coordinator import ensure_export_pools, exports_of_run

    exports = exports_of_run(run) or export_names_of_assets(job.get_definition().asset_layer.selected_asset_keys)
    ensure_export_pools(instance, exports)


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
