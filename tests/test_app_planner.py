"""The viewer's frame planner (mzarr_app.planner) without Qt: coverage, level rule, reads, read-ahead, edge cases."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mzarr_app import tiles as T
from mzarr_app.planner import FramePlan, FrameRequest, LevelGeometry, plan_frame, position, tile_reads


def pyramid(shape: tuple[int, ...], chunks: tuple[int, ...], n: int, axes: str = "yx",
            plane_reads: bool = False) -> tuple[LevelGeometry, ...]:
    """``n`` levels halving every spatial axis (ceil), channels kept."""
    out = []
    for i in range(n):
        f = tuple(1 if a == "c" else 2 ** i for a in axes)
        out.append(LevelGeometry(tuple(-(-s // ff) for s, ff in zip(shape, f)), chunks, f, plane_reads))
    return tuple(out)


def every_read(levels, plane) -> set:
    """Every read key of every tile of every level of ``plane`` (whole chunks, or planes when read by plane)."""
    out = set()
    h, w = levels[0].shape[plane.axes.index(plane.row)], levels[0].shape[plane.axes.index(plane.col)]
    for lv, g in enumerate(levels):
        for t in T.visible_tiles(g, lv, plane, (0, 0, w, h)):
            out |= set(tile_reads(g, plane, t, frozenset()))
    return out


def needed(levels, plane, tile_list, cached) -> set:
    return {k for t in tile_list for k in tile_reads(levels[t.level], plane, t, cached)}


def coverage(levels, plane, tile_list) -> np.ndarray:
    """Level-0 pixels of the plane covered by ``tile_list``."""
    h, w = levels[0].shape[plane.axes.index(plane.row)], levels[0].shape[plane.axes.index(plane.col)]
    mask = np.zeros((h, w), bool)
    for t in tile_list:
        x, y, tw, th = T.tile_rect(levels[t.level], plane, t)
        mask[math.floor(y):math.ceil(y + th), math.floor(x):math.ceil(x + tw)] = True
    return mask


def visible_pixels(rect) -> tuple[slice, slice]:
    x0, y0, x1, y1 = rect
    return slice(math.floor(y0), math.ceil(y1)), slice(math.floor(x0), math.ceil(x1))


# --- no Qt -------------------------------------------------------------------------------------------------------
def test_planner_imports_with_qt_blocked() -> None:
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6'):
            raise ImportError('blocked: ' + name)
        return None
sys.meta_path.insert(0, Block())
import mzarr_app.planner as P
import mzarr_app.tiles
levels = (P.LevelGeometry((100, 100), (64, 64), (1, 1)),)
plan = P.plan_frame(P.FrameRequest(levels, mzarr_app.tiles.default_plane('yx'), (0, 0, 100, 100), 1.0))
assert len(plan.tiles) == 4 and not any(m.split('.')[0] in ('PySide6', 'pyqtgraph') for m in sys.modules)
print('ok')
"""
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# --- coverage ----------------------------------------------------------------------------------------------------
@st.composite
def frames(draw):
    """A random pyramid, plane (2D, or a slice of a 3D volume along z/y/x), view rectangle, screen pixel and cache."""
    three_d = draw(st.booleans())
    if three_d:
        shape = tuple(draw(st.integers(1, 90)) for _ in range(3))
        chunks = tuple(draw(st.sampled_from([5, 16, 32])) for _ in range(3))
        axes = "zyx"
        slice_axis = draw(st.sampled_from("zyx"))
        plane = T.default_plane(axes, slice_axis, draw(st.integers(0, shape[axes.index(slice_axis)] - 1)))
        plane_reads = draw(st.booleans())
    else:
        shape = (draw(st.integers(1, 400)), draw(st.integers(1, 400)))
        chunks = (draw(st.sampled_from([7, 16, 64, 100])),) * 2
        axes, plane, plane_reads = "yx", T.default_plane("yx"), False
    levels = pyramid(shape, chunks, draw(st.integers(1, 4)), axes, plane_reads)
    x0, y0 = draw(st.floats(-100, 450)), draw(st.floats(-100, 450))
    rect = (x0, y0, x0 + draw(st.floats(0.5, 500)), y0 + draw(st.floats(0.5, 500)))
    spx = draw(st.floats(0.01, 20))
    keys = sorted(every_read(levels, plane), key=repr)
    cached = frozenset(k for k in keys if draw(st.booleans())) if keys and draw(st.booleans()) else frozenset()
    return levels, plane, rect, spx, cached


