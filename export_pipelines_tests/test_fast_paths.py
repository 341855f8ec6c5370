"""Every fast path writes the same bytes as the general path (bench/ measures how much faster).

The fast paths: ADBC (PostgreSQL, SQLite) and connectorx (MySQL/MariaDB) extraction
(EXPORT_FAST_EXTRACT), the identity-mapping shortcut (EXPORT_MAPPING_SHORTCUT), write-behind
threads (EXPORT_WRITE_BEHIND) and formatting while extracting (EXPORT_FORMAT_WHILE_EXTRACTING). Each export here runs through the stage
functions once with all of them on and once with all off, on values exporters get wrong,
in SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import logging
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from export_pipelines.catalog.models import load_builtin_catalog
from export_pipelines.catalog.sql_types import model_table
from export_pipelines.stages.text_format import to_text
from export_pipelines_tests.conftest import source_url
from export_pipelines_tests.stage_runs import export_bytes, run_stages

BERLIN = dt.timezone(dt.timedelta(hours=2))
KOLKATA = dt.timezone(dt.timedelta(hours=5, minutes=30))

TRICKY_TEXT = [
    'quote " inside',
    "comma, inside",
    "pipe | inside",
    "crlf\r\ninside",
    "cr\ronly",
    "  padded  ",
    "",
    None,
    "emoji 😀 and Zoë",
    '"',
    "tab\tinside",
    "日本語",
]
DECIMALS = [
    Decimal("9999999999999999.99"),
    Decimal("-9999999999999999.99"),
    Decimal("0.01"),
    Decimal("-0.10"),
    Decimal("0"),
    None,
    Decimal("123456789012.99"),
    Decimal("1.10"),
    Decimal("-5"),
    Decimal("42.50"),
    Decimal("0.07"),
    Decimal("100000"),
]
TIMESTAMPS = [
    dt.datetime(2024, 3, 31, 2, 30, 0, tzinfo=BERLIN),
    dt.datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=dt.UTC),
    dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=dt.UTC),
    dt.datetime(2025, 6, 30, 23, 59, 59, 999999, tzinfo=KOLKATA),
    None,
    dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=dt.UTC),
    dt.datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=dt.UTC),
    dt.datetime(2026, 10, 31, 23, 59, 59, tzinfo=dt.UTC),
    dt.datetime(2000, 1, 1, 0, 0, 0, 100000, tzinfo=BERLIN),
    dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.UTC),
]


def voucher_rows(count: int) -> list[dict]:
    rows = []
    for i in range(count):
        n = len(TRICKY_TEXT)
        rows.append(
            {
                "id": 1000 + i,
                "code": f"V-{i:05d}",
                "voucher_type": TRICKY_TEXT[i % n],
                "campaign": TRICKY_TEXT[(i + 3) % n],
                "value": DECIMALS[i % len(DECIMALS)],
                "gift_balance": DECIMALS[(i + 5) % len(DECIMALS)],
                "loyalty_balance": None if i % 7 == 0 else (-1) ** i * i * 1_000_003,
                "active": None if i % 5 == 0 else i % 2 == 0,
                "metadata": None if i % 6 == 0 else json.dumps({"note": TRICKY_TEXT[i % n], "n": i, "flag": i % 2 == 0}),
                "start_date": TIMESTAMPS[i % len(TIMESTAMPS)],
                "expiration_date": TIMESTAMPS[(i + 7) % len(TIMESTAMPS)],
                "created_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i * 3607),
            }
        )
    return rows


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def vouchers_url(request, tmp_path: Path) -> str:
    url = source_url(request, tmp_path, request.param)
    table = model_table(load_builtin_catalog().get("vouchers"))
    engine = sa.create_engine(url)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        rows = voucher_rows(300)
        connection.execute(table.insert(), [{column.name: row.get(column.name) for column in table.columns} for row in rows])
    engine.dispose()
    return url


FIELDS = [
    "id", "code", "voucher_type", "campaign", "value", "gift_balance", "loyalty_balance",
    "active", "metadata", "metadata.note", "metadata.flag", "start_date", "expiration_date", "created_at",
]


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"format": "csv"}, id="csv-crlf"),
        pytest.param({"format": "psv", "line_ending": "lf"}, id="psv-lf"),
        pytest.param({"format": "csv", "compression": "gzip", "max_rows_per_file": 100}, id="csv-gzip-parts"),
        pytest.param({"format": "csv", "compression": "zip"}, id="csv-zip"),
    ],
)
def test_fast_paths_write_the_general_paths_bytes(vouchers_url, tmp_path, monkeypatch, caplog, options):
    spec = {"name": "vouchers_all", "model": "vouchers", "fields": [{"from": name} for name in FIELDS], "order": "id", **options}
    with caplog.at_level(logging.INFO, logger="export_pipelines.stages.extract"):
        fast = export_bytes(vouchers_url, tmp_path, spec, fast=True, monkeypatch=monkeypatch)
    assert "row by row" not in caplog.text, "the fast extract fell back to the general path"
    general = export_bytes(vouchers_url, tmp_path, spec, fast=False, monkeypatch=monkeypatch)
    assert fast == general
    text = gzip.decompress(fast) if options.get("compression") == "gzip" else fast
    if options.get("compression") != "zip":
        # The values are really there: the equality is not two empty files. (SQLite's 8-byte floats
        # cannot hold 9999999999999999.99; both paths write the 1E16 it stored.)
        written = text.decode()
        assert "123456789012.99" in written and "-0.10" in written and "😀" in written and '"crlf\r\ninside"' in written
        assert "1969-12-31T23:59:59.500000Z" in written and "2024-03-31T00:30:00Z" in written


def test_filtered_and_mapped_export_matches_too(vouchers_url, tmp_path, monkeypatch, caplog):
    spec = {
        "name": "vouchers_mapped",
        "model": "vouchers",
        "fields": [
            {"from": "code", "to": "Code"},
            {"from": "voucher_type", "to": "Type", "default": "none", "replace": {"comma, inside": "comma"}},
            {"from": "value"},
            {"from": "start_date"},
        ],
        "filters": {
            "junction": "or",
            "start_date": {"conditions": {"$after": "2000-01-01T00:00:00+01:00"}},
            "campaign": {"conditions": {"$contains": '"'}},
        },
        "order": ["-start_date"],
    }
    with caplog.at_level(logging.INFO, logger="export_pipelines.stages.extract"):
        run = run_stages(vouchers_url, tmp_path, spec, fast=True, monkeypatch=monkeypatch)
    assert "row by row" not in caplog.text
    # Mapped (default, replace, rename) and formatted on the extract's lines thread, not by map and serialize.
    assert run.extracted.lines is not None
    fast = b"".join(file.path.read_bytes() for file in run.files)
    general = export_bytes(vouchers_url, tmp_path, spec, fast=False, monkeypatch=monkeypatch)
    assert fast == general
    assert fast.count(b"\r\n") > 100


STREAM_VARIANTS = [
    pytest.param({"format": "csv", "order": "id"}, id="csv-crlf"),
    # Sorted by the key descending: the streams' parts are joined from the last key range to the first.
    pytest.param({"format": "psv", "line_ending": "lf", "compression": "gzip", "max_rows_per_file": 100, "order": "-id"}, id="psv-gzip-parts-descending"),
    # No order (the primary key's); a filter leaves gaps in the keys, so the ranges hold different numbers of rows.
    pytest.param({"format": "jsonl", "compression": "zip", "filters": {"loyalty_balance": {"conditions": {"$gt": 0}}}}, id="jsonl-zip-filtered"),
    # A legacy encoding: no lines while extracting, so map joins the rows' parts; 日本語 and 😀 are bad rows of several streams.
    pytest.param({"format": "csv", "encoding": "windows-1252", "max_bad_rows": 300}, id="cp1252-bad-rows"),
]


@pytest.mark.parametrize("streams", [1, 2, 4])
@pytest.mark.parametrize("options", STREAM_VARIANTS)
@pytest.mark.parametrize("vouchers_url", ["postgresql"], indirect=True)
def test_parallel_streams_write_the_general_paths_bytes(vouchers_url, tmp_path, monkeypatch, caplog, options, streams):
    """`parallel: {streams: N}`: N connections read key ranges in one snapshot, each into parts of its own; the parts
    in key order give the general path's bytes and its bad rows, numbered alike. Small batches: many per stream."""
    base = {"name": "vouchers_streams", "model": "vouchers", "fields": [{"from": name} for name in FIELDS], "batch_size": 16, **options}
    bad = options.get("max_bad_rows", 0)
    with caplog.at_level(logging.INFO, logger="export_pipelines.stages.extract"):
        fast = run_stages(vouchers_url, tmp_path, {**base, "parallel": {"streams": streams}}, fast=True, monkeypatch=monkeypatch, max_bad_rows=bad)
    assert "row by row" not in caplog.text and "one stream" not in caplog.text
    assert fast.extracted.streams == streams
    if streams > 1:
        assert isinstance(fast.extracted.path, tuple) and len(fast.extracted.path) == streams
        if options.get("encoding") is None:
            assert len(fast.extracted.lines) == streams
    general = run_stages(vouchers_url, tmp_path, base, fast=False, monkeypatch=monkeypatch, max_bad_rows=bad)
    assert fast.content == general.content
    assert fast.extracted.rejected == general.extracted.rejected
    assert fast.extracted.expected_rows == general.extracted.expected_rows == general.extracted.rows + len(general.extracted.rejected)
    text = fast.content.decode("windows-1252" if options.get("encoding") else "utf-8")
    assert "123456789012.99" in text and "9999999999999999.99" in text and "-0.10" in text
    if options.get("encoding"):
        # Every row holding text windows-1252 cannot (日本語, 😀) is listed, in the rows' order.
        assert [row.row_number for row in fast.extracted.rejected] == sorted(row.row_number for row in fast.extracted.rejected)
        assert {row.key for row in fast.extracted.rejected} >= {"id=1011", "id=1008"}
        assert "😀" not in text
    else:
        assert "😀" in text and "日本語" in text and "1969-12-31T23:59:59.500000Z" in text and "2024-03-31T00:30:00Z" in text


