"""dagster-celery's executor, watching the workers that run its steps.

dagster-celery's run loop waits for each step's Celery result. A worker whose pool process is
killed (the kernel's OOM killer, say) reports the task failed (Celery's WorkerLostError), and
the run fails. But a worker killed whole, or a machine lost, reports nothing: the task's state
stays STARTED in the result backend and the run waits for ever, holding its export's pool slot.
This executor wraps each step's result so that a step whose worker no longer answers Celery's
ping fails the run, naming the step and the worker; `export-pipelines rerun` (or Re-execute
from failure) then runs it on another worker, reusing the earlier steps' stage files.

It needs `task_track_started: true` in the workers' Celery settings (deploy/celery.yaml), so a
started task records the worker's hostname, and workers whose main process answers pings while
a step runs: the prefork pool (`--concurrency 1`), not the solo pool.
"""

from __future__ import annotations

import os
import time

import dagster as dg
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor, _submit_task
from dagster._core.execution.retries import RetryMode

# How long a worker running a step may go without answering a ping before the step is taken
# for lost. A worker's main process answers within milliseconds even while its pool process
# streams a step, so silence means the process or its machine (or its link to the broker) is
# gone; the default leaves room for a broker failover.
LOST_AFTER_ENV_VAR = "EXPORT_CELERY_WORKER_LOST_SECONDS"
DEFAULT_LOST_AFTER_SECONDS = 120.0
PING_EVERY_SECONDS = 5.0
PING_TIMEOUT_SECONDS = 2.0


class CeleryWorkerLost(Exception):
    """A step's Celery worker stopped answering while it ran the step."""


def lost_after_seconds() -> float:
    """$EXPORT_CELERY_WORKER_LOST_SECONDS (seconds, > 0), default 120. Raises ValueError naming the variable."""
    text = os.environ.get(LOST_AFTER_ENV_VAR, "").strip()
    if not text:
        return DEFAULT_LOST_AFTER_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{LOST_AFTER_ENV_VAR}={text!r}: write a number of seconds above 0 (default {DEFAULT_LOST_AFTER_SECONDS:g})")
    return seconds


class WatchedResult:
    """A step's celery.AsyncResult that is also `ready()` once the worker running it has not
    answered a ping for `lost_after` seconds; `get()` then raises CeleryWorkerLost. Every other
    call goes to the AsyncResult. Pings are sent at most every PING_EVERY_SECONDS per step."""

    def __init__(self, result, app, step_key: str, lost_after: float):
        self._result = result
        self._app = app
        self._step_key = step_key
        self._lost_after = lost_after
        self._next_ping = 0.0
        self._silent_since: float | None = None
        self._lost_worker: str | None = None

    def __getattr__(self, name):
        return getattr(self._result, name)

    def ready(self) -> bool:
        if self._lost_worker is not None or self._result.ready():
            return True
        now = time.monotonic()
        if now < self._next_ping:
            return False
        self._next_ping = now + PING_EVERY_SECONDS
        worker = self._running_on()
        if worker is None:
            # Queued (PENDING): no worker has it yet, or Celery does not track starts.
            self._silent_since = None
            return False
        if self._app.control.ping(destination=[worker], timeout=PING_TIMEOUT_SECONDS):
            self._silent_since = None
            return False
        self._silent_since = self._silent_since if self._silent_since is not None else now
        if now - self._silent_since < self._lost_after:
            return False
        self._lost_worker = worker
        # If the worker only lost its link and comes back, it must not finish the step beside
        # the rerun's worker: it terminates the task when it reads the revocation.
        self._result.revoke(terminate=True, signal="SIGKILL")
        return True

    def get(self, *args, **kwargs):
        if self._lost_worker is not None:
            raise CeleryWorkerLost(
                f"step {self._step_key}: Celery worker {self._lost_worker} has not answered for "
                f"{self._lost_after:g} s while running it (its process or machine is gone). Start a worker if none "
                f"is left, then re-execute the run from failure (`export-pipelines rerun --run-id <run>` or the UI's "
                f"Re-execute > From failure): the steps that finished are reused."
            )
        return self._result.get(*args, **kwargs)

    def _running_on(self) -> str | None:
        if self._result.state != "STARTED":
            return None
        info = self._result.info
        return info.get("hostname") if isinstance(info, dict) else None


class WatchedCeleryExecutor(CeleryExecutor):
    """dagster-celery's CeleryExecutor whose run loop sees each step's result through WatchedResult."""

    def __init__(self, lost_after: float, **kwargs):
        super().__init__(**kwargs)
        self.lost_after = lost_after

    def execute(self, plan_context, execution_plan):
        from dagster_celery.core_execution_loop import core_celery_execution_loop

        def submit(app, context, step, queue, priority, known_state):
            result = _submit_task(app, context, step, queue, priority, known_state)
            return WatchedResult(result, app, step.key, self.lost_after)

        return core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=submit)


@dg.executor(name="celery", config_schema=CELERY_CONFIG, requirements=dg.multiple_process_executor_requirements())
def watched_celery_executor(init_context) -> WatchedCeleryExecutor:
    """dagster-celery's `celery_executor` (same config), failing a step whose worker is lost
    (see the module docstring). The wait is $EXPORT_CELERY_WORKER_LOST_SECONDS, read where the run executes."""
    config = init_context.executor_config
    return WatchedCeleryExecutor(
        lost_after=lost_after_seconds(),
        broker=config.get("broker"),
        backend=config.get("backend"),
        config_source=config.get("config_source"),
        include=config.get("include"),
        retries=RetryMode.from_config(config["retries"]),
    )
