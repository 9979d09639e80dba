"""GUI tests (real widgets, offscreen) of planes turned a quarter: a real brain volume (nibabel's anatomical.nii)
stored as a SAGITTAL acquisition (slices left to right, rows down the body, columns to the back) shows its axial
(y) and coronal (x) planes as radiologists read them, turned and flipped, and every tool acts on the voxel under
the pointer: the rendered pixels, the status bar, a brush stroke, the orthogonal crosshair, a measurement."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app_fixtures import grab_view, isolated_settings, open_and_wait, set_identity_grey, window  # noqa: F401
from mzarr_core import Mzarr
from mzarr_core.display import radiological_flips

nib = pytest.importorskip("nibabel")


@pytest.fixture(scope="module")
def sagittal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """anatomical.nii (an axial LAS brain, 33 x 41 x 25 voxels of 2 mm) reoriented to a sagittal acquisition:
    NIfTI i -> posterior, j -> inferior, k -> right, i.e. stored z -> R (33), y -> I (25), x -> P (41); uint8, its
    voxels made anisotropic (z 3 mm, y 2 mm, x 1 mm) so each drawn axis has its own spacing."""
    from nibabel.testing import data_path

    from mzarr_core.convert import convert

    src = Path(data_path) / "anatomical.nii"
    if not src.exists():
        pytest.skip("nibabel's bundled anatomical.nii is missing")
    img = nib.load(str(src))
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(img.affine),
                                           nib.orientations.axcodes2ornt(("P", "I", "R")))
    sag = img.as_reoriented(ornt)
    assert nib.aff2axcodes(sag.affine) == ("P", "I", "R")
    data = np.asarray(sag.dataobj, dtype=np.float64)
    data = np.round(data / data.max() * 250).astype(np.uint8)
    folder = tmp_path_factory.mktemp("sag")
    nii = folder / "sag.nii"
    affine = sag.affine @ np.diag([0.5, 1.0, 1.5, 1.0])  # i (x) 1 mm, j (y) 2 mm, k (z) 3 mm
    nib.save(nib.Nifti1Image(data, affine), str(nii))
    path = convert(nii, folder / "sag.mzarr")
    from mzarr_core import Mzarr

    with Mzarr(path) as m:
        assert m.axes == "zyx" and m.shape == (33, 25, 41) and tuple(m.spacing) == pytest.approx((3, 2, 1))
    return path


def volume(path: Path) -> tuple[np.ndarray, dict]:
    from mzarr_core import Mzarr

    with Mzarr(path) as m:
        return np.asarray(m[...]), dict(m.attrs())


def show_plane(qtbot, w, axis: str, index: int) -> None:
    """Single view: slice ``axis`` at ``index``, fitted, grey identity contrast, everything on screen."""
    w.slicing.set_axis(axis)
    w.slicing.set_index(index)
    w.view.fit()
    qtbot.waitUntil(w.view.is_idle, timeout=30000)
    set_identity_grey(w)
    qtbot.waitUntil(w.view.is_idle, timeout=30000)


def screen_grid(view, rows: int, cols: int):
    """Viewport centre (x, y) of cell (i, j) of the plane as drawn (i from the top, j from the left): the drawn
    plane's screen rectangle divided into rows x cols cells, whichever way the view turns or flips it."""
    corners = [view.mapFromScene(view.vb.mapViewToScene(QPointF(c, r))) for r, c in ((0, 0), (rows, cols))]
    x0, x1 = sorted(p.x() for p in corners)
    y0, y1 = sorted(p.y() for p in corners)

    def centre(i: int, j: int) -> QPointF:
        return QPointF(x0 + (j + 0.5) * (x1 - x0) / cols, y0 + (i + 0.5) * (y1 - y0) / rows)

    return centre


def expected_plane(vol: np.ndarray, attrs: dict, axis: str, index: int, row: str, col: str) -> np.ndarray:
    """The file's plane as a radiologist sees it: rows along ``row``, columns along ``col``, flipped as
    ``radiological_flips`` says."""
    plane = np.take(vol, index, axis="zyx".index(axis))
    kept = [a for a in "zyx" if a != axis]
    if kept.index(row) > kept.index(col):
        plane = plane.T
    up, left = radiological_flips(attrs, "zyx", row, col)
    return plane[::-1 if up else 1, ::-1 if left else 1]


