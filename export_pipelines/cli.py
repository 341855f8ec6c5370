"""export-pipelines: the command line for people and scripts outside the Dagster UI."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

DEFAULT_DAGSTER_HOME = ".dagster_home"
DEMO_WINDOWS = 7


def _ensure_dagster_home() -> Path:
    """Runs are recorded in DAGSTER_HOME so `dagster dev` shows them later; default ./.dagster_home."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(DEFAULT_DAGSTER_HOME).resolve())))
    home.mkdir(parents=True, exist_ok=True)
    return home


def cmd_validate(args: argparse.Namespace) -> int:
    from export_pipelines.spec.loader import config_dir, load_config

    root = Path(args.config).resolve() if args.config else config_dir()
    config = load_config(root)
    for problem in config.problems:
        print(f"ERROR {problem}")
    print(f"{root}: {len(config.plans)} valid export(s), {len(config.problems)} problem(s)")
    return 1 if config.problems else 0


def cmd_demo(args: argparse.Namespace) -> int:
    home = _ensure_dagster_home()
    from dagster import DagsterInstance

    from export_pipelines.automation.windows import latest_windows, partitions_for, range_tags
    from export_pipelines.demo.generator import demo_data_end, generate_demo_database
    from export_pipelines.naming import ALL_EXPORTS_JOB, export_job_name
    from export_pipelines.spec.loader import config_dir, load_config
    from export_pipelines.source import SOURCE_URL_ENV_VAR, demo_database_path

    if not os.environ.get(SOURCE_URL_ENV_VAR):
        database = demo_database_path(home)
        if args.rebuild or not database.exists():
            database.parent.mkdir(parents=True, exist_ok=True)
            counts = generate_demo_database(f"sqlite:///{database}", customers=args.customers, seed=args.seed)
            print(f"Built demo database {database}: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    from export_pipelines.definitions import defs

    instance = DagsterInstance.get()
    # A job cannot mix partitioned and unpartitioned assets: snapshots run together, each
    # incremental export runs once over its latest week of complete windows.
    # The demo keeps every file local, whatever target a spec names: no partner server is involved.
    run_config = {"resources": {"delivery_settings": {"config": {"redirect_to_download": True}}}}
    plans = load_config(config_dir()).plans
    results = []
    if any(plan.spec.incremental is None for plan in plans.values()):
        job = defs.resolve_job_def(ALL_EXPORTS_JOB)
        results.append(job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False))
    as_of = demo_data_end() if not os.environ.get(SOURCE_URL_ENV_VAR) else dt.datetime.now(dt.UTC)
    for name, plan in plans.items():
        partitions = partitions_for(plan.spec.incremental)
        if partitions is not None:
            key_range = latest_windows(partitions, as_of, count=DEMO_WINDOWS)
            job = defs.resolve_job_def(export_job_name(name))
            results.append(
                job.execute_in_process(run_config=run_config, instance=instance, tags=range_tags(key_range), raise_on_error=False)
            )
    for result in results:
        # A range run records one materialization per window, all with the same files: print one.
        latest_by_asset = {event.asset_key: event.materialization for event in result.get_asset_materialization_events()}
        for asset_key, materialization in latest_by_asset.items():
            metadata = materialization.metadata
            print(f"{asset_key.to_user_string()}: {metadata['rows_written'].value} rows -> {metadata['location'].value}")
            print(f"    window: {metadata['window'].value}")
            for file_name in metadata["file_names"].value:
                print(f"    {file_name}")
    success = all(result.success for result in results)
    run_ids = ", ".join(result.run_id for result in results)
    print(f"Runs {run_ids} {'succeeded' if success else 'FAILED'}; history in {home} (see `make ui`)")
    return 0 if success else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export-pipelines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check every spec of a config folder; non-zero exit on problems")
    validate.add_argument("--config", help="config folder (default: EXPORT_PIPELINES_CONFIG or the bundled demo)")
    validate.set_defaults(handler=cmd_validate)

    demo = commands.add_parser("demo", help="build the demo database if needed and run every export once")
    demo.add_argument("--customers", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--rebuild", action="store_true", help="rebuild the demo database even if it exists")
    demo.set_defaults(handler=cmd_demo)

    from export_pipelines.exports_cli import add_export_commands

    add_export_commands(commands)

    # demo-db hands every argument to the generator's own parser (see main).
    commands.add_parser("demo-db", help="build a demo source database: export-pipelines demo-db --help")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo-db"]:
        from export_pipelines.demo.generator import main as generator_main

        return generator_main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
