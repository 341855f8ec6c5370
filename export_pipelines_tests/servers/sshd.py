"""A private OpenSSH sshd on a loopback port, with its own host key and authorized keys."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from export_pipelines_tests.servers.system_user import owned_folder
from export_pipelines_tests.servers.network import HOST, free_port, stop, wait_for_port

SSHD = "/usr/sbin/sshd"


@dataclass
class SshServer:
    port: int
    user: str
    password: str
    home: Path
    host_key_fingerprint: str  # of the first host key, as `ssh-keygen -lf` prints it
    host_keys: list[Path]  # public host keys, in the server's order
    known_hosts: Path
    ed25519_key: Path
    rsa_key: Path  # encrypted with rsa_passphrase
    rsa_passphrase: str
    unauthorized_key: Path
    process: subprocess.Popen

    host = HOST


def _keygen(path: Path, kind: str, passphrase: str = "") -> Path:
    """kind: ed25519, rsa, or ecdsa-256 / ecdsa-384 / ecdsa-521 (the curve's size)."""
    algorithm, _, bits = kind.partition("-")
    args = ["ssh-keygen", "-q", "-t", algorithm, "-N", passphrase, "-f", str(path), "-C", path.name]
    if algorithm == "rsa":
        bits = "2048"
    if bits:
        args[4:4] = ["-b", bits]
    subprocess.run(args, check=True)
    return path


def _fingerprint(public_key: Path) -> str:
    output = subprocess.run(["ssh-keygen", "-lf", str(public_key)], check=True, capture_output=True, text=True).stdout
    return output.split()[1]


def start_sshd(folder: Path, user: str, password: str, home: Path, host_key_kinds: tuple[str, ...] = ("ed25519",)) -> SshServer:
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    host_keys = [_keygen(folder / f"ssh_host_{kind}_key", kind) for kind in host_key_kinds]
    ed25519 = _keygen(folder / "client_ed25519", "ed25519")
    passphrase = "correct horse battery staple"
    rsa = _keygen(folder / "client_rsa", "rsa", passphrase)
    unauthorized = _keygen(folder / "stranger_ed25519", "ed25519")
    # sshd reads authorized keys with the user's privileges, so they live in the user's home.
    ssh_folder = owned_folder(home, ".ssh")
    port = free_port()
    authorized = ssh_folder / f"authorized_keys_export_pipelines_tests_{port}"  # one per server: sessions may overlap
    authorized.write_text(Path(f"{ed25519}.pub").read_text() + Path(f"{rsa}.pub").read_text())
    authorized.chmod(0o644)
    known_hosts = folder / "known_hosts"
    publics = [Path(f"{key}.pub").read_text().split() for key in host_keys]
    known_hosts.write_text("".join(f"[{HOST}]:{port} {public[0]} {public[1]}\n" for public in publics))
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                f"ListenAddress {HOST}",
                *(f"HostKey {key}" for key in host_keys),
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "UsePAM no",
                "StrictModes no",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                f"AllowUsers {user}",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True, capture_output=True)
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, process)
    except RuntimeError:
        stop(process)
        raise
    public_keys = [Path(f"{key}.pub") for key in host_keys]
    return SshServer(
        port, user, password, home, _fingerprint(public_keys[0]), public_keys, known_hosts, ed25519, rsa, passphrase, unauthorized, process
    )
