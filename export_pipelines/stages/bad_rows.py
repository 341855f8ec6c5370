"""Rows whose values cannot be converted: skipped and listed up to a limit, then a failure.

Sana's 'maximum items to skip before failure': a handful of broken source rows should not
hold back a partner's nightly file, but a broken column (every row bad) must stop the run.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import decimal
from dataclasses import dataclass
from pathlib import Path

from export_pipelines.lazy_imports import pa

REJECTED_HEADER = ("row_number", "key", "field", "value", "reason")
VALUE_PREVIEW_CHARS = 80

# Why a value cannot be its field's type; each completes "<field> = <value> is ...". The SQL checks
# (stages/dialects.py) and the conversion below use the same words, so both paths list a row alike.
NOT_A_NUMBER = "not a number"
NOT_FINITE = "not a finite number"
NOT_AN_INTEGER = "not an integer"
OUTSIDE_INTEGER_RANGE = "outside the 64-bit integer range"
NOT_A_BOOLEAN = "not a boolean (0 or 1)"
NOT_A_TIMESTAMP = "not an ISO 8601 timestamp"
NOT_A_DATE = "not a date (YYYY-MM-DD)"
NOT_A_CALENDAR_DAY = "not a day of the calendar (a zero date, a zero month or day, or a day the month has not)"
INFINITE = "infinite"
OUTSIDE_WRITTEN_YEARS = "outside the years 0001-9999"
NOT_TEXT = "binary, not text"
# Text, or a BLOB's bytes read as text, that is not UTF-8: SQLite keeps any bytes as TEXT, and its ADBC driver
# reads both alike, so both paths name both so.
NOT_UTF8 = "not UTF-8 text"
JSON_NUMBER_AS_DOUBLE = "a JSON number of more significant digits than the double the database reads it as holds (15)"
A_NUMBER_NOT_TEXT = "a number, not text (map the field as an integer or decimal in models.yaml)"
NOT_JSON = "not valid JSON"
A_TIME_NOT_A_DATE = "a time of day, not a date (the column is a timestamp)"


def more_decimal_places(scale: int) -> str:
    return f"a number with more than {scale} decimal places (the field's scale)"


def too_many_digits(precision: int) -> str:
    return f"a number of more than {precision} digits"


def conversion_problem(value: object, target: pa.DataType) -> str:
    """Why `value` (as the driver returned it) cannot be an Arrow `target` value exactly."""
    if pa.types.is_decimal(target):
        return _decimal_problem(value, target)
    if pa.types.is_integer(target):
        if isinstance(value, int) and not isinstance(value, bool):
            return OUTSIDE_INTEGER_RANGE
        return NOT_AN_INTEGER
    if pa.types.is_boolean(target):
        return NOT_A_BOOLEAN
    if pa.types.is_timestamp(target):
        return OUTSIDE_WRITTEN_YEARS if isinstance(value, dt.datetime) else NOT_A_TIMESTAMP
    if pa.types.is_date(target):
        return OUTSIDE_WRITTEN_YEARS if isinstance(value, dt.date) else NOT_A_DATE
    if pa.types.is_string(target) or pa.types.is_large_string(target):
        if isinstance(value, bytes) or (isinstance(value, str) and _undecodable(value)):
            # Bytes convert to text exactly when they are UTF-8; text decoded with surrogateescape holds some that are not.
            return NOT_UTF8
        return A_NUMBER_NOT_TEXT if isinstance(value, int | float | decimal.Decimal) else "not text"
    return f"not a valid {target}"


def _decimal_problem(value: object, target: pa.Decimal128Type | pa.Decimal256Type) -> str:
    if isinstance(value, bool) or not isinstance(value, int | decimal.Decimal):
        return NOT_A_NUMBER
    number = decimal.Decimal(value)
    if not number.is_finite():
        return NOT_FINITE
    digits = number.as_tuple()
    # The default context's 28 digits would make round() of a longer value (MySQL's DECIMAL(65,30)) raise.
    with decimal.localcontext(prec=len(digits.digits) + target.scale + 1):
        if digits.exponent < -target.scale and number != round(number, target.scale):
            return more_decimal_places(target.scale)
    return too_many_digits(target.precision)


def _undecodable(text: str) -> bool:
    """Whether `text` holds the lone surrogates surrogateescape decodes bytes that are not UTF-8 into."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@dataclass(frozen=True)
