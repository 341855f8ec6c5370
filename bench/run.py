"""`make bench`: the export against the database's own tools, interleaved, medians of N.

    python bench/run.py --rows 1000000 5000000 [--repeat 3] [--keep-data] [--skip-method pandas] [--sources mariadb]

DuckDB's postgres extension (bench/duckdb_postgres.py) runs beside psql as a peer, from a folder
of its own under --data-dir (`--skip-method duckdb` leaves it out).

For each size it builds the demo data of each of --sources (PostgreSQL database
export_bench_c<customers> on 127.0.0.1:5432, SQLite file in --data-dir, MariaDB database
export_bench_c<customers> on 127.0.0.1:3306; reused when present), then runs every method
as a child process, all methods once per round, --repeat rounds, and prints one table:
method, rows, seconds (median), rows/s, MB/s of output, peak RSS of the child's process
tree (psutil, polled from outside), and the ratio to the method's reference. Asserts
nothing: the goals are read off the table (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", "5432", "postgres"
MARIADB_HOST, MARIADB_PORT, MARIADB_USER = "127.0.0.1", "3306", "root"
SOURCES = ("postgresql", "sqlite", "mariadb")
COLUMNS = "id, number, customer_id, store_id, status, channel, amount, metadata, created_at, updated_at"
ROWS_SQL = f"SELECT {COLUMNS} FROM transactions ORDER BY id"
GROUP_SQL = (
    "SELECT store_id, status, count(id), sum(amount), avg(amount), min(amount), max(amount) "
    "FROM transactions GROUP BY store_id, status ORDER BY store_id, status"
)
TRANSACTIONS_PER_CUSTOMER = 10
GZIP_LEVEL = 6  # the export's compression level (OutputSettings), so both sides do the same work
ZSTD_LEVEL = 3  # the export's zstd level (serialization.ZSTD_LEVEL), the zstd tool's default
# DuckDB's postgres extension as a peer: PyPI's duckdb-extension-postgres pins the one duckdb it was built for
# (1.5.5; there is none for the project's duckdb 2.0.1), so both go into a folder of their own (bench/duckdb_postgres.py).
DUCKDB_PEER = ("duckdb==1.5.5", "duckdb-extension-postgres==1.5.5")
POLL_SECONDS = 0.02


@dataclass
class Measurement:
    seconds: float
    peak_rss_mb: float
    output_bytes: int
    detail: dict = field(default_factory=dict)
    # User+system CPU of the child's whole process tree (its threads and the processes it waited for), the
    # figure a shared machine disturbs least; a database server's own CPU (PostgreSQL's backend) is not in it.
    cpu_seconds: float = 0.0


@dataclass
class Method:
    name: str
    reference: str | None  # the method this one's time is divided by (None: it is a reference)
    command: list[str]
    output: Path
    env: dict = field(default_factory=dict)
    slow: bool = False  # run in the first round only at large sizes (pandas, fast paths off)


def measure(command: list[str], output: Path, env: dict) -> Measurement:
    """Run the command; its wall time and the peak RSS summed over its process tree."""
    output.unlink(missing_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    cpu_before = os.times()
    started = time.perf_counter()
    process = psutil.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    stdout, stderr = process.communicate()
    cpu_after = os.times()
    cpu = (cpu_after.children_user - cpu_before.children_user) + (cpu_after.children_system - cpu_before.children_system)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {stderr.decode()[-2000:]}")
    detail = {}
    lines = stdout.decode().strip().splitlines()
    if lines and lines[-1].startswith("{"):
        detail = json.loads(lines[-1])
    size = sum(f.stat().st_size for f in output.parent.glob(output.name)) if output.parent.exists() else 0
    return Measurement(seconds, peak / 2**20, size, detail, cpu)


def psql(database: str, sql: str) -> list[str]:
    return ["psql", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", database, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]


def pg_url(database: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def mariadb(database: str | None, sql: str, *extra: str) -> list[str]:
    """The mariadb client; --quick prints each row as it arrives instead of buffering the result."""
    where = [database] if database else []
    return ["mariadb", "-h", MARIADB_HOST, "-P", MARIADB_PORT, "-u", MARIADB_USER, *extra, *where, "-e", sql]


def mariadb_url(database: str) -> str:
    return f"mysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{database}"


def ensure_data(customers: int, data_dir: Path, sources: list[str]) -> tuple[str, Path, int]:
    """The databases of this size for `sources`, built with the demo generator when missing; the row count
    of the first (the generator's seed makes every source's rows the same)."""
    database = f"export_bench_c{customers}"
    sqlite_path = data_dir / f"demo_c{customers}.sqlite"
    counts = []
    if "postgresql" in sources:
        exists = subprocess.run(psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{database}'") + ["-tA"], capture_output=True, text=True)
        if exists.stdout.strip() != "1":
            subprocess.run(psql("postgres", f'CREATE DATABASE "{database}"'), check=True)
            _generate(pg_url(database), customers)
        counts.append(subprocess.run(psql(database, "SELECT count(*) FROM transactions") + ["-tA"], capture_output=True, text=True, check=True).stdout)
    if "sqlite" in sources and not sqlite_path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _generate(f"sqlite:///{sqlite_path}.building", customers)
        Path(f"{sqlite_path}.building").rename(sqlite_path)
    if "mariadb" in sources:
        exists = subprocess.run(mariadb(None, f"SHOW DATABASES LIKE '{database}'", "-N"), capture_output=True, text=True, check=True)
        if not exists.stdout.strip():
            subprocess.run(mariadb(None, f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"), check=True)
            _generate(mariadb_url(database), customers)
        counts.append(subprocess.run(mariadb(database, "SELECT count(*) FROM transactions", "-N"), capture_output=True, text=True, check=True).stdout)
    if not counts:
        counts.append(subprocess.run(["sqlite3", str(sqlite_path), "SELECT count(*) FROM transactions"], capture_output=True, text=True, check=True).stdout)
    return database, sqlite_path, int(counts[0].strip())


def _generate(url: str, customers: int) -> None:
    print(f"building {customers} customers into {url.split('://')[0]} ...", file=sys.stderr, flush=True)
    code = "import sys; from export_pipelines.demo.generator import generate_demo_database as g; g(sys.argv[1], customers=int(sys.argv[2]), seed=42)"
    subprocess.run([PYTHON, "-c", code, url, str(customers)], check=True)


def drop_data(database: str, sqlite_path: Path, sources: list[str]) -> None:
    if "postgresql" in sources:
        subprocess.run(psql("postgres", f'DROP DATABASE IF EXISTS "{database}"'), check=True)
    if "mariadb" in sources:
        subprocess.run(mariadb(None, f"DROP DATABASE IF EXISTS `{database}`"), check=True)
    sqlite_path.unlink(missing_ok=True)


def ensure_duckdb_peer(folder: Path) -> None:
    """DUCKDB_PEER installed into `folder` (pip --target) unless it is there."""
    if not (folder / "duckdb_extension_postgres").exists():
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", "--target", str(folder), *DUCKDB_PEER], check=True)


def methods_for(database: str, sqlite_path: Path, out: Path, sources: list[str], duckdb_peer: Path | None = None) -> list[Method]:
    stage = [PYTHON, str(BENCH / "stage_export.py")]
    pandas = [PYTHON, str(BENCH / "naive_pandas.py")]
    pg, sq, my = pg_url(database), f"sqlite:///{sqlite_path}", mariadb_url(database)
    fast_off = {"EXPORT_FAST_EXTRACT": "0"}
    shortcut_off = {"EXPORT_MAPPING_SHORTCUT": "0"}
    format_after = {"EXPORT_FORMAT_WHILE_EXTRACTING": "0"}
    copy_to_stdout = shlex.join(psql(database, f"\\copy ({ROWS_SQL}) TO STDOUT CSV HEADER"))
    # The client's tab-separated batch output, its fastest way to a file (INTO OUTFILE writes on the server's side).
    mariadb_batch = shlex.join(mariadb(database, ROWS_SQL, "--batch", "--quick"))
    mariadb_group = shlex.join(mariadb(database, GROUP_SQL, "--batch", "--quick"))
    postgresql = [
        Method("psql \\copy csv", None, psql(database, f"\\copy ({ROWS_SQL}) TO '{out / 'psql.csv'}' CSV HEADER"), out / "psql.csv"),
        Method("export pg csv", "psql \\copy csv", [*stage, pg, str(out / "pg")], out / "pg" / "export.csv"),
        # Issue 20 goal 5: the same export as a whole Dagster job (`export-pipelines run`), whole process against the stages' time.
        Method("export pg csv, whole Dagster job", "psql \\copy csv", [PYTHON, str(BENCH / "dagster_job.py"), pg, str(out / "pg_job")], out / "pg_job" / "export.csv"),
        # parallel.streams: the scaling curve of N connections reading key ranges in one snapshot (stages/streams.py).
        *(
            Method(f"export pg csv, {n} stream{'s' if n > 1 else ''}", "psql \\copy csv", [*stage, pg, str(out / f"pg_s{n}"), "--streams", str(n)], out / f"pg_s{n}" / "export.csv")
            for n in (1, 2, 4)
        ),
        Method("export pg csv, formatted after extract", "psql \\copy csv", [*stage, pg, str(out / "pg_after")], out / "pg_after" / "export.csv", format_after),
        Method("export pg csv, fast extract off", "psql \\copy csv", [*stage, pg, str(out / "pg_off")], out / "pg_off" / "export.csv", fast_off, slow=True),
        Method("export pg csv, mapping shortcut off", "psql \\copy csv", [*stage, pg, str(out / "pg_map")], out / "pg_map" / "export.csv", shortcut_off),
        Method("pandas read_sql+to_csv pg", "psql \\copy csv", [*pandas, pg, str(out / "pandas_pg.csv")], out / "pandas_pg.csv", slow=True),
        Method(f"psql \\copy | gzip -{GZIP_LEVEL}", None, ["bash", "-c", f"{copy_to_stdout} | gzip -{GZIP_LEVEL} > {out / 'psql.csv.gz'}"], out / "psql.csv.gz"),
        Method(f"export pg csv.gz (level {GZIP_LEVEL})", f"psql \\copy | gzip -{GZIP_LEVEL}", [*stage, pg, str(out / "pg_gz"), "--compression", "gzip"], out / "pg_gz" / "export.csv.gz"),
        Method(f"psql \\copy | zstd -{ZSTD_LEVEL}", None, ["bash", "-c", f"{copy_to_stdout} | zstd -q -{ZSTD_LEVEL} > {out / 'psql.csv.zst'}"], out / "psql.csv.zst"),
        Method(f"export pg csv.zst (level {ZSTD_LEVEL})", f"psql \\copy | zstd -{ZSTD_LEVEL}", [*stage, pg, str(out / "pg_zst"), "--compression", "zstd"], out / "pg_zst" / "export.csv.zst"),
        Method("psql GROUP BY csv", None, psql(database, f"\\copy ({GROUP_SQL}) TO '{out / 'psql_group.csv'}' CSV HEADER"), out / "psql_group.csv"),
        Method("export pg aggregated (pushdown)", "psql GROUP BY csv", [*stage, pg, str(out / "pg_agg"), "--aggregate"], out / "pg_agg" / "export.csv"),
    ]
    if duckdb_peer is not None:
        duck = [PYTHON, str(BENCH / "duckdb_postgres.py")]
        peer_env = {"PYTHONPATH": str(duckdb_peer)}
        postgresql[1:1] = [
            Method("duckdb postgres_query csv", "psql \\copy csv", [*duck, "query", pg, str(out / "duck_query" / "out.csv")], out / "duck_query" / "out.csv", peer_env),
            Method("duckdb postgres scanner csv (ORDER BY in DuckDB)", "psql \\copy csv", [*duck, "scan", pg, str(out / "duck_scan" / "out.csv")], out / "duck_scan" / "out.csv", peer_env),
        ]
    sqlite = [
        Method("sqlite3 -csv", None, ["bash", "-c", f"{shlex.join(['sqlite3', '-csv', '-header', str(sqlite_path), ROWS_SQL])} > {out / 'sqlite3.csv'}"], out / "sqlite3.csv"),
        Method("export sqlite csv", "sqlite3 -csv", [*stage, sq, str(out / "sq")], out / "sq" / "export.csv"),
        Method("export sqlite csv, formatted after extract", "sqlite3 -csv", [*stage, sq, str(out / "sq_after")], out / "sq_after" / "export.csv", format_after),
        Method("export sqlite csv, fast extract off", "sqlite3 -csv", [*stage, sq, str(out / "sq_off")], out / "sq_off" / "export.csv", fast_off, slow=True),
        Method("pandas read_sql+to_csv sqlite", "sqlite3 -csv", [*pandas, sq, str(out / "pandas_sq.csv")], out / "pandas_sq.csv", slow=True),
    ]
    mysql = [
        Method("mariadb --batch --quick", None, ["bash", "-c", f"{mariadb_batch} > {out / 'mariadb.tsv'}"], out / "mariadb.tsv"),
        Method("export mariadb csv", "mariadb --batch --quick", [*stage, my, str(out / "my")], out / "my" / "export.csv"),
        Method("export mariadb csv, formatted after extract", "mariadb --batch --quick", [*stage, my, str(out / "my_after")], out / "my_after" / "export.csv", format_after),
        Method("export mariadb csv, fast extract off", "mariadb --batch --quick", [*stage, my, str(out / "my_off")], out / "my_off" / "export.csv", fast_off, slow=True),
        Method("pandas read_sql+to_csv mariadb", "mariadb --batch --quick", [*pandas, my, str(out / "pandas_my.csv")], out / "pandas_my.csv", slow=True),
        Method("mariadb GROUP BY --batch", None, ["bash", "-c", f"{mariadb_group} > {out / 'mariadb_group.tsv'}"], out / "mariadb_group.tsv"),
        Method("export mariadb aggregated (pushdown)", "mariadb GROUP BY --batch", [*stage, my, str(out / "my_agg"), "--aggregate"], out / "my_agg" / "export.csv"),
    ]
    by_source = {"postgresql": postgresql, "sqlite": sqlite, "mariadb": mysql}
    return [method for source in sources for method in by_source[source]]


def with_baseline(methods: list[Method], tree: Path) -> list[Method]:
    """Each export method followed by the same export from another checkout (`tree`, e.g. main's worktree), run
    with that checkout first on PYTHONPATH: a before/after in the same interleaved rounds."""
    tree = tree.resolve()
    found = []
    for method in methods:
        found.append(method)
        if method.name.startswith("export") and "zstd" not in method.command:  # the baseline may not know zstd
            command = [PYTHON, str(tree / "bench" / "stage_export.py"), *method.command[2:]]
            command[3] = command[3] + "_baseline"
            output = Path(command[3]) / method.output.name
            found.append(Method(f"{method.name} [baseline {tree.name}]", method.reference, command, output, {**method.env, "PYTHONPATH": str(tree)}, method.slow))
    return found


def run_size(customers: int, args: argparse.Namespace) -> list[dict]:
    database, sqlite_path, rows = ensure_data(customers, args.data_dir, args.sources)
    results: dict[str, list[Measurement]] = {}
    with tempfile.TemporaryDirectory(dir=args.work_dir) as folder:
        out = Path(folder)
        peer = args.data_dir / ("peer-" + "-".join(DUCKDB_PEER).replace("==", "-"))
        methods = [m for m in methods_for(database, sqlite_path, out, args.sources, peer) if not any(word in m.name for word in args.skip_method)]
        if any(m.name.startswith("duckdb") for m in methods):
            ensure_duckdb_peer(peer)
        if args.baseline_tree is not None:
            methods = with_baseline(methods, args.baseline_tree)
        for round_number in range(args.repeat):
            for method in methods:
                if method.slow and round_number > 0 and rows > args.slow_once_above:
                    continue
                measurement = measure(method.command, method.output, method.env)
                results.setdefault(method.name, []).append(measurement)
                print(f"  [{rows} rows, round {round_number + 1}] {method.name}: {measurement.seconds:.2f} s, {measurement.peak_rss_mb:.0f} MB", file=sys.stderr, flush=True)
                if method.output.parent != out:
                    shutil.rmtree(method.output.parent, ignore_errors=True)
                else:
                    method.output.unlink(missing_ok=True)
    if not args.keep_data:
        drop_data(database, sqlite_path, args.sources)
    # An export's time is its stages' (extract+map+serialize, as the goals count it); the process's
    # own wall time, imports included, is shown beside it.
    medians = {name: statistics.median(_seconds(m) for m in runs) for name, runs in results.items()}
    cpu_medians = {name: statistics.median(m.cpu_seconds for m in runs) for name, runs in results.items()}
    table = []
    for method in methods:
        runs = results[method.name]
        seconds = medians[method.name]
        output_bytes = statistics.median(m.output_bytes for m in runs)
        stages = {k: round(statistics.median(m.detail["seconds"][k] for m in runs), 2) for k in runs[0].detail.get("seconds", {})}
        table.append(
            {
                "method": method.name,
                "rows": rows,
                "runs": len(runs),
                "seconds": seconds,
                "process_seconds": statistics.median(m.seconds for m in runs),
                "rows_per_s": rows / seconds,
                "mb_per_s": output_bytes / 2**20 / seconds,
                "output_mb": output_bytes / 2**20,
                "cpu_seconds": statistics.median(m.cpu_seconds for m in runs),
                "cpu_ratio": statistics.median(m.cpu_seconds for m in runs) / cpu_medians.get(method.reference, math.nan) if method.reference else 1.0,
                "peak_rss_mb": max(m.peak_rss_mb for m in runs),
                # NaN where the reference was skipped (--skip-method).
                "ratio": seconds / medians.get(method.reference, math.nan) if method.reference else 1.0,
                "reference": method.reference or "(reference)",
                "stages": stages,
            }
        )
    return table


def _seconds(measurement: Measurement) -> float:
    return measurement.detail["seconds"]["total"] if measurement.detail else measurement.seconds


def format_table(rows: list[dict]) -> str:
    header = "| method | rows | runs | seconds | process s | CPU s | rows/s | MB/s | output MB | peak RSS MB | ratio | CPU ratio | to | stage seconds |"
    lines = [header, "|" + "---|" * 14]
    for r in rows:
        stages = ", ".join(f"{k} {v}" for k, v in r["stages"].items() if k != "total")
        lines.append(
            f"| {r['method']} | {r['rows']:,} | {r['runs']} | {r['seconds']:.2f} | {r['process_seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['rows_per_s']:,.0f} | {r['mb_per_s']:.0f} | {r['output_mb']:.1f} "
            f"| {r['peak_rss_mb']:.0f} | {r['ratio']:.2f} | {r['cpu_ratio']:.2f} | {r['reference']} | {stages} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000], help="transactions per size (approximate)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slow-once-above", type=int, default=2_000_000, help="above this many rows, pandas and fast-paths-off run once")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "export_bench")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--keep-data", action="store_true", help="keep the databases for the next run")
    parser.add_argument("--skip-method", nargs="*", default=[], help="skip methods whose name contains one of these words")
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES), help="the databases to build and export from")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--baseline-tree", type=Path, help="also run each export from this checkout (before/after in the same rounds)")
    args = parser.parse_args(argv)
    ensure_tools()
    table = []
    for rows in args.rows:
        table += run_size(rows // TRANSACTIONS_PER_CUSTOMER, args)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    print(format_table(table))
    return 0


def ensure_tools() -> None:
    """The sqlite3 shell is the SQLite reference, zstd the zstd one; Debian's packages provide them."""
    missing = [tool for tool in ("sqlite3", "zstd") if shutil.which(tool) is None]
    if missing and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


if __name__ == "__main__":
    sys.exit(main())
