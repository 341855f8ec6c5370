"""The download target in an object store (EXPORT_DOWNLOADS_STORE_URL=s3://bucket/prefix) against moto's
real S3 server: the local download's bytes, the URL recorded, the rejected-rows list beside the files,
ownership, the exports API and CLI and serve-downloads reading the store, and errors naming the export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import sqlite3
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from export_pipelines.adhoc.download_server import serve_downloads
from export_pipelines.adhoc.urls import file_urls
from export_pipelines.api.client import ExportApiError, ExportsClient
from export_pipelines.cli import main
from export_pipelines.demo.generator import generate_demo_database
from export_pipelines.stages.name_patterns import template_pattern
from export_pipelines.targets.base import DeliveredFile
from export_pipelines.targets.download_store import DESTINATION, download_store_target, downloads_store_from_environment
from export_pipelines.targets.remote import DeliveryOptions
from export_pipelines_tests.conftest import require_service, run_export, write_config
from export_pipelines_tests.sample_data import CUSTOMERS, create_sample_tables
from export_pipelines_tests.servers.dagster_webserver import start_webserver, webserver_executable
from export_pipelines_tests.servers.fixtures import s3_client
from export_pipelines_tests.servers.network import HOST
from export_pipelines_tests.targets.delivery_helpers import Log, local_file

EXPORT = "store_customers"
# Two customers whose created_at is no time: rows the export skips and lists (max_bad_rows).
BAD_IDS = (901, 902)
SPEC = {
    "name": EXPORT,
    "model": "customers",
    "fields": ["id", "email", "name", "created_at"],
    "order": ["id"],
    "file_name": "customers_{part:03d}.csv",
    "max_rows_per_file": 2,
    "max_bad_rows": 2,
}


@pytest.fixture
def store(moto_endpoint, s3_bucket, monkeypatch) -> str:
    """The store's URL; the AWS variables point every client of this process (and its children) at moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return f"s3://{s3_bucket}/downloads"


