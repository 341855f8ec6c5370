"""The bench's export as a whole Dagster job, in one process, as `export-pipelines run` executes it.

    python bench/dagster_job.py URL OUT_DIR [--compression gzip]

The same spec as bench/stage_export.py (export_spec) in a config folder of its own, with the
download target and a DAGSTER_HOME of its own under OUT_DIR (kept between rounds): the CLI's `run` loads the code location,
records the run in the instance and executes extract -> map -> serialize -> upload with the
in-process executor. What issue 20 goal 5 compares with the stages' own time: the whole process,
from the interpreter's start (psutil's create_time) to the run's end, Dagster's imports, the run
log and the upload to the download folder included.

Prints one JSON line: seconds {"total": whole process, "run": the run's start to end in the
instance, and each step's own seconds}, rows; the file is linked as OUT_DIR/export.<ext>.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage_export import export_spec  # noqa: E402

REPOSITORY = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--compression", default="none")
    parser.add_argument("--batch-size", type=int, default=50_000)
    args = parser.parse_args(argv)
    spec = export_spec(False, args.compression, args.batch_size)
    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    # One instance kept between rounds, as a deployment keeps its own (a new one's storage is created once).
    home = out_dir / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((REPOSITORY / "dagster.yaml").read_text())
    config = home / "config"
    (config / "exports").mkdir(parents=True, exist_ok=True)
    (config / "exports" / "bench.yaml").write_text(yaml.safe_dump(spec))
    os.environ.update({"DAGSTER_HOME": str(home), "EXPORT_PIPELINES_CONFIG": str(config), "EXPORT_SOURCE_URL": args.url})

    # Only this run's file in the download folder afterwards (retention would keep the earlier rounds').
    shutil.rmtree(home / "storage" / "downloads", ignore_errors=True)
    from export_pipelines.cli import main as cli_main

    if cli_main(["run", spec["name"]]) != 0:
        return 1
    total = time.time() - psutil.Process().create_time()

    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        stats = instance.get_run_stats(run.run_id)
        seconds = {"total": total, "run": stats.end_time - stats.launch_time if stats.launch_time else stats.end_time - stats.start_time}
        for step in instance.get_run_step_stats(run.run_id):
            seconds[step.step_key.split("__")[-1]] = step.end_time - step.start_time
    files = sorted((home / "storage" / "downloads" / spec["name"]).glob("*.csv*"))
    for each in files:
        linked = out_dir / f"export{each.name[each.name.index('.csv'):]}"  # export.csv, export.csv.gz
        linked.unlink(missing_ok=True)
        os.link(each, linked)
    print(json.dumps({"seconds": seconds, "files": [str(f) for f in files]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
