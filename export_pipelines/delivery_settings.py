"""The delivery resource: where this deployment's runs send their files."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

# 1 keeps every export's files in its download folder, 0 delivers to the connections; unset:
# on for the bundled demo config (its partner servers do not exist), off for any other.
REDIRECT_ENV_VAR = "EXPORT_REDIRECT_TO_DOWNLOAD"
_SWITCH = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


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
    """Whether the code location redirects delivery: $EXPORT_REDIRECT_TO_DOWNLOAD (1/0, true/false,
    yes/no, on/off), else whether `config_root` is the bundled demo config `demo_config`.

    Raises ValueError for any other value, naming the variable.
    """
    value = os.environ.get(REDIRECT_ENV_VAR, "").strip().lower()
    if not value:
        return config_root.resolve() == demo_config.resolve()
    if value not in _SWITCH:
        raise ValueError(f"{REDIRECT_ENV_VAR}={value!r}: write 1 (keep files in the download folder) or 0 (deliver)")
    return _SWITCH[value]