class RejectedRow:
    row_number: int  # 1-based, in the export's order (the primary key breaks ties, so it is stable)
    key: str  # the primary key when the export writes it, else the row number
    field: str
    value: str
    reason: str

    def describe(self) -> str:
        return f"row {self.row_number} ({self.key}): {self.field} = {self.value!r} is {self.reason}"


class TooManyBadRows(RuntimeError):
    pass


class BadRows:
    """Collects rejected rows for one export run; the row after the limit raises."""

    def __init__(self, export: str, limit: int):
        self.export = export
        self.limit = limit
        self.rows: list[RejectedRow] = []

    def in_row_order(self) -> tuple[RejectedRow, ...]:
        return tuple(sorted(self.rows, key=lambda row: row.row_number))

    def reject(self, row: RejectedRow) -> None:
        self.rows.append(row)
        if len(self.rows) > self.limit:
            hint = "raise max_bad_rows in the spec to skip such rows" if self.limit == 0 else "raise max_bad_rows or fix the source"
            raise TooManyBadRows(
                f"For export {self.export}, {len(self.rows)} row(s) cannot be converted, more than max_bad_rows "
                f"{self.limit}; {hint}. " + "; ".join(r.describe() for r in self.rows[:5])
            )


def joined_bad_rows(export: str, limit: int, parts: list[tuple[int, tuple[RejectedRow, ...]]]) -> list[RejectedRow]:
    """Bad rows of consecutive parts of one read (fan-out's chunks, parallel streams), each part's numbered from
    its own first row: one list numbered as one read numbers them. parts: (rows the part's query returned,
    rejected ones included; its bad rows).

    Raises TooManyBadRows, as one read would, once the parts together hold more than `limit`.
    """
    joined = []
    offset = 0
    for seen, rows in parts:
        joined += [dataclasses.replace(row, row_number=row.row_number + offset) for row in rows]
        offset += seen
    limit_check = BadRows(export, limit)
    for row in joined:
        limit_check.reject(row)
    return joined


def value_preview(value: object) -> str:
    """The stored value as text, as a data engineer would look it up in the source: text as it is, a
    BLOB, and text that is not UTF-8 (decoded with surrogateescape), as SQLite's X'..' literal of its
    bytes, a number in positional notation; cut at VALUE_PREVIEW_CHARS."""
    match value:
        case str() if _undecodable(value):
            text = f"X'{value.encode('utf-8', 'surrogateescape').hex().upper()}'"
        case str():
            text = value
        case bytes():
            text = f"X'{value.hex().upper()}'"
        case decimal.Decimal() if value.is_finite():
            text = format(value, "f")
        case dt.date():
            text = value.isoformat()
        case _:
            text = str(value)
    return text if len(text) <= VALUE_PREVIEW_CHARS else text[: VALUE_PREVIEW_CHARS - 3] + "..."


def key_text(value: object) -> str:
    """A row's primary key as the rejected-rows list names it: as it is, except a key that is not UTF-8 text
    (a BLOB, or text decoded with surrogateescape), which is SQLite's X'..' literal of its bytes, whole
    (a data engineer looks the row up by it: `WHERE code = X'6380FF'`)."""
    if isinstance(value, str) and _undecodable(value):
        value = value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes):
        return f"X'{value.hex().upper()}'"
    return str(value)


def write_rejected_csv(rows: list[RejectedRow], path: Path) -> Path:
    """The sidecar a data engineer opens at 3 a.m.: which rows were left out, and why."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REJECTED_HEADER)
        for row in rows:
            writer.writerow([row.row_number, row.key, row.field, row.value, row.reason])
    return path
