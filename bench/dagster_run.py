"""A whole Dagster run of a ~1 000-row export, launched the way the UI launches it.

    python bench/dagster_run.py [--repeat 3]

The UI's path: a code server holds the code location; "Materialize" creates a run and the
instance's DefaultRunLauncher asks the code server to start `dagster api execute_run` in a
new process, which loads the code location again and runs the job (in-process executor).
Here a `dagster code-server` plays the UI's server and `dagster job launch` creates and
launches the run against it; the run's own record gives the wall time the UI shows, from
creation to success. Also measured, as the floor: a bare Python start, `import dagster`,
importing the code location (what the code server does) and the run worker's load of the job
(the code location's modules and only the run's export: reconstruction.py).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

VENV_BIN = Path(sys.executable).parent
EXPORT = "bench_thousand"
# What the run worker does before the run starts: rebuild the job from the code location (a RECONSTRUCTION).
RUN_WORKER_LOAD = (
    "from dagster._core.definitions.reconstruct import ReconstructableRepository as R; "
    f"R.for_module('export_pipelines.definitions', 'defs').get_reconstructable_job('{EXPORT}_job').get_definition()"
)
DEMO_CUSTOMERS = 100  # about 1 000 transactions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seconds_of(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def prepare(folder: Path) -> dict:
    from export_pipelines.demo.generator import generate_demo_database

    database = folder / "demo.sqlite"
    counts = generate_demo_database(f"sqlite:///{database}", customers=DEMO_CUSTOMERS, seed=42)
    (folder / "config" / "exports").mkdir(parents=True)
    spec = {"name": EXPORT, "model": "transactions", "fields": [{"from": c} for c in ["id", "number", "amount", "metadata", "created_at"]], "order": "id"}
    (folder / "config" / "exports" / f"{EXPORT}.yaml").write_text(yaml.safe_dump(spec))
    home = folder / "home"
    home.mkdir()
    # Launch at once, as `dagster dev` does when its daemon dequeues the run (the queue's poll is left out).
    settings = yaml.safe_load((Path(__file__).resolve().parent.parent / "dagster.yaml").read_text()) or {}
    settings["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "EXPORT_PIPELINES_CONFIG": str(folder / "config"),
        "EXPORT_SOURCE_URL": f"sqlite:///{database}",
    }
    env["BENCH_ROWS"] = str(counts["transactions"])
    return env


def wait_for_server(port: int, env: dict, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the code server exited")
        check = subprocess.run([str(VENV_BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "--port", str(port)], env=env, capture_output=True)
        if check.returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("the code server did not start")


def launched_run(port: int, env: dict) -> dict:
    from dagster import DagsterInstance, DagsterRunStatus

    before = time.time()
    subprocess.run(
        [str(VENV_BIN / "dagster"), "job", "launch", "--grpc-host", "127.0.0.1", "--grpc-port", str(port), "-j", f"{EXPORT}_job"],
        env=env,
        check=True,
        capture_output=True,
    )
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with DagsterInstance.get() as instance:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            [record] = instance.get_run_records(limit=1)
            if record.dagster_run.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
                break
            time.sleep(0.05)
        run_id = record.dagster_run.run_id
        steps = {s.step_key.split("__")[-1]: round(s.end_time - s.start_time, 3) for s in instance.get_run_step_stats(run_id)}
        created = record.create_timestamp.timestamp()
    assert record.dagster_run.status == DagsterRunStatus.SUCCESS, record.dagster_run.status
    return {
        "created_to_success": record.end_time - created,
        "created_to_started": record.start_time - created,
        "started_to_success": record.end_time - record.start_time,
        "steps": steps,
        "cli_overhead_before_create": created - before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        env = prepare(Path(folder))
        python = str(VENV_BIN / "python")
        floor = {"python": [], "import dagster": [], "import code location": [], "run worker's job load": []}
        runs = []
        port = free_port()
        server = subprocess.Popen(
            [str(VENV_BIN / "dagster"), "code-server", "start", "-m", "export_pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(folder) / "code_server.log", "w"),
        )
        try:
            wait_for_server(port, env, server)
            for _ in range(args.repeat):
                floor["python"].append(seconds_of([python, "-c", "pass"], env))
                floor["import dagster"].append(seconds_of([python, "-c", "import dagster"], env))
                floor["import code location"].append(seconds_of([python, "-c", "import export_pipelines.definitions"], env))
                floor["run worker's job load"].append(seconds_of([python, "-c", RUN_WORKER_LOAD], env))
                runs.append(launched_run(port, env))
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a code server that hangs in shutdown must not lose the figures
                server.kill()
                server.wait()
    result = {
        "rows": int(env["BENCH_ROWS"]),
        "runs": len(runs),
        "created_to_success": statistics.median(r["created_to_success"] for r in runs),
        "created_to_started": statistics.median(r["created_to_started"] for r in runs),
        "started_to_success": statistics.median(r["started_to_success"] for r in runs),
        "steps": {k: statistics.median(r["steps"][k] for r in runs) for k in runs[0]["steps"]},
        "floor": {k: statistics.median(v) for k, v in floor.items()},
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
