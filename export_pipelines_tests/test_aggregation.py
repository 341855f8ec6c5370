"""Aggregating exports on SQLite and PostgreSQL: totals checked against independent sums, both paths byte for byte."""

from __future__ import annotations

import datetime as dt
import io
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from export_pipelines.catalog.models import ModelsFile, load_builtin_catalog
from export_pipelines.catalog.sql_types import model_table
from export_pipelines_tests.conftest import run_export
from export_pipelines_tests.sample_data import TRANSACTIONS, utc


def only_file(run) -> str:
    [content] = run.files.values()
    return content.decode()


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + (f".{value.microsecond:06d}" if value.microsecond else "") + "Z"


def rounded(value: Decimal, places: int) -> str:
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def test_every_aggregation_against_independent_totals(sample_source_url, tmp_path):
    spec = {
        "name": "store_report",
        "model": "transactions",
        "fields": [
            {"from": "store_id", "to": "Store", "aggregation": "group"},
            {"from": "status", "aggregation": "group"},
            {"from": "id", "to": "Transactions", "aggregation": "count"},
            {"from": "amount", "to": "Revenue", "aggregation": "sum"},
            {"from": "amount", "to": "AvgBasket", "aggregation": "avg"},
            {"from": "amount", "to": "Smallest", "aggregation": "min"},
            {"from": "amount", "to": "Largest", "aggregation": "max"},
            {"from": "discount_amount", "to": "Discounts", "aggregation": "sum"},
            {"from": "discount_amount", "to": "AvgDiscount", "aggregation": "avg"},
            {"from": "discount_amount", "to": "DiscountsOrZero", "aggregation": "sum", "default": "0.00"},
            {"from": "items_count", "to": "Items", "aggregation": "sum"},
            {"from": "items_count", "to": "AvgItems", "aggregation": "avg"},
            {"from": "created_at", "to": "First", "aggregation": "min"},
            {"from": "created_at", "to": "Last", "aggregation": "max"},
            {"from": "metadata.channel", "to": "FirstChannel", "aggregation": "min"},
            {"from": "channel", "to": "LastChannel", "aggregation": "max"},
        ],
    }
    run = run_export(spec, sample_source_url, tmp_path)

    groups = defaultdict(list)
    for row in TRANSACTIONS:
        groups[(row["store_id"], row["status"])].append(row)
    lines = [",".join(field.get("to", field["from"]) for field in spec["fields"])]
    for (store, status), rows in sorted(groups.items()):
        amounts = [r["amount"] for r in rows]
        discounts = [r["discount_amount"] for r in rows if r["discount_amount"] is not None]
        items = [r["items_count"] for r in rows]
        lines.append(",".join([
            str(store), status, str(len(rows)),
            str(sum(amounts)), rounded(sum(amounts) / len(amounts), 4), str(min(amounts)), str(max(amounts)),
            str(sum(discounts)) if discounts else "", rounded(sum(discounts) / len(discounts), 4) if discounts else "",
            str(sum(discounts)) if discounts else "0.00",
            str(sum(items)), rounded(Decimal(sum(items)) / len(items), 2),
            iso(min(r["created_at"] for r in rows)), iso(max(r["created_at"] for r in rows)),
            min("app" if (r["id"] - 100) % 2 else "pos" for r in rows), max(r["channel"] for r in rows),
        ]))
    assert only_file(run) == "\r\n".join(lines) + "\r\n"
    # SQLite stores decimals as REAL, INTEGER or text and can add none of them exactly: its decimal sums run over Arrow.
    assert run.metadata["aggregation"] == ("arrow" if sample_source_url.startswith("sqlite") else "pushdown")
    assert run.metadata["rows_written"] == run.metadata["rows_expected"] == len(groups)
    [check] = run.result.get_asset_check_evaluations()
    assert check.passed


def test_revenue_matches_plain_sql_in_the_database(sample_source_url, tmp_path):
    spec = {
        "name": "revenue",
        "model": "transactions",
        "fields": [
            {"from": "channel", "aggregation": "group"},
            {"from": "amount", "to": "revenue", "aggregation": "sum"},
            {"from": "id", "to": "bills", "aggregation": "count"},
        ],
        "aggregation_path": "arrow",
    }
    run = run_export(spec, sample_source_url, tmp_path)
    engine = sa.create_engine(sample_source_url)
    integer = "SIGNED" if engine.dialect.name == "mysql" else "BIGINT"  # MySQL's CAST has no BIGINT
    with engine.connect() as connection:
        # Cents as integers: an independent exact sum on SQLite, whose decimals are floats.
        rows = connection.execute(sa.text(
            f"SELECT channel, SUM(CAST(ROUND(amount * 100) AS {integer})), COUNT(*) FROM transactions GROUP BY channel ORDER BY channel"
        )).all()
    engine.dispose()
    expected = pd.DataFrame({"channel": [r[0] for r in rows], "revenue": [f"{Decimal(r[1]) / 100:.2f}" for r in rows],
                             "bills": [str(r[2]) for r in rows]})
    actual = pd.read_csv(io.StringIO(only_file(run)), dtype=str)
    pd.testing.assert_frame_equal(actual, expected)
    assert run.metadata["aggregation"] == "arrow"


