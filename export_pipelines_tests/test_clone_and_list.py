"""export-pipelines clone and list over a config folder (list history: see api/test_exports_api.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from export_pipelines.cli import main
from export_pipelines.spec.loader import CONFIG_ENV_VAR, bundled_demo_config, load_config
from export_pipelines_tests.conftest import write_config

ORDERS = {
    "name": "orders_nightly",
    "model": "transactions",
    "owner": "team:crm",
    "fields": ["number", "amount"],
    "target": "download",
    "schedule": {"on": "2099-12-01T06:00", "timezone": "Europe/Budapest"},
}
CUSTOMERS = {"name": "customers_weekly", "model": "customers", "fields": ["email"], "schedule": {"repeated": "weekly", "days": ["mon"], "active": False}}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config", [ORDERS, CUSTOMERS])


def test_clone_writes_a_valid_spec_with_changes(config: Path, capsys):
    assert main(["clone", "orders_nightly", "orders_weekly_psv", "--config", str(config), "--set", "format=psv", "--set", "schedule.active=false"]) == 0

    written = yaml.safe_load((config / "exports" / "orders_weekly_psv.yaml").read_text())
    loaded = load_config(config)
    assert not loaded.problems
    assert written == {**ORDERS, "name": "orders_weekly_psv", "format": "psv", "schedule": {**ORDERS["schedule"], "active": False}}
    assert loaded.plans["orders_weekly_psv"].spec.format == "psv"
    assert "orders_weekly_psv.yaml" in capsys.readouterr().out


def test_clone_refuses_to_overwrite(config: Path, capsys):
    before = (config / "exports" / "customers_weekly.yaml").read_text()

    assert main(["clone", "orders_nightly", "customers_weekly", "--config", str(config)]) == 1

    assert "already exists" in capsys.readouterr().out
    assert (config / "exports" / "customers_weekly.yaml").read_text() == before


def test_invalid_clone_is_removed_and_its_problems_printed(config: Path, capsys):
    assert main(["clone", "orders_nightly", "orders_bad", "--config", str(config), "--set", "fields=[number, amonut]"]) == 1

    out = capsys.readouterr().out
    assert "exports/orders_bad.yaml: line 3: fields[1].from: model transactions has no field 'amonut'" in out
    assert not (config / "exports" / "orders_bad.yaml").exists()


@pytest.mark.parametrize("assignment", ["schedule.on=2024-02-30 06:00:00", "schedule.on=2024-02-30"])
def test_clone_with_an_impossible_date_says_so(config: Path, capsys, assignment):
    """YAML's own date conversion refuses 2024-02-30: a clear error at the key, not a traceback, and no file."""
    assert main(["clone", "orders_nightly", "orders_bad_date", "--config", str(config), "--set", assignment]) == 1

    out = capsys.readouterr().out
    assert "exports/orders_bad_date.yaml: line 8: schedule.on: 2024-02-30" in out and "is not a valid date" in out, out
    assert not (config / "exports" / "orders_bad_date.yaml").exists()


def test_clone_of_a_spec_holding_an_impossible_date(config: Path, capsys):
    """The source spec itself holds an unquoted 2024-02-30 (YAML cannot build it): the clone says where, as validate does."""
    source = config / "exports" / "orders_nightly.yaml"
    source.write_text(source.read_text().replace("'on': 2099-12-01T06:00", "'on': 2024-02-30 06:00:00"))
    assert "2024-02-30 06:00:00" in source.read_text()

    assert main(["clone", "orders_nightly", "orders_copy", "--config", str(config)]) == 1

    out = capsys.readouterr().out
    assert "exports/orders_copy.yaml: line 8: schedule.on: 2024-02-30 06:00:00 is not a valid date and time" in out, out
    assert not (config / "exports" / "orders_copy.yaml").exists()


def test_clone_with_a_value_that_is_not_yaml(config: Path, capsys):
    assert main(["clone", "orders_nightly", "orders_bad_yaml", "--config", str(config), "--set", "fields=[number"]) == 1
    assert "--set value '[number' is not a YAML value" in capsys.readouterr().out


def test_a_clone_dagster_would_refuse_is_not_kept(config: Path, capsys):
    """The loader accepts an export named `upload` beside one named `exports`, Dagster does not (op exports__upload
    is the graph of exports/upload): the clone says so and is removed, as validate would report it."""
    assert main(["clone", "orders_nightly", "exports", "--config", str(config)]) == 0
    assert main(["clone", "orders_nightly", "upload", "--config", str(config)]) == 1

    out = capsys.readouterr().out
    assert "exports/upload.yaml: line 5: name: its graph name exports__upload is also that of export exports; rename the export" in out, out
    assert not (config / "exports" / "upload.yaml").exists()


def test_clone_of_an_unknown_export_suggests_names(config: Path, capsys):
    assert main(["clone", "orders_nighty", "x", "--config", str(config)]) == 1
    assert "did you mean orders_nightly" in capsys.readouterr().out


def test_list_without_history_and_search(config: Path, tmp_path: Path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    assert main(["list", "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert main(["list", "--config", str(config), "--search", "TRANSACTIONS"]) == 0
    searched = capsys.readouterr().out.splitlines()

    assert out[0].split()[:3] == ["NAME", "MODEL", "TARGET"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows.keys() == {"orders_nightly", "customers_weekly"}
    assert rows["orders_nightly"][-4:] == ["running", "-", "-", "-"]
    assert rows["customers_weekly"][-4:] == ["stopped", "-", "-", "-"]
    assert [line.split()[0] for line in searched[1:]] == ["orders_nightly"]


@pytest.mark.parametrize("explicit", [False, True])
def test_clone_refuses_to_write_into_the_bundled_demo_config(monkeypatch, capsys, explicit):
    bundled = bundled_demo_config()
    before = sorted(path.name for path in (bundled / "exports").iterdir())
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    arguments = ["--config", str(bundled)] if explicit else []
    assert main(["clone", "sana_orders", "sana_orders_copy", *arguments]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"ERROR {bundled} is the bundled demo config, part of the installed package")
    assert f"set {CONFIG_ENV_VAR}=DIR" in out and "--config DIR" in out
    assert sorted(path.name for path in (bundled / "exports").iterdir()) == before
