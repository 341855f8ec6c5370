"""Loading a config folder: exports/*.yaml, kpis/*.yaml, connections.yaml and models.yaml.

Every problem of every file is collected in one pass, with the file, line and key path that
holds it. A problem invalidates exactly what depends on it: a bad connection or model entry
the exports that use it, a bad KPI template the exports of that template, a broken export
the exports that run `after` it, and each of those says what it depends on. Two files that
claim one name are both invalid. Everything else loads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from export_pipelines.catalog.models import Catalog, load_builtin_catalog
from export_pipelines.spec.connections import ConnectionsFile
from export_pipelines.spec.export_check import check_export
from export_pipelines.spec.kpi import KpiTemplate, template_problems
from export_pipelines.spec.plan import ExportPlan
from export_pipelines.spec.problems import Layer, SpecProblem, closest, every_layer, parse_key_path, pydantic_problems, summary
from export_pipelines.spec.shared_files import CONNECTIONS_FILE, BrokenEntries, load_connections, load_models
from export_pipelines.spec.yaml_file import YamlDocument, read_yaml

__all__ = ["CONFIG_ENV_VAR", "ExportConfig", "SpecProblem", "check_export", "config_dir", "load_config", "load_exports_of"]

CONFIG_ENV_VAR = "EXPORT_PIPELINES_CONFIG"
SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass
class ExportConfig:
    root: Path
    catalog: Catalog
    connections: ConnectionsFile
    broken_connections: BrokenEntries = field(default_factory=lambda: BrokenEntries(CONNECTIONS_FILE))
    plans: dict[str, ExportPlan] = field(default_factory=dict)
    kpis: dict[str, KpiTemplate] = field(default_factory=dict)
    # KPI templates that do not load, by name, with the reason: an export naming one says so.
    invalid_kpis: dict[str, str] = field(default_factory=dict)
    # Spec files that do not load (exports/x.yaml), with their problems.
    invalid_files: dict[str, list[SpecProblem]] = field(default_factory=dict)
    # The spec file of each valid export, and the file as read (for the lines of later problems).
    spec_files: dict[str, str] = field(default_factory=dict)
    spec_documents: dict[str, YamlDocument] = field(default_factory=dict)
    problems: list[SpecProblem] = field(default_factory=list)

    def export_problem(self, name: str, key_path: str, message: str) -> SpecProblem:
        """A problem of valid export `name` found after loading (building its definitions), at its spec file's line."""
        document = self.spec_documents.get(name)
        return document.problem_at(key_path, message) if document else SpecProblem(self.spec_files[name], key_path, message)

    @property
    def connection_names(self) -> list[str]:
        """Every connection connections.yaml names, whether it loads or not."""
        return sorted({*self.connections.connections, *self.broken_connections.reasons})


def bundled_demo_config() -> Path:
    return Path(str(resources.files("export_pipelines.demo").joinpath("config")))


def config_dir() -> Path:
    """The config folder in force: EXPORT_PIPELINES_CONFIG, else the bundled demo config."""
    configured = os.environ.get(CONFIG_ENV_VAR)
    return Path(configured).expanduser().resolve() if configured else bundled_demo_config()


def load_config(root: Path) -> ExportConfig:
    """Every file of the config folder `root` checked; never raises for anything a file holds."""
    config = _shared_files(root)
    _load_exports(config, _yaml_files(config, "exports"))
    return config


