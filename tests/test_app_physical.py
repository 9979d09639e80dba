"""GUI tests of physical space: pixels drawn at their physical aspect (spacing per axis), View > Physical aspect,
the scale bar and the status-bar coordinates in physical units (real widgets, offscreen)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from app_fixtures import grab_view, open_and_wait, set_identity_grey, wait_idle
from app_fixtures import isolated_settings, window  # noqa: F401 - fixtures

#: the bright box of voxels: z 10..20, y 20..44, x 40..80 (z spacing 2 mm, y and x 0.5 mm)
BOX = (slice(10, 20), slice(20, 44), slice(40, 80))


@pytest.fixture(scope="module")
def phys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mzarr_core import Mzarr

    d = tmp_path_factory.mktemp("physical")
    vol = np.zeros((40, 64, 120), np.uint8)
    vol[BOX] = 255
    Mzarr(vol, spacing=(2.0, 0.5, 0.5), unit="millimeter").save(d / "aniso.mzarr")
    img = np.zeros((100, 160), np.uint8)
    img[30:50, 40:120] = 255
    Mzarr(img).save(d / "plain.mzarr")  # no spacing
    return d


def bright_extent(w) -> tuple[int, int]:
    """(height, width) in screen pixels of the bright part of the rendered view."""
    a = grab_view(w)[..., 0] > 127
    rows, cols = np.nonzero(a.any(axis=1))[0], np.nonzero(a.any(axis=0))[0]
    assert rows.size and cols.size, "nothing bright on screen"
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def show_box(qtbot, w) -> None:
    set_identity_grey(w)
    w.view.fit()
    wait_idle(qtbot, w)


def per_voxel(w, n_rows: int, n_cols: int) -> tuple[float, float]:
    """Screen pixels per voxel along the rows and columns of the bright box (``n_rows`` x ``n_cols`` voxels)."""
    h, wd = bright_extent(w)
    return h / n_rows, wd / n_cols


def test_y_slice_drawn_at_its_physical_aspect_and_voxel_toggle(qtbot, window, phys_dir) -> None:  # noqa: F811 - pytest fixture
    w = window
    open_and_wait(qtbot, w, phys_dir / "aniso.mzarr")
    assert w.act_physical.isEnabled() and w.act_physical.isChecked()
    w.slicing.set_axis("y")
    wait_idle(qtbot, w)
    p = w.view.plane
    assert (p.row, p.col, p.slice_axis) == ("z", "x", "y") and 20 <= p.slice_index < 44
    show_box(qtbot, w)
    assert w.view.aspect_ratio() == pytest.approx(0.25)
    h, wd = bright_extent(w)  # 10 z voxels x 40 x voxels: 20 mm x 20 mm
    sz, sx = h / 10, wd / 40
    assert abs(h - 4 * sx * 10) <= 1.5, (h, wd)  # z:x = 4:1 within a pixel
    assert sz / sx == pytest.approx(4.0, rel=0.05)
    # the whole plane fits (40 z x 120 x voxels = 80 mm x 60 mm): taller than wide, inside the 640x480 view
    r = w.view.vb.viewRect()
    assert r.top() <= 0.5 and r.bottom() >= 39.5 and r.left() <= 0.5 and r.right() >= 119.5
    # level: the finer axis (z, 4x stretched) decides, so the stretched rows stay sharp
    px = w.view.vb.viewPixelSize()
    assert w.view.screen_pixel() == pytest.approx(min(px), rel=1e-6)
    # voxel aspect: square pixels
    w.act_physical.trigger()
    assert not w.act_physical.isChecked() and w.view.aspect_ratio() == 1.0
    show_box(qtbot, w)
    sz, sx = per_voxel(w, 10, 40)
    assert abs(sz * 10 - sx * 10) <= 1.5 and sz == pytest.approx(sx, rel=0.06)
    # remembered for the session: the next file opens with square pixels, then back on
    open_and_wait(qtbot, w, phys_dir / "aniso.mzarr")
    assert not w.act_physical.isChecked() and w.view.aspect_ratio() == 1.0
    w.act_physical.trigger()
    w.slicing.set_axis("y")
    wait_idle(qtbot, w)
    show_box(qtbot, w)
    sz, sx = per_voxel(w, 10, 40)
    assert sz / sx == pytest.approx(4.0, rel=0.05)


def test_toggle_keeps_centre_and_column_scale(qtbot, window, phys_dir) -> None:  # noqa: F811 - pytest fixture
    w = window
    open_and_wait(qtbot, w, phys_dir / "aniso.mzarr")
    w.slicing.set_axis("x")
    wait_idle(qtbot, w)
    w.view.show_rect(20, 10, 50, 30)
    wait_idle(qtbot, w)
    r0, px0 = w.view.vb.viewRect(), w.view.vb.viewPixelSize()
    w.set_physical_aspect(False)
    wait_idle(qtbot, w)
    r1, px1 = w.view.vb.viewRect(), w.view.vb.viewPixelSize()
    assert r1.center().x() == pytest.approx(r0.center().x(), abs=0.5)
    assert r1.center().y() == pytest.approx(r0.center().y(), abs=0.5)
    assert px1[0] == pytest.approx(px0[0], rel=0.02)  # column scale kept
    assert px1[1] == pytest.approx(px1[0], rel=0.02)  # square pixels
    assert px0[1] == pytest.approx(px0[0] / 4, rel=0.02)  # before: rows (z) 4x taller


def test_z_slice_unchanged_and_actual_pixels(qtbot, window, phys_dir) -> None:  # noqa: F811 - pytest fixture
    w = window
    open_and_wait(qtbot, w, phys_dir / "aniso.mzarr")
    w.slicing.set_index(15)
    wait_idle(qtbot, w)
    assert w.view.plane.slice_axis == "z" and w.view.aspect_ratio() == 1.0  # y:x = 0.5:0.5
    show_box(qtbot, w)
    sy, sx = per_voxel(w, 24, 40)
    assert sy == pytest.approx(sx, rel=0.05)
    # actual pixels on a y slice: one column per device pixel, a z row 4 device pixels tall
    w.slicing.set_axis("y")
    wait_idle(qtbot, w)
    w.view.show_rect(30, 5, 90, 25)
    w.actual_size()
    wait_idle(qtbot, w)
    dpr = w.view.devicePixelRatioF() or 1.0
    px = w.view.vb.viewPixelSize()
    assert px[0] * dpr == pytest.approx(1.0, rel=1e-3) and px[1] * dpr == pytest.approx(0.25, rel=1e-3)
    h, wd = bright_extent(w)
    assert abs(wd - 40) <= 1 and abs(h - 40) <= 1  # 40 columns, 10 rows x 4


def test_scale_bar_and_status_bar_in_physical_units(qtbot, window, phys_dir) -> None:  # noqa: F811 - pytest fixture
    w = window
    open_and_wait(qtbot, w, phys_dir / "aniso.mzarr")
    w.slicing.set_axis("y")
    wait_idle(qtbot, w)
    w.view.fit()
    wait_idle(qtbot, w)
    bar = w.view.scale_bar
    assert bar.isVisible()
    mm_per_screen_px = 0.5 * w.view.vb.viewPixelSize()[0]  # columns are x, 0.5 mm each
    value, unit = bar.text.split()
    scale = {"mm": 1.0, "µm": 1e-3, "cm": 10.0, "m": 1e3}[unit]
    assert float(value) * scale == pytest.approx(bar.length_px * mm_per_screen_px, rel=1e-6)
    assert 40 <= bar.length_px <= 300
    mant = float(value) / 10 ** math.floor(math.log10(float(value)))
    assert round(mant, 6) in (1.0, 2.0, 5.0)
    # the same physical length along z, measured on the screen: bar length in z rows x 2 mm each
    z_rows = bar.length_px * w.view.vb.viewPixelSize()[1]
    assert z_rows * 2.0 == pytest.approx(float(value) * scale, rel=1e-3)
    # status bar: voxel index and position in mm (voxel centres)
    slice_y = w.view.plane.slice_index
    w.view._mouse_moved(w.view.vb.mapViewToScene(QPointF(40.5, 12.5)))
    text = w.pos_label.text()
    assert text.startswith(f"z=12  y={slice_y}  x=40"), text
    assert "(25 mm, " in text and "20.25 mm)" in text, text
    # a small spacing gets a smaller prefix
    from mzarr_app.view import format_length
    assert format_length(0.25, "millimeter") == "250 µm" and format_length(1.5, "millimeter") == "1.5 mm"


def test_2d_file_without_spacing_unchanged(qtbot, window, phys_dir) -> None:  # noqa: F811 - pytest fixture
    w = window
    open_and_wait(qtbot, w, phys_dir / "plain.mzarr")
    assert w.doc.spacing is None
    assert not w.act_physical.isEnabled()
    assert w.view.aspect_ratio() == 1.0 and not w.view.scale_bar.isVisible()
    show_box(qtbot, w)
    sy, sx = per_voxel(w, 20, 80)
    assert sy == pytest.approx(sx, rel=0.05)
    w.view._mouse_moved(w.view.vb.mapViewToScene(QPointF(60.5, 40.5)))
    assert w.pos_label.text() == "y=40  x=60"
