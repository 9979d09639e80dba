"""GUI tests of the tiled view on real files: level choice, requested chunks, rendered pixels, 3D slicing."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app_fixtures import (chunk_rect, grab_view, image_copy, image_dir, intersects,  # noqa: F401
                          isolated_settings, open_and_wait, read_log, set_identity_grey, wait_idle, window)
from mzarr_app import tiles as T


def expected_level(w) -> int:
    """Coarsest level with factor <= one screen pixel in level-0 pixels (the rule the view must follow)."""
    r, size = w.view.vb.viewRect(), w.view.vb.size()
    px = max(r.width() / size.width(), r.height() / size.height())
    best = 0
    for i, lev in enumerate(w.doc.levels):
        if max(lev.factor) <= px + 1e-9:
            best = i
    return best


def assert_only_visible_decoded(w, reads, skip_levels=()) -> None:
    """Every decoded chunk or plane (outside ``skip_levels``) intersects the visible rectangle and holds the slice."""
    rect = w.view.visible_rect()
    p = w.view.plane
    for key in reads:
        lv, idx = key[0], key[1]
        if lv in skip_levels:
            continue
        lev = w.doc.levels[lv]
        cr = chunk_rect(lev, w.doc.axes, p.row, p.col, idx)
        assert intersects(cr, rect), f"chunk {idx} of level {lv} ({cr}) is outside the view {rect}"
        if p.slice_axis:
            sa = w.doc.axes.index(p.slice_axis)
            s = min(p.slice_index // lev.factor[sa], lev.shape[sa] - 1)
            if len(key) == 3:  # a plane of the slice on screen or of the next one (read-ahead)
                assert p.slice_axis == "z" and key[2] in (s, s + w.view._step_dir), f"plane {key}: slice is {s}"
                s = key[2]
            assert idx[sa] == s // lev.chunks[sa]


def expected_reads(w, lv: int, ahead: tuple[int, ...] = (0,)) -> set:
    """Read keys of the target tiles of level ``lv``: whole chunks, or for z-slices the planes of the slices
    ``ahead`` (0: the slice on screen, 1: the next one in the step direction, which is read ahead)."""
    p, lev = w.view.plane, w.doc.levels[lv]
    by_plane = p.slice_axis == "z" and w.doc.plane_reads[lv]
    nz = lev.shape[w.doc.axes.index(p.slice_axis)] if p.slice_axis else 1
    out = set()
    for t in w.view.target:
        for n in (ahead if by_plane else (0,)):
            s = t.slice_at_level + n * w.view._step_dir if by_plane else t.slice_at_level
            if t.level == lv and (s is None or 0 <= s < nz):
                t2 = T.TileKey(t.level, t.row_chunk, t.col_chunk, s, t.channels)
                out |= {T.read_key(t2, c, by_plane) for c in T.tile_chunks(lev, p, t2)}
    return out


def test_open_fit_zoom_in_out_levels_and_chunks(qtbot, window, image_dir, read_log) -> None:
    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    doc = w.doc
    assert doc.shape == (2048, 3072) and len(doc.levels) >= 3
    hist = w.view._hist_level
    # fit: 3072 px in 640 px -> 4.8 level-0 px per screen px -> level 2 (factor 4)
    assert w.view.level == expected_level(w) == 2
    first = set(read_log.keys())
    assert {k for k in first if k[0] == 2} == {(2, idx) for t in w.view.target
                                              for idx in T.tile_chunks(doc.levels[2], w.view.plane, t)}
    assert_only_visible_decoded(w, first, skip_levels={hist})
    # zoom in on a 600x450 region around (1400, 900): full resolution
    read_log.clear()
    w.view.show_rect(1100, 675, 1700, 1125)
    wait_idle(qtbot, w)
    assert w.view.level == expected_level(w) == 0
    reads = read_log.keys()
    want = {(0, (r, c)) for r in range(675 // 512, 1124 // 512 + 1) for c in range(1100 // 512, 1699 // 512 + 1)}
    vis = w.view.visible_rect()
    want = {(0, (r, c)) for r in range(int(vis[1]) // 512, (int(np.ceil(vis[3])) - 1) // 512 + 1)
            for c in range(int(vis[0]) // 512, (int(np.ceil(vis[2])) - 1) // 512 + 1)}
    assert {k for k in reads if k[0] == 0} == want
    assert len(reads) == len(set(reads)), "a chunk was decoded twice"
    assert_only_visible_decoded(w, reads, skip_levels={hist})
    # zoom out 2.5x -> 2.3 level-0 px per screen px -> level 1
    read_log.clear()
    w.view.zoom(0.4)
    wait_idle(qtbot, w)
    assert w.view.level == expected_level(w) == 1
    assert all(k[0] == 1 for k in read_log.keys())
    assert_only_visible_decoded(w, read_log.keys(), skip_levels={hist})


def test_rendered_pixels_match_library_at_full_and_half_resolution(qtbot, window, image_dir) -> None:
    from mzarr_core import Mzarr

    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    set_identity_grey(w)
    vw, vh = w.view.viewport().width(), w.view.viewport().height()
    m = Mzarr(image_dir / "mosaic.mzarr")
    for level, (x0, y0) in ((0, (700, 300)), (1, (600, 200))):
        f = 2 ** level
        w.view.show_rect(x0, y0, x0 + vw * f, y0 + vh * f)
        wait_idle(qtbot, w)
        assert w.view.level == level
        img = grab_view(w)
        want = m.levels[level][y0 // f:y0 // f + vh, x0 // f:x0 // f + vw]
        got = img[: want.shape[0], : want.shape[1], 0].astype(int)
        assert (img[..., 0] == img[..., 1]).all() and (img[..., 3] == 255).all()
        diff = np.abs(got - want.astype(int))
        assert np.mean(diff == 0) > 0.99 and diff.mean() < 0.5, (level, diff.mean())


def test_pan_reuses_tiles_and_decodes_only_new_chunks(qtbot, window, image_dir, read_log) -> None:
    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    w.view.show_rect(400, 400, 1040, 880)
    wait_idle(qtbot, w)
    assert w.view.level == 0
    before = {k: id(t.item) for k, t in w.view._tiles.items() if k.level == 0}
    decoded_before = set(read_log.keys())
    read_log.clear()
    w.view.pan(300, 0)
    wait_idle(qtbot, w)
    after = {k: id(t.item) for k, t in w.view._tiles.items() if k.level == 0}
    kept = set(before) & set(after)
    assert kept, "no tile stayed on screen"
    assert all(before[k] == after[k] for k in kept), "a tile still on screen was recreated"
    new = set(read_log.keys())
    assert not (new & decoded_before), "a chunk already cached was decoded again"
    assert {(0, (k.row_chunk, k.col_chunk)) for k in set(after) - set(before)} == new


def test_requests_that_leave_the_view_are_cancelled(qtbot, window, image_dir, read_log) -> None:
    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    read_log.clear()
    read_log.delay, read_log.delay_levels = 0.15, {0}
    w.view.show_rect(0, 0, 1100, 825)  # 3x2 level-0 chunks requested (level 0: under 1.8 pixels per screen pixel)
    qtbot.wait(30)
    w.view.show_rect(2600, 1550, 3072, 2048)  # far away: the queued ones are cancelled
    wait_idle(qtbot, w)
    assert w.view.loader.cancelled > 0
    vis = w.view.visible_rect()
    stale = [k for k in read_log.keys() if k[0] == 0 and not intersects(
        chunk_rect(w.doc.levels[0], "yx", "y", "x", k[1]), vis)]
    assert len(stale) <= 2, f"only reads already running may finish, got {stale}"


def test_coarse_level_fills_in_while_fine_level_loads(qtbot, window, image_dir, read_log) -> None:
    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    set_identity_grey(w)
    read_log.delay, read_log.delay_levels = 0.5, {0}
    w.view.show_rect(1000, 1000, 1640, 1480)
    qtbot.waitUntil(lambda: w.view.level == 0, timeout=3000)
    qtbot.wait(100)
    assert not w.view.complete
    levels_shown = {k.level for k in w.view._tiles}
    assert levels_shown and min(levels_shown) > 0, "coarser tiles must stand in for level 0"
    img = grab_view(w)
    assert (img[..., 3] == 255).all() and (img[..., :3].max(axis=2) > 0).mean() > 0.95, "black hole in the view"
    wait_idle(qtbot, w)
    assert {k.level for k in w.view._tiles} == {0}


@pytest.mark.parametrize("bricks", ["strip", "frames", "slabs", "blosc"])
@pytest.mark.parametrize("axis", ["z", "y", "x"])
def test_3d_slicing_streams_the_slice_at_the_needed_level(qtbot, window, image_dir, read_log, axis, bricks) -> None:
    """z-slices of frame bricks decode one frame per brick of the view, of slab bricks one slab per brick (planes,
    never whole bricks); strip and Blosc bricks (and y/x slices of any) decode whole bricks, once: stepping through
    the slices of a cached brick layer decodes nothing."""
    from mzarr_core import Mzarr

    w = window
    whole = bricks in ("strip", "blosc")  # bricks decoded whole for every plane
    name = {"strip": "volume.mzarr", "frames": "volume_frames.mzarr", "slabs": "volume_slabs.mzarr",
            "blosc": "volume_blosc.mzarr"}[bricks]
    open_and_wait(qtbot, w, image_dir / name)
    m = Mzarr(image_dir / name)
    hist = w.view._hist_level
    w.slicing.set_axis(axis)
    wait_idle(qtbot, w)
    p = w.view.plane
    assert p.slice_axis == axis and p.slice_index == m.shape["zyx".index(axis)] // 2
    for step in range(3):
        read_log.clear()
        if step:
            qtbot.keyClick(w, Qt.Key.Key_PageDown)
            assert w.view.plane.slice_index == m.shape["zyx".index(axis)] // 2 + step
        wait_idle(qtbot, w)
        p = w.view.plane
        assert_only_visible_decoded(w, read_log.keys(), skip_levels={hist})
        lv = w.view.level
        lev = m.levels[lv]
        assert lv != hist and w.doc.plane_reads[lv] == (not whole)
        if axis == "z" and not whole:  # one plane per chunk of the view, never a whole brick
            assert not [k for k in read_log.chunks() if k[0] != hist], "a whole brick was decoded for a z-slice"
            if step and bricks == "frames":  # the new slice was read ahead: now exactly the next slice's planes
                assert sorted(read_log.keys()) == sorted(expected_reads(w, lv, (1,)))
        else:  # y/x slices, strip and Blosc bricks: whole bricks (cached across steps), no planes
            assert not read_log.planes()
            if step:
                assert not read_log.keys(), "stepping within the cached bricks must not decode again"
        for key, raw in w.view.shown_tiles().items():
            assert key.level == lv
            x, y, ww, hh = T.tile_rect(lev, p, key)
            f = lev.factor
            region = []
            for ax, a in enumerate("zyx"):
                if a == axis:
                    region.append(p.slice_index // f[ax])
                elif a == p.row:
                    region.append(slice(int(y) // f[ax], int(y + hh) // f[ax]))
                else:
                    region.append(slice(int(x) // f[ax], int(x + ww) // f[ax]))
            want = lev[tuple(region)]
            np.testing.assert_array_equal(raw, want)
    qtbot.keyClick(w, Qt.Key.Key_PageUp)
    assert w.view.plane.slice_index == m.shape["zyx".index(axis)] // 2 + 1


def test_3d_zoomed_in_slice_uses_full_resolution_chunks_only(qtbot, window, image_dir, read_log, monkeypatch) -> None:
    import mzarr_app.view as view_module

    monkeypatch.setattr(view_module, "PREFETCH_LAYERS", 0)  # what this view reads, without the layer read-ahead
    w = window
    open_and_wait(qtbot, w, image_dir / "volume.mzarr")
    read_log.clear()
    w.slicing.set_index(70)
    w.view.show_rect(100, 50, 180, 110)
    wait_idle(qtbot, w)
    assert w.view.level == 0
    lev = w.doc.levels[0]
    zc = 70 // lev.chunks[0]
    assert {k[1][0] for k in read_log.keys() if k[0] == 0} == {zc}
    assert {k for k in read_log.keys() if k[0] == 0} == expected_reads(w, 0, (0, 1))  # planes z=70 and 71 there
    assert_only_visible_decoded(w, read_log.keys(), skip_levels={w.view._hist_level})


def test_unreadable_chunk_is_reported_and_the_view_still_completes(qtbot, window, image_dir, monkeypatch) -> None:
    import mzarr_app.chunk_loader as cl
    from mzarr_core.errors import CorruptChunkError

    real = cl.read_chunk

    def broken(level, chunk_index):
        if level.index == 0 and tuple(chunk_index) == (1, 1):
            raise CorruptChunkError("level 0 chunk (1, 1) is corrupt")
        return real(level, chunk_index)

    monkeypatch.setattr(cl, "read_chunk", broken)
    w = window
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    with qtbot.waitSignal(w.view.tileFailed, timeout=10000) as sig:
        w.view.show_rect(400, 400, 1040, 880)
    assert "corrupt" in sig.args[0]
    wait_idle(qtbot, w)
    assert "Could not read" in w.statusBar().currentMessage()
    shown = w.view.shown_tiles()
    assert not any(k.level == 0 and (k.row_chunk, k.col_chunk) == (1, 1) for k in shown)
    assert any(k.level > 0 for k in shown), "a coarser level stands in for the unreadable chunk"
    img = grab_view(w)
    assert (img[..., :3].max(axis=2) > 0).mean() > 0.95


def test_slice_step_updates_tiles_in_place(qtbot, window, image_dir) -> None:
    w = window
    open_and_wait(qtbot, w, image_dir / "volume.mzarr")
    before = {k: id(t.item) for k, t in w.view._tiles.items()}
    i = w.view.plane.slice_index
    qtbot.keyClick(w, Qt.Key.Key_Period)
    wait_idle(qtbot, w)
    assert w.view.plane.slice_index == i + 1
    after = {k: id(t.item) for k, t in w.view._tiles.items()}
    assert after == before, "stepping a slice must reuse the items on screen (no flicker)"
    assert all(k.slice_at_level == (i + 1) // w.doc.levels[k.level].factor[0] for k in w.view.shown_tiles())


def test_czyx_composite_and_channel_slices(qtbot, window, tmp_path, read_log) -> None:
    from mzarr_core import Mzarr

    from app_fixtures import volume_3d

    vol = volume_3d(40, 120, 150)
    data = np.stack([vol, (65535 - vol)]).astype(np.uint16)
    path = tmp_path / "czyx.mzarr"
    Mzarr(data, axes="czyx").save(path)
    w = window
    open_and_wait(qtbot, w, path)
    assert w.view.display.mode == "composite" and w.view.plane.slice_axis == "z"
    p = w.view.plane
    for key, raw in w.view.shown_tiles().items():
        assert raw.shape[2] == 2  # both channels of the slice
    w.slicing.set_channel(1)
    w.slicing.set_index(7)
    wait_idle(qtbot, w)
    m = Mzarr(path)
    p = w.view.plane
    assert p.channels == (1,) and p.slice_index == 7
    for key, raw in w.view.shown_tiles().items():
        lev = m.levels[key.level]
        x, y, ww, hh = T.tile_rect(lev, p, key)
        f = lev.factor
        want = lev[1, 7 // f[1], int(y) // f[2]:int(y + hh) // f[2], int(x) // f[3]:int(x + ww) // f[3]]
        np.testing.assert_array_equal(raw, want)
    read_log.clear()
    w.view.reload()  # empty cache: showing channel 1 reads channel 1's chunks only
    wait_idle(qtbot, w)
    assert read_log.keys() and all(k[1][0] == 1 for k in read_log.keys())


def test_cache_stays_within_its_budget_while_browsing(qtbot, window, image_dir) -> None:
    w = window
    w.view.set_cache_mb(1.5)  # room for about 6 chunks of 512x512 uint8
    open_and_wait(qtbot, w, image_dir / "mosaic.mzarr")
    budget = w.view.loader.cache.max_bytes
    for x in range(0, 3072 - 640, 400):
        for y in (0, 1024):
            w.view.show_rect(x, y, x + 640, y + 480)
            wait_idle(qtbot, w)
            assert w.view.loader.cache.nbytes <= budget
            assert w.view.level == 0
    assert len(w.view.loader.decoded) > 12  # chunks were evicted and read again


def test_z_slices_decode_planes_only_and_match_the_library(qtbot, window, tmp_path, read_log) -> None:
    from mzarr_core import Mzarr

    from app_fixtures import volume_3d

    path = tmp_path / "vol8.mzarr"
    Mzarr((volume_3d(80, 340, 430) // 21).astype(np.uint8)).save(path, bricks="frames")
    w = window
    open_and_wait(qtbot, w, path)
    m = Mzarr(path)
    v, hist = w.view, w.view._hist_level
    assert v.plane.slice_axis == "z" and all(w.doc.plane_reads)
    lv = v.level
    # at fit: whole chunks only for the automatic contrast (its small level), planes of the view for the rest
    assert set(read_log.chunks()) <= set(v._hist_keys)
    planes = [k for k in read_log.planes() if k[0] == lv]
    assert len(planes) == len(set(planes)) and set(planes) == expected_reads(w, lv, (0, 1))
    assert_only_visible_decoded(w, read_log.keys(), skip_levels={hist})
    set_identity_grey(w)
    vw, vh = v.viewport().width(), v.viewport().height()
    for level, step in ((0, 0), (0, 1), (1, 1)):
        if step:
            read_log.clear()
            qtbot.keyClick(w, Qt.Key.Key_PageDown)
        f = 2 ** level
        v.show_rect(0, 0, vw * f, vh * f)
        wait_idle(qtbot, w)
        assert v.level == level
        z = v.plane.slice_index // f
        if step:
            assert not read_log.chunks(), "a whole brick was decoded for a z-slice"
            ahead = (1,) if level == 0 else (0, 1)  # level 0: the new slice was read ahead; level 1: new level
            assert {k for k in read_log.planes() if k[0] == level} == expected_reads(w, level, ahead)
        lev = m.levels[level]
        for key, raw in v.shown_tiles().items():  # raw tiles: exactly the library's plane
            x, y, tw, th = T.tile_rect(lev, v.plane, key)
            np.testing.assert_array_equal(raw, lev[z, int(y) // f:int(y + th) // f, int(x) // f:int(x + tw) // f])
        r = v.vb.viewRect()  # the view's limits may shift the requested rectangle: find the image on screen
        assert abs(r.width() - vw * f) < 1e-6 and r.left() <= 0 and r.top() <= 0
        sx, sy = int(round(-r.left() / f)), int(round(-r.top() / f))
        want = lev[z, :vh - sy, :vw - sx].astype(int)
        img = grab_view(w)[sy:sy + want.shape[0], sx:sx + want.shape[1]]
        got = img[..., 0].astype(int)
        diff = np.abs(got - want)
        assert (img[..., 3] == 255).all()
        assert np.mean(diff == 0) > 0.99 and diff.mean() < 0.5, (level, diff.mean())
    # stepping back reads ahead backwards: slices 41 and 40 were seen, so going to 40 reads 39's planes only
    v.show_rect(0, 0, vw, vh)
    qtbot.keyClick(w, Qt.Key.Key_PageUp)
    wait_idle(qtbot, w)
    read_log.clear()
    qtbot.keyClick(w, Qt.Key.Key_PageUp)
    wait_idle(qtbot, w)
    assert v.plane.slice_index == 40
    assert v._step_dir == -1 and read_log.keys() == read_log.planes()
    assert sorted(read_log.keys()) == sorted(expected_reads(w, 0, (1,)))
    assert {k[2] for k in read_log.keys()} == {v.plane.slice_index - 1}
    for row, col in ((0, 0), (100, 200), (339, 429)):  # the status bar's value comes from the cached planes
        assert v.value_at(row, col) == (int(m.levels[0][40, row, col]), 0)


def test_strip_bricks_read_the_next_layer_ahead(qtbot, window, image_dir, read_log) -> None:
    """Strip bricks decode whole: once a slice is sharp, the bricks of the next 64-slice layer (in the step
    direction) are read ahead, so stepping across the layer boundary finds them decoded."""
    from app_fixtures import set_identity_grey

    w = window
    open_and_wait(qtbot, w, image_dir / "volume.mzarr")
    set_identity_grey(w, 0, 65535)
    lv = w.view.level
    depth = w.doc.levels[lv].chunks[0] * w.doc.levels[lv].factor[0]  # slices per brick layer at this level
    w.slicing.set_index(depth - 1)  # the last slice of layer 0, stepping up
    wait_idle(qtbot, w)
    assert w.view.level == lv and w.view.complete
    ahead = {k for k in read_log.keys() if k[0] == lv and k[1][0] == 1}
    assert ahead, "the next brick layer was not read ahead"
    read_log.clear()
    qtbot.keyClick(w, Qt.Key.Key_PageDown)  # into layer 1
    assert w.view.plane.slice_index == depth
    wait_idle(qtbot, w)
    assert not [k for k in read_log.keys() if k[0] == lv and k[1][0] == 1], "layer 1 was decoded again"



def test_tile_items_draw_indexed_tiles_as_pyqtgraph_does(qapp) -> None:
    """A tile item turns uint8 indices and a colour table into Qt's image itself (not through pyqtgraph's render):
    the pixels equal pyqtgraph's own for grey, a colour map and a table with transparency; opaque tiles are RGB32
    (copied, not blended, when drawn)."""
    import pyqtgraph as pg
    from PySide6.QtGui import QImage

    from mzarr_app.contrast import colormap_lut
    from mzarr_app.layers import TileItem

    rng = np.random.default_rng(3)
    idx = rng.integers(0, 256, (37, 53)).astype(np.uint8)
    alpha = np.concatenate([colormap_lut("viridis")[:, :3], np.arange(256, dtype=np.uint8)[:, None]], axis=1)
    for lut in (colormap_lut("grey"), colormap_lut("viridis"), alpha):
        ours, theirs = TileItem(), pg.ImageItem(axisOrder="row-major")
        for item in (ours, theirs):
            item.setImage(idx, autoLevels=False, levels=None, lut=lut)
            item.render()
        fmt = QImage.Format.Format_ARGB32_Premultiplied
        want = theirs.qimage.convertToFormat(fmt)
        got = ours.qimage.convertToFormat(fmt)
        assert ours.qimage.format() == (fmt if lut is alpha else QImage.Format.Format_RGB32)
        assert (got.width(), got.height()) == (53, 37)
        assert bytes(got.constBits()) == bytes(want.constBits())


def test_arrivals_are_batched_and_a_batch_is_put_off_when_the_reads_are_nearly_done(qtbot, window, image_dir,
                                                                                   monkeypatch) -> None:
    """While chunks arrive, the view updates at most every ARRIVAL_BATCH_S; when the loader's pace says every read
    will be done before the batch after next, the batch is put off once by ARRIVAL_BATCH_S (the last arrival is
    shown at once, so a repaint in between only slows the readers); the last arrival is shown at once."""
    import time as _time

    from mzarr_app import view as V

    w = window
    open_and_wait(qtbot, w, image_dir / "volume_slabs.mzarr")
    v, loader = w.view, w.view.loader
    assert v.covered
    eta: list[float | None] = [None]
    monkeypatch.setattr(loader, "idle", lambda: False)  # reads still running
    monkeypatch.setattr(loader, "eta", lambda: eta[0])
    key = next(iter(v.requested), (0, (0, 0, 0)))

    def arrival(pace: float | None) -> float | None:
        """An arrival just after an update; the batch's delay after that update (None: no batch pending)."""
        v._timer.stop()
        v._last_update = _time.perf_counter()
        eta[0] = pace
        v._chunk_loaded(key)
        assert v._timer.isActive()
        return None if v._batch_due is None else round(v._batch_due - v._last_update, 6)

    assert arrival(None) == V.ARRIVAL_BATCH_S  # the pace is not known: the usual batch
    assert arrival(5.0) == V.ARRIVAL_BATCH_S  # far from done: the usual batch
    assert arrival(0.1) == 2 * V.ARRIVAL_BATCH_S  # done before the batch after next: put off
    eta[0] = 0.01
    v._chunk_loaded(key)  # a later arrival does not put it off again
    assert round(v._batch_due - v._last_update, 6) == 2 * V.ARRIVAL_BATCH_S
    # while the first batch is pending, a faster pace puts it off (once)
    assert arrival(5.0) == V.ARRIVAL_BATCH_S
    eta[0] = 0.1
    v._chunk_loaded(key)
    assert round(v._batch_due - v._last_update, 6) == 2 * V.ARRIVAL_BATCH_S
    assert v._timer.remainingTime() > 1000 * V.ARRIVAL_BATCH_S
    monkeypatch.setattr(loader, "idle", lambda: True)  # the last arrival: shown at once
    v._chunk_loaded(key)
    assert v._batch_due is None and v._timer.isActive() and v._timer.remainingTime() == 0
    wait_idle(qtbot, w)
