"""SQLAlchemy URLs as this project reads them and shows them (no Dagster imports: the generator uses it too)."""

from __future__ import annotations

from export_pipelines.lazy_imports import sa


def normalize_url(url: str | sa.URL) -> sa.URL:
    """A bare postgresql:// (or postgres://) means psycopg 3, a bare mysql:// or mariadb:// PyMySQL:
    the drivers this project installs (SQLAlchemy's defaults, psycopg2 and mysqlclient, are not)."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername in ("mysql", "mariadb"):
        parsed = parsed.set(drivername=f"{parsed.drivername}+pymysql")
    return parsed


def safe_url(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def safe_location(value: str) -> str:
    """`value` (any URL or address a person set) as it may be shown in errors and logs: whatever is
    before its last `@` after the scheme (a `user:password@`, whose password may hold `/` or `@`
    itself) is shown as `***@`; the rest as written."""
    scheme, separator, rest = value.partition("://")
    if not separator:
        scheme, rest = "", value
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return scheme + separator + rest
