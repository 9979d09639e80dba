"""Writing into an opened file: every level follows, other readers see the new state, only the touched chunks are
rewritten; and the empty-create path (``Mzarr(path, "w", shape=..., dtype=...)``) filled region by region."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import assert_bit_exact, assert_pyramid, chunk_blobs, extreme_array, reference_pyramid, smooth_array

from mzarr import Mzarr
from mzarr_core.errors import MzarrValueError
from mzarr_core.sqlite_store import SqliteStore


def expected_chunk_keys(m: Mzarr, box: list[tuple[int, int]]) -> set[str]:
    """Keys of the chunks, on every level, that a write of the level-0 box ``box`` (user order == storage order,
    no channel axis) may rewrite: the box scaled down by each level's factor, rounded outwards."""
    keys = set()
    for lvl in m.levels:
        ranges = []
        for (lo, hi), f, c in zip(box, lvl.factor, lvl.chunks):
            lo_i, hi_i = lo // f, -(-hi // f)
            ranges.append(range(lo_i // c, (hi_i - 1) // c + 1))
        for coords in itertools.product(*ranges):
            keys.add(f"{lvl.index}/c/" + "/".join(map(str, coords)))
    return keys


@pytest.fixture
def record_writes(monkeypatch) -> list[str]:
    """Every key written through SqliteStore (the single place the container stores bytes)."""
    written: list[str] = []
    original = SqliteStore.set_bytes_sync

    def spy(self, key, data):
        written.append(key)
        return original(self, key, data)

    monkeypatch.setattr(SqliteStore, "set_bytes_sync", spy)
    return written


@pytest.mark.parametrize(
    "box",
    [
        [(20, 21), (33, 34)],  # one pixel
        [(3, 40), (17, 29)],  # straddles chunk borders
        [(96, 101), (0, 77)],  # the odd last rows, full width
        [(0, 101), (70, 77)],  # the last (partial) chunk column
    ],
)
def test_write_touches_only_covered_chunks(tmp_path, record_writes, box):
    """A write rewrites exactly the chunks its region covers on each level (spy on the store) and leaves every
    other stored blob byte-identical (compared with plain sqlite3)."""
    a = smooth_array((101, 77), "uint16", seed=1)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(16, 16))
    before = chunk_blobs(path)
    ref = a.copy()
    region = tuple(slice(lo, hi) for lo, hi in box)
    ref[region] = 65535 - ref[region]
    with Mzarr(path, "r+") as m:
        allowed = expected_chunk_keys(m, box)
        record_writes.clear()
        m[region] = ref[region]
        written = set(record_writes)
        assert_pyramid(m, ref, "mean")
    assert written <= allowed, f"wrote chunks outside the region: {sorted(written - allowed)}"
    level0 = {k for k in allowed if k.startswith("0/c/")}
    assert level0 <= written, f"did not write covered level-0 chunks {sorted(level0 - written)}"
    after = chunk_blobs(path)
    assert set(after) == set(before), "keys appeared or disappeared"
    changed = {k for k in before if before[k] != after[k]}
    assert changed <= allowed, f"blobs changed outside the region: {sorted(changed - allowed)}"
    assert level0 <= changed
    assert all(after[k] == before[k] for k in before if k not in allowed)
    assert after["zarr.json"] == before["zarr.json"], "pixel writes must not rewrite the metadata"


def test_write_updates_every_level_and_other_readers(tmp_path):
    """After each write, every level equals the reference pyramid of the edited reference, both through the
    writer and through a reader opened before the write and one opened after it."""
    a = smooth_array((6, 70, 90), "int16", seed=2)
    path = Mzarr(a).save(tmp_path / "v.mzarr", chunks=(4, 16, 16))
    ref = a.copy()
    early_reader = Mzarr(path)
    _ = early_reader[...]  # it has read (and could have cached) the old state
    writes = [
        ((slice(1, 5), slice(10, 50), slice(20, 33)), -32768),
        ((2, slice(None, None, -3), slice(None)), 32767),
        ((slice(None), -1, -1), np.arange(6, dtype=np.int16) * 1000),
        ((slice(0, 6, 5), slice(69, 60, -2), slice(1, 89, 11)), extreme_array((2, 5, 8), "int16", 3)),
    ]
    with Mzarr(path, "r+") as m:
        for key, value in writes:
            m[key] = value
            ref[key] = value
            assert_pyramid(m, ref, "mean")
            assert_pyramid(early_reader, ref, "mean")
            with Mzarr(path) as late_reader:
                assert_pyramid(late_reader, ref, "mean")
    early_reader.close()
    with Mzarr(path) as reopened:
        assert_pyramid(reopened, ref, "mean")


@pytest.mark.parametrize("method", ["nearest", "mode"])
def test_write_follows_nearest_and_mode_pyramids(tmp_path, method):
    """Files saved with downsample='nearest' or as labels ('mode') keep that method when edited."""
    rng = np.random.default_rng(4)
    a = rng.integers(0, 5, (53, 47)).astype(np.uint16)
    kwargs = {"is_label": True} if method == "mode" else {"downsample": "nearest"}
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(8, 8), **kwargs)
    ref = a.copy()
    with Mzarr(path, "r+") as m:
        assert m.downsample_method == method and m.is_label == (method == "mode")
        edits = [((slice(5, 30), slice(7, 9)), 9), ((slice(None, None, 2), 46), 3), ((slice(40, None), slice(None)), 7)]
        for key, v in edits:
            m[key] = v
            ref[key] = v
        assert_pyramid(m, ref, method)


