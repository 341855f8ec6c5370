"""SQL types of catalog field types, and the table objects queries are built on.

One place decides how each field type is stored and read back, so the demo generator's
DDL and the extract stage's result processing cannot disagree.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from export_pipelines.catalog.models import FieldDef, ModelDef

# SQLite has no timestamp type: the canonical text form of its own datetime() function,
# in UTC, sorts and compares correctly as text, and bound parameters use the same form.
SQLITE_TIMESTAMP_FORMAT = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d"
SQLITE_TIMESTAMP_REGEXP = r"(\d+)-(\d+)-(\d+)[ T](\d+):(\d+):(\d+)"
DECIMAL_PRECISION = 18


class UtcTimestamp(sa.types.TypeDecorator):
    """A timestamp that always comes back timezone-aware in UTC; naive stored values are UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(
                sqlite.DATETIME(storage_format=SQLITE_TIMESTAMP_FORMAT, regexp=SQLITE_TIMESTAMP_REGEXP)
            )
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class JsonDocument(sa.types.TypeDecorator):
    """JSON stored natively (jsonb in PostgreSQL, text in SQLite); read back as text."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value, dialect):
        return value

    def process_result_value(self, value, dialect):
        return value


def sql_type(field: FieldDef) -> sa.types.TypeEngine:
    match field.type:
        case "string":
            return sa.Text()
        case "integer":
            return sa.BigInteger()
        case "decimal":
            return sa.Numeric(DECIMAL_PRECISION, field.scale, asdecimal=True)
        case "boolean":
            return sa.Boolean()
        case "timestamp":
            return UtcTimestamp()
        case "date":
            return sa.Date()
        case "json":
            return JsonDocument()
    raise ValueError(f"unknown field type {field.type!r}")


def model_table(model: ModelDef, metadata: sa.MetaData | None = None) -> sa.Table:
    """The model's table with one column per distinct source column (aliases share a column)."""
    schema, _, name = model.table.rpartition(".")
    columns: dict[str, sa.Column] = {}
    for field_name, field in model.fields.items():
        column_name = model.column_of(field_name)
        if column_name not in columns:
            columns[column_name] = sa.Column(
                column_name,
                sql_type(field),
                primary_key=field_name == model.primary_key,
                autoincrement=False,
            )
    return sa.Table(name, metadata or sa.MetaData(), *columns.values(), schema=schema or None)
