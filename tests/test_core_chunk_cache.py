"""The parallel chunk reader and the decoded-chunk cache (mzarr_core.chunk_reader, mzarr_core.chunk_cache).

Reads decode each chunk once while it is cached, in parallel, bit-exact with zarr's own decoding for every dtype and
axis order; the cache keeps its byte bound, can be disabled, hands out only read-only arrays, and never serves
pixels that are not (or no longer) committed: own writes, rolled-back edits, other objects and other processes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import imagecodecs
import numpy as np
import pytest
from conftest import ALL_DTYPES, assert_bit_exact, extreme_array, reference_pyramid, set_blob, smooth_array

import mzarr_core
from mzarr import Mzarr
from mzarr_core import chunk_reader
from mzarr_core.chunk_cache import ChunkCache
from mzarr_core.errors import ChunkTooLargeError, CorruptChunkError, MzarrValueError
from mzarr_core.indexing import normalize


# -- helpers ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Every JPEG XL / zstd / Blosc decode imagecodecs does (the decoders the bounded guards call), by codec name."""
    calls: list[str] = []
    real_jxl, real_zstd, real_blosc = imagecodecs.jpegxl_decode, imagecodecs.zstd_decode, imagecodecs.blosc_decode

    def jxl(*args, **kwargs):
        calls.append("jpegxl")
        return real_jxl(*args, **kwargs)

    def zstd(*args, **kwargs):
        calls.append("zstd")
        return real_zstd(*args, **kwargs)

    def blosc(*args, **kwargs):
        calls.append("blosc")
        return real_blosc(*args, **kwargs)

    monkeypatch.setattr(imagecodecs, "jpegxl_decode", jxl)
    monkeypatch.setattr(imagecodecs, "zstd_decode", zstd)
    monkeypatch.setattr(imagecodecs, "blosc_decode", blosc)
    return calls


@pytest.fixture
def four_workers(monkeypatch):
    """Decode on a pool even on a one-core machine (the parallel path is what is tested)."""
    monkeypatch.setattr(chunk_reader, "decode_workers", lambda: 4)


def zarr_read(level, key) -> np.ndarray:
    """``level[key]`` the way Mzarr read before the chunk reader: zarr's own decoding of the storage array."""
    index = normalize(key, level.shape)
    block = np.asarray(level.storage[level.storage_key(index)])
    kept_storage = [p for p in level.perm if not index[p].drop]
    kept_user = sorted(kept_storage)
    block = np.transpose(block, [kept_storage.index(p) for p in kept_user])
    flips = tuple(slice(None, None, -1) if index[p].reverse else slice(None) for p in kept_user)
    return np.array(block[flips] if flips else block, order="C")


def cache_of(m: Mzarr) -> ChunkCache:
    return m._backend.cache


# -- bit-exact parallel reads, every dtype and axis order -------------------------------------------------------------
AXES = {  # axes -> (shape, save chunks)
    "yx": ((45, 53), (16, 16)),
    "zyx": ((11, 37, 29), (4, 16, 8)),
    "yxc": ((37, 29, 3), (16, 8, 3)),
    "zyxc": ((9, 23, 19, 3), (4, 8, 8, 3)),
    "cyx": ((2, 37, 29), (1, 16, 8)),
    "czyx": ((2, 9, 23, 19), (1, 4, 8, 8)),
}


