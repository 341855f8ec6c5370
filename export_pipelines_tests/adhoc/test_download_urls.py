"""Chunk URLs, and the read-only server that makes download folders reachable over HTTP."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from export_pipelines.adhoc.download_server import serve_downloads
from export_pipelines.adhoc.urls import file_urls
from export_pipelines.targets.base import DeliveredFile
from export_pipelines_tests.servers.network import HOST


def delivered(location: str, url: str | None = None) -> DeliveredFile:
    return DeliveredFile(Path(location).name, 1, 3, "0" * 64, location, url=url)


def test_urls_per_target(tmp_path: Path):
    local = delivered(str(tmp_path / "adhoc_ab" / "x y.csv"))
    presigned = delivered("s3://bucket/x.csv", "https://s3.example/x.csv?X-Amz-Signature=1")
    remote = delivered("sftp://partner@host:22/out/x.csv")

    assert file_urls([local], None, download_folder=True) == [f"file://{tmp_path}/adhoc_ab/x%20y.csv"]
    assert file_urls([presigned, remote], None, download_folder=False) == [
        "https://s3.example/x.csv?X-Amz-Signature=1",
        "sftp://partner@host:22/out/x.csv",
    ]
    assert file_urls([local], "http://127.0.0.1:8765/", download_folder=True) == ["http://127.0.0.1:8765/adhoc_ab/x%20y.csv"]
    # A connection's files keep their own URLs when serve-downloads publishes the download folders.
    assert file_urls([presigned, remote], "http://127.0.0.1:8765/", download_folder=False) == [
        "https://s3.example/x.csv?X-Amz-Signature=1",
        "sftp://partner@host:22/out/x.csv",
    ]


def test_a_connections_files_inside_the_stores_prefix_keep_their_own_urls():
    """What decides an http URL of serve-downloads is the target, not where the file's address starts:
    an S3 connection whose path lies inside the store's prefix is still the partner's bucket."""
    on_connection = delivered("s3://shared/downloads/partner_x/x.csv", "https://s3.example/x.csv?X-Amz-Signature=1")
    without_presigning = delivered("s3://shared/downloads/partner_x/y.csv")
    in_store = delivered("s3://shared/downloads/adhoc_ab/x.csv", "s3://shared/downloads/adhoc_ab/x.csv")

    assert file_urls([on_connection, without_presigning], "http://h:8765", download_folder=False) == [
        "https://s3.example/x.csv?X-Amz-Signature=1",
        "s3://shared/downloads/partner_x/y.csv",
    ]
    assert file_urls([in_store], "http://h:8765", download_folder=True) == ["http://h:8765/adhoc_ab/x.csv"]
    assert file_urls([in_store], "http://h:8765/", download_folder=True) == ["http://h:8765/adhoc_ab/x.csv"]


@pytest.fixture
def downloads_server(tmp_path: Path):
    server = serve_downloads(tmp_path / "downloads", HOST, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path / "downloads", f"http://{HOST}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_server_serves_files_but_no_listings(downloads_server):
    folder, base = downloads_server
    (folder / "adhoc_ab").mkdir()
    (folder / "adhoc_ab" / "x y.csv").write_bytes(b"a,b\r\n1,2\r\n")
    (url,) = file_urls([delivered(str(folder / "adhoc_ab" / "x y.csv"))], base, download_folder=True)

    with urllib.request.urlopen(url) as response:
        assert response.read() == b"a,b\r\n1,2\r\n"
    for listing in (f"{base}/", f"{base}/adhoc_ab/"):
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(listing)
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(f"{base}/../../etc/passwd")
