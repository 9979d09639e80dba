"""Where an image lives, one small class per kind: in memory, a single-file .mzarr (SQLite), an OME-Zarr folder,
or a legacy Mzarr 0.0.x ZIP. :class:`~mzarr_core.image.Mzarr` is the API over one of them."""

from __future__ import annotations

from pathlib import Path

from ..containers import open_store
from ..locks import ReadWriteLock
from .base import Backend
from .legacy import LegacyBackend
from .memory import MemoryBackend
from .stored import FolderBackend, SqliteBackend, StoredBackend

#: The backend class for each kind of container that :func:`mzarr_core.containers.open_store` recognises.
BACKENDS: dict[str, type[StoredBackend]] = {
    "sqlite": SqliteBackend,
    "directory": FolderBackend,
    "legacy-zip": LegacyBackend,
}


def open_backend(path: Path, writable: bool, lock: ReadWriteLock) -> StoredBackend:
    """Open the image at ``path`` (read-only, or for editing where its container allows it)."""
    store, kind = open_store(path, writable)
    try:
        return BACKENDS[kind].open(store, path, writable, lock)
    except BaseException:
        store.close()
        raise


__all__ = ["BACKENDS", "Backend", "FolderBackend", "LegacyBackend", "MemoryBackend", "SqliteBackend", "StoredBackend", "open_backend"]
