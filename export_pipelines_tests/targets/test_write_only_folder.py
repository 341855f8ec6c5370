"""A partner's drop folder that takes uploads but refuses listing (mode -wx for the login): delivery
needs no listing unless retention is on, so it succeeds and warns that the sweep was skipped. On
SFTP (sshd) and FTPS (vsftpd); moto checks no permissions, so S3 cannot refuse a listing here."""

from __future__ import annotations

import pytest

from export_pipelines.targets.base import DeliveryError
from export_pipelines_tests.targets.delivery_helpers import Log, local_file, make_target
from export_pipelines_tests.targets.partners import open_partner


@pytest.fixture(params=["sftp", "ftps"])
def drop_folder(request, monkeypatch):
    partner = open_partner(request.param, request, monkeypatch)
    partner.place("someone_elses.csv", b"theirs\r\n")
    partner.home.chmod(0o300)  # the login may write and enter, not read the folder
    yield partner
    partner.home.chmod(0o755)


def test_a_folder_that_refuses_listing_still_takes_the_files(drop_folder, tmp_path):
    log = Log()
    content = b"id\r\n1\r\n"
    delivery = make_target(drop_folder.connection, drop_folder.folder, export="x").deliver(
        [local_file(tmp_path, "x_20261123T020000Z.csv", content)], log
    )
    assert drop_folder.names() == ["someone_elses.csv", "x_20261123T020000Z.csv"]
    assert drop_folder.read("x_20261123T020000Z.csv") == content
    assert delivery.swept == [] and delivery.retired == []
    [warning] = [line for line in log if line.startswith("WARNING:")]
    assert "list" in warning and "not swept" in warning


def test_retention_in_a_folder_that_refuses_listing_fails_clearly_after_delivering(drop_folder, tmp_path):
    expected = r"For export x, .* failed while deleting files older than the last 2 runs' .*the new files are delivered.*list"
    with pytest.raises(DeliveryError, match=expected):
        make_target(drop_folder.connection, drop_folder.folder, export="x", keep_last=2).deliver(
            [local_file(tmp_path, "x_20261123T020000Z.csv", b"new\r\n")], Log()
        )
    assert drop_folder.names() == ["someone_elses.csv", "x_20261123T020000Z.csv"]
