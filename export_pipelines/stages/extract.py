"""Extract: the spec's query run in the source database, streamed into a Parquet file.

Filters, ordering and JSON property lookups are pushed into SQL built with SQLAlchemy
Core from the resolved plan; every value from a spec is a bound parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from export_pipelines.catalog.sql_types import model_table
from export_pipelines.spec.plan import Condition, ExportPlan, SourceRef

ARROW_DECIMAL_PRECISION = 38


class ExtractError(RuntimeError):
    pass


@dataclass(frozen=True)
class TimeWindow:
    """Half-open [start, end) on one timestamp field."""

    source: SourceRef
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class ExtractResult:
    path: Path
    rows: int
    expected_rows: int
    extracted_at: dt.datetime


def arrow_type(source: SourceRef) -> pa.DataType:
    match source.field_type:
        case "integer":
            return pa.int64()
        case "decimal":
            return pa.decimal128(ARROW_DECIMAL_PRECISION, source.scale or 0)
        case "boolean":
            return pa.bool_()
        case "timestamp":
            return pa.timestamp("us", tz="UTC")
        case "date":
            return pa.date32()
    return pa.string()


def source_schema(sources: Sequence[SourceRef]) -> pa.Schema:
    return pa.schema([pa.field(source.label, arrow_type(source)) for source in sources])


def source_expression(table: sa.Table, source: SourceRef, dialect: str) -> sa.ColumnElement:
    column = table.c[source.column]
    if source.json_property is not None:
        return _json_property(column, source.json_property, dialect)
    if source.field_type == "json" and dialect == "postgresql":
        return sa.cast(column, sa.Text)
    return column


def _json_property(column: sa.ColumnElement, prop: str, dialect: str) -> sa.ColumnElement:
    if dialect == "postgresql":
        return column.op("->>", return_type=sa.Text)(sa.bindparam(None, prop, type_=sa.Text))
    path = sa.bindparam(None, f'$."{prop}"', type_=sa.Text)
    if dialect == "sqlite":
        # json_extract turns JSON true/false into 1/0; keep them as the words PostgreSQL's ->> gives.
        kind = sa.func.json_type(column, path)
        return sa.case(
            (kind == "true", sa.literal("true")),
            (kind == "false", sa.literal("false")),
            else_=sa.cast(sa.func.json_extract(column, path), sa.Text),
        )
    return sa.func.json_unquote(sa.func.json_extract(column, path))


def _position(column: sa.ColumnElement, value: str, dialect: str) -> sa.ColumnElement | None:
    """1-based position of value in column; None where the dialect has no such function."""
    function = {"sqlite": sa.func.instr, "postgresql": sa.func.strpos, "mysql": sa.func.instr}.get(dialect)
    return function(column, value) if function else None


def condition_clause(table: sa.Table, condition: Condition, dialect: str) -> sa.ColumnElement[bool]:
    column = source_expression(table, condition.source, dialect)
    values = condition.values
    match condition.operator:
        case "$in":
            return column.in_(values)
        case "$not_in":
            # "not in these" includes rows with no value: that is what a reader of the spec expects.
            return sa.or_(column.is_(None), column.not_in(values))
        case "$is":
            return column == values[0]
        case "$is_not":
            return sa.or_(column.is_(None), column != values[0])
        case "$gt" | "$after":
            return column > values[0]
        case "$gte":
            return column >= values[0]
        case "$lt" | "$before":
            return column < values[0]
        case "$lte":
            return column <= values[0]
        case "$is_unknown":
            return column.is_(None)
        case "$has_value":
            return column.is_not(None)
        case "$starts_with" | "$ends_with" | "$contains":
            return _text_match(column, condition.operator, values, dialect)
    raise ValueError(f"unknown filter operator {condition.operator}")


def _text_match(column, operator: str, values: tuple, dialect: str) -> sa.ColumnElement[bool]:
    # Case-sensitive everywhere: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
    clauses = []
    for value in values:
        position = _position(column, value, dialect)
        if operator == "$ends_with":
            suffix_start = sa.func.length(column) - sa.func.length(sa.literal(value)) + 1
            clauses.append(sa.and_(sa.func.length(column) >= len(value), sa.func.substr(column, suffix_start) == value))
        elif position is None:
            method = column.startswith if operator == "$starts_with" else column.contains
            clauses.append(method(value, autoescape=True))
        else:
            clauses.append(position == 1 if operator == "$starts_with" else position > 0)
    return sa.or_(*clauses)


def build_query(plan: ExportPlan, dialect: str, window: TimeWindow | None = None) -> sa.Select:
    table = model_table(plan.model)
    columns = [source_expression(table, source, dialect).label(f"c{i}") for i, source in enumerate(plan.sources)]
    query = sa.select(*columns).select_from(table)
    if plan.conditions:
        clauses = [condition_clause(table, condition, dialect) for condition in plan.conditions]
        query = query.where(sa.and_(*clauses) if plan.junction == "and" else sa.or_(*clauses))
    if window is not None:
        column = source_expression(table, window.source, dialect)
        query = query.where(column >= window.start, column < window.end)
    order = []
    for key in plan.order:
        expression = source_expression(table, key.source, dialect)
        order.append(expression.desc() if key.descending else expression.asc())
    # The primary key last makes the row order, and so the file bytes, repeatable.
    if plan.primary_key not in [key.source for key in plan.order]:
        order.append(table.c[plan.primary_key.column].asc())
    return query.order_by(*order)


def extract_to_parquet(
    engine: sa.Engine,
    plan: ExportPlan,
    path: Path,
    *,
    batch_size: int,
    window: TimeWindow | None = None,
) -> ExtractResult:
    """Stream the query's rows into `path`; memory is bounded by batch_size."""
    dialect = engine.dialect.name
    query = build_query(plan, dialect, window)
    schema = source_schema(plan.sources)
    options: dict = {"stream_results": True, "yield_per": batch_size}
    if dialect == "postgresql":
        # One snapshot for the count and the rows, so "rows expected" means the same data.
        options["isolation_level"] = "REPEATABLE READ"
    extracted_at = dt.datetime.now(dt.UTC)
    rows = 0
    with engine.connect() as connection:
        connection = connection.execution_options(**options)
        expected = connection.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()
        result = connection.execute(query)
        with pq.ParquetWriter(path, schema) as writer:
            for chunk in result.partitions(batch_size):
                writer.write_table(rows_to_table(chunk, schema, plan, rows))
                rows += len(chunk)
            if rows == 0:
                writer.write_table(schema.empty_table())
    return ExtractResult(path=path, rows=rows, expected_rows=expected, extracted_at=extracted_at)


def rows_to_table(rows: Sequence[sa.Row], schema: pa.Schema, plan: ExportPlan, offset: int) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    arrays = []
    for index, field in enumerate(schema):
        try:
            arrays.append(pa.array(columns[index], type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as error:
            raise ExtractError(_bad_value_message(plan, field, columns[index], offset, error)) from error
    return pa.Table.from_arrays(arrays, schema=schema)


def _bad_value_message(plan: ExportPlan, field: pa.Field, values: Sequence, offset: int, error: Exception) -> str:
    for position, value in enumerate(values):
        try:
            pa.array([value], type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            return (
                f"For export {plan.name}, row {offset + position + 1} (ordered by {plan.primary_key.label}) has "
                f"{field.name} = {value!r}, which is not a valid {field.type}; fix the value in the source "
                f"or the field's type in models.yaml"
            )
    return f"For export {plan.name}, column {field.name} could not be converted: {error}"
