"""A fanned-out export (`parallel: {chunks: N}`) against the same export unsplit, on SQLite and PostgreSQL.

The two runs' files must be the same bytes. The only bytes allowed to differ are the archive
timestamps (gzip's MTIME, zip's DOS time and date), which record when each run read its
snapshot; the test zeroes them at their fixed offsets (RFC 1952 section 2.3, APPNOTE 4.3.7 and
4.3.12) before comparing. The unsplit file itself is checked against the inserted rows with
Python's csv module.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import dagster as dg
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
import pytest
import sqlalchemy as sa

from export_pipelines.catalog.models import load_builtin_catalog
from export_pipelines.catalog.sql_types import model_table
from export_pipelines.automation.windows import range_tags
from export_pipelines.definitions import build_definitions
from export_pipelines.factory import build_export_asset
from export_pipelines.local_runs import code_location_job
from export_pipelines.naming import export_job_name
from export_pipelines.source import SOURCE_URL_ENV_VAR, SourceDatabase
from export_pipelines.spec.loader import CONFIG_ENV_VAR, load_config
from export_pipelines.stages.chunks import plan_chunks
from export_pipelines.stages.key_ranges import split_key_range
from export_pipelines.stages.extract import extract_to_stage_file
from export_pipelines.stages.stage_files import read_table
from export_pipelines.targets.registry import downloads_folder
from export_pipelines_tests.automation.reexecution_target import JOB_EXPORT_ENV_VAR, in_process_export_job, load_edited_config
from export_pipelines_tests.automation.window_data import RANGE, WINDOW_END, WINDOW_START, create_window_transactions, ids_in_window, incremental_spec
from export_pipelines_tests.conftest import export_resources, run_export, source_url, write_config
from export_pipelines_tests.sample_data import TRANSACTIONS, create_sample_tables
from export_pipelines_tests.test_work_location import _keys as s3_keys
from export_pipelines_tests.test_work_location import s3_work  # noqa: F401 (a fixture)

# Values a CSV writer gets wrong: quotes, both delimiters, CR, LF and CRLF inside values, NULL
# against the empty text, non-ASCII letters.
TEXTS = ["Zoë Müller", 'Says "hi", often', "line one\r\nline two", "bare\rCR", "lf\nonly", "a|b|c", "comma, inside",
         "李雷", "", None, "Ann O'Neil", '"quoted"', "trailing space "]
ROW_COUNT = 41
CHUNKS = 4
FIELDS = ["id", "name", "email", "description", "loyalty_points", "created_at"]


def customer_rows() -> list[dict]:
    # Keys with gaps, so the chunks' equal-width ranges hold different numbers of rows.
    return [
        {
            "id": 5 * i + i % 3 + 1,
            "name": TEXTS[i % len(TEXTS)],
            "email": None if i % 4 == 0 else f"user{i}@example.com",
            "description": TEXTS[(i * 5) % len(TEXTS)],
            "loyalty_points": None if i % 5 == 0 else i * 11 - 100,
            "created_at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=7 * i),
        }
        for i in range(ROW_COUNT)
    ]


def create_customers(url: str, rows: list[dict]) -> None:
    engine = sa.create_engine(url)
    table = model_table(load_builtin_catalog().get("customers"), sa.MetaData())
    table.create(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{column.name: row.get(column.name) for column in table.columns} for row in rows])
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def customers_url(request, tmp_path: Path) -> str:
    url = source_url(request, tmp_path, request.param)
    create_customers(url, customer_rows())
    return url


def variant_specs() -> list[dict]:
    """Every format x compression x (one file, parts) as an unsplit spec and its fanned-out twin."""
    specs = []
    for file_format in ("csv", "psv"):
        for compression in ("none", "gzip", "zip"):
            for split in (False, True):
                name = f"{file_format}_{compression}_{'parts' if split else 'whole'}"
                spec = {
                    "name": name,
                    "model": "customers",
                    "fields": FIELDS,
                    "format": file_format,
                    "compression": compression,
                    # No run time or export name in the file name: the twins' names must match (zip keeps it inside).
                    "file_name": "partner_{part:03d}.{ext}" if split else "partner.{ext}",
                    "batch_size": 4,
                }
                if split:
                    spec["max_rows_per_file"] = 7
                specs += [spec, {**spec, "name": f"{name}_fan", "parallel": {"chunks": CHUNKS}}]
    extra = [
        # Sorted by the key descending: the chunks are joined from the last key range to the first.
        {**specs[-2], "name": "csv_descending", "format": "csv", "order": ["-id"]},
        # JSON Lines: its lines are written by the chunks too.
        {**specs[0], "name": "jsonl_none_parts", "format": "jsonl", "file_name": "partner_{part:03d}.{ext}", "max_rows_per_file": 7},
        # A legacy encoding: the chunks stop at mapped rows and the join writes them; the rows windows-1252
        # cannot hold (李雷) are bad rows of several chunks, listed together.
        {**specs[2], "name": "cp1252_gzip_whole", "encoding": "windows-1252", "max_bad_rows": 10},
    ]
    return [*specs, *(twin for spec in extra for twin in (spec, {**spec, "name": f"{spec['name']}_fan", "parallel": {"chunks": CHUNKS}}))]


def materialize_all(specs: list[dict], url: str, tmp_path: Path) -> dict[str, tuple[dict, set[str]]]:
    """Each export's materialization metadata and the step keys its run executed, from one run of all of them."""
    config = load_config(write_config(tmp_path / "config", specs))
    assert not config.problems, [str(p) for p in config.problems]
    assets = [build_export_asset(config.plans[spec["name"]]) for spec in specs]
    # In-memory run and event storage: two dozen exports' steps log hundreds of events.
    instance = dg.DagsterInstance.ephemeral(tempdir=str(tmp_path / "instance"))
    result = dg.materialize(assets, resources=export_resources(url), instance=instance)
    steps = {event.step_key for event in result.get_step_success_events()}
    found = {}
    for event in result.get_asset_materialization_events():
        name = event.asset_key.path[-1]
        metadata = {key: value.value for key, value in event.materialization.metadata.items()}
        found[name] = (metadata, {step for step in steps if step.startswith(f"exports__{name}.{name}__")})
    return found


