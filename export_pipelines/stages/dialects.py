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
  by accident. `strict` adds the checks a pushed-down aggregate needs, where the database
  computes over the raw values before any conversion could see them.
Only code constants are inlined into SQL; spec values stay bound parameters.
"""

from __future__ import annotations

import sqlalchemy as sa

from export_pipelines.catalog.sql_types import DECIMAL_PRECISION, DecimalText, UtcTimestamp
from export_pipelines.spec.plan import SourceRef
from export_pipelines.stages import bad_rows

# Instants and dates are written YYYY: years outside 0001-9999 cannot be (and ADBC decodes infinity as garbage).
FIRST_DAY, FIRST_DAY_AFTER = "0001-01-01", "10000-01-01"


def _substr(text: sa.ColumnElement, start, length=None) -> sa.ColumnElement:
    arguments = (text, start) if length is None else (text, start, length)
    return sa.func.substr(*arguments, type_=sa.Text)


def _glob(text: sa.ColumnElement, pattern: str) -> sa.ColumnElement[bool]:
    return text.op("GLOB", is_comparison=True)(constant(pattern))


def constant(value: str | int) -> sa.ColumnElement:
    """A code constant inlined as an SQL literal (never a spec value: those are bound parameters)."""
    if isinstance(value, int):
        return sa.literal_column(str(value), sa.Integer)
    return sa.literal_column("'" + value.replace("'", "''") + "'", sa.Text)


class SourceValues:
    """Any other database: columns as they are, no storage checks (the general path's conversion names bad values).

    Every method takes the source's table column; a JSON property is looked up inside it.
    """

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
        return self.value(column, source)

    def problem(self, column: sa.ColumnElement, source: SourceRef, *, strict: bool = False) -> sa.ColumnElement | None:
        return None

    def raw_text(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """The stored value as text, for the rejected-rows list."""
        return sa.cast(column, sa.Text)

    def json_property(self, column: sa.ColumnElement, prop: str) -> sa.ColumnElement:
        path = sa.bindparam(None, f'$."{prop}"', type_=sa.Text)
        return sa.func.json_unquote(sa.func.json_extract(column, path))

    def position(self, column: sa.ColumnElement, value: str) -> sa.ColumnElement | None:
        """1-based position of value in column; None where the dialect has no such function."""
        return None

    def whole_json(self, column: sa.ColumnElement) -> sa.ColumnElement:
        return column


class MysqlValues(SourceValues):
    def position(self, column, value):
        return sa.func.instr(column, value)


class PostgresqlValues(SourceValues):
    """PostgreSQL's types hold what they say, except infinite and out-of-range dates and times.

    Sessions run with TimeZone UTC (source.py, arrow_extract.py), so a `timestamp without
    time zone` compares and reads as UTC, as the README promises, whatever the server's setting.
    """

    def readable(self, column, source):
        if source.field_type in {"timestamp", "date"} and source.json_property is None:
            return sa.case((_within_written_years(column), column), else_=sa.null())
        return self.value(column, source)

    def problem(self, column, source, *, strict=False):
        if source.json_property is not None:
            return None
        if source.field_type in {"timestamp", "date"}:
            return sa.case(
                (sa.not_(sa.func.isfinite(column)), constant(bad_rows.INFINITE)),
                (sa.not_(_within_written_years(column)), constant(bad_rows.OUTSIDE_WRITTEN_YEARS)),
                else_=sa.null(),
            )
        if strict and source.field_type == "decimal":
            scale = source.scale or 0
            return sa.case(
                (column.in_([constant("NaN"), constant("Infinity"), constant("-Infinity")]), constant(bad_rows.NOT_FINITE)),
                (column != sa.func.round(column, scale), constant(bad_rows.more_decimal_places(scale))),
                (sa.func.abs(column) >= sa.literal_column(f"1e{DECIMAL_PRECISION - scale}"), constant(bad_rows.too_many_digits(DECIMAL_PRECISION))),
                else_=sa.null(),
            )
        return None

    def json_property(self, column, prop):
        return column.op("->>", return_type=sa.Text)(sa.bindparam(None, prop, type_=sa.Text))

    def whole_json(self, column):
        return sa.cast(column, sa.Text)

    def position(self, column, value):
        return sa.func.strpos(column, value)


def _within_written_years(column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    # Untyped literals take the column's own type (date, timestamp or timestamptz).
    return sa.and_(column >= sa.literal_column(f"'{FIRST_DAY}'"), column < sa.literal_column(f"'{FIRST_DAY_AFTER}'"))


class SqliteValues(SourceValues):
    """SQLite stores any storage class in any column; each field type takes only the forms it can read exactly.

    - integer: INTEGER only (a REAL 2.5 or the text '3x' is a bad row, never 2 or 3);
    - decimal: INTEGER (exact), REAL (its 15 significant digits, SQLite's documented precision,
      printed by printf('%!.15g'), which SQLite 3.40 and 3.53 print alike, unlike CAST AS TEXT)
      or TEXT holding a number (every digit kept); other text is a bad row;
    - timestamp: ISO 8601 text, `YYYY-MM-DD`, `T` or space, `HH:MM[:SS[.f...]]`, then
      nothing (UTC), `Z` or an offset `+HH:MM`/`+HHMM`; read, compared and ordered as its UTC
      instant in the canonical text bound parameters use (catalog/sql_types.py);
    - date: `YYYY-MM-DD` text of a real calendar day; boolean: the integers 0 and 1;
    - string and json: text (INTEGER as its digits, REAL as 15 significant digits); a BLOB is
      a bad row; a json field's text must be valid JSON.
    """

    def readable(self, column, source):
        if source.json_property is not None:
            return self.value(column, source)
        match source.field_type:
            case "decimal":
                return sa.type_coerce(_number_text(column), DecimalText())
            case "timestamp":
                return sa.type_coerce(sqlite_instant(column), UtcTimestamp())
            case "date":
                return sqlite_date(column)
            case "string" | "json":
                return sa.case((sa.func.typeof(column) == constant("real"), _real_text(column)), else_=sa.cast(column, sa.Text))
            case "integer" | "boolean":
                # One storage class per column: ADBC's driver types a column by its first rows and stops at a REAL later.
                return sa.case((sa.func.typeof(column) == constant("integer"), column), else_=sa.null())
        return column

    def comparable(self, column, source):
        if source.json_property is not None:
            return self.value(column, source)
        match source.field_type:
            case "timestamp" | "date" | "string" | "json":
                return self.readable(column, source)
            case "decimal":
                # Numbers compare as numbers (a REAL against the bound value); text that holds a number, too.
                return sa.type_coerce(sa.cast(column, sa.Numeric), column.type)
        return column

    def problem(self, column, source, *, strict=False):
        if source.json_property is not None:
            return sa.case((_invalid_json(column), constant(bad_rows.NOT_JSON)), else_=sa.null())
        kind = sa.func.typeof(column)
        match source.field_type:
            case "integer":
                return sa.case((kind.not_in([constant("integer"), constant("null")]), constant(bad_rows.NOT_AN_INTEGER)), else_=sa.null())
            case "boolean":
                valid = sa.or_(column.is_(None), sa.and_(kind == constant("integer"), column.in_([constant(0), constant(1)])))
                return sa.case((sa.not_(valid), constant(bad_rows.NOT_A_BOOLEAN)), else_=sa.null())
            case "decimal":
                not_number = sa.or_(
                    kind == constant("blob"),
                    sa.and_(kind == constant("text"), sa.or_(column == constant(""), _glob(column, "*[^0-9.eE+-]*"))),
                )
                return sa.case((not_number, constant(bad_rows.NOT_A_NUMBER)), else_=sa.null())
            case "timestamp":
                return sa.case((sa.and_(column.is_not(None), sqlite_instant(column).is_(None)), constant(bad_rows.NOT_A_TIMESTAMP)), else_=sa.null())
            case "date":
                return sa.case((sa.and_(column.is_not(None), sqlite_date(column).is_(None)), constant(bad_rows.NOT_A_DATE)), else_=sa.null())
            case "json":
                return sa.case(
                    (kind == constant("blob"), constant(bad_rows.NOT_TEXT)),
                    (_invalid_json(column), constant(bad_rows.NOT_JSON)),
                    else_=sa.null(),
                )
        return sa.case((kind == constant("blob"), constant(bad_rows.NOT_TEXT)), else_=sa.null())

    def raw_text(self, column):
        return sa.case((sa.func.typeof(column) == constant("blob"), sa.func.quote(column)), else_=sa.cast(column, sa.Text))

    def json_property(self, column, prop):
        path = sa.bindparam(None, f'$."{prop}"', type_=sa.Text)
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


def _invalid_json(column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    # SQLite 3.40's json_valid(NULL) is 0, later versions' NULL: a missing document is no problem.
    return sa.and_(column.is_not(None), sa.func.json_valid(column) == 0)


def _real_text(column: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.printf(constant("%!.15g"), column, type_=sa.Text)


def _number_text(column: sa.ColumnElement) -> sa.ColumnElement:
    return sa.case(
        (sa.func.typeof(column) == constant("real"), _real_text(column)),
        else_=sa.cast(column, sa.Text),
    )


_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
_HOURS_MINUTES_GLOB = "[Tt ][0-9][0-9]:[0-9][0-9]"
_CANONICAL_SECONDS_GLOB = _DATE_GLOB + " [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
_SECONDS_FORMAT = "%Y-%m-%d %H:%M:%S"
_MICRO_DIGITS = 6
_MAX_FRACTION_DIGITS = 9


def _strftime_seconds(text: sa.ColumnElement, *modifiers: str) -> sa.ColumnElement:
    return sa.func.strftime(constant(_SECONDS_FORMAT), text, *(constant(m) for m in modifiers), type_=sa.Text)


def _normalizes_to_itself(wall: sa.ColumnElement) -> sa.ColumnElement[bool]:
    # SQLite echoes 2024-02-30 and 24:00:00 back unless a modifier makes it compute the day:
    # a wall time that survives '+0 seconds' unchanged is a real one.
    return sa.and_(_strftime_seconds(wall, "+0 seconds") == wall, wall >= constant("0001"))


def sqlite_instant(column: sa.ColumnElement) -> sa.ColumnElement:
    """Stored ISO 8601 text -> 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC, NULL when it is no instant.

    The fraction is cut off before SQLite's date functions see it (they round it to
    milliseconds, differently across versions) and put back after: digits past the
    sixth must be zeros, as the stage files hold microseconds.
    """
    canonical = sa.and_(_glob(column, _CANONICAL_SECONDS_GLOB), _normalizes_to_itself(column))
    return sa.case((canonical, column), else_=_parsed_instant(column))


def _parsed_instant(text: sa.ColumnElement) -> sa.ColumnElement:
    length = sa.func.length(text, type_=sa.Integer)
    zone_length = sa.case(
        (_glob(text, "*[Zz]"), 1),
        (_glob(text, "*[+-][0-9][0-9]:[0-9][0-9]"), 6),
        (_glob(text, "*[+-][0-9][0-9][0-9][0-9]"), 5),
        else_=0,
    )
    zone = _substr(text, length - zone_length + 1)
    offset = sa.case(
        (zone_length == 6, zone),
        (zone_length == 5, _substr(zone, 1, 3) + constant(":") + _substr(zone, 4)),
        else_=constant(""),
    )
    core = _substr(text, 1, length - zone_length)
    core_length = sa.func.length(core, type_=sa.Integer)
    fraction = _substr(core, 21)
    seconds_shape = _glob(_substr(core, 1, 19), _DATE_GLOB + _HOURS_MINUTES_GLOB + ":[0-9][0-9]")
    fraction_shape = sa.and_(
        core_length.between(21, 20 + _MAX_FRACTION_DIGITS),
        _substr(core, 20, 1) == constant("."),
        sa.not_(_glob(fraction, "*[^0-9]*")),
    )
    wall = sa.case(
        (sa.and_(core_length == 10, zone_length == 0, _glob(core, _DATE_GLOB)), core + constant(" 00:00:00")),
        (
            sa.and_(core_length == 16, _glob(core, _DATE_GLOB + _HOURS_MINUTES_GLOB)),
            _substr(core, 1, 10) + constant(" ") + _substr(core, 12, 5) + constant(":00"),
        ),
        (
            sa.and_(seconds_shape, sa.or_(core_length == 19, fraction_shape)),
            _substr(core, 1, 10) + constant(" ") + _substr(core, 12, 8),
        ),
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


def sqlite_date(column: sa.ColumnElement) -> sa.ColumnElement:
    """Stored 'YYYY-MM-DD' text of a real calendar day, else NULL."""
    valid = sa.and_(
        _glob(column, _DATE_GLOB),
        sa.func.date(column, constant("+0 days")) == column,
        column >= constant("0001"),
    )
    return sa.case((valid, column), else_=sa.null())


_DIALECTS: dict[str, SourceValues] = {"postgresql": PostgresqlValues(), "sqlite": SqliteValues(), "mysql": MysqlValues()}
_ANY = SourceValues()


def values_for(dialect: str) -> SourceValues:
    return _DIALECTS.get(dialect, _ANY)
