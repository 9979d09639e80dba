"""Fixes found when driving the viewer (issue 11, deliverable 6): Actual pixels on an odd-sized view draws every
row, zoom-out reaches the whole image with room around it, the Editing tab is the one shown at start, and the
metadata panel can add a key at the top level whatever is selected."""

from __future__ import annotations

import pytest

from app_fixtures import grab_view, image_dir, open_and_wait, set_identity_grey, wait_idle, window  # noqa: F401


@pytest.mark.parametrize("size", [(641, 481), (640, 481), (643, 480)])
def test_actual_pixels_on_an_odd_view_draws_every_row(qtbot, window, image_dir, size) -> None:
    """View > Actual pixels centres the view on whole pixels: no full-width seam of background between tiles."""
    from mzarr_core import Mzarr

    w = window
    w.view.setFixedSize(*size)
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    set_identity_grey(w)
    w.view.show_rect(1000.3, 700.6, 1000.3 + 1.7 * size[0], 700.6 + 1.7 * size[1])  # any zoom, then 1:1
    wait_idle(qtbot, w)
    w.actual_size()
    wait_idle(qtbot, w)
    assert w.view.level == 0
    r = w.view.vb.viewRect()
    assert r.left() == round(r.left()) and r.top() == round(r.top()), (r.left(), r.top())
    img = grab_view(w)
    vh, vw = img.shape[:2]
    x0, y0 = int(r.left()), int(r.top())
    want = Mzarr(image_dir / "mosaic.mzarr").levels[0][y0:y0 + vh, x0:x0 + vw].astype(int)
    got = img[: want.shape[0], : want.shape[1], 0].astype(int)
    rows_equal = (got == want).mean(axis=1)
    assert rows_equal.min() > 0.98, f"row {int(rows_equal.argmin())} differs: {rows_equal.min():.2f} of it equal"


def test_zoom_out_goes_well_past_three_times_the_image(qtbot, window, image_dir) -> None:
    from mzarr_app.view import ZOOM_OUT

    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    h, wd = w.view.plane_shape()
    for _ in range(12):
        w.view.zoom(0.5)
    r = w.view.vb.viewRect()
    assert max(r.width(), r.height()) > 3.5 * max(h, wd)  # the old cap was 3x
    assert max(r.width(), r.height()) <= ZOOM_OUT * max(h, wd) * 1.01
    assert r.left() < 0 < wd < r.right() and r.top() < 0 < h < r.bottom()  # the image stays in view
    wait_idle(qtbot, w)
    assert w.view.level == len(w.doc.levels) - 1 and w.view.complete


def test_editing_tab_is_in_front_at_first_start(qtbot, tmp_path, monkeypatch) -> None:
    from PySide6.QtWidgets import QTabBar

    import mzarr_app.settings as app_settings
    from mzarr_app.window import MainWindow

    monkeypatch.setattr(app_settings, "SETTINGS_FILE", str(tmp_path / "viewer.ini"))  # no saved layout
    w = MainWindow(cache_mb=64, threads=1)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    bars = [b for b in w.findChildren(QTabBar) if b.count() and {b.tabText(i) for i in range(b.count())} >= {"Editing", "Metadata"}]
    assert bars, "Editing and Metadata are tabified"
    assert bars[0].tabText(bars[0].currentIndex()) == "Editing"
    assert not w.docks["Editing"].visibleRegion().isEmpty() and w.docks["Metadata"].visibleRegion().isEmpty()
    w.close()


def test_metadata_add_next_to_the_selection_or_inside_it(qtbot) -> None:
    from PySide6.QtCore import QPoint, Qt

    from mzarr_app.panels.metadata import MetadataPanel

    p = MetadataPanel()
    qtbot.addWidget(p)
    p.show()
    p.set_attrs({"scanner": {"model": "X", "serial": 3}, "tags": ["a"], "note": "n"})
    scanner = p.tree.topLevelItem(0)
    model = scanner.child(0)
    # a nested key selected: Add puts the new key next to it (inside 'scanner'), Add inside is off for a leaf
    p.tree.setCurrentItem(model)
    assert not p.add_inside.isEnabled()
    p.new_key.setText("lens")
    qtbot.mouseClick(p.add, Qt.MouseButton.LeftButton)
    assert p.to_dict()["scanner"]["lens"] is not None and "lens" not in p.to_dict()
    # a top-level object selected: Add is a top-level sibling, Add inside goes into it
    p.tree.setCurrentItem(scanner)
    assert p.add_inside.isEnabled()
    p.new_key.setText("site")
    qtbot.mouseClick(p.add, Qt.MouseButton.LeftButton)
    assert "site" in p.to_dict()
    p.tree.setCurrentItem(scanner)
    p.new_key.setText("firmware")
    qtbot.mouseClick(p.add_inside, Qt.MouseButton.LeftButton)
    assert "firmware" in p.to_dict()["scanner"]
    # a click on empty space clears the selection: Add goes to the top level
    p.tree.setCurrentItem(model)
    empty = QPoint(5, p.tree.viewport().height() - 3)
    assert p.tree.itemAt(empty) is None
    qtbot.mouseClick(p.tree.viewport(), Qt.MouseButton.LeftButton, pos=empty)
    assert p.tree.currentItem() is None and not p.add_inside.isEnabled()
    p.new_key.setText("operator")
    qtbot.mouseClick(p.add, Qt.MouseButton.LeftButton)
    assert "operator" in p.to_dict() and "operator" not in p.to_dict()["scanner"]
