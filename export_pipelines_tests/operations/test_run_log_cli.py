"""`export-pipelines log` and `rerun` against a real instance in a temp DAGSTER_HOME,
with SQLite storage and with PostgreSQL storage (dagster-postgres)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

from export_pipelines.local_runs import execute
from export_pipelines.targets.registry import downloads_folder
from export_pipelines_tests.conftest import write_config
from export_pipelines_tests.sample_data import CUSTOMERS, create_sample_tables

CLI = str(Path(sys.executable).parent / "export-pipelines")
REPO_DAGSTER_YAML = Path(__file__).parents[2] / "dagster.yaml"
SPEC = {"name": "log_customers", "model": "customers", "fields": ["id", "email"], "order": ["id"], "file_name": "customers.csv"}


@pytest.fixture(params=["sqlite", "postgresql"])
def dagster_home(request, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    settings = yaml.safe_load(REPO_DAGSTER_YAML.read_text())
    database = None
    if request.param == "postgresql":
        request.getfixturevalue("postgres_url")
        database = f"dagster_log_{uuid.uuid4().hex[:10]}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        # SQLAlchemy 2.1 maps postgresql:// to psycopg 3, whose server-side binding breaks
        # dagster-postgres's `NOTIFY run_events, %(id)s`; name psycopg2 (dagster-postgres's own driver).
        settings["storage"] = {"postgres": {"postgres_url": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("EXPORT_PIPELINES_CONFIG", str(write_config(tmp_path / "config", [SPEC])))
    monkeypatch.setenv("EXPORT_SOURCE_URL", source)
    yield home
    if database:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


def cli(*args: str) -> subprocess.CompletedProcess:
    completed = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300, env=os.environ.copy())
    return completed


def started_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.step_key.rsplit("__", 1)[1] for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)]


def test_log_and_rerun_of_a_failed_upload(dagster_home):
    with dg.DagsterInstance.get() as instance:
        blocked = downloads_folder(Path(instance.storage_directory()), "log_customers")
        blocked.parent.mkdir(parents=True)
        blocked.write_text("a file where the download folder belongs")
        first = execute(instance, "log_customers_job", {}, {})
        assert not first.success
        failed_run = first.run_id

    log = cli("log", "log_customers")
    assert log.returncode == 0, log.stderr
    [header, line, error, advice] = log.stdout.splitlines()
    assert "failed" in line and "manual" in line and "snapshot" in line and failed_run in line
    # The cause, not a retry counter: a file where the download folder belongs is not retried.
    assert error.startswith("    error: exports__log_customers.log_customers__upload: For export log_customers, the upload step failed:")
    assert error.endswith(f"File exists: '{blocked}'")
    assert advice.strip().startswith("Not retried: this does not heal by itself.")

    blocked.unlink()
    rerun = cli("rerun", "log_customers", "--failed-only")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"Re-executing run {failed_run} (snapshot) from the failed step" in rerun.stdout
    assert "succeeded" in rerun.stdout

    log = cli("log", "log_customers")
    lines = log.stdout.splitlines()[1:]
    assert "success" in lines[0] and "rerun" in lines[0] and f"{len(CUSTOMERS)} rows" in lines[0] and "customers.csv" in lines[0]
    assert "failed" in lines[1] and failed_run in lines[1]
    rerun_id = lines[0].rsplit("run ", 1)[1]
    with dg.DagsterInstance.get() as instance:
        assert started_steps(instance, rerun_id) == ["upload"]  # nothing was extracted again
    delivered = (blocked / "customers.csv").read_text().splitlines()
    assert [int(row.split(",")[0]) for row in delivered[1:]] == sorted(c["id"] for c in CUSTOMERS)

    again = cli("rerun", "log_customers", "--failed-only")
    assert again.returncode == 0 and "Nothing to rerun" in again.stdout

    purged = cli("purge-runs", "--older-than-days", "0")
    assert purged.returncode == 0 and "Deleted 2 finished run(s)" in purged.stdout
    assert "No runs of export log_customers" in cli("log", "log_customers").stdout


def test_log_of_an_export_without_runs_says_so(dagster_home):
    completed = cli("log", "log_customers")
    assert completed.returncode == 1 and "No runs of export log_customers" in completed.stdout
