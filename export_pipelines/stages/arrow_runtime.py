"""Start pyarrow's one slow step while the database is busy.

pyarrow imports pandas (about 0.4 s of Python holding the GIL) the first time it converts
any Python value to Arrow, which every serialization does (its header line, the delimiter
passed to a kernel). An extract spends its time waiting on the database or decoding in C
with the GIL released, so that import runs then, on a thread, instead of on the serialize
step's path. A run process pays it once either way. (The memory pool is chosen in
export_pipelines/__init__.py, before pyarrow is imported.)
"""

from __future__ import annotations

import sys
import threading

import pyarrow as pa

_started = threading.Event()


def prepare_pyarrow() -> None:
    if not _started.is_set() and "pandas" not in sys.modules:
        _started.set()
        threading.Thread(target=_first_conversion, name="pyarrow-warm-up", daemon=True).start()


def _first_conversion() -> None:
    try:
        pa.scalar(0)
    except Exception:  # noqa: BLE001 - a warm-up that fails leaves the import to the first real conversion
        pass
