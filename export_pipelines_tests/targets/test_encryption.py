"""OpenPGP: what an export delivers encrypted is what the partner's own gpg decrypts and verifies.

Keys are made and files decrypted with the `gpg` command in a keyring of the test's own, never
through the code under test; the expected plaintext comes from plain SQL.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from export_pipelines.source import SOURCE_URL_ENV_VAR
from export_pipelines.spec.loader import CONFIG_ENV_VAR, load_config
from export_pipelines.targets.registry import downloads_folder
from export_pipelines_tests.automation.reexecution_target import JOB_EXPORT_ENV_VAR, in_process_export_job, load_edited_config
from export_pipelines_tests.conftest import run_export, write_config
from export_pipelines_tests.sample_data import create_sample_tables
from export_pipelines_tests.stage_runs import decompressed

PASSPHRASE = "correct horse battery staple"


@dataclass(frozen=True)
class Keys:
    home: str  # the partner's keyring: the partner's secret key, our public key
    partner: Path
    partner_fingerprint: str
    ours_secret: Path
    ours_fingerprint: str
    expired: Path
    revoked: Path

    def gpg(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["gpg", "--homedir", self.home, "--batch", *args], input=data, capture_output=True, check=False)


def _generate(home: str, uid: str, *extra: str, passphrase: str = "") -> str:
    subprocess.run(["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", passphrase, *extra,
                    "--quick-gen-key", uid, "future-default", "default", "1d" if extra else "never"], check=True, capture_output=True)
    listing = subprocess.run(["gpg", "--homedir", home, "--batch", "--with-colons", "--list-keys", uid], check=True, capture_output=True, text=True)
    return next(line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr:"))


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> Keys:
    folder = tmp_path_factory.mktemp("pgp")
    home = tempfile.mkdtemp(prefix="gk-")  # short: gpg-agent's socket lives in it
    partner = _generate(home, "Partner <partner@example.com>")
    ours = _generate(home, "Exporter <exports@example.com>", passphrase=PASSPHRASE)
    expired = _generate(home, "Old <old@example.com>", "--faked-system-time", "20200101T000000!")
    revoked = _generate(home, "Gone <gone@example.com>")
    certificate = (Path(home) / "openpgp-revocs.d" / f"{revoked}.rev").read_text().replace(":-----BEGIN", "-----BEGIN")
    subprocess.run(["gpg", "--homedir", home, "--batch", "--import"], input=certificate.encode(), check=True, capture_output=True)

    def export(name: str, *args: str) -> Path:
        path = folder / name
        path.write_bytes(subprocess.run(["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", PASSPHRASE,
                                         "--armor", *args], check=True, capture_output=True).stdout)
        return path

    made = Keys(home, export("partner.asc", "--export", partner), partner, export("ours-secret.asc", "--export-secret-keys", ours), ours,
                export("old.asc", "--export", expired), export("gone.asc", "--export", revoked))
    yield made
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
    shutil.rmtree(home, ignore_errors=True)


def _config_keys(tmp_path: Path, *files: Path) -> None:
    (tmp_path / "config" / "keys").mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, tmp_path / "config" / "keys" / path.name)


def _customers_csv(source: str) -> bytes:
    with sa.create_engine(source).connect() as connection:
        rows = connection.execute(sa.text("SELECT id, email FROM customers ORDER BY id")).all()
    return "".join(f"{line}\r\n" for line in ["id,email", *(f"{i},{e or ''}" for i, e in rows)]).encode()


def test_the_partner_decrypts_and_verifies_what_was_delivered(partner, keys, tmp_path, monkeypatch):
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    _config_keys(tmp_path, keys.partner)
    monkeypatch.setenv("EXPORT_SIGNING_PASSPHRASE", PASSPHRASE)
    spec = {"name": "secret_customers", "model": "customers", "fields": ["id", "email"], "order": ["id"], "compression": "gzip",
            "encrypt": {"recipients": ["keys/partner.asc"],
                        "sign_with": {"key_file": str(keys.ours_secret), "passphrase": {"env": "EXPORT_SIGNING_PASSPHRASE"}}},
            "target": {"connection": "partner", "path": partner.folder, "finish_with": "manifest"}}

    run = run_export(spec, source, tmp_path, connections={"connections": {"partner": partner.connection}})

    [delivered] = run.metadata["file_names"]
    assert delivered.startswith("secret_customers_") and delivered.endswith(".csv.gz.pgp")
    ciphertext = partner.read(delivered)
    assert not ciphertext.startswith(b"\x1f\x8b")  # not the gzip stream itself
    decrypted = keys.gpg("--status-fd", "2", "--decrypt", data=ciphertext)
    assert decrypted.returncode == 0, decrypted.stderr
    assert f"[GNUPG:] VALIDSIG {keys.ours_fingerprint}".encode() in decrypted.stderr
    assert gzip.decompress(decrypted.stdout) == _customers_csv(source)
    manifest_name = next(name for name in partner.names() if name.endswith(".manifest.json"))
    [entry] = json.loads(partner.read(manifest_name))["files"]
    assert entry["name"] == delivered
    assert entry["sha256"] == hashlib.sha256(ciphertext).hexdigest()
    assert entry["plaintext_sha256"] == hashlib.sha256(decrypted.stdout).hexdigest()
    assert run.metadata["plaintext_sha256"] == {delivered: entry["plaintext_sha256"]}
    assert PASSPHRASE not in repr(run.metadata)


@pytest.mark.parametrize("partner", ["sftp"], indirect=True)
def test_a_fingerprint_names_a_key_in_the_keys_folder_and_armor_is_text(partner, keys, tmp_path):
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    _config_keys(tmp_path, keys.partner, keys.expired)  # another key beside it, not named, is not used
    spec = {"name": "armored", "model": "customers", "fields": ["id", "email"], "order": ["id"], "file_name": "customers.csv",
            "encrypt": {"recipients": [keys.partner_fingerprint.lower()], "armor": True, "extension": "gpg"},
            "target": {"connection": "partner", "path": partner.folder}}
    run = run_export(spec, source, tmp_path, connections={"connections": {"partner": partner.connection}})
    assert run.metadata["file_names"] == ["customers.csv.gpg"]
    ciphertext = partner.read("customers.csv.gpg")
    assert ciphertext.startswith(b"-----BEGIN PGP MESSAGE-----")
    assert keys.gpg("--decrypt", data=ciphertext).stdout == _customers_csv(source)


@pytest.mark.parametrize("partner", ["sftp"], indirect=True)
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("expired", "the recipient key {config}/keys/old.asc is expired on "),
        ("revoked", "the recipient key {config}/keys/gone.asc is revoked"),
        ("secret_as_recipient", "{config}/keys/ours-secret.asc holds a secret key; a recipient is the partner's public key"),
        ("not_a_key", "{config}/keys/notes.asc holds no OpenPGP key"),
        ("wrong_passphrase", "the passphrase of the signing key {ours} is wrong"),
        ("unset_passphrase", "encrypt.sign_with.passphrase reads the environment variable EXPORT_SIGNING_PASSPHRASE, which is not set"),
        ("unknown_fingerprint", "no public key with fingerprint 0123456789ABCDEF0123456789ABCDEF01234567 in {config}/keys"),
    ],
)
def test_an_unusable_key_fails_before_any_upload(partner, keys, tmp_path, monkeypatch, case, message):
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    _config_keys(tmp_path, keys.partner, keys.expired, keys.revoked, keys.ours_secret)
    (tmp_path / "config" / "keys" / "notes.asc").write_text("not a key\n")
    recipient = {"expired": "keys/old.asc", "revoked": "keys/gone.asc", "secret_as_recipient": "keys/ours-secret.asc",
                 "not_a_key": "keys/notes.asc", "unknown_fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567"}.get(case, "keys/partner.asc")
    monkeypatch.setenv("EXPORT_SIGNING_PASSPHRASE", "wrong" if case == "wrong_passphrase" else PASSPHRASE)
    if case == "unset_passphrase":
        monkeypatch.delenv("EXPORT_SIGNING_PASSPHRASE")
    spec = {"name": "refused", "model": "customers", "fields": ["id"], "order": ["id"],
            "encrypt": {"recipients": [recipient], "sign_with": {"key_file": str(keys.ours_secret), "passphrase": {"env": "EXPORT_SIGNING_PASSPHRASE"}}},
            "target": {"connection": "partner", "path": partner.folder}}

    run = run_export(spec, source, tmp_path, connections={"connections": {"partner": partner.connection}}, raise_on_error=False)

    assert not run.result.success
    [failure] = [event.step_failure_data.error.message for event in run.result.get_step_failure_events()]
    config = (tmp_path / "config").resolve()
    assert f"For export refused, {message.format(config=config, ours=keys.ours_secret)}" in failure
    assert "-----BEGIN" not in failure and PASSPHRASE not in failure
    assert partner.names() == []
    # One attempt: a key does not get better by retrying.
    assert len(run.result.get_step_failure_events()) == 1


@pytest.mark.parametrize(
    ("encrypt", "key_path", "message"),
    [
        ({"recipients": ["keys/missing.asc"]}, "encrypt.recipients[0]", "'keys/missing.asc' does not exist in the config folder"),
        ({"recipients": ["../partner.asc"]}, "encrypt.recipients[0]", "must be a key file inside the config folder"),
        ({"recipients": []}, "encrypt.recipients", "at least 1 item"),
        ({"recipients": ["0123456789ABCDEF0123456789ABCDEF01234567"]}, "encrypt.recipients[0]", "keys/ folder, which does not exist"),
        ({"recipients": ["keys/a.asc"], "sign_with": {"key_file": "k.asc", "passphrase": "hunter2"}}, "encrypt.sign_with.passphrase",
         "a passphrase is never written in a spec"),
        ({"recipients": ["keys/a.asc"], "extension": "asc"}, "encrypt.extension", "one of: pgp, gpg"),
    ],
)
def test_encryption_mistakes_are_named_at_load(tmp_path, encrypt, key_path, message):
    spec = {"name": "bad", "model": "customers", "fields": ["id"], "encrypt": encrypt}
    config = load_config(write_config(tmp_path, [spec]))
    [problem] = config.problems
    assert (problem.key_path, message in problem.message) == (key_path, True), problem
    assert "hunter2" not in str(problem)


@pytest.mark.parametrize(("file_format", "compression"), [("parquet", "gzip"), ("jsonl", "zstd")])
def test_other_formats_are_delivered_and_encrypted_like_csv(partner, keys, tmp_path, file_format, compression):
    """Parquet and JSON Lines, compressed (gzip, zstd) and encrypted, on each server: the partner's gpg, gzip or zstd
    tool and pyarrow/json read them back."""
    import decimal
    import io

    import pyarrow.parquet as pq

    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    _config_keys(tmp_path, keys.partner)
    spec = {"name": f"typed_{file_format}", "model": "customers", "fields": ["id", "email"], "order": ["id"], "format": file_format,
            "compression": compression, "encrypt": {"recipients": ["keys/partner.asc"]}, "target": {"connection": "partner", "path": partner.folder}}
    run = run_export(spec, source, tmp_path, connections={"connections": {"partner": partner.connection}})
    [delivered] = run.metadata["file_names"]
    suffix = {"gzip": "gz", "zstd": "zst"}[compression]
    assert delivered.endswith(f".{file_format}.{suffix}.pgp")
    plain = decompressed(keys.gpg("--decrypt", data=partner.read(delivered)).stdout, compression)
    with sa.create_engine(source).connect() as connection:
        expected = [{"id": i, "email": e} for i, e in connection.execute(sa.text("SELECT id, email FROM customers ORDER BY id"))]
    if file_format == "parquet":
        assert pq.read_table(io.BytesIO(plain)).to_pylist() == expected
    else:
        assert [json.loads(line, parse_float=decimal.Decimal) for line in plain.decode().splitlines()] == expected



def _customers_csv_quoted(source: str) -> bytes:
    """The same rows as _customers_csv in the edited dialect below: `;`, every value quoted, NULL as nothing."""
    with sa.create_engine(source).connect() as connection:
        rows = connection.execute(sa.text("SELECT id, email FROM customers ORDER BY id")).all()
    quoted = lambda value: '"' + str(value).replace('"', '""') + '"'  # noqa: E731
    return "".join(f"{line}\r\n" for line in ['"id";"email"', *(f"{quoted(i)};{quoted(e) if e is not None else ''}" for i, e in rows)]).encode()


@pytest.mark.parametrize("edit", [None, {"delimiter": ";", "quoting": "all"}], ids=["spec_unchanged", "dialect_edited"])
def test_serialize_re_executed_alone_writes_the_lines_the_failed_run_formatted(keys, tmp_path, monkeypatch, edit):
    """The extract formats the rows as the file's lines while it reads (stages/lines_alongside.py); when serialize
    fails after it (here: the signing passphrase is not set), a re-execution from failure runs serialize and upload
    only, from the lines file the first run left, and delivers the file plain SQL gives. When the spec's dialect was
    edited with the fix, serialize formats the rows again by the new spec instead of writing the old lines."""
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    create_sample_tables(source)
    spec = {"name": "signed_later", "model": "customers", "fields": ["id", "email"], "order": ["id"], "file_name": "signed.{ext}",
            "encrypt": {"recipients": ["keys/partner.asc"],
                        "sign_with": {"key_file": str(keys.ours_secret), "passphrase": {"env": "EXPORT_SIGNING_PASSPHRASE"}}}}
    monkeypatch.setenv(CONFIG_ENV_VAR, str(write_config(tmp_path / "config", [spec])))
    _config_keys(tmp_path, keys.partner)
    monkeypatch.setenv(SOURCE_URL_ENV_VAR, source)
    monkeypatch.setenv(JOB_EXPORT_ENV_VAR, "signed_later")
    monkeypatch.delenv("EXPORT_SIGNING_PASSPHRASE", raising=False)
    job = dg.reconstructable(in_process_export_job)
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        with dg.execute_job(job, instance=instance, raise_on_error=False) as first:
            assert not first.success
            [failed] = [event.step_key.rsplit("__", 1)[1] for event in first.all_events if event.is_step_failure]
            assert failed == "serialize"
        first_work = Path(instance.storage_directory()) / "export_work" / first.run_id / "signed_later"
        assert (first_work / "lines.arrow").is_file() and not (first_work / "mapped.arrow").exists()

        monkeypatch.setenv("EXPORT_SIGNING_PASSPHRASE", PASSPHRASE)
        if edit is not None:
            write_config(tmp_path / "config", [{**spec, **edit}])
            load_edited_config()
        options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
        with dg.execute_job(job, instance=instance, reexecution_options=options) as rerun:
            assert rerun.success
            records = instance.get_records_for_run(rerun.run_id, of_type=dg.DagsterEventType.STEP_START).records
            started = [record.event_log_entry.dagster_event.step_key.rsplit("__", 1)[1] for record in records]
        delivered = (downloads_folder(Path(instance.storage_directory()), "signed_later") / "signed.csv.pgp").read_bytes()
    assert started == ["serialize", "upload"]
    decrypted = keys.gpg("--decrypt", data=delivered)
    assert decrypted.returncode == 0, decrypted.stderr
    assert decrypted.stdout == (_customers_csv(source) if edit is None else _customers_csv_quoted(source))
    # Delivered: the first run's work files, the lines among them, are gone.
    assert not first_work.exists()
