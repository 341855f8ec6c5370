"""One export's keys checked against a loaded config, every layer in the same pass.

pydantic checks each key's shape; the catalog, the connections and the KPI templates check
what the keys name. A key that fails its shape is set aside (its default stands in; a bad
entry of `fields` is left out) so the later layers still check everything else: one validate
run reports a bad timezone, a misspelt field and an unknown connection together. A later
check that reads a set-aside key is skipped, so no stand-in value is ever blamed.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from export_pipelines.spec.audience import resolve_audience
from export_pipelines.spec.encryption import resolve_encryption
from export_pipelines.spec.connections import DELIVERY_TYPES
from export_pipelines.spec.export import ExportSpec
from export_pipelines.spec.kpi import KPI_EXPORT_KEYS, KpiSelection, KpiTemplate, expand_export
from export_pipelines.spec.plan import ExportPlan, PlanError, build_plan
from export_pipelines.spec.problems import SpecProblem, closest, parse_key_path, pydantic_problems
from export_pipelines.spec.yaml_file import YamlDocument
from export_pipelines.targets.registry import DELIVERABLE_TYPES

if TYPE_CHECKING:
    from export_pipelines.spec.loader import ExportConfig

TIME_KEYS = frozenset({"incremental", "schedule", "after", "max_window_days"})
# The keys each later check reads besides the one it reports on: it is skipped when one of them was set aside.
CHECK_INPUTS: dict[str, frozenset[str]] = {
    "file_name": frozenset({"file_name", "format", "compression", "max_rows_per_file", "incremental", "name"}),
    **dict.fromkeys(TIME_KEYS, TIME_KEYS),
}


@dataclasses.dataclass
class _Shape:
    """The spec as far as its keys validated, and what had to be set aside to get it."""

    spec: ExportSpec | None
    set_aside: set[str]
    field_positions: list[int] | None
    problems: list[SpecProblem]
    plannable: bool


def check_export(
    raw: dict, relative: str, config: ExportConfig, document: YamlDocument | None = None
) -> tuple[ExportPlan | None, list[SpecProblem]]:
    """One export's keys checked against a loaded config: its plan, or every problem found.

    Spec files and ad-hoc export requests both pass here, so their errors read the same.
    `document` (a spec file as read) gives lines and the problems found reading it.
    """
    document = document or YamlDocument(relative)
    reported = [problem for _, problem in document.problems]
    problems = list(reported)
    template, keys = None, raw
    if "kpi" in raw:
        template, keys, kpi_problems = _kpi_keys(raw, config, document)
        problems += kpi_problems
    shape = _shape(keys, document, plannable=template is not None or "kpi" not in raw)
    problems += shape.problems
    spec = shape.spec
    if spec is None:
        return None, problems
    plan, audience, encryption = None, None, None
    if shape.plannable:
        try:
            plan = build_plan(
                spec,
                config.catalog,
                template_filters=template.filters if template else None,
                kpi=template.name if template else None,
                field_positions=shape.field_positions,
            )
        except ExceptionGroup as group:
            problems += [p for p in _plan_problems(document, group) if not _reads_set_aside(p.key_path, shape.set_aside)]
        if "audience" not in shape.set_aside:
            try:
                audience = resolve_audience(spec, config.catalog, config.root)
            except ExceptionGroup as group:
                problems += _plan_problems(document, group)
    if "encrypt" not in shape.set_aside:
        try:
            encryption = resolve_encryption(spec, config.root)
        except ExceptionGroup as group:
            problems += _plan_problems(document, group)
    if "target" not in shape.set_aside and (target_problem := _target_problem(spec, config)):
        problems.append(document.problem_at("target.connection", target_problem))
    if "notify" not in shape.set_aside and (mail_problem := _mail_problem(spec, config)):
        problems.append(document.problem_at(*mail_problem))
    # A value reading already refused (kept as its text) is not reported a second time.
    problems = [p for p in problems if p in reported or not document.reported_within(parse_key_path(p.key_path))]
    if problems or plan is None:
        return None, problems
    return dataclasses.replace(plan, audience=audience, encryption=encryption), []


def _shape(keys: dict, document: YamlDocument, *, plannable: bool) -> _Shape:
    roots = [ExportSpec, KpiSelection]
    try:
        return _Shape(ExportSpec.model_validate(keys if plannable else _template_stand_ins(keys)), set(), None, [], plannable)
    except ValidationError as error:
        found = pydantic_problems(document.file, keys, error, roots, line_of=document.line_of)
    problems = [problem for path, problem in found if not document.reported_within(path)]
    if not plannable:
        problems = [p for p in problems if p.key_path not in {"model", "fields"}]
    if any(not path for path, _ in found):
        return _Shape(None, set(), None, problems, plannable)
    set_aside = {str(path[0]) for path, _ in found}
    salvaged = {key: value for key, value in keys.items() if key not in set_aside}
    positions = None
    if "name" in set_aside:
        # A stand-in with the name's letters keeps messages that quote the export's name readable.
        salvaged["name"] = re.sub(r"[^a-z0-9_]", "_", str(keys.get("name", "")).lower())[:63] or "export"
    if "model" in set_aside:
        plannable, salvaged["model"] = False, ""
    if "fields" in set_aside:
        items = keys.get("fields") if isinstance(keys.get("fields"), list) else []
        whole_list = any(path == ("fields",) for path, _ in found)
        bad = {path[1] for path, _ in found if len(path) > 1 and path[0] == "fields"}
        positions = [] if whole_list else [index for index in range(len(items)) if index not in bad]
        salvaged["fields"] = [items[index] for index in positions]
    if not salvaged.get("fields"):
        plannable = False
    try:
        spec = ExportSpec.model_validate(salvaged if plannable else _template_stand_ins(salvaged))
    except ValidationError:
        return _Shape(None, set_aside, positions, problems, False)
    if plannable and (filters := _salvaged_filters(keys, found)) is not None:
        # A bad junction or one bad condition must not hide the other filters' problems (a misspelt
        # field) until the next round: the filters that validate are checked against the model too.
        try:
            spec = ExportSpec.model_validate({**salvaged, "filters": filters})
            set_aside.discard("filters")
        except ValidationError:
            pass
    return _Shape(spec, set_aside, positions, problems, plannable)


def _salvaged_filters(keys: dict, found: list) -> dict | None:
    """The spec's filters without the entries a problem was found in, or None when there is nothing to keep."""
    filters = keys.get("filters")
    bad = {path[1] for path, _ in found if len(path) > 1 and path[0] == "filters"}
    if not isinstance(filters, dict) or not bad or any(path == ("filters",) for path, _ in found):
        return None
    kept = {key: value for key, value in filters.items() if key not in bad}
    return kept if any(key != "junction" for key in kept) else None


