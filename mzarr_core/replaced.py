"""Chunks a repair replaces, kept beside the file so that nothing is lost (``mzarr repair`` / ``--undo``).

A repair rebuilds coarser levels from level 0. In a file without checksums (before format 5) a chunk of level 0
that changed on disk looks like a stale coarser level, and rebuilding would then overwrite the only intact copy of
that region (the coarser levels). So every chunk a repair rewrites is first copied, byte for byte, into a ZIP
beside the file, ``NAME.replaced-YYYYmmddTHHMMSSZ.zip``: one stored (uncompressed) entry per chunk, named by its
store key, plus ``manifest.json`` (the file's name, the time, the keys that held no chunk: the fill value, and the
SHA-256 of the bytes the repair wrote for each key, read back inside its transaction). The ZIP is complete (written,
flushed and synced) before the repair's transaction commits, and removed when the repair fails or rewrites nothing.
:func:`restore_replaced` puts the chunks back in one transaction, after checking that every chunk still holds what
the repair wrote (a later edit is never silently reverted).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zlib import error as zlib_error

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
        self._kept: dict[str, Any] = {}  # key -> the store it was kept from (read back at finish)
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
        self._kept[key] = store
        self.count += 1

    def finish(self) -> Path | None:
        """Write the manifest (with the SHA-256 of what the repair wrote for each key, read back now: call it inside
        the repair's transaction, before it commits) and sync the ZIP to disk; its path, or None if empty."""
        if self._zip is None:
            return None
        manifest = {"kind": KIND, "version": 2, "file": self.image_path.name,
                    "written": datetime.now(timezone.utc).isoformat(timespec="seconds"), "absent": self._absent,
                    "chunks": self.count, "repaired": {key: _fingerprint(_store_get(store, key))
                                                       for key, store in self._kept.items()}}
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


def _fingerprint(data: bytes | None) -> str | None:
    """The SHA-256 of a chunk's stored bytes (None: no chunk, the fill value). Not their crc32c: a format-5 chunk
    ends with its own crc32c, and the crc32c of bytes followed by their crc32c is the same for every chunk."""
    return None if data is None else hashlib.sha256(data).hexdigest()


def _changed_since_repair(store: Any, manifest: dict, kept: Path) -> None:
    """Refuse (MzarrValueError) when a chunk the repair wrote no longer holds those bytes (a later edit)."""
    repaired = manifest.get("repaired")
    if not isinstance(repaired, dict):  # a ZIP kept before the manifest recorded it (version 1)
        raise MzarrValueError(
            f"{kept} does not record what the repair wrote, so putting it back could revert a later edit; "
            "'mzarr repair FILE --undo ZIP --force' (force=True) puts the chunks back anyway"
        )
    for key, digest in repaired.items():
        if _fingerprint(_store_get(store, key)) != digest:
            raise MzarrValueError(
                f"chunk {key} changed since the repair that kept {kept} (the file was edited or repaired again "
                "later): putting the old chunks back would revert that newer data, so nothing was changed; "
                "'mzarr repair FILE --undo ZIP --force' (force=True) puts them back anyway"
            )


def _damaged(kept: Path, name: str | None, exc: object) -> MzarrFormatError:
    """The error for a ZIP whose entry ``name`` fails its CRC or cannot be read."""
    what = f"its entry {name!r}" if name else "an entry"
    return MzarrFormatError(
        f"{kept} is damaged: {what} cannot be read ({exc}), so that chunk cannot be put back; nothing was changed. "
        "Use another copy of the ZIP, or keep the file as the repair left it"
    )


def _read_entry(archive: zipfile.ZipFile, name: str, kept: Path) -> bytes:
    """One entry of the ZIP, its CRC checked; a damaged entry is an MzarrFormatError naming the ZIP."""
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, zlib_error) as exc:
        raise _damaged(kept, name, exc) from None


def _check_entries(archive: zipfile.ZipFile, kept: Path) -> None:
    """Read every entry once (CRC checked, bounded memory) so that a damaged ZIP changes nothing."""
    try:
        bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib_error) as exc:
        raise _damaged(kept, None, exc) from None
    if bad is not None:
        raise _damaged(kept, bad, "Bad CRC-32")


def restore_replaced(image: Any, kept: str | os.PathLike, force: bool = False) -> int:
    """Put the chunks a repair replaced (the ZIP ``kept``) back into ``image`` (open with 'r+'), in one transaction
    for a .mzarr file; returns how many. Refuses a ZIP that is not such a record or is damaged (MzarrFormatError),
    and, unless ``force``, a file whose repaired chunks changed since (MzarrValueError: a later edit is kept)."""
    kept = Path(kept)
    try:
        archive = zipfile.ZipFile(kept)
    except (OSError, zipfile.BadZipFile) as exc:
        raise MzarrFormatError(f"{kept} cannot be read as the chunks a repair replaced ({exc})") from None
    with archive:
        _check_entries(archive, kept)
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
            if not force:
                _changed_since_repair(store, manifest, kept)
            for name in names:
                store_key_bytes(store, name, _read_entry(archive, name, kept))
            for key in manifest["absent"]:
                if isinstance(key, str):
                    sync(store.delete(key))
        image.clear_cache()  # decoded chunks of the repaired state must not be served again
    return len(names) + len(manifest["absent"])