@settings(max_examples=200, deadline=None)
@given(frames())
def test_every_visible_pixel_is_covered_by_a_tile_and_by_the_stand_ins(frame) -> None:
    levels, plane, rect, spx, cached = frame
    plan = plan_frame(FrameRequest(levels, plane, rect, spx, cached))
    if plan.empty:
        return
    sel = visible_pixels(plan.rect)
    assert coverage(levels, plane, plan.tiles)[sel].all()
    if plan.coarse:
        assert coverage(levels, plane, plan.coarse)[sel].all()
        assert {t.level for t in plan.coarse} == {len(levels) - 1}
    # once the coarsest level is cached, what is drawn now (ready tiles and fallbacks) leaves no hole
    coarsest = len(levels) - 1
    full = cached | needed(levels, plane, T.visible_tiles(levels[coarsest], coarsest, plane, plan.rect), cached)
    plan = plan_frame(FrameRequest(levels, plane, rect, spx, full))
    drawn = [t for t in plan.tiles if t in plan.ready] + list(plan.fallback)
    assert coverage(levels, plane, drawn)[sel].all()
    assert all(t.level > plan.level for t in plan.fallback)
    assert plan.covered or plan.coarse  # covered once the stand-ins are on screen (they are not yet: shown is empty)


@settings(max_examples=200, deadline=None)
@given(frames())
def test_reads_are_exactly_the_missing_ones_and_never_cached(frame) -> None:
    levels, plane, rect, spx, cached = frame
    keys = sorted(every_read(levels, plane), key=repr)
    failed = frozenset(keys[::7])
    plan = plan_frame(FrameRequest(levels, plane, rect, spx, cached, failed))
    assert not set(plan.reads) & cached and not set(plan.prefetch) & cached
    assert not set(plan.reads) & failed
    assert len(set(plan.reads)) == len(plan.reads)
    want = needed(levels, plane, list(plan.coarse) + list(plan.tiles), cached) - cached - failed
    assert set(plan.reads) == want
    # the coarse stand-in is read first
    n_coarse = len(needed(levels, plane, plan.coarse, cached) - cached - failed)
    assert all(k[0] == len(levels) - 1 for k in plan.reads[:n_coarse])
    for t in plan.tiles:
        missing = set(tile_reads(levels[t.level], plane, t, cached)) - cached
        assert (t in plan.ready) == (not missing)
        assert (t in plan.unreadable) == bool(missing and missing & failed)
    assert plan.complete == (len(plan.ready) + len(plan.unreadable) == len(plan.tiles))


# --- level rule --------------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 8), spx=st.floats(1e-3, 1e4), axis=st.sampled_from("zyx"))
def test_level_follows_the_screen_pixel_rule(n, spx, axis) -> None:
    levels = pyramid((300, 500, 700), (32, 64, 64), n, "zyx")
    plane = T.default_plane("zyx", axis, 3)
    plan = plan_frame(FrameRequest(levels, plane, (0, 0, 10, 10), spx))
    ri, ci = "zyx".index(plane.row), "zyx".index(plane.col)
    # the coarsest level drawn at most LEVEL_MAGNIFICATION x enlarged; at 1:1 and closer, full resolution
    limit = spx * T.LEVEL_MAGNIFICATION * (1 + 1e-9) if spx > 1 else 1.0
    ok = [i for i, g in enumerate(levels) if max(g.factor[ri], g.factor[ci]) <= limit]
    assert plan.level == (max(ok) if ok else 0)
    chosen = levels[plan.level]
    assert max(chosen.factor[ri], chosen.factor[ci]) <= max(1.0, spx * T.LEVEL_MAGNIFICATION) * (1 + 1e-9)
    finer = plan_frame(FrameRequest(levels, plane, (0, 0, 10, 10), spx / 2))
    assert finer.level <= plan.level  # zooming in never picks a coarser level


