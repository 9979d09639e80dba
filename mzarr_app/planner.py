"""The frame planner: what one layer needs on screen for one frame, as a pure function (no Qt).

``plan_frame(FrameRequest) -> FramePlan`` takes everything that decides a frame (the layer's pyramid geometry, the
plane, the view rectangle, the size of a screen pixel, which reads are cached or failed, what is on screen, the
previous frame and the step direction) and returns a frozen plan: the level, the visible tiles centre first, the
coarse stand-ins and cached fallbacks to draw underneath, the reads to request (missing ones only, in priority
order), the read-ahead, and which tiles on screen to keep, draw beneath or drop. The view only applies a plan (Qt
items, loader requests); every layer (the image, each label image) is planned by the same function. Modelled on
napari's slicing: a frozen request in, a response out, no view state touched.

Tiles on screen are identified by their *position* (``position(tile)``: level, row and column chunk): an item at
a position is reused across slices and channels, so stepping a slice updates items in place.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Container, Sequence

from . import tiles as T
from .tiles import Plane, ReadKey, TileKey

Rect = tuple[float, float, float, float]  # (x0, y0, x1, y1) in level-0 pixels of the plane


@dataclass(frozen=True)
class LevelGeometry:
    """What planning needs of one pyramid level: shape, chunk shape and downsampling factor per axis, and whether
    a z-plane of its chunks decodes alone (``Document.plane_reads``: frame bricks)."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    factor: tuple[float, ...]
    plane_reads: bool = False

    @classmethod
    def of(cls, level: Any, plane_reads: bool = False) -> LevelGeometry:
        """The geometry of a ``mzarr_core`` Level (or anything with ``shape``, ``chunks`` and ``factor``)."""
        return cls(tuple(int(s) for s in level.shape), tuple(int(c) for c in level.chunks),
                   tuple(level.factor), bool(plane_reads))


@dataclass(frozen=True)
class FrameRequest:
    """Everything that decides one layer's frame.

    ``cached`` and ``failed`` answer ``key in ...`` for read keys (``(level, chunk)`` whole chunks and
    ``(level, chunk, z)`` planes): a frozenset, or a snapshot that does not change while planning. ``shown`` holds
    ``(tile, plane)`` of every tile on screen (an up-to-date tile is ready even if its chunks left the cache).
    ``last_target`` / ``last_complete``: the previous plan's tiles and whether they were all on screen (reading
    ahead starts once a frame is complete and unchanged). ``step`` is the direction of the last slice step (+1 or
    -1); ``prefetch_slices`` z-slices are read ahead by plane (frame bricks) and ``prefetch_layers`` brick layers
    by whole bricks (0: none, the viewer's behaviour today). ``stand_ins``: read the coarsest level first to cover
    the view while the level loads (False for an overlay, which need not cover anything: its cached coarser
    tiles are still drawn underneath, and it counts as covered). ``planes_see_chunks``: a plane key is in ``cached``
    whenever its whole chunk is (the library's cache answers a plane from a cached brick), so plane reads are asked
    for by their plane key alone: one cache lookup per chunk instead of two.
    """

    levels: tuple[LevelGeometry, ...]
    plane: Plane
    view_rect: Rect
    screen_pixel: float
    cached: Container[Any] = frozenset()
    failed: Container[Any] = frozenset()
    shown: frozenset[tuple[TileKey, Plane]] = frozenset()
    last_target: tuple[TileKey, ...] = ()
    last_complete: bool = False
    step: int = 1
    prefetch_slices: int = 1
    prefetch_layers: int = 0
    stand_ins: bool = True
    planes_see_chunks: bool = False

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("a frame needs at least one level")
        n = len(self.plane.axes)
        if any(len(g.shape) != n or len(g.chunks) != n or len(g.factor) != n for g in self.levels):
            raise ValueError(f"level geometry does not match the axes {self.plane.axes!r}")

    @property
    def axes(self) -> str:
        """The layer's axes (``plane.axes``)."""
        return self.plane.axes


