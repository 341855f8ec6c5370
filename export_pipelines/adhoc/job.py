"""The adhoc_export job: one export run on demand, from typed run config instead of a spec file.

Its ops call the same stage functions and targets as the spec-built assets. The request is
checked by the spec loader's own check before any query runs. (No `from __future__ import
annotations`: Dagster reads the op signatures' annotations as real types.)
"""

import datetime as dt
import os
import shutil
from pathlib import Path

import dagster as dg

from export_pipelines.adhoc.request import DEFAULT_CHANNEL, AdhocExportConfig, plan_for_request
from export_pipelines.adhoc.urls import DOWNLOADS_URL_ENV_VAR, file_urls
from export_pipelines.database_urls import safe_url
from export_pipelines.delivery_settings import DeliverySettings
from export_pipelines.factory import deliver_file_set, materialization_metadata
from export_pipelines.steps import FileSet, RunFacts, StageFile, local_work_dir, storage_dir
from export_pipelines.naming import ADHOC_CHANNEL_TAG, ADHOC_JOB, ADHOC_PLAN_OP, adhoc_export_name
from export_pipelines.retries import classified_errors
from export_pipelines.run_launcher import record_host
from export_pipelines.source import SourceDatabase
from export_pipelines.spec.loader import ExportConfig
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.stages.aggregation import aggregate_stage_file
from export_pipelines.stages.extract import extract_to_stage_file
from export_pipelines.stages.file_naming import NameValues, render_file_name
from export_pipelines.stages.mapping import map_stage_file
from export_pipelines.stages.serialization import OutputSettings, dialect_of, write_files
from export_pipelines.stages.stage_files import read_batches

def build_adhoc_job(loaded: ExportConfig) -> dg.JobDefinition:
    """The job over the loaded config's catalog and connections (the same ones the specs use)."""
    connections = dict(loaded.connections.connections)

    @dg.op(name=ADHOC_PLAN_OP, description="Check the request like a spec file: model, fields, filters, order, target.")
    def plan_request(context: dg.OpExecutionContext, config: AdhocExportConfig) -> ExportPlan:
        record_host(context)
        plan, problems = plan_for_request(config, adhoc_export_name(context.run_id), loaded)
        if problems:
            listing = "\n".join(f"- {problem}" for problem in problems)
            raise dg.Failure(description=f"The export request is invalid:\n{listing}", allow_retries=False)
        return plan

    @dg.op(description="Query the model into an Arrow stage file, filters pushed into SQL.")
    def extract(context: dg.OpExecutionContext, source_database: SourceDatabase, plan: ExportPlan) -> StageFile:
        record_host(context)
        engine = source_database.create_engine(storage_dir(context).parent)
        folder = local_work_dir(context, plan.name)
        try:
            result = extract_to_stage_file(engine, plan, folder / "extract.arrow", batch_size=plan.spec.batch_size)
        finally:
            engine.dispose()
        context.log.info(f"Extracted {result.rows} rows of {plan.model_name} from {safe_url(engine.url)}")
        context.add_output_metadata({"rows_out": result.rows, "rows_expected": result.expected_rows})
        return StageFile(str(result.path), result.rows, RunFacts(result.expected_rows, result.extracted_at, str(folder)))

    @dg.op(name="map", description="Rename, Default and Replace values, column at a time.")
    def map_fields(context: dg.OpExecutionContext, plan: ExportPlan, extracted: StageFile) -> StageFile:
        record_host(context)
        destination = local_work_dir(context, plan.name) / "mapped.arrow"
        rows = map_stage_file(plan, Path(extracted.path), destination, batch_size=plan.spec.batch_size)
        context.add_output_metadata({"rows_in": extracted.rows, "rows_out": rows})
        return StageFile(str(destination), rows, extracted.facts)

    @dg.op(description="One row per group when a field aggregates; otherwise the rows pass through.")
    def aggregate(context: dg.OpExecutionContext, plan: ExportPlan, mapped: StageFile) -> StageFile:
        record_host(context)
        if not plan.aggregates:
            return mapped
        destination = local_work_dir(context, plan.name) / "aggregated.arrow"
        result = aggregate_stage_file(plan, Path(mapped.path), destination, batch_size=plan.spec.batch_size)
        # The extract counted rows, not groups, unless the database grouped them.
        expected = result.groups if result.execution == "arrow" else mapped.facts.expected_rows
        facts = RunFacts(expected, mapped.facts.extracted_at, mapped.facts.work_dir, result.execution)
        context.add_output_metadata({"rows_in": result.rows_in, "rows_out": result.groups, "aggregation": result.execution})
        return StageFile(str(destination), result.groups, facts)

    @dg.op(description="Write CSV/PSV files, split into chunks by max_rows_per_file.")
    def serialize(context: dg.OpExecutionContext, plan: ExportPlan, rows: StageFile) -> FileSet:
        record_host(context)
        spec = plan.spec
        settings = OutputSettings(
            dialect=dialect_of(spec),
            compression=spec.compression,
            max_rows_per_file=spec.max_rows_per_file,
            archive_time=rows.facts.extracted_at,
        )

        def name_for_part(part: int) -> str:
            values = NameValues(export=plan.name, model=plan.model_name, run_time=rows.facts.extracted_at, ext=plan.ext, part=part)
            return render_file_name(plan.file_template, values)

        headers = [field.header for field in plan.fields]
        folder = local_work_dir(context, plan.name) / "files"
        files = write_files(read_batches(Path(rows.path), spec.batch_size), headers, folder, name_for_part, settings)
        context.add_output_metadata({"rows_in": rows.rows, "rows_out": sum(f.rows for f in files), "files": len(files)})
        return FileSet(tuple(files), rows.rows, rows.facts)

    @dg.op(description="Deliver to the download folder or the named connection; report every chunk's URL.")
    def deliver(context: dg.OpExecutionContext, delivery_settings: DeliverySettings, plan: ExportPlan, file_set: FileSet) -> None:
        record_host(context)
        with classified_errors(context, None, plan.name, "deliver", f"export-pipelines rerun --run-id {context.run_id}"):
            target, delivery, redirected = deliver_file_set(context, plan, connections, delivery_settings, file_set)
        rows_written = sum(file.rows for file in delivery.files)
        if rows_written != file_set.facts.expected_rows:
            raise dg.Failure(f"Wrote {rows_written} rows but the source query counted {file_set.facts.expected_rows}")
        finished = dt.datetime.now(dt.UTC)
        metadata = materialization_metadata(plan, file_set, delivery, rows_written, target.location, finished, redirected)
        in_download_folder = redirected or plan.spec.target == "download"
        urls = file_urls(delivery.files, os.environ.get(DOWNLOADS_URL_ENV_VAR), download_folder=in_download_folder)
        metadata["urls"] = dg.MetadataValue.json(urls)
        context.add_output_metadata(metadata)
        # Delivered: the run's intermediate files are no longer needed for a re-execution.
        shutil.rmtree(Path(file_set.facts.work_dir).parent, ignore_errors=True)

    @dg.job(
        name=ADHOC_JOB,
        description="One export on demand (the Voucherify /exports API): model, fields, filters and order as run config.",
        tags={ADHOC_CHANNEL_TAG: DEFAULT_CHANNEL},
        # The stages run one after the other and pass files on disk: one process is enough.
        executor_def=dg.in_process_executor,
    )
    def adhoc_export():
        plan = plan_request()
        files = serialize(plan, aggregate(plan, map_fields(plan, extract(plan))))
        deliver(plan, files)

    return adhoc_export
