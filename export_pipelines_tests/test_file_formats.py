"""JSON Lines and Parquet: the same rows as the CSV, each value kept as its kind, read back and compared
value by value with the source rows as written by hand (test_file_dialect.ROWS)."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import write_config
from export_pipelines_tests.stage_runs import run_stages
from export_pipelines_tests.test_file_dialect import DOCUMENT, FIELDS, MODELS, ROWS, fast, people, people_with_documents, spec  # noqa: F401

EXPECTED_OBJECTS = [
    {
        "id": row_id,
        "name": name,
        "amount": None if amount is None else decimal.Decimal(amount),
        "born": born.isoformat() if born else None,
        "seen": seen.isoformat().replace("+00:00", "Z") if seen else None,
        "doc": json.loads(DOCUMENT, parse_float=decimal.Decimal) if row_id == 1 else None,
    }
    for row_id, name, amount, born, seen in ROWS
]


def test_json_lines_keep_each_value_as_its_json_kind(people_with_documents, fast, tmp_path, monkeypatch):
    url, _ = people_with_documents
    run = run_stages(url, tmp_path, spec("lines", fields=[*FIELDS, "doc"], format="jsonl", compression="gzip", max_rows_per_file=3),
                     fast=fast, monkeypatch=monkeypatch, models=MODELS)
    assert [file.path.name for file in run.files] == ["part1.jsonl.gz", "part2.jsonl.gz", "part3.jsonl.gz"]
    text = b"".join(gzip.decompress(file.path.read_bytes()) for file in run.files).decode()
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == len(ROWS) + 1
    assert [json.loads(line, parse_float=decimal.Decimal) for line in lines[:-1]] == EXPECTED_OBJECTS
    # Decimals are numbers with exactly the field's scale; text escapes per RFC 8259; keys in spec order.
    assert lines[1].startswith('{"id":2,"name":"","amount":-0.05,"born":null,"seen":"1969-12-31T23:00:00Z","doc":null}')
    assert lines[7] == '{"id":8,"name":"\\tx\\r\\ny","amount":null,"born":null,"seen":null,"doc":null}'
    assert lines[0].startswith('{"id":1,"name":"Anna; \\"A\\", Ő","amount":12.50,')


def test_parquet_keeps_the_arrow_types(people_with_documents, fast, tmp_path, monkeypatch):
    url, _ = people_with_documents
    renamed = [{"from": "id", "to": "CustomerID"}, *FIELDS[1:], "doc"]
    run = run_stages(url, tmp_path, spec("columns", fields=renamed, format="parquet"), fast=fast, monkeypatch=monkeypatch, models=MODELS)
    [file] = run.files
    table = pq.read_table(file.path)
    assert table.schema.names == ["CustomerID", "name", "amount", "born", "seen", "doc"]
    assert table.schema.field("amount").type == pa.decimal128(38, 2)
    assert table.schema.field("seen").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("born").type == pa.date32()
    rows = table.to_pylist()
    assert [(r["CustomerID"], r["name"], r["amount"], r["born"], r["seen"]) for r in rows] == [
        (i, n, None if a is None else decimal.Decimal(a), b, s) for i, n, a, b, s in ROWS
    ]
    assert json.loads(rows[0]["doc"], parse_float=decimal.Decimal) == EXPECTED_OBJECTS[0]["doc"]
    assert file.rows == len(ROWS)


def test_an_empty_parquet_file_still_has_its_columns(people, tmp_path, monkeypatch):
    url, _ = people
    run = run_stages(url, tmp_path, spec("none", fields=["id", "amount"], format="parquet", filters={"id": {"conditions": {"$in": [999]}}}),
                     fast=True, monkeypatch=monkeypatch, models=MODELS)
    table = pq.read_table(run.files[0].path)
    assert (table.num_rows, table.schema.names, table.schema.field("amount").type) == (0, ["id", "amount"], pa.decimal128(38, 2))


@pytest.mark.parametrize("key", [{"delimiter": ";"}, {"encoding": "windows-1252"}, {"line_ending": "lf"}, {"header": False}])
@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_csv_dialect_keys_are_refused_for_other_formats(tmp_path, key, file_format):
    config = load_config(write_config(tmp_path, [spec("other", format=file_format, **key)], models=MODELS))
    [problem] = config.problems
    assert problem.key_path == next(iter(key))
    assert f"applies to csv and psv files; format {file_format} has its own rules" in problem.message


def test_a_pretty_printed_json_document_stays_on_its_line(people_with_documents, tmp_path, monkeypatch):
    url, dialect = people_with_documents
    pretty = '{\n  "tier": "pretty",\r\n  "n": [1,\n 2]\n}'
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        # PostgreSQL's json (not jsonb) keeps the text as written, as SQLite does.
        if dialect == "postgresql":
            connection.execute(sa.text("ALTER TABLE people ALTER COLUMN doc TYPE json USING doc::json"))
        connection.execute(sa.text(f"UPDATE people SET doc = {'CAST(:d AS json)' if dialect == 'postgresql' else ':d'} WHERE id = 2"), {"d": pretty})
    engine.dispose()
    run = run_stages(url, tmp_path, spec("pretty", fields=["id", "doc"], format="jsonl"), fast=True, monkeypatch=monkeypatch, models=MODELS)
    lines = run.content.decode().split("\n")
    assert len(lines) == len(ROWS) + 1
    assert json.loads(lines[1]) == {"id": 2, "doc": {"tier": "pretty", "n": [1, 2]}}


def test_parquet_sums_are_decimal128_as_readers_take_them(people, tmp_path, monkeypatch):
    url, _ = people
    fields = [{"from": "born", "aggregation": "group"}, {"from": "amount", "to": "total", "aggregation": "sum"},
              {"from": "amount", "to": "mean", "aggregation": "avg"}]
    grouped = {key: value for key, value in spec("sums", fields=fields, format="parquet").items() if key != "order"}
    run = run_stages(url, tmp_path, grouped, fast=True, monkeypatch=monkeypatch, models=MODELS)
    table = pq.read_table(run.files[0].path)
    assert (table.schema.field("total").type, table.schema.field("mean").type) == (pa.decimal128(38, 2), pa.decimal128(38, 4))
    by_day = {row["born"]: (row["total"], row["mean"]) for row in table.to_pylist()}
    assert by_day[None] == (decimal.Decimal("-0.05"), decimal.Decimal("-0.0250"))  # -0.05 + 0.00 (NULLs not counted)
    assert by_day[dt.date(2024, 2, 29)] == (decimal.Decimal("3.00"), decimal.Decimal("3.0000"))
