"""gzip (zlib-ng's deflate) and zstd files are read by the real `gzip -d` and `zstd -d` (Debian's packages), whole
and split into parts, and hold exactly the bytes the uncompressed export writes; a re-run writes the same bytes."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import pyarrow as pa
import pytest

from export_pipelines.stages.serialization import CsvDialect, OutputSettings, write_files

from export_pipelines_tests.conftest import require_service
from export_pipelines_tests.sample_data import create_sample_tables
from export_pipelines_tests.stage_runs import decompressed, run_stages

TOOLS = {"gzip": ["gzip", "-d", "-c"], "zstd": ["zstd", "-d", "-c", "-q"]}
MAGIC = {"gzip": b"\x1f\x8b\x08", "zstd": b"\x28\xb5\x2f\xfd"}


def spec(name: str, **options) -> dict:
    return {"name": name, "model": "transactions", "fields": ["id", "number", "amount", "metadata", "created_at"], "order": "id", **options}


@pytest.fixture
def source(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(url)
    return url


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("split", [None, 7])
def test_the_tools_read_what_the_export_compressed(source, tmp_path, monkeypatch, compression, split):
    if shutil.which(TOOLS[compression][0]) is None:
        require_service(f"the {compression} tool (Debian package {compression}; make test-services)")
    options = {"max_rows_per_file": split, "file_name": "tx_{part}.{ext}"} if split else {}
    plain = run_stages(source, tmp_path / "plain", spec("tx", **options), fast=True, monkeypatch=monkeypatch)
    packed = run_stages(source, tmp_path / "packed", spec("tx", compression=compression, **options), fast=True, monkeypatch=monkeypatch)
    suffix = {"gzip": ".csv.gz", "zstd": ".csv.zst"}[compression]
    assert [f.path.name for f in packed.files] == [f.path.name + suffix.removeprefix(".csv") for f in plain.files]
    assert len(packed.files) == (1 if split is None else len(plain.files)) and (split is None or len(plain.files) > 1)
    for compressed, uncompressed in zip(packed.files, plain.files, strict=True):
        data = compressed.path.read_bytes()
        assert data.startswith(MAGIC[compression])
        tool = subprocess.run([*TOOLS[compression], str(compressed.path)], capture_output=True, check=True)
        assert tool.stdout == uncompressed.path.read_bytes() and tool.stdout.startswith(b"id,number,amount")
        assert compressed.rows == uncompressed.rows
        if compression == "gzip":
            subprocess.run(["gzip", "-t", str(compressed.path)], check=True)  # the CRC and length trailer
    again = run_stages(source, tmp_path / "again", spec("tx", compression=compression, **options), fast=False, monkeypatch=monkeypatch)
    assert [f.path.read_bytes() for f in again.files] == [f.path.read_bytes() for f in packed.files]




@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_the_compressed_bytes_depend_on_the_text_only(tmp_path, compression):
    """The same 3 MB of rows in batches of 1 000 or of 7 777 (the pieces the compressor is handed differ): the same
    file, as a fanned-out export's chunks and the whole export must write (zlib-ng's deflate, handed the pieces as
    they come, packs them differently)."""
    if shutil.which(TOOLS[compression][0]) is None:
        require_service(f"the {compression} tool (Debian package {compression}; make test-services)")
    rows = 120_000
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "code": pa.array([f"C-{i * 7919 % 100_003:06d}" for i in range(rows)])})
    settings = OutputSettings(CsvDialect(",", "\n"), compression, None, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    written = []
    for batch_rows in (1_000, 7_777):
        [file] = write_files(table.to_batches(batch_rows), ["id", "code"], tmp_path / str(batch_rows), lambda part: "rows", settings)
        written.append(file.path.read_bytes())
    assert written[0] == written[1]
    assert decompressed(written[0], compression).count(b"\n") == rows + 1
