"""Build a larger bench data set by repeating a smaller one's transactions (memory flatness at 20 M).

    python bench/grow_data.py --from-customers 500000 --times 4 [--data-dir /tmp/export_bench] [--sources mariadb]

The demo generator writes about 1 M rows a minute into both databases here; copying its 5 M
transactions four times with shifted ids takes a few minutes instead and gives the same
column shapes. The result is named as bench/run.py expects for `--rows 20000000`
(export_bench_c2000000 and demo_c2000000.sqlite), so run.py reuses it. MariaDB takes the
generator's rows slowest (about 6 600 transactions/s through PyMySQL's INSERTs): its 5 M
transactions are 1 M generated ones (`--from-customers 100000 --times 5 --sources mariadb`),
copied inside the server by INSERT ... SELECT in about a minute a copy.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from run import mariadb, psql

COLUMNS = (
    "number, customer_id, store_id, status, channel, currency, amount, discount_amount, "
    "items_count, points_earned, metadata, created_at, updated_at"
)


def grow_postgres(source: str, target: str, times: int) -> None:
    subprocess.run(psql("postgres", f'DROP DATABASE IF EXISTS "{target}"'), check=True)
    subprocess.run(psql("postgres", f'CREATE DATABASE "{target}" TEMPLATE "{source}"'), check=True)
    base = int(subprocess.run(psql(target, "SELECT max(id) FROM transactions") + ["-tA"], capture_output=True, text=True, check=True).stdout)
    for k in range(1, times):
        print(f"  postgres copy {k}/{times - 1}", file=sys.stderr, flush=True)
        subprocess.run(psql(target, f"INSERT INTO transactions (id, {COLUMNS}) SELECT id + {k * base}, {COLUMNS} FROM transactions WHERE id <= {base}"), check=True)
    subprocess.run(psql(target, "VACUUM (FREEZE, ANALYZE) transactions"), check=True)


def grow_sqlite(source: Path, target: Path, times: int) -> None:
    building = target.with_suffix(".building")
    shutil.copyfile(source, building)
    with sqlite3.connect(building) as connection:
        (base,) = connection.execute("SELECT max(id) FROM transactions").fetchone()
        for k in range(1, times):
            print(f"  sqlite copy {k}/{times - 1}", file=sys.stderr, flush=True)
            connection.execute(f"INSERT INTO transactions (id, {COLUMNS}) SELECT id + {k * base}, {COLUMNS} FROM transactions WHERE id <= {base}")
    building.rename(target)


def grow_mariadb(source: str, target: str, times: int) -> None:
    """Only the transactions table: the bench exports nothing else."""
    subprocess.run(mariadb(None, f"DROP DATABASE IF EXISTS `{target}`"), check=True)
    subprocess.run(mariadb(None, f"CREATE DATABASE `{target}` CHARACTER SET utf8mb4"), check=True)
    subprocess.run(mariadb(target, f"CREATE TABLE transactions LIKE `{source}`.transactions"), check=True)
    base = int(subprocess.run(mariadb(source, "SELECT max(id) FROM transactions", "-N"), capture_output=True, text=True, check=True).stdout)
    for k in range(times):
        print(f"  mariadb copy {k + 1}/{times}", file=sys.stderr, flush=True)
        copy = f"INSERT INTO transactions (id, {COLUMNS}) SELECT id + {k * base}, {COLUMNS} FROM `{source}`.transactions"
        subprocess.run(mariadb(target, copy), check=True)
    subprocess.run(mariadb(target, "ANALYZE TABLE transactions", "-N"), check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-customers", type=int, default=500_000)
    parser.add_argument("--times", type=int, default=4)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "export_bench")
    parser.add_argument("--sources", nargs="+", choices=("postgresql", "sqlite", "mariadb"), default=["postgresql", "sqlite"])
    args = parser.parse_args()
    customers = args.from_customers * args.times
    source, target = f"export_bench_c{args.from_customers}", f"export_bench_c{customers}"
    if "postgresql" in args.sources:
        grow_postgres(source, target, args.times)
    if "sqlite" in args.sources:
        grow_sqlite(args.data_dir / f"demo_c{args.from_customers}.sqlite", args.data_dir / f"demo_c{customers}.sqlite", args.times)
    if "mariadb" in args.sources:
        grow_mariadb(source, target, args.times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
