"""Where a run's work files live: a local folder (the default) or an object store every worker reads.

A location is a string: a local path, or `s3://bucket/key`. Code reaches either through
pyarrow's own filesystem layer (pyarrow.fs), so a stage file is written and read batch by
batch whichever it is, and one step can write a file another step reads on another machine.
A whole object copied to this machine is read with boto3 instead, one GET streamed (open_object).
S3 is configured as the AWS tools are: credentials from the standard chain (AWS_ACCESS_KEY_ID,
an instance role, ...), the endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (MinIO, a
test server), the region from AWS_REGION or AWS_DEFAULT_REGION.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import shutil
from pathlib import Path

from export_pipelines.database_urls import safe_location
from export_pipelines.lazy_imports import pafs

# Unset: each run's work folder is under the instance's storage folder, on the machine that runs the step.
WORK_URL_ENV_VAR = "EXPORT_WORK_URL"
S3_SCHEME = "s3://"
# Bytes per chunk read from an object's one GET: a reader's memory stays at one chunk whatever the file's size.
CHUNK_BYTES = 1024 * 1024

Location = str | os.PathLike


def work_root_from_environment() -> str | None:
    """$EXPORT_WORK_URL, an `s3://bucket/prefix` every worker reads and writes, or None (local work folders).

    Raises ValueError for anything else, naming the variable.
    """
    return s3_root_from_environment(WORK_URL_ENV_VAR, "local work folders")


def s3_root_from_environment(variable: str, unset_means: str, hint: str = "") -> str | None:
    """The `s3://bucket/prefix` in $`variable`, without a trailing slash, or None when it is unset.

    Raises ValueError for anything else, naming the variable, what leaving it unset gives
    (`unset_means`) and, after it, `hint`; the value is shown without credentials (safe_location).
    A value with credentials (`user:secret@`) or an empty folder name (`s3://bucket//prefix`,
    which S3 would keep in every key while URLs and serve-downloads drop it) is refused.
    """
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    shown = safe_location(value)
    bucket = value[len(S3_SCHEME) :].split("/", 1)[0] if value.startswith(S3_SCHEME) else ""
    if not bucket:
        raise ValueError(f"{variable}={shown!r}: write s3://bucket/prefix, or leave it unset for {unset_means}{hint}")
    if "@" in value:
        raise ValueError(
            f"{variable}={shown!r} holds credentials ('...@'): they are not read from it, and would show in logs; "
            "the AWS credential chain gives them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or an instance role)"
        )
    root = value.rstrip("/")
    prefix = bucket_and_key(root)[1]
    if prefix and "" in prefix.split("/"):
        raise ValueError(f"{variable}={shown!r}: the prefix has an empty folder name ('//'); write s3://bucket/a/b")
    return root


def is_remote(location: Location) -> bool:
    return str(location).startswith(S3_SCHEME)


def join(folder: Location, *names: str) -> str:
    """`folder`/`names`, with the separator of the folder's kind."""
    return posixpath.join(str(folder), *names) if is_remote(folder) else str(Path(folder, *names))


def bucket_and_key(location: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> (`bucket`, `a/b`)."""
    bucket, _, key = location[len(S3_SCHEME) :].partition("/")
    return bucket, key


def resolve(location: Location) -> tuple[pafs.FileSystem, str]:
    """The filesystem that holds `location`, and the path within it."""
    if is_remote(location):
        return _s3(s3_endpoint_from_environment(), s3_region_from_environment() or "us-east-1"), str(location)[len(S3_SCHEME) :]
    return pafs.LocalFileSystem(), str(location)


def s3_endpoint_from_environment() -> str | None:
    """An S3-compatible server's URL (MinIO, a test server), as the AWS tools read it; None for AWS."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_region_from_environment() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


@functools.cache
def _s3(endpoint: str | None, region: str) -> pafs.S3FileSystem:
    # pyarrow's S3 client does not read AWS_ENDPOINT_URL itself: pass it on.
    return pafs.S3FileSystem(endpoint_override=endpoint, region=region)


def exists(location: Location) -> bool:
    """Whether a file or folder is at `location` (a local path or an s3:// URL)."""
    filesystem, path = resolve(location)
    return filesystem.get_file_info(path).type != pafs.FileType.NotFound


def remove_file(location: Location) -> None:
    """Delete one file if it exists."""
    if exists(location):
        filesystem, path = resolve(location)
        filesystem.delete_file(path)


def remove_tree(location: Location, *, keep: Location | None = None) -> None:
    """Delete a folder and all it holds, if it exists; in an object store also the folders between
    it and `keep` that it leaves empty (pyarrow keeps an emptied folder's parent as a marker object)."""
    if not is_remote(location):
        shutil.rmtree(location, ignore_errors=True)
        return
    filesystem, path = resolve(location)
    if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
        filesystem.delete_dir(path)
    kept = resolve(keep)[1] if keep is not None and is_remote(keep) else None
    parent = posixpath.dirname(path)
    while kept is not None and parent.startswith(kept + "/"):
        if filesystem.get_file_info(pafs.FileSelector(parent, allow_not_found=True)):
            return
        filesystem.delete_dir(parent)
        parent = posixpath.dirname(parent)


def copy_file(source: Location, destination: Location) -> None:
    """Copy one file between any two locations (local or object store), streamed in chunks: never
    the whole file in memory. Raises FileNotFoundError when there is no `source`; OSError,
    pyarrow's or botocore's errors for the rest."""
    if is_remote(source) and not is_remote(destination):
        download_object(str(source), Path(destination))
        return
    source_fs, source_path = resolve(source)
    destination_fs, destination_path = resolve(destination)
    if not is_remote(destination):
        Path(destination_path).parent.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(source_path, destination_path, source_filesystem=source_fs, destination_filesystem=destination_fs)


def download_object(url: str, destination: Path) -> None:
    """Save the object at the s3:// `url` as the local file `destination` (its folder made if
    missing): one GET, written as it arrives (open_object). A read that fails leaves no file at
    `destination`. Raises FileNotFoundError when there is no such object; botocore's errors for the rest."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    _, body = open_object(s3_client(), url)
    try:
        with contextlib.closing(body), destination.open("wb") as out:
            for chunk in body.iter_chunks(CHUNK_BYTES):
                out.write(chunk)
    except BaseException:
        destination.unlink(missing_ok=True)
        raise


def s3_client():
    """A boto3 S3 client with this process's AWS settings (the chain's credentials, AWS_ENDPOINT_URL,
    AWS_REGION): what reads whole objects, one GET each (open_object)."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint_from_environment(), region_name=s3_region_from_environment())


def open_object(client, url: str, with_body: bool = True):
    """The size in bytes of the object at the s3:// `url` and, `with_body`, its body (botocore's
    StreamingBody: read it with `iter_chunks(CHUNK_BYTES)`, then close it): one GET read as it
    arrives, never the whole object in memory. pyarrow's input stream would send a ranged GET per
    read instead, which a whole file copied in 1 MiB reads made about 40 times slower against
    moto's server. Raises FileNotFoundError when there is no such object; botocore's errors
    (ClientError, NoCredentialsError, ...) for the rest."""
    from botocore.exceptions import ClientError

    bucket, key = bucket_and_key(url)
    try:
        if not with_body:
            return client.head_object(Bucket=bucket, Key=key)["ContentLength"], None
        answer = client.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
            raise FileNotFoundError(f"no object {url}") from error
        raise
    return answer["ContentLength"], answer["Body"]
