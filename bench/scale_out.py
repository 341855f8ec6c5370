"""The scale-out figure: one export unsplit and fanned out over N chunk steps on the Celery profile.

    python bench/scale_out.py [--customers 100000] [--chunks 0 1 2 4] [--workers 2] [--repeat 1]

The data is bench/run.py's demo set in PostgreSQL (100 000 customers: about 1 M transactions).
The profile is deploy/'s, on this machine: a PostgreSQL instance database of its own
(export_bench_scale_out_instance, made anew), Redis database 14 as broker and result backend,
`--workers` Celery workers started as docs/scale-out.md starts them (prefork, one step at a
time), stage files in the instance's local folder (the workers share this machine's disk).
Each variant is `export-pipelines run` of its export (the run's process hands every step to
the workers). Printed per variant: wall time of the run command, peak RSS of each worker's
process tree (psutil, every 20 ms), and the delivered file's size and sha256 (the same for
every variant: the fan-out writes the unsplit export's bytes). Asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis
import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from fan_out import spec  # noqa: E402  (bench/fan_out.py: the same export)
from run import PG_HOST, PG_PORT, PG_USER, ensure_data, pg_url, psql  # noqa: E402

REPO = BENCH.parent
BIN = Path(sys.executable).parent
INSTANCE_DB = "export_bench_scale_out_instance"
REDIS_URL = "redis://127.0.0.1:6379/14"
POLL_SECONDS = 0.02


def variant_name(chunks: int) -> str:
    return f"bench_scale_out_c{chunks}"


def start_worker(name: str, env: dict, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(REPO / "deploy" / "celery.yaml"),
         "-n", name, "--", "--concurrency", "1"],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if f"{name}@" in log.read_text() and " ready." in log.read_text():
            return process
        if process.poll() is not None:
            raise SystemExit(f"worker {name} exited: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    raise SystemExit(f"worker {name} not ready: {log.read_text()[-2000:]}")


def session_rss(leader: int) -> int:
    """RSS summed over the processes of the session `leader` leads (a worker and its pool process)."""
    total = 0
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getsid(process.pid) == leader:
                total += process.memory_info().rss
        except (psutil.Error, OSError):
            continue
    return total


def run_variant(chunks: int, env: dict, workers: list[subprocess.Popen], home: Path) -> dict:
    name = variant_name(chunks)
    started = time.perf_counter()
    command = subprocess.Popen([str(BIN / "export-pipelines"), "run", name], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peaks = [0] * len(workers)
    while command.poll() is None:
        for index, worker in enumerate(workers):
            peaks[index] = max(peaks[index], session_rss(worker.pid))
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    output = command.communicate()[0].decode()
    if command.returncode != 0:
        raise SystemExit(f"chunks {chunks} failed:\n{output[-4000:]}")
    [delivered] = list((home / "storage" / "downloads" / name).iterdir())
    data = delivered.read_bytes()
    shutil.rmtree(delivered.parent)
    return {"seconds": seconds, "worker_mb": [peak / 2**20 for peak in peaks], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()[:16]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 1, 2, 4], help="0: the export unsplit")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "export_bench")
    args = parser.parse_args(argv)
    database, _, rows = ensure_data(args.customers, args.data_dir, ["postgresql"])
    subprocess.run(psql("postgres", f"DROP DATABASE IF EXISTS {INSTANCE_DB}"), check=True)
    subprocess.run(psql("postgres", f"CREATE DATABASE {INSTANCE_DB}"), check=True)
    redis.Redis.from_url(REDIS_URL).flushdb()
    with tempfile.TemporaryDirectory() as folder:
        home, config = Path(folder) / "home", Path(folder) / "config"
        home.mkdir()
        shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
        (config / "exports").mkdir(parents=True)
        for chunks in args.chunks:
            variant = {**spec(chunks, "none"), "name": variant_name(chunks), "file_name": "scale_out.{ext}"}
            (config / "exports" / f"{variant['name']}.yaml").write_text(yaml.safe_dump(variant))
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DAGSTER_HOME": str(home),
            "DAGSTER_POSTGRES_URL": f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{INSTANCE_DB}",
            "EXPORT_EXECUTOR": "celery",
            "EXPORT_CELERY_BROKER_URL": REDIS_URL,
            "EXPORT_CELERY_BACKEND_URL": REDIS_URL,
            "EXPORT_PIPELINES_CONFIG": str(config),
            "EXPORT_SOURCE_URL": pg_url(database),
        }
        env.pop("EXPORT_WORK_URL", None)
        workers = [start_worker(f"bench_worker_{n}", env, Path(folder) / f"worker_{n}.log") for n in range(1, args.workers + 1)]
        load_before = os.getloadavg()[0]
        results: dict[int, list[dict]] = {chunks: [] for chunks in args.chunks}
        try:
            for _ in range(args.repeat):
                for chunks in args.chunks:
                    results[chunks].append(run_variant(chunks, env, workers, home))
        finally:
            for worker in workers:
                try:
                    os.killpg(worker.pid, 15)
                    worker.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(worker.pid, 9)
        load_after = os.getloadavg()[0]
    subprocess.run(psql("postgres", f"DROP DATABASE IF EXISTS {INSTANCE_DB}"), check=True)
    print(f"{rows:,} transactions, {args.workers} Celery workers, {os.cpu_count()} cores, load average {load_before:.1f} -> {load_after:.1f}")
    print("| variant | runs | wall s (median) | peak RSS per worker MB | bytes | sha256 |")
    print("|---|---|---|---|---|---|")
    for chunks, runs in results.items():
        label = "unsplit" if chunks == 0 else f"{chunks} chunk(s)"
        peaks = " / ".join(f"{max(run['worker_mb'][i] for run in runs):.0f}" for i in range(args.workers))
        print(f"| {label} | {len(runs)} | {statistics.median(run['seconds'] for run in runs):.1f} | {peaks} | {runs[0]['bytes']:,} | {runs[0]['sha256']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
