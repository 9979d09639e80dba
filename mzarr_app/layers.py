"""Layers of the tiled view: one image pyramid each (the image; later each label image), drawn tile by tile.

A :class:`Layer` owns what is particular to one pyramid: its document, its chunk loader, its display settings
(automatic contrast from its small level), its pending edits and the tiles it has on screen. What a frame needs is
decided by :func:`mzarr_app.planner.plan_frame` (the same for every layer); a layer builds the request from the
view's plane and rectangle and applies the plan (loader requests, Qt items).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Signal
from PySide6.QtGui import QColor, QImage

from . import planner as P
from . import tiles as T
from .chunk_loader import ChunkLoader, LibraryCache
from .contrast import DisplaySettings, default_settings, render, render_indexed
from .document import Document, Edit

#: automatic contrast uses the finest level with at most this many elements (read once, in the background)
HISTOGRAM_MAX_ELEMENTS = 1 << 18
#: tile items a layer keeps hidden in the scene for reuse (a new pyqtgraph item and its insertion into the scene
#: cost more than colouring its tile; a jump to a new place reuses the items of the tiles it drops)
SPARE_ITEMS = 256


def read_value(level: Any, index: Sequence[int | None], z_plane: bool) -> Any:
    """The value at ``index`` of ``level`` (None: every channel) through the library: the chunk holding it is read
    with ``Level.read_chunk`` (a z-plane of it with ``read_chunk_plane`` when ``z_plane``), into the file's
    decoded-chunk cache, so the next values of that chunk cost nothing; channel images by a region read."""
    if any(i is None for i in index):
        return np.asarray(level[tuple(slice(None) if i is None else int(i) for i in index)])
    ci = tuple(int(i) // c for i, c in zip(index, level.chunks))
    local = [int(i) - k * c for i, k, c in zip(index, ci, level.chunks)]
    if z_plane:
        zi = level.axes.index("z")
        a = level.read_chunk_plane(ci, int(index[zi]))
        del local[zi]
    else:
        a = level.read_chunk(ci)
    return a[tuple(local)]


class ValueProbe(QObject):
    """Reads full-resolution values under the cursor on one worker thread, never on the GUI thread.

    The newest request wins (a request made while a read runs replaces any waiting one); results are kept in a
    small LRU keyed by the caller's key and announced by ``found(key)`` (queued to the GUI thread).
    """

    found = Signal(object)

    def __init__(self, parent: QObject | None = None, max_entries: int = 4096) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mzarr-value")
        self._lock = threading.Lock()
        self._busy = False
        self._pending: tuple[Hashable, Callable[[], Any]] | None = None
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._max = max_entries
        self.reads = 0  # reads done (tests)

    def get(self, key: Hashable) -> tuple[bool, Any]:
        """(found, value) of ``key`` from the results."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return True, self._cache[key]
            return False, None

    def request(self, key: Hashable, read: Callable[[], Any]) -> None:
        """Read ``read()`` for ``key`` in the background unless it is known."""
        with self._lock:
            if key in self._cache:
                return
            if self._busy:
                self._pending = (key, read)
                return
            self._busy = True
        self._pool.submit(self._run, key, read)

    def _run(self, key: Hashable, read: Callable[[], Any]) -> None:
        while True:
            try:
                v = read()
                ok = True
            except Exception:  # a closed file, a failed chunk: the coarse value stays
                ok = False
            with self._lock:
                self.reads += 1
                if ok:
                    self._cache[key] = v
                    while len(self._cache) > self._max:
                        self._cache.popitem(last=False)
            if ok:
                self.found.emit(key)
            with self._lock:
                if self._pending is None:
                    self._busy = False
                    return
                key, read = self._pending
                self._pending = None

    def close(self) -> None:
        """Forget waiting requests and results; wait for a running read (one chunk) to finish."""
        with self._lock:
            self._pending = None
            self._cache.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


_COLOR_TABLES: OrderedDict[bytes, tuple[list[int], bool]] = OrderedDict()


