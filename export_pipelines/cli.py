"""export-pipelines: the command line for people and scripts outside the Dagster UI."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from export_pipelines.exports_cli import refusing_wrong_settings

if TYPE_CHECKING:
    import sqlalchemy as sa

    from export_pipelines.spec.loader import ExportConfig
    from export_pipelines.spec.plan import ExportPlan

DEFAULT_DAGSTER_HOME = ".dagster_home"
# Databases that are a file, which connecting creates when it is missing.
FILE_DATABASES = {"sqlite": "SQLite", "duckdb": "DuckDB"}
DEMO_WINDOWS = 7


def _ensure_dagster_home() -> Path:
    """Runs are recorded in DAGSTER_HOME so `dagster dev` shows them later; default ./.dagster_home."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(DEFAULT_DAGSTER_HOME).resolve())))
    home.mkdir(parents=True, exist_ok=True)
    return home


def cmd_validate(args: argparse.Namespace) -> int:
    from export_pipelines.code_location import definition_problems, environment_problems
    from export_pipelines.spec.loader import config_dir, load_config

    root = Path(args.config).resolve() if args.config else config_dir()
    config = load_config(root)
    # The settings every export runs with: a wrong one fails the code location's load, whatever the specs.
    settings = environment_problems()
    # What the code location would refuse on top (Dagster's own limits) is the same export's problem here;
    # building the definitions needs the settings, so that check waits until they are fixed.
    refused = definition_problems(config) if not settings else []
    refused_files = {problem.file for problem in refused}
    valid = sum(1 for name in config.plans if config.spec_files[name] not in refused_files)
    problems = [*config.problems, *refused, *settings]
    source_line = ""
    if args.check_source:
        import sqlalchemy as sa

        from export_pipelines.database_urls import safe_url
        from export_pipelines.source import SourceDatabase
        from export_pipelines.spec.source_check import check_source

        try:
            url = SourceDatabase().resolved_url(_ensure_dagster_home())
            _refuse_missing_database_file(url)
            try:
                engine = sa.create_engine(url)
            except ImportError as error:
                raise SourceUnusable(
                    f"the driver {url.drivername} needs is not installed ({error}); install it, or name an installed "
                    f"driver in the URL (dialect+driver://)"
                ) from None
            try:
                found = check_source(config, engine)
            finally:
                engine.dispose()
        except (sa.exc.SQLAlchemyError, FileNotFoundError, SourceUnusable) as error:
            print(f"ERROR source: cannot check the source database: {str(error).splitlines()[0]}")
            return 1
        problems += found
        source_line = f"; source {safe_url(url)}: {len(found)} problem(s)"
    for problem in problems:
        print(f"ERROR {problem}")
    settings_line = f"; {len(settings)} setting(s) to fix" if settings else ""
    print(f"{root}: {valid} valid export(s), {len(config.problems) + len(refused)} problem(s){settings_line}{source_line}")
    return 1 if problems else 0


def _loadable_plans(config: ExportConfig) -> dict[str, ExportPlan]:
    """The plans of the exports the code location builds: the loader's, less those Dagster refuses (validate lists them)."""
    from export_pipelines.code_location import definition_problems

    refused = {problem.file for problem in definition_problems(config)}
    return {name: plan for name, plan in config.plans.items() if config.spec_files[name] not in refused}


class SourceUnusable(Exception):
    """The source URL cannot be used as it is: the message says why, without its password."""


def _refuse_missing_database_file(url: sa.URL) -> None:
    """Connecting to a SQLite or DuckDB file that does not exist would create an empty one: a check must change nothing."""
    database = url.database
    if url.get_backend_name() not in FILE_DATABASES or not database or database == ":memory:" or url.query.get("uri"):
        return
    if not Path(database).is_file():
        raise SourceUnusable(f"the {FILE_DATABASES[url.get_backend_name()]} database {database} does not exist (it was not created)")


@refusing_wrong_settings
def cmd_demo(args: argparse.Namespace) -> int:
    home = _ensure_dagster_home()
    from dagster import DagsterInstance

    from export_pipelines.automation.windows import latest_windows, partitions_for, range_tags
    from export_pipelines.demo.generator import demo_data_end, generate_demo_database
    from export_pipelines.local_runs import console_run_config, describe, execute
    from export_pipelines.naming import TRIGGER_TAG, export_job_name
    from export_pipelines.spec.loader import config_dir, load_config
    from export_pipelines.source import SOURCE_URL_ENV_VAR, demo_database_path

    if not os.environ.get(SOURCE_URL_ENV_VAR):
        database = demo_database_path(home)
        if args.rebuild or not database.exists():
            database.parent.mkdir(parents=True, exist_ok=True)
            counts = generate_demo_database(f"sqlite:///{database}", customers=args.customers, seed=args.seed)
            print(f"Built demo database {database}: " + ", ".join(f"{t} {n}" for t, n in counts.items()))

    instance = DagsterInstance.get()
    # One run per export, as its schedule would launch it: snapshots now, each incremental export
    # over its latest week of complete windows. The console shows errors only (every event stays in
    # the run log), and every file stays local, whatever target a spec names: no partner server is involved.
    run_config = console_run_config("ERROR", redirect_to_download=True)
    plans = _loadable_plans(load_config(config_dir()))
    as_of = demo_data_end() if not os.environ.get(SOURCE_URL_ENV_VAR) else dt.datetime.now(dt.UTC)
    results = []
    for name, plan in plans.items():
        partitions = partitions_for(plan.spec.incremental)
        tags = {TRIGGER_TAG: "cli"}
        if partitions is not None:
            tags |= range_tags(latest_windows(partitions, as_of, count=DEMO_WINDOWS))
        result = execute(instance, export_job_name(name), run_config, tags)
        results.append(result)
        for line in describe(instance, result):
            print(line)
    success = all(result.success for result in results)
    print(f"{len(results)} runs {'succeeded' if success else 'did not all succeed'}; history in {home} (see `make ui`)")
    return 0 if success else 1


