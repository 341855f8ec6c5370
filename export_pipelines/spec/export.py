"""The export spec: one YAML file under exports/, validated before any definition is built."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, field_validator

EXPORT_NAME_PATTERN = r"^[a-z0-9_]{1,64}$"

FilterOperator = Literal[
    "$in",
    "$not_in",
    "$is",
    "$is_not",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$after",
    "$before",
    "$is_unknown",
    "$has_value",
    "$starts_with",
    "$ends_with",
    "$contains",
]
FILTER_OPERATORS: tuple[str, ...] = FilterOperator.__args__
# YAML reads unquoted 2024-01-01 and 2024-01-01T00:00:00Z as dates and datetimes.
Scalar = str | int | float | bool | dt.datetime | dt.date


def _scalar_text(value: Any) -> Any:
    """YAML reads `yes`, `14` and `true` as non-strings; in a file every value is text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


TextValue = Annotated[str, BeforeValidator(_scalar_text)]


class FieldSpec(BaseModel):
    """One output column: Antavo's From / To / Default / Replace values (and Aggregation)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    source: str = Field(alias="from", description="Catalog field, or metadata.X for one JSON property.")
    to: str | None = Field(default=None, description="Header name; defaults to the source field name.")
    default: TextValue | None = Field(default=None, description="Written where the value is NULL or empty.")
    replace: dict[TextValue, TextValue] = Field(default_factory=dict, description="Value as written -> new value.")
    aggregation: Literal["group", "count", "sum", "avg", "min", "max"] | None = None

    @property
    def header(self) -> str:
        return self.to if self.to is not None else self.source

    @field_validator("to")
    @classmethod
    def _header_is_printable(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(ch in value for ch in "\r\n\x00")):
            raise ValueError("a header name must be non-empty text on one line")
        return value


def _field_shorthand(value: Any) -> Any:
    """`- email` is short for `- {from: email}` (Voucherify lists bare field names)."""
    return {"from": value} if isinstance(value, str) else value


class FieldCondition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    conditions: dict[FilterOperator, list[Scalar] | Scalar | None]

    @field_validator("conditions")
    @classmethod
    def _at_least_one(cls, value: dict) -> dict:
        if not value:
            raise ValueError("conditions must name at least one operator, e.g. {$in: [DE, AT]}")
        return value


class Filters(BaseModel):
    """Voucherify's filter syntax: `junction` plus one entry per field, values always bound parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)

    junction: Literal["and", "or", "AND", "OR"] = "and"
    # Every other key is a field name; typing the extras makes pydantic report `filters.<field>...`.
    __pydantic_extra__: dict[str, FieldCondition] = Field(init=False)

    @property
    def by_field(self) -> dict[str, FieldCondition]:
        return dict(self.model_extra or {})


class CustomersFileAudience(BaseModel):
    """Capillary's customer list: a file of customer ids, one per line, relative to the config folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customers_file: str
    field: str | None = Field(default=None, description="The exported model's customer id field; customer_id by default.")


class QueryAudience(BaseModel):
    """The customers of another model's filtered rows, e.g. every customer of the DE market."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query_model: str
    filters: Filters | None = None
    field: str | None = Field(default=None, description="The exported model's customer id field; customer_id by default.")


def _audience_kind(value: Any) -> str:
    """Which audience a mapping describes, so an error speaks of that kind only."""
    if isinstance(value, BaseModel):
        return "customers_file" if isinstance(value, CustomersFileAudience) else "query_model"
    return "customers_file" if isinstance(value, dict) and "customers_file" in value else "query_model"


Audience = Annotated[
    Annotated[CustomersFileAudience, Tag("customers_file")] | Annotated[QueryAudience, Tag("query_model")],
    Discriminator(_audience_kind),
]


class ConnectionTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connection: str
    path: str = "/"


class ExportSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=EXPORT_NAME_PATTERN, description="Unique; lower-case letters, digits and _.")
    model: str
    description: str | None = None
    owner: str | None = None
    fields: list[Annotated[FieldSpec, BeforeValidator(_field_shorthand)]] = Field(min_length=1)
    filters: Filters | None = None
    order: list[str] = Field(default_factory=list, description="Field names; a leading - sorts descending.")
    format: Literal["csv", "psv"] = "csv"
    compression: Literal["none", "gzip", "zip"] = "none"
    line_ending: Literal["crlf", "lf"] = "crlf"
    file_name: str | None = Field(default=None, description="Template; see file_naming.TOKENS.")
    max_rows_per_file: int | None = Field(default=None, gt=0)
    batch_size: int = Field(default=50_000, gt=0, le=5_000_000)
    target: Literal["download"] | ConnectionTarget = "download"
    audience: Audience | None = Field(default=None, description="Only rows of these customers.")
    aggregation_path: Literal["auto", "arrow"] = Field(
        default="auto", description="auto: GROUP BY in the database where it can; arrow: always over Arrow batches."
    )

    @field_validator("order", mode="before")
    @classmethod
    def _order_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("file_name")
    @classmethod
    def _template_on_one_line(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"[\x00-\x1f]", value):
            raise ValueError("file_name must not contain control characters")
        return value

    @property
    def aggregates(self) -> bool:
        return any(field.aggregation for field in self.fields)

    @property
    def target_label(self) -> str:
        if isinstance(self.target, ConnectionTarget):
            return f"{self.target.connection}:{self.target.path}"
        return self.target
