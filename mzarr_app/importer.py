"""Import of any image Mzarr reads (the formats registry, :mod:`mzarr_core.formats`) into .mzarr through
``mzarr_core.convert`` with a cancellable progress dialog (a slide's compression goes to its reader).

What will be imported is shown first by :mod:`mzarr_app.import_dialog`; this module runs the conversion."""

from __future__ import annotations

import os
from typing import Any, Callable

from PySide6.QtWidgets import QProgressDialog, QWidget

from mzarr_core import formats

from .import_plan import folder_writable
from .tasks import run_task

IMPORT_FILTER = formats.qt_filter()  # every importable format, then one entry per format, then all files


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

    def work(progress: Callable[[int, int], None], report: Callable[[str], None]) -> None:
        extra = {"report": report} if slide_compression is not None else {}
        convert(src, dst, progress=progress, read_options=read_options, **extra, **save_options)

    _, msg = run_task(parent, "Import image", f"Importing {os.path.basename(src)}…", work, on_dialog)
    return msg
