"""export_pipelines: declarative CRM/loyalty data exports as a Dagster code location."""

import os

# pyarrow picks its memory pool when it is first imported, so this comes before any module
# imports it. Its default, mimalloc, keeps a heap per thread; with batches formatted on two
# threads and written on a third it held about 90 MB more at peak than jemalloc, at the same
# speed (bench/RESULTS.md). A value set by the user still wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
