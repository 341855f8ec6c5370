"""The download target in an object store: download folders any worker writes and any process serves.

With $EXPORT_DOWNLOADS_STORE_URL=s3://bucket/prefix, an export's download folder is
`s3://bucket/prefix/<export>/` instead of `$DAGSTER_HOME/storage/downloads/<export>/` on the
machine that ran the upload step. Files get there the way they reach an S3 connection (s3.py,
through remote.py's one algorithm): streamed from disk, verified by size and S3's SHA-256
checksum, a large file under a temporary key of its run first; each run sweeps the temporaries
killed runs of its export left, and a set written again loses the parts it no longer has, by the
ownership rules of every target (names the export's template produces, temporaries carrying its
runs' ids; docs/delivery.md); nothing outside the export's folder is listed. The store is reached
as the AWS tools reach S3 (stages/work_location.py): credentials from the standard chain, the
endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, the region from AWS_REGION.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from export_pipelines.spec.connections import S3Connection, check_bucket_name
from export_pipelines.stages.work_location import (
    bucket_and_key,
    copy_file,
    is_remote,
    join,
    s3_endpoint_from_environment,
    s3_region_from_environment,
    s3_root_from_environment,
)
from export_pipelines.targets.base import DeliveryError
from export_pipelines.targets.remote import DeliveryOptions, RemoteTarget

# Unset: download folders stay under the instance's storage folder, on the machine that runs the upload step.
DOWNLOADS_STORE_ENV_VAR = "EXPORT_DOWNLOADS_STORE_URL"
# What errors call this target: people look for the variable, not a connection.
DESTINATION = f"the download store {DOWNLOADS_STORE_ENV_VAR}"


def downloads_store_from_environment() -> str | None:
    """$EXPORT_DOWNLOADS_STORE_URL, an `s3://bucket/prefix` every worker and the download server
    reach, or None (download folders under the instance's storage folder).

    Raises ValueError for anything else, naming the variable.
    """
    store = s3_root_from_environment(
        DOWNLOADS_STORE_ENV_VAR,
        "download folders under $DAGSTER_HOME/storage/downloads",
        " (the http:// address where `export-pipelines serve-downloads` publishes them is EXPORT_DOWNLOADS_URL)",
    )
    if store is not None:
        bucket = bucket_and_key(store)[0]
        try:
            check_bucket_name(bucket)
        except ValueError as error:
            # No credentials reach here: s3_root_from_environment refuses a value with '@'.
            raise ValueError(f"{DOWNLOADS_STORE_ENV_VAR}={store!r}: {error}") from None
    return store


def store_folder(store: str, export: str) -> str:
    """The export's download folder in the store: `s3://bucket/prefix/<export>`."""
    return join(store, export)


def store_connection(store: str) -> S3Connection:
    """The store as an S3 connection without credentials of its own (boto3 then takes the AWS chain's)."""
    bucket, prefix = bucket_and_key(store)
    return S3Connection(
        type="s3", bucket=bucket, prefix=prefix, endpoint_url=s3_endpoint_from_environment(), region_name=s3_region_from_environment()
    )


def download_store_target(store: str, options: DeliveryOptions) -> RemoteTarget:
    """The target of one run of `options.export` into its folder of `store` (as
    downloads_store_from_environment returns it); errors name DESTINATION."""
    # boto3 is imported when a delivery needs it, as for every server kind (registry.py).
    from export_pipelines.targets.s3 import DownloadStoreSession

    connection = store_connection(store)
    return RemoteTarget(
        options, store_folder(store, options.export), lambda: DownloadStoreSession(DOWNLOADS_STORE_ENV_VAR, connection, options.export)
    )


def keep_in_store(store: str, export: str, source: str, name: str) -> str:
    """Put the file at `source` (a local path, or an s3:// URL of the work folder) into the
    export's folder of `store` as `name`, streamed, and return its s3:// URL: the rejected-rows
    list, which is no delivered file. Raises DeliveryError naming the export and the store; its
    cause is the client's error, which retries.py classifies."""
    from export_pipelines.targets.s3 import DownloadStoreSession

    location = join(store_folder(store, export), name)
    try:
        session = DownloadStoreSession(DOWNLOADS_STORE_ENV_VAR, store_connection(store), export)
        with tempfile.TemporaryDirectory() as scratch:
            local = Path(source)
            if is_remote(source):
                local = Path(scratch, name)
                copy_file(source, str(local))
            session.put(local, name)
    except Exception as error:
        raise DeliveryError(f"For export {export}, keeping {name} in {DESTINATION} ({location}) failed: {error}") from error
    return location
