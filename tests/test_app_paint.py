"""GUI tests of painting label images at any zoom (issue 10, deliverable 3): real mouse events on the view, the
overlay of pending edits, Save (one transaction, every level of the label pyramid by the core's mode rule), undo,
eraser, flood fill, pick, polygon, new label value / label image, y-plane painting and a failed save."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication
from scipy.ndimage import distance_transform_edt
from skimage.measure import label as sklabel

from app_fixtures import isolated_settings, mosaic_2d, open_and_wait, volume_3d, wait_idle, window  # noqa: F401
from mzarr_app import edit_controller
from mzarr_app import paint as PT
from mzarr_app.label_layer import label_rgba
from mzarr_core import Mzarr
from mzarr_core.pyramid import downsample


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2048x3072 mosaic with a uint16 label image (4 levels of 256-chunks); a 3D volume with a label image."""
    d = tmp_path_factory.mktemp("paint")
    out = {}
    img = mosaic_2d()
    seg = sklabel(img > 150)
    assert seg.max() < 65535
    p = d / "mosaic.mzarr"
    Mzarr(img, spacing=(0.5, 0.5), unit="micrometer").save(p, chunks=(256, 256), levels=4)
    with Mzarr(p, "r+") as m:
        m.create_labels("cells", seg.astype(np.uint16))
    out["mosaic"] = p
    vol = volume_3d(z=24, y=120, x=150)
    p = d / "volume.mzarr"
    Mzarr(vol).save(p, chunks=(8, 64, 64), levels=2)
    with Mzarr(p, "r+") as m:
        m.create_labels("cells", sklabel(vol > np.percentile(vol, 70)).astype(np.uint16))
    out["volume"] = p
    return out


@pytest.fixture
def copy_of(files, tmp_path):
    import shutil

    def make(name: str) -> Path:
        dst = tmp_path / f"{name}.mzarr"
        shutil.copyfile(files[name], dst)
        return dst

    return make


def to_screen(w, x: float, y: float) -> QPointF:
    """Viewport position of level-0 point (x, y)."""
    return QPointF(w.view.mapFromScene(w.view.vb.mapViewToScene(QPointF(x, y))))


