"""Cutting an integer key's [MIN, MAX] into ranges of equal width: fan-out's chunks (stages/chunks.py) and
parallel streams (stages/streams.py) split alike.

Equal widths balance the ranges when keys are dense (a sequence); a sparse or skewed key
gives uneven ranges, never wrong ones: the ranges partition [MIN, MAX], so every key in it is
in exactly one.
"""

from __future__ import annotations

import decimal

from export_pipelines.spec.plan import SourceRef
from export_pipelines.stages.query import KeyRange


def split_key_range(low: int, high: int, chunks: int) -> list[tuple[int, int]]:
    """[low, high] (both inclusive) cut into at most `chunks` half-open ranges of equal width (the last may be narrower)."""
    span = high - low + 1
    count = max(1, min(chunks, span))
    width = -(-span // count)
    return [(start, min(start + width, high + 1)) for start in range(low, high + 1, width)]


def key_ranges(key: SourceRef, low, high, count: int, *, descending: bool = False, with_unfit: bool = True) -> list[KeyRange]:
    """[low, high] of `key` (the database's MIN and MAX, any number type) as at most `count` KeyRanges, in the
    order their rows are written (`descending`: from the last range to the first).

    with_unfit: the range of the lowest keys also takes the rows whose key does not fit its field
    (KeyRange.with_unfit), so they are read, and listed as bad rows, once.
    """
    pairs = split_key_range(whole(low, is_low=True), whole(high, is_low=False), count)
    ranges = [KeyRange(key, start, end, with_unfit=with_unfit and index == 0) for index, (start, end) in enumerate(pairs)]
    if descending:
        ranges.reverse()
    return ranges


def whole(value, *, is_low: bool) -> int:
    """A bound as an integer that keeps every key between the bounds: a stored 2.5 (a bad row) widens to 2..3."""
    number = decimal.Decimal(str(value))
    return int(number.to_integral_value(decimal.ROUND_FLOOR if is_low else decimal.ROUND_CEILING))
