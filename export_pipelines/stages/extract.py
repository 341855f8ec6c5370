"""Extract: the spec's query run in the source database, streamed into an Arrow stage file (stages/stage_files.py).

Filters, ordering and JSON property lookups are pushed into SQL built with SQLAlchemy
Core from the resolved plan; every value from a spec is a bound parameter. An
aggregating export's GROUP BY is pushed down too where the database can give the
exact partial aggregates the Arrow path would (see stages/aggregation.py).
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from export_pipelines.catalog.sql_types import DECIMAL_PRECISION, model_table
from export_pipelines.spec.plan import Condition, ConditionGroup, ExportPlan, SourceRef
from export_pipelines.stages import aggregation, arrow_extract
from export_pipelines.stages.bad_rows import BadRows, RejectedRow, value_preview
from export_pipelines.stages.audience import AUDIENCE_COLUMN, load_audience_table
from export_pipelines.stages.stage_files import stage_writer
from export_pipelines.stages.arrow_runtime import prepare_pyarrow
from export_pipelines.stages.write_behind import WriteBehind

ARROW_DECIMAL_PRECISION = 38
PUSHDOWN_DIALECTS = frozenset({"sqlite", "postgresql"})
logger = logging.getLogger(__name__)


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
    rejected: tuple[RejectedRow, ...] = ()


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


def build_query(
    plan: ExportPlan, dialect: str, window: TimeWindow | None = None, audience_table: sa.Table | None = None
) -> sa.Select:
    table = model_table(plan.model)
    columns = [_selected(table, source, dialect).label(f"c{i}") for i, source in enumerate(plan.sources)]
    query = sa.select(*columns).select_from(table)
    if plan.conditions:
        clauses = [condition_clause(table, condition, dialect) for condition in plan.conditions]
        query = query.where(sa.and_(*clauses) if plan.junction == "and" else sa.or_(*clauses))
    if window is not None:
        column = source_expression(table, window.source, dialect)
        query = query.where(column >= window.start, column < window.end)
    query = query.where(*narrowing_clauses(plan, table, dialect, audience_table))
    order = []
    for key in plan.order:
        expression = source_expression(table, key.source, dialect)
        order.append(expression.desc() if key.descending else expression.asc())
    # The primary key last makes the row order, and so the file bytes, repeatable.
    if plan.primary_key not in [key.source for key in plan.order]:
        order.append(table.c[plan.primary_key.column].asc())
    return query.order_by(*order)


def _selected(table: sa.Table, source: SourceRef, dialect: str) -> sa.ColumnElement:
    """A column as the extract reads it: SQLite decimals in exact minor units, as the pushed-down SUM adds them."""
    value = source_expression(table, source, dialect)
    if source.field_type == "decimal" and dialect == "sqlite":
        return sa.type_coerce(_sqlite_minor_units(value, source.scale or 0), _MinorUnits(source.scale or 0))
    return value


def narrowing_clauses(plan: ExportPlan, table: sa.Table, dialect: str, audience_table: sa.Table | None) -> list:
    """A KPI template's default filters and the audience, ANDed with the export's own filters."""
    clauses = []
    if plan.template_conditions is not None and plan.template_conditions.conditions:
        clauses.append(group_clause(table, plan.template_conditions, dialect))
    audience = plan.audience
    if audience is not None:
        customer = source_expression(table, audience.customer, dialect)
        if audience_table is not None:
            clauses.append(customer.in_(sa.select(audience_table.c[AUDIENCE_COLUMN])))
        else:
            # An alias, so the subquery's table never reads as the outer one when both are the same model.
            members = model_table(audience.query_model).alias("audience_source")
            subquery = sa.select(source_expression(members, audience.query_key, dialect))
            if audience.query_conditions.conditions:
                subquery = subquery.where(group_clause(members, audience.query_conditions, dialect))
            clauses.append(customer.in_(subquery))
    return clauses


def group_clause(table: sa.Table | sa.Alias, group: ConditionGroup, dialect: str) -> sa.ColumnElement[bool]:
    clauses = [condition_clause(table, condition, dialect) for condition in group.conditions]
    return sa.and_(*clauses) if group.junction == "and" else sa.or_(*clauses)


def pushes_down_aggregation(plan: ExportPlan, dialect: str) -> bool:
    """GROUP BY in the database, unless group values need default/replace first (that runs on written text)."""
    return (
        plan.spec.aggregation_path == "auto"
        and dialect in PUSHDOWN_DIALECTS
        and not any(field.default is not None or field.replace for field in plan.group_fields)
    )


def build_group_query(
    plan: ExportPlan, dialect: str, window: TimeWindow | None = None, audience_table: sa.Table | None = None
) -> sa.Select:
    """One row of partial aggregates per group, in aggregation.partial_schema's columns.

    The rows' values are selected once in a subquery and grouped by its columns, so a
    value that carries a bound parameter (a JSON property) is the same expression in
    SELECT and GROUP BY, as PostgreSQL requires. SQLite decimals arrive as integer minor
    units (see _selected), so they group, compare and sum exactly.
    """
    rows = build_query(plan, dialect, window, audience_table).order_by(None).subquery("matching_rows")
    by_label = {source.label: rows.c[f"c{i}"] for i, source in enumerate(plan.sources)}
    columns = [sa.func.count().label(aggregation.ROWS_COLUMN)]
    groups = []
    for index, field in enumerate(plan.fields):
        name = aggregation.value_column(index)
        value = by_label[field.source.label]
        if field.source.field_type == "string" and field.aggregation in {"group", "min", "max"}:
            # NULL and "" are one empty value; code point order as in Arrow, whatever the database's collation.
            value = sa.func.coalesce(value, sa.literal_column("''", sa.Text))
            if dialect == "postgresql" and field.aggregation != "group":
                value = sa.collate(value, "C")
        match field.aggregation:
            case "group":
                groups.append(value)
                columns.append(value.label(name))
            case "count":
                columns.append(sa.func.count().label(name))
            case "sum" | "avg":
                columns.append(_exact_sum(value, field.source, dialect).label(name))
                if field.aggregation == "avg":
                    columns.append(sa.func.count(value).label(aggregation.value_count_column(index)))
            case "min":
                columns.append(sa.func.min(value).label(name))
            case "max":
                columns.append(sa.func.max(value).label(name))
    return sa.select(*columns).group_by(*groups)


class _MinorUnits(sa.types.TypeDecorator):
    """An integer count of 10^-scale units read back as the exact Decimal."""

    impl = sa.BigInteger
    cache_ok = True

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def process_result_value(self, value, dialect):
        return None if value is None else decimal.Decimal(value).scaleb(-self.scale)


def _sqlite_minor_units(value: sa.ColumnElement, scale: int) -> sa.ColumnElement:
    # SQLite keeps decimals as 8-byte floats, and a float SUM drifts (0.1 + 0.2); each value rounded (half away
    # from zero) to its minor units is exact (scale digits are all it has), and SQLite's integer SUM is exact or raises.
    return sa.cast(sa.func.round(value * 10**scale), sa.BigInteger)


def _exact_sum(value: sa.ColumnElement, source: SourceRef, dialect: str) -> sa.ColumnElement:
    if source.field_type == "decimal" and dialect == "sqlite":
        # Already minor units (the subquery selected them): an integer SUM.
        return sa.type_coerce(sa.func.sum(value), _MinorUnits(source.scale or 0))
    # PostgreSQL sums numeric and bigint exactly as numeric; SQLite's integer SUM raises on overflow.
    return sa.type_coerce(sa.func.sum(value), sa.Numeric(DECIMAL_PRECISION * 2, source.scale or 0, asdecimal=True))


def extract_to_stage_file(
    engine: sa.Engine,
    plan: ExportPlan,
    path: Path,
    *,
    batch_size: int,
    window: TimeWindow | None = None,
    max_bad_rows: int = 0,
) -> ExtractResult:
    """Stream the query's rows (or, pushed down, its groups' partial aggregates) into `path`; memory is bounded by batch_size."""
    prepare_pyarrow()
    dialect = engine.dialect.name
    pushdown = plan.aggregates and pushes_down_aggregation(plan, dialect)
    if pushdown:
        value_types = [arrow_type(field.source) for field in plan.fields]
        schema = aggregation.partial_schema(plan, value_types)
    else:
        schema = source_schema(plan.sources)
    extracted_at = dt.datetime.now(dt.UTC)
    if arrow_extract.fast_extract_enabled() and not _has_audience_file(plan) and (not pushdown or dialect == "postgresql"):
        try:
            return _extract_with_adbc(engine, plan, path, schema, batch_size, window, extracted_at, pushdown)
        except arrow_extract.FastPathUnavailable as reason:
            logger.info("Extracting %s row by row: %s", plan.name, reason)
    snapshot: dict = {}
    if dialect == "postgresql":
        # One snapshot for the count and the rows, so "rows expected" means the same data.
        snapshot["isolation_level"] = "REPEATABLE READ"
    rows = 0
    bad_rows = BadRows(plan.name, max_bad_rows)
    with engine.connect() as connection:
        connection = connection.execution_options(**snapshot)
        audience_table = None
        if _has_audience_file(plan):
            # Filled before streaming is switched on: PostgreSQL cannot run DDL through a server-side cursor.
            audience_table = load_audience_table(connection, plan.audience.customers_file, plan.audience.customer)
        connection = connection.execution_options(stream_results=True, yield_per=batch_size)
        query = (build_group_query if pushdown else build_query)(plan, dialect, window, audience_table)
        if pushdown and dialect == "postgresql":
            # In the REPEATABLE READ snapshot a COUNT(*) of the groups is exactly the groups the query returns:
            # counting first would run the GROUP BY twice.
            expected = None
        else:
            expected = connection.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()
        result = connection.execute(query)
        with stage_writer(path, schema) as writer:
            seen = 0
            for chunk in result.partitions(batch_size):
                table = rows_to_table(chunk, schema, plan, seen, bad_rows)
                writer.write_table(table)
                rows += table.num_rows
                seen += len(chunk)
            if rows == 0:
                writer.write_table(schema.empty_table())
    expected_rows = rows if expected is None else expected
    return ExtractResult(path, rows, expected_rows, extracted_at, tuple(bad_rows.rows))


def _has_audience_file(plan: ExportPlan) -> bool:
    return plan.audience is not None and plan.audience.customers_file is not None


def _extract_with_adbc(
    engine: sa.Engine,
    plan: ExportPlan,
    path: Path,
    schema: pa.Schema,
    batch_size: int,
    window: TimeWindow | None,
    extracted_at: dt.datetime,
    pushdown: bool,
) -> ExtractResult:
    """The general path's query and stage file, rows decoded by the ADBC driver (see arrow_extract).

    A pushed-down GROUP BY (PostgreSQL only) is read this way too: ADBC reads with COPY, for
    which PostgreSQL plans the GROUP BY with parallel workers, which the general path's
    server-side cursor never gets. Its one statement is one snapshot, so the groups it returns
    are the groups there are, and no COUNT is run.
    """
    if pushdown:
        rows_sql = arrow_extract.literal_sql(build_group_query(plan, engine.dialect.name, window), engine.dialect)
        count_sql = None
        to_stage = partial(arrow_extract.to_schema_batch, schema=schema)
    else:
        query = build_query(plan, engine.dialect.name, window)
        rows_sql = arrow_extract.literal_sql(query, engine.dialect)
        count_sql = arrow_extract.literal_sql(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()), engine.dialect)
        to_stage = partial(arrow_extract.to_stage_batch, schema=schema, sources=plan.sources)
    rows = 0
    with arrow_extract.ArrowConnection(engine.url) as connection, arrow_extract.SnapshotRows(connection, rows_sql, batch_size, count_sql) as read:
        with stage_writer(path, schema) as writer, WriteBehind() as behind:
            for batch in read:
                behind.submit(writer.write_batch, to_stage(batch))
                rows += batch.num_rows
            behind.drain()
            if rows == 0:
                writer.write_table(schema.empty_table())
        expected = read.expected_rows()
    return ExtractResult(path=path, rows=rows, expected_rows=rows if expected is None else expected, extracted_at=extracted_at)


def rows_to_table(
    rows: Sequence[sa.Row], schema: pa.Schema, plan: ExportPlan, offset: int, bad_rows: BadRows | None = None
) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    arrays = []
    rejected: set[int] = set()
    for index, field in enumerate(schema):
        try:
            arrays.append(pa.array(columns[index], type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as error:
            if bad_rows is None:
                raise ExtractError(_bad_value_message(plan, field, columns[index], offset, error)) from error
            rejected |= _reject_unconvertible(plan, schema, columns, index, offset, bad_rows)
    if rejected:
        # Rare: only a batch holding a bad row is converted a second time, without those rows.
        kept = [position for position in range(len(rows)) if position not in rejected]
        arrays = [pa.array([column[p] for p in kept], type=field.type) for column, field in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def _reject_unconvertible(
    plan: ExportPlan, schema: pa.Schema, columns: list, index: int, offset: int, bad_rows: BadRows
) -> set[int]:
    field = schema.field(index)
    label = plan.sources[index].label if index < len(plan.sources) else field.name
    key_index = next((i for i, source in enumerate(plan.sources) if source == plan.primary_key), None)
    positions = set()
    for position, value in enumerate(columns[index]):
        try:
            pa.array([value], type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            row_number = offset + position + 1
            key = f"{plan.primary_key.label}={columns[key_index][position]}" if key_index is not None else f"row {row_number}"
            bad_rows.reject(RejectedRow(row_number, key, label, value_preview(value), f"not a valid {field.type}"))
            positions.add(position)
    return positions


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
