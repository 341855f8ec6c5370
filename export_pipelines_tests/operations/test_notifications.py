"""Failure and success mails from the run-status sensors, received by a real SMTP server."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from export_pipelines.automation.notifications import NotificationSettings, build_notification_sensors
from export_pipelines.factory import build_export_asset
from export_pipelines.naming import FAILURE_MAIL_SENSOR, SUCCESS_MAIL_SENSOR
from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import export_resources, write_config
from export_pipelines_tests.sample_data import create_sample_tables
from export_pipelines_tests.servers.network import free_port

UI = "http://dagster.example:3000"
SPEC = {
    "name": "nightly_customers",
    "model": "customers",
    "fields": ["id", "email"],
    "order": ["id"],
    "owner": "jane@example.com",
    "notify": {"on_failure": ["ops@example.com"], "on_success": ["crm-team@example.com"]},
}


def smtp_connections(server, **changes) -> dict:
    return {"connections": {"ops_mail": {"type": "smtp", "host": server.host, "port": server.port, "security": "none",
                                         "sender": "exports@example.com", "timeout_seconds": 5, **changes}}}


def run_and_notify(tmp_path: Path, source_url: str, connections: dict, spec: dict = SPEC):
    """Materialize the export on a real instance, then evaluate the mail sensors on that run."""
    config = load_config(write_config(tmp_path / "config", [spec], connections=connections))
    assert not config.problems, [str(p) for p in config.problems]
    plan = config.plans[spec["name"]]
    sensors = {s.name: s for s in build_notification_sensors(config.plans, config.connections.connections)}
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        result = dg.materialize([build_export_asset(plan)], resources=export_resources(source_url), instance=instance, raise_on_error=False)
        run = instance.get_run_by_id(result.run_id)
        if result.success:
            event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
            sensor = sensors[SUCCESS_MAIL_SENSOR]
        else:
            event = result.get_run_failure_event()
            sensor = sensors[FAILURE_MAIL_SENSOR]
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=event, dagster_instance=instance, dagster_run=run,
            resources={"notification_settings": NotificationSettings(webserver_base_url=UI)},
        )
        sensor(context.for_run_failure() if not result.success else context)
    return result


@pytest.fixture
def sqlite_source(tmp_path) -> str:
    """The mails depend on the run, not on the database: SQLite is enough here."""
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(url)
    return url


@pytest.fixture
def empty_source(tmp_path) -> str:
    """A database without the customers table: the extract step fails."""
    path = tmp_path / "empty.sqlite"
    sqlite3.connect(path).close()
    return f"sqlite:///{path}"


def test_failure_mail_names_export_window_time_step_error_and_links_the_run(tmp_path, empty_source, smtp_server):
    result = run_and_notify(tmp_path, empty_source, smtp_connections(smtp_server))
    assert not result.success
    [mail] = smtp_server.inbox.received
    assert mail.recipients == ["ops@example.com"]
    assert mail.mail_from == "exports@example.com"
    assert mail.subject == "[export_pipelines] FAILED: nightly_customers (snapshot)"
    body = mail.body
    assert "The export nightly_customers (customers to download) failed." in body
    assert "step exports__nightly_customers.nightly_customers__extract" in body
    assert "no such table: customers" in body
    assert f"{UI}/runs/{result.run_id}" in body
    assert "Started:  20" in body and "Failed:   20" in body


def test_success_mail_lists_files_rows_and_location_to_recipients_and_owner(tmp_path, sqlite_source, smtp_server):
    result = run_and_notify(tmp_path, sqlite_source, smtp_connections(smtp_server))
    assert result.success
    [mail] = smtp_server.inbox.received
    assert sorted(mail.recipients) == ["crm-team@example.com", "jane@example.com"]
    downloads = Path(tmp_path / "instance" / "storage" / "downloads" / "nightly_customers")
    [file] = list(downloads.iterdir())
    content = file.read_bytes()
    rows = len(list(csv.reader(io.StringIO(content.decode(), newline="")))) - 1
    assert f"- {file.name}: {rows} rows, {len(content)} bytes" in mail.body
    assert mail.subject == f"[export_pipelines] nightly_customers: {rows} rows delivered (snapshot)"
    assert str(downloads) in mail.body


def test_mail_server_down_leaves_the_export_green_and_warns(tmp_path, sqlite_source, capfd):
    nobody = {"connections": {"ops_mail": {"type": "smtp", "host": "127.0.0.1", "port": free_port(), "security": "none",
                                           "sender": "exports@example.com", "timeout_seconds": 2}}}
    result = run_and_notify(tmp_path, sqlite_source, nobody)  # the sensor returns instead of raising
    assert result.success
    logged = capfd.readouterr().err
    assert "WARNING" in logged and "Could not send the success mail for export nightly_customers through ops_mail" in logged


def test_starttls_with_login_verifies_the_server(tmp_path, empty_source, smtp_server_with_starttls, certificates, monkeypatch):
    monkeypatch.setenv("EXPORTS_SMTP_PASSWORD", "smtp-test-password")
    connections = smtp_connections(
        smtp_server_with_starttls, security="starttls", username="exports@example.com",
        password={"env": "EXPORTS_SMTP_PASSWORD"}, ca_file=str(certificates.ca_file),
    )
    run_and_notify(tmp_path, empty_source, connections)
    [mail] = smtp_server_with_starttls.inbox.received
    assert mail.recipients == ["ops@example.com"] and "FAILED: nightly_customers" in mail.subject


def test_notify_without_an_smtp_connection_is_a_load_error(tmp_path):
    config = load_config(write_config(tmp_path / "config", [SPEC]))
    [problem] = config.problems
    assert (problem.file, problem.key_path) == ("exports/nightly_customers.yaml", "notify")
    assert "smtp connection" in problem.message
