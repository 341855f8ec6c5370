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
    op_names = sorted(node.name for node in asset.node_def.nodes)
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


def test_a_fault_of_ours_met_by_one_file_leaves_the_others_loaded(tmp_path, monkeypatch):
    """The loader's own faults are contained per file: that file is reported, the location loads."""
    from export_pipelines.spec import loader

    real_check = loader.check_export

    def failing_for_one(raw, relative, config, document=None):
        if raw.get("name") == "bad_one":
            raise KeyError("unexpected")
        return real_check(raw, relative, config, document)

    monkeypatch.setattr(loader, "check_export", failing_for_one)
    config = load_config(write_config(tmp_path, [{"name": "good_one", "model": "customers", "fields": ["id"]}, {"name": "bad_one", "model": "customers", "fields": ["id"]}]))
    assert list(config.plans) == ["good_one"]
    [problem] = config.problems
    assert str(problem) == "exports/bad_one.yaml: could not be checked (KeyError('unexpected')); please report this"
    dg.Definitions.validate_loadable(build_definitions(config))


def test_exports_whose_sensors_get_one_name_are_both_refused_and_the_rest_load(tmp_path):
    """`a` after `b_after_c` and `a_after_b` after `c` both make the sensor a_after_b_after_c."""
    base = {"model": "customers", "fields": ["id"]}
    specs = [
        {**base, "name": "c"},
        {**base, "name": "b_after_c"},
        {**base, "name": "a", "after": {"export": "b_after_c"}},
        {**base, "name": "a_after_b", "after": {"export": "c"}},
    ]
    config = load_config(write_config(tmp_path, specs))
    assert config.problems == []
    defs = build_definitions(config)
    dg.Definitions.validate_loadable(defs)
    keys = {key.path[1]: defs.resolve_assets_def(key).group_names_by_key[key] for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"c": "customers", "b_after_c": "customers", "a": "invalid_exports", "a_after_b": "invalid_exports"}
    for name, other in (("a", "a_after_b"), ("a_after_b", "a")):
        description = defs.resolve_assets_def(dg.AssetKey(["exports", name])).specs_by_key[dg.AssetKey(["exports", name])].description
        assert f"name: its sensor name a_after_b_after_c is also that of export {other}; rename the export" in description


def test_an_export_dagster_refuses_is_listed_and_the_rest_load(tmp_path, monkeypatch):
    """Whatever Dagster refuses when the definitions resolve is found export by export."""
    import export_pipelines.code_location as definitions

    real_job = definitions.build_export_job

    def job_selecting_nothing_real(plan):
        if plan.name != "refused":
            return real_job(plan)
        return dg.define_asset_job(f"{plan.name}_job", selection=dg.AssetSelection.assets(dg.AssetKey(["no", "such"])))

    monkeypatch.setattr(definitions, "build_export_job", job_selecting_nothing_real)
    base = {"model": "customers", "fields": ["id"]}
    config = load_config(write_config(tmp_path, [{**base, "name": "kept"}, {**base, "name": "refused"}, {**base, "name": "follows", "after": {"export": "refused"}}]))
    defs = build_definitions(config)
    dg.Definitions.validate_loadable(defs)
    groups = {key.path[1]: defs.resolve_assets_def(key).group_names_by_key[key] for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert groups == {"kept": "customers", "refused": "invalid_exports", "follows": "invalid_exports"}
    refused = defs.resolve_assets_def(dg.AssetKey(["exports", "refused"])).specs_by_key[dg.AssetKey(["exports", "refused"])]
    assert "Dagster refuses this export's definitions" in refused.description and "no/such" in refused.description
    follows = defs.resolve_assets_def(dg.AssetKey(["exports", "follows"])).specs_by_key[dg.AssetKey(["exports", "follows"])]
    assert "after.export: export refused does not load" in follows.description


def test_a_clash_only_the_whole_location_shows_costs_its_exports_not_the_location(tmp_path, monkeypatch):
    """The last line of defence: with the name checks switched off, the exports `exports` and `upload`
    (op exports__upload, graph exports__upload) each load alone but not together. They are added one at
    a time, in name order: the first stays, the second is refused with Dagster's reason, the location loads."""
    import export_pipelines.code_location as code_location

    monkeypatch.setattr(code_location._ExportDefinitions, "named", property(lambda self: {}))
    base = {"model": "customers", "fields": ["id"]}
    config = load_config(write_config(tmp_path, [{**base, "name": "kept"}, {**base, "name": "exports"}, {**base, "name": "upload"}]))
    refused = code_location.definition_problems(config)
    assert [(p.file, p.key_path) for p in refused] == [("exports/upload.yaml", "")]
    assert "beside the others'" in refused[0].message and 'conflicting node definitions with the same name "exports__upload"' in refused[0].message
    defs = build_definitions(config)
    dg.Definitions.validate_loadable(defs)
    groups = {key.path[1]: defs.resolve_assets_def(key).group_names_by_key[key] for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert groups["kept"] == groups["exports"] == "customers"
    assert [name for name, group in groups.items() if group == "invalid_exports"] and groups.get("upload") is None
