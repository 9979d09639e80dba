"""Lossy JPEG XL (``lossless=False, distance=`` or ``quality=``): error bounds measured on real images, smaller
files, and the refusals (labels, bool, floats and other zstd dtypes).

Measured with imagecodecs 2026.10 / libjxl at effort 2 (the default), PSNR in dB against the original (level 0)
and against the lossless reference pyramid (coarser levels):

| image                   | setting      | level 0 | level 1 | level 2 | bytes vs lossless |
| ----------------------- | ------------ | ------- | ------- | ------- | ----------------- |
| camera (uint8)          | distance 1.0 | 42.0    | 41.7    | 41.2    | 43 %              |
| astronaut (uint8 RGB)   | distance 1.0 | 36.8    | 35.5    | 33.6    | 20 %              |
| coins (uint8)           | distance 1.0 | 45.9    | 40.4    | 39.9    | 50 %              |
| moon (uint8)            | distance 1.0 | 45.9    |         |         | 50 %              |
| camera x 257 (uint16)   | distance 1.0 | 38.6    |         |         | 35 %              |
| camera - 128 (int8)     | distance 1.0 | 42.0    |         |         | 37 %              |
| camera x 257 - 32768 (int16) | distance 1.0 | 38.6 |        |         | 32 %              |
| camera, astronaut       | quality 50   | 32.4 / 31.7 | 32.6 / 29.8 | 32.1 / 27.7 |          |

quality=90 maps to distance 1.0 (libjxl's mapping) and gives the same pixels. The thresholds below sit about
1.5-2 dB under these measurements.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_bit_exact, chunk_blobs, psnr, reference_pyramid, smooth_array

from mzarr import Mzarr
from mzarr_core.codecs import quality_to_distance
from mzarr_core.errors import MzarrValueError

# image name -> (minimum level-0 PSNR at distance 1, minimum PSNR of every level at distance 1)
DISTANCE_1_BOUNDS = {"camera": (40.0, 39.5), "astronaut": (35.0, 32.0), "coins": (44.0, 38.0), "moon": (44.0, 40.0)}
QUALITY_50_BOUNDS = (30.0, 26.0)


def payload_bytes(path) -> int:
    """Bytes of chunk data in a .mzarr (without SQLite page overhead, which rounds file sizes to pages)."""
    return sum(len(v) for k, v in chunk_blobs(path).items() if "/c/" in k)


def _image(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def _level_psnrs(path, original: np.ndarray, peak: float) -> list[float]:
    with Mzarr(path) as m:
        ref = reference_pyramid(original, m.axes, len(m.levels), "mean")
        return [psnr(r, lvl[...], peak) for r, lvl in zip(ref, m.levels)]


@pytest.mark.parametrize("name", list(DISTANCE_1_BOUNDS))
def test_distance_1_error_bound_and_size(tmp_path, name):
    """distance=1.0 stays above the measured PSNR bound on every level and is smaller than lossless; the codec
    choice is recorded in the file."""
    a = _image(name)
    chunks = (128, 128, 3)[: a.ndim]
    lossless = Mzarr(a).save(tmp_path / "lossless.mzarr", chunks=chunks)
    lossy = Mzarr(a).save(tmp_path / "lossy.mzarr", chunks=chunks, lossless=False, distance=1.0)
    level0_bound, all_bound = DISTANCE_1_BOUNDS[name]
    scores = _level_psnrs(lossy, a, 255)
    assert len(scores) >= 3
    assert scores[0] >= level0_bound, f"{name}: level 0 PSNR {scores[0]:.2f} dB < {level0_bound}"
    assert min(scores) >= all_bound, f"{name}: level PSNRs {[round(s, 2) for s in scores]} below {all_bound}"
    assert scores[0] < 60, "lossy must actually be lossy"
    assert payload_bytes(lossy) < 0.6 * payload_bytes(lossless)
    assert lossy.stat().st_size < lossless.stat().st_size
    with Mzarr(lossy) as m:
        assert m.codec["name"] == "jpegxl" and m.codec["lossless"] is False and m.codec["distance"] == 1.0
        assert m.dtype == a.dtype and m.shape == a.shape
    with Mzarr(lossless) as m:
        assert m.codec["lossless"] is True
        assert_bit_exact(m.numpy(), a)


def test_quality_maps_to_distance(tmp_path):
    """quality=90 is distance 1.0 (same pixels); quality=50 is coarser, smaller and within its own bound."""
    assert quality_to_distance(90) == pytest.approx(1.0)
    assert quality_to_distance(100) == pytest.approx(0.1)
    a = _image("camera")
    d1 = Mzarr(a).save(tmp_path / "d1.mzarr", chunks=(128, 128), lossless=False, distance=1.0)
    q90 = Mzarr(a).save(tmp_path / "q90.mzarr", chunks=(128, 128), quality=90)
    q50 = Mzarr(a).save(tmp_path / "q50.mzarr", chunks=(128, 128), quality=50)
    with Mzarr(d1) as x, Mzarr(q90) as y:
        assert_bit_exact(y.numpy(), x.numpy())
        assert y.codec["distance"] == pytest.approx(1.0)
    scores = _level_psnrs(q50, a, 255)
    assert scores[0] >= QUALITY_50_BOUNDS[0] and min(scores) >= QUALITY_50_BOUNDS[1], scores
    assert scores[0] < _level_psnrs(d1, a, 255)[0]
    assert payload_bytes(q50) < payload_bytes(q90)
    astro = _image("astronaut")
    scores = _level_psnrs(Mzarr(astro).save(tmp_path / "a50.mzarr", chunks=(128, 128, 3), quality=50), astro, 255)
    assert scores[0] >= QUALITY_50_BOUNDS[0] and min(scores) >= QUALITY_50_BOUNDS[1], scores


def test_uint16_lossy(tmp_path):
    """uint16 (camera scaled to the full 16-bit range) at distance 1: PSNR >= 36.5 dB (peak 65535), smaller."""
    a = _image("camera").astype(np.uint16) * 257
    lossless = Mzarr(a).save(tmp_path / "l.mzarr")
    lossy = Mzarr(a).save(tmp_path / "y.mzarr", lossless=False, distance=1.0)
    with Mzarr(lossy) as m:
        score = psnr(a, m.numpy(), 65535)
        assert m.dtype == np.uint16
    assert 36.5 <= score < 70, score
    assert payload_bytes(lossy) < 0.6 * payload_bytes(lossless)


@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_signed_lossy(tmp_path, dtype):
    """Signed images are lossy-compressible too (through an offset to unsigned): the same bounds as the unsigned
    equivalents (int8 >= 40 dB, int16 >= 36.5 dB over the value range), no wrap-around, smaller than lossless."""
    cam = _image("camera").astype(np.int32)
    a = (cam - 128).astype(np.int8) if dtype == "int8" else (cam * 257 - 32768).astype(np.int16)
    peak, bound = (255, 40.0) if dtype == "int8" else (65535, 36.5)
    lossless = Mzarr(a).save(tmp_path / "l.mzarr")
    lossy = Mzarr(a).save(tmp_path / "y.mzarr", lossless=False, distance=1.0)
    with Mzarr(lossy) as m:
        b = m.numpy()
    assert b.dtype == np.dtype(dtype)
    assert psnr(a.astype(np.int64), b.astype(np.int64), peak) >= bound
    assert np.abs(a.astype(np.int64) - b).max() < peak // 4, "values wrapped around"
    assert payload_bytes(lossy) < 0.6 * payload_bytes(lossless), "lossy must be smaller than lossless"


@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_signed_chunks_are_2d_images(tmp_path, dtype):
    """int8/int16 chunks are stored as 2-D JPEG XL images (so they compress like the unsigned equivalent)."""
    import imagecodecs

    cam = _image("camera").astype(np.int32)
    a = (cam - 128).astype(np.int8) if dtype == "int8" else (cam * 257 - 32768).astype(np.int16)
    path = Mzarr(a).save(tmp_path / "s.mzarr", chunks=(256, 256))
    decoded = imagecodecs.jpegxl_decode(chunk_blobs(path)["0/c/0/0"])
    assert decoded.shape == (256, 256), f"chunk stored as a {decoded.shape} image"


@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_signed_lossless_size_close_to_unsigned(tmp_path, dtype):
    """A signed image costs about as much as the same pixels shifted to unsigned (within 10 %)."""
    cam = _image("camera").astype(np.int32)
    if dtype == "int8":
        signed, unsigned = (cam - 128).astype(np.int8), cam.astype(np.uint8)
    else:
        signed, unsigned = (cam * 257 - 32768).astype(np.int16), (cam * 257).astype(np.uint16)
    s = payload_bytes(Mzarr(signed).save(tmp_path / "s.mzarr"))
    u = payload_bytes(Mzarr(unsigned).save(tmp_path / "u.mzarr"))
    assert s <= 1.1 * u, f"{dtype}: {s} bytes vs {u} for the unsigned equivalent"


@pytest.mark.parametrize(
    "shape,axes,chunks",
    [((10, 50, 4), "zyx", None), ((10, 50, 2), "zyx", None), ((2, 7, 13, 11), "czyx", (1, 4, 8, 4))],
)
def test_lossy_thin_volumes_are_greyscale(tmp_path, shape, axes, chunks):
    """Lossy 3D chunks only 2-4 pixels wide (a thin volume, or a zero-padded edge chunk) keep the normal error:
    x pixels must not be taken as colour/alpha samples (zero 'alpha' would drop the other pixels)."""
    rng = np.random.default_rng(1)
    a = (smooth_array(shape, "uint8", seed=1) // 2 + rng.integers(0, 8, shape)).astype(np.uint8)
    a[..., -1] = 0  # a dark last column: the would-be alpha channel
    path = Mzarr(a, axes=axes).save(tmp_path / "thin.mzarr", chunks=chunks, lossless=False, distance=1.0)
    with Mzarr(path) as m:
        err = np.abs(m.numpy().astype(np.int64) - a)
    per_column = err.reshape(-1, a.shape[-1]).mean(0)
    assert per_column.max() < 6, f"mean abs error per x column {per_column.round(1)} (of 255)"


# -- refusals --------------------------------------------------------------------------------------------------------
def test_labels_refuse_lossy(tmp_path):
    """Label images must stay lossless, whichever way lossy is asked for; nothing is written."""
    labels = (np.arange(64 * 64).reshape(64, 64) // 300).astype(np.uint16)
    for kwargs in (dict(lossless=False), dict(distance=1.0), dict(quality=90)):
        with pytest.raises(MzarrValueError, match="label images must be stored lossless"):
            Mzarr(labels, is_label=True).save(tmp_path / "lab.mzarr", **kwargs)
        with pytest.raises(MzarrValueError, match="label images must be stored lossless"):
            Mzarr(labels).save(tmp_path / "lab.mzarr", is_label=True, **kwargs)
    assert not (tmp_path / "lab.mzarr").exists()
    path = Mzarr(labels, is_label=True).save(tmp_path / "lab.mzarr")
    with Mzarr(path) as m:
        assert m.is_label and m.downsample_method == "mode" and m.codec["lossless"] is True
        assert_bit_exact(m.numpy(), labels)
        with pytest.raises(MzarrValueError, match="label images must be stored lossless"):
            m.save(tmp_path / "again.mzarr", quality=80)


@pytest.mark.parametrize("dtype", ["bool", "float32", "float16", "float64", "int32", "uint32", "int64", "uint64"])
def test_lossy_refused_for_other_dtypes(tmp_path, dtype):
    a = np.zeros((16, 16), dtype)
    pattern = rf"lossy compression is available for uint8, uint16, int8 and int16 images, not {dtype}"
    with pytest.raises(MzarrValueError, match=pattern):
        Mzarr(a).save(tmp_path / "x.mzarr", lossless=False, distance=1.0)
    assert not (tmp_path / "x.mzarr").exists()


def test_effort_recorded_and_lossless_at_any_effort(tmp_path, camera):
    """effort=1..7 stays bit-exact when lossless; the effort is recorded; higher effort is not larger."""
    sizes = {}
    for effort in (1, 4, 7):
        path = Mzarr(camera).save(tmp_path / f"e{effort}.mzarr", effort=effort, chunks=(256, 256))
        with Mzarr(path) as m:
            assert m.codec["effort"] == effort and m.codec["lossless"] is True
            assert_bit_exact(m.numpy(), camera)
        sizes[effort] = payload_bytes(path)
    assert sizes[7] <= sizes[1] * 1.02, sizes
