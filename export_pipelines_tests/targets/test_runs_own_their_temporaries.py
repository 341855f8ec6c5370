"""A run owns exactly its temporaries (and, on S3, its multipart uploads), marked with its run id:
two windows of one export upload at once through a throttled link and both arrive whole; a
killed run's temporaries stay while the instance says it runs, and the next run sweeps them once
it is over. On SFTP (sshd), FTPS (vsftpd) and S3 (moto), with run records in a real instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from export_pipelines.spec.loader import load_config
from export_pipelines.stages.file_naming import default_template
from export_pipelines.targets.registry import target_for
from export_pipelines.targets.remote import Temporary, parse_temporary, temporary_name
from export_pipelines_tests.conftest import write_config
from export_pipelines_tests.servers.fixtures import s3_client
from export_pipelines_tests.targets.delivery_helpers import RUN_TIME, Log, local_file, make_target
from export_pipelines_tests.waiting import wait_for

EXPORT = "inc_big"
TEMPLATE = default_template("daily", split=False)  # {export}_{window_start:%Y%m%d}_{window_end:%Y%m%d}.{ext}
WINDOW_FILES = [f"{EXPORT}_20240101_20240102.csv", f"{EXPORT}_20240102_20240103.csv", f"{EXPORT}_20240103_20240104.csv"]




def runs_of(names: list[str]) -> set[str]:
    return {parse_temporary(name).run_id for name in names}


def test_two_windows_upload_at_once_through_a_throttled_link_and_both_arrive_whole(partner, runs, tmp_path):
    first_run, second_run = runs.started(), runs.started()
    first_content = os.urandom(3 * partner.large_bytes)
    second_content = os.urandom(partner.large_bytes)
    first_file = local_file(tmp_path / "first", WINDOW_FILES[0], first_content)
    second_file = local_file(tmp_path / "second", WINDOW_FILES[1], second_content)

    first_target = make_target(
        partner.throttled_connection(), partner.folder, export=EXPORT, template=TEMPLATE, run_id=first_run, run_is_over=runs.is_over
    )
    outcome: dict = {}

    def deliver_first() -> None:
        try:
            outcome["delivery"] = first_target.deliver([first_file], Log())
        except Exception as error:  # reported by the assertions below
            outcome["error"] = error

    first = threading.Thread(target=deliver_first)
    first.start()
    uploading = wait_for(partner.temporaries, "the first window's temporary", interval=0.02)
    assert runs_of(uploading) == {first_run}

    consulted = []

    def is_over(run_id: str) -> bool | None:
        consulted.append((run_id, first.is_alive()))  # what the second run's sweep asked, and whether the first was uploading
        return runs.is_over(run_id)

    second_target = make_target(
        partner.throttled_connection(), partner.folder, export=EXPORT, template=TEMPLATE, run_id=second_run, run_is_over=is_over
    )
    second_delivery = second_target.deliver([second_file], Log())
    first.join(timeout=60)

    assert (first_run, True) in consulted  # the second run's sweep met the first's temporary mid-upload ...
    assert second_delivery.swept == []  # ... and left it alone
    assert "error" not in outcome, outcome.get("error")
    assert outcome["delivery"].swept == []
    assert partner.read(WINDOW_FILES[0]) == first_content
    assert partner.read(WINDOW_FILES[1]) == second_content
    assert partner.names() == WINDOW_FILES[:2]
    assert partner.temporaries() == []


def test_a_killed_runs_temporaries_are_swept_by_the_next_run_once_it_is_over(partner, runs, tmp_path):
    killed_run = runs.started()
    content = os.urandom(3 * partner.large_bytes)
    path = tmp_path / WINDOW_FILES[0]
    path.write_bytes(content)
    request = {"connection": partner.throttled_connection(), "folder": partner.folder, "export": EXPORT,
               "template": TEMPLATE, "run_id": killed_run, "file": str(path)}
    worker = subprocess.Popen([sys.executable, "-m", "export_pipelines_tests.targets.delivery_process", json.dumps(request)])
    try:
        leftovers = wait_for(partner.temporaries, "the run worker's temporary", interval=0.02)
    finally:
        worker.kill()  # SIGKILL: no cleanup runs, as when a run worker's machine dies
        worker.wait()
    assert worker.returncode == -9
    leftovers = partner.temporaries()
    assert leftovers and runs_of(leftovers) == {killed_run}
    assert WINDOW_FILES[0] not in partner.names()

    # The instance still says STARTED (nothing has noticed yet): the next run leaves them alone.
    second_content = os.urandom(1000)
    second = make_target(partner.connection, partner.folder, export=EXPORT, template=TEMPLATE, run_is_over=runs.is_over)
    delivery = second.deliver([local_file(tmp_path / "2", WINDOW_FILES[1], second_content)], Log())
    assert delivery.swept == []
    assert partner.temporaries() == leftovers

    runs.fail(killed_run)  # what the code server, or a user terminating the run in the UI, records
    third_content = os.urandom(1000)
    third = make_target(partner.connection, partner.folder, export=EXPORT, template=TEMPLATE, run_is_over=runs.is_over)
    delivery = third.deliver([local_file(tmp_path / "3", WINDOW_FILES[2], third_content)], Log())
    assert sorted(label.split(" (unfinished multipart upload ")[0] for label in delivery.swept) == leftovers
    assert partner.temporaries() == []
    assert partner.names() == WINDOW_FILES[1:]
    assert (partner.read(WINDOW_FILES[1]), partner.read(WINDOW_FILES[2])) == (second_content, third_content)


def test_a_temporary_name_carries_export_and_run_and_fits_a_file_name():
    run_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert temporary_name("inc_big", run_id, "inc_big_20240101_20240102.csv") == (
        ".inc_big.0f8fad5b-d9cb-469f-a165-70867728950e.inc_big_20240101_20240102.csv.part"
    )
    long_name = "x" * 250 + ".csv"  # a valid final name of 254 bytes
    shortened = temporary_name("inc_big", run_id, long_name)
    assert len(shortened.encode()) <= 255 and shortened != temporary_name("inc_big", run_id, "y" * 250 + ".csv")
    assert parse_temporary(shortened) == Temporary("inc_big", run_id)
    assert parse_temporary("inc_big_20240101_20240102.csv") is None
    assert parse_temporary(".inc_big.0123456789ab.inc_big_20240101_20240102.csv.part") is None  # no run id


def adhoc_temporary(run_id: str, file_name: str) -> str:
    """What an ad-hoc run (export adhoc_<run id without dashes>) uploads under, written by hand."""
    return f".adhoc_{run_id.replace('-', '')}.{run_id}.{file_name}.part"


def test_a_killed_adhoc_runs_temporaries_are_swept_by_a_later_adhoc_run(partner, runs, tmp_path):
    """Each ad-hoc run is an export of its own (adhoc_<run id>): no later run of that export ever comes,
    so a later ad-hoc run sweeps them once the killed run is over; a live ad-hoc run's and a spec
    export's temporaries stay."""
    killed, alive, spec_run, later = runs.started(), runs.started(), runs.started(), runs.started()
    runs.fail(killed)
    runs.fail(spec_run)
    killed_temporary = adhoc_temporary(killed, "adhoc_20261123T020000Z.csv")
    alive_temporary = adhoc_temporary(alive, "adhoc_20261123T020000Z.csv")
    spec_temporary = f".x.{spec_run}.x_20261123T020000Z.csv.part"
    for name in (killed_temporary, alive_temporary, spec_temporary):
        partner.place(name, b"partial")
    if partner.bucket:  # and the killed run's unfinished multipart upload to its temporary key
        s3_client(partner.endpoint).create_multipart_upload(Bucket=partner.bucket, Key=f"{partner.folder}/{killed_temporary}")
    export = f"adhoc_{later.replace('-', '')}"
    spec = {"name": export, "model": "customers", "fields": ["id"], "target": {"connection": "partner", "path": partner.folder}}
    config = load_config(write_config(tmp_path / "config", [spec], connections={"connections": {"partner": partner.connection}}))
    assert not config.problems, [str(problem) for problem in config.problems]
    target = target_for(config.plans[export], config.connections.connections, tmp_path, RUN_TIME, later, runs.is_over)

    delivery = target.deliver([local_file(tmp_path / "out", f"{export}.csv", b"id\r\n1\r\n")], Log())

    expected_swept = [killed_temporary] + ([f"{killed_temporary} (unfinished multipart upload"] if partner.bucket else [])
    assert sorted(label.rsplit(" ", 1)[0] if "multipart" in label else label for label in delivery.swept) == expected_swept
    assert partner.names() == sorted([alive_temporary, spec_temporary, f"{export}.csv"])
    assert partner.unfinished_uploads() == []
