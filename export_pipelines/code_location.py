"""Definitions built from a loaded config folder, export by export.

They always load: a spec the loader refuses is an asset of the invalid_exports group listing
its problems, and an export Dagster itself would refuse (or whose job, schedule or sensor
name another definition already has) becomes one too, instead of failing the location.
`export-pipelines validate` builds the same definitions (definition_problems), so it reports
what the code location would refuse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

from export_pipelines.adhoc.job import build_adhoc_job
from export_pipelines.automation.dependencies import build_dependency_sensor
from export_pipelines.automation.jobs import build_export_job
from export_pipelines.automation.notifications import NotificationSettings, build_notification_sensors
from export_pipelines.automation.schedules import build_export_schedule
from export_pipelines.delivery_settings import DeliverySettings, redirect_from_environment
from export_pipelines.console_log import console_logger
from export_pipelines.execution import executor_choice, export_executor, exports_executor, io_manager_resources
from export_pipelines.factory import SHARED_OP_NAMES, build_export_asset
from export_pipelines.naming import (
    ADHOC_JOB,
    ALL_EXPORTS_JOB,
    EXPORTS_TAG,
    FAILURE_MAIL_SENSOR,
    INVALID_GROUP,
    SUCCESS_MAIL_SENSOR,
    asset_key_for,
    invalid_asset_names,
)
from export_pipelines.source import SourceDatabase
from export_pipelines.spec.loader import ExportConfig, SpecProblem, bundled_demo_config
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.stages.work_location import work_root_from_environment
from export_pipelines.switches import switch_problems
from export_pipelines.targets.download_store import downloads_store_from_environment

logger = logging.getLogger("export_pipelines")


def invalid_export_asset(asset_name: str, spec_file: str, problems: list[SpecProblem]) -> dg.AssetsDefinition:
    """A broken spec stays visible in the catalog, with its problems, instead of vanishing."""
    listing = "\n".join(f"- {problem}" for problem in problems)

    @dg.asset(
        key=asset_key_for(asset_name),
        group_name=INVALID_GROUP,
        description=f"The spec {spec_file} does not load; fix it and reload the code location:\n{listing}",
        metadata={"problems": dg.MetadataValue.md(listing), "spec_file": spec_file},
    )
    def invalid_export() -> None:
        raise dg.Failure(description=f"The spec {spec_file} is invalid:\n{listing}")

    return invalid_export


@dataclass
class _ExportDefinitions:
    asset: dg.AssetsDefinition
    job: dg.JobDefinition
    schedule: dg.ScheduleDefinition | None
    sensor: dg.SensorDefinition | None

    @property
    def named(self) -> dict[tuple[str, str], str]:
        """What Dagster requires unique, by (namespace, name): the job, schedule and sensor among the
        location's definitions; the graph and its upload op among the node definitions of the jobs
        over every asset (an export `exports` has an op exports__upload, which is the graph of an
        export `upload`). The stage ops every export shares (factory.SHARED_OP_NAMES) are one definition
        each, and no export's graph (exports__<name>) or upload op (<name>__upload) has their names."""
        items = {(DEFINITION, self.job.name): "job"}
        if self.schedule is not None:
            items[(DEFINITION, self.schedule.name)] = "schedule"
        if self.sensor is not None:
            items[(DEFINITION, self.sensor.name)] = "sensor"
        for node, kind in self.nodes.items():
            items[(NODE, node)] = kind
        return items

    @property
    def nodes(self) -> dict[str, str]:
        """The asset's graph and its own ops by name, with their kind: Dagster's node definition names in every asset job."""
        return {
            node.name: "graph" if isinstance(node, dg.GraphDefinition) else "op"
            for node in self.asset.node_def.iterate_node_defs()
            if node.name not in SHARED_OP_NAMES
        }


DEFINITION, NODE = "definition", "node"


def environment_problems() -> list[str]:
    """What build_definitions would refuse in this process's settings ($EXPORT_EXECUTOR,
    $EXPORT_WORK_URL, $EXPORT_DOWNLOADS_STORE_URL and the on/off switches of switches.py): one
    line each, naming the variable, its value shown without credentials. The export-pipelines
    commands print them instead of a traceback."""
    problems = []
    for check in (executor_choice, work_root_from_environment, downloads_store_from_environment):
        try:
            check()
        except ValueError as error:
            problems.append(str(error))
    return problems + switch_problems()


def build_definitions(config: ExportConfig) -> dg.Definitions:
    """The code location's Definitions: an asset, job and schedule or sensor per valid export, an
    invalid_exports asset per spec file that does not load (the loader's or Dagster's refusal).
    $EXPORT_REDIRECT_TO_DOWNLOAD decides whether its runs deliver to the connections
    (see delivery_settings.redirect_from_environment), $EXPORT_EXECUTOR which executor runs the steps
    and $EXPORT_WORK_URL where the run's files live (execution.py), $EXPORT_DOWNLOADS_STORE_URL where
    the download folders are (targets/download_store.py; a wrong value fails the load, naming the
    variable, as it is no one export's fault), as does a switch of switches.py that is neither on nor off."""
    executor_choice()
    io_manager_resources()
    downloads_store_from_environment()
    if switches := switch_problems():
        raise ValueError("; ".join(switches))
    for problem in config.problems:
        logger.warning("export config problem: %s", problem)
    defs, refused = _definitions_and_refusals(config)
    for problems in refused.values():
        for problem in problems:
            logger.warning("export config problem: %s", problem)
    return defs


