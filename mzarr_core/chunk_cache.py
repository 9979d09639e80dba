"""A cache of decoded chunks, one per open image file, bounded in bytes and shared by all its levels.

Decoding is the whole cost of reading a .mzarr (a 512 x 512 JPEG XL chunk takes ~3-5 ms, fetching its bytes ~0.1 ms),
so every region read, :meth:`Level.read_chunk` and :meth:`Level.z_plane` keep what they decoded here: reading an
overlapping region again, a sliding window, or a viewer panning back costs a copy instead of a decode.

* **Bound.** Least recently used chunks are dropped beyond ``max_bytes``; a chunk larger than the bound is not
  kept. The default (:data:`DEFAULT_CACHE_BYTES`) is 256 MiB, or 1/8 of the machine's memory if that is less:
  256 MiB holds two full z-slabs of 64^3 uint16 bricks of a 1024 x 1024 wide volume (the working set of a
  128^3 sliding window with stride 64) and ~1000 grey or ~340 RGB 512^2 chunks (several screens of a viewer);
  docs/BENCHMARKS.md has the measurements. ``0`` disables caching.
* **Setting it.** Per file: ``Mzarr(path, cache_bytes=n)`` or ``m.cache_bytes = n``. For every file that has no
  setting of its own (now and opened later): :func:`set_cache_bytes`. ``None`` returns a file to the global value.
* **Safety.** Cached arrays are read-only, so a caller cannot change what later reads return; region reads copy
  out of the cache into a new array. The cache is thread-safe.
* **Staleness.** A write transaction of this image empties its cache when it begins and when it ends (commit or
  rollback), and nothing is cached while it runs, so neither new pixels of a rolled-back edit nor old pixels of a
  committed one can be served. Other :class:`~mzarr_core.Mzarr` objects of this process on the same path see the
  write through a per-path counter checked at the start of every read. Other processes' commits to a .mzarr file
  are seen through SQLite's ``PRAGMA data_version``, checked at the start of every read snapshot. An OME-Zarr
  *folder* changed by another process is not noticed (a folder has no change counter): reopen it, or use
  ``cache_bytes=0``. Lookups that read nothing (``Level.read_chunk(..., cached_only=True)``) answer from memory
  without a snapshot: another process's commit is noticed by the next read.
* **Scope.** Chunks Mzarr decodes itself (its own codec pipelines) and whole chunks read through zarr
  (``Level.read_chunk`` of a foreign OME-Zarr, e.g. blosc) are cached; region reads of foreign pipelines go through
  zarr uncached, as before. In-memory images have no cache.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "CacheInfo",
    "ChunkCache",
    "freeze",
    "get_cache_bytes",
    "set_cache_bytes",
]

MiB = 1 << 20


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def _default_bytes() -> int:
    ram = _physical_memory()
    return min(256 * MiB, ram // 8) if ram else 256 * MiB


#: The cache bound of every open file without a setting of its own, unless changed by :func:`set_cache_bytes`.
DEFAULT_CACHE_BYTES: int = _default_bytes()

_global_bytes = DEFAULT_CACHE_BYTES
_following_global: "weakref.WeakSet[ChunkCache]" = weakref.WeakSet()
_registry_lock = threading.Lock()


def _check_bytes(n: Any) -> int:
    try:
        value = int(n)
    except (TypeError, ValueError):
        from .errors import MzarrValueError

        raise MzarrValueError(f"a cache size is a number of bytes >= 0 (0 disables caching), got {n!r}") from None
    if value < 0 or value != n:
        from .errors import MzarrValueError

        raise MzarrValueError(f"a cache size is a whole number of bytes >= 0 (0 disables caching), got {n!r}")
    return value


def freeze(value: np.ndarray) -> np.ndarray:
    """Make ``value`` read-only, and every array it is a view of: NumPy lets a view be made writeable again while
    the array owning the memory is writeable."""
    a: Any = value
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            a.flags.writeable = False
        a = a.base
    return value


def set_cache_bytes(n: int | None) -> None:
    """Bound the decoded-chunk cache of every open file that has no ``cache_bytes`` of its own, and of files opened
    later, to ``n`` bytes (0 disables caching; None restores :data:`DEFAULT_CACHE_BYTES`). Caches shrink at once."""
    global _global_bytes
    value = DEFAULT_CACHE_BYTES if n is None else _check_bytes(n)
    with _registry_lock:
        _global_bytes = value
        caches = list(_following_global)
    for cache in caches:
        cache._trim()


def get_cache_bytes() -> int:
    """The global bound set by :func:`set_cache_bytes` (the default for files without their own)."""
    return _global_bytes


# Per resolved path: how many write transactions this process has ended on it. Every cache of that path remembers
# the count it last saw, so a write through one Mzarr object empties the caches of the others.
_write_counts: dict[str, int] = {}


def note_write(path_key: str) -> None:
    """Record that this process changed the image at ``path_key`` (a resolved path)."""
    with _registry_lock:
        _write_counts[path_key] = _write_counts.get(path_key, 0) + 1


def write_count(path_key: str) -> int:
    return _write_counts.get(path_key, 0)


@dataclass(frozen=True)
class CacheInfo:
    """The state of one image's decoded-chunk cache (:meth:`mzarr_core.Mzarr.cache_info`)."""

    max_bytes: int  #: the bound in force
    nbytes: int  #: bytes of decoded data held
    entries: int  #: chunks (and z-planes of bricks) held
    hits: int  #: lookups served from the cache since the image was opened
    misses: int  #: lookups that had to decode


