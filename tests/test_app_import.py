"""GUI tests of importing in the viewer (issue 9, deliverable 6): the import dialog driven through its real widgets
(series list, compression, estimated size, warnings, destination), the progress dialog's Cancel, the result opened
in the window; DICOM folders built from pydicom's bundled CT_small.dcm, nibabel's bundled NIfTI volume, a
hand-written NRRD; drops; command-line opening of a non-.mzarr; Help > About > Licences."""

from __future__ import annotations

import copy
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QDialog, QPushButton

import app_fixtures
from app_fixtures import wait_idle

isolated_settings = app_fixtures.isolated_settings  # the shared fixtures (autouse: settings kept out of the user's)
window = app_fixtures.window

pydicom = pytest.importorskip("pydicom")
from pydicom.uid import generate_uid  # noqa: E402

from mzarr_core import Mzarr, formats  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::mzarr_core.errors.MzarrWarning")  # the import re-reads the input

TEST_FILES = Path(os.path.dirname(pydicom.data.__file__)) / "test_files"
ESTIMATE_FACTOR = 1.5  # the size estimate is asserted within this factor of the real file (measured: 1.00-1.25)


# -- inputs ------------------------------------------------------------------------------------------------------------
def ct_series(folder: Path, positions_mm: list[float], *, number: int, description: str, gain: int,
              prefix: str) -> np.ndarray:
    """Copies of pydicom's bundled CT_small.dcm at ``positions_mm`` along the slice normal (one series, its own
    UID), each slice's pixels varied; files named in an order unrelated to the positions. Returns the expected
    volume in position order, in Hounsfield units (stored - 1024, as the reader's exact rescale gives)."""
    src = TEST_FILES / "CT_small.dcm"
    if not src.exists():
        pytest.skip("pydicom's bundled CT_small.dcm is missing")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds0 = pydicom.dcmread(src)
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    origin = np.asarray([float(v) for v in ds0.ImagePositionPatient])
    iop = [float(v) for v in ds0.ImageOrientationPatient]
    normal = np.cross(iop[:3], iop[3:])
    base = ds0.pixel_array
    out = []
    for k, pos in enumerate(positions_mm):
        ds = copy.deepcopy(ds0)
        ds.SeriesInstanceUID = uid
        ds.SeriesNumber = number
        ds.SeriesDescription = description
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = [f"{v:.6f}" for v in origin + pos * normal]
        ds.InstanceNumber = 50 - k
        arr = (base.astype(np.int64) + gain * (k + 1)).astype(base.dtype)
        ds.PixelData = arr.tobytes()
        ds.save_as(folder / f"{prefix}{(7 * k) % 11:03d}.dcm", enforce_file_format=True)
        out.append(arr.astype(np.int32) - 1024)
    return np.stack(out).astype(np.int16)


