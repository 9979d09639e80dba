"""Shared fixtures and helpers for the mzarr_core tests: real images (bundled with scikit-image, nibabel and pydicom,
all offline), synthetic arrays with extreme values, reference pyramids and SQLite instrumentation.

Helpers are plain functions; the test modules import them with ``from conftest import ...``. Nothing here is
autouse, so the GUI and packaging tests in this folder are unaffected.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import mzarr_core  # noqa: F401  (registers the imagecodecs zarr codecs)
from mzarr import Mzarr
from mzarr_core.axes import storage_axes
from mzarr_core.pyramid import downsample

ALL_DTYPES = (
    "uint8", "uint16", "int8", "int16", "bool",
    "float16", "float32", "float64", "int32", "uint32", "int64", "uint64",
)


# -- synthetic data ----------------------------------------------------------------------------------------------
def extreme_array(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Random values over the dtype's whole range, with its min and max (and NaN, +/-inf, -0.0, the smallest
    subnormal for floats) planted at the first positions, so a round trip must keep every special value."""
    rng = np.random.default_rng(seed)
    d = np.dtype(dtype)
    if d.kind == "b":
        a = rng.random(shape) < 0.5
        specials: list = [True, False]
    elif d.kind == "f":
        a = (rng.standard_normal(shape) * 1000).astype(d)
        fi = np.finfo(d)
        specials = [fi.min, fi.max, np.nan, np.inf, -np.inf, -0.0, fi.smallest_subnormal, fi.tiny, fi.eps]
    else:
        ii = np.iinfo(d)
        a = rng.integers(ii.min, ii.max, shape, dtype=d, endpoint=True)
        specials = [ii.min, ii.max, 0, ii.min + 1, ii.max - 1]
    flat = a.reshape(-1)
    for i, v in enumerate(specials[: flat.size]):
        flat[i] = v
    return a


