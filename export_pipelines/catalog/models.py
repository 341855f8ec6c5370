"""Logical models: what an export may name, and where it lives in the source database.

The bundled catalog (builtin_models.yaml) describes the demo loyalty schema; a config
folder's models.yaml overrides tables and columns and adds fields, so the same exports
run against a company's own tables.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from export_pipelines.spec.problems import KeyValueError, closest

FieldType = Literal["string", "integer", "decimal", "boolean", "timestamp", "date", "json"]

# A json field's single property, as in Voucherify's "metadata.X".
JSON_PROPERTY_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
SQL_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


class FieldDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    scale: int | None = Field(default=None, ge=0, le=38, description="Decimal places of a decimal field (0-38: values have at most 38 digits).")
    column: str | None = Field(default=None, description="Source column; defaults to the field name.")
    identifier: bool = False
    computed: bool = False

    @field_validator("column")
    @classmethod
    def _plain_column_name(cls, value: str | None) -> str | None:
        if value is not None and not SQL_NAME_PATTERN.match(value):
            raise ValueError(f"column {value!r} is not a plain SQL column name")
        return value

    @model_validator(mode="after")
    def _decimal_needs_scale(self) -> FieldDef:
        if self.type == "decimal" and self.scale is None:
            raise ValueError("a decimal field needs a scale (number of decimal places)")
        if self.type != "decimal" and self.scale is not None:
            raise ValueError(f"scale applies to decimal fields only, not {self.type}")
        return self


class ModelDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    aliases: tuple[str, ...] = ()
    table: str = Field(description="Table name, optionally schema-qualified: crm.members")
    primary_key: str
    event_date: str | None = None
    updated_at: str | None = None
    fields: Mapping[str, FieldDef]

    @field_validator("table")
    @classmethod
    def _plain_table_name(cls, value: str) -> str:
        if not all(SQL_NAME_PATTERN.match(part) for part in value.split(".")):
            raise ValueError(f"table {value!r} is not a plain (schema.)table name")
        return value

    @model_validator(mode="after")
    def _references_are_fields(self) -> ModelDef:
        for role in ("primary_key", "event_date", "updated_at"):
            name = getattr(self, role)
            if name is not None and name not in self.fields:
                raise KeyValueError(role, f"{name!r} is not one of this model's fields{closest(name, self.fields)}")
        return self

    def column_of(self, field_name: str) -> str:
        return self.fields[field_name].column or field_name

    @property
    def json_fields(self) -> list[str]:
        return [name for name, field in self.fields.items() if field.type == "json"]


class FieldOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: FieldType | None = None
    scale: int | None = None
    column: str | None = None
    identifier: bool | None = None
    computed: bool | None = None


class ModelOverride(BaseModel):
    """One entry of a config folder's models.yaml: every key optional, merged onto the bundled model."""

    model_config = ConfigDict(extra="forbid")

    aliases: tuple[str, ...] | None = None
    table: str | None = None
    primary_key: str | None = None
    event_date: str | None = None
    updated_at: str | None = None
    fields: dict[str, FieldOverride] = {}


class ModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelOverride] = {}


class ModelError(ValueError):
    """Every problem of one model of models.yaml, each at its key path under the model."""

    def __init__(self, name: str, problems: list[tuple[tuple[str, ...], str]]):
        super().__init__("; ".join(f"models.{name}.{'.'.join(map(str, path))}: {message}" for path, message in problems))
        self.problems = problems


class Catalog:
    """Models by canonical name, looked up by name or alias.

    `broken` holds the names and aliases of models that do not load (a bad entry of
    models.yaml), with the reason: an export naming one is invalid, never run against the
    bundled mapping the entry meant to change.
    """

    def __init__(self, models: Mapping[str, ModelDef], broken: Mapping[str, str] | None = None):
        self.models = dict(models)
        self.broken = dict(broken or {})
        self._canonical = {}
        for name, model in self.models.items():
            for label in (name, *model.aliases):
                self._canonical[label] = name

    def canonical_name(self, name_or_alias: str) -> str | None:
        return self._canonical.get(name_or_alias)

    def get(self, name_or_alias: str) -> ModelDef:
        return self.models[self._canonical[name_or_alias]]

    @property
    def names_and_aliases(self) -> list[str]:
        return sorted(self._canonical)

    def with_overrides(self, overrides: ModelsFile) -> Catalog:
        """Merge a models.yaml onto this catalog; raises ModelError naming the model, field and key."""
        merged = dict(self.models)
        for name, override in overrides.models.items():
            canonical = self.canonical_name(name) or name
            merged[canonical] = merge_model(canonical, merged.get(canonical), override)
        return Catalog(merged)


def merge_model(name: str, base: ModelDef | None, override: ModelOverride) -> ModelDef:
    """One models.yaml entry merged onto the bundled model (None for a new model).

    Raises ModelError with every problem at its key path under the model, e.g.
    (('fields', 'balance'), 'a decimal field needs a scale ...').
    """
    problems: list[tuple[tuple[str, ...], str]] = []
    fields: dict[str, FieldDef] = dict(base.fields) if base else {}
    failed: set[str] = set()
    for field_name, field_override in override.fields.items():
        changes = field_override.model_dump(exclude_none=True)
        if field_name not in fields and field_override.type is None:
            problems.append((("fields", field_name, "type"), f"{field_name!r} is a new field of {name}, so it needs a type"))
            failed.add(field_name)
            continue
        try:
            fields[field_name] = FieldDef(**{**(fields[field_name].model_dump() if field_name in fields else {}), **changes})
        except ValidationError as error:
            problems += _located(("fields", field_name), error)
            failed.add(field_name)
    model_keys = override.model_dump(exclude_none=True, exclude={"fields"})
    missing = [key for key in ("table", "primary_key") if key not in model_keys] if base is None else []
    problems += [((key,), f"model {name} is new, so it needs {key}") for key in missing]
    # The model's own checks (its table's name, the fields its keys name) run in the same pass: a field
    # refused above stands in as text, a missing key as a placeholder, and what those say is not reported.
    checked = {**fields, **{field_name: FieldDef(type="string") for field_name in failed}}
    stand_ins = {"table": "missing", "primary_key": next(iter(checked), None)}
    try:
        if base is None:
            model = ModelDef(fields=checked, **{**{key: stand_ins[key] for key in missing}, **model_keys})
        else:
            model = ModelDef(**{**base.model_dump(exclude={"fields"}), **model_keys, "fields": checked})
    except ValidationError as error:
        problems += [problem for problem in _located((), error) if problem[0][:1] not in {(key,) for key in missing}]
    if problems:
        raise ModelError(name, problems)
    return model


def _located(prefix: tuple[str, ...], error: ValidationError) -> list[tuple[tuple[str, ...], str]]:
    located = []
    for item in error.errors():
        key = getattr((item.get("ctx") or {}).get("error"), "key", None)
        path = (*prefix, *map(str, item["loc"]), *([key] if key else []))
        located.append((path, item["msg"].removeprefix("Value error, ")))
    return located


def load_builtin_catalog() -> Catalog:
    return Catalog(_builtin_models())


@functools.cache
def _builtin_models() -> dict[str, ModelDef]:
    # Parsed once per process: the models are frozen, and every config load starts from them.
    # libyaml's parser when PyYAML has it: the pure-Python one takes ~0.1 s of every run worker's start.
    text = resources.files("export_pipelines.catalog").joinpath("builtin_models.yaml").read_text()
    raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
    return {name: ModelDef(**model) for name, model in raw["models"].items()}
