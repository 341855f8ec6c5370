"""The code location's one entry point: Definitions built from the config folder in force.

It always loads, whatever the config folder holds (code_location.build_definitions).
"""

from __future__ import annotations

import dagster as dg

from export_pipelines.code_location import build_definitions
from export_pipelines.spec.loader import config_dir, load_config

__all__ = ["build_definitions", "defs", "load_definitions"]


def load_definitions() -> dg.Definitions:
    """The code location over the config folder in force (EXPORT_PIPELINES_CONFIG), built anew:
    the command line's runs rebuild it through this in the process that executes the steps."""
    return build_definitions(load_config(config_dir()))


defs = load_definitions()
