"""Building the extract's SQL from a resolved plan: SQLAlchemy Core, every spec value a bound parameter.

Filters, windows, ordering, JSON properties, audiences and (where the database can give
exact partial aggregates) the GROUP BY are pushed into the query. What differs per
database lives in stages/dialects.py; this module only composes it.

Rows whose values their fields cannot hold are not dropped by the WHERE clause: a row that
may match, except that a value it is filtered on cannot be judged, is selected with a
PROBLEM_COLUMN saying which field, why, and the stored value, so the extract lists it as a
bad row instead of silently leaving it out (or in).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from export_pipelines.catalog.sql_types import DECIMAL_PRECISION, model_table
from export_pipelines.lazy_imports import sa
from export_pipelines.spec.plan import Condition, ConditionGroup, ExportPlan, SourceRef
from export_pipelines.stages import aggregation
from export_pipelines.stages.audience import AUDIENCE_COLUMN
from export_pipelines.stages.dialects import Check, Routed, SourceDialect

PUSHDOWN_DIALECTS = frozenset({"sqlite", "postgresql", "mysql", "duckdb"})
PROBLEM_COLUMN = "__problem"
PROBLEM_COUNT_COLUMN = "__problems"
# Field label, reason and stored value of a row's first bad value, in one text column; empty when
# none (never NULL, so ADBC's SQLite driver, which types a column by its first rows, always sees text).
PROBLEM_SEPARATOR = "\x1f"
NO_PROBLEM = ""
# A routed query's PROBLEM_COLUMN for a row to be read again exactly (never a real problem, which has two separators).
READ_EXACTLY = PROBLEM_SEPARATOR
# The primary key as stored, last in a routed query and in the query reading its rows again.
KEY_COLUMN = "__key"


@dataclass(frozen=True)
class TimeWindow:
    """Half-open [start, end) on one timestamp field."""

    source: SourceRef
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class KeyRange:
    """One chunk of a fanned-out export: the rows whose integer key is in [low, high).

    with_unfit: the chunk also takes the rows whose key value does not fit its field (so they
    are listed as bad rows, as the unsplit export lists them, instead of falling between ranges).
    """

    source: SourceRef
    low: int
    high: int
    with_unfit: bool = False


def readable(table: sa.Table | sa.Alias, source: SourceRef, dialect: SourceDialect) -> sa.ColumnElement:
    """The value as the extract selects it."""
    return dialect.readable(table.c[source.column], source)


def comparable(table: sa.Table | sa.Alias, source: SourceRef, dialect: SourceDialect) -> sa.ColumnElement:
    """The value as filters, windows and ORDER BY see it: by value and instant, not by stored form."""
    return dialect.comparable(table.c[source.column], source)


def checks(table: sa.Table | sa.Alias, source: SourceRef, dialect: SourceDialect, *, converted: bool = False) -> list[Check]:
    """What makes the source's value unfit for its field, as far as SQL must tell.

    converted: the extract reads and converts this value itself, which refuses what it can.
    """
    return dialect.checks(table.c[source.column], source, converted=converted)


def _undecided(clause: sa.ColumnElement[bool], table, source: SourceRef, dialect: SourceDialect) -> sa.ColumnElement[bool]:
    """The clause, or true where the source's value cannot be judged (so the row is kept and named as a bad row)."""
    unfit = [check.fails for check in checks(table, source, dialect)]
    return sa.or_(clause, *unfit) if unfit else clause


def condition_clause(table: sa.Table | sa.Alias, condition: Condition, dialect: SourceDialect) -> sa.ColumnElement[bool]:
    column = comparable(table, condition.source, dialect)
    values = condition.values
    match condition.operator:
        case "$in":
            clause = column.in_(values)
        case "$not_in":
            # "not in these" includes rows with no value: that is what a reader of the spec expects.
            clause = sa.or_(column.is_(None), column.not_in(values))
        case "$is":
            clause = column == values[0]
        case "$is_not":
            clause = sa.or_(column.is_(None), column != values[0])
        case "$gt" | "$after":
            clause = column > values[0]
        case "$gte":
            clause = column >= values[0]
        case "$lt" | "$before":
            clause = column < values[0]
        case "$lte":
            clause = column <= values[0]
        case "$is_unknown":
            clause = column.is_(None)
        case "$has_value":
            clause = column.is_not(None)
        case "$starts_with" | "$ends_with" | "$contains":
            clause = _text_match(column, condition.operator, values, dialect)
        case _:
            raise ValueError(f"unknown filter operator {condition.operator}")
    return _undecided(clause, table, condition.source, dialect)


