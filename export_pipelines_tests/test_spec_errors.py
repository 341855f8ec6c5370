"""Bad config folders: every problem names its file, its key path and, for a wrong name, the closest valid names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from export_pipelines.spec.loader import SpecProblem, bundled_demo_config, load_config
from export_pipelines.targets.registry import DELIVERABLE_TYPES
from export_pipelines_tests.conftest import write_config

CLI = str(Path(sys.prefix) / "bin" / "export-pipelines")

BASE = {"name": "probe", "model": "customers", "fields": ["id", "email"]}
SFTP_BASE = {"type": "sftp", "host": "sftp.example", "username": "u", "known_hosts_path": "~/.ssh/known_hosts"}
CONNECTIONS = {"connections": {"partner_sftp": {**SFTP_BASE, "password": {"env": "PARTNER_SFTP_PASSWORD"}}}}


def with_base(**changes) -> dict:
    return {**BASE, **changes}


def load_one(tmp_path: Path, spec: dict, connections: dict | None = None):
    return load_config(write_config(tmp_path / "config", [spec], connections=connections))


def only_problem(tmp_path: Path, spec: dict, connections: dict | None = None) -> SpecProblem:
    config = load_one(tmp_path, spec, connections)
    stem = spec["name"]
    assert stem not in config.plans
    assert list(config.invalid_files) == [f"exports/{stem}.yaml"]
    assert len(config.problems) == 1, [str(p) for p in config.problems]
    assert config.invalid_files[f"exports/{stem}.yaml"] == config.problems
    return config.problems[0]


def write_raw(folder: Path, files: dict[str, str]) -> Path:
    (folder / "exports").mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        (folder / relative).write_text(text, encoding="utf-8")
    return folder


# (case id, spec, key path, substrings of the message)
SPEC_CASES = [
    ("unknown_model", with_base(model="custmers"), "model",
     ["unknown model", "'custmers'", "did you mean", "customers"]),
    ("owner_neither_address_nor_team", with_base(owner="crm-team"), "owner", ["email address", "team:NAME"]),
    ("unknown_model_far_from_everything", with_base(model="zzqqxx"), "model", ["unknown model", "'zzqqxx'"]),
    ("unknown_field_in_fields", with_base(fields=["id", {"from": "emial", "to": "Email"}]), "fields[1].from",
     ["no field 'emial'", "did you mean email"]),
    ("unknown_field_shorthand", with_base(fields=["id", "nmae"]), "fields[1].from", ["'nmae'", "name"]),
    ("unknown_json_base", with_base(fields=["id", "metdata.tier"]), "fields[1].from", ["'metdata.tier'", "metadata.X"]),
    ("property_of_non_json_field", with_base(fields=["id", "email.domain"]), "fields[1].from",
     ["email is a string field", "only json fields"]),
    ("unknown_field_in_filters", with_base(filters={"emial": {"conditions": {"$is": "x"}}}), "filters.emial",
     ["no field 'emial'", "did you mean email"]),
    ("unknown_field_in_order", with_base(order=["id", "-craeted_at"]), "order[1]",
     ["no field 'craeted_at'", "created_at"]),
    ("unknown_field_in_order_string", with_base(order="+birthdat"), "order[0]", ["'birthdat'", "birthdate"]),
    ("unknown_top_level_key", with_base(fomat="psv"), "fomat", ["unknown key 'fomat'", "did you mean format"]),
    ("unknown_key_in_field", with_base(fields=["id", {"from": "email", "too": "E"}]), "fields[1].too",
     ["unknown key 'too'", "did you mean to"]),
    ("missing_fields", {"name": "probe", "model": "customers"}, "fields", ["required key is missing"]),
    ("field_without_from", with_base(fields=[{"to": "x"}]), "fields[0].from", ["required key is missing"]),
    ("gt_text_on_integer", with_base(filters={"loyalty_points": {"conditions": {"$gt": "abc"}}}),
     "filters.loyalty_points.conditions.$gt[0]", ["'abc'", "not a valid integer", "loyalty_points"]),
    ("gt_fraction_on_integer", with_base(filters={"loyalty_points": {"conditions": {"$gt": 6.5}}}),
     "filters.loyalty_points.conditions.$gt[0]", ["6.5", "not a valid integer"]),
    ("bad_decimal", with_base(filters={"orders_total_amount": {"conditions": {"$gte": "12,30"}}}),
     "filters.orders_total_amount.conditions.$gte[0]", ["'12,30'", "not a valid decimal"]),
    ("bad_timestamp", with_base(filters={"created_at": {"conditions": {"$after": "2024-13-45"}}}),
     "filters.created_at.conditions.$after[0]", ["'2024-13-45'", "not a valid timestamp", "created_at"]),
    ("timestamp_words", with_base(filters={"created_at": {"conditions": {"$before": "yesterday"}}}),
     "filters.created_at.conditions.$before[0]", ["'yesterday'", "not a valid timestamp"]),
    ("bad_timestamp_second_of_list",
     with_base(filters={"updated_at": {"conditions": {"$in": ["2024-03-01T00:00:00Z", "2024-02-30T00:00:00Z"]}}}),
     "filters.updated_at.conditions.$in[1]", ["'2024-02-30T00:00:00Z'", "timestamp"]),
    ("bad_date", with_base(filters={"birthdate": {"conditions": {"$is": "1990-05-17T10:00:00Z"}}}),
     "filters.birthdate.conditions.$is[0]", ["not a valid date", "birthdate"]),
    ("is_with_two_values", with_base(filters={"email": {"conditions": {"$is": ["a@x", "b@x"]}}}),
     "filters.email.conditions.$is", ["$is takes exactly one value", "got 2"]),
    ("gt_with_two_values", with_base(filters={"loyalty_points": {"conditions": {"$gt": [1, 2]}}}),
     "filters.loyalty_points.conditions.$gt", ["exactly one value"]),
    ("in_with_no_values", with_base(filters={"email": {"conditions": {"$in": []}}}),
     "filters.email.conditions.$in", ["$in needs a value"]),
    ("starts_with_on_integer", with_base(filters={"loyalty_points": {"conditions": {"$starts_with": "1"}}}),
     "filters.loyalty_points.conditions.$starts_with", ["$starts_with works on text fields", "integer"]),
    ("contains_on_decimal", with_base(filters={"orders_total_amount": {"conditions": {"$contains": "1"}}}),
     "filters.orders_total_amount.conditions.$contains", ["$contains works on text fields", "decimal"]),
    ("after_on_integer", with_base(filters={"loyalty_points": {"conditions": {"$after": 3}}}),
     "filters.loyalty_points.conditions.$after", ["$after works on timestamp and date fields"]),
    ("empty_text_value", with_base(filters={"email": {"conditions": {"$is": ""}}}),
     "filters.email.conditions.$is[0]", ["empty text value", "$is_unknown"]),
    ("is_unknown_with_value", with_base(filters={"email": {"conditions": {"$is_unknown": "x"}}}),
     "filters.email.conditions.$is_unknown", ["takes no value"]),
    ("filter_on_whole_json", with_base(filters={"metadata": {"conditions": {"$is": "x"}}}),
     "filters.metadata.conditions.$is", ["whole JSON document", "metadata.PROPERTY"]),
    ("bad_json_property_name", with_base(filters={"metadata.a b": {"conditions": {"$is": "x"}}}),
     "filters.metadata.a b", ["'a b'", "not a valid metadata property name"]),
    ("bad_junction", with_base(filters={"junction": "xor", "email": {"conditions": {"$is": "x"}}}),
     "filters.junction", ["unknown value 'xor'", "one of: and, or"]),
    ("duplicate_headers", with_base(fields=["id", {"from": "email", "to": "id"}]), "fields",
     ["header 'id' appears more than once", "`to`"]),
    ("duplicate_headers_same_field", with_base(fields=["email", "email"]), "fields", ["'email' appears more than once"]),
    ("file_name_with_slash", with_base(file_name="a/b.{ext}"), "file_name", ["'a/b.csv'", "could leave its folder"]),
    ("file_name_with_backslash", with_base(file_name="a\\b.{ext}"), "file_name", ["could leave its folder"]),
    ("file_name_parent", with_base(file_name="../x.{ext}"), "file_name", ["'../x.csv'", "could leave its folder"]),
    ("file_name_dots", with_base(file_name="..{ext}"), "file_name", ["'..csv'", "could leave its folder"]),
    ("file_name_dots_inside", with_base(file_name="x..y.{ext}"), "file_name", ["'x..y.csv'", "could leave its folder"]),
    ("file_name_hidden", with_base(file_name=".probe.{ext}"), "file_name", ["'.probe.csv'", "hidden"]),
    ("file_name_control_character", with_base(file_name="a\tb.{ext}"), "file_name", ["control characters"]),
    ("file_name_unknown_token", with_base(file_name="{export}_{date}.{ext}"), "file_name",
     ["unknown token {date}", "{run_time}", "{part}"]),
    ("file_name_attribute_access", with_base(file_name="{run_time.__class__}.{ext}"), "file_name",
     ["unknown token {run_time.__class__}"]),
    ("file_name_index_access", with_base(file_name="{export[0]}.{ext}"), "file_name", ["unknown token {export[0]}"]),
    ("file_name_broken_template", with_base(file_name="{export.{ext}"), "file_name", ["file_name"]),
    ("file_name_window_on_snapshot", with_base(file_name="{export}_{window_start:%Y}.{ext}"), "file_name",
     ["{window_start}", "incremental"]),
    ("file_name_wrong_extension", with_base(file_name="probe.txt"), "file_name", ["{ext}", ".csv"]),
    ("split_without_part", with_base(file_name="probe_{run_time:%Y%m%d}.{ext}", max_rows_per_file=100), "file_name",
     ["max_rows_per_file", "needs {part}"]),
    ("max_rows_zero", with_base(max_rows_per_file=0), "max_rows_per_file", ["greater than 0"]),
    ("unknown_compression", with_base(compression="bzip2"), "compression", ["'bzip2'", "did you mean zip, gzip?", "one of: none, gzip, zstd, zip"]),
    ("zstd_misspelt", with_base(compression="zst"), "compression", ["'zst'", "did you mean zstd?"]),
    ("unknown_format", with_base(format="xlsx"), "format", ["'xlsx'", "one of: csv, psv"]),
    ("unknown_line_ending", with_base(line_ending="cr"), "line_ending", ["did you mean crlf?", "one of: crlf, lf"]),
    ("header_with_newline", with_base(fields=["id", {"from": "email", "to": "E\nmail"}]), "fields[1].to",
     ["one line"]),
    ("target_connection_missing", with_base(target={"connection": "partner_sfpt", "path": "/out"}), "target.connection",
     ["connection 'partner_sfpt' is not in connections.yaml", "did you mean partner_sftp"]),
    ("parallel_zero_chunks", with_base(parallel={"chunks": 0}), "parallel.chunks", ["greater than or equal to 1"]),
    ("parallel_too_many_chunks", with_base(parallel={"chunks": 1000}), "parallel.chunks", ["less than or equal to 256"]),
    ("parallel_without_chunks", with_base(parallel={"by": "id"}), "parallel.chunks", ["parallel needs chunks", "or streams"]),
    ("parallel_zero_streams", with_base(parallel={"streams": 0}), "parallel.streams", ["greater than or equal to 1"]),
    ("parallel_too_many_streams", with_base(parallel={"streams": 17}), "parallel.streams", ["less than or equal to 16"]),
    ("parallel_streams_order_not_by_key", with_base(order=["email"], parallel={"streams": 2}), "parallel.by",
     ["export probe", "joins its streams in id order", "order starts with email", "order: [id, ...]"]),
    ("parallel_streams_aggregating", with_base(fields=[{"from": "gender", "aggregation": "group"}, {"from": "id", "aggregation": "count"}],
                                              parallel={"streams": 2}), "parallel.streams",
     ["export probe aggregates", "one statement", "remove parallel.streams"]),
    ("parallel_streams_parquet", with_base(format="parquet", parallel={"streams": 2}), "parallel",
     ["export probe writes Parquet", "key ranges"]),
    ("parallel_unknown_key", with_base(parallel={"chunks": 4, "column": "id"}), "parallel.column", ["column"]),
    ("parallel_by_unknown_field", with_base(parallel={"chunks": 4, "by": "idd"}), "parallel.by", ["no field 'idd'", "did you mean id"]),
    ("parallel_by_text_field", with_base(parallel={"chunks": 4, "by": "email"}), "parallel.by",
     ["export probe", "integer field", "email is a string field"]),
    ("parallel_parquet", with_base(format="parquet", parallel={"chunks": 4}), "parallel",
     ["export probe writes Parquet", "write csv, psv or jsonl, or remove parallel"]),
    ("parallel_by_json_property", with_base(parallel={"chunks": 4, "by": "metadata.tier"}), "parallel.by",
     ["export probe", "integer field", "metadata.tier is a string field"]),
    ("parallel_order_not_by_key", with_base(order=["email"], parallel={"chunks": 4}), "parallel.by",
     ["export probe", "joins its chunks in id order", "order starts with email", "order: [id, ...]"]),
    ("parallel_by_other_field_unordered", with_base(fields=["id", "home_store_id"], parallel={"chunks": 4, "by": "home_store_id"}), "parallel.by",
     ["export probe", "sorted by the primary key id", "order: [home_store_id, ...]"]),
]


@pytest.mark.parametrize(
    ("spec", "key_path", "fragments"),
    [pytest.param(spec, key_path, fragments, id=case_id) for case_id, spec, key_path, fragments in SPEC_CASES],
)
def test_bad_spec_is_reported_with_file_key_path_and_message(tmp_path, spec, key_path, fragments):
    problem = only_problem(tmp_path, spec, CONNECTIONS)
    assert problem.file == f"exports/{spec['name']}.yaml"
    assert problem.key_path == key_path, str(problem)
    for fragment in fragments:
        assert fragment in problem.message, (fragment, str(problem))
    # A key that is missing has no line of its own; every other problem has its key's line.
    assert (problem.line is None) == (fragments == ["required key is missing"] and "." not in key_path)
    line = f"line {problem.line}: " if problem.line else ""
    assert str(problem).startswith(f"exports/{spec['name']}.yaml: {line}{key_path}: ")


def test_bad_name_pattern_upper_case(tmp_path):
    problem = only_problem(tmp_path, with_base(name="Probe_Export"))
    assert problem.file == "exports/Probe_Export.yaml"
    assert problem.key_path == "name"
    assert "[a-z0-9_]" in problem.message


@pytest.mark.parametrize("name", ["has-dash", "with space", "", "x" * 65])
def test_other_bad_names(tmp_path, name):
    config = load_config(write_raw(tmp_path / "config", {"exports/bad.yaml": yaml.safe_dump(with_base(name=name))}))
    assert not config.plans
    [problem] = config.problems
    assert (problem.file, problem.key_path) == ("exports/bad.yaml", "name")


def test_unknown_operator_names_the_valid_ones(tmp_path):
    problem = only_problem(tmp_path, with_base(filters={"email": {"conditions": {"$foo": "x"}}}))
    assert problem.file == "exports/probe.yaml"
    assert problem.key_path == "filters.email.conditions.$foo"
    assert "'$foo'" in problem.message
    for operator in ("$in", "$not_in", "$is_unknown", "$contains"):
        assert operator in problem.message


def test_misspelt_operator_suggests_the_closest(tmp_path):
    problem = only_problem(tmp_path, with_base(filters={"email": {"conditions": {"$contians": "x"}}}))
    assert problem.key_path == "filters.email.conditions.$contians"
    assert "did you mean $contains" in problem.message


@pytest.mark.parametrize(
    ("condition", "key_path"),
    [
        pytest.param({"conditions": {"$foo": "x"}}, "filters.email.conditions.$foo", id="unknown_operator"),
        pytest.param({"conditions": {}}, "filters.email.conditions", id="empty_conditions"),
        pytest.param({"conditions": {"$is": {"a": 1}}}, "filters.email.conditions.$is", id="mapping_value"),
        pytest.param({"$is": "x"}, "filters.email", id="operator_without_conditions_key"),
    ],
)
def test_filter_condition_problems_name_the_field(tmp_path, condition, key_path):
    """Problems pydantic finds inside a filter's conditions carry the filter's field name in the key path."""
    config = load_one(tmp_path, with_base(filters={"email": condition}))
    assert config.problems
    assert all(p.key_path.startswith(key_path) for p in config.problems), [str(p) for p in config.problems]


def test_several_problems_of_one_file_are_all_reported(tmp_path):
    spec = with_base(
        fields=["id", "emial", {"from": "name", "to": "id"}],
        filters={"loyalty_points": {"conditions": {"$gt": "many"}}, "countyr": {"conditions": {"$is": "DE"}}},
        order=["-craeted_at"],
        file_name="{export}/{ext}",
    )
    config = load_one(tmp_path, spec)
    assert not config.plans
    assert {p.file for p in config.problems} == {"exports/probe.yaml"}
    assert sorted(p.key_path for p in config.problems) == sorted(
        ["fields[1].from", "fields", "filters.loyalty_points.conditions.$gt[0]", "filters.countyr", "order[0]", "file_name"]
    )
    by_path = {p.key_path: p.message for p in config.problems}
    assert "country" in by_path["filters.countyr"]
    assert "created_at" in by_path["order[0]"]


def test_duplicate_export_names_across_two_files(tmp_path):
    """Neither file wins: both are invalid, and each names the other."""
    first = yaml.safe_dump(with_base(name="shared"))
    second = yaml.safe_dump(with_base(name="shared", fields=["id"]))
    config = load_config(write_raw(tmp_path / "config", {"exports/a_first.yaml": first, "exports/b_second.yaml": second}))
    assert config.plans == {}
    assert list(config.invalid_files) == ["exports/a_first.yaml", "exports/b_second.yaml"]
    assert [(p.file, p.key_path, p.line) for p in config.problems] == [
        ("exports/a_first.yaml", "name", 5),
        ("exports/b_second.yaml", "name", 4),
    ]
    for problem in config.problems:
        assert "'shared' is claimed by exports/a_first.yaml and exports/b_second.yaml" in problem.message
        assert "rename all but one" in problem.message


def test_invalid_yaml_reports_line_number(tmp_path):
    text = "name: broken\nmodel: customers\nfields:\n  - id\n  - {from: email, to: [E\nformat: csv\n"
    config = load_config(write_raw(tmp_path / "config", {"exports/broken.yaml": text}))
    assert not config.plans
    [problem] = config.problems
    assert problem.file == "exports/broken.yaml"
    assert "not valid YAML" in problem.message
    # the parser stops on line 6 (format:) inside the unclosed flow sequence opened on line 5
    assert (problem.key_path, problem.line, problem.column) == ("", 6, 7)
    assert str(problem).startswith("exports/broken.yaml: line 6, column 7: not valid YAML: ")
    assert list(config.invalid_files) == ["exports/broken.yaml"]


def test_bad_indentation_reports_its_line(tmp_path):
    lines = ["name: broken", "model: customers", "fields:", "  - id", " bad: indent"]
    config = load_config(write_raw(tmp_path / "config", {"exports/broken.yaml": "\n".join(lines) + "\n"}))
    [problem] = config.problems
    assert problem.file == "exports/broken.yaml"
    assert problem.line == lines.index(" bad: indent") + 1


@pytest.mark.parametrize(
    "text", ["- name: listed\n- model: customers\n", "just a sentence\n", "", "42\n"], ids=["list", "text", "empty", "number"]
)
def test_top_level_must_be_a_mapping(tmp_path, text):
    config = load_config(write_raw(tmp_path / "config", {"exports/listed.yaml": text}))
    assert not config.plans
    [problem] = config.problems
    assert (problem.file, problem.key_path) == ("exports/listed.yaml", "")
    assert "mapping" in problem.message
    line = "" if text == "" else "line 1: "
    assert str(problem) == f"exports/listed.yaml: {line}{problem.message}"


def test_not_utf8(tmp_path):
    folder = write_raw(tmp_path / "config", {})
    (folder / "exports" / "latin1.yaml").write_bytes("name: caf\xe9\nmodel: customers\nfields: [id]\n".encode("latin-1"))
    [problem] = load_config(folder).problems
    assert problem.file == "exports/latin1.yaml"
    assert "UTF-8" in problem.message


def test_missing_exports_folder(tmp_path):
    config = load_config(tmp_path)
    [problem] = config.problems
    assert problem.file == str(tmp_path)
    assert "exports/" in problem.message


def test_target_is_a_mail_server(tmp_path):
    connections = {"connections": {"ops_mail": {"type": "smtp", "host": "smtp.example", "sender": "x@example.com"}}}
    problem = only_problem(tmp_path, with_base(target={"connection": "ops_mail"}), connections)
    assert (problem.file, problem.key_path) == ("exports/probe.yaml", "target.connection")
    assert "ops_mail" in problem.message and "cannot receive files" in problem.message


def test_target_without_any_connections_file(tmp_path):
    problem = only_problem(tmp_path, with_base(target={"connection": "partner_sftp"}))
    assert (problem.file, problem.key_path) == ("exports/probe.yaml", "target.connection")
    assert "'partner_sftp' is not in connections.yaml" in problem.message


def test_target_unknown_word(tmp_path):
    config = load_one(tmp_path, with_base(target="email"))
    assert not config.plans
    assert config.problems
    assert {p.file for p in config.problems} == {"exports/probe.yaml"}
    assert all(p.key_path.startswith("target") for p in config.problems)
    assert any("unknown value 'email' (one of: download)" in p.message for p in config.problems)


@pytest.mark.parametrize("kind", sorted(DELIVERABLE_TYPES))
def test_target_connection_of_every_delivery_kind_loads(tmp_path, kind):
    connection = {
        "sftp": CONNECTIONS["connections"]["partner_sftp"],
        "ftp": {"type": "ftp", "host": "ftp.example", "username": "u"},
        "ftps": {"type": "ftps", "host": "ftp.example", "username": "u", "ca_file": "/etc/ssl/partner-ca.pem"},
        "s3": {"type": "s3", "bucket": "exports"},
    }[kind]
    config = load_one(tmp_path, with_base(target={"connection": "partner", "path": "/outbox"}), {"connections": {"partner": connection}})
    assert not config.problems, [str(p) for p in config.problems]
    assert config.plans["probe"].spec.target_label == "partner:/outbox"


# (case id, connection entry, substrings of the message)
BAD_CONNECTIONS = [
    ("sftp_without_credentials", dict(SFTP_BASE), ["needs password", "private_key_path"]),
    ("sftp_without_host_key_check", {**{k: v for k, v in SFTP_BASE.items() if k != "known_hosts_path"}, "password": {"env": "P"}},
     ["must verify the server", "known_hosts_path or host_key_fingerprint"]),
    ("sftp_insecure_and_pinned", {**SFTP_BASE, "password": {"env": "P"}, "insecure_accept_any_host_key": True},
     ["contradicts"]),
    ("sftp_bad_fingerprint", {**SFTP_BASE, "password": {"env": "P"}, "host_key_fingerprint": "MD5:aa:bb"},
     ["SHA256:"]),
    ("ftp_with_ca_file", {"type": "ftp", "host": "h", "username": "u", "ca_file": "/ca.pem"}, ["ftps only"]),
    ("s3_half_credentials", {"type": "s3", "bucket": "exports-b", "access_key_id": {"env": "K"}}, ["both access_key_id and secret_access_key"]),
    ("s3_kms_key_without_kms", {"type": "s3", "bucket": "exports-b", "kms_key_id": "k"}, ["aws:kms"]),
    ("ftp_host_with_port", {"type": "ftp", "host": "ftp.example.com:2121", "username": "u"}, ["is not a host name", "the port in port"]),
    ("sftp_host_as_url", {**SFTP_BASE, "password": {"env": "P"}, "host": "sftp://files.example.com/in"}, ["is not a host name"]),
    ("s3_bucket_with_folder", {"type": "s3", "bucket": "exports/partner_a"}, ["holds a '/'", "prefix"]),
    ("s3_bucket_upper_case", {"type": "s3", "bucket": "Exports_2026"}, ["is not an S3 bucket name", "lower-case"]),
    ("s3_bucket_too_short", {"type": "s3", "bucket": "ab"}, ["3 to 63"]),
]


@pytest.mark.parametrize("host", ["::1", "[2001:db8::7]", "127.0.0.1", "sftp.partner.example", "Files-01.Partner.Example"])
def test_host_names_and_addresses_are_taken(tmp_path, host):
    connection = {"type": "ftp", "host": host, "username": "u"}
    config = load_config(write_config(tmp_path / "config", [GOOD_A], connections={"connections": {"partner": connection}}))
    assert [str(p) for p in config.problems if p.file == "connections.yaml"] == []
    assert config.connections.connections["partner"].host == host.strip("[]")


@pytest.mark.parametrize(("connection", "substrings"), [pytest.param(c, s, id=i) for i, c, s in BAD_CONNECTIONS])
def test_bad_connection_is_reported_with_its_key(tmp_path, connection, substrings):
    config = load_config(write_config(tmp_path / "config", [GOOD_A], connections={"connections": {"partner": connection}}))
    problems = [p for p in config.problems if p.file == "connections.yaml"]
    assert problems and all(p.key_path.startswith("connections.partner") for p in problems), [str(p) for p in problems]
    message = " ".join(p.message for p in problems)
    for substring in substrings:
        assert substring in message, message


@pytest.mark.parametrize("value", ["99999999999999999999999", 2**63, -(2**63) - 1])
def test_integer_filter_value_out_of_bigint_range_is_a_load_problem(tmp_path, value):
    """Otherwise the extract fails: SQLite OverflowError, PostgreSQL 'bigint out of range'."""
    spec = with_base(filters={"loyalty_points": {"conditions": {"$lt": value}}})
    problem = only_problem(tmp_path, spec)
    assert problem.key_path == "filters.loyalty_points.conditions.$lt[0]"
    assert str(value) in problem.message and "loyalty_points" in problem.message


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63)])
def test_integer_filter_value_at_bigint_limits_loads(tmp_path, value):
    config = load_one(tmp_path, with_base(filters={"loyalty_points": {"conditions": {"$lt": value}}}))
    assert config.problems == []
    assert config.plans["probe"].conditions[0].values == (value,)


@pytest.mark.parametrize("value", ["NaN", "nan", "sNaN", "Infinity", "-inf"])
def test_non_finite_decimal_filter_value_is_a_load_problem(tmp_path, value):
    """Otherwise `$lt: NaN` selects every non-null row on PostgreSQL and none on SQLite."""
    spec = with_base(filters={"orders_total_amount": {"conditions": {"$lt": value}}})
    problem = only_problem(tmp_path, spec)
    assert problem.key_path == "filters.orders_total_amount.conditions.$lt[0]"
    assert repr(value) in problem.message


@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "unquoted_yaml_datetime"])
@pytest.mark.parametrize("operator", ["$is", "$gt"])
def test_timestamp_value_for_a_date_field_is_a_load_problem(tmp_path, quoted, operator):
    """A date field takes a date; a time of day (and its offset) is refused however the YAML spells it."""
    value = "1999-12-31T23:00:00-05:00"
    text = f"name: probe\nmodel: customers\nfields: [id]\nfilters:\n  birthdate: {{conditions: {{{operator}: "
    text += (f"'{value}'" if quoted else value) + "}}\n"
    config = load_config(write_raw(tmp_path / "config", {"exports/probe.yaml": text}))
    assert not config.plans
    [problem] = config.problems
    assert (problem.file, problem.key_path) == ("exports/probe.yaml", f"filters.birthdate.conditions.{operator}[0]")
    assert "date" in problem.message


# --- a folder with good and bad specs, and the validate command ------------------------------------------

GOOD_A = {"name": "good_a", "model": "customers", "fields": ["id", "email"], "filters": {"country": {"conditions": {"$in": ["DE"]}}}}
GOOD_B = {"name": "good_b", "model": "orders", "fields": ["id", {"from": "amount", "to": "Amount"}], "order": "-created_at"}
BAD = {
    "name": "bad_one",
    "model": "customers",
    "fields": ["id", "emial"],
    "filters": {"created_at": {"conditions": {"$after": "not-a-time"}}},
    "fomat": "csv",
}


def run_validate(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "validate", "--config", str(folder)], capture_output=True, text=True, timeout=120)


def test_one_bad_spec_does_not_hide_the_good_ones(tmp_path):
    config = load_config(write_config(tmp_path / "config", [GOOD_A, BAD, GOOD_B]))
    assert sorted(config.plans) == ["good_a", "good_b"]
    assert list(config.invalid_files) == ["exports/bad_one.yaml"]
    assert config.problems == config.invalid_files["exports/bad_one.yaml"]
    assert {p.file for p in config.problems} == {"exports/bad_one.yaml"}
    # The unknown key is set aside and the catalog still checks the rest, in the same pass.
    assert [(p.key_path, p.line) for p in config.problems] == [
        ("fomat", 8),
        ("fields[1].from", 3),
        ("filters.created_at.conditions.$after[0]", 7),
    ]
    assert "did you mean format" in config.problems[0].message


def test_validate_command_fails_and_prints_every_problem(tmp_path):
    bad_without_unknown_key = {key: value for key, value in BAD.items() if key != "fomat"}
    folder = write_config(tmp_path / "config", [GOOD_A, bad_without_unknown_key, GOOD_B])
    (folder / "exports" / "listed.yaml").write_text("- a\n- b\n")
    config = load_config(folder)
    assert len(config.problems) == 3

    result = run_validate(folder)
    assert result.returncode != 0
    error_lines = [line for line in result.stdout.splitlines() if line.startswith("ERROR ")]
    assert len(error_lines) == 3, result.stdout
    expected = [
        ("exports/bad_one.yaml: line 3: fields[1].from: ", "email"),
        ("exports/bad_one.yaml: line 7: filters.created_at.conditions.$after[0]: ", "'not-a-time'"),
        ("exports/listed.yaml: line 1: ", "mapping"),
    ]
    for where, fragment in expected:
        prefix = f"ERROR {where}"
        assert any(line.startswith(prefix) and fragment in line for line in error_lines), (prefix, result.stdout)
    assert "2 valid export(s), 3 problem(s)" in result.stdout


def test_validate_command_passes_on_good_specs(tmp_path):
    folder = write_config(tmp_path / "config", [GOOD_A, GOOD_B], connections=CONNECTIONS)
    result = run_validate(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout
    assert "2 valid export(s), 0 problem(s)" in result.stdout


def test_bundled_demo_config_loads_cleanly():
    config = load_config(bundled_demo_config())
    assert config.problems == []
    assert config.invalid_files == {}
    spec_files = sorted(path.stem for path in (bundled_demo_config() / "exports").glob("*.yaml"))
    assert sorted(config.plans) == spec_files
    assert len(spec_files) >= 1


def test_validate_command_on_bundled_demo_config():
    result = run_validate(bundled_demo_config())
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 problem(s)" in result.stdout


# --- connections.yaml and secrets -------------------------------------------------------------------------

LITERAL_SECRET_CONNECTIONS = [
    pytest.param({"type": "sftp", "host": "h", "username": "u", "password": "hunter2"}, "password", id="sftp_password"),
    pytest.param({"type": "ftps", "host": "h", "username": "u", "password": "hunter2"}, "password", id="ftps_password"),
    pytest.param({"type": "s3", "bucket": "exports-b", "secret_access_key": "hunter2"}, "secret_access_key", id="s3_secret"),
    pytest.param({"type": "smtp", "host": "h", "sender": "x@example.com", "password": "hunter2"}, "password", id="smtp"),
    pytest.param({"type": "sftp", "host": "h", "username": "u", "private_key_passphrase": "hunter2"},
                 "private_key_passphrase", id="sftp_passphrase"),
    # Credentials written into the host, as in a URL: the host's problem never shows them.
    pytest.param({"type": "ftp", "host": "bob:hunter2@ftp.example.com", "username": "bob"}, "host", id="ftp_credentials_in_host"),
    pytest.param({"type": "sftp", "host": "sftp://bob:hunter2@h", "username": "bob", "password": {"env": "P"}}, "host", id="sftp_url_in_host"),
]


@pytest.mark.parametrize(("connection", "secret_key"), LITERAL_SECRET_CONNECTIONS)
def test_literal_secret_is_rejected_without_echoing_it(tmp_path, connection, secret_key):
    folder = write_config(tmp_path / "config", [GOOD_A], connections={"connections": {"vault": connection}})
    config = load_config(folder)
    problems = [p for p in config.problems if p.file == "connections.yaml"]
    assert problems, "a literal secret must be rejected"
    assert all("hunter2" not in str(p) for p in config.problems)
    assert any(p.key_path.startswith("connections.vault") and p.key_path.endswith(secret_key) for p in problems), [
        str(p) for p in problems
    ]
    assert any("EnvSecret" in p.message or "env" in p.message for p in problems)
    assert "vault" not in config.connections.connections

    result = run_validate(folder)
    assert result.returncode != 0
    assert "hunter2" not in result.stdout + result.stderr
    assert "connections.yaml" in result.stdout


def test_secret_with_wrong_key_is_rejected_without_echoing_it(tmp_path):
    connections = {"connections": {"vault": {"type": "sftp", "host": "h", "username": "u", "password": {"value": "hunter2"}}}}
    config = load_config(write_config(tmp_path / "config", [GOOD_A], connections=connections))
    assert config.problems
    assert all("hunter2" not in str(p) for p in config.problems)


def test_env_secret_is_accepted(tmp_path):
    connections = {"connections": {"vault": {**SFTP_BASE, "password": {"env": "VAULT_PW"}}}}
    config = load_config(write_config(tmp_path / "config", [GOOD_A], connections=connections))
    assert config.problems == []
    assert config.connections.connections["vault"].password.env == "VAULT_PW"


def test_connection_problem_key_path_is_the_path_in_the_file(tmp_path):
    connections = {"connections": {"vault": {"type": "sftp", "host": "h", "username": "u", "password": "hunter2"}}}
    config = load_config(write_config(tmp_path / "config", [GOOD_A], connections=connections))
    # The literal secret, and in the same pass what the entry lacks besides (no host key is pinned).
    assert [p.key_path for p in config.problems] == ["connections.vault.password", "connections.vault"]
    assert "must verify the server" in config.problems[1].message


def test_a_misspelt_connections_key_names_the_file_in_every_dependent(tmp_path):
    """`conections:` hides every entry: an export naming one says why it is not found; a download export loads."""
    folder = write_config(tmp_path / "config", [with_base(target={"connection": "partner_sftp"}), GOOD_A])
    (folder / "connections.yaml").write_text(yaml.safe_dump({"conections": CONNECTIONS["connections"]}))
    config = load_config(folder)
    assert list(config.plans) == ["good_a"]
    [file_problem, export_problem] = config.problems
    assert str(file_problem) == (
        "connections.yaml: line 1: conections: unknown key 'conections'; did you mean connections?"
    )
    assert (export_problem.file, export_problem.key_path) == ("exports/probe.yaml", "target.connection")
    # Whether the connection is in the file is unknown: the file is blamed, not the export.
    assert export_problem.message == f"connection 'partner_sftp' cannot be read, as connections.yaml does not load ({file_problem})"


def test_a_broken_connection_invalidates_only_its_exports(tmp_path):
    """Issue 14: one literal secret used to refuse the whole file and blame every export falsely."""
    connections = {"connections": {"partner_sftp": CONNECTIONS["connections"]["partner_sftp"], "sana_ftp": {"type": "ftp", "host": "h", "username": "u", "password": "hunter2"}}}
    specs = [with_base(name="to_sftp", target={"connection": "partner_sftp"}), with_base(name="to_ftp", target={"connection": "sana_ftp"})]
    config = load_config(write_config(tmp_path / "config", specs, connections=connections))
    assert list(config.plans) == ["to_sftp"]
    [entry_problem, export_problem] = config.problems
    assert (entry_problem.file, entry_problem.key_path) == ("connections.yaml", "connections.sana_ftp.password")
    assert export_problem.message == f"connection sana_ftp does not load: {entry_problem}"
    assert "hunter2" not in str(config.problems)


@pytest.mark.parametrize("written", ["0755123", "12:30:45", "2024-02-30", "2024-13-01"])
def test_a_passphrase_yaml_reads_as_another_type_is_never_shown(tmp_path, written):
    """The value under a secret-named key of any file (here an export's passphrase) is never quoted, whatever YAML makes of it."""
    folder = write_config(tmp_path / "config", [])
    (folder / "exports" / "probe.yaml").write_text(
        "name: probe\nmodel: customers\nfields: [id]\n"
        f"encrypt: {{recipients: [keys/x.asc], sign_with: {{key_file: /x.asc, passphrase: {written}}}}}\n"
    )
    problems = load_config(folder).problems
    assert problems and all(written not in str(problem) for problem in problems)
    assert any(p.key_path == "encrypt.sign_with.passphrase" and "not shown" in p.message for p in problems)


@pytest.mark.parametrize(
    ("keys", "key_path"),
    [
        ({"schedule": {"on": "2099-12-01T06:00", "repeated": "daily", "at": "02:00"}}, "schedule.repeated"),
        ({"audience": {"customers_file": "audiences/vip.csv", "query_model": "transactions"}}, "audience.query_model"),
    ],
)
def test_keys_of_two_forms_are_named_as_such_not_as_unknown(tmp_path, keys, key_path):
    config = load_config(write_config(tmp_path / "config", [with_base(**keys)]))
    problem = next(p for p in config.problems if p.key_path == key_path)
    assert "cannot be combined with the other keys here" in problem.message and "did you mean" not in problem.message


def test_every_file_name_problem_comes_in_one_pass(tmp_path):
    config = load_config(write_config(tmp_path / "config", [with_base(file_name="{export}{nonexistent}{part:>40}.{ext}")]))
    messages = [p.message for p in config.problems if p.key_path == "file_name"]
    assert any("unknown token {nonexistent}" in m for m in messages)
    assert any("40" in m for m in messages), messages


@pytest.mark.parametrize(
    ("keys", "key_path", "words"),
    [
        ({"timestamp_format": "%Y-%m-%d %"}, "timestamp_format", "%(end) is not a directive here"),
        ({"file_name": "{export!r}_{run_time:%Y%m%d}.{ext}"}, "file_name", "!r conversions are not file name tokens"),
    ],
)
def test_input_that_would_be_written_oddly_is_refused(tmp_path, keys, key_path, words):
    problem = only_problem(tmp_path, with_base(**keys))
    assert (problem.key_path, words in problem.message) == (key_path, True), problem


def test_a_bad_junction_does_not_hide_a_misspelt_filter_field(tmp_path):
    spec = with_base(filters={"junction": "xor", "amout": {"conditions": {"$in": [1]}}, "country": {"conditions": {"$in": ["DE"]}}})
    config = load_config(write_config(tmp_path / "config", [spec]))
    by_path = {p.key_path: p.message for p in config.problems}
    assert "filters.junction" in by_path
    assert any(path.startswith("filters.amout") and "did you mean" in message for path, message in by_path.items()), by_path


HOURLY_BERLIN = {"by": "event_date", "grain": "hourly", "start": "2026-01-01", "timezone": "Europe/Berlin"}


@pytest.mark.parametrize(
    ("incremental", "file_name", "night"),
    [
        (HOURLY_BERLIN, "tx_{window_start:%Y%m%d%H}.{ext}", "02:00 on 2026-10-25 in Europe/Berlin"),
        # Sao Paulo dropped summer time in 2019; windows from 2015 on still hold its last nights.
        ({**HOURLY_BERLIN, "start": "2015-01-01", "timezone": "America/Sao_Paulo"}, "tx_{window_start:%Y-%m-%dT%H}.{ext}",
         "23:00 on 2015-02-21 in America/Sao_Paulo"),
    ],
)
def test_hourly_file_names_must_tell_the_repeated_hour_apart(tmp_path, incremental, file_name, night):
    spec = with_base(model="transactions", fields=["id"], incremental=incremental, file_name=file_name)
    problem = only_problem(tmp_path, spec)
    assert problem.key_path == "file_name"
    assert f"gives the two hourly windows starting at {night} (the hour repeated when summer time ends) the same name" in problem.message
    assert "{window_start:%Y%m%dT%H%M%z}" in problem.message


@pytest.mark.parametrize(
    ("timezone", "file_name"),
    [
        ("Europe/Berlin", "tx_{window_start:%Y%m%dT%H%M%z}.{ext}"),  # the offset tells them apart
        ("Europe/Berlin", "tx_{run_time:%Y%m%dT%H%M%S}.{ext}"),  # each run its own name
        ("Europe/Berlin", None),  # the default hourly name has the offset
        ("Asia/Tokyo", "tx_{window_start:%Y%m%d%H}.{ext}"),  # no summer time
    ],
)
def test_hourly_file_names_that_tell_every_window_apart_load(tmp_path, timezone, file_name):
    spec = with_base(model="transactions", fields=["id"], incremental={**HOURLY_BERLIN, "timezone": timezone})
    if file_name:
        spec["file_name"] = file_name
    config = load_one(tmp_path, spec)
    assert [str(p) for p in config.problems] == []
