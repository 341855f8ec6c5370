"""`export-pipelines demo`, the README's first command, on a fresh DAGSTER_HOME."""

from __future__ import annotations

import gzip
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from export_pipelines.spec.loader import bundled_demo_config

CLI = str(Path(sys.executable).parent / "export-pipelines")


def test_demo_builds_the_database_runs_every_export_and_says_where_the_files_are(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    for variable in ("EXPORT_SOURCE_URL", "EXPORT_PIPELINES_CONFIG"):
        env.pop(variable, None)
    completed = subprocess.run(
        [CLI, "demo", "--customers", "300"], env=env, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    # The summary alone: the runs' events stay in their run logs, not on the console.
    assert " - dagster - " not in completed.stdout + completed.stderr

    names = [yaml.safe_load(p.read_text())["name"] for p in (bundled_demo_config() / "exports").glob("*.yaml")]
    downloads = tmp_path / "home" / "storage" / "downloads"
    for name in names:
        assert f"exports/{name}:" in completed.stdout
        assert any((downloads / name).iterdir()), name
        assert str(downloads / name) in completed.stdout

    database = tmp_path / "home" / "demo" / "loyalty.sqlite"
    with sqlite3.connect(database) as connection:
        expected = pd.read_sql_query(
            "SELECT number, amount FROM transactions WHERE status IN ('PAID', 'FULFILLED') ORDER BY created_at, id",
            connection,
        )
    [orders_file] = (downloads / "sana_orders").iterdir()
    written = pd.read_csv(io.BytesIO(gzip.decompress(orders_file.read_bytes())), dtype=str)
    assert list(written["OrderNumber"]) == list(expected["number"])
    assert [float(value) for value in written["Total"]] == [round(float(v), 2) for v in expected["amount"]]
    assert all(len(value.split(".")[1]) == 2 for value in written["Total"])

    # Incremental: the latest week of complete Asia/Kolkata days of the demo data, one run, one file.
    [transactions_file] = (downloads / "capillary_transactions").iterdir()
    assert transactions_file.name == "transactions_20261025_20261101_001.csv.gz"
    with sqlite3.connect(database) as connection:
        rows = pd.read_sql_query("SELECT id, created_at, amount FROM transactions", connection)
    created = pd.to_datetime(rows["created_at"], utc=True, format="ISO8601")
    window = (created >= pd.Timestamp("2026-10-25T00:00+05:30")) & (created < pd.Timestamp("2026-11-01T00:00+05:30"))
    expected_ids = sorted(rows.loc[window & (rows["amount"] > 0), "id"].astype(int))
    written_transactions = pd.read_csv(io.BytesIO(gzip.decompress(transactions_file.read_bytes())))
    assert sorted(written_transactions["bill_id"]) == expected_ids
    assert len(expected_ids) > 0
