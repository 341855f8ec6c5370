"""Antavo's aggregation rules, checked at load so a wrong report never reaches a partner.

Each problem names the export and the field, at the key path of the field's `aggregation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from export_pipelines.spec.export import ExportSpec

if TYPE_CHECKING:
    # plan.py calls these rules; importing it at run time would be circular.
    from export_pipelines.spec.plan import OutputField

# (key path, message): plan.py turns them into its PlanErrors.
Problem = tuple[str, str]

NUMERIC_TYPES = frozenset({"integer", "decimal"})
ORDERED_TYPES = frozenset({"integer", "decimal", "string", "timestamp", "date"})
GROUPABLE_TYPES = frozenset({"integer", "decimal", "string", "boolean", "timestamp", "date"})


def aggregation_problems(spec: ExportSpec, fields: Sequence[tuple[int, OutputField]], *, all_fields: bool = True) -> list[Problem]:
    """Every broken rule of an aggregating export; fields are the resolved ones with their index in the file.

    Without all_fields (some of the file's fields did not validate), the rule that needs the
    whole list, at least one group, waits: the missing field may be the group.
    """
    if not spec.aggregates:
        return []
    export = f"export {spec.name}"
    problems = []
    if all_fields and not any(field.aggregation == "group" for field in spec.fields):
        problems.append(("fields", f"{export} aggregates, so at least one field needs `aggregation: group`"))
    if spec.order:
        problems.append(("order", f"{export} aggregates; its rows are sorted by the group fields, so remove `order`"))
    first_count: int | None = None
    for index, field in fields:
        key_path = f"fields[{index}].aggregation"
        label = field.source.label
        kind = field.source.field_type
        match field.aggregation:
            case None:
                message = "every field of an aggregating export needs an aggregation: group, count, sum, avg, min or max"
                problems.append((key_path, f"{export}, field {label}: {message}"))
                continue
            case _ if field.computed:
                problems.append((key_path, f"{export}, field {label}: computed fields cannot be aggregated"))
            case "group" if field.identifier:
                problems.append((
                    key_path,
                    f"{export}, field {label}: identifier fields cannot be a group (each row would be its own group); "
                    "count them instead",
                ))
            case "group" if kind not in GROUPABLE_TYPES:
                problems.append((key_path, f"{export}, field {label}: group by one property ({label}.X), not a whole JSON document"))
            case "count" if first_count is not None:
                problems.append((
                    key_path,
                    f"{export}, field {label}: only one count per export (it counts rows, not values); "
                    f"fields[{first_count}] already counts",
                ))
            case "count":
                first_count = index
            case "sum" | "avg" if kind not in NUMERIC_TYPES:
                problems.append((
                    key_path, f"{export}, field {label}: {field.aggregation} needs a numeric field; {label} is {kind}"
                ))
            case "min" | "max" if kind not in ORDERED_TYPES:
                problems.append((
                    key_path,
                    f"{export}, field {label}: {field.aggregation} works on numbers, dates and text; {label} is {kind}",
                ))
    return problems