@dataclass(frozen=True)
class FramePlan:
    """What to put on screen and what to read for one frame of one layer.

    ``rect`` is the visible part of the plane (None when the view shows none of it: nothing to draw or read,
    every tile dropped). ``tiles`` are the visible tiles of ``level`` centre first; ``ready`` those that can be
    drawn now (all parts cached, or already on screen), ``unreadable`` those with a failed read (a coarser level
    stays underneath). ``coarse`` are the coarsest level's tiles (one or a few chunks, read first: they cover the
    view while the level loads); ``fallback`` the cached tiles of coarser levels to draw underneath while
    ``tiles`` are incomplete. ``keep`` / ``demote`` / ``drop`` are positions on screen to keep, to keep drawn
    beneath every current tile (content of another plane), and to remove. ``reads`` are the missing reads in
    priority order (coarse, then tiles), ``prefetch`` the read-ahead. ``reschedule``: the frame is complete and a
    further update would read ahead.
    """

    rect: Rect | None
    level: int
    tiles: tuple[TileKey, ...] = ()
    ready: frozenset[TileKey] = frozenset()
    unreadable: frozenset[TileKey] = frozenset()
    coarse: tuple[TileKey, ...] = ()
    fallback: tuple[TileKey, ...] = ()
    keep: frozenset[TileKey] = frozenset()
    demote: frozenset[TileKey] = frozenset()
    drop: frozenset[TileKey] = frozenset()
    reads: tuple[ReadKey, ...] = ()
    prefetch: tuple[ReadKey, ...] = ()
    complete: bool = True
    covered: bool = True
    reschedule: bool = False

    @property
    def empty(self) -> bool:
        """True when none of the plane is in view."""
        return self.rect is None


def position(tile: TileKey) -> TileKey:
    """Screen position of a tile (the same for every slice and channel choice): items are reused across slices."""
    return TileKey(tile.level, tile.row_chunk, tile.col_chunk, None, None)


def by_plane(level: LevelGeometry, plane: Plane) -> bool:
    """True when tiles of ``level`` in ``plane`` are read one z-plane per chunk."""
    return T.reads_by_plane(plane, level.plane_reads)


@functools.lru_cache(maxsize=1 << 16)
def _tile_chunks(level: LevelGeometry, axes: str, row: str, col: str, slice_axis: str | None,
                 tile: TileKey) -> tuple[tuple[int, ...], ...]:
    return tuple(T.tile_chunks(level, Plane(axes, row, col, slice_axis), tile))


def tile_chunks(level: LevelGeometry, plane: Plane, tile: TileKey) -> tuple[tuple[int, ...], ...]:
    """``tiles.tile_chunks`` memoised (it is asked for every tile of every frame)."""
    return _tile_chunks(level, plane.axes, plane.row, plane.col, plane.slice_axis, tile)


def tile_reads(level: LevelGeometry, plane: Plane, tile: TileKey, cached: Container[Any],
               planes_see_chunks: bool = False) -> list[ReadKey]:
    """Read keys ``tile`` needs: whole chunks, or z-planes of them (a whole chunk already cached serves too; with
    ``planes_see_chunks`` the plane key stands for both)."""
    if not by_plane(level, plane):
        return [(tile.level, c) for c in tile_chunks(level, plane, tile)]
    if planes_see_chunks:
        return [T.read_key(tile, c, True) for c in tile_chunks(level, plane, tile)]
    out: list[ReadKey] = []
    for c in tile_chunks(level, plane, tile):
        whole = (tile.level, c)
        out.append(whole if whole in cached else T.read_key(tile, c, True))
    return out


def tile_ready(level: LevelGeometry, plane: Plane, tile: TileKey, cached: Container[Any]) -> bool:
    """True when every chunk of ``tile`` is cached (for plane reads: its plane at the slice, or the whole chunk)."""
    bp = by_plane(level, plane)
    for c in tile_chunks(level, plane, tile):
        if bp and T.read_key(tile, c, True) in cached:
            continue
        if (tile.level, c) not in cached:
            return False
    return True


