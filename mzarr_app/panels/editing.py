"""Editing: the paint target, tools (brush, eraser, fill, pick, rectangle, polygon) and the edits they make, as
undoable pending edits applied on Save (the geometry is :mod:`mzarr_app.paint`)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PySide6.QtCore import QObject, QRectF, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QGridLayout,
                               QHBoxLayout, QLabel, QPushButton, QRadioButton, QScrollArea, QVBoxLayout, QWidget)

from .. import paint as PT
from ..document import Edit
from ..paint import PlaneMask
from ..tiles import Plane


class EditModel(QObject):
    """Pending edits plus their undo stack; ``changed`` fires whenever the list changes."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.edits: list[Edit] = []
        self.stack = QUndoStack(self)

    def push(self, edit: Edit | Sequence[Edit], text: str | None = None) -> None:
        """Add ``edit`` (or several edits: one stroke, one polygon) as one undoable command."""
        edits = [edit] if isinstance(edit, Edit) else list(edit)
        if edits:
            self.stack.push(_AddEdit(self, edits, text or edits[0].label))

    def reset(self) -> None:
        """Forget every edit and the undo history (after Save or when a new file is opened)."""
        self.edits = []
        self.stack.clear()
        self.changed.emit()

    @property
    def dirty(self) -> bool:
        """True when there are unsaved edits."""
        return bool(self.edits)


class _AddEdit(QUndoCommand):
    """Undo command adding edits to the pending list."""

    def __init__(self, model: EditModel, edits: list[Edit], text: str) -> None:
        super().__init__(text)
        self.model, self.added = model, edits

    def redo(self) -> None:  # noqa: D401 - Qt override
        self.model.edits.extend(self.added)
        self.model.changed.emit()

    def undo(self) -> None:  # noqa: D401 - Qt override
        for e in self.added:
            self.model.edits.remove(e)
        self.model.changed.emit()


def plane_edits(doc: Any, plane: Plane, pieces: Sequence[PlaneMask], value: float, label: str,
                target: str | None = None) -> list[Edit]:
    """Edits setting the ``pieces`` of the current slice of ``plane`` to ``value`` in ``doc`` (the image's
    :class:`Document` or a label image's document, whose axes the edits use); ValueError if the value does not
    fit its dtype."""
    if not pieces:
        return []
    v = doc.check_value(value)
    ri, ci = doc.axes.index(plane.row), doc.axes.index(plane.col)
    out = []
    for p in pieces:
        spatial = {plane.row: slice(p.r0, p.r0 + p.rows), plane.col: slice(p.c0, p.c0 + p.cols)}
        if plane.slice_axis:
            spatial[plane.slice_axis] = slice(plane.slice_index, plane.slice_index + 1)
        mask = None
        if p.mask is not None:
            shape = [1] * len(doc.axes)
            shape[ri], shape[ci] = p.rows, p.cols
            mask = (p.mask if ri < ci else p.mask.T).reshape(shape)
        out.append(Edit(doc.full_region(spatial), v, mask, label, target))
    return out


def plane_shape(doc: Any, plane: Plane) -> tuple[int, int]:
    """(rows, cols) of ``plane`` in ``doc`` at level 0."""
    return doc.shape[doc.axes.index(plane.row)], doc.shape[doc.axes.index(plane.col)]


def rect_edit(doc: Any, plane: Plane, rect: QRectF | tuple[float, float, float, float], value: float,
              label: str = "fill", target: str | None = None) -> Edit | None:
    """Edit setting the level-0 rectangle (x0, y0, x1, y1) of the current slice to ``value``; None if empty."""
    if isinstance(rect, QRectF):
        rect = (rect.left(), rect.top(), rect.right(), rect.bottom())
    piece = PT.rect_mask(*rect, plane_shape(doc, plane))
    if piece is None:
        return None
    edits = plane_edits(doc, plane, [piece], value, f"{label} {piece.rows}x{piece.cols} = {value:g}", target)
    return edits[0]


def brush_edits(doc: Any, plane: Plane, points: Sequence[tuple[float, float]], radius: float | tuple[float, float],
                value: float, target: str | None = None, label: str = "brush") -> list[Edit]:
    """Edits painting the disc sweep of ``radius`` level-0 pixels (or (row, column) radii) along the stroke
    ``points`` ((x, y) level-0) with ``value`` (:func:`mzarr_app.paint.stroke_masks`)."""
    radii = (float(radius), float(radius)) if isinstance(radius, (int, float)) else (radius[0], radius[1])
    pieces = PT.stroke_masks(points, radii, plane_shape(doc, plane))
    return plane_edits(doc, plane, pieces, value, f"{label} {value:g}", target)


