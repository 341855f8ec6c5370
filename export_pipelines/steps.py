"""What an export's steps share: the export they run for, the records they hand each other, their work folders, and writing the files.

factory.py builds the op graph of an export from these; fan_out.py builds a fanned-out
export's chunk steps from the same pieces. (No `from __future__ import annotations`: Dagster
reads the op signatures' annotations as real types, and these records are in them.)
"""

import datetime as dt
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.definitions.graph_definition import SubselectedGraphDefinition

from export_pipelines.automation.windows import range_from_tags, wall_clock_days
from export_pipelines.lazy_imports import pa
from export_pipelines.naming import EXPORTS_TAG, export_names_of_assets, export_run_tags
from export_pipelines.run_launcher import record_host
from export_pipelines.spec.connections import DeliveryConnection
from export_pipelines.spec.encryption import encryption_keys, plaintext_name
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.stages.bad_rows import RejectedRow, write_rejected_csv
from export_pipelines.stages.encryption import EncryptionError, encrypt_files
from export_pipelines.stages.file_naming import NameValues, render_file_name
from export_pipelines.stages.query import TimeWindow
from export_pipelines.stages.serialization import OutputSettings, dialect_of, raw_json_columns, write_files
from export_pipelines.stages.stage_files import stage_parts
from export_pipelines.stages.text_format import UnwritableValue
from export_pipelines.stages.work_location import copy_file, exists, is_remote, join, work_root_from_environment
from export_pipelines.targets.base import LocalFile


@dataclass(frozen=True)
class ExportBinding:
    """The export a graph's ops run for: its plan, and the connections its upload may deliver to."""

    plan: ExportPlan
    connections: Mapping[str, DeliveryConnection]


# By the export's graph object, not by its name: two builds of one export in a process (a test's
# edited config, a re-execution with the edited spec) each keep their own plan. Weak: a graph
# Dagster no longer holds takes its binding with it.
_BINDINGS: "weakref.WeakKeyDictionary[dg.GraphDefinition, ExportBinding]" = weakref.WeakKeyDictionary()


def bind_export(graph: dg.GraphDefinition, binding: ExportBinding) -> None:
    """Make `graph` (an export's, factory.export_graph) the one whose ops run for `binding`'s export."""
    _BINDINGS[graph] = binding


def export_binding(context: dg.OpExecutionContext) -> ExportBinding:
    """The export the running op is a step of: that of the graph its node is in (the stage ops are
    shared by every export, factory.py), or of the graph that one was cut from (a job's op
    selection runs a subselected copy). Raises dg.Failure for an op outside an export's graph."""
    parent = context.op_handle.parent
    graph = context.job_def.graph.get_node(parent).definition if parent is not None else None
    while isinstance(graph, SubselectedGraphDefinition) and graph not in _BINDINGS:
        graph = graph.parent_graph_def
    binding = _BINDINGS.get(graph) if graph is not None else None
    if binding is None:
        raise dg.Failure(f"The op {context.op_handle} is not in an export's graph (factory.build_export_asset builds them)", allow_retries=False)
    return binding


def running_export(context: dg.OpExecutionContext) -> ExportPlan:
    """The plan of the export the running op is a step of (export_binding), the run tagged for it (tag_export_run)."""
    plan = export_binding(context).plan
    tag_export_run(context, plan)
    return plan


@dataclass(frozen=True)
class RunFacts:
    """Set once by extract and handed on unchanged: what every later op reports against."""

    expected_rows: int
    extracted_at: dt.datetime
    work_dir: str
    # Where an aggregating export's GROUP BY ran: "pushdown" (the database) or "arrow".
    aggregation: str | None = None
    # Source rows skipped because a value could not be converted (max_bad_rows), and their list.
    rejected_rows: int = 0
    rejected_file: str | None = None
    # A fanned-out export's chunk files left by earlier runs (a re-execution reads them): removed with the run's own once delivered.
    earlier_work_dirs: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageFile:
    """What one op hands the next: where its rows are and how many."""

    # One stage file, or its parts in row order (the extract's parallel streams: stage_files.Stage).
    path: str | tuple[str, ...]
    rows: int
    facts: RunFacts
    # The same rows already mapped and written as the file's lines (stages/lines_alongside.py): serialize reads these.
    lines: str | tuple[str, ...] | None = None
    # What the lines were formatted by (lines_alongside.lines_signature): serialize formats again when the spec changed since.
    lines_signature: str | None = None


