"""Fast extract for MySQL/MariaDB: connectorx decodes the binary protocol into Arrow batches in Rust.

PyMySQL builds every value in Python (about 0.08 M rows/s here); connectorx 0.4.6 reads the
same query about 5x faster, streamed as Arrow batches of batch_size rows (its
`arrow_stream`), so memory stays bounded. Measured on this machine (docs/performance.md) against
mysqlclient's SSCursor (C, but still one Python object per value: half connectorx's speed,
and a compiler and libmariadb-dev to install) and mysql-connector-python (its wheel here has
no C extension).

connectorx is exact only for what it decodes natively, so the query is the general path's
(build_query) with a few columns read as text:
- DECIMAL as CAST(... AS CHAR): connectorx holds decimals as rust_decimal, 28 digits, and
  panics on a DECIMAL(38,2) past that; Arrow casts the text to decimal128 exactly (through
  decimal256(76, 30), which holds every DECIMAL(65,30) that can fit 38 digits) or refuses;
- DATETIME, TIMESTAMP and DATE as CAST(... AS CHAR): connectorx panics on a zero date even
  in a row the query names as bad; the session's time_zone is '+00:00', so a TIMESTAMP's
  text is UTC, and Arrow parses 'YYYY-MM-DD HH:MM:SS[.ffffff]' as the general path's UTC;
- everything else as it is: integers, text (the connection's utf8mb4, whatever the column's
  collation), JSON text, and the PROBLEM_COLUMN text.
A column of any other declared type (DOUBLE read as a decimal, BLOB as text, DATETIME as a
date, ENUM), a URL option connectorx would not honour (TLS settings, a socket; init_command it
runs first), an empty result (the count arrives with the rows), or any value a cast refuses
raises FastPathUnavailable, and the caller runs the general path, which names bad rows (as it
does for an export with an audience file, whose table lives on the general path's connection).

Session and snapshot: the pre-execution statements run on the connection that then reads
the rows: the dialect's session_settings (UTC, strict sql_mode, REPEATABLE READ), its
snapshot_statement (START TRANSACTION WITH CONSISTENT SNAPSHOT), and the COUNT(*) stored in
a session variable that the rows' query selects once per row: count and rows in one snapshot.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from export_pipelines.catalog.sql_types import DECIMAL_PRECISION, model_table
from export_pipelines.lazy_imports import mysql_sql, pa, pc, sa
from export_pipelines.spec.plan import ExportPlan, SourceRef
from export_pipelines.stages.arrow_extract import FastPathUnavailable, literal_sql
from export_pipelines.stages.dialects import SourceDialect
from export_pipelines.stages.query import count_query

EXPECTED_COLUMN = "__expected_rows"
_EXPECTED_VARIABLE = "@export_expected_rows"
# Wide enough for every DECIMAL(M, D) value (D <= 30) of up to 38 digits, so the cast to the
# field's decimal128 is where a value too long or too precise is refused: pa.decimal256 of these.
_DECIMAL_TEXT_DIGITS = (76, 30)


# PyMySQL's URL options this path honours: init_command runs first among the pre-execution statements,
# and connectorx's connections are utf8mb4 already. Any other (TLS, a socket, a timeout) it would ignore.
_HONOURED_OPTIONS = {"init_command", "charset"}


def available(url: sa.URL) -> bool:
    """connectorx reads a MySQL/MariaDB URL with a host and no option it would ignore."""
    if url.get_backend_name() not in {"mysql", "mariadb"} or not url.host:
        return False
    if set(url.query) - _HONOURED_OPTIONS or url.query.get("charset", "utf8mb4") != "utf8mb4" or isinstance(url.query.get("init_command"), tuple):
        return False
    try:
        import connectorx  # noqa: F401
    except ImportError:
        return False
    return True


def connectorx_url(url: sa.URL) -> str:
    return url.set(drivername="mysql", query={}).render_as_string(hide_password=False)


def declared_types(engine: sa.Engine, table: sa.Table) -> dict[str, sa.types.TypeEngine]:
    """The table's columns as the server declares them (name -> SQLAlchemy MySQL type)."""
    with engine.connect() as connection:
        try:
            return {column["name"]: column["type"] for column in sa.inspect(connection).get_columns(table.name, schema=table.schema)}
        except sa.exc.NoSuchTableError as error:
            raise FastPathUnavailable(f"cannot reflect {table.name}: {error}") from error


