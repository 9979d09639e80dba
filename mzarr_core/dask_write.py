"""Saving with dask: chunks and pyramid levels computed and encoded in parallel by dask workers (threads, processes
or a ``dask.distributed`` cluster), the encoded bytes inserted by the one writer (the caller: SQLite has one writer).

The build is :func:`mzarr_core.writer.build_pyramid`'s, cut into tasks: one task per superblock of a pass
(:func:`~mzarr_core.writer.plan_pass`). A task gets its superblock's input, builds the blocks of the pass's levels
(:func:`~mzarr_core.writer.superblock_blocks`) and encodes them into an in-memory Zarr store holding arrays made
exactly as the file's (:func:`~mzarr_core.writer.create_arrays`), then returns the encoded chunks as bytes, never
decoded pixels. So every stored chunk is bit for bit the plain save's. The input of a task is:

* pass 0 (from level 0): the culled, optimised graph of the superblock's region of the source dask array, computed
  inside the task (``scheduler="sync"``): workers read the source themselves (a cluster's workers need the input
  files on a shared file system); a :class:`PathSource` (what ``mzarr convert --workers`` reads through) is cut to
  the region and read by the task; any other source is read by the writer and its pixels shipped;
* later passes (from the coarsest level of the previous pass, as stored): that level's encoded chunks of the region,
  read back from the file being written and decoded by the task, as the plain save decodes them.

Memory is bounded on every side: at most ``2 x workers`` tasks are in flight (submitted, not yet inserted), each
holding one superblock (at most ``BLOCK_BUDGET`` bytes of pixels) on its worker and its encoded chunks until the
writer has inserted them; the writer never holds more than those results (docs/API.md, "Writing with dask").
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import mmap
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.storage import MemoryStore

from .codecs import StorageCodec
from .errors import MzarrError, MzarrValueError
from .level import StorageArray, StorageView
from .ngff import ImageInfo
from .pyramid import LevelGeometry
from .writer import (
    Progress,
    _chunk_coords,
    _count_chunks,
    _cores,
    _write_batch,
    create_arrays,
    plan_pass,
    store_key_bytes,
    superblock_blocks,
)

__all__ = ["DaskBuild", "DaskSaveStats", "PathSource", "dask_builder", "is_dask_array"]

IN_FLIGHT_PER_WORKER = 2  # one task running and one queued per worker: workers never wait for the writer


@dataclass
class DaskSaveStats:
    """What a dask save measured; pass one as ``Mzarr.save(..., dask_stats=)`` to have it filled."""

    workers: int = 0  # tasks that run at once
    max_in_flight: int = 0  # the bound on tasks submitted and not yet inserted
    peak_in_flight: int = 0  # the most there were at once
    tasks: int = 0
    chunks_stored: int = 0
    bytes_stored: int = 0
    insert_seconds: float = 0.0  # the writer inserting encoded chunks into the file
    task_seconds: float = 0.0  # the tasks running, summed over the workers (reading, building, encoding)
    wall_seconds: float = 0.0  # the whole build (the file's metadata before it and its commit after it excluded)
    worker_peak_rss: dict[int, int] = field(default_factory=dict)  # worker process id -> peak resident bytes
    timeline: list[tuple[int, int, float, float, float]] = field(default_factory=list)  # (pass start level, worker
    # process id, task start, task end, inserted) in seconds from the build's start (time.time(): one clock per host)
    writer_peak_rss: int = 0  # the writer process's peak resident bytes

    @property
    def writer_busy(self) -> float:
        """The fraction of the build's wall time the writer spent inserting (near 1: the writer is the bottleneck)."""
        return self.insert_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def workers_busy(self) -> float:
        """The fraction of the build's wall time the workers spent in tasks (below 1: start-up, waiting, imbalance)."""
        return self.task_seconds / (self.workers * self.wall_seconds) if self.workers and self.wall_seconds > 0 else 0.0


