"""Filters typed on a command line, `FIELD OPERATOR [VALUE,VALUE...]`, as Voucherify's filter object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from export_pipelines.spec.export import FILTER_OPERATORS
from export_pipelines.spec.plan import VALUELESS_OPERATORS
from export_pipelines.spec.problems import closest


class FilterTextError(ValueError):
    pass


def parse_filters(texts: Sequence[str], junction: str = "and") -> dict[str, Any]:
    """['categories $in postman,gift'] -> {junction, categories: {conditions: {$in: [postman, gift]}}}.

    The planner checks fields and values, as for a spec; this only splits the text.
    """
    filters: dict[str, Any] = {}
    for text in texts:
        field, operator, values = _split(text)
        conditions = filters.setdefault(field, {"conditions": {}})["conditions"]
        conditions[operator] = values
    return {"junction": junction, **filters} if filters else {}


def _split(text: str) -> tuple[str, str, Any]:
    parts = text.split(maxsplit=2)
    if len(parts) < 2:
        raise FilterTextError(f"--filter {text!r}: write FIELD OPERATOR VALUE, e.g. 'categories $in postman'")
    field, operator = parts[0], parts[1]
    if operator not in FILTER_OPERATORS:
        raise FilterTextError(f"--filter {text!r}: unknown operator {operator!r}{closest(operator, FILTER_OPERATORS)}")
    if operator in VALUELESS_OPERATORS:
        return field, operator, True
    if len(parts) < 3:
        raise FilterTextError(f"--filter {text!r}: {operator} needs a value")
    return field, operator, [value.strip() for value in parts[2].split(",")]
