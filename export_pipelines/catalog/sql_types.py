"""SQL types of catalog field types, and the table objects queries are built on.

One place decides how each field type is stored and read back, so the demo generator's
DDL and the extract stage's result processing cannot disagree. The column types of our own
are in column_types.py, which subclasses SQLAlchemy's and so imports it: it is imported
where a table or query is built, not when the code location loads (lazy_imports.py).
"""

from __future__ import annotations

import datetime as dt
import re

from export_pipelines.catalog.models import FieldDef, ModelDef
from export_pipelines.lazy_imports import sa

# SQLite has no timestamp type: UTC text in the canonical form of its own datetime()
# function ('YYYY-MM-DD HH:MM:SS', with '.ffffff' only when there are microseconds)
# sorts and compares correctly as text, and bound parameters use the same form.
SQLITE_SECONDS_FORMAT = "%Y-%m-%d %H:%M:%S"
# A decimal field's values have at most 38 significant digits (Arrow's decimal128, PostgreSQL's
# numeric(38, s)); sums and averages are computed with 76 (stages/aggregation.py), which no sum
# of 38-digit values can exceed, so they need no overflow check.
DECIMAL_PRECISION = 38
# A number as text, as SQLite's printf and PostgreSQL write them and as Arrow's decimal cast reads
# them; Python's Decimal() alone would also take ' 1_000 ', 'NaN' and 'Infinity'.
NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


# That form exactly: the only text a timestamp is read from (stages/dialects.py turns the other ISO 8601
# forms into it in SQL, so the SQL's reading and the conversion's cannot differ).
SQLITE_TIMESTAMP_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?")


def sqlite_timestamp_text(value: dt.datetime) -> str:
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    text = value.strftime(SQLITE_SECONDS_FORMAT)
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text


def sql_type(field: FieldDef) -> sa.types.TypeEngine:
    from export_pipelines.catalog.column_types import ExactDecimal, JsonDocument, UtcTimestamp

    match field.type:
        case "string":
            return sa.Text()
        case "integer":
            return sa.BigInteger()
        case "decimal":
            return ExactDecimal(DECIMAL_PRECISION, field.scale)
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
