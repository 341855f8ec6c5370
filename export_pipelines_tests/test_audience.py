"""Audiences: only rows of the customers in a file (100 000 ids) or of another model's filtered rows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from export_pipelines.spec.plan import SourceRef
from export_pipelines.stages.audience import AudienceFileError, read_customer_ids
from export_pipelines_tests.conftest import run_export
from export_pipelines_tests.sample_data import CUSTOMERS, TRANSACTIONS

AUDIENCE_IDS = 100_000


def write_audience(tmp_path: Path, lines: list[str]) -> None:
    folder = tmp_path / "config" / "audiences"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vip.csv").write_text("".join(f"{line}\n" for line in lines))


def test_audience_file_of_100000_ids_filters_an_aggregated_export(sample_source_url, tmp_path):
    members = {1, 3}
    # Mostly ids no source row has, and a few twice: the file is a list, not a set.
    ids = ["customer_id", "3", *(str(1_000_000 + i) for i in range(AUDIENCE_IDS - 3)), "1", "3"]
    write_audience(tmp_path, ids)
    spec = {
        "name": "vip_status",
        "model": "transactions",
        "fields": [{"from": "status", "aggregation": "group"}, {"from": "id", "to": "bills", "aggregation": "count"}],
        "audience": {"customers_file": "audiences/vip.csv"},
    }
    run = run_export(spec, sample_source_url, tmp_path)
    counts = Counter(t["status"] for t in TRANSACTIONS if t["customer_id"] in members)
    expected = "status,bills\r\n" + "".join(f"{status},{n}\r\n" for status, n in sorted(counts.items()))
    [content] = run.files.values()
    assert content.decode() == expected
    assert run.metadata["aggregation"] == "pushdown"


def test_audience_file_filters_rows_of_a_plain_export(sample_source_url, tmp_path):
    write_audience(tmp_path, ["5", " 2 ", "", "404"])
    spec = {"name": "vip_bills", "model": "transactions", "fields": ["id", "customer_id"], "order": "id",
            "audience": {"customers_file": "audiences/vip.csv"}}
    run = run_export(spec, sample_source_url, tmp_path)
    expected = "id,customer_id\r\n" + "".join(f"{t['id']},{t['customer_id']}\r\n" for t in TRANSACTIONS if t["customer_id"] in {2, 5})
    assert list(run.files.values())[0].decode() == expected
    assert run.metadata["rows_written"] == run.metadata["rows_expected"]


def test_query_model_audience_is_a_semi_join(sample_source_url, tmp_path):
    spec = {
        "name": "german_bills",
        "model": "transactions",
        "fields": [{"from": "channel", "aggregation": "group"}, {"from": "amount", "to": "revenue", "aggregation": "sum"}],
        "audience": {"query_model": "customers", "filters": {"country": {"conditions": {"$in": ["DE"]}}}},
    }
    run = run_export(spec, sample_source_url, tmp_path)
    germans = {c["id"] for c in CUSTOMERS if c["address_country"] == "DE"}
    revenue: dict[str, object] = {}
    for t in TRANSACTIONS:
        if t["customer_id"] in germans:
            revenue[t["channel"]] = revenue.get(t["channel"], 0) + t["amount"]
    expected = "channel,revenue\r\n" + "".join(f"{channel},{total}\r\n" for channel, total in sorted(revenue.items()))
    assert list(run.files.values())[0].decode() == expected


def test_query_model_audience_on_the_exported_model_itself(sample_source_url, tmp_path):
    spec = {"name": "with_email", "model": "customers", "fields": ["id"], "order": "id",
            "audience": {"query_model": "customers", "filters": {"email": {"conditions": {"$has_value": True}}}}}
    run = run_export(spec, sample_source_url, tmp_path)
    assert list(run.files.values())[0].decode() == "id\r\n" + "".join(f"{c['id']}\r\n" for c in CUSTOMERS if c["email"])


INTEGER_CUSTOMER = SourceRef("customer_id", "customer_id", "integer")


@pytest.mark.parametrize(("lines", "expected"), [
    (["customer_id", "7", "8", "7"], [7, 8]),
    (["-1", "+2", "  3  ", ""], [-1, 2, 3]),
    (["id"], []),
])
def test_reading_customer_ids(tmp_path: Path, lines: list[str], expected: list[int]):
    path = tmp_path / "ids.csv"
    path.write_text("\n".join(lines) + "\n")
    assert sorted(read_customer_ids(path, INTEGER_CUSTOMER).to_pylist()) == expected


def test_a_bad_id_is_named(tmp_path: Path):
    path = tmp_path / "ids.csv"
    path.write_text("customer_id\n1\nC-002\n")
    with pytest.raises(AudienceFileError, match="'C-002' is not an integer customer id"):
        read_customer_ids(path, INTEGER_CUSTOMER)
