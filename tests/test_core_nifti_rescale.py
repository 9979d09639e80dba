"""NIfTI scl_slope / scl_inter (QA: a CT stored as uint16 + scl_inter -1024 was imported as float64): integer
rescales stay integers, bit-exact against nibabel's scaled values, and int16 Hounsfield data offers the CT presets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel", reason="the NIfTI reader needs nibabel (the nifti extra)")

from mzarr_core import Mzarr, convert, export  # noqa: E402
from mzarr_core.display import HU_PRESETS, presets_for  # noqa: E402
from mzarr_core.formats import read  # noqa: E402


def _ct() -> np.ndarray:
    """A CT-like (z, y, x) volume in HU: air -1000, soft tissue ~40, bone up to 2000."""
    rng = np.random.default_rng(7)
    hu = np.full((6, 40, 48), -1000, np.int32)
    hu[:, 8:32, 8:40] = rng.integers(-100, 120, (6, 24, 32))
    hu[:, 15:20, 20:25] = rng.integers(300, 2000, (6, 5, 5))
    return hu


def _save(path: Path, stored: np.ndarray, dtype: str, slope: float, inter: float) -> Path:
    img = nib.Nifti1Image(stored.T, np.diag([0.75, 0.75, 2.0, 1.0]))
    img.set_data_dtype(np.dtype(dtype))
    img.header.set_slope_inter(slope, inter)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_uint16_with_intercept_minus_1024_is_int16_hounsfield(tmp_path: Path, suffix: str) -> None:
    hu = _ct()
    path = _save(tmp_path / ("ct" + suffix), (hu + 1024).astype(np.uint16), "uint16", 1.0, -1024.0)
    expected = np.asarray(nib.load(str(path)).get_fdata()).T  # nibabel's scaled values (float64)
    src = read(path)
    assert src.array.dtype == np.int16 and src.attrs["nifti"] == {
        "scl_slope": 1.0, "scl_inter": -1024.0, "stored_dtype": "uint16", "dtype": "int16", "hounsfield": True}
    with Mzarr(convert(path, tmp_path / "ct.mzarr")) as m:
        values = m.numpy()
        assert m.dtype == np.int16 and m.spacing == (2.0, 0.75, 0.75)
        assert np.array_equal(values.astype(np.float64), expected) and np.array_equal(values, hu)
        names = [p.name for p in presets_for(m.dtype, m.attrs().to_dict())]
        assert names == [p.name for p in HU_PRESETS]


def test_integer_slope_picks_the_smallest_integer_type_and_fractional_stays_float(tmp_path: Path) -> None:
    stored = np.arange(6 * 10 * 12, dtype=np.uint8).reshape(6, 10, 12) % 200
    doubled = _save(tmp_path / "d.nii", stored, "uint8", 2.0, 5.0)  # 5..403: int16 (no HU: not the CT shift)
    src = read(doubled)
    assert src.array.dtype == np.int16 and "hounsfield" not in src.attrs["nifti"]
    assert np.array_equal(np.asarray(src.array), stored.astype(np.int64) * 2 + 5)
    assert presets_for(src.array.dtype, src.attrs) == []
    neg = _save(tmp_path / "n.nii", stored, "uint8", -3.0, 100.0)  # -497..100: int16
    assert np.array_equal(np.asarray(read(neg).array), (100 - 3 * stored.astype(np.int64)).astype(np.int16))
    frac = _save(tmp_path / "f.nii", stored, "uint8", 0.5, 0.0)
    src = read(frac)
    assert src.array.dtype.kind == "f" and src.attrs["nifti"]["dtype"] == "float"
    assert np.array_equal(np.asarray(src.array), np.asarray(nib.load(str(frac)).get_fdata()).T)
    wide = _save(tmp_path / "w.nii", np.full((2, 3, 4), 65535, np.uint16), "uint16", 1.0, 100_000.0)
    assert read(wide).array.dtype == np.int32  # 165535: int32 before uint32


def test_int16_hounsfield_round_trip_and_bids_sidecar(tmp_path: Path) -> None:
    hu = _ct().astype(np.int16)
    src = Mzarr(hu, spacing=(2.0, 0.8, 0.8), unit="millimeter")
    src.attrs()["dicom"] = {"Modality": "CT"}  # as the DICOM reader records a CT
    path = src.save(tmp_path / "ct.mzarr")
    with Mzarr(path) as m:
        export(m, tmp_path / "back.nii.gz")
    with Mzarr(convert(tmp_path / "back.nii.gz", tmp_path / "back.mzarr")) as b:
        assert b.dtype == np.int16 and np.array_equal(b.numpy(), hu)
        assert [p.name for p in presets_for(b.dtype, b.attrs().to_dict())] == [p.name for p in HU_PRESETS]
    plain = tmp_path / "sub-01_ct.nii.gz"  # dcm2niix's int16 output: HU only by its BIDS sidecar
    nib.save(nib.Nifti1Image(hu.T, np.eye(4)), str(plain))
    assert presets_for(np.int16, read(plain).attrs) == []
    (tmp_path / "sub-01_ct.json").write_text(json.dumps({"Modality": "CT", "Manufacturer": "X"}))
    assert [p.name for p in presets_for(np.int16, read(plain).attrs)] == [p.name for p in HU_PRESETS]


def test_voxel_sizes_keep_the_decimal_they_were_written_with(tmp_path) -> None:
    """NIfTI stores voxel sizes as float32: 0.8 mm must read back as 0.8, not 0.800000011920929 (which would show
    in every scale bar, export and metadata panel)."""
    import nibabel as nib

    from mzarr_core.formats import read

    p = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.diag([0.8, 0.7, 1.2, 1])), p)
    assert read(p).spacing == (1.2, 0.7, 0.8)