def delivered(metadata: dict) -> dict[str, bytes]:
    folder = Path(metadata["location"])
    return {name: (folder / name).read_bytes() for name in metadata["file_names"]}


def without_archive_times(data: bytes, compression: str) -> bytes:
    """The file with its archive timestamps zeroed: gzip's MTIME (bytes 4-7 of the member header) and,
    for a zip of one entry, the DOS time and date of its local header (bytes 10-13) and central
    directory entry (bytes 12-15 after its signature)."""
    if compression == "gzip":
        assert data[:2] == b"\x1f\x8b" and gzip.decompress(data)
        return data[:4] + bytes(4) + data[8:]
    if compression == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert len(archive.infolist()) == 1 and archive.infolist()[0].header_offset == 0
        central = data.rfind(b"PK\x01\x02")
        blanked = bytearray(data)
        blanked[10:14] = bytes(4)
        blanked[central + 12 : central + 16] = bytes(4)
        return bytes(blanked)
    return data


def text_of(data: bytes, compression: str) -> str:
    if compression == "gzip":
        data = gzip.decompress(data)
    elif compression == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data = archive.read(archive.namelist()[0])
    return data.decode("utf-8")


def expected_cells(row: dict) -> list[str]:
    """The first five fields as the file writes them: NULL as the empty text, integers in decimal digits."""
    return ["" if row[name] is None else str(row[name]) for name in FIELDS[:5]]