def send_mouse(widget, kind, pos: QPointF, button, buttons) -> None:
    ev = QMouseEvent(kind, pos, QPointF(widget.mapToGlobal(pos.toPoint())), button, buttons,
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def fast_drag(w, points: list[tuple[float, float]]) -> None:
    """A left-button drag through level-0 ``points``, every move sent at once (no event processing between: as
    fast as a hand can move, faster than pyqtgraph's rate limit)."""
    vp = w.view.viewport()
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    screen = [to_screen(w, x, y) for x, y in points]
    send_mouse(vp, QEvent.Type.MouseButtonPress, screen[0], left, left)
    for p in screen[1:]:
        send_mouse(vp, QEvent.Type.MouseMove, p, none, left)
    send_mouse(vp, QEvent.Type.MouseButtonRelease, screen[-1], left, none)
    QApplication.processEvents()


def click(w, x: float, y: float, double: bool = False) -> None:
    """A left click (or the second click of a double click) at level-0 (x, y)."""
    vp = w.view.viewport()
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    p = to_screen(w, x, y)
    kind = QEvent.Type.MouseButtonDblClick if double else QEvent.Type.MouseButtonPress
    send_mouse(vp, kind, p, left, left)
    send_mouse(vp, QEvent.Type.MouseButtonRelease, p, left, none)
    QApplication.processEvents()


def clicked_pixel(w, x: float, y: float) -> tuple[int, int]:
    """(row, col) of the level-0 pixel a click at (x, y) lands on (the screen rounds the position)."""
    p = w.view.vb.mapSceneToView(w.view.mapToScene(to_screen(w, x, y).toPoint()))
    return int(np.floor(p.y())), int(np.floor(p.x()))


def edits_plane(edits, shape: tuple[int, int]) -> np.ndarray:
    """Level-0 (rows, cols) mask of 2D edits (the union of their regions under their masks)."""
    out = np.zeros(shape, bool)
    for e in edits:
        view = out[e.region]
        view[...] |= True if e.mask is None else np.broadcast_to(e.mask, view.shape)
    return out


def check_label_pyramid(label) -> None:
    """Every level equals the core's mode downsampling of the level below (the label pyramid rule)."""
    prev = label.levels[0][...]
    for lev in label.levels[1:]:
        below = label.levels[lev.index - 1]
        halve = tuple(int(a) == 2 * int(b) for a, b in zip(lev.factor, below.factor))
        expected = downsample(prev, halve, "mode")
        got = lev[...]
        np.testing.assert_array_equal(got, expected, err_msg=f"level {lev.index}")
        prev = got


def overlay_value(w, name: str, x: float, y: float):
    """(label value drawn, its RGBA, level) of label layer ``name`` at level-0 (x, y): from the finest tile on
    screen there."""
    layer = w.view.label_layer(name)
    best = None
    for t in layer.tiles.values():
        if t.plane != layer.plane or not t.item.isVisible():
            continue
        r = t.item.mapRectToView(t.item.boundingRect())
        if r.left() <= x < r.right() and r.top() <= y < r.bottom() and (best is None or t.key.level < best[0].key.level):
            best = (t, r)
    if best is None:
        return None
    t, r = best
    data = layer.doc.overlay(t.raw, t.key.level, t.plane, t.key, layer.edits)
    i = int((y - r.top()) / r.height() * data.shape[0])
    j = int((x - r.left()) / r.width() * data.shape[1])
    return data[i, j], np.asarray(t.item.image)[i, j], t.key.level


def test_stroke_at_1_to_8_saves_exactly_on_its_mask_at_every_level(qtbot, window, copy_of) -> None:  # noqa: F811
    """The issue's goal: a stroke painted at 1:8 zoom (level 3 on screen) is drawn at once in the overlay, and
    after Save and reopening, level 0 of the label image differs exactly on the stroke's mask, every level equals
    the mode pyramid of level 0, and the stroke shows at every level and nowhere else."""
    path = copy_of("mosaic")
    before_m = Mzarr(path)
    before = [lev[...] for lev in before_m.label("cells").levels]
    image_before = before_m[...]
    before_m.close()
    w = window
    open_and_wait(qtbot, w, path)
    assert w.editing.target() == "cells"  # the file's label image is painted, not the image
    w.view.show_rect(0, 0, 8 * 640, 8 * 480)
    wait_idle(qtbot, w)
    assert w.view.label_layer("cells").level == 3
    w.editing.set_tool("brush")
    w.editing.value.setValue(4321)
    w.editing.radius.setValue(3)  # screen pixels: 24 level-0 pixels
    radii = w.edit_tools.brush_radii()
    assert radii == pytest.approx((24.0, 24.0), rel=0.02)
    strokes: list[list] = []
    w.view.vb.brushStroke.connect(strokes.append)
    t = np.linspace(0, 1, 60)
    pts = [(400 + 2200 * s, 1000 + 700 * np.sin(3 * s)) for s in t]
    fast_drag(w, pts)
    edits = list(w.model.edits)
    assert edits and all(e.target == "cells" for e in edits) and w.model.stack.count() == 1
    mask = edits_plane(edits, before[0].shape)
    # the stroke mask: the disc sweep through the points the mouse gave (screen pixels mapped to level 0)
    assert len(strokes) == 1 and len(strokes[0]) == len(pts) + 1
    ref = PT.paint_into(np.zeros(before[0].shape, bool), PT.stroke_masks(strokes[0], radii, before[0].shape))
    np.testing.assert_array_equal(mask, ref)
    # drawn at once at level 3: the label value and its colour at the stroke's points
    wait_idle(qtbot, w)
    layer = w.view.label_layer("cells")
    for x, y in pts[::7]:
        v, rgba, _ = overlay_value(w, "cells", x, y)
        assert v == 4321
        np.testing.assert_array_equal(rgba, label_rgba(np.array([[4321]], np.uint16), layer.doc.colors,
                                                       as_premultiplied=True, opacity=layer.opacity)[0, 0])
    assert w.save()
    wait_idle(qtbot, w)
    m = Mzarr(path)
    lab = m.label("cells")
    after = [lev[...] for lev in lab.levels]
    np.testing.assert_array_equal(after[0] != before[0], mask & (before[0] != 4321))
    assert (after[0][mask] == 4321).all()
    np.testing.assert_array_equal(m[...], image_before)  # the image itself is untouched
    check_label_pyramid(lab)
    for lev, a, b in zip(lab.levels, after, before):  # the stroke at every level and nowhere else
        f = int(lev.factor[0])
        h, wd = a.shape
        pad = np.zeros((h * f, wd * f), bool)
        pad[:mask.shape[0], :mask.shape[1]] = mask[:h * f, :wd * f]
        blocks = pad.reshape(h, f, wd, f)
        touched, covered = blocks.any(axis=(1, 3)), blocks.all(axis=(1, 3))
        assert not (a != b)[~touched].any(), f"level {lev.index} changed away from the stroke"
        assert covered.any() and (a[covered] == 4321).all(), f"level {lev.index} does not show the stroke"
    # and the view shows the saved stroke after the reopen
    v, _, _ = overlay_value(w, "cells", *pts[30])
    assert v == 4321
    m.close()


def test_fast_drag_keeps_every_mouse_move(qtbot, window, copy_of) -> None:  # noqa: F811
    """A fast curved drag (200 moves with no event processing between them, which pyqtgraph's scene rate-limits
    to a few drag events) reaches the stroke point by point, and each point's pixel is painted."""
    path = copy_of("mosaic")
    w = window
    open_and_wait(qtbot, w, path)
    w.view.show_rect(0, 0, 640, 480)
    wait_idle(qtbot, w)
    w.editing.set_tool("brush")
    w.editing.radius.setValue(0.5)
    w.editing.value.setValue(9)
    strokes: list[list] = []
    w.view.vb.brushStroke.connect(strokes.append)
    drags: list = []
    real = type(w.view.vb).mouseDragEvent
    w.view.vb.mouseDragEvent = lambda ev, axis=None: (drags.append(1), real(w.view.vb, ev, axis))
    a = np.linspace(0, 1.5 * np.pi, 200)
    pts = [(320 + 200 * np.cos(s), 240 + 200 * np.sin(s)) for s in a]
    fast_drag(w, pts)
    assert len(drags) < 20  # what pyqtgraph's drag events would have given
    assert len(strokes) == 1 and len(strokes[0]) == len(pts) + 1  # press, every move, release
    np.testing.assert_allclose(np.array(strokes[0][:-1]), np.array(pts), atol=1.0)
    painted = edits_plane(w.model.edits, (2048, 3072))
    for x, y in strokes[0]:
        assert painted[int(y), int(x)], (x, y)
    # the path between far-apart points is painted too (a connected curve, not dots)
    assert sklabel(painted, connectivity=2).max() == 1
    # hovering shows the brush's outline at its radius, centred on the cursor
    w.editing.radius.setValue(10)
    send_mouse(w.view.viewport(), QEvent.Type.MouseMove, to_screen(w, 200, 150), Qt.MouseButton.NoButton,
               Qt.MouseButton.NoButton)
    outline = w.view.vb._outline
    ry, rx = w.edit_tools.brush_radii()
    assert outline.isVisible() and abs(outline.rect().width() - 2 * rx) < 1e-6 and abs(rx - 10) < 0.5
    assert abs(outline.rect().center().x() - 200) < 1.5 and abs(outline.rect().center().y() - 150) < 1.5
    w.editing.set_tool(None)
    assert not outline.isVisible()


def test_brush_radius_in_physical_units(qtbot, window, copy_of) -> None:  # noqa: F811
    """The mosaic has a 0.5 µm spacing: a 10 µm brush is 20 pixels whatever the zoom; screen pixels scale with it."""
    path = copy_of("mosaic")
    w = window
    open_and_wait(qtbot, w, path)
    assert w.editing.physical.isEnabled()
    w.editing.radius.setValue(10)
    w.view.show_rect(0, 0, 4 * 640, 4 * 480)
    assert w.edit_tools.brush_radii() == pytest.approx((40.0, 40.0), rel=0.01)  # 10 screen px at 1:4
    w.editing.physical.setChecked(True)
    assert w.editing.radius.suffix().strip() == "micrometer"
    assert w.edit_tools.brush_radii() == pytest.approx((20.0, 20.0))
    w.view.show_rect(0, 0, 640, 480)
    assert w.edit_tools.brush_radii() == pytest.approx((20.0, 20.0))
    w.editing.set_tool("brush")
    fast_drag(w, [(300.5, 200.5)])
    painted = edits_plane(w.model.edits, (2048, 3072))
    assert painted.sum() == pytest.approx(np.pi * 400, rel=0.05) and painted[200, 319] and not painted[200, 321]


def test_undo_redo_and_eraser(qtbot, window, copy_of) -> None:  # noqa: F811
    path = copy_of("mosaic")
    seg = Mzarr(path).label("cells")[...]
    w = window
    open_and_wait(qtbot, w, path)
    w.view.show_rect(0, 0, 1280, 960)
    wait_idle(qtbot, w)
    rr, cc = np.nonzero(seg[200:800, 200:1000])
    y0, x0 = int(rr[0]) + 200, int(cc[0]) + 200
    old = int(seg[y0, x0])
    w.editing.set_tool("eraser")
    w.editing.value.setValue(5)  # the eraser paints 0 whatever the value
    fast_drag(w, [(x0 + 0.5, y0 + 0.5), (x0 + 30.5, y0 + 0.5)])
    assert len(w.model.edits) == 1 and w.model.edits[0].value == 0 and w.isWindowModified()
    assert overlay_value(w, "cells", x0 + 0.5, y0 + 0.5)[0] == 0
    w.model.stack.undo()
    assert w.model.edits == [] and not w.isWindowModified()
    v, _, lv = overlay_value(w, "cells", x0 + 0.5, y0 + 0.5)
    assert v == Mzarr(path).label("cells").levels[lv][y0 >> lv, x0 >> lv]  # the saved value again
    assert w.view.label_layer("cells").edits == []
    w.model.stack.redo()
    assert len(w.model.edits) == 1 and w.view.label_layer("cells").edits == w.model.edits
    assert w.save()
    after = Mzarr(path).label("cells")[...]
    mask = edits_plane(w.model.edits or [], seg.shape)  # saved: nothing pending
    assert not mask.any() and old != 0 and after[y0, x0] == 0
    changed = after != seg
    assert changed.any() and (after[changed] == 0).all()


def test_flood_fill_is_exact_and_says_when_bounded(qtbot, window, copy_of, monkeypatch) -> None:  # noqa: F811
    """Fill the clicked label's 4-connected region in the current plane on level-0 pixels (the view at a coarse
    level); a region larger than the fill's window is cut there, and the panel says so."""
    path = copy_of("mosaic")
    seg = Mzarr(path).label("cells")[...]
    w = window
    open_and_wait(qtbot, w, path)
    assert w.view.label_layer("cells").level >= 2
    sizes = np.bincount(seg.ravel())
    sizes[0] = 0
    v = int(np.argsort(sizes)[-3])  # a large label
    depth = distance_transform_edt(seg == v)
    y, x = np.unravel_index(int(np.argmax(depth)), seg.shape)  # deep inside: the click lands in the region
    y, x = clicked_pixel(w, x + 0.5, y + 0.5)
    comp = sklabel(seg == v, connectivity=1)
    region = comp == comp[y, x]
    w.editing.set_tool("fill")
    w.editing.value.setValue(60000)
    click(w, x + 0.5, y + 0.5)
    assert len(w.model.edits) == 1
    np.testing.assert_array_equal(edits_plane(w.model.edits, seg.shape), region)
    assert "limited" not in w.editing.notice.text()
    # the background (0) around the click is larger than a 64-pixel window: filled up to the window, and said
    monkeypatch.setattr(edit_controller, "FILL_WINDOW", 64)
    depth = distance_transform_edt(seg == 0)
    depth[:100] = depth[-100:] = depth[:, :100] = depth[:, -100:] = 0
    bg = np.unravel_index(int(np.argmax(depth)), seg.shape)
    click(w, bg[1] + 0.5, bg[0] + 0.5)
    bg = clicked_pixel(w, bg[1] + 0.5, bg[0] + 0.5)
    assert len(w.model.edits) == 2
    assert "limited" in w.editing.notice.text() and "64×64" in w.editing.notice.text()
    got = edits_plane(w.model.edits[1:], seg.shape)
    win = np.zeros(seg.shape, bool)
    r0, c0 = PT.window_around(int(bg[0]), 64, seg.shape[0])[0], PT.window_around(int(bg[1]), 64, seg.shape[1])[0]
    block = seg[r0:r0 + 64, c0:c0 + 64] == 0
    lab = sklabel(block, connectivity=1)
    win[r0:r0 + 64, c0:c0 + 64] = lab == lab[bg[0] - r0, bg[1] - c0]
    np.testing.assert_array_equal(got, win)
    # filling on top of the pending fill sees it (pending edits count as pixels)
    click(w, x + 0.5, y + 0.5)
    w.editing.value.setValue(1)
    w.editing.set_tool("pick")
    click(w, x + 0.5, y + 0.5)
    assert w.editing.value.value() == 60000


def test_polygon_pick_and_new_label_value(qtbot, window, copy_of) -> None:  # noqa: F811
    path = copy_of("mosaic")
    seg = Mzarr(path).label("cells")[...]
    w = window
    open_and_wait(qtbot, w, path)
    w.view.show_rect(0, 0, 1280, 960)
    wait_idle(qtbot, w)
    # "New label": one more than the largest level-0 value, found in the background
    w.editing.new_value.click()
    qtbot.waitUntil(lambda: w.editing.value.value() == seg.max() + 1, timeout=10000)
    new = int(seg.max()) + 1
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key.Key_P)
    assert w.view.vb.tool == "polygon"
    click(w, 50, 50)
    click(w, 90, 60)
    assert w.view.vb.polygon_in_progress
    qtbot.keyClick(w.view, Qt.Key.Key_Escape)  # Esc drops the polygon being drawn, the tool stays
    assert not w.view.vb.polygon_in_progress and w.view.vb.tool == "polygon" and w.model.edits == []
    verts = [(100.3, 120.7), (700.2, 90.1), (820.6, 600.4), (300.9, 700.2)]
    for x, y in verts:
        click(w, x, y)
    assert w.model.edits == []
    click(w, *verts[-1], double=True)  # a double click closes it
    assert len(w.model.edits) >= 1 and all(e.value == new for e in w.model.edits)
    got = edits_plane(w.model.edits, seg.shape)
    screen_verts = [(p.x(), p.y()) for p in (w.view.vb.mapSceneToView(w.view.mapToScene(to_screen(w, x, y).toPoint()))
                                                for x, y in verts)]
    ref = PT.paint_into(np.zeros(seg.shape, bool), PT.polygon_masks(screen_verts, seg.shape))
    np.testing.assert_array_equal(got, ref)
    # the next "New label" counts the pending polygon (cached level-0 maximum, no new scan)
    w.editing.new_value.click()
    assert w.editing.value.value() == new + 1
    # pick reads the pending value under the click
    w.editing.set_tool("pick")
    click(w, 450, 400)
    assert w.editing.value.value() == new
    assert w.save()
    after = Mzarr(path).label("cells")[...]
    np.testing.assert_array_equal(after, np.where(ref, new, seg))


