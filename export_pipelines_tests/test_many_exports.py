"""A code location of hundreds of exports (issue 21, item 4): every export has its job, and a process
that executes a run (Dagster's RECONSTRUCTION load) builds only the exports that run needs and
delivers the same files as the whole location's job."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.definitions.reconstruct import ReconstructableRepository

from export_pipelines.code_location import build_definitions
from export_pipelines.local_runs import CODE_LOCATION_FUNCTION, CODE_LOCATION_MODULE
from export_pipelines.source import SOURCE_URL_ENV_VAR
from export_pipelines.spec.loader import CONFIG_ENV_VAR, load_config
from export_pipelines_tests.conftest import write_config
from export_pipelines_tests.sample_data import CUSTOMERS, create_sample_tables

EXPORTS = 300


def spec(index: int) -> dict:
    """Small specs; every tenth follows the one before it (`after`), as a partner's second file does."""
    name = f"partner_{index:03d}"
    spec = {"name": name, "model": "customers", "fields": ["id", "email"], "order": ["id"], "file_name": f"{name}.csv", "target": "download"}
    if index % 10 == 1:
        spec["after"] = {"export": f"partner_{index - 1:03d}"}
    return spec


@pytest.fixture(scope="module")
def config_folder(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("many") / "config", [spec(index) for index in range(EXPORTS)])


def expected_file() -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([["id", "email"], *[[c["id"], c["email"] or ""] for c in sorted(CUSTOMERS, key=lambda c: c["id"])]])
    return out.getvalue().encode()


def test_every_export_of_a_large_location_has_its_job_over_its_asset(config_folder):
    config = load_config(config_folder)
    assert not config.problems, [str(p) for p in config.problems]
    repository = build_definitions(config).get_repository_def()
    for index in range(EXPORTS):
        name = f"partner_{index:03d}"
        job = repository.get_job(f"{name}_job")
        assert job.asset_layer.selected_asset_keys == {dg.AssetKey(["exports", name])}
    assert len(repository.assets_defs_by_key) == EXPORTS


@pytest.fixture
def environment(config_folder, tmp_path, monkeypatch) -> Path:
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    monkeypatch.setenv(CONFIG_ENV_VAR, str(config_folder))
    monkeypatch.setenv(SOURCE_URL_ENV_VAR, source)
    return tmp_path


def run_worker_job(job_name: str, asset_names: list[str] | None = None):
    """The job as a run worker rebuilds it: from the code location's module, as a RECONSTRUCTION."""
    job = ReconstructableRepository.for_module(CODE_LOCATION_MODULE, CODE_LOCATION_FUNCTION).get_reconstructable_job(job_name)
    if asset_names is not None:
        job = job.get_subset(asset_selection={dg.AssetKey(["exports", name]) for name in asset_names})
    return job


WHOLE = "building the whole code location"


def test_a_run_worker_builds_only_the_exports_of_its_run(environment, caplog):
    """The run's job is built from the selected export and the export it follows, not from all 300."""
    caplog.set_level(logging.INFO, logger="export_pipelines")
    materialize = run_worker_job(IMPLICIT_ASSET_JOB_NAME, ["partner_041"]).get_definition()
    assert materialize.asset_layer.asset_graph.source_asset_graph.get_all_asset_keys() == {
        dg.AssetKey(["exports", "partner_040"]),
        dg.AssetKey(["exports", "partner_041"]),
    }
    own_job = run_worker_job("partner_041_job").get_definition()
    assert own_job.asset_layer.selected_asset_keys == {dg.AssetKey(["exports", "partner_041"])}
    assert WHOLE not in caplog.text
    # What it cannot narrow (a job over every snapshot export) is the whole location, as before.
    everything = run_worker_job("all_exports").get_definition()
    assert len(everything.asset_layer.selected_asset_keys) == EXPORTS
    assert f"job all_exports: {WHOLE}" in caplog.text


def test_a_run_started_narrow_delivers_the_files_the_whole_location_delivers(environment, config_folder):
    (environment / "narrow").mkdir()
    (environment / "whole").mkdir()
    with dg.instance_for_test(temp_dir=str(environment / "narrow")) as instance:
        with dg.execute_job(run_worker_job("partner_150_job"), instance=instance) as result:
            assert result.success
        narrow = (environment / "narrow" / "storage" / "downloads" / "partner_150" / "partner_150.csv").read_bytes()
    whole = build_definitions(load_config(config_folder))
    with dg.instance_for_test(temp_dir=str(environment / "whole")) as instance:
        assert whole.get_job_def("partner_150_job").execute_in_process(instance=instance).success
        delivered = (environment / "whole" / "storage" / "downloads" / "partner_150" / "partner_150.csv").read_bytes()
    assert narrow == delivered == expected_file()
