"""Mzarr's own files as sources: .mzarr (SQLite; legacy ZIP) and OME-Zarr folders (convert between them)."""

from __future__ import annotations

from pathlib import Path

from .base import Source, head


def sniff(path: Path) -> bool:
    """A .mzarr file (SQLite) or an OME-Zarr / Zarr folder."""
    if path.is_dir():
        return any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zattrs", ".zarray"))
    return head(path, 16) == b"SQLite format 3\0"


def read(path: Path) -> Source:
    from ..image import Mzarr

    m = Mzarr(path)
    return Source(m.levels[0], m.axes, m.spacing, m.unit, m.attrs().to_dict(), owner=m, is_label=m.is_label)