def mouse(view, kind: QEvent.Type, p: QPointF, button=Qt.MouseButton.NoButton, buttons=Qt.MouseButton.NoButton):
    ev = QMouseEvent(kind, p, view.viewport().mapToGlobal(p), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), ev)


def drag(view, start: QPointF, end: QPointF, steps: int = 8) -> None:
    """A real left-button drag between two viewport points."""
    left = Qt.MouseButton.LeftButton
    mouse(view, QEvent.Type.MouseButtonPress, start, left, left)
    for i in range(1, steps + 1):
        time.sleep(0.02)  # pyqtgraph's scene drops moves closer than a screen refresh
        mouse(view, QEvent.Type.MouseMove, start + (end - start) * (i / steps), Qt.MouseButton.NoButton, left)
    mouse(view, QEvent.Type.MouseButtonRelease, end, left, Qt.MouseButton.NoButton)


def click(view, p: QPointF) -> None:
    left = Qt.MouseButton.LeftButton
    mouse(view, QEvent.Type.MouseButtonPress, p, left, left)
    mouse(view, QEvent.Type.MouseButtonRelease, p, left, Qt.MouseButton.NoButton)


def test_turned_planes_render_the_file_transposed_and_report_the_voxel(qtbot, window, sagittal) -> None:  # noqa: F811
    """The axial (y) plane has rows along x (anterior up), columns along z (the patient's right on the left); the
    coronal (x) plane rows along y (superior up), columns along z. Every drawn cell holds the file's voxel, and the
    pointer on a cell reports that voxel's coordinates and value. The sagittal z plane is as stored."""
    vol, attrs = volume(sagittal)
    w = window
    open_and_wait(qtbot, w, sagittal)
    for axis, index, (row, col) in (("y", 12, ("x", "z")), ("x", 20, ("y", "z")), ("z", 16, ("y", "x"))):
        show_plane(qtbot, w, axis, index)
        p = w.view.plane
        assert (p.slice_axis, p.slice_index, p.row, p.col) == (axis, index, row, col)
        want = expected_plane(vol, attrs, axis, index, row, col)
        assert want.std() > 10  # real anatomy, not a flat plane
        img = grab_view(w)[..., 0]
        centre = screen_grid(w.view, *want.shape)
        got = np.array([[img[int(centre(i, j).y()), int(centre(i, j).x())] for j in range(want.shape[1])]
                        for i in range(want.shape[0])])
        np.testing.assert_array_equal(got, want, err_msg=f"{axis} plane")
        # physical aspect: a drawn cell is as wide and tall as its voxel's spacing along the drawn axes, and the
        # scale bar measures the drawn columns
        mm = {"z": 3.0, "y": 2.0, "x": 1.0}
        (a, b) = (centre(0, 0), centre(1, 1))
        assert (b.x() - a.x()) / (b.y() - a.y()) == pytest.approx(mm[col] / mm[row], rel=0.02)
        bar = w.view.scale_bar
        value, unit = bar.text.split()
        length = float(value) * {"mm": 1.0, "cm": 10.0}[unit]
        assert length / bar.length_px == pytest.approx(mm[col] / (b.x() - a.x()), rel=0.02)
        # the pointer on drawn cell (i, j): the status bar names the voxel and its value from the file
        up, left = radiological_flips(attrs, "zyx", row, col)
        for i, j in ((3, 5), (want.shape[0] - 4, want.shape[1] - 7)):
            time.sleep(0.05)  # pyqtgraph's scene drops moves closer than a screen refresh
            mouse(w.view, QEvent.Type.MouseMove, centre(i, j))
            vox = {axis: index, row: want.shape[0] - 1 - i if up else i, col: want.shape[1] - 1 - j if left else j}
            z, y, x = vox["z"], vox["y"], vox["x"]
            assert w.pos_label.text().startswith(f"z={z}  y={y}  x={x}"), (axis, w.pos_label.text())
            qtbot.waitUntil(lambda: "≈" not in w.value_label.text() and "…" not in w.value_label.text(),
                            timeout=10000)
            time.sleep(0.05)
            mouse(w.view, QEvent.Type.MouseMove, centre(i, j))
            assert w.value_label.text() == f"value: {vol[z, y, x]}" == f"value: {want[i, j]}"
    # anatomy: in the axial plane anterior is up (x = 0 on the top row), the patient's right (z last) on the left
    assert radiological_flips(attrs, "zyx", "x", "z") == (False, True)
    # the overview inset draws the turned plane as the view does
    show_plane(qtbot, w, "y", 12)
    w.act_overview.trigger()
    inset = w.layout_views.inset(w.view)
    inset.refresh()
    assert inset._picture() is not None
    assert inset._array.shape[:2] == (41, 33)  # rows x (41), columns z (33), as drawn
    np.testing.assert_array_equal(inset._array[..., 0], expected_plane(vol, attrs, "y", 12, "x", "z"))



