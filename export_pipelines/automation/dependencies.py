"""Dependent exports (`after`): Apparel21's orders file follows the customers file 30 minutes later.

The sensor walks the upstream export's successful runs, whichever job launched them (its
schedule, a backfill, the UI), in the order they finished, with a cursor: each one leads
to one downstream run for the same window once `delay` has passed, so two upstream runs
within the delay give two downstream runs. A run still inside its delay holds the cursor
back until it is due. When nothing is due the sensor skips and says why (waiting, running,
failed), so the UI shows what the downstream is waiting for.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import dagster as dg

from export_pipelines.automation.windows import partitions_for, range_from_tags, range_tags
from export_pipelines.naming import TRIGGER_TAG, after_sensor_name_for, asset_key_for, window_tag
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.spec.timing import minutes

FAILED_STATUSES = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
UPSTREAM_RUN_TAG = "export_pipelines/after_run"
# Finished runs read per evaluation; the cursor takes the next ones a minute later.
RUNS_PER_EVALUATION = 500


@dataclass
class UpstreamCursor:
    """Successful upstream runs updated up to `after` are handled; `handled` are those updated exactly then."""

    after: dt.datetime | None = None
    handled: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None) -> UpstreamCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(dt.datetime.fromisoformat(data["after"]), list(data.get("handled", [])))

    def dump(self) -> str:
        return json.dumps({"after": self.after.isoformat() if self.after else None, "handled": self.handled})


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
        return follow_upstream(context.instance, plan, dt.datetime.now(dt.UTC), context.cursor)

    return after_upstream


def follow_upstream(instance: dg.DagsterInstance, plan: ExportPlan, now: dt.datetime, cursor: str | None) -> dg.SensorResult:
    """One request per successful upstream run that is due at `now`, and the cursor past them."""
    after = plan.spec.after
    upstream_key = asset_key_for(after.export)
    state = UpstreamCursor.parse(cursor)
    if state.after is None:
        state.after = _starting_point(instance, upstream_key)
    filters = dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS], updated_after=state.after)
    requests: list[dg.RunRequest] = []
    skipped: list[str] = []
    waiting: dg.RunRecord | None = None
    for record in instance.get_run_records(filters, limit=RUNS_PER_EVALUATION, order_by="update_timestamp", ascending=True):
        if record.dagster_run.run_id in state.handled:
            continue
        if _materializes(instance, record, upstream_key):
            if _materializes(instance, record, asset_key_for(plan.name)):
                # One run held both (Materialize all in the lineage view): this export ran after its upstream in it.
                skipped.append(f"run {record.dagster_run.run_id} materialized {plan.name} together with {after.export}.")
                _advance(state, record)
                continue
            if _due(record, after.delay) > now:
                # Later runs finished no earlier, so none of them is due yet: the cursor waits here.
                waiting = record
                break
            request = _request_for(plan, record.dagster_run)
            if isinstance(request, dg.SkipReason):
                skipped.append(request.skip_message)
            else:
                requests.append(request)
        # Other exports' runs move the cursor on too, so each evaluation reads only what is new.
        _advance(state, record)
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=state.dump())
    return dg.SensorResult(skip_reason=" ".join([*skipped, _why_nothing_runs(instance, plan, waiting)]), cursor=state.dump())


def _starting_point(instance: dg.DagsterInstance, key: dg.AssetKey) -> dt.datetime:
    """Where a sensor without a cursor (new, or reset) starts: at the upstream's latest successful run, not all history."""
    materialized = instance.get_latest_materialization_event(key)
    record = instance.get_run_record_by_id(materialized.run_id) if materialized else None
    if record is not None:
        return _updated(record) - dt.timedelta(microseconds=1)
    latest = instance.get_run_records(limit=1, order_by="update_timestamp")
    return _updated(latest[0]) if latest else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _materializes(instance: dg.DagsterInstance, record: dg.RunRecord, key: dg.AssetKey) -> bool:
    run = record.dagster_run
    if run.asset_selection:
        return key in run.asset_selection
    # materialize() and some launches leave the selection empty: the run's plan says what it materializes.
    planned = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    return any(r.event_log_entry.dagster_event.asset_key == key for r in planned if r.event_log_entry.dagster_event)


