"""Extract: the plan's query (stages/query.py) run in the source database, streamed into an Arrow stage file.

Three ways to read, tried in order:
1. an aggregating export's GROUP BY in the database (partial aggregates per group), when
   the database can compute them exactly; abandoned for the row paths when a row has a
   value that does not fit its field, or SQLite's integer SUM overflows;
2. the fast path: the ADBC driver decodes rows into Arrow in C (PostgreSQL, SQLite:
   stages/arrow_extract.py), connectorx in Rust (MySQL/MariaDB: stages/mysql_extract.py);
   with `parallel: {streams: N}` on PostgreSQL, N connections read key ranges at once inside
   one exported snapshot, each into a part of the stage file (stages/streams.py);
3. the general path: SQLAlchemy streams rows in batches, converted to Arrow in Python;
   it also names every value that cannot be converted exactly.
Every path writes the same stage file and lists the same bad rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass

from export_pipelines.catalog.sql_types import DECIMAL_PRECISION, model_table
from export_pipelines.lazy_imports import pa, pc, sa
from export_pipelines.spec.plan import ExportPlan, SourceRef
from export_pipelines.stages import aggregation, arrow_extract, mysql_extract
from export_pipelines.stages.audience import load_audience_table
from export_pipelines.stages.dialects import SourceDialect, dialect_for, reflected_dialect
from export_pipelines.stages.bad_rows import (
    NOT_UTF8,
    BadRows,
    RejectedRow,
    TooManyBadRows,
    conversion_problem,
    joined_bad_rows,
    key_text,
    value_preview,
)
from export_pipelines.stages.encodings import cannot_hold, unrepresentable_rows
from export_pipelines.stages.query import (
    KEY_COLUMN,
    NO_PROBLEM,
    PROBLEM_COLUMN,
    PROBLEM_COUNT_COLUMN,
    PROBLEM_SEPARATOR,
    READ_EXACTLY,
    KeyRange,
    TimeWindow,
    build_group_query,
    build_query,
    count_query,
    key_bounds_query,
    pushes_down_aggregation,
    routed_sources,
)
from export_pipelines.stages.key_ranges import key_ranges
from export_pipelines.stages.lines_alongside import LineFormatter, LinesAlongside, NoLines, lines_alongside
from export_pipelines.stages.stage_files import Stage, part_location, stage_writer
from export_pipelines.stages.streams import RangeRows, Stops, StreamsUnavailable, read_in_one_snapshot
from export_pipelines.stages.work_location import Location, remove_file
from export_pipelines.stages.write_behind import WriteBehind

logger = logging.getLogger(__name__)


def _conversion_errors() -> tuple[type[Exception], ...]:
    # UnicodeEncodeError: text that is not UTF-8, read with the dialect's undecodable_text_read.
    return (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, UnicodeEncodeError)


@dataclass(frozen=True)
class ExtractResult:
    # The stage file, or its parts in row order when parallel streams read it.
    path: Stage
    rows: int
    expected_rows: int
    extracted_at: dt.datetime
    rejected: tuple[RejectedRow, ...] = ()
    # The same rows already mapped and written as the file's lines (stages/lines_alongside.py), or None.
    lines: Stage | None = None
    # Connections that read the rows at once in one snapshot (`parallel.streams` where it applies).
    streams: int = 1


def arrow_type(source: SourceRef) -> pa.DataType:
    match source.field_type:
        case "integer":
            return pa.int64()
        case "decimal":
            return pa.decimal128(DECIMAL_PRECISION, source.scale or 0)
        case "boolean":
            return pa.bool_()
        case "timestamp":
            return pa.timestamp("us", tz="UTC")
        case "date":
            return pa.date32()
    return pa.string()


def source_schema(sources: Sequence[SourceRef]) -> pa.Schema:
    return pa.schema([pa.field(source.label, arrow_type(source)) for source in sources])


def extract_to_stage_file(
    engine: sa.Engine,
    plan: ExportPlan,
    path: Location,
    *,
    batch_size: int,
    window: TimeWindow | None = None,
    max_bad_rows: int = 0,
    key_range: KeyRange | None = None,
    lines_to: Location | None = None,
    to_lines: LineFormatter | None = None,
) -> ExtractResult:
    """Stream the query's rows (or, pushed down, its groups' partial aggregates) into `path`; memory is bounded by batch_size.

    key_range: only one chunk of a fanned-out export (stages/chunks.py).
    lines_to, to_lines: also write the rows as the file's lines there, formatted while extracting
    (stages/lines_alongside.py); the result's `lines` says whether they were.
    With `parallel.streams` on PostgreSQL's fast path, the result's `path` and `lines` are the streams' parts.
    Raises TooManyBadRows once more than max_bad_rows rows hold a value their field cannot hold.
    """
    extracted_at = dt.datetime.now(dt.UTC)
    dialect = source_dialect(engine, plan)
    lines = _LinesRequest(plan.name, lines_to, to_lines)
    if plan.aggregates and pushes_down_aggregation(plan, dialect):
        groups = _extract_group_partials(engine, dialect, plan, path, batch_size, window, extracted_at, key_range)
        if groups is not None:
            return groups
    fast_path = arrow_extract.fast_extract_enabled() and not _has_audience_file(plan)
    streams = _streams_for(plan, dialect, fast_path)
    if fast_path:
        fast = _extract_rows_with_connectorx if dialect.name == "mysql" else _extract_rows_with_adbc
        try:
            if streams > 1:
                try:
                    return _extract_rows_in_streams(engine, dialect, plan, path, batch_size, window, extracted_at, max_bad_rows, key_range, lines)
                except (StreamsUnavailable, arrow_extract.FastPathUnavailable) as reason:
                    # A connection refused (max_connections) should cost the streams, not the fast path; a value
                    # the fast path cannot read fails the one stream too, which then hands over to the general path.
                    logger.info("%s: reading in one stream: %s", plan.name, reason)
            return fast(engine, dialect, plan, path, batch_size, window, extracted_at, BadRows(plan.name, max_bad_rows), key_range, lines)
        except arrow_extract.FastPathUnavailable as reason:
            logger.info("Extracting %s row by row: %s", plan.name, reason)
    return _extract_rows(engine, dialect, plan, path, batch_size, window, extracted_at, BadRows(plan.name, max_bad_rows), key_range, lines)


def source_dialect(engine: sa.Engine, plan: ExportPlan) -> SourceDialect:
    """How the source holds the plan's values, from its tables' declared column types (stages/dialects.py)."""
    if engine.dialect.name not in {"sqlite", "postgresql"}:
        return dialect_for(engine.dialect.name)
    tables = [model_table(plan.model)]
    if plan.audience is not None and plan.audience.query_model is not None:
        tables.append(model_table(plan.audience.query_model))
    with engine.connect() as connection:
        return reflected_dialect(connection, tables)


def _streams_for(plan: ExportPlan, dialect: SourceDialect, fast_path: bool) -> int:
    """How many streams the plan asks for and this source can give: PostgreSQL's fast path only (stages/streams.py)."""
    wanted = plan.parallel.streams if plan.parallel is not None else 1
    if wanted <= 1:
        return 1
    if dialect.name != "postgresql":
        logger.info("%s: parallel.streams reads PostgreSQL only (no other database shares a snapshot between connections); one stream", plan.name)
        return 1
    if not fast_path:
        logger.info("%s: parallel.streams reads through the fast path (ADBC) only; one stream", plan.name)
        return 1
    return wanted