def test_level_choice_examples_and_tiles_centre_first() -> None:
    levels = pyramid((2000, 3000), (512, 512), 4)
    plane = T.default_plane("yx")
    for spx, lv in ((0.25, 0), (1.0, 0), (1.8, 0), (1.82, 1), (2.0, 1), (3.6, 1), (3.7, 2), (4.0, 2), (1e9, 3)):
        assert plan_frame(FrameRequest(levels, plane, (0, 0, 3000, 2000), spx)).level == lv
    plan = plan_frame(FrameRequest(levels, plane, (0, 0, 3000, 2000), 1.0))
    assert len(plan.tiles) == 24 and not plan.ready and not plan.complete
    d = [(t.row_chunk - 1.5) ** 2 + (t.col_chunk - 2.5) ** 2 for t in plan.tiles]
    assert d == sorted(d)
    assert [(t.level, t.row_chunk, t.col_chunk) for t in plan.coarse] == [(3, 0, 0)]  # 250 x 375: one chunk
    assert plan.reads[0] == (3, (0, 0)) and set(plan.reads[1:]) == {(0, (r, c)) for r in range(4) for c in range(6)}


# --- read-ahead --------------------------------------------------------------------------------------------------
def _volume(plane_reads: bool) -> tuple[tuple[LevelGeometry, ...], T.Plane]:
    return pyramid((96, 200, 260), (64, 64, 64), 3, "zyx", plane_reads), T.default_plane("zyx", "z", 40)


def _settled(levels, plane, rect=(0, 0, 260, 200), spx=1.0, step=1, **kw) -> tuple[FrameRequest, FramePlan]:
    """The request after the frame of ``plane`` completed (every read of it cached), and its plan."""
    first = plan_frame(FrameRequest(levels, plane, rect, spx))
    cached = frozenset(needed(levels, plane, list(first.coarse) + list(first.tiles), frozenset()))
    req = FrameRequest(levels, plane, rect, spx, cached, step=step, **kw)
    done = plan_frame(req)
    assert done.complete and not done.reads and not done.prefetch  # complete, but the previous frame was not
    req = dataclasses.replace(req, last_target=done.tiles, last_complete=True)
    return req, plan_frame(req)


@pytest.mark.parametrize("step", [1, -1])
def test_prefetch_reads_the_next_slice_planes_in_the_step_direction(step) -> None:
    levels, plane = _volume(True)
    first = plan_frame(FrameRequest(levels, plane, (0, 0, 260, 200), 1.0, frozenset(
        needed(levels, plane, T.visible_tiles(levels[0], 0, plane, (0, 0, 260, 200)), frozenset())), step=step))
    assert first.complete and first.reschedule and not first.prefetch  # one more update reads ahead
    req, plan = _settled(levels, plane, step=step)
    assert plan.complete and not plan.reads and not plan.reschedule
    assert plan.prefetch and {k[2] for k in plan.prefetch} == {40 + step}
    assert {k[:2] for k in plan.prefetch} == {k for k in needed(levels, plane, plan.tiles, frozenset())
                                              for k in [k[:2]]}
    # the read-ahead is not re-requested once cached, and a whole brick cached serves a plane
    plan2 = plan_frame(dataclasses.replace(req, cached=req.cached | set(plan.prefetch)))
    assert not plan2.prefetch
    # no read-ahead before the frame is complete and unchanged
    assert not plan_frame(dataclasses.replace(req, last_complete=False)).prefetch
    assert not plan_frame(dataclasses.replace(req, last_target=plan.tiles[1:])).prefetch
    assert not plan_frame(dataclasses.replace(req, prefetch_slices=0)).prefetch


