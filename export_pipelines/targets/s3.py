"""S3 (and S3-compatible stores) through dagster-aws's S3Resource.

An object appears whole on PUT, so a file below the multipart threshold goes straight to its
final key. A larger one is uploaded in parts under a temporary key carrying the run id, then
copied onto the final key (a copy appears whole, like a rename). That key is what marks an
unfinished multipart upload as one run's: S3 lists an upload with its key, id and start time
only; metadata or tags given at CreateMultipartUpload cannot be read until it completes
(ListMultipartUploads and ListParts return neither, on AWS as on moto).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import posixpath
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3 import S3Resource

from export_pipelines.spec.connections import S3Connection
from export_pipelines.targets.base import DeliveryError, LocalFile
from export_pipelines.targets.remote import ListingRefused, RemoteEntry, RemoteSession, parse_temporary

MIB = 1024 * 1024
# CopyObject copies up to 5 GiB in one request; a larger object is copied in parts.
SINGLE_COPY_LIMIT = 5 * 1024 * MIB


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


def _bucket_refusal(bucket: str, error: ClientError) -> str:
    """HeadBucket answers with a bare status code ("An error occurred (404) ... Not Found"): say what it means."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status == 404:
        return f"bucket {bucket} does not exist (HeadBucket: 404 Not Found)"
    if status == 403:
        return f"the credentials may not use bucket {bucket} (HeadBucket: 403 Forbidden; it needs s3:ListBucket on the bucket)"
    return str(error)


class S3Session(RemoteSession):
    def __init__(self, name: str, connection: S3Connection, folder: str):
        self.connection = connection
        self.folder = folder
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
        self.copy_transfer = TransferConfig(
            multipart_threshold=SINGLE_COPY_LIMIT, multipart_chunksize=self.part_size, max_concurrency=4
        )
        try:
            self.client.head_bucket(Bucket=connection.bucket)
        except ClientError as error:
            raise DeliveryError(_bucket_refusal(connection.bucket, error)) from error

    def _key(self, name: str) -> str:
        return object_key(self.connection, self.folder, name)

    @property
    def _folder_prefix(self) -> str:
        return self._key("")

    def location_of(self, name: str) -> str:
        return f"s3://{self.connection.bucket}/{self._key(name)}"

    def prepare_folder(self) -> None:
        # S3 has no folders to create, and no links: every key starts with the connection's prefix.
        return None

    def needs_temporary(self, size: int) -> bool:
        return size >= self.part_size

    def list_entries(self) -> list[RemoteEntry]:
        entries = []
        paginator = self.client.get_paginator("list_objects_v2")
        with self._listing("s3:ListBucket"):
            for page in paginator.paginate(Bucket=self.connection.bucket, Prefix=self._folder_prefix, Delimiter="/"):
                for item in page.get("Contents", []):
                    entries.append(RemoteEntry(posixpath.basename(item["Key"]), item["LastModified"].timestamp()))
        return entries

    def list_temporaries(self) -> list[RemoteEntry]:
        """Temporary objects (uploaded, not yet copied) and unfinished multipart uploads to temporary keys."""
        entries = super().list_temporaries()
        paginator = self.client.get_paginator("list_multipart_uploads")
        with self._listing("s3:ListBucketMultipartUploads"):
            for page in paginator.paginate(Bucket=self.connection.bucket, Prefix=self._folder_prefix):
                for upload in page.get("Uploads", []):
                    name = upload["Key"][len(self._folder_prefix):]
                    if "/" not in name and parse_temporary(name):
                        entries.append(RemoteEntry(name, upload["Initiated"].timestamp(), upload["UploadId"]))
        return entries

    @contextlib.contextmanager
    def _listing(self, permission: str):
        """A listing the credentials may not make (a bucket policy granting PutObject only) is refused."""
        try:
            yield
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "AccessDenied":
                raise
            raise ListingRefused(
                f"the credentials may not list s3://{self.connection.bucket}/{self._folder_prefix} ({permission} is denied)"
            ) from error

    def discard(self, entry: RemoteEntry) -> None:
        if entry.upload_id is None:
            self.delete(entry.name)
        else:
            self.client.abort_multipart_upload(Bucket=self.connection.bucket, Key=self._key(entry.name), UploadId=entry.upload_id)

    def _encryption(self) -> dict[str, str]:
        extra = {}
        if self.connection.server_side_encryption:
            extra["ServerSideEncryption"] = self.connection.server_side_encryption
        if self.connection.kms_key_id:
            extra["SSEKMSKeyId"] = self.connection.kms_key_id
        return extra

    def put(self, local: Path, name: str) -> None:
        extra = {"ChecksumAlgorithm": "SHA256", **self._encryption()}
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
        """Copy the verified temporary object onto the final key inside S3, then delete it. Up to
        5 GiB the copy is one request, so the final key never holds a partial multipart copy."""
        source = {"Bucket": self.connection.bucket, "Key": self._key(temporary)}
        extra = {"ChecksumAlgorithm": "SHA256", **self._encryption()}
        self.client.copy(source, self.connection.bucket, self._key(final), ExtraArgs=extra, Config=self.copy_transfer)
        try:
            self.delete(temporary)
        except (BotoCoreError, ClientError):
            pass  # the file is delivered; its temporary carries this run's id, so a later run sweeps it

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.connection.bucket, Key=self._key(name))

    def url_for(self, name: str) -> str | None:
        seconds = self.connection.presigned_url_seconds
        if seconds is None:
            return None
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.connection.bucket, "Key": self._key(name)}, ExpiresIn=seconds
        )


class DownloadStoreSession(S3Session):
    """One export's download folder in the download store (download_store.py): each file's URL is
    its s3:// address, which `export-pipelines download` and `serve-downloads` read."""

    def url_for(self, name: str) -> str | None:
        return self.location_of(name)
