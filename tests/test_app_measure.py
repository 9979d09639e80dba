"""GUI tests of the measurement and annotation tools (issue 10, deliverable 4; issue 11's ruler): real mouse
gestures on the view, measurements checked against NumPy on the full-resolution pixels, the Annotations panel,
saving in the file, GeoJSON, progress and cancel, volumes' planes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app_fixtures import (grab_view, image_copy, image_dir, isolated_settings, open_and_wait, volume_3d,  # noqa: F401
                          wait_idle, window)
from mzarr_app import measure as M
from mzarr_app.panels.annotations import DEFAULT_COLOR
from mzarr_core import Mzarr
from mzarr_core.annotations import Annotation
from mzarr_core.regions import region_mask
from test_app_window import drag


def screen(w, x: float, y: float) -> QPoint:
    """The viewport position of level-0 point (x, y)."""
    p = w.view.mapFromScene(w.view.vb.mapViewToScene(QPointF(x, y)))
    return QPoint(int(p.x()), int(p.y()))


def level0(w, p: QPoint) -> tuple[float, float]:
    """The level-0 (x, y) under viewport position ``p`` (what the tools receive)."""
    v = w.view.vb.mapSceneToView(w.view.mapToScene(p))
    return v.x(), v.y()


def click(widget, p: QPoint, double: bool = False) -> None:
    """A real left click (or double click) at ``p``."""
    left, none, mods = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier

    def send(kind, button, buttons):
        QApplication.sendEvent(widget, QMouseEvent(kind, QPointF(p), QPointF(widget.mapToGlobal(p)), button, buttons, mods))

    send(QEvent.Type.MouseButtonPress, left, left)
    send(QEvent.Type.MouseButtonRelease, left, none)
    if double:
        send(QEvent.Type.MouseButtonDblClick, left, left)
        send(QEvent.Type.MouseButtonRelease, left, none)
    QApplication.processEvents()


def wait_measured(qtbot, w) -> None:
    qtbot.waitUntil(lambda: not w.measure.busy, timeout=20000)


def test_ruler_shows_physical_length_live_and_plots_the_full_resolution_profile(qtbot, window, image_copy) -> None:
    path = image_copy("mosaic")  # 2048 x 3072 uint8, 0.25 µm pixels
    full = Mzarr(path).numpy()
    w = window
    open_and_wait(qtbot, w, path)
    w.view.show_rect(0, 0, 640, 480)
    wait_idle(qtbot, w)
    qtbot.mouseClick(w.measure.panel.tool_buttons["measure_line"], Qt.MouseButton.LeftButton)
    assert w.view.vb.tool == "measure_line" and w.editing.tool() is None
    a, b = screen(w, 100, 100), screen(w, 400, 500)
    vp = w.view.viewport()
    drag(vp, [a, QPoint((a.x() + b.x()) // 2, (a.y() + b.y()) // 2), b])
    assert len(w.measure.items) == 1
    line = w.measure.items[0]
    (x0, y0), (x1, y1) = line.points
    assert (x0, y0) == pytest.approx(level0(w, a)) and (x1, y1) == pytest.approx(level0(w, b))
    px = float(np.hypot(x1 - x0, y1 - y0))
    msg = w.statusBar().currentMessage()
    assert msg == f"Length {M.format_length(px * 0.25, 'micrometer')} ({px:.4g} px)" and "µm" in msg
    wait_measured(qtbot, w)
    n = int(np.ceil(px)) + 1
    t = np.linspace(0, 1, n)
    expected = full[np.floor(y0 + (y1 - y0) * t).astype(int), np.floor(x0 + (x1 - x0) * t).astype(int)]
    curves = w.measure.panel.profile.getPlotItem().listDataItems()
    assert len(curves) == 1 and w.measure.panel.profile.isVisible()
    xs, ys = curves[0].getData()
    np.testing.assert_array_equal(ys, expected.astype(float))
    assert xs[-1] == pytest.approx(px * 0.25)
    assert w.measure.panel.result.text().startswith(f"Length: {M.format_length(px * 0.25, 'micrometer')}")
    # drawn on the view in the annotation colour (the rendered pixels along the line)
    wait_idle(qtbot, w)
    img = grab_view(w)
    mid = screen(w, (x0 + x1) / 2, (y0 + y1) / 2)
    patch = img[mid.y() - 2:mid.y() + 3, mid.x() - 2:mid.x() + 3, :3].reshape(-1, 3)
    assert any(np.abs(patch.astype(int) - DEFAULT_COLOR).max(axis=1) <= 40)
    assert w.isWindowModified()


def test_polygon_statistics_equal_numpy_edit_in_panel_and_save(qtbot, window, image_copy) -> None:
    path = image_copy("mosaic")
    full = Mzarr(path).numpy()
    w = window
    open_and_wait(qtbot, w, path)
    w.view.show_rect(200, 200, 840, 680)
    wait_idle(qtbot, w)
    w.measure.set_tool("measure_polygon")
    vp = w.view.viewport()
    corners = [screen(w, x, y) for x, y in ((250, 250), (700, 300), (650, 600), (300, 550))]
    for p in corners[:-1]:
        click(vp, p)
    click(vp, corners[-1], double=True)
    assert [a.kind for a in w.measure.items] == ["polygon"]
    poly = w.measure.items[0]
    assert len(poly.points) == 4 and poly.name == "Polygon 1"
    wait_measured(qtbot, w)
    stats = w.measure.results[poly.id]
    mask = region_mask(poly, (0, full.shape[0]), (0, full.shape[1]))
    values = full[mask]
    assert stats.count == values.size and stats.mean[0] == values.mean() and stats.std[0] == pytest.approx(values.std())
    assert (stats.min[0], stats.max[0]) == (values.min(), values.max())
    assert stats.area == pytest.approx(values.size * 0.0625)
    text = w.measure.panel.result.text()
    assert f"({values.size} px)" in text and f"mean {values.mean():.6g}" in text and "µm²" in text
    curves = w.measure.panel.profile.getPlotItem().listDataItems()  # the region's histogram, integer-aligned bins
    lo, hi = int(values.min()), int(values.max())
    width = -(-(hi - lo + 1) // 256)
    counts, edges = np.histogram(values, lo - 0.5 + width * np.arange(-(-(hi - lo + 1) // width) + 1))
    assert len(curves) == 1 and w.measure.panel.profile.isVisible()
    np.testing.assert_array_equal(curves[0].yData, counts.astype(float))
    np.testing.assert_array_equal(curves[0].xData, edges)
    # rename in place, class and colour from the panel
    item = w.measure.panel.list.topLevelItem(0)
    item.setText(0, "tumour edge")
    assert w.measure.items[0].name == "tumour edge"
    w.measure.panel.class_edit.setText("Tumor")
    w.measure.panel.class_edit.editingFinished.emit()
    w.measure.panel.set_color((200, 0, 0))
    assert w.measure.items[0].class_name == "Tumor" and w.measure.items[0].color == (200, 0, 0)
    assert w.measure.panel.item_texts() == [["tumour edge", "polygon", "Tumor", ""]]
    assert w.isWindowModified()
    assert Mzarr(path).annotations() == []  # pending until Save
    assert w.save()
    assert not w.isWindowModified()
    assert Mzarr(path).annotations() == w.measure.items
    # reopening shows them again
    w.open_path(str(path))
    assert [a.name for a in w.measure.items] == ["tumour edge"]
    assert w.measure.panel.item_texts()[0][0] == "tumour edge"


def test_big_region_shows_progress_and_cancels(qtbot, window, image_copy, monkeypatch) -> None:
    import mzarr_app.measure_tools as tools_mod

    path = image_copy("mosaic")
    w = window
    open_and_wait(qtbot, w, path)
    monkeypatch.setattr(M, "BIG_REGION_PX", 10_000)
    real = tools_mod.region_stats
    seen: list[tuple[int, int]] = []

    def slow(image, shape, progress=None, **kw):
        def report(done, total):
            seen.append((done, total))
            time.sleep(0.05)
            progress(done, total)
        return real(image, shape, progress=report, window=64, **kw)

    monkeypatch.setattr(tools_mod, "region_stats", slow)
    rect = Annotation("rectangle", [(0, 0), (3072, 2048)], name="everything")
    w.measure.add(rect)
    dlg = w.measure.progress_dialog
    assert dlg is not None and dlg.isVisible()
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=10000)
    qtbot.waitUntil(lambda: dlg.value() > 0, timeout=5000)
    assert dlg.maximum() == seen[0][1] == 4 * 6  # windows are whole 512² chunks
    from PySide6.QtWidgets import QPushButton

    qtbot.mouseClick(dlg.findChild(QPushButton), Qt.MouseButton.LeftButton)  # the dialog's Cancel button
    wait_measured(qtbot, w)
    assert w.measure.progress_dialog is None and rect.id not in w.measure.results
    assert w.measure.panel.result.text().startswith("Cancelled")
    assert len(seen) < 4 * 6
    # measured again to the end: the whole image
    monkeypatch.setattr(tools_mod, "region_stats", real)
    w.measure.measure(rect)
    wait_measured(qtbot, w)
    full = Mzarr(path).numpy()
    assert w.measure.results[rect.id].count == full.size and w.measure.results[rect.id].mean[0] == full.mean()


def test_rectangle_over_nan_pixels_measures_the_finite_ones(qtbot, window, tmp_path: Path) -> None:
    """A parameter map with NaN for "no data" and an Inf: the rectangle's panel shows the statistics of the finite
    pixels (equal to NumPy) and how many NaN/Inf pixels were left out, not "Could not measure"."""
    arr = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    arr[10:20, 10:20] = np.nan
    arr[0, 0] = np.inf
    path = Mzarr(arr).save(tmp_path / "nan.mzarr")
    w = window
    open_and_wait(qtbot, w, path)
    w.view.show_rect(0, 0, 64, 64)
    wait_idle(qtbot, w)
    w.measure.set_tool("measure_rect")
    drag(w.view.viewport(), [screen(w, 0, 0), screen(w, 15, 15), screen(w, 30, 30)])
    rect = w.measure.items[0]
    wait_measured(qtbot, w)
    region = arr[region_mask(rect, (0, 64), (0, 64))]
    finite = region[np.isfinite(region)]
    assert 100 < region.size and finite.size == region.size - 101
    stats = w.measure.results[rect.id]
    assert (stats.count, stats.nan, stats.posinf) == (region.size, (100,), (1,))
    assert stats.mean[0] == pytest.approx(finite.astype(np.float64).mean(), rel=1e-13)
    text = w.measure.panel.result.text()
    assert f"mean {stats.mean[0]:.6g}" in text and f"left out: 100 NaN, 1 +Inf (statistics over {finite.size} finite px)" in text
    assert "Could not measure" not in text
    curves = w.measure.panel.profile.getPlotItem().listDataItems()
    np.testing.assert_array_equal(curves[0].yData, np.histogram(finite, 256)[0].astype(float))


def test_volume_plane_point_ellipse_and_jump(qtbot, window, image_copy) -> None:
    path = image_copy("volume")  # 96 x 200 x 260 uint16, spacing (2, 0.5, 0.5)
    vol = volume_3d()
    w = window
    open_and_wait(qtbot, w, path)
    w.slicing.axis.setCurrentText("y")
    w.slicing.spin.setValue(50)
    wait_idle(qtbot, w)
    assert (w.view.plane.row, w.view.plane.col) == ("z", "x")
    w.view.show_rect(0, 0, 260, 96)
    wait_idle(qtbot, w)
    w.measure.set_tool("measure_ellipse")
    vp = w.view.viewport()
    drag(vp, [screen(w, 20, 10), screen(w, 120, 50), screen(w, 200, 80)])
    ell = w.measure.items[0]
    assert ell.kind == "ellipse" and ell.plane == ("y", 50)
    wait_measured(qtbot, w)
    plane = vol[:, 50, :]
    mask = region_mask(ell, plane.shape and (0, plane.shape[0]), (0, plane.shape[1]))
    stats = w.measure.results[ell.id]
    assert stats.count == mask.sum() and stats.mean[0] == plane[mask].mean()
    assert stats.area == pytest.approx(mask.sum() * 2.0 * 0.5)  # a z row is 2, an x column 0.5
    w.measure.set_tool("measure_point")
    click(vp, screen(w, 130, 40))
    pt = w.measure.items[1]
    assert pt.kind == "point" and pt.name == "Point 1" and pt.plane == ("y", 50)
    assert pt.points[0] == pytest.approx(level0(w, screen(w, 130, 40)))
    assert w.measure.panel.result.text().startswith("Position: x 13")
    assert len(w.measure.drawn_in(w.view)) >= 3  # ellipse, its label, the point (and its label)
    # another plane: nothing of this plane is drawn; Go to comes back
    w.slicing.axis.setCurrentText("z")
    wait_idle(qtbot, w)
    assert w.measure.drawn_in(w.view) == []
    w.measure.panel.select(ell.id)
    qtbot.mouseClick(w.measure.panel.goto_button, Qt.MouseButton.LeftButton)
    assert w.slicing.axis.currentText() == "y" and w.slicing.spin.value() == 50
    assert w.view.plane.slice_axis == "y" and w.measure.drawn_in(w.view)
    x0, y0, x1, y1 = w.view.visible_rect()
    assert x0 <= ell.bounds()[0] and x1 >= ell.bounds()[2]
    assert w.save()
    assert Mzarr(path).annotations() == w.measure.items


def test_geojson_import_export_and_delete(qtbot, window, image_copy, tmp_path: Path) -> None:
    path = image_copy("mosaic")
    w = window
    open_and_wait(qtbot, w, path)
    src = tmp_path / "q.geojson"
    src.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "a-1", "geometry": {"type": "Polygon", "coordinates": [
            [[10, 10], [300, 20], [200, 250], [10, 10]]]},
         "properties": {"objectType": "annotation", "name": "Region 1",
                        "classification": {"name": "Tumor", "color": [200, 0, 0]}, "isLocked": False}},
        {"type": "Feature", "id": "b-2", "geometry": {"type": "Point", "coordinates": [50, 60]},
         "properties": {"objectType": "annotation", "name": "mitosis"}},
    ]}))
    assert w.measure.act_import.isEnabled()
    assert w.measure.import_geojson(str(src)) == 2
    assert w.measure.panel.item_texts() == [["Region 1", "polygon", "Tumor", ""], ["mitosis", "point", "", ""]]
    assert w.isWindowModified()
    out = tmp_path / "out.geojson"
    assert w.measure.export_geojson(str(out)) == 2
    features = json.loads(out.read_text())["features"]
    assert [f["id"] for f in features] == ["a-1", "b-2"]
    assert features[0]["properties"]["classification"] == {"name": "Tumor", "color": [200, 0, 0]}
    w.measure.panel.select("a-1")
    wait_measured(qtbot, w)
    qtbot.mouseClick(w.measure.panel.delete_button, Qt.MouseButton.LeftButton)
    assert [a.id for a in w.measure.items] == ["b-2"]
    bad = tmp_path / "bad.geojson"
    bad.write_text("{nope")
    with pytest.raises(Exception, match="not valid GeoJSON"):
        w.measure.import_geojson(str(bad))
    assert [a.id for a in w.measure.items] == ["b-2"]


def test_measure_helpers_are_qt_free_geometry() -> None:
    from mzarr_app.tiles import Plane

    p2 = Plane("yx", "y", "x")
    p3 = Plane("zyx", "z", "x", "y", 7)
    assert M.shape_from_drag("measure_rect", (1, 1), (1, 5), p2) is None  # no area
    assert M.shape_from_drag("measure_line", (1, 1), (1, 1), p2) is None
    r = M.shape_from_drag("measure_rect", (5, 6), (1, 2), p3, name="r")
    assert r.kind == "rectangle" and r.plane == ("y", 7) and r.bounds() == (1, 2, 5, 6)
    poly = M.polygon_from_clicks([(0, 0), (0, 0), (4, 0), (4, 4), (4, 4), (0, 0)], p2)
    assert poly.points == ((0, 0), (4, 0), (4, 4))
    assert M.polygon_from_clicks([(0, 0), (1, 1), (1, 1)], p2) is None
    assert M.format_area(2.5e6, "micrometer") == "2.5 mm²" and M.format_area(3.0, "micrometer") == "3 µm²"
    assert M.format_area(3.0, "") == "3"
    assert M.length_text([(0, 0), (3, 4)], (2.0, 1.0), "millimeter") == f"{M.format_length(np.hypot(3, 8), 'millimeter')} (5 px)"
    items = [Annotation("polygon", [(0, 0), (1, 0), (0, 1)], name="Polygon 2")]
    assert M.next_name(items, "polygon") == "Polygon 3" and M.next_name(items, "point") == "Point 1"
    assert M.on_plane(r, p3) and not M.on_plane(r, Plane("zyx", "z", "x", "y", 8))


def test_measure_geometry_imports_with_qt_blocked() -> None:
    import subprocess
    import sys

    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6'):
            raise ImportError('blocked: ' + name)
        return None
sys.meta_path.insert(0, Block())
import mzarr_app.measure as M
from mzarr_app.tiles import Plane
a = M.shape_from_drag('measure_line', (0, 0), (3, 4), Plane('yx', 'y', 'x'))
assert a.kind == 'line' and M.length_text(a.points, None, None) == '5 px'
assert not any(m.split('.')[0] in ('PySide6', 'pyqtgraph') for m in sys.modules)
print('ok')
"""
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_annotation_changes_are_undoable_and_clean_again_at_the_saved_state(qtbot, window, image_copy) -> None:
    path = image_copy("mosaic")
    w = window
    open_and_wait(qtbot, w, path)
    first = Annotation("rectangle", [(10, 10), (60, 40)], name="box")
    w.measure.add(first)
    assert w.save() and not w.isWindowModified()
    w.measure.add(Annotation("point", [(5, 5)], name="p"))
    w.measure.rename(first.id, "renamed")
    assert [a.name for a in w.measure.items] == ["renamed", "p"] and w.isWindowModified()
    assert "rename annotation" in w.act_undo.text()
    w.act_undo.trigger()
    assert [a.name for a in w.measure.items] == ["box", "p"]
    assert w.measure.panel.item_texts()[0][0] == "box"
    w.act_undo.trigger()
    assert [a.name for a in w.measure.items] == ["box"] and not w.isWindowModified()  # back to what is saved
    w.act_redo.trigger()
    w.act_redo.trigger()
    assert [a.name for a in w.measure.items] == ["renamed", "p"] and w.isWindowModified()
    w.measure.delete(first.id)
    assert [a.name for a in w.measure.items] == ["p"]
    w.act_undo.trigger()
    assert [a.name for a in w.measure.items] == ["renamed", "p"]
    assert w.save() and Mzarr(path).annotations() == w.measure.items


