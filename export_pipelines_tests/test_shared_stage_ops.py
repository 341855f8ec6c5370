"""Every export's graph runs the same stage op definitions under its own node names (factory.py):
the step keys stay exports__<name>.<name>__<stage>, only the upload op is the export's own (its
pool), and each step runs for the export whose graph it is in, also beside another build of the
same export."""

from __future__ import annotations

import dagster as dg

from export_pipelines.code_location import build_definitions
from export_pipelines.factory import build_export_asset
from export_pipelines.source import SOURCE_URL_ENV_VAR
from export_pipelines.spec.loader import load_config
from export_pipelines_tests.conftest import export_resources, write_config
from export_pipelines_tests.sample_data import CUSTOMERS, create_sample_tables

ROWS = {"name": "rows", "model": "customers", "fields": ["id", "email"]}
TOTALS = {
    "name": "totals",
    "model": "customers",
    "fields": [{"from": "country", "to": "Country", "aggregation": "group"}, {"from": "id", "to": "Customers", "aggregation": "count"}],
    "after": {"export": "rows"},
}
SPECS = [ROWS, TOTALS, {**ROWS, "name": "rows_fan", "parallel": {"chunks": 3}}, {**TOTALS, "name": "totals_fan", "parallel": {"chunks": 3}}]
STAGES = {
    "rows": ["extract", "map", "serialize", "upload"],
    "totals": ["extract", "map", "aggregate", "serialize", "upload"],
    "rows_fan": ["plan_chunks", "extract_chunk", "map_chunk", "join_chunks", "upload"],
    "totals_fan": ["plan_chunks", "extract_chunk", "map_chunk", "combine_chunks", "serialize", "upload"],
}


def test_every_export_runs_the_shared_stage_ops_under_its_own_step_keys(tmp_path):
    config = load_config(write_config(tmp_path / "config", SPECS))
    assert not config.problems, [str(p) for p in config.problems]
    defs = build_definitions(config)
    dg.Definitions.validate_loadable(defs)
    definitions_by_stage: dict[str, set[int]] = {}
    for name, stages in STAGES.items():
        graph = defs.resolve_assets_def(dg.AssetKey(["exports", name])).node_def
        assert graph.name == f"exports__{name}"
        assert sorted(f"{graph.name}.{node.name}" for node in graph.nodes) == sorted(f"exports__{name}.{name}__{stage}" for stage in stages)
        for stage in stages:
            definitions_by_stage.setdefault(stage, set()).add(id(graph.node_named(f"{name}__{stage}").definition))
        upload = graph.node_named(f"{name}__upload").definition
        assert (upload.name, upload.pool) == (f"{name}__upload", f"export_pipelines/{name}")
    assert {stage: len(ids) for stage, ids in definitions_by_stage.items()} == {
        "extract": 1, "map": 1, "aggregate": 1, "serialize": 1, "plan_chunks": 1, "extract_chunk": 1, "map_chunk": 1,
        "join_chunks": 1, "combine_chunks": 1, "upload": 4,
    }
    # An export with `after` depends on its upstream, through its first step.
    for name in ("totals", "totals_fan"):
        graph = defs.resolve_assets_def(dg.AssetKey(["exports", name])).node_def
        assert [(m.graph_input_name, m.maps_to.node_name) for m in graph.input_mappings] == [("upstream", f"{name}__{STAGES[name][0]}")]
        assert defs.resolve_asset_graph().get(dg.AssetKey(["exports", name])).parent_keys == {dg.AssetKey(["exports", "rows"])}


def test_each_build_of_an_export_runs_its_own_spec(tmp_path):
    """Two builds of one export in a process (a test's edited config, a re-execution with the edited
    spec): the steps of the first build's asset still run for the first spec."""
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    first = load_config(write_config(tmp_path / "first", [{**ROWS, "file_name": "first.csv", "target": "download"}])).plans["rows"]
    second = load_config(write_config(tmp_path / "second", [{**ROWS, "file_name": "second.csv", "target": "download"}])).plans["rows"]
    first_asset, _ = build_export_asset(first), build_export_asset(second)
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        result = dg.materialize([first_asset], resources=export_resources(source), instance=instance)
    [materialization] = result.get_asset_materialization_events()
    assert materialization.materialization.metadata["file_names"].value == ["first.csv"]


def test_an_op_selection_of_an_export_job_runs_for_its_export(tmp_path, monkeypatch):
    """A job's op selection runs a copy of the export's graph cut to the selected steps: its steps
    still find their export (here the extract, which writes the extract's stage file)."""
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    monkeypatch.setenv(SOURCE_URL_ENV_VAR, source)
    config = load_config(write_config(tmp_path / "config", [{**ROWS, "target": "download"}]))
    job = build_definitions(config).get_job_def("rows_job").get_subset(op_selection=["exports__rows.rows__extract"])
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        result = job.execute_in_process(instance=instance)
    assert [event.step_key for event in result.get_step_success_events()] == ["exports__rows.rows__extract"]
    assert result.output_for_node("exports__rows.rows__extract").rows == len(CUSTOMERS)
