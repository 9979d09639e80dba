"""GUI tests of contrast as CT and MR users expect it: the file's window at open, Hounsfield presets, right-drag
window/level (a click still opens the menu), invert and gamma, the status-bar value from full resolution."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

import app_fixtures as fx
from app_fixtures import VIEW_H, VIEW_W, grab_view, open_and_wait, set_identity_grey, wait_idle
from mzarr_core.display import HU_PRESETS, file_windows, looks_like_hu, presets_for, window_to_levels


# the shared fixtures (bound as names so pytest finds them here)
window, image_dir, isolated_settings = fx.window, fx.image_dir, fx.isolated_settings


def windowed(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """What a grey view must show for values ``v`` and levels lo..hi: lo -> 0, hi -> 255, clipped, rounded."""
    return np.clip(np.round((v.astype(np.float64) - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def hu_volume(z: int = 4, y: int = 200, x: int = 260) -> np.ndarray:
    """int16 'Hounsfield' volume: shifted crops of scikit-image's camera mapped to -1024..1016."""
    from skimage import data as skdata

    cam = skdata.camera().astype(np.int16)
    out = np.empty((z, y, x), np.int16)
    for i in range(z):
        out[i] = cam[3 * i:3 * i + y, 2 * i:2 * i + x] * 8 - 1024
    return out


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory):
    """A synthetic CT volume with the attributes mzarr's DICOM reader writes (two windows, HU rescale)."""
    from mzarr_core import Mzarr

    p = tmp_path_factory.mktemp("ct") / "ct.mzarr"
    attrs = {"dicom": {"Modality": "CT", "WindowCenter": [40, 300], "WindowWidth": [400, 1500],
                       "rescale": {"slope": 1.0, "intercept": -1024.0, "applied": True, "dtype": "int16",
                                   "type": "HU"}}}
    Mzarr(hu_volume(), spacing=(2.0, 0.5, 0.5), unit="millimeter", attrs=attrs).save(p)
    return p


def grab_level0(qtbot, w, x0: int = 0, y0: int = 0) -> np.ndarray:
    """The view at 1:1 with its corner at level-0 pixel (x0, y0), as RGBA."""
    w.view.show_rect(x0, y0, x0 + VIEW_W, y0 + VIEW_H)
    wait_idle(qtbot, w)
    assert w.view.level == 0
    return grab_view(w)


def assert_shows(img: np.ndarray, want: np.ndarray) -> None:
    """The grabbed grey view's top-left part equals ``want`` (rendering may differ on a few edge pixels)."""
    got = img[: want.shape[0], : want.shape[1]]
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 0] == got[..., 2]).all()
    diff = np.abs(got[..., 0].astype(int) - want.astype(int))
    assert np.mean(diff == 0) > 0.99 and diff.mean() < 0.5, diff.mean()


