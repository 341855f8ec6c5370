"""How loading the code location grows with the number of exports, and what a run's start-up costs.

    python bench/code_location_load.py [--sizes 10 100 1000] [--repeat 1] [--no-run] [--compare-with SRC]

For each size, a config folder of that many exports (copies of the nine demo specs under new
names, an `after` pointing at its own copy's upstream) is written to a temporary folder, and
each figure is taken in fresh processes:
- validate: `export-pipelines validate --config <folder>` wall time;
- load: `python -c "import export_pipelines.definitions"` (what a code server does at start and
  at each reload; a run worker did it too before it built only its run's exports) wall and CPU
  time and peak RSS, and the same plus Dagster's repository snapshot of every job, asset,
  schedule and sensor (what the code server sends the UI);
- a run worker's load: a fresh process rebuilding one export's job as the run worker does
  (Dagster's RECONSTRUCTION), wall and CPU time and peak RSS;
- run start-up: one export's run launched through a code server, as the UI launches it (the
  code server spawns the run worker, which loads the code location again): created -> started
  and created -> success, from the run's own record.
With --compare-with, another checkout (`git archive main | tar -x -C DIR`) is measured in turn with
this one, size by size, so both see the same load from other sessions (column `code`: this, other).
Also the floor of a run's start-up: `python -c pass` and `python -c "import dagster"`.
Prints a table; figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dagster_run import free_port, timed, wait_for_server  # noqa: E402

VENV_BIN = Path(sys.executable).parent
DEMO_CONFIG = Path(__file__).resolve().parent.parent / "export_pipelines" / "demo" / "config"
RUN_EXPORT = "voucherify_redemptions_c0"  # a snapshot export to the download folder

# What a run worker does before its run starts: rebuild the run's job from the code location.
RUN_WORKER_LOAD = (
    "from dagster._core.definitions.reconstruct import ReconstructableRepository as R; "
    f"R.for_module('export_pipelines.definitions', 'defs').get_reconstructable_job('{RUN_EXPORT}_job').get_definition()"
)

SNAPSHOT = """
import time
started = time.perf_counter()
import export_pipelines.definitions as d
loaded = time.perf_counter()
from dagster._core.remote_representation.external_data import RepositorySnap
repository = d.defs.get_repository_def()
RepositorySnap.from_def(repository)
print(loaded - started, time.perf_counter() - loaded, len(repository.job_names))
"""


def write_config(folder: Path, exports: int) -> Path:
    """A config folder of `exports` specs: the demo specs in name order, copy after copy, renamed
    `<name>_c<copy>` (apparel21_orders follows its own copy of apparel21_customers). The text is
    edited, not re-dumped, so YAML 1.1's `on:` (read as true) stays as the spec wrote it."""
    config = folder / f"config_{exports}"
    shutil.copytree(DEMO_CONFIG, config, ignore=shutil.ignore_patterns("exports"))
    (config / "exports").mkdir()
    specs = [(path.stem, path.read_text()) for path in sorted((DEMO_CONFIG / "exports").glob("*.yaml"))]
    for index in range(exports):
        stem, text = specs[index % len(specs)]
        copy = index // len(specs)
        text = re.sub(r"^name: (\w+)$", rf"name: \g<1>_c{copy}", text, flags=re.M)
        text = re.sub(r"^after: \{export: (\w+)", rf"after: {{export: \g<1>_c{copy}", text, flags=re.M)
        (config / "exports" / f"{stem}_c{copy}.yaml").write_text(text)
    return config


def launched_start_up(env: dict, folder: Path, repeat: int, root: Path) -> tuple[float, float, float]:
    """Seconds from the code server's start to its health; medians of created -> started and -> success."""
    from dagster import DagsterInstance, DagsterRunStatus

    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [str(VENV_BIN / "dagster"), "code-server", "start", "-m", "export_pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "code_server.log", "w"),
    )
    to_started, to_success = [], []
    try:
        wait_for_server(port, env, server)
        server_seconds = time.perf_counter() - started
        os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
        for _ in range(repeat):
            subprocess.run(
                [str(VENV_BIN / "dagster"), "job", "launch", "--grpc-host", "127.0.0.1", "--grpc-port", str(port), "-j", f"{RUN_EXPORT}_job"],
                env=env,
                check=True,
                capture_output=True,
            )
            with DagsterInstance.get() as instance:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    [record] = instance.get_run_records(limit=1)
                    if record.dagster_run.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
                        break
                    time.sleep(0.05)
            if record.dagster_run.status != DagsterRunStatus.SUCCESS:
                raise RuntimeError(f"the run ended {record.dagster_run.status}; see {env['DAGSTER_HOME']}")
            created = record.create_timestamp.timestamp()
            to_started.append(record.start_time - created)
            to_success.append(record.end_time - created)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return server_seconds, statistics.median(to_started), statistics.median(to_success)