def test_paint_a_y_plane_of_a_volume(qtbot, window, copy_of) -> None:  # noqa: F811
    """On a y-slice (rows z, columns x) of a volume, the stroke goes to that y plane only (after Save too)."""
    path = copy_of("volume")
    m = Mzarr(path)
    seg = m.label("cells")[...]
    m.close()
    w = window
    open_and_wait(qtbot, w, path)
    w.slicing.set_axis("y")
    w.slicing.set_index(50)
    wait_idle(qtbot, w)
    assert (w.view.plane.row, w.view.plane.col, w.view.plane.slice_axis) == ("z", "x", "y")
    w.editing.set_tool("brush")
    w.editing.value.setValue(999)
    w.editing.radius.setValue(1.5 / w.view.vb.viewPixelSize()[0])
    pts = [(10.5, 3.5), (60.5, 12.5), (140.5, 20.5)]
    fast_drag(w, pts)
    assert w.model.edits and w.model.edits[0].region[1] == slice(50, 51)
    assert overlay_value(w, "cells", 60.5, 12.5)[0] == 999
    assert w.save()
    after = Mzarr(path).label("cells")[...]
    diff = after != seg
    assert diff[:, 50, :].any() and not np.delete(diff, 50, axis=1).any()
    assert after[12, 50, 60] == 999 and after[20, 50, 140] == 999
    check_label_pyramid(Mzarr(path).label("cells"))


