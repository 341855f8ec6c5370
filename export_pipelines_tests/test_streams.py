"""Parallel streams (`parallel: {streams: N}`) on PostgreSQL: one snapshot shared by every stream and the
COUNT, bad rows numbered as one stream numbers them, and the export's steps and files unchanged.

Byte identity with the general path on tricky values is in test_fast_paths.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
import sqlalchemy as sa

from export_pipelines.source import SOURCE_URL_ENV_VAR, SourceDatabase
from export_pipelines.spec.loader import CONFIG_ENV_VAR, load_config
from export_pipelines.stages.bad_rows import TooManyBadRows
from export_pipelines.stages.extract import extract_to_stage_file
from export_pipelines.stages.stage_files import part_location, read_batches, read_schema, read_table, row_count, write_table
from export_pipelines.targets.registry import downloads_folder
from export_pipelines_tests.automation.reexecution_target import JOB_EXPORT_ENV_VAR, in_process_export_job
from export_pipelines_tests.conftest import run_export, write_config
from export_pipelines_tests.stage_runs import run_stages
from export_pipelines_tests.test_fan_out import FIELDS, create_customers, customer_rows, materialize_all
from export_pipelines_tests.test_work_location import _keys as s3_keys
from export_pipelines_tests.test_work_location import s3_work  # noqa: F401 (a fixture)

STREAMS_LOGGER = "export_pipelines.stages.streams"


def customers_plan(tmp_path: Path, spec: dict):
    config = load_config(write_config(tmp_path / "config", [spec]))
    assert not config.problems, [str(p) for p in config.problems]
    return config.plans[spec["name"]]


class _WhenStreamsStart(logging.Handler):
    """Runs `action` once, in the reading thread, when the streams' snapshot is exported and the ranges are planned
    (the log line before any other stream's connection opens)."""

    def __init__(self, action):
        super().__init__(logging.INFO)
        self._action = action
        self.fired = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.fired and "streams in snapshot" in record.getMessage():
            self.fired = True
            self._action()


def test_every_stream_and_the_count_read_the_first_streams_snapshot(postgres_schema_url, tmp_path):
    """Rows inserted, updated and deleted by another connection once the first stream has exported its snapshot
    (before the other streams' connections open) are seen by no stream and not counted: the streams imported the
    first one's snapshot. Were each stream to take a snapshot of its own, the last ranges would hold the new rows."""
    rows = customer_rows()
    create_customers(postgres_schema_url, rows)
    ids = sorted(row["id"] for row in rows)
    names = {row["id"]: row["name"] for row in rows}
    gaps = [key for key in range(ids[-8], ids[-1]) if key not in names][:2]
    plan = customers_plan(tmp_path, {"name": "snap", "model": "customers", "fields": ["id", "name"], "batch_size": 4, "parallel": {"streams": 4}})
    writer = sa.create_engine(postgres_schema_url)

    def change_the_last_ranges() -> None:
        with writer.begin() as connection:
            for key in gaps:
                connection.execute(sa.text("INSERT INTO customers (id, name) VALUES (:id, 'late')"), {"id": key})
            connection.execute(sa.text("UPDATE customers SET name = 'changed' WHERE id = :id"), {"id": ids[-2]})
            connection.execute(sa.text("DELETE FROM customers WHERE id = :id"), {"id": ids[-4]})

    handler = _WhenStreamsStart(change_the_last_ranges)
    logger = logging.getLogger(STREAMS_LOGGER)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    engine = SourceDatabase(url=postgres_schema_url).create_engine(tmp_path)
    try:
        result = extract_to_stage_file(engine, plan, tmp_path / "extract.arrow", batch_size=4)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        engine.dispose()
    assert handler.fired and result.streams == 4
    table = read_table(result.path)
    assert table["id"].to_pylist() == ids
    assert dict(zip(table["id"].to_pylist(), table["name"].to_pylist(), strict=True)) == names
    assert result.rows == result.expected_rows == len(ids)
    # The changes were committed: a read after the export sees them.
    with writer.connect() as connection:
        now = connection.execute(sa.text("SELECT count(*), max(CASE WHEN id = :id THEN name END) FROM customers"), {"id": ids[-2]}).one()
    writer.dispose()
    assert tuple(now) == (len(ids) + len(gaps) - 1, "changed")


def test_bad_rows_are_numbered_and_limited_as_one_stream_does(postgres_schema_url, tmp_path, monkeypatch):
    """Timestamps PostgreSQL holds but a file cannot ('infinity', year 10000) in several streams' ranges: the same
    bad rows, numbered alike, as one stream and the general path list them; past max_bad_rows the same failure."""
    rows = customer_rows()
    create_customers(postgres_schema_url, rows)
    ids = sorted(row["id"] for row in rows)
    bad_ids = [ids[1], ids[9], ids[10], ids[25], ids[-1]]
    engine = sa.create_engine(postgres_schema_url)
    with engine.begin() as connection:
        for index, key in enumerate(bad_ids):
            value = "infinity" if index % 2 == 0 else "10000-01-01 00:00:00+00"
            connection.execute(sa.text("UPDATE customers SET created_at = CAST(:value AS timestamptz) WHERE id = :id"), {"value": value, "id": key})
    engine.dispose()
    spec = {"name": "bad_stamps", "model": "customers", "fields": FIELDS, "batch_size": 4}
    streamed = {**spec, "parallel": {"streams": 3}}
    runs = [
        run_stages(postgres_schema_url, tmp_path / "streams", streamed, fast=True, monkeypatch=monkeypatch, max_bad_rows=10),
        run_stages(postgres_schema_url, tmp_path / "one", spec, fast=True, monkeypatch=monkeypatch, max_bad_rows=10),
        run_stages(postgres_schema_url, tmp_path / "general", spec, fast=False, monkeypatch=monkeypatch, max_bad_rows=10),
    ]
    assert [run.extracted.streams for run in runs] == [3, 1, 1]
    listed = [[(row.row_number, row.key, row.field, row.reason) for row in run.extracted.rejected] for run in runs]
    assert listed[0] == listed[1] == listed[2]
    assert [number for number, *_ in listed[0]] == [ids.index(key) + 1 for key in bad_ids]
    assert runs[0].content == runs[1].content == runs[2].content
    assert runs[0].extracted.expected_rows == len(ids)

    failures = []
    for folder, run_spec, fast in (("streams_limit", streamed, True), ("one_limit", spec, True), ("general_limit", spec, False)):
        with pytest.raises(TooManyBadRows) as raised:
            run_stages(postgres_schema_url, tmp_path / folder, run_spec, fast=fast, monkeypatch=monkeypatch, max_bad_rows=2)
        failures.append(str(raised.value))
    assert failures[0] == failures[1] == failures[2]
    assert f"3 row(s) cannot be converted, more than max_bad_rows 2" in failures[0] and f"row {ids.index(bad_ids[2]) + 1} (id={bad_ids[2]})" in failures[0]
    # A failed read leaves none of its parts behind.
    assert not list((tmp_path / "streams_limit").rglob("*.part*.arrow"))


def test_streams_keep_the_exports_steps_and_files(postgres_schema_url, tmp_path):
    """A Dagster run with streams has the export's four steps, says how many streams read, and delivers the one
    stream's file; with chunks too, every chunk step reads its range in streams of its own snapshot."""
    create_customers(postgres_schema_url, customer_rows())
    base = {"name": "plain", "model": "customers", "fields": FIELDS, "file_name": "partner.{ext}", "batch_size": 4}
    specs = [base, {**base, "name": "streamed", "parallel": {"streams": 3}}, {**base, "name": "both", "parallel": {"chunks": 2, "streams": 2}}]
    found = materialize_all(specs, postgres_schema_url, tmp_path)
    plain, streamed, both = (found[name] for name in ("plain", "streamed", "both"))
    assert {step.rsplit("__", 1)[1] for step in streamed[1]} == {"extract", "map", "serialize", "upload"}
    assert any(step.endswith("__join_chunks") for step in both[1])
    for metadata, _ in (streamed, both):
        assert Path(metadata["location"], "partner.csv").read_bytes() == Path(plain[0]["location"], "partner.csv").read_bytes()
        assert metadata["rows_written"] == plain[0]["rows_written"] == len(customer_rows())


def test_serialize_re_executed_reads_the_streams_lines(postgres_schema_url, tmp_path, monkeypatch):
    """A re-execution from serialize (the first run's upload failed) reads the lines the first run's streams left
    as parts, and delivers the one stream's file."""
    create_customers(postgres_schema_url, customer_rows())
    spec = {"name": "stream_rerun", "model": "customers", "fields": FIELDS, "file_name": "stream_rerun.{ext}", "parallel": {"streams": 3}}
    whole = run_export({**spec, "parallel": None}, postgres_schema_url, tmp_path / "whole").files
    monkeypatch.setenv(CONFIG_ENV_VAR, str(write_config(tmp_path / "config", [spec])))
    monkeypatch.setenv(SOURCE_URL_ENV_VAR, postgres_schema_url)
    monkeypatch.setenv(JOB_EXPORT_ENV_VAR, "stream_rerun")
    job = dg.reconstructable(in_process_export_job)
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        # A file where the download folder should be: the upload fails, the work files stay.
        blocked = downloads_folder(Path(instance.storage_directory()), "stream_rerun")
        blocked.parent.mkdir(parents=True, exist_ok=True)
        blocked.write_text("not a folder")
        with dg.execute_job(job, instance=instance, raise_on_error=False) as first:
            assert not first.success
            serialize = [event.step_key for event in first.all_events if event.is_step_success and event.step_key.endswith("__serialize")]
        work = Path(instance.storage_directory()) / "export_work" / first.run_id / "stream_rerun"
        assert sorted(path.name for path in work.glob("lines.part*.arrow")) == ["lines.part00.arrow", "lines.part01.arrow", "lines.part02.arrow"]
        blocked.unlink()
        options = dg.ReexecutionOptions(parent_run_id=first.run_id, step_selection=[f"{serialize[0]}*"])
        with dg.execute_job(job, instance=instance, reexecution_options=options) as rerun:
            assert rerun.success
            messages = [record.event_log_entry.user_message for record in instance.get_records_for_run(rerun.run_id).records]
        delivered = (downloads_folder(Path(instance.storage_directory()), "stream_rerun") / "stream_rerun.csv").read_bytes()
    assert any("earlier run of this export left" in message for message in messages)
    assert delivered == whole["stream_rerun.csv"]


def test_stream_parts_live_in_the_object_store_work_folder(s3_work, moto_endpoint, s3_bucket, postgres_schema_url, tmp_path, monkeypatch):
    """With EXPORT_WORK_URL every stream writes its parts of the stage file and of the lines to S3 (moto's server),
    and serialize reads them from there into the one stream's file."""
    create_customers(postgres_schema_url, customer_rows())
    spec = {"name": "s3_streams", "model": "customers", "fields": FIELDS, "file_name": "s3_streams.{ext}", "batch_size": 4}
    whole = run_export(spec, postgres_schema_url, tmp_path / "whole").files["s3_streams.csv"]
    monkeypatch.setenv("EXPORT_WORK_URL", s3_work)
    # The upload fails (a file where the download folder belongs): the work files stay to be looked at.
    blocked = downloads_folder(tmp_path / "remote" / "instance" / "storage", "s3_streams")
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    failed = run_export({**spec, "parallel": {"streams": 2}}, postgres_schema_url, tmp_path / "remote", raise_on_error=False)
    assert not failed.result.success
    stored = s3_keys(moto_endpoint, s3_bucket)
    prefix = f"work/{failed.result.run_id}/s3_streams/"
    parts = [f"{prefix}{stage}.part{index:02d}.arrow" for stage in ("extract", "lines") for index in range(2)]
    assert sorted(stored) == sorted([*parts, prefix + "files/s3_streams.csv"])
    assert stored[prefix + "files/s3_streams.csv"] == whole


def test_a_stage_in_parts_reads_as_one_file(tmp_path):
    """Parts are read one after another; a part without rows (a stream's empty key range) adds no batch, and
    a stage whose parts are all empty still yields one empty batch, so the schema travels."""
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])
    tables = [schema.empty_table(), pa.table({"id": [1, 2], "name": ["a", None]}, schema=schema), schema.empty_table(),
              pa.table({"id": [5], "name": ["e"]}, schema=schema)]
    parts = tuple(part_location(tmp_path / "extract.arrow", index) for index in range(len(tables)))
    for part, table in zip(parts, tables, strict=True):
        write_table(table, part)
    assert parts[1].endswith("extract.part01.arrow")
    batches = list(read_batches(parts, 1))
    assert [batch.num_rows for batch in batches] == [1, 1, 1]
    assert pa.Table.from_batches(batches).to_pydict() == {"id": [1, 2, 5], "name": ["a", None, "e"]}
    assert read_table(parts).to_pydict() == {"id": [1, 2, 5], "name": ["a", None, "e"]}
    assert row_count(parts) == 3 and read_schema(parts) == schema
    [empty] = read_batches((parts[0], parts[2]), 10)
    assert empty.num_rows == 0 and empty.schema == schema

