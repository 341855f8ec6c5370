"""`validate --check-source`: the mapped tables reflected from a real SQLite and PostgreSQL database."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from export_pipelines.demo.generator import generate_demo_database
from export_pipelines.spec.loader import bundled_demo_config, load_config
from export_pipelines.spec.source_check import check_source
from export_pipelines.stages.extract import extract_to_stage_file
from export_pipelines.stages.stage_files import read_batches
from export_pipelines_tests.conftest import write_config

CLI = str(Path(sys.prefix) / "bin" / "export-pipelines")

# A company's member table, mapped onto the customers model; every column is there, but five are of a
# type the extract cannot read as its field's type. The column types differ per database so each is wrong there.
MEMBERS_DDL = {
    "sqlite": "CREATE TABLE crm_members (member_no BIGINT PRIMARY KEY, mail TEXT, tier INTEGER, joined INTEGER,"
    " balance TEXT, is_vip TEXT, meta INTEGER, pv NUMERIC(12, 4))",
    "postgresql": "CREATE TABLE crm_members (member_no bigint PRIMARY KEY, mail text, tier integer, joined date,"
    " balance double precision, is_vip integer, meta text, pv numeric(12, 4))",
}
MEMBERS = [(1, "a@example.com", 3, "2024-05-01"), (2, "b@example.com", 1, "2024-05-02")]
MODELS = """models:
  customers:
    table: crm_members
    fields:
      id: {column: member_no}
      email: {column: mail}
      loyalty_tier: {type: string, column: tier}
      created_at: {column: joined}
      balance: {type: decimal, scale: 2}
      is_vip: {type: boolean}
      metadata: {column: meta}
      points_value: {type: decimal, scale: 2, column: pv}
      phone: {column: phone_no}
      gender: {column: tierr}
  tickets:
    table: tickets_tbl
    primary_key: id
    fields:
      id: {type: integer}
