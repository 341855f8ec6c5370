"""Stage files in an object store (EXPORT_WORK_URL=s3://...): written and read batch by batch through
pyarrow's filesystem layer against moto's real S3 server, a whole file copied to this machine with one
streamed GET, and an export's files the same bytes as with a local work folder."""

from __future__ import annotations

import os
import re

import pyarrow as pa
import pytest

from export_pipelines.stages.stage_files import link_stage_file, read_batches, read_schema, row_count, stage_writer
from export_pipelines.stages.work_location import copy_file, remove_tree, work_root_from_environment
from export_pipelines.targets.registry import downloads_folder
from export_pipelines_tests.conftest import run_export
from export_pipelines_tests.sample_data import create_sample_tables
from export_pipelines_tests.servers.fixtures import s3_client
from export_pipelines_tests.servers.network import HOST

SPEC = {"name": "work_customers", "model": "customers", "fields": ["id", "email", "name"], "order": ["id"], "file_name": "customers.csv"}


@pytest.fixture
def s3_work(moto_endpoint, s3_bucket, monkeypatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return f"s3://{s3_bucket}/work"


def _keys(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = s3_client(endpoint)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


def test_a_stage_file_in_the_object_store_is_written_and_read_batch_by_batch(s3_work, moto_endpoint, s3_bucket, tmp_path):
    location = f"{s3_work}/run1/export/extract.arrow"
    schema = pa.schema([("id", pa.int64()), ("text", pa.string())])
    with stage_writer(location, schema) as writer:
        writer.write_batch(pa.record_batch([[1, 2, 3], ["a", None, "ü\r\n"]], schema=schema))
        writer.write_batch(pa.record_batch([[4], ["d"]], schema=schema))
    # The object is there for any other process, and it is an Arrow IPC file (its magic bytes).
    stored = _keys(moto_endpoint, s3_bucket)
    assert list(stored) == ["work/run1/export/extract.arrow"]
    assert stored["work/run1/export/extract.arrow"][:6] == b"ARROW1"

    assert [batch.to_pylist() for batch in read_batches(location, 2)] == [
        [{"id": 1, "text": "a"}, {"id": 2, "text": None}],
        [{"id": 3, "text": "ü\r\n"}],
        [{"id": 4, "text": "d"}],
    ]
    assert read_schema(location) == schema and row_count(location) == 4

    link_stage_file(location, f"{s3_work}/run1/export/mapped.arrow")
    copy_file(f"{s3_work}/run1/export/mapped.arrow", str(tmp_path / "local.arrow"))
    assert (tmp_path / "local.arrow").read_bytes() == stored["work/run1/export/extract.arrow"]
    remove_tree(f"{s3_work}/run1/export", keep=s3_work)
    # pyarrow keeps an emptied folder's parent as an empty marker object: the work root's, nothing of the run.
    assert _keys(moto_endpoint, s3_bucket) == {"work/": b""}


def test_a_file_larger_than_a_read_comes_from_the_object_store_in_one_get_byte_for_byte(
    s3_work, moto_endpoint, s3_bucket, proxy_to, tmp_path, monkeypatch
):
    # Over 2 MiB of random bytes: more than one 1 MiB read, pyarrow's and this code's, and no read's multiple.
    content = os.urandom(2 * 1024 * 1024 + 12345)
    key = "work/run1/export/files/customers.csv"
    s3_client(moto_endpoint).put_object(Bucket=s3_bucket, Key=key, Body=content)
    proxy = proxy_to(int(moto_endpoint.rsplit(":", 1)[1]))
    proxy.listen()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{HOST}:{proxy.port}")

    copy_file(f"{s3_work}/run1/export/files/customers.csv", str(tmp_path / "fetched" / "customers.csv"))

    assert (tmp_path / "fetched" / "customers.csv").read_bytes() == content
    # What reached the server: one GET of the object, whole (no Range header), and nothing else.
    requests = [
        (method, path.split(b"?")[0], b"\r\nrange:" in headers.lower())
        for heard in proxy.heard()
        for method, path, headers in re.findall(rb"([A-Z]+) (\S+) HTTP/1\.1(\r\n.*?)\r\n\r\n", heard, re.S)
    ]
    assert requests == [(b"GET", f"/{s3_bucket}/{key}".encode(), False)]


def test_an_export_with_its_work_folder_in_the_object_store_leaves_its_stage_files_there(
    s3_work, moto_endpoint, s3_bucket, tmp_path, monkeypatch
):
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    local = run_export(SPEC, source, tmp_path / "local")
    expected = local.files["customers.csv"]

    monkeypatch.setenv("EXPORT_WORK_URL", s3_work + "/")
    assert work_root_from_environment() == s3_work
    # The upload fails (a file where the download folder belongs): the earlier steps' files stay for a rerun.
    blocked = downloads_folder(tmp_path / "remote" / "instance" / "storage", "work_customers")
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    remote = run_export(SPEC, source, tmp_path / "remote", raise_on_error=False)
    assert not remote.result.success
    run_id = remote.result.run_id
    stored = _keys(moto_endpoint, s3_bucket)
    prefix = f"work/{run_id}/work_customers/"
    # The lines were formatted while extracting (lines_alongside.py), so map wrote no mapped.arrow.
    assert sorted(stored) == [prefix + "extract.arrow", prefix + "files/customers.csv", prefix + "lines.arrow"]
    assert stored[prefix + "files/customers.csv"] == expected
    # Nothing of the stage files was written to the local work folder, only the file being delivered.
    local_work = tmp_path / "remote" / "instance" / "storage" / "export_work"
    assert sorted(p.relative_to(local_work).as_posix() for p in local_work.rglob("*") if p.is_file()) == [
        f"{run_id}/work_customers/files/customers.csv"
    ]

    blocked.unlink()
    monkeypatch.setenv("EXPORT_WORK_URL", s3_work)
    delivered = run_export(SPEC, source, tmp_path / "delivered")
    assert delivered.files["customers.csv"] == expected
    # Delivered: the run's work files are gone from the object store too.
    assert not [key for key in _keys(moto_endpoint, s3_bucket) if f"/{delivered.result.run_id}/" in key]
    # ... and no empty folder of the run is left in the local work folder.
    local_work = tmp_path / "delivered" / "instance" / "storage" / "export_work"
    assert not local_work.exists() or list(local_work.iterdir()) == []


@pytest.mark.parametrize("value", ["/srv/work", "s3://", "gs://bucket/work"])
def test_a_work_url_that_is_not_an_s3_location_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("EXPORT_WORK_URL", value)
    with pytest.raises(ValueError, match=r"^EXPORT_WORK_URL=.*: write s3://bucket/prefix, or leave it unset"):
        work_root_from_environment()