def open_axial_of_sagittal_with_labels(qtbot, w, sagittal: Path, tmp_path: Path) -> Path:
    """A copy of the sagittal volume with an empty uint8 label image "seg", opened in ``w`` on its axial plane
    y = 12 (drawn turned); the copy's path."""
    import shutil

    from mzarr_core import Mzarr

    path = Path(shutil.copy(sagittal, tmp_path / "sag.mzarr"))
    with Mzarr(path, "r+") as m:
        m.create_labels("seg", np.zeros(m.shape, np.uint8))
    open_and_wait(qtbot, w, path)
    show_plane(qtbot, w, "y", 12)
    return path


def measure_on_turned_axial(qtbot, w, sagittal: Path, tool: str):
    """``sagittal`` opened in ``w`` on its turned axial plane y = 12 with measure ``tool`` active; returns
    ``at(col, row)``: the viewport point of view (level-0) coordinates (col along z, row along x)."""
    open_and_wait(qtbot, w, sagittal)
    show_plane(qtbot, w, "y", 12)
    w.measure.set_tool(tool)
    vb = w.view.vb

    def at(col: float, row: float) -> QPointF:
        return QPointF(w.view.mapFromScene(vb.mapViewToScene(QPointF(col, row))))

    return at

def test_brush_in_a_turned_plane_paints_the_voxels_under_it(qtbot, window, sagittal, tmp_path) -> None:  # noqa: F811
    """A stroke across the axial (y) plane, from drawn column 4 to 28 on drawn row 10: the label image holds it
    along z (columns, flipped: z = 32 - column) at x = 10 (rows) on slice y = 12, saved to the file."""
    w = window
    path = open_axial_of_sagittal_with_labels(qtbot, w, sagittal, tmp_path)
    assert (w.view.plane.row, w.view.plane.col) == ("x", "z") and w.view.vb.xInverted()
    w.editing.target_box.setCurrentIndex(w.editing.target_box.findData("seg"))
    w.editing.set_tool("brush")
    w.editing.radius.setValue(1)
    w.editing.value.setValue(7)
    centre = screen_grid(w.view, 41, 33)
    before = grab_view(w)
    drag(w.view, centre(10, 4), centre(10, 28))
    assert len(w.model.edits) == 1
    qtbot.waitUntil(w.view.is_idle, timeout=30000)
    # the pending stroke is drawn in the label overlay where it was painted, and read back under the pointer
    after = grab_view(w)

    def changed(i: int, j: int) -> bool:
        p = centre(i, j)
        return bool((before[int(p.y()), int(p.x())] != after[int(p.y()), int(p.x())]).any())

    assert all(changed(10, j) for j in range(8, 25)) and not any(changed(i, 16) for i in (5, 15, 30))
    (seg_value,) = w.view.label_values(10.5, 16.5)  # view row x = 10, column z = 16 (drawn column 32 - 16)
    assert seg_value["name"] == "seg" and seg_value["value"] == 7
    w.editing.set_tool(None)
    assert w.save(), w.last_error
    seg = Mzarr(path).label("seg")[...]
    z, y, x = np.nonzero(seg == 7)
    assert set(y.tolist()) == {12} and set(x.tolist()) <= {9, 10, 11}
    assert set(range(32 - 26, 32 - 6)) <= set(z[x == 10].tolist()) <= set(range(32 - 30, 32 - 2 + 1))
    assert (seg != 0).sum() == len(z)


