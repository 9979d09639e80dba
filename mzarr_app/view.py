"""The tiled pyramid view: one ImageItem per visible tile, coarse levels underneath while finer ones load."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QWidget

from . import planner as P
from . import tiles as T
from .chunk_loader import ChunkLoader
from .contrast import DisplaySettings, default_settings, render, render_indexed
from .document import Document, Edit

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

#: automatic contrast uses the finest level with at most this many elements (read once, in the background)
HISTOGRAM_MAX_ELEMENTS = 1 << 18
#: chunks arriving within this time are put on screen together (one repaint instead of one per chunk); the first
#: stand-in and the last arrival of a frame are shown at once. A repaint of a 3D view draws a few hundred 64x64
#: tiles and competes with the readers for the GIL: 0.2 s batches make a 1024^2 z-slice sharp ~30% sooner than 0.03 s.
ARRIVAL_BATCH_S = 0.2
#: z-slices read by plane: once a frame is complete, the planes of this many next slices are read ahead
PREFETCH_SLICES = 1


class TileItem(pg.ImageItem):
    """ImageItem whose rendered QImage is converted once to the painter's native format.

    Drawing an indexed or RGBA8888 image converts it on every paint (0.7-1.7 ms per 512x512 tile);
    ARGB32_Premultiplied is drawn 10-20x faster, which keeps pans and zooms smooth.
    """

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")

    def render(self) -> None:  # noqa: D401 - pyqtgraph override
        super().render()
        if self.qimage is not None and self.qimage.format() != QImage.Format.Format_ARGB32_Premultiplied:
            self.qimage = self.qimage.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


@dataclass
class _Tile:
    """An item on screen at one tile position, showing tile ``key`` of ``plane`` (its raw data kept)."""

    item: pg.ImageItem
    raw: np.ndarray
    plane: T.Plane
    key: T.TileKey


class _CacheSnapshot:
    """One update's view of the loader cache: each key is looked up once, so the plan and the tiles drawn from it
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


class EditViewBox(pg.ViewBox):
    """ViewBox that turns left-drags into rectangle selections or brush strokes when a tool is active."""

    rectDrawn = Signal(QRectF)
    brushStroke = Signal(list)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.tool: str | None = None
        self.brush_radius = 5.0
        self._stroke: list[tuple[float, float]] = []
        self._band = QGraphicsRectItem()
        self._band.setPen(QPen(QColor(255, 200, 0), 0, Qt.PenStyle.DashLine))
        self._band.setZValue(1e6)
        self._band.hide()
        self.addItem(self._band, ignoreBounds=True)
        self.selection: QRectF | None = None

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - Qt naming
        """Draw a selection or a brush stroke with the left button when a tool is active; else pan."""
        if self.tool is None or ev.button() != Qt.MouseButton.LeftButton:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        p0 = self.mapSceneToView(ev.buttonDownScenePos())
        p1 = self.mapSceneToView(ev.scenePos())
        if self.tool == "rect":
            r = QRectF(p0, p1).normalized()
            self._band.setRect(r)
            self._band.show()
            if ev.isFinish():
                self.set_selection(r)
                self.rectDrawn.emit(r)
        elif self.tool == "brush":
            if ev.isStart():
                self._stroke = [(p0.x(), p0.y())]
            self._stroke.append((p1.x(), p1.y()))
            if ev.isFinish():
                stroke, self._stroke = self._stroke, []
                self.brushStroke.emit(stroke)

    def set_selection(self, r: QRectF | None) -> None:
        """Show (or hide with None) the current selection rectangle."""
        self.selection = r
        if r is None:
            self._band.hide()
        else:
            self._band.setRect(r)
            self._band.show()


