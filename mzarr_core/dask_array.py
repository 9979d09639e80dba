"""Pyramid levels as lazy dask arrays (``Level.to_dask()``, ``Mzarr.to_dask(level)``), chunked like the file.

A stored level's tasks carry only a small :class:`_LevelRef` (the file's path, the label image's name, the level
index, its shape, chunks and dtype, and the file's *identity* when the array was made), never the open image: a
task in another process (dask's ``processes`` scheduler, a ``dask.distributed`` worker) opens the file read-only
once per process (:func:`_open_level`, a small cache closed at exit) and reads its chunk through the library (the
region of one chunk: the decoded-chunk cache and the bounded decoders apply).

The identity (:func:`file_identity`) is in the graph's name and checked by every task before and after its read: a
task whose file was replaced or committed to since the array was made raises :class:`~mzarr_core.errors.MzarrError`
("the file changed since the dask array was made: rebuild it") instead of mixing old and new pixels.

* single file (.mzarr, SQLite): device, inode, size, mtime and the SQLite header's file change counter (incremented
  by every commit: the file always uses the rollback journal);
* legacy ZIP: device, inode, size and mtime of the ZIP;
* OME-Zarr folder: the same of the group's and the level's metadata documents (a save or conversion over the folder,
  a new pyramid, new attributes), and each task checks that the files of its chunks are older than the array (an
  edit in place; best effort: a folder has no change counter, and a chunk rewritten within the file system's
  timestamp granularity of the array's making, or stamped by a clock behind this one, is not noticed).

In-memory images (no path) are built from their arrays with :func:`dask.array.from_array` (the arrays are in the
graph: pickling it pickles the pixels).
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MzarrError

if TYPE_CHECKING:
    from .level import Level

__all__ = ["file_identity", "level_to_dask"]

_STALE = "the file changed since the dask array was made: rebuild it"


def _dask_array() -> Any:
    try:
        import dask.array as da
    except ImportError:
        raise MzarrError('to_dask() needs dask, an optional dependency: pip install "mzarr[dask]"') from None
    return da


# -- the identity of a file ----------------------------------------------------------------------------------------
def _stat(path: Path) -> tuple[int, ...]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return (-1,)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _sqlite_counter(path: Path) -> int:
    """The SQLite header's file change counter (bytes 24-27, big-endian): +1 on every commit (rollback journal)."""
    try:
        with open(path, "rb") as f:
            head = f.read(28)
    except OSError:
        return -1
    return int.from_bytes(head[24:28], "big") if len(head) == 28 else -1


def file_identity(kind: str, path: Path, array_path: str = "") -> tuple:
    """What changes when the image at ``path`` (of backend ``kind``) changes; see the module's docstring."""
    if kind == "sqlite":
        return (_stat(path), _sqlite_counter(path))
    if kind == "directory":
        docs = []
        for group in dict.fromkeys(["", array_path.rsplit("/", 1)[0] if "/" in array_path else ""]):
            for name in ("zarr.json", ".zattrs", ".zgroup"):
                docs.append(_stat(path / group / name))
        for name in ("zarr.json", ".zarray"):
            docs.append(_stat(path / array_path / name))
        return tuple(docs)
    return (_stat(path),)