def polygon_edits(doc: Any, plane: Plane, vertices: Sequence[tuple[float, float]], value: float,
                  target: str | None = None) -> list[Edit]:
    """Edits filling the polygon ``vertices`` ((x, y) level-0) of the current slice with ``value``."""
    pieces = PT.polygon_masks(vertices, plane_shape(doc, plane))
    return plane_edits(doc, plane, pieces, value, f"polygon {value:g}", target)


#: (tool id, button text, shortcut shown in the tooltip)
TOOLS = (
    (None, "Pan", "Esc"), ("brush", "Brush", "B"), ("eraser", "Eraser", "E"), ("fill", "Fill", "F"),
    ("pick", "Pick", "K"), ("rect", "Rectangle", "R"), ("polygon", "Polygon", "P"),
)
_TIPS = {
    None: "Drag to pan",
    "brush": "Paint the value along the drag",
    "eraser": "Paint 0 along the drag",
    "fill": "Flood fill: the connected region of the clicked value, in the current plane",
    "pick": "Take the label value under the click",
    "rect": "Drag a rectangle, then Ctrl+Return fills it with the value (Ctrl+Backspace: 0)",
    "polygon": "Click the vertices; double-click or click the first vertex to fill it",
}


class EditingPanel(QWidget):
    """What is painted (the image or one of its label images), the tool, value, brush size and the edit buttons."""

    toolChanged = Signal(object)
    fillRequested = Signal(float)
    saveRequested = Signal()
    #: the paint target changed: a label image's name, or None (the image)
    targetChanged = Signal(object)
    newLabelImageRequested = Signal()
    newLabelValueRequested = Signal()

    def __init__(self, model: EditModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.target_box = QComboBox()
        self.target_box.setObjectName("editTarget")
        self.target_box.setToolTip("What the tools paint: a label image of the file, or the image's own pixels")
        self.new_image = QPushButton("New label image…")
        self.new_image.setObjectName("editNewLabelImage")
        self.group = QButtonGroup(self)
        self.buttons: dict[str | None, QRadioButton] = {}
        grid = QGridLayout()
        for i, (tool, text, key) in enumerate(TOOLS):
            b = QRadioButton(text)
            b.setObjectName(f"tool{text}")
            b.setToolTip(f"{_TIPS[tool]} ({key})")
            self.group.addButton(b)
            self.buttons[tool] = b
            grid.addWidget(b, i // 4, i % 4)
        self.pan = self.buttons[None]
        self.pan.setChecked(True)
        self.value = QDoubleSpinBox(minimum=-1e12, maximum=1e12, decimals=0)
        self.value.setObjectName("editValue")
        self.new_value = QPushButton("New label")
        self.new_value.setObjectName("editNewLabel")
        self.new_value.setToolTip("The next free label value (one more than the largest in the label image) (N)")
        self.radius = QDoubleSpinBox(minimum=0.5, maximum=1e6, value=5, decimals=1)
        self.radius.setObjectName("brushRadius")
        self.radius.setSuffix(" screen px")
        self.physical = QCheckBox("physical units")
        self.physical.setObjectName("brushPhysical")
        self.physical.setToolTip("Brush radius in the file's unit instead of screen pixels (files with a spacing)")
        self.physical.setEnabled(False)
        self.unit = ""
        self.fill = QPushButton("Set selection to value")
        self.clear = QPushButton("Clear selection (0)")
        self.undo = QPushButton("Undo")
        self.redo = QPushButton("Redo")
        self.save = QPushButton("Save")
        self.status = QLabel("No pending edits")
        self.notice = QLabel("")
        self.notice.setObjectName("editNotice")
        self.notice.setWordWrap(True)
        target_row = QHBoxLayout()
        target_row.addWidget(self.target_box, 1)
        target_row.addWidget(self.new_image)
        value_row = QHBoxLayout()
        value_row.addWidget(self.value, 1)
        value_row.addWidget(self.new_value)
        radius_row = QHBoxLayout()
        radius_row.addWidget(self.radius, 1)
        radius_row.addWidget(self.physical)
        form = QFormLayout()
        form.addRow("Paint", target_row)
        form.addRow("Tool", grid)
        form.addRow("Value / label", value_row)
        form.addRow("Brush radius", radius_row)
        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.addLayout(form)
        fill_row = QHBoxLayout()
        for button in (self.fill, self.clear):
            fill_row.addWidget(button)
        lay.addLayout(fill_row)
        row = QHBoxLayout()
        for button in (self.undo, self.redo, self.save):
            row.addWidget(button)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(self.notice)
        lay.addStretch(1)
        # scrolls rather than making the docks (and the window) taller than before the paint tools
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.group.buttonClicked.connect(lambda _b: self.toolChanged.emit(self.tool()))
        self.fill.clicked.connect(lambda: self.fillRequested.emit(self.value.value()))
        self.clear.clicked.connect(lambda: self.fillRequested.emit(0.0))
        self.undo.clicked.connect(model.stack.undo)
        self.redo.clicked.connect(model.stack.redo)
        self.save.clicked.connect(self.saveRequested.emit)
        self.new_image.clicked.connect(self.newLabelImageRequested.emit)
        self.new_value.clicked.connect(self.newLabelValueRequested.emit)
        self.physical.toggled.connect(self._radius_unit)
        self.target_box.currentIndexChanged.connect(lambda _i: self.targetChanged.emit(self.target()))
        model.changed.connect(self._refresh)
        model.stack.canUndoChanged.connect(self.undo.setEnabled)
        model.stack.canRedoChanged.connect(self.redo.setEnabled)
        self._refresh()

    def tool(self) -> str | None:
        """The active tool: 'brush', 'eraser', 'fill', 'pick', 'rect', 'polygon' or None (pan)."""
        return next((t for t, b in self.buttons.items() if b.isChecked()), None)

    def set_tool(self, tool: str | None) -> None:
        """Select a tool programmatically."""
        self.buttons.get(tool, self.pan).setChecked(True)
        self.toolChanged.emit(self.tool())

    # --- paint target -------------------------------------------------------------------------------------------
    def set_targets(self, labels: Sequence[str], image_is_label: bool, current: str | None = None) -> None:
        """Offer the image and the label images ``labels``; select ``current`` (default: the first label image,
        else the image). Emits ``targetChanged`` once."""
        self.target_box.blockSignals(True)
        self.target_box.clear()
        self.target_box.addItem("This label image" if image_is_label else "Image pixels", None)
        for name in labels:
            self.target_box.addItem(f"Labels: {name}", name)
        pick = current if current in labels else (labels[0] if labels else None)
        self.target_box.setCurrentIndex(self.target_box.findData(pick) if pick is not None else 0)
        self.target_box.blockSignals(False)
        self.targetChanged.emit(self.target())

    def target(self) -> str | None:
        """The label image painted (its name), or None for the image itself."""
        return self.target_box.currentData()

    def set_target(self, name: str | None) -> None:
        """Paint label image ``name`` (None: the image)."""
        i = self.target_box.findData(name) if name is not None else 0
        if i >= 0:
            self.target_box.setCurrentIndex(i)

    def set_dtype(self, dtype: np.dtype, is_label: bool) -> None:
        """Adapt the value box to the painted dtype."""
        dt = np.dtype(dtype)
        if dt.kind in "uib":
            info = np.iinfo(np.uint8 if dt.kind == "b" else dt)
            self.value.setDecimals(0)
            self.value.setRange(float(info.min), float(1 if dt.kind == "b" else info.max))
        else:
            self.value.setDecimals(4)
            self.value.setRange(-1e12, 1e12)
        self.value.setValue(1 if is_label else self.value.value())
        self.new_value.setEnabled(is_label)

    def set_spacing(self, unit: str | None) -> None:
        """The file's unit when it has a spacing (physical brush radius possible), else None."""
        self.unit = unit or ""
        self.physical.setEnabled(unit is not None)
        if unit is None:
            self.physical.setChecked(False)
        self._radius_unit()

    def _radius_unit(self) -> None:
        self.radius.setSuffix(f" {self.unit or 'units'}" if self.physical.isChecked() else " screen px")

    def radius_is_physical(self) -> bool:
        """The brush radius is in the file's unit (else in screen pixels)."""
        return self.physical.isChecked() and self.physical.isEnabled()

    def _refresh(self) -> None:
        n = len(self.model.edits)
        self.status.setText(f"{n} pending edit(s) — not saved" if n else "No pending edits")
        self.save.setEnabled(bool(n))
        self.undo.setEnabled(self.model.stack.canUndo())
        self.redo.setEnabled(self.model.stack.canRedo())
