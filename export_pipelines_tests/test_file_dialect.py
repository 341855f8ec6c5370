"""An importer's dialect: delimiter, quoting, encoding, header, NULL text, formats and the CSV injection guard.

Expected bytes are written by hand, or come from PostgreSQL's own CSV writer (COPY ... FORCE_QUOTE)
and from iconv, never from the code under test. Every case runs on SQLite and PostgreSQL, with
the fast paths on and off.
"""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest
import sqlalchemy as sa

from export_pipelines.spec.loader import load_config
from export_pipelines.stages.bad_rows import TooManyBadRows
from export_pipelines.stages.text_format import UnwritableValue
from export_pipelines_tests.conftest import run_export, write_config
from export_pipelines_tests.stage_runs import run_stages
from export_pipelines_tests.test_exact_values import create_table, model

UTC = dt.UTC
# (id, name, amount, born, seen): text with every character a dialect must handle, a decimal, a date, an instant.
ROWS = [
    (1, 'Anna; "A", Ő', "12.50", dt.date(1990, 2, 28), dt.datetime(2024, 3, 31, 0, 59, 59, 123456, tzinfo=UTC)),
    (2, "", "-0.05", None, dt.datetime(1969, 12, 31, 23, 0, tzinfo=UTC)),
    (3, None, None, dt.date(2000, 1, 1), None),
    (4, "=1+1", "3.00", dt.date(2024, 2, 29), dt.datetime(2024, 10, 27, 1, 30, tzinfo=UTC)),
    (5, "+4412345", "0.00", None, None),
    (6, "@SUM(A1)", None, None, None),
    (7, "-12", None, None, None),
    (8, "\tx\r\ny", None, None, None),
]
MODELS = model(
    "people",
    {"name": {"type": "string"}, "amount": {"type": "decimal", "scale": 2}, "born": {"type": "date"}, "seen": {"type": "timestamp"},
     "doc": {"type": "json"}},
)
FIELDS = ["id", "name", "amount", "born", "seen"]


