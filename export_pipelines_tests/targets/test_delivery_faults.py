"""Faults in the middle of an upload: the run fails clearly, nothing is left under the final
name, the temporary is deleted or swept (by a retry of the same run, or by a later run once the
failed one is over), and a re-run delivers identical bytes."""

from __future__ import annotations

import os

import pytest

from export_pipelines.targets.base import DeliveryError
from export_pipelines.targets.remote import parse_temporary
from export_pipelines_tests.servers.pyftpd import PyFtpServer
from export_pipelines_tests.servers.fixtures import s3_client
from export_pipelines_tests.targets.delivery_helpers import Log, local_file, make_target
from export_pipelines_tests.targets.test_s3 import s3_connection
from export_pipelines_tests.targets.test_sftp import sftp_connection

PAYLOAD_BYTES = 4 * 1024 * 1024


@pytest.fixture
def payload(tmp_path):
    return local_file(tmp_path, "probe_20261123T020000Z.csv", os.urandom(PAYLOAD_BYTES), rows=1000)


def is_temporary_of(run_id: str, name: str) -> bool:
    temporary = parse_temporary(name)
    return temporary is not None and (temporary.export, temporary.run_id) == ("probe", run_id)


def names_in(path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def proxied_sftp(sshd, port: int) -> dict:
    """Through the proxy the server sits on another port, so the key is pinned rather than looked up."""
    return sftp_connection(sshd, port=port, known_hosts_path=None, host_key_fingerprint=sshd.host_key_fingerprint, timeout_seconds=5)


def test_sftp_connection_cut_mid_upload_then_rerun(sshd, proxy_to, remote_folder, payload):
    folder, path = remote_folder
    proxy = proxy_to(sshd.port)
    target = make_target(proxied_sftp(sshd, proxy.port), folder)
    proxy.cut_after(1_500_000)
    with pytest.raises(DeliveryError) as failure:
        target.deliver([payload], Log())
    assert proxy.cuts == 1
    assert "For export probe, delivery to connection partner" in str(failure.value)
    assert f"uploading {payload.name}; no file was written under that name" in str(failure.value)
    assert payload.name not in names_in(path)
    leftovers = names_in(path)
    assert all(is_temporary_of(target.options.run_id, name) for name in leftovers), leftovers  # only this run's temporary

    proxy.restore()
    delivery = target.deliver([payload], Log())  # a retry of the step, in the same run
    assert names_in(path) == [payload.name]
    assert (path / payload.name).read_bytes() == payload.path.read_bytes()
    assert delivery.swept == leftovers


def test_sftp_server_down_fails_with_the_export_and_connection_named(sshd, proxy_to, remote_folder, payload):
    proxy = proxy_to(sshd.port)
    proxy.down = True
    target = make_target(proxied_sftp(sshd, proxy.port), remote_folder[0])
    with pytest.raises(DeliveryError, match=r"For export probe, delivery to connection partner .* failed while connecting"):
        target.deliver([payload], Log())


def pyftpd_connection(server: PyFtpServer) -> dict:
    return {
        "type": "ftp", "host": server.host, "port": server.port, "username": server.user,
        "password": {"env": "PYFTPD_PASSWORD"}, "timeout_seconds": 5,
    }


def test_ftp_data_connection_dropped_mid_upload_deletes_the_temporary(pyftpd, payload, monkeypatch):
    monkeypatch.setenv("PYFTPD_PASSWORD", pyftpd.password)
    target = make_target(pyftpd_connection(pyftpd), "outbox")
    pyftpd.faults.drop_data_after_bytes = 1_000_000
    log = Log()
    with pytest.raises(DeliveryError, match=f"uploading {payload.name}"):
        target.deliver([payload], log)
    assert pyftpd.faults.fired == ["drop_data"]
    assert names_in(pyftpd.home / "outbox") == []  # the control connection survived: the temporary was deleted

    target.deliver([payload], Log())
    assert names_in(pyftpd.home / "outbox") == [payload.name]
    assert (pyftpd.home / "outbox" / payload.name).read_bytes() == payload.path.read_bytes()


def test_ftp_server_stopped_mid_upload_leaves_a_temporary_the_next_run_sweeps_once_the_first_is_over(
    pyftpd, payload, monkeypatch, runs
):
    monkeypatch.setenv("PYFTPD_PASSWORD", pyftpd.password)
    outbox = pyftpd.home / "outbox"
    pyftpd.faults.stop_server_after_bytes = 1_000_000
    log = Log()
    first_run = runs.started()
    with pytest.raises(DeliveryError):
        make_target(pyftpd_connection(pyftpd), "outbox", run_id=first_run, run_is_over=runs.is_over).deliver([payload], log)
    assert pyftpd.faults.fired == ["stop_server"]
    leftovers = names_in(outbox)
    assert len(leftovers) == 1 and is_temporary_of(first_run, leftovers[0]), leftovers
    assert any("the next run of this export sweeps it once this run is over" in line for line in log)

    runs.fail(first_run)  # the step's failure ends the run
    restarted = PyFtpServer(pyftpd.home)
    restarted.start()
    try:
        delivery = make_target(pyftpd_connection(restarted), "outbox", run_is_over=runs.is_over).deliver([payload], Log())
    finally:
        restarted.stop()
    assert delivery.swept == leftovers
    assert names_in(outbox) == [payload.name]
    assert (outbox / payload.name).read_bytes() == payload.path.read_bytes()


def test_s3_connection_cut_mid_multipart_upload_then_rerun(moto_endpoint, s3_bucket, proxy_to, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPORTS_AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("EXPORTS_AWS_SECRET_ACCESS_KEY", "testing")
    content = os.urandom(11 * 1024 * 1024)
    file = local_file(tmp_path, "probe_20261123T020000Z.csv", content)
    proxy = proxy_to(int(moto_endpoint.rsplit(":", 1)[1]))
    connection = s3_connection(f"http://127.0.0.1:{proxy.port}", s3_bucket, max_attempts=1)
    target = make_target(connection, "out")
    proxy.cut_after(2 * 1024 * 1024)  # per connection: inside the first part
    with pytest.raises(DeliveryError, match=f"uploading {file.name}"):
        target.deliver([file], Log())
    client = s3_client(moto_endpoint)
    assert client.list_objects_v2(Bucket=s3_bucket, Prefix="out/").get("KeyCount") == 0  # no object under the final key

    [upload] = client.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]
    # Started before the cut (its first request is small), it could not be aborted; its key names the run.
    assert is_temporary_of(target.options.run_id, upload["Key"].removeprefix("out/")), upload["Key"]

    proxy.restore()
    delivery = target.deliver([file], Log())  # a retry of the step, in the same run
    assert client.get_object(Bucket=s3_bucket, Key=f"out/{file.name}")["Body"].read() == content
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert [item["Key"] for item in client.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]] == [f"out/{file.name}"]
    assert delivery.swept == [f"{upload['Key'].removeprefix('out/')} (unfinished multipart upload {upload['UploadId']})"]