@refusing_wrong_settings
def cmd_run(args: argparse.Namespace) -> int:
    """One export (or window range) from the shell, as dbt runs one model: progress, then files and rows, or the cause."""
    home = _ensure_dagster_home()
    import dagster as dg

    from export_pipelines.automation.windows import WindowRangeError, range_tags, requested_range
    from export_pipelines.local_runs import console_run_config, describe, execute
    from export_pipelines.naming import TRIGGER_TAG, export_job_name
    from export_pipelines.spec.loader import config_dir, load_config
    from export_pipelines.spec.plan import closest

    config = load_config(config_dir())
    plans = _loadable_plans(config)
    plan = plans.get(args.name)
    if plan is None:
        broken = args.name in config.plans or any(Path(file).stem == args.name for file in config.invalid_files)
        reason = ": its spec does not load (export-pipelines validate)" if broken else closest(args.name, plans)
        print(f"ERROR no valid export {args.name} in {config_dir()}{reason}")
        return 1
    try:
        key_range = requested_range(plan, args.start, args.end, dt.datetime.now(dt.UTC))
    except WindowRangeError as error:
        print(f"ERROR {error}")
        return 1
    # incremental.backfill: run_per_window asks for a run (and a file set) per window, as a UI backfill makes them.
    per_window = key_range is not None and plan.spec.incremental.backfill == "run_per_window"
    ranges = [dg.PartitionKeyRange(key, key) for key in window_keys(plan, key_range)] if per_window else [key_range]
    succeeded = True
    with dg.DagsterInstance.get() as instance:
        report_dead_runs(instance)
        for each in ranges:
            tags = {TRIGGER_TAG: "cli", **(range_tags(each) if each else {})}
            window = f"windows {each.start} .. {each.end}" if each else "a snapshot"
            print(f"Running {args.name} ({window}) in {home}")
            result = execute(instance, export_job_name(args.name), console_run_config("INFO", args.redirect_to_download), tags)
            for line in describe(instance, result):
                print(line)
            print(f"Run {result.run_id} {'succeeded' if result.success else 'FAILED'}")
            succeeded = succeeded and result.success
    return 0 if succeeded else 1


def window_keys(plan, key_range) -> list[str]:
    """The partition keys (windows) of `key_range`, in order."""
    from export_pipelines.automation.windows import partitions_for

    return list(partitions_for(plan.spec.incremental).get_partition_keys_in_range(key_range))


def report_dead_runs(instance) -> None:
    """Before running in this process: end the runs whose processes were killed, as dagster-daemon's
    run monitoring would (none may be running), so they can be rerun and free their pool slots."""
    from export_pipelines.run_launcher import end_dead_runs

    for run_id in end_dead_runs(instance):
        print(f"Marked run {run_id} failed: its process no longer exists (killed?)")


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


@refusing_wrong_settings
def cmd_rerun(args: argparse.Namespace) -> int:
    home = _ensure_dagster_home()
    import dagster as dg

    from export_pipelines.automation.notifications import window_text
    from export_pipelines.local_runs import describe, reexecute
    from export_pipelines.run_history import runs_of_export, runs_to_rerun

    if not args.name and not args.run_id:
        print("ERROR name an export, or a run with --run-id")
        return 1
    instance = dg.DagsterInstance.get()
    report_dead_runs(instance)
    if args.run_id:
        parent = instance.get_run_by_id(args.run_id)
        if parent is None:
            print(f"ERROR no run {args.run_id} in {home}")
            return 1
        parents = [parent]
    else:
        summaries = list(runs_of_export(instance, args.name, limit=200))
        if not summaries:
            print(f"No runs of export {args.name} in {home}")
            return 1
        chosen = runs_to_rerun(summaries, args.failed_only)
        if not chosen:
            print(f"Nothing to rerun: the latest run of every window of {args.name} succeeded")
            return 0
        parents = [instance.get_run_by_id(summary.run_id) for summary in chosen]
    succeeded = True
    for parent in parents:
        if not parent.is_finished:
            print(f"ERROR run {parent.run_id} is {parent.status.value.lower()}; rerun it once it has finished")
            succeeded = False
            continue
        failed = parent.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
        how = "from the failed step (the earlier steps' files are reused)" if failed else "in full"
        print(f"Re-executing run {parent.run_id} ({window_text(parent.tags)}) {how}")
        result = reexecute(instance, parent, "WARNING")
        for line in describe(instance, result):
            print(f"  {line}")
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
    rerun.add_argument("name", nargs="?", help="the export (not needed with --run-id)")
    rerun.add_argument("--failed-only", action="store_true", help="each failed window not succeeded since, from its failed step")
    rerun.add_argument("--run-id", help="re-execute this run, whatever launched it (from its failed step when it failed)")
    rerun.set_defaults(handler=cmd_rerun)

    run = commands.add_parser("run", help="run one export now, in this process: progress, then files and rows (exit 1 on failure)")
    run.add_argument("name")
    run.add_argument("--from", dest="start", metavar="WINDOW", help="first window of an incremental export (2026-03-01; hourly 2026-03-01-05:00)")
    run.add_argument("--to", dest="end", metavar="WINDOW", help="last window, included (default: the latest complete one)")
    run.add_argument("--redirect-to-download", action="store_true", help="keep the files in the download folder instead of the target")
    run.set_defaults(handler=cmd_run)

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
