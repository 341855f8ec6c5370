"""An audience file's customer ids, loaded into a temporary table of the extract's connection.

A hundred thousand ids as bound parameters of one IN list would hit driver limits
(SQLite allows 32 766, PostgreSQL 65 535) and replan every run; a temporary table in
the same connection (and snapshot) is joined like any table and vanishes with it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from export_pipelines.catalog.sql_types import sql_type
from export_pipelines.catalog.models import FieldDef
from export_pipelines.lazy_imports import pa, pc, pcsv, sa
from export_pipelines.spec.plan import SourceRef

AUDIENCE_COLUMN = "customer_id"
INSERT_CHUNK = 10_000


class AudienceFileError(ValueError):
    pass


def read_customer_ids(path: Path, customer: SourceRef) -> pa.Array:
    """Distinct ids, one per line (first CSV column); a first line that is not an id is a header."""
    options = pcsv.ReadOptions(autogenerate_column_names=True, encoding="utf8")
    convert = pcsv.ConvertOptions(column_types={"f0": pa.string()}, strings_can_be_null=False)
    try:
        column = pcsv.read_csv(path, read_options=options, convert_options=convert).column(0).combine_chunks()
    except (pa.ArrowInvalid, FileNotFoundError) as error:
        raise AudienceFileError(f"audience file {path} could not be read: {error}") from error
    values = pc.utf8_trim_whitespace(column)
    values = values.filter(pc.not_equal(values, ""))
    if customer.field_type != "integer":
        return pc.unique(values)
    is_integer = pc.match_substring_regex(values, r"^[+-]?[0-9]+$")
    if len(values) and not is_integer[0].as_py():
        values, is_integer = values.slice(1), is_integer.slice(1)
    not_integers = values.filter(pc.invert(is_integer))
    if len(not_integers):
        raise AudienceFileError(f"audience file {path}: {not_integers[0].as_py()!r} is not an integer customer id")
    try:
        return pc.unique(pc.replace_substring_regex(values, r"^\+", "").cast(pa.int64()))
    except pa.ArrowInvalid as error:
        raise AudienceFileError(f"audience file {path}: a customer id is outside the 64-bit integer range ({error})") from None


def load_audience_table(connection: sa.Connection, path: Path, customer: SourceRef) -> sa.Table:
    """A temporary table of the file's ids, created and filled in this connection."""
    ids = read_customer_ids(path, customer)
    column_type = sql_type(FieldDef(type=customer.field_type))
    table = sa.Table(
        f"export_audience_{uuid.uuid4().hex[:12]}",
        sa.MetaData(),
        # Not autoincrement: the ids are given, and PostgreSQL-derived dialects (duckdb_engine) would make it a BIGSERIAL.
        sa.Column(AUDIENCE_COLUMN, column_type, primary_key=True, autoincrement=False),
        prefixes=["TEMPORARY"],
    )
    table.create(connection)
    for start in range(0, len(ids), INSERT_CHUNK):
        chunk = ids.slice(start, INSERT_CHUNK).to_pylist()
        connection.execute(table.insert(), [{AUDIENCE_COLUMN: value} for value in chunk])
    return table
