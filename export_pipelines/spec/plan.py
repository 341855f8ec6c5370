"""An export spec checked against the catalog and compiled into what the stages run.

Everything a spec names (model, fields, filter values, order, file name) is resolved
here, so a wrong name or value is reported at load with the key path that holds it and
the stages never see unchecked text.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import re
import string
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from export_pipelines.catalog.models import JSON_PROPERTY_PATTERN, Catalog, FieldDef, FieldType, ModelDef
from export_pipelines.spec.aggregation_rules import aggregation_problems
from export_pipelines.spec.parallel_rules import ParallelPlan, parallel_plan, parallel_problems
from export_pipelines.spec.export import FRACTION_READ_AS_NUMBER, ConnectionTarget, ExportSpec, FieldSpec, Filters
from export_pipelines.spec.problems import closest
from export_pipelines.spec.timing import timing_problems, window_field_name
from export_pipelines.stages import file_naming, name_patterns

if TYPE_CHECKING:
    from export_pipelines.spec.audience import AudiencePlan
    from export_pipelines.spec.encryption import EncryptionPlan

VALUELESS_OPERATORS = frozenset({"$is_unknown", "$has_value"})
SINGLE_VALUE_OPERATORS = frozenset({"$is", "$is_not", "$gt", "$gte", "$lt", "$lte", "$after", "$before"})
TEXT_OPERATORS = frozenset({"$starts_with", "$ends_with", "$contains"})
ORDERING_OPERATORS = frozenset({"$gt", "$gte", "$lt", "$lte", "$after", "$before"})
TIME_OPERATORS = frozenset({"$after", "$before"})
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


class PlanError(ValueError):
    """A problem at one key path of a spec."""

    def __init__(self, key_path: str, message: str):
        super().__init__(f"{key_path}: {message}")
        self.key_path = key_path
        self.message = message


@dataclass(frozen=True)
class SourceRef:
    """A catalog field, or one property of a json field (metadata.tier)."""

    field_name: str
    column: str
    field_type: FieldType
    scale: int | None = None
    json_property: str | None = None

    @property
    def label(self) -> str:
        return f"{self.field_name}.{self.json_property}" if self.json_property else self.field_name


@dataclass(frozen=True)
class OutputField:
    header: str
    source: SourceRef
    default: str | None
    replace: dict[str, str]
    aggregation: str | None
    identifier: bool
    computed: bool


@dataclass(frozen=True)
class Condition:
    source: SourceRef
    operator: str
    values: tuple


@dataclass(frozen=True)
class ConditionGroup:
    """Conditions joined by one junction, e.g. a KPI template's default filters."""

    conditions: tuple[Condition, ...]
    junction: str


@dataclass(frozen=True)
class OrderKey:
    source: SourceRef
    descending: bool


@dataclass(frozen=True)
class ExportPlan:
    spec: ExportSpec
    model_name: str
    model: ModelDef
    fields: tuple[OutputField, ...]
    conditions: tuple[Condition, ...]
    junction: str
    order: tuple[OrderKey, ...]
    file_template: str
    ext: str
    window_field: SourceRef | None = None
    # A KPI template's default filters, ANDed with the export's own.
    template_conditions: ConditionGroup | None = None
    kpi: str | None = None
    audience: AudiencePlan | None = None
    encryption: EncryptionPlan | None = None
    # `parallel`: the export fanned out over key ranges (spec/parallel_rules.py).
    parallel: ParallelPlan | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def aggregates(self) -> bool:
        return any(output.aggregation for output in self.fields)

    @property
    def group_fields(self) -> tuple[OutputField, ...]:
        return tuple(output for output in self.fields if output.aggregation == "group")

    @property
    def sources(self) -> tuple[SourceRef, ...]:
        """Distinct sources the extract selects, in first-use order."""
        return tuple(dict.fromkeys(output.source for output in self.fields))

    @property
    def primary_key(self) -> SourceRef:
        return _field_source(self.model, self.model.primary_key)