def test_ortho_crosshair_in_a_turned_view_moves_the_others(qtbot, window, sagittal) -> None:  # noqa: F811
    """Orthogonal layout of the sagittal acquisition: the y view (axial) is turned; a click on its drawn cell
    (row i, column j) puts the cursor on voxel x = i, z = 32 - j; the z and x views show those slices, the
    crosshair lines cross at the click, and every view's tiles hold the file's pixels."""
    vol, attrs = volume(sagittal)
    w = window
    open_and_wait(qtbot, w, sagittal)
    w.findChild(type(w.act_ortho), "actLayoutOrtho").trigger()
    lv = w.layout_views
    for v in lv.extra:
        v.setFixedSize(400, 300)
    qtbot.wait(20)
    lv.fit()
    qtbot.waitUntil(lv.is_idle, timeout=30000)
    zview, yview, xview = lv.views()
    assert [(v.plane.row, v.plane.col) for v in lv.views()] == [("y", "x"), ("x", "z"), ("y", "z")]
    y0 = lv.position[1]
    centre = screen_grid(yview, 41, 33)
    click(yview, centre(30, 5))  # drawn row 30 (x = 30), column 5 (z = 32 - 5)
    assert lv.position == [27, y0, 30]
    qtbot.waitUntil(lv.is_idle, timeout=30000)
    assert zview.plane.slice_index == 27 and xview.plane.slice_index == 30 and w.slicing.spin.value() == 27
    ch = lv._crosshairs[id(yview)]
    assert (ch.vline.value(), ch.hline.value()) == (27.5, 30.5)  # view columns z, rows x
    ch = lv._crosshairs[id(xview)]
    assert (ch.vline.value(), ch.hline.value()) == (27.5, y0 + 0.5)  # view columns z, rows y
    # a click in the turned x view (coronal: rows y, columns z) moves y and z
    centre = screen_grid(xview, 25, 33)
    click(xview, centre(4, 20))
    assert lv.position == [12, 4, 30]
    qtbot.waitUntil(lv.is_idle, timeout=30000)
    assert yview.plane.slice_index == 4 and zview.plane.slice_index == 12
    for v in lv.views():
        p = v.plane
        for key, raw in v.shown_tiles().items():
            assert key.level == 0 or raw.size
        want = expected_plane(vol, attrs, p.slice_axis, p.slice_index, p.row, p.col)
        up, left = radiological_flips(attrs, "zyx", p.row, p.col)
        whole = want[::-1 if up else 1, ::-1 if left else 1]  # back to (row, col) index order
        for key, raw in v.shown_tiles().items():
            if key.level:
                continue
            lev = w.doc.levels[0]
            from mzarr_app.tiles import tile_rect

            tx, ty, tw, th = tile_rect(lev, p, key)
            np.testing.assert_array_equal(raw, whole[int(ty):int(ty + th), int(tx):int(tx + tw)])
    # the info panel's value is the cursor's voxel
    assert f"value {vol[12, 4, 30]}" in lv.info.text()


