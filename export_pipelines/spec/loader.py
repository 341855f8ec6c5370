"""Loading a config folder: exports/*.yaml, kpis/*.yaml, connections.yaml and models.yaml.

Every problem is collected with the file and key path that holds it, and one bad spec
never hides the others: the good exports load, the bad ones are reported.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from export_pipelines.catalog.models import Catalog, ModelsFile, load_builtin_catalog
from export_pipelines.spec.audience import resolve_audience
from export_pipelines.spec.connections import DELIVERY_TYPES, ConnectionsFile
from export_pipelines.spec.export import FILTER_OPERATORS, ExportSpec, FieldSpec
from export_pipelines.spec.kpi import KPI_EXPORT_KEYS, KpiSelection, KpiTemplate, expand_export, template_problems
from export_pipelines.spec.plan import ExportPlan, PlanError, build_plan, closest
from export_pipelines.targets.registry import DELIVERABLE_TYPES

CONFIG_ENV_VAR = "EXPORT_PIPELINES_CONFIG"


@dataclass(frozen=True)
class SpecProblem:
    file: str
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key_path}" if self.key_path else self.file
        return f"{where}: {self.message}"


@dataclass
class ExportConfig:
    root: Path
    catalog: Catalog
    connections: ConnectionsFile
    plans: dict[str, ExportPlan] = field(default_factory=dict)
    kpis: dict[str, KpiTemplate] = field(default_factory=dict)
    # Templates whose file does not load: an export naming one is reported once, pointing at the file.
    invalid_kpis: dict[str, str] = field(default_factory=dict)
    invalid_files: dict[str, list[SpecProblem]] = field(default_factory=dict)
    problems: list[SpecProblem] = field(default_factory=list)


def bundled_demo_config() -> Path:
    return Path(str(resources.files("export_pipelines.demo").joinpath("config")))


def config_dir() -> Path:
    """The config folder in force: EXPORT_PIPELINES_CONFIG, else the bundled demo config."""
    configured = os.environ.get(CONFIG_ENV_VAR)
    return Path(configured).expanduser().resolve() if configured else bundled_demo_config()


def load_config(root: Path) -> ExportConfig:
    problems: list[SpecProblem] = []
    if not (root / "exports").is_dir():
        problems.append(SpecProblem(str(root), "", "no exports/ folder here; point EXPORT_PIPELINES_CONFIG at a config folder"))

    catalog = load_builtin_catalog()
    models_raw = _read_yaml(root / "models.yaml", "models.yaml", problems, required=False)
    if models_raw is not None:
        try:
            catalog = catalog.with_overrides(ModelsFile.model_validate(models_raw))
        except ValidationError as error:
            problems.extend(_pydantic_problems("models.yaml", models_raw, error))
        except ValueError as error:
            problems.append(SpecProblem("models.yaml", "models", str(error)))

    connections = ConnectionsFile()
    connections_raw = _read_yaml(root / "connections.yaml", "connections.yaml", problems, required=False)
    if connections_raw is not None:
        try:
            connections = ConnectionsFile.model_validate(connections_raw)
        except ValidationError as error:
            problems.extend(_pydantic_problems("connections.yaml", connections_raw, error))

    config = ExportConfig(root=root, catalog=catalog, connections=connections, problems=problems)
    kpis_dir = root / "kpis"
    for path in sorted([*kpis_dir.glob("*.yaml"), *kpis_dir.glob("*.yml")]) if kpis_dir.is_dir() else []:
        problems.extend(_load_kpi(path, f"kpis/{path.name}", config))
    exports_dir = root / "exports"
    paths = sorted([*exports_dir.glob("*.yaml"), *exports_dir.glob("*.yml")]) if exports_dir.is_dir() else []
    files_by_name: dict[str, Path] = {}
    for path in paths:
        relative = f"exports/{path.name}"
        loaded_before = set(config.plans)
        file_problems = _load_export(path, relative, config)
        if file_problems:
            config.invalid_files[path.stem] = file_problems
            problems.extend(file_problems)
        files_by_name.update(dict.fromkeys(set(config.plans) - loaded_before, path))
    _drop_broken_dependencies(config, files_by_name)
    return config


def _drop_broken_dependencies(config: ExportConfig, files_by_name: dict[str, Path]) -> None:
    """`after` across specs: the named export must load, fit this one's windows and not lead back here.

    Repeated until stable, because dropping an export breaks the exports that follow it.
    """
    while True:
        broken = {name: message for name, plan in config.plans.items() if (message := _dependency_problem(plan, config.plans))}
        if not broken:
            return
        for name, message in broken.items():
            path = files_by_name[name]
            problem = SpecProblem(f"exports/{path.name}", "after.export", message)
            del config.plans[name]
            config.invalid_files.setdefault(path.stem, []).append(problem)
            config.problems.append(problem)


def _dependency_problem(plan: ExportPlan, plans: dict[str, ExportPlan]) -> str | None:
    after = plan.spec.after
    if after is None:
        return None
    upstream = plans.get(after.export)
    if upstream is None:
        return f"no valid export named {after.export!r}{closest(after.export, plans)}"
    chain = [plan.name]
    while upstream is not None:
        seen = upstream.name in chain
        chain.append(upstream.name)
        if seen:
            return f"`after` forms a cycle: {' -> '.join(chain)}; one of them must run on its own schedule"
        upstream = plans.get(upstream.spec.after.export) if upstream.spec.after else None
    downstream_window, upstream_window = plan.spec.incremental, plans[after.export].spec.incremental
    if downstream_window is not None and (
        upstream_window is None
        or (downstream_window.grain, downstream_window.timezone) != (upstream_window.grain, upstream_window.timezone)
    ):
        return (
            f"export {plan.name} is incremental, so it follows {after.export}'s runs window by window; "
            f"{after.export} needs the same incremental grain and timezone"
        )
    return None


def _load_export(path: Path, relative: str, config: ExportConfig) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    raw = _read_yaml(path, relative, problems, required=True)
    if raw is None:
        return problems
    plan, problems = check_export(raw, relative, config)
    if plan is None:
        return problems
    if plan.name in config.plans:
        return [SpecProblem(relative, "name", f"export name {plan.name!r} is already used by another file; names must be unique")]
    config.plans[plan.name] = plan
    return []


def check_export(raw: dict, relative: str, config: ExportConfig) -> tuple[ExportPlan | None, list[SpecProblem]]:
    """One export's keys checked against a loaded config: its plan, or every problem found.

    Spec files and ad-hoc export requests both pass here, so their errors read the same.
    """
    template = None
    if "kpi" in raw:
        try:
            template, raw = _expand_kpi_export(raw, config)
        except ValidationError as error:
            return None, _pydantic_problems(relative, raw, error)
        except ExceptionGroup as group:
            return None, _plan_problems(relative, group)
    try:
        spec = ExportSpec.model_validate(raw)
    except ValidationError as error:
        return None, _pydantic_problems(relative, raw, error)
    plan_problems: list[SpecProblem] = []
    try:
        plan = build_plan(
            spec,
            config.catalog,
            template_filters=template.filters if template else None,
            kpi=template.name if template else None,
        )
    except ExceptionGroup as group:
        plan_problems.extend(_plan_problems(relative, group))
    try:
        audience = resolve_audience(spec, config.catalog, config.root)
    except ExceptionGroup as group:
        plan_problems.extend(_plan_problems(relative, group))
    if plan_problems:
        return None, plan_problems
    target_problem = _target_problem(spec, config.connections)
    if target_problem:
        return None, [SpecProblem(relative, "target", target_problem)]
    mail_problem = _mail_problem(spec, config.connections)
    if mail_problem:
        return None, [SpecProblem(relative, *mail_problem)]
    return dataclasses.replace(plan, audience=audience), []


def _load_kpi(path: Path, relative: str, config: ExportConfig) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    raw = _read_yaml(path, relative, problems, required=True)
    if raw is None:
        config.invalid_kpis[path.stem] = relative
        return problems
    try:
        template = KpiTemplate.model_validate(raw)
    except ValidationError as error:
        config.invalid_kpis[str(raw.get("name", path.stem))] = relative
        return _pydantic_problems(relative, raw, error)
    if template.name in config.kpis:
        return [SpecProblem(relative, "name", f"KPI template name {template.name!r} is already used by another file")]
    problems = [SpecProblem(relative, e.key_path, e.message) for e in template_problems(template, config.catalog)]
    if problems:
        config.invalid_kpis[template.name] = relative
    else:
        config.kpis[template.name] = template
    return problems


def _expand_kpi_export(raw: dict, config: ExportConfig) -> tuple[KpiTemplate, dict]:
    """The template an export names, and the export's keys with the template's model and fields filled in."""
    selection = KpiSelection.model_validate({key: raw[key] for key in KPI_EXPORT_KEYS if key in raw})
    template = config.kpis.get(selection.kpi)
    if template is None:
        if selection.kpi in config.invalid_kpis:
            message = f"KPI template {selection.kpi!r} does not load; fix {config.invalid_kpis[selection.kpi]}"
        else:
            message = f"no KPI template {selection.kpi!r} in kpis/{closest(selection.kpi, config.kpis)}"
        raise ExceptionGroup("invalid KPI export", [PlanError("kpi", message)])
    return template, expand_export(raw, selection, template)


def _plan_problems(relative: str, group: ExceptionGroup) -> list[SpecProblem]:
    return [SpecProblem(relative, e.key_path, e.message) for e in group.exceptions if isinstance(e, PlanError)]


def _target_problem(spec: ExportSpec, connections: ConnectionsFile) -> str | None:
    if spec.target == "download":
        return None
    name = spec.target.connection
    connection = connections.connections.get(name)
    if connection is None:
        return f"connection {name!r} is not in connections.yaml{closest(name, connections.connections)}"
    if connection.type not in DELIVERY_TYPES:
        return f"connection {name!r} is a {connection.type} connection, which cannot receive files"
    if connection.type not in DELIVERABLE_TYPES:
        kinds = ", ".join(["download", *sorted(DELIVERABLE_TYPES)])
        return f"connection {name!r} is {connection.type}; this build delivers only to: {kinds}"
    return None


def _mail_problem(spec: ExportSpec, connections: ConnectionsFile) -> tuple[str, str] | None:
    if spec.notify is None or not (spec.notify.on_failure or spec.notify.on_success):
        return None
    smtp = sorted(name for name, c in connections.connections.items() if c.type == "smtp")
    via = spec.notify.via
    if via is None:
        if len(smtp) == 1:
            return None
        if not smtp:
            return "notify", "notify needs an smtp connection in connections.yaml to send mail through"
        return "notify.via", f"several smtp connections exist ({', '.join(smtp)}); name one with notify.via"
    connection = connections.connections.get(via)
    if connection is None:
        return "notify.via", f"connection {via!r} is not in connections.yaml{closest(via, smtp)}"
    if connection.type != "smtp":
        return "notify.via", f"connection {via!r} is a {connection.type} connection; notify.via needs an smtp connection"
    return None


def _read_yaml(path: Path, relative: str, problems: list[SpecProblem], *, required: bool):
    if not path.exists():
        if required:
            problems.append(SpecProblem(relative, "", "file not found"))
        return None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.append(SpecProblem(relative, where, f"not valid YAML: {getattr(error, 'problem', error)}"))
        return None
    except UnicodeDecodeError:
        problems.append(SpecProblem(relative, "", "not UTF-8 text"))
        return None
    if not isinstance(raw, dict):
        problems.append(SpecProblem(relative, "", "expected a mapping of keys to values at the top level"))
        return None
    return raw


_KNOWN_KEYS = {
    "spec": [*ExportSpec.model_fields, *KPI_EXPORT_KEYS],
    "field": [info.alias or name for name, info in FieldSpec.model_fields.items()],
}


def _pydantic_problems(relative: str, raw: dict, error: ValidationError) -> list[SpecProblem]:
    problems = []
    for item in error.errors():
        loc = _file_loc(raw, item["loc"], keep_last=item["type"] == "missing")
        key_path = _key_path(loc)
        message = item["msg"]
        if item["type"] == "extra_forbidden" and loc:
            scope = "field" if len(loc) >= 3 and loc[0] == "fields" else "spec" if len(loc) == 1 else None
            hint = closest(str(loc[-1]), _KNOWN_KEYS[scope]) if scope else ""
            message = f"unknown key {loc[-1]!r}{hint}"
        elif item["type"] == "literal_error" and "conditions" in loc and str(loc[-1]).startswith("$"):
            operator = str(loc[-1])
            message = f"unknown operator {operator!r}{closest(operator, FILTER_OPERATORS)} (operators: {', '.join(FILTER_OPERATORS)})"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "value_error":
            # Our validators' own words; pydantic's "Value error, " prefix only adds noise.
            message = message.removeprefix("Value error, ")
        problems.append(SpecProblem(relative, key_path, message))
    return problems


def _file_loc(raw, loc: tuple, *, keep_last: bool) -> list:
    """pydantic's error location reduced to the keys that exist in the file.

    pydantic inserts labels of its own (the union member tried, `function-after[...]`,
    `[key]`); walking the parsed YAML alongside drops every part the file does not have.
    A missing key is, by definition, not in the file, so it is kept when asked.
    """
    path, node = [], raw
    for index, part in enumerate(loc):
        key = _yaml_key(node, part)
        in_dict = isinstance(node, dict) and key in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[key]
        elif not (keep_last and index == len(loc) - 1):
            continue
        path.append(part)
    return path


def _yaml_key(node, part):
    """YAML 1.1 reads an unquoted key `on` (schedule.on) as the boolean true."""
    if part == "on" and isinstance(node, dict) and "on" not in node and True in node:
        return True
    return part


def _key_path(loc: list) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
