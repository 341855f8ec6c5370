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
    utc = array.cast(pa.timestamp("us", tz="UTC"))
    whole_seconds = utc.cast(pa.timestamp("s", tz="UTC"), safe=False)
    base = pc.strftime(whole_seconds, format="%Y-%m-%dT%H:%M:%S")
    micros = pc.subtract(utc.cast(pa.int64()), pc.multiply(whole_seconds.cast(pa.int64()), MICROS_PER_SECOND))
    fraction = pc.if_else(
        pc.equal(micros, 0),
        "",
        pc.binary_join_element_wise(".", pc.utf8_lpad(micros.cast(pa.string()), width=6, padding="0"), ""),
    )
    return pc.binary_join_element_wise(base, fraction, "Z", "")