def unknown_model_message(catalog: Catalog, name: str) -> str:
    """Why `name` names no model an export can use: its models.yaml entry does not load, or it is unknown."""
    reason = catalog.broken.get(name)
    if reason is not None:
        return f"model {name} does not load: {reason}"
    return f"unknown model {name!r}{closest(name, catalog.names_and_aliases)}"


def build_plan(
    spec: ExportSpec,
    catalog: Catalog,
    *,
    template_filters: Filters | None = None,
    kpi: str | None = None,
    field_positions: Sequence[int] | None = None,
) -> ExportPlan:
    """Resolve a spec against the catalog; raises ExceptionGroup of PlanError listing every problem.

    template_filters are a KPI template's default filters, which the export narrows but cannot drop.
    field_positions, when the spec holds only some of its file's fields (the others did not
    validate), are their positions in the file: key paths use them, and rules about the whole
    list of fields wait until every field is valid.
    """
    problems: list[PlanError] = []
    model_name = catalog.canonical_name(spec.model)
    if model_name is None:
        # The keys that do not depend on the model are still checked, in the same pass.
        problems = [PlanError("model", unknown_model_message(catalog, spec.model)), *_file_and_time_problems(spec, None, None)]
        raise ExceptionGroup("invalid export", problems)
    model = catalog.get(model_name)

    positions = list(range(len(spec.fields))) if field_positions is None else list(field_positions)
    fields = []
    indexed_fields = []
    for position, field_spec in zip(positions, spec.fields, strict=True):
        try:
            fields.append(_output_field(model_name, model, field_spec, f"fields[{position}]"))
            indexed_fields.append((position, fields[-1]))
        except PlanError as error:
            problems.append(error)
    headers = [output.header for output in fields]
    for duplicate in sorted({h for h in headers if headers.count(h) > 1}):
        problems.append(PlanError("fields", f"header {duplicate!r} appears more than once; give each field a distinct `to`"))

    aggregation = aggregation_problems(spec, indexed_fields, all_fields=field_positions is None)
    problems.extend(PlanError(key_path, message) for key_path, message in aggregation)

    conditions = resolve_conditions(model_name, model, spec.filters, "filters", problems)
    template_conditions = None
    if template_filters is not None:
        template_conditions = ConditionGroup(
            resolve_conditions(model_name, model, template_filters, "filters", problems), template_filters.junction.lower()
        )

    order = []
    for index, item in enumerate(spec.order):
        descending = item.startswith("-")
        try:
            source = resolve_source(model_name, model, item.lstrip("+-"), f"order[{index}]")
            order.append(OrderKey(source, descending))
        except PlanError as error:
            problems.append(error)

    chunk_key = None
    if spec.parallel is not None:
        try:
            chunk_key = resolve_source(model_name, model, spec.parallel.by or model.primary_key, "parallel.by")
        except PlanError as error:
            problems.append(error)
        problems.extend(PlanError(key_path, message) for key_path, message in parallel_problems(spec, model_name, model, chunk_key, tuple(order)))

    problems += _file_and_time_problems(spec, model_name, model)
    template, ext = _file_template(spec)
    window_field = window_field_name(spec, model)

    if problems:
        raise ExceptionGroup("invalid export", problems)
    return ExportPlan(
        spec=spec,
        model_name=model_name,
        model=model,
        fields=tuple(fields),
        conditions=conditions,
        junction=(spec.filters.junction.lower() if spec.filters else "and"),
        order=tuple(order),
        file_template=template,
        ext=ext,
        window_field=_field_source(model, window_field) if window_field else None,
        template_conditions=template_conditions,
        kpi=kpi,
        parallel=parallel_plan(spec, chunk_key, tuple(order)) if chunk_key is not None else None,
    )


def resolve_conditions(
    model_name: str, model: ModelDef, filters: Filters | None, key_prefix: str, problems: list[PlanError]
) -> tuple[Condition, ...]:
    """The filters' conditions, typed; each bad one is added to problems at its key path."""
    conditions = []
    for field_name, field_condition in (filters.by_field.items() if filters else []):
        for operator, raw in field_condition.conditions.items():
            key_path = f"{key_prefix}.{field_name}.conditions.{operator}"
            try:
                source = resolve_source(model_name, model, field_name, f"{key_prefix}.{field_name}")
                conditions.append(Condition(source, operator, coerce_values(source, operator, raw, key_path)))
            except PlanError as error:
                problems.append(error)
    return tuple(conditions)


