"""Orthogonal views of a volume: the z, y and x planes through one cursor point side by side (axial, coronal and
sagittal for a patient volume), a linked crosshair, zoom and pan shared along the axes the views have in common.

:class:`ViewLayout` is the window's central widget. It holds the main :class:`~mzarr_app.view.TiledImageView`
(the single view of the single layout, the z view of the orthogonal one: contrast, editing, labels and the slicing
panel act on it as before) and, in the orthogonal layout, two more views of the same
:class:`~mzarr_app.document.Document`. Each view plans and streams its own tiles at its own level; their loaders
share the document's one decoded-chunk cache (``Document.shared_chunk_cache``), so a brick decoded for one view
serves the others and the memory budget is the app's single cache budget.

Grid: z view top left, y view below it (the x axis shared, columns aligned), x view bottom right (the z axis
shared with the y view, rows aligned), the cursor's position and value top right. A patient image's planes are
drawn as radiologists read them (``tiles.default_plane`` with its attributes: a plane may be turned a quarter);
zoom, pan and the crosshair follow each view's own row and column axes.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from mzarr_core.display import anatomical_plane_names

from . import tiles as T
from .contrast import DisplaySettings
from .document import Document, Edit
from .overview import OverviewInset
from .view import TiledImageView, format_length

SINGLE, ORTHO = "single", "ortho"
#: the colour of each plane: a view's frame label and, in the other views, the crosshair line of that plane
PLANE_COLOURS = {0: (90, 160, 255), 1: (90, 220, 90), 2: (255, 100, 100)}
#: names of the planes through the 1st, 2nd and 3rd spatial axis (a z, y, x volume: axial, coronal, sagittal)
PLANE_NAMES = ("axial", "coronal", "sagittal")


def is_volume(doc: Document | None) -> bool:
    """True if ``doc`` has three spatial axes (the orthogonal layout applies)."""
    return doc is not None and len(doc.spatial_axes) == 3


class Crosshair:
    """The cursor's two lines in one view (the planes of the other two views), each draggable along its axis, and a
    ring at their crossing that drags both; kept above the tiles."""

    def __init__(self, view: TiledImageView) -> None:
        self.view = view
        self.vline = pg.InfiniteLine(angle=90, movable=True)
        self.hline = pg.InfiniteLine(angle=0, movable=True)
        self.centre = pg.TargetItem(size=14, symbol="o", pen=pg.mkPen(255, 255, 255, 170),
                                    hoverPen=pg.mkPen(255, 255, 0, 255, width=2), brush=None, hoverBrush=None)
        for item in (self.vline, self.hline, self.centre):
            item.setZValue(1e5)
            view.vb.addItem(item, ignoreBounds=True)
            item.hide()
        self.centre.setZValue(1e5 + 1)

    def set_colours(self, vcol: tuple[int, int, int], hcol: tuple[int, int, int]) -> None:
        """Pens of the vertical (column axis) and horizontal (row axis) lines."""
        for line, c in ((self.vline, vcol), (self.hline, hcol)):
            line.setPen(pg.mkPen(QColor(*c, 200), width=1))
            line.setHoverPen(pg.mkPen(QColor(*c, 255), width=3))

    def place(self, col: float, row: float) -> None:
        """Lines through the centre of level-0 pixel (row, col)."""
        for line, v in ((self.vline, col + 0.5), (self.hline, row + 0.5)):
            line.blockSignals(True)
            line.setValue(v)
            line.blockSignals(False)
            line.show()
        if not self.centre.moving:  # (while dragged, the ring follows the pointer)
            self.centre.blockSignals(True)
            self.centre.setPos(col + 0.5, row + 0.5)
            self.centre.blockSignals(False)
        self.centre.show()

    def set_draggable(self, draggable: bool) -> None:
        """Whether the lines and the ring take the mouse: not while an editing or measuring tool is active (a
        stroke or a shape that starts on a line must not move the cursor)."""
        self.vline.setMovable(draggable)
        self.hline.setMovable(draggable)
        self.centre.movable = draggable  # (pyqtgraph's TargetItem has no setter)
        for item in (self.vline, self.hline, self.centre):
            item.setAcceptHoverEvents(draggable)

    def hide(self) -> None:
        """Hide the lines and the ring (single layout)."""
        self.vline.hide()
        self.hline.hide()
        self.centre.hide()


class ViewLayout(QWidget):
    """The window's views: the main view alone (single layout) or the three orthogonal views of a volume.

    ``position`` is the cursor (level-0 index per spatial axis, in the document's spatial axis order); a click or a
    crosshair drag in a view moves it, the other views change plane. ``positionChanged`` gives the new position.
    """

    positionChanged = Signal(object)
    layoutChanged = Signal(str)

    def __init__(self, main: TiledImageView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.main = main
        self.mode = SINGLE
        self.doc: Document | None = None
        self.plane_names: tuple[str, str, str] = PLANE_NAMES
        self._attrs: dict[str, Any] = {}
        self.position: list[int] = []
        self.extra: list[TiledImageView] = []  # the y and x views (created at the first orthogonal layout)
        self.info = QLabel("")
        self.info.setObjectName("orthoInfo")
        self.info.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.info.setStyleSheet("QLabel { background: black; color: #ddd; padding: 8px; }")
        self.info.setWordWrap(True)
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.info.hide()
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.grid.addWidget(main, 0, 0)
        self.grid.addWidget(self.info, 0, 1)
        self._syncing = False
        self._crosshairs: dict[int, Crosshair] = {}
        self._captions: dict[int, QLabel] = {}
        self._insets: dict[int, OverviewInset] = {}
        #: View > Overview: each view shows the whole plane in its lower-left corner
        self.overview = False
        self._hook(main)

    # --- the views -------------------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """The orthogonal layout is on screen (chosen, and the document is a volume)."""
        return self.mode == ORTHO and is_volume(self.doc) and bool(self.extra) and self.extra[0].doc is not None

    def views(self) -> list[TiledImageView]:
        """The views on screen: the main one, then (orthogonal layout) the y and x views."""
        return [self.main, *self.extra] if self.active else [self.main]

    def view_of(self, axis: str) -> TiledImageView | None:
        """The view showing the plane perpendicular to spatial ``axis`` (orthogonal layout), else None."""
        if not self.active or self.doc is None:
            return None
        return self.views()[self.doc.spatial_axes.index(axis)]

    def _hook(self, v: TiledImageView) -> None:
        """Crosshair, caption, click and range sync of one view."""
        self._crosshairs[id(v)] = ch = Crosshair(v)
        ch.vline.sigDragged.connect(lambda line, v=v: self._line_dragged(v, line, "col"))
        ch.hline.sigDragged.connect(lambda line, v=v: self._line_dragged(v, line, "row"))
        ch.centre.sigPositionChanged.connect(lambda t, v=v: self._centre_dragged(v, t))
        ch.set_draggable(getattr(v.vb, "tool", None) is None)
        if hasattr(v.vb, "toolSet"):
            v.vb.toolSet.connect(lambda tool, ch=ch: ch.set_draggable(tool is None))
        cap = QLabel(v)
        cap.setObjectName("orthoCaption")
        cap.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        cap.setStyleSheet("QLabel { background: rgba(0, 0, 0, 140); padding: 2px 5px; }")
        cap.move(4, 4)
        cap.hide()
        self._captions[id(v)] = cap
        self._insets[id(v)] = OverviewInset(v, lambda: self.main.image)  # the main view read the coarse level
        self._insets[id(v)].set_enabled(self.overview)
        v.scene().sigMouseClicked.connect(lambda ev, v=v: self._clicked(v, ev))
        v.vb.sigRangeChanged.connect(lambda *_a, v=v: self._range_changed(v))

    def _make_extra(self) -> None:
        m = self.main
        for i in (1, 2):
            v = TiledImageView(self, m.cache_mb, m.threads)
            v.setObjectName(f"orthoView{i}")
            self.extra.append(v)
            self._hook(v)
        self.grid.addWidget(self.extra[0], 1, 0)
        self.grid.addWidget(self.extra[1], 1, 1)
        for v in self.extra:
            v.hide()

    # --- layout ----------------------------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        """Show the single view or (for a volume) the three orthogonal views."""
        if mode not in (SINGLE, ORTHO):
            raise ValueError(f"layout {mode!r}: 'single' or 'ortho'")
        if mode == self.mode:
            return
        self.mode = mode
        if mode == ORTHO and not self.extra:
            self._make_extra()
        self._apply()
        self.layoutChanged.emit(mode)

    def set_document(self, doc: Document | None) -> None:
        """The main view shows ``doc`` (already set on it); the orthogonal views follow when the layout is on."""
        self._stop_extra()
        self.doc = doc
        self.position = []
        #: the planes' names: from the DICOM orientation (a sagittal series' z plane is sagittal), else z/y/x order
        self.plane_names = PLANE_NAMES
        #: the attributes whose patient geometry orders each view's rows and columns (``T.default_plane``)
        self._attrs: dict[str, Any] = {}
        if doc is not None:
            try:
                self._attrs = doc.attrs()
                self.plane_names = anatomical_plane_names(self._attrs) or PLANE_NAMES
            except Exception:  # unreadable attributes: the default names
                pass
        self._apply()

    def set_attrs(self, attrs: dict[str, Any]) -> bool:
        """The document's attributes changed: the planes' names and orientation (patient geometry) follow; True
        when a view's plane turned (the caller fits)."""
        if self.doc is None:
            return False
        self._attrs = attrs
        self.plane_names = anatomical_plane_names(attrs) or PLANE_NAMES
        if not self.active:
            return False
        before = [(v.plane.row, v.plane.col) if v.plane is not None else None for v in self.views()]
        self._place()
        return before != [(v.plane.row, v.plane.col) if v.plane is not None else None for v in self.views()]

    def close_document(self) -> None:
        """Forget the document: the extra views stop loading."""
        self.set_document(None)

    def _stop_extra(self) -> None:
        for v in self.extra:
            if v.doc is not None:
                v.close_document()
            v.hide()

    def _apply(self) -> None:
        """Show what the mode and the document call for."""
        want = self.mode == ORTHO and is_volume(self.doc) and self.main.plane is not None
        for v in (self.main, *self.extra):
            self._crosshairs[id(v)].hide()
            self._captions[id(v)].hide()
        if not want:
            self._stop_extra()
            self.main.prefetch_layers = None
            self.info.hide()
            self.grid.setRowStretch(1, 0)
            self.grid.setColumnStretch(1, 0)
            return
        doc, m = self.doc, self.main
        assert doc is not None and m.plane is not None
        spatial = doc.spatial_axes
        if not self.position:  # the main view's slice, the middle of the volume elsewhere
            self.position = [n // 2 for n in (doc.shape[doc.axes.index(a)] for a in spatial)]
            axis = m.plane.slice_axis
            if axis is not None and axis in spatial:
                self.position[spatial.index(axis)] = m.plane.slice_index
        # three planes' bricks share one cache budget: no brick layers read ahead (they would evict the planes shown)
        for v in (m, *self.extra):
            v.prefetch_layers = 0
        for i, v in enumerate(self.extra, start=1):
            v.vb.window_level = m.vb.window_level  # right-drag: window/level, or zoom for a label image
            if v.doc is not doc:
                v.physical_aspect = m.physical_aspect
                v.label_opacity, v.label_contour = m.label_opacity, m.label_contour
                v.set_document(doc, self._plane(i))
                v.set_edits(m.edits)
                if m.display is not None:
                    v.set_display(m.display)
                for layer in m.label_layers:  # the Labels panel's choices so far
                    v.set_label_visible(layer.name, layer.visible)
                    v.set_label_hidden_values(layer.name, sorted(layer.hidden_values))
            v.show()
        self.info.show()
        self.grid.setRowStretch(0, 1)
        self.grid.setRowStretch(1, 1)
        self.grid.setColumnStretch(0, 1)
        self.grid.setColumnStretch(1, 1)
        self._place()
        self.grid.activate()  # the views take their cells' sizes now, so the fit sees them
        self.fit()
        QTimer.singleShot(0, self._fit_if_active)  # and once more when the window has laid them out

    def _fit_if_active(self) -> None:
        if self.active:
            self.fit()

    def _plane(self, i: int) -> T.Plane:
        """The plane of view ``i`` (0: main) through the cursor: perpendicular to the i-th spatial axis."""
        assert self.doc is not None and self.main.plane is not None
        axis = self.doc.spatial_axes[i]
        return T.default_plane(self.doc.axes, axis, self.position[i], self.main.plane.channels, self._attrs)

    # --- the cursor ------------------------------------------------------------------------------------------
    def set_position(self, position: Sequence[int]) -> None:
        """Move the cursor to ``position`` (level-0 index per spatial axis, clamped): every view shows its plane
        through it."""
        if self.doc is None or not self.active:
            return
        doc = self.doc
        shape = [doc.shape[doc.axes.index(a)] for a in doc.spatial_axes]
        pos = [min(max(0, int(p)), n - 1) for p, n in zip(position, shape)]
        if pos == self.position:
            return
        self.position = pos
        self._place()
        self.positionChanged.emit(tuple(pos))

    def main_plane_changed(self, plane: T.Plane) -> None:
        """The main view's plane changed (slicing panel): its slice is the cursor's position along that axis."""
        axis = plane.slice_axis
        if not self.active or self.doc is None or axis is None or axis not in self.doc.spatial_axes:
            return
        i = self.doc.spatial_axes.index(axis)
        for v in self.extra:  # channels follow the main view
            if v.plane is not None and v.plane.channels != plane.channels:
                v.set_plane(replace(v.plane, channels=plane.channels))
        if self.position[i] != plane.slice_index:
            pos = list(self.position)
            pos[i] = plane.slice_index
            self.set_position(pos)
        else:
            self._place()

    def _place(self) -> None:
        """Planes, crosshairs and captions of every view from the cursor position."""
        if self.doc is None:
            return
        doc = self.doc
        spatial = doc.spatial_axes
        for i, v in enumerate(self.views()):
            if v.plane is None:
                continue
            want = self._plane(i) if i else replace(v.plane, slice_index=self.position[i])
            if i and v.plane != want:
                v.set_plane(want)
            elif not i and v.plane.slice_index != self.position[i] and v.plane.slice_axis == spatial[0]:
                v.set_plane(want)
            p = v.plane
            ch = self._crosshairs[id(v)]
            ch.set_colours(PLANE_COLOURS[spatial.index(p.col)], PLANE_COLOURS[spatial.index(p.row)])
            ch.place(self.position[spatial.index(p.col)], self.position[spatial.index(p.row)])
            self._caption(i, v)
        self._show_info()

    def _caption(self, i: int, v: TiledImageView) -> None:
        """``axial z 12/95  24 mm`` in the view's top-left corner, in the plane's colour."""
        doc = self.doc
        assert doc is not None and v.plane is not None
        a = doc.spatial_axes[i]
        n = doc.shape[doc.axes.index(a)]
        text = f"{self.plane_names[i]}  {a} {self.position[i]}/{n - 1}"
        if doc.spacing is not None:
            text += f"  {format_length((self.position[i] + 0.5) * doc.spacing[i], doc.unit)}"
        cap = self._captions[id(v)]
        r, g, b = PLANE_COLOURS[i]
        cap.setStyleSheet(f"QLabel {{ background: rgba(0, 0, 0, 140); color: rgb({r},{g},{b}); padding: 2px 5px; }}")
        cap.setText(text)
        cap.adjustSize()
        cap.show()
        cap.raise_()

    def caption(self, axis: str) -> str:
        """Text of the caption of the view perpendicular to ``axis`` (tests)."""
        v = self.view_of(axis)
        return "" if v is None else self._captions[id(v)].text()

    def _show_info(self) -> None:
        """The cursor position (voxels, physical) and the value there (from the finest cached level)."""
        doc = self.doc
        if doc is None:
            return
        spatial = doc.spatial_axes
        lines = ["<b>Cursor</b>", "  ".join(f"{a} = {p}" for a, p in zip(spatial, self.position))]
        if doc.spacing is not None:
            lines.append(", ".join(format_length((p + 0.5) * s, doc.unit) for p, s in zip(self.position,
                                                                                          doc.spacing)))
        p = self.main.plane
        at = dict(zip(spatial, self.position))
        got = self.main.value_at(at[p.row], at[p.col]) if p is not None else None
        if got is not None:
            val, lv = got
            vs = ", ".join(f"{x:g}" for x in val) if isinstance(val, tuple) else f"{val:g}"
            lines.append(f"value {vs}" + ("" if lv == 0 else f" (≈, level {lv})"))
        lines.append("<br>Click, or drag a line or the ring where they cross, to move the cursor; zoom and pan "
                     "follow along shared axes.")
        self.info.setText("<br>".join(lines))

    def _clicked(self, v: TiledImageView, ev: Any) -> None:
        """A left click (no editing tool) in a view puts the cursor there."""
        if not self.active or v.plane is None or ev.button() != Qt.MouseButton.LeftButton or ev.double():
            return
        if v.vb.tool is not None or not v.vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = v.vb.mapSceneToView(ev.scenePos())
        self.move_in(v, p.y(), p.x())

    def move_in(self, v: TiledImageView, row: float, col: float) -> None:
        """Put the cursor on level-0 point (row, col) of view ``v``'s plane (its slice unchanged)."""
        assert self.doc is not None and v.plane is not None
        spatial = self.doc.spatial_axes
        pos = list(self.position)
        pos[spatial.index(v.plane.row)] = int(math.floor(row))
        pos[spatial.index(v.plane.col)] = int(math.floor(col))
        self.set_position(pos)

    def _line_dragged(self, v: TiledImageView, line: Any, which: str) -> None:
        """A crosshair line is dragged: the cursor follows along that line's axis."""
        if not self.active or v.plane is None or self.doc is None:
            return
        axis = v.plane.col if which == "col" else v.plane.row
        pos = list(self.position)
        pos[self.doc.spatial_axes.index(axis)] = int(math.floor(line.value()))
        self.set_position(pos)

    def _centre_dragged(self, v: TiledImageView, target: Any) -> None:
        """The ring at the lines' crossing is dragged: the cursor follows in both of the view's axes."""
        if self.active and v.plane is not None and target.moving:
            p = target.pos()
            self.move_in(v, p.y(), p.x())

    # --- zoom and pan ----------------------------------------------------------------------------------------
    def _units(self) -> dict[str, float]:
        """Per spatial axis, the length of one level-0 pixel on screen in display units: the spacing when the
        views draw physical space, else 1 (square pixels)."""
        doc = self.doc
        assert doc is not None
        sp = doc.spacing
        ok = self.main.physical_aspect and sp is not None and all(s > 0 and math.isfinite(s) for s in sp)
        return {a: (float(sp[i]) if ok and sp is not None else 1.0) for i, a in enumerate(doc.spatial_axes)}

    def _range_changed(self, src: TiledImageView) -> None:
        """A view was zoomed or panned: the others take its scale, and its centre along the axis they share."""
        if self._syncing or not self.active or src.plane is None or src not in self.views():
            return
        r, size = src.vb.viewRect(), src.vb.size()
        if size.width() < 2 or size.height() < 2:
            return
        k = self._units()
        scale = r.width() / size.width() * k[src.plane.col]  # display units per screen pixel
        centre = {src.plane.col: r.center().x(), src.plane.row: r.center().y()}
        self._set_ranges([v for v in self.views() if v is not src], scale, centre)

    def _set_ranges(self, views: Sequence[TiledImageView], scale: float, centre: dict[str, float]) -> None:
        """Show ``views`` at ``scale`` display units per screen pixel, centred on ``centre`` along its axes (the
        other axis of a view keeps its centre)."""
        if not (scale > 0 and math.isfinite(scale)):
            return
        k = self._units()
        self._syncing = True
        try:
            for v in views:
                if v.plane is None:
                    continue
                vr, size = v.vb.viewRect(), v.vb.size()
                c, r = v.plane.col, v.plane.row
                cx = centre.get(c, vr.center().x())
                cy = centre.get(r, vr.center().y())
                w, h = scale / k[c] * size.width(), scale / k[r] * size.height()
                v.vb.setRange(QRectF(cx - w / 2, cy - h / 2, w, h), padding=0)
        finally:
            self._syncing = False

    def fit_scale(self) -> float:
        """The smallest common scale (display units per screen pixel) showing every view's whole plane."""
        doc = self.doc
        assert doc is not None
        k = self._units()
        extent = {a: doc.shape[doc.axes.index(a)] for a in doc.spatial_axes}
        scale = 0.0
        for v in self.views():
            if v.plane is None:
                continue
            size = v.vb.size()
            c, r = v.plane.col, v.plane.row
            scale = max(scale, extent[c] * k[c] / max(1.0, size.width()), extent[r] * k[r] / max(1.0, size.height()))
        return scale

    def fit(self) -> None:
        """Fit: the main view alone; the orthogonal views at one common scale showing each whole plane."""
        if not self.active or self.doc is None:
            self.main.fit()
            return
        doc = self.doc
        extent = {a: doc.shape[doc.axes.index(a)] for a in doc.spatial_axes}
        for v in self.views():
            v._set_limits()
        self._set_ranges(self.views(), self.fit_scale(), {a: n / 2 for a, n in extent.items()})

    # --- settings that apply to every view -------------------------------------------------------------------
    def set_display(self, settings: DisplaySettings) -> None:
        """Contrast/colour settings of the main view, also for the other views (and their overviews)."""
        for v in self.extra:
            if v.doc is not None:
                v.set_display(settings)
        self.refresh_overviews()

    def set_overview(self, on: bool) -> None:
        """Show or hide the overview inset of every view."""
        self.overview = bool(on)
        for inset in self._insets.values():
            inset.set_enabled(self.overview)

    def inset(self, v: TiledImageView) -> OverviewInset:
        """The overview inset of view ``v``."""
        return self._insets[id(v)]

    def refresh_overviews(self) -> None:
        """Redraw every overview inset that needs it (plane or settings changed)."""
        for inset in self._insets.values():
            inset.refresh()

    def set_edits(self, edits: Sequence[Edit]) -> None:
        """Pending edits drawn in the other views too."""
        for v in self.extra:
            if v.doc is not None:
                v.set_edits(edits)

    def set_physical_aspect(self, on: bool) -> None:
        """Physical or voxel aspect in every view (the main view's is set by the window)."""
        for v in self.extra:
            v.set_physical_aspect(on) if v.doc is not None else setattr(v, "physical_aspect", bool(on))
        if self.active:
            self.fit()

    def set_cache_mb(self, mb: float) -> None:
        """The cache budget of the other views' loaders (the document's one cache)."""
        for v in self.extra:
            v.set_cache_mb(mb)

    def for_extra(self, method: str, *args: Any) -> None:
        """Call view method ``method(*args)`` on the other views showing the document (label settings...)."""
        for v in self.extra:
            if v.doc is not None:
                getattr(v, method)(*args)

    def stop_loading(self) -> None:
        """Stop every other view's reads (before the file is written)."""
        self.for_extra("stop_loading")

    def reload(self) -> None:
        """Read again in every other view (after the file was written)."""
        self.for_extra("reload")

    def is_idle(self) -> bool:
        """Every view on screen shows a complete frame with nothing loading."""
        return all(v.is_idle() for v in self.views())

    def resizeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(ev)
        for v in (self.main, *self.extra):
            self._captions[id(v)].move(4, 4)
            self._insets[id(v)].refresh()


__all__ = ["ORTHO", "SINGLE", "ViewLayout", "is_volume"]
