"""OpenPGP encryption (and signing) of finished files, for partners whose drop folder is untrusted storage.

GnuPG does the cryptography, driven by python-gnupg: Debian's `gpg` is the implementation
partners decrypt with, and python-gnupg streams a file through it (no file in memory), where
pysequoia's API takes and returns whole byte strings. Every run imports its keys into a
private keyring in a fresh temporary folder, never the user's ~/.gnupg, and removes it (and
the gpg-agent it started) afterwards.

Every key is checked before a byte is encrypted: a recipient key that is missing, expired,
revoked, unable to encrypt, or a secret key where a public one belongs, and a wrong
passphrase, raise EncryptionError naming the key file or fingerprint, never key material
or the passphrase.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from export_pipelines.lazy_imports import gnupg
from export_pipelines.targets.base import LocalFile

HASH_CHUNK_BYTES = 1 << 20
# GnuPG's validity letters (the colon listing's field 2), as python-gnupg reports them in `trust`.
UNUSABLE_VALIDITY = {"e": "expired", "r": "revoked", "i": "invalid", "d": "disabled"}


class EncryptionError(RuntimeError):
    """A permanent problem with a key or passphrase: retrying cannot fix it."""


@dataclass(frozen=True)
class EncryptionKeys:
    """The keys of one export's encryption. `passphrase` is the signing key's, read from its variable at run time."""

    recipient_files: tuple[Path, ...]
    recipient_fingerprints: tuple[str, ...]
    keys_folder: Path
    signing_key_file: Path | None
    passphrase: str | None = field(repr=False)
    armor: bool


@contextmanager
def private_keyring() -> Iterator[gnupg.GPG]:
    """A GnuPG home of its own; its path is short because gpg-agent puts its socket there (108-byte limit)."""
    home = tempfile.mkdtemp(prefix="gpg-")
    try:
        try:
            gpg = gnupg.GPG(gnupghome=home)
        except OSError as error:
            raise EncryptionError(f"gpg (GnuPG) cannot be run on this machine ({error}); install Debian's gnupg package") from None
        yield gpg
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def encrypt_files(files: Sequence[LocalFile], keys: EncryptionKeys, delivered_names: Sequence[str]) -> list[LocalFile]:
    """Each file encrypted to every recipient (and signed) under its delivered name (delivered_names, in
    the files' order); the plaintext is deleted.

    The returned files describe the encrypted bytes (size, sha256) and keep the plaintext's sha256.
    Raises EncryptionError before anything is encrypted when a key or the passphrase is unusable.
    """
    with private_keyring() as gpg:
        recipients = _recipients(gpg, keys)
        signer = _signer(gpg, keys)
        encrypted = []
        try:
            for plain, name in zip(files, delivered_names, strict=True):
                destination = plain.path.with_name(name)
                with plain.path.open("rb") as source:
                    result = gpg.encrypt_file(
                        source, recipients, sign=signer, passphrase=keys.passphrase if signer else None,
                        # The key files are the trust anchor: a fresh keyring has no web of trust to consult.
                        always_trust=True, armor=keys.armor, output=str(destination),
                    )
                if not result.ok:
                    raise EncryptionError(f"gpg could not encrypt {plain.name}: {result.status or _last_line(result.stderr)}")
                size, digest = _size_and_sha256(destination)
                encrypted.append(LocalFile(destination, plain.rows, size, digest, plaintext_sha256=plain.sha256))
                plain.path.unlink()
        except BaseException:
            for written in encrypted:
                written.path.unlink(missing_ok=True)
            raise
    return encrypted


def _recipients(gpg: gnupg.GPG, keys: EncryptionKeys) -> list[str]:
    fingerprints = []
    for path in keys.recipient_files:
        found = _import(gpg, path, public=True)
        for fingerprint in found:
            _check_usable(gpg, fingerprint, str(path))
        fingerprints += found
    if keys.recipient_fingerprints:
        available = {}
        for path in sorted(keys.keys_folder.glob("*")) if keys.keys_folder.is_dir() else []:
            if path.is_file():
                for fingerprint in _import(gpg, path, public=True, strict=False):
                    available[fingerprint] = path
        for wanted in keys.recipient_fingerprints:
            if wanted not in available:
                raise EncryptionError(f"no public key with fingerprint {wanted} in {keys.keys_folder}; add the partner's key file there")
            _check_usable(gpg, wanted, f"{available[wanted]} (fingerprint {wanted})")
            fingerprints.append(wanted)
    return list(dict.fromkeys(fingerprints))


def _import(gpg: gnupg.GPG, path: Path, *, public: bool, strict: bool = True) -> list[str]:
    """The fingerprints of the keys `path` holds, imported into the keyring."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise EncryptionError(f"cannot read the key file {path}: {error.strerror}") from None
    result = gpg.import_keys(data)
    secret = int(result.sec_read or 0) > 0
    if public and secret:
        if not strict:
            return []
        raise EncryptionError(f"{path} holds a secret key; a recipient is the partner's public key (gpg --export --armor KEY)")
    if not public and not secret:
        raise EncryptionError(f"{path} holds no secret key; sign_with.key_file is our own secret key (gpg --export-secret-keys --armor KEY)")
    fingerprints = [f.upper() for f in dict.fromkeys(result.fingerprints) if f]
    if not fingerprints:
        if not strict:
            return []
        raise EncryptionError(f"{path} holds no OpenPGP key (an armored 'BEGIN PGP PUBLIC KEY BLOCK' or a binary key file)")
    return fingerprints


def _check_usable(gpg: gnupg.GPG, fingerprint: str, named: str) -> None:
    [key] = [k for k in gpg.list_keys() if k["fingerprint"].upper() == fingerprint]
    reason = UNUSABLE_VALIDITY.get(key.get("trust", ""))
    if reason == "expired" and key.get("expires"):
        reason = f"expired on {dt.datetime.fromtimestamp(int(key['expires']), dt.UTC):%Y-%m-%d}"
    if reason is None and "E" not in key.get("cap", ""):
        # An upper-case E: the key as a whole (primary or a subkey) can encrypt now; its subkeys may all have expired.
        reason = "unable to encrypt (no valid encryption subkey: expired, revoked or missing)"
    if reason is not None:
        raise EncryptionError(f"the recipient key {named} is {reason}; ask the partner for a current public key")


def _signer(gpg: gnupg.GPG, keys: EncryptionKeys) -> str | None:
    if keys.signing_key_file is None:
        return None
    [fingerprint, *_] = _import(gpg, keys.signing_key_file, public=False)
    # A wrong passphrase must fail here, before any file is encrypted, not in the middle of a file set.
    check = gpg.sign(b"passphrase check", keyid=fingerprint, passphrase=keys.passphrase, detach=True)
    if not check.data:
        if keys.passphrase is None and any(sign in (check.stderr or "") for sign in ("NEED_PASSPHRASE", "Inappropriate ioctl", "pinentry")):
            raise EncryptionError(
                f"the signing key {keys.signing_key_file} cannot sign without its passphrase; add "
                "sign_with.passphrase: {env: VARIABLE} and set that variable"
            )
        status = check.status or _last_line(check.stderr)
        if "bad passphrase" in status.lower() or "BAD_PASSPHRASE" in (check.stderr or "") or "No passphrase" in status:
            raise EncryptionError(f"the passphrase of the signing key {keys.signing_key_file} is wrong or not set")
        raise EncryptionError(f"the signing key {keys.signing_key_file} cannot sign: {status}")
    return fingerprint


def _last_line(stderr: str | None) -> str:
    lines = [line for line in (stderr or "").splitlines() if line and not line.startswith("[GNUPG:]")]
    return lines[-1] if lines else "no reason given"


def _size_and_sha256(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