def _updated(record: dg.RunRecord) -> dt.datetime:
    """The run's last update in UTC (run storage keeps it naive)."""
    stamp = record.update_timestamp
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


def _advance(state: UpstreamCursor, record: dg.RunRecord) -> None:
    updated = _updated(record)
    if state.after is None or updated > state.after:
        state.after, state.handled = updated, []
    state.handled.append(record.dagster_run.run_id)


def _due(record: dg.RunRecord, delay: dt.timedelta) -> dt.datetime:
    finished = dt.datetime.fromtimestamp(record.end_time, dt.UTC) if record.end_time else _updated(record)
    return finished + delay


def _request_for(plan: ExportPlan, run: dg.DagsterRun) -> dg.RunRequest | dg.SkipReason:
    tags = {UPSTREAM_RUN_TAG: run.run_id, TRIGGER_TAG: "sensor"}
    key = f"{plan.name}:after:{run.run_id}"
    partitions = partitions_for(plan.spec.incremental)
    window = range_from_tags(run.tags)
    if partitions is not None and window is not None:
        own = _within(partitions, window)
        if own is None:
            return dg.SkipReason(
                f"exports/{plan.name} has no window in {window.start}...{window.end} of exports/{plan.spec.after.export} "
                f"run {run.run_id[:8]} (its windows start at {plan.spec.incremental.start}), so that run is not followed."
            )
        tags |= range_tags(own) | window_tag(plan.name, own.start, own.end)
        # One downstream run per upstream run and window: a cursor evaluated twice requests the same key.
        key = f"{plan.name}:after:{own.start}...{own.end}:{run.run_id}"
    return dg.RunRequest(run_key=key, tags=tags)


def _within(partitions: dg.TimeWindowPartitionsDefinition, window: dg.PartitionKeyRange) -> dg.PartitionKeyRange | None:
    """The upstream range cut to the downstream's own windows (its `start` can be later)."""
    first_start = partitions.start
    if partitions.time_window_for_partition_key(window.end).start < first_start:
        return None
    if partitions.time_window_for_partition_key(window.start).start >= first_start:
        return window
    return dg.PartitionKeyRange(partitions.get_partition_key_for_timestamp(first_start.timestamp()), window.end)


def _why_nothing_runs(instance: dg.DagsterInstance, plan: ExportPlan, waiting: dg.RunRecord | None) -> str:
    after = plan.spec.after
    upstream, downstream = f"exports/{after.export}", f"exports/{plan.name}"
    if waiting is not None:
        finished = _due(waiting, dt.timedelta(0))
        due = finished + after.delay
        return (
            f"{_describe(upstream, waiting.dagster_run)} succeeded at {finished:%H:%M:%S} UTC; {downstream} starts at "
            f"{due:%H:%M:%S} UTC (delay {minutes(after.delay)})"
        )
    planned = instance.get_latest_planned_materialization_info(asset_key_for(after.export))
    if planned is None:
        return f"{upstream} has not run yet; {downstream} waits for its first successful run"
    record = instance.get_run_record_by_id(planned.run_id)
    if record is None:
        return f"the latest run of {upstream} ({planned.run_id[:8]}) was deleted; {downstream} waits for a new one"
    run = record.dagster_run
    what = _describe(upstream, run)
    if run.status in FAILED_STATUSES:
        return (
            f"{what} ended {run.status.value}, so {downstream} does not run for it; rerun {upstream} "
            f"(e.g. from failure) and {downstream} follows once it succeeds"
        )
    if run.status != dg.DagsterRunStatus.SUCCESS:
        return f"{what} is {run.status.value}; {downstream} waits for it to succeed"
    return f"{downstream} has followed every successful run of {upstream} so far (the latest: {what})"


def _describe(upstream: str, run: dg.DagsterRun) -> str:
    window = range_from_tags(run.tags)
    return f"{upstream} run {run.run_id[:8]}" + (f" for {window.start}...{window.end}" if window else "")