@pytest.fixture
def dicom_folder(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A folder holding two CT series: #3 "AX even" (6 slices, 2.5 mm: the largest, the default) and #7
    "AX uneven" (4 slices at 0, 2.5, 5, 10 mm: uneven gaps, which the reader warns about)."""
    folder = tmp_path / "CT study"
    even = ct_series(folder, [2.5 * k for k in range(6)], number=3, description="AX even", gain=11, prefix="a")
    uneven = ct_series(folder, [0.0, 2.5, 5.0, 10.0], number=7, description="AX uneven", gain=5, prefix="b")
    return folder, even, uneven


def nifti_file() -> Path:
    nib = pytest.importorskip("nibabel")
    path = Path(os.path.dirname(nib.__file__)) / "tests" / "data" / "anatomical.nii"
    if not path.exists():
        pytest.skip("nibabel's bundled anatomical.nii is missing")
    return path


def write_nrrd(path: Path, volume: np.ndarray, spacing: tuple[float, float, float]) -> Path:
    """A raw little-endian NRRD of a zyx uint8 volume (NRRD lists axes fastest first: x y z)."""
    z, y, x = volume.shape
    header = (f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: {x} {y} {z}\nencoding: raw\n"
              f"space: left-posterior-superior\nspace directions: ({spacing[2]},0,0) (0,{spacing[1]},0) "
              f"(0,0,{spacing[0]})\nspace origin: (0,0,0)\n\n")
    path.write_bytes(header.encode("ascii") + np.ascontiguousarray(volume, np.uint8).tobytes())
    return path


def nrrd_volume() -> np.ndarray:
    """A uint8 zyx volume of real pixels: shifted crops of scikit-image's camera picture."""
    from skimage import data

    cam = data.camera()
    return np.stack([cam[3 * i:3 * i + 150, 2 * i:2 * i + 180] for i in range(64)])


# -- helpers -----------------------------------------------------------------------------------------------------------
def wait_plan(qtbot, dlg, series_index: int | None = None) -> None:
    def ready() -> bool:
        if dlg.inspect_error:
            raise AssertionError(dlg.inspect_error)
        return dlg.plan is not None and (series_index is None or dlg.plan.series_index == series_index)

    qtbot.waitUntil(ready, timeout=20000)


def wait_estimate(qtbot, dlg) -> int:
    def ready() -> bool:
        if dlg.estimate_error:
            raise AssertionError(dlg.estimate_error)
        return dlg.estimate is not None

    qtbot.waitUntil(ready, timeout=10000)
    return dlg.estimate.bytes


def cancel_at_once(progress_dialog) -> None:
    progress_dialog.findChild(QPushButton).click()


# -- DICOM ---------------------------------------------------------------------------------------------------------------
def test_dicom_folder_dialog_series_estimate_cancel_and_import(qtbot, window, dicom_folder, tmp_path) -> None:
    """The dialog lists both series with the largest chosen, shows the reader's warnings (several series, then
    the uneven gaps of the picked one), shape/dtype/spacing of the picked series and an estimate; Cancel in the
    progress dialog leaves no file; importing the second series gives its pixels, a file within the estimate's
    factor, opened in the window."""
    folder, even, uneven = dicom_folder
    w = window
    dlg = w.start_import(str(folder))
    assert dlg is not None and w.import_box is dlg and dlg.isVisible()
    wait_plan(qtbot, dlg)
    lst = dlg.series_list
    assert dlg.series_box.isVisible() and lst.count() == 2
    rows = [lst.item(i).text() for i in range(2)]
    assert "AX even" in rows[0] and "6 x 128 x 128" in rows[0] and "AX uneven" in rows[1]
    assert lst.currentRow() == 0 and rows[0].startswith("*")  # the largest, as the library chooses
    assert dlg.fields["shape"].text().startswith("6 × 128 × 128") and dlg.fields["dtype"].text() == "int16"
    assert dlg.fields["spacing"].text() == "2.5 × 0.6615 × 0.6615 mm"
    assert "2 image series" in dlg.warnings_text.toPlainText() and dlg.warnings_box.isVisibleTo(dlg)
    assert dlg.destination() == str(tmp_path / "CT study.mzarr")
    assert dlg.lossless_radio.isChecked() and dlg.lossy_radio.isEnabled()  # int16: lossy offered, not chosen

    second = dlg.plan.series[1].index
    lst.setCurrentRow(1)  # the second series
    wait_plan(qtbot, dlg, series_index=second)
    assert dlg.fields["shape"].text().startswith("4 × 128 × 128") and lst.item(1).text().startswith("*")
    assert dlg.plan.read_options() == {"series": f"#{second}"}  # the N-th listed (a bare number is a SeriesNumber)
    warn = dlg.warnings_text.toPlainText()
    assert "uneven slice gaps" in warn and "2 image series" not in warn
    est = wait_estimate(qtbot, dlg)
    assert "≈" in dlg.estimate_label.text() and "How:" in dlg.estimate_label.text()

    dst = tmp_path / "out" / "ct.mzarr"
    dst.parent.mkdir()
    dlg.dest_edit.setText(str(dst))
    w.progress_hook = cancel_at_once
    qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
    assert w.import_box is None and list(dst.parent.iterdir()) == []  # no file, no temporary left
    assert w.doc is None

    # again, for real: the second series is remembered nowhere, so pick it again
    w.progress_hook = None
    dlg = w.start_import(str(folder))
    wait_plan(qtbot, dlg)
    dlg.series_list.setCurrentRow(1)
    wait_plan(qtbot, dlg, series_index=second)
    est = wait_estimate(qtbot, dlg)
    dlg.dest_edit.setText(str(dst))
    qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
    assert dst.exists(), w.last_error
    got = Mzarr(dst)
    assert got.shape == (4, 128, 128) and got.axes == "zyx"
    np.testing.assert_array_equal(got.numpy(), uneven)
    assert got.spacing == pytest.approx((2.5, 0.661468, 0.661468))
    assert got.attrs()["source"] == "DICOM series"  # the folder's name may be the patient's: left out
    size = dst.stat().st_size
    assert size / ESTIMATE_FACTOR <= est <= size * ESTIMATE_FACTOR, (est, size)
    got.close()
    assert w.doc is not None and w.doc.path == str(dst) and tuple(w.doc.shape) == (4, 128, 128)
    wait_idle(qtbot, w)


def test_dicom_zip_lossy_and_closing_the_dialog(qtbot, window, dicom_folder, tmp_path) -> None:
    """A .zip of the slices imports too; a lossy choice (distance) reaches the file; Cancel in the import dialog
    writes nothing."""
    import zipfile

    folder, even, _uneven = dicom_folder
    z = tmp_path / "series.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(folder.iterdir()):
            if p.name.startswith("a"):
                zf.write(p, f"DICOM/{p.name}")
    w = window
    dlg = w.start_import(str(z))
    wait_plan(qtbot, dlg)
    assert "zip" in dlg.fields["format"].text() and dlg.series_list.count() == 1
    dlg.reject()
    assert w.import_box is None and not (tmp_path / "series.mzarr").exists()

    dlg = w.start_import(str(z))
    wait_plan(qtbot, dlg)
    dlg.lossy_radio.setChecked(True)
    assert dlg.lossy_value.isEnabled() and dlg.lossy_value.value() == pytest.approx(1.0)
    dlg.lossy_value.setValue(2.0)
    assert dlg.keep_identifiers.isVisibleTo(dlg) and not dlg.keep_identifiers.isChecked()
    dlg.keep_identifiers.setChecked(True)
    est = wait_estimate(qtbot, dlg)
    assert "distance 2" in dlg.estimate_label.text()
    qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
    dst = tmp_path / "series.mzarr"
    got = Mzarr(dst)
    assert got.codec["lossless"] is False and got.codec["distance"] == pytest.approx(2.0)
    assert got.attrs()["source"] == "series.zip"  # kept, as asked
    # lossy: close, not exact (the distance is relative to the whole 16-bit range: ~100 HU off here)
    pixels = got.numpy().astype(np.int32)
    assert not np.array_equal(pixels, even) and np.corrcoef(pixels.ravel(), even.ravel())[0, 1] > 0.9
    size = dst.stat().st_size
    assert size / ESTIMATE_FACTOR <= est <= size * ESTIMATE_FACTOR, (est, size)
    got.close()
    assert w.doc is not None and w.doc.path == str(dst)


def test_import_dicom_folder_menu_action_uses_a_folder_picker(qtbot, window, dicom_folder, monkeypatch) -> None:
    from PySide6.QtWidgets import QFileDialog

    folder, _even, _uneven = dicom_folder
    asked = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *a, **k: asked.append(a[1]) or str(folder)))
    act = window.findChild(type(window.act_open), "actImportFolder")
    assert act is not None and act.text() == "Import DICOM f&older…"
    act.trigger()
    assert asked == ["Import DICOM folder"]
    dlg = window.import_box
    assert dlg is not None and dlg.src == str(folder)
    wait_plan(qtbot, dlg)
    dlg.reject()


