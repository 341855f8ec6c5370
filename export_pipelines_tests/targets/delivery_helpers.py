"""Building a target the way the factory does, from a connections.yaml entry, for tests that
deliver hand-written bytes and then read them back from the server's own storage. No Dagster
import: a test's child process delivers through it too."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from export_pipelines.spec.connections import ConnectionsFile
from export_pipelines.stages.file_naming import DEFAULT_TEMPLATE
from export_pipelines.stages.name_patterns import template_pattern
from export_pipelines.targets.base import LocalFile
from export_pipelines.targets.registry import SESSIONS, target_address
from export_pipelines.targets.remote import DeliveryOptions, RemoteTarget

RUN_TIME = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


def no_run_known(run_id: str) -> bool | None:
    """An instance that has never heard of any other run."""
    return None


def make_target(
    connection: dict,
    folder: str,
    *,
    export: str = "probe",
    keep_last: int | None = None,
    finish_with: str | None = None,
    template: str = DEFAULT_TEMPLATE,
    timezone: str = "UTC",
    run_id: str | None = None,
    run_is_over: Callable[[str], bool | None] = no_run_known,
    run_time: dt.datetime | None = None,
) -> RemoteTarget:
    """A target for one run (`run_id`, a fresh one by default) of `export`; window bounds in `timezone`.

    run_time: when the run extracted its rows; by default now, as for a run delivering what it just wrote.
    """
    parsed = ConnectionsFile.model_validate({"connections": {"partner": connection}}).connections["partner"]
    options = DeliveryOptions(
        export=export,
        connection="partner",
        keep_last=keep_last,
        finish_with=finish_with,
        own_files=template_pattern(template, export, "customers", "csv", timezone),
        ext="csv",
        run_time=run_time or dt.datetime.now(dt.UTC),
        run_id=run_id or str(uuid.uuid4()),
        run_is_over=run_is_over,
    )
    open_session = SESSIONS[parsed.type]
    return RemoteTarget(options, target_address(parsed, folder), lambda: open_session("partner", parsed, options, folder))


def age_files(folder: Path, seconds: float = 86_400) -> None:
    """Make every file in a server's folder (on this machine's disk) `seconds` older: an earlier run's,
    delivered long before the next run starts (retention keeps sets written after a run started)."""
    for path in folder.iterdir():
        stat = path.stat()
        os.utime(path, (stat.st_atime - seconds, stat.st_mtime - seconds))


def local_file(folder: Path, name: str, content: bytes, rows: int = 1) -> LocalFile:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return LocalFile(path, rows, len(content), hashlib.sha256(content).hexdigest())


def export_file_name(export: str, when: dt.datetime) -> str:
    """The default template written out by hand: {export}_{run_time:%Y%m%dT%H%M%SZ}.{ext}."""
    return f"{export}_{when:%Y%m%dT%H%M%S}Z.csv"


class Log(list):
    def __call__(self, message: str) -> None:
        self.append(message)
