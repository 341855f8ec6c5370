"""pyarrow without pandas: the one slow step of pyarrow's first use, settled without taking it.

The first time pyarrow converts any Python value to Arrow (every serialization does: its
header line, the delimiter passed to a kernel) it asks whether pandas is installed, to know
pandas objects when it meets them, and answers by importing pandas: about 0.6 s of Python
holding the GIL, in every run process, before a 1 000-row export's steps had taken 0.5 s
together. Nothing here hands pyarrow a pandas object (pandas is for the tests' own checks,
DESIGN.md), so pyarrow is asked that question once, the first time a step takes pyarrow from
lazy_imports.py, with pandas out of its sight: it then treats every value as the plain Python
value it is. Code that asks pyarrow for pandas itself (`Table.to_pandas()`, `from_pandas`)
still gets it: pyarrow imports pandas then. A process that imported pandas already (a test)
is left as it is. (The memory pool is chosen in export_pipelines/__init__.py, before pyarrow
is imported.)
"""

from __future__ import annotations

import importlib.abc
import sys
import threading

_settled = threading.Event()
_lock = threading.Lock()


class _PandasOutOfSight(importlib.abc.MetaPathFinder):
    """Answers an import of pandas as if it were not installed; lives only for the probe below."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def prepare_pyarrow() -> None:
    """Settle pyarrow's question about pandas without importing pandas (once per process).

    While it runs (well under a millisecond once pyarrow is imported), another thread's
    `import pandas` would fail as if pandas were missing; nothing in a step imports pandas.
    """
    if _settled.is_set():
        return
    with _lock:
        if _settled.is_set():
            return
        import pyarrow as pa

        if "pandas" not in sys.modules:
            finder = _PandasOutOfSight()
            sys.meta_path.insert(0, finder)
            try:
                pa.scalar(0)  # the first conversion: pyarrow's pandas check runs here, and only once
            finally:
                sys.meta_path.remove(finder)
        _settled.set()
