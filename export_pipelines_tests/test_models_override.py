"""models.yaml maps a logical model onto a company's own table and columns."""

from __future__ import annotations

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
