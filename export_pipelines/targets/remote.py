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
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from export_pipelines.stages.name_patterns import file_set_key
from export_pipelines.targets.base import Delivery, DeliveredFile, DeliveryError, LocalFile, Log, Target

COMPLETION_SUFFIXES = {"manifest": ".manifest.json", "done_marker": ".done"}
# Servers list modification times in whole seconds (FTP's MDTM, S3's LastModified): a set written in
# the second this run started is counted as written beside it.
CLOCK_SLACK_SECONDS = 2.0

# `.{export}.{run id}.{final name}.part`: hidden from receivers that skip dot files, never a
# valid export file name (those cannot start with a dot), and owned by exactly one run.
RUN_ID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # Dagster's run ids are UUIDs
_TEMPORARY = re.compile(rf"^\.(?P<export>[a-z0-9_]+)\.(?P<run_id>{RUN_ID_PATTERN})\..+\.part$", re.DOTALL)
MAX_NAME_BYTES = 255
# A temporary whose run the instance does not know (its history purged, or another Dagster
# deployment delivering to the same folder) is swept once it has not changed for this long:
# far longer than any upload stalls before its timeout fails it.
ABANDONED_AFTER = dt.timedelta(hours=48)


class ListingRefused(DeliveryError):
    """The server takes uploads to the folder but refuses to list it (a write-only drop folder)."""


@dataclass(frozen=True)
class Temporary:
    export: str
    run_id: str


def temporary_name(export: str, run_id: str, final_name: str) -> str:
    """The name a file is uploaded under before it is renamed; a final name too long to fit
    within 255 bytes is replaced by its hash (the name only has to be unique within the run)."""
    name = f".{export}.{run_id}.{final_name}.part"
    if len(name.encode()) > MAX_NAME_BYTES:
        name = f".{export}.{run_id}.{hashlib.sha256(final_name.encode()).hexdigest()[:16]}.part"
    return name


def parse_temporary(name: str) -> Temporary | None:
    match = _TEMPORARY.match(name)
    return Temporary(match["export"], match["run_id"]) if match else None


def is_within(path: str, root: str) -> bool:
    """Whether the normalized absolute POSIX `path` is `root` or below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def display_folder(root: str | None, path: str) -> str:
    """The target folder as configured, for people: the path under the connection's root."""
    return posixpath.join(root, path) if root else path


@dataclass(frozen=True)
class RemoteEntry:
    name: str
    mtime: float  # epoch seconds, by the server's clock
    upload_id: str | None = None  # an unfinished S3 multipart upload rather than a stored object

    @property
    def label(self) -> str:
        return self.name if self.upload_id is None else f"{self.name} (unfinished multipart upload {self.upload_id})"


class RemoteSession(ABC):
    """One open connection to one folder of one server."""

    @abstractmethod
    def location_of(self, name: str) -> str:
        """The file's address for people, without credentials."""

    @abstractmethod
    def prepare_folder(self) -> None:
        """Resolve the target folder inside the connection's root and create what is missing;
        raise DeliveryError, before anything is written, when the folder leads outside the root."""

    @abstractmethod
    def list_entries(self) -> list[RemoteEntry]:
        """The folder's files; raises ListingRefused when the server does not let this login list it."""

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

    def needs_temporary(self, size: int) -> bool:
        """Whether a file of this many bytes must go to a temporary name first."""
        return True

    def list_temporaries(self) -> list[RemoteEntry]:
        """Every run's temporaries in the folder (of every export)."""
        return [entry for entry in self.list_entries() if parse_temporary(entry.name)]

    def discard(self, entry: RemoteEntry) -> None:
        self.delete(entry.name)

    def url_for(self, name: str) -> str | None:
        return None

    def close(self) -> None:
        return None


