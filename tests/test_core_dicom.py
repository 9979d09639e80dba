"""``mzarr_core.formats.dicom``: DICOM series (folder, zip, file) -> one lazily read volume.

Series are assembled in tmp_path from pydicom's bundled test files (CT_small, MR_small and their compressed
variants, RT dose grids, colour images): copies of a slice with changed positions, UIDs and pixels, written in
shuffled file order. Every pixel is compared bit-exact with pydicom's own decode of the same file (or with the
uncompressed original for codecs pydicom cannot decode here).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import random
import shutil
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.uid import generate_uid  # noqa: E402

import mzarr_core.formats.dicom as dicom  # noqa: E402
from mzarr import Mzarr  # noqa: E402
from mzarr_core.errors import MzarrFileNotFoundError, MzarrFormatError, MzarrWarning  # noqa: E402
from mzarr_core.formats.dicom import (  # noqa: E402
    PHI_KEYWORDS,
    SAFE_KEYWORDS,
    DicomSeries,
    format_dicom_series,
    is_dicom_path,
    list_dicom_series,
    open_dicom,
    pick_series,
)

TEST_FILES = Path(os.path.dirname(pydicom.data.__file__)) / "test_files"
REAL_CT = Path("/work/data/src/fnndsc_andrei_abdomen_ct")


def bundled(name: str) -> Path:
    """A pydicom bundled file, never downloaded (get_testdata_file would fetch missing ones)."""
    path = TEST_FILES / name
    if not path.exists():
        pytest.skip(f"pydicom test file {name} not bundled with this pydicom")
    return path


def read(name: str | Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(bundled(name) if isinstance(name, str) else name)


def pixels(path: Path | str) -> np.ndarray:
    return read(path).pixel_array


def make_series(
    folder: Path,
    n: int = 6,
    *,
    base: str = "CT_small.dcm",
    uid: str | None = None,
    number: int = 7,
    description: str = "AX 2.5mm",
    positions: list | None = None,
    orientation: list | None = None,
    step: float = 2.5,
    edit=None,
    seed: int = 0,
    prefix: str = "",
) -> tuple[np.ndarray, str]:
    """``n`` slices of ``base`` at ``positions`` (default: ``step`` apart along the normal), pixels varied per slice,
    files named and numbered in an order unrelated to their positions. Returns (stored pixels in list order, uid)."""
    folder.mkdir(parents=True, exist_ok=True)
    ds0 = read(base)
    uid = uid or generate_uid()
    origin = np.asarray([float(v) for v in ds0.ImagePositionPatient])
    iop = orientation or [float(v) for v in ds0.ImageOrientationPatient]
    normal = np.cross(iop[:3], iop[3:])
    if positions is None:
        positions = [list(origin + k * step * normal) for k in range(n)]
    names = list(range(n))
    random.Random(seed).shuffle(names)
    stack = []
    base_pixels = ds0.pixel_array
    for k in range(n):
        ds = copy.deepcopy(ds0)
        ds.SeriesInstanceUID = uid
        ds.SeriesNumber = number
        ds.SeriesDescription = description
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
        if positions[k] is None:
            del ds.ImagePositionPatient
        else:
            ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[k]]
        ds.InstanceNumber = 100 - 3 * names[k]  # unrelated to the position order
        arr = (base_pixels.astype(np.int64) + 11 * k).astype(base_pixels.dtype)
        ds.PixelData = arr.tobytes()
        if edit is not None:
            arr = edit(ds, k, arr)
        stack.append(arr)
        ds.save_as(folder / f"{prefix}img{names[k]:04d}.dcm", enforce_file_format=True)
    return np.stack(stack), uid


def opened(path, **kwargs):
    """open_dicom with no warning expected."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", MzarrWarning)
        return open_dicom(path, **kwargs)


# -- series geometry ----------------------------------------------------------------------------------------------------
def test_series_sorted_by_position_with_spacing_and_hounsfield_units(tmp_path):
    """Shuffled file names and InstanceNumbers, nested folders: the volume follows ImagePositionPatient, z spacing is
    the measured step (not SliceThickness 5), CT values become int16 HU exactly."""
    stored, _ = make_series(tmp_path / "study" / "a" / "b", n=7, step=2.5)
    src = opened(tmp_path / "study")
    assert src.axes == "zyx" and src.unit == "millimeter"
    assert src.spacing == pytest.approx((2.5, 0.661468, 0.661468))
    assert src.array.shape == (7, 128, 128) and src.array.dtype == np.int16
    vol = src.array[...]
    np.testing.assert_array_equal(vol, stored.astype(np.int32) - 1024)
    rescale = src.attrs["dicom"]["rescale"]
    assert rescale["applied"] is True and rescale["dtype"] == "int16" and rescale["intercept"] == -1024
    assert rescale["type"] == "HU" and rescale["stored_dtype"] == "int16"
    assert "checked_by" in rescale  # int16 stored with 16 bits: the range needed a look at the values
    geo = src.attrs["dicom"]["geometry"]
    assert geo["sorted_by"] == "ImagePositionPatient" and geo["slice_step_mm"] == pytest.approx(2.5)
    affine = np.asarray(geo["affine_lps"])
    ds0 = read("CT_small.dcm")
    np.testing.assert_allclose(affine[:3, 3], [float(v) for v in ds0.ImagePositionPatient], atol=1e-5)
    np.testing.assert_allclose(np.diag(affine)[:3], [0.661468, 0.661468, 2.5], atol=1e-6)
    assert src.attrs["dicom"]["SliceThickness"] == 5.0
    assert src.attrs["dicom"]["import"]["slices"] == 7


