"""Audiences (Capillary's audience filter): only rows of a list of customers.

The list is a file of customer ids in the config folder, or the customers of another
model's filtered rows. Both are resolved at load; the file itself is read at run time,
since audience lists are refreshed between runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from export_pipelines.catalog.models import Catalog, ModelDef
from export_pipelines.spec.export import CustomersFileAudience, ExportSpec
from export_pipelines.spec.plan import (
    ConditionGroup,
    PlanError,
    SourceRef,
    resolve_conditions,
    resolve_source,
    unknown_model_message,
)

CUSTOMERS_MODEL = "customers"
CUSTOMER_ID_FIELD = "customer_id"
CUSTOMER_KEY_TYPES = frozenset({"integer", "string"})


@dataclass(frozen=True)
class AudiencePlan:
    customer: SourceRef  # the exported model's field holding the customer id
    customers_file: Path | None = None
    query_model: ModelDef | None = None
    query_key: SourceRef | None = None
    query_conditions: ConditionGroup | None = None


def customer_key_name(model_name: str, model: ModelDef) -> str | None:
    """Where a model keeps the customer id: the customers model's own key, else its customer_id field."""
    if model_name == CUSTOMERS_MODEL:
        return model.primary_key
    return CUSTOMER_ID_FIELD if CUSTOMER_ID_FIELD in model.fields else None


def resolve_audience(spec: ExportSpec, catalog: Catalog, config_root: Path) -> AudiencePlan | None:
    """The spec's audience checked against the catalog and the config folder; raises ExceptionGroup of PlanError."""
    audience = spec.audience
    model_name = catalog.canonical_name(spec.model)
    if audience is None or model_name is None:
        return None
    model = catalog.get(model_name)
    problems: list[PlanError] = []
    customer = _customer_field(model_name, model, audience.field, "audience.field", problems)
    if isinstance(audience, CustomersFileAudience):
        path = _customers_file(config_root, audience.customers_file, problems)
        if problems:
            raise ExceptionGroup("invalid audience", problems)
        return AudiencePlan(customer=customer, customers_file=path)

    query_name = catalog.canonical_name(audience.query_model)
    if query_name is None:
        message = unknown_model_message(catalog, audience.query_model)
        raise ExceptionGroup("invalid audience", [*problems, PlanError("audience.query_model", message)])
    query_model = catalog.get(query_name)
    query_key = _customer_field(query_name, query_model, None, "audience.query_model", problems)
    conditions = resolve_conditions(query_name, query_model, audience.filters, "audience.filters", problems)
    if customer and query_key and customer.field_type != query_key.field_type:
        problems.append(PlanError(
            "audience.field",
            f"{customer.label} is {customer.field_type} but {query_name}.{query_key.label} is {query_key.field_type}; they cannot match",
        ))
    if problems:
        raise ExceptionGroup("invalid audience", problems)
    junction = audience.filters.junction.lower() if audience.filters else "and"
    return AudiencePlan(customer=customer, query_model=query_model, query_key=query_key, query_conditions=ConditionGroup(conditions, junction))


def _customer_field(model_name: str, model: ModelDef, named: str | None, key_path: str, problems: list[PlanError]) -> SourceRef | None:
    name = named or customer_key_name(model_name, model)
    if name is None:
        problems.append(PlanError(key_path, f"model {model_name} has no {CUSTOMER_ID_FIELD} field; name the field holding the customer id in audience.field"))
        return None
    try:
        source = resolve_source(model_name, model, name, key_path)
    except PlanError as error:
        problems.append(error)
        return None
    if source.field_type not in CUSTOMER_KEY_TYPES or source.json_property is not None:
        problems.append(PlanError(key_path, f"{model_name}.{source.label} is {source.field_type}; a customer id is an integer or text field"))
        return None
    return source


def _customers_file(config_root: Path, relative: str, problems: list[PlanError]) -> Path | None:
    root = config_root.resolve()
    path = (root / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(root):
        problems.append(PlanError("audience.customers_file", f"{relative!r} must be a path inside the config folder, e.g. audiences/vip.csv"))
        return None
    if not path.is_file():
        problems.append(PlanError("audience.customers_file", f"{relative!r} does not exist in the config folder {root}"))
        return None
    return path
