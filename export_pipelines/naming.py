"""The one place that decides asset keys, op names and job names from export names."""

from __future__ import annotations

import itertools
import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from export_pipelines.spec.plan import ExportPlan

ASSET_PREFIX = "exports"
ALL_EXPORTS_JOB = "all_exports"
INVALID_GROUP = "invalid_exports"


def asset_key_for(export_name: str) -> dg.AssetKey:
    return dg.AssetKey([ASSET_PREFIX, export_name])


def op_name_for(export_name: str, stage: str) -> str:
    """The node of `stage` in the export's graph: its step key's last part (the graph's name, exports__<export>, is the first)."""
    return f"{export_name}__{stage}"


def shared_op_name(stage: str) -> str:
    """The name of the op definition of `stage` that every export's graph shares (factory.py), which
    Dagster requires unique among the location's op and graph definitions: no export's graph
    (exports__<name>) or own op (<name>__upload) and no ad-hoc job's op (adhoc/job.py) is named so."""
    return f"export_{stage}"


def invalid_asset_name(file_stem: str) -> str:
    """A Dagster-safe name for a spec file that failed to load."""
    return re.sub(r"[^a-z0-9_]", "_", file_stem.lower()) or "unnamed"


def invalid_asset_names(spec_files: list[str], taken: set[str]) -> dict[str, str]:
    """A distinct asset name per spec file that failed to load (exports/x.yaml -> x), none of them in `taken`.

    Different files can reduce to one name (x.yaml and x.yml, Bad-One.yaml and bad_one.yaml,
    a broken x.yaml beside a valid export named x): the name with the file's extension, then a
    number, tells them apart, so every broken file stays visible and no key is defined twice.
    """
    names: dict[str, str] = {}
    used = set(taken)
    for relative in spec_files:
        path = PurePosixPath(relative)
        full = invalid_asset_name(path.name)
        numbered = (f"{full}_{number}" for number in itertools.count(2))
        name = next(c for c in itertools.chain([invalid_asset_name(path.stem), full], numbered) if c not in used)
        names[relative] = name
        used.add(name)
    return names


def export_job_name(export_name: str) -> str:
    return f"{export_name}_job"


def schedule_name_for(export_name: str) -> str:
    return f"{export_name}_schedule"


def after_sensor_name_for(export_name: str, upstream_name: str) -> str:
    return f"{export_name}_after_{upstream_name}"


FAILURE_MAIL_SENSOR = "export_failure_mail"
SUCCESS_MAIL_SENSOR = "export_success_mail"


def export_names_of_assets(asset_keys) -> list[str]:
    """The exports a run materialized, from its asset selection (exports/<name>)."""
    return sorted(key.path[1] for key in asset_keys or () if len(key.path) == 2 and key.path[0] == "exports")


EXPORT_TAG = "export_pipelines/export"
MODEL_TAG = "export_pipelines/model"
TARGET_TAG = "export_pipelines/target"
# A run of several exports (all_exports, or Materialize of several assets) names them all here instead.
EXPORTS_TAG = "export_pipelines/exports"
# The run's export window: <export> for snapshots, <export>@<start>..<end> for window ranges.
WINDOW_TAG = "export_pipelines/window"
# How a run came about: manual (the job's default), schedule, sensor, cli or rerun; backfills carry dagster/backfill.
TRIGGER_TAG = "export_pipelines/trigger"
# The host whose processes run the run's steps: run monitoring checks them there (run_launcher.py).
HOST_TAG = "export_pipelines/host"


def window_tag(export_name: str, start: str | None = None, end: str | None = None) -> dict[str, str]:
    return {WINDOW_TAG: export_name if start is None else f"{export_name}@{start}..{end}"}


def export_pool(export_name: str) -> str:
    """The Dagster pool of an export's upload step; dagster.yaml gives every pool one slot, so
    one run at a time writes to the export's target, whatever launched it."""
    return f"export_pipelines/{export_name}"


def export_run_tags(plan: ExportPlan, key_range: dg.PartitionKeyRange | None = None) -> dict[str, str]:
    """The tags of a run of one export, over `key_range` for an incremental export: the UI's
    run list filters by them. An incremental export's window is known only once a run asks
    for one, so without a range it gets no window tag."""
    tags = {
        EXPORT_TAG: plan.name,
        MODEL_TAG: plan.model_name,
        TARGET_TAG: plan.spec.target_label.replace("/", "_")[:63] or "download",
    }
    if plan.spec.incremental is None:
        tags |= window_tag(plan.name)
    elif key_range is not None:
        tags |= window_tag(plan.name, key_range.start, key_range.end)
    return tags


ADHOC_JOB = "adhoc_export"
ADHOC_PLAN_OP = "adhoc_plan"
# Run tags of an ad-hoc export: how it was requested and by whom (Voucherify's channel and user_id).
ADHOC_CHANNEL_TAG = "export_pipelines/channel"
ADHOC_USER_TAG = "export_pipelines/user_id"
ADHOC_OBJECT_TAG = "export_pipelines/exported_object"


def adhoc_export_name(run_id: str) -> str:
    """An ad-hoc export's name, and so its download folder: one per run, a valid export name."""
    return "adhoc_" + run_id.replace("-", "")


def is_adhoc_export_name(name: str) -> bool:
    """Whether `name` is an ad-hoc export's: that of the run that planned it (a re-execution keeps its parent's)."""
    return re.fullmatch(r"adhoc_[0-9a-f]{32}", name) is not None
