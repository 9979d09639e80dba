"""Labels panel: the open file's label images with a show/hide checkbox each, the overlay opacity and the style."""

from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QSlider, QVBoxLayout,
                               QWidget)


class LabelsPanel(QWidget):
    """Lists label images (checkable), an opacity slider (0-100 %) and a "Contours only" switch."""

    visibilityChanged = Signal(str, bool)
    opacityChanged = Signal(float)
    contourChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setObjectName("labelsList")
        self.list.itemChanged.connect(self._item_changed)
        self.empty = QLabel("No label images in this file")
        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setObjectName("labelsOpacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100.0))
        row.addWidget(self.opacity)
        self.contour = QCheckBox("Contours only")
        self.contour.setObjectName("labelsContour")
        self.contour.toggled.connect(self.contourChanged.emit)
        lay.addWidget(self.list)
        lay.addWidget(self.empty)
        lay.addLayout(row)
        lay.addWidget(self.contour)

    def set_labels(self, names: Sequence[str], visible: Sequence[bool] | None = None) -> None:
        """Show ``names`` (checked when visible) without emitting ``visibilityChanged``."""
        self.list.blockSignals(True)
        self.list.clear()
        for i, name in enumerate(names):
            it = QListWidgetItem(name)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = True if visible is None else bool(visible[i])
            it.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.list.addItem(it)
        self.list.blockSignals(False)
        self.empty.setVisible(not names)

    def item(self, name: str) -> QListWidgetItem | None:
        """The list item of label image ``name``."""
        for i in range(self.list.count()):
            if self.list.item(i).text() == name:
                return self.list.item(i)
        return None

    def _item_changed(self, item: QListWidgetItem) -> None:
        self.visibilityChanged.emit(item.text(), item.checkState() == Qt.CheckState.Checked)
