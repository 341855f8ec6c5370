"""The upload step inside a real Dagster run: a failure names the export and connection in the
run's failure event and delivers nothing; the next run delivers the expected rows."""

from __future__ import annotations

import csv
import io

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from export_pipelines_tests.conftest import run_export
from export_pipelines_tests.targets.test_delivery_faults import proxied_sftp

SPEC = {
    "name": "partner_customers",
    "model": "customers",
    "fields": ["id", "email", "country"],
    "order": ["id"],
    "file_name": "customers.csv",
    "target": {"connection": "partner", "path": "OUTBOX"},
}


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        event.step_failure_data.error.message
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.STEP_FAILURE
    ]


def test_upload_failure_then_success_through_dagster(sshd, proxy_to, remote_folder, tmp_path, sample_source_url):
    folder, path = remote_folder
    proxy = proxy_to(sshd.port)
    spec = {**SPEC, "target": {**SPEC["target"], "path": folder}}
    connections = {"connections": {"partner": proxied_sftp(sshd, proxy.port)}}

    proxy.down = True
    failed = run_export(spec, sample_source_url, tmp_path / "first", connections=connections, raise_on_error=False)
    assert not failed.result.success
    [message] = failure_messages(failed.result)
    assert "For export partner_customers, delivery to connection partner" in message
    assert "failed while connecting" in message
    assert not (path / "customers.csv").exists()
    assert [e.step_key for e in failed.result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE] == [
        "exports__partner_customers.partner_customers__upload"
    ]

    proxy.restore()
    delivered = run_export(spec, sample_source_url, tmp_path / "second", connections=connections)
    rows = list(csv.reader(io.StringIO((path / "customers.csv").read_text(), newline="")))
    expected = pd.read_sql_query("SELECT id, email, address_country FROM customers ORDER BY id", sa.create_engine(sample_source_url))
    assert rows[0] == ["id", "email", "country"]
    assert [row[0] for row in rows[1:]] == [str(i) for i in expected["id"]]
    text = expected.astype(object).where(expected.notna(), "")  # NULL is written as an empty cell
    assert [row[1:] for row in rows[1:]] == [[str(e), str(c)] for e, c in zip(text["email"], text["address_country"], strict=True)]
    assert delivered.metadata["connection"] == "partner"
    assert delivered.metadata["location"].startswith(f"sftp://{sshd.user}@127.0.0.1:{proxy.port}/{folder}")
    assert [r.data["verified_by"] for r in delivered.metadata["files"].records] == ["size"]