class FolderSession(RemoteSession):
    """A server with real folders (SFTP, FTP): paths resolve inside the connection's root, the
    login folder when it names none, and no folder on the way may lead outside it (a link)."""

    def __init__(self, root: str | None, path: str):
        self.root = root
        self.path = path
        self.folder = ""  # the absolute folder on the server, once prepared

    @abstractmethod
    def login_folder(self) -> str:
        """The absolute folder a session starts in."""

    @abstractmethod
    def real_path(self, folder: str) -> str:
        """The folder's absolute path with every link resolved, as far as the protocol tells;
        raises OSError or a protocol error when it does not exist."""

    @abstractmethod
    def is_folder(self, folder: str) -> bool: ...

    @abstractmethod
    def make_folder(self, folder: str) -> None: ...

    def prepare_folder(self) -> None:
        if ".." in self.path.split("/"):  # specs refuse them too; a server would resolve them after links
            raise DeliveryError(f"path {self.path!r} must not contain '..' segments; nothing was written")
        root = posixpath.normpath(posixpath.join(self.login_folder(), self.root or "."))
        if not self.is_folder(root):
            raise DeliveryError(f"the connection's root folder {root} is not a folder on the server; nothing was written")
        real_root = self.real_path(root)
        folder = posixpath.normpath(posixpath.join(root, self.path))
        if not is_within(folder, root):
            raise DeliveryError(
                f"path {self.path!r} leads to {folder}, outside the connection's root folder {root}; "
                f"nothing was written (use a folder inside the root, or set the connection's root)"
            )
        below = [part for part in folder[len(root):].split("/") if part]
        current = root
        for part in below:
            current = posixpath.join(current, part)
            if not self.is_folder(current):
                self.make_folder(current)
            real = self.real_path(current)
            if not is_within(real, real_root):
                raise DeliveryError(
                    f"{current} on the server leads to {real}, outside the connection's root folder {real_root} "
                    f"(a link); nothing was written"
                )
        self.folder = folder

    def _path(self, name: str) -> str:
        return posixpath.join(self.folder, name)


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
    # The Dagster run delivering, and whether another run is over: True when it finished, failed or
    # was canceled, False while it is queued or running, None when the instance does not know it.
    run_id: str
    run_is_over: Callable[[str], bool | None]
    # For an export that exists for one run only (an ad-hoc export, named by naming.adhoc_export_name):
    # that naming rule. Such a run's temporaries would otherwise have no later run of their export to
    # sweep them, so every run of an export so named sweeps those of the others once they are over.
    named_after_run: Callable[[str], str] | None = None
    # What errors call the target, when it is not connection `connection` (the download store).
    destination: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(RUN_ID_PATTERN, self.run_id):
            raise ValueError(f"run id {self.run_id!r} is not a Dagster run id (a UUID)")

    def owns_temporary(self, temporary: Temporary) -> bool:
        """This export's temporaries; for a run-named export, also those of every other run-named one."""
        if temporary.export == self.export:
            return True
        return self.named_after_run is not None and temporary.export == self.named_after_run(temporary.run_id)