# -- NIfTI, NRRD -----------------------------------------------------------------------------------------------------
def test_nifti_import_through_file_import(qtbot, window, tmp_path, monkeypatch) -> None:
    """File > Import picks nibabel's bundled anatomical.nii (its filter lists every advertised format); the
    dialog shows its shape, dtype and 2 mm spacing; the estimate is exact for an image this small; the imported
    pixels are the reader's."""
    from PySide6.QtWidgets import QFileDialog

    src = tmp_path / "anatomical.nii"
    src.write_bytes(nifti_file().read_bytes())
    filters = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: filters.append(a[3]) or (str(src), "")))
    window.findChild(type(window.act_open), "actImport").trigger()
    for suffix in formats.readable_suffixes(native=False):
        assert f"*{suffix}" in filters[0]
    dlg = window.import_box
    wait_plan(qtbot, dlg)
    assert dlg.fields["format"].text() == "NIfTI"
    assert dlg.fields["shape"].text() == "25 × 41 × 33   (z × y × x)" and dlg.fields["dtype"].text() == "int16"
    assert dlg.fields["spacing"].text() == "2 × 2 × 2 mm" and dlg.fields["extent"].text() == "50 × 82 × 66 mm"
    assert not dlg.series_box.isVisible() and not dlg.warnings_box.isVisible()
    est = wait_estimate(qtbot, dlg)
    assert dlg.estimate.method == "whole"
    qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
    dst = tmp_path / "anatomical.mzarr"
    size = dst.stat().st_size
    assert abs(est - size) <= 0.05 * size
    expected = formats.read(src)
    got = Mzarr(dst)
    np.testing.assert_array_equal(got.numpy(), np.asarray(expected.array[...]))
    assert got.spacing == pytest.approx((2.0, 2.0, 2.0)) and got.unit == "millimeter"
    got.close()
    assert window.doc is not None and window.doc.path == str(dst)


