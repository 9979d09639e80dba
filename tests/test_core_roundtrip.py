"""Bit-exact save/open round trips for every supported dtype and axis layout, and pyramids equal to
``mzarr_core.pyramid.downsample`` applied repeatedly to the original (mean, nearest, mode)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ALL_DTYPES, assert_bit_exact, assert_pyramid, extreme_array, smooth_array
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mzarr import Mzarr

# Many small files per hypothesis run: RAM-backed storage when available (the fsync of each save dominates).
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

# (shape, axes given to the constructor, expected axes, chunks for save): odd sizes, never chunk multiples.
LAYOUTS = {
    "yx": ((37, 53), None, "yx", (16, 16)),
    "zyx": ((9, 21, 17), None, "zyx", (4, 8, 8)),
    "cyx": ((2, 29, 23), "cyx", "cyx", (1, 16, 8)),
    "yxc": ((29, 23, 2), "yxc", "yxc", (16, 8, 1)),
    "czyx": ((3, 7, 13, 11), "czyx", "czyx", (1, 4, 8, 4)),
    "zyxc": ((7, 13, 11, 2), None, "zyxc", (4, 8, 4, 2)),  # given as channel_axis=-1 below
}


def _build(array: np.ndarray, layout: str) -> Mzarr:
    """An in-memory image with the layout's axes (zyxc via channel_axis=-1, to cover that path too)."""
    _, axes, _, _ = LAYOUTS[layout]
    if layout == "zyxc":
        return Mzarr(array, channel_axis=-1)
    return Mzarr(array, axes=axes)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_round_trip_every_dtype_and_layout(tmp_path, dtype, layout):
    """Save + reopen gives back every value bit for bit (extremes, NaN/inf, -0.0), and every level equals the
    mean pyramid (the default) computed from the original."""
    shape, _, axes, chunks = LAYOUTS[layout]
    a = extreme_array(shape, dtype, seed=hash((dtype, layout)) % 2**32)
    path = _build(a, layout).save(tmp_path / "x.mzarr", chunks=chunks)
    with Mzarr(path) as m:
        assert (m.shape, m.dtype, m.axes) == (shape, np.dtype(dtype), axes)
        # only RGB(A) pictures share a chunk across channels: the c axis is chunked by 1 otherwise
        assert m.chunks == tuple(1 if ax == "c" else c for ax, c in zip(axes, chunks))
        assert len(m.levels) >= 2, "odd shapes larger than a chunk must give a pyramid"
        assert_bit_exact(m.numpy(), a, f"{dtype} {layout} level 0")
        assert_pyramid(m, a, "mean")


@pytest.mark.parametrize("method", ["mean", "nearest", "mode"])
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_pyramid_methods(tmp_path, dtype, method):
    """downsample='mean'|'nearest'|'mode' gives exactly the reference pyramid for each dtype (2D and czyx)."""
    for layout in ("yx", "czyx"):
        shape, _, _, chunks = LAYOUTS[layout]
        a = smooth_array(shape, dtype, seed=3) if method == "mean" else extreme_array(shape, dtype, seed=4)
        path = _build(a, layout).save(tmp_path / f"{layout}.mzarr", chunks=chunks, downsample=method)
        with Mzarr(path) as m:
            assert m.downsample_method == method
            assert_bit_exact(m.numpy(), a, layout)
            assert_pyramid(m, a, method)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("channels", [3, 4])
def test_rgb_rgba_detected_and_exact(tmp_path, dtype, channels):
    """(H, W, 3|4) uint8/uint16 arrays are RGB(A) 'yxc' pictures, stored as colour JPEG XL, bit-exact on every level."""
    a = extreme_array((45, 67, channels), dtype, seed=channels)
    a[..., 0] = smooth_array((45, 67), dtype)  # one smooth channel, the others noisy
    m0 = Mzarr(a)
    assert m0.axes == "yxc" and m0.channel_count == channels and m0.spatial_axes == "yx"
    path = m0.save(tmp_path / "rgb.mzarr", chunks=(32, 32, channels))
    with Mzarr(path) as m:
        assert m.axes == "yxc" and m.codec["name"] == "jpegxl" and m.codec["lossless"] is True
        assert m.chunks == (32, 32, channels), "colour channels share one chunk"
        assert_bit_exact(m.numpy(), a)
        assert_pyramid(m, a, "mean")


