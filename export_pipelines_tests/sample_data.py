"""Small hand-written source rows with the values exporters get wrong.

Tests compute what they expect from these rows themselves (plain Python or pandas),
never by calling the code under test.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import sqlalchemy as sa

from export_pipelines.catalog.models import load_builtin_catalog
from export_pipelines.catalog.sql_types import model_table


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


CUSTOMERS = [
    {"id": 1, "source_id": "C-001", "name": "Zoë Müller", "email": "zoe@example.com", "gender": "female",
     "address_country": "DE", "address_city": "Berlin", "metadata": json.dumps({"tier": "gold", "newsletter": True}),
     "loyalty_points": 120, "orders_total_amount": Decimal("12.30"), "birthdate": dt.date(1990, 5, 17),
     "description": 'Says "hi", often', "created_at": utc(2024, 1, 5, 10, 0, 0), "updated_at": utc(2024, 6, 1, 8, 30, 0)},
    {"id": 2, "source_id": "C-002", "name": "Łukasz Nowak", "email": "lukasz@example.com", "gender": "male",
     "address_country": "AT", "address_city": "Wien", "metadata": json.dumps({"tier": "silver", "newsletter": False}),
     "loyalty_points": 0, "orders_total_amount": Decimal("-5.00"), "birthdate": None,
     "description": "line one\nline two", "created_at": utc(2024, 2, 29, 23, 59, 59), "updated_at": utc(2024, 3, 1, 0, 0, 0)},
    {"id": 3, "source_id": "C-003", "name": "Søren Kierkegaard", "email": None, "gender": None,
     "address_country": "HU", "address_city": "", "metadata": None,
     "loyalty_points": None, "orders_total_amount": None, "birthdate": dt.date(2000, 1, 1),
     "description": "", "created_at": utc(2024, 3, 10, 12, 0, 0), "updated_at": utc(2025, 1, 1, 0, 0, 0)},
    {"id": 4, "source_id": "C-004", "name": "李雷", "email": "li@example.cn", "gender": "other",
     "address_country": None, "address_city": "Shanghai|Pudong", "metadata": json.dumps({"tier": "platinum"}),
     "loyalty_points": 99999, "orders_total_amount": Decimal("123456789012.99"), "birthdate": None,
     "description": None, "created_at": utc(2025, 7, 4, 6, 5, 4), "updated_at": utc(2025, 7, 4, 6, 5, 4)},
    {"id": 5, "source_id": "C-005", "name": "Ann O'Neil", "email": "ANN@EXAMPLE.COM", "gender": "female",
     "address_country": "DE", "address_city": "München", "metadata": json.dumps({"newsletter": True}),
     "loyalty_points": 7, "orders_total_amount": Decimal("0.10"), "birthdate": dt.date(1985, 12, 31),
     "description": "100% loyal_customer", "created_at": utc(2025, 12, 31, 23, 0, 0), "updated_at": utc(2026, 1, 2, 3, 4, 5)},
]

TRANSACTIONS = [
    {"id": 100 + i, "number": f"B{100 + i}", "customer_id": 1 + i % 5, "store_id": 1 + i % 3,
     "status": ["PAID", "FULFILLED", "CANCELED", "RETURNED"][i % 4], "channel": "web" if i % 2 else "store",
     "currency": "EUR", "amount": Decimal(f"{(i * 7) % 50}.{i % 10}0") * (-1 if i % 4 == 3 else 1),
     "discount_amount": None if i % 3 else Decimal("1.50"), "items_count": 1 + i % 4, "points_earned": i,
     "metadata": json.dumps({"channel": "app" if i % 2 else "pos"}),
     "created_at": utc(2025, 1, 1 + i % 28, i % 24, 0, 0), "updated_at": utc(2025, 2, 1 + i % 28, 0, 0, 0)}
    for i in range(23)
]


def create_sample_tables(url: str | sa.URL) -> None:
    catalog = load_builtin_catalog()
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    customers = model_table(catalog.get("customers"), metadata)
    transactions = model_table(catalog.get("transactions"), metadata)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(customers.insert(), [_complete(row, customers) for row in CUSTOMERS])
        connection.execute(transactions.insert(), [_complete(row, transactions) for row in TRANSACTIONS])
    engine.dispose()


def _complete(row: dict, table: sa.Table) -> dict:
    return {column.name: row.get(column.name) for column in table.columns}
