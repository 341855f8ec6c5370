"""The Parquet files stages hand each other, read back batch by batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def read_batches(path: Path, batch_size: int) -> Iterator[pa.RecordBatch]:
    """Every batch of a stage file; a file with no rows still yields one empty batch, so the schema travels."""
    parquet = pq.ParquetFile(path)
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
