"""Writes handed to one worker thread, in order, while the caller prepares the next batch.

zlib, hashlib, file writes, Parquet encoding and pyarrow.compute all release the GIL, so
the two threads overlap on two cores, as `psql | gzip` does: serialization formats while
the previous batch is compressed and written, extraction decodes while the previous batch
is encoded into the stage file. A few batches wait at most, so memory stays bounded.
EXPORT_WRITE_BEHIND=0 writes on the calling thread.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

WRITE_BEHIND_ENV_VAR = "EXPORT_WRITE_BEHIND"
WRITE_BEHIND_DEPTH = 2


def write_behind_enabled() -> bool:
    return os.environ.get(WRITE_BEHIND_ENV_VAR, "1") != "0"


class WriteBehind:
    def __init__(self):
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="write-behind") if write_behind_enabled() else None
        self._pending: deque[Future] = deque()

    def submit(self, write: Callable, data) -> None:
        if self._executor is None:
            write(data)
            return
        if len(self._pending) >= WRITE_BEHIND_DEPTH:
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(write, data))

    def drain(self) -> None:
        """Wait for every submitted write; the first failure is raised here."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        if self._executor is not None:
            for future in self._pending:
                future.cancel()
            self._executor.shutdown(wait=True)

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, *_) -> None:
        self.close()