def _template_stand_ins(keys: dict) -> dict[str, Any]:
    """Model and fields for checking the other keys when they cannot be known (no KPI template, no valid field)."""
    return {**keys, "model": keys.get("model") if isinstance(keys.get("model"), str) else "", "fields": keys.get("fields") or ["_"]}


def _reads_set_aside(key_path: str, set_aside: set[str]) -> bool:
    root = parse_key_path(key_path)[:1]
    return bool(root and CHECK_INPUTS.get(str(root[0]), frozenset()) & set_aside)


def _kpi_keys(raw: dict, config: ExportConfig, document: YamlDocument) -> tuple[KpiTemplate | None, dict, list[SpecProblem]]:
    """The export's keys with its KPI template's model and fields filled in; without a usable template, its other keys."""
    rest = {key: value for key, value in raw.items() if key not in KPI_EXPORT_KEYS}
    try:
        selection = KpiSelection.model_validate({key: raw[key] for key in KPI_EXPORT_KEYS if key in raw})
    except ValidationError as error:
        found = pydantic_problems(document.file, raw, error, [KpiSelection], line_of=document.line_of)
        return None, rest, [problem for path, problem in found if not document.reported_within(path)]
    template = config.kpis.get(selection.kpi)
    if template is None:
        reason = config.invalid_kpis.get(selection.kpi)
        if reason is not None:
            message = f"KPI template {selection.kpi} does not load: {reason}"
        else:
            message = f"no KPI template {selection.kpi!r} in kpis/{closest(selection.kpi, [*config.kpis, *config.invalid_kpis])}"
        return None, rest, [document.problem_at("kpi", message)]
    try:
        return template, expand_export(raw, selection, template), []
    except ExceptionGroup as group:
        return None, rest, _plan_problems(document, group)


def _plan_problems(document: YamlDocument, group: ExceptionGroup) -> list[SpecProblem]:
    return [document.problem_at(error.key_path, error.message) for error in group.exceptions if isinstance(error, PlanError)]


def _target_problem(spec: ExportSpec, config: ExportConfig) -> str | None:
    if spec.target == "download":
        return None
    name = spec.target.connection
    connection = config.connections.connections.get(name)
    if connection is None:
        broken = config.broken_connections
        if name in broken.reasons:
            return f"connection {name} does not load: {broken.reasons[name]}"
        return _missing_connection(name, config.connection_names, broken.file_message)
    if connection.type not in DELIVERY_TYPES:
        return f"connection {name!r} is a {connection.type} connection, which cannot receive files"
    if connection.type not in DELIVERABLE_TYPES:
        kinds = ", ".join(["download", *sorted(DELIVERABLE_TYPES)])
        return f"connection {name!r} is {connection.type}; this build delivers only to: {kinds}"
    return None


def _missing_connection(name: str, known: list[str], file_message: str | None) -> str:
    """Why connection `name` is not there, never blaming the export for a file that could not be read."""
    if file_message is None:
        return f"connection {name!r} is not in connections.yaml{closest(name, known)}"
    if not known:
        return f"connection {name!r} cannot be read, as {file_message}"
    return f"connection {name!r} is not among the entries read from connections.yaml, and {file_message}{closest(name, known)}"


def _mail_problem(spec: ExportSpec, config: ExportConfig) -> tuple[str, str] | None:
    if spec.notify is None or not (spec.notify.on_failure or spec.notify.on_success):
        return None
    connections, broken = config.connections.connections, config.broken_connections
    via = spec.notify.via
    if via is None:
        smtp = sorted({name for name, c in connections.items() if c.type == "smtp"} | {n for n, kind in broken.kinds.items() if kind == "smtp"})
        if len(smtp) == 1:
            reason = broken.reasons.get(smtp[0])
            return ("notify", f"connection {smtp[0]} (the only smtp connection) does not load: {reason}") if reason else None
        if not smtp:
            unread = f"; {broken.file_message}" if broken.file_message else ""
            return "notify", f"notify needs an smtp connection in connections.yaml to send mail through{unread}"
        return "notify.via", f"several smtp connections exist ({', '.join(smtp)}); name one with notify.via"
    connection = connections.get(via)
    if connection is None:
        if via in broken.reasons:
            return "notify.via", f"connection {via} does not load: {broken.reasons[via]}"
        smtp = [name for name, c in connections.items() if c.type == "smtp"]
        return "notify.via", _missing_connection(via, smtp, broken.file_message)
    if connection.type != "smtp":
        return "notify.via", f"connection {via!r} is a {connection.type} connection; notify.via needs an smtp connection"
    return None
