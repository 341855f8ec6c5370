"""The Parquet files stages hand each other, read back batch by batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


# Stage files live for one run and are read once, front to back: LZ4 without dictionaries or statistics
# writes 1.6x and reads 3.6x faster than Parquet's defaults, at the same size (bench/RESULTS.md).
STAGE_PARQUET_OPTIONS = {"compression": "lz4", "use_dictionary": False, "write_statistics": False}


def read_batches(path: Path, batch_size: int) -> Iterator[pa.RecordBatch]:
    """Every batch of a stage file; a file with no rows still yields one empty batch, so the schema travels."""
    # pre_buffer would read every row group's column chunks ahead: memory would grow with the file.
    parquet = pq.ParquetFile(path, pre_buffer=False)
    produced = False
    for batch in parquet.iter_batches(batch_size=batch_size):
        produced = True
        yield batch
    if not produced:
        yield pa.RecordBatch.from_pylist([], schema=parquet.schema_arrow)


# Schema metadata of a stage file that holds the database's partial aggregates per group, not rows.
GROUP_PARTIALS_METADATA = {b"export_pipelines.content": b"group_partials"}


def holds_group_partials(path: Path) -> bool:
    metadata = pq.read_schema(path).metadata or {}
    return all(metadata.get(key) == value for key, value in GROUP_PARTIALS_METADATA.items())
