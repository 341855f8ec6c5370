"""A real Dagster instance whose run records the delivery tests consult, shared by the session."""

from __future__ import annotations

import dagster as dg
import pytest

from export_pipelines_tests.targets.delivery_helpers import Runs


@pytest.fixture(scope="session")
def runs() -> Runs:
    with dg.instance_for_test() as instance:
        yield Runs(instance)