def _has_audience_file(plan: ExportPlan) -> bool:
    return plan.audience is not None and plan.audience.customers_file is not None


@contextmanager
def _streamed(
    engine: sa.Engine, dialect: SourceDialect, plan: ExportPlan, build: Callable, batch_size: int, *, count: bool, undecodable_text: bool = False
) -> Iterator[tuple[int | None, Iterator]]:
    """(COUNT(*) of the query's rows or None, its rows in lists of batch_size), read in one snapshot.

    The rows come from a server-side cursor (psycopg's named cursor, PyMySQL's SSCursor) in
    batches of batch_size, so memory does not grow with the result. undecodable_text: read text
    that is not UTF-8 as the conversion refuses it (dialect.undecodable_text_read) instead of stopping.
    """
    with engine.connect() as connection, _undecodable_text_read(dialect, connection, undecodable_text):
        if engine.dialect.name == "postgresql":
            # One snapshot for the count and the rows, so "rows expected" means the same data.
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        audience_table = None
        if _has_audience_file(plan):
            # Filled before streaming is switched on: PostgreSQL cannot run DDL through a server-side cursor.
            audience_table = load_audience_table(connection, plan.audience.customers_file, plan.audience.customer)
        if dialect.snapshot_statement is not None:
            # After the audience table is filled: MySQL's START TRANSACTION commits what came before.
            connection.exec_driver_sql(dialect.snapshot_statement)
        connection = connection.execution_options(stream_results=True, yield_per=batch_size)
        query = build(audience_table)
        expected = None
        if count:
            expected = connection.execute(count_query(query)).scalar_one()
        yield expected, connection.execute(query).partitions(batch_size)


def _undecodable_text_read(dialect: SourceDialect, connection: sa.Connection, wanted: bool):
    return dialect.undecodable_text_read(connection.connection.driver_connection) if wanted else nullcontext()


