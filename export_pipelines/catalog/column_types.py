"""The column types of our own: how a field type's values are bound and read back on each dialect.

sql_types.sql_type chooses among them; stages/dialects.py and stages/query.py coerce
expressions to them. (A module apart because subclassing SQLAlchemy's types imports it: the
modules the code location loads import this one inside the functions that build SQL.)
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from export_pipelines.catalog.sql_types import NUMBER_TEXT, SQLITE_TIMESTAMP_TEXT, sqlite_timestamp_text


class UtcTimestamp(sa.types.TypeDecorator):
    """A timestamp that always comes back timezone-aware in UTC; naive stored values are UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String())
        if dialect.name in {"mysql", "mariadb"}:
            # DATETIME, not TIMESTAMP: no session zone applies, and no 2038 limit; (6): microseconds kept.
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            return sqlite_timestamp_text(value)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            # Any other text is left as it is, for the extract to reject its row and name it.
            if not SQLITE_TIMESTAMP_TEXT.fullmatch(value):
                return value
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                return value
        if not isinstance(value, dt.datetime):
            # A date column read as a timestamp field: its midnight in UTC, as a bare date in a filter means.
            value = dt.datetime.combine(value, dt.time())
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class IsoDate(sa.types.TypeDecorator):
    """A date selected as 'YYYY-MM-DD' text; text that is no real day comes back unchanged, so the extract rejects its row."""

    impl = sa.Text
    cache_ok = True

    def process_result_value(self, value, dialect):
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                return value
        return value


class ExactDecimal(sa.types.TypeDecorator):
    """A decimal column read without a float detour: a Decimal as the driver gives it, an integer as
    its Decimal, a float (a float column mapped as a decimal) by its 15 significant digits, as
    SQLite's REALs are read; anything else unchanged, for the extract to refuse. SQLAlchemy's own
    Numeric would round a float to the column's scale, silently."""

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int | None):
        super().__init__(precision, scale, asdecimal=True)

    def bind_processor(self, dialect):
        if dialect.name == "duckdb":
            # duckdb_engine builds on the psycopg2 dialect but declares no native decimals, so Numeric
            # would bind a Decimal as a float (12345678901234.5678 stored as ...5680, a filter value cut
            # to 17 digits); DuckDB's own client binds a Decimal exactly.
            return None
        return super().bind_processor(dialect)

    def result_processor(self, dialect, coltype):
        def process(value):
            if isinstance(value, float):
                return decimal.Decimal(format(value, ".15g")) if math.isfinite(value) else value
            if type(value) is int:
                return decimal.Decimal(value)
            return value

        return process


class DecimalText(sa.types.TypeDecorator):
    """A number selected as text (SQLite's exact forms of a decimal, extract's readable value) read back as a Decimal.

    Text that is not a number comes back unchanged, so the extract rejects its row and names it.
    """

    impl = sa.Text
    cache_ok = True

    def process_result_value(self, value, dialect):
        if isinstance(value, str) and NUMBER_TEXT.fullmatch(value):
            return decimal.Decimal(value)
        return value


class JsonDocument(sa.types.TypeDecorator):
    """JSON stored natively (jsonb in PostgreSQL, text in SQLite, LONGTEXT in MySQL/MariaDB); read back as text."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        if dialect.name in {"mysql", "mariadb"}:
            # MariaDB's JSON is LONGTEXT too; the text stays as written (MySQL's JSON type would reformat it).
            return dialect.type_descriptor(mysql.LONGTEXT())
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value, dialect):
        # JSONB serializes what it is given: hand it the document, not its text, or it stores a string.
        if dialect.name == "postgresql" and isinstance(value, str):
            return json.loads(value)
        return value

    def process_result_value(self, value, dialect):
        # A driver that parses JSON hands over the document; bytes (a SQLite BLOB) stay bytes, for the extract to refuse.
        if value is not None and not isinstance(value, str | bytes):
            return json.dumps(value)
        return value


class Utf8Bytes(sa.types.TypeDecorator):
    """Text compared as its UTF-8 bytes (MySQL's BINARY), read back and bound as text."""

    impl = sa.LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.encode() if isinstance(value, str) else value

    def process_result_value(self, value, dialect):
        # Bytes that are no UTF-8 stay bytes, for the extract to refuse.
        if isinstance(value, bytes | bytearray):
            try:
                return bytes(value).decode()
            except UnicodeDecodeError:
                return bytes(value)
        return value
