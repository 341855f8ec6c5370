"""What an ad-hoc export asks for: Voucherify's exported_object and parameters, as typed run config."""

from __future__ import annotations

from typing import Any, Literal

import dagster as dg
from pydantic import Field

from export_pipelines.spec.loader import ExportConfig, SpecProblem, check_export
from export_pipelines.spec.plan import ExportPlan

Channel = Literal["API", "WEBSITE", "CLI"]
CHANNELS: tuple[str, ...] = Channel.__args__
# Launchpad runs carry no channel tag of their own: the job's default tag says they came from the UI.
DEFAULT_CHANNEL = "WEBSITE"
REQUEST_LABEL = "request"
# Request keys passed to the spec as they are, when given: the spec layer checks them.
DIALECT_KEYS = (
    "line_ending", "delimiter", "quoting", "encoding", "header", "null_text", "decimal_separator",
    "date_format", "timestamp_format", "timestamp_timezone", "csv_injection",
)


class AdhocExportConfig(dg.Config):
    """One export run on demand; checked like a spec file before anything is extracted."""

    exported_object: str = Field(description="Model name or alias from the catalog: voucher, redemption, customer, ...")
    fields: list[str] = Field(description="Catalog fields (or metadata.X) in column order.")
    filters: dict[str, Any] = Field(
        default_factory=dict,
        description="Voucherify filter syntax, as in specs: {junction: and, FIELD: {conditions: {$in: [A, B]}}}.",
    )
    order: list[str] = Field(default_factory=list, description="Field names; a leading - sorts descending.")
    format: Literal["csv", "psv", "jsonl", "parquet"] = "csv"
    compression: Literal["none", "gzip", "zstd", "zip"] = "none"
    # The importer's file dialect, as the same keys of a spec (docs/export-specs.md, "File dialect");
    # unset keys keep the spec defaults (RFC 4180 UTF-8).
    line_ending: str | None = Field(default=None, description="crlf (default) or lf.")
    delimiter: str | None = Field(default=None, description="One of , ; | and a tab; default the format's.")
    quoting: str | None = Field(default=None, description="needed (RFC 4180), all or nonnumeric.")
    encoding: str | None = Field(default=None, description="utf-8, utf-8-sig, windows-1252 or iso-8859-1.")
    header: bool | None = None
    null_text: str | None = Field(default=None, description="How NULL is written; default empty.")
    decimal_separator: str | None = Field(default=None, description=". or ,")
    date_format: str | None = Field(default=None, description="strftime directives, e.g. %d.%m.%Y.")
    timestamp_format: str | None = Field(default=None, description="strftime directives (and %f).")
    timestamp_timezone: str | None = Field(default=None, description="IANA zone timestamps are written in.")
    csv_injection: str | None = Field(default=None, description="off or escape.")
    max_rows_per_file: int | None = Field(default=None, description="Split the result into chunks of this many rows.")
    target: str = Field(default="download", description="download, or a connection name from connections.yaml.")
    path: str = Field(
        default="",
        description="Folder under the connection's root (its login folder when it names none); a path leaving it "
        "is refused. Ignored for download.",
    )

    def spec_keys(self, export_name: str) -> dict[str, Any]:
        """The request as the keys of an export spec, so ExportSpec and the planner check it."""
        keys: dict[str, Any] = {
            "name": export_name,
            "model": self.exported_object,
            "fields": list(self.fields),
            "order": list(self.order),
            "format": self.format,
            "compression": self.compression,
            "target": "download" if self.target == "download" else {"connection": self.target, "path": self.path},
        }
        if self.filters:
            keys["filters"] = dict(self.filters)
        if self.max_rows_per_file is not None:
            keys["max_rows_per_file"] = self.max_rows_per_file
        keys.update({key: value for key in DIALECT_KEYS if (value := getattr(self, key)) is not None})
        return keys



def plan_for_request(request: AdhocExportConfig, export_name: str, loaded: ExportConfig) -> tuple[ExportPlan | None, list[SpecProblem]]:
    """The request checked by the spec loader's own check against a loaded config folder: its
    plan, or every problem (`request: fields[1].from: ...`). The adhoc_plan op runs this before
    any query, and `create` runs it before launching, so a typo never becomes a failed run."""
    return check_export(request.spec_keys(export_name), REQUEST_LABEL, loaded)
