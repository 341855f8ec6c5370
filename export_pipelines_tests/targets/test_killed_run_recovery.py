"""What marks a run killed mid-upload as over, so that the next run sweeps its temporary: through
a real dagster-webserver (Dagster's DefaultRunLauncher, as deployed) and the real sshd behind a
slow link. When only the run's process dies, its code server marks the run failed; when the code
server dies too, the run stays STARTED (run monitoring cannot check a DefaultRunLauncher's workers)
until a user force-terminates it. docs/delivery.md, "When a run dies", says the same."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest

from export_pipelines.demo.generator import generate_demo_database
from export_pipelines.factory import ROWS_CHECK
from export_pipelines.run_history import run_is_over
from export_pipelines.targets.remote import parse_temporary
from export_pipelines_tests.conftest import require_service, write_config
from export_pipelines_tests.servers.dagster_webserver import graphql, materialize, start_webserver, webserver_executable
from export_pipelines_tests.targets.delivery_helpers import Log, local_file, make_target
from export_pipelines_tests.targets.test_sftp import sftp_connection
from export_pipelines_tests.waiting import wait_for

EXPORT = "slow_customers"
TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId, terminatePolicy: MARK_AS_CANCELED_IMMEDIATELY) { __typename }
}
"""




def run_workers(session_leader: int) -> list[int]:
    """The webserver's run processes (and their step processes): multiprocessing children of its code server."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == session_leader and b"spawn_main" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return found


@pytest.fixture
def deployment(tmp_path, sshd, proxy_to, remote_folder):
    if webserver_executable() is None:
        require_service("dagster-webserver is not installed")
    folder, path = remote_folder
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    generate_demo_database(source, customers=1500, seed=3)
    proxy = proxy_to(sshd.port)
    proxy.throttle(4_000)  # the upload of ~50 kB takes seconds: time to kill it mid-way
    connection = sftp_connection(sshd, port=proxy.port, known_hosts_path=None, host_key_fingerprint=sshd.host_key_fingerprint)
    target = {"connection": "partner", "path": folder}
    spec = {"name": EXPORT, "model": "customer", "fields": ["id", "email"], "order": "id", "target": target}
    config = write_config(tmp_path / "config", [spec], connections={"connections": {"partner": connection}})
    environment = {"EXPORT_PIPELINES_CONFIG": str(config), "EXPORT_SOURCE_URL": source}
    servers = [start_webserver(tmp_path, environment)]
    yield servers, lambda: servers.append(start_webserver(tmp_path, environment)), path
    servers[-1].stop()


def temporaries(path: Path) -> list[str]:
    return sorted(name for name in os.listdir(path) if name.startswith(".")) if path.exists() else []


def sweep_by_the_next_run(path: Path, instance: dg.DagsterInstance, tmp_path: Path, sshd, folder: str) -> list[str]:
    target = make_target(sftp_connection(sshd), folder, export=EXPORT, run_is_over=lambda run_id: run_is_over(instance, run_id))
    return target.deliver([local_file(tmp_path / "next", "next.csv", b"id\r\n")], Log()).swept


def test_a_killed_run_is_marked_over_by_its_code_server_or_by_force_termination(deployment, sshd, remote_folder, tmp_path):
    servers, restart, path = deployment
    folder = remote_folder[0]
    with dg.DagsterInstance.from_config(str(servers[0].home)) as instance:
        # 1. Only the run's process dies (SIGKILL): the code server that launched it marks it failed.
        first = materialize(servers[0], ["exports", EXPORT], checks=[ROWS_CHECK])
        [leftover] = wait_for(lambda: temporaries(path), "the first run's temporary", 120, interval=0.2)
        assert parse_temporary(leftover).run_id == first
        for pid in run_workers(servers[0].process.pid):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: instance.get_run_by_id(first).status == dg.DagsterRunStatus.FAILURE, "the code server marking the run failed", 30, interval=0.2)
        assert sweep_by_the_next_run(path, instance, tmp_path, sshd, folder) == [leftover]

        # 2. The code server dies with it: nothing marks the run over, a fresh server included ...
        second = materialize(servers[0], ["exports", EXPORT], checks=[ROWS_CHECK])
        [leftover] = wait_for(lambda: temporaries(path), "the second run's temporary", 120, interval=0.2)
        os.killpg(servers[0].process.pid, signal.SIGKILL)
        servers[0].process.wait()
        restart()
        time.sleep(3)
        assert instance.get_run_by_id(second).status == dg.DagsterRunStatus.STARTED
        assert sweep_by_the_next_run(path, instance, tmp_path, sshd, folder) == []
        # ... until a user terminates it in the UI with Force termination; then the next run sweeps.
        assert graphql(servers[-1], TERMINATE, {"runId": second})["terminateRun"]["__typename"] == "TerminateRunSuccess"
        assert instance.get_run_by_id(second).status == dg.DagsterRunStatus.CANCELED
        assert sweep_by_the_next_run(path, instance, tmp_path, sshd, folder) == [leftover]
        assert temporaries(path) == []
