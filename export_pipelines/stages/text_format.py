"""How each value type is written in a file, decided once for mapping and serialization.

Timestamps are ISO 8601 in UTC with a Z (fractional seconds only when present),
decimals are positional with exactly their scale (12.30 stays 12.30, zero at scale 7 is
0.0000000, never 0E-7), booleans are true/false, dates YYYY-MM-DD. An export's file dialect
(ValueFormat) may ask for other date and timestamp formats and a decimal comma instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from export_pipelines.lazy_imports import pa, pc

MICROS_PER_SECOND = 1_000_000
# Arrow writes a decimal the way Java's BigDecimal.toString does: in scientific notation once
# the adjusted exponent drops below -6, which a scale of 6 or less can never reach.
ARROW_POSITIONAL_MAX_SCALE = 6


@dataclass(frozen=True)
class ValueFormat:
    """An importer's formats for dates, timestamps and decimals; the defaults are the canonical ones above.

    date_format / timestamp_format: strftime directives as Arrow's strftime reads them in the C
    locale (spec.export.time_format_problem lists the allowed ones), plus %f for the 6 digits of
    microseconds. timestamp_timezone: the IANA zone timestamps are written in (default UTC).
    """

    date_format: str | None = None
    timestamp_format: str | None = None
    timestamp_timezone: str | None = None
    decimal_separator: str = "."


CANONICAL = ValueFormat()


def value_format_of(spec) -> ValueFormat:
    """The ValueFormat an ExportSpec's date_format, timestamp_format, timestamp_timezone and decimal_separator ask for."""
    return ValueFormat(spec.date_format, spec.timestamp_format, spec.timestamp_timezone, spec.decimal_separator)


def to_text(array: pa.Array | pa.ChunkedArray, value_format: ValueFormat = CANONICAL) -> pa.Array | pa.ChunkedArray:
    """The array's values as they appear in the file; NULL stays NULL."""
    kind = array.type
    if pa.types.is_string(kind):
        return array
    if pa.types.is_large_string(kind):
        return array.cast(pa.string())
    if pa.types.is_timestamp(kind):
        if value_format.timestamp_format is not None:
            return _strftime(array, value_format.timestamp_format, value_format.timestamp_timezone or "UTC")
        return _timestamp_text(array)
    if pa.types.is_date(kind) and value_format.date_format is not None:
        return _strftime(array.cast(pa.timestamp("s")), value_format.date_format, "UTC")
    if pa.types.is_decimal(kind):
        return _with_separator(decimal_text(array), value_format.decimal_separator)
    if pa.types.is_floating(kind):
        return _with_separator(array.cast(pa.string()), value_format.decimal_separator)
    return array.cast(pa.string())


def _with_separator(text, separator: str):
    # A number's text holds at most one ".", the decimal point: the separator is the only thing replaced.
    return text if separator == "." else pc.replace_substring(text, ".", separator)


class UnwritableValue(ValueError):
    """A value the file's formats cannot write (a time whose year leaves 0001-9999 in the chosen zone)."""


@contextmanager
def naming_field(header: str) -> Iterator[None]:
    """An UnwritableValue raised inside names the output field `header` (its `to`, as the file's header
    and the spec name it), whichever step formats the value: the same message from a Replace or Default
    in map, from serialize, and from the lines written while extracting, whose columns are still named
    by their source when the mapping shortcut hands them on."""
    try:
        yield
    except UnwritableValue as error:
        raise UnwritableValue(f"{header}: {error}; write it in another timestamp_timezone, or leave such rows out with a filter") from None


# %% and %f are read as one token each, so "%%f" is a literal "%f" and only a lone %f is the microseconds.
_FORMAT_TOKENS = re.compile(r"%%|%f|%.|[^%]+", re.DOTALL)


def _strftime(array, template: str, zone: str):
    """Arrow's strftime in `zone`; %f (not Arrow's) is the microseconds, zero-padded to 6 digits.

    Arrow writes %S with the unit's fraction, so the values are cut to whole seconds first and
    the fraction comes only from an explicit %f. Raises UnwritableValue when a value's year in
    `zone` leaves 0001-9999 (9999-12-31T23:59:59Z is in the year 10000 in Berlin).
    """
    instants = array.cast(pa.timestamp("us", tz="UTC"))  # a naive value is UTC (see _timestamp_text)
    seconds = pc.floor_temporal(instants, unit="second").cast(pa.timestamp("s", tz=zone))
    years = pc.min_max(pc.year(seconds))
    low, high = years["min"].as_py(), years["max"].as_py()
    if low is not None and (low < 1 or high > 9999):
        outside = instants.filter(pc.or_(pc.less(pc.year(seconds), 1), pc.greater(pc.year(seconds), 9999)))[0].as_py()
        raise UnwritableValue(f"{outside.isoformat()} falls outside the years 0001-9999 in {zone}")
    pieces: list[str | None] = [""]  # strftime formats, None where the microseconds go
    for token in _FORMAT_TOKENS.findall(template):
        if token == "%f":
            pieces += [None, ""]
        else:
            pieces[-1] += token
    micros = None
    parts = []
    for piece in pieces:
        if piece is None:
            if micros is None:
                micros = pc.utf8_lpad(pc.subtract(instants.cast(pa.int64()), pc.multiply(seconds.cast(pa.int64()), MICROS_PER_SECOND)).cast(pa.string()), 6, "0")
            parts.append(micros)
        elif piece:
            parts.append(pc.strftime(seconds, format=piece, locale="C"))
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")


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