def _stopped_at_undecodable_text(dialect: SourceDialect, error: sa.exc.DBAPIError) -> bool:
    return dialect.undecodable_text is not None and dialect.undecodable_text in str(error.orig)


def _extract_group_partials(
    engine: sa.Engine,
    dialect: SourceDialect,
    plan: ExportPlan,
    path: Location,
    batch_size: int,
    window: TimeWindow | None,
    extracted_at: dt.datetime,
    key_range: KeyRange | None = None,
) -> ExtractResult | None:
    """The database's GROUP BY into `path`, or None (nothing written) when the row paths must aggregate instead.

    PostgreSQL reads through ADBC where it can: COPY gets a parallel plan for the GROUP BY,
    which the general path's server-side cursor never does, and its one statement is one
    snapshot, so no COUNT of the groups is needed.
    """
    schema = aggregation.partial_schema(plan, [arrow_type(field.source) for field in plan.fields])
    fast = arrow_extract.fast_extract_enabled() and not _has_audience_file(plan)
    if dialect.name == "postgresql" and fast:
        try:
            sql = arrow_extract.literal_sql(build_group_query(plan, dialect, window, key_range=key_range), engine.dialect)
            with arrow_extract.ArrowConnection(engine.url) as connection, arrow_extract.SnapshotRows(connection, sql, batch_size) as read:
                return _write_group_partials(plan, path, schema, (pa.Table.from_batches([batch]) for batch in read), None, extracted_at)
        except arrow_extract.FastPathUnavailable as reason:
            logger.info("Reading %s's groups row by row: %s", plan.name, reason)
    if dialect.name == "mysql" and fast and mysql_extract.available(engine.url):
        # One statement through connectorx, its own snapshot: the general path's COUNT of the groups ran the GROUP BY twice.
        try:
            query = mysql_extract.group_query(build_group_query(plan, dialect, window, key_range=key_range), schema)
            with mysql_extract.MysqlRows(engine.url, dialect, arrow_extract.literal_sql(query, engine.dialect), batch_size) as read:
                return _write_group_partials(plan, path, schema, (pa.Table.from_batches([batch]) for batch in read), None, extracted_at)
        except arrow_extract.FastPathUnavailable as reason:
            logger.info("Reading %s's groups row by row: %s", plan.name, reason)
    build = lambda audience_table: build_group_query(plan, dialect, window, audience_table, key_range)  # noqa: E731
    try:
        with _streamed(engine, dialect, plan, build, batch_size, count=dialect.name != "postgresql") as (expected, chunks):
            tables = (pa.table(list(zip(*chunk, strict=True)), names=[*schema.names, PROBLEM_COUNT_COLUMN]) for chunk in chunks)
            return _write_group_partials(plan, path, schema, tables, expected, extracted_at)
    except sa.exc.DBAPIError as error:
        if _stopped_at_undecodable_text(dialect, error):
            logger.info("%s: a group's text is not UTF-8; aggregating over Arrow to name its rows", plan.name)
            return None
        if dialect.sum_overflow is None or dialect.sum_overflow not in str(error):
            raise
        logger.info("%s: the database's SUM overflows (%s); summing over Arrow instead", plan.name, dialect.name)
        return None


def _write_group_partials(
    plan: ExportPlan, path: Location, schema: pa.Schema, tables: Iterator[pa.Table], expected: int | None, extracted_at: dt.datetime
) -> ExtractResult | None:
    groups = 0
    try:
        with stage_writer(path, schema) as writer:
            for table in tables:
                if pc.sum(table[PROBLEM_COUNT_COLUMN]).as_py():
                    raise _GroupsUnusable("rows hold values that do not fit their fields; aggregating over Arrow to name them")
                if table.num_rows:
                    batch = arrow_extract.to_schema_batch(table.drop_columns([PROBLEM_COUNT_COLUMN]).combine_chunks().to_batches()[0], schema)
                    writer.write_batch(batch)
                    groups += batch.num_rows
            if groups == 0:
                writer.write_table(schema.empty_table())
    except (_GroupsUnusable, arrow_extract.FastPathUnavailable) as reason:
        logger.info("%s: %s", plan.name, reason)
        remove_file(path)
        return None
    return ExtractResult(path, groups, groups if expected is None else expected, extracted_at)


class _GroupsUnusable(RuntimeError):
    pass


