"""Which names an export owns: exactly those its file_name template renders, each token in its
format's shape. Names are rendered by file_naming (what delivery writes) and written by hand."""

from __future__ import annotations

import datetime as dt
import random
import re
from zoneinfo import ZoneInfo

import pytest

from export_pipelines.spec.loader import load_config
from export_pipelines.stages.file_naming import (
    DEFAULT_SPLIT_TEMPLATE,
    DEFAULT_TEMPLATE,
    DEFAULT_WINDOW_TEMPLATES,
    FileNameError,
    NameValues,
    default_template,
    render_file_name,
)
from export_pipelines.stages.name_patterns import template_pattern
from export_pipelines_tests.conftest import write_config

# Zones with odd offsets (-03:30, +05:45, +14:00, -11:00) and half-hour DST (Lord Howe).
ZONES = ["UTC", "Europe/Budapest", "America/St_Johns", "Asia/Kathmandu", "Pacific/Kiritimati", "Pacific/Pago_Pago",
         "Australia/Lord_Howe", "America/New_York"]


def owns(template: str, export: str, name: str, ext: str = "csv", timezone: str = "UTC") -> bool:
    return template_pattern(template, export, "customers", ext, timezone).fullmatch(name) is not None


# --- the inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("export", "name", "owned"),
    [
        ("customers", "customers_20240101T000000Z.csv", True),
        ("customers", "customers_eu_20240101T000000Z.csv", False),  # export customers_eu's file
        ("customers", "customers_manual_backup.csv", False),  # placed by hand
        ("orders", "orders_20251231T235959Z.csv", True),
        ("orders", "orders_eu_20251231T235959Z.csv", False),
        ("orders_eu", "orders_20251231T235959Z.csv", False),
        ("customers", "customers_20240101T000000Z.csv.gz", False),  # another extension
        ("customers", "customers_20240101T000000Z_part001.csv", False),  # the split template's name
        ("customers", "customers_2024-01-01T000000Z.csv", False),
        ("customers", "customers_20240101T000000.csv", False),
        ("customers", "customers_20241301T000000Z.csv", False),  # month 13
        ("customers", "customers_20240100T000000Z.csv", False),  # day 0
        ("customers", "customers_20240132T000000Z.csv", False),  # day 32
        ("customers", "customers_20240101T240000Z.csv", False),  # hour 24
        ("customers", "customers_20240101T006000Z.csv", False),  # minute 60
        ("customers", "customers_20240101T000060Z.csv", False),  # second 60: Python has no leap second
        ("customers", "customers_020240101T000000Z.csv", False),
        ("customers", "Customers_20240101T000000Z.csv", False),
        ("customers", "customers_20240101T000000Z.CSV", False),
        ("customers", "customers_20240101T000000Z.csv.part", False),
        ("customers", ".customers_20240101T000000Z.csv", False),
    ],
)
def test_default_snapshot_name_is_owned_exactly(export, name, owned):
    assert owns(DEFAULT_TEMPLATE, export, name) is owned


# --- every rendered name is owned, whatever the time, window or part ------------------------------------

TEMPLATES = [
    DEFAULT_TEMPLATE,
    DEFAULT_SPLIT_TEMPLATE,
    default_template("daily", split=False),
    default_template("daily", split=True),
    default_template("hourly", split=False),
    default_template("hourly", split=True),
    "{model}-{export}-{run_time:%Y-%m-%d_%H.%M.%S.%f}.{ext}",
    "{export}_{run_time:%j_%U_%W_%V_%G_%g_%u_%w_%C_%y}.{ext}",
    "{export} {run_time:%a %A %b %B %h %p %P %e %k %l %I}.{ext}",
    "{export}_{run_time:%-d_%-m_%-H_%_H_%0e_%^a_%^B}.{ext}",
    "{export}_{run_time:%F_%T_%R_%r_%c_%X_%%_%z_%Z_%s}.{ext}",
    "{export}_{run_time}.{ext}",
    "{export}_{window_start:%Y%m%dT%H%M%z%Z}_{window_end}.{ext}",
    "{export:.5}_{part}_{part:x}_{part:#06x}_{part:X}_{part:o}_{part:b}.{ext}",
    "{export!r}_{part:*^7}_{part:+}_{part:=+6}_{part: 4}_{part:<4}_{part:04n}.{ext}",
    "static.csv",
]


