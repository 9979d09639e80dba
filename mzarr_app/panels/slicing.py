"""Slicing panel: slicing axis, slice index (slider + spin box) and channel selection."""

from __future__ import annotations

from typing import Any, Mapping

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QSlider, QSpinBox, QWidget

from ..tiles import Plane, default_plane


class SlicingPanel(QWidget):
    """Chooses which plane of a 3D and/or multi-channel image is shown; emits ``planeChanged``."""

    planeChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.axes = ""
        self.shape: tuple[int, ...] = ()
        self.rgb = False
        self.attrs: Mapping[str, Any] | None = None
        self.axis = QComboBox()
        self.axis.setObjectName("sliceAxis")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("sliceSlider")
        self.spin = QSpinBox()
        self.spin.setObjectName("sliceSpin")
        self.channel = QComboBox()
        self.channel.setObjectName("channelSelector")
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        form = QFormLayout(self)
        form.addRow("Slice axis", self.axis)
        form.addRow("Slice", row)
        form.addRow("Channels", self.channel)
        self.axis.currentTextChanged.connect(self._axis_changed)
        self.slider.valueChanged.connect(self.spin.setValue)
        self.spin.valueChanged.connect(self.slider.setValue)
        self.spin.valueChanged.connect(lambda _v: self._emit())
        self.channel.currentIndexChanged.connect(lambda _i: self._emit())
        self._blocked = False
        self.set_image("yx", (1, 1), None, False)

    def set_image(self, axes: str, shape: tuple[int, ...], channel_count: int | None, rgb: bool,
                  attrs: Mapping[str, Any] | None = None) -> None:
        """Configure for an image; starts at the middle slice along the first spatial axis. ``attrs``: the image's
        attributes, whose patient geometry orders each plane's rows and columns as radiologists read it."""
        self._blocked = True
        self.axes, self.shape, self.rgb = axes, tuple(shape), rgb
        self.attrs = attrs
        spatial = [a for a in axes if a != "c"]
        self.axis.clear()
        if len(spatial) == 3:
            self.axis.addItems(spatial)
        self.axis.setEnabled(len(spatial) == 3)
        self.channel.clear()
        if channel_count and not rgb:
            self.channel.addItem("composite")
            self.channel.addItems([f"channel {i}" for i in range(channel_count)])
        elif channel_count:
            self.channel.addItem("colour (RGB)")
        self.channel.setEnabled(bool(channel_count) and not rgb)
        self._blocked = False
        self._axis_changed(self.axis.currentText())

    def _axis_changed(self, axis: str) -> None:
        was = self._blocked
        self._blocked = True
        n = self.shape[self.axes.index(axis)] if axis and axis in self.axes else 1
        for w in (self.slider, self.spin):
            w.setRange(0, max(0, n - 1))
            w.setEnabled(bool(axis))
        self.spin.setValue(n // 2 if axis else 0)
        self._blocked = was
        self._emit()

    def set_axis(self, axis: str) -> None:
        """Select the slicing axis ('z', 'y' or 'x')."""
        self.axis.setCurrentText(axis)

    def set_index(self, i: int) -> None:
        """Go to slice ``i``."""
        self.spin.setValue(i)

    def step(self, delta: int) -> None:
        """Move ``delta`` slices (clamped)."""
        self.spin.setValue(max(self.spin.minimum(), min(self.spin.maximum(), self.spin.value() + delta)))

    def set_channel(self, index: int | None) -> None:
        """Show only channel ``index`` or (None) the composite."""
        if self.channel.count() and not self.rgb:
            self.channel.setCurrentIndex(0 if index is None else index + 1)

    def plane(self) -> Plane:
        """The plane the widgets describe."""
        spatial = [a for a in self.axes if a != "c"]
        slice_axis = self.axis.currentText() or None if len(spatial) == 3 else None
        channels = None
        if "c" in self.axes and not self.rgb and self.channel.currentIndex() > 0:
            channels = (self.channel.currentIndex() - 1,)
        if len(spatial) == 3 and slice_axis is None:  # (no axis chosen yet)
            return Plane(self.axes, spatial[0], spatial[1], None, 0, channels)
        return default_plane(self.axes, slice_axis, self.spin.value() if slice_axis else 0, channels, self.attrs)

    def _emit(self) -> None:
        if not self._blocked and self.axes:
            self.planeChanged.emit(self.plane())
