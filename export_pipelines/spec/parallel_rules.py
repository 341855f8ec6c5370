"""An export read over key ranges (`parallel`), checked at load so a run never splits on a key it cannot.

Two ways to split, which may be combined: `chunks`, key ranges extracted by steps of their own
and joined by a final step (fan_out.py); `streams`, key ranges read at once by several
connections of one extract step inside one PostgreSQL snapshot (stages/streams.py). Either
reads ranges of one integer field and concatenates their rows in key order. That is the
unsplit export's order only when the export is sorted by that key first (ascending, or
descending: the ranges are then joined from the last to the first), so any other `order` is
refused here. An aggregating export sorts by its group fields after combining the chunks'
partial aggregates, so its chunks' order does not matter; it has no streams (the database
computes its groups in one statement). Parquet is refused: its row groups follow the batches
the rows were read in, not the rows alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from export_pipelines.catalog.models import ModelDef
from export_pipelines.spec.export import ExportSpec

if TYPE_CHECKING:
    # plan.py calls these rules; importing it at run time would be circular.
    from export_pipelines.spec.plan import OrderKey, SourceRef

# (key path, message): plan.py turns them into its PlanErrors.
Problem = tuple[str, str]


@dataclass(frozen=True)
class ParallelPlan:
    """How an export splits: `chunks` ranges of `key` as steps (None: no fan-out), each read by `streams`
    connections; joined in descending key order when `descending`."""

    chunks: int | None
    key: SourceRef
    descending: bool = False
    streams: int = 1

    @property
    def fans_out(self) -> bool:
        """Whether the export's graph has chunk steps (fan_out.py) instead of one extract step."""
        return self.chunks is not None


def parallel_problems(
    spec: ExportSpec, model_name: str, model: ModelDef, key: SourceRef | None, order: tuple[OrderKey, ...]
) -> list[Problem]:
    """Every reason `spec.parallel` cannot split this export; key: the resolved `by` (None when it did not resolve)."""
    if spec.parallel is None or key is None:
        return []
    export = f"export {spec.name}"
    if spec.format == "parquet":
        # Its row groups follow the batches the rows were read in, which chunks cut elsewhere.
        return [("parallel", f"{export} writes Parquet, whose row groups follow how the rows were read, so its key ranges "
                             "could not join into the unsplit file's bytes; write csv, psv or jsonl, or remove parallel")]
    named = "parallel.by" if spec.parallel.by is not None else "parallel"
    if key.json_property is not None or key.field_type != "integer":
        what = f"the primary key {key.label} of model {model_name}" if spec.parallel.by is None else key.label
        return [(named, f"{export} splits into key ranges of an integer field; {what} is a {key.field_type} field, "
                        "so name an integer field of the model in parallel.by")]
    if spec.aggregates:
        if spec.parallel.streams is not None and spec.parallel.streams > 1:
            return [("parallel.streams", f"{export} aggregates: the database computes its groups in one statement (PostgreSQL "
                                         "with parallel workers of its own), which streams would not split; remove parallel.streams")]
        return []
    if (order and order[0].source == key) or (not order and key.field_name == model.primary_key):
        return []
    parts = "chunks" if spec.parallel.chunks is not None else "streams"
    first = f"order starts with {order[0].source.label}" if order else f"it is sorted by the primary key {model.primary_key}"
    return [("parallel.by", f"{export} joins its {parts} in {key.label} order, but {first}; "
                            f"write order: [{key.label}, ...] (or -{key.label}), or split by the order's first field")]


def parallel_plan(spec: ExportSpec, key: SourceRef, order: tuple[OrderKey, ...]) -> ParallelPlan | None:
    if spec.parallel is None:
        return None
    descending = bool(order) and order[0].source == key and order[0].descending and not spec.aggregates
    return ParallelPlan(spec.parallel.chunks, key, descending, spec.parallel.streams or 1)
