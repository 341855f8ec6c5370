"""One export fanned out (`parallel: {chunks: N}`): key ranges extracted by steps of their own, joined at the end.

    plan_chunks --DynamicOut--> extract_chunk[chunk_000..] -> map_chunk[chunk_000..] --collect-->
        rows:        join_chunks (the files) -> upload
        aggregating: combine_chunks (the groups) -> serialize -> upload

The chunk steps are Dagster dynamic outputs, so an executor that spreads steps (multiprocess,
Celery) runs them side by side, and a re-execution from failure re-runs only the failed
chunks: the finished chunks' stage files stay in the run's work folder and are read again.

Byte for byte the unsplit export's files: each chunk writes its rows as the file's lines
(serialization.row_lines), whose bytes depend on the row alone, and join_chunks writes the
one header, the lines of every chunk in the export's order, the parts and the compression,
through the same writer as the unsplit export. Parquet files and legacy encodings are not
made of independent lines: for those the chunks stop at mapped rows and join_chunks writes
the file from them. An aggregating export's chunks reduce their rows to partial aggregates,
which combine_chunks combines and finishes as the unsplit aggregate does.

Consistency (docs/scale-out.md): plan_chunks fixes the key ranges from MIN and MAX of the
key; each chunk reads its range in its own snapshot, with its own COUNT(*) in that snapshot.
So every row is written exactly once (its key is in exactly one range), with its values as
its chunk read them; rows inserted after planning above the planned MAX are left out.
(No `from __future__ import annotations`: Dagster reads the op signatures' annotations.)
"""

import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from export_pipelines.database_urls import safe_url
from export_pipelines.naming import shared_op_name
from export_pipelines.retries import classified_errors, retry_schedule_for
from export_pipelines.source import SourceDatabase
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.stages.aggregation import aggregate_partial_files, partial_aggregate_stage_file
from export_pipelines.stages.bad_rows import RejectedRow, TooManyBadRows, joined_bad_rows
from export_pipelines.stages.chunks import KeyWithoutValue, plan_chunks
from export_pipelines.stages.extract import extract_to_stage_file
from export_pipelines.stages.lines_alongside import line_formatter, lines_signature
from export_pipelines.stages.mapping import map_stage_file
from export_pipelines.stages.query import KeyRange
from export_pipelines.stages.serialization import lines_join_exactly, lines_schema
from export_pipelines.stages.stage_files import read_batches, read_schema, stage_location, stage_parts, stage_writer
from export_pipelines.stages.work_location import join
from export_pipelines.steps import (
    FileSet,
    RunFacts,
    StageFile,
    checked_window,
    export_window,
    keep_rejected_list,
    output_settings,
    running_export,
    require_earlier_files,
    rerun_command,
    storage_dir,
    unwritable_values_fail,
    work_dir,
    write_file_set,
)


@dataclass(frozen=True)
class Chunk:
    """One key range of a fanned-out export; `index` is its place in the file (the join order)."""

    index: int
    key_range: KeyRange
    planned_at: dt.datetime

    @property
    def label(self) -> str:
        return f"chunk_{self.index:03d}"


@dataclass(frozen=True)
class ChunkFile:
    """What a chunk step hands on: its stage file and what its extract counted in its own snapshot."""

    chunk: Chunk
    # One stage file, or its parts when the chunk was read by parallel streams (stage_files.Stage).
    path: str | tuple[str, ...]
    # Rows (or lines, or partial groups) in the file.
    rows: int
    # COUNT(*) of the chunk's query in the chunk's snapshot (of its groups when the database grouped).
    expected_rows: int
    # Rows the query returned, rejected ones included: where the next chunk's row numbers start.
    seen_rows: int
    rejected: tuple[RejectedRow, ...]
    work_dir: str
    lines: bool = False
    aggregation: str | None = None
    # For lines: what formatted them (lines_alongside.lines_signature) and the extract's file they were made from.
    lines_signature: str | None = None
    source_path: str | tuple[str, ...] | None = None


# Defined once and shared by every fanned-out export's graph, each node named <export>__<stage>
# (factory.export_graph); each op finds its export from its node (steps.running_export).


@dg.op(
    name=shared_op_name("plan_chunks"),
    # The export's `after` edge when it has one (factory.extract's input, for the same reason).
    ins={"upstream": dg.In(dg.Nothing)},
    out=dg.DynamicOut(Chunk),
    description="Cut the export's key into its `parallel.chunks` key ranges, one step each.",
)
def plan_chunks_op(context: dg.OpExecutionContext, source_database: SourceDatabase) -> Iterator[dg.DynamicOutput]:
    plan = running_export(context)
    name = plan.name
    window = checked_window(context, plan)
    with classified_errors(context, retry_schedule_for(plan.spec.retries), name, "plan_chunks", rerun_command(name)):
        engine = source_database.create_engine(storage_dir(context).parent)
        try:
            planned = plan_chunks(engine, plan, window)
        except KeyWithoutValue as error:
            raise dg.Failure(str(error), allow_retries=False) from None
        finally:
            engine.dispose()
    bounds = ", ".join(f"[{r.low}, {r.high})" for r in planned.ranges)
    context.log.info(f"{len(planned.ranges)} chunk(s) of {plan.parallel.key.label}: {bounds}")
    for index, key_range in enumerate(planned.ranges):
        chunk = Chunk(index, key_range, planned.planned_at)
        yield dg.DynamicOutput(chunk, mapping_key=chunk.label, metadata={"low": key_range.low, "high": key_range.high})


