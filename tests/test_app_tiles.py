"""Unit tests of the viewer's pure tile scheduling (mzarr_app.tiles) with a stand-in Level."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mzarr_app import tiles as T


class FakeLevel:
    """Minimal Level: shape/chunks/factor and NumPy indexing over an array."""

    def __init__(self, data: np.ndarray, chunks: tuple[int, ...], factor: tuple[int, ...]) -> None:
        self.data, self.shape, self.chunks, self.factor = data, data.shape, chunks, factor

    def __getitem__(self, key):
        return self.data[key]

    def chunk_region(self, idx):
        return T.chunk_region(self, idx)


def pyramid_2d(h: int = 2000, w: int = 3000, chunk: int = 512, n: int = 4) -> list[FakeLevel]:
    out = []
    for i in range(n):
        f = 2 ** i
        out.append(FakeLevel(np.zeros((-(-h // f), -(-w // f)), np.uint8), (chunk, chunk), (f, f)))
    return out


def test_choose_level_coarsest_level_at_most_slightly_enlarged() -> None:
    levels = pyramid_2d()
    plane = T.default_plane("yx")
    assert T.choose_level(levels, plane, 0.25) == 0
    assert T.choose_level(levels, plane, 1.0) == 0
    assert T.choose_level(levels, plane, 1.8) == 0
    assert T.choose_level(levels, plane, 1.82) == 1  # level 1 drawn at most 1.1x enlarged
    assert T.choose_level(levels, plane, 2.0) == 1
    assert T.choose_level(levels, plane, 3.6) == 1
    assert T.choose_level(levels, plane, 3.7) == 2
    assert T.choose_level(levels, plane, 1000.0) == 3


def test_visible_tiles_exact_chunk_boundaries() -> None:
    lev = pyramid_2d()[0]
    plane = T.default_plane("yx")
    got = {(t.row_chunk, t.col_chunk) for t in T.visible_tiles(lev, 0, plane, (0, 0, 512, 512))}
    assert got == {(0, 0)}
    got = {(t.row_chunk, t.col_chunk) for t in T.visible_tiles(lev, 0, plane, (500, 10, 1030, 600))}
    assert got == {(r, c) for r in (0, 1) for c in (0, 1, 2)}
    assert T.visible_tiles(lev, 0, plane, (3000, 0, 3100, 10)) == []


def test_visible_tiles_at_coarse_level_use_factor() -> None:
    lev = pyramid_2d()[2]  # factor 4: chunk = 2048 level-0 px
    plane = T.default_plane("yx")
    got = {(t.row_chunk, t.col_chunk) for t in T.visible_tiles(lev, 2, plane, (2047, 0, 2049, 1))}
    assert got == {(0, 0), (0, 1)}
    tiles = T.visible_tiles(lev, 2, plane, (0, 0, 3000, 2000))
    assert T.tile_rect(lev, plane, tiles[0]) in {(0, 0, 2048, 2000), (2048, 0, 3000 - 2048, 2000)}


def test_visible_tiles_centre_first() -> None:
    lev = pyramid_2d()[0]
    tiles = T.visible_tiles(lev, 0, T.default_plane("yx"), (0, 0, 3000, 2000))
    assert (tiles[0].row_chunk, tiles[0].col_chunk) in {(1, 2), (2, 2), (1, 3), (2, 3)}
    assert len(tiles) == 4 * 6


@settings(max_examples=150, deadline=None)
@given(h=st.integers(1, 5000), w=st.integers(1, 5000), chunk=st.sampled_from([64, 100, 512]),
       f=st.sampled_from([1, 2, 4, 8]), x0=st.floats(-100, 6000), y0=st.floats(-100, 6000),
       dx=st.floats(0.5, 6000), dy=st.floats(0.5, 6000))
def test_visible_tiles_match_brute_force(h, w, chunk, f, x0, y0, dx, dy) -> None:
    lev = FakeLevel(np.zeros((-(-h // f), -(-w // f)), np.uint8), (chunk, chunk), (f, f))
    plane = T.default_plane("yx")
    rect = (max(0, x0), max(0, y0), min(w, x0 + dx), min(h, y0 + dy))
    got = {(t.row_chunk, t.col_chunk) for t in T.visible_tiles(lev, 0, plane, rect)}
    want = set()
    for r in range(math.ceil(lev.shape[0] / chunk)):
        for c in range(math.ceil(lev.shape[1] / chunk)):
            # level pixels of this chunk, in level-0 coordinates
            ry0, ry1 = r * chunk * f, min((r + 1) * chunk, lev.shape[0]) * f
            cx0, cx1 = c * chunk * f, min((c + 1) * chunk, lev.shape[1]) * f
            if ry0 < rect[3] and ry1 > rect[1] and cx0 < rect[2] and cx1 > rect[0] \
                    and rect[2] > rect[0] and rect[3] > rect[1]:
                want.add((r, c))
    assert got == want


def test_slice_at_level_is_index_divided_by_factor() -> None:
    vol = FakeLevel(np.zeros((25, 40, 50)), (8, 16, 16), (4, 4, 4))
    plane = T.Plane("zyx", "y", "x", "z", 99)
    assert T.slice_at_level(vol, plane) == 24
    assert T.slice_at_level(vol, T.Plane("zyx", "y", "x", "z", 7)) == 1
    tiles = T.visible_tiles(vol, 1, T.Plane("zyx", "y", "x", "z", 7), (0, 0, 200, 200))
    assert {T.tile_chunks(vol, plane, t)[0][0] for t in tiles} == {0}


@pytest.mark.parametrize("axis", ["z", "y", "x"])
def test_assemble_tile_zyx_planes(axis: str) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 60000, (20, 30, 40), dtype=np.uint16)
    lev = FakeLevel(data, (8, 16, 16), (1, 1, 1))
    plane = T.default_plane("zyx", axis, 11)
    n_rows = data.shape["zyx".index(plane.row)]
    n_cols = data.shape["zyx".index(plane.col)]
    full = np.zeros((n_rows, n_cols), np.uint16)
    for t in T.visible_tiles(lev, 0, plane, (0, 0, n_cols, n_rows)):
        chunks = {i: lev[T.chunk_region(lev, i)] for i in T.tile_chunks(lev, plane, t)}
        x, y, w, h = (int(v) for v in T.tile_rect(lev, plane, t))
        full[y:y + h, x:x + w] = T.assemble_tile(lev, plane, t, chunks)
    want = np.take(data, 11, axis="zyx".index(axis))
    np.testing.assert_array_equal(full, want)


def test_assemble_tile_channels_cyx_and_yxc() -> None:
    rng = np.random.default_rng(2)
    cyx = rng.integers(0, 255, (3, 40, 50), dtype=np.uint8)
    lev = FakeLevel(cyx, (1, 32, 32), (1, 1, 1))
    plane = T.default_plane("cyx", channels=None)
    t = T.visible_tiles(lev, 0, plane, (0, 0, 10, 10))[0]
    idx = T.tile_chunks(lev, plane, t)
    assert len(idx) == 3 and {i[0] for i in idx} == {0, 1, 2}
    got = T.assemble_tile(lev, plane, t, {i: lev[T.chunk_region(lev, i)] for i in idx})
    np.testing.assert_array_equal(got, np.moveaxis(cyx[:, :32, :32], 0, 2))
    one = T.Plane("cyx", "y", "x", None, 0, (2,))
    t = T.visible_tiles(lev, 0, one, (0, 0, 10, 10))[0]
    assert T.tile_chunks(lev, one, t) == [(2, 0, 0)]
    got = T.assemble_tile(lev, one, t, {(2, 0, 0): lev[T.chunk_region(lev, (2, 0, 0))]})
    np.testing.assert_array_equal(got, cyx[2, :32, :32])
    yxc = FakeLevel(np.moveaxis(cyx, 0, 2).copy(), (32, 32, 3), (1, 1, 1))
    p2 = T.default_plane("yxc")
    t = T.visible_tiles(yxc, 0, p2, (33, 33, 40, 40))[0]
    got = T.assemble_tile(yxc, p2, t, {i: yxc[T.chunk_region(yxc, i)] for i in T.tile_chunks(yxc, p2, t)})
    np.testing.assert_array_equal(got, yxc.data[32:, 32:, :])


def _plane_of(lev: FakeLevel, axes: str, idx: tuple[int, ...], z: int) -> np.ndarray:
    """What ``chunk_loader.read_chunk_plane`` returns: the chunk's region with z fixed (axis dropped)."""
    reg = list(T.chunk_region(lev, idx))
    reg[axes.index("z")] = z
    return lev[tuple(reg)]


