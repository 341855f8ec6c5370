"""A read-only HTTP server for the download folders, so API clients get http URLs.

dagster-webserver serves no files of its own. This serves $DAGSTER_HOME/storage/downloads
on loopback by default; put a TLS and auth proxy in front before exposing it further.
Directory listings are refused: a chunk's URL holds its export's run id, which is not guessable.
"""

from __future__ import annotations

import functools
import http.server
from pathlib import Path


class _FilesOnlyHandler(http.server.SimpleHTTPRequestHandler):
    def list_directory(self, path):
        self.send_error(404, "No listing")
        return None

    def log_message(self, format, *args):
        return None


def serve_downloads(folder: Path, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """A bound server over `folder`; the caller runs serve_forever()."""
    folder.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_FilesOnlyHandler, directory=str(folder))
    return http.server.ThreadingHTTPServer((host, port), handler)
