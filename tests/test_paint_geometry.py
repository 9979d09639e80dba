"""Unit tests of the viewer's Qt-free painting geometry (mzarr_app.paint): strokes, polygons, flood fill, radii."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from skimage.measure import label as sklabel
from skimage.measure import points_in_poly

from mzarr_app import paint as PT


def plane_of(pieces, shape) -> np.ndarray:
    return PT.paint_into(np.zeros(shape, bool), pieces)


def seg_dist2(px: np.ndarray, py: np.ndarray, a, b, ry: float, rx: float) -> np.ndarray:
    """Squared distance, in radius units, of points to segment a-b (an independent brute-force reference)."""
    ax, ay, bx, by = a[0] / rx, a[1] / ry, b[0] / rx, b[1] / ry
    qx, qy = px / rx, py / ry
    dx, dy = bx - ax, by - ay
    L = dx * dx + dy * dy
    t = np.zeros_like(qx) if L == 0 else np.clip(((qx - ax) * dx + (qy - ay) * dy) / L, 0, 1)
    return (qx - ax - t * dx) ** 2 + (qy - ay - t * dy) ** 2


coord = st.floats(min_value=-20, max_value=140, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(pts=st.lists(st.tuples(coord, coord), min_size=1, max_size=8),
       ry=st.floats(0.1, 12), rx=st.floats(0.1, 12), side=st.sampled_from([30, 64, 1024]))
def test_stroke_is_the_disc_sweep_and_covers_every_point(pts, ry, rx, side) -> None:
    shape = (120, 100)
    if 2 * max(ry, rx) + 2 > side:
        with pytest.raises(ValueError):
            PT.stroke_masks(pts, (ry, rx), shape, max_side=side)
        return
    pieces = PT.stroke_masks(pts, (ry, rx), shape, max_side=side)
    assert all(p.rows <= side and p.cols <= side for p in pieces)
    got = plane_of(pieces, shape)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    segs = list(zip(pts, pts[1:])) or [(pts[0], pts[0])]
    ery, erx = max(ry, PT.MIN_RADIUS), max(rx, PT.MIN_RADIUS)
    d2 = np.min([seg_dist2(xx, yy, a, b, ery, erx) for a, b in segs], axis=0)
    # exactly the pixels whose centre the sweep covers (up to rounding on its border)
    sure = np.abs(d2 - 1) > 1e-9
    np.testing.assert_array_equal(got[sure], (d2 <= 1)[sure])
    for x, y in pts:  # the pixel under every stroke point
        if 0 <= y < shape[0] and 0 <= x < shape[1]:
            assert got[int(math.floor(y)), int(math.floor(x))]


def test_long_stroke_is_cut_into_bounded_pieces() -> None:
    shape = (30000, 30000)
    pieces = PT.stroke_masks([(10, 10), (29990, 29990)], (8.0, 8.0), shape, max_side=1024)
    assert len(pieces) > 29 and all(p.rows <= 1024 and p.cols <= 1024 for p in pieces)
    # the diagonal's pixels are all in some piece
    for k in range(10, 29990, 997):
        assert any(p.r0 <= k < p.r0 + p.rows and p.c0 <= k < p.c0 + p.cols and p.dense()[k - p.r0, k - p.c0]
                   for p in pieces)


def test_thin_fast_stroke_has_no_gaps() -> None:
    """Two points far apart with the smallest brush: every pixel under the segment is painted (8-connected)."""
    pieces = PT.stroke_masks([(2.2, 3.7), (95.4, 61.1)], (0.1, 0.1), (80, 100))
    got = plane_of(pieces, (80, 100))
    for t in np.linspace(0, 1, 2000):
        x, y = 2.2 + t * (95.4 - 2.2), 3.7 + t * (61.1 - 3.7)
        assert got[int(y), int(x)]
    assert sklabel(got, connectivity=2).max() == 1


@settings(max_examples=60, deadline=None)
@given(verts=st.lists(st.tuples(st.floats(-10, 110), st.floats(-10, 90)), min_size=3, max_size=9),
       side=st.sampled_from([17, 1024]))
def test_polygon_matches_point_in_polygon(verts, side) -> None:
    shape = (80, 100)
    pieces = PT.polygon_masks(verts, shape, max_side=side)
    assert all(p.rows <= side and p.cols <= side for p in pieces)
    got = plane_of(pieces, shape)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    ref = points_in_poly(np.c_[xx.ravel(), yy.ravel()], np.array(verts)).reshape(shape)
    # points_in_poly and the scan line may disagree only on pixel centres within rounding of an edge
    diff = got != ref
    if diff.any():
        v = np.array(verts + [verts[0]])
        for r, c in zip(*np.nonzero(diff)):
            d = min(float(np.sqrt(seg_dist2(np.array(c + 0.5), np.array(r + 0.5), v[i], v[i + 1], 1, 1)))
                    for i in range(len(verts)))
            assert d < 1e-6, (r, c)


def test_polygon_of_a_rectangle_is_exact_and_full_pieces_have_no_mask() -> None:
    pieces = PT.polygon_masks([(10, 5), (70, 5), (70, 45), (10, 45)], (60, 80), max_side=16)
    got = plane_of(pieces, (60, 80))
    ref = np.zeros((60, 80), bool)
    ref[5:45, 10:70] = True
    np.testing.assert_array_equal(got, ref)
    assert any(p.mask is None for p in pieces)
    assert PT.rect_mask(10, 5, 70, 45, (60, 80)) == PT.PlaneMask(5, 10, 40, 60)
    assert PT.polygon_masks([(1, 1), (5, 5)], (10, 10)) == []


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), r=st.integers(0, 39), c=st.integers(0, 49))
def test_flood_fill_equals_the_connected_component(seed, r, c) -> None:
    rng = np.random.default_rng(seed)
    block = rng.integers(0, 3, (40, 50)).astype(np.uint16)
    res = PT.flood_fill(block, (r, c))
    comp = sklabel(block == block[r, c], connectivity=1, background=0)
    np.testing.assert_array_equal(res.mask, comp == comp[r, c])
    touches = res.mask[0].any() or res.mask[-1].any() or res.mask[:, 0].any() or res.mask[:, -1].any()
    assert res.edge == touches and not res.budget
    closed = PT.flood_fill(block, (r, c), open_edges=(False, False, False, False))
    assert not closed.bounded


def test_flood_fill_stops_at_its_pixel_budget() -> None:
    block = np.zeros((100, 100), np.uint8)
    res = PT.flood_fill(block, (50, 50), max_pixels=1000)
    assert res.budget and res.bounded and 1000 < res.mask.sum() <= 1100
    ring = np.zeros((30, 30), np.uint8)
    ring[5:25, 5] = ring[5:25, 24] = ring[5, 5:25] = ring[24, 5:25] = 1
    inner = PT.flood_fill(ring, (15, 15))
    assert inner.mask.sum() == 18 * 18 and not inner.bounded


def test_radius_pixels_screen_and_physical() -> None:
    assert PT.radius_pixels(5, False, (8.0, 4.0), (0.5, 0.25)) == (20.0, 40.0)
    assert PT.radius_pixels(5, True, (8.0, 4.0), (0.5, 0.25)) == (10.0, 20.0)
    assert PT.radius_pixels(5, True, (8.0, 8.0), None) == (40.0, 40.0)


def test_window_and_next_free_value() -> None:
    assert PT.window_around(5, 10, 100) == (0, 10)
    assert PT.window_around(95, 10, 100) == (90, 100)
    assert PT.window_around(50, 10, 100) == (45, 55)
    assert PT.window_around(3, 10, 6) == (0, 6)
    assert PT.next_free_value(None, np.dtype("uint16")) == 1
    assert PT.next_free_value(41, np.dtype("uint16")) == 42
    with pytest.raises(ValueError, match="no free label"):
        PT.next_free_value(255, np.dtype("uint8"))
    assert PT.next_free_value(0, np.dtype(bool)) == 1
