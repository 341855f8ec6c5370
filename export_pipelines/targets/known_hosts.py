"""known_hosts read the way OpenSSH's client reads it (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT").

paramiko's HostKeys keeps one key per key type and host, so during a key rotation (old and new
key of one type both listed) only one of them is accepted; it compares host names case by case,
and it mistakes `@cert-authority` and `@revoked` lines for plain entries or drops them. This
reader follows OpenSSH instead:

- every listed key of a host is accepted, however many there are of one type;
- host names are compared in lower case (OpenSSH lowercases the name it looks up and each
  pattern), with `*` and `?` wildcards, `!` negation and comma-separated lists; a hashed entry
  (`|1|salt|hmac`, from `ssh-keyscan -H`) is the HMAC-SHA1 of the lowercased name;
- a port other than 22 is looked up as `[host]:port` (OpenSSH's put_host_port);
- `@revoked` keys are refused whatever else lists them; `@cert-authority` lines sign host
  certificates, which this client does not use, so they are never taken for a host's own key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

REVOKED = "@revoked"
CERT_AUTHORITY = "@cert-authority"


@dataclass
class KnownKeys:
    """What a known_hosts file says about one host."""

    keys: list[paramiko.PKey] = field(default_factory=list)  # plain entries, in file order
    revoked: list[paramiko.PKey] = field(default_factory=list)
    authorities: int = 0  # @cert-authority lines naming the host

    def accepts(self, key: paramiko.PKey) -> bool:
        return any(known.asbytes() == key.asbytes() for known in self.keys)

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return any(revoked.asbytes() == key.asbytes() for revoked in self.revoked)

    @property
    def key_types(self) -> list[str]:
        """The types of the host's usable keys, each once, in file order."""
        return list(dict.fromkeys(key.get_name() for key in self.keys if not self.is_revoked(key)))


def lookup_name(host: str, port: int) -> str:
    """The name OpenSSH looks up: the lowercased host, as `[host]:port` for a port other than 22."""
    host = host.lower()
    return host if port == 22 else f"[{host}]:{port}"


def read_known_hosts(path: Path, host: str, port: int) -> KnownKeys:
    """The keys `path` lists for host:port. Lines that cannot be read (bad base64, a key type
    paramiko lacks, an unknown marker) are skipped, as OpenSSH skips them. Raises OSError."""
    name = lookup_name(host, port)
    found = KnownKeys()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else None
        if marker not in (None, REVOKED, CERT_AUTHORITY) or len(fields) < 3 or not names_match(fields[0], name):
            continue
        if marker == CERT_AUTHORITY:
            found.authorities += 1
            continue
        key = _key(fields[1], fields[2])
        if key is not None:
            (found.revoked if marker == REVOKED else found.keys).append(key)
    return found


def names_match(names: str, name: str) -> bool:
    """Whether a known_hosts host field names `name` (already lowercased): a hashed entry, or
    OpenSSH's match_pattern_list with lowercasing (a matching `!pattern` excludes the line)."""
    if names.startswith("|1|"):
        salt, _, digest = names[3:].partition("|")
        try:
            expected = base64.b64decode(digest, validate=True)
            computed = hmac.new(base64.b64decode(salt, validate=True), name.encode(), hashlib.sha1).digest()
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(expected, computed)
    matched = False
    for pattern in names.split(","):
        negated = pattern.startswith("!")
        if _wildcard(pattern.removeprefix("!").lower()).fullmatch(name):
            if negated:
                return False
            matched = True
    return matched


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


def _key(key_type: str, data: str) -> paramiko.PKey | None:
    try:
        return paramiko.PKey.from_type_string(key_type, base64.b64decode(data, validate=True))
    except Exception:  # bad base64, an unknown type or malformed key bytes: OpenSSH skips the line too
        return None
