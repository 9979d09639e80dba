"""GUI tests of the main window: editing + save, metadata, errors, contrast, status bar, recent files, drops."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox

from app_fixtures import (grab_view, image_copy, image_dir, isolated_settings, open_and_wait, read_log,  # noqa: F401
                          set_identity_grey, wait_idle, window)


def drag(widget, points: list[QPoint]) -> None:
    """A left-button drag through ``points`` with real mouse events (buttons held during moves)."""
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    mods = Qt.KeyboardModifier.NoModifier

    def send(kind, p, button, buttons):
        pf = QPointF(p)
        ev = QMouseEvent(kind, pf, QPointF(widget.mapToGlobal(p)), button, buttons, mods)
        QApplication.sendEvent(widget, ev)

    from PySide6.QtCore import QEvent

    send(QEvent.Type.MouseButtonPress, points[0], left, left)
    for p in points[1:]:
        send(QEvent.Type.MouseMove, p, none, left)
        QApplication.processEvents()
    send(QEvent.Type.MouseButtonRelease, points[-1], left, none)
    QApplication.processEvents()


def test_rect_edit_is_pending_until_save_then_in_every_level(qtbot, window, image_copy) -> None:
    from mzarr_core import Mzarr

    path = image_copy("mosaic")
    before = Mzarr(path).numpy()
    w = window
    open_and_wait(qtbot, w, path)
    set_identity_grey(w)
    region = (1024, 512, 1536, 1024)  # x0, y0, x1, y1: exactly one level-0 chunk, aligned at every level
    w.editing.set_tool("rect")
    assert w.view.vb.tool == "rect"
    assert w.select_and_fill(region, 255)
    assert w.select_and_fill((0, 0, 100, 50), 0)
    assert w.isWindowModified() and len(w.model.edits) == 2
    w.model.stack.undo()
    assert len(w.model.edits) == 1 and w.isWindowModified()
    w.model.stack.redo()
    w.model.stack.undo()
    # the pending edit is drawn at once, at the current (coarse) level
    wait_idle(qtbot, w)
    w.view.show_rect(1100, 600, 1100 + 320, 600 + 240)
    wait_idle(qtbot, w)
    assert (grab_view(w)[..., :3] == 255).all()
    assert w.view.value_at(700, 1200) == (255, 0)
    # nothing is written before Save
    np.testing.assert_array_equal(Mzarr(path).numpy(), before)
    assert w.save()
    assert not w.isWindowModified() and w.model.edits == []
    m = Mzarr(path)
    after = m.numpy()
    assert (after[512:1024, 1024:1536] == 255).all()
    mask = np.ones(after.shape, bool)
    mask[512:1024, 1024:1536] = False
    np.testing.assert_array_equal(after[mask], before[mask])
    for lev in m.levels:
        f = lev.factor[0]
        block = lev[512 // f:1024 // f, 1024 // f:1536 // f]
        assert block.size and (block == 255).all(), f"level {lev.index} does not show the edit"
    # and the view shows it at every zoom after saving
    for lv in range(len(m.levels)):
        f = 2 ** lv
        w.view.show_rect(1100 - 10 * f, 600, 1100 - 10 * f + 640 * f, 600 + 480 * f)
        wait_idle(qtbot, w)
        assert w.view.level == lv
        v = w.view.value_at(700, 1200)
        assert v is not None and v[0] == 255


def test_brush_paints_labels_and_saves_with_mode_pyramid(qtbot, window, image_copy) -> None:
    from mzarr_core import Mzarr

    path = image_copy("labels")
    w = window
    open_and_wait(qtbot, w, path)
    assert w.view.display.mode == "labels"
    w.editing.set_tool("brush")
    w.editing.value.setValue(77)
    w.editing.radius.setValue(20 / w.view.vb.viewPixelSize()[0])  # screen pixels: 20 level-0 pixels
    # a real mouse stroke on the view
    vp = w.view.viewport()
    a = w.view.mapFromScene(w.view.vb.mapViewToScene(QPointF(300, 300)))
    b = w.view.mapFromScene(w.view.vb.mapViewToScene(QPointF(700, 300)))
    drag(vp, [QPoint(int(a.x() + t * (b.x() - a.x())), a.y()) for t in np.linspace(0, 1, 12)])
    qtbot.waitUntil(lambda: len(w.model.edits) == 1, timeout=3000)
    e = w.model.edits[0]
    assert e.mask is not None and e.value == 77
    assert w.view.value_at(300, 500)[0] == 77
    assert w.save()
    m = Mzarr(path)
    lab = m.numpy()
    assert lab[300, 500] == 77 and lab[300, 320] == 77 and lab[330, 500] != 77
    painted = lab == 77
    assert 10000 < painted.sum() < 30000
    for lev in m.levels[1:]:
        f = lev.factor[0]
        assert lev[300 // f, 500 // f] == 77, f"level {lev.index}"


def test_unsaved_changes_are_asked_about_on_close(qtbot, window, image_copy) -> None:
    from mzarr_core import Mzarr

    path = image_copy("mosaic")
    w = window
    open_and_wait(qtbot, w, path)
    w.select_and_fill((0, 0, 10, 10), 9)
    asked = []
    w.ask_save_changes = lambda: asked.append(1) or QMessageBox.StandardButton.Cancel
    assert not w.close() and w.isVisible() and asked
    w.ask_save_changes = lambda: QMessageBox.StandardButton.Discard
    assert w.close()
    assert (Mzarr(path)[0:10, 0:10] != 9).any()


def test_metadata_edit_keeps_types_refuses_bad_input_and_persists(qtbot, window, tmp_path) -> None:
    from mzarr_core import Mzarr
    from skimage import data

    path = tmp_path / "meta.mzarr"
    Mzarr(data.camera(), attrs={"title": "camera", "count": 3, "ratio": 0.5, "ok": True,
                                "nested": {"a": [1, 2, 3], "b": None}}).save(path)
    w = window
    open_and_wait(qtbot, w, path)
    p = w.metadata
    assert p.to_dict()["nested"] == {"a": [1, 2, 3], "b": None}
    # invalid input is refused with a message, the value is unchanged
    assert not p.set_item_value(p.find("count"), "three")
    assert "integer" in p.message.text() and p.find("count").text(1) == "3"
    assert not p.set_item_value(p.find("ok"), "maybe")
    assert not p.set_item_value(p.find("ratio"), "nan")
    assert not p.rename_item(p.find("title"), "count")  # duplicate key
    assert not p.rename_item(p.find("title"), "")
    assert not w.isWindowModified()
    # valid edits
    assert p.set_item_value(p.find("count"), "42")
    assert p.set_item_value(p.find("ratio"), "1e-3")
    assert p.set_item_value(p.find("ok"), "false")
    assert p.set_item_value(p.find("nested", "a", "1"), "20")
    assert p.rename_item(p.find("title"), "name")
    it = p.add_key("operator", "string")
    assert p.set_item_value(it, "Ada")
    sub = p.add_key("settings", "object")
    assert p.set_item_value(p.add_key("gain", "number", sub), "2.5")
    p.add_key("", "integer", p.find("nested", "a"))  # appended array item
    p.delete_item(p.find("nested", "b"))
    assert w.isWindowModified()
    want = {"name": "camera", "count": 42, "ratio": 0.001, "ok": False, "nested": {"a": [1, 20, 3, 0]},
            "operator": "Ada", "settings": {"gain": 2.5}}
    assert p.to_dict() == want
    p.save.click()
    assert not w.isWindowModified()
    w.close()
    got = dict(Mzarr(path).attrs())
    assert json.loads(json.dumps(got)) == want
    assert isinstance(got["count"], int) and isinstance(got["ratio"], float) and got["ok"] is False
    # reopen in the app: the tree shows the saved values
    from mzarr_app.window import MainWindow

    w2 = MainWindow(cache_mb=64, threads=2)
    qtbot.addWidget(w2)
    assert w2.open_path(str(path))
    assert w2.metadata.to_dict() == want


@pytest.mark.parametrize("kind", ["missing", "garbage", "folder"])
def test_bad_path_shows_a_message(qtbot, window, tmp_path, kind) -> None:
    w = window
    if kind == "missing":
        p = tmp_path / "nope.mzarr"
    elif kind == "garbage":
        p = tmp_path / "bad.mzarr"
        p.write_bytes(b"this is not a sqlite file at all" * 100)
    else:
        p = tmp_path / "empty.ome.zarr"
        p.mkdir()
    assert not w.open_path(str(p))
    assert w.doc is None
    assert w.error_box is not None and w.error_box.isVisible()
    assert str(p) in w.error_box.text()
    assert w.error_box.informativeText()
    w.error_box.accept()


def test_contrast_auto_manual_colormaps_and_dtypes(qtbot, window, image_dir) -> None:
    from mzarr_app.contrast import auto_levels, colormap_lut
    from mzarr_core import Mzarr

    w = window
    # uint16 volume: auto levels are percentiles of the histogram level
    open_and_wait(qtbot, w, image_dir / "volume.mzarr")
    s = w.view.display
    lo, hi = auto_levels(w.view.hist_data)
    assert (s.lo, s.hi) == (lo, hi) and s.mode == "single" and 0 < lo < hi < 65535
    # manual min/max through the spin boxes -> rendered pixels follow
    w.contrast.lo.setValue(1000)
    w.contrast.hi.setValue(3000)
    w.contrast.hi.editingFinished.emit()
    assert (w.view.display.lo, w.view.display.hi) == (1000, 3000)
    key, raw = next(iter(w.view.shown_tiles().items()))
    item = w.view.item_for(key)  # single-channel tiles are uint8 indices + a 256-entry colour table
    want = np.clip(np.round((raw.astype(float) - 1000) * 255 / 2000), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(item.image, want)
    np.testing.assert_array_equal(item.lut, colormap_lut("grey"))
    # viridis
    w.contrast.cmap.setCurrentText("viridis")
    item = w.view.item_for(key)
    np.testing.assert_array_equal(colormap_lut("viridis")[item.image], colormap_lut("viridis")[want])
    np.testing.assert_array_equal(item.lut, colormap_lut("viridis"))
    # int16 and float images display with their own ranges
    for name in ("camera_int16", "coins_float"):
        open_and_wait(qtbot, w, image_dir / f"{name}.mzarr")
        m = Mzarr(image_dir / f"{name}.mzarr")
        s = w.view.display
        assert s.lo < s.hi and m.dtype.kind in "if"
        key, raw = next(iter(w.view.shown_tiles().items()))
        img = w.view.item_for(key).image
        want = np.clip(np.round((raw.astype(np.float64) - s.lo) * 255 / (s.hi - s.lo)), 0, 255)
        assert np.abs(img.astype(int) - want).max() <= 1
        assert img.min() == 0 and img.max() == 255
        grab = grab_view(w)  # and on screen
        assert grab[..., 0].max() == 255 and (grab[..., 0] == grab[..., 2]).all()


def test_rgb_and_multichannel_composite_in_colour(qtbot, window, image_dir) -> None:
    from skimage import data

    w = window
    ast = data.astronaut()
    open_and_wait(qtbot, w, image_dir / "astronaut.mzarr")
    assert w.view.display.mode == "rgb"
    vw, vh = w.view.viewport().width(), w.view.viewport().height()
    w.view.show_rect(0, 0, vw, vh)
    wait_idle(qtbot, w)
    img = grab_view(w)
    want = ast[:vh, :vw]
    assert np.abs(img[: want.shape[0], : want.shape[1], :3].astype(int) - want).mean() < 0.5
    # cyx composite: red/green/blue channel colours from the astronaut's channels
    open_and_wait(qtbot, w, image_dir / "channels.mzarr")
    s = w.view.display
    assert s.mode == "composite" and len(s.channels) == 3
    from dataclasses import replace

    from mzarr_app.contrast import ChannelSettings

    rgb = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
    w.contrast.set_settings(replace(s, channels=tuple(ChannelSettings(0, 255, c) for c in rgb)))
    w.view.show_rect(0, 0, vw, vh)
    wait_idle(qtbot, w)
    img = grab_view(w)
    assert np.abs(img[: want.shape[0], : want.shape[1], :3].astype(int) - want).mean() < 0.5
    assert w.view.value_at(10.5, 20.5) == (tuple(int(v) for v in ast[10, 20]), 0)
    # a single channel shown alone, in grey with its levels
    w.slicing.set_channel(1)
    wait_idle(qtbot, w)
    assert w.view.plane.channels == (1,) and w.view.display.mode == "single"
    img = grab_view(w)
    assert np.abs(img[: want.shape[0], : want.shape[1], 0].astype(int) - want[..., 1]).mean() < 0.5
    w.slicing.set_channel(None)
    wait_idle(qtbot, w)
    assert w.view.plane.channels is None and w.view.display.mode == "composite"


def test_status_bar_position_value_level_and_scale_bar(qtbot, window, image_dir) -> None:
    from mzarr_core import Mzarr

    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    m = Mzarr(image_dir / "mosaic.mzarr")
    w.view.show_rect(1000, 700, 1320, 940)
    wait_idle(qtbot, w)
    scene = w.view.vb.mapViewToScene(QPointF(1234.5, 789.5))
    w.view._mouse_moved(scene)
    assert "y=789" in w.pos_label.text() and "x=1234" in w.pos_label.text()
    assert "µm" in w.pos_label.text()  # spacing 0.25 µm
    assert w.value_label.text() == f"value: {int(m.levels[0][789, 1234])}"
    assert w.level_label.text().startswith("level 0/")
    assert w.view.scale_bar.isVisible() and "µm" in w.view.scale_bar.text
    # 3D: z comes from the slice, physical z uses its own spacing
    open_and_wait(qtbot, w, image_dir / "volume.mzarr")
    w.slicing.set_index(10)
    wait_idle(qtbot, w)
    w.view._mouse_moved(w.view.vb.mapViewToScene(QPointF(20.5, 30.5)))
    assert w.pos_label.text().startswith("z=10  y=30  x=20")
    assert "20 µm" in w.pos_label.text()
    v = Mzarr(image_dir / "volume.mzarr")
    val, lv = w.view.value_at(30.5, 20.5)
    f = v.levels[lv].factor
    assert val == v.levels[lv][10 // f[0], 30 // f[1], 20 // f[2]]


def test_recent_files_window_state_and_drop(qtbot, window, image_dir, tmp_path) -> None:
    from mzarr_app import settings
    from mzarr_app.window import MainWindow

    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    open_and_wait(qtbot, w, image_dir / "volume.mzarr")
    rec = settings.recent_files()
    assert rec[:2] == [str(image_dir / "volume.mzarr"), str(image_dir / "mosaic.mzarr")]
    w.resize(1000, 700)
    w.docks["Metadata"].hide()
    size = w.size()
    w.close()
    assert settings.app_settings().value("window/geometry") is not None
    w2 = MainWindow(cache_mb=64, threads=2)
    qtbot.addWidget(w2)
    w2.show()
    assert w2.size().height() == size.height() == 700 and not w2.docks["Metadata"].isVisible()
    # drag-and-drop a file onto the window
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(image_dir / "astronaut.mzarr"))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    w2.dropEvent(ev)
    assert w2.doc is not None and w2.doc.path == str(image_dir / "astronaut.mzarr")
    w2.close()


def test_keyboard_shortcuts_zoom_and_fit(qtbot, window, image_dir) -> None:
    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    r0 = w.view.vb.viewRect()
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key.Key_Equal)
    r1 = w.view.vb.viewRect()
    assert abs(r1.width() - r0.width() / 2) < 1
    qtbot.keyClick(w.view, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert abs(w.view.vb.viewRect().width() - r0.width()) < 1
    qtbot.keyClick(w.view, Qt.Key.Key_R)
    assert w.editing.tool() == "rect"
    qtbot.keyClick(w.view, Qt.Key.Key_Escape)
    assert w.editing.tool() is None


def test_panel_saves_are_separate_and_ctrl_s_saves_both(qtbot, window, image_copy) -> None:
    from mzarr_core import Mzarr

    path = image_copy("mosaic")
    w = window
    open_and_wait(qtbot, w, path)
    w.select_and_fill((0, 0, 64, 64), 3)
    w.metadata.set_item_value(w.metadata.add_key("note", "string"), "edited")
    w.metadata.save.click()  # metadata only: the pixel edit stays pending
    assert dict(Mzarr(path).attrs()).get("note") == "edited"
    assert (Mzarr(path)[0:64, 0:64] != 3).any() and w.model.dirty and w.isWindowModified()
    w.metadata.set_item_value(w.metadata.find("note"), "again")
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert not w.isWindowModified()
    m = Mzarr(path)
    assert (m[0:64, 0:64] == 3).all() and dict(m.attrs())["note"] == "again"


def test_rectangle_tool_drag_then_fill_shortcut(qtbot, window, image_copy) -> None:
    path = image_copy("mosaic")
    w = window
    open_and_wait(qtbot, w, path)
    w.view.show_rect(0, 0, 640, 480)
    wait_idle(qtbot, w)
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key.Key_R)
    vp = w.view.viewport()
    to_px = lambda x, y: w.view.mapFromScene(w.view.vb.mapViewToScene(QPointF(x, y)))  # noqa: E731
    a, b = to_px(100, 50), to_px(300, 200)
    drag(vp, [a, QPoint((a.x() + b.x()) // 2, (a.y() + b.y()) // 2), b])
    sel = w.view.vb.selection
    assert sel is not None and abs(sel.left() - 100) < 2 and abs(sel.bottom() - 200) < 2
    w.editing.value.setValue(200)
    qtbot.keyClick(w.view, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert len(w.model.edits) == 1
    e = w.model.edits[0]
    assert e.value == 200 and e.region[0].stop - e.region[0].start in (149, 150, 151)
    wait_idle(qtbot, w)
    assert w.view.value_at(120, 150) == (200, 0)
    qtbot.keyClick(w.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.model.edits == [] and not w.isWindowModified()


def test_failed_save_keeps_the_file_and_the_pending_edits(qtbot, window, image_copy, monkeypatch) -> None:
    """Save writes every pending edit in one transaction: a disk that fills up at the second edit leaves the file
    exactly as it was (not the first edit alone), shows the reason, and keeps both edits pending to save again."""
    from mzarr_core import Mzarr
    from mzarr_core.errors import MzarrDiskFullError
    from mzarr_core.backends import StoredBackend

    path = image_copy("mosaic")
    before = Mzarr(path).numpy()
    w = window
    open_and_wait(qtbot, w, path)
    assert w.select_and_fill((0, 0, 64, 64), 3)
    assert w.select_and_fill((600, 600, 700, 700), 9)
    real = StoredBackend._write_level0  # every write of a region's full-resolution pixels
    calls: list[int] = []

    def disk_full_at_second_edit(self, index, value):
        calls.append(1)
        if len(calls) == 2:
            raise MzarrDiskFullError(f"writing {path} failed: the disk is full")
        return real(self, index, value)

    monkeypatch.setattr(StoredBackend, "_write_level0", disk_full_at_second_edit)
    assert not w.save()
    assert len(calls) == 2, "the first edit was written before the disk filled up"
    assert "disk is full" in w.last_error
    np.testing.assert_array_equal(Mzarr(path).numpy(), before)
    assert len(w.model.edits) == 2 and w.isWindowModified()
    monkeypatch.setattr(StoredBackend, "_write_level0", real)
    assert w.save()
    after = Mzarr(path).numpy()
    assert (after[0:64, 0:64] == 3).all() and (after[600:700, 600:700] == 9).all()
    assert not w.isWindowModified()


def test_selection_size_is_what_a_fill_sets(qtbot, window, image_dir) -> None:  # noqa: F811
    """The status bar's selection size counts the pixels the fill of that selection sets (every pixel touched)."""
    from PySide6.QtCore import QRectF

    from mzarr_app.panels.editing import rect_edit

    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    r = QRectF(150.4, 200.5, 349.9 - 150.4, 300.8 - 200.5)
    w.view.vb.rectDrawn.emit(r)
    edit = rect_edit(w.doc, w.view.plane, r, 1)
    rows = edit.region[w.doc.axes.index("y")]
    cols = edit.region[w.doc.axes.index("x")]
    assert (cols.stop - cols.start, rows.stop - rows.start) == (200, 101)
    assert w.statusBar().currentMessage() == "Selection 200 × 101 px"


