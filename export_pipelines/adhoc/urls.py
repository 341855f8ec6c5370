"""Where a client fetches each delivered chunk from.

S3 targets hand out presigned URLs. Download-target files live under the instance's
storage; when `export-pipelines serve-downloads` publishes that folder, EXPORT_DOWNLOADS_URL
names it and chunks get http URLs, otherwise file:// URLs that a client on the same host
(or sharing DAGSTER_HOME's storage) can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from export_pipelines.targets.base import DeliveredFile

DOWNLOADS_URL_ENV_VAR = "EXPORT_DOWNLOADS_URL"


def file_urls(delivered: Sequence[DeliveredFile], downloads_url: str | None) -> list[str]:
    return [_url(file, downloads_url) for file in delivered]


def _url(file: DeliveredFile, downloads_url: str | None) -> str:
    if file.url:
        return file.url
    if "://" in file.location:
        # SFTP/FTP: the partner's server address; fetching from there is the receiver's business.
        return file.location
    path = Path(file.location)
    if downloads_url:
        return f"{downloads_url.rstrip('/')}/{quote(path.parent.name)}/{quote(path.name)}"
    return path.resolve().as_uri()
