"""The code location as Dagster sees it: assets, groups, metadata, and broken specs kept visible."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

from export_pipelines.definitions import build_definitions
from export_pipelines.spec.loader import bundled_demo_config, load_config
from export_pipelines_tests.conftest import write_config

REPO_ROOT = Path(__file__).resolve().parents[1]


def _demo_spec_names() -> list[str]:
    return sorted(yaml.safe_load(p.read_text())["name"] for p in (bundled_demo_config() / "exports").glob("*.yaml"))


def test_every_demo_spec_is_an_asset_with_its_stages():
    defs = build_definitions(load_config(bundled_demo_config()))
    graph = defs.resolve_asset_graph()
    keys = sorted(key.path[1] for key in graph.get_all_asset_keys() if key.path[0] == "exports")
    assert keys == _demo_spec_names()
    asset = defs.resolve_assets_def(dg.AssetKey(["exports", "sana_orders"]))
    assert asset.group_names_by_key[dg.AssetKey(["exports", "sana_orders"])] == "transactions"
    op_names = [node.name for node in asset.node_def.node_defs]
    assert op_names == ["sana_orders__extract", "sana_orders__map", "sana_orders__serialize", "sana_orders__upload"]
    metadata = asset.specs_by_key[dg.AssetKey(["exports", "sana_orders"])].metadata
    assert metadata["model"] == "transactions"
    assert metadata["target"] == "sana_ftp:sana/orders"
    assert asset.specs_by_key[dg.AssetKey(["exports", "sana_orders"])].kinds == {"csv", "ftp"}
    assert metadata["format"] == "csv"
    assert "schedule" in metadata
    assert [check.name for check in asset.check_specs] == ["rows_written_match_expected"]


def test_a_broken_spec_is_listed_with_its_problem_and_the_rest_still_load(tmp_path):
    good = {"name": "good_one", "model": "customers", "fields": ["id"]}
    bad = {"name": "bad_one", "model": "customers", "fields": ["emial"]}
    defs = build_definitions(load_config(write_config(tmp_path, [good, bad])))
    bad_asset = defs.resolve_assets_def(dg.AssetKey(["exports", "bad_one"]))
    spec = bad_asset.specs_by_key[dg.AssetKey(["exports", "bad_one"])]
    assert spec.group_name == "invalid_exports"
    assert "fields[0].from" in spec.description and "email" in spec.description
    assert defs.resolve_assets_def(dg.AssetKey(["exports", "good_one"])) is not None
    result = dg.materialize([bad_asset], raise_on_error=False)
    assert not result.success


def test_dagster_definitions_validate_passes_for_the_demo_config(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    env.pop("EXPORT_PIPELINES_CONFIG", None)
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Validation successful" in completed.stdout + completed.stderr
