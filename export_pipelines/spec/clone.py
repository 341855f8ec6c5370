"""Clone an export: a new spec file from an existing one with some keys changed (Antavo's Clone,
Capillary's duplicate-and-modify), kept only if the loader accepts it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from export_pipelines.spec.export import EXPORT_NAME_PATTERN
from export_pipelines.spec.loader import ExportConfig, SpecProblem, load_config
from export_pipelines.spec.problems import closest
from export_pipelines.spec.yaml_file import read_yaml


class CloneError(ValueError):
    """The clone was not written: the message says why."""


@dataclass(frozen=True)
class InvalidClone(CloneError):
    """The clone was written, failed to load and was removed again."""

    problems: list[SpecProblem]

    def __str__(self) -> str:
        return "the clone does not load, so it was not kept:\n" + "\n".join(f"- {problem}" for problem in self.problems)


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """`schedule.at=03:00` -> (['schedule', 'at'], '03:00'); the value is read as YAML, like the spec."""
    key, separator, value = text.partition("=")
    keys = key.strip().split(".")
    if not separator or not all(keys):
        raise CloneError(f"--set {text!r}: write KEY=VALUE, with dots for nested keys (schedule.active=false)")
    return keys, _yaml_value(value)


def _yaml_value(value: str) -> Any:
    # An unquoted 02:00 is sexagesimal in YAML 1.1 and `on` is a boolean: the spec loader explains both,
    # but a time of day typed on a command line is meant as text.
    if re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        return value.strip()
    try:
        return yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as error:
        raise CloneError(f"--set value {value!r} is not a YAML value: {str(error).splitlines()[0]}") from None
    except ValueError:
        # YAML's own conversion refused it (2024-02-30): kept as text, the loader then says at its key what is wrong.
        return value.strip()


def spec_names(root: Path) -> dict[str, tuple[Path, dict]]:
    """Export name -> its spec file and keys, read from the files themselves (a file's name may differ)
    by the loader's reader: a value YAML cannot build (2024-02-30) is kept as its text, and a file that
    is not a readable mapping is skipped."""
    names = {}
    for path in sorted([*(root / "exports").glob("*.yaml"), *(root / "exports").glob("*.yml")]):
        raw = read_yaml(path, f"exports/{path.name}").data
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            names.setdefault(raw["name"], (path, raw))
    return names


def clone_spec(
    root: Path,
    name: str,
    new_name: str,
    assignments: list[tuple[list[str], Any]],
    definition_problems: Callable[[ExportConfig], list[SpecProblem]] | None = None,
) -> Path:
    """Write exports/<new_name>.yaml from export `name` with `assignments` applied; validate it with the loader,
    and with `definition_problems` (code_location's: what Dagster would refuse, a clash of names) when given."""
    if not re.fullmatch(EXPORT_NAME_PATTERN, new_name):
        raise CloneError(f"{new_name!r} is not an export name: lower-case letters, digits and _, at most 63")
    names = spec_names(root)
    if name not in names:
        raise CloneError(f"no export named {name!r} in {root / 'exports'}{closest(name, names)}")
    if new_name in names:
        raise CloneError(f"export {new_name!r} already exists in {names[new_name][0]}; choose another name")
    raw = {**names[name][1], "name": new_name}
    for keys, value in assignments:
        _assign(raw, keys, value)
    destination = root / "exports" / f"{new_name}.yaml"
    try:
        with destination.open("x", encoding="utf-8") as out:
            yaml.safe_dump(raw, out, allow_unicode=True, sort_keys=False)
    except FileExistsError:
        raise CloneError(f"{destination} already exists; refusing to overwrite it") from None
    config = load_config(root)
    relative = f"exports/{destination.name}"
    problems = config.invalid_files.get(relative, [])
    if not problems and definition_problems is not None:
        problems = [problem for problem in definition_problems(config) if problem.file == relative]
    if problems:
        destination.unlink()
        raise InvalidClone(problems)
    return destination


def _assign(raw: dict, keys: list[str], value: Any) -> None:
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value
