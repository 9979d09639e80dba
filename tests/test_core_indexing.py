"""NumPy basic indexing on Mzarr images and levels equals NumPy's (hypothesis-generated index expressions: ints,
negative ints, slices with any step including negative, Ellipsis), for reads and for assignments."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_bit_exact, assert_pyramid, extreme_array, reference_pyramid, smooth_array
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mzarr import Mzarr
from mzarr_core.errors import MzarrValueError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Saved once per session, read-only: (name, array factory, constructor kwargs, save chunks)
SAVED = {
    "zyx_uint16": (lambda: extreme_array((21, 75, 61), "uint16", 1), {}, (8, 16, 16)),
    "yxc_rgb": (lambda: extreme_array((67, 45, 3), "uint8", 2), {}, (16, 16, 3)),
    "czyx_float32": (lambda: extreme_array((2, 9, 33, 27), "float32", 3), {"axes": "czyx"}, (1, 4, 8, 8)),
    "yx_int8": (lambda: extreme_array((70, 90), "int8", 4), {}, (16, 32)),
}


class _Images(dict):
    """A dict with a short repr (hypothesis prints the arguments of a failing example)."""

    def __repr__(self) -> str:
        return f"<saved images {sorted(self)}>"


@pytest.fixture(scope="session")
def saved_images(tmp_path_factory) -> dict[str, tuple[np.ndarray, Mzarr, list[np.ndarray]]]:
    """name -> (original array, the saved file opened read-only, its reference pyramid)."""
    folder = tmp_path_factory.mktemp("indexing")
    out = _Images()
    for name, (make, kwargs, chunks) in SAVED.items():
        a = make()
        path = Mzarr(a, **kwargs).save(folder / f"{name}.mzarr", chunks=chunks)
        m = Mzarr(path)
        assert len(m.levels) >= 3, name
        out[name] = (a, m, reference_pyramid(a, m.axes, len(m.levels), "mean"))
    yield out
    for _, m, _ in out.values():
        m.close()


def _axis_item(n: int):
    """One axis of an index: an int (possibly negative) or a slice (None/negative/out-of-range bounds, any step)."""
    bound = st.one_of(st.none(), st.integers(-n - 3, n + 3))
    step = st.one_of(st.none(), st.integers(-4, 4).filter(lambda s: s != 0))
    return st.one_of(
        st.integers(-n, n - 1),
        st.builds(slice, bound, bound, step),
    )


@st.composite
def index_expressions(draw, shape: tuple[int, ...]):
    """A NumPy basic index for ``shape``: a tuple of up to ndim items, maybe with one Ellipsis, or a bare item."""
    k = draw(st.integers(0, len(shape)))
    use_ellipsis = draw(st.booleans())
    if use_ellipsis:
        at = draw(st.integers(0, k))
        # items before the Ellipsis index the leading axes, items after it the trailing ones
        lead = [draw(_axis_item(n)) for n in shape[:at]]
        trail = [draw(_axis_item(n)) for n in shape[len(shape) - (k - at):]] if k - at else []
        return tuple(lead + [Ellipsis] + trail)
    items = tuple(draw(_axis_item(n)) for n in shape[:k])
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return items


def _check_read(level_or_image, reference: np.ndarray, key) -> None:
    got = level_or_image[key]
    expected = reference[key]
    assert isinstance(got, np.ndarray), type(got)
    assert_bit_exact(got, np.asarray(expected), f"key {key!r}")


@pytest.mark.parametrize("name", list(SAVED))
@SETTINGS
@given(data=st.data())
def test_read_saved_file_every_level(saved_images, name, data):
    """m[key] and m.levels[i][key] on a saved file equal NumPy indexing of the original / reference level."""
    a, m, pyramid = saved_images[name]
    i = data.draw(st.integers(0, len(pyramid) - 1), label="level")
    key = data.draw(index_expressions(pyramid[i].shape), label="key")
    _check_read(m.levels[i], pyramid[i], key)
    if i == 0:
        _check_read(m, a, key)


@SETTINGS
@given(data=st.data())
def test_read_in_memory_every_level(data):
    """The same for in-memory images (user axis order differs from storage order for yxc/zyxc)."""
    axes = data.draw(st.sampled_from(["yx", "zyx", "yxc", "zyxc", "cyx"]))
    shapes = {"yx": (23, 31), "zyx": (7, 13, 11), "yxc": (19, 17, 3), "zyxc": (5, 9, 7, 2), "cyx": (2, 15, 9)}
    a = extreme_array(shapes[axes], data.draw(st.sampled_from(["uint8", "float64", "int16"])), 7)
    m = Mzarr(a, axes=axes)
    levels = m.levels
    i = data.draw(st.integers(0, len(levels) - 1))
    ref = reference_pyramid(a, axes, len(levels), "mean")[i]
    key = data.draw(index_expressions(ref.shape))
    _check_read(levels[i], ref, key)
    if i == 0:
        _check_read(m, a, key)


def test_read_specific_expressions(saved_images):
    """Hand-picked edge cases: full reversal, a bare Ellipsis, a lone negative int, empty and out-of-range slices."""
    a, m, _ = saved_images["zyx_uint16"]
    for key in [
        (slice(None, None, -1),) * 3, ..., -1, (-1, -1, -1), (slice(5, 2),), (slice(100, 200),),
        (Ellipsis, slice(None, None, -7)), (3, Ellipsis, 4), (slice(-1, -22, -2), slice(1, None, 5), -61),
    ]:
        _check_read(m, a, key)
    assert m[2, 3, 4].shape == () and int(m[2, 3, 4]) == int(a[2, 3, 4])


def test_bad_indices_raise_index_error(saved_images):
    """Out-of-range ints, too many indices, two Ellipses, None, bools, fancy indexing: IndexError that says why."""
    _, m, _ = saved_images["zyx_uint16"]
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 21"):
        m[21]
    with pytest.raises(IndexError, match="out of bounds"):
        m[0, -76]
    with pytest.raises(IndexError, match="too many indices"):
        m[0, 0, 0, 0]
    with pytest.raises(IndexError, match="single ellipsis"):
        m[..., 0, ...]
    with pytest.raises(IndexError, match="integers, slices and Ellipsis"):
        m[None]
    with pytest.raises(IndexError, match="fancy or boolean"):
        m[[0, 1]]
    with pytest.raises(IndexError, match="integers, slices and Ellipsis"):
        m[True]


# -- assignment ---------------------------------------------------------------------------------------------------
# Many small files are written per example: use RAM-backed storage when there is some (fsyncs dominate otherwise).
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
ASSIGN_SHAPES = {"yx": (37, 29), "zyx": (9, 19, 15), "yxc": (21, 18, 3), "czyx": (2, 5, 11, 9)}
ASSIGN_KINDS = [("uint8", "mean"), ("int16", "mean"), ("uint16", "mean"), ("uint8", "nearest"), ("uint8", "mode")]
ASSIGN_CHUNKS = {"yx": (8, 8), "zyx": (4, 8, 4), "yxc": (8, 8, 3), "czyx": (1, 2, 4, 4)}


@st.composite
def assignment_values(draw, region_shape: tuple[int, ...], dtype: np.dtype):
    """A value NumPy can assign to a region: a Python/NumPy scalar, a full array, or a broadcastable array
    (trailing dimensions, 1-sized axes, an extra leading 1)."""
    info = np.iinfo(dtype)
    kind = draw(st.sampled_from(["python", "numpy", "full", "broadcast", "leading1"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "python":
        return draw(st.integers(int(info.min), int(info.max)))
    if kind == "numpy":
        return dtype.type(draw(st.integers(int(info.min), int(info.max))))
    shape = list(region_shape)
    if kind == "broadcast" and shape:
        drop = draw(st.integers(0, len(shape)))
        shape = [1 if draw(st.booleans()) else n for n in shape[drop:]]
    if kind == "leading1" and shape:  # NumPy refuses a (1,) array for a single element
        shape = [1] + shape
    # sometimes a wider integer dtype holding in-range values (coerced without loss)
    src_dtype = draw(st.sampled_from([dtype, np.dtype("int64")]))
    return rng.integers(info.min, info.max, tuple(shape), dtype=np.int64, endpoint=True).astype(src_dtype)


@pytest.fixture(scope="module")
def assign_templates(tmp_path_factory) -> dict[tuple[str, str, str], Path]:
    """(axes, dtype, method) -> a saved file of ``smooth_array`` to copy for each example (a save costs an fsync):
    uint8/int16/uint16 with the mean pyramid, uint8 also with nearest and mode (label) pyramids."""
    folder = tmp_path_factory.mktemp("assign")
    out = {}
    for axes, shape in ASSIGN_SHAPES.items():
        for dtype, method in ASSIGN_KINDS:
            a = smooth_array(shape, dtype, seed=11)
            out[axes, dtype, method] = Mzarr(a, axes=axes).save(
                folder / f"{axes}_{dtype}_{method}.mzarr", chunks=ASSIGN_CHUNKS[axes], downsample=method
            )
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_assignment_on_file_matches_numpy(assign_templates, data):
    """Random assignments through m[key] = value on a file opened 'r+' give the same level 0 as on a NumPy
    reference, every coarser level equals the reference pyramid of the edited reference, and a fresh reader
    sees the same."""
    axes = data.draw(st.sampled_from(list(ASSIGN_SHAPES)), label="axes")
    dtype_name, method = data.draw(st.sampled_from(ASSIGN_KINDS), label="dtype, method")
    dtype = np.dtype(dtype_name)
    ref = smooth_array(ASSIGN_SHAPES[axes], dtype.name, seed=11)
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        path = Path(tmp) / "x.mzarr"
        shutil.copyfile(assign_templates[axes, dtype.name, method], path)
        with Mzarr(path, "r+") as m:
            for _ in range(data.draw(st.integers(1, 3))):
                key = data.draw(index_expressions(ref.shape), label="key")
                region = ref[key]
                value = data.draw(assignment_values(np.shape(region), dtype), label="value")
                ref[key] = value
                m[key] = value
                assert_bit_exact(m[...], ref, f"after m[{key!r}] = {np.shape(value)}")
            assert_pyramid(m, ref, method)
        with Mzarr(path) as again:
            assert_pyramid(again, ref, method)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_assignment_in_memory_matches_numpy(data):
    """The same on an in-memory image: its (recomputed) pyramid follows the edits."""
    axes = data.draw(st.sampled_from(list(ASSIGN_SHAPES)))
    ref = smooth_array(ASSIGN_SHAPES[axes], "uint8", seed=5)
    m = Mzarr(ref.copy(), axes=axes)
    _ = m.levels  # compute the pyramid once, so the test sees it being invalidated by the write
    key = data.draw(index_expressions(ref.shape))
    value = data.draw(assignment_values(np.shape(ref[key]), np.dtype("uint8")))
    ref[key] = value
    m[key] = value
    assert_bit_exact(m.numpy(), ref)
    assert_pyramid(m, ref, "mean")


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "uint64", "bool", "int8", "float16"])
def test_assignment_other_dtypes(tmp_path, dtype):
    """Assignments into zstd / bool / int8 files (special values included) read back exactly, levels follow."""
    a = extreme_array((40, 50), dtype, seed=2)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(16, 16))
    ref = a.copy()
    patch = extreme_array((13, 21), dtype, seed=3)[::-1]
    with Mzarr(path, "r+") as m:
        m[5:18, 30:] = patch[:, :20]
        ref[5:18, 30:] = patch[:, :20]
        m[-1, ::3] = patch[0, :17]
        ref[-1, ::3] = patch[0, :17]
        m[20:25, 1] = ref[0, 0]
        ref[20:25, 1] = ref[0, 0]
        assert_bit_exact(m.numpy(), ref)
        assert_pyramid(m, ref, "mean")


def test_assign_wrong_shape_is_clear(tmp_path):
    """A value that does not broadcast raises MzarrValueError naming both shapes; the file is unchanged."""
    a = smooth_array((30, 30), "uint8")
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(8, 8))
    with Mzarr(path, "r+") as m:
        with pytest.raises(MzarrValueError, match=r"shape \(2, 5\).*shape \(3, 5\)"):
            m[0:3, 0:5] = np.zeros((2, 5), np.uint8)
        assert_bit_exact(m.numpy(), a)


# -- lazy reads and chunk geometry ----------------------------------------------------------------------------------
@pytest.fixture
def record_reads(monkeypatch) -> list[str]:
    """Every key read through SqliteStore.get_bytes_sync (metadata, zarr's reads) or chunk_reader.fetch_chunks (the
    chunks of region reads): the places the container reads bytes."""
    from mzarr_core import chunk_reader
    from mzarr_core.sqlite_store import SqliteStore

    keys: list[str] = []
    original = SqliteStore.get_bytes_sync
    original_fetch = chunk_reader.fetch_chunks

    def spy(self, key):
        keys.append(key)
        return original(self, key)

    def spy_fetch(store, wanted):
        keys.extend(wanted)
        return original_fetch(store, wanted)

    monkeypatch.setattr(SqliteStore, "get_bytes_sync", spy)
    monkeypatch.setattr(chunk_reader, "fetch_chunks", spy_fetch)
    return keys


def test_reads_only_touched_chunks(tmp_path, record_reads):
    """Opening reads metadata only; a region read fetches exactly the chunks it touches, on the level asked."""
    a = smooth_array((100, 90), "uint16", seed=3)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(32, 32))
    record_reads.clear()
    with Mzarr(path) as m:
        assert not [k for k in record_reads if "/c/" in k], "opening must not read pixels"
        record_reads.clear()
        assert_bit_exact(m[40:50, 40:50], a[40:50, 40:50])
        assert [k for k in record_reads if "/c/" in k] == ["0/c/1/1"]
        record_reads.clear()
        m[31:33, 5]  # rows 31-32 of column 5: chunks (0, 0) and (1, 0)
        assert sorted(k for k in record_reads if "/c/" in k) == ["0/c/0/0", "0/c/1/0"]
        record_reads.clear()
        m.levels[1][::-1, 20]
        assert sorted(k for k in record_reads if "/c/" in k) == ["1/c/0/0", "1/c/1/0"]


def test_chunk_geometry(saved_images):
    """chunk_grid / chunk_region / chunks_in describe each level's tiling (user order), and each chunk's region
    reads back as that part of the reference level."""
    for name in ("zyx_uint16", "yxc_rgb"):
        _, m, pyramid = saved_images[name]
        for lvl, ref in zip(m.levels, pyramid):
            assert lvl.chunk_grid == tuple(-(-n // c) for n, c in zip(lvl.shape, lvl.chunks))
            covered = np.zeros(lvl.shape, np.int32)
            for idx in np.ndindex(*lvl.chunk_grid):
                region = lvl.chunk_region(idx)
                covered[region] += 1
                assert lvl.chunks_in(region) == [idx]
            assert (covered == 1).all(), "chunk regions must tile the level exactly"
            last = tuple(g - 1 for g in lvl.chunk_grid)
            assert_bit_exact(lvl[lvl.chunk_region(last)], ref[lvl.chunk_region(last)])
            everything = tuple(slice(0, n) for n in lvl.shape)
            assert len(lvl.chunks_in(everything)) == int(np.prod(lvl.chunk_grid))