def test_nrrd_import_sampled_estimate_and_quality(qtbot, window, tmp_path, monkeypatch) -> None:
    """An NRRD bigger than the sampling budget: the estimate encodes 16 sample chunks (said in the dialog), is
    within the stated factor for lossless and for lossy at a quality; the quality reaches the file."""
    import mzarr_app.import_plan as plan_mod

    vol = nrrd_volume()
    src = write_nrrd(tmp_path / "cam.nrrd", vol, (1.5, 0.5, 0.25))
    monkeypatch.setattr(plan_mod, "SAMPLE_CHUNKS", 4)  # 64 x 150 x 180: 9 chunks of 64^3, 4 sampled
    dlg = window.start_import(str(src))
    wait_plan(qtbot, dlg)
    assert dlg.fields["shape"].text().startswith("64 × 150 × 180") and dlg.fields["dtype"].text() == "uint8"
    assert dlg.fields["spacing"].text() == "1.5 × 0.5 × 0.25 mm"
    est = wait_estimate(qtbot, dlg)
    assert dlg.estimate.method == "sampled" and "4 of its 9 chunks" in dlg.estimate_label.text()
    dlg.lossy_radio.setChecked(True)
    dlg.lossy_by.setCurrentIndex(dlg.lossy_by.findData("quality"))
    assert dlg.lossy_value.value() == pytest.approx(90.0)
    qtbot.waitUntil(lambda: dlg.estimate is not None and "quality 90" in dlg.estimate_label.text(), timeout=30000)
    est_lossy = dlg.estimate.bytes
    dst = tmp_path / "cam lossy.mzarr"
    dlg.dest_edit.setText(str(dst))
    qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
    got = Mzarr(dst)
    assert got.codec["lossless"] is False and got.shape == vol.shape
    assert np.abs(got.numpy().astype(int) - vol).mean() < 4
    size = dst.stat().st_size
    assert size / ESTIMATE_FACTOR <= est_lossy <= size * ESTIMATE_FACTOR, (est_lossy, size)
    got.close()
    # the lossless estimate against a real lossless import of the same file
    lossless = tmp_path / "cam.mzarr"
    Mzarr(vol, spacing=(1.5, 0.5, 0.25), unit="millimeter").save(lossless)
    assert lossless.stat().st_size / ESTIMATE_FACTOR <= est <= lossless.stat().st_size * ESTIMATE_FACTOR


def test_reading_and_estimating_run_off_the_gui_thread(qtbot, window, tmp_path, monkeypatch) -> None:
    """The dialog shows at once; the reader and the sample encoding run on its worker thread."""
    import threading

    import mzarr_app.import_plan as plan_mod

    threads: dict[str, str] = {}
    real_inspect, real_estimate = plan_mod.inspect, plan_mod.estimate

    def inspect(*a, **k):
        threads["inspect"] = threading.current_thread().name
        return real_inspect(*a, **k)

    def estimate(*a, **k):
        threads["estimate"] = threading.current_thread().name
        return real_estimate(*a, **k)

    monkeypatch.setattr(plan_mod, "inspect", inspect)
    monkeypatch.setattr(plan_mod, "estimate", estimate)
    src = write_nrrd(tmp_path / "v.nrrd", nrrd_volume()[:8], (1.0, 1.0, 1.0))
    dlg = window.start_import(str(src))
    assert dlg.isVisible() and dlg.plan is None and not dlg.import_button.isEnabled()  # nothing read yet
    wait_plan(qtbot, dlg)
    wait_estimate(qtbot, dlg)
    assert threads == {"inspect": "mzarr-import-inspect", "estimate": "mzarr-import-inspect"}
    assert threading.current_thread() is threading.main_thread()
    dlg.reject()


# -- drops and opening -------------------------------------------------------------------------------------------------
def drop(w, *paths: Path) -> tuple[bool, QDropEvent]:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier)
    w.dragEnterEvent(enter)
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    w.dropEvent(ev)
    return enter.isAccepted(), ev