def test_failed_save_keeps_the_file_and_every_targets_edits(qtbot, window, copy_of, monkeypatch) -> None:  # noqa: F811
    """Edits of the image and of the label image are saved in one transaction: a label write that fails leaves
    the image as it was (its edit, written first, is rolled back) and keeps both pending; the next Save works."""
    from mzarr_core.labels import LabelImage

    path = copy_of("mosaic")
    m = Mzarr(path)
    image, seg = m[...], m.label("cells")[...]
    m.close()
    w = window
    open_and_wait(qtbot, w, path)
    assert w.select_and_fill((0, 0, 64, 64), 3)  # the image
    assert w.paint([(300, 300), (400, 350)], 10, 7, target="cells")
    assert {e.target for e in w.model.edits} == {None, "cells"}
    real = LabelImage.write_regions  # every label write (``label[key] = value`` too) goes through it

    def broken(self, regions):
        raise OSError("disk unplugged")

    monkeypatch.setattr(LabelImage, "write_regions", broken)
    assert not w.save()
    assert "disk unplugged" in w.last_error and len(w.model.edits) == 2 and w.isWindowModified()
    m = Mzarr(path)
    np.testing.assert_array_equal(m[...], image)
    np.testing.assert_array_equal(m.label("cells")[...], seg)
    m.close()
    monkeypatch.setattr(LabelImage, "write_regions", real)
    assert w.save() and not w.model.edits
    m = Mzarr(path)
    assert (m[0:64, 0:64] == 3).all() and m.label("cells")[320, 350] == 7
    check_label_pyramid(m.label("cells"))


