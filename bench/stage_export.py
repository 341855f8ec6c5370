"""One export through the stage functions (extract -> map -> [aggregate] -> serialize), no Dagster.

As the export's ops do, the extract formats the rows as the file's lines while it reads (map is then
skipped); EXPORT_FORMAT_WHILE_EXTRACTING=0 gives the earlier sequence.

    python bench/stage_export.py URL OUT_DIR [--aggregate] [--compression gzip] [--batch-size N] [--streams N]

--streams N reads the rows with `parallel: {streams: N}` (N PostgreSQL connections in one snapshot).

The bench runs it as a child process so its peak memory is measured from outside; it
prints one JSON line with each stage's seconds and the rows written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from export_pipelines.spec.loader import load_config
from export_pipelines.stages.aggregation import aggregate_stage_file
from export_pipelines.stages.extract import extract_to_stage_file
from export_pipelines.stages.mapping import map_stage_file
from export_pipelines.stages.lines_alongside import line_formatter
from export_pipelines.stages.serialization import OutputSettings, dialect_of, write_files
from export_pipelines.stages.stage_files import read_batches
from export_pipelines.database_urls import normalize_url
from export_pipelines.source import session_engine

# The reference query: 10 transaction columns incl. numeric, timestamptz and jsonb.
TRANSACTION_COLUMNS = ["id", "number", "customer_id", "store_id", "status", "channel", "amount", "metadata", "created_at", "updated_at"]


def export_spec(aggregate: bool, compression: str, batch_size: int, streams: int | None = None) -> dict:
    if aggregate:
        fields = [
            {"from": "store_id", "aggregation": "group"},
            {"from": "status", "aggregation": "group"},
            {"from": "id", "to": "transactions", "aggregation": "count"},
            {"from": "amount", "to": "revenue", "aggregation": "sum"},
            {"from": "amount", "to": "average", "aggregation": "avg"},
            {"from": "amount", "to": "smallest", "aggregation": "min"},
            {"from": "amount", "to": "largest", "aggregation": "max"},
        ]
    else:
        fields = [{"from": column} for column in TRANSACTION_COLUMNS]
    return {
        "name": "bench_transactions",
        "model": "transactions",
        "fields": fields,
        **({} if aggregate else {"order": "id"}),
        "compression": compression,
        "line_ending": "lf",
        "batch_size": batch_size,
        **({"parallel": {"streams": streams}} if streams else {}),
    }


def run(url: str, out_dir: Path, aggregate: bool, compression: str, batch_size: int, streams: int | None = None) -> dict:
    spec = export_spec(aggregate, compression, batch_size, streams)
    with tempfile.TemporaryDirectory() as config_dir:
        (Path(config_dir) / "exports").mkdir()
        (Path(config_dir) / "exports" / "bench.yaml").write_text(yaml.safe_dump(spec))
        config = load_config(Path(config_dir))
    assert not config.problems, [str(problem) for problem in config.problems]
    plan = config.plans[spec["name"]]
    engine = session_engine(normalize_url(url))
    work = out_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    settings = OutputSettings(
        dialect=dialect_of(plan.spec),
        compression=plan.spec.compression,
        max_rows_per_file=None,
        archive_time=dt.datetime.now(dt.UTC),
    )
    seconds = {}
    started = time.perf_counter()
    # As the export's extract op asks (factory.py): the lines formatted while extracting, where the format allows.
    extracted = extract_to_stage_file(
        engine, plan, work / "extract.arrow", batch_size=batch_size, lines_to=work / "lines.arrow", to_lines=line_formatter(plan, settings)
    )
    seconds["extract"] = time.perf_counter() - started
    engine.dispose()

    mark = time.perf_counter()
    rows_path = extracted.lines if extracted.lines is not None else work / "mapped.arrow"
    if extracted.lines is None:
        map_stage_file(plan, extracted.path, rows_path, batch_size=batch_size)
    seconds["map"] = time.perf_counter() - mark
    if aggregate:
        mark = time.perf_counter()
        aggregate_stage_file(plan, rows_path, work / "aggregated.arrow", batch_size=batch_size)
        rows_path = work / "aggregated.arrow"
        seconds["aggregate"] = time.perf_counter() - mark

    mark = time.perf_counter()
    files = write_files(
        read_batches(rows_path, batch_size),
        [f.header for f in plan.fields],
        out_dir,
        lambda part: f"export.{plan.ext}",
        settings,
        preformatted=extracted.lines is not None,
    )
    seconds["serialize"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    return {
        "rows": sum(f.rows for f in files),
        "bytes": sum(f.bytes for f in files),
        "files": [str(f.path) for f in files],
        "seconds": seconds,
        "streams": extracted.streams,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--aggregate", action="store_true")
    parser.add_argument("--compression", default="none")
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--streams", type=int, default=None, help="parallel.streams: connections reading key ranges in one snapshot")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.url, args.out_dir, args.aggregate, args.compression, args.batch_size, args.streams)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