def _field_source(model: ModelDef, field_name: str) -> SourceRef:
    definition: FieldDef = model.fields[field_name]
    return SourceRef(field_name, model.column_of(field_name), definition.type, definition.scale)


def resolve_source(model_name: str, model: ModelDef, name: str, key_path: str) -> SourceRef:
    if name in model.fields:
        return _field_source(model, name)
    base, dot, prop = name.partition(".")
    if dot and base in model.fields:
        if model.fields[base].type != "json":
            raise PlanError(key_path, f"{base} is a {model.fields[base].type} field; only json fields have .properties")
        if not JSON_PROPERTY_PATTERN.match(prop):
            raise PlanError(key_path, f"{prop!r} is not a valid {base} property name (letters, digits, _ and -)")
        return SourceRef(base, model.column_of(base), "string", json_property=prop)
    candidates = [*model.fields, *(f"{json_field}.X" for json_field in model.json_fields)]
    raise PlanError(key_path, f"model {model_name} has no field {name!r}{closest(name, candidates)}")


def _output_field(model_name: str, model: ModelDef, field_spec: FieldSpec, key_path: str) -> OutputField:
    source = resolve_source(model_name, model, field_spec.source, f"{key_path}.from")
    definition = model.fields[source.field_name]
    return OutputField(
        header=field_spec.header,
        source=source,
        default=field_spec.default,
        replace=dict(field_spec.replace),
        aggregation=field_spec.aggregation,
        identifier=definition.identifier and source.json_property is None,
        computed=definition.computed,
    )


def coerce_values(source: SourceRef, operator: str, raw, key_path: str) -> tuple:
    """Filter values typed as the field is, so they bind as parameters of the right type."""
    values = raw if isinstance(raw, list) else ([] if raw is None else [raw])
    if operator in VALUELESS_OPERATORS:
        if values not in ([], [True], ["true"]):
            raise PlanError(key_path, f"{operator} takes no value (write `{operator}: true`)")
        return ()
    if source.field_type == "json" and source.json_property is None:
        raise PlanError(key_path, f"{source.label} is a whole JSON document; filter on {source.label}.PROPERTY instead")
    if not values:
        raise PlanError(key_path, f"{operator} needs a value")
    if operator in SINGLE_VALUE_OPERATORS and len(values) != 1:
        raise PlanError(key_path, f"{operator} takes exactly one value, got {len(values)}")
    if operator in TEXT_OPERATORS and source.field_type != "string":
        raise PlanError(key_path, f"{operator} works on text fields; {source.label} is {source.field_type}")
    if operator in TIME_OPERATORS and source.field_type not in {"timestamp", "date"}:
        raise PlanError(key_path, f"{operator} works on timestamp and date fields; {source.label} is {source.field_type}")
    if operator in ORDERING_OPERATORS and source.field_type == "boolean":
        raise PlanError(key_path, f"{operator} does not apply to the boolean field {source.label}")
    if operator in ORDERING_OPERATORS and source.field_type == "string" and any(_is_number(value) for value in values):
        # Text compares character by character: '99' > '100'. A number here is almost always meant as one.
        what = f"{source.label} is read as text (JSON properties always are)" if source.json_property else f"{source.label} is a text field"
        raise PlanError(key_path, f"{what}, so {operator} compares text, where '99' is greater than '100'; "
                        "quote the value to compare text, or map the value as a number field in models.yaml")
    return tuple(_coerce(source, value, f"{key_path}[{i}]") for i, value in enumerate(values))


def _is_number(value) -> bool:
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)


