"""spec/ is loaded by everything else, so it must not import the Dagster-facing automation/ package."""

from __future__ import annotations

import ast
from pathlib import Path

import export_pipelines.spec


def test_spec_does_not_import_automation():
    spec_folder = Path(export_pipelines.spec.__file__).parent
    offenders = []
    for path in sorted(spec_folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in getattr(node, "names", [])]
            if isinstance(node, ast.Import | ast.ImportFrom) and any(n.startswith("export_pipelines.automation") for n in names):
                offenders.append(path.name)
    assert offenders == []