@pytest.fixture
def source(tmp_path) -> str:
    path = tmp_path / "source.sqlite"
    create_sample_tables(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:
        for bad_id in BAD_IDS:
            connection.execute(
                "INSERT INTO customers (id, source_id, email, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (bad_id, f"C-{bad_id}", f"bad{bad_id}@example.com", "31/12/2024 25:61", "2024-01-01 00:00:00"),
            )
    return f"sqlite:///{path}"


@pytest.fixture
def clean_source(tmp_path) -> str:
    """The sample rows alone: no rejected-rows list to keep, so the delivery itself meets the store."""
    path = tmp_path / "clean.sqlite"
    create_sample_tables(f"sqlite:///{path}")
    return f"sqlite:///{path}"


def objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = s3_client(endpoint)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


def test_a_download_export_in_the_store_has_the_local_downloads_bytes_and_records_its_urls(
    store, moto_endpoint, s3_bucket, source, tmp_path, monkeypatch
):
    local = run_export(SPEC, source, tmp_path / "local")
    expected = local.files
    expected_rejected = Path(local.metadata["rejected_file"]).read_bytes()
    # The local download itself, against the sample rows: parts of two rows, the bad rows left out.
    rows = [row for content in expected.values() for row in list(csv.reader(io.StringIO(content.decode(), newline="")))[1:]]
    assert [int(row[0]) for row in rows] == sorted(c["id"] for c in CUSTOMERS)
    assert sorted(expected) == [f"customers_{part:03d}.csv" for part in range(1, len(expected) + 1)] and len(expected) > 1

    monkeypatch.setenv("EXPORT_DOWNLOADS_STORE_URL", store + "/")
    remote = run_export(SPEC, source, tmp_path / "remote")

    assert remote.result.success
    folder = f"{store}/{EXPORT}"
    prefix = f"downloads/{EXPORT}/"
    assert objects(moto_endpoint, s3_bucket) == {
        **{prefix + name: content for name, content in expected.items()},
        prefix + "customers_001.rejected.csv": expected_rejected,
    }
    assert remote.metadata["location"] == folder
    assert remote.metadata["download_urls"] == [f"{folder}/{name}" for name in sorted(expected)]
    assert remote.metadata["rejected_file"] == f"{folder}/customers_001.rejected.csv"
    table = {record.data["name"]: record.data for record in remote.metadata["files"].records}
    assert {name: (row["location"], row["verified_by"]) for name, row in table.items()} == {
        name: (f"{folder}/{name}", "size+sha256") for name in expected
    }
    # Nothing was kept on this machine's disk.
    assert not (tmp_path / "remote" / "instance" / "storage" / "downloads").exists()


def test_a_set_written_again_in_the_store_touches_only_its_own_files(store, moto_endpoint, s3_bucket, runs, tmp_path):
    """The ownership rules of every target: this export's folder only, names its template produces,
    temporaries carrying its runs' ids once those runs are over."""
    client = s3_client(moto_endpoint)
    over, going = runs.started(), runs.started()
    runs.fail(over)
    others = {
        "downloads/probe/probe_20261122_001.csv": b"an earlier run's set: download folders keep every run's",
        "downloads/probe/notes.csv": b"put there by hand",
        "downloads/probe/probe_20261123_001.rejected.csv": b"the set's rejected-rows list",
        f"downloads/probe/.probe_eu.{over}.probe_eu_20261123_001.csv.part": b"another export's temporary",
        f"downloads/probe/.probe.{going}.probe_20261123_001.csv.part": b"a temporary of a run still going",
        "downloads/probe_eu/probe_20261123_003.csv": b"another export's folder",
        "downloads/probe_20261123_003.csv": b"the store's root",
    }
    mine = {
        "downloads/probe/probe_20261123_003.csv": b"a part an earlier run of this set left",
        f"downloads/probe/.probe.{over}.probe_20261123_001.csv.part": b"a temporary of a run that is over",
    }
    for key, body in {**others, **mine}.items():
        client.put_object(Bucket=s3_bucket, Key=key, Body=body)
    options = DeliveryOptions(
        export="probe",
        connection="EXPORT_DOWNLOADS_STORE_URL",
        keep_last=None,
        finish_with=None,
        own_files=template_pattern("{export}_{run_time:%Y%m%d}_{part:03d}.{ext}", "probe", "customers", "csv"),
        ext="csv",
        run_time=dt.datetime.now(dt.UTC),
        run_id=runs.started(),
        run_is_over=runs.is_over,
        destination=DESTINATION,
    )
    files = [local_file(tmp_path, f"probe_20261123_00{part}.csv", b"id\r\n%d\r\n" % part) for part in (1, 2)]

    delivery = download_store_target(store, options).deliver(files, Log())

    assert objects(moto_endpoint, s3_bucket) == {
        **others,
        "downloads/probe/probe_20261123_001.csv": b"id\r\n1\r\n",
        "downloads/probe/probe_20261123_002.csv": b"id\r\n2\r\n",
    }
    assert delivery.retired == ["probe_20261123_003.csv"]
    assert delivery.swept == [f".probe.{over}.probe_20261123_001.csv.part"]
    assert [file.url for file in delivery.files] == [f"{store}/probe/probe_20261123_00{part}.csv" for part in (1, 2)]


def test_a_template_without_exact_shapes_delivers_to_the_store_owning_no_file(store, moto_endpoint, s3_bucket, source, tmp_path, monkeypatch):
    """Without keep_last a template may hold a token of no exact shape (%5Y): it is delivered, and
    nothing in the folder counts as the export's (so nothing is ever deleted)."""
    monkeypatch.setenv("EXPORT_DOWNLOADS_STORE_URL", store)
    spec = {**SPEC, "file_name": "{export}_{run_time:%5Y}_{part:03d}.{ext}", "max_bad_rows": 2}
    s3_client(moto_endpoint).put_object(Bucket=s3_bucket, Key=f"downloads/{EXPORT}/{EXPORT}_02000_009.csv", Body=b"kept")

    run = run_export(spec, source, tmp_path)

    assert run.result.success, run.result.get_step_failure_events()
    stored = objects(moto_endpoint, s3_bucket)
    assert sorted(stored) == sorted(
        [f"downloads/{EXPORT}/{name}" for name in run.metadata["file_names"]]
        + [f"downloads/{EXPORT}/{EXPORT}_02000_009.csv", f"downloads/{EXPORT}/{run.metadata['file_names'][0].split('.')[0]}.rejected.csv"]
    )


def failure_message(run) -> str:
    [failure] = run.result.get_step_failure_events()
    return failure.step_failure_data.error.message


def test_a_missing_bucket_fails_the_upload_at_once_naming_the_export_and_the_store(store, clean_source, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPORT_DOWNLOADS_STORE_URL", "s3://no-such-download-store/downloads")
    run = run_export({**SPEC, "retries": {"max_retries": 3, "within": "2m"}}, clean_source, tmp_path, raise_on_error=False)
    message = failure_message(run)
    assert (
        f"For export {EXPORT}, delivery to the download store EXPORT_DOWNLOADS_STORE_URL "
        f"(s3://no-such-download-store/downloads/{EXPORT}) failed while connecting: "
        "bucket no-such-download-store does not exist (HeadBucket: 404 Not Found)"
    ) in message
    assert "Not retried" in message and "EXPORT_DOWNLOADS_STORE_URL's for the download store" in message


def test_a_store_that_cannot_keep_the_rejected_rows_fails_the_run_before_the_partner_gets_anything(
    store, moto_endpoint, s3_bucket, source, tmp_path, monkeypatch
):
    """The list is kept before delivering: a failed run means nothing delivered, never a partner
    holding files of a run recorded as failed (with no rows, no files)."""
    monkeypatch.setenv("EXPORT_DOWNLOADS_STORE_URL", "s3://no-such-download-store/downloads")
    connections = {
        "connections": {
            "partner_bucket": {"type": "s3", "bucket": s3_bucket, "region_name": "eu-central-1", "endpoint_url": moto_endpoint}
        }
    }
    spec = {**SPEC, "target": {"connection": "partner_bucket", "path": "inbox/"}}

    run = run_export({**spec, "retries": {"max_retries": 3, "within": "2m"}}, source, tmp_path, connections=connections, raise_on_error=False)

    assert not run.result.success
    message = failure_message(run)
    assert (
        f"For export {EXPORT}, keeping customers_001.rejected.csv in the download store EXPORT_DOWNLOADS_STORE_URL "
        f"(s3://no-such-download-store/downloads/{EXPORT}/customers_001.rejected.csv) failed: "
        "bucket no-such-download-store does not exist (HeadBucket: 404 Not Found)"
    ) in message
    assert "Not retried" in message
    assert objects(moto_endpoint, s3_bucket) == {}


def test_missing_credentials_fail_the_upload_naming_the_export_and_what_to_set(store, clean_source, tmp_path, monkeypatch):
    # No credentials anywhere in the AWS chain (moto checks none, so the negative case is their absence).
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no_credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no_config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("EXPORT_DOWNLOADS_STORE_URL", store)
    run = run_export(SPEC, clean_source, tmp_path, raise_on_error=False)
    message = failure_message(run)
    assert f"For export {EXPORT}, delivery to the download store EXPORT_DOWNLOADS_STORE_URL ({store}/{EXPORT})" in message
    assert "Unable to locate credentials" in message and "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in message


@pytest.mark.parametrize(
    "value, says",
    [
        ("http://127.0.0.1:8765", "serve-downloads` publishes them is EXPORT_DOWNLOADS_URL"),
        ("s3://", "write s3://bucket/prefix"),
        ("s3://Exports_Bucket/downloads", "is not an S3 bucket name"),
        # Writer and reader would disagree: S3 keeps the empty folder name in each key, URLs drop it.
        ("s3://store//dl", "the prefix has an empty folder name ('//')"),
        ("s3://store/dl//x/", "the prefix has an empty folder name ('//')"),
    ],
)
def test_a_store_url_that_is_no_s3_location_is_refused_naming_the_variable(monkeypatch, value, says):
    monkeypatch.setenv("EXPORT_DOWNLOADS_STORE_URL", value)
    with pytest.raises(ValueError, match=r"^EXPORT_DOWNLOADS_STORE_URL=") as refused:
        downloads_store_from_environment()
    assert says in str(refused.value)


@pytest.mark.parametrize("variable", ["EXPORT_DOWNLOADS_STORE_URL", "EXPORT_WORK_URL"])
@pytest.mark.parametrize(
    "value, shown",
    [
        ("http://AKIAKEY:s3cr3t/x@y@host/downloads", "http://***@host/downloads"),
        ("s3://AKIAKEY:s3cr3t/x@store/downloads", "s3://***@store/downloads"),
        ("s3://AKIAKEY:s3cr3t@store/downloads", "s3://***@store/downloads"),
    ],
)
def test_a_store_url_with_credentials_is_refused_without_showing_them(monkeypatch, tmp_path, capsys, variable, value, shown):
    """At load, in `validate` and in `run` (one line, no traceback): the value shown without its user
    name and password, whatever characters the password holds."""
    from export_pipelines.code_location import environment_problems

    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    [problem] = environment_problems()
    assert problem.startswith(f"{variable}={shown!r}")

    assert main(["validate"]) == 1
    validated = capsys.readouterr().out
    assert f"ERROR {problem}\n" in validated and "1 setting(s) to fix" in validated
    assert main(["run", "any_export"]) == 1
    ran = capsys.readouterr()
    assert ran.out == f"ERROR {problem}\n" and "Traceback" not in ran.err
    for said in (problem, validated, ran.out, ran.err):
        assert "AKIAKEY" not in said and "s3cr3t" not in said


@pytest.fixture
def downloads_server(store):
    """`export-pipelines serve-downloads` over the store, in a thread."""
    server = serve_downloads(store, HOST, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{HOST}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_exports_api_cli_and_download_server_read_a_download_from_the_store(
    store, moto_endpoint, s3_bucket, downloads_server, tmp_path, monkeypatch, capsys
):
    if webserver_executable() is None:
        require_service("dagster-webserver is not installed")
    source_url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    generate_demo_database(source_url, customers=30, seed=7)
    monkeypatch.setenv("EXPORT_DOWNLOADS_STORE_URL", store)
    config = write_config(tmp_path / "config", [])
    server = start_webserver(tmp_path, {"EXPORT_PIPELINES_CONFIG": str(config), "EXPORT_SOURCE_URL": source_url})
    try:
        url = ["--url", server.url]
        assert main(["create", "voucher", "--fields", "code,voucher_type", "--order=code", "--max-rows-per-file", "5", *url]) == 0
        export_id = capsys.readouterr().out.strip()
        assert main(["download", export_id, "--wait", "--dir", str(tmp_path / "cli"), *url]) == 0
        downloaded = [Path(line) for line in capsys.readouterr().out.split()]
        export = ExportsClient(server.url).get(export_id)
    finally:
        server.stop()

    assert export["status"] == "DONE", export
    with sqlite3.connect(tmp_path / "source.sqlite") as connection:
        expected = [(code, kind or "") for code, kind in connection.execute("SELECT code, voucher_type FROM vouchers ORDER BY code")]
    chunks = [list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))) for path in downloaded]
    assert all(chunk[0] == ["code", "voucher_type"] for chunk in chunks) and len(chunks) > 1
    assert [tuple(row) for chunk in chunks for row in chunk[1:]] == expected
    # Each chunk's URL is its object in the store, and the CLI fetched exactly its bytes.
    stored = objects(moto_endpoint, s3_bucket)
    urls = export["result"]["urls"]
    assert [url.rsplit("/", 1)[1] for url in urls] == [path.name for path in downloaded]
    assert all(url.startswith(f"{store}/adhoc_") for url in urls)
    assert [stored[url.removeprefix(f"s3://{s3_bucket}/")] for url in urls] == [path.read_bytes() for path in downloaded]

    # serve-downloads publishes the store: EXPORT_DOWNLOADS_URL turns each chunk's URL into its own.
    delivered = [DeliveredFile(path.name, 0, 0, "", url, url=url) for path, url in zip(downloaded, urls)]
    for path, http_url in zip(downloaded, file_urls(delivered, downloads_server, download_folder=True)):
        assert http_url.startswith(f"{downloads_server}/adhoc_")
        with urllib.request.urlopen(http_url, timeout=10) as response:
            assert response.read() == path.read_bytes()
            assert response.headers["Content-Length"] == str(path.stat().st_size)
        with urllib.request.urlopen(urllib.request.Request(http_url, method="HEAD"), timeout=10) as response:
            assert response.read() == b"" and response.headers["Content-Length"] == str(path.stat().st_size)
    folder = urls[0].removeprefix(f"{store}/").split("/")[0]
    s3_client(moto_endpoint).put_object(Bucket=s3_bucket, Key=f"downloads/{folder}/.{folder}.{uuid.uuid4()}.x.csv.part", Body=b"x")
    hidden = [key.rsplit("/", 1)[1] for key in objects(moto_endpoint, s3_bucket) if key.rsplit("/", 1)[1].startswith(".")]
    for refused in (f"{downloads_server}/", f"{downloads_server}/{folder}/", f"{downloads_server}/{folder}/{hidden[0]}",
                    f"{downloads_server}/{folder}/no_such_file.csv", f"{downloads_server}/{folder}/../../etc/passwd"):
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(refused, timeout=10)


