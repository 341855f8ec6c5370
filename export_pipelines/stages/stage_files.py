"""The files stages hand each other: Arrow IPC, written batch by batch and read back batch by batch.

Stage files live for one run and are read once, front to back, by the next stage. Arrow's
own file format is the in-memory layout on disk: with LZ4 frames it writes about 2x and
reads about 4x faster than Parquet tuned for the same job (bench/RESULTS.md), which is
most of what an unaggregated export spends outside the database. Each batch is read
with plain reads, not a memory map, so memory stays one batch however large the file.
A stage file's location is a local path or an object-store URL (work_location.py): a
step on one worker writes it, a step on another reads it. A stage may also be several part
files read one after another (a `Stage` tuple): the extract's parallel streams each write a
part of their own (stages/streams.py), and joining them would copy every row once more.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

from export_pipelines.lazy_imports import ipc, pa
from export_pipelines.stages.work_location import Location, copy_file, is_remote, remove_file, resolve

STAGE_SUFFIX = ".arrow"
# LZ4 halves the file for a small cost; Arrow decompresses it per buffer as it reads.
WRITE_COMPRESSION = "lz4"

# Schema metadata of a stage file that holds the database's partial aggregates per group, not rows.
GROUP_PARTIALS_METADATA = {b"export_pipelines.content": b"group_partials"}

# One stage file, or its parts in the order their rows are read (every part has the same schema).
Stage = Location | tuple[Location, ...]


def stage_parts(stage: Stage | None) -> tuple[str, ...]:
    """The files a stage is made of, as strings (none for None)."""
    if stage is None:
        return ()
    return tuple(str(part) for part in stage) if isinstance(stage, tuple) else (str(stage),)


def stage_location(stage: Stage) -> str | tuple[str, ...]:
    """The stage as plain strings, as steps hand it on: one location, or the tuple of its parts."""
    return stage_parts(stage) if isinstance(stage, tuple) else str(stage)


def part_location(location: Location, index: int) -> str:
    """Where part `index` of a stage meant for `location` is written: `extract.arrow` -> `extract.part01.arrow`."""
    text = str(location)
    base = text[: -len(STAGE_SUFFIX)] if text.endswith(STAGE_SUFFIX) else text
    return f"{base}.part{index:02d}{STAGE_SUFFIX}"


class StageWriter:
    """Arrow IPC file writer over a location; closing it finishes the file (an object store's upload too).

    A context manager taking write_batch / write_table calls, like pyarrow's own writer.
    """

    def __init__(self, location: Location, schema: pa.Schema):
        self._sink = _output(location)
        try:
            self._writer = ipc.new_file(self._sink, schema, options=ipc.IpcWriteOptions(compression=WRITE_COMPRESSION))
        except BaseException:
            self._sink.close()
            raise

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        # pyarrow's writer leaves a sink it was handed open; the sink's close is what commits an upload.
        try:
            self._writer.close()
        finally:
            self._sink.close()

    def __enter__(self) -> StageWriter:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _output(location: Location) -> pa.NativeFile:
    if not is_remote(location):
        return pa.OSFile(str(location), "wb")
    filesystem, path = resolve(location)
    return filesystem.open_output_stream(path)


def _input(location: Location) -> pa.NativeFile:
    """Random access for Arrow's file format (its footer is at the end): ranged reads on an object store."""
    if not is_remote(location):
        return pa.OSFile(str(location))
    filesystem, path = resolve(location)
    return filesystem.open_input_file(path)


def stage_writer(location: Location, schema: pa.Schema) -> StageWriter:
    """A writer (a context manager) taking write_batch / write_table calls."""
    return StageWriter(location, schema)


def write_table(table: pa.Table, location: Location) -> None:
    with stage_writer(location, table.schema) as writer:
        writer.write_table(table)


def read_batches(stage: Stage, batch_size: int) -> Iterator[pa.RecordBatch]:
    """Every batch of a stage file (of each part in turn), at most batch_size rows each; a stage with no rows
    still yields one empty batch, so the schema travels."""
    if not isinstance(stage, tuple):
        yield from _read_file_batches(stage, batch_size)
        return
    produced = False
    empty = None
    for part in stage:
        for batch in _read_file_batches(part, batch_size):
            if batch.num_rows:
                produced = True
                yield batch
            elif empty is None:
                empty = batch
    if not produced:
        yield empty


def _read_file_batches(location: Location, batch_size: int) -> Iterator[pa.RecordBatch]:
    with _input(location) as source:
        reader = ipc.open_file(source)
        produced = False
        for index in range(reader.num_record_batches):
            batch = reader.get_batch(index)
            for start in range(0, batch.num_rows, batch_size):
                produced = True
                yield batch.slice(start, batch_size)
        if not produced:
            yield pa.RecordBatch.from_pylist([], schema=reader.schema)


def read_table(stage: Stage) -> pa.Table:
    """The whole stage (tests and small aggregated results)."""
    tables = []
    for part in stage_parts(stage):
        with _input(part) as source:
            tables.append(ipc.open_file(source).read_all())
    return pa.concat_tables(tables)


def read_schema(stage: Stage) -> pa.Schema:
    with _input(stage_parts(stage)[0]) as source:
        return ipc.open_file(source).schema


def row_count(stage: Stage) -> int:
    total = 0
    for part in stage_parts(stage):
        with _input(part) as source:
            total += ipc.open_file(source).count_rows()
    return total


def link_stage_file(source: Location, destination: Location) -> None:
    """`destination` holds what `source` holds. Neither is written again (a re-execution writes
    into a new run's folder), so on a local disk a hard link does; an object store copies."""
    if is_remote(source) or is_remote(destination):
        copy_file(source, destination)
        return
    remove_file(destination)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def holds_group_partials(location: Location) -> bool:
    metadata = read_schema(location).metadata or {}
    return all(metadata.get(key) == value for key, value in GROUP_PARTIALS_METADATA.items())
