"""The one interface every delivery target implements, and what a delivery reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LocalFile:
    """A finished export file on local disk, ready to deliver."""

    path: Path
    rows: int
    bytes: int
    sha256: str
    # An encrypted file's plaintext (after compression), which the partner gets back by decrypting.
    plaintext_sha256: str | None = None

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class DeliveredFile:
    name: str
    rows: int
    bytes: int
    sha256: str
    location: str
    seconds: float = 0.0
    verified_by: str = "size"
    url: str | None = None


@dataclass(frozen=True)
class Delivery:
    """Everything one run put on, and took off, a target."""

    files: list[DeliveredFile]
    completion_file: DeliveredFile | None = None
    swept: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)


class DeliveryError(RuntimeError):
    """A delivery that did not complete; the message says where and what to check, never a secret."""


Log = Callable[[str], None]


class Target(ABC):
    """Delivers files so that each is complete under its final name or absent."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where files go, without credentials: shown in metadata and logs."""

    @abstractmethod
    def deliver(self, files: Sequence[LocalFile], log: Log) -> Delivery:
        """Deliver every file; a re-run with the same names replaces them."""