@pytest.fixture(params=["sqlite", "postgresql"])
def people(request, tmp_path) -> tuple[str, str]:
    """(URL, dialect) of a database holding ROWS in a table `people`."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.sqlite'}"
        columns = {"id": "INTEGER", "name": "TEXT", "amount": "TEXT", "born": "TEXT", "seen": "TEXT"}
        rows = [(i, n, a, b.isoformat() if b else None, s.isoformat().replace("+00:00", "Z") if s else None) for i, n, a, b, s in ROWS]
    else:
        url = request.getfixturevalue("postgres_schema_url")
        columns = {"id": "bigint", "name": "text", "amount": "numeric(12,2)", "born": "date", "seen": "timestamptz"}
        rows = ROWS
    create_table(url, "people", columns, rows)
    return url, request.param


# A JSON document in row 1 (the others NULL), for the formats that keep JSON as JSON.
DOCUMENT = '{"tier": "gold", "n": 1.50, "tags": ["a", "\\u00e9"]}'


@pytest.fixture
def people_with_documents(people) -> tuple[str, str]:
    url, dialect = people
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE people ADD COLUMN doc {'jsonb' if dialect == 'postgresql' else 'TEXT'}"))
        cast = "CAST(:d AS jsonb)" if dialect == "postgresql" else ":d"
        connection.execute(sa.text(f"UPDATE people SET doc = {cast} WHERE id = 1"), {"d": DOCUMENT})
    engine.dispose()
    return url, dialect


@pytest.fixture(params=[True, False], ids=["fast", "general"])
def fast(request) -> bool:
    return request.param


def spec(name: str, **keys) -> dict:
    return {"name": name, "model": "people", "fields": FIELDS, "order": "id", **keys}


def test_a_european_spreadsheet_dialect(people, fast, tmp_path, monkeypatch):
    url, _ = people
    dialect = {
        "delimiter": ";", "quoting": "all", "encoding": "utf-8-sig", "line_ending": "lf", "null_text": "NULL",
        "decimal_separator": ",", "date_format": "%d.%m.%Y", "timestamp_format": "%d.%m.%Y %H:%M:%S.%f %Z",
        "timestamp_timezone": "Europe/Berlin", "csv_injection": "escape",
    }
    run = run_stages(url, tmp_path, spec("eu", **dialect), fast=fast, monkeypatch=monkeypatch, models=MODELS)
    # Berlin is +01:00 in winter and +02:00 from 2024-03-31 01:00 UTC; 1969-12-31 23:00 UTC is midnight there.
    expected = (
        '\ufeff"id";"name";"amount";"born";"seen"\n'
        '"1";"Anna; ""A"", Ő";"12,50";"28.02.1990";"31.03.2024 01:59:59.123456 CET"\n'
        '"2";"";"-0,05";NULL;"01.01.1970 00:00:00.000000 CET"\n'
        '"3";NULL;NULL;"01.01.2000";NULL\n'
        '"4";"\'=1+1";"3,00";"29.02.2024";"27.10.2024 02:30:00.000000 CET"\n'
        '"5";"+4412345";"0,00";NULL;NULL\n'
        '"6";"\'@SUM(A1)";NULL;NULL;NULL\n'
        '"7";"-12";NULL;NULL;NULL\n'
        '"8";"\'\tx\r\ny";NULL;NULL;NULL\n'
    )
    assert run.content == expected.encode("utf-8")


@pytest.mark.parametrize("people", ["postgresql"], indirect=True)
@pytest.mark.parametrize("quoting", ["all", "nonnumeric"])
def test_quoting_as_postgresql_copy_writes_it(people, fast, tmp_path, monkeypatch, quoting):
    """PostgreSQL's FORCE_QUOTE writes what `all` and `nonnumeric` promise: every (non-numeric) value quoted, NULL never."""
    url, _ = people
    run = run_stages(url, tmp_path, spec("q", fields=["id", "name", "amount"], delimiter=";", quoting=quoting, header=False, line_ending="lf"),
                     fast=fast, monkeypatch=monkeypatch, models=MODELS)
    force = "*" if quoting == "all" else "(name)"
    engine = sa.create_engine(url)
    raw = engine.raw_connection()
    try:
        buffer = bytearray()
        with raw.cursor().copy(f"COPY (SELECT id, name, amount FROM people ORDER BY id) TO STDOUT WITH (FORMAT csv, DELIMITER ';', FORCE_QUOTE {force})") as copy:
            for chunk in copy:
                buffer += chunk
    finally:
        raw.close()
        engine.dispose()
    assert run.content == bytes(buffer)


@pytest.mark.parametrize(("encoding", "iconv_name", "foreign"), [("windows-1252", "WINDOWS-1252", "Ő"), ("iso-8859-1", "ISO-8859-1", "€")])
def test_a_legacy_encoding_rejects_what_it_cannot_hold(people, fast, tmp_path, monkeypatch, encoding, iconv_name, foreign):
    url, _ = people
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE people SET name = :n WHERE id = 1"), {"n": f"Zoë {foreign}"})
        connection.execute(sa.text("UPDATE people SET name = :n WHERE id = 2"), {"n": "Zoë ÿ"})
    engine.dispose()
    keys = {"fields": ["id", "name"], "encoding": encoding}
    run = run_stages(url, tmp_path, spec("legacy", **keys), fast=fast, monkeypatch=monkeypatch, models=MODELS, max_bad_rows=1)
    utf8 = 'id,name\r\n2,Zoë ÿ\r\n3,\r\n4,=1+1\r\n5,+4412345\r\n6,@SUM(A1)\r\n7,-12\r\n8,"\tx\r\ny"\r\n'.encode()
    assert run.content == subprocess.run(["iconv", "-f", "UTF-8", "-t", iconv_name], input=utf8, capture_output=True, check=True).stdout
    [rejected] = run.extracted.rejected
    assert (rejected.row_number, rejected.key, rejected.field, rejected.value) == (1, "id=1", "name", f"Zoë {foreign}")
    assert rejected.reason == f"not representable in {encoding}: {foreign} (U+{ord(foreign):04X}) has no byte there"
    with pytest.raises(TooManyBadRows, match=f"For export legacy2, 1 row.*name = 'Zoë {foreign}' is not representable in {encoding}"):
        run_stages(url, tmp_path, spec("legacy2", **keys), fast=fast, monkeypatch=monkeypatch, models=MODELS)