"""
EXPORT = {"name": "members_export", "model": "customers", "fields": ["id", "email", "country"]}

# (key path, line in MODELS, message) per database, written out by hand from the DDL above.
COMMON = [
    ("models.customers.fields.phone.column", 13, "table crm_members has no column phone_no (mapped in models.yaml)"),
    ("models.customers.fields.country.column", 4, "table crm_members has no column address_country (read by export members_export)"),
    ("models.customers.fields.gender.column", 14, "table crm_members has no column tierr; did you mean tier? (mapped in models.yaml)"),
    ("models.tickets.table", 16, "table tickets_tbl does not exist in the source (mapped in models.yaml)"),
]
EXPECTED = {
    # SQLite reads an INTEGER column as text (its digits) and number text as a decimal (every digit): those pass there.
    "sqlite": [
        ("models.customers.fields.created_at.type", 8, "column crm_members.joined is INTEGER, which cannot be read as a timestamp: a TEXT column holding ISO 8601 text (mapped in models.yaml)"),
        ("models.customers.fields.is_vip.type", 10, "column crm_members.is_vip is TEXT, which cannot be read as a boolean: an INTEGER or NUMERIC column (it would store the integers as text or REAL) (mapped in models.yaml)"),
    ],
    "postgresql": [
        ("models.customers.fields.loyalty_tier.type", 7, "column crm_members.tier is INTEGER, which cannot be read as a string: a text column (text, varchar or char) (mapped in models.yaml)"),
        ("models.customers.fields.created_at.type", 8, "column crm_members.joined is DATE, which cannot be read as a timestamp: a timestamp column (mapped in models.yaml)"),
        ("models.customers.fields.balance.type", 9, "column crm_members.balance is DOUBLE PRECISION, which cannot be read as a decimal: numeric or an integer column (a float column's values are not exact) (mapped in models.yaml)"),
        ("models.customers.fields.is_vip.type", 10, "column crm_members.is_vip is INTEGER, which cannot be read as a boolean: a boolean column (mapped in models.yaml)"),
        ("models.customers.fields.metadata.type", 11, "column crm_members.meta is TEXT, which cannot be read as a json: a json or jsonb column (properties such as metadata.tier are read with ->>) (mapped in models.yaml)"),
        ("models.customers.fields.points_value.type", 12, "column crm_members.pv is NUMERIC(12, 4), which cannot be read as a decimal: a scale of at most 2 (values with 4 places would not fit the field's scale), or scale: 4 in models.yaml (mapped in models.yaml)"),
    ],
}


@pytest.fixture(params=["sqlite", "postgresql"])
def source(request, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", f"sqlite:///{tmp_path / 'source.sqlite'}"
    return "postgresql", request.getfixturevalue("postgres_schema_url")


def members_config(tmp_path: Path, url: str, dialect: str) -> Path:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(MEMBERS_DDL[dialect])
        for number, mail, tier, joined in MEMBERS:
            connection.execute(
                sa.text("INSERT INTO crm_members (member_no, mail, tier, joined, balance, is_vip) VALUES (:n, :m, :t, :j, 12.345, 1)"),
                {"n": number, "m": mail, "t": tier, "j": joined if dialect == "postgresql" else 20240501},
            )
    engine.dispose()
    folder = write_config(tmp_path / "config", [EXPORT])
    (folder / "models.yaml").write_text(MODELS)
    return folder


def run_validate(folder: Path, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EXPORT_SOURCE_URL": url}
    return subprocess.run([CLI, "validate", "--config", str(folder), "--check-source"], capture_output=True, text=True, env=env, timeout=120)


def test_every_missing_table_and_column_and_unreadable_type_is_reported(tmp_path, source):
    dialect, url = source
    folder = members_config(tmp_path, url, dialect)
    config = load_config(folder)
    assert config.problems == []
    engine = sa.create_engine(url)
    try:
        found = check_source(config, engine)
    finally:
        engine.dispose()
    expected = sorted(COMMON + EXPECTED[dialect])
    assert sorted((p.key_path, p.line, p.message) for p in found) == expected
    assert {p.file for p in found} == {"models.yaml"}

    result = run_validate(folder, url)
    assert result.returncode == 1, result.stdout + result.stderr
    for key_path, line, message in expected:
        assert f"ERROR models.yaml: line {line}: {key_path}: {message}" in result.stdout.splitlines()
    assert f"1 valid export(s), 0 problem(s); source {sa.make_url(url).render_as_string(hide_password=True)}" in result.stdout
    assert f": {len(expected)} problem(s)" in result.stdout


def test_what_the_check_refuses_the_extract_cannot_read(tmp_path, source):
    """The verdicts agree with the extract itself: a column passed is read exactly; a refused one fails the
    extract, or (a float as a decimal) comes out rounded to the field's scale, which the rules forbid."""
    dialect, url = source
    folder = members_config(tmp_path, url, dialect)
    refused = {"sqlite": {"created_at": "joined", "is_vip": "is_vip"}, "postgresql": {"created_at": "joined", "is_vip": "is_vip", "balance": "balance"}}[dialect]
    specs = [{"name": "read_email", "model": "customers", "fields": ["id", "email"]},
             {"name": "read_loyalty_tier", "model": "customers", "fields": ["id", "loyalty_tier"]}]
    specs += [{"name": f"read_{field}", "model": "customers", "fields": ["id", field]} for field in refused]
    write_config(folder, specs)
    config = load_config(folder)
    engine = sa.create_engine(url)
    try:
        reported = {p.key_path for p in check_source(config, engine)}
        assert "models.customers.fields.email.type" not in reported
        assert extracted(engine, config.plans["read_email"], tmp_path) == [(number, mail) for number, mail, _, _ in MEMBERS]
        if dialect == "sqlite":  # an INTEGER column read as text: its digits
            assert "models.customers.fields.loyalty_tier.type" not in reported
            assert extracted(engine, config.plans["read_loyalty_tier"], tmp_path) == [(number, str(tier)) for number, _, tier, _ in MEMBERS]
        for field, column in refused.items():
            assert f"models.customers.fields.{field}.type" in reported
            with engine.connect() as connection:
                as_stored = [tuple(row) for row in connection.execute(sa.text(f"SELECT member_no, CAST({column} AS TEXT) FROM crm_members ORDER BY member_no"))]
            try:
                rows = extracted(engine, config.plans[f"read_{field}"], tmp_path)
            except Exception:  # noqa: BLE001 - whatever the database or the conversion raises: the run fails
                continue
            assert [(number, str(value)) for number, value in rows] != as_stored, field
    finally:
        engine.dispose()


