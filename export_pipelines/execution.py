"""Which of Dagster's executors runs the export jobs' steps, chosen by the deployment.

By default an export's steps run one after the other in the run's own process, except a
fanned-out export's (`parallel`), whose chunk steps each get a process of their own so they
run side by side, however the run was launched (its job, or the UI's Materialize and
backfills, which run __ASSET_JOB); the all_exports job gives each step a process of its own,
so exports run side by side. With
EXPORT_EXECUTOR=celery every step is a task on dagster-celery's queue, run by whichever
Celery worker takes it (`dagster-celery worker start`, docs/scale-out.md): the workers read
the broker and the result backend from the same variables as the run, so neither URL (which
may hold a password) is written into the definitions. Steps on several machines need the
run's files where all of them read: EXPORT_WORK_URL (stages/work_location.py) puts the stage
files and the records the steps hand each other (Dagster's IO manager) in an object store.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob  # what Dagster's own multiprocess requirement checks

from export_pipelines.naming import shared_op_name
from export_pipelines.stages.work_location import bucket_and_key, work_root_from_environment

EXECUTOR_ENV_VAR = "EXPORT_EXECUTOR"
BROKER_ENV_VAR = "EXPORT_CELERY_BROKER_URL"
BACKEND_ENV_VAR = "EXPORT_CELERY_BACKEND_URL"
CHOICES = ("in_process", "celery", "k8s")


def executor_choice() -> str:
    """$EXPORT_EXECUTOR: `in_process` (unset or empty), `celery` or `k8s`.

    Raises ValueError for any other value, and for `celery` without the broker and backend
    variables, naming what to set.
    """
    choice = os.environ.get(EXECUTOR_ENV_VAR, "").strip().lower() or "in_process"
    if choice not in CHOICES:
        raise ValueError(f"{EXECUTOR_ENV_VAR}={choice!r}: write in_process (the default), celery or k8s")
    if choice == "celery":
        missing = [name for name in (BROKER_ENV_VAR, BACKEND_ENV_VAR) if not os.environ.get(name)]
        if missing:
            raise ValueError(
                f"{EXECUTOR_ENV_VAR}=celery needs {' and '.join(missing)} (e.g. redis://127.0.0.1:6379/0), "
                "the same the Celery workers were started with"
            )
        from export_pipelines.celery_watch import lost_after_seconds

        lost_after_seconds()  # a wrong value fails the load, naming the variable
    if choice == "k8s":
        try:
            import dagster_k8s  # noqa: F401
        except ImportError as error:
            raise ValueError(f"{EXECUTOR_ENV_VAR}=k8s needs dagster-k8s: pip install 'export_pipelines[k8s]'") from error
    return choice


def _celery_executor() -> dg.ExecutorDefinition:
    # Imported only when chosen: the default deployment does not need Celery installed.
    from export_pipelines.celery_watch import watched_celery_executor

    return watched_celery_executor.configured(
        # Resolved where the run executes (StringSource), so the URLs never enter the run's config.
        # task_track_started: a started step's result names its worker (celery_watch), as in deploy/celery.yaml.
        {"broker": {"env": BROKER_ENV_VAR}, "backend": {"env": BACKEND_ENV_VAR}, "config_source": {"task_track_started": True}},
        name="celery",
    )


def _k8s_executor() -> dg.ExecutorDefinition:
    # dagster-k8s's own: each step a Kubernetes Job in the run's image, with the K8sRunLauncher's
    # env_secrets and env_config_maps (docs/kubernetes.md), the launcher it is meant for.
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor


def _chosen_or(default: dg.ExecutorDefinition) -> dg.ExecutorDefinition:
    """The deployment's executor ($EXPORT_EXECUTOR), else `default`."""
    choice = executor_choice()
    if choice == "celery":
        return _celery_executor()
    return _k8s_executor() if choice == "k8s" else default


FAN_OUT_STEP = "plan_chunks"


def _fans_out(job: dg.JobDefinition) -> bool:
    """Whether the run's steps include a fanned-out export's (fan_out.py's plan_chunks op, shared by every such export)."""
    return any(definition.name == shared_op_name(FAN_OUT_STEP) for definition in job.all_node_defs)


@dg.executor(name="in_process_unless_fanned_out", config_schema=dg.multiprocess_executor.config_schema.as_field())
def in_process_unless_fanned_out(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Dagster's in-process executor, or its multiprocess executor (same config) when the run's steps fan out.

    An export's stages run one after the other and hand each other files: a process per step
    would only add about 2 s each. A fanned-out export's chunk steps are meant to run side by
    side, which only processes give, also when the UI's Materialize or a backfill launched the
    run (__ASSET_JOB takes the Definitions' executor, not the export job's). A job that cannot be
    rebuilt in another process (dg.materialize in scripts) or an ephemeral instance stays in process.
    """
    job = init_context.job
    separate_processes = (
        _fans_out(job.get_definition()) and isinstance(job, ReconstructableJob) and not init_context.instance.is_ephemeral
    )
    chosen = dg.multiprocess_executor if separate_processes else dg.in_process_executor
    return chosen.executor_creation_fn(init_context)


def export_executor() -> dg.ExecutorDefinition:
    """The executor of one export's runs: its job's, and those UI backfills and Materialize launch (__ASSET_JOB)."""
    return _chosen_or(in_process_unless_fanned_out)


def exports_executor() -> dg.ExecutorDefinition:
    """The executor of runs over several exports (all_exports): their steps run side by side."""
    return _chosen_or(dg.multiprocess_executor)


def io_manager_resources() -> dict[str, dg.ConfigurableIOManager]:
    """The IO manager of the records ops hand each other (StageFile, FileSet): with EXPORT_WORK_URL,
    dagster-aws's S3 pickle IO manager under its prefix, so a step on any worker reads the last
    step's record; otherwise Dagster's default (files in the instance's storage folder).
    Raises ValueError for a wrong EXPORT_WORK_URL, naming the variable."""
    root = work_root_from_environment()
    if root is None:
        return {}
    from dagster_aws.s3 import S3PickleIOManager, S3Resource

    bucket, prefix = bucket_and_key(root)
    # S3Resource's client (boto3) reads the endpoint, region and credentials from the AWS variables.
    return {"io_manager": S3PickleIOManager(s3_resource=S3Resource(), s3_bucket=bucket, s3_prefix=f"{prefix}/io".lstrip("/"))}
