"""Private vsftpd instances for FTP and for FTPS with require_ssl_reuse=YES."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from export_pipelines_tests.servers.network import HOST, free_port, stop, wait_for_port
from export_pipelines_tests.servers.tls import TestCertificates

VSFTPD = "/usr/sbin/vsftpd"


@dataclass
class FtpServer:
    port: int
    user: str
    password: str
    home: Path
    process: subprocess.Popen | None

    host = HOST


def start_vsftpd(
    folder: Path, user: str, password: str, home: Path, certificates: TestCertificates | None, max_bytes_per_second: int = 0
) -> FtpServer:
    """max_bytes_per_second: vsftpd's own limit on each transfer (local_max_rate), 0 for none."""
    folder.mkdir(parents=True, exist_ok=True)
    empty_root = folder / "empty"
    empty_root.mkdir(mode=0o755, exist_ok=True)
    port = free_port()
    pasv = free_port()
    lines = [
        "background=NO",
        "listen=YES",
        "listen_ipv6=NO",
        f"listen_address={HOST}",
        f"listen_port={port}",
        "anonymous_enable=NO",
        "local_enable=YES",
        "write_enable=YES",
        "local_umask=022",
        "pasv_enable=YES",
        f"pasv_address={HOST}",
        f"pasv_min_port={pasv}",
        f"pasv_max_port={pasv + 20}",
        f"secure_chroot_dir={empty_root}",
        "seccomp_sandbox=NO",
        "xferlog_enable=NO",
        "userlist_enable=NO",
        f"local_max_rate={max_bytes_per_second}",
    ]
    if certificates is not None:
        lines += [
            "ssl_enable=YES",
            f"rsa_cert_file={certificates.cert_file}",
            f"rsa_private_key_file={certificates.key_file}",
            "force_local_data_ssl=YES",
            "force_local_logins_ssl=YES",
            "require_ssl_reuse=YES",
            "ssl_ciphers=HIGH",
        ]
    config = folder / f"vsftpd{'-tls' if certificates else ''}{f'-{max_bytes_per_second}' if max_bytes_per_second else ''}.conf"
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen([VSFTPD, str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, process)
        time.sleep(0.1)
        if process.poll() is not None:  # an unknown directive exits silently with rc 2
            raise RuntimeError(f"vsftpd exited with {process.returncode}; check {config}")
    except RuntimeError:
        stop(process)
        raise
    return FtpServer(port, user, password, home, process)
