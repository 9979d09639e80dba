"""``mzarr_core.display.radiological_axes`` with ``radiological_flips``: each plane of a patient image drawn as
radiologists read it whatever the acquisition (axial, sagittal, coronal, oblique), from the geometry the NIfTI and
DICOM readers write (files written here with nibabel / pydicom's bundled MR slice, read by mzarr's readers).

The property checked for every plane: on screen, "up" points superior (coronal, sagittal planes) or anterior
(axial planes), "left" points to the patient's right (axial, coronal) or anterior (sagittal)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from mzarr_core.display import radiological_axes, radiological_flips

nib = pytest.importorskip("nibabel")

R, A, S = np.eye(3)  # RAS unit vectors


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation matrix about ``axis`` (Rodrigues)."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(degrees)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx


def nifti_attrs(tmp_path: Path, directions: np.ndarray, name: str = "v.nii") -> tuple[dict, str]:
    """Attributes and axes mzarr's NIfTI reader gives a file whose voxel axes i, j, k (stored x, y, z) point along
    the columns of ``directions`` (RAS)."""
    from mzarr_core.formats import nifti

    affine = np.eye(4)
    affine[:3, :3] = np.asarray(directions, float) * 1.5
    affine[:3, 3] = (-30, -20, 10)
    path = tmp_path / name
    nib.save(nib.Nifti1Image(np.zeros((6, 7, 8), np.uint8), affine), str(path))
    src = nifti.read(path)
    return src.attrs, src.axes


def screen(attrs: dict, axes: str, slice_axis: str) -> tuple[str, str, np.ndarray, np.ndarray]:
    """(row axis, column axis, RAS direction of the screen's up, of the screen's left) of one plane as drawn."""
    from mzarr_core.formats.geometry import image_geometry

    row, col = radiological_axes(attrs, axes, slice_axis)
    up, left = radiological_flips(attrs, axes, row, col)
    ras = image_geometry(attrs, 3).in_space("RAS").direction
    rd, cd = ras[:, "xyz".index(row)], ras[:, "xyz".index(col)]
    return row, col, (rd if up else -rd), (cd if left else -cd)


def check_read_as_radiologists(attrs: dict, axes: str) -> dict[str, tuple[str, str]]:
    """Every plane reads as radiologists expect (see the module's docstring); returns its (row, col) per slice."""
    from mzarr_core.formats.geometry import image_geometry

    ras = image_geometry(attrs, 3).in_space("RAS").direction
    out = {}
    for s in "zyx":
        row, col, up, left = screen(attrs, axes, s)
        normal = ras[:, "xyz".index(s)]
        kind = ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]
        want_up = A if kind == "axial" else S
        want_left = A if kind == "sagittal" else R
        assert int(np.argmax(np.abs(up))) == int(np.argmax(want_up)) and up @ want_up > 0, (s, kind, up)
        assert int(np.argmax(np.abs(left))) == int(np.argmax(want_left)) and left @ want_left > 0, (s, kind, left)
        out[s] = (row, col)
    return out


def test_axial_acquisition_keeps_the_stored_order(tmp_path) -> None:
    """x -> R, y -> A, z -> S (and the usual LAS NIfTI): every plane as stored, as before."""
    for dirs in (np.column_stack([R, A, S]), np.column_stack([-R, A, S])):
        attrs, axes = nifti_attrs(tmp_path, dirs)
        assert axes == "zyx"
        assert check_read_as_radiologists(attrs, axes) == {"z": ("y", "x"), "y": ("z", "x"), "x": ("z", "y")}


def test_sagittal_acquisition_turns_its_axial_and_coronal_planes(tmp_path) -> None:
    """Slices left to right (z -> R), rows down the body (y -> I), columns to the back (x -> P): the z plane is
    sagittal as stored; the y plane (axial) has rows along x (A-P), the x plane (coronal) rows along y (S-I)."""
    attrs, axes = nifti_attrs(tmp_path, np.column_stack([-A, -S, R]))
    got = check_read_as_radiologists(attrs, axes)
    assert got == {"z": ("y", "x"), "y": ("x", "z"), "x": ("y", "z")}
    # the axial plane: anterior (x = 0) up, the patient's right (z = last) on the screen's left
    assert radiological_flips(attrs, axes, "x", "z") == (False, True)