def _coerce(source: SourceRef, value, key_path: str):
    kind = source.field_type
    try:
        if kind == "string":
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, float):
                raise ValueError(FRACTION_READ_AS_NUMBER)
            text = str(value)
            if text == "":
                raise ValueError("an empty text value matches nothing useful; use $is_unknown or $has_value")
            return text
        if kind == "integer":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("not an integer")
            number = int(value) if isinstance(value, float) else int(str(value))
            if not BIGINT_MIN <= number <= BIGINT_MAX:
                raise ValueError("outside the 64-bit integer range")
            return number
        if kind == "decimal":
            if isinstance(value, bool):
                raise ValueError("not a number")
            number = decimal.Decimal(str(value))
            if not number.is_finite():
                raise ValueError("not a finite number")
            return number
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() in {"true", "false"}:
                return str(value).lower() == "true"
            raise ValueError("not true or false")
        if kind == "timestamp":
            return parse_timestamp(value)
        if kind == "date":
            if isinstance(value, dt.datetime):
                raise ValueError("a date field takes a date (YYYY-MM-DD), not a timestamp")
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    except decimal.InvalidOperation:
        raise PlanError(key_path, f"{value!r} is not a valid {kind} for {source.label} (not a number)") from None
    except ValueError as error:
        raise PlanError(key_path, f"{value!r} is not a valid {kind} for {source.label} ({error})") from None
    raise PlanError(key_path, f"cannot filter on {kind} field {source.label}")


def parse_timestamp(value) -> dt.datetime:
    """ISO 8601; a bare date means midnight; a time without offset means UTC."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime.combine(value, dt.time())
    else:
        parsed = dt.datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _file_template(spec: ExportSpec) -> tuple[str, str]:
    """The spec's file name template (its own, or the default for its kind) and extension."""
    grain = spec.incremental.grain if spec.incremental else None
    template = spec.file_name or file_naming.default_template(grain, split=spec.max_rows_per_file is not None)
    if spec.encrypt is None:
        return template, file_naming.extension(spec.format, spec.compression)
    # The delivered name gains .pgp: through {ext}, or at the end of a template without it that
    # does not already end with it (x.csv.gz becomes x.csv.gz.pgp; x.csv.gz.pgp stays).
    suffix = f".{spec.encrypt.extension}"
    if "{ext" not in template and not template.endswith(suffix):
        template += suffix
    return template, file_naming.extension(spec.format, spec.compression) + suffix


def _file_and_time_problems(spec: ExportSpec, model_name: str | None, model: ModelDef | None) -> list[PlanError]:
    problems = [PlanError("file_name", message) for message in _template_problems(spec, *_file_template(spec))]
    problems.extend(PlanError(key_path, message) for key_path, message in timing_problems(spec, model_name, model))
    return problems


# A file name is at most 255 bytes: a wider token could never fit, and rendering a width of 10^9 takes
# a gigabyte (Python's strftime even returns "" for a huge width, dropping the token silently).
MAX_TOKEN_WIDTH = 32
TIME_TOKENS = frozenset({"run_time", "window_start", "window_end"})


def _check_widths(template: str) -> None:
    """Every width and precision in the template's format specs ({part:03d}, {run_time:%5Y}) is at most
    MAX_TOKEN_WIDTH; a field inside a format spec ({export:{part}}) is refused, as it would set one at run time."""
    for _, token, format_spec, _ in string.Formatter().parse(template):
        if token is None or not format_spec:
            continue
        if "{" in format_spec:
            raise file_naming.FileNameError(f"{{{token}:{format_spec}}}: a format spec cannot hold another token")
        pattern = r"%[-_0^#]*(\d+)" if token in TIME_TOKENS else r"(\d+)"
        widths = [int(digits) for digits in re.findall(pattern, format_spec)]
        if any(width > MAX_TOKEN_WIDTH for width in widths):
            raise file_naming.FileNameError(
                f"{{{token}:{format_spec}}}: a width or precision of {max(widths)}; file_name allows at most {MAX_TOKEN_WIDTH}"
            )


