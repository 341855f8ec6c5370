"""Host keys of every type OpenSSH 9.2 serves (Ed25519, ECDSA on each curve, RSA), verified
through known_hosts made exactly as the README advises (`ssh-keyscan -p PORT HOST`, plain and
hashed) and through host_key_fingerprint pins, against real sshd instances."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from export_pipelines.spec.connections import ConnectionsFile
from export_pipelines.targets.base import DeliveryError
from export_pipelines.targets.sftp import SftpSession
from export_pipelines_tests.servers.network import HOST, stop
from export_pipelines_tests.servers.sshd import start_sshd
from export_pipelines_tests.targets.delivery_helpers import Log, local_file, make_target
from export_pipelines_tests.targets.test_sftp import sftp_connection

KINDS = ["ed25519", "ecdsa-256", "ecdsa-384", "ecdsa-521", "rsa"]
# The host-key algorithm OpenSSH's own client negotiates for each key (RFC 8332 for RSA).
ALGORITHMS = {
    "ed25519": "ssh-ed25519",
    "ecdsa-256": "ecdsa-sha2-nistp256",
    "ecdsa-384": "ecdsa-sha2-nistp384",
    "ecdsa-521": "ecdsa-sha2-nistp521",
    "rsa": "rsa-sha2-512",
}


@pytest.fixture(scope="module", params=KINDS)
def keyed_sshd(request, tmp_path_factory, test_user):
    """An sshd whose only host key is of one kind."""
    request.getfixturevalue("sshd")  # fails or skips the same way when sshd is missing
    server = start_sshd(tmp_path_factory.mktemp(f"sshd_{request.param}"), *test_user, host_key_kinds=(request.param,))
    yield request.param, server
    stop(server.process)


# sshd serves one key per key type: one ECDSA curve among them.
SERVER_WITH_EVERY_TYPE = ("ed25519", "ecdsa-384", "rsa")


@pytest.fixture(scope="module")
def all_keys_sshd(tmp_path_factory, test_user, sshd):
    server = start_sshd(tmp_path_factory.mktemp("sshd_all"), *test_user, host_key_kinds=SERVER_WITH_EVERY_TYPE)
    yield server
    stop(server.process)


def keyscan(port: int, *options: str) -> str:
    """What `ssh-keyscan -p PORT HOST` prints: the known_hosts lines a user appends."""
    result = subprocess.run(["ssh-keyscan", *options, "-p", str(port), HOST], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
    return result.stdout


def fingerprint_of(known_hosts_text: str) -> str:
    """`ssh-keyscan ... | ssh-keygen -lf -`, as the connection's description says."""
    output = subprocess.run(["ssh-keygen", "-lf", "-"], input=known_hosts_text, capture_output=True, text=True, check=True).stdout
    [line] = output.splitlines()
    return line.split()[1]


def negotiated(connection: dict, folder: str) -> tuple[str, str]:
    """The host-key algorithm and the key type the server presented."""
    parsed = ConnectionsFile.model_validate({"connections": {"partner": connection}}).connections["partner"]
    session = SftpSession("partner", parsed, folder)
    try:
        return session.transport.host_key_type, session.transport.get_remote_server_key().get_name()
    finally:
        session.close()


@pytest.mark.parametrize("verification", ["known_hosts", "hashed known_hosts", "fingerprint"])
def test_each_host_key_type_is_verified_and_delivers(keyed_sshd, verification, remote_folder, tmp_path):
    kind, server = keyed_sshd
    folder, path = remote_folder
    scanned = keyscan(server.port, *(["-H"] if verification == "hashed known_hosts" else []))
    if verification == "fingerprint":
        connection = sftp_connection(server, known_hosts_path=None, host_key_fingerprint=fingerprint_of(scanned))
    else:
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(scanned)
        if verification == "hashed known_hosts":
            assert all(line.startswith("|1|") for line in scanned.splitlines() if not line.startswith("#"))
        connection = sftp_connection(server, known_hosts_path=str(known_hosts))
    content = f"id,key\r\n1,{kind}\r\n".encode()
    make_target(connection, folder).deliver([local_file(tmp_path, "a.csv", content)], Log())
    assert (path / "a.csv").read_bytes() == content
    assert negotiated(connection, folder) == (ALGORITHMS[kind], ALGORITHMS[kind].replace("rsa-sha2-512", "ssh-rsa"))


