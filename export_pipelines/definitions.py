"""The code location's one entry point: Definitions built from the config folder in force.

It always loads, whatever the config folder holds (code_location.build_definitions). A process
that only executes runs or steps (Dagster loads it there as a RECONSTRUCTION) gets a repository
that builds just the exports its run needs (reconstruction.py).
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.definitions_load_context import DefinitionsLoadContext, DefinitionsLoadType

from export_pipelines.code_location import build_definitions
from export_pipelines.reconstruction import ExportRepository
from export_pipelines.spec.loader import config_dir, load_config, load_exports_of

__all__ = ["build_definitions", "defs", "load_definitions"]


def load_definitions() -> dg.Definitions | dg.RepositoryDefinition:
    """The code location over the config folder in force (EXPORT_PIPELINES_CONFIG), built anew:
    the command line's runs rebuild it through this in the process that executes the steps.
    Loaded to execute a run (RECONSTRUCTION): an ExportRepository, which builds only the exports
    the run's job and selection name."""
    root = config_dir()
    if DefinitionsLoadContext.get().load_type is DefinitionsLoadType.RECONSTRUCTION:
        return ExportRepository(lambda: build_definitions(load_config(root)), lambda names: _definitions_of(root, names))
    return build_definitions(load_config(root))


def _definitions_of(root, names: frozenset[str]) -> dg.Definitions | None:
    config = load_exports_of(root, names)
    return build_definitions(config) if config is not None else None


defs = load_definitions()
