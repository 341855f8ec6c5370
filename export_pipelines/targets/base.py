"""The one interface every delivery target implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalFile:
    """A finished export file on local disk, ready to deliver."""

    path: Path
    rows: int
    bytes: int
    sha256: str

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


class Target(ABC):
    """Delivers files so that each is complete under its final name or absent."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where files go, without credentials: shown in metadata and logs."""

    @abstractmethod
    def deliver(self, files: Sequence[LocalFile]) -> list[DeliveredFile]:
        """Deliver every file; a re-run with the same names replaces them."""
