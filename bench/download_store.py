"""The download store's three streams (EXPORT_DOWNLOADS_STORE_URL) with one large file, against moto's S3 server.

    python bench/download_store.py [--mib 100 400]

Per size: a random file is delivered by the download store target (download_store.py, the
upload step's path: a file of 64 MiB or more in parts to a temporary key, then copied), read
back by the exports client (`export-pipelines download` of an s3:// URL) and served by
`serve-downloads` over the store (fetched with urllib). Each runs in a child process of its
own, moto in another; printed per stream: seconds, the child's peak RSS (VmHWM; the server's
before and after the request) and whether the bytes came back identical. Memory that stays
put while the size grows is what "streamed" means here. moto keeps objects in its own memory:
the sizes are limited by this machine's RAM, not by the streams. Asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

BUCKET = "bench-download-store"
STORE = f"s3://{BUCKET}/downloads"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_mib() -> float:
    # VmHWM, not ru_maxrss: Linux carries a parent's ru_maxrss over fork and exec into the child.
    return high_water_mib(os.getpid())


def same_bytes(one: Path, other: Path) -> bool:
    return hashlib.file_digest(one.open("rb"), "sha256").digest() == hashlib.file_digest(other.open("rb"), "sha256").digest()


def deliver(path: Path) -> None:
    from export_pipelines.stages.name_patterns import template_pattern
    from export_pipelines.targets.base import LocalFile
    from export_pipelines.targets.download_store import DESTINATION, download_store_target
    from export_pipelines.targets.remote import DeliveryOptions

    import export_pipelines.targets.s3  # noqa: F401  (imported before the baseline is read)

    digest = hashlib.file_digest(path.open("rb"), "sha256").hexdigest()
    before = peak_mib()
    options = DeliveryOptions(
        export="big", connection="bench", keep_last=None, finish_with=None,
        own_files=template_pattern("{export}.{ext}", "big", "model", "csv"), ext="csv", run_time=dt.datetime.now(dt.UTC),
        run_id=str(uuid.uuid4()), run_is_over=lambda run_id: None, destination=DESTINATION,
    )
    started = time.monotonic()
    [file] = download_store_target(STORE, options).deliver([LocalFile(path, 1, path.stat().st_size, digest)], lambda line: None).files
    print(f"  deliver: {time.monotonic() - started:.1f} s, peak RSS {peak_mib():.0f} MiB (before {before:.0f}), verified by {file.verified_by}")


def fetch(destination: Path) -> None:
    from export_pipelines.api.client import _fetch_from_object_store

    import export_pipelines.targets.download_store  # noqa: F401

    before = peak_mib()
    started = time.monotonic()
    _fetch_from_object_store(f"{STORE}/big/big.csv", destination)
    print(f"  client fetch of s3://: {time.monotonic() - started:.1f} s, peak RSS {peak_mib():.0f} MiB (before {before:.0f})")


def serve(port: int) -> None:
    from export_pipelines.adhoc.download_server import serve_downloads

    serve_downloads(STORE, "127.0.0.1", port).serve_forever()


def high_water_mib(pid: int) -> float:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def child(*arguments: str) -> list[str]:
    return [sys.executable, __file__, "--child", *arguments]


def measure(mib: int, folder: Path) -> None:
    import boto3

    print(f"{mib} MiB")
    source = folder / "big.csv"
    with source.open("wb") as out:
        for _ in range(mib):
            out.write(os.urandom(1024 * 1024))
    subprocess.run(child("deliver", str(source)), check=True)
    client = boto3.client("s3")
    print("  in the store:", [(o["Key"], o["Size"]) for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]],
          "unfinished uploads:", client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))
    fetched = folder / "fetched.csv"
    subprocess.run(child("fetch", str(fetched)), check=True)
    print("  fetched bytes identical:", same_bytes(fetched, source))
    fetched.unlink()
    port = free_port()
    server = subprocess.Popen(child("serve", str(port)))
    try:
        time.sleep(3)
        before = high_water_mib(server.pid)
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/big/big.csv") as response, fetched.open("wb") as out:
            while chunk := response.read(1024 * 1024):
                out.write(chunk)
        seconds = time.monotonic() - started
        print(f"  serve-downloads: {seconds:.1f} s, server VmHWM {before:.0f} -> {high_water_mib(server.pid):.0f} MiB,"
              f" bytes identical: {same_bytes(fetched, source)}")
    finally:
        server.terminate()
        server.wait()
    client.delete_object(Bucket=BUCKET, Key="downloads/big/big.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, argument = args.child
        {"deliver": lambda: deliver(Path(argument)), "fetch": lambda: fetch(Path(argument)), "serve": lambda: serve(int(argument))}[kind]()
        return
    port = free_port()
    moto = subprocess.Popen([sys.executable, "-c", (
        "from moto.server import ThreadedMotoServer; import time; "
        f"ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False).start(); time.sleep(86400)"
    )])
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_REGION": "eu-central-1",
                       "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    try:
        time.sleep(3)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
        with tempfile.TemporaryDirectory() as folder:
            for mib in args.mib:
                measure(mib, Path(folder))
    finally:
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    main()
