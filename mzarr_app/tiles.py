"""Pure tile scheduling: pyramid level choice, visible chunks and plane extraction (no Qt)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import numpy as np


class LevelShape(Protocol):
    """What tile geometry needs from a pyramid level (a ``mzarr_core`` Level, ``planner.LevelGeometry``, a stand-in)."""

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def chunks(self) -> tuple[int, ...]: ...
    @property
    def factor(self) -> tuple[float, ...]: ...


class LevelLike(LevelShape, Protocol):
    """A pyramid level whose data can be indexed (a ``mzarr_core`` Level or a test stand-in)."""

    def __getitem__(self, key: Any) -> np.ndarray: ...


ChunkKey = tuple[int, tuple[int, ...]]  # (level index, chunk index per axis): a whole chunk
PlaneKey = tuple[int, tuple[int, ...], int]  # (level index, chunk index, z at level): one z-plane of a chunk
ReadKey = ChunkKey | PlaneKey


@dataclass(frozen=True)
class Plane:
    """Which 2D plane of an n-D image is on screen.

    ``axes`` is the image's axes string (e.g. ``"czyx"``); ``row``/``col`` are the displayed axes,
    ``slice_axis`` the axis held fixed at ``slice_index`` (level-0 coordinates) and ``channels``
    the channel indices shown (``None`` for no channel axis).
    """

    axes: str
    row: str
    col: str
    slice_axis: str | None = None
    slice_index: int = 0
    channels: tuple[int, ...] | None = None


@dataclass(frozen=True)
class TileKey:
    """One displayed tile: a chunk-sized rectangle of one level in one plane."""

    level: int
    row_chunk: int
    col_chunk: int
    slice_at_level: int | None
    channels: tuple[int, ...] | None


def default_plane(axes: str, slice_axis: str | None = None, slice_index: int = 0,
                  channels: tuple[int, ...] | None = None, attrs: Mapping[str, Any] | None = None) -> Plane:
    """Plane for ``axes`` sliced along ``slice_axis`` (default: first of z/y/x when 3 spatial axes); its rows and
    columns the other two axes in the stored order, or for a patient image (``attrs`` with a patient geometry) in
    the order radiologists read that plane (``mzarr_core.display.radiological_axes``: a plane may be turned)."""
    from mzarr_core.display import radiological_axes

    spatial = [a for a in axes if a != "c"]
    if len(spatial) == 3 and slice_axis is None:
        slice_axis = spatial[0]
    if len(spatial) == 2:
        slice_axis = None
    shown = [a for a in spatial if a != slice_axis]
    row, col = (radiological_axes(attrs, axes, slice_axis) if attrs else None) or (shown[0], shown[1])
    return Plane(axes, row, col, slice_axis, slice_index, channels)


def is_turned(plane: Plane) -> bool:
    """The plane's rows run along the later of its two axes in the stored order (drawn turned a quarter): its
    (row, col) pixel is the stored (col, row) one."""
    return plane.axes.index(plane.row) > plane.axes.index(plane.col)


def plane_factors(level: LevelShape, plane: Plane) -> tuple[float, float]:
    """Downsampling factor of ``level`` along the displayed (row, col) axes."""
    return (float(level.factor[plane.axes.index(plane.row)]),
            float(level.factor[plane.axes.index(plane.col)]))


#: a level may be drawn enlarged by up to this factor before the next finer one is read: one finer level costs 4x
#: the pixels (8x the bricks of a volume) for a picture no sharper on screen (a level-0 pixel per 0.95 screen
#: pixels is drawn from level 1 at 1.05x, already mean-filtered, instead of level 0 sampled at 1.9:1)
LEVEL_MAGNIFICATION = 1.1


def choose_level(levels: Sequence[LevelShape], plane: Plane, screen_pixel: float) -> int:
    """Coarsest level whose pixels are at most :data:`LEVEL_MAGNIFICATION` screen pixels wide.

    ``screen_pixel`` is the size of one screen pixel in level-0 pixels (>1 when zoomed out); at 1:1 and closer
    (``screen_pixel`` <= 1) the full-resolution level is always the one drawn.
    """
    if screen_pixel <= 1:
        return 0
    best = 0
    for i, lev in enumerate(levels):
        f = max(plane_factors(lev, plane))
        if f <= screen_pixel * LEVEL_MAGNIFICATION * (1 + 1e-9):
            best = i
    return best


def slice_at_level(level: LevelShape, plane: Plane) -> int | None:
    """The slice index of ``plane`` mapped to ``level`` (``i // factor``, clipped to the level)."""
    if plane.slice_axis is None:
        return None
    ax = plane.axes.index(plane.slice_axis)
    i = int(plane.slice_index // level.factor[ax])
    return max(0, min(level.shape[ax] - 1, i))


def _chunk_range(lo: float, hi: float, factor: float, chunk: int, size: int) -> range:
    """Chunk indices along one axis intersecting level-0 interval [lo, hi)."""
    if hi <= lo:
        return range(0)
    a = max(0, int(math.floor(lo / factor)))
    b = min(size, int(math.ceil(hi / factor)))
    if b <= a:
        return range(0)
    return range(a // chunk, (b - 1) // chunk + 1)


def visible_tiles(level: LevelShape, level_index: int, plane: Plane,
                  rect: tuple[float, float, float, float]) -> list[TileKey]:
    """Tiles of ``level`` intersecting ``rect`` = (x0, y0, x1, y1) in level-0 coordinates, centre first."""
    ri, ci = plane.axes.index(plane.row), plane.axes.index(plane.col)
    x0, y0, x1, y1 = rect
    rows = _chunk_range(y0, y1, level.factor[ri], level.chunks[ri], level.shape[ri])
    cols = _chunk_range(x0, x1, level.factor[ci], level.chunks[ci], level.shape[ci])
    s = slice_at_level(level, plane)
    tiles = [TileKey(level_index, r, c, s, plane.channels) for r in rows for c in cols]
    if tiles:
        cr = (rows.start + rows.stop - 1) / 2
        cc = (cols.start + cols.stop - 1) / 2
        tiles.sort(key=lambda t: (t.row_chunk - cr) ** 2 + (t.col_chunk - cc) ** 2)
    return tiles


def tile_chunks(level: LevelShape, plane: Plane, tile: TileKey) -> list[tuple[int, ...]]:
    """Chunk indices (full n-D) that make up ``tile``."""
    per_axis: list[list[int]] = []
    for ax, name in enumerate(plane.axes):
        ch = level.chunks[ax]
        if name == plane.row:
            per_axis.append([tile.row_chunk])
        elif name == plane.col:
            per_axis.append([tile.col_chunk])
        elif name == plane.slice_axis:
            per_axis.append([int(tile.slice_at_level) // ch])
        elif name == "c":
            chans = tile.channels if tile.channels is not None else range(level.shape[ax])
            per_axis.append(sorted({c // ch for c in chans}))
        else:  # pragma: no cover - axes strings only hold c/z/y/x
            per_axis.append([0])
    out: list[tuple[int, ...]] = [()]
    for options in per_axis:
        out = [o + (v,) for o in out for v in options]
    return out


def reads_by_plane(plane: Plane, plane_decodable: bool) -> bool:
    """True when ``plane``'s tiles are read one z-plane per chunk (z-slices of a frame-decodable volume)."""
    return plane_decodable and plane.slice_axis == "z"


def read_key(tile: TileKey, chunk_index: tuple[int, ...], by_plane: bool) -> ReadKey:
    """The loader key of one chunk of ``tile``: the whole chunk, or (``by_plane``) its plane at the slice."""
    if by_plane:
        return (tile.level, chunk_index, int(tile.slice_at_level))  # type: ignore[arg-type]
    return (tile.level, chunk_index)


def chunk_region(level: LevelShape, chunk_index: Sequence[int]) -> tuple[slice, ...]:
    """Region of one chunk, clipped to the level's shape."""
    return tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(chunk_index, level.chunks, level.shape))


def tile_rect(level: LevelShape, plane: Plane, tile: TileKey) -> tuple[float, float, float, float]:
    """Tile's rectangle (x, y, width, height) in level-0 coordinates."""
    ri, ci = plane.axes.index(plane.row), plane.axes.index(plane.col)
    fr, fc = level.factor[ri], level.factor[ci]
    r0 = tile.row_chunk * level.chunks[ri]
    r1 = min(r0 + level.chunks[ri], level.shape[ri])
    c0 = tile.col_chunk * level.chunks[ci]
    c1 = min(c0 + level.chunks[ci], level.shape[ci])
    return (c0 * fc, r0 * fr, (c1 - c0) * fc, (r1 - r0) * fr)


def assemble_tile(level: LevelLike, plane: Plane, tile: TileKey,
                  chunks: dict[tuple[int, ...], np.ndarray]) -> np.ndarray:
    """Build the tile's 2D data (rows, cols) or (rows, cols, C) from its decoded chunks.

    Each value of ``chunks`` is a whole chunk or its plane at the slice (the slice axis already dropped).
    """
    cax = plane.axes.find("c")
    parts: list[np.ndarray] = []
    for idx in tile_chunks(level, plane, tile):
        arr = chunks[idx]
        reg = chunk_region(level, idx)
        key: list[Any] = []
        for ax, name in enumerate(plane.axes):
            if name == plane.slice_axis:
                key.append(int(tile.slice_at_level) - reg[ax].start)
            elif name == "c" and tile.channels is not None:
                key.append([c - reg[ax].start for c in tile.channels if reg[ax].start <= c < reg[ax].stop])
            else:
                key.append(slice(None))
        # apply integer (slice axis) first, then the channel list, to keep numpy indexing simple
        sub = arr
        kept = list(plane.axes)
        is_plane = arr.ndim == len(plane.axes) - 1
        for ax in range(len(plane.axes) - 1, -1, -1):
            if isinstance(key[ax], int):
                if not is_plane:
                    sub = np.take(sub, key[ax], axis=ax)
                kept.pop(ax)
        if cax >= 0 and tile.channels is not None:
            sub = np.take(sub, key[cax], axis=kept.index("c"))
        order = [kept.index(plane.row), kept.index(plane.col)] + ([kept.index("c")] if "c" in kept else [])
        parts.append(np.transpose(sub, order))
    data = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
    if data.ndim == 3 and data.shape[2] == 1 and cax >= 0 and tile.channels is not None and len(tile.channels) == 1:
        data = data[:, :, 0]
    return np.ascontiguousarray(data)


def level0_index(plane: Plane, row: float, col: float) -> dict[str, int]:
    """Level-0 spatial coordinates of a displayed point (scene row/col) in ``plane``."""
    out = {plane.row: int(math.floor(row)), plane.col: int(math.floor(col))}
    if plane.slice_axis is not None:
        out[plane.slice_axis] = plane.slice_index
    return out
