"""Contrast panel: histogram with a draggable min/max range, spin boxes, auto levels and colormaps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QPushButton, QVBoxLayout,
                               QWidget)

from ..contrast import COLORMAPS, DisplaySettings, auto_levels


class HistogramWidget(pg.PlotWidget):
    """Log-count histogram of a sample with a draggable [min, max] region."""

    regionChanged = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="#202020")
        self.setMinimumHeight(110)
        self.setMaximumHeight(160)
        self.hideAxis("left")
        self.setMouseEnabled(x=False, y=False)
        self.setMenuEnabled(False)
        self.curve = pg.PlotCurveItem([0, 1], [0], stepMode="center", fillLevel=0, brush=(160, 160, 160, 160), pen=None)
        self.addItem(self.curve)
        self.region = pg.LinearRegionItem(values=(0, 1), brush=(255, 200, 0, 40))
        self.region.sigRegionChangeFinished.connect(self._region_moved)
        self.addItem(self.region)
        self._setting = False

    def set_data(self, sample: np.ndarray | None) -> None:
        """Histogram of ``sample`` (finite values)."""
        if sample is None or sample.size == 0:
            self.curve.setData([0, 1], [0])
            return
        a = np.asarray(sample).ravel()
        if a.dtype.kind == "f":
            a = a[np.isfinite(a)]
        if a.size == 0:
            return
        lo, hi = float(a.min()), float(a.max())
        if hi <= lo:
            hi = lo + 1
        bins = 256
        if a.dtype.kind in "ui" and hi - lo < 256:
            edges = np.arange(lo, hi + 2) - 0.5
        else:
            edges = np.linspace(lo, hi, bins + 1)
        counts, edges = np.histogram(a, bins=edges)
        self.curve.setData(edges, np.log1p(counts))
        self.setXRange(edges[0], edges[-1], padding=0.02)

    def set_region(self, lo: float, hi: float) -> None:
        """Move the region without emitting."""
        self._setting = True
        self.region.setRegion((lo, hi))
        self._setting = False

    def _region_moved(self) -> None:
        if not self._setting:
            lo, hi = self.region.getRegion()
            self.regionChanged.emit(float(lo), float(hi))


class ContrastPanel(QWidget):
    """Edits the view's :class:`DisplaySettings` (levels, colormap, per-channel levels for composites)."""

    settingsChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings: DisplaySettings | None = None
        self.sample: np.ndarray | None = None
        self.channel_samples: list[np.ndarray] | None = None
        self.hist = HistogramWidget(self)
        self.lo = QDoubleSpinBox(decimals=4, minimum=-1e12, maximum=1e12)
        self.hi = QDoubleSpinBox(decimals=4, minimum=-1e12, maximum=1e12)
        self.lo.setObjectName("contrastMin")
        self.hi.setObjectName("contrastMax")
        self.auto = QPushButton("Auto")
        self.auto.setToolTip("Levels from the 0.5 / 99.5 percentiles of a coarse level (A)")
        self.cmap = QComboBox()
        self.cmap.addItems(list(COLORMAPS))
        self.channel = QComboBox()
        self.channel.setToolTip("Channel whose levels are edited")
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.lo)
        row.addWidget(self.hi)
        row.addWidget(self.auto)
        form.addRow("Min / max", row)
        form.addRow("Colormap", self.cmap)
        form.addRow("Channel", self.channel)
        lay = QVBoxLayout(self)
        lay.addWidget(self.hist)
        lay.addLayout(form)
        lay.addStretch(1)
        self.lo.editingFinished.connect(self._spin_changed)
        self.hi.editingFinished.connect(self._spin_changed)
        self.auto.clicked.connect(self.auto_levels)
        self.cmap.currentTextChanged.connect(self._cmap_changed)
        self.channel.currentIndexChanged.connect(self._channel_changed)
        self.hist.regionChanged.connect(self._region_changed)
        self._updating = False

    def set_source(self, settings: DisplaySettings, sample: np.ndarray | None,
                   channel_samples: list[np.ndarray] | None) -> None:
        """New image: its default settings and the coarse data used for histograms."""
        self.sample = sample
        self.channel_samples = channel_samples
        self._updating = True
        self.channel.clear()
        if settings.channels:
            names = ["red", "green", "blue", "alpha"] if settings.mode == "rgb" else []
            self.channel.addItems([names[i] if i < len(names) else f"channel {i}"
                                   for i in range(len(settings.channels))])
            self.channel.addItem("all")
            if settings.mode == "rgb":
                self.channel.setCurrentIndex(len(settings.channels))
        self.channel.setEnabled(bool(settings.channels))
        self.cmap.setEnabled(settings.mode == "single")
        self._updating = False
        self.set_settings(settings, emit=False)

    def _current_sample(self) -> np.ndarray | None:
        i = self.channel.currentIndex()
        if self.channel_samples and 0 <= i < len(self.channel_samples):
            return self.channel_samples[i]
        return self.sample

    def set_settings(self, settings: DisplaySettings, emit: bool = True) -> None:
        """Show ``settings`` in the widgets (and emit them)."""
        self.settings = settings
        self._updating = True
        lo, hi = self._levels()
        self.lo.setValue(lo)
        self.hi.setValue(hi)
        self.hist.set_data(self._current_sample())
        self.hist.set_region(lo, hi)
        self.cmap.setCurrentText(settings.colormap if settings.colormap in COLORMAPS else "grey")
        self.cmap.setEnabled(settings.mode == "single")
        self._updating = False
        if emit:
            self.settingsChanged.emit(settings)

    def _levels(self) -> tuple[float, float]:
        s = self.settings
        assert s is not None
        i = self.channel.currentIndex()
        if s.channels and 0 <= i < len(s.channels):
            return s.channels[i].lo, s.channels[i].hi
        return s.lo, s.hi

    def set_levels(self, lo: float, hi: float) -> None:
        """Apply manual min/max to the current channel (or all)."""
        if self.settings is None:
            return
        if hi <= lo:
            hi = lo + (1e-6 if self.settings.mode == "single" else 1)
        s = self.settings
        i = self.channel.currentIndex()
        if s.channels and 0 <= i < len(s.channels):
            chans = list(s.channels)
            chans[i] = replace(chans[i], lo=lo, hi=hi)
            s = replace(s, channels=tuple(chans))
        else:
            s = s.with_levels(lo, hi)
        self.set_settings(s)

    def auto_levels(self) -> None:
        """Percentile levels from the coarse sample for the current channel (or every channel)."""
        if self.settings is None:
            return
        s = self.settings
        i = self.channel.currentIndex()
        if s.channels and self.channel_samples and not (0 <= i < len(s.channels)):
            chans = tuple(replace(c, lo=lo, hi=hi) for c, (lo, hi) in
                          zip(s.channels, (auto_levels(x) for x in self.channel_samples)))
            self.set_settings(replace(s, channels=chans))
            return
        smp = self._current_sample()
        if smp is not None:
            self.set_levels(*auto_levels(smp))

    def _spin_changed(self) -> None:
        if not self._updating:
            self.set_levels(self.lo.value(), self.hi.value())

    def _region_changed(self, lo: float, hi: float) -> None:
        if not self._updating:
            self.set_levels(lo, hi)

    def _cmap_changed(self, name: str) -> None:
        if not self._updating and self.settings is not None and self.settings.mode == "single":
            self.set_settings(replace(self.settings, colormap=name))

    def _channel_changed(self, i: int) -> None:
        if not self._updating and self.settings is not None:
            self.set_settings(self.settings, emit=False)