def extracted(engine: sa.Engine, plan, tmp_path: Path) -> list[tuple]:
    result = extract_to_stage_file(engine, plan, tmp_path / f"{plan.name}.arrow", batch_size=10)
    return [row for batch in read_batches(result.path, 10) for row in zip(*(c.to_pylist() for c in batch.columns), strict=True)]


def test_the_demo_config_matches_the_demo_database(tmp_path, source):
    _, url = source
    generate_demo_database(url, customers=20, seed=3)
    result = run_validate(bundled_demo_config(), url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 valid export(s), 0 problem(s); source " in result.stdout
    assert result.stdout.rstrip().endswith(": 0 problem(s)")


def test_the_demo_config_matches_the_demo_mariadb_database(mariadb_database_url):
    """MariaDB keeps JSON as LONGTEXT and booleans as TINYINT(1): readable, their values checked row by row."""
    generate_demo_database(mariadb_database_url, customers=20, seed=3)
    engine = sa.create_engine(mariadb_database_url)
    with engine.begin() as connection:  # a native JSON column and a BIT(1) boolean read too
        connection.exec_driver_sql("ALTER TABLE vouchers MODIFY metadata JSON, MODIFY active BIT(1)")
    engine.dispose()
    result = run_validate(bundled_demo_config(), mariadb_database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith(": 0 problem(s)")


def test_an_unreachable_source_is_one_clear_error(tmp_path):
    result = run_validate(bundled_demo_config(), "postgresql://nobody:secret-pw@127.0.0.1:1/none")
    assert result.returncode == 1
    assert result.stdout.startswith("ERROR source: cannot check the source database: ")
    assert "secret-pw" not in result.stdout + result.stderr


def test_validate_without_the_flag_stays_offline(tmp_path):
    """An unreachable EXPORT_SOURCE_URL does not matter to a plain validate."""
    env = {**os.environ, "EXPORT_SOURCE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = subprocess.run([CLI, "validate", "--config", str(bundled_demo_config())], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("9 valid export(s), 0 problem(s)")


# --- SQLite: the check reads as the extract does (issue 13's rules) -----------------------------------------

# SQLite converts only text that is a number: ISO 8601 text stays text in INTEGER and REAL columns, which the
# extract reads as timestamps and dates; a REAL column keeps integers as whole REALs, which it reads as integers.
LEDGER_DDL = "CREATE TABLE ledger (id INTEGER PRIMARY KEY, iso_int INTEGER, iso_real REAL, whole_real REAL, num_int INTEGER)"
LEDGER_ROWS = [(1, "2024-05-01 10:00:00", "2024-05-01", 5, 20240501), (2, "2024-05-02T11:30:00Z", "2024-05-02", 7, 20240502)]
LEDGER_MODELS = """models:
  ledger:
    table: {table}
    primary_key: id
    fields:
      id: {{type: integer}}
      booked_at: {{type: timestamp, column: iso_int}}
      booked_on: {{type: date, column: iso_real}}
      quantity: {{type: integer, column: whole_real}}
      posted_at: {{type: timestamp, column: num_int}}
"""


def ledger_folder(tmp_path: Path, table: str = "ledger") -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(LEDGER_DDL)
        connection.exec_driver_sql("INSERT INTO ledger VALUES (?, ?, ?, ?, ?)", LEDGER_ROWS)
        # What SQLite stored, asked of SQLite itself: the verdicts below rest on these storage classes.
        stored = connection.exec_driver_sql(
            "SELECT typeof(iso_int), typeof(iso_real), typeof(whole_real), typeof(num_int) FROM ledger"
        ).all()
    engine.dispose()
    assert set(stored) == {("text", "text", "real", "integer")}
    spec = {"name": "ledger_export", "model": "ledger", "fields": ["id", "booked_at", "booked_on", "quantity"]}
    folder = write_config(tmp_path / "config", [spec])
    (folder / "models.yaml").write_text(LEDGER_MODELS.format(table=table))
    return folder, url


@pytest.mark.parametrize("table", ["ledger", "main.ledger"])
def test_sqlite_verdicts_follow_what_the_extract_reads(tmp_path, table):
    """ISO text in INTEGER/REAL columns and whole REALs read exactly, so they pass; integers as timestamps do not.
    A schema-qualified SQLite table (main.ledger) is checked like any other."""
    folder, url = ledger_folder(tmp_path, table)
    config = load_config(folder)
    assert config.problems == []
    engine = sa.create_engine(url)
    try:
        found = [(p.key_path, p.line, p.message) for p in check_source(config, engine)]
        assert found == [(
            "models.ledger.fields.posted_at.type", 10,
            f"column {table}.num_int is INTEGER, which cannot be read as a timestamp: a TEXT column holding ISO 8601 text (mapped in models.yaml)",
        )]
        rows = extracted(engine, config.plans["ledger_export"], tmp_path)
    finally:
        engine.dispose()
    utc = dt.UTC
    assert rows == [
        (1, dt.datetime(2024, 5, 1, 10, 0, tzinfo=utc), dt.date(2024, 5, 1), 5),
        (2, dt.datetime(2024, 5, 2, 11, 30, tzinfo=utc), dt.date(2024, 5, 2), 7),
    ]


def test_a_sqlite_schema_that_does_not_exist_is_that_models_problem(tmp_path):
    """crm.ledger on SQLite: no database `crm` is attached. Reported at the model's table; the rest is still checked."""
    folder, url = ledger_folder(tmp_path, "crm.ledger")
    (folder / "models.yaml").write_text(LEDGER_MODELS.format(table="crm.ledger") + "  customer:\n    fields:\n      email: {column: emial}\n")
    config = load_config(folder)
    engine = sa.create_engine(url)
    try:
        found = {p.key_path: (p.line, p.message) for p in check_source(config, engine)}
    finally:
        engine.dispose()
    assert found["models.ledger.table"] == (3, "table crm.ledger does not exist in the source: there is no schema crm (read by export ledger_export)")
    # The alias the entry is written under (customer) is the key path, with its line; the table is missing altogether here.
    assert found["models.customer.table"][0] == 11 and "table customers does not exist in the source" in found["models.customer.table"][1]


def test_key_paths_name_the_alias_an_entry_is_written_under(tmp_path):
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    generate_demo_database(url, customers=5, seed=1)
    folder = write_config(tmp_path / "config", [{"name": "c", "model": "customer", "fields": ["id", "email"]}])
    (folder / "models.yaml").write_text("models:\n  customer:\n    fields:\n      email: {column: emial}\n")
    engine = sa.create_engine(url)
    try:
        found = [(p.key_path, p.line, p.message) for p in check_source(load_config(folder), engine)]
    finally:
        engine.dispose()
    assert found == [("models.customer.fields.email.column", 4, "table customers has no column emial; did you mean email? (read by export c)")]


@pytest.mark.parametrize(("scheme", "kind"), [("sqlite", "SQLite"), ("duckdb", "DuckDB")])
def test_a_missing_database_file_is_reported_not_created(tmp_path, scheme, kind):
    missing = tmp_path / f"no_such.{scheme}"
    result = run_validate(bundled_demo_config(), f"{scheme}:///{missing}")
    assert result.returncode == 1
    assert result.stdout.startswith(f"ERROR source: cannot check the source database: the {kind} database {missing} does not exist")
    assert not missing.exists()


def test_a_url_without_its_driver_is_one_clear_error(tmp_path):
    """SQLAlchemy's default driver for mssql:// is pyodbc, which this project does not install (mysql:// means PyMySQL)."""
    result = run_validate(bundled_demo_config(), "mssql://sa:secret-pw@127.0.0.1/test")
    assert result.returncode == 1
    assert result.stdout.startswith("ERROR source: cannot check the source database: the driver mssql needs is not installed (No module named 'pyodbc')")
    assert "Traceback" not in result.stderr and "secret-pw" not in result.stdout + result.stderr