@dg.op(name=shared_op_name("extract_chunk"), description="Query one key range of the export's model into an Arrow stage file.")
def extract_chunk(context: dg.OpExecutionContext, source_database: SourceDatabase, chunk: Chunk) -> dg.Output[ChunkFile]:
    plan = running_export(context)
    name = plan.name
    window = export_window(context, plan)
    folder = work_dir(context, name)
    with classified_errors(context, retry_schedule_for(plan.spec.retries), name, f"extract of {chunk.label}", rerun_command(name)):
        engine = source_database.create_engine(storage_dir(context).parent)
        try:
            result = extract_to_stage_file(
                engine,
                plan,
                join(folder, f"{chunk.label}.extract.arrow"),
                batch_size=plan.spec.batch_size,
                window=window,
                max_bad_rows=plan.spec.max_bad_rows,
                key_range=chunk.key_range,
            )
        finally:
            engine.dispose()
    context.log.info(f"Extracted {result.rows} rows of {plan.model_name} in {chunk.label} from {safe_url(engine.url)}")
    extracted = ChunkFile(
        chunk, stage_location(result.path), result.rows, result.expected_rows, result.rows + len(result.rejected), result.rejected, folder
    )
    metadata = {"rows_out": result.rows, "rows_expected": result.expected_rows, "rows_rejected": len(result.rejected), "streams": result.streams}
    return dg.Output(extracted, metadata=metadata)


@dg.op(
    name=shared_op_name("map_chunk"),
    description="Map one key range's rows and write them as the file's lines (or reduce them to partial aggregates).",
)
def map_chunk(context: dg.OpExecutionContext, extracted: ChunkFile) -> dg.Output[ChunkFile]:
    plan = running_export(context)
    name = plan.name
    note_reused_chunk(context, extracted, name)
    folder = work_dir(context, name)
    label = extracted.chunk.label
    with unwritable_values_fail(name):
        if plan.aggregates:
            mapped = map_chunk_rows(plan, extracted, join(folder, f"{label}.mapped.arrow"))
            result = partial_aggregate_stage_file(plan, mapped.path, join(folder, f"{label}.partials.arrow"), batch_size=plan.spec.batch_size)
            check_chunk_partials(plan, extracted, result.rows_in, result.groups, result.execution)
            done = dataclasses.replace(extracted, path=str(result.path), rows=result.groups, aggregation=result.execution)
        elif lines_join_exactly(output_settings(plan, extracted.chunk.planned_at)):
            done = write_chunk_lines(plan, extracted, join(folder, f"{label}.lines.arrow"))
        else:
            done = map_chunk_rows(plan, extracted, join(folder, f"{label}.mapped.arrow"))
    return dg.Output(done, metadata={"rows_in": extracted.rows, "rows_out": done.rows})


def collected(context: dg.OpExecutionContext, plan: ExportPlan, chunks: list[ChunkFile]) -> tuple[list[ChunkFile], RunFacts]:
    """The chunks in key order, each checked to be there (a re-execution reads an earlier run's), and their facts together."""
    ordered = sorted(chunks, key=lambda c: c.chunk.index)
    for chunk in ordered:
        note_reused_chunk(context, chunk, plan.name)
    return ordered, joined_facts(context, plan, ordered)


@dg.op(name=shared_op_name("join_chunks"), description="Join the chunks into the export's files: its format, parts and compression.")
def join_chunks(context: dg.OpExecutionContext, chunks: list[ChunkFile]) -> dg.Output[FileSet]:
    plan = running_export(context)
    name = plan.name
    ordered, facts = collected(context, plan, chunks)
    current = lines_signature(plan, output_settings(plan, ordered[0].chunk.planned_at))
    if any(chunk.lines and chunk.lines_signature != current for chunk in ordered):
        # A re-execution after the spec's format, dialect or fields were edited: chunks formatted by the
        # old spec are mapped again from their extracts, and the file is formatted here by the new one.
        context.log.warning(f"The spec of {name} changed since its chunks were formatted: mapping and formatting their rows again")
        folder = work_dir(context, name)
        with unwritable_values_fail(name):
            ordered = [
                map_chunk_rows(plan, dataclasses.replace(chunk, path=chunk.source_path, lines=False), join(folder, f"{chunk.chunk.label}.mapped.arrow"))
                if chunk.lines
                else chunk
                for chunk in ordered
            ]
    lines = all(chunk.lines for chunk in ordered)
    batches = itertools.chain.from_iterable(read_batches(chunk.path, plan.spec.batch_size) for chunk in ordered)
    rows = sum(chunk.rows for chunk in ordered)
    file_set = write_file_set(context, plan, batches, read_schema(ordered[0].path), rows, facts, preformatted=lines)
    metadata = {"chunks": len(ordered), "rows_in": rows, "rows_out": sum(f.rows for f in file_set.files), "files": len(file_set.files)}
    return dg.Output(file_set, metadata=metadata)


