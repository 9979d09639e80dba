"""The downsampling kernels against independent references: exact integer means (Python ints, no overflow),
mean within the range of its inputs, nearest = every other pixel, mode = most frequent (ties to the first)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ALL_DTYPES
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mzarr_core.errors import MzarrValueError
from mzarr_core.pyramid import downsample, plan_levels

INT_DTYPES = [d for d in ALL_DTYPES if np.dtype(d).kind in "ui"]
FLOAT_DTYPES = [d for d in ALL_DTYPES if np.dtype(d).kind == "f"]


def _groups(a: np.ndarray, halve: tuple[bool, ...]):
    """Yield (output index, list of input values) for a 2x downsampling, odd edges repeating their last pixel."""
    out_shape = tuple((n + 1) // 2 if h else n for n, h in zip(a.shape, halve))
    for idx in np.ndindex(*out_shape):
        ranges = [[2 * i, min(2 * i + 1, n - 1)] if h else [i] for i, n, h in zip(idx, a.shape, halve)]
        values = [a[tuple(p)] for p in np.array(np.meshgrid(*ranges, indexing="ij")).reshape(len(idx), -1).T]
        yield idx, values, out_shape


def exact_mean_reference(a: np.ndarray, halve: tuple[bool, ...]) -> np.ndarray:
    """Integer mean of each 2^k group, rounded half up, in exact Python integer arithmetic."""
    out = None
    for idx, values, out_shape in _groups(a, halve):
        if out is None:
            out = np.empty(out_shape, a.dtype)
        total, n = sum(int(v) for v in values), len(values)
        out[idx] = (2 * total + n) // (2 * n)
    return out


def mode_reference(a: np.ndarray, halve: tuple[bool, ...]) -> np.ndarray:
    """Most frequent value of each group; ties go to the value seen first (top-left first)."""
    out = None
    for idx, values, out_shape in _groups(a, halve):
        if out is None:
            out = np.empty(out_shape, a.dtype)
        keys = [v.tobytes() for v in values]
        counts = [keys.count(k) for k in keys]
        out[idx] = values[counts.index(max(counts))]
    return out


def _int_arrays(dtype: str):
    info = np.iinfo(dtype)
    elements = st.one_of(st.integers(info.min, info.max), st.sampled_from([info.min, info.max, info.max - 1]))
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=5), elements=elements)


@pytest.mark.parametrize("dtype", INT_DTYPES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_integer_mean_is_exact(dtype, data):
    """The mean of integers is the exactly rounded mean, for the whole dtype range (no overflow, no float
    rounding of 64-bit values)."""
    a = data.draw(_int_arrays(dtype))
    halve = tuple(data.draw(st.lists(st.booleans(), min_size=a.ndim, max_size=a.ndim)))
    got = downsample(a, halve, "mean")
    if not any(halve):
        np.testing.assert_array_equal(got, a)
        return
    np.testing.assert_array_equal(got, exact_mean_reference(a, halve))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_constant_block_is_preserved(dtype):
    """Every method maps a constant image to the same constant, including the dtype's min and max."""
    d = np.dtype(dtype)
    if d.kind == "b":
        values = [False, True]
    elif d.kind == "f":
        values = [np.finfo(d).min, np.finfo(d).max, -0.0, np.finfo(d).smallest_subnormal, 1.5]
    else:
        values = [np.iinfo(d).min, np.iinfo(d).max, np.iinfo(d).max - 1, 0]
    for v in values:
        a = np.full((5, 6), v, d)
        for method in ("mean", "nearest", "mode"):
            got = downsample(a, (True, True), method)
            assert got.dtype == d and got.shape == (3, 3)
            assert (got == d.type(v)).all(), f"{method} of constant {v!r} ({dtype}) gave {got.ravel()[:3]}"