class ChunkCache:
    """A thread-safe LRU of read-only decoded arrays, bounded by their total bytes.

    ``generation`` grows at every :meth:`clear`: a reader records it when its read snapshot begins and passes it to
    :meth:`put`, which refuses arrays decoded before a clear (from a state that may no longer be current).
    """

    def __init__(self, max_bytes: int | None = None):
        self._lock = threading.Lock()
        self._data: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._cost: dict[Hashable, int] = {}
        self._bytes = 0
        self._own: int | None = None
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self.max_bytes = max_bytes

    # -- bound ------------------------------------------------------------------------------------------------------
    @property
    def max_bytes(self) -> int:
        """The bound in bytes now in force (this cache's own, else the global one)."""
        return _global_bytes if self._own is None else self._own

    @max_bytes.setter
    def max_bytes(self, n: int | None) -> None:
        value = None if n is None else _check_bytes(n)
        with _registry_lock:
            self._own = value
            if value is None:
                _following_global.add(self)
            else:
                _following_global.discard(self)
        self._trim()

    @property
    def own_max_bytes(self) -> int | None:
        """This cache's own bound, None if it follows the global one."""
        return self._own

    @property
    def nbytes(self) -> int:
        """Bytes of decoded data held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def _trim(self) -> None:
        with self._lock:
            self._evict(self.max_bytes)

    def _evict(self, limit: int) -> None:
        while self._bytes > limit and self._data:
            key, _ = self._data.popitem(last=False)
            self._bytes -= self._cost.pop(key)

    # -- use --------------------------------------------------------------------------------------------------------
    def get(self, key: Hashable, count: bool = True) -> np.ndarray | None:
        """The array cached under ``key`` (now the most recently used), or None. ``count``: in hits / misses."""
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += count
                return None
            self._data.move_to_end(key)
            self.hits += count
            return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def put(self, key: Hashable, value: np.ndarray, generation: int | None = None, nbytes: int | None = None) -> np.ndarray:
        """Keep ``value`` (made read-only) under ``key``, unless the cache was cleared since ``generation`` or the
        value alone exceeds the bound. ``nbytes`` is the memory it holds (default ``value.nbytes``; more for a
        view of a larger decoded buffer). Returns the read-only array."""
        freeze(value)
        cost = int(value.nbytes if nbytes is None else nbytes)
        limit = self.max_bytes
        if cost > limit:
            return value
        with self._lock:
            if generation is not None and generation != self.generation:
                return value
            old = self._cost.pop(key, None)
            if old is not None:
                del self._data[key]
                self._bytes -= old
            self._data[key] = value
            self._cost[key] = cost
            self._bytes += cost
            self._evict(limit)
        return value

    def clear(self) -> None:
        """Drop everything, and refuse arrays decoded before now."""
        with self._lock:
            self.generation += 1
            self._data.clear()
            self._cost.clear()
            self._bytes = 0

    def discard(self, pred: Callable[[Hashable], bool]) -> int:
        """Drop every entry whose key satisfies ``pred``; returns how many."""
        with self._lock:
            gone = [k for k in self._data if pred(k)]
            for k in gone:
                del self._data[k]
                self._bytes -= self._cost.pop(k)
            return len(gone)

    def keys(self) -> list[Hashable]:
        """The keys, least recently used first."""
        with self._lock:
            return list(self._data)

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self.max_bytes, self._bytes, len(self._data), self.hits, self.misses)

    def __repr__(self) -> str:
        return f"<ChunkCache {len(self._data)} arrays, {self._bytes / MiB:.1f} of {self.max_bytes / MiB:.0f} MiB>"
