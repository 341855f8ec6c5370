"""SQLite timestamps read as stored and checked per Arrow batch (dialects.Routed): the same stage values and
bad rows as the general path, whose per-row SQL reads every row.

The stored forms are those of test_sqlite_instants (every ISO 8601 form, invalid days and times,
garbage) plus numbers and BLOBs, spread among canonical rows so that each batch mixes rows the
batch check passes with rows read again exactly; a second timestamp and a JSON column make a
row's first problem depend on the order of its checks.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import sqlite3

import pytest

from export_pipelines_tests.stage_runs import run_stages
from export_pipelines_tests.test_sqlite_instants import VALUES, reference_instant

MODELS = {"models": {"events": {"table": "events", "primary_key": "id", "fields": {
    "id": {"type": "integer", "identifier": True},
    "happened_at": {"type": "timestamp"},
    "noted_at": {"type": "timestamp"},
    "payload": {"type": "json"},
}}}}
CANONICAL = "2024-05-06 07:08:09"
ODD_STORAGE = [20240506, 1.5, b"2024-05-06 07:08:09", b"\xff\xfe", None]


# The text the batch check passes on as it is (or with the T and a zero zone cut out), written here from ISO 8601:
# a UTC wall time with at most six fraction digits. Such text with a day or time that is not real is refused
# by the conversion, which hands the whole export to the general path (tested apart: "every form").
BATCH_CHECKED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-]00:?00)?")


def looks_canonical(value) -> bool:
    """Passed on unparsed, by the batch check or by the per-row SQL's cheap shape test (19 characters, a space at the 11th)."""
    if not isinstance(value, str) or value.startswith("0000"):
        return False
    return BATCH_CHECKED.fullmatch(value) is not None or (len(value) == 19 and value[10] == " " and value >= "0001")


def stored_rows(corpus=None) -> list[tuple]:
    """(id, happened_at, noted_at, payload): each stored form between canonical rows, some rows with a second problem."""
    odd = [*(VALUES if corpus is None else corpus), *ODD_STORAGE]
    rows = []
    for i, value in enumerate(odd):
        # Two canonical rows per odd one: a batch is mostly read once (see test_mostly_odd_text_...).
        rows.append((3 * i + 1, CANONICAL, CANONICAL, '{"n": 1}'))
        rows.append((3 * i + 2, "2023-01-01 00:00:00", None, None))
        # Every 3rd odd value also has invalid JSON after it, every 5th an odd second timestamp too.
        payload = "{not json" if i % 3 == 0 else None
        second = odd[(i + 7) % len(odd)] if i % 5 == 0 else "2024-12-31 23:59:59"
        rows.append((3 * i + 3, value, second, payload))
    return rows


REAL_OR_NOT_CANONICAL = [value for value in VALUES if not looks_canonical(value) or reference_instant(value)]


@pytest.fixture(params=["every form", "no text that only looks canonical"])
def events(request, tmp_path) -> tuple[str, list[tuple], bool]:
    """(URL, rows, whether the fast path must keep every batch)."""
    rows = stored_rows(None if request.param == "every form" else REAL_OR_NOT_CANONICAL)
    path = tmp_path / "events.sqlite"
    with sqlite3.connect(path) as connection:
        # TEXT affinity keeps numbers as text; the untyped (BLOB affinity) column keeps them as numbers.
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT, noted_at, payload TEXT)")
        connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", rows)
    return f"sqlite:///{path}", rows, request.param != "every form"


