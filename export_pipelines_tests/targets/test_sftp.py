"""SFTP delivery against a real OpenSSH sshd: auth, host keys, overwrite, sweep, retention, manifest."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import time
import uuid

import pytest

from export_pipelines.retries import classify
from export_pipelines.spec.loader import load_config
from export_pipelines.targets.base import DeliveryError
from export_pipelines.targets.registry import target_for
from export_pipelines.targets.sftp import SftpSession
from export_pipelines_tests.conftest import write_config
from export_pipelines_tests.servers.network import HOST
from export_pipelines_tests.targets.delivery_helpers import age_files, RUN_TIME, Log, export_file_name, local_file, make_target, no_run_known


def sftp_connection(sshd, **changes) -> dict:
    connection = {
        "type": "sftp",
        "host": sshd.host,
        "port": sshd.port,
        "username": sshd.user,
        "private_key_path": str(sshd.ed25519_key),
        "known_hosts_path": str(sshd.known_hosts),
        "timeout_seconds": 10,
    }
    connection.update(changes)
    return {key: value for key, value in connection.items() if value is not None}


def test_key_auth_delivers_exact_bytes_under_the_final_name_only(sshd, remote_folder, tmp_path):
    folder, path = remote_folder
    content = b"id,email\r\n1,ada@example.com\r\n2,\"Grace, Hopper\"\r\n"
    file = local_file(tmp_path, "probe_20261123T020000Z.csv", content, rows=2)
    log = Log()
    delivery = make_target(sftp_connection(sshd), folder).deliver([file], log)
    assert (path / file.name).read_bytes() == content
    assert sorted(p.name for p in path.iterdir()) == [file.name]  # no temporary left behind
    [delivered] = delivery.files
    assert delivered.location == f"sftp://{sshd.user}@{HOST}:{sshd.port}/{folder}/{file.name}"
    assert delivered.sha256 == hashlib.sha256(content).hexdigest()
    assert (delivered.bytes, delivered.rows, delivered.verified_by) == (len(content), 2, "size")
    assert any(file.name in line and "verified by size" in line for line in log)


def test_a_run_ended_while_it_uploads_commits_nothing(sshd, remote_folder, tmp_path):
    """A step taken for lost (its Celery worker stopped answering, celery_watch.py) that goes on
    uploading: its run is over by the commit point, so it renames nothing; the retry delivers."""
    folder, path = remote_folder
    run_id = "0e2c7a4e-1111-4a4a-9c9c-000000000001"
    target = make_target(sftp_connection(sshd), folder, run_id=run_id, run_is_over=lambda run: run == run_id)
    with pytest.raises(DeliveryError, match=f"run {run_id} was ended while this step was still uploading") as raised:
        target.deliver([local_file(tmp_path, "probe.csv", b"id\r\n1\r\n", rows=1)], Log())
    assert not path.exists() or list(path.iterdir()) == []  # neither the file nor its temporary
    assert not classify(raised.value).transient  # not retried within the ended run


def test_rerun_replaces_the_same_name(sshd, remote_folder, tmp_path):
    folder, path = remote_folder
    target = make_target(sftp_connection(sshd), folder)
    target.deliver([local_file(tmp_path / "first", "probe.csv", b"old,old\r\n")], Log())
    target.deliver([local_file(tmp_path / "second", "probe.csv", b"new\r\n")], Log())
    assert (path / "probe.csv").read_bytes() == b"new\r\n"
    assert sorted(p.name for p in path.iterdir()) == ["probe.csv"]


def test_password_auth(sshd, remote_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("PARTNER_SFTP_PASSWORD", sshd.password)
    folder, path = remote_folder
    connection = sftp_connection(sshd, private_key_path=None, password={"env": "PARTNER_SFTP_PASSWORD"})
    make_target(connection, folder).deliver([local_file(tmp_path, "a.csv", b"x\r\n")], Log())
    assert (path / "a.csv").read_bytes() == b"x\r\n"


def test_rsa_key_with_passphrase_from_the_environment(sshd, remote_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("PARTNER_KEY_PASSPHRASE", sshd.rsa_passphrase)
    folder, path = remote_folder
    connection = sftp_connection(sshd, private_key_path=str(sshd.rsa_key), private_key_passphrase={"env": "PARTNER_KEY_PASSPHRASE"})
    make_target(connection, folder).deliver([local_file(tmp_path, "a.csv", b"rsa\r\n")], Log())
    assert (path / "a.csv").read_bytes() == b"rsa\r\n"


def test_wrong_passphrase_names_the_key_file_not_the_passphrase(sshd, remote_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("PARTNER_KEY_PASSPHRASE", "not the passphrase at all")
    connection = sftp_connection(sshd, private_key_path=str(sshd.rsa_key), private_key_passphrase={"env": "PARTNER_KEY_PASSPHRASE"})
    with pytest.raises(DeliveryError) as failure:
        make_target(connection, remote_folder[0]).deliver([local_file(tmp_path, "a.csv", b"x")], Log())
    assert str(sshd.rsa_key) in str(failure.value) and "wrong passphrase" in str(failure.value)
    assert "not the passphrase at all" not in str(failure.value)


def test_wrong_password_is_refused_without_echoing_it(sshd, remote_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("PARTNER_SFTP_PASSWORD", "Wr0ng-Secret-Value")
    connection = sftp_connection(sshd, private_key_path=None, password={"env": "PARTNER_SFTP_PASSWORD"})
    with pytest.raises(DeliveryError) as failure:
        make_target(connection, remote_folder[0]).deliver([local_file(tmp_path, "a.csv", b"x")], Log())
    message = str(failure.value)
    assert "For export probe" in message and "connection partner" in message and "$PARTNER_SFTP_PASSWORD" in message
    assert "Wr0ng-Secret-Value" not in message
    assert not remote_folder[1].exists()


def test_key_not_in_authorized_keys_is_refused(sshd, remote_folder, tmp_path):
    connection = sftp_connection(sshd, private_key_path=str(sshd.unauthorized_key))
    with pytest.raises(DeliveryError, match="refused user 'exporttest' with the key"):
        make_target(connection, remote_folder[0]).deliver([local_file(tmp_path, "a.csv", b"x")], Log())


def test_missing_secret_variable_names_connection_and_variable(sshd, remote_folder, tmp_path, monkeypatch):
    monkeypatch.delenv("PARTNER_SFTP_PASSWORD", raising=False)
    connection = sftp_connection(sshd, private_key_path=None, password={"env": "PARTNER_SFTP_PASSWORD"})
    with pytest.raises(DeliveryError) as failure:
        make_target(connection, remote_folder[0]).deliver([local_file(tmp_path, "a.csv", b"x")], Log())
    message = str(failure.value)
    assert "connection 'partner'" in message and "PARTNER_SFTP_PASSWORD" in message and "not set" in message


def test_changed_host_key_is_refused_with_how_to_pin(sshd, remote_folder, tmp_path):
    other_key = (sshd.unauthorized_key.parent / "stranger_ed25519.pub").read_text().split()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{HOST}]:{sshd.port} {other_key[0]} {other_key[1]}\n")
    with pytest.raises(DeliveryError) as failure:
        make_target(sftp_connection(sshd, known_hosts_path=str(known_hosts)), remote_folder[0]).deliver(
            [local_file(tmp_path, "a.csv", b"x")], Log()
        )
    message = str(failure.value)
    assert "HOST KEY CHANGED" in message
    assert f"host_key_fingerprint: {sshd.host_key_fingerprint}" in message  # the real key, as ssh-keygen prints it
    assert not remote_folder[1].exists()


def test_unknown_host_is_refused_with_how_to_pin(sshd, remote_folder, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{HOST} ssh-ed25519 {'A' * 68}\n")  # the same host on port 22 does not count
    with pytest.raises(DeliveryError) as failure:
        make_target(sftp_connection(sshd, known_hosts_path=str(known_hosts)), remote_folder[0]).deliver(
            [local_file(tmp_path, "a.csv", b"x")], Log()
        )
    message = str(failure.value)
    assert f"[{HOST}]:{sshd.port} is not in {known_hosts}" in message
    assert f"ssh-keyscan -p {sshd.port} {HOST}" in message and sshd.host_key_fingerprint in message


def test_pinned_fingerprint_accepts_the_right_key_and_refuses_another(sshd, remote_folder, tmp_path):
    folder, path = remote_folder
    right = sftp_connection(sshd, known_hosts_path=None, host_key_fingerprint=sshd.host_key_fingerprint)
    make_target(right, folder).deliver([local_file(tmp_path, "a.csv", b"pinned\r\n")], Log())
    assert (path / "a.csv").read_bytes() == b"pinned\r\n"
    wrong_fingerprint = "SHA256:" + "B" * 43
    wrong = sftp_connection(sshd, known_hosts_path=None, host_key_fingerprint=wrong_fingerprint)
    with pytest.raises(DeliveryError, match="not the pinned"):
        make_target(wrong, folder).deliver([local_file(tmp_path, "b.csv", b"x")], Log())
    assert not (path / "b.csv").exists()


def loaded(tmp_path, connection: dict, folder: str):
    """The export's plan and connections as the loader makes them, for registry.target_for."""
    spec = {"name": "probe", "model": "customers", "fields": ["id"], "target": {"connection": "partner", "path": folder}}
    config = load_config(write_config(tmp_path / "config", [spec], connections={"connections": {"partner": connection}}))
    return config.plans["probe"], config.connections.connections


