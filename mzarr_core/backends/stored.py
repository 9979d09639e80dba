"""Images stored as a Zarr hierarchy: the single-file .mzarr (SQLite, transactional) and the OME-Zarr folder."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import zarr

from ..axes import storage_permutation
from ..chunk_cache import ChunkCache, note_write, write_count
from ..chunk_reader import CacheSession, ChunkReader
from ..codecs import codec_from_json
from ..errors import CorruptChunkError, MzarrError
from ..indexing import AxisIndex
from ..level import Level
from ..locks import ReadWriteLock
from ..ngff import ImageInfo
from ..pyramid import downsample
from .base import Backend


class StoredBackend(Backend):
    """Levels read through zarr arrays, each read under the image's read lock and one read snapshot; damaged
    chunks named in the error. Writes (where the subclass allows them) update every pyramid level."""

    persistent: ClassVar[bool] = True
    path: Path  # a stored image always has one (Backend allows None for in-memory images)
    #: where this image's group lives in the store ("" the root; ``labels/<name>/`` a label image)
    prefix: str = ""
    #: False for a label image's backend, which shares its image's store (closing it leaves the store open)
    owns_store: bool = True

    def __init__(
        self, store: Any, path: Path, info: ImageInfo, arrays: list[Any], group: Any, writable: bool, lock: ReadWriteLock
    ):
        super().__init__(info, path)
        self.store = store
        self.group = group
        self._writable = writable
        self._lock = lock
        perm = storage_permutation(info.axes)
        factors = info.level_factors or [
            tuple(max(1, round(s0 / s)) for s0, s in zip(arrays[0].shape, a.shape)) for a in arrays
        ]
        #: decoded chunks of every level (see mzarr_core.chunk_cache): emptied by this image's write transactions, by
        #: other Mzarr objects' writes to the same path and (single file) by other processes' commits
        self.cache = ChunkCache()
        self._path_key = os.path.realpath(path)
        self._seen: tuple[int, int | None] | None = None  # (writes to this path in this process, data_version)
        self._seen_lock = threading.Lock()
        self._write_depth = 0
        storage_codec = codec_from_json(info.codec) if info.codec else None
        if storage_codec is not None:  # writes encode as the file's codec says (e.g. strip bricks)
            arrays = [storage_codec.adopt(arr) for arr in arrays]
        self._levels = [
            Level(i, arr, perm, info.axes, tuple(arr.chunks), tuple(f), guard=self.read_guard, name=str(path),
                  source=ChunkReader(arr, self, i, str(path), storage_codec))
            for i, (arr, f) in enumerate(zip(arrays, factors))
        ]

    @classmethod
    def open(cls, store: Any, path: Path, writable: bool, lock: ReadWriteLock) -> "StoredBackend":
        """Read and check the metadata of the image in ``store`` and build its levels."""
        from ..metadata_check import open_image

        # The metadata documents are read once, size-bounded and checked; zarr's nodes are built from them, so a
        # damaged or hostile document is an MzarrFormatError naming the file and the document.
        info, arrays, group = open_image(store, cls.kind, path)
        return cls(store, path, info, arrays, group, writable, lock)

    def open_child(self, prefix: str) -> "StoredBackend":
        """The multiscale image in the child group ``prefix`` (``labels/<name>/``) of this image's store, sharing its
        store, lock and transactions (its own cache of decoded chunks); its metadata read bounded and checked."""
        from ..metadata_check import open_image

        info, arrays, group = open_image(self.store, self.kind, self.path, prefix)
        child = type(self).__new__(type(self))
        child.prefix, child.owns_store = prefix, False
        StoredBackend.__init__(child, self.store, self.path, info, arrays, group, self._writable, self._lock)
        child.cache = self.cache  # one bound for the file: the child's entries are keyed under its prefix
        child._parent = self
        return child

    # -- levels and reading -------------------------------------------------------------------------------------
    @property
    def level0(self) -> Level:
        return self._levels[0]

    @property
    def levels(self) -> list[Level]:
        return list(self._levels)

    @property
    def writable(self) -> bool:
        return self._writable

    @contextlib.contextmanager
    def read_guard(self) -> Iterator[CacheSession | None]:
        """What every read holds: the read lock (no half-done write) and one read snapshot. Yields what the read may
        do with the cache (None while a write transaction runs or with caching off)."""
        with self._lock.reading(), self.transaction(write=False):
            yield self._cache_session()

    _parent: "StoredBackend | None" = None

    def _writing(self) -> bool:
        """True while a write transaction of this image (or, for a label image, of its image) runs."""
        return bool(self._write_depth or (self._parent is not None and self._parent._write_depth))

    def _session(self) -> CacheSession:
        return _PrefixedSession(self.cache, self.prefix) if self.prefix else CacheSession(self.cache)

    def _cache_session(self) -> CacheSession | None:
        if self._writing() or self.cache.max_bytes == 0:
            return None  # a write's own reads see uncommitted pixels: never cached
        seen = (write_count(self._path_key), self._data_version())
        with self._seen_lock:
            if seen != self._seen:
                if self._seen is not None:
                    self.cache.clear()  # the file changed since the cached chunks were decoded
                self._seen = seen
            return self._session()

    def peek_session(self) -> CacheSession | None:
        """The cache for lookups that read nothing (Level.read_chunk(..., cached_only=True)): no lock, no snapshot,
        so other processes' commits are noticed by the next read, not here; None while a write runs, with caching
        off, or after another object's write in this process (until a read empties the cache)."""
        if self._writing() or self.cache.max_bytes == 0:
            return None
        seen = self._seen
        if seen is not None and seen[0] != write_count(self._path_key):
            return None
        return self._session()

    def _data_version(self) -> int | None:
        """A number that changes when another connection commits to the storage (None: not known)."""
        return None

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        """A write transaction (or a read snapshot) of the storage. A write empties the cache when it begins and
        when it ends, committed or rolled back, and nothing is cached while it runs."""
        if not write:
            with self._storage_transaction(False):
                yield
            return
        self._write_depth += 1
        if self._write_depth == 1:
            self.cache.clear()
        try:
            with self._storage_transaction(True):
                yield
        finally:
            self._write_depth -= 1
            if self._write_depth == 0:
                self.cache.clear()
                note_write(self._path_key)

    def _storage_transaction(self, write: bool) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def chunk_error(self, level_index: int, coords: tuple[int, ...], exc: Exception) -> CorruptChunkError:
        """The error naming chunk ``coords`` (storage order) of level ``level_index``, which failed with ``exc``."""
        name = f"{self.prefix}{self.info.level_paths[level_index]}/c/" + "/".join(str(i) for i in coords)
        error_class = type(exc) if isinstance(exc, CorruptChunkError) else CorruptChunkError
        return error_class(
            f"chunk {name} (level {level_index}, chunk {coords}) of {self.path} cannot be decoded "
            f"({type(exc).__name__}: {exc}). The file is damaged: restore it from a backup, or save what still reads "
            f"with 'mzarr salvage {self.path} NEW.mzarr'; 'mzarr verify {self.path}' lists every damaged chunk"
        )

    def corrupt_chunk_error(self, level_index: int, arr: Any, key: tuple, exc: Exception) -> CorruptChunkError:
        """The error naming the first chunk of ``arr[key]`` that cannot be decoded."""
        storage_region = tuple(
            slice(k, k + 1) if isinstance(k, (int, np.integer)) else slice(k.start, k.stop) for k in key
        )
        storage_chunks = tuple(arr.chunks)
        ranges = [range(s.start // c, max(s.start // c + 1, -(-s.stop // c))) for s, c in zip(storage_region, storage_chunks)]
        for coords in itertools.product(*ranges):
            region = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, storage_chunks, arr.shape))
            try:
                arr[region]
            except Exception as chunk_exc:
                return self.chunk_error(level_index, coords, chunk_exc)
        return CorruptChunkError(f"level {level_index} of {self.path} could not be read: {type(exc).__name__}: {exc}")

    # -- writing ------------------------------------------------------------------------------------------------
    def write_region(self, key: Any, index: tuple[AxisIndex, ...], value: np.ndarray) -> None:
        """Write level 0 and recompute the touched part of every coarser level (the caller holds the write lock
        and the transaction)."""
        with self._naming_damaged_chunks(index):
            box = self._write_level0(index, value)
            if box is not None:
                self.update_pyramid(box)

    def write_regions(self, items: Sequence[tuple[Any, tuple[AxisIndex, ...], np.ndarray]]) -> None:
        """Write every region into level 0, then recompute each touched part of each coarser-level chunk once
        (:meth:`update_pyramid_boxes`): the same pixels as one :meth:`write_region` after another, with one
        pyramid update for many scattered edits (the strokes of a painting session) instead of one per edit."""
        if len(items) == 1:  # one region: its box alone, as an assignment does
            self.write_region(*items[0])
            return
        boxes = []
        for _key, index, value in items:
            with self._naming_damaged_chunks(index):
                box = self._write_level0(index, value)
            if box is not None:
                boxes.append(box)
        if boxes:
            with self._naming_damaged_chunks(None):
                self.update_pyramid_boxes(boxes)

    def _write_level0(self, index: tuple[AxisIndex, ...], value: np.ndarray) -> list[tuple[int, int]] | None:
        """Write ``value`` at ``index`` into level 0; the written box (storage order), None if empty."""
        level0 = self._levels[0]
        kept_user = [p for p in range(len(index)) if not index[p].drop]
        flips = tuple(slice(None, None, -1) if index[p].reverse else slice(None) for p in kept_user)
        value = value[flips]
        kept_storage = [p for p in level0.perm if not index[p].drop]
        storage_value = np.transpose(value, [kept_user.index(p) for p in kept_storage])
        box = [index[p].bounds for p in level0.perm]
        if any(lo >= hi for lo, hi in box):
            return None
        level0.storage[level0.storage_key(index)] = storage_value
        return box

    @contextlib.contextmanager
    def _naming_damaged_chunks(self, index: tuple[AxisIndex, ...] | None) -> Iterator[None]:
        """Turn a codec's failure on a damaged chunk that had to be decoded to merge an edit into it into the
        error naming that chunk (of level 0 at ``index``; a pyramid level: the error names the level)."""
        level0 = self._levels[0]
        try:
            yield
        except CorruptChunkError as exc:  # a bomb guard or a checksum, which do not know the chunk's key
            if index is None or str(self.path) in str(exc):  # no region, or already named
                raise
            raise self.corrupt_chunk_error(0, level0.storage, level0.storage_key(index), exc) from None
        except (MzarrError, MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if index is None:
                raise CorruptChunkError(
                    f"a pyramid level of {self.path} could not be updated ({type(exc).__name__}: {exc}); "
                    f"'mzarr verify {self.path}' lists every damaged chunk"
                ) from None
            raise self.corrupt_chunk_error(0, level0.storage, level0.storage_key(index), exc) from None

    def update_pyramid_boxes(self, boxes: Sequence[list[tuple[int, int]]]) -> None:
        """Recompute the regions ``boxes`` (storage order, level-0 coordinates) in every coarser level, one write
        per touched chunk of each level: the boxes falling in a chunk are recomputed as their bounding box there."""
        current = [list(b) for b in boxes]
        for i in range(1, len(self._levels)):
            prev, cur = self._levels[i - 1].storage, self._levels[i].storage
            halve = tuple(c != p for c, p in zip(self._storage_factor(i), self._storage_factor(i - 1)))
            level = self._levels[i]
            chunks = tuple(level.chunks[p] for p in level.perm)  # storage order
            per_chunk: dict[tuple[int, ...], list[list[int]]] = {}
            for box in current:
                mapped = [(lo // 2, min(-(-hi // 2), n)) if h else (lo, min(hi, n))
                          for (lo, hi), h, n in zip(box, halve, cur.shape)]
                if any(lo >= hi for lo, hi in mapped):
                    continue
                ranges = [range(lo // c, (hi - 1) // c + 1) for (lo, hi), c in zip(mapped, chunks)]
                for coords in itertools.product(*ranges):
                    part = [[max(lo, k * c), min(hi, (k + 1) * c)] for (lo, hi), k, c in zip(mapped, coords, chunks)]
                    have = per_chunk.get(coords)
                    if have is None:
                        per_chunk[coords] = part
                    else:
                        for d, (lo, hi) in enumerate(part):
                            have[d] = [min(have[d][0], lo), max(have[d][1], hi)]
            current = []
            for coords in sorted(per_chunk):
                region = per_chunk[coords]
                src = tuple(slice(2 * lo, min(2 * hi, n)) if h else slice(lo, hi)
                            for (lo, hi), h, n in zip(region, halve, prev.shape))
                down = downsample(np.asarray(prev[src]), halve, self.info.downsample)
                cur[tuple(slice(lo, hi) for lo, hi in region)] = down
                current.append([(lo, hi) for lo, hi in region])

    def update_pyramid(self, box: list[tuple[int, int]]) -> None:
        """Recompute the region ``box`` (storage order, level 0 coordinates) in every coarser level."""
        for i in range(1, len(self._levels)):
            prev, cur = self._levels[i - 1].storage, self._levels[i].storage
            halve = tuple(c != p for c, p in zip(self._storage_factor(i), self._storage_factor(i - 1)))
            src = []
            for (lo, hi), h, n in zip(box, halve, prev.shape):
                src.append((lo // 2 * 2, min(-(-hi // 2) * 2, n)) if h else (lo, hi))
            block = np.asarray(prev[tuple(slice(lo, hi) for lo, hi in src)])
            down = downsample(block, halve, self.info.downsample)
            box = [((lo // 2) if h else lo, (lo // 2 if h else lo) + n) for (lo, _), h, n in zip(src, halve, down.shape)]
            cur[tuple(slice(lo, hi) for lo, hi in box)] = down

    def _storage_factor(self, level_index: int) -> tuple[int, ...]:
        level = self._levels[level_index]
        return tuple(level.factor[p] for p in level.perm)

    # -- attributes ---------------------------------------------------------------------------------------------
    def _open_group(self) -> Any:
        """The root group with its metadata read afresh from the store."""
        return zarr.open_group(self.store, mode="r+" if self._writable else "r")

    def load_attrs(self) -> dict[str, Any]:
        from ..metadata_check import read_group_info

        return dict(read_group_info(self.store, self.kind, self.path).attrs)  # bounded and checked, like the open

    def store_attrs(self, attrs: dict[str, Any]) -> None:
        group = self._open_group()
        block = dict(group.attrs.get("mzarr") or {})
        block["attrs"] = attrs
        group.attrs.update({"mzarr": block})

    # -- child groups (label images) ----------------------------------------------------------------------------
    def put_document(self, key: str, doc: dict[str, Any]) -> None:
        """Write the JSON document ``key`` (inside the caller's write transaction)."""
        from ..labels import put_json

        put_json(self.store, key, doc)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key under ``prefix`` (a child group; inside the caller's write transaction)."""
        from zarr.core.sync import sync

        sync(self.store.delete_dir(prefix.rstrip("/")))

    def move_prefix(self, old: str, new: str) -> None:
        """Rename every key under ``old`` to start with ``new`` instead (both end with '/'; ``new`` is free)."""
        from zarr.core.sync import sync

        async def keys() -> list[str]:
            return [k async for k in self.store.list_prefix(old)]

        for key in sync(keys()):
            value = self.store.get_bytes_sync(key) if hasattr(self.store, "get_bytes_sync") else None
            if value is None:
                from zarr.core.buffer import default_buffer_prototype

                buf = sync(self.store.get(key, default_buffer_prototype()))
                value = buf.to_bytes()
            self._put_bytes(new + key[len(old):], value)
        self.delete_prefix(old)

    def _put_bytes(self, key: str, data: bytes) -> None:
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.sync import sync

        sync(self.store.set(key, default_buffer_prototype().buffer.from_bytes(data)))

    def close(self) -> None:
        self.cache.clear()
        if self.owns_store:
            self.store.close()


class _PrefixedSession(CacheSession):
    """A label image's use of its file's cache: its keys are kept apart from the image's under its prefix."""

    __slots__ = ("prefix",)

    def __init__(self, cache: ChunkCache, prefix: str):
        super().__init__(cache)
        self.prefix = prefix

    def get(self, key: Any, count: bool = True) -> np.ndarray | None:
        return self.cache.get((self.prefix, key), count)

    def put(self, key: Any, value: np.ndarray) -> np.ndarray:
        return self.cache.put((self.prefix, key), value, self.generation)


class SqliteBackend(StoredBackend):
    """The single-file .mzarr: every edit and metadata change is one SQLite transaction."""

    kind: ClassVar[str] = "sqlite"

    def _storage_transaction(self, write: bool) -> contextlib.AbstractContextManager[None]:
        return self.store.transaction(write)

    def _data_version(self) -> int | None:
        # Inside the read snapshot: the value of the state this read sees (SQLite's counter of other connections'
        # commits; this connection's own commits are the write transactions above)
        return self.store.data_version()

    @property
    def broken(self) -> str | None:
        return self.store.broken

    def delete_prefix(self, prefix: str) -> None:
        # One statement, inside the caller's transaction
        self.store._check_writable()
        self.store._execute("DELETE FROM zarr WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))

    def move_prefix(self, old: str, new: str) -> None:
        # One statement, inside the caller's transaction: no chunk is read or copied
        self.store._check_writable()
        self.store._execute(
            "UPDATE zarr SET key = ? || substr(key, ?) WHERE substr(key, 1, ?) = ?", (new, len(old) + 1, len(old), old)
        )


class FolderBackend(StoredBackend):
    """A plain OME-Zarr folder: editable, but not atomically (one file per chunk; documented in FORMAT.md)."""

    kind: ClassVar[str] = "directory"

    def move_prefix(self, old: str, new: str) -> None:
        # One rename of the child group's folder
        target = Path(self.path) / new.rstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(Path(self.path) / old.rstrip("/"), target)
