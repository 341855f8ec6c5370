"""DuckDB's postgres extension as a peer in bench/run.py: the same query's rows into a CSV file, in-process.

    python bench/duckdb_postgres.py {query,scan} DATABASE_URL OUT_CSV

query: `postgres_query`, the whole SELECT (ORDER BY included) run in PostgreSQL, DuckDB only
       streams its result into the CSV writer;
scan:  the postgres scanner reads the table (DuckDB's parallel COPY of ctid ranges) and DuckDB
       sorts it (ORDER BY in DuckDB).

`INSTALL postgres` downloads from DuckDB's extension host, which this machine cannot reach;
PyPI's `duckdb-extension-postgres` ships the signed extension file for the one duckdb version it
pins (1.5.5; none is published for the project's duckdb 2.0.1), so bench/run.py installs both
into a folder of their own (--target) and runs this script with that folder first on PYTHONPATH.
The extension is LOADed from its file. Prints one JSON line with the rows written and seconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import duckdb_extension_postgres

COLUMNS = "id, number, customer_id, store_id, status, channel, amount, metadata, created_at, updated_at"


def extension_file(scratch: Path) -> Path:
    """The package's extension file under the extension's own name: DuckDB derives the entry point it calls
    (postgres_scanner_duckdb_cpp_init) from the file name, and the package names the file postgres.duckdb_extension."""
    shipped = Path(duckdb_extension_postgres.__file__).parent / "extensions" / f"v{duckdb.__version__}" / "postgres.duckdb_extension"
    named = scratch / "postgres_scanner.duckdb_extension"
    if not named.exists():
        named.symlink_to(shipped)
    return named


def libpq_dsn(url: str) -> str:
    parts = urlsplit(url)
    return f"host={parts.hostname} port={parts.port or 5432} user={parts.username} dbname={parts.path.lstrip('/')}"


def main(mode: str, url: str, out: str) -> dict:
    started = time.perf_counter()
    connection = duckdb.connect()
    connection.execute(f"LOAD '{extension_file(Path(out).parent)}'")
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f"ATTACH '{libpq_dsn(url)}' AS pg (TYPE postgres, READ_ONLY)")
    if mode == "query":
        rows_sql = f"SELECT {COLUMNS} FROM transactions ORDER BY id".replace("'", "''")
        source = f"SELECT * FROM postgres_query('pg', '{rows_sql}')"
    else:
        source = f"SELECT {COLUMNS} FROM pg.public.transactions ORDER BY id"
    written = connection.execute(f"COPY ({source}) TO '{out}' (FORMAT csv, HEADER)").fetchone()[0]
    connection.close()
    return {"rows": written, "seconds": {"total": time.perf_counter() - started}, "duckdb": duckdb.__version__}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
