"""The run queue with the repository's dagster.yaml, a real webserver and a real dagster-daemon:
two runs of the same export window never write at once; the second waits in the queue."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_graphql import DagsterGraphQLClient

from export_pipelines.naming import export_job_name
from export_pipelines_tests.conftest import require_service, write_config
from export_pipelines_tests.sample_data import create_sample_tables
from export_pipelines_tests.servers.dagster_webserver import start_daemon, start_webserver, webserver_executable

REPO_DAGSTER_YAML = Path(__file__).parents[2] / "dagster.yaml"
SPEC = {"name": "queued_customers", "model": "customers", "fields": ["id", "email"], "file_name": "customers.csv"}


@pytest.fixture
def slow_source(postgres_schema_url) -> str:
    """Customers behind a view that takes 2 s per query: each run lasts long enough that two
    runs launched together would overlap, unless the queue holds one back."""
    create_sample_tables(postgres_schema_url)
    engine = sa.create_engine(postgres_schema_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE VIEW slow_customers AS SELECT c.* FROM customers c, (SELECT pg_sleep(2)) AS pause"))
    engine.dispose()
    return postgres_schema_url


@pytest.fixture
def queue_with_daemon(tmp_path, slow_source):
    if webserver_executable() is None:
        require_service("dagster-webserver is not installed")
    config = write_config(tmp_path / "config", [SPEC], models={"models": {"customers": {"table": "slow_customers"}}})
    environment = {"EXPORT_PIPELINES_CONFIG": str(config), "EXPORT_SOURCE_URL": slow_source}
    server = start_webserver(tmp_path, environment, instance_yaml=REPO_DAGSTER_YAML.read_text())
    daemons = []
    yield server, lambda: daemons.append(start_daemon(server, tmp_path, environment))
    for daemon in daemons:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)
    server.stop()


def test_a_second_run_of_the_same_window_waits_for_the_first(queue_with_daemon):
    server, start_the_daemon = queue_with_daemon
    client = DagsterGraphQLClient("127.0.0.1", port_number=int(server.url.rsplit(":", 1)[1]))
    first = client.submit_job_execution(export_job_name("queued_customers"))
    second = client.submit_job_execution(export_job_name("queued_customers"))
    # Both wait in the queue before the daemon's first pass: without the limit it launches both at once.
    assert [client.get_run_status(run_id) for run_id in (first, second)] == [dg.DagsterRunStatus.QUEUED] * 2
    start_the_daemon()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        statuses = [client.get_run_status(run_id) for run_id in (first, second)]
        if all(status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) for status in statuses):
            break
        time.sleep(1)
    assert statuses == [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.SUCCESS]
    with dg.DagsterInstance.from_config(str(server.home)) as instance:
        records = {r.dagster_run.run_id: r for r in instance.get_run_records(filters=dg.RunsFilter(run_ids=[first, second]))}
        assert records[second].dagster_run.tags["export_pipelines/window"] == "queued_customers"
        # The queue held the second run until the first had finished.
        assert records[second].start_time >= records[first].end_time