def smooth_array(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """A smooth random field scaled to the dtype (compresses like a real image, unlike white noise)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 3 + i, n) for i, n in enumerate(shape)], indexing="ij")
    field = sum(np.sin(g + rng.uniform(0, 6)) for g in grids) / len(shape)
    d = np.dtype(dtype)
    if d.kind == "b":
        return field > 0
    if d.kind == "f":
        return (field * 100).astype(d)
    ii = np.iinfo(d)
    lo, hi = max(ii.min, -30000), min(ii.max, 60000)
    return np.round((field + 1) / 2 * (hi - lo) + lo).astype(d)


def arrays_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-exact equality: same shape and dtype, NaN equal to NaN, and -0.0 distinct from 0.0 (compares bytes)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def assert_bit_exact(actual: np.ndarray, expected: np.ndarray, what: str = "") -> None:
    """Assert bit-exact equality with a useful message (first differing position and values)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if not arrays_equal(actual, expected):
        if expected.dtype.kind == "f":
            diff = ~((actual == expected) | (np.isnan(actual) & np.isnan(expected)))
        else:
            diff = actual != expected
        where = np.argwhere(diff)
        first = tuple(where[0]) if len(where) else "(bit pattern only, e.g. -0.0 vs 0.0)"
        detail = f" e.g. at {first}: {actual[first]!r} != {expected[first]!r}" if len(where) else f" {first}"
        raise AssertionError(f"{what}: {len(where)} values differ;{detail}")


# -- reference pyramid -------------------------------------------------------------------------------------------
def to_storage(a: np.ndarray, axes: str) -> np.ndarray:
    """User-order array -> NGFF storage order (channel first)."""
    return np.transpose(a, [axes.index(c) for c in storage_axes(axes)])


def from_storage(a: np.ndarray, axes: str) -> np.ndarray:
    """NGFF storage-order array -> the user's axis order."""
    st = storage_axes(axes)
    return np.transpose(a, [st.index(c) for c in axes])


def reference_pyramid(a: np.ndarray, axes: str, n_levels: int, method: str) -> list[np.ndarray]:
    """``n_levels`` levels (user order): ``mzarr_core.pyramid.downsample`` applied repeatedly to the original,
    halving every spatial axis still longer than one pixel, never the channel axis."""
    return [arr for arr, _ in reference_levels(a, axes, n_levels, method)]


def reference_levels(a: np.ndarray, axes: str, n_levels: int, method: str) -> list[tuple[np.ndarray, tuple[int, ...]]]:
    """Like :func:`reference_pyramid`, with each level's downsampling factor per user axis."""
    st = storage_axes(axes)
    cur = to_storage(np.asarray(a), axes)
    factor = [1] * cur.ndim
    out = [(from_storage(cur, axes), tuple(factor[st.index(c)] for c in axes))]
    for _ in range(n_levels - 1):
        halve = tuple(ax != "c" and n > 1 for ax, n in zip(st, cur.shape))
        cur = downsample(cur, halve, method)
        factor = [f * 2 if h else f for f, h in zip(factor, halve)]
        out.append((from_storage(cur, axes), tuple(factor[st.index(c)] for c in axes)))
    return out


def assert_pyramid(m: Mzarr, original: np.ndarray, method: str) -> None:
    """Every level of ``m`` equals the reference pyramid of ``original`` (bit-exact), with the same factors, and
    the coarsest level fits in one chunk per spatial axis (or cannot be halved further)."""
    levels = m.levels
    assert len(levels) >= 1
    ref = reference_levels(original, m.axes, len(levels), method)
    for i, (lvl, (expected, factor)) in enumerate(zip(levels, ref)):
        assert lvl.index == i
        assert_bit_exact(lvl[...], expected, f"level {i}")
        assert lvl.factor == factor, f"level {i}: factor {lvl.factor} != {factor}"


# -- quality measure ---------------------------------------------------------------------------------------------
def psnr(reference: np.ndarray, test: np.ndarray, peak: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB (peak = dtype max for integers)."""
    reference = np.asarray(reference, np.float64)
    test = np.asarray(test, np.float64)
    if peak is None:
        peak = 255.0 if reference.max() <= 255 else 65535.0
    mse = float(np.mean((reference - test) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


# -- SQLite instrumentation --------------------------------------------------------------------------------------
def chunk_blobs(path: Path | str) -> dict[str, bytes]:
    """Every key -> stored bytes of a .mzarr file, read with plain sqlite3 (read-only URI)."""
    conn = sqlite3.connect(f"file:{Path(path).resolve().as_posix()}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT key, value FROM zarr"))
    finally:
        conn.close()


def set_blob(path: Path | str, key: str, value: bytes) -> None:
    """Overwrite the stored bytes of one key (to simulate a damaged chunk)."""
    conn = sqlite3.connect(path)
    try:
        n = conn.execute("UPDATE zarr SET value=? WHERE key=?", (value, key)).rowcount
        conn.commit()
    finally:
        conn.close()
    assert n == 1, f"no key {key!r} in {path}"


def temp_leftovers(folder: Path | str) -> list[str]:
    """Names in ``folder`` that look like save temporaries (hidden ``.NAME.tmp-*`` / ``.old-*``)."""
    return sorted(n for n in os.listdir(folder) if ".tmp-" in n or ".old-" in n)


# -- real images (all bundled, no network) -----------------------------------------------------------------------
def _skimage(name: str) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, name)())


REAL_2D = ("camera", "coins", "moon", "cell", "brick")
REAL_RGB = ("astronaut", "immunohistochemistry", "hubble_deep_field", "chelsea")


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    """scikit-image's 512 x 512 uint8 cameraman."""
    return _skimage("camera")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's 512 x 512 x 3 uint8 RGB astronaut."""
    return _skimage("astronaut")


@pytest.fixture(scope="session", params=REAL_2D)
def real_grey(request) -> np.ndarray:
    """Each bundled greyscale scikit-image picture (uint8)."""
    return _skimage(request.param)


@pytest.fixture(scope="session", params=REAL_RGB)
def real_rgb(request) -> np.ndarray:
    """Each bundled RGB scikit-image picture (uint8, yxc)."""
    return _skimage(request.param)


@pytest.fixture(scope="session")
def skimage_multipage() -> dict[str, np.ndarray]:
    """scikit-image's bundled multipage TIFFs: uint8 (2, 15, 10) pages and float64 (2, 3, 10, 10) RGB pages."""
    import skimage.data
    import tifffile

    folder = Path(skimage.data.__file__).parent
    return {name: tifffile.imread(folder / f"{name}.tif") for name in ("multipage", "multipage_rgb")}


@pytest.fixture(scope="session")
def nifti_volume() -> np.ndarray:
    """nibabel's bundled anatomical MRI volume: big-endian int16 (33, 41, 25), returned as stored ('>i2')."""
    import nibabel
    import nibabel.tests

    img = nibabel.load(Path(nibabel.tests.__file__).parent / "data" / "anatomical.nii")
    data = np.asarray(img.dataobj)
    assert data.ndim == 3
    return data


@pytest.fixture(scope="session")
def nifti_4d_volume() -> np.ndarray:
    """The first volume of nibabel's bundled example4d.nii.gz: int16 (128, 96, 24)."""
    import nibabel
    import nibabel.tests

    img = nibabel.load(Path(nibabel.tests.__file__).parent / "data" / "example4d.nii.gz")
    return np.ascontiguousarray(np.asarray(img.dataobj)[..., 0])


@pytest.fixture(scope="session")
def dicom_ct() -> np.ndarray:
    """pydicom's bundled CT_small.dcm: a 128 x 128 int16 CT slice (skipped if pydicom is not installed)."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    if path is None:
        pytest.skip("pydicom test data not available")
    return pydicom.dcmread(path).pixel_array