def _extract_rows_with_adbc(
    engine: sa.Engine,
    dialect: SourceDialect,
    plan: ExportPlan,
    path: Location,
    batch_size: int,
    window: TimeWindow | None,
    extracted_at: dt.datetime,
    bad_rows: BadRows,
    key_range: KeyRange | None = None,
    lines: _LinesRequest | None = None,
    *,
    routed: bool = True,
) -> ExtractResult:
    """The general path's query and stage file, rows decoded by the ADBC driver (see arrow_extract).

    Values the dialect routes (dialects.Routed) are read as stored and checked per batch; the
    rows that fail are read again through the general path's per-row SQL, in the same snapshot.
    When most of the first batch fails (timestamps stored with an offset, '2024-01-05T10:00:00+02:00'),
    reading twice would cost more than it saves: the extract starts over with the per-row SQL for every row.
    """
    routes = routed_sources(plan, dialect) if routed else {}
    query = build_query(plan, dialect, window, key_range=key_range, routed=bool(routes))
    rows_sql = arrow_extract.literal_sql(query, engine.dialect)
    count_sql = arrow_extract.literal_sql(count_query(query), engine.dialect)
    with arrow_extract.ArrowConnection(engine.url) as connection, arrow_extract.SnapshotRows(connection, rows_sql, batch_size, count_sql) as read:

        def reread(batch: pa.RecordBatch, first: bool) -> pa.RecordBatch:
            return _read_failing_rows_exactly(plan, dialect, engine.dialect, window, connection, batch, routes, first=first)

        try:
            return _write_arrow_rows(plan, path, read, extracted_at, bad_rows, reread=reread if routes else None, text_checked=routes.keys(), lines=lines)
        except _RoutedReadUnhelpful as reason:
            logger.info("%s: %s; reading every row through the per-row SQL", plan.name, reason)
    # Nothing was listed yet (the first batch decided): the stage file is written anew.
    return _extract_rows_with_adbc(engine, dialect, plan, path, batch_size, window, extracted_at, bad_rows, key_range, lines, routed=False)


@dataclass(frozen=True)
class _StreamPart:
    """What one stream wrote (None where it stopped at max_bad_rows) and the bad rows it listed, numbered from its range's first row."""

    result: ExtractResult | None
    rejected: tuple[RejectedRow, ...]

    @property
    def seen(self) -> int:
        """Rows the stream's query returned, rejected ones included (as far as it read)."""
        return (self.result.rows if self.result is not None else 0) + len(self.rejected)


def _extract_rows_in_streams(
    engine: sa.Engine,
    dialect: SourceDialect,
    plan: ExportPlan,
    path: Location,
    batch_size: int,
    window: TimeWindow | None,
    extracted_at: dt.datetime,
    max_bad_rows: int,
    key_range: KeyRange | None,
    lines: _LinesRequest,
) -> ExtractResult:
    """_extract_rows_with_adbc over plan.parallel.streams key ranges at once, in one PostgreSQL snapshot
    (stages/streams.py): each stream writes its own part of the stage file and of the lines, and numbers its
    bad rows from its range's first row; the parts in key order are the one stream's rows, and its bad rows
    are renumbered as the one stream numbers them (bad_rows.joined_bad_rows).

    Raises StreamsUnavailable (nothing written) where the rows are one stream's after all, TooManyBadRows
    as the one stream raises it, FastPathUnavailable for the general path.
    """
    parallel = plan.parallel
    if routed_sources(plan, dialect):
        # Never on PostgreSQL: only SQLite reads values as stored.
        raise StreamsUnavailable("values read as stored are read again row by row on the stream's own connection")
    whole = build_query(plan, dialect, window, key_range=key_range)
    count_sql = arrow_extract.literal_sql(count_query(whole), engine.dialect)
    bounds_sql = arrow_extract.literal_sql(key_bounds_query(plan, parallel.key, dialect, window, key_range), engine.dialect)

    def ranges_for(bounds: tuple) -> list[KeyRange]:
        low, high, without_key = bounds
        if without_key:
            raise StreamsUnavailable(f"{without_key} matching row(s) have no {parallel.key.label}, which no key range holds")
        if low is None:
            raise StreamsUnavailable("no matching row has a key")
        with_unfit = key_range is None or key_range.with_unfit
        ranges = key_ranges(parallel.key, low, high, parallel.streams, descending=parallel.descending, with_unfit=with_unfit)
        if len(ranges) < 2:
            raise StreamsUnavailable(f"every matching row has the same {parallel.key.label}")
        return ranges

    def read_range(index: int, stream_range: KeyRange, connection: arrow_extract.ArrowConnection, stops: Stops) -> _StreamPart:
        sql = arrow_extract.literal_sql(build_query(plan, dialect, window, key_range=stream_range), engine.dialect)
        bad_rows = BadRows(plan.name, max_bad_rows)
        part_lines = _LinesRequest(lines.export, None if lines.destination is None else part_location(lines.destination, index), lines.to_lines)
        with RangeRows(connection, sql, batch_size, lambda: stops.stopped(index)) as read:
            try:
                result = _write_arrow_rows(plan, part_location(path, index), read, extracted_at, bad_rows, lines=part_lines)
            except TooManyBadRows:
                # Streams after this one cannot change which row is the one too many; the earlier ones can.
                stops.stop_after(index)
                return _StreamPart(None, bad_rows.in_row_order())
        return _StreamPart(result, result.rejected)

    try:
        parts, expected = read_in_one_snapshot(engine.url, bounds_sql, count_sql, ranges_for, read_range, describe=f"{plan.name}: ")
        # Up to the first stream that stopped at max_bad_rows (every stream before it read its whole range), then
        # the one too many is raised as one stream raises it.
        numbered = []
        for part in parts:
            numbered.append(part)
            if part.result is None:
                break
        rejected = joined_bad_rows(plan.name, max_bad_rows, [(part.seen, part.rejected) for part in numbered])
        results = [part.result for part in parts]
        lines_parts = tuple(result.lines for result in results)
        if None in lines_parts:
            # A stream gave its lines up (a value the file cannot write): serialize formats every row, as for one stream.
            for location in lines_parts:
                if location is not None:
                    remove_file(location)
            lines_parts = None
    except BaseException:
        for index in range(parallel.streams):
            remove_file(part_location(path, index))
            if lines.destination is not None:
                remove_file(part_location(lines.destination, index))
        raise
    rows = sum(result.rows for result in results)
    return ExtractResult(tuple(result.path for result in results), rows, expected, extracted_at, tuple(rejected), lines_parts, len(results))


