"""The tiled pyramid view: one ImageItem per visible tile, coarse levels underneath while finer ones load."""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem, QGraphicsPathItem, QGraphicsRectItem, QWidget

from . import planner as P
from . import tiles as T
from .chunk_loader import ChunkLoader
from .contrast import DisplaySettings
from .document import Document, Edit
from .layers import HISTOGRAM_MAX_ELEMENTS, Layer, TileItem, _Tile  # noqa: F401 - re-exported
from .layers import CacheSnapshot
from .label_layer import LabelLayer, label_documents
from .measure import _UNIT_SHORT, format_length  # noqa: F401 - re-exported (scale bar, import dialog)

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

#: chunks arriving within this time are put on screen together (one repaint instead of one per chunk); the first
#: stand-in and the last arrival of a frame are shown at once. A repaint of a 3D view draws a few hundred 64x64
#: tiles and competes with the readers for the GIL: 0.2 s batches make a 1024^2 z-slice sharp ~30% sooner than 0.03 s.
ARRIVAL_BATCH_S = 0.2
#: z-slices read by plane: once a frame is complete, the planes of this many next slices are read ahead
PREFETCH_SLICES = 1
#: brick layers read ahead (whole bricks: strip-brick volumes, y/x slices) once a frame is complete: stepping
#: across a 64-slice layer boundary then finds its bricks decoded
PREFETCH_LAYERS = 1


#: how far the view zooms out: the visible extent may reach this many times the image's larger side
ZOOM_OUT = 16

#: tools whose left-button drag paints a stroke (every raw mouse move is a stroke point)
STROKE_TOOLS = ("brush", "eraser")
#: tools acting on one left click: flood fill, pick the label value under the cursor
CLICK_TOOLS = ("fill", "pick")


