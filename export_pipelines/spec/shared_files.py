"""connections.yaml and models.yaml: files of named entries that many exports share.

Each entry is checked on its own, so one bad entry invalidates itself and the exports that
use it, which say so (`connection sana_ftp does not load: ...`); the other entries, and the
exports that use only them, load. A problem outside every entry (the file is not YAML, an
unknown top-level key) may hide entries: a connection that is not found says so, and no
model loads at all, since an export silently run against the bundled mapping a hidden
entry meant to change could read the wrong table.
"""

from __future__ import annotations

from collections.abc import Callable
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from export_pipelines.catalog.models import Catalog, ModelDef, ModelError, ModelOverride, merge_model
from export_pipelines.spec.connections import Connection, ConnectionsFile, is_secret_key
from export_pipelines.spec.problems import KeyPath, Layer, SpecProblem, closest, every_layer, format_key_path, pydantic_problems, summary
from export_pipelines.spec.yaml_file import YamlDocument, read_yaml

CONNECTIONS_FILE = "connections.yaml"
# Dagster's asset group names and tag values: what a new model's name becomes.
MODEL_NAME_PATTERN = r"[A-Za-z0-9_]{1,63}"
MODELS_FILE = "models.yaml"
_CONNECTION = TypeAdapter(Connection)


@dataclass
class BrokenEntries:
    """The entries of one shared file that do not load, each with the problem that stops it."""

    file: str
    reasons: dict[str, str] = field(default_factory=dict)
    # The declared `type` of a broken connection, when it has one: notify looks for smtp ones.
    kinds: dict[str, str] = field(default_factory=dict)
    # A problem outside every entry (not YAML, an unknown top-level key): a name not found may be hidden by it.
    file_reason: str | None = None

    @property
    def file_message(self) -> str | None:
        return f"{self.file} does not load ({self.file_reason})" if self.file_reason else None


def load_connections(root: Path, problems: list[SpecProblem]) -> tuple[ConnectionsFile, BrokenEntries]:
    """The connections that load, and the ones that do not; every problem is added to `problems`."""
    broken = BrokenEntries(CONNECTIONS_FILE)
    entries = _entries(root / CONNECTIONS_FILE, "connections", broken, problems, secret_key=is_secret_key)
    valid = {}
    for name, raw, document, found in entries:
        prefix = ("connections", name)

        def check(value: Any, prefix: KeyPath = prefix, document: YamlDocument = document) -> Layer:
            # pydantic runs a model validator (an SFTP connection's host key) only once the keys pass: not the last layer.
            try:
                _CONNECTION.validate_python(value)
            except ValidationError as error:
                found = pydantic_problems(document.file, value, error, [Connection], prefix=prefix, line_of=document.line_of)
                return _relative(prefix, found), False
            return [], True

        found += every_layer(raw, check, _reported(document, prefix))
        if not found:
            valid[name] = _CONNECTION.validate_python(raw)
        if found:
            _break(broken, name, found, problems)
            if isinstance(raw, dict) and isinstance(raw.get("type"), str):
                broken.kinds[name] = raw["type"]
            valid.pop(name, None)
    return ConnectionsFile.model_construct(connections=valid), broken


def load_models(root: Path, builtin: Catalog, problems: list[SpecProblem]) -> Catalog:
    """The bundled catalog with models.yaml's entries merged in, each entry on its own.

    A model whose entry does not load is broken under its name and aliases (see Catalog.broken).
    """
    broken = BrokenEntries(MODELS_FILE)
    entries = _entries(root / MODELS_FILE, "models", broken, problems)
    merged = dict(builtin.models)
    claims: dict[str, list[str]] = {}
    for name, *_ in entries:
        claims.setdefault(builtin.canonical_name(name) or name, []).append(name)
    labels: dict[str, str] = {}
    for name, raw, document, found in entries:
        canonical = builtin.canonical_name(name) or name
        if len(claims[canonical]) > 1:
            entry_names = " and ".join(f"models.{entry}" for entry in claims[canonical])
            found.append(_problem(document, ("models", name), f"{entry_names} both describe model {canonical}; merge them into one entry"))
        prefix = ("models", name)
        if canonical not in builtin.models and not re.fullmatch(MODEL_NAME_PATTERN, canonical):
            found.append(_problem(document, prefix, f"model name {canonical!r}: letters, digits and _, at most 63 characters "
                                  "(it names the exports' asset group and their `model` tag); rename the entry"))

        def check(value: Any, prefix: KeyPath = prefix, document: YamlDocument = document, canonical: str = canonical) -> Layer:
            try:
                override = ModelOverride.model_validate(value)
            except ValidationError as error:
                found = pydantic_problems(document.file, value, error, [ModelOverride], prefix=prefix, line_of=document.line_of)
                return _relative(prefix, found), False
            try:
                merge_model(canonical, builtin.models.get(canonical), override)
            except ModelError as error:
                # merge_model reports every problem of the merged model at once: the last layer.
                return [(tuple(path), _problem(document, (*prefix, *path), message)) for path, message in error.problems], True
            return [], True

        found += every_layer(raw, check, _reported(document, prefix))
        model = None if found else merge_model(canonical, builtin.models.get(canonical), ModelOverride.model_validate(raw))
        # Checked in the same pass, whatever else is wrong with the entry: its aliases as written, when they read.
        aliases = model.aliases if model is not None else _written_aliases(raw)
        found += _label_clashes(document, name, canonical, aliases, builtin, merged)
        labels |= dict.fromkeys([name, canonical, *(builtin.models[canonical].aliases if canonical in builtin.models else ())], canonical)
        if found:
            _break(broken, canonical, found, problems)
            merged.pop(canonical, None)
        else:
            merged[canonical] = model
    reasons = {label: broken.reasons[canonical] for label, canonical in labels.items() if canonical in broken.reasons}
    if broken.file_reason:
        # Which models the file maps is in doubt (`model:` for `models:` hides every entry): run against
        # the bundled mapping instead, an export could read the wrong table. So no model loads.
        return Catalog({}, dict.fromkeys([*builtin.names_and_aliases, *labels], broken.file_message) | reasons)
    return Catalog(merged, reasons)


