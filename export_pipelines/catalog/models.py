"""Logical models: what an export may name, and where it lives in the source database.

The bundled catalog (builtin_models.yaml) describes the demo loyalty schema; a config
folder's models.yaml overrides tables and columns and adds fields, so the same exports
run against a company's own tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

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

    @model_validator(mode="after")
    def _decimal_needs_scale(self) -> FieldDef:
        if self.type == "decimal" and self.scale is None:
            raise ValueError("a decimal field needs a scale (number of decimal places)")
        if self.type != "decimal" and self.scale is not None:
            raise ValueError(f"scale applies to decimal fields only, not {self.type}")
        if self.column is not None and not SQL_NAME_PATTERN.match(self.column):
            raise ValueError(f"column {self.column!r} is not a plain SQL column name")
        return self


class ModelDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    aliases: tuple[str, ...] = ()
    table: str = Field(description="Table name, optionally schema-qualified: crm.members")
    primary_key: str
    event_date: str | None = None
    updated_at: str | None = None
    fields: Mapping[str, FieldDef]

    @model_validator(mode="after")
    def _references_are_fields(self) -> ModelDef:
        for part in self.table.split("."):
            if not SQL_NAME_PATTERN.match(part):
                raise ValueError(f"table {self.table!r} is not a plain (schema.)table name")
        for role in ("primary_key", "event_date", "updated_at"):
            name = getattr(self, role)
            if name is not None and name not in self.fields:
                raise ValueError(f"{role} {name!r} is not one of this model's fields")
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


class Catalog:
    """Models by canonical name, looked up by name or alias."""

    def __init__(self, models: Mapping[str, ModelDef]):
        self.models = dict(models)
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
        """Merge a models.yaml onto this catalog; raises ValueError naming the model and field."""
        merged = dict(self.models)
        for name, override in overrides.models.items():
            canonical = self.canonical_name(name) or name
            base = merged.get(canonical)
            merged[canonical] = _merge_model(canonical, base, override)
        return Catalog(merged)


def _merge_model(name: str, base: ModelDef | None, override: ModelOverride) -> ModelDef:
    fields: dict[str, FieldDef] = dict(base.fields) if base else {}
    for field_name, field_override in override.fields.items():
        changes = field_override.model_dump(exclude_none=True)
        if field_name in fields:
            fields[field_name] = FieldDef(**{**fields[field_name].model_dump(), **changes})
        elif field_override.type is None:
            raise ValueError(f"model {name}: new field {field_name!r} needs a type")
        else:
            fields[field_name] = FieldDef(**changes)
    model_keys = override.model_dump(exclude_none=True, exclude={"fields"})
    if base is None:
        missing = [key for key in ("table", "primary_key") if key not in model_keys]
        if missing:
            raise ValueError(f"model {name} is new, so it needs {' and '.join(missing)}")
        return ModelDef(fields=fields, **model_keys)
    return ModelDef(**{**base.model_dump(exclude={"fields"}), **model_keys, "fields": fields})


def load_builtin_catalog() -> Catalog:
    text = resources.files("export_pipelines.catalog").joinpath("builtin_models.yaml").read_text()
    raw = yaml.safe_load(text)
    return Catalog({name: ModelDef(**model) for name, model in raw["models"].items()})
