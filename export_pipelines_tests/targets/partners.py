"""A partner's folder on a real SFTP, FTPS or S3 server, seen from both sides: the connection
an export delivers through, and the server's own storage, where tests place files by hand and
read what arrived."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from export_pipelines.targets.remote import CLOCK_SLACK_SECONDS
from export_pipelines_tests.servers.fixtures import s3_client
from export_pipelines_tests.servers.system_user import owned_folder
from export_pipelines_tests.targets.test_ftp import ftp_connection
from export_pipelines_tests.targets.test_s3 import s3_connection
from export_pipelines_tests.targets.test_sftp import sftp_connection

PROTOCOLS = ["sftp", "ftps", "s3"]
THROTTLED_BYTES_PER_SECOND = 1_000_000
# boto3 sends a multipart file's parts over several connections at once, each of them throttled.
THROTTLED_S3_BYTES_PER_SECOND = 3_000_000
S3_PART_BYTES = 5 * 1024 * 1024  # the smallest multipart threshold: a file this large goes in parts


# S3 keeps no modification time a client can set, and lists whole seconds: a file placed "earlier"
# is only older than a run once the run starts past the retention's clock slack.
S3_AGE_SECONDS = CLOCK_SLACK_SECONDS + 1.5


@dataclass
class Partner:
    kind: str
    folder_connection: dict
    folder: str
    request: pytest.FixtureRequest
    home: Path | None = None  # SFTP/FTPS: the folder on this machine's disk
    bucket: str | None = None
    endpoint: str | None = None
    _aged_after: float = 0.0

    @property
    def connection(self) -> dict:
        """The folder's connection; on S3, once files placed as older than the next run really are."""
        time.sleep(max(0.0, self._aged_after - time.time()))
        return self.folder_connection

    @property
    def large_bytes(self) -> int:
        """A file size that is uploaded to a temporary first (on S3: in parts, to a temporary key)."""
        return S3_PART_BYTES + 1024 if self.kind == "s3" else 1_000_000

    def place(self, name: str, content: bytes, age_seconds: float = 0) -> None:
        """Put a file there by hand, as the partner or another program would."""
        if self.bucket:
            s3_client(self.endpoint).put_object(Bucket=self.bucket, Key=f"{self.folder}/{name}", Body=content)
            if age_seconds:
                self._aged_after = time.time() + S3_AGE_SECONDS
            return
        path = self.home / name
        path.write_bytes(content)
        if age_seconds:
            then = time.time() - age_seconds
            os.utime(path, (then, then))

    def names(self) -> list[str]:
        """Every stored file, temporaries included (S3: every object under the folder)."""
        if self.bucket:
            listing = s3_client(self.endpoint).list_objects_v2(Bucket=self.bucket, Prefix=f"{self.folder}/")
            return sorted(item["Key"].removeprefix(f"{self.folder}/") for item in listing.get("Contents", []))
        return sorted(path.name for path in self.home.iterdir())

    def unfinished_uploads(self) -> list[str]:
        """S3's multipart uploads in progress or abandoned, by file name; none elsewhere."""
        if not self.bucket:
            return []
        uploads = s3_client(self.endpoint).list_multipart_uploads(Bucket=self.bucket, Prefix=f"{self.folder}/")
        return sorted(upload["Key"].removeprefix(f"{self.folder}/") for upload in uploads.get("Uploads", []))

    def temporaries(self) -> list[str]:
        """Temporary files and unfinished uploads: what a delivery in progress, or a killed one, leaves."""
        return sorted({*(name for name in self.names() if name.startswith(".")), *self.unfinished_uploads()})

    def read(self, name: str) -> bytes:
        if self.bucket:
            return s3_client(self.endpoint).get_object(Bucket=self.bucket, Key=f"{self.folder}/{name}")["Body"].read()
        return (self.home / name).read_bytes()

    def throttled_connection(self) -> dict:
        """The same folder over a slow link: about 1 MB/s for uploads (S3: 3 MB/s per connection)."""
        if self.kind == "ftps":
            server = self.request.getfixturevalue("vsftpd_tls_throttled")
            return {**self.connection, "port": server.port}
        proxy_to = self.request.getfixturevalue("proxy_to")
        if self.kind == "sftp":
            sshd = self.request.getfixturevalue("sshd")
            proxy = proxy_to(sshd.port)
            proxy.throttle(THROTTLED_BYTES_PER_SECOND)
            # Through the proxy the server sits on another port: pin its key rather than look it up.
            return sftp_connection(sshd, port=proxy.port, known_hosts_path=None, host_key_fingerprint=sshd.host_key_fingerprint)
        proxy = proxy_to(int(self.endpoint.rsplit(":", 1)[1]))
        proxy.throttle(THROTTLED_S3_BYTES_PER_SECOND)
        return {**self.connection, "endpoint_url": f"http://127.0.0.1:{proxy.port}"}


def open_partner(kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Partner:
    """The partner folder of one test, empty, on a server of this kind."""
    if kind == "s3":
        monkeypatch.setenv("EXPORTS_AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("EXPORTS_AWS_SECRET_ACCESS_KEY", "testing")
        endpoint, bucket = request.getfixturevalue("moto_endpoint"), request.getfixturevalue("s3_bucket")
        return Partner(kind, s3_connection(endpoint, bucket), "outbox", request, bucket=bucket, endpoint=endpoint)
    folder, path = request.getfixturevalue("remote_folder")
    test_user = request.getfixturevalue("test_user")
    owned_folder(test_user[2], folder)
    if kind == "sftp":
        connection = sftp_connection(request.getfixturevalue("sshd"))
    else:
        monkeypatch.setenv("PARTNER_FTP_PASSWORD", test_user[1])
        server, certificates = request.getfixturevalue("vsftpd_tls"), request.getfixturevalue("certificates")
        connection = ftp_connection(server, "ftps", ca_file=str(certificates.ca_file))
    return Partner(kind, connection, folder, request, home=path)