def test_default_axes_inference():
    """3D arrays are volumes unless they look like RGB(A) uint8/uint16 pictures; channel_axis picks c-first/last."""
    assert Mzarr(np.zeros((5, 6, 3), np.uint8)).axes == "yxc"
    assert Mzarr(np.zeros((5, 6, 4), np.uint16)).axes == "yxc"
    assert Mzarr(np.zeros((5, 6, 3), np.float32)).axes == "zyx"
    assert Mzarr(np.zeros((5, 6, 3), np.int16)).axes == "zyx"
    assert Mzarr(np.zeros((5, 6, 5), np.uint8)).axes == "zyx"
    assert Mzarr(np.zeros((3, 6, 5), np.uint8), channel_axis=0).axes == "cyx"
    assert Mzarr(np.zeros((2, 3, 6, 5), np.uint8), channel_axis=0).axes == "czyx"
    assert Mzarr(np.zeros((3, 6, 5, 2), np.uint8), channel_axis=-1).axes == "zyxc"


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32", "bool"])
def test_default_chunks_multi_tile(tmp_path, dtype):
    """With automatic chunks (512 x 512 in 2D) an odd 1100 x 530 image spans several tiles and round-trips."""
    a = smooth_array((1100, 530), dtype, seed=9)
    a[0, 0] = a[-1, -1] = a.max()
    path = Mzarr(a).save(tmp_path / "big.mzarr")
    with Mzarr(path) as m:
        assert m.chunks == (512, 512)
        assert m.levels[0].chunk_grid == (3, 2)
        assert m.levels[-1].shape[0] <= 512 and m.levels[-1].shape[1] <= 512
        assert_bit_exact(m.numpy(), a)
        assert_pyramid(m, a, "mean")


def test_default_chunks_3d_bricks(tmp_path):
    """3D volumes get 64^3 bricks by default (an axis shorter than 64 gives its share to the others)."""
    a = smooth_array((70, 90, 130), "uint16", seed=2)
    path = Mzarr(a).save(tmp_path / "vol.mzarr")
    with Mzarr(path) as m:
        assert m.chunks == (64, 64, 64)
        assert_bit_exact(m.numpy(), a)
        assert_pyramid(m, a, "mean")
    thin = smooth_array((5, 300, 200), "uint8")
    path = Mzarr(thin).save(tmp_path / "thin.mzarr")
    with Mzarr(path) as m:
        assert m.chunks[0] == 5 and m.chunks[1] > 64 and m.chunks[2] > 64
        assert_bit_exact(m.numpy(), thin)


def test_levels_argument(tmp_path):
    """save(levels=N) writes exactly N levels, each the reference pyramid level."""
    a = smooth_array((64, 80), "uint8")
    for n in (1, 2, 5):
        path = Mzarr(a).save(tmp_path / f"l{n}.mzarr", levels=n)
        with Mzarr(path) as m:
            assert len(m.levels) == n
            assert_pyramid(m, a, "mean")
    # more levels than halvings possible: stops at 1 x 1 (80 -> 40 -> 20 -> 10 -> 5 -> 3 -> 2 -> 1)
    path = Mzarr(a).save(tmp_path / "many.mzarr", levels=30)
    with Mzarr(path) as m:
        assert len(m.levels) == 8 and m.levels[-1].shape == (1, 1)
        assert_pyramid(m, a, "mean")


def test_single_pixel_and_thin_shapes(tmp_path):
    """1 x 1, 1 x N and N x 1 x 1 images round-trip (axes of length 1 are never halved)."""
    for shape in [(1, 1), (1, 37), (37, 1), (1, 1, 1), (13, 1, 1), (1, 19, 3)]:
        a = extreme_array(shape, "uint16", seed=len(shape))
        path = Mzarr(a, axes="zyx" if len(shape) == 3 else None).save(tmp_path / "t.mzarr", chunks=(8,) * len(shape))
        with Mzarr(path) as m:
            assert_bit_exact(m.numpy(), a, str(shape))
            assert_pyramid(m, a, "mean")


def test_non_contiguous_and_big_endian_sources(tmp_path):
    """A strided view and a big-endian array round-trip to the same values (stored little-endian)."""
    base = extreme_array((60, 80), "int16", seed=5)
    view = base[::2, ::-3]
    path = Mzarr(view).save(tmp_path / "view.mzarr", chunks=(8, 8))
    with Mzarr(path) as m:
        assert_bit_exact(m.numpy(), np.ascontiguousarray(view))
    be = base.astype(">i2")
    path = Mzarr(be).save(tmp_path / "be.mzarr", chunks=(16, 16))
    with Mzarr(path) as m:
        assert m.dtype == np.dtype("<i2")
        assert_bit_exact(m.numpy(), base)
        assert_pyramid(m, base, "mean")


