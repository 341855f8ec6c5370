"""Fixtures of the delivery tests: run records in a real Dagster instance, and partner folders on each server kind."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from export_pipelines.run_history import run_is_over
from export_pipelines_tests.targets.partners import PROTOCOLS, Partner, open_partner


class Runs:
    """Run records in a real Dagster instance: how the upload step learns whether another run is over."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance

    def started(self) -> str:
        run_id = str(uuid.uuid4())
        self.instance.add_run(dg.DagsterRun(job_name="export_job", run_id=run_id, status=dg.DagsterRunStatus.STARTED))
        return run_id

    def fail(self, run_id: str) -> None:
        """What the code server records when a run's process dies, or a user's termination in the UI."""
        self.instance.report_run_failed(self.instance.get_run_by_id(run_id))

    def is_over(self, run_id: str) -> bool | None:
        return run_is_over(self.instance, run_id)


@pytest.fixture(scope="session")
def runs() -> Runs:
    with dg.instance_for_test() as instance:
        yield Runs(instance)


@pytest.fixture(params=PROTOCOLS)
def partner(request, monkeypatch) -> Partner:
    """An empty partner folder on SFTP (sshd), FTPS (vsftpd) and S3 (moto) in turn."""
    return open_partner(request.param, request, monkeypatch)
