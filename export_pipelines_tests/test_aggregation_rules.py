"""Antavo's aggregation rules, audiences and KPI templates: every broken rule is a load error at its key path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import write_config
from export_pipelines_tests.test_spec_errors import only_problem

GROUP_STORE = {"from": "store_id", "aggregation": "group"}
COUNT_ROWS = {"from": "id", "to": "Rows", "aggregation": "count"}


def tx(*fields, **changes) -> dict:
    return {"name": "probe", "model": "transactions", "fields": list(fields), **changes}


# (case id, spec, key path, substrings of the message)
RULE_CASES = [
    ("no_group_field", tx(COUNT_ROWS, {"from": "amount", "aggregation": "sum"}), "fields",
     ["export probe", "at least one field needs `aggregation: group`"]),
    ("identifier_as_group", tx({"from": "number", "aggregation": "group"}, COUNT_ROWS), "fields[0].aggregation",
     ["export probe", "field number", "identifier fields cannot be a group"]),
    ("two_counts", tx(GROUP_STORE, COUNT_ROWS, {"from": "number", "aggregation": "count"}), "fields[2].aggregation",
     ["export probe", "field number", "only one count", "fields[1] already counts"]),
    ("sum_of_text", tx(GROUP_STORE, {"from": "channel", "aggregation": "sum"}), "fields[1].aggregation",
     ["export probe", "field channel", "sum needs a numeric field", "channel is string"]),
    ("avg_of_timestamp", tx(GROUP_STORE, {"from": "created_at", "aggregation": "avg"}), "fields[1].aggregation",
     ["field created_at", "avg needs a numeric field", "timestamp"]),
    ("sum_of_json_property", tx(GROUP_STORE, {"from": "metadata.channel", "aggregation": "sum"}), "fields[1].aggregation",
     ["field metadata.channel", "sum needs a numeric field"]),
    ("computed_field", {"name": "probe", "model": "customers",
                        "fields": [{"from": "gender", "aggregation": "group"}, {"from": "loyalty_points", "aggregation": "sum"}]},
     "fields[1].aggregation", ["export probe", "field loyalty_points", "computed fields cannot be aggregated"]),
    ("computed_field_as_group", {"name": "probe", "model": "customers",
                                 "fields": [{"from": "loyalty_points", "aggregation": "group"}, COUNT_ROWS]},
     "fields[0].aggregation", ["field loyalty_points", "computed fields cannot be aggregated"]),
    ("min_of_boolean", {"name": "probe", "model": "vouchers",
                        "fields": [{"from": "campaign", "aggregation": "group"}, {"from": "active", "aggregation": "min"}]},
     "fields[1].aggregation", ["field active", "min works on numbers, dates and text", "boolean"]),
    ("max_of_json_document", tx(GROUP_STORE, {"from": "metadata", "aggregation": "max"}), "fields[1].aggregation",
     ["field metadata", "max works on numbers, dates and text", "json"]),
    ("group_by_json_document", tx({"from": "metadata", "aggregation": "group"}, COUNT_ROWS), "fields[0].aggregation",
     ["group by one property"]),
    ("field_without_aggregation", tx(GROUP_STORE, {"from": "amount", "to": "Amount"}), "fields[1].aggregation",
     ["export probe", "field amount", "every field of an aggregating export needs an aggregation"]),
    ("order_with_aggregation", tx(GROUP_STORE, COUNT_ROWS, order="store_id"), "order",
     ["sorted by the group fields"]),
    ("unknown_aggregation", tx(GROUP_STORE, {"from": "amount", "aggregation": "median"}), "fields[1].aggregation",
     ["'median'", "one of: group, count, sum, avg, min, max"]),
]


@pytest.mark.parametrize(("spec", "key_path", "fragments"), [pytest.param(*case[1:], id=case[0]) for case in RULE_CASES])
def test_rule_error(tmp_path: Path, spec: dict, key_path: str, fragments: list[str]):
    problem = only_problem(tmp_path, spec)
    assert problem.file == "exports/probe.yaml"
    assert problem.key_path == key_path
    for fragment in fragments:
        assert fragment in problem.message, problem.message


def test_every_broken_rule_is_reported_at_once(tmp_path: Path):
    spec = tx({"from": "number", "aggregation": "group"}, {"from": "channel", "aggregation": "avg"}, {"from": "status"})
    config = load_config(write_config(tmp_path / "config", [spec]))
    assert sorted(p.key_path for p in config.problems) == [
        "fields[0].aggregation", "fields[1].aggregation", "fields[2].aggregation",
    ]
    assert not config.plans


def test_valid_aggregation_loads_with_min_max_on_text_dates_and_numbers(tmp_path: Path):
    spec = tx(
        GROUP_STORE,
        {"from": "metadata.channel", "aggregation": "group"},
        COUNT_ROWS,
        {"from": "channel", "to": "c_min", "aggregation": "min"},
        {"from": "created_at", "to": "t_max", "aggregation": "max"},
        {"from": "amount", "to": "a_min", "aggregation": "min"},
        {"from": "items_count", "to": "i_avg", "aggregation": "avg"},
    )
    config = load_config(write_config(tmp_path / "config", [spec]))
    assert not config.problems, [str(p) for p in config.problems]
    assert config.plans["probe"].aggregates


def test_aggregation_path_must_be_known(tmp_path: Path):
    problem = only_problem(tmp_path, tx(GROUP_STORE, COUNT_ROWS, aggregation_path="gpu"))
    assert problem.key_path == "aggregation_path"


# Audiences

AUDIENCE_CASES = [
    ("file_missing", {"customers_file": "audiences/nobody.csv"}, "audience.customers_file", ["does not exist"]),
    ("file_escapes_config", {"customers_file": "../outside.csv"}, "audience.customers_file", ["inside the config folder"]),
    ("file_absolute", {"customers_file": "/etc/passwd"}, "audience.customers_file", ["inside the config folder"]),
    ("unknown_query_model", {"query_model": "custmers"}, "audience.query_model", ["unknown model", "did you mean", "customers"]),
    ("bad_query_filter", {"query_model": "customers", "filters": {"contry": {"conditions": {"$is": "DE"}}}},
     "audience.filters.contry", ["no field 'contry'", "country"]),
    ("bad_query_filter_value", {"query_model": "customers", "filters": {"birthdate": {"conditions": {"$after": "soon"}}}},
     "audience.filters.birthdate.conditions.$after[0]", ["'soon'", "not a valid date"]),
    ("unknown_customer_field", {"query_model": "customers", "field": "client_id"}, "audience.field",
     ["no field 'client_id'", "customer_id"]),
    ("customer_field_of_wrong_type", {"query_model": "customers", "field": "created_at"}, "audience.field",
     ["timestamp", "a customer id is an integer or text field"]),
    ("unknown_audience_key", {"customers_file": "x.csv", "colum": "id"}, None, ["unknown key"]),
]


@pytest.mark.parametrize(("audience", "key_path", "fragments"), [pytest.param(*c[1:], id=c[0]) for c in AUDIENCE_CASES])
def test_audience_error(tmp_path: Path, audience: dict, key_path: str | None, fragments: list[str]):
    (tmp_path / "outside.csv").write_text("1\n")
    problem = only_problem(tmp_path, tx(GROUP_STORE, COUNT_ROWS, audience=audience))
    if key_path is not None:
        assert problem.key_path == key_path
    for fragment in fragments:
        assert fragment in problem.message, problem.message


def test_model_without_customer_id_needs_the_audience_field(tmp_path: Path):
    spec = {"name": "probe", "model": "stores", "fields": ["id"], "audience": {"query_model": "customers"}}
    problem = only_problem(tmp_path, spec)
    assert problem.key_path == "audience.field"
    assert "model stores has no customer_id field" in problem.message


def test_audience_and_field_problems_are_reported_together(tmp_path: Path):
    spec = tx(GROUP_STORE, {"from": "channel", "aggregation": "sum"}, audience={"customers_file": "missing.csv"})
    config = load_config(write_config(tmp_path / "config", [spec]))
    assert sorted(p.key_path for p in config.problems) == ["audience.customers_file", "fields[1].aggregation"]


# KPI templates

STORE_SALES = {
    "name": "store_sales",
    "model": "transactions",
    "dimensions": [{"from": "store_id", "to": "Store"}, "status", {"from": "channel", "to": "Channel"}],
    "measures": [COUNT_ROWS, {"from": "amount", "to": "Revenue", "aggregation": "sum"}],
    "filters": {"status": {"conditions": {"$in": ["PAID", "FULFILLED"]}}},
}


def kpi_config(tmp_path: Path, exports: list[dict], templates: list[dict]):
    folder = write_config(tmp_path / "config", exports)
    (folder / "kpis").mkdir()
    for template in templates:
        (folder / "kpis" / f"{template['name']}.yaml").write_text(yaml.safe_dump(template))
    return load_config(folder)


def kpi_export(**changes) -> dict:
    return {"name": "probe", "kpi": "store_sales", **changes}


TEMPLATE_CASES = [
    ("sum_of_text_measure", {**STORE_SALES, "measures": [COUNT_ROWS, {"from": "channel", "aggregation": "sum"}]},
     "measures[1].aggregation", ["sum needs a numeric field"]),
    ("identifier_dimension", {**STORE_SALES, "dimensions": ["number"]}, "dimensions[0].aggregation",
     ["identifier fields cannot be a group"]),
    ("unknown_dimension_field", {**STORE_SALES, "dimensions": ["store_id", "stauts"]}, "dimensions[1].from",
     ["no field 'stauts'", "status"]),
    ("measure_without_aggregation", {**STORE_SALES, "measures": ["amount"]}, "measures[0].aggregation",
     ["a measure needs count, sum, avg, min or max"]),
    ("dimension_with_measure_aggregation", {**STORE_SALES, "dimensions": [{"from": "store_id", "aggregation": "sum"}]},
     "dimensions[0].aggregation", ["a dimension is a group field"]),
    ("bad_default_filter", {**STORE_SALES, "filters": {"amount": {"conditions": {"$gt": "lots"}}}},
     "filters.amount.conditions.$gt[0]", ["'lots'", "not a valid decimal"]),
    ("unknown_template_key", {**STORE_SALES, "dimension": ["status"]}, "dimension", ["unknown key"]),
]


@pytest.mark.parametrize(("template", "key_path", "fragments"), [pytest.param(*c[1:], id=c[0]) for c in TEMPLATE_CASES])
def test_template_error_names_the_template_file(tmp_path: Path, template: dict, key_path: str, fragments: list[str]):
    config = kpi_config(tmp_path, [kpi_export()], [template])
    template_problems = [p for p in config.problems if p.file == "kpis/store_sales.yaml"]
    assert [p.key_path for p in template_problems] == [key_path], [str(p) for p in config.problems]
    for fragment in fragments:
        assert fragment in template_problems[0].message
    [export_problem] = config.invalid_files["exports/probe.yaml"]
    assert export_problem.key_path == "kpi"
    assert export_problem.message.startswith(f"KPI template store_sales does not load: {template_problems[0]}")


EXPORT_CASES = [
    ("unknown_template", kpi_export(kpi="store_sale"), "kpi", ["no KPI template 'store_sale'", "did you mean store_sales"]),
    ("unknown_dimension", kpi_export(dimensions=["Store", "Zone"]), "dimensions[1]",
     ["has no dimension 'Zone'", "Store, status, Channel"]),
    ("unknown_measure", kpi_export(measures=["Profit"]), "measures[0]", ["has no measure 'Profit'", "Rows, Revenue"]),
    ("model_given_too", kpi_export(model="transactions"), "model", ["comes from the KPI template store_sales"]),
    ("fields_given_too", kpi_export(fields=["id"]), "fields", ["comes from the KPI template"]),
    ("own_filter_unknown_field", kpi_export(filters={"chanel": {"conditions": {"$is": "web"}}}), "filters.chanel",
     ["no field 'chanel'", "channel"]),
    ("empty_dimension_list", kpi_export(dimensions=[]), "dimensions", ["at least 1"]),
    ("unknown_export_key", kpi_export(fromat="csv"), "fromat", ["unknown key 'fromat'", "format"]),
]


@pytest.mark.parametrize(("spec", "key_path", "fragments"), [pytest.param(*c[1:], id=c[0]) for c in EXPORT_CASES])
def test_kpi_export_error(tmp_path: Path, spec: dict, key_path: str, fragments: list[str]):
    config = kpi_config(tmp_path, [spec], [STORE_SALES])
    assert list(config.kpis) == ["store_sales"]
    [problem] = config.problems
    assert (problem.file, problem.key_path) == ("exports/probe.yaml", key_path)
    for fragment in fragments:
        assert fragment in problem.message, problem.message


def test_kpi_export_narrows_without_changing_the_template(tmp_path: Path):
    narrowed = kpi_export(dimensions=["Channel"], measures=["Revenue"], filters={"channel": {"conditions": {"$is": "web"}}})
    config = kpi_config(tmp_path, [narrowed, kpi_export(name="whole")], [STORE_SALES])
    assert not config.problems, [str(p) for p in config.problems]
    plan, whole = config.plans["probe"], config.plans["whole"]
    assert [f.header for f in plan.fields] == ["Channel", "Revenue"]
    assert [f.header for f in whole.fields] == ["Store", "status", "Channel", "Rows", "Revenue"]
    assert plan.kpi == whole.kpi == "store_sales"
    assert [c.source.field_name for c in plan.conditions] == ["channel"]
    assert [c.values for c in plan.template_conditions.conditions] == [("PAID", "FULFILLED")]
    assert config.kpis["store_sales"].model_dump(by_alias=True, exclude_defaults=True)["dimensions"][2] == {"from": "channel", "to": "Channel"}
