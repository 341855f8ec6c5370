"""Problems found in a config folder, and pydantic's validation errors turned into them.

A problem names its file, the line where YAML gives one, the key path (`fields[1].from`)
and what is wrong, with the closest valid names for any unknown name at any depth.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class SpecProblem:
    """One problem of a config folder: `file` relative to the folder, 1-based `line` and `column`
    where YAML gives them, `key_path` such as 'fields[1].from' ('' for the file as a whole)."""

    file: str
    key_path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}" + (f", column {self.column}" if self.column is not None else ""))
        if self.key_path:
            parts.append(self.key_path)
        return ": ".join([*parts, self.message])


class KeyValueError(ValueError):
    """A model validator's error about one of the model's keys: pydantic locates it at the model, this names the key."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def summary(problems: list[SpecProblem]) -> str:
    """The first problem, and how many more there are: why an entry others depend on does not load."""
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


Layer = tuple[list[tuple[KeyPath, SpecProblem]], bool]


def every_layer(raw: Any, check: typing.Callable[[Any], Layer], set_aside: Iterable[KeyPath] = (), rounds: int = 8) -> list[SpecProblem]:
    """Every problem of `raw` (one entry of a shared file, one KPI template), not only its first layer.

    `check(value)` returns the (key path within `raw`, problem) pairs of the first check that fails
    (the keys' shapes, then what a model validator or the catalog makes of them), and whether that
    check is the last one. Until it is, the keys it names are set aside (deleted from a copy of
    `raw`; a list as a whole when an item fails) and it runs again, so one pass reports what would
    otherwise take one fix per layer. A problem at or under a set-aside key is not reported again
    (its required key is now missing, its stand-in is refused). `set_aside` gives keys already
    reported (by the YAML reader) to leave out from the start.
    """
    removed: list[KeyPath] = []
    current = _without(raw, list(set_aside), removed)
    problems: list[SpecProblem] = []
    for _ in range(rounds):
        if current is _WHOLE:
            break
        layer, last = check(current)
        found = [(path, problem) for path, problem in layer if not _under(path, removed) and not _blames_set_aside(path, problem, removed)]
        problems += [problem for _, problem in found]
        if last or not found:
            break
        current = _without(current, [path for path, _ in found], removed)
    return problems


_WHOLE = object()


def _without(raw: Any, paths: list[KeyPath], removed: list[KeyPath]) -> Any:
    """A copy of `raw` without the mapping key holding each path; _WHOLE when a path is `raw` itself."""
    result = copy.deepcopy(raw)
    for path in paths:
        cut = tuple(path)
        while cut and isinstance(cut[-1], int):
            cut = cut[:-1]
        if not cut:
            return _WHOLE
        removed.append(cut)
        parent = _node_at(result, cut[:-1])
        if isinstance(parent, dict):
            parent.pop(cut[-1], None)
    return result


def _blames_set_aside(path: KeyPath, problem: SpecProblem, removed: list[KeyPath]) -> bool:
    """A check of the whole mapping (a model validator) that names a key set aside below it may be
    complaining that the key is gone (`needs password` once password was set aside): not reported."""
    return any(
        len(cut) > len(path) and tuple(cut[: len(path)]) == tuple(path) and re.search(rf"\b{re.escape(str(cut[-1]))}\b", problem.message)
        for cut in removed
    )


def _under(path: KeyPath, removed: list[KeyPath]) -> bool:
    return any(tuple(path[: len(cut)]) == cut for cut in removed)