def load_exports_of(root: Path, names: Collection[str]) -> ExportConfig | None:
    """The config folder `root` with only the spec files of exports `names` and of the exports
    they follow (`after`, transitively): what a run of those exports needs, read in time that
    does not grow with the folder's other specs. Each is looked up as exports/<name>.yaml (or
    .yml) declaring that name; None when one is not found that way (then load_config, which reads
    every file). Checks across files other than these (a name claimed twice) are load_config's:
    the code location that launched the run made them."""
    config = _shared_files(root)
    paths: dict[str, Path] = {}
    wanted = list(names)
    while wanted:
        name = wanted.pop()
        if name in paths:
            continue
        path = next((p for p in (root / "exports" / f"{name}{suffix}" for suffix in SPEC_SUFFIXES) if p.is_file()), None)
        if path is None:
            return None
        data = read_yaml(path, f"exports/{path.name}").data
        if not isinstance(data, dict) or data.get("name", path.stem) != name:
            return None
        paths[name] = path
        after = data.get("after")
        if isinstance(after, dict) and isinstance(after.get("export"), str):
            wanted.append(after["export"])
    _load_exports(config, sorted(paths.values()))
    return config


def _shared_files(root: Path) -> ExportConfig:
    """The config with its models, connections and KPI templates loaded, and no exports yet."""
    problems: list[SpecProblem] = []
    if not (root / "exports").is_dir():
        problems.append(SpecProblem(str(root), "", "no exports/ folder here; point EXPORT_PIPELINES_CONFIG at a config folder"))
    catalog = load_models(root, load_builtin_catalog(), problems)
    connections, broken_connections = load_connections(root, problems)
    config = ExportConfig(root=root, catalog=catalog, connections=connections, broken_connections=broken_connections, problems=problems)
    _load_kpis(config)
    return config


@dataclass
class _Loaded:
    """One file's outcome before names across files are compared."""

    relative: str
    document: YamlDocument
    name: str | None
    problems: list[SpecProblem]


def _load_kpis(config: ExportConfig) -> None:
    loaded, templates = [], {}
    for path in _yaml_files(config, "kpis"):
        document = read_yaml(path, f"kpis/{path.name}")
        found = [problem for _, problem in document.problems]
        template = None
        if document.data is not None:
            found += every_layer(document.data, functools.partial(_template_layer, document, config.catalog), [w for w, _ in document.problems])
            template = None if found else KpiTemplate.model_validate(document.data)
        name = _declared_name(document, path)
        loaded.append(_Loaded(document.file, document, name, found))
        templates[document.file] = template
    _claimed_once(loaded, "KPI template")
    for item in loaded:
        if item.problems:
            config.invalid_kpis[item.name] = summary(item.problems)
            config.problems.extend(item.problems)
        else:
            config.kpis[item.name] = templates[item.relative]


def _template_layer(document: YamlDocument, catalog: Catalog, value: Any) -> Layer:
    """The first check a KPI template fails: its keys' shapes, then (the last) its fields against the catalog."""
    try:
        template = KpiTemplate.model_validate(value)
    except ValidationError as error:
        return pydantic_problems(document.file, value, error, [KpiTemplate], line_of=document.line_of), False
    return [(parse_key_path(e.key_path), document.problem_at(e.key_path, e.message)) for e in template_problems(template, catalog)], True


def _load_exports(config: ExportConfig, paths: list[Path]) -> None:
    loaded, plans = [], {}
    for path in paths:
        document = read_yaml(path, f"exports/{path.name}")
        plan, found = (None, [p for _, p in document.problems])
        if document.data is not None:
            try:
                plan, found = check_export(document.data, document.file, config, document)
            except Exception as error:  # noqa: BLE001 - a fault of ours met by one file must not hide the others
                plan, found = None, [SpecProblem(document.file, "", f"could not be checked ({error!r}); please report this")]
        loaded.append(_Loaded(document.file, document, _declared_name(document, path), found))
        plans[document.file] = plan
    files_by_name = _claimed_once(loaded, "export")
    for item in loaded:
        if item.problems:
            config.invalid_files[item.relative] = item.problems
            config.problems.extend(item.problems)
        else:
            config.plans[item.name] = plans[item.relative]
            config.spec_files[item.name] = item.relative
            config.spec_documents[item.name] = item.document
    _drop_broken_dependencies(config, {item.name: item for item in loaded}, files_by_name)