def test_sagittal_series_sorted_along_the_normal_not_z_or_instance(tmp_path):
    """Sagittal slices (normal -x): the order is by position projected on the normal, i.e. decreasing x."""
    iop = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
    xs = [12.0, -3.0, 0.0, 6.0, 9.0, 3.0]
    positions = [[x, 5.0, 7.0] for x in xs]
    stored, _ = make_series(tmp_path / "sag", n=6, positions=positions, orientation=iop, base="MR_small.dcm")
    src = opened(tmp_path / "sag")
    order = np.argsort([-x for x in xs])
    np.testing.assert_array_equal(src.array[...], stored[order])
    assert src.spacing[0] == pytest.approx(3.0)
    geo = src.attrs["dicom"]["geometry"]
    assert geo["direction"][2] == pytest.approx([-1.0, 0.0, 0.0])
    assert src.attrs["dicom"]["ImagePositionPatient"] == pytest.approx([12.0, 5.0, 7.0])
    assert "rescale" not in src.attrs["dicom"]  # MR_small has no rescale


def test_uneven_gaps_warn_and_record_positions(tmp_path):
    zs = [0.0, 2.5, 5.0, 10.0, 12.5]
    positions = [[0.0, 0.0, z] for z in zs]
    stored, _ = make_series(tmp_path / "s", n=5, positions=positions, base="MR_small.dcm")
    with pytest.warns(MzarrWarning, match=r"uneven slice gaps.*from 2\.5 to 5 mm"):
        src = open_dicom(tmp_path / "s")
    assert src.spacing[0] == pytest.approx(2.5)
    np.testing.assert_array_equal(src.array[...], stored)
    geo = src.attrs["dicom"]["geometry"]
    assert geo["slice_positions_mm"] == pytest.approx(zs)
    assert (geo["slice_step_min_mm"], geo["slice_step_max_mm"]) == pytest.approx((2.5, 5.0))


def test_tilted_gantry_warns_and_the_affine_follows_the_slices(tmp_path):
    """Positions drifting in y while the orientation is axial (a CT gantry tilt of ~15 degrees)."""
    tan = np.tan(np.radians(15))
    positions = [[0.0, k * 2.0 * tan, k * 2.0] for k in range(5)]

    def tilt(ds, k, arr):
        ds.GantryDetectorTilt = "15"
        return arr

    stored, _ = make_series(tmp_path / "t", n=5, positions=positions, edit=tilt)
    with pytest.warns(MzarrWarning) as record:
        src = open_dicom(tmp_path / "t")
    text = " ".join(str(w.message) for w in record)
    assert "gantry tilt of 15 degrees" in text and "not stacked along the slice normal" in text
    assert src.spacing[0] == pytest.approx(2.0)
    affine = np.asarray(src.attrs["dicom"]["geometry"]["affine_lps"])
    np.testing.assert_allclose(affine[:3, 2], [0.0, 2.0 * tan, 2.0], atol=1e-5)
    np.testing.assert_array_equal(src.array[...], stored.astype(np.int32) - 1024)


def test_missing_positions_fall_back_to_instance_number(tmp_path):
    def numbered(ds, k, arr):
        ds.InstanceNumber = 10 - k  # reverse order
        return arr

    stored, _ = make_series(tmp_path / "s", n=4, positions=[None] * 4, base="MR_small.dcm", edit=numbered)
    with pytest.warns(MzarrWarning, match="sorted by InstanceNumber"):
        src = open_dicom(tmp_path / "s")
    np.testing.assert_array_equal(src.array[...], stored[::-1])
    assert src.spacing == pytest.approx((0.8, 0.3125, 0.3125))  # SliceThickness without positions
    assert src.attrs["dicom"]["geometry"]["sorted_by"] == "InstanceNumber"


def test_identical_duplicates_are_kept_once(tmp_path):
    stored, _ = make_series(tmp_path / "s", n=4, base="MR_small.dcm")
    files = sorted((tmp_path / "s").iterdir())
    shutil.copy(files[0], tmp_path / "s" / "copy_of_first.dcm")  # the same SOP instance twice
    ds = read(files[1])
    ds.SOPInstanceUID = generate_uid()  # same pixels, another instance (a re-sent image)
    ds.save_as(tmp_path / "s" / "resent.dcm")
    with pytest.warns(MzarrWarning, match="2 duplicate slice"):
        src = open_dicom(tmp_path / "s")
    np.testing.assert_array_equal(src.array[...], stored)
    assert src.attrs["dicom"]["import"]["duplicate_slices_dropped"] == 2


