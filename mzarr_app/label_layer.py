"""Label images of the open file drawn over the image: a document per label image and its layer.

A :class:`LabelDocument` wraps one ``mzarr_core`` ``LabelImage`` of the open :class:`~mzarr_app.document.Document`
(its levels, read through the library's chunk reader and decoded-chunk cache of the file) with the interface a
:class:`~mzarr_app.layers.Layer` needs. A :class:`LabelLayer` is planned like the image (same planner, same
factors: the same level as the image underneath) and renders its tiles as RGBA: NGFF ``colors`` when given, else a
stable pseudo-random colour per label value (a hash of the value, so the same value has the same colour in every
session and any 64-bit value works without a table), 0 transparent; filled or as contours (pixels whose
4-neighbours within the tile differ); the overlay opacity is folded into the colours (Qt blends the tiles, drawn
at opacity 1). The loader threads colour each chunk as it is read (:class:`RenderedTiles`), so the GUI thread
only hands the pixels to Qt.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from . import chunk_loader
from .contrast import DisplaySettings
from .document import Document, Edit, check_value, full_region, overlay_edits
from .layers import Layer, _Tile
from . import planner as P
from . import tiles as T

#: label tiles coloured in the loader threads wait here (bytes) until the GUI thread shows them
RENDERED_MB = 64
#: pixel buffers of label tiles no longer drawn, kept for the next tiles coloured (bytes, per label layer)
POOL_MB = 32

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser of ``values`` (any integer dtype, viewed as uint64): well-spread 64-bit hashes."""
    x = values.astype(np.int64, copy=False).view(np.uint64) if values.dtype.kind == "i" else values.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def hashed_colors(values: np.ndarray) -> np.ndarray:
    """(n, 4) uint8 RGBA: a stable bright colour per label value (HSV from a hash of the value), 0 transparent."""
    v = np.asarray(values).ravel()
    if v.dtype == bool:
        v = v.astype(np.uint8)
    h = _mix(v)
    hue = (h & np.uint64(0xFFFF)).astype(np.float64) / 65536.0
    sat = 0.6 + 0.4 * ((h >> np.uint64(16)) & np.uint64(0xFF)).astype(np.float64) / 255.0
    val = 0.75 + 0.25 * ((h >> np.uint64(24)) & np.uint64(0xFF)).astype(np.float64) / 255.0
    i = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    r = np.choose(i, [val, q, p, p, t, val])
    g = np.choose(i, [t, val, val, q, p, p])
    b = np.choose(i, [p, p, t, val, val, q])
    out = np.round(np.stack([r, g, b, np.ones_like(r)], axis=1) * 255).astype(np.uint8)
    out[v == 0] = 0
    return out


def color_table(values: np.ndarray, colors: dict[int, tuple[int, ...]] | None) -> np.ndarray:
    """(n, 4) uint8 RGBA of label ``values``: ``colors[value]`` (NGFF) when given, else :func:`hashed_colors`."""
    v = np.asarray(values).ravel()
    out = hashed_colors(v)
    if colors:
        if v.size > 1 and v.dtype != bool and bool(np.all(v[1:] > v[:-1])):  # sorted (a table, np.unique)
            for value, c in colors.items():
                j = int(np.searchsorted(v, value))
                if j < v.size and int(v[j]) == int(value):
                    out[j] = (tuple(c) + (255,))[:4]
        else:
            for j, x in enumerate(v.tolist()):
                given = colors.get(int(x))
                if given is not None:
                    out[j] = (tuple(given) + (255,))[:4]
    return out


def contour_mask(labels: np.ndarray) -> np.ndarray:
    """True where a pixel's label differs from one of its 4-neighbours inside ``labels`` (edges replicated)."""
    d = np.asarray(labels)
    m = np.zeros(d.shape, bool)
    if d.shape[0] > 1:
        dr = d[1:] != d[:-1]
        m[1:] |= dr
        m[:-1] |= dr
    if d.shape[1] > 1:
        dc = d[:, 1:] != d[:, :-1]
        m[:, 1:] |= dc
        m[:, :-1] |= dc
    return m