def _extract_rows_with_connectorx(
    engine: sa.Engine,
    dialect: SourceDialect,
    plan: ExportPlan,
    path: Location,
    batch_size: int,
    window: TimeWindow | None,
    extracted_at: dt.datetime,
    bad_rows: BadRows,
    key_range: KeyRange | None = None,
    lines: _LinesRequest | None = None,
) -> ExtractResult:
    """The general path's query and stage file, MySQL/MariaDB rows decoded by connectorx (see mysql_extract)."""
    if not mysql_extract.available(engine.url):
        raise arrow_extract.FastPathUnavailable("connectorx does not read this URL (an option, a socket or no connectorx)")
    query = build_query(plan, dialect, window, key_range=key_range)
    rows_sql, count_sql, prepare = mysql_extract.rows_query_sql(query, plan, engine)
    with mysql_extract.MysqlRows(engine.url, dialect, rows_sql, batch_size, count_sql) as read:
        return _write_arrow_rows(plan, path, read, extracted_at, bad_rows, prepare, lines=lines)


def _write_arrow_rows(
    plan: ExportPlan,
    path: Location,
    read,
    extracted_at: dt.datetime,
    bad_rows: BadRows,
    prepare: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None,
    *,
    reread: Callable[[pa.RecordBatch, bool], pa.RecordBatch] | None = None,
    text_checked: Collection[int] = (),
    lines: _LinesRequest | None = None,
) -> ExtractResult:
    """A fast path's batches into the stage file, bad rows listed; `read` iterates batches and gives expected_rows().

    prepare: applied to each batch's rows that the query found no problem in, before the cast to the stage types.
    reread: a routed query's batch (and whether it is the first) -> the batch the general query gives
    (_read_failing_rows_exactly); text_checked: the positions whose timestamp text it checked.
    lines: where and how to write the rows as the file's lines too.
    """
    schema = source_schema(plan.sources)
    rows = seen = 0
    with stage_writer(path, schema) as writer, WriteBehind() as behind, _alongside(lines) as alongside:
        for batch in read:
            if reread is not None:
                batch = reread(batch, seen == 0)
            kept, positions = _without_problem_rows(plan, batch, seen, bad_rows)
            kept, positions = _without_undecodable_rows(plan, kept, positions, seen, bad_rows)
            if prepare is not None:
                kept = prepare(kept)
            stage_batch = arrow_extract.to_stage_batch(kept, schema=schema, sources=plan.sources, text_checked=text_checked)
            kept = _without_unrepresentable_rows(plan, stage_batch, positions, seen, bad_rows)
            seen += batch.num_rows
            behind.submit(writer.write_batch, kept)
            alongside.add(kept)
            rows += kept.num_rows
        behind.drain()
        if rows == 0:
            writer.write_table(schema.empty_table())
        lines_file = alongside.finish()
    expected = read.expected_rows()
    return ExtractResult(path, rows, rows if expected is None else expected, extracted_at, bad_rows.in_row_order(), lines_file)


class _RoutedReadUnhelpful(RuntimeError):
    pass


@dataclass(frozen=True)
class _LinesRequest:
    export: str
    destination: Location | None
    to_lines: LineFormatter | None


