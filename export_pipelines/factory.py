"""ExportPlan -> one graph-backed asset: extract -> map -> serialize -> upload (fanned out: fan_out.py).

Ops hand each other small StageFile records; the rows themselves stay in Arrow stage files
in a run-scoped work folder, so memory is bounded by the batch size and a re-execution
from failure reuses the earlier ops' files. The work folder is local, or with EXPORT_WORK_URL
in an object store, so that each step may run on another worker (stages/work_location.py). (No `from __future__ import annotations`:
Dagster reads the op signatures' annotations as real types.)
"""


import contextlib
import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg
from dagster._core.definitions.dependency import DynamicCollectDependencyDefinition
from dagster._core.storage.tags import KIND_PREFIX

from export_pipelines.automation.schedules import describe_schedule
from export_pipelines.automation.windows import partitions_for
from export_pipelines.naming import asset_key_for, export_pool, op_name_for, shared_op_name
from export_pipelines.database_urls import safe_url
from export_pipelines.delivery_settings import DeliverySettings
from export_pipelines.retries import classified_errors, retry_schedule_for
from export_pipelines.run_history import run_is_over
from export_pipelines.source import SourceDatabase
from export_pipelines.spec.export import ConnectionTarget, Incremental
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.stages.aggregation import aggregate_stage_file
from export_pipelines.stages.extract import extract_to_stage_file
from export_pipelines.stages.lines_alongside import line_formatter, lines_signature
from export_pipelines.stages.query import TimeWindow
from export_pipelines.stages.mapping import map_stage_file
from export_pipelines.stages.stage_files import read_batches, read_schema, stage_location
from export_pipelines.stages.work_location import copy_file, is_remote, join, remove_tree, work_root_from_environment
from export_pipelines.spec.connections import DeliveryConnection
from export_pipelines import fan_out
from export_pipelines.targets.base import Delivery, DeliveredFile, LocalFile, Target
from export_pipelines.targets.download_store import downloads_store_from_environment, keep_in_store
from export_pipelines.targets.remote import RUN_ID_PATTERN
from export_pipelines.targets.registry import downloads_folder, target_for
from export_pipelines.steps import (
    ExportBinding,
    FileSet,
    RunFacts,
    StageFile,
    bind_export,
    checked_window,
    export_binding,
    export_window,
    keep_rejected_list,
    local_work_dir,
    note_reused_input,
    output_settings,
    running_export,
    rerun_command,
    storage_dir,
    unwritable_values_fail,
    work_dir,
    write_file_set,
)

ROWS_CHECK = "rows_written_match_expected"
# A run's work folder is named by its Dagster run id.
RUN_ID_FOLDER = re.compile(RUN_ID_PATTERN)

# The stage ops below are defined once and shared by every export's graph, where each runs under
# the export's own node name, <export>__<stage> (naming.op_name_for: the step keys), and finds
# its export from that node (steps.running_export). Dagster builds an op definition in about a
# millisecond (it inspects the function's signature again and again): one per stage and export
# was most of a thousand exports' load. Only the upload op is the export's own: it carries the
# export's pool.


@dg.op(
    name=shared_op_name("extract"),
    # An export with `after` depends on its upstream asset, so the dependency is an edge in the
    # lineage graph. The input carries nothing: the dependency sensor keeps deciding when the export
    # runs (after the delay, per window); in one run with the upstream it waits for the upstream's upload.
    # Without `after` it is left unconnected.
    ins={"upstream": dg.In(dg.Nothing)},
    description="Query the export's model into an Arrow stage file, filters pushed into SQL.",
)
def extract(context: dg.OpExecutionContext, source_database: SourceDatabase) -> dg.Output[StageFile]:
    plan = running_export(context)
    name = plan.name
    window = checked_window(context, plan)
    if window is not None:
        context.log.info(f"Window [{window.start.isoformat()}, {window.end.isoformat()}) on {window.source.label}")
    folder = work_dir(context, name)
    settings = output_settings(plan, dt.datetime.now(dt.UTC))
    with classified_errors(context, retry_schedule_for(plan.spec.retries), name, "extract", rerun_command(name)):
        engine = source_database.create_engine(storage_dir(context).parent)
        try:
            result = extract_to_stage_file(
                engine,
                plan,
                join(folder, "extract.arrow"),
                batch_size=plan.spec.batch_size,
                window=window,
                max_bad_rows=plan.spec.max_bad_rows,
                # Formatted while extracting (stages/lines_alongside.py): serialize then only writes them out.
                lines_to=join(folder, "lines.arrow"),
                to_lines=line_formatter(plan, settings),
            )
        finally:
            engine.dispose()
    streams = f" in {result.streams} streams of one snapshot" if result.streams > 1 else ""
    context.log.info(f"Extracted {result.rows} rows of {plan.model_name} from {safe_url(engine.url)}{streams}")
    rejected_file = keep_rejected_list(context, plan, folder, result.rejected)
    facts = RunFacts(result.expected_rows, result.extracted_at, folder, None, len(result.rejected), rejected_file)
    lines = None if result.lines is None else stage_location(result.lines)
    stage = StageFile(stage_location(result.path), result.rows, facts, lines, None if lines is None else lines_signature(plan, settings))
    metadata = {
        "rows_out": result.rows,
        "rows_expected": result.expected_rows,
        "rows_rejected": len(result.rejected),
        "formatted_while_extracting": result.lines is not None,
        "streams": result.streams,
    }
    return dg.Output(stage, metadata=metadata)