class ScaleBar(QWidget):
    """A physical-length bar painted in the view's lower-right corner."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.length_px = 0.0
        self.text = ""
        self.resize(200, 40)

    def set_scale(self, units_per_screen_px: float | None, unit: str) -> None:
        """Pick a round length about 120 screen pixels long; hide when no spacing."""
        if not units_per_screen_px or units_per_screen_px <= 0 or not math.isfinite(units_per_screen_px):
            self.hide()
            return
        target = 120 * units_per_screen_px
        exp = math.floor(math.log10(target))
        nice = min((m * 10 ** exp for m in (1, 2, 5, 10)), key=lambda v: abs(v - target))
        self.length_px = nice / units_per_screen_px
        self.text = format_length(nice, unit)
        self.show()
        self.update()

    def paintEvent(self, ev: Any) -> None:  # noqa: N802 - Qt naming
        """Draw the bar and its label."""
        p = QPainter(self)
        w = int(round(self.length_px))
        x1 = self.width() - 10
        x0 = x1 - w
        y = self.height() - 10
        p.fillRect(x0 - 6, 2, w + 12, self.height() - 4, QColor(0, 0, 0, 120))
        p.setPen(QPen(QColor(255, 255, 255), 3))
        p.drawLine(x0, y, x1, y)
        p.drawText(QRectF(x0 - 6, 2, w + 12, y - 6), Qt.AlignmentFlag.AlignCenter, self.text)
        p.end()


_UNIT_SHORT = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "meter": "m", "centimeter": "cm",
               "angstrom": "Å", "picometer": "pm", "kilometer": "km", "inch": "in", "foot": "ft"}
_METRES = {"nanometer": 1e-9, "micrometer": 1e-6, "millimeter": 1e-3, "centimeter": 1e-2, "meter": 1.0,
           "kilometer": 1e3, "picometer": 1e-12, "angstrom": 1e-10}


def format_length(value: float, unit: str) -> str:
    """Human length such as ``50 µm`` or ``1.2 mm`` (metric units rescaled)."""
    if unit in _METRES and value > 0:
        metres = value * _METRES[unit]
        for name in ("kilometer", "meter", "millimeter", "micrometer", "nanometer", "picometer"):
            if metres >= _METRES[name] * 0.999:
                v = metres / _METRES[name]
                return f"{v:.4g} {_UNIT_SHORT[name]}"
    return f"{value:.4g} {_UNIT_SHORT.get(unit, unit)}".strip()


class TiledImageView(pg.GraphicsView):
    """Shows a :class:`Document` plane by streaming the chunks its zoom needs from the pyramid."""

    levelChanged = Signal(int)
    frameComplete = Signal()
    cursorInfo = Signal(object)
    autoDisplayReady = Signal(object)
    tileFailed = Signal(str)

    def __init__(self, parent: QWidget | None = None, cache_mb: float = 512, threads: int | None = None) -> None:
        super().__init__(parent, background="k")
        self.vb = EditViewBox()
        self.setCentralItem(self.vb)
        self.vb.sigRangeChanged.connect(self._range_changed)
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.cache_mb = cache_mb
        self.threads = threads
        self.doc: Document | None = None
        self.loader: ChunkLoader | None = None
        self.plane: T.Plane | None = None
        self.display: DisplaySettings | None = None
        self.edits: list[Edit] = []
        self.level = -1
        self.target: list[T.TileKey] = []
        self.complete = False
        self.covered = False
        self.requested: list[T.ReadKey] = []
        self.frames = 0
        self.last_complete_time = 0.0
        self._tiles: dict[T.TileKey, _Tile] = {}
        self._hist_keys: list[T.ChunkKey] = []
        self._hist_level = -1
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._update)
        self._last_update = 0.0
        self._geometry_of: Any = None
        self._geometry_cache: tuple[P.LevelGeometry, ...] = ()
        self._step_dir = 1
        self.scale_bar = ScaleBar(self)
        self.scale_bar.hide()

    # --- document / plane / display -----------------------------------------------------------------------
    def set_document(self, doc: Document | None, plane: T.Plane | None = None) -> None:
        """Show ``doc`` (fit to the window) with ``plane`` (default: first slice / all channels)."""
        self._teardown()
        self.doc = doc
        if doc is None:
            return
        self.loader = ChunkLoader(doc.read_chunk, self.cache_mb, self.threads, self)
        self.loader.chunkLoaded.connect(self._chunk_loaded)
        self.loader.chunkFailed.connect(self._chunk_failed)
        self.plane = plane or T.default_plane(doc.axes, channels=None)
        self.display = None
        self._start_histogram()
        self.fit()
        self.schedule()

    def _teardown(self) -> None:
        """Drop tiles and stop the loader."""
        for t in self._tiles.values():
            self.vb.removeItem(t.item)
        self._tiles.clear()
        if self.loader is not None:
            self.loader.close()
            self.loader.chunkLoaded.disconnect(self._chunk_loaded)
            self.loader.chunkFailed.disconnect(self._chunk_failed)
            self.loader.deleteLater()
            self.loader = None
        self.level = -1
        self.target = []
        self.complete = False
        self.covered = False
        self._geometry_of = None

    def stop_loading(self) -> None:
        """Stop background reads and drop tiles (keeps document, plane, display and view range)."""
        rng = self.vb.viewRect()
        self._teardown()
        self._saved_range = rng

    def close_document(self) -> None:
        """Stop loading and forget the document (does not close the file)."""
        self._teardown()
        self.doc = None

    def reload(self) -> None:
        """Drop every cached chunk and tile (after the file changed) and load again."""
        if self.doc is None:
            return
        display, plane = self.display, self.plane
        rng = getattr(self, "_saved_range", None) or self.vb.viewRect()
        self._saved_range = None
        self._teardown()
        self.loader = ChunkLoader(self.doc.read_chunk, self.cache_mb, self.threads, self)
        self.loader.chunkLoaded.connect(self._chunk_loaded)
        self.loader.chunkFailed.connect(self._chunk_failed)
        self.plane, self.display = plane, display
        self.vb.setRange(rng, padding=0)
        self.schedule()

    def set_plane(self, plane: T.Plane) -> None:
        """Change slice axis/index or channels."""
        if plane == self.plane:
            return
        axes_changed = self.plane is None or (plane.row, plane.col) != (self.plane.row, self.plane.col)
        if self.plane is not None and plane.slice_index != self.plane.slice_index:
            self._step_dir = 1 if plane.slice_index > self.plane.slice_index else -1
        self.plane = plane
        if axes_changed:
            self._clear_tiles(lambda k, t: True)
            self.fit()
        self.schedule()

    def set_display(self, settings: DisplaySettings) -> None:
        """New contrast/colour settings: re-render every tile on screen."""
        self.display = settings
        for t in self._tiles.values():
            self._render_into(t.key, t)
        self.schedule()

    def set_edits(self, edits: Sequence[Edit]) -> None:
        """Pending edits to draw over the image."""
        self.edits = list(edits)
        for t in self._tiles.values():
            self._render_into(t.key, t)

    def set_cache_mb(self, mb: float) -> None:
        """Change the chunk cache budget."""
        self.cache_mb = mb
        if self.loader is not None:
            self.loader.cache.set_max_bytes(int(mb * 1024 * 1024))

    # --- geometry ------------------------------------------------------------------------------------------
    def plane_shape(self) -> tuple[int, int]:
        """(rows, cols) of the displayed plane at level 0."""
        assert self.doc is not None and self.plane is not None
        return (self.doc.shape[self.doc.axes.index(self.plane.row)], self.doc.shape[self.doc.axes.index(self.plane.col)])

    def fit(self) -> None:
        """Show the whole plane."""
        if self.doc is None:
            return
        h, w = self.plane_shape()
        self.vb.setLimits(xMin=-w, xMax=2 * w, yMin=-h, yMax=2 * h, minXRange=4, minYRange=4,
                          maxXRange=3 * max(w, h), maxYRange=3 * max(w, h))
        self.vb.setRange(QRectF(0, 0, w, h), padding=0)

    def zoom(self, factor: float, center: QPointF | None = None) -> None:
        """Zoom in by ``factor`` (>1) or out (<1) around ``center`` (default: view centre)."""
        c = center or self.vb.viewRect().center()
        self.vb.scaleBy((1 / factor, 1 / factor), center=c)

    def pan(self, dx: float, dy: float) -> None:
        """Move the view by (dx, dy) level-0 pixels."""
        self.vb.translateBy(x=dx, y=dy)

    def show_rect(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Make the level-0 rectangle fill the view."""
        self.vb.setRange(QRectF(x0, y0, x1 - x0, y1 - y0), padding=0)

    def visible_rect(self) -> tuple[float, float, float, float]:
        """Visible part of the plane (x0, y0, x1, y1) in level-0 coordinates, clipped to the image."""
        r = self.vb.viewRect()
        h, w = self.plane_shape()
        return (max(0.0, r.left()), max(0.0, r.top()), min(float(w), r.right()), min(float(h), r.bottom()))

    def screen_pixel(self) -> float:
        """Size of one device pixel in level-0 pixels."""
        r = self.vb.viewRect()
        size = self.vb.size()
        px = (r.width() / max(1.0, size.width()), r.height() / max(1.0, size.height()))
        dpr = self.devicePixelRatioF() or 1.0
        return max(px[0], px[1]) / dpr

    # --- scheduling ----------------------------------------------------------------------------------------
    def schedule(self) -> None:
        """Coalesce an update on the next event-loop turn."""
        if not self._timer.isActive() or self._timer.remainingTime() > 0:
            self._timer.start(0)

    def _range_changed(self, *args: Any) -> None:
        self.schedule()
        self._update_scale_bar()

    def _start_histogram(self) -> None:
        """Queue the chunks of the level used for automatic contrast (the finest one that is small)."""
        assert self.doc is not None
        idx = len(self.doc.levels) - 1
        for i, lev in enumerate(self.doc.levels):
            if int(np.prod(lev.shape)) <= HISTOGRAM_MAX_ELEMENTS:
                idx = i
                break
        self._hist_level = idx
        lev = self.doc.levels[idx]
        grid = [-(-n // c) for n, c in zip(lev.shape, lev.chunks)]
        self._hist_keys = [(idx, tuple(int(v) for v in ci)) for ci in np.ndindex(*grid)]

    def _finish_histogram(self) -> bool:
        """Compute automatic display settings once the histogram level is loaded; True when ready."""
        if self.display is not None:
            return True
        assert self.doc is not None and self.loader is not None
        lev = self.doc.levels[self._hist_level]
        parts = [self.loader.get(k) for k in self._hist_keys]
        doc = self.doc
        if any(k in self.loader.failed for k in self._hist_keys):  # unreadable: fall back to the dtype range
            self.hist_data, self.hist_channels = None, None
            self.display = default_settings(doc.dtype, doc.axes, doc.channel_count, doc.is_label, None, None)
            self.autoDisplayReady.emit(self.display)
            return True
        if any(p is None for p in parts):
            return False
        data = np.empty(lev.shape, lev.dtype)
        for k, p in zip(self._hist_keys, parts):
            data[T.chunk_region(lev, k[1])] = p
        self.hist_data = data
        cax = doc.axes.find("c")
        chans = [np.take(data, i, axis=cax) for i in range(doc.channel_count)] if cax >= 0 and doc.channel_count else None
        self.hist_channels = chans
        self.display = default_settings(doc.dtype, doc.axes, doc.channel_count, doc.is_label, data, chans)
        self.autoDisplayReady.emit(self.display)
        return True

    def _geometry(self) -> tuple[P.LevelGeometry, ...]:
        """The planner's view of the document's levels (rebuilt when the document was reopened)."""
        assert self.doc is not None
        if self._geometry_of is not self.doc.levels:
            self._geometry_of = self.doc.levels
            self._geometry_cache = tuple(P.LevelGeometry.of(lev, pr)
                                         for lev, pr in zip(self.doc.levels, self.doc.plane_reads))
        return self._geometry_cache

    def _update(self) -> None:
        """Plan the frame (``planner.plan_frame``) and apply it: request its reads, show, keep and drop tiles."""
        if self.doc is None or self.loader is None or self.plane is None:
            return
        plane = self.plane
        self._last_update = time.perf_counter()
        self.vb.updateMatrix()
        snap = _CacheSnapshot(self.loader.cache)
        plan = P.plan_frame(P.FrameRequest(
            self._geometry(), plane, self.visible_rect(), self.screen_pixel(), snap, self.loader.failed.keys(),
            frozenset((t.key, t.plane) for t in self._tiles.values()), tuple(self.target), self.complete,
            self._step_dir, PREFETCH_SLICES))
        if plan.empty:
            self._clear_tiles(lambda k, t: True)
            self.target, self.complete = [], True
            return
        if plan.level != self.level:
            self.level = plan.level
            self.levelChanged.emit(plan.level)
        keys: list[T.ReadKey] = list(self._hist_keys) if self.display is None else []
        self.requested = self.loader.request(keys + list(plan.reads) + list(plan.prefetch))
        if not self._finish_histogram():
            return
        missed = False
        for t in plan.tiles:
            if t in plan.ready:
                missed |= not self._show(t, snap)
        for t in plan.fallback:
            self._show(t, snap)
        for k in plan.demote:
            self._tiles[k].item.setZValue(-1000 - k.level)
        self._clear_tiles(lambda k, t: k in plan.drop)
        self.covered = plan.covered
        self.target = list(plan.tiles)
        complete = plan.complete and not missed
        if complete and not self.complete:
            self.frames += 1
            self.last_complete_time = time.perf_counter()
            self.complete = True
            self.frameComplete.emit()
        elif not complete:
            self.complete = False
        if plan.reschedule or missed:
            self.schedule()  # one more update queues the read-ahead (or retries a tile whose data went missing)

    def _chunks_of(self, tile: T.TileKey) -> tuple[tuple[int, ...], ...]:
        """``tiles.tile_chunks`` for the current plane (memoised by the planner)."""
        assert self.doc is not None and self.plane is not None
        return P.tile_chunks(self._geometry()[tile.level], self.plane, tile)

    def _by_plane(self, level: int) -> bool:
        """True when tiles of ``level`` in the current plane are read one z-plane per chunk."""
        assert self.doc is not None and self.plane is not None
        return T.reads_by_plane(self.plane, self.doc.plane_reads[level])

    def _cached_part(self, tile: T.TileKey, chunk_index: tuple[int, ...], cache: Any) -> np.ndarray | None:
        """Cached data of one chunk of ``tile``: its plane at the slice or the whole chunk (None if neither)."""
        if self._by_plane(tile.level):
            a = cache.get(T.read_key(tile, chunk_index, True))
            if a is not None:
                return a
        return cache.get((tile.level, chunk_index))

    def _clear_tiles(self, pred: Any) -> None:
        """Remove tiles for which ``pred(key, tile)`` holds."""
        for k in [k for k, t in self._tiles.items() if pred(k, t)]:
            self.vb.removeItem(self._tiles.pop(k).item)

    def _show(self, tile: T.TileKey, cache: Any) -> bool:
        """Ensure ``tile`` is on screen if all its chunks are in ``cache``; True if it is shown."""
        assert self.doc is not None and self.loader is not None and self.plane is not None
        pos = P.position(tile)
        cur = self._tiles.get(pos)
        if cur is not None and cur.key == tile and cur.plane == self.plane:
            cur.item.setZValue(-tile.level)
            return True
        lev = self.doc.levels[tile.level]
        idxs = self._chunks_of(tile)
        chunks = {}
        for i in idxs:
            a = self._cached_part(tile, i, cache)
            if a is None:
                return False  # an item with other content (previous slice) may stay here meanwhile
            chunks[i] = a
        raw = T.assemble_tile(lev, self.plane, tile, chunks)
        if cur is None:
            item = TileItem()
            self.vb.addItem(item)
            cur = _Tile(item, raw, self.plane, tile)
            self._tiles[pos] = cur
        else:
            cur.raw, cur.plane, cur.key = raw, self.plane, tile
        self._render_into(tile, cur)  # set the image first: setRect scales by the image size
        x, y, w, h = T.tile_rect(lev, self.plane, tile)
        cur.item.setRect(QRectF(x, y, w, h))
        cur.item.setZValue(-tile.level)
        return True

    def _render_into(self, key: T.TileKey, t: _Tile) -> None:
        """(Re)draw one tile's RGBA from its raw data, the display settings and pending edits."""
        if self.display is None or self.doc is None:
            return
        data = t.raw
        if self.edits:
            data = self.doc.overlay(data, key.level, t.plane, key, self.edits)
        if self.display.mode in ("single", "labels") or data.ndim == 2:
            img, lut = render_indexed(data, self.display)  # Qt draws uint8 + colour table directly
            t.item.setImage(img, autoLevels=False, levels=None, lut=lut)
        else:
            t.item.setImage(render(data, self.display), autoLevels=False, levels=None, lut=None)

    def _chunk_loaded(self, key: T.ReadKey) -> None:
        """Show arrivals in batches: at most one update (and repaint) per ``ARRIVAL_BATCH_S`` while more are due."""
        if not self.covered or (self.loader is not None and self.loader.idle()):
            self._timer.start(0)  # the first stand-in and the last arrival of a frame are shown at once
            return
        if self._timer.isActive():
            return
        wait = ARRIVAL_BATCH_S - (time.perf_counter() - self._last_update)
        self._timer.start(max(0, int(wait * 1000)))

    def _chunk_failed(self, key: T.ReadKey, message: str) -> None:
        plane = f" plane z={key[2]}" if len(key) == 3 else ""
        self.tileFailed.emit(f"level {key[0]} chunk {key[1]}{plane}: {message}")
        self.schedule()

    # --- inspection helpers (status bar, tests, smoke test) ---------------------------------------------------
    def shown_tiles(self) -> dict[T.TileKey, np.ndarray]:
        """Raw data of every tile on screen."""
        return {t.key: t.raw for t in self._tiles.values()}

    def item_for(self, key: T.TileKey) -> pg.ImageItem | None:
        """The ImageItem showing tile ``key`` (None if it is not on screen)."""
        t = self._tiles.get(P.position(key))
        return t.item if t is not None and t.key == key else None

    def is_idle(self) -> bool:
        """True when the target frame is complete and nothing is loading."""
        return self.complete and self.display is not None and (self.loader is None or self.loader.idle()) \
            and not self._timer.isActive()

    def value_at(self, row: float, col: float) -> tuple[Any, int] | None:
        """(value, level) under level-0 point (row, col) from the finest cached level, or None."""
        if self.doc is None or self.loader is None or self.plane is None:
            return None
        h, w = self.plane_shape()
        if not (0 <= row < h and 0 <= col < w):
            return None
        plane, doc = self.plane, self.doc
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
            for e in reversed(self.edits):
                pt = {plane.row: int(row), plane.col: int(col)}
                if plane.slice_axis:
                    pt[plane.slice_axis] = plane.slice_index
                if all(e.region[doc.axes.index(k)].start <= v2 < e.region[doc.axes.index(k)].stop for k, v2 in pt.items()):
                    if e.mask is None or bool(e.mask[tuple(
                            0 if e.mask.shape[ax] == 1 else pt[a2] - e.region[ax].start
                            for ax, a2 in enumerate(doc.axes))]):
                        v = e.value
                        break
            return (v.item() if hasattr(v, "item") else v), li
        return None

    def _peek_values(self, li: int, k: tuple[int, ...], idx: list[Any]) -> Any:
        """Value(s) at level index ``idx`` (None: all channels) from chunk ``k`` of level ``li``, whole or plane."""
        assert self.doc is not None and self.loader is not None
        lev = self.doc.levels[li]
        local: list[Any] = [slice(None) if i is None else i - c * kk for i, c, kk in zip(idx, lev.chunks, k)]
        a = self.loader.cache.peek((li, k))
        if a is None and self._by_plane(li):
            zi = self.doc.axes.index("z")
            a = self.loader.cache.peek((li, k, idx[zi]))
            del local[zi]
        return None if a is None else a[tuple(local)]

    def _mouse_moved(self, pos: QPointF) -> None:
        if self.doc is None or self.plane is None:
            return
        p = self.vb.mapSceneToView(pos)
        info: dict[str, Any] = {"row": p.y(), "col": p.x(), "plane": self.plane, "level": self.level,
                                "value": self.value_at(p.y(), p.x())}
        self.cursorInfo.emit(info)

    def _update_scale_bar(self) -> None:
        """Place and size the scale bar (only with a known spacing)."""
        if self.doc is None or self.doc.spacing is None or self.plane is None:
            self.scale_bar.hide()
            return
        sp = self.doc.spacing[self.doc.spatial_axes.index(self.plane.col)]
        px = self.vb.viewPixelSize()[0]
        self.scale_bar.move(self.width() - self.scale_bar.width() - 4, self.height() - self.scale_bar.height() - 4)
        self.scale_bar.set_scale(sp * px, self.doc.unit)

    def resizeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt naming
        """Keep the scale bar in its corner."""
        super().resizeEvent(ev)
        if hasattr(self, "scale_bar"):
            self._update_scale_bar()

    def closeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt naming
        """Stop background loading."""
        self._teardown()
        super().closeEvent(ev)