@pytest.mark.parametrize("vouchers_url", ["sqlite", "mariadb"], indirect=True)
def test_parallel_streams_read_one_stream_where_no_snapshot_is_shared(vouchers_url, tmp_path, monkeypatch, caplog):
    """SQLite and MariaDB cannot share one snapshot between connections: `streams` reads in one stream there, and says so."""
    base = {"name": "vouchers_streams", "model": "vouchers", "fields": [{"from": name} for name in FIELDS], "order": "id"}
    with caplog.at_level(logging.INFO, logger="export_pipelines.stages.extract"):
        fast = run_stages(vouchers_url, tmp_path, {**base, "parallel": {"streams": 4}}, fast=True, monkeypatch=monkeypatch)
    assert fast.extracted.streams == 1
    assert "parallel.streams reads PostgreSQL only" in caplog.text and "row by row" not in caplog.text
    assert fast.content == run_stages(vouchers_url, tmp_path, base, fast=False, monkeypatch=monkeypatch).content


@pytest.mark.parametrize("vouchers_url", ["postgresql", "mariadb"], indirect=True)
def test_pushed_down_aggregation_matches(vouchers_url, tmp_path, monkeypatch, caplog):
    """PostgreSQL's GROUP BY read through ADBC, MariaDB's through connectorx, give the cursor's groups, sums and extremes."""
    spec = {
        "name": "vouchers_by_type",
        "model": "vouchers",
        "fields": [
            {"from": "voucher_type", "aggregation": "group"},
            {"from": "active", "aggregation": "group"},
            {"from": "id", "to": "vouchers", "aggregation": "count"},
            {"from": "value", "to": "total", "aggregation": "sum"},
            {"from": "value", "to": "average", "aggregation": "avg"},
            {"from": "gift_balance", "to": "largest", "aggregation": "max"},
            {"from": "start_date", "to": "first", "aggregation": "min"},
            {"from": "loyalty_balance", "to": "points", "aggregation": "sum"},
        ],
    }
    with caplog.at_level(logging.INFO, logger="export_pipelines.stages.extract"):
        fast = export_bytes(vouchers_url, tmp_path, spec, fast=True, monkeypatch=monkeypatch)
    assert "row by row" not in caplog.text
    general = export_bytes(vouchers_url, tmp_path, spec, fast=False, monkeypatch=monkeypatch)
    assert fast == general
    # Groups, counts and sums computed here from the generated rows.
    rows = voucher_rows(300)
    written = list(csv.DictReader(io.StringIO(fast.decode(), newline="")))
    assert len(written) == len({(row["voucher_type"] or "", row["active"]) for row in rows})
    assert sum(int(group["vouchers"]) for group in written) == 300
    assert sum(Decimal(group["total"]) for group in written if group["total"]) == sum(row["value"] for row in rows if row["value"] is not None)
    assert sum(int(group["points"]) for group in written if group["points"]) == sum(row["loyalty_balance"] or 0 for row in rows)


