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
    # One password for every test session on this machine (kept root-only), so that two sessions
    # at once (a test run and a benchmark) do not change it under each other.
    store = Path.home() / ".export_pipelines_test_user_password"
    if not store.exists():
        store.write_text(secrets.token_urlsafe(18))
        store.chmod(0o600)
    password = store.read_text().strip()
    subprocess.run(["chpasswd"], input=f"{TEST_USER}:{password}\n", text=True, check=True)
    return TEST_USER, password, Path(pwd.getpwnam(TEST_USER).pw_dir)


def owned_folder(home: Path, name: str) -> Path:
    """A folder the test user owns, where renames are not restricted by a sticky bit."""
    folder = home / name
    folder.mkdir(parents=True, exist_ok=True)
    entry = pwd.getpwnam(TEST_USER)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder
