"""Fast extract: the database driver decodes rows straight into Arrow batches (ADBC).

The general path builds every value in Python, which tops out near 0.1 M rows/s; ADBC's
drivers decode in C (PostgreSQL over binary COPY), so extraction runs at the database's
own speed. The SQL is the general path's (build_query), with bound values rendered by
SQLAlchemy as escaped literals since ADBC binds by Arrow type; each column then becomes
the stage file's type with one Arrow cast, which gives the same values the general path's
Python conversion gives. Anything this path is not sure about (a driver type it does not
expect, a value a cast refuses, an audience table on the other connection) raises
FastPathUnavailable, and the caller runs the general path, which also names bad rows.

EXPORT_FAST_EXTRACT=0 turns this path off.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress

from export_pipelines.catalog.sql_types import SQLITE_TIMESTAMP_TEXT
from export_pipelines.lazy_imports import adbc_driver_manager, pa, pc, sa
from export_pipelines.spec.plan import SourceRef
from export_pipelines.stages.dialects import dialect_for
from export_pipelines.switches import FAST_EXTRACT_ENV_VAR, switch_from_environment

# PostgreSQL's driver sizes batches in bytes; rows of an export are rarely wider than this.
POSTGRES_BYTES_PER_ROW_HINT = 200


class FastPathUnavailable(RuntimeError):
    pass


def fast_extract_enabled() -> bool:
    return switch_from_environment(FAST_EXTRACT_ENV_VAR)


def driver_for(url: sa.URL):
    """The ADBC driver package for the URL's database, or None where there is none."""
    # The low-level API: the drivers' DB-API modules import pandas (0.4 s), which nothing here needs.
    try:
        if url.get_backend_name() == "postgresql":
            import adbc_driver_postgresql as driver
        elif url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" and not url.query:
            import adbc_driver_sqlite as driver
        else:
            return None
    except ImportError:
        return None
    return driver


def literal_sql(query: sa.Select, dialect: sa.Dialect) -> str:
    # A "format"/"pyformat" dialect doubles every % for its DB-API; ADBC takes the SQL as it is.
    plain = type(dialect)(paramstyle="named")
    try:
        return str(query.compile(dialect=plain, compile_kwargs={"literal_binds": True}))
    except (sa.exc.CompileError, NotImplementedError) as error:
        raise FastPathUnavailable(f"the query's values cannot be rendered as SQL literals: {error}") from error


def libpq_uri(url: sa.URL) -> str:
    """The URL as libpq reads it: host, port, user, password and query options such as `options`.

    SQLAlchemy writes a space in a query value as '+', which libpq does not decode: its
    values are percent-encoded here.
    """
    base = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    pairs = [(key, value) for key, values in url.query.items() for value in (values if isinstance(values, tuple) else (values,))]
    return f"{base}?{urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)}" if pairs else base


class ArrowConnection:
    """One ADBC connection: statements run, and query results read as Arrow batches."""

    def __init__(self, url: sa.URL):
        driver = driver_for(url)
        if driver is None:
            raise FastPathUnavailable(f"no ADBC driver for {url.get_backend_name()}")
        try:
            if url.get_backend_name() == "postgresql":
                self._database = driver.connect(libpq_uri(url))
            else:
                self._database = driver.connect(url.database)
            self._connection = adbc_driver_manager.AdbcConnection(self._database)
        except adbc_driver_manager.Error as error:
            raise FastPathUnavailable(f"ADBC could not connect: {error}") from error
        self.backend = url.get_backend_name()
        self.url = url
        for statement in dialect_for(self.backend).session_settings:
            self.run(statement)

    def run(self, sql: str) -> None:
        with as_fast_path_unavailable("run a statement"), closing(adbc_driver_manager.AdbcStatement(self._connection)) as statement:
            statement.set_sql_query(sql)
            statement.execute_update()

    def scalar(self, sql: str):
        return self.row(sql)[0]

    def row(self, sql: str) -> tuple:
        """The first row of the result, as Python values."""
        with closing(self.reader(sql)) as reader, as_fast_path_unavailable("read a result"):
            table = reader.read_all()
        return tuple(column[0].as_py() for column in table.columns)

    def reader(self, sql: str, options: dict[str, str] | None = None) -> _ClosingReader:
        statement = adbc_driver_manager.AdbcStatement(self._connection)
        try:
            with as_fast_path_unavailable("run the query"):
                statement.set_sql_query(sql)
                if options:
                    statement.set_options(**options)
                stream, _ = statement.execute_query()
            return _ClosingReader(pa.RecordBatchReader.from_stream(stream), statement)
        except BaseException:
            statement.close()
            raise

    def close(self) -> None:
        self._connection.close()
        self._database.close()

    def __enter__(self) -> ArrowConnection:
        return self

    def __exit__(self, *_) -> None:
        self.close()