def test_prefetch_stops_at_the_ends_of_the_volume() -> None:
    levels, _ = _volume(True)
    for z, step in ((95, 1), (0, -1)):
        _, plan = _settled(levels, T.default_plane("zyx", "z", z), step=step)
        assert plan.complete and not plan.prefetch
    _, plan = _settled(levels, T.default_plane("zyx", "z", 93), step=1, prefetch_slices=5)
    assert sorted({k[2] for k in plan.prefetch}) == [94, 95]


@pytest.mark.parametrize("axis", ["z", "y", "x"])
@pytest.mark.parametrize("step", [1, -1])
def test_whole_bricks_read_ahead_the_neighbouring_layer_when_asked(axis, step) -> None:
    levels = pyramid((150, 200, 260), (64, 64, 64), 3, "zyx", False)
    plane = T.default_plane("zyx", axis, 70)
    h, w = (levels[0].shape["zyx".index(a)] for a in (plane.row, plane.col))
    _, plan = _settled(levels, plane, (0, 0, w, h), step=step)
    assert plan.complete and not plan.prefetch and not plan.reschedule  # today's viewer: no brick read-ahead
    req, plan = _settled(levels, plane, (0, 0, w, h), step=step, prefetch_layers=1)
    sa = "zyx".index(axis)
    assert plan.prefetch and all(len(k) == 2 and k[0] == 0 for k in plan.prefetch)
    assert {k[1][sa] for k in plan.prefetch} == {1 + step}  # slice 70 is in layer 1: the next layer is 2 (or 0)
    assert not set(plan.prefetch) & req.cached


# --- determinism, immutability -------------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(frames())
def test_a_plan_is_deterministic_and_frozen(frame) -> None:
    levels, plane, rect, spx, cached = frame
    req = FrameRequest(levels, plane, rect, spx, cached)
    a, b = plan_frame(req), plan_frame(FrameRequest(levels, plane, rect, spx, frozenset(sorted(cached, key=repr))))
    assert a == b and hash(a) == hash(b) and a.reads == b.reads and a.tiles == b.tiles
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.level = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.screen_pixel = 2.0  # type: ignore[misc]
    assert isinstance(a.tiles, tuple) and isinstance(a.reads, tuple) and isinstance(a.ready, frozenset)


def test_request_checks_its_geometry() -> None:
    with pytest.raises(ValueError):
        FrameRequest((), T.default_plane("yx"), (0, 0, 1, 1), 1.0)
    with pytest.raises(ValueError):
        FrameRequest(pyramid((10, 10, 10), (4, 4, 4), 1, "zyx"), T.default_plane("yx"), (0, 0, 1, 1), 1.0)


# --- what is on screen ---------------------------------------------------------------------------------------------
def test_tiles_on_screen_are_ready_kept_demoted_or_dropped() -> None:
    levels = pyramid((2048, 3072), (512, 512), 4)
    plane = T.default_plane("yx")
    rect = (1000, 1000, 2000, 1900)
    first = plan_frame(FrameRequest(levels, plane, rect, 2.0))
    assert first.level == 1 and not first.ready and not first.covered
    # on screen: the coarse stand-in, a level-2 tile and a level-0 tile of another plane over the view, a level-0
    # tile far away
    coarse = first.coarse[0]
    mid = T.TileKey(2, 0, 0, None, None)
    fine = T.TileKey(0, 2, 2, None, None)
    far = T.TileKey(0, 0, 5, None, None)
    old = T.Plane("yx", "y", "x", None, 0, (0,))
    shown = frozenset({(coarse, plane), (mid, old), (fine, old), (far, plane)})
    plan = plan_frame(FrameRequest(levels, plane, rect, 2.0, shown=shown))
    assert plan.covered and not plan.complete and plan.fallback == (coarse,)  # on screen: ready without its chunk
    assert {position(coarse), position(mid), position(fine)} <= plan.keep
    assert plan.demote == {position(fine)}  # another plane's finer tile: kept beneath until the level is complete
    assert plan.drop == {position(far)}
    assert set(plan.reads) == needed(levels, plane, plan.tiles, frozenset()) | {(coarse.level, (0, 0))}
    # every level-1 tile cached: the frame is complete, stand-ins and the rest are dropped
    cached = frozenset(needed(levels, plane, plan.tiles, frozenset()))
    done = plan_frame(FrameRequest(levels, plane, rect, 2.0, cached, shown=shown))
    assert done.complete and done.covered and not done.fallback and not done.demote
    assert done.reads == ((coarse.level, (0, 0)),)  # the stand-in is still read (it is cheap)
    assert done.keep == {position(t) for t in done.tiles}
    assert done.drop == {position(coarse), position(mid), position(fine), position(far)}


