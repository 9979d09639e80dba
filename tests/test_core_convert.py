"""``mzarr_core.convert`` / ``read_image``: real TIFF, OME-TIFF, PNG, JPEG, .npy, NIfTI, .mzarr and OME-Zarr sources
become .mzarr files with exactly the source pixels (lazily for TIFF and .npy), axes and spacing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import assert_bit_exact, assert_pyramid, smooth_array

import mzarr_core
from mzarr import Mzarr
from mzarr_core.errors import MzarrFileNotFoundError, MzarrFormatError

convert, read_image = mzarr_core.convert, mzarr_core.read_image  # the documented public names


def test_public_api_exports():
    """docs/API.md: mzarr_core.convert and mzarr_core.read_image are the converter's functions."""
    import sys

    assert callable(convert) and convert is sys.modules["mzarr_core.convert"].convert
    assert callable(read_image) and read_image is sys.modules["mzarr_core.importers"].read_image
    assert {"convert", "read_image"} <= set(mzarr_core.__all__)


def _convert(src: Path, dst: Path, **kwargs) -> Mzarr:
    calls: list[tuple[int, int]] = []
    out = convert(src, dst, progress=lambda d, t: calls.append((d, t)), **kwargs)
    assert Path(out) == dst and calls and calls[-1][0] == calls[-1][1]
    return Mzarr(dst)


def test_skimage_png_and_jpeg_files(tmp_path):
    """scikit-image's bundled camera.png (grey) and astronaut.png (RGB) and the JPEG retina (decoded pixels)."""
    import imagecodecs
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    for name, axes in [("camera.png", "yx"), ("astronaut.png", "yxc"), ("retina.jpg", "yxc")]:
        expected = imagecodecs.imread(str(folder / name))
        with _convert(folder / name, tmp_path / f"{name}.mzarr") as m:
            assert m.axes == axes
            assert_bit_exact(m.numpy(), expected, name)
            assert_pyramid(m, expected, "mean")
            assert m.attrs()["source"] == name


