"""Where a client fetches each delivered chunk from.

S3 targets hand out presigned URLs. Download-target files live under the instance's storage,
or with EXPORT_DOWNLOADS_STORE_URL in the download store (targets/download_store.py). When
`export-pipelines serve-downloads` publishes them, EXPORT_DOWNLOADS_URL names it and chunks get
http URLs; otherwise file:// URLs that a client on the same host (or sharing DAGSTER_HOME's
storage) can read, or the store's s3:// URLs, which `export-pipelines download` reads with the
AWS credentials of its own environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from export_pipelines.targets.base import DeliveredFile

DOWNLOADS_URL_ENV_VAR = "EXPORT_DOWNLOADS_URL"


def file_urls(delivered: Sequence[DeliveredFile], downloads_url: str | None, *, download_folder: bool) -> list[str]:
    """Each file's URL. `downloads_url`: $EXPORT_DOWNLOADS_URL; `download_folder`: whether the files went to the export's download folder (its target is the
    download, or redirect_to_download kept them there) rather than to a connection. Only files in a
    download folder get serve-downloads' http URLs: a connection's files are not under it, wherever
    they are (an S3 connection's path inside the store's prefix included)."""
    return [_url(file, downloads_url if download_folder else None) for file in delivered]


def _url(file: DeliveredFile, downloads_url: str | None) -> str:
    kept = _download_folder_path(file) if downloads_url else None
    if kept is not None:
        return f"{downloads_url.rstrip('/')}/{quote(kept[0])}/{quote(kept[1])}"
    if file.url:
        return file.url
    if "://" in file.location:
        # SFTP/FTP: the partner's server address; fetching from there is the receiver's business.
        return file.location
    return Path(file.location).resolve().as_uri()


def _download_folder_path(file: DeliveredFile) -> tuple[str, str]:
    """(export, file name) of a file in a download folder, local or in the store."""
    if "://" in file.location:
        # In the store (EXPORT_DOWNLOADS_STORE_URL): <store>/<export>/<name>, so the location's last
        # two segments, whatever the store's URL looks like.
        export, name = file.location.rsplit("/", 2)[-2:]
        return export, name
    path = Path(file.location)
    return path.parent.name, path.name
