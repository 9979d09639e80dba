"""GUI tests of the overview inset (View > Overview): the whole plane at the automatic-contrast level in a corner,
the visible part outlined, click or drag to move there (real widgets, offscreen)."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication

from app_fixtures import image_dir, open_and_wait, read_log, wait_idle  # noqa: F401 - fixtures
from app_fixtures import isolated_settings, window  # noqa: F401 - fixtures
from mzarr_app.contrast import render
from mzarr_app.ortho import ORTHO
from mzarr_app.overview import OVERVIEW_PX, level_plane


def grab(widget) -> np.ndarray:
    """A widget rendered as (H, W, 4) RGBA."""
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    arr = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 4].reshape(img.height(), img.width(), 4).copy()


def expected_picture(view) -> np.ndarray:
    """The hist level's plane of the file rendered with the view's settings (what the inset must draw)."""
    from mzarr_core import Mzarr

    image = view.image
    m = Mzarr(view.doc.path)
    lev = m.levels[image.hist_level]
    return render(level_plane(lev[...], m.axes, lev.factor, view.plane), view.display)


def test_inset_shows_the_whole_plane_and_the_view_rectangle(qtbot, window, image_dir, read_log) -> None:  # noqa: F811
    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")  # 2048 x 3072
    inset = w.layout_views.inset(w.view)
    assert not w.act_overview.isChecked() and not inset.isVisible()
    read_log.clear()
    w.act_overview.trigger()
    assert inset.isVisible() and w.act_overview.isChecked()
    assert (inset.width(), inset.height()) == (OVERVIEW_PX, OVERVIEW_PX * 2048 // 3072)
    assert inset.geometry().left() == 6 and inset.geometry().bottom() == w.view.height() - 7  # lower-left corner
    qtbot.wait(10)
    np.testing.assert_array_equal(inset._array, expected_picture(w.view))  # the coarse plane, as rendered
    assert read_log.keys() == []  # drawn from the level read for automatic contrast: nothing read
    # zoomed in on the upper-left quarter: the rectangle outlines it in yellow
    w.view.show_rect(0, 0, 1536, 1024)
    wait_idle(qtbot, w)
    r, vr = inset.view_rect(), w.view.vb.viewRect()  # (the view's aspect widens the asked rectangle a little)
    k = inset.width() / 3072
    assert abs(vr.right() - 1536) < 1 and abs(r.right() - vr.right() * k) < 1e-6
    assert abs(r.bottom() - vr.bottom() * k) < 1e-6 and abs(r.bottom() - inset.height() / 2) <= 4
    g = grab(inset)
    yellow = (g[..., 0] > 200) & (g[..., 1] > 160) & (g[..., 2] < 80)
    cx, cy = int(round(r.right())), int(round(r.bottom()))
    assert yellow[cy - 1:cy + 2, 10:cx - 10].any(axis=0).all()  # the rectangle's lower edge
    assert yellow[10:cy - 10, cx - 1:cx + 2].any(axis=1).all()  # and its right edge
    assert not yellow[cy + 10:, :].any() and not yellow[:, cx + 10:].any()  # nothing outside it
    # the picture: the inset's grey levels follow the coarse plane's (mean per quadrant)
    want = expected_picture(w.view)[..., 0].astype(float)
    got = g[..., 0].astype(float)
    for qy in (0, 1):
        for qx in (0, 1):
            a = got[qy * got.shape[0] // 2 + 4:(qy + 1) * got.shape[0] // 2 - 4,
                    qx * got.shape[1] // 2 + 4:(qx + 1) * got.shape[1] // 2 - 4]
            b = want[qy * want.shape[0] // 2:(qy + 1) * want.shape[0] // 2,
                     qx * want.shape[1] // 2:(qx + 1) * want.shape[1] // 2]
            assert abs(a.mean() - b.mean()) < 12
    # View > Overview off: hidden
    w.act_overview.trigger()
    assert not inset.isVisible()


def test_click_and_drag_in_the_inset_move_the_view(qtbot, window, image_dir) -> None:  # noqa: F811
    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    w.act_overview.trigger()
    w.view.show_rect(0, 0, 768, 512)
    wait_idle(qtbot, w)
    inset = w.layout_views.inset(w.view)
    before = w.view.vb.viewRect()
    s = 3072 / inset.width()  # level-0 pixels per inset pixel
    qtbot.mouseClick(inset, Qt.MouseButton.LeftButton, pos=QPoint(120, 40))
    r = w.view.vb.viewRect()
    assert abs(r.center().x() - 120 * s) <= s and abs(r.center().y() - 40 * s) <= s
    assert abs(r.width() - before.width()) < 1e-6  # same zoom
    # a drag: the view follows the pointer
    for kind, x, buttons in ((QEvent.Type.MouseButtonPress, 30, Qt.MouseButton.LeftButton),
                             (QEvent.Type.MouseMove, 60, Qt.MouseButton.LeftButton),
                             (QEvent.Type.MouseMove, 90, Qt.MouseButton.LeftButton),
                             (QEvent.Type.MouseButtonRelease, 90, Qt.MouseButton.NoButton)):
        p = QPointF(x, 50)
        QApplication.sendEvent(inset, QMouseEvent(kind, p, inset.mapToGlobal(p), Qt.MouseButton.LeftButton if kind !=
                                                  QEvent.Type.MouseMove else Qt.MouseButton.NoButton, buttons,
                                                  Qt.KeyboardModifier.NoModifier))
        time.sleep(0.01)
    r = w.view.vb.viewRect()
    assert abs(r.center().x() - 90 * s) <= s and abs(r.center().y() - 50 * s) <= s
    wait_idle(qtbot, w)


def test_inset_follows_slice_axis_contrast_and_orthogonal_views(qtbot, window, image_dir) -> None:  # noqa: F811
    from dataclasses import replace

    w = window
    open_and_wait(qtbot, w, image_dir / "volume.mzarr")  # 96 x 200 x 260, spacing (2, 0.5, 0.5)
    w.act_overview.trigger()
    inset = w.layout_views.inset(w.view)
    qtbot.wait(10)
    first = inset._array.copy()
    np.testing.assert_array_equal(first, expected_picture(w.view))
    w.slicing.set_index(10)
    wait_idle(qtbot, w)
    qtbot.wait(10)
    np.testing.assert_array_equal(inset._array, expected_picture(w.view))  # the new slice's coarse plane
    assert not np.array_equal(inset._array, first)
    # a y slice (rows z, columns x) drawn at its physical aspect: 96 * 2 µm tall, 260 * 0.5 µm wide
    w.slicing.set_axis("y")
    wait_idle(qtbot, w)
    qtbot.wait(10)
    assert (inset.width(), inset.height()) == (round(OVERVIEW_PX * 130 / 192), OVERVIEW_PX)
    np.testing.assert_array_equal(inset._array, expected_picture(w.view))
    # new contrast: redrawn with it
    s = w.view.display
    w.contrast.set_settings(replace(s, invert=not s.invert))
    qtbot.wait(10)
    assert w.view.display.invert != s.invert
    np.testing.assert_array_equal(inset._array, expected_picture(w.view))
    # the orthogonal views: each its own plane
    w.set_layout(ORTHO)
    qtbot.waitUntil(w.layout_views.is_idle, timeout=20000)
    qtbot.wait(10)
    for v in w.layout_views.views():
        ins = w.layout_views.inset(v)
        assert ins.isVisible()
        ins.grab()  # paints (renders its picture)
        assert ins._array is not None and ins._array.shape[:2] == expected_picture(v).shape[:2]
        np.testing.assert_array_equal(ins._array, expected_picture(v))
    shapes = {w.layout_views.inset(v)._array.shape[:2] for v in w.layout_views.views()}
    assert len(shapes) == 3  # z, y and x planes of a 96 x 200 x 260 level differ in shape


def test_inset_hidden_without_image(qtbot, window, image_dir) -> None:  # noqa: F811
    w = window
    w.act_overview.trigger()
    inset = w.layout_views.inset(w.view)
    assert not inset.isVisible()  # no image yet
    open_and_wait(qtbot, w, image_dir / "astronaut.mzarr")  # RGB
    qtbot.wait(10)
    assert inset.isVisible()
    np.testing.assert_array_equal(inset._array, expected_picture(w.view))
    w._close_doc()
    inset.refresh()
    assert not inset.isVisible()