def test_measurement_in_a_turned_plane_is_stored_in_the_planes_own_axes(qtbot, window, sagittal) -> None:  # noqa: F811
    """A rectangle drawn on the turned axial plane is stored as the library's annotations are (x, y = the plane's
    stored columns x and rows z), drawn back where it was drawn, and measured over those voxels."""
    from mzarr_core.annotations import Annotation
    from mzarr_core.regions import region_stats

    vol, _attrs = volume(sagittal)
    w = window
    at = measure_on_turned_axial(qtbot, w, sagittal, "measure_rect")

    with qtbot.waitSignal(w.measure.measured, timeout=20000):
        drag(w.view, at(5.2, 8.2), at(20.2, 30.2))  # z 5..20, x 8..30 (view x = z, view y = x)
    (a,) = w.measure.items
    assert a.plane == ("y", 12) and a.kind == "rectangle"
    np.testing.assert_allclose(a.bounds(), (8.2, 5.2, 30.2, 20.2), atol=0.15)  # (x0, y0, x1, y1): x, then z
    from mzarr_core import Mzarr

    with Mzarr(sagittal) as m:
        want = region_stats(m, Annotation("rectangle", [(a.bounds()[0], a.bounds()[1]), (a.bounds()[2],
                                                                                          a.bounds()[3])],
                                          plane=("y", 12)))
    got = w.measure.results[a.id]
    assert got.count == want.count > 200 and got.mean[0] == pytest.approx(want.mean[0])
    block = vol[6:20, 12, 9:30]  # voxels well inside the rectangle are counted
    assert got.min[0] <= block.min() and got.max[0] >= block.max()
    (item, *_rest) = w.measure.drawn_in(w.view)
    r = item.path().boundingRect()
    assert (r.left(), r.top(), r.right(), r.bottom()) == pytest.approx((5.2, 8.2, 20.2, 30.2), abs=0.15)


def test_planes_follow_a_geometry_saved_or_changed_on_disk(qtbot, window, sagittal, tmp_path) -> None:  # noqa: F811
    """Deleting the patient geometry in the Metadata panel and saving draws every plane in the stored order again
    (no quarter turn, no flip); the geometry written back by another program turns them again."""
    import shutil

    from mzarr_core import Mzarr

    path = Path(shutil.copy(sagittal, tmp_path / "sag.mzarr"))
    with Mzarr(path) as m:
        affine = m.attrs()["nifti_affine"]
    w = window
    open_and_wait(qtbot, w, path)
    show_plane(qtbot, w, "y", 12)
    w.findChild(type(w.act_ortho), "actLayoutOrtho").trigger()
    lv = w.layout_views
    qtbot.waitUntil(lv.is_idle, timeout=30000)
    turned = [("y", "x"), ("x", "z"), ("y", "z")]
    assert [(v.plane.row, v.plane.col) for v in lv.views()] == turned
    tree = w.metadata.tree
    (item,) = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
               if tree.topLevelItem(i).text(0) == "nifti_affine"]
    w.metadata.delete_item(item)
    assert w.metadata.dirty and w.save(), w.last_error
    assert "nifti_affine" not in Mzarr(path).attrs()
    assert [(v.plane.row, v.plane.col) for v in lv.views()] == [("y", "x"), ("z", "x"), ("z", "y")]
    assert all(v.vb.yInverted() and not v.vb.xInverted() for v in lv.views())  # row 0 top, column 0 left
    qtbot.waitUntil(lv.is_idle, timeout=30000)
    w.findChild(type(w.act_ortho), "actLayoutSingle").trigger()
    w.slicing.set_axis("y")
    assert (w.view.plane.row, w.view.plane.col) == ("z", "x")
    with Mzarr(path, "r+") as m:  # another program writes the geometry back
        m.attrs()["nifti_affine"] = affine
    qtbot.waitUntil(lambda: (w.view.plane.row, w.view.plane.col) == ("x", "z"), timeout=10000)
    assert w.view.vb.xInverted()  # the patient's right on the left again


