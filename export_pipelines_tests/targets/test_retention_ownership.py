"""Retention in a folder several exports and people share, on SFTP, FTPS and S3: an export deletes
only the names its own file_name template can produce, never a sibling export's (`x` and `x_eu`),
another template's, or a file placed by hand."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from export_pipelines.stages.file_naming import DEFAULT_SPLIT_TEMPLATE, DEFAULT_TEMPLATE
from export_pipelines.targets.remote import CLOCK_SLACK_SECONDS
from export_pipelines_tests.conftest import run_export
from export_pipelines_tests.sample_data import create_sample_tables
from export_pipelines_tests.targets.delivery_helpers import Log, local_file, make_target

DAY = 24 * 3600

# Names that are not export x's under its default template "{export}_{run_time:%Y%m%dT%H%M%SZ}.{ext}".
NOT_X = [
    "x_eu_20261120T020000Z.csv",  # the sibling export x_eu
    "x_eu_20261120T020000Z.done",  # ... and its done marker
    "x_eu_20261119T020000Z.csv",
    "x_eu_20240101_20240102.csv",  # x_eu, incremental
    "x_20261120T020000Z_part001.csv",  # x's split template: another template
    "x_20240101_20240102.csv",  # a window template
    "x_20261120T020000Z.csv.gz",  # another extension
    "x_20261120T020000Z.psv",
    "x_manual_backup.csv",  # by hand
    "x_2026-11-20.csv",
    "x_20261320T020000Z.csv",  # month 13: no run time writes that
    "x_20261120T020000.csv",
    "X_20261120T020000Z.csv",
    "x_20261120T020000Z.csv.bak",
    "notes.txt",
]
# Export x's own older files, with the done markers of its finish_with, oldest first.
X_OLD = ["x_20261118T020000Z.csv", "x_20261119T020000Z.csv", "x_20261120T020000Z.csv"]
X_OLD_MARKERS = [name.replace(".csv", ".done") for name in X_OLD]


def test_keep_last_deletes_only_this_exports_older_files(partner, tmp_path):
    for index, name in enumerate(X_OLD):  # oldest first: S3 stamps objects with the time they arrive
        age = (len(X_OLD) - index) * DAY
        partner.place(name, b"old\r\n", age_seconds=age)
        partner.place(name.replace(".csv", ".done"), b"", age_seconds=age)
    for name in NOT_X:
        partner.place(name, b"not x's\r\n", age_seconds=10 * DAY)

    target = make_target(partner.connection, partner.folder, export="x", keep_last=2, finish_with="done_marker")
    new = "x_20261123T020000Z.csv"
    delivery = target.deliver([local_file(tmp_path, new, b"new\r\n")], Log())

    kept = [X_OLD[-1], X_OLD_MARKERS[-1], new, new.replace(".csv", ".done")]
    assert partner.names() == sorted([*NOT_X, *kept])
    assert sorted(delivery.retired) == sorted(X_OLD[:-1])
    assert all(partner.read(name) == b"not x's\r\n" for name in NOT_X)


def test_the_sibling_export_x_eu_keeps_to_its_own_files_too(partner, tmp_path):
    mine = ["x_eu_20261120T020000Z_part001.csv", "x_eu_20261120T020000Z_part002.csv", "x_eu_20261121T020000Z_part001.csv"]
    others = ["x_20261120T020000Z_part001.csv", "x_20261121T020000Z_part001.csv", "x_eu_20261121T020000Z.csv",
              "x_eu_20261121T020000Z_part01.csv", "x_eu_20261121T020000Z_part0001.csv", "x_eu_manual_part001.csv"]
    for index, name in enumerate(mine):
        partner.place(name, b"old\r\n", age_seconds=(len(mine) - index) * DAY)
    for name in others:
        partner.place(name, b"other\r\n", age_seconds=10 * DAY)

    target = make_target(partner.connection, partner.folder, export="x_eu", keep_last=1, template=DEFAULT_SPLIT_TEMPLATE)
    new = "x_eu_20261123T020000Z_part001.csv"
    target.deliver([local_file(tmp_path, new, b"new\r\n")], Log())

    assert partner.names() == sorted([*others, new])


def test_keep_last_counts_runs_so_a_split_set_stays_whole(partner, tmp_path):
    """keep_last 2: this run's set and the newest earlier run's set, all of its parts."""
    older_runs = [  # oldest first, each run's parts
        ["x_20261119T020000Z_part001.csv", "x_20261119T020000Z_part002.csv", "x_20261119T020000Z_part003.csv"],
        ["x_20261120T020000Z_part001.csv", "x_20261120T020000Z_part002.csv"],
        ["x_20261121T020000Z_part001.csv", "x_20261121T020000Z_part002.csv", "x_20261121T020000Z_part003.csv"],
    ]
    for index, names in enumerate(older_runs):
        for name in names:
            partner.place(name, b"old\r\n", age_seconds=(len(older_runs) - index) * DAY)
    new = ["x_20261123T020000Z_part001.csv", "x_20261123T020000Z_part002.csv"]

    target = make_target(partner.connection, partner.folder, export="x", keep_last=2, template=DEFAULT_SPLIT_TEMPLATE)
    delivery = target.deliver([local_file(tmp_path, name, b"new\r\n") for name in new], Log())

    assert partner.names() == sorted([*older_runs[2], *new])
    assert delivery.retired == sorted([*older_runs[0], *older_runs[1]])


@pytest.mark.parametrize(("finish_with", "owned_companion"), [(None, None), ("manifest", ".manifest.json"), ("done_marker", ".done")])
def test_only_the_completion_files_this_export_writes_are_its_own(partner, tmp_path, finish_with, owned_companion):
    old = "x_20261120T020000Z.csv"
    companions = ["x_20261120T020000Z.done", "x_20261120T020000Z.manifest.json"]
    partner.place(old, b"old\r\n", age_seconds=2 * DAY)
    for name in companions:
        partner.place(name, b"", age_seconds=2 * DAY)
    new = "x_20261123T020000Z.csv"

    target = make_target(partner.connection, partner.folder, export="x", keep_last=1, finish_with=finish_with)
    target.deliver([local_file(tmp_path, new, b"new\r\n")], Log())

    written = [new.replace(".csv", owned_companion)] if owned_companion else []
    surviving = [name for name in companions if not (owned_companion and name.endswith(owned_companion))]
    assert partner.names() == sorted([new, *written, *surviving])


@pytest.mark.parametrize(
    ("template", "timezone", "old", "new", "foreign"),
    [
        ("{export}_{run_time:%s}.{ext}", "UTC", "x_1763604000.csv", "x_1763863200.csv",
         ["x_5.csv", "x_17636040001.csv", "x_0763604000.csv"]),
        ("{export}_{run_time:%Y%m%d%^P}.{ext}", "UTC", "x_20261120am.csv", "x_20261123am.csv",
         ["x_20261120AM.csv", "x_20261120PM.csv"]),
        ("{export}_{window_start:%Y%m%d%Z}.{ext}", "Europe/Berlin", "x_20261120CET.csv", "x_20261123CET.csv",
         ["x_20261120EST.csv", "x_20261120UTC.csv", "x_20261120ABCDE.csv"]),
    ],
)
def test_zone_epoch_and_am_pm_tokens_own_only_their_shapes(partner, tmp_path, template, timezone, old, new, foreign):
    partner.place(old, b"old\r\n", age_seconds=2 * DAY)
    for name in foreign:
        partner.place(name, b"other\r\n", age_seconds=10 * DAY)

    target = make_target(partner.connection, partner.folder, export="x", keep_last=1, template=template, timezone=timezone)
    delivery = target.deliver([local_file(tmp_path, new, b"new\r\n")], Log())

    assert partner.names() == sorted([new, *foreign])
    assert delivery.retired == [old]


def test_issue_input_one_run_of_customers_keeps_customers_eu_and_the_backup(partner, tmp_path):
    """One run of export `customers` (default file name, keep_last 1) in a folder holding another
    export's file and a hand-placed one, through a real Dagster run."""
    assert DEFAULT_TEMPLATE == "{export}_{run_time:%Y%m%dT%H%M%SZ}.{ext}"
    partner.place("customers_eu_20240101T000000Z.csv", b"id\r\n1\r\n", age_seconds=DAY)
    partner.place("customers_manual_backup.csv", b"id\r\n2\r\n", age_seconds=DAY)
    partner.place("customers_20240101T000000Z.csv", b"id\r\n3\r\n", age_seconds=DAY)  # its own older file
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    spec = {"name": "customers", "model": "customers", "fields": ["id"], "order": ["id"],
            "target": {"connection": "partner", "path": partner.folder, "keep_last": 1}}

    run = run_export(spec, source, tmp_path, connections={"connections": {"partner": partner.connection}})

    [delivered] = run.metadata["file_names"]
    assert partner.names() == sorted(["customers_eu_20240101T000000Z.csv", "customers_manual_backup.csv", delivered])
    assert run.metadata["retention_deleted"] == ["customers_20240101T000000Z.csv"]
    with sa.create_engine(source).connect() as connection:
        ids = [str(row[0]) for row in connection.execute(sa.text("SELECT id FROM customers ORDER BY id"))]
    assert partner.read(delivered).decode() == "\r\n".join(["id", *ids]) + "\r\n"


