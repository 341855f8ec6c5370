"""Time windows of incremental exports: their partitions and the range a scheduled tick covers.

Only complete windows exist (end_offset 0): today's window appears once today is over,
as in Capillary, where recurring exports always hold data until the previous day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from export_pipelines.spec.export import Incremental

if TYPE_CHECKING:
    from export_pipelines.spec.plan import ExportPlan


def partitions_for(incremental: Incremental | None) -> dg.TimeWindowPartitionsDefinition | None:
    if incremental is None:
        return None
    if incremental.grain == "hourly":
        return dg.HourlyPartitionsDefinition(
            start_date=f"{incremental.start:%Y-%m-%d}-00:00", timezone=incremental.timezone, end_offset=0
        )
    return dg.DailyPartitionsDefinition(start_date=f"{incremental.start:%Y-%m-%d}", timezone=incremental.timezone, end_offset=0)


def last_complete_key(partitions: dg.TimeWindowPartitionsDefinition, at: dt.datetime) -> str | None:
    with dg.partition_loading_context(at):
        return partitions.get_last_partition_key()


def windows_between(
    partitions: dg.TimeWindowPartitionsDefinition, after: dt.datetime | None, until: dt.datetime
) -> dg.PartitionKeyRange | None:
    """Every window that became complete in (after, until]; None when there is none.

    With after = the previous tick this is "every window since the previous scheduled run":
    a week for a weekly tick, the previous month for a monthly one, whatever DST did.
    """
    last = last_complete_key(partitions, until)
    if last is None:
        return None
    done_before = last_complete_key(partitions, after) if after is not None else None
    if done_before == last:
        return None
    with dg.partition_loading_context(until):
        first = partitions.get_next_partition_key(done_before) if done_before else partitions.get_first_partition_key()
    return dg.PartitionKeyRange(first, last)


def latest_windows(partitions: dg.TimeWindowPartitionsDefinition, at: dt.datetime, count: int) -> dg.PartitionKeyRange:
    """The last `count` windows complete at `at`, as one range."""
    with dg.partition_loading_context(at):
        keys = partitions.get_partition_keys()
    if not keys:
        raise ValueError(f"no window is complete at {at.isoformat()}")
    return dg.PartitionKeyRange(keys[-min(count, len(keys))], keys[-1])


def range_tags(key_range: dg.PartitionKeyRange) -> dict[str, str]:
    """A single run over the range: Dagster's range tags (RunRequest has no range argument)."""
    return {ASSET_PARTITION_RANGE_START_TAG: key_range.start, ASSET_PARTITION_RANGE_END_TAG: key_range.end}


def range_from_tags(tags: Mapping[str, str]) -> dg.PartitionKeyRange | None:
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start is None or end is None:
        single = tags.get(PARTITION_NAME_TAG)
        return dg.PartitionKeyRange(single, single) if single else None
    return dg.PartitionKeyRange(start, end)


def wall_clock_days(start: dt.datetime, end: dt.datetime) -> float:
    """Days between two local times as a calendar shows them: a DST day still counts as one."""
    return (end.replace(tzinfo=None) - start.replace(tzinfo=None)) / dt.timedelta(days=1)


class WindowRangeError(ValueError):
    """A window range that does not name complete windows of the export; the message says which exist."""


def requested_range(plan: ExportPlan, first: str | None, last: str | None, now: dt.datetime) -> dg.PartitionKeyRange | None:
    """The windows `first` .. `last` (partition keys, both included) of an incremental export;
    `last` defaults to the latest complete window and `first` to `last`. None for a snapshot export.

    Raises WindowRangeError naming the export and the windows that exist.
    """
    partitions = partitions_for(plan.spec.incremental)
    if partitions is None:
        if first or last:
            raise WindowRangeError(f"export {plan.name} is a snapshot export: it has no windows; leave out --from and --to")
        return None
    with dg.partition_loading_context(now):
        keys = partitions.get_partition_keys()
    if not keys:
        raise WindowRangeError(f"export {plan.name} has no complete window yet (its windows start at {plan.spec.incremental.start})")
    last = last or keys[-1]
    first = first or last
    known = {key: index for index, key in enumerate(keys)}
    for key in (first, last):
        if key not in known:
            raise WindowRangeError(
                f"for export {plan.name}, {key!r} is not a complete window: its {plan.spec.incremental.grain} windows "
                f"({plan.spec.incremental.timezone}) run from {keys[0]} to {keys[-1]}"
            )
    if known[first] > known[last]:
        raise WindowRangeError(f"for export {plan.name}, --from {first} is after --to {last}")
    return dg.PartitionKeyRange(first, last)