def _is_text(kind: sa.types.TypeEngine) -> bool:
    return (
        isinstance(kind, sa.String)
        and not isinstance(kind, mysql_sql.ENUM | mysql_sql.SET)
        and getattr(kind, "charset", None) != "binary"
        and not getattr(kind, "binary", False)
    )


def _read_as_text(source: SourceRef, kind: sa.types.TypeEngine | None) -> bool:
    """Whether the source's column is selected as text (True), as it is (False); FastPathUnavailable where neither is exact."""
    if source.json_property is not None:
        return False
    if kind is None:
        raise FastPathUnavailable(f"{source.label}: column {source.column} not found in the source table")
    integer = isinstance(kind, sa.Integer)
    match source.field_type:
        case "integer" | "boolean" if integer:
            return False
        case "decimal" if integer:
            return False
        case "decimal" if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
            return True
        case "timestamp" if isinstance(kind, mysql_sql.DATETIME | mysql_sql.TIMESTAMP):
            return True
        case "date" if isinstance(kind, sa.Date) and not isinstance(kind, sa.DateTime):
            return True
        case "string" if _is_text(kind):
            return False
        case "json" if _is_text(kind) or isinstance(kind, sa.JSON):
            return False
    raise FastPathUnavailable(f"{source.label}: a {kind} column read as a {source.field_type} is left to the general path")


def fast_query(query: sa.Select, plan: ExportPlan, types: dict[str, sa.types.TypeEngine]) -> tuple[sa.Select, list[int]]:
    """build_query's select with DECIMAL and date/time columns as text (see the module's docstring), then
    EXPECTED_COLUMN, its WHERE and ORDER BY unchanged; and the places of the columns read as text."""
    selected = list(query.selected_columns)
    columns, as_text = [], []
    for index, (column, source) in enumerate(zip(selected, plan.sources, strict=False)):
        if _read_as_text(source, types.get(source.column)):
            columns.append(sa.cast(column.element, mysql_sql.CHAR(charset="utf8mb4")).label(column.name))
            as_text.append(index)
        else:
            columns.append(column)
    columns += selected[len(plan.sources) :]  # PROBLEM_COLUMN, where the query has one
    expected = sa.cast(sa.literal_column(_EXPECTED_VARIABLE), mysql_sql.BIGINT).label(EXPECTED_COLUMN)
    return query.with_only_columns(*columns, expected), as_text


def rows_query_sql(query: sa.Select, plan: ExportPlan, engine: sa.Engine) -> tuple[str, str, Callable[[pa.RecordBatch], pa.RecordBatch]]:
    """(rows SQL, the count's SQL, what turns a batch's text columns into their values), bound values as
    literals (connectorx takes no parameters)."""
    rows, as_text = fast_query(query, plan, declared_types(engine, model_table(plan.model)))

    def values(batch: pa.RecordBatch) -> pa.RecordBatch:
        for index in as_text:
            batch = batch.set_column(index, batch.schema.field(index).name, from_text(batch.column(index), plan.sources[index]))
        return batch

    return literal_sql(rows, engine.dialect), literal_sql(count_query(query), engine.dialect), values


