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

import os
from collections.abc import Iterator
from contextlib import closing

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from export_pipelines.spec.plan import SourceRef

FAST_EXTRACT_ENV_VAR = "EXPORT_FAST_EXTRACT"
# PostgreSQL's driver sizes batches in bytes; rows of an export are rarely wider than this.
POSTGRES_BYTES_PER_ROW_HINT = 200


class FastPathUnavailable(RuntimeError):
    pass


def fast_extract_enabled() -> bool:
    return os.environ.get(FAST_EXTRACT_ENV_VAR, "1") != "0"


def driver_for(url: sa.URL):
    """The ADBC DB-API module for the URL's database, or None where there is none."""
    try:
        if url.get_backend_name() == "postgresql":
            import adbc_driver_postgresql.dbapi as driver
        elif url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" and not url.query:
            import adbc_driver_sqlite.dbapi as driver
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


def open_connection(url: sa.URL):
    driver = driver_for(url)
    if driver is None:
        raise FastPathUnavailable(f"no ADBC driver for {url.get_backend_name()}")
    try:
        if url.get_backend_name() == "postgresql":
            # libpq reads the same URL (host, port, user, password, query options such as search_path).
            return driver.connect(url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True)
        return driver.connect(url.database, autocommit=True)
    except Exception as error:  # the driver's own error types differ; any failure means "use the general path"
        raise FastPathUnavailable(f"ADBC could not connect: {error}") from error


def count_and_batches(connection, count_sql: str, rows_sql: str, batch_size: int, backend: str) -> tuple[int, Iterator[pa.RecordBatch]]:
    """COUNT(*) and the rows in one snapshot (PostgreSQL: a REPEATABLE READ transaction; SQLite: one read transaction)."""
    cursor = connection.cursor()
    try:
        if backend == "postgresql":
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(batch_size * POSTGRES_BYTES_PER_ROW_HINT)})
        else:
            cursor.execute("BEGIN")
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_size)})
        cursor.execute(count_sql)
        (expected,) = cursor.fetchone()
        cursor.execute(rows_sql)
        reader = cursor.fetch_record_batch()
    except Exception as error:
        cursor.close()
        raise FastPathUnavailable(f"ADBC could not run the query: {error}") from error
    return expected, _batches_then_commit(cursor, reader)


def _batches_then_commit(cursor, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    with closing(cursor):
        try:
            yield from reader
        except Exception as error:
            raise FastPathUnavailable(f"ADBC failed while reading rows: {error}") from error
        finally:
            reader.close()
        cursor.execute("COMMIT")


def to_stage_batch(batch: pa.RecordBatch, schema: pa.Schema, sources: tuple[SourceRef, ...]) -> pa.RecordBatch:
    arrays = [to_stage_column(batch.column(i), source, field.type) for i, (source, field) in enumerate(zip(sources, schema, strict=True))]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# The driver types each field type may arrive as (PostgreSQL's, then SQLite's).
EXPECTED_DRIVER_TYPES = {
    "integer": (pa.types.is_integer,),
    # PostgreSQL numeric as text; SQLite as the general path's integer minor units (extract._selected).
    "decimal": (pa.types.is_string, pa.types.is_int64),
    "boolean": (pa.types.is_boolean, pa.types.is_int64),
    "timestamp": (pa.types.is_timestamp, pa.types.is_string),
    "date": (pa.types.is_date32, pa.types.is_string),
    "string": (pa.types.is_string, pa.types.is_large_string),
    "json": (pa.types.is_string, pa.types.is_large_string),
}


def to_stage_column(array: pa.Array, source: SourceRef, target: pa.DataType) -> pa.Array:
    if isinstance(array.type, pa.BaseExtensionType):
        # PostgreSQL numeric (opaque) and json arrive as extension types over their text.
        array = array.storage
    kind = array.type
    if pa.types.is_null(kind):
        return pa.nulls(len(array), target)
    if not any(check(kind) for check in EXPECTED_DRIVER_TYPES[source.field_type]):
        raise FastPathUnavailable(f"{source.label} arrived as {kind}, not a type expected for a {source.field_type}")
    try:
        if source.field_type == "decimal" and pa.types.is_int64(kind):
            return minor_units_to_decimal(array, target)
        if source.field_type == "timestamp" and pa.types.is_string(kind):
            # SQLite's UTC text; a value with an offset is refused here and converted by the general path.
            return pc.cast(pc.cast(array, pa.timestamp("us")), target)
        if source.field_type == "timestamp" and kind.tz is None:
            return pc.cast(array.cast(pa.timestamp("us")), target)
        return pc.cast(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise FastPathUnavailable(f"{source.label}: {error}") from error


def minor_units_to_decimal(array: pa.Array, target: pa.Decimal128Type) -> pa.Array:
    """Integer counts of 10^-scale units as decimals of that scale: the same unscaled integers, exactly."""
    # A decimal128 holds its unscaled integer; a cast to scale 0 writes those integers, and the
    # buffers read with the target's scale are the values (123 units at scale 2 are 1.23).
    unscaled = pc.cast(array, pa.decimal128(target.precision, 0))
    return pa.Array.from_buffers(target, len(unscaled), unscaled.buffers(), unscaled.null_count, unscaled.offset)
