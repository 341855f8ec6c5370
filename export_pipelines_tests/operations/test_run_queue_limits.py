"""dagster.yaml's run-queue limit, applied by Dagster's own tag counter (the one its queue daemon
uses) to the tags export jobs put on their runs: one run per export window at a time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import yaml
from dagster._utils.tags import TagConcurrencyLimitsCounter

from export_pipelines.definitions import build_definitions
from export_pipelines.naming import WINDOW_TAG, export_job_name, window_tag
from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import write_config

REPO_DAGSTER_YAML = Path(__file__).parents[2] / "dagster.yaml"


def queue_limits(tmp_path: Path) -> list[dict]:
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance"), overrides=yaml.safe_load(REPO_DAGSTER_YAML.read_text())) as instance:
        return instance.get_concurrency_config().run_queue_config.tag_concurrency_limits


def run_with(tags: dict[str, str], status: dg.DagsterRunStatus) -> dg.DagsterRun:
    # The counter looks at tags only; a queued run's status needs a job origin, which plays no part here.
    return dg.DagsterRun(job_name="any", tags=tags, status=status)


def test_a_second_run_of_the_same_export_window_waits(tmp_path):
    specs = [{"name": n, "model": "customers", "fields": ["id"]} for n in ("alpha", "beta")]
    defs = build_definitions(load_config(write_config(tmp_path / "config", specs)))
    alpha_tags = dict(defs.resolve_job_def(export_job_name("alpha")).tags)
    beta_tags = dict(defs.resolve_job_def(export_job_name("beta")).tags)
    assert alpha_tags[WINDOW_TAG] == "alpha" and alpha_tags["export_pipelines/export"] == "alpha"

    running = run_with(alpha_tags, dg.DagsterRunStatus.STARTED)
    counter = TagConcurrencyLimitsCounter(queue_limits(tmp_path), [running])
    assert counter.is_blocked(run_with(alpha_tags, dg.DagsterRunStatus.NOT_STARTED))  # same export, same window: queued
    assert not counter.is_blocked(run_with(beta_tags, dg.DagsterRunStatus.NOT_STARTED))  # another export runs alongside


def test_different_windows_of_one_export_run_side_by_side(tmp_path):
    first = window_tag("orders", "2026-11-01", "2026-11-07")
    counter = TagConcurrencyLimitsCounter(queue_limits(tmp_path), [run_with(first, dg.DagsterRunStatus.STARTED)])
    assert counter.is_blocked(run_with(window_tag("orders", "2026-11-01", "2026-11-07"), dg.DagsterRunStatus.NOT_STARTED))
    assert not counter.is_blocked(run_with(window_tag("orders", "2026-11-08", "2026-11-14"), dg.DagsterRunStatus.NOT_STARTED))


def test_a_scheduled_window_run_carries_its_window_and_trigger(tmp_path):
    spec = {
        "name": "daily_orders", "model": "transactions", "fields": ["id"],
        "incremental": {"by": "event_date", "grain": "daily", "start": "2026-01-01", "timezone": "UTC"},
        "schedule": {"repeated": "daily", "at": "02:00", "timezone": "UTC"},
    }
    defs = build_definitions(load_config(write_config(tmp_path / "config", [spec])))
    schedule = defs.resolve_schedule_def("daily_orders_schedule")
    tick = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC))
    [request] = schedule.evaluate_tick(tick).run_requests
    # The tick after 2026-11-22 02:00 covers the day completed since: 2026-11-22.
    assert request.tags[WINDOW_TAG] == "daily_orders@2026-11-22..2026-11-22"
    assert request.tags["export_pipelines/trigger"] == "schedule"
