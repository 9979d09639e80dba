"""The measurement and annotation tools of the main window: drawing points, rulers, rectangles, ellipses and
polygons on the view, their measurements from full-resolution pixels (computed in the background, with a cancellable
progress dialog on big regions), the Annotations dock, File > Export/Import annotations, and saving them in the file.

Geometry lives in :mod:`mzarr_app.measure` (Qt-free) and the library (:mod:`mzarr_core.annotations`,
:mod:`mzarr_core.regions`); this module is the Qt side. The main window holds one :class:`MeasureTools`.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainterPath, QPen, QUndoCommand
from PySide6.QtWidgets import QDockWidget, QFileDialog, QGraphicsPathItem, QProgressDialog

from mzarr_core import Mzarr
from mzarr_core.annotations import Annotation, check_annotations, plane_axes, read_geojson, write_geojson
from mzarr_core.regions import line_profile, region_stats

from . import measure as M
from .panels.annotations import DEFAULT_COLOR, AnnotationsPanel

if TYPE_CHECKING:
    from .document import Document
    from .window import MainWindow

GEOJSON_FILTER = "GeoJSON (*.geojson *.json);;All files (*)"
Z_ANNOTATIONS = 1e5  # above the image and label tiles


class _Cancelled(Exception):
    """Raised from a measurement's progress callback when the user cancels."""


class _Job(QObject):
    """One measurement running in a background thread; reports through queued signals."""

    progressed = Signal(int, int)
    done = Signal(object, object)  # the annotation, its result (RegionStats / LineProfile) or an exception

    def __init__(self, path: str, annotation: Annotation) -> None:
        super().__init__()
        self.path = path  # read through its own handle without a cache: the view's cached tiles stay
        self.annotation = annotation
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, name="mzarr-measure", daemon=True)

    def _progress(self, done: int, total: int) -> None:
        if self.cancelled:
            raise _Cancelled()
        self.progressed.emit(done, total)

    def _run(self) -> None:
        a = self.annotation
        try:
            with Mzarr(self.path, cache_bytes=0) as image:
                if a.kind == "line":
                    result: Any = line_profile(image, a, progress=self._progress)
                else:
                    result = region_stats(image, a, progress=self._progress)
        except BaseException as exc:  # noqa: BLE001 - reported in the panel, never lost in a thread
            result = exc
        self.done.emit(a, result)


class _Change(QUndoCommand):
    """One change of the annotations (add, rename, class, delete, import) on the window's undo stack."""

    def __init__(self, tools: "MeasureTools", before: list[Annotation], after: list[Annotation],
                 select: str | None, text: str) -> None:
        super().__init__(text)
        self.tools, self.before, self.after, self.select = tools, before, after, select

    def redo(self) -> None:  # noqa: D401 - Qt override
        self.tools._set_items(self.after, self.select)

    def undo(self) -> None:  # noqa: D401 - Qt override
        self.tools._set_items(self.before, None)