def test_in_memory_levels_equal_saved_levels(tmp_path):
    """An in-memory image's pyramid (computed on demand) equals the saved file's pyramid level by level."""
    a = smooth_array((7, 400, 300), "uint16", seed=1)
    mem = Mzarr(a)
    mem_levels = [lvl[...] for lvl in mem.levels]
    assert len(mem_levels) >= 2
    assert_pyramid(mem, a, "mean")
    path = mem.save(tmp_path / "auto.mzarr")
    with Mzarr(path) as m:
        assert len(m.levels) == len(mem_levels)
        for i, (lvl, ref) in enumerate(zip(m.levels, mem_levels)):
            assert_bit_exact(lvl[...], ref, f"level {i}")


@pytest.mark.parametrize("dtype", ["int64", "uint64", "float64"])
def test_saved_pyramid_keeps_extreme_constants(tmp_path, dtype):
    """A saved image filled with the dtype's max keeps that value on every level (no wrap to min, no inf)."""
    d = np.dtype(dtype)
    top = np.finfo(d).max if d.kind == "f" else np.iinfo(d).max
    a = np.full((40, 30), top, d)
    path = Mzarr(a).save(tmp_path / "max.mzarr", chunks=(16, 16))
    with Mzarr(path) as m:
        for lvl in m.levels:
            assert (lvl[...] == top).all(), f"level {lvl.index}: {lvl[0, 0]!r} != {top!r}"


@pytest.mark.parametrize(
    "shape,axes,chunks",
    [((20, 30, 25, 2), "zyxc", (4, 16, 16, 2)), ((2, 20, 30, 25), "czyx", (2, 4, 16, 16)),
     ((2, 7, 13, 11), "czyx", (2, 4, 8, 4)), ((30, 25, 2), "yxc", (16, 16, 2))],
)
def test_channel_chunk_larger_than_one(tmp_path, shape, axes, chunks):
    """An explicit channel chunk > 1 on a non-RGB channel image is stored one channel per chunk (the c chunk
    becomes 1; formerly a codec crash) and round-trips exactly."""
    a = extreme_array(shape, "uint16", seed=6)
    path = Mzarr(a, axes=axes).save(tmp_path / "c.mzarr", chunks=chunks)
    with Mzarr(path) as m:
        assert m.chunks == tuple(1 if ax == "c" else c for ax, c in zip(axes, chunks))
        assert_bit_exact(m.numpy(), a)
        assert_pyramid(m, a, "mean")


@st.composite
def random_images(draw):
    """(array, axes, chunks, method): any supported dtype and axes, small odd shapes, any chunk shape."""
    axes = draw(st.sampled_from(["yx", "zyx", "yxc", "cyx", "czyx", "zyxc"]))
    dtype = draw(st.sampled_from(ALL_DTYPES))
    side = 40 if len(axes) <= 3 else 12
    shape = tuple(draw(st.integers(1, 4)) if ax == "c" else draw(st.integers(1, side)) for ax in axes)
    chunks = tuple(draw(st.integers(1, 4)) if ax == "c" else draw(st.integers(1, 48)) for ax in axes)
    method = draw(st.sampled_from(["mean", "nearest", "mode"]))
    seed = draw(st.integers(0, 2**16))
    return extreme_array(shape, dtype, seed), axes, chunks, method


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=random_images())
def test_random_images_round_trip(case):
    """Property: any supported image with any chunk shape and pyramid method saves and reopens bit-exact, with
    every level equal to the reference pyramid."""
    a, axes, chunks, method = case
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        path = Mzarr(a, axes=axes).save(Path(tmp) / "r.mzarr", chunks=chunks, downsample=method)
        with Mzarr(path) as m:
            assert m.axes == axes and m.shape == a.shape
            assert_bit_exact(m.numpy(), a)
            assert_pyramid(m, a, method)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_rgba_invisible_pixels_kept_lossless(tmp_path, dtype):
    """Lossless RGBA keeps the colour of fully transparent pixels (alpha 0), which a picture codec may drop."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, np.iinfo(dtype).max, (64, 80, 4), endpoint=True).astype(dtype)
    a[:40, :, 3] = 0
    a[50:, 60:, 3] = 0
    path = Mzarr(a).save(tmp_path / "alpha.mzarr", chunks=(32, 32, 4))
    with Mzarr(path) as m:
        assert m.axes == "yxc"
        assert_bit_exact(m.numpy(), a)
        assert_pyramid(m, a, "mean")