def test_skimage_multipage_tiffs(tmp_path, skimage_multipage):
    """multipage.tif (pages -> z) and multipage_rgb.tif (pages x RGB samples -> czyx)."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    with _convert(folder / "multipage.tif", tmp_path / "mp.mzarr") as m:
        assert m.axes == "zyx"
        assert_bit_exact(m.numpy(), skimage_multipage["multipage"])
    rgb = skimage_multipage["multipage_rgb"]
    with _convert(folder / "multipage_rgb.tif", tmp_path / "mprgb.mzarr") as m:
        assert m.shape == (3, 2, 10, 10) and m.axes == "czyx"
        assert_bit_exact(m.numpy(), np.moveaxis(rgb, 1, 0))


def test_ome_tiff_axes_and_spacing(tmp_path):
    """An OME-TIFF (ZYX uint16 with physical sizes in µm) keeps pixels, axes and spacing."""
    a = smooth_array((12, 200, 150), "uint16", seed=1)
    src = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        src, a, ome=True, tile=(64, 64),
        metadata={"axes": "ZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeY": 0.25, "PhysicalSizeX": 0.25,
                  "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm", "PhysicalSizeZUnit": "µm"},
    )
    with _convert(src, tmp_path / "stack.mzarr", chunks=(8, 64, 64)) as m:
        assert m.axes == "zyx" and m.spacing == (2.0, 0.25, 0.25) and m.unit == "micrometer"
        assert_bit_exact(m.numpy(), a)
        assert_pyramid(m, a, "mean")


def test_rgb_tiff_and_lossy_options(tmp_path, astronaut):
    """An RGB TIFF is 'yxc'; save options (lossy distance) pass through convert."""
    src = tmp_path / "rgb.tif"
    tifffile.imwrite(src, astronaut, photometric="rgb")
    with _convert(src, tmp_path / "rgb.mzarr") as m:
        assert m.axes == "yxc"
        assert_bit_exact(m.numpy(), astronaut)
    with _convert(src, tmp_path / "lossy.mzarr", lossless=False, distance=1.0) as m:
        assert m.codec["lossless"] is False
        err = np.abs(m.numpy().astype(int) - astronaut)
        assert 0 < err.mean() < 4


def test_tiff_is_read_lazily(tmp_path):
    """read_image of a tiled TIFF returns a lazy array (not a loaded ndarray) that reads regions on demand."""
    a = smooth_array((600, 500), "uint8", seed=2)
    src = tmp_path / "tiled.tif"
    tifffile.imwrite(src, a, tile=(128, 128))
    source = read_image(src)
    try:
        assert not isinstance(source.array, np.ndarray)
        assert tuple(source.array.shape) == a.shape and np.dtype(source.array.dtype) == a.dtype
        assert_bit_exact(np.asarray(source.array[100:300, 50:60]), a[100:300, 50:60])
    finally:
        source.owner.close()


def test_npy_memmap_and_mzarr_and_ome_zarr_sources(tmp_path):
    """.npy is memory-mapped; .mzarr and OME-Zarr folders convert to each other with pixels and attrs."""
    a = smooth_array((7, 90, 80), "float32", seed=3)
    np.save(tmp_path / "vol.npy", a)
    source = read_image(tmp_path / "vol.npy")
    assert isinstance(source.array, np.memmap)
    with _convert(tmp_path / "vol.npy", tmp_path / "vol.mzarr", attrs={"k": 1}) as m:
        assert_bit_exact(m.numpy(), a)
        assert m.attrs()["k"] == 1
    with _convert(tmp_path / "vol.mzarr", tmp_path / "vol.ome.zarr") as m:
        assert (tmp_path / "vol.ome.zarr").is_dir()
        assert_bit_exact(m.numpy(), a)
        assert m.attrs()["k"] == 1
    with _convert(tmp_path / "vol.ome.zarr", tmp_path / "back.mzarr") as m:
        assert_pyramid(m, a, "mean")


def test_nifti_volume(tmp_path, nifti_volume):
    """nibabel's anatomical.nii (x, y, z) becomes a zyx volume in mm with its voxel sizes."""
    import nibabel
    import nibabel.tests

    src = Path(nibabel.tests.__file__).parent / "data" / "anatomical.nii"
    zooms = nibabel.load(src).header.get_zooms()
    with _convert(src, tmp_path / "anat.mzarr") as m:
        assert m.axes == "zyx" and m.unit == "millimeter"
        assert m.spacing == tuple(float(z) for z in zooms[2::-1])
        assert_bit_exact(m.numpy(), nifti_volume.transpose(2, 1, 0).astype("<i2"))


def test_labels_via_convert(tmp_path):
    labels = (np.arange(100 * 120).reshape(100, 120) // 700).astype(np.uint16)
    np.save(tmp_path / "labels.npy", labels)
    with _convert(tmp_path / "labels.npy", tmp_path / "labels.mzarr", is_label=True, chunks=(32, 32)) as m:
        assert m.is_label and m.downsample_method == "mode"
        assert_pyramid(m, labels, "mode")


def test_convert_errors(tmp_path):
    with pytest.raises(MzarrFileNotFoundError, match="no such file"):
        convert(tmp_path / "missing.tif", tmp_path / "x.mzarr")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MzarrFormatError, match=r"notes\.txt: unknown image type \.txt"):
        convert(tmp_path / "notes.txt", tmp_path / "x.mzarr")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    with pytest.raises(MzarrFormatError, match=r"broken\.png could not be decoded as PNG"):
        convert(tmp_path / "broken.png", tmp_path / "x.mzarr")
    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((3, 2, 16, 16), np.uint8), metadata={"axes": "TZYX"})
    with pytest.raises(MzarrFormatError, match=r"movie\.tif holds a TZYX series .* Split time points"):
        convert(tmp_path / "movie.tif", tmp_path / "x.mzarr")
    assert not (tmp_path / "x.mzarr").exists()
