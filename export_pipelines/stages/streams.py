"""Parallel streams (`parallel: {streams: N}`): one extract's rows read over N key ranges by N PostgreSQL
connections at once, inside ONE exported snapshot, in one process.

Why: one stream is bounded by one server backend producing the rows and one client thread
decoding them (bench/RESULTS.md); N streams put N backends and N decoding threads to work, as
`pg_dump -j` does for tables, where the cores allow.

How (read_in_one_snapshot):
1. The first connection opens a REPEATABLE READ READ ONLY transaction and exports its snapshot
   (pg_export_snapshot()). The key's MIN and MAX over the export's matching rows are read in
   it, so the ranges cover exactly the rows the snapshot holds.
2. Every other stream's connection, and one that runs the COUNT(*), opens the same kind of
   transaction and imports that snapshot (SET TRANSACTION SNAPSHOT) while the first holds it
   open: every stream and the count see the same data, as one connection would.
3. Each stream reads its range on a thread of its own (the first on the first connection) and
   writes its own part of the stage file and of the lines (extract.py); the parts in key order
   are the one stream's rows in its order (stage_files.Stage).
A failure in one stream stops the others at their next batch, and the first failure (in key
order) is raised.

Only PostgreSQL shares a snapshot between connections. SQLite would need WAL mode and
sqlite3_snapshot_open(), which its ADBC driver does not expose; MySQL/MariaDB's START
TRANSACTION WITH CONSISTENT SNAPSHOT is per connection (mydumper lines its connections up under
FLUSH TABLES WITH READ LOCK, which stops every writer of the server). Those read in one stream.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import TypeVar

from export_pipelines.lazy_imports import pa, sa
from export_pipelines.stages.arrow_extract import ArrowConnection, FastPathUnavailable, as_fast_path_unavailable, batch_options
from export_pipelines.stages.query import KeyRange

logger = logging.getLogger(__name__)

READ_ONLY_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

Part = TypeVar("Part")


class StreamsUnavailable(RuntimeError):
    """The read runs as one stream after all (the message says why); nothing was written."""


class StreamStopped(RuntimeError):
    """A stream gave up at a batch boundary because another stream failed or ended the read."""


class Stops:
    """Which streams should give up: those after the lowest index passed to stop_after (all, for -1)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._after: int | None = None

    def stop_after(self, index: int) -> None:
        with self._lock:
            self._after = index if self._after is None else min(self._after, index)

    def stopped(self, index: int) -> bool:
        after = self._after
        return after is not None and index > after


class RangeRows:
    """One stream's rows as Arrow batches; raises StreamStopped between batches once its stream is stopped.

    expected_rows() is None: read_in_one_snapshot counts the whole query once.
    """

    def __init__(self, connection: ArrowConnection, sql: str, batch_size: int, stopped: Callable[[], bool]):
        self._reader = connection.reader(sql, batch_options(connection.backend, batch_size))
        self._stopped = stopped

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        with as_fast_path_unavailable("read the rows"):
            for batch in self._reader:
                if self._stopped():
                    raise StreamStopped
                yield batch

    def expected_rows(self) -> None:
        return None

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> RangeRows:
        return self

    def __exit__(self, *_) -> None:
        self.close()


# (stream index, its key range, its connection in the snapshot, the read's Stops) -> the stream's part.
ReadRange = Callable[[int, KeyRange, ArrowConnection, Stops], Part]


def read_in_one_snapshot(
    url: sa.URL,
    bounds_sql: str,
    count_sql: str,
    ranges_for: Callable[[tuple], Sequence[KeyRange]],
    read_range: ReadRange,
    *,
    describe: str = "",
) -> tuple[list[Part | None], int]:
    """Each range's part, read by read_range on a connection of its own in one exported snapshot, and the
    COUNT(*) of count_sql in that snapshot.

    bounds_sql: one row (MIN, MAX, rows without a key) of the key, read in the snapshot; ranges_for turns it into
    the streams' ranges, in file order, or raises StreamsUnavailable. A part is None where its stream was
    stopped (read_range raised StreamStopped after a Stops.stop_after of an earlier stream).
    Raises the first failure of a stream in range order, and FastPathUnavailable where a connection fails.
    """
    with ArrowConnection(url) as first:
        first.run(READ_ONLY_SNAPSHOT)
        try:
            snapshot = first.scalar("SELECT pg_export_snapshot()")
            ranges = list(ranges_for(first.row(bounds_sql)))
            bounds = ", ".join(f"[{r.low}, {r.high})" for r in ranges)
            logger.info("%sreading %d streams in snapshot %s: %s", describe, len(ranges), snapshot, bounds)
            stops = Stops()
            with ThreadPoolExecutor(len(ranges) + 1, thread_name_prefix="stream") as pool:
                count = pool.submit(_count_in, url, snapshot, count_sql)
                futures = [
                    pool.submit(_stream, index, key_range, first if index == 0 else None, url, snapshot, read_range, stops)
                    for index, key_range in enumerate(ranges)
                ]
                parts: list[Part | None] = []
                failures = []
                for future in futures:
                    try:
                        parts.append(future.result())
                    except StreamStopped:
                        parts.append(None)
                    except BaseException as error:  # noqa: BLE001 - raised below, after every stream has ended
                        failures.append(error)
                        parts.append(None)
                if failures:
                    raise failures[0]
                return parts, count.result()
        finally:
            with suppress(FastPathUnavailable):
                first.run("COMMIT")


def _stream(
    index: int, key_range: KeyRange, first: ArrowConnection | None, url: sa.URL, snapshot: str, read_range: ReadRange, stops: Stops
) -> Part:
    """One stream on its thread: its connection (the first's, or a new one importing the snapshot), then its range."""
    try:
        if first is not None:
            return read_range(index, key_range, first, stops)
        with _in_snapshot(url, snapshot) as connection:
            if stops.stopped(index):
                raise StreamStopped
            return read_range(index, key_range, connection, stops)
    except StreamStopped:
        raise
    except BaseException:
        # The others stop at their next batch instead of reading rows nobody will write.
        stops.stop_after(-1)
        raise


def _count_in(url: sa.URL, snapshot: str, count_sql: str) -> int:
    with _in_snapshot(url, snapshot) as connection:
        return connection.scalar(count_sql)


@contextmanager
def _in_snapshot(url: sa.URL, snapshot: str) -> Iterator[ArrowConnection]:
    """A new connection whose transaction imported `snapshot`; closing it ends the transaction."""
    with ArrowConnection(url) as connection:
        connection.run(READ_ONLY_SNAPSHOT)
        connection.run(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        yield connection