@dataclass(frozen=True)
class FileSet:
    files: tuple[LocalFile, ...]
    rows: int
    facts: RunFacts
    # With an object-store work folder: where copies of the files wait for the upload step,
    # which may run on another worker than serialize.
    stored_in: str | None = None


def storage_dir(context: dg.OpExecutionContext) -> Path:
    return Path(context.instance.storage_directory())


def local_work_dir(context: dg.OpExecutionContext, export_name: str) -> Path:
    """This machine's work folder of the run: the files being written or delivered."""
    folder = storage_dir(context) / "export_work" / context.run_id / export_name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def work_dir(context: dg.OpExecutionContext, export_name: str) -> str:
    """The run's stage files' folder, which every step reads: $EXPORT_WORK_URL's, else the local one."""
    root = work_root_from_environment()
    return join(root, context.run_id, export_name) if root else str(local_work_dir(context, export_name))


def tag_export_run(context: dg.OpExecutionContext, plan: ExportPlan) -> None:
    """Give the run the export tags if it lacks them: in-process runs of `__ASSET_JOB` (`dagster
    asset materialize`, scripts) are never queued, where the run coordinator tags the others
    (run_coordinator.py), and the host its steps run on, for run monitoring (run_launcher.py).
    Every op calls this, so a re-execution that starts at any step is tagged too."""
    record_host(context)
    run = context.instance.get_run_by_id(context.run_id)
    exports = export_names_of_assets(context.job_def.asset_layer.selected_asset_keys)
    if run is None or not exports:
        return
    if exports == [plan.name]:
        wanted = export_run_tags(plan, range_from_tags(run.tags))
    else:
        wanted = {EXPORTS_TAG: ",".join(exports)}
    missing = {key: value for key, value in wanted.items() if run.tags.get(key) != value}
    if missing:
        context.instance.add_run_tags(context.run_id, missing)


def rerun_command(export: str) -> str:
    return f"export-pipelines rerun {export} --failed-only"


def note_reused_input(context: dg.OpExecutionContext, stage: StageFile | FileSet, export: str) -> None:
    """A re-execution from a failed step reads the earlier run's stage files instead of querying
    again: say so. Raises dg.Failure, naming the export and what to do, when those files are gone:
    a run's work files are removed once it (or a re-execution of it) has delivered."""
    if isinstance(stage, StageFile):
        needed = [*stage_parts(stage.path), *stage_parts(stage.lines)]
    else:
        needed = [join(stage.stored_in, file.name) for file in stage.files] if stage.stored_in else [str(file.path) for file in stage.files]
    require_earlier_files(context, stage.facts.work_dir, needed, export)


def require_earlier_files(context: dg.OpExecutionContext, work_dir: str, needed: list[str], export: str, label: str = "") -> None:
    """When `work_dir` is an earlier run's (a re-execution), say so (for `label`, a chunk's name,
    when given), and raise dg.Failure naming the export and what to do if any of the `needed` files is gone."""
    if f"/{context.run_id}/" in work_dir:
        return
    left_for = f" for {label}" if label else ""
    context.log.info(f"Re-execution: using the files an earlier run of this export left{left_for} in {work_dir}")
    gone = [location for location in needed if not exists(location)]
    if gone:
        raise dg.Failure(
            description=(
                f"For export {export}, this re-execution needs the files an earlier run left in {work_dir}, "
                f"and {gone[0]} is gone: that run's files were delivered (by the run's own step, or a re-execution of it: "
                f"a run's work files are removed once it delivers), or they were deleted. Look at the window's latest run (`export-pipelines log {export}`); "
                f"to deliver the window again, start a new run of it instead of re-executing this one."
            )
        )


def export_window(context: dg.OpExecutionContext, plan: ExportPlan) -> TimeWindow | None:
    """The run's partition or partition range as a half-open window in the export's timezone."""
    if plan.window_field is None:
        return None
    window = context.partition_time_window
    return TimeWindow(plan.window_field, window.start, window.end)


def checked_window(context: dg.OpExecutionContext, plan: ExportPlan) -> TimeWindow | None:
    """The run's window (export_window), refused by check_window_length before the source is queried."""
    window = export_window(context, plan)
    if window is not None:
        check_window_length(plan, window)
    return window


