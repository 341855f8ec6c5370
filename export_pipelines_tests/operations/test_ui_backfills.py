"""Every launch path is a first-class export run, through a real dagster-webserver and
dagster-daemon with the repository's dagster.yaml (queued run coordinator, pools):

- two UI backfills of the same window, a third of another window and an `export-pipelines run`
  never write at once: the test holds a lock on the source table until all four runs wait
  for it, so their uploads (each held 2 s by a slow proxy) would overlap without the pool;
- backfill and Materialize runs of `__ASSET_JOB` carry the export tags;
- a backfill that fails at upload shows its cause in the run and in `export-pipelines log`,
  and `export-pipelines rerun --failed-only` re-executes it from the upload, delivering the
  window's exact bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from export_pipelines.catalog.models import load_builtin_catalog
from export_pipelines.catalog.sql_types import model_table
from export_pipelines.factory import ROWS_CHECK
from export_pipelines_tests.conftest import require_service, write_config
from export_pipelines_tests.sample_data import create_sample_tables, utc
from export_pipelines_tests.servers.dagster_webserver import (
    launch_backfill,
    materialize,
    start_daemon,
    start_webserver,
    webserver_executable,
)
from export_pipelines_tests.targets.test_delivery_faults import proxied_sftp

CLI = str(Path(sys.executable).parent / "export-pipelines")
REPO_DAGSTER_YAML = Path(__file__).parents[2] / "dagster.yaml"

def instance_yaml(**run_monitoring) -> str:
    """The repository's dagster.yaml, its queue looking for runs every second instead of every
    five (the test waits less), with `run_monitoring` settings changed."""
    settings = yaml.safe_load(REPO_DAGSTER_YAML.read_text())
    settings["run_coordinator"]["config"] = {"dequeue_interval_seconds": 1}
    settings["run_monitoring"] |= run_monitoring
    return yaml.safe_dump(settings)


HOLD_SECONDS = 2
EXPORT = "tx_backfill"
WINDOW = ("2026-03-02", "2026-03-04")
FAILING_WINDOW = ("2026-03-05", "2026-03-05")
# (id, created_at): two transactions a day, 2026-03-01 .. 2026-03-06 UTC, and one on each window edge.
ROWS = [(1000 + i, utc(2026, 3, 1 + i // 2, 10 if i % 2 == 0 else 23, 59, 59)) for i in range(12)] + [
    (2000, utc(2026, 3, 2, 0, 0, 0)),
    (2001, utc(2026, 3, 5, 0, 0, 0)),
]
SPECS = [
    {
        "name": EXPORT, "model": "transactions", "fields": ["id", "number", "created_at"], "order": ["id"],
        "incremental": {"by": "event_date", "grain": "daily", "start": "2026-03-01", "timezone": "UTC"},
        "retries": {"max_retries": 1, "within": "1s"},
    },
    {"name": "customers_snapshot", "model": "customers", "fields": ["id", "email"], "order": ["id"], "target": "download"},
    {
        "name": "tx_per_window", "model": "transactions", "fields": ["id", "number", "created_at"], "order": ["id"],
        "incremental": {"by": "event_date", "grain": "daily", "start": "2026-03-01", "timezone": "UTC", "backfill": "run_per_window"},
    },
]


def expected_bytes(first: str, last: str) -> bytes:
    """The window's file by hand: RFC 4180 CSV (CRLF) of the rows created in [first, last + 1 day)."""
    start = dt.datetime.fromisoformat(first).replace(tzinfo=dt.UTC)
    end = dt.datetime.fromisoformat(last).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["id", "number", "created_at"])
    for id_, created in sorted(ROWS):
        if start <= created < end:
            writer.writerow([id_, f"T{id_}", created.strftime("%Y-%m-%dT%H:%M:%SZ")])
    return out.getvalue().encode()


def file_name(first: str, last: str) -> str:
    end = dt.date.fromisoformat(last) + dt.timedelta(days=1)
    return f"{EXPORT}_{first.replace('-', '')}_{end:%Y%m%d}.csv"


@pytest.fixture
def source(postgres_schema_url) -> str:
    url = postgres_schema_url
    create_sample_tables(url)
    table = model_table(load_builtin_catalog().get("transactions"), sa.MetaData())
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": i, "number": f"T{i}", "amount": 10, "created_at": at, "updated_at": at} for i, at in ROWS])
    engine.dispose()
    return url


