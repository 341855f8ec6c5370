"""The exports API for programs: Voucherify's create / get / download over a running dagster-webserver.

An export is a run of the adhoc_export job, launched and read through Dagster's GraphQL
endpoint. Launching uses dagster-graphql's public client (it finds the code location and
reports invalid run config); reading uses one GraphQL query of our own, because the public
client exposes a run's status but not its tags, config or output metadata.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pydantic
import yaml
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from export_pipelines.adhoc.request import CHANNELS, AdhocExportConfig, plan_for_request
from export_pipelines.api.export_object import export_id_for, export_object, run_id_for
from export_pipelines.naming import ADHOC_CHANNEL_TAG, ADHOC_JOB, ADHOC_OBJECT_TAG, ADHOC_PLAN_OP, ADHOC_USER_TAG
from export_pipelines.spec.loader import ExportConfig

DEFAULT_URL = "http://127.0.0.1:3000"
S3_SCHEME = "s3://"
RESULT_OP = "deliver"

_STEP_ERROR_PREFIX = "dagster._core.errors.DagsterExecutionStepExecutionError:"

RUNS_QUERY = """
query ExportRuns($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { runId } }
    ... on PythonError { message }
  }
}
"""

RUN_QUERY = """
query ExportRun($runId: ID!, $cursor: String) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      runId status creationTime jobName runConfigYaml
      tags { key value }
      eventConnection(afterCursor: $cursor) {
        cursor hasMore
        events {
          __typename
          ... on ExecutionStepOutputEvent { stepKey metadataEntries { label ... on JsonMetadataEntry { jsonString } } }
          ... on ExecutionStepFailureEvent { stepKey error { message causes { message } } }
          ... on RunFailureEvent { message }
        }
      }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""


class ExportApiError(RuntimeError):
    """The webserver refused a request or does not know the export; the message says why."""