def _text_match(column, operator: str, values: tuple, dialect: SourceDialect) -> sa.ColumnElement[bool]:
    # Case-sensitive everywhere: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
    clauses = []
    for value in values:
        position = dialect.position(column, value)
        if operator == "$ends_with":
            suffix_start = sa.func.length(column) - sa.func.length(sa.literal(value)) + 1
            clauses.append(sa.and_(sa.func.length(column) >= len(value), sa.func.substr(column, suffix_start) == value))
        elif position is None:
            method = column.startswith if operator == "$starts_with" else column.contains
            clauses.append(method(value, autoescape=True))
        else:
            clauses.append(position == 1 if operator == "$starts_with" else position > 0)
    return sa.or_(*clauses)


def group_clause(table: sa.Table | sa.Alias, group: ConditionGroup, dialect: SourceDialect) -> sa.ColumnElement[bool]:
    clauses = [condition_clause(table, condition, dialect) for condition in group.conditions]
    return sa.and_(*clauses) if group.junction == "and" else sa.or_(*clauses)


def problem_column(
    sources: Iterable[SourceRef],
    table: sa.Table,
    dialect: SourceDialect,
    *,
    converted: Collection[SourceRef],
    routes: Mapping[SourceRef, Routed] | None = None,
) -> sa.ColumnElement | None:
    """PROBLEM_COLUMN: NO_PROBLEM for a row whose values all fit, else '<field>\\x1f<reason>\\x1f<stored value>' of the first that does not.

    routes: sources read as stored (dialects.Routed), whose checks are left out; READ_EXACTLY first where
    one is not stored as text (such a row is read again with every check, so its first problem is the one named).
    """
    routes = routes or {}
    whens = []
    if routes:
        whens.append((sa.or_(*(route.not_plain for route in routes.values())), sa.literal(READ_EXACTLY, sa.Text)))
    separator = sa.literal(PROBLEM_SEPARATOR, sa.Text)
    for source in dict.fromkeys(sources):
        if source in routes:
            continue
        stored = sa.func.coalesce(dialect.raw_text(table.c[source.column]), sa.literal("", sa.Text))
        for check in checks(table, source, dialect, converted=source in converted):
            described = sa.literal(source.label, sa.Text) + separator + sa.literal(check.reason, sa.Text) + separator + stored
            whens.append((check.fails, described))
    return sa.case(*whens, else_=sa.literal(NO_PROBLEM, sa.Text)) if whens else None


def build_query(
    plan: ExportPlan,
    dialect: SourceDialect,
    window: TimeWindow | None = None,
    audience_table: sa.Table | None = None,
    *,
    grouped: bool = False,
    routed: bool = False,
    keys: Sequence | None = None,
    key_range: KeyRange | None = None,
) -> sa.Select:
    """The export's rows: columns c0..cN (plan.sources' readable values), then PROBLEM_COLUMN where a value may not fit.

    grouped: the rows feed a GROUP BY in the database, which adds and compares the raw
    values, so every value is checked in SQL (no conversion will see them one by one).
    routed: the values routed_sources names are selected as stored, without their checks,
    and KEY_COLUMN comes last (the fast extract checks them per batch and reads the rows
    that fail again, with `keys`). keys: only the rows with these primary keys (as stored),
    then KEY_COLUMN.
    key_range: only one chunk's rows of a fanned-out export.
    """
    table = model_table(plan.model)
    routes = {plan.sources[i]: route for i, route in routed_sources(plan, dialect, table).items()} if routed else {}
    columns = [
        (routes[source].stored if source in routes else readable(table, source, dialect)).label(f"c{i}") for i, source in enumerate(plan.sources)
    ]
    checked = [*plan.sources, *(condition.source for condition in plan.conditions)]
    if window is not None:
        checked.append(window.source)
    problems = problem_column(checked, table, dialect, converted=() if grouped else plan.sources, routes=routes)
    if problems is not None:
        columns.append(problems.label(PROBLEM_COLUMN))
    primary = table.c[plan.primary_key.column]
    if routes or keys is not None:
        columns.append(primary.label(KEY_COLUMN))
    query = sa.select(*columns).select_from(table)
    if keys is not None:
        query = query.where(primary.in_(keys))
    if plan.conditions:
        clauses = [condition_clause(table, condition, dialect) for condition in plan.conditions]
        query = query.where(sa.and_(*clauses) if plan.junction == "and" else sa.or_(*clauses))
    if window is not None:
        column = comparable(table, window.source, dialect)
        query = query.where(_undecided(sa.and_(column >= window.start, column < window.end), table, window.source, dialect))
    query = query.where(*narrowing_clauses(plan, table, dialect, audience_table))
    if key_range is not None:
        query = query.where(key_range_clause(table, key_range, dialect))
    order = []
    for key in plan.order:
        expression = comparable(table, key.source, dialect)
        order.append(expression.desc() if key.descending else expression.asc())
    # The primary key last makes the row order, and so the file bytes, repeatable.
    if plan.primary_key not in [key.source for key in plan.order]:
        order.append(comparable(table, plan.primary_key, dialect).asc())
    return query.order_by(*order)