def test_insecure_option_skips_host_key_checks_and_says_so(sshd, remote_folder, tmp_path):
    folder, path = remote_folder
    connection = sftp_connection(sshd, known_hosts_path=None, insecure_accept_any_host_key=True)
    plan, connections = loaded(tmp_path, connection, folder)
    log = Log()
    target = target_for(plan, connections, tmp_path, RUN_TIME, str(uuid.uuid4()), no_run_known)
    target.deliver([local_file(tmp_path, "a.csv", b"x\r\n")], log)
    assert (path / "a.csv").read_bytes() == b"x\r\n"
    assert log[0] == "WARNING: connection partner does not verify the server's host key (insecure_accept_any_host_key)"


def test_missing_nested_folders_are_created(sshd, remote_folder, tmp_path):
    folder, path = remote_folder
    make_target(sftp_connection(sshd), f"{folder}/outbox/daily").deliver([local_file(tmp_path, "a.csv", b"x\r\n")], Log())
    assert (path / "outbox" / "daily" / "a.csv").read_bytes() == b"x\r\n"


def test_a_server_that_never_answers_times_out(tmp_path):
    with socket.create_server((HOST, 0)) as silent:  # accepts TCP, never sends an SSH banner
        port = silent.getsockname()[1]
        connection = {
            "type": "sftp", "host": HOST, "port": port, "username": "u", "password": {"env": "UNUSED"},
            "insecure_accept_any_host_key": True, "timeout_seconds": 1,
        }
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="failed while connecting"):
            make_target(connection, "x").deliver([local_file(tmp_path, "a.csv", b"x")], Log())
        assert time.monotonic() - started < 15


