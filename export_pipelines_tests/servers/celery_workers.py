"""Real Celery workers of the scale-out profile: `dagster-celery worker start` as deploy/ documents it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CELERY_YAML = Path(__file__).resolve().parents[2] / "deploy" / "celery.yaml"


@dataclass
class CeleryWorker:
    name: str
    process: subprocess.Popen
    log: Path

    def pids(self) -> set[int]:
        """The worker's processes: `dagster-celery worker start`, the `celery worker` it runs and
        that one's pool process, which runs the steps (all in the session the worker leads)."""
        found = set()
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and os.getsid(int(entry.name)) == self.process.pid:
                    found.add(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
        return found

    def kill(self) -> None:
        """SIGKILL to every process of the worker at once, as when its machine is lost."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


def start_celery_worker(folder: Path, name: str, environment: dict[str, str], seconds: float = 60.0) -> CeleryWorker:
    """One worker taking one step at a time, as docs/scale-out.md starts it (prefork pool of one
    process: the main process answers pings while the step runs), ready when it says so; its log in `folder`."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, **environment, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = folder / f"{name}.log"
    process = subprocess.Popen(
        [f"{bin_dir}/dagster-celery", "worker", "start", "-A", "dagster_celery.app", "-y", str(CELERY_YAML), "-n", name,
         "--", "--concurrency", "1"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = CeleryWorker(name, process, log)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Celery worker {name} exited with {process.returncode}: {log.read_text()}")
        if f"{name}@" in log.read_text() and " ready." in log.read_text():
            return worker
        time.sleep(0.3)
    worker.stop()
    raise RuntimeError(f"Celery worker {name} was not ready within {seconds} s: {log.read_text()}")
