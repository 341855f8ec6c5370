"""A fanned-out export's chunks: the key ranges its chunk steps extract, fixed once by the plan step.

The plan step reads MIN and MAX of the chunk key over the export's matching rows and cuts
[MIN, MAX] into ranges of equal width (stages/key_ranges.py). Every chunk step then reads its
range in its own snapshot. The ranges are fixed before any chunk is read, so they partition the key space:
a row is in exactly one chunk, and a row inserted after planning with a key above MAX (a
sequence's next value) is in none. Equal widths balance chunks when keys are dense (a
sequence); a sparse or skewed key gives uneven chunks, never wrong ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from export_pipelines.lazy_imports import sa
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.stages.extract import source_dialect
from export_pipelines.stages.key_ranges import key_ranges
from export_pipelines.stages.query import KeyRange, TimeWindow, key_bounds_query


class KeyWithoutValue(ValueError):
    """Rows without a chunk key belong to no key range."""


@dataclass(frozen=True)
class ChunkPlan:
    """The ranges in the order the final step joins them (the export's), and when the bounds were read (UTC)."""

    ranges: tuple[KeyRange, ...]
    planned_at: dt.datetime


def plan_chunks(engine: sa.Engine, plan: ExportPlan, window: TimeWindow | None = None) -> ChunkPlan:
    """The key ranges of plan.parallel's chunks over the rows the export matches now.

    Raises KeyWithoutValue when matching rows have no chunk key (a NULL falls in no range).
    """
    parallel = plan.parallel
    planned_at = dt.datetime.now(dt.UTC)
    dialect = source_dialect(engine, plan)
    with engine.connect() as connection:
        low, high, without_key = connection.execute(key_bounds_query(plan, parallel.key, dialect, window)).one()
    if without_key:
        raise KeyWithoutValue(
            f"For export {plan.name}, {without_key} matching row(s) have no {parallel.key.label}, so they fall in no key range; "
            f"split by a field that always has a value (the primary key {plan.primary_key.label}) in parallel.by"
        )
    if low is None:
        # No matching rows: one chunk still runs, so the files (a header) and the bad rows come out as unsplit.
        ranges = [KeyRange(parallel.key, 0, 0, with_unfit=True)]
    else:
        ranges = key_ranges(parallel.key, low, high, parallel.chunks, descending=parallel.descending)
    return ChunkPlan(tuple(ranges), planned_at)

