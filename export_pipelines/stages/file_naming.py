"""File names from templates such as "customers_{run_time:%Y%m%dT%H%M%SZ}.{ext}".

Templates come from spec files, so formatting is restricted to the known tokens with no
attribute or index access, and a rendered name must stay inside its target folder.
"""

from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass
from typing import Any

TOKENS: tuple[str, ...] = ("export", "model", "run_time", "window_start", "window_end", "part", "ext")
DEFAULT_TEMPLATE = "{export}_{run_time:%Y%m%dT%H%M%SZ}.{ext}"
DEFAULT_SPLIT_TEMPLATE = "{export}_{run_time:%Y%m%dT%H%M%SZ}_part{part:03d}.{ext}"
# Incremental exports are named by their window (end exclusive), so a rerun or backfill of a window
# replaces its file instead of adding one; hourly names carry the offset, as 02:00 occurs twice in autumn.
DEFAULT_WINDOW_TEMPLATES = {
    "daily": "{export}_{window_start:%Y%m%d}_{window_end:%Y%m%d}.{ext}",
    "hourly": "{export}_{window_start:%Y%m%dT%H%M%z}_{window_end:%Y%m%dT%H%M%z}.{ext}",
}


class FileNameError(ValueError):
    pass


def default_template(grain: str | None, *, split: bool) -> str:
    """The file name when the spec gives none: by run time for a snapshot, by window for an incremental export."""
    if grain is None:
        return DEFAULT_SPLIT_TEMPLATE if split else DEFAULT_TEMPLATE
    template = DEFAULT_WINDOW_TEMPLATES[grain]
    return template.replace(".{ext}", "_part{part:03d}.{ext}") if split else template


@dataclass(frozen=True)
class NameValues:
    export: str
    model: str
    run_time: dt.datetime
    ext: str
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    part: int = 1


def unknown_token_message(name: str) -> str:
    return f"unknown token {{{name}}} in file_name; tokens are " + ", ".join(f"{{{t}}}" for t in TOKENS)


class _TokenFormatter(string.Formatter):
    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if field_name not in TOKENS:
            raise FileNameError(unknown_token_message(field_name))
        value = kwargs[field_name]
        if value is None:
            raise FileNameError(f"token {{{field_name}}} has no value for this export (it has no time window)")
        return value, field_name


_FORMATTER = _TokenFormatter()


def extension(file_format: str, compression: str) -> str:
    suffix = {"none": "", "gzip": ".gz", "zstd": ".zst", "zip": ".zip"}[compression]
    return f"{file_format}{suffix}"


def template_tokens(template: str) -> set[str]:
    try:
        return {field for _, field, _, _ in _FORMATTER.parse(template) if field is not None}
    except ValueError as error:
        raise FileNameError(f"file_name is not a valid template: {error}") from error


def render_file_name(template: str, values: NameValues) -> str:
    run_time = values.run_time.astimezone(dt.UTC)
    try:
        name = _FORMATTER.vformat(
            template,
            (),
            {
                "export": values.export,
                "model": values.model,
                "run_time": run_time,
                "window_start": values.window_start,
                "window_end": values.window_end,
                "part": values.part,
                "ext": values.ext,
            },
        )
    except FileNameError:
        raise
    except (ValueError, TypeError, IndexError) as error:
        raise FileNameError(f"file_name template {template!r} cannot be rendered: {error}") from error
    check_safe_file_name(name)
    return name


def check_safe_file_name(name: str) -> None:
    """A delivered file's name is one path segment: no separators, no '..', nothing hidden or empty."""
    # Escaping the folder is the graver fault, so it is named even when the name is hidden too ('../x.csv').
    forbidden = [ch for ch in ("/", "\\", "\x00") if ch in name]
    if forbidden or ".." in name or any(ord(ch) < 32 for ch in name):
        raise FileNameError(f"file name {name!r} could leave its folder (contains '/', '\\', '..' or control characters)")
    if not name or name == "." or name.startswith("."):
        raise FileNameError(f"file name {name!r} is empty or hidden")
    if len(name.encode()) > 255:
        raise FileNameError(f"file name {name!r} is longer than 255 bytes")
