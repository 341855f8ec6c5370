"""A whole Dagster run of a ~1 000-row export, launched the way the UI launches it.

    python bench/dagster_run.py [--repeat 3] [--compare-with SRC]

The UI's path: a code server holds the code location; "Materialize" creates a run and the
instance's DefaultRunLauncher asks the code server to start the run in a new process (the
code server's `multiprocessing` spawn: a fresh Python that imports Dagster, opens the
instance, loads the code location again as a RECONSTRUCTION and runs the job with the
in-process executor). Here a `dagster code-server start` plays the UI's server and `dagster job
launch` creates and launches the run against it; the run's own record gives the wall time the
UI shows, from creation to success, and its event log the phases: created -> the run worker's
first event ("Started process": Python, Dagster, the instance's storage) -> RUN_START (the code
location's load) -> the steps -> success. The run worker's CPU seconds are read from /proc
(psutil, every 10 ms) while it lives: other sessions share the 2 cores, so wall times vary
2x from run to run, and CPU seconds say what the run costs.

Also measured, as the floor, each in a fresh process with wall and CPU seconds (wait4): a bare
Python start, `import dagster`, Dagster's instance (its SQL storage's imports), importing the
code location (what the code server does) and the run worker's load of the job (the code
location's modules and only the run's export: reconstruction.py).

With --compare-with, another checkout (`git archive main | tar -x -C DIR`, on PYTHONPATH, with
its own code server and instance) is measured in turn with this one, run by run, so both see the
same load from other sessions. Prints JSON; figures, not assertions.
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
import threading
import time
from pathlib import Path

import psutil
import yaml

VENV_BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parent.parent
EXPORT = "bench_thousand"
# What the run worker does before the run starts: rebuild the job from the code location (a RECONSTRUCTION).
RUN_WORKER_LOAD = (
    "from dagster._core.definitions.reconstruct import ReconstructableRepository as R; "
    f"R.for_module('export_pipelines.definitions', 'defs').get_reconstructable_job('{EXPORT}_job').get_definition()"
)
# What the run worker does before it reports its process started: open the instance (Dagster's SQL storage).
OPEN_INSTANCE = "from dagster import DagsterInstance; DagsterInstance.get().get_runs(limit=1)"
DEMO_CUSTOMERS = 100  # about 1 000 transactions
PHASES = ("to process started", "to RUN_START", "steps and event log", "after last step")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(command: list[str], env: dict, cwd: Path | None = None) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds, peak RSS in MB (of this child alone, from wait4) and stdout.
    CPU seconds matter here: other sessions share the 2 cores, so wall time varies 2x run to run.
    cwd: `python -c` puts it first on sys.path, before PYTHONPATH (the checkout measured)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        # validate exits 1 when a spec has problems; anything else failing is a fault of the bench.
        if process.returncode and not (process.returncode == 1 and "validate" in command):
            raise RuntimeError(f"{command} failed: {err.read().decode()[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, text


def prepare(folder: Path) -> dict:
    from export_pipelines.demo.generator import generate_demo_database

    database = folder / "demo.sqlite"
    counts = generate_demo_database(f"sqlite:///{database}", customers=DEMO_CUSTOMERS, seed=42)
    (folder / "config" / "exports").mkdir(parents=True)
    spec = {"name": EXPORT, "model": "transactions", "fields": [{"from": c} for c in ["id", "number", "amount", "metadata", "created_at"]], "order": "id"}
    (folder / "config" / "exports" / f"{EXPORT}.yaml").write_text(yaml.safe_dump(spec))
    env = {
        **os.environ,
        "EXPORT_PIPELINES_CONFIG": str(folder / "config"),
        "EXPORT_SOURCE_URL": f"sqlite:///{database}",
    }
    env["BENCH_ROWS"] = str(counts["transactions"])
    return env


def instance_home(folder: Path, name: str) -> Path:
    home = folder / f"home_{name}"
    home.mkdir()
    # Launch at once, as `dagster dev` does when its daemon dequeues the run (the queue's poll is left out).
    settings = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text()) or {}
    settings["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    return home


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


class RunWorkerCpu:
    """The CPU seconds of the code server's run worker (its `multiprocessing` spawn child), read until it exits."""

    def __init__(self, server: subprocess.Popen):
        self._server = psutil.Process(server.pid)
        self._known = {child.pid for child in self._server.children(recursive=True)}
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        worker = None
        while not self._stop.is_set() and worker is None:
            for child in self._server.children(recursive=True):
                try:
                    if child.pid not in self._known and "--multiprocessing-fork" in child.cmdline():
                        worker = child
                except psutil.Error:
                    continue
            time.sleep(0.01)
        while worker is not None:
            try:
                times = worker.cpu_times()
                self.seconds = times.user + times.system
            except psutil.Error:
                return
            time.sleep(0.01)

    def stop(self) -> float:
        """The worker's CPU seconds once it has exited (0.0 if it was never seen)."""
        self._stop.set()
        self._thread.join(timeout=30)
        return self.seconds


