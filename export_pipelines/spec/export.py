"""The export spec: one YAML file under exports/, validated before any definition is built."""

from __future__ import annotations

import datetime as dt
import difflib
import re
import zoneinfo
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, PlainValidator, Tag, field_validator, model_validator

from export_pipelines.spec.connections import EnvSecret
from export_pipelines.spec.problems import KeyValueError, closest
from export_pipelines.stages.encodings import cannot_hold

# At most 63: Dagster's tag values (the asset's `export` tag) are.
EXPORT_NAME_PATTERN = r"^[a-z0-9_]{1,63}$"

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


FRACTION_READ_AS_NUMBER = "was read as a number, which loses how it was written (0.00 becomes 0.0); quote the text, e.g. \"0.00\""


def _scalar_text(value: Any) -> Any:
    """YAML reads `14` and `true` as non-strings; in a file every value is text.

    A number with a fraction is refused: by the time it arrives, YAML has dropped its written form.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        raise ValueError(f"{value!r} {FRACTION_READ_AS_NUMBER}")
    if isinstance(value, int):
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
    path: str = Field(default="", description="Folder on the server (or key prefix on S3); missing folders are created.")
    keep_last: int | None = Field(
        default=None, ge=1, description="Retention: keep this many of this export's newest files there, delete older ones."
    )
    finish_with: Literal["manifest", "done_marker"] | None = Field(
        default=None, description="Written after every file of a run is in place, so a receiver knows the set is complete."
    )

    @field_validator("path")
    @classmethod
    def _stays_in_place(cls, value: str) -> str:
        if any(part == ".." for part in value.replace("\\", "/").split("/")) or re.search(r"[\x00-\x1f]", value):
            raise ValueError("path must not contain '..' segments or control characters")
        return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = Weekday.__args__
DURATION_PATTERN = re.compile(r"^(\d+)\s*(s|sec|m|min|h)$")


def _timezone_name(value: str) -> str:
    """An IANA name zoneinfo knows; a typo is reported with the closest names."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        matches = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(matches)}?" if matches else " (use an IANA name such as Europe/Budapest)"
        raise ValueError(f"unknown timezone {value!r}{hint}") from None
    return value


# The strftime directives whose output is the same in every locale and on every platform (Arrow's
# strftime, C locale); %f is the microseconds, added by text_format. Anything else is refused, not guessed.
DATE_DIRECTIVES = "YmdyjbBaAe"
TIME_DIRECTIVES = "HIMSpfzZ"


def time_format_problem(value: str, directives: str) -> str:
    """`value` when each % starts one of `directives` (or %%) and it holds at least one; else ValueError naming the culprit."""
    found = re.findall(r"%(.?)", value)
    # A lone % at the end reads as "" here, which `in` would take for a directive.
    unknown = sorted({d or "(end)" for d in found if d != "%" and (not d or d not in directives)})
    if unknown:
        raise ValueError(f"%{unknown[0]} is not a directive here; use {' '.join('%' + d for d in directives)} (and %% for %)")
    if not any(d in directives for d in found):
        raise ValueError(f"{value!r} holds no directive, so every value would be written the same; e.g. %d.%m.%Y")
    if re.search(r"[\x00-\x1f]", value):
        raise ValueError("a format must not contain control characters")
    return value


def _duration(value: Any) -> dt.timedelta:
    """`60s`, `30m`, `90 min`, `2h`: seconds, minutes or hours, as the seeds state their intervals."""
    if isinstance(value, dt.timedelta):
        return value
    match = DURATION_PATTERN.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration; write seconds, minutes or hours such as 60s, 30m or 2h")
    amount, unit = int(match[1]), match[2]
    if unit == "h":
        return dt.timedelta(hours=amount)
    return dt.timedelta(seconds=amount) if unit in ("s", "sec") else dt.timedelta(minutes=amount)


def _clock_time(value: Any) -> dt.time:
    """`"02:00"`; YAML 1.1 reads an unquoted 02:00 as the number 120 (sexagesimal), so say so."""
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int):
        raise ValueError(f"{value!r} is not a time of day; quote it, e.g. at: \"02:00\"")
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a time of day HH:MM (00:00 to 23:59)")
    return dt.time(int(match[1]), int(match[2]))


