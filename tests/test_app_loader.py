"""Tests of the background chunk loader: LRU budget, cancellation, errors (mzarr_app.chunk_loader)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mzarr_app.chunk_loader import ChunkLoader, LRUCache


def test_lru_cache_bounded_by_bytes() -> None:
    c = LRUCache(3 * 1000)
    for i in range(5):
        c.put(i, np.zeros(1000, np.uint8))
    assert c.keys() == [2, 3, 4] and c.nbytes == 3000
    c.get(2)  # 2 becomes most recent -> 3 is evicted next
    c.put(5, np.zeros(1000, np.uint8))
    assert c.keys() == [4, 2, 5]
    c.set_max_bytes(1500)
    assert c.keys() == [5] and c.nbytes == 1000
    assert c.discard(lambda k: k == 5) == 1 and len(c) == 0


def test_loader_loads_in_threads_and_cancels_stale_requests(qtbot) -> None:
    gate = threading.Event()
    fetched: list[int] = []
    threads: set[str] = set()

    def fetch(key: int) -> np.ndarray:
        gate.wait(5)
        fetched.append(key)
        threads.add(threading.current_thread().name)
        return np.full(10, key, np.int64)

    loader = ChunkLoader(fetch, cache_mb=1, threads=2)
    loaded: list[int] = []
    loader.chunkLoaded.connect(loaded.append)
    loader.request(range(0, 20))
    time.sleep(0.1)  # two workers are now blocked on keys 0 and 1
    loader.request(range(100, 104))  # keys 2..19 left the view: cancelled
    assert loader.cancelled == 18
    gate.set()
    qtbot.waitUntil(loader.idle, timeout=5000)
    qtbot.waitUntil(lambda: len(loaded) == 6, timeout=5000)
    assert sorted(fetched) == [0, 1, 100, 101, 102, 103]
    assert threading.main_thread().name not in threads
    np.testing.assert_array_equal(loader.get(101), np.full(10, 101))
    # cached keys are not fetched again
    loader.request([100, 101])
    assert loader.idle() and sorted(fetched) == [0, 1, 100, 101, 102, 103]
    loader.close()


def test_loader_reports_errors_without_crashing(qtbot) -> None:
    def fetch(key: int) -> np.ndarray:
        if key == 3:
            raise ValueError("corrupt chunk 3")
        return np.zeros(4)

    loader = ChunkLoader(fetch, cache_mb=1, threads=2)
    with qtbot.waitSignal(loader.chunkFailed, timeout=5000) as blocker:
        loader.request([1, 2, 3, 4])
    assert blocker.args[0] == 3 and "corrupt chunk 3" in blocker.args[1]
    qtbot.waitUntil(loader.idle, timeout=5000)
    assert loader.get(4) is not None and loader.get(3) is None
    loader.request([3])  # a failed chunk is not retried until invalidated
    assert loader.idle()
    loader.close()


def test_cache_budget_holds_under_load(qtbot) -> None:
    loader = ChunkLoader(lambda k: np.zeros(256 * 1024, np.uint8), cache_mb=1, threads=2)
    loader.request(range(40))
    qtbot.waitUntil(loader.idle, timeout=10000)
    assert loader.cache.nbytes <= 1024 * 1024 and len(loader.decoded) == 40
    loader.close()


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])


@pytest.mark.parametrize("axes", ["zyx", "czyx", "zyxc"])
def test_read_chunk_plane_is_the_chunk_at_z(tmp_path, axes: str) -> None:
    from mzarr_core import Mzarr

    from app_fixtures import volume_3d
    from mzarr_app.chunk_loader import plane_decodable, read_chunk, read_chunk_plane

    vol = (volume_3d(70, 150, 170) // 21).astype(np.uint8)
    data = {"zyx": vol, "czyx": np.stack([vol, 255 - vol]), "zyxc": np.stack([vol, vol // 2, 255 - vol], -1)}[axes]
    for bricks in ("frames", "strip"):  # strip bricks: the plane is cut from the whole (cached) brick
        with Mzarr(Mzarr(data, axes=axes).save(tmp_path / f"v_{bricks}.mzarr", bricks=bricks)) as m:
            for lev in m.levels[:2]:
                assert plane_decodable(lev) == (bricks == "frames")
                zi = lev.axes.index("z")
                for idx in lev.chunks_in(tuple(slice(None) for _ in lev.shape))[:6]:
                    reg = lev.chunk_region(idx)
                    brick = read_chunk(lev, idx)
                    for z in (reg[zi].start, reg[zi].stop - 1):
                        got = read_chunk_plane(lev, idx, z)
                        np.testing.assert_array_equal(got, np.take(brick, z - reg[zi].start, axis=zi))
                    with pytest.raises(IndexError):
                        read_chunk_plane(lev, idx, reg[zi].stop)
    with Mzarr(Mzarr(vol.astype(np.float32)).save(tmp_path / "f.mzarr")) as m:
        assert not plane_decodable(m.levels[0])  # not JPEG XL: whole bricks, cached across slices
    with Mzarr(Mzarr(vol[0]).save(tmp_path / "2d.mzarr")) as m:
        assert not plane_decodable(m.levels[0])


def test_loader_of_a_document_uses_the_library_cache(qtbot, tmp_path) -> None:
    """One copy of the decoded pixels: a Document's loader caches in the library's cache of the file, sized by the
    app's budget; what the loader hands out is the library's (read-only) array."""
    from mzarr_core import Mzarr

    from mzarr_app.chunk_loader import LibraryCache
    from mzarr_app.document import Document

    img = (np.arange(300 * 260) % 251).astype(np.uint8).reshape(300, 260)
    path = Mzarr(img).save(tmp_path / "x.mzarr", chunks=(128, 128))
    doc = Document(path)
    loader = ChunkLoader(doc.read_chunk, cache_mb=3, threads=2)
    try:
        assert isinstance(loader.cache, LibraryCache)
        assert doc.m.cache_bytes == 3 * 1024 * 1024 == loader.cache.max_bytes
        keys = [(0, (r, c)) for r in range(3) for c in range(3)]
        loader.request(keys)
        qtbot.waitUntil(loader.idle, timeout=10000)
        for key in keys:
            got = loader.get(key)
            lib = doc.levels[0].read_chunk(key[1], cached_only=True)
            assert got is not None and lib is not None and np.shares_memory(got, lib)
            assert not got.flags.writeable
            np.testing.assert_array_equal(got, img[doc.levels[0].chunk_region(key[1])])
        assert loader.cache.nbytes == doc.m.cache_info().nbytes == 9 * 128 * 128
        loader.request(keys)
        assert loader.idle() and len(loader.decoded) == 9  # all cached: nothing read again
        loader.cache.set_max_bytes(2 * 128 * 128)  # the app's budget setting sizes the library cache
        assert doc.m.cache_bytes == 2 * 128 * 128 and loader.cache.nbytes <= 2 * 128 * 128
        doc.reopen()
        assert doc.m.cache_bytes == 2 * 128 * 128, "the budget survives reopening after a save"
    finally:
        loader.close()
        doc.close()


def test_prepare_runs_in_the_reading_thread_and_its_errors_are_ignored(qtbot) -> None:
    """``prepare(key, array)`` runs in the pool thread after each read, before ``chunkLoaded``; an exception in it
    leaves the chunk loaded (the GUI thread then does that work itself)."""
    seen: dict[int, tuple[str, int]] = {}

    def prepare(key: int, arr: np.ndarray) -> None:
        seen[key] = (threading.current_thread().name, int(arr[0]))
        if key == 2:
            raise RuntimeError("colouring failed")

    loader = ChunkLoader(lambda k: np.full(4, k * 10, np.int64), cache_mb=1, threads=2)
    loader.prepare = prepare
    loaded: list[int] = []
    loader.chunkLoaded.connect(lambda k: loaded.append(k) if k in seen else None)
    loader.request([1, 2, 3])
    qtbot.waitUntil(lambda: sorted(loaded) == [1, 2, 3], timeout=5000)
    assert {k: v[1] for k, v in seen.items()} == {1: 10, 2: 20, 3: 30}
    assert threading.main_thread().name not in {v[0] for v in seen.values()}
    assert not loader.failed and loader.get(2) is not None
    loader.close()


def test_a_follower_reads_once_its_leader_has_nothing_queued(qtbot) -> None:
    """``follow``: an overlay's loader starts its reads only when the image's loader has none queued (those in
    flight may still run); a leader with nothing to read does not hold it back."""
    gate = threading.Event()
    order: list[str] = []
    lock = threading.Lock()

    def lead_fetch(key: int) -> np.ndarray:
        gate.wait(5)
        with lock:
            order.append(f"image {key}")
        return np.zeros(4)

    def follow_fetch(key: int) -> np.ndarray:
        with lock:
            order.append(f"label {key}")
        return np.zeros(4)

    leader = ChunkLoader(lead_fetch, cache_mb=1, threads=1)
    follower = ChunkLoader(follow_fetch, cache_mb=1, threads=2)
    follower.follow(leader)
    leader.request([0, 1, 2])  # one thread: key 0 in flight, 1 and 2 queued
    follower.request([10, 11])
    time.sleep(0.2)
    assert order == [] and follower.pending() == 2 and leader.queued() == 2
    gate.set()
    qtbot.waitUntil(lambda: leader.idle() and follower.idle(), timeout=5000)
    # the labels start once image 2 (the last queued) is being read: after images 0 and 1
    assert sorted(order) == ["image 0", "image 1", "image 2", "label 10", "label 11"]
    assert order.index("label 10") > order.index("image 1") and order.index("label 11") > order.index("image 1")
    # nothing queued in the leader: the follower reads at once
    follower.request([12])
    qtbot.waitUntil(follower.idle, timeout=5000)
    assert order[-1] == "label 12"
    leader.close()
    follower.close()


def test_document_cached_answers_what_the_library_holds(tmp_path) -> None:
    """Document.cached (asked for every chunk of a frame at every update) answers from a memo: the same pixels as
    the library's cache, read-only and sharing its memory; a plane of a slab read for another plane is found; an
    emptied cache, a dropped chunk and a reopened file are not served from the memo."""
    import gc

    from mzarr_core import Mzarr

    from app_fixtures import volume_3d
    from mzarr_app.document import Document

    vol = volume_3d(70, 150, 170)
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks="slabs")  # slab bricks (format 4)
    doc = Document(path, cache_bytes=64 << 20)
    try:
        lev = doc.levels[0]

        def library(key: tuple) -> np.ndarray | None:
            if len(key) == 3:
                return lev.read_chunk_plane(key[1], key[2], cached_only=True)
            return lev.read_chunk(key[1], cached_only=True)

        chunks = [(0, 1, 0), (0, 2, 2), (1, 0, 1)]
        planes = [(0, c, z) for c in chunks for z in ((3, 4, 20, 63) if c[0] == 0 else (64, 65, 69))]  # z: level's
        for _ in range(2):  # asked twice: the second answer is the memo's
            assert all(doc.cached(k) is None and library(k) is None for k in planes + [(0, c) for c in chunks])
        doc.read_chunk((0, (0, 1, 0), 3))  # decodes the slab of planes 0-15 of that brick
        for z in (3, 4):
            for _ in range(2):
                got, lib = doc.cached((0, (0, 1, 0), z)), library((0, (0, 1, 0), z))
                assert got is not None and lib is not None and np.shares_memory(got, lib)
                assert not got.flags.writeable
                np.testing.assert_array_equal(got, vol[z, 64:128, 0:64])
        assert doc.cached((0, (0, 1, 0), 20)) is None and doc.cached((0, (0, 2, 2), 3)) is None  # other slab, brick
        whole = doc.read_chunk((0, (1, 0, 1)))
        np.testing.assert_array_equal(doc.cached((0, (1, 0, 1))), vol[64:70, 0:64, 64:128])
        np.testing.assert_array_equal(doc.cached((0, (1, 0, 1), 69)), vol[69, 0:64, 64:128])  # a plane of the brick
        del whole

        doc.clear_cache()  # emptied: nothing is served from the memo
        assert all(doc.cached(k) is None for k in planes + [(0, c) for c in chunks])

        doc.read_chunk((0, (0, 2, 2), 20))
        assert doc.cached((0, (0, 2, 2), 20)) is not None
        doc.set_cache_bytes(1)  # the library drops every chunk: once nothing holds its pixels, it is not cached
        gc.collect()
        assert doc.cached((0, (0, 2, 2), 20)) is None and library((0, (0, 2, 2), 20)) is None

        doc.set_cache_bytes(64 << 20)
        doc.read_chunk((0, (0, 2, 2), 20))
        assert doc.cached((0, (0, 2, 2), 20)) is not None
        doc.reopen()  # a new handle, an empty cache: the memo is forgotten
        assert doc.cached((0, (0, 2, 2), 20)) is None and library((0, (0, 2, 2), 20)) is None
    finally:
        doc.close()


def test_eta_is_what_is_left_at_the_pace_of_the_last_reads(qtbot, monkeypatch) -> None:
    """ChunkLoader.eta: reads left x the mean interval between the last reads' ends (a clock the test moves by
    10 ms a read); unknown before 8 reads ended or when the last ended long ago; 0 when nothing is left."""
    import types

    from mzarr_app import chunk_loader as cl

    clock = [100.0]
    monkeypatch.setattr(cl, "time", types.SimpleNamespace(
        perf_counter=lambda: clock[0], thread_time=time.thread_time, monotonic=time.monotonic, sleep=time.sleep))
    gate, held_at = threading.Event(), [5]
    done = [0]

    def fetch(key):
        if done[0] >= held_at[0]:
            gate.wait(10)
        done[0] += 1
        clock[0] += 0.01
        return np.zeros(4)

    loader = ChunkLoader(fetch, cache_mb=1, threads=1, cache=LRUCache(1 << 20))
    try:
        assert loader.eta() == 0.0  # nothing to read
        loader.request(range(40))
        qtbot.waitUntil(lambda: len(loader.decoded) == 5, timeout=5000)
        assert loader.eta() is None  # 5 reads ended: too few to tell the pace
        held_at[0] = 20
        gate.set()
        gate.clear()
        qtbot.waitUntil(lambda: len(loader.decoded) == 20, timeout=5000)
        assert loader.pending() == 20  # one held in flight, 19 queued
        assert loader.eta() == pytest.approx(20 * 0.01)
        clock[0] += 1.0  # the last read ended a second ago: the pace is not known any more
        assert loader.eta() is None
        held_at[0] = 10**6
        gate.set()
        qtbot.waitUntil(loader.idle, timeout=5000)
        assert loader.eta() == 0.0
    finally:
        gate.set()
        loader.close()


def test_the_log_of_reads_is_bounded_and_every_read_counted(qtbot, monkeypatch) -> None:
    """A long session must not grow the loader's record of reads without end: the last keys are kept, all counted."""
    import mzarr_app.chunk_loader as cl

    monkeypatch.setattr(cl, "DECODED_LOG", 5)
    loader = ChunkLoader(lambda k: np.zeros(16, np.uint8), cache_mb=1, threads=2)
    loader.request(range(12))
    qtbot.waitUntil(loader.idle, timeout=5000)
    assert loader.decoded_count == 12 and len(loader.decoded) == 5 and set(loader.decoded) <= set(range(12))
    loader.close()
