"""How each value type is written in a file, decided once for mapping and serialization.

Timestamps are ISO 8601 in UTC with a Z (fractional seconds only when present),
decimals are positional with exactly their scale (12.30 stays 12.30, zero at scale 7 is
0.0000000, never 0E-7), booleans are true/false, dates YYYY-MM-DD.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

MICROS_PER_SECOND = 1_000_000
# Arrow writes a decimal the way Java's BigDecimal.toString does: in scientific notation once
# the adjusted exponent drops below -6, which a scale of 6 or less can never reach.
ARROW_POSITIONAL_MAX_SCALE = 6


def to_text(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The array's values as they appear in the file; NULL stays NULL."""
    kind = array.type
    if pa.types.is_string(kind):
        return array
    if pa.types.is_large_string(kind):
        return array.cast(pa.string())
    if pa.types.is_timestamp(kind):
        return _timestamp_text(array)
    if pa.types.is_decimal(kind):
        return decimal_text(array)
    return array.cast(pa.string())


def decimal_text(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Positional notation with exactly the type's scale digits after the point, at any magnitude.

    Built from the unscaled integer's digits (the same buffers read at scale 0), so the text
    is exact for decimal128 and decimal256 alike: unscaled -1 at scale 10 is -0.0000000001.
    """
    if isinstance(array, pa.ChunkedArray):
        return pa.chunked_array([decimal_text(chunk) for chunk in array.chunks], pa.string())
    scale = array.type.scale
    if scale <= ARROW_POSITIONAL_MAX_SCALE:
        return array.cast(pa.string())
    width = pa.decimal256 if pa.types.is_decimal256(array.type) else pa.decimal128
    unscaled_type = width(array.type.precision, 0)
    unscaled = pa.Array.from_buffers(unscaled_type, len(array), array.buffers(), array.null_count, array.offset)
    digits = unscaled.cast(pa.string())
    negative = pc.starts_with(digits, "-")
    magnitude = pc.utf8_lpad(pc.utf8_ltrim(digits, "-"), scale + 1, "0")
    positional = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(magnitude, 0, -scale), pc.utf8_slice_codeunits(magnitude, -scale), "."
    )
    return pc.if_else(negative, pc.binary_join_element_wise("-", positional, ""), positional)


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