def test_differing_images_at_one_position_are_refused(tmp_path):
    def phase(ds, k, arr):
        ds.AcquisitionNumber = 1 + k % 2
        return arr

    positions = [[0.0, 0.0, float(k // 2)] for k in range(6)]  # pairs of different images at 3 positions
    make_series(tmp_path / "s", n=6, positions=positions, base="MR_small.dcm", edit=phase)
    with pytest.raises(MzarrFormatError, match=r"several different images.*AcquisitionNumber 1, 2.*series="):
        open_dicom(tmp_path / "s")


def test_multi_echo_series_split_into_parts(tmp_path):
    uid = generate_uid()

    def echo(n):
        def edit(ds, k, arr):
            ds.EchoNumbers = n
            return arr

        return edit

    e1, _ = make_series(tmp_path / "s", n=4, uid=uid, base="MR_small.dcm", edit=echo(1), prefix="e1_")
    e2, _ = make_series(tmp_path / "s", n=4, uid=uid, base="MR_small.dcm", edit=echo(2), prefix="e2_", seed=3)
    found = list_dicom_series(tmp_path / "s")
    assert [s.subset for s in found] == ["echo 1", "echo 2"] and {s.uid for s in found} == {uid}
    with pytest.warns(MzarrWarning, match="holds 2 image series; reading #0"):
        src = open_dicom(tmp_path / "s")
    np.testing.assert_array_equal(src.array[...], e1)
    src = opened(tmp_path / "s", series="#1")
    np.testing.assert_array_equal(src.array[...], e2)
    with pytest.warns(MzarrWarning, match=rf"series='{uid}' matches 2; reading #0 series 7 \"AX 2.5mm\" \(echo 1\)"):
        open_dicom(tmp_path / "s", series=uid)
    assert src.attrs["dicom"]["import"]["subset"] == "echo 2"


# -- several series, choosing, listing ---------------------------------------------------------------------------------
def test_two_series_largest_by_default_and_chosen_by_uid_number_index(tmp_path):
    big, uid_big = make_series(tmp_path / "mixed", n=5, number=3, description="AX big")
    small, uid_small = make_series(
        tmp_path / "mixed", n=3, number=8, base="MR_small.dcm", description="small", prefix="mr_"
    )
    found = list_dicom_series(tmp_path / "mixed")
    assert [(s.index, s.number, s.slices, s.uid) for s in found] == [(0, 3, 5, uid_big), (1, 8, 3, uid_small)]
    assert found[0].rows == found[0].cols == 128 and found[1].dtype == "int16" and len(found[1].files) == 3
    assert found[0].spacing == pytest.approx((2.5, 0.661468, 0.661468))
    assert json.loads(json.dumps(dataclasses.asdict(found[1])))["description"] == "small"  # plain data for the app
    lines = format_dicom_series(found, chosen=found[1])
    assert len(lines) == 2 and lines[1].startswith("* #1") and lines[0].startswith("  #0")
    assert 'series 8  MR "small"  3 x 64 x 64 int16  spacing 2.5 x 0.3125 x 0.3125 mm  (3 files)' in lines[1]
    with pytest.warns(
        MzarrWarning, match=r"holds 2 image series; reading #0 series 3 \"AX big\" \(5 slices, the largest\)"
    ) as rec:
        src = open_dicom(tmp_path / "mixed")
    assert "#1  series 8" in str(rec[0].message)  # the others are listed
    assert src.array.shape == (5, 128, 128)
    for choice in (uid_small, "8", 8, np.int64(8), "#1", found[1]):  # a number is a SeriesNumber, "#N" the N-th
        src = opened(tmp_path / "mixed", series=choice)
        np.testing.assert_array_equal(src.array[...], small)
    with pytest.raises(MzarrFormatError, match=r"(?s)no series matches '99'.*#0  series 3"):
        open_dicom(tmp_path / "mixed", series="99")
    with pytest.raises(MzarrFormatError, match=r'no series has SeriesNumber 1 \(series="#1" is the position\)'):
        open_dicom(tmp_path / "mixed", series=1)
    with pytest.raises(MzarrFormatError, match="there is no series #5"):
        open_dicom(tmp_path / "mixed", series="#5")


def test_series_number_means_the_same_in_python_and_the_cli(tmp_path, capsys):
    """QA: read_options={'series': 5} took the 6th listed series while ``--series 5`` took SeriesNumber 5. Series
    numbered 1 and 2 (listed #0 = SeriesNumber 1, #1 = SeriesNumber 2): 1 and "1" both mean SeriesNumber 1."""
    from mzarr_core import convert
    from mzarr_core.cli import main

    make_series(tmp_path / "mixed", n=5, number=2)
    small, _ = make_series(tmp_path / "mixed", n=3, number=1, base="MR_small.dcm", prefix="mr_")
    listed = list_dicom_series(tmp_path / "mixed")
    assert [s.number for s in listed] == [1, 2]  # position 1 is SeriesNumber 2: the two readings differ
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert(tmp_path / "mixed", tmp_path / "py.mzarr", read_options={"series": 1})
        assert main(["convert", str(tmp_path / "mixed"), str(tmp_path / "cli.mzarr"), "--series", "1", "--quiet"]) == 0
    with Mzarr(tmp_path / "py.mzarr") as a, Mzarr(tmp_path / "cli.mzarr") as b:
        assert a.shape == b.shape == (3, 64, 64) and np.array_equal(a.numpy(), b.numpy())
        assert np.array_equal(a.numpy(), small)


def test_one_file_of_a_series_reads_its_whole_series(tmp_path):
    make_series(tmp_path / "f", n=5, number=3)
    small, uid_small = make_series(tmp_path / "f", n=3, number=8, base="MR_small.dcm", prefix="mr_")
    picked = sorted((tmp_path / "f").glob("mr_*.dcm"))[1]
    src = opened(picked)  # no "several series" warning: the user picked this one
    np.testing.assert_array_equal(src.array[...], small)
    assert [s.uid for s in list_dicom_series(picked)] == [uid_small]


def test_cli_info_and_the_reader_pick_the_same_series(tmp_path, capsys):
    """QA: the CLI's ``info`` repeated the reader's series rules and missed one: for a picked file of a series split
    in two parts, ``info`` described the larger part while ``convert`` read the picked file's part. One rule now
    (``pick_series``), used by both: every way of naming a series chooses the same one in each."""
    from mzarr_core.cli import main

    uid = generate_uid()
    big, _ = make_series(tmp_path / "f", n=5, uid=uid, number=4)  # 128 x 128
    small, _ = make_series(tmp_path / "f", n=3, uid=uid, number=4, base="MR_small.dcm", prefix="mr_")  # 64 x 64
    picked = sorted((tmp_path / "f").glob("mr_*.dcm"))[1]
    found = list_dicom_series(picked)
    assert [(s.slices, s.picked) for s in found] == [(5, False), (3, True)]
    assert pick_series(found) is found[1]
    assert main(["info", str(picked), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["chosen_series"] == 1 and info["shape"] == [3, 64, 64]
    assert main(["convert", str(picked), str(tmp_path / "picked.mzarr"), "--quiet"]) == 0
    capsys.readouterr()
    with Mzarr(tmp_path / "picked.mzarr") as m:
        np.testing.assert_array_equal(m.numpy(), small)
    listed = list_dicom_series(tmp_path / "f")
    assert not any(s.picked for s in listed)
    for choice, expected in ((None, 0), ("#1", 1), ("4", 0), (4, 0), (uid, 0), (listed[1], 1), ("99", None),
                             ("#2", None), (2, None)):
        chosen = pick_series(listed, choice)
        assert (chosen.index if chosen is not None else None) == expected, choice
        if expected is None:
            with pytest.raises(MzarrFormatError, match="give series= as an index"):
                open_dicom(tmp_path / "f", series=choice)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            src = open_dicom(tmp_path / "f", series=choice)
        ct = read("CT_small.dcm")  # the big part is CT: stored values rescaled to Hounsfield units
        hu = big.astype(np.int32) * int(ct.RescaleSlope) + int(ct.RescaleIntercept)
        np.testing.assert_array_equal(src.array[...], hu if expected == 0 else small)
    assert main(["info", str(tmp_path / "f"), "--series", "#1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chosen_series"] == 1


def test_zip_and_non_image_files(tmp_path):
    stored, _ = make_series(tmp_path / "s" / "series", n=5, base="MR_small.dcm")
    shutil.copy(bundled("test-SR.dcm"), tmp_path / "s" / "report.dcm")
    shutil.copy(bundled("rtplan.dcm"), tmp_path / "s" / "series" / "plan.dcm")
    (tmp_path / "s" / "notes.txt").write_text("not an image")
    (tmp_path / "s" / "README").write_text("no extension, not DICOM either")
    src = opened(tmp_path / "s")
    np.testing.assert_array_equal(src.array[...], stored)
    skipped = src.attrs["dicom"]["import"]["skipped_files"]
    assert skipped == {"Comprehensive SR Storage": 1, "RT Plan Storage": 1, "not DICOM": 2}
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted((tmp_path / "s").rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(tmp_path))
        zf.writestr("__MACOSX/s/._img0000.dcm", b"resource fork")
    zsrc = opened(archive)
    try:
        np.testing.assert_array_equal(zsrc.array[...], stored)
        np.testing.assert_array_equal(zsrc.array[2:4, 10:20, 5], stored[2:4, 10:20, 5])
        assert zsrc.spacing == src.spacing and zsrc.attrs["dicom"]["import"]["skipped_files"] == skipped
        assert [s.slices for s in list_dicom_series(archive)] == [5]
    finally:
        zsrc.owner.close()
    assert is_dicom_path(archive)


def test_bad_inputs_say_what_was_found(tmp_path):
    with pytest.raises(MzarrFileNotFoundError):
        open_dicom(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MzarrFormatError, match="holds no files"):
        open_dicom(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("hello")
    (tmp_path / "text" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(MzarrFormatError, match="holds 2 file.s. but none is DICOM"):
        open_dicom(tmp_path / "text")
    with pytest.raises(MzarrFormatError, match="is not a DICOM file"):
        open_dicom(tmp_path / "text" / "a.txt")
    noimg = tmp_path / "noimg"
    noimg.mkdir()
    shutil.copy(bundled("test-SR.dcm"), noimg / "sr.dcm")
    shutil.copy(bundled("rtplan.dcm"), noimg / "plan.dcm")
    dicomdir = sorted((TEST_FILES / "dicomdirtests").rglob("DICOMDIR"))
    if dicomdir:
        shutil.copy(dicomdir[0], noimg / "DICOMDIR")
    with pytest.raises(MzarrFormatError, match=r"no images with pixel data \(found: .*Comprehensive SR Storage") as exc:
        open_dicom(noimg)
    if dicomdir:
        assert "DICOMDIR is only an index" in str(exc.value)
    with pytest.raises(MzarrFormatError, match="without pixel data"):
        open_dicom(noimg / "sr.dcm")
    if dicomdir:  # a DICOMDIR given as the path means its folder
        stored, _ = make_series(noimg / "IMAGES", n=3, base="MR_small.dcm")
        np.testing.assert_array_equal(opened(noimg / "DICOMDIR").array[...], stored)
        assert is_dicom_path(noimg / "DICOMDIR")
    zip_path = tmp_path / "nothing.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("a.txt", "x")
    with pytest.raises(MzarrFormatError, match="zip archive nothing.zip holds 1 file.s. but none is DICOM"):
        open_dicom(zip_path)


def test_damaged_files_are_named(tmp_path):
    """A slice cut short inside its header is skipped with a warning (and the gap it leaves is warned too); alone, it
    is refused; pixel data cut short are refused when the series is opened (a file cut after that: when read),
    naming the file and what to do."""
    stored, _ = make_series(tmp_path / "s", n=5, base="MR_small.dcm")
    victim = sorted((tmp_path / "s").iterdir())[0]
    z = float(read(victim).ImagePositionPatient[2])
    victim.write_bytes(victim.read_bytes()[:700])
    with pytest.warns(MzarrWarning) as record:
        src = open_dicom(tmp_path / "s")
    text = " ".join(str(w.message) for w in record)
    assert f"1 damaged or incomplete DICOM file(s) skipped: {victim.name}" in text
    assert src.array.shape[0] == 4 and src.attrs["dicom"]["import"]["skipped_files"] == {"unreadable DICOM": 1}
    z0 = float(read(bundled("MR_small.dcm")).ImagePositionPatient[2])
    kept = [k for k in range(5) if abs(z0 + 2.5 * k - z) > 1e-3]
    np.testing.assert_array_equal(src.array[...], stored[kept])
    with pytest.raises(MzarrFormatError, match="is a damaged or incomplete DICOM file"):
        open_dicom(victim)
    shutil.copy(bundled("MR_truncated.dcm"), _mkdir(tmp_path / "t") / "cut.dcm")
    with pytest.raises(MzarrFormatError, match=r"cut\.dcm \(its pixel data need 8192 bytes, it holds 8130\): the "
                                               r"file is cut short .*; copy or export it again"):
        open_dicom(tmp_path / "t" / "cut.dcm")
    whole = sorted((tmp_path / "s").iterdir())[1]
    with pytest.warns(MzarrWarning) as again:  # the first slice is still damaged: skipped, and the gap it leaves
        src = open_dicom(tmp_path / "s")
    said = " ".join(str(w.message) for w in again)
    assert f"skipped: {victim.name}" in said and "uneven slice gaps" in said
    whole.write_bytes(whole.read_bytes()[:-1000])  # cut after the series was opened
    with pytest.raises(MzarrFormatError, match=rf"{whole.name}: frame 0 is truncated \(\d+ of 8192 bytes\).*copy "
                                               "or export the series again.*move the file out of the folder"):
        src.array[...]


def test_missing_pydicom_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(MzarrFormatError, match=r'pip install "mzarr\[dicom\]"'):
        open_dicom(tmp_path)
    with pytest.raises(MzarrFormatError, match=r'pip install "mzarr\[dicom\]"'):
        list_dicom_series(tmp_path)


def test_is_dicom_path(tmp_path):
    make_series(tmp_path / "d" / "deep" / "er", n=2, base="MR_small.dcm")
    assert is_dicom_path(tmp_path / "d")
    assert is_dicom_path(next((tmp_path / "d" / "deep" / "er").iterdir()))
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.txt").write_text("x" * 200)
    assert not is_dicom_path(tmp_path / "empty")
    assert not is_dicom_path(tmp_path / "x.txt")
    assert not is_dicom_path(tmp_path / "missing")
    many = tmp_path / "many"
    many.mkdir()
    for i in range(40):  # bounded: a DICOM file after the first 16 others is not looked for
        (many / f"a{i:02d}.txt").write_text("x")
    shutil.copy(bundled("MR_small.dcm"), many / "z.dcm")
    assert not is_dicom_path(many)


# -- pixels: encodings, colour, multi-frame -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_padded.dcm",
    ],
)
def test_lossless_encodings_decode_to_the_original(tmp_path, name):
    shutil.copy(bundled(name), tmp_path / name)
    src = opened(tmp_path / name)
    assert src.axes == "yx" and src.spacing == pytest.approx((0.3125, 0.3125))
    np.testing.assert_array_equal(src.array[...], pixels(bundled("MR_small.dcm")))


@pytest.mark.parametrize(
    "name",
    [
        "693_J2KI.dcm",  # JPEG 2000 CT, rescaled to HU
        "J2K_pixelrep_mismatch.dcm",  # codestream unsigned, header signed: sign-corrected like pydicom
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",  # YBR_FULL JPEG baseline
        "SC_rgb_dcmtk_+eb+cy+np.dcm",  # YBR_FULL_422
        "SC_rgb_jpeg.dcm",  # RGB JPEG without colour transform
        "SC_rgb_gdcm_KY.dcm",
        "examples_jpeg2k.dcm",  # YBR_RCT
        "SC_rgb_rle_16bit.dcm",
        "SC_rgb_small_odd_big_endian.dcm",
        "SC_ybr_full_422_uncompressed.dcm",
        "examples_palette.dcm",
        "image_dfl.dcm",  # deflated
        "liver_1frame.dcm",  # 1-bit segmentation
    ],
)
def test_encodings_match_pydicom(tmp_path, name):
    shutil.copy(bundled(name), tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MzarrWarning)
        src = open_dicom(tmp_path / name)
    ds = read(name)
    ref = ds.pixel_array
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        ref = apply_color_lut(ref, ds)
    rescale = src.attrs["dicom"].get("rescale", {})
    if rescale.get("dtype") == "int16":
        ref = ref.astype(np.int32) + int(ds.RescaleIntercept)
    got = src.array[...]
    assert src.axes == ("yxc" if ref.ndim == 3 else "yx") and got.dtype == src.array.dtype
    np.testing.assert_array_equal(got, ref)


def test_codecs_pydicom_cannot_decode_here(tmp_path):
    """Lossless JPEG (process 14) RGB equals the RLE original; 12-bit JPEG extended and JPEG-LS near-lossless decode
    to the header's size and type."""
    shutil.copy(bundled("SC_rgb_jpeg_gdcm.dcm"), tmp_path / "ll.dcm")
    np.testing.assert_array_equal(opened(tmp_path / "ll.dcm").array[...], pixels(bundled("SC_rgb_rle.dcm")))
    for name, shape, dtype in (
        ("JPGExtended.dcm", (1024, 256), np.uint16),
        ("JPEGLSNearLossless_16.dcm", (50, 10), np.uint16),
        ("SC_rgb_jls_lossy_line.dcm", (100, 100, 3), np.uint8),
    ):
        d = tmp_path / name
        d.mkdir()
        shutil.copy(bundled(name), d / name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MzarrWarning)  # no PixelSpacing in these
            arr = open_dicom(d / name).array[...]
        assert arr.shape == shape and arr.dtype == dtype and arr.max() > 0


def test_series_of_mixed_transfer_syntaxes_and_colour_series(tmp_path):
    """One series whose slices use different encodings; an RGB series becomes zyxc."""
    ref = pixels(bundled("MR_small.dcm"))
    names = ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"]
    uid = generate_uid()
    for k, name in enumerate(names):
        ds = read(name)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.ImagePositionPatient = [0, 0, 3 - k]
        ds.save_as(_mkdir(tmp_path / "mixed") / f"{k}.dcm")
    src = opened(tmp_path / "mixed")
    np.testing.assert_array_equal(src.array[...], np.stack([ref] * 4))
    rgb = pixels(bundled("SC_rgb_rle.dcm"))
    uid = generate_uid()
    for k in range(3):
        ds = read("SC_rgb_rle.dcm")
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 2 * k], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.5, 0.25]
        ds.save_as(_mkdir(tmp_path / "rgb") / f"{k}.dcm")
    src = opened(tmp_path / "rgb")
    assert src.axes == "zyxc" and src.array.shape == (3, 100, 100, 3) and src.spacing == (2.0, 0.5, 0.25)
    np.testing.assert_array_equal(src.array[1], rgb)


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def test_enhanced_multiframe_with_functional_groups(tmp_path):
    """An enhanced MR-like multi-frame file: frames stored out of position order, positions/orientation/spacing and
    rescale in per-frame and shared functional groups."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = read("MR_small.dcm")
    base = ds.pixel_array
    n = 5
    zs = [4.0, 0.0, 3.0, 1.0, 2.0]  # frame k lies at z = zs[k] * 1.5
    frames = [(base.astype(np.int32) + 100 * k).astype(np.int16) for k in range(n)]
    ds.NumberOfFrames = n
    ds.PixelData = np.stack(frames).tobytes()
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "RepetitionTime"):
        delattr(ds, kw)

    def item(**kw):
        it = Dataset()
        for k, v in kw.items():
            setattr(it, k, v)
        return it

    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])])
    shared.PixelMeasuresSequence = Sequence([item(PixelSpacing=[0.5, 0.4], SliceThickness=3.0)])
    shared.PixelValueTransformationSequence = Sequence([item(RescaleSlope=1, RescaleIntercept=-100, RescaleType="US")])
    shared.MRTimingAndRelatedParametersSequence = Sequence([item(RepetitionTime=2000.0, FlipAngle=90)])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    for k in range(n):
        fg = Dataset()
        fg.PlanePositionSequence = Sequence([item(ImagePositionPatient=[10.0, 20.0, zs[k] * 1.5])])
        per.append(fg)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.save_as(tmp_path / "enhanced.dcm")
    src = opened(tmp_path / "enhanced.dcm")
    assert src.axes == "zyx" and src.spacing == pytest.approx((1.5, 0.5, 0.4))
    order = np.argsort(zs)
    expected = np.stack([frames[k] for k in order]).astype(np.int32) - 100
    np.testing.assert_array_equal(src.array[...], expected)
    assert src.array.dtype == np.int16 and src.attrs["dicom"]["rescale"]["type"] == "US"
    assert src.attrs["dicom"]["RepetitionTime"] == 2000.0 and src.attrs["dicom"]["PixelSpacing"] == [0.5, 0.4]
    before = src.array.frames_read
    np.testing.assert_array_equal(src.array[3, 5:9, 7], expected[3, 5:9, 7])
    assert src.array.frames_read == before + 1  # one frame of the multi-frame file, not all of them


def test_rt_dose_grid_multiframe(tmp_path):
    shutil.copy(bundled("rtdose.dcm"), tmp_path / "dose.dcm")
    src = opened(tmp_path / "dose.dcm")
    assert src.axes == "zyx" and src.array.shape == (15, 10, 10) and src.spacing == pytest.approx((5.0, 10.0, 10.0))
    np.testing.assert_array_equal(src.array[...], pixels(bundled("rtdose.dcm")))
    assert src.attrs["dicom"]["DoseGridScaling"] > 0


def test_undecodable_slice_and_unsupported_encoding_are_named(tmp_path):
    ds = read("MR_small_jp2klossless.dcm")
    data = bytearray(ds.PixelData)
    data[40:200] = b"\x00" * 160  # damaged codestream inside the fragment
    ds.PixelData = bytes(data)
    ds.save_as(_mkdir(tmp_path / "bad") / "broken.dcm")
    src = opened(tmp_path / "bad" / "broken.dcm")
    with pytest.raises(MzarrFormatError, match=r"broken\.dcm: a slice could not be decoded .*JPEG 2000"):
        src.array[0]
    ds = read("MR_small_RLE.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video
    ds.save_as(_mkdir(tmp_path / "video") / "video.dcm")
    with pytest.raises(MzarrFormatError, match=r"MPEG2.*cannot decode"):
        open_dicom(tmp_path / "video" / "video.dcm")


# -- rescale --------------------------------------------------------------------------------------------------------
def _with(**tags):
    def edit(ds, k, arr):
        for key, value in tags.items():
            setattr(ds, key, value(k) if callable(value) else value)
        return arr

    return edit


def test_rescale_proved_by_bits_stored_needs_no_pixel_read(tmp_path):
    """uint16 with BitsStored 12 and intercept -1024: int16 without reading any slice at open."""

    def u12(ds, k, arr):
        ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
        out = (arr.astype(np.int32) % 4096).astype(np.uint16)
        ds.PixelData = out.tobytes()
        return out

    stored, _ = make_series(tmp_path / "s", n=4, edit=u12)
    src = opened(tmp_path / "s")
    assert src.array.frames_read == 0 and src.array.dtype == np.int16
    assert "checked_by" not in src.attrs["dicom"]["rescale"]
    np.testing.assert_array_equal(src.array[...], stored.astype(np.int32) - 1024)


def test_inexact_rescale_is_recorded_not_applied(tmp_path):
    stored, _ = make_series(tmp_path / "s", n=3, edit=_with(RescaleSlope="2.5", RescaleIntercept="-10"))
    with pytest.warns(MzarrWarning, match="RescaleSlope 2.5 / RescaleIntercept -10 not applied"):
        src = open_dicom(tmp_path / "s")
    assert src.array.dtype == np.int16
    np.testing.assert_array_equal(src.array[...], stored)
    assert src.attrs["dicom"]["rescale"] == {
        "slope": 2.5,
        "intercept": -10.0,
        "stored_dtype": "int16",
        "applied": False,
        "note": "stored values kept (the rescale is not an integer shift); values = stored * slope + intercept",
        "type": "HU",
    }


def test_rescale_beyond_int16_is_recorded_not_applied(tmp_path):
    stored, _ = make_series(tmp_path / "s", n=2, edit=_with(RescaleIntercept="32000"))
    with pytest.warns(MzarrWarning, match="values would not fit int16"):
        src = open_dicom(tmp_path / "s")
    np.testing.assert_array_equal(src.array[...], stored)
    assert src.attrs["dicom"]["rescale"]["applied"] is False


def test_per_slice_rescale(tmp_path):
    stored, _ = make_series(tmp_path / "i", n=3, edit=_with(RescaleIntercept=lambda k: str(-1000 - 10 * k)))
    with pytest.warns(MzarrWarning, match=r"RescaleIntercept differs between slices \(-1020..-1000\); applied"):
        src = open_dicom(tmp_path / "i")
    assert src.array.dtype == np.int16
    np.testing.assert_array_equal(src.array[...], stored.astype(np.int32) - 1000 - 10 * np.arange(3)[:, None, None])
    stored, _ = make_series(tmp_path / "f", n=3, edit=_with(RescaleSlope=lambda k: str(0.5 + k), RescaleIntercept="3"))
    with pytest.warns(MzarrWarning, match="differ between slices.*float32"):
        src = open_dicom(tmp_path / "f")
    assert src.array.dtype == np.float32
    slopes = (0.5 + np.arange(3))[:, None, None]
    np.testing.assert_array_equal(src.array[...], (stored * slopes + 3).astype(np.float32))
    assert src.attrs["dicom"]["rescale"]["dtype"] == "float32"


# -- laziness -----------------------------------------------------------------------------------------------------
def test_only_requested_slices_are_read(tmp_path, monkeypatch):
    stored, _ = make_series(tmp_path / "s", n=40, base="MR_small.dcm")
    calls = []
    real = pydicom.dcmread

    def spy(*args, **kwargs):
        calls.append(kwargs.get("stop_before_pixels", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", spy)
    src = opened(tmp_path / "s")
    assert calls and all(calls)  # headers only: every dcmread stopped before the pixels
    reads = []
    real_native = dicom._read_native

    def count(fh, file, index):
        reads.append(Path(file.name).name)
        return real_native(fh, file, index)

    monkeypatch.setattr(dicom, "_read_native", count)
    block = src.array[10:13, 4:60:2]
    np.testing.assert_array_equal(block, stored[10:13, 4:60:2])
    frames = src.array._frames
    assert reads == [Path(frames[z].file.name).name for z in (10, 11, 12)]
    np.testing.assert_array_equal(src.array[-1, 3], stored[-1, 3])
    np.testing.assert_array_equal(src.array[[0, 5]], stored[[0, 5]])
    assert src.array[5:5].shape == (0, 64, 64)
    assert len(reads) == 6 and src.array.frames_read == 6


def test_compressed_slices_decoded_once_for_tiled_block_reads(tmp_path):
    """A writer reads each z-block once per y/x tile: compressed slices are decoded once (bounded LRU), not per tile."""
    ref = pixels(bundled("MR_small.dcm"))
    uid = generate_uid()
    for k in range(6):
        ds = read("MR_small_jp2klossless.dcm")
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.ImagePositionPatient = [0, 0, k]
        ds.save_as(_mkdir(tmp_path / "j2k") / f"{k}.dcm")
    volume = opened(tmp_path / "j2k").array

    def tiles():
        return np.block([[volume[:, :32, :32], volume[:, :32, 32:]], [volume[:, 32:, :32], volume[:, 32:, 32:]]])

    np.testing.assert_array_equal(tiles(), np.stack([ref] * 6))
    assert volume.frames_read == 6
    volume.close()
    volume.cache_bytes = 0
    np.testing.assert_array_equal(tiles(), np.stack([ref] * 6))
    assert volume.frames_read == 6 + 4 * 6


# -- patient information -------------------------------------------------------------------------------------------
def test_phi_left_out_by_default_and_kept_on_request(tmp_path):
    make_series(tmp_path / "s", n=3, edit=_with(WindowCenter=["40", "-600"], WindowWidth=["400", "1500"]))
    ds = read("CT_small.dcm")
    src = opened(tmp_path / "s")
    block = src.attrs["dicom"]
    text = json.dumps(src.attrs)
    for value in (str(ds.PatientName), ds.PatientID, ds.StudyDate, ds.InstitutionName, ds.StudyInstanceUID):
        assert value and value not in text
    computed = {"TransferSyntaxUID", "ImagePositionPatient", "geometry", "rescale", "import"}
    assert set(block) <= set(SAFE_KEYWORDS) | computed
    assert block["Modality"] == "CT" and block["SeriesNumber"] == 7 and block["SeriesDescription"] == "AX 2.5mm"
    assert block["WindowCenter"] == [40, -600] and block["WindowWidth"] == [400, 1500]
    assert block["KVP"] and block["Manufacturer"] and block["ConvolutionKernel"]
    assert block["import"]["phi"].startswith("removed") and src.attrs["source"] == "DICOM series"
    kept_src = opened(tmp_path / "s", keep_phi=True)
    assert kept_src.attrs["source"] == "s"
    kept = kept_src.attrs["dicom"]
    assert kept["PatientName"] == str(ds.PatientName) and kept["PatientID"] == ds.PatientID
    assert kept["StudyDate"] == ds.StudyDate and kept["InstitutionName"] == ds.InstitutionName
    assert set(kept) - set(block) <= set(PHI_KEYWORDS) and kept["import"]["phi"] == "kept"
    json.dumps(kept)


def test_burned_in_annotation_is_warned(tmp_path):
    make_series(tmp_path / "s", n=2, base="MR_small.dcm", edit=_with(BurnedInAnnotation="YES"))
    with pytest.warns(MzarrWarning, match="BurnedInAnnotation is YES"):
        open_dicom(tmp_path / "s")


# -- into a .mzarr and back ----------------------------------------------------------------------------------------
def test_round_trip_through_mzarr(tmp_path):
    stored, _ = make_series(tmp_path / "s", n=9)
    src = opened(tmp_path / "s")
    out = Mzarr(src.array, axes=src.axes, spacing=src.spacing, unit=src.unit, attrs=src.attrs).save(
        tmp_path / "ct.mzarr"
    )
    src.owner.close()
    back = Mzarr(out)
    assert back.axes == "zyx" and back.spacing == pytest.approx(src.spacing) and back.unit == "millimeter"
    np.testing.assert_array_equal(back[...], stored.astype(np.int32) - 1024)
    assert back.attrs()["dicom"]["rescale"]["applied"] is True
    assert back.attrs()["dicom"]["geometry"]["affine_lps"] == src.attrs["dicom"]["geometry"]["affine_lps"]


@pytest.mark.skipif(not REAL_CT.is_dir(), reason=f"real CT series {REAL_CT} not present")
def test_real_ct_series():
    """275 real CT slices (LIDC, Philips, implicit VR, uint16 BitsStored 12, intercept -1000)."""
    start = time.perf_counter()
    src = opened(REAL_CT)
    assert time.perf_counter() - start < 10
    assert src.array.shape == (275, 512, 512) and src.array.dtype == np.int16 and src.array.frames_read == 0
    assert src.spacing == pytest.approx((1.0, 0.78125, 0.78125))
    headers = []
    for p in REAL_CT.glob("*.dcm"):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        headers.append((float(ds.ImagePositionPatient[2]), p))
    headers.sort()
    for z in (0, 137, 274):
        ds = pydicom.dcmread(headers[z][1])
        ref = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        np.testing.assert_array_equal(src.array[z], ref)
    assert src.array.frames_read == 3
    block = src.attrs["dicom"]
    assert block["Modality"] == "CT" and "PatientID" not in block and "AccessionNumber" not in block
    assert block["geometry"]["slice_step_mm"] == pytest.approx(1.0)
    assert isinstance(list_dicom_series(REAL_CT)[0], DicomSeries)


@pytest.mark.skipif(not REAL_CT.is_dir(), reason=f"real CT series {REAL_CT} not present")
def test_a_real_ct_slice_cut_short_is_named_with_what_to_do(tmp_path, capsys):
    """QA: a CT series with one slice cut short (an interrupted copy) failed the conversion with a decoder error and
    no advice. Now it is refused when the series is opened, before anything is written: the file named, how much
    is missing, and what to do; without it, the series converts and the gap it leaves is warned, its true slice
    positions kept in the attributes (never silently closed)."""
    from mzarr_core.cli import main

    by_z = sorted(REAL_CT.glob("*.dcm"), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True)
                                                           .ImagePositionPatient[2]))
    names = [p.name for p in by_z[100:108]]  # eight adjacent slices, 1 mm apart
    folder = _mkdir(tmp_path / "ct")
    for name in names:
        shutil.copy(REAL_CT / name, folder / name)
    victim = folder / names[3]
    full = victim.stat().st_size
    victim.write_bytes(victim.read_bytes()[: full - 200_000])
    with pytest.raises(MzarrFormatError) as info:
        open_dicom(folder)
    message = str(info.value)
    assert f"1 of its 8 files is cut short (damaged or copied incompletely): {victim.name} (its pixel data need " \
           f"524288 bytes, it holds {524288 - 200_000})" in message
    assert "Copy or export the series again from the scanner or PACS" in message
    assert "move that file out of the folder or archive" in message
    assert main(["convert", str(folder), str(tmp_path / "ct.mzarr"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "mzarr convert: error: #0 series 30026: 1 of its 8 files is cut short" in err and "Traceback" not in err
    assert not (tmp_path / "ct.mzarr").exists()
    victim.unlink()  # the advice followed: the other seven slices, and the gap said
    with pytest.warns(MzarrWarning, match="uneven slice gaps: steps between slice positions range from 1 to 2 mm"):
        src = open_dicom(folder)
    positions = src.attrs["dicom"]["geometry"]["slice_positions_mm"]
    assert src.array.shape[0] == 7 and np.diff(positions).tolist().count(2.0) == 1


def test_compressed_slices_cut_short_are_named(tmp_path):
    """RLE slices (pydicom's MR_small_RLE.dcm, three positions), one cut short: refused at open in a folder (its
    fragments run past the end); in a zip, where nothing is walked, the decoder's error says the same advice."""
    ds0 = read("MR_small_RLE.dcm")
    folder = _mkdir(tmp_path / "rle")
    uid = generate_uid()
    for k in range(3):
        ds = copy.deepcopy(ds0)
        ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.InstanceNumber = uid, generate_uid(), k + 1
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = [0.0, 0.0, 2.5 * k]
        ds.save_as(folder / f"s{k}.dcm")
    cut = folder / "s1.dcm"
    size = cut.stat().st_size - 2000
    cut.write_bytes(cut.read_bytes()[:size])
    with pytest.raises(MzarrFormatError, match=rf"1 of its 3 files is cut short .*: s1\.dcm \(its pixel data run to "
                                               rf"byte \d+ \(a fragment of \d+ bytes at \d+\), it holds {size}\)"):
        open_dicom(folder)
    with zipfile.ZipFile(tmp_path / "rle.zip", "w") as zf:
        for k in range(3):
            zf.write(folder / f"s{k}.dcm", f"s{k}.dcm")
    src = opened(tmp_path / "rle.zip")
    np.testing.assert_array_equal(src.array[0], ds0.pixel_array)
    with pytest.raises(MzarrFormatError, match=r"rle\.zip:s1\.dcm: a slice could not be decoded .*RLE.* The file is "
                                               r"damaged or incomplete; copy or export the series again"):
        src.array[1]


def test_window_of_the_middle_slice_when_slices_differ(tmp_path):
    """Scanners set a window per slice (an MR's dark edge slices get a narrow one): the middle slice's is kept, said
    in a warning; a series with one window keeps it without a word."""
    def window(ds, k, arr):
        ds.WindowCenter, ds.WindowWidth = (str(40 + 100 * k), str(400 + 10 * k))
        return arr

    make_series(tmp_path / "vary", n=5, edit=window)
    with pytest.warns(MzarrWarning, match="window centre/width differ between slices"):
        src = open_dicom(tmp_path / "vary")
    block = src.attrs["dicom"]
    assert (block["WindowCenter"], block["WindowWidth"]) == (240, 420)  # slice 2 of 0..4 along the normal
    make_series(tmp_path / "same", n=5, edit=_with(WindowCenter="40", WindowWidth="400"))
    same = opened(tmp_path / "same")  # no warning
    assert (same.attrs["dicom"]["WindowCenter"], same.attrs["dicom"]["WindowWidth"]) == (40, 400)