def is_dask_array(obj: Any) -> bool:
    """Whether ``obj`` is a dask array (without importing dask when it was never imported)."""
    if "dask.array" not in sys.modules:
        return False
    import dask.array as da

    return isinstance(obj, da.Array)


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (0 where the platform does not say). Linux: VmHWM, which a
    spawned process does not inherit from its parent (ru_maxrss keeps the parent's peak across exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; Linux: KiB


# -- a source read by path in every process ------------------------------------------------------------------------
_sources = threading.local()  # per thread of each process: (path, options) -> the opened Source


@dataclass(frozen=True)
class PathSource:
    """An image file read through :func:`mzarr_core.formats.read` by path, lazily: what each worker process (and
    thread) opens once for itself. Cheap to pickle; the file must be readable at ``path`` where the tasks run."""

    path: str
    read_options: tuple[tuple[str, Any], ...]
    shape: tuple[int, ...]
    dtype_str: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.dtype_str)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @classmethod
    def of(cls, path: Any, read_options: dict[str, Any] | None, array: Any) -> "PathSource":
        """The source ``read(path, **read_options)`` gives (its ``array`` already opened here)."""
        return cls(str(os.path.realpath(path)), tuple(sorted((read_options or {}).items())),
                   tuple(int(n) for n in array.shape), np.dtype(array.dtype).str)

    def opened(self, quiet: bool = False) -> Any:
        """The file opened by this thread of this process (once; a DICOM series' headers are read then). ``quiet``:
        the reader's warnings are not shown (a worker: the writer opened the file first and showed them)."""
        from .formats import read

        opened = getattr(_sources, "opened", None)
        if opened is None:
            opened = _sources.opened = {}
        source = opened.get((self.path, self.read_options))
        if source is None:
            with warnings.catch_warnings():
                if quiet:
                    warnings.simplefilter("ignore")
                source = read(self.path, **dict(self.read_options))
            opened[(self.path, self.read_options)] = source
            if tuple(int(n) for n in source.array.shape) != self.shape:
                raise MzarrError(f"{self.path} changed while it was being converted (its shape is now "
                                 f"{tuple(source.array.shape)}, not {self.shape}): convert it again")
        return source

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.read(key)

    def read(self, key: Any, quiet: bool = False) -> np.ndarray:
        """``self[key]``; ``quiet`` as for :meth:`opened`."""
        return np.asarray(self.opened(quiet).array[key]).astype(self.dtype, copy=False)


# -- what a task gets ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Spec:
    """How to make the file's arrays (in memory) in any process: the same call as the writer's."""

    info: ImageInfo
    plan: list[LevelGeometry]
    dtype_str: str
    chunks: tuple[int, ...]
    codec: StorageCodec
    writer_pid: int
    results_dir: str | None = None  # a folder on this host (a RAM disk where there is one): tasks put their bytes there

    def arrays(self) -> tuple[list[zarr.Array], dict[str, Any]]:
        """Fresh in-memory arrays made like the file's, and the dict holding their keys."""
        store: dict[str, Any] = {}
        arrays = create_arrays(MemoryStore(store), copy.deepcopy(self.info), self.plan, np.dtype(self.dtype_str),
                               self.chunks, self.codec)
        return arrays, store


@dataclass(frozen=True)
class _Graph:
    """Pass 0 from a dask array: the superblock's region of the source (storage order), computed in the task."""

    array: Any

    def load(self, spec: _Spec, start: int, region: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self.array.compute(scheduler="sync"))


@dataclass(frozen=True)
class _Cut:
    """Pass 0 from a :class:`PathSource`: the region read by the task."""

    source: PathSource
    perm: tuple[int, ...]

    def load(self, spec: _Spec, start: int, region: tuple[slice, ...]) -> np.ndarray:
        if os.getpid() != spec.writer_pid:  # the writer showed the reader's warnings once: workers stay quiet
            self.source.opened(quiet=True)
        return StorageView(self.source, self.perm)[region]


@dataclass(frozen=True)
class _Pixels:
    """Pass 0 from a source only the writer can read: its pixels."""

    data: np.ndarray

    def load(self, spec: _Spec, start: int, region: tuple[slice, ...]) -> np.ndarray:
        return self.data


@dataclass(frozen=True)
class _Stored:
    """A later pass: level ``start``'s encoded chunks of the region (key in the level -> bytes), decoded here."""

    chunks: dict[str, bytes]

    def load(self, spec: _Spec, start: int, region: tuple[slice, ...]) -> np.ndarray:
        from zarr.core.buffer import default_buffer_prototype

        arrays, store = spec.arrays()
        prefix = f"{arrays[start].path}/"
        for key, blob in self.chunks.items():
            store[prefix + key] = default_buffer_prototype().buffer.from_bytes(blob)
        return np.asarray(arrays[start][region])


