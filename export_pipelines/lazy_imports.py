"""The heavy libraries, imported when a step first uses them, not when the code location loads.

Loading the code location (the code server, every run worker, `export-pipelines validate`)
needs Dagster, the specs and the op graph, not the libraries that move rows: SQLAlchemy,
pyarrow, the ADBC driver manager, zlib-ng, zstandard and python-gnupg together took about
0.7 s of a 2 s load (bench/RESULTS.md, "Whole Dagster run"). Modules take them from here,

    from export_pipelines.lazy_imports import pa, pc, sa

and use them as usual (`pa.Table`, `sa.select`); the first attribute read imports the real
module. So a module-level statement that reads one (a constant such as `pa.int64()`, a base
class, an annotation Python evaluates) imports it at load again:
export_pipelines_tests/test_run_start.py names the libraries a load must not import.
(paramiko, boto3 and connectorx are imported inside the targets and the MySQL fast path,
which the code location loads only when a step needs them.)

Type checkers and editors see the real modules (the TYPE_CHECKING branch).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from export_pipelines.stages.arrow_runtime import prepare_pyarrow


class LazyModule:
    """Stands for the module `name` until its first attribute is read, then forwards to it.

    Each attribute read once is kept on this object, so later reads cost a plain attribute
    lookup. `on_import` runs before any attribute is handed out; it must be idempotent and
    thread-safe, as each first read of an attribute calls it. Thread-safe: importlib's
    per-module lock makes a second thread wait for the first's import.
    """

    def __init__(self, name: str, on_import: Callable[[], None] | None = None) -> None:
        self._lazy_name = name
        self._lazy_on_import = on_import

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__") or attribute.startswith("_lazy_"):
            # copy, pickle, inspect and doctest probe dunders; answering them would import.
            raise AttributeError(attribute)
        module = importlib.import_module(self._lazy_name)
        if self._lazy_on_import is not None:
            self._lazy_on_import()
        value = getattr(module, attribute)
        setattr(self, attribute, value)
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._lazy_name!r}>"


if TYPE_CHECKING:
    import adbc_driver_manager
    import gnupg
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.fs as pafs
    import pyarrow.ipc as ipc
    import sqlalchemy as sa
    import zstandard
    from sqlalchemy.dialects import mysql as mysql_sql
    from sqlalchemy.dialects import sqlite as sqlite_sql
    from sqlalchemy.dialects.mysql import types as mysql_types
    from zlib_ng import gzip_ng
else:
    # Every pyarrow module first settles whether pyarrow may import pandas (stages/arrow_runtime.py).
    pa = LazyModule("pyarrow", prepare_pyarrow)
    pc = LazyModule("pyarrow.compute", prepare_pyarrow)
    pcsv = LazyModule("pyarrow.csv", prepare_pyarrow)
    pafs = LazyModule("pyarrow.fs", prepare_pyarrow)
    ipc = LazyModule("pyarrow.ipc", prepare_pyarrow)
    sa = LazyModule("sqlalchemy")
    mysql_sql = LazyModule("sqlalchemy.dialects.mysql")
    sqlite_sql = LazyModule("sqlalchemy.dialects.sqlite")
    mysql_types = LazyModule("sqlalchemy.dialects.mysql.types")
    adbc_driver_manager = LazyModule("adbc_driver_manager")
    gnupg = LazyModule("gnupg")
    zstandard = LazyModule("zstandard")
    gzip_ng = LazyModule("zlib_ng.gzip_ng")

__all__ = [
    "LazyModule",
    "adbc_driver_manager",
    "gnupg",
    "gzip_ng",
    "ipc",
    "mysql_sql",
    "mysql_types",
    "pa",
    "pafs",
    "pc",
    "pcsv",
    "sa",
    "sqlite_sql",
    "zstandard",
]
