"""The upload step inside a real Dagster run: a failure names the export and connection in the
run's failure event and delivers nothing; the next run delivers the expected rows, and sweeps
only the temporaries of runs its instance knows to be over."""

from __future__ import annotations

import csv
import io
import uuid

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from export_pipelines.factory import build_export_asset
from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import export_resources, run_export, write_config
from export_pipelines_tests.sample_data import create_sample_tables
from export_pipelines_tests.servers.system_user import owned_folder
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


def test_the_upload_step_sweeps_only_temporaries_of_runs_over_in_its_instance(sshd, proxy_to, remote_folder, tmp_path):
    """The step names its run by context.run_id and asks context.instance about the others: a failed
    run's temporary and one of an earlier attempt of this run go; a running run's and another export's stay."""
    folder, path = remote_folder
    spec = {**SPEC, "target": {**SPEC["target"], "path": folder}}
    proxy = proxy_to(sshd.port)
    connections = {"connections": {"partner": proxied_sftp(sshd, proxy.port)}}
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    proxy.down = True
    failed = run_export(spec, source, tmp_path, connections=connections, raise_on_error=False)  # a real failed run
    proxy.restore()
    assert not failed.result.success

    this_run, running = str(uuid.uuid4()), str(uuid.uuid4())
    owned_folder(path.parent, path.name)
    temporaries = {
        "failed run": f".partner_customers.{failed.result.run_id}.customers.csv.part",
        "earlier attempt of this run": f".partner_customers.{this_run}.customers.csv.part",
        "running run": f".partner_customers.{running}.customers.csv.part",
        "another export": f".partner_orders.{failed.result.run_id}.orders.csv.part",
    }
    for name in temporaries.values():
        (path / name).write_bytes(b"half")

    config = load_config(write_config(tmp_path / "config", [spec], connections=connections))
    asset = build_export_asset(config.plans[spec["name"]], config.connections.connections)
    job = dg.Definitions(assets=[asset], resources=export_resources(source)).resolve_implicit_global_asset_job_def()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:  # the instance the failed run is in
        assert instance.get_run_by_id(failed.result.run_id).status == dg.DagsterRunStatus.FAILURE
        instance.add_run(dg.DagsterRun(job_name=job.name, run_id=running, status=dg.DagsterRunStatus.STARTED))
        result = job.execute_in_process(instance=instance, run_id=this_run)
    [materialization] = result.get_asset_materialization_events()
    swept = materialization.materialization.metadata["swept_temporary_files"].value
    assert sorted(swept) == sorted([temporaries["failed run"], temporaries["earlier attempt of this run"]])
    assert sorted(p.name for p in path.iterdir()) == sorted(["customers.csv", temporaries["running run"], temporaries["another export"]])
