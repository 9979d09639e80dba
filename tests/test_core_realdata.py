"""Bit-exact round trips of real data bundled with scikit-image, tifffile-read multipage TIFFs, nibabel's NIfTI
test volumes and pydicom's CT slice (all offline), with their pyramids."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_bit_exact, assert_pyramid

from mzarr import Mzarr


def _round_trip(tmp_path, a: np.ndarray, expected_axes: str, **kwargs) -> Mzarr:
    """Save ``a`` (constructor kwargs ``axes``/``spacing``; ``chunks`` for save) and check every level exactly."""
    chunks = kwargs.pop("chunks", None)
    path = Mzarr(a, **kwargs).save(tmp_path / "real.mzarr", chunks=chunks)
    with Mzarr(path) as m:
        assert m.axes == expected_axes
        native = a.astype(a.dtype.newbyteorder("<")) if a.dtype.byteorder == ">" else a
        assert m.dtype == native.dtype
        assert_bit_exact(m.numpy(), native)
        assert_pyramid(m, native, m.downsample_method)
        assert len(m.levels) >= 2
    return path


def test_grey_pictures(tmp_path, real_grey):
    """camera, coins, moon, cell, brick (uint8) with 128 x 128 chunks."""
    _round_trip(tmp_path, real_grey, "yx", chunks=(128, 128))


def test_rgb_pictures(tmp_path, real_rgb):
    """astronaut, immunohistochemistry, hubble_deep_field (odd 872 x 1000), chelsea: RGB uint8 ('yxc')."""
    _round_trip(tmp_path, real_rgb, "yxc", chunks=(256, 256, 3))


def test_rgb_default_chunks_large(tmp_path):
    """retina (1411 x 1411 RGB) with the automatic 512 x 512 tiles: several tiles with odd edges and 3 levels."""
    import skimage.data

    a = skimage.data.retina()
    path = _round_trip(tmp_path, a, "yxc")
    with Mzarr(path) as m:
        assert m.chunks == (512, 512, 3) and m.levels[0].chunk_grid == (3, 3, 1)


def test_rgb_as_uint16(tmp_path, astronaut):
    """16-bit RGB (astronaut scaled to the full range) is colour JPEG XL too, exact."""
    _round_trip(tmp_path, astronaut.astype(np.uint16) * 257 + 3, "yxc", chunks=(128, 128, 3))


def test_labels_from_a_real_image(tmp_path, camera):
    """A segmentation of camera (uint16 labels) saved as a label image: exact, mode pyramid."""
    labels = (camera // 32).astype(np.uint16) * 1000
    path = _round_trip(tmp_path, labels, "yx", is_label=True, chunks=(128, 128))
    with Mzarr(path) as m:
        assert m.is_label and m.downsample_method == "mode"
        for lvl in m.levels:
            assert set(np.unique(lvl[...])) <= set(np.unique(labels)), "mode must not invent labels"


def test_multipage_tiffs(tmp_path, skimage_multipage):
    """scikit-image's multipage TIFFs: uint8 pages as a z stack, float64 RGB pages as czyx."""
    pages = skimage_multipage["multipage"]
    _round_trip(tmp_path, pages, "zyx", chunks=(1, 8, 8))
    rgb_pages = skimage_multipage["multipage_rgb"]  # (pages, 3, y, x) float64
    czyx = np.ascontiguousarray(np.moveaxis(rgb_pages, 1, 0))
    _round_trip(tmp_path, czyx, "czyx", axes="czyx", chunks=(1, 1, 8, 8))


def test_nifti_anatomical_big_endian(tmp_path, nifti_volume):
    """nibabel's anatomical.nii: a big-endian int16 MRI volume, stored little-endian, values exact."""
    assert nifti_volume.dtype == np.dtype(">i2")
    _round_trip(tmp_path, nifti_volume, "zyx", spacing=(3.0, 2.0, 2.0), chunks=(16, 16, 16))


def test_nifti_4d_first_volume(tmp_path, nifti_4d_volume):
    """The first volume of example4d.nii.gz: int16 (128, 96, 24) with 64^3-budget default bricks."""
    assert nifti_4d_volume.dtype == np.int16 and nifti_4d_volume.shape == (128, 96, 24)
    path = _round_trip(tmp_path, nifti_4d_volume, "zyx", chunks=(32, 32, 16))
    with Mzarr(path) as m:
        assert_bit_exact(m[:, 50, :], nifti_4d_volume[:, 50, :])  # an orthogonal slice


def test_dicom_ct(tmp_path, dicom_ct):
    """pydicom's CT_small.dcm: a 128 x 128 int16 slice; also as a 3-slice stack with negative values."""
    assert dicom_ct.dtype == np.int16
    _round_trip(tmp_path, dicom_ct, "yx", chunks=(32, 32))
    stack = np.stack([dicom_ct, dicom_ct - 1024, np.flipud(dicom_ct) - 2000]).astype(np.int16)
    _round_trip(tmp_path, stack, "zyx", chunks=(2, 32, 32))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "uint64"])
def test_real_image_in_zstd_dtypes(tmp_path, camera, dtype):
    """A real picture converted to each zstd dtype (e.g. a float image with NaN no-data) round-trips exactly."""
    a = camera.astype(dtype)
    if a.dtype.kind == "f":
        a = a / 255
        a[:20, :20] = np.nan
    _round_trip(tmp_path, a, "yx", chunks=(128, 128))