# --- presets (no Qt) ---------------------------------------------------------------------------------------------
def test_file_windows_and_hu_detection() -> None:
    a = {"dicom": {"Modality": "CT", "WindowCenter": [40, 300], "WindowWidth": [400, 1500]}}
    ws = file_windows(a)
    assert [(p.name, p.centre, p.width) for p in ws] == [("From file: 40/400", 40, 400),
                                                         ("From file: 300/1500", 300, 1500)]
    assert file_windows({"dicom": {"WindowCenter": 50, "WindowWidth": "350"}})[0].levels == (-125, 225)
    assert file_windows({"dicom": {"WindowCenter": "40\\80", "WindowWidth": "400\\800"}})[1].centre == 80
    assert file_windows({}) == [] and file_windows({"dicom": {"WindowCenter": 40}}) == []
    # stored values kept (rescale recorded, not applied): the DICOM window (in rescaled units) becomes stored units
    kept = {"dicom": {"WindowCenter": 40, "WindowWidth": 400,
                      "rescale": {"slope": 0.5, "intercept": -1024, "applied": False, "type": "HU"}}}
    assert (file_windows(kept)[0].centre, file_windows(kept)[0].width) == (2128, 800)
    assert looks_like_hu(np.int16, a) and not looks_like_hu(np.uint16, a) and not looks_like_hu(np.int16, {})
    assert looks_like_hu(np.int16, {"dicom": {"Modality": "OT", "rescale": {"type": "HU", "applied": True}}})
    assert not looks_like_hu(np.int16, {"dicom": {"Modality": "MR"}})
    assert presets_for(np.int16, a)[2:] == list(HU_PRESETS)
    # a CT whose HU rescale was recorded but not applied: the presets in stored units (HU = 0.5 stored - 1024)
    stored = presets_for(np.uint16, kept)
    assert stored[0].source == "file" and [p.name for p in stored[1:]] == [p.name for p in HU_PRESETS]
    assert (stored[4].centre, stored[4].width) == ((-600 + 1024) / 0.5, 1500 / 0.5)  # Lung
    assert presets_for(np.uint16, {"dicom": {"Modality": "MR", "rescale": {"slope": 2, "intercept": 0,
                                                                           "applied": False}}}) == []
    assert presets_for(np.uint16, {"dicom": {"Modality": "MR", "WindowCenter": 600, "WindowWidth": 1200}})[0].levels \
        == (0, 1200)
    assert {p.name: (p.centre, p.width) for p in HU_PRESETS} == {
        "Brain": (40, 80), "Subdural": (75, 215), "Stroke": (40, 40), "Lung": (-600, 1500),
        "Mediastinum": (50, 350), "Bone": (400, 1800), "Soft tissue": (50, 400)}


# --- the file's window at open, presets in the menu, rendered pixels --------------------------------------------------
def test_ct_opens_with_file_window_and_presets_render_windowed_values(qtbot, window, ct_file) -> None:
    from mzarr_core import Mzarr

    w = window
    open_and_wait(qtbot, w, ct_file)
    assert [p.name for p in w.window_presets[:2]] == ["From file: 40/400", "From file: 300/1500"]
    assert w.window_presets[2:] == list(HU_PRESETS)
    assert (w.view.display.lo, w.view.display.hi) == (-160, 240)  # the file's first window, not automatic
    assert w.contrast.preset.currentText() == "From file: 40/400"
    data = Mzarr(ct_file).levels[0][w.view.plane.slice_index]  # the middle slice is shown at open
    assert_shows(grab_level0(qtbot, w), windowed(data, -160, 240))
    # Contrast > Lung (through the menu's action) and Contrast > the file's second window
    names = [a.text() for a in w.contrast_menu.actions()]
    assert names[:3] == ["&Automatic", "From file: 40/400", "From file: 300/1500"]
    lung = next(a for a in w.contrast_menu.actions() if a.text().startswith("Lung"))
    lung.trigger()
    wait_idle(qtbot, w)
    lo, hi = window_to_levels(-600, 1500)
    assert (w.view.display.lo, w.view.display.hi) == (lo, hi) and w.contrast.preset.currentText().startswith("Lung")
    assert_shows(grab_view(w), windowed(data, lo, hi))
    # the tile items hold the windowed indices (the pixels are mapped, not rewritten in the data)
    item = next(t.item for t in w.view._tiles.values() if t.key.level == 0 and t.key.row_chunk == 0
                and t.key.col_chunk == 0)
    np.testing.assert_array_equal(item.image[:200, :260], windowed(data, lo, hi))
    w.setFocus()
    qtbot.keyClick(w, Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier)  # Alt+2: the file's second window
    assert w.contrast.window() == (300, 1500)
    wait_idle(qtbot, w)
    assert_shows(grab_view(w), windowed(data, *window_to_levels(300, 1500)))
    w.contrast.apply_preset("Bone")
    assert w.contrast.window() == (400, 1800)
    w.contrast.apply_preset("Automatic")
    assert w.contrast.preset.currentText() == "Automatic"