def test_a_store_that_cannot_be_read_is_a_server_error_and_a_client_error_naming_the_url(store, tmp_path):
    server = serve_downloads("s3://no-such-download-store/downloads", HOST, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(urllib.error.HTTPError, match="502") as refused:
            urllib.request.urlopen(f"http://{HOST}:{server.server_address[1]}/adhoc_x/x.csv", timeout=10)
        # The store's own words stay in the server's log.
        assert b"NoSuchBucket" not in refused.value.read()
    finally:
        server.shutdown()
        server.server_close()

    missing = f"{store}/adhoc_x/x.csv"
    with pytest.raises(ExportApiError, match=f"^cannot read {missing}: no object {missing}. This client reads s3:// URLs"):
        ExportsClient("http://127.0.0.1:3000")._fetch(missing, tmp_path)
    assert list(tmp_path.iterdir()) == []


def adhoc_options(runs, export: str) -> DeliveryOptions:
    return DeliveryOptions(
        export=export,
        connection="EXPORT_DOWNLOADS_STORE_URL",
        keep_last=None,
        finish_with=None,
        own_files=template_pattern("part_{part:03d}.csv", export, "customers", "csv"),
        ext="csv",
        run_time=dt.datetime.now(dt.UTC),
        run_id=runs.started(),
        run_is_over=runs.is_over,
        destination=DESTINATION,
    )


def test_download_saves_each_part_under_its_own_name_with_a_hash_or_question_mark_in_the_key(
    store, moto_endpoint, s3_bucket, runs, tmp_path
):
    """An s3:// URL is a bucket and a raw key: `#` and `?` in the store's prefix (or an S3
    connection's path) are part of the key, so three parts stay three local files."""
    hashed_store = f"s3://{s3_bucket}/dl#2"
    parts = {f"part_00{part}.csv": b"id\r\n%d\r\n" % part for part in (1, 2, 3)}
    files = [local_file(tmp_path / "work", name, content) for name, content in parts.items()]
    delivery = download_store_target(hashed_store, adhoc_options(runs, "adhoc_hash")).deliver(files, Log())
    urls = file_urls(delivery.files, None, download_folder=True)
    assert urls == [f"{hashed_store}/adhoc_hash/{name}" for name in parts]

    saved = ExportsClient("http://127.0.0.1:3000").fetch_all(urls, tmp_path / "store")

    assert {path.name: path.read_bytes() for path in saved} == parts
    assert sorted(path.name for path in (tmp_path / "store").iterdir()) == sorted(parts)

    # An S3 connection's path with both (its files' s3:// addresses, no presigning).
    client = s3_client(moto_endpoint)
    for name, content in parts.items():
        client.put_object(Bucket=s3_bucket, Key=f"q?x#y/{name}", Body=content)
    saved = ExportsClient("http://127.0.0.1:3000").fetch_all([f"s3://{s3_bucket}/q?x#y/{name}" for name in parts], tmp_path / "connection")
    assert {path.name: path.read_bytes() for path in saved} == parts


def test_download_refuses_two_urls_that_would_be_one_local_file(store, moto_endpoint, s3_bucket, tmp_path):
    client = s3_client(moto_endpoint)
    client.put_object(Bucket=s3_bucket, Key="a/x.csv", Body=b"first")
    client.put_object(Bucket=s3_bucket, Key="b/x.csv", Body=b"second")
    urls = [f"s3://{s3_bucket}/a/x.csv", f"s3://{s3_bucket}/b/x.csv"]

    with pytest.raises(ExportApiError, match=r"/a/x\.csv and s3://.*/b/x\.csv would both be saved as x\.csv; nothing was downloaded"):
        ExportsClient("http://127.0.0.1:3000").fetch_all(urls, tmp_path / "out")
    assert not (tmp_path / "out").exists()