def from_text(array: pa.Array, source: SourceRef) -> pa.Array:
    """MySQL's text of a DECIMAL, DATETIME/TIMESTAMP (UTC, naive here) or DATE as the field's value, exactly,
    or FastPathUnavailable (the general path names the row)."""
    try:
        match source.field_type:
            case "decimal":
                target = pa.decimal128(DECIMAL_PRECISION, source.scale or 0)
                try:
                    return pc.cast(array, target)
                except pa.ArrowInvalid:
                    # Text of more than 38 digits, trailing zeros included (DECIMAL(65,30)'s 30 places): a value
                    # that fits the field fits decimal256(76, 30) first. Rare, so tried second (5x the cost).
                    return pc.cast(pc.cast(array, pa.decimal256(*_DECIMAL_TEXT_DIGITS)), target)
            case "timestamp":
                # The server writes 'YYYY-MM-DD HH:MM:SS[.ffffff]' only; Arrow refuses a zero or impossible date.
                return pc.cast(array, pa.timestamp("us"))
            case "date":
                return pc.cast(array, pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise FastPathUnavailable(f"{source.label}: {error}") from error
    return array


def group_query(query: sa.Select, schema: pa.Schema) -> sa.Select:
    """build_group_query's select with every column whose partial is no integer as text (group values,
    sums, extremes: DECIMAL sums reach 65 digits, text groups are their UTF-8 bytes), cast back by
    arrow_extract.to_schema_batch. One statement, so one snapshot: no count is needed."""
    columns = []
    for column, field in zip(query.selected_columns, [*schema, None], strict=True):
        integer = field is None or pa.types.is_integer(field.type) or pa.types.is_boolean(field.type)
        columns.append(column if integer else sa.cast(column.element, mysql_sql.CHAR(charset="utf8mb4")).label(column.name))
    return query.with_only_columns(*columns)


def session_statements(url: sa.URL, dialect: SourceDialect, count_sql: str | None) -> list[str]:
    """What the reading connection runs before the query: the URL's init_command, the session settings and,
    given count_sql, the consistent snapshot and the COUNT(*) into the session variable the rows' query selects."""
    first = [url.query["init_command"]] if "init_command" in url.query else []
    if count_sql is None:
        return [*first, *dialect.session_settings]
    return [*first, *dialect.session_settings, dialect.snapshot_statement, f"SET {_EXPECTED_VARIABLE} = ({count_sql})"]


class MysqlRows:
    """The query's rows as Arrow batches and, given count_sql (then the query selects EXPECTED_COLUMN,
    which the batches lose), the COUNT(*) of the same snapshot."""

    def __init__(self, url: sa.URL, dialect: SourceDialect, rows_sql: str, batch_size: int, count_sql: str | None = None):
        import connectorx

        statements = session_statements(url, dialect, count_sql)
        self._counted = count_sql is not None
        self._password = url.password
        self._expected: int | None = None
        with _driver_errors("run the query", url.password):
            self._reader = connectorx.read_sql(
                connectorx_url(url), rows_sql, return_type="arrow_stream", batch_size=batch_size, pre_execution_query=statements
            )

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        batches = iter(self._reader)
        while True:
            with _driver_errors("read the rows", self._password):
                batch = next(batches, None)
            if batch is None:
                return
            if not self._counted:
                yield batch
                continue
            if self._expected is None and batch.num_rows:
                self._expected = batch.column(EXPECTED_COLUMN)[0].as_py()
            yield batch.drop_columns([EXPECTED_COLUMN])

    def expected_rows(self) -> int | None:
        """The snapshot's COUNT(*), which arrives with the rows: FastPathUnavailable when none came; None without count_sql."""
        if not self._counted:
            return None
        if self._expected is None:
            raise FastPathUnavailable("no rows, so no count of the snapshot's rows came with them")
        return self._expected

    def close(self) -> None:
        with suppress(Exception):
            self._reader.close()

    def __enter__(self) -> MysqlRows:
        return self

    def __exit__(self, *_) -> None:
        self.close()


@contextmanager
def _driver_errors(doing: str, password: str | None) -> Iterator[None]:
    """connectorx's errors, and its Rust panics (pyo3's PanicException, a BaseException), mean "use the general path".

    The message is logged: a password it might quote (connectorx was handed a URL) is cut out.
    """
    try:
        yield
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as error:
        message = str(error)[:500]
        if password:
            message = message.replace(password, "***").replace(urllib.parse.quote(password, safe=""), "***")
        raise FastPathUnavailable(f"connectorx could not {doing}: {message}") from None