@pytest.fixture
def deployment(tmp_path, source, sshd, proxy_to, remote_folder, test_user):
    """The webserver over the config, the daemon started by the test, the SFTP folder behind a slow proxy."""
    if webserver_executable() is None:
        require_service("dagster-webserver is not installed")
    folder, path = remote_folder
    # A folder where the failing window's file must go: its upload fails until the folder is gone.
    (path / file_name(*FAILING_WINDOW)).mkdir(parents=True)
    for owned in (path, path / file_name(*FAILING_WINDOW)):
        shutil.chown(owned, test_user[0])
    proxy = proxy_to(sshd.port)
    proxy.hold(HOLD_SECONDS)
    spec = {**SPECS[0], "target": {"connection": "partner", "path": folder}}
    connections = {"connections": {"partner": proxied_sftp(sshd, proxy.port)}}
    config = write_config(tmp_path / "config", [spec, *SPECS[1:]], connections=connections)
    environment = {"EXPORT_PIPELINES_CONFIG": str(config), "EXPORT_SOURCE_URL": source}
    server = start_webserver(tmp_path, environment, instance_yaml=instance_yaml())
    daemons = []
    yield server, environment, path, lambda: daemons.append(start_daemon(server.home, tmp_path, environment))
    for daemon in daemons:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)
    server.stop()


def cli(environment: dict, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **environment, "DAGSTER_HOME": str(home)}
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300)


def upload_attempts(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, float]]:
    """(start, end) of each attempt of the run's upload step, from its event log."""
    attempts, started = [], None
    for entry in instance.all_logs(run_id):
        if not (entry.step_key or "").endswith("__upload") or entry.dagster_event is None:
            continue
        kind = entry.dagster_event.event_type
        if kind in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_RESTARTED):
            started = entry.timestamp
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_UP_FOR_RETRY):
            attempts.append((started, entry.timestamp))
    return attempts


def hold_source_table(url: str) -> sa.Connection:
    """An open transaction holding the transactions table exclusively: every extract waits for it."""
    connection = sa.create_engine(url).connect()
    connection.execute(sa.text("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE"))
    return connection


def wait_for_waiting_sessions(url: str, count: int, seconds: float = 240) -> None:
    """Until `count` sessions wait for the table lock: that many runs are in their extract step."""
    engine = sa.create_engine(url)
    query = sa.text("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND relation = 'transactions'::regclass")
    deadline = time.monotonic() + seconds
    with engine.connect() as connection:
        while (waiting := connection.execute(query).scalar()) < count:
            assert time.monotonic() < deadline, f"only {waiting} of {count} runs reached their extract"
            time.sleep(0.5)
    engine.dispose()


def wait_for_finished_runs(instance: dg.DagsterInstance, count: int, seconds: float = 300) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        if len(runs) >= count and all(run.is_finished for run in runs):
            return runs
        time.sleep(1)
    raise AssertionError(f"runs did not finish: {[(run.job_name, run.status) for run in instance.get_runs()]}")


