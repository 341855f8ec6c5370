"""`export-pipelines run NAME [--from --to] [--redirect-to-download]`: one export from the shell,
recorded in DAGSTER_HOME like any run, exit status 0/1, the cause of a failure on the console."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from export_pipelines.cli import main
from export_pipelines.spec.loader import CONFIG_ENV_VAR
from export_pipelines.source import SOURCE_URL_ENV_VAR
from export_pipelines_tests.conftest import write_config
from export_pipelines_tests.sample_data import CUSTOMERS, create_sample_tables
from export_pipelines_tests.servers.network import free_port

CLI = str(Path(sys.executable).parent / "export-pipelines")
PARTNER = {"name": "partner_customers", "model": "customers", "fields": ["id", "email"], "order": ["id"], "file_name": "customers.csv",
           "target": {"connection": "partner", "path": "outbox"}}
DAILY = {"name": "daily_tx", "model": "transactions", "fields": ["id"],
         "incremental": {"by": "event_date", "grain": "daily", "start": "2026-03-01", "timezone": "UTC"}}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    # Nothing listens on this port: a delivery there is refused.
    connections = {"connections": {"partner": {"type": "ftp", "host": "127.0.0.1", "port": free_port(), "username": "nobody", "timeout_seconds": 3}}}
    config = write_config(tmp_path / "config", [PARTNER, DAILY], connections=connections)
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