@dg.op(name=shared_op_name("combine_chunks"), description="Combine the chunks' partial aggregates: one row per group.")
def combine_chunks(context: dg.OpExecutionContext, chunks: list[ChunkFile]) -> dg.Output[StageFile]:
    plan = running_export(context)
    ordered, facts = collected(context, plan, chunks)
    destination = join(work_dir(context, plan.name), "aggregated.arrow")
    with unwritable_values_fail(plan.name):
        result = aggregate_partial_files(plan, [chunk.path for chunk in ordered], destination, batch_size=plan.spec.batch_size)
    paths = {chunk.aggregation for chunk in ordered}
    execution = paths.pop() if len(paths) == 1 else "mixed"
    # The chunks' counts were checked chunk by chunk (check_chunk_partials); groups span chunks, so the files hold these.
    facts = dataclasses.replace(facts, expected_rows=result.groups, aggregation=execution)
    metadata = {"chunks": len(ordered), "rows_in": result.rows_in, "rows_out": result.groups, "aggregation": execution}
    return dg.Output(StageFile(str(destination), result.groups, facts), metadata=metadata)


CHUNK_OPS = (plan_chunks_op, extract_chunk, map_chunk, join_chunks, combine_chunks)


def note_reused_chunk(context: dg.OpExecutionContext, chunk: ChunkFile, export: str) -> None:
    """As steps.note_reused_input, for a chunk's stage file."""
    require_earlier_files(context, chunk.work_dir, list(stage_parts(chunk.path)), export, chunk.chunk.label)


def map_chunk_rows(plan: ExportPlan, extracted: ChunkFile, destination: str) -> ChunkFile:
    rows = map_stage_file(plan, extracted.path, destination, batch_size=plan.spec.batch_size)
    return dataclasses.replace(extracted, path=destination, rows=rows)


def write_chunk_lines(plan: ExportPlan, extracted: ChunkFile, destination: str) -> ChunkFile:
    """The chunk's mapped rows written as the file's lines, in one pass over its extract (map_chunk checked that lines join exactly)."""
    settings = output_settings(plan, extracted.chunk.planned_at)
    to_lines = line_formatter(plan, settings)
    rows = 0
    with stage_writer(destination, lines_schema()) as writer:
        for batch in read_batches(extracted.path, plan.spec.batch_size):
            lines = to_lines(batch)
            writer.write_batch(lines)
            rows += lines.num_rows
    signature = lines_signature(plan, settings)
    return dataclasses.replace(extracted, path=destination, rows=rows, lines=True, lines_signature=signature, source_path=extracted.path)


def check_chunk_partials(plan: ExportPlan, extracted: ChunkFile, rows_in: int, groups: int, execution: str) -> None:
    """The chunk's COUNT(*) against what it aggregated, as the unsplit export checks its one extract."""
    if execution == "arrow":
        kept = extracted.expected_rows - len(extracted.rejected)
        if rows_in != kept:
            raise dg.Failure(
                f"For export {plan.name}, {extracted.chunk.label} aggregated {rows_in} rows but its extract counted {kept} "
                f"({extracted.expected_rows} matching, {len(extracted.rejected)} rejected as bad rows)"
            )
    elif groups != extracted.expected_rows:
        raise dg.Failure(f"For export {plan.name}, {extracted.chunk.label} holds {groups} groups but its database counted {extracted.expected_rows}")


def joined_facts(context: dg.OpExecutionContext, plan: ExportPlan, ordered: list[ChunkFile]) -> RunFacts:
    """The chunks' counts as one run's: expected rows summed, bad rows of every chunk in one list numbered
    as the unsplit export numbers them (chunks in file order), the plan step's time as the run's.

    Raises dg.Failure when the chunks together skipped more than max_bad_rows rows.
    """
    try:
        rejected = joined_bad_rows(plan.name, plan.spec.max_bad_rows, [(chunk.seen_rows, chunk.rejected) for chunk in ordered])
    except TooManyBadRows as error:  # each chunk kept within the limit, together they are not
        raise dg.Failure(str(error), allow_retries=False) from None
    folder = work_dir(context, plan.name)
    rejected_file = keep_rejected_list(context, plan, folder, rejected)
    expected = sum(chunk.expected_rows for chunk in ordered)
    earlier = tuple(sorted({chunk.work_dir for chunk in ordered} - {folder}))
    return RunFacts(expected, ordered[0].chunk.planned_at, folder, None, len(rejected), rejected_file, earlier)