def small_table(dtype: np.dtype, colors: dict[int, tuple[int, ...]] | None,
                hidden: frozenset[int] = frozenset()) -> np.ndarray | None:
    """(2^bits, 4) RGBA table indexed by ``value - min`` for 8- and 16-bit (and bool) label dtypes, else None."""
    dt = np.dtype(dtype)
    if dt == bool:
        dt = np.dtype(np.uint8)
    if dt.kind not in "ui" or dt.itemsize > 2:
        return None
    info = np.iinfo(dt)
    table = color_table(np.arange(info.min, int(info.max) + 1, dtype=np.int64), colors)
    for v in hidden:
        if info.min <= v <= info.max:
            table[v - info.min] = 0
    return table


def premultiplied(table: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """An (n, 4) RGBA colour table in the byte order of ``QImage.Format_ARGB32_Premultiplied`` (native-endian
    0xAARRGGBB: B, G, R, A on little-endian machines), each colour's alpha scaled by ``opacity`` and the colour by
    that alpha: what Qt draws without converting the image first (the items are drawn at opacity 1)."""
    t = np.asarray(table, np.uint16)
    alpha = t[:, 3:4] if opacity >= 1 else np.round(t[:, 3:4] * max(0.0, float(opacity))).astype(np.uint16)
    rgb = (t[:, :3] * alpha + 127) // 255
    argb = np.concatenate([alpha, rgb], axis=1)  # A, R, G, B: the 32-bit value's bytes from the most significant
    return np.ascontiguousarray(argb[:, ::-1] if sys.byteorder == "little" else argb, dtype=np.uint8)


#: pixels per block of :func:`_gather`: its 8-byte indices (64 KB) stay in the cache and below glibc's mmap threshold
_GATHER_BLOCK = 8192


def _gather(table: np.ndarray, d: np.ndarray, index: Any, out: np.ndarray | None = None) -> np.ndarray:
    """``table[index(d)]`` per pixel of ``d`` (rows, cols) as uint32 (into ``out`` when given), a block of rows at a
    time: the index array of a whole tile would be a fresh 8 bytes per pixel, a mapping faulted in page by page,
    which made the lookup up to 3x slower than the gather itself."""
    if out is None:
        out = np.empty(d.shape, np.uint32)
    step = max(1, _GATHER_BLOCK // max(1, d.shape[1]))
    for r in range(0, d.shape[0], step):
        np.take(table, index(d[r:r + step]), out=out[r:r + step], mode="clip")
    return out


def label_rgba(data: np.ndarray, colors: dict[int, tuple[int, ...]] | None = None,
               contour: bool = False, table: np.ndarray | None = None,
               hidden: frozenset[int] = frozenset(), as_premultiplied: bool = False,
               opacity: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """(rows, cols, 4) uint8 RGBA of a label tile: each value's colour (0 transparent; values in ``hidden`` too);
    ``contour``: only pixels on a boundary (:func:`contour_mask`) keep their colour. ``table``: the
    :func:`small_table` of the tile's dtype (a lookup instead of finding the tile's values).
    ``as_premultiplied``: the pixels in :func:`premultiplied` layout (a given ``table`` must be in it already).
    ``opacity`` scales each colour's alpha (a given ``table`` has it already). ``out``: a C-contiguous (rows, cols,
    4) uint8 array to write the pixels into (a reused buffer: :class:`PixelPool`), returned."""
    d = data if data.ndim == 2 else data[:, :, 0]
    index: Any
    if table is not None:
        if d.dtype == bool:
            d = d.view(np.uint8)
        lo = int(np.iinfo(d.dtype).min)
        index = (lambda b: b.astype(np.intp) - lo) if lo else (lambda b: b.astype(np.intp))
    else:
        lo, hi = (int(d.min()), int(d.max())) if d.size else (0, 0)
        uniq: np.ndarray
        if hi - lo < max(4096, d.size // 4):  # values in a narrow range: a table of that range
            if d.dtype.kind == "u":  # uint64 values above 2^63 too
                uniq = np.arange(lo, hi + 1, dtype=np.uint64)
                index = lambda b: (b - d.dtype.type(lo)).astype(np.intp)  # noqa: E731
            else:
                uniq = np.arange(lo, hi + 1, dtype=np.int64)
                index = lambda b: b.astype(np.intp) - lo  # noqa: E731
        else:  # scattered values (e.g. hashes as labels): colour the values present
            uniq, inv = np.unique(d, return_inverse=True)
            inv = inv.reshape(d.shape)
            index = None
        table = color_table(uniq, colors)
        if hidden:
            info = np.iinfo(uniq.dtype)
            fit = [v for v in hidden if info.min <= v <= info.max]
            table[np.isin(uniq, np.array(fit, dtype=uniq.dtype))] = 0
        if as_premultiplied:
            table = premultiplied(table, opacity)
        elif opacity < 1:
            table[:, 3] = np.round(table[:, 3] * max(0.0, float(opacity))).astype(np.uint8)
        if index is None:
            index, d = (lambda b: b), inv
    # one 4-byte gather per pixel (4x faster than gathering rows of 4 bytes)
    if out is not None and (out.shape != d.shape + (4,) or out.dtype != np.uint8 or not out.flags.c_contiguous):
        raise ValueError(f"out must be a C-contiguous {d.shape + (4,)} uint8 array, not {out.shape} {out.dtype}")
    px = _gather(np.ascontiguousarray(table).view(np.uint32).ravel(), d, index,
                 None if out is None else out.view(np.uint32).reshape(d.shape))
    if contour:
        px[~contour_mask(data if data.ndim == 2 else data[:, :, 0])] = 0
    return px.view(np.uint8).reshape(d.shape + (4,)) if out is None else out


class LabelDocument:
    """One label image of an open :class:`Document`, with the interface a :class:`Layer` reads through.

    Reads go through ``Level.read_chunk`` / ``read_chunk_plane`` of the label image's levels (the file's
    decoded-chunk cache); the cache budget is the image's (one cache per file). :meth:`refresh` opens the label
    image again after the image's document was reopened (a save)."""

    is_label = True
    channel_count = None

    def __init__(self, image: Document, name: str) -> None:
        self.image = image
        self.name = name
        self.path = image.path
        self._m: Any = None
        # what the image's Document keeps for its reads and cache lookups (its methods are this class's too)
        self._reading: dict[tuple, threading.Event] = {}
        self._reading_lock = threading.Lock()
        self._memo: dict[tuple, Any] = {}
        self._reads: dict[tuple, int] = {}
        self._memo_epoch = 0
        self.refresh()

    def refresh(self) -> None:
        """Open the label image again if the image's file handle changed."""
        if self._m is self.image.m:
            return
        lab = self.image.m.label(self.name)
        self._m = self.image.m
        self.label = lab
        self.levels = list(lab.levels)
        self._forget_cached()
        self.shape: tuple[int, ...] = tuple(int(s) for s in lab.shape)
        self.dtype = np.dtype(lab.dtype)
        self.axes: str = lab.axes
        self.spatial_axes = self.axes
        self.chunks = tuple(lab.chunks)
        self.spacing = self.image.spacing
        self.unit = self.image.unit
        self.plane_reads: list[bool] = [chunk_loader.plane_decodable(lev) for lev in self.levels]
        self.colors: dict[int, tuple[int, ...]] = {int(k): tuple(v) for k, v in dict(lab.colors).items()}
        self.properties: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in dict(lab.properties).items()}

    # --- reading (as Document) ---------------------------------------------------------------------------------
    # the image's reads and cache lookups, the same code: one decode per key at a time; cache lookups from a memo
    # (one dict lookup instead of ~15 us through the level, asked for every label tile of a frame at every update)
    read_chunk: Any = Document.read_chunk
    _read: Any = Document._read
    cached: Any = Document.cached
    _forget_cached: Any = Document._forget_cached
    _library_cached: Any = Document._library_cached

    def shared_chunk_cache(self, max_bytes: int) -> chunk_loader.LibraryCache:
        """A view of the file's decoded-chunk cache (sized and emptied by the image's loader, which starts first)."""
        return chunk_loader.LibraryCache(self)

    @property
    def cache_bytes(self) -> int:
        return int(self.image.cache_bytes or self.image.m.cache_info().max_bytes)

    def set_cache_bytes(self, n: int) -> None:
        self.image.set_cache_bytes(n)

    def cache_nbytes(self) -> int:
        return self.image.cache_nbytes()

    def cache_entries(self) -> int:
        return self.image.cache_entries()

    def clear_cache(self) -> None:
        """Drop the file's decoded chunks (the image's and the label images') and what :meth:`cached` remembered."""
        self._forget_cached()
        self.image.clear_cache()
        self._forget_cached()  # and whatever a lookup during the clear remembered

    # --- painting (as Document) ---------------------------------------------------------------------------------
    def full_region(self, spatial: dict[str, slice]) -> tuple[slice, ...]:
        """Region over every axis of the label image from per-axis slices."""
        return full_region(self.axes, self.shape, spatial)

    def check_value(self, value: float) -> float | int | bool:
        """``value`` as a label value of this image's dtype (ValueError if it does not fit)."""
        return check_value(self.dtype, value)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """Level-0 label values of ``region``, as saved (pending edits not applied)."""
        return np.asarray(self.label[region])

    def overlay(self, data: np.ndarray, level_index: int, plane: Any, tile: Any, edits: Sequence[Edit]) -> np.ndarray:
        """Tile ``data`` with pending label ``edits`` drawn in (nearest sampling at coarse levels)."""
        return overlay_edits(self, data, level_index, plane, tile, edits)

    def name_of(self, value: Any) -> str | None:
        """The ``name`` (or first string property) of label ``value`` from ``properties``, if any."""
        try:
            props = self.properties.get(int(value))
        except (TypeError, ValueError):
            return None
        if not props:
            return None
        for k in ("name", "label", "class"):
            if isinstance(props.get(k), str):
                return str(props[k])
        for v in props.values():
            if isinstance(v, str):
                return v
        return None


@dataclass(frozen=True)
class Fill:
    """A label tile of one value, drawn as one colour: nothing to look up per pixel, no pixels to keep, and Qt
    fills its rectangle instead of blending an image."""

    #: the colour, straight (not premultiplied) RGBA with the opacity in its alpha (what ``QColor`` takes)
    rgba: tuple[int, int, int, int]
    #: the same colour as the 4 bytes of a :func:`premultiplied` pixel (what the tile's pixels would all be)
    pixel: np.ndarray


class PixelPool:
    """Pixel buffers of label tiles no longer drawn, reused for the next tiles coloured (thread-safe, bounded in
    bytes). Colouring into a fresh 1 MB buffer page-faults on every page of it: the lookup then costs ~2.5x as
    much as into a buffer used before (docs/VIEWER.md, "Label images"). A buffer is taken back only when nothing
    else refers to it: the item let go of it and no caller kept it or a view of it."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._free: dict[tuple[int, int], list[np.ndarray]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.reused = 0  # buffers handed out again (tests, benchmarks)

    @property
    def nbytes(self) -> int:
        """Bytes of the buffers waiting to be reused."""
        return self._bytes

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """A C-contiguous (rows, cols, 4) uint8 buffer (contents undefined): a free one, else a new one."""
        key = (int(shape[0]), int(shape[1]))
        with self._lock:
            free = self._free.get(key)
            if free:
                buf = free.pop()
                self._bytes -= buf.nbytes
                self.reused += 1
                return buf
        return np.empty(key + (4,), np.uint8)

    def give(self, pixels: np.ndarray) -> None:
        """Take back the buffer under ``pixels`` (an item's image: a view of a buffer of :meth:`take`) if nothing
        but the caller's one reference holds ``pixels`` and nothing but ``pixels`` holds the buffer."""
        buf = pixels.base
        if type(buf) is not np.ndarray or buf.ndim != 3 or buf.shape[2] != 4 or buf.dtype != np.uint8 \
                or not (buf.flags.owndata and buf.flags.writeable and buf.flags.c_contiguous):
            return  # not a pool buffer (a fill or background tile's broadcast colour, a caller's array)
        # references: the caller's variable, this parameter and getrefcount's argument; the buffer: ``pixels.base``,
        # ``buf`` here and getrefcount's argument. Any more: someone still looks at the pixels.
        if sys.getrefcount(pixels) > 3 or sys.getrefcount(buf) > 3:
            return
        key = (buf.shape[0], buf.shape[1])
        with self._lock:
            if self._bytes + buf.nbytes > self.max_bytes:
                return
            self._free.setdefault(key, []).append(buf)
            self._bytes += buf.nbytes

    def clear(self) -> None:
        with self._lock:
            self._free.clear()
            self._bytes = 0


_CLEAR = np.zeros(4, np.uint8)


def _broadcast(pixel: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only (rows, cols, 4) view of one pixel's 4 bytes (the image of a fill or background tile: its size
    for the item, and the right colour wherever it is looked at, without memory of its own)."""
    return np.broadcast_to(pixel, (int(shape[0]), int(shape[1]), 4))


@dataclass(frozen=True, eq=False)
class LabelStyle:
    """What a label tile's pixels depend on besides its values (one immutable snapshot: the loader threads colour
    with the style of the moment, the GUI thread takes a tile coloured with the current one only)."""

    colors: dict[int, tuple[int, ...]]
    contour: bool
    hidden: frozenset[int]
    #: the overlay opacity, folded into the colours (Qt draws the items at opacity 1, its cheaper blend)
    opacity: float
    #: the :func:`small_table` in :func:`premultiplied` layout (None: wide dtypes, coloured per tile)
    table: np.ndarray | None
    #: the same :func:`small_table` with straight colours, before the opacity (the colour of a :class:`Fill`)
    straight: np.ndarray | None = None

    def render(self, data: np.ndarray, pool: PixelPool | None = None) -> np.ndarray | Fill | None:
        """Premultiplied ARGB pixels of label values ``data`` (rows, cols) (in a buffer of ``pool`` when given); a
        :class:`Fill` for a tile of one value; None when nothing of the tile is drawn (background only, a hidden
        value, the contours of one value)."""
        if data.size == 0:
            return None
        lo, hi = data.min(), data.max()
        if lo == hi:
            return self.fill(lo)
        return label_rgba(data, self.colors, self.contour, self.table, self.hidden, as_premultiplied=True,
                          opacity=self.opacity, out=None if pool is None else pool.take(data.shape))

    def fill(self, value: Any) -> Fill | None:
        """The :class:`Fill` of a tile whose every pixel is ``value`` (None: transparent, or contours: a tile of one
        value has none)."""
        if self.contour:
            return None
        v = np.asarray(value)
        if self.table is not None and self.straight is not None:  # 8/16-bit: the tables' entries of the value
            i = int(v) - (0 if v.dtype == bool else int(np.iinfo(v.dtype).min))
            pixel = self.table[i].copy()
            rgba = self.straight[i:i + 1]
        else:
            rgba = color_table(v.reshape(1), self.colors)  # the colour every lookup gives that value
            if int(v) in self.hidden:
                rgba[:] = 0
            pixel = premultiplied(rgba, self.opacity)[0]
        if pixel[3] == 0:  # what the pixels would be: transparent
            return None
        a = int(rgba[0, 3]) if self.opacity >= 1 else int(np.round(rgba[0, 3] * max(0.0, float(self.opacity))))
        return Fill((int(rgba[0, 0]), int(rgba[0, 1]), int(rgba[0, 2]), a), pixel)


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` and ``b`` hold the same values: the same memory (a view of one cached chunk) or equal contents."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.strides == b.strides:
        return True
    return bool(np.array_equal(a, b))


class RenderedTiles:
    """Label chunks coloured in the loader threads, by read key: ``(style, values, pixels)``, bounded in bytes.

    The values are kept with the pixels: the GUI thread takes them only for a tile of those very values (a chunk
    read again, or drawn with pending edits, is coloured on the GUI thread as before)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, tuple[LabelStyle, np.ndarray, np.ndarray | Fill | None]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0  # tiles taken rendered (tests, benchmarks)

    @staticmethod
    def _size(entry: tuple[LabelStyle, np.ndarray, np.ndarray | Fill | None]) -> int:
        return int(entry[2].nbytes) if isinstance(entry[2], np.ndarray) else 0

    def __len__(self) -> int:
        return len(self._data)

    def put(self, key: Hashable, style: LabelStyle, values: np.ndarray, pixels: np.ndarray | Fill | None) -> None:
        """Keep ``pixels`` (a :class:`Fill`: one colour; None: nothing drawn) of chunk ``key`` coloured with
        ``style`` from ``values``."""
        entry = (style, values, pixels)
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= self._size(old)
            self._data[key] = entry
            self._bytes += self._size(entry)
            while (self._bytes > self.max_bytes or len(self._data) > 4096) and len(self._data) > 1:
                self._bytes -= self._size(self._data.popitem(last=False)[1])

    def take(self, keys: Sequence[Hashable], style: LabelStyle,
             values: np.ndarray) -> tuple[bool, np.ndarray | Fill | None]:
        """(found, pixels) of the first of ``keys`` coloured with ``style`` from ``values`` (removed: the tile's
        item holds the pixels from now on)."""
        with self._lock:
            for key in keys:
                entry = self._data.get(key)
                if entry is None or entry[0] is not style or not _same_values(entry[1], values):
                    continue
                del self._data[key]
                self._bytes -= self._size(entry)
                self.hits += 1
                return True, entry[2]
        return False, None

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


class LabelLayer(Layer):
    """A label image drawn over the image: coloured by value, filled or contour, with an overlay opacity."""

    def __init__(self, doc: LabelDocument, vb: pg.ViewBox, z_base: float, opacity: float = 0.5,
                 contour: bool = False, visible: bool = True) -> None:
        super().__init__(doc, vb, doc.name, z_base)  # type: ignore[arg-type]
        self.display = DisplaySettings(mode="labels", colormap="labels")  # no automatic contrast to compute
        self.opacity = float(opacity)
        self.contour = bool(contour)
        self.visible = bool(visible)
        #: label values not drawn
        self.hidden_values: frozenset[int] = frozenset()
        self._table: np.ndarray | None = None
        self._table_of: Any = None
        self._rgba_table: np.ndarray | None = None
        self._table_opacity = self.opacity
        self._style: LabelStyle | None = None
        #: tiles coloured by the loader threads (:meth:`_prepare`), taken by :meth:`render_into`
        self.rendered = RenderedTiles(RENDERED_MB * 1024 * 1024)
        #: pixel buffers of tiles no longer drawn, coloured into again
        self.pool = PixelPool(POOL_MB * 1024 * 1024)
        #: an overlay covers nothing: no coarse stand-ins read first (cached coarser tiles are drawn meanwhile)
        self.stand_ins = False

    def table(self) -> np.ndarray | None:
        """The colour lookup of an 8/16-bit label image in :func:`premultiplied` layout with the overlay opacity
        (rebuilt when its colours, hidden values or the opacity change)."""
        doc: LabelDocument = self.doc  # type: ignore[assignment]
        of = (doc.dtype, tuple(sorted(doc.colors.items())), self.hidden_values)
        if self._table_of != of:
            self._table_of, self._rgba_table, self._table = of, small_table(doc.dtype, doc.colors, self.hidden_values), None
        if self._rgba_table is not None and (self._table is None or self._table_opacity != self.opacity):
            self._table, self._table_opacity = premultiplied(self._rgba_table, self.opacity), self.opacity
        return self._table

    def style(self) -> LabelStyle:
        """The current :class:`LabelStyle` (a new one when colours, contour or hidden values changed; built on
        the GUI thread, read as one reference by the loader threads)."""
        doc: LabelDocument = self.doc  # type: ignore[assignment]
        table = self.table()
        st = self._style
        if st is None or st.table is not table or st.contour != self.contour or st.hidden != self.hidden_values \
                or st.colors is not doc.colors or st.opacity != self.opacity:
            st = self._style = LabelStyle(doc.colors, self.contour, self.hidden_values, self.opacity, table,
                                          self._rgba_table)
            self.rendered.clear()
        return st

    def start_loading(self, cache_mb: float, threads: int | None, parent: Any, loaded: Any, failed: Any) -> None:
        """As :meth:`Layer.start_loading`; the loader threads also colour each 2D chunk they read (:meth:`_prepare`),
        so the GUI thread only hands the pixels to Qt."""
        super().start_loading(cache_mb, threads, parent, loaded, failed)
        self.style()
        assert self.loader is not None
        self.loader.prepare = self._prepare

    def teardown(self) -> None:
        super().teardown()
        self.rendered.clear()
        self.pool.clear()

    def _prepare(self, key: Hashable, values: np.ndarray) -> None:
        """Colour chunk ``key`` (a 2D chunk or a z-plane of a brick: one tile) in a loader thread."""
        style = self._style
        if style is None or values.ndim != 2:
            return
        self.rendered.put(key, style, values, style.render(values, self.pool))

    def _read_keys(self, t: _Tile) -> list[Any]:
        """The read keys whose chunk alone makes tile ``t`` (none when it takes several chunks)."""
        chunks = P.tile_chunks(self.geometry()[t.key.level], t.plane, t.key)
        if len(chunks) != 1:
            return []
        whole = (t.key.level, chunks[0])
        if T.reads_by_plane(t.plane, self.doc.plane_reads[t.key.level]):
            return [T.read_key(t.key, chunks[0], True), whole]
        return [whole]

    def start_histogram(self) -> None:
        self.hist_keys = []

    def finish_histogram(self) -> tuple[bool, bool]:
        return True, False

    def apply(self, plan: Any, cache: Any) -> tuple[bool, bool]:
        """As :meth:`Layer.apply`, but tiles of another slice are hidden, not kept beneath: labels of another slice
        are never drawn over this one (the overlay of a new slice appears as its tiles arrive)."""
        out = super().apply(plan, cache)
        for t in self.tiles.values():
            self._show(t)
        return out

    def render_into(self, t: _Tile) -> None:
        """Colour tile ``t``: the pixels a loader thread coloured from these very values with the current style,
        else here (pending edits drawn in)."""
        doc: LabelDocument = self.doc  # type: ignore[assignment]
        style = self.style()
        found, argb = (False, None) if self.edits else self.rendered.take(self._read_keys(t), style, t.raw)
        if not found:
            data = doc.overlay(t.raw, t.key.level, t.plane, t.key, self.edits) if self.edits else t.raw
            argb = style.render(data if data.ndim == 2 else data[:, :, 0], self.pool)
        item = t.item
        item.premultiplied = True  # drawn as is: no conversion on the GUI thread
        item.recycle = self.pool.give
        old = item.image
        item.qimage = None  # nothing borrows the old pixels any more
        #: a tile of background only (label 0) is transparent: neither coloured nor drawn
        item.background = argb is None
        shape = t.raw.shape[:2]
        if isinstance(argb, Fill):  # one colour: Qt fills the tile's rectangle
            item.fill = QColor(*argb.rgba)
            image = _broadcast(argb.pixel, shape)
        else:
            item.fill = None
            # background: an image of the tile's size all the same (the item's rect scales by it), not drawn
            image = _broadcast(_CLEAR, shape) if argb is None else argb
        item.setImage(image, autoLevels=False, levels=None, lut=None)
        del image, argb
        if old is not None:
            self.pool.give(old)
        self._show(t)

    def _show(self, t: _Tile) -> None:
        """Draw tile ``t`` when the layer is shown, the tile is of the current plane and not background only."""
        t.item.setVisible(self.visible and t.plane == self.plane and not getattr(t.item, "background", False))

    def set_opacity(self, opacity: float) -> None:
        """The overlay opacity (0..1), folded into the tiles' colours: every tile on screen is coloured again."""
        opacity = float(min(1.0, max(0.0, opacity)))
        if opacity != self.opacity:
            self.opacity = opacity
            self.render_all()

    def set_contour(self, contour: bool) -> None:
        if bool(contour) != self.contour:
            self.contour = bool(contour)
            self.render_all()

    def set_hidden_values(self, values: Sequence[int]) -> None:
        """Label values not to draw (the others keep their colours)."""
        hidden = frozenset(int(v) for v in values)
        if hidden != self.hidden_values:
            self.hidden_values = hidden
            self.render_all()

    def set_visible(self, visible: bool) -> None:
        self.visible = bool(visible)
        for t in self.tiles.values():
            self._show(t)


def label_documents(image: Document) -> tuple[list[LabelDocument], list[str]]:
    """The label images of ``image`` as documents, and messages for those that cannot be opened."""
    docs, errors = [], []
    try:
        names: Sequence[str] = image.m.labels()
    except Exception as exc:  # a damaged labels group: the image still opens
        return [], [f"labels: {type(exc).__name__}: {exc}"]
    for name in names:
        try:
            docs.append(LabelDocument(image, name))
        except Exception as exc:
            errors.append(f"label image {name}: {type(exc).__name__}: {exc}")
    return docs, errors