def test_orthogonal_views_each_draw_the_annotations_of_their_plane(qtbot, window, image_copy) -> None:
    path = image_copy("volume")  # 96 x 200 x 260
    w = window
    open_and_wait(qtbot, w, path)
    on_z = Annotation("rectangle", [(20, 30), (120, 90)], name="axial box", plane=("z", 40))
    on_y = Annotation("ellipse", [(30, 10), (200, 60)], name="coronal oval", plane=("y", 100))
    w.measure.add(on_z)
    w.measure.add(on_y)
    w.findChild(type(w.act_ortho), "actLayoutOrtho").trigger()
    lv = w.layout_views
    qtbot.waitUntil(lambda: lv.active, timeout=5000)
    lv.set_position([40, 100, 130])
    qtbot.waitUntil(lambda: lv.view_of("y").plane is not None and lv.view_of("y").plane.slice_index == 100,
                    timeout=5000)
    wait_idle(qtbot, w)
    assert len(w.measure.drawn_in(lv.view_of("z"))) == 2  # the box and its label
    assert len(w.measure.drawn_in(lv.view_of("y"))) == 2  # the oval and its label
    assert w.measure.drawn_in(lv.view_of("x")) == []
    lv.set_position([41, 101, 130])  # neither plane any more
    assert all(w.measure.drawn_in(lv.view_of(a)) == [] for a in "zyx")