def test_ct_small_converted_from_dicom_opens_with_its_window(qtbot, window, tmp_path) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    from mzarr_core import Mzarr, convert

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.WindowCenter = [40, 400]
    ds.WindowWidth = [350, 1800]
    src = tmp_path / "dicom"
    src.mkdir()
    ds.save_as(src / "ct.dcm")
    dst = convert(src, tmp_path / "ct_small.mzarr")
    m = Mzarr(dst)
    assert m.dtype == np.int16 and m.attrs()["dicom"]["Modality"] == "CT"
    w = window
    open_and_wait(qtbot, w, dst)
    assert [p.name for p in w.window_presets[:2]] == ["From file: 40/350", "From file: 400/1800"]
    assert [p.name for p in w.window_presets[2:]] == [p.name for p in HU_PRESETS]
    assert (w.view.display.lo, w.view.display.hi) == window_to_levels(40, 350)
    want = windowed(np.asarray(m.levels[0][...]).reshape(m.levels[0].shape[-2:]), *window_to_levels(40, 350))
    assert_shows(grab_level0(qtbot, w), want)


def test_other_images_keep_automatic_contrast_and_no_hu_presets(qtbot, window, image_dir) -> None:
    from mzarr_app.contrast import auto_levels

    w = window
    open_and_wait(qtbot, w, image_dir / "camera_int16.mzarr")  # int16 but not from a CT
    assert w.window_presets == []
    assert [a.text() for a in w.contrast_menu.actions() if not a.isSeparator()][0] == "&Automatic"
    assert not any(a.text().startswith("Lung") for a in w.contrast_menu.actions())
    assert (w.view.display.lo, w.view.display.hi) == auto_levels(w.view.hist_data)
    assert w.contrast.preset.currentText() == "Automatic"


# --- right-drag window/level, right-click menu -------------------------------------------------------------------
def send_mouse(widget, kind, p: QPoint, button, buttons) -> None:
    """One real mouse event to ``widget``; moves are spaced beyond pyqtgraph's rate limit (``mouseRateLimit``,
    100 per second: closer moves are dropped)."""
    if kind == QEvent.Type.MouseMove:
        time.sleep(0.015)
    ev = QMouseEvent(kind, QPointF(p), QPointF(widget.mapToGlobal(p)), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)
    QApplication.processEvents()


def right_drag(widget, points: list[QPoint]) -> None:
    right, none = Qt.MouseButton.RightButton, Qt.MouseButton.NoButton
    send_mouse(widget, QEvent.Type.MouseButtonPress, points[0], right, right)
    for p in points[1:]:
        send_mouse(widget, QEvent.Type.MouseMove, p, none, right)
    send_mouse(widget, QEvent.Type.MouseButtonRelease, points[-1], right, none)


def test_right_drag_changes_window_and_right_click_opens_the_menu(qtbot, window, ct_file) -> None:
    w = window
    open_and_wait(qtbot, w, ct_file)
    vp = w.view.viewport()
    c0, w0 = w.contrast.window()
    assert (c0, w0) == (40, 400)
    k = w.window_step()
    data = w.view.hist_data
    assert k == pytest.approx((float(data.max()) - float(data.min())) / 1024)
    rng = w.view.vb.viewRange()
    # right 120 px and down 60 px in steps: width += 120 k, centre += 60 k; the view did not zoom
    right_drag(vp, [QPoint(300 + i * 12, 200 + i * 6) for i in range(11)])
    c1, w1 = w.contrast.window()
    assert c1 == pytest.approx(c0 + 60 * k) and w1 == pytest.approx(w0 + 120 * k)
    assert w.view.vb.viewRange() == rng
    wait_idle(qtbot, w)
    assert (w.view.display.lo, w.view.display.hi) == pytest.approx(window_to_levels(c1, w1))
    assert w.contrast.preset.currentText().startswith("Custom")
    # left and up narrows and lowers it; never below a width of 1
    right_drag(vp, [QPoint(400, 300), QPoint(300, 300), QPoint(-2000, 280)])
    c2, w2 = w.contrast.window()
    assert w2 == 1 and c2 == pytest.approx(c1 - 20 * k)
    # a right click without motion opens pyqtgraph's menu (with the Contrast submenu) and leaves the window
    right = Qt.MouseButton.RightButton
    send_mouse(vp, QEvent.Type.MouseButtonPress, QPoint(320, 240), right, right)
    send_mouse(vp, QEvent.Type.MouseButtonRelease, QPoint(320, 240), right, Qt.MouseButton.NoButton)
    menu = w.view.vb.menu
    qtbot.waitUntil(menu.isVisible, timeout=3000)
    assert w.contrast_menu.menuAction() in menu.actions()
    assert w.contrast.window() == (c2, w2)
    menu.close()


