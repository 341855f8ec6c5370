"""Which connection types this build can deliver to, and the target for an export.

Each server kind is one row of a small table, its client library imported only when an
export actually delivers there (dlt's filesystem destination does the same).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from export_pipelines.spec.connections import DeliveryConnection
from export_pipelines.spec.export import ConnectionTarget
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.stages.name_patterns import template_pattern
from export_pipelines.targets.base import Target
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
) -> Target:
    """The target of one run of the export. `run_is_over(run_id)` tells whether another run is
    over (True), still queued or running (False) or unknown (None): the sweep of temporaries asks it."""
    # Dagster's naming module, imported here: a delivery outside a run (tests' child processes) needs no Dagster.
    from export_pipelines.naming import adhoc_export_name, is_adhoc_export_name

    spec = plan.spec
    if redirect_to_download or not isinstance(spec.target, ConnectionTarget):
        return DownloadTarget(downloads_folder(storage_dir, spec.name))
    target = spec.target
    connection = connections[target.connection]
    options = DeliveryOptions(
        export=spec.name,
        connection=target.connection,
        keep_last=target.keep_last,
        finish_with=target.finish_with,
        own_files=template_pattern(
            plan.file_template, spec.name, plan.model_name, plan.ext, spec.incremental.timezone if spec.incremental else "UTC"
        ),
        ext=plan.ext,
        run_time=run_time,
        run_id=run_id,
        run_is_over=run_is_over,
        named_after_run=adhoc_export_name if is_adhoc_export_name(spec.name) else None,
    )
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