def _keys(ndim: int, rng: np.random.Generator, shape: tuple[int, ...]) -> list[tuple]:
    keys: list[tuple] = [(Ellipsis,), tuple(slice(None, None, -1) for _ in range(ndim)),
                         tuple(slice(1, None, 3) for _ in range(ndim)), tuple(n // 2 for n in shape)]
    for _ in range(6):
        key = []
        for n in shape:
            kind = rng.integers(0, 4)
            if kind == 0:
                key.append(int(rng.integers(-n, n)))
            else:
                a, b = sorted(int(v) for v in rng.integers(0, n + 1, 2))
                step = int(rng.choice([1, 1, 2, 5, -1, -3]))
                key.append(slice(a, b, step) if step > 0 else slice(b, a, step))
        keys.append(tuple(key))
    return keys


@pytest.mark.parametrize("axes", sorted(AXES))
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_parallel_reads_bit_exact_every_dtype_and_axes(tmp_path, four_workers, dtype, axes):
    shape, chunks = AXES[axes]
    a = extreme_array(shape, dtype, seed=len(axes) + ALL_DTYPES.index(dtype))
    path = Mzarr(a, axes=axes).save(tmp_path / "x.mzarr", chunks=chunks)
    rng = np.random.default_rng(7)
    with Mzarr(path) as m:
        ref = reference_pyramid(a, m.axes, len(m.levels), m.downsample_method)
        for level, expected in zip(m.levels, ref):
            assert level._source.fast, "Mzarr's own pipelines are decoded by the chunk reader"
            for key in _keys(level.ndim, rng, level.shape):
                for attempt in ("decoded", "cached"):
                    got = level[key]
                    assert_bit_exact(got, expected[key], f"level {level.index} {key} {attempt}")
                    assert_bit_exact(got, zarr_read(level, key), f"zarr path, level {level.index} {key}")
                    assert got.flags.c_contiguous and got.flags.writeable
            cache_of(m).clear()  # and once more without the cache, whole level
            assert_bit_exact(level[...], expected, f"level {level.index} whole")


def test_smooth_and_lossy_images_match_zarr(tmp_path, four_workers):
    a = smooth_array((300, 260, 3), "uint8", seed=5)
    for lossless in (True, False):
        path = Mzarr(a).save(tmp_path / f"rgb{lossless}.mzarr", lossless=lossless, chunks=(64, 64, 3))
        with Mzarr(path, cache_bytes=0) as m:
            for level in m.levels:
                assert_bit_exact(level[...], zarr_read(level, ...), f"level {level.index} lossless={lossless}")
                assert_bit_exact(level[5:-7:2, ::-3], zarr_read(level, (slice(5, -7, 2), slice(None, None, -3))))


def test_missing_chunks_read_as_the_fill_value(tmp_path):
    path = tmp_path / "empty.mzarr"
    with Mzarr(path, "w", shape=(100, 90), dtype="uint16", chunks=(32, 32)) as m:
        m[40:50, 40:50] = 7
    expected = np.zeros((100, 90), np.uint16)
    expected[40:50, 40:50] = 7
    with Mzarr(path) as m:
        assert_bit_exact(m[...], expected)
        assert_bit_exact(m.levels[0].read_chunk((0, 0)), expected[:32, :32])


# -- the cache ----------------------------------------------------------------------------------------------------------
def test_repeated_reads_decode_each_chunk_once(tmp_path, decodes):
    a = smooth_array((200, 190), "uint8", seed=1)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(64, 64))
    with Mzarr(path) as m:
        decodes.clear()
        assert_bit_exact(m[10:100, 10:100], a[10:100, 10:100])
        assert len(decodes) == 4  # chunks (0,0), (0,1), (1,0), (1,1)
        for _ in range(3):
            assert_bit_exact(m[10:100, 10:100], a[10:100, 10:100])
            assert_bit_exact(m[0:64, 0:64], a[0:64, 0:64])
        assert len(decodes) == 4
        assert_bit_exact(m[50:140, 50:140], a[50:140, 50:140])  # 9 chunks, 4 of them cached
        assert len(decodes) == 9
        m.levels[0].read_chunk((2, 2))
        m.levels[0].read_chunk((2, 2))
        assert len(decodes) == 9, "read_chunk shares the cache of region reads"


def test_zstd_chunks_are_cached_too(tmp_path, decodes):
    a = extreme_array((90, 80), "float32", seed=2)
    path = Mzarr(a).save(tmp_path / "f.mzarr", chunks=(32, 32))
    with Mzarr(path) as m:
        decodes.clear()
        for _ in range(3):
            assert_bit_exact(m[...], a)
        assert decodes == ["zstd"] * 9


def test_cache_respects_its_byte_bound(tmp_path):
    a = smooth_array((256, 256), "uint16", seed=3)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(32, 32))  # 2 KiB per chunk
    chunk_bytes = 32 * 32 * 2
    with Mzarr(path, cache_bytes=10 * chunk_bytes + 100) as m:
        cache = cache_of(m)
        for y in range(0, 256, 32):
            for x in range(0, 256, 32):
                assert_bit_exact(m[y : y + 32, x : x + 32], a[y : y + 32, x : x + 32])
                assert cache.nbytes <= m.cache_bytes
        assert len(cache) == 10 and cache.nbytes == 10 * chunk_bytes
        # least recently used first out: the last 10 chunks read are the ones kept
        assert {k[2] for k in cache.keys()} == {(6, 6), (6, 7)} | {(7, x) for x in range(8)}
        m.cache_bytes = 3 * chunk_bytes  # shrinking evicts at once
        assert len(cache) == 3 and cache.nbytes <= m.cache_bytes
        assert_bit_exact(m[...], a)  # a read larger than the cache still works
        assert cache.nbytes <= m.cache_bytes
        m.cache_bytes = chunk_bytes - 1  # a chunk larger than the bound is never kept
        assert_bit_exact(m[0:10, 0:10], a[0:10, 0:10])
        assert len(cache) == 0


