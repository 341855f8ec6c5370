"""A run of the adhoc_export job, seen as a Voucherify export object.

Voucherify's /exports returns {id, object, created_at, status, channel, exported_object,
parameters, result, user_id}; status is SCHEDULED until the file exists, then DONE or ERROR.
A large result is split into chunks: `result.url` is the first chunk (Voucherify's one
file) and `result.urls` lists every chunk. An ERROR export carries `error.message`.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from export_pipelines.naming import ADHOC_CHANNEL_TAG, ADHOC_OBJECT_TAG, ADHOC_USER_TAG

EXPORT_ID_PREFIX = "exp_"
DONE_STATUSES = frozenset({"SUCCESS"})
ERROR_STATUSES = frozenset({"FAILURE", "CANCELED", "CANCELING"})
# Everything else (QUEUED, NOT_STARTED, STARTING, STARTED) is still on its way to a file.
_FAILURE_PREFIX = re.compile(r"^dagster\._core\.definitions\.events\.Failure: ")


class UnknownExportId(ValueError):
    pass


def export_id_for(run_id: str) -> str:
    return EXPORT_ID_PREFIX + uuid.UUID(run_id).hex


def run_id_for(export_id: str) -> str:
    """The run behind an export id; a bare run id is accepted too."""
    text = export_id.removeprefix(EXPORT_ID_PREFIX)
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise UnknownExportId(f"{export_id!r} is not an export id (exp_ followed by 32 hex digits)") from None


def export_status(run_status: str) -> str:
    if run_status in DONE_STATUSES:
        return "DONE"
    if run_status in ERROR_STATUSES:
        return "ERROR"
    return "SCHEDULED"


def parameters_from(request: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters as the client sent them: one order key as text, as Voucherify writes it."""
    parameters = {key: value for key, value in request.items() if key != "exported_object"}
    order = parameters.pop("order", [])
    if order:
        parameters["order"] = order[0] if len(order) == 1 else order
    return parameters


def export_object(
    run_id: str,
    run_status: str,
    created_at: float,
    tags: dict[str, str],
    request: dict[str, Any],
    urls: list[str],
    error: str | None,
) -> dict[str, Any]:
    status = export_status(run_status)
    document: dict[str, Any] = {
        "id": export_id_for(run_id),
        "object": "export",
        "created_at": dt.datetime.fromtimestamp(created_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "status": status,
        "channel": tags.get(ADHOC_CHANNEL_TAG),
        "exported_object": tags.get(ADHOC_OBJECT_TAG, request.get("exported_object")),
        "parameters": parameters_from(request),
        "result": {"url": urls[0], "urls": urls} if status == "DONE" and urls else None,
        "user_id": tags.get(ADHOC_USER_TAG),
    }
    if status == "ERROR":
        message = _FAILURE_PREFIX.sub("", error or f"the run ended {run_status}").strip()
        document["error"] = {"message": message}
    return document
