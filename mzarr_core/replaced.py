"""Chunks a repair replaces, kept beside the file so that nothing is lost (``mzarr repair`` / ``--undo``).

A repair rebuilds coarser levels from level 0. In a file without checksums (before format 5) a chunk of level 0
that changed on disk looks like a stale coarser level, and rebuilding would then overwrite the only intact copy of
that region (the coarser levels). So every chunk a repair rewrites is first copied, byte for byte, into a ZIP
beside the file, ``NAME.replaced-YYYYmmddTHHMMSSZ.zip``: one stored (uncompressed) entry per chunk, named by its
store key, plus ``manifest.json`` (the file's name, the time, and the keys that held no chunk: the fill value). The
ZIP is complete (written, flushed and synced) before the repair's transaction commits, and removed when the repair
fails or rewrites nothing. :func:`restore_replaced` puts the chunks back in one transaction.
"""

from __future__ import annotations

import json
import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import MzarrFormatError, MzarrValueError

__all__ = ["KeptChunks", "restore_replaced"]

MANIFEST = "manifest.json"
KIND = "mzarr-replaced-chunks"


def _store_get(store: Any, key: str) -> bytes | None:
    get_bytes = getattr(store, "get_bytes_sync", None)  # the single-file store's capability
    if get_bytes is not None:
        return get_bytes(key)
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    buffer = sync(store.get(key, default_buffer_prototype()))
    return None if buffer is None else buffer.to_bytes()


class KeptChunks:
    """The ZIP of the chunks one repair of ``path`` replaces (created at the first chunk)."""

    def __init__(self, path: Path):
        self.image_path = Path(path)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.path = self.image_path.with_name(f"{self.image_path.name}.replaced-{stamp}.zip")
        self._zip: zipfile.ZipFile | None = None
        self._absent: list[str] = []
        self.count = 0

    def keep(self, store: Any, key: str) -> None:
        """Copy the stored bytes of ``key`` (none: the chunk holds the fill value) before it is rewritten."""
        if self._zip is None:
            stem, n = self.path.name.removesuffix(".zip"), 1
            while self.path.exists():  # a second repair within the same second
                n += 1
                self.path = self.path.with_name(f"{stem}-{n}.zip")
            self._zip = zipfile.ZipFile(self.path, "x", compression=zipfile.ZIP_STORED, allowZip64=True)
        data = _store_get(store, key)
        if data is None:
            self._absent.append(key)
        else:
            self._zip.writestr(key, data)
        self.count += 1

    def finish(self) -> Path | None:
        """Write the manifest and sync the ZIP to disk (before the repair commits); its path, or None if empty."""
        if self._zip is None:
            return None
        manifest = {"kind": KIND, "version": 1, "file": self.image_path.name,
                    "written": datetime.now(timezone.utc).isoformat(timespec="seconds"), "absent": self._absent,
                    "chunks": self.count}
        self._zip.writestr(MANIFEST, json.dumps(manifest, indent=2))
        self._zip.close()
        with open(self.path, "rb") as fh:
            os.fsync(fh.fileno())
        return self.path

    def discard(self) -> None:
        """The repair failed or was rolled back: nothing was replaced, so the ZIP goes."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        self.path.unlink(missing_ok=True)


def restore_replaced(image: Any, kept: str | os.PathLike) -> int:
    """Put the chunks a repair replaced (the ZIP ``kept``) back into ``image`` (open with 'r+'), in one transaction
    for a .mzarr file; returns how many. Refuses a ZIP that is not such a record (MzarrFormatError)."""
    kept = Path(kept)
    try:
        archive = zipfile.ZipFile(kept)
    except (OSError, zipfile.BadZipFile) as exc:
        raise MzarrFormatError(f"{kept} cannot be read as the chunks a repair replaced ({exc})") from None
    with archive:
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except (KeyError, ValueError) as exc:
            raise MzarrFormatError(f"{kept} has no readable {MANIFEST}: it is not what 'mzarr repair' keeps ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("kind") != KIND or not isinstance(manifest.get("absent"), list):
            raise MzarrFormatError(f"{kept} is not what 'mzarr repair' keeps (its {MANIFEST} is of another kind)")
        if image.path is not None and manifest.get("file") != Path(image.path).name:
            raise MzarrValueError(
                f"{kept} holds chunks replaced in {manifest.get('file')!r}, not in {Path(image.path).name!r}"
            )
        names = [n for n in archive.namelist() if n != MANIFEST]
        store = image._store
        from zarr.core.sync import sync

        from .writer import store_key_bytes

        with image.transaction():
            for name in names:
                store_key_bytes(store, name, archive.read(name))
            for key in manifest["absent"]:
                if isinstance(key, str):
                    sync(store.delete(key))
        image.clear_cache()  # decoded chunks of the repaired state must not be served again
    return len(names) + len(manifest["absent"])
