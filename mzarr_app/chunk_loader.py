"""Background chunk loading: a thread pool, a bounded LRU cache in MB and cancellation of stale requests."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterable, Sequence

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


def read_chunk(level: Any, chunk_index: Sequence[int]) -> np.ndarray:
    """Read and decode one whole chunk of ``level``: every whole-chunk read in the app goes through here."""
    region = tuple(level.chunk_region(tuple(chunk_index)))
    return np.asarray(level[region])


def read_chunk_plane(level: Any, chunk_index: Sequence[int], z: int) -> np.ndarray:
    """Read plane ``z`` (level coordinates) of one chunk of a volume: every plane read in the app goes through here.

    Returns ``level[region]`` of the chunk with its z axis replaced by ``z`` (dropped; channels of the chunk kept,
    user axis order), decoding one JPEG XL frame per brick through ``Level.z_plane``.
    """
    region = tuple(level.chunk_region(tuple(chunk_index)))
    axes: str = level.axes
    zr = region[axes.index("z")]
    if not zr.start <= z < zr.stop:
        raise IndexError(f"plane z={z} is outside chunk {tuple(chunk_index)} (z {zr.start}..{zr.stop - 1})")
    plane = np.asarray(level.z_plane(int(z), region[axes.index("y")], region[axes.index("x")]))
    if "c" in axes:  # z_plane returns every channel: keep this chunk's
        kept = axes.replace("z", "")
        cr = region[axes.index("c")]
        if (cr.start, cr.stop) != (0, level.shape[axes.index("c")]):
            plane = np.ascontiguousarray(np.take(plane, range(cr.start, cr.stop), axis=kept.index("c")))
    return plane


def plane_decodable(level: Any) -> bool:
    """True if ``level`` is a volume whose chunks decode one z-plane at a time (JPEG XL frames)."""
    if "z" not in getattr(level, "axes", "") or not hasattr(level, "z_plane"):
        return False
    try:
        from mzarr_core.frames import frame_decodable
    except ImportError:  # a core without frame decoding: z_plane would read whole chunks anyway
        return False
    return bool(frame_decodable(getattr(level, "storage", None)))


class LRUCache:
    """Thread-safe LRU cache of NumPy arrays bounded by total bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes currently held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def get(self, key: Hashable) -> np.ndarray | None:
        """Value for ``key`` (marked most recently used) or None."""
        with self._lock:
            v = self._data.get(key)
            if v is not None:
                self._data.move_to_end(key)
            return v

    def peek(self, key: Hashable) -> np.ndarray | None:
        """Value for ``key`` without touching the LRU order."""
        with self._lock:
            return self._data.get(key)

    def put(self, key: Hashable, value: np.ndarray) -> None:
        """Insert ``value`` and evict least recently used entries beyond the budget."""
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._data[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes and len(self._data) > 1:
                _, ev = self._data.popitem(last=False)
                self._bytes -= ev.nbytes

    def set_max_bytes(self, max_bytes: int) -> None:
        """Change the budget, evicting at once if needed."""
        with self._lock:
            self.max_bytes = int(max_bytes)
            while self._bytes > self.max_bytes and len(self._data) > 1:
                _, ev = self._data.popitem(last=False)
                self._bytes -= ev.nbytes

    def discard(self, pred: Callable[[Hashable], bool]) -> int:
        """Remove every key for which ``pred`` is true; returns how many."""
        with self._lock:
            gone = [k for k in self._data if pred(k)]
            for k in gone:
                self._bytes -= self._data.pop(k).nbytes
            return len(gone)

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def keys(self) -> list[Hashable]:
        """Snapshot of keys, least recently used first."""
        with self._lock:
            return list(self._data)


class _Worker(QRunnable):
    """Pulls keys from the loader's queue until it is empty."""

    def __init__(self, loader: "ChunkLoader") -> None:
        super().__init__()
        self.loader = loader
        self.setAutoDelete(True)

    def run(self) -> None:  # noqa: D401 - Qt override
        self.loader._work()


class ChunkLoader(QObject):
    """Loads chunks with ``fetch(key)`` on a thread pool into an LRU cache, newest request set wins."""

    chunkLoaded = Signal(object)
    chunkFailed = Signal(object, str)

    def __init__(self, fetch: Callable[[Hashable], np.ndarray], cache_mb: float = 512,
                 threads: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.fetch = fetch
        self.cache = LRUCache(int(cache_mb * 1024 * 1024))
        self.pool = QThreadPool()
        # reads wait on zarr's IO loop as well as decode, so a few more threads than cores keep the CPUs busy
        self.pool.setMaxThreadCount(threads or max(4, min(8, QThreadPool.globalInstance().maxThreadCount() * 2)))
        self._lock = threading.Lock()
        self._pending: list[Hashable] = []
        self._pending_set: set[Hashable] = set()
        self._inflight: set[Hashable] = set()
        self._workers = 0
        self._closed = False
        self.cancelled = 0
        self.failed: dict[Hashable, str] = {}
        self.decoded: list[Hashable] = []
        self.decode_seconds = 0.0

    def get(self, key: Hashable) -> np.ndarray | None:
        """Cached chunk or None."""
        return self.cache.get(key)

    def request(self, keys: Iterable[Hashable]) -> list[Hashable]:
        """Make ``keys`` (in priority order) the wanted set: queue the missing, cancel queued others.

        Returns the keys that are neither cached nor already being read (i.e. newly queued or kept queued).
        """
        wanted: list[Hashable] = []
        seen: set[Hashable] = set()
        for k in keys:
            if k in seen or k in self.failed:
                continue
            seen.add(k)
            if k not in self.cache:
                wanted.append(k)
        with self._lock:
            if self._closed:
                return []
            queue = [k for k in wanted if k not in self._inflight]
            dropped = self._pending_set.difference(queue)
            self.cancelled += len(dropped)
            self._pending = queue
            self._pending_set = set(queue)
            start = min(len(queue), self.pool.maxThreadCount() - self._workers)
            self._workers += max(0, start)
        for _ in range(max(0, start)):
            self.pool.start(_Worker(self))
        return queue

    def pending(self) -> int:
        """Number of chunks queued or being read."""
        with self._lock:
            return len(self._pending) + len(self._inflight)

    def idle(self) -> bool:
        """True when nothing is queued or in flight."""
        return self.pending() == 0

    def _work(self) -> None:
        """Worker loop (runs in pool threads)."""
        while True:
            with self._lock:
                if self._closed or not self._pending:
                    self._workers -= 1
                    return
                key = self._pending.pop(0)
                self._pending_set.discard(key)
                self._inflight.add(key)
            try:
                t0 = time.perf_counter()
                arr = self.fetch(key)
                dt = time.perf_counter() - t0
            except Exception as exc:  # corrupt chunk, closed file...: report, never crash the pool
                with self._lock:
                    self._inflight.discard(key)
                    self.failed[key] = f"{type(exc).__name__}: {exc}"
                    closed = self._closed
                if not closed:
                    self.chunkFailed.emit(key, self.failed[key])
                continue
            self.cache.put(key, arr)
            with self._lock:
                self._inflight.discard(key)
                self.decoded.append(key)
                self.decode_seconds += dt
                closed = self._closed
            if not closed:
                self.chunkLoaded.emit(key)

    def invalidate(self, pred: Callable[[Hashable], bool] | None = None) -> None:
        """Forget cached chunks (all, or those matching ``pred``) and failures."""
        if pred is None:
            self.cache.clear()
            self.failed.clear()
        else:
            self.cache.discard(pred)
            for k in [k for k in self.failed if pred(k)]:
                del self.failed[k]

    def close(self, timeout_ms: int = 10000) -> None:
        """Cancel everything and wait for running reads to end."""
        with self._lock:
            self._closed = True
            self.cancelled += len(self._pending)
            self._pending = []
            self._pending_set = set()
        # wait in Python (sleep releases the GIL so running reads can finish), then let Qt join its threads
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            with self._lock:
                if self._workers <= 0:
                    break
            time.sleep(0.002)
        self.pool.waitForDone(max(0, int((deadline - time.monotonic()) * 1000)))