# A table of its own with the values aggregation gets wrong, declared through models.yaml.
SALES_MODELS = {"models": {"sales": {"table": "sales", "primary_key": "id", "fields": {
    "id": {"type": "integer", "identifier": True},
    "customer_id": {"type": "integer", "identifier": True},
    "region": {"type": "string"},
    "store": {"type": "string"},
    "amount": {"type": "decimal", "scale": 4},
    "quantity": {"type": "integer"},
    "sold_at": {"type": "timestamp"},
    "sold_on": {"type": "date"},
    "note": {"type": "string"},
}}}}


def sale(region, store, amount, quantity, note, day=1, micro=0) -> dict:
    return {"region": region, "store": store, "amount": None if amount is None else Decimal(amount), "quantity": quantity,
            "note": note, "sold_at": utc(2025, 3, day, 12, 0, 0).replace(microsecond=micro),
            "sold_on": None if day % 3 == 0 else dt.date(2025, 3, day)}


SALES = [
    sale("Zürich", "Ost", "0.1000", 1, "ärger", 1),
    sale("Zürich", "Ost", "0.2000", 2, "", 2, 250),
    sale("Zürich", "Ost", "-12345.6789", -3, "Zebra", 3),
    sale("zurich", "Ost", "99999999999.9999", 4, None, 4),
    sale("zurich", "Ost", "99999999999.9999", 5, "apple", 5),
    sale("東京", "渋谷", "0.0001", None, "東", 6, 999999),
    sale("東京", "渋谷", "-0.0001", 7, "西", 7),
    sale("", "", None, None, None, 8),
    sale(None, "", "1.2345", 1, "x", 9),
    sale(None, None, "-1.2345", 2, "y", 10),
    # 9 / 8 = 1.125 and -9 / 8 = -1.125: averages that round half away from zero to 1.13 / -1.13
    *[sale("Half", "up", "0.0001", q, "h", 11 + i) for i, q in enumerate([1, 1, 1, 1, 1, 1, 1, 2])],
    *[sale("Half", "down", "-0.0001", q, "h", 11 + i) for i, q in enumerate([-1, -1, -1, -1, -1, -1, -1, -2])],
    # 1 / 3 of a ten-thousandth: a repeating average
    *[sale("Third", "x", amount, 0, "t", 20 + i) for i, amount in enumerate(["0.0001", "0.0000", "0.0000"])],
]
# PostgreSQL only. Beyond a float's 15 digits (SQLite stores decimals as floats, a documented limitation);
# and 1/32 and -1/32, halfway between two ten-thousandths, which numeric(38, 4) rounds half away from zero
# as it stores them (0.0313, -0.0313), where SQLite keeps 0.03125, which a scale-4 field refuses (a bad row).
PRECISE_SALES = [
    sale("Precise", "pg", "12345678901234.5678", 1, "p", 23),
    sale("Precise", "pg", "0.0003", 1, "p", 24),
    sale("Tie", "x", "0.03125", 1, "t", 25),
    sale("Tie", "x", "0.03125", 1, "t", 26),
    sale("Tie", "y", "-0.03125", 1, "t", 27),
]


def exact_decimals(url: str) -> bool:
    """PostgreSQL's numeric and MySQL's DECIMAL store decimals exactly (at the column's scale); SQLite does not."""
    return not url.startswith("sqlite")


@pytest.fixture
def sales_source_url(sample_source_url: str) -> str:
    catalog = load_builtin_catalog().with_overrides(ModelsFile.model_validate(SALES_MODELS))
    metadata = sa.MetaData()
    table = model_table(catalog.get("sales"), metadata)
    engine = sa.create_engine(sample_source_url)
    metadata.create_all(engine)
    rows = SALES + (PRECISE_SALES if exact_decimals(sample_source_url) else [])
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": i + 1, "customer_id": 1 + i % 5, **row} for i, row in enumerate(rows)])
    engine.dispose()
    return sample_source_url


