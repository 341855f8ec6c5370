"""Serialization: RFC 4180 CSV or PSV (or JSON Lines, or Parquet), written straight into gzip, zstd or zip, split into parts.

Rows are formatted a whole column at a time with pyarrow.compute and joined into one
buffer per batch, so no Python code runs per row. By default values are quoted only when
they contain the delimiter, a quote or a line break, as RFC 4180 asks and psql does; an
importer's dialect (CsvDialect) may ask for another delimiter, quoting, encoding or formats.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from export_pipelines.lazy_imports import gzip_ng, pa, pc, zstandard
from export_pipelines.stages.json_lines import json_lines
from export_pipelines.stages.encodings import BYTE_ORDER_MARK, CODECS, cannot_hold, is_unicode, unrepresentable_rows
from export_pipelines.stages.text_format import CANONICAL, UnwritableValue, ValueFormat, naming_field, to_text, value_format_of
from export_pipelines.stages.write_behind import WriteBehind, in_order
from export_pipelines.targets.base import LocalFile

DELIMITERS = {"csv": ",", "psv": "|"}
LINE_ENDINGS = {"crlf": "\r\n", "lf": "\n"}
WRITE_BUFFER_BYTES = 1 << 20
# zstd's own default (its command-line tool's): 5x faster than gzip level 6 for a file about 6% larger.
ZSTD_LEVEL = 3


@dataclass(frozen=True)
class CsvDialect:
    """How values become a file's bytes; the defaults write RFC 4180 UTF-8 as psql does.

    quoting: "needed" quotes a value holding the delimiter, a quote or a line break (RFC 4180);
    "all" every value; "nonnumeric" every value but integers, decimals and floats. NULL is
    written as null_text and never quoted, as PostgreSQL's COPY ... FORCE_QUOTE writes it, so
    an empty text ("") stays apart from NULL. injection_guard: OWASP's CSV injection advice.
    """

    delimiter: str
    line_ending: str
    quoting: str = "needed"
    encoding: str = "utf-8"
    header: bool = True
    null_text: str = ""
    injection_guard: bool = False
    value_format: ValueFormat = CANONICAL

    @property
    def special_bytes(self) -> tuple[bytes, ...]:
        return (b'"', b"\r", b"\n", self.delimiter.encode())

    @property
    def needs_quotes_pattern(self) -> str:
        return '["\r\n' + ("\\|" if self.delimiter == "|" else self.delimiter) + "]"


def dialect_of(spec) -> CsvDialect:
    """The CsvDialect an ExportSpec (spec/export.py) asks for: the one place its dialect keys are read."""
    return CsvDialect(
        delimiter=spec.delimiter or DELIMITERS.get(spec.format, ","),  # jsonl and parquet have none
        line_ending=LINE_ENDINGS[spec.line_ending],
        quoting=spec.quoting,
        encoding=spec.encoding,
        header=spec.header,
        null_text=spec.null_text,
        injection_guard=spec.csv_injection == "escape",
        value_format=value_format_of(spec),
    )


def raw_json_columns(plan) -> frozenset[int]:
    """Positions of an ExportPlan's output fields that are whole JSON documents as stored (a json field
    without default or replace), which JSON Lines embeds as values rather than strings."""
    return frozenset(
        index
        for index, field in enumerate(plan.fields)
        if field.source.field_type == "json" and field.source.json_property is None and not field.replace and field.default is None
    )


class UnrepresentableText(UnwritableValue):
    """A value the file's encoding (or Parquet's decimals) cannot write reached serialization, named by
    its field (a row export rejects rows the encoding cannot hold earlier)."""


@dataclass(frozen=True)
class OutputSettings:
    dialect: CsvDialect
    compression: str
    max_rows_per_file: int | None
    # Compressed files carry a timestamp; a fixed one per window makes a re-run's bytes identical.
    archive_time: dt.datetime
    compression_level: int = 6  # gzip and zip (deflate); zstd writes ZSTD_LEVEL
    file_format: str = "csv"  # csv and psv (the dialect decides), jsonl, parquet
    raw_json: frozenset[int] = frozenset()  # jsonl: positions of columns holding JSON text, embedded as values


def quote_where_needed(text: pa.Array, dialect: CsvDialect) -> pa.Array:
    if not _may_need_quotes(text, dialect):
        return text
    needs_quotes = pc.fill_null(pc.match_substring_regex(text, dialect.needs_quotes_pattern), False)
    if not pc.any(needs_quotes).as_py():
        return text
    return pc.if_else(needs_quotes, _quoted(text), text)


def _may_need_quotes(text: pa.Array, dialect: CsvDialect) -> bool:
    """Whether a byte that needs quoting occurs anywhere in the column's values: a memchr-speed scan
    instead of a regex per value, which most columns (codes, numbers, timestamps) never need."""
    values = text.buffers()[2]
    if values is None:
        return False
    data = values.to_pybytes()
    return any(special in data for special in dialect.special_bytes)


# A cell a spreadsheet would run as a formula (OWASP, "CSV Injection"); numbers are left alone.
FORMULA_START = r"^[=+\-@\t\r]"
NUMBER_TEXT = r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$"


def format_lines(batch: pa.RecordBatch, headers: Sequence[str], dialect: CsvDialect) -> bytes | pa.Buffer:
    """The batch as lines in the dialect's encoding, one contiguous buffer; `headers` name its columns
    in errors (the batch's own names are the source's where the mapping shortcut handed them on).

    Raises UnrepresentableText when a value holds a character the encoding has no byte for,
    UnwritableValue (naming_field) for a time the format cannot write.
    """
    if batch.num_rows == 0:
        return b""
    data = _contiguous_bytes(line_array(batch, headers, dialect))
    if is_unicode(dialect.encoding):
        return data
    try:
        return data.to_pybytes().decode("utf-8").encode(CODECS[dialect.encoding])
    except UnicodeEncodeError:
        raise _unrepresentable(batch, headers, dialect) from None


def line_array(batch: pa.RecordBatch, headers: Sequence[str], dialect: CsvDialect) -> pa.Array:
    """The batch's rows as UTF-8 text, one string per row with its line ending (format_lines joins them)."""
    cells = []
    for header, column in zip(headers, batch.columns, strict=True):
        with naming_field(header):
            cells.append(_cell(column, dialect))
    lines = pc.binary_join_element_wise(*cells, dialect.delimiter) if len(cells) > 1 else cells[0]
    return pc.binary_join_element_wise(lines, dialect.line_ending, "")