def routed_sources(plan: ExportPlan, dialect: SourceDialect, table: sa.Table | None = None) -> dict[int, Routed]:
    """The plan's sources (by position) the fast extract may read as stored (dialects.Routed)."""
    table = model_table(plan.model) if table is None else table
    found = {}
    for index, source in enumerate(plan.sources):
        route = dialect.routed(table.c[source.column], source)
        # A source also read as another position's value is checked there: routed once, by its first place.
        if route is not None and plan.sources.index(source) == index:
            found[index] = route
    return found


def key_range_clause(table: sa.Table, key_range: KeyRange, dialect: SourceDialect) -> sa.ColumnElement[bool]:
    """The chunk's rows: keys that fit the field, in [low, high); and for the chunk `with_unfit`, the
    rows whose key does not fit (SQLite's 7.5 or 'abc' in an integer column), so each row is read once."""
    key = comparable(table, key_range.source, dialect)
    unfit = [check.fails for check in checks(table, key_range.source, dialect)]
    # A value that does not fit may still compare into a range (7.5 is in [7, 10)): ranges take fitting keys only.
    fits = [sa.not_(sa.func.coalesce(fails, sa.false())) for fails in unfit]
    clause = sa.and_(key >= key_range.low, key < key_range.high, *fits)
    return sa.or_(clause, *unfit) if key_range.with_unfit and unfit else clause


def key_bounds_query(
    plan: ExportPlan, key: SourceRef, dialect: SourceDialect, window: TimeWindow | None = None, key_range: KeyRange | None = None
) -> sa.Select:
    """MIN and MAX of the key over the export's matching rows whose key fits its field, and how many have no key.

    The audience is left out: it only narrows the rows, and bounds need only cover them.
    key_range: only one chunk's rows (its streams split it further).
    """
    table = model_table(plan.model)
    value = comparable(table, key, dialect)
    fit = [sa.not_(check.fails) for check in checks(table, key, dialect)]
    # A primary key has no NULLs; without that count, MIN and MAX of an indexed key read two index entries.
    no_key = sa.literal(0) if key == plan.primary_key else sa.func.count(sa.case((value.is_(None), 1), else_=sa.null()))
    query = sa.select(sa.func.min(value), sa.func.max(value), no_key).select_from(table)
    if plan.conditions:
        clauses = [condition_clause(table, condition, dialect) for condition in plan.conditions]
        query = query.where(sa.and_(*clauses) if plan.junction == "and" else sa.or_(*clauses))
    if plan.template_conditions is not None and plan.template_conditions.conditions:
        query = query.where(group_clause(table, plan.template_conditions, dialect))
    if window is not None:
        column = comparable(table, window.source, dialect)
        query = query.where(_undecided(sa.and_(column >= window.start, column < window.end), table, window.source, dialect))
    if key_range is not None:
        query = query.where(key_range_clause(table, key_range, dialect))
    return query.where(sa.or_(value.is_(None), sa.and_(*fit))) if fit else query


def count_query(query: sa.Select) -> sa.Select:
    """SELECT COUNT(*) of the query's rows: its FROM and WHERE without its columns, whose expressions cost per row."""
    if query._group_by_clauses:
        return sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    return query.with_only_columns(sa.func.count()).order_by(None)


