"""S3 (and S3-compatible stores) through dagster-aws's S3Resource.

An object appears whole on PUT or on CompleteMultipartUpload, so there is no temporary
name; what a killed run can leave is an unfinished multipart upload, which the sweep aborts.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from dagster_aws.s3 import S3Resource

from export_pipelines.spec.connections import S3Connection
from export_pipelines.targets.base import DeliveryError, LocalFile
from export_pipelines.targets.remote import RemoteEntry, RemoteSession

MIB = 1024 * 1024


def object_key(connection: S3Connection, folder: str, name: str) -> str:
    parts = [part.strip("/") for part in (connection.prefix, folder) if part.strip("/")]
    return "/".join([*parts, name])


def composite_sha256(path: Path, part_size: int) -> tuple[str, int]:
    """S3's checksum of a multipart object: sha256 over the parts' sha256 digests, and the part count."""
    digests = []
    with path.open("rb") as source:
        while chunk := source.read(part_size):
            digests.append(hashlib.sha256(chunk).digest())
    return base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode(), len(digests)


class S3Session(RemoteSession):
    atomic_put = True

    def __init__(self, name: str, connection: S3Connection, folder: str, own_files: re.Pattern[str]):
        self.connection = connection
        self.folder = folder
        self.own_files = own_files
        credentials = {}
        if connection.access_key_id is not None and connection.secret_access_key is not None:
            credentials = {
                "aws_access_key_id": connection.access_key_id.read(name, "access_key_id"),
                "aws_secret_access_key": connection.secret_access_key.read(name, "secret_access_key"),
            }
        resource = S3Resource(
            region_name=connection.region_name,
            endpoint_url=connection.endpoint_url,
            max_attempts=connection.max_attempts,
            **credentials,
        )
        self.client = resource.get_client()
        self.part_size = connection.multipart_threshold_mb * MIB
        self.transfer = TransferConfig(
            multipart_threshold=self.part_size, multipart_chunksize=self.part_size, max_concurrency=4
        )
        self.client.head_bucket(Bucket=connection.bucket)

    def _key(self, name: str) -> str:
        return object_key(self.connection, self.folder, name)

    @property
    def _folder_prefix(self) -> str:
        return self._key("")

    def location_of(self, name: str) -> str:
        return f"s3://{self.connection.bucket}/{self._key(name)}"

    def ensure_folder(self) -> None:
        return None  # S3 has no folders; a key prefix needs no creating

    def list_entries(self) -> list[RemoteEntry]:
        entries = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.connection.bucket, Prefix=self._folder_prefix, Delimiter="/"):
            for item in page.get("Contents", []):
                entries.append(RemoteEntry(posixpath.basename(item["Key"]), item["LastModified"].timestamp()))
        return entries

    def sweep(self, export: str) -> list[str]:
        stale = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.connection.bucket, Prefix=self._folder_prefix):
            for upload in page.get("Uploads", []):
                key = upload["Key"]
                name = key[len(self._folder_prefix):]
                if "/" not in name and self.own_files.fullmatch(name):
                    self.client.abort_multipart_upload(Bucket=self.connection.bucket, Key=key, UploadId=upload["UploadId"])
                    stale.append(f"{name} (unfinished multipart upload {upload['UploadId']})")
        return stale

    def put(self, local: Path, name: str) -> None:
        extra = {"ChecksumAlgorithm": "SHA256"}
        if self.connection.server_side_encryption:
            extra["ServerSideEncryption"] = self.connection.server_side_encryption
        if self.connection.kms_key_id:
            extra["SSEKMSKeyId"] = self.connection.kms_key_id
        # upload_file streams from disk in part_size pieces; it aborts its multipart upload on failure.
        self.client.upload_file(str(local), self.connection.bucket, self._key(name), ExtraArgs=extra, Config=self.transfer)

    def verify(self, name: str, file: LocalFile) -> str:
        head = self.client.head_object(Bucket=self.connection.bucket, Key=self._key(name), ChecksumMode="ENABLED")
        if head["ContentLength"] != file.bytes:
            raise DeliveryError(f"S3 holds {head['ContentLength']} bytes of {file.name}, {file.bytes} were sent")
        stored = head.get("ChecksumSHA256")
        if stored is None:
            return "size"
        stored_digest, _, stored_parts = stored.partition("-")
        if file.bytes >= self.part_size:  # uploaded in parts: S3 keeps a checksum of the parts' checksums
            expected, parts = composite_sha256(file.path, self.part_size)
            matches = stored_digest == expected and stored_parts in ("", str(parts))
        else:
            expected = base64.b64encode(bytes.fromhex(file.sha256)).decode()
            matches = stored == expected
        if not matches:
            raise DeliveryError(f"S3's sha256 checksum of {file.name} is {stored}, the file's is {expected}")
        return "size+sha256"

    def replace(self, temporary: str, final: str) -> None:
        raise AssertionError("S3 puts under the final key; nothing to rename")

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.connection.bucket, Key=self._key(name))

    def url_for(self, name: str) -> str | None:
        seconds = self.connection.presigned_url_seconds
        if seconds is None:
            return None
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.connection.bucket, "Key": self._key(name)}, ExpiresIn=seconds
        )
