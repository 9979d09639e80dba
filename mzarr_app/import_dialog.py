"""The import dialog: what will be imported (the DICOM series to pick, shape, dtype, axes, spacing, the library's
warnings), the compression, the estimated file size and the destination, before anything is written.

Everything slow (reading a DICOM folder's headers, describing a slide, encoding sample chunks for the size
estimate) runs on one worker thread owned by the dialog; results come back through queued signals, so the GUI never
waits. Accepting emits nothing by itself: the caller reads :attr:`ImportDialog.request` (the window then runs the
import with a progress dialog and opens the result).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from . import import_plan
from .import_plan import Compression, Estimate, ImportPlan, folder_writable, format_bytes


@dataclass
class ImportRequest:
    """What the user accepted: convert ``src`` to ``dst`` with these options."""

    src: str
    dst: str
    read_options: dict[str, Any] = field(default_factory=dict)
    save_options: dict[str, Any] = field(default_factory=dict)
    slide_compression: str | None = None
    compression: Compression = field(default_factory=Compression)


class _SerialWorker:
    """One daemon thread running submitted jobs in order (sources are used by one thread at a time)."""

    def __init__(self, name: str) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._busy = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._busy += 1
        self._queue.put(job)

    def stop(self) -> None:
        self._queue.put(None)

    def idle(self) -> bool:
        with self._lock:
            return self._busy == 0

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # noqa: BLE001 - jobs report their own errors; the thread must survive
                pass
            finally:
                with self._lock:
                    self._busy -= 1


class _Bridge(QObject):
    """Carries worker results to the GUI thread (unparented: it outlives a dialog closed while a job runs)."""

    inspected = Signal(int, object, str)  # generation, ImportPlan | None, error
    estimated = Signal(int, object, str)  # generation, Estimate | None, error ("" / "cancelled" / message)
    note = Signal(int, str)  # estimate generation, progress text


def _axes_text(axes: str) -> str:
    return " × ".join(axes)


def _short_unit(unit: str | None) -> str:
    from .view import _UNIT_SHORT

    return _UNIT_SHORT.get(unit or "", unit or "")


class ImportDialog(QDialog):
    """Shows what importing ``src`` will do and lets the user pick the series, compression and destination."""

    planReady = Signal()  # a plan (or an inspection error) was shown
    estimateReady = Signal()  # an estimate (or its error) was shown

    def __init__(self, src: str, parent: QWidget | None = None, dst: str | None = None) -> None:
        super().__init__(parent)
        from .importer import default_destination

        self.src = os.fspath(src)
        self.plan: ImportPlan | None = None
        self.estimate: Estimate | None = None
        self.request: ImportRequest | None = None
        self.inspect_error = ""
        self.estimate_error = ""
        self._series_shown: list[Any] = []
        self._inspect_gen = 0
        self._estimate_gen = 0
        self._estimate_cancel = threading.Event()
        self._bridge = _Bridge()
        self._bridge.inspected.connect(self._on_inspected)
        self._bridge.estimated.connect(self._on_estimated)
        self._bridge.note.connect(self._on_note)
        self._worker = _SerialWorker("mzarr-import-inspect")
        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(250)
        self._estimate_timer.timeout.connect(self._start_estimate)
        self.setObjectName("importDialog")
        name = os.path.basename(self.src.rstrip("/\\")) or self.src
        self.setWindowTitle(f"Import {name}")
        self.setMinimumWidth(640)
        self._build(dst or default_destination(self.src))
        self.finished.connect(self._shutdown)
        self._inspect(None)

    # --- construction ------------------------------------------------------------------------------------------
    def _build(self, dst: str) -> None:
        lay = QVBoxLayout(self)
        self.source_label = QLabel(f"<b>{self.src}</b>")
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.source_label.setWordWrap(True)
        lay.addWidget(self.source_label)
        self.status_label = QLabel("Reading…")
        self.status_label.setObjectName("statusLabel")
        self.status_label.setWordWrap(True)
        lay.addWidget(self.status_label)

        self.series_box = QGroupBox("Series (pick the one to import)")
        sl = QVBoxLayout(self.series_box)
        self.series_list = QListWidget()
        self.series_list.setObjectName("seriesList")
        self.series_list.setMinimumHeight(70)
        self.series_list.currentRowChanged.connect(self._series_changed)
        sl.addWidget(self.series_list)
        self.series_box.hide()
        lay.addWidget(self.series_box)

        self.image_box = QGroupBox("Image")
        form = QFormLayout(self.image_box)
        self.fields: dict[str, QLabel] = {}
        for key, title in (("format", "Format"), ("shape", "Shape"), ("dtype", "Data type"), ("axes", "Axes"),
                           ("spacing", "Spacing"), ("extent", "Physical size"), ("source", "Source on disk")):
            label = QLabel("…")
            label.setObjectName(f"field_{key}")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(title + ":", label)
            self.fields[key] = label
        self.details = QPlainTextEdit()
        self.details.setObjectName("detailsText")
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(110)
        self.details.hide()
        form.addRow(self.details)
        lay.addWidget(self.image_box)

        self.compression_box = QGroupBox("Compression")
        cl = QVBoxLayout(self.compression_box)
        self.lossless_radio = QRadioButton("Lossless: the exact pixels (JPEG XL lossless, zstd for other types)")
        self.lossless_radio.setObjectName("losslessRadio")
        self.lossy_radio = QRadioButton("Lossy JPEG XL (smaller; visually close, not exact)")
        self.lossy_radio.setObjectName("lossyRadio")
        self.lossless_radio.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.lossless_radio)
        group.addButton(self.lossy_radio)
        cl.addWidget(self.lossless_radio)
        cl.addWidget(self.lossy_radio)
        self.slide_combo = QComboBox()
        self.slide_combo.setObjectName("slideCompression")
        self.slide_combo.hide()
        cl.addWidget(self.slide_combo)
        row = QHBoxLayout()
        self.lossy_by = QComboBox()
        self.lossy_by.setObjectName("lossyBy")
        self.lossy_by.addItem("distance (Butteraugli; 1 = visually lossless)", "distance")
        self.lossy_by.addItem("quality (JPEG-like, 0-100)", "quality")
        self.lossy_value = QDoubleSpinBox()
        self.lossy_value.setObjectName("lossyValue")
        self.lossy_value.setDecimals(2)
        self._set_lossy_range("distance", import_plan.DEFAULT_DISTANCE)
        row.addSpacing(24)
        row.addWidget(self.lossy_by)
        row.addWidget(self.lossy_value)
        row.addStretch(1)
        cl.addLayout(row)
        self.lossy_note = QLabel("")
        self.lossy_note.setObjectName("lossyNote")
        self.lossy_note.setWordWrap(True)
        cl.addWidget(self.lossy_note)
        self.keep_identifiers = QCheckBox()
        self.keep_identifiers.setObjectName("keepIdentifiers")
        self.keep_identifiers.hide()
        cl.addWidget(self.keep_identifiers)
        self.lossless_radio.toggled.connect(self._compression_changed)
        self.lossy_by.currentIndexChanged.connect(self._lossy_by_changed)
        self.lossy_value.valueChanged.connect(self._compression_changed)
        self.slide_combo.currentIndexChanged.connect(self._slide_mode_changed)
        lay.addWidget(self.compression_box)

        self.estimate_box = QGroupBox("Estimated file size")
        el = QVBoxLayout(self.estimate_box)
        self.estimate_label = QLabel("…")
        self.estimate_label.setObjectName("estimateLabel")
        self.estimate_label.setWordWrap(True)
        el.addWidget(self.estimate_label)
        lay.addWidget(self.estimate_box)

        self.warnings_box = QGroupBox("Warnings")
        wl = QVBoxLayout(self.warnings_box)
        self.warnings_text = QPlainTextEdit()
        self.warnings_text.setObjectName("warningsText")
        self.warnings_text.setReadOnly(True)
        self.warnings_text.setMaximumHeight(120)
        wl.addWidget(self.warnings_text)
        self.warnings_box.hide()
        lay.addWidget(self.warnings_box)

        dest = QGroupBox("Save as")
        dl = QVBoxLayout(dest)
        drow = QHBoxLayout()
        self.dest_edit = QLineEdit(dst)
        self.dest_edit.setObjectName("destinationEdit")
        self.dest_edit.textChanged.connect(self._dest_changed)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setObjectName("browseButton")
        self.browse_button.clicked.connect(self._browse)
        drow.addWidget(self.dest_edit, 1)
        drow.addWidget(self.browse_button)
        dl.addLayout(drow)
        self.dest_note = QLabel("")
        self.dest_note.setObjectName("destinationNote")
        self.dest_note.setWordWrap(True)
        dl.addWidget(self.dest_note)
        lay.addWidget(dest)

        self.buttons = QDialogButtonBox()
        self.import_button = self.buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.import_button.setObjectName("importButton")
        self.import_button.setDefault(True)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self._dest_changed()
        self._update_controls()

    # --- state --------------------------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        """Inspecting or estimating (a job queued or running)."""
        return not self._worker.idle() or self._estimate_timer.isActive()

    def compression(self) -> Compression:
        """The compression the controls say."""
        if self.plan is not None and self.plan.is_slide:
            mode = self.slide_combo.currentData() or self.plan.slide_default or "lossless"
            return Compression(slide=mode, distance=None if mode == "lossless" else float(self.lossy_value.value()))
        if self.lossless_radio.isChecked() or (self.plan is not None and self.plan.lossy_refusal()):
            return Compression()
        if self.lossy_by.currentData() == "quality":
            return Compression(lossless=False, quality=float(self.lossy_value.value()))
        return Compression(lossless=False, distance=float(self.lossy_value.value()))

    def destination(self) -> str:
        dst = os.path.expanduser(self.dest_edit.text().strip())
        if dst and not (dst.lower().endswith(".mzarr") or dst.lower().endswith(".zarr")):
            dst += ".mzarr"
        return dst

    def _update_controls(self) -> None:
        plan = self.plan
        slide = plan is not None and plan.is_slide
        self.lossless_radio.setVisible(not slide)
        self.lossy_radio.setVisible(not slide)
        self.slide_combo.setVisible(slide)
        refusal = plan.lossy_refusal() if plan is not None and not slide else ""
        self.lossy_radio.setEnabled(plan is not None and not refusal)
        if refusal and self.lossy_radio.isChecked():
            self.lossless_radio.setChecked(True)
        if slide:
            mode = self.slide_combo.currentData()
            lossy_on = mode in ("lossy", "recompress")
            self.lossy_by.setCurrentIndex(0)
            self.lossy_by.setEnabled(False)
            self.lossy_note.setText("Distance of levels 1+ (level 0 is exact)" if mode == "recompress" else
                                    "Distance of every level" if mode == "lossy" else "")
        else:
            lossy_on = self.lossy_radio.isChecked()
            self.lossy_by.setEnabled(lossy_on)
            note = f"Lossy is not offered: {refusal}" if refusal else ""
            if lossy_on and plan is not None and plan.dtype in ("uint16", "int16"):
                note = ("16-bit image: the distance is relative to the whole 16-bit range, so data using a narrow "
                        "part of it (CT in HU, most MR) loses more than the number suggests (pydicom's CT_small "
                        "at distance 1: mean error ~66 HU). Keep lossless for measurements.")
            self.lossy_note.setText(note)
        self.lossy_value.setEnabled(lossy_on)
        dst = self.destination()
        self.import_button.setEnabled(plan is not None and bool(dst)
                                      and folder_writable(os.path.dirname(os.path.abspath(dst))))

    def _set_lossy_range(self, by: str, value: float) -> None:
        self.lossy_value.blockSignals(True)
        if by == "quality":
            self.lossy_value.setRange(1.0, 100.0)
            self.lossy_value.setSingleStep(5.0)
        else:
            self.lossy_value.setRange(0.1, 25.0)
            self.lossy_value.setSingleStep(0.5)
        self.lossy_value.setValue(value)
        self.lossy_value.blockSignals(False)

    # --- inspection ---------------------------------------------------------------------------------------------
    def _inspect(self, series: int | None) -> None:
        self._inspect_gen += 1
        gen = self._inspect_gen
        old, self.plan = self.plan, None
        self._cancel_estimate()
        if old is not None:
            self._worker.submit(old.close)
        self.status_label.setText("Reading the DICOM headers…" if self._series_shown else "Reading…")
        self.estimate_label.setText("…")
        self._update_controls()
        bridge, src = self._bridge, self.src

        def job() -> None:
            try:
                plan = import_plan.inspect(src, series)
            except Exception as exc:  # noqa: BLE001 - every failure is shown in the dialog
                bridge.inspected.emit(gen, None, _message(exc))
                return
            bridge.inspected.emit(gen, plan, "")

        self._worker.submit(job)

    def _on_inspected(self, gen: int, plan: ImportPlan | None, error: str) -> None:
        if gen != self._inspect_gen:  # a series picked since, or the dialog closed: not wanted any more
            if plan is not None:
                plan.close()  # the job that opened it has ended; nothing else uses it
            return
        self.inspect_error = error
        if plan is None:
            self.status_label.setText(f"<span style='color:#c00'>Cannot import: {_html(error)}</span>")
            self._update_controls()
            self.planReady.emit()
            return
        self.plan = plan
        self.status_label.setText(f"{plan.format_title}: ready to import")
        self._show_plan(plan)
        self._update_controls()
        self.planReady.emit()
        self._start_estimate()

    def _show_plan(self, plan: ImportPlan) -> None:
        if plan.series:
            self._series_shown = list(plan.series)
            self.series_list.blockSignals(True)
            self.series_list.clear()
            for line in plan.series_lines:
                item = QListWidgetItem(line.split("  uid ")[0])  # the UID (long) in the tooltip only
                item.setToolTip(line)
                self.series_list.addItem(item)
            row = plan.row_of_series
            if row is not None:
                self.series_list.setCurrentRow(row)
            self.series_list.blockSignals(False)
            self.series_box.setTitle(f"Series ({len(plan.series)} found; pick the one to import)")
            self.series_box.show()
        what = plan.format_title
        if plan.format_name == "dicom":
            what += " series (folder)" if os.path.isdir(plan.src) else (
                " series (zip)" if plan.src.lower().endswith(".zip") else "")
        self.fields["format"].setText(what)
        self.fields["shape"].setText(" × ".join(str(n) for n in plan.shape) + f"   ({_axes_text(plan.axes)})")
        self.fields["dtype"].setText(plan.dtype + ("  (labels)" if plan.is_label else ""))
        self.fields["axes"].setText(plan.axes)
        spatial = [n for a, n in zip(plan.axes, plan.shape) if a != "c"]
        if plan.spacing:
            unit = _short_unit(plan.unit)
            self.fields["spacing"].setText(" × ".join(f"{v:.4g}" for v in plan.spacing) + f" {unit}")
            self.fields["extent"].setText(
                " × ".join(f"{v * n:.4g}" for v, n in zip(plan.spacing, spatial)) + f" {unit}")
        else:
            self.fields["spacing"].setText("not recorded (1 pixel)")
            self.fields["extent"].setText("unknown")
        self.fields["source"].setText(format_bytes(plan.source_bytes))
        if plan.details:
            self.details.setPlainText("\n".join(plan.details))
            self.details.show()
        else:
            self.details.hide()
        if plan.warnings:
            self.warnings_text.setPlainText("\n\n".join(plan.warnings))
            self.warnings_box.setTitle(f"Warnings from the reader ({len(plan.warnings)})")
            self.warnings_box.show()
        else:
            self.warnings_text.clear()
            self.warnings_box.hide()
        if plan.privacy_option == "keep_phi":
            self.keep_identifiers.setText("Keep patient identifiers (names, IDs, dates, the folder's name) in the "
                                          "file's attributes; left out by default")
        elif plan.privacy_option == "keep_label":
            self.keep_identifiers.setText("Keep the slide's label picture and identifying fields (they may show "
                                          "patient details); left out by default")
        self.keep_identifiers.setVisible(plan.privacy_option is not None)
        if plan.is_slide:
            current = self.slide_combo.currentData()
            self.slide_combo.blockSignals(True)
            self.slide_combo.clear()
            for mode in plan.slide_compressions:
                default = " (default)" if mode == plan.slide_default else ""
                self.slide_combo.addItem(import_plan.SLIDE_TEXT.get(mode, mode) + default, mode)
            want = current if current in plan.slide_compressions else plan.slide_default
            self.slide_combo.setCurrentIndex(max(0, self.slide_combo.findData(want)))
            self.slide_combo.blockSignals(False)
            mode = self.slide_combo.currentData()
            self._set_lossy_range("distance", plan.slide_distances.get(mode, import_plan.DEFAULT_DISTANCE))

    def _series_changed(self, row: int) -> None:
        if 0 <= row < len(self._series_shown):
            index = self._series_shown[row].index
            if self.plan is None or self.plan.series_index != index:
                self._inspect(index)

    # --- compression and the estimate ---------------------------------------------------------------------------
    def _lossy_by_changed(self) -> None:
        by = self.lossy_by.currentData()
        self._set_lossy_range(by, import_plan.DEFAULT_QUALITY if by == "quality" else import_plan.DEFAULT_DISTANCE)
        self._compression_changed()

    def _slide_mode_changed(self) -> None:
        if self.plan is not None:
            mode = self.slide_combo.currentData()
            self._set_lossy_range("distance", self.plan.slide_distances.get(mode, import_plan.DEFAULT_DISTANCE))
        self._compression_changed()

    def _compression_changed(self, *_args: Any) -> None:
        self._update_controls()
        if self.plan is not None:
            self._cancel_estimate()
            self.estimate_label.setText("Estimating…")
            self._estimate_timer.start()

    def _cancel_estimate(self) -> None:
        self._estimate_timer.stop()
        self._estimate_cancel.set()
        self._estimate_gen += 1
        self.estimate = None

    def _start_estimate(self) -> None:
        plan = self.plan
        if plan is None:
            return
        self._estimate_cancel.set()
        self._estimate_cancel = cancel = threading.Event()
        self._estimate_gen += 1
        gen = self._estimate_gen
        compression = self.compression()
        bridge = self._bridge
        self.estimate = None
        self.estimate_label.setText("Estimating…")

        def job() -> None:
            if cancel.is_set():
                return
            try:
                est = import_plan.estimate(plan, compression, cancel, lambda text: bridge.note.emit(gen, text))
            except import_plan.Cancelled:
                return
            except Exception as exc:  # noqa: BLE001 - shown in the dialog; the import itself may still work
                bridge.estimated.emit(gen, None, _message(exc))
                return
            bridge.estimated.emit(gen, est, "")

        self._worker.submit(job)

    def _on_note(self, gen: int, text: str) -> None:
        if gen == self._estimate_gen and self.estimate is None:
            self.estimate_label.setText(f"Estimating: {text}")

    def _on_estimated(self, gen: int, est: Estimate | None, error: str) -> None:
        if gen != self._estimate_gen or self.plan is None:
            return
        self.estimate_error = error
        self.estimate = est
        if est is None:
            self.estimate_label.setText(f"Could not estimate the size: {_html(error)}")
        else:
            plan = self.plan
            ratio = f" ({est.bytes / plan.source_bytes:.2f}× the source's {format_bytes(plan.source_bytes)})" \
                if plan.source_bytes else ""
            self.estimate_label.setText(
                f"<b>≈ {format_bytes(est.bytes)}</b>{ratio} with {self.compression().describe()}.<br>"
                f"<small>How: {est.how()} ({est.seconds:.1f} s).</small>")
        self.estimateReady.emit()

    # --- destination and accepting ------------------------------------------------------------------------------
    def _dest_changed(self, *_args: Any) -> None:
        dst = self.destination()
        if not dst:
            self.dest_note.setText("Choose where to save the .mzarr")
        elif os.path.exists(dst):
            self.dest_note.setText("A file of this name exists: importing replaces it.")
        elif not os.path.isdir(os.path.dirname(os.path.abspath(dst))):
            self.dest_note.setText("That folder does not exist.")
        elif not folder_writable(os.path.dirname(os.path.abspath(dst))):
            self.dest_note.setText("You cannot write in that folder (read-only media or no permission): choose "
                                   "another destination.")
        else:
            self.dest_note.setText("")
        self._update_controls()

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save as Mzarr", self.destination(), "Mzarr images (*.mzarr)")
        if path:
            self.dest_edit.setText(path)

    def _accept(self) -> None:
        plan = self.plan
        dst = self.destination()
        if plan is None or not dst:
            return
        if not os.path.isdir(os.path.dirname(os.path.abspath(dst))):
            self.dest_note.setText("That folder does not exist: choose another destination.")
            return
        if not folder_writable(os.path.dirname(os.path.abspath(dst))):
            self.dest_note.setText("You cannot write in that folder (read-only media or no permission): choose "
                                   "another destination.")
            return
        comp = self.compression()
        read_options = plan.read_options()
        if plan.privacy_option and self.keep_identifiers.isChecked():
            read_options[plan.privacy_option] = True
        self.request = ImportRequest(
            src=plan.src, dst=dst, read_options=read_options, save_options=comp.save_options(),
            slide_compression=comp.slide, compression=comp,
        )
        self.accept()

    def _shutdown(self, *_args: Any) -> None:
        """Stop the estimate, close the source (on the worker, after its current job), end the worker."""
        self._cancel_estimate()
        self._inspect_gen += 1
        plan, self.plan = self.plan, None
        if plan is not None:
            self._worker.submit(plan.close)
        self._worker.stop()


def _message(exc: BaseException) -> str:
    from mzarr_core.errors import MzarrError

    text = str(exc)
    return text if isinstance(exc, (MzarrError, ValueError)) and text else f"{type(exc).__name__}: {text}"


def _html(text: str) -> str:
    import html

    return html.escape(text).replace("\n", "<br>")
