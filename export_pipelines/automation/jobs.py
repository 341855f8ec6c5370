"""One job per export: what its schedule or dependency sensor launches."""

from __future__ import annotations

import dagster as dg

from export_pipelines.execution import export_executor
from export_pipelines.naming import TRIGGER_TAG, asset_key_for, export_job_name, export_run_tags
from export_pipelines.spec.plan import ExportPlan


def build_export_job(plan: ExportPlan) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        export_job_name(plan.name),
        selection=dg.AssetSelection.assets(asset_key_for(plan.name)),
        # The stages run one after the other and pass files on disk: one process is enough
        # (EXPORT_EXECUTOR=celery: each step on a Celery worker, execution.py). A fanned-out
        # export's chunk steps (fan_out.py) run side by side, each in a process of its own.
        executor_def=export_executor(),
        description=f"Materializes exports/{plan.name} (one run per window range for incremental exports).",
        tags={**export_run_tags(plan), TRIGGER_TAG: "manual"},
    )
