"""The code location's one entry point: Definitions built from the config folder in force."""

from __future__ import annotations

import logging

import dagster as dg

from export_pipelines.adhoc.job import build_adhoc_job
from export_pipelines.automation.dependencies import build_dependency_sensor
from export_pipelines.automation.jobs import build_export_job
from export_pipelines.automation.notifications import NotificationSettings, build_notification_sensors
from export_pipelines.automation.schedules import build_export_schedule
from export_pipelines.delivery_settings import DeliverySettings, redirect_from_environment
from export_pipelines.factory import build_export_asset
from export_pipelines.naming import ALL_EXPORTS_JOB, INVALID_GROUP, asset_key_for, invalid_asset_name
from export_pipelines.source import SourceDatabase
from export_pipelines.spec.loader import ExportConfig, SpecProblem, bundled_demo_config, config_dir, load_config

logger = logging.getLogger("export_pipelines")


def invalid_export_asset(file_stem: str, problems: list[SpecProblem]) -> dg.AssetsDefinition:
    """A broken spec stays visible in the catalog, with its problems, instead of vanishing."""
    listing = "\n".join(f"- {problem}" for problem in problems)

    @dg.asset(
        key=asset_key_for(invalid_asset_name(file_stem)),
        group_name=INVALID_GROUP,
        description=f"This export's spec does not load; fix it and reload the code location:\n{listing}",
        metadata={"problems": dg.MetadataValue.md(listing)},
    )
    def invalid_export() -> None:
        raise dg.Failure(description=f"The spec exports/{file_stem} is invalid:\n{listing}")

    return invalid_export


def build_definitions(config: ExportConfig) -> dg.Definitions:
    """The code location over a loaded config folder; $EXPORT_REDIRECT_TO_DOWNLOAD decides whether
    its runs deliver to the connections (see delivery_settings.redirect_from_environment)."""
    for problem in config.problems:
        logger.warning("export config problem: %s", problem)
    redirected = redirect_from_environment(config.root, bundled_demo_config())
    export_assets = [build_export_asset(plan, config.connections.connections) for plan in config.plans.values()]
    invalid_assets = [
        invalid_export_asset(stem, problems)
        for stem, problems in config.invalid_files.items()
        if invalid_asset_name(stem) not in config.plans
    ]
    # One job cannot mix time-partitioned and unpartitioned assets: incremental exports run by their own jobs.
    snapshot_names = [name for name, plan in config.plans.items() if plan.spec.incremental is None]
    jobs = []
    if snapshot_names:
        jobs.append(
            dg.define_asset_job(
                ALL_EXPORTS_JOB,
                selection=dg.AssetSelection.assets(*[asset_key_for(name) for name in snapshot_names]),
                description="Every valid snapshot export once (incremental exports run by window, from their own jobs).",
                # Several exports: each step in its own process, so the exports run side by side.
                executor_def=dg.multiprocess_executor,
            )
        )
    export_jobs = {name: build_export_job(plan) for name, plan in config.plans.items()}
    schedules = [
        build_export_schedule(plan, export_jobs[name]) for name, plan in config.plans.items() if plan.spec.schedule
    ]
    sensors = [build_dependency_sensor(plan, export_jobs[name]) for name, plan in config.plans.items() if plan.spec.after]
    sensors += build_notification_sensors(config.plans, config.connections.connections, redirected)
    return dg.Definitions(
        assets=[*export_assets, *invalid_assets],
        jobs=[*jobs, *export_jobs.values(), build_adhoc_job(config)],
        schedules=schedules,
        sensors=sensors,
        # An export's stages run one after the other and pass files on disk: one process is enough,
        # also for the runs UI backfills and Materialize launch (__ASSET_JOB), as for <export>_job runs.
        executor=dg.in_process_executor,
        resources={
            "source_database": SourceDatabase(),
            "delivery_settings": DeliverySettings(redirect_to_download=redirected),
            "notification_settings": NotificationSettings(),
        },
    )


def load_definitions() -> dg.Definitions:
    """The code location over the config folder in force (EXPORT_PIPELINES_CONFIG), built anew:
    the command line's runs rebuild it through this in the process that executes the steps."""
    return build_definitions(load_config(config_dir()))


defs = load_definitions()
