"""Delivery to a remote folder, the way rclone does it: temporary name, verify, rename.

One algorithm for every server kind; a RemoteSession supplies the few primitives a
protocol has (put, size, rename, list, delete). The rename is the commit point: a
receiver polling the folder sees each file complete under its final name or not at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from export_pipelines.targets.base import Delivery, DeliveredFile, DeliveryError, LocalFile, Log, Target

# `.{export}.{token}.{final name}.part`: hidden from receivers that skip dot files, and
# never a valid export file name (those cannot start with a dot), so a sweep cannot hit one.
_TEMPORARY = re.compile(r"^\.(?P<export>[a-z0-9_]+)\.(?P<token>[0-9a-f]{12})\..+\.part$")
COMPLETION_SUFFIXES = {"manifest": ".manifest.json", "done_marker": ".done"}


def remote_path(folder: str, name: str) -> str:
    return posixpath.join(folder, name) if folder else name


def folder_prefixes(folder: str) -> list[str]:
    """`a/b/c` -> `a`, `a/b`, `a/b/c` (absolute stays absolute): the folders to create in order."""
    prefixes, current = [], "/" if folder.startswith("/") else ""
    for part in [p for p in folder.split("/") if p]:
        current = posixpath.join(current, part) if current else part
        prefixes.append(current)
    return prefixes


def temporary_name(export: str, final_name: str) -> str:
    return f".{export}.{uuid.uuid4().hex[:12]}.{final_name}.part"


def is_temporary_of(export: str, name: str) -> bool:
    match = _TEMPORARY.match(name)
    return match is not None and match["export"] == export


@dataclass(frozen=True)
class RemoteEntry:
    name: str
    mtime: float


class RemoteSession(ABC):
    """One open connection to one folder of one server."""

    # S3 stores a PUT object whole or not at all, so it needs no temporary name.
    atomic_put = False

    @abstractmethod
    def location_of(self, name: str) -> str:
        """The file's address for people, without credentials."""

    @abstractmethod
    def ensure_folder(self) -> None: ...

    @abstractmethod
    def list_entries(self) -> list[RemoteEntry]: ...

    @abstractmethod
    def put(self, local: Path, name: str) -> None:
        """Stream the file from disk; memory must not grow with its size."""

    @abstractmethod
    def verify(self, name: str, file: LocalFile) -> str:
        """Check the stored copy against the local file; return how (e.g. "size"), raise on a mismatch."""

    @abstractmethod
    def replace(self, temporary: str, final: str) -> None:
        """Rename, overwriting an existing file of the final name."""

    @abstractmethod
    def delete(self, name: str) -> None: ...

    def sweep(self, export: str) -> list[str]:
        """Remove what killed runs of this export left behind."""
        stale = [entry.name for entry in self.list_entries() if is_temporary_of(export, entry.name)]
        for name in stale:
            self.delete(name)
        return stale

    def url_for(self, name: str) -> str | None:
        return None

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class DeliveryOptions:
    export: str
    connection: str
    keep_last: int | None
    finish_with: str | None
    # Which names on the target are this export's files (for retention); from the file name template.
    own_files: re.Pattern[str]
    ext: str
    run_time: dt.datetime