def test_routed_reads_give_the_general_paths_values_and_bad_rows(events, tmp_path, monkeypatch, caplog):
    events_url, rows, stays_fast = events
    spec = {"name": "events_all", "model": "events", "fields": [{"from": "id"}, {"from": "happened_at"}, {"from": "noted_at"}, {"from": "payload"}],
            "order": "id", "batch_size": 97, "max_bad_rows": 100_000, "line_ending": "lf"}
    with caplog.at_level(logging.INFO, logger="export_pipelines.stages.extract"):
        fast = run_stages(events_url, tmp_path, spec, fast=True, monkeypatch=monkeypatch, models=MODELS, max_bad_rows=100_000)
    general = run_stages(events_url, tmp_path, spec, fast=False, monkeypatch=monkeypatch, models=MODELS, max_bad_rows=100_000)
    if stays_fast:
        assert "row by row" not in caplog.text, "the fast extract fell back to the general path"
        assert "per-row SQL" not in caplog.text, "the routed read was given up"
    else:
        # Text that only looks canonical (2024-02-30 08:00:00) makes the fast path hand over: the routed read must not hide that.
        assert "row by row" in caplog.text
    assert fast.content == general.content
    assert fast.extracted.rejected == general.extracted.rejected
    assert (fast.extracted.rows, fast.extracted.expected_rows) == (general.extracted.rows, general.extracted.expected_rows)
    written = list(csv.DictReader(io.StringIO(fast.content.decode())))
    # Independently of the product: every row whose two timestamps are NULL or valid ISO 8601 text and whose JSON is valid is written.
    valid = [row for row in rows if all(v is None or (isinstance(v, str) and reference_instant(v)) for v in row[1:3]) and row[3] != "{not json"]
    assert len(written) == len(valid) > len(VALUES)


def test_canonical_and_utc_iso_text_take_the_fast_read(tmp_path, monkeypatch, caplog):
    """Canonical text, NULLs and JavaScript's toISOString form: read once, no hand-over, the general path's values."""
    path = tmp_path / "plain.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT, noted_at, payload TEXT)")
        connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?)",
                               [(i, CANONICAL if i % 4 else None, "1999-12-31T23:59:59.120Z" if i % 2 else "2000-01-01 00:00:00+00:00", None)
                                for i in range(1, 301)])
    spec = {"name": "events_plain", "model": "events", "fields": [{"from": "id"}, {"from": "happened_at"}, {"from": "noted_at"}], "order": "id",
            "batch_size": 50, "line_ending": "lf"}
    with caplog.at_level(logging.INFO, logger="export_pipelines.stages.extract"):
        fast = run_stages(f"sqlite:///{path}", tmp_path, spec, fast=True, monkeypatch=monkeypatch, models=MODELS)
    assert "row by row" not in caplog.text and "per-row SQL" not in caplog.text
    general = run_stages(f"sqlite:///{path}", tmp_path, spec, fast=False, monkeypatch=monkeypatch, models=MODELS)
    assert fast.content == general.content
    lines = fast.content.decode().splitlines()
    assert lines[0] == "id,happened_at,noted_at"
    assert lines[1] == "1,2024-05-06T07:08:09Z,1999-12-31T23:59:59.120000Z" and lines[4] == "4,,2000-01-01T00:00:00Z"
    assert len(lines) == 301


def test_mostly_odd_text_is_read_once_through_the_per_row_sql(tmp_path, monkeypatch, caplog):
    """A timestamp with an offset (+02:00) in every row: the routed read gives up after the first batch instead of
    reading each row twice, and the values are still the general path's."""
    path = tmp_path / "iso.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT, noted_at, payload TEXT)")
        connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?)",
                               [(i, f"2024-05-{1 + i % 28:02d}T07:08:09Z", "2024-05-06 07:08:09+02:00", None) for i in range(1, 201)])
    spec = {"name": "events_iso", "model": "events", "fields": [{"from": "id"}, {"from": "happened_at"}, {"from": "noted_at"}], "order": "id",
            "batch_size": 64, "line_ending": "lf"}
    with caplog.at_level(logging.INFO, logger="export_pipelines.stages.extract"):
        fast = run_stages(f"sqlite:///{path}", tmp_path, spec, fast=True, monkeypatch=monkeypatch, models=MODELS)
    assert "reading every row through the per-row SQL" in caplog.text and "row by row" not in caplog.text
    general = run_stages(f"sqlite:///{path}", tmp_path, spec, fast=False, monkeypatch=monkeypatch, models=MODELS)
    assert fast.content == general.content
    lines = fast.content.decode().splitlines()
    assert len(lines) == 201 and lines[1] == "1,2024-05-02T07:08:09Z,2024-05-06T05:08:09Z"
