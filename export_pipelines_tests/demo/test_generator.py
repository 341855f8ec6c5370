"""The demo database generator on real SQLite and PostgreSQL databases.

Checks determinism, scaling, realistic variety, the computed columns against independent
SQL, and that SQLite and PostgreSQL hold the same rows for the same seed.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sqlite3
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from export_pipelines.catalog.models import load_builtin_catalog
from export_pipelines.catalog.sql_types import model_table
from export_pipelines.demo import generator
from export_pipelines.demo.generator import generate_demo_database, main

CUSTOMERS = 1500
# The shared builds use small customer chunks, so the checks also cover ids and
# aggregates that run across chunks (the default chunk is bigger than any test build).
SMALL_CHUNK = 400
TABLES = [
    "stores", "campaigns", "customers", "transactions", "transaction_lines", "vouchers", "redemptions",
    "publications", "points_ledger", "points_expirations", "rewards",
]
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 10, 31, 23, 59, 59, tzinfo=dt.UTC)


def _sqlite_rows(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as connection:
        return {
            table: connection.execute(f'SELECT * FROM "{table}" ORDER BY id').fetchall() for table in TABLES
        }


def _build_sqlite(folder: Path, name: str, **kwargs) -> tuple[Path, dict[str, int]]:
    path = folder / f"{name}.sqlite"
    counts = generate_demo_database(f"sqlite:///{path}", **kwargs)
    return path, counts


# --------------------------------------------------------------------------------------
# Fixtures: one SQLite and one PostgreSQL build per module
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_build(tmp_path_factory) -> tuple[str, dict[str, int]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(generator, "CHUNK_CUSTOMERS", SMALL_CHUNK)
        path, counts = _build_sqlite(tmp_path_factory.mktemp("demo"), "demo", customers=CUSTOMERS, seed=7)
    return f"sqlite:///{path}", counts


@pytest.fixture(scope="module")
def postgres_build(postgres_url: str):
    """The same build in a fresh PostgreSQL schema, dropped afterwards (also when the build fails)."""
    schema = f"demo_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(postgres_url)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(generator, "CHUNK_CUSTOMERS", SMALL_CHUNK)
            counts = generate_demo_database(postgres_url, customers=CUSTOMERS, seed=7, schema=schema)
        url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False), counts, schema
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="module")
def mariadb_build(mariadb_url: str):
    """The same build in a fresh MariaDB database, dropped afterwards (also when the build fails)."""
    database = f"demo_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE `{database}`"))
    url = sa.make_url(mariadb_url).set(database=database).render_as_string(hide_password=False)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(generator, "CHUNK_CUSTOMERS", SMALL_CHUNK)
            counts = generate_demo_database(url, customers=CUSTOMERS, seed=7)
        yield url, counts
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{database}`"))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def built(request) -> tuple[sa.Engine, dict[str, int]]:
    if request.param == "sqlite":
        url, counts = request.getfixturevalue("sqlite_build")
    elif request.param == "mariadb":
        url, counts = request.getfixturevalue("mariadb_build")
    else:
        url, counts, _ = request.getfixturevalue("postgres_build")
    engine = sa.create_engine(url)
    yield engine, counts
    engine.dispose()


def _scalar(engine: sa.Engine, query: str):
    with engine.connect() as connection:
        return connection.execute(sa.text(query)).scalar()


def _rows(engine: sa.Engine, query: str) -> list:
    with engine.connect() as connection:
        return connection.execute(sa.text(query)).all()


# --------------------------------------------------------------------------------------
# Determinism and scale (SQLite)
# --------------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables_and_another_seed_differs(tmp_path):
    first, first_counts = _build_sqlite(tmp_path, "a", customers=400, seed=11)
    second, second_counts = _build_sqlite(tmp_path, "b", customers=400, seed=11)
    other, _ = _build_sqlite(tmp_path, "c", customers=400, seed=12)
    assert first_counts == second_counts
    first_rows = _sqlite_rows(first)
    assert first_rows == _sqlite_rows(second)
    other_rows = _sqlite_rows(other)
    for table in ("customers", "transactions", "vouchers", "redemptions", "points_ledger"):
        assert first_rows[table] != other_rows[table], table


def test_rebuild_replaces_the_tables(tmp_path):
    path, counts = _build_sqlite(tmp_path, "demo", customers=300, seed=3)
    again = generate_demo_database(f"sqlite:///{path}", customers=300, seed=3)
    assert again == counts
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM transactions").fetchone()[0] == counts["transactions"]
    with pytest.raises(ValueError, match="already exist"):
        generate_demo_database(f"sqlite:///{path}", customers=300, seed=3, replace=False)


def test_row_counts_scale_with_customers(tmp_path):
    small_path, small = _build_sqlite(tmp_path, "small", customers=200, seed=5)
    _, large = _build_sqlite(tmp_path, "large", customers=2000, seed=5)
    with sqlite3.connect(small_path) as connection:
        for table, count in small.items():
            assert connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] == count, table
    assert set(small) == set(TABLES)
    assert (small["customers"], large["customers"]) == (200, 2000)
    assert (small["stores"], large["stores"]) == (5, 10)
    assert small["campaigns"] == large["campaigns"] == 10
    assert small["rewards"] == large["rewards"] == 50
    n = 2000
    assert 8 * n <= large["transactions"] <= 12 * n
    assert large["transactions"] <= large["transaction_lines"] <= 4 * large["transactions"]
    assert 1.6 * n <= large["vouchers"] <= 2.4 * n
    assert 0.85 * n <= large["redemptions"] <= 1.15 * n
    assert 1.3 * n <= large["publications"] <= 1.7 * n
    assert 0.8 * large["transactions"] <= large["points_ledger"] <= 1.3 * large["transactions"]
    assert 0.2 * n <= large["points_expirations"] <= 0.4 * n
    assert 6 <= large["transactions"] / small["transactions"] <= 14


def test_cli_main_prints_counts_and_seconds(tmp_path, capsys):
    path = tmp_path / "cli.sqlite"
    assert main(["--url", f"sqlite:///{path}", "--customers", "50", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "transactions" in out and "customers" in out and " s" in out
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM customers").fetchone()[0] == 50


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="PostgreSQL only"):
        generate_demo_database(f"sqlite:///{tmp_path / 'x.sqlite'}", schema="demo")
    with pytest.raises(ValueError, match="SQLite, PostgreSQL or MySQL/MariaDB"):
        generate_demo_database("mssql+pyodbc://localhost/demo")
    with pytest.raises(ValueError, match="file path"):
        generate_demo_database("sqlite://")


def test_postgresql_urls_load_through_psycopg_3():
    for url in ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+psycopg2://postgres@127.0.0.1/test"):
        assert generator._normalise_url(url).drivername == "postgresql+psycopg"
    assert generator._normalise_url("sqlite:///demo.sqlite").drivername == "sqlite"


def test_mysql_urls_load_through_pymysql():
    for url in ("mysql://root@127.0.0.1/test", "mysql+mysqldb://root@127.0.0.1/test"):
        assert generator._normalise_url(url).drivername == "mysql+pymysql"
    assert generator._normalise_url("mariadb://root@127.0.0.1/test").drivername == "mariadb+pymysql"


# --------------------------------------------------------------------------------------
# Realistic variety (SQLite build)
# --------------------------------------------------------------------------------------


def test_values_are_varied_and_exercise_an_exporter(sqlite_build):
    url, _ = sqlite_build
    engine = sa.create_engine(url)
    try:
        genders = {row[0] for row in _rows(engine, "SELECT DISTINCT gender FROM customers")}
        assert genders == {"female", "male", "other", None}
        countries = {row[0] for row in _rows(engine, "SELECT DISTINCT address_country FROM customers")}
        assert countries == {"DE", "AT", "HU", "FR", "GB", "US", "AU", None}
        names = {row[0] for row in _rows(engine, "SELECT name FROM customers")}
        assert None in names and "" in names
        assert any(name and any(u in name for u in ("Zoë", "Łukasz", "Søren")) for name in names)
        assert any(name and any("\u4e00" <= ch <= "\u9fff" for ch in name) for name in names)
        for table, column in (("customers", "description"), ("customers", "address_line_2"),
                              ("redemptions", "failure_message"), ("vouchers", "additional_info")):
            texts = [row[0] for row in _rows(engine, f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")]
            assert any("," in t for t in texts), (table, column)
            assert any('"' in t for t in texts), (table, column)
            assert any("\n" in t for t in texts), (table, column)
        assert _scalar(engine, "SELECT count(*) FROM customers WHERE description = ''") > 0
        assert _scalar(engine, "SELECT count(*) FROM customers WHERE email IS NULL") > 0
        assert _scalar(engine, "SELECT count(*) FROM transactions WHERE amount < 0 AND status = 'RETURNED'") > 0
        assert _scalar(engine, "SELECT count(*) FROM transactions WHERE amount < 0 AND status <> 'RETURNED'") == 0
        assert _scalar(engine, "SELECT count(*) FROM transaction_lines WHERE unit_price = 12.3") > 0
        statuses = {row[0] for row in _rows(engine, "SELECT DISTINCT status FROM transactions")}
        assert statuses == {"PAID", "FULFILLED", "CANCELED", "RETURNED"}
        assert {row[0] for row in _rows(engine, "SELECT DISTINCT object FROM redemptions")} == {"redemption"}
        results = set(_rows(engine, "SELECT DISTINCT result, status, failure_code IS NULL FROM redemptions"))
        assert results == {("SUCCESS", "SUCCEEDED", 1), ("SUCCESS", "ROLLED_BACK", 1), ("FAILURE", "FAILED", 0)}
        types = {row[0] for row in _rows(engine, "SELECT DISTINCT voucher_type FROM vouchers")}
        assert types == {"DISCOUNT_VOUCHER", "GIFT_VOUCHER", "LOYALTY_CARD"}
        assert _scalar(engine, "SELECT count(*) FROM vouchers WHERE category = 'postman'") > 0
        channels = {row[0] for row in _rows(engine, "SELECT DISTINCT channel FROM publications")}
        assert {"API", "WEBSITE", "CLI"} <= channels
        tiers = set()
        for (text,) in _rows(engine, "SELECT metadata FROM customers WHERE metadata IS NOT NULL"):
            document = json.loads(text)
            assert isinstance(document, dict) and isinstance(document["newsletter"], bool)
            tiers.add(document.get("tier"))
        assert tiers == {"bronze", "silver", "gold", "platinum", None}
        # event dates and updated-at dates select different rows
        assert _scalar(engine, "SELECT count(*) FROM transactions WHERE updated_at > created_at") > 0
        late = _scalar(engine, "SELECT count(*) FROM transactions WHERE updated_at >= datetime(created_at, '+180 days')")
        assert late > 0.02 * _scalar(engine, "SELECT count(*) FROM transactions")
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------
# Consistency, with independent SQL, on both databases
# --------------------------------------------------------------------------------------


def test_timestamps_in_range_and_updated_after_created(built):
    engine, _ = built
    catalog = load_builtin_catalog()
    with engine.connect() as connection:
        for table in TABLES:
            model = next(m for m in catalog.models.values() if m.table == table)
            sa_table = model_table(model, sa.MetaData())
            low, high, backwards = connection.execute(
                sa.select(
                    sa.func.min(sa_table.c.created_at),
                    sa.func.max(sa_table.c.updated_at),
                    # COUNT of a CASE, not COUNT(*) FILTER, which MySQL lacks.
                    sa.func.count(sa.case((sa_table.c.updated_at < sa_table.c.created_at, 1))),
                )
            ).one()
            assert START <= low and high <= END, table
            assert backwards == 0, table
            assert low.microsecond == 0


def test_customer_order_columns(built):
    engine, _ = built
    bad = _rows(engine, """
        SELECT c.id FROM customers c
        LEFT JOIN (SELECT customer_id, count(*) AS n, sum(amount) AS total FROM transactions GROUP BY customer_id) t
          ON t.customer_id = c.id
        WHERE c.orders_total_count <> coalesce(t.n, 0)
           OR abs(c.orders_total_amount - coalesce(t.total, 0)) > 0.001
           OR (t.n IS NULL AND (c.orders_average_amount IS NOT NULL OR c.orders_last_order_amount IS NOT NULL
                                OR c.orders_last_order_date IS NOT NULL))
           OR (t.n IS NOT NULL AND abs(c.orders_average_amount - t.total * 1.0 / t.n) > 0.0051)
    """)
    assert bad == []
    bad_last = _rows(engine, """
        SELECT c.id FROM customers c
        JOIN transactions t ON t.customer_id = c.id
        WHERE t.created_at = (SELECT max(x.created_at) FROM transactions x WHERE x.customer_id = c.id)
          AND (t.amount <> c.orders_last_order_amount OR t.created_at <> c.orders_last_order_date)
    """)
    assert bad_last == []
    assert _scalar(engine, "SELECT count(*) FROM customers WHERE orders_total_count = 0") > 0
    # the average is rounded half away from zero, exactly
    rows = _rows(engine, """
        SELECT c.orders_average_amount, sum(t.amount), count(*) FROM customers c
        JOIN transactions t ON t.customer_id = c.id GROUP BY c.id, c.orders_average_amount
    """)
    for average, total, count in rows:
        total = decimal.Decimal(str(total)).quantize(decimal.Decimal("0.01"))
        expected = (total / count).quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP)
        assert decimal.Decimal(str(average)).quantize(decimal.Decimal("0.01")) == expected


def test_customer_redemption_and_loyalty_columns(built):
    engine, _ = built
    rollback = "metadata->>'rollback'" if engine.dialect.name == "postgresql" else "json_extract(metadata, '$.rollback')"
    bad = _rows(engine, f"""
        SELECT c.id FROM customers c
        LEFT JOIN (
            SELECT customer_id, count(*) AS redeemed,
                   sum(CASE WHEN result = 'SUCCESS' THEN 1 ELSE 0 END) AS succeeded,
                   sum(CASE WHEN result = 'FAILURE' THEN 1 ELSE 0 END) AS failed,
                   sum(CASE WHEN status = 'ROLLED_BACK' THEN 1 ELSE 0 END) AS rollback_succeeded,
                   sum(CASE WHEN {rollback} = 'failed' THEN 1 ELSE 0 END) AS rollback_failed
            FROM redemptions GROUP BY customer_id
        ) r ON r.customer_id = c.id
        WHERE c.redemptions_total_redeemed <> coalesce(r.redeemed, 0)
           OR c.redemptions_total_succeeded <> coalesce(r.succeeded, 0)
           OR c.redemptions_total_failed <> coalesce(r.failed, 0)
           OR c.redemptions_total_rollback_succeeded <> coalesce(r.rollback_succeeded, 0)
           OR c.redemptions_total_rollback_failed <> coalesce(r.rollback_failed, 0)
           OR c.redemptions_total_rolled_back <> coalesce(r.rollback_succeeded, 0) + coalesce(r.rollback_failed, 0)
    """)
    assert bad == []
    assert _scalar(engine, "SELECT sum(redemptions_total_rollback_failed) FROM customers") > 0
    bad_points = _rows(engine, """
        SELECT c.id FROM customers c
        LEFT JOIN (SELECT customer_id, sum(points) AS points FROM points_ledger GROUP BY customer_id) p
          ON p.customer_id = c.id
        WHERE c.loyalty_points <> coalesce(p.points, 0)
    """)
    assert bad_points == []
    bad_referrals = _rows(engine, """
        SELECT c.id FROM customers c
        LEFT JOIN (
            SELECT v.customer_id, count(DISTINCT r.customer_id) AS referred
            FROM vouchers v JOIN redemptions r ON r.voucher_code = v.code
            WHERE v.is_referral_code AND r.status = 'SUCCEEDED'
            GROUP BY v.customer_id
        ) x ON x.customer_id = c.id
        WHERE c.loyalty_referred_customers <> coalesce(x.referred, 0)
    """)
    assert bad_referrals == []
    assert _scalar(engine, "SELECT sum(loyalty_referred_customers) FROM customers") > 0


def test_ledger_vouchers_and_transactions_are_consistent(built):
    engine, _ = built
    bad_balance = _rows(engine, """
        SELECT id FROM (
            SELECT id, balance_after,
                   sum(points) OVER (PARTITION BY customer_id ORDER BY created_at, id) AS running
            FROM points_ledger
        ) x WHERE balance_after <> running OR balance_after < 0
    """)
    assert bad_balance == []
    assert _scalar(engine, """
        SELECT count(*) FROM transactions t
        LEFT JOIN points_ledger p ON p.transaction_id = t.id AND p.reason IN ('ORDER', 'ORDER_RETURN')
        WHERE t.points_earned <> coalesce(p.points, 0)
           OR (t.status IN ('PAID', 'FULFILLED') AND t.points_earned <> floor(t.amount))
    """) == 0
    reasons = {row[0] for row in _rows(engine, "SELECT DISTINCT reason FROM points_ledger")}
    assert {"ORDER", "ORDER_RETURN", "REDEMPTION", "POINTS_EXPIRATION", "SIGNUP_BONUS"} <= reasons
    bad_count = _rows(engine, """
        SELECT v.id FROM vouchers v
        LEFT JOIN (SELECT voucher_code, count(*) AS n FROM redemptions WHERE status = 'SUCCEEDED' GROUP BY voucher_code) r
          ON r.voucher_code = v.code
        WHERE v.redemption_count <> coalesce(r.n, 0)
           OR (v.redemption_quantity IS NOT NULL AND v.redemption_quantity < v.redemption_count)
    """)
    assert bad_count == []
    bad_cards = _rows(engine, """
        SELECT v.id FROM vouchers v JOIN customers c ON c.id = v.customer_id
        WHERE v.voucher_type = 'LOYALTY_CARD' AND v.loyalty_balance <> c.loyalty_points
    """)
    assert bad_cards == []
    assert _scalar(engine, "SELECT count(*) FROM redemptions r LEFT JOIN vouchers v ON v.code = r.voucher_code "
                           "WHERE v.id IS NULL") == 0
    bad_orders = _rows(engine, """
        SELECT t.id FROM transactions t
        JOIN (SELECT transaction_id, sum(amount) AS total, sum(abs(quantity)) AS items, count(*) AS n
              FROM transaction_lines GROUP BY transaction_id) l ON l.transaction_id = t.id
        WHERE abs(t.amount - (l.total - t.discount_amount)) > 0.001 OR t.items_count <> l.items OR l.n > 4
    """)
    assert bad_orders == []
    assert _scalar(engine, "SELECT count(*) FROM transaction_lines WHERE abs(amount - quantity * unit_price) > 0.001") == 0
    assert _scalar(engine, """
        SELECT count(*) FROM redemptions r JOIN transactions t ON t.id = r.order_id
        WHERE r.date <> t.created_at OR r.order_amount <> t.amount OR r.customer_id <> t.customer_id
    """) == 0
    assert _scalar(engine, """
        SELECT count(*) FROM points_expirations e JOIN vouchers v ON v.id = e.voucher_id
        WHERE v.voucher_type <> 'LOYALTY_CARD' OR v.customer_id <> e.customer_id
    """) == 0


# --------------------------------------------------------------------------------------
# SQLite and PostgreSQL hold the same rows
# --------------------------------------------------------------------------------------


def _normalised_frame(engine: sa.Engine, table_name: str, schema: str | None) -> pd.DataFrame:
    catalog = load_builtin_catalog()
    model = next(m for m in catalog.models.values() if m.table == table_name)
    table = model_table(model, sa.MetaData(schema=schema))
    json_columns = {model.column_of(f) for f in model.json_fields}

    def normalise(column: str, value):
        if value is None:
            return None
        if column in json_columns:
            return json.dumps(json.loads(value) if isinstance(value, str) else value, sort_keys=True)
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC).isoformat()
        if isinstance(value, decimal.Decimal):
            # SQLite's REAL reads back as its digits (46.1), PostgreSQL's numeric(38, 2) at its scale (46.10).
            return format(value.normalize(), "f")
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    with engine.connect() as connection:
        result = connection.execute(sa.select(table).order_by(table.c.id))
        columns = list(result.keys())
        rows = [[normalise(c, v) for c, v in zip(columns, row)] for row in result]
    return pd.DataFrame(rows, columns=columns, dtype=object)


def test_postgresql_holds_the_same_rows_as_sqlite(sqlite_build, postgres_build):
    sqlite_url, sqlite_counts = sqlite_build
    postgres_url, postgres_counts, schema = postgres_build
    assert sqlite_counts == postgres_counts
    lite = sa.create_engine(sqlite_url)
    pg = sa.create_engine(postgres_url)
    try:
        for table in ("customers", "transactions", "vouchers", "redemptions", "points_ledger", "stores",
                      "campaigns", "rewards", "publications", "points_expirations"):
            left = _normalised_frame(lite, table, None)
            right = _normalised_frame(pg, table, schema)
            assert len(left) == sqlite_counts[table]
            pd.testing.assert_frame_equal(left, right, check_dtype=False, obj=table)
        assert _scalar(pg, "SELECT data_type FROM information_schema.columns "
                           f"WHERE table_schema = '{schema}' AND table_name = 'customers' AND column_name = 'metadata'") == "jsonb"
        indexes = {row[0] for row in _rows(pg, f"SELECT indexname FROM pg_indexes WHERE schemaname = '{schema}'")}
        assert {"ix_transactions_created_at", "ix_transactions_updated_at", "ix_transactions_customer_id",
                "ix_redemptions_date"} <= indexes
    finally:
        lite.dispose()
        pg.dispose()


def test_mariadb_holds_the_same_rows_as_sqlite(sqlite_build, mariadb_build):
    sqlite_url, sqlite_counts = sqlite_build
    mariadb_url, mariadb_counts = mariadb_build
    assert sqlite_counts == mariadb_counts
    lite = sa.create_engine(sqlite_url)
    maria = sa.create_engine(mariadb_url)
    try:
        for table in ("customers", "transactions", "vouchers", "redemptions", "points_ledger", "stores",
                      "campaigns", "rewards", "publications", "points_expirations"):
            left = _normalised_frame(lite, table, None)
            right = _normalised_frame(maria, table, None)
            assert len(left) == sqlite_counts[table]
            pd.testing.assert_frame_equal(left, right, check_dtype=False, obj=table)
        indexes = {row[2] for row in _rows(maria, "SHOW INDEX FROM transactions")}
        assert {"ix_transactions_created_at", "ix_transactions_updated_at", "ix_transactions_customer_id"} <= indexes
    finally:
        lite.dispose()
        maria.dispose()
