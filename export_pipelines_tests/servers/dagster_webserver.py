"""A real dagster-webserver over this code location, on a free loopback port with its own DAGSTER_HOME.

The instance uses Dagster's DefaultRunCoordinator: a run launched through GraphQL starts at
once in its own process, so no dagster-daemon (and no queue polling) is needed; the daemon
would only add a process and a poll interval to every test run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from export_pipelines_tests.servers.network import HOST, free_port

INSTANCE_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""


@dataclass
class Webserver:
    url: str
    home: Path
    process: subprocess.Popen

    def stop(self) -> None:
        # The run processes the webserver launched share its session: end them with it.
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


LOCATIONS_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
  __typename ... on PythonError { message } } } } } }
"""


def _code_location_error(url: str) -> str | None:
    """A webserver answers even when its code location failed to import; say why it failed."""
    body = json.dumps({"query": LOCATIONS_QUERY}).encode()
    request = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
    errors = [entry["locationOrLoadError"].get("message", "") for entry in entries if entry["locationOrLoadError"]["__typename"] == "PythonError"]
    return "; ".join(errors) or None


def webserver_executable() -> str | None:
    beside_python = Path(sys.executable).parent / "dagster-webserver"
    return str(beside_python) if beside_python.exists() else shutil.which("dagster-webserver")


# The repository's workspace file, as `make ui` loads it: the code location is named export_pipelines.
WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"


def start_webserver(
    folder: Path, environment: dict[str, str], seconds: float = 90.0, instance_yaml: str = INSTANCE_YAML
) -> Webserver:
    executable = webserver_executable()
    if executable is None:
        raise FileNotFoundError("dagster-webserver is not installed")
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml)
    port = free_port()
    env = {**os.environ, **environment, "DAGSTER_HOME": str(home)}
    log = (folder / "webserver.log").open("w")
    process = subprocess.Popen(
        [executable, "-h", HOST, "-p", str(port), "-w", str(WORKSPACE)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Webserver(f"http://{HOST}:{port}", home, process)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {process.returncode}: {(folder / 'webserver.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=2):
                pass
        except OSError:
            time.sleep(0.3)
            continue
        load_error = _code_location_error(server.url)
        if load_error:
            server.stop()
            raise RuntimeError(f"the code location did not load: {load_error}")
        return server
    server.stop()
    raise RuntimeError(f"dagster-webserver did not answer within {seconds} s: {(folder / 'webserver.log').read_text()}")


def start_daemon(home: Path, folder: Path, environment: dict[str, str]) -> subprocess.Popen:
    """dagster-daemon over the instance in `home` (a webserver's too): it dequeues queued runs,
    ticks sensors and monitors runs."""
    executable = Path(sys.executable).parent / "dagster-daemon"
    env = {**os.environ, **environment, "DAGSTER_HOME": str(home)}
    log = (folder / "daemon.log").open("w")
    return subprocess.Popen(
        [str(executable), "run", "-w", str(WORKSPACE)], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def graphql(server: Webserver, query: str, variables: dict | None = None) -> dict:
    """One GraphQL request, as the UI sends it; raises on GraphQL errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{server.url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""

LAUNCH_RUN = """
mutation LaunchRun($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""

LOCATION_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { name } } } }
"""


def launch_backfill(server: Webserver, asset_path: list[str], start: str, end: str) -> str:
    """What the UI's partitions dialog sends for a range of one asset's partitions; the backfill's id."""
    params = {
        "partitionsByAssets": [{"assetKey": {"path": asset_path}, "partitions": {"range": {"start": start, "end": end}}}],
        "title": f"{'/'.join(asset_path)} {start}...{end}",
        "tags": [],
    }
    launched = graphql(server, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"the backfill was not launched: {launched}")
    return launched["backfillId"]


def materialize(server: Webserver, asset_path: list[str], checks: list[str], partition: str | None = None, tags: dict[str, str] | None = None) -> str:
    """What the UI's Materialize button sends for one asset and its checks (a run of
    __ASSET_JOB), for one picked partition of a partitioned asset; the run's id."""
    selector = {
        "pipelineName": "__ASSET_JOB",
        "assetSelection": [{"path": asset_path}],
        "assetCheckSelection": [{"assetKey": {"path": asset_path}, "name": name} for name in checks],
    }
    return launch_job(server, selector, partition, tags)


def launch_job(server: Webserver, selector: dict, partition: str | None = None, tags: dict[str, str] | None = None) -> str:
    """What the launchpad sends for a job (`selector` names it, {"pipelineName": ...}), with the
    partition picked in its partition selector and the run tags added in its tag editor; the run's id."""
    tags = {**(tags or {}), **({"dagster/partition": partition} if partition else {})}
    [location] = [entry["name"] for entry in graphql(server, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]]
    params = {
        "selector": {"repositoryLocationName": location, "repositoryName": "__repository__", **selector},
        "mode": "default",
        "executionMetadata": {"tags": [{"key": key, "value": value} for key, value in tags.items()]},
        "runConfigData": {},
    }
    launched = graphql(server, LAUNCH_RUN, {"params": params})["launchPipelineExecution"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"the run was not launched: {launched}")
    return launched["run"]["runId"]