def test_rgb_and_channel_writes(tmp_path):
    """Writes into one channel of an RGB (yxc) file and into a czyx file update just that channel, all levels."""
    rgb = smooth_array((40, 52, 3), "uint8", seed=5)
    path = Mzarr(rgb).save(tmp_path / "rgb.mzarr", chunks=(16, 16, 3))
    ref = rgb.copy()
    with Mzarr(path, "r+") as m:
        m[5:30, 10:20, 1] = 255
        ref[5:30, 10:20, 1] = 255
        m[-1, :, :] = [1, 2, 3]  # broadcast one colour over the last row
        ref[-1, :, :] = [1, 2, 3]
        assert_pyramid(m, ref, "mean")
    vol = smooth_array((2, 5, 20, 24), "uint16", seed=6)
    path = Mzarr(vol, axes="czyx").save(tmp_path / "c.mzarr", chunks=(1, 2, 8, 8))
    ref = vol.copy()
    with Mzarr(path, "r+") as m:
        m[1, 1:4, ::2, 5:] = 12345
        ref[1, 1:4, ::2, 5:] = 12345
        assert_pyramid(m, ref, "mean")


@pytest.mark.parametrize(
    "shape,dtype,axes,chunks",
    [
        ((130, 97), "uint8", None, (32, 32)),
        ((11, 40, 35), "float32", None, (4, 16, 16)),
        ((45, 38, 3), "uint16", None, (16, 16, 3)),
        ((2, 9, 30, 21), "int16", "czyx", (1, 4, 8, 8)),
    ],
)
def test_empty_create_then_fill_region_by_region(tmp_path, shape, dtype, axes, chunks):
    """Mzarr(path, 'w', shape=, dtype=) creates an all-zero image with its pyramid; filling it with unaligned
    tiles gives exactly the pyramid of the filled array, in the file and after reopening."""
    path = tmp_path / "new.mzarr"
    m = Mzarr(path, "w", shape=shape, dtype=dtype, axes=axes, chunks=chunks)
    assert m.mode == "r+" and m.writable and m.shape == shape and m.dtype == np.dtype(dtype)
    assert m.chunks == chunks and len(m.levels) >= 2
    zeros = np.zeros(shape, dtype)
    assert_pyramid(m, zeros, "mean")
    full = extreme_array(shape, dtype, seed=8) if dtype != "float32" else smooth_array(shape, dtype, seed=8)
    spatial = [i for i, ax in enumerate(m.axes) if ax != "c"]
    y, x = spatial[-2], spatial[-1]
    step_y, step_x = 23, 19  # deliberately not chunk multiples
    for oy in range(0, shape[y], step_y):
        for ox in range(0, shape[x], step_x):
            key = [slice(None)] * len(shape)
            key[y], key[x] = slice(oy, oy + step_y), slice(ox, ox + step_x)
            m[tuple(key)] = full[tuple(key)]
    assert_pyramid(m, full, "mean")
    m.close()
    with Mzarr(path) as again:
        assert_pyramid(again, full, "mean")


def test_empty_create_needs_shape_and_respects_w_minus(tmp_path):
    """'w' without shape/dtype says how to call it; 'w-' refuses to overwrite; 'w' replaces an existing file."""
    path = tmp_path / "e.mzarr"
    with pytest.raises(MzarrValueError, match=r"give shape= and dtype="):
        Mzarr(path, "w")
    assert not path.exists()
    Mzarr(path, "w-", shape=(10, 10), dtype="uint8").close()
    with pytest.raises(MzarrValueError, match="already exists"):
        Mzarr(path, "w-", shape=(10, 10), dtype="uint8")
    with Mzarr(path, "w", shape=(5, 6, 7), dtype="float64") as m:
        assert m.shape == (5, 6, 7) and m.dtype == np.float64
        assert not m[...].any()