def random_instants(count: int, seed: int) -> list[dt.datetime]:
    generator = random.Random(seed)
    start = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
    span = (dt.datetime(2099, 12, 31, tzinfo=dt.UTC) - start).total_seconds()
    return [start + dt.timedelta(seconds=generator.uniform(0, span)) for _ in range(count)]


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_name_the_template_renders_is_owned(template):
    patterns = {zone: template_pattern(template, "daily_customers", "customers", "csv", zone) for zone in ZONES}
    instants = random_instants(300, seed=len(template))
    # Microseconds of zero drop the fraction from str(datetime); whole hours hit DST switches.
    instants += [dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC), dt.datetime(2026, 10, 25, 1, 0, tzinfo=dt.UTC)]
    for index, instant in enumerate(instants):
        zone = ZoneInfo(ZONES[index % len(ZONES)])
        values = NameValues(
            export="daily_customers",
            model="customers",
            run_time=instant,
            ext="csv",
            window_start=instant.astimezone(zone),
            window_end=(instant + dt.timedelta(hours=1)).astimezone(zone),
            part=1 + (index * 37) % 5000,
        )
        try:
            name = render_file_name(template, values)
        except FileNameError:
            continue  # e.g. a name with a '/' that delivery refuses anyway
        assert patterns[zone.key].fullmatch(name), (template, name)


@pytest.mark.parametrize(
    "template",
    [DEFAULT_TEMPLATE, DEFAULT_SPLIT_TEMPLATE, *DEFAULT_WINDOW_TEMPLATES.values(), "{export}_{part:03d}.{ext}"],
)
@pytest.mark.parametrize(("export", "sibling"), [("x", "x_eu"), ("x_eu", "x"), ("orders", "orders_2024"), ("a", "a_1")])
def test_a_sibling_exports_names_are_not_owned(template, export, sibling):
    budapest = ZoneInfo("Europe/Budapest")
    values = NameValues(
        export=sibling, model="customers", run_time=dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC), ext="csv",
        window_start=dt.datetime(2024, 5, 6, tzinfo=budapest), window_end=dt.datetime(2024, 5, 7, tzinfo=budapest), part=3,
    )
    assert not owns(template, export, render_file_name(template, values))


@pytest.mark.parametrize(
    ("template", "not_owned"),
    [
        ("{export}_{part:03d}.{ext}", ["x_000.csv", "x_01.csv", "x_0001.csv", "x_1.csv", "x_abc.csv"]),
        ("{export}_{part}.{ext}", ["x_0.csv", "x_01.csv", "x_.csv", "x_1a.csv"]),
        ("{export}_{run_time:%z%Z}.{ext}", ["x_+0100UTC.csv", "x_+0000CET.csv"]),  # run_time is UTC
        ("{export}_{window_start:%z}.{ext}", ["x_+1500.csv", "x_+0160.csv", "x_0100.csv"]),
        ("{export}_{run_time:%e}.{ext}", ["x_01.csv", "x_ 0.csv", "x_32.csv"]),
        ("{export}_{run_time:%-d}.{ext}", ["x_01.csv", "x_0.csv", "x_ 1.csv"]),
        ("{export}_{run_time:%j}.{ext}", ["x_000.csv", "x_367.csv", "x_36.csv"]),
        ("{export}_{run_time:%b}.{ext}", ["x_jan.csv", "x_January.csv", "x_Foo.csv"]),
        ("{export}_{run_time:%Y}.{ext}", ["x_999.csv", "x_20245.csv", "x_0999.csv"]),
    ],
)
def test_out_of_shape_values_are_not_owned(template, not_owned):
    for name in not_owned:
        assert not owns(template, "x", name), name


# --- the review's inputs: %Z, %z and %s match only what they write; glibc's am/pm flags ------------------


