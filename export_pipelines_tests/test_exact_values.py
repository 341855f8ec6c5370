"""Every value is written exactly as the source holds it, or its row is refused with a reason.

The inputs below were found writing wrong values silently; each stands here with its right
bytes, on SQLite, PostgreSQL and MariaDB, with the fast paths on and off. Expected bytes are written
by hand.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import logging
import sqlite3
import subprocess
import sys

import pytest
import sqlalchemy as sa

from export_pipelines.stages.bad_rows import TooManyBadRows
from export_pipelines_tests.conftest import METADATA_SOURCES, SOURCES, run_export, source_url
from export_pipelines_tests.stage_runs import run_stages

DDL_TYPES = {
    "postgresql": {"int": "bigint", "text": "text", "ts": "timestamptz", "naive_ts": "timestamp", "date": "date"},
    "sqlite": {"int": "INTEGER", "text": "TEXT", "ts": "TEXT", "naive_ts": "TEXT", "date": "TEXT"},
    "mariadb": {"int": "bigint", "text": "text", "ts": "timestamp(6) NULL", "naive_ts": "datetime(6)", "date": "date"},
    "duckdb": {"int": "bigint", "text": "varchar", "ts": "timestamptz", "naive_ts": "timestamp", "date": "date"},
}
# A column that holds any decimal the tests store: PostgreSQL's unbounded numeric, MySQL's widest DECIMAL
# with room for 45 integer digits.
ANY_DECIMAL = {"postgresql": "numeric", "mariadb": "decimal(65,20)", "sqlite": "TEXT"}


@pytest.fixture(params=SOURCES)
def source(request, tmp_path) -> tuple[str, str]:
    """(URL, dialect) of an empty database: a SQLite file, a fresh PostgreSQL schema or MariaDB database."""
    return source_url(request, tmp_path, request.param), request.param


@pytest.fixture(params=METADATA_SOURCES)
def any_source(request, tmp_path) -> tuple[str, str]:
    """`source`, and DuckDB (the general path's stand-in for any other SQLAlchemy dialect) where its types hold the test's values."""
    return source_url(request, tmp_path, request.param), request.param


@pytest.fixture(params=[True, False], ids=["fast", "general"])
def fast(request) -> bool:
    return request.param


def create_table(url: str, name: str, columns: dict[str, str], rows: list[tuple]) -> None:
    """CREATE TABLE with the given SQL column types and INSERT the rows (values bound as the driver binds them)."""
    engine = sa.create_engine(url)
    names = list(columns)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE TABLE {name} ({', '.join(f'{c} {t}' for c, t in columns.items())})"))
        if rows:
            insert = sa.text(f"INSERT INTO {name} ({', '.join(names)}) VALUES ({', '.join(':' + c for c in names)})")
            connection.execute(insert, [dict(zip(names, row, strict=True)) for row in rows])
    engine.dispose()


def model(name: str, fields: dict, **keys) -> dict:
    return {"models": {name: {"table": name, "primary_key": "id", "fields": {"id": {"type": "integer", "identifier": True}, **fields}, **keys}}}


# --- Decimals: positional, exactly the field's scale, on every path --------------------------------------------------

@pytest.mark.parametrize(
    ("scale", "column", "values", "expected"),
    [
        (7, "numeric(20,7)", ["0", "-0.0000001", "0.0000001", "1", None], ["0.0000000", "-0.0000001", "0.0000001", "1.0000000", ""]),
        (10, "numeric(30,10)", ["0", "-0.0000000001", "0.0000000001", "0.0000001", None],
         ["0.0000000000", "-0.0000000001", "0.0000000001", "0.0000001000", ""]),
    ],
)
def test_small_decimals_are_positional_not_scientific(any_source, fast, tmp_path, monkeypatch, scale, column, values, expected):
    url, dialect = any_source
    # SQLite's NUMERIC stores them as REAL (0.0 included).
    stored = [(i + 1, f"r{i + 1}", float(v) if v is not None and dialect == "sqlite" else v) for i, v in enumerate(values)]
    columns = {"id": DDL_TYPES[dialect]["int"], "n": DDL_TYPES[dialect]["text"], "v": "NUMERIC" if dialect == "sqlite" else column}
    create_table(url, "amounts", columns, stored)
    models = model("amounts", {"n": {"type": "string"}, "v": {"type": "decimal", "scale": scale}})
    plain = run_stages(url, tmp_path / "plain", {"name": "plain", "model": "amounts", "fields": [{"from": "v", "to": "V"}], "order": "id"},
                       fast=fast, monkeypatch=monkeypatch, models=models)
    assert plain.content == ("V\r\n" + "".join(f"{e}\r\n" for e in expected)).encode()
    # default/replace turn the value into its written text first
    mapped_spec = {"name": "mapped", "model": "amounts", "order": "id",
                   "fields": ["id", {"from": "v", "to": "V", "default": "none", "replace": {"1": "one"}}]}
    mapped = run_stages(url, tmp_path / "mapped", mapped_spec, fast=fast, monkeypatch=monkeypatch, models=models)
    assert mapped.content == ("id,V\r\n" + "".join(f"{i},{e or 'none'}\r\n" for i, e in enumerate(expected, 1))).encode()
    # ...and aggregates of them, one group per row: sum and min keep the scale, avg adds two places
    grouped_spec = {"name": "grouped", "model": "amounts", "fields": [
        {"from": "n", "aggregation": "group"}, {"from": "v", "to": "S", "aggregation": "sum"},
        {"from": "v", "to": "A", "aggregation": "avg"}, {"from": "v", "to": "M", "aggregation": "min"}]}
    grouped = run_stages(url, tmp_path / "grouped", grouped_spec, fast=fast, monkeypatch=monkeypatch, models=models)
    rows = [f"r{i},{e},{e + '00' if e else ''},{e}" for i, e in enumerate(expected, 1)]
    assert grouped.content == ("n,S,A,M\r\n" + "".join(f"{r}\r\n" for r in rows)).encode()


@pytest.mark.parametrize("path", ["auto", "arrow"])
def test_sums_and_averages_beyond_38_digits_are_exact(any_source, fast, tmp_path, monkeypatch, path):
    url, dialect = any_source
    # SQLite: TEXT keeps every digit (its NUMERIC affinity would keep 15).
    sql_type = "TEXT" if dialect == "sqlite" else "numeric(38,10)"
    rows = [(1, "a", "100000000000000000000000000"), (2, "b", "6000000000000000000000000000"), (3, "b", "6000000000000000000000000000")]
    create_table(url, "big", {"id": DDL_TYPES[dialect]["int"], "n": DDL_TYPES[dialect]["text"], "v": sql_type}, rows)
    models = model("big", {"n": {"type": "string"}, "v": {"type": "decimal", "scale": 10}})
    spec = {"name": "big_totals", "model": "big", "aggregation_path": path, "fields": [
        {"from": "n", "to": "N", "aggregation": "group"}, {"from": "v", "to": "Avg", "aggregation": "avg"},
        {"from": "v", "to": "Sum", "aggregation": "sum"}]}
    run = run_stages(url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models)
    assert run.content == (
        b"N,Avg,Sum\r\n"
        b"a,100000000000000000000000000.000000000000,100000000000000000000000000.0000000000\r\n"
        b"b,6000000000000000000000000000.000000000000,12000000000000000000000000000.0000000000\r\n"
    )
    # DuckDB's SUM of a DECIMAL(38, s) is a DECIMAL(38, s) that overflows past 38 digits: summed over Arrow instead.
    assert run.aggregation == ("pushdown" if dialect not in {"sqlite", "duckdb"} and path == "auto" else "arrow")


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_duckdb_sum_overflow_falls_back_to_exact_sums_over_arrow(tmp_path, monkeypatch, caplog, fast):
    """DuckDB adds DECIMAL(38, s) in a 128-bit integer ("Overflow in HUGEINT addition") and refuses a total past
    38 digits ("Overflow in SUM of DECIMAL"): either way the extract sums over Arrow, exactly, instead."""
    url = f"duckdb:///{tmp_path / 'sums.duckdb'}"
    largest = "9999999999999999999999999999.9999999999"  # 38 digits
    rows = [(1, "hugeint", largest), (2, "hugeint", largest), (3, "hugeint", "0.0000000001"),
            (4, "sum", "6000000000000000000000000000"), (5, "sum", "6000000000000000000000000000"), (6, "fits", "-1.5"), (7, "fits", None)]
    create_table(url, "big", {"id": "bigint", "n": "varchar", "v": "decimal(38,10)"}, rows)
    models = model("big", {"n": {"type": "string"}, "v": {"type": "decimal", "scale": 10}})
    spec = {"name": "totals", "model": "big", "fields": [
        {"from": "n", "aggregation": "group"}, {"from": "v", "to": "total", "aggregation": "sum"}, {"from": "v", "to": "mean", "aggregation": "avg"}]}
    with caplog.at_level(logging.INFO, logger="export_pipelines.stages.extract"):
        run = run_stages(url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models)
    assert run.aggregation == "arrow" and "summing over Arrow" in caplog.text
    # Python's decimal module, 100 digits: the totals and means (two more places) computed here.
    with decimal.localcontext(prec=100):
        groups: dict[str, list[decimal.Decimal]] = {}
        for _, group, value in rows:
            groups.setdefault(group, []).extend([] if value is None else [decimal.Decimal(value)])
        expected = "n,total,mean\r\n" + "".join(
            f"{group},{sum(values).quantize(decimal.Decimal('1e-10'))},{(sum(values) / len(values)).quantize(decimal.Decimal('1e-12'))}\r\n"
            for group, values in sorted(groups.items())
        )
    assert run.content.decode() == expected
    assert "19999999999999999999999999999.9999999999" in expected and "12000000000000000000000000000.0000000000" in expected


def test_sqlite_numeric_is_never_capped(fast, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    # 1000000000 is stored as INTEGER, 1.2345678901234568E27 as REAL: SQLite keeps 15 significant digits of a REAL.
    rows = [(1, "a", 1000000000), (2, "b", -1.2345678901234568e27), (3, "b", -1.2345678901234568e27), (4, "c", 0.1 + 0.2)]
    create_table(url, "amounts", {"id": "INTEGER", "n": "TEXT", "v": "NUMERIC"}, rows)
    models = model("amounts", {"n": {"type": "string"}, "v": {"type": "decimal", "scale": 10}})
    plain = run_stages(url, tmp_path / "plain", {"name": "plain", "model": "amounts", "fields": ["v"], "order": "id"},
                       fast=fast, monkeypatch=monkeypatch, models=models)
    assert plain.content == (
        b"v\r\n1000000000.0000000000\r\n-1234567890123460000000000000.0000000000\r\n"
        b"-1234567890123460000000000000.0000000000\r\n0.3000000000\r\n"
    )
    spec = {"name": "totals", "model": "amounts", "fields": [{"from": "n", "aggregation": "group"},
            {"from": "v", "to": "avg", "aggregation": "avg"}, {"from": "v", "to": "sum", "aggregation": "sum"}]}
    totals = run_stages(url, tmp_path / "totals", spec, fast=fast, monkeypatch=monkeypatch, models=models)
    assert totals.content == (
        b"n,avg,sum\r\n"
        b"a,1000000000.000000000000,1000000000.0000000000\r\n"
        b"b,-1234567890123460000000000000.000000000000,-2469135780246920000000000000.0000000000\r\n"
        b"c,0.300000000000,0.3000000000\r\n"
    )


def test_decimal_that_does_not_fit_is_a_bad_row(source, fast, tmp_path, monkeypatch):
    url, dialect = source
    rows = [(1, "12.50"), (2, "12.505"), (3, "1" + "0" * 40), (4, "-0.01")]
    create_table(url, "amounts", {"id": DDL_TYPES[dialect]["int"], "v": ANY_DECIMAL[dialect]}, rows)
    models = model("amounts", {"v": {"type": "decimal", "scale": 2}})
    spec = {"name": "fits", "model": "amounts", "fields": ["id", "v"], "order": "id"}
    run = run_stages(url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=2)
    assert run.content == b"id,v\r\n1,12.50\r\n4,-0.01\r\n"
    rejected = [(r.key, r.field, r.reason) for r in run.extracted.rejected]
    assert rejected == [
        ("id=2", "v", "a number with more than 2 decimal places (the field's scale)"),
        ("id=3", "v", "a number of more than 38 digits"),
    ]


# --- SQLite values stored in another form than the column says ----------------------------------------------------

DIRTY_TRANSACTIONS = [
    (1, "PAID", "12.50", 1),
    (2, "PAID", "12,50", 2),
    (3, "PAID", "n/a", 1),
    (4, "FULFILLED", "7.25", 2.5),
    (5, "FULFILLED", "1.00", "3x"),
    (6, "PAID", "0.10", 3),
]


@pytest.fixture
def dirty_sqlite(tmp_path) -> str:
    path = tmp_path / "dirty.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE transactions (id INTEGER PRIMARY KEY, status TEXT, amount NUMERIC(12, 2), items_count INTEGER)")
        connection.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?)", DIRTY_TRANSACTIONS)
    return f"sqlite:///{path}"


DIRTY_MODELS = model("transactions", {"status": {"type": "string"}, "amount": {"type": "decimal", "scale": 2},
                                      "items_count": {"type": "integer"}})
DIRTY_REJECTED = [
    ("id=2", "amount", "12,50", "not a number"),
    ("id=3", "amount", "n/a", "not a number"),
    ("id=4", "items_count", "2.5", "not an integer"),
    ("id=5", "items_count", "3x", "not an integer"),
]


def test_sqlite_values_of_another_storage_class_are_bad_rows(dirty_sqlite, fast, tmp_path, monkeypatch):
    spec = {"name": "dirty", "model": "transactions", "fields": ["id", "amount", "items_count"], "order": "id"}
    run = run_stages(dirty_sqlite, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=DIRTY_MODELS, max_bad_rows=4)
    assert run.content == b"id,amount,items_count\r\n1,12.50,1\r\n6,0.10,3\r\n"
    assert [(r.key, r.field, r.value, r.reason) for r in run.extracted.rejected] == DIRTY_REJECTED
    assert run.extracted.expected_rows == 6


@pytest.mark.parametrize(
    ("measure", "totals", "rejected_ids"),
    [
        # Rows 4 and 5 are bad in items_count only, which the first export does not read.
        ("amount", "status,total\r\nFULFILLED,8.25\r\nPAID,12.60\r\n", ["row 2", "row 3"]),
        ("items_count", "status,total\r\nPAID,7\r\n", ["row 4", "row 5"]),
    ],
)
def test_sqlite_bad_rows_are_named_when_aggregating_too(dirty_sqlite, fast, tmp_path, monkeypatch, measure, totals, rejected_ids):
    spec = {"name": "dirty_totals", "model": "transactions",
            "fields": [{"from": "status", "aggregation": "group"}, {"from": measure, "to": "total", "aggregation": "sum"}]}
    run = run_stages(dirty_sqlite, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=DIRTY_MODELS, max_bad_rows=2)
    assert run.content.decode() == totals
    # An integer sum would be pushed down; SQLite would add 2.5 and '3x' as 2.5 and 3: the rows path names them instead.
    assert run.aggregation == "arrow"
    assert [(r.key, r.field) for r in run.extracted.rejected] == [(key, measure) for key in rejected_ids]


def test_sqlite_bad_rows_go_to_the_rejected_file_and_count_against_the_limit(dirty_sqlite, tmp_path):
    spec = {"name": "dirty", "model": "transactions", "fields": ["id", "amount", "items_count"], "order": "id", "max_bad_rows": 4}
    run = run_export(spec, dirty_sqlite, tmp_path / "within", models=DIRTY_MODELS)
    assert run.metadata["rows_rejected"] == 4
    rejected = list(csv.DictReader(open(run.metadata["rejected_file"], newline="", encoding="utf-8")))
    assert [(r["key"], r["field"], r["value"], r["reason"]) for r in rejected] == DIRTY_REJECTED
    over = run_export({**spec, "max_bad_rows": 3}, dirty_sqlite, tmp_path / "over", models=DIRTY_MODELS, raise_on_error=False)
    assert not over.result.success


# --- Time: filters, windows and order compare instants, whatever the stored text form -----------------------------

STORED_TIMES = [
    (1, "2024-03-10T08:00:00Z"),  # 08:00Z
    (2, "2024-03-10T13:00:00+02:00"),  # 11:00Z
    (3, "2024-03-10 12:00:00"),  # 12:00Z, equal to the bound
    (4, "2024-03-10T12:00:00.000000Z"),  # 12:00Z again, other text
    (5, "2024-03-10T12:00:00.000001Z"),  # just after
    (6, "2024-03-11T01:30:00+02:00"),  # 2024-03-10 23:30Z: March 10 in UTC
    (7, "2024-03-10T23:30:00-01:00"),  # 2024-03-11 00:30Z: March 11
    (8, "2024-03-10T14:00:00+0530"),  # 08:30Z
    (9, "2024-03-09T23:59:59.999999Z"),  # March 9
    (10, "2024-03-10"),  # midnight, March 10
    (11, None),
]
INSTANTS = {
    1: "2024-03-10T08:00:00Z", 2: "2024-03-10T11:00:00Z", 3: "2024-03-10T12:00:00Z", 4: "2024-03-10T12:00:00Z",
    5: "2024-03-10T12:00:00.000001Z", 6: "2024-03-10T23:30:00Z", 7: "2024-03-11T00:30:00Z", 8: "2024-03-10T08:30:00Z",
    9: "2024-03-09T23:59:59.999999Z", 10: "2024-03-10T00:00:00Z", 11: "",
}
TIMES_MODELS = model("events", {"created_at": {"type": "timestamp"}}, event_date="created_at")


@pytest.fixture
def iso_text_times(tmp_path) -> str:
    path = tmp_path / "times.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, created_at TEXT)")
        connection.executemany("INSERT INTO events VALUES (?, ?)", STORED_TIMES)
    return f"sqlite:///{path}"


def ids_and_times(content: bytes) -> list[tuple[int, str]]:
    return [(int(i), t) for i, t in (line.split(",") for line in content.decode().splitlines()[1:])]


def test_sqlite_iso_text_is_read_as_its_instant(iso_text_times, fast, tmp_path, monkeypatch):
    spec = {"name": "times", "model": "events", "fields": ["id", "created_at"], "order": ["created_at"]}
    run = run_stages(iso_text_times, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=TIMES_MODELS)
    # Ordered by instant (NULL first, as SQLite sorts it), ties by id.
    expected = sorted(INSTANTS.items(), key=lambda item: (item[1] != "", dt.datetime.fromisoformat(item[1] or "2000-01-01"), item[0]))
    assert ids_and_times(run.content) == expected


def test_sqlite_after_filter_is_strict_by_instant(iso_text_times, fast, tmp_path, monkeypatch):
    spec = {"name": "after_noon", "model": "events", "fields": ["id", "created_at"], "order": "id",
            "filters": {"created_at": {"conditions": {"$after": ["2024-03-10T12:00:00Z"]}}}}
    run = run_stages(iso_text_times, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=TIMES_MODELS)
    assert [i for i, _ in ids_and_times(run.content)] == [5, 6, 7]


def test_sqlite_daily_window_holds_its_day_in_utc(iso_text_times, fast, tmp_path, monkeypatch):
    spec = {"name": "march_10", "model": "events", "fields": ["id"], "order": "id",
            "incremental": {"by": "event_date", "grain": "daily", "start": "2024-01-01"}}
    window = (dt.datetime(2024, 3, 10, tzinfo=dt.UTC), dt.datetime(2024, 3, 11, tzinfo=dt.UTC))
    run = run_stages(iso_text_times, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=TIMES_MODELS, window=window)
    assert run.content == b"id\r\n" + b"".join(f"{i}\r\n".encode() for i in (1, 2, 3, 4, 5, 6, 8, 10))


def test_a_value_that_is_no_timestamp_is_a_bad_row_even_when_only_filtered_on(tmp_path, fast, monkeypatch):
    path = tmp_path / "times.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, created_at TEXT)")
        connection.executemany("INSERT INTO events VALUES (?, ?)", [(1, "2024-03-10T13:00:00Z"), (2, "yesterday"), (3, "2024-02-30 10:00:00"),
                                                                   (4, "2024-03-10T25:00:00Z"), (5, 20240310)])
    spec = {"name": "after", "model": "events", "fields": ["id"], "order": "id",
            "filters": {"created_at": {"conditions": {"$after": ["2024-03-10T12:00:00Z"]}}}}
    run = run_stages(f"sqlite:///{path}", tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=TIMES_MODELS, max_bad_rows=4)
    assert run.content == b"id\r\n1\r\n"
    assert [(r.key, r.field, r.value, r.reason) for r in run.extracted.rejected] == [
        ("id=2", "created_at", "yesterday", "not an ISO 8601 timestamp"),
        ("id=3", "created_at", "2024-02-30 10:00:00", "not an ISO 8601 timestamp"),
        ("id=4", "created_at", "2024-03-10T25:00:00Z", "not an ISO 8601 timestamp"),
        ("id=5", "created_at", "20240310", "not an ISO 8601 timestamp"),
    ]


def test_postgresql_naive_timestamps_are_utc_whatever_the_session_zone(postgres_schema_url, fast, tmp_path, monkeypatch):
    # The server's (here: the connection's) TimeZone and DateStyle must not move or garble a naive timestamp.
    chatham = sa.make_url(postgres_schema_url)
    chatham = chatham.update_query_dict({"options": chatham.query["options"] + " -c TimeZone=Pacific/Chatham -c DateStyle=SQL,DMY"})
    url = chatham.render_as_string(hide_password=False)
    create_table(url, "events", {"id": "bigint", "created_at": "timestamp"},
                 [(1, "2024-03-10 11:59:59.999999"), (2, "2024-03-10 12:00:00"), (3, "2024-03-10 12:00:00.000001")])
    spec = {"name": "after_noon", "model": "events", "fields": ["id", "created_at"], "order": "id",
            "filters": {"created_at": {"conditions": {"$after": ["2024-03-10T12:00:00Z"]}}}}
    run = run_stages(url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=TIMES_MODELS)
    assert run.content == b"id,created_at\r\n3,2024-03-10T12:00:00.000001Z\r\n"


def test_postgresql_infinite_and_five_digit_years_are_bad_rows(postgres_schema_url, fast, tmp_path, monkeypatch):
    create_table(postgres_schema_url, "events", {"id": "bigint", "created_at": "timestamptz", "day": "date"},
                 [(1, "2024-03-10 12:00:00+00", "2024-03-10"), (2, "infinity", "2024-03-10"), (3, "2024-03-10 12:00:00+00", "-infinity"),
                  (4, "10000-01-01 00:00:00+00", "2024-03-10"), (5, "0044-03-15 00:00:00+00 BC", "2024-03-10"),
                  (6, "0001-01-01 00:00:00+00", "9999-12-31")])
    models = model("events", {"created_at": {"type": "timestamp"}, "day": {"type": "date"}})
    spec = {"name": "events", "model": "events", "fields": ["id", "created_at", "day"], "order": "id"}
    run = run_stages(postgres_schema_url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=4)
    assert run.content == b"id,created_at,day\r\n1,2024-03-10T12:00:00Z,2024-03-10\r\n6,0001-01-01T00:00:00Z,9999-12-31\r\n"
    assert [(r.key, r.field, r.reason) for r in run.extracted.rejected] == [
        ("id=2", "created_at", "infinite"),
        ("id=3", "day", "infinite"),
        ("id=4", "created_at", "outside the years 0001-9999"),
        ("id=5", "created_at", "outside the years 0001-9999"),
    ]


# --- NULL and empty: the written form is what default and replace see ------------------------------------------------

def test_replace_of_the_empty_value_covers_null(any_source, fast, tmp_path, monkeypatch):
    url, dialect = any_source
    create_table(url, "notes", {"id": DDL_TYPES[dialect]["int"], "note": DDL_TYPES[dialect]["text"]}, [(1, ""), (2, None), (3, "x")])
    models = model("notes", {"note": {"type": "string"}})
    spec = {"name": "notes", "model": "notes", "order": "id", "fields": ["id", {"from": "note", "replace": {"": "(none)"}}]}
    run = run_stages(url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models)
    assert run.content == b"id,note\r\n1,(none)\r\n2,(none)\r\n3,x\r\n"


# --- Inputs of the same kinds, found by a review of the change ----------------------------------------------------------

def test_an_aggregation_skips_bad_rows_within_the_limit(source, tmp_path):
    url, dialect = source
    # PostgreSQL's numeric holds NaN, which no decimal field can; MySQL's DECIMAL more places than the field's scale.
    bad = {"sqlite": "12,50", "postgresql": "NaN", "mariadb": "0.125"}[dialect]
    create_table(url, "vals", {"id": DDL_TYPES[dialect]["int"], "grp": DDL_TYPES[dialect]["text"], "d2": ANY_DECIMAL[dialect]},
                 [(1, "a", "10.00"), (2, "a", bad), (3, "b", "1.25")])
    models = model("vals", {"grp": {"type": "string"}, "d2": {"type": "decimal", "scale": 2}})
    spec = {"name": "totals", "model": "vals", "max_bad_rows": 1,
            "fields": [{"from": "grp", "aggregation": "group"}, {"from": "d2", "to": "total", "aggregation": "sum"}]}
    run = run_export(spec, url, tmp_path, models=models)
    [content] = run.files.values()
    assert content == b"grp,total\r\na,10.00\r\nb,1.25\r\n"
    assert run.metadata["rows_rejected"] == 1 and run.metadata["aggregation"] == "arrow"
    [check] = run.result.get_asset_check_evaluations()
    assert check.passed


def test_a_row_with_two_bad_values_is_one_bad_row(tmp_path):
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_table(url, "vals", {"id": "INTEGER", "d2": "TEXT", "i": "INTEGER"}, [(1, "1.00", 1), (2, "n/a", 2.5)])
    models = model("vals", {"d2": {"type": "decimal", "scale": 2}, "i": {"type": "integer"}})
    spec = {"name": "vals", "model": "vals", "fields": ["id", "d2", "i"], "order": "id", "max_bad_rows": 1}
    run = run_export(spec, url, tmp_path, models=models)
    assert run.metadata["rows_rejected"] == 1
    [check] = run.result.get_asset_check_evaluations()
    assert check.passed


def test_sqlite_json_that_is_no_text_or_no_json_is_a_bad_row(fast, tmp_path, monkeypatch):
    path = tmp_path / "docs.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, doc TEXT)")
        connection.executemany("INSERT INTO docs VALUES (?, ?)", [(1, '{"a": 1}'), (2, b"{}"), (3, "not json{"), (4, ""), (5, None)])
    models = model("docs", {"doc": {"type": "json"}})
    spec = {"name": "docs", "model": "docs", "fields": ["id", "doc"], "order": "id"}
    run = run_stages(f"sqlite:///{path}", tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=3)
    assert run.content == b'id,doc\r\n1,"{""a"": 1}"\r\n5,\r\n'
    assert [(r.key, r.value, r.reason) for r in run.extracted.rejected] == [
        ("id=2", "X'7B7D'", "binary, not text"), ("id=3", "not json{", "not valid JSON"), ("id=4", "", "not valid JSON")]


def test_sqlite_text_that_is_not_utf8_is_a_bad_row_named_by_key_and_column(fast, tmp_path, monkeypatch, caplog):
    """SQLite keeps any bytes as TEXT, which its Python driver refuses to decode (stopping the read) and its
    ADBC driver copies unchecked: each such row is a bad row, named by its key and column, its bytes shown
    as X'..', in a text field, a json field, a BLOB read as text and a group value, on both extract paths;
    the fast path names them without falling back to the row-by-row read."""
    path = tmp_path / "texts.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE texts (id INTEGER PRIMARY KEY, name TEXT, loose, doc TEXT, grp TEXT, n INTEGER)")
        connection.execute(
            "INSERT INTO texts VALUES (1, 'Zoë', 'a', '{}', 'g1', 1), (2, CAST(X'80FF' AS TEXT), 'b', '{}', 'g1', 2), "
            "(3, 'c', X'C328', '{}', 'g2', 3), (4, 'd', 'x', CAST(X'7B2261223A2280227D' AS TEXT), CAST(X'FF' AS TEXT), 4), "
            "(5, 'e', 'y', '{}', 'g2', 5)"
        )
    url = f"sqlite:///{path}"
    models = model("texts", {"name": {"type": "string"}, "loose": {"type": "string"}, "doc": {"type": "json"}, "grp": {"type": "string"},
                             "n": {"type": "integer"}})
    spec = {"name": "texts", "model": "texts", "fields": ["id", "name", "doc"], "order": "id"}
    with caplog.at_level(logging.INFO, logger="export_pipelines"):
        run = run_stages(url, tmp_path / "rows", spec, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=2)
    assert run.content == "id,name,doc\r\n1,Zoë,{}\r\n3,c,{}\r\n5,e,{}\r\n".encode()
    assert [(r.row_number, r.key, r.field, r.value, r.reason) for r in run.extracted.rejected] == [
        (2, "id=2", "name", "X'80FF'", "not UTF-8 text"),
        (4, "id=4", "doc", "X'7B2261223A2280227D'", "not UTF-8 text"),
    ]
    assert "row by row" not in caplog.text, "the fast extract fell back to the general path"
    blobs = {"name": "blobs", "model": "texts", "fields": ["id", "loose"], "order": "id"}
    run = run_stages(url, tmp_path / "blobs", blobs, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=1)
    assert run.content == b"id,loose\r\n1,a\r\n2,b\r\n4,x\r\n5,y\r\n"
    assert [(r.key, r.field, r.value, r.reason) for r in run.extracted.rejected] == [("id=3", "loose", "X'C328'", "not UTF-8 text")]
    with pytest.raises(TooManyBadRows, match=r"^For export texts, 1 row\(s\) cannot be converted.* row 2 \(id=2\): name = \"X'80FF'\" is not UTF-8 text$"):
        run_stages(url, tmp_path / "refused", spec, fast=fast, monkeypatch=monkeypatch, models=models)
    grouped = {"name": "grouped", "model": "texts", "fields": [{"from": "grp", "aggregation": "group"}, {"from": "n", "to": "total", "aggregation": "sum"}]}
    totals = run_stages(url, tmp_path / "grouped", grouped, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=1)
    assert totals.content == b"grp,total\r\ng1,3\r\ng2,8\r\n"
    assert [(r.key, r.field, r.value, r.reason) for r in totals.extracted.rejected] == [("row 4", "grp", "X'FF'", "not UTF-8 text")]


def test_sqlite_text_that_is_not_utf8_is_listed_in_the_rejected_rows_file(tmp_path):
    path = tmp_path / "names.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO names VALUES (1, 'a'), (2, CAST(X'80FF' AS TEXT)), (3, 'c')")
    spec = {"name": "names", "model": "names", "fields": ["id", "name"], "order": "id", "max_bad_rows": 1}
    run = run_export(spec, f"sqlite:///{path}", tmp_path, models=model("names", {"name": {"type": "string"}}))
    assert run.files[run.metadata["file_names"][0]] == b"id,name\r\n1,a\r\n3,c\r\n"
    with open(run.metadata["rejected_file"], newline="", encoding="utf-8") as rejected:
        assert list(csv.reader(rejected)) == [["row_number", "key", "field", "value", "reason"], ["2", "id=2", "name", "X'80FF'", "not UTF-8 text"]]


def test_sqlite_text_key_that_is_not_utf8_names_its_row_by_the_keys_bytes(fast, tmp_path, monkeypatch):
    """A text primary key holding bytes that are not UTF-8 (its row is bad: the key is a written field) is named
    as SQLite's X'..' literal of its bytes, which finds the row (`WHERE code = X'6380FF'`), on both extract
    paths and in the rejected-rows file (review of stop 26: the fast path raised, the general path wrote lone
    surrogates the file could not hold)."""
    path = tmp_path / "codes.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT)")
        connection.execute("INSERT INTO codes VALUES ('c0', 'a'), (CAST(X'6380FF' AS TEXT), 'bad key'), ('c2', CAST(X'E282' AS TEXT)), ('c3', 'd')")
    models = {"models": {"codes": {"table": "codes", "primary_key": "code",
                                   "fields": {"code": {"type": "string", "identifier": True}, "label": {"type": "string"}}}}}
    spec = {"name": "codes", "model": "codes", "fields": ["code", "label"], "order": "code"}
    run = run_stages(f"sqlite:///{path}", tmp_path / "rows", spec, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=2)
    assert run.content == b"code,label\r\nc0,a\r\nc3,d\r\n"
    # ORDER BY code compares bytes: c0 < c2 < c3 < c\x80\xff.
    assert [(r.row_number, r.key, r.field, r.value, r.reason) for r in run.extracted.rejected] == [
        (2, "code=c2", "label", "X'E282'", "not UTF-8 text"),
        (4, "code=X'6380FF'", "code", "X'6380FF'", "not UTF-8 text"),
    ]
    if fast:
        exported = run_export({**spec, "max_bad_rows": 2}, f"sqlite:///{path}", tmp_path / "run", models=models)
        with open(exported.metadata["rejected_file"], newline="", encoding="utf-8") as rejected:
            assert list(csv.reader(rejected))[1:] == [["2", "code=c2", "label", "X'E282'", "not UTF-8 text"],
                                                      ["4", "code=X'6380FF'", "code", "X'6380FF'", "not UTF-8 text"]]


def test_postgresql_float_columns_read_as_decimals_keep_15_digits_and_are_never_rounded(postgres_schema_url, fast, tmp_path, monkeypatch):
    engine = sa.create_engine(postgres_schema_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE vals (id bigint, grp text, v double precision)"))
        connection.execute(sa.text("INSERT INTO vals VALUES (1, 'a', 12.5), (2, 'a', 12.345), (3, 'b', 0.1::float8 + 0.2::float8), (4, 'b', 2.675)"))
    engine.dispose()
    models = model("vals", {"grp": {"type": "string"}, "v": {"type": "decimal", "scale": 2}})
    plain = {"name": "plain", "model": "vals", "fields": ["id", "v"], "order": "id", "filters": {"v": {"conditions": {"$gt": [0]}}}}
    run = run_stages(postgres_schema_url, tmp_path / "plain", plain, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=2)
    assert run.content == b"id,v\r\n1,12.50\r\n3,0.30\r\n"
    assert [(r.key, r.value) for r in run.extracted.rejected] == [("id=2", "12.345"), ("id=4", "2.675")]
    grouped = {"name": "grouped", "model": "vals", "fields": [{"from": "grp", "aggregation": "group"}, {"from": "v", "to": "total", "aggregation": "sum"}]}
    totals = run_stages(postgres_schema_url, tmp_path / "grouped", grouped, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=2)
    assert totals.content == b"grp,total\r\na,12.50\r\nb,0.30\r\n"


@pytest.mark.parametrize("path", ["auto", "arrow"])
def test_postgresql_non_integers_in_an_integer_field_are_bad_rows_on_every_path(postgres_schema_url, fast, tmp_path, monkeypatch, path):
    create_table(postgres_schema_url, "vals", {"id": "bigint", "grp": "text", "i": "numeric"}, [(1, "a", "2.5"), (2, "a", "3.5"), (3, "a", "4")])
    models = model("vals", {"grp": {"type": "string"}, "i": {"type": "integer"}})
    spec = {"name": "items", "model": "vals", "aggregation_path": path,
            "fields": [{"from": "grp", "aggregation": "group"}, {"from": "i", "to": "total", "aggregation": "sum"}]}
    run = run_stages(postgres_schema_url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=2)
    assert run.content == b"grp,total\r\na,4\r\n"
    assert [r.reason for r in run.extracted.rejected] == ["not an integer", "not an integer"]


def test_sqlite_timestamp_text_in_no_supported_form_is_a_bad_row_not_compared_as_text(fast, tmp_path, monkeypatch):
    path = tmp_path / "times.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, created_at TEXT)")
        connection.executemany("INSERT INTO events VALUES (?, ?)",
                               [(1, "2024-03-10 08:00+01"), (2, "2024-03-10 13+01:00"), (3, "2024-03-10 12:30:00"), (4, "2024-03-10 00000400")])
    spec = {"name": "after", "model": "events", "fields": ["id", "created_at"], "order": "-created_at",
            "filters": {"created_at": {"conditions": {"$after": ["2024-03-10T12:00:00Z"]}}}}
    run = run_stages(f"sqlite:///{path}", tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=TIMES_MODELS, max_bad_rows=3)
    assert run.content == b"id,created_at\r\n3,2024-03-10T12:30:00Z\r\n"
    assert sorted(r.key for r in run.extracted.rejected) == ["id=1", "id=2", "id=4"]


def test_sqlite_decimal_filter_names_text_that_is_no_number(fast, tmp_path, monkeypatch):
    texts = ["5e5e5", "200.5.1", "1.2.3", "--5", "-", ".", "1e999", "150", "50", "1e2"]
    url = f"sqlite:///{tmp_path / 'vals.sqlite'}"
    create_table(url, "vals", {"id": "INTEGER", "v": "TEXT"}, [(i, text) for i, text in enumerate(texts, 1)])
    models = model("vals", {"v": {"type": "decimal", "scale": 2}})
    spec = {"name": "big", "model": "vals", "fields": ["id"], "order": "id", "filters": {"v": {"conditions": {"$gt": [100]}}}}
    run = run_stages(url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=7)
    assert run.content == b"id\r\n8\r\n"
    assert [(r.key, r.reason) for r in run.extracted.rejected] == [(f"id={i}", "not a number") for i in range(1, 7)] + [("id=7", "not a finite number")]


@pytest.mark.parametrize("how", ["url-options", "PGTZ"])
def test_postgresql_session_zone_from_the_environment_changes_nothing(postgres_schema_url, fast, tmp_path, monkeypatch, how):
    url = postgres_schema_url
    if how == "PGTZ":
        monkeypatch.setenv("PGTZ", "America/New_York")
        monkeypatch.setenv("PGDATESTYLE", "SQL, DMY")
    else:
        parsed = sa.make_url(url)
        url = parsed.update_query_dict({"options": parsed.query["options"] + " -c TimeZone=America/New_York"}).render_as_string(hide_password=False)
    create_table(url, "events", {"id": "bigint", "created_at": "timestamp"}, [(1, "2024-03-10 07:00:00"), (2, "2024-03-10 07:30:00"), (3, "2024-03-10 08:00:00")])
    spec = {"name": "after", "model": "events", "fields": ["id", "created_at"], "order": "id",
            "filters": {"created_at": {"conditions": {"$after": ["2024-03-10T07:30:00Z"]}}}}
    run = run_stages(url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=TIMES_MODELS)
    assert run.content == b"id,created_at\r\n3,2024-03-10T08:00:00Z\r\n"


def test_text_compares_and_groups_by_code_point_whatever_the_collation(any_source, fast, tmp_path, monkeypatch):
    url, dialect = any_source
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        if dialect == "duckdb":
            connection.execute(sa.text("CREATE TABLE words (id bigint, w varchar COLLATE NOCASE)"))
        elif dialect == "postgresql":
            connection.execute(sa.text("CREATE COLLATION case_blind (provider = icu, locale = 'und-u-ks-level2', deterministic = false)"))
            connection.execute(sa.text("CREATE TABLE words (id bigint, w text COLLATE case_blind)"))
        elif dialect == "mariadb":
            # Case and accent blind, and blind to trailing spaces ('a' = 'a '), as most MySQL collations are.
            connection.execute(sa.text("CREATE TABLE words (id bigint, w text COLLATE utf8mb4_general_ci)"))
        else:
            connection.execute(sa.text("CREATE TABLE words (id INTEGER, w TEXT COLLATE NOCASE)"))
        connection.execute(sa.text("INSERT INTO words VALUES (1, 'a'), (2, 'A'), (3, 'b'), (4, 'B'), (5, 'é')"))
    engine.dispose()
    models = model("words", {"w": {"type": "string"}})
    picked = {"name": "picked", "model": "words", "fields": ["id", "w"], "order": ["w", "id"],
              "filters": {"junction": "or", "w": {"conditions": {"$in": ["a"], "$gt": ["a"]}}}}
    run = run_stages(url, tmp_path / "picked", picked, fast=fast, monkeypatch=monkeypatch, models=models)
    assert run.content == "id,w\r\n1,a\r\n3,b\r\n5,é\r\n".encode()
    for path in ("auto", "arrow"):
        spec = {"name": f"groups_{path}", "model": "words", "aggregation_path": path,
                "fields": [{"from": "w", "aggregation": "group"}, {"from": "id", "to": "n", "aggregation": "count"}]}
        grouped = run_stages(url, tmp_path / path, spec, fast=fast, monkeypatch=monkeypatch, models=models)
        assert grouped.content == "w,n\r\nA,1\r\nB,1\r\na,1\r\nb,1\r\né,1\r\n".encode()


def test_a_number_compared_with_text_is_refused_at_load(tmp_path):
    from export_pipelines.spec.loader import load_config
    from export_pipelines_tests.conftest import write_config

    specs = [{"name": "by_points", "model": "customers", "fields": ["id"], "filters": {"metadata.points": {"conditions": {"$gt": [100]}}}},
             {"name": "by_text", "model": "customers", "fields": ["id"], "filters": {"metadata.points": {"conditions": {"$gt": ["100"]}}}}]
    config = load_config(write_config(tmp_path / "config", specs))
    assert "by_text" in config.plans and "by_points" not in config.plans
    [problem] = [str(p) for p in config.problems]
    assert "metadata.points is read as text (JSON properties always are), so $gt compares text, where '99' is greater than '100'" in problem


def test_postgresql_exact_values_written_with_trailing_zeros_and_booleans_as_0_and_1(postgres_schema_url, fast, tmp_path, monkeypatch):
    create_table(postgres_schema_url, "vals", {"id": "bigint", "v": "numeric", "flag": "smallint"},
                 [(1, "1." + "0" * 42, 1), (2, "2.50", 0), (3, "3.00", 2)])
    models = model("vals", {"v": {"type": "decimal", "scale": 2}, "flag": {"type": "boolean"}})
    spec = {"name": "vals", "model": "vals", "fields": ["id", "v", "flag"], "order": "id"}
    run = run_stages(postgres_schema_url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=1)
    assert run.content == b"id,v,flag\r\n1,1.00,true\r\n2,2.50,false\r\n"
    assert [(r.key, r.reason) for r in run.extracted.rejected] == [("id=3", "not a boolean (0 or 1)")]


def test_postgresql_columns_of_another_type_than_the_field_are_read_exactly_or_refused(postgres_schema_url, fast, tmp_path, monkeypatch):
    create_table(postgres_schema_url, "vals", {"id": "bigint", "amount": "money", "day": "timestamp", "at": "date"},
                 [(1, "12.50", "2024-01-05 00:00:00", "2024-01-05"), (2, "0.07", "2024-01-05 10:30:00", "2024-01-06")])
    models = model("vals", {"amount": {"type": "decimal", "scale": 2}, "day": {"type": "date"}, "at": {"type": "timestamp"}})
    spec = {"name": "vals", "model": "vals", "fields": ["id", "amount", "day", "at"], "order": "id"}
    run = run_stages(postgres_schema_url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=1)
    assert run.content == b"id,amount,day,at\r\n1,12.50,2024-01-05,2024-01-05T00:00:00Z\r\n"
    assert [(r.key, r.field, r.reason) for r in run.extracted.rejected] == [("id=2", "day", "a time of day, not a date (the column is a timestamp)")]


# --- MariaDB/MySQL: what a lax server lets in, and settings a session can bring ---------------------------------------

NO_CALENDAR_DAY = "not a day of the calendar (a zero date, a zero month or day, or a day the month has not)"


def mariadb_url_with(url: str, init_command: str) -> str:
    """The URL whose connections first run init_command (as a server's or a pool's defaults would)."""
    return sa.make_url(url).update_query_dict({"init_command": init_command}).render_as_string(hide_password=False)


def test_mariadb_datetime_and_timestamp_windows_are_utc_whatever_the_session_zone(mariadb_database_url, fast, tmp_path, monkeypatch):
    # Stored in UTC (a DATETIME is naive: UTC by the README's contract; a TIMESTAMP is an instant the session zone shows).
    create_table(mariadb_url_with(mariadb_database_url, "SET time_zone = '+00:00'"), "events",
                 {"id": "bigint", "created_at": "datetime(6)", "stamped_at": "timestamp(6) NULL"},
                 [(1, "2024-03-09 23:59:59.999999", "2024-03-09 23:59:59.999999"), (2, "2024-03-10 00:00:00", "2024-03-10 00:00:00"),
                  (3, "2024-03-10 23:59:59.999999", "2024-03-10 23:59:59.999999"), (4, "2024-03-11 00:00:00", "2024-03-11 00:00:00")])
    # A session that starts nine hours east must read and compare the same instants.
    tokyo = mariadb_url_with(mariadb_database_url, "SET time_zone = '+09:00'")
    window = (dt.datetime(2024, 3, 10, tzinfo=dt.UTC), dt.datetime(2024, 3, 11, tzinfo=dt.UTC))
    for column in ("created_at", "stamped_at"):
        models = model("events", {column: {"type": "timestamp"}}, event_date=column)
        spec = {"name": f"by_{column}", "model": "events", "fields": ["id", column], "order": "id",
                "incremental": {"by": "event_date", "grain": "daily", "start": "2024-01-01"}}
        run = run_stages(tokyo, tmp_path / column, spec, fast=fast, monkeypatch=monkeypatch, models=models, window=window)
        assert run.content == f"id,{column}\r\n2,2024-03-10T00:00:00Z\r\n3,2024-03-10T23:59:59.999999Z\r\n".encode()


def test_mariadb_zero_and_impossible_dates_are_bad_rows_even_when_only_filtered_on(mariadb_database_url, fast, tmp_path, monkeypatch):
    lax = mariadb_url_with(mariadb_database_url, "SET sql_mode = 'ALLOW_INVALID_DATES'")
    create_table(lax, "events", {"id": "bigint", "created_at": "datetime(6)", "day": "date"},
                 [(1, "2024-03-10 13:00:00", "2024-03-10"), (2, "0000-00-00 00:00:00", "2024-03-10"), (3, "2024-02-30 10:00:00", "2024-03-10"),
                  (4, "2024-03-10 13:00:00", "2024-00-10"), (5, "2024-03-10 13:00:00", "2024-04-31"), (6, "2024-03-10 14:00:00", "0000-00-00"),
                  (7, "2024-03-09 13:00:00", "2024-04-31")])
    models = model("events", {"created_at": {"type": "timestamp"}, "day": {"type": "date"}})
    spec = {"name": "after", "model": "events", "fields": ["id", "day"], "order": "id",
            "filters": {"created_at": {"conditions": {"$after": ["2024-03-10T12:00:00Z"]}}}}
    run = run_stages(lax, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=5)
    assert run.content == b"id,day\r\n1,2024-03-10\r\n"
    # Row 7's day is no date either, but its instant is before the filter's: it is left out, as it would be with any day.
    assert [(r.key, r.field, r.value, r.reason) for r in run.extracted.rejected] == [
        ("id=2", "created_at", "0000-00-00 00:00:00.000000", NO_CALENDAR_DAY),
        ("id=3", "created_at", "2024-02-30 10:00:00.000000", NO_CALENDAR_DAY),
        ("id=4", "day", "2024-00-10", NO_CALENDAR_DAY),
        ("id=5", "day", "2024-04-31", NO_CALENDAR_DAY),
        ("id=6", "day", "0000-00-00", NO_CALENDAR_DAY),
    ]


def test_mariadb_count_and_rows_read_one_snapshot_whatever_the_isolation_default(mariadb_database_url, tmp_path, monkeypatch):
    import pymysql

    # Sessions that start in READ COMMITTED would let a row committed between the COUNT and the SELECT into the rows only.
    url = mariadb_url_with(mariadb_database_url, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    create_table(url, "vals", {"id": "bigint", "grp": "text"}, [(1, "a"), (2, "b")])
    parts = sa.make_url(mariadb_database_url)
    writer = pymysql.connect(host=parts.host, port=parts.port, user=parts.username, password=parts.password or "",
                             database=parts.database, autocommit=True)

    def insert_after_the_count(conn, cursor, statement, *_):
        if statement.lstrip().upper().startswith("SELECT COUNT(*)"):
            writer.cursor().execute("INSERT INTO vals VALUES (3, 'c')")

    sa.event.listen(sa.engine.Engine, "after_cursor_execute", insert_after_the_count)
    try:
        models = model("vals", {"grp": {"type": "string"}})
        run = run_stages(url, tmp_path, {"name": "vals", "model": "vals", "fields": ["id", "grp"], "order": "id"},
                         fast=False, monkeypatch=monkeypatch, models=models)
    finally:
        sa.event.remove(sa.engine.Engine, "after_cursor_execute", insert_after_the_count)
        writer.close()
    assert run.content == b"id,grp\r\n1,a\r\n2,b\r\n"
    assert run.extracted.rows == run.extracted.expected_rows == 2


# Run as its own process: connectorx holds the GIL while its session runs the statements before the rows' query.
INSERT_DURING_THE_PAUSE = """
import sys, time, pymysql
host, port, user, password, database = sys.argv[1:6]
writer = pymysql.connect(host=host, port=int(port), user=user, password=password, database=database, autocommit=True)
cursor = writer.cursor()
deadline = time.monotonic() + 20
while not cursor.execute("SELECT 1 FROM information_schema.processlist WHERE info LIKE 'DO SLEEP(3)%'"):
    if time.monotonic() > deadline:
        sys.exit("the reading session never paused after its count")
    time.sleep(0.05)
cursor.execute("INSERT INTO vals VALUES (3, 'c')")
"""


def test_mariadb_fast_path_counts_and_reads_one_snapshot(mariadb_database_url, tmp_path, monkeypatch):
    """connectorx's connection: a row committed after the COUNT (while the session sleeps there) is in neither."""
    from export_pipelines.stages import mysql_extract

    url = mariadb_url_with(mariadb_database_url, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    create_table(url, "vals", {"id": "bigint", "grp": "text"}, [(1, "a"), (2, "b")])
    statements = mysql_extract.session_statements
    monkeypatch.setattr(mysql_extract, "session_statements", lambda *args: [*statements(*args), "DO SLEEP(3) /* after the count */"])
    parts = sa.make_url(mariadb_database_url)
    arguments = [parts.host, str(parts.port or 3306), parts.username, parts.password or "", parts.database]
    writer = subprocess.Popen([sys.executable, "-c", INSERT_DURING_THE_PAUSE, *arguments], stderr=subprocess.PIPE, text=True)
    try:
        models = model("vals", {"grp": {"type": "string"}})
        run = run_stages(url, tmp_path, {"name": "vals", "model": "vals", "fields": ["id", "grp"], "order": "id"},
                         fast=True, monkeypatch=monkeypatch, models=models)
    finally:
        _, errors = writer.communicate(timeout=30)
    assert writer.returncode == 0, errors
    assert run.content == b"id,grp\r\n1,a\r\n2,b\r\n"
    assert run.extracted.rows == run.extracted.expected_rows == 2


def test_a_mariadb_bit_column_reads_as_the_boolean_it_holds(mariadb_database_url, fast, tmp_path, monkeypatch):
    create_table(mariadb_database_url, "bits", {"id": "bigint", "flag": "bit(1)"}, [(1, 1), (2, 0), (3, None)])
    models = model("bits", {"flag": {"type": "boolean"}})
    spec = {"name": "bits", "model": "bits", "order": "id", "fields": ["id", "flag"]}
    run = run_stages(mariadb_database_url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models)
    assert run.content == b"id,flag\r\n1,true\r\n2,false\r\n3,\r\n"
    falses = {**spec, "filters": {"flag": {"conditions": {"$is": False}}}}
    run = run_stages(mariadb_database_url, tmp_path / "falses", falses, fast=fast, monkeypatch=monkeypatch, models=models)
    assert run.content == b"id,flag\r\n2,false\r\n"


def test_mariadb_json_properties_and_booleans_that_do_not_fit_are_bad_rows(mariadb_database_url, fast, tmp_path, monkeypatch):
    create_table(mariadb_database_url, "docs", {"id": "bigint", "doc": "longtext", "flag": "tinyint(1)"},
                 [(1, '{"tier": "gold", "n": 1.50, "gone": null}', 1), (2, '{"tier": "gold"', 0), (3, '{"tier": "gold"}', 2),
                  (4, '{"tier": "gold ", "n": true}', 0), (5, None, None), (6, '{"tier": "Gold"}', 1), (7, '{"tier": "gold", "n": "x"}', 0)])
    models = model("docs", {"doc": {"type": "json"}, "flag": {"type": "boolean"}})
    spec = {"name": "gold", "model": "docs", "order": "id", "fields": ["id", "doc.n", "doc.gone", "flag"],
            "filters": {"doc.tier": {"conditions": {"$is": "gold"}}}}
    run = run_stages(mariadb_database_url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models, max_bad_rows=2)
    # 'gold' only: the table's collation would match 'Gold' and 'gold ' too. JSON null is no value, as in PostgreSQL.
    assert run.content == b"id,doc.n,doc.gone,flag\r\n1,1.50,,true\r\n7,x,,false\r\n"
    assert [(r.key, r.field, r.reason) for r in run.extracted.rejected] == [
        ("id=2", "doc.n", "not valid JSON"),
        ("id=3", "flag", "not a boolean (0 or 1)"),
    ]