TimezoneName = Annotated[str, AfterValidator(_timezone_name)]
Duration = Annotated[dt.timedelta, BeforeValidator(_duration)]
ClockTime = Annotated[dt.time, BeforeValidator(_clock_time)]


def _month_day(value: Any) -> int | str:
    if value == "last" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 31):
        return value
    raise ValueError(f"{value!r} is not a day of the month; use 1..31 or last")


MonthDay = Annotated[int | Literal["last"], PlainValidator(_month_day)]


# Dagster formats partition keys with strftime, which writes years before 1000 without their leading
# zeros, and computes with offsets that overflow past 9998: dates outside these years are refused.
FIRST_YEAR, LAST_YEAR = 1000, 9998


def _in_calendar_range(value: dt.date) -> dt.date:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"{value.isoformat()} is outside the years {FIRST_YEAR} to {LAST_YEAR} that schedules and windows support")
    return value


class Incremental(BaseModel):
    """Capillary's event date / last updated date: the export is partitioned into complete windows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: Literal["event_date", "updated_at"]
    grain: Literal["daily", "hourly"] = "daily"
    start: dt.date = Field(description="The first window; backfills cannot reach before it.")
    timezone: TimezoneName = "UTC"
    backfill: Literal["one_run", "run_per_window"] = Field(
        default="one_run",
        description=(
            "one_run: a backfill of a range is one run writing one file set; run_per_window: one run, "
            "and one file set, per window, spread over the run queue (and Celery workers)."
        ),
    )

    @field_validator("start", mode="before")
    @classmethod
    def _date_only(cls, value: Any) -> Any:
        is_date_text = isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip())
        if isinstance(value, dt.datetime) or (isinstance(value, str) and not is_date_text):
            raise ValueError("start is a date (YYYY-MM-DD); windows begin at midnight in the export's timezone")
        return value

    @field_validator("start")
    @classmethod
    def _start_in_range(cls, value: dt.date) -> dt.date:
        return _in_calendar_range(value)


class _Repeated(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: TimezoneName = "UTC"
    active: bool = Field(default=True, description="Antavo's Active/Inactive: the schedule's default status.")


class DailySchedule(_Repeated):
    repeated: Literal["daily"]
    at: ClockTime = dt.time(0, 0)


class WeeklySchedule(_Repeated):
    repeated: Literal["weekly"]
    days: list[Weekday] = Field(min_length=1)
    at: ClockTime = dt.time(0, 0)


class MonthlySchedule(_Repeated):
    repeated: Literal["monthly"]
    days: list[MonthDay] = Field(min_length=1, description="Days of the month 1..31, and 'last' for the last day.")
    at: ClockTime = dt.time(0, 0)


class EverySchedule(_Repeated):
    """Sana's run interval / Apparel21's 'as often as every 30 minutes'."""

    repeated: Literal["every"]
    every: Duration

    @field_validator("every")
    @classmethod
    def _fits_a_cron(cls, value: dt.timedelta) -> dt.timedelta:
        minutes = int(value.total_seconds() // 60)
        if minutes <= 0 or value.total_seconds() % 60:
            raise ValueError(f"every must be a whole number of minutes, at least 1m (got {value.total_seconds():g}s), e.g. 15m, 30m, 2h")
        fits_an_hour = minutes < 60 and 60 % minutes == 0
        fits_a_day = minutes % 60 == 0 and 24 % (minutes // 60) == 0 if minutes >= 60 else False
        if not (fits_an_hour or fits_a_day):
            raise ValueError("every must divide an hour (1m..30m) or a day (1h..12h, 24h), e.g. 15m, 30m, 2h")
        return value


class OnDateSchedule(BaseModel):
    """Antavo's On-date: one run at a date and time, never again."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    on: dt.datetime = Field(description="Local date and time in `timezone`, e.g. 2026-12-01T06:00.")
    timezone: TimezoneName = "UTC"
    active: bool = True

    @field_validator("on")
    @classmethod
    def _local_time(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is not None:
            raise ValueError("write the local time without an offset and name its zone in `timezone`")
        if value.second or value.microsecond:
            raise ValueError("schedules run on whole minutes; drop the seconds")
        return _in_calendar_range(value)


REPEATS = ("daily", "weekly", "monthly", "every")


def _schedule_keys(value: Any) -> Any:
    """YAML 1.1 reads the key `on` as the boolean true (an ad-hoc request's run config): give it its name back.
    An unknown `repeated` is named here, with the closest kinds, as no variant can report it."""
    if isinstance(value, dict) and True in value:
        value = {("on" if key is True else key): item for key, item in value.items()}
    if isinstance(value, dict) and "on" not in value and isinstance(value.get("repeated"), str) and value["repeated"] not in REPEATS:
        repeated = value["repeated"]
        hint = closest(repeated, REPEATS)
        raise KeyValueError("repeated", f"unknown value {repeated!r}{hint} (one of: {', '.join(REPEATS)}; or on: DATE-TIME for one run)")
    return value


def _schedule_variant(value: Any) -> str | None:
    if isinstance(value, dict):
        return "on" if "on" in value else value.get("repeated")
    return getattr(value, "repeated", "on")


Schedule = Annotated[
    Annotated[DailySchedule, Tag("daily")]
    | Annotated[WeeklySchedule, Tag("weekly")]
    | Annotated[MonthlySchedule, Tag("monthly")]
    | Annotated[EverySchedule, Tag("every")]
    | Annotated[OnDateSchedule, Tag("on")],
    Discriminator(
        _schedule_variant,
        custom_error_type="schedule_variant",
        custom_error_message="a schedule needs `repeated: daily | weekly | monthly | every`, or `on: DATE-TIME` for one run",
    ),
]


class After(BaseModel):
    """Apparel21: orders follow customers, at least `delay` after the customers run succeeded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    export: str
    delay: Duration = dt.timedelta(0)


EMAIL_PATTERN = r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$"
EmailAddress = Annotated[str, Field(pattern=EMAIL_PATTERN)]


class Retries(BaseModel):
    """Sana's 'maximum retries within a maximum interval', for the steps that touch a database or a server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retries: int = Field(default=3, ge=0, le=10)
    within: Duration = Field(default=dt.timedelta(seconds=60), description="All retries' waits together, e.g. 60s.")

    @field_validator("within")
    @classmethod
    def _positive(cls, value: dt.timedelta) -> dt.timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("within must be longer than 0s")
        return value


class Notify(BaseModel):
    """Who hears about runs, through an smtp connection of connections.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on_failure: list[EmailAddress] = Field(default_factory=list)
    on_success: list[EmailAddress] = Field(default_factory=list)
    via: str | None = Field(default=None, description="The smtp connection; the only one in connections.yaml by default.")


# The keys of a CSV/PSV file's dialect: a JSON Lines or Parquet file has fixed rules instead.
CSV_DIALECT_KEYS = frozenset({
    "delimiter", "quoting", "encoding", "header", "null_text", "decimal_separator", "date_format",
    "timestamp_format", "timestamp_timezone", "csv_injection", "line_ending",
})
FINGERPRINT_PATTERN = re.compile(r"^(0x)?[0-9A-Fa-f]{40}$")


def _secret_reference(value: Any) -> Any:
    """A passphrase is read from the environment; the message never echoes what was written instead."""
    if not isinstance(value, dict):
        raise ValueError("a passphrase is never written in a spec; write passphrase: {env: VARIABLE_NAME} and set that variable")
    return value


class SigningKey(BaseModel):
    """Our secret key, to sign what we encrypt (the partner verifies it came from us)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_file: str = Field(description="Armored or binary secret key; keep it out of the config folder (e.g. a mounted secret).")
    passphrase: Annotated[EnvSecret, BeforeValidator(_secret_reference)] | None = None


class Encryption(BaseModel):
    """OpenPGP encryption of every delivered file, after compression: a partner's drop folder is untrusted storage.

    At spec level, not the connection's, because it changes the file (its name gains .pgp): where
    the file is delivered, or redirected to the download folder, must not change what it is.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    recipients: list[str] = Field(
        min_length=1, description="Public key files in the config folder (keys/partner.asc), or fingerprints of keys in its keys/ folder."
    )
    sign_with: SigningKey | None = None
    armor: bool = Field(default=False, description="ASCII armor instead of binary OpenPGP.")
    extension: Literal["pgp", "gpg"] = "pgp"

    @field_validator("recipients")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len({item.lower().removeprefix("0x") for item in value}) != len(value):
            raise ValueError("a recipient is listed twice")
        return value


MAX_CHUNKS = 256
# Each stream is a connection (a backend process) to the source database for the extract's duration.
MAX_STREAMS = 16


class Parallel(BaseModel):
    """One export read over key ranges: fanned out to steps of their own (`chunks`, docs/scale-out.md), or read by
    several connections of one step inside one snapshot (`streams`, docs/performance.md), or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunks: int | None = Field(default=None, ge=1, le=MAX_CHUNKS, description="How many key ranges, each extracted and mapped by its own step.")
    streams: int | None = Field(
        default=None, ge=1, le=MAX_STREAMS, description="How many PostgreSQL connections read the extract's key ranges at once, in one snapshot."
    )
    by: str | None = Field(default=None, description="An integer field of the model; default its primary key.")

    @model_validator(mode="after")
    def _splits(self) -> Parallel:
        if self.chunks is None and self.streams is None:
            raise KeyValueError("chunks", "parallel needs chunks (key ranges as steps of their own) or streams (connections of one step), or both")
        return self


class ExportSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=EXPORT_NAME_PATTERN, description="Unique; lower-case letters, digits and _.")
    model: str
    description: str | None = None
    owner: str | None = None
    fields: list[Annotated[FieldSpec, BeforeValidator(_field_shorthand)]] = Field(min_length=1)
    filters: Filters | None = None
    order: list[str] = Field(default_factory=list, description="Field names; a leading - sorts descending.")
    format: Literal["csv", "psv", "jsonl", "parquet"] = Field(
        default="csv", description="csv, psv (|-separated), jsonl (JSON Lines) or parquet (Arrow types kept)."
    )
    compression: Literal["none", "gzip", "zstd", "zip"] = Field(
        default="none", description="gzip (.gz, deflate level 6), zstd (.zst, level 3) or zip (.zip, one entry)."
    )
    line_ending: Literal["crlf", "lf"] = "crlf"
    file_name: str | None = Field(default=None, description="Template; see file_naming.TOKENS.")
    max_rows_per_file: int | None = Field(default=None, gt=0)
    batch_size: int = Field(default=50_000, gt=0, le=5_000_000)
    target: Literal["download"] | ConnectionTarget = "download"
    incremental: Incremental | None = None
    schedule: Annotated[Schedule, BeforeValidator(_schedule_keys)] | None = None
    after: After | None = None
    max_window_days: int = Field(default=366, gt=0, description="Capillary: one year's data at most per run.")
    retries: Retries | None = None
    max_bad_rows: int = Field(default=0, ge=0, description="Rows that cannot be converted are skipped, up to this many.")
    notify: Notify | None = None
    audience: Audience | None = Field(default=None, description="Only rows of these customers.")
    aggregation_path: Literal["auto", "arrow"] = Field(
        default="auto", description="auto: GROUP BY in the database where it can; arrow: always over Arrow batches."
    )
    # The importer's dialect (docs/export-specs.md, "File dialect"); the defaults write RFC 4180 UTF-8.
    delimiter: Literal[",", ";", "|", "\t"] | None = Field(default=None, description="Default: the format's (csv , psv |).")
    quoting: Literal["needed", "all", "nonnumeric"] = Field(
        default="needed", description="needed: RFC 4180; all: every value; nonnumeric: every value but numbers. NULL is never quoted."
    )
    encoding: Literal["utf-8", "utf-8-sig", "windows-1252", "iso-8859-1"] = "utf-8"
    header: bool = True
    null_text: str = Field(default="", max_length=32, description="How NULL is written.")
    decimal_separator: Literal[".", ","] = "."
    date_format: str | None = Field(default=None, description="strftime directives, e.g. %d.%m.%Y; default YYYY-MM-DD.")
    timestamp_format: str | None = Field(default=None, description="strftime directives (and %f); default ISO 8601 UTC with Z.")
    timestamp_timezone: TimezoneName | None = Field(
        default=None, description="IANA zone timestamps are written in (needs timestamp_format); default UTC."
    )
    encrypt: Encryption | None = Field(default=None, description="OpenPGP: every file encrypted to the recipients' keys, named .pgp.")
    csv_injection: Literal["off", "escape"] = Field(
        default="off", description="escape: text starting with = + - @ tab or CR gets a leading ' (OWASP CSV injection)."
    )
    parallel: Parallel | None = Field(
        default=None, description="Read the export over key ranges: {chunks: 8} (steps), {streams: 2} (connections in one snapshot), by: id."
    )

    @field_validator("date_format")
    @classmethod
    def _date_directives(cls, value: str | None) -> str | None:
        return None if value is None else time_format_problem(value, DATE_DIRECTIVES)

    @field_validator("timestamp_format")
    @classmethod
    def _timestamp_directives(cls, value: str | None) -> str | None:
        return None if value is None else time_format_problem(value, DATE_DIRECTIVES + TIME_DIRECTIVES)

    @field_validator("null_text", mode="before")
    @classmethod
    def _null_text_as_written(cls, value: Any) -> Any:
        if value is None:
            raise ValueError('YAML reads NULL, null and ~ as no value; quote the text: null_text: "NULL"')
        return value

    @field_validator("null_text")
    @classmethod
    def _null_text_unquoted(cls, value: str) -> str:
        """NULL is never quoted (as PostgreSQL's COPY writes it), so it must not need quotes."""
        if re.search(r'[",;|\t\r\n\x00-\x1f]', value):
            raise ValueError('null_text must not contain a delimiter, a quote or a control character (it is written unquoted)')
        return value

    @model_validator(mode="after")
    def _dialect_agrees(self) -> ExportSpec:
        if self.format in ("jsonl", "parquet"):
            for key in sorted(CSV_DIALECT_KEYS & self.model_fields_set):
                raise KeyValueError(key, f"applies to csv and psv files; format {self.format} has its own rules (docs/export-specs.md)")
        if self.format == "psv" and self.delimiter not in (None, "|"):
            raise KeyValueError("delimiter", f"format psv is |-separated; drop delimiter or write format: csv with delimiter {self.delimiter!r}")
        if self.timestamp_timezone is not None and self.timestamp_format is None:
            raise KeyValueError(
                "timestamp_timezone", "needs a timestamp_format (the default, ISO 8601 with Z, is UTC by definition), e.g. \"%d.%m.%Y %H:%M\""
            )
        for key, text in self._written_texts():
            reason = cannot_hold(text, self.encoding)
            if reason is not None:
                raise KeyValueError(key, f"{text!r} is {reason}; change the text or write encoding: utf-8")
        return self

    def _written_texts(self) -> Iterator[tuple[str, str]]:
        """The spec's own texts that reach the file: headers, defaults, replacements, null_text."""
        yield "null_text", self.null_text
        for index, field in enumerate(self.fields):
            yield f"fields[{index}].to", field.header
            if field.default is not None:
                yield f"fields[{index}].default", field.default
            for old, new in field.replace.items():
                yield f"fields[{index}].replace.{old}", new

    @field_validator("owner")
    @classmethod
    def _owner_dagster_accepts(cls, value: str | None) -> str | None:
        """Dagster takes an asset owner only as an address or `team:NAME`; anything else would stop
        the whole code location from loading, so it is refused here, for this export alone."""
        if value is not None and not (re.match(EMAIL_PATTERN, value) or re.match(r"^team:[^\s]+$", value)):
            raise ValueError("owner must be an email address (jane@example.com) or a team written team:NAME")
        return value

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
