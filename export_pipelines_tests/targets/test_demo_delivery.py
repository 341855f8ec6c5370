"""The bundled demo config delivers to every server kind, end to end through Dagster.

The demo's connections.yaml is rewritten to point at the suite's servers (same names); the
specs are the bundled ones. What the partner receives must be what the download target
holds for the same export, complete, verified, and with no secret anywhere in the run.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import dagster as dg
import pytest
import yaml

from export_pipelines.automation.windows import latest_windows, partitions_for, range_tags
from export_pipelines.delivery_settings import DeliverySettings
from export_pipelines.demo.generator import demo_data_end, generate_demo_database
from export_pipelines.factory import build_export_asset
from export_pipelines.source import SourceDatabase
from export_pipelines.spec.export import ConnectionTarget
from export_pipelines.spec.loader import bundled_demo_config, load_config
from export_pipelines.targets.registry import DELIVERABLE_TYPES
from export_pipelines_tests.servers.fixtures import s3_client

SECRETS = {
    "PARTNER_SFTP_KEY_PASSPHRASE": None,  # the test RSA key's passphrase, set below
    "ANTAVO_FTPS_PASSWORD": None,
    "SANA_FTP_PASSWORD": None,
    "EXPORTS_AWS_ACCESS_KEY_ID": "AKIADEMOTESTKEY00001",
    "EXPORTS_AWS_SECRET_ACCESS_KEY": "demo-secret-access-key-never-logged",
}


def decompressed(name: str, content: bytes) -> bytes:
    if name.endswith(".gz"):
        return gzip.decompress(content)
    if name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            [member] = archive.namelist()
            return archive.read(member)
    return content


@pytest.fixture
def demo_config(tmp_path, sshd, vsftpd_plain, vsftpd_tls, certificates, moto_endpoint, test_user, monkeypatch):
    config = tmp_path / "config"
    shutil.copytree(bundled_demo_config(), config)
    connections = yaml.safe_load((config / "connections.yaml").read_text())["connections"]
    connections["partner_sftp"].update(host=sshd.host, port=sshd.port, username=sshd.user, private_key_path=str(sshd.rsa_key),
                                       known_hosts_path=str(sshd.known_hosts))
    connections["antavo_ftps"].update(host=vsftpd_tls.host, port=vsftpd_tls.port, username=test_user[0], ca_file=str(certificates.ca_file))
    connections["sana_ftp"].update(host=vsftpd_plain.host, port=vsftpd_plain.port, username=test_user[0])
    bucket = f"demo-exports-{tmp_path.name[-12:].lower().replace('_', '-')}".strip("-")
    connections["exports_bucket"].update(endpoint_url=moto_endpoint, bucket=bucket)
    (config / "connections.yaml").write_text(yaml.safe_dump({"connections": connections}))
    s3_client(moto_endpoint).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})

    secrets = {**SECRETS, "PARTNER_SFTP_KEY_PASSPHRASE": sshd.rsa_passphrase, "ANTAVO_FTPS_PASSWORD": test_user[1], "SANA_FTP_PASSWORD": test_user[1]}
    for variable, value in secrets.items():
        monkeypatch.setenv(variable, value)
    home = test_user[2]
    for folder in ("outbox", "antavo", "sana"):
        shutil.rmtree(home / folder, ignore_errors=True)
    yield config, bucket, secrets
    for folder in ("outbox", "antavo", "sana"):
        shutil.rmtree(home / folder, ignore_errors=True)


def remote_bytes(location: str, home: Path, moto_endpoint: str) -> bytes:
    scheme, rest = location.split("://", 1)
    if scheme == "s3":
        bucket, key = rest.split("/", 1)
        return s3_client(moto_endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
    relative = rest.split("/", 1)[1]  # after user@host:port
    return (home / relative).read_bytes()


def test_every_demo_export_with_a_connection_delivers_what_the_download_target_holds(demo_config, tmp_path, test_user, moto_endpoint):
    config_folder, bucket, secrets = demo_config
    config = load_config(config_folder)
    assert not config.problems, [str(p) for p in config.problems]
    delivering = {name: plan for name, plan in config.plans.items() if isinstance(plan.spec.target, ConnectionTarget)}
    kinds = {config.connections.connections[plan.spec.target.connection].type for plan in delivering.values()}
    assert kinds == DELIVERABLE_TYPES  # the demo shows one export per server kind

    source_url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    generate_demo_database(source_url, customers=150, seed=7)
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        results = {False: {}, True: {}}
        for redirect in (False, True):
            resources = {"source_database": SourceDatabase(url=source_url), "delivery_settings": DeliverySettings(redirect_to_download=redirect)}
            for name, plan in delivering.items():
                # Partitioned exports run over their latest week of the demo data, as `make demo` does.
                partitions = partitions_for(plan.spec.incremental)
                tags = range_tags(latest_windows(partitions, demo_data_end(), count=7)) if partitions else None
                asset = build_export_asset(plan, config.connections.connections)
                results[redirect][name] = dg.materialize([asset], resources=resources, instance=instance, tags=tags)
        logs = "\n".join(
            str(entry.user_message) + str(entry.dagster_event)
            for by_name in results.values()
            for result in by_name.values()
            for entry in instance.all_logs(result.run_id)
        )

    def last_materialization(result: dg.ExecuteInProcessResult) -> dg.AssetMaterialization:
        return result.get_asset_materialization_events()[-1].materialization  # a range run records one per window

    for name in delivering:
        metadata = {key: value.value for key, value in last_materialization(results[False][name]).metadata.items()}
        local = last_materialization(results[True][name])
        local_folder = Path(local.metadata["location"].value)
        local_names = local.metadata["file_names"].value
        assert metadata["connection"] == delivering[name].spec.target.connection
        delimiter = {"csv": ",", "psv": "|"}[delivering[name].spec.format]
        rows = 0
        for record, local_name in zip(metadata["files"].records, local_names, strict=True):
            content = remote_bytes(record.data["location"], test_user[2], moto_endpoint)
            assert hashlib.sha256(content).hexdigest() == record.data["sha256"], name
            assert len(content) == record.data["bytes"]
            text = decompressed(record.data["name"], content)
            assert text == decompressed(local_name, (local_folder / local_name).read_bytes()), name
            rows += len(list(csv.reader(io.StringIO(text.decode(), newline=""), delimiter=delimiter))) - 1  # minus the header
        assert rows == metadata["rows_expected"] > 0, name

    assert any("download_urls" in last_materialization(result).metadata for result in results[False].values())
    # The access key id is an identifier, not a secret: AWS puts it into every presigned URL,
    # which the exports_bucket connection asks for. Every secret proper stays out of the run.
    for variable, value in secrets.items():
        if variable != "EXPORTS_AWS_ACCESS_KEY_ID":
            assert value not in logs, variable
