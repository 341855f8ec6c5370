"""File-name templates: the known tokens only, UTC run times, and names that stay one path segment."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from export_pipelines.stages.file_naming import (
    DEFAULT_SPLIT_TEMPLATE,
    DEFAULT_TEMPLATE,
    FileNameError,
    NameValues,
    check_safe_file_name,
    default_template,
    extension,
    render_file_name,
    template_tokens,
)

PLUS_ONE = dt.timezone(dt.timedelta(hours=1))
MINUS_FIVE = dt.timezone(dt.timedelta(hours=-5))
# 2024-03-01T00:02:03.456789Z, written in three zones
RUN_UTC = dt.datetime(2024, 3, 1, 0, 2, 3, 456789, tzinfo=dt.UTC)
RUN_PLUS_ONE = dt.datetime(2024, 3, 1, 1, 2, 3, 456789, tzinfo=PLUS_ONE)
RUN_MINUS_FIVE = dt.datetime(2024, 2, 29, 19, 2, 3, 456789, tzinfo=MINUS_FIVE)


def values(**changes) -> NameValues:
    base = {"export": "daily_customers", "model": "customers", "run_time": RUN_UTC, "ext": "csv"}
    return NameValues(**{**base, **changes})


# --- rendering -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "name_values", "expected"),
    [
        pytest.param("{export}.{ext}", values(), "daily_customers.csv", id="export"),
        pytest.param("{model}_{export}.{ext}", values(), "customers_daily_customers.csv", id="model"),
        pytest.param("{export}_{run_time:%Y%m%d}.{ext}", values(), "daily_customers_20240301.csv", id="run_time_date"),
        pytest.param("x_{run_time:%Y-%m-%dT%H%M%S}.{ext}", values(), "x_2024-03-01T000203.csv", id="run_time_full"),
        pytest.param("x_{run_time:%H%M%S.%f}.{ext}", values(), "x_000203.456789.csv", id="run_time_microseconds"),
        pytest.param("x_{run_time:%Z}.{ext}", values(), "x_UTC.csv", id="run_time_zone_name"),
        pytest.param("x_{run_time:%Y%m%dT%H%M%SZ}.{ext}", values(run_time=RUN_PLUS_ONE), "x_20240301T000203Z.csv",
                     id="run_time_plus_one_is_utc"),
        pytest.param("x_{run_time:%Y%m%dT%H%M%SZ}.{ext}", values(run_time=RUN_MINUS_FIVE), "x_20240301T000203Z.csv",
                     id="run_time_minus_five_is_utc"),
        pytest.param("x_{run_time:%Y%m%d}.{ext}",
                     values(run_time=dt.datetime(2024, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
                     "x_20231231.csv", id="run_time_date_rolls_back_to_utc_day"),
        pytest.param("x_{run_time:%Z%z}.{ext}", values(run_time=RUN_PLUS_ONE), "x_UTC+0000.csv", id="run_time_zone_is_utc"),
        pytest.param("{export}_{part}.{ext}", values(part=7), "daily_customers_7.csv", id="part_plain"),
        pytest.param("{export}_{part:03d}.{ext}", values(part=7), "daily_customers_007.csv", id="part_03d"),
        pytest.param("{export}_{part:05}.{ext}", values(part=42), "daily_customers_00042.csv", id="part_05"),
        pytest.param("{export}_{part:03d}.{ext}", values(part=1234), "daily_customers_1234.csv", id="part_wider_than_spec"),
        pytest.param("{export}_p{part:x}.{ext}", values(part=255), "daily_customers_pff.csv", id="part_hex"),
        pytest.param("{export}.{ext}", values(ext="psv.gz"), "daily_customers.psv.gz", id="ext_psv_gz"),
        pytest.param("literal.csv", values(), "literal.csv", id="no_tokens"),
        pytest.param("{{braces}}_{export}.{ext}", values(), "{braces}_daily_customers.csv", id="escaped_braces"),
        pytest.param("{export:.5}.{ext}", values(), "daily.csv", id="export_with_format_spec"),
        pytest.param("Zoë_{export}.{ext}", values(), "Zoë_daily_customers.csv", id="non_ascii_literal"),
        pytest.param("{export}_{run_time:{part:03d}}.{ext}", values(part=2), "daily_customers_002.csv",
                     id="nested_spec_uses_tokens_only"),
    ],
)
def test_render(template, name_values, expected):
    assert render_file_name(template, name_values) == expected


def test_default_templates():
    run_time = dt.datetime(2025, 12, 31, 23, 0, 0, tzinfo=dt.UTC)
    assert render_file_name(DEFAULT_TEMPLATE, values(run_time=run_time)) == "daily_customers_20251231T230000Z.csv"
    assert (
        render_file_name(DEFAULT_SPLIT_TEMPLATE, values(run_time=run_time, part=3, ext="csv.zip"))
        == "daily_customers_20251231T230000Z_part003.csv.zip"
    )
    # the same instant given in another zone names the same file
    assert render_file_name(DEFAULT_TEMPLATE, values(run_time=run_time.astimezone(PLUS_ONE))) == (
        render_file_name(DEFAULT_TEMPLATE, values(run_time=run_time))
    )


def test_incremental_default_templates_name_the_window_so_a_rerun_replaces_its_file():
    budapest = ZoneInfo("Europe/Budapest")
    day = values(window_start=dt.datetime(2026, 3, 27, tzinfo=budapest), window_end=dt.datetime(2026, 3, 28, tzinfo=budapest))
    assert render_file_name(default_template("daily", split=False), day) == "daily_customers_20260327_20260328.csv"
    assert render_file_name(default_template("daily", split=True), dataclasses.replace(day, part=2)) == (
        "daily_customers_20260327_20260328_part002.csv"
    )
    later_rerun = dataclasses.replace(day, run_time=day.run_time + dt.timedelta(days=3))
    assert render_file_name(default_template("daily", split=False), later_rerun) == "daily_customers_20260327_20260328.csv"
    # The autumn night's repeated 02:00 hour: two windows, two names.
    first = dt.datetime(2026, 10, 25, 0, 0, tzinfo=dt.UTC)
    hours = [
        values(window_start=(first + dt.timedelta(hours=h)).astimezone(budapest),
               window_end=(first + dt.timedelta(hours=h + 1)).astimezone(budapest))
        for h in (0, 1)
    ]
    assert [render_file_name(default_template("hourly", split=False), v) for v in hours] == [
        "daily_customers_20261025T0200+0200_20261025T0200+0100.csv",
        "daily_customers_20261025T0200+0100_20261025T0300+0100.csv",
    ]
    assert default_template(None, split=False) == DEFAULT_TEMPLATE
    assert default_template(None, split=True) == DEFAULT_SPLIT_TEMPLATE


def test_render_does_not_change_the_given_values():
    name_values = values(run_time=RUN_PLUS_ONE)
    render_file_name(DEFAULT_TEMPLATE, name_values)
    assert name_values.run_time.utcoffset() == dt.timedelta(hours=1)


def test_window_tokens():
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    name = render_file_name(
        "{export}_{window_start:%Y%m%d}-{window_end:%Y%m%d}.{ext}", values(window_start=start, window_end=end)
    )
    assert name == "daily_customers_20250101-20250102.csv"
    with pytest.raises(FileNameError, match=r"\{window_start\} has no value"):
        render_file_name("{export}_{window_start:%Y%m%d}.{ext}", values())


@pytest.mark.parametrize(
    ("file_format", "compression", "expected"),
    [
        ("csv", "none", "csv"),
        ("csv", "gzip", "csv.gz"),
        ("csv", "zstd", "csv.zst"),
        ("csv", "zip", "csv.zip"),
        ("psv", "none", "psv"),
        ("psv", "gzip", "psv.gz"),
        ("psv", "zip", "psv.zip"),
    ],
)
def test_extension(file_format, compression, expected):
    assert extension(file_format, compression) == expected
    assert render_file_name("{export}.{ext}", values(ext=extension(file_format, compression))) == f"daily_customers.{expected}"


def test_template_tokens():
    assert template_tokens(DEFAULT_TEMPLATE) == {"export", "run_time", "ext"}
    assert template_tokens(DEFAULT_SPLIT_TEMPLATE) == {"export", "run_time", "part", "ext"}
    assert template_tokens("plain.csv") == set()
    assert template_tokens("{{not_a_token}}.csv") == set()
    with pytest.raises(FileNameError, match="not a valid template"):
        template_tokens("{export.csv")


# --- what a template may not do --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{run_time.__class__}.{ext}", id="attribute"),
        pytest.param("{run_time.tzinfo}.{ext}", id="harmless_attribute"),
        pytest.param("{export[0]}.{ext}", id="index"),
        pytest.param("{export.__class__.__mro__}.{ext}", id="attribute_chain"),
        pytest.param("{date}.{ext}", id="unknown_token"),
        pytest.param("{Export}.{ext}", id="token_case"),
        pytest.param("{0}.{ext}", id="positional"),
        pytest.param("{}.{ext}", id="auto_positional"),
        pytest.param("{export}_{part:{run_time.__class__}}.{ext}", id="attribute_in_nested_spec"),
    ],
)
def test_no_attribute_index_or_unknown_token(template):
    with pytest.raises(FileNameError, match="unknown token") as error:
        render_file_name(template, values())
    assert "{export}" in str(error.value) and "{ext}" in str(error.value), "the message lists the valid tokens"
    assert "class" not in str(error.value).split("tokens are")[-1]


def test_unknown_token_message_names_the_token():
    with pytest.raises(FileNameError, match=r"unknown token \{date\}"):
        render_file_name("{export}_{date}.{ext}", values())


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{part:%Y}.{ext}", id="strftime_spec_on_int"),
        pytest.param("{export:d}.{ext}", id="int_spec_on_text"),
        pytest.param("{export!z}.{ext}", id="bad_conversion"),
        pytest.param("{export.{ext}", id="unclosed"),
        pytest.param("}{export}.{ext}", id="lone_close"),
    ],
)
def test_bad_template_is_a_file_name_error(template):
    with pytest.raises(FileNameError):
        render_file_name(template, values())


@pytest.mark.parametrize(
    ("template", "name_values"),
    [
        pytest.param("../{export}.{ext}", values(), id="parent_literal"),
        pytest.param("out/{export}.{ext}", values(), id="slash_literal"),
        pytest.param("out\\{export}.{ext}", values(), id="backslash_literal"),
        pytest.param("{run_time:%Y/%m/%d}.{ext}", values(), id="slash_from_strftime"),
        pytest.param("{export}.{ext}", values(export="../etc"), id="parent_from_value"),
        pytest.param("{export}.{ext}", values(export="a/b"), id="slash_from_value"),
        pytest.param(".{export}.{ext}", values(), id="hidden"),
        pytest.param("{export:\x00<20}.{ext}", values(), id="nul_from_fill"),
        pytest.param("{export:>300}.{ext}", values(), id="too_long"),
        pytest.param("{export:.0}", values(), id="empty"),
    ],
)
def test_rendered_name_must_be_safe(template, name_values):
    with pytest.raises(FileNameError):
        render_file_name(template, name_values)


# --- check_safe_file_name ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("../x", id="parent"),
        pytest.param("..", id="dotdot"),
        pytest.param(".", id="dot"),
        pytest.param("a/../b", id="parent_inside"),
        pytest.param("x..csv", id="double_dot_inside"),
        pytest.param("a/b", id="slash"),
        pytest.param("/abs.csv", id="absolute"),
        pytest.param("a\\b", id="backslash"),
        pytest.param("..\\x", id="windows_parent"),
        pytest.param("a\x00b", id="nul"),
        pytest.param("a\nb.csv", id="newline"),
        pytest.param("a\rb.csv", id="carriage_return"),
        pytest.param("a\tb.csv", id="tab"),
        pytest.param("a\x1fb.csv", id="unit_separator"),
        pytest.param("", id="empty"),
        pytest.param(".hidden", id="hidden"),
        pytest.param(".csv", id="hidden_extension_only"),
        pytest.param("a" * 256, id="256_bytes"),
        pytest.param("é" * 128, id="256_bytes_utf8"),
    ],
)
def test_unsafe_names_are_rejected(name):
    with pytest.raises(FileNameError):
        check_safe_file_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "daily_customers_20240301T000203Z.csv",
        "export.psv.gz",
        "a.b.c.csv.zip",
        "Zoë Müller's export (1).csv",
        "李雷.csv",
        "a" * 255,
        "é" * 127 + "a",
        "x.",
        "100%_done.csv",
    ],
)
def test_safe_names_are_accepted(name):
    check_safe_file_name(name)


def test_rejection_messages_say_why():
    with pytest.raises(FileNameError, match="could leave its folder"):
        check_safe_file_name("a/b.csv")
    with pytest.raises(FileNameError, match="could leave its folder"):
        check_safe_file_name("../x.csv")
    with pytest.raises(FileNameError, match="empty or hidden"):
        check_safe_file_name(".hidden")
    with pytest.raises(FileNameError, match="255 bytes"):
        check_safe_file_name("a" * 300)


def test_file_name_error_is_a_value_error():
    assert issubclass(FileNameError, ValueError)