def test_fanned_out_export_writes_the_unsplit_exports_bytes(customers_url, tmp_path):
    specs = variant_specs()
    found = materialize_all(specs, customers_url, tmp_path)
    rows = customer_rows()
    for spec in specs[::2]:
        name, compression = spec["name"], spec["compression"]
        whole, whole_steps = found[name]
        fanned, fanned_steps = found[f"{name}_fan"]
        whole_files, fanned_files = delivered(whole), delivered(fanned)
        # The parts: 41 rows in parts of 7 are 6 parts, each with the header.
        assert len(whole_files) == (6 if "max_rows_per_file" in spec else 1) or spec.get("encoding"), name
        assert list(fanned_files) == list(whole_files), name
        for file_name, data in whole_files.items():
            assert without_archive_times(fanned_files[file_name], compression) == without_archive_times(data, compression), (name, file_name)
        assert fanned["rows_written"] + fanned["rows_rejected"] == fanned["rows_expected"] == ROW_COUNT

        if spec.get("encoding") == "windows-1252":
            unwritable = [row["id"] for row in rows if "李雷" in (row["name"], row["description"])]
            assert whole["rows_rejected"] == fanned["rows_rejected"] == len(unwritable) > 1
            assert Path(fanned["rejected_file"]).read_bytes() == Path(whole["rejected_file"]).read_bytes()
            listed = list(csv.DictReader(io.StringIO(Path(whole["rejected_file"]).read_text(encoding="utf-8"), newline="")))
            assert [record["key"] for record in listed] == [f"id={key}" for key in unwritable]
            continue
        if spec["format"] == "jsonl":
            lines = [json.loads(line) for data in whole_files.values() for line in data.decode("utf-8").splitlines()]
            assert [[line[name] for name in FIELDS[:5]] for line in lines] == [[row[name] for name in FIELDS[:5]] for row in rows]
            continue
        # The unsplit file is right by itself: Python's csv module reads back the inserted rows.
        text = "".join(text_of(data, compression) for data in whole_files.values())
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter="|" if spec["format"] == "psv" else ","))
        records = [record for record in records if record != FIELDS]
        in_order = sorted(rows, key=lambda row: row["id"], reverse=spec.get("order") == ["-id"])
        assert [record[:5] for record in records] == [expected_cells(row) for row in in_order], name

        # The unsplit export's steps keep their keys; the fanned-out one ran one extract and one map step per chunk.
        assert whole_steps == {f"exports__{name}.{name}__{stage}" for stage in ("extract", "map", "serialize", "upload")}
        prefix = f"exports__{name}_fan.{name}_fan__"
        assert fanned_steps == {
            f"{prefix}plan_chunks", f"{prefix}join_chunks", f"{prefix}upload",
            *(f"{prefix}{stage}[chunk_{index:03d}]" for stage in ("extract_chunk", "map_chunk") for index in range(CHUNKS)),
        }


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def transactions_url(request, tmp_path: Path) -> str:
    url = source_url(request, tmp_path, request.param)
    create_sample_tables(url)
    return url


def test_fanned_out_aggregate_combines_the_chunks_partials(transactions_url, tmp_path):
    """SQLite aggregates the decimal amounts over Arrow, PostgreSQL and MariaDB (read by connectorx) in their GROUP BY:
    each, fanned out over key ranges, equals the unsplit export."""
    fields = [
        {"from": "store_id", "to": "Store", "aggregation": "group"},
        {"from": "status", "to": "Status", "aggregation": "group"},
        {"from": "id", "to": "Orders", "aggregation": "count"},
        {"from": "amount", "to": "Total", "aggregation": "sum"},
        {"from": "amount", "to": "Average", "aggregation": "avg"},
        {"from": "number", "to": "FirstNumber", "aggregation": "min"},
        {"from": "created_at", "to": "Last", "aggregation": "max"},
    ]
    spec = {"name": "totals", "model": "transactions", "fields": fields, "file_name": "totals.{ext}", "batch_size": 3}
    found = materialize_all([spec, {**spec, "name": "totals_fan", "parallel": {"chunks": 5}}], transactions_url, tmp_path)
    whole, fanned = delivered(found["totals"][0]), delivered(found["totals_fan"][0])
    assert fanned == whole
    assert found["totals_fan"][0]["rows_written"] == found["totals_fan"][0]["rows_expected"]
    assert len([step for step in found["totals_fan"][1] if "__map_chunk[" in step]) == 5

    # The totals, from the sample rows in plain Python.
    records = list(csv.DictReader(io.StringIO(whole["totals.csv"].decode("utf-8"), newline="")))
    expected = {}
    for row in TRANSACTIONS:
        count, total = expected.get((row["store_id"], row["status"]), (0, Decimal(0)))
        expected[(row["store_id"], row["status"])] = (count + 1, total + row["amount"])
    assert {(int(r["Store"]), r["Status"]): (int(r["Orders"]), Decimal(r["Total"])) for r in records} == expected


