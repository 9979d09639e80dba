"""An opened image: the ``mzarr_core`` handle, its chunk reader, pending edits and saving (no Qt)."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import threading
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from mzarr_core import Mzarr
from mzarr_core.errors import MzarrValueError

from . import chunk_loader
from .tiles import Plane, TileKey, tile_rect


@dataclass(frozen=True, eq=False)  # identity: an undo removes this very edit
class Edit:
    """A pending edit: ``region`` (level-0, every axis of its target) set to ``value`` where ``mask``
    (broadcastable) is true. ``target``: the label image it paints (its name), or None for the image itself."""

    region: tuple[slice, ...]
    value: float
    mask: np.ndarray | None = None
    label: str = "edit"
    target: str | None = None

    def apply_to(self, block: np.ndarray) -> np.ndarray:
        """Apply this edit to ``block`` (the level-0 data of ``region``) and return it."""
        if self.mask is None:
            block[...] = self.value
        else:
            m = np.broadcast_to(self.mask, block.shape)
            block[m] = self.value
        return block


def full_region(axes: str, shape: Sequence[int], spatial: dict[str, slice]) -> tuple[slice, ...]:
    """n-D region over every axis of ``axes`` from per-spatial-axis slices (others, e.g. channels: all)."""
    return tuple(spatial.get(a, slice(0, n)) if a != "c" else slice(0, n) for a, n in zip(axes, shape))


def check_value(dtype: np.dtype, value: float) -> float | int | bool:
    """``value`` converted to ``dtype``; :class:`MzarrValueError` (a ValueError) if it does not fit."""
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        if float(value) != int(value):
            raise MzarrValueError(f"{value} is not an integer; the image is {dt}: enter a whole number")
        info = np.iinfo(dt)
        if not info.min <= int(value) <= info.max:
            raise MzarrValueError(f"{value} does not fit in {dt} ({info.min}..{info.max}): enter a value in range")
        return int(value)
    if dt.kind == "b":
        if float(value) not in (0.0, 1.0):
            raise MzarrValueError(f"{value} is not 0 or 1; the label image is a bool mask")
        return bool(value)
    return float(value)


def apply_edits(region: Sequence[slice], block: np.ndarray, edits: Sequence[Edit]) -> np.ndarray:
    """``block`` (the level-0 data of ``region``, every axis) with the parts of ``edits`` inside it applied in
    order (in place; returned)."""
    for e in edits:
        inter = []
        for a, b in zip(region, e.region):
            lo, hi = max(a.start, b.start), min(a.stop, b.stop)
            if hi <= lo:
                break
            inter.append((lo, hi, a.start, b.start))
        else:
            dst = block[tuple(slice(lo - a0, hi - a0) for lo, hi, a0, _ in inter)]
            if e.mask is None:
                dst[...] = e.value
            else:
                m = e.mask[tuple(slice(0, 1) if n == 1 else slice(lo - b0, hi - b0)
                                 for n, (lo, hi, _, b0) in zip(e.mask.shape, inter))]
                dst[np.broadcast_to(m, dst.shape)] = e.value
    return block


def overlay_edits(doc: Any, data: np.ndarray, level_index: int, plane: Plane, tile: TileKey,
                  edits: Sequence[Edit]) -> np.ndarray:
    """Tile ``data`` of level ``level_index`` of ``doc`` (a :class:`Document` or a label image's document: levels,
    axes, shape) with the pending ``edits`` drawn in (nearest sampling at coarse levels)."""
    if not edits:
        return data
    lev = doc.levels[level_index]
    x, y, w, h = tile_rect(lev, plane, tile)
    axes, shape = doc.axes, doc.shape
    ri, ci = axes.index(plane.row), axes.index(plane.col)
    fr, fc = float(lev.factor[ri]), float(lev.factor[ci])
    rows, cols = data.shape[:2]
    r0 = np.minimum((y + np.arange(rows) * fr + fr // 2).astype(np.int64), shape[ri] - 1)
    c0 = np.minimum((x + np.arange(cols) * fc + fc // 2).astype(np.int64), shape[ci] - 1)
    out = None
    top, bottom, left, right = y, y + h, x, x + w  # the tile's level-0 extent
    for e in edits:
        if plane.slice_axis is not None:
            sa = axes.index(plane.slice_axis)
            sl = e.region[sa]
            if not sl.start <= plane.slice_index < sl.stop:
                continue
        rs, cs = e.region[ri], e.region[ci]
        if rs.start >= bottom or rs.stop <= top or cs.start >= right or cs.stop <= left:
            continue  # elsewhere: no array work
        rsel = (r0 >= rs.start) & (r0 < rs.stop)
        csel = (c0 >= cs.start) & (c0 < cs.stop)
        if not rsel.any() or not csel.any():
            continue
        sel = rsel[:, None] & csel[None, :]
        if e.mask is not None:
            idx: list[np.ndarray] = []
            for ax, a in enumerate(axes):
                if e.mask.shape[ax] == 1:
                    idx.append(np.array([0]))
                elif ax == ri:
                    idx.append(np.clip(r0 - rs.start, 0, e.mask.shape[ax] - 1))
                elif ax == ci:
                    idx.append(np.clip(c0 - cs.start, 0, e.mask.shape[ax] - 1))
                elif a == plane.slice_axis:
                    idx.append(np.array([plane.slice_index - e.region[ax].start]))
                else:
                    idx.append(np.array([0]))
            mk = e.mask[np.ix_(*idx)]
            mk = mk[tuple(slice(None) if ax in (ri, ci) else 0 for ax in range(len(axes)))]
            if ri > ci:
                mk = mk.T
            sel &= np.broadcast_to(mk, (rows, cols))
        if out is None:
            out = data.copy()
        out[sel] = e.value
    return data if out is None else out


#: largest region (elements) :func:`write_regions` merges edits into (measured: docs/BENCHMARKS.md, "Painting")
MAX_WRITE_ELEMENTS = 1 << 20
#: edits this close (pixels, every axis) are merged into one write
MERGE_GAP = 64
#: merged regions written together (one pyramid update: ``write_regions``) up to this many pixels held in memory
BATCH_ELEMENTS = 1 << 25


def region_size(region: Sequence[slice]) -> int:
    """Elements of ``region``."""
    return int(np.prod([sl.stop - sl.start for sl in region]))


def write_regions(regions: Sequence[Sequence[slice]], max_elements: int = MAX_WRITE_ELEMENTS,
                  gap: int = MERGE_GAP) -> list[tuple[slice, ...]]:
    """Bounding regions covering every one of ``regions``: nearby ones (within ``gap``) merged while the merged
    region stays within ``max_elements``; a region larger than that stays alone."""
    def size(b: list[list[int]]) -> int:
        return int(np.prod([hi - lo for lo, hi in b]))

    boxes = [[[int(sl.start), int(sl.stop)] for sl in reg] for reg in regions]
    merged = True
    while merged:  # merge until no two boxes are near each other within the bound
        merged = False
        out: list[list[list[int]]] = []
        for box in boxes:
            for other in out:
                near = all(lo - gap < o_hi and o_lo < hi + gap for (lo, hi), (o_lo, o_hi) in zip(box, other))
                union = [[min(lo, o_lo), max(hi, o_hi)] for (lo, hi), (o_lo, o_hi) in zip(box, other)]
                if near and size(union) <= max_elements:
                    other[:] = union
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    return [tuple(slice(lo, hi) for lo, hi in b) for b in boxes]


def level0_max(read: Callable[[tuple[slice, ...]], np.ndarray], shape: Sequence[int], chunks: Sequence[int],
               cancelled: Callable[[], bool] = lambda: False) -> int | None:
    """The largest value of a level 0 of ``shape`` read by ``read(region)`` in slabs one chunk thick along the
    first axis (None if cancelled); exact, for the next free label value."""
    best: int | None = None
    step = max(1, int(chunks[0]))
    for s in range(0, int(shape[0]), step):
        if cancelled():
            return None
        block = read((slice(s, min(int(shape[0]), s + step)),) + tuple(slice(0, int(n)) for n in shape[1:]))
        if block.size:
            v = int(np.max(block))
            best = v if best is None else max(best, v)
    return 0 if best is None else best


def _where(value: np.ndarray) -> tuple[Any, ...] | None:
    """Where ``value`` (a read-only view into a decoded buffer) lives: (weak reference to the buffer, shape,
    strides, byte offset), to rebuild it while the buffer lives; None where it cannot be rebuilt so."""
    owner = value
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if owner.base is not None or owner.dtype != value.dtype or owner.flags.writeable:
        return None  # memory of another object, a view of another type, or a buffer that can still change
    offset = value.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    return weakref.ref(owner), value.shape, value.strides, offset


def _json_copy(obj: Any) -> Any:
    """Deep copy of a JSON-like value as plain dicts/lists."""
    return json.loads(json.dumps(obj))


def _disk_state(path: str) -> tuple[int, int, int] | None:
    """(modification time, size, inode) of the file ``path``; None for a folder or a missing file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return None if os.path.isdir(path) else (st.st_mtime_ns, st.st_size, st.st_ino)