def test_write_then_save_elsewhere_and_over_itself(tmp_path):
    """An edited file saved to a new path (and over its own path) keeps the edits; the open object keeps working."""
    a = smooth_array((60, 50), "uint8", seed=9)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(16, 16))
    ref = a.copy()
    with Mzarr(path, "r+") as m:
        m[10:20, 10:20] = 0
        ref[10:20, 10:20] = 0
        other = m.save(tmp_path / "copy.mzarr", chunks=(32, 32))
        m.save(path, chunks=(8, 8))  # replaces the file it is reading from
        assert m.chunks == (8, 8)
        assert_pyramid(m, ref, "mean")
        m[0, 0] = 1
        ref[0, 0] = 1
    with Mzarr(other) as c:
        assert c.chunks == (32, 32)
        ref_copy = ref.copy()
        ref_copy[0, 0] = a[0, 0]
        assert_pyramid(c, ref_copy, "mean")
    with Mzarr(path) as again:
        assert_pyramid(again, ref, "mean")


def _sidecars(path) -> list[str]:
    """SQLite journal files beside a .mzarr (-wal, -shm, -journal)."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "-"))


def _journal_mode_bytes(path) -> bytes:
    """Bytes 18-19 of the SQLite header: b'\\x01\\x01' rollback journal, b'\\x02\\x02' WAL."""
    with open(path, "rb") as f:
        return f.read(20)[18:20]


def test_single_file_at_rest_after_session(tmp_path):
    """After reading, and after an r+ session is closed, the .mzarr is one file again (no -wal/-shm)."""
    path = Mzarr(smooth_array((100, 100), "uint8")).save(tmp_path / "x.mzarr", chunks=(32, 32))
    assert _sidecars(path) == [] and _journal_mode_bytes(path) == b"\x01\x01"
    with Mzarr(path) as r:
        r[...]
    assert _sidecars(path) == []
    with Mzarr(path, "r+") as m:
        m[0:50] = 3
    assert _sidecars(path) == [] and _journal_mode_bytes(path) == b"\x01\x01"


def test_single_file_at_rest_after_concurrent_session(tmp_path):
    """A reader open while an r+ session closes (e.g. the viewer showing a file a script edits): once both are
    closed the file is a single rollback-journal file again, with the edit in it."""
    path = Mzarr(np.zeros((100, 100), np.uint8)).save(tmp_path / "x.mzarr", chunks=(32, 32))
    m = Mzarr(path, "r+")
    r = Mzarr(path)
    r[...]
    m[0:50] = 3
    m.close()
    assert int(r[10, 10]) == 3
    r.close()
    with Mzarr(path) as again:
        assert int(again[49, 99]) == 3 and int(again[50, 0]) == 0
    assert _sidecars(path) == [], _sidecars(path)
    assert _journal_mode_bytes(path) == b"\x01\x01"


def test_huge_empty_image_small_edit(tmp_path, record_writes):
    """A 40000 x 30000 uint16 image (2.4 GB of pixels) is created empty in a blink, stays tiny on disk, and a
    small edit writes only a handful of chunks; around it every level equals the pyramid of that area."""
    path = tmp_path / "huge.mzarr"
    with Mzarr(path, "w", shape=(40000, 30000), dtype="uint16") as m:
        assert m.chunks == (512, 512) and len(m.levels) == 8
        record_writes.clear()
        patch = smooth_array((100, 600), "uint16", seed=3)
        m[20000:20100, 100:700] = patch
        assert len({k for k in record_writes if "/c/" in k}) <= 2 * 8, sorted(set(record_writes))
        step = 2 ** (len(m.levels) - 1)  # a box aligned to the coarsest level's pixels
        y0, y1, x0, x1 = 20000 // step * step, -(-20100 // step) * step, 0, -(-700 // step) * step
        crop = m[y0:y1, x0:x1]
        assert int(crop.sum()) == int(patch.sum(dtype=np.int64))
        expected = reference_pyramid(crop, "yx", len(m.levels), "mean")
        for lvl, ref in zip(m.levels, expected):
            f = lvl.factor[0]
            assert_bit_exact(lvl[y0 // f:y1 // f, x0 // f:x1 // f], ref, f"level {lvl.index}")
        assert int(m.levels[3][0:100, 0:100].max()) == 0
    assert path.stat().st_size < 1_000_000
