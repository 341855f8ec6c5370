"""`export-pipelines run NAME [--from --to] [--redirect-to-download]`: one export from the shell,
recorded in DAGSTER_HOME like any run, exit status 0/1, the cause of a failure on the console."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from export_pipelines.cli import main
from export_pipelines.spec.loader import CONFIG_ENV_VAR
from export_pipelines.source import SOURCE_URL_ENV_VAR
from export_pipelines_tests.conftest import write_config
from export_pipelines_tests.sample_data import CUSTOMERS, TRANSACTIONS, create_sample_tables
from export_pipelines_tests.servers.dagster_webserver import graphql, start_webserver
from export_pipelines_tests.servers.network import free_port
from export_pipelines_tests.waiting import wait_for

CLI = str(Path(sys.executable).parent / "export-pipelines")
PARTNER = {"name": "partner_customers", "model": "customers", "fields": ["id", "email"], "order": ["id"], "file_name": "customers.csv",
           "target": {"connection": "partner", "path": "outbox"}}
PER_WINDOW = {"name": "per_day_tx", "model": "transactions", "fields": ["id"], "order": ["id"],
              "incremental": {"by": "event_date", "start": "2025-01-01", "backfill": "run_per_window"}}
DAILY = {"name": "daily_tx", "model": "transactions", "fields": ["id"],
         "incremental": {"by": "event_date", "grain": "daily", "start": "2026-03-01", "timezone": "UTC"}}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    # Nothing listens on this port: a delivery there is refused.
    connections = {"connections": {"partner": {"type": "ftp", "host": "127.0.0.1", "port": free_port(), "username": "nobody", "timeout_seconds": 3}}}
    config = write_config(tmp_path / "config", [PARTNER, DAILY, PER_WINDOW], connections=connections)
    monkeypatch.setenv(CONFIG_ENV_VAR, str(config))
    monkeypatch.setenv(SOURCE_URL_ENV_VAR, source)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300, env=os.environ.copy())


def test_a_run_from_the_shell_reports_its_cause_and_then_delivers_redirected(home):
    failed = cli("run", "partner_customers")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAILED exports__partner_customers.partner_customers__upload:" in failed.stdout
    assert "For export partner_customers, delivery to connection partner (ftp://nobody@127.0.0.1:" in failed.stdout
    assert "Connection refused" in failed.stdout
    # The console gives the cause, not Dagster's stack traces; the run's log keeps them.
    assert "Stack Trace:" not in failed.stdout + failed.stderr and 'File "' not in failed.stdout + failed.stderr
    assert "[stack trace in the run's log: export-pipelines log, or the UI]" in failed.stderr
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        [failure] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        assert "Stack Trace:" in failure.dagster_event.event_specific_data.error.to_string()

    redirected = cli("run", "partner_customers", "--redirect-to-download")
    assert redirected.returncode == 0, redirected.stdout + redirected.stderr
    folder = home / "storage" / "downloads" / "partner_customers"
    assert f"exports/partner_customers: {len(CUSTOMERS)} rows -> {folder}" in redirected.stdout
    assert "Extracted 5 rows of customers" in redirected.stderr  # progress while it runs
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([["id", "email"], *[[c["id"], c["email"] or ""] for c in sorted(CUSTOMERS, key=lambda c: c["id"])]])
    assert (folder / "customers.csv").read_bytes() == out.getvalue().encode()

    log = cli("log", "partner_customers").stdout.splitlines()
    assert "success" in log[1] and " cli " in log[1] and "customers.csv" in log[1]
    assert "failed" in log[2] and " cli " in log[2]


def test_a_range_of_a_run_per_window_export_is_one_run_and_file_per_window(home):
    result = cli("run", "per_day_tx", "--from", "2025-01-02", "--to", "2025-01-04")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("succeeded") == 3
    folder = home / "storage" / "downloads" / "per_day_tx"
    for day in (2, 3, 4):
        ids = sorted(t["id"] for t in TRANSACTIONS if t["created_at"].date() == dt.date(2025, 1, day))
        expected = "".join(f"{value}\r\n" for value in ["id", *ids]).encode()
        assert (folder / f"per_day_tx_202501{day:02d}_202501{day + 1:02d}.csv").read_bytes() == expected
    with dg.DagsterInstance.from_config(str(home)) as instance:
        windows = sorted(run.tags["export_pipelines/window"] for run in instance.get_runs())
    assert windows == [f"per_day_tx@2025-01-0{day}..2025-01-0{day}" for day in (2, 3, 4)]


def test_a_dagster_asset_materialize_run_is_logged_and_rerun_from_its_failed_upload(home):
    """Issue 15's first case: a run of __ASSET_JOB (what `dagster asset materialize` and UI backfills
    launch) failed at upload; rerun re-executes it from there instead of failing to rebuild the job."""
    downloads = home / "storage" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "daily_tx").write_text("a file where the download folder belongs")
    materialize = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "export_pipelines.definitions",
         "--select", "exports/daily_tx", "--partition-range", "2026-03-01...2026-03-03"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )
    assert materialize.returncode != 0
    log = cli("log", "daily_tx").stdout.splitlines()
    assert "failed" in log[1] and "2026-03-01 .. 2026-03-03" in log[1]
    failed_run = log[1].rsplit("run ", 1)[1]
    assert log[2].startswith("    error: exports__daily_tx.daily_tx__upload: For export daily_tx, the upload step failed:")

    (downloads / "daily_tx").unlink()
    rerun = cli("rerun", "daily_tx", "--failed-only")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"Re-executing run {failed_run} (2026-03-01 .. 2026-03-03) from the failed step" in rerun.stdout
    assert "daily_tx_20260301_20260304.csv" in rerun.stdout
    with dg.DagsterInstance.get() as instance:
        [child] = [run for run in instance.get_runs() if run.parent_run_id == failed_run]
        assert child.job_name == "__ASSET_JOB" and child.tags["export_pipelines/window"] == "daily_tx@2026-03-01..2026-03-03"
        logged = [entry.user_message for entry in instance.all_logs(child.run_id) if entry.step_key and entry.step_key.endswith("__upload")]
        assert [step.rsplit("__", 1)[1] for step in started_steps(instance, child.run_id)] == ["upload"]
    # The run log says the earlier steps' files were reused: the source was not queried again.
    assert any(message.startswith("Re-execution: using the files an earlier run of this export left in") for message in logged)
    assert (downloads / "daily_tx" / "daily_tx_20260301_20260304.csv").read_text().splitlines() == ["id"]


def started_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.step_key for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["no_such_export"], "ERROR no valid export no_such_export in"),
        (["partner_customers", "--from", "2026-03-01"], "ERROR export partner_customers is a snapshot export: it has no windows"),
        (["daily_tx", "--from", "2026-02-28"], "ERROR for export daily_tx, '2026-02-28' is not a complete window: its daily windows (UTC) run from 2026-03-01 to"),
        (["daily_tx", "--from", "2099-01-01", "--to", "2099-01-02"], "ERROR for export daily_tx, '2099-01-01' is not a complete window"),
        (["daily_tx", "--from", "2026-03-05", "--to", "2026-03-02"], "ERROR for export daily_tx, --from 2026-03-05 is after --to 2026-03-02"),
    ],
)
def test_a_window_that_does_not_exist_is_refused_before_any_run(home, capsys, arguments, message):
    assert main(["run", *arguments]) == 1
    assert capsys.readouterr().out.startswith(message)
    assert not (home / "history").exists() or not list((home / "history").glob("runs/*.db"))


def test_a_wrong_setting_is_one_line_from_every_command_that_loads_the_code_location(home, tmp_path, monkeypatch, capsys):
    """rerun (by export and by run id), demo and clone, as run and validate: a setting the code location
    refuses is one ERROR line naming the variable and exit 1, before any run or file, not a traceback."""
    ran = cli("run", "partner_customers", "--redirect-to-download")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
    commands = [["rerun", "partner_customers"], ["rerun", "--run-id", run.run_id], ["demo"], ["clone", "partner_customers", "copied"]]
    for variable, value in [("EXPORT_WORK_URL", "/tmp/work"), ("EXPORT_DOWNLOADS_STORE_URL", "s3://"), ("EXPORT_FAST_EXTRACT", "flase")]:
        monkeypatch.setenv(variable, value)
        for command in commands:
            assert main(command) == 1, (variable, command)
            said = capsys.readouterr()
            assert said.out.startswith(f"ERROR {variable}={value!r}") and len(said.out.splitlines()) == 1, (command, said.out)
            assert "Traceback" not in said.err, command
        monkeypatch.delenv(variable)
    assert not (tmp_path / "config" / "exports" / "copied.yaml").exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert [each.run_id for each in instance.get_runs()] == [run.run_id]


REEXECUTE = """
mutation Reexecute($parentRunId: String!) {
  launchPipelineReexecution(reexecutionParams: {parentRunId: $parentRunId, strategy: FROM_FAILURE}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


def test_a_command_line_run_is_re_executed_from_the_ui(tmp_path, monkeypatch):
    """Re-execute > From failure on a run `export-pipelines run` made: the run records where the
    webserver finds its job (the workspace's export_pipelines location), so the UI relaunches it."""
    source_file = tmp_path / "later.sqlite"  # not there yet: the first run's extract fails
    config = write_config(tmp_path / "config", [PARTNER | {"target": "download"}])
    environment = {CONFIG_ENV_VAR: str(config), SOURCE_URL_ENV_VAR: f"sqlite:///{source_file}"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    server = start_webserver(tmp_path, environment)
    try:
        monkeypatch.setenv("DAGSTER_HOME", str(server.home))
        failed = cli("run", "partner_customers")
        assert failed.returncode == 1 and "FAILED exports__partner_customers.partner_customers__extract" in failed.stdout, failed.stdout
        create_sample_tables(f"sqlite:///{source_file}")
        with dg.DagsterInstance.from_config(str(server.home)) as instance:
            [parent] = instance.get_runs()
            assert parent.tags["dagster/code_location"] == "export_pipelines"
            launched = graphql(server, REEXECUTE, {"parentRunId": parent.run_id})["launchPipelineReexecution"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            child = wait_for(
                lambda: (run := instance.get_run_by_id(launched["run"]["runId"])).is_finished and run, "the UI's re-execution", 120
            )
            assert child.status == dg.DagsterRunStatus.SUCCESS and child.parent_run_id == parent.run_id
            started = [e.step_key.rsplit("__", 1)[1] for e in instance.all_logs(child.run_id, of_type=dg.DagsterEventType.STEP_START)]
            assert started == ["extract", "map", "serialize", "upload"]
    finally:
        server.stop()
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([["id", "email"], *[[c["id"], c["email"] or ""] for c in sorted(CUSTOMERS, key=lambda c: c["id"])]])
    assert (server.home / "storage" / "downloads" / "partner_customers" / "customers.csv").read_bytes() == out.getvalue().encode()
