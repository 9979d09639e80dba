"""The main window: view, docks, menus, status bar, opening/saving and unsaved-change handling."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QFileSystemWatcher, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
)
from mzarr_core.errors import MzarrFormatError, MzarrReadOnlyError

from . import APP_NAME, file_check, gc_guard, settings
from .contrast import DisplaySettings
from .document import Document
from .import_dialog import ImportDialog
from .importer import IMPORT_FILTER, drop_action, run_import
from .measure_tools import MeasureTools
from .panels.contrast import ContrastPanel
from .edit_controller import EditController
from .paint import rect_mask
from .panels.editing import EditingPanel, EditModel, plane_shape
from .panels.labels import LabelsPanel, export_label
from .panels.metadata import MetadataPanel
from .panels.slicing import SlicingPanel
from .ortho import ORTHO, SINGLE, ViewLayout, is_volume
from .tiles import Plane
from .view import TiledImageView, format_length

OPEN_FILTER = "Mzarr images (*.mzarr);;OME-Zarr (*.zarr zarr.json .zattrs);;All files (*)"


def resolve_open_path(path: str) -> str:
    """Map a picked ``zarr.json``/``.zattrs`` inside an OME-Zarr folder to the folder itself."""
    if os.path.basename(path) in ("zarr.json", ".zattrs", ".zgroup"):
        return os.path.dirname(path)
    return path


def format_labels(labels: list[dict[str, Any]]) -> str:
    """Status bar text of the label values under the cursor: ``nuclei: 3 "cell"`` per label image."""
    parts = []
    for d in labels:
        v = d["value"]
        vs = f"{v:g}" if isinstance(v, (int, float)) else str(v)
        if not d.get("exact", True):
            vs = f"≈{vs}"
        name = f' "{d["label"]}"' if d.get("label") else ""
        parts.append(f"{d['name']}: {vs}{name}")
    return ("label " + ", ".join(parts)) if parts else ""


class MainWindow(QMainWindow):
    """One window showing one image."""

    openInNewWindow = Signal(str)

    def __init__(self, cache_mb: float | None = None, threads: int | None = None) -> None:
        super().__init__()
        gc_guard.acquire()  # Qt objects in reference cycles are destroyed on the GUI thread only
        self._holds_gc_guard = True
        self.doc: Document | None = None
        self.multi_window = False  # set by the application, which opens further files in new windows
        self.error_box: QMessageBox | None = None
        self.last_error = ""
        self.import_box: ImportDialog | None = None  # the import dialog on screen (tests drive it)
        self.import_queue: list[str] = []  # further dropped images, each shown in its own dialog in turn
        self.progress_hook: Callable[[Any], None] | None = None  # tests: sees the import's progress dialog
        self.about_box: QMessageBox | None = None
        self.check_box: QMessageBox | None = None  # File > Check file / Save salvaged copy: the findings (tests read it)
        self.licences_dialog: QDialog | None = None
        # another program writing the open file (a script adding a segmentation): shown as it is now
        self._watcher = QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(lambda _path: self._disk_timer.start())
        self._disk_timer = QTimer(self)
        self._disk_timer.setSingleShot(True)
        self._disk_timer.setInterval(400)  # a writer's commit touches the file several times
        self._disk_timer.timeout.connect(self.check_disk)
        self._saving = False
        self.view = TiledImageView(self, cache_mb or settings.cache_mb(), threads)
        #: the views: the main one alone, or the orthogonal views of a volume (View > Layout)
        self.layout_views = ViewLayout(self.view, self)
        self.setCentralWidget(self.layout_views)
        self.setAcceptDrops(True)
        self.resize(1200, 800)
        self.model = EditModel(self)
        self.contrast = ContrastPanel()
        self.slicing = SlicingPanel()
        self.editing = EditingPanel(self.model)
        self.metadata = MetadataPanel()
        self.labels = LabelsPanel()
        self.docks: dict[str, QDockWidget] = {}
        for name, w, area in (("Contrast", self.contrast, Qt.DockWidgetArea.RightDockWidgetArea),
                              ("Slicing", self.slicing, Qt.DockWidgetArea.RightDockWidgetArea),
                              ("Editing", self.editing, Qt.DockWidgetArea.RightDockWidgetArea),
                              ("Metadata", self.metadata, Qt.DockWidgetArea.RightDockWidgetArea),
                              ("Labels", self.labels, Qt.DockWidgetArea.RightDockWidgetArea)):
            d = QDockWidget(name, self)
            d.setObjectName(f"dock{name}")
            d.setWidget(w)
            self.addDockWidget(area, d)
            self.docks[name] = d
        self.tabifyDockWidget(self.docks["Editing"], self.docks["Metadata"])
        self.tabifyDockWidget(self.docks["Editing"], self.docks["Labels"])
        self.docks["Editing"].raise_()
        self.pos_label = QLabel("")
        self.value_label = QLabel("")
        self.label_label = QLabel("")
        self.level_label = QLabel("")
        self.label_label.setObjectName("statusLabel")
        self.pos_label.setObjectName("statusPosition")
        self.value_label.setObjectName("statusValue")
        self.level_label.setObjectName("statusLevel")
        sb = self.statusBar()
        sb.addWidget(self.pos_label, 1)
        sb.addWidget(self.value_label)
        sb.addWidget(self.label_label)
        sb.addPermanentWidget(self.level_label)
        self.edit_tools = EditController(self)
        self._make_actions()
        self._connect()
        self.measure = MeasureTools(self)  # measurement/annotation tools, their dock and menus
        self._update_title()
        self._restore_state()

    # --- construction --------------------------------------------------------------------------------------
    def _action(self, menu: Any, text: str, slot: Callable[..., Any], shortcut: Any = None, name: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                a.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                a.setShortcut(QKeySequence(shortcut))
        a.triggered.connect(lambda _checked=False: slot())
        if name:
            a.setObjectName(name)
        menu.addAction(a)
        self.addAction(a)
        return a

    def _make_actions(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.act_open = self._action(f, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open, "actOpen")
        self._action(f, "Open OME-Zarr &folder…", self.open_folder_dialog, "Ctrl+Shift+O", "actOpenFolder")
        self._action(f, "&Import image…", self.import_dialog, "Ctrl+I", "actImport")
        self._action(f, "Import DICOM f&older…", self.import_folder_dialog, "Ctrl+Shift+I", "actImportFolder")
        self.recent_menu = f.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        f.addSeparator()
        self.act_save = self._action(f, "&Save", self.save, QKeySequence.StandardKey.Save, "actSave")
        self.act_save_as = self._action(f, "Save &As…", self.save_as, QKeySequence.StandardKey.SaveAs, "actSaveAs")
        self._action(f, "C&heck file…", lambda: file_check.check_file(self), None, "actCheckFile")
        self._action(f, "Save sal&vaged copy…", lambda: file_check.salvage_copy(self), None, "actSalvage")
        self._action(f, "&Close", self.close, QKeySequence.StandardKey.Close, "actClose")
        f.addSeparator()
        self._action(f, "Cache size…", self.cache_dialog, None, "actCache")
        self._action(f, "&Quit", self._quit, "Ctrl+Q", "actQuit")  # Windows has no standard Quit key
        e = mb.addMenu("&Edit")
        self.act_undo = self.model.stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(QKeySequence.StandardKey.Undo)
        self.act_redo = self.model.stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence.StandardKey.Redo, QKeySequence("Ctrl+Y")])
        for a in (self.act_undo, self.act_redo):
            e.addAction(a)
            self.addAction(a)
        e.addSeparator()
        self._action(e, "Set selection to value", lambda: self.fill_selection(self.editing.value.value()),
                     "Ctrl+Return", "actFill")
        self._action(e, "Clear selection", lambda: self.fill_selection(0.0), "Ctrl+Backspace", "actClear")
        for tool, text, key in (("rect", "Rectangle", "R"), ("brush", "Brush", "B"), ("eraser", "Eraser", "E"),
                                ("fill", "Flood fill", "F"), ("pick", "Pick label", "K"), ("polygon", "Polygon", "P")):
            self._action(e, f"{text} tool", lambda t=tool: self.editing.set_tool(t), key, f"act{text.replace(' ', '')}")
        self._action(e, "Pan tool", self._escape, "Esc", "actPan")
        self._action(e, "New label value", self.edit_tools.new_label_value, "N", "actNewLabel")
        self._action(e, "Smaller brush", lambda: self.editing.radius.setValue(self.editing.radius.value() / 1.25),
                     "[", "actBrushSmaller")
        self._action(e, "Larger brush", lambda: self.editing.radius.setValue(self.editing.radius.value() * 1.25),
                     "]", "actBrushLarger")
        self._action(e, "New label image…", lambda: self.edit_tools.new_label_image(), None, "actNewLabelImage")
        v = mb.addMenu("&View")
        self._action(v, "Zoom &in", lambda: self.view.zoom(2.0), [QKeySequence.StandardKey.ZoomIn, "="], "actZoomIn")
        self._action(v, "Zoom &out", lambda: self.view.zoom(0.5), [QKeySequence.StandardKey.ZoomOut, "-"],
                     "actZoomOut")
        self._action(v, "&Fit to window", self.layout_views.fit, ["Ctrl+0", "0"], "actFit")
        self._action(v, "Actual pixels (1:1)", self.actual_size, "Ctrl+1", "actActual")
        self.act_physical = self._action(v, "&Physical aspect", lambda: self.set_physical_aspect(
            self.act_physical.isChecked()), None, "actPhysicalAspect")
        self.act_physical.setCheckable(True)
        self.act_physical.setChecked(True)
        self.act_physical.setEnabled(False)
        self.act_physical.setToolTip("Draw pixels at their physical aspect (the file's spacing per axis); "
                                     "off: square pixels (voxel aspect)")
        lay = v.addMenu("&Layout")
        self.act_single = self._action(lay, "&Single view", lambda: self.set_layout(SINGLE), None, "actLayoutSingle")
        self.act_ortho = self._action(lay, "&Orthogonal views", lambda: self.set_layout(ORTHO), None,
                                      "actLayoutOrtho")
        self._action(lay, "Toggle layout", lambda: self.set_layout(
            SINGLE if self.layout_views.mode == ORTHO else ORTHO), "O", "actLayoutToggle")
        for a in (self.act_single, self.act_ortho):
            a.setCheckable(True)
        self.act_single.setChecked(True)
        self.act_ortho.setToolTip("Volumes: the z, y and x planes through a cursor, side by side (O toggles)")
        self.act_ortho.setEnabled(False)
        self.act_overview = self._action(v, "O&verview", lambda: self.layout_views.set_overview(
            self.act_overview.isChecked()), "Shift+O", "actOverview")
        self.act_overview.setCheckable(True)
        self.act_overview.setToolTip("The whole plane in a corner of the view, the visible part outlined; click or "
                                     "drag in it to move there")
        self._action(v, "Next slice", lambda: self.slicing.step(1), ["PgDown", "."], "actNextSlice")
        self._action(v, "Previous slice", lambda: self.slicing.step(-1), ["PgUp", ","], "actPrevSlice")
        self._action(v, "Next slice ×10", lambda: self.slicing.step(10), "Shift+PgDown", "actNextSlice10")
        self._action(v, "Previous slice ×10", lambda: self.slicing.step(-10), "Shift+PgUp", "actPrevSlice10")
        self._action(v, "&Auto contrast", self.contrast.auto_levels, "A", "actAuto")
        self._action(v, "Show/hide &label images", self.toggle_labels, "L", "actToggleLabels")
        self._action(v, "Label &contours", lambda: self.labels.contour.toggle(), "Shift+L", "actLabelContours")
        v.addSeparator()
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())
        self._make_contrast_menu(mb)
        h = mb.addMenu("&Help")
        self._action(h, "&About Mzarr Viewer", self.about, None, "actAbout")
        self._action(h, "&Licences…", self.show_licences, None, "actLicences")

    def _make_contrast_menu(self, mb: Any) -> None:
        """Contrast menu: automatic, the file's windows and the Hounsfield presets (filled per image), invert,
        gamma. The same menu is a submenu of the view's right-click menu (pyqtgraph's)."""
        self.contrast_menu = mb.addMenu("&Contrast")
        self.contrast_menu.setObjectName("menuContrast")
        self.act_invert = self._action(self.contrast_menu, "&Invert", lambda: None, "I", "actInvert")
        self.act_invert.setCheckable(True)
        self.act_invert.toggled.connect(self.contrast.set_invert)
        self.contrast.invert.toggled.connect(self.act_invert.setChecked)
        self._action(self.contrast_menu, "&Gamma…", self.gamma_dialog, "G", "actGamma")
        self._action(self.contrast_menu, "Reset gamma", lambda: self.contrast.set_gamma(1.0), None, "actGammaReset")
        self.preset_actions: list[QAction] = []
        self._fill_contrast_menu([])
        if self.view.vb.menu is not None:
            self.view.vb.menu.addSeparator()
            self.view.vb.menu.addMenu(self.contrast_menu)

    def _fill_contrast_menu(self, presets: list[Any]) -> None:
        """Rebuild the window entries of the Contrast menu: Automatic, the file's windows, then the HU presets."""
        m = self.contrast_menu
        for a in self.preset_actions:
            m.removeAction(a)
            self.removeAction(a)
            a.deleteLater()
        self.preset_actions = []
        first = m.actions()[0] if m.actions() else None
        entries: list[tuple[str, Callable[[], Any]]] = [("&Automatic", lambda: self.contrast.apply_preset("Automatic"))]
        for i, p in enumerate(presets):
            if p.source == "preset" and (i == 0 or presets[i - 1].source == "file"):
                entries.append(("", lambda: None))  # a separator between the file's windows and the presets
            label = p.name if p.source == "file" else f"{p.name}  (C {p.centre:g} / W {p.width:g})"
            entries.append((label, lambda p=p: self.contrast.apply_preset(p)))
        entries.append(("", lambda: None))
        k = 0
        for label, slot in entries:
            if label:  # Alt+0: automatic, Alt+1..9: the windows in order
                a = QAction(label, self)
                a.setObjectName(f"actWindow{k}")
                if k <= 9:
                    a.setShortcut(QKeySequence(f"Alt+{k}"))
                k += 1
                a.triggered.connect(lambda _c=False, slot=slot: slot())
                self.addAction(a)
            else:
                a = QAction(self)
                a.setSeparator(True)
            m.insertAction(first, a)
            self.preset_actions.append(a)

    def gamma_dialog(self) -> None:
        """Contrast > Gamma…: ask for the display gamma (0.2 .. 5; 1 = linear)."""
        if self.contrast.settings is None:
            return
        g, ok = QInputDialog.getDouble(self, APP_NAME, "Gamma (shown value = windowed value ^ gamma):",
                                       self.contrast.settings.gamma, 0.2, 5.0, 2)
        if ok:
            self.contrast.set_gamma(g)

    def _window_drag(self, dx: float, dy: float, start: bool, finish: bool) -> None:
        """Right-drag: horizontal changes the width, vertical the centre (right: wider, down: higher centre), by
        the image's dynamic range / 1024 per screen pixel (as Cornerstone's W/L tool)."""
        if self.contrast.settings is None:
            return
        if start or getattr(self, "_wl_start", None) is None:
            self._wl_start = (self.contrast.window(), self.window_step())
        (c0, w0), k = self._wl_start  # type: ignore[misc]
        floor = 1.0 if self.doc is not None and self.doc.dtype.kind in "ui" else 1e-6 * max(k, 1e-12)
        self.contrast.set_window(c0 + dy * k, max(floor, w0 + dx * k))
        if finish:
            self._wl_start = None

    def window_step(self) -> float:
        """Window change per screen pixel of a right-drag: the dynamic range of the automatic-contrast sample
        (the dtype's range without one) / 1024."""
        smp = self.contrast._current_sample()
        if smp is not None and smp.size:
            a = np.asarray(smp)
            a = a[np.isfinite(a)] if a.dtype.kind == "f" else a
            if a.size:
                rng = float(a.max()) - float(a.min())
                if rng > 0:
                    return rng / 1024.0
        if self.doc is not None and self.doc.dtype.kind in "ui":
            info = np.iinfo(self.doc.dtype)
            return (float(info.max) - float(info.min)) / 1024.0
        return 1.0 / 1024.0

    def _connect(self) -> None:
        self.view.autoDisplayReady.connect(self._auto_display)
        self.view.levelChanged.connect(lambda lv: self._show_level())
        self.view.frameComplete.connect(self._show_level)
        self.view.cursorInfo.connect(self._cursor)
        self.view.labelsChanged.connect(self._labels_changed)
        lv = self.layout_views
        self.labels.exportRequested.connect(lambda name: export_label(self, name))
        for signal, method in ((self.labels.visibilityChanged, "set_label_visible"),
                               (self.labels.hiddenValuesChanged, "set_label_hidden_values"),
                               (self.labels.opacityChanged, "set_label_opacity"),
                               (self.labels.contourChanged, "set_label_contour")):
            signal.connect(getattr(self.view, method))
            signal.connect(lambda *a, method=method: lv.for_extra(method, *a))
        lv.positionChanged.connect(self._position_changed)
        lv.layoutChanged.connect(self._layout_changed)
        self.view.tileFailed.connect(self._tile_failed)
        self.view.vb.rectDrawn.connect(self._selection_drawn)
        self.contrast.settingsChanged.connect(self._set_display)
        self.view.vb.windowDrag.connect(self._window_drag)
        self.slicing.planeChanged.connect(self._plane_changed)
        self.editing.fillRequested.connect(self.fill_selection)
        self.editing.saveRequested.connect(lambda: self.save(metadata=False))
        self.model.changed.connect(self._edits_changed)
        self.metadata.changed.connect(self._update_title)
        self.metadata.saveRequested.connect(lambda _d: self.save(pixels=False))

    # --- opening -------------------------------------------------------------------------------------------
    def open_path(self, path: str) -> bool:
        """Open ``path`` in this window; shows a message (never raises) when it cannot be opened.

        An image of another format (command line, Finder/Explorer double-click, a second launch) is not opened
        but shown in the import dialog (returns False: nothing is open yet)."""
        path = resolve_open_path(os.fspath(path))
        if not path.lower().endswith(".mzarr") and drop_action(path) == "import":
            self.last_error = f"{path} is not a .mzarr: shown in the import dialog"
            self.start_import(path)
            return False
        if self.doc is not None and not self.maybe_save():
            return False
        try:
            doc = Document(path)
        except Exception as exc:  # any error from a bad file becomes a message
            self.show_error(f"Cannot open {path}", f"{type(exc).__name__}: {exc}")
            if isinstance(exc, MzarrFormatError) and os.path.isfile(path) and "mzarr salvage" in str(exc):
                # a damaged .mzarr (cut short, a damaged container): what still reads can be saved from here
                assert self.error_box is not None
                button = self.error_box.addButton("Save salvaged copy…", QMessageBox.ButtonRole.ActionRole)
                button.setObjectName("salvageButton")
                button.clicked.connect(lambda: file_check.salvage_copy(self, path=path))
            return False
        self._close_doc()
        self.doc = doc
        self.model.reset()
        rgb = doc.axes.endswith("c") and doc.channel_count in (3, 4) and doc.dtype in (np.uint8, np.uint16)
        try:
            attrs, attrs_error = doc.attrs(), None
        except Exception as exc:
            attrs, attrs_error = {}, exc
        self.slicing.blockSignals(True)
        # a patient image's planes are drawn as radiologists read them (rows, columns from its geometry)
        self.slicing.set_image(doc.axes, doc.shape, doc.channel_count, rgb, attrs)
        self.slicing.blockSignals(False)
        self.docks["Slicing"].setVisible(len(doc.spatial_axes) == 3 or bool(doc.channel_count and not rgb))
        self.editing.set_dtype(doc.dtype, doc.is_label)
        self.metadata.set_attrs(attrs)
        if attrs_error is not None:
            self.metadata.error.emit(f"attributes could not be read: {attrs_error}")
        self._set_window_presets(doc)
        # the physical aspect choice is remembered for the session; a file without spacing has square pixels
        self.view.physical_aspect = self.act_physical.isChecked()
        self.act_physical.setEnabled(doc.spacing is not None)
        self.act_ortho.setEnabled(is_volume(doc))
        if self.layout_views.mode == ORTHO and is_volume(doc):
            self.slicing.blockSignals(True)
            self.slicing.set_axis(doc.spatial_axes[0])  # the main view is the first orthogonal view
            self.slicing.blockSignals(False)
        self.slicing.axis.setEnabled(is_volume(doc) and self.layout_views.mode != ORTHO)
        self.view.set_document(doc, self.slicing.plane())
        self.layout_views.set_document(doc)
        self.measure.set_document(doc)
        settings.add_recent(path)
        self._watch(doc.path)
        self._update_title()
        self._show_level()
        return True

    def _watch(self, path: str | None) -> None:
        """Follow the open file (not a folder) for changes made by other programs."""
        if self._watcher.files():
            self._watcher.removePaths(self._watcher.files())
        if path and os.path.isfile(path):
            self._watcher.addPath(path)

    def check_disk(self) -> bool:
        """Another program changed the open file: show it as it is now (True). Pending edits stay pending over
        it; if the image or its label images changed shape, it is opened again (or, with unsaved changes, the
        user is told to keep them with Save As)."""
        doc = self.doc
        if doc is None:
            return False
        if self._saving:  # this app is writing the file (a progress dialog lets events through): look afterwards
            self._disk_timer.start()
            return False
        if os.path.isfile(doc.path) and doc.path not in self._watcher.files():
            self._watcher.addPath(doc.path)  # a file replaced by a save elsewhere drops the watch
        if not doc.changed_on_disk():
            return False
        before = (doc.shape, doc.dtype, doc.axes, [la.name for la in self.view.label_layers])
        try:
            doc.reopen()
            names = list(doc.m.labels())
        except Exception as exc:
            self.show_error(f"{doc.path} changed on disk and cannot be read now", f"{type(exc).__name__}: {exc}")
            return True
        if (doc.shape, doc.dtype, doc.axes, sorted(names)) != (*before[:3], sorted(before[3])):
            if self.is_modified():
                self.show_error(f"{os.path.basename(doc.path)} was changed by another program",
                                "Its image or label images changed shape; your unsaved changes were made on the "
                                "earlier version: use File > Save As… to keep them in a new file.")
                return True
            self.open_path(doc.path)
        else:
            self.view.reload()
            self.layout_views.reload()
            if not self.metadata.dirty:
                self._attrs_changed(doc.attrs())
        self.statusBar().showMessage(f"{os.path.basename(doc.path)} was changed by another program: "
                                     "showing it as it is now", 6000)
        return True

    def _close_doc(self) -> None:
        self._watch(None)
        self.measure.set_document(None)
        self.layout_views.close_document()
        self.view.close_document()
        self.act_ortho.setEnabled(False)
        self.act_physical.setEnabled(False)
        if self.doc is not None:
            self.doc.close()
        self.doc = None

    def show_error(self, title: str, detail: str) -> None:
        """Non-blocking warning box (kept in ``error_box`` so tests can read it)."""
        self.last_error = f"{title}\n{detail}"
        box = QMessageBox(QMessageBox.Icon.Warning, APP_NAME, title, QMessageBox.StandardButton.Ok, self)
        box.setInformativeText(detail)
        box.setObjectName("errorBox")
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self.error_box = box

    def open_dialog(self) -> None:
        """File > Open: .mzarr files (or zarr.json of an OME-Zarr folder)."""
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self._last_dir(), OPEN_FILTER)
        if path:
            self._open_here_or_new(path)

    def open_folder_dialog(self) -> None:
        """File > Open OME-Zarr folder."""
        path = QFileDialog.getExistingDirectory(self, "Open OME-Zarr folder", self._last_dir())
        if path:
            self._open_here_or_new(path)

    def _open_here_or_new(self, path: str) -> None:
        """Open in this window when it is empty (or stands alone), else ask the application for a new one."""
        if self.doc is None or not self.multi_window:
            self.open_path(path)
        else:
            self.openInNewWindow.emit(path)

    def _last_dir(self) -> str:
        r = settings.recent_files()
        return os.path.dirname(r[0]) if r else os.path.expanduser("~")

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in settings.recent_files():
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda _c=False, p=p: self._open_here_or_new(p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def import_dialog(self) -> None:
        """File > Import: pick an image file of any format Mzarr reads, then the import dialog."""
        src, _ = QFileDialog.getOpenFileName(self, "Import image", self._last_dir(), IMPORT_FILTER)
        if src:
            self.start_import(src)

    def import_folder_dialog(self) -> None:
        """File > Import DICOM folder: pick a folder of DICOM slices (searched recursively), then the import
        dialog (the file dialog of File > Import picks files only)."""
        folder = QFileDialog.getExistingDirectory(self, "Import DICOM folder", self._last_dir())
        if folder:
            self.start_import(folder)

    def start_import(self, src: str) -> ImportDialog | None:
        """Show the import dialog for ``src`` (series, shape, spacing, compression, estimated size, destination);
        accepting it converts with progress and opens the result. A .mzarr / OME-Zarr is opened instead, and a
        path Mzarr cannot read shows why. While a dialog is open, further images wait their turn."""
        from mzarr_core import formats

        src = os.fspath(src)
        action = drop_action(src)
        if action is None:
            try:
                formats.find_format(src)
                detail = "Mzarr cannot import it"
            except Exception as exc:  # the registry says what it reads
                detail = str(exc)
            self.show_error(f"Cannot import {src}", detail)
            return None
        if action == "open":
            self._open_here_or_new(src)
            return None
        if self.import_box is not None:
            self.import_queue.append(src)
            return None
        dlg = ImportDialog(src, self)
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.finished.connect(lambda _r, d=dlg: self._import_dialog_done(d))
        self.import_box = dlg
        dlg.open()
        return dlg

    def _import_dialog_done(self, dlg: ImportDialog) -> None:
        req = dlg.request if dlg.result() == QDialog.DialogCode.Accepted else None
        if self.import_box is dlg:
            self.import_box = None
        dlg.deleteLater()
        if req is not None:
            self.import_file(req.src, req.dst, read_options=req.read_options, save_options=req.save_options,
                             slide_compression=req.slide_compression)
        if self.import_queue and self.import_box is None:
            self.start_import(self.import_queue.pop(0))

    def import_file(self, src: str, dst: str, *, read_options: dict[str, Any] | None = None,
                    save_options: dict[str, Any] | None = None, slide_compression: str | None = None) -> bool:
        """Convert ``src`` to ``dst`` with a cancellable progress dialog and open it; False on failure/cancel."""
        msg = run_import(self, src, dst, self.progress_hook, read_options=read_options, save_options=save_options,
                         slide_compression=slide_compression)
        if msg == "cancelled":
            self.statusBar().showMessage("Import cancelled", 5000)
            return False
        if msg:
            self.show_error(f"Cannot import {src}", msg)
            return False
        self._open_here_or_new(dst)
        return True

    def dragEnterEvent(self, ev: QDragEnterEvent) -> None:  # noqa: N802 - Qt naming
        """Accept dropped local files/folders that Mzarr opens or imports (the formats registry decides)."""
        if ev.mimeData().hasUrls() and any(
            u.isLocalFile() and drop_action(u.toLocalFile()) for u in ev.mimeData().urls()
        ):
            ev.acceptProposedAction()

    def dropEvent(self, ev: QDropEvent) -> None:  # noqa: N802 - Qt naming
        """Open dropped .mzarr / OME-Zarr images; show every other image Mzarr reads (a DICOM folder or zip, a
        slide, NIfTI...) in the import dialog, one after another."""
        for u in ev.mimeData().urls():
            if u.isLocalFile():
                p = u.toLocalFile()
                if drop_action(p) == "import":
                    self.start_import(p)
                else:
                    self._open_here_or_new(p)  # .mzarr / OME-Zarr, or the error saying why not
        ev.acceptProposedAction()

    # --- view state ----------------------------------------------------------------------------------------
    def _set_window_presets(self, doc: Document) -> None:
        """The windows offered for ``doc``: its DICOM windows, the HU presets for Hounsfield data."""
        from mzarr_core.display import presets_for

        try:
            attrs = doc.attrs()
        except Exception:  # unreadable attributes: no file window
            attrs = {}
        self.window_presets = presets_for(doc.dtype, attrs) if not doc.is_label and not doc.channel_count else []
        self.contrast.set_presets(self.window_presets)
        self._fill_contrast_menu(self.window_presets)
        self.view.vb.window_level = not doc.is_label

    def _auto_display(self, s: DisplaySettings) -> None:
        """The image's automatic settings arrived: a single-channel image with a window in its file (a DICOM CT or
        MR) opens with the file's first window; every other image with automatic contrast."""
        from dataclasses import replace

        from mzarr_core.display import window_to_levels

        file_windows = [p for p in getattr(self, "window_presets", []) if p.source == "file"]
        if file_windows and s.mode == "single":
            lo, hi = window_to_levels(file_windows[0].centre, file_windows[0].width)
            s = replace(s, lo=lo, hi=hi)
        self.contrast.set_source(s, getattr(self.view, "hist_data", None), getattr(self.view, "hist_channels", None))
        if file_windows and s.mode == "single":
            self._set_display(s)
        self.act_invert.blockSignals(True)
        self.act_invert.setChecked(s.invert)
        self.act_invert.blockSignals(False)
        self._sync_plane_display()

    def _plane_changed(self, plane: Plane) -> None:
        self.view.set_plane(plane)
        self.layout_views.main_plane_changed(plane)
        self.layout_views.refresh_overviews()
        self._sync_plane_display()

    def _attrs_changed(self, attrs: dict[str, Any]) -> None:
        """The file's attributes changed (saved from the Metadata panel, or by another program): the panel, the
        file's windows (WindowCenter/Width) and the planes' orientation (patient geometry) follow."""
        assert self.doc is not None
        self.metadata.set_attrs(attrs)
        self._set_window_presets(self.doc)
        self.slicing.attrs = attrs
        plane = self.slicing.plane()
        turned = plane != self.view.plane  # turned (or back) as the geometry now says
        if turned:
            self.view.set_plane(plane)
        turned = self.layout_views.set_attrs(attrs) or turned
        for v in self.layout_views.views():
            v._apply_orientation()
        if turned:
            self.layout_views.fit()
            self.measure.redraw()  # annotations drawn in the views' new axes

    def _set_display(self, s: DisplaySettings) -> None:
        """Contrast/colour settings of the image, in every view on screen."""
        self.view.set_display(s)
        self.layout_views.set_display(s)

    def set_layout(self, mode: str) -> None:
        """View > Layout: the single view or (volumes) the orthogonal views; the main view becomes the view of
        the first spatial axis (z), its slice kept as the cursor's."""
        lv, doc = self.layout_views, self.doc
        if mode == ORTHO and is_volume(doc) and lv.mode != ORTHO:
            assert doc is not None
            p = self.view.plane
            pos = [n // 2 for n in (doc.shape[doc.axes.index(a)] for a in doc.spatial_axes)]
            if p is not None and p.slice_axis in doc.spatial_axes:
                pos[doc.spatial_axes.index(p.slice_axis)] = p.slice_index
            self.slicing.set_axis(doc.spatial_axes[0])
            self.slicing.set_index(pos[0])
            lv.set_mode(mode)
            lv.set_position(pos)
        else:
            lv.set_mode(mode)

    def _layout_changed(self, mode: str) -> None:
        self.act_single.setChecked(mode == SINGLE)
        self.act_ortho.setChecked(mode == ORTHO)
        self.slicing.axis.setEnabled(mode != ORTHO and is_volume(self.doc))
        for v in self.layout_views.extra:
            if not getattr(v, "_window_hooked", False):
                v._window_hooked = True  # type: ignore[attr-defined]
                v.cursorInfo.connect(self._cursor)
                v.vb.windowDrag.connect(self._window_drag)
                v.tileFailed.connect(self._tile_failed)

    def _position_changed(self, pos: tuple[int, ...]) -> None:
        """The orthogonal views' cursor moved: the slicing panel shows the main view's slice."""
        self.slicing.set_index(pos[0])

    def _sync_plane_display(self) -> None:
        """Single-channel selection of a composite shows that channel in grey with its levels."""
        s = self.contrast.settings
        p = self.view.plane
        if s is None or p is None or not s.channels or s.mode == "rgb":
            return
        from dataclasses import replace

        if p.channels is not None and len(p.channels) == 1:
            ch = s.channels[p.channels[0]]
            self.contrast.channel.setCurrentIndex(p.channels[0])
            self._set_display(replace(s, mode="single", lo=ch.lo, hi=ch.hi))
        else:
            self._set_display(replace(s, mode="composite"))

    def actual_size(self) -> None:
        """Zoom so one level-0 pixel is one screen pixel, the view's corner on a whole pixel (with an odd-sized
        view, a centre on a half pixel put every tile edge on half device pixels: a seam row between tiles)."""
        self.view.actual_size()

    def set_physical_aspect(self, on: bool) -> None:
        """View > Physical aspect: pixels at their physical aspect (True) or square (False), for this session."""
        self.act_physical.setChecked(bool(on))
        self.view.set_physical_aspect(bool(on))
        self.layout_views.set_physical_aspect(bool(on))

    def _show_level(self) -> None:
        if self.doc is None:
            self.level_label.setText("")
            return
        lv = self.view.level
        if lv < 0:
            return
        lev = self.doc.levels[lv]
        state = "" if self.view.complete else " (loading…)"
        self.level_label.setText(f"level {lv}/{len(self.doc.levels) - 1} ×{max(lev.factor)}{state}")

    def _cursor(self, info: dict[str, Any]) -> None:
        doc = self.doc
        if doc is None:
            return
        plane: Plane = info["plane"]
        row, col = info["row"], info["col"]
        h, w = doc.shape[doc.axes.index(plane.row)], doc.shape[doc.axes.index(plane.col)]  # the view's plane
        if not (0 <= row < h and 0 <= col < w):
            self.pos_label.setText("")
            self.value_label.setText("")
            self.label_label.setText("")
            return
        coords = {plane.row: int(row), plane.col: int(col)}
        if plane.slice_axis:
            coords[plane.slice_axis] = plane.slice_index
        order = [a for a in doc.spatial_axes]
        text = "  ".join(f"{a}={coords[a]}" for a in order)
        if doc.spacing is not None:
            phys = [format_length((coords[a] + (0.5 if a in (plane.row, plane.col) else 0)) * doc.spacing[i],
                                  doc.unit) for i, a in enumerate(order)]
            text += "   (" + ", ".join(phys) + ")"
        self.pos_label.setText(text)
        v = info["value"]
        if v is None:
            self.value_label.setText("value: …")
        else:  # exact: level 0; else the coarse value, marked approximate, until the full-resolution one arrives
            val, lv = v
            vs = ", ".join(f"{x:g}" for x in val) if isinstance(val, tuple) else f"{val:g}"
            exact = info.get("exact", lv == 0)
            self.value_label.setText(f"value: {vs}" if exact else f"value: ≈{vs} (level {lv}, reading…)")
            self.value_label.setToolTip("" if exact else "The value of a coarse level; the full-resolution pixel "
                                        "is being read")
        self.label_label.setText(format_labels(info.get("labels") or []))

    def toggle_labels(self) -> None:
        """Hide every label image if one is shown, else show them all (through the Labels panel's checkboxes)."""
        items = [self.labels.list.item(i) for i in range(self.labels.list.count())]
        state = Qt.CheckState.Unchecked if any(it.checkState() == Qt.CheckState.Checked for it in items) \
            else Qt.CheckState.Checked
        for it in items:
            it.setCheckState(state)

    def _labels_changed(self) -> None:
        """List the open file's label images in the Labels panel (its opacity and style apply to them)."""
        layers = self.view.label_layers
        self.labels.set_labels([la.name for la in layers], [la.visible for la in layers])
        self.view.set_label_opacity(self.labels.opacity.value() / 100.0)
        self.view.set_label_contour(self.labels.contour.isChecked())

    # --- editing (the tools: edit_controller.EditController) ----------------------------------------------
    def _escape(self) -> None:
        """Esc: drop a half-drawn polygon, else back to the pan tool."""
        if self.view.vb.polygon_in_progress:
            self.view.vb.cancel_polygon()
        else:
            self.editing.set_tool(None)

    def fill_selection(self, value: float) -> bool:
        """Set the selected rectangle of the current slice of the paint target to ``value`` (pending, undoable)."""
        if self.doc is None or self.view.plane is None:
            return False
        r = self.view.vb.selection
        if r is None:
            self.statusBar().showMessage("Draw a rectangle first (R, then drag)", 5000)
            return False
        return self.edit_tools.fill_rect((r.left(), r.top(), r.right(), r.bottom()), value, self.editing.target())

    def select_and_fill(self, rect: tuple[float, float, float, float], value: float,
                        target: str | None = None) -> bool:
        """Pending edit setting level-0 rectangle (x0, y0, x1, y1) of the current slice of ``target`` (a label
        image's name; None: the image) to ``value``."""
        return self.edit_tools.fill_rect(rect, value, target)

    def _selection_drawn(self, r: QRectF) -> None:
        """The status bar gives the pixels a fill of the selection sets: every pixel the rectangle touches."""
        if self.doc is None or self.view.plane is None:
            return
        piece = rect_mask(r.left(), r.top(), r.right(), r.bottom(), plane_shape(self.doc, self.view.plane))
        self.statusBar().showMessage(
            "Selection outside the image" if piece is None else f"Selection {piece.cols} × {piece.rows} px", 4000)

    def paint(self, points: list[tuple[float, float]], radius: float, value: float,
              target: str | None = None) -> bool:
        """Pending brush edit of ``target`` along ``points`` ((x, y) level-0), ``radius`` in level-0 pixels."""
        return self.edit_tools.paint(points, radius, value, target)

    def _edits_changed(self) -> None:
        self.view.set_edits(self.model.edits)
        self.layout_views.set_edits(self.model.edits)
        self._update_title()

    def is_modified(self) -> bool:
        """Unsaved pixel edits or metadata changes."""
        return self.model.dirty or self.metadata.dirty or self.measure.dirty

    def save(self, pixels: bool = True, metadata: bool = True) -> bool:
        """Write pending pixel edits (only touched chunks + pyramid, via mzarr_core) and/or metadata."""
        if self.doc is None or not ((pixels and self.model.dirty) or (metadata and self.metadata.dirty)
                                    or self.measure.dirty):
            return True
        doc = self.doc
        self.layout_views.stop_loading()
        self.view.stop_loading()
        ok = True
        self._saving = True
        try:
            if pixels and self.model.edits:
                n = doc.save_edits(self.model.edits)
                self.model.reset()
                self.statusBar().showMessage(f"Saved {n} edit(s) to {os.path.basename(doc.path)}", 5000)
            if metadata and self.metadata.dirty:
                attrs = self.metadata.to_dict()
                doc.save_attrs(attrs)
                self._attrs_changed(doc.attrs())
            if self.measure.dirty:
                self.measure.save()
        except Exception as exc:
            ok = False
            try:
                doc.reopen()
            except Exception:
                pass
            if isinstance(exc, MzarrReadOnlyError):  # the edits are kept: offer to save them into a new file
                self._saving = False
                return self._save_elsewhere(doc.path, str(exc))
            self.show_error(f"Cannot save {doc.path}", f"{type(exc).__name__}: {exc}")
        finally:
            self._saving = False
        self.view.set_edits(self.model.edits)
        self.layout_views.set_edits(self.model.edits)
        self.view.reload()
        self.layout_views.reload()
        self._update_title()
        return ok

    def save_as(self, path: str | None = None) -> bool:
        """Save the image with its pending edits, metadata and annotations as a new .mzarr ``path`` (asked when
        None) and continue on that file; the file opened before is not changed."""
        if self.doc is None:
            return False
        if path is None:
            path = self.ask_save_as_path(self.doc.path)
            if not path:
                return False
        path = os.fspath(path)
        if not path.lower().endswith(".mzarr"):
            path += ".mzarr"
        doc, before = self.doc, self.doc.path
        self.layout_views.stop_loading()
        self.view.stop_loading()
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        self._saving = True
        try:
            doc.copy_to(path)
        except Exception as exc:
            self.show_error(f"Cannot save as {path}", f"{type(exc).__name__}: {exc}")
            self.view.reload()
            self.layout_views.reload()
            return False
        finally:
            self._saving = False
            QApplication.restoreOverrideCursor()
        settings.add_recent(path)
        self._watch(path)
        self.statusBar().showMessage(f"Saved a copy of {os.path.basename(before)} as {os.path.basename(path)}", 5000)
        ok = self.save() if self.is_modified() else True
        self.view.reload()
        self.layout_views.reload()
        self._update_title()
        return ok

    def _tile_failed(self, message: str) -> None:
        self.statusBar().showMessage(f"Could not read {message} — File > Check file… lists every damaged chunk", 12000)

    def ask_salvage_path(self, current: str) -> str:
        """Ask where to write the salvaged copy of a damaged file (tests replace this); '' when cancelled."""
        start = os.path.splitext(current.rstrip("/\\"))[0] + "-salvaged.mzarr"
        path, _ = QFileDialog.getSaveFileName(self, "Save salvaged copy", start, "Mzarr images (*.mzarr)")
        return path

    def ask_save_as_path(self, current: str) -> str:
        """Ask where to save a copy (tests replace this); '' when cancelled."""
        start = os.path.splitext(current.rstrip("/\\"))[0] + "-copy.mzarr"
        path, _ = QFileDialog.getSaveFileName(self, "Save As", start, "Mzarr images (*.mzarr)")
        return path

    def _save_elsewhere(self, path: str, reason: str) -> bool:
        """``path`` cannot be written (read-only media, permissions): keep the pending edits by saving them into a
        new file the user chooses (Save As), or say how."""
        self.last_error = f"Cannot save {path}\n{reason}"
        target = self.ask_save_as_path(path)
        if target:
            return self.save_as(target)
        self.show_error(f"Cannot save {path}", f"{reason}\n\nYour changes are still here: use File > Save As… to "
                        "save them into a new file.")
        return False

    def _update_title(self) -> None:
        name = os.path.basename(self.doc.path.rstrip("/\\")) if self.doc else "(no image)"
        self.setWindowTitle(f"{name}[*] — {APP_NAME}")
        self.setWindowModified(self.is_modified())

    def ask_save_changes(self) -> QMessageBox.StandardButton:
        """Ask Save / Discard / Cancel (tests replace this)."""
        return QMessageBox.question(
            self, APP_NAME, "The image has unsaved changes. Save them?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)

    def maybe_save(self) -> bool:
        """True if it is fine to close the current image (saved, discarded or nothing to save)."""
        if not self.is_modified():
            return True
        ans = self.ask_save_changes()
        if ans == QMessageBox.StandardButton.Save:
            return self.save()
        return ans == QMessageBox.StandardButton.Discard

    def closeEvent(self, ev: QCloseEvent) -> None:  # noqa: N802 - Qt naming
        """Ask about unsaved changes, remember window state, stop loading."""
        if not self.maybe_save():
            ev.ignore()
            return
        self.import_queue.clear()
        if self.import_box is not None:
            self.import_box.reject()  # stops its worker and closes the source it opened
        s = settings.app_settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("view/layout", self.layout_views.mode)
        s.setValue("view/overview", bool(self.layout_views.overview))
        self._close_doc()
        ev.accept()
        if self._holds_gc_guard:
            self._holds_gc_guard = False
            gc_guard.release()

    def _restore_state(self) -> None:
        s = settings.app_settings()
        g, st = s.value("window/geometry"), s.value("window/state")
        if g is not None:
            self.restoreGeometry(g)
        if st is not None:
            self._state_restored = bool(self.restoreState(st))
        # the layout and the overview inset as the user left them (a volume opens in the orthogonal views again)
        if s.value("view/layout") in (SINGLE, ORTHO):
            self.set_layout(str(s.value("view/layout")))
        if str(s.value("view/overview", "false")).lower() == "true":
            self.act_overview.setChecked(True)
            self.layout_views.set_overview(True)

    def showEvent(self, ev: Any) -> None:  # noqa: N802 - Qt naming
        """At the first show, the Editing tab is in front of Metadata (raise_ before the window is shown does not
        stick for tabified docks), unless the user's saved layout says otherwise."""
        super().showEvent(ev)
        if not self._holds_gc_guard:  # shown again after a close
            self._holds_gc_guard = True
            gc_guard.acquire()
        if not getattr(self, "_tabs_settled", False):
            self._tabs_settled = True
            if not getattr(self, "_state_restored", False):
                self.docks["Editing"].raise_()

    # --- misc ----------------------------------------------------------------------------------------------
    def cache_dialog(self) -> None:
        """Ask for the chunk cache size in MB."""
        mb, ok = QInputDialog.getInt(self, APP_NAME, "Chunk cache size (MB):", settings.cache_mb(), 16, 65536, 64)
        if ok:
            settings.set_cache_mb(mb)
            self.view.set_cache_mb(mb)
            self.layout_views.set_cache_mb(mb)

    def about(self) -> QMessageBox:
        """About box (non-blocking) with the version, the licence and a "Licences…" button."""
        from .about import about_box

        box = about_box(self)
        box.buttonClicked.connect(lambda b: self.show_licences() if b is box.licences_button else None)
        self.about_box = box
        box.open()
        return box

    def show_licences(self) -> QDialog:
        """Help > Licences: the project licence and the third-party licence files shipped with the viewer."""
        from .about import LicencesDialog

        dlg = LicencesDialog(self)
        self.licences_dialog = dlg
        dlg.open()
        return dlg

    def _quit(self) -> None:
        from PySide6.QtWidgets import QApplication

        QApplication.closeAllWindows()

    def wait_until_idle(self, timeout_s: float = 30.0) -> bool:
        """Process events until the view shows a complete frame with nothing loading."""
        import time

        from PySide6.QtWidgets import QApplication

        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            QApplication.processEvents()
            if self.layout_views.is_idle():
                return True
            time.sleep(0.002)
        return False
