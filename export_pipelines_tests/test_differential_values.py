"""A table of hard values exported from SQLite, PostgreSQL, MariaDB and DuckDB in every format, compression and split, both extract paths.

Expected bytes are built independently of the product: values formatted here from the
Python values that were inserted (decimals by Python's decimal module, instants by
datetime), JSON text as each database itself returns it, and CSV by Python's csv module.
SQLite gets the same values stored in the forms applications write them (ISO 8601 text
with `T`, `Z` and offsets, numbers as text, REAL and INTEGER), plus values of the wrong
kind, which must be refused as bad rows, never written. MariaDB gets them in DECIMAL(65,30) (whose
30 places are all MySQL has: the 38-place column holds its values rounded to 30 by Python first),
DOUBLE, DATETIME(6) and LONGTEXT columns, plus the zero and impossible dates, the boolean 2 and
the text that is no JSON its lax sql_mode lets in. DuckDB gets them in DECIMAL(38,s), DOUBLE,
TIMESTAMPTZ and VARCHAR columns, plus an infinite instant, a five-digit year and text that is no
JSON; the JSON numbers its reader holds as doubles of more than 15 digits are refused.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import sqlite3
import uuid
from decimal import ROUND_DOWN, Decimal, localcontext

import pytest
import sqlalchemy as sa

from export_pipelines_tests.conftest import METADATA_SOURCES
from export_pipelines_tests.stage_runs import run_stages

DECIMAL_SCALES = {"d0": 0, "d2": 2, "d7": 7, "d20": 20, "d38": 38}
DECIMALS = {
    "d0": ["0", "99999999999999999999999999999999999999", "-99999999999999999999999999999999999999", "1", "-1", None, "42"],
    "d2": ["0.00", "-0.01", "123456789012345678901234567890123456.78", "0.10", "-0.00", None, "7"],
    "d7": ["0.0000000", "0.0000001", "-0.0000001", "1234567.8901234", "-99.5000000", None, "1E-7"],
    "d20": ["0", "0.00000000000000000001", "-123456789012345678.12345678901234567890", "1.5", None, "-0.00000000000000000001", "3"],
    "d38": ["0", "0.12345678901234567890123456789012345678", "-0.00000000000000000000000000000000000001", None, "0.5", "0.1", "-0.99999999999999999999999999999999999999"],
}
# SQLite NUMERIC (REAL or INTEGER storage: 15 significant digits) against PostgreSQL numeric(38, 2).
REALS = [0.1 + 0.2, 12.3, -5, 1e15, -0.0, None, 123456789.99]
TEXTS = [
    'quote " inside', "comma, inside", "pipe | inside", "crlf\r\ninside", "cr\ronly", "lf\nonly", "  padded  ",
    "emoji 😀 and Zoë", "RTL مرحبا بالعالم", "", None, "tab\tinside", '"', "back\\slash",
]
NOTES = ["", None, "x", "", None, "y", ""]
UTC = dt.UTC
INSTANTS = [
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    dt.datetime(2024, 3, 31, 0, 59, 59, tzinfo=UTC),  # Berlin's spring-forward night
    dt.datetime(2024, 10, 27, 0, 30, 0, 1, tzinfo=UTC),  # Berlin's 02:30 that happens twice
    dt.datetime(1, 1, 1, tzinfo=UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    None,
    dt.datetime(1900, 2, 28, 12, 0, 0, 500000, tzinfo=UTC),
]
DAYS = [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29), None, dt.date(1970, 1, 1), dt.date(1969, 12, 31), dt.date(2000, 1, 1)]
FLAGS = [True, False, None, True, False, True, None]
INTEGERS = [0, -(2**63), 2**63 - 1, None, -1, 42, 10**15]
DOCUMENTS = [
    {"a": {"b": [1, 2.50, None], "c": "x"}, "s": "text, \"quoted\"", "num": 1.50},
    {"s": "😀", "num": 0.30000000000000004, "a": []},
    None,
    {"a": {"deep": {"deeper": True}}, "s": None, "num": -0.0},
    {"s": "", "num": 12345678901234567890123},
    {"num": 1e-07, "s": "RTL مرحبا"},
    {},
]
ROWS = 14
# Stored in SQLite as text forms of the same instant: the offsets keep every wall time inside years 0001-9999.
SQLITE_TIME_FORMS = [
    lambda t: t.replace(tzinfo=None).isoformat(sep=" "),
    lambda t: t.isoformat().replace("+00:00", "Z"),
    lambda t: t.isoformat(sep=" "),
    lambda t: t.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).isoformat() if 1 < t.year < 9999 else t.isoformat(),
    lambda t: t.astimezone(dt.timezone(-dt.timedelta(hours=9))).isoformat().replace("-09:00", "-0900") if 1 < t.year < 9999 else t.isoformat(),
]
# Values of the wrong kind that SQLite lets in: each row is refused, with its reason, never written.
SQLITE_BAD_ROWS = {
    ROWS + 1: ("d2", "12,50", "not a number"),
    ROWS + 2: ("n", 2.5, "not an integer"),
    ROWS + 3: ("ts", "2024-02-30T10:00:00Z", "not an ISO 8601 timestamp"),
    ROWS + 4: ("day", "2024-13-01", "not a date (YYYY-MM-DD)"),
    ROWS + 5: ("flag", 2, "not a boolean (0 or 1)"),
    ROWS + 6: ("d7", "0.00000001", "a number with more than 7 decimal places (the field's scale)"),
}
NO_CALENDAR_DAY = "not a day of the calendar (a zero date, a zero month or day, or a day the month has not)"
MARIADB_BAD_ROWS = {
    ROWS + 1: ("ts", "2024-02-30 10:00:00", NO_CALENDAR_DAY),
    ROWS + 2: ("ts", "0000-00-00 00:00:00", NO_CALENDAR_DAY),
    ROWS + 3: ("day", "2024-04-00", NO_CALENDAR_DAY),
    ROWS + 4: ("flag", 2, "not a boolean (0 or 1)"),
    ROWS + 5: ("doc", '{"a": 1', "not valid JSON"),
}
JSON_NUMBER_AS_DOUBLE = "a JSON number of more significant digits than the double the database reads it as holds (15)"
# DuckDB's JSON reads a non-integer number (and an integer past 64 bits) as a double, whose shortest text
# 0.30000000000000004 and 1.2345678901234568e+22 hold more than the 15 digits a double keeps: refused, not rewritten.
DUCKDB_BAD_IDS = {i + 1 for i in range(ROWS) if (DOCUMENTS[i % len(DOCUMENTS)] or {}).get("num") in (0.30000000000000004, 12345678901234567890123)}
DUCKDB_BAD_ROWS = {
    ROWS + 1: ("ts", "infinity", "infinite"),
    ROWS + 2: ("day", "10000-01-01", "outside the years 0001-9999"),
    ROWS + 3: ("doc", '{"a": 1', "not valid JSON"),
}
BAD_ROWS = {"sqlite": SQLITE_BAD_ROWS, "postgresql": {}, "mariadb": MARIADB_BAD_ROWS, "duckdb": DUCKDB_BAD_ROWS}
MYSQL_MAX_SCALE = 30


def cycle(values: list, index: int):
    return values[index % len(values)]


def logical_rows(dialect: str = "any") -> list[dict]:
    rows = []
    for i in range(ROWS):
        row = {"id": i + 1, "txt": cycle(TEXTS, i), "note": cycle(NOTES, i), "r2": cycle(REALS, i), "ts": cycle(INSTANTS, i),
               "day": cycle(DAYS, i), "flag": cycle(FLAGS, i), "n": cycle(INTEGERS, i),
               "doc": None if cycle(DOCUMENTS, i) is None else json.dumps(cycle(DOCUMENTS, i), ensure_ascii=False)}
        row.update({column: cycle(values, i) for column, values in DECIMALS.items()})
        if dialect == "mariadb" and row["d38"] is not None:
            with localcontext(prec=100):
                # Cut, not rounded: -0.999...9 (38 nines) rounded would be -1, one digit more than 38 places leave.
                row["d38"] = str(Decimal(row["d38"]).quantize(Decimal(1).scaleb(-MYSQL_MAX_SCALE), rounding=ROUND_DOWN))
        rows.append(row)
    return rows


MODELS = {"models": {"hard_values": {"table": "hard_values", "primary_key": "id", "fields": {
    "id": {"type": "integer", "identifier": True},
    "txt": {"type": "string"}, "note": {"type": "string"},
    **{column: {"type": "decimal", "scale": scale} for column, scale in DECIMAL_SCALES.items()},
    "r2": {"type": "decimal", "scale": 2},
    "ts": {"type": "timestamp"}, "day": {"type": "date"}, "flag": {"type": "boolean"}, "n": {"type": "integer"}, "doc": {"type": "json"},
}}}}
FIELDS = ["id", "txt", "note", *DECIMAL_SCALES, "r2", "ts", "day", "flag", "n", "doc", "doc.a", "doc.s", "doc.num"]


def create_postgresql(url: str) -> None:
    engine = sa.create_engine(url)
    decimals = ", ".join(f"{column} numeric(38,{scale})" for column, scale in DECIMAL_SCALES.items())
    with engine.begin() as connection:
        connection.execute(sa.text(
            f"CREATE TABLE hard_values (id bigint PRIMARY KEY, txt text, note text, {decimals}, r2 numeric(38,2), ts timestamptz, day date, "
            "flag boolean, n bigint, doc jsonb)"
        ))
        rows = logical_rows()
        for row in rows:
            row["r2"] = None if row["r2"] is None else Decimal(repr(float(row["r2"])))
        columns = list(rows[0])
        values = ", ".join(f"CAST(:{c} AS jsonb)" if c == "doc" else f":{c}" for c in columns)
        connection.execute(sa.text(f"INSERT INTO hard_values ({', '.join(columns)}) VALUES ({values})"), rows)
    engine.dispose()


def create_sqlite(path) -> None:
    decimals = ", ".join(f"{column} TEXT" for column in DECIMAL_SCALES)
    with sqlite3.connect(path) as connection:
        connection.execute(f"CREATE TABLE hard_values (id INTEGER PRIMARY KEY, txt TEXT, note TEXT, {decimals}, r2 NUMERIC, ts TEXT, "
                           "day TEXT, flag INTEGER, n INTEGER, doc TEXT)")
        rows = logical_rows()
        for i, row in enumerate(rows):
            row["ts"] = None if row["ts"] is None else cycle(SQLITE_TIME_FORMS, i)(row["ts"])
            row["day"] = None if row["day"] is None else row["day"].isoformat()
        for bad_id, (column, value, _) in SQLITE_BAD_ROWS.items():
            rows.append({**rows[0], "id": bad_id, column: value})
        columns = list(rows[0])
        connection.executemany(f"INSERT INTO hard_values ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                               [[row[c] for c in columns] for row in rows])


def create_mariadb(url: str) -> None:
    engine = sa.create_engine(url)
    decimals = ", ".join(f"{column} decimal(65,{min(scale, MYSQL_MAX_SCALE)})" for column, scale in DECIMAL_SCALES.items())
    rows = logical_rows("mariadb")
    columns = list(rows[0])
    insert = sa.text(f"INSERT INTO hard_values ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})")
    with engine.begin() as connection:
        connection.execute(sa.text(
            f"CREATE TABLE hard_values (id bigint PRIMARY KEY, txt text, note text, {decimals}, r2 double, ts datetime(6), day date, "
            "flag boolean, n bigint, doc longtext) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        ))
        connection.execute(insert, rows)
        # What a lax server lets applications write.
        connection.execute(sa.text("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'"))
        connection.execute(insert, [{**rows[0], "id": bad_id, column: value} for bad_id, (column, value, _) in MARIADB_BAD_ROWS.items()])
    engine.dispose()


def create_duckdb(url: str) -> None:
    engine = sa.create_engine(url)
    decimals = ", ".join(f"{column} decimal(38,{scale})" for column, scale in DECIMAL_SCALES.items())
    rows = logical_rows()
    columns = list(rows[0])
    with engine.begin() as connection:
        connection.execute(sa.text(
            f"CREATE TABLE hard_values (id bigint PRIMARY KEY, txt varchar, note varchar, {decimals}, r2 double, ts timestamptz, day date, "
            "flag boolean, n bigint, doc varchar)"
        ))
        connection.execute(sa.text("SET TimeZone = 'UTC'"))
        values = ", ".join(f"CAST(:{c} AS DECIMAL(38,{DECIMAL_SCALES[c]}))" if c in DECIMAL_SCALES else f":{c}" for c in columns)
        connection.execute(sa.text(f"INSERT INTO hard_values ({', '.join(columns)}) VALUES ({values})"), rows)
        # What DuckDB holds and no file can: an infinite instant, a five-digit year; and text that is no JSON.
        for bad_id, (column, value, _) in DUCKDB_BAD_ROWS.items():
            connection.execute(sa.text(f"INSERT INTO hard_values SELECT * REPLACE (:id AS id, CAST(:v AS {'timestamptz' if column == 'ts' else 'date' if column == 'day' else 'varchar'}) AS {column}) "
                                       "FROM hard_values WHERE id = 1"), {"id": bad_id, "v": value})
    engine.dispose()


def decimal_text(value, scale: int) -> str:
    if value is None:
        return ""
    number = Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)
    with localcontext(prec=100):
        text = format(number.quantize(Decimal(1).scaleb(-scale)), "f")
    return text.removeprefix("-") if Decimal(text) == 0 else text


def instant_text(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    utc = value.astimezone(UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}" + (f".{utc.microsecond:06d}" if utc.microsecond else "") + "Z"


def expected_rows(url: str, dialect: str) -> list[list[str]]:
    """Each row's written values; JSON as the database itself returns the document and its properties."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        if dialect == "postgresql":
            query = "SELECT id, doc::text, doc ->> 'a', doc ->> 's', doc ->> 'num' FROM hard_values ORDER BY id"
        elif dialect == "mariadb":
            # JSON null is no value, as PostgreSQL's ->> has it.
            properties = ", ".join(f"IF(JSON_TYPE(JSON_EXTRACT(doc, '$.{p}')) = 'NULL', NULL, JSON_UNQUOTE(JSON_EXTRACT(doc, '$.{p}')))"
                                   for p in ("a", "s", "num"))
            query = f"SELECT id, doc, {properties} FROM hard_values WHERE id <= {ROWS} ORDER BY id"
        elif dialect == "duckdb":
            query = f"SELECT id, doc, json_extract_string(doc, '$.a'), json_extract_string(doc, '$.s'), json_extract_string(doc, '$.num') FROM hard_values WHERE id <= {ROWS} ORDER BY id"
        else:
            query = ("SELECT id, doc, CASE json_type(doc, '$.a') WHEN 'text' THEN doc ->> '$.a' WHEN 'null' THEN NULL ELSE doc -> '$.a' END, "
                     "CASE json_type(doc, '$.s') WHEN 'text' THEN doc ->> '$.s' WHEN 'null' THEN NULL ELSE doc -> '$.s' END, "
                     "CASE json_type(doc, '$.num') WHEN 'text' THEN doc ->> '$.num' WHEN 'null' THEN NULL ELSE doc -> '$.num' END "
                     f"FROM hard_values WHERE id <= {ROWS} ORDER BY id")
        documents = {row[0]: row[1:] for row in connection.execute(sa.text(query))}
    engine.dispose()
    written = []
    for row in logical_rows(dialect):
        if dialect == "duckdb" and row["id"] in DUCKDB_BAD_IDS:
            continue
        values = [str(row["id"]), row["txt"] or "", row["note"] or ""]
        values += [decimal_text(row[column], scale) for column, scale in DECIMAL_SCALES.items()]
        # A REAL or DOUBLE keeps 15 significant digits (SQLite, MariaDB); numeric(38, 2) rounded it on insert (PostgreSQL).
        real = row["r2"]
        values.append("" if real is None else decimal_text(f"{real:.15g}" if dialect != "postgresql" else f"{Decimal(repr(float(real))):.2f}", 2))
        values += [instant_text(row["ts"]), "" if row["day"] is None else f"{row['day'].year:04d}-{row['day']:%m-%d}",
                   "" if row["flag"] is None else str(row["flag"]).lower(), "" if row["n"] is None else str(row["n"])]
        values += ["" if v is None else v for v in documents[row["id"]]]
        written.append(values)
    return written


