"""The bundled demo config holds every scheduling mode of the seeds, as the UI will show them."""

from __future__ import annotations

import dagster as dg

from export_pipelines.definitions import build_definitions
from export_pipelines.naming import asset_key_for
from export_pipelines.spec.loader import bundled_demo_config, load_config


def test_demo_schedules_sensors_and_partitions():
    defs = build_definitions(load_config(bundled_demo_config()))
    schedules = {schedule.name: schedule for schedule in defs.schedules}
    crons = {name: (s.cron_schedule, s.execution_timezone, s.default_status) for name, s in schedules.items()}
    running, stopped = dg.DefaultScheduleStatus.RUNNING, dg.DefaultScheduleStatus.STOPPED
    assert crons == {
        "antavo_customers_schedule": ("0 6 15,L * *", "Europe/Budapest", running),  # monthly incl. Last
        "apparel21_customers_schedule": ("0 2 * * *", "Australia/Sydney", running),  # daily
        "capillary_transactions_schedule": ("0 6 * * 1", "Asia/Kolkata", running),  # weekly on Mondays
        "sana_orders_schedule": ("*/30 * * * *", "UTC", running),  # every 30 minutes
        "voucherify_redemptions_schedule": ("0 3 * * *", "UTC", stopped),  # Inactive
        "voucherify_vouchers_schedule": ("0 6 1 12 *", "Europe/Budapest", running),  # On-date
    }
    sensors = {sensor.name: sensor for sensor in defs.sensors}
    assert set(sensors) == {"apparel21_orders_after_apparel21_customers", "export_failure_mail", "export_success_mail"}
    sensor = sensors["apparel21_orders_after_apparel21_customers"]
    assert sensor.name == "apparel21_orders_after_apparel21_customers"
    assert sensor.job_name == "apparel21_orders_job"
    assert "at least 30m later" in sensor.description

    graph = defs.resolve_asset_graph()
    partitioned = sorted(key.path[1] for key in graph.get_all_asset_keys() if graph.get(key).partitions_def is not None)
    assert partitioned == ["apparel21_customers", "apparel21_orders", "capillary_transactions"]
    # The dependent export is an edge in the lineage graph.
    assert graph.get(asset_key_for("apparel21_orders")).parent_keys == {asset_key_for("apparel21_customers")}
    metadata = graph.get(asset_key_for("capillary_transactions")).metadata
    assert metadata["schedule"].startswith("weekly (0 6 * * 1 Asia/Kolkata)")
    # The Overview's table of fields (source -> header, as the spec maps them) and the window column.
    fields = [(record.data["from"], record.data["to"]) for record in metadata["fields"].records]
    assert fields[:3] == [("id", "bill_id"), ("number", "bill_number"), ("customer_id", "user_id")]
    assert fields[6] == ("metadata.source", "ext_source") and len(fields) == 9
    assert metadata["window_column"] == "created_at (daily windows from 2025-01-01, Asia/Kolkata)"
    assert "window_column" not in graph.get(asset_key_for("voucherify_vouchers")).metadata