def test_coronal_acquisition_turns_its_sagittal_plane(tmp_path) -> None:
    """Slices front to back (z -> P), rows down (y -> I), columns to the patient's left (x -> L)."""
    attrs, axes = nifti_attrs(tmp_path, np.column_stack([-R, -S, -A]))
    got = check_read_as_radiologists(attrs, axes)
    assert got == {"z": ("y", "x"), "y": ("z", "x"), "x": ("y", "z")}


def test_oblique_acquisitions(tmp_path) -> None:
    """A sagittal acquisition tilted 25 degrees about two axes reads as the sagittal one; a plane exactly between
    axial and coronal (45 degrees) has no reading convention: the stored order."""
    sag = np.column_stack([-A, -S, R])
    tilted = rotation([1, 1, 0], 25) @ rotation([0, 0, 1], 20) @ sag
    attrs, axes = nifti_attrs(tmp_path, tilted, "tilted.nii")
    assert check_read_as_radiologists(attrs, axes) == {"z": ("y", "x"), "y": ("x", "z"), "x": ("y", "z")}
    half = np.column_stack([R, rotation(R, 45) @ A, rotation(R, 45) @ S])  # y, z at 45 deg between A and S
    attrs, axes = nifti_attrs(tmp_path, half, "half.nii")
    assert radiological_axes(attrs, axes, "z") == ("y", "x")
    assert radiological_axes(attrs, axes, "y") == ("z", "x")


def test_dicom_sagittal_series(tmp_path) -> None:
    """A sagittal MR series read by the DICOM reader (its LPS affine): the same turns as the NIfTI one."""
    pydicom = pytest.importorskip("pydicom")
    import copy
    import os

    from pydicom.uid import generate_uid

    from mzarr_core.formats.dicom import open_dicom

    base = Path(os.path.dirname(pydicom.data.__file__)) / "test_files" / "MR_small.dcm"
    if not base.exists():
        pytest.skip("pydicom's bundled MR_small.dcm is missing")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds0 = pydicom.dcmread(base)
    iop = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # rows toward posterior, columns toward inferior: slices along -x (R)
    folder = tmp_path / "sag"
    folder.mkdir()
    uid = generate_uid()
    for k in range(4):
        ds = copy.deepcopy(ds0)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImageOrientationPatient = iop
        ds.ImagePositionPatient = [10.0 - 3 * k, 5.0, 7.0]
        ds.InstanceNumber = k + 1
        ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = open_dicom(folder)
    assert src.axes == "zyx" and "affine_lps" in src.attrs["dicom"]["geometry"]
    got = check_read_as_radiologists(src.attrs, src.axes)
    assert got == {"z": ("y", "x"), "y": ("x", "z"), "x": ("y", "z")}


def test_without_geometry_2d_and_damaged() -> None:
    """No geometry, a damaged one, a microscope's z stack: the stored order; a 2-D image or no slice axis: None."""
    assert radiological_axes({}, "zyx", "y") == ("z", "x")
    assert radiological_axes(None, "czyx", "x") == ("z", "y")
    assert radiological_axes({"nifti_affine": "nonsense"}, "zyx", "x") == ("z", "y")
    assert radiological_axes({"nifti_affine": [[0] * 4] * 4}, "zyx", "x") == ("z", "y")
    assert radiological_axes({"nifti_affine": [[np.nan] * 4] * 4}, "zyx", "y") == ("z", "x")
    assert radiological_axes({"nifti_affine": np.eye(4).tolist()}, "yx", None) is None
    assert radiological_axes({"nifti_affine": np.eye(4).tolist()}, "zyx", None) is None
    sag = np.eye(4)
    sag[:3, :3] = np.column_stack([-A, -S, R])
    assert radiological_axes({"nifti_affine": sag.tolist()}, "zyxc", "y") == ("x", "z")  # channels last
