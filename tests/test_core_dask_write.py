"""Saving with dask (:mod:`mzarr_core.dask_write`): ``Mzarr(dask_array).save(...)``, ``save(scheduler=, workers=)``
and ``mzarr convert --workers/--scheduler``. Superblock tasks run on dask workers (a LocalCluster of processes,
a process pool, threads) and return encoded bytes, which the one writer inserts: every stored key is bit for bit the
plain save's, at most 2 x workers tasks are in flight, a failing task leaves no file behind."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np
import pytest
from conftest import assert_bit_exact, chunk_blobs, smooth_array, temp_leftovers

from mzarr import Mzarr
from mzarr_core import dask_write, writer
from mzarr_core.dask_write import DaskSaveStats, PathSource
from mzarr_core.errors import MzarrError, MzarrValueError

dask = pytest.importorskip("dask", reason="dask is not installed (the [dask] extra)")
da = pytest.importorskip("dask.array", reason="dask is not installed (the [dask] extra)")

SMALL_BUDGET = 2**19  # superblocks of 512 KiB: the test images make tens of tasks and more than one pass


@pytest.fixture
def small_superblocks(monkeypatch):
    """Tens of superblocks and a second pass (the budget is read by the writer only: workers get their work)."""
    monkeypatch.setattr(writer, "BLOCK_BUDGET", SMALL_BUDGET)


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (the [dask] extra)")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    try:
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=40
        )
    except Exception as exc:  # e.g. no sockets in a sandbox
        pytest.skip(f"a LocalCluster cannot start here: {exc}")
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


def volume() -> np.ndarray:
    return smooth_array((40, 150, 170), "uint16", seed=3)


def superblocks_per_pass(shape: tuple[int, ...], axes: str, chunks: tuple[int, ...], itemsize: int) -> list[int]:
    """How many tasks each pass of a save makes (storage order = user order for these grey images)."""
    from mzarr_core.pyramid import plan_levels

    plan = plan_levels(shape, axes, chunks)
    out, start = [], 0
    while True:
        k, _, _, regions = writer.plan_pass(plan, start, chunks, itemsize)
        out.append(len(regions))
        if start + k >= len(plan) - 1:
            return out
        start += k


def assert_same_file(actual, expected) -> None:
    """Every stored key (metadata and chunks) of two .mzarr files holds the same bytes."""
    got, want = chunk_blobs(actual), chunk_blobs(expected)
    assert sorted(got) == sorted(want)
    differ = [key for key in want if got[key] != want[key]]
    assert not differ, differ[:5]


def test_volume_on_a_local_cluster_of_processes_is_bit_identical(tmp_path, cluster, small_superblocks):
    a = volume()
    plain = Mzarr(a).save(tmp_path / "plain.mzarr", chunks=(16, 32, 32))
    source = Mzarr(plain).to_dask()  # the workers read the file by path
    stats = DaskSaveStats()
    out = Mzarr(source, spacing=None).save(tmp_path / "dask.mzarr", chunks=(16, 32, 32), scheduler=cluster,
                                           dask_stats=stats)
    assert_same_file(out, plain)
    with Mzarr(out) as m:
        assert len(m.levels) == 4
        assert_bit_exact(m[...], a)
    # the chunks were encoded in the two worker processes, in tens of tasks over more than one pass
    pids = set(cluster.run(os.getpid).values())
    assert set(stats.worker_peak_rss) == pids and os.getpid() not in pids
    passes = superblocks_per_pass(a.shape, "zyx", (16, 32, 32), 2)
    assert len(passes) == 2 and stats.workers == 2 and stats.tasks == sum(passes) > 10
    assert stats.chunks_stored == sum(1 for k in chunk_blobs(out) if not k.endswith("zarr.json"))
    assert 0 < stats.insert_seconds < stats.wall_seconds


def test_rgb_on_a_local_cluster_is_bit_identical_lossless_and_lossy(tmp_path, cluster, small_superblocks, astronaut):
    source = da.from_array(astronaut, chunks=(128, 128, 3))  # its graph is culled to each superblock's region
    for name, options in (("lossless", {}), ("lossy", {"distance": 1.5})):
        plain = Mzarr(astronaut).save(tmp_path / f"{name}-plain.mzarr", chunks=(64, 64, 3), **options)
        out = Mzarr(source).save(tmp_path / f"{name}-dask.mzarr", chunks=(64, 64, 3), scheduler=cluster, **options)
        assert_same_file(out, plain)
        with Mzarr(out) as m:
            assert m.axes == "yxc" and len(m.levels) == 4
            if not options:
                assert_bit_exact(m[...], astronaut)
                assert_bit_exact(m.level(3)[...], Mzarr(plain).level(3)[...])


def _fail_in_one_block(block: np.ndarray, block_info=None) -> np.ndarray:
    if block_info[None]["chunk-location"] == (2, 1, 1):
        raise RuntimeError("disk read error on the worker")
    return block


def test_a_failing_task_leaves_no_file_and_keeps_the_previous_one(tmp_path, cluster, small_superblocks):
    a = volume()
    target = tmp_path / "out.mzarr"
    Mzarr(np.zeros((8, 8), np.uint8)).save(target)
    before = target.read_bytes()
    source = da.from_array(a, chunks=(16, 64, 64)).map_blocks(_fail_in_one_block, dtype=a.dtype)
    with pytest.raises(MzarrError, match="disk read error on the worker") as err:
        Mzarr(source).save(target, chunks=(16, 32, 32), scheduler=cluster)
    assert "nothing was saved" in str(err.value)
    assert target.read_bytes() == before
    assert temp_leftovers(tmp_path) == []
    fresh = tmp_path / "fresh.mzarr"
    with pytest.raises(MzarrError):
        Mzarr(source).save(fresh, chunks=(16, 32, 32), scheduler=cluster)
    assert not fresh.exists() and temp_leftovers(tmp_path) == []


def result_folders() -> set[str]:
    """The folders where process workers on this host leave their encoded chunks for the writer."""
    import glob
    import tempfile

    return set(glob.glob("/dev/shm/mzarr-dask-*")) | set(glob.glob(os.path.join(tempfile.gettempdir(), "mzarr-dask-*")))


def test_process_workers_hand_results_over_in_files_removed_after_success_and_failure(tmp_path, small_superblocks,
                                                                                     monkeypatch):
    a = volume()
    before = result_folders()
    plain = Mzarr(a).save(tmp_path / "plain.mzarr", chunks=(16, 32, 32))
    seen: list = []
    real = dask_write._Result.blobs

    def blobs(self):
        seen.append(self.file)
        assert self.chunks == [] and os.path.exists(self.file)  # the bytes come from the task's file
        yield from real(self)
        assert not os.path.exists(self.file)  # removed once inserted

    monkeypatch.setattr(dask_write._Result, "blobs", blobs)
    stats = DaskSaveStats()
    out = Mzarr(da.from_array(a, chunks=(16, 64, 64))).save(tmp_path / "p.mzarr", chunks=(16, 32, 32),
                                                            scheduler="processes", workers=2, dask_stats=stats)
    assert_same_file(out, plain)
    assert len(seen) == stats.tasks and all(seen)
    assert result_folders() == before
    # a failing task: the results already handed over (and those never inserted) are removed with their folder
    source = da.from_array(a, chunks=(16, 64, 64)).map_blocks(_fail_in_one_block, dtype=a.dtype)
    with pytest.raises(MzarrError, match="disk read error on the worker"):
        Mzarr(source).save(tmp_path / "f.mzarr", chunks=(16, 32, 32), scheduler="processes", workers=2)
    assert not (tmp_path / "f.mzarr").exists() and temp_leftovers(tmp_path) == []
    assert result_folders() == before


class CountingExecutor(Executor):
    """A thread pool that records how many of its futures were outstanding (submitted, result not yet taken)."""

    def __init__(self, threads: int):
        self.pool = ThreadPoolExecutor(threads)
        self.lock = threading.Lock()
        self.outstanding = 0
        self.peak = 0
        self.inputs: list = []

    def submit(self, fn, *args, **kwargs):
        with self.lock:
            self.outstanding += 1
            self.peak = max(self.peak, self.outstanding)
            self.inputs.append(args[-1])
        future = self.pool.submit(fn, *args, **kwargs)
        original = future.result

        def result(timeout=None):
            out = original(timeout)
            with self.lock:
                self.outstanding -= 1
            return out

        future.result = result
        return future

    def shutdown(self, wait=True, **kwargs):
        self.pool.shutdown(wait)


def test_tasks_in_flight_are_bounded_and_each_gets_one_superblock(tmp_path, small_superblocks):
    a = volume()
    computed: list[tuple[int, ...]] = []

    def record(block: np.ndarray) -> np.ndarray:
        if block.size:  # not dask's call with an empty block to learn the output's type
            computed.append(block.shape)
        return block

    source = da.from_array(a, chunks=(16, 32, 32)).map_blocks(record, dtype=a.dtype)
    executor = CountingExecutor(4)
    stats = DaskSaveStats()
    progress: list[tuple[int, int]] = []
    out = Mzarr(source).save(tmp_path / "x.mzarr", chunks=(16, 32, 32), scheduler=executor, workers=2,
                             dask_stats=stats, progress=lambda d, t: progress.append((d, t)))
    executor.shutdown()
    assert stats.max_in_flight == 4 and stats.tasks == sum(superblocks_per_pass(a.shape, "zyx", (16, 32, 32), 2))
    assert executor.peak == 4 and stats.peak_in_flight == 4  # reached, never exceeded
    # every source chunk was computed once, inside the task of its superblock: never the whole array
    n_chunks = np.prod(source.numblocks)
    assert len(computed) == n_chunks and max(np.prod(s) for s in computed) == 16 * 32 * 32
    graphs = [x for x in executor.inputs if isinstance(x, dask_write._Graph)]
    stored = [x for x in executor.inputs if isinstance(x, dask_write._Stored)]
    assert graphs and stored  # level 0's pass from the source graph, the next pass from the stored coarser level
    for x in graphs:
        assert x.array.nbytes <= SMALL_BUDGET and len(x.array.__dask_graph__()) < 40
    # progress: from (0, total) to (total, total), never backwards
    total = progress[0][1]
    assert progress[0] == (0, total) and progress[-1] == (total, total)
    assert all(d1 <= d2 for (d1, _), (d2, _) in zip(progress, progress[1:]))
    assert_bit_exact(Mzarr(out)[...], a)


def test_cancelling_from_progress_leaves_no_file(tmp_path, small_superblocks):
    from mzarr_core.errors import SaveCancelled

    source = da.from_array(volume(), chunks=(16, 32, 32))

    def cancel(done: int, total: int) -> None:
        if done > total // 3:
            raise SaveCancelled("cancelled")

    with pytest.raises(SaveCancelled):
        Mzarr(source).save(tmp_path / "c.mzarr", chunks=(16, 32, 32), progress=cancel, scheduler="threads", workers=2)
    assert not (tmp_path / "c.mzarr").exists() and temp_leftovers(tmp_path) == []


def test_process_pool_and_threads_and_a_plain_array_give_the_plain_file(tmp_path, small_superblocks):
    a = smooth_array((300, 420), "uint8", seed=5)
    plain = Mzarr(a).save(tmp_path / "plain.mzarr", chunks=(64, 64))
    on_file = Mzarr(plain)
    for scheduler in ("processes", "threads"):
        stats = DaskSaveStats()
        out = on_file.save(tmp_path / f"{scheduler}.mzarr", chunks=(64, 64), scheduler=scheduler, workers=2,
                           dask_stats=stats)
        assert_same_file(out, plain)
        assert (os.getpid() in stats.worker_peak_rss) == (scheduler == "threads")
    # a NumPy array saved with workers: the writer ships each superblock's pixels
    out = Mzarr(a).save(tmp_path / "numpy.mzarr", chunks=(64, 64), workers=2)
    assert_same_file(out, plain)
    on_file.close()


def test_bad_scheduler_and_workers_say_what_to_give(tmp_path):
    image = Mzarr(da.from_array(np.ones((64, 64), np.uint8)))
    with pytest.raises(MzarrValueError, match="scheduler must be 'threads', 'processes'"):
        image.save(tmp_path / "x.mzarr", scheduler="gpu")
    with pytest.raises(MzarrValueError, match="workers must be at least 1"):
        image.save(tmp_path / "x.mzarr", workers=0)
    with pytest.raises(MzarrValueError, match="jpeg_tiles"):
        image.save(tmp_path / "x.mzarr", chunks=(32, 32), jpeg_tiles=lambda idx: None, workers=1)
    assert temp_leftovers(tmp_path) == [] and not (tmp_path / "x.mzarr").exists()


def test_path_source_pickles_small_and_reads_by_path(tmp_path):
    import pickle

    import tifffile

    a = volume()
    tifffile.imwrite(tmp_path / "v.tif", a)
    source = PathSource.of(tmp_path / "v.tif", {}, a)
    blob = pickle.dumps(source)
    assert len(blob) < 1000
    again = pickle.loads(blob)
    assert again.shape == a.shape and again.dtype == a.dtype
    assert_bit_exact(again[3:9, 10:50, 7:8], a[3:9, 10:50, 7:8])


def test_cli_convert_with_workers_and_scheduler(tmp_path, cluster, capsys, monkeypatch):
    import tifffile

    from mzarr_core.cli import main

    schedulers = []
    run_build = dask_write.run_build

    def spy(source, perm, arrays, plan, chunks, info, codec, runner, *rest):
        assert isinstance(source, PathSource)  # the workers read the TIFF by path
        schedulers.append(runner.requested)
        return run_build(source, perm, arrays, plan, chunks, info, codec, runner, *rest)

    monkeypatch.setattr(dask_write, "run_build", spy)
    a = volume()
    tifffile.imwrite(tmp_path / "v.tif", a)
    assert main(["convert", str(tmp_path / "v.tif"), str(tmp_path / "plain.mzarr"), "--quiet"]) == 0
    assert main(["convert", str(tmp_path / "v.tif"), str(tmp_path / "w.mzarr"), "--workers", "2", "--quiet"]) == 0
    assert main(["convert", str(tmp_path / "v.tif"), str(tmp_path / "p.mzarr"), "--workers", "2", "--scheduler",
                 "threads", "--quiet"]) == 0
    address = cluster.scheduler.address
    assert main(["convert", str(tmp_path / "v.tif"), str(tmp_path / "s.mzarr"), "--scheduler", address, "--quiet"]) == 0
    assert "shape:       (40, 150, 170)" in capsys.readouterr().out
    assert schedulers == [("processes", 2), ("threads", 2), (address, None)]
    assert_same_file(tmp_path / "w.mzarr", tmp_path / "plain.mzarr")
    assert_same_file(tmp_path / "p.mzarr", tmp_path / "plain.mzarr")
    assert_same_file(tmp_path / "s.mzarr", tmp_path / "plain.mzarr")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert main(["convert", str(tmp_path / "v.tif"), str(tmp_path / "u.mzarr"), "--scheduler",
                     "tcp://127.0.0.1:9", "--quiet"]) != 0
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "u.mzarr").exists() and temp_leftovers(tmp_path) == []


def test_ome_zarr_folder_output_is_the_plain_folder(tmp_path, small_superblocks):
    a = smooth_array((30, 100, 90), "uint16", seed=9)
    plain = Mzarr(a).save(tmp_path / "plain.ome.zarr", chunks=(16, 32, 32))
    out = Mzarr(da.from_array(a, chunks=(16, 32, 32))).save(tmp_path / "dask.ome.zarr", chunks=(16, 32, 32),
                                                             scheduler="threads", workers=2)

    def files(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    got, want = files(out), files(plain)
    assert sorted(got) == sorted(want) and len(want) > 20
    assert all(got[k] == want[k] for k in want)
    assert_bit_exact(Mzarr(out)[...], a)


def test_process_workers_start_warmed_up_and_end_with_the_save_even_when_it_fails_first(tmp_path, monkeypatch):
    import multiprocessing

    import tifffile

    a = smooth_array((20, 70, 90), "uint16", seed=11)
    tifffile.imwrite(tmp_path / "v.tif", a)
    from mzarr_core.formats import read

    source = PathSource.of(tmp_path / "v.tif", None, read(tmp_path / "v.tif").array)
    before = set(multiprocessing.active_children())
    build = dask_write.dask_builder(source, (0, 1, 2), None, None, scheduler="processes", workers=2)
    # the pool is up and each worker has run its warm-up (imports, the TIFF opened) before any superblock exists
    pids = {build.runner.submit(os.getpid).result(timeout=60) for _ in range(6)}
    assert len(pids) <= 2 and os.getpid() not in pids
    assert len(set(multiprocessing.active_children()) - before) == 2
    build.close()
    build.close()  # idempotent
    assert set(multiprocessing.active_children()) - before == set()
    # a save that fails after its workers started (JPEG tiles cannot be kept by a dask save) ends them too
    with pytest.raises(MzarrValueError, match="jpeg_tiles"):
        Mzarr(a[0].astype(np.uint8)).save(tmp_path / "x.mzarr", chunks=(32, 32), jpeg_tiles=lambda idx: None,
                                          scheduler="processes", workers=2)
    assert set(multiprocessing.active_children()) - before == set()
    # and a save that fails in the file's set-up, before the build ran
    def broken(*args, **kwargs):
        raise MzarrError("the target cannot be written")

    monkeypatch.setattr("mzarr_core.image.write_image", broken)
    with pytest.raises(MzarrError, match="cannot be written"):
        Mzarr(a).save(tmp_path / "y.mzarr", scheduler="processes", workers=2)
    assert set(multiprocessing.active_children()) - before == set()
    assert temp_leftovers(tmp_path) == []


def test_reader_warnings_are_shown_once_by_the_writer_not_again_by_each_worker(tmp_path, capfd):
    from test_cli import _dicom_series

    from mzarr_core.cli import main

    folder = tmp_path / "study"
    want = _dicom_series(folder, [0.0, 2.5, 5.0, 10.0, 12.5], base="MR_small.dcm", number=3, description="AX",
                         prefix="mr")
    assert main(["convert", str(folder), str(tmp_path / "w.mzarr"), "--workers", "2", "--quiet"]) == 0
    err = capfd.readouterr().err  # the workers' stderr is the process's file descriptor 2
    assert err.count("uneven slice gaps") == 1, err
    assert "MzarrWarning" not in err and ".py:" not in err
    with Mzarr(tmp_path / "w.mzarr") as m:
        assert_bit_exact(m[...], want)