@pytest.mark.parametrize(
    ("template", "timezone", "owned", "not_owned"),
    [
        # Berlin's abbreviations and offsets over its history: LMT, CET, CEST and 1945's CEMT.
        ("{export}_{window_start:%Z}.{ext}", "Europe/Berlin", ["x_CET.csv", "x_CEST.csv", "x_CEMT.csv", "x_LMT.csv"],
         ["x_UTC.csv", "x_EST.csv", "x_ABCDE.csv", "x_+01.csv", "x_cet.csv", "x_CE.csv"]),
        ("{export}_{window_start:%Z}.{ext}", "America/Sao_Paulo", ["x_-03.csv", "x_-02.csv"], ["x_-0300.csv", "x_+03.csv", "x_BRT.csv"]),
        ("{export}_{window_start:%z}.{ext}", "Europe/Berlin", ["x_+0100.csv", "x_+0200.csv", "x_+0300.csv", "x_+005328.csv"],
         ["x_+0000.csv", "x_+0500.csv", "x_-0100.csv", "x_+0130.csv"]),
        ("{export}_{window_start}.{ext}", "Asia/Kathmandu", ["x_2024-01-01 00:00:00+05:45.csv"],
         ["x_2024-01-01 00:00:00+05:00.csv", "x_2024-01-01 00:00:00+00:00.csv"]),
        ("{export}_{run_time:%Z}.{ext}", "Europe/Berlin", ["x_UTC.csv"], ["x_CET.csv", "x_GMT.csv"]),  # run_time is UTC
        ("{export}_{run_time:%s}.{ext}", "UTC", ["x_1700000000.csv", "x_999999999.csv"],
         ["x_5.csv", "x_0.csv", "x_17000000001.csv", "x_0700000000.csv", "x_12345678.csv", "x_170000000a.csv"]),
        ("{export}_{run_time:%P}.{ext}", "UTC", ["x_am.csv", "x_pm.csv"], ["x_AM.csv", "x_PM.csv", "x_Am.csv"]),
        ("{export}_{run_time:%^P}.{ext}", "UTC", ["x_am.csv", "x_pm.csv"], ["x_AM.csv", "x_PM.csv"]),  # glibc: still lower case
        ("{export}_{run_time:%^p}.{ext}", "UTC", ["x_AM.csv", "x_PM.csv"], ["x_am.csv", "x_pm.csv"]),
        ("{export}_{run_time:%#p}.{ext}", "UTC", ["x_am.csv", "x_pm.csv"], ["x_AM.csv", "x_PM.csv"]),  # '#' swaps case
        ("{export}_{run_time:%#a}.{ext}", "UTC", ["x_MON.csv", "x_SUN.csv"], ["x_Mon.csv", "x_mon.csv"]),
    ],
)
def test_zone_epoch_and_am_pm_tokens_match_only_what_they_write(template, timezone, owned, not_owned):
    for name in owned:
        assert owns(template, "x", name, timezone=timezone), name
    for name in not_owned:
        assert not owns(template, "x", name, timezone=timezone), name


# --- what cannot be matched exactly is refused, at load time when retention needs it ------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{export}_{run_time:%5Y}.{ext}", "'%5Y'"),
        ("{export}_{run_time:%Ey}.{ext}", "'%Ey'"),
        ("{export}_{run_time:%Q}.{ext}", "'%Q'"),
        ("{export}_{run_time:%-z}.{ext}", "'%-z'"),
        ("{export}_{run_time:%^d}.{ext}", "'%^d'"),
        ("{export}_{run_time:%Y%}.{ext}", "'%'"),
        ("{export}_{run_time:{part:03d}}.{ext}", "made of other tokens"),
        ("{export}_{run_time!s}.{ext}", "conversion"),
        ("{export}_{part:,}.{ext}", "only fill, alignment"),
        ("{export}_{part:.3}.{ext}", "only fill, alignment"),
    ],
)
def test_a_format_without_an_exact_shape_is_refused(template, message):
    with pytest.raises(FileNameError, match=re.escape(message)):
        template_pattern(template, "x", "customers", "csv")


def spec(**changes) -> dict:
    return {"name": "loose", "model": "customers", "fields": ["id"], "target": {"connection": "partner", "path": "out"}} | changes


SFTP = {"connections": {"partner": {"type": "sftp", "host": "h", "username": "u", "password": {"env": "P"},
                                    "insecure_accept_any_host_key": True}}}


def test_retention_with_a_template_it_cannot_match_exactly_is_a_load_error(tmp_path):
    keeps = spec(file_name="{export}_{run_time:%Q}.{ext}", target={"connection": "partner", "path": "out", "keep_last": 3})
    config = load_config(write_config(tmp_path / "keeps", [keeps], connections=SFTP))
    [problem] = config.problems
    assert "file_name" in str(problem) and "'%Q'" in str(problem)
    without_retention = spec(file_name="{export}_{run_time:%Q}.{ext}")
    assert not load_config(write_config(tmp_path / "plain", [without_retention], connections=SFTP)).problems