WINDOW_SPLIT_TEMPLATE = "{export}_{window_start:%Y%m%d}_{window_end:%Y%m%d}_part{part:03d}.{ext}"


def test_two_windows_delivering_side_by_side_keep_each_others_files(partner, tmp_path):
    """keep_last 1 for windows 01 and 02 of one export, their runs alive at once: run B (window 02)
    delivers while run A (window 01) is still going; A's retention must not take B's new file."""
    template = "{export}_{window_start:%Y%m%d}_{window_end:%Y%m%d}.{ext}"
    partner.place("inc_20231230_20231231.csv", b"old\r\n", age_seconds=2 * DAY)
    run_a = make_target(partner.connection, partner.folder, export="inc", keep_last=1, template=template)
    run_b = make_target(partner.connection, partner.folder, export="inc", keep_last=1, template=template)

    run_b.deliver([local_file(tmp_path / "b", "inc_20240102_20240103.csv", b"b\r\n")], Log())
    delivery_a = run_a.deliver([local_file(tmp_path / "a", "inc_20240101_20240102.csv", b"a\r\n")], Log())

    assert partner.names() == ["inc_20240101_20240102.csv", "inc_20240102_20240103.csv"]
    assert delivery_a.retired == []
    # The next run, started after both, keeps only its own set again.
    time.sleep(CLOCK_SLACK_SECONDS + 1)  # past the servers' whole-second clocks
    run_c = make_target(partner.connection, partner.folder, export="inc", keep_last=1, template=template)
    run_c.deliver([local_file(tmp_path / "c", "inc_20240103_20240104.csv", b"c\r\n")], Log())
    assert partner.names() == ["inc_20240103_20240104.csv"]