def measure(size: int, config: Path, env: dict, args: argparse.Namespace, folder: Path, root: Path) -> dict:
    python = str(VENV_BIN / "python")
    validate = [timed([str(VENV_BIN / "export-pipelines"), "validate", "--config", str(config)], env) for _ in range(args.repeat)]
    load = [timed([python, "-c", "import export_pipelines.definitions"], env, root) for _ in range(args.repeat)]
    snapshot = [timed([python, "-c", SNAPSHOT], env, root) for _ in range(args.repeat)]
    worker = [timed([python, "-c", RUN_WORKER_LOAD], env, root) for _ in range(args.repeat)]
    snapshot_part = statistics.median(float(out.split()[1]) for *_, out in snapshot)

    def median(samples: list, field: int) -> float:
        return round(statistics.median(sample[field] for sample in samples), 2)

    row = {
        "exports": size,
        "validate s": median(validate, 0),
        "validate cpu s": median(validate, 1),
        "load s": median(load, 0),
        "load cpu s": median(load, 1),
        "load MB": max(sample[2] for sample in load),
        "load + snapshot s": median(snapshot, 0),
        "of it snapshot s": round(snapshot_part, 2),
        "load + snapshot MB": max(sample[2] for sample in snapshot),
        "jobs": int(snapshot[0][3].split()[2]),
        "run worker load s": median(worker, 0),
        "run worker load cpu s": median(worker, 1),
        "run worker load MB": max(sample[2] for sample in worker),
    }
    if not args.no_run:
        server, started, success = launched_start_up(env, folder, args.repeat, root)
        row |= {"code server up s": round(server, 2), "created->started s": round(started, 2), "created->success s": round(success, 2)}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=1, help="samples per figure (median), launched runs per size")
    parser.add_argument("--no-run", action="store_true", help="skip the launched runs (no code server)")
    parser.add_argument(
        "--compare-with", type=Path, metavar="SRC",
        help="another checkout of the project (e.g. `git archive main`): measured in turn with this one, size by size, on PYTHONPATH",
    )
    args = parser.parse_args(argv)
    python = str(VENV_BIN / "python")
    # Each checkout is measured from its own folder: `python -c` and the code server (its working
    # directory) put the current folder first on sys.path, ahead of PYTHONPATH and the editable install.
    trees = {"this": Path(__file__).resolve().parent.parent, **({"other": args.compare_with.resolve()} if args.compare_with else {})}
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        from export_pipelines.demo.generator import generate_demo_database

        database = folder / "demo.sqlite"
        generate_demo_database(f"sqlite:///{database}", customers=100, seed=42)
        base_env = {**os.environ, "EXPORT_SOURCE_URL": f"sqlite:///{database}", "EXPORT_REDIRECT_TO_DOWNLOAD": "1"}
        floor = {
            "python -c pass": timed([python, "-c", "pass"], base_env)[0],
            "import dagster": timed([python, "-c", "import dagster"], base_env)[0],
        }
        for size in sorted(args.sizes):
            config = write_config(folder, size)
            for tree, source in reversed(trees.items()):
                home = folder / f"home_{size}_{tree}"
                home.mkdir()
                settings = yaml.safe_load((Path(__file__).resolve().parent.parent / "dagster.yaml").read_text()) or {}
                # Launch at once, as `dagster dev` does once its daemon dequeues the run (the queue's poll is left out).
                settings["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}
                (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
                env = {**base_env, "EXPORT_PIPELINES_CONFIG": str(config), "DAGSTER_HOME": str(home)}
                env["PYTHONPATH"] = str(source)
                row = {"code": tree, **measure(size, config, env, args, folder, source)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print("floor: " + ", ".join(f"{k} {v:.2f} s" for k, v in floor.items()))
    columns = list(rows[-1])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
