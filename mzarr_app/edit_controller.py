"""The editing tools wired to the window: paint target, strokes, polygons, flood fill, picking, new labels."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QInputDialog

from . import APP_NAME
from . import paint as PT
from .document import Edit, apply_edits, level0_max
from .panels.editing import brush_edits, plane_edits, plane_shape, polygon_edits, rect_edit
from .tiles import Plane

if TYPE_CHECKING:
    from .window import MainWindow

#: the tools that act in every view of the orthogonal layout (on that view's plane); the rectangle's fill acts on the
#: main view's selection, so in the other two views a click there moves the cursor
ORTHO_TOOLS = ("brush", "eraser", "fill", "pick", "polygon")
#: a flood fill reads at most this many level-0 pixels a side around the click (its bound)
FILL_WINDOW = 2048
#: ... and stops after this many pixels
FILL_MAX_PIXELS = 2048 * 2048


class EditController(QObject):
    """Turns the view's tool input (strokes, polygons, clicks) and the Editing panel's buttons into pending edits
    of the chosen target (the image or one of its label images) on the window's undo stack."""

    #: (key, largest level-0 value or None) from the background scan of "New label"
    _maxFound = Signal(object, object)

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.w = window
        self.view = window.view
        self.model = window.model
        self.panel = window.editing
        #: largest saved level-0 value per (target, id of the open handle): (that handle, the value); the handle is
        #: kept so its id is not reused by a later one
        self._max_cache: dict[tuple[Any, int], tuple[Any, int]] = {}
        self._max_running: set[tuple[Any, int]] = set()
        self._want_new_value: tuple[Any, int] | None = None
        self._hooked: set[int] = set()
        self._hook(self.view)
        window.layout_views.layoutChanged.connect(self._hook_layout)
        self.panel.toolChanged.connect(self._tool_changed)
        self.panel.targetChanged.connect(self._target_changed)
        self.panel.newLabelValueRequested.connect(self.new_label_value)
        self.panel.newLabelImageRequested.connect(lambda: self.new_label_image())
        self.view.labelsChanged.connect(self.refresh_targets)
        self._maxFound.connect(self._max_found)

    # --- target ------------------------------------------------------------------------------------------------
    def refresh_targets(self) -> None:
        """Offer the open file's label images as paint targets (keeping the current one if it is still there)."""
        doc = self.w.doc
        self._max_cache = {}  # another file, or the same with another label image: scanned again when asked
        names = [la.name for la in self.view.label_layers]
        self.panel.set_targets(names, bool(doc is not None and doc.is_label), self.panel.target())
        self.panel.set_spacing(doc.unit or "units" if doc is not None and doc.spacing is not None else None)

    def _target_changed(self, target: str | None) -> None:
        td = self.target_doc(target)
        if td is not None:
            self.panel.set_dtype(td.dtype, bool(target is not None or td.is_label))

    def target_doc(self, target: str | None = None) -> Any:
        """The document painted for ``target`` (a label image's name; None: the image), or None."""
        if target is None:
            return self.w.doc
        layer = self.view.label_layer(target)
        return None if layer is None else layer.doc

    def _plane(self, view: Any = None) -> Plane | None:
        return (view or self.view).plane

    def edits_of(self, target: str | None) -> list[Edit]:
        """The pending edits of ``target``, oldest first."""
        return [e for e in self.model.edits if e.target == target]

    # --- tools -----------------------------------------------------------------------------------------------
    def _hook(self, view: Any) -> None:
        """Strokes, polygons and clicks of ``view`` (the main view, or another view of the orthogonal layout) edit
        the plane that view shows."""
        if id(view) in self._hooked:
            return
        self._hooked.add(id(view))
        vb = view.vb
        vb.brush_radii = lambda v=view: self.brush_radii(v)
        vb.brushStroke.connect(lambda points, v=view: self._stroke(points, v))
        vb.polygonDrawn.connect(lambda vertices, v=view: self.polygon(vertices, view=v))
        vb.pointClicked.connect(lambda tool, x, y, v=view: self._clicked(tool, x, y, v))

    def _hook_layout(self, _mode: str | None = None) -> None:
        """The orthogonal layout's other views (made at its first use) get the editing tool too."""
        for v in self.w.layout_views.extra:
            self._hook(v)
            self._set_ortho_tool(v, self.view.vb.tool)

    @staticmethod
    def _set_ortho_tool(view: Any, tool: str | None) -> None:
        ortho_tool = tool if tool in ORTHO_TOOLS else None
        if view.vb.tool != ortho_tool:
            view.vb.set_tool(ortho_tool)

    def _tool_changed(self, tool: str | None) -> None:
        self.view.vb.set_tool(tool)
        for v in self.w.layout_views.extra:
            self._set_ortho_tool(v, tool)
        if tool is None:
            self.view.vb.set_selection(None)
        self.panel.notice.setText("")

    def push(self, make: Callable[[], Edit | Sequence[Edit] | None]) -> bool:
        """Build edits and push them as one undo step; a value the target cannot hold shows a message."""
        try:
            made = make()
        except ValueError as exc:
            self.w.show_error("Invalid value", str(exc))
            return False
        edits = [] if made is None else [made] if isinstance(made, Edit) else list(made)
        if not edits:
            return False
        self.model.push(edits)
        return True

    def brush_radii(self, view: Any = None) -> tuple[float, float]:
        """The brush's (row, column) radius in level-0 pixels now in ``view`` (default: the main view): screen
        pixels at its zoom, or the file's unit through the spacing of its plane."""
        view = view or self.view
        px = view.vb.viewPixelSize()
        return PT.radius_pixels(self.panel.radius.value(), self.panel.radius_is_physical(),
                                (float(px[0]), float(px[1])), view.plane_spacing())

    def _stroke(self, points: list[tuple[float, float]], view: Any = None) -> None:
        tool = (view or self.view).vb.tool
        value = 0.0 if tool == "eraser" else self.panel.value.value()
        self.paint(points, self.brush_radii(view), value, self.panel.target(), "erase" if tool == "eraser" else "brush",
                   view=view)

    def paint(self, points: Sequence[tuple[float, float]], radius: float | tuple[float, float], value: float,
              target: str | None = None, label: str = "brush", view: Any = None) -> bool:
        """Pending brush edit of ``target`` along ``points`` ((x, y) level-0 in the plane of ``view``: default the
        main view's), ``radius`` in level-0 pixels."""
        td, plane = self.target_doc(target), self._plane(view)
        if td is None or plane is None:
            return False
        return self.push(lambda: brush_edits(td, plane, points, radius, value, target, label))

    def fill_rect(self, rect: tuple[float, float, float, float], value: float, target: str | None = None) -> bool:
        """Pending edit setting level-0 rectangle (x0, y0, x1, y1) of the current slice of ``target``."""
        td, plane = self.target_doc(target), self._plane()
        if td is None or plane is None:
            return False
        return self.push(lambda: rect_edit(td, plane, rect, value, "clear" if value == 0 else "fill", target))

    def polygon(self, vertices: list[tuple[float, float]], value: float | None = None,
                target: Any = ..., view: Any = None) -> bool:
        """Pending edit filling the polygon ``vertices`` ((x, y) level-0) of the plane of ``view`` (default: the
        main view's current slice, the panel's value and target)."""
        target = self.panel.target() if target is ... else target
        value = self.panel.value.value() if value is None else value
        td, plane = self.target_doc(target), self._plane(view)
        if td is None or plane is None:
            return False
        return self.push(lambda: polygon_edits(td, plane, vertices, value, target))

    def _clicked(self, tool: str, x: float, y: float, view: Any = None) -> None:
        if tool == "fill":
            self.flood_fill(x, y, self.panel.value.value(), self.panel.target(), view=view)
        elif tool == "pick":
            self.pick(x, y, self.panel.target(), view=view)

    # --- reading the target at full resolution -----------------------------------------------------------------
    def _read_window(self, td: Any, target: str | None, plane: Plane, rows: tuple[int, int],
                     cols: tuple[int, int]) -> np.ndarray:
        """Level-0 (rows, cols) block of the current slice of ``td`` with the target's pending edits applied."""
        spatial = {plane.row: slice(*rows), plane.col: slice(*cols)}
        if plane.slice_axis:
            spatial[plane.slice_axis] = slice(plane.slice_index, plane.slice_index + 1)
        region = td.full_region(spatial)
        block = apply_edits(region, np.array(td.read(region)), self.edits_of(target))
        ri, ci = td.axes.index(plane.row), td.axes.index(plane.col)
        b2 = block.reshape([n for ax, n in enumerate(block.shape) if ax in (ri, ci)])
        return b2 if ri < ci else b2.T

    def _check_single(self, td: Any, what: str) -> bool:
        if "c" in td.axes:
            self.w.statusBar().showMessage(f"{what} needs one value per pixel: this image has channels", 6000)
            return False
        return True

    def pick(self, x: float, y: float, target: Any = ..., view: Any = None) -> Any:
        """Set the panel's value to the level-0 value of ``target`` under (x, y) of the plane of ``view`` (default:
        the main view's; pending edits included)."""
        target = self.panel.target() if target is ... else target
        td, plane = self.target_doc(target), self._plane(view)
        if td is None or plane is None or not self._check_single(td, "Pick"):
            return None
        h, w = plane_shape(td, plane)
        r, c = int(np.floor(y)), int(np.floor(x))
        if not (0 <= r < h and 0 <= c < w):
            return None
        v = self._read_window(td, target, plane, (r, r + 1), (c, c + 1))[0, 0].item()
        self.panel.value.setValue(float(v))
        self.w.statusBar().showMessage(f"Picked label {v:g}", 4000)
        return v

    def flood_fill(self, x: float, y: float, value: float, target: Any = ..., view: Any = None) -> bool:
        """Pending edit filling the 4-connected region of equal level-0 pixels of ``target`` around (x, y) in the
        plane of ``view`` (default: the main view's current plane) with ``value``, within ``FILL_WINDOW`` pixels around the click and ``FILL_MAX_PIXELS``
        pixels; says so (panel and status bar) when the region reaches that bound."""
        target = self.panel.target() if target is ... else target
        td, plane = self.target_doc(target), self._plane(view)
        if td is None or plane is None or not self._check_single(td, "Flood fill"):
            return False
        h, w = plane_shape(td, plane)
        r, c = int(np.floor(y)), int(np.floor(x))
        if not (0 <= r < h and 0 <= c < w):
            return False
        rows, cols = PT.window_around(r, FILL_WINDOW, h), PT.window_around(c, FILL_WINDOW, w)
        block = self._read_window(td, target, plane, rows, cols)
        res = PT.flood_fill(block, (r - rows[0], c - cols[0]), FILL_MAX_PIXELS,
                            (rows[0] > 0, rows[1] < h, cols[0] > 0, cols[1] < w))
        if res.bounded:
            why = (f"it stopped after {FILL_MAX_PIXELS:,} pixels" if res.budget
                   else f"it reached the edge of the {FILL_WINDOW}×{FILL_WINDOW} pixels around the click")
            msg = f"Flood fill limited: {why}; the region may go on (fill again further on)"
        else:
            msg = f"Flood fill: {int(res.mask.sum()):,} pixels"
        self.panel.notice.setText(msg)
        self.w.statusBar().showMessage(msg, 8000)
        piece = PT.crop_mask(rows[0], cols[0], res.mask)
        if piece is None or block[r - rows[0], c - cols[0]] == td.check_value(value):
            return False
        return self.push(lambda: plane_edits(td, plane, [piece], value, f"flood fill {value:g}", target))

    # --- next free label value ---------------------------------------------------------------------------------
    def new_label_value(self) -> int | None:
        """Set the value to the next free label of the target (one more than the largest level-0 value, pending
        edits included): at once when the largest value is known, else after a background scan of level 0."""
        target = self.panel.target()
        td = self.target_doc(target)
        if td is None:
            return None
        handle = td.label if target is not None else td.m
        key = (target, id(handle))
        cached = self._max_cache.get(key)
        if cached is not None and cached[0] is handle:
            return self._apply_new_value(target, td, cached[1])
        self._want_new_value = key
        self.panel.notice.setText("Finding the next free label value (reading the full-resolution labels)…")
        if key not in self._max_running:
            self._max_running.add(key)
            threading.Thread(target=self._scan_max, args=(key, td, handle), daemon=True,
                             name="mzarr-label-max").start()
        return None

    def _scan_max(self, key: tuple[Any, int], td: Any, handle: Any) -> None:
        try:
            m = level0_max(handle.__getitem__, td.shape, td.chunks, cancelled=lambda: self.w.doc is None)
        except Exception:  # the file was reopened or closed meanwhile: no value
            m = None
        self._maxFound.emit(key, None if m is None else (handle, m))

    def _max_found(self, key: tuple[Any, int], found: tuple[Any, int] | None) -> None:
        self._max_running.discard(key)
        if found is None:
            if self._want_new_value == key:
                self._want_new_value = None
                self.panel.notice.setText("The next free label value could not be found (the file changed)")
            return
        self._max_cache[key] = found
        value = found[1]
        if self._want_new_value == key:
            self._want_new_value = None
            target = key[0]
            td = self.target_doc(target)
            if td is not None and self.panel.target() == target:
                self._apply_new_value(target, td, int(value))

    def _apply_new_value(self, target: str | None, td: Any, saved_max: int) -> int | None:
        pending = [int(e.value) for e in self.edits_of(target)]
        try:
            v = PT.next_free_value(max([saved_max] + pending), td.dtype)
        except ValueError as exc:
            self.panel.notice.setText(str(exc))
            return None
        self.panel.value.setValue(v)
        self.panel.notice.setText(f"New label: {v}")
        return v

    # --- new label image ---------------------------------------------------------------------------------------
    def new_label_image(self, name: str | None = None, dtype: str | None = None) -> bool:
        """Add an empty label image (the image's spatial shape) to the file through ``mzarr_core`` and paint it;
        asks for the name and data type when not given. Pending edits stay pending."""
        doc = self.w.doc
        if doc is None:
            return False
        if name is None:
            name, ok = QInputDialog.getText(self.w, APP_NAME, "Name of the new label image:", text="labels")
            if not ok or not name:
                return False
        if dtype is None:
            dtype, ok = QInputDialog.getItem(self.w, APP_NAME, "Label data type:",
                                             ["uint16", "uint8", "uint32", "uint64", "int32", "bool"], 0, False)
            if not ok:
                return False
        view, others = self.view, self.w.layout_views
        rng, plane = view.vb.viewRect(), view.plane
        others.stop_loading()
        view.stop_loading()
        try:
            doc.create_label_image(name, dtype)
        except Exception as exc:
            self.w.show_error(f"Cannot add the label image {name!r}", f"{type(exc).__name__}: {exc}")
            try:
                doc.reopen()
            except Exception:
                pass
            view.reload()
            others.reload()
            return False
        view.set_document(doc, plane)  # the label layers again, the new one included
        view.set_edits(self.model.edits)
        view.vb.setRange(rng, padding=0)
        others.set_document(doc)
        others.set_edits(self.model.edits)
        self.panel.set_target(name)
        self.w.statusBar().showMessage(f"Added the label image {name!r} ({dtype})", 5000)
        return True