@pytest.mark.parametrize("axes", ["zyx", "czyx", "zyxc"])
@pytest.mark.parametrize("channels", [None, (1,)])
def test_assemble_tile_from_planes_and_whole_chunks(axes: str, channels: tuple[int, ...] | None) -> None:
    rng = np.random.default_rng(3)
    shape = {"zyx": (20, 30, 40), "czyx": (2, 20, 30, 40), "zyxc": (20, 30, 40, 3)}[axes]
    chunks = {"zyx": (8, 16, 16), "czyx": (1, 8, 16, 16), "zyxc": (8, 16, 16, 3)}[axes]
    if axes == "zyx":
        channels = None
    lev = FakeLevel(rng.integers(0, 60000, shape, dtype=np.uint16), chunks, (1,) * len(shape))
    plane = T.default_plane(axes, "z", 13, channels)
    assert T.reads_by_plane(plane, True) and not T.reads_by_plane(plane, False)
    assert not T.reads_by_plane(T.default_plane(axes, "y", 13, channels), True)
    for t in T.visible_tiles(lev, 0, plane, (0, 0, 40, 30)):
        idx = T.tile_chunks(lev, plane, t)
        assert [T.read_key(t, i, True) for i in idx] == [(0, i, 13) for i in idx]
        assert [T.read_key(t, i, False) for i in idx] == [(0, i) for i in idx]
        x, y, w, h = (int(v) for v in T.tile_rect(lev, plane, t))
        want = T.assemble_tile(lev, plane, t, {i: lev[T.chunk_region(lev, i)] for i in idx})
        planes = {i: _plane_of(lev, axes, i, 13) for i in idx}
        mixed = {i: (planes[i] if n % 2 else lev[T.chunk_region(lev, i)]) for n, i in enumerate(idx)}
        for parts in (planes, mixed):
            np.testing.assert_array_equal(T.assemble_tile(lev, plane, t, parts), want)
        full = np.take(lev.data, 13, axis=axes.index("z"))
        ref = full[tuple(slice(y, y + h) if a == "y" else slice(x, x + w) if a == "x" else slice(None)
                         for a in axes.replace("z", ""))]
        if "c" in axes:
            ref = np.moveaxis(ref, axes.replace("z", "").index("c"), 2)
            ref = ref[:, :, channels[0]] if channels else ref
        np.testing.assert_array_equal(want, ref)