def test_a_replacement_makes_a_value_writable(people, tmp_path, monkeypatch):
    url, _ = people
    fields = ["id", {"from": "name", "replace": {'Anna; "A", Ő': "Anna O"}}]
    run = run_stages(url, tmp_path, spec("fixed", fields=fields, encoding="windows-1252", header=False, max_rows_per_file=None),
                     fast=True, monkeypatch=monkeypatch, models=MODELS)
    assert run.content.split(b"\r\n")[0] == b"1,Anna O"


@pytest.mark.parametrize("aggregation_path", ["auto", "arrow"])
def test_a_group_value_the_encoding_cannot_hold_fails_the_run_by_name(people, tmp_path, aggregation_path):
    """Leaving the row out would silently change the group's totals: pushed down or over Arrow, the run fails."""
    url, _ = people
    fields = [{"from": "name", "aggregation": "group"}, {"from": "id", "to": "n", "aggregation": "count"}]
    keys = spec("grouped", fields=fields, encoding="iso-8859-1", aggregation_path=aggregation_path)
    grouped = {key: value for key, value in keys.items() if key != "order"}
    result = run_export(grouped, url, tmp_path, models=MODELS, raise_on_error=False)
    assert not result.result.success
    [failure] = [event.step_failure_data.error.message for event in result.result.get_step_failure_events()]
    assert "For export grouped, name = 'Anna; \"A\", Ő' is not representable in iso-8859-1: Ő (U+0150)" in failure


def test_no_header_and_formats_for_the_default_delimiter(people, fast, tmp_path, monkeypatch):
    """A decimal comma under a comma delimiter is quoted where needed; replace sees the formatted text."""
    url, _ = people
    fields = ["id", {"from": "amount", "replace": {"12,50": "twelve"}}, "born"]
    run = run_stages(url, tmp_path, spec("plain", fields=fields, header=False, decimal_separator=",", date_format="%Y%m%d", max_rows_per_file=3),
                     fast=fast, monkeypatch=monkeypatch, models=MODELS)
    assert run.content == b'1,twelve,19900228\r\n2,"-0,05",\r\n3,,20000101\r\n4,"3,00",20240229\r\n5,"0,00",\r\n6,,\r\n7,,\r\n8,,\r\n'
    assert [file.rows for file in run.files] == [3, 3, 2]
    assert all(not file.path.read_bytes().startswith(b"id") for file in run.files)


@pytest.mark.parametrize(
    ("keys", "key_path", "message"),
    [
        ({"format": "psv", "delimiter": ";"}, "delimiter", "format psv is |-separated"),
        ({"timestamp_timezone": "Europe/Berlin"}, "timestamp_timezone", "needs a timestamp_format"),
        ({"timestamp_timezone": "Europe/Berln"}, "timestamp_timezone", "did you mean Europe/Berlin"),
        ({"date_format": "%d.%m.%Y %H"}, "date_format", "%H is not a directive here"),
        ({"timestamp_format": "%Q"}, "timestamp_format", "%Q is not a directive here"),
        ({"date_format": "dd.MM.yyyy"}, "date_format", "holds no directive"),
        ({"null_text": "a;b"}, "null_text", "must not contain a delimiter"),
        ({"encoding": "windows-1252", "fields": ["id", {"from": "name", "to": "Név Ő"}]}, "fields[1].to", "'Név Ő' is not representable in windows-1252"),
        ({"encoding": "iso-8859-1", "fields": [{"from": "name", "default": "€"}]}, "fields[0].default", "not representable in iso-8859-1: € (U+20AC)"),
        ({"encoding": "latin1"}, "encoding", "utf-8-sig"),
        ({"quoting": "always"}, "quoting", "nonnumeric"),
    ],
)
def test_dialect_mistakes_are_named_at_load(tmp_path, keys, key_path, message):
    config = load_config(write_config(tmp_path, [spec("bad", **keys)], models=MODELS))
    assert "bad" not in config.plans
    [problem] = config.problems
    assert problem.key_path == key_path
    assert message in problem.message


