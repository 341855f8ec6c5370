"""What a run's start costs (issue 20, goal 5): loading the code location imports no library that
moves rows, a run imports no pandas, and a run process's load leaves what it loaded out of the
garbage collector's scans.

Each check runs in a fresh interpreter, since this one has imported everything already. A
failure names the libraries a load imported: find the module-level statement that reads one
(an import, a constant such as `pa.int64()`, a base class, an evaluated annotation) and take
the library from export_pipelines/lazy_imports.py or import it inside the function that uses it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from export_pipelines.local_runs import CODE_LOCATION_FUNCTION, CODE_LOCATION_MODULE
from export_pipelines.source import SOURCE_URL_ENV_VAR
from export_pipelines.spec.loader import CONFIG_ENV_VAR
from export_pipelines_tests.conftest import write_config
from export_pipelines_tests.sample_data import CUSTOMERS, create_sample_tables

REPO_ROOT = Path(__file__).resolve().parent.parent
# What the steps use to read, convert, compress, encrypt and deliver rows, and what those pull in.
HEAVY = [
    "adbc_driver_manager",
    "adbc_driver_postgresql",
    "adbc_driver_sqlite",
    "boto3",
    "botocore",
    "connectorx",
    "duckdb",
    "gnupg",
    "numpy",
    "pandas",
    "paramiko",
    "psycopg",
    "pyarrow",
    "pymysql",
    "sqlalchemy",
    "zlib_ng",
    "zstandard",
]


def imported_after(code: str, env: dict[str, str] | None = None) -> list[str]:
    """The HEAVY libraries in sys.modules after `code` ran in a fresh interpreter."""
    return printed_last(f"{textwrap.dedent(code)}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))", env)


def printed_last(code: str, env: dict[str, str] | None = None):
    """The JSON value `code` printed last, run in a fresh interpreter (with json and sys imported)."""
    script = f"import json, sys\n{textwrap.dedent(code)}"
    completed = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env or os.environ, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, "\n".join(completed.stderr.splitlines()[-15:])
    return json.loads(completed.stdout.splitlines()[-1])


def demo_environment(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    env.pop(CONFIG_ENV_VAR, None)  # the bundled demo config: every target, format and automation kind
    return env


def test_the_code_servers_load_of_the_demo_location_imports_no_heavy_library(tmp_path):
    loaded = imported_after(
        """
        from dagster._core.remote_representation.external_data import RepositorySnap

        import export_pipelines.cli
        from export_pipelines.definitions import defs

        repository = defs.get_repository_def()
        assert len(repository.get_all_jobs()) > 9
        RepositorySnap.from_def(repository)  # what the code server hands the UI
        import gc

        # A code server reloads its definitions: frozen, the old ones' cycles would never be collected.
        assert gc.get_freeze_count() == 0, "the code server's load froze objects"
        """,
        demo_environment(tmp_path),
    )
    assert loaded == []


def test_a_run_workers_load_of_its_job_imports_only_what_dagster_imports(tmp_path):
    loaded = imported_after(
        f"""
        from dagster._core.definitions.reconstruct import ReconstructableRepository
        from dagster._core.execution.api import create_execution_plan

        repository = ReconstructableRepository.for_module({CODE_LOCATION_MODULE!r}, {CODE_LOCATION_FUNCTION!r})
        job = repository.get_reconstructable_job("voucherify_redemptions_job").get_definition()
        create_execution_plan(job)
        """,
        demo_environment(tmp_path),
    )
    # Dagster's own reconstruction imports its SQL storage, and SQLAlchemy with it.
    assert loaded == ["sqlalchemy"]


def test_a_run_workers_load_leaves_what_it_loaded_out_of_the_garbage_collectors_scans(tmp_path):
    frozen, scanned = printed_last(
        f"""
        import gc

        from dagster._core.definitions.reconstruct import ReconstructableRepository

        repository = ReconstructableRepository.for_module({CODE_LOCATION_MODULE!r}, {CODE_LOCATION_FUNCTION!r})
        job = repository.get_reconstructable_job("voucherify_redemptions_job").get_definition()
        # A frozen object is in no generation the collector scans (gc.get_objects lists those).
        print(json.dumps([gc.get_freeze_count(), [any(o is x for o in gc.get_objects()) for x in (job, ReconstructableRepository, sys.modules)]]))
        """,
        demo_environment(tmp_path),
    )
    assert frozen > 10_000  # Dagster's modules alone are far more objects
    # The job, a class of Dagster's and the interpreter's module table: all frozen.
    assert scanned == [False, False, False]


def test_a_run_delivers_its_file_without_importing_pandas_and_pyarrow_still_hands_out_pandas(tmp_path):
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    spec = {"name": "partner", "model": "customers", "fields": ["id", "email"], "order": ["id"], "file_name": "partner.csv", "target": "download"}
    config = write_config(tmp_path / "config", [spec])
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), CONFIG_ENV_VAR: str(config), SOURCE_URL_ENV_VAR: source}
    run = tmp_path / "run"
    run.mkdir()
    loaded = imported_after(
        f"""
        import dagster as dg

        from export_pipelines.definitions import defs

        with dg.instance_for_test(temp_dir={str(run)!r}) as instance:
            assert defs.get_job_def("partner_job").execute_in_process(instance=instance).success
        pandas_after_the_run = "pandas" in sys.modules

        import pyarrow as pa

        assert pa.table({{"a": [1.5, None]}}).to_pandas()["a"].isna().tolist() == [False, True]
        import pandas as pd

        assert pa.array(pd.Series([1.5, None])).null_count == 1  # a pandas object is known as one again
        assert not pandas_after_the_run, "the run imported pandas"
        """,
        env,
    )
    assert "pandas" in loaded  # imported by the checks after the run, when asked for
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([["id", "email"], *[[c["id"], c["email"] or ""] for c in sorted(CUSTOMERS, key=lambda c: c["id"])]])
    assert (run / "storage" / "downloads" / "partner" / "partner.csv").read_bytes() == out.getvalue().encode()
