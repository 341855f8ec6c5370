"""connections.yaml: named delivery targets and mail servers.

Secrets are never literal in the file: a secret key holds `{env: VARIABLE}`, to be read
from the environment when a run needs it, so neither files nor logs carry the value.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EnvSecret(BaseModel):
    """A reference to an environment variable holding a secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="before")
    @classmethod
    def _never_literal(cls, value):
        if not isinstance(value, dict):
            # The message must not echo the value: it may be the secret itself.
            raise ValueError("secrets are never written in connections.yaml; write {env: VARIABLE_NAME} and set that variable")
        return value


class _Connection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_seconds: float = Field(default=30.0, gt=0)


class SftpConnection(_Connection):
    type: Literal["sftp"]
    host: str
    port: int = Field(default=22, gt=0, lt=65536)
    username: str
    password: EnvSecret | None = None
    private_key_path: str | None = None
    private_key_passphrase: EnvSecret | None = None
    known_hosts_path: str | None = None
    host_key_fingerprint: str | None = None
    insecure_accept_any_host_key: bool = False


class FtpConnection(_Connection):
    type: Literal["ftp", "ftps"]
    host: str
    port: int = Field(default=21, gt=0, lt=65536)
    username: str
    password: EnvSecret | None = None
    passive: bool = True
    ca_file: str | None = None


class S3Connection(_Connection):
    type: Literal["s3"]
    bucket: str
    region_name: str | None = None
    endpoint_url: str | None = None
    access_key_id: EnvSecret | None = None
    secret_access_key: EnvSecret | None = None
    prefix: str = ""
    server_side_encryption: Literal["AES256", "aws:kms"] | None = None
    presigned_url_seconds: int | None = Field(default=None, gt=0)


class SmtpConnection(_Connection):
    type: Literal["smtp"]
    host: str
    port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: EnvSecret | None = None
    sender: str


Connection = Annotated[
    SftpConnection | FtpConnection | S3Connection | SmtpConnection, Field(discriminator="type")
]
DELIVERY_TYPES: frozenset[str] = frozenset({"sftp", "ftp", "ftps", "s3"})


class ConnectionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connections: dict[str, Connection] = {}
