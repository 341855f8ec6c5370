"""S3 delivery through dagster-aws's S3Resource against moto's server: checksums, multipart, SSE, URLs."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import urllib.request

import pytest

from export_pipelines.targets.base import DeliveryError
from export_pipelines.targets.remote import CLOCK_SLACK_SECONDS
from export_pipelines_tests.servers.fixtures import s3_client
from export_pipelines_tests.targets.delivery_helpers import Log, export_file_name, local_file, make_target


@pytest.fixture
def aws_credentials(monkeypatch):
    monkeypatch.setenv("EXPORTS_AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("EXPORTS_AWS_SECRET_ACCESS_KEY", "testing")


def s3_connection(endpoint: str, bucket: str, **changes) -> dict:
    connection = {
        "type": "s3",
        "bucket": bucket,
        "region_name": "eu-central-1",
        "endpoint_url": endpoint,
        "access_key_id": {"env": "EXPORTS_AWS_ACCESS_KEY_ID"},
        "secret_access_key": {"env": "EXPORTS_AWS_SECRET_ACCESS_KEY"},
        "multipart_threshold_mb": 5,
    }
    return {**connection, **changes}


def test_small_file_is_one_object_verified_by_sha256(moto_endpoint, s3_bucket, tmp_path, aws_credentials):
    content = b"id,amount\r\n1,12.50\r\n"
    connection = s3_connection(moto_endpoint, s3_bucket, prefix="loyalty/")
    delivery = make_target(connection, "/daily/").deliver([local_file(tmp_path, "probe.csv", content)], Log())
    body = s3_client(moto_endpoint).get_object(Bucket=s3_bucket, Key="loyalty/daily/probe.csv")["Body"].read()
    assert body == content
    [file] = delivery.files
    assert file.location == f"s3://{s3_bucket}/loyalty/daily/probe.csv"
    assert file.verified_by == "size+sha256" and file.url is None


def test_large_file_goes_in_parts_and_the_composite_checksum_is_verified(moto_endpoint, s3_bucket, tmp_path, aws_credentials):
    content = os.urandom(11 * 1024 * 1024 + 17)  # three parts of 5 MiB at most
    delivery = make_target(s3_connection(moto_endpoint, s3_bucket), "big").deliver([local_file(tmp_path, "probe.csv", content)], Log())
    client = s3_client(moto_endpoint)
    body = client.get_object(Bucket=s3_bucket, Key="big/probe.csv")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(content).hexdigest()
    parts = client.head_object(Bucket=s3_bucket, Key="big/probe.csv", PartNumber=1)
    assert parts.get("PartsCount") == 3
    assert delivery.files[0].verified_by == "size+sha256"
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_server_side_encryption_and_presigned_url(moto_endpoint, s3_bucket, tmp_path, aws_credentials):
    content = b"voucher,status\r\nV-1,redeemed\r\n"
    connection = s3_connection(moto_endpoint, s3_bucket, server_side_encryption="AES256", presigned_url_seconds=600)
    delivery = make_target(connection, "").deliver([local_file(tmp_path, "probe.csv", content)], Log())
    head = s3_client(moto_endpoint).head_object(Bucket=s3_bucket, Key="probe.csv")
    assert head["ServerSideEncryption"] == "AES256"
    url = delivery.files[0].url
    assert url.startswith(f"{moto_endpoint}/{s3_bucket}/probe.csv?")
    assert "X-Amz-Expires=600" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == content


def test_retention_and_manifest_on_s3(moto_endpoint, s3_bucket, tmp_path, aws_credentials):
    client = s3_client(moto_endpoint)
    client.put_object(Bucket=s3_bucket, Key="out/partner_notes.txt", Body=b"not ours")
    names = [export_file_name("probe", dt.datetime(2026, 11, day, 2, tzinfo=dt.UTC)) for day in (20, 21, 22)]
    for index, name in enumerate(names):
        if index:
            # S3 keeps no settable modification time: the next run starts past the retention's clock slack.
            time.sleep(CLOCK_SLACK_SECONDS + 1.5)
        target = make_target(s3_connection(moto_endpoint, s3_bucket), "out", keep_last=2, finish_with="manifest")
        target.deliver([local_file(tmp_path / str(index), name, b"%d\r\n" % index)], Log())
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"])
    kept = names[1:]
    expected = sorted(
        ["out/partner_notes.txt", *(f"out/{n}" for n in kept), *(f"out/{n.removesuffix('.csv')}.manifest.json" for n in kept)]
    )
    assert keys == expected


def test_missing_credentials_variable_is_named(moto_endpoint, s3_bucket, tmp_path, monkeypatch):
    monkeypatch.delenv("EXPORTS_AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.setenv("EXPORTS_AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(DeliveryError, match="EXPORTS_AWS_ACCESS_KEY_ID, which is not set"):
        make_target(s3_connection(moto_endpoint, s3_bucket), "x").deliver([local_file(tmp_path, "a.csv", b"x")], Log())


def test_unknown_bucket_fails_before_any_upload(moto_endpoint, tmp_path, aws_credentials):
    with pytest.raises(DeliveryError, match="failed while connecting"):
        make_target(s3_connection(moto_endpoint, "no-such-bucket-here"), "x").deliver([local_file(tmp_path, "a.csv", b"x")], Log())
