"""JSON Lines (jsonlines.org): one JSON object per row, the `to` names as keys, in spec order.

Values keep their JSON kinds: integers and decimals are JSON numbers written positionally with
exactly the field's scale (`12.50`: JSON numbers are text of any precision, RFC 8259 section 6;
parse them with Decimal, e.g. Python's json.loads(..., parse_float=decimal.Decimal), to keep
every digit), booleans true/false, NULL null, a json field its own JSON value, and text,
timestamps and dates strings (timestamps ISO 8601 UTC with Z). Built a column at a time
with pyarrow.compute, as the CSV lines are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from export_pipelines.lazy_imports import pa, pc
from export_pipelines.stages.text_format import to_text

# RFC 8259 section 7: the two-character escapes; the other control characters are \u00XX.
SHORT_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def json_lines(batch: pa.RecordBatch, keys: Sequence[str], raw_json: frozenset[int]) -> pa.Array:
    """The batch's rows as JSON Lines, one string (with its \n) per row; raw_json: positions of
    columns holding JSON text, embedded as values."""
    members = [
        pc.binary_join_element_wise(json.dumps(key, ensure_ascii=False) + ":", _json_value(column, index in raw_json), "")
        for index, (key, column) in enumerate(zip(keys, batch.columns, strict=True))
    ]
    return pc.binary_join_element_wise("{", pc.binary_join_element_wise(*members, ","), "}\n", "")


def _json_value(column: pa.Array, raw_json: bool) -> pa.Array:
    kind = column.type
    if raw_json:
        # A line break in valid JSON is whitespace between tokens (inside a string it would be escaped),
        # so a pretty-printed document becomes one line by turning each into a space.
        text = pc.replace_substring(pc.replace_substring(column.cast(pa.string()), "\n", " "), "\r", " ")
    elif pa.types.is_integer(kind) or pa.types.is_decimal(kind) or pa.types.is_boolean(kind):
        text = to_text(column)
    else:
        text = json_string(to_text(column))
    return pc.fill_null(text, "null")


def json_string(text: pa.Array) -> pa.Array:
    """Each value as a JSON string literal (quoted, escaped); NULL stays NULL."""
    text = pc.replace_substring(text, "\\", "\\\\")
    text = pc.replace_substring(text, '"', '\\"')
    if pc.any(pc.match_substring_regex(text, "[\\x00-\\x1f]")).as_py():
        for code in range(32):
            character = chr(code)
            if pc.any(pc.match_substring(text, character)).as_py():
                text = pc.replace_substring(text, character, SHORT_ESCAPES.get(character, f"\\u{code:04x}"))
    return pc.binary_join_element_wise('"', text, '"', "")
