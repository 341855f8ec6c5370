"""Serialization: RFC 4180 CSV or PSV, UTF-8, written straight into gzip or zip, split into parts.

Rows are formatted a whole column at a time with pyarrow.compute and joined into one
buffer per batch, so no Python code runs per row. Values are quoted only when they
contain the delimiter, a quote or a line break, as RFC 4180 asks and psql does.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from export_pipelines.stages.arrow_runtime import prepare_pyarrow
from export_pipelines.stages.text_format import to_text
from export_pipelines.stages.write_behind import WriteBehind, in_order
from export_pipelines.targets.base import LocalFile

DELIMITERS = {"csv": ",", "psv": "|"}
LINE_ENDINGS = {"crlf": "\r\n", "lf": "\n"}
WRITE_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str
    line_ending: str

    @property
    def special_bytes(self) -> tuple[bytes, ...]:
        return (b'"', b"\r", b"\n", self.delimiter.encode())

    @property
    def needs_quotes_pattern(self) -> str:
        return '["\r\n' + ("\\|" if self.delimiter == "|" else self.delimiter) + "]"


@dataclass(frozen=True)
class OutputSettings:
    dialect: CsvDialect
    compression: str
    max_rows_per_file: int | None
    # Compressed files carry a timestamp; a fixed one per window makes a re-run's bytes identical.
    archive_time: dt.datetime
    compression_level: int = 6


def quote_where_needed(text: pa.Array, dialect: CsvDialect) -> pa.Array:
    if not _may_need_quotes(text, dialect):
        return text
    needs_quotes = pc.match_substring_regex(text, dialect.needs_quotes_pattern)
    if not pc.any(needs_quotes).as_py():
        return text
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs_quotes, quoted, text)


def _may_need_quotes(text: pa.Array, dialect: CsvDialect) -> bool:
    """Whether a byte that needs quoting occurs anywhere in the column's values: a memchr-speed scan
    instead of a regex per value, which most columns (codes, numbers, timestamps) never need."""
    values = text.buffers()[2]
    if values is None:
        return False
    data = values.to_pybytes()
    return any(special in data for special in dialect.special_bytes)


def format_lines(batch: pa.RecordBatch, dialect: CsvDialect) -> bytes | pa.Buffer:
    """The batch as CSV lines, one contiguous buffer."""
    if batch.num_rows == 0:
        return b""
    cells = [quote_where_needed(pc.fill_null(to_text(column), ""), dialect) for column in batch.columns]
    lines = pc.binary_join_element_wise(*cells, dialect.delimiter) if len(cells) > 1 else cells[0]
    lines = pc.binary_join_element_wise(lines, dialect.line_ending, "")
    return _contiguous_bytes(lines)


def _contiguous_bytes(strings: pa.Array) -> pa.Buffer:
    """A string array's values buffer is the concatenation of its values: take it without copying."""
    offsets = pa.Array.from_buffers(pa.int32(), len(strings) + 1, [None, strings.buffers()[1]], offset=strings.offset)
    start, end = offsets[0].as_py(), offsets[len(strings)].as_py()
    return strings.buffers()[2][start:end]


def header_line(headers: Iterable[str], dialect: CsvDialect) -> bytes:
    batch = pa.RecordBatch.from_arrays([pa.array([h], pa.string()) for h in headers], names=[str(i) for i, _ in enumerate(headers)])
    return bytes(format_lines(batch, dialect))


class _HashingSink(io.RawIOBase):
    """Counts and hashes the bytes that reach the disk; not seekable, so zip writes data descriptors."""

    def __init__(self, raw):
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._raw.write(data)
        self.sha256.update(data)
        self.bytes += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _PartWriter:
    def __init__(self, path: Path, settings: OutputSettings, header: bytes, behind: WriteBehind):
        self.path = path
        self.rows = 0
        self._behind = behind
        self._raw = open(path, "wb", buffering=WRITE_BUFFER_BYTES)
        self._sink = _HashingSink(self._raw)
        self._zip = None
        if settings.compression == "gzip":
            self._stream = gzip.GzipFile(
                filename="",
                mode="wb",
                fileobj=self._sink,
                compresslevel=settings.compression_level,
                mtime=int(settings.archive_time.timestamp()),
            )
        elif settings.compression == "zip":
            self._zip = zipfile.ZipFile(self._sink, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=settings.compression_level)
            entry = zipfile.ZipInfo(path.name.removesuffix(".zip"), date_time=settings.archive_time.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            self._stream = self._zip.open(entry, mode="w", force_zip64=True)
        else:
            self._stream = self._sink
        self._stream.write(header)

    def write(self, data, rows: int) -> None:
        self._behind.submit(self._stream.write, data)
        self.rows += rows

    def close(self) -> LocalFile:
        self._behind.drain()
        self._stream.close()
        if self._zip is not None:
            self._zip.close()
        self._sink.close()
        return LocalFile(path=self.path, rows=self.rows, bytes=self._sink.bytes, sha256=self._sink.sha256.hexdigest())

    def abort(self) -> None:
        try:
            self._behind.drain()
        except Exception:  # the failure being handled already; the file is deleted below
            pass
        for closable in (self._stream, self._zip, self._sink):
            try:
                if closable is not None:
                    closable.close()
            except (OSError, ValueError):
                pass
        self.path.unlink(missing_ok=True)


def _cut_into_parts(batches: Iterable[pa.RecordBatch], limit: int | None) -> Iterator[tuple[bool, pa.RecordBatch]]:
    """The rows, cut where a part reaches `limit` rows: (whether the piece starts a new part, the piece)."""
    in_part = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            starts_part = limit is not None and in_part == limit
            if starts_part:
                in_part = 0
            take = batch.num_rows - offset if limit is None else min(batch.num_rows - offset, limit - in_part)
            yield starts_part, batch.slice(offset, take)
            in_part += take
            offset += take


def write_files(
    batches: Iterable[pa.RecordBatch],
    headers: list[str],
    folder: Path,
    name_for_part: Callable[[int], str],
    settings: OutputSettings,
) -> list[LocalFile]:
    """Write the rows into one or more files (parts of at most max_rows_per_file rows, each with the header)."""
    prepare_pyarrow()
    folder.mkdir(parents=True, exist_ok=True)
    header = header_line(headers, settings.dialect)
    limit = settings.max_rows_per_file
    files: list[LocalFile] = []
    behind = WriteBehind()
    writer = _PartWriter(folder / name_for_part(1), settings, header, behind)
    try:
        # Formatting is most of the work: batches are formatted two at a time, written in order.
        pieces = _cut_into_parts(batches, limit)
        for (starts_part, piece), text in in_order(lambda item: format_lines(item[1], settings.dialect), pieces):
            if starts_part:
                files.append(writer.close())
                writer = _PartWriter(folder / name_for_part(len(files) + 1), settings, header, behind)
            writer.write(text, piece.num_rows)
        files.append(writer.close())
    except BaseException:
        writer.abort()
        for written in files:
            written.path.unlink(missing_ok=True)
        raise
    finally:
        behind.close()
    return files