def _written_aliases(raw: Any) -> tuple[str, ...]:
    aliases = raw.get("aliases") if isinstance(raw, dict) else None
    return tuple(aliases) if isinstance(aliases, list) and all(isinstance(alias, str) for alias in aliases) else ()


def _label_clashes(
    document: YamlDocument, name: str, canonical: str, aliases: tuple[str, ...], builtin: Catalog, merged: dict[str, ModelDef]
) -> list[SpecProblem]:
    """A model's name or alias that already names another model would make exports ambiguous."""
    clashes = []
    known = {**builtin.models, **merged}
    for alias in aliases:
        owner = next((other for other, defined in known.items() if other != canonical and alias in (other, *defined.aliases)), None)
        if owner is not None:
            clashes.append(_problem(document, ("models", name, "aliases"), f"{alias!r} already names model {owner}; choose another alias"))
    return clashes


def _entries(
    path: Path, top_key: str, broken: BrokenEntries, problems: list[SpecProblem], secret_key: Callable[[str], bool] | None = None
) -> list[tuple[str, Any, YamlDocument, list[SpecProblem]]]:
    """(name, raw entry, document, the reading problems inside it) for each entry under `top_key`.

    Problems outside every entry are added to `problems` and make the whole file broken.
    """
    if not path.exists():
        return []
    document = read_yaml(path, broken.file, secret_key)
    outside: list[SpecProblem] = []
    entries = []
    data = document.data
    if data is not None:
        for key in data:
            if key != top_key:
                hint = closest(key, [top_key]) or f"; the entries go under {top_key}:"
                outside.append(_problem(document, (key,), f"unknown key {key!r}{hint}"))
        # `connections:` given twice is refused, but the entries of every block are read: none is hidden.
        blocks = [*document.shadowed.get((top_key,), []), data.get(top_key) or {}]
        seen: set[str] = set()
        for section in blocks:
            if not isinstance(section, dict):
                outside.append(_problem(document, (top_key,), f"expected a mapping of names to {top_key} entries"))
                continue
            for name, raw in section.items():
                inside = [problem for where, problem in document.problems if where[:2] == (top_key, name)]
                if name in seen:
                    inside.append(_problem(document, (top_key, name), f"{name} is in two `{top_key}:` blocks; keep one"))
                    entries = [entry for entry in entries if entry[0] != name]
                seen.add(name)
                entries.append((name, raw, document, inside))
    merged = (top_key,) in document.shadowed
    outside += [problem for where, problem in document.problems if len(where) < 2 or where[0] != top_key]
    problems.extend(outside)
    hiding = [p for p in outside if not (merged and p.key_path == top_key and p.message.startswith("key given twice"))]
    if hiding:
        broken.file_reason = summary(hiding)
    return entries


def _relative(prefix: KeyPath, found: list[tuple[KeyPath, SpecProblem]]) -> list[tuple[KeyPath, SpecProblem]]:
    return [(tuple(path[len(prefix):]), problem) for path, problem in found]


def _reported(document: YamlDocument, prefix: KeyPath) -> list[KeyPath]:
    """Keys of one entry whose values reading refused (kept as text): set aside, as they are reported already."""
    return [tuple(where[len(prefix):]) for where, _ in document.problems if tuple(where[: len(prefix)]) == prefix]


def _problem(document: YamlDocument, path: KeyPath, message: str) -> SpecProblem:
    return SpecProblem(document.file, format_key_path(path), message, document.line_of(path))


def _break(broken: BrokenEntries, name: str, found: list[SpecProblem], problems: list[SpecProblem]) -> None:
    problems.extend(found)
    broken.reasons[name] = summary(found)
