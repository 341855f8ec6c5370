"""One dagster-webserver for the API tests, started once per session over a small demo database."""

from __future__ import annotations

import pytest

from export_pipelines.demo.generator import generate_demo_database
from export_pipelines_tests.conftest import require_service, write_config
from export_pipelines_tests.servers.dagster_webserver import Webserver, start_webserver, webserver_executable

VOUCHERS_SPEC = {
    "name": "postman_vouchers",
    "model": "voucher",
    "owner": "team:crm",
    "fields": ["code", "voucher_type"],
    "filters": {"categories": {"conditions": {"$in": ["postman"]}}},
    "order": "code",
    "schedule": {"repeated": "daily", "at": "03:00", "active": False},
}
CUSTOMERS_SPEC = {"name": "german_customers", "model": "customer", "fields": ["id", "email"], "filters": {"address_country": {"conditions": {"$in": ["DE"]}}}}


@pytest.fixture(scope="session")
def exports_server(tmp_path_factory) -> tuple[Webserver, str]:
    """The webserver and the SQLAlchemy URL of the database its exports read."""
    if webserver_executable() is None:
        require_service("dagster-webserver is not installed")
    folder = tmp_path_factory.mktemp("webserver")
    source_url = f"sqlite:///{folder / 'source.sqlite'}"
    generate_demo_database(source_url, customers=60, seed=7)
    config = write_config(folder / "config", [VOUCHERS_SPEC, CUSTOMERS_SPEC])
    server = start_webserver(folder, {"EXPORT_PIPELINES_CONFIG": str(config), "EXPORT_SOURCE_URL": source_url})
    yield server, source_url
    server.stop()
