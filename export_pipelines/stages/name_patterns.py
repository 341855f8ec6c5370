"""The file names a file_name template can produce, as one strict regular expression.

Retention deletes only names an export's template can produce, in folders that other exports
and people share; so every token matches exactly the text its format yields: `%Y` four digits,
`%m` 01 to 12, `%H` 00 to 23, `%z` an offset such as +0100, `{part:03d}` a part number of at least
three digits, and `{export}`, `{model}` and `{ext}` their own values. A format whose output
cannot be pinned down that way is refused (FileNameError), never matched loosely.

Month, weekday and am/pm names are what strftime writes for them here (the C locale: Python never
sets LC_TIME from the environment), flags included (glibc's `%^P` is still "am"). Window bounds
carry the export's time zone: `%Z` and `%z` match exactly the abbreviations and offsets that zone
has used (its TZif data), and `{run_time}` is always UTC.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import string
import zoneinfo
from pathlib import Path
from zoneinfo import _common as tzif  # the standard library's own TZif reader

from export_pipelines.stages.file_naming import FileNameError

# Directives that write a name; flags `^` and `#` change its case, each in its own way (glibc).
_NAMES = frozenset("aAbhBpP")
# A leap year's days at midnight and noon: every weekday, month and half of the day.
_NAME_SAMPLES = [dt.datetime(2024, 1, 1, hour) + dt.timedelta(days=day) for day in range(366) for hour in (0, 12)]
# directive: (smallest value, largest value, width, padding) as glibc's strftime writes them.
_NUMBERS: dict[str, tuple[int, int, int, str]] = {
    "d": (1, 31, 2, "0"),
    "e": (1, 31, 2, " "),
    "m": (1, 12, 2, "0"),
    "H": (0, 23, 2, "0"),
    "k": (0, 23, 2, " "),
    "I": (1, 12, 2, "0"),
    "l": (1, 12, 2, " "),
    "M": (0, 59, 2, "0"),
    "S": (0, 59, 2, "0"),  # a Python datetime has no leap second
    "j": (1, 366, 3, "0"),
    "y": (0, 99, 2, "0"),
    "g": (0, 99, 2, "0"),
    "C": (10, 99, 2, "0"),
    "Y": (1000, 9999, 4, "0"),
    "G": (1000, 9999, 4, "0"),
    "U": (0, 53, 2, "0"),
    "W": (0, 53, 2, "0"),
    "V": (1, 53, 2, "0"),
    "u": (1, 7, 1, "0"),
    "w": (0, 6, 1, "0"),
    # Epoch seconds: nine or ten digits for every instant from 1973-03-03 to 2286-11-20 (glibc reads
    # the fields as the process's local time, which moves the value by hours, not its length).
    "s": (10**8, 10**10 - 1, 1, ""),
}
# What glibc's C locale expands these to.
_COMPOSITES = {
    "c": "%a %b %e %H:%M:%S %Y",
    "D": "%m/%d/%y",
    "x": "%m/%d/%y",
    "F": "%Y-%m-%d",
    "T": "%H:%M:%S",
    "X": "%H:%M:%S",
    "R": "%H:%M",
    "r": "%I:%M:%S %p",
}
_LITERALS = {"%": "%", "n": "\n", "t": "\t"}
_PADDING_FLAGS = {"-": "", "_": " ", "0": "0"}
_DIRECTIVE = re.compile(r"%(?P<flag>[-_0^#])?(?P<width>[0-9]+)?(?P<modifier>[EO])?(?P<conversion>.)?", re.DOTALL)


def template_pattern(template: str, export: str, model: str, ext: str, timezone: str = "UTC") -> re.Pattern[str]:
    """The names `template` renders for this export over every run time, window and part, as a
    pattern to `fullmatch`; window bounds are in `timezone` (the export's incremental timezone).
    Raises FileNameError naming the token whose output it cannot pin down."""
    formatter = string.Formatter()
    fixed = {"export": export, "model": model, "ext": ext}
    try:
        parsed = list(formatter.parse(template))
    except ValueError as error:
        raise FileNameError(f"file_name is not a valid template: {error}") from error
    pieces = []
    for literal, field, spec, conversion in parsed:
        pieces.append(re.escape(literal))
        if field is None:
            continue
        token = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if "{" in spec:
            raise FileNameError(f"{token}: a format made of other tokens cannot be matched exactly; write it out")
        if field in fixed:
            try:
                pieces.append(re.escape(formatter.format_field(formatter.convert_field(fixed[field], conversion), spec)))
            except ValueError as error:
                raise FileNameError(f"{token} cannot be rendered: {error}") from error
            continue
        if conversion:
            raise FileNameError(f"{token}: a conversion (!{conversion}) on a changing token cannot be matched exactly")
        if field == "part":  # a named group, so that a run's split set can be told by the rest of the name
            pieces.append(f"(?P<{_PART_GROUP}{len(pieces)}>{_part(spec, token)})")
        elif field == "run_time":
            pieces.append(_datetime(spec, token, "UTC"))
        elif field in ("window_start", "window_end"):
            pieces.append(_datetime(spec, token, timezone))
        else:
            raise FileNameError(f"unknown token {token} in file_name")
    return re.compile("".join(pieces))


_PART_GROUP = "part"


def file_set_key(match: re.Match[str]) -> str:
    """The owned name `match` (of a template_pattern) without its part numbers: the files one run
    writes (its split set: part 1, 2, ...) share it, and files of other runs differ in it as long as
    the template names runs apart (a run time or a window)."""
    name, cut, start = match.string, [], 0
    for group in sorted((g for g in match.groupdict() if g.startswith(_PART_GROUP)), key=match.start):
        cut.append(name[start : match.start(group)])
        start = match.end(group)
    return "".join(cut) + name[start:]


def _datetime(spec: str, token: str, timezone: str) -> str:
    """A datetime in `timezone` (run_time: always UTC), whose offset and abbreviation may change."""
    if not spec:  # str(datetime): 2024-03-01 00:02:03.456789+00:00, the fraction only when non-zero
        offset = _alternatives(_offset_text(seconds, ":") for seconds in _zone_shapes(timezone)[1])
        return _strftime("%Y-%m-%d %H:%M:%S", token, timezone) + r"(?:\.[0-9]{6})?" + offset
    return _strftime(spec, token, timezone)


def _strftime(spec: str, token: str, timezone: str) -> str:
    pieces, position = [], 0
    while position < len(spec):
        percent = spec.find("%", position)
        if percent < 0:
            pieces.append(re.escape(spec[position:]))
            break
        pieces.append(re.escape(spec[position:percent]))
        match = _DIRECTIVE.match(spec, percent)
        pieces.append(_directive(match, token, timezone))
        position = match.end()
    return "".join(pieces)


def _directive(match: re.Match[str], token: str, timezone: str) -> str:
    flag, conversion = match["flag"], match["conversion"]
    unsupported = FileNameError(
        f"{token}: strftime directive {match[0]!r} has no output shape this product can match exactly "
        f"(retention needs one); use the plain directives such as %Y %m %d %H %M %S, optionally with - _ or 0"
    )
    if conversion is None or match["width"] or match["modifier"]:
        raise unsupported
    if conversion in _NUMBERS:
        if flag not in (None, *_PADDING_FLAGS):
            raise unsupported
        smallest, largest, width, padding = _NUMBERS[conversion]
        return _number(smallest, largest, width, padding if flag is None else _PADDING_FLAGS[flag])
    if conversion in _NAMES:
        if flag not in (None, "^", "#"):
            raise unsupported
        return _alternatives(_names_written(match[0]))
    if flag is not None:
        raise unsupported
    if conversion in _COMPOSITES:
        return _strftime(_COMPOSITES[conversion], token, timezone)
    if conversion in _LITERALS:
        return re.escape(_LITERALS[conversion])
    if conversion == "f":
        return "[0-9]{6}"
    if conversion == "z":
        return _alternatives(_offset_text(seconds, "") for seconds in _zone_shapes(timezone)[1])
    if conversion == "Z":
        return _alternatives(_zone_shapes(timezone)[0])
    raise unsupported


def _alternatives(texts) -> str:
    return "(?:" + "|".join(re.escape(text) for text in sorted(set(texts), key=lambda t: (-len(t), t))) + ")"


@functools.cache
def _names_written(directive: str) -> tuple[str, ...]:
    """Every text strftime writes for a name directive such as `%^a` or `%P`."""
    return tuple({sample.strftime(directive) for sample in _NAME_SAMPLES})


def _offset_text(seconds: int, separator: str) -> str:
    """An offset as datetime writes it: %z `+0530` (`+005328` with seconds), str() `+05:30`."""
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, rest = divmod(rest, 60)
    return f"{sign}{hours:02d}{separator}{minutes:02d}" + (f"{separator}{rest:02d}" if rest else "")


@functools.cache
def _zone_shapes(timezone: str) -> tuple[frozenset[str], frozenset[int]]:
    """The abbreviations (%Z) and UTC offsets in seconds (%z) a zone has ever used, from its TZif
    data, which zoneinfo reads too; they cover its rules for the future as well (the standard and
    daylight types of the footer are among them). UTC is Python's timezone.utc for Dagster."""
    if timezone.upper() == "UTC":
        return frozenset({"UTC"}), frozenset({0})
    try:
        with _tzif_file(timezone) as source:
            _, _, offsets, _, abbreviations, _ = tzif.load_data(source)
    except (OSError, ValueError, zoneinfo.ZoneInfoNotFoundError) as error:
        raise FileNameError(f"time zone {timezone!r} has no readable TZif data: {error}") from error
    return frozenset(abbreviations), frozenset(offsets)


def _tzif_file(timezone: str):
    """The file zoneinfo.ZoneInfo(timezone) reads: the first in TZPATH, else the tzdata package's."""
    for folder in zoneinfo.TZPATH:
        path = Path(folder, timezone)
        if path.is_file():
            return path.open("rb")
    return tzif.load_tzdata(timezone)


def _number(smallest: int, largest: int, width: int, padding: str) -> str:
    """Decimal numbers smallest..largest, padded on the left with `padding` to `width` characters."""
    options = []
    for digits in range(1, len(str(largest)) + 1):
        low = max(smallest, 10 ** (digits - 1) if digits > 1 else 0)
        high = min(largest, 10**digits - 1)
        if low <= high:
            options.append(re.escape(padding * max(0, width - digits)) + "(?:" + _digit_range(str(low), str(high)) + ")")
    return "(?:" + "|".join(options) + ")"


def _digit_range(low: str, high: str) -> str:
    """Digit strings of one length from `low` to `high`, as a regex (the classic digit-by-digit split)."""
    rest = len(low) - 1
    if rest == 0 or low == high:
        return _digit_class(low, high)
    if low[1:] == "0" * rest and high[1:] == "9" * rest:
        return _digit_class(low[0], high[0]) + _any_digits(rest)
    if low[0] == high[0]:
        return low[0] + "(?:" + _digit_range(low[1:], high[1:]) + ")"
    options = [low[0] + "(?:" + _digit_range(low[1:], "9" * rest) + ")"]
    if int(high[0]) - int(low[0]) > 1:
        options.append(_digit_class(str(int(low[0]) + 1), str(int(high[0]) - 1)) + _any_digits(rest))
    options.append(high[0] + "(?:" + _digit_range("0" * rest, high[1:]) + ")")
    return "|".join(options)


def _digit_class(low: str, high: str) -> str:
    return low if low == high else f"[{low}-{high}]"


def _any_digits(count: int) -> str:
    return "[0-9]" if count == 1 else f"[0-9]{{{count}}}"


# Python's format-spec mini-language for integers, without grouping and precision.
_INT_SPEC = re.compile(
    r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?(?P<alternate>#)?(?P<zero>0)?(?P<width>[0-9]+)?(?P<type>[bdnoxX])?",
    re.DOTALL,
)
_BASE_DIGITS = {"b": ("1", "01"), "o": ("1-7", "0-7"), "x": ("1-9a-f", "0-9a-f"), "X": ("1-9A-F", "0-9A-F")}
_BASE_PREFIXES = {"b": "0b", "o": "0o", "x": "0x", "X": "0X"}


def _part(spec: str, token: str) -> str:
    """Part numbers 1, 2, ... as `format(part, spec)` writes them (Python's format-spec rules)."""
    match = _INT_SPEC.fullmatch(spec)
    if match is None:
        raise FileNameError(f"{token}: only fill, alignment, sign, #, 0, width and the types d n x X o b can be matched exactly")
    kind = match["type"]
    first, digit = _BASE_DIGITS.get(kind, ("1-9", "0-9"))
    prefix = (match["sign"] if match["sign"] in ("+", " ") else "") + (_BASE_PREFIXES.get(kind, "") if match["alternate"] else "")
    fill, align = match["fill"], match["align"]
    if match["zero"] and fill is None:  # CPython: '0' fills with zeros, after the sign unless aligned otherwise
        fill, align = "0", align or "="
    fill, align = fill or " ", align or ">"
    width = int(match["width"] or 0)
    options = []
    unpadded_from = max(1, width - len(prefix))
    for digits in range(1, unpadded_from):
        padding = width - len(prefix) - digits
        left = {"<": 0, ">": padding, "=": 0, "^": padding // 2}[align]
        inner = padding if align == "=" else 0
        right = padding - left - inner
        number = f"[{first}][{digit}]{{{digits - 1}}}"
        options.append(
            re.escape(fill * left + prefix + fill * inner) + number + re.escape(fill * right)
        )
    options.append(re.escape(prefix) + f"[{first}][{digit}]{{{unpadded_from - 1},}}")
    return "(?:" + "|".join(options) + ")"
