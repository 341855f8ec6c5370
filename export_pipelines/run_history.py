"""The execution log of an export, read from the Dagster instance: the run history is the log.

What `export-pipelines log` prints and what `rerun` picks from, in the terms of the seeds'
execution logs (Antavo: created at, status, file size, error; Capillary: rerun).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from export_pipelines.automation.notifications import exports_of_run, run_failure_messages, step_errors, window_text
from export_pipelines.naming import ADHOC_CHANNEL_TAG, TRIGGER_TAG, asset_key_for

RUNS_SCANNED = 500

STATUS_WORDS = {
    dg.DagsterRunStatus.QUEUED: "queued",
    dg.DagsterRunStatus.NOT_STARTED: "queued",
    dg.DagsterRunStatus.STARTING: "processing",
    dg.DagsterRunStatus.STARTED: "processing",
    dg.DagsterRunStatus.CANCELING: "processing",
    dg.DagsterRunStatus.SUCCESS: "success",
    dg.DagsterRunStatus.FAILURE: "failed",
    dg.DagsterRunStatus.CANCELED: "failed",
}


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    job_name: str
    created_at: dt.datetime
    status: str
    trigger: str
    window: str
    rows: int | None
    file_size: int | None
    files: tuple[str, ...]
    error: str | None
    tags: dict[str, str]

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def trigger_of(tags: dict[str, str]) -> str:
    """How the run came about, from the tags Dagster and this code location set."""
    if "dagster/parent_run_id" in tags:
        return "rerun"
    if "dagster/backfill" in tags:
        return "backfill"
    if "dagster/schedule_name" in tags:
        return "schedule"
    if "dagster/sensor_name" in tags:
        return "sensor"
    if ADHOC_CHANNEL_TAG in tags:
        return tags[ADHOC_CHANNEL_TAG].lower()  # an ad-hoc export: api, website or cli
    return tags.get(TRIGGER_TAG, "manual")


def run_is_over(instance: dg.DagsterInstance, run_id: str) -> bool | None:
    """True when the run finished, failed or was canceled; False while it is queued, starting,
    running or canceling; None when this instance has no such run (purged, or another deployment's).
    A run whose process died with its code server (or the command line's in-process run) stays
    STARTED until run monitoring, the next command-line run on its host (run_launcher.py) or a
    user in the UI ends it (docs/delivery.md, "When a run dies")."""
    run = instance.get_run_by_id(run_id)
    return None if run is None else run.is_finished


def runs_of_export(instance: dg.DagsterInstance, export: str, limit: int = 50) -> Iterator[RunSummary]:
    """Newest first: every run that was to materialize exports/<export>."""
    found = 0
    for record in instance.get_run_records(limit=RUNS_SCANNED, ascending=False):
        run = record.dagster_run
        if export not in exports_of_run(instance, run):
            continue
        yield summarize(instance, record, export)
        found += 1
        if found >= limit:
            return


def summarize(instance: dg.DagsterInstance, record, export: str) -> RunSummary:
    run = record.dagster_run
    metadata = _materialization_metadata(instance, run.run_id, export)
    error = None
    if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        errors = [f"{step}: {message}" for step, message in step_errors(instance, run.run_id)]
        errors = errors or [f"run: {message}" for message in run_failure_messages(instance, run.run_id)]
        error = "; ".join(errors) or "the run failed before any step did (see the run in the UI)"
    return RunSummary(
        run_id=run.run_id,
        job_name=run.job_name,
        created_at=record.create_timestamp.astimezone(dt.UTC),
        status=STATUS_WORDS.get(run.status, run.status.value.lower()),
        trigger=trigger_of(dict(run.tags)),
        window=window_text(run.tags),
        rows=metadata.get("rows_written"),
        file_size=metadata.get("file_size_bytes"),
        files=tuple(metadata.get("file_names") or ()),
        error=error,
        tags=dict(run.tags),
    )


def _materialization_metadata(instance: dg.DagsterInstance, run_id: str, export: str) -> dict:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in reversed(records):
        materialization = record.event_log_entry.asset_materialization
        if materialization and materialization.asset_key == asset_key_for(export):
            return {key: value.value for key, value in materialization.metadata.items()}
    return {}


def format_log_line(summary: RunSummary) -> str:
    size = f"{summary.file_size} bytes" if summary.file_size is not None else "-"
    rows = f"{summary.rows} rows" if summary.rows is not None else "-"
    files = ", ".join(summary.files) or "-"
    line = (
        f"{summary.created_at:%Y-%m-%d %H:%M:%S}Z  {summary.status:<10}  {summary.trigger:<8}  {summary.window}  "
        f"{rows}  {size}  {files}  run {summary.run_id}"
    )
    if not summary.error:
        return line
    error = summary.error.replace("\n", "\n           ")
    return f"{line}\n    error: {error}"


def runs_to_rerun(summaries: list[RunSummary], failed_only: bool) -> list[RunSummary]:
    """Without --failed-only: the latest run. With it: each failed run whose window has not
    succeeded since (newest first, so a window is re-executed once)."""
    if not failed_only:
        return summaries[:1]
    settled: set[str] = set()
    chosen = []
    for summary in summaries:
        if summary.window in settled:
            continue
        settled.add(summary.window)
        if summary.failed:
            chosen.append(summary)
    return chosen

