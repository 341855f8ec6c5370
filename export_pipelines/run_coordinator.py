"""The run queue of a deployment (dagster.yaml `run_coordinator`): Dagster's queued run
coordinator that gives each export run its export tags when the run is queued.

Jobs, schedules and sensors put the tags on a run themselves; runs of `__ASSET_JOB` (UI
backfills and Materialize) and a partition picked in the launchpad do not say which export or
window they are until their first step starts. Every run launched through the instance (the
UI, the backfill daemon, schedules, sensors) passes here first, so the UI's run filter by
export and window finds queued runs too. In-process runs (`export-pipelines run`, `dagster
asset materialize`) never queue; their first step tags them (steps.tag_export_run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import dagster as dg
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext

from export_pipelines.automation.windows import range_from_tags
from export_pipelines.naming import (
    EXPORT_TAG,
    EXPORTS_TAG,
    MODEL_TAG,
    TARGET_TAG,
    WINDOW_TAG,
    export_job_name,
    export_names_of_assets,
    export_pool,
    window_tag,
)

logger = logging.getLogger(__name__)

# What a run of one export inherits from that export's job: the tags that do not depend on how it was launched.
IDENTITY_TAGS = (EXPORT_TAG, MODEL_TAG, TARGET_TAG)


def launch_tags(run: dg.DagsterRun, job_tags_of: Callable[[str], Mapping[str, str]]) -> dict[str, str]:
    """The export tags `run` lacks: its export's identity (from `job_tags_of(export)`, the tags
    of the export's job) and its window (`<export>@<start>..<end>` from the partition tags), or
    for a run of several exports `export_pipelines/exports`. Empty for a run of no export."""
    exports = exports_of_run(run)
    if len(exports) > 1:
        wanted = {EXPORTS_TAG: ",".join(exports)}
    elif exports:
        [name] = exports
        job_tags = job_tags_of(name)
        wanted = {key: job_tags[key] for key in IDENTITY_TAGS if key in job_tags} | {EXPORT_TAG: name}
        key_range = range_from_tags(run.tags)
        if key_range is not None:
            wanted |= window_tag(name, key_range.start, key_range.end)
        elif WINDOW_TAG in job_tags:  # a snapshot export's window is the export
            wanted[WINDOW_TAG] = job_tags[WINDOW_TAG]
    else:
        wanted = {}
    return {key: value for key, value in wanted.items() if run.tags.get(key) != value}


def exports_of_run(run: dg.DagsterRun) -> list[str]:
    """The exports a run delivers: its asset selection's, or its export tag's."""
    return export_names_of_assets(run.asset_selection) or ([run.tags[EXPORT_TAG]] if EXPORT_TAG in run.tags else [])


def ensure_export_pools(instance: dg.DagsterInstance, exports: list[str]) -> None:
    """Give each export's pool its slots (dagster.yaml's default limit, one) before any of its runs
    claims one. Dagster creates a pool's slots on its first claim, counting them and then adding
    what is missing: two runs claiming the first slot of a new pool at the same moment (a backfill
    of a new export) could both add one, and two writers would deliver at once. Runs are queued one
    at a time, so a pool made here exists before its runs start."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    known = storage.get_concurrency_keys()
    for pool in (export_pool(name) for name in exports):
        if pool not in known:
            storage.initialize_concurrency_limit_to_default(pool)


class ExportRunCoordinator(QueuedRunCoordinator):
    """QueuedRunCoordinator (same config: `concurrency: runs:` in dagster.yaml) that tags export runs as they are queued."""

    def submit_run(self, context: SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        try:
            missing = launch_tags(run, lambda name: _job_tags(context, run, name))
        except Exception:  # a tag lookup must never keep a run from launching; the first step tags it anyway
            logger.exception(f"could not tag run {run.run_id} when queued; its first step will")
            missing = {}
        if missing:
            self._instance.add_run_tags(run.run_id, missing)
            run = self._instance.get_run_by_id(run.run_id) or run
        try:
            ensure_export_pools(self._instance, exports_of_run(run))
        except Exception:  # the run still gets its slot on its first claim, as without this
            logger.exception(f"could not create the pools of run {run.run_id} when queued")
        return super().submit_run(SubmitRunContext(run, context.workspace))


def _job_tags(context: SubmitRunContext, run: dg.DagsterRun, export: str) -> Mapping[str, str]:
    """The tags of `<export>_job` in the run's code location (empty when it has none)."""
    origin = run.remote_job_origin
    if origin is None:
        return {}
    repository_origin = origin.repository_origin
    location = context.workspace.get_code_location(repository_origin.code_location_origin.location_name)
    repository = location.get_repository(repository_origin.repository_name)
    job_name = export_job_name(export)
    return repository.get_full_job(job_name).tags if repository.has_job(job_name) else {}
