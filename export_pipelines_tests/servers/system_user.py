"""The local account sshd and vsftpd log in: they authenticate real system users only."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

TEST_USER = "exporttest"


def ensure_test_user() -> tuple[str, str, Path]:
    """Create (once) the test user with a login shell, and give it a fresh random password."""
    if os.geteuid() != 0:
        raise PermissionError("creating the test user needs root")
    if shutil.which("useradd") is None and not Path("/usr/sbin/useradd").exists():
        raise FileNotFoundError("useradd is not installed")
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", TEST_USER], check=True)
    password = secrets.token_urlsafe(18)
    subprocess.run(["chpasswd"], input=f"{TEST_USER}:{password}\n", text=True, check=True)
    return TEST_USER, password, Path(pwd.getpwnam(TEST_USER).pw_dir)


def owned_folder(home: Path, name: str) -> Path:
    """A folder the test user owns, where renames are not restricted by a sticky bit."""
    folder = home / name
    folder.mkdir(parents=True, exist_ok=True)
    entry = pwd.getpwnam(TEST_USER)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder
