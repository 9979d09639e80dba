"""GUI tests of label images drawn over the image (issue 10, deliverable 2): rendered pixels against the alpha
blend of the image's grey and the label colours, NGFF colours, hide/show, opacity, contours, status bar, 3D."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from skimage import data as skdata
from skimage.measure import label as sklabel

from app_fixtures import (grab_view, isolated_settings, open_and_wait, set_identity_grey, volume_3d,  # noqa: F401
                          wait_idle, window)
from mzarr_app.label_layer import color_table, contour_mask, hashed_colors, label_rgba, small_table
from mzarr_core import Mzarr

TOL = 3  # Qt's premultiplied ARGB32 and opacity blending round


@pytest.fixture(scope="module")
def coins_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """coins (303x384 uint8) with a label image of its bright coins; a pyramid of 64-chunks; NGFF colours."""
    d = tmp_path_factory.mktemp("labels")
    coins = skdata.coins()
    seg = sklabel(coins > 110).astype(np.uint16)
    out = {}
    p = d / "coins.mzarr"
    Mzarr(coins).save(p, chunks=(64, 64), levels=3)
    with Mzarr(p, "r+") as m:
        m.create_labels("coins", seg, properties={int(seg[150, 200]) or 1: {"name": "big coin"}})
    out["coins"] = p
    p = d / "coins_colors.mzarr"
    Mzarr(coins).save(p, chunks=(64, 64), levels=3)
    with Mzarr(p, "r+") as m:
        m.create_labels("coins", seg, colors={int(v): (255, 0, 0, 255) if v % 2 else (0, 0, 255, 128)
                                              for v in np.unique(seg) if v})
    out["colors"] = p
    p = d / "volume.mzarr"
    vol = volume_3d(z=16, y=120, x=150)
    Mzarr(vol).save(p, chunks=(8, 64, 64), levels=2)
    vseg = sklabel(vol > np.percentile(vol, 70)).astype(np.uint32)
    with Mzarr(p, "r+") as m:
        m.create_labels("cells", vseg)
    out["volume"] = p
    return out


def pixel_map(w, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Screen pixel centres mapped to level-0 (row, col): (screen ys, screen xs, inside) with rows/cols."""
    img_h, img_w = shape
    vb = w.view.vb
    r = vb.viewRect()
    size = vb.size()
    gh, gw = int(size.height()), int(size.width())
    off = vb.mapToScene(vb.boundingRect().topLeft())
    ys, xs = np.mgrid[0:gh, 0:gw]
    col = r.left() + (xs + 0.5) * r.width() / gw
    row = r.top() + (ys + 0.5) * r.height() / gh
    return ys + int(round(off.y())), xs + int(round(off.x())), row, col


def expected_blend(grey: np.ndarray, seg: np.ndarray, opacity: float, colors=None, contour: bool = False):
    """The image's grey with each label's colour blended over it at ``opacity`` * the colour's alpha."""
    rgba = label_rgba(seg, colors, contour).astype(np.float64)
    a = rgba[..., 3:4] / 255.0 * opacity
    g = np.repeat(grey[..., None].astype(np.float64), 3, axis=2)
    return g * (1 - a) + rgba[..., :3] * a



def contour_blend(grey, seg, opacity, colors, tile: int = 64):
    """What contour mode draws: :func:`expected_blend` per tile (contours are found within each 64x64 chunk)."""
    want = np.zeros(seg.shape + (3,))
    for r in range(0, seg.shape[0], tile):
        for c in range(0, seg.shape[1], tile):
            t = (slice(r, r + tile), slice(c, c + tile))
            want[t] = expected_blend(grey[t], seg[t], opacity, colors, contour=True)
    return want

def compare(w, expected: np.ndarray, factor: int = 1, margin: int = 3) -> None:
    """The rendered view equals ``expected`` (level-0 pixels; at ``factor``, expected is the level's pixels) at
    screen pixels well inside a level pixel (away from pixel edges, where sampling may round either way)."""
    img = grab_view(w)
    h, wd = expected.shape[:2]
    sy, sx, row, col = pixel_map(w, (h * factor, wd * factor))
    lr, lc = row / factor, col / factor
    fr, fc = lr - np.floor(lr), lc - np.floor(lc)
    ok = (row >= 0) & (col >= 0) & (lr < h) & (lc < wd) & (sy < img.shape[0]) & (sx < img.shape[1])
    ok &= (fr > 0.2) & (fr < 0.8) & (fc > 0.2) & (fc < 0.8)
    assert ok.sum() > 1000
    got = img[sy[ok], sx[ok], :3].astype(np.float64)
    want = expected[np.floor(lr[ok]).astype(int), np.floor(lc[ok]).astype(int)]
    diff = np.abs(got - want)
    assert diff.max() <= TOL, f"max difference {diff.max()} at {np.argmax(diff.max(axis=1))} of {ok.sum()} pixels"


def test_colours_are_stable_and_hashed() -> None:
    v = np.array([0, 1, 2, 3, 2**31 + 5, 2**40], np.uint64)
    c = hashed_colors(v)
    assert c[0].tolist() == [0, 0, 0, 0] and (c[1:, 3] == 255).all()
    assert (hashed_colors(v) == c).all()  # the same value, the same colour
    assert len({tuple(x) for x in c[1:4].tolist()}) == 3
    # known values: the colour of a value does not depend on the session or on the other values of a tile
    assert hashed_colors(np.array([7], np.int64)).tolist() == hashed_colors(np.array([0, 9, 7], np.uint16))[2:].tolist()
    assert color_table(np.array([0, 1, 2]), {2: (1, 2, 3, 4)})[2].tolist() == [1, 2, 3, 4]
    # every dtype and colouring path (8/16-bit table, a narrow range of wide values, scattered values, uint64
    # above 2^63) gives each pixel the colour of its value: NGFF colour, else the hash; hidden values transparent
    rng = np.random.default_rng(1)
    base = rng.integers(0, 40, (64, 64))
    for dt, shift in ((np.uint8, 0), (np.int8, -20), (np.uint16, 0), (np.int16, -5), (np.uint32, 70000),
                      (np.int64, -(2**40)), (np.uint64, 2**63 + 3), (np.uint32, 0)):
        x = (base + shift).astype(dt) if dt != np.uint64 else base.astype(np.uint64) + np.uint64(shift)
        if dt == np.uint32 and shift == 0:
            x[0, 0] = 2**31  # scattered: the values present are coloured
        colors = {int(x[1, 1]): (1, 2, 3, 4)}
        ref = hashed_colors(x.ravel()).reshape(x.shape + (4,))
        ref[x == x[1, 1]] = (1, 2, 3, 4)
        got = label_rgba(x, colors, table=small_table(x.dtype, colors))
        assert (got == ref).all(), dt
        hidden = frozenset({int(x[2, 2])})
        ref[x == x[2, 2]] = 0
        assert (label_rgba(x, colors, hidden=hidden) == ref).all(), dt
    m = contour_mask(np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0]]))
    assert m.tolist() == [[False, False, True, True]] * 3


def _open(qtbot, w, path) -> None:
    open_and_wait(qtbot, w, path)
    set_identity_grey(w)
    wait_idle(qtbot, w)


def test_overlay_full_resolution_and_coarser_level(qtbot, window, coins_files) -> None:  # noqa: F811 - pytest fixture
    w = window
    _open(qtbot, w, coins_files["coins"])
    m = Mzarr(coins_files["coins"])
    lab = m.label("coins")
    assert [la.name for la in w.view.label_layers] == ["coins"]
    assert w.labels.list.count() == 1
    layer = w.view.label_layers[0]
    # full resolution: 1:1 around the middle
    w.view.show_rect(100, 80, 100 + 320, 80 + 240)
    wait_idle(qtbot, w)
    assert w.view.level == 0 and layer.level == 0
    compare(w, expected_blend(skdata.coins(), lab[...], 0.5))
    # coarser: the whole image is smaller than the view at level 1 or 2; the label tile is the label pyramid's level
    w.view.show_rect(-200, -150, 1080, 810)  # 2 level-0 px per screen px: level 1
    wait_idle(qtbot, w)
    assert w.view.level == 1 and layer.level == 1
    img1 = np.asarray(m.levels[1][...])
    lab1 = np.asarray(lab.levels[1][...])
    compare(w, expected_blend(img1, lab1, 0.5), factor=2)
    m.close()