def check_window_length(plan: ExportPlan, window: TimeWindow) -> None:
    """Capillary's one-year limit: a longer range is refused before the source is queried."""
    days = wall_clock_days(window.start, window.end)
    if days > plan.spec.max_window_days:
        raise dg.Failure(
            description=(
                f"For export {plan.name}, the window {window.start.isoformat()} .. {window.end.isoformat()} spans "
                f"{days:g} days, more than max_window_days {plan.spec.max_window_days}; backfill it as several "
                f"shorter ranges or raise max_window_days in the spec"
            )
        )


def store_files(files: list[LocalFile], work_folder: str) -> str | None:
    """With an object-store work folder, copies of the serialized files there (streamed), so the
    upload step finds them on any worker; the folder's location, or None for a local work folder."""
    if not is_remote(work_folder):
        return None
    stored_in = join(work_folder, "files")
    for file in files:
        copy_file(str(file.path), join(stored_in, file.name))
    return stored_in


@contextmanager
def unwritable_values_fail(export: str) -> Iterator[None]:
    """A value the file's formats cannot write fails the step at once, by name: no row is at hand to
    reject there (a group's value, a Replace's output, a time outside the years in timestamp_timezone)."""
    try:
        yield
    except UnwritableValue as error:
        raise dg.Failure(f"For export {export}, {error}", allow_retries=False) from None


def output_settings(plan: ExportPlan, archive_time: dt.datetime) -> OutputSettings:
    spec = plan.spec
    return OutputSettings(
        dialect=dialect_of(spec),
        file_format=spec.format,
        raw_json=raw_json_columns(plan),
        compression=spec.compression,
        max_rows_per_file=spec.max_rows_per_file,
        archive_time=archive_time,
    )


def write_file_set(
    context: dg.OpExecutionContext,
    plan: ExportPlan,
    batches: "Iterable[pa.RecordBatch]",  # strings: pyarrow is imported when a step first uses it (lazy_imports.py)
    schema: "pa.Schema",
    rows: int,
    facts: RunFacts,
    *,
    preformatted: bool = False,
) -> FileSet:
    """The export's files (parts, compressed, encrypted as the spec asks) from its output rows, in this
    machine's work folder, with copies in an object-store work folder for the upload step.

    preformatted: the batches hold rows already written as lines (serialization.row_lines).
    Raises dg.Failure naming the export for a value the format cannot write or a failed encryption.
    """
    name = plan.name
    folder = local_work_dir(context, name) / "files"
    window = export_window(context, plan)

    def name_for_part(part: int) -> str:
        values = NameValues(
            export=name,
            model=plan.model_name,
            run_time=facts.extracted_at,
            ext=plan.ext,
            part=part,
            window_start=window.start if window else None,
            window_end=window.end if window else None,
        )
        return render_file_name(plan.file_template, values)

    with unwritable_values_fail(name):
        files = write_files(
            batches,
            [field.header for field in plan.fields],
            folder,
            plaintext_name(plan, name_for_part) if plan.encryption else name_for_part,
            output_settings(plan, facts.extracted_at),
            schema=schema,
            preformatted=preformatted,
        )
    if plan.encryption is not None:
        try:
            plain_files = files
            files = encrypt_files(plain_files, encryption_keys(plan), [name_for_part(part) for part in range(1, len(plain_files) + 1)])
        except EncryptionError as error:
            for written in plain_files:
                written.path.unlink(missing_ok=True)
            # Before any upload: nothing of this run reaches the partner's folder.
            raise dg.Failure(f"For export {name}, {error}", allow_retries=False) from None
    return FileSet(tuple(files), rows, facts, store_files(files, facts.work_dir))


def keep_rejected_list(context: dg.OpExecutionContext, plan: ExportPlan, folder: str, rejected: Iterable[RejectedRow]) -> str | None:
    """The rejected rows logged and listed in rejected.csv, beside the stage files in `folder` (which
    every worker reads); its location, or None when no row was rejected."""
    rejected = list(rejected)
    if not rejected:
        return None
    for row in rejected:
        context.log.warning(f"Skipped {row.describe()}")
    listed = str(write_rejected_csv(rejected, local_work_dir(context, plan.name) / "rejected.csv"))
    if is_remote(folder):
        copy_file(listed, join(folder, "rejected.csv"))
        listed = join(folder, "rejected.csv")
    return listed
