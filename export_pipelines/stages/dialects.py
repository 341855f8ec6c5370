"""How each database's stored values are read, compared and checked in SQL: the dialect-specific expressions in one place.

A catalog field says what a value should be; what a database stores can differ (SQLite
keeps any storage class in any column, PostgreSQL has infinite timestamps). Per field
type, each dialect gives:
- `readable`: what the extract selects, in one storage form the drivers decode exactly
  (SQLite REALs as their 15 significant digits, timestamps as canonical UTC text);
- `comparable`: what filters, windows, ORDER BY and GROUP BY use, so they select and
  order by value and by instant, never by stored text form;
- `problem`: NULL for a value the field can hold, else why not (bad_rows' wording), so a
  row with such a value is rejected and named instead of being written wrong or filtered
  by accident. With `converted`, the extract converts the value itself (Arrow's cast or
  Python's, both of which refuse 2024-02-30 or 38 digits too many), so the SQL only checks
  what a conversion cannot see; without it (a value only filtered on, or added up by a
  pushed-down GROUP BY) the SQL checks everything.
- `routed`: where the fast extract may read the stored value as it is and check it per Arrow
  batch instead of per row in SQL (SQLite's timestamp text): the rows whose value passes
  the batch check are exactly those the per-row SQL would pass through unchanged, and only
  the others are read again through the per-row SQL (stages/extract.py).
Only code constants are inlined into SQL; spec values stay bound parameters.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from export_pipelines.catalog.sql_types import DECIMAL_PRECISION
from export_pipelines.lazy_imports import mysql_sql, sa, sqlite_sql
from export_pipelines.spec.plan import SourceRef
from export_pipelines.stages import bad_rows

# Instants and dates are written YYYY: years outside 0001-9999 cannot be (and ADBC decodes infinity as garbage).
FIRST_DAY, FIRST_DAY_AFTER = "0001-01-01", "10000-01-01"


def _substr(text: sa.ColumnElement, start, length=None) -> sa.ColumnElement:
    arguments = (text, start) if length is None else (text, start, length)
    return sa.func.substr(*arguments, type_=sa.Text)


@dataclass(frozen=True)
class Check:
    """A value its field cannot hold where `fails` is true; `reason` completes "<field> = <value> is ..."."""

    fails: sa.ColumnElement[bool]
    reason: str


@dataclass(frozen=True)
class Routed:
    """A value read as stored, checked per Arrow batch; a row whose value fails the check is read again exactly.

    stored: what the fast query selects; not_plain: true where the storage alone (not text)
    sends the row to the exact read; pattern (RE2, whole value) and refused_prefix: text that
    matches the one and does not start with the other is text whose `readable` value no
    `checks` refuse, and that value is the text itself when it also matches `unchanged`, else
    the text rewritten by `rewrite` (an RE2 pattern and its replacement), or text that the
    conversion reads as the same value (and refuses where `readable` would be NULL).
    """

    stored: sa.ColumnElement
    not_plain: sa.ColumnElement[bool]
    pattern: str
    refused_prefix: str
    unchanged: str
    rewrite: tuple[str, str]


def _glob(text: sa.ColumnElement, pattern: str) -> sa.ColumnElement[bool]:
    return text.op("GLOB", is_comparison=True)(constant(pattern))


def constant(value: str | int) -> sa.ColumnElement:
    """A code constant inlined as an SQL literal (never a spec value: those are bound parameters)."""
    if isinstance(value, int):
        return sa.literal_column(str(value), sa.Integer)
    return sa.literal_column("'" + value.replace("'", "''") + "'", sa.Text)


class SourceDialect:
    """Any other database: columns as they are, no storage checks (the general path's conversion names bad values).

    Every method takes the source's table column; a JSON property is looked up inside it.
    """

    name = "other"
    # Statements every session runs first, so no result depends on a server's, role's or client's defaults.
    session_settings: tuple[str, ...] = ()
    # Opens the transaction in which the extract counts and reads its rows, where the default would not
    # make both see one snapshot; None where it does (PostgreSQL's REPEATABLE READ, SQLite's read transaction).
    snapshot_statement: str | None = None
    # Words of the error the database's SUM raises where a total outgrows its type; the extract then
    # sums over Arrow (76 digits) instead. None where SUM cannot overflow (PostgreSQL's numeric, MySQL's DECIMAL(65)).
    sum_overflow: str | None = None
    # Words of the error the general path's driver raises at stored text that is not UTF-8, which stops the
    # whole read; the extract then reads again with undecodable_text_read, naming such rows. None where the
    # database refuses such text when it is written.
    undecodable_text: str | None = None

    @contextmanager
    def undecodable_text_read(self, driver_connection) -> Iterator[None]:
        """Reads through `driver_connection` (the DB-API connection) give text that is not UTF-8 as a str
        the conversion refuses, instead of stopping at it; the driver's default is back afterwards."""
        yield

    def value(self, column: sa.ColumnElement, source: SourceRef) -> sa.ColumnElement:
        """The stored value: the column, or the JSON property's text."""
        if source.json_property is not None:
            return self.json_property(column, source.json_property)
        if source.field_type == "json":
            return self.whole_json(column)
        return column

    def readable(self, column: sa.ColumnElement, source: SourceRef) -> sa.ColumnElement:
        return self.value(column, source)

    def comparable(self, column: sa.ColumnElement, source: SourceRef) -> sa.ColumnElement:
        value = self.value(column, source)
        return self.by_code_point(value) if source.field_type in {"string", "json"} else value

    def by_code_point(self, text: sa.ColumnElement) -> sa.ColumnElement:
        """Text compared, ordered and grouped by code point (UTF-8 bytes), whatever the column's collation."""
        return text

    def checks(self, column: sa.ColumnElement, source: SourceRef, *, converted: bool) -> list[Check]:
        """What makes the stored value unfit for its field, as far as SQL must tell (see the module's docstring)."""
        return []

    def raw_text(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """The stored value as text, for the rejected-rows list."""
        return sa.cast(column, sa.Text)

    def routed(self, column: sa.ColumnElement, source: SourceRef) -> Routed | None:
        """How the fast extract may read a converted value as stored (see Routed); None: always as `readable`."""
        return None

    def json_property(self, column: sa.ColumnElement, prop: str) -> sa.ColumnElement:
        path = _json_path(prop)
        return sa.func.json_unquote(sa.func.json_extract(column, path))

    def position(self, column: sa.ColumnElement, value: str) -> sa.ColumnElement | None:
        """1-based position of value in column; None where the dialect has no such function."""
        return None

    def whole_json(self, column: sa.ColumnElement) -> sa.ColumnElement:
        return column


class MysqlDialect(SourceDialect):
    """MySQL and MariaDB: session settings fixed per connection, and what their lax modes let in refused.

    - Sessions run with time_zone '+00:00' (a TIMESTAMP reads and compares as UTC; a DATETIME
      is naive and taken as UTC, as the README promises), a strict sql_mode whatever the
      server's (no ANSI_QUOTES or PIPES_AS_CONCAT to change what SQL means) and REPEATABLE READ;
      the extract opens its transaction WITH CONSISTENT SNAPSHOT, so COUNT(*) and the rows
      read the same data (`snapshot_statement`).
    - Text compares, orders and groups as its UTF-8 bytes (CAST AS BINARY of its utf8mb4
      form): the usual collations ignore case and accents, and even utf8mb4_bin pads with
      spaces ('a' = 'a ').
    - Dates and times: a zero date (0000-00-00), a zero month or day, or a day a month has
      not (2024-02-30), which a lax sql_mode stores, are bad rows: DATE_ADD of 0 days, which
      checks the calendar, is NULL for them.
    - Decimals arrive as Decimal (DECIMAL(65,30) too), never as float; values only filtered on
      or summed in the database are checked for the field's scale and 38 digits in SQL.
    - JSON is text (MariaDB) or MySQL's JSON type: a property is JSON_UNQUOTE(JSON_EXTRACT()),
      JSON null is NULL as in PostgreSQL's ->>, and text that is no JSON is a bad row.
    """

    name = "mysql"
    session_settings = (
        "SET time_zone = '+00:00'",
        "SET sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,ONLY_FULL_GROUP_BY,NO_ENGINE_SUBSTITUTION'",
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    )
    snapshot_statement = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"

    def value(self, column, source):
        if source.json_property is None and source.field_type == "boolean":
            # A BIT(1) column reads as bytes, and b'\x00' is true to Python: its number (0 or 1), as a TINYINT(1) reads.
            return sa.type_coerce(column.op("+")(constant(0)), sa.Integer())
        return super().value(column, source)

    def by_code_point(self, text):
        from export_pipelines.catalog.column_types import Utf8Bytes

        as_utf8 = sa.cast(text, mysql_sql.CHAR(charset="utf8mb4"))
        return sa.type_coerce(sa.cast(as_utf8, sa.LargeBinary), Utf8Bytes())

    def checks(self, column, source, *, converted):
        if source.json_property is not None or source.field_type == "json":
            return [Check(_invalid_json_mysql(column), bad_rows.NOT_JSON)]
        match source.field_type:
            case "timestamp" | "date":
                calendar = sa.func.date_add(column, sa.literal_column("INTERVAL 0 DAY"))
                return [
                    Check(sa.and_(column.is_not(None), calendar.is_(None)), bad_rows.NOT_A_CALENDAR_DAY),
                    Check(column < sa.literal_column(f"'{FIRST_DAY}'"), bad_rows.OUTSIDE_WRITTEN_YEARS),
                ]
            case "boolean":
                # SQLAlchemy reads any integer of a TINYINT(1) as a boolean (2 is true): checked even where converted.
                return [Check(sa.and_(column.is_not(None), column.not_in([constant(0), constant(1)])), bad_rows.NOT_A_BOOLEAN)]
            case "decimal" if not converted:
                scale = source.scale or 0
                # An integer literal of up to 38 digits is an exact DECIMAL in MySQL, never a double.
                limit = sa.literal_column("1" + "0" * (DECIMAL_PRECISION - scale))
                return [
                    Check(column != sa.func.round(column, scale), bad_rows.more_decimal_places(scale)),
                    Check(sa.func.abs(column) >= limit, bad_rows.too_many_digits(DECIMAL_PRECISION)),
                ]
        return []

    def raw_text(self, column):
        return sa.cast(column, mysql_sql.CHAR(charset="utf8mb4"))

    def json_property(self, column, prop):
        path = _json_path(prop)
        found = sa.func.json_extract(column, path)
        return sa.case(
            (_invalid_json_mysql(column), sa.null()),
            (sa.func.json_type(found) == constant("NULL"), sa.null()),
            else_=sa.func.json_unquote(found, type_=sa.Text),
        )

    def position(self, column, value):
        return sa.func.instr(column, value)


def _invalid_json_mysql(column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    # MariaDB's JSON_EXTRACT of text that is no JSON gives NULL (with a warning), MySQL's raises: checked first.
    return sa.and_(column.is_not(None), sa.func.json_valid(column) == 0)


class PostgresqlDialect(SourceDialect):
    """PostgreSQL's types hold what they say, except infinite and out-of-range dates and times,
    and a column whose type is not the field's (a float or numeric column read as a decimal or integer).

    Sessions run with TimeZone UTC (source.py, arrow_extract.py), so a `timestamp without
    time zone` compares and reads as UTC, as the README promises, whatever the server's setting.

    column_types: (table, column) -> "integer", "numeric", "float", "money" or "timestamp", as
    reflected; a column not in it is taken to have its field's own type.
    """

    name = "postgresql"
    # A `timestamp without time zone` reads and compares as UTC (README: naive values are UTC); psycopg's
    # text loaders get the ISO dates they parse. SET, not libpq options: PGTZ in the environment beats those.
    session_settings = ("SET TIME ZONE 'UTC'", "SET DateStyle = 'ISO, YMD'")

    def __init__(self, column_types: Mapping[tuple[str, str], str] | None = None):
        self.column_types = dict(column_types or {})

    def _number(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """A float or money column as numeric. The cast keeps a double's 15 significant digits, the rule SQLite's
        REALs follow too (a double's binary noise, 0.30000000000000004, is no digit of the value); money's
        exact amount (ADBC would hand over money's integer cents, which read as a decimal are 100 times too much)."""
        if _column_type(self.column_types, column) in {"float", "money"}:
            return sa.cast(column, sa.Numeric)
        return column

    def readable(self, column, source):
        if source.json_property is not None:
            return self.value(column, source)
        if source.field_type in {"timestamp", "date"}:
            value = sa.cast(column, sa.Date) if source.field_type == "date" and self._holds_times(column) else column
            return sa.case((_within_written_years(column), value), else_=sa.null())
        if source.field_type == "decimal":
            return self._number(column)
        return self.value(column, source)

    def _holds_times(self, column: sa.ColumnElement) -> bool:
        return _column_type(self.column_types, column) == "timestamp"

    def comparable(self, column, source):
        if source.json_property is None and source.field_type == "decimal":
            return self._number(column)
        return super().comparable(column, source)

    def by_code_point(self, text):
        return sa.collate(text, "C")

    def checks(self, column, source, *, converted):
        if source.json_property is not None:
            return []
        kind = _column_type(self.column_types, column)
        match source.field_type:
            case "timestamp" | "date":
                # ADBC decodes an infinity as a garbage instant: checked even where the value is converted.
                found = [
                    Check(sa.not_(sa.func.isfinite(column)), bad_rows.INFINITE),
                    Check(sa.not_(_within_written_years(column)), bad_rows.OUTSIDE_WRITTEN_YEARS),
                ]
                if source.field_type == "date" and self._holds_times(column):
                    # A timestamp column read as a date: only a midnight is a date; any other time would be cut off.
                    found.append(Check(sa.cast(column, sa.Date) != column, bad_rows.A_TIME_NOT_A_DATE))
                return found
            case "decimal":
                if converted:
                    return []
                number, scale = self._number(column), source.scale or 0
                return [
                    Check(number.in_([constant("NaN"), constant("Infinity"), constant("-Infinity")]), bad_rows.NOT_FINITE),
                    Check(number != sa.func.round(number, scale), bad_rows.more_decimal_places(scale)),
                    Check(sa.func.abs(number) >= sa.literal_column(f"1e{DECIMAL_PRECISION - scale}"), bad_rows.too_many_digits(DECIMAL_PRECISION)),
                ]
            case "integer" if kind in {"numeric", "float", "money"} and not converted:
                whole = sa.cast(column, sa.Numeric)
                return [
                    Check(whole.in_([constant("NaN"), constant("Infinity"), constant("-Infinity")]), bad_rows.NOT_AN_INTEGER),
                    Check(whole != sa.func.trunc(whole), bad_rows.NOT_AN_INTEGER),
                    Check(sa.func.abs(whole) > sa.literal_column(str(2**63 - 1)), bad_rows.OUTSIDE_INTEGER_RANGE),
                ]
        return []

    def json_property(self, column, prop):
        return column.op("->>", return_type=sa.Text)(sa.bindparam(None, prop, type_=sa.Text))

    def whole_json(self, column):
        return sa.cast(column, sa.Text)

    def position(self, column, value):
        return sa.func.strpos(column, value)


class DuckdbDialect(SourceDialect):
    """DuckDB (duckdb_engine), the embedded database that stands for any other SQLAlchemy dialect.

    - Sessions run with TimeZone 'UTC': a TIMESTAMP WITH TIME ZONE is an instant, read in UTC;
      a naive TIMESTAMP is taken as UTC, as the README promises.
    - Text compares, orders and groups under COLLATE "binary" (the byte order of its UTF-8),
      whatever the column's collation (NOCASE, a language's) or the session's default_collation.
    - Decimals: DECIMAL holds at most 38 digits, the field's limit, and arrives as Decimal;
      values only filtered on are checked for the field's scale in SQL.
    - Timestamps and dates: infinities and years past 9999, which DuckDB holds, are bad rows.
    - JSON properties are json_extract_string; JSON null is NULL, as PostgreSQL's ->>; text
      that is no JSON is a bad row. DuckDB's JSON reader holds a non-integer number as a
      double and writes it back in its shortest form (1.50 as 1.5, 1e5 as 100000.0): exact
      for the 15 significant digits a double keeps; where the double's text has more, the
      document's own digits are lost, so the row is a bad row (`_lossy_json_number`).
    """

    name = "duckdb"
    session_settings = ("SET TimeZone = 'UTC'",)
    # SUM of a DECIMAL(38, s) stays DECIMAL(38, s) and raises past it ("Overflow in HUGEINT addition").
    sum_overflow = "Overflow in"

    def by_code_point(self, text):
        return sa.collate(text, "binary")

    def checks(self, column, source, *, converted):
        if source.json_property is not None:
            found = sa.func.json_extract_string(column, _json_path(source.json_property), type_=sa.Text)
            kind = sa.func.json_type(column, _json_path(source.json_property), type_=sa.Text)
            return [
                Check(_invalid_json_duckdb(column), bad_rows.NOT_JSON),
                Check(sa.and_(kind == constant("DOUBLE"), _lossy_json_number(found)), bad_rows.JSON_NUMBER_AS_DOUBLE),
            ]
        match source.field_type:
            case "json":
                return [Check(_invalid_json_duckdb(column), bad_rows.NOT_JSON)]
            case "timestamp" | "date":
                return [
                    Check(sa.not_(sa.func.isfinite(column)), bad_rows.INFINITE),
                    Check(sa.not_(_within_written_years(column)), bad_rows.OUTSIDE_WRITTEN_YEARS),
                ]
            case "decimal" if not converted:
                scale = source.scale or 0
                return [Check(column != sa.func.round(column, scale), bad_rows.more_decimal_places(scale))]
        return []

    def json_property(self, column, prop):
        # json_extract_string raises on text that is no JSON: such a row is a bad row, not a failed query.
        found = sa.func.json_extract_string(column, _json_path(prop), type_=sa.Text)
        return sa.case((_invalid_json_duckdb(column), sa.null()), else_=found)

    def position(self, column, value):
        return sa.func.strpos(column, value)


def _json_path(prop: str) -> sa.BindParameter:
    return sa.bindparam(None, f'$."{prop}"', type_=sa.Text)


def _invalid_json_duckdb(column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    return sa.and_(column.is_not(None), sa.not_(sa.func.json_valid(column)))


def _lossy_json_number(text: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """More than 15 significant digits in a double's text: more than a double holds exactly (DBL_DIG)."""
    mantissa = sa.func.regexp_replace(text, constant("[eE].*$"), constant(""), type_=sa.Text)
    digits = sa.func.regexp_replace(mantissa, constant("[^0-9]"), constant(""), constant("g"), type_=sa.Text)
    return sa.func.length(sa.func.trim(digits, constant("0"))) > 15


def _column_type(types: Mapping[tuple[str, str], str], column: sa.ColumnElement) -> str | None:
    table = getattr(column.table, "element", column.table)  # an alias reads its table's columns
    return types.get((table.fullname, column.name))


def _within_written_years(column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    # Untyped literals take the column's own type (date, timestamp or timestamptz).
    return sa.and_(column >= sa.literal_column(f"'{FIRST_DAY}'"), column < sa.literal_column(f"'{FIRST_DAY_AFTER}'"))


class SqliteDialect(SourceDialect):
    """SQLite stores any storage class in any column; each field type takes only the forms it can read exactly.

    - integer: INTEGER only (a REAL 2.5 or the text '3x' is a bad row, never 2 or 3);
    - decimal: INTEGER (exact), REAL (its 15 significant digits, SQLite's documented precision,
      printed by printf('%!.15g'), which SQLite 3.40 and 3.53 print alike, unlike CAST AS TEXT)
      or TEXT holding a number (every digit kept); other text is a bad row;
    - timestamp: ISO 8601 text, `YYYY-MM-DD`, `T` or space, `HH:MM[:SS[.f...]]`, then
      nothing (UTC), `Z` or an offset `+HH:MM`/`+HHMM`; read, compared and ordered as its UTC
      instant in the canonical text bound parameters use (catalog/sql_types.py);
    - date: `YYYY-MM-DD` text of a real calendar day; boolean: the integers 0 and 1;
    - string: text (INTEGER as its digits, REAL as 15 significant digits); a BLOB as its bytes
      when they are UTF-8, else a bad row, as is TEXT that is not UTF-8 (SQLite keeps any bytes
      as TEXT: `undecodable_text`);
    - json: text that is valid JSON, written as stored; a BLOB or invalid JSON is a bad row
      (and json_extract, which properties use, would stop the whole query at it).

    text_columns: the (table, column) pairs whose declared type gives them TEXT affinity, which
    makes SQLite store numbers written into them as text: their text needs no per-row CASE.
    """

    name = "sqlite"
    sum_overflow = "integer overflow"
    undecodable_text = "Could not decode to UTF-8"

    @contextmanager
    def undecodable_text_read(self, driver_connection) -> Iterator[None]:
        # surrogateescape keeps every byte (bad_rows shows them as X'..'), and Arrow refuses its lone
        # surrogates. Not the default: a Python call per text value slows the per-row read (0.7 us a value).
        driver_connection.text_factory = functools.partial(str, encoding="utf-8", errors="surrogateescape")
        try:
            yield
        finally:
            driver_connection.text_factory = str

    def __init__(self, text_columns: frozenset[tuple[str, str]] = frozenset()):
        self.text_columns = text_columns

    def _holds_only_text(self, column: sa.ColumnElement) -> bool:
        table = getattr(column.table, "element", column.table)  # an alias reads its table's columns
        return (table.fullname, column.name) in self.text_columns

    def by_code_point(self, text):
        # A column declared COLLATE NOCASE (or RTRIM) would otherwise compare 'a' and 'A' equal.
        return sa.collate(text, "BINARY")

    def readable(self, column, source):
        from export_pipelines.catalog.column_types import DecimalText, IsoDate, UtcTimestamp

        if source.json_property is not None:
            return self.value(column, source)
        if source.field_type in {"string", "json"} and self._holds_only_text(column):
            return column
        match source.field_type:
            case "decimal":
                # A BLOB as SQLite's X'..' literal, which no conversion takes for a number.
                return sa.type_coerce(_as_text(column, blob=sa.func.quote(column)), DecimalText())
            case "timestamp":
                return sa.type_coerce(sqlite_instant(column), UtcTimestamp())
            case "date":
                return sa.type_coerce(sqlite_date(column), IsoDate())
            case "string" | "json":
                # A BLOB as its bytes: text when they are UTF-8, else the conversion refuses it.
                return _as_text(column, blob=column)
        # integer, boolean: as stored; a REAL or text among integers stops ADBC's typed read
        # (the general path then names the row), and Python's conversion refuses it.
        return column

    def comparable(self, column, source):
        if source.json_property is not None:
            return self.by_code_point(self.value(column, source))
        match source.field_type:
            case "timestamp" | "date":
                return self.readable(column, source)
            case "string" | "json":
                return self.by_code_point(self.readable(column, source))
            case "decimal":
                # Numbers compare as numbers (a REAL against the bound value); text that holds a number, too.
                return sa.type_coerce(sa.cast(column, sa.Numeric), column.type)
        return column

    def checks(self, column, source, *, converted):
        if source.json_property is not None:
            return [Check(_invalid_json(column), bad_rows.NOT_JSON)]
        kind = sa.func.typeof(column)
        match source.field_type:
            case "boolean":
                # SQLAlchemy reads any integer as a boolean (2 is true): checked even where converted.
                valid = sa.or_(column.is_(None), sa.and_(kind == constant("integer"), column.in_([constant(0), constant(1)])))
                return [Check(sa.not_(valid), bad_rows.NOT_A_BOOLEAN)]
            case "timestamp":
                # The readable value of text that is no instant is NULL, which no conversion could tell from a NULL.
                text = sa.type_coerce(column, sa.Text)
                fine = _canonical_instant_shape(text) if converted else _canonical_instant(text)
                return [Check(sa.and_(text.is_not(None), sa.not_(fine), _parsed_instant(text).is_(None)), bad_rows.NOT_A_TIMESTAMP)]
            case "date":
                text = sa.type_coerce(column, sa.Text)
                fine = _date_shape(text) if converted else _real_date(text)
                return [Check(sa.and_(text.is_not(None), sa.not_(fine)), bad_rows.NOT_A_DATE)]
            case "json":
                # A BLOB first: newer SQLite versions take one for binary JSON (JSONB), 3.40 does not.
                return [Check(kind == constant("blob"), bad_rows.NOT_TEXT), Check(_invalid_json(column), bad_rows.NOT_JSON)]
        if converted:
            return []
        match source.field_type:
            case "integer":
                return [Check(kind.not_in([constant("integer"), constant("null")]), bad_rows.NOT_AN_INTEGER)]
            case "decimal":
                # Only SQL sees a value that is only filtered on: CAST AS NUMERIC would read '5e5e5' as 500000.
                not_number = sa.or_(kind == constant("blob"), sa.and_(kind == constant("text"), sa.not_(_number_literal(column))))
                number = sa.cast(column, sa.Float)
                return [
                    Check(not_number, bad_rows.NOT_A_NUMBER),
                    Check(sa.not_(number.between(-_LARGEST_DOUBLE, _LARGEST_DOUBLE)), bad_rows.NOT_FINITE),
                    Check(sa.func.abs(number) >= 10.0 ** (DECIMAL_PRECISION - (source.scale or 0)), bad_rows.too_many_digits(DECIMAL_PRECISION)),
                ]
        return [Check(kind == constant("blob"), bad_rows.NOT_TEXT)]

    def raw_text(self, column):
        return sa.case((sa.func.typeof(column) == constant("blob"), sa.func.quote(column)), else_=sa.cast(column, sa.Text))

    def routed(self, column, source):
        """A timestamp's text of a year from 0001, 'YYYY-MM-DD HH:MM:SS' (what `readable` gives unchanged, no check
        refusing it: `_canonical_instant_shape`) or the ISO forms of UTC that `_parsed_instant` turns into it: a T,
        up to six fraction digits, Z or a zero offset ('2024-01-05T10:00:00.123Z', JavaScript's toISOString). Read
        as stored, the per-row CASE and checks (half the extract's SQLite time, thirty times that for the ISO forms)
        are left to the rows whose text is in another form or not text at all. A day or time that is not real
        (2024-02-30, 24:00) passes the batch check and is refused by the conversion, as `_canonical_instant_shape`'s are."""
        if source.json_property is not None or source.field_type != "timestamp":
            return None
        text = sa.type_coerce(column, sa.Text)
        # Numbers sort before any text and BLOBs after it (SQLite's "Datatypes", 4.1): two comparisons, no function call.
        not_text = sa.or_(text < constant(""), text >= sa.literal_column("X''"))
        return Routed(text, not_text, _UTC_ISO_PATTERN, "0000", _CANONICAL_SECONDS_PATTERN, _UTC_ISO_REWRITE)

    def json_property(self, column, prop):
        path = _json_path(prop)
        kind = sa.func.json_type(column, path)
        return sa.case(
            (_invalid_json(column), sa.null()),
            (kind == constant("text"), sa.func.json_extract(column, path)),
            # true/false as the words PostgreSQL's ->> gives; numbers, objects and arrays as the
            # document's own JSON text (-> keeps 1.50, where json_extract would give the REAL 1.5).
            (kind.in_([constant("true"), constant("false"), constant("integer"), constant("real"), constant("object"), constant("array")]),
             column.op("->", return_type=sa.Text)(path)),
            else_=sa.null(),
        )

    def position(self, column, value):
        return sa.func.instr(column, value)


_LARGEST_DOUBLE = 1.7976931348623157e308


def _number_literal(text: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """SQL's number literal, [+-]digits[.digits][e[+-]digits] with digits on at least one side of the point,
    the grammar Arrow's and Python's conversions read (catalog/sql_types.NUMBER_TEXT)."""
    lower = sa.func.lower(text, type_=sa.Text)
    mantissa = sa.case((_glob(lower, "*e*"), _substr(lower, 1, sa.func.instr(lower, constant("e")) - 1)), else_=lower)
    exponent = sa.case((_glob(lower, "*e*"), _substr(lower, sa.func.instr(lower, constant("e")) + 1)), else_=constant("0"))
    unsigned = sa.case((_glob(mantissa, "[+-]*"), _substr(mantissa, 2)), else_=mantissa)
    return sa.and_(
        sa.not_(_glob(lower, "*[^0-9.e+-]*")),
        sa.not_(_glob(lower, "*e*e*")),
        sa.not_(_glob(unsigned, "*[^0-9.]*")),
        sa.not_(_glob(unsigned, "*.*.*")),
        _glob(unsigned, "*[0-9]*"),
        _glob(exponent, "[-+0-9]*"),
        sa.not_(_glob(_substr(exponent, 2), "*[^0-9]*")),
        _glob(exponent, "*[0-9]"),
    )


def _invalid_json(column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    # SQLite 3.40's json_valid(NULL) is 0, later versions' NULL: a missing document is no problem.
    return sa.and_(column.is_not(None), sa.func.json_valid(column) == 0)


def _real_text(column: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.printf(constant("%!.15g"), column, type_=sa.Text)


def _as_text(column: sa.ColumnElement, *, blob: sa.ColumnElement) -> sa.ColumnElement:
    """Text as stored, INTEGER as its digits, REAL as its 15 significant digits, a BLOB as given: one storage class."""
    return sa.case(
        {constant("real"): _real_text(column), constant("integer"): sa.cast(column, sa.Text), constant("blob"): blob},
        value=sa.func.typeof(column),
        else_=column,
    )


_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
_HOURS_MINUTES_GLOB = "[Tt ][0-9][0-9]:[0-9][0-9]"
# The canonical form, each digit narrowed to the range it can take; Arrow's and Python's
# conversions refuse what the pattern cannot (2024-02-30, 24:00:00, month 13).
_CANONICAL_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]"
_CANONICAL_SECONDS_GLOB = _CANONICAL_DATE_GLOB + " [0-2][0-9]:[0-5][0-9]:[0-5][0-9]"
_SECONDS_FORMAT = "%Y-%m-%d %H:%M:%S"
# `_canonical_instant_shape` for text of digits: 19 characters, a space at the 11th (the year checked apart).
_CANONICAL_SECONDS_PATTERN = "[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"
# The ISO forms of a UTC instant `_parsed_instant` reads without arithmetic: a T or space, at most six fraction
# digits (what the stage files hold; '.5' is 500000 microseconds to both), Z or an offset of zero; and the
# canonical text Arrow parses alike ('2024-01-05 10:00:00.123'), by cutting out the T and the zone.
_UTC_ISO_PATTERN = "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]{1,6})?(?:[Zz]|[+-]00:?00)?"
_UTC_ISO_REWRITE = ("^([0-9-]{10})[Tt ]([0-9:]{8}(?:\\.[0-9]{1,6})?).*$", "\\1 \\2")
_MICRO_DIGITS = 6
_MAX_FRACTION_DIGITS = 9


def _strftime_seconds(text: sa.ColumnElement, *modifiers: str) -> sa.ColumnElement:
    return sa.func.strftime(constant(_SECONDS_FORMAT), text, *(constant(m) for m in modifiers), type_=sa.Text)


def _normalizes_to_itself(wall: sa.ColumnElement) -> sa.ColumnElement[bool]:
    # SQLite echoes 2024-02-30 and 24:00:00 back unless a modifier makes it compute the day:
    # a wall time that survives '+0 seconds' unchanged is a real one.
    # IS, not =: SQLite's NULL for a month 13 must make this false, not NULL (a NOT of it would be NULL too).
    return sa.and_(wall.is_not(None), _strftime_seconds(wall, "+0 seconds").is_(wall), wall >= constant("0001"))


def _canonical_instant_shape(text: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """Looks like 'YYYY-MM-DD HH:MM:SS', as bound parameters and most writers store it: the common case, in two cheap tests.

    Text that only looks so is passed on as it is; the extract's conversion (Arrow's or
    Python's, the same ISO parse) refuses it, so only the `_canonical_instant` check of a
    value SQL alone sees needs to be exact. Year 0000 is kept out here: Arrow would read it.
    """
    return sa.and_(sa.func.length(text) == 19, _substr(text, 11, 1) == constant(" "), text >= constant("0001"))


def _canonical_instant(text: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """Exactly the canonical form of a real time: days 01-28 of months 01-12 by text comparison, others by SQLite's calendar."""
    common = sa.and_(
        _substr(text, 6, 2).between(constant("01"), constant("12")),
        _substr(text, 9, 2).between(constant("01"), constant("28")),
        _substr(text, 12, 2) <= constant("23"),
    )
    return sa.and_(_glob(text, _CANONICAL_SECONDS_GLOB), text >= constant("0001"), sa.or_(common, _normalizes_to_itself(text)))


def sqlite_instant(column: sa.ColumnElement) -> sa.ColumnElement:
    """Stored ISO 8601 text -> 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC, NULL when it is no instant.

    Text already in that form is taken as it is (a conversion checks its calendar); other
    forms are parsed. The fraction is cut off before SQLite's date functions see it (they
    round it to milliseconds, differently across versions) and put back after: digits past
    the sixth must be zeros, as the stage files hold microseconds.
    """
    text = sa.type_coerce(column, sa.Text)  # the column's own type may be a timestamp, whose + is not ||
    return sa.case((_canonical_instant_shape(text), text), else_=_parsed_instant(text))


def _parsed_instant(text: sa.ColumnElement) -> sa.ColumnElement:
    """The UTC canonical text of any supported ISO 8601 form, or NULL. Pieces are cut by position, so each
    appears in the SQL a few times, not nested inside one another (the SQL stays a few kilobytes)."""
    zone_length = sa.case(
        (_glob(text, "*[Zz]"), 1),
        (_glob(text, "*[+-][0-9][0-9]:[0-9][0-9]"), 6),
        (_glob(text, "*[+-][0-9][0-9][0-9][0-9]"), 5),
        else_=0,
    )
    # Without its zone: 'YYYY-MM-DD', 'YYYY-MM-DDTHH:MM', 'YYYY-MM-DDTHH:MM:SS[.fraction]'.
    wall_length = sa.func.length(text, type_=sa.Integer) - zone_length
    offset = sa.case(
        (zone_length == 6, _substr(text, -6)),
        (zone_length == 5, _substr(text, -5, 3) + constant(":") + _substr(text, -2)),
        else_=constant(""),
    )
    # SQLite's two-argument max() is scalar: a substr of negative length would count backwards.
    fraction = _substr(text, 21, sa.func.max(wall_length - 20, 0, type_=sa.Integer))
    fraction_ok = sa.or_(
        wall_length == 19,
        sa.and_(wall_length.between(21, 20 + _MAX_FRACTION_DIGITS), _substr(text, 20, 1) == constant("."), sa.not_(_glob(fraction, "*[^0-9]*"))),
    )
    date = _substr(text, 1, 10)
    wall = sa.case(
        (sa.and_(sa.func.length(text) == 10, _glob(text, _DATE_GLOB)), text + constant(" 00:00:00")),
        (sa.and_(wall_length == 16, _glob(_substr(text, 1, 16), _DATE_GLOB + _HOURS_MINUTES_GLOB)), date + constant(" ") + _substr(text, 12, 5) + constant(":00")),
        (sa.and_(_glob(_substr(text, 1, 19), _DATE_GLOB + _HOURS_MINUTES_GLOB + ":[0-9][0-9]"), fraction_ok), date + constant(" ") + _substr(text, 12, 8)),
        else_=sa.null(),
    )
    micros = _substr(fraction + constant("0" * _MICRO_DIGITS), 1, _MICRO_DIGITS)
    utc = _strftime_seconds(wall + offset)
    valid = sa.and_(
        _normalizes_to_itself(wall),
        sa.not_(_glob(_substr(fraction, _MICRO_DIGITS + 1), "*[^0]*")),
        utc >= constant("0001"),
    )
    with_fraction = utc + sa.case((micros == constant("0" * _MICRO_DIGITS), constant("")), else_=constant(".") + micros)
    return sa.case((valid, with_fraction), else_=sa.null())


def _date_shape(column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    return sa.and_(_glob(column, _CANONICAL_DATE_GLOB), column >= constant("0001"))


def _real_date(column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    return sa.and_(_date_shape(column), sa.func.date(column, constant("+0 days"), type_=sa.Text).is_(column))


def sqlite_date(column: sa.ColumnElement) -> sa.ColumnElement:
    """Stored 'YYYY-MM-DD' text, else NULL (a conversion checks its calendar)."""
    text = sa.type_coerce(column, sa.Text)
    return sa.case((_date_shape(text), text), else_=sa.null())


_DIALECTS: dict[str, SourceDialect] = {
    "postgresql": PostgresqlDialect(),
    "sqlite": SqliteDialect(),
    "mysql": MysqlDialect(),
    # SQLAlchemy names a mariadb:// URL's dialect so; the same server family.
    "mariadb": MysqlDialect(),
    "duckdb": DuckdbDialect(),
}
_ANY = SourceDialect()


def dialect_for(name: str) -> SourceDialect:
    """What a database of this name holds, knowing nothing of its tables."""
    return _DIALECTS.get(name, _ANY)


def sqlite_affinity(declared: sa.types.TypeEngine) -> str:
    """A column's type affinity from its declared type (SQLite's "Datatypes In SQLite", section 3.1)."""
    if isinstance(declared, sa.types.NullType):
        return "blob"  # no declared type (SQLAlchemy reflects it as NullType, which has no SQL to compile)
    text = str(declared.compile(dialect=sqlite_sql.dialect())).upper()
    if "INT" in text:
        return "integer"
    if any(name in text for name in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if "BLOB" in text or not text:
        return "blob"
    if any(name in text for name in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


def reflected_dialect(connection: sa.Connection, tables: Iterable[sa.Table]) -> SourceDialect:
    """The connection's dialect, knowing what the columns of `tables` can hold: for SQLite the columns
    that hold only text, for PostgreSQL the number columns' types. A table it cannot reflect is left
    to the query, which names it."""
    name = connection.dialect.name
    if name not in {"sqlite", "postgresql"}:
        return dialect_for(name)
    inspector = sa.inspect(connection)
    reflected: dict[tuple[str, str], sa.types.TypeEngine] = {}
    for table in tables:
        try:
            columns = inspector.get_columns(table.name, schema=table.schema)
        except sa.exc.NoSuchTableError:
            continue
        reflected |= {(table.fullname, column["name"]): column["type"] for column in columns}
    if name == "sqlite":
        return SqliteDialect(frozenset(key for key, declared in reflected.items() if sqlite_affinity(declared) == "text"))
    return PostgresqlDialect({key: kind for key, declared in reflected.items() if (kind := _column_kind(declared))})


def _column_kind(declared: sa.types.TypeEngine) -> str | None:
    """What a PostgreSQL column's type means to the fields read from it."""
    if isinstance(declared, sa.Float):
        return "float"
    if isinstance(declared, sa.Integer):
        return "integer"
    if isinstance(declared, sa.Numeric):
        return "numeric"
    if isinstance(declared, sa.DateTime):
        return "timestamp"
    if type(declared).__name__ == "MONEY":
        return "money"
    return None
