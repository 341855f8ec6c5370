"""The download target: files kept in a per-export folder under the instance's storage.

A set written again (a window re-run with fewer parts) loses the parts it no longer has, as on
every other target (remote.py's `_retire_old_files`): only names the export's file name template
produces count as its files, and the folder is the export's own, so another export's files, a
rejected-rows list or a file put there by hand are never touched. Download folders keep every
run's sets otherwise (there is no keep_last for the download).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from export_pipelines.stages.name_patterns import file_set_key
from export_pipelines.targets.base import DeliveredFile, Delivery, LocalFile, Log, Target

# Matches no name: a target built without the export's template owns no file and deletes none.
_OWNS_NOTHING = re.compile(r"(?!)")


class DownloadTarget(Target):
    def __init__(self, folder: Path, own_files: re.Pattern[str] = _OWNS_NOTHING):
        """`folder`: the export's download folder; `own_files`: the names its file name template
        produces (registry.own_files), whose stale parts of a set written again are removed."""
        self.folder = folder
        self.own_files = own_files

    @property
    def location(self) -> str:
        return str(self.folder)

    def deliver(self, files: Sequence[LocalFile], log: Log) -> Delivery:
        self.folder.mkdir(parents=True, exist_ok=True)
        delivered = [self._deliver_one(file) for file in files]
        for file in delivered:
            log(f"Delivered {file.name} ({file.bytes} bytes, {file.rows} rows) to {file.location}")
        retired = self._remove_stale_parts({file.name for file in files})
        for name in retired:
            log(f"Retention (a part an earlier run of this set left): deleted {self.folder / name}")
        return Delivery(delivered, retired=retired)

    def _set_key(self, name: str) -> str | None:
        match = self.own_files.fullmatch(name)
        return file_set_key(match) if match else None

    def _remove_stale_parts(self, just_delivered: set[str]) -> list[str]:
        """Delete the parts an earlier run of this run's own set(s) wrote beyond this run's last
        part; returns their names, sorted. Only a split set (names with a part number) has any."""
        current = {key for name in just_delivered if (key := self._set_key(name)) not in (None, name)}
        if not current:
            return []
        stale = sorted(
            entry.name
            for entry in self.folder.iterdir()
            if entry.name not in just_delivered and entry.is_file() and self._set_key(entry.name) in current
        )
        for name in stale:
            (self.folder / name).unlink(missing_ok=True)
        return stale

    def _deliver_one(self, file: LocalFile) -> DeliveredFile:
        final = self.folder / file.name
        # A hidden temporary name in the same folder, renamed into place: a reader
        # listing the folder sees the whole file or nothing.
        temporary = self.folder / f".{file.name}.{uuid.uuid4().hex[:12]}.part"
        try:
            try:
                os.link(file.path, temporary)
            except OSError:
                shutil.copyfile(file.path, temporary)
            size = temporary.stat().st_size
            if size != file.bytes:
                raise OSError(f"copied {size} bytes of {file.name}, expected {file.bytes}")
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        return DeliveredFile(file.name, file.rows, file.bytes, file.sha256, str(final))
