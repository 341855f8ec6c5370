"""An export's `encrypt:` keys resolved against the config folder: which key files, which fingerprints."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from export_pipelines.spec.connections import EnvSecret
from export_pipelines.spec.export import FINGERPRINT_PATTERN, ExportSpec
from export_pipelines.spec.plan import ExportPlan, PlanError
from export_pipelines.stages.encryption import EncryptionError, EncryptionKeys

KEYS_FOLDER = "keys"


@dataclass(frozen=True)
class EncryptionPlan:
    """What stages/encryption.py needs. Key files are read at run time: a key may expire between load and run."""

    recipient_files: tuple[Path, ...]
    recipient_fingerprints: tuple[str, ...]  # 40 upper-case hex digits, found among keys_folder's files at run time
    keys_folder: Path
    signing_key_file: Path | None
    passphrase: EnvSecret | None = field(repr=False)
    armor: bool


def resolve_encryption(spec: ExportSpec, config_root: Path) -> EncryptionPlan | None:
    """The spec's encryption, its key files checked to be in the config folder; raises ExceptionGroup of PlanError."""
    if spec.encrypt is None:
        return None
    root = config_root.resolve()
    files, fingerprints, problems = [], [], []
    for index, recipient in enumerate(spec.encrypt.recipients):
        key_path = f"encrypt.recipients[{index}]"
        if FINGERPRINT_PATTERN.match(recipient.replace(" ", "")):
            fingerprints.append(recipient.replace(" ", "").upper().removeprefix("0X"))
            if not (root / KEYS_FOLDER).is_dir():
                problems.append(PlanError(key_path, f"a fingerprint names a key in the config folder's {KEYS_FOLDER}/ folder, which does not exist"))
            continue
        path = (root / recipient).resolve()
        if Path(recipient).is_absolute() or not path.is_relative_to(root):
            problems.append(PlanError(key_path, f"{recipient!r} must be a key file inside the config folder, e.g. keys/partner.asc, or a 40-digit fingerprint"))
        elif not path.is_file():
            problems.append(PlanError(key_path, f"{recipient!r} does not exist in the config folder {root}"))
        else:
            files.append(path)
    if problems:
        raise ExceptionGroup("invalid encryption", problems)
    signing = spec.encrypt.sign_with
    return EncryptionPlan(
        recipient_files=tuple(files),
        recipient_fingerprints=tuple(fingerprints),
        keys_folder=root / KEYS_FOLDER,
        signing_key_file=Path(signing.key_file).expanduser() if signing else None,
        passphrase=signing.passphrase if signing else None,
        armor=spec.encrypt.armor,
    )


def encryption_keys(plan: ExportPlan) -> EncryptionKeys:
    """The plan's keys with the signing passphrase read from its variable now; raises EncryptionError if it is not set."""
    encryption = plan.encryption
    passphrase = None
    if encryption.passphrase is not None:
        passphrase = os.environ.get(encryption.passphrase.env)
        if not passphrase:
            raise EncryptionError(
                f"encrypt.sign_with.passphrase reads the environment variable {encryption.passphrase.env}, which is not set "
                "in the run's environment; set it where the code location runs"
            )
    return EncryptionKeys(
        encryption.recipient_files, encryption.recipient_fingerprints, encryption.keys_folder,
        encryption.signing_key_file, passphrase, encryption.armor,
    )


def plaintext_name(plan: ExportPlan, delivered_name: Callable[[int], str]) -> Callable[[int], str]:
    """Part number -> the name the plaintext is written under before encryption: the delivered name without
    .pgp, so a zip's entry is named after the CSV inside it."""
    suffix = f".{plan.spec.encrypt.extension}"

    def name(part: int) -> str:
        delivered = delivered_name(part)
        return delivered.removesuffix(suffix) if delivered.endswith(suffix) else f"{delivered}.plain"

    return name