def _clip(plane: Plane, level0: LevelGeometry, rect: Rect) -> Rect | None:
    h = level0.shape[plane.axes.index(plane.row)]
    w = level0.shape[plane.axes.index(plane.col)]
    x0, y0, x1, y1 = rect
    out = (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
    return out if out[2] > out[0] and out[3] > out[1] else None


def _intersects(a: Rect, b: Rect) -> bool:
    """``a`` = (x, y, w, h) against ``b`` = (x0, y0, x1, y1)."""
    x, y, w, h = a
    return x + w > b[0] and x < b[2] and y + h > b[1] and y < b[3]


def _prefetch(req: FrameRequest, level: LevelGeometry, tiles: Sequence[TileKey]) -> list[ReadKey]:
    """Reads of the next slices (planes) or brick layers (whole bricks) behind ``tiles``, in the step direction."""
    plane = req.plane
    if not tiles or plane.slice_axis is None:
        return []
    sa = plane.axes.index(plane.slice_axis)
    n_slices = level.shape[sa]
    s0 = int(tiles[0].slice_at_level)  # type: ignore[arg-type]
    step = 1 if req.step >= 0 else -1
    slices: list[int] = []
    if by_plane(level, plane):
        for n in range(1, req.prefetch_slices + 1):
            s = s0 + n * step
            if not 0 <= s < n_slices:
                break
            slices.append(s)
    else:
        depth = level.chunks[sa]
        for n in range(1, req.prefetch_layers + 1):
            layer = s0 // depth + n * step
            if not 0 <= layer * depth < n_slices:
                break
            slices.append(layer * depth if step > 0 else min(n_slices, (layer + 1) * depth) - 1)
    out: list[ReadKey] = []
    for s in slices:
        for t in tiles:
            out += tile_reads(level, plane, TileKey(t.level, t.row_chunk, t.col_chunk, s, t.channels), req.cached,
                              req.planes_see_chunks)
    return out


def plan_frame(req: FrameRequest) -> FramePlan:
    """The plan of one frame (pure: the same request gives the same plan; nothing is read or drawn)."""
    plane, levels = req.plane, req.levels
    shown_pos = {position(k): (k, p) for k, p in req.shown}
    level = T.choose_level(levels, plane, req.screen_pixel)
    rect = _clip(plane, levels[0], req.view_rect)
    if rect is None:
        return FramePlan(None, level, drop=frozenset(shown_pos))
    coarsest = len(levels) - 1
    geo = levels[level]
    tiles = T.visible_tiles(geo, level, plane, rect)
    coarse = T.visible_tiles(levels[coarsest], coarsest, plane, rect) if coarsest != level and req.stand_ins else []

    cached = req.cached
    shown_here = frozenset(k for k, p in req.shown if p == plane)  # one comparison of planes per tile on screen
    reads_of: dict[TileKey, list[ReadKey]] = {}

    def tile_keys(t: TileKey) -> list[ReadKey]:
        """``tile_reads`` of ``t``, once per plan (a tile is asked about several times)."""
        try:
            return reads_of[t]
        except KeyError:
            out = reads_of[t] = tile_reads(levels[t.level], plane, t, cached, req.planes_see_chunks)
            return out

    def ready(t: TileKey) -> bool:
        # tile_ready: a whole chunk is asked for when cached, else its plane, which must then be cached
        return t in shown_here or all(k in cached for k in tile_keys(t))

    reads: list[ReadKey] = []
    seen: set[Any] = set()

    def add(keys: list[ReadKey], out: list[ReadKey]) -> None:
        for k in keys:
            if k not in seen and k not in req.cached and k not in req.failed:
                seen.add(k)
                out.append(k)

    for t in coarse:  # read even when on screen (one or a few chunks): the stand-in of the next frames too
        add(tile_keys(t), reads)
    for t in tiles:
        if t not in shown_here:  # a tile on screen needs nothing read, even if its chunks left the cache
            add(tile_keys(t), reads)
    ahead = req.last_complete and tuple(tiles) == tuple(req.last_target)
    prefetch: list[ReadKey] = []
    if ahead:
        add(_prefetch(req, geo, tiles), prefetch)

    ready_tiles = frozenset(t for t in tiles if ready(t))
    unreadable = frozenset(t for t in tiles if t not in ready_tiles and any(k in req.failed for k in tile_keys(t)))
    complete = len(ready_tiles) + len(unreadable) == len(tiles)
    covered = complete or not req.stand_ins or (bool(coarse) and all(t in shown_here for t in coarse))
    keep = {position(t) for t in tiles}
    fallback: list[TileKey] = []
    demote: set[TileKey] = set()
    if len(ready_tiles) < len(tiles):
        # the best cached coarser levels underneath; finer tiles already on screen stay until the target is done
        for lv in range(level + 1, coarsest + 1):
            for t in T.visible_tiles(levels[lv], lv, plane, rect):
                if ready(t):
                    fallback.append(t)
                    keep.add(position(t))
                elif position(t) in shown_pos:
                    keep.add(position(t))
        for pos, (key, p) in shown_pos.items():
            if pos in keep or not _intersects(T.tile_rect(levels[key.level], plane, key), rect):
                continue
            keep.add(pos)
            if p != plane and key.level != level:
                demote.add(pos)
    reschedule = complete and not ahead and bool(tiles) and plane.slice_axis is not None and (
        by_plane(geo, plane) and req.prefetch_slices > 0 or not by_plane(geo, plane) and req.prefetch_layers > 0)
    return FramePlan(rect, level, tuple(tiles), ready_tiles, unreadable, tuple(coarse), tuple(fallback),
                     frozenset(keep), frozenset(demote), frozenset(shown_pos).difference(keep), tuple(reads),
                     tuple(prefetch), complete, covered, reschedule)