def expected_files(rows: list[list[str]], delimiter: str, line_ending: str, split: int | None, fields: list[str] = FIELDS) -> bytes:
    parts = [rows[i:i + split] for i in range(0, len(rows), split)] if split else [rows]
    out = b""
    for part in parts:
        for record in [fields, *part]:
            buffer = io.StringIO()
            # lineterminator \r\n makes csv quote a lone CR or LF too, as RFC 4180's line breaks; the file's own ending follows.
            csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerow(record)
            out += (buffer.getvalue().removesuffix("\r\n") + line_ending).encode()
    return out


@pytest.fixture(scope="module", params=METADATA_SOURCES)
def hard_values(request, tmp_path_factory) -> tuple[str, str, list[list[str]]]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("hard") / "hard.sqlite"
        create_sqlite(path)
        url = f"sqlite:///{path}"
    elif request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('hard') / 'hard.duckdb'}"
        create_duckdb(url)
    elif request.param == "mariadb":
        mariadb_url = request.getfixturevalue("mariadb_url")
        database = f"hard_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(mariadb_url)
        with engine.begin() as connection:
            connection.execute(sa.text(f"CREATE DATABASE `{database}`"))
        url = sa.make_url(mariadb_url).set(database=database).render_as_string(hide_password=False)
        create_mariadb(url)
    else:
        postgres_url = request.getfixturevalue("postgres_url")
        schema = f"hard_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(postgres_url)
        with engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        create_postgresql(url)
    yield url, request.param, expected_rows(url, request.param)
    if request.param == "postgresql":
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
    elif request.param == "mariadb":
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE `{database}`"))
        engine.dispose()