def test_chunks_are_fixed_when_planned_and_each_reads_its_own_snapshot(postgres_schema_url, tmp_path):
    """What a fanned-out snapshot gives: the key ranges fixed by the plan step, each chunk read later in its own
    snapshot. A row inserted after planning above the planned maximum is in no chunk; a row updated after
    planning is written once, as its chunk reads it; each chunk's COUNT(*) matches what it wrote."""
    create_customers(postgres_schema_url, customer_rows())
    spec = {"name": "snap", "model": "customers", "fields": ["id", "name"], "parallel": {"chunks": 3}}
    plan = load_config(write_config(tmp_path / "config", [spec])).plans["snap"]
    engine = SourceDatabase(url=postgres_schema_url).create_engine(tmp_path)
    try:
        planned = plan_chunks(engine, plan)
        ids = [row["id"] for row in customer_rows()]
        assert planned.ranges[0].low == min(ids) and planned.ranges[-1].high == max(ids) + 1
        with engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO customers (id, name) VALUES (:id, 'late')"), {"id": max(ids) + 1})
            connection.execute(sa.text("UPDATE customers SET name = 'changed' WHERE id = :id"), {"id": ids[-1]})
        written = {}
        for index, key_range in enumerate(planned.ranges):
            result = extract_to_stage_file(engine, plan, tmp_path / f"chunk{index}.arrow", batch_size=10, key_range=key_range)
            assert result.rows == result.expected_rows
            table = read_table(result.path)
            for key, name in zip(table["id"].to_pylist(), table["name"].to_pylist(), strict=True):
                assert key not in written
                written[key] = name
    finally:
        engine.dispose()
    assert sorted(written) == ids
    assert written[ids[-1]] == "changed"


def test_key_range_split_covers_every_key_once():
    assert split_key_range(1, 10, 3) == [(1, 5), (5, 9), (9, 11)]
    assert split_key_range(7, 7, 8) == [(7, 8)]
    assert split_key_range(-3, 2, 2) == [(-3, 0), (0, 3)]
    for low, high, chunks in [(1, 1000, 7), (0, 5, 16), (-50, 49, 4)]:
        ranges = split_key_range(low, high, chunks)
        assert len(ranges) <= chunks
        assert [key for start, end in ranges for key in range(start, end)] == list(range(low, high + 1))


def test_a_text_primary_key_is_refused_for_fanning_out_naming_the_export(tmp_path):
    models = {"models": {"stores": {"primary_key": "code"}}}
    spec = {"name": "by_code", "model": "stores", "fields": ["code"], "parallel": {"chunks": 4}}
    config = load_config(write_config(tmp_path / "config", [spec], models=models))
    [problem] = config.problems
    assert problem.key_path == "parallel"
    assert "export by_code splits into key ranges of an integer field; the primary key code of model stores is a string field" in problem.message
    assert "parallel.by" in problem.message


def test_rows_without_a_chunk_key_fail_the_plan_step_by_name(tmp_path):
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_customers(url, customer_rows())
    spec = {"name": "by_points", "model": "customers", "fields": ["id", "loyalty_points"], "order": ["loyalty_points"],
            "parallel": {"chunks": 3, "by": "loyalty_points"}}
    run = run_export(spec, url, tmp_path, raise_on_error=False)
    assert not run.result.success
    [failure] = [event for event in run.result.all_events if event.is_step_failure]
    assert failure.step_key.endswith("__plan_chunks")
    message = failure.step_failure_data.error.message
    without = sum(row["loyalty_points"] is None for row in customer_rows())
    assert f"For export by_points, {without} matching row(s) have no loyalty_points" in message
    assert "parallel.by" in message


def test_a_key_that_does_not_fit_its_field_is_one_bad_row_of_one_chunk(tmp_path):
    """SQLite lets an integer column hold 7.5 or 'abc': such a row is read by the first chunk only
    (a 7.5 would also fall in the range [7, 10)), and listed once, as the unsplit export lists it."""
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t_bad (id BIGINT PRIMARY KEY, k BIGINT, name TEXT)")
        connection.exec_driver_sql("INSERT INTO t_bad VALUES (1, 1, 'a'), (3, 7.5, 'r'), (4, 3, 'b'), (5, 9, 'c'), (6, 10, 'd')")
    engine.dispose()
    models = {"models": {"t_bad": {"table": "t_bad", "primary_key": "id", "fields": {
        "id": {"type": "integer"}, "k": {"type": "integer"}, "name": {"type": "string"}}}}}
    spec = {"name": "bad_keys", "model": "t_bad", "fields": ["id", "k", "name"], "order": ["k"], "max_bad_rows": 1, "file_name": "bad_keys.{ext}"}
    whole = run_export(spec, url, tmp_path / "whole", models=models)
    fanned = run_export({**spec, "parallel": {"chunks": 4, "by": "k"}}, url, tmp_path / "fanned", models=models)
    assert fanned.files == whole.files == {"bad_keys.csv": b"id,k,name\r\n1,1,a\r\n4,3,b\r\n5,9,c\r\n6,10,d\r\n"}
    assert fanned.metadata["rows_rejected"] == whole.metadata["rows_rejected"] == 1
    assert Path(fanned.metadata["rejected_file"]).read_bytes() == Path(whole.metadata["rejected_file"]).read_bytes()



