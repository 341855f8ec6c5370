"""Each export's pool has its one slot before any of its runs claims it (run_coordinator.ensure_export_pools):
Dagster would otherwise create the slots on the first claims, and two first claims at once could make two."""

from __future__ import annotations

import dagster as dg

from export_pipelines.run_coordinator import ensure_export_pools

ONE_SLOT = {"concurrency": {"pools": {"default_limit": 1}}}  # as dagster.yaml and deploy/dagster.yaml


def slots(instance: dg.DagsterInstance) -> dict[str, int]:
    storage = instance.event_log_storage
    return {key: storage.get_concurrency_info(key).slot_count for key in storage.get_concurrency_keys()}


def test_export_pools_are_made_with_one_slot_once(tmp_path):
    with dg.instance_for_test(overrides=ONE_SLOT, temp_dir=str(tmp_path)) as instance:
        ensure_export_pools(instance, ["orders", "customers"])
        ensure_export_pools(instance, ["orders"])
        assert slots(instance) == {"export_pipelines/orders": 1, "export_pipelines/customers": 1}


def test_a_pool_set_by_hand_is_left_as_it_is(tmp_path):
    with dg.instance_for_test(overrides=ONE_SLOT, temp_dir=str(tmp_path)) as instance:
        instance.event_log_storage.set_concurrency_slots("export_pipelines/orders", 2)
        ensure_export_pools(instance, ["orders"])
        assert slots(instance) == {"export_pipelines/orders": 2}