def test_drop_a_folder_then_a_file_each_gets_its_dialog(qtbot, window, dicom_folder, tmp_path) -> None:
    folder, even, _uneven = dicom_folder
    nii = tmp_path / "anat.nii"
    nii.write_bytes(nifti_file().read_bytes())
    w = window
    accepted, _ev = drop(w, folder, nii)
    assert accepted
    dlg = w.import_box
    assert dlg is not None and dlg.src == str(folder) and w.import_queue == [str(nii)]
    wait_plan(qtbot, dlg)
    assert dlg.series_list.count() == 2
    qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)  # the default: the largest series
    dst = tmp_path / "CT study.mzarr"
    with Mzarr(dst) as got:
        np.testing.assert_array_equal(got.numpy(), even)
    nxt = w.import_box
    assert nxt is not None and nxt.src == str(nii) and w.import_queue == []
    wait_plan(qtbot, nxt)
    nxt.reject()
    assert w.import_box is None and not (tmp_path / "anat.mzarr").exists()
    assert w.doc is not None and w.doc.path == str(dst)
    # a folder that holds no image is refused at the door
    empty = tmp_path / "notes"
    empty.mkdir()
    (empty / "a.txt").write_text("hello")
    accepted, _ev = drop(w, empty)
    assert not accepted


def test_opening_a_nifti_from_the_command_line_shows_the_import_dialog(qtbot, window, tmp_path) -> None:
    """``mzarr-viewer scan.nii`` / a double-click: open_path hands a non-.mzarr to the import dialog."""
    nii = tmp_path / "scan.nii"
    nii.write_bytes(nifti_file().read_bytes())
    assert window.open_path(str(nii)) is False
    dlg = window.import_box
    assert dlg is not None and dlg.src == str(nii) and window.error_box is None
    wait_plan(qtbot, dlg)
    dlg.reject()
    # a damaged file of a known suffix: the dialog says why and offers no Import
    broken = tmp_path / "broken.nii"
    broken.write_bytes(b"\0" * 400)
    dlg = window.start_import(str(broken))
    qtbot.waitUntil(lambda: bool(dlg.inspect_error), timeout=20000)
    assert "Cannot import" in dlg.status_label.text() and not dlg.import_button.isEnabled()
    dlg.reject()
    # and a folder Mzarr cannot read says why
    bad = tmp_path / "empty"
    bad.mkdir()
    assert window.start_import(str(bad)) is None
    assert window.error_box is not None and "neither an OME-Zarr image nor DICOM" in window.error_box.informativeText()


# -- slides ------------------------------------------------------------------------------------------------------------
def slide_format():
    for fmt in formats.FORMATS:
        if fmt.reader and fmt.reader.split(":")[0] == "slide":
            return fmt
    return None


@pytest.mark.skipif(slide_format() is None,
                    reason="mzarr_core.formats.slide is not in the formats registry yet (whole-slide import "
                           "lands with it)")
def test_slide_import_offers_the_slide_compressions(qtbot, window, tmp_path) -> None:
    slide_fixtures = pytest.importorskip("slide_fixtures")
    path = slide_fixtures.write_svs_like(tmp_path / "slide.svs", slide_fixtures.slide_mosaic(1024, 1536))
    dlg = window.start_import(str(path))
    wait_plan(qtbot, dlg)
    assert dlg.plan.is_slide and dlg.slide_combo.isVisible() and not dlg.lossless_radio.isVisible()
    modes = [dlg.slide_combo.itemData(i) for i in range(dlg.slide_combo.count())]
    assert set(modes) <= {"recompress", "lossless", "lossy"} and dlg.slide_combo.currentData() == dlg.plan.slide_default
    assert dlg.fields["shape"].text() == "1024 × 1536 × 3   (y × x × c)"
    assert dlg.fields["spacing"].text() == "0.252 × 0.252 µm" and "Aperio" in dlg.fields["format"].text()
    assert "Aperio" in dlg.details.toPlainText() and dlg.keep_identifiers.isVisibleTo(dlg)
    dlg.slide_combo.setCurrentIndex(dlg.slide_combo.findData("lossless"))
    assert not dlg.lossy_value.isEnabled()
    est = wait_estimate(qtbot, dlg)
    # 6 chunks of 512 x 512: encoded whole by the app (the slide module's own estimate serves recompress only)
    assert dlg.estimate.method == "whole"
    qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
    dst = tmp_path / "slide.mzarr"
    size = dst.stat().st_size
    assert size / ESTIMATE_FACTOR <= est <= size * ESTIMATE_FACTOR, (est, size)
    with Mzarr(dst) as got:
        assert got.shape == (1024, 1536, 3) and got.codec["lossless"] is True and "slide" in got.attrs()
        import tifffile

        np.testing.assert_array_equal(got[:256, :256], tifffile.imread(path, level=0)[:256, :256])
    assert window.doc is not None and window.doc.path == str(dst)


