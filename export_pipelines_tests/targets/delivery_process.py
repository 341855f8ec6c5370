"""One run's delivery in a process of its own, for tests that kill it mid-upload as a crashed
run worker dies: `python -m export_pipelines_tests.targets.delivery_process REQUEST_JSON`.

REQUEST_JSON holds connection, folder, export, template, run_id and file (a local path)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from export_pipelines.targets.base import LocalFile
from export_pipelines_tests.targets.delivery_helpers import Log, make_target


def main(argv: list[str]) -> int:
    request = json.loads(argv[0])
    path = Path(request["file"])
    content = path.read_bytes()
    target = make_target(
        request["connection"], request["folder"], export=request["export"], template=request["template"], run_id=request["run_id"]
    )
    target.deliver([LocalFile(path, 1, len(content), hashlib.sha256(content).hexdigest())], Log())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
