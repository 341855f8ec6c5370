"""Whole exports materialized on SQLite and PostgreSQL, file bytes against hand-written expectations."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import zipfile

import pandas as pd

from export_pipelines_tests.conftest import run_export
from export_pipelines_tests.sample_data import CUSTOMERS, TRANSACTIONS


def test_customer_export_bytes_with_default_replace_and_metadata(sample_source_url, tmp_path):
    spec = {
        "name": "customers_mapped",
        "model": "customers",
        "fields": [
            {"from": "id", "to": "CustomerID"},
            {"from": "name", "to": "Name"},
            {"from": "gender", "to": "Gender", "default": "unknown", "replace": {"female": "ladies"}},
            {"from": "metadata.tier", "to": "Tier", "default": "none"},
            {"from": "metadata.newsletter", "to": "Newsletter"},
            {"from": "orders_total_amount", "to": "Total"},
            {"from": "description", "to": "Note"},
            {"from": "created_at", "to": "Created"},
            {"from": "birthdate", "to": "Born"},
        ],
        "order": "id",
    }
    run = run_export(spec, sample_source_url, tmp_path)

    expected = (
        "CustomerID,Name,Gender,Tier,Newsletter,Total,Note,Created,Born\r\n"
        '1,Zoë Müller,ladies,gold,true,12.30,"Says ""hi"", often",2024-01-05T10:00:00Z,1990-05-17\r\n'
        '2,Łukasz Nowak,male,silver,false,-5.00,"line one\nline two",2024-02-29T23:59:59Z,\r\n'
        "3,Søren Kierkegaard,unknown,none,,,,2024-03-10T12:00:00Z,2000-01-01\r\n"
        "4,李雷,other,platinum,,123456789012.99,,2025-07-04T06:05:04Z,\r\n"
        "5,Ann O'Neil,ladies,none,true,0.10,100% loyal_customer,2025-12-31T23:00:00Z,1985-12-31\r\n"
    ).encode()
    [(name, content)] = run.files.items()
    assert content == expected
    assert re.fullmatch(r"customers_mapped_\d{8}T\d{6}Z\.csv", name)
    assert run.metadata["rows_written"] == 5
    assert run.metadata["rows_expected"] == 5
    assert run.metadata["file_size_bytes"] == len(expected)
    assert run.metadata["files"].records[0].data["sha256"] == hashlib.sha256(expected).hexdigest()
    [check] = run.result.get_asset_check_evaluations()
    assert check.passed


def test_psv_zip_with_filter_and_descending_order(sample_source_url, tmp_path):
    spec = {
        "name": "dach_customers",
        "model": "customer",
        "fields": [{"from": "id", "to": "ID"}, {"from": "address_city", "to": "City"}, {"from": "country"}],
        "filters": {"country": {"conditions": {"$in": ["DE", "AT"]}}},
        "order": "-created_at",
        "format": "psv",
        "compression": "zip",
        "line_ending": "lf",
    }
    run = run_export(spec, sample_source_url, tmp_path)
    dach = sorted((c for c in CUSTOMERS if c["address_country"] in {"DE", "AT"}), key=lambda c: c["created_at"], reverse=True)
    expected = "ID|City|country\n" + "".join(f"{c['id']}|{c['address_city']}|{c['address_country']}\n" for c in dach)
    [(name, content)] = run.files.items()
    assert name.endswith(".psv.zip")
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.namelist() == [name.removesuffix(".zip")]
        assert archive.read(name.removesuffix(".zip")).decode() == expected


def test_split_into_gzip_parts_each_with_header(sample_source_url, tmp_path):
    spec = {
        "name": "tx_parts",
        "model": "transactions",
        "fields": [{"from": "id"}, {"from": "amount"}, {"from": "metadata.channel", "to": "channel"}],
        "order": "id",
        "compression": "gzip",
        "max_rows_per_file": 10,
        "file_name": "tx_{run_time:%Y%m%d}_{part:03d}.{ext}",
    }
    run = run_export(spec, sample_source_url, tmp_path)
    names = sorted(run.files)
    assert [name.rsplit("_", 1)[1] for name in names] == ["001.csv.gz", "002.csv.gz", "003.csv.gz"]
    frames = [pd.read_csv(io.BytesIO(gzip.decompress(run.files[name])), dtype=str) for name in names]
    assert [len(frame) for frame in frames] == [10, 10, 3]
    combined = pd.concat(frames, ignore_index=True)
    expected = pd.DataFrame(
        {
            "id": [str(t["id"]) for t in TRANSACTIONS],
            "amount": [f"{t['amount']:.2f}" for t in TRANSACTIONS],
            "channel": ["app" if (t["id"] - 100) % 2 else "pos" for t in TRANSACTIONS],
        }
    )
    pd.testing.assert_frame_equal(combined, expected)


def test_empty_result_still_delivers_a_header_only_file(sample_source_url, tmp_path):
    spec = {
        "name": "nobody",
        "model": "customers",
        "fields": ["id", "email"],
        "filters": {"address_country": {"conditions": {"$is": "ZZ"}}},
    }
    run = run_export(spec, sample_source_url, tmp_path)
    assert list(run.files.values()) == [b"id,email\r\n"]
    assert run.metadata["rows_written"] == 0
