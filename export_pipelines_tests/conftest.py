"""Shared fixtures: the PostgreSQL server on this machine, sample databases, and a way to run one export."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from export_pipelines.delivery_settings import DeliverySettings
from export_pipelines.factory import build_export_asset
from export_pipelines.source import SourceDatabase
from export_pipelines.spec.loader import load_config
from export_pipelines_tests.sample_data import create_sample_tables

POSTGRES_URL = os.environ.get("EXPORT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("EXPORT_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def require_service(reason: str) -> None:
    """Under CI a missing service fails the test; on a laptop it skips, saying why."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"required service unavailable under CI: {reason}")
    pytest.skip(reason)


def reachable(url: str, server: str) -> str:
    """`url` once a `select 1` answers there; else require_service names the server."""
    try:
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        engine.dispose()
    except sa.exc.OperationalError as error:
        require_service(f"{server} at {url} is unreachable: {error}")
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return reachable(POSTGRES_URL, "PostgreSQL")


@pytest.fixture
def postgres_database_url(postgres_url: str):
    """A psycopg2 URL (as dagster-postgres takes it) of a fresh PostgreSQL database, dropped afterwards."""
    database = f"dagster_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    yield sa.make_url(postgres_url).set(drivername="postgresql+psycopg2", database=database).render_as_string(hide_password=False)
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE "{database}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def postgres_schema_url(postgres_url: str):
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    return reachable(MARIADB_URL, "MariaDB")


@pytest.fixture
def mariadb_database_url(mariadb_url: str):
    """A MariaDB URL of a fresh database (cheap to create: a folder), dropped afterwards."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as connection:
        # utf8mb4_general_ci, the common default, ignores case: the tests show ordering by code point regardless.
        connection.execute(sa.text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"))
    yield sa.make_url(mariadb_url).set(database=database).render_as_string(hide_password=False)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP DATABASE `{database}`"))
    engine.dispose()


# The sources whose hard-value tests write each one's own DDL and raw values (DuckDB joins those whose
# values its types hold: test_differential_values, test_exact_values' any_source).
SOURCES = ["sqlite", "postgresql", "mariadb"]
# Every tested source: tables made from the catalog's SQLAlchemy metadata. DuckDB stands for any other
# SQLAlchemy dialect, the general path's proof.
METADATA_SOURCES = [*SOURCES, "duckdb"]


def source_url(request, tmp_path: Path, kind: str) -> str:
    """An empty database of this kind for one test: a SQLite or DuckDB file, a PostgreSQL schema or a MariaDB database."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'source.sqlite'}"
    if kind == "duckdb":
        return f"duckdb:///{tmp_path / 'source.duckdb'}"
    if kind == "postgresql":
        return request.getfixturevalue("postgres_schema_url")
    return request.getfixturevalue("mariadb_database_url")


@pytest.fixture(params=METADATA_SOURCES)
def sample_source_url(request, tmp_path: Path) -> str:
    """The sample rows in SQLite, PostgreSQL, MariaDB and DuckDB: every end-to-end test runs on each."""
    url = source_url(request, tmp_path, request.param)
    create_sample_tables(url)
    return url


@dataclass
class ExportRun:
    result: dg.ExecuteInProcessResult
    metadata: dict
    folder: Path

    @property
    def files(self) -> dict[str, bytes]:
        return {name: (self.folder / name).read_bytes() for name in self.metadata["file_names"]}


def export_resources(source_url: str) -> dict:
    """The resources an export asset needs, reading from `source_url` and delivering as specified."""
    return {"source_database": SourceDatabase(url=source_url), "delivery_settings": DeliverySettings()}


def write_config(folder: Path, specs: list[dict], connections: dict | None = None, models: dict | None = None) -> Path:
    (folder / "exports").mkdir(parents=True, exist_ok=True)
    for spec in specs:
        (folder / "exports" / f"{spec.get('name', 'unnamed')}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    if connections is not None:
        (folder / "connections.yaml").write_text(yaml.safe_dump(connections))
    if models is not None:
        (folder / "models.yaml").write_text(yaml.safe_dump(models))
    return folder


def run_export(
    spec: dict,
    source_url: str,
    tmp_path: Path,
    *,
    models: dict | None = None,
    connections: dict | None = None,
    raise_on_error: bool = True,
) -> ExportRun:
    """Load one spec through the real config loader and materialize its asset on a throwaway instance."""
    config = load_config(write_config(tmp_path / "config", [spec], connections=connections, models=models))
    assert not config.problems, [str(p) for p in config.problems]
    asset = build_export_asset(config.plans[spec["name"]], config.connections.connections)
    instance_dir = tmp_path / "instance"
    instance_dir.mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(instance_dir)) as instance:
        result = dg.materialize([asset], resources=export_resources(source_url), instance=instance, raise_on_error=raise_on_error)
    events = result.get_asset_materialization_events()
    metadata = {key: value.value for key, value in events[0].materialization.metadata.items()} if events else {}
    location = metadata.get("location", "")
    return ExportRun(result=result, metadata=metadata, folder=Path(location) if "://" not in location else Path())


# The real servers (sshd, vsftpd, pyftpdlib, moto, aiosmtpd) as fixtures for every test folder.
from export_pipelines_tests.servers.fixtures import *  # noqa: E402,F403