def test_timestamp_text_is_iso_utc_for_every_era():
    values = [
        dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=dt.UTC),
        dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        None,
    ]
    expected = [value.strftime("%Y-%m-%dT%H:%M:%S") + (f".{value.microsecond:06d}" if value.microsecond else "") + "Z" if value else None for value in values]
    expected[1] = "0001-01-01T00:00:00.000001Z"  # strftime's %Y does not pad year 1
    assert to_text(pa.array(values, pa.timestamp("us", tz="UTC"))).to_pylist() == expected


# --- MySQL/MariaDB: connectorx's fast path on the server's own types ---------------------------------------------------

MARIADB_COLUMNS = {
    "id": "bigint primary key",
    "wide": "decimal(65,30)",
    "money": "decimal(38,2)",
    "naive": "datetime(6)",
    "stamped": "timestamp(6) NULL",
    "day": "date",
    "note": "varchar(64) COLLATE utf8mb4_bin",
    "label": "text COLLATE utf8mb4_general_ci",
    "doc": "longtext",
    "flag": "tinyint(1)",
    "points": "bigint",
}
WIDE = ["0", "-0.000000000000000000000000000001", "12345678.123456789012345678901234567890", "-0.999999999999999999999999999999", None]
# 38 digits at most: a longer value is a bad row (test_exact_values), which the fast path leaves to the general one.
MONEY = ["123456789012345678901234567890123456.78", "-999999999999999999999999999999999999.99", "0.00", "-0.10", None]


