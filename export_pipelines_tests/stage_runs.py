"""Running one export's stages directly (no Dagster), the fast paths on or off, and reading back what it wrote."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from export_pipelines.source import SourceDatabase
from export_pipelines.spec.loader import load_config
from export_pipelines.stages.aggregation import aggregate_stage_file
from export_pipelines.stages.extract import ExtractResult, extract_to_stage_file
from export_pipelines.stages.lines_alongside import line_formatter
from export_pipelines.stages.mapping import map_stage_file
from export_pipelines.stages.query import TimeWindow
from export_pipelines.stages.serialization import OutputSettings, dialect_of, raw_json_columns, write_files
from export_pipelines.stages.stage_files import read_batches, read_schema
from export_pipelines.targets.base import LocalFile
from export_pipelines_tests.conftest import write_config

FAST_PATH_SWITCHES = ("EXPORT_FAST_EXTRACT", "EXPORT_MAPPING_SHORTCUT", "EXPORT_WRITE_BEHIND", "EXPORT_FORMAT_WHILE_EXTRACTING")
ARCHIVE_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass
class StageRun:
    extracted: ExtractResult
    aggregation: str | None
    files: list[LocalFile]
    compression: str

    @property
    def content(self) -> bytes:
        """Every part's bytes, decompressed, one after the other."""
        return b"".join(decompressed(file.path.read_bytes(), self.compression) for file in self.files)


def decompressed(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        # The zstd tool (Debian's zstd package, make test-services), not the module the export writes with.
        return subprocess.run(["zstd", "-d", "-c", "-q"], input=data, capture_output=True, check=True).stdout
    if compression == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            [entry] = archive.namelist()
            return archive.read(entry)
    return data


def run_stages(
    url: str,
    folder: Path,
    spec: dict,
    *,
    fast: bool,
    monkeypatch,
    models: dict | None = None,
    max_bad_rows: int = 0,
    window: tuple[dt.datetime, dt.datetime] | None = None,
) -> StageRun:
    """Load `spec` through the real config loader and run extract, map, aggregate and serialize on `url`."""
    for switch in FAST_PATH_SWITCHES:
        monkeypatch.setenv(switch, "1" if fast else "0")
    folder = folder / ("fast" if fast else "general") / spec["name"]
    config = load_config(write_config(folder / "config", [spec], models=models))
    assert not config.problems, [str(p) for p in config.problems]
    plan = config.plans[spec["name"]]
    engine = SourceDatabase(url=url).create_engine(folder)
    time_window = TimeWindow(plan.window_field, *window) if window else None
    settings = OutputSettings(
        dialect=dialect_of(plan.spec),
        file_format=plan.spec.format,
        raw_json=raw_json_columns(plan),
        compression=plan.spec.compression,
        max_rows_per_file=plan.spec.max_rows_per_file,
        archive_time=ARCHIVE_TIME,
    )
    try:
        # As the export's extract op asks: the lines written while extracting where the format allows.
        extracted = extract_to_stage_file(
            engine,
            plan,
            folder / "extract.arrow",
            batch_size=plan.spec.batch_size,
            window=time_window,
            max_bad_rows=max_bad_rows,
            lines_to=folder / "lines.arrow",
            to_lines=line_formatter(plan, settings),
        )
    finally:
        engine.dispose()
    aggregation = None
    if extracted.lines is not None:
        rows_path = extracted.lines  # one file, or parallel streams' parts
    else:
        rows_path = folder / "mapped.arrow"
        map_stage_file(plan, extracted.path, rows_path, batch_size=plan.spec.batch_size)
        if plan.aggregates:
            result = aggregate_stage_file(plan, rows_path, folder / "aggregated.arrow", batch_size=plan.spec.batch_size)
            rows_path, aggregation = result.path, result.execution
    files = write_files(
        read_batches(rows_path, plan.spec.batch_size), [f.header for f in plan.fields], folder / "files", lambda part: f"part{part}.{plan.ext}", settings,
        schema=read_schema(rows_path),
        preformatted=extracted.lines is not None,
    )
    return StageRun(extracted, aggregation, files, plan.spec.compression)


def export_bytes(url: str, tmp_path: Path, spec: dict, *, fast: bool, monkeypatch) -> bytes:
    """The files' raw bytes, parts one after the other (compressed as written)."""
    run = run_stages(url, tmp_path, spec, fast=fast, monkeypatch=monkeypatch)
    return b"".join(file.path.read_bytes() for file in run.files)
