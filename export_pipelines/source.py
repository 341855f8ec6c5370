"""The source database resource: any SQLAlchemy URL, the demo SQLite file by default."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from export_pipelines.database_urls import normalize_url
from export_pipelines.lazy_imports import sa
from export_pipelines.stages.dialects import dialect_for

SOURCE_URL_ENV_VAR = "EXPORT_SOURCE_URL"


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
            raise NoSourceDatabase(
                f"No source database: {SOURCE_URL_ENV_VAR} is not set and the demo database {path} does not exist; "
                f"run `export-pipelines demo` or set {SOURCE_URL_ENV_VAR}"
            )
        return sa.make_url(f"sqlite:///{path}")

    def create_engine(self, instance_root: Path) -> sa.Engine:
        """An engine whose sessions have the settings extraction relies on (SESSION_SETTINGS)."""
        return session_engine(self.resolved_url(instance_root))


class NoSourceDatabase(FileNotFoundError):
    """Neither EXPORT_SOURCE_URL nor the demo database: a setting to fix, not a failure to retry."""


def session_engine(url: sa.URL) -> sa.Engine:
    """An engine that runs the dialect's SESSION_SETTINGS on every new connection: whatever the server's,
    the role's or the environment's (PGTZ) defaults, a result means the same."""
    engine = sa.create_engine(url, pool_pre_ping=True)
    settings = dialect_for(engine.dialect.name).session_settings
    if settings:

        @sa.event.listens_for(engine, "connect")
        def _pin(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            for statement in settings:
                cursor.execute(statement)
            cursor.close()
            dbapi_connection.commit()

    return engine
