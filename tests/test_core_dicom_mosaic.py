"""Siemens MOSAIC series (QA: an ASL series of 12 64x64 slices tiled in 256x256 images was imported silently as
one 2D picture): refused with a message naming what it is and what to do; ordinary MR series still read."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom", reason="the DICOM reader needs pydicom (the dicom extra)")
from pydicom.uid import generate_uid  # noqa: E402

from mzarr_core import convert  # noqa: E402
from mzarr_core.errors import MzarrFormatError  # noqa: E402
from mzarr_core.formats.dicom import open_dicom  # noqa: E402

MR = Path(pydicom.data.__file__).parent / "test_files" / "MR_small.dcm"  # 64 x 64 MR, bundled with pydicom


def _series(folder: Path, n: int, edit) -> np.ndarray:
    """``n`` slices of pydicom's MR_small.dcm, 5 mm apart along the normal, each changed by ``edit(ds)``."""
    if not MR.exists():
        pytest.skip("pydicom's bundled MR_small.dcm is missing from this pydicom")
    folder.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds0 = pydicom.dcmread(MR)
    uid = generate_uid()
    normal = np.cross([float(v) for v in ds0.ImageOrientationPatient[:3]],
                      [float(v) for v in ds0.ImageOrientationPatient[3:]])
    for k in range(n):
        ds = copy.deepcopy(ds0)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = [f"{v:.4f}" for v in np.asarray(ds0.ImagePositionPatient, float) + 5 * k * normal]
        ds.InstanceNumber = k + 1
        edit(ds)
        ds.save_as(folder / f"im{k}.dcm", enforce_file_format=True)
    return ds0.pixel_array


def _mosaic_type(ds) -> None:
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]


def _csa_count(ds) -> None:  # no MOSAIC in ImageType, only Siemens' NumberOfImagesInMosaic (0019,100A)
    block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    block.add_new(0x0A, "US", 4)


@pytest.mark.parametrize("edit, layout", [(_mosaic_type, "its slices tiled in each image"),
                                          (_csa_count, "4 slices of 32 x 32 tiled in each 64 x 64 image")])
def test_mosaic_is_refused_with_what_to_do(tmp_path: Path, edit, layout: str) -> None:
    _series(tmp_path / "asl", 3, edit)
    with pytest.raises(MzarrFormatError, match="is a Siemens MOSAIC") as info:
        open_dicom(tmp_path / "asl")
    text = str(info.value)
    assert layout in text and "dcm2niix" in text and "series=" in text
    with pytest.raises(MzarrFormatError, match="MOSAIC"):
        convert(tmp_path / "asl", tmp_path / "asl.mzarr")
    assert not (tmp_path / "asl.mzarr").exists()


def test_plain_mr_series_is_still_read(tmp_path: Path) -> None:
    pixels = _series(tmp_path / "mr", 3, lambda ds: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = open_dicom(tmp_path / "mr")
    try:
        assert src.axes == "zyx" and src.array.shape == (3, 64, 64)
        assert np.array_equal(np.asarray(src.array[0]), pixels)
    finally:
        src.owner.close()
