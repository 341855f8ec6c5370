"""models.yaml maps a logical model onto a company's own table and columns."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import run_export, write_config

MEMBERS = [
    (7, "x@example.com", "gold", "2024-05-01 09:00:00"),
    (3, None, "silver", "2024-04-01 09:00:00"),
    (9, "y@example.com", None, "2024-06-01 09:00:00"),
]
MODELS = {
    "models": {
        "customers": {
            "table": "members",
            "primary_key": "id",
            "event_date": "created_at",
            "updated_at": "created_at",
            "fields": {
                "id": {"column": "member_no"},
                "email": {"column": "mail"},
                "created_at": {"column": "joined"},
                "loyalty_tier": {"type": "string", "column": "tier"},
            },
        }
    }
}


def test_an_export_reads_the_mapped_table_and_an_added_field(tmp_path):
    url = f"sqlite:///{tmp_path / 'own.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE members (member_no INTEGER PRIMARY KEY, mail TEXT, tier TEXT, joined TEXT)"))
        connection.execute(
            sa.text("INSERT INTO members VALUES (:n, :m, :t, :j)"),
            [{"n": n, "m": m, "t": t, "j": j} for n, m, t, j in MEMBERS],
        )
    engine.dispose()
    spec = {
        "name": "own_members",
        "model": "customers",
        "fields": [{"from": "id"}, {"from": "email"}, {"from": "loyalty_tier", "default": "none"}, {"from": "created_at"}],
        "filters": {"created_at": {"conditions": {"$after": "2024-04-15T00:00:00Z"}}},
    }
    run = run_export(spec, url, tmp_path, models=MODELS)
    chosen = sorted((row for row in MEMBERS if row[3] > "2024-04-15"), key=lambda row: row[0])
    expected = "id,email,loyalty_tier,created_at\r\n" + "".join(
        f"{n},{m or ''},{t or 'none'},{j.replace(' ', 'T')}Z\r\n" for n, m, t, j in chosen
    )
    assert list(run.files.values()) == [expected.encode()]


def test_models_yaml_problems_name_the_model(tmp_path):
    models = {"models": {"customers": {"fields": {"brand_new": {"column": "x"}}}, "tickets": {"fields": {}}}}
    config = load_config(write_config(tmp_path, [{"name": "a", "model": "customers", "fields": ["id"]}], models=models))
    messages = [str(problem) for problem in config.problems]
    assert any("models.yaml" in m and "brand_new" in m and "needs a type" in m for m in messages), messages


def test_one_bad_model_keeps_the_good_override_of_another(tmp_path):
    """A decimal without a scale breaks customers only: transactions keeps its override, its exports load."""
    models = {
        "models": {
            "customers": {"fields": {"balance": {"type": "decimal"}}},
            "transactions": {"fields": {"sales_channel": {"type": "string", "column": "channel"}}},
        }
    }
    specs = [{"name": "members", "model": "customers", "fields": ["id"]}, {"name": "sales", "model": "orders", "fields": ["id", "sales_channel"]}]
    config = load_config(write_config(tmp_path, specs, models=models))
    assert list(config.plans) == ["sales"]
    assert [(p.file, p.line, p.key_path) for p in config.problems] == [
        ("models.yaml", 4, "models.customers.fields.balance"),
        ("exports/members.yaml", 3, "model"),
    ]
    assert config.problems[0].message == "a decimal field needs a scale (number of decimal places)"
    assert config.problems[1].message == f"model customers does not load: {config.problems[0]}"


def test_a_misspelt_model_key_is_named_with_the_key_it_meant(tmp_path):
    config = load_config(write_config(tmp_path, [], models={"models": {"customers": {"tabel": "crm.members"}}}))
    [problem] = config.problems
    assert str(problem) == "models.yaml: line 3: models.customers.tabel: unknown key 'tabel'; did you mean table?"


def test_a_misspelt_field_key_is_named_too(tmp_path):
    models = {"models": {"customers": {"fields": {"email": {"colum": "mail"}}}}}
    [problem] = load_config(write_config(tmp_path, [], models=models)).problems
    assert (problem.key_path, problem.message) == ("models.customers.fields.email.colum", "unknown key 'colum'; did you mean column?")


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("models:\n  customers: {table: [\n", "not valid YAML"),
        ("model:\n  customers:\n    table: crm.members\n", "unknown key 'model'; did you mean models?"),
    ],
    ids=["not_yaml", "misspelt_top_key"],
)
def test_a_models_file_in_doubt_loads_no_model(tmp_path, text, cause):
    """Which models it maps is unknown, so no export runs against the bundled mapping it may have changed."""
    folder = write_config(tmp_path, [{"name": "stores_list", "model": "stores", "fields": ["id"]}])
    (folder / "models.yaml").write_text(text)
    config = load_config(folder)
    assert config.plans == {}
    [file_problem, export_problem] = config.problems
    assert file_problem.file == "models.yaml" and cause in file_problem.message
    assert export_problem.message == f"model stores does not load: models.yaml does not load ({file_problem})"
