"""The run launcher of a deployment (dagster.yaml `run_launcher`): Dagster's default launcher,
which can also tell run monitoring that a run's process is gone.

Dagster's DefaultRunLauncher cannot say whether a run's process is alive, so a run whose
process was killed (SIGKILL, the out-of-memory killer, a closed terminal running
`export-pipelines run`) stays STARTED for ever: `log` shows it processing, `rerun` refuses it,
and when it died uploading it keeps its export's pool slot, so that export's uploads wait for
ever. Each step of an export run records its host (steps.tag_export_run) and Dagster records
each step event's process id: when every step the run has in progress ran in a process of this
host that no longer exists, the run's worker has failed, and run monitoring (dagster-daemon)
marks the run failed; `free_slots_after_run_end_seconds` then frees its slots.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

from export_pipelines.naming import HOST_TAG

STEP_STARTED = (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_RESTARTED)
STEP_ENDED = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_UP_FOR_RETRY)


@functools.cache
def this_host() -> str:
    """This machine's name and, on Linux, its process-id namespace (`pid:[4026531836]`): a
    process id means the same process only where both are the same (two containers can share
    a host name, with network_mode: host, and still not see each other's processes)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()} {namespace}"


def record_host(context: dg.OpExecutionContext) -> None:
    """Tag the step's run with this host (once), so run monitoring can check its processes here.
    Every op of an export or ad-hoc run calls this, so a re-execution from any step is tagged."""
    run = context.instance.get_run_by_id(context.run_id)
    if run is not None and run.tags.get(HOST_TAG) != this_host():
        context.instance.add_run_tags(context.run_id, {HOST_TAG: this_host()})


def process_exists(pid: int) -> bool:
    """Whether process `pid` exists on this host and is not a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        # /proc/PID/stat: "pid (comm) state ...": the state follows the last ')'.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def step_processes(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    """Step key -> process id of each step the run has started and not yet ended, from its event log."""
    running: dict[str, int] = {}
    types = {*STEP_STARTED, *STEP_ENDED}
    for entry in instance.all_logs(run_id, of_type=types):
        event = entry.dagster_event
        if event.event_type in STEP_STARTED:
            running[event.step_key] = event.pid
        else:
            running.pop(event.step_key, None)
    return running


def run_processes(instance: dg.DagsterInstance, run_id: str) -> set[int]:
    """Every process id that wrote an event of the run: its worker (or the command running it in
    process), the orchestrator of a multiprocess run and its step processes."""
    return {entry.dagster_event.pid for entry in instance.all_logs(run_id) if entry.dagster_event and entry.dagster_event.pid}


def run_health(instance: dg.DagsterInstance, run: dg.DagsterRun) -> CheckRunHealthResult:
    """FAILED when no process of the run exists any more on this host (where the run's tag says
    it ran): with steps in progress, none of their processes; between steps or while a step waits
    for its pool's slot (no step in progress), none of the processes that wrote its events. A run
    killed while its upload waited for the slot would otherwise be handed the slot when it frees,
    and hold it for ever. RUNNING otherwise, including whenever this process cannot know (another
    host, no tag, no event with a process id yet). A FAILED result's message names the steps,
    their process ids and the host; the run's step events are read once."""
    if run.tags.get(HOST_TAG) != this_host():
        return CheckRunHealthResult(WorkerStatus.RUNNING)
    running = step_processes(instance, run.run_id)
    processes = set(running.values()) or run_processes(instance, run.run_id)
    if processes and not any(pid is not None and process_exists(pid) for pid in processes):
        return CheckRunHealthResult(WorkerStatus.FAILED, _dead_worker_message(running))
    return CheckRunHealthResult(WorkerStatus.RUNNING)


class ExportRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher (same config) whose runs run monitoring can check: see the module's docstring."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        return run_health(self._instance, run)


def _dead_worker_message(running: dict[str, int]) -> str:
    host = socket.gethostname()
    if not running:
        return f"the run's processes on {host} no longer exist (killed between steps or while waiting for its pool's slot?)"
    steps = ", ".join(f"{step} (pid {pid})" for step, pid in sorted(running.items()))
    return f"the process of step(s) {steps} on {host} no longer exists (killed, or the Celery worker running it?)"


def end_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """What run monitoring does, for a deployment without dagster-daemon (`export-pipelines run`
    from cron): mark each started export run of this host whose step processes are gone failed,
    and free the pool slots it held, so this process's uploads do not wait for it for ever.
    Returns the ids of the runs it ended."""
    ended = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={HOST_TAG: this_host()})):
        health = run_health(instance, run)
        if health.status != WorkerStatus.FAILED:
            continue
        instance.report_run_failed(run, health.msg)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        ended.append(run.run_id)
    return ended