def _color_table(lut: np.ndarray) -> tuple[list[int], bool]:
    """Qt's colour table (0xAARRGGBB per index) of a (256, 3|4) uint8 lookup table, and whether it has
    transparency; the last few are kept (every tile of a view shares one)."""
    key = lut.tobytes() + bytes([lut.shape[1]])
    hit = _COLOR_TABLES.get(key)
    if hit is None:
        c = lut.astype(np.uint32)
        a = c[:, 3] if lut.shape[1] == 4 else np.full(256, 255, np.uint32)
        hit = ((a << 24) | (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).tolist(), bool((a < 255).any())
        _COLOR_TABLES[key] = hit
        while len(_COLOR_TABLES) > 8:
            _COLOR_TABLES.popitem(last=False)
    return hit


class TileItem(pg.ImageItem):
    """ImageItem whose rendered QImage is converted once to the painter's native format.

    Drawing an indexed or RGBA8888 image converts it on every paint (0.7-1.7 ms per 512x512 tile);
    ARGB32_Premultiplied is drawn 10-20x faster, which keeps pans and zooms smooth.
    """

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")
        #: the image set is (rows, cols, 4) uint8 already in the ARGB32_Premultiplied byte layout (label tiles)
        self.premultiplied = False
        #: a tile of one colour: its rectangle is filled with it (the image only gives the size; nothing rendered)
        self.fill: QColor | None = None
        #: given the item's pixels when it lets go of them (a label layer's buffer pool), or None
        self.recycle: Callable[[np.ndarray], None] | None = None

    def release(self) -> None:
        """Let go of the pixels (handed to ``recycle``) and of the Qt image borrowing them."""
        img: np.ndarray | None = self.image  # type: ignore[has-type]
        self.image = None
        self.qimage = None
        self.fill = None
        self._processingBuffer = self._displayBuffer = None
        self._renderRequired = True
        if img is not None and self.recycle is not None:
            self.recycle(img)

    def park(self) -> None:
        """Hide the item and let go of its pixels (kept in the scene for another tile: :meth:`Layer.show`)."""
        self.setVisible(False)
        self.release()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt naming
        """The image's (cols, rows) rectangle (pyqtgraph's, without its axis-order lookups: asked per item per
        repaint)."""
        img = self.image
        return QRectF() if img is None else QRectF(0.0, 0.0, float(img.shape[1]), float(img.shape[0]))

    def paint(self, painter: Any, *args: Any) -> None:
        """Draw the tile: pyqtgraph's paint without its profiler, composition mode and border, which tiles never
        use (a repaint draws every tile on screen: a few hundred at a volume's level 0)."""
        if self.image is None:
            return
        if self.fill is not None:
            rows, cols = self.image.shape[:2]
            painter.fillRect(QRectF(0.0, 0.0, float(cols), float(rows)), self.fill)
            return
        if self._renderRequired:
            self.render()
            if self._unrenderable:
                return
        rows, cols = self.image.shape[:2]
        painter.drawImage(QRectF(0.0, 0.0, float(cols), float(rows)), self.qimage)

    def render(self) -> None:  # noqa: D401 - pyqtgraph override
        data = self.image
        if self.premultiplied and data is not None:
            data = np.ascontiguousarray(data)
            self.image = data  # the QImage borrows this buffer: keep it alive with the item
            rows, cols = data.shape[:2]
            self.qimage = QImage(data.data, cols, rows, cols * 4, QImage.Format.Format_ARGB32_Premultiplied)
            self._renderRequired = False
            self._unrenderable = False
            return
        lut = self.lut
        if data is not None and data.ndim == 2 and data.dtype == np.uint8 and self.levels is None \
                and isinstance(lut, np.ndarray) and lut.dtype == np.uint8 and lut.shape in ((256, 3), (256, 4)):
            # uint8 indices and a colour table (single-channel tiles): Qt's indexed image, without pyqtgraph's render
            # (its checks and conversions in Python cost more than the conversion for the small tiles of a volume)
            data = np.ascontiguousarray(data)
            self.image = data
            table, alpha = _color_table(lut)
            q = QImage(data.data, data.shape[1], data.shape[0], data.strides[0], QImage.Format.Format_Indexed8)
            q.setColorTable(table)
            self.qimage = q.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied if alpha
                                            else QImage.Format.Format_RGB32)
            self._renderRequired = False
            self._unrenderable = False
            return
        super().render()
        q = self.qimage
        if q is not None:
            # opaque tiles as RGB32: Qt copies them instead of blending each pixel over what is beneath
            fmt = QImage.Format.Format_ARGB32_Premultiplied if q.hasAlphaChannel() else QImage.Format.Format_RGB32
            if q.format() != fmt:
                self.qimage = q.convertToFormat(fmt)


