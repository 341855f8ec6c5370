"""The exports list (Antavo's): every spec with its schedule, last run and last file size, searchable."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

from export_pipelines.automation.schedules import describe_schedule
from export_pipelines.naming import asset_key_for, schedule_name_for
from export_pipelines.spec.loader import ExportConfig
from export_pipelines.spec.plan import ExportPlan

NEVER = "-"


@dataclass(frozen=True)
class ExportListing:
    name: str
    model: str
    target: str
    owner: str
    schedule: str
    schedule_status: str
    last_run_status: str
    last_run_at: str
    last_file_bytes: int | None

    def matches(self, text: str) -> bool:
        needle = text.lower()
        return any(needle in value.lower() for value in (self.name, self.model, self.target, self.owner, self.schedule))


def list_exports(config: ExportConfig, instance: dg.DagsterInstance, search: str | None = None) -> list[ExportListing]:
    # A schedule started or stopped in the UI has a stored state; otherwise its spec's `active` rules.
    schedule_states = {
        state.instigator_name: state.status
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
        if state.status in {InstigatorStatus.RUNNING, InstigatorStatus.STOPPED}
    }
    listings = [_listing(plan, instance, schedule_states) for plan in config.plans.values()]
    return [listing for listing in listings if not search or listing.matches(search)]


def _listing(plan: ExportPlan, instance: dg.DagsterInstance, schedule_states: dict[str, InstigatorStatus]) -> ExportListing:
    spec = plan.spec
    key = asset_key_for(plan.name)
    if spec.schedule is None:
        schedule_status = NEVER
    elif (stored := schedule_states.get(schedule_name_for(plan.name))) is not None:
        schedule_status = "running" if stored == InstigatorStatus.RUNNING else "stopped"
    else:
        schedule_status = "running" if spec.schedule.active else "stopped"
    planned = instance.get_latest_planned_materialization_info(key)
    run = instance.get_run_record_by_id(planned.run_id) if planned else None
    materialization = instance.get_latest_materialization_event(key)
    size = None
    if materialization is not None and materialization.asset_materialization is not None:
        entry = materialization.asset_materialization.metadata.get("file_size_bytes")
        size = entry.value if entry is not None else None
    return ExportListing(
        name=plan.name,
        model=plan.model_name,
        target=spec.target_label,
        owner=spec.owner or "",
        schedule=describe_schedule(plan),
        schedule_status=schedule_status,
        last_run_status=run.dagster_run.status.value if run else NEVER,
        last_run_at=run.create_timestamp.strftime("%Y-%m-%dT%H:%MZ") if run else NEVER,
        last_file_bytes=size,
    )


def format_listing(listings: list[ExportListing]) -> str:
    header = ("NAME", "MODEL", "TARGET", "SCHEDULE", "SCHEDULE STATUS", "LAST RUN", "LAST RUN AT", "LAST FILE BYTES")
    rows = [
        (
            item.name,
            item.model,
            item.target,
            item.schedule,
            item.schedule_status,
            item.last_run_status,
            item.last_run_at,
            NEVER if item.last_file_bytes is None else str(item.last_file_bytes),
        )
        for item in listings
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows])