def test_save_as_keeps_the_edits_metadata_in_a_new_file_and_leaves_the_old_one(qtbot, window, image_copy,
                                                                               tmp_path) -> None:
    """File > Save As: the open image with its pending edits becomes a new .mzarr (every pyramid level
    updated, mode 0666 less the umask even from a read-only source), the window goes on with it, the old file is
    unchanged."""
    import os
    import stat

    from mzarr_core import Mzarr

    path = image_copy("mosaic")
    before = Mzarr(path).numpy()
    os.chmod(path, 0o444)  # a read-only source (its copy must be a normal file)
    w = window
    open_and_wait(qtbot, w, path)
    assert w.select_and_fill((0, 0, 64, 64), 3)
    target = tmp_path / "elsewhere"  # the suffix is added
    assert w.save_as(str(target))
    new = str(target) + ".mzarr"
    assert w.doc.path == new and not w.isWindowModified() and w.model.edits == []
    with Mzarr(new) as m:
        a = m.numpy()
        assert (a[0:64, 0:64] == 3).all()
        np.testing.assert_array_equal(a[64:, :], before[64:, :])
        assert (np.asarray(m.levels[1][0:32, 0:32]) == 3).all()  # the pyramid follows the edit
    np.testing.assert_array_equal(Mzarr(path).numpy(), before)  # the old file is untouched
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o666 & ~umask
    assert [n for n in os.listdir(tmp_path) if ".tmp-" in n] == []
    # the image itself cannot be the target
    assert not w.save_as(new) and "the open image itself" in w.last_error
    os.chmod(path, 0o644)


