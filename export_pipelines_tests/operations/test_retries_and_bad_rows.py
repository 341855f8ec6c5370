"""The spec's retry waits; unconvertible rows are skipped up to max_bad_rows (transient and
permanent faults: test_error_classes.py)."""

from __future__ import annotations

import csv
import io
import sqlite3

import dagster as dg
import pytest

from export_pipelines.retries import retry_schedule_for
from export_pipelines.spec.export import Retries
from export_pipelines_tests.conftest import run_export
from export_pipelines_tests.sample_data import CUSTOMERS, create_sample_tables


def step_events(result: dg.ExecuteInProcessResult, event_type: dg.DagsterEventType, step_suffix: str) -> list:
    return [e for e in result.all_events if e.event_type == event_type and e.step_key.endswith(step_suffix)]


def test_retry_waits_add_up_to_within():
    schedule = retry_schedule_for(Retries(max_retries=3, within="60s"))
    # d + 2d + 4d = 60 s, each drawn between 0 and its nominal length (full jitter)
    nominal = [schedule.nominal_wait(retry) for retry in (1, 2, 3)]
    assert nominal == pytest.approx([60 / 7, 120 / 7, 240 / 7]) and sum(nominal) == pytest.approx(60)
    draws = [schedule.wait_before(retry) for retry in (1, 2, 3) for _ in range(200)]
    assert all(0 <= wait <= 240 / 7 for wait in draws) and max(draws[:200]) <= 60 / 7
    assert retry_schedule_for(None) is None and retry_schedule_for(Retries(max_retries=0)) is None


BAD_IDS = (901, 902)


@pytest.fixture
def source_with_bad_timestamps(tmp_path) -> str:
    """Two customers whose created_at text is not a time: SQLite stores whatever it is given."""
    path = tmp_path / "source.sqlite"
    create_sample_tables(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:
        for bad_id in BAD_IDS:
            connection.execute(
                "INSERT INTO customers (id, source_id, email, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (bad_id, f"C-{bad_id}", f"bad{bad_id}@example.com", "31/12/2024 25:61", "2024-01-01 00:00:00"),
            )
    return f"sqlite:///{path}"


def bad_rows_spec(limit: int | None) -> dict:
    spec = {"name": "customers_with_bad_rows", "model": "customers", "fields": ["id", "email", "created_at"], "order": ["id"]}
    return spec if limit is None else {**spec, "max_bad_rows": limit}


def test_bad_rows_within_the_limit_are_skipped_and_listed(source_with_bad_timestamps, tmp_path, capfd):
    run = run_export(bad_rows_spec(2), source_with_bad_timestamps, tmp_path)
    assert run.result.success
    [content] = run.files.values()
    written_ids = [int(r[0]) for r in list(csv.reader(io.StringIO(content.decode(), newline="")))[1:]]
    assert written_ids == sorted(c["id"] for c in CUSTOMERS)
    assert run.metadata["rows_rejected"] == 2
    rejected = list(csv.DictReader(open(run.metadata["rejected_file"], newline="", encoding="utf-8")))
    assert [r["key"] for r in rejected] == [f"id={bad_id}" for bad_id in BAD_IDS]
    assert {r["field"] for r in rejected} == {"created_at"}
    assert all("31/12/2024 25:61" in r["value"] and r["reason"] == "not an ISO 8601 timestamp" for r in rejected)
    [check] = run.result.get_asset_check_evaluations()
    assert check.passed and check.metadata["rows_rejected"].value == 2
    run_log = capfd.readouterr().err  # the run's console log: each skipped row with its key and reason
    for bad_id in BAD_IDS:
        assert "Skipped row" in run_log and f"(id={bad_id}): created_at = '31/12/2024 25:61' is not an ISO 8601 timestamp" in run_log


@pytest.mark.parametrize("limit", [None, 1])
def test_one_bad_row_beyond_the_limit_fails_naming_the_rows(source_with_bad_timestamps, tmp_path, limit):
    run = run_export(bad_rows_spec(limit), source_with_bad_timestamps, tmp_path, raise_on_error=False)
    assert not run.result.success
    [failure] = [e for e in run.result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message
    assert f"For export customers_with_bad_rows, {(limit or 0) + 1} row(s) cannot be converted, more than max_bad_rows {limit or 0}" in message
    assert f"id={BAD_IDS[0]}" in message
    assert not step_events(run.result, dg.DagsterEventType.STEP_UP_FOR_RETRY, "__extract")  # bad data is not retried