def definition_problems(config: ExportConfig) -> list[SpecProblem]:
    """What building the code location's Definitions refuses beyond the loader's problems: each
    export Dagster would not accept (a name clash, a tag or date out of its range), as that
    export's problem. Empty when the location would load every export the loader accepted."""
    _, refused = _definitions_and_refusals(config)
    return [problem for _, problems in sorted(refused.items()) for problem in problems]


def _definitions_and_refusals(config: ExportConfig) -> tuple[dg.Definitions, dict[str, list[SpecProblem]]]:
    """The Definitions, and the spec files of exports the loader accepted but Dagster refuses, with why."""
    redirected = redirect_from_environment(config.root, bundled_demo_config())
    refused: dict[str, list[SpecProblem]] = {}
    built = _build_exports(config, refused, _resources(redirected))
    defs = _assemble(config, built, {**config.invalid_files, **refused}, redirected)
    try:
        dg.Definitions.validate_loadable(defs)
    except Exception:  # noqa: BLE001 - find the exports Dagster refuses, and load the others
        logger.info("Dagster refuses these definitions; checking the exports one at a time", exc_info=True)
        for name in list(built):
            try:
                dg.Definitions.validate_loadable(_assemble(config, {name: built[name]}, {}, redirected, with_shared=False))
            except Exception as error:  # noqa: BLE001
                refused[config.spec_files[name]] = [_refusal(config, name, error)]
                del built[name]
        _drop_orphans(config, built, refused)
        defs = _assemble(config, built, {**config.invalid_files, **refused}, redirected)
        try:
            dg.Definitions.validate_loadable(defs)
        except Exception:  # noqa: BLE001 - each export loads alone, not all together: keep each that fits
            defs = _largest_loadable(config, built, refused, redirected)
    return defs, refused


def _largest_loadable(
    config: ExportConfig, built: dict[str, _ExportDefinitions], refused: dict[str, list[SpecProblem]], redirected: bool
) -> dg.Definitions:
    """Exports added one at a time (in name order, so the outcome does not depend on file order), each
    kept only if the definitions still load with it: a clash no check above foresaw costs the exports
    in it, never the location. Quadratic, but only on this path."""
    kept: dict[str, _ExportDefinitions] = {}
    for name in sorted(built):
        candidate = {**kept, name: built[name]}
        try:
            dg.Definitions.validate_loadable(_assemble(config, candidate, {**config.invalid_files, **refused}, redirected))
        except Exception as error:  # noqa: BLE001
            message = f"Dagster refuses this export's definitions beside the others' (rename it): {_reason(error)}"
            refused[config.spec_files[name]] = [config.export_problem(name, "", message)]
        else:
            kept = candidate
    built.clear()
    built.update(kept)
    _drop_orphans(config, built, refused)
    return _assemble(config, built, {**config.invalid_files, **refused}, redirected)


def _assemble(
    config: ExportConfig,
    built: dict[str, _ExportDefinitions],
    invalid: dict[str, list[SpecProblem]],
    redirected: bool,
    *,
    with_shared: bool = True,
) -> dg.Definitions:
    names = invalid_asset_names(sorted(invalid), _asset_names_taken(built))
    invalid_assets = [invalid_export_asset(names[file], file, problems) for file, problems in sorted(invalid.items())]
    jobs, sensors = [], []
    if with_shared:
        # One job cannot mix time-partitioned and unpartitioned assets: incremental exports run by their own jobs.
        snapshot_names = [name for name in built if config.plans[name].spec.incremental is None]
        if snapshot_names:
            jobs.append(
                dg.define_asset_job(
                    ALL_EXPORTS_JOB,
                    selection=dg.AssetSelection.assets(*[asset_key_for(name) for name in snapshot_names]),
                    description="Every valid snapshot export once (incremental exports run by window, from their own jobs).",
                    # Several exports: each step in its own process (or Celery task), so the exports run side by side.
                    executor_def=exports_executor(),
                    tags={EXPORTS_TAG: ",".join(sorted(snapshot_names))},
                )
            )
        jobs.append(build_adhoc_job(config))
        sensors = build_notification_sensors({name: config.plans[name] for name in built}, config.connections.connections, redirected)
    return dg.Definitions(
        assets=[*(item.asset for item in built.values()), *invalid_assets],
        jobs=[*jobs, *(item.job for item in built.values())],
        schedules=[item.schedule for item in built.values() if item.schedule is not None],
        sensors=[*(item.sensor for item in built.values() if item.sensor is not None), *sensors],
        # An export's stages run one after the other and pass files on disk: one process is enough,
        # also for the runs UI backfills and Materialize launch (__ASSET_JOB), as for <export>_job runs;
        # EXPORT_EXECUTOR=celery hands each step to a Celery worker instead (execution.py).
        executor=export_executor(),
        # Dagster's console logger, which the command line's runs set to leave stack traces to the run log.
        loggers={"console": console_logger},
        resources=_resources(redirected),
    )


