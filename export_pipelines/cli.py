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
    problems = list(config.problems)
    source_line = ""
    if args.check_source:
        import sqlalchemy as sa

        from export_pipelines.database_urls import safe_url
        from export_pipelines.source import SourceDatabase
        from export_pipelines.spec.source_check import check_source

        try:
            url = SourceDatabase().resolved_url(_ensure_dagster_home())
            engine = sa.create_engine(url)
            try:
                found = check_source(config, engine)
            finally:
                engine.dispose()
        except (sa.exc.SQLAlchemyError, FileNotFoundError) as error:
            print(f"ERROR source: cannot check the source database: {str(error).splitlines()[0]}")
            return 1
        problems += found
        source_line = f"; source {safe_url(url)}: {len(found)} problem(s)"
    for problem in problems:
        print(f"ERROR {problem}")
    print(f"{root}: {len(config.plans)} valid export(s), {len(config.problems)} problem(s){source_line}")
    return 1 if problems else 0


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


def cmd_log(args: argparse.Namespace) -> int:
    home = _ensure_dagster_home()
    from dagster import DagsterInstance

    from export_pipelines.run_history import format_log_line, runs_of_export

    summaries = list(runs_of_export(DagsterInstance.get(), args.name, limit=args.limit))
    if not summaries:
        print(f"No runs of export {args.name} in {home}")
        return 1
    print("created at            status      trigger   window  rows  file size  files  run")
    for summary in summaries:
        print(format_log_line(summary))
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    home = _ensure_dagster_home()
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, PARTITION_NAME_TAG

    from export_pipelines.run_history import RERUN_JOB_ENV_VAR, rerun_job, runs_of_export, runs_to_rerun

    instance = dg.DagsterInstance.get()
    summaries = list(runs_of_export(instance, args.name, limit=200))
    if not summaries:
        print(f"No runs of export {args.name} in {home}")
        return 1
    chosen = runs_to_rerun(summaries, args.failed_only)
    if not chosen:
        print(f"Nothing to rerun: the latest run of every window of {args.name} succeeded")
        return 0
    succeeded = True
    for summary in chosen:
        if summary.job_name.startswith("__ephemeral"):
            print(f"Run {summary.run_id} was started in-process by a script; re-execute it from the UI")
            succeeded = False
            continue
        os.environ[RERUN_JOB_ENV_VAR] = summary.job_name
        # Dagster wants the parent's partition (range) tags on a re-execution of a partitioned run.
        partition_keys = (PARTITION_NAME_TAG, ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG)
        tags = {key: value for key, value in summary.tags.items() if key in partition_keys}
        options = (
            dg.ReexecutionOptions.from_failure(summary.run_id, instance)
            if summary.failed
            else dg.ReexecutionOptions(parent_run_id=summary.run_id)
        )
        how = "from the failed step" if summary.failed else "in full"
        print(f"Re-executing run {summary.run_id} ({summary.window}) {how}")
        with dg.execute_job(
            dg.reconstructable(rerun_job), instance=instance, reexecution_options=options, tags=tags, raise_on_error=False
        ) as result:
            print(f"  -> run {result.run_id} {'succeeded' if result.success else 'FAILED'}")
            succeeded = succeeded and result.success
    return 0 if succeeded else 1


def cmd_purge_runs(args: argparse.Namespace) -> int:
    """Run history retention (Sana's 'maximum archived log files'); tick history is bounded in dagster.yaml."""
    home = _ensure_dagster_home()
    import dagster as dg

    instance = dg.DagsterInstance.get()
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=args.older_than_days)
    records = instance.get_run_records(filters=dg.RunsFilter(created_before=cutoff))
    finished = [r.dagster_run for r in records if r.dagster_run.is_finished]
    for run in finished:
        instance.delete_run(run.run_id)
    print(f"Deleted {len(finished)} finished run(s) created before {cutoff:%Y-%m-%d %H:%M}Z from {home}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export-pipelines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check every spec of a config folder; non-zero exit on problems")
    validate.add_argument("--config", help="config folder (default: EXPORT_PIPELINES_CONFIG or the bundled demo)")
    validate.add_argument(
        "--check-source",
        action="store_true",
        help="also connect to EXPORT_SOURCE_URL and check every mapped table, column and column type",
    )
    validate.set_defaults(handler=cmd_validate)

    demo = commands.add_parser("demo", help="build the demo database if needed and run every export once")
    demo.add_argument("--customers", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--rebuild", action="store_true", help="rebuild the demo database even if it exists")
    demo.set_defaults(handler=cmd_demo)

    log = commands.add_parser("log", help="an export's runs, newest first: status, window, rows, size, files, error")
    log.add_argument("name")
    log.add_argument("--limit", type=int, default=20)
    log.set_defaults(handler=cmd_log)

    rerun = commands.add_parser("rerun", help="re-execute an export's latest run, or with --failed-only its failed windows")
    rerun.add_argument("name")
    rerun.add_argument("--failed-only", action="store_true", help="each failed window not succeeded since, from its failed step")
    rerun.set_defaults(handler=cmd_rerun)

    purge = commands.add_parser("purge-runs", help="delete finished runs (and their logs) older than N days")
    purge.add_argument("--older-than-days", type=int, required=True)
    purge.set_defaults(handler=cmd_purge_runs)
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