def mariadb_rows(count: int) -> list[tuple]:
    rows = []
    for i in range(count):
        text = TRICKY_TEXT[i % len(TRICKY_TEXT)]
        stamp = TIMESTAMPS[i % len(TIMESTAMPS)]
        # A TIMESTAMP holds 1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC; a DATETIME 1000 to 9999.
        in_range = stamp is not None and dt.datetime(1970, 1, 2, tzinfo=dt.UTC) <= stamp < dt.datetime(2038, 1, 1, tzinfo=dt.UTC)
        utc = None if stamp is None else stamp.astimezone(dt.UTC).replace(tzinfo=None)
        rows.append((
            i + 1,
            WIDE[i % len(WIDE)],
            MONEY[i % len(MONEY)],
            utc,
            utc if in_range else None,
            None if utc is None else utc.date(),
            text,
            TRICKY_TEXT[(i + 5) % len(TRICKY_TEXT)],
            None if i % 6 == 0 else json.dumps({"note": text, "n": i, "amount": "1.50", "flag": i % 2 == 0}, ensure_ascii=False),
            None if i % 5 == 0 else i % 2,
            None if i % 7 == 0 else (-1) ** i * (2**62 + i),
        ))
    return rows


@pytest.fixture
def mariadb_types_url(mariadb_database_url) -> str:
    engine = sa.create_engine(mariadb_database_url)
    names = list(MARIADB_COLUMNS)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE TABLE kinds ({', '.join(f'{c} {t}' for c, t in MARIADB_COLUMNS.items())})"))
        connection.execute(sa.text("SET time_zone = '+00:00'"))
        insert = sa.text(f"INSERT INTO kinds ({', '.join(names)}) VALUES ({', '.join(':' + c for c in names)})")
        connection.execute(insert, [dict(zip(names, row, strict=True)) for row in mariadb_rows(240)])
    engine.dispose()
    return mariadb_database_url


