"""One export fanned out over 1, 2 and 4 chunk steps (`parallel`), against the same export unsplit.

    python bench/fan_out.py [--customers 100000] [--chunks 0 1 2 4] [--repeat 1] [--compression none]

The data is bench/run.py's demo set in PostgreSQL (100 000 customers: about 1 M transactions,
the database export_bench_c100000, built when missing). Each variant is a whole Dagster run of
the export's own job in a child process, on a throwaway instance: chunks 0 is the unsplit export
(its job's in-process executor, the default), chunks N the fanned-out export (its job's
multiprocess executor: each step a process of its own, the chunk steps side by side). Printed
per variant: wall time of the child (run start to finish, interpreter start included), peak
RSS of the whole process tree and of its largest process (a step's; as a Celery worker would
hold it), polled with psutil every 20 ms; "extract+map": from the first reading step's start
to the last one's end (extract and map unsplit, the chunk steps side by side fanned out);
"write files": serialize unsplit, join_chunks fanned out; and the delivered file's sha256
(the same for every variant: the fan-out writes the unsplit export's bytes). Asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from run import PYTHON, ensure_data, pg_url  # noqa: E402  (bench/run.py: the shared data set)

EXPORT = "bench_fan_out"
COLUMNS = ["id", "number", "customer_id", "store_id", "status", "channel", "amount", "metadata", "created_at", "updated_at"]
POLL_SECONDS = 0.02


def spec(chunks: int, compression: str) -> dict:
    body = {
        "name": EXPORT,
        "model": "transactions",
        "fields": COLUMNS,
        "order": "id",
        "line_ending": "lf",
        "compression": compression,
        "file_name": "bench_fan_out.{ext}",
    }
    return {**body, "parallel": {"chunks": chunks}} if chunks else body


def export_job():
    """The export's own job, as its schedule launches it (reconstructable: the child's steps load it again)."""
    from export_pipelines.definitions import build_definitions
    from export_pipelines.naming import export_job_name
    from export_pipelines.spec.loader import config_dir, load_config

    return build_definitions(load_config(config_dir())).resolve_job_def(export_job_name(EXPORT))


def child(instance_dir: str) -> None:
    """Run the job once on a throwaway instance; print the steps' times and the delivered file as JSON."""
    import dagster as dg

    with dg.instance_for_test(temp_dir=instance_dir) as instance:
        with dg.execute_job(dg.reconstructable(export_job), instance=instance) as result:
            assert result.success
            run_id = result.run_id
        starts, ends = {}, {}
        for record in instance.get_records_for_run(run_id).records:
            event = record.event_log_entry
            if event.dagster_event is None or event.step_key is None:
                continue
            kind = event.dagster_event.event_type_value
            if kind == "STEP_START":
                starts[event.step_key] = event.timestamp
            elif kind == "STEP_SUCCESS":
                ends[event.step_key] = event.timestamp
        folder = Path(instance.storage_directory()) / "downloads" / EXPORT
        [delivered] = list(folder.iterdir())
        digest = hashlib.sha256(delivered.read_bytes()).hexdigest()
    reading = [key for key in starts if "_chunk[" in key or key.endswith(("__extract", "__map"))]
    writing = [key for key in starts if key.endswith(("__join_chunks", "__serialize"))]
    print(json.dumps({
        "steps": len(starts),
        # From the first reading step's start to the last one's end: the chunks side by side, or extract then map.
        "read_seconds": round(max(ends[k] for k in reading) - min(starts[k] for k in reading), 2),
        "write_seconds": round(sum(ends[k] - starts[k] for k in writing), 2),
        "bytes": delivered.stat().st_size,
        "sha256": digest[:16],
        "step_seconds": {key.rsplit("__", 1)[1]: round(ends[key] - starts[key], 2) for key in starts if key in ends},
        "run_seconds": round(max(ends.values()) - min(starts.values()), 2),
    }))


def measure(chunks: int, args: argparse.Namespace, url: str, folder: Path) -> dict:
    work = Path(tempfile.mkdtemp(dir=folder))
    config = work / "config"
    (config / "exports").mkdir(parents=True)
    (config / "exports" / f"{EXPORT}.yaml").write_text(yaml.safe_dump(spec(chunks, args.compression)))
    (work / "instance").mkdir()
    env = {**os.environ, "EXPORT_PIPELINES_CONFIG": str(config), "EXPORT_SOURCE_URL": url, "DAGSTER_HOME": str(work / "instance")}
    env.pop("EXPORT_EXECUTOR", None)
    started = time.perf_counter()
    process = psutil.Popen([PYTHON, __file__, "--child", str(work / "instance")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tree_peak = process_peak = 0
    while process.poll() is None:
        try:
            sizes = [p.memory_info().rss for p in [process, *process.children(recursive=True)] if p.is_running()]
            tree_peak, process_peak = max(tree_peak, sum(sizes)), max(process_peak, *sizes)
        except (psutil.Error, ValueError):
            pass
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"chunks {chunks} failed:\n{stderr.decode()[-4000:]}")
    return {"seconds": seconds, "tree_mb": tree_peak / 2**20, "process_mb": process_peak / 2**20, **json.loads(stdout.decode().strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 1, 2, 4], help="0: the export unsplit")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--compression", default="none", choices=["none", "gzip", "zip"])
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "export_bench")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    database, _, rows = ensure_data(args.customers, args.data_dir, ["postgresql"])
    load_before = os.getloadavg()[0]
    results: dict[int, list[dict]] = {chunks: [] for chunks in args.chunks}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeat):
            for chunks in args.chunks:  # interleaved rounds: the machine's load drifts
                results[chunks].append(measure(chunks, args, pg_url(database), Path(folder)))
    print(f"{rows:,} rows, PostgreSQL, csv {args.compression}, medians of {args.repeat}; {os.cpu_count()} cores, "
          f"load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after (other sessions share the cores)")
    print("| variant | steps | wall s | extract+map s | write files s | peak RSS tree MB | peak RSS largest process MB | bytes | sha256 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for chunks, runs in results.items():
        def median(key: str) -> float:
            return statistics.median(run[key] for run in runs)

        last = runs[-1]
        name = "unsplit (in-process)" if chunks == 0 else f"{chunks} chunk(s) (multiprocess)"
        print(f"| {name} | {last['steps']} | {median('seconds'):.2f} | {median('read_seconds'):.2f} | {median('write_seconds'):.2f} | "
              f"{median('tree_mb'):.0f} | {median('process_mb'):.0f} | {last['bytes']:,} | {last['sha256']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
