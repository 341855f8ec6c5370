"""The catalog checked against the source database: `export-pipelines validate --check-source`.

`validate` alone never connects. This reflects the tables the config actually maps (the
models of valid exports, with every column their fields, filters, order, window and
audience read, and every model and field models.yaml maps) and reports each missing table
or column, and each column whose type the extract cannot read as its field's type, so a
mapping error shows before the first run instead of at it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from export_pipelines.lazy_imports import mysql_types, sa
from export_pipelines.stages.dialects import sqlite_affinity

from export_pipelines.catalog.models import FieldDef, ModelDef
from export_pipelines.spec.problems import SpecProblem, closest, format_key_path
from export_pipelines.spec.shared_files import MODELS_FILE
from export_pipelines.spec.yaml_file import YamlDocument, read_yaml

if TYPE_CHECKING:
    from export_pipelines.spec.loader import ExportConfig
    from export_pipelines.spec.plan import ExportPlan, SourceRef

MAPPED_IN_MODELS_FILE = "models.yaml"


def check_source(config: ExportConfig, engine: sa.Engine) -> list[SpecProblem]:
    """Every missing table or column, and every unreadable column type, of the tables the config maps.

    Problems are filed under models.yaml at the key that fixes them (models.X.table,
    models.X.fields.Y.column or .type), with its line when models.yaml holds that key.
    Raises sqlalchemy.exc.SQLAlchemyError when the database cannot be reached.
    """
    models_file = config.root / MODELS_FILE
    document = read_yaml(models_file, MODELS_FILE) if models_file.exists() else YamlDocument(MODELS_FILE)
    uses = _uses(config, document)
    entries = _entry_names(config, document)
    sqlite = engine.dialect.name == "sqlite"
    mysql = engine.dialect.name in ("mysql", "mariadb")
    problems = []
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        for model_name in sorted(uses):
            model = config.catalog.models[model_name]
            entry = ("models", entries.get(model_name, model_name))
            schema, _, table = model.table.rpartition(".")
            try:
                columns = {_name(c["name"], sqlite): c["type"] for c in inspector.get_columns(table, schema=schema or None)}
            except (sa.exc.NoSuchTableError, sa.exc.DBAPIError) as error:
                message = _missing_table(inspector, model.table, schema or None, table, error)
                problems.append(_problem(document, (*entry, "table"), message, _users(uses[model_name].values())))
                continue
            for field_name, users in sorted(uses[model_name].items()):
                column = model.column_of(field_name)
                reflected = columns.get(_name(column, sqlite))
                field = model.fields[field_name]
                if reflected is None:
                    message = f"table {model.table} has no column {column}{closest(column, columns)}"
                    problems.append(_problem(document, (*entry, "fields", field_name, "column"), message, _users([users])))
                    continue
                need = unreadable(field, reflected, sqlite, mysql=mysql)
                if need is None and sqlite and _holds_numbers(connection, field, reflected, schema or None, table, column):
                    need = "a TEXT column holding ISO 8601 text"
                if need is not None:
                    message = f"column {model.table}.{column} is {reflected}, which cannot be read as {_article(field.type)}: {need}"
                    problems.append(_problem(document, (*entry, "fields", field_name, "type"), message, _users([users])))
    return problems


def _missing_table(inspector: sa.Inspector, qualified: str, schema: str | None, table: str, error: Exception) -> str:
    """Why a mapped table cannot be reflected, with the closest names that exist (a schema, then a table)."""
    if schema is not None and schema not in (schemas := inspector.get_schema_names()):
        return f"table {qualified} does not exist in the source: there is no schema {schema}{closest(schema, schemas)}"
    if isinstance(error, sa.exc.DBAPIError):
        return f"table {qualified} cannot be reflected: {str(error.orig).splitlines()[0]}"
    known = [*inspector.get_table_names(schema=schema), *inspector.get_view_names(schema=schema)]
    return f"table {qualified} does not exist in the source{closest(table, known)}"


def _holds_numbers(
    connection: sa.Connection, field: FieldDef, column_type: sa.types.TypeEngine, schema: str | None, table: str, column: str
) -> bool:
    """Whether a SQLite column read as a timestamp or date holds a number: ISO 8601 text is text in a column
    of any affinity (SQLite converts only text that is a number), so only what is stored tells (one scan,
    stopping at the first number)."""
    if field.type not in {"timestamp", "date"} or sqlite_affinity(column_type) == "text":
        return False
    source = sa.table(table, sa.column(column), schema=schema)
    kind = sa.func.typeof(source.c[column])
    probe = sa.select(sa.literal(1)).select_from(source).where(kind.in_(["integer", "real"])).limit(1)
    return connection.execute(probe).first() is not None


def _article(field_type: str) -> str:
    return f"an {field_type}" if field_type[0] in "aeiou" else f"a {field_type}"


def unreadable(field: FieldDef, column_type: sa.types.TypeEngine, sqlite: bool, *, mysql: bool = False) -> str | None:
    """What a column of `column_type` would need to be for the extract to read it as `field`, or None when it reads.

    A type SQLAlchemy does not know (a PostgreSQL extension's) cannot be judged and passes. On
    MySQL/MariaDB (`mysql`) a boolean is a TINYINT(1) or BIT(1), and JSON may be text (MariaDB's
    JSON is LONGTEXT with a json_valid check): the extract checks their values row by row.
    """
    kind = column_type
    if isinstance(kind, sa.types.NullType):
        return None
    if sqlite:
        return _sqlite_unreadable(field, sqlite_affinity(kind))
    if mysql and field.type == "boolean" and (isinstance(kind, sa.Integer) or (isinstance(kind, mysql_types.BIT) and kind.length == 1)):
        return None
    if mysql and field.type == "json" and isinstance(kind, sa.String):
        return None
    exact_number = isinstance(kind, sa.Integer) or (isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float))
    match field.type:
        case "integer":
            whole = isinstance(kind, sa.Integer) or (exact_number and kind.scale == 0)
            return None if whole else "an integer column (or numeric with scale 0)"
        case "decimal":
            if not exact_number:
                return "numeric or an integer column (a float column's values are not exact)"
            places = getattr(kind, "scale", None)
            if places is not None and field.scale is not None and places > field.scale:
                return f"a scale of at most {field.scale} (values with {places} places would not fit the field's scale), or scale: {places} in models.yaml"
            return None
        case "string":
            return None if isinstance(kind, sa.String) else "a text column (text, varchar or char)"
        case "boolean":
            return None if isinstance(kind, sa.Boolean) else "a boolean column"
        case "timestamp":
            return None if isinstance(kind, sa.DateTime) else "a timestamp column"
        case "date":
            return None if isinstance(kind, sa.Date) else "a date column"
        case "json":
            return None if isinstance(kind, sa.JSON) else "a json or jsonb column (properties such as metadata.tier are read with ->>)"
    return None


def _sqlite_unreadable(field: FieldDef, affinity: str) -> str | None:
    """SQLite keeps what the column's affinity makes of a value (README, "Values: exact or refused"): an INTEGER
    or NUMERIC column keeps integers, a TEXT one turns them into text, a REAL one into floats."""
    match field.type:
        case "integer":
            # A REAL column keeps integers as whole REALs, which the extract reads as the integers they are.
            return None if affinity != "text" else "an INTEGER, NUMERIC or REAL column (a TEXT column stores the integers as text)"
        case "boolean":
            return None if affinity in {"integer", "numeric", "blob"} else "an INTEGER or NUMERIC column (it would store the integers as text or REAL)"
        case "timestamp" | "date":
            # ISO 8601 text is no number, so a column of any affinity keeps it as text: what is stored decides (_holds_numbers).
            return None
    # decimal: INTEGER, REAL and number text are all read exactly; string and json: any value reads as text.
    return None


def _uses(config: ExportConfig, document: YamlDocument) -> dict[str, dict[str, set[str]]]:
    """model -> field -> who needs it: the exports reading it, or models.yaml mapping it."""
    uses: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    names = {id(model): name for name, model in config.catalog.models.items()}
    for plan in config.plans.values():
        for model, source in _plan_sources(plan):
            uses[names[id(model)]][source.field_name].add(plan.name)
    entries = document.data.get("models") if isinstance(document.data, dict) else None
    for name, entry in (entries or {}).items():
        canonical = config.catalog.canonical_name(str(name))
        if canonical is None:
            continue
        model = config.catalog.models[canonical]
        mapped = entry.get("fields") if isinstance(entry, dict) else None
        for field_name in [model.primary_key, *(mapped if isinstance(mapped, dict) else model.fields)]:
            if field_name in model.fields:
                uses[canonical][field_name].add(MAPPED_IN_MODELS_FILE)
    return uses


def _entry_names(config: ExportConfig, document: YamlDocument) -> dict[str, str]:
    """model -> the name models.yaml gives its entry (an alias, such as `customer`), so a problem names the key to fix."""
    entries = document.data.get("models") if isinstance(document.data, dict) else None
    names = {}
    for name in entries if isinstance(entries, dict) else ():
        canonical = config.catalog.canonical_name(str(name))
        if canonical is not None:
            names.setdefault(canonical, str(name))
    return names


def _plan_sources(plan: ExportPlan) -> Iterable[tuple[ModelDef, SourceRef]]:
    """Every (model, field) the plan's queries read."""
    sources = [*plan.sources, *(c.source for c in plan.conditions), *(key.source for key in plan.order), plan.primary_key]
    if plan.template_conditions is not None:
        sources += [c.source for c in plan.template_conditions.conditions]
    if plan.window_field is not None:
        sources.append(plan.window_field)
    audience = plan.audience
    if audience is not None:
        sources.append(audience.customer)
        if audience.query_model is not None:
            query_sources = [audience.query_key, *(c.source for c in audience.query_conditions.conditions)]
            yield from ((audience.query_model, source) for source in query_sources)
    yield from ((plan.model, source) for source in sources)


def _users(groups: Iterable[set[str]]) -> str:
    users = set().union(*groups)
    exports = sorted(users - {MAPPED_IN_MODELS_FILE})
    if exports:
        return f" (read by export{'s' if len(exports) > 1 else ''} {', '.join(exports)})"
    return " (mapped in models.yaml)"


def _problem(document: YamlDocument, path: tuple[str, ...], message: str, users: str) -> SpecProblem:
    return SpecProblem(MODELS_FILE, format_key_path(path), message + users, document.line_of(path))


def _name(name: str, sqlite: bool) -> str:
    # SQLite matches table and column names without regard to case; PostgreSQL's folded names are exact.
    return name.lower() if sqlite else name