def test_null_text_stays_apart_from_text_and_from_mapped_fields(people, fast, tmp_path, monkeypatch):
    """A text that reads as null_text is quoted (as COPY quotes it); a NULL a replace leaves alone stays NULL."""
    url, _ = people
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE people SET name = 'NULL' WHERE id = 2"))
    engine.dispose()
    fields = ["id", "name", {"from": "born", "to": "b", "replace": {"2000-01-01": "Y2K"}}]
    run = run_stages(url, tmp_path, spec("nulls", fields=fields, null_text="NULL", header=False, quoting="needed"),
                     fast=fast, monkeypatch=monkeypatch, models=MODELS)
    assert run.content.split(b"\r\n")[1:4] == [b'2,"NULL",NULL', b"3,NULL,Y2K", b"4,=1+1,2024-02-29"]
    run = run_stages(url, tmp_path / "nonnumeric", spec("nulls2", fields=fields, null_text="NULL", header=False, quoting="nonnumeric"),
                     fast=fast, monkeypatch=monkeypatch, models=MODELS)
    assert run.content.split(b"\r\n")[1:3] == [b'2,"NULL",NULL', b'3,NULL,"Y2K"']


def test_a_literal_percent_f_and_years_outside_the_zone(people, tmp_path):
    url, _ = people
    literal = run_export(spec("literal", fields=["id", "seen"], timestamp_format="%Y %%f %f"), url, tmp_path / "a", models=MODELS)
    assert literal.files[literal.metadata["file_names"][0]].split(b"\r\n")[1] == b"1,2024 %f 123456"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        last = "9999-12-31T23:59:59Z" if "sqlite" in url else dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        connection.execute(sa.text("UPDATE people SET seen = :s WHERE id = 5"), {"s": last})
    engine.dispose()
    berlin = spec("berlin", fields=["id", "seen"], timestamp_format="%d.%m.%Y", timestamp_timezone="Europe/Berlin")
    result = run_export(berlin, url, tmp_path / "b", models=MODELS, raise_on_error=False)
    [failure] = result.result.get_step_failure_events()
    assert "For export berlin, seen: 9999-12-31T23:59:59+00:00 falls outside the years 0001-9999 in Europe/Berlin" in failure.step_failure_data.error.message
    # In serialize, as before formatting moved into the extract: the lines written ahead were given up there.
    assert failure.step_key.endswith("__serialize")
    [extracted] = [event for event in result.result.all_events if event.is_successful_output and event.step_key.endswith("__extract")]
    assert extracted.event_specific_data.metadata["formatted_while_extracting"].value is False
    assert not list((tmp_path / "b").rglob("lines.arrow"))


@pytest.mark.parametrize("mapping", [{}, {"replace": {"never": "seen"}}], ids=["renamed", "replaced"])
def test_a_time_outside_the_years_names_its_output_field_on_every_path(people, fast, tmp_path, monkeypatch, mapping):
    """One message naming the field as the spec and the header do (its `to`), whether the extract's
    columns are handed on as they are (the mapping shortcut, the lines written while extracting) or
    mapped first, and when a Replace formats the value in map."""
    url, _ = people
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        last = "9999-12-31T23:59:59Z" if "sqlite" in url else dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        connection.execute(sa.text("UPDATE people SET seen = :s WHERE id = 5"), {"s": last})
    engine.dispose()
    fields = ["id", {"from": "seen", "to": "last_seen", **mapping}]
    berlin = spec("berlin", fields=fields, timestamp_format="%d.%m.%Y", timestamp_timezone="Europe/Berlin")
    with pytest.raises(UnwritableValue) as refused:
        run_stages(url, tmp_path, berlin, fast=fast, monkeypatch=monkeypatch, models=MODELS)
    assert str(refused.value) == (
        "last_seen: 9999-12-31T23:59:59+00:00 falls outside the years 0001-9999 in Europe/Berlin; "
        "write it in another timestamp_timezone, or leave such rows out with a filter"
    )


def test_null_text_read_by_yaml_as_no_value_is_explained(tmp_path):
    folder = write_config(tmp_path, [], models=MODELS)
    (folder / "exports" / "n.yaml").write_text("name: n\nmodel: people\nfields: [id]\nnull_text: NULL\n")
    [problem] = load_config(folder).problems
    assert (problem.key_path, 'quote the text: null_text: "NULL"' in problem.message) == ("null_text", True)