def test_sweep_removes_only_this_exports_temporaries_whose_runs_are_over(sshd, remote_folder, tmp_path, runs):
    folder, path = remote_folder
    make_target(sftp_connection(sshd), folder).deliver([local_file(tmp_path / "a", "first.csv", b"1\r\n")], Log())  # the folder, as the user
    failed, old_unknown, live, unknown = runs.started(), str(uuid.uuid4()), runs.started(), str(uuid.uuid4())
    runs.fail(failed)
    temporaries = {
        "failed run": path / f".probe.{failed}.probe_20261122T020000Z.csv.part",
        "unknown run, 3 days untouched": path / f".probe.{old_unknown}.probe_20261121T020000Z.csv.part",
        "live run": path / f".probe.{live}.probe_20261122T020000Z.csv.part",
        "unknown run, fresh": path / f".probe.{unknown}.probe_20261122T020000Z.csv.part",
        "another export's failed run": path / f".other.{failed}.other_20261122T020000Z.csv.part",
        "an old-style name": path / ".probe.0123456789ab.probe_20261122T020000Z.csv.part",
    }
    for temporary in temporaries.values():
        temporary.write_bytes(b"half a fi")
    three_days_ago = time.time() - 3 * 24 * 3600
    os.utime(temporaries["unknown run, 3 days untouched"], (three_days_ago, three_days_ago))
    log = Log()
    delivery = make_target(sftp_connection(sshd), folder, run_is_over=runs.is_over).deliver(
        [local_file(tmp_path / "b", "second.csv", b"2\r\n")], log
    )
    swept = ["failed run", "unknown run, 3 days untouched"]
    assert sorted(delivery.swept) == sorted(temporaries[kind].name for kind in swept)
    assert {kind for kind, temporary in temporaries.items() if not temporary.exists()} == set(swept)
    assert any(temporaries["failed run"].name in line and "Swept" in line for line in log)