@pytest.mark.parametrize("delimiter", [",", ";"], ids=["spec_unchanged", "delimiter_edited"])
def test_rerun_from_failure_reruns_only_the_failed_chunk(tmp_path, monkeypatch, delimiter):
    """A chunk that fails (a bad value, max_bad_rows 0) is re-executed alone once the source is fixed; the
    finished chunks' stage files, left in the first run's work folder, are read again, and removed once delivered.
    When the spec's delimiter was edited with the fix, the chunks formatted by the old spec are formatted again."""
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    rows = customer_rows()
    create_customers(url, rows)
    ids = sorted(row["id"] for row in rows)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        # SQLite keeps text in an INTEGER column: the row is a bad row, and max_bad_rows is 0.
        connection.execute(sa.text("UPDATE customers SET loyalty_points = 'many' WHERE id = :id"), {"id": ids[-1]})
    spec = {"name": "fan_rerun", "model": "customers", "fields": FIELDS, "file_name": "fan_rerun.{ext}", "parallel": {"chunks": 3}}
    monkeypatch.setenv(CONFIG_ENV_VAR, str(write_config(tmp_path / "config", [spec])))
    monkeypatch.setenv(SOURCE_URL_ENV_VAR, url)
    monkeypatch.setenv(JOB_EXPORT_ENV_VAR, "fan_rerun")
    job = dg.reconstructable(in_process_export_job)

    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        with dg.execute_job(job, instance=instance, raise_on_error=False) as first:
            assert not first.success
            failed = [event.step_key.rsplit("__", 1)[1] for event in first.all_events if event.is_step_failure]
            assert failed == ["extract_chunk[chunk_002]"]
        first_work = Path(instance.storage_directory()) / "export_work" / first.run_id / "fan_rerun"
        assert sorted(path.name for path in first_work.glob("chunk_00[01].lines.arrow")) == ["chunk_000.lines.arrow", "chunk_001.lines.arrow"]

        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE customers SET loyalty_points = 7 WHERE id = :id"), {"id": ids[-1]})
        if delimiter != ",":
            write_config(tmp_path / "config", [{**spec, "delimiter": delimiter}])
            load_edited_config()
        options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
        with dg.execute_job(job, instance=instance, reexecution_options=options) as rerun:
            assert rerun.success
            records = instance.get_records_for_run(rerun.run_id, of_type=dg.DagsterEventType.STEP_START).records
            started = [record.event_log_entry.dagster_event.step_key.rsplit("__", 1)[1] for record in records]
            assert started == ["extract_chunk[chunk_002]", "map_chunk[chunk_002]", "join_chunks", "upload"]
            messages = [record.event_log_entry.user_message for record in instance.get_records_for_run(rerun.run_id).records]
        delivered_file = downloads_folder(Path(instance.storage_directory()), "fan_rerun") / "fan_rerun.csv"
        written = list(csv.reader(io.StringIO(delivered_file.read_bytes().decode("utf-8"), newline=""), delimiter=delimiter))
        assert not first_work.exists()
    engine.dispose()
    assert any("earlier run of this export left for chunk_000" in message for message in messages)
    assert [int(record[0]) for record in written[1:]] == ids
    assert written[-1][4] == "7"
    assert all(len(record) == len(FIELDS) for record in written)


