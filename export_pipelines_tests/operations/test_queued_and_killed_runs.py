"""The repository's dagster.yaml run coordinator and run launcher, through a real dagster-webserver
and dagster-daemon:

- runs are tagged with their export and window when queued, whatever launched them (a UI
  backfill, Materialize of a partition, a partition picked for `<export>_job`, all_exports),
  so the UI's run filter by export finds runs still waiting in the queue;
- a run whose process is killed while it uploads is marked failed with that cause, by run
  monitoring (dagster-daemon) or, without a daemon, by the next `export-pipelines run` or
  `rerun`; it gives its export's pool slot back (the export's next upload is not held for
  ever), and `export-pipelines rerun --failed-only` delivers its window from the upload step;
- run monitoring judges a run dead only when every step it has in progress ran in a process
  of this host that is gone (the last test).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.plan.objects import StepSuccessData
from dagster._core.launcher import WorkerStatus

from export_pipelines.factory import ROWS_CHECK
from export_pipelines.naming import HOST_TAG
from export_pipelines.run_launcher import this_host
from export_pipelines_tests.conftest import require_service, write_config
from export_pipelines_tests.operations.test_ui_backfills import (
    CLI,
    EXPORT,
    FAILING_WINDOW,
    SPECS,
    cli,
    expected_bytes,
    file_name,
    instance_yaml,
    source,  # noqa: F401 (a fixture: the source table of the export)
)
from export_pipelines_tests.servers.dagster_webserver import (
    launch_backfill,
    launch_job,
    materialize,
    start_daemon,
    start_webserver,
    webserver_executable,
)
from export_pipelines_tests.targets.test_delivery_faults import proxied_sftp
from export_pipelines_tests.waiting import wait_for

SNAPSHOT = SPECS[1]["name"]




def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def test_runs_carry_their_export_tags_while_queued(tmp_path):
    if webserver_executable() is None:
        require_service("dagster-webserver is not installed")
    config = write_config(tmp_path / "config", [{**SPECS[0], "target": "download"}, SPECS[1]])
    # No run may leave the queue: the tags must be there before any step starts.
    settings = yaml.safe_load(instance_yaml())
    settings["concurrency"]["runs"]["max_concurrent_runs"] = 0
    environment = {"EXPORT_PIPELINES_CONFIG": str(config)}
    server = start_webserver(tmp_path, environment, instance_yaml=yaml.safe_dump(settings))
    daemon = None
    try:
        backfill = launch_backfill(server, ["exports", EXPORT], "2026-03-02", "2026-03-04")
        picked = materialize(server, ["exports", EXPORT], checks=[ROWS_CHECK], partition="2026-03-05")
        job_run = launch_job(server, {"pipelineName": f"{EXPORT}_job"}, partition="2026-03-06")
        snapshot = materialize(server, ["exports", SNAPSHOT], checks=[ROWS_CHECK])
        all_exports = launch_job(server, {"pipelineName": "all_exports"})
        daemon = start_daemon(server.home, tmp_path, environment)  # the backfill daemon queues the backfill's run
        with dg.DagsterInstance.from_config(str(server.home)) as instance:
            queued = dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])
            runs = wait_for(lambda: len(runs := instance.get_runs(queued)) == 5 and runs, "five queued runs, the backfill's too", 120, interval=0.5)
            tags = {run.tags.get("dagster/backfill", run.run_id): run.tags for run in runs}
    finally:
        if daemon is not None:
            stop(daemon)
        server.stop()

    def export_tags(run_tags: dict) -> dict:
        return {key: value for key, value in run_tags.items() if key.startswith("export_pipelines/")}

    incremental = {"export_pipelines/export": EXPORT, "export_pipelines/model": "transactions", "export_pipelines/target": "download"}
    assert export_tags(tags[backfill]) == incremental | {"export_pipelines/window": f"{EXPORT}@2026-03-02..2026-03-04"}
    assert export_tags(tags[picked]) == incremental | {"export_pipelines/window": f"{EXPORT}@2026-03-05..2026-03-05"}
    assert export_tags(tags[job_run]) == incremental | {
        "export_pipelines/window": f"{EXPORT}@2026-03-06..2026-03-06",
        "export_pipelines/trigger": "manual",
    }
    assert export_tags(tags[snapshot]) == {
        "export_pipelines/export": SNAPSHOT,
        "export_pipelines/model": "customers",
        "export_pipelines/target": "download",
        "export_pipelines/window": SNAPSHOT,
    }
    assert export_tags(tags[all_exports]) == {"export_pipelines/exports": SNAPSHOT}


@pytest.fixture
def slow_server_instance(tmp_path, source, sshd, proxy_to, remote_folder):
    """An instance with the repository's dagster.yaml (run monitoring every second) and an export
    whose SFTP server answers each connection only after 60 s."""
    folder, path = remote_folder
    proxy = proxy_to(sshd.port)
    proxy.hold(60)
    spec = {**SPECS[0], "target": {"connection": "partner", "path": folder}}
    connections = {"connections": {"partner": proxied_sftp(sshd, proxy.port)}}
    config = write_config(tmp_path / "config", [spec], connections=connections)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml(poll_interval_seconds=1, free_slots_after_run_end_seconds=1))
    environment = {"EXPORT_PIPELINES_CONFIG": str(config), "EXPORT_SOURCE_URL": source}
    return home, environment, proxy, path


WINDOW = FAILING_WINDOW[0]
POOL = f"export_pipelines/{EXPORT}"


def slot_holders(instance: dg.DagsterInstance) -> list[str]:
    return [slot.run_id for slot in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots]


def run_killed_while_uploading(home: Path, environment: dict) -> str:
    """`export-pipelines run` of one window, SIGKILLed (it cannot report anything) while its
    upload holds the export's pool slot; the run's id."""
    env = {**os.environ, **environment, "DAGSTER_HOME": str(home)}
    shell = subprocess.Popen([CLI, "run", EXPORT, "--from", WINDOW, "--to", WINDOW], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run_id] = wait_for(lambda: slot_holders(instance), "the run's upload holds the export's pool slot", 120, interval=0.5)
    shell.kill()
    shell.wait()
    return run_id


def assert_rerun_delivers(home: Path, environment: dict, proxy, remote: Path, run_id: str) -> str:
    proxy.hold(0)
    rerun = cli(environment, home, "rerun", EXPORT, "--failed-only")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"Re-executing run {run_id} ({WINDOW}) from the failed step" in rerun.stdout
    assert (remote / file_name(WINDOW, WINDOW)).read_bytes() == expected_bytes(WINDOW, WINDOW)
    return rerun.stdout


def test_a_run_killed_while_uploading_fails_frees_its_slot_and_reruns(slow_server_instance, tmp_path):
    home, environment, proxy, remote = slow_server_instance
    daemon = start_daemon(home, tmp_path, environment)
    try:
        run_id = run_killed_while_uploading(home, environment)
        killed_at = time.monotonic()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run = wait_for(lambda: (run := instance.get_run_by_id(run_id)).is_finished and run, "run monitoring ends the killed run", 60, interval=0.5)
            assert run.status == dg.DagsterRunStatus.FAILURE
            wait_for(lambda: not slot_holders(instance), "the killed run gives its export's pool slot back", 60, interval=0.5)
            assert time.monotonic() - killed_at < 30
    finally:
        stop(daemon)

    log = cli(environment, home, "log", EXPORT)
    assert log.returncode == 0, log.stderr
    [line, error] = log.stdout.splitlines()[1:3]
    assert "failed" in line and "cli" in line and run_id in line
    assert f"exports__{EXPORT}.{EXPORT}__upload (pid " in error and "no longer exists (killed" in error
    assert_rerun_delivers(home, environment, proxy, remote, run_id)


def test_without_the_daemon_the_next_command_ends_a_killed_run(slow_server_instance):
    home, environment, proxy, remote = slow_server_instance
    run_id = run_killed_while_uploading(home, environment)
    output = assert_rerun_delivers(home, environment, proxy, remote, run_id)
    assert f"Marked run {run_id} failed: its process no longer exists (killed?)" in output
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        assert not slot_holders(instance)


def dead_process_id() -> int:
    """The id of a process that existed and has ended (and been reaped)."""
    process = subprocess.Popen(["sleep", "60"])
    process.kill()
    process.wait()
    return process.pid


@pytest.mark.parametrize(
    ("host", "events", "status"),
    [
        ("here", [("STEP_START", "dead")], WorkerStatus.FAILED),
        ("here", [("STEP_START", "alive")], WorkerStatus.RUNNING),
        ("here", [("STEP_START", "dead"), ("STEP_UP_FOR_RETRY", "dead"), ("STEP_RESTARTED", "alive")], WorkerStatus.RUNNING),
        # Between steps, or while the upload waits for its pool's slot: every process that wrote the run's events is gone.
        ("here", [("STEP_START", "dead"), ("STEP_SUCCESS", "dead"), ("ENGINE_EVENT", "dead")], WorkerStatus.FAILED),
        ("here", [("STEP_START", "dead"), ("STEP_SUCCESS", "dead"), ("ENGINE_EVENT", "alive")], WorkerStatus.RUNNING),
        ("another-host", [("STEP_START", "dead")], WorkerStatus.RUNNING),  # its processes cannot be seen from here
        ("this name, another pid namespace", [("STEP_START", "dead")], WorkerStatus.RUNNING),  # a container beside this one
        (None, [("STEP_START", "dead")], WorkerStatus.RUNNING),  # not an export run
    ],
)
def test_run_monitoring_fails_a_run_only_when_its_step_processes_are_gone_from_this_host(tmp_path, host, events, status):
    settings = yaml.safe_load(instance_yaml())
    pids = {"dead": dead_process_id(), "alive": os.getpid()}
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=settings) as instance:
        hosts = {"here": this_host(), "this name, another pid namespace": f"{socket.gethostname()} pid:[1]"}
        tags = {HOST_TAG: hosts.get(host, host)} if host else {}
        run = instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id="0" * 8 + "-0000-0000-0000-" + "0" * 12, tags=tags))
        for event_type, process in events:
            data = {"STEP_SUCCESS": StepSuccessData(duration_ms=1.0), "ENGINE_EVENT": EngineEventData()}.get(event_type)
            event = DagsterEvent(event_type, "__ASSET_JOB", step_key="exports__a.a__upload", pid=pids[process], event_specific_data=data)
            instance.report_dagster_event(event, run.run_id)
        result = instance.run_launcher.check_run_worker_health(run)
    assert result.status == status, result.msg
    if status == WorkerStatus.FAILED and events[-1][0] == "STEP_START":
        assert result.msg == (
            f"the process of step(s) exports__a.a__upload (pid {pids[events[-1][1]]}) on {socket.gethostname()} no longer exists "
            "(killed, or the Celery worker running it?)"
        )
    elif status == WorkerStatus.FAILED:
        assert result.msg.startswith(f"the run's processes on {socket.gethostname()} no longer exist")
