"""The files stages hand each other: Arrow IPC, written batch by batch and read back batch by batch.

Stage files live for one run and are read once, front to back, by the next stage. Arrow's
own file format is the in-memory layout on disk: with LZ4 frames it writes about 2x and
reads about 4x faster than Parquet tuned for the same job (bench/RESULTS.md), which is
most of what an unaggregated export spends outside the database. Each batch is read
with plain reads, not a memory map, so memory stays one batch however large the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

STAGE_SUFFIX = ".arrow"
# LZ4 halves the file for a small cost; Arrow decompresses it per buffer as it reads.
_WRITE_OPTIONS = ipc.IpcWriteOptions(compression="lz4")

# Schema metadata of a stage file that holds the database's partial aggregates per group, not rows.
GROUP_PARTIALS_METADATA = {b"export_pipelines.content": b"group_partials"}


def stage_writer(path: Path, schema: pa.Schema) -> ipc.RecordBatchFileWriter:
    """A writer (a context manager) taking write_batch / write_table calls."""
    return ipc.new_file(str(path), schema, options=_WRITE_OPTIONS)


def write_table(table: pa.Table, path: Path) -> None:
    with stage_writer(path, table.schema) as writer:
        writer.write_table(table)


def read_batches(path: Path, batch_size: int) -> Iterator[pa.RecordBatch]:
    """Every batch of a stage file, at most batch_size rows each; a file with no rows still yields one empty batch, so the schema travels."""
    with pa.OSFile(str(path)) as source:
        reader = ipc.open_file(source)
        produced = False
        for index in range(reader.num_record_batches):
            batch = reader.get_batch(index)
            for start in range(0, batch.num_rows, batch_size):
                produced = True
                yield batch.slice(start, batch_size)
        if not produced:
            yield pa.RecordBatch.from_pylist([], schema=reader.schema)


def read_table(path: Path) -> pa.Table:
    """The whole file (tests and small aggregated results)."""
    with pa.OSFile(str(path)) as source:
        return ipc.open_file(source).read_all()


def read_schema(path: Path) -> pa.Schema:
    with pa.OSFile(str(path)) as source:
        return ipc.open_file(source).schema


def row_count(path: Path) -> int:
    with pa.OSFile(str(path)) as source:
        return ipc.open_file(source).count_rows()


def holds_group_partials(path: Path) -> bool:
    metadata = read_schema(path).metadata or {}
    return all(metadata.get(key) == value for key, value in GROUP_PARTIALS_METADATA.items())