def sales_spec(name: str, **changes) -> dict:
    fields = [
        {"from": "region", "aggregation": "group"},
        {"from": "store", "aggregation": "group"},
        {"from": "id", "to": "sales", "aggregation": "count"},
    ]
    for source in ("amount", "quantity"):
        fields += [{"from": source, "to": f"{source}_{kind}", "aggregation": kind} for kind in ("sum", "avg", "min", "max")]
    for source in ("sold_at", "sold_on", "note"):
        fields += [{"from": source, "to": f"{source}_{kind}", "aggregation": kind} for kind in ("min", "max")]
    return {"name": name, "model": "sales", "fields": fields, **changes}


def test_pushdown_and_arrow_write_identical_bytes(sales_source_url, tmp_path):
    pushed = run_export(sales_spec("sales_report"), sales_source_url, tmp_path / "pushdown", models=SALES_MODELS)
    # Batches of 3 rows: the Arrow path combines partial aggregates across many batches.
    arrow = run_export(sales_spec("sales_report", aggregation_path="arrow", batch_size=3), sales_source_url, tmp_path / "arrow",
                       models=SALES_MODELS)
    # SQLite's decimals (REAL, INTEGER or text) cannot be added exactly by SQLite: its "auto" runs over Arrow too.
    pushed_path = "arrow" if sales_source_url.startswith("sqlite") else "pushdown"
    assert (pushed.metadata["aggregation"], arrow.metadata["aggregation"]) == (pushed_path, "arrow")
    assert only_file(pushed) == only_file(arrow)
    for run in (pushed, arrow):
        [check] = run.result.get_asset_check_evaluations()
        assert check.passed

    table = pd.read_csv(io.StringIO(only_file(arrow)), dtype=str, keep_default_na=False).set_index(["region", "store"])
    # NULL and "" are one empty group; groups sort by code point, so "Zürich" < "zurich" < "東京".
    loaded = SALES + (PRECISE_SALES if exact_decimals(sales_source_url) else [])
    assert list(table.index) == sorted({(row["region"] or "", row["store"] or "") for row in loaded})
    empty = table.loc[("", "")]
    assert (empty["sales"], empty["amount_sum"], empty["amount_min"], empty["note_min"], empty["note_max"]) == ("3", "0.0000", "-1.2345", "", "y")
    assert table.loc[("Half", "up"), "quantity_avg"] == "1.13"
    assert table.loc[("Half", "down"), "quantity_avg"] == "-1.13"
    assert table.loc[("Third", "x"), "amount_avg"] == "0.000033"
    assert table.loc[("zurich", "Ost"), "amount_sum"] == "199999999999.9998"
    assert table.loc[("zurich", "Ost"), "note_min"] == ""  # an empty value is always the min
    assert table.loc[("Zürich", "Ost"), "amount_sum"] == "-12345.3789"
    assert table.loc[("Zürich", "Ost"), "note_min"] == ""
    assert table.loc[("Zürich", "Ost"), "note_max"] == "ärger"
    assert table.loc[("Zürich", "Ost"), "sold_at_max"] == "2025-03-03T12:00:00Z"
    assert table.loc[("Zürich", "Ost"), "sold_on_max"] == "2025-03-02"
    assert table.loc[("東京", "渋谷"), "amount_sum"] == "0.0000"
    assert table.loc[("東京", "渋谷"), "sold_at_min"] == "2025-03-06T12:00:00.999999Z"
    if exact_decimals(sales_source_url):
        assert (table.loc[("Tie", "x"), "amount_sum"], table.loc[("Tie", "x"), "amount_max"]) == ("0.0626", "0.0313")
        assert table.loc[("Tie", "y"), "amount_sum"] == "-0.0313"
        # A plain export of the same rows writes the values that add up to the pushed-down sums.
        ties = {"region": {"conditions": {"$is": "Tie"}}}
        plain = run_export({"name": "tie_rows", "model": "sales", "fields": ["store", "amount"], "filters": ties, "order": ["id"]},
                           sales_source_url, tmp_path / "plain", models=SALES_MODELS)
        assert only_file(plain) == "store,amount\r\nx,0.0313\r\nx,0.0313\r\ny,-0.0313\r\n"
        assert table.loc[("Precise", "pg"), "amount_sum"] == "12345678901234.5681"
        assert table.loc[("Precise", "pg"), "amount_avg"] == "6172839450617.284050"


