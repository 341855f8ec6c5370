"""SQLite's ISO 8601 text read as instants by SQL, checked against Python's datetime on two thousand stored forms.

The SQL runs on both SQLite builds the extract meets: Python's sqlite3 module (the general
path) and ADBC's bundled SQLite (the fast path), which differ in how their date functions
round fractions. The reference below is written from ISO 8601 and datetime, not from the
product's SQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import sqlite3

import adbc_driver_sqlite.dbapi
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from export_pipelines.catalog.models import FieldDef, ModelDef
from export_pipelines.catalog.sql_types import model_table
from export_pipelines.spec.plan import SourceRef
from export_pipelines.stages.dialects import SqliteDialect, sqlite_date, sqlite_instant

DATES = ["2024-03-10", "2024-02-29", "2023-02-29", "2024-02-30", "2024-13-01", "0000-01-01", "0001-01-01", "9999-12-31", "1969-12-31", "2024-3-10"]
TIMES = ["", "T08:00", " 08:00", "T08:00:00", " 23:59:59", "t12:30:45", "T24:00:00", "T23:60:00", "T08:00:00.5", "T08:00:00.123456",
         "T08:00:00.1234567", "T08:00:00.1234560", "T23:59:59.999999", "T08:00:00.", "T08:00:00.000000", "T08:00:00.0000000001", "T8:00:00"]
ZONES = ["", "Z", "z", "+02:00", "-05:30", "+0200", "-0530", "+14:59", "+15:00", " +01:00", "+02", "+00:00"]
VALUES = ["".join(parts) for parts in itertools.product(DATES, TIMES, ZONES)] + [
    "", "x", "yesterday", "2024-03-10 08:00:00 ", " 2024-03-10 08:00:00", "20240310T080000Z", "2024-03-10 08:00:0x", "31/12/2024 23:59:00",
]
ISO = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|z|[+-]\d{2}:\d{2}|[+-]\d{4})?")


def reference_instant(text: str) -> str | None:
    """The canonical UTC text ('YYYY-MM-DD HH:MM:SS[.ffffff]') of a supported form, else None."""
    match = ISO.fullmatch(text)
    if not match:
        return None
    date, hours_minutes, seconds, fraction, zone = match.groups()
    if hours_minutes is None and zone:
        return None
    try:
        wall = dt.datetime.fromisoformat(f"{date} {hours_minutes or '00:00'}:{seconds or '00'}")
    except ValueError:
        return None
    fraction = fraction or ""
    if fraction[6:].strip("0"):
        return None  # digits past microseconds that are not zeros: not exactly a microsecond instant
    offset = dt.timedelta(0)
    if zone not in (None, "Z", "z"):
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        if hours > 14 or minutes > 59:
            return None
        offset = (1 if zone[0] == "+" else -1) * dt.timedelta(hours=hours, minutes=minutes)
    try:
        utc = wall - offset
    except OverflowError:
        return None
    micro = int((fraction + "000000")[:6])
    return utc.isoformat(sep=" ") + (f".{micro:06d}" if micro else "")


def reference_date(text: str) -> str | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        return None


@pytest.fixture(scope="module", params=["sqlite3", "adbc"])
def stored(request):
    """A connection of each SQLite build with every value stored in `t.created_at` (and `t.day`)."""
    connection = sqlite3.connect(":memory:") if request.param == "sqlite3" else adbc_driver_sqlite.dbapi.connect()
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, created_at TEXT, day TEXT)")
    cursor.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, value, value) for i, value in enumerate(VALUES)])
    yield cursor
    cursor.close()
    connection.close()


def evaluate(cursor, *expressions) -> list[tuple]:
    # The model's own table, so each column has the type the extract gives it (a timestamp's + is not ||).
    table = model_table(ModelDef(table="t", primary_key="id", fields={
        "id": FieldDef(type="integer"), "created_at": FieldDef(type="timestamp"), "day": FieldDef(type="date")}))
    query = sa.select(table.c.created_at, *(e(table) for e in expressions)).order_by(table.c.id)
    cursor.execute(str(query.compile(dialect=sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True})))
    return cursor.fetchall()


def fails(source: SourceRef, *, converted: bool):
    return lambda table: sa.case((sa.or_(*[c.fails for c in SqliteDialect().checks(table.c[source.column], source, converted=converted)]), 1), else_=0)


TIMESTAMP = SourceRef("created_at", "created_at", "timestamp")
DATE = SourceRef("day", "day", "date")


def test_every_supported_form_reads_as_its_utc_instant_and_every_other_is_refused(stored):
    rows = evaluate(stored, lambda t: sqlite_instant(t.c.created_at), fails(TIMESTAMP, converted=False))
    mismatches = [(text, instant, bool(bad)) for text, instant, bad in rows
                  if bool(bad) != (reference_instant(text) is None) or (not bad and instant != reference_instant(text))]
    assert mismatches == []
    assert sum(1 for text, _, _ in rows if reference_instant(text)) > 400  # the corpus is not mostly garbage


def test_what_the_sql_lets_through_unparsed_the_conversion_refuses(stored):
    # Converted values get the cheap check only: text that merely looks canonical reaches Arrow's parse, which must refuse it.
    rows = evaluate(stored, lambda t: sqlite_instant(t.c.created_at), fails(TIMESTAMP, converted=True))
    passed_invalid = [instant for text, instant, bad in rows if not bad and reference_instant(text) is None and instant is not None]
    assert passed_invalid, "the cheap check should pass some invalid text on to the conversion"
    for instant in passed_invalid:
        with pytest.raises(pa.ArrowInvalid):
            pc.cast(pa.array([instant]), pa.timestamp("us"))


def test_dates_are_real_calendar_days(stored):
    rows = evaluate(stored, lambda t: sqlite_date(t.c.day), fails(DATE, converted=False))
    assert [(text, day) for text, day, bad in rows if bool(bad) != (reference_date(text) is None)] == []
    assert {day for text, day, bad in rows if not bad} == {reference_date(text) for text in VALUES} - {None}