class ExportsClient:
    """Create, read and download ad-hoc exports on the webserver at `url`.

    Args:
        url: The dagster-webserver's base URL, e.g. http://127.0.0.1:3000.
        timeout: Seconds for each HTTP request.
    """

    def __init__(self, url: str = DEFAULT_URL, timeout: int = 60):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL of a dagster-webserver")
        self.graphql_url = f"{url.rstrip('/')}/graphql"
        self.timeout = timeout
        self._launcher = DagsterGraphQLClient(
            parsed.hostname,
            port_number=parsed.port,
            use_https=parsed.scheme == "https",
            timeout=timeout,
            path_prefix=parsed.path.rstrip("/"),
        )

    def create(
        self,
        exported_object: str,
        parameters: dict[str, Any] | None = None,
        channel: str = "API",
        user_id: str | None = None,
        check_with: ExportConfig | None = None,
    ) -> str:
        """Launch an export and return its id.

        parameters holds Voucherify's fields, filters and order, and optionally format,
        compression, max_rows_per_file, target, path and the file dialect keys (see AdhocExportConfig). With
        `check_with`, the config folder the code location loads, the request is checked
        here first, as the run's first step would check it: a request with problems raises
        ExportApiError listing them all, and no run is started.
        """
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
        request = {"exported_object": exported_object, **_request_keys(parameters or {})}
        if check_with is not None:
            _check_request(request, check_with)
        tags = {ADHOC_CHANNEL_TAG: channel, ADHOC_OBJECT_TAG: exported_object}
        if user_id:
            tags[ADHOC_USER_TAG] = user_id
        try:
            run_id = self._launcher.submit_job_execution(
                ADHOC_JOB, run_config={"ops": {ADHOC_PLAN_OP: {"config": request}}}, tags=tags
            )
        except DagsterGraphQLClientError as error:
            raise ExportApiError(f"the webserver refused the export: {_client_error_text(error)}") from error
        return export_id_for(run_id)

    def get(self, export_id: str) -> dict[str, Any]:
        """The export object, shaped like Voucherify's (see export_object)."""
        run_id = run_id_for(export_id)
        run, events = self._run_with_events(run_id)
        request = yaml.safe_load(run["runConfigYaml"])["ops"][ADHOC_PLAN_OP]["config"]
        return export_object(
            run_id,
            run["status"],
            run["creationTime"],
            {tag["key"]: tag["value"] for tag in run["tags"]},
            request,
            _result_urls(events),
            _error_message(events),
        )

    def list(self, limit: int = 20, channel: str | None = None) -> dict[str, Any]:
        """The newest exports first, as Voucherify's list: {object, data_ref, exports, total}."""
        tags = [{"key": ADHOC_CHANNEL_TAG, "value": channel}] if channel else None
        found = self._query(RUNS_QUERY, {"filter": {"pipelineName": ADHOC_JOB, "tags": tags}, "limit": limit})["runsOrError"]
        if found["__typename"] != "Runs":
            raise ExportApiError(f"cannot list exports: {found.get('message', found['__typename'])}")
        exports = [self.get(export_id_for(run["runId"])) for run in found["results"]]
        return {"object": "list", "data_ref": "exports", "exports": exports, "total": len(exports)}

    def wait(self, export_id: str, timeout: float = 300, interval: float = 0.5) -> dict[str, Any]:
        """Poll until the export is DONE or ERROR; raises TimeoutError if it is still SCHEDULED."""
        deadline = time.monotonic() + timeout
        while True:
            export = self.get(export_id)
            if export["status"] != "SCHEDULED":
                return export
            if time.monotonic() > deadline:
                raise TimeoutError(f"export {export_id} is still SCHEDULED after {timeout:g} s")
            time.sleep(interval)

    def download(self, export_id: str, folder: Path | str) -> list[Path]:
        """Fetch every chunk of a DONE export into `folder`, streamed; returns the files in chunk order.

        Reads file://, http(s):// and s3:// URLs (s3:// with this environment's AWS credentials);
        raises ExportApiError for a URL on an SFTP or FTP server, or an object it may not read."""
        export = self.get(export_id)
        if export["status"] != "DONE":
            detail = f": {export['error']['message']}" if "error" in export else ""
            raise ExportApiError(f"export {export_id} is {export['status']}, not DONE{detail}")
        return self.fetch_all(export["result"]["urls"], folder)

    def fetch_all(self, urls: list[str], folder: Path | str) -> list[Path]:
        """Fetch each URL into `folder` under its own file name (local_name); returns the files in
        the URLs' order. Raises ExportApiError before fetching anything when two URLs would land
        in one local file: a later chunk must never silently overwrite an earlier one."""
        names = [local_name(url) for url in urls]
        first: dict[str, str] = {}
        for url, name in zip(urls, names):
            if name in first:
                raise ExportApiError(
                    f"{first[name]} and {url} would both be saved as {name}; nothing was downloaded. "
                    "Fetch them one by one into different folders"
                )
            first[name] = url
        destination = Path(folder)
        destination.mkdir(parents=True, exist_ok=True)
        return [self._fetch(url, destination, name) for url, name in zip(urls, names)]

    def _fetch(self, url: str, folder: Path, name: str | None = None) -> Path:
        parsed = urllib.parse.urlsplit(url)
        target = folder / (name or local_name(url))
        if parsed.scheme == "file":
            shutil.copyfile(urllib.request.url2pathname(parsed.path), target)
        elif parsed.scheme in {"http", "https"}:
            with urllib.request.urlopen(url, timeout=self.timeout) as response, target.open("wb") as out:
                shutil.copyfileobj(response, out)
        elif parsed.scheme == "s3":
            _fetch_from_object_store(url, target)
        else:
            raise ExportApiError(f"{url} is on the export's delivery server; fetch it from there with its own client")
        return target

    def _run_with_events(self, run_id: str) -> tuple[dict, list[dict]]:
        events: list[dict] = []
        cursor = None
        while True:
            found = self._query(RUN_QUERY, {"runId": run_id, "cursor": cursor})["runOrError"]
            if found["__typename"] != "Run":
                raise ExportApiError(f"no export {export_id_for(run_id)}: {found.get('message', found['__typename'])}")
            if found["jobName"] != ADHOC_JOB:
                raise ExportApiError(f"run {run_id} is a run of {found['jobName']}, not an ad-hoc export")
            connection = found["eventConnection"]
            events.extend(connection["events"])
            if not connection["hasMore"]:
                return found, events
            cursor = connection["cursor"]

    def _query(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(self.graphql_url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise ExportApiError("GraphQL error: " + "; ".join(error["message"] for error in answer["errors"]))
        return answer["data"]


def local_name(url: str) -> str:
    """The file name a chunk's URL is saved under: the last segment of its path. An s3:// URL is a
    bucket and a raw key, never parsed as a URL: a `#` or `?` in the store's prefix or a
    connection's path is part of the key, not a fragment or a query. Raises ExportApiError for a
    URL that names no file (a folder, `.` or `..`)."""
    if url.startswith(S3_SCHEME):
        path = url[len(S3_SCHEME) :].partition("/")[2]
    else:
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    name = path.rsplit("/", 1)[-1]
    if name in {"", ".", ".."}:
        raise ExportApiError(f"{url} names no file to save")
    return name


def _fetch_from_object_store(url: str, target: Path) -> None:
    """An s3:// URL (the download store's, EXPORT_DOWNLOADS_STORE_URL), read with one GET in chunks,
    with the AWS credentials, endpoint and region of this process's environment, as the AWS tools read them."""
    from export_pipelines.stages.work_location import download_object

    try:
        download_object(url, target)
    except Exception as error:  # noqa: BLE001 - botocore's errors, a missing object, a broken transfer: one message
        raise ExportApiError(
            f"cannot read {url}: {error}. This client reads s3:// URLs with the AWS credentials of its own environment "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or an instance role; AWS_ENDPOINT_URL for an "
            "S3-compatible store); or fetch the files over http from `export-pipelines serve-downloads` (EXPORT_DOWNLOADS_URL)"
        ) from error


def _check_request(request: dict[str, Any], config: ExportConfig) -> None:
    try:
        typed = AdhocExportConfig(**request)
    except pydantic.ValidationError as error:
        raise ExportApiError(f"the export request is invalid; no export was started:\n{error}") from None
    _, problems = plan_for_request(typed, "adhoc_request", config)
    if problems:
        listing = "\n".join(f"- {problem}" for problem in problems)
        raise ExportApiError(f"the export request is invalid (checked against {config.root}); no export was started:\n{listing}")


def _request_keys(parameters: dict[str, Any]) -> dict[str, Any]:
    """Voucherify's parameters as run config: `order` may be one key as text."""
    keys = {key: value for key, value in parameters.items() if value is not None}
    if isinstance(keys.get("order"), str):
        keys["order"] = [keys["order"]]
    return keys


def _result_urls(events: list[dict]) -> list[str]:
    for event in events:
        if event["__typename"] == "ExecutionStepOutputEvent" and event["stepKey"] == RESULT_OP:
            for entry in event["metadataEntries"]:
                if entry["label"] == "urls":
                    return json.loads(entry["jsonString"])
    return []


def _error_message(events: list[dict]) -> str | None:
    step_failures = [e["error"] for e in events if e["__typename"] == "ExecutionStepFailureEvent" and e.get("error")]
    if step_failures:
        return _error_text(step_failures[-1])
    run_failures = [e["message"] for e in events if e["__typename"] == "RunFailureEvent"]
    return run_failures[-1] if run_failures else None


def _error_text(error: dict) -> str:
    """An op's exception arrives wrapped ("Error occurred while executing op"): the cause is the news."""
    message = error["message"].strip()
    if message.startswith(_STEP_ERROR_PREFIX) and error.get("causes"):
        cause = error["causes"][0]["message"].strip()
        return message.removeprefix(_STEP_ERROR_PREFIX).strip() + " " + cause
    return message


def _client_error_text(error: DagsterGraphQLClientError) -> str:
    """dagster-graphql puts the reason in args[1]: text, or a list of config errors."""
    reason = error.args[1] if len(error.args) > 1 else getattr(error, "body", None)
    if isinstance(reason, list):
        return "; ".join(str(item.get("message", item)) if isinstance(item, dict) else str(item) for item in reason)
    return str(reason or error)