def test_unreadable_tiles_settle_the_frame() -> None:
    levels = pyramid((1024, 1024), (512, 512), 2)
    plane = T.default_plane("yx")
    keys = needed(levels, plane, T.visible_tiles(levels[0], 0, plane, (0, 0, 1024, 1024)), frozenset())
    bad = (0, (1, 1))
    plan = plan_frame(FrameRequest(levels, plane, (0, 0, 1024, 1024), 1.0, frozenset(keys - {bad}) | {(1, (0, 0))},
                                   frozenset({bad})))
    assert plan.complete and bad not in plan.reads and [t.row_chunk for t in plan.unreadable] == [1]
    assert [t.level for t in plan.fallback] == [1]  # the coarser level stays underneath the unreadable tile


# --- edge cases ----------------------------------------------------------------------------------------------------
def test_view_outside_the_image_plans_nothing_and_drops_everything() -> None:
    levels = pyramid((100, 200), (64, 64), 2)
    plane = T.default_plane("yx")
    shown = frozenset({(T.TileKey(0, 0, 0, None, None), plane)})
    for rect in ((300, 0, 400, 50), (-50, -50, -1, -1), (0, 150, 200, 300), (10, 10, 10, 60)):
        plan = plan_frame(FrameRequest(levels, plane, rect, 1.0, shown=shown))
        assert plan.empty and not plan.tiles and not plan.reads and not plan.prefetch
        assert plan.drop == {T.TileKey(0, 0, 0, None, None)} and plan.complete


def test_one_pixel_image_and_huge_zoom_out() -> None:
    levels = pyramid((1, 1), (512, 512), 1)
    plane = T.default_plane("yx")
    for spx in (1e-6, 1.0, 1e12):
        plan = plan_frame(FrameRequest(levels, plane, (-1e9, -1e9, 1e9, 1e9), spx))
        assert plan.rect == (0, 0, 1, 1) and plan.tiles == (T.TileKey(0, 0, 0, None, None),)
        assert plan.reads == ((0, (0, 0)),) and not plan.coarse
    levels = pyramid((30001, 29999), (512, 512), 8)
    plan = plan_frame(FrameRequest(levels, plane, (-1e7, -1e7, 1e7, 1e7), 1e5))
    assert plan.level == 7 and len(plan.tiles) == 1 and not plan.coarse and plan.reads == ((7, (0, 0)),)


