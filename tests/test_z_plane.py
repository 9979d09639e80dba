"""Level.z_plane gives exactly what ``level[z, rows, cols]`` gives: one frame per brick for frame bricks (format 1),
whole bricks, decoded once and cached, for strip bricks (format 2), the slab holding the plane, decoded once and
cached, for slab bricks (format 4)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from mzarr import Mzarr
from mzarr_core import frames


def moon_volume(depth: int, dtype: str) -> np.ndarray:
    """A real-texture volume: scikit-image's moon, shifted a little more at every z."""
    moon = data.moon().astype(np.int64)
    vol = np.stack([np.roll(moon, 3 * z, axis=1)[:150, :130] for z in range(depth)])
    if dtype == "bool":
        return vol > 120
    if dtype in ("int8", "int16"):
        return (vol - 128).astype(dtype) * (1 if dtype == "int8" else 100)
    return (vol * (1 if dtype == "uint8" else 250)).astype(dtype)


CASES = [("uint8", "zyx", True), ("uint8", "zyx", False), ("uint16", "zyx", True), ("int16", "zyx", True),
         ("int8", "zyx", True), ("bool", "zyx", True), ("uint8", "zyxc", True), ("uint16", "czyx", True)]


@pytest.mark.parametrize(
    ("dtype", "axes", "lossless", "bricks"),
    # strip and slab bricks are lossless only (lossy volumes are stored as frames)
    [(*case, bricks) for bricks in ("frames", "strip", "slabs") for case in CASES if case[2] or bricks == "frames"],
)
def test_z_plane_equals_indexing_on_every_level(tmp_path, dtype, axes, lossless, bricks):
    base = moon_volume(70, dtype)
    if axes == "zyxc":
        image = np.stack([base, base // 2, 255 - base], axis=-1)
    elif axes == "czyx":
        image = np.stack([base, base[:, ::-1]])
    else:
        image = base
    path = Mzarr(image, axes=axes).save(tmp_path / "v.mzarr", lossless=lossless, bricks=bricks)
    with Mzarr(path) as m:
        assert m.codec.get("bricks", "frames") == bricks
        # colour volumes asked for slabs keep strip chunks (docs/FORMAT.md, "3D bricks")
        fast = bricks == "frames" or (bricks == "slabs" and axes != "zyxc")
        assert all(level.plane_reads_are_fast == fast for level in m.levels)
        for level in m.levels:
            nz = level.shape[level.axes.index("z")]
            for z in (0, nz // 2, nz - 1, -1):
                for rows, cols in ((slice(None), slice(None)), (slice(3, 77), slice(10, 51))):
                    key = [slice(None)] * level.ndim
                    key[level.axes.index("z")], key[level.axes.index("y")], key[level.axes.index("x")] = z, rows, cols
                    expected = level[tuple(key)]
                    got = level.z_plane(z, rows, cols)
                    assert got.dtype == expected.dtype and got.shape == expected.shape
                    assert np.array_equal(got, expected), (level.index, z, rows, cols)


@pytest.fixture
def decode_calls(monkeypatch) -> list:
    """The ``index`` argument of every JPEG XL decode from here on (None: the whole stream)."""
    calls: list = []
    real = frames.imagecodecs.jpegxl_decode

    def spy(data, index=None, **kw):
        calls.append(index)
        return real(data, index=index, **kw)

    monkeypatch.setattr(frames.imagecodecs, "jpegxl_decode", spy)
    return calls


def test_z_plane_decodes_one_frame_per_brick(tmp_path, decode_calls):
    vol = moon_volume(130, "uint8")
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks="frames")
    with Mzarr(path) as m:
        plane = m.levels[0].z_plane(100)
    assert np.array_equal(plane, vol[100])
    assert decode_calls and set(decode_calls) == {100 % 64}  # frame 36 of each brick in z-row 1, nothing else decoded
    assert len(decode_calls) == 3 * 3  # 150 x 130 in 64 x 64 bricks


def test_z_plane_of_strip_bricks_decodes_each_brick_once(tmp_path, decode_calls):
    """A strip brick is one frame: a z-plane decodes the bricks of its layer whole (each once, into the file's
    cache), and every other plane of that layer is then cut from the cache without decoding."""
    vol = moon_volume(130, "uint8")
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks="strip")
    with Mzarr(path) as m:
        assert np.array_equal(m.levels[0].z_plane(100), vol[100])
        assert decode_calls == [None] * 9  # 3 x 3 bricks of z-layer 1, whole
        for z in (64, 101, 127):
            assert np.array_equal(m.levels[0].z_plane(z, slice(5, 140), slice(0, 99)), vol[z, 5:140, 0:99])
        assert len(decode_calls) == 9, "planes of a decoded brick layer come from the cache"
        assert np.array_equal(m.levels[0].z_plane(3), vol[3])
        assert len(decode_calls) == 18


def test_z_plane_falls_back_for_zstd_and_steps(tmp_path):
    vol = moon_volume(20, "uint16").astype(np.float32)
    with Mzarr(Mzarr(vol).save(tmp_path / "f.mzarr")) as m:
        level = m.levels[0]
        assert not frames.frame_decodable(level.storage)
        assert np.array_equal(level.z_plane(5, slice(0, 40, 3)), vol[5, 0:40:3])
    with pytest.raises(IndexError, match="needs a volume"):
        Mzarr(data.camera()).levels[0].z_plane(0)


def test_z_plane_names_a_damaged_brick(tmp_path):
    import sqlite3

    from mzarr import CorruptChunkError

    path = Mzarr(moon_volume(70, "uint8")).save(tmp_path / "v.mzarr")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE zarr SET value=? WHERE key='0/c/1/0/0'", (b"junk",))
    with Mzarr(path) as m, pytest.raises(CorruptChunkError, match="0/c/1/0/0"):
        m.levels[0].z_plane(65)


@pytest.fixture
def decoded_shapes(monkeypatch) -> list:
    """The output shape of every JPEG XL decode from here on."""
    shapes: list = []
    real = frames.imagecodecs.jpegxl_decode

    def spy(data, index=None, out=None, **kw):
        result = real(data, index=index, out=out, **kw)
        shapes.append(result.shape)
        return result

    monkeypatch.setattr(frames.imagecodecs, "jpegxl_decode", spy)
    return shapes


def test_z_plane_of_slab_bricks_decodes_one_slab_per_brick(tmp_path, decoded_shapes):
    """Slab bricks (the default for lossless volumes): a z-plane decodes only the 16-plane slab holding it in each
    brick of its layer (cached), so the slab's other planes are free; a whole brick decodes its 4 slabs."""
    vol = moon_volume(130, "uint16")
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks="slabs")
    with Mzarr(path) as m:
        level = m.levels[0]
        assert m.codec == {"name": "jpegxl", "lossless": True, "effort": 1, "bricks": "slabs", "slab": 16,
                               "checksum": "crc32c"}
        assert level.plane_reads_are_fast
        decoded_shapes.clear()
        assert np.array_equal(level.z_plane(100), vol[100])
        assert decoded_shapes == [(16 * 64, 64)] * 9  # 3 x 3 bricks of z-layer 1: slab 2 (planes 96..111) of each
        for z in (96, 103, 111):
            assert np.array_equal(level.z_plane(z, slice(5, 140), slice(0, 99)), vol[z, 5:140, 0:99])
            assert np.array_equal(level.read_chunk_plane((1, 0, 1), z), vol[z, :64, 64:128])
        assert len(decoded_shapes) == 9, "planes of a decoded slab come from the cache"
        assert np.array_equal(level.z_plane(112), vol[112])
        assert len(decoded_shapes) == 18  # the next slab
        decoded_shapes.clear()
        assert np.array_equal(level.read_chunk((0, 2, 0)), vol[:64, 128:150, :64])
        assert decoded_shapes == [(16 * 64, 64)] * 4  # a whole brick: its four slabs
        assert np.array_equal(level.read_chunk_plane((2, 0, 0), 129), vol[129, :64, :64])  # edge brick: 2 planes
        m.clear_cache()
        decoded_shapes.clear()
        assert np.array_equal(level[100, 64:70, 64:70], vol[100, 64:70, 64:70])
        assert decoded_shapes == [(16 * 64, 64)] * 4  # a region read decodes whole bricks


def test_whole_slab_brick_reuses_the_slabs_a_plane_decoded(tmp_path, decoded_shapes):
    """A y-plane after a z-plane (orthogonal views): each brick the z-plane touched decodes only its 3 other slabs."""
    vol = moon_volume(130, "int16")
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks="slabs")
    with Mzarr(path) as m:
        level = m.levels[0]
        assert np.array_equal(level.z_plane(70), vol[70])
        decoded_shapes.clear()
        assert np.array_equal(level[:, 100, :], vol[:, 100, :])  # bricks (0..2, 1, 0..2)
        assert len(decoded_shapes) == 3 * 3 * 4 - 3  # brick layer 1 of row 1: slab 0 (planes 64..79) was cached
        decoded_shapes.clear()
        assert np.array_equal(level.read_chunk((1, 1, 1)), vol[64:128, 64:128, 64:128])
        assert decoded_shapes == []  # whole and cached now
