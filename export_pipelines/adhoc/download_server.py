"""A read-only HTTP server for the download folders, so API clients get http URLs.

dagster-webserver serves no files of its own. This serves $DAGSTER_HOME/storage/downloads,
or with EXPORT_DOWNLOADS_STORE_URL the download store (targets/download_store.py), on loopback
by default; put a TLS and auth proxy in front before exposing it further. Directory listings
are refused: a chunk's URL holds its export's run id, which is not guessable.
"""

from __future__ import annotations

import functools
import http.server
import logging
import mimetypes
import re
import shutil
import urllib.parse
from pathlib import Path

import pyarrow.fs as pafs

from export_pipelines.stages.work_location import is_remote, join, resolve

logger = logging.getLogger(__name__)

# Bytes per read from the store and write to the client: memory stays at one chunk whatever the file's size.
CHUNK_BYTES = 1024 * 1024
# One folder and one file name, neither hidden: temporaries (`.<export>.<run id>.<file>.part`) are never served.
_STORE_PATH = re.compile(r"^/(?P<folder>[^/.\x00-\x1f][^/\x00-\x1f]*)/(?P<name>[^/.\x00-\x1f][^/\x00-\x1f]*)$")


class _FilesOnlyHandler(http.server.SimpleHTTPRequestHandler):
    def list_directory(self, path):
        self.send_error(404, "No listing")
        return None

    def log_message(self, format, *args):
        return None


class _StoreHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of `/<export>/<file>` in the store, streamed from it chunk by chunk."""

    store = ""  # set on a subclass per server

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
            filesystem, path = resolve(location)
            info = filesystem.get_file_info(path)
            if info.type != pafs.FileType.File:
                self.send_error(404, "Not found")
                return
            source = filesystem.open_input_stream(path) if with_body else None
        except OSError as error:
            # The store's own words (no such bucket, access denied) go to the log, not to the client.
            logger.error("serving %s from the download store failed: %s", location, error)
            self.send_error(502, "The download store could not be read")
            return
        self.send_response(200)
        self.send_header("Content-Type", mimetypes.guess_type(match["name"])[0] or "application/octet-stream")
        self.send_header("Content-Length", str(info.size))
        self.end_headers()
        if source is not None:
            with source:
                shutil.copyfileobj(source, self.wfile, CHUNK_BYTES)

    def log_message(self, format, *args):
        return None


def serve_downloads(folder: Path | str, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """A bound server over `folder`, a local folder or the download store's s3:// URL; the caller runs serve_forever()."""
    if is_remote(folder):
        handler = type("StoreHandler", (_StoreHandler,), {"store": str(folder).rstrip("/")})
        return http.server.ThreadingHTTPServer((host, port), handler)
    Path(folder).mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_FilesOnlyHandler, directory=str(folder))
    return http.server.ThreadingHTTPServer((host, port), handler)