def test_ui_backfills_cli_runs_and_reruns_are_equal_export_runs(deployment, source):
    server, environment, remote, start_the_daemon = deployment
    lock = hold_source_table(source)
    first = launch_backfill(server, ["exports", EXPORT], *WINDOW)
    second = launch_backfill(server, ["exports", EXPORT], *WINDOW)
    failing = launch_backfill(server, ["exports", EXPORT], *FAILING_WINDOW)
    snapshot_run = materialize(server, ["exports", "customers_snapshot"], checks=[ROWS_CHECK])
    per_window = launch_backfill(server, ["exports", "tx_per_window"], *WINDOW)
    start_the_daemon()
    # The same window from the shell, in its own process, alongside the backfills.
    env = {**os.environ, **environment, "DAGSTER_HOME": str(server.home)}
    shell = subprocess.Popen(
        [CLI, "run", EXPORT, "--from", WINDOW[0], "--to", WINDOW[1]], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    wait_for_waiting_sessions(source, count=4)
    lock.rollback()  # all four extracts go at once, so all four uploads come together
    lock.close()
    output = shell.communicate(timeout=300)[0]
    assert shell.returncode == 0, output
    assert f"exports/{EXPORT}: 7 rows -> sftp://" in output and file_name(*WINDOW) in output

    with dg.DagsterInstance.from_config(str(server.home)) as instance:
        runs = wait_for_finished_runs(instance, count=8)
        by_backfill = {run.tags.get("dagster/backfill"): run for run in runs}
        window_runs = [by_backfill[first], by_backfill[second], *(run for run in runs if run.tags.get("export_pipelines/trigger") == "cli")]
        assert [run.status for run in window_runs] == [dg.DagsterRunStatus.SUCCESS] * 3
        assert {run.job_name for run in window_runs[:2]} == {"__ASSET_JOB"}

        # One writer at a time: no two upload attempts of the export overlap, whatever launched them.
        attempts = sorted(attempt for run in [*window_runs, by_backfill[failing]] for attempt in upload_attempts(instance, run.run_id))
        assert len(attempts) == 5  # three successes, the failing window's first try and its retry
        assert all(earlier[1] <= later[0] for earlier, later in zip(attempts, attempts[1:])), attempts
        assert all(end - start >= HOLD_SECONDS for start, end in attempts)

        # Backfill, Materialize and CLI runs carry the export's tags.
        for run in window_runs:
            tags = instance.get_run_by_id(run.run_id).tags
            assert tags["export_pipelines/export"] == EXPORT and tags["export_pipelines/model"] == "transactions"
            assert tags["export_pipelines/window"] == f"{EXPORT}@{WINDOW[0]}..{WINDOW[1]}"
        # run_per_window: the range is three runs, one window and one file each, delivering in turn.
        window_by_window = sorted(
            (instance.get_run_by_id(run.run_id) for run in runs if run.tags.get("dagster/backfill") == per_window),
            key=lambda run: run.tags["export_pipelines/window"],
        )
        assert [run.tags["export_pipelines/window"] for run in window_by_window] == [
            f"tx_per_window@{day}..{day}" for day in ("2026-03-02", "2026-03-03", "2026-03-04")
        ]
        assert [run.status for run in window_by_window] == [dg.DagsterRunStatus.SUCCESS] * 3
        turns = sorted(attempt for run in window_by_window for attempt in upload_attempts(instance, run.run_id))
        assert all(earlier[1] <= later[0] for earlier, later in zip(turns, turns[1:])), turns
        downloads = Path(instance.storage_directory()) / "downloads" / "tx_per_window"
        for day in ("2026-03-02", "2026-03-03", "2026-03-04"):
            end = dt.date.fromisoformat(day) + dt.timedelta(days=1)
            delivered = (downloads / f"tx_per_window_{day.replace('-', '')}_{end:%Y%m%d}.csv").read_bytes()
            assert delivered == expected_bytes(day, day)

        snapshot = instance.get_run_by_id(snapshot_run)
        assert snapshot.status == dg.DagsterRunStatus.SUCCESS and snapshot.job_name == "__ASSET_JOB"
        assert snapshot.tags["export_pipelines/export"] == "customers_snapshot"
        assert snapshot.tags["export_pipelines/window"] == "customers_snapshot"

        failed = by_backfill[failing]
        assert failed.status == dg.DagsterRunStatus.FAILURE
        [run_failure] = instance.all_logs(failed.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        run_message = run_failure.dagster_event.event_specific_data.error.message
        assert f"For export {EXPORT}, delivery to connection partner" in run_message
        assert f"uploading {file_name(*FAILING_WINDOW)}; no file was written under that name" in run_message
        assert "still failed after 1 retries" in run_message and "max_retries" not in run_message

    assert (remote / file_name(*WINDOW)).read_bytes() == expected_bytes(*WINDOW)

    log = cli(environment, server.home, "log", EXPORT)
    assert log.returncode == 0, log.stderr
    lines = log.stdout.splitlines()
    failed_line = next(index for index, line in enumerate(lines) if failed.run_id in line)
    assert "failed" in lines[failed_line] and "backfill" in lines[failed_line] and "2026-03-05" in lines[failed_line]
    assert f"uploading {file_name(*FAILING_WINDOW)}" in lines[failed_line + 1]
    assert sum(" backfill " in line and "success" in line for line in lines) == 2

    (remote / file_name(*FAILING_WINDOW)).rmdir()
    rerun = cli(environment, server.home, "rerun", EXPORT, "--failed-only")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"Re-executing run {failed.run_id} (2026-03-05) from the failed step" in rerun.stdout
    assert (remote / file_name(*FAILING_WINDOW)).read_bytes() == expected_bytes(*FAILING_WINDOW)
    with dg.DagsterInstance.from_config(str(server.home)) as instance:
        [child] = [run for run in instance.get_runs() if run.parent_run_id == failed.run_id]
        assert child.status == dg.DagsterRunStatus.SUCCESS
        started = [e.step_key.rsplit("__", 1)[1] for e in instance.all_logs(child.run_id, of_type=dg.DagsterEventType.STEP_START)]
        assert started == ["upload"]  # the earlier steps' files were reused: the source was not queried again
        assert child.tags["export_pipelines/window"] == f"{EXPORT}@2026-03-05..2026-03-05"
        assert child.tags["export_pipelines/trigger"] == "rerun"