def test_new_label_image_then_paint_it(qtbot, window, copy_of, monkeypatch) -> None:  # noqa: F811
    """"New label image": an empty label image (uint8 here) added through the core, listed and painted; pending
    edits of another target survive it."""
    path = copy_of("mosaic")
    w = window
    open_and_wait(qtbot, w, path)
    assert w.paint([(300, 300)], 5, 11, target="cells")
    # a name the format refuses: the core's message, nothing added, the view back
    assert not w.edit_tools.new_label_image("bad name!", "uint16")
    assert "name" in w.last_error and [la.name for la in w.view.label_layers] == ["cells"]
    wait_idle(qtbot, w)
    # the button asks the name and the data type
    monkeypatch.setattr(edit_controller.QInputDialog, "getText", lambda *a, **k: ("nuclei", True))
    monkeypatch.setattr(edit_controller.QInputDialog, "getItem", lambda *a, **k: ("uint8", True))
    w.editing.new_image.click()
    wait_idle(qtbot, w)
    assert [la.name for la in w.view.label_layers] == ["cells", "nuclei"]
    assert w.labels.item("nuclei") is not None  # listed in the Labels panel too
    assert w.editing.target() == "nuclei" and w.editing.value.maximum() == 255
    assert len(w.model.edits) == 1 and w.view.label_layer("cells").edits == w.model.edits
    assert w.select_and_fill((10, 20, 30, 40), 200, target="nuclei")
    assert w.save()
    m = Mzarr(path)
    nuc = m.label("nuclei")
    assert nuc.dtype == np.uint8 and nuc.shape == (2048, 3072)
    expected = np.zeros(nuc.shape, np.uint8)
    expected[20:40, 10:30] = 200
    np.testing.assert_array_equal(nuc[...], expected)
    assert m.label("cells")[300, 300] == 11
    check_label_pyramid(nuc)


