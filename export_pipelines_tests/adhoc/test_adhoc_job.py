"""The adhoc_export job in process: checked like a spec before extraction, then the same stages."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from export_pipelines.adhoc.job import build_adhoc_job
from export_pipelines.definitions import build_definitions
from export_pipelines.naming import ADHOC_JOB, ADHOC_PLAN_OP, adhoc_export_name
from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import export_resources, write_config
from export_pipelines_tests.sample_data import create_sample_tables


@pytest.fixture
def adhoc_job(tmp_path: Path) -> dg.JobDefinition:
    return build_adhoc_job(load_config(write_config(tmp_path / "config", [])))


def run_adhoc(job: dg.JobDefinition, request: dict, source_url: str, tmp_path: Path) -> dg.ExecuteInProcessResult:
    instance_dir = tmp_path / "instance"
    instance_dir.mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(instance_dir)) as instance:
        return job.execute_in_process(
            run_config={"ops": {ADHOC_PLAN_OP: {"config": request}}},
            resources=export_resources(source_url),
            instance=instance,
            raise_on_error=False,
        )


def failure_messages(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {event.step_key: event.step_failure_data.error.message for event in result.get_step_failure_events()}


def test_rows_match_an_independent_query(adhoc_job, sample_source_url: str, tmp_path: Path):
    request = {
        "exported_object": "customer",
        "fields": ["source_id", "address_country"],
        "filters": {"junction": "or", "address_country": {"conditions": {"$in": ["DE", "AT"]}}, "loyalty_points": {"conditions": {"$gt": "100"}}},
        "order": ["-source_id"],
        "format": "psv",
    }

    result = run_adhoc(adhoc_job, request, sample_source_url, tmp_path)

    assert result.success
    folder = tmp_path / "instance" / "storage" / "downloads" / adhoc_export_name(result.run_id)
    (file,) = folder.iterdir()
    engine = sa.create_engine(sample_source_url)
    with engine.connect() as connection:
        expected = connection.execute(
            sa.text(
                "SELECT source_id, address_country FROM customers "
                "WHERE address_country IN ('DE', 'AT') OR loyalty_points > 100 ORDER BY source_id DESC"
            )
        ).all()
    engine.dispose()
    header, *rows = csv.reader(io.StringIO(file.read_text(encoding="utf-8"), newline=""), delimiter="|")
    assert header == ["source_id", "address_country"]
    assert rows == [[source_id, country or ""] for source_id, country in expected]


def test_a_request_chooses_the_partners_file_dialect(adhoc_job, tmp_path: Path):
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    request = {
        "exported_object": "customer",
        "fields": ["source_id", "address_city", "orders_total_amount", "birthdate"],
        "order": ["source_id"],
        "delimiter": ";", "decimal_separator": ",", "date_format": "%d.%m.%Y", "null_text": "NULL",
        "encoding": "windows-1252", "line_ending": "lf", "quoting": "all",
    }

    result = run_adhoc(adhoc_job, request, source, tmp_path)

    assert result.success, failure_messages(result)
    folder = tmp_path / "instance" / "storage" / "downloads" / adhoc_export_name(result.run_id)
    (file,) = folder.iterdir()
    # By hand, from sample_data.CUSTOMERS: every value quoted but NULL, decimal commas, German dates, cp1252.
    assert file.read_bytes() == (
        '"source_id";"address_city";"orders_total_amount";"birthdate"\n'
        '"C-001";"Berlin";"12,30";"17.05.1990"\n'
        '"C-002";"Wien";"-5,00";NULL\n'
        '"C-003";"";NULL;"01.01.2000"\n'
        '"C-004";"Shanghai|Pudong";"123456789012,99";NULL\n'
        '"C-005";"München";"0,10";"31.12.1985"\n'
    ).encode("cp1252")


def test_a_request_with_a_wrong_dialect_key_fails_before_extraction(adhoc_job, tmp_path: Path):
    request = {"exported_object": "customer", "fields": ["email"], "delimiter": "::", "encoding": "latin-9"}
    result = run_adhoc(adhoc_job, request, f"sqlite:///{tmp_path / 'absent.sqlite'}", tmp_path)

    message = failure_messages(result)[ADHOC_PLAN_OP]
    assert "request: delimiter" in message and "request: encoding" in message, message
    assert not (tmp_path / "absent.sqlite").exists()


@pytest.mark.parametrize(
    ("request_keys", "message"),
    [
        ({"fields": ["email", "emial"]}, "request: fields[1].from: model customers has no field 'emial'"),
        ({"fields": ["email"], "filters": {"email": {"conditions": {"$like": ["x"]}}}}, "unknown operator '$like'"),
        ({"fields": ["email"], "order": ["-birthday"]}, "request: order[0]"),
        ({"fields": ["email"], "target": "partner_sftp"}, "connection 'partner_sftp' is not in connections.yaml"),
    ],
)
def test_invalid_request_fails_before_extraction(adhoc_job, tmp_path: Path, request_keys: dict, message: str):
    # No source database exists at all: the request must fail on its own merits, before any query.
    result = run_adhoc(adhoc_job, {"exported_object": "customer", **request_keys}, f"sqlite:///{tmp_path / 'absent.sqlite'}", tmp_path)

    assert not result.success
    failures = failure_messages(result)
    assert list(failures) == [ADHOC_PLAN_OP]
    assert message in failures[ADHOC_PLAN_OP]
    assert not (tmp_path / "absent.sqlite").exists()


def test_unknown_model_is_named(adhoc_job, tmp_path: Path):
    result = run_adhoc(adhoc_job, {"exported_object": "vouchr", "fields": ["code"]}, f"sqlite:///{tmp_path / 'none.sqlite'}", tmp_path)

    assert "unknown model 'vouchr'; did you mean" in failure_messages(result)[ADHOC_PLAN_OP]


def test_run_config_is_typed_for_the_launchpad(adhoc_job, tmp_path: Path):
    request = {"exported_object": "customer", "fields": ["id"], "format": "xlsx"}
    with pytest.raises(dg.DagsterInvalidConfigError, match="format"):
        run_adhoc(adhoc_job, request, f"sqlite:///{tmp_path / 'none.sqlite'}", tmp_path)


def test_code_location_offers_the_job(tmp_path: Path):
    defs = build_definitions(load_config(write_config(tmp_path / "config", [])))

    assert defs.resolve_job_def(ADHOC_JOB).name == ADHOC_JOB
