"""Aggregation: one row per group, from partial aggregates combined batch by batch.

Both execution paths meet here. Pushed down, the database's GROUP BY hands over one
row of partial aggregates per group; over Arrow, each mapped batch is reduced to its
own partials. Either way the partials are combined and finished by the same code,
so the two paths write the same bytes and memory is bounded by the number of groups.

Semantics, as an analyst checking the totals against the database expects them:
- count counts rows; sum and avg ignore NULLs (an all-NULL group sums to empty);
  sums are exact at any size: values have at most 38 digits and are added with 76
  (decimal256), which no number of rows can exceed.
- avg is sum / count of values, rounded half away from zero (like PostgreSQL's round())
  to the field's scale + 2 decimal places (an integer field's average has 2).
- min/max of text compare by code point (byte order of UTF-8); NULL and the empty
  string are one "empty" value, which is always the min, as Antavo documents.
  min/max of numbers and dates ignore NULLs.
- An empty text group value (NULL or "") is one group; groups sort ascending by the
  group fields in order, empty values first. A number, date or timestamp group field
  sorts by its typed value (2 before 10) even when default/replace made it text, and
  its NULL (defaulted) group comes first, where the pushed-down path puts it.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import dataclass

from export_pipelines.catalog.sql_types import DECIMAL_PRECISION
from export_pipelines.lazy_imports import pa, pc
from export_pipelines.spec.plan import ExportPlan, OutputField
from export_pipelines.stages.mapping import group_order_column, map_column, typed_order_groups
from export_pipelines.stages.text_format import value_format_of
from export_pipelines.stages.work_location import Location
from export_pipelines.stages.stage_files import GROUP_PARTIALS_METADATA, holds_group_partials, read_batches, read_schema, write_table

ROWS_COLUMN = "__rows"
SUM_PRECISION = 2 * DECIMAL_PRECISION
AVERAGE_EXTRA_PLACES = 2

_COMBINE = {"group": None, "count": "sum", "sum": "sum", "avg": "sum", "min": "min", "max": "max"}


@dataclass(frozen=True)
class AggregateResult:
    path: Location
    rows_in: int
    groups: int
    execution: str


def value_column(index: int) -> str:
    return f"f{index}"


def value_count_column(index: int) -> str:
    """How many non-NULL values an average's sum has."""
    return f"f{index}_n"


def sum_type(field: OutputField) -> pa.DataType:
    return pa.decimal256(SUM_PRECISION, field.source.scale or 0)


def average_scale(field: OutputField) -> int:
    return (field.source.scale or 0) + AVERAGE_EXTRA_PLACES


def partial_schema(plan: ExportPlan, value_types: list[pa.DataType], order_types: list[pa.DataType] = ()) -> pa.Schema:
    """value_types[i] is the type of field i's values as they are grouped or compared.

    order_types are the typed values of mapping.typed_order_groups (Arrow path only).
    """
    fields = [pa.field(ROWS_COLUMN, pa.int64())]
    for index, (output, kind) in enumerate(zip(plan.fields, value_types, strict=True)):
        match output.aggregation:
            case "group" | "min" | "max":
                fields.append(pa.field(value_column(index), kind))
            case "count":
                fields.append(pa.field(value_column(index), pa.int64()))
            case "sum":
                fields.append(pa.field(value_column(index), sum_type(output)))
            case "avg":
                fields.append(pa.field(value_column(index), sum_type(output)))
                fields.append(pa.field(value_count_column(index), pa.int64()))
    if order_types:
        fields += [pa.field(group_order_column(i), kind) for i, kind in zip(typed_order_groups(plan), order_types, strict=True)]
    return pa.schema(fields, metadata=GROUP_PARTIALS_METADATA)


def _order_columns(plan: ExportPlan, names: list[str]) -> list[str]:
    """The typed sort values carried along for text-mapped group fields (Arrow path only)."""
    return [group_order_column(index) for index in typed_order_groups(plan) if group_order_column(index) in names]


def _group_keys(plan: ExportPlan) -> list[str]:
    return [value_column(index) for index, field in enumerate(plan.fields) if field.aggregation == "group"]


