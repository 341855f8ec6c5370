"""What "level 6" means to each compressor: time and size on the same CSV, the tools beside the libraries.

    python bench/compressors.py FILE.csv [--repeat 3]

Each library compresses the whole file in memory on one thread (its CPU seconds, median of
--repeat); each tool reads the file from the page cache (its user+system seconds). Sizes are
the output's bytes. python-isal is measured when it is installed (it is not a dependency:
its best level, 3, packs about 10% larger than gzip -6, so it cannot stand for level 6).
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import zstandard
from zlib_ng import zlib_ng


def library(compress: Callable[[bytes], bytes], data: bytes, repeat: int) -> tuple[float, int]:
    seconds, size = [], 0
    for _ in range(repeat):
        started = time.thread_time()
        size = len(compress(data))
        seconds.append(time.thread_time() - started)
    return statistics.median(seconds), size


def tool(command: list[str], path: Path, repeat: int) -> tuple[float, int]:
    seconds, size = [], 0
    for _ in range(repeat):
        before = os.times()
        with path.open("rb") as source:
            output = subprocess.run(command, stdin=source, capture_output=True, check=True).stdout
        after = os.times()
        seconds.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
        size = len(output)
    return statistics.median(seconds), size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    data = args.csv.read_bytes()
    rows = [
        ("gzip -6 (the tool, reference)", *tool(["gzip", "-6", "-c"], args.csv, args.repeat)),
        ("zlib level 6 (CPython's zlib)", *library(lambda d: zlib.compress(d, 6), data, args.repeat)),
        ("zlib-ng level 6 (the export's gzip)", *library(lambda d: zlib_ng.compress(d, 6), data, args.repeat)),
        ("zlib-ng level 4", *library(lambda d: zlib_ng.compress(d, 4), data, args.repeat)),
        ("zlib-ng level 1", *library(lambda d: zlib_ng.compress(d, 1), data, args.repeat)),
    ]
    try:
        from isal import isal_zlib

        rows += [(f"python-isal level {level}", *library(lambda d, level=level: isal_zlib.compress(d, level), data, args.repeat)) for level in (1, 3)]
    except ImportError:
        print("python-isal not installed: left out", file=sys.stderr)
    rows += [
        ("zstd -3 (the tool)", *tool(["zstd", "-3", "-c", "-q"], args.csv, args.repeat)),
        ("zstd level 3 (zstandard, the export's zstd)", *library(lambda d: zstandard.ZstdCompressor(level=3).compress(d), data, args.repeat)),
    ]
    reference_seconds, reference_size = rows[0][1], rows[0][2]
    print(f"{args.csv.name}: {len(data) / 2**20:.1f} MB, medians of {args.repeat}")
    print("| compressor | CPU s | output MB | time vs gzip -6 | size vs gzip -6 |")
    print("|---|---|---|---|---|")
    for name, seconds, size in rows:
        print(f"| {name} | {seconds:.2f} | {size / 2**20:.1f} | {seconds / reference_seconds:.2f} | {size / reference_size:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