@dg.op(name=shared_op_name("map"), description="Rename, Default and Replace values, column at a time.")
def map_fields(context: dg.OpExecutionContext, extracted: StageFile) -> dg.Output[StageFile]:
    plan = running_export(context)
    note_reused_input(context, extracted, plan.name)
    if extracted.lines is not None:
        # The extract mapped and formatted every row already; serialize writes its lines file out.
        context.log.info(f"Mapped and formatted while extracting: {extracted.lines}")
        return dg.Output(extracted, metadata={"rows_in": extracted.rows, "rows_out": extracted.rows})
    stage = mapped_rows(context, plan, extracted)
    return dg.Output(stage, metadata={"rows_in": extracted.rows, "rows_out": stage.rows})


@dg.op(name=shared_op_name("aggregate"), description="One row per group; partials from the database's GROUP BY or from Arrow batches.")
def aggregate(context: dg.OpExecutionContext, mapped: StageFile) -> dg.Output[StageFile]:
    plan = running_export(context)
    name = plan.name
    note_reused_input(context, mapped, name)
    destination = join(work_dir(context, name), "aggregated.arrow")
    with unwritable_values_fail(name):
        result = aggregate_stage_file(plan, mapped.path, destination, batch_size=plan.spec.batch_size)
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


@dg.op(name=shared_op_name("serialize"), description="Write the export's files: its format, parts and compression.")
def serialize(context: dg.OpExecutionContext, mapped: StageFile) -> dg.Output[FileSet]:
    plan = running_export(context)
    name = plan.name
    note_reused_input(context, mapped, name)
    if mapped.lines is not None and mapped.lines_signature != lines_signature(plan, output_settings(plan, mapped.facts.extracted_at)):
        # A re-execution after the spec's format, dialect or fields were edited: the lines the extract
        # wrote follow the old spec, so the rows are mapped and formatted again from its stage file.
        context.log.warning(f"The spec of {name} changed since its extract formatted the rows: mapping and formatting them again")
        mapped = mapped_rows(context, plan, mapped)
    rows_file = mapped.lines or mapped.path
    file_set = write_file_set(
        context,
        plan,
        read_batches(rows_file, plan.spec.batch_size),
        read_schema(rows_file),
        mapped.rows,
        mapped.facts,
        preformatted=mapped.lines is not None,
    )
    return dg.Output(
        file_set,
        metadata={"rows_in": mapped.rows, "rows_out": sum(f.rows for f in file_set.files), "files": len(file_set.files)},
    )