def test_materialize_runs_a_fanned_out_exports_chunks_in_processes_of_their_own(tmp_path, monkeypatch):
    """As the UI's Materialize launches it (__ASSET_JOB, the Definitions' executor): a fanned-out export's
    chunk steps each run in a process of their own, so they can run side by side; an unsplit export's
    steps stay in the run's process (a process per step would only add start-up time)."""
    monkeypatch.delenv("EXPORT_EXECUTOR", raising=False)
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    rows = customer_rows()
    create_customers(url, rows)
    specs = [{"name": "fanned", "model": "customers", "fields": ["id"], "order": "id", "file_name": "fanned.{ext}", "parallel": {"chunks": 2}},
             {"name": "single", "model": "customers", "fields": ["id"], "order": "id", "file_name": "single.{ext}"}]
    monkeypatch.setenv(CONFIG_ENV_VAR, str(write_config(tmp_path / "config", specs)))
    monkeypatch.setenv(SOURCE_URL_ENV_VAR, url)
    job = code_location_job(IMPLICIT_ASSET_JOB_NAME)
    (tmp_path / "instance").mkdir()
    pids = {}
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        for name in ("fanned", "single"):
            with dg.execute_job(job, instance=instance, asset_selection=[dg.AssetKey(["exports", name])]) as result:
                assert result.success
                starts = [event for event in result.all_events if event.is_step_start]
                pids[name] = {event.step_key.rsplit("__", 1)[1]: event.pid for event in starts}
                run_pid = next(event.pid for event in result.all_events if event.event_type == dg.DagsterEventType.RUN_START)
        folder = downloads_folder(Path(instance.storage_directory()), "fanned")
        written = (folder / "fanned.csv").read_bytes()
    chunk_pids = {pids["fanned"]["extract_chunk[chunk_000]"], pids["fanned"]["extract_chunk[chunk_001]"]}
    assert len(chunk_pids) == 2 and run_pid not in chunk_pids
    assert set(pids["single"]) == {"extract", "map", "serialize", "upload"} and set(pids["single"].values()) == {run_pid}
    assert written == ("id\r\n" + "".join(f"{i}\r\n" for i in sorted(row["id"] for row in rows))).encode()


def test_fanned_out_incremental_range_run_writes_the_unsplit_window_file(tmp_path):
    """Each chunk step reads the run's partition range as its window, as the unsplit extract does."""
    url = f"sqlite:///{tmp_path / 'window.sqlite'}"
    create_window_transactions(url)
    specs = [{**incremental_spec(name, "event_date"), "file_name": "tx_{window_start:%Y%m%d}.{ext}"} for name in ("tx_whole", "tx_fan")]
    specs[1]["parallel"] = {"chunks": 3}
    config = load_config(write_config(tmp_path / "config", specs))
    instance = dg.DagsterInstance.ephemeral(tempdir=str(tmp_path / "instance"))
    files = {}
    for spec in specs:
        result = dg.materialize([build_export_asset(config.plans[spec["name"]])], resources=export_resources(url), instance=instance, tags=range_tags(RANGE))
        metadata = result.get_asset_materialization_events()[0].materialization.metadata
        files[spec["name"]] = delivered({key: value.value for key, value in metadata.items()})
    assert files["tx_fan"] == files["tx_whole"]
    ids = [int(record["id"]) for record in csv.DictReader(io.StringIO(files["tx_whole"]["tx_20260327.csv"].decode("utf-8"), newline=""))]
    assert ids == ids_in_window(url, "created_at", WINDOW_START, WINDOW_END)


def test_chunk_stage_files_live_in_the_object_store_work_folder(s3_work, moto_endpoint, s3_bucket, tmp_path, monkeypatch):
    """With EXPORT_WORK_URL the chunks' stage files are written to and read from S3 (moto's server), the
    file is the unsplit export's, and a delivered run leaves nothing there."""
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_customers(url, customer_rows())
    spec = {"name": "s3_fan", "model": "customers", "fields": FIELDS, "file_name": "s3_fan.{ext}"}
    whole = run_export(spec, url, tmp_path / "whole").files
    monkeypatch.setenv("EXPORT_WORK_URL", s3_work)
    blocked = downloads_folder(tmp_path / "fanned" / "instance" / "storage", "s3_fan")
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    fanned = {**spec, "parallel": {"chunks": 2}}
    failed = run_export(fanned, url, tmp_path / "fanned", raise_on_error=False)
    assert not failed.result.success
    prefix = f"work/{failed.result.run_id}/s3_fan/"
    stored = sorted(key.removeprefix(prefix) for key in s3_keys(moto_endpoint, s3_bucket) if key.startswith(prefix))
    assert stored == ["chunk_000.extract.arrow", "chunk_000.lines.arrow", "chunk_001.extract.arrow", "chunk_001.lines.arrow", "files/s3_fan.csv"]

    delivered = run_export(fanned, url, tmp_path / "delivered")
    assert delivered.files == whole
    assert not [key for key in s3_keys(moto_endpoint, s3_bucket) if f"/{delivered.result.run_id}/" in key]