class RunEnded(RuntimeError):
    """The delivering run is over: nothing more may be committed for it."""


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
            f"For export {self.options.export}, delivery to {self.options.destination or 'connection ' + self.options.connection} "
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
            session.prepare_folder()
            swept = self._sweep(session, log)
        except Exception as error:
            raise self._failure("preparing the folder", error) from error
        for label in swept:
            log(f"Swept {label}, a temporary a run that is over left on {self.address}")
        delivered = [self._put_one(session, file, log) for file in files]
        completion = None
        if self.options.finish_with and files:
            completion = self._put_one(session, self._completion_file(files), log)
        retired = self._retire_old_files(session, {file.name for file in files}, log)
        return Delivery(delivered, completion, swept, retired)

    def _sweep(self, session: RemoteSession, log: Log) -> list[str]:
        """Remove the temporaries this run owns (DeliveryOptions.owns_temporary) whose runs are over;
        never one of a run still going.
        A folder the server will not list (a write-only drop folder) is not swept: a warning says so."""
        try:
            entries = session.list_temporaries()
        except ListingRefused as error:
            log(
                f"WARNING: {error}; temporaries that killed runs of {self.options.export} may have left on "
                f"{self.address} are not swept (only someone allowed to list the folder can remove them)"
            )
            return []
        now = time.time()
        swept = []
        for entry in entries:
            temporary = parse_temporary(entry.name)
            if self.options.owns_temporary(temporary) and self._abandoned(temporary.run_id, entry.mtime, now):
                session.discard(entry)
                swept.append(entry.label)
        return swept

    def _abandoned(self, run_id: str, mtime: float, now: float) -> bool:
        if run_id == self.options.run_id:
            return True  # an earlier attempt of this very step: Dagster never runs two attempts at once
        over = self.options.run_is_over(run_id)
        if over is None:
            return now - mtime > ABANDONED_AFTER.total_seconds()
        return over

    def _put_one(self, session: RemoteSession, file: LocalFile, log: Log) -> DeliveredFile:
        started = time.monotonic()
        staging = temporary_name(self.options.export, self.options.run_id, file.name) if session.needs_temporary(file.bytes) else file.name
        try:
            if staging == file.name:
                self._require_current_run()
            session.put(file.path, staging)
            verified_by = session.verify(staging, file)
            if staging != file.name:
                self._require_current_run()
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

    def _require_current_run(self) -> None:
        """Raises RunEnded at the commit point when this run is already over: its step was taken for
        lost (a Celery worker that stopped answering, celery_watch.py) while it went on uploading, and a
        retry or rerun owns the delivery now. Committing would make two writers of one window."""
        if self.options.run_is_over(self.options.run_id):
            raise RunEnded(
                f"run {self.options.run_id} was ended while this step was still uploading (its worker was taken for "
                "lost); the file is not committed: the run's retry or rerun delivers it"
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
                fresh.prepare_folder()
                fresh.delete(staging)
            finally:
                fresh.close()
        except Exception as error:
            log(f"Could not delete the temporary {staging} ({error}); the next run of this export sweeps it once this run is over")

    def _completion_file(self, files: Sequence[LocalFile]) -> LocalFile:
        """A manifest (names, rows, bytes, sha256) or an empty done marker, written after the set is complete."""
        suffix = COMPLETION_SUFFIXES[self.options.finish_with]
        path = files[0].path.parent / (completion_stem(files[0].name, self.options.ext) + suffix)
        if self.options.finish_with == "manifest":
            manifest = {
                "export": self.options.export,
                "run_time": self.options.run_time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                "rows": sum(file.rows for file in files),
                "files": [
                    {"name": f.name, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256}
                    | ({"plaintext_sha256": f.plaintext_sha256} if f.plaintext_sha256 else {})
                    for f in files
                ],
            }
            content = (json.dumps(manifest, indent=2) + "\n").encode()
        else:
            content = b""
        path.write_bytes(content)
        return LocalFile(path, sum(file.rows for file in files), len(content), hashlib.sha256(content).hexdigest())

    def _retire_old_files(self, session: RemoteSession, just_delivered: set[str], log: Log) -> list[str]:
        """Keep the `keep_last` newest runs' file sets (this run's first) and delete the older sets'
        files, with their completion files of the kind this export writes.

        A set delivered after this run started belongs to a run going on beside it (another window)
        or after it: it is never deleted here, and it counts among the N kept. Parts an earlier run
        of this very set wrote beyond this run's last part (a window re-run with fewer rows) are
        deleted with or without keep_last: the set is this run's now, whole.
        """
        keep = self.options.keep_last
        splits = any(self._set_key(name) not in (None, name) for name in just_delivered)
        if keep is None and not splits:
            return []
        try:
            try:
                entries = session.list_entries()
            except ListingRefused as error:
                if keep is not None:
                    raise
                log(f"WARNING: {error}; parts an earlier run of this set may have left beyond its last part are not removed")
                return []
            sets: dict[str, list[RemoteEntry]] = {}
            for entry in entries:
                if (key := self._set_key(entry.name)) is not None:
                    sets.setdefault(key, []).append(entry)
            current = {key for key, members in sets.items() if any(entry.name in just_delivered for entry in members)}
            stale_parts = {entry.name for key in current for entry in sets[key] if entry.name not in just_delivered}
            retired = sorted(stale_parts)
            if keep is not None:
                beside = self._delivered_since_this_run_started(sets, current, just_delivered)
                kept = current | beside
                older = sorted((key for key in sets if key not in kept), key=lambda key: (max(e.mtime for e in sets[key]), key), reverse=True)
                retired += sorted(entry.name for key in older[max(keep - len(kept), 0):] for entry in sets[key])
            names = {entry.name for entry in entries}
            # Only the kind of completion file this export writes is its own: a .done beside a file
            # of an export that writes manifests (or none) was put there by someone else.
            suffix = COMPLETION_SUFFIXES.get(self.options.finish_with or "")
            for name in retired:
                session.delete(name)
                if suffix and name not in stale_parts and (companion := completion_stem(name, self.options.ext) + suffix) in names:
                    session.delete(companion)
        except Exception as error:
            what = f"deleting files older than the last {keep} runs' (retention); the new files are delivered"
            raise self._failure(what, error) from error
        for name in retired:
            why = "a part an earlier run of this set left" if name in stale_parts else f"keep_last {keep}"
            log(f"Retention ({why}): deleted {session.location_of(name)}")
        return retired

    def _set_key(self, name: str) -> str | None:
        match = self.options.own_files.fullmatch(name)
        return file_set_key(match) if match else None

    def _delivered_since_this_run_started(self, sets: dict[str, list[RemoteEntry]], current: set[str], just_delivered: set[str]) -> set[str]:
        """Sets whose newest file is younger than this run, by the server's clock: this run's own files
        were written moments ago by it, which tells how the server's clock reads this run's start."""
        own = [entry.mtime for key in current for entry in sets[key] if entry.name in just_delivered]
        if not own:
            return set()
        started = min(own) - (time.time() - self.options.run_time.timestamp()) - CLOCK_SLACK_SECONDS
        return {key for key, members in sets.items() if key not in current and max(e.mtime for e in members) >= started}


def completion_stem(file_name: str, ext: str) -> str:
    return file_name.removesuffix(f".{ext}")