# -- what a task carries -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _LevelRef:
    """A stored level by reference: cheap to pickle, re-opened read-only in each process that reads it."""

    path: str
    kind: str
    label: str | None
    index: int
    array_path: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype_str: str
    identity: tuple
    built_ns: int = 0  # a folder's: when the array was made (a chunk file written since then is stale)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.dtype_str)

    def check(self) -> None:
        if file_identity(self.kind, Path(self.path), self.array_path) != self.identity:
            what = f"label image {self.label!r} of " if self.label else ""
            raise MzarrError(f"{_STALE} ({what}{self.path}, level {self.index})")

    def __getitem__(self, key: tuple) -> np.ndarray:
        """The region ``key`` (slices: one chunk, as dask asks) read through the library, checked not stale."""
        self.check()
        level = _open_level(self)
        out = level[key]
        self.check()  # a commit while reading: the pixels may mix old and new
        if self.built_ns:
            self._check_chunk_files(level, key)
        return out

    def _check_chunk_files(self, level: "Level", key: tuple) -> None:
        """In a folder: the chunk files of ``key`` must be older than the array (best effort: a chunk rewritten
        within the file system's timestamp granularity of the array's making is not noticed)."""
        source = getattr(level, "_source", None)
        try:
            array = source.array  # type: ignore[union-attr]
            first = tuple(k.start // c for k, c in zip(key, self.chunks))
            last = tuple(max(k.start, k.stop - 1) // c for k, c in zip(key, self.chunks))
            user_chunks = itertools.product(*(range(a, b + 1) for a, b in zip(first, last)))
            files = []
            for idx in user_chunks:
                coords = tuple(idx[p] for p in level.perm)
                name = array.metadata.encode_chunk_key(coords)
                files.append(Path(self.path) / (f"{array.path}/{name}" if array.path else name))
        except (AttributeError, TypeError):
            return
        for file in files:
            try:
                mtime = file.stat().st_mtime_ns
            except OSError:
                continue  # no file: the fill value (a chunk created since would have a new mtime)
            if mtime > self.built_ns:
                raise MzarrError(f"{_STALE} ({file} was written after the dask array was made)")


# -- the per-process cache of open images --------------------------------------------------------------------------
_MAX_OPEN = 8
_open: "OrderedDict[tuple, Any]" = OrderedDict()  # (path, identity) -> Mzarr, least recently used first
_open_lock = threading.Lock()
_levels: dict[tuple, "Level"] = {}  # (path, identity, label, index) -> a level of an image in _open


def _open_level(ref: _LevelRef) -> "Level":
    from .image import Mzarr

    key = (ref.path, ref.identity)
    with _open_lock:
        image = _open.get(key)
        if image is not None:
            _open.move_to_end(key)
    if image is None:
        fresh = Mzarr(ref.path, "r")
        with _open_lock:
            image = _open.setdefault(key, fresh)
            while len(_open) > _MAX_OPEN:
                _drop(*_open.popitem(last=False))
        if image is not fresh:
            fresh.close()
        # An older identity of the same path is stale: close it
        with _open_lock:
            for old in [k for k in _open if k[0] == ref.path and k != key]:
                _drop(old, _open.pop(old))
    level_key = (ref.path, ref.identity, ref.label, ref.index)
    level = _levels.get(level_key)
    if level is None:
        owner = image.label(ref.label) if ref.label else image  # a label image's documents: read once
        level = owner.levels[ref.index]
        with _open_lock:
            if len(_levels) > 64:
                _levels.clear()
            _levels[level_key] = level
    if level.shape != ref.shape or level.chunks != ref.chunks or level.dtype != ref.dtype:
        raise MzarrError(f"{_STALE} ({ref.path}, level {ref.index} is now {level.shape} {level.dtype})")
    return level


def _drop(key: tuple, image: Any) -> None:
    """Forget and close an open image and its levels (the caller holds the lock)."""
    for k in [k for k in _levels if k[:2] == key]:
        del _levels[k]
    image.close()


def close_open_images() -> None:
    """Close the images this process opened for dask tasks (at exit; also safe to call at any time)."""
    with _open_lock:
        images = list(_open.values())
        _open.clear()
        _levels.clear()
    for image in images:
        try:
            image.close()
        except Exception:
            pass


def _forget_after_fork() -> None:
    global _open_lock
    _open.clear()  # the parent's connections are not this process's: never closed or used here
    _levels.clear()
    _open_lock = threading.Lock()


atexit.register(close_open_images)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# -- building the array --------------------------------------------------------------------------------------------
def level_to_dask(level: "Level", label: str | None = None) -> Any:
    """``level`` as a lazy dask array (user axis order, the level's chunks and dtype); see the module docstring."""
    da = _dask_array()
    from dask.base import tokenize

    meta = np.empty((0,) * level.ndim, level.dtype)
    source = getattr(level, "_source", None)
    owner = getattr(source, "owner", None)
    path = getattr(owner, "path", None)
    if source is None or path is None:  # in memory: the arrays themselves are in the graph
        storage = level.storage
        from .level import StorageView

        if isinstance(storage, StorageView):
            array = storage.source
        else:
            array = np.transpose(np.asarray(storage), level.inverse)
        return da.from_array(array, chunks=level.chunks, meta=meta)
    prefix = getattr(owner, "prefix", "") or ""
    if label is None and prefix.startswith("labels/"):
        label = prefix[len("labels/"):].rstrip("/")
    kind = str(getattr(owner, "kind", ""))
    real = os.path.realpath(path)
    array_path = str(getattr(source.array, "path", "") or "")
    ref = _LevelRef(
        path=real, kind=kind, label=label, index=level.index, array_path=array_path, shape=level.shape,
        chunks=level.chunks, dtype_str=level.dtype.str, identity=file_identity(kind, Path(real), array_path),
    )
    name = "mzarr-" + tokenize(ref)
    if kind == "directory":  # its chunk files have no change counter: their mtimes are checked against this
        ref = dataclasses.replace(ref, built_ns=time.time_ns())
    return da.from_array(ref, chunks=level.chunks, name=name, meta=meta, asarray=True, fancy=False, lock=False)