def _resources(redirected: bool) -> dict:
    """The location's resources: the Definitions' and those each export's job is resolved with."""
    return {
        "source_database": SourceDatabase(),
        "delivery_settings": DeliverySettings(redirect_to_download=redirected),
        "notification_settings": NotificationSettings(),
        **io_manager_resources(),
    }


def _asset_names_taken(built: dict[str, _ExportDefinitions]) -> set[str]:
    """Names an invalid_exports asset cannot have: those of built exports, and those whose op
    (exports__<name>, from its key) is already a node of a built export's graph."""
    prefix = asset_key_for("").to_python_identifier()
    nodes = {name for item in built.values() for name in item.nodes}
    return {*built, *(node.removeprefix(prefix) for node in nodes if node.startswith(prefix))}


def _build_exports(config: ExportConfig, invalid: dict[str, list[SpecProblem]], resources: dict) -> dict[str, _ExportDefinitions]:
    """Each valid export's definitions, its job bound to `resources` (the location's); one that
    cannot be built, or whose job, schedule or sensor name another definition has too (neither
    wins), joins `invalid`."""
    assets: dict[str, dg.AssetsDefinition] = {}
    for name, plan in config.plans.items():
        try:
            assets[name] = build_export_asset(plan, config.connections.connections)
        except Exception as error:  # noqa: BLE001 - one export that cannot be built must not take the others down
            invalid[config.spec_files[name]] = [_refusal(config, name, error)]
    built: dict[str, _ExportDefinitions] = {}
    for name, asset in assets.items():
        try:
            built[name] = _export_definitions(config.plans[name], asset, assets, resources)
        except Exception as error:  # noqa: BLE001
            invalid[config.spec_files[name]] = [_refusal(config, name, error)]
    owners: dict[tuple[str, str], list[str]] = {(DEFINITION, ALL_EXPORTS_JOB): ["the all_exports job"], (DEFINITION, ADHOC_JOB): ["the ad-hoc job"]}
    owners |= {(DEFINITION, sensor): ["a mail sensor"] for sensor in (FAILURE_MAIL_SENSOR, SUCCESS_MAIL_SENSOR)}
    for name, item in built.items():
        for object_name in item.named:
            owners.setdefault(object_name, []).append(f"export {name}")
    for name, item in list(built.items()):
        clashes = [
            f"its {kind} name {object_name} is also that of {' and '.join(o for o in owners[(space, object_name)] if o != f'export {name}')}"
            for (space, object_name), kind in item.named.items()
            if len(owners[(space, object_name)]) > 1
        ]
        if clashes:
            invalid[config.spec_files[name]] = [config.export_problem(name, "name", "; ".join(clashes) + "; rename the export")]
            del built[name]
    _drop_orphans(config, built, invalid)
    return built


def _drop_orphans(config: ExportConfig, built: dict[str, _ExportDefinitions], invalid: dict[str, list[SpecProblem]]) -> None:
    """An export that follows one that is not built would wait for runs that never come."""
    while orphans := [n for n in built if (after := config.plans[n].spec.after) and after.export not in built]:
        for name in orphans:
            message = f"export {config.plans[name].spec.after.export} does not load"
            invalid[config.spec_files[name]] = [config.export_problem(name, "after.export", message)]
            del built[name]


def _reason(error: BaseException) -> str:
    """The error and its causes on one line: Dagster's first message often names only what failed, not why."""
    messages = []
    while error is not None:
        messages.append(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        error = error.__cause__
    return ": ".join(messages)


def _refusal(config: ExportConfig, name: str, error: BaseException) -> SpecProblem:
    return config.export_problem(name, "", f"Dagster refuses this export's definitions: {_reason(error)}")


def _export_definitions(
    plan: ExportPlan, asset: dg.AssetsDefinition, assets: dict[str, dg.AssetsDefinition], resources: dict
) -> _ExportDefinitions:
    """The export's asset, and its job resolved here against the asset and its upstream alone: the
    job's asset graph is the same as Dagster would cut from the whole location's, but the repository
    would cut it from every asset, for every export's job (time quadratic in the number of exports)."""
    upstream = [assets[plan.spec.after.export]] if plan.spec.after and plan.spec.after.export in assets else []
    job = build_export_job(plan).resolve(asset_graph=AssetGraph.from_assets([asset, *upstream]), resource_defs=resources)
    return _ExportDefinitions(
        asset=asset,
        job=job,
        schedule=build_export_schedule(plan, job) if plan.spec.schedule else None,
        sensor=build_dependency_sensor(plan, job) if plan.spec.after else None,
    )