KINDS_MODEL = {"models": {"kinds": {"table": "kinds", "primary_key": "id", "fields": {
    "id": {"type": "integer", "identifier": True},
    "wide": {"type": "decimal", "scale": 30},
    "money": {"type": "decimal", "scale": 2},
    "naive": {"type": "timestamp"},
    "stamped": {"type": "timestamp"},
    "day": {"type": "date"},
    "note": {"type": "string"},
    "label": {"type": "string"},
    "doc": {"type": "json"},
    "flag": {"type": "boolean"},
    "points": {"type": "integer"},
}}}}


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"format": "csv"}, id="csv-crlf"),
        pytest.param({"format": "psv", "line_ending": "lf", "compression": "gzip", "max_rows_per_file": 70}, id="psv-gzip-parts-tokyo-session"),
    ],
)
def test_mariadb_fast_path_writes_the_general_paths_bytes_on_its_own_types(mariadb_types_url, tmp_path, monkeypatch, caplog, options):
    """DECIMAL(65,30), 38-digit DECIMALs, DATETIME and TIMESTAMP, DATE, binary- and case-insensitively collated text,
    JSON and its properties, TINYINT(1): connectorx's batches (small, so many) give the general path's bytes, also
    where sessions start nine hours east (init_command, as a server's default would)."""
    if options["format"] == "psv":
        mariadb_types_url = sa.make_url(mariadb_types_url).update_query_dict({"init_command": "SET time_zone = '+09:00'"}).render_as_string(hide_password=False)
    spec = {"name": "kinds", "model": "kinds", "order": "label", "batch_size": 50, **options,
            "fields": [{"from": name} for name in [*KINDS_MODEL["models"]["kinds"]["fields"], "doc.note", "doc.amount", "doc.flag"]],
            "filters": {"day": {"conditions": {"$after": "1969-06-01"}}}}
    runs = {}
    for fast in (True, False):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="export_pipelines.stages.extract"):
            runs[fast] = run_stages(mariadb_types_url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=KINDS_MODEL)
        if fast:
            assert "row by row" not in caplog.text, "the fast extract fell back to the general path"
    assert runs[True].content == runs[False].content
    assert runs[True].extracted.expected_rows == runs[False].extracted.expected_rows == runs[True].extracted.rows
    # The values are there, written as stored, checked here with Python's csv module on the general path's bytes.
    delimiter = "|" if options["format"] == "psv" else ","
    reader = csv.DictReader(io.StringIO(runs[False].content.decode(), newline=""), delimiter=delimiter)
    written = [row for row in reader if row["id"] != "id"]  # each part has its header
    expected = [row for row in mariadb_rows(240) if row[5] is not None and row[5] > dt.date(1969, 6, 1)]
    assert len(written) == len(expected)
    assert {row["wide"] for row in written} == {"0.000000000000000000000000000000", *WIDE[1:-1], ""}
    assert "123456789012345678901234567890123456.78" in {row["money"] for row in written}
    assert [row["label"] for row in written] == sorted([row["label"] for row in written], key=lambda text: text.encode())
    assert {row["naive"] for row in written} >= {"2025-06-30T18:29:59.999999Z", "2024-03-31T00:30:00Z"}
    assert {row["doc.amount"] for row in written} == {"1.50", ""}