def test_zero_disables_the_cache(tmp_path, decodes):
    a = smooth_array((100, 100), "uint8", seed=4)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(64, 64))
    with Mzarr(path, cache_bytes=0) as m:
        decodes.clear()
        for _ in range(3):
            assert_bit_exact(m[...], a)
        assert len(decodes) == 12 and len(cache_of(m)) == 0
        assert m.levels[0].read_chunk((0, 0), cached_only=True) is None
        chunk = m.levels[0].read_chunk((0, 0))
        assert not chunk.flags.writeable
        assert_bit_exact(chunk, a[:64, :64])


def test_global_setting_and_per_file_setting(tmp_path, decodes):
    a = smooth_array((100, 100), "uint8", seed=4)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(64, 64))
    assert mzarr_core.get_cache_bytes() == mzarr_core.DEFAULT_CACHE_BYTES
    follows, own = Mzarr(path), Mzarr(path, cache_bytes=1 << 20)
    try:
        assert follows.cache_bytes == mzarr_core.DEFAULT_CACHE_BYTES and own.cache_bytes == 1 << 20
        follows[...], own[...]
        assert len(cache_of(follows)) == 4 and len(cache_of(own)) == 4
        mzarr_core.set_cache_bytes(0)
        assert follows.cache_bytes == 0 and len(cache_of(follows)) == 0, "open files without their own bound follow"
        assert own.cache_bytes == 1 << 20 and len(cache_of(own)) == 4, "a file's own bound wins"
        with Mzarr(path) as later:
            assert later.cache_bytes == 0
        own.cache_bytes = None
        assert own.cache_bytes == 0 and len(cache_of(own)) == 0
    finally:
        mzarr_core.set_cache_bytes(None)
        follows.close()
        own.close()
    assert mzarr_core.get_cache_bytes() == mzarr_core.DEFAULT_CACHE_BYTES
    for bad in (-1, 1.5, "big"):
        with pytest.raises(MzarrValueError, match="cache size"):
            Mzarr(path, cache_bytes=bad)
        with pytest.raises(MzarrValueError, match="cache size"):
            mzarr_core.set_cache_bytes(bad)


def test_cached_arrays_cannot_be_changed_through_what_reads_return(tmp_path):
    vol = smooth_array((70, 80, 90), "uint8", seed=6)
    path = Mzarr(vol).save(tmp_path / "v.mzarr")
    with Mzarr(path) as m:
        level = m.levels[0]
        region = m[0:40, 0:40, 0:40]
        region[...] = 0  # a region read is the caller's own array
        assert_bit_exact(m[0:40, 0:40, 0:40], vol[0:40, 0:40, 0:40])
        chunk = level.read_chunk((0, 0, 0))
        assert not chunk.flags.writeable
        with pytest.raises(ValueError):
            chunk[0, 0, 0] = 1
        with pytest.raises(ValueError):
            chunk.flags.writeable = True
        plane = level.read_chunk_plane((1, 0, 0), 65)
        assert not plane.flags.writeable
        with pytest.raises(ValueError):
            plane[...] = 1
        z = level.z_plane(66)
        z[...] = 0
        assert_bit_exact(level.z_plane(66), vol[66])
        assert_bit_exact(level.read_chunk((0, 0, 0)), vol[:64, :64, :64])


def test_z_planes_are_cached_separately_from_bricks(tmp_path, monkeypatch):
    vol = smooth_array((70, 150, 130), "uint16", seed=7)
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks="frames")
    frames: list = []
    real = imagecodecs.jpegxl_decode

    def spy(data, index=None, **kw):
        frames.append(index)
        return real(data, index=index, **kw)

    monkeypatch.setattr(imagecodecs, "jpegxl_decode", spy)
    with Mzarr(path) as m:
        level = m.levels[0]
        assert_bit_exact(level.z_plane(10), vol[10])
        assert frames == [10] * 9
        assert_bit_exact(level.z_plane(10, slice(5, 100)), vol[10, 5:100])
        assert_bit_exact(level.read_chunk_plane((0, 1, 1), 10), vol[10, 64:128, 64:128])
        assert frames == [10] * 9, "planes come from the cache"
        assert_bit_exact(level.read_chunk((0, 0, 0)), vol[:64, :64, :64])  # a whole brick: decoded once...
        assert frames[-1] is None
        n = len(frames)
        assert_bit_exact(level.read_chunk_plane((0, 0, 0), 20), vol[20, :64, :64])  # ...and serves its planes
        assert_bit_exact(level.z_plane(30, slice(0, 64), slice(0, 64)), vol[30, :64, :64])
        assert len(frames) == n