@dataclass
class _Tile:
    """An item on screen at one tile position, showing tile ``key`` of ``plane`` (its raw data kept)."""

    item: pg.ImageItem
    raw: np.ndarray
    plane: T.Plane
    key: T.TileKey


class CacheSnapshot:
    """One update's view of a loader cache: each key is looked up once, so the plan and the tiles drawn from it
    agree even while workers add (and the cache evicts) chunks."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self._memo: dict[Any, np.ndarray | None] = {}

    def get(self, key: Any) -> np.ndarray | None:
        try:
            return self._memo[key]
        except KeyError:
            v = self._memo[key] = self.cache.get(key)
            return v

    def __contains__(self, key: Any) -> bool:
        return self.get(key) is not None


class Layer:
    """One pyramid drawn in a view: document, loader, display, pending edits and tiles on screen.

    ``z_base`` places the layer's items: a tile of level ``l`` is drawn at ``z_base - l`` (finer levels on top),
    tiles of another plane kept beneath at ``z_base - 1000 - l``; layers listed later get a higher ``z_base``.
    """

    def __init__(self, doc: Document, vb: pg.ViewBox, name: str = "image", z_base: float = 0.0,
                 edits: Sequence[Edit] = ()) -> None:
        self.doc = doc
        self.vb = vb
        self.name = name
        self.z_base = z_base
        self.loader: ChunkLoader | None = None
        self.display: DisplaySettings | None = None
        self.edits: list[Edit] = list(edits)
        self.plane: T.Plane | None = None
        self.level = -1
        self.target: list[T.TileKey] = []
        self.complete = False
        self.covered = False
        self.requested: list[T.ReadKey] = []
        self.tiles: dict[T.TileKey, _Tile] = {}
        self.hist_keys: list[T.ChunkKey] = []
        self.hist_level = -1
        self.hist_data: np.ndarray | None = None
        self.hist_channels: list[np.ndarray] | None = None
        self._slots: tuple[Callable[..., Any], Callable[..., Any]] | None = None
        self._geometry_of: Any = None
        self._geometry: tuple[P.LevelGeometry, ...] = ()
        self.probe: ValueProbe | None = None
        #: the coarsest level is read first to cover the view while the level loads (``FrameRequest.stand_ins``)
        self.stand_ins = True
        #: hidden items in the view box, reused by :meth:`show` (at most ``SPARE_ITEMS``)
        self._spare: list[TileItem] = []

    # --- loading -------------------------------------------------------------------------------------------
    def start_loading(self, cache_mb: float, threads: int | None, parent: QObject,
                      loaded: Callable[..., Any], failed: Callable[..., Any]) -> None:
        """A new loader (an empty cache) whose arrivals and failures go to ``loaded`` / ``failed``."""
        self.loader = ChunkLoader(self.doc.read_chunk, cache_mb, threads, parent)
        self.probe = ValueProbe(parent)
        self.loader.chunkLoaded.connect(loaded)
        self.loader.chunkFailed.connect(failed)
        self._slots = (loaded, failed)

    def teardown(self) -> None:
        """Drop tiles, stop the loader and forget the frame (display, edits and histogram are kept)."""
        self.clear_tiles(lambda k, t: True)
        for item in self._spare:
            self.vb.removeItem(item)
        self._spare = []
        if self.loader is not None:
            self.loader.close()
            if self._slots is not None:
                self.loader.chunkLoaded.disconnect(self._slots[0])
                self.loader.chunkFailed.disconnect(self._slots[1])
            self.loader.deleteLater()
            self.loader = None
        self._slots = None
        if self.probe is not None:
            self.probe.close()
            self.probe.deleteLater()
            self.probe = None
        self.level = -1
        self.target = []
        self.complete = False
        self.covered = False
        self._geometry_of = None

    def idle(self) -> bool:
        """True when this layer's loader has nothing queued or running."""
        return self.loader is None or self.loader.idle()

    def set_cache_mb(self, mb: float) -> None:
        if self.loader is not None:
            self.loader.cache.set_max_bytes(int(mb * 1024 * 1024))

    # --- planning ------------------------------------------------------------------------------------------
    def geometry(self) -> tuple[P.LevelGeometry, ...]:
        """The planner's view of the document's levels (rebuilt when the document was reopened)."""
        if self._geometry_of is not self.doc.levels:
            self._geometry_of = self.doc.levels
            self._geometry = tuple(P.LevelGeometry.of(lev, pr) for lev, pr in zip(self.doc.levels, self.doc.plane_reads))
        return self._geometry

    def plane_of(self, plane: T.Plane) -> T.Plane:
        """This layer's plane for the view's ``plane`` (same slice and displayed axes; channels only if it has them)."""
        if plane.axes == self.doc.axes:
            return plane
        return replace(plane, axes=self.doc.axes, channels=plane.channels if "c" in self.doc.axes else None)

    def frame_request(self, plane: T.Plane, rect: P.Rect, screen_pixel: float, step: int,
                      cache: Any, prefetch_slices: int, prefetch_layers: int = 0) -> P.FrameRequest:
        """The planner's request for this layer's next frame (``cache``: this update's snapshot of the loader's)."""
        assert self.loader is not None
        return P.FrameRequest(self.geometry(), plane, rect, screen_pixel, cache, self.loader.failed.keys(),
                              frozenset((t.key, t.plane) for t in self.tiles.values()), tuple(self.target),
                              self.complete, step, prefetch_slices, prefetch_layers, self.stand_ins,
                              isinstance(self.loader.cache, LibraryCache))

    def apply(self, plan: P.FramePlan, cache: Any) -> tuple[bool, bool]:
        """Put ``plan`` on screen (its reads were requested); returns (frame complete, a ready tile went missing)."""
        missed = False
        for t in plan.tiles:
            if t in plan.ready:
                missed |= not self.show(t, cache)
        for t in plan.fallback:
            self.show(t, cache)
        for k in plan.demote:
            self.tiles[k].item.setZValue(self.z_base - 1000 - k.level)
        self.clear_tiles(lambda k, t: k in plan.drop)
        self.covered = plan.covered
        self.target = list(plan.tiles)
        return plan.complete and not missed, missed

    # --- automatic contrast --------------------------------------------------------------------------------
    def start_histogram(self) -> None:
        """Choose the chunks of the level used for automatic contrast (the finest one that is small)."""
        idx = len(self.doc.levels) - 1
        for i, lev in enumerate(self.doc.levels):
            if int(np.prod(lev.shape)) <= HISTOGRAM_MAX_ELEMENTS:
                idx = i
                break
        self.hist_level = idx
        lev = self.doc.levels[idx]
        grid = [-(-n // c) for n, c in zip(lev.shape, lev.chunks)]
        self.hist_keys = [(idx, tuple(int(v) for v in ci)) for ci in np.ndindex(*grid)]

    def finish_histogram(self) -> tuple[bool, bool]:
        """Compute automatic display settings once the histogram level is loaded: (ready, just computed)."""
        if self.display is not None:
            return True, False
        assert self.loader is not None
        doc = self.doc
        lev = doc.levels[self.hist_level]
        parts = [self.loader.get(k) for k in self.hist_keys]
        if any(k in self.loader.failed for k in self.hist_keys):  # unreadable: fall back to the dtype range
            self.hist_data, self.hist_channels = None, None
            self.display = default_settings(doc.dtype, doc.axes, doc.channel_count, doc.is_label, None, None)
            return True, True
        if any(p is None for p in parts):
            return False, False
        data = np.empty(lev.shape, lev.dtype)
        for k, p in zip(self.hist_keys, parts):
            data[T.chunk_region(lev, k[1])] = p
        self.hist_data = data
        cax = doc.axes.find("c")
        chans = [np.take(data, i, axis=cax) for i in range(doc.channel_count)] if cax >= 0 and doc.channel_count else None
        self.hist_channels = chans
        self.display = default_settings(doc.dtype, doc.axes, doc.channel_count, doc.is_label, data, chans)
        return True, True

    # --- tiles ---------------------------------------------------------------------------------------------
    def by_plane(self, level: int) -> bool:
        """True when tiles of ``level`` in the current plane are read one z-plane per chunk."""
        assert self.plane is not None
        return T.reads_by_plane(self.plane, self.doc.plane_reads[level])

    def _cached_part(self, tile: T.TileKey, chunk_index: tuple[int, ...], cache: Any) -> np.ndarray | None:
        """Cached data of one chunk of ``tile``: its plane at the slice or the whole chunk (None if neither)."""
        if self.by_plane(tile.level):
            a = cache.get(T.read_key(tile, chunk_index, True))
            if a is not None:
                return a
        return cache.get((tile.level, chunk_index))

    def clear_tiles(self, pred: Any) -> None:
        """Remove tiles for which ``pred(key, tile)`` holds."""
        for k in [k for k, t in self.tiles.items() if pred(k, t)]:
            item = self.tiles.pop(k).item
            if len(self._spare) < SPARE_ITEMS and isinstance(item, TileItem):
                item.park()
                self._spare.append(item)
            else:
                self.vb.removeItem(item)

    def _new_item(self) -> TileItem:
        """A spare item shown again, or a new one added to the view box."""
        if self._spare:
            item = self._spare.pop()
            item.setVisible(True)
            return item
        item = TileItem()
        self.vb.addItem(item)
        return item

    def show(self, tile: T.TileKey, cache: Any) -> bool:
        """Ensure ``tile`` is on screen if all its chunks are in ``cache``; True if it is shown."""
        assert self.plane is not None
        plane = self.plane
        pos = P.position(tile)
        cur = self.tiles.get(pos)
        if cur is not None and cur.key == tile and cur.plane == plane:
            cur.item.setZValue(self.z_base - tile.level)
            return True
        lev = self.doc.levels[tile.level]
        chunks = {}
        for i in P.tile_chunks(self.geometry()[tile.level], plane, tile):
            a = self._cached_part(tile, i, cache)
            if a is None:
                return False  # an item with other content (previous slice) may stay here meanwhile
            chunks[i] = a
        raw = T.assemble_tile(lev, plane, tile, chunks)
        if cur is None:
            cur = _Tile(self._new_item(), raw, plane, tile)
            self.tiles[pos] = cur
        else:
            cur.raw, cur.plane, cur.key = raw, plane, tile
        self.render_into(cur)  # set the image first: setRect scales by the image size
        x, y, w, h = T.tile_rect(lev, plane, tile)
        cur.item.setRect(QRectF(x, y, w, h))
        cur.item.setZValue(self.z_base - tile.level)
        return True

    def render_into(self, t: _Tile) -> None:
        """(Re)draw one tile's RGBA from its raw data, the display settings and pending edits."""
        if self.display is None:
            return
        data = t.raw
        if self.edits:
            data = self.doc.overlay(data, t.key.level, t.plane, t.key, self.edits)
        if self.display.mode in ("single", "labels") or data.ndim == 2:
            img, lut = render_indexed(data, self.display)  # Qt draws uint8 + colour table directly
            t.item.setImage(img, autoLevels=False, levels=None, lut=lut)
        else:
            t.item.setImage(render(data, self.display), autoLevels=False, levels=None, lut=None)

    def render_all(self) -> None:
        """Re-render every tile on screen (new display settings or edits)."""
        for t in self.tiles.values():
            self.render_into(t)

    # --- values --------------------------------------------------------------------------------------------
    def value_at(self, row: float, col: float) -> tuple[Any, int] | None:
        """(value, level) under level-0 point (row, col) from the finest cached level (pending edits applied)."""
        if self.loader is None or self.plane is None:
            return None
        plane, doc = self.plane, self.doc
        h, w = doc.shape[doc.axes.index(plane.row)], doc.shape[doc.axes.index(plane.col)]
        if not (0 <= row < h and 0 <= col < w):
            return None
        for li, lev in enumerate(doc.levels):
            idx: list[Any] = []
            for ax, a in enumerate(doc.axes):
                f = lev.factor[ax]
                if a == plane.row:
                    idx.append(min(int(row // f), lev.shape[ax] - 1))
                elif a == plane.col:
                    idx.append(min(int(col // f), lev.shape[ax] - 1))
                elif a == plane.slice_axis:
                    idx.append(min(int(plane.slice_index // f), lev.shape[ax] - 1))
                else:
                    idx.append(None)
            ci = tuple(0 if i is None else i // c for i, c in zip(idx, lev.chunks))
            if any(i is None for i in idx):  # channel axis: all channel chunks
                cax = doc.axes.index("c")
                vals = []
                for cc in range(lev.chunk_grid[cax] if hasattr(lev, "chunk_grid") else 1):
                    k = list(ci)
                    k[cax] = cc
                    part = self._peek_values(li, tuple(k), idx)
                    if part is None:
                        break
                    vals.extend(np.asarray(part).ravel().tolist())
                else:
                    return tuple(vals), li
                continue
            v = self._peek_values(li, ci, idx)
            if v is None:
                continue
            v = self._edited(v, row, col)
            return (v.item() if hasattr(v, "item") else v), li
        return None

    def _edited(self, v: Any, row: float, col: float) -> Any:
        """``v`` (the value at level-0 point (row, col) of the plane) with the last pending edit covering it."""
        plane, doc = self.plane, self.doc
        assert plane is not None
        for e in reversed(self.edits):
            pt = {plane.row: int(row), plane.col: int(col)}
            if plane.slice_axis:
                pt[plane.slice_axis] = plane.slice_index
            if all(e.region[doc.axes.index(k)].start <= v2 < e.region[doc.axes.index(k)].stop for k, v2 in pt.items()):
                if e.mask is None or bool(e.mask[tuple(
                        0 if e.mask.shape[ax] == 1 else pt[a2] - e.region[ax].start
                        for ax, a2 in enumerate(doc.axes))]):
                    return e.value
        return v

    # --- the value at full resolution (status bar) -----------------------------------------------------------------
    def probe_key(self, row: float, col: float) -> tuple[Any, ...] | None:
        """Key of the level-0 pixel under point (row, col) of the plane (None outside the image)."""
        plane, doc = self.plane, self.doc
        if plane is None:
            return None
        h, w = doc.shape[doc.axes.index(plane.row)], doc.shape[doc.axes.index(plane.col)]
        if not (0 <= row < h and 0 <= col < w):
            return None
        return (plane.slice_axis, plane.slice_index if plane.slice_axis else None, plane.row, int(row), int(col))

    def full_value(self, row: float, col: float) -> tuple[bool, Any]:
        """(known, value) of the level-0 pixel under (row, col), pending edits applied, if it was read already."""
        key = self.probe_key(row, col)
        if key is None or self.probe is None:
            return False, None
        ok, v = self.probe.get(key)
        if not ok:
            return False, None
        v = self._edited(v, row, col)
        if isinstance(v, np.ndarray) and v.ndim:
            return True, tuple(x.item() for x in v.ravel())
        return True, (v.item() if hasattr(v, "item") else v)

    def request_full_value(self, row: float, col: float) -> tuple[Any, ...] | None:
        """Read the level-0 pixel under (row, col) in the background (``probe.found(key)`` when read); its key."""
        key = self.probe_key(row, col)
        if key is None or self.probe is None:
            return None
        plane, doc = self.plane, self.doc
        assert plane is not None
        pt = {plane.row: int(row), plane.col: int(col)}
        if plane.slice_axis:
            pt[plane.slice_axis] = plane.slice_index
        index = [pt.get(a) for a in doc.axes]  # None: the channel axis (every channel)
        lev = doc.levels[0]
        z_plane = plane.slice_axis == "z" and bool(doc.plane_reads[0])
        self.probe.request(key, lambda: read_value(lev, index, z_plane))
        return key

    def _peek_values(self, li: int, k: tuple[int, ...], idx: list[Any]) -> Any:
        """Value(s) at level index ``idx`` (None: all channels) from chunk ``k`` of level ``li``, whole or plane."""
        assert self.loader is not None
        lev = self.doc.levels[li]
        local: list[Any] = [slice(None) if i is None else i - c * kk for i, c, kk in zip(idx, lev.chunks, k)]
        a = self.loader.cache.peek((li, k))
        if a is None and self.by_plane(li):
            zi = self.doc.axes.index("z")
            a = self.loader.cache.peek((li, k, idx[zi]))
            del local[zi]
        return None if a is None else a[tuple(local)]