class EditViewBox(pg.ViewBox):
    """ViewBox that turns left-button input into edits when a tool is active: rectangle selections, brush/eraser
    strokes, polygons, clicks (fill, pick); and right-drags into window/level changes (``windowDrag``); a right
    click without motion opens pyqtgraph's menu.

    Strokes take every raw mouse move (an event filter on the scene), not pyqtgraph's drag events, which the
    scene rate-limits: a fast drag would arrive as a few points."""

    rectDrawn = Signal(QRectF)
    #: a finished brush/eraser stroke: [(x, y), ...] level-0
    brushStroke = Signal(list)
    #: a closed polygon: [(x, y), ...] level-0
    polygonDrawn = Signal(list)
    #: a left click with the fill or pick tool: (tool, x, y) level-0
    pointClicked = Signal(str, float, float)
    #: right-button drag: (dx, dy) in screen pixels from where the button went down, is start, is finish
    windowDrag = Signal(float, float, bool, bool)
    #: the tool changed (its name, None: pan)
    toolSet = Signal(object)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=True)
        #: right-drag changes window/level (False: pyqtgraph's right-drag zoom, e.g. for label images)
        self.window_level = True
        self.tool: str | None = None
        self.brush_radius = 5.0
        self._stroke: list[tuple[float, float]] = []
        self._stroking = False
        self._polygon: list[tuple[float, float]] = []
        self._band = QGraphicsRectItem()
        self._band.setPen(QPen(QColor(255, 200, 0), 0, Qt.PenStyle.DashLine))
        self._band.setZValue(1e6)
        self._band.hide()
        self.addItem(self._band, ignoreBounds=True)
        self._path = QGraphicsPathItem()  # the stroke or polygon being drawn
        self._path.setPen(QPen(QColor(255, 200, 0), 0))
        self._path.setZValue(1e6)
        self.addItem(self._path, ignoreBounds=True)
        self._outline = QGraphicsEllipseItem()  # the brush under the cursor
        self._outline.setPen(QPen(QColor(255, 255, 255, 180), 0))
        self._outline.setZValue(1e6)
        self._outline.hide()
        self.addItem(self._outline, ignoreBounds=True)
        #: the brush's (row, column) radius in level-0 pixels now (set by the edit controller), for the outline
        self.brush_radii: Callable[[], tuple[float, float]] | None = None
        self.selection: QRectF | None = None
        self._filtered: Any = None
        #: the measurement tools (mzarr_app.measure_tools): left-button drags and clicks of the tools it handles
        self.tool_handler: Any = None

    def itemChange(self, change: Any, value: Any) -> Any:  # noqa: N802 - Qt naming
        """Watch the raw mouse events of the scene this box is put in (stroke points)."""
        out = super().itemChange(change, value)
        if change == QGraphicsItem.GraphicsItemChange.ItemSceneHasChanged:
            scene = self.scene()
            if scene is not None and scene is not self._filtered:
                scene.installEventFilter(self)
                self._filtered = scene
        return out

    def eventFilter(self, obj: Any, ev: Any) -> bool:  # noqa: N802 - Qt naming
        """Stroke points from every mouse press/move/release on the scene (never consumes the event)."""
        t = ev.type()
        if self.tool not in STROKE_TOOLS:
            self._stroking = False
            return False
        if t == QEvent.Type.GraphicsSceneMouseMove:
            self._move_outline(ev.scenePos())
        if t in (QEvent.Type.GraphicsSceneMousePress, QEvent.Type.GraphicsSceneMouseDoubleClick):
            if ev.button() == Qt.MouseButton.LeftButton and self.sceneBoundingRect().contains(ev.scenePos()):
                self._stroking = True
                self._stroke = [self._view_point(ev.scenePos())]
                self._show_path(self._stroke, False)
        elif t == QEvent.Type.GraphicsSceneMouseMove and self._stroking:
            p = self._view_point(ev.scenePos())
            self._stroke.append(p)
            path = self._path.path()  # one segment more (not the whole stroke again)
            path.lineTo(QPointF(*p))
            self._path.setPath(path)
        elif t == QEvent.Type.GraphicsSceneMouseRelease and self._stroking \
                and ev.button() == Qt.MouseButton.LeftButton:
            self._stroke.append(self._view_point(ev.scenePos()))
            stroke, self._stroke, self._stroking = self._stroke, [], False
            self._path.hide()
            self.brushStroke.emit(stroke)
        return False

    def _move_outline(self, scene_pos: Any) -> None:
        """Centre the brush outline on the cursor (hidden outside the box or without a radius source)."""
        if self.brush_radii is None or not self.sceneBoundingRect().contains(scene_pos):
            self._outline.hide()
            return
        x, y = self._view_point(scene_pos)
        ry, rx = self.brush_radii()
        self._outline.setRect(QRectF(x - rx, y - ry, 2 * rx, 2 * ry))
        self._outline.show()

    def _view_point(self, scene_pos: Any) -> tuple[float, float]:
        p = self.mapSceneToView(scene_pos)
        return (float(p.x()), float(p.y()))

    def _show_path(self, points: list[tuple[float, float]], closed: bool) -> None:
        """Draw the stroke or polygon being made (a thin line over the image)."""
        path = QPainterPath()
        if points:
            path.moveTo(QPointF(*points[0]))
            for p in points[1:]:
                path.lineTo(QPointF(*p))
            if closed:
                path.closeSubpath()
        self._path.setPath(path)
        self._path.show()

    def set_tool(self, tool: str | None) -> None:
        """Switch tool, dropping a half-drawn stroke or polygon."""
        self.tool = tool
        self._stroking, self._stroke = False, []
        self._outline.hide()
        self.cancel_polygon()
        self.toolSet.emit(tool)

    @property
    def polygon_in_progress(self) -> bool:
        """A polygon is being drawn (vertices placed, not closed yet)."""
        return bool(self._polygon)

    def cancel_polygon(self) -> None:
        """Forget the polygon being drawn."""
        self._polygon = []
        self._path.hide()

    def finish_polygon(self) -> bool:
        """Close the polygon being drawn (``polygonDrawn``) if it has at least 3 vertices."""
        pts, self._polygon = self._polygon, []
        self._path.hide()
        if len(pts) < 3:
            return False
        self.polygonDrawn.emit(pts)
        return True

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802 - Qt naming
        """Left clicks: fill / pick at the point; polygon vertices (a double click, or a click on the first
        vertex, closes it); stroke tools handle their own clicks (a dab); measurement tools' clicks go to
        ``tool_handler``."""
        if ev.button() == Qt.MouseButton.LeftButton and self.tool is not None:
            ev.accept()
            x, y = self._view_point(ev.scenePos())
            if self.tool_handler is not None and self.tool_handler.handles(self.tool):
                self.tool_handler.click((x, y), bool(ev.double()))
            elif self.tool in CLICK_TOOLS:
                self.pointClicked.emit(self.tool, x, y)
            elif self.tool == "polygon":
                if self._polygon and (ev.double() or self._near_first(ev.scenePos())):
                    self.finish_polygon()
                    return
                self._polygon.append((x, y))
                self._show_path(self._polygon, True)
            return
        super().mouseClickEvent(ev)

    def _near_first(self, scene_pos: Any) -> bool:
        """The scene point is within 6 screen pixels of the polygon's first vertex (and it has 3 vertices)."""
        if len(self._polygon) < 3:
            return False
        first = self.mapViewToScene(QPointF(*self._polygon[0]))
        return (first - scene_pos).manhattanLength() <= 6

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - Qt naming
        """Draw a selection with the left button (rectangle tool); other tools keep the left button (no pan);
        pan without a tool. A right-button drag changes window/level (``windowDrag``)."""
        if ev.button() == Qt.MouseButton.RightButton and self.window_level:
            ev.accept()
            d = ev.scenePos() - ev.buttonDownScenePos()
            self.windowDrag.emit(float(d.x()), float(d.y()), bool(ev.isStart()), bool(ev.isFinish()))
            return
        if self.tool is None or ev.button() != Qt.MouseButton.LeftButton:
            return super().mouseDragEvent(ev, axis)
        if self.tool_handler is not None and self.tool_handler.handles(self.tool):
            ev.accept()
            p0, p1 = self.mapSceneToView(ev.buttonDownScenePos()), self.mapSceneToView(ev.scenePos())
            self.tool_handler.drag((p0.x(), p0.y()), (p1.x(), p1.y()), bool(ev.isStart()), bool(ev.isFinish()))
            return
        ev.accept()
        if self.tool == "rect":
            p0 = self.mapSceneToView(ev.buttonDownScenePos())
            p1 = self.mapSceneToView(ev.scenePos())
            r = QRectF(p0, p1).normalized()
            self._band.setRect(r)
            self._band.show()
            if ev.isFinish():
                self.set_selection(r)
                self.rectDrawn.emit(r)

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


