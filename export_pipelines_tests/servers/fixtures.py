"""Real servers for the tests (delivery, mail), started on loopback ports once per session, and only
when a test asks for them. The suite's conftest imports these fixtures."""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
from pathlib import Path

import boto3
import pytest

from export_pipelines_tests.conftest import require_service
from export_pipelines_tests.servers.cutting_proxy import CuttingProxy
from export_pipelines_tests.servers.moto_s3 import start_moto
from export_pipelines_tests.servers.network import stop
from export_pipelines_tests.servers.pyftpd import PyFtpServer
from export_pipelines_tests.servers.smtp import SmtpServer
from export_pipelines_tests.servers.sshd import SSHD, SshServer, start_sshd
from export_pipelines_tests.servers.system_user import ensure_test_user
from export_pipelines_tests.servers.tls import TestCertificates, make_certificates
from export_pipelines_tests.servers.vsftpd import VSFTPD, FtpServer, start_vsftpd


@pytest.fixture(scope="session")
def test_user() -> tuple[str, str, Path]:
    try:
        return ensure_test_user()
    except (PermissionError, FileNotFoundError, OSError) as error:
        require_service(f"a local login user for sshd/vsftpd: {error}")


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> TestCertificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def sshd(tmp_path_factory, test_user) -> SshServer:
    if not Path(SSHD).exists():
        require_service(f"OpenSSH server ({SSHD}; apt-get install openssh-server)")
    server = start_sshd(tmp_path_factory.mktemp("sshd"), *test_user)
    yield server
    stop(server.process)


def _vsftpd(tmp_path_factory, test_user, certificates: TestCertificates | None, max_bytes_per_second: int = 0) -> FtpServer:
    if not Path(VSFTPD).exists():
        require_service(f"vsftpd ({VSFTPD}; apt-get install vsftpd)")
    return start_vsftpd(tmp_path_factory.mktemp("vsftpd"), *test_user, certificates, max_bytes_per_second)


@pytest.fixture(scope="session")
def vsftpd_plain(tmp_path_factory, test_user) -> FtpServer:
    server = _vsftpd(tmp_path_factory, test_user, None)
    yield server
    stop(server.process)


@pytest.fixture(scope="session")
def vsftpd_tls(tmp_path_factory, test_user, certificates) -> FtpServer:
    server = _vsftpd(tmp_path_factory, test_user, certificates)
    yield server
    stop(server.process)


@pytest.fixture
def pyftpd(tmp_path) -> PyFtpServer:
    home = tmp_path / "ftp_home"
    home.mkdir()
    server = PyFtpServer(home)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vsftpd_tls_throttled(tmp_path_factory, test_user, certificates) -> FtpServer:
    """FTPS whose every transfer runs at 1 MB/s at most, as over a thin link."""
    server = _vsftpd(tmp_path_factory, test_user, certificates, max_bytes_per_second=1_000_000)
    yield server
    stop(server.process)


@pytest.fixture(scope="session")
def moto_endpoint() -> str:
    server, endpoint = start_moto()
    yield endpoint
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint, request) -> str:
    # The name's start for people, a hash of all of it so that parametrized tests never share a bucket.
    digest = hashlib.sha256(request.node.name.encode()).hexdigest()[:8]
    bucket = f"exports-{request.node.name.lower().replace('_', '-')[:32].strip('-[]')}-{digest}-{os.getpid()}"
    bucket = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in bucket)[:63]
    s3_client(moto_endpoint).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    return bucket


def s3_client(endpoint: str):
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="eu-central-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def proxy_to():
    proxies = []

    def start(port: int) -> CuttingProxy:
        proxy = CuttingProxy(port)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def remote_folder(test_user, request) -> tuple[str, Path]:
    """A fresh folder name under the test user's home, removed afterwards."""
    name = f"t_{request.node.name.lower()[:40]}_{os.getpid()}"
    name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    path = test_user[2] / name
    shutil.rmtree(path, ignore_errors=True)
    yield name, path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def smtp_server() -> SmtpServer:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server_with_starttls(certificates) -> SmtpServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificates.cert_file), str(certificates.key_file))
    server = SmtpServer(context, credentials=("exports@example.com", "smtp-test-password")).start()
    yield server
    server.stop()