# A stage file of rows already written as text: one LINE_COLUMN string per row (a fanned-out export's chunks).
LINE_COLUMN = "line"


def lines_schema() -> pa.Schema:
    return pa.schema([pa.field(LINE_COLUMN, pa.string())])


def lines_join_exactly(settings: OutputSettings) -> bool:
    """Whether rows written as lines apart (a chunk each) join into the file's exact bytes: true where
    each row's bytes depend on that row alone and the file adds only a start (BOM, header) and no end.
    Parquet's pages and a legacy encoding's per-batch recoding (and its error naming the field) do not."""
    return settings.file_format in {"csv", "psv", "jsonl"} and is_unicode(settings.dialect.encoding)


def row_lines(batch: pa.RecordBatch, headers: list[str], settings: OutputSettings) -> pa.RecordBatch:
    """The batch's rows as the file's lines (lines_schema), for a format lines_join_exactly allows.

    Raises UnrepresentableText as format_lines does.
    """
    if settings.file_format == "jsonl":
        lines = json_lines(batch, headers, settings.raw_json) if batch.num_rows else pa.array([], pa.string())
    elif batch.num_rows == 0:
        lines = pa.array([], pa.string())
    else:
        lines = line_array(batch, headers, settings.dialect)
    return pa.RecordBatch.from_arrays([lines.cast(pa.string())], schema=lines_schema())


def _cell(column: pa.Array, dialect: CsvDialect) -> pa.Array:
    text = to_text(column, dialect.value_format)
    if dialect.injection_guard and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        text = _formula_escaped(text)
    numeric = pa.types.is_integer(column.type) or pa.types.is_decimal(column.type) or pa.types.is_floating(column.type)
    if dialect.quoting == "all" or (dialect.quoting == "nonnumeric" and not numeric):
        written = _quoted(text)
    else:
        written = quote_where_needed(text, dialect)
        if dialect.null_text:
            # A value that reads as null_text is quoted, as PostgreSQL's COPY does, so NULL stays apart.
            same = pc.fill_null(pc.equal(text, dialect.null_text), False)
            if pc.any(same).as_py():
                written = pc.if_else(same, _quoted(text), written)
    return pc.fill_null(written, dialect.null_text)


def _quoted(text: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")


def _formula_escaped(text: pa.Array) -> pa.Array:
    risky = pc.and_(pc.match_substring_regex(text, FORMULA_START), pc.invert(pc.match_substring_regex(text, NUMBER_TEXT)))
    if not pc.any(risky).as_py():
        return text
    return pc.if_else(risky, pc.binary_join_element_wise("'", text, ""), text)


def _unrepresentable(batch: pa.RecordBatch, headers: Sequence[str], dialect: CsvDialect) -> UnrepresentableText:
    for name, column in zip(headers, batch.columns, strict=True):
        text = to_text(column, dialect.value_format)
        rows = unrepresentable_rows([text], dialect.encoding)
        if rows is not None:
            value = text.filter(rows)[0].as_py()
            return UnrepresentableText(f"{name} = {value!r} is {cannot_hold(value, dialect.encoding)}: map it with replace, or write encoding: utf-8")
    return UnrepresentableText(f"a value is not representable in {dialect.encoding}")


def _contiguous_bytes(strings: pa.Array) -> pa.Buffer:
    """A string array's values buffer is the concatenation of its values: take it without copying."""
    offsets = pa.Array.from_buffers(pa.int32(), len(strings) + 1, [None, strings.buffers()[1]], offset=strings.offset)
    start, end = offsets[0].as_py(), offsets[len(strings)].as_py()
    return strings.buffers()[2][start:end]


def file_start(headers: Iterable[str], dialect: CsvDialect) -> bytes:
    """What each file (each part) starts with: the byte order mark the encoding asks for, then the header line."""
    mark = BYTE_ORDER_MARK.get(dialect.encoding, b"")
    if not dialect.header:
        return mark
    headers = list(headers)
    # The names come from the spec, checked at load: no formula guard, and the encoding holds them.
    batch = pa.RecordBatch.from_arrays([pa.array([h], pa.string()) for h in headers], names=[str(i) for i, _ in enumerate(headers)])
    return mark + bytes(format_lines(batch, headers, dataclasses.replace(dialect, injection_guard=False)))


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


class _FixedBlocks(io.RawIOBase):
    """Hands the stream its bytes in blocks of BLOCK_BYTES whatever sizes they were written in.

    zlib-ng's deflate, unlike zlib's, packs the same text differently when it arrives in other
    pieces; the pieces here are formatted batches, whose sizes differ between a whole export and
    its fanned-out chunks. Fixed blocks make the file depend on its text only.
    """

    BLOCK_BYTES = 1 << 20

    def __init__(self, stream):
        self._stream = stream
        self._pending = bytearray()
        self._written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        """Bytes written so far (Parquet's writer asks)."""
        return self._written

    def write(self, data) -> int:
        self._pending += data
        self._written += len(data)
        if len(self._pending) >= self.BLOCK_BYTES:
            whole = len(self._pending) - len(self._pending) % self.BLOCK_BYTES
            view = memoryview(self._pending)
            for start in range(0, whole, self.BLOCK_BYTES):
                self._stream.write(view[start : start + self.BLOCK_BYTES])
            view.release()
            del self._pending[:whole]
        return len(data)

    def close(self) -> None:
        if not self.closed:
            if self._pending:
                self._stream.write(bytes(self._pending))
                self._pending.clear()
            self._stream.close()
        super().close()


class _PartWriter:
    """One file: bytes (CSV, JSON Lines) or record batches (Parquet, when `parquet_schema` is given),
    through gzip, zstd or zip, counted and hashed on their way to the disk (compression runs on the
    write-behind thread: `write` hands the bytes over)."""

    def __init__(self, path: Path, settings: OutputSettings, header: bytes, behind: WriteBehind, parquet_schema: pa.Schema | None = None):
        self.path = path
        self.rows = 0
        self._behind = behind
        self._parquet = None
        self._raw = open(path, "wb", buffering=WRITE_BUFFER_BYTES)
        self._sink = _HashingSink(self._raw)
        self._zip = None
        if settings.compression == "gzip":
            # zlib-ng's deflate: at level 6 about 2x zlib's speed for a file about 1.5% larger (bench/RESULTS.md), read by any gzip -d.
            gzip_file = gzip_ng.GzipFile(
                filename="",
                mode="wb",
                fileobj=self._sink,
                compresslevel=settings.compression_level,
                mtime=int(settings.archive_time.timestamp()),
            )
            self._stream = _FixedBlocks(gzip_file)
        elif settings.compression == "zstd":
            # One frame with a checksum, as the zstd tool writes; no content size (the rows stream in).
            compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
            self._stream = compressor.stream_writer(self._sink, closefd=False)
        elif settings.compression == "zip":
            self._zip = zipfile.ZipFile(self._sink, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=settings.compression_level)
            entry = zipfile.ZipInfo(path.name.removesuffix(".zip"), date_time=settings.archive_time.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            self._stream = self._zip.open(entry, mode="w", force_zip64=True)
        else:
            self._stream = self._sink
        self._stream.write(header)
        if parquet_schema is not None:
            import pyarrow.parquet as pq  # only Parquet exports pay for its import

            # Parquet writes its footer last and never seeks back, so it streams into gzip or zip as well.
            self._parquet = pq.ParquetWriter(self._stream, parquet_schema)

    def write(self, data, rows: int) -> None:
        self._behind.submit(self._stream.write if self._parquet is None else self._parquet.write_batch, data)
        self.rows += rows

    def close(self) -> LocalFile:
        self._behind.drain()
        if self._parquet is not None:
            self._parquet.close()
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
        for closable in (self._parquet, self._stream, self._zip, self._sink):
            try:
                if closable is not None:
                    closable.close()
            except (OSError, ValueError):
                pass
        self.path.unlink(missing_ok=True)


def _parquet_type(kind: pa.DataType) -> pa.DataType:
    """Sums and averages are computed as decimal256(76); Parquet readers (Spark, Hive, Athena,
    Snowflake) take decimals of at most 38 digits, so the file holds them as decimal128(38)."""
    return pa.decimal128(38, kind.scale) if pa.types.is_decimal256(kind) else kind


def _parquet_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    columns = []
    for column, field in zip(batch.columns, schema, strict=False):
        try:
            columns.append(column.cast(field.type) if column.type != field.type else column)
        except pa.ArrowInvalid:
            raise UnrepresentableText(
                f"{field.name} holds a value of more than 38 digits, more than a Parquet decimal column holds for its readers; "
                "write format csv, or narrow the groups"
            ) from None
    return pa.RecordBatch.from_arrays(columns, schema=schema)


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
    schema: pa.Schema | None = None,
    *,
    preformatted: bool = False,
) -> list[LocalFile]:
    """Write the rows into one or more files (parts of at most max_rows_per_file rows, each with the header).

    schema: the batches' schema, which Parquet needs before the first batch (a file without rows has it too).
    preformatted: the batches hold the rows already written as lines (row_lines' lines_schema).
    """
    folder.mkdir(parents=True, exist_ok=True)
    parquet_schema = None
    if settings.file_format == "parquet":
        parquet_schema = pa.schema([pa.field(header, _parquet_type(field.type)) for header, field in zip(headers, schema, strict=False)])
        start, content = b"", lambda batch: _parquet_batch(batch, parquet_schema)
    elif settings.file_format == "jsonl":
        start, content = b"", lambda batch: _contiguous_bytes(json_lines(batch, headers, settings.raw_json)) if batch.num_rows else b""
    else:
        start, content = file_start(headers, settings.dialect), lambda batch: format_lines(batch, headers, settings.dialect)
    if preformatted:
        content = lambda batch: _contiguous_bytes(batch.column(0)) if batch.num_rows else b""  # noqa: E731
    limit = settings.max_rows_per_file
    files: list[LocalFile] = []
    behind = WriteBehind()
    writer = _PartWriter(folder / name_for_part(1), settings, start, behind, parquet_schema)
    try:
        # Formatting is most of the work: batches are formatted two at a time, written in order.
        pieces = _cut_into_parts(batches, limit)
        for (starts_part, piece), text in in_order(lambda item: content(item[1]), pieces):
            if starts_part:
                files.append(writer.close())
                writer = _PartWriter(folder / name_for_part(len(files) + 1), settings, start, behind, parquet_schema)
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
