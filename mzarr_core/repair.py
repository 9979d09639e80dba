"""Pyramid consistency: check that every level is the level below downsampled by the file's rule (``mzarr verify``)
and rebuild the levels that are not (``mzarr repair``).

Both walk the pyramid the way :func:`mzarr_core.writer.build_pyramid` builds it: a "superblock" of level ``s`` (a
chunk of the coarsest level of the pass scaled up, at most :data:`BLOCK_BUDGET` bytes) is read
once, downsampled in memory level by level, and compared chunk by chunk with the stored blocks of levels
``s+1..s+k``, each of which is read once and is the source of the next level. Memory stays bounded and every chunk
is decoded about once, so a check costs little more than decoding the file.

The rule (see :func:`chunk_disagreement`):

* lossless files (and every non-JPEG XL dtype): level ``i+1`` must equal ``downsample(level i)`` bit for bit
  (NaN equals NaN; ``-0.0`` differs from ``0.0``);
* lossy files (codec ``lossless: false``): each level is coded independently, so the stored level ``i+1`` differs
  from ``downsample(stored level i)`` by coding error, which is noise-like and averages out locally. A chunk
  disagrees when the mean of ``stored - expected`` (averaged over the colour channels) over some tile of
  :data:`TILE_EDGE` pixels per spatial axis (16 x 16 in 2D, 8 x 8 x 8 in 3D) exceeds
  ``lossy_tolerance = (4 + distance) / 255`` of the dtype's range (e.g. 5 grey levels of uint8 at distance 1, 7 at
  distance 3); tiles cut by a chunk edge have fewer pixels and get a tolerance ``sqrt(full tile / pixels)`` times
  larger. Measured on scikit-image's pictures (camera, astronaut, coins, moon, brick, cell, chelsea, hubble, retina,
  immunohistochemistry, as uint8, uint16, 12-bit, int8, int16, and a 3D volume), freshly saved and after 40-100 edits
  through the API (each re-encodes whole chunks): the worst honest tile stays below 0.55 of the tolerance at every
  distance from 0.5 to 9, while a torn edit of +40 grey levels exceeds it 3 (distance 9) to 9 (distance 0.5) times.
  From distance :data:`LOSSY_UNCHECKED_DISTANCE` (10) on, libjxl codes at reduced resolution and edited levels
  drift apart by up to 40% of the range: verify only decodes such files (repair still applies the formula).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import (
    CorruptChunkError,
    MzarrError,
    MzarrFormatError,
    MzarrReadOnlyError,
    MzarrValueError,
)
from .level import Level
from .pyramid import DOWNSAMPLE_METHODS, downsample
from .replaced import KeptChunks
from .writer import Progress

#: Bytes of level ``s`` one superblock may hold (its coarser levels, the downsampled copies and the decode buffers
#: add about 3x that to the peak).
BLOCK_BUDGET = 16 * 2**20
#: Tile edge (pixels per spatial axis) over which lossy coding error is averaged, by number of spatial axes.
TILE_EDGE = {1: 256, 2: 16, 3: 8}
#: Lossy tolerance on a tile's mean difference, in 1/255ths of the dtype's range: BASE + PER_DISTANCE * distance.
LOSSY_BASE = 4.0
LOSSY_PER_DISTANCE = 1.0
#: Lossy files coded at this Butteraugli distance or more are not compared by verify: libjxl codes them at reduced
#: resolution, and every edit re-encodes whole chunks, so honestly edited levels drift apart by up to 40% of the range.
LOSSY_UNCHECKED_DISTANCE = 10.0
#: At most this many disagreeing chunks are kept (sorted, first ones) in a report; all are counted.
MAX_KEPT = 1000

Region = tuple[slice, ...]
# What decoding a damaged chunk may raise (codec errors come as ValueError, RuntimeError, imagecodecs' own...);
# MzarrErrors other than CorruptChunkError (e.g. an I/O error of the disk) and MemoryError are re-raised.
_DECODE_ERRORS = (CorruptChunkError, ValueError, RuntimeError, TypeError, KeyError)


# -- the rule ------------------------------------------------------------------------------------------------------
def pyramid_rule_problem(image: Any) -> str | None:
    """Why the pyramid of ``image`` cannot be checked against a known rule (None if it can)."""
    codec = image.codec
    if image.path is not None and codec is None:
        return (
            "it was written by another tool (no mzarr metadata), so the rule that built its pyramid is unknown"
        )
    if codec is not None and codec.get("legacy"):
        return "it is an Mzarr 0.0.x ZIP file, whose pyramid was built by a Gaussian or subsampling rule"
    if image.downsample_method not in DOWNSAMPLE_METHODS:
        return f"its downsample rule {image.downsample_method!r} is not one of {', '.join(DOWNSAMPLE_METHODS)}"
    return None


def pyramid_check_problem(image: Any) -> str | None:
    """Why ``verify`` does not compare the levels of ``image`` (None if it does)."""
    problem = pyramid_rule_problem(image)
    if problem is not None:
        return problem
    codec = image.codec or {}
    distance = float(codec.get("distance") or 1.0)
    if codec.get("lossless", True) is False and distance >= LOSSY_UNCHECKED_DISTANCE:
        return (
            f"it is lossy at distance {distance:g} (>= {LOSSY_UNCHECKED_DISTANCE:g}), where re-encoded levels drift "
            "too far apart to tell an honest edit from a torn one"
        )
    return None


def dtype_range(dtype: np.dtype) -> float:
    """Width of the value range lossy JPEG XL codes (uint8/int8: 255, uint16/int16: 65535)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui" and dtype.itemsize <= 2:
        return float(2 ** (8 * dtype.itemsize) - 1)
    return 1.0


