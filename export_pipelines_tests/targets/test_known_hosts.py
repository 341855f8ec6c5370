"""known_hosts read as OpenSSH reads it, against the real sshd: every listed key of a host is
accepted (a key rotation lists two of one type), host names match in any case, plain and hashed,
as `[host]:port`; a @revoked key is refused and a @cert-authority line is never taken for a host key."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from export_pipelines.targets.base import DeliveryError
from export_pipelines_tests.targets.delivery_helpers import Log, local_file, make_target
from export_pipelines_tests.targets.test_sftp import sftp_connection


def server_key(sshd) -> str:
    """`ssh-ed25519 AAAA...` of the server's host key, from its own public key file."""
    return " ".join(sshd.host_keys[0].read_text().split()[:2])


def other_key(tmp_path: Path, name: str) -> str:
    """A freshly made Ed25519 public key: the server's previous key in a rotation, or a CA's."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
    return " ".join((tmp_path / f"{name}.pub").read_text().split()[:2])


def hashed(tmp_path: Path, text: str) -> str:
    """The file after `ssh-keygen -H`, which hashes every host name as OpenSSH's client would."""
    path = tmp_path / "to_hash"
    path.write_text(text)
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    return path.read_text()


def deliver(sshd, known_hosts: str, tmp_path: Path, remote_folder, host: str = "127.0.0.1") -> bytes:
    file = tmp_path / "known_hosts"
    file.write_text(known_hosts)
    folder, path = remote_folder
    connection = sftp_connection(sshd, host=host, known_hosts_path=str(file))
    make_target(connection, folder).deliver([local_file(tmp_path / "out", "k.csv", b"k\r\n")], Log())
    return (path / "k.csv").read_bytes()


@pytest.mark.parametrize("order", ["old key first", "new key first"])
@pytest.mark.parametrize("form", ["plain", "hashed"])
def test_during_a_key_rotation_either_listed_key_of_a_type_is_accepted(sshd, order, form, tmp_path, remote_folder):
    lines = [f"[127.0.0.1]:{sshd.port} {other_key(tmp_path, 'old')}", f"[127.0.0.1]:{sshd.port} {server_key(sshd)}"]
    text = "\n".join(lines if order == "old key first" else lines[::-1]) + "\n"
    assert deliver(sshd, hashed(tmp_path, text) if form == "hashed" else text, tmp_path, remote_folder) == b"k\r\n"


@pytest.mark.parametrize(
    ("host", "entry"),
    [
        ("LocalHost", "[localhost]:{port}"),  # OpenSSH lowercases the name it connects to ...
        ("localhost", "[LOCALHOST]:{port}"),  # ... and each pattern it compares with
        ("LOCALHOST", "partner.example,[LocalHost]:{port}"),
        ("LocalHost", "[local*]:{port}"),
        ("LocalHost", "[localhost]:{port}/hashed"),  # a hashed entry is of the lowercased name
    ],
)
def test_host_names_match_in_any_case_plain_and_hashed(sshd, host, entry, tmp_path, remote_folder):
    names = entry.format(port=sshd.port)
    text = f"{names.removesuffix('/hashed')} {server_key(sshd)}\n"
    if names.endswith("/hashed"):
        text = hashed(tmp_path, text)
        assert text.startswith("|1|")
    assert deliver(sshd, text, tmp_path, remote_folder, host=host) == b"k\r\n"


def test_a_negated_pattern_excludes_the_host(sshd, tmp_path, remote_folder):
    text = f"[*]:{sshd.port},![LOCALHOST]:{sshd.port} {server_key(sshd)}\n"
    with pytest.raises(DeliveryError, match="is not in"):
        deliver(sshd, text, tmp_path, remote_folder, host="localhost")
    assert not remote_folder[1].exists()


@pytest.mark.parametrize("also_listed", [True, False])
def test_a_revoked_key_is_refused_even_when_listed(sshd, also_listed, tmp_path, remote_folder):
    text = f"@revoked * {server_key(sshd)}\n"
    if also_listed:
        text = f"[127.0.0.1]:{sshd.port} {server_key(sshd)}\n" + text
    with pytest.raises(DeliveryError, match=rf"presented ssh-ed25519 {re.escape(sshd.host_key_fingerprint)}, which .* marks @revoked"):
        deliver(sshd, text, tmp_path, remote_folder)
    assert not remote_folder[1].exists()


def test_a_cert_authority_line_is_not_a_host_key(sshd, tmp_path, remote_folder):
    """Not even when it holds the server's own key: it signs certificates, which this client does not use."""
    text = f"@cert-authority [127.0.0.1]:{sshd.port} {server_key(sshd)}\n@cert-authority * {other_key(tmp_path, 'ca')}\n"
    with pytest.raises(DeliveryError, match=r"has only @cert-authority lines for \[127.0.0.1\]:\d+, and this client does not verify"):
        deliver(sshd, text, tmp_path, remote_folder)
    assert not remote_folder[1].exists()


def test_cert_authority_lines_beside_the_host_key_are_ignored(sshd, tmp_path, remote_folder):
    text = f"@cert-authority * {other_key(tmp_path, 'ca')}\n[127.0.0.1]:{sshd.port} {server_key(sshd)}\n"
    assert deliver(sshd, text, tmp_path, remote_folder) == b"k\r\n"


def test_a_changed_key_names_every_listed_key_of_its_type(sshd, tmp_path, remote_folder):
    text = f"[127.0.0.1]:{sshd.port} {other_key(tmp_path, 'a')}\n[127.0.0.1]:{sshd.port} {other_key(tmp_path, 'b')}\n"
    listed = r"has ssh-ed25519 SHA256:\S+, ssh-ed25519 SHA256:\S+, the server presented"
    with pytest.raises(DeliveryError, match=rf"HOST KEY CHANGED .* {listed}"):
        deliver(sshd, text, tmp_path, remote_folder)
    assert not remote_folder[1].exists()