def launched_run(port: int, env: dict, server: subprocess.Popen) -> dict:
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

    worker_cpu = RunWorkerCpu(server)
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
        events = [(e.dagster_event.event_type, e.timestamp) for e in instance.all_logs(run_id) if e.dagster_event]
        created = record.create_timestamp.timestamp()
    assert record.dagster_run.status == DagsterRunStatus.SUCCESS, record.dagster_run.status
    process_started = next(t for kind, t in events if kind == DagsterEventType.ENGINE_EVENT)  # "Started process for run"
    last_step = max(t for kind, t in events if kind == DagsterEventType.STEP_SUCCESS)
    return {
        "created_to_success": record.end_time - created,
        "created_to_started": record.start_time - created,
        "started_to_success": record.end_time - record.start_time,
        "phases": dict(zip(PHASES, (process_started - created, record.start_time - process_started, last_step - record.start_time, record.end_time - last_step))),
        "steps": steps,
        "run worker cpu": worker_cpu.stop(),
        "cli_overhead_before_create": created - before,
    }


def floor_of(env: dict, root: Path) -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds of each floor figure, in fresh processes."""
    python = str(VENV_BIN / "python")
    commands = {
        "python": "pass",
        "import dagster": "import dagster",
        "dagster + instance": OPEN_INSTANCE,
        "import code location": "import export_pipelines.definitions",
        "run worker's job load": RUN_WORKER_LOAD,
    }
    return {name: timed([python, "-c", code], env, root)[:2] for name, code in commands.items()}


def summary(runs: list[dict], floors: list[dict]) -> dict:
    def median(values) -> float:
        return round(statistics.median(values), 3)

    return {
        "runs": len(runs),
        "created_to_success": median(r["created_to_success"] for r in runs),
        "created_to_started": median(r["created_to_started"] for r in runs),
        "started_to_success": median(r["started_to_success"] for r in runs),
        "phases": {k: median(r["phases"][k] for r in runs) for k in PHASES},
        "steps": {k: median(r["steps"][k] for r in runs) for k in runs[0]["steps"]},
        "run worker cpu": median(r["run worker cpu"] for r in runs),
        "floor wall, cpu": {k: [median(f[k][0] for f in floors), median(f[k][1] for f in floors)] for k in floors[0]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--compare-with", type=Path, metavar="SRC",
        help="another checkout of the project (e.g. `git archive main`): measured in turn with this one, on PYTHONPATH",
    )
    args = parser.parse_args(argv)
    # Each checkout is measured from its own folder: `python -c` and the code server (its working
    # directory) put the current folder first on sys.path, ahead of PYTHONPATH and the editable install.
    trees = {"this": REPO_ROOT, **({"other": args.compare_with.resolve()} if args.compare_with else {})}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        base_env = prepare(folder)
        envs, servers, ports = {}, {}, {}
        try:
            for tree, source in trees.items():
                envs[tree] = {**base_env, "DAGSTER_HOME": str(instance_home(folder, tree)), "PYTHONPATH": str(source)}
                ports[tree] = free_port()
                servers[tree] = subprocess.Popen(
                    [str(VENV_BIN / "dagster"), "code-server", "start", "-m", "export_pipelines.definitions", "-h", "127.0.0.1", "-p", str(ports[tree])],
                    env=envs[tree],
                    cwd=source,
                    stdout=subprocess.DEVNULL,
                    stderr=open(folder / f"code_server_{tree}.log", "w"),
                )
            for tree in trees:
                wait_for_server(ports[tree], envs[tree], servers[tree])
            runs = {tree: [] for tree in trees}
            floors = {tree: [] for tree in trees}
            for _ in range(args.repeat):
                for tree in trees:
                    floors[tree].append(floor_of(envs[tree], trees[tree]))
                    runs[tree].append(launched_run(ports[tree], envs[tree], servers[tree]))
                    load.append(os.getloadavg()[0])
        finally:
            for server in servers.values():
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:  # a code server that hangs in shutdown must not lose the figures
                    server.kill()
                    server.wait()
    result = {
        "rows": int(base_env["BENCH_ROWS"]),
        "load average (1 min) during": [round(min(load), 1), round(max(load), 1)],
        **{tree: summary(runs[tree], floors[tree]) for tree in trees},
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
