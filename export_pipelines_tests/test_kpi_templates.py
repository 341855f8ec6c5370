"""A KPI template narrowed by an export: its dimensions, measures, filters and audience, run on both databases."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import yaml

from export_pipelines_tests.conftest import run_export
from export_pipelines_tests.sample_data import TRANSACTIONS
from export_pipelines_tests.test_aggregation_rules import STORE_SALES


def test_template_narrowed_by_an_export(sample_source_url, tmp_path):
    kpis = tmp_path / "config" / "kpis"
    kpis.mkdir(parents=True)
    (kpis / "store_sales.yaml").write_text(yaml.safe_dump(STORE_SALES))
    template_text = (kpis / "store_sales.yaml").read_text()
    (tmp_path / "config" / "audiences").mkdir()
    (tmp_path / "config" / "audiences" / "members.csv").write_text("customer_id\n1\n2\n5\n")
    spec = {
        "name": "web_store_sales",
        "kpi": "store_sales",
        "dimensions": ["Channel", "Store"],
        "measures": ["Revenue", "Rows"],
        "filters": {"store_id": {"conditions": {"$in": [1, 2]}}},
        "audience": {"customers_file": "audiences/members.csv"},
    }
    run = run_export(spec, sample_source_url, tmp_path)

    # The template's default filter (PAID, FULFILLED) stays; the export adds stores 1-2 and the audience.
    groups: dict[tuple, list[Decimal]] = defaultdict(list)
    for t in TRANSACTIONS:
        if t["status"] in {"PAID", "FULFILLED"} and t["store_id"] in {1, 2} and t["customer_id"] in {1, 2, 5}:
            groups[(t["channel"], t["store_id"])].append(t["amount"])
    expected = "Channel,Store,Revenue,Rows\r\n" + "".join(
        f"{channel},{store},{sum(amounts)},{len(amounts)}\r\n" for (channel, store), amounts in sorted(groups.items())
    )
    [content] = run.files.values()
    assert content.decode() == expected
    assert len(groups) > 1
    # SQLite cannot add its REAL/INTEGER/text decimals exactly: decimal sums run over Arrow there.
    assert run.metadata["aggregation"] == ("arrow" if sample_source_url.startswith("sqlite") else "pushdown")
    assert (kpis / "store_sales.yaml").read_text() == template_text
