"""GUI tests of the orthogonal layout (View > Layout): three views of a volume through a linked crosshair, zoom and
pan shared along common axes, one decoded-chunk cache for the three (real widgets, offscreen)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

import mzarr_app.tiles as T
from app_fixtures import grab_view, image_copy, image_dir, open_and_wait, read_log, set_identity_grey  # noqa: F401
from app_fixtures import isolated_settings, window  # noqa: F401 - fixtures
from mzarr_app.ortho import ORTHO, SINGLE


def wait_all(qtbot, w, timeout: float = 30.0) -> None:
    """Wait until every view on screen is idle."""
    qtbot.waitUntil(w.layout_views.is_idle, timeout=int(timeout * 1000))


def ortho(qtbot, w, path: Path) -> None:
    """Open ``path`` and switch to the orthogonal layout (View > Layout > Orthogonal views)."""
    open_and_wait(qtbot, w, path)
    assert w.act_ortho.isEnabled()
    w.findChild(type(w.act_ortho), "actLayoutOrtho").trigger()
    for v in w.layout_views.extra:
        v.setFixedSize(400, 300)
    qtbot.wait(20)
    w.layout_views.fit()
    wait_all(qtbot, w)


def check_tiles(view, m) -> int:
    """Every tile on screen of ``view`` holds exactly the file's pixels of its plane; returns how many."""
    p = view.plane
    n = 0
    for key, raw in view.shown_tiles().items():
        lev = m.levels[key.level]
        x, y, tw, th = T.tile_rect(lev, p, key)
        f = dict(zip(p.axes, lev.factor))
        sel = {p.slice_axis: p.slice_index // f[p.slice_axis],
               p.row: slice(int(y) // f[p.row], int(y + th) // f[p.row]),
               p.col: slice(int(x) // f[p.col], int(x + tw) // f[p.col])}
        want = lev[tuple(sel[a] for a in p.axes)]
        if p.axes.index(p.row) > p.axes.index(p.col):
            want = want.T
        np.testing.assert_array_equal(raw, want)
        n += 1
    return n


def click(view, row: float, col: float) -> None:
    """A real left click (press + release) on level-0 point (row, col) of ``view``."""
    sp = view.vb.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    vp = view.mapFromScene(sp)
    for kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease):
        buttons = Qt.MouseButton.LeftButton if kind == QEvent.Type.MouseButtonPress else Qt.MouseButton.NoButton
        ev = QMouseEvent(kind, QPointF(vp), view.viewport().mapToGlobal(QPointF(vp)), Qt.MouseButton.LeftButton,
                         buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(view.viewport(), ev)


def drag(view, start: QPointF, end: QPointF, steps: int = 6) -> None:
    """A real left-button drag in ``view`` between two viewport points."""
    def send(kind, p: QPointF, buttons) -> None:
        ev = QMouseEvent(kind, p, view.viewport().mapToGlobal(p), Qt.MouseButton.LeftButton if kind !=
                         QEvent.Type.MouseMove else Qt.MouseButton.NoButton, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(view.viewport(), ev)

    left = Qt.MouseButton.LeftButton
    send(QEvent.Type.MouseButtonPress, start, left)
    for i in range(1, steps + 1):
        time.sleep(0.02)  # pyqtgraph's scene drops moves closer than a screen refresh
        send(QEvent.Type.MouseMove, start + (end - start) * (i / steps), left)
    send(QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def test_layout_switch_shows_three_planes_of_the_file(qtbot, window, image_dir) -> None:  # noqa: F811 - fixtures
    from mzarr_core import Mzarr

    w = window
    ortho(qtbot, w, image_dir / "volume.mzarr")
    lv = w.layout_views
    assert lv.mode == ORTHO and lv.active and w.act_ortho.isChecked() and not w.act_single.isChecked()
    views = lv.views()
    assert len(views) == 3 and views[0] is w.view and all(v.isVisible() for v in views) and lv.info.isVisible()
    z, y, x = (96, 200, 260)
    assert lv.position == [48, 100, 130]
    assert [(v.plane.slice_axis, v.plane.slice_index) for v in views] == [("z", 48), ("y", 100), ("x", 130)]
    assert [(v.plane.row, v.plane.col) for v in views] == [("y", "x"), ("z", "x"), ("z", "y")]
    assert not w.slicing.axis.isEnabled() and w.slicing.spin.value() == 48  # the main view is the z view
    m = Mzarr(image_dir / "volume.mzarr")
    assert all(check_tiles(v, m) for v in views)
    assert "axial  z 48/95" in lv.caption("z") and "coronal  y 100/199" in lv.caption("y")
    assert lv.caption("x") == "sagittal  x 130/259  65.25 µm"  # (130 + 0.5) * 0.5 µm (no unit: µm)
    assert "z = 48  y = 100  x = 130" in lv.info.text()
    # back to a single view: the other views stop (no document, no loader), the slice axis can be chosen again
    w.findChild(type(w.act_ortho), "actLayoutToggle").trigger()
    assert lv.mode == SINGLE and not lv.active and lv.views() == [w.view]
    assert all(v.doc is None and v.loader is None and not v.isVisible() for v in lv.extra)
    assert w.slicing.axis.isEnabled() and not lv.info.isVisible() and w.doc.cache_users() == 1


def test_click_moves_the_other_views_planes(qtbot, window, image_dir) -> None:  # noqa: F811 - fixtures
    from mzarr_core import Mzarr

    w = window
    ortho(qtbot, w, image_dir / "volume.mzarr")
    lv = w.layout_views
    axial, coronal, sagittal = lv.views()
    set_identity_grey(w, 0, 4000)
    wait_all(qtbot, w)
    before = grab_view_of(coronal)
    click(axial, 37, 201)  # row y=37, column x=201 of the axial plane
    assert lv.position == [48, 37, 201]
    assert coronal.plane.slice_axis == "y" and coronal.plane.slice_index == 37
    assert sagittal.plane.slice_axis == "x" and sagittal.plane.slice_index == 201
    assert axial.plane.slice_index == 48  # its own slice unchanged
    wait_all(qtbot, w)
    m = Mzarr(image_dir / "volume.mzarr")
    assert check_tiles(coronal, m) and check_tiles(sagittal, m)
    assert not np.array_equal(grab_view_of(coronal), before)  # the new plane is what is drawn
    assert coronal.display == axial.display  # one contrast setting for the three
    # the coronal view's vertical line is the x plane (red) at column 201, its horizontal one the z plane at 48
    ch = lv._crosshairs[id(coronal)]
    assert ch.vline.value() == 201.5 and ch.hline.value() == 48.5 and ch.vline.isVisible()
    img = grab_view_of(coronal)
    sx = int(coronal.mapFromScene(coronal.vb.mapViewToScene(QPointF(201.5, 10))).x())
    colum = img[:, sx - 1:sx + 2, :3].astype(int)
    assert ((colum[..., 0] > 200) & (colum[..., 1] < 160)).any(axis=1).mean() > 0.5  # a red line, top to bottom
    # a click in the sagittal view (rows z, columns y) moves z and y: the main view (and the slicing panel) follow
    click(sagittal, 20, 150)  # (a screen pixel is ~1.5 y voxels here: the click lands on 150 or its neighbour)
    z, y, x = lv.position
    assert z == 20 and abs(y - 150) <= 1 and x == 201
    assert axial.plane.slice_index == 20 and w.slicing.spin.value() == 20 and coronal.plane.slice_index == y
    wait_all(qtbot, w)
    assert check_tiles(axial, m) and check_tiles(coronal, m)
    # the slicing panel moves the cursor along z too
    w.slicing.set_index(70)
    assert lv.position == [70, y, 201] and lv._crosshairs[id(coronal)].hline.value() == 70.5
    assert "axial  z 70/95" in lv.caption("z")


def grab_view_of(view) -> np.ndarray:
    """The rendered viewport of one view as RGBA."""
    class W:
        pass

    holder = W()
    holder.view = view  # type: ignore[attr-defined]
    return grab_view(holder)


def test_dragging_a_crosshair_line_moves_the_cursor(qtbot, window, image_dir) -> None:  # noqa: F811 - fixtures
    w = window
    ortho(qtbot, w, image_dir / "volume.mzarr")
    lv = w.layout_views
    axial, coronal, sagittal = lv.views()
    line = lv._crosshairs[id(axial)].vline  # the x plane's line in the axial view, at x = 130
    to = lambda col, row: QPointF(axial.mapFromScene(axial.vb.mapViewToScene(QPointF(col, row))))  # noqa: E731
    drag(axial, to(130.5, 60), to(90.5, 60))
    assert abs(line.value() - 90.5) < 2 and abs(lv.position[2] - 90) <= 2
    assert sagittal.plane.slice_index == lv.position[2] and lv.position[:2] == [48, 100]
    # the ring at the crossing drags both coordinates
    z, y, x = lv.position
    drag(axial, to(x + 0.5, y + 0.5), to(x + 40.5, y - 30.5))
    assert abs(lv.position[2] - (x + 40)) <= 2 and abs(lv.position[1] - (y - 31)) <= 2 and lv.position[0] == 48
    assert coronal.plane.slice_index == lv.position[1] and sagittal.plane.slice_index == lv.position[2]
    lv.set_position([48, 100, lv.position[2]])
    # a drag away from the lines pans (as in the single view) and does not move the cursor
    r0 = axial.vb.viewRect()
    drag(axial, to(30, 30), to(60, 40))
    assert lv.position[:2] == [48, 100] and axial.vb.viewRect().center() != r0.center()


def test_a_tool_drag_starting_on_a_line_is_the_tools(qtbot, window, image_dir) -> None:  # noqa: F811 - fixtures
    """With an editing tool, a stroke that starts on a crosshair line (or the ring) paints and leaves the cursor."""
    w = window
    ortho(qtbot, w, image_dir / "volume.mzarr")
    lv = w.layout_views
    axial = lv.views()[0]
    to = lambda col, row: QPointF(axial.mapFromScene(axial.vb.mapViewToScene(QPointF(col, row))))  # noqa: E731
    z, y, x = lv.position
    w.editing.set_tool("brush")
    drag(axial, to(x + 0.5, y - 20), to(x + 30.5, y - 10))  # from the vertical line
    drag(axial, to(x + 0.5, y + 0.5), to(x - 25.5, y + 15.5))  # from the ring
    assert lv.position == [z, y, x]
    assert len(w.model.edits) == 2
    w.editing.set_tool(None)  # pan again: the lines drag the cursor as before
    drag(axial, to(x + 0.5, y - 20), to(x - 19.5, y - 20))
    assert abs(lv.position[2] - (x - 20)) <= 2


def test_zoom_and_pan_follow_along_shared_axes(qtbot, window, image_dir) -> None:  # noqa: F811 - fixtures
    w = window
    ortho(qtbot, w, image_dir / "volume.mzarr")
    lv = w.layout_views
    axial, coronal, sagittal = lv.views()

    def per_px(v):  # level-0 pixels per screen pixel along (columns, rows) and the centre (x, y) of the view
        r, s = v.vb.viewRect(), v.vb.size()
        return r.width() / s.width(), r.height() / s.height(), r.center().x(), r.center().y()

    # physical aspect: z voxels are 2 µm, y and x 0.5 µm: one screen pixel covers 4x fewer z voxels than x voxels
    a, c, s = per_px(axial), per_px(coronal), per_px(sagittal)
    assert c[1] == pytest.approx(c[0] / 4, rel=1e-3) and s[1] == pytest.approx(s[0] / 4, rel=1e-3)
    assert a[0] == pytest.approx(c[0], rel=1e-3) and a[1] == pytest.approx(s[0], rel=1e-3)  # one scale for all
    axial.zoom(2.0)
    a2, c2, s2 = per_px(axial), per_px(coronal), per_px(sagittal)
    assert a2[0] == pytest.approx(a[0] / 2, rel=1e-3)
    assert c2[0] == pytest.approx(a2[0], rel=1e-3) and c2[1] == pytest.approx(a2[0] / 4, rel=1e-3)  # x shared
    assert s2[0] == pytest.approx(a2[1], rel=1e-3)  # y: the axial view's rows, the sagittal view's columns
    axial.pan(37, 11)  # x by 37, y by 11
    a3, c3, s3 = per_px(axial), per_px(coronal), per_px(sagittal)
    assert c3[2] == pytest.approx(a3[2], abs=1e-3) and s3[2] == pytest.approx(a3[3], abs=1e-3)
    assert c3[3] == pytest.approx(c2[3], abs=1e-3)  # z (the coronal view's rows) untouched by an axial pan
    sagittal.pan(0, 5)  # z by 5: the coronal view follows, the axial view (no z axis) does not move
    assert per_px(coronal)[3] == pytest.approx(per_px(sagittal)[3], abs=1e-3)
    assert per_px(axial)[2:] == pytest.approx(a3[2:], abs=1e-6)
    # View > Physical aspect off: square voxels in all three views, one scale
    w.set_physical_aspect(False)
    c4, s4 = per_px(coronal), per_px(sagittal)
    assert c4[1] == pytest.approx(c4[0], rel=1e-3) and s4[1] == pytest.approx(s4[0], rel=1e-3)
    assert c4[0] == pytest.approx(per_px(axial)[0], rel=1e-3)
    wait_all(qtbot, w)


def test_one_cache_for_the_three_views(qtbot, window, image_dir, read_log) -> None:  # noqa: F811 - fixtures
    w = window
    open_and_wait(qtbot, w, image_dir / "volume.mzarr")
    doc = w.doc
    read_log.clear()
    w.set_layout(ORTHO)
    wait_all(qtbot, w)
    assert doc.cache_users() == 3  # the three loaders share the document's cache
    keys = read_log.keys()
    assert keys and len(keys) == len(set(keys)), "a chunk was decoded twice (once per view)"
    # nothing read ahead (the next brick layers would evict the planes shown from the one budget): every brick
    # read holds one of the three planes
    assert all(v.prefetch_layers == 0 for v in w.layout_views.views())
    hist = w.view.image.hist_level
    for level, ci in (k[:2] for k in keys):
        if level == hist:
            continue
        lev = doc.levels[level]
        reg = lev.chunk_region(ci)
        assert any(reg[i].start <= p // lev.factor[i] < reg[i].stop for i, p in enumerate(w.layout_views.position)), \
            f"brick {level} {ci} holds none of the planes"
    cached = doc.cache_entries()
    assert cached > 0
    # the main view's frame is still there: its chunks were not dropped when the other views started
    assert all(doc.cached(k) is not None for k in w.view.requested)
    # single, then orthogonal again: nothing cleared, so the other views read nothing new
    w.set_layout(SINGLE)
    assert doc.cache_users() == 1 and doc.cache_entries() == cached and w.view.prefetch_layers is None
    read_log.clear()
    w.set_layout(ORTHO)
    wait_all(qtbot, w)
    assert read_log.keys() == [] and doc.cache_entries() == cached
    # the budget is the app's one budget for the image (the views do not add theirs up)
    assert doc.cache_bytes == 256 * 2**20 and doc.cache_nbytes() <= doc.cache_bytes


def test_same_chunk_asked_by_two_loaders_is_decoded_once(qtbot, image_dir, read_log) -> None:  # noqa: F811
    import threading

    from mzarr_app.document import Document

    doc = Document(image_dir / "volume.mzarr")
    read_log.delay = 0.2  # a slow decode: the second thread arrives while the first is reading
    key = (0, (0, 0, 0))
    out: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: out.append(doc.read_chunk(key))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert read_log.keys() == [key] and len(out) == 3
    assert all(np.shares_memory(a, out[0]) for a in out)  # the one decoded array from the cache
    doc.close()


def test_closing_and_2d_files_in_orthogonal_layout(qtbot, window, image_dir) -> None:  # noqa: F811 - fixtures
    w = window
    ortho(qtbot, w, image_dir / "volume.mzarr")
    lv = w.layout_views
    doc = w.doc
    loaders = [v.loader for v in lv.extra]
    assert all(ld is not None for ld in loaders)
    # a 2D file opened while the orthogonal layout is chosen: one view, the layout action disabled
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    assert doc.cache_users() == 0 and all(ld._closed for ld in loaders)
    assert lv.mode == ORTHO and not lv.active and lv.views() == [w.view] and not w.act_ortho.isEnabled()
    assert all(not v.isVisible() and v.doc is None for v in lv.extra) and not lv.info.isVisible()
    w.set_layout(ORTHO)  # nothing to do for a 2D image
    assert not lv.active and w.view.plane.slice_axis is None
    # a volume again: the orthogonal layout comes back
    open_and_wait(qtbot, w, image_dir / "volume.mzarr")
    wait_all(qtbot, w)
    assert lv.active and [v.plane.slice_axis for v in lv.views()] == ["z", "y", "x"]
    # File > Close (the window) in the orthogonal layout: every loader stops, nothing raises
    loaders = [v.loader for v in lv.views()]
    w._close_doc()
    assert w.doc is None and not lv.active and all(ld._closed for ld in loaders)
    assert all(v.doc is None for v in lv.extra) and w.view.doc is None


def test_edits_and_labels_shown_in_every_view(qtbot, window, image_dir, tmp_path) -> None:  # noqa: F811
    from mzarr_core import Mzarr

    from app_fixtures import volume_3d

    vol = volume_3d()
    lab = np.zeros(vol.shape, np.uint16)
    lab[40:60, 90:110, 120:140] = 7
    path = tmp_path / "vol_labels.mzarr"
    Mzarr(vol).save(path)
    with Mzarr(path, "r+") as m:
        m.create_labels("cells", lab)
    w = window
    ortho(qtbot, w, path)
    lv = w.layout_views
    assert all(len(v.label_layers) == 1 and v.label_layers[0].visible for v in lv.views())
    w.labels.list.setCurrentRow(0)
    w.labels.hide_values.setText("7")  # Labels panel: value 7 not drawn, in every view
    w.labels.hide_values.editingFinished.emit()
    assert all(v.label_layers[0].hidden_values == {7} for v in lv.views())
    w.labels.list.item(0).setCheckState(Qt.CheckState.Unchecked)  # Labels panel: hide it in every view
    assert all(not v.label_layers[0].visible for v in lv.views())
    w.set_layout(SINGLE)  # the other views open the file again: the panel's choices so far apply to them
    w.set_layout(ORTHO)
    assert all(not v.label_layers[0].visible and v.label_layers[0].hidden_values == {7} for v in lv.views())
    set_identity_grey(w, 0, 4000)
    # a pending edit of the main (z) view is drawn in the y view through it: black voxels x 120..139 at z = 48
    w.select_and_fill((120, 95, 140, 105), 0)  # x 120..140, y 95..105 of slice z = 48
    lv.set_position([20, 100, 200])  # the crosshair away from the edit (the y view keeps its plane y = 100)
    wait_all(qtbot, w)
    coronal = lv.views()[1]  # y = 100: rows z, columns x
    assert coronal.edits == w.view.edits and len(coronal.edits) == 1
    img = grab_view_of(coronal)

    def pixel(col: float, row: float) -> int:
        p = coronal.mapFromScene(coronal.vb.mapViewToScene(QPointF(col, row)))
        return int(img[int(p.y()), int(p.x()), 0])

    assert pixel(130.5, 48.5) == 0 and pixel(125.5, 48.5) == 0
    assert pixel(130.5, 46.5) > 0 and pixel(110.5, 48.5) > 0  # the slice above and beside: the image


_CHURN = """
import collections, random, sys, threading
import numpy as np, psutil
from mzarr_app import chunk_loader
from mzarr_app.chunk_loader import ChunkLoader

ChunkLoader(lambda k: np.zeros(1), cache_mb=1).close()  # the first loader tunes glibc (before any reader thread)
assert chunk_loader.malloc_tuned is True
proc = psutil.Process()
base = proc.memory_info().rss
cache = collections.OrderedDict()
lock = threading.Lock()
rng = random.Random(0)
peak = [base]

def decode(tid):  # like a reader thread: 64 x 64 x 64 uint16 bricks (512 KB each)
    for i in range(300):
        a = np.ones((64, 64, 64), np.uint16)
        scratch = np.ones(300_000, np.uint8)  # a decoder's temporary
        with lock:
            cache[(tid, i)] = a
            if rng.random() < 0.3:  # a view touches an older brick: LRU order is not allocation order
                cache.move_to_end(rng.choice(list(cache)[: len(cache) // 2 + 1]))
            while len(cache) > 64:
                cache.popitem(last=False)
            peak[0] = max(peak[0], proc.memory_info().rss)

threads = [threading.Thread(target=decode, args=(t,)) for t in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(peak[0] - base)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux only)")
def test_chunks_churned_through_a_bounded_cache_keep_memory_bounded() -> None:
    """The loaders limit glibc's heaps (``chunk_loader.tune_malloc``): bricks decoded by many reader threads, with
    a decoder's scratch, and dropped by an LRU cache in an order that is not their allocation order, keep the
    process's peak within a small multiple of the cache (each thread's own heap holding its dropped bricks grew it
    far beyond the budget). In a fresh process, as the viewer is: a test process's earlier threads already hold
    heaps of their own, which the limit (it applies to heaps made after it) cannot take back."""
    import os
    import subprocess

    budget = 64 * 512 * 1024  # 64 bricks
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _CHURN], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    grew = int(out.stdout.strip().splitlines()[-1])
    assert grew < 3 * budget, f"peak grew {grew / 2**20:.0f} MB for a {budget >> 20} MB cache"


def test_saving_an_edit_in_orthogonal_layout(qtbot, window, image_copy) -> None:  # noqa: F811 - fixtures
    from mzarr_core import Mzarr

    w = window
    path = image_copy("volume")
    ortho(qtbot, w, path)
    lv = w.layout_views
    w.select_and_fill((100, 90, 160, 110), 7)  # x 100..160, y 90..110 of slice z = 48
    assert w.save()
    wait_all(qtbot, w)
    assert lv.active and w.doc.cache_users() == 3  # every view reading the saved file again, one cache
    m = Mzarr(path)
    assert (m[48, 90:110, 100:160] == 7).all()
    for v in lv.views():  # the saved voxels in every plane through them
        assert check_tiles(v, m)
    coronal = lv.views()[1]
    assert coronal.plane.slice_index == 100 and any(
        (raw == 7).any() for raw in coronal.shown_tiles().values())


def test_channels_and_label_images_in_orthogonal_layout(qtbot, window, tmp_path) -> None:  # noqa: F811 - fixtures
    from mzarr_core import Mzarr

    from app_fixtures import volume_3d

    vol = volume_3d(40, 120, 150)
    Mzarr(np.stack([vol, 65535 - vol]), axes="czyx").save(tmp_path / "c.mzarr")
    Mzarr((vol > 2000).astype(np.uint16), is_label=True).save(tmp_path / "lab.mzarr")
    w = window
    ortho(qtbot, w, tmp_path / "c.mzarr")
    lv = w.layout_views
    assert [v.display.mode for v in lv.views()] == ["composite"] * 3
    w.slicing.set_channel(1)  # the Slicing panel's channel: every view shows channel 1 alone, in grey
    wait_all(qtbot, w)
    assert [v.plane.channels for v in lv.views()] == [(1,)] * 3 and [v.display.mode for v in lv.views()] == ["single"] * 3
    m = Mzarr(tmp_path / "c.mzarr")
    for v in lv.views():
        p = v.plane
        for key, raw in v.shown_tiles().items():
            lev = m.levels[key.level]
            x, y, tw, th = T.tile_rect(lev, p, key)
            f = dict(zip(p.axes, lev.factor))
            sel = {"c": 1, p.slice_axis: p.slice_index // f[p.slice_axis],
                   p.row: slice(int(y) // f[p.row], int(y + th) // f[p.row]),
                   p.col: slice(int(x) // f[p.col], int(x + tw) // f[p.col])}
            want = lev[tuple(sel[a] for a in p.axes)]
            np.testing.assert_array_equal(raw, want.T if p.axes.index(p.row) > p.axes.index(p.col) else want)
    # a label image: right-drag zooms in every view (no window/level), label colours everywhere
    open_and_wait(qtbot, w, tmp_path / "lab.mzarr")
    wait_all(qtbot, w)
    assert lv.active and [v.vb.window_level for v in lv.views()] == [False] * 3
    assert [v.display.mode for v in lv.views()] == ["labels"] * 3


def test_status_bar_under_the_cursor_in_each_view(qtbot, window, image_dir) -> None:  # noqa: F811 - fixtures
    from mzarr_core import Mzarr

    w = window
    ortho(qtbot, w, image_dir / "volume.mzarr")
    lv = w.layout_views
    m = Mzarr(image_dir / "volume.mzarr")
    for v, (row, col), want in ((lv.views()[1], (30, 200), (30, 100, 200)),  # y view: rows z, columns x
                                (lv.views()[2], (12, 150), (12, 150, 130))):  # x view: rows z, columns y
        v._mouse_moved(v.vb.mapViewToScene(QPointF(col + 0.5, row + 0.5)))
        z, y, x = want
        assert w.pos_label.text().startswith(f"z={z}  y={y}  x={x}")
        qtbot.waitUntil(lambda: "≈" not in w.value_label.text() and "…" not in w.value_label.text(), timeout=10000)
        v._mouse_moved(v.vb.mapViewToScene(QPointF(col + 0.5, row + 0.5)))
        assert w.value_label.text() == f"value: {int(m[z, y, x])}"


def test_fit_shows_every_whole_plane_at_one_scale(qtbot, window, image_dir) -> None:  # noqa: F811 - fixtures
    w = window
    ortho(qtbot, w, image_dir / "volume.mzarr")
    lv = w.layout_views
    w.view.zoom(3.0)
    w.findChild(type(w.act_ortho), "actFit").trigger()  # View > Fit
    scale = lv.fit_scale()  # µm per screen pixel (physical aspect: z 2 µm, y and x 0.5 µm)
    k = {"z": 2.0, "y": 0.5, "x": 0.5}
    for v in lv.views():
        r, s = v.vb.viewRect(), v.vb.size()
        assert r.width() / s.width() * k[v.plane.col] == pytest.approx(scale, rel=1e-3)
        h, wd = v.plane_shape()
        assert r.left() <= 1e-6 and r.top() <= 1e-6 and r.right() >= wd - 1e-6 and r.bottom() >= h - 1e-6
    # one view fills its cell along one axis: the scale is the smallest showing every plane
    assert any(abs(v.vb.viewRect().width() - v.plane_shape()[1]) < 1e-3 or
               abs(v.vb.viewRect().height() - v.plane_shape()[0]) < 1e-3 for v in lv.views())
    wait_all(qtbot, w)


def test_plane_names_follow_the_dicom_orientation(qtbot, window, tmp_path) -> None:  # noqa: F811 - fixtures
    """A sagittal acquisition's z plane is named sagittal (ImageOrientationPatient), not axial."""
    from mzarr_core import Mzarr
    from mzarr_core.display import anatomical_plane_names

    assert anatomical_plane_names({"dicom": {"ImageOrientationPatient": [1, 0, 0, 0, 1, 0]}}) == (
        "axial", "coronal", "sagittal")
    sagittal_iop = [0, 1, 0, 0, 0, -1]  # rows along A-P, columns down the body: slices left to right
    assert anatomical_plane_names({"dicom": {"ImageOrientationPatient": sagittal_iop}}) == (
        "sagittal", "axial", "coronal")
    assert anatomical_plane_names({"dicom": {"ImageOrientationPatient": [1, 0, 0, 0, 0, -1]}}) == (
        "coronal", "axial", "sagittal")
    oblique = [0.7071, 0.7071, 0, -0.7071, 0.7071, 0]  # 45° in plane: the x and y planes would get one name
    assert anatomical_plane_names({"dicom": {"ImageOrientationPatient": oblique}}) is None
    assert anatomical_plane_names({}) is None and anatomical_plane_names({"dicom": {"ImageOrientationPatient": "x"}}) is None
    path = tmp_path / "sag.mzarr"
    vol = (np.arange(20 * 40 * 50) % 251).astype(np.uint8).reshape(20, 40, 50)
    Mzarr(vol, attrs={"dicom": {"ImageOrientationPatient": sagittal_iop}}).save(path)
    ortho(qtbot, window, path)
    lv = window.layout_views
    assert lv.caption("z").startswith("sagittal  z ") and lv.caption("y").startswith("axial  y ")
    assert lv.caption("x").startswith("coronal  x ")


def test_layout_and_overview_are_remembered(qtbot, window, image_dir) -> None:  # noqa: F811 - fixtures
    """Closed in the orthogonal layout with the overview on, the next window opens a volume the same way."""
    from mzarr_app.window import MainWindow

    ortho(qtbot, window, image_dir / "volume.mzarr")
    window.act_overview.trigger()
    assert window.layout_views.overview
    window.close()
    again = MainWindow(cache_mb=64, threads=2)
    qtbot.addWidget(again)
    assert again.layout_views.mode == ORTHO and again.act_ortho.isChecked()
    assert again.act_overview.isChecked() and again.layout_views.overview
    again.show()
    qtbot.waitExposed(again)
    open_and_wait(qtbot, again, image_dir / "volume.mzarr")
    assert again.layout_views.active and all(v.isVisible() for v in again.layout_views.views())
    again.set_layout(SINGLE)
    again.close()
    third = MainWindow(cache_mb=64, threads=2)
    qtbot.addWidget(third)
    assert third.layout_views.mode == SINGLE
    third.close()


def test_patient_planes_are_drawn_as_radiologists_read_them(qtbot, window, tmp_path) -> None:  # noqa: F811
    """An axial CT (slices stored inferior -> superior, the DICOM reader's LPS affine): coronal and sagittal planes
    are drawn superior up (they came out upside down), the axial one anterior up, the patient's right on the
    screen's left; the overview inset mirrors the view. A volume without patient geometry keeps row 0 at the top."""
    from mzarr_core import Mzarr
    from mzarr_core.display import radiological_flips

    lps = [[0.7, 0, 0, -100], [0, 0.7, 0, -120], [0, 0, 2.5, -300], [0, 0, 0, 1]]  # x -> L, y -> P, z -> S
    attrs = {"dicom": {"geometry": {"affine_lps": lps}}}
    assert radiological_flips(attrs, "zyx", "y", "x") == (False, False)  # axial: anterior up, right on the left
    assert radiological_flips(attrs, "zyx", "z", "x") == (True, False)  # coronal: superior up
    assert radiological_flips(attrs, "zyx", "z", "y") == (True, False)  # sagittal: superior up, anterior left
    ras_x_right = {"nifti_affine": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}  # x -> R (NIfTI RAS)
    assert radiological_flips(ras_x_right, "zyx", "y", "x") == (True, True)  # y -> A: anterior up; right on left
    assert radiological_flips({}, "zyx", "z", "x") == (False, False)
    vol = np.broadcast_to(np.linspace(0, 250, 30).astype(np.uint8)[:, None, None], (30, 40, 50)).copy()
    path = Mzarr(vol, attrs=attrs).save(tmp_path / "ct.mzarr")
    w = window
    open_and_wait(qtbot, w, path)
    w.slicing.set_axis("y")
    w.view.fit()
    qtbot.waitUntil(w.view.is_idle, timeout=30000)
    set_identity_grey(w)
    qtbot.waitUntil(w.view.is_idle, timeout=30000)
    img = grab_view(w)[..., 0].astype(int)
    rows = [r for r in range(img.shape[0]) if img[r, img.shape[1] // 2] > 0]
    top, bottom = img[rows[1], img.shape[1] // 2], img[rows[-2], img.shape[1] // 2]
    assert top > 200 and bottom < 50, (top, bottom)  # the last slice (superior) at the top
    assert not w.view.vb.yInverted() and not w.view.vb.xInverted()
    # the overview inset draws the plane as the view does, and its rectangle where the view is
    w.act_overview.trigger()
    inset = w.layout_views.inset(w.view)
    inset.refresh()
    assert inset._picture() is not None and inset._array[1, inset._array.shape[1] // 2, 0] > 200  # superior on top
    from PySide6.QtCore import QRectF

    w.view.vb.setRange(QRectF(20, 2, 4, 3), padding=0)  # zoomed in on data rows 2..5: the inferior end
    r = inset.view_rect()
    assert r.center().y() > inset.height() * 3 / 4, (r, inset.height())  # drawn near the inset's bottom
    w.act_overview.trigger()
    w.slicing.set_axis("z")
    assert w.view.vb.yInverted()
    plain = Mzarr(vol).save(tmp_path / "plain.mzarr")
    open_and_wait(qtbot, w, plain)
    w.slicing.set_axis("y")
    assert w.view.vb.yInverted()  # no patient geometry: row 0 at the top


def test_tools_paint_the_plane_of_the_coronal_and_sagittal_views(qtbot, window, tmp_path) -> None:  # noqa: F811
    """QA repro_12: brush, eraser, fill, pick and polygon in the coronal (y) and sagittal (x) views of the
    orthogonal layout edit the plane that view shows (they did nothing, silently); saved, the label image holds
    the strokes there, and the cursor stays put."""
    from mzarr_core import Mzarr

    from app_fixtures import volume_3d

    vol = volume_3d(z=40, y=120, x=150)
    path = tmp_path / "seg.mzarr"
    Mzarr(vol).save(path, chunks=(16, 64, 64))
    with Mzarr(path, "r+") as m:
        m.create_labels("seg", np.zeros(vol.shape, np.uint8))
    w = window
    ortho(qtbot, w, path)
    lv = w.layout_views
    w.editing.target_box.setCurrentIndex(w.editing.target_box.findData("seg"))
    lv.set_position([20, 60, 75])
    wait_all(qtbot, w)
    views = lv.views()
    coronal = next(v for v in views if v.plane.slice_axis == "y")  # rows z, columns x, at y = 60
    sagittal = next(v for v in views if v.plane.slice_axis == "x")  # rows z, columns y, at x = 75
    assert (coronal.plane.row, coronal.plane.col, sagittal.plane.row, sagittal.plane.col) == ("z", "x", "z", "y")

    def to(view, col: float, row: float) -> QPointF:
        return QPointF(view.mapFromScene(view.vb.mapViewToScene(QPointF(col, row))))

    w.editing.set_tool("brush")
    assert coronal.vb.tool == sagittal.vb.tool == "brush"
    w.editing.radius.setValue(1)
    w.editing.value.setValue(5)
    drag(coronal, to(coronal, 20.5, 10.5), to(coronal, 60.5, 10.5))  # z = 10, x 20..60 at y = 60
    w.editing.value.setValue(6)
    drag(sagittal, to(sagittal, 30.5, 30.5), to(sagittal, 90.5, 30.5))  # z = 30, y 30..90 at x = 75
    assert lv.position == [20, 60, 75] and len(w.model.edits) == 2
    w.editing.set_tool("eraser")
    drag(coronal, to(coronal, 40.5, 10.5), to(coronal, 45.5, 10.5))  # erases x 40..45 of the first stroke
    w.editing.set_tool("polygon")
    w.editing.value.setValue(8)
    for col, row in ((100, 2), (140, 2), (140, 8)):
        qtbot.mouseClick(coronal.viewport(), Qt.MouseButton.LeftButton, pos=to(coronal, col, row).toPoint())
        qtbot.wait(30)
    assert coronal.vb.finish_polygon()
    w.editing.set_tool("pick")  # the value under a click in the sagittal view: the stroke's 6
    qtbot.mouseClick(sagittal.viewport(), Qt.MouseButton.LeftButton, pos=to(sagittal, 60.5, 30.5).toPoint())
    assert w.editing.value.value() == 6
    w.editing.set_tool("fill")  # flood fill of the sagittal plane's background (around the stroke)
    w.editing.value.setValue(9)
    qtbot.mouseClick(sagittal.viewport(), Qt.MouseButton.LeftButton, pos=to(sagittal, 10.5, 5.5).toPoint())
    w.editing.set_tool(None)
    assert coronal.vb.tool is None and sagittal.vb.tool is None
    assert w.save(), w.last_error
    seg = Mzarr(path).label("seg")[...]
    coronal_plane, sagittal_plane = seg[:, 60, :], seg[:, :, 75]
    assert coronal_plane[10, 22:38].tolist() == [5] * 16 and coronal_plane[10, 48:58].tolist() == [5] * 10
    assert (coronal_plane[10, 41:45] == 0).all()  # erased
    assert sagittal_plane[30, 32:88].tolist() == [6] * 56
    assert (coronal_plane[2:8, 110:140] == 8).any() and coronal_plane[7, 139] == 8  # the polygon's triangle
    painted = np.nonzero(seg)
    assert set(painted[1][seg[painted] == 5]) == {60} and set(painted[2][seg[painted] == 6]) == {75}
    assert set(painted[1][seg[painted] == 8]) == {60}
    assert set(painted[2][seg[painted] == 9]) == {75} and ((sagittal_plane == 9) | (sagittal_plane == 6)).all()
    assert lv.position == [20, 60, 75]