# -- never stale ---------------------------------------------------------------------------------------------------------
def test_writes_in_this_process_invalidate_every_level(tmp_path):
    a = smooth_array((130, 120), "uint8", seed=8)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(32, 32))
    ref = a.copy()
    other = Mzarr(path)  # another object on the same file, in this process
    try:
        with Mzarr(path, "r+") as m:
            for key, value in (((slice(10, 70), slice(20, 90)), 255), ((slice(None, None, -7), 3), 0),
                               ((slice(100, 130), slice(0, 120)), 17)):
                for lv in m.levels + other.levels:
                    lv[...]  # everything cached
                m[key] = value
                ref[key] = value
                expected = reference_pyramid(ref, "yx", len(m.levels), "mean")
                for who in (m, other):
                    for lv, e in zip(who.levels, expected):
                        assert_bit_exact(lv[...], e, f"level {lv.index} after writing {key}")
                        assert_bit_exact(lv.read_chunk((0, 0)), e[lv.chunk_region((0, 0))])
    finally:
        other.close()


def test_a_rolled_back_edit_leaves_no_new_pixels_in_the_cache(tmp_path):
    a = smooth_array((130, 120), "uint16", seed=9)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(32, 32))
    with Mzarr(path, "r+") as m:
        before = [lv[...] for lv in m.levels]
        with pytest.raises(RuntimeError, match="changed my mind"):
            with m.transaction():
                m[0:64, 0:64] = 65535
                assert (m[0:64, 0:64] == 65535).all(), "the edit's own reads see its pixels"
                for lv in m.levels:
                    lv[...]
                    lv.read_chunk((0, 0))
                assert len(cache_of(m)) == 0, "nothing is cached while a write runs"
                raise RuntimeError("changed my mind")
        for lv, b in zip(m.levels, before):
            assert_bit_exact(lv[...], b, f"level {lv.index} after the rollback")
            assert_bit_exact(lv.read_chunk((0, 0)), b[lv.chunk_region((0, 0))])
    with Mzarr(path) as m:
        assert_bit_exact(m[...], a)


def test_another_process_commit_invalidates(tmp_path):
    a = smooth_array((130, 120), "uint8", seed=10)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(32, 32))
    with Mzarr(path) as m:
        for lv in m.levels:
            lv[...]
        code = textwrap.dedent("""
            import sys
            from mzarr import Mzarr
            with Mzarr(sys.argv[1], "r+") as w:
                w[0:50, 0:50] = 201
        """)
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=120)
        ref = a.copy()
        ref[0:50, 0:50] = 201
        for lv, e in zip(m.levels, reference_pyramid(ref, "yx", len(m.levels), "mean")):
            assert_bit_exact(lv[...], e, f"level {lv.index} after the other process's commit")


def test_folder_images_see_writes_of_other_objects_in_this_process(tmp_path):
    a = smooth_array((100, 100), "uint8", seed=11)
    path = Mzarr(a).save(tmp_path / "x.ome.zarr", chunks=(32, 32))
    with Mzarr(path) as reader:
        reader[...]
        with Mzarr(path, "r+") as writer:
            writer[0:10, 0:10] = 99
        assert (reader[0:10, 0:10] == 99).all()


def test_one_read_snapshot_per_region_read(tmp_path, four_workers, monkeypatch):
    from mzarr_core.sqlite_store import SqliteStore

    a = smooth_array((200, 200), "uint8", seed=12)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(32, 32))
    snapshots, outside = [], []
    real_transaction, real_fetch = SqliteStore.transaction, chunk_reader.fetch_chunks

    def transaction(self, write=True):
        if self._depth == 0:
            snapshots.append(write)
        return real_transaction(self, write)

    def fetch(store, keys):
        if store._depth == 0:
            outside.append(keys)
        return real_fetch(store, keys)

    monkeypatch.setattr(SqliteStore, "transaction", transaction)
    monkeypatch.setattr(chunk_reader, "fetch_chunks", fetch)
    with Mzarr(path, cache_bytes=0) as m:
        snapshots.clear()
        assert_bit_exact(m[...], a)  # 49 chunks, fetched in batches
        assert snapshots == [False] and not outside


