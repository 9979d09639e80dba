"""Annotations panel: the measurement tools, the list of the file's annotations (rename, delete, class and colour,
go to), the selected one's measurement and its plot from full-resolution pixels: a line's profile, a region's
histogram."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QButtonGroup, QColorDialog, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from mzarr_core.annotations import Annotation

#: (tool name, button text, tooltip) of the tool buttons; None = pan
TOOL_BUTTONS = (
    (None, "Pan", "Pan and zoom (Esc)"),
    ("measure_point", "Point", "Click to place a named point"),
    ("measure_line", "Ruler", "Drag a line: its physical length, and its profile from full-resolution pixels"),
    ("measure_rect", "Rectangle", "Drag a rectangle: statistics of its full-resolution pixels"),
    ("measure_ellipse", "Ellipse", "Drag an ellipse's box: statistics of its full-resolution pixels"),
    ("measure_polygon", "Polygon", "Click the vertices; double-click (or click the first vertex) to close it"),
)
DEFAULT_COLOR = (255, 200, 0)


class AnnotationsPanel(QWidget):
    """Tool buttons, the annotations list (name editable in place) and the selected annotation's measurement."""

    toolSelected = Signal(object)
    selectionChanged = Signal(object)  # an annotation id or None
    renamed = Signal(str, str)
    deleteRequested = Signal(str)
    classChanged = Signal(str, object, object)  # id, class name or None, (r, g, b) or None
    jumpRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        grid = QGridLayout()
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.tool_buttons: dict[str | None, QToolButton] = {}
        for i, (tool, text, tip) in enumerate(TOOL_BUTTONS):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.setCheckable(True)
            b.setObjectName(f"annotationTool_{tool or 'pan'}")
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            self.group.addButton(b)
            grid.addWidget(b, i // 3, i % 3)
            self.tool_buttons[tool] = b
            b.clicked.connect(lambda _c=False, t=tool: self.toolSelected.emit(t))
        self.tool_buttons[None].setChecked(True)
        lay.addLayout(grid)
        self.list = QTreeWidget()
        self.list.setObjectName("annotationsList")
        self.list.setColumnCount(4)
        self.list.setHeaderLabels(["Name", "Type", "Class", "Plane"])
        self.list.setRootIsDecorated(False)
        self.list.setMinimumHeight(60)  # the dock shares the right side with the other panels
        self.list.itemChanged.connect(self._item_changed)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemDoubleClicked.connect(self._double_clicked)
        lay.addWidget(self.list, 2)
        row = QHBoxLayout()
        self.rename_button = QPushButton("Rename")
        self.delete_button = QPushButton("Delete")
        self.goto_button = QPushButton("Go to")
        for b in (self.rename_button, self.delete_button, self.goto_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.rename_button.clicked.connect(self._rename_current)
        self.delete_button.clicked.connect(lambda: self._emit_current(self.deleteRequested))
        self.goto_button.clicked.connect(lambda: self._emit_current(self.jumpRequested))
        klass = QHBoxLayout()
        klass.addWidget(QLabel("Class"))
        self.class_edit = QLineEdit()
        self.class_edit.setObjectName("annotationClass")
        self.class_edit.setPlaceholderText("e.g. Tumor (Enter to apply)")
        self.class_edit.editingFinished.connect(self._class_edited)
        klass.addWidget(self.class_edit)
        self.color_button = QPushButton("Colour…")
        self.color_button.setObjectName("annotationColour")
        self.color_button.clicked.connect(self._pick_color)
        klass.addWidget(self.color_button)
        lay.addLayout(klass)
        self.result = QLabel("Draw with a tool above: lengths and region statistics come from full-resolution pixels")
        self.result.setObjectName("annotationResult")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.result)
        self.profile = pg.PlotWidget()
        self.profile.setObjectName("annotationProfile")
        self.profile.setLabel("left", "value")
        self.profile.hide()
        lay.addWidget(self.profile, 1)
        self._items: dict[str, Annotation] = {}
        self._filling = False
        self._update_buttons()

    # --- list ------------------------------------------------------------------------------------------------
    def set_annotations(self, items: Sequence[Annotation], current: str | None = None) -> None:
        """Show ``items`` (keeping ``current``, or the current id, selected)."""
        keep = current if current is not None else self.current_id()
        self._filling = True
        self.list.blockSignals(True)
        self.list.clear()
        self._items = {a.id: a for a in items}
        chosen = None
        for a in items:
            it = QTreeWidgetItem([a.name or f"({a.kind})", a.kind, a.class_name or "",
                                  f"{a.plane[0]}={a.plane[1]}" if a.plane else ""])
            it.setData(0, Qt.ItemDataRole.UserRole, a.id)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsEditable)
            color = QColor(*(a.color or DEFAULT_COLOR))
            it.setForeground(1, color)
            self.list.addTopLevelItem(it)
            if a.id == keep:
                chosen = it
        self.list.blockSignals(False)
        self._filling = False
        if chosen is not None:
            self.list.setCurrentItem(chosen)  # emits selectionChanged
        else:
            self._update_buttons()
            self.selectionChanged.emit(None)

    def current_id(self) -> str | None:
        it = self.list.currentItem()
        return None if it is None else str(it.data(0, Qt.ItemDataRole.UserRole))

    def select(self, ident: str | None) -> None:
        """Make the annotation ``ident`` current (None: none)."""
        for i in range(self.list.topLevelItemCount()):
            it = self.list.topLevelItem(i)
            if it.data(0, Qt.ItemDataRole.UserRole) == ident:
                self.list.setCurrentItem(it)
                return
        self.list.setCurrentItem(None)

    def item_texts(self) -> list[list[str]]:
        """The list's rows as shown (tests, accessibility)."""
        return [[self.list.topLevelItem(i).text(c) for c in range(4)] for i in range(self.list.topLevelItemCount())]

    def _current_changed(self, *_args: object) -> None:
        self._update_buttons()
        if not self._filling:
            self.selectionChanged.emit(self.current_id())

    def _item_changed(self, it: QTreeWidgetItem, column: int) -> None:
        if self._filling or column != 0:
            return
        self.renamed.emit(str(it.data(0, Qt.ItemDataRole.UserRole)), it.text(0).strip())

    def _double_clicked(self, it: QTreeWidgetItem, column: int) -> None:
        if column == 0:
            self.list.editItem(it, 0)
        else:
            self.jumpRequested.emit(str(it.data(0, Qt.ItemDataRole.UserRole)))

    def _rename_current(self) -> None:
        it = self.list.currentItem()
        if it is not None:
            self.list.editItem(it, 0)

    def _emit_current(self, signal: Signal) -> None:
        ident = self.current_id()
        if ident is not None:
            signal.emit(ident)

    def _update_buttons(self) -> None:
        has = self.current_id() is not None
        for w in (self.rename_button, self.delete_button, self.goto_button, self.class_edit, self.color_button):
            w.setEnabled(has)
        a = self._items.get(self.current_id() or "")
        self.class_edit.blockSignals(True)
        self.class_edit.setText((a.class_name or "") if a else "")
        self.class_edit.blockSignals(False)

    # --- class and colour --------------------------------------------------------------------------------------
    def _class_edited(self) -> None:
        a = self._items.get(self.current_id() or "")
        text = self.class_edit.text().strip() or None
        if a is not None and text != a.class_name:
            self.classChanged.emit(a.id, text, a.color)

    def _pick_color(self) -> None:
        a = self._items.get(self.current_id() or "")
        if a is None:
            return
        c = QColorDialog.getColor(QColor(*(a.color or DEFAULT_COLOR)), self, "Annotation colour")
        if c.isValid():
            self.set_color((c.red(), c.green(), c.blue()))

    def set_color(self, rgb: tuple[int, int, int]) -> None:
        """Give the current annotation (its class) this colour."""
        a = self._items.get(self.current_id() or "")
        if a is not None:
            self.classChanged.emit(a.id, a.class_name, tuple(int(v) for v in rgb))

    # --- tools and results -------------------------------------------------------------------------------------
    def set_tool(self, tool: str | None) -> None:
        """Show ``tool`` as the checked button (None: pan; a tool of another panel: none checked)."""
        b = self.tool_buttons.get(tool)
        if b is None:
            self.group.setExclusive(False)
            for btn in self.tool_buttons.values():
                btn.setChecked(False)
            self.group.setExclusive(True)
        else:
            b.setChecked(True)

    def show_result(self, text: str) -> None:
        self.result.setText(text)

    def show_histogram(self, counts: Sequence[np.ndarray], edges: Sequence[np.ndarray]) -> None:
        """Plot a region's histogram (one step curve per channel), or hide the plot when there is none."""
        self.profile.clear()
        if not counts:
            self.profile.hide()
            return
        pens = ["w"] if len(counts) == 1 else ["r", "g", "b", "w"]
        for c, (h, e) in enumerate(zip(counts, edges)):
            self.profile.plot(np.asarray(e, np.float64), np.asarray(h, np.float64), stepMode="center",
                              pen=pens[c % len(pens)])
        self.profile.setLabel("bottom", "value (full-resolution pixels)")
        self.profile.setLabel("left", "pixels")
        self.profile.show()

    def show_profile(self, distance: np.ndarray | None, values: np.ndarray | None, unit: str | None = None) -> None:
        """Plot a line profile (one curve per channel), or hide the plot."""
        self.profile.clear()
        if distance is None or values is None:
            self.profile.hide()
            return
        v = values.reshape(len(values), -1).astype(np.float64)
        pens = ["w"] if v.shape[1] == 1 else ["r", "g", "b", "w"]
        for c in range(v.shape[1]):
            self.profile.plot(distance, v[:, c], pen=pens[c % len(pens)])
        self.profile.setLabel("bottom", f"distance ({unit or 'px'})")
        self.profile.setLabel("left", "value")
        self.profile.show()