def test_ngff_colours_hide_show_opacity_contour(qtbot, window, coins_files) -> None:  # noqa: F811 - pytest fixture
    w = window
    _open(qtbot, w, coins_files["colors"])
    m = Mzarr(coins_files["colors"])
    lab = m.label("coins")
    seg, colors = lab[...], lab.colors
    assert set(colors.values()) == {(255, 0, 0, 255), (0, 0, 255, 128)}  # a colour's alpha scales the opacity
    w.view.show_rect(100, 80, 100 + 320, 80 + 240)
    wait_idle(qtbot, w)
    grey = skdata.coins()
    compare(w, expected_blend(grey, seg, 0.5, colors))
    # opacity 80 % from the panel's slider
    w.labels.opacity.setValue(80)
    qtbot.wait(50)
    compare(w, expected_blend(grey, seg, 0.8, colors))
    # hide: the image alone; show again
    w.labels.item("coins").setCheckState(Qt.CheckState.Unchecked)
    wait_idle(qtbot, w)
    assert not w.view.label_layers[0].visible
    compare(w, np.repeat(grey[..., None].astype(float), 3, axis=2))
    w.labels.item("coins").setCheckState(Qt.CheckState.Checked)
    wait_idle(qtbot, w)
    compare(w, expected_blend(grey, seg, 0.8, colors))
    # L hides every label image, L again shows them
    w.findChild(QAction, "actToggleLabels").trigger()
    wait_idle(qtbot, w)
    assert not w.view.label_layers[0].visible and w.labels.item("coins").checkState() == Qt.CheckState.Unchecked
    compare(w, np.repeat(grey[..., None].astype(float), 3, axis=2))
    w.findChild(QAction, "actToggleLabels").trigger()
    wait_idle(qtbot, w)
    compare(w, expected_blend(grey, seg, 0.8, colors))
    # contours: per tile (64x64 chunks at level 0), only pixels whose 4-neighbours differ keep a colour
    w.labels.contour.setChecked(True)
    qtbot.wait(50)
    compare(w, contour_blend(grey, seg, 0.8, colors))
    assert (contour_mask(seg) & (seg > 0)).sum() < 0.5 * (seg > 0).sum()  # boundaries only
    m.close()


