"""The export a user would write by hand: pandas.read_sql of the whole query, then to_csv.

    python bench/naive_pandas.py URL OUT_FILE
"""

from __future__ import annotations

import sys

import pandas as pd
import sqlalchemy as sa

from export_pipelines.database_urls import normalize_url

COLUMNS = "id, number, customer_id, store_id, status, channel, amount, metadata, created_at, updated_at"


def main(url: str, out_file: str) -> int:
    engine = sa.create_engine(normalize_url(url))
    frame = pd.read_sql(sa.text(f"SELECT {COLUMNS} FROM transactions ORDER BY id"), engine)
    frame.to_csv(out_file, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
