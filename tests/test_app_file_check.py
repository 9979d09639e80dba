"""GUI tests of File > Check file… and File > Save salvaged copy… (the viewer's ``mzarr verify`` / ``mzarr salvage``),
and of what the view says when it meets a damaged chunk."""

from __future__ import annotations

import numpy as np
from conftest import chunk_blobs, set_blob
from PySide6.QtWidgets import QMessageBox, QPushButton

from app_fixtures import (grab_view, image_copy, image_dir, isolated_settings, mosaic_2d, open_and_wait,  # noqa: F401
                          set_identity_grey, wait_idle, window)
from mzarr_core import Mzarr


def damage(path, key: str) -> None:
    blob = bytearray(chunk_blobs(path)[key])
    blob[len(blob) // 2] ^= 0x20
    set_blob(path, key, bytes(blob))


def trigger(w, name: str) -> None:
    from PySide6.QtGui import QAction

    action = w.findChild(QAction, name)
    assert action is not None, name
    action.trigger()


def salvage_from(qtbot, w, box, target):
    """Press ``box``'s Save salvaged copy… with ``target`` as the answer to the path question; wait for the result."""
    w.ask_salvage_path = lambda current: str(target)
    button = box.findChild(QPushButton, "salvageButton")
    assert button is not None
    button.click()
    qtbot.waitUntil(lambda: w.check_box is not None and w.check_box.objectName() == "salvageBox", timeout=30000)
    return target


def test_check_file_says_a_sound_file_is_sound(qtbot, window, image_copy) -> None:
    w = window
    open_and_wait(qtbot, w, image_copy("mosaic"))
    trigger(w, "actCheckFile")
    box = w.check_box
    assert box is not None and box.isVisible() and box.icon() == QMessageBox.Icon.Information
    assert "is sound" in box.text() and "passes its checksum" in box.informativeText()
    assert box.findChild(QPushButton, "salvageButton") is None
    box.close()


def test_a_damaged_chunk_is_named_in_the_status_bar_checked_and_salvaged(qtbot, window, image_copy, tmp_path) -> None:
    w = window
    path = image_copy("mosaic")
    damage(path, "0/c/0/0")  # level 0, the top-left 512 x 512 tile
    assert w.open_path(str(path)), w.last_error
    w.view.show_rect(0, 0, 640, 480)  # 1:1 at the origin: level 0's damaged tile is on screen
    qtbot.waitUntil(lambda: "File > Check file" in w.statusBar().currentMessage(), timeout=20000)
    assert "0/c/0/0" in w.statusBar().currentMessage() or "(0, 0)" in w.statusBar().currentMessage()

    trigger(w, "actCheckFile")
    box = w.check_box
    assert box is not None and box.icon() == QMessageBox.Icon.Warning and "has problems" in box.text()
    assert "cannot be read" in box.informativeText() and "0/c/0/0" in box.detailedText()
    assert "checksum" in box.detailedText()
    target = salvage_from(qtbot, w, box, tmp_path / "mosaic-salvaged.mzarr")
    result = w.check_box
    assert "Wrote mosaic-salvaged.mzarr" in result.text() and "approximated from level 1" in result.detailedText()
    want = mosaic_2d()
    with Mzarr(target) as copy:
        assert np.array_equal(copy[:, 512:], want[:, 512:]) and np.array_equal(copy[512:, :], want[512:, :])
        assert copy.attrs()["salvaged"]["count"] == 1
    result.findChild(QPushButton, "openSalvaged").click()
    qtbot.waitUntil(lambda: w.doc is not None and w.doc.path == str(target), timeout=20000)
    wait_idle(qtbot, w)
    set_identity_grey(w)
    w.view.show_rect(0, 0, 640, 480)
    wait_idle(qtbot, w)
    shown = grab_view(w)[:, :, 0].astype(int)
    with Mzarr(target) as copy:
        drawn = copy[0 : shown.shape[0], 0 : shown.shape[1]].astype(int)
    assert np.mean(np.abs(shown - drawn) <= 1) > 0.9  # the salvaged tile is drawn (scale bar, inset aside)


def test_salvage_cancelled_at_the_path_question_writes_nothing(qtbot, window, image_copy, tmp_path) -> None:
    w = window
    path = image_copy("mosaic")
    open_and_wait(qtbot, w, path)
    w.ask_salvage_path = lambda current: ""
    before = w.check_box
    trigger(w, "actSalvage")
    assert w.check_box is before and sorted(p.name for p in tmp_path.iterdir()) == ["mosaic.mzarr"]


def test_damage_in_an_overview_level_only_is_said_to_lose_nothing(qtbot, window, image_copy) -> None:
    w = window
    path = image_copy("mosaic")
    damage(path, "1/c/0/0")
    open_and_wait(qtbot, w, path)
    trigger(w, "actCheckFile")
    box = w.check_box
    assert "overview levels" in box.informativeText() and "nothing is lost" in box.informativeText()
    assert "1/c/0/0" in box.detailedText() and box.findChild(QPushButton, "salvageButton") is not None


def test_a_file_that_does_not_open_offers_a_salvaged_copy(qtbot, window, image_copy, tmp_path) -> None:
    """A .mzarr cut short by an interrupted copy: opening it says so and offers Save salvaged copy…, which reads the
    rows left in its pages and writes a new file that opens."""
    w = window
    path = image_copy("mosaic")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    assert not w.open_path(str(path))
    box = w.error_box
    assert box is not None and "cut short" in box.informativeText()
    target = salvage_from(qtbot, w, box, tmp_path / "mosaic-salvaged.mzarr")
    assert "pages were read directly" in w.check_box.detailedText()
    want = mosaic_2d()
    with Mzarr(target) as copy:
        got = copy[...]
        assert got.shape == want.shape and copy.attrs()["salvaged"]["rows_lost"] >= 0
    assert np.array_equal(got[:512, :512], want[:512, :512])  # the first rows written: in the part that is left