COMBINATIONS = [
    pytest.param(file_format, line_ending, compression, split, id=f"{file_format}-{line_ending}-{compression}-{'split' if split else 'whole'}")
    for file_format, line_ending in (("csv", "crlf"), ("psv", "lf"))
    for compression in ("none", "gzip", "zip")
    for split in (None, 5)
] + [pytest.param("csv", "crlf", "zstd", 5, id="csv-crlf-zstd-split")]


@pytest.mark.parametrize(("file_format", "line_ending", "compression", "split"), COMBINATIONS)
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_hard_values_are_written_exactly(hard_values, tmp_path, monkeypatch, fast, file_format, line_ending, compression, split):
    url, dialect, rows = hard_values
    spec = {"name": "hard", "model": "hard_values", "fields": FIELDS, "order": "id", "format": file_format,
            "line_ending": line_ending, "compression": compression, "batch_size": 4}
    if split:
        spec.update(max_rows_per_file=split, file_name="hard_{part}.{ext}")
    bad = [(f"id={i}", c, reason) for i, (c, _, reason) in BAD_ROWS[dialect].items()]
    if dialect == "duckdb":
        bad = sorted([(f"id={i}", "doc.num", JSON_NUMBER_AS_DOUBLE) for i in DUCKDB_BAD_IDS] + bad, key=lambda r: int(r[0][3:]))
    run = run_stages(url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=MODELS, max_bad_rows=len(bad))
    delimiter = {"csv": ",", "psv": "|"}[file_format]
    assert run.content == expected_files(rows, delimiter, {"crlf": "\r\n", "lf": "\n"}[line_ending], split)
    assert len(run.files) == (-(-len(rows) // split) if split else 1)
    assert [(r.key, r.field, r.reason) for r in run.extracted.rejected] == bad


@pytest.mark.parametrize("hard_values", ["mariadb"], indirect=True)
def test_mariadb_fast_path_takes_the_hard_values_itself(hard_values, tmp_path, monkeypatch, caplog):
    """connectorx reads them, bad rows included (the query names those), without falling back to the general
    path; all but r2, a DOUBLE read as a decimal, which the fast path leaves to the general one."""
    url, _, rows = hard_values
    fields = [field for field in FIELDS if field != "r2"]
    spec = {"name": "hard", "model": "hard_values", "fields": fields, "order": "id", "batch_size": 4}
    with caplog.at_level(logging.INFO, logger="export_pipelines.stages.extract"):
        run = run_stages(url, tmp_path, spec, fast=True, monkeypatch=monkeypatch, models=MODELS, max_bad_rows=len(MARIADB_BAD_ROWS))
    assert "row by row" not in caplog.text
    without_r2 = [row[: FIELDS.index("r2")] + row[FIELDS.index("r2") + 1 :] for row in rows]
    assert run.content == expected_files(without_r2, ",", "\r\n", None, fields)
    assert [(r.key, r.field, r.reason) for r in run.extracted.rejected] == [(f"id={i}", c, reason) for i, (c, _, reason) in MARIADB_BAD_ROWS.items()]


def scale_values(scale: int) -> list[str]:
    """Zero, the smallest unit either side, and the largest 38-digit value, at `scale` (as text)."""
    with localcontext(prec=100):
        unit = Decimal(1).scaleb(-scale)
        largest = Decimal(10**38 - 1).scaleb(-scale)
        return [format(value, "f") for value in (Decimal(0).scaleb(-scale), unit, -unit, largest, -largest)]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_every_scale_from_0_to_38(source_url_for_scales, tmp_path, monkeypatch, fast):
    url = source_url_for_scales
    models = {"models": {"scales": {"table": "scales", "primary_key": "id", "fields": {
        "id": {"type": "integer", "identifier": True}, **{f"s{s}": {"type": "decimal", "scale": s} for s in range(39)}}}}}
    spec = {"name": "scales", "model": "scales", "fields": [f"s{s}" for s in range(39)], "order": "id"}
    run = run_stages(url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch, models=models)
    columns = [scale_values(s) for s in range(39)]
    # Zero has no sign; the others are written exactly as Python's decimal module writes them.
    expected = [",".join(f"s{s}" for s in range(39))] + [",".join(column[row] for column in columns) for row in range(5)]
    assert run.content.decode() == "\r\n".join(expected) + "\r\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def source_url_for_scales(request, tmp_path) -> str:
    # Not MariaDB: its DECIMAL has at most 30 places (the hard values hold DECIMAL(65,30)'s).
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scales.sqlite'}"
        column_type = lambda scale: "TEXT"  # noqa: E731 - every digit kept (NUMERIC affinity keeps 15)
    else:
        url = request.getfixturevalue("postgres_schema_url")
        column_type = lambda scale: f"numeric(38,{scale})"  # noqa: E731
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE scales (id bigint PRIMARY KEY, " + ", ".join(f"s{s} {column_type(s)}" for s in range(39)) + ")"))
        for row in range(5):
            values = {f"s{s}": scale_values(s)[row] for s in range(39)}
            names = ", ".join(values)
            connection.execute(sa.text(f"INSERT INTO scales (id, {names}) VALUES ({row}, {', '.join(':' + n for n in values)})"), values)
    engine.dispose()
    return url
