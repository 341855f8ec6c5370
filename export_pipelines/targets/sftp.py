"""SFTP through paramiko, with the server's host key verified before any secret is sent."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import posixpath
import socket
import stat
from pathlib import Path

import paramiko

from export_pipelines.spec.connections import SftpConnection
from export_pipelines.switches import SFTP_LARGE_WRITES_ENV_VAR, switch_from_environment
from export_pipelines.targets.base import DeliveryError, LocalFile
from export_pipelines.targets.known_hosts import KnownKeys, lookup_name, read_known_hosts
from export_pipelines.targets.remote import FolderSession, ListingRefused, RemoteEntry, display_folder


def fingerprint(key: paramiko.PKey) -> str:
    """The SHA256 fingerprint exactly as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# known_hosts names a key's type; SSH negotiates a host-key (signature) algorithm. The two are the
# same name except for RSA: its key type `ssh-rsa` is also the name of SHA-1 signatures, which
# OpenSSH 8.8+ servers and paramiko 3+ no longer use; an RSA key signs with RFC 8332's SHA-2 ones.
SIGNATURE_ALGORITHMS: dict[str, tuple[str, ...]] = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256")}


def host_key_algorithms(known_key_types: list[str], supported: tuple[str, ...]) -> tuple[str, ...]:
    """The host-key algorithms to offer, as OpenSSH's client orders them: those that verify a key
    known for this host first, then every other one this client supports (so that a server with
    only other keys presents one, and the refusal can name its fingerprint)."""
    known = [algorithm for key_type in known_key_types for algorithm in SIGNATURE_ALGORITHMS.get(key_type, (key_type,))]
    first = [algorithm for algorithm in supported if algorithm in known]
    return (*first, *(algorithm for algorithm in supported if algorithm not in first))


def _prefer_aead_ciphers(options: paramiko.SecurityOptions) -> None:
    # AES-GCM encrypts and authenticates in one pass (AES-NI, in C); paramiko's default, AES-CTR plus
    # a separate HMAC, costs a second pass over every byte. OpenSSH's own client prefers AEAD too.
    aead = tuple(c for c in options.ciphers if c.endswith("-gcm@openssh.com"))
    options.ciphers = aead + tuple(c for c in options.ciphers if c not in aead)


class HostKeyPolicy:
    """Decides whether the key a server presented is the one this connection expects."""

    def __init__(self, name: str, connection: SftpConnection):
        self.name = name
        self.connection = connection
        self.entry_name = lookup_name(connection.host, connection.port)
        self.known = KnownKeys()
        if connection.known_hosts_path:
            path = Path(connection.known_hosts_path).expanduser()
            try:
                self.known = read_known_hosts(path, connection.host, connection.port)
            except OSError as error:
                raise DeliveryError(f"cannot read known_hosts_path {path}: {error.strerror or error}") from error

    @property
    def known_key_types(self) -> list[str]:
        """The key types known_hosts holds for this host (`ssh-ed25519`, `ecdsa-sha2-nistp384`, `ssh-rsa`, ...)."""
        return self.known.key_types

    def check(self, key: paramiko.PKey) -> None:
        c = self.connection
        presented = f"{key.get_name()} {fingerprint(key)}"
        how_to_pin = (
            f"If you have confirmed with the server's operator that {presented} is its key, pin it: add "
            f"`host_key_fingerprint: {fingerprint(key)}` to connection {self.name!r}, or append the output of "
            f"`ssh-keyscan -p {c.port} {c.host}` to the known_hosts file."
        )
        if c.insecure_accept_any_host_key:
            return
        if self.known.is_revoked(key):
            raise DeliveryError(
                f"the server {self.entry_name} presented {presented}, which {c.known_hosts_path} marks @revoked; "
                f"refusing to connect (a revoked key is never accepted: ask the server's operator for its new key)"
            )
        if c.host_key_fingerprint is not None:
            if fingerprint(key) != c.host_key_fingerprint.rstrip("="):
                raise DeliveryError(
                    f"the server {self.entry_name} presented {presented}, not the pinned "
                    f"{c.host_key_fingerprint}; refusing to connect (the key changed, or someone is in between). {how_to_pin}"
                )
            return
        if self.known.accepts(key):
            return
        same_type = [known for known in self.known.keys if known.get_name() == key.get_name()]
        if same_type:
            listed = ", ".join(f"{known.get_name()} {fingerprint(known)}" for known in same_type)
            raise DeliveryError(
                f"HOST KEY CHANGED for {self.entry_name}: known_hosts has {listed}, the server presented {presented}; "
                f"refusing to connect (someone may be intercepting the connection). {how_to_pin}"
            )
        if not self.known.keys and self.known.authorities:
            raise DeliveryError(
                f"{c.known_hosts_path} has only @cert-authority lines for {self.entry_name}, and this client does not "
                f"verify host certificates (the server presented {presented}); refusing to connect. {how_to_pin}"
            )
        raise DeliveryError(
            f"the server {self.entry_name} is not in {c.known_hosts_path} "
            f"(it presented {presented}); refusing to connect to an unknown host. {how_to_pin}"
        )


