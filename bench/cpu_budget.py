"""Where one PostgreSQL export's CPU goes: each component of the stages alone and in turn, in one process.

    python bench/cpu_budget.py [URL] [--repeat N]

The bench's 10-column transactions export (bench/stage_export.py's spec), 1 M rows with the
bench's data. Each component runs on the output of the one before, held in memory: ADBC
reading every batch of the query (binary COPY), the COUNT(*), the casts to the stage types,
the rows' stage file (LZ4), mapping and formatting the lines, the lines' stage file (LZ4, and
uncompressed for comparison), serialize writing the CSV from the lines. For each it prints the
CPU seconds of this process's threads, of the PostgreSQL backends that ended meanwhile (the
postmaster's cutime + cstime: the server must run on this machine, and other sessions'
backends that end meanwhile count too) and the wall seconds, one JSON line per repeat.
"""

from __future__ import annotations

import time

_STARTED = time.process_time()

import argparse  # noqa: E402 - the imports' own CPU is measured
import datetime as dt  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.ipc as ipc  # noqa: E402
import yaml  # noqa: E402

from export_pipelines.database_urls import normalize_url  # noqa: E402
from export_pipelines.source import session_engine  # noqa: E402
from export_pipelines.spec.loader import load_config  # noqa: E402
from export_pipelines.stages import arrow_extract  # noqa: E402
from export_pipelines.stages.arrow_runtime import prepare_pyarrow  # noqa: E402
from export_pipelines.stages.extract import source_dialect, source_schema  # noqa: E402
from export_pipelines.stages.lines_alongside import line_formatter  # noqa: E402
from export_pipelines.stages.query import PROBLEM_COLUMN, build_query, count_query  # noqa: E402
from export_pipelines.stages.serialization import OutputSettings, dialect_of, write_files  # noqa: E402
from export_pipelines.stages.stage_files import read_batches  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage_export import export_spec  # noqa: E402

IMPORTS_CPU = time.process_time() - _STARTED
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/export_bench_c100000"
# Backends end (and the postmaster reaps them) just after their connection closes.
REAP_SECONDS = 0.3


def postmaster_pid(connection: arrow_extract.ArrowConnection) -> int:
    backend = connection.scalar("SELECT pg_backend_pid()")
    return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])


def ended_backends_cpu(postmaster: int) -> float:
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def budget(url: str, work: Path) -> dict:
    prepare_pyarrow()
    spec = export_spec(False, "none", 50_000)
    with tempfile.TemporaryDirectory() as config_dir:
        (Path(config_dir) / "exports").mkdir()
        (Path(config_dir) / "exports" / "bench.yaml").write_text(yaml.safe_dump(spec))
        plan = load_config(Path(config_dir)).plans[spec["name"]]
    engine = session_engine(normalize_url(url))
    dialect = source_dialect(engine, plan)
    query = build_query(plan, dialect)
    rows_sql = arrow_extract.literal_sql(query, engine.dialect)
    count_sql = arrow_extract.literal_sql(count_query(query), engine.dialect)
    engine.dispose()
    settings = OutputSettings(dialect=dialect_of(plan.spec), compression="none", max_rows_per_file=None, archive_time=dt.datetime.now(dt.UTC))
    to_lines = line_formatter(plan, settings)
    schema = source_schema(plan.sources)
    with arrow_extract.ArrowConnection(engine.url) as connection:
        postmaster = postmaster_pid(connection)
    measured = {}

    def clock(name, run):
        server = ended_backends_cpu(postmaster)
        cpu, wall = time.process_time(), time.perf_counter()
        result = run()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        time.sleep(REAP_SECONDS)
        measured[name] = {"cpu": round(cpu, 3), "server_cpu": round(ended_backends_cpu(postmaster) - server, 3), "wall": round(wall, 3)}
        return result

    def read() -> list[pa.RecordBatch]:
        with arrow_extract.ArrowConnection(engine.url) as connection:
            reader = connection.reader(rows_sql, arrow_extract.batch_options("postgresql", 50_000))
            try:
                return list(reader)
            finally:
                reader.close()

    def count() -> int:
        with arrow_extract.ArrowConnection(engine.url) as connection:
            return connection.scalar(count_sql)

    def write(path: Path, batches: list[pa.RecordBatch], compression: str | None) -> None:
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, batches[0].schema, options=ipc.IpcWriteOptions(compression=compression)) as writer:
            for batch in batches:
                writer.write_batch(batch)

    batches = clock("adbc_read", read)
    clock("count", count)
    stage = clock("casts", lambda: [arrow_extract.to_stage_batch(b.drop_columns([PROBLEM_COLUMN]), schema=schema, sources=plan.sources) for b in batches])
    clock("rows_stage_file_lz4", lambda: write(work / "rows.arrow", stage, "lz4"))
    lines = clock("map_and_format_lines", lambda: [to_lines(batch) for batch in stage])
    clock("lines_stage_file_lz4", lambda: write(work / "lines.arrow", lines, "lz4"))
    clock("lines_stage_file_uncompressed", lambda: write(work / "lines_raw.arrow", lines, None))
    headers = [field.header for field in plan.fields]
    clock("serialize", lambda: write_files(read_batches(work / "lines.arrow", 50_000), headers, work, lambda part: "export.csv", settings, preformatted=True))
    return {"load": round(os.getloadavg()[0], 2), "imports_cpu": round(IMPORTS_CPU, 3), **measured}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", default=DEFAULT_URL)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as work:
            print(json.dumps(budget(args.url, Path(work))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
