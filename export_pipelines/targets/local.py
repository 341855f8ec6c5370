"""The download target: files kept in a per-export folder under the instance's storage."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from export_pipelines.targets.base import DeliveredFile, Delivery, LocalFile, Log, Target


class DownloadTarget(Target):
    def __init__(self, folder: Path):
        self.folder = folder

    @property
    def location(self) -> str:
        return str(self.folder)

    def deliver(self, files: Sequence[LocalFile], log: Log) -> Delivery:
        self.folder.mkdir(parents=True, exist_ok=True)
        delivered = [self._deliver_one(file) for file in files]
        for file in delivered:
            log(f"Delivered {file.name} ({file.bytes} bytes, {file.rows} rows) to {file.location}")
        return Delivery(delivered)

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
