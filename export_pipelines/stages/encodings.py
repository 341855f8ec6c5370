"""The file's character encoding: which text each encoding can hold, checked before a row is written.

A partner's legacy importer reads windows-1252 or ISO-8859-1; a character those cannot hold
would otherwise be written as '?' or fail the run mid-file. Here it makes its row a bad row
(stages/bad_rows.py) with the character named, on the fast and the general extract path alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from export_pipelines.lazy_imports import pa, pc

# The spec's names -> Python's codecs. utf-8-sig is UTF-8 with a byte order mark at the start of each file.
CODECS = {"utf-8": "utf-8", "utf-8-sig": "utf-8", "windows-1252": "cp1252", "iso-8859-1": "latin-1"}
BYTE_ORDER_MARK = {"utf-8-sig": b"\xef\xbb\xbf"}


def _representable(codec: str) -> str:
    """The code points a single-byte codec holds, as an RE2 character class body of ranges."""
    points = sorted({ord(bytes([b]).decode(codec)) for b in range(256) if _decodes(b, codec)})
    runs: list[list[int]] = []
    for point in points:
        if runs and point == runs[-1][1] + 1:
            runs[-1][1] = point
        else:
            runs.append([point, point])
    return "".join(f"\\x{{{first:x}}}-\\x{{{last:x}}}" for first, last in runs)


def _decodes(byte: int, codec: str) -> bool:
    try:
        bytes([byte]).decode(codec)
    except UnicodeDecodeError:  # windows-1252 leaves 0x81, 0x8D, 0x8F, 0x90 and 0x9D undefined
        return False
    return True


_UNREPRESENTABLE = {name: f"[^{_representable(codec)}]" for name, codec in CODECS.items() if codec != "utf-8"}


def is_unicode(encoding: str) -> bool:
    return CODECS[encoding] == "utf-8"


def cannot_hold(text: str, encoding: str) -> str | None:
    """Why `encoding` cannot hold `text` ("€ (U+20AC) has no byte in iso-8859-1"), or None."""
    try:
        text.encode(CODECS[encoding])
    except UnicodeEncodeError as error:
        character = error.object[error.start]
        return f"not representable in {encoding}: {character} (U+{ord(character):04X}) has no byte there"
    return None


def unrepresentable_rows(columns: Sequence[pa.Array | pa.ChunkedArray], encoding: str) -> pa.Array | None:
    """A boolean per row: whether any of the text `columns` holds a character `encoding` cannot; None when none does."""
    if is_unicode(encoding):
        return None
    pattern = _UNREPRESENTABLE[encoding]
    found = None
    for column in columns:
        hits = pc.fill_null(pc.match_substring_regex(column, pattern), False)
        found = hits if found is None else pc.or_(found, hits)
    if found is None or not pc.any(found).as_py():
        return None
    return found