def upload(context: dg.OpExecutionContext, inputs: Mapping[str, FileSet]) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The upload step's body (every export's upload op, upload_op): deliver, keep the rejected rows, check the rows."""
    plan = running_export(context)
    name = plan.name
    retry_schedule = retry_schedule_for(plan.spec.retries)
    file_set = inputs["file_set"]
    note_reused_input(context, file_set, name)
    file_set = fetch_files(file_set, local_work_dir(context, name) / "files")
    facts = file_set.facts
    kept = None
    if facts.rejected_file is not None:
        # Kept before the partner gets anything: a store that fails fails the run while nothing
        # is delivered (a re-run is then safe), never a run recorded failed after delivering.
        with classified_errors(context, retry_schedule, name, "upload", rerun_command(name)):
            kept = keep_rejected_rows(facts.rejected_file, storage_dir(context), name, file_set.files, downloads_store_from_environment())
        context.log.warning(f"{facts.rejected_rows} row(s) were skipped; they are listed in {kept}")
    with classified_errors(context, retry_schedule, name, "upload", rerun_command(name)):
        target, delivery, redirected = deliver_file_set(context, plan, export_binding(context).connections, context.resources.delivery_settings, file_set)
    rows_written = sum(file.rows for file in delivery.files)
    finished = dt.datetime.now(dt.UTC)
    metadata = materialization_metadata(
        plan, file_set, delivery, rows_written, target.location, finished, redirected, export_window(context, plan)
    )
    if kept is not None:
        metadata["rejected_file"] = dg.MetadataValue.url(kept) if is_remote(kept) else dg.MetadataValue.path(kept)
    yield dg.Output(None, "result", metadata=metadata)
    # Skipped rows are accounted for: they were counted by the source, and listed, not lost.
    expected_rows = facts.expected_rows - (0 if plan.aggregates else facts.rejected_rows)
    yield dg.AssetCheckResult(
        check_name=ROWS_CHECK,
        asset_key=asset_key_for(name),
        passed=rows_written == expected_rows,
        metadata={"rows_written": rows_written, "rows_expected": expected_rows, "rows_rejected": facts.rejected_rows},
        description="Rows in the delivered files against a COUNT(*) of the same query in the same snapshot.",
    )
    _remove_work_dirs(file_set, local_work_dir(context, name))


def upload_op(plan: ExportPlan) -> dg.OpDefinition:
    """The export's upload op: the one op of its own, as it carries the export's pool (one writer per
    export: a second run's upload waits for the pool's one slot, dagster.yaml). Built from the plain
    body (context, inputs), which Dagster takes without inspecting a signature."""
    return dg.OpDefinition(
        compute_fn=upload,
        name=op_name_for(plan.name, "upload"),
        ins={"file_set": dg.In(FileSet)},
        outs={"result": dg.Out(dg.Nothing), ROWS_CHECK: dg.Out(is_required=False)},
        required_resource_keys={"delivery_settings"},
        description=f"Deliver to {plan.spec.target_label}: temporary name, verify, rename; then retention.",
        pool=export_pool(plan.name),
    )


# The names of the shared stage ops (code_location: no export owns these names).
SHARED_OP_NAMES = frozenset(op.name for op in (extract, map_fields, aggregate, serialize, *fan_out.CHUNK_OPS))


def build_export_asset(plan: ExportPlan, connections: Mapping[str, DeliveryConnection] | None = None) -> dg.AssetsDefinition:
    """The export's graph-backed asset exports/<name>: its stages (fanned out or not), its row-count
    check, and what the catalog shows of the spec. Raises ValueError when the spec's connection is
    not in `connections`, and what Dagster raises for a definition it refuses."""
    connections = dict(connections or {})
    if isinstance(plan.spec.target, ConnectionTarget) and plan.spec.target.connection not in connections:
        raise ValueError(f"For export {plan.spec.name}, connection {plan.spec.target.connection!r} was not passed to the factory")
    spec = plan.spec
    key = asset_key_for(spec.name)
    check = dg.AssetCheckSpec(ROWS_CHECK, asset=key, description="Rows written equal the rows the source query counted.")
    description = spec.description or f"Export of {plan.model_name} to {spec.target_label} as {plan.ext}."
    graph = export_graph(plan, check, description)
    bind_export(graph, ExportBinding(plan, connections))
    # The server kind shows next to the format in the asset catalog (sftp, ftps, s3).
    target_kinds = {connections[spec.target.connection].type} if isinstance(spec.target, ConnectionTarget) else set()
    tags = {"export": spec.name, "model": plan.model_name, **{f"{KIND_PREFIX}{kind}": "" for kind in sorted({spec.format, *target_kinds})}}
    return dg.AssetsDefinition.from_graph(
        graph,
        keys_by_input_name={"upstream": asset_key_for(spec.after.export)} if spec.after else None,
        keys_by_output_name={"result": key},
        group_name=plan.model_name,
        descriptions_by_output_name={"result": description},
        metadata_by_output_name={"result": definition_metadata(plan)},
        tags_by_output_name={"result": tags},
        owners_by_output_name={"result": [spec.owner]} if spec.owner else None,
        check_specs=[check],
        partitions_def=partitions_for(spec.incremental),
        backfill_policy=backfill_policy(spec.incremental),
    )


def export_graph(plan: ExportPlan, check: dg.AssetCheckSpec, description: str) -> dg.GraphDefinition:
    """The export's op graph, exports__<name>: extract -> map -> [aggregate] -> serialize -> upload, or
    fanned out (fan_out.py) plan_chunks -> extract_chunk, map_chunk per chunk -> join_chunks (or
    combine_chunks -> serialize) -> upload. Its nodes are named <export>__<stage> (the step keys)."""
    name = plan.name

    def output_of(stage: str) -> dg.DependencyDefinition:
        return dg.DependencyDefinition(op_name_for(name, stage), "result")

    if plan.parallel is not None and plan.parallel.fans_out:
        collected = DynamicCollectDependencyDefinition(op_name_for(name, "map_chunk"), "result")
        stages = {
            "plan_chunks": (fan_out.plan_chunks_op, {}),
            "extract_chunk": (fan_out.extract_chunk, {"chunk": output_of("plan_chunks")}),
            "map_chunk": (fan_out.map_chunk, {"extracted": output_of("extract_chunk")}),
        }
        if plan.aggregates:
            stages["combine_chunks"] = (fan_out.combine_chunks, {"chunks": collected})
            stages["serialize"] = (serialize, {"mapped": output_of("combine_chunks")})
        else:
            stages["join_chunks"] = (fan_out.join_chunks, {"chunks": collected})
    else:
        stages = {"extract": (extract, {}), "map": (map_fields, {"extracted": output_of("extract")})}
        if plan.aggregates:
            stages["aggregate"] = (aggregate, {"mapped": output_of("map")})
        stages["serialize"] = (serialize, {"mapped": output_of(list(stages)[-1])})
    stages["upload"] = (upload_op(plan), {"file_set": output_of(list(stages)[-1])})

    first, last = op_name_for(name, next(iter(stages))), op_name_for(name, "upload")
    return dg.GraphDefinition(
        name=asset_key_for(name).to_python_identifier(),
        description=description,
        node_defs=[op for op, _ in stages.values()],
        dependencies={dg.NodeInvocation(op.name, op_name_for(name, stage)): inputs for stage, (op, inputs) in stages.items()},
        input_mappings=[dg.InputMapping(graph_input_name="upstream", mapped_node_name=first, mapped_node_input_name="upstream")] if plan.spec.after else None,
        output_mappings=[
            dg.OutputMapping(graph_output_name="result", mapped_node_name=last, mapped_node_output_name="result"),
            dg.OutputMapping(graph_output_name=check.get_python_identifier(), mapped_node_name=last, mapped_node_output_name=ROWS_CHECK),
        ],
    )


def mapped_rows(context: dg.OpExecutionContext, plan: ExportPlan, extracted: StageFile) -> StageFile:
    """The extract's rows mapped into the run's mapped.arrow (the map step's work, and serialize's when the
    lines the extract wrote follow an edited spec). Raises dg.Failure for a value the mapping cannot write."""
    destination = join(work_dir(context, plan.name), "mapped.arrow")
    with unwritable_values_fail(plan.name):
        rows = map_stage_file(plan, extracted.path, destination, batch_size=plan.spec.batch_size)
    return StageFile(destination, rows, extracted.facts)


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
        downloads_store_from_environment(),
    )
    # On failure the work files stay, so a re-execution from this step delivers without extracting again.
    delivery = target.deliver(file_set.files, context.log.info)
    return target, delivery, redirected


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


def keep_rejected_rows(rejected: str, storage: Path, export: str, files: tuple[LocalFile, ...], downloads_store: str | None = None) -> str:
    """The rejected-rows list stays with the run's files in the export's download folder (in
    `downloads_store`, $EXPORT_DOWNLOADS_STORE_URL, when it is set); it is never sent to the
    partner, whatever the target. Returns where it is: a local path or an s3:// URL. Raises
    OSError, or DeliveryError naming the export and the store."""
    stem = files[0].name.split(".")[0] if files else "no_files"
    if downloads_store is None:
        folder = downloads_folder(storage, export)
        folder.mkdir(parents=True, exist_ok=True)
        destination = str(folder / f"{stem}.rejected.csv")
        copy_file(rejected, destination)
        return destination
    return keep_in_store(downloads_store, export, rejected, f"{stem}.rejected.csv")


def _remove_work_dirs(file_set: FileSet, local_folder: Path) -> None:
    """Delivered: the run's intermediate files are no longer needed for a re-execution."""
    folders = {
        file_set.facts.work_dir,
        *file_set.facts.earlier_work_dirs,
        str(local_folder),
        *(str(file.path.parent.parent) for file in file_set.files),
    }
    for folder in folders:
        remove_tree(folder, keep=work_root_from_environment())
    # The run's own folder (export_work/<run_id>/) once no export of the run has files left in it.
    for folder in folders:
        parent = Path(folder).parent
        if not is_remote(folder) and RUN_ID_FOLDER.fullmatch(parent.name):
            with contextlib.suppress(OSError):  # not empty: another export of the run still works there
                parent.rmdir()


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
