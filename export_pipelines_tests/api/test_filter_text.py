from __future__ import annotations

import pytest

from export_pipelines.api.filter_text import FilterTextError, parse_filters


def test_command_line_filters_become_voucherify_filters():
    assert parse_filters(["categories $in postman, gift", "code $has_value", "value $gt 10"], "or") == {
        "junction": "or",
        "categories": {"conditions": {"$in": ["postman", "gift"]}},
        "code": {"conditions": {"$has_value": True}},
        "value": {"conditions": {"$gt": ["10"]}},
    }
    assert parse_filters([]) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [("categories", "write FIELD OPERATOR VALUE"), ("categories $inn postman", "did you mean $in"), ("value $gt", "$gt needs a value")],
)
def test_malformed_filters_are_explained(text: str, message: str):
    with pytest.raises(FilterTextError, match=message.replace("$", r"\$")):
        parse_filters([text])
