"""Which connection types this build can deliver to, and the target for an export.

Each server kind is one row of a small table, its client library imported only when an
export actually delivers there (dlt's filesystem destination does the same).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

from export_pipelines.spec.connections import DeliveryConnection
from export_pipelines.spec.export import ConnectionTarget
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.stages.file_naming import FileNameError
from export_pipelines.stages.name_patterns import template_pattern
from export_pipelines.targets.base import Target
from export_pipelines.targets.download_store import DESTINATION, DOWNLOADS_STORE_ENV_VAR, download_store_target
from export_pipelines.targets.local import DownloadTarget
from export_pipelines.targets.remote import DeliveryOptions, RemoteSession, RemoteTarget, display_folder


def _sftp(name: str, connection, options: DeliveryOptions, folder: str) -> RemoteSession:
    from export_pipelines.targets.sftp import SftpSession

    return SftpSession(name, connection, folder)


def _ftp(name: str, connection, options: DeliveryOptions, folder: str) -> RemoteSession:
    from export_pipelines.targets.ftp import FtpSession

    return FtpSession(name, connection, folder)


def _s3(name: str, connection, options: DeliveryOptions, folder: str) -> RemoteSession:
    from export_pipelines.targets.s3 import S3Session

    return S3Session(name, connection, folder)


SESSIONS: dict[str, Callable[[str, DeliveryConnection, DeliveryOptions, str], RemoteSession]] = {
    "sftp": _sftp,
    "ftp": _ftp,
    "ftps": _ftp,
    "s3": _s3,
}
# Connection types with a Target implementation; connections.yaml may declare others.
DELIVERABLE_TYPES: frozenset[str] = frozenset(SESSIONS)


def downloads_folder(storage_dir: Path, export_name: str) -> Path:
    return storage_dir / "downloads" / export_name


def target_address(connection: DeliveryConnection, path: str) -> str:
    """Where an export delivers, for people: no user names' secrets, no keys."""
    if connection.type == "s3":
        key = "/".join(part.strip("/") for part in (connection.prefix, path) if part.strip("/"))
        return f"s3://{connection.bucket}/{key}"
    folder = display_folder(connection.root, path).strip("/")
    return f"{connection.type}://{connection.username}@{connection.host}:{connection.port}/{folder}"


def target_for(
    plan: ExportPlan,
    connections: dict[str, DeliveryConnection],
    storage_dir: Path,
    run_time: dt.datetime,
    run_id: str,
    run_is_over: Callable[[str], bool | None],
    redirect_to_download: bool = False,
    downloads_store: str | None = None,
) -> Target:
    """The target of one run of the export. `run_is_over(run_id)` tells whether another run is
    over (True), still queued or running (False) or unknown (None): the sweep of temporaries asks it.
    `downloads_store`: $EXPORT_DOWNLOADS_STORE_URL (download_store.py), where download folders are
    when it is set; else they are under `storage_dir`."""
    spec = plan.spec
    if redirect_to_download or not isinstance(spec.target, ConnectionTarget):
        if downloads_store is None:
            return DownloadTarget(downloads_folder(storage_dir, spec.name), own_files(plan))
        options = _delivery_options(plan, DOWNLOADS_STORE_ENV_VAR, None, None, run_time, run_id, run_is_over, DESTINATION)
        return download_store_target(downloads_store, options)
    target = spec.target
    connection = connections[target.connection]
    options = _delivery_options(plan, target.connection, target.keep_last, target.finish_with, run_time, run_id, run_is_over)
    open_session = SESSIONS[connection.type]
    warning = None
    if getattr(connection, "insecure_accept_any_host_key", False):
        warning = f"connection {target.connection} does not verify the server's host key (insecure_accept_any_host_key)"
    return RemoteTarget(
        options,
        target_address(connection, target.path),
        lambda: open_session(target.connection, connection, options, target.path),
        warning,
    )


def _delivery_options(
    plan: ExportPlan,
    connection: str,
    keep_last: int | None,
    finish_with: str | None,
    run_time: dt.datetime,
    run_id: str,
    run_is_over: Callable[[str], bool | None],
    destination: str | None = None,
) -> DeliveryOptions:
    # Dagster's naming module, imported here: a delivery outside a run (tests' child processes) needs no Dagster.
    from export_pipelines.naming import adhoc_export_name, is_adhoc_export_name

    spec = plan.spec
    return DeliveryOptions(
        export=spec.name,
        connection=connection,
        keep_last=keep_last,
        finish_with=finish_with,
        own_files=own_files(plan),
        ext=plan.ext,
        run_time=run_time,
        run_id=run_id,
        run_is_over=run_is_over,
        named_after_run=adhoc_export_name if is_adhoc_export_name(spec.name) else None,
        destination=destination,
    )


# Matches no name: `(?!)` fails at once.
OWNS_NOTHING = re.compile(r"(?!)")


def own_files(plan: ExportPlan) -> re.Pattern[str]:
    """The names on a target that are the export's files (retention, and the parts of a set written
    again): those its file name template produces. A template with a token of no exact shape
    (`%Q`, `%5Y`) is refused at load only with keep_last; without it, the export owns no file."""
    timezone = plan.spec.incremental.timezone if plan.spec.incremental else "UTC"
    try:
        return template_pattern(plan.file_template, plan.spec.name, plan.model_name, plan.ext, timezone)
    except FileNameError:
        return OWNS_NOTHING
