"""KPI templates (Capillary): named measures and dimensions over one model, in kpis/*.yaml.

An export names a template with `kpi:` and narrows it: a subset of its dimensions and
measures, filters of its own (ANDed with the template's default filters, which it
cannot drop) and an audience. The template itself never changes.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from export_pipelines.catalog.models import Catalog
from export_pipelines.spec.export import EXPORT_NAME_PATTERN, ExportSpec, FieldSpec, Filters, _field_shorthand
from export_pipelines.spec.plan import PlanError, build_plan

KPI_EXPORT_KEYS = ("kpi", "dimensions", "measures")
TEMPLATE_OWNED_KEYS = ("model", "fields")

FieldEntry = Annotated[FieldSpec, BeforeValidator(_field_shorthand)]


class KpiTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=EXPORT_NAME_PATTERN)
    model: str
    description: str | None = None
    dimensions: list[FieldEntry] = Field(min_length=1, description="Group fields; `aggregation` is implied.")
    measures: list[FieldEntry] = Field(min_length=1, description="Fields with count, sum, avg, min or max.")
    filters: Filters | None = Field(default=None, description="Default filters every export of this template keeps.")

    def fields(self, dimensions: list[FieldSpec] | None = None, measures: list[FieldSpec] | None = None) -> list[FieldSpec]:
        chosen_dimensions = self.dimensions if dimensions is None else dimensions
        chosen_measures = self.measures if measures is None else measures
        return [d.model_copy(update={"aggregation": "group"}) for d in chosen_dimensions] + list(chosen_measures)


class KpiSelection(BaseModel):
    """The keys an export uses to name and narrow a template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kpi: str
    dimensions: list[str] | None = Field(default=None, min_length=1, description="Headers or fields of template dimensions.")
    measures: list[str] | None = Field(default=None, min_length=1, description="Headers or fields of template measures.")


def template_problems(template: KpiTemplate, catalog: Catalog) -> list[PlanError]:
    """The template checked as the export of all its dimensions and measures, at the template's own key paths."""
    problems = []
    for index, dimension in enumerate(template.dimensions):
        if dimension.aggregation not in (None, "group"):
            problems.append(PlanError(f"dimensions[{index}].aggregation", "a dimension is a group field; move it to measures"))
    for index, measure in enumerate(template.measures):
        if measure.aggregation in (None, "group"):
            problems.append(PlanError(f"measures[{index}].aggregation", "a measure needs count, sum, avg, min or max"))
    # The fields are checked too, in the same pass; what they say of a field already refused above is not repeated.
    refused = {problem.key_path.rpartition(".")[0] for problem in problems}
    spec = ExportSpec(name=template.name, model=template.model, fields=template.fields(), filters=template.filters)
    try:
        build_plan(spec, catalog)
    except ExceptionGroup as group:
        mapped = [_template_key_path(template, error) for error in group.exceptions if isinstance(error, PlanError)]
        problems += [problem for problem in mapped if problem.key_path.partition(".")[0] not in refused]
    return problems


def _template_key_path(template: KpiTemplate, error: PlanError) -> PlanError:
    """fields[i] of the checked export is dimensions[i] or measures[i - dimensions] of the template."""
    prefix, bracket, rest = error.key_path.partition("[")
    if prefix != "fields" or not bracket:
        return error
    index_text, _, tail = rest.partition("]")
    index = int(index_text)
    dimensions = len(template.dimensions)
    where = f"dimensions[{index}]" if index < dimensions else f"measures[{index - dimensions}]"
    return PlanError(where + tail, error.message)


def expand_export(raw: dict[str, Any], selection: KpiSelection, template: KpiTemplate) -> dict[str, Any]:
    """An export's raw keys with the template's model and chosen fields; raises ExceptionGroup of PlanError."""
    problems = [
        PlanError(key, f"comes from the KPI template {template.name}; remove it (narrow with dimensions, measures and filters)")
        for key in TEMPLATE_OWNED_KEYS
        if key in raw
    ]
    dimensions = _choose(template.name, "dimensions", template.dimensions, selection.dimensions, problems)
    measures = _choose(template.name, "measures", template.measures, selection.measures, problems)
    if problems:
        raise ExceptionGroup("invalid KPI export", problems)
    rest = {key: value for key, value in raw.items() if key not in KPI_EXPORT_KEYS}
    fields = [field.model_dump(by_alias=True, exclude_defaults=True) for field in template.fields(dimensions, measures)]
    return {**rest, "model": template.model, "fields": fields}


def _choose(
    template_name: str, key: str, available: list[FieldSpec], names: list[str] | None, problems: list[PlanError]
) -> list[FieldSpec] | None:
    if names is None:
        return None
    by_name = {field.source: field for field in available} | {field.header: field for field in available}
    chosen = []
    for index, name in enumerate(names):
        if name in by_name:
            chosen.append(by_name[name])
        else:
            listing = ", ".join(field.header for field in available)
            problems.append(PlanError(f"{key}[{index}]", f"KPI template {template_name} has no {key[:-1]} {name!r}; it has {listing}"))
    return chosen
