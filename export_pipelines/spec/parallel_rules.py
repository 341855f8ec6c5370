"""A fanned-out export's key (`parallel.by`), checked at load so a run never splits on a key it cannot.

The chunk steps read key ranges of one integer field; the final step concatenates their rows
in key order. That is the unsplit export's order only when the export is sorted by that key
first (ascending, or descending: the chunks are then joined from the last range to the first),
so any other `order` is refused here. An aggregating export sorts by its group fields after
combining the chunks' partial aggregates, so its chunks' order does not matter. Parquet is
refused: its row groups follow the batches the rows were read in, not the rows alone.
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
    """How a fanned-out export splits: `chunks` ranges of `key`, joined in descending key order when `descending`."""

    chunks: int
    key: SourceRef
    descending: bool = False


def parallel_problems(
    spec: ExportSpec, model_name: str, model: ModelDef, key: SourceRef | None, order: tuple[OrderKey, ...]
) -> list[Problem]:
    """Every reason `spec.parallel` cannot split this export; key: the resolved `by` (None when it did not resolve)."""
    if spec.parallel is None or key is None:
        return []
    export = f"export {spec.name}"
    if spec.format == "parquet":
        # Its row groups follow the batches the rows were read in, which chunks cut elsewhere.
        return [("parallel", f"{export} writes Parquet, whose row groups follow how the rows were read, so its chunks "
                             "could not join into the unsplit file's bytes; write csv, psv or jsonl, or remove parallel")]
    named = "parallel.by" if spec.parallel.by is not None else "parallel"
    if key.json_property is not None or key.field_type != "integer":
        what = f"the primary key {key.label} of model {model_name}" if spec.parallel.by is None else key.label
        return [(named, f"{export} splits into key ranges of an integer field; {what} is a {key.field_type} field, "
                        "so name an integer field of the model in parallel.by")]
    if spec.aggregates or (order and order[0].source == key):
        return []
    if not order and key.field_name == model.primary_key:
        return []
    first = f"order starts with {order[0].source.label}" if order else f"it is sorted by the primary key {model.primary_key}"
    return [("parallel.by", f"{export} joins its chunks in {key.label} order, but {first}; "
                            f"write order: [{key.label}, ...] (or -{key.label}), or split by the order's first field")]


def parallel_plan(spec: ExportSpec, key: SourceRef, order: tuple[OrderKey, ...]) -> ParallelPlan | None:
    if spec.parallel is None:
        return None
    descending = bool(order) and order[0].source == key and order[0].descending and not spec.aggregates
    return ParallelPlan(spec.parallel.chunks, key, descending)
