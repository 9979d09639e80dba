"""Qt-free painting geometry on one plane: brush strokes (disc sweeps), polygons, flood fill and brush radii.

Coordinates are level-0 pixels of the plane: ``x`` the column, ``y`` the row, a pixel ``(r, c)`` covering
``[c, c+1) x [r, r+1)``; a pixel is inside a shape when its centre ``(c + 0.5, r + 0.5)`` is. Masks come as
:class:`PlaneMask` pieces (a bounding box and a bool array, or ``mask=None`` for a fully covered box) no larger than
``max_side`` on either axis, so a stroke or polygon across a whole slide never allocates one slide-sized mask.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Sequence

import numpy as np

Point = tuple[float, float]

#: largest side (pixels) of one mask piece
MAX_SIDE = 1024
#: smallest brush radius (pixels): half a pixel's diagonal, so a stroke has no gaps
MIN_RADIUS = math.sqrt(0.5) + 1e-6


@dataclass(frozen=True)
class PlaneMask:
    """Pixels ``[r0, r0 + rows) x [c0, c0 + cols)`` of a plane where ``mask`` is true (``mask=None``: all)."""

    r0: int
    c0: int
    rows: int
    cols: int
    mask: np.ndarray | None = None

    @property
    def count(self) -> int:
        """Number of pixels covered."""
        return self.rows * self.cols if self.mask is None else int(np.count_nonzero(self.mask))

    def dense(self) -> np.ndarray:
        """The mask as a (rows, cols) bool array."""
        return np.ones((self.rows, self.cols), bool) if self.mask is None else self.mask


def paint_into(target: np.ndarray, pieces: Sequence[PlaneMask], value: bool = True) -> np.ndarray:
    """Set ``target`` (a whole plane, (rows, cols)) to ``value`` under ``pieces``; returns it (tests, previews)."""
    for p in pieces:
        view = target[p.r0:p.r0 + p.rows, p.c0:p.c0 + p.cols]
        if p.mask is None:
            view[...] = value
        else:
            view[p.mask] = value
    return target


def radius_pixels(radius: float, physical: bool, view_pixel: tuple[float, float],
                  spacing: tuple[float, float] | None) -> tuple[float, float]:
    """(row radius, column radius) in level-0 pixels of a brush of ``radius``: physical units of the plane's
    ``spacing`` (row, column) when ``physical`` and a spacing is known, else screen pixels with ``view_pixel`` =
    (level-0 columns, level-0 rows) per screen pixel (pyqtgraph's ``viewPixelSize``)."""
    if physical and spacing is not None and spacing[0] > 0 and spacing[1] > 0:
        return radius / spacing[0], radius / spacing[1]
    return radius * abs(view_pixel[1]), radius * abs(view_pixel[0])


def _dedupe(points: Sequence[Point]) -> list[Point]:
    out: list[Point] = []
    for x, y in points:
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        if not out or out[-1] != (x, y):
            out.append((float(x), float(y)))
    return out


def _split_segments(points: list[Point], max_len: float) -> list[tuple[Point, Point]]:
    """Consecutive segments of ``points``, long ones cut into pieces of at most ``max_len``."""
    if len(points) == 1:
        return [(points[0], points[0])]
    segs = []
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        n = max(1, math.ceil(math.hypot(xb - xa, yb - ya) / max_len))
        prev = (xa, ya)
        for k in range(1, n + 1):
            cur = (xa + (xb - xa) * k / n, ya + (yb - ya) * k / n)
            segs.append((prev, cur))
            prev = cur
    return segs


def _seg_box(a: Point, b: Point, ry: float, rx: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Clipped (r0, r1, c0, c1) of the pixels a segment's disc sweep can touch."""
    r0 = max(0, math.floor(min(a[1], b[1]) - ry))
    r1 = min(shape[0], math.floor(max(a[1], b[1]) + ry) + 1)
    c0 = max(0, math.floor(min(a[0], b[0]) - rx))
    c1 = min(shape[1], math.floor(max(a[0], b[0]) + rx) + 1)
    return r0, r1, c0, c1


def _sweep(mask: np.ndarray, r0: int, c0: int, a: Point, b: Point, ry: float, rx: float) -> None:
    """Mark in ``mask`` (origin (r0, c0)) the pixels whose centre is within the elliptic disc (radii ry, rx) swept
    from ``a`` to ``b``."""
    rows, cols = mask.shape
    br0, br1, bc0, bc1 = _seg_box(a, b, ry, rx, (r0 + rows, c0 + cols))
    br0, bc0 = max(br0, r0), max(bc0, c0)
    if br1 > br0 and bc1 > bc0:
        v = (np.arange(br0, br1, dtype=np.float64) + 0.5 - a[1]) / ry
        u = (np.arange(bc0, bc1, dtype=np.float64) + 0.5 - a[0]) / rx
        dx, dy = (b[0] - a[0]) / rx, (b[1] - a[1]) / ry
        d2 = dx * dx + dy * dy
        if d2 > 0:
            t = np.clip((u[None, :] * dx + v[:, None] * dy) / d2, 0.0, 1.0)
            inside = (u[None, :] - t * dx) ** 2 + (v[:, None] - t * dy) ** 2 <= 1.0
        else:
            inside = u[None, :] ** 2 + v[:, None] ** 2 <= 1.0
        mask[br0 - r0:br1 - r0, bc0 - c0:bc1 - c0] |= inside


def stroke_masks(points: Sequence[Point], radii: tuple[float, float], shape: tuple[int, int],
                 max_side: int = MAX_SIDE) -> list[PlaneMask]:
    """The pixels of a brush stroke through ``points`` ((x, y) level-0) on a plane of ``shape`` (rows, cols):
    every consecutive pair joined by the sweep of an elliptic disc of ``radii`` (row, column), in pieces of at most
    ``max_side`` pixels a side. Radii are at least ``MIN_RADIUS``: every pixel under the path is then painted
    (a pixel's centre is within half its diagonal of any point of it)."""
    pts = _dedupe(points)
    if not pts:
        return []
    ry, rx = max(MIN_RADIUS, float(radii[0])), max(MIN_RADIUS, float(radii[1]))
    if 2 * max(ry, rx) + 2 > max_side:
        raise ValueError(f"a brush radius of {max(ry, rx):.0f} pixels is larger than the largest piece "
                         f"({max_side // 2 - 1}); zoom in or use a smaller brush")
    seg_len = max(1.0, max_side / 2 - max(ry, rx) - 1)
    segs = _split_segments(pts, seg_len)
    runs: list[list[tuple[Point, Point]]] = []
    box: list[int] | None = None
    for s in segs:
        r0, r1, c0, c1 = _seg_box(s[0], s[1], ry, rx, shape)
        if r1 <= r0 or c1 <= c0:
            continue
        if box is not None:
            nb = [min(box[0], r0), max(box[1], r1), min(box[2], c0), max(box[3], c1)]
            if nb[1] - nb[0] <= max_side and nb[3] - nb[2] <= max_side:
                box = nb
                runs[-1].append(s)
                continue
        box = [r0, r1, c0, c1]
        runs.append([s])
    out = []
    for run in runs:
        boxes = [_seg_box(a, b, ry, rx, shape) for a, b in run]
        r0, r1 = min(b[0] for b in boxes), max(b[1] for b in boxes)
        c0, c1 = min(b[2] for b in boxes), max(b[3] for b in boxes)
        m = np.zeros((r1 - r0, c1 - c0), bool)
        for a, b in run:
            _sweep(m, r0, c0, a, b, ry, rx)
        piece = crop_mask(r0, c0, m)
        if piece is not None:
            out.append(piece)
    return out


def crop_mask(r0: int, c0: int, m: np.ndarray) -> PlaneMask | None:
    """``m`` (origin (r0, c0)) cropped to its true pixels; None if it has none; ``mask=None`` if all are true."""
    rows = np.flatnonzero(m.any(axis=1))
    if not rows.size:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    sub = m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return PlaneMask(r0 + int(rows[0]), c0 + int(cols[0]), sub.shape[0], sub.shape[1],
                     None if sub.all() else np.ascontiguousarray(sub))


def rect_mask(x0: float, y0: float, x1: float, y1: float, shape: tuple[int, int]) -> PlaneMask | None:
    """Pixels of the rectangle with corners (x0, y0), (x1, y1) (pixels it touches), clipped to the plane."""
    r0, r1 = max(0, math.floor(min(y0, y1))), min(shape[0], math.ceil(max(y0, y1)))
    c0, c1 = max(0, math.floor(min(x0, x1))), min(shape[1], math.ceil(max(x0, x1)))
    if r1 <= r0 or c1 <= c0:
        return None
    return PlaneMask(r0, c0, r1 - r0, c1 - c0)


def _polygon_block(xs: np.ndarray, ys: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Even-odd inside test of the pixel centres of rows r0..r1, columns c0..c1 against the closed polygon."""
    xa, ya = xs, ys
    xb, yb = np.roll(xs, -1), np.roll(ys, -1)
    out = np.zeros((r1 - r0, c1 - c0), bool)
    centres = np.arange(c0, c1, dtype=np.float64) + 0.5
    for i, r in enumerate(range(r0, r1)):
        yc = r + 0.5
        cross = (ya <= yc) != (yb <= yc)  # half-open: a vertex on the line counts once
        if not cross.any():
            continue
        xa_, ya_, xb_, yb_ = xa[cross], ya[cross], xb[cross], yb[cross]
        xi = np.sort(xa_ + (yc - ya_) * (xb_ - xa_) / (yb_ - ya_))
        out[i] = (np.searchsorted(xi, centres, side="right") % 2) == 1
    return out


def polygon_masks(vertices: Sequence[Point], shape: tuple[int, int], max_side: int = MAX_SIDE) -> list[PlaneMask]:
    """Pixels whose centre is inside the closed polygon ``vertices`` ((x, y) level-0; even-odd rule), clipped to
    the plane, in pieces of at most ``max_side`` a side (fully covered pieces without a mask)."""
    pts = _dedupe(vertices)
    if len(pts) < 3:
        return []
    xs = np.array([p[0] for p in pts])
    ys = np.array([p[1] for p in pts])
    r0, r1 = max(0, math.floor(ys.min())), min(shape[0], math.ceil(ys.max()))
    c0, c1 = max(0, math.floor(xs.min())), min(shape[1], math.ceil(xs.max()))
    out = []
    for br in range(r0, r1, max_side):
        for bc in range(c0, c1, max_side):
            m = _polygon_block(xs, ys, br, min(r1, br + max_side), bc, min(c1, bc + max_side))
            piece = crop_mask(br, bc, m)
            if piece is not None:
                out.append(piece)
    return out


@dataclass(frozen=True)
class FloodResult:
    """A flood fill's pixels (``mask``, relative to the block read) and whether a bound stopped it: ``edge``, the
    region reached the block's edge (it may continue outside); ``budget``, more than ``max_pixels`` were found."""

    mask: np.ndarray
    edge: bool
    budget: bool

    @property
    def bounded(self) -> bool:
        """The fill may be incomplete."""
        return self.edge or self.budget


def flood_fill(block: np.ndarray, seed: tuple[int, int], max_pixels: int | None = None,
               open_edges: tuple[bool, bool, bool, bool] = (True, True, True, True)) -> FloodResult:
    """The 4-connected region of pixels equal to ``block[seed]`` containing ``seed`` (row, col) in the 2D
    ``block``, exact on its pixels (a scan-line fill over runs of equal pixels). It stops after ``max_pixels``
    pixels. ``open_edges`` (top, bottom, left, right): which block edges are not the plane's edge, where reaching
    them means the region may go on outside the block."""
    b = np.asarray(block)
    if b.ndim != 2:
        raise ValueError(f"flood fill works on a 2D plane, got shape {b.shape}")
    rows, cols = b.shape
    sr, sc = int(seed[0]), int(seed[1])
    if not (0 <= sr < rows and 0 <= sc < cols):
        raise ValueError(f"seed {seed} is outside the block of shape {b.shape}")
    eq = b == b[sr, sc]
    pad = np.zeros((rows, cols + 2), np.int8)
    pad[:, 1:-1] = eq
    d = np.diff(pad, axis=1)
    run_row, run_start = np.nonzero(d == 1)
    _, run_end = np.nonzero(d == -1)  # both in row-major order: the k-th start and end make one run
    row_ptr = np.searchsorted(run_row, np.arange(rows + 1))
    first = int(row_ptr[sr])
    seed_run = first + int(np.searchsorted(run_start[first:row_ptr[sr + 1]], sc, side="right")) - 1
    visited = np.zeros(run_row.size, bool)
    visited[seed_run] = True
    stack = [seed_run]
    count = 0
    budget = False
    starts, ends = run_start.tolist(), run_end.tolist()
    rrow = run_row.tolist()
    ptr = row_ptr.tolist()
    done: list[int] = []
    while stack:
        i = stack.pop()
        done.append(i)
        s, e, r = starts[i], ends[i], rrow[i]
        count += e - s
        if max_pixels is not None and count > max_pixels:
            budget = True
            break
        for nr in (r - 1, r + 1):
            if not 0 <= nr < rows:
                continue
            lo, hi = ptr[nr], ptr[nr + 1]
            if lo == hi:
                continue
            # runs of row nr overlapping [s, e): end > s and start < e (starts and ends increase along a row)
            j0 = bisect_right(ends, s, lo, hi)
            j1 = bisect_left(starts, e, j0, hi)
            for j in range(j0, j1):
                if not visited[j]:
                    visited[j] = True
                    stack.append(j)
    mask = np.zeros((rows, cols), bool)
    idx = np.array(done, dtype=np.int64)
    fr, fs, fe = run_row[idx], run_start[idx], run_end[idx]
    for r, s, e in zip(fr.tolist(), fs.tolist(), fe.tolist()):
        mask[r, s:e] = True
    top, bottom, left, right = open_edges
    edge = bool((top and (fr == 0).any()) or (bottom and (fr == rows - 1).any())
                or (left and (fs == 0).any()) or (right and (fe == cols).any()))
    return FloodResult(mask, edge, budget)


def window_around(centre: int, size: int, n: int) -> tuple[int, int]:
    """[start, stop) of at most ``size`` indices of an axis of length ``n`` centred on ``centre``."""
    start = max(0, min(centre - size // 2, n - size))
    return start, min(n, start + size)


def next_free_value(maximum: int | None, dtype: np.dtype) -> int:
    """The label value after ``maximum`` (the largest value present; None: none yet), checked against ``dtype``."""
    nxt = 1 if maximum is None or maximum < 1 else int(maximum) + 1
    dt = np.dtype(dtype)
    if dt == bool:
        if nxt > 1:
            raise ValueError("a bool label image holds only the value 1")
        return nxt
    if nxt > np.iinfo(dt).max:
        raise ValueError(f"every value of {dt} up to {np.iinfo(dt).max} is used; no free label value is left")
    return nxt
