"""SFTP upload of one large file: the export's SftpSession.put against OpenSSH's `sftp` put.

    python bench/sftp_upload.py [--mb 500] [--repeat 3]

Starts a private sshd on a loopback port (as the delivery tests do, with the tests' login
user and this bench's own authorized-keys file, so a test session running meanwhile keeps
its keys), uploads the same file with both clients alternately and prints medians as JSON.
Needs root (the sshd logs in a real system user).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from export_pipelines.spec.connections import SftpConnection  # noqa: E402
from export_pipelines.switches import SFTP_LARGE_WRITES_ENV_VAR  # noqa: E402
from export_pipelines.targets.sftp import SftpSession  # noqa: E402
from export_pipelines_tests.servers.network import HOST, free_port, stop, wait_for_port  # noqa: E402
from export_pipelines_tests.servers.sshd import SSHD, _keygen  # noqa: E402
from export_pipelines_tests.servers.system_user import TEST_USER, ensure_test_user, owned_folder  # noqa: E402


def test_user_home() -> Path:
    try:
        return Path(pwd.getpwnam(TEST_USER).pw_dir)
    except KeyError:
        # Only a new user gets a password set: resetting it would break a test session using it now.
        return ensure_test_user()[2]


def start_bench_sshd(folder: Path, home: Path) -> tuple[subprocess.Popen, int, Path, Path]:
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    host_key = _keygen(folder / "host_ed25519", "ed25519")
    client_key = _keygen(folder / "client_ed25519", "ed25519")
    authorized = owned_folder(home, ".ssh") / "authorized_keys_export_bench"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    authorized.chmod(0o644)
    port = free_port()
    host_public = Path(f"{host_key}.pub").read_text().split()
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[{HOST}]:{port} {host_public[0]} {host_public[1]}\n")
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}", f"ListenAddress {HOST}", f"HostKey {host_key}", f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}", "UsePAM no", "StrictModes no", "PasswordAuthentication no",
                "PubkeyAuthentication yes", f"AllowUsers {TEST_USER}", "Subsystem sftp internal-sftp", "",
            ]
        )
    )
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_port(port, process)
    return process, port, client_key, known_hosts


def upload_with_export(port: int, key: Path, known_hosts: Path, local: Path, folder: str) -> float:
    connection = SftpConnection(
        type="sftp", host=HOST, port=port, username=TEST_USER, private_key_path=str(key), known_hosts_path=str(known_hosts)
    )
    session = SftpSession("bench", connection, folder)
    try:
        session.prepare_folder()
        started = time.perf_counter()
        session.put(local, "export.bin")
        seconds = time.perf_counter() - started
        assert session.sftp.stat(session._path("export.bin")).st_size == local.stat().st_size
    finally:
        session.close()
    return seconds


def upload_with_openssh(port: int, key: Path, known_hosts: Path, local: Path, folder: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["sftp", "-q", "-b", "-", "-i", str(key), "-P", str(port), "-o", f"UserKnownHostsFile={known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"{TEST_USER}@{HOST}"],
        input=f"put {local} {folder}/openssh.bin\n".encode(),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    home = test_user_home()
    remote_folder = owned_folder(home, "export_bench_upload")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        local = folder / "upload.bin"
        with local.open("wb") as out:
            for _ in range(args.mb):
                out.write(os.urandom(1 << 20))
        process, port, key, known_hosts = start_bench_sshd(folder, home)
        times: dict[str, list[float]] = {"export SftpSession.put": [], "export put, large writes off": [], "openssh sftp put": []}
        try:
            for _ in range(args.repeat):
                times["export SftpSession.put"].append(upload_with_export(port, key, known_hosts, local, str(remote_folder)))
                os.environ[SFTP_LARGE_WRITES_ENV_VAR] = "0"
                times["export put, large writes off"].append(upload_with_export(port, key, known_hosts, local, str(remote_folder)))
                del os.environ[SFTP_LARGE_WRITES_ENV_VAR]
                times["openssh sftp put"].append(upload_with_openssh(port, key, known_hosts, local, str(remote_folder)))
        finally:
            stop(process)
            for leftover in remote_folder.iterdir():
                leftover.unlink()
    medians = {name: statistics.median(values) for name, values in times.items()}
    reference = medians["openssh sftp put"]
    print(json.dumps({
        "mb": args.mb,
        "runs": args.repeat,
        "methods": {name: {"seconds": s, "mb_per_s": args.mb / s, "throughput_vs_openssh": reference / s} for name, s in medians.items()},
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
