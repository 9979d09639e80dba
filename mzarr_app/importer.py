"""Import of any image Mzarr reads (the formats registry, :mod:`mzarr_core.formats`) into .mzarr through
``mzarr_core.convert`` with a cancellable progress dialog (a slide's compression goes to its reader).

What will be imported is shown first by :mod:`mzarr_app.import_dialog`; this module runs the conversion."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from PySide6.QtCore import QEventLoop, QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QProgressDialog, QWidget

from mzarr_core import formats

from .import_plan import folder_writable

IMPORT_FILTER = formats.qt_filter()  # every importable format, then one entry per format, then all files


class _Bridge(QObject):
    """Carries progress and completion from the worker thread to the GUI thread."""

    progress = Signal(int, int)
    report = Signal(str)  # a choice the library made, said before writing (a slide's compression)
    finished = Signal(str)  # "" on success, else the error message ("cancelled" when cancelled)


def default_destination(src: str) -> str:
    """``photo.tif`` -> ``photo.mzarr``, ``scan.nii.gz`` -> ``scan.mzarr``, a DICOM folder ``CT/`` -> ``CT.mzarr``,
    next to the source; in the user's documents folder (else home) when the source's folder cannot be written (a
    CD, a read-only share)."""
    src = src.rstrip("/\\") or src
    name = os.path.basename(src)
    base = formats.strip_suffix(name)
    if base == name and not os.path.isdir(src):
        base = os.path.splitext(name)[0] or name  # a file of a format found by its content (e.g. IM0001.ima)
    folder = os.path.dirname(os.path.abspath(src))
    if not folder_writable(folder):
        from PySide6.QtCore import QStandardPaths

        documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        folder = documents if documents and folder_writable(documents) else os.path.expanduser("~")
    return os.path.join(folder, base + ".mzarr")


def drop_action(path: str) -> str | None:
    """What a dropped path becomes: "open" (.mzarr, OME-Zarr), "import" (any other format Mzarr reads, a DICOM
    folder or zip included) or None (not an image Mzarr knows)."""
    return formats.import_action(path)


def run_import(parent: QWidget | None, src: str, dst: str,
               on_dialog: Callable[[QProgressDialog], None] | None = None, *,
               read_options: dict[str, Any] | None = None, save_options: dict[str, Any] | None = None,
               slide_compression: str | None = None) -> str:
    """Convert ``src`` to ``dst`` showing a progress dialog; returns "" on success, else a message.

    ``read_options`` go to the format's reader (DICOM: ``series``), ``save_options`` to ``Mzarr.save``
    (``lossless``/``distance``/``quality``); ``slide_compression`` ("recompress", "lossless", "lossy") is a
    whole-slide image's storage mode (its reader's ``compression``; the line the library reports about that choice
    becomes the progress dialog's text). Runs the conversion in a background thread;
    Cancel makes the progress callback raise ``SaveCancelled`` so the core aborts and leaves no partial file.
    ``on_dialog`` lets tests reach the dialog.
    """
    import mzarr_core

    convert = mzarr_core.convert  # the public function (mzarr_core.__all__), not the private module of that name
    read_options = dict(read_options or {})
    save_options = dict(save_options or {})
    if slide_compression is not None:
        read_options["compression"] = slide_compression
    bridge = _Bridge()
    cancel = threading.Event()
    dlg = QProgressDialog(f"Importing {os.path.basename(src)}…", "Cancel", 0, 100, parent)
    dlg.setWindowTitle("Import image")
    label = QLabel(f"Importing {os.path.basename(src)}…")
    label.setWordWrap(True)
    label.setMinimumWidth(420)
    dlg.setLabel(label)
    dlg.setWindowModality(Qt.WindowModality.WindowModal)
    dlg.setMinimumDuration(0)
    dlg.setAutoClose(False)
    dlg.setAutoReset(False)
    dlg.canceled.connect(cancel.set)
    result: list[str] = []
    loop = QEventLoop()

    def progress(done: int, total: int) -> None:
        if cancel.is_set():
            raise mzarr_core.SaveCancelled("import cancelled")
        bridge.progress.emit(int(done), int(total))

    def work() -> None:
        try:
            extra = {"report": bridge.report.emit} if slide_compression is not None else {}
            convert(src, dst, progress=progress, read_options=read_options, **extra, **save_options)
            msg = "cancelled" if cancel.is_set() else ""
        except mzarr_core.SaveCancelled:
            msg = "cancelled"
        except Exception as exc:  # any failure is reported, never raised into Qt
            msg = f"{type(exc).__name__}: {exc}"
        bridge.finished.emit(msg)

    def on_progress(done: int, total: int) -> None:
        if total > 0:
            dlg.setMaximum(total)
            dlg.setValue(min(done, total))

    def on_finished(msg: str) -> None:
        result.append(msg)
        loop.quit()

    bridge.progress.connect(on_progress)
    bridge.report.connect(lambda line: dlg.setLabelText(f"Importing {os.path.basename(src)}…\n{line}"))
    bridge.finished.connect(on_finished)
    dlg.show()
    if on_dialog is not None:
        on_dialog(dlg)
    th = threading.Thread(target=work, name="mzarr-import", daemon=True)
    th.start()
    if not result:
        loop.exec()
    th.join()
    dlg.close()
    dlg.deleteLater()
    return result[0] if result else "cancelled"