@pytest.mark.parametrize("shape", [(1001, 999), (513, 1), (1, 777), (65, 65)])
def test_odd_sizes_tile_the_whole_image_exactly(shape) -> None:
    levels = pyramid(shape, (64, 64), 4)
    plane = T.default_plane("yx")
    for lv in range(4):
        plan = plan_frame(FrameRequest(levels, plane, (0, 0, shape[1], shape[0]), 2.0 ** lv))
        assert plan.level == lv
        g = levels[lv]
        assert len(plan.tiles) == -(-g.shape[0] // 64) * -(-g.shape[1] // 64)
        assert coverage(levels, plane, plan.tiles).all()
        right = max(T.tile_rect(g, plane, t)[0] + T.tile_rect(g, plane, t)[2] for t in plan.tiles)
        assert shape[1] <= right < shape[1] + 2 ** lv  # the last column of the level ends at the image's edge


@pytest.mark.parametrize("axis", ["z", "y", "x"])
@pytest.mark.parametrize("plane_reads", [False, True])
def test_3d_slices_read_the_bricks_holding_the_slice(axis, plane_reads) -> None:
    levels = pyramid((150, 200, 260), (64, 64, 64), 3, "zyx", plane_reads)
    plane = T.default_plane("zyx", axis, 130)
    sa = "zyx".index(axis)
    h, w = (levels[0].shape["zyx".index(a)] for a in (plane.row, plane.col))
    for spx, lv in ((1.0, 0), (2.5, 1)):
        plan = plan_frame(FrameRequest(levels, plane, (0, 0, w, h), spx))
        assert plan.level == lv
        s = min(130 // 2 ** lv, levels[lv].shape[sa] - 1)
        assert {t.slice_at_level for t in plan.tiles} == {s}
        target_reads = [k for k in plan.reads if k[0] == lv]
        assert {k[1][sa] for k in target_reads} == {s // 64}
        if axis == "z" and plane_reads:  # one plane per brick of the view
            assert all(len(k) == 3 and k[2] == s for k in target_reads)
        else:
            assert all(len(k) == 2 for k in plan.reads)
        assert coverage(levels, plane, plan.tiles).all()
    # a whole brick already cached serves a z-plane: it is not read again, as a plane or whole
    if axis == "z" and plane_reads:
        brick = (0, (2, 0, 0))
        plan = plan_frame(FrameRequest(levels, plane, (0, 0, w, h), 1.0, frozenset({brick})))
        assert brick not in plan.reads and (0, (2, 0, 0), 130) not in plan.reads
        assert T.TileKey(0, 0, 0, 130, None) in plan.ready


def test_an_overlay_without_stand_ins_reads_only_its_level_and_counts_as_covered() -> None:
    """``stand_ins=False`` (a label overlay): no coarse tiles read first, the frame counts as covered while its level
    loads, and cached coarser tiles are still drawn underneath."""
    levels = pyramid((2048, 2048), (512, 512), 3)
    plane = T.default_plane("yx")
    rect = (0, 0, 1024, 1024)
    with_ = plan_frame(FrameRequest(levels, plane, rect, 1.0))
    assert {k[0] for k in with_.reads} == {0, 2} and with_.coarse and not with_.covered
    cached = frozenset({(1, (0, 0))})
    plan = plan_frame(FrameRequest(levels, plane, rect, 1.0, cached, stand_ins=False))
    assert {k[0] for k in plan.reads} == {0} and set(plan.reads) == set(with_.reads) - {k for k in with_.reads if k[0] == 2}
    assert plan.coarse == () and plan.covered and not plan.complete
    assert [(t.level, t.row_chunk, t.col_chunk) for t in plan.fallback] == [(1, 0, 0)]


def test_plane_keys_stand_for_whole_chunks_when_the_cache_says_so() -> None:
    """``planes_see_chunks`` (the library's cache answers a plane from a cached brick): plane reads are planned with
    one lookup per chunk, by plane key; a tile whose brick is cached is ready and reads nothing."""
    levels, plane = _volume(True)
    rect = (0, 0, 260, 200)

    class Library:
        """Whole bricks cached; a plane key is in it when its brick is (as ``LibraryCache``); lookups counted."""

        def __init__(self, whole: set) -> None:
            self.whole, self.asked = whole, []

        def __contains__(self, key) -> bool:
            self.asked.append(key)
            return (key[0], key[1]) in self.whole

    tiles = T.visible_tiles(levels[0], 0, plane, rect)
    brick = (0, tile_reads(levels[0], plane, tiles[0], frozenset())[0][1])
    lib = Library({brick})
    plan = plan_frame(FrameRequest(levels, plane, rect, 1.0, lib, planes_see_chunks=True, stand_ins=False))
    assert tiles[0] in plan.ready and all(len(k) == 3 for k in plan.reads)
    assert brick + (40,) not in plan.reads and len(plan.reads) == len(tiles) - 1
    # one key per chunk, its plane (coarser levels' planes too: the fallbacks underneath)
    assert all(len(k) == 3 for k in lib.asked) and len({k for k in lib.asked if k[0] == 0}) == len(tiles)
    # the default asks for the whole brick first, then the plane
    lib = Library({brick})
    plan_frame(FrameRequest(levels, plane, rect, 1.0, lib, stand_ins=False))
    assert any(len(k) == 2 for k in lib.asked)