def batch_partials(plan: ExportPlan, batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """One mapped batch reduced to one row of partial aggregates per group in it."""
    inputs: dict[str, pa.Array] = {}
    aggregations: list[tuple] = [([], "count_all")]
    renames = {"count_all": ROWS_COLUMN}
    for index, field in enumerate(plan.fields):
        name = value_column(index)
        values = batch.column(index)
        if pa.types.is_string(values.type) and field.aggregation in {"group", "min", "max"}:
            values = pc.fill_null(values, "")
        match field.aggregation:
            case "group":
                inputs[name] = values
            case "sum" | "avg":
                inputs[name] = values.cast(sum_type(field))
                aggregations.append((name, "sum"))
                renames[f"{name}_sum"] = name
                if field.aggregation == "avg":
                    aggregations.append((name, "count"))
                    renames[f"{name}_count"] = value_count_column(index)
            case "min" | "max":
                inputs[name] = values
                aggregations.append((name, field.aggregation))
                renames[f"{name}_{field.aggregation}"] = name
    for order in _order_columns(plan, schema.names):
        inputs[order] = batch.column(order)
        aggregations.append((order, "min"))
        renames[f"{order}_min"] = order
    grouped = pa.table(inputs).group_by(_group_keys(plan), use_threads=False).aggregate(aggregations)
    grouped = grouped.rename_columns([renames.get(name, name) for name in grouped.column_names])
    return _conform(plan, grouped, schema)


def _conform(plan: ExportPlan, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Partials in the schema's column order and types; a count field is the row count (Antavo counts entries)."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table[field.name].cast(field.type))
        else:
            columns.append(table[ROWS_COLUMN].cast(field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def combine(plan: ExportPlan, partials: pa.Table) -> pa.Table:
    """Partials of the same group merged into one row; associative, so it can run after every batch."""
    aggregations: list[tuple] = [(ROWS_COLUMN, "sum")]
    for index, field in enumerate(plan.fields):
        function = _COMBINE[field.aggregation]
        if function is not None:
            aggregations.append((value_column(index), function))
        if field.aggregation == "avg":
            aggregations.append((value_count_column(index), "sum"))
    aggregations += [(order, "min") for order in _order_columns(plan, partials.column_names)]
    grouped = partials.group_by(_group_keys(plan), use_threads=False).aggregate(aggregations)
    suffixes = ("_sum", "_min", "_max")
    names = [next((name.removesuffix(s) for s in suffixes if name.endswith(s)), name) for name in grouped.column_names]
    return _conform(plan, grouped.rename_columns(names), partials.schema)


def combine_batches(plan: ExportPlan, partial_tables: Iterable[pa.Table], schema: pa.Schema) -> pa.Table:
    """Fold partial tables into one row per group; holds at most the groups plus one batch's partials."""
    accumulated = schema.empty_table()
    for partials in partial_tables:
        accumulated = combine(plan, pa.concat_tables([accumulated, _conform(plan, partials, schema)]))
    return accumulated


def finish(plan: ExportPlan, combined: pa.Table) -> pa.Table:
    """Combined partials -> the output rows: sorted, averages divided, measures' default/replace applied."""
    typed_order = {index for index in typed_order_groups(plan) if group_order_column(index) in combined.column_names}
    keys = []
    for index, field in enumerate(plan.fields):
        if field.aggregation == "group":
            if index in typed_order:
                keys.append((group_order_column(index), "ascending", "at_start"))
            keys.append((value_column(index), "ascending", "at_start"))
    ordered = combined.sort_by(keys)
    columns = []
    for index, field in enumerate(plan.fields):
        values = ordered[value_column(index)].combine_chunks()
        if field.aggregation == "avg":
            values = average(values, ordered[value_count_column(index)].combine_chunks(), average_scale(field))
        if field.aggregation != "group":
            values = map_column(field, values, value_format_of(plan.spec))
        columns.append(values)
    return pa.Table.from_arrays(columns, names=[field.header for field in plan.fields])


def average(sums: pa.Array, counts: pa.Array, scale: int) -> pa.Array:
    """sum / count rounded half away from zero; one Python division per group, never per row."""
    quantum = decimal.Decimal(1).scaleb(-scale)
    with decimal.localcontext(prec=2 * SUM_PRECISION + scale):
        values = [
            None if total is None or count == 0 else (total / count).quantize(quantum, rounding=decimal.ROUND_HALF_UP)
            for total, count in zip(sums.to_pylist(), counts.to_pylist(), strict=True)
        ]
    return pa.array(values, pa.decimal256(SUM_PRECISION, scale))


def aggregate_stage_file(plan: ExportPlan, source: Location, destination: Location, *, batch_size: int) -> AggregateResult:
    """Aggregate a stage file of mapped rows (Arrow path) or of the database's group partials (pushdown)."""
    combined, execution = _combined_partials(plan, source, batch_size)
    output = finish(plan, combined)
    write_table(output, destination)
    rows_in = pc.sum(combined[ROWS_COLUMN]).as_py() or 0
    return AggregateResult(destination, rows_in, output.num_rows, execution)


def partial_aggregate_stage_file(plan: ExportPlan, source: Location, destination: Location, *, batch_size: int) -> AggregateResult:
    """One chunk of a fanned-out export: its rows (or the database's partials) combined into one row of
    partial aggregates per group, unfinished, so aggregate_partial_files can combine the chunks."""
    combined, execution = _combined_partials(plan, source, batch_size)
    write_table(combined, destination)
    rows_in = pc.sum(combined[ROWS_COLUMN]).as_py() or 0
    return AggregateResult(destination, rows_in, combined.num_rows, execution)


def aggregate_partial_files(plan: ExportPlan, sources: list[Location], destination: Location, *, batch_size: int) -> AggregateResult:
    """The chunks' partial aggregates (partial_aggregate_stage_file) combined and finished: the unsplit export's rows.

    Combining is associative (combine), so the result does not depend on how rows fell into chunks.
    execution is "combined": each chunk's own path (database or Arrow) is its partial file's to tell.
    """
    schema = read_schema(sources[0])
    tables = (pa.Table.from_batches([batch]) for source in sources for batch in read_batches(source, batch_size))
    combined = combine_batches(plan, tables, schema)
    output = finish(plan, combined)
    write_table(output, destination)
    rows_in = pc.sum(combined[ROWS_COLUMN]).as_py() or 0
    return AggregateResult(destination, rows_in, output.num_rows, "combined")


def _combined_partials(plan: ExportPlan, source: Location, batch_size: int) -> tuple[pa.Table, str]:
    pushed_down = holds_group_partials(source)
    if pushed_down:
        schema = read_schema(source)
        partial_tables = (pa.Table.from_batches([batch]) for batch in read_batches(source, batch_size))
    else:
        types = list(read_schema(source).types)
        schema = partial_schema(plan, types[: len(plan.fields)], types[len(plan.fields) :])
        partial_tables = (batch_partials(plan, batch, schema) for batch in read_batches(source, batch_size))
    return combine_batches(plan, partial_tables, schema), "pushdown" if pushed_down else "arrow"
