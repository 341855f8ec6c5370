"""The production profile (deploy/): a PostgreSQL instance with queued runs and the repository's
limits, and the Celery executor chosen by EXPORT_EXECUTOR while the default stays in-process."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from export_pipelines.definitions import build_definitions
from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import write_config

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = {"name": "profile_customers", "model": "customers", "fields": ["id", "email"]}
CELERY_URLS = {"EXPORT_CELERY_BROKER_URL": "redis://127.0.0.1:6379/9", "EXPORT_CELERY_BACKEND_URL": "redis://127.0.0.1:6379/9"}


def test_the_deploy_instance_stores_in_postgresql_queues_runs_and_keeps_the_repository_limits(postgres_database_url, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_database_url)
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)  # ExportRunCoordinator: Dagster's queue, tagging
        assert type(instance.run_launcher).__name__ == "ExportRunLauncher"
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 10
        # One writer per export: a pool nobody configured has one slot, as in the repository's file.
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1

    repository = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    deploy = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    for block in ("concurrency", "run_retries", "retention"):
        assert deploy[block] == repository[block], block
    assert deploy["run_monitoring"].items() >= repository["run_monitoring"].items()


def _executors(defs: dg.Definitions) -> dict[str, str]:
    return {name: defs.resolve_job_def(name).executor_def.name for name in ("profile_customers_job", "all_exports", "__ASSET_JOB")}


def test_export_jobs_run_in_process_unless_the_deployment_chooses_celery(tmp_path, monkeypatch):
    config = load_config(write_config(tmp_path, [SPEC]))
    monkeypatch.delenv("EXPORT_EXECUTOR", raising=False)
    assert _executors(build_definitions(config)) == {
        # In process, except a run whose steps fan out (test_fan_out.py runs one).
        "profile_customers_job": "in_process_unless_fanned_out",
        "all_exports": "multiprocess",
        "__ASSET_JOB": "in_process_unless_fanned_out",
    }

    monkeypatch.setenv("EXPORT_EXECUTOR", "celery")
    for name, value in CELERY_URLS.items():
        monkeypatch.setenv(name, value)
    assert _executors(build_definitions(config)) == {"profile_customers_job": "celery", "all_exports": "celery", "__ASSET_JOB": "celery"}

    # Kubernetes (docs/kubernetes.md): dagster-k8s's own executor, each step a Kubernetes Job.
    from dagster_k8s import k8s_job_executor

    monkeypatch.setenv("EXPORT_EXECUTOR", "k8s")
    defs = build_definitions(config)
    assert {name: defs.resolve_job_def(name).executor_def is k8s_job_executor for name in ("profile_customers_job", "all_exports", "__ASSET_JOB")} == dict.fromkeys(
        ("profile_customers_job", "all_exports", "__ASSET_JOB"), True
    )


@pytest.mark.parametrize(
    ("value", "unset", "lost_after", "message"),
    [
        ("kubernetes", [], "", "EXPORT_EXECUTOR='kubernetes': write in_process (the default), celery or k8s"),
        ("celery", ["EXPORT_CELERY_BROKER_URL"], "", "EXPORT_EXECUTOR=celery needs EXPORT_CELERY_BROKER_URL (e.g. redis://"),
        ("celery", [], "2min", "EXPORT_CELERY_WORKER_LOST_SECONDS='2min': write a number of seconds above 0 (default 120)"),
        ("celery", [], "0", "EXPORT_CELERY_WORKER_LOST_SECONDS='0': write a number of seconds above 0"),
    ],
)
def test_a_wrong_executor_setting_fails_the_load_naming_the_variable(tmp_path, monkeypatch, value, unset, lost_after, message):
    for name, url in CELERY_URLS.items():
        monkeypatch.setenv(name, url)
    monkeypatch.setenv("EXPORT_CELERY_WORKER_LOST_SECONDS", lost_after)
    for name in unset:
        monkeypatch.delenv(name)
    monkeypatch.setenv("EXPORT_EXECUTOR", value)
    with pytest.raises(ValueError) as raised:
        build_definitions(load_config(write_config(tmp_path, [SPEC])))
    assert str(raised.value).startswith(message)