class RemoteTarget(Target):
    def __init__(
        self, options: DeliveryOptions, address: str, open_session: Callable[[], RemoteSession], warning: str | None = None
    ):
        self.options = options
        self.address = address
        self.open_session = open_session
        self.warning = warning

    @property
    def location(self) -> str:
        return self.address

    def _failure(self, what: str, error: BaseException) -> DeliveryError:
        reason = str(error) or type(error).__name__
        return DeliveryError(
            f"For export {self.options.export}, delivery to connection {self.options.connection} "
            f"({self.address}) failed while {what}: {reason}"
        )

    def deliver(self, files: Sequence[LocalFile], log: Log) -> Delivery:
        if self.warning:
            log(f"WARNING: {self.warning}")
        try:
            session = self.open_session()
        except Exception as error:
            raise self._failure("connecting", error) from error
        try:
            return self._deliver_in(session, files, log)
        finally:
            try:
                session.close()
            except Exception as error:  # the files are in place; a failed goodbye changes nothing
                log(f"closing the connection to {self.address} failed: {error}")

    def _deliver_in(self, session: RemoteSession, files: Sequence[LocalFile], log: Log) -> Delivery:
        try:
            session.ensure_folder()
            swept = session.sweep(self.options.export)
        except Exception as error:
            raise self._failure("preparing the folder", error) from error
        for name in swept:
            log(f"Swept {name}, a temporary file a killed run left on {self.address}")
        delivered = [self._put_one(session, file, log) for file in files]
        completion = None
        if self.options.finish_with and files:
            completion = self._put_one(session, self._completion_file(files), log)
        retired = self._retire_old_files(session, {file.name for file in files}, log)
        return Delivery(delivered, completion, swept, retired)

    def _put_one(self, session: RemoteSession, file: LocalFile, log: Log) -> DeliveredFile:
        started = time.monotonic()
        staging = file.name if session.atomic_put else temporary_name(self.options.export, file.name)
        try:
            session.put(file.path, staging)
            verified_by = session.verify(staging, file)
            if staging != file.name:
                session.replace(staging, file.name)
        except Exception as error:
            if staging != file.name:
                self._discard(session, staging, log)
            raise self._failure(f"uploading {file.name}; no file was written under that name", error) from error
        seconds = round(time.monotonic() - started, 3)
        log(f"Delivered {file.name} ({file.bytes} bytes, {file.rows} rows, verified by {verified_by}) to {session.location_of(file.name)}")
        return DeliveredFile(
            file.name, file.rows, file.bytes, file.sha256, session.location_of(file.name), seconds, verified_by, session.url_for(file.name)
        )

    def _discard(self, session: RemoteSession, staging: str, log: Log) -> None:
        try:
            session.delete(staging)
            return
        except Exception:
            pass  # a broken transfer can leave the connection dead or out of step: try a fresh one
        try:
            fresh = self.open_session()
            try:
                fresh.delete(staging)
            finally:
                fresh.close()
        except Exception as error:
            log(f"Could not delete the temporary {staging} ({error}); the next run of this export sweeps it")

    def _completion_file(self, files: Sequence[LocalFile]) -> LocalFile:
        """A manifest (names, rows, bytes, sha256) or an empty done marker, written after the set is complete."""
        suffix = COMPLETION_SUFFIXES[self.options.finish_with]
        path = files[0].path.parent / (completion_stem(files[0].name, self.options.ext) + suffix)
        if self.options.finish_with == "manifest":
            manifest = {
                "export": self.options.export,
                "run_time": self.options.run_time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                "rows": sum(file.rows for file in files),
                "files": [{"name": f.name, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256} for f in files],
            }
            content = (json.dumps(manifest, indent=2) + "\n").encode()
        else:
            content = b""
        path.write_bytes(content)
        return LocalFile(path, sum(file.rows for file in files), len(content), hashlib.sha256(content).hexdigest())

    def _retire_old_files(self, session: RemoteSession, just_delivered: set[str], log: Log) -> list[str]:
        keep = self.options.keep_last
        if keep is None:
            return []
        try:
            entries = session.list_entries()
            ours = [e for e in entries if self.options.own_files.fullmatch(e.name)]
            ours.sort(key=lambda e: (e.name in just_delivered, e.mtime, e.name), reverse=True)
            retired = [e.name for e in ours[keep:] if e.name not in just_delivered]
            names = {e.name for e in entries}
            for name in retired:
                session.delete(name)
                for suffix in COMPLETION_SUFFIXES.values():
                    companion = completion_stem(name, self.options.ext) + suffix
                    if companion in names:
                        session.delete(companion)
        except Exception as error:
            raise self._failure(f"deleting files older than the last {keep} (retention); the new files are delivered", error) from error
        for name in retired:
            log(f"Retention (keep_last {keep}): deleted {session.location_of(name)}")
        return retired


def completion_stem(file_name: str, ext: str) -> str:
    return file_name.removesuffix(f".{ext}")