def test_saving_merged_writes_equals_edits_one_by_one(tmp_path, monkeypatch) -> None:
    """Save merges nearby edits of a target into one write (each write updates the pyramid): the file ends exactly
    as applying every edit in order, with overlapping edits of different values, far-apart ones, and a region
    too large to merge (one write per edit then)."""
    import shutil

    from mzarr_app import document
    from mzarr_app.document import Edit, write_regions

    rng = np.random.default_rng(5)
    seg = sklabel(rng.random((300, 400)) > 0.6).astype(np.uint16)
    p = tmp_path / "small.mzarr"
    Mzarr(rng.integers(0, 255, (300, 400), dtype=np.uint8)).save(p, chunks=(64, 64), levels=3)
    with Mzarr(p, "r+") as m:
        m.create_labels("cells", seg)
    edits, expected = [], seg.copy()
    for i in range(40):
        r0, c0 = int(rng.integers(0, 280)), int(rng.integers(0, 380))
        if i == 20:
            r0, c0 = 250, 350  # far from most: its own write
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        mask = None if i % 3 == 0 else rng.random((h, w)) > 0.5
        region = (slice(r0, min(300, r0 + h)), slice(c0, min(400, c0 + w)))
        if mask is not None:
            mask = mask[:region[0].stop - r0, :region[1].stop - c0]
        e = Edit(region, 1000 + i % 5, mask, "t", "cells")
        edits.append(e)
        expected[region] = e.apply_to(expected[region].copy())
    regions = write_regions([e.region for e in edits], 4000, 8)
    assert 1 < len(regions) < len(edits)
    assert all(int(np.prod([s.stop - s.start for s in r])) <= 4000 for r in regions)
    for e in edits:  # every edit inside one of the regions
        assert any(all(a.start <= b.start and b.stop <= a.stop for a, b in zip(r, e.region)) for r in regions)
    big = (slice(0, 100), slice(0, 100))
    assert write_regions([big, (slice(0, 2), slice(0, 2))], 4000) == [big, (slice(0, 2), slice(0, 2))]
    edits.insert(10, Edit((slice(50, 250), slice(60, 300)), 77, None, "big fill", "cells"))  # written alone
    edits.insert(30, Edit((slice(0, 300), slice(0, 200)), 78, rng.random((300, 200)) > 0.7, "big mask", "cells"))
    expected = seg.copy()
    for e in edits:
        expected[e.region] = e.apply_to(expected[e.region].copy())
    for limit in (4000, 10):  # merged writes; then every region too large: one write per edit
        q = tmp_path / f"copy{limit}.mzarr"
        shutil.copyfile(p, q)
        monkeypatch.setattr(document, "MAX_WRITE_ELEMENTS", limit)
        doc = document.Document(q)
        assert doc.save_edits(edits) == len(edits)
        doc.close()
        with Mzarr(q) as m:
            np.testing.assert_array_equal(m.label("cells")[...], expected)
            check_label_pyramid(m.label("cells"))
