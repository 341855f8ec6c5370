"""ExportPlan -> one graph-backed asset: extract -> map -> serialize -> upload.

Ops hand each other small StageFile records; the rows themselves stay in Arrow stage files
in a run-scoped work folder, so memory is bounded by the batch size and a re-execution
from failure reuses the earlier ops' files. The work folder is local, or with EXPORT_WORK_URL
in an object store, so that each step may run on another worker (stages/work_location.py). (No `from __future__ import annotations`:
Dagster reads the op signatures' annotations as real types.)
"""


import dataclasses
import datetime as dt
import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from export_pipelines.automation.schedules import describe_schedule
from export_pipelines.automation.windows import partitions_for, range_from_tags, wall_clock_days
from export_pipelines.naming import EXPORTS_TAG, asset_key_for, export_names_of_assets, export_pool, export_run_tags, op_name_for
from export_pipelines.database_urls import safe_url
from export_pipelines.delivery_settings import DeliverySettings
from export_pipelines.retries import classified_errors, retry_schedule_for
from export_pipelines.run_history import run_is_over
from export_pipelines.run_launcher import record_host
from export_pipelines.source import SourceDatabase
from export_pipelines.spec.export import ConnectionTarget, Incremental
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.stages.aggregation import aggregate_stage_file
from export_pipelines.stages.bad_rows import write_rejected_csv
from export_pipelines.stages.extract import extract_to_stage_file
from export_pipelines.stages.query import TimeWindow
from export_pipelines.stages.file_naming import NameValues, render_file_name
from export_pipelines.stages.mapping import map_stage_file
from export_pipelines.spec.encryption import encryption_keys, plaintext_name
from export_pipelines.stages.encryption import EncryptionError, encrypt_files
from export_pipelines.stages.serialization import OutputSettings, dialect_of, raw_json_columns, write_files
from export_pipelines.stages.text_format import UnwritableValue
from export_pipelines.stages.stage_files import read_batches, read_schema
from export_pipelines.stages.work_location import copy_file, exists, is_remote, join, remove_tree, work_root_from_environment
from export_pipelines.spec.connections import DeliveryConnection
from export_pipelines.targets.base import Delivery, DeliveredFile, LocalFile, Target
from export_pipelines.targets.registry import downloads_folder, target_for

ROWS_CHECK = "rows_written_match_expected"


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


@dataclass(frozen=True)
class StageFile:
    """What one op hands the next: where its rows are and how many."""

    path: str
    rows: int
    facts: RunFacts


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
    if f"/{context.run_id}/" in stage.facts.work_dir:
        return
    context.log.info(f"Re-execution: using the files an earlier run of this export left in {stage.facts.work_dir}")
    if isinstance(stage, StageFile):
        needed = [stage.path]
    else:
        needed = [join(stage.stored_in, file.name) for file in stage.files] if stage.stored_in else [str(file.path) for file in stage.files]
    gone = [location for location in needed if not exists(location)]
    if gone:
        raise dg.Failure(
            description=(
                f"For export {export}, this re-execution needs the files an earlier run left in {stage.facts.work_dir}, "
                f"and {gone[0]} is gone: a re-execution of that run has already delivered (a run's work files are removed "
                f"once it delivers), or they were deleted. Look at the window's latest run (`export-pipelines log {export}`); "
                f"to deliver the window again, start a new run of it instead of re-executing this one."
            )
        )


def export_window(context: dg.OpExecutionContext, plan: ExportPlan) -> TimeWindow | None:
    """The run's partition or partition range as a half-open window in the export's timezone."""
    if plan.window_field is None:
        return None
    window = context.partition_time_window
    return TimeWindow(plan.window_field, window.start, window.end)


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


