"""A read-only HTTP server for the download folders, so API clients get http URLs.

dagster-webserver serves no files of its own. This serves $DAGSTER_HOME/storage/downloads,
or with EXPORT_DOWNLOADS_STORE_URL the download store (targets/download_store.py), on loopback
by default; put a TLS and auth proxy in front before exposing it further. Directory listings
are refused: a chunk's URL holds its export's run id, which is not guessable.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import logging
import mimetypes
import re
import urllib.parse
from pathlib import Path

from export_pipelines.stages.work_location import CHUNK_BYTES, is_remote, join, open_object, s3_client

logger = logging.getLogger(__name__)

# One folder and one file name, neither hidden: temporaries (`.<export>.<run id>.<file>.part`) are never served.
_STORE_PATH = re.compile(r"^/(?P<folder>[^/.\x00-\x1f][^/\x00-\x1f]*)/(?P<name>[^/.\x00-\x1f][^/\x00-\x1f]*)$")


class _FilesOnlyHandler(http.server.SimpleHTTPRequestHandler):
    def list_directory(self, path):
        self.send_error(404, "No listing")
        return None

    def log_message(self, format, *args):
        return None


class _StoreHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of `/<export>/<file>` in the store, streamed from one GET on it, chunk by chunk."""

    store = ""  # set on a subclass per server, with the boto3 client (thread-safe) that reads it
    client = None

    def do_GET(self) -> None:
        self._serve(with_body=True)

    def do_HEAD(self) -> None:
        self._serve(with_body=False)

    def _serve(self, with_body: bool) -> None:
        match = _STORE_PATH.match(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path))
        if match is None:
            self.send_error(404, "No listing" if self.path.endswith("/") else "Not found")
            return
        location = join(self.store, match["folder"], match["name"])
        try:
            size, body = open_object(self.client, location, with_body)
        except FileNotFoundError:
            self.send_error(404, "Not found")
            return
        except Exception as error:  # noqa: BLE001 - any refusal of the store is the server's fault, not the client's
            # The store's own words (no such bucket, access denied) go to the log, not to the client.
            logger.error("serving %s from the download store failed: %s", location, error)
            self.send_error(502, "The download store could not be read")
            return
        self.send_response(200)
        self.send_header("Content-Type", mimetypes.guess_type(match["name"])[0] or "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if body is not None:
            with contextlib.closing(body):
                for chunk in body.iter_chunks(CHUNK_BYTES):
                    self.wfile.write(chunk)

    def log_message(self, format, *args):
        return None


def serve_downloads(folder: Path | str, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """A bound server over `folder`, a local folder or the download store's s3:// URL; the caller runs serve_forever()."""
    if is_remote(folder):
        handler = type("StoreHandler", (_StoreHandler,), {"store": str(folder).rstrip("/"), "client": s3_client()})
        return http.server.ThreadingHTTPServer((host, port), handler)
    Path(folder).mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_FilesOnlyHandler, directory=str(folder))
    return http.server.ThreadingHTTPServer((host, port), handler)