def narrowing_clauses(plan: ExportPlan, table: sa.Table, dialect: SourceDialect, audience_table: sa.Table | None) -> list:
    """A KPI template's default filters and the audience, ANDed with the export's own filters."""
    clauses = []
    if plan.template_conditions is not None and plan.template_conditions.conditions:
        clauses.append(group_clause(table, plan.template_conditions, dialect))
    audience = plan.audience
    if audience is not None:
        customer = comparable(table, audience.customer, dialect)
        if audience_table is not None:
            clauses.append(customer.in_(sa.select(audience_table.c[AUDIENCE_COLUMN])))
        else:
            # An alias, so the subquery's table never reads as the outer one when both are the same model.
            members = model_table(audience.query_model).alias("audience_source")
            subquery = sa.select(comparable(members, audience.query_key, dialect))
            if audience.query_conditions.conditions:
                subquery = subquery.where(group_clause(members, audience.query_conditions, dialect))
            clauses.append(customer.in_(subquery))
    return clauses


def pushes_down_aggregation(plan: ExportPlan, dialect: SourceDialect) -> bool:
    """GROUP BY in the database where it gives the Arrow path's exact partials.

    Not when group values need default/replace first (that runs on written text), and not
    for SQLite decimals: SQLite stores them as REAL, INTEGER or text, which it can neither
    add nor group exactly.
    """
    if plan.spec.aggregation_path != "auto" or dialect.name not in PUSHDOWN_DIALECTS:
        return False
    if any(field.default is not None or field.replace for field in plan.group_fields):
        return False
    return not (dialect.name == "sqlite" and any(source.field_type == "decimal" for source in plan.sources))


def build_group_query(
    plan: ExportPlan,
    dialect: SourceDialect,
    window: TimeWindow | None = None,
    audience_table: sa.Table | None = None,
    key_range: KeyRange | None = None,
) -> sa.Select:
    """One row of partial aggregates per group, in aggregation.partial_schema's columns, then PROBLEM_COUNT_COLUMN.

    The rows' values are selected once in a subquery and grouped by its columns, so a
    value that carries a bound parameter (a JSON property) is the same expression in
    SELECT and GROUP BY, as PostgreSQL requires. PROBLEM_COUNT_COLUMN counts the group's
    rows with a value that does not fit its field; when any has one, the extract aggregates
    over Arrow instead and names them.
    """
    query = build_query(plan, dialect, window, audience_table, grouped=True, key_range=key_range).order_by(None)
    rows = query.subquery("matching_rows")
    by_label = {source.label: rows.c[f"c{i}"] for i, source in enumerate(plan.sources)}
    columns = [sa.func.count().label(aggregation.ROWS_COLUMN)]
    groups = []
    for index, field in enumerate(plan.fields):
        name = aggregation.value_column(index)
        value = by_label[field.source.label]
        if field.source.field_type == "string" and field.aggregation in {"group", "min", "max"}:
            # NULL and "" are one empty value; groups and extremes by code point as in Arrow, whatever the
            # column's collation (a case-insensitive one would merge 'a' and 'A' into one group).
            value = dialect.by_code_point(sa.func.coalesce(value, sa.literal_column("''", sa.Text)))
        match field.aggregation:
            case "group":
                groups.append(value)
                columns.append(value.label(name))
            case "count":
                columns.append(sa.func.count().label(name))
            case "sum" | "avg":
                columns.append(_exact_sum(value, field.source).label(name))
                if field.aggregation == "avg":
                    columns.append(sa.func.count(value).label(aggregation.value_count_column(index)))
            case "min":
                columns.append(sa.func.min(value).label(name))
            case "max":
                columns.append(sa.func.max(value).label(name))
    problem_count = (
        sa.func.count(sa.case((rows.c[PROBLEM_COLUMN] != NO_PROBLEM, 1), else_=sa.null())) if PROBLEM_COLUMN in rows.c else sa.literal(0, sa.BigInteger)
    )
    columns.append(problem_count.label(PROBLEM_COUNT_COLUMN))
    return sa.select(*columns).group_by(*groups)


def _exact_sum(value: sa.ColumnElement, source: SourceRef) -> sa.ColumnElement:
    from export_pipelines.catalog.column_types import ExactDecimal

    # PostgreSQL sums numeric and bigint exactly as numeric, MySQL/MariaDB as DECIMAL (a 38-digit field's
    # sums stay far within their 65 digits); SQLite's integer SUM raises on overflow
    # (the extract then aggregates over Arrow). Decimals never reach SQLite's SUM (pushes_down_aggregation).
    # ExactDecimal: Numeric's result processing goes through a float where a dialect declares no native decimals (duckdb_engine).
    return sa.type_coerce(sa.func.sum(value), ExactDecimal(2 * DECIMAL_PRECISION, source.scale or 0))
