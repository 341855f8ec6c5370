"""Transactions placed around the edges of the window 2026-03-27 .. 2026-03-30 in Europe/Budapest.

The window is half-open [2026-03-27T00:00+01:00, 2026-03-31T00:00+02:00), so in UTC
[2026-03-26T23:00Z, 2026-03-30T22:00Z); it spans the night the clocks went forward.
created_at (the event date) and updated_at differ row by row, so the two kinds of
window select different rows.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from export_pipelines.catalog.models import load_builtin_catalog
from export_pipelines.catalog.sql_types import model_table
from export_pipelines_tests.sample_data import utc

BUDAPEST = ZoneInfo("Europe/Budapest")
WINDOW_START = dt.datetime(2026, 3, 27, tzinfo=BUDAPEST)
WINDOW_END = dt.datetime(2026, 3, 31, tzinfo=BUDAPEST)
# The same window as partition keys of a daily Europe/Budapest export.
RANGE = dg.PartitionKeyRange("2026-03-27", "2026-03-30")


def incremental_spec(name: str, by: str, **changes) -> dict:
    return {
        "name": name,
        "model": "transactions",
        "fields": ["id", "number", "created_at", "updated_at"],
        "incremental": {"by": by, "grain": "daily", "start": "2026-01-01", "timezone": "Europe/Budapest"},
        "file_name": "tx_{window_start:%Y%m%d}_{window_end:%Y%m%d}.{ext}",
        **changes,
    }


# (id, created_at, updated_at)
ROWS = [
    (1, utc(2026, 3, 26, 22, 59, 59), utc(2026, 3, 27, 10, 0, 0)),  # created a second before the window
    (2, utc(2026, 3, 26, 23, 0, 0), utc(2026, 4, 2, 0, 0, 0)),  # created exactly at its start
    (3, utc(2026, 3, 29, 1, 30, 0), utc(2026, 3, 29, 1, 30, 0)),  # the DST night
    (4, utc(2026, 3, 30, 21, 59, 59), utc(2026, 3, 30, 22, 0, 0)),  # updated exactly at its end
    (5, utc(2026, 3, 30, 22, 0, 0), utc(2026, 3, 30, 21, 0, 0)),  # created exactly at its end
    (6, utc(2026, 3, 20, 8, 0, 0), utc(2026, 3, 20, 8, 0, 0)),
    (7, utc(2026, 3, 28, 12, 0, 0), utc(2026, 3, 26, 22, 0, 0)),
    (8, utc(2026, 4, 1, 0, 0, 0), utc(2026, 3, 28, 0, 0, 0)),
]


def create_window_transactions(url: str) -> None:
    table = model_table(load_builtin_catalog().get("transactions"), sa.MetaData())
    engine = sa.create_engine(url)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        rows = [
            {column.name: None for column in table.columns}
            | {"id": id_, "number": f"T{id_}", "amount": 10 * id_, "created_at": created, "updated_at": updated}
            for id_, created, updated in ROWS
        ]
        connection.execute(table.insert(), rows)
    engine.dispose()


def ids_in_window(url: str, column: str, start: dt.datetime, end: dt.datetime) -> list[int]:
    """What the export should hold, by plain SQL and pandas: the rows whose column is in [start, end)."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        frame = pd.read_sql_query(sa.text(f"SELECT id, {column} AS at FROM transactions"), connection)
    engine.dispose()
    at = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
    selected = frame[(at >= pd.Timestamp(start)) & (at < pd.Timestamp(end))]
    return sorted(int(value) for value in selected["id"])