@contextmanager
def as_fast_path_unavailable(doing: str) -> Iterator[None]:
    """A driver error means "use the general path", which reports real problems in its own words."""
    try:
        yield
    # A driver's error while a result streams reaches Python through Arrow's C stream as an OSError.
    except (adbc_driver_manager.Error, pa.ArrowException, OSError) as error:
        raise FastPathUnavailable(f"ADBC could not {doing}: {error}") from error


class _ClosingReader:
    """A result's batches; closing it closes the statement that produced them."""

    def __init__(self, reader: pa.RecordBatchReader, statement):
        self._reader, self._statement = reader, statement

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return iter(self._reader)

    def read_all(self) -> pa.Table:
        return self._reader.read_all()

    def close(self) -> None:
        self._reader.close()
        self._statement.close()


def batch_options(backend: str, batch_size: int) -> dict[str, str]:
    if backend == "postgresql":
        return {"adbc.postgresql.batch_size_hint_bytes": str(batch_size * POSTGRES_BYTES_PER_ROW_HINT)}
    return {"adbc.sqlite.query.batch_rows": str(batch_size)}


class SnapshotRows:
    """A query's rows as Arrow batches and, given count_sql, the COUNT(*) of the same rows in the same snapshot.

    PostgreSQL: a REPEATABLE READ transaction whose snapshot a second connection imports
    (pg_export_snapshot), so the server counts on one core while this process decodes the
    rows on the other. SQLite: the count first, in the rows' read transaction. Without a
    count, the one statement is its own snapshot.
    """

    def __init__(self, connection: ArrowConnection, rows_sql: str, batch_size: int, count_sql: str | None = None):
        self._connection = connection
        self._reader: _ClosingReader | None = None
        self._counter: ArrowConnection | None = None
        self._count_thread: ThreadPoolExecutor | None = None
        self._count: Future[int] | None = None
        self._expected: int | None = None
        self._in_transaction = count_sql is not None
        try:
            if count_sql is not None and connection.backend == "postgresql":
                connection.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                snapshot = connection.scalar("SELECT pg_export_snapshot()")
                self._counter = ArrowConnection(connection.url)
                self._counter.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                self._counter.run(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                self._count_thread = ThreadPoolExecutor(1, thread_name_prefix="snapshot-count")
                self._count = self._count_thread.submit(self._counter.scalar, count_sql)
            elif count_sql is not None:
                connection.run("BEGIN")
                self._expected = connection.scalar(count_sql)
            self._reader = connection.reader(rows_sql, batch_options(connection.backend, batch_size))
        except FastPathUnavailable:
            self.close()
            raise

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        with as_fast_path_unavailable("read the rows"):
            yield from self._reader

    def expected_rows(self) -> int | None:
        """The snapshot's COUNT(*), or None when no count_sql was given."""
        if self._count is not None:
            self._expected = self._count.result()
            self._count = None
        return self._expected

    def close(self) -> None:
        """Ends both read-only transactions (nothing to commit) and closes the second connection."""
        if self._reader is not None:
            self._reader.close()
        if self._count_thread is not None:
            self._count_thread.shutdown(wait=True)
        if self._counter is not None:
            self._counter.close()
        if self._in_transaction:
            with suppress(FastPathUnavailable):
                self._connection.run("COMMIT")

    def __enter__(self) -> SnapshotRows:
        return self

    def __exit__(self, *_) -> None:
        self.close()


def to_stage_batch(batch: pa.RecordBatch, schema: pa.Schema, sources: tuple[SourceRef, ...], text_checked: Collection[int] = ()) -> pa.RecordBatch:
    """text_checked: positions of timestamp text already known to be in the canonical form (plain_values, refuse_unparsable_text)."""
    arrays = [
        to_stage_column(batch.column(i), source, field.type, text_checked=i in text_checked)
        for i, (source, field) in enumerate(zip(sources, schema, strict=True))
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def to_schema_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Columns whose meaning the query fixes (counts, sums, group values) cast to the schema's types."""
    return pa.RecordBatch.from_arrays([cast_column(batch.column(i), field.type) for i, field in enumerate(schema)], schema=schema)


def cast_column(array: pa.Array, target: pa.DataType, label: str | None = None) -> pa.Array:
    """A driver column as the stage file's type, with the values the general path's conversion gives."""
    if isinstance(array.type, pa.BaseExtensionType):
        # PostgreSQL numeric (opaque) and json arrive as extension types over their text.
        array = array.storage
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), target)
    try:
        if pa.types.is_timestamp(target) and (pa.types.is_string(array.type) or (pa.types.is_timestamp(array.type) and array.type.tz is None)):
            # Naive values are UTC (SQLite's canonical UTC text, PostgreSQL's timestamp without time zone).
            return pc.cast(pc.cast(array, pa.timestamp("us")), target)
        return pc.cast(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise FastPathUnavailable(f"{label or array.type}: {error}") from error


# The driver types each field type may arrive as (PostgreSQL's, then SQLite's readable forms, stages/dialects.py),
# as the names of pyarrow.types' predicates (named, so that loading this module does not import pyarrow).
EXPECTED_DRIVER_TYPES = {
    "integer": ("is_integer",),
    # PostgreSQL numeric as its text (positional, every digit), bigint; SQLite's number text; MySQL's DECIMAL
    # text already cast to the field's decimal (mysql_extract.from_text).
    "decimal": ("is_string", "is_integer", "is_decimal"),
    # SQLite's integers, MySQL's TINYINT(1) (int8); only 0 and 1 are taken (to_stage_column).
    "boolean": ("is_boolean", "is_integer"),
    "timestamp": ("is_timestamp", "is_string"),
    "date": ("is_date32", "is_string"),
    "string": ("is_string", "is_large_string"),
    "json": ("is_string", "is_large_string"),
}


def to_stage_column(array: pa.Array, source: SourceRef, target: pa.DataType, *, text_checked: bool = False) -> pa.Array:
    """cast_column, for a row's field: only the driver types expected for its field type are taken."""
    kind = array.storage.type if isinstance(array.type, pa.BaseExtensionType) else array.type
    if not pa.types.is_null(kind) and not any(getattr(pa.types, check)(kind) for check in EXPECTED_DRIVER_TYPES[source.field_type]):
        raise FastPathUnavailable(f"{source.label} arrived as {kind}, not a type expected for a {source.field_type}")
    if not text_checked:
        refuse_unparsable_text(array, source)
    if source.field_type == "boolean" and pa.types.is_integer(kind) and not _all_in(array, (0, 1)):
        raise FastPathUnavailable(f"{source.label}: an integer other than 0 and 1")
    # A string or json field's text is UTF-8: the extract took out the rows whose bytes are not (undecodable_positions).
    return cast_column(array, target, source.label)


def undecodable_positions(array: pa.Array) -> list[int]:
    """The places of a text column's values that are not UTF-8 (SQLite's driver copies stored text, and a BLOB's
    bytes, into a text column unchecked); [] for a column of another type. Valid text costs one validation."""
    if isinstance(array.type, pa.BaseExtensionType):
        array = array.storage
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return []
    try:
        array.validate(full=True)
        return []
    except pa.ArrowInvalid:
        pass
    return [place for place, value in enumerate(as_bytes(array).to_pylist()) if value is not None and not _is_utf8(value)]


def as_bytes(array: pa.Array) -> pa.Array:
    """A text column's values as the bytes they hold, UTF-8 or not (the same buffers, no copy)."""
    if isinstance(array.type, pa.BaseExtensionType):
        array = array.storage
    return array.view(pa.large_binary() if pa.types.is_large_string(array.type) else pa.binary())


def texts(array: pa.Array) -> list[str | None]:
    """A text column's values as Python text; bytes that are not UTF-8 decoded with surrogateescape, as the
    general path reads them from SQLite once it has met some (dialects.SourceDialect.undecodable_text_read)."""
    try:
        return array.to_pylist()
    except UnicodeDecodeError:
        return [None if value is None else value.decode("utf-8", "surrogateescape") for value in as_bytes(array).to_pylist()]


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def refuse_unparsable_text(array: pa.Array, source: SourceRef) -> None:
    """Raises FastPathUnavailable for a timestamp's text not in the canonical form: Arrow's parse also takes
    other ISO forms, which SQL compared as text; the general path names them."""
    if source.field_type == "timestamp" and pa.types.is_string(array.type) and not _all_match(array, SQLITE_TIMESTAMP_TEXT.pattern):
        raise FastPathUnavailable(f"{source.label}: text that is not 'YYYY-MM-DD HH:MM:SS[.ffffff]'")


def _all_match(array: pa.Array, pattern: str) -> bool:
    return pc.all(pc.match_substring_regex(array, f"^(?:{pattern})$")).as_py() in (True, None)


def _all_in(array: pa.Array, values: tuple) -> bool:
    return pc.all(pc.is_in(array.drop_null(), value_set=pa.array(values, array.type))).as_py() in (True, None)


def plain_values(array: pa.Array, route) -> tuple[pa.Array, pa.Array]:
    """(true where a value read as stored needs no per-row SQL, the values as the conversion reads them): NULL, or
    text matching route.pattern whole and not starting with route.refused_prefix, rewritten by route.rewrite
    unless it matches route.unchanged (dialects.Routed).

    Raises FastPathUnavailable for a column the driver did not read as text (a BLOB in its first rows).
    """
    if pa.types.is_null(array.type):
        return pa.array([True] * len(array)), array
    if not pa.types.is_string(array.type):
        raise FastPathUnavailable(f"a value read as stored arrived as {array.type}, not text")
    not_refused = pc.invert(pc.starts_with(array, route.refused_prefix))
    unchanged = pc.and_(pc.match_substring_regex(array, f"^(?:{route.unchanged})$"), not_refused)
    if pc.all(pc.or_kleene(pc.is_null(array), unchanged)).as_py():
        return pa.array([True] * len(array)), array  # the common case: one regex pass
    plain = pc.and_(pc.match_substring_regex(array, f"^(?:{route.pattern})$"), not_refused)
    pattern, replacement = route.rewrite
    rewritten = pc.if_else(unchanged, array, pc.replace_substring_regex(array, pattern=pattern, replacement=replacement))
    return pc.or_kleene(pc.is_null(array), plain), rewritten


def same_type(array: pa.Array, kind: pa.DataType, name: str) -> pa.Array:
    """Rows read again, as the type the driver gave the batch they go back into.

    Raises FastPathUnavailable where the types differ otherwise: a driver's conversion between them
    (SQLite's number to text) need not be Arrow's.
    """
    if array.type == kind:
        return array
    if array.null_count == len(array):
        # ADBC's SQLite driver types a column of NULLs as int64 or null.
        return pa.nulls(len(array), kind)
    raise FastPathUnavailable(f"{name}: rows read again arrived as {array.type}, their batch as {kind}")
