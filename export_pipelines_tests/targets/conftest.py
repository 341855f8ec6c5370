"""Fixtures of the delivery tests: run records in a real Dagster instance, and partner folders on each server kind."""

from __future__ import annotations

import dagster as dg
import pytest

from export_pipelines_tests.targets.delivery_helpers import Runs
from export_pipelines_tests.targets.partners import PROTOCOLS, Partner, open_partner


@pytest.fixture(scope="session")
def runs() -> Runs:
    with dg.instance_for_test() as instance:
        yield Runs(instance)


@pytest.fixture(params=PROTOCOLS)
def partner(request, monkeypatch) -> Partner:
    """An empty partner folder on SFTP (sshd), FTPS (vsftpd) and S3 (moto) in turn."""
    return open_partner(request.param, request, monkeypatch)
