"""Reading one YAML file of a config folder: never raising, never guessing.

PyYAML's SafeLoader, with the document composed first and walked before anything is built:
- every key path gets its line, so any later problem can say where it is;
- a key given twice in one mapping is refused, naming both lines (PyYAML keeps the last);
- keys are their text: YAML 1.1 reads the key `on` (schedule.on) as the boolean true;
- a plain value that YAML 1.1 and YAML 1.2 read differently (`NO`, `yes`, `0755`, `1_000`,
  `12:30`) is refused with the way to write it unambiguously;
- a value YAML cannot build (`2024-02-30`, `!!int x`, an unknown tag) is a problem at its key
  path instead of an exception out of the loader; so are a tag on a mapping or list and a
  `<<:` merge of anything but mappings, which PyYAML refuses for the whole file;
- a value under a secret-bearing key is never quoted in a problem.
A refused value is kept as its text, so the rest of the file is still checked in the same pass.
Only regular files are read, and at most MAX_FILE_BYTES of them: a FIFO or a device never ends.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from export_pipelines.spec.connections import is_secret_key
from export_pipelines.spec.problems import KeyPath, SpecProblem, format_key_path, parse_key_path

# Spec files are a few KB; the limits keep a stray data file or an alias bomb from stalling the code location.
MAX_FILE_BYTES = 1_000_000
MAX_VALUES = 100_000
MAX_DEPTH = 64

_TAG = "tag:yaml.org,2002:"
STR_TAG, MERGE_TAG, BOOL_TAG, INT_TAG, FLOAT_TAG, MAP_TAG, SEQ_TAG = (
    f"{_TAG}{name}" for name in ("str", "merge", "bool", "int", "float", "map", "seq")
)
SCALAR_TAGS = frozenset(f"{_TAG}{name}" for name in ("null", "bool", "int", "float", "binary", "timestamp", "str"))
# Builds one scalar at a time to see whether it can be built; it keeps no state between values.
_SCALARS = SafeConstructor()
_BOMS = {"UTF-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE), "UTF-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)}


# A value refused at a secret-bearing key is never quoted: it may be the secret itself.
SECRET_VALUE_MESSAGE = (
    "this value is not shown, as its key holds a secret; secrets are never written in a config file: "
    "write {env: VARIABLE_NAME} and set that variable"
)


@dataclass
class YamlDocument:
    """One file's data (None when it cannot be read at all), the line of every key path, and the problems reading it."""

    file: str
    data: Any = None
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[tuple[KeyPath, SpecProblem]] = field(default_factory=list)
    # A key given twice is refused, and `data` holds its last value; the earlier ones are here, so a
    # shared file's entries under an earlier `connections:` are not lost with it.
    shadowed: dict[KeyPath, list[Any]] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of the deepest part of `path` that is in the file (a missing key: its parent's line)."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def reported_within(self, path: KeyPath) -> bool:
        """Whether reading already reported a problem at `path` or at a key holding it."""
        return any(tuple(path[: len(where)]) == where for where, _ in self.problems)

    def add(self, path: KeyPath, message: str, line: int | None = None, column: int | None = None) -> None:
        self.problems.append((path, SpecProblem(self.file, format_key_path(path), message, line, column)))

    def problem_at(self, key_path: str, message: str) -> SpecProblem:
        """A problem found after reading, at `key_path` ('fields[1].from') of this file, with its line."""
        return SpecProblem(self.file, key_path, message, self.line_of(parse_key_path(key_path)))


def read_yaml(path: Path, file: str, secret_key: Callable[[str], bool] | None = None) -> YamlDocument:
    """The file at `path`, reported as `file` (its path in the config folder); a top-level mapping or a problem.

    A value under a key for which `secret_key` is true is never quoted in a problem, whatever its YAML type.
    """
    document = YamlDocument(file)
    try:
        data = read_config_bytes(path)
    except ConfigFileError as error:
        document.add((), str(error))
        return document
    return _parse(data, document, secret_key)


class ConfigFileError(ValueError):
    """A config file that is not read: not a regular file, too large, or unreadable."""


_KINDS_OF_FILE = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def read_config_bytes(path: Path) -> bytes:
    """The bytes of a config file: a regular file (a symbolic link to one is followed) of at most
    MAX_FILE_BYTES. A FIFO, a device (/dev/zero) or a socket would block or never end, so it is
    refused before it is read; raises ConfigFileError saying which."""
    try:
        kind = _KINDS_OF_FILE.get(stat.S_IFMT(os.stat(path).st_mode))
        if kind is not None:
            raise ConfigFileError(f"not read: it is {kind}, not a regular file; a config file is a plain YAML file")
        # Non-blocking: should it have become a FIFO since, opening it does not wait for a writer.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise ConfigFileError(f"cannot be read: {error.strerror or error}") from None
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ConfigFileError("not read: it is not a regular file; a config file is a plain YAML file")
        data = stream.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            size = max(os.fstat(descriptor).st_size, len(data))
            raise ConfigFileError(f"the file is {size:,} bytes; a config file is at most {MAX_FILE_BYTES:,} bytes of YAML")
    return data


def _parse(data: bytes, document: YamlDocument, secret_key: Callable[[str], bool] | None = None) -> YamlDocument:
    text = _text(data, document)
    if text is None:
        return document
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            document.add((), "the file is empty; expected a mapping of keys to values")
            return document
        walk = _Walk(document, secret_key)
        walk.value(node, (), ())
        if not isinstance(node, MappingNode):
            document.add((), "expected a mapping of keys to values at the top level", node.start_mark.line + 1)
            return document
        document.data = loader.construct_document(node)
        document.shadowed = {path: [loader.construct_object(item, deep=True) for item in items] for path, items in walk.shadowed.items()}
    except _Unreadable as error:
        document.add((), str(error), error.line)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = {"line": mark.line + 1, "column": mark.column + 1} if mark else {}
        document.add((), "not valid YAML: " + ", ".join(filter(None, [error.context, error.problem])), **where)
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        document.add((), f"not valid YAML: character #x{error.character:04x} is not allowed in YAML text", line)
    except yaml.YAMLError as error:
        document.add((), f"not valid YAML: {error}")
    except RecursionError:
        document.add((), f"nested too deeply; a config file is at most {MAX_DEPTH} levels deep")
    finally:
        if loader is not None:
            loader.dispose()
    return document


def _text(data: bytes, document: YamlDocument) -> str | None:
    for encoding, boms in _BOMS.items():
        if data.startswith(boms):
            document.add((), f"the file is saved as {encoding}; save it as UTF-8")
            return None
    if b"\x00" in data:
        document.add((), "a binary file, not YAML text")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        document.add((), f"not UTF-8 text (byte 0x{data[error.start]:02x}); save the file as UTF-8", line)
        return None


class _Unreadable(ValueError):
    """The document as a whole cannot be used."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when PyYAML has it: ~10x faster
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        # Keys are their text; a key that is not a scalar was reported by the walk and is left out.
        self.flatten_mapping(node)
        return {key.value: self.construct_object(value, deep=deep) for key, value in node.value if isinstance(key, ScalarNode)}


class _Walk:
    """One pass over the composed nodes: lines, duplicate keys, values YAML reads ambiguously or cannot build."""

    def __init__(self, document: YamlDocument, secret_key: Callable[[str], bool] | None = None):
        self.document = document
        self.values = 0
        self.shadowed: dict[KeyPath, list[Node]] = {}
        # Any file may hold a secret under a key that says so (an export's encrypt.sign_with.passphrase).
        self.secret_key = secret_key or is_secret_key

    def value(self, node: Node, path: KeyPath, ancestors: tuple[Node, ...]) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _Unreadable(f"holds more than {MAX_VALUES:,} values (aliases repeating each other?); a config file is far smaller")
        if len(path) > MAX_DEPTH:
            raise _Unreadable(f"nested deeper than {MAX_DEPTH} levels")
        if any(node is ancestor for ancestor in ancestors):
            raise _Unreadable("an alias refers to a value that contains it", node.start_mark.line + 1)
        if isinstance(node, MappingNode | SequenceNode) and node.tag not in (MAP_TAG, SEQ_TAG):
            # PyYAML would refuse the whole file at it (`!!omap {a: 1}`, `!Ref {...}`): this value's problem instead, read plain.
            kind = "mapping" if isinstance(node, MappingNode) else "list"
            self.document.add(path, f"the YAML tag {node.tag} is not supported here; write a plain {kind}", node.start_mark.line + 1)
            node.tag = MAP_TAG if isinstance(node, MappingNode) else SEQ_TAG
        if isinstance(node, MappingNode):
            self.mapping(node, path, (*ancestors, node))
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self.document.lines.setdefault((*path, index), item.start_mark.line + 1)
                self.value(item, (*path, index), (*ancestors, node))
        else:
            self.scalar(node, path)

    def mapping(self, node: MappingNode, path: KeyPath, ancestors: tuple[Node, ...]) -> None:
        first_line: dict[str, int] = {}
        earlier: dict[str, Node] = {}
        merged = []
        for key, item in list(node.value):
            line = key.start_mark.line + 1
            if key.tag == MERGE_TAG:
                sources = item.value if isinstance(item, SequenceNode) else [item]
                if not all(isinstance(source, MappingNode) for source in sources):
                    # PyYAML would refuse the whole file; the merge is this mapping's problem, and it is left out.
                    self.document.add(path, "`<<:` merges a mapping (or a list of mappings) into this one, such as <<: *defaults", line)
                    node.value.remove((key, item))
                    continue
                merged += sources
                continue
            if not isinstance(key, ScalarNode):
                self.document.add(path, "a key must be a name, not a list or a mapping", line)
                continue
            if key.value in first_line:
                self.document.add(
                    (*path, key.value), f"key given twice in one mapping (lines {first_line[key.value]} and {line}); keep one", line
                )
                self.shadowed.setdefault((*path, key.value), []).append(earlier[key.value])
            else:
                first_line[key.value] = line
            earlier[key.value] = item
            self.document.lines.setdefault((*path, key.value), line)
            self.value(item, (*path, key.value), ancestors)
        # Keys merged in with `<<: *anchor` give way to the mapping's own keys, as YAML says.
        for source in merged:
            self.value(source, path, ancestors)

    def scalar(self, node: ScalarNode, path: KeyPath) -> None:
        message = None
        if node.tag not in SCALAR_TAGS:
            message = f"the YAML tag {node.tag} is not supported here; write the plain value"
        elif node.tag != STR_TAG:
            try:
                value = SafeConstructor.yaml_constructors[node.tag](_SCALARS, node)
            except Exception as error:  # noqa: BLE001 - any failure to build a value is this value's problem
                message = _unbuildable(node, error)
            else:
                # Plain (unquoted) style is None in PyYAML's parser and "" in libyaml's.
                message = _ambiguity(node, value) if not node.style else None
        if message is not None:
            if any(isinstance(part, str) and self.secret_key(part) for part in path):
                message = SECRET_VALUE_MESSAGE
            self.document.add(path, message, node.start_mark.line + 1)
            node.tag = STR_TAG


_KINDS = {"int": "integer", "float": "number", "bool": "boolean (true or false)", "binary": "base64 value"}


def _unbuildable(node: ScalarNode, error: Exception) -> str:
    kind = node.tag.removeprefix(_TAG)
    if kind == "timestamp":
        kind = "date and time" if re.search(r"[Tt ]\d", node.value) else "date"
    # Python's words for an impossible date ("day is out of range for month") say which part is wrong.
    reason = f": {error}" if isinstance(error, ValueError) and kind.startswith("date") else ""
    return f"{node.value} is not a valid {_KINDS.get(kind, kind)}{reason}"


def _ambiguity(node: ScalarNode, value: Any) -> str | None:
    """Why a plain value must be written differently, when YAML 1.1 and YAML 1.2 read it differently."""
    text = node.value
    if node.tag == BOOL_TAG and text.lower() not in {"true", "false"}:
        word = "true" if value else "false"
        return f"{text} is read as {word} by YAML 1.1 but as text by YAML 1.2; write {word} for a yes/no value, or quote it (\"{text}\") for text"
    if node.tag in {INT_TAG, FLOAT_TAG} and ":" in text:
        return f"{text} is read as the number {value} by YAML 1.1 (base 60) but as text by YAML 1.2; quote it: \"{text}\""
    if node.tag in {INT_TAG, FLOAT_TAG} and ("_" in text or re.match(r"[-+]?0(b|[0-9])", text) and node.tag == INT_TAG):
        return f"{text} is read as the number {value} by YAML 1.1 but not by YAML 1.2; write {value} for the number, or quote it (\"{text}\") for text"
    return None