def test_status_bar_shows_label_value_and_name(qtbot, window, coins_files) -> None:  # noqa: F811 - pytest fixture
    w = window
    _open(qtbot, w, coins_files["coins"])
    m = Mzarr(coins_files["coins"])
    seg = m.label("coins")[...]
    props = m.label("coins").properties
    w.view.show_rect(100, 80, 100 + 320, 80 + 240)
    wait_idle(qtbot, w)
    (value, p), = props.items()
    rows, cols = np.nonzero(seg == value)
    row, col = int(rows[len(rows) // 2]), int(cols[len(cols) // 2])
    w.view._cursor_at = (row + 0.5, col + 0.5)
    w.view.cursorInfo.emit(w.view._cursor_info(row + 0.5, col + 0.5))
    qtbot.waitUntil(lambda: f"coins: {value}" in w.label_label.text(), timeout=5000)
    assert p["name"] in w.label_label.text()
    bg = np.argwhere(seg == 0)[0]
    w.view.cursorInfo.emit(w.view._cursor_info(bg[0] + 0.5, bg[1] + 0.5))
    assert "coins: 0" in w.label_label.text()
    # zoomed out (level 1 on screen, level 0 of the labels not read): the coarse value marked ≈, then the
    # full-resolution one once the background read arrives
    w.view.show_rect(-200, -150, 1080, 810)
    w.doc.clear_cache()  # the file's decoded chunks: level 0 of the labels is not cached any more
    w.view.reload()
    wait_idle(qtbot, w)
    assert w.view.label_layers[0].level == 1
    lab1 = m.label("coins").levels[1][...]
    r, c = 201, 203  # an odd pixel: its level-1 pixel covers others
    w.view._cursor_at = (r + 0.5, c + 0.5)
    w.view.cursorInfo.emit(w.view._cursor_info(r + 0.5, c + 0.5))
    first = w.label_label.text()
    assert first.startswith(f"label coins: ≈{int(lab1[r // 2, c // 2])}"), first
    qtbot.waitUntil(lambda: w.label_label.text().startswith(f"label coins: {int(seg[r, c])}"), timeout=5000)
    m.close()


def test_volume_labels_follow_the_slice(qtbot, window, coins_files) -> None:  # noqa: F811 - pytest fixture
    w = window
    open_and_wait(qtbot, w, coins_files["volume"])
    m = Mzarr(coins_files["volume"])
    lab = m.label("cells")
    vol = m[...]
    lo, hi = float(vol.min()), float(vol.max())
    set_identity_grey(w, lo, hi)
    for z in (3, 11):
        w.slicing.set_index(z)  # the Slicing panel, as a user does
        w.view.show_rect(10, 5, 10 + 160, 5 + 120)
        wait_idle(qtbot, w)
        assert w.view.level == 0 and w.view.label_layers[0].plane.slice_index == z
        grey = np.clip(np.round((vol[z].astype(float) - lo) * 255.0 / (hi - lo)), 0, 255)
        compare(w, expected_blend(grey, lab[z], 0.5))
    m.close()


def test_hidden_values_and_labels_after_saving_an_edit(qtbot, window, coins_files, tmp_path) -> None:  # noqa: F811
    import shutil

    w = window
    p = tmp_path / "coins.mzarr"
    shutil.copyfile(coins_files["coins"], p)
    _open(qtbot, w, p)
    m = Mzarr(p)
    seg = m.label("coins")[...]
    m.close()
    grey = skdata.coins().copy()
    w.view.show_rect(100, 80, 100 + 320, 80 + 240)
    wait_idle(qtbot, w)
    # hide two label values of the selected label image from the panel
    values = [int(v) for v in np.unique(seg[80:320, 100:420]) if v][:2]
    assert w.labels.list.currentItem().text() == "coins"
    w.labels.hide_values.setText(f"{values[0]}, {values[1]}")
    w.labels.hide_values.editingFinished.emit()
    assert w.view.label_layers[0].hidden_values == frozenset(values)
    shown = np.where(np.isin(seg, values), 0, seg)
    compare(w, expected_blend(grey, shown, 0.5))
    w.labels.hide_values.setText("")
    w.labels.hide_values.editingFinished.emit()
    # an image edit saved: the file is reopened, the label image with it, and drawn again over the new pixels
    assert w.select_and_fill((150, 100, 250, 180), 0)
    assert w.save()
    wait_idle(qtbot, w)
    grey[100:180, 150:250] = 0
    assert [la.name for la in w.view.label_layers] == ["coins"]
    compare(w, expected_blend(grey, seg, 0.5))


def test_labels_of_another_slice_are_never_drawn(qtbot, window, coins_files, monkeypatch) -> None:  # noqa: F811
    """Stepping to a slice whose label chunks are not read yet shows the new image slice without any overlay
    (the previous slice's labels are hidden, not kept beneath), then the new slice's labels when they arrive."""
    import threading

    import mzarr_app.chunk_loader as chunk_loader

    w = window
    open_and_wait(qtbot, w, coins_files["volume"])
    m = Mzarr(coins_files["volume"])
    lab = m.label("cells")
    vol = m[...]
    lo, hi = float(vol.min()), float(vol.max())
    set_identity_grey(w, lo, hi)
    w.slicing.set_index(3)
    w.view.show_rect(10, 5, 10 + 160, 5 + 120)
    wait_idle(qtbot, w)
    gate = threading.Event()
    label_levels = w.view.label_layers[0].doc.levels
    real = chunk_loader.read_chunk

    def slow(level, chunk_index):
        if any(level is lv for lv in label_levels):
            gate.wait(10)
        return real(level, chunk_index)

    monkeypatch.setattr(chunk_loader, "read_chunk", slow)
    w.doc.clear_cache()  # the file's decoded bricks (they hold every slice of this small volume)
    try:
        w.slicing.set_index(11)
        qtbot.waitUntil(lambda: w.view.layers[0].complete and not w.view.label_layers[0].complete, timeout=10000)
        qtbot.wait(50)
        grey = np.clip(np.round((vol[11].astype(float) - lo) * 255.0 / (hi - lo)), 0, 255)
        compare(w, np.repeat(grey[..., None], 3, axis=2))
    finally:
        gate.set()
    wait_idle(qtbot, w)
    compare(w, expected_blend(grey, lab[11], 0.5))
    m.close()


def test_premultiplied_table_is_what_qt_reads_as_the_colour(qapp):
    """Label tiles are handed to Qt in ARGB32_Premultiplied layout: read back as RGBA they are the table's colours."""
    from PySide6.QtGui import QImage

    from mzarr_app.label_layer import premultiplied

    rgba = np.array([[0, 0, 0, 0], [255, 0, 0, 255], [10, 200, 30, 255], [200, 100, 50, 128], [255, 255, 255, 1]],
                    np.uint8)
    px = premultiplied(rgba)
    img = QImage(px.tobytes(), len(px), 1, len(px) * 4, QImage.Format.Format_ARGB32_Premultiplied)
    back = img.convertToFormat(QImage.Format.Format_RGBA8888)
    got = np.frombuffer(back.constBits(), np.uint8, count=len(px) * 4).reshape(-1, 4)
    assert (got[:, 3] == rgba[:, 3]).all()
    opaque = rgba[:, 3] == 255
    assert (got[opaque] == rgba[opaque]).all()
    half = rgba[:, 3] == 128  # premultiplied storage loses at most one step of the colour at alpha 128
    assert np.abs(got[half, :3].astype(int) - rgba[half, :3]).max() <= 2


def test_background_tiles_are_not_drawn_unless_label_0_has_a_colour(qtbot, window, tmp_path) -> None:  # noqa: F811
    """A tile of label 0 only is skipped (nothing to colour or draw); with an NGFF colour for 0 it is drawn."""
    coins = skdata.coins()
    seg = np.zeros(coins.shape, np.uint16)
    seg[130:170, 200:240] = 7  # labels in one 64-tile only
    for name, colors in (("plain", None), ("zero_coloured", {0: (0, 255, 0, 255), 7: (255, 0, 0, 255)})):
        p = tmp_path / f"{name}.mzarr"
        Mzarr(coins).save(p, chunks=(64, 64), levels=2)
        with Mzarr(p, "r+") as m:
            m.create_labels("seg", seg, colors=colors)
        _open(qtbot, window, p)
        window.view.show_rect(100, 80, 100 + 320, 80 + 240)
        wait_idle(qtbot, window)
        layer = window.view.label_layers[0]
        assert layer.level == 0
        shown = [t for t in layer.tiles.values() if t.item.isVisible()]
        background = [t for t in layer.tiles.values() if not np.any(t.raw)]
        assert background, "the label image has background-only tiles"
        if colors is None:
            assert len(shown) == len(layer.tiles) - len(background) == 1
            compare(window, expected_blend(coins, seg, 0.5))
        else:
            assert len(shown) == len(layer.tiles)
            compare(window, expected_blend(coins, seg, 0.5, colors=colors))
        # a pending stroke in a background-only tile: drawn at that tile's place and size (its item had no
        # coloured image until now), and the blend shows it where it is
        before = [t.key for t in layer.tiles.values() if not np.any(t.raw)]
        assert window.paint([(300.0, 120.0), (330.0, 125.0)], 4, 7, target="seg")
        wait_idle(qtbot, window)
        from mzarr_app.tiles import tile_rect

        for t in layer.tiles.values():
            x, y, w_, h_ = tile_rect(layer.doc.levels[t.key.level], t.plane, t.key)
            r = t.item.mapRectToView(t.item.boundingRect())
            assert (r.x(), r.y(), r.width(), r.height()) == (x, y, w_, h_), (t.key, r)
        painted = [t for t in layer.tiles.values() if t.key in before and t.item.isVisible()]
        assert painted, "the stroke's tile is drawn"
        window.model.reset()
        wait_idle(qtbot, window)


def test_label_tiles_are_coloured_in_the_loader_threads(qtbot, window, coins_files) -> None:  # noqa: F811
    """Each label chunk is coloured as it is read (``ChunkLoader.prepare``): the item's pixels are the ones the
    loader thread made, equal to ``label_rgba`` of the chunk at the layer's opacity; a tile with pending edits, or
    coloured for another style (opacity), is coloured on the GUI thread instead."""
    w = window
    _open(qtbot, w, coins_files["coins"])
    layer = w.view.label_layers[0]
    w.view.show_rect(100, 80, 100 + 320, 80 + 240)
    wait_idle(qtbot, w)
    assert layer.level == 0 and layer.rendered.hits > 0
    lab0 = Mzarr(coins_files["coins"]).label("coins").levels[0]
    checked = 0
    for t in layer.tiles.values():
        if t.key.level != 0 or getattr(t.item, "background", False):
            continue
        chunk = np.asarray(lab0.read_chunk((t.key.row_chunk, t.key.col_chunk)))
        want = label_rgba(chunk, layer.doc.colors, as_premultiplied=True, opacity=layer.opacity)
        np.testing.assert_array_equal(np.asarray(t.item.image), want)
        checked += 1
    assert checked >= 4
    # a new opacity colours the tiles on screen again (folded into the colours; the items stay at opacity 1)
    hits = layer.rendered.hits
    w.view.set_label_opacity(0.8)
    t = next(t for t in layer.tiles.values() if t.key.level == 0 and not getattr(t.item, "background", False))
    np.testing.assert_array_equal(np.asarray(t.item.image), label_rgba(
        np.asarray(t.raw), layer.doc.colors, as_premultiplied=True, opacity=0.8))
    assert t.item.opacity() == 1.0 and layer.rendered.hits == hits
    compare(w, expected_blend(skdata.coins(), lab0[...], 0.8))


def test_tile_items_are_reused_across_jumps(qtbot, window, coins_files, monkeypatch) -> None:  # noqa: F811
    """Items of dropped tiles are hidden and reused for the next ones, not created and destroyed per tile: jumping
    back and forth between two places creates (almost) no new items after the first round, and the picture is
    right."""
    from mzarr_app import layers

    w = window
    _open(qtbot, w, coins_files["coins"])
    m = Mzarr(coins_files["coins"])
    lab = m.label("coins")[...]
    created = []
    init = layers.TileItem.__init__

    def counting_init(self) -> None:
        created.append(1)
        init(self)

    monkeypatch.setattr(layers.TileItem, "__init__", counting_init)
    shown_per_jump = []
    for cycle in range(3):
        if cycle == 1:
            created.clear()
        for x0, y0 in ((0, 0), (200, 150)):
            w.view.show_rect(x0, y0, x0 + 160, y0 + 120)
            wait_idle(qtbot, w)
            shown_per_jump.append(sum(len(layer.tiles) for layer in w.view.layers))
    # without reuse the last four jumps would create every tile's item again
    assert min(shown_per_jump) >= 4 and len(created) <= 2, (shown_per_jump, len(created))
    shown = {id(t.item) for layer in w.view.layers for t in layer.tiles.values()}
    spare = [i for i in w.view.vb.addedItems if isinstance(i, layers.TileItem) and id(i) not in shown]
    assert spare and all(not i.isVisible() and i.image is None for i in spare)
    compare(w, expected_blend(skdata.coins(), lab, 0.5))
    m.close()


def test_one_value_tiles_are_filled_with_their_colour(qtbot, window, tmp_path) -> None:  # noqa: F811
    """A label tile of one value is neither looked up pixel by pixel nor kept as pixels: Qt fills its rectangle with
    the value's colour (``Fill``), and the view shows the same blend as for any tile; a hidden value or contours
    (a tile of one value has none) draw nothing there; an all-zero tile draws nothing."""
    from mzarr_app.label_layer import Fill

    coins = skdata.coins()
    seg = np.zeros(coins.shape, np.uint16)
    seg[64:128, 128:192] = 9  # exactly one 64-chunk of value 9
    seg[130:170, 200:240] = 7  # and a tile of 7 and 0
    colors = {7: (255, 0, 0, 255), 9: (0, 200, 255, 128)}
    p = tmp_path / "fill.mzarr"
    Mzarr(coins).save(p, chunks=(64, 64), levels=2)
    with Mzarr(p, "r+") as m:
        m.create_labels("seg", seg, colors=colors)
    w = window
    _open(qtbot, w, p)
    w.view.show_rect(100, 40, 100 + 320, 40 + 240)
    wait_idle(qtbot, w)
    layer = w.view.label_layers[0]
    assert layer.level == 0
    fills = [t for t in layer.tiles.values() if t.item.fill is not None]
    assert [(t.key.row_chunk, t.key.col_chunk) for t in fills] == [(1, 2)]
    item = fills[0].item
    assert item.isVisible() and item.fill.getRgb() == (0, 200, 255, 64)  # the colour's alpha 128 x opacity 0.5
    # its image holds no memory of its own and reads as the tile's pixels would be
    assert item.image.strides == (0, 0, 1)
    np.testing.assert_array_equal(np.asarray(item.image), label_rgba(
        seg[64:128, 128:192], colors, as_premultiplied=True, opacity=0.5))
    coloured = [t for t in layer.tiles.values() if t.item.fill is None and t.item.isVisible()]
    assert len(coloured) == 1 and isinstance(coloured[0].item.image.base, np.ndarray)
    compare(w, expected_blend(coins, seg, 0.5, colors))
    # hidden value 9: its filled tile is not drawn; shown again: filled
    w.view.set_label_hidden_values("seg", [9])
    wait_idle(qtbot, w)
    assert not item.isVisible() and item.fill is None
    compare(w, expected_blend(coins, np.where(seg == 9, 0, seg), 0.5, colors))
    w.view.set_label_hidden_values("seg", [])
    wait_idle(qtbot, w)
    assert item.isVisible() and item.fill is not None
    # contours: a tile of one value has no boundary inside it (at a tile's edge the outside counts as equal)
    w.view.set_label_contour(True)
    wait_idle(qtbot, w)
    assert not item.isVisible()
    compare(w, contour_blend(coins, seg, 0.5, colors))
    # the loader threads made the fill (no pixels coloured on the GUI thread for it)
    style = layer.style()
    fill = style.render(np.full((64, 64), 9, np.uint16))
    assert fill is None  # contours
    w.view.set_label_contour(False)
    fill = layer.style().render(np.full((64, 64), 9, np.uint16))
    assert isinstance(fill, Fill) and fill.rgba == (0, 200, 255, 64)


def test_label_style_render_paths() -> None:
    """``LabelStyle.render``: pixels for a tile of several values (into a pool buffer when given), a ``Fill`` whose
    colour is what every pixel would be for a tile of one value, None where nothing is drawn; NGFF colour of 0,
    hidden values, contours and opacity taken into account, for 8/16-bit tables and wide dtypes alike."""
    from mzarr_app.label_layer import Fill, LabelStyle, PixelPool, premultiplied

    for dt in (np.uint8, np.int16, np.uint32, np.int64):
        for colors in ({}, {0: (10, 20, 30, 255), 5: (1, 2, 3, 200)}):
            for opacity in (1.0, 0.35):
                table = small_table(dt, colors, frozenset({6}))
                st = LabelStyle(colors, False, frozenset({6}), opacity,
                                None if table is None else premultiplied(table, opacity), table)
                for value in (0, 5, 6, 9):
                    tile = np.full((16, 24), value, dt)
                    want = label_rgba(tile, colors, hidden=frozenset({6}), as_premultiplied=True, opacity=opacity)
                    got = st.render(tile)
                    if not want[..., 3].any():
                        assert got is None, (dt, colors, value)
                        continue
                    assert isinstance(got, Fill), (dt, colors, value)
                    np.testing.assert_array_equal(got.pixel, want[0, 0])
                    # the straight colour Qt is given premultiplies to the same pixel
                    np.testing.assert_array_equal(premultiplied(np.array([got.rgba], np.uint8))[0], got.pixel)
                mixed = np.arange(16 * 24).reshape(16, 24).astype(dt) % 11
                pool = PixelPool(1 << 20)
                got = st.render(mixed, pool)
                assert isinstance(got, np.ndarray) and got.flags.owndata and got.shape == (16, 24, 4)
                np.testing.assert_array_equal(got, label_rgba(mixed, colors, hidden=frozenset({6}),
                                                              as_premultiplied=True, opacity=opacity))
    with pytest.raises(ValueError, match="uint8"):
        label_rgba(np.zeros((4, 4), np.uint16) + 1, out=np.empty((4, 4, 4), np.uint16))


def test_pixel_buffers_are_reused_but_never_while_looked_at(qtbot, window, coins_files) -> None:  # noqa: F811
    """Label tiles are coloured into the buffers of tiles no longer drawn (``LabelLayer.pool``); a buffer still
    referenced (here: the test keeps a tile's image) is never coloured into again, and the picture stays right."""
    w = window
    _open(qtbot, w, coins_files["coins"])
    layer = w.view.label_layers[0]
    lab = Mzarr(coins_files["coins"]).label("coins")[...]
    w.view.show_rect(0, 0, 160, 120)
    wait_idle(qtbot, w)
    kept = next(t.item.image for t in layer.tiles.values() if t.item.isVisible() and t.item.fill is None)
    snapshot = np.array(kept)
    for _ in range(3):
        for x0, y0 in ((200, 150), (0, 150), (200, 0), (0, 0)):
            w.view.show_rect(x0, y0, x0 + 160, y0 + 120)
            wait_idle(qtbot, w)
    assert layer.pool.reused > 0
    np.testing.assert_array_equal(kept, snapshot)  # the buffer the test holds was left alone
    compare(w, expected_blend(skdata.coins(), lab, 0.5))
    # every buffer on screen is distinct (no tile drawn from a buffer another tile is coloured into)
    bases = [t.item.image.base for t in layer.tiles.values() if t.item.fill is None and not t.item.background]
    assert len({id(b) for b in bases}) == len(bases)


def test_label_document_cached_answers_from_a_memo(coins_files, monkeypatch) -> None:
    """LabelDocument reads and looks up its chunks as the image's Document does (the same methods): a chunk found
    uncached is answered from a memo until it is read (the label level is not asked again), a read one with the
    library's pixels; emptying the cache or opening the file again forgets the memo."""
    from mzarr_app.document import Document
    from mzarr_app.label_layer import LabelDocument

    image = Document(str(coins_files["coins"]))
    try:
        doc = LabelDocument(image, "coins")
        lev = doc.levels[0]
        seg = np.asarray(doc.label[...])
        doc.clear_cache()  # that read cached every chunk
        asked = []
        real = type(lev).read_chunk

        def counting(self, *a, **k):
            asked.append(a[0])
            return real(self, *a, **k)

        monkeypatch.setattr(type(lev), "read_chunk", counting)
        key = (0, (2, 3))
        assert doc.cached(key) is None and doc.cached(key) is None
        assert len(asked) == 1  # the second answer is the memo's
        got = doc.read_chunk(key)
        np.testing.assert_array_equal(got, seg[128:192, 192:256])
        for _ in range(3):  # read since: found (a zstd chunk's pixels are asked of the library each time)
            again = doc.cached(key)
            assert again is not None and np.shares_memory(again, got) and not again.flags.writeable
        other = (0, (1, 1))
        asked.clear()
        assert all(doc.cached(other) is None for _ in range(5)) and len(asked) == 1  # a miss: from the memo
        doc.clear_cache()
        assert doc.cached(key) is None
        doc.read_chunk(key)
        assert doc.cached(key) is not None
        image.reopen()
        doc.refresh()  # a new handle: an empty cache, a forgotten memo
        assert doc.cached(key) is None
    finally:
        image.close()


def test_labels_panel_exports_the_selected_label_image(qtbot, window, tmp_path, monkeypatch) -> None:  # noqa: F811
    """Labels > Export…: the selected label image is written (file dialog replaced, progress via run_task) to NIfTI
    with the image's spacing and origin (the affine of the image's own export), its voxels exact; with unsaved edits
    it says to save first and writes nothing; no label image: the button is off."""
    nibabel = pytest.importorskip("nibabel", reason="nibabel (test extra) reads the exported NIfTI")
    from mzarr_core import formats

    w = window
    vol = volume_3d(z=12, y=90, x=110)
    seg = np.zeros(vol.shape, np.uint8)
    seg[2:7, 10:40, 20:70] = 4
    p = tmp_path / "ct.mzarr"
    Mzarr(vol, spacing=(2.5, 0.7, 0.7), unit="millimeter").save(p, chunks=(8, 64, 64), levels=2)
    with Mzarr(p, "r+") as m:
        m.create_labels("tumour", seg)
        m.create_labels("organs", (vol > 2000).astype(np.uint8))
    _open(qtbot, w, p)
    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(w.labels, "ask_export_path",
                        lambda image, name: asked.append((image, name)) or str(tmp_path / f"{name}.nii.gz"))
    dialogs: list = []
    w.progress_hook = dialogs.append
    w.labels.list.setCurrentRow([w.labels.list.item(i).text() for i in range(2)].index("tumour"))
    assert w.labels.export.isEnabled()
    qtbot.mouseClick(w.labels.export, Qt.MouseButton.LeftButton)
    assert asked == [(str(p), "tumour")] and len(dialogs) == 1
    assert w.statusBar().currentMessage() == "Exported label image 'tumour' to tumour.nii.gz"
    formats.export(p, tmp_path / "image.nii.gz")
    label, image = nibabel.load(tmp_path / "tumour.nii.gz"), nibabel.load(tmp_path / "image.nii.gz")
    assert np.array_equal(np.asarray(label.dataobj).T, seg) and label.get_data_dtype() == np.uint8
    assert np.array_equal(label.affine, image.affine) and np.allclose(np.diag(label.affine)[:3], [0.7, 0.7, 2.5])
    # unsaved edits: refused with what to do, nothing written
    assert w.select_and_fill((0, 0, 10, 10), 0)
    asked.clear()
    qtbot.mouseClick(w.labels.export, Qt.MouseButton.LeftButton)
    assert asked == [] and "unsaved edits" in w.last_error and "save (File > Save), then export" in w.last_error
    w.labels.set_labels([])
    assert not w.labels.export.isEnabled()