def format_key_path(parts: Iterable[str | int]) -> str:
    """('fields', 1, 'from') -> 'fields[1].from'."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_key_path(text: str) -> KeyPath:
    """'fields[1].from' -> ('fields', 1, 'from'); the inverse of format_key_path for names without dots."""
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", text):
        parts.append(int(index) if index else name)
    return tuple(parts)


def closest(name: str, candidates: Iterable[str]) -> str:
    """'; did you mean a, b?' with up to three close candidates, or '' when none is close."""
    matches = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=3, cutoff=0.5)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


def pydantic_problems(
    file: str,
    raw: Any,
    error: ValidationError,
    roots: Sequence[type],
    *,
    prefix: KeyPath = (),
    line_of: typing.Callable[[KeyPath], int | None] = lambda _: None,
) -> list[tuple[KeyPath, SpecProblem]]:
    """pydantic's errors for `raw`, validated as roots[0], each with its key path in the file.

    Further roots only widen the names suggested for an unknown top-level key (a KPI export's
    `kpi`, `dimensions` and `measures` are checked apart from the spec's other keys).
    `prefix` is where `raw` sits in its file (an entry of connections.yaml is validated alone);
    `line_of` gives the line of a key path. Returns (key path as a tuple, problem) pairs, so a
    caller can tell which top-level keys failed.
    """
    errors = error.errors()
    found: list[tuple[KeyPath, SpecProblem]] = []
    for item in errors:
        if _superseded(item, errors):
            continue
        loc = _file_loc(raw, item["loc"], roots[0], keep_last=item["type"] == "missing")
        message = _message(item, raw, loc, roots)
        context = item.get("ctx") or {}
        if item["type"] in {"union_tag_invalid", "union_tag_not_found"} and isinstance(context.get("discriminator"), str):
            # The tag is one key of the mapping (`type: fpt`, or no `type:`): point at that key.
            loc = [*loc, context["discriminator"].strip("'")]
            message = "required key is missing" if item["type"] == "union_tag_not_found" else message
        if isinstance(context.get("error"), KeyValueError):
            loc = [*loc, context["error"].key]
        path = (*prefix, *loc)
        found.append((path, SpecProblem(file, format_key_path(path), message, line_of(path))))
    return found


def _superseded(item: dict, errors: list[dict]) -> bool:
    """A literal alternative of a union (`target: download | {connection: ...}`) never matches a mapping;
    the mapping member's own errors say what is wrong with it."""
    if item["type"] != "literal_error" or not isinstance(item["input"], dict | list):
        return False
    union_loc = item["loc"][:-1]
    return any(other is not item and other["loc"][: len(union_loc)] == union_loc for other in errors)


def _message(item: dict, raw: Any, loc: list, roots: Sequence[type]) -> str:
    kind, message, value = item["type"], item["msg"], item.get("input")
    context = item.get("ctx") or {}
    if kind == "extra_forbidden" and loc:
        allowed = allowed_keys(roots, loc[:-1], _node_at(raw, loc[:-1]))
        if str(loc[-1]) in allowed:
            # A key of another form of this mapping (schedule: on vs repeated; audience: customers_file vs query_model).
            return f"{loc[-1]!r} cannot be combined with the other keys here: they belong to different forms of it; keep the keys of one form"
        return f"unknown key {loc[-1]!r}{closest(str(loc[-1]), allowed)}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error" and isinstance(value, str):
        expected = re.findall(r"'([^']*)'", context.get("expected", ""))
        if loc and str(loc[-1]).startswith("$") and "conditions" in loc:
            return f"unknown operator {value!r}{closest(value, expected)} (operators: {', '.join(expected)})"
        return f"unknown value {value!r}{closest(value, expected)} (one of: {', '.join(expected)})"
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        keys = allowed_keys(roots, loc, None)
        return "expected a mapping of keys to values" + (f" ({', '.join(keys)})" if keys else "")
    if kind == "union_tag_invalid":
        expected = re.findall(r"'([^']*)'", context.get("expected_tags", ""))
        tag = str(context.get("tag"))
        return f"unknown {context.get('discriminator', '').strip(chr(39))} {tag!r}{closest(tag, expected)} (one of: {', '.join(expected)})"
    if kind in {"date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact", "date_type"}:
        return f"{value} is not a valid date (YYYY-MM-DD)" + (f": {context['error']}" if "error" in context else "")
    if kind in {"datetime_parsing", "datetime_from_date_parsing", "datetime_type"}:
        return f"{value} is not a valid date and time (YYYY-MM-DDTHH:MM)" + (f": {context['error']}" if "error" in context else "")
    # Our validators' own words; pydantic's "Value error, " prefix only adds noise.
    return message.removeprefix("Value error, ")


def _file_loc(raw: Any, loc: tuple, validated: Any, *, keep_last: bool) -> list:
    """pydantic's error location reduced to the keys that exist in the file.

    pydantic inserts a label after every union it tries (the member's tag, `ConnectionTarget`,
    `literal['download']`), and a tag can be a key name too (a schedule's `every`), so the
    annotations are walked alongside: right after a union, the next part is its label. Parts
    the parsed YAML does not have are dropped; a missing key, by definition not in the file,
    is kept when asked.
    """
    path, node, frontier = [], raw, [validated]
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        members = [member for annotation in frontier for member in _tagged_members(annotation)]
        if len(members) > 1 and not last:
            named = [annotation for annotation, labels in members if str(part) in labels]
            frontier = named or [annotation for annotation, _ in members]
            continue
        key = _yaml_key(node, part)
        in_dict = isinstance(node, dict) and key in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[key]
            frontier = [child for annotation in frontier for child in _children(annotation, part)]
        elif not (keep_last and last):
            continue
        path.append(part)
    return path


def _tagged_members(annotation: Any) -> list[tuple[Any, set[str]]]:
    """A union's members other than None, each with the labels pydantic may give it in an error's location."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = get_args(annotation)
        tags = {item.tag for item in metadata if isinstance(item, Tag)}
        return [(member, labels | tags) for member, labels in _tagged_members(inner)]
    if origin in (Union, types.UnionType):
        return [entry for arg in get_args(annotation) for entry in _tagged_members(arg)]
    if annotation is type(None):
        return []
    labels = {getattr(annotation, "__name__", "")}
    if origin is Literal:
        labels |= {f"literal[{', '.join(repr(value) for value in get_args(annotation))}]"}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        # A `type: Literal[...]` discriminator labels the member with the tag value.
        kind = annotation.model_fields.get("type")
        labels |= {str(value) for value in get_args(kind.annotation)} if kind is not None else set()
    return [(annotation, labels)]


def _yaml_key(node: Any, part: Any) -> Any:
    """A mapping parsed by plain YAML 1.1 (an ad-hoc request's run config) holds the key `on` as true."""
    if part == "on" and isinstance(node, dict) and "on" not in node and True in node:
        return True
    return part


def allowed_keys(roots: Sequence[type], path: Sequence[str | int], node: Any) -> list[str]:
    """The keys a mapping at `path` may hold, read from the pydantic models' annotations.

    A union's members are narrowed to those whose literal keys the mapping `node` matches
    (`type: ftp`, `repeated: daily`); when none does, every member's keys are candidates.
    """
    frontier: list = list(roots)
    for part in path:
        frontier = [child for annotation in frontier for child in _children(annotation, part)]
    models = [m for a in frontier for m in _members(a) if isinstance(m, type) and issubclass(m, BaseModel)]
    fitting = [model for model in models if _fits(model, node)] or models
    return list(dict.fromkeys(info.alias or name for model in fitting for name, info in model.model_fields.items()))


def _fits(model: type[BaseModel], node: Any) -> bool:
    """Whether the mapping's values for the model's literal-typed keys are among the literals."""
    if not isinstance(node, dict):
        return True
    for name, info in model.model_fields.items():
        key = info.alias or name
        if get_origin(info.annotation) is Literal and key in node and node[key] not in get_args(info.annotation):
            return False
    return True


def _node_at(raw: Any, path: Sequence[str | int]) -> Any:
    for part in path:
        raw = raw[part] if isinstance(raw, dict | list) else None
    return raw


def _members(annotation: Any) -> list:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


def _children(annotation: Any, part: str | int) -> list:
    children = []
    for member in _members(annotation):
        origin = get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            fields = {info.alias or name: info.annotation for name, info in member.model_fields.items()}
            fields |= {name: info.annotation for name, info in member.model_fields.items()}
            if part in fields:
                children.append(fields[part])
            elif member.model_config.get("extra") == "allow":
                extra = typing.get_type_hints(member).get("__pydantic_extra__")
                children += [get_args(extra)[1]] if extra is not None else []
        elif origin in (list, tuple, Sequence) and isinstance(part, int):
            children.append(get_args(member)[0])
        elif origin in (dict, Mapping) and isinstance(part, str):
            children.append(get_args(member)[1])
    return children
