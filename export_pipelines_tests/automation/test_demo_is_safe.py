"""The bundled demo is safe to leave running (`make ui`): its scheduled runs succeed with every
file kept in the download folder, though its partner servers, keys and secrets do not exist,
and its mail sensors start stopped. EXPORT_REDIRECT_TO_DOWNLOAD turns that on and off for any
config folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from export_pipelines.definitions import build_definitions
from export_pipelines.delivery_settings import REDIRECT_ENV_VAR
from export_pipelines.demo.generator import demo_data_end, generate_demo_database
from export_pipelines.naming import FAILURE_MAIL_SENSOR, SUCCESS_MAIL_SENSOR
from export_pipelines.source import SOURCE_URL_ENV_VAR
from export_pipelines.spec.loader import bundled_demo_config, load_config
from export_pipelines_tests.conftest import write_config

SYDNEY = ZoneInfo("Australia/Sydney")
DEMO_SECRETS = ["PARTNER_SFTP_KEY_PASSPHRASE", "ANTAVO_FTPS_PASSWORD", "SANA_FTP_PASSWORD", "EXPORTS_AWS_ACCESS_KEY_ID", "EXPORTS_AWS_SECRET_ACCESS_KEY"]


def mail_sensor_statuses(defs: dg.Definitions) -> set[dg.DefaultSensorStatus]:
    return {sensor.default_status for sensor in defs.sensors if sensor.name in (FAILURE_MAIL_SENSOR, SUCCESS_MAIL_SENSOR)}


def test_scheduled_runs_of_the_demo_succeed_into_the_download_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(REDIRECT_ENV_VAR, raising=False)
    for secret in DEMO_SECRETS:
        monkeypatch.delenv(secret, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh: the demo's key and known_hosts do not exist either
    source = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    generate_demo_database(source, customers=60, seed=3)
    monkeypatch.setenv(SOURCE_URL_ENV_VAR, source)
    defs = build_definitions(load_config(bundled_demo_config()))
    assert defs.resources["delivery_settings"].redirect_to_download
    assert mail_sensor_statuses(defs) == {dg.DefaultSensorStatus.STOPPED}

    # sana_orders delivers to FTP with a password variable (every 30 minutes), apparel21_customers to
    # SFTP with a key file (daily at 02:00 Sydney): a tick of each after the demo data ends.
    next_day = demo_data_end().astimezone(SYDNEY).date() + dt.timedelta(days=1)
    ticks = {"sana_orders": dt.datetime.combine(next_day, dt.time(6), dt.UTC), "apparel21_customers": dt.datetime.combine(next_day, dt.time(2), SYDNEY)}
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        for name, connection in (("sana_orders", "sana_ftp"), ("apparel21_customers", "partner_sftp")):
            schedule = defs.resolve_schedule_def(f"{name}_schedule")
            context = dg.build_schedule_context(instance=instance, scheduled_execution_time=ticks[name])
            [request] = schedule.evaluate_tick(context).run_requests
            result = defs.resolve_job_def(f"{name}_job").execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
            assert result.success, name
            [materialization, *_] = result.get_asset_materialization_events()
            metadata = materialization.materialization.metadata
            assert metadata["target"].value.startswith(f"download (redirected from {connection}:")
            folder = Path(instance.storage_directory()) / "downloads" / name
            assert metadata["location"].value == str(folder)
            assert sorted(p.name for p in folder.iterdir()) == metadata["file_names"].value


@pytest.mark.parametrize(
    "value, bundled, redirected",
    [(None, True, True), ("0", True, False), (None, False, False), ("1", False, True), ("on", False, True), ("false", True, False)],
)
def test_the_environment_turns_redirection_on_and_off(tmp_path, monkeypatch, value, bundled, redirected):
    if value is None:
        monkeypatch.delenv(REDIRECT_ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(REDIRECT_ENV_VAR, value)
    spec = {"name": "mailed", "model": "customers", "fields": ["id"], "notify": {"on_failure": ["ops@example.com"]}}
    mail = {"connections": {"ops_mail": {"type": "smtp", "host": "127.0.0.1", "port": 2525, "security": "none", "sender": "x@example.com"}}}
    root = bundled_demo_config() if bundled else write_config(tmp_path / "config", [spec], connections=mail)
    config = load_config(root)
    assert not config.problems, [str(problem) for problem in config.problems]
    defs = build_definitions(config)
    assert defs.resources["delivery_settings"].redirect_to_download is redirected
    expected = dg.DefaultSensorStatus.STOPPED if redirected else dg.DefaultSensorStatus.RUNNING
    assert mail_sensor_statuses(defs) == {expected}


def test_an_unknown_switch_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(REDIRECT_ENV_VAR, "maybe")
    with pytest.raises(ValueError, match=f"{REDIRECT_ENV_VAR}='maybe' is not a switch value: write 1, .* or off"):
        build_definitions(load_config(bundled_demo_config()))
