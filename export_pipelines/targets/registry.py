"""Which connection types this build can deliver to, and the target for an export."""

from __future__ import annotations

from pathlib import Path

from export_pipelines.spec.export import ExportSpec
from export_pipelines.targets.base import Target
from export_pipelines.targets.local import DownloadTarget

# Connection types with a Target implementation; connections.yaml may declare others.
DELIVERABLE_TYPES: frozenset[str] = frozenset()


def downloads_folder(storage_dir: Path, export_name: str) -> Path:
    return storage_dir / "downloads" / export_name


def target_for(spec: ExportSpec, storage_dir: Path) -> Target:
    if spec.target == "download":
        return DownloadTarget(downloads_folder(storage_dir, spec.name))
    raise ValueError(f"For export {spec.name}, connection targets cannot be delivered by this build")
