"""Region editing: rectangle fill/clear and a label brush, as undoable pending edits applied on Save."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PySide6.QtCore import QObject, QRectF, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack
from PySide6.QtWidgets import (QButtonGroup, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QPushButton,
                               QRadioButton, QVBoxLayout, QWidget)

from ..document import Document, Edit
from ..tiles import Plane


class EditModel(QObject):
    """Pending edits plus their undo stack; ``changed`` fires whenever the list changes."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.edits: list[Edit] = []
        self.stack = QUndoStack(self)

    def push(self, edit: Edit) -> None:
        """Add ``edit`` as an undoable command."""
        self.stack.push(_AddEdit(self, edit))

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
    """Undo command adding one edit to the pending list."""

    def __init__(self, model: EditModel, edit: Edit) -> None:
        super().__init__(edit.label)
        self.model, self.edit = model, edit

    def redo(self) -> None:  # noqa: D401 - Qt override
        self.model.edits.append(self.edit)
        self.model.changed.emit()

    def undo(self) -> None:  # noqa: D401 - Qt override
        self.model.edits.remove(self.edit)
        self.model.changed.emit()


def rect_edit(doc: Document, plane: Plane, rect: QRectF | tuple[float, float, float, float], value: float,
              label: str = "fill") -> Edit | None:
    """Edit setting the level-0 rectangle (x0, y0, x1, y1) of the current slice to ``value``; None if empty."""
    if isinstance(rect, QRectF):
        rect = (rect.left(), rect.top(), rect.right(), rect.bottom())
    x0, y0, x1, y1 = rect
    rows = doc.shape[doc.axes.index(plane.row)]
    cols = doc.shape[doc.axes.index(plane.col)]
    r0, r1 = max(0, math.floor(min(y0, y1))), min(rows, math.ceil(max(y0, y1)))
    c0, c1 = max(0, math.floor(min(x0, x1))), min(cols, math.ceil(max(x0, x1)))
    if r1 <= r0 or c1 <= c0:
        return None
    spatial = {plane.row: slice(r0, r1), plane.col: slice(c0, c1)}
    if plane.slice_axis:
        spatial[plane.slice_axis] = slice(plane.slice_index, plane.slice_index + 1)
    return Edit(doc.full_region(spatial), doc.check_value(value), None, f"{label} {r1 - r0}x{c1 - c0} = {value:g}")


def brush_edit(doc: Document, plane: Plane, points: Sequence[tuple[float, float]], radius: float,
               value: float) -> Edit | None:
    """Edit painting discs of ``radius`` along the stroke ``points`` ((x, y) level-0) with ``value``."""
    if not points:
        return None
    pts = [points[0]]
    step = max(0.5, radius / 2)
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        n = max(1, int(math.hypot(xb - xa, yb - ya) / step))
        pts += [(xa + (xb - xa) * t / n, ya + (yb - ya) * t / n) for t in range(1, n + 1)]
    p = np.asarray(pts)
    rows = doc.shape[doc.axes.index(plane.row)]
    cols = doc.shape[doc.axes.index(plane.col)]
    r0, r1 = max(0, math.floor(p[:, 1].min() - radius)), min(rows, math.ceil(p[:, 1].max() + radius) + 1)
    c0, c1 = max(0, math.floor(p[:, 0].min() - radius)), min(cols, math.ceil(p[:, 0].max() + radius) + 1)
    if r1 <= r0 or c1 <= c0:
        return None
    rr, cc = np.mgrid[r0:r1, c0:c1]
    mask2 = np.zeros(rr.shape, bool)
    for x, y in pts:
        mask2 |= (rr + 0.5 - y) ** 2 + (cc + 0.5 - x) ** 2 <= radius * radius
    if not mask2.any():
        return None
    ri, ci = doc.axes.index(plane.row), doc.axes.index(plane.col)
    m = mask2 if ri < ci else mask2.T
    shape = [1] * len(doc.axes)
    shape[ri], shape[ci] = mask2.shape
    mask = m.reshape(shape)
    spatial = {plane.row: slice(r0, r1), plane.col: slice(c0, c1)}
    if plane.slice_axis:
        spatial[plane.slice_axis] = slice(plane.slice_index, plane.slice_index + 1)
    return Edit(doc.full_region(spatial), doc.check_value(value), mask, f"brush {value:g}")