def _alongside(lines: _LinesRequest | None) -> LinesAlongside | NoLines:
    """A fresh writer of the lines for each attempt at the stage file (a restarted extract writes both anew)."""
    if lines is None:
        return NoLines()
    return lines_alongside(lines.destination, lines.to_lines, lines.export)


# Above this share of a first batch read again, the routed read is given up (each such row is read twice).
ROUTED_READ_GIVE_UP_SHARE = 0.5


def _read_failing_rows_exactly(
    plan: ExportPlan,
    dialect: SourceDialect,
    sql_dialect: sa.Dialect,
    window: TimeWindow | None,
    connection: arrow_extract.ArrowConnection,
    batch: pa.RecordBatch,
    routes: dict,
    *,
    first: bool = False,
) -> pa.RecordBatch:
    """A routed query's batch as the general query would have given it, without KEY_COLUMN: rows whose routed
    values fail their batch check (or are not stored as text) replaced by the general query's rows of the same keys.

    Raises FastPathUnavailable when the rows read again are not the same rows (a key that is not unique),
    and _RoutedReadUnhelpful when, in the `first` batch, more than ROUTED_READ_GIVE_UP_SHARE of the rows fail.
    """
    keys = batch.column(KEY_COLUMN)
    values = batch.drop_columns([KEY_COLUMN])
    failing = pc.equal(batch.column(PROBLEM_COLUMN), READ_EXACTLY)
    for index, route in routes.items():
        plain, readable = arrow_extract.plain_values(values.column(index), route)
        failing = pc.or_(failing, pc.invert(plain))
        if readable is not values.column(index):
            values = values.set_column(index, values.schema.field(index), readable)
    failing = pc.fill_null(failing, False)
    if not pc.any(failing).as_py():
        return values
    wanted = keys.filter(failing)
    if first and len(wanted) > ROUTED_READ_GIVE_UP_SHARE * batch.num_rows:
        raise _RoutedReadUnhelpful(f"{len(wanted)} of the first {batch.num_rows} rows need the per-row SQL")
    sql = arrow_extract.literal_sql(build_query(plan, dialect, window, keys=wanted.to_pylist()), sql_dialect)
    with closing(connection.reader(sql)) as reader:
        exact = reader.read_all()
    if not exact.column(KEY_COLUMN).combine_chunks().equals(wanted):
        raise arrow_extract.FastPathUnavailable(f"{plan.name}: the rows read again by primary key are not the batch's rows")
    exact = exact.drop_columns([KEY_COLUMN])
    for index in routes:
        # The per-row SQL passes text that only looks canonical on to the conversion, whose parse is laxer.
        arrow_extract.refuse_unparsable_text(exact.column(index).combine_chunks(), plan.sources[index])
    # The kept rows, then the rows read again, put back in the batch's order.
    kept = pc.invert(failing)
    positions = pa.concat_arrays([pc.indices_nonzero(kept), pc.indices_nonzero(failing)])
    order = pc.sort_indices(positions)
    columns = []
    for name, field in zip(values.schema.names, values.schema, strict=True):
        again = arrow_extract.same_type(exact.column(name).combine_chunks(), field.type, name)
        columns.append(pa.concat_arrays([values.column(name).filter(kept), again]).take(order))
    return pa.RecordBatch.from_arrays(columns, names=values.schema.names)


def _without_problem_rows(plan: ExportPlan, batch: pa.RecordBatch, offset: int, bad_rows: BadRows) -> tuple[pa.RecordBatch, Sequence[int]]:
    """The batch's value columns without the rows the query found a bad value in (those are listed),
    and each kept row's place in `batch`."""
    if PROBLEM_COLUMN not in batch.schema.names:
        return batch, range(batch.num_rows)
    problems = batch.column(PROBLEM_COLUMN)
    values = batch.drop_columns([PROBLEM_COLUMN])
    fine = pc.equal(problems, NO_PROBLEM)
    if pc.all(fine).as_py():
        return values, range(batch.num_rows)
    keys = _key_values(plan, values.columns)
    _reject_problem_rows(plan, arrow_extract.texts(problems), keys, offset, bad_rows)
    return values.filter(fine), pc.indices_nonzero(fine).to_pylist()


