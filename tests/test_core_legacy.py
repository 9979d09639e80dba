"""Original Mzarr 0.0.x files (a ZIP holding a Zarr v2 group: ``base`` + ``subsampled_N`` / ``gaussian_N`` arrays
compressed with imagecodecs' numcodecs JPEG XL) open read-only, and ``save`` migrates them."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import imagecodecs.numcodecs
import numpy as np
import pytest
import zarr
from conftest import assert_bit_exact, assert_pyramid, smooth_array

from mzarr import Mzarr
from mzarr_core.errors import MzarrFormatError, MzarrReadOnlyError


def write_legacy(path: Path, arrays: dict[str, np.ndarray], chunks: tuple[int, ...], attrs: dict | None = None) -> Path:
    """Write a file the way Mzarr 0.0.x did: Zarr v2 group in a ZipStore, every array JPEG XL compressed."""
    imagecodecs.numcodecs.register_codecs()
    store = zarr.storage.ZipStore(path, mode="w")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about rewritten .zgroup/.zattrs entries
        group = zarr.open_group(store, mode="w", zarr_format=2)
        for name, data in arrays.items():
            arr = group.create_array(
                name, shape=data.shape, dtype=data.dtype, chunks=tuple(min(c, n) for c, n in zip(chunks, data.shape)),
                compressors=imagecodecs.numcodecs.Jpegxl(lossless=True),
            )
            arr[...] = data
        if attrs:
            group.attrs.update(attrs)
        store.close()
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert "base/.zarray" in names and b"imagecodecs_jpegxl" in zipfile.ZipFile(path).read("base/.zarray")
    return path


@pytest.fixture
def legacy_file(tmp_path) -> tuple[Path, np.ndarray]:
    """A 0.0.x file of a real picture (a 300 x 260 crop of camera) with base, subsampled_2 and subsampled_4."""
    import skimage.data

    a = np.ascontiguousarray(skimage.data.camera()[:300, :260])
    path = write_legacy(
        tmp_path / "old.mzarr",
        {"base": a, "subsampled_2": a[::2, ::2], "subsampled_4": a[::4, ::4]},
        (128, 128),
        {"description": "made by mzarr 0.0.3"},
    )
    return path, a


def test_legacy_opens_read_only_with_levels(legacy_file):
    """The levels are base and the subsampled arrays (finest first), factors 1/2/4, pixels exact, attrs kept."""
    path, a = legacy_file
    with Mzarr(path) as m:
        assert m.mode == "r" and not m.writable
        assert m.axes == "yx" and m.shape == a.shape and m.dtype == np.uint8
        assert [lvl.shape for lvl in m.levels] == [(300, 260), (150, 130), (75, 65)]
        assert [lvl.factor for lvl in m.levels] == [(1, 1), (2, 2), (4, 4)]
        assert m.downsample_method == "nearest"
        assert m.codec.get("legacy") is True
        assert dict(m.attrs()) == {"description": "made by mzarr 0.0.3"}
        assert_bit_exact(m.numpy(), a)
        assert_bit_exact(m.levels[1][...], a[::2, ::2])
        assert_bit_exact(m.levels[2][...], a[::4, ::4])
        assert_bit_exact(m[10:200:3, ::-7], a[10:200:3, ::-7])
        assert_bit_exact(m.levels[2][-1, 3:9], a[::4, ::4][-1, 3:9])


def test_legacy_refuses_writing(legacy_file):
    """Opening for writing and writing pixels or attrs raise, and the file is unchanged."""
    path, a = legacy_file
    before = path.read_bytes()
    for mode in ("r+", "a"):
        with pytest.raises(MzarrFormatError, match=r"original Mzarr 0\.0\.x ZIP file, which can only be read; migrate"):
            Mzarr(path, mode)
    with Mzarr(path) as m:
        with pytest.raises(MzarrReadOnlyError):
            m[0, 0] = 1
        with pytest.raises(MzarrReadOnlyError):
            m.attrs()["x"] = 1
    assert path.read_bytes() == before


def test_legacy_write_error_says_migrate(legacy_file):
    """The read-only error of a legacy file says how to migrate instead of suggesting 'r+' (which also fails)."""
    path, _ = legacy_file
    with Mzarr(path) as m:
        with pytest.raises(MzarrReadOnlyError) as info:
            m[0, 0] = 1
    message = str(info.value)
    assert "0.0.x" in message and ("save" in message or "convert" in message), message
    assert "'r+'" not in message, message


def test_legacy_migrates_with_save(legacy_file, tmp_path):
    """save() writes a new-format file: same pixels, nearest pyramid (equal to the old subsampled levels),
    attrs kept, writable afterwards; saving over the legacy path itself replaces it."""
    path, a = legacy_file
    with Mzarr(path) as m:
        new = m.save(tmp_path / "new.mzarr", chunks=(64, 64))
    with Mzarr(new, "r+") as n:
        assert n.codec["name"] == "jpegxl" and n.codec.get("legacy") is None
        assert n.downsample_method == "nearest"
        assert dict(n.attrs()) == {"description": "made by mzarr 0.0.3"}
        assert_pyramid(n, a, "nearest")
        assert_bit_exact(n.levels[1][...], a[::2, ::2])
        assert_bit_exact(n.levels[2][...], a[::4, ::4])
        n[0:5, 0:5] = 0
    with Mzarr(path) as m:
        m.save(path, chunks=(128, 128))  # in place: the ZIP becomes a .mzarr SQLite file
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"
    with Mzarr(path, "r+") as m:
        assert_bit_exact(m.numpy(), a)
        assert m.writable


def test_legacy_rgb_and_gaussian_only(tmp_path):
    """An RGB legacy file is 'yxc'; a file with only gaussian_N levels uses them (mean pyramid)."""
    rgb = smooth_array((90, 70, 3), "uint8", seed=2)
    path = write_legacy(tmp_path / "rgb.mzarr", {"base": rgb, "subsampled_2": rgb[::2, ::2]}, (64, 64, 3))
    with Mzarr(path) as m:
        assert m.axes == "yxc" and m.channel_count == 3
        assert_bit_exact(m.numpy(), rgb)
        assert_bit_exact(m.levels[1][...], rgb[::2, ::2])
        assert_bit_exact(m[5, :, 2], rgb[5, :, 2])
    grey = smooth_array((80, 60), "uint16", seed=3)
    g2 = grey[::2, ::2] // 2 + 1  # any content: the reader must return what the level holds
    path = write_legacy(tmp_path / "gauss.mzarr", {"base": grey, "gaussian_2": g2}, (32, 32))
    with Mzarr(path) as m:
        assert [lvl.shape for lvl in m.levels] == [(80, 60), (40, 30)]
        assert m.downsample_method == "mean"
        assert_bit_exact(m.levels[1][...], g2)


def test_zip_without_base_is_rejected(tmp_path):
    path = write_legacy(tmp_path / "nobase.mzarr", {"base": np.zeros((4, 4), np.uint8)}, (4, 4))
    # rebuild the ZIP without the base array
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist() if not n.startswith("base/")}
    other = tmp_path / "other.mzarr"
    with zipfile.ZipFile(other, "w") as z:
        for n, data in entries.items():
            z.writestr(n, data)
    with pytest.raises(MzarrFormatError, match=r"ZIP file without a 'base' array, so it is not an Mzarr 0\.0\.x image"):
        Mzarr(other)
