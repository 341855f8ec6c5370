"""The delivery resource: where this deployment's runs send their files."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from export_pipelines.switches import REDIRECT_ENV_VAR, switch_from_environment


class DeliverySettings(ConfigurableResource):
    """Delivery switches for a whole deployment.

    Args:
        redirect_to_download: Keep every export's files in its download folder instead of
            sending them to its connection. For the demo and for staging deployments that
            must not write to partners' servers; the run metadata says it happened.
    """

    redirect_to_download: bool = Field(
        default=False, description="Keep files in the download folder instead of delivering to connections."
    )


def redirect_from_environment(config_root: Path, demo_config: Path) -> bool:
    """Whether the code location redirects delivery: $EXPORT_REDIRECT_TO_DOWNLOAD (a switch, see
    switches.py), else whether `config_root` is the bundled demo config `demo_config`.

    Raises ValueError for a value that is no switch value, naming the variable.
    """
    return switch_from_environment(REDIRECT_ENV_VAR, default=config_root.resolve() == demo_config.resolve())
