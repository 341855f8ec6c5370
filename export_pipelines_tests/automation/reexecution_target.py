"""A job Dagster can rebuild in another execution: the one export job named by the test's env vars."""

from __future__ import annotations

import os

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob

from export_pipelines.definitions import build_definitions
from export_pipelines.naming import export_job_name
from export_pipelines.spec.loader import config_dir, load_config

JOB_EXPORT_ENV_VAR = "EXPORT_PIPELINES_TEST_EXPORT"


def export_job() -> dg.JobDefinition:
    defs = build_definitions(load_config(config_dir()))
    return defs.resolve_job_def(export_job_name(os.environ[JOB_EXPORT_ENV_VAR]))


def in_process_export_job() -> dg.JobDefinition:
    """export_job with its steps in one process: the export's own job may give each step a process
    (about 2 s each here), which a re-execution does not depend on."""
    return export_job().with_executor_def(dg.in_process_executor)


def load_edited_config() -> None:
    """Make the next execution load the config as edited on disk, as the new process of
    `export-pipelines rerun` does: Dagster keeps the last reconstructed job's definition per process."""
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()