OPENSSH_MAX_WRITE_BYTES = 255 * 1024
UPLOAD_READ_BYTES = 1 << 20


class SftpSession(FolderSession):
    def __init__(self, name: str, connection: SftpConnection, folder: str):
        super().__init__(connection.root, folder)
        self.connection = connection
        self._hash_offered = True
        self.transport = self._verified_transport(HostKeyPolicy(name, connection))
        try:
            self._authenticate(name)
            self.sftp = paramiko.SFTPClient.from_transport(self.transport)
            self.sftp.get_channel().settimeout(connection.timeout_seconds)
        except BaseException:
            self.transport.close()
            raise

    def _verified_transport(self, policy: HostKeyPolicy) -> paramiko.Transport:
        """A transport whose server key passed the policy. A server holding several host keys
        presents the one of the first type the client asks for, and a fingerprint pin names no
        type: so for a pin, each further type the server holds is asked for until one matches."""
        declined: list[str] = []
        refusal: DeliveryError | None = None
        while (transport := self._handshake(policy, declined)) is not None:
            key = transport.get_remote_server_key()
            try:
                policy.check(key)
            except DeliveryError as error:
                transport.close()
                if self.connection.host_key_fingerprint is None:
                    raise
                refusal = refusal or error
                declined += SIGNATURE_ALGORITHMS.get(key.get_name(), (key.get_name(),))
                continue
            return transport
        raise refusal

    def _handshake(self, policy: HostKeyPolicy, declined: list[str]) -> paramiko.Transport | None:
        """Key exchange offering the host-key algorithms not declined yet; None once the server holds no other key."""
        timeout = self.connection.timeout_seconds
        sock = socket.create_connection((self.connection.host, self.connection.port), timeout=timeout)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = timeout
            transport.handshake_timeout = timeout
            transport.auth_timeout = timeout
            options = transport.get_security_options()
            offered = tuple(a for a in host_key_algorithms(policy.known_key_types, options.key_types) if a not in declined)
            if not offered:
                transport.close()
                return None
            options.key_types = offered
            _prefer_aead_ciphers(options)
            transport.start_client(timeout=timeout)
        except paramiko.IncompatiblePeer:
            transport.close()
            if declined:  # the same offer less the declined host keys: the server has no other
                return None
            raise
        except BaseException:
            transport.close()
            raise
        return transport

    def _authenticate(self, name: str) -> None:
        c = self.connection
        if c.private_key_path is not None:
            passphrase = c.private_key_passphrase.read(name, "private_key_passphrase") if c.private_key_passphrase else None
            path = Path(c.private_key_path).expanduser()
            try:
                key = paramiko.PKey.from_path(path, password=passphrase.encode() if passphrase else None)
            except (OSError, ValueError, paramiko.SSHException) as error:
                raise DeliveryError(
                    f"cannot load private_key_path {path} "
                    f"({'wrong passphrase or ' if passphrase else ''}{type(error).__name__}: {error})"
                ) from error
            try:
                self.transport.auth_publickey(c.username, key)
                return
            except paramiko.AuthenticationException:
                if c.password is None:
                    raise DeliveryError(
                        f"the server refused user {c.username!r} with the key {path} "
                        f"({key.get_name()} {fingerprint(key)}); add its public key to the user's authorized_keys"
                    ) from None
        password = c.password.read(name, "password")
        try:
            self.transport.auth_password(c.username, password)
        except paramiko.AuthenticationException:
            raise DeliveryError(
                f"the server refused user {c.username!r} with the password from ${c.password.env}"
            ) from None

    def location_of(self, name: str) -> str:
        c = self.connection
        return f"sftp://{c.username}@{c.host}:{c.port}/{posixpath.join(display_folder(c.root, self.path), name).lstrip('/')}"

    def login_folder(self) -> str:
        return self.sftp.normalize(".")

    def real_path(self, folder: str) -> str:
        # SSH_FXP_REALPATH: OpenSSH's server answers with every link resolved.
        return self.sftp.normalize(folder)

    def is_folder(self, folder: str) -> bool:
        try:
            return stat.S_ISDIR(self.sftp.stat(folder).st_mode or 0)
        except FileNotFoundError:
            return False

    def make_folder(self, folder: str) -> None:
        self.sftp.mkdir(folder)

    def list_entries(self) -> list[RemoteEntry]:
        try:
            listing = self.sftp.listdir_attr(self.folder)
        except PermissionError as error:
            reason = error.strerror or error
            raise ListingRefused(f"the server does not let {self.connection.username!r} list {self.folder} ({reason})") from error
        return [RemoteEntry(a.filename, float(a.st_mtime or 0)) for a in listing]

    def put(self, local: Path, name: str) -> None:
        request_bytes = self._write_request_bytes()
        if request_bytes is None:
            with local.open("rb") as source:
                # putfo streams in 32 KiB pipelined writes; confirm is our own verify step.
                self.sftp.putfo(source, self._path(name), file_size=os.path.getsize(local), confirm=False)
            return
        # Pipelined writes as large as the server takes: paramiko's per-request Python work, not the
        # cipher, limits 32 KiB writes to ~55% of OpenSSH's own client (bench/RESULTS.md).
        with local.open("rb") as source, self.sftp.open(self._path(name), "wb") as remote:
            remote.MAX_REQUEST_SIZE = request_bytes
            remote.set_pipelined(True)
            while data := source.read(UPLOAD_READ_BYTES):
                remote.write(data)

    def _write_request_bytes(self) -> int | None:
        """OpenSSH's sftp-server accepts writes up to 255 KiB (its limits@openssh.com max-write-length);
        other servers are only known to take the 32 KiB every SFTP server must."""
        if not switch_from_environment(SFTP_LARGE_WRITES_ENV_VAR) or "OpenSSH" not in (self.transport.remote_version or ""):
            return None
        return OPENSSH_MAX_WRITE_BYTES

    def verify(self, name: str, file: LocalFile) -> str:
        size = self.sftp.stat(self._path(name)).st_size
        if size != file.bytes:
            raise DeliveryError(f"the server holds {size} bytes of {file.name}, {file.bytes} were sent")
        remote_hash = self._remote_sha256(name)
        if remote_hash is None:
            return "size"
        if remote_hash != file.sha256:
            raise DeliveryError(f"the server's sha256 of {file.name} is {remote_hash}, the file's is {file.sha256}")
        return "size+sha256"

    def _remote_sha256(self, name: str) -> str | None:
        """The check-file extension where the server has it; OpenSSH does not."""
        if not self._hash_offered:
            return None
        try:
            with self.sftp.open(self._path(name), "rb") as remote:
                return remote.check("sha256", block_size=0).hex()
        except OSError:
            self._hash_offered = False
            return None

    def replace(self, temporary: str, final: str) -> None:
        try:
            self.sftp.posix_rename(self._path(temporary), self._path(final))
        except OSError as error:
            if error.errno not in (None, errno.EOPNOTSUPP) and "unsupported" not in str(error).lower():
                raise
            # Without the posix-rename extension a plain rename refuses to overwrite.
            try:
                self.sftp.remove(self._path(final))
            except FileNotFoundError:
                pass
            self.sftp.rename(self._path(temporary), self._path(final))

    def delete(self, name: str) -> None:
        self.sftp.remove(self._path(name))

    def close(self) -> None:
        self.transport.close()