@dataclass
class _Result:
    chunks: list[tuple[int, str, bytes]]  # (level, key in the level, encoded bytes); empty when in ``file``
    covered: int  # chunks of the pass's levels the superblock covers (stored or left empty)
    pid: int
    peak_rss: int
    seconds: float
    started: float  # time.time() when the task started and ended (a timeline across processes of one host)
    ended: float
    file: str | None = None  # the encoded bytes, one after the other, in a file of the spec's results_dir
    index: list[tuple[int, str, int, int]] = field(default_factory=list)  # (level, key, offset, length) in ``file``

    def blobs(self) -> Iterator[tuple[int, str, Any]]:
        """(level, key, encoded bytes) of every chunk the task stored: in the result, or read from its file (mapped,
        not copied; the file is removed once read)."""
        yield from self.chunks
        if self.file is None:
            return
        with open(self.file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                for level, key, offset, length in self.index:
                    piece = view[offset:offset + length]
                    try:
                        yield level, key, piece
                    finally:
                        piece.release()  # the caller has stored it: the mapping can close
            finally:
                view.release()
        os.unlink(self.file)


def encode_superblock(spec: _Spec, start: int, k: int, region: tuple[slice, ...], source: Any) -> _Result:
    """A task: the superblock at ``region`` of level ``start`` and its levels ``start+1..start+k``, encoded."""
    t0, started = time.perf_counter(), time.time()
    if os.getpid() != spec.writer_pid:
        _zarr_threads_per_worker()
    data = source.load(spec, start, region)
    if data.shape != tuple(s.stop - s.start for s in region) or data.dtype != np.dtype(spec.dtype_str):
        raise MzarrError(f"the source gave a block of shape {data.shape} {data.dtype} for the region {region} "
                         f"(expected {tuple(s.stop - s.start for s in region)} {spec.dtype_str})")
    base = spec.plan[start].factor
    rel = [[f1 // f0 for f1, f0 in zip(spec.plan[start + j].factor, base)] for j in range(k + 1)]
    arrays, store = spec.arrays()
    covered = _write_batch(superblock_blocks(arrays, start, k, rel, region, data, spec.info.downsample, start == 0))
    del data
    paths = {f"{a.path}/": i for i, a in enumerate(arrays)}
    encoded = []
    for key, buffer in store.items():
        if key.endswith("zarr.json"):
            continue
        head, rest = key.split("/", 1)
        encoded.append((paths[head + "/"], rest, buffer))
    if spec.results_dir is None or not encoded:  # a cluster's workers: the bytes travel with the result
        out = [(level, key, buffer.to_bytes()) for level, key, buffer in encoded]
        return _Result(out, covered, os.getpid(), _peak_rss(), time.perf_counter() - t0, started, time.time())
    # workers on the writer's host: one file per task, written once and mapped by the writer, instead of the bytes
    # pickled, piped and unpickled (a copy less on each side, and the worker does not wait for the writer to read)
    index, offset = [], 0
    fd, path = tempfile.mkstemp(".bin", "task-", spec.results_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            for level, key, buffer in encoded:
                data = buffer.as_numpy_array()
                f.write(data)
                index.append((level, key, offset, data.nbytes))
                offset += data.nbytes
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return _Result([], covered, os.getpid(), _peak_rss(), time.perf_counter() - t0, started, time.time(), path, index)


def warm_up(source: Any, writer_pid: int) -> int:
    """A worker's first task, run while the writer sets the file up: the imports every task needs, zarr's thread
    counts, and the source file opened (a DICOM series' headers read), so that the first superblock does not pay
    for them. Returns the worker's process id."""
    from . import writer  # noqa: F401  (zarr, numcodecs, imagecodecs and the codecs, imported once here)

    if os.getpid() != writer_pid:
        _zarr_threads_per_worker()
    if isinstance(source, PathSource):
        try:
            source.opened(quiet=os.getpid() != writer_pid)
        except Exception:  # noqa: BLE001 - the first task opens it again and reports the error with its superblock
            pass
    return os.getpid()


_zarr_threads_set = False


def _zarr_threads_per_worker() -> None:
    """In a worker process, once: zarr encodes on as many threads as the worker runs tasks (one per core it was
    given), not on a pool per core of the machine in every worker process (N processes x cores threads)."""
    global _zarr_threads_set
    if _zarr_threads_set:
        return
    _zarr_threads_set = True
    threads = 1
    if "distributed" in sys.modules:
        try:
            threads = int(sys.modules["distributed"].get_worker().state.nthreads)
        except (ValueError, AttributeError):
            pass
    # used when zarr first makes its pools in this process: its event loop's executor, and (zarr >= 3.4) the pool of
    # its fused codec pipeline, which is otherwise one thread per core of the machine in every worker process
    zarr.config.set({"threading.max_workers": threads, "codec_pipeline.max_workers": threads})


# -- where the tasks run -------------------------------------------------------------------------------------------
class _Runner:
    """A pool of workers behind one interface: ``concurrent.futures`` executors and ``dask.distributed`` clients."""

    def __init__(self, scheduler: Any, workers: int | None):
        self.requested = (scheduler, workers)  # what the caller asked for (before defaults are applied)
        self.owned: Any = None
        self.client: Any = None
        self.executor: Any = None
        self._finished = threading.Event()  # a distributed future finished
        if workers is not None and int(workers) < 1:
            raise MzarrValueError(f"workers must be at least 1, got {workers}")
        if scheduler is None:
            self.client = _active_client()
            scheduler = "threads" if self.client is None else None
        if isinstance(scheduler, str):
            if scheduler in ("threads", "processes"):
                n = workers or _cores()
                if scheduler == "threads":
                    self.executor = concurrent.futures.ThreadPoolExecutor(n, "mzarr-dask")
                else:
                    # spawn: a forked child would inherit the parent's open SQLite connections and zarr's threads
                    self.executor = concurrent.futures.ProcessPoolExecutor(n, multiprocessing.get_context("spawn"))
                self.owned = self.executor
                workers = n
            elif "://" in scheduler or ":" in scheduler:
                distributed = _distributed()
                try:
                    self.client = self.owned = distributed.Client(scheduler, set_as_default=False)
                except (OSError, TimeoutError) as exc:
                    raise MzarrError(f"cannot reach the dask scheduler at {scheduler} ({exc}): start it "
                                     "(dask scheduler / dask worker) or give another address") from None
            else:
                raise MzarrValueError(
                    f"scheduler must be 'threads', 'processes', a dask.distributed scheduler address such as "
                    f"'tcp://host:8786', a distributed Client or a concurrent.futures Executor; got {scheduler!r}"
                )
        elif isinstance(scheduler, concurrent.futures.Executor):
            self.executor = scheduler
        elif scheduler is not None:
            if not _is_client(scheduler):
                raise MzarrValueError(f"scheduler must be a name, an address, a Client or an Executor; got {scheduler!r}")
            self.client = scheduler
        if self.client is not None and workers is None:
            workers = sum(self.client.nthreads().values())
            if not workers:
                raise MzarrError("the dask cluster has no workers: start some (dask worker ADDRESS) and save again")
        if workers is None:
            workers = getattr(self.executor, "_max_workers", None) or _cores()
        self.workers = int(workers)
        # worker processes on this host hand their results over in files (Result.blobs), in RAM where there is a
        # RAM disk; removed with everything left in it when the runner closes
        self.results_dir: str | None = None
        if isinstance(self.executor, concurrent.futures.ProcessPoolExecutor):
            ram = "/dev/shm"
            self.results_dir = tempfile.mkdtemp(prefix="mzarr-dask-", dir=ram if os.access(ram, os.W_OK) else None)

    def submit(self, fn: Any, *args: Any) -> Any:
        if self.client is not None:
            future = self.client.submit(fn, *args, pure=False)
            future.add_done_callback(lambda _: self._finished.set())
            return future
        return self.executor.submit(fn, *args)

    def wait_first(self, pending: list[Any]) -> set[Any]:
        """The futures of ``pending`` that have finished, once at least one has."""
        if self.client is None:
            return concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED).done
        # distributed.wait needs the client to be the default one: wait on the futures' own callbacks instead
        while True:
            done = {future for future in pending if future.done()}
            if done:
                return done
            self._finished.wait(1.0)
            self._finished.clear()

    def cancel(self, pending: list[Any]) -> None:
        """Cancel the tasks not yet inserted (a failure or a cancellation: their results are not wanted)."""
        if self.client is not None:
            if pending:
                self.client.cancel(pending)
            return
        for future in pending:
            future.cancel()

    def warm_up(self, source: Any) -> None:
        """Start the process pool this runner owns now, each worker running :func:`warm_up` (not waited for: the
        writer goes on setting the file up meanwhile). Pools and clusters given by the caller are already running."""
        if isinstance(self.owned, concurrent.futures.ProcessPoolExecutor):
            for _ in range(self.workers):
                self.owned.submit(warm_up, source if isinstance(source, PathSource) else None, os.getpid())

    def close(self) -> None:
        """End what this runner started (idempotent)."""
        owned, self.owned = self.owned, None
        if owned is not None:
            if self.client is not None:
                owned.close()
            else:
                owned.shutdown(wait=True, cancel_futures=True)
        if self.results_dir is not None:
            shutil.rmtree(self.results_dir, ignore_errors=True)  # results not inserted: a failed or cancelled save
            self.results_dir = None


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MzarrError('a dask.distributed scheduler needs the distributed package: pip install "mzarr[dask]"') from None
    return distributed


def _is_client(obj: Any) -> bool:
    return "distributed" in sys.modules and isinstance(obj, sys.modules["distributed"].Client)


def _active_client() -> Any:
    """The dask.distributed client in use in this process (``Client(...)`` made default), or None."""
    if "distributed" not in sys.modules:
        return None
    try:
        return sys.modules["distributed"].default_client()
    except ValueError:
        return None


# -- the writer ----------------------------------------------------------------------------------------------------
def _level0_input(source: Any, perm: tuple[int, ...], region: tuple[slice, ...]) -> Any:
    """What a pass-0 task gets for ``region`` (storage order) of ``source`` (user order)."""
    if is_dask_array(source):
        import dask

        (sub,) = dask.optimize(source.transpose(perm)[region])  # culled to the region's chunks
        return _Graph(sub)
    if isinstance(source, PathSource):
        return _Cut(source, perm)
    return _Pixels(np.ascontiguousarray(StorageView(source, perm)[region]))


def _stored_input(array: zarr.Array, region: tuple[slice, ...]) -> _Stored:
    """Level ``array``'s encoded chunks of ``region`` as the file being written holds them."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    store = array.store_path.store
    prefix = f"{array.path}/" if array.path else ""
    keys = [array.metadata.encode_chunk_key(c) for c in _chunk_coords(region, tuple(array.chunks))]
    many = getattr(store, "get_many_bytes_sync", None)  # the single-file store's capability
    if many is not None:
        found = many([prefix + key for key in keys])
        return _Stored({key: found[prefix + key] for key in keys if prefix + key in found})
    out = {}
    for key in keys:
        buffer = sync(store.get(prefix + key, default_buffer_prototype()))
        if buffer is not None:
            out[key] = buffer.to_bytes()
    return _Stored(out)


class DaskBuild:
    """A ``build`` for :func:`~mzarr_core.writer.write_image` that runs the pyramid's tasks on dask (see the module
    docstring). Its workers are started (and warmed up: imports, the source opened) when it is made, so they get
    ready while the writer sets the file up; :meth:`close` (also after the build) ends the workers it started."""

    def __init__(self, source: Any, perm: tuple[int, ...], info: ImageInfo, codec: StorageCodec, scheduler: Any,
                 workers: int | None, stats: DaskSaveStats | None) -> None:
        self.source, self.perm, self.info, self.codec, self.stats = source, perm, info, codec, stats
        self.runner = _Runner(scheduler, workers)
        self.runner.warm_up(source)

    def __call__(self, _storage: StorageArray, arrays: list[zarr.Array], plan: list[LevelGeometry],
                 chunks: tuple[int, ...], method: str, progress: Progress | None = None,
                 encoded_chunks: Any = None) -> None:
        try:
            if encoded_chunks is not None:
                raise MzarrValueError("a dask save cannot keep JPEG tiles (jpeg_tiles): save without scheduler/workers")
            run_build(self.source, self.perm, arrays, plan, chunks, self.info, self.codec, self.runner, progress,
                      self.stats)
        finally:
            self.close()

    def close(self) -> None:
        """End the workers this build started (none if it was given a cluster or an executor); idempotent."""
        self.runner.close()


def dask_builder(source: Any, perm: tuple[int, ...], info: ImageInfo, codec: StorageCodec, *, scheduler: Any = None,
                 workers: int | None = None, stats: DaskSaveStats | None = None) -> DaskBuild:
    """The dask build of a save (:class:`DaskBuild`). ``source``: level 0 in the user's axis order (a dask array, a
    :class:`PathSource` or any array); ``perm``: user -> storage axis order."""
    return DaskBuild(source, perm, info, codec, scheduler, workers, stats)


def run_build(source: Any, perm: tuple[int, ...], arrays: list[zarr.Array], plan: list[LevelGeometry],
              chunks: tuple[int, ...], info: ImageInfo, codec: StorageCodec, runner: "_Runner",
              progress: Progress | None, stats: DaskSaveStats | None) -> None:
    """Build every level of ``arrays`` from ``source`` on ``runner``'s workers, inserting their encoded chunks here."""
    t0, epoch = time.perf_counter(), time.time()
    stats = stats if stats is not None else DaskSaveStats()
    dtype = np.dtype(arrays[0].dtype)
    spec = _Spec(copy.deepcopy(info), plan, dtype.str, chunks, codec, os.getpid(), runner.results_dir)
    total = sum(_count_chunks(tuple(slice(0, n) for n in g.shape), chunks) for g in plan)
    done = 0
    if progress:
        progress(0, total)
    stats.workers = runner.workers
    stats.max_in_flight = bound = IN_FLIGHT_PER_WORKER * runner.workers
    pending: list[Any] = []
    where: dict[Any, tuple[int, tuple[slice, ...]]] = {}

    def collect() -> None:
        nonlocal done
        for future in runner.wait_first(pending):
            pending.remove(future)
            start, region = where.pop(future)
            try:
                result: _Result = future.result()
            except MzarrError:
                raise
            except BaseException as exc:
                raise MzarrError(
                    f"a dask task failed building the superblock {_describe(region)} of level {start} "
                    f"({type(exc).__name__}: {exc}); nothing was saved (a previous file is untouched)"
                ) from exc
            t = time.perf_counter()
            for level, key, blob in result.blobs():
                array = arrays[level]
                store_key_bytes(array.store_path.store, (f"{array.path}/" if array.path else "") + key, blob)
                stats.bytes_stored += len(blob)
            stats.insert_seconds += time.perf_counter() - t
            stats.chunks_stored += len(result.chunks)
            stats.task_seconds += result.seconds
            stats.worker_peak_rss[result.pid] = max(stats.worker_peak_rss.get(result.pid, 0), result.peak_rss)
            stats.timeline.append((start, result.pid, result.started - epoch, result.ended - epoch, time.time() - epoch))
            done += result.covered
            if progress:
                progress(done, total)

    try:
        start = 0
        while True:
            k, _rel, _block, regions = plan_pass(plan, start, chunks, dtype.itemsize)
            for region in regions:
                while len(pending) >= bound:
                    collect()
                task_input = _level0_input(source, perm, region) if start == 0 else _stored_input(arrays[start], region)
                future = runner.submit(encode_superblock, spec, start, k, region, task_input)
                del task_input
                pending.append(future)
                where[future] = (start, region)
                stats.tasks += 1
                stats.peak_in_flight = max(stats.peak_in_flight, len(pending))
            while pending:  # the next pass reads this pass's coarsest level as stored
                collect()
            if start + k >= len(plan) - 1:
                break
            start += k
    finally:
        runner.cancel(pending)
        runner.close()  # the pool's processes end with the build (the caller closes it again: idempotent)
        stats.wall_seconds = time.perf_counter() - t0
        stats.writer_peak_rss = _peak_rss()


def _describe(region: tuple[slice, ...]) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in region) + "]"
