"""The source database resource: any SQLAlchemy URL, the demo SQLite file by default."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from dagster import ConfigurableResource
from pydantic import Field

from export_pipelines.database_urls import normalize_url

SOURCE_URL_ENV_VAR = "EXPORT_SOURCE_URL"
# Settings the extract's results depend on, pinned per session whatever the server's or role's defaults:
# a `timestamp without time zone` reads and compares as UTC (README: naive values are UTC), and
# psycopg's text loaders get the ISO dates they parse.
POSTGRESQL_SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD"


def demo_database_path(instance_root: Path) -> Path:
    return instance_root / "demo" / "loyalty.sqlite"


class SourceDatabase(ConfigurableResource):
    """The CRM/loyalty database exports read from.

    Args:
        url: SQLAlchemy URL. When unset, EXPORT_SOURCE_URL is used, else the demo SQLite
            database under the Dagster instance's folder. A URL with a password belongs
            in EXPORT_SOURCE_URL, never in a file.
    """

    url: str | None = Field(default=None, description="SQLAlchemy URL of the source database.")

    def resolved_url(self, instance_root: Path) -> sa.URL:
        configured = self.url or os.environ.get(SOURCE_URL_ENV_VAR)
        if configured:
            return normalize_url(configured)
        path = demo_database_path(instance_root)
        if not path.exists():
            raise FileNotFoundError(
                f"No source database: {SOURCE_URL_ENV_VAR} is not set and the demo database {path} does not exist; "
                f"run `export-pipelines demo` or set {SOURCE_URL_ENV_VAR}"
            )
        return sa.make_url(f"sqlite:///{path}")

    def create_engine(self, instance_root: Path) -> sa.Engine:
        """An engine whose sessions have the settings extraction relies on (its URL carries them to ADBC too)."""
        return sa.create_engine(pinned_session_url(self.resolved_url(instance_root)), pool_pre_ping=True)


def pinned_session_url(url: sa.URL) -> sa.URL:
    """The URL with POSTGRESQL_SESSION_OPTIONS added to its libpq `options` (psycopg and ADBC's libpq both read them)."""
    if url.get_backend_name() != "postgresql":
        return url
    options = url.query.get("options", "")
    if isinstance(options, tuple):
        options = " ".join(options)
    return url.update_query_dict({"options": f"{options} {POSTGRESQL_SESSION_OPTIONS}".strip()})