@pytest.mark.parametrize("kind", SERVER_WITH_EVERY_TYPE)
def test_a_server_with_every_key_type_is_asked_for_the_one_known_hosts_holds(all_keys_sshd, kind, remote_folder, tmp_path):
    """OpenSSH's default preference is Ed25519 first; a known_hosts entry of another type must still verify."""
    folder, path = remote_folder
    key_type = ALGORITHMS[kind].replace("rsa-sha2-512", "ssh-rsa")
    lines = [line for line in keyscan(all_keys_sshd.port).splitlines() if line.split()[1:2] == [key_type]]
    assert len(lines) == 1, lines
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(lines[0] + "\n")
    connection = sftp_connection(all_keys_sshd, known_hosts_path=str(known_hosts))
    make_target(connection, folder).deliver([local_file(tmp_path, "b.csv", b"b\r\n")], Log())
    assert (path / "b.csv").read_bytes() == b"b\r\n"
    assert negotiated(connection, folder)[0] == ALGORITHMS[kind]


@pytest.mark.parametrize("kind", SERVER_WITH_EVERY_TYPE)
def test_a_pinned_fingerprint_of_any_of_the_servers_keys_is_found(all_keys_sshd, kind, remote_folder, tmp_path):
    """A pin names no key type; the server presents its Ed25519 key first unless asked for another."""
    folder, path = remote_folder
    key_type = ALGORITHMS[kind].replace("rsa-sha2-512", "ssh-rsa")
    [line] = [line for line in keyscan(all_keys_sshd.port).splitlines() if line.split()[1:2] == [key_type]]
    connection = sftp_connection(all_keys_sshd, known_hosts_path=None, host_key_fingerprint=fingerprint_of(line + "\n"))
    make_target(connection, folder).deliver([local_file(tmp_path, "p.csv", b"p\r\n")], Log())
    assert (path / "p.csv").read_bytes() == b"p\r\n"
    assert negotiated(connection, folder) == (ALGORITHMS[kind], key_type)


def test_a_pin_matching_none_of_the_servers_keys_is_refused(all_keys_sshd, remote_folder, tmp_path):
    connection = sftp_connection(all_keys_sshd, known_hosts_path=None, host_key_fingerprint="SHA256:" + "C" * 43)
    with pytest.raises(DeliveryError, match="presented ssh-ed25519 SHA256:.*not the pinned SHA256:CCCC"):
        make_target(connection, remote_folder[0]).deliver([local_file(tmp_path, "q.csv", b"q")], Log())
    assert not remote_folder[1].exists()


def test_a_known_key_of_a_type_the_server_lacks_is_refused_naming_the_key_it_has(sshd, all_keys_sshd, remote_folder, tmp_path):
    rsa_line = next(line for line in keyscan(all_keys_sshd.port).splitlines() if " ssh-rsa " in line)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(rsa_line.replace(f"[{HOST}]:{all_keys_sshd.port}", f"[{HOST}]:{sshd.port}") + "\n")
    with pytest.raises(DeliveryError) as failure:
        make_target(sftp_connection(sshd, known_hosts_path=str(known_hosts)), remote_folder[0]).deliver(
            [local_file(tmp_path, "c.csv", b"c")], Log()
        )
    message = str(failure.value)
    assert f"is not in {known_hosts}" in message and f"it presented ssh-ed25519 {sshd.host_key_fingerprint}" in message
    assert not remote_folder[1].exists()


def test_a_pinned_fingerprint_of_another_key_type_is_refused(keyed_sshd, remote_folder, tmp_path):
    kind, server = keyed_sshd
    other = next(k for k in KINDS if k != kind)
    other_key = tmp_path / f"other_{uuid.uuid4().hex}"
    subprocess.run(["ssh-keygen", "-q", "-t", other.split("-")[0], "-N", "", "-f", str(other_key)], check=True)
    wrong = fingerprint_of((tmp_path / f"{other_key.name}.pub").read_text())
    connection = sftp_connection(server, known_hosts_path=None, host_key_fingerprint=wrong)
    with pytest.raises(DeliveryError, match="not the pinned"):
        make_target(connection, remote_folder[0]).deliver([local_file(tmp_path, "d.csv", b"d")], Log())
    assert not remote_folder[1].exists()
