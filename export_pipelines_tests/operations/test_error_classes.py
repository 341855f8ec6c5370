"""Errors are classified once: a permanent one (configuration, authentication, host key,
certificate, permission, unknown folder or bucket) fails the step at once with its cause; a
transient one (server down, refused connection) is retried and heals, or fails with its cause
after the last retry. The cause, never Dagster's "Exceeded max_retries", is the step's and the
run's failure message. Every case runs a real export against a real server."""

from __future__ import annotations

import csv
import ftplib
import io
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

from export_pipelines.factory import build_export_asset
from export_pipelines.retries import PERMANENT, TRANSIENT, classify
from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import export_resources, write_config
from export_pipelines_tests.sample_data import CUSTOMERS, create_sample_tables
from export_pipelines_tests.targets.test_delivery_faults import proxied_sftp
from export_pipelines_tests.targets.test_ftp import ftp_connection
from export_pipelines_tests.targets.test_s3 import s3_connection
from export_pipelines_tests.targets.test_sftp import sftp_connection

# Retries that would take minutes: a permanent error must not wait for any of them.
SLOW_RETRIES = {"max_retries": 3, "within": "2m"}
UPLOAD_STEP = "exports__classified.classified__upload"


@dataclass
class Outcome:
    result: dg.ExecuteInProcessResult
    step_error: str  # the failed step's message, as the run's page and `export-pipelines log` show it
    run_error: str  # the run's failure message: the run header in the UI
    retries: int  # STEP_UP_FOR_RETRY events of the upload step
    upload_seconds: float  # from the upload step's first start to its end


def export(folder: str, connection: dict, source: str, tmp_path: Path, retries: dict | None = SLOW_RETRIES) -> Outcome:
    spec = {
        "name": "classified", "model": "customers", "fields": ["id", "email"], "order": ["id"],
        "file_name": "customers.csv", "target": {"connection": "partner", "path": folder},
        **({"retries": retries} if retries else {}),
    }
    config = load_config(write_config(tmp_path / "config", [spec], connections={"connections": {"partner": connection}}))
    assert not config.problems, [str(p) for p in config.problems]
    asset = build_export_asset(config.plans["classified"], config.connections.connections)
    (tmp_path / "instance").mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        result = dg.materialize([asset], resources=export_resources(source), instance=instance, raise_on_error=False)
        upload = [entry for entry in instance.all_logs(result.run_id) if entry.step_key == UPLOAD_STEP and entry.dagster_event]
    types = [entry.dagster_event.event_type for entry in upload]
    step_error = run_error = ""
    if not result.success:
        [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        [run_failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
        step_error, run_error = failure.step_failure_data.error.message, run_failure.event_specific_data.error.message
    return Outcome(
        result, step_error, run_error, types.count(dg.DagsterEventType.STEP_UP_FOR_RETRY), upload[-1].timestamp - upload[0].timestamp
    )


@pytest.fixture
def source(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(url)
    return url


def assert_failed_at_once(outcome: Outcome, *causes: str) -> None:
    assert not outcome.result.success
    assert outcome.retries == 0
    assert outcome.upload_seconds < 5, outcome.upload_seconds
    for message in (outcome.step_error, outcome.run_error):
        assert "For export classified, delivery to connection partner" in message, message
        assert all(cause in message for cause in causes), message
        assert "Not retried: this does not heal by itself." in message and "export-pipelines rerun classified --failed-only" in message
        assert "max_retries" not in message


def test_missing_known_hosts_file(sshd, remote_folder, source, tmp_path):
    missing = tmp_path / "no_such_known_hosts"
    outcome = export(remote_folder[0], sftp_connection(sshd, known_hosts_path=str(missing)), source, tmp_path)
    assert_failed_at_once(outcome, f"cannot read known_hosts_path {missing}", "check its path in connections.yaml")


def test_missing_password_variable(sshd, remote_folder, source, tmp_path, monkeypatch):
    monkeypatch.delenv("CLASSIFIED_SFTP_PASSWORD", raising=False)
    connection = sftp_connection(sshd, private_key_path=None, password={"env": "CLASSIFIED_SFTP_PASSWORD"})
    outcome = export(remote_folder[0], connection, source, tmp_path)
    assert_failed_at_once(outcome, "reads password from the environment variable CLASSIFIED_SFTP_PASSWORD, which is not set")


def test_host_key_mismatch(sshd, remote_folder, source, tmp_path):
    pinned = "SHA256:" + "A" * 43
    outcome = export(remote_folder[0], sftp_connection(sshd, known_hosts_path=None, host_key_fingerprint=pinned), source, tmp_path)
    assert_failed_at_once(outcome, f"presented ssh-ed25519 {sshd.host_key_fingerprint}, not the pinned {pinned}")


def test_password_refused(sshd, remote_folder, source, tmp_path, monkeypatch):
    monkeypatch.setenv("CLASSIFIED_SFTP_PASSWORD", "not-the-password")
    connection = sftp_connection(sshd, private_key_path=None, password={"env": "CLASSIFIED_SFTP_PASSWORD"})
    outcome = export(remote_folder[0], connection, source, tmp_path)
    assert_failed_at_once(outcome, f"the server refused user {sshd.user!r} with the password from $CLASSIFIED_SFTP_PASSWORD")
    assert "not-the-password" not in outcome.step_error


def test_sftp_folder_without_permission(sshd, source, tmp_path):
    # /root is 700: the test user may not look inside, let alone create a folder there (root "/" lets the path leave home).
    outcome = export("/root/classified_outbox", sftp_connection(sshd, root="/"), source, tmp_path)
    assert_failed_at_once(outcome, "failed while preparing the folder", "Permission denied", "check the connection's username and path")


def test_ftps_certificate_not_trusted(vsftpd_tls, remote_folder, source, tmp_path, monkeypatch, test_user):
    monkeypatch.setenv("PARTNER_FTP_PASSWORD", test_user[1])
    outcome = export(remote_folder[0], ftp_connection(vsftpd_tls, "ftps"), source, tmp_path)
    assert_failed_at_once(outcome, "CERTIFICATE_VERIFY_FAILED", "set the connection's ca_file")


def test_ftp_unknown_folder_it_may_not_create(vsftpd_plain, source, tmp_path, monkeypatch, test_user):
    monkeypatch.setenv("PARTNER_FTP_PASSWORD", test_user[1])
    outcome = export("/root/classified_outbox", ftp_connection(vsftpd_plain, "ftp", root="/"), source, tmp_path)
    assert_failed_at_once(outcome, "550", "an unknown folder is answered the same way")


def test_s3_unknown_bucket(moto_endpoint, source, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPORTS_AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("EXPORTS_AWS_SECRET_ACCESS_KEY", "testing")
    outcome = export("out", s3_connection(moto_endpoint, "no-such-bucket-classified", max_attempts=1), source, tmp_path)
    assert_failed_at_once(outcome, "bucket no-such-bucket-classified does not exist (HeadBucket: 404 Not Found)", "Check the bucket and prefix: the connection's")


def delivered_ids(path: Path) -> list[int]:
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    return [int(row[0]) for row in rows[1:]]


def test_a_server_down_then_up_heals_through_retries(sshd, proxy_to, remote_folder, source, tmp_path):
    folder, path = remote_folder
    proxy = proxy_to(sshd.port)
    proxy.refuse_next(2)
    outcome = export(folder, proxied_sftp(sshd, proxy.port), source, tmp_path, retries={"max_retries": 3, "within": "3s"})
    assert outcome.result.success
    assert outcome.retries == 2
    assert delivered_ids(path / "customers.csv") == sorted(c["id"] for c in CUSTOMERS)


def test_a_server_down_throughout_fails_with_its_cause_after_the_retries(sshd, proxy_to, remote_folder, source, tmp_path):
    proxy = proxy_to(sshd.port)
    proxy.down = True
    outcome = export(remote_folder[0], proxied_sftp(sshd, proxy.port), source, tmp_path, retries={"max_retries": 2, "within": "2s"})
    assert not outcome.result.success
    assert outcome.retries == 2
    for message in (outcome.step_error, outcome.run_error):
        assert "For export classified, delivery to connection partner" in message and "failed while connecting" in message, message
        assert "This looks transient but still failed after 2 retries within 2 s" in message
        assert "max_retries" not in message


def test_an_unreachable_database_is_retried_and_a_missing_table_is_not(tmp_path):
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/test"
    empty_sqlite = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    for source, retried in ((unreachable, 1), (empty_sqlite, 0)):
        run_dir = tmp_path / ("unreachable" if retried else "empty")
        spec = {"name": "classified", "model": "customers", "fields": ["id"], "retries": {"max_retries": 1, "within": "1s"}}
        config = load_config(write_config(run_dir / "config", [spec]))
        asset = build_export_asset(config.plans["classified"], {})
        (run_dir / "instance").mkdir()
        with dg.instance_for_test(temp_dir=str(run_dir / "instance")) as instance:
            result = dg.materialize([asset], resources=export_resources(source), instance=instance, raise_on_error=False)
        assert not result.success
        assert len([e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]) == retried
        [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        message = failure.step_failure_data.error.message
        assert "For export classified, the extract step failed:" in message, message
        assert ("Connection refused" if retried else "no such table") in message


def raised(action) -> BaseException:
    try:
        action()
    except Exception as error:  # the error exactly as the library raised it
        return error
    raise AssertionError("nothing was raised")


def test_database_errors_by_sqlstate_and_sqlite_code(tmp_path, postgres_url):
    locked = tmp_path / "locked.sqlite"
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    busy = raised(lambda: sqlite3.connect(locked, timeout=0).execute("SELECT * FROM t").fetchall())
    holder.close()
    missing_table = raised(lambda: sa.create_engine(f"sqlite:///{locked}").connect().execute(sa.text("SELECT * FROM nowhere")))
    refused = raised(lambda: sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/test").connect())
    undefined = raised(lambda: sa.create_engine(postgres_url).connect().execute(sa.text("SELECT * FROM nowhere_at_all")))
    assert [classify(error).kind for error in (busy, missing_table, refused, undefined)] == [TRANSIENT, PERMANENT, TRANSIENT, PERMANENT]


def test_replies_only_a_real_s3_or_ftp_server_in_trouble_gives():
    """moto and vsftpd do not throttle or ask to come back later; the errors as botocore and ftplib raise them."""
    def s3_error(code: str, status: int) -> BaseException:
        response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return ClientError(response, "PutObject")

    assert classify(s3_error("SlowDown", 503)).kind == TRANSIENT
    assert classify(s3_error("InternalError", 500)).kind == TRANSIENT
    assert classify(s3_error("AccessDenied", 403)).kind == PERMANENT
    assert classify(ftplib.error_temp("421 Too many users, try later")).kind == TRANSIENT
    assert classify(ftplib.error_perm("553 Could not create file")).kind == PERMANENT
