"""A corpus of broken config folders: the demo config with one bad thing in each.

Every case asserts its problems exactly (file, line where YAML gives one, key path, and the
words that say what is wrong and how to fix it), which exports of the folder stay valid, and
that the code location's Definitions load with every broken file visible in invalid_exports.
Then every case at once in one folder, on which `dagster definitions validate` must succeed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from export_pipelines import cli
from export_pipelines.code_location import definition_problems
from export_pipelines.definitions import build_definitions
from export_pipelines.naming import INVALID_GROUP
from export_pipelines.spec.loader import ExportConfig, SpecProblem, bundled_demo_config, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "some-literal"

# The demo config plus a good models.yaml override and two exports that use nothing a case breaks:
# they must load in every case, the all-at-once folder included.
BASE_FILES = {
    "models.yaml": "# A good override every case keeps\nmodels:\n  transactions:\n    fields:\n      sales_channel: {type: string, column: channel}\n",
    "exports/canary_stores.yaml": 'name: canary_stores\nmodel: stores\nfields: [id, code, name, city]\nschedule: {repeated: daily, at: "04:00"}\n',
    "exports/canary_orders.yaml": "name: canary_orders\nmodel: transactions\nfields: [id, sales_channel]\n",
}
DEMO = frozenset(path.stem for path in (bundled_demo_config() / "exports").glob("*.yaml"))
BASE = DEMO | {"canary_stores", "canary_orders"}
MAIL_EXPORTS = frozenset({"antavo_customers", "apparel21_customers", "apparel21_orders", "capillary_transactions", "sana_orders"})


@dataclass(frozen=True)
class P:
    """An expected problem: its file, line (None: the problem has none), key path and words of its message."""

    file: str
    line: int | None
    key_path: str
    words: tuple[str, ...]

    def __init__(self, file: str, line: int | None, key_path: str, *words: str):
        object.__setattr__(self, "file", file)
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "key_path", key_path)
        object.__setattr__(self, "words", words)

    def matches(self, problem: SpecProblem, *, with_line: bool = True) -> bool:
        return (
            (problem.file, problem.key_path) == (self.file, self.key_path)
            and (not with_line or problem.line == self.line)
            and all(word in problem.message for word in self.words)
        )


@dataclass(frozen=True)
class Case:
    id: str
    # relative path -> new file content (str or bytes); or (old, new): replace the one occurrence of old;
    # or ("append", text) to add to the end of a file.
    changes: dict
    problems: tuple[P, ...]
    invalid: frozenset[str] = field(default_factory=frozenset)  # exports of BASE that no longer load
    # Entries of a shared file the expected messages depend on, beyond those they are about.
    uses: frozenset[tuple[str, ...]] = field(default_factory=frozenset)


def case(id: str, changes: dict, *problems: P, invalid: frozenset[str] | set[str] = frozenset(), uses=()) -> Case:
    return Case(id, changes, problems, frozenset(invalid), frozenset(uses))


def spec(name: str, extra: str = "", model: str = "customers", fields: str = "[id, email]") -> dict[str, str]:
    """A new export file; `extra` starts on line 4."""
    return {f"exports/{name}.yaml": f"name: {name}\nmodel: {model}\nfields: {fields}\n{extra}"}


def ex(name: str) -> str:
    return f"exports/{name}.yaml"


# A named pipe: reading it waits for a writer that never comes.
FIFO = ("fifo",)


def append(text: str) -> tuple[str, str]:
    return ("append", text)


ALIAS_BOMB = "a: &a [1,2,3,4,5,6,7,8,9,10]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n" for previous, name in zip("abcde", "bcdef", strict=True)
)
NEW_FTP = "  {name}:\n    type: ftp\n    host: ftp.example\n    username: u\n"
# (case, key, value): literal secrets YAML reads as something else than text; no message may quote the value.
SECRET_LITERALS = [
    ("octal", "password", "0755123"),
    ("date", "password", "2031-02-30"),
    ("base_60", "password", "13:37:59"),
    ("bad_float", "password", "!!float 4242.5x"),
    ("misspelt_key", "pasword", "0644321"),
]
# A secret written where its variable's name goes.
SECRET_AS_ENV = "s3cr3t-Pa55"

CASES = [
    # --- YAML, encodings, binary and huge files ------------------------------------------------------------
    case("yaml_unclosed_flow", {ex("c_unclosed"): "name: c_unclosed\nmodel: customers\nfields: [id, email\nformat: csv\n"},
         P(ex("c_unclosed"), 4, "", "not valid YAML", "flow sequence")),
    case("yaml_tab_indent", {ex("c_tab"): "name: c_tab\nmodel: customers\nfields:\n\t- id\n"},
         P(ex("c_tab"), 4, "", "not valid YAML")),
    case("yaml_two_documents", {ex("c_two_docs"): "name: c_two_docs\n---\nmodel: customers\n"},
         P(ex("c_two_docs"), 2, "", "expected a single document")),
    case("yaml_top_level_list", {ex("c_list"): "- name: c_list\n- model: customers\n"},
         P(ex("c_list"), 1, "", "expected a mapping of keys to values at the top level")),
    case("yaml_empty_file", {ex("c_empty"): ""}, P(ex("c_empty"), None, "", "the file is empty")),
    case("yaml_unknown_tag", spec("c_tag", "description: !Ref export_description\n"),
         P(ex("c_tag"), 4, "description", "YAML tag !Ref is not supported", "plain value")),
    case("yaml_tag_on_a_mapping", spec("c_tag_map", "schedule: !Schedule {repeated: daily}\n"),
         P(ex("c_tag_map"), 4, "schedule", "YAML tag !Schedule is not supported here", "write a plain mapping")),
    case("yaml_alias_bomb", {ex("c_bomb"): ALIAS_BOMB}, P(ex("c_bomb"), None, "", "more than 100,000 values")),
    case("yaml_alias_cycle", spec("c_alias_cycle", fields="&f [id, *f]"),
         P(ex("c_alias_cycle"), 3, "", "an alias refers to a value that contains it")),
    case("encoding_latin1", {ex("c_latin1"): "name: c_latin1\ndescription: caf\xe9\n".encode("latin-1")},
         P(ex("c_latin1"), 2, "", "not UTF-8 text (byte 0xe9)", "save the file as UTF-8")),
    case("encoding_utf16", {ex("c_utf16"): "name: c_utf16\n".encode("utf-16")},
         P(ex("c_utf16"), None, "", "saved as UTF-16", "save it as UTF-8")),
    case("binary_file", {ex("c_binary"): b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"}, P(ex("c_binary"), None, "", "a binary file")),
    case("huge_file", {ex("c_huge"): "# padding\n" * 110_000}, P(ex("c_huge"), None, "", "1,100,000 bytes", "at most 1,000,000")),
    case("fifo_spec", {ex("c_fifo"): FIFO}, P(ex("c_fifo"), None, "", "a named pipe (FIFO), not a regular file")),
    case("fifo_template", {"kpis/c_fifo.yaml": FIFO}, P("kpis/c_fifo.yaml", None, "", "a named pipe (FIFO), not a regular file")),
    case("link_to_a_device", {ex("c_zero"): ("symlink", "/dev/zero")}, P(ex("c_zero"), None, "", "it is a device, not a regular file")),
    case("control_character", {ex("c_bell"): "name: c_bell\ndescription: ring\x07\n"},
         P(ex("c_bell"), 2, "", "character #x0007 is not allowed")),
    case("upper_case_extension", {"exports/c_upper.YAML": "name: c_upper\nmodel: customers\nfields: [id]\n"},
         P("exports/c_upper.YAML", None, "", "not read", "rename it to c_upper.yaml")),
    # Specs grouped by partner in a subfolder are not read: said, not skipped in silence.
    case("spec_in_a_subfolder", {"exports/partner_a/c_sub.yaml": "name: c_sub\nmodel: customers\nfields: [id]\n",
                                 "exports/partner_a/deeper/c_deep.yml": "name: c_deep\nmodel: customers\nfields: [id]\n"},
         P("exports/partner_a/", None, "", "2 spec file(s) not read", "partner_a/c_sub.yaml", "partner_a/deeper/c_deep.yml",
           "only files directly in exports/ are read", "move them into exports/")),
    # --- duplicates -----------------------------------------------------------------------------------------
    case("duplicate_key", spec("c_dup_key", "fields: [name]\n"),
         P(ex("c_dup_key"), 4, "fields", "given twice", "lines 3 and 4", "keep one")),
    case("two_files_claim_an_export_name", {ex("aa_dup"): "name: sana_orders\nmodel: orders\nfields: [id]\n"},
         P(ex("aa_dup"), 1, "name", "'sana_orders' is claimed by exports/aa_dup.yaml and exports/sana_orders.yaml", "rename"),
         P(ex("sana_orders"), 3, "name", "'sana_orders' is claimed by exports/aa_dup.yaml and exports/sana_orders.yaml"),
         invalid={"sana_orders"}),
    case("broken_files_with_one_asset_name", {"exports/Bad-One.yaml": "name: [\n", "exports/bad_one.yaml": "name: bad_one\n"},
         P("exports/Bad-One.yaml", 2, "", "not valid YAML"),
         P("exports/bad_one.yaml", None, "model", "required key is missing"),
         P("exports/bad_one.yaml", None, "fields", "required key is missing")),
    case("yaml_and_yml_of_one_name", {"exports/c_twin.yaml": "name: c_twin\nmodel: stores\nfields: [id]\n",
                                      "exports/c_twin.yml": "name: c_twin\nmodel: stores\nfields: [code]\n"},
         P("exports/c_twin.yaml", 1, "name", "claimed by exports/c_twin.yaml and exports/c_twin.yml"),
         P("exports/c_twin.yml", 1, "name", "claimed by exports/c_twin.yaml and exports/c_twin.yml")),
    case("two_files_claim_a_template_name",
         {"kpis/store_sales_copy.yaml": (bundled_demo_config() / "kpis" / "store_sales.yaml").read_text()},
         P("kpis/store_sales.yaml", 3, "name", "'store_sales' is claimed by kpis/store_sales.yaml and kpis/store_sales_copy.yaml"),
         P("kpis/store_sales_copy.yaml", 3, "name", "'store_sales' is claimed by"),
         P(ex("capillary_store_kpis"), 4, "kpi", "KPI template store_sales does not load"),
         invalid={"capillary_store_kpis"}),
    case("connection_defined_twice",
         {"connections.yaml": append(NEW_FTP.format(name="c_twice") + NEW_FTP.format(name="c_twice")),
          **spec("c_uses_twice", "target: {connection: c_twice}\n")},
         P("connections.yaml", 47, "connections.c_twice", "given twice", "lines 43 and 47"),
         P(ex("c_uses_twice"), 4, "target.connection", "connection c_twice does not load", "given twice")),
    # --- wrong types ----------------------------------------------------------------------------------------
    case("fields_not_a_list", spec("c_fields_text", fields="id"), P(ex("c_fields_text"), 3, "fields", "valid list")),
    case("batch_size_text", spec("c_batch", "batch_size: lots\n"), P(ex("c_batch"), 4, "batch_size", "valid integer")),
    case("max_rows_negative", spec("c_rows", "max_rows_per_file: -5\n"), P(ex("c_rows"), 4, "max_rows_per_file", "greater than 0")),
    case("filters_a_list", spec("c_filters_list", "filters: [country]\n"),
         P(ex("c_filters_list"), 4, "filters", "expected a mapping", "junction")),
    case("target_a_number", spec("c_target_number", "target: 42\n"),
         P(ex("c_target_number"), 4, "target", "'download'"),
         P(ex("c_target_number"), 4, "target", "expected a mapping", "connection, path")),
    case("active_not_a_boolean", spec("c_active", 'schedule: {repeated: daily, at: "03:00", active: maybe}\n'),
         P(ex("c_active"), 4, "schedule.active", "valid boolean")),
    case("unquoted_fraction_as_text", spec("c_default", fields="[id, {from: gender, default: 0.50}]"),
         P(ex("c_default"), 3, "fields[1].default", "0.5 was read as a number", "quote the text")),
    # --- unknown and misspelt keys at every depth -----------------------------------------------------------
    case("top_level_typo", spec("c_fomat", "fomat: psv\n"), P(ex("c_fomat"), 4, "fomat", "unknown key 'fomat'", "did you mean format")),
    case("field_key_typo", spec("c_too", fields="[id, {from: email, too: Mail}]"),
         P(ex("c_too"), 3, "fields[1].too", "unknown key 'too'", "did you mean to?")),
    case("schedule_key_typo", {ex("sana_orders"): ("every: 30m}", "every: 30m, tiemzone: UTC}")},
         P(ex("sana_orders"), 22, "schedule.tiemzone", "unknown key 'tiemzone'", "did you mean timezone?"), invalid={"sana_orders"}),
    case("target_key_typo", spec("c_conection", "target: {conection: sana_ftp, path: out}\n"),
         P(ex("c_conection"), 4, "target.conection", "unknown key 'conection'", "did you mean connection?"),
         P(ex("c_conection"), 4, "target.connection", "required key is missing")),
    case("incremental_key_typo", {ex("capillary_transactions"): ("grain: daily", "grian: daily")},
         P(ex("capillary_transactions"), 24, "incremental.grian", "unknown key 'grian'", "did you mean grain?"),
         invalid={"capillary_transactions"}),
    case("model_key_typo", {"models.yaml": append("  vouchers:\n    tabel: crm.vouchers\n")},
         P("models.yaml", 7, "models.vouchers.tabel", "unknown key 'tabel'", "did you mean table?"),
         P(ex("voucherify_vouchers"), 4, "model", "model voucher does not load: models.yaml: line ", "models.vouchers.tabel"),
         invalid={"voucherify_vouchers"}),
    case("audience_key_typo", spec("c_audience", "audience: {query_modle: transactions}\n"),
         P(ex("c_audience"), 4, "audience.query_modle", "did you mean query_model?"),
         P(ex("c_audience"), 4, "audience.query_model", "required key is missing")),
    case("notify_key_typo", spec("c_notify", "notify: {on_falure: [ops@example.com]}\n"),
         P(ex("c_notify"), 4, "notify.on_falure", "did you mean on_failure")),
    case("retries_key_typo", spec("c_retries", "retries: {max_retry: 2}\n"), P(ex("c_retries"), 4, "retries.max_retry", "did you mean max_retries?")),
    case("filter_key_typo", spec("c_condition", "filters: {country: {condition: {$in: [DE]}}}\n"),
         P(ex("c_condition"), 4, "filters.country.condition", "did you mean conditions?"),
         P(ex("c_condition"), 4, "filters.country.conditions", "required key is missing")),
    case("connection_key_typo",
         {"connections.yaml": append("  c_hostname:\n    type: ftp\n    hostname: ftp.example\n    username: u\n"),
          **spec("c_uses_hostname", "target: {connection: c_hostname}\n")},
         P("connections.yaml", 45, "connections.c_hostname.hostname", "unknown key 'hostname'", "did you mean host, username?"),
         P("connections.yaml", 43, "connections.c_hostname.host", "required key is missing"),
         P(ex("c_uses_hostname"), 4, "target.connection", "connection c_hostname does not load: connections.yaml: line")),
    case("template_key_typo", {"kpis/c_kpi.yaml": "name: c_kpi\nmodel: transactions\ndimension: [status]\nmeasures: [{from: id, aggregation: count}]\n"},
         P("kpis/c_kpi.yaml", 3, "dimension", "did you mean dimensions"),
         P("kpis/c_kpi.yaml", None, "dimensions", "required key is missing")),
    # --- dates, times, timezones ----------------------------------------------------------------------------
    case("impossible_start_date", {ex("apparel21_customers"): ("start: 2024-01-01", "start: 2024-02-30")},
         P(ex("apparel21_customers"), 23, "incremental.start", "2024-02-30 is not a valid date"),
         P(ex("apparel21_orders"), 19, "after.export", "export apparel21_customers does not load", "fix exports/apparel21_customers.yaml first"),
         invalid={"apparel21_customers", "apparel21_orders"}),
    case("impossible_filter_date", spec("c_after_date", "filters: {created_at: {conditions: {$after: [2024-13-01]}}}\n"),
         P(ex("c_after_date"), 4, "filters.created_at.conditions.$after[0]", "2024-13-01 is not a valid date", "month must be in 1..12")),
    case("impossible_on_date", spec("c_on_date", "schedule: {on: 2027-13-01 06:00:00}\n"),
         P(ex("c_on_date"), 4, "schedule.on", "2027-13-01 06:00:00 is not a valid date and time")),
    case("time_of_day_out_of_range", spec("c_at", 'schedule: {repeated: daily, at: "25:00"}\n'),
         P(ex("c_at"), 4, "schedule.at", "'25:00' is not a time of day")),
    case("unquoted_time_read_as_base_60", spec("c_at_60", "schedule: {repeated: daily, at: 12:30}\n"),
         P(ex("c_at_60"), 4, "schedule.at", "12:30 is read as the number 750", 'quote it: "12:30"')),
    case("timezone_typo", spec("c_tz", "schedule: {repeated: daily, timezone: Europe/Budpest}\n"),
         P(ex("c_tz"), 4, "schedule.timezone", "unknown timezone 'Europe/Budpest'", "did you mean Europe/Budapest")),
    case("on_date_with_offset", spec("c_offset", 'schedule: {on: "2099-06-01T06:00:00+01:00"}\n'),
         P(ex("c_offset"), 4, "schedule.on", "without an offset", "timezone")),
    case("start_before_year_1000", spec("c_year_one", "incremental: {by: updated_at, start: 0001-01-01}\n"),
         P(ex("c_year_one"), 4, "incremental.start", "0001-01-01 is outside the years 1000 to 9998")),
    case("start_at_the_end_of_time", spec("c_year_end", "incremental: {by: updated_at, start: 9999-12-31}\n"),
         P(ex("c_year_end"), 4, "incremental.start", "9999-12-31 is outside the years 1000 to 9998")),
    case("on_date_in_year_one", spec("c_on_year_one", "schedule: {on: 0001-01-01 00:00:00}\n"),
         P(ex("c_on_year_one"), 4, "schedule.on", "0001-01-01T00:00:00 is outside the years 1000 to 9998")),
    case("start_with_a_time", spec("c_start_time", 'incremental: {by: updated_at, start: "2024-01-01T00:00"}\n'),
         P(ex("c_start_time"), 4, "incremental.start", "start is a date (YYYY-MM-DD)")),
    # --- schedules ------------------------------------------------------------------------------------------
    case("repeated_typo", spec("c_dayly", "schedule: {repeated: dayly}\n"),
         P(ex("c_dayly"), 4, "schedule.repeated", "unknown value 'dayly'", "did you mean daily?")),
    case("weekday_typo", spec("c_weekday", "schedule: {repeated: weekly, days: [thursday]}\n"),
         P(ex("c_weekday"), 4, "schedule.days[0]", "unknown value 'thursday'", "did you mean thu?")),
    case("every_not_dividing_an_hour", spec("c_every", "schedule: {repeated: every, every: 7m}\n"),
         P(ex("c_every"), 4, "schedule.every", "must divide an hour")),
    case("month_day_32", spec("c_month_day", "schedule: {repeated: monthly, days: [32]}\n"),
         P(ex("c_month_day"), 4, "schedule.days[0]", "32 is not a day of the month", "1..31 or last")),
    case("schedule_and_after", spec("c_both", "schedule: {repeated: daily}\nafter: {export: canary_stores}\n"),
         P(ex("c_both"), 5, "after", "remove either `after` or `schedule`")),
    # --- filters --------------------------------------------------------------------------------------------
    case("operator_typo", spec("c_operator", "filters: {email: {conditions: {$contians: x}}}\n"),
         P(ex("c_operator"), 4, "filters.email.conditions.$contians", "unknown operator '$contians'", "did you mean $contains")),
    case("filter_field_typo", spec("c_countyr", "filters: {countyr: {conditions: {$in: [DE]}}}\n"),
         P(ex("c_countyr"), 4, "filters.countyr", "no field 'countyr'", "did you mean country")),
    case("norway_read_as_false", spec("c_norway", "filters: {country: {conditions: {$in: [NO, SE]}}}\n"),
         P(ex("c_norway"), 4, "filters.country.conditions.$in[0]", "NO is read as false by YAML 1.1", 'quote it ("NO")')),
    case("text_for_an_integer", spec("c_points", "filters: {loyalty_points: {conditions: {$gt: many}}}\n"),
         P(ex("c_points"), 4, "filters.loyalty_points.conditions.$gt[0]", "'many' is not a valid integer")),
    case("yes_read_as_true", spec("c_yes", "filters: {email: {conditions: {$has_value: yes}}}\n"),
         P(ex("c_yes"), 4, "filters.email.conditions.$has_value", "yes is read as true by YAML 1.1", "write true")),
    # --- aggregations ---------------------------------------------------------------------------------------
    case("sum_of_text", spec("c_sum", fields="[{from: country, aggregation: group}, {from: email, aggregation: sum}]"),
         P(ex("c_sum"), 3, "fields[1].aggregation", "sum needs a numeric field; email is string")),
    case("no_group_field", spec("c_no_group", fields="[{from: id, aggregation: count}]"),
         P(ex("c_no_group"), 3, "fields", "at least one field needs `aggregation: group`")),
    case("aggregation_typo", spec("c_median", fields="[{from: country, aggregation: group}, {from: id, aggregation: median}]"),
         P(ex("c_median"), 3, "fields[1].aggregation", "unknown value 'median'", "did you mean min?")),
    # --- KPI templates --------------------------------------------------------------------------------------
    case("template_measure_on_text", {"kpis/store_sales.yaml": ("{from: items_count, to: items,", "{from: channel, to: items,")},
         P("kpis/store_sales.yaml", 16, "measures[4].aggregation", "sum needs a numeric field; channel is string"),
         P(ex("capillary_store_kpis"), 4, "kpi", "KPI template store_sales does not load: kpis/store_sales.yaml: line 16"),
         invalid={"capillary_store_kpis"}),
    case("unknown_template", {ex("c_kpi_typo"): "name: c_kpi_typo\nkpi: store_sale\n"},
         P(ex("c_kpi_typo"), 2, "kpi", "no KPI template 'store_sale'", "did you mean store_sales")),
    case("unknown_dimension",
         {"kpis/c_sales.yaml": "name: c_sales\nmodel: transactions\ndimensions: [store_id]\nmeasures: [{from: id, aggregation: count}]\n",
          ex("c_zone"): "name: c_zone\nkpi: c_sales\ndimensions: [store_id, zone]\n"},
         P(ex("c_zone"), 3, "dimensions[1]", "KPI template c_sales has no dimension 'zone'", "it has store_id")),
    # --- audiences ------------------------------------------------------------------------------------------
    case("audience_file_missing", spec("c_vip", "audience: {customers_file: audiences/vvip.csv}\n"),
         P(ex("c_vip"), 4, "audience.customers_file", "'audiences/vvip.csv' does not exist")),
    case("audience_file_outside", spec("c_outside", "audience: {customers_file: ../vip.csv}\n"),
         P(ex("c_outside"), 4, "audience.customers_file", "must be a path inside the config folder")),
    case("audience_model_typo", spec("c_query", "audience: {query_model: custmer}\n"),
         P(ex("c_query"), 4, "audience.query_model", "unknown model 'custmer'", "did you mean customer")),
    # --- models.yaml ----------------------------------------------------------------------------------------
    case("decimal_without_scale", {"models.yaml": append("  redemptions:\n    fields:\n      balance: {type: decimal}\n")},
         P("models.yaml", 8, "models.redemptions.fields.balance", "a decimal field needs a scale"),
         P(ex("voucherify_redemptions"), 5, "model", "model redemption does not load: models.yaml: line ", "models.redemptions.fields.balance"),
         invalid={"voucherify_redemptions"}),
    case("new_model_without_table",
         {"models.yaml": append("  tickets:\n    primary_key: id\n    fields:\n      id: {type: integer}\n"),
          **spec("c_tickets", model="tickets", fields="[id]")},
         P("models.yaml", 6, "models.tickets.table", "model tickets is new, so it needs table"),
         P(ex("c_tickets"), 2, "model", "model tickets does not load: models.yaml: line ", "models.tickets.table")),
    case("column_not_a_plain_name",
         {"models.yaml": append('  coupons:\n    fields:\n      code: {column: "coupon code"}\n'), **spec("c_coupons", model="coupon", fields="[code]")},
         P("models.yaml", 8, "models.coupons.fields.code.column", "'coupon code' is not a plain SQL column name"),
         P(ex("c_coupons"), 2, "model", "model coupon does not load")),
    case("alias_of_another_model",
         {"models.yaml": append("  tickets_b:\n    aliases: [customer]\n    table: tickets\n    primary_key: id\n    fields:\n      id: {type: integer}\n")},
         P("models.yaml", 7, "models.tickets_b.aliases", "'customer' already names model customers")),
    case("alias_clash_beside_a_bad_field",
         {"models.yaml": append("  tickets_c:\n    aliases: [store]\n    table: tickets\n    primary_key: id\n    fields:\n"
                                "      id: {type: integer}\n      price: {type: decimal}\n")},
         P("models.yaml", 7, "models.tickets_c.aliases", "'store' already names model stores"),
         P("models.yaml", 12, "models.tickets_c.fields.price", "a decimal field needs a scale")),
    case("model_name_dagster_refuses",
         {"models.yaml": append("  ticket-log:\n    table: tickets\n    primary_key: id\n    fields:\n      id: {type: integer}\n"),
          **spec("c_ticket_log", model="ticket-log", fields="[id]")},
         P("models.yaml", 6, "models.ticket-log", "model name 'ticket-log': letters, digits and _, at most 63", "rename the entry"),
         P(ex("c_ticket_log"), 2, "model", "model ticket-log does not load")),
    case("two_entries_for_one_model", {"models.yaml": append("  points:\n    table: ledger_a\n  points_ledger:\n    table: ledger_b\n")},
         P("models.yaml", 6, "models.points", "models.points and models.points_ledger both describe model points"),
         P("models.yaml", 8, "models.points_ledger", "models.points and models.points_ledger both describe model points")),
    case("primary_key_typo", {"models.yaml": append("  publications:\n    primary_key: idd\n")},
         P("models.yaml", 7, "models.publications.primary_key", "'idd' is not one of this model's fields", "did you mean id?")),
    case("models_key_twice", {"models.yaml": append("models:\n  rewards:\n    table: reward_list\n")},
         P("models.yaml", 6, "models", "given twice in one mapping (lines 2 and ", "keep one")),
    # --- names ----------------------------------------------------------------------------------------------
    case("name_with_capitals", {ex("c_caps"): "name: Bad-Name\nmodel: customers\nfields: [id]\n"},
         P(ex("c_caps"), 1, "name", "[a-z0-9_]")),
    case("name_missing", {ex("c_nameless"): "model: customers\nfields: [id]\n"}, P(ex("c_nameless"), None, "name", "required key is missing")),
    case("name_too_long", {ex("c_long"): f"name: {'x' * 64}\nmodel: customers\nfields: [id]\n"}, P(ex("c_long"), 1, "name", "[a-z0-9_]{1,63}")),
    # --- file names -----------------------------------------------------------------------------------------
    case("file_name_leaves_its_folder", spec("c_parent", 'file_name: "../{export}.{ext}"\n'),
         P(ex("c_parent"), 4, "file_name", "'../c_parent.csv' could leave its folder")),
    case("file_name_unknown_token", spec("c_token", 'file_name: "{export}_{date}.{ext}"\n'),
         P(ex("c_token"), 4, "file_name", "unknown token {date}", "{run_time}")),
    case("split_without_part", spec("c_split", "max_rows_per_file: 10\nfile_name: \"{export}.{ext}\"\n"),
         P(ex("c_split"), 5, "file_name", "needs {part}")),
    case("huge_part_width", spec("c_wide_part", 'max_rows_per_file: 10\nfile_name: "{export}_{part:0999999999d}.{ext}"\n'),
         P(ex("c_wide_part"), 5, "file_name", "{part:0999999999d}", "a width or precision of 999999999", "at most 32")),
    case("huge_strftime_width", spec("c_wide_time", 'file_name: "{export}_{run_time:%999999999Y}.{ext}"\n'),
         P(ex("c_wide_time"), 4, "file_name", "{run_time:%999999999Y}", "at most 32")),
    case("huge_text_width", spec("c_wide_text", 'file_name: "{export:>4000000000}.{ext}"\n'),
         P(ex("c_wide_text"), 4, "file_name", "a width or precision of 4000000000")),
    case("token_inside_a_format_spec", spec("c_nested", 'file_name: "{export:{part}}.{ext}"\n'),
         P(ex("c_nested"), 4, "file_name", "a format spec cannot hold another token")),
    case("window_token_on_a_snapshot", spec("c_window", 'file_name: "{export}_{window_start:%Y%m%d}.{ext}"\n'),
         P(ex("c_window"), 4, "file_name", "need an incremental export")),
    # --- dependencies and cycles ----------------------------------------------------------------------------
    case("after_cycle", {**spec("c_cycle_a", "after: {export: c_cycle_b}\n"), **spec("c_cycle_b", "after: {export: c_cycle_a}\n")},
         P(ex("c_cycle_a"), 4, "after.export", "cycle: c_cycle_a -> c_cycle_b -> c_cycle_a"),
         P(ex("c_cycle_b"), 4, "after.export", "cycle: c_cycle_b -> c_cycle_a -> c_cycle_b")),
    case("after_unknown_export", spec("c_after_typo", "after: {export: sana_order}\n"),
         P(ex("c_after_typo"), 4, "after.export", "no export named 'sana_order'", "did you mean sana_orders")),
    case("after_other_grain", spec("c_after_grain", "incremental: {by: updated_at, start: 2024-01-01}\nafter: {export: canary_stores}\n"),
         P(ex("c_after_grain"), 5, "after.export", "canary_stores needs the same incremental grain and timezone")),
    # --- connections.yaml -----------------------------------------------------------------------------------
    case("literal_secret", {"connections.yaml": ("password: {env: SANA_FTP_PASSWORD}", f"password: {SECRET}")},
         P("connections.yaml", 25, "connections.sana_ftp.password", "secrets are never written", "{env: VARIABLE_NAME}"),
         P(ex("sana_orders"), 21, "target.connection", "connection sana_ftp does not load: connections.yaml: line 25"),
         invalid={"sana_orders"}),
    # A secret-bearing key's value is never quoted, whatever YAML makes of it (octal, date, base 60, bad tag, misspelt key).
    *[
        case(f"literal_secret_{kind}",
             {"connections.yaml": append(NEW_FTP.format(name=f"c_{kind}") + f"    {key}: {value}\n"),
              **spec(f"c_uses_{kind}", f"target: {{connection: c_{kind}}}\n")},
             P("connections.yaml", 47, f"connections.c_{kind}.{key}", "not shown", "{env: VARIABLE_NAME}"),
             P(ex(f"c_uses_{kind}"), 4, "target.connection", f"connection c_{kind} does not load", "not shown"))
        for kind, key, value in SECRET_LITERALS
    ],
    case("secret_as_env_name",
         {"connections.yaml": append(NEW_FTP.format(name="c_env_secret") + f"    password: {{env: {SECRET_AS_ENV}}}\n"),
          **spec("c_uses_env_secret", "target: {connection: c_env_secret}\n")},
         P("connections.yaml", 47, "connections.c_env_secret.password.env", "is not an environment variable name", "not shown"),
         P(ex("c_uses_env_secret"), 4, "target.connection", "connection c_env_secret does not load")),
    case("connection_type_typo", {"connections.yaml": ("type: ftps", "type: fpt")},
         P("connections.yaml", 16, "connections.antavo_ftps.type", "unknown type 'fpt'", "did you mean ftp"),
         P(ex("antavo_customers"), 23, "target.connection", "connection antavo_ftps does not load"),
         invalid={"antavo_customers"}),
    case("port_out_of_range", {"connections.yaml": ("port: 22", "port: 99999")},
         P("connections.yaml", 9, "connections.partner_sftp.port", "less than 65536"),
         P(ex("apparel21_customers"), 22, "target.connection", "connection partner_sftp does not load"),
         P(ex("apparel21_orders"), 19, "after.export", "export apparel21_customers does not load"),
         invalid={"apparel21_customers", "apparel21_orders"}),
    case("sftp_without_host_key",
         {"connections.yaml": append("  c_sftp:\n    type: sftp\n    host: sftp.example\n    username: u\n    password: {env: C_SFTP}\n"),
          **spec("c_uses_sftp", "target: {connection: c_sftp}\n")},
         P("connections.yaml", 43, "connections.c_sftp", "must verify the server", "known_hosts_path or host_key_fingerprint"),
         P(ex("c_uses_sftp"), 4, "target.connection", "connection c_sftp does not load")),
    case("env_name_with_a_space", {"connections.yaml": ("{env: EXPORTS_AWS_ACCESS_KEY_ID}", "{env: EXPORTS AWS KEY}")},
         P("connections.yaml", 30, "connections.exports_bucket.access_key_id.env", "is not an environment variable name", "not shown"),
         P(ex("capillary_transactions"), 23, "target.connection", "connection exports_bucket does not load"),
         invalid={"capillary_transactions"}),
    case("mail_server_broken", {"connections.yaml": ("sender: exports@example.com", "sendr: exports@example.com")},
         P("connections.yaml", 42, "connections.ops_mail.sendr", "did you mean sender?"),
         P("connections.yaml", 35, "connections.ops_mail.sender", "required key is missing"),
         *[P(ex(name), line, "notify", "connection ops_mail (the only smtp connection) does not load")
           for name, line in (("antavo_customers", 25), ("apparel21_customers", 26), ("capillary_transactions", 28), ("sana_orders", 25))],
         P(ex("apparel21_orders"), 19, "after.export", "export apparel21_customers does not load"),
         invalid=MAIL_EXPORTS),
    case("connection_every_layer",
         {"connections.yaml": append("  c_layers:\n    type: sftp\n    host: h\n    port: 99999\n    username: u\n"
                                     "    password: {env: C_LAYERS}\n    timeout_seconds: -1\n"),
          **spec("c_uses_layers", "target: {connection: c_layers}\n")},
         P("connections.yaml", 46, "connections.c_layers.port", "less than 65536"),
         P("connections.yaml", 49, "connections.c_layers.timeout_seconds", "greater than 0"),
         P("connections.yaml", 43, "connections.c_layers", "must verify the server"),
         P(ex("c_uses_layers"), 4, "target.connection", "connection c_layers does not load", "and 2 more problems")),
    # `connections:` given twice: refused, but no entry of either block is hidden; one entry in both is that entry's problem.
    case("connections_key_twice", {"connections.yaml": append("connections:\n" + NEW_FTP.format(name="c_second_block"))},
         P("connections.yaml", 43, "connections", "given twice in one mapping (lines 5 and 43)", "keep one")),
    case("entry_in_two_connections_blocks", {"connections.yaml": append("connections:\n  sana_ftp: {type: ftp, host: h, username: u}\n")},
         P("connections.yaml", 43, "connections", "given twice in one mapping"),
         P("connections.yaml", 21, "connections.sana_ftp", "sana_ftp is in two `connections:` blocks; keep one"),
         P(ex("sana_orders"), 21, "target.connection", "connection sana_ftp does not load", "in two `connections:` blocks"),
         invalid={"sana_orders"}),
    # YAML constructs that PyYAML refuses for the whole file are the entry's problem: the other entries load.
    case("merge_of_a_scalar_in_one_connection",
         {"connections.yaml": append(NEW_FTP.format(name="c_merge") + "    <<: 5\n"), **spec("c_uses_merge", "target: {connection: c_merge}\n")},
         P("connections.yaml", 47, "connections.c_merge", "`<<:` merges a mapping (or a list of mappings)", "<<: *defaults"),
         P(ex("c_uses_merge"), 4, "target.connection", "connection c_merge does not load")),
    case("tag_on_one_connection",
         {"connections.yaml": append("  c_omap: !!omap {type: ftp}\n"), **spec("c_uses_omap", "target: {connection: c_omap}\n")},
         P("connections.yaml", 43, "connections.c_omap", "YAML tag tag:yaml.org,2002:omap is not supported here", "write a plain mapping"),
         P(ex("c_uses_omap"), 4, "target.connection", "connection c_omap does not load")),
    case("connections_unknown_top_level_key", {"connections.yaml": append("defaults: {timeout_seconds: 10}\n")},
         P("connections.yaml", 43, "defaults", "unknown key 'defaults'", "entries go under connections:")),
    case("target_is_a_mail_server", spec("c_mail_target", "target: {connection: ops_mail}\n"),
         P(ex("c_mail_target"), 4, "target.connection", "ops_mail", "cannot receive files"),
         uses={("connections.yaml", "connections", "ops_mail")}),
    # --- every layer of one spec in one pass ----------------------------------------------------------------
    case("template_every_layer",
         {"kpis/c_kpi_layers.yaml": "name: c_kpi_layers\nmodel: transactions\ndescriptin: x\n"
                                    "dimensions: [store_id, {from: status, aggregation: sum}]\n"
                                    "measures: [{from: id, aggregation: count}, {from: nosuch, aggregation: count}]\n"},
         P("kpis/c_kpi_layers.yaml", 3, "descriptin", "unknown key 'descriptin'", "did you mean description?"),
         P("kpis/c_kpi_layers.yaml", 4, "dimensions[1].aggregation", "a dimension is a group field; move it to measures"),
         P("kpis/c_kpi_layers.yaml", 5, "measures[1].from", "no field 'nosuch'")),
    case("model_every_layer",
         {"models.yaml": append("  c_tickets:\n    primary_key: idd\n    fields:\n      id: {type: integr}\n"
                                "  campaigns:\n    tabel: crm.campaigns\n    fields:\n      name: {column: \"a b\"}\n"),
          **spec("c_campaigns", model="campaign", fields="[id, name]")},
         P("models.yaml", 9, "models.c_tickets.fields.id.type", "unknown value 'integr'", "did you mean integer"),
         P("models.yaml", 6, "models.c_tickets.table", "model c_tickets is new, so it needs table"),
         P("models.yaml", 7, "models.c_tickets.primary_key", "'idd' is not one of this model's fields", "did you mean id?"),
         P("models.yaml", 11, "models.campaigns.tabel", "unknown key 'tabel'"),
         P("models.yaml", 13, "models.campaigns.fields.name.column", "'a b' is not a plain SQL column name"),
         P(ex("c_campaigns"), 2, "model", "model campaign does not load", "(and 1 more problem)")),
    case("three_layers_at_once",
         spec("c_layers", "schedule: {repeated: daily, timezone: Europe/Budpest}\ntarget: {connection: sana_fpt}\n", fields="[id, emial]"),
         P(ex("c_layers"), 4, "schedule.timezone", "did you mean Europe/Budapest"),
         P(ex("c_layers"), 3, "fields[1].from", "no field 'emial'", "did you mean email"),
         P(ex("c_layers"), 5, "target.connection", "connection 'sana_fpt' is not", "connections.yaml", "did you mean sana_ftp")),
]


# Names the code location must take as they are, though the factory builds graphs, ops and jobs of the same
# names (an export `a` has a graph exports__a and nodes a__extract, a__upload), or Dagster reserves them elsewhere.
NAMES_DAGSTER_ALSO_USES = ["exports", "a", "upload__map", "a__extract", "all_exports_job", "input", "config", "adhoc_export", "extract", "export_extract"]


def test_names_dagster_also_uses_load_and_validate(tmp_path):
    root = build_folder(tmp_path / "config", [])
    for name in NAMES_DAGSTER_ALSO_USES:
        (root / "exports" / f"{name}.yaml").write_text(f"name: {name}\nmodel: customers\nfields: [id, email]\n", encoding="utf-8")
    config = load_config(root)
    assert config.problems == [] and set(config.plans) == BASE | set(NAMES_DAGSTER_ALSO_USES)
    assert definition_problems(config) == []
    assert_code_location_loads(config)


def test_names_whose_graph_is_another_exports_op(tmp_path):
    """The export `exports` has an op exports__upload, the graph of the export `upload`: both are
    refused, each naming the other, and the code location loads the rest (it used to fail at once)."""
    root = build_folder(tmp_path / "config", [])
    for name in ("exports", "upload", "exports__a", "a__upload", "exports__b"):
        (root / "exports" / f"{name}.yaml").write_text(f"name: {name}\nmodel: customers\nfields: [id, email]\n", encoding="utf-8")
    # A broken spec file whose invalid_exports asset would be exports/b__upload, graph... op exports__b__upload: the op of export `exports__b`.
    (root / "exports" / "b__upload.yaml").write_text("name: [\n", encoding="utf-8")
    config = load_config(root)
    refused = {problem.file: problem for problem in definition_problems(config)}
    expected = {
        "exports": "its op name exports__upload is also that of export upload",
        "upload": "its graph name exports__upload is also that of export exports",
        "exports__a": "its op name exports__a__upload is also that of export a__upload",
        "a__upload": "its graph name exports__a__upload is also that of export exports__a",
    }
    assert set(refused) == {ex(name) for name in expected}
    for name, words in expected.items():
        assert (refused[ex(name)].key_path, refused[ex(name)].line) == ("name", 1) and words in refused[ex(name)].message, refused[ex(name)]
    assert_code_location_loads_with_refusals(config, refused=4)


def test_running_an_export_dagster_refuses_says_so(tmp_path, monkeypatch, capsys):
    """`export-pipelines run` of an export the loader accepts but Dagster refuses: a clear error, not a traceback."""
    root = build_folder(tmp_path / "config", [])
    for name in ("exports", "upload"):
        (root / "exports" / f"{name}.yaml").write_text(f"name: {name}\nmodel: customers\nfields: [id, email]\n", encoding="utf-8")
    monkeypatch.setenv("EXPORT_PIPELINES_CONFIG", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert cli.main(["run", "exports"]) == 1
    assert capsys.readouterr().out.strip() == f"ERROR no valid export exports in {root}: its spec does not load (export-pipelines validate)"


def test_validate_reports_what_the_code_location_refuses(tmp_path):
    """The loader accepts each export alone; Dagster refuses two that claim one schedule/sensor name.
    validate says so, as the code location does, naming each side; everything else loads."""
    root = build_folder(tmp_path / "config", [])
    daily = 'schedule: {repeated: daily, at: "05:00"}\n'
    # c's sensor (c_after_schedule, as c runs after the export `schedule`) and c_after's schedule share a name.
    files = {**spec("c", "after: {export: schedule}\n"), **spec("schedule", daily), **spec("c_after", daily)}
    for relative, text in files.items():
        (root / relative).write_text(text, encoding="utf-8")
    config = load_config(root)
    assert config.problems == []
    refused = [str(problem) for problem in definition_problems(config)]
    assert refused == [
        "exports/c.yaml: line 1: name: its sensor name c_after_schedule is also that of export c_after; rename the export",
        "exports/c_after.yaml: line 1: name: its schedule name c_after_schedule is also that of export c; rename the export",
    ]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "export-pipelines"), "validate", "--config", str(root)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert [line.removeprefix("ERROR ") for line in result.stdout.splitlines() if line.startswith("ERROR ")] == refused
    assert f"{len(BASE) + 1} valid export(s), 2 problem(s)" in result.stdout
    assert_code_location_loads_with_refusals(config, refused=2)


def assert_code_location_loads_with_refusals(config: ExportConfig, refused: int) -> None:
    defs = build_definitions(config)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    groups = Counter(graph.get(key).group_name == INVALID_GROUP for key in graph.get_all_asset_keys())
    assert groups == {False: len(config.plans) - refused, True: len(config.invalid_files) + refused}


def build_folder(root: Path, cases: list[Case]) -> Path:
    shutil.copytree(bundled_demo_config(), root)
    for relative, text in BASE_FILES.items():
        (root / relative).write_text(text, encoding="utf-8")
    for item in cases:
        for relative, change in item.changes.items():
            path = root / relative
            if change == FIFO:
                os.mkfifo(path)
            elif isinstance(change, tuple) and change[0] == "symlink":
                path.symlink_to(change[1])
            elif isinstance(change, tuple) and change[0] == "append":
                path.write_text(path.read_text(encoding="utf-8") + change[1], encoding="utf-8")
            elif isinstance(change, tuple):
                old, new = change
                text = path.read_text(encoding="utf-8")
                assert text.count(old) == 1, (relative, old)
                path.write_text(text.replace(old, new), encoding="utf-8")
            elif isinstance(change, bytes):
                path.write_bytes(change)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(change, encoding="utf-8")
    return root


def assert_code_location_loads(config: ExportConfig) -> None:
    """Definitions load, every valid export is an asset and every broken file one of invalid_exports."""
    defs = build_definitions(config)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    groups = Counter(graph.get(key).group_name == INVALID_GROUP for key in graph.get_all_asset_keys())
    assert groups[False] == len(config.plans)
    assert groups[True] == len(config.invalid_files)


def test_the_corpus_base_loads_cleanly(tmp_path):
    config = load_config(build_folder(tmp_path / "config", []))
    assert config.problems == []
    assert set(config.plans) == BASE
    assert "sales_channel" in config.catalog.get("transactions").fields


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60
    assert len({item.id for item in CASES}) == len(CASES)


@pytest.mark.parametrize("item", CASES, ids=[item.id for item in CASES])
def test_broken_config_folder(tmp_path, item: Case):
    config = load_config(build_folder(tmp_path / "config", [item]))
    unmatched = list(config.problems)
    for expected in item.problems:
        found = next((problem for problem in unmatched if expected.matches(problem)), None)
        assert found is not None, (expected, [str(p) for p in config.problems])
        unmatched.remove(found)
    assert unmatched == [], [str(p) for p in unmatched]
    secrets = [SECRET, SECRET_AS_ENV, *(value.split()[-1] for _, _, value in SECRET_LITERALS), "EXPORTS AWS KEY"]
    assert not [str(problem) for problem in config.problems if any(secret in str(problem) for secret in secrets)]
    assert set(config.plans) == BASE - item.invalid
    for name in item.invalid:
        assert ex(name) in config.invalid_files
    # The models.yaml override of another model survives whatever a case breaks.
    assert "sales_channel" in config.catalog.get("transactions").fields
    assert_code_location_loads(config)


def test_every_case_at_once(tmp_path):
    root = build_folder(tmp_path / "config", CASES)
    config = load_config(root)
    # A problem expected in a file, or a connections/models entry, that another case changes too may read
    # differently here (the other change can come first); every other one must be there as it is alone.
    owners = Counter(where for item in CASES for where in {*(_place(expected) for expected in item.problems), *item.uses})
    for item in CASES:
        if any(owners[place] > 1 for place in item.uses):
            continue
        for expected in item.problems:
            if owners[_place(expected)] == 1:
                assert any(expected.matches(problem, with_line=False) for problem in config.problems), (item.id, expected)
    assert set(config.plans) == BASE - frozenset().union(*(item.invalid for item in CASES))
    assert {"canary_stores", "canary_orders"} <= set(config.plans)
    assert_code_location_loads(config)

    env = {**os.environ, "EXPORT_PIPELINES_CONFIG": str(root), "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Validation successful" in completed.stdout + completed.stderr


def _place(expected: P) -> tuple[str, ...]:
    if expected.file in {"connections.yaml", "models.yaml"}:
        return (expected.file, *expected.key_path.split(".")[:2])
    return (expected.file,)