# --- invert and gamma ----------------------------------------------------------------------------------------------
def test_invert_and_gamma_change_rendered_pixels_as_computed(qtbot, window, image_dir) -> None:
    from mzarr_core import Mzarr

    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    set_identity_grey(w)
    x0, y0 = 700, 300
    img = grab_level0(qtbot, w, x0, y0)
    data = Mzarr(image_dir / "mosaic.mzarr").levels[0][y0:y0 + VIEW_H, x0:x0 + VIEW_W]
    assert_shows(img, data)
    indices = {k: t.item.image.copy() for k, t in w.view._tiles.items()}
    w.act_invert.trigger()  # Contrast > Invert (I)
    assert w.view.display.invert and w.contrast.invert.isChecked()
    wait_idle(qtbot, w)
    assert_shows(grab_view(w), 255 - data)
    w.contrast.set_gamma(2.0)
    wait_idle(qtbot, w)
    gam = np.round(255 * (data / 255.0) ** 2).astype(np.uint8)
    assert_shows(grab_view(w), 255 - gam)
    w.act_invert.trigger()
    assert not w.view.display.invert
    w.contrast.gamma.setValue(-30)  # the slider: gamma = 10 ** -0.3 = 0.5
    assert w.view.display.gamma == 0.5
    wait_idle(qtbot, w)
    assert_shows(grab_view(w), np.round(255 * (data / 255.0) ** 0.5).astype(np.uint8))
    # display only: the tiles' indices are the windowed data; only the colour table changed
    for k, t in w.view._tiles.items():
        if k in indices:
            np.testing.assert_array_equal(t.item.image, indices[k])


