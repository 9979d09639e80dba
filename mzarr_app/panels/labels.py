"""Labels panel: the open file's label images with a show/hide checkbox each, the overlay opacity and the style,
and Export… of the selected label image (NIfTI, NRRD, MHA, TIFF... in the image's geometry)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QPushButton, QSlider, QVBoxLayout, QWidget)

import mzarr_core
from mzarr_core import formats

from ..tasks import run_task

if TYPE_CHECKING:
    from ..window import MainWindow


def parse_values(text: str) -> list[int]:
    """Label values from ``"1, 4-6 9"`` (ValueError on anything else; ranges of at most 65536 values)."""
    out: list[int] = []
    for part in text.replace(",", " ").split():
        if "-" in part[1:]:
            i = part.index("-", 1)
            a, b = int(part[:i]), int(part[i + 1:])
            if b < a or b - a > 65535:
                raise ValueError(f"bad range {part!r}")
            out.extend(range(a, b + 1))
        else:
            out.append(int(part))
    return out


class LabelsPanel(QWidget):
    """Lists label images (checkable), the label values hidden in the selected one, an opacity slider (0-100 %)
    and a "Contours only" switch."""

    visibilityChanged = Signal(str, bool)
    #: (label image, values not to draw)
    hiddenValuesChanged = Signal(str, list)
    opacityChanged = Signal(float)
    contourChanged = Signal(bool)
    #: the label image to export (Export…)
    exportRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setObjectName("labelsList")
        self.list.itemChanged.connect(self._item_changed)
        self.list.currentItemChanged.connect(self._current_changed)
        self.empty = QLabel("No label images in this file")
        self._hidden: dict[str, str] = {}
        hide_row = QHBoxLayout()
        hide_row.addWidget(QLabel("Hide values"))
        self.hide_values = QLineEdit()
        self.hide_values.setObjectName("labelsHideValues")
        self.hide_values.setPlaceholderText("e.g. 1, 4-6")
        self.hide_values.setToolTip("Label values of the selected label image not to draw")
        self.hide_values.editingFinished.connect(self._hide_edited)
        hide_row.addWidget(self.hide_values)
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
        lay.addLayout(hide_row)
        lay.addLayout(row)
        lay.addWidget(self.contour)
        self.export = QPushButton("Export…")
        self.export.setObjectName("labelsExport")
        self.export.setToolTip("Write the selected label image to NIfTI, NRRD, MHA, TIFF... with the image's spacing, "
                               "origin and direction")
        self.export.setEnabled(False)
        self.export.clicked.connect(self._export_clicked)
        lay.addWidget(self.export)

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
        self._hidden = {}
        self.hide_values.clear()
        if names:
            self.list.setCurrentRow(0)
        self.empty.setVisible(not names)
        self.export.setEnabled(self.list.currentItem() is not None)

    def item(self, name: str) -> QListWidgetItem | None:
        """The list item of label image ``name``."""
        for i in range(self.list.count()):
            if self.list.item(i).text() == name:
                return self.list.item(i)
        return None

    def _item_changed(self, item: QListWidgetItem) -> None:
        self.visibilityChanged.emit(item.text(), item.checkState() == Qt.CheckState.Checked)

    def _current_changed(self, item: QListWidgetItem | None, _previous: object = None) -> None:
        self.hide_values.setText(self._hidden.get(item.text(), "") if item is not None else "")
        self.export.setEnabled(item is not None)

    def _export_clicked(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.exportRequested.emit(item.text())

    def ask_export_path(self, image_path: str, name: str) -> str:
        """Ask where to export label image ``name`` (tests replace this); '' when cancelled."""
        start = formats.strip_suffix(image_path.rstrip("/\\")) + f"-{name}.nii.gz"
        suffixes = " ".join(f"*{s}" for s in formats.export_suffixes())
        path, _ = QFileDialog.getSaveFileName(self, f"Export label image {name!r}", start,
                                              f"Label image ({suffixes})")
        return path

    def _hide_edited(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        text = self.hide_values.text()
        try:
            values = parse_values(text)
        except ValueError:
            self.hide_values.setStyleSheet("color: red")
            return
        self.hide_values.setStyleSheet("")
        self._hidden[item.text()] = text
        self.hiddenValuesChanged.emit(item.text(), values)


def export_label(window: MainWindow, name: str, target: str | None = None) -> str | None:
    """Export label image ``name`` of the open file to ``target`` (asked with ``window.labels.ask_export_path``
    unless given) in the format its suffix names, with the image's geometry, behind a cancellable progress dialog;
    the path written, or None (cancelled, or an error shown in a box)."""
    if window.doc is None:
        return None
    path = window.doc.path
    if window.model.dirty:  # the export reads the file: unsaved strokes would be missing from it
        window.show_error(f"Cannot export label image {name!r} yet",
                          "It has unsaved edits, which an export would leave out: save (File > Save), then export.")
        return None
    target = target or window.labels.ask_export_path(path, name)
    if not target:
        return None

    def work(progress: Any, _report: Any) -> Any:
        with mzarr_core.Mzarr(path, "r") as image:
            return formats.export(image.label(name), target, progress=progress)

    _, msg = run_task(window, "Export label image", f"Exporting {name!r} to {os.path.basename(target)}…", work,
                      window.progress_hook)
    if msg:
        if msg != "cancelled":
            window.show_error(f"Cannot export label image {name!r}", msg)
        return None
    window.statusBar().showMessage(f"Exported label image {name!r} to {os.path.basename(target)}", 8000)
    return target
