"""Dagster run facts -> Voucherify's export object, without a server."""

from __future__ import annotations

import pytest

from export_pipelines.api.export_object import UnknownExportId, export_id_for, export_object, run_id_for
from export_pipelines.naming import ADHOC_CHANNEL_TAG, ADHOC_OBJECT_TAG, ADHOC_USER_TAG

RUN_ID = "0b6f1b1e-33a4-4e0c-9a43-5d1c2f7e8a90"
REQUEST = {"exported_object": "redemption", "fields": ["id", "date"], "order": ["-created_at"], "filters": {}}
TAGS = {ADHOC_CHANNEL_TAG: "API", ADHOC_OBJECT_TAG: "redemption", ADHOC_USER_TAG: "user_1"}
# 2017-02-24T13:10:50.250Z, Voucherify's example instant
CREATED = 1487941850.25


@pytest.mark.parametrize(
    ("run_status", "status"),
    [
        ("QUEUED", "SCHEDULED"),
        ("NOT_STARTED", "SCHEDULED"),
        ("STARTING", "SCHEDULED"),
        ("STARTED", "SCHEDULED"),
        ("SUCCESS", "DONE"),
        ("FAILURE", "ERROR"),
        ("CANCELING", "ERROR"),
        ("CANCELED", "ERROR"),
    ],
)
def test_status_follows_the_run(run_status: str, status: str):
    assert export_object(RUN_ID, run_status, CREATED, TAGS, REQUEST, [], "boom")["status"] == status


def test_done_export_is_voucherify_shaped():
    urls = ["file:///a/part001.csv", "file:///a/part002.csv"]

    assert export_object(RUN_ID, "SUCCESS", CREATED, TAGS, REQUEST, urls, None) == {
        "id": "exp_0b6f1b1e33a44e0c9a435d1c2f7e8a90",
        "object": "export",
        "created_at": "2017-02-24T13:10:50.250Z",
        "status": "DONE",
        "channel": "API",
        "exported_object": "redemption",
        "parameters": {"fields": ["id", "date"], "order": "-created_at", "filters": {}},
        "result": {"url": "file:///a/part001.csv", "urls": urls},
        "user_id": "user_1",
    }


def test_error_export_carries_the_message_without_dagster_class_names():
    export = export_object(RUN_ID, "FAILURE", CREATED, TAGS, REQUEST, [], "dagster._core.definitions.events.Failure: bad field")

    assert export["result"] is None
    assert export["error"] == {"message": "bad field"}


def test_export_ids_map_back_to_run_ids():
    assert run_id_for(export_id_for(RUN_ID)) == RUN_ID
    assert run_id_for(RUN_ID) == RUN_ID
    with pytest.raises(UnknownExportId, match="exp_nope"):
        run_id_for("exp_nope")
