"""Metadata panel: the file's attributes as an editable JSON tree (types kept, bad input refused)."""

from __future__ import annotations

import json
import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

TYPES = ("string", "integer", "number", "boolean", "null", "object", "array")
_ROLE = Qt.ItemDataRole.UserRole


def json_type(v: Any) -> str:
    """JSON type name of a Python value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, (list, tuple)):
        return "array"
    raise TypeError(f"not a JSON value: {v!r}")


def format_value(v: Any) -> str:
    """Text shown for a scalar (containers show a summary)."""
    t = json_type(v)
    if t == "string":
        return v
    if t == "object":
        return f"{{{len(v)} keys}}"
    if t == "array":
        return f"[{len(v)} items]"
    return json.dumps(v)


def parse_value(text: str, type_name: str) -> Any:
    """Parse ``text`` as a value of JSON type ``type_name``; ValueError with a reason if it is not one."""
    s = text.strip()
    if type_name == "string":
        return text
    if type_name == "integer":
        try:
            return int(s)
        except ValueError:
            raise ValueError(f"'{text}' is not an integer") from None
    if type_name == "number":
        try:
            v = float(s)
        except ValueError:
            raise ValueError(f"'{text}' is not a number") from None
        if not math.isfinite(v):
            raise ValueError("JSON numbers must be finite")
        return v
    if type_name == "boolean":
        if s.lower() in ("true", "false"):
            return s.lower() == "true"
        raise ValueError(f"'{text}' is not true or false")
    if type_name == "null":
        if s in ("", "null"):
            return None
        raise ValueError("a null value can only be 'null'")
    raise ValueError(f"{type_name} values are edited through their children")


def default_value(type_name: str) -> Any:
    """Empty value of a JSON type."""
    return {"string": "", "integer": 0, "number": 0.0, "boolean": False, "null": None, "object": {},
            "array": []}[type_name]


class MetadataPanel(QWidget):
    """Editable tree of the attributes; ``save`` hands the dict to the window via ``saveRequested``."""

    changed = Signal()
    saveRequested = Signal(dict)
    error = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Key", "Value", "Type"])
        self.tree.setObjectName("metadataTree")
        self.new_key = QLineEdit(placeholderText="new key")
        self.new_type = QComboBox()
        self.new_type.addItems(list(TYPES))
        self.add = QPushButton("Add")  # next to the selected key (top level when nothing or a top-level key is)
        self.add.setToolTip("Add the key at the level of the selected key (top level if none is selected)")
        self.add_inside = QPushButton("Add inside")  # into the selected object or array
        self.add_inside.setToolTip("Add the key inside the selected object or array")
        self.add_inside.setEnabled(False)
        self.delete = QPushButton("Delete")
        self.save = QPushButton("Save metadata")
        self.message = QLabel("")
        self.message.setStyleSheet("color: #d04040")
        self.message.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.new_key, 1)
        row.addWidget(self.new_type)
        row.addWidget(self.add)
        row.addWidget(self.add_inside)
        row.addWidget(self.delete)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tree, 1)
        lay.addLayout(row)
        lay.addWidget(self.save)
        lay.addWidget(self.message)
        self.dirty = False
        self._loading = False
        self.tree.itemChanged.connect(self._item_changed)
        self.add.clicked.connect(self._add_clicked)
        self.add_inside.clicked.connect(self._add_inside_clicked)
        self.tree.currentItemChanged.connect(self._selection_changed)
        self.tree.viewport().installEventFilter(self)  # a click on empty space clears the selection
        self.delete.clicked.connect(self._delete_clicked)
        self.save.clicked.connect(lambda: self.saveRequested.emit(self.to_dict()))
        self.error.connect(self.message.setText)
        self.set_attrs({})

    # --- model <-> tree --------------------------------------------------------------------------------------
    def set_attrs(self, attrs: dict[str, Any]) -> None:
        """Show ``attrs`` (clean state)."""
        self._loading = True
        self.tree.clear()
        for k, v in attrs.items():
            self.tree.addTopLevelItem(self._make_item(str(k), v, in_array=False))
        self.tree.expandToDepth(1)
        self.tree.resizeColumnToContents(0)
        self._loading = False
        self.dirty = False
        self.message.setText("")
        self.save.setEnabled(False)

    def _make_item(self, key: str, v: Any, in_array: bool) -> QTreeWidgetItem:
        t = json_type(v)
        it = QTreeWidgetItem([key, format_value(v), t])
        it.setData(0, _ROLE, (key, t))
        it.setData(1, _ROLE, format_value(v))
        flags = it.flags() | Qt.ItemFlag.ItemIsEditable
        it.setFlags(flags)
        if t == "object":
            for k2, v2 in v.items():
                it.addChild(self._make_item(str(k2), v2, False))
        elif t == "array":
            for i, v2 in enumerate(v):
                it.addChild(self._make_item(str(i), v2, True))
        return it

    def _value(self, it: QTreeWidgetItem) -> Any:
        t = it.data(0, _ROLE)[1]
        if t == "object":
            return {it.child(i).text(0): self._value(it.child(i)) for i in range(it.childCount())}
        if t == "array":
            return [self._value(it.child(i)) for i in range(it.childCount())]
        return parse_value(it.text(1), t)

    def to_dict(self) -> dict[str, Any]:
        """The tree as a JSON dict."""
        return {self.tree.topLevelItem(i).text(0): self._value(self.tree.topLevelItem(i))
                for i in range(self.tree.topLevelItemCount())}

    # --- edits -----------------------------------------------------------------------------------------------
    def _siblings(self, it: QTreeWidgetItem) -> list[QTreeWidgetItem]:
        p = it.parent()
        if p is None:
            return [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        return [p.child(i) for i in range(p.childCount())]

    def _in_array(self, it: QTreeWidgetItem) -> bool:
        p = it.parent()
        return p is not None and p.data(0, _ROLE)[1] == "array"

    def _item_changed(self, it: QTreeWidgetItem, column: int) -> None:
        if self._loading:
            return
        old_key, t = it.data(0, _ROLE)
        self._loading = True
        try:
            if column == 0 and it.text(0) != old_key:
                new = it.text(0)
                if self._in_array(it):
                    it.setText(0, old_key)
                    self.error.emit("array items are numbered; they cannot be renamed")
                elif not new.strip():
                    it.setText(0, old_key)
                    self.error.emit("a key cannot be empty")
                elif any(s is not it and s.text(0) == new for s in self._siblings(it)):
                    it.setText(0, old_key)
                    self.error.emit(f"key '{new}' already exists here")
                else:
                    it.setData(0, _ROLE, (new, t))
                    self._mark()
            elif column == 1:
                if t in ("object", "array"):
                    it.setText(1, format_value(self._value(it)))
                    self.error.emit(f"{t} values are edited through their children")
                    return
                try:
                    v = parse_value(it.text(1), t)
                except ValueError as exc:
                    it.setText(1, it.data(1, _ROLE) if it.data(1, _ROLE) is not None else format_value(default_value(t)))
                    self.error.emit(f"invalid {t}: {exc}")
                    return
                it.setText(1, format_value(v))
                it.setData(1, _ROLE, format_value(v))
                self._mark()
            elif column == 2 and it.text(2) != t:
                it.setText(2, t)
                self.error.emit("the type of a value cannot be changed; delete and add the key again")
        finally:
            self._loading = False

    def _mark(self) -> None:
        self.dirty = True
        self.save.setEnabled(True)
        self.message.setText("")
        self.changed.emit()

    def set_item_value(self, it: QTreeWidgetItem, text: str) -> bool:
        """Edit a scalar value as the user would; False (with a message) if refused."""
        self.message.setText("")
        it.setText(1, text)
        return self.message.text() == ""

    def rename_item(self, it: QTreeWidgetItem, key: str) -> bool:
        """Rename a key as the user would; False (with a message) if refused."""
        self.message.setText("")
        it.setText(0, key)
        return it.text(0) == key

    def find(self, *path: str) -> QTreeWidgetItem | None:
        """Item at a key path, e.g. ``find("acquisition", "date")``."""
        items = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        it = None
        for k in path:
            it = next((x for x in items if x.text(0) == k), None)
            if it is None:
                return None
            items = [it.child(i) for i in range(it.childCount())]
        return it

    def add_key(self, key: str, type_name: str, parent: QTreeWidgetItem | None = None) -> QTreeWidgetItem | None:
        """Add ``key`` of ``type_name`` under ``parent`` (an object/array item, or top level)."""
        self.message.setText("")
        if parent is not None and parent.data(0, _ROLE)[1] not in ("object", "array"):
            parent = parent.parent()
        in_array = parent is not None and parent.data(0, _ROLE)[1] == "array"
        siblings = ([parent.child(i) for i in range(parent.childCount())] if parent is not None
                    else [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())])
        if in_array:
            key = str(len(siblings))
        elif not key.strip():
            self.error.emit("enter a key name first")
            return None
        elif any(s.text(0) == key for s in siblings):
            self.error.emit(f"key '{key}' already exists here")
            return None
        self._loading = True
        it = self._make_item(key, default_value(type_name), in_array)
        if parent is None:
            self.tree.addTopLevelItem(it)
        else:
            parent.addChild(it)
            parent.setExpanded(True)
        self._loading = False
        self._refresh_summaries(parent)
        self._mark()
        return it

    def delete_item(self, it: QTreeWidgetItem) -> None:
        """Remove a key (array items are renumbered)."""
        p = it.parent()
        self._loading = True
        if p is None:
            self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(it))
        else:
            p.removeChild(it)
            if p.data(0, _ROLE)[1] == "array":
                for i in range(p.childCount()):
                    p.child(i).setText(0, str(i))
                    p.child(i).setData(0, _ROLE, (str(i), p.child(i).data(0, _ROLE)[1]))
        self._loading = False
        self._refresh_summaries(p)
        self._mark()

    def _refresh_summaries(self, it: QTreeWidgetItem | None) -> None:
        self._loading = True
        while it is not None:
            it.setText(1, format_value(self._value(it)))
            it = it.parent()
        self._loading = False

    def _add_clicked(self) -> None:
        """Add next to the selected key: in its parent (top level for a top-level key or no selection)."""
        it = self.tree.currentItem()
        self.add_key(self.new_key.text(), self.new_type.currentText(), it.parent() if it is not None else None)

    def _add_inside_clicked(self) -> None:
        it = self.tree.currentItem()
        if it is not None and it.data(0, _ROLE)[1] in ("object", "array"):
            self.add_key(self.new_key.text(), self.new_type.currentText(), it)

    def _selection_changed(self, current: QTreeWidgetItem | None, _previous: Any = None) -> None:
        self.add_inside.setEnabled(current is not None and current.data(0, _ROLE)[1] in ("object", "array"))

    def eventFilter(self, obj: Any, event: Any) -> bool:
        from PySide6.QtCore import QEvent

        if obj is self.tree.viewport() and event.type() == QEvent.Type.MouseButtonPress:
            if self.tree.itemAt(event.position().toPoint()) is None:
                self.tree.clearSelection()
                self.tree.setCurrentItem(None)
        return super().eventFilter(obj, event)

    def _delete_clicked(self) -> None:
        it = self.tree.currentItem()
        if it is not None:
            self.delete_item(it)