@pytest.mark.parametrize("keep_last", [None, 3])
def test_a_window_rerun_with_fewer_parts_takes_the_old_runs_extra_parts(partner, tmp_path, keep_last):
    old_parts = [f"rp_20240101_20240102_part00{n}.csv" for n in (1, 2, 3)]
    for name in old_parts:
        partner.place(name, b"old\r\n", age_seconds=DAY)
    partner.place("rp_20231231_20240101_part001.csv", b"other window\r\n", age_seconds=DAY)
    new_parts = old_parts[:2]
    target = make_target(partner.connection, partner.folder, export="rp", keep_last=keep_last, template=WINDOW_SPLIT_TEMPLATE)
    log = Log()
    delivery = target.deliver([local_file(tmp_path, name, b"new\r\n") for name in new_parts], log)
    assert partner.names() == sorted(["rp_20231231_20240101_part001.csv", *new_parts])
    assert delivery.retired == [old_parts[2]]
    assert [partner.read(name) for name in new_parts] == [b"new\r\n", b"new\r\n"]
    assert any("a part an earlier run of this set left" in line for line in log)


def test_the_local_download_folder_replaces_a_set_written_again_whole(tmp_path):
    """A set written again with fewer parts loses the parts the earlier run wrote beyond them in the
    export's download folder too, as on every other target; nothing else in the folder is touched."""
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    # No run time in the names: every run of the export writes the same set.
    spec = {"name": "parts", "model": "customers", "fields": ["id"], "order": ["id"], "file_name": "{export}_{part:03d}.{ext}"}
    first = run_export({**spec, "max_rows_per_file": 1}, source, tmp_path)
    folder = first.folder
    first_names = sorted(path.name for path in folder.iterdir())
    assert len(first_names) > 2 and first_names[0] == "parts_001.csv"
    others = {
        "parts_eu_002.csv": b"a sibling export's name, put here by hand\r\n",
        "parts_002.csv.bak": b"a copy by hand\r\n",
        "parts_002.rejected.csv": b"a rejected-rows list\r\n",
        "parts_manual.csv": b"by hand\r\n",
    }
    for name, content in others.items():
        (folder / name).write_bytes(content)

    second = run_export({**spec, "max_rows_per_file": 1000}, source, tmp_path)

    assert second.folder == folder
    assert sorted(path.name for path in folder.iterdir()) == sorted(["parts_001.csv", *others])
    assert all((folder / name).read_bytes() == content for name, content in others.items())
    with sa.create_engine(source).connect() as connection:
        ids = [str(row[0]) for row in connection.execute(sa.text("SELECT id FROM customers ORDER BY id"))]
    assert (folder / "parts_001.csv").read_bytes() == ("\r\n".join(["id", *ids]) + "\r\n").encode()
    assert second.metadata["retention_deleted"] == first_names[1:]
