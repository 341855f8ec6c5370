"""The delivery resource: where this deployment's runs send their files."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field


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
