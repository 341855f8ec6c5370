"""Time the demo database generator at a given size.

    python bench/generate_demo.py --customers 100000
    python bench/generate_demo.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --schema bench_demo --drop-schema --customers 100000

Prints the seconds taken and the row count of each table; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

import sqlalchemy as sa

from export_pipelines.demo.generator import generate_demo_database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="SQLAlchemy URL (default: a SQLite file in a temporary folder, deleted after)")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--schema", help="PostgreSQL schema to build in")
    parser.add_argument("--drop-schema", action="store_true", help="drop the PostgreSQL --schema afterwards")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{os.path.join(folder, 'bench.sqlite')}"
        started = time.perf_counter()
        counts = generate_demo_database(url, customers=args.customers, seed=args.seed, schema=args.schema)
        seconds = time.perf_counter() - started
        size = os.path.getsize(sa.make_url(url).database) if url.startswith("sqlite") else None
    if args.drop_schema and args.schema:
        engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
        with engine.begin() as connection:
            connection.execute(sa.schema.DropSchema(args.schema, cascade=True, if_exists=True))
        engine.dispose()

    for table, count in counts.items():
        print(f"{table:20s} {count:>12,d}")
    print(f"{'total rows':20s} {sum(counts.values()):>12,d}")
    if size is not None:
        print(f"{'file size':20s} {size / 2**20:>9,.0f} MB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'peak memory':20s} {peak:>9,.0f} MB")
    backend = sa.make_url(url).get_backend_name()
    print(f"{args.customers} customers into {backend}: {seconds:.1f} s "
          f"({counts.get('transactions', 0) / seconds:,.0f} transactions/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