def test_a_read_only_file_offers_save_as_and_the_edits_survive(qtbot, window, image_copy, tmp_path,
                                                              monkeypatch) -> None:
    """Saving to a file that cannot be written (read-only media, permissions: simulated here, tests run as root)
    asks where to save a copy instead; cancelling keeps the edits pending and says how to keep them."""
    from mzarr_app.document import Document
    from mzarr_core import Mzarr
    from mzarr_core.errors import MzarrReadOnlyError

    path = image_copy("mosaic")
    w = window
    open_and_wait(qtbot, w, path)
    assert w.select_and_fill((10, 10, 40, 40), 7)

    def read_only(self, edits=None):
        if self.path == str(path):
            raise MzarrReadOnlyError(f"{path} is on read-only media")
        return real(self, edits)

    real = Document.save_edits
    monkeypatch.setattr(Document, "save_edits", read_only)
    asked: list[str] = []
    monkeypatch.setattr(w, "ask_save_as_path", lambda current: asked.append(current) or "")
    assert not w.save()
    assert asked == [str(path)] and len(w.model.edits) == 1 and w.isWindowModified()
    assert "Save As" in w.last_error
    target = str(tmp_path / "kept.mzarr")
    monkeypatch.setattr(w, "ask_save_as_path", lambda current: target)
    assert w.save()
    assert w.doc.path == target and not w.isWindowModified()
    assert (Mzarr(target).numpy()[10:40, 10:40] == 7).all()
    assert (Mzarr(path).numpy()[10:40, 10:40] != 7).any()