# --- the status-bar value at full resolution ------------------------------------------------------------------------
def test_status_value_is_read_from_full_resolution_while_zoomed_out(qtbot, window, image_dir, monkeypatch) -> None:
    import threading

    import mzarr_app.layers as layers
    import mzarr_app.view as view_module
    from mzarr_core import Mzarr

    monkeypatch.setattr(view_module, "PREFETCH_LAYERS", 0)  # nothing read ahead: the probe's chunk is not cached

    gate, calls = threading.Event(), []
    real = layers.read_value

    def gated(level, index, z_plane):  # the library read, held until the test has seen the approximate value
        calls.append((level.index, tuple(index)))
        assert threading.current_thread() is not threading.main_thread()
        gate.wait(10)
        return real(level, index, z_plane)

    monkeypatch.setattr(layers, "read_value", gated)
    w = window
    open_and_wait(qtbot, w, image_dir / "volume.mzarr")
    w.view.zoom(0.1)  # ~4 level-0 pixels per screen pixel
    wait_idle(qtbot, w)
    w.slicing.set_index(80)  # a brick layer level 0 was never read for (it opened at the middle slice, 48)
    wait_idle(qtbot, w)
    assert w.view.level >= 2
    m = Mzarr(image_dir / "volume.mzarr")
    # a real mouse move over the view, at a screen pixel away from level-2 pixel boundaries
    c = w.view.vb.mapViewToScene(QPointF(149.3, 33.7))
    pos = w.view.mapFromScene(c)
    send_mouse(w.view.viewport(), QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    p = w.view.vb.mapSceneToView(w.view.mapToScene(pos))
    y, x = int(p.y()), int(p.x())
    assert f"z=80  y={y}  x={x}" in w.pos_label.text()  # full-resolution coordinates
    exact = int(m.levels[0][80, y, x])
    lv = w.view.level
    f = m.levels[lv].factor
    coarse = int(m.levels[lv][80 // f[0], y // f[1], x // f[2]])
    assert coarse != exact  # the point of the test: the coarse level's value is not the pixel's
    assert w.value_label.text() == f"value: ≈{coarse} (level {lv}, reading…)"  # approximate meanwhile, GUI free
    assert calls == [(0, (80, y, x))]
    gate.set()
    qtbot.waitUntil(lambda: w.value_label.text() == f"value: {exact}", timeout=5000)
    # the same pixel again: known, no second read; a neighbour in the same brick is read (from the cache)
    send_mouse(w.view.viewport(), QEvent.Type.MouseMove, pos + QPoint(1, 0), Qt.MouseButton.NoButton,
               Qt.MouseButton.NoButton)
    p2 = w.view.vb.mapSceneToView(w.view.mapToScene(pos + QPoint(1, 0)))
    if (int(p2.y()), int(p2.x())) == (y, x):
        assert w.value_label.text() == f"value: {exact}" and len(calls) == 1
    qtbot.waitUntil(lambda: w.value_label.text() == f"value: {int(m.levels[0][80, int(p2.y()), int(p2.x())])}",
                    timeout=5000)
    assert w.view.image.full_value(p.y(), p.x()) == (True, exact)
    # a pending edit applies to the full-resolution value too
    assert w.select_and_fill((x, y, x + 1, y + 1), 7)
    assert w.view.image.full_value(p.y(), p.x()) == (True, 7)


def test_status_value_of_a_channel_image_is_every_channel_at_full_resolution(qtbot, window, image_dir) -> None:
    from mzarr_core import Mzarr

    w = window
    open_and_wait(qtbot, w, image_dir / "channels.mzarr")  # cyx: the composite
    w.view.doc.clear_cache()  # nothing cached: the status bar waits for the level-0 read
    y, x = 301, 207
    w.view._mouse_moved(w.view.vb.mapViewToScene(QPointF(x + 0.5, y + 0.5)))
    assert w.value_label.text() == "value: …" or w.value_label.text().startswith("value: ≈")
    want = ", ".join(str(int(v)) for v in Mzarr(image_dir / "channels.mzarr").levels[0][:, y, x])
    qtbot.waitUntil(lambda: w.value_label.text() == f"value: {want}", timeout=5000)


def test_contrast_histogram_of_integers_has_whole_value_bins(qtbot) -> None:
    """Integer data (0..1000, every value 3 times): each histogram bin holds the same number of whole values, so a
    flat distribution draws flat (a 256-bin linspace over 1001 values put 3 or 4 values in alternate bins: a comb)."""
    from mzarr_app.panels.contrast import HistogramWidget

    h = HistogramWidget()
    qtbot.addWidget(h)
    sample = np.arange(1001, dtype=np.uint16).repeat(3)
    h.set_data(sample)
    edges, logc = h.curve.getData()
    counts = np.expm1(logc)
    assert len(counts) <= 256 and (counts > 0).all()
    assert (counts[:-1] == counts[0]).all()  # flat (the last bin holds what is left)
    widths = np.diff(edges)
    assert np.allclose(widths, widths[0]) and float(widths[0]).is_integer() and edges[0] == -0.5
    assert np.isclose(counts.sum(), sample.size)


def test_tile_scaling_to_8_bits_equals_the_formula_for_every_integer_dtype_and_byte_order() -> None:
    """The table lookups that turn a tile into 8 bits (signed values through a rotated table, one gather) give
    round(clip((v - lo) * 255 / (hi - lo))) for every value, and the RGBA lookup equals ``lut[index]``."""
    from mzarr_app.contrast import _scale_to_u8, lut_rgba

    rng = np.random.default_rng(5)
    for dtype in ("uint8", "int8", "uint16", "int16", ">i2", ">u2"):
        info = np.iinfo(np.dtype(dtype))
        data = rng.integers(info.min, int(info.max) + 1, (37, 53)).astype(dtype)
        data[0, :4] = [info.min, info.max, 0, -1 if info.min else 1]
        for lo, hi in ((info.min, info.max), (-100.5, 300.0), (10.0, 11.0)):
            want = np.clip(np.round((data.astype(np.float64) - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
            np.testing.assert_array_equal(_scale_to_u8(data, lo, hi), want, err_msg=f"{dtype} {lo}..{hi}")
    lut = rng.integers(0, 256, (256, 4)).astype(np.uint8)
    index = rng.integers(0, 256, (31, 17)).astype(np.uint8)
    np.testing.assert_array_equal(lut_rgba(lut, index), lut[index])
