"""Dependent exports (`after`): Apparel21's orders file follows the customers file 30 minutes later.

The sensor looks at the upstream export's latest run, whichever job launched it (its
schedule, a backfill, the UI): once that run succeeded and `delay` has passed, it requests
the downstream export for the same window; while it is running, or when it failed, the
sensor skips and says why, so the UI shows what the downstream is waiting for.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from export_pipelines.automation.cron import minutes
from export_pipelines.automation.windows import range_from_tags, range_tags
from export_pipelines.naming import after_sensor_name_for, asset_key_for
from export_pipelines.spec.plan import ExportPlan

FAILED_STATUSES = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
UPSTREAM_RUN_TAG = "export_pipelines/after_run"


def build_dependency_sensor(plan: ExportPlan, job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    after = plan.spec.after
    assert after is not None, "only exports with `after` get a dependency sensor"

    @dg.sensor(
        name=after_sensor_name_for(plan.name, after.export),
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Runs exports/{plan.name} once exports/{after.export} succeeded, at least {minutes(after.delay)} later.",
    )
    def after_upstream(context: dg.SensorEvaluationContext):
        return follow_upstream(context.instance, plan, dt.datetime.now(dt.UTC))

    return after_upstream


def follow_upstream(instance: dg.DagsterInstance, plan: ExportPlan, now: dt.datetime) -> dg.RunRequest | dg.SkipReason:
    after = plan.spec.after
    upstream, downstream = f"exports/{after.export}", f"exports/{plan.name}"
    planned = instance.get_latest_planned_materialization_info(asset_key_for(after.export))
    if planned is None:
        return dg.SkipReason(f"{upstream} has not run yet; {downstream} waits for its first successful run")
    record = instance.get_run_record_by_id(planned.run_id)
    if record is None:
        return dg.SkipReason(f"the latest run of {upstream} ({planned.run_id[:8]}) was deleted; {downstream} waits for a new one")
    run = record.dagster_run
    window = range_from_tags(run.tags)
    what = f"{upstream} run {run.run_id[:8]}" + (f" for {window.start}...{window.end}" if window else "")
    if run.status in FAILED_STATUSES:
        return dg.SkipReason(
            f"{what} ended {run.status.value}, so {downstream} does not run; rerun {upstream} "
            f"(e.g. from failure) and {downstream} follows once it succeeds"
        )
    if run.status != dg.DagsterRunStatus.SUCCESS or record.end_time is None:
        return dg.SkipReason(f"{what} is {run.status.value}; {downstream} waits for it to succeed")
    finished = dt.datetime.fromtimestamp(record.end_time, dt.UTC)
    due = finished + after.delay
    if now < due:
        return dg.SkipReason(
            f"{what} succeeded at {finished:%H:%M:%S} UTC; {downstream} starts at {due:%H:%M:%S} UTC "
            f"(delay {minutes(after.delay)})"
        )
    tags = {UPSTREAM_RUN_TAG: run.run_id}
    if plan.spec.incremental is not None and window is not None:
        tags |= range_tags(window)
    # One downstream run per upstream run: the sensor's next evaluations see the same key and skip it.
    return dg.RunRequest(run_key=f"{plan.name}:after:{run.run_id}", tags=tags)