def test_retention_keeps_the_newest_files_of_this_export_only(sshd, remote_folder, tmp_path):
    folder, path = remote_folder
    days = [dt.datetime(2026, 11, day, 2, 0, tzinfo=dt.UTC) for day in (20, 21, 22, 23)]
    make_target(sftp_connection(sshd), folder, keep_last=2).deliver([local_file(tmp_path / "0", export_file_name("probe", days[0]), b"0\r\n")], Log())
    unrelated = ["notes.txt", export_file_name("other", days[0]), "probe_manual_copy.txt"]
    for name in unrelated:
        (path / name).write_bytes(b"keep me")
    for index, day in enumerate(days[1:], start=1):
        age_files(path)  # each run starts a day after the one before
        target = make_target(sftp_connection(sshd), folder, keep_last=2)
        delivery = target.deliver([local_file(tmp_path / str(index), export_file_name("probe", day), b"%d\r\n" % index)], Log())
    expected = sorted([export_file_name("probe", days[2]), export_file_name("probe", days[3]), *unrelated])
    assert sorted(p.name for p in path.iterdir()) == expected
    assert delivery.retired == [export_file_name("probe", days[1])]


def test_manifest_is_written_last_and_describes_the_set(sshd, remote_folder, tmp_path):
    folder, path = remote_folder
    contents = {"probe_20261123T020000Z_part001.csv": b"a\r\n1\r\n", "probe_20261123T020000Z_part002.csv": b"a\r\n2\r\n3\r\n"}
    files = [local_file(tmp_path, name, content, rows=content.count(b"\r\n") - 1) for name, content in contents.items()]
    delivery = make_target(sftp_connection(sshd), folder, finish_with="manifest", run_time=RUN_TIME).deliver(files, Log())
    manifest_name = "probe_20261123T020000Z_part001.manifest.json"
    manifest = json.loads((path / manifest_name).read_bytes())
    assert manifest == {
        "export": "probe",
        "run_time": "2026-11-23T02:00:00Z",
        "rows": 3,
        "files": [
            {"name": name, "rows": content.count(b"\r\n") - 1, "bytes": len(content), "sha256": hashlib.sha256((path / name).read_bytes()).hexdigest()}
            for name, content in contents.items()
        ],
    }
    assert delivery.completion_file.name == manifest_name
    data_mtimes = [os.stat(path / name).st_mtime_ns for name in contents]
    assert os.stat(path / manifest_name).st_mtime_ns >= max(data_mtimes)


def test_done_marker_is_an_empty_file(sshd, remote_folder, tmp_path):
    folder, path = remote_folder
    file = local_file(tmp_path, "probe_20261123T020000Z.csv", b"a\r\n1\r\n")
    make_target(sftp_connection(sshd), folder, finish_with="done_marker").deliver([file], Log())
    assert (path / "probe_20261123T020000Z.done").read_bytes() == b""


def test_an_aead_cipher_is_negotiated_when_the_server_offers_one(sshd, remote_folder, tmp_path):
    """AES-GCM (one pass) instead of paramiko's default AES-CTR plus HMAC (two): the SFTP throughput goal rests on it."""
    folder, _ = remote_folder
    _, connections = loaded(tmp_path, sftp_connection(sshd), folder)
    session = SftpSession("probe", connections["partner"], folder)
    try:
        ciphers = (session.transport.local_cipher, session.transport.remote_cipher)
    finally:
        session.close()
    assert ciphers == ("aes128-gcm@openssh.com", "aes128-gcm@openssh.com")
