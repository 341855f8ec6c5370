"""A job Dagster can rebuild in another execution: the one export job named by the test's env vars."""

from __future__ import annotations

import os

import dagster as dg

from export_pipelines.definitions import build_definitions
from export_pipelines.naming import export_job_name
from export_pipelines.spec.loader import config_dir, load_config

JOB_EXPORT_ENV_VAR = "EXPORT_PIPELINES_TEST_EXPORT"


def export_job() -> dg.JobDefinition:
    defs = build_definitions(load_config(config_dir()))
    return defs.resolve_job_def(export_job_name(os.environ[JOB_EXPORT_ENV_VAR]))
