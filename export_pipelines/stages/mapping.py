"""Mapping: source columns -> output columns named by `to`, with Default and Replace values.

Columns without default/replace keep their type so aggregation can still sum them;
columns with either become text, since Replace works on the value as it is written.
In an aggregating export only group values are mapped here (before grouping, so a
Replace can merge groups); measures are mapped after aggregation.
"""

from __future__ import annotations

from export_pipelines.lazy_imports import pa, pc
from export_pipelines.spec.plan import ExportPlan, OutputField
from export_pipelines.stages.stage_files import Stage, holds_group_partials, link_stage_file, read_batches, row_count, stage_writer
from export_pipelines.stages.work_location import Location
from export_pipelines.stages.text_format import CANONICAL, ValueFormat, naming_field, to_text, value_format_of
from export_pipelines.switches import MAPPING_SHORTCUT_ENV_VAR, switch_from_environment


TEXT_SOURCE_TYPES = frozenset({"string", "json"})


def typed_order_groups(plan: ExportPlan) -> list[int]:
    """Group fields that become text here (default/replace) but sort by their typed value: 2 before 10."""
    return [
        index
        for index, field in enumerate(plan.fields)
        if field.aggregation == "group"
        and (field.default is not None or field.replace)
        and field.source.field_type not in TEXT_SOURCE_TYPES
    ]


def group_order_column(index: int) -> str:
    return f"__order{index}"


def map_batch(plan: ExportPlan, batch: pa.RecordBatch) -> pa.RecordBatch:
    """The output columns; an aggregating export also carries each typed_order_groups field's typed value, last."""
    columns = {source.label: batch.column(index) for index, source in enumerate(plan.sources)}
    arrays = [
        columns[field.source.label] if plan.aggregates and field.aggregation != "group" else map_column(field, columns[field.source.label], value_format_of(plan.spec))
        for field in plan.fields
    ]
    names = [field.header for field in plan.fields]
    if plan.aggregates:
        for index in typed_order_groups(plan):
            arrays.append(columns[plan.fields[index].source.label])
            names.append(group_order_column(index))
    return pa.RecordBatch.from_arrays(arrays, names=names)


def map_column(field: OutputField, array: pa.Array, value_format: ValueFormat = CANONICAL) -> pa.Array:
    if not field.replace and field.default is None:
        return array
    # NULL is written as the empty value, and Replace and Default see the value as it is written
    # (in the file dialect's date, timestamp and decimal formats).
    with naming_field(field.header):
        text = pc.fill_null(to_text(array, value_format), "")
    if field.replace:
        text = _replace(text, field.replace)
    if field.default is not None:
        # Antavo's Default fills "empty" cells: NULL and the empty string alike.
        text = pc.if_else(pc.equal(text, ""), field.default, text)
    if array.null_count:
        # A NULL that nothing replaced stays NULL, so the file dialect writes it as NULL (null_text, unquoted).
        text = pc.if_else(pc.and_(pc.is_null(array), pc.equal(text, "")), pa.scalar(None, pa.string()), text)
    return text


def _replace(text: pa.Array, replacements: dict[str, str]) -> pa.Array:
    old = pa.array(list(replacements), type=pa.string())
    new = pa.array(list(replacements.values()), type=pa.string())
    positions = pc.index_in(text, value_set=old)
    return pc.if_else(pc.is_valid(positions), pc.take(new, positions), text)


def mapping_shortcut_enabled() -> bool:
    return switch_from_environment(MAPPING_SHORTCUT_ENV_VAR)


def maps_nothing(plan: ExportPlan) -> bool:
    """Every output column is its source column unchanged, in the extract's order."""
    return (
        not plan.aggregates
        and all(field.default is None and not field.replace for field in plan.fields)
        and [field.source for field in plan.fields] == list(plan.sources)
    )


def map_stage_file(plan: ExportPlan, source: Stage, destination: Location, *, batch_size: int) -> int:
    """The mapped rows of `source` (one file, or parallel streams' parts) in the one file `destination`; their count."""
    if holds_group_partials(source):
        # Pushed down: the database grouped raw values, so there is nothing to map before aggregating.
        link_stage_file(source, destination)
        return row_count(destination)
    # Parallel streams' parts (a tuple) are joined into one file below: a link cannot join them.
    if maps_nothing(plan) and mapping_shortcut_enabled() and not isinstance(source, tuple):
        # Serialization takes headers from the plan, not the file: the extract's file is already the mapped one.
        link_stage_file(source, destination)
        return row_count(destination)
    rows = 0
    writer = None
    try:
        for batch in read_batches(source, batch_size):
            mapped = map_batch(plan, batch)
            if writer is None:
                writer = stage_writer(destination, mapped.schema)
            writer.write_batch(mapped)
            rows += mapped.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows
