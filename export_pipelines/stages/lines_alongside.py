"""Format while extracting: each extracted batch mapped and written as the file's lines on a thread of its own.

Why: serialize used to start once the extract had finished, so formatting (about 1 µs per
row per core: bench/RESULTS.md) came on top of the database's time, where `psql \\copy`
formats inside the server while its client only writes. Here the extract hands each batch
it writes to its stage file to this thread too, which maps it and writes it as the file's
lines (serialization.row_lines, the lines_schema() a fanned-out export's chunks write) while
the extract reads the next batch. Serialize then only adds the header, cuts the parts and
compresses (write_files(preformatted=True)).

The op graph keeps its steps and its re-execution: the rows' stage file is still written,
and a re-execution of serialize reads the lines file the failed run left.

Speculative: a batch this thread cannot map or format (a value the file cannot write, a
full disk) abandons the lines and removes their file. Map and serialize then do their work
from the rows' stage file as before and fail there, with their own messages, so an error
surfaces in the same step, worded the same, whether or not lines were written ahead.
EXPORT_FORMAT_WHILE_EXTRACTING=0 switches it off (bench/, test_fast_paths.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable

from export_pipelines.lazy_imports import pa
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.stages.mapping import map_batch, mapping_shortcut_enabled, maps_nothing
from export_pipelines.stages.serialization import OutputSettings, lines_join_exactly, lines_schema, row_lines
from export_pipelines.stages.stage_files import stage_writer
from export_pipelines.stages.text_format import value_format_of
from export_pipelines.stages.work_location import Location, remove_file
from export_pipelines.stages.write_behind import WriteBehind
from export_pipelines.switches import FORMAT_WHILE_EXTRACTING_ENV_VAR, switch_from_environment

logger = logging.getLogger(__name__)

LineFormatter = Callable[["pa.RecordBatch"], "pa.RecordBatch"]  # strings: evaluating pa here would import pyarrow at load


def format_while_extracting_enabled() -> bool:
    return switch_from_environment(FORMAT_WHILE_EXTRACTING_ENV_VAR)


def line_formatter(plan: ExportPlan, settings: OutputSettings) -> LineFormatter | None:
    """extracted rows (the stage schema) -> the file's lines (lines_schema()), or None where the file is not made
    of lines that depend on their row alone (lines_join_exactly: Parquet, legacy encodings) or where the rows
    are aggregated first.

    Raises what map_batch and row_lines raise (UnwritableValue) when called on a batch.
    """
    if plan.aggregates or not lines_join_exactly(settings):
        return None
    headers = [field.header for field in plan.fields]
    unchanged = maps_nothing(plan) and mapping_shortcut_enabled()

    def to_lines(batch: pa.RecordBatch) -> pa.RecordBatch:
        return row_lines(batch if unchanged else map_batch(plan, batch), headers, settings)

    return to_lines


def lines_signature(plan: ExportPlan, settings: OutputSettings) -> str | None:
    """A digest of everything the lines of line_formatter(plan, settings) depend on (the fields and their
    mapping, the columns extracted, the format, dialect and value formats), or None where no lines are written.

    Serialize compares it with the one the extract recorded: a re-execution after the spec was edited
    (a partner's new delimiter going in with the fix of a failed step) must not write lines formatted
    by the old spec under the new header.
    """
    if plan.aggregates or not lines_join_exactly(settings):
        return None
    depends_on = (
        [repr(field) for field in plan.fields],
        [repr(source) for source in plan.sources],
        repr(value_format_of(plan.spec)),
        repr(settings.dialect),
        settings.file_format,
        sorted(settings.raw_json),
    )
    return hashlib.sha256(repr(depends_on).encode()).hexdigest()


class LinesAlongside:
    """Writes `to_lines(batch)` of every added batch into `destination` on one worker thread, in order.

    A context manager; finish() says whether every batch made it. Leaving the block without
    finish() (the extract failed, or starts over) removes the file.
    """

    def __init__(self, destination: Location, to_lines: LineFormatter, export: str):
        self._destination = destination
        self._to_lines = to_lines
        self._export = export
        self._given_up: BaseException | None = None
        self._finished = False
        self._writer = None
        try:
            self._writer = stage_writer(destination, lines_schema())
        except Exception as error:  # noqa: BLE001 - a file that cannot be made (object store refused, disk full): serialize formats
            self._given_up = error
        self._behind = WriteBehind()

    def add(self, batch: pa.RecordBatch) -> None:
        """Queue one batch (waits while two are pending, so memory stays a few batches)."""
        if self._given_up is None:
            self._behind.submit(self._write, batch)

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._given_up is not None:
            return
        try:
            self._writer.write_batch(self._to_lines(batch))
        except Exception as error:  # noqa: BLE001 - any failure only means: serialize formats as before
            self._given_up = error

    def finish(self) -> Location | None:
        """The lines file's location once every batch is in it, or None when it was given up (and removed)."""
        self._behind.drain()
        self._behind.close()
        self._finished = True
        try:
            if self._writer is not None:
                self._writer.close()
        except Exception as error:  # noqa: BLE001
            self._given_up = self._given_up or error
        if self._given_up is None:
            return self._destination
        logger.info("%s: lines not written while extracting (%s); serialize formats the rows", self._export, self._given_up)
        remove_file(self._destination)
        return None

    def __enter__(self) -> LinesAlongside:
        return self

    def __exit__(self, *_exc) -> None:
        if self._finished:
            return
        self._behind.close()
        # The extract's own error is in flight: a failure to close or remove the lines must not replace it.
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
        with contextlib.suppress(Exception):
            remove_file(self._destination)


class NoLines:
    """LinesAlongside's stand-in when no lines are written ahead."""

    def add(self, batch: pa.RecordBatch) -> None:
        pass

    def finish(self) -> None:
        return None

    def __enter__(self) -> NoLines:
        return self

    def __exit__(self, *_exc) -> None:
        pass


def lines_alongside(destination: Location | None, to_lines: LineFormatter | None, export: str) -> LinesAlongside | NoLines:
    """A LinesAlongside when both a destination and a formatter are given and the switch is on, else a NoLines."""
    if destination is None or to_lines is None or not format_while_extracting_enabled():
        return NoLines()
    return LinesAlongside(destination, to_lines, export)
