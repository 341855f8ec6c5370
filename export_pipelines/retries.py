"""Retries of the steps that touch a database or a server, as a spec asks for them."""

from __future__ import annotations

import dagster as dg

from export_pipelines.spec.export import Retries


def retry_policy_for(retries: Retries | None) -> dg.RetryPolicy | None:
    """Exponential waits d, 2d, 4d, ... that add up to `within` (Sana: N retries inside 60 s).

    Full jitter draws each wait between 0 and its nominal length, so runs retrying after the
    same outage spread out and the total never exceeds `within`.
    """
    if retries is None or retries.max_retries == 0:
        return None
    first_wait = retries.within.total_seconds() / (2**retries.max_retries - 1)
    return dg.RetryPolicy(
        max_retries=retries.max_retries, delay=first_wait, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL
    )
