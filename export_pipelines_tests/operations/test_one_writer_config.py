"""The one-writer guarantee as configured: dagster.yaml gives every pool one slot, and each
export's upload step (only it) is in its export's pool; run tags for the UI's run filter.
(That runs of every launch path take turns: test_ui_backfills.py.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import yaml

from export_pipelines.definitions import build_definitions
from export_pipelines.naming import WINDOW_TAG, export_job_name
from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import write_config

REPO_DAGSTER_YAML = Path(__file__).parents[2] / "dagster.yaml"
INCREMENTAL = {
    "name": "daily_orders", "model": "transactions", "fields": ["id"],
    "incremental": {"by": "event_date", "grain": "daily", "start": "2026-01-01", "timezone": "UTC"},
    "schedule": {"repeated": "daily", "at": "02:00", "timezone": "UTC"},
}
SNAPSHOT = {"name": "alpha", "model": "customers", "fields": ["id"]}


def test_every_pool_has_one_slot_and_the_queue_has_no_tag_limits(tmp_path):
    (tmp_path / "instance").mkdir()
    settings = yaml.safe_load(REPO_DAGSTER_YAML.read_text())
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance"), overrides=settings) as instance:
        concurrency = instance.get_concurrency_config()
    assert concurrency.pool_config.default_pool_limit == 1
    assert concurrency.run_queue_config.tag_concurrency_limits == []


def test_only_the_upload_step_of_each_export_is_in_its_export_pool(tmp_path):
    defs = build_definitions(load_config(write_config(tmp_path / "config", [SNAPSHOT, INCREMENTAL])))
    for name in ("alpha", "daily_orders"):
        job = defs.resolve_job_def(export_job_name(name))
        pools = {node.name.rsplit("__", 1)[1]: node.definition.pool for node in job.graph.node_dict[f"exports__{name}"].definition.nodes}
        assert pools == {"extract": None, "map": None, "serialize": None, "upload": f"export_pipelines/{name}"}


def test_job_tags_name_the_export_and_a_window_only_when_it_is_known(tmp_path):
    defs = build_definitions(load_config(write_config(tmp_path / "config", [SNAPSHOT, INCREMENTAL])))
    snapshot_tags = dict(defs.resolve_job_def(export_job_name("alpha")).tags)
    assert snapshot_tags["export_pipelines/export"] == "alpha" and snapshot_tags[WINDOW_TAG] == "alpha"
    assert snapshot_tags["export_pipelines/model"] == "customers" and snapshot_tags["export_pipelines/trigger"] == "manual"
    incremental_tags = dict(defs.resolve_job_def(export_job_name("daily_orders")).tags)
    assert incremental_tags["export_pipelines/export"] == "daily_orders" and WINDOW_TAG not in incremental_tags


def test_a_scheduled_window_run_carries_its_window_and_trigger(tmp_path):
    defs = build_definitions(load_config(write_config(tmp_path / "config", [INCREMENTAL])))
    schedule = defs.resolve_schedule_def("daily_orders_schedule")
    tick = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC))
    [request] = schedule.evaluate_tick(tick).run_requests
    # The tick after 2026-11-22 02:00 covers the day completed since: 2026-11-22.
    assert request.tags[WINDOW_TAG] == "daily_orders@2026-11-22..2026-11-22"
    assert request.tags["export_pipelines/trigger"] == "schedule"
