"""Contrast panel: histogram with a draggable min/max range, spin boxes, auto levels, colormaps, window presets
(the file's DICOM windows, Hounsfield presets), invert and gamma."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QPushButton,
                               QSlider, QVBoxLayout, QWidget)

from mzarr_core.display import WindowPreset, levels_to_window, window_to_levels
from mzarr_core.regions import integer_bins

from ..contrast import COLORMAPS, DisplaySettings, auto_levels

#: the gamma slider's range: gamma = 10 ** (value / GAMMA_STEPS), 0.2 .. 5
GAMMA_STEPS = 100
GAMMA_RANGE = (-70, 70)


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
        if a.dtype.kind in "biu":  # whole values per bin (a fractional width leaves every few bins empty: a comb)
            width, count = integer_bins(int(lo), int(hi), 256)
            edges = lo - 0.5 + width * np.arange(count + 1, dtype=np.float64)
        else:
            edges = np.linspace(lo, hi, 256 + 1)
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
        self.presets: list[WindowPreset] = []
        self.preset = QComboBox()
        self.preset.setObjectName("contrastPreset")
        self.preset.setToolTip("Window: the file's own (DICOM) windows, Hounsfield presets for CT, or automatic")
        self.invert = QCheckBox("Invert")
        self.invert.setObjectName("contrastInvert")
        self.gamma = QSlider(Qt.Orientation.Horizontal)
        self.gamma.setObjectName("contrastGamma")
        self.gamma.setRange(*GAMMA_RANGE)
        self.gamma.setValue(0)
        self.gamma.setToolTip("Gamma (display only): shown value = windowed value ** gamma; double-click the label "
                              "to reset")
        self.gamma_label = QLabel("1.00")
        self.gamma_label.setMinimumWidth(36)
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.lo)
        row.addWidget(self.hi)
        row.addWidget(self.auto)
        form.addRow("Min / max", row)
        form.addRow("Colormap", self.cmap)
        form.addRow("Channel", self.channel)
        wrow = QHBoxLayout()
        wrow.addWidget(self.preset, 1)
        wrow.addWidget(self.invert)
        form.addRow("Window", wrow)
        grow = QHBoxLayout()
        grow.addWidget(self.gamma, 1)
        grow.addWidget(self.gamma_label)
        form.addRow("Gamma", grow)
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
        self.preset.activated.connect(self._preset_picked)
        self.invert.toggled.connect(self.set_invert)
        self.gamma.valueChanged.connect(lambda v: self.set_gamma(10 ** (v / GAMMA_STEPS)))
        self._updating = False
        self._hist_source: object = None
        self._auto_lv: tuple[float, float] | None = None  # automatic levels of the current sample
        self.set_presets([])

    # --- window presets, invert, gamma ---------------------------------------------------------------------
    def set_presets(self, presets: list[WindowPreset]) -> None:
        """The windows offered for this image (the file's first, then Hounsfield presets); "Automatic" always."""
        self.presets = list(presets)
        self.preset.blockSignals(True)
        self.preset.clear()
        self.preset.addItem("Automatic")
        for p in self.presets:
            self.preset.addItem(f"{p.name}" if p.source == "file" else
                                f"{p.name} ({p.centre:g}/{p.width:g})")
        self.preset.addItem("Custom")
        self.preset.blockSignals(False)
        self._sync_preset()

    def apply_preset(self, which: int | str | WindowPreset) -> bool:
        """Apply a window (a preset, its index in :attr:`presets` or its name; "Automatic" for auto levels)."""
        if which == "Automatic":
            self.auto_levels()
            return True
        if isinstance(which, int):
            p = self.presets[which]
        elif isinstance(which, str):
            found = [q for q in self.presets if q.name == which]
            if not found:
                return False
            p = found[0]
        else:
            p = which
        self.set_levels(*window_to_levels(p.centre, p.width))
        return True

    def set_window(self, centre: float, width: float) -> None:
        """Levels from a window centre/width."""
        self.set_levels(*window_to_levels(centre, width))

    def window(self) -> tuple[float, float] | None:
        """(centre, width) of the current channel's levels."""
        return None if self.settings is None else levels_to_window(*self._levels())

    def set_invert(self, on: bool) -> None:
        """Invert the display (a lookup table; the pixels are not changed)."""
        if self.settings is not None and bool(on) != self.settings.invert:
            self.set_settings(replace(self.settings, invert=bool(on)))

    def set_gamma(self, gamma: float) -> None:
        """Gamma of the display (a lookup table): the windowed value t in 0..1 is shown as t ** gamma."""
        gamma = round(float(gamma), 2)
        if self.settings is not None and gamma > 0 and gamma != self.settings.gamma:
            self.set_settings(replace(self.settings, gamma=gamma))

    def _preset_picked(self, i: int) -> None:
        if i == 0:
            self.auto_levels()
        elif 1 <= i <= len(self.presets):
            self.apply_preset(i - 1)
        else:
            self._sync_preset()

    def _sync_preset(self) -> None:
        """Show which preset the levels are (or Custom / Automatic), the window, invert and gamma."""
        s = self.settings
        self.preset.blockSignals(True)
        self.invert.blockSignals(True)
        self.gamma.blockSignals(True)
        idx = 0
        if s is not None:
            lo, hi = self._levels()
            c, w = levels_to_window(lo, hi)
            self.preset.setItemText(self.preset.count() - 1, f"Custom: C {c:.6g} / W {w:.6g}")
            auto = self._auto_lv is not None and (lo, hi) == self._auto_lv
            idx = self.preset.count() - 1
            for i, p in enumerate(self.presets):
                if math.isclose(p.centre, c, abs_tol=1e-9) and math.isclose(p.width, w, abs_tol=1e-9):
                    idx = i + 1
                    break
            else:
                if auto:
                    idx = 0
            self.invert.setChecked(s.invert)
            self.gamma.setValue(int(round(math.log10(s.gamma) * GAMMA_STEPS)) if s.gamma > 0 else 0)
            self.gamma_label.setText(f"{s.gamma:.2f}")
        self.preset.setCurrentIndex(idx)
        self.preset.blockSignals(False)
        self.invert.blockSignals(False)
        self.gamma.blockSignals(False)

    def set_source(self, settings: DisplaySettings, sample: np.ndarray | None,
                   channel_samples: list[np.ndarray] | None) -> None:
        """New image: its default settings and the coarse data used for histograms."""
        self.sample = sample
        self.channel_samples = channel_samples
        self._hist_source = None
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
        src = (id(self._current_sample()), self.channel.currentIndex())
        if src != self._hist_source:  # the histogram is recomputed only for another sample (not on every drag)
            self._hist_source = src
            smp = self._current_sample()
            self.hist.set_data(smp)
            self._auto_lv = auto_levels(smp) if smp is not None else None
        self.hist.set_region(lo, hi)
        self.cmap.setCurrentText(settings.colormap if settings.colormap in COLORMAPS else "grey")
        self.cmap.setEnabled(settings.mode == "single")
        self._sync_preset()
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