def _is_single_file_mzarr(path: str) -> bool:
    """Whether ``path`` is a single-file .mzarr (an SQLite file; a legacy Mzarr ZIP or a folder is not)."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:  # a folder, or unreadable
        return False


#: keys :meth:`Document.cached` remembers before it starts over (a bound for a long session)
CACHED_MEMO_KEYS = 1 << 16


class Document:
    """One image opened read-only for display; edits stay in memory until :meth:`save`."""

    def __init__(self, path: str | os.PathLike[str], cache_bytes: int | None = None) -> None:
        self.path = os.fspath(path)
        #: the bound of the library's decoded-chunk cache of this image (None: the library's default until a
        #: ChunkLoader sizes it from the app's budget)
        self.cache_bytes = cache_bytes
        self.m = Mzarr(self.path, mode="r", cache_bytes=cache_bytes)
        self.edits: list[Edit] = []
        #: the loader caches using this image's decoded-chunk cache now (several views of one image share it)
        self._cache_users: set[int] = set()
        #: reads running now, by key: a second view asking for the same chunk waits for that decode
        self._reading: dict[tuple, threading.Event] = {}
        self._reading_lock = threading.Lock()
        #: what :meth:`cached` found per key: where a cached array lives (a weak reference to the decoded buffer
        #: and the view's layout), or, for a key not cached, the count of reads of its chunk then (``_reads``)
        self._memo: dict[tuple, Any] = {}
        #: reads of each (level, chunk index) completed by :meth:`read_chunk`: a plane or chunk found uncached is
        #: asked of the library again only once its chunk was read since
        self._reads: dict[tuple, int] = {}
        self._memo_epoch = 0  # grows at every forgetting of the memo
        self._load_props()
        self.note_saved()

    def _load_props(self) -> None:
        """Cache the image's properties."""
        m = self.m
        self.shape: tuple[int, ...] = tuple(int(s) for s in m.shape)
        self.dtype = np.dtype(m.dtype)
        self.axes: str = m.axes
        self.spatial_axes: str = "".join(a for a in self.axes if a != "c")
        self.channel_count: int | None = m.channel_count
        self.spacing: tuple[float, ...] | None = tuple(m.spacing) if m.spacing is not None else None
        self.unit: str = m.unit or ""
        self.is_label: bool = bool(m.is_label)
        self.levels = list(m.levels)
        self.chunks = tuple(m.chunks)
        self._forget_cached()
        #: per level: z-slices are read one plane per chunk (JPEG XL frames) instead of whole bricks
        self.plane_reads: list[bool] = [chunk_loader.plane_decodable(lev) for lev in self.levels]

    # --- reading -------------------------------------------------------------------------------------------
    def read_chunk(self, key: tuple) -> np.ndarray:
        """``(level, chunk_index)`` (whole chunk) or ``(level, chunk_index, z)`` (one z-plane of it), read-only:
        from the library's decoded-chunk cache of this image, or decoded into it. A key another thread is reading
        now is not decoded twice: this call waits for that read and takes its result from the cache."""
        while True:
            with self._reading_lock:
                running = self._reading.get(key)
                if running is None:
                    mine = self._reading[key] = threading.Event()
            if running is None:
                break
            running.wait()
            done = self.cached(key)
            if done is not None:
                return done
            # that read failed or its result was not kept (larger than the budget): read it here
        try:
            return self._read(key)
        finally:
            chunk = key[:2]
            self._reads[chunk] = self._reads.get(chunk, 0) + 1  # its planes may be cached now: ask again
            with self._reading_lock:
                del self._reading[key]
            mine.set()

    def _read(self, key: tuple) -> np.ndarray:
        """Decode ``key`` through the single readers of ``chunk_loader``."""
        if len(key) == 3:
            return chunk_loader.read_chunk_plane(self.levels[key[0]], key[1], key[2])
        level_index, chunk_index = key
        return chunk_loader.read_chunk(self.levels[level_index], chunk_index)

    def cached(self, key: tuple) -> np.ndarray | None:
        """What :meth:`read_chunk` would return for ``key`` if the library has it cached, else None (no read).

        Asked for every chunk of a frame at every update, so it answers from a memo, with one dict lookup: a key
        found cached is rebuilt from a weak reference to its decoded buffer (alive while the library, or a tile on
        screen, holds it: the pixels are the file's until the cache is emptied, which forgets the memo); a key found
        uncached stays so until its chunk is read through :meth:`read_chunk` (a chunk decoded by another kind of
        read, e.g. a region read, is then only found once asked for: its read returns from the cache at once)."""
        memo = self._memo.get(key)
        if memo is not None:
            if type(memo) is int:
                if memo == self._reads.get(key[:2], 0):
                    return None
            else:
                owner = memo[0]()
                if owner is not None:
                    return np.ndarray(memo[1], owner.dtype, owner, memo[3], memo[2])
        epoch, reads = self._memo_epoch, self._reads.get(key[:2], 0)
        value = self._library_cached(key)
        if len(self._memo) >= CACHED_MEMO_KEYS:
            self._memo = {}
        if epoch == self._memo_epoch:
            self._memo[key] = reads if value is None else _where(value)
        return value

    def _forget_cached(self) -> None:
        """Forget what :meth:`cached` remembered (the library's cache was emptied, or the file reopened)."""
        self._memo_epoch += 1
        self._memo = {}

    def _library_cached(self, key: tuple) -> np.ndarray | None:
        """:meth:`cached` asked of the library (the chunk's level checks the key and looks in the cache)."""
        try:
            if len(key) == 3:
                return self.levels[key[0]].read_chunk_plane(tuple(key[1]), int(key[2]), cached_only=True)
            return self.levels[key[0]].read_chunk(tuple(key[1]), cached_only=True)
        except Exception:  # a closed file (being reopened), a key of another image: not cached
            return None

    def shared_chunk_cache(self, max_bytes: int) -> chunk_loader.LibraryCache:
        """The library's cache of this image sized to ``max_bytes`` (the app's budget) as the cache of a new
        ChunkLoader. The first loader starts it empty (a view's reload() means "read everything again"); while a
        loader uses it, further ones (the other views of the orthogonal layout) share it: one budget, and what one
        view decoded serves the others. A loader gives it back with ``LibraryCache.release()``."""
        self.set_cache_bytes(max_bytes)
        if not self._cache_users:
            self.clear_cache()
        cache = chunk_loader.LibraryCache(self)
        self._cache_users.add(id(cache))
        return cache

    def release_chunk_cache(self, cache: chunk_loader.LibraryCache) -> None:
        """``cache`` (from :meth:`shared_chunk_cache`) is no longer used by its loader."""
        self._cache_users.discard(id(cache))

    def cache_users(self) -> int:
        """How many loaders share this image's decoded-chunk cache now."""
        return len(self._cache_users)

    def set_cache_bytes(self, n: int) -> None:
        """Bound the library's decoded-chunk cache of this image (kept across :meth:`reopen`)."""
        self.cache_bytes = int(n)
        self.m.cache_bytes = self.cache_bytes

    def cache_nbytes(self) -> int:
        """Bytes of decoded chunks the library holds for this image."""
        return self.m.cache_info().nbytes

    def cache_entries(self) -> int:
        """Chunks and planes the library holds for this image."""
        return self.m.cache_info().entries

    def clear_cache(self) -> None:
        """Drop the library's decoded chunks of this image."""
        self._forget_cached()
        self.m.clear_cache()
        self._forget_cached()  # and whatever a lookup during the clear remembered

    def spatial_index(self, axis: str) -> int:
        """Position of spatial ``axis`` in ``axes``."""
        return self.axes.index(axis)

    def close(self) -> None:
        """Close the file handle."""
        try:
            self.m.close()
        except Exception:  # closing twice or a broken handle must not take the app down
            pass

    def reopen(self) -> None:
        """Close and reopen the file (after it was written)."""
        self.close()
        self.m = Mzarr(self.path, mode="r", cache_bytes=self.cache_bytes)
        self._load_props()
        self.note_saved()

    def note_saved(self) -> None:
        """Remember the file as it is on disk now (opened, or written by this app): :meth:`changed_on_disk`
        compares with this."""
        self._disk_state = _disk_state(self.path)

    def changed_on_disk(self) -> bool:
        """Whether another program wrote the file since this app last opened or wrote it (its size, time or
        inode differ; a folder is not followed)."""
        now = _disk_state(self.path)
        return now is not None and now != self._disk_state

    def copy_to(self, path: str | os.PathLike[str]) -> None:
        """Make ``path`` a copy of this image as it is saved (pending edits are not in it) and continue on it: what
        Save As does before saving the edits there. A single-file .mzarr is copied byte for byte (fast, exact);
        any other image (OME-Zarr folder, legacy ZIP) is saved as a .mzarr by the library. The copy is made beside
        the target and renamed into place, so a failed copy leaves nothing and this image open as it was."""
        target = os.path.abspath(os.fspath(path))
        if os.path.exists(target) and os.path.exists(self.path) and os.path.samefile(target, self.path):
            raise MzarrValueError(f"{target} is the open image itself: choose another name")
        folder = os.path.dirname(target) or "."
        if _is_single_file_mzarr(self.path):
            tmp = os.path.join(folder, f".{os.path.basename(target)}.tmp-{uuid.uuid4().hex[:8]}")
            try:
                # 0666 less the umask, as any new file, whatever the source's mode (it may be read-only)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                with os.fdopen(fd, "wb") as out, open(self.path, "rb") as src:
                    shutil.copyfileobj(src, out, 16 * 2**20)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        else:
            self.m.save(target)
        self.close()
        self.path = target
        self.m = Mzarr(self.path, mode="r", cache_bytes=self.cache_bytes)
        self._load_props()
        self.note_saved()

    # --- metadata ------------------------------------------------------------------------------------------
    def attrs(self) -> dict[str, Any]:
        """A plain copy of the user attributes."""
        return _json_copy(dict(self.m.attrs()))

    def save_attrs(self, attrs: dict[str, Any]) -> None:
        """Replace the file's user attributes with ``attrs``."""
        with Mzarr(self.path, mode="r+") as w:
            w.attrs().replace(copy.deepcopy(attrs))  # one transaction: all keys are saved, or none
        self.reopen()

    # --- editing -------------------------------------------------------------------------------------------
    def full_region(self, spatial: dict[str, slice]) -> tuple[slice, ...]:
        """n-D region over every axis from per-spatial-axis slices (channels: all)."""
        return full_region(self.axes, self.shape, spatial)

    def check_value(self, value: float) -> float | int | bool:
        """``value`` converted to the image dtype; ValueError if it does not fit."""
        return check_value(self.dtype, value)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """Level-0 pixels of ``region`` (every axis), as saved (pending edits not applied)."""
        return np.asarray(self.m[region])

    def create_label_image(self, name: str, dtype: Any = "uint16") -> None:
        """Add an empty label image ``name`` of ``dtype`` (the image's spatial shape) to the file, then reopen."""
        with Mzarr(self.path, mode="r+") as w:
            w.create_labels(name, dtype=dtype)
        self.reopen()

    def save_edits(self, edits: Sequence[Edit] | None = None) -> int:
        """Write ``edits`` (default: the pending ones) of every target (the image, its label images) through
        ``mzarr_core`` in one transaction (every pyramid updated; all saved or none) and reopen; returns how many.

        Small edits of a target that lie together (the pieces of a stroke, strokes over one cell) are written as
        one region (:func:`write_regions`): each write updates the pyramid above it, so fewer writes save faster."""
        todo = list(self.edits if edits is None else edits)
        if not todo:
            return 0
        with Mzarr(self.path, mode="r+") as w, w.transaction():  # all edits are saved, or none
            for target in dict.fromkeys(e.target for e in todo):
                dst = w if target is None else w.label(target)
                mine = [e for e in todo if e.target == target]
                small = [e for e in mine if region_size(e.region) <= MAX_WRITE_ELEMENTS]
                for e in mine:  # big edits first, alone, in order (a big fill is written without reading it)
                    if region_size(e.region) <= MAX_WRITE_ELEMENTS:
                        continue
                    if e.mask is None:
                        dst[e.region] = check_value(dst.dtype, e.value)
                    else:
                        dst[e.region] = e.apply_to(np.asarray(dst[e.region]).copy())
                # then the small ones merged: each region gets every edit touching it (big ones too) in order,
                # so every pixel ends as if the edits were written one by one; written in batches sharing one
                # pyramid update (the library's write_regions), at most BATCH_ELEMENTS pixels held at once
                batch: list[tuple[tuple[slice, ...], np.ndarray]] = []
                held = 0
                for region in write_regions([e.region for e in small], MAX_WRITE_ELEMENTS):
                    batch.append((region, apply_edits(region, np.asarray(dst[region]).copy(), mine)))
                    held += region_size(region)
                    if held >= BATCH_ELEMENTS:
                        dst.write_regions(batch)
                        batch, held = [], 0
                if batch:
                    dst.write_regions(batch)
        self.reopen()
        if edits is None:
            self.edits = []
        return len(todo)

    def overlay(self, data: np.ndarray, level_index: int, plane: Plane, tile: TileKey,
                edits: Sequence[Edit]) -> np.ndarray:
        """Tile ``data`` with the pending ``edits`` drawn in (nearest sampling at coarse levels)."""
        return overlay_edits(self, data, level_index, plane, tile, edits)
