"""Writes handed to one worker thread, in order, while the caller prepares the next batch.

zlib, hashlib, file writes, IPC compression and pyarrow.compute all release the GIL, so
the two threads overlap on two cores, as `psql | gzip` does: serialization formats while
the previous batch is compressed and written, extraction decodes while the previous batch
is encoded into the stage file. A few batches wait at most, so memory stays bounded.
in_order() is the same idea for work that has no order of its own: batches formatted on
two threads at once, results handed back in input order.
EXPORT_WRITE_BEHIND=0 does all of it on the calling thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from export_pipelines.switches import WRITE_BEHIND_ENV_VAR, switch_from_environment

WRITE_BEHIND_DEPTH = 2
# This machine class has 2 cores; pyarrow.compute kernels release the GIL, so two workers use both.
IN_ORDER_THREADS = 2


def write_behind_enabled() -> bool:
    return switch_from_environment(WRITE_BEHIND_ENV_VAR)


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


def in_order(function: Callable, items: Iterable, threads: int = IN_ORDER_THREADS) -> Iterator[tuple]:
    """(item, function(item)) for every item, in input order, computed on `threads` threads.

    At most 2 x threads items are in flight, so memory stays bounded by the batch size.
    """
    if not write_behind_enabled():
        for item in items:
            yield item, function(item)
        return
    pending: deque[tuple] = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="in-order") as executor:
        try:
            for item in items:
                if len(pending) >= 2 * threads:
                    done_item, future = pending.popleft()
                    yield done_item, future.result()
                pending.append((item, executor.submit(function, item)))
            while pending:
                done_item, future = pending.popleft()
                yield done_item, future.result()
        finally:
            for _, future in pending:
                future.cancel()