# -- About > Licences -------------------------------------------------------------------------------------------------
def open_licences_from_about(qtbot, w):
    box = w.about()
    assert box.isVisible() and "BSD-3-Clause" in box.text()
    button = box.findChild(QPushButton, "licencesButton")
    assert button is not None and button.text() == "Licences…"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    dlg = w.licences_dialog
    assert dlg is not None and dlg.isVisible()
    return dlg


def test_about_licences_lists_and_shows_the_files(qtbot, window, tmp_path, monkeypatch) -> None:
    """The Licences view lists what mzarr_app.licences returns and shows the selected file's text (a stand-in
    module here, so the dialog is tested whatever the state of the real one)."""
    folder = tmp_path / "licenses"
    (folder / "numpy").mkdir(parents=True)
    files = [folder / "LICENSE", folder / "numpy" / "LICENSE.txt", folder / "PySide6-LGPL-3.0.txt"]
    for f, text in zip(files, ("BSD 3-Clause License\nCopyright Mzarr", "NumPy licence text", "GNU LESSER GPL v3")):
        f.write_text(text)
    fake = types.ModuleType("mzarr_app.licences")
    fake.licence_dir = lambda: folder
    fake.licence_files = lambda: list(files)
    monkeypatch.setitem(sys.modules, "mzarr_app.licences", fake)
    dlg = open_licences_from_about(qtbot, window)
    names = [dlg.list.item(i).text() for i in range(dlg.list.count())]
    assert names == ["LICENSE", "numpy/LICENSE.txt", "PySide6-LGPL-3.0.txt"]
    assert dlg.text.toPlainText().startswith("BSD 3-Clause License")
    dlg.list.setCurrentRow(2)
    assert dlg.text.toPlainText() == "GNU LESSER GPL v3"
    dlg.close()
    # Help > Licences… opens the same view
    window.findChild(type(window.act_open), "actLicences").trigger()
    assert window.licences_dialog is not dlg and window.licences_dialog.list.count() == 3
    window.licences_dialog.close()


def test_about_licences_with_the_real_licence_files(qtbot, window) -> None:
    try:
        import mzarr_app.licences as licences
    except ImportError:
        pytest.skip("mzarr_app.licences (licence_dir / licence_files) is not in this tree yet")
    dlg = open_licences_from_about(qtbot, window)
    files = licences.licence_files()
    assert dlg.list.count() == len(files)
    if files:
        assert dlg.text.toPlainText().strip()
    dlg.close()
    assert isinstance(dlg, QDialog)


def test_a_source_on_read_only_media_proposes_a_writable_destination(qtbot, window, dicom_folder, tmp_path,
                                                                     monkeypatch) -> None:
    """Importing from a folder that cannot be written (a CD; simulated: tests run as root) proposes the documents
    folder (else home) instead of the source's folder; a destination in a read-only folder is said at once and
    Import stays off, so the series and compression chosen are never lost to a failed import."""
    import os

    import mzarr_app.import_plan as import_plan

    folder, _even, _uneven = dicom_folder
    readonly = {str(tmp_path), str(tmp_path / "ro")}
    real_access = os.access
    monkeypatch.setattr(import_plan.os, "access",
                        lambda p, mode: False if os.path.abspath(p) in readonly else real_access(p, mode))
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    w = window
    dlg = w.start_import(str(folder))
    wait_plan(qtbot, dlg)
    dest = dlg.destination()
    assert os.path.dirname(dest) in (str(home / "Documents"), str(home)) and dest.endswith("CT study.mzarr")
    assert dlg.import_button.isEnabled()
    (tmp_path / "ro").mkdir()
    dlg.dest_edit.setText(str(tmp_path / "ro" / "ct.mzarr"))
    assert "cannot write in that folder" in dlg.dest_note.text() and not dlg.import_button.isEnabled()
    dlg.dest_edit.setText(dest)
    assert dlg.import_button.isEnabled() and dlg.dest_note.text() == ""
    dlg.reject()