def _template_problems(spec: ExportSpec, template: str, ext: str) -> list[str]:
    """Every problem of the file name template at once (a user fixes them in one round)."""
    try:
        tokens = file_naming.template_tokens(template)
    except file_naming.FileNameError as error:
        return [str(error)]
    problems = [file_naming.unknown_token_message(token) for token in sorted(tokens - set(file_naming.TOKENS))]
    conversions = sorted({f"!{conversion}" for _, token, _, conversion in string.Formatter().parse(template) if token is not None and conversion})
    if conversions:
        # {export!r} would write the name's repr, quotes included, into the file name.
        problems.append(f"{', '.join(conversions)} conversions are not file name tokens; write {{export}}, {{part:03d}}, ...")
    checks = [
        lambda: _check_widths(template),
        lambda: _check_parts_and_extension(spec, tokens, template, ext),
    ]
    for check in checks:
        try:
            check()
        except file_naming.FileNameError as error:
            problems.append(str(error))
    if not problems:
        for check in (lambda: _check_template(spec, template, ext), lambda: _check_repeated_hour(spec, template, ext)):
            try:
                check()
            except file_naming.FileNameError as error:
                problems.append(str(error))
    return problems


@functools.cache
def repeated_hour(timezone: str, year: int) -> tuple[dt.datetime, dt.datetime] | None:
    """The two hourly windows that start at the same wall-clock time when summer time ends in
    `timezone` in `year` (02:00 twice in Europe/Berlin on 2026-10-25), as aware datetimes in the
    zone; None when the zone has no such night that year (UTC, Asia/Tokyo, Sao Paulo since 2019)."""
    zone = zoneinfo.ZoneInfo(timezone)
    instant = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    previous = instant.astimezone(zone)
    while instant.year == year:
        instant += dt.timedelta(hours=1)
        local = instant.astimezone(zone)
        if local.replace(tzinfo=None) <= previous.replace(tzinfo=None):
            return previous, local
        previous = local
    return None


def _check_repeated_hour(spec: ExportSpec, template: str, ext: str) -> None:
    """Hourly windows: the hour repeated when summer time ends must get two names, or the second
    window's file overwrites the first's on the partner's server."""
    incremental = spec.incremental
    if incremental is None or incremental.grain != "hourly" or "run_time" in file_naming.template_tokens(template):
        return
    # Windows exist from incremental.start on: any year from then to next year may hold the night.
    years = range(max(incremental.start.year, 1970), dt.date.today().year + 2)
    hours = next((found for year in years if (found := repeated_hour(incremental.timezone, year))), None)
    if hours is None:
        return
    run_time = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    names = {
        file_naming.render_file_name(
            template,
            file_naming.NameValues(
                export=spec.name, model=spec.model, run_time=run_time, ext=ext, window_start=start, window_end=start + dt.timedelta(hours=1)
            ),
        )
        for start in hours
    }
    if len(names) == 1:
        raise file_naming.FileNameError(
            f"gives the two hourly windows starting at {hours[0]:%H:%M} on {hours[0]:%Y-%m-%d} in "
            f"{incremental.timezone} (the hour repeated when summer time ends) the same name, so the second "
            f"overwrites the first; add the UTC offset, e.g. {{window_start:%Y%m%dT%H%M%z}}"
        )


def _check_parts_and_extension(spec: ExportSpec, tokens: set[str], template: str, ext: str) -> None:
    if spec.max_rows_per_file and "part" not in tokens:
        raise file_naming.FileNameError("max_rows_per_file splits the export into parts, so file_name needs {part}")
    if "ext" not in tokens and not template.endswith(ext):
        raise file_naming.FileNameError(f"file_name should end with {{ext}} or .{ext} so the name says what the file is")
    if tokens & {"window_start", "window_end"} and spec.incremental is None:
        raise file_naming.FileNameError("{window_start}/{window_end} need an incremental export; this one is a snapshot")


def _check_template(spec: ExportSpec, template: str, ext: str) -> None:
    """Renders a sample name and, for retention, the template's exact ownership pattern."""
    sample_time = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    sample = file_naming.NameValues(
        export=spec.name, model=spec.model, run_time=sample_time, ext=ext, window_start=sample_time, window_end=sample_time
    )
    file_naming.render_file_name(template, sample)
    if isinstance(spec.target, ConnectionTarget) and spec.target.keep_last is not None:
        # Retention deletes only names the template can produce; each token must have an exact shape.
        name_patterns.template_pattern(template, spec.name, spec.model, ext)