class MeasureTools(QObject):
    """Owns the annotations of the open file (pending until Save), their drawing and their measurements."""

    #: a measurement finished (the annotation's id); tests wait on it
    measured = Signal(str)

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.w = window
        self.view = window.view
        self.doc: Document | None = None
        self.items: list[Annotation] = []
        self._saved: list[Annotation] = []  # as in the file: dirty while the list differs
        self.results: dict[str, Any] = {}  # id -> RegionStats | LineProfile | an error message
        self.job: _Job | None = None
        self.progress_dialog: QProgressDialog | None = None
        self._graphics: list[tuple[Any, Any]] = []  # (view box, item) of every drawn annotation
        self._polygon: list[tuple[float, float]] = []
        self.panel = AnnotationsPanel()
        dock = QDockWidget("Annotations", window)
        dock.setObjectName("dockAnnotations")
        dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        if "Editing" in window.docks:
            window.tabifyDockWidget(window.docks["Editing"], dock)
            window.docks["Editing"].raise_()
        window.docks["Annotations"] = dock
        self._rubber = QGraphicsPathItem()
        self._rubber.setPen(QPen(QColor(*DEFAULT_COLOR), 0, Qt.PenStyle.DashLine))
        self._rubber.setZValue(Z_ANNOTATIONS + 1)
        self._rubber.hide()
        self.view.vb.addItem(self._rubber, ignoreBounds=True)
        self._rubber_text = pg.TextItem("", color=DEFAULT_COLOR, anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 150))
        self._rubber_text.setZValue(Z_ANNOTATIONS + 2)
        self._rubber_text.hide()
        self.view.vb.addItem(self._rubber_text, ignoreBounds=True)
        self.view.vb.tool_handler = self
        self._make_actions()
        self.panel.toolSelected.connect(self.set_tool)
        self.panel.selectionChanged.connect(self._selected)
        self.panel.renamed.connect(self.rename)
        self.panel.deleteRequested.connect(self.delete)
        self.panel.classChanged.connect(self.set_class)
        self.panel.jumpRequested.connect(self.jump)
        window.editing.toolChanged.connect(self._editing_tool)
        window.slicing.planeChanged.connect(lambda _p: self._plane_changed())
        layout = getattr(window, "layout_views", None)  # orthogonal views: each shows its plane's annotations
        if layout is not None:
            layout.positionChanged.connect(lambda _p: self.redraw())
            layout.layoutChanged.connect(lambda _m: QTimer.singleShot(0, self.redraw))

    def _make_actions(self) -> None:
        w = self.w
        menu = w.menuBar().addMenu("&Measure")
        keys = {"measure_point": "Shift+P", "measure_line": "Shift+M", "measure_rect": "Shift+R",
                "measure_ellipse": "Shift+E", "measure_polygon": "Shift+G"}
        for tool, text in (("measure_point", "&Point"), ("measure_line", "&Ruler (line, profile)"),
                           ("measure_rect", "&Rectangle region"), ("measure_ellipse", "&Ellipse region"),
                           ("measure_polygon", "Pol&ygon region")):
            w._action(menu, text, lambda t=tool: self.set_tool(t), keys[tool], f"act_{tool}")
        menu.addSeparator()
        menu.addAction(w.docks["Annotations"].toggleViewAction())
        file_menu = w.menuBar().actions()[0].menu()
        before = next((a for a in file_menu.actions() if a.objectName() == "actClose"), None)
        self.act_export = w._action(file_menu, "E&xport annotations (GeoJSON)…", self.export_dialog, None,
                                    "actExportAnnotations")
        self.act_import = w._action(file_menu, "I&mport annotations (GeoJSON)…", self.import_dialog, None,
                                    "actImportAnnotations")
        if before is not None:  # next to Save, above Close
            for a in (self.act_export, self.act_import):
                file_menu.removeAction(a)
                file_menu.insertAction(before, a)
        self._enable_file_actions()

    def _enable_file_actions(self) -> None:
        self.act_export.setEnabled(self.doc is not None)
        self.act_import.setEnabled(self.doc is not None)

    # --- document ----------------------------------------------------------------------------------------------
    def set_document(self, doc: "Document | None") -> None:
        """Show the annotations stored in ``doc`` (none for None); pending ones of the previous file are dropped."""
        self._stop_job()
        self.doc = doc
        self.items, self.results = [], {}
        self._polygon = []
        self._hide_rubber()
        if doc is not None:
            try:
                self.items = doc.m.annotations()
            except Exception as exc:  # a damaged annotations document: the image still shows
                self.w.statusBar().showMessage(f"The annotations could not be read: {exc}", 10000)
        self._saved = list(self.items)
        self._enable_file_actions()
        self._refresh(None)

    @property
    def dirty(self) -> bool:
        """The annotations differ from the file's (an undo back to the saved list is clean again)."""
        return self.items != self._saved

    def save(self) -> None:
        """Write the annotations into the file (one transaction); raises what the library raises."""
        assert self.doc is not None
        with Mzarr(self.doc.path, "r+") as w:
            w.set_annotations(self.items)
        self.doc.note_saved()  # this app's own write: not a change by another program
        self._saved = list(self.items)

    def _commit(self, items: list[Annotation], select: str | None, text: str) -> None:
        """Make ``items`` the annotations, as one step of Edit > Undo (the window's undo stack)."""
        self.w.model.stack.push(_Change(self, list(self.items), list(items), select, text))

    def _set_items(self, items: list[Annotation], select: str | None) -> None:
        self.items = list(items)
        self._refresh(select)
        self.w._update_title()

    def _refresh(self, select: str | None) -> None:
        self.panel.set_annotations(self.items, select)
        self.redraw()

    # --- tools -------------------------------------------------------------------------------------------------
    def handles(self, tool: str | None) -> bool:
        """Whether the view's ``tool`` is one of the measurement tools (its mouse events come here)."""
        return tool in M.TOOLS

    def set_tool(self, tool: str | None) -> None:
        """Pick a measurement tool (None: pan); the editing tools are released."""
        self._polygon = []
        self._hide_rubber()
        self.w.editing.set_tool(None)  # sets the view's tool to None and shows Pan here
        self.view.vb.set_tool(tool)
        self.panel.set_tool(tool)

    def _editing_tool(self, tool: str | None) -> None:
        """The Editing panel picked a tool (or Pan): no measurement tool is active any more."""
        self._polygon = []
        self._hide_rubber()
        self.panel.set_tool(tool if tool is None else "editing")

    def _plane(self) -> Any:
        return self.view.plane

    def _inside(self, p: tuple[float, float]) -> bool:
        h, w = self.view.plane_shape()
        return 0 <= p[0] <= w and 0 <= p[1] <= h

    def drag(self, p0: tuple[float, float], p1: tuple[float, float], start: bool, finish: bool) -> None:
        """A left-button drag of a tool: rubber band (with the ruler's live length), then the new annotation."""
        tool = self.view.vb.tool
        if self.doc is None or self._plane() is None or tool not in ("measure_line", "measure_rect", "measure_ellipse"):
            return
        path = QPainterPath()
        if tool == "measure_line":
            path.moveTo(*p0)
            path.lineTo(*p1)
            text = M.length_text([p0, p1], self.view.plane_spacing(), self.doc.unit)
            self._rubber_text.setText(text)
            self._rubber_text.setPos(*p1)
            self._rubber_text.show()
            self.w.statusBar().showMessage(f"Length {text}", 4000)
        elif tool == "measure_rect":
            path.addRect(QRectF(min(p0[0], p1[0]), min(p0[1], p1[1]), abs(p1[0] - p0[0]), abs(p1[1] - p0[1])))
        else:
            path.addEllipse(QRectF(min(p0[0], p1[0]), min(p0[1], p1[1]), abs(p1[0] - p0[0]), abs(p1[1] - p0[1])))
        self._rubber.setPath(path)
        self._rubber.show()
        if finish:
            self._hide_rubber()
            kind = M.TOOLS[tool]
            a = M.shape_from_drag(tool, p0, p1, self._plane(), name=M.next_name(self.items, kind))
            if a is not None:
                self.add(a)

    def click(self, p: tuple[float, float], double: bool) -> None:
        """A left click of a tool: a point, or a polygon's vertex (double-click or the first vertex closes it)."""
        tool = self.view.vb.tool
        if self.doc is None or self._plane() is None:
            return
        if tool == "measure_point":
            if not self._inside(p):
                self.w.statusBar().showMessage("Points go on the image", 3000)
                return
            self.add(M.point_from_click(p, self._plane(), name=M.next_name(self.items, "point")))
        elif tool == "measure_polygon":
            closing = double or (len(self._polygon) >= 3 and M.near(
                p, self._polygon[0], M.CLOSE_POLYGON_PX * self.view.screen_pixel()))
            if not closing:
                self._polygon.append(p)
                self._draw_polygon_rubber()
                return
            a = M.polygon_from_clicks(self._polygon, self._plane(), name=M.next_name(self.items, "polygon"))
            self._polygon = []
            self._hide_rubber()
            if a is None:
                self.w.statusBar().showMessage("A polygon needs 3 vertices or more", 3000)
            else:
                self.add(a)

    def _draw_polygon_rubber(self) -> None:
        path = QPainterPath()
        path.moveTo(*self._polygon[0])
        for q in self._polygon[1:]:
            path.lineTo(*q)
        self._rubber.setPath(path)
        self._rubber.show()

    def _hide_rubber(self) -> None:
        self._rubber.hide()
        self._rubber_text.hide()

    # --- editing the list --------------------------------------------------------------------------------------
    def add(self, a: Annotation) -> None:
        """Add an annotation (pending until Save), select it and measure it."""
        self._commit(self.items + [a], a.id, f"add {a.kind}")

    def find(self, ident: str) -> Annotation | None:
        return next((a for a in self.items if a.id == ident), None)

    def _replace(self, a: Annotation, items: list[Annotation] | None = None, text: str = "change annotation") -> None:
        self._commit([a if b.id == a.id else b for b in (self.items if items is None else items)], a.id, text)

    def rename(self, ident: str, name: str) -> None:
        a = self.find(ident)
        if a is not None and name != a.name:
            self._replace(a.with_(name=name), text="rename annotation")

    def set_class(self, ident: str, class_name: str | None, color: tuple[int, int, int] | None) -> None:
        """Give an annotation a class and colour; the colour is shared by every annotation of that class."""
        a = self.find(ident)
        if a is None:
            return
        items = self.items
        if class_name is not None and color is not None:
            items = [b.with_(color=color) if b.class_name == class_name and b.id != ident else b for b in items]
        elif class_name is not None and color is None:  # a known class keeps its colour
            color = next((b.color for b in items if b.class_name == class_name and b.color), None)
        self._replace(a.with_(class_name=class_name, color=color), items, "annotation class")

    def delete(self, ident: str) -> None:
        if self.find(ident) is None:
            return
        if self.job is not None and self.job.annotation.id == ident:
            self._stop_job()
        self._commit([a for a in self.items if a.id != ident], None, "delete annotation")

    def jump(self, ident: str) -> None:
        """Show an annotation: its plane (volumes) and its extent with a margin."""
        a = self.find(ident)
        if a is None or self.doc is None:
            return
        if a.plane is not None:
            axis, index = a.plane
            s = self.w.slicing
            if s.axis.currentText() != axis:
                s.axis.setCurrentText(axis)
            s.spin.setValue(index)
        self.view.show_rect(*M.view_rect_for(a, plane=self.view.plane))
        self.panel.select(ident)

    # --- drawing -----------------------------------------------------------------------------------------------
    def _plane_changed(self) -> None:
        self._polygon = []
        self._hide_rubber()
        self.redraw()

    def _views(self) -> list[Any]:
        """The views on screen (the orthogonal layout's three, or the main one)."""
        layout = getattr(self.w, "layout_views", None)
        return list(layout.views()) if layout is not None else [self.view]

    def redraw(self) -> None:
        """Draw, in every view on screen, the annotations of the plane it shows (the selected one thicker)."""
        for vb, g in self._graphics:
            vb.removeItem(g)
        self._graphics = []
        if self.doc is None:
            return
        current = self.panel.current_id()
        for v in self._views():
            if v.plane is None or v.doc is None:
                continue
            for a in self.items:
                if M.on_plane(a, v.plane):
                    for g in self._shape_items(a, a.id == current, v.plane_spacing(), v.plane):
                        v.vb.addItem(g, ignoreBounds=True)
                        self._graphics.append((v.vb, g))

    def drawn_in(self, view: Any) -> list[Any]:
        """The graphics items drawing annotations in ``view`` now (tests, and whoever needs to know)."""
        return [g for vb, g in self._graphics if vb is view.vb]

    def _shape_items(self, a: Annotation, selected: bool, spacing: tuple[float, float] | None,
                     plane: Any = None) -> list[Any]:
        """The graphics items drawing ``a`` (its shape and its label), in level-0 coordinates of the view showing
        its ``plane`` (a turned plane swaps the annotation's x and y: ``measure.swap_points``); ``spacing``: that
        view's (row, column) spacing."""
        assert self.doc is not None
        color = QColor(*(a.color or DEFAULT_COLOR))
        width = 3 if selected else 2
        pts = M.swap_points(a.points, plane)
        x0, y0, x1, y1 = M.view_bounds(a, plane)
        if a.kind == "point":
            item: Any = pg.ScatterPlotItem([pts[0][0]], [pts[0][1]], symbol="+", size=14,
                                           pen=pg.mkPen(color, width=width), brush=None)
        else:
            path = QPainterPath()
            if a.kind == "ellipse":
                path.addEllipse(QRectF(x0, y0, x1 - x0, y1 - y0))
            elif a.kind == "rectangle":
                path.addRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            else:
                path.moveTo(*pts[0])
                for q in pts[1:]:
                    path.lineTo(*q)
                if a.kind == "polygon":
                    path.closeSubpath()
            item = QGraphicsPathItem(path)
            pen = QPen(color, width)
            pen.setCosmetic(True)
            item.setPen(pen)
        item.setZValue(Z_ANNOTATIONS)
        out = [item]
        label = a.name
        if a.kind == "line":
            label = f"{a.name}: {M.length_text(pts, spacing, self.doc.unit)}"
        if label:
            text = pg.TextItem(label, color=color, anchor=(0, 1))
            text.setPos(*pts[-1] if a.kind == "line" else (x0, y0))
            text.setZValue(Z_ANNOTATIONS)
            out.append(text)
        return out

    # --- measurements ------------------------------------------------------------------------------------------
    def _selected(self, ident: str | None) -> None:
        self.redraw()
        a = self.find(ident) if ident else None
        if a is None:
            self.panel.show_result("")
            self.panel.show_profile(None, None)
            return
        if a.kind == "point":
            self.panel.show_profile(None, None)
            self.panel.show_result(self._point_text(a))
            return
        if a.id in self.results:
            self._show(a, self.results[a.id])
        elif self.job is None or self.job.annotation.id != a.id:
            self.measure(a)

    def _point_text(self, a: Annotation) -> str:
        x, y = a.points[0]
        text = f"Position: x {x:.1f}, y {y:.1f} px"
        doc = self.doc
        if doc is not None and doc.spacing is not None:  # x, y: the columns and rows of its plane, stored order
            row, col = plane_axes(doc.spatial_axes, a.plane)
            sr, sc = doc.spacing[doc.spatial_axes.index(row)], doc.spacing[doc.spatial_axes.index(col)]
            unit = doc.unit or ""
            text += f" ({M.format_length(x * sc, unit)}, {M.format_length(y * sr, unit)})"
        return text

    def measure(self, a: Annotation) -> None:
        """Compute ``a``'s measurement from full-resolution pixels in the background (one at a time: a new one
        cancels the running one); big regions show a cancellable progress dialog."""
        if self.doc is None:
            return
        self._stop_job()
        job = _Job(self.doc.path, a)
        job.done.connect(self._job_done)
        self.job = job
        self.panel.show_result("Measuring from full-resolution pixels…")
        if a.kind != "line" and M.bbox_pixels(a) > M.BIG_REGION_PX:
            dlg = QProgressDialog(f"Statistics of {a.name or a.kind} from full-resolution pixels…", "Cancel", 0, 0,
                                  self.w)
            dlg.setWindowTitle("Measuring")
            dlg.setMinimumDuration(0)
            dlg.setAutoClose(False)
            dlg.setAutoReset(False)
            dlg.canceled.connect(self.cancel)
            job.progressed.connect(lambda d, t: (dlg.setMaximum(t), dlg.setValue(d)))
            dlg.show()
            self.progress_dialog = dlg
        job.thread.start()

    def cancel(self) -> None:
        """Stop the running measurement (its annotation stays, without a result)."""
        if self.job is not None:
            self.job.cancelled = True

    def _stop_job(self) -> None:
        if self.job is not None:
            self.job.cancelled = True
            try:
                self.job.done.disconnect(self._job_done)
            except (RuntimeError, TypeError):
                pass
            self.job = None
        self._close_progress()

    def _close_progress(self) -> None:
        if self.progress_dialog is not None:
            dlg, self.progress_dialog = self.progress_dialog, None
            dlg.canceled.disconnect()
            dlg.close()
            dlg.deleteLater()

    @property
    def busy(self) -> bool:
        """A measurement is running."""
        return self.job is not None

    def _job_done(self, a: Annotation, result: Any) -> None:
        if self.job is None or self.job.annotation is not a:
            return
        self.job = None
        self._close_progress()
        if isinstance(result, _Cancelled):
            result = "Cancelled: select the annotation again to measure it"
        elif isinstance(result, BaseException):
            result = f"Could not measure: {type(result).__name__}: {result}"
        else:
            self.results[a.id] = result
        if self.panel.current_id() == a.id:
            self._show(a, result)
        self.measured.emit(a.id)

    def _show(self, a: Annotation, result: Any) -> None:
        if isinstance(result, str):
            self.panel.show_result(result)
            self.panel.show_profile(None, None)
        elif a.kind == "line":
            self.panel.show_result(M.profile_text(result))
            self.panel.show_profile(result.distance, result.values, result.unit)
        else:
            self.panel.show_result(M.stats_text(result))
            self.panel.show_histogram(result.histogram, result.bin_edges)

    # --- GeoJSON -----------------------------------------------------------------------------------------------
    def export_geojson(self, path: str) -> int:
        """Write the annotations (pending ones included) as QuPath-style GeoJSON; returns how many."""
        write_geojson(self.items, path)
        return len(self.items)

    def import_geojson(self, path: str) -> int:
        """Add the features of a GeoJSON file (QuPath's export) as pending annotations; for a volume, features
        without a plane go on the plane shown. A feature with the id of an annotation replaces it."""
        assert self.doc is not None
        plane = M.annotation_plane(self._plane()) if self._plane() is not None else None
        incoming = [a if a.plane is not None or plane is None else a.with_(plane=plane) for a in read_geojson(path)]
        ids = {a.id for a in incoming}
        merged = [a for a in self.items if a.id not in ids] + incoming
        spatial = self.doc.spatial_axes
        shape = tuple(n for ax, n in zip(self.doc.axes, self.doc.shape) if ax != "c")
        checked = check_annotations(merged, spatial, shape)
        for a in incoming:
            self.results.pop(a.id, None)
        self._commit(checked, incoming[0].id if incoming else None, "import annotations")
        return len(incoming)

    def export_dialog(self) -> None:
        if self.doc is None:
            return
        base = os.path.splitext(os.path.basename(self.doc.path.rstrip("/\\")))[0]
        path, _ = QFileDialog.getSaveFileName(self.w, "Export annotations", os.path.join(
            os.path.dirname(self.doc.path), f"{base}.geojson"), GEOJSON_FILTER)
        if path:
            try:
                n = self.export_geojson(path)
            except Exception as exc:
                self.w.show_error(f"Cannot write {path}", f"{type(exc).__name__}: {exc}")
                return
            self.w.statusBar().showMessage(f"Exported {n} annotation(s) to {os.path.basename(path)}", 5000)

    def import_dialog(self) -> None:
        if self.doc is None:
            return
        path, _ = QFileDialog.getOpenFileName(self.w, "Import annotations", os.path.dirname(self.doc.path),
                                              GEOJSON_FILTER)
        if path:
            try:
                n = self.import_geojson(path)
            except Exception as exc:
                self.w.show_error(f"Cannot import {path}", f"{type(exc).__name__}: {exc}")
                return
            self.w.statusBar().showMessage(f"Imported {n} annotation(s) (not saved yet)", 5000)