def test_large_int64_mean_not_rounded_through_float():
    """64-bit values beyond 2^53 average exactly (a float64 accumulator would round them)."""
    big = 2**53 + 1
    a = np.full((2, 2), big, np.int64)
    assert int(downsample(a, (True, True), "mean")[0, 0]) == big
    u = np.full((2, 2), 2**63 + 3, np.uint64)
    assert int(downsample(u, (True, True), "mean")[0, 0]) == 2**63 + 3


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_float_mean_within_input_range(dtype, data):
    """For finite floats (up to the dtype's max) the mean of each group lies between the group's min and max."""
    fi = np.finfo(dtype)
    elements = st.floats(float(fi.min), float(fi.max), allow_nan=False, allow_infinity=False, width=fi.bits)
    shapes = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5)
    a = data.draw(hnp.arrays(dtype, shapes, elements=elements))
    got = downsample(a, (True, True), "mean")
    for idx, values, _ in _groups(a, (True, True)):
        assert min(values) <= got[idx] <= max(values), f"mean {got[idx]!r} outside {min(values)!r}..{max(values)!r}"


def test_float_mean_propagates_nan_and_inf():
    """NaN in a group gives NaN; +inf with finite values gives +inf (floats average in float64)."""
    a = np.array([[np.nan, 1.0, np.inf, 2.0], [3.0, 4.0, 5.0, 6.0]], np.float32)
    got = downsample(a, (True, True), "mean")
    assert np.isnan(got[0, 0]) and got[0, 1] == np.inf
    b = np.array([[1.0, 2.0], [3.0, 5.0]], np.float16)
    assert downsample(b, (True, True), "mean")[0, 0] == np.float16(2.75)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int64", "float32", "bool"])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_nearest_and_mode_match_references(dtype, data):
    """nearest keeps the top-left pixel of each group; mode is the most frequent value (ties: first seen)."""
    d = np.dtype(dtype)
    if d.kind == "b":
        elements = st.booleans()
    elif d.kind == "f":
        elements = st.sampled_from([0.0, 1.5, -2.0, 7.0])
    else:
        elements = st.integers(0, 3)  # few distinct values, so ties and majorities both happen
    a = data.draw(hnp.arrays(d, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6), elements=elements))
    halve = tuple(n > 1 for n in a.shape)
    nearest = downsample(a, halve, "nearest")
    np.testing.assert_array_equal(nearest, a[tuple(slice(None, None, 2) if h else slice(None) for h in halve)])
    if any(halve):
        np.testing.assert_array_equal(downsample(a, halve, "mode"), mode_reference(a, halve))


def test_bool_mean_is_majority_with_ties_true():
    """bool 'mean' is a majority vote where a 2-2 tie counts as True (thin masks survive)."""
    a = np.array([[1, 1, 1, 0, 0, 0], [0, 1, 0, 0, 0, 1]], bool)
    np.testing.assert_array_equal(downsample(a, (True, True), "mean"), [[True, False, False]])


def test_unknown_method_rejected():
    with pytest.raises(MzarrValueError, match="downsample must be one of mean, nearest, mode"):
        downsample(np.zeros((4, 4), np.uint8), (True, True), "median")


def test_plan_levels_halves_until_one_chunk():
    """Levels halve every spatial axis (rounding up) until the image fits one chunk; channels never shrink."""
    plan = plan_levels((3, 1000, 700), "cyx", (1, 256, 256))
    assert [g.shape for g in plan] == [(3, 1000, 700), (3, 500, 350), (3, 250, 175)]
    assert [g.factor for g in plan] == [(1, 1, 1), (1, 2, 2), (1, 4, 4)]
    plan = plan_levels((5, 300, 300), "zyx", (64, 64, 64))
    assert [g.shape for g in plan] == [(5, 300, 300), (3, 150, 150), (2, 75, 75), (1, 38, 38)]
    assert plan[-1].factor == (8, 8, 8)
    with pytest.raises(MzarrValueError, match="levels must be at least 1"):
        plan_levels((10, 10), "yx", (4, 4), levels=0)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_small_float_mean_is_correctly_rounded(dtype, data):
    """float16/float32 means equal the float64 mean rounded once to the dtype (no per-step rounding, no flush of
    subnormals to zero)."""
    fi = np.finfo(dtype)
    elements = st.floats(float(fi.min), float(fi.max), allow_nan=False, allow_infinity=False, width=fi.bits)
    shapes = hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=4)
    a = data.draw(hnp.arrays(dtype, shapes, elements=elements))
    got = downsample(a, (True, True), "mean")
    for idx, values, _ in _groups(a, (True, True)):
        expected = np.float64(sum(np.float64(v) for v in values) / len(values)).astype(dtype)
        assert got[idx] == expected, f"mean of {values} is {got[idx]!r}, expected {expected!r}"