def _without_undecodable_rows(plan: ExportPlan, batch: pa.RecordBatch, positions: Sequence[int], offset: int, bad_rows: BadRows):
    """`batch` without the rows whose text field holds bytes that are not UTF-8 (SQLite's driver copies stored
    text, and a BLOB's bytes, into a text column unchecked), each listed as the general path lists it; and
    each kept row's place in the batch the query returned. A batch of valid text costs one validation per column."""
    undecodable: dict[int, int] = {}  # row -> the first column naming it, as the general path's conversion names it
    for index, source in enumerate(plan.sources):
        if source.field_type in {"string", "json"}:
            for row in arrow_extract.undecodable_positions(batch.column(index)):
                undecodable.setdefault(row, index)
    if not undecodable:
        return batch, positions
    keys = _key_values(plan, batch.columns)
    for row, index in sorted(undecodable.items()):
        row_number = offset + positions[row] + 1
        value = arrow_extract.as_bytes(batch.column(index))[row].as_py()
        bad_rows.reject(RejectedRow(row_number, _key(plan, keys, row, row_number), plan.sources[index].label, value_preview(value), NOT_UTF8))
    kept = [row for row in range(batch.num_rows) if row not in undecodable]
    return batch.take(pa.array(kept, pa.int64())), [positions[row] for row in kept]


def _without_unrepresentable_rows(plan: ExportPlan, values, positions: Sequence[int], offset: int, bad_rows: BadRows):
    """`values` (a batch or table of stage columns) without the rows whose text the file's encoding cannot
    hold, each listed as a bad row; positions: each row's place in the batch the query returned.

    A field every output of which Replaces or Defaults is left to serialization: a replacement may be
    exactly how the spec makes a value writable. So is every field of an aggregating export: leaving
    out a row would silently change a group's totals, where serialization fails the run by name.
    """
    if plan.aggregates:
        return values
    checked = [
        index
        for index, source in enumerate(plan.sources)
        if pa.types.is_string(values.schema.field(index).type)
        and any(not field.replace and field.default is None for field in plan.fields if field.source == source)
    ]
    found = unrepresentable_rows([values.column(index) for index in checked], plan.spec.encoding) if checked else None
    if found is None:
        return values
    keys = _key_values(plan, values.columns)
    for row in pc.indices_nonzero(found).to_pylist():
        row_number = offset + positions[row] + 1
        for index in checked:
            value = values.column(index)[row].as_py()
            reason = None if value is None else cannot_hold(value, plan.spec.encoding)
            if reason is not None:
                bad_rows.reject(RejectedRow(row_number, _key(plan, keys, row, row_number), plan.sources[index].label, value_preview(value), reason))
                break
    return values.filter(pc.invert(found))


def _key_values(plan: ExportPlan, columns: Sequence) -> Sequence | None:
    """The primary key's values when the export selects it (rejected rows are named by it)."""
    return columns[plan.sources.index(plan.primary_key)] if plan.primary_key in plan.sources else None


def _key(plan: ExportPlan, keys: Sequence | None, position: int, row_number: int) -> str:
    if keys is None:
        return f"row {row_number}"
    # An Arrow key column's text may hold bytes that are not UTF-8 (SQLite copies them unchecked): texts() reads them.
    key = arrow_extract.texts(keys.slice(position, 1))[0] if isinstance(keys, pa.Array | pa.ChunkedArray) else keys[position]
    return f"{plan.primary_key.label}={key_text(key)}"


def _reject_problem_rows(plan: ExportPlan, problems: Sequence[str | None], keys: Sequence | None, offset: int, bad_rows: BadRows) -> set[int]:
    """Lists each row whose PROBLEM_COLUMN is set; returns their positions."""
    positions = set()
    for position, problem in enumerate(problems):
        if problem != NO_PROBLEM:
            field, reason, stored = problem.split(PROBLEM_SEPARATOR, 2)
            row_number = offset + position + 1
            bad_rows.reject(RejectedRow(row_number, _key(plan, keys, position, row_number), field, value_preview(stored), reason))
            positions.add(position)
    return positions


def _extract_rows(
    engine: sa.Engine,
    dialect: SourceDialect,
    plan: ExportPlan,
    path: Location,
    batch_size: int,
    window: TimeWindow | None,
    extracted_at: dt.datetime,
    bad_rows: BadRows,
    key_range: KeyRange | None = None,
    lines: _LinesRequest | None = None,
    *,
    undecodable_text: bool = False,
) -> ExtractResult:
    """The general path. Where the driver stops at stored text that is not UTF-8 (SQLite's), the rows are
    read again from the start, such text read as the conversion refuses it, so its rows are bad rows
    (dialect.undecodable_text_read: slower per text value, so only once the source is known to hold some)."""
    schema = source_schema(plan.sources)
    rows = seen = 0
    build = lambda audience_table: build_query(plan, dialect, window, audience_table, key_range=key_range)  # noqa: E731
    try:
        with (
            _streamed(engine, dialect, plan, build, batch_size, count=True, undecodable_text=undecodable_text) as (expected, chunks),
            stage_writer(path, schema) as writer,
            _alongside(lines) as alongside,
        ):
            for chunk in chunks:
                table = rows_to_table(chunk, schema, plan, seen, bad_rows)
                writer.write_table(table)
                for batch in table.to_batches():
                    alongside.add(batch)
                rows += table.num_rows
                seen += len(chunk)
            if rows == 0:
                writer.write_table(schema.empty_table())
            lines_file = alongside.finish()
    except sa.exc.DBAPIError as error:
        if undecodable_text or not _stopped_at_undecodable_text(dialect, error):
            raise
        logger.info("%s: stored text that is not UTF-8; reading the rows again to name it", plan.name)
        # The stage file, the lines and the bad rows are made anew, as by a first read.
        again = BadRows(bad_rows.export, bad_rows.limit)
        return _extract_rows(engine, dialect, plan, path, batch_size, window, extracted_at, again, key_range, lines, undecodable_text=True)
    return ExtractResult(path, rows, expected, extracted_at, bad_rows.in_row_order(), lines_file)


