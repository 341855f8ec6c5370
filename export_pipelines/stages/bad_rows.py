"""Rows whose values cannot be converted: skipped and listed up to a limit, then a failure.

Sana's 'maximum items to skip before failure': a handful of broken source rows should not
hold back a partner's nightly file, but a broken column (every row bad) must stop the run.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

REJECTED_HEADER = ("row_number", "key", "field", "value", "reason")
VALUE_PREVIEW_CHARS = 80


@dataclass(frozen=True)
class RejectedRow:
    row_number: int  # 1-based, in the export's order (the primary key breaks ties, so it is stable)
    key: str  # the primary key when the export writes it, else the row number
    field: str
    value: str
    reason: str

    def describe(self) -> str:
        return f"row {self.row_number} ({self.key}): {self.field} = {self.value} is {self.reason}"


class TooManyBadRows(RuntimeError):
    pass


class BadRows:
    """Collects rejected rows for one export run; the row after the limit raises."""

    def __init__(self, export: str, limit: int):
        self.export = export
        self.limit = limit
        self.rows: list[RejectedRow] = []

    def reject(self, row: RejectedRow) -> None:
        self.rows.append(row)
        if len(self.rows) > self.limit:
            hint = "raise max_bad_rows in the spec to skip such rows" if self.limit == 0 else "raise max_bad_rows or fix the source"
            raise TooManyBadRows(
                f"For export {self.export}, {len(self.rows)} row(s) cannot be converted, more than max_bad_rows "
                f"{self.limit}; {hint}. " + "; ".join(r.describe() for r in self.rows[:5])
            )


def value_preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= VALUE_PREVIEW_CHARS else text[: VALUE_PREVIEW_CHARS - 3] + "..."


def write_rejected_csv(rows: list[RejectedRow], path: Path) -> Path:
    """The sidecar a data engineer opens at 3 a.m.: which rows were left out, and why."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REJECTED_HEADER)
        for row in rows:
            writer.writerow([row.row_number, row.key, row.field, row.value, row.reason])
    return path