# -- errors ---------------------------------------------------------------------------------------------------------------
def test_damaged_chunks_are_named_in_parallel_reads(tmp_path, four_workers):
    a = smooth_array((200, 200), "uint8", seed=13)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(32, 32))
    set_blob(path, "0/c/3/4", b"\xff\x0a junk")
    set_blob(path, "0/c/5/1", b"junk")
    with Mzarr(path) as m:
        assert_bit_exact(m[0:90, 0:90], a[0:90, 0:90])  # cached before: still served
        with pytest.raises(CorruptChunkError, match=r"chunk 0/c/3/4 \(level 0, chunk \(3, 4\)\) of .*x\.mzarr"):
            m[...]  # the first damaged chunk in order is named
        with pytest.raises(CorruptChunkError, match=r"chunk 0/c/5/1 \(level 0, chunk \(5, 1\)\)"):
            m[150:190, 0:90]
        with pytest.raises(CorruptChunkError, match=r"chunk 0/c/5/1 "):
            m.levels[0].read_chunk((5, 1))
        assert_bit_exact(m[0:90, 0:90], a[0:90, 0:90])


def test_a_bomb_chunk_is_refused_and_named(tmp_path, four_workers):
    a = smooth_array((200, 200), "uint8", seed=14)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(32, 32), checksums=False)  # a crafted chunk: the guard behind the checksum
    bomb = imagecodecs.jpegxl_encode(np.zeros((4000, 4000), np.uint8), lossless=True, effort=1)
    set_blob(path, "0/c/2/2", bomb)
    with Mzarr(path) as m, pytest.raises(ChunkTooLargeError, match=r"chunk 0/c/2/2 \(level 0, chunk \(2, 2\)\)"):
        m[...]


# -- foreign pipelines and concurrency ------------------------------------------------------------------------------------
def test_foreign_blosc_folder_reads_with_the_core_decoder_and_caches_chunks(tmp_path, decodes):
    """Another tool's OME-Zarr with bytes + blosc chunks: the core decodes them itself (the header checked against
    the chunk's size), bit-exact, and caches them."""
    import zarr
    from zarr.codecs import BloscCodec

    a = smooth_array((150, 140), "uint16", seed=15)
    root = zarr.open_group(tmp_path / "other.zarr", mode="w", zarr_format=3)
    for i, lv in enumerate([a, a[::2, ::2]]):
        root.create_array(f"s{i}", shape=lv.shape, dtype=lv.dtype, chunks=(64, 64),
                          compressors=[BloscCodec(cname="zstd", clevel=3)])[...] = lv
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n, "type": "space"} for n in "yx"],
        "datasets": [{"path": f"s{i}", "coordinateTransformations": [{"type": "scale", "scale": [2.0**i] * 2}]}
                     for i in range(2)],
    }]}
    with Mzarr(tmp_path / "other.zarr") as m:
        level = m.levels[0]
        assert level._source.fast
        assert_bit_exact(m[10:-10:3, ::-1], a[10:-10:3, ::-1])
        chunk = level.read_chunk((1, 2))
        assert_bit_exact(chunk, a[64:128, 128:140])
        assert level.read_chunk((1, 2), cached_only=True) is not None
        assert decodes == ["blosc"] * 9  # each of the 3 x 3 chunks once: read_chunk((1, 2)) came from the cache


def test_threads_reading_at_once_get_exact_pixels(tmp_path, four_workers):
    vol = smooth_array((40, 150, 140), "int16", seed=16)
    path = Mzarr(vol).save(tmp_path / "v.mzarr", chunks=(8, 32, 32))
    errors: list = []
    with Mzarr(path, cache_bytes=64 * 1024) as m:  # small: entries come and go while threads read

        def reader(seed: int) -> None:
            rng = np.random.default_rng(seed)
            try:
                for _ in range(25):
                    z0, y0, x0 = (int(rng.integers(0, n - 10)) for n in vol.shape)
                    key = (slice(z0, z0 + 10), slice(y0, y0 + 50), slice(x0, x0 + 40, 2))
                    assert_bit_exact(m[key], vol[key])
                    assert_bit_exact(m.levels[0].z_plane(z0, slice(y0, y0 + 9)), vol[z0, y0 : y0 + 9])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert cache_of(m).nbytes <= m.cache_bytes
    assert not errors, errors[0]
