"""Background chunk loading: a thread pool, a bounded cache in MB and cancellation of stale requests.

For an opened image the cache is the library's own decoded-chunk cache (:class:`LibraryCache` over
``mzarr_core``'s per-file cache, sized by the app's budget), so the decoded pixels exist once; :class:`LRUCache`
remains for loaders fed by any other ``fetch`` function. What the viewer keeps besides is different: the rendered
RGBA tiles on screen.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Any, Callable, Hashable, Iterable, Sequence

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


#: glibc's mallopt option M_ARENA_MAX, and the number of heaps the loaders allow (the main thread's and one more)
_M_ARENA_MAX, MALLOC_ARENAS = -8, 2
#: None until the first loader starts; then whether glibc's heaps were limited (glibc) or not (another C library)
malloc_tuned: bool | None = None


#: reads whose pace :meth:`ChunkLoader.eta` takes, and how recent the last of them must be
RATE_READS, RATE_WINDOW_S = 32, 0.5


def tune_malloc() -> bool:
    """Let glibc keep at most ``MALLOC_ARENAS`` heaps (once per process): chunks decoded by a dozen reader threads
    then go back to heaps every thread reuses, instead of one heap per thread each holding its own dropped chunks.
    The mmap threshold stays glibc's (dynamic): a fixed 128 KB threshold also bounded memory, but every decoded
    brick and every temporary of a decode or a colouring was then a fresh mapping, faulted in page by page (decoding
    took 1.3x the CPU; docs/VIEWER.md, "Orthogonal views", has both). False where the C library has no
    ``mallopt``."""
    global malloc_tuned
    if malloc_tuned is None:
        malloc_tuned = False
        try:
            import ctypes
            import ctypes.util

            name = ctypes.util.find_library("c")
            libc = ctypes.CDLL(name) if name else None
            if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version"):
                malloc_tuned = bool(libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS))
        except (OSError, AttributeError):  # no C library to load (Windows) or no mallopt (macOS, musl)
            malloc_tuned = False
    return malloc_tuned


def read_chunk(level: Any, chunk_index: Sequence[int]) -> np.ndarray:
    """One whole chunk of ``level`` (read-only, from the file's cache or decoded into it): every whole-chunk read
    in the app goes through here (``Level.read_chunk``)."""
    return level.read_chunk(tuple(chunk_index))


def read_chunk_plane(level: Any, chunk_index: Sequence[int], z: int) -> np.ndarray:
    """Plane ``z`` (level coordinates) of one chunk of a volume: every plane read in the app goes through here.

    Returns ``level[region]`` of the chunk with its z axis replaced by ``z`` (dropped; channels of the chunk kept,
    user axis order), read-only, decoding one JPEG XL frame per brick (``Level.read_chunk_plane``).
    """
    return level.read_chunk_plane(tuple(chunk_index), int(z))


def plane_decodable(level: Any) -> bool:
    """True if ``level`` is a volume whose chunks decode one z-plane at a time (JPEG XL frames)."""
    return "z" in getattr(level, "axes", "") and bool(getattr(level, "plane_reads_are_fast", False))


DECODED_LOG = 10_000  # keys kept in ChunkLoader.decoded (the reads are all counted in decoded_count)


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


class LibraryCache:
    """The loader cache of a :class:`~mzarr_app.document.Document`: a view of the library's decoded-chunk cache of
    the open file (what ``Document.read_chunk`` decoded is already there), with LRUCache's interface.

    ``owner`` answers ``cached(key)`` (the array, or None without reading), ``cache_bytes`` / ``set_cache_bytes(n)``,
    ``cache_nbytes()``, ``cache_entries()`` and ``clear_cache()``. An array the library did not keep (larger than the whole budget, or decoded while
    another process committed) is held in a one-entry spill, so a loaded chunk can always be shown once.
    """

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self._spill = LRUCache(0)  # keeps the last such array only
        self._known: set[Hashable] = set()
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        return int(self.owner.cache_bytes)

    @property
    def nbytes(self) -> int:
        """Bytes of decoded data held for this image (the library's cache, plus the spill)."""
        return int(self.owner.cache_nbytes()) + self._spill.nbytes

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: Hashable) -> bool:
        return self.peek(key) is not None

    def get(self, key: Hashable) -> np.ndarray | None:
        value = self.owner.cached(key)
        return value if value is not None else self._spill.get(key)

    def peek(self, key: Hashable) -> np.ndarray | None:
        value = self.owner.cached(key)
        return value if value is not None else self._spill.peek(key)

    def put(self, key: Hashable, value: np.ndarray) -> None:
        """Called after ``fetch(key)`` returned ``value``: the library keeps it already (else: the spill)."""
        with self._lock:
            self._known.add(key)
            prune = len(self._known) > max(4096, 4 * int(self.owner.cache_entries()))
            known = list(self._known) if prune else []
        if prune:  # forget keys the library has dropped since (a long session must not grow this set forever)
            gone = {k for k in known if self.owner.cached(k) is None and k != key}
            with self._lock:
                self._known.difference_update(gone)
        if self.owner.cached(key) is None:
            self._spill.put(key, value)

    def set_max_bytes(self, max_bytes: int) -> None:
        self.owner.set_cache_bytes(int(max_bytes))

    def discard(self, pred: Callable[[Hashable], bool]) -> int:
        """Forget the keys matching ``pred`` (the library's cache of the image is emptied if any was cached)."""
        with self._lock:
            gone = [k for k in self._known if pred(k)]
            self._known.difference_update(gone)
        hit = [k for k in gone if self.owner.cached(k) is not None]
        if hit:
            self.owner.clear_cache()
        self._spill.discard(pred)
        return len(hit)

    def clear(self) -> None:
        with self._lock:
            self._known.clear()
        self.owner.clear_cache()
        self._spill.clear()

    def release(self) -> None:
        """The loader is closed: the owner's next loader may start with an empty cache (if no other uses it)."""
        release = getattr(self.owner, "release_chunk_cache", None)
        if release is not None:
            release(self)
        self._spill.clear()

    def keys(self) -> list[Hashable]:
        """Keys loaded through this cache that are still cached."""
        with self._lock:
            known = list(self._known)
        return [k for k in known if self.peek(k) is not None]


class _Worker(QRunnable):
    """Pulls keys from the loader's queue until it is empty."""

    def __init__(self, loader: "ChunkLoader") -> None:
        super().__init__()
        self.loader = loader
        self.setAutoDelete(True)

    def run(self) -> None:  # noqa: D401 - Qt override
        self.loader._work()


class ChunkLoader(QObject):
    """Loads chunks with ``fetch(key)`` on a thread pool into a cache, newest request set wins.

    The cache is ``cache`` if given; else, when ``fetch`` is a method of an object offering
    ``shared_chunk_cache(max_bytes)`` (a Document), the library's cache of its image, sized to ``cache_mb``;
    else an :class:`LRUCache` of ``cache_mb``.
    """

    chunkLoaded = Signal(object)
    chunkFailed = Signal(object, str)

    def __init__(self, fetch: Callable[[Hashable], np.ndarray], cache_mb: float = 512,
                 threads: int | None = None, parent: QObject | None = None, cache: Any = None) -> None:
        super().__init__(parent)
        tune_malloc()
        self.fetch = fetch
        max_bytes = int(cache_mb * 1024 * 1024)
        shared = getattr(getattr(fetch, "__self__", None), "shared_chunk_cache", None)
        if cache is None:
            cache = shared(max_bytes) if callable(shared) else LRUCache(max_bytes)
        self.cache = cache
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
        #: the last keys read (a bounded log: a day of browsing must not grow it without end); all are counted in
        #: ``decoded_count``
        self.decoded: deque[Hashable] = deque(maxlen=DECODED_LOG)
        self.decoded_count = 0
        self.decode_seconds = 0.0
        #: called in the reading thread with (key, array) after each read, before ``chunkLoaded``: work on the
        #: chunk that would otherwise wait for the GUI thread (a label layer colours its tiles here); an exception
        #: in it is ignored (the GUI thread then does that work itself)
        self.prepare: Callable[[Hashable, np.ndarray], None] | None = None
        self.prepare_seconds = 0.0
        #: CPU time of the reading threads (fetch, cache, prepare), for benchmarks
        self.cpu_seconds = 0.0
        #: reads of this loader start once ``after`` (another loader, :meth:`follow`) has none queued
        self.after: ChunkLoader | None = None
        self._followers: list[ChunkLoader] = []
        #: when the last reads ended (perf_counter), for :meth:`eta`
        self._ended: deque[float] = deque(maxlen=RATE_READS)

    def follow(self, leader: "ChunkLoader") -> None:
        """Start reads only once ``leader`` has none queued (its reads in flight may still run): a label layer's
        reads wait for the image's, then use the core left idle while the GUI thread draws the image."""
        self.after = leader
        leader._followers.append(self)

    def queued(self) -> int:
        """Number of chunks queued (not yet being read)."""
        with self._lock:
            return len(self._pending)

    def _held(self) -> bool:
        after = self.after
        return after is not None and not after._closed and after.queued() > 0

    def _start_workers(self) -> None:
        """Start pool workers for the queue (none while held by ``after``)."""
        if self._held():
            return
        with self._lock:
            if self._closed:
                return
            start = max(0, min(len(self._pending), self.pool.maxThreadCount() - self._workers))
            self._workers += start
        for _ in range(start):
            self.pool.start(_Worker(self))

    def _release_followers(self) -> None:
        for f in self._followers:
            f._start_workers()

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
        self._start_workers()
        if not queue:
            self._release_followers()
        return queue

    def pending(self) -> int:
        """Number of chunks queued or being read."""
        with self._lock:
            return len(self._pending) + len(self._inflight)

    def idle(self) -> bool:
        """True when nothing is queued or in flight."""
        return self.pending() == 0

    def eta(self) -> float | None:
        """Seconds until what is queued or in flight now is read, at the pace of the last reads (None when too few
        reads ended lately to tell, or when the last ended more than ``RATE_WINDOW_S`` ago)."""
        with self._lock:
            left = len(self._pending) + len(self._inflight)
            ended = list(self._ended)
        if left == 0:
            return 0.0
        if len(ended) < 8 or time.perf_counter() - ended[-1] > RATE_WINDOW_S or ended[-1] <= ended[0]:
            return None
        return left * (ended[-1] - ended[0]) / (len(ended) - 1)

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
                drained = not self._pending
            if drained and self._followers:
                self._release_followers()
            try:
                t0, c0 = time.perf_counter(), time.thread_time()
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
            prepare, dp = self.prepare, 0.0
            if prepare is not None:
                t1 = time.perf_counter()
                try:
                    prepare(key, arr)
                except Exception:  # noqa: S110 - optional work: the GUI thread does it when it shows the tile
                    pass
                dp = time.perf_counter() - t1
            dc = time.thread_time() - c0
            with self._lock:
                self._inflight.discard(key)
                self._ended.append(time.perf_counter())
                self.decoded.append(key)
                self.decoded_count += 1
                self.decode_seconds += dt
                self.prepare_seconds += dp
                self.cpu_seconds += dc
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
        release = getattr(self.cache, "release", None)
        if release is not None:
            release()
        # wait in Python (sleep releases the GIL so running reads can finish), then let Qt join its threads
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            with self._lock:
                if self._workers <= 0:
                    break
            time.sleep(0.002)
        self.pool.waitForDone(max(0, int((deadline - time.monotonic()) * 1000)))