def build_export_asset(plan: ExportPlan, connections: Mapping[str, DeliveryConnection] | None = None) -> dg.AssetsDefinition:
    connections = dict(connections or {})
    if isinstance(plan.spec.target, ConnectionTarget) and plan.spec.target.connection not in connections:
        raise ValueError(f"For export {plan.spec.name}, connection {plan.spec.target.connection!r} was not passed to the factory")
    spec = plan.spec
    name = spec.name
    key = asset_key_for(name)

    # The steps that touch the database and the server retry transient errors only (retries.py).
    retry_schedule = retry_schedule_for(spec.retries)

    # An export with `after` depends on its upstream asset, so the dependency is an edge in the
    # lineage graph. The input carries nothing: the dependency sensor keeps deciding when the export
    # runs (after the delay, per window); in one run with the upstream it waits for the upstream's upload.
    upstream_ins = {"upstream": dg.In(dg.Nothing)} if spec.after else None

    @dg.op(
        name=op_name_for(name, "extract"),
        ins=upstream_ins,
        description=f"Query {plan.model_name} into an Arrow stage file, filters pushed into SQL.",
    )
    def extract(context: dg.OpExecutionContext, source_database: SourceDatabase) -> dg.Output[StageFile]:
        tag_export_run(context, plan)
        window = export_window(context, plan)
        if window is not None:
            check_window_length(plan, window)
            context.log.info(f"Window [{window.start.isoformat()}, {window.end.isoformat()}) on {window.source.label}")
        folder = work_dir(context, name)
        with classified_errors(context, retry_schedule, name, "extract", rerun_command(name)):
            engine = source_database.create_engine(storage_dir(context).parent)
            try:
                result = extract_to_stage_file(
                    engine, plan, join(folder, "extract.arrow"), batch_size=spec.batch_size, window=window, max_bad_rows=spec.max_bad_rows
                )
            finally:
                engine.dispose()
        context.log.info(f"Extracted {result.rows} rows of {plan.model_name} from {safe_url(engine.url)}")
        rejected_file = None
        if result.rejected:
            for row in result.rejected:
                context.log.warning(f"Skipped {row.describe()}")
            rejected_file = str(write_rejected_csv(list(result.rejected), local_work_dir(context, name) / "rejected.csv"))
            if is_remote(folder):
                copy_file(rejected_file, join(folder, "rejected.csv"))
                rejected_file = join(folder, "rejected.csv")
        facts = RunFacts(result.expected_rows, result.extracted_at, folder, None, len(result.rejected), rejected_file)
        stage = StageFile(str(result.path), result.rows, facts)
        metadata = {"rows_out": result.rows, "rows_expected": result.expected_rows, "rows_rejected": len(result.rejected)}
        return dg.Output(stage, metadata=metadata)

    @dg.op(name=op_name_for(name, "map"), description="Rename, Default and Replace values, column at a time.")
    def map_fields(context: dg.OpExecutionContext, extracted: StageFile) -> dg.Output[StageFile]:
        tag_export_run(context, plan)
        note_reused_input(context, extracted, name)
        destination = join(work_dir(context, name), "mapped.arrow")
        with unwritable_values_fail(name):
            rows = map_stage_file(plan, extracted.path, destination, batch_size=spec.batch_size)
        stage = StageFile(destination, rows, extracted.facts)
        return dg.Output(stage, metadata={"rows_in": extracted.rows, "rows_out": rows})

    @dg.op(name=op_name_for(name, "aggregate"), description="One row per group; partials from the database's GROUP BY or from Arrow batches.")
    def aggregate(context: dg.OpExecutionContext, mapped: StageFile) -> dg.Output[StageFile]:
        tag_export_run(context, plan)
        note_reused_input(context, mapped, name)
        destination = join(work_dir(context, name), "aggregated.arrow")
        with unwritable_values_fail(name):
            result = aggregate_stage_file(plan, mapped.path, destination, batch_size=spec.batch_size)
        expected_groups = mapped.facts.expected_rows
        if result.execution == "arrow":
            # The extract counted rows, not groups: every counted row that was not rejected as a bad row
            # must be in a group, and the files hold the groups.
            kept_rows = mapped.facts.expected_rows - mapped.facts.rejected_rows
            if result.rows_in != kept_rows:
                raise dg.Failure(
                    f"For export {name}, aggregated {result.rows_in} rows but the extract counted {kept_rows} "
                    f"({mapped.facts.expected_rows} matching, {mapped.facts.rejected_rows} rejected as bad rows)"
                )
            expected_groups = result.groups
        facts = dataclasses.replace(mapped.facts, expected_rows=expected_groups, aggregation=result.execution)
        metadata = {"rows_in": result.rows_in, "rows_out": result.groups, "aggregation": result.execution}
        return dg.Output(StageFile(destination, result.groups, facts), metadata=metadata)

    @dg.op(name=op_name_for(name, "serialize"), description=f"Write {spec.format.upper()} files ({spec.compression}).")
    def serialize(context: dg.OpExecutionContext, mapped: StageFile) -> dg.Output[FileSet]:
        tag_export_run(context, plan)
        note_reused_input(context, mapped, name)
        folder = local_work_dir(context, name) / "files"
        settings = OutputSettings(
            dialect=dialect_of(spec),
            file_format=spec.format,
            raw_json=raw_json_columns(plan),
            compression=spec.compression,
            max_rows_per_file=spec.max_rows_per_file,
            archive_time=mapped.facts.extracted_at,
        )

        window = export_window(context, plan)

        def name_for_part(part: int) -> str:
            values = NameValues(
                export=name,
                model=plan.model_name,
                run_time=mapped.facts.extracted_at,
                ext=plan.ext,
                part=part,
                window_start=window.start if window else None,
                window_end=window.end if window else None,
            )
            return render_file_name(plan.file_template, values)

        with unwritable_values_fail(name):
            files = write_files(
                read_batches(mapped.path, spec.batch_size),
                [field.header for field in plan.fields],
                folder,
                plaintext_name(plan, name_for_part) if plan.encryption else name_for_part,
                settings,
                schema=read_schema(mapped.path),
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
        file_set = FileSet(tuple(files), mapped.rows, mapped.facts, store_files(files, mapped.facts.work_dir))
        return dg.Output(
            file_set,
            metadata={"rows_in": mapped.rows, "rows_out": sum(f.rows for f in files), "files": len(files)},
        )

    @dg.op(
        name=op_name_for(name, "upload"),
        description=f"Deliver to {spec.target_label}: temporary name, verify, rename; then retention.",
        out={"result": dg.Out(dg.Nothing), ROWS_CHECK: dg.Out(is_required=False)},
        # One writer per export: a second run's upload waits for the pool's one slot (dagster.yaml).
        pool=export_pool(name),
    )
    def upload(context: dg.OpExecutionContext, delivery_settings: DeliverySettings, file_set: FileSet):
        tag_export_run(context, plan)
        note_reused_input(context, file_set, name)
        file_set = fetch_files(file_set, local_work_dir(context, name) / "files")
        with classified_errors(context, retry_schedule, name, "upload", rerun_command(name)):
            target, delivery, redirected = deliver_file_set(context, plan, connections, delivery_settings, file_set)
        rows_written = sum(file.rows for file in delivery.files)
        finished = dt.datetime.now(dt.UTC)
        metadata = materialization_metadata(
            plan, file_set, delivery, rows_written, target.location, finished, redirected, export_window(context, plan)
        )
        facts = file_set.facts
        if facts.rejected_file is not None:
            kept = keep_rejected_rows(facts.rejected_file, storage_dir(context), name, file_set.files)
            context.log.warning(f"{facts.rejected_rows} row(s) were skipped; they are listed in {kept}")
            metadata["rejected_file"] = dg.MetadataValue.path(str(kept))
        yield dg.Output(None, "result", metadata=metadata)
        # Skipped rows are accounted for: they were counted by the source, and listed, not lost.
        expected_rows = facts.expected_rows - (0 if plan.aggregates else facts.rejected_rows)
        yield dg.AssetCheckResult(
            check_name=ROWS_CHECK,
            asset_key=key,
            passed=rows_written == expected_rows,
            metadata={"rows_written": rows_written, "rows_expected": expected_rows, "rows_rejected": facts.rejected_rows},
            description="Rows in the delivered files against a COUNT(*) of the same query in the same snapshot.",
        )
        _remove_work_dirs(file_set, local_work_dir(context, name))

    # The server kind shows next to the format in the asset catalog (sftp, ftps, s3).
    target_kinds = {connections[spec.target.connection].type} if isinstance(spec.target, ConnectionTarget) else set()
    check = dg.AssetCheckSpec(
        ROWS_CHECK,
        asset=key,
        description="Rows written equal the rows the source query counted.",
    )

    def run_stages(extracted):
        mapped = map_fields(extracted)
        result, check_result = upload(serialize(aggregate(mapped) if plan.aggregates else mapped))
        return {"result": result, check.get_python_identifier(): check_result}

    if spec.after:

        def export_asset(upstream):
            return run_stages(extract(upstream))

    else:

        def export_asset():
            return run_stages(extract())

    return dg.graph_asset(
        export_asset,
        key=key,
        ins={"upstream": dg.AssetIn(asset_key_for(spec.after.export), dagster_type=dg.Nothing)} if spec.after else None,
        group_name=plan.model_name,
        description=spec.description or f"Export of {plan.model_name} to {spec.target_label} as {plan.ext}.",
        metadata=definition_metadata(plan),
        kinds={spec.format, *target_kinds},
        owners=[spec.owner] if spec.owner else None,
        tags={"export": name, "model": plan.model_name},
        check_specs=[check],
        partitions_def=partitions_for(spec.incremental),
        backfill_policy=backfill_policy(spec.incremental),
    )


def backfill_policy(incremental: Incremental | None) -> dg.BackfillPolicy | None:
    """How Dagster's backfill daemon splits a range: one run (one file set for the range), or one
    run per window (a file set each). The runs of one export never deliver at once either way:
    the upload step's pool has one slot (dagster.yaml)."""
    if incremental is None:
        return None
    return dg.BackfillPolicy.multi_run(1) if incremental.backfill == "run_per_window" else dg.BackfillPolicy.single_run()


def deliver_file_set(
    context: dg.OpExecutionContext,
    plan: ExportPlan,
    connections: Mapping[str, DeliveryConnection],
    delivery_settings: DeliverySettings,
    file_set: FileSet,
) -> tuple[Target, Delivery, bool]:
    """The delivery step of spec and ad-hoc exports alike: the target, what it received, and
    whether redirect_to_download kept the files local. Raises what the target raises
    (DeliveryError, MissingSecretError, OSError): the caller classifies it (retries.py)."""
    spec = plan.spec
    redirected = delivery_settings.redirect_to_download and spec.target != "download"
    if redirected:
        context.log.warning(f"redirect_to_download is on: {spec.name}'s files stay in its download folder, not {spec.target_label}")
    target = target_for(
        plan,
        dict(connections),
        storage_dir(context),
        file_set.facts.extracted_at,
        context.run_id,
        functools.partial(run_is_over, context.instance),
        redirected,
    )
    # On failure the work files stay, so a re-execution from this step delivers without extracting again.
    delivery = target.deliver(file_set.files, context.log.info)
    return target, delivery, redirected


def store_files(files: list[LocalFile], work_folder: str) -> str | None:
    """With an object-store work folder, copies of the serialized files there (streamed), so the
    upload step finds them on any worker; the folder's location, or None for a local work folder."""
    if not is_remote(work_folder):
        return None
    stored_in = join(work_folder, "files")
    for file in files:
        copy_file(str(file.path), join(stored_in, file.name))
    return stored_in


def fetch_files(file_set: FileSet, folder: Path) -> FileSet:
    """The file set with every file on this machine: a file serialize wrote on another worker is
    copied from the object store into `folder` first."""
    if file_set.stored_in is None or all(file.path.exists() for file in file_set.files):
        return file_set
    files = []
    for file in file_set.files:
        copy_file(join(file_set.stored_in, file.name), str(folder / file.name))
        files.append(dataclasses.replace(file, path=folder / file.name))
    return dataclasses.replace(file_set, files=tuple(files))


def keep_rejected_rows(rejected: str, storage: Path, export: str, files: tuple[LocalFile, ...]) -> Path:
    """The rejected-rows list stays with the run's files in the export's download folder; it is
    never sent to the partner, whatever the target."""
    folder = downloads_folder(storage, export)
    folder.mkdir(parents=True, exist_ok=True)
    stem = files[0].name.split(".")[0] if files else "no_files"
    destination = folder / f"{stem}.rejected.csv"
    copy_file(rejected, str(destination))
    return destination


def _remove_work_dirs(file_set: FileSet, local_folder: Path) -> None:
    """Delivered: the run's intermediate files are no longer needed for a re-execution."""
    folders = {file_set.facts.work_dir, str(local_folder), *(str(file.path.parent.parent) for file in file_set.files)}
    for folder in folders:
        remove_tree(folder, keep=work_root_from_environment())


def definition_metadata(plan: ExportPlan) -> dict:
    """What the asset's Overview shows of the spec: model, target, schedule (or `after`), the window
    column of an incremental export, and each field's source and header as a table."""
    spec = plan.spec
    metadata = {
        "model": plan.model_name,
        "target": spec.target_label,
        "format": spec.format,
        "compression": spec.compression,
        "schedule": describe_schedule(plan),
        "file_name": plan.file_template,
        "fields": dg.MetadataValue.table(
            records=[dg.TableRecord({"from": f.source.label, "to": f.header}) for f in plan.fields],
            schema=dg.TableSchema(columns=[dg.TableColumn("from", "string"), dg.TableColumn("to", "string")]),
        ),
    }
    if plan.window_field is not None:
        window = spec.incremental
        metadata["window_column"] = (
            f"{plan.window_field.label} ({window.grain} windows from {window.start.isoformat()}, {window.timezone})"
        )
    return metadata


def window_label(window: TimeWindow | None) -> str:
    if window is None:
        return "snapshot"
    return f"{window.source.label} in [{window.start.isoformat()}, {window.end.isoformat()})"


@contextmanager
def unwritable_values_fail(export: str) -> Iterator[None]:
    """A value the file's formats cannot write fails the step at once, by name: no row is at hand to
    reject there (a group's value, a Replace's output, a time outside the years in timestamp_timezone)."""
    try:
        yield
    except UnwritableValue as error:
        raise dg.Failure(f"For export {export}, {error}", allow_retries=False) from None


def materialization_metadata(
    plan: ExportPlan,
    file_set: FileSet,
    delivery: Delivery,
    rows_written: int,
    location: str,
    finished: dt.datetime,
    redirected: bool,
    window: TimeWindow | None = None,
) -> dict:
    delivered = delivery.files
    metadata = {
        "rows_extracted": file_set.rows,
        "rows_written": rows_written,
        "rows_expected": file_set.facts.expected_rows,
        "rows_rejected": file_set.facts.rejected_rows,
        "files": _files_table(delivered),
        "file_names": dg.MetadataValue.json([f.name for f in delivered]),
        "file_size_bytes": sum(f.bytes for f in delivered),
        "window": window_label(window),
        "snapshot_at": file_set.facts.extracted_at.isoformat(),
        "target": f"download (redirected from {plan.spec.target_label})" if redirected else plan.spec.target_label,
        "location": dg.MetadataValue.url(location) if "://" in location else dg.MetadataValue.path(location),
        "duration_seconds": round((finished - file_set.facts.extracted_at).total_seconds(), 3),
        "upload_seconds": round(sum(f.seconds for f in delivered), 3),
        **({"aggregation": file_set.facts.aggregation} if file_set.facts.aggregation else {}),
    }
    if isinstance(plan.spec.target, ConnectionTarget) and not redirected:
        metadata["connection"] = plan.spec.target.connection
    if delivery.completion_file is not None:
        metadata["completion_file"] = delivery.completion_file.location
    if plan.encryption is not None:
        # The delivered bytes are ciphertext; the analyst checking a decrypted file compares these.
        metadata["plaintext_sha256"] = dg.MetadataValue.json({f.name: f.plaintext_sha256 for f in file_set.files})
    if delivery.swept:
        metadata["swept_temporary_files"] = dg.MetadataValue.json(delivery.swept)
    if delivery.retired:
        metadata["retention_deleted"] = dg.MetadataValue.json(delivery.retired)
    urls = [f.url for f in delivered if f.url]
    if urls:
        metadata["download_urls"] = dg.MetadataValue.json(urls)
    return metadata


def _files_table(delivered: list[DeliveredFile]) -> dg.MetadataValue:
    columns = {"name": "string", "rows": "int", "bytes": "int", "sha256": "string", "location": "string", "seconds": "float", "verified_by": "string"}
    return dg.MetadataValue.table(
        records=[dg.TableRecord({column: getattr(f, column) for column in columns}) for f in delivered],
        schema=dg.TableSchema(columns=[dg.TableColumn(column, kind) for column, kind in columns.items()]),
    )