def test_replace_and_default_on_groups_run_before_grouping_over_arrow(sales_source_url, tmp_path):
    spec = {
        "name": "regions",
        "model": "sales",
        "fields": [
            {"from": "region", "to": "Region", "aggregation": "group", "default": "n/a", "replace": {"zurich": "Zürich"}},
            {"from": "id", "to": "Sales", "aggregation": "count"},
            {"from": "amount", "to": "Amount", "aggregation": "sum", "default": "0"},
            {"from": "note", "to": "LastNote", "aggregation": "max", "replace": {"y": "why"}},
        ],
    }
    run = run_export(spec, sales_source_url, tmp_path, models=SALES_MODELS)
    assert run.metadata["aggregation"] == "arrow"

    loaded = SALES + (PRECISE_SALES if exact_decimals(sales_source_url) else [])
    groups = defaultdict(list)
    for row in loaded:
        region = row["region"] or "n/a"
        groups["Zürich" if region == "zurich" else region].append(row)
    lines = ["Region,Sales,Amount,LastNote"]
    for region, rows in sorted(groups.items()):
        # Stored at the field's scale 4, rounded half away from zero (the Tie rows' 0.03125 is 0.0313).
        amounts = [r["amount"].quantize(Decimal("0.0001"), ROUND_HALF_UP) for r in rows if r["amount"] is not None]
        last_note = max(r["note"] or "" for r in rows)
        lines.append(f"{region},{len(rows)},{sum(amounts) if amounts else '0'},{'why' if last_note == 'y' else last_note}")
    assert only_file(run) == "\r\n".join(lines) + "\r\n"
    assert "n/a,3,0.0000,why" in lines
    assert run.metadata["rows_written"] == run.metadata["rows_expected"] == len(groups)


def test_no_matching_rows_gives_a_header_only_file_on_both_paths(sales_source_url, tmp_path):
    nothing = {"region": {"conditions": {"$is": "Atlantis"}}}
    for path in ("auto", "arrow"):
        run = run_export(sales_spec("nothing", filters=nothing, aggregation_path=path), sales_source_url, tmp_path / path,
                         models=SALES_MODELS)
        assert only_file(run) == ",".join(f.get("to", f["from"]) for f in sales_spec("x")["fields"]) + "\r\n"
        assert run.metadata["rows_written"] == 0


def test_group_by_json_property_pushed_down_and_over_arrow(sample_source_url, tmp_path):
    def spec(path: str) -> dict:
        return {
            "name": "by_source",
            "model": "transactions",
            "fields": [
                {"from": "metadata.channel", "to": "source", "aggregation": "group"},
                {"from": "id", "to": "bills", "aggregation": "count"},
                {"from": "points_earned", "to": "points", "aggregation": "sum"},
            ],
            "aggregation_path": path,
        }

    pushed = run_export(spec("auto"), sample_source_url, tmp_path / "auto")
    arrow = run_export(spec("arrow"), sample_source_url, tmp_path / "arrow")
    points: dict[str, list[int]] = defaultdict(list)
    for t in TRANSACTIONS:
        points["app" if (t["id"] - 100) % 2 else "pos"].append(t["points_earned"])
    expected = "source,bills,points\r\n" + "".join(f"{k},{len(v)},{sum(v)}\r\n" for k, v in sorted(points.items()))
    assert only_file(pushed) == only_file(arrow) == expected
    assert (pushed.metadata["aggregation"], arrow.metadata["aggregation"]) == ("pushdown", "arrow")


def test_a_numeric_group_with_a_default_sorts_by_number_with_the_defaulted_group_first(sales_source_url, tmp_path):
    # quantity in SALES: NULL, negatives and positives, which sort differently as text and as numbers.
    def spec(name: str, path: str, default: str | None = None) -> dict:
        group = {"from": "quantity", "to": "q", "aggregation": "group", **({"default": default} if default else {})}
        return {"name": name, "model": "sales", "fields": [group, {"from": "id", "to": "n", "aggregation": "count"}],
                "aggregation_path": path, "batch_size": 4}

    pushed = run_export(spec("by_quantity", "auto"), sales_source_url, tmp_path / "pushdown", models=SALES_MODELS)
    arrow = run_export(spec("by_quantity", "arrow"), sales_source_url, tmp_path / "arrow", models=SALES_MODELS)
    defaulted = run_export(spec("by_quantity", "auto", "none"), sales_source_url, tmp_path / "default", models=SALES_MODELS)
    assert (pushed.metadata["aggregation"], defaulted.metadata["aggregation"]) == ("pushdown", "arrow")

    counts: dict[int | None, int] = defaultdict(int)
    for row in SALES + (PRECISE_SALES if exact_decimals(sales_source_url) else []):
        counts[row["quantity"]] += 1
    numbers = sorted(q for q in counts if q is not None)
    expected = ["q,n", f",{counts[None]}", *(f"{q},{counts[q]}" for q in numbers)]
    assert numbers[:3] == [-3, -2, -1]  # as text they would sort -1, -2, -3
    assert only_file(pushed) == only_file(arrow) == "\r\n".join(expected) + "\r\n"
    assert only_file(defaulted) == "\r\n".join(["q,n", f"none,{counts[None]}", *expected[2:]]) + "\r\n"