def slow_mode_reference(a: np.ndarray, halve: tuple[bool, ...]) -> np.ndarray:
    """The mode rule written out plainly, pixel by pixel: the group of each output pixel (odd edges repeat their last
    pixel) in C order; each value's count is how many group members compare ``==`` to it; the first value with the
    highest count wins."""
    out_shape = tuple((n + 1) // 2 if h else n for n, h in zip(a.shape, halve))
    out = np.empty(out_shape, a.dtype)
    for idx in np.ndindex(*out_shape):
        group = []
        for offsets in np.ndindex(*(2 if h else 1 for h in halve)):
            src = tuple(min(2 * i + o, n - 1) if h else i for i, o, n, h in zip(idx, offsets, a.shape, halve))
            group.append(a[src])
        counts = [sum(bool(other == value) for other in group) for value in group]
        out[idx] = group[counts.index(max(counts))]
    return out


def _few_values(dtype: np.dtype):
    """A small pool of values (so ties and majorities are frequent), including the dtype's extremes."""
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind == "f":
        return st.sampled_from([0.0, -0.0, 1.5, np.nan, np.inf, -np.inf, float(np.finfo(dtype).max)])
    info = np.iinfo(dtype)
    pool = [info.min, info.min + 1, 0, 1, info.max - 1, info.max]
    return st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique=True).flatmap(st.sampled_from)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_mode_equals_slow_reference(dtype, data):
    """The vectorised mode kernel equals the plain reference for every dtype (64-bit extremes, bool, floats with
    NaN and signed zeros), 2D and 3D, odd edges, any subset of halved axes, and chunk boundaries anywhere."""
    import mzarr_core.pyramid as pyramid

    d = np.dtype(dtype)
    pool = data.draw(st.lists(_few_values(d), min_size=1, max_size=3))
    a = data.draw(
        hnp.arrays(d, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=7), elements=st.sampled_from(pool))
    )
    halve = tuple(data.draw(st.lists(st.booleans(), min_size=a.ndim, max_size=a.ndim).filter(any)))
    chunk = data.draw(st.sampled_from([1, 2, 5, 16, pyramid._MODE_CHUNK]))
    saved = pyramid._MODE_CHUNK
    pyramid._MODE_CHUNK = chunk
    try:
        got = downsample(a, halve, "mode")
    finally:
        pyramid._MODE_CHUNK = saved
    expected = slow_mode_reference(a, halve)
    assert got.dtype == d and got.shape == expected.shape
    np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))  # bit for bit (NaN, -0.0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_mode_on_real_labels_spanning_many_chunks(ndim, monkeypatch):
    """A labelled segmentation several chunks of the kernel wide, with odd edges, equals the plain reference."""
    from skimage import data, measure

    monkeypatch.setattr("mzarr_core.pyramid._MODE_CHUNK", 50)

    if ndim == 2:
        labels = measure.label(data.coins()[:61, :87] > 100).astype(np.uint16)
    else:
        labels = measure.label(data.binary_blobs(length=21, n_dim=3, volume_fraction=0.3, rng=3)).astype(np.int64)
        labels = labels[:, :19, :] - 2**62
    halve = (True,) * ndim
    np.testing.assert_array_equal(downsample(labels, halve, "mode"), slow_mode_reference(labels, halve))