def test_ruler_and_go_to_in_a_turned_plane(qtbot, window, sagittal) -> None:  # noqa: F811
    """A ruler drawn down the turned axial plane's columns (z) at row x = 20: its length is in the drawn axes'
    spacing (z 3 mm), its profile the file's voxels along z, and Go to shows it where it was drawn."""
    vol, _attrs = volume(sagittal)
    w = window
    at = measure_on_turned_axial(qtbot, w, sagittal, "measure_line")

    with qtbot.waitSignal(w.measure.measured, timeout=20000):
        drag(w.view, at(3.5, 20.5), at(28.5, 20.5))  # z 3.5 -> 28.5 along the drawn row x = 20
    (a,) = w.measure.items
    np.testing.assert_allclose(np.asarray(a.points), [(20.5, 3.5), (20.5, 28.5)], atol=0.1)  # (x, z)
    prof = w.measure.results[a.id]
    assert prof.length == pytest.approx(25 * 3.0, rel=0.02)  # 25 voxels of 3 mm
    assert prof.values[0] == vol[3, 12, 20] and prof.values[-1] == vol[28, 12, 20]
    assert set(np.asarray(prof.values).ravel().tolist()) <= set(vol[3:29, 12, 20].tolist())
    (_path, label) = w.measure.drawn_in(w.view)
    text = label.toPlainText()  # the drawn ruler's label: the same length, e.g. "Line 1: 75.02 mm (25.01 px)"
    assert text.split()[3] == "mm" and float(text.split()[2]) == pytest.approx(prof.length, abs=0.01)
    w.view.zoom(0.2)
    w.measure.jump(a.id)
    r = w.view.vb.viewRect()
    c = r.center()  # centred on the ruler as drawn: view column z 16, row x 20.5 (not x 16, z 20.5)
    assert (c.x(), c.y()) == pytest.approx((16.0, 20.5), abs=0.1) and r.left() < 3.5 and r.right() > 28.5


def test_fill_pick_and_polygon_in_a_turned_plane(qtbot, window, sagittal, tmp_path) -> None:  # noqa: F811
    """On the turned axial plane of a label image: a stroke across the whole drawn row 10 splits the plane; a fill
    above it fills the voxels with x < 10 only; pick on the stroke reads its value; a polygon sets the voxels under
    its drawn triangle (x = drawn row, z = 32 - drawn column)."""
    w = window
    path = open_axial_of_sagittal_with_labels(qtbot, w, sagittal, tmp_path)
    w.view.zoom(0.8)  # room around the plane: the stroke starts and ends outside it
    qtbot.waitUntil(w.view.is_idle, timeout=30000)
    centre = screen_grid(w.view, 41, 33)
    w.editing.target_box.setCurrentIndex(w.editing.target_box.findData("seg"))
    w.editing.set_tool("brush")
    w.editing.radius.setValue(1)
    w.editing.value.setValue(7)
    drag(w.view, centre(10, -2), centre(10, 34), steps=12)
    w.editing.set_tool("fill")
    w.editing.value.setValue(9)
    qtbot.mouseClick(w.view.viewport(), Qt.MouseButton.LeftButton, pos=centre(3, 16).toPoint())
    w.editing.set_tool("pick")
    w.editing.value.setValue(0)
    qtbot.mouseClick(w.view.viewport(), Qt.MouseButton.LeftButton, pos=centre(10, 16).toPoint())
    assert w.editing.value.value() == 7
    w.editing.set_tool("polygon")
    w.editing.value.setValue(8)
    for i, j in ((25, 2), (25, 30), (38, 2)):
        qtbot.mouseClick(w.view.viewport(), Qt.MouseButton.LeftButton, pos=centre(i, j).toPoint())
        qtbot.wait(30)
    assert w.view.vb.finish_polygon()
    w.editing.set_tool(None)
    assert len(w.model.edits) == 3
    assert w.save(), w.last_error
    seg = Mzarr(path).label("seg")[...]
    plane = seg[:, 12, :]  # (z, x)
    assert (seg[:, [y for y in range(25) if y != 12], :] == 0).all()
    assert (plane[:, 10] == 7).all()  # the stroke: every z at x = 10
    stroke_x = sorted(set(np.nonzero(plane == 7)[1].tolist()))
    assert stroke_x[0] >= 9 and stroke_x[-1] <= 11
    assert (plane[:, :stroke_x[0]] == 9).all() and not (plane[:, stroke_x[-1] + 1:] == 9).any()
    assert plane[32 - 6, 28] == 8 and plane[32 - 28, 36] == 0  # drawn cells (28, 6) inside, (36, 28) outside
    assert set(np.nonzero(plane == 8)[1].tolist()) <= set(range(25, 39))  # rows of the drawn triangle: x