def rows_to_table(rows: Sequence[sa.Row], schema: pa.Schema, plan: ExportPlan, offset: int, bad_rows: BadRows) -> pa.Table:
    """Python rows (value columns in schema order, then PROBLEM_COLUMN if the query has one) as an Arrow table.

    A row with a problem, or with a value that does not convert exactly, is listed in
    bad_rows and left out.
    """
    columns = list(zip(*rows, strict=True))
    positions = list(range(len(rows)))
    if len(columns) > len(schema):
        problems = columns.pop()
        rejected = _reject_problem_rows(plan, problems, _key_values(plan, columns), offset, bad_rows)
        if rejected:
            positions = [p for p in positions if p not in rejected]
            columns = [[column[p] for p in positions] for column in columns]
    arrays = []
    unconvertible: set[int] = set()
    for index, field in enumerate(schema):
        try:
            arrays.append(to_arrow(columns[index], field.type))
        except _conversion_errors():
            # A row is one bad row however many of its values are bad: the first names it.
            unconvertible |= _reject_unconvertible(plan, field, index, columns, positions, offset, bad_rows, unconvertible)
    if unconvertible:
        # Rare: only a batch holding a bad value is converted a second time, without those rows.
        keep = [p for p in range(len(positions)) if p not in unconvertible]
        arrays = [to_arrow([column[p] for p in keep], field.type) for column, field in zip(columns, schema, strict=True)]
        positions = [positions[p] for p in keep]
    return _without_unrepresentable_rows(plan, pa.Table.from_arrays(arrays, schema=schema), positions, offset, bad_rows)


def to_arrow(values: Sequence, kind: pa.DataType) -> pa.Array:
    """pa.array, refusing what it would not convert exactly (it truncates 2.5 and Decimal('2.5') to an
    integer 2) and taking what it would refuse though exact (Decimal('1.000...0') with more places than
    the scale but only zeros past it; 0 and 1 as booleans)."""
    if pa.types.is_integer(kind):
        for value in values:
            if value is not None and not _is_integral(value):
                raise TypeError(f"{value!r} is not an integer")
    elif pa.types.is_decimal(kind):
        values = [_at_scale(value, kind.scale) for value in values]
    elif pa.types.is_boolean(kind):
        values = [bool(value) if type(value) is int and value in (0, 1) else value for value in values]
    return pa.array(values, type=kind)


def _at_scale(value: object, scale: int) -> object:
    """A Decimal written with more places than `scale` whose extra places are zeros, at `scale`; else as it is."""
    if isinstance(value, decimal.Decimal) and value.is_finite() and value.as_tuple().exponent < -scale:
        with decimal.localcontext(prec=2 * DECIMAL_PRECISION + len(value.as_tuple().digits)):
            scaled = value.quantize(decimal.Decimal(1).scaleb(-scale))
        if scaled == value:
            return scaled
    return value


def _is_integral(value: object) -> bool:
    if type(value) is int:
        return True
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, decimal.Decimal) and value.is_finite() and value == value.to_integral_value()


def _reject_unconvertible(
    plan: ExportPlan,
    field: pa.Field,
    index: int,
    columns: list,
    positions: list[int],
    offset: int,
    bad_rows: BadRows,
    already: set[int],
) -> set[int]:
    """Lists each row (not `already` listed) whose value in column `index` does not convert to the field's type;
    returns their places in columns."""
    keys = _key_values(plan, columns)
    places = set()
    for place, value in enumerate(columns[index]):
        if place in already:
            continue
        try:
            to_arrow([value], field.type)
        except _conversion_errors():
            row_number = offset + positions[place] + 1
            reason = conversion_problem(value, field.type)
            bad_rows.reject(RejectedRow(row_number, _key(plan, keys, place, row_number), plan.sources[index].label, value_preview(value), reason))
            places.add(place)
    return places