class EditingPanel(QWidget):
    """Tool choice (pan / rectangle / brush), value, brush size and the edit buttons."""

    toolChanged = Signal(object)
    fillRequested = Signal(float)
    saveRequested = Signal()

    def __init__(self, model: EditModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.pan = QRadioButton("Pan")
        self.rect = QRadioButton("Rectangle")
        self.brush = QRadioButton("Brush")
        self.pan.setChecked(True)
        self.group = QButtonGroup(self)
        for b in (self.pan, self.rect, self.brush):
            self.group.addButton(b)
        self.value = QDoubleSpinBox(minimum=-1e12, maximum=1e12, decimals=0)
        self.value.setObjectName("editValue")
        self.radius = QDoubleSpinBox(minimum=0.5, maximum=500, value=5, decimals=1)
        self.fill = QPushButton("Set selection to value")
        self.clear = QPushButton("Clear selection (0)")
        self.undo = QPushButton("Undo")
        self.redo = QPushButton("Redo")
        self.save = QPushButton("Save")
        self.status = QLabel("No pending edits")
        tools = QHBoxLayout()
        for b in (self.pan, self.rect, self.brush):
            tools.addWidget(b)
        form = QFormLayout()
        form.addRow("Tool", tools)
        form.addRow("Value / label", self.value)
        form.addRow("Brush radius", self.radius)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        for b in (self.fill, self.clear):
            lay.addWidget(b)
        row = QHBoxLayout()
        for b in (self.undo, self.redo, self.save):
            row.addWidget(b)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addStretch(1)
        self.group.buttonClicked.connect(lambda _b: self.toolChanged.emit(self.tool()))
        self.fill.clicked.connect(lambda: self.fillRequested.emit(self.value.value()))
        self.clear.clicked.connect(lambda: self.fillRequested.emit(0.0))
        self.undo.clicked.connect(model.stack.undo)
        self.redo.clicked.connect(model.stack.redo)
        self.save.clicked.connect(self.saveRequested.emit)
        model.changed.connect(self._refresh)
        model.stack.canUndoChanged.connect(self.undo.setEnabled)
        model.stack.canRedoChanged.connect(self.redo.setEnabled)
        self._refresh()

    def tool(self) -> str | None:
        """'rect', 'brush' or None (pan)."""
        return "rect" if self.rect.isChecked() else "brush" if self.brush.isChecked() else None

    def set_tool(self, tool: str | None) -> None:
        """Select a tool programmatically."""
        {"rect": self.rect, "brush": self.brush}.get(tool or "", self.pan).setChecked(True)
        self.toolChanged.emit(self.tool())

    def set_dtype(self, dtype: np.dtype, is_label: bool) -> None:
        """Adapt the value box to the image dtype."""
        dt = np.dtype(dtype)
        if dt.kind in "ui":
            info = np.iinfo(dt)
            self.value.setDecimals(0)
            self.value.setRange(float(info.min), float(info.max))
        else:
            self.value.setDecimals(4)
            self.value.setRange(-1e12, 1e12)
        self.value.setValue(1 if is_label else self.value.value())

    def _refresh(self) -> None:
        n = len(self.model.edits)
        self.status.setText(f"{n} pending edit(s) — not saved" if n else "No pending edits")
        self.save.setEnabled(bool(n))
        self.undo.setEnabled(self.model.stack.canUndo())
        self.redo.setEnabled(self.model.stack.canRedo())