def test_a_change_by_another_program_is_shown_and_pending_edits_stay(qtbot, window, image_copy) -> None:
    """Another process writes the open file (a script filling a region): the view shows the new pixels (status bar
    says so), a pending edit elsewhere stays pending and is saved over the new content, not over the old; this
    app's own saves are not taken for such a change; a new label image written by the other program is listed."""
    import subprocess
    import sys

    from mzarr_core import Mzarr

    path = image_copy("mosaic")
    w = window
    open_and_wait(qtbot, w, path)
    assert not w.check_disk()  # nothing changed
    assert w.select_and_fill((600, 600, 700, 700), 9)
    code = (f"from mzarr_core import Mzarr\nwith Mzarr({str(path)!r}, 'r+') as m:\n"
            "    m[0:100, 0:100] = 255\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    # the file watcher notices by itself (no call here)
    qtbot.waitUntil(lambda: "changed by another program" in w.statusBar().currentMessage(), timeout=10000)
    wait_idle(qtbot, w)
    assert w.view.value_at(50, 50)[0] == 255  # the view reads the file as it is now
    assert len(w.model.edits) == 1 and w.isWindowModified()
    assert w.save()
    assert not w.check_disk()  # the app's own save
    a = Mzarr(path).numpy()
    assert (a[0:100, 0:100] == 255).all() and (a[600:700, 600:700] == 9).all()
    # a label image added by another program: the file is opened again (nothing pending) and lists it
    code = f"from mzarr_core import Mzarr\nwith Mzarr({str(path)!r}, 'r+') as m:\n    m.create_labels('cells')\n"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert w.check_disk()
    wait_idle(qtbot, w)
    assert [la.name for la in w.view.label_layers] == ["cells"]


def test_an_edited_window_in_the_metadata_is_offered_by_the_contrast_menu_after_save(qtbot, window, tmp_path) -> None:
    """Editing the file's WindowCenter in the Metadata panel and saving updates the Contrast presets at once."""
    from mzarr_core import Mzarr

    a = (np.arange(64 * 64, dtype=np.int32).reshape(64, 64) % 2000 - 1000).astype(np.int16)
    path = Mzarr(a).save(tmp_path / "ct.mzarr", attrs={"dicom": {"Modality": "CT", "WindowCenter": 40,
                                                                "WindowWidth": 400}})
    w = window
    open_and_wait(qtbot, w, path)
    first = w.window_presets[0]
    assert first.source == "file" and (first.centre, first.width) == (40, 400)
    md = w.metadata
    assert md.set_item_value(md.find("dicom", "WindowCenter"), "-600")
    assert w.save()
    first = w.window_presets[0]
    assert first.source == "file" and (first.centre, first.width) == (-600, 400)