def _claimed_once(loaded: list[_Loaded], kind: str) -> dict[str, list[str]]:
    """The files claiming each name; a name claimed twice is a problem of every claimant: neither silently wins."""
    files_by_name: dict[str, list[str]] = {}
    for item in loaded:
        files_by_name.setdefault(item.name, []).append(item.relative)
    for item in loaded:
        claimants = files_by_name[item.name]
        if len(claimants) > 1:
            message = f"{kind} name {item.name!r} is claimed by {' and '.join(claimants)}; names must be unique, rename all but one"
            item.problems = [*item.problems, item.document.problem_at("name", message)]
    return files_by_name


def _declared_name(document: YamlDocument, path: Path) -> str:
    """The name a file claims: its `name` key, else (the file does not say) its file name."""
    data = document.data
    return data["name"] if isinstance(data, dict) and isinstance(data.get("name"), str) else path.stem


def _yaml_files(config: ExportConfig, folder: str) -> list[Path]:
    """The *.yaml and *.yml files of a folder of the config; editors' hidden files are not specs."""
    directory = config.root / folder
    if not directory.is_dir():
        return []
    paths = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            _report_nested_specs(config, folder, path)
            continue
        if path.suffix in SPEC_SUFFIXES:
            paths.append(path)
        elif path.suffix.lower() in SPEC_SUFFIXES:
            # Meant as a spec, surely: shown with the broken ones rather than silently skipped.
            problem = SpecProblem(f"{folder}/{path.name}", "", f"not read: only names ending in .yaml or .yml are; rename it to {path.stem}.yaml")
            config.problems.append(problem)
            if folder == "exports":
                config.invalid_files[problem.file] = [problem]
    return paths


def _report_nested_specs(config: ExportConfig, folder: str, subfolder: Path) -> None:
    """YAML files in a subfolder of exports/ (or kpis/) are not specs: one problem names them, so a
    folder of a partner's specs is never skipped in silence."""
    nested = sorted(
        path.relative_to(subfolder.parent).as_posix()
        for path in subfolder.rglob("*")
        if path.suffix.lower() in SPEC_SUFFIXES and not any(part.startswith(".") for part in path.relative_to(subfolder).parts)
    )
    if nested:
        shown = ", ".join(nested[:5]) + (f" and {len(nested) - 5} more" if len(nested) > 5 else "")
        config.problems.append(
            SpecProblem(
                f"{folder}/{subfolder.name}/", "",
                f"{len(nested)} spec file(s) not read ({shown}): only files directly in {folder}/ are read; "
                f"move them into {folder}/ (export names are unique across the folder anyway)",
            )
        )


def _drop_broken_dependencies(config: ExportConfig, by_name: dict[str, _Loaded], files_by_name: dict[str, list[str]]) -> None:
    """`after` across specs: the named export must load, fit this one's windows and not lead back here.

    Repeated until stable, because dropping an export breaks the exports that follow it.
    """
    while True:
        broken = {
            name: message for name, plan in config.plans.items() if (message := _dependency_problem(plan, config, files_by_name))
        }
        if not broken:
            return
        for name, message in broken.items():
            item = by_name[name]
            problem = item.document.problem_at("after.export", message)
            del config.plans[name]
            del config.spec_files[name]
            del config.spec_documents[name]
            config.invalid_files.setdefault(item.relative, []).append(problem)
            config.problems.append(problem)


def _dependency_problem(plan: ExportPlan, config: ExportConfig, files_by_name: dict[str, list[str]]) -> str | None:
    plans = config.plans
    after = plan.spec.after
    if after is None:
        return None
    upstream = plans.get(after.export)
    if upstream is None:
        if after.export in files_by_name:
            return f"export {after.export} does not load; fix {' and '.join(files_by_name[after.export])} first"
        return f"no export named {after.export!r}{closest(after.export, files_by_name)}"
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