class TiledImageView(pg.GraphicsView):
    """Shows a :class:`Document` plane by streaming the chunks its zoom needs from the pyramid.

    The view holds a list of :class:`~mzarr_app.layers.Layer` (today one: the image, ``layers[0]``), the shared
    plane, the view rectangle and the scale bar. Each update plans every layer's frame with
    :func:`mzarr_app.planner.plan_frame` and applies the plans. The image layer's state is also reachable under
    the view's historical names (``doc``, ``loader``, ``display``, ``level``, ``target``, ...).
    """

    levelChanged = Signal(int)
    frameComplete = Signal()
    cursorInfo = Signal(object)
    autoDisplayReady = Signal(object)
    tileFailed = Signal(str)
    #: the label layers changed (a document was opened or closed)
    labelsChanged = Signal()

    def __init__(self, parent: QWidget | None = None, cache_mb: float = 512, threads: int | None = None) -> None:
        super().__init__(parent, background="k")
        self.vb = EditViewBox()
        self.setCentralItem(self.vb)
        self.vb.sigRangeChanged.connect(self._range_changed)
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.cache_mb = cache_mb
        self.threads = threads
        self.layers: list[Layer] = []
        self._plane: T.Plane | None = None
        self._edits: list[Edit] = []
        self.frames = 0
        self.last_complete_time = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._update)
        self._last_update = 0.0
        #: when the pending batch of arrivals is due on screen (None: no batch pending), and whether it was put
        #: off once already because the reads should be done by then
        self._batch_due: float | None = None
        self._batch_put_off = False
        self._step_dir = 1
        self.scale_bar = ScaleBar(self)
        self.scale_bar.hide()
        #: display of new label layers: overlay opacity and contour (else filled)
        self.label_opacity = 0.5
        self.label_contour = False
        #: draw pixels at their physical aspect (the plane's row and column spacing) when the file has a spacing
        self.physical_aspect = True
        #: brick layers read ahead once a frame is sharp (None: ``PREFETCH_LAYERS``; the orthogonal layout sets 0)
        self.prefetch_layers: int | None = None

    # --- the image layer under the view's historical names ------------------------------------------------------
    @property
    def image(self) -> Layer | None:
        """The image layer (the first), or None without a document."""
        return self.layers[0] if self.layers else None

    @property
    def doc(self) -> Document | None:
        return self.layers[0].doc if self.layers else None

    @property
    def loader(self) -> ChunkLoader | None:
        return self.layers[0].loader if self.layers else None

    @property
    def display(self) -> DisplaySettings | None:
        return self.layers[0].display if self.layers else None

    @display.setter
    def display(self, settings: DisplaySettings | None) -> None:
        if self.layers:
            self.layers[0].display = settings

    @property
    def edits(self) -> list[Edit]:
        """Pending edits of the image, drawn over it."""
        return self._edits

    @property
    def plane(self) -> T.Plane | None:
        return self._plane

    @plane.setter
    def plane(self, plane: T.Plane | None) -> None:
        self._plane = plane
        for layer in self.layers:
            layer.plane = None if plane is None else layer.plane_of(plane)

    @property
    def level(self) -> int:
        """The image layer's level on screen (-1: none)."""
        return self.layers[0].level if self.layers else -1

    @property
    def target(self) -> list[T.TileKey]:
        return self.layers[0].target if self.layers else []

    @property
    def requested(self) -> list[T.ReadKey]:
        return self.layers[0].requested if self.layers else []

    @property
    def complete(self) -> bool:
        """Every layer's frame is on screen."""
        return bool(self.layers) and all(layer.complete for layer in self.layers)

    @property
    def covered(self) -> bool:
        """Every layer covers the view (at least with its coarse stand-in)."""
        return bool(self.layers) and all(layer.covered for layer in self.layers)

    @property
    def _tiles(self) -> dict[T.TileKey, _Tile]:
        return self.layers[0].tiles if self.layers else {}

    @property
    def _hist_keys(self) -> list[T.ChunkKey]:
        return self.layers[0].hist_keys if self.layers else []

    @property
    def _hist_level(self) -> int:
        return self.layers[0].hist_level if self.layers else -1

    @property
    def hist_data(self) -> np.ndarray | None:
        return self.layers[0].hist_data if self.layers else None

    @property
    def hist_channels(self) -> list[np.ndarray] | None:
        return self.layers[0].hist_channels if self.layers else None

    # --- document / plane / display -----------------------------------------------------------------------
    def _start_layer(self, layer: Layer) -> None:
        layer.start_loading(self.cache_mb, self.threads, self, self._chunk_loaded, self._chunk_failed)
        image = self.layers[0]
        if layer is not image and layer.loader is not None and image.loader is not None:
            layer.loader.follow(image.loader)  # an overlay's reads start once the image's are under way
        if layer.probe is not None:
            layer.probe.found.connect(self._value_found)

    def set_document(self, doc: Document | None, plane: T.Plane | None = None) -> None:
        """Show ``doc`` (fit to the window) with ``plane`` (default: first slice / all channels)."""
        self._teardown()
        self.layers = []
        if doc is None:
            return
        image = Layer(doc, self.vb, "image", 0.0, self._edits)
        self.layers = [image]
        self._start_layer(image)
        label_docs, errors = label_documents(doc)
        for i, ld in enumerate(label_docs):  # each label image above the image, later ones on top
            layer = LabelLayer(ld, self.vb, 2000.0 * (i + 1), self.label_opacity, self.label_contour)
            self.layers.append(layer)
            self._start_layer(layer)
        for msg in errors:
            self.tileFailed.emit(msg)
        if plane is None:
            try:
                attrs = doc.attrs()
            except Exception:  # unreadable attributes: the stored order
                attrs = {}
            plane = T.default_plane(doc.axes, channels=None, attrs=attrs)  # a patient image: as radiologists read
        self.plane = plane
        image.display = None
        image.start_histogram()
        self.labelsChanged.emit()
        self._apply_aspect()
        self.fit()
        self.schedule()

    def _teardown(self) -> None:
        """Drop tiles and stop the loaders."""
        for layer in self.layers:
            layer.teardown()

    def stop_loading(self) -> None:
        """Stop background reads and drop tiles (keeps document, plane, display and view range)."""
        rng = self.vb.viewRect()
        self._teardown()
        self._saved_range = rng

    def close_document(self) -> None:
        """Stop loading and forget the document (does not close the file)."""
        self._teardown()
        self.layers = []
        self.labelsChanged.emit()

    def reload(self) -> None:
        """Drop every cached chunk and tile (after the file changed) and load again."""
        if self.doc is None:
            return
        rng = getattr(self, "_saved_range", None) or self.vb.viewRect()
        self._saved_range = None
        self._teardown()
        for layer in self.layers:
            refresh = getattr(layer.doc, "refresh", None)  # a label image: open it again in the reopened file
            if refresh is not None:
                try:
                    refresh()
                except Exception as exc:
                    self.tileFailed.emit(f"label image {layer.name}: {type(exc).__name__}: {exc}")
            self._start_layer(layer)
        self.plane = self._plane
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
            for layer in self.layers:
                layer.clear_tiles(lambda k, t: True)
            self._apply_aspect()
            self.fit()
        self.schedule()

    def set_display(self, settings: DisplaySettings) -> None:
        """New contrast/colour settings of the image: re-render every tile of it on screen."""
        if self.layers:
            self.layers[0].display = settings
            self.layers[0].render_all()
        self.schedule()

    def set_edits(self, edits: Sequence[Edit]) -> None:
        """Pending edits to draw: those of the image over it, those of a label image in its layer."""
        self._edits = [e for e in edits if e.target is None]
        for i, layer in enumerate(self.layers):
            mine = self._edits if i == 0 else [e for e in edits if e.target is not None and e.target == layer.name]
            if i == 0 or mine or layer.edits:
                layer.edits = mine
                layer.render_all()

    def set_cache_mb(self, mb: float) -> None:
        """Change the chunk cache budget."""
        self.cache_mb = mb
        for layer in self.layers:
            layer.set_cache_mb(mb)

    # --- geometry ------------------------------------------------------------------------------------------
    def plane_shape(self) -> tuple[int, int]:
        """(rows, cols) of the displayed plane at level 0."""
        assert self.doc is not None and self.plane is not None
        return (self.doc.shape[self.doc.axes.index(self.plane.row)], self.doc.shape[self.doc.axes.index(self.plane.col)])

    def has_spacing(self) -> bool:
        """The document records a spacing (physical aspect and units are possible)."""
        return self.doc is not None and self.doc.spacing is not None

    def plane_spacing(self) -> tuple[float, float] | None:
        """(row, column) spacing of the displayed plane in the file's unit, or None without a spacing."""
        doc, plane = self.doc, self.plane
        if doc is None or plane is None or doc.spacing is None:
            return None
        try:
            sr = float(doc.spacing[doc.spatial_axes.index(plane.row)])
            sc = float(doc.spacing[doc.spatial_axes.index(plane.col)])
        except (ValueError, IndexError):
            return None
        if not (sr > 0 and sc > 0 and math.isfinite(sr) and math.isfinite(sc)):
            return None
        return sr, sc

    def aspect_ratio(self) -> float:
        """The ViewBox's locked aspect: pyqtgraph's ratio is x scale / y scale (screen pixels per level-0 column
        over screen pixels per level-0 row), so a physical plane uses column spacing / row spacing; 1 (square
        pixels) with the voxel aspect or without a spacing."""
        sp = self.plane_spacing() if self.physical_aspect else None
        return 1.0 if sp is None else sp[1] / sp[0]

    def _apply_aspect(self) -> None:
        self.vb.setAspectLocked(True, ratio=self.aspect_ratio())
        self._apply_orientation()

    def _apply_orientation(self) -> None:
        """Draw a patient image's plane as radiologists read it (superior or anterior up, the patient's right on
        the left: ``mzarr_core.display.radiological_flips``); other images row 0 at the top, column 0 at the left."""
        from mzarr_core.display import radiological_flips

        doc, plane = self.doc, self.plane
        up = left = False
        if doc is not None and plane is not None:
            try:
                attrs = doc.attrs()
            except Exception:  # unreadable attributes: the stored order
                attrs = {}
            up, left = radiological_flips(attrs, doc.axes, plane.row, plane.col)
        self.vb.invertY(not up)
        self.vb.invertX(left)

    def set_physical_aspect(self, on: bool) -> None:
        """Draw pixels at their physical aspect (True) or square (False), keeping the centre and the column
        scale."""
        on = bool(on)
        if on == self.physical_aspect:
            return
        self.physical_aspect = on
        if self.doc is None or self.plane is None:
            return
        r = self.vb.viewRect()
        size = self.vb.size()
        self._apply_aspect()
        self._set_limits()
        bw, bh = max(1.0, size.width()), max(1.0, size.height())
        h = bh * self.aspect_ratio() * r.width() / bw
        c = r.center()
        self.vb.setRange(QRectF(r.left(), c.y() - h / 2, r.width(), h), padding=0)
        self._update_scale_bar()
        self.schedule()

    def _set_limits(self) -> None:
        """Zoom out until the image is a small thumbnail in the middle (ZOOM_OUT x its larger side, measured at
        the drawn aspect), not just 3x."""
        h, w = self.plane_shape()
        a = self.aspect_ratio()  # a row is drawn 1/a times as tall as a column is wide
        far_x = ZOOM_OUT * max(w, h / a)
        far_y = ZOOM_OUT * max(w * a, h)
        self.vb.setLimits(xMin=w / 2 - far_x / 2, xMax=w / 2 + far_x / 2, yMin=h / 2 - far_y / 2,
                          yMax=h / 2 + far_y / 2, minXRange=4 * min(1.0, 1 / a), minYRange=4 * min(1.0, a),
                          maxXRange=far_x, maxYRange=far_y)

    def fit(self) -> None:
        """Show the whole plane."""
        if self.doc is None:
            return
        h, w = self.plane_shape()
        self._set_limits()
        self.vb.setRange(QRectF(0, 0, w, h), padding=0)

    def zoom(self, factor: float, center: QPointF | None = None) -> None:
        """Zoom in by ``factor`` (>1) or out (<1) around ``center`` (default: view centre)."""
        c = center or self.vb.viewRect().center()
        self.vb.scaleBy((1 / factor, 1 / factor), center=c)

    def pan(self, dx: float, dy: float) -> None:
        """Move the view by (dx, dy) level-0 pixels."""
        self.vb.translateBy(x=dx, y=dy)

    def actual_size(self) -> None:
        """One level-0 pixel per device pixel around the current centre, the view's corner on a whole pixel."""
        r = self.vb.viewRect()
        size = self.vb.size()
        dpr = self.devicePixelRatioF() or 1.0
        # image pixels across the view at 1:1 device pixels along the columns (rows follow the locked aspect)
        w, h = size.width() / dpr, size.height() / dpr * self.aspect_ratio()
        x0, y0 = round(r.center().x() - w / 2), round(r.center().y() - h / 2)
        self.vb.setRange(QRectF(x0, y0, w, h), padding=0)

    def show_rect(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Make the level-0 rectangle fill the view."""
        self.vb.setRange(QRectF(x0, y0, x1 - x0, y1 - y0), padding=0)

    def visible_rect(self) -> tuple[float, float, float, float]:
        """Visible part of the plane (x0, y0, x1, y1) in level-0 coordinates, clipped to the image."""
        r = self.vb.viewRect()
        h, w = self.plane_shape()
        return (max(0.0, r.left()), max(0.0, r.top()), min(float(w), r.right()), min(float(h), r.bottom()))

    def screen_pixel(self) -> float:
        """Size of one device pixel in level-0 pixels (square pixels: the larger of the two axes, as the view may
        be a hair off its locked aspect; physical aspect: the finer axis, so the stretched one stays sharp)."""
        r = self.vb.viewRect()
        size = self.vb.size()
        px = (r.width() / max(1.0, size.width()), r.height() / max(1.0, size.height()))
        dpr = self.devicePixelRatioF() or 1.0
        if abs(self.aspect_ratio() - 1.0) < 1e-6:
            return max(px[0], px[1]) / dpr
        return min(px[0], px[1]) / dpr

    # --- scheduling ----------------------------------------------------------------------------------------
    def schedule(self) -> None:
        """Coalesce an update on the next event-loop turn."""
        self._batch_due = None
        if not self._timer.isActive() or self._timer.remainingTime() > 0:
            self._timer.start(0)

    def _range_changed(self, *args: Any) -> None:
        self.schedule()
        self._update_scale_bar()

    def _update(self) -> None:
        """Plan every layer's frame (``planner.plan_frame``) and apply the plans: loader requests, tiles."""
        if not self.layers or self.plane is None or any(layer.loader is None for layer in self.layers):
            return
        self._last_update = time.perf_counter()
        self._batch_due = None
        self.vb.updateMatrix()
        rect, spx = self.visible_rect(), self.screen_pixel()
        was_complete, drawn, again = self.complete, False, False
        for i, layer in enumerate(self.layers):
            assert layer.loader is not None and layer.plane is not None
            if not getattr(layer, "visible", True):  # a hidden label image: nothing drawn or read
                layer.clear_tiles(lambda k, t: True)
                layer.target, layer.complete, layer.covered = [], True, True
                continue
            cache = CacheSnapshot(layer.loader.cache)
            layers_ahead = PREFETCH_LAYERS if self.prefetch_layers is None else self.prefetch_layers
            plan = P.plan_frame(layer.frame_request(layer.plane, rect, spx, self._step_dir, cache, PREFETCH_SLICES,
                                                    layers_ahead))
            if plan.empty:
                layer.clear_tiles(lambda k, t: True)
                layer.target, layer.complete = [], True
                continue
            if plan.level != layer.level:
                layer.level = plan.level
                if i == 0:
                    self.levelChanged.emit(plan.level)
            keys: list[T.ReadKey] = list(layer.hist_keys) if layer.display is None else []
            layer.requested = layer.loader.request(keys + list(plan.reads) + list(plan.prefetch))
            ready, computed = layer.finish_histogram()
            if computed and i == 0:
                self.autoDisplayReady.emit(layer.display)
            if not ready:
                return
            complete, missed = layer.apply(plan, cache)
            layer.complete = complete
            drawn = True
            # one more update queues the read-ahead (or retries a tile whose data went missing)
            again |= plan.reschedule or missed
        if drawn and self.complete and not was_complete:
            self.frames += 1
            self.last_complete_time = time.perf_counter()
            self.frameComplete.emit()
        if again:
            self.schedule()

    def _chunk_loaded(self, key: T.ReadKey) -> None:
        """Show arrivals in batches: at most one update (and repaint) per ``ARRIVAL_BATCH_S`` while more are due.
        A batch is put off once by ``ARRIVAL_BATCH_S`` when the loaders' pace says every read will be done by then
        (the last arrival is shown at once: a repaint in between would only slow the readers down)."""
        if not self.covered or all(layer.idle() for layer in self.layers):
            self._batch_due = None
            self._timer.start(0)  # the first stand-in and the last arrival of a frame are shown at once
            return
        now = time.perf_counter()
        if self._timer.isActive():
            if self._batch_due is None or self._batch_put_off:
                return  # an update is due anyway (or this batch was put off already)
        else:
            self._batch_due, self._batch_put_off = self._last_update + ARRIVAL_BATCH_S, False
        if self._reads_done_within(max(0.0, self._batch_due - now) + ARRIVAL_BATCH_S):
            self._batch_due += ARRIVAL_BATCH_S  # should the pace drop, shown then
            self._batch_put_off = True
        elif self._timer.isActive():
            return
        self._timer.start(max(0, int((self._batch_due - now) * 1000)))

    def _reads_done_within(self, seconds: float) -> bool:
        """Whether every layer's loader should have read all it has to within ``seconds`` (ChunkLoader.eta)."""
        etas = [layer.loader.eta() if layer.loader is not None else 0.0 for layer in self.layers]
        return all(e is not None and e < seconds for e in etas)

    def _chunk_failed(self, key: T.ReadKey, message: str) -> None:
        plane = f" plane z={key[2]}" if len(key) == 3 else ""
        self.tileFailed.emit(f"level {key[0]} chunk {key[1]}{plane}: {message}")
        self.schedule()

    # --- label images ----------------------------------------------------------------------------------------
    @property
    def label_layers(self) -> list[LabelLayer]:
        """The label layers, bottom to top."""
        return [layer for layer in self.layers if isinstance(layer, LabelLayer)]

    def label_layer(self, name: str) -> LabelLayer | None:
        """The label layer of label image ``name`` (None if there is none)."""
        return next((layer for layer in self.label_layers if layer.name == name), None)

    def set_label_visible(self, name: str, visible: bool) -> None:
        """Show or hide label image ``name`` (a hidden one is neither drawn nor read)."""
        layer = self.label_layer(name)
        if layer is not None and layer.visible != bool(visible):
            layer.set_visible(visible)
            layer.complete = False
            self.schedule()

    def set_label_hidden_values(self, name: str, values: Sequence[int]) -> None:
        """Label values of label image ``name`` not to draw."""
        layer = self.label_layer(name)
        if layer is not None:
            layer.set_hidden_values(values)

    def set_label_opacity(self, opacity: float) -> None:
        """Overlay opacity (0..1) of every label layer."""
        self.label_opacity = float(min(1.0, max(0.0, opacity)))
        for layer in self.label_layers:
            layer.set_opacity(self.label_opacity)

    def set_label_contour(self, contour: bool) -> None:
        """Draw label images as contours (True) or filled (False)."""
        self.label_contour = bool(contour)
        for layer in self.label_layers:
            layer.set_contour(self.label_contour)

    def label_values(self, row: float, col: float) -> list[dict[str, Any]]:
        """Per visible label image: ``{"name", "value", "level", "exact", "label"}`` under level-0 point (row, col)
        (``label``: the value's name from ``properties``); the level-0 value is read in the background when only a
        coarser level is cached (``cursorInfo`` follows when it arrives)."""
        out: list[dict[str, Any]] = []
        for layer in self.label_layers:
            if not layer.visible or layer.loader is None or layer.plane is None:
                continue
            coarse = layer.value_at(row, col)
            if coarse is not None and coarse[1] == 0:
                value, level, exact = coarse[0], 0, True
            else:
                known, v = layer.full_value(row, col)
                if known:
                    value, level, exact = v, 0, True
                else:
                    layer.request_full_value(row, col)
                    if coarse is None:
                        continue
                    value, level, exact = coarse[0], coarse[1], False
            out.append({"name": layer.name, "value": value, "level": level, "exact": exact,
                        "label": layer.doc.name_of(value)})  # type: ignore[attr-defined]
        return out

    # --- inspection helpers (status bar, tests, smoke test) ---------------------------------------------------
    def shown_tiles(self) -> dict[T.TileKey, np.ndarray]:
        """Raw data of every tile of the image on screen."""
        return {t.key: t.raw for t in self._tiles.values()}

    def item_for(self, key: T.TileKey) -> pg.ImageItem | None:
        """The ImageItem showing tile ``key`` of the image (None if it is not on screen)."""
        t = self._tiles.get(P.position(key))
        return t.item if t is not None and t.key == key else None

    def is_idle(self) -> bool:
        """True when every layer's frame is complete and nothing is loading."""
        return self.complete and all(layer.display is not None and layer.idle() for layer in self.layers) \
            and not self._timer.isActive()

    def value_at(self, row: float, col: float) -> tuple[Any, int] | None:
        """(value, level) of the image under level-0 point (row, col) from the finest cached level, or None."""
        if self.doc is None or self.loader is None or self.plane is None:
            return None
        return self.layers[0].value_at(row, col)

    def cursor_value(self, row: float, col: float) -> tuple[tuple[Any, int] | None, bool]:
        """((value, level), exact) of the image under level-0 point (row, col) for the status bar.

        Exact (level 0) when level 0 is cached or the pixel was read already; otherwise the finest cached level's
        value, approximate, while the level-0 pixel is read in the background (``cursorInfo`` is emitted again
        when it arrives, if the cursor is still on that pixel)."""
        image = self.image
        if image is None or self.loader is None or self.plane is None:
            return None, False
        coarse = image.value_at(row, col)
        if coarse is not None and coarse[1] == 0:
            return coarse, True
        known, v = image.full_value(row, col)
        if known:
            return (v, 0), True
        image.request_full_value(row, col)
        return coarse, False

    def _cursor_info(self, row: float, col: float) -> dict[str, Any]:
        value, exact = self.cursor_value(row, col)
        return {"row": row, "col": col, "plane": self.plane, "level": self.level, "value": value,
                "exact": exact, "labels": self.label_values(row, col)}

    def _mouse_moved(self, pos: QPointF) -> None:
        if self.doc is None or self.plane is None:
            return
        p = self.vb.mapSceneToView(pos)
        self._cursor_at = (p.y(), p.x())
        self.cursorInfo.emit(self._cursor_info(p.y(), p.x()))

    def _value_found(self, key: Any) -> None:
        """A full-resolution value arrived: refresh the status bar if the cursor is still on that pixel."""
        at = getattr(self, "_cursor_at", None)
        image = self.image
        if at is None or image is None or self.plane is None or image.probe_key(*at) != key:
            if at is None or not any(layer.probe_key(*at) == key for layer in self.label_layers):
                return
        self.cursorInfo.emit(self._cursor_info(*at))

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
