"""FTP and FTPS delivery against vsftpd (FTPS with require_ssl_reuse=YES and a verified certificate)."""

from __future__ import annotations

import datetime as dt
import ftplib
import io
import ssl

import pytest

from export_pipelines.targets.base import DeliveryError
from export_pipelines_tests.targets.delivery_helpers import age_files, Log, export_file_name, local_file, make_target


def ftp_connection(server, kind: str, **changes) -> dict:
    connection = {
        "type": kind,
        "host": server.host,
        "port": server.port,
        "username": server.user,
        "password": {"env": "PARTNER_FTP_PASSWORD"},
        "timeout_seconds": 10,
    }
    return {**connection, **changes}


@pytest.fixture
def ftp_password(monkeypatch, test_user):
    monkeypatch.setenv("PARTNER_FTP_PASSWORD", test_user[1])


def test_stock_ftplib_is_refused_by_this_server(vsftpd_tls, certificates, remote_folder, test_user):
    """The server really demands TLS session reuse on the data channel, so the next test proves something."""
    client = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=str(certificates.ca_file)), timeout=10)
    client.connect(vsftpd_tls.host, vsftpd_tls.port)
    client.login(test_user[0], test_user[1])
    client.prot_p()
    with pytest.raises((ftplib.error_perm, ssl.SSLError, OSError)):
        client.storbinary("STOR stock_ftplib_probe.csv", io.BytesIO(b"x"))
    client.close()
    (test_user[2] / "stock_ftplib_probe.csv").unlink(missing_ok=True)


def test_ftps_delivers_through_session_reuse_with_a_verified_certificate(
    vsftpd_tls, certificates, remote_folder, tmp_path, ftp_password
):
    folder, path = remote_folder
    content = "id;name\r\n1;Zoë\r\n".encode()
    connection = ftp_connection(vsftpd_tls, "ftps", ca_file=str(certificates.ca_file))
    delivery = make_target(connection, folder).deliver([local_file(tmp_path, "probe.csv", content)], Log())
    assert (path / "probe.csv").read_bytes() == content
    assert sorted(p.name for p in path.iterdir()) == ["probe.csv"]
    assert delivery.files[0].location == f"ftps://{vsftpd_tls.user}@{vsftpd_tls.host}:{vsftpd_tls.port}/{folder}/probe.csv"


def test_ftps_refuses_a_certificate_it_cannot_verify(vsftpd_tls, certificates, remote_folder, tmp_path, ftp_password):
    connection = ftp_connection(vsftpd_tls, "ftps", ca_file=str(certificates.other_ca_file))
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        make_target(connection, remote_folder[0]).deliver([local_file(tmp_path, "a.csv", b"x")], Log())
    assert not remote_folder[1].exists()


def test_ftps_without_ca_file_uses_the_system_store_and_refuses_a_private_ca(
    vsftpd_tls, remote_folder, tmp_path, ftp_password
):
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        make_target(ftp_connection(vsftpd_tls, "ftps"), remote_folder[0]).deliver([local_file(tmp_path, "a.csv", b"x")], Log())


def test_plain_ftp_overwrites_on_rerun_and_creates_folders(vsftpd_plain, remote_folder, tmp_path, ftp_password):
    folder, path = remote_folder
    target = make_target(ftp_connection(vsftpd_plain, "ftp"), f"{folder}/in/exports")
    target.deliver([local_file(tmp_path / "1", "probe.csv", b"first run\r\n")], Log())
    target.deliver([local_file(tmp_path / "2", "probe.csv", b"second\r\n")], Log())
    outbox = path / "in" / "exports"
    assert (outbox / "probe.csv").read_bytes() == b"second\r\n"
    assert sorted(p.name for p in outbox.iterdir()) == ["probe.csv"]


def test_wrong_ftp_password_is_refused_without_echoing_it(vsftpd_plain, remote_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("PARTNER_FTP_PASSWORD", "Wr0ng-Ftp-Secret")
    with pytest.raises(DeliveryError) as failure:
        make_target(ftp_connection(vsftpd_plain, "ftp"), remote_folder[0]).deliver([local_file(tmp_path, "a.csv", b"x")], Log())
    assert "refused user" in str(failure.value) and "$PARTNER_FTP_PASSWORD" in str(failure.value)
    assert "Wr0ng-Ftp-Secret" not in str(failure.value)


def test_ftp_sweep_sees_hidden_temporaries_and_retention_keeps_the_newest(
    vsftpd_plain, remote_folder, tmp_path, ftp_password, runs
):
    folder, path = remote_folder
    connection = ftp_connection(vsftpd_plain, "ftp")
    days = [dt.datetime(2026, 11, day, 2, 0, tzinfo=dt.UTC) for day in (21, 22)]
    make_target(connection, folder, keep_last=1).deliver([local_file(tmp_path / "1", export_file_name("probe", days[0]), b"1\r\n")], Log())
    age_files(path)
    failed_run, live_run = runs.started(), runs.started()
    runs.fail(failed_run)
    stale = path / f".probe.{failed_run}.probe_20261121T020000Z.csv.part"
    live = path / f".probe.{live_run}.probe_20261121T020000Z.csv.part"
    for temporary in (stale, live):
        temporary.write_bytes(b"half")
    (path / "readme.txt").write_bytes(b"not ours")
    target = make_target(connection, folder, keep_last=1, run_is_over=runs.is_over)
    delivery = target.deliver([local_file(tmp_path / "2", export_file_name("probe", days[1]), b"2\r\n")], Log())
    assert sorted(p.name for p in path.iterdir()) == [live.name, export_file_name("probe", days[1]), "readme.txt"]
    assert delivery.swept == [stale.name]
    assert delivery.retired == [export_file_name("probe", days[0])]


def test_ftps_manifest_and_retention_together(vsftpd_tls, certificates, remote_folder, tmp_path, ftp_password):
    folder, path = remote_folder
    connection = ftp_connection(vsftpd_tls, "ftps", ca_file=str(certificates.ca_file))
    first, second = (export_file_name("probe", dt.datetime(2026, 11, day, tzinfo=dt.UTC)) for day in (21, 22))
    make_target(connection, folder, keep_last=1, finish_with="done_marker").deliver([local_file(tmp_path / "1", first, b"1\r\n")], Log())
    age_files(path)
    make_target(connection, folder, keep_last=1, finish_with="done_marker").deliver([local_file(tmp_path / "2", second, b"2\r\n")], Log())
    # the older file goes together with its done marker
    assert sorted(p.name for p in path.iterdir()) == sorted([second, second.removesuffix(".csv") + ".done"])