def lossy_tolerance(image: Any) -> float | None:
    """The allowed mean difference per tile for a lossy file (in pixel values), None for a lossless one."""
    codec = image.codec or {}
    if codec.get("lossless", True) is not False:
        return None
    distance = float(codec.get("distance") or 1.0)
    return (LOSSY_BASE + LOSSY_PER_DISTANCE * distance) / 255.0 * dtype_range(image.dtype)


def level_link(prev: Level, cur: Level) -> tuple[bool, ...] | str:
    """Which axes (user order) ``cur`` halves relative to ``prev`` -- or why it is not ``prev`` downsampled."""
    halve, expected = [], []
    for axis, n0, f0, f1 in zip(prev.axes, prev.shape, prev.factor, cur.factor):
        if f1 == 2 * f0 and axis != "c":
            halve.append(True)
            expected.append((n0 + 1) // 2)
        elif f1 == f0:
            halve.append(False)
            expected.append(n0)
        else:
            return (
                f"level {cur.index} has factors {cur.factor} and level {prev.index} {prev.factor}: a level must halve "
                "each spatial axis of the level below or keep it"
            )
    if not any(halve):
        return f"level {cur.index} has the same factors {cur.factor} as level {prev.index}"
    if tuple(expected) != cur.shape:
        return (
            f"level {cur.index} has shape {cur.shape}, but level {prev.index} {prev.shape} downsampled by the factors "
            f"gives {tuple(expected)}"
        )
    return tuple(halve)


def chunk_key(level: Level, coords: tuple[int, ...]) -> str:
    """The store key of a chunk (user-order chunk index), e.g. ``1/c/0/2``."""
    storage_coords = tuple(coords[p] for p in level.perm)
    arr: Any = level.storage
    try:
        return f"{arr.path}/{arr.metadata.encode_chunk_key(storage_coords)}"
    except (AttributeError, TypeError, ValueError):  # in-memory levels, legacy arrays
        return f"{level.index}/c/" + "/".join(str(c) for c in storage_coords)


def stored_chunk_keys(level: Level) -> set[str] | None:
    """The chunk keys stored for ``level`` (None when the store cannot list them, e.g. a damaged index): a chunk
    absent from it reads as the fill value, which is right for an empty chunk and wrong for a lost one."""
    from zarr.core.sync import sync

    array: Any = level.storage
    store = getattr(getattr(array, "store_path", None), "store", None)
    if store is None:
        return None
    prefix = f"{array.path}/c/" if array.path else "c/"

    async def listing() -> set[str]:
        return {key async for key in store.list_prefix(prefix)}

    try:
        return sync(listing())
    except Exception:  # noqa: BLE001 - an unlistable store: lost chunks are not looked for
        return None


def _tile_means(diff: np.ndarray, edge: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and pixel count of each ``edge``-sided tile of ``diff`` (tiles cut by the border are smaller)."""
    pad = [(0, (-n) % edge) for n in diff.shape]
    padded = np.pad(diff, pad) if any(p[1] for p in pad) else diff
    split: list[int] = []
    for n in padded.shape:
        split += [n // edge, edge]
    sums = padded.reshape(split).sum(axis=tuple(range(1, 2 * diff.ndim, 2)), dtype=np.float64)
    counts = np.ones((1,) * diff.ndim)
    for axis, n in enumerate(diff.shape):
        per = np.full(-(-n // edge), edge, dtype=np.float64)
        per[-1] = n - edge * (len(per) - 1)
        counts = counts * per.reshape([-1 if a == axis else 1 for a in range(diff.ndim)])
    return sums / counts, counts


@dataclass
class ChunkDisagreement:
    """A chunk of level ``level`` that is not level ``level - 1`` downsampled by the file's rule."""

    level: int
    chunk: tuple[int, ...]  # chunk index, user axis order
    key: str  # store key, e.g. "1/c/0/2"
    pixels: int  # pixels that differ (lossy: by more than the tolerance)
    max_diff: float  # max |stored - expected| (NaN against a number counts as inf)
    tile_offset: float | None = None  # lossy: the worst tile's mean difference
    tolerance: float | None = None  # lossy: the tolerance it was held to

    def __str__(self) -> str:
        text = (
            f"level {self.level} chunk {self.key} disagrees with level {self.level - 1}: "
            f"{self.pixels} pixels differ (max |diff| {_number(self.max_diff)})"
        )
        if self.tolerance is not None:
            text += (
                f"; a tile is off by {_number(self.tile_offset)} on average, more than the lossy tolerance "
                f"{_number(self.tolerance)}"
            )
        return text


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


def chunk_disagreement(stored: np.ndarray, expected: np.ndarray, axes: str, tolerance: float | None) -> tuple[int, float, float | None] | None:
    """``(pixels, max |diff|, tile offset)`` if ``stored`` is not ``expected`` under the rule, else None."""
    if tolerance is None:
        if stored.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                same = ((stored == expected) & (np.signbit(stored) == np.signbit(expected))) | (
                    np.isnan(stored) & np.isnan(expected)
                )
            differ = ~same
        else:
            differ = stored != expected
        pixels = int(np.count_nonzero(differ))
        if not pixels:
            return None
        a, b = stored[differ], expected[differ]
        if a.dtype.kind == "f":
            with np.errstate(invalid="ignore", over="ignore"):
                d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            d[np.isnan(d)] = np.inf
            biggest = float(d.max())
        elif a.dtype.kind == "b":
            biggest = 1.0
        else:  # |a - b| in the unsigned type of the same size: exact, no overflow
            unsigned = np.dtype(f"u{a.dtype.itemsize}")
            biggest = float(int((np.maximum(a, b).view(unsigned) - np.minimum(a, b).view(unsigned)).max()))
        return pixels, biggest, None
    diff = stored.astype(np.float32) - expected.astype(np.float32)
    spatial_diff = diff.mean(axis=axes.index("c"), dtype=np.float32) if "c" in axes else diff
    edge = TILE_EDGE.get(spatial_diff.ndim, 8)
    means, counts = _tile_means(spatial_diff, edge)
    allowed = tolerance * np.sqrt(edge**spatial_diff.ndim / counts)
    score = np.abs(means) / allowed
    worst = np.unravel_index(int(score.argmax()), score.shape)
    if score[worst] <= 1.0:
        return None
    absdiff = np.abs(diff)
    return int(np.count_nonzero(absdiff > tolerance)), float(absdiff.max()), float(abs(means[worst]))


# -- the walk ------------------------------------------------------------------------------------------------------
def _intersect(a: Region, b: Region) -> Region:
    return tuple(slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b))


def _relative(part: Region, origin: Region) -> Region:
    return tuple(slice(p.start - o.start, p.stop - o.start) for p, o in zip(part, origin))


def _all_chunks(level: Level) -> Iterator[tuple[int, ...]]:
    return itertools.product(*(range(n) for n in level.chunk_grid))


@dataclass
class LevelRepair:
    """What repair did to one level."""

    level: int
    chunks: int  # chunks of the level
    rewritten: int = 0  # chunks written because they disagreed or could not be decoded
    damaged: int = 0  # of those, chunks that could not be decoded


class LabelPyramid:
    """What :class:`PyramidWalk` needs of a label image (``image.label(name)``): its levels, the label-safe
    ``mode`` rule, lossless storage."""

    downsample_method = "mode"
    codec = {"lossless": True}

    def __init__(self, image: Any, name: str):
        label = image.label(name)
        self.name = name
        self.levels = label.levels
        self.dtype = label.dtype
        self.path = image.path


def label_pyramids(image: Any) -> tuple[list[LabelPyramid], list[str]]:
    """The label images of ``image`` to check, and the problems that kept any from being opened."""
    names_of = getattr(image, "labels", None)
    if names_of is None or image.path is None:
        return [], []
    out, problems = [], []
    try:
        names = names_of()
    except MzarrError as exc:
        return [], [f"label images: {exc}"]
    for name in names:
        try:
            out.append(LabelPyramid(image, name))
        except MzarrError as exc:
            problems.append(f"label image {name!r}: {exc}")
    return out, problems


def offset_progress(progress: Progress | None, offset: int, total: int) -> Progress | None:
    """``progress`` for one of several walks: its counts shifted by ``offset`` within ``total``."""
    if progress is None:
        return None
    return lambda done, _own_total: progress(offset + done, total)


class PyramidWalk:
    """One pass over every level: decode every chunk, compare each level with the level below downsampled
    (``check``), and with ``fix`` write the chunks that disagree (the caller holds the write transaction)."""

    def __init__(
        self,
        image: Any,
        progress: Progress | None = None,
        *,
        check: bool = True,
        fix: bool = False,
        snapshot: Callable[[], Any] | None = None,
        kept: Any = None,
    ):
        self.image = image
        self.kept_chunks = kept  # a KeptChunks: what a fix replaces is copied there first
        self.levels: list[Level] = image.levels
        self.method = image.downsample_method
        self.check = check
        self.fix = fix
        self.tolerance = lossy_tolerance(image) if check else None
        self.snapshot = snapshot or contextlib.nullcontext
        self.progress = progress
        self.damaged: dict[tuple[int, tuple[int, ...]], str] = {}
        self.missing: dict[tuple[int, tuple[int, ...]], str] = {}  # chunks not stored under disagreeing ones
        self.kept: list[ChunkDisagreement] = []
        self.disagreement_count = 0
        self.compared = 0
        self.not_compared = 0
        self.structure: list[str] = []
        self.repairs = [LevelRepair(lv.index, math.prod(lv.chunk_grid)) for lv in self.levels]
        self.links: list[tuple[bool, ...] | str | None] = [None]
        for prev, cur in zip(self.levels, self.levels[1:]):
            link = level_link(prev, cur) if check else "not checked"
            self.links.append(link)
            if check and isinstance(link, str):
                self.structure.append(link)
        self.passes, self.decode_only = self._plan()
        # lossless pyramids: which chunks each level stores, so that a lost chunk (it reads as the fill value) is
        # named as lost instead of passing for a stale level above it
        self._present: dict[int, set[str] | None] = {}  # listed when a disagreement first needs a level's keys
        self.total = sum(self._pass_chunks(s, k) for s, k in self.passes) + sum(
            math.prod(self.levels[j].chunk_grid) for j in self.decode_only
        )
        self.done = 0

    # -- planning --------------------------------------------------------------------------------------------------
    def _rel(self, s: int, j: int) -> list[int]:
        return [fj // fs for fj, fs in zip(self.levels[j].factor, self.levels[s].factor)]

    def _block(self, s: int, k: int) -> list[int]:
        """Superblock shape at level ``s`` for a pass down to level ``s + k``: a chunk of level s+k scaled up."""
        top = self.levels[s + k]
        return [min(c * r, n) for c, r, n in zip(top.chunks, self._rel(s, s + k), self.levels[s].shape)]

    def _plan(self) -> tuple[list[tuple[int, int]], list[int]]:
        n = len(self.levels)
        itemsize = self.levels[0].dtype.itemsize
        passes: list[tuple[int, int]] = []
        visited: set[int] = set()
        s = 0
        while s < n - 1:
            if not isinstance(self.links[s + 1], tuple):
                s += 1
                continue
            k = 1
            while (
                s + k + 1 < n
                and isinstance(self.links[s + k + 1], tuple)
                and math.prod(self._block(s, k + 1)) * itemsize <= BLOCK_BUDGET
            ):
                k += 1
            passes.append((s, k))
            visited.update(range(s, s + k + 1))
            s += k
        return passes, [j for j in range(n) if j not in visited]

    def _pass_chunks(self, s: int, k: int) -> int:
        return sum(math.prod(self.levels[j].chunk_grid) for j in range(s, s + k + 1))

    # -- reading ---------------------------------------------------------------------------------------------------
    def _advance(self, level: Level, region: Region) -> None:
        self.done += len(level.chunks_in(region))
        if self.progress:
            self.progress(min(self.done, self.total), self.total)

    def _read(self, j: int, region: Region) -> tuple[np.ndarray, np.ndarray | None]:
        """Level ``j`` over ``region`` and a mask of the pixels whose chunk cannot be decoded (None: all fine)."""
        level = self.levels[j]
        try:
            return self._read_region(level, region), None
        except _DECODE_ERRORS as exc:
            if isinstance(exc, MzarrError) and not isinstance(exc, CorruptChunkError):
                raise
        shape = tuple(r.stop - r.start for r in region)
        data = np.zeros(shape, level.dtype)
        bad = np.zeros(shape, bool)
        for coords in level.chunks_in(region):
            part = _intersect(level.chunk_region(coords), region)
            local = _relative(part, region)
            try:
                data[local] = self._read_region(level, part)
            except _DECODE_ERRORS as exc:
                if isinstance(exc, MzarrError) and not isinstance(exc, CorruptChunkError):
                    raise
                message = str(exc) if isinstance(exc, CorruptChunkError) and not self.fix else (
                    f"chunk {chunk_key(level, coords)} (level {j}, chunk {coords}) cannot be decoded "
                    f"({type(exc).__name__}: {exc})"
                )
                self.damaged.setdefault((j, coords), message)
                bad[local] = True
        return data, bad

    def _read_region(self, level: Level, region: Region) -> np.ndarray:
        if not self.fix:
            return level[region]  # through the image's reader: its snapshot and its damaged-chunk messages
        # Inside the repair's write transaction: straight from the storage array, so that a chunk that cannot be
        # decoded (to be rewritten) is an exception here, not a failed read that dooms the whole transaction.
        block = np.asarray(level.storage[tuple(region[p] for p in level.perm)])
        return np.ascontiguousarray(np.transpose(block, level.inverse))

    # -- running ---------------------------------------------------------------------------------------------------
    def run(self) -> None:
        if self.progress:
            self.progress(0, self.total)
        for s, k in self.passes:
            self._run_pass(s, k)
        for j in self.decode_only:
            level = self.levels[j]
            for coords in _all_chunks(level):
                region = level.chunk_region(coords)
                with self.snapshot():
                    self._read(j, region)
                self._advance(level, region)
                if self.fix and j == 0 and self.damaged:
                    self._refuse_damaged_level0()
        if self.progress:
            self.progress(self.total, self.total)

    def _run_pass(self, s: int, k: int) -> None:
        base = self.levels[s]
        block = self._block(s, k)
        for origin in itertools.product(*(range(0, n, b) for n, b in zip(base.shape, block))):
            region = tuple(slice(o, min(o + b, n)) for o, b, n in zip(origin, block, base.shape))
            with self.snapshot():
                src, bad = self._read(s, region)
                self._advance(base, region)
                if self.fix and bad is not None:
                    self._refuse_damaged_level0()
                for j in range(s + 1, s + k + 1):
                    src, bad = self._level_block(j, region, src, bad)
                    region = tuple(slice(o, o + n) for o, n in zip(self._origin(region, j), src.shape))

    def _origin(self, prev_region: Region, j: int) -> list[int]:
        halve = self.links[j]
        assert isinstance(halve, tuple)
        return [r.start // 2 if h else r.start for r, h in zip(prev_region, halve)]

    def _level_block(
        self, j: int, prev_region: Region, src: np.ndarray, src_bad: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Compare (and fix) the block of level ``j`` below ``prev_region`` of level ``j-1``; return it as stored
        after the fix, with its undecodable-pixel mask, as the source of level ``j + 1``."""
        level = self.levels[j]
        halve = self.links[j]
        assert isinstance(halve, tuple)
        expected = downsample(src, halve, self.method)
        region = tuple(slice(o, o + n) for o, n in zip(self._origin(prev_region, j), expected.shape))
        stored, bad = self._read(j, region)
        self._advance(level, region)
        chunks = level.chunks_in(region)
        if bad is None and src_bad is None and self.tolerance is None and _bit_equal(stored, expected):
            self.compared += len(chunks)
            return stored, None
        writes: list[tuple[tuple[int, ...], Region]] = []
        for coords in chunks:
            part = _intersect(level.chunk_region(coords), region)
            local = _relative(part, region)
            if bad is not None and bad[local].any():
                if self.fix:
                    writes.append((coords, local))
                    self.repairs[j].damaged += 1
                continue
            if src_bad is not None:
                src_local = tuple(
                    slice(2 * sl.start, min(2 * sl.stop, n)) if h else sl for sl, h, n in zip(local, halve, src.shape)
                )
                if src_bad[src_local].any():
                    self.not_compared += 1
                    continue
            self.compared += 1
            found = chunk_disagreement(stored[local], expected[local], level.axes, self.tolerance)
            if found is None:
                continue
            self._note_missing_below(j, coords)
            pixels, biggest, offset = found
            self.disagreement_count += 1
            self.kept.append(
                ChunkDisagreement(j, coords, chunk_key(level, coords), pixels, biggest, offset, self.tolerance)
            )
            if len(self.kept) > 2 * MAX_KEPT:
                self.kept = sorted(self.kept, key=lambda d: (d.level, d.chunk))[:MAX_KEPT]
            if self.fix:
                writes.append((coords, local))
        if not writes:
            return stored, bad
        self._write(level, region, expected, writes)
        if self.tolerance is None:
            return expected, None
        return self._read(j, region)  # lossy: the next level is computed from what is stored now

    def _note_missing_below(self, j: int, coords: tuple[int, ...]) -> None:
        """Chunk ``coords`` of level ``j`` disagrees: note the chunks of level ``j - 1`` under it that are not
        stored (they read as the fill value). Either they were cleared by an edit whose pyramid update was lost, or
        they were lost themselves (a deleted row, a chunk file lost in a copy): the file cannot tell, the user can."""
        if self.tolerance is not None:  # lossy levels disagree by coding error too: not looked into
            return
        if j - 1 not in self._present:
            self._present[j - 1] = stored_chunk_keys(self.levels[j - 1])
        present = self._present[j - 1]
        if present is None:
            return
        prev, level = self.levels[j - 1], self.levels[j]
        halve = self.links[j]
        assert isinstance(halve, tuple)
        box = level.chunk_region(coords)
        under = tuple(slice(2 * s.start, min(2 * s.stop, n)) if h else s for s, h, n in zip(box, halve, prev.shape))
        lost = [c for c in prev.chunks_in(under) if chunk_key(prev, c) not in present]
        for c in lost:
            self.missing.setdefault((j - 1, c), (
                f"chunk {chunk_key(prev, c)} (level {j - 1}, chunk {c}) is not stored (it reads as the fill value) while "
                f"level {j} holds data there: it was cleared without the pyramid update, or lost (a deleted row, a "
                "chunk file lost in a copy)"))

    def _write(self, level: Level, region: Region, expected: np.ndarray, writes: list) -> None:
        whole = len(writes) == len(level.chunks_in(region)) and all(
            _intersect(level.chunk_region(c), region) == level.chunk_region(c) for c, _ in writes
        )
        if self.kept_chunks is not None:
            store = getattr(level.storage, "store", None)
            for coords, _ in writes:
                self.kept_chunks.keep(store, chunk_key(level, coords))
        parts = [tuple(slice(0, n) for n in expected.shape)] if whole else [local for _, local in writes]
        for local in parts:
            absolute = tuple(slice(r.start + sl.start, r.start + sl.stop) for r, sl in zip(region, local))
            level.storage[tuple(absolute[p] for p in level.perm)] = np.transpose(expected[local], level.perm)
        self.repairs[level.index].rewritten += len(writes)

    def _refuse_damaged_level0(self) -> None:
        names = [msg for (j, _), msg in sorted(self.damaged.items()) if j == 0]
        raise CorruptChunkError(
            f"{len(names)} chunk(s) of level 0 (full resolution) cannot be read (damaged or missing), so the pyramid "
            "cannot be rebuilt "
            f"from it; nothing was changed: restore the file from a backup, or save what still reads with 'mzarr "
            f"salvage {self.image.path} NEW.mzarr'. First: {names[0] if names else '?'}"
        )

    def disagreements(self) -> list[ChunkDisagreement]:
        return sorted(self.kept, key=lambda d: (d.level, d.chunk))[:MAX_KEPT]


def _bit_equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "b":
        return bool(np.array_equal(a, b))
    unsigned = np.dtype(f"u{a.dtype.itemsize}")
    return bool(np.array_equal(np.ascontiguousarray(a).view(unsigned), np.ascontiguousarray(b).view(unsigned)))


# -- repair --------------------------------------------------------------------------------------------------------
@dataclass
class RepairReport:
    """What :func:`repair_pyramid` did: chunks rewritten per level (level 0 is never written)."""

    path: str | None
    levels: list[LevelRepair] = field(default_factory=list)
    labels: dict[str, list[LevelRepair]] = field(default_factory=dict)  # label pyramids (mode rule), by name
    atomic: bool = True  # one SQLite transaction (a .mzarr file); False for a folder
    method: str = "mean"
    tolerance: float | None = None  # lossy files: chunks within this tolerance were kept
    kept: str | None = None  # the ZIP beside the file holding every chunk the repair replaced (None: none)
    missing: list[str] = field(default_factory=list)  # level-0 chunks not stored under chunks it rewrote

    @property
    def rewritten(self) -> int:
        return sum(lv.rewritten for lv in self.levels) + sum(lv.rewritten for lvs in self.labels.values() for lv in lvs)

    @property
    def damaged(self) -> int:
        return sum(lv.damaged for lv in self.levels) + sum(lv.damaged for lvs in self.labels.values() for lv in lvs)

    def lines(self) -> list[str]:
        """Human-readable summary, one line per pyramid level plus a total."""
        out = []
        for lv in self.levels[1:]:
            extra = f" ({lv.damaged} could not be decoded)" if lv.damaged else ""
            out.append(f"level {lv.level}: {lv.rewritten} of {lv.chunks} chunks rewritten{extra}")
        for name, levels in self.labels.items():
            for lv in levels[1:]:
                extra = f" ({lv.damaged} could not be decoded)" if lv.damaged else ""
                out.append(f"label image {name!r} level {lv.level}: {lv.rewritten} of {lv.chunks} chunks rewritten "
                           f"by the 'mode' rule{extra}")
        if self.rewritten:
            out.append(
                f"repaired {self.path}: {self.rewritten} chunk(s) rewritten from level 0 by the '{self.method}' rule"
                + (" in one transaction" if self.atomic else "")
            )
            if self.kept:
                out.append(f"the chunks it replaced are kept in {self.kept}: 'mzarr repair --undo {self.kept} "
                           f"{self.path}' puts them back")
            if self.missing:
                out.append(f"note: {len(self.missing)} chunk(s) of level 0 were not stored where the overviews held data "
                           f"(first: {self.missing[0]}); if they were lost, not cleared, undo the repair and recover "
                           f"them with 'mzarr salvage {self.path} NEW.mzarr'")
        else:
            out.append(f"nothing to repair: every level of {self.path} already matches level 0 by the '{self.method}' rule")
        return out


def repair_pyramid(image: Any, progress: Progress | None = None, keep_replaced: bool = True) -> RepairReport:
    """Rebuild every pyramid level of an open file from level 0, writing only the chunks whose content changes.

    With ``keep_replaced`` (the default), every chunk it rewrites is first copied into a ZIP beside the file
    (:mod:`mzarr_core.replaced`, ``RepairReport.kept``): in a file without checksums a damaged level 0 looks like a
    stale pyramid, and its coarser levels may be the only intact copy of that region.

    A .mzarr file is repaired in one SQLite transaction (a failure or a kill leaves the old state); an OME-Zarr
    folder written by Mzarr chunk by chunk (not atomic, but repair never changes level 0: run it again after an
    interruption). Lossy files keep the chunks that agree within :func:`lossy_tolerance`. Refuses (MzarrError)
    in-memory images, read-only files, legacy ZIPs, images written by other tools and files whose level 0 has
    chunks that cannot be decoded.
    """
    if image.path is None:
        raise MzarrValueError("an in-memory image computes its pyramid when needed; there is nothing to repair")
    problem = pyramid_rule_problem(image)
    if problem is not None:
        raise MzarrFormatError(
            f"cannot repair the pyramid of {image.path}: {problem}. Convert it ('mzarr convert {image.path} "
            "NEW.mzarr'), which writes a new pyramid"
        )
    if not image.writable:
        raise MzarrReadOnlyError(f"{image.path} is open read-only; open it with Mzarr(path, 'r+') to repair it")
    levels = image.levels
    store = getattr(levels[0].storage, "store", None)
    kept = KeptChunks(image.path) if keep_replaced else None
    walk = PyramidWalk(image, progress, check=True, fix=True, kept=kept)
    if walk.structure:
        raise MzarrFormatError(
            f"cannot repair the pyramid of {image.path} in place: {walk.structure[0]}. Convert it "
            f"('mzarr convert {image.path} NEW.mzarr'), which writes a new pyramid"
        )
    labels, problems = label_pyramids(image)
    if problems:
        raise MzarrFormatError(f"cannot repair {image.path}: {problems[0]}")
    label_walks = [PyramidWalk(lab, check=True, fix=True, kept=kept) for lab in labels if len(lab.levels) > 1]
    for lab_walk in label_walks:
        if lab_walk.structure:
            raise MzarrFormatError(f"cannot repair the label pyramid of {image.path} in place: {lab_walk.structure[0]}")
    total = walk.total + sum(w.total for w in label_walks)
    walk.progress = offset_progress(progress, 0, total)
    offset = walk.total
    for lab_walk in label_walks:
        lab_walk.progress = offset_progress(progress, offset, total)
        offset += lab_walk.total
    kept_path = None
    try:
        with image.transaction():  # the image's and every label image's pyramid in one transaction
            walk.run()
            for lab_walk in label_walks:
                lab_walk.run()
            if kept is not None:
                kept_path = kept.finish()  # on disk before the repair commits
    except BaseException:
        if kept is not None:
            kept.discard()
        raise
    return RepairReport(
        kept=None if kept_path is None else str(kept_path),
        missing=[msg for (j, _), msg in sorted(walk.missing.items()) if j == 0],
        path=str(image.path),
        levels=walk.repairs,
        labels={w.image.name: w.repairs for w in label_walks},
        atomic=hasattr(store, "transaction"),  # the single-file store's capability
        method=image.downsample_method,
        tolerance=walk.tolerance,
    )
