"""The exports API end to end: a real dagster-webserver launches adhoc_export runs, the client reads them."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from export_pipelines.api.client import ExportApiError, ExportsClient
from export_pipelines.cli import main
from export_pipelines_tests.api.conftest import CUSTOMERS_SPEC, VOUCHERS_SPEC

EXPORT_KEYS = {"id", "object", "created_at", "status", "channel", "exported_object", "parameters", "result", "user_id"}


def query(source_url: str, sql: str) -> list[tuple[str, ...]]:
    """Rows as the CSV writes them: text, NULL as empty."""
    engine = sa.create_engine(source_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text(sql)).all()
    engine.dispose()
    return [tuple("" if value is None else str(value) for value in row) for row in rows]


def csv_rows(path: Path) -> tuple[list[str], list[tuple[str, ...]]]:
    header, *rows = csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
    return header, [tuple(row) for row in rows]


def test_create_poll_done_download(exports_server, tmp_path: Path):
    server, source_url = exports_server
    client = ExportsClient(server.url)
    parameters = {"order": "code", "fields": ["code", "voucher_type"], "filters": {"categories": {"conditions": {"$in": ["postman"]}}}}

    export_id = client.create("voucher", parameters, channel="WEBSITE", user_id="user_g24U")
    scheduled = client.get(export_id)
    finished = client.wait(export_id, timeout=120)
    files = client.download(export_id, tmp_path / "out")

    assert set(scheduled) == EXPORT_KEYS
    assert scheduled["status"] in {"SCHEDULED", "DONE"}
    assert set(finished) == EXPORT_KEYS
    assert finished["id"] == export_id and export_id.startswith("exp_")
    assert finished["object"] == "export"
    assert finished["status"] == "DONE"
    assert finished["channel"] == "WEBSITE" and finished["user_id"] == "user_g24U"
    assert finished["exported_object"] == "voucher"
    assert finished["parameters"] == parameters
    assert finished["created_at"].endswith("Z")
    assert finished["result"]["urls"] == [finished["result"]["url"]]
    expected = query(source_url, "SELECT code, voucher_type FROM vouchers WHERE category IN ('postman') ORDER BY code")
    assert expected, "the demo data has postman vouchers"
    assert [path.name for path in files] == [Path(finished["result"]["url"]).name]
    assert csv_rows(files[0]) == (["code", "voucher_type"], expected)


def test_bad_field_is_an_error_with_its_message(exports_server):
    server, _ = exports_server
    client = ExportsClient(server.url)

    export = client.wait(client.create("voucher", {"fields": ["code", "voucher_typo"]}), timeout=120)

    assert export["status"] == "ERROR"
    assert export["result"] is None
    assert "request: fields[1]" in export["error"]["message"]
    assert "no field 'voucher_typo'" in export["error"]["message"]
    assert "did you mean voucher_type" in export["error"]["message"]


@pytest.mark.parametrize(
    "arguments, problem",
    [
        (["voucher", "--fields", "code,voucher_typo"], "request: fields[1].from: model vouchers has no field 'voucher_typo'; did you mean voucher_type?"),
        (["vouchr", "--fields", "code"], "request: model: unknown model 'vouchr'"),
        (["voucher", "--fields", "code", "--target", "partner_sftp"], "connection 'partner_sftp' is not in connections.yaml"),
    ],
)
def test_cli_create_checks_the_request_before_launching_a_run(exports_server, capsys, arguments, problem):
    server, _ = exports_server
    config = server.home.parent / "config"  # the folder the webserver's code location loads
    client = ExportsClient(server.url)
    before = client.list(limit=200)["total"]
    assert main(["create", *arguments, "--url", server.url, "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"ERROR the export request is invalid (checked against {config}); no export was started:")
    assert problem in out
    assert client.list(limit=200)["total"] == before  # no failed run was left in the history


def test_unknown_parameter_is_refused_at_create(exports_server):
    server, _ = exports_server
    with pytest.raises(ExportApiError, match='unexpected config entry "colour"'):
        ExportsClient(server.url).create("voucher", {"fields": ["code"], "colour": "red"})


def test_large_export_is_split_into_downloadable_chunks(exports_server, tmp_path: Path):
    server, source_url = exports_server
    client = ExportsClient(server.url)
    expected = query(source_url, "SELECT id, email FROM customers ORDER BY id")

    export = client.wait(client.create("customer", {"fields": ["id", "email"], "order": "id", "max_rows_per_file": 7}), timeout=120)
    files = client.download(export["id"], tmp_path)

    assert export["status"] == "DONE"
    assert len(export["result"]["urls"]) == math.ceil(len(expected) / 7) > 1
    assert [path.name for path in files] == [Path(url).name for url in export["result"]["urls"]]
    chunks = [csv_rows(path) for path in files]
    assert all(header == ["id", "email"] for header, _ in chunks)
    assert all(len(rows) == 7 for _, rows in chunks[:-1])
    assert [row for _, rows in chunks for row in rows] == expected


def test_cli_create_status_download(exports_server, tmp_path: Path, capsys):
    server, source_url = exports_server
    url = ["--url", server.url]

    assert main(["create", "voucher", "--fields", "code,voucher_type", "--filter", "categories $in postman", "--order=-code", *url]) == 0
    export_id = capsys.readouterr().out.strip()
    assert main(["download", export_id, "--wait", "--dir", str(tmp_path), *url]) == 0
    (downloaded,) = [Path(line) for line in capsys.readouterr().out.split()]
    assert main(["status", export_id, *url]) == 0
    export = json.loads(capsys.readouterr().out)

    assert export["channel"] == "CLI" and export["status"] == "DONE"
    assert export["parameters"]["order"] == "-code"
    expected = query(source_url, "SELECT code, voucher_type FROM vouchers WHERE category IN ('postman') ORDER BY code DESC")
    assert csv_rows(downloaded) == (["code", "voucher_type"], expected)


def test_list_shows_instance_history(exports_server, monkeypatch, capsys):
    """A spec's job run through the webserver appears in the exports list with its status and file size."""
    server, _ = exports_server
    launcher = DagsterGraphQLClient("127.0.0.1", port_number=int(server.url.rsplit(":", 1)[1]))
    run_id = launcher.submit_job_execution(f"{CUSTOMERS_SPEC['name']}_job")
    deadline = time.monotonic() + 120
    while launcher.get_run_status(run_id) not in {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    folder = server.home / "storage" / "downloads" / CUSTOMERS_SPEC["name"]
    expected_bytes = sum(path.stat().st_size for path in folder.iterdir())
    monkeypatch.setenv("DAGSTER_HOME", str(server.home))
    config = server.home.parent / "config"

    assert main(["list", "--config", str(config)]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert main(["list", "--config", str(config), "--search", "TEAM:CRM"]) == 0
    searched = capsys.readouterr().out.splitlines()[1:]

    assert lines[CUSTOMERS_SPEC["name"]][-4:] == ["-", "SUCCESS", *lines[CUSTOMERS_SPEC["name"]][-2:-1], str(expected_bytes)]
    assert lines[VOUCHERS_SPEC["name"]][-4:] == ["stopped", "-", "-", "-"]
    assert [line.split()[0] for line in searched] == [VOUCHERS_SPEC["name"]]


def test_list_of_exports_newest_first(exports_server):
    server, _ = exports_server
    client = ExportsClient(server.url)
    first = client.create("customer", {"fields": ["id"]}, channel="API")
    second = client.create("customer", {"fields": ["email"]}, channel="API")

    listed = client.list(limit=2, channel="API")

    assert listed["object"] == "list" and listed["data_ref"] == "exports" and listed["total"] == 2
    assert [export["id"] for export in listed["exports"]] == [second, first]
    assert all(set(export) <= EXPORT_KEYS | {"error"} for export in listed["exports"])
    # Finished before the session's webserver stops.
    for export_id in (first, second):
        client.wait(export_id, timeout=120)
