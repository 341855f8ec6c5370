"""connections.yaml: named delivery targets and mail servers.

Secrets are never literal in the file: a secret key holds `{env: VARIABLE}`, to be read
from the environment when a run needs it, so neither files nor logs carry the value.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import typing
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator


class EnvSecret(BaseModel):
    """A reference to an environment variable holding a secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str

    @field_validator("env")
    @classmethod
    def _variable_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            # Not quoted: a value that is no variable name is most likely the secret itself, written in by mistake.
            raise ValueError(
                "is not an environment variable name (the value is not shown: it may be the secret itself); "
                "write the variable's name: letters, digits and _, not starting with a digit"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _never_literal(cls, value):
        if not isinstance(value, dict):
            # The message must not echo the value: it may be the secret itself.
            raise ValueError("secrets are never written in connections.yaml; write {env: VARIABLE_NAME} and set that variable")
        return value

    def read(self, connection: str, key: str) -> str:
        """The secret's value, read at the moment a run needs it."""
        value = os.environ.get(self.env)
        if not value:
            raise MissingSecretError(
                f"connection {connection!r} reads {key} from the environment variable {self.env}, which is not set "
                f"in the run's environment; set it where the code location runs (e.g. in the deployment's secrets)"
            )
        return value


class MissingSecretError(RuntimeError):
    """The message names the connection and the variable, never a value."""


def _root_folder(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.strip("/") and value != "/":
        raise ValueError("root must name a folder, e.g. /srv/exports, or / for the whole server")
    if any(part == ".." for part in value.split("/")) or re.search(r"[\x00-\x1f\\]", value):
        raise ValueError("root must not contain '..' segments, backslashes or control characters")
    return value


RootFolder = Annotated[
    str | None,
    AfterValidator(_root_folder),
    Field(
        default=None,
        description="The folder every path of this connection stays inside (absolute, or relative to the login "
        "folder); the login folder when unset. A path leading outside it, by .. or a link, is refused.",
    ),
]


def _host_name(value: str) -> str:
    """A server's DNS name or IP address, alone. Raises ValueError without quoting the value: a
    `user:password@host` or a URL written here would otherwise put its credentials in the message."""
    text = value.strip()
    alone = bool(text) and not re.search(r"[@/\\\s]", text)
    if alone and ":" in text:  # only an IPv6 address has colons; a port goes in `port`
        try:
            ipaddress.IPv6Address(text.strip("[]"))
            text = text.strip("[]")
        except ValueError:
            alone = False
    if not alone:
        raise ValueError(
            "is not a host name (the value is not shown: it may hold credentials); write the server's name or "
            "address alone, e.g. sftp.partner.example: the user goes in username, the password in "
            "password: {env: VARIABLE}, the port in port and the folder in the export's target path"
        )
    return text


HostName = Annotated[str, AfterValidator(_host_name)]


def check_bucket_name(value: str) -> str:
    """An S3 bucket name as AWS defines it: 3-63 characters of lower-case letters, digits, dots and
    hyphens, starting and ending with a letter or digit, no `..` (docs.aws.amazon.com, "Bucket naming
    rules"). S3-compatible stores (MinIO, Ceph) follow the same rule."""
    if "/" in value:
        raise ValueError(
            f"{value!r} holds a '/': the bucket is its name alone; put the folder in the connection's prefix "
            "or the export's target path"
        )
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value) or ".." in value:
        raise ValueError(
            f"{value!r} is not an S3 bucket name: 3 to 63 lower-case letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit"
        )
    return value


class _Connection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_seconds: float = Field(default=30.0, gt=0)


class SftpConnection(_Connection):
    type: Literal["sftp"]
    host: HostName
    port: int = Field(default=22, gt=0, lt=65536)
    username: str
    root: RootFolder
    password: EnvSecret | None = None
    private_key_path: str | None = Field(default=None, description="Ed25519, ECDSA or RSA key in OpenSSH or PEM format.")
    private_key_passphrase: EnvSecret | None = None
    known_hosts_path: str | None = Field(default=None, description="OpenSSH known_hosts; [host]:port entries for other ports.")
    host_key_fingerprint: str | None = Field(
        default=None, pattern=r"^SHA256:[A-Za-z0-9+/]{43}=?$", description="As `ssh-keygen -lf` prints it: SHA256:..."
    )
    insecure_accept_any_host_key: bool = Field(
        default=False, description="Skip host key verification: anyone on the path can read the files. Tests only."
    )

    @model_validator(mode="after")
    def _authenticates_and_verifies(self) -> SftpConnection:
        # Verification first: when another key is set aside for its own problem (a literal password),
        # the checks that do not read it still run in the same pass (problems.every_layer).
        pinned = self.known_hosts_path is not None or self.host_key_fingerprint is not None
        if not pinned and not self.insecure_accept_any_host_key:
            raise ValueError(
                "an sftp connection must verify the server: set known_hosts_path or host_key_fingerprint "
                "(`ssh-keyscan -p PORT HOST | ssh-keygen -lf -` prints it)"
            )
        if pinned and self.insecure_accept_any_host_key:
            raise ValueError("insecure_accept_any_host_key contradicts known_hosts_path/host_key_fingerprint; drop one")
        if self.password is None and self.private_key_path is None:
            raise ValueError("an sftp connection needs password: {env: VAR} or private_key_path")
        if self.private_key_passphrase is not None and self.private_key_path is None:
            raise ValueError("private_key_passphrase is set but private_key_path is not")
        return self


class FtpConnection(_Connection):
    type: Literal["ftp", "ftps"]
    host: HostName
    port: int = Field(default=21, gt=0, lt=65536)
    username: str
    root: RootFolder
    password: EnvSecret | None = None
    passive: bool = True
    ca_file: str | None = Field(default=None, description="CA bundle that signs the FTPS server's certificate.")

    @model_validator(mode="after")
    def _ca_only_for_tls(self) -> FtpConnection:
        if self.ca_file is not None and self.type != "ftps":
            raise ValueError("ca_file applies to ftps only; plain ftp has no certificate")
        return self


class S3Connection(_Connection):
    type: Literal["s3"]
    bucket: Annotated[str, AfterValidator(check_bucket_name)]
    region_name: str | None = None
    endpoint_url: str | None = Field(default=None, description="For S3-compatible stores (MinIO, Ceph, moto).")
    access_key_id: EnvSecret | None = None
    secret_access_key: EnvSecret | None = None
    prefix: str = Field(default="", description="Key prefix in front of every target path.")
    server_side_encryption: Literal["AES256", "aws:kms"] | None = None
    kms_key_id: str | None = None
    multipart_threshold_mb: int = Field(default=64, ge=5, le=5_000)
    max_attempts: int = Field(default=5, ge=1, le=20, description="Attempts per request, retries included (botocore).")
    presigned_url_seconds: int | None = Field(default=None, gt=0, le=604_800)

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> S3Connection:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither to use the default AWS chain")
        if self.kms_key_id is not None and self.server_side_encryption != "aws:kms":
            raise ValueError("kms_key_id needs server_side_encryption: aws:kms")
        return self


class SmtpConnection(_Connection):
    type: Literal["smtp"]
    host: HostName
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: EnvSecret | None = None
    sender: str
    ca_file: str | None = Field(default=None, description="CA bundle for the server's certificate (starttls, ssl).")


DeliveryConnection = SftpConnection | FtpConnection | S3Connection
Connection = Annotated[
    SftpConnection | FtpConnection | S3Connection | SmtpConnection, Field(discriminator="type")
]
DELIVERY_TYPES: frozenset[str] = frozenset({"sftp", "ftp", "ftps", "s3"})


SECRET_KEYS: frozenset[str] = frozenset(
    name
    for model in (SftpConnection, FtpConnection, S3Connection, SmtpConnection)
    for name, info in model.model_fields.items()
    if EnvSecret in typing.get_args(info.annotation)
)


def is_secret_key(key: str) -> bool:
    """Whether a key of connections.yaml may hold a secret: a secret key, a misspelling of one, or a
    name that says so (`pasword`, `api_token`): its value is never quoted in a message."""
    return (
        key in SECRET_KEYS
        or bool(re.search(r"pass|secret|token|credential|access_key", key, re.IGNORECASE))
        or bool(difflib.get_close_matches(key, SECRET_KEYS, n=1, cutoff=0.8))
    )


class ConnectionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connections: dict[str, Connection] = {}
