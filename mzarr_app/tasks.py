"""Long library calls (import, verify, salvage) run off the GUI thread behind a cancellable progress dialog.

The work gets ``progress(done, total)``, which raises ``SaveCancelled`` once the user pressed Cancel (the library
stops there and leaves no partial file), and ``report(line)``, which shows a line under the dialog's text.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from PySide6.QtCore import QEventLoop, QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QProgressDialog, QWidget

import mzarr_core


class _Bridge(QObject):
    """Carries progress and completion from the worker thread to the GUI thread."""

    progress = Signal(int, int)
    report = Signal(str)
    finished = Signal(str)  # "" on success, else the error message ("cancelled" when cancelled)


def run_task(parent: QWidget | None, title: str, text: str,
             work: Callable[[Callable[[int, int], None], Callable[[str], None]], Any],
             on_dialog: Callable[[QProgressDialog], None] | None = None) -> tuple[Any, str]:
    """Run ``work(progress, report)`` in a background thread showing a modal progress dialog titled ``title``
    with ``text``; returns ``(its result, "")``, or ``(None, message)``: "cancelled", or the error as a line
    (never raised into Qt). ``on_dialog`` lets tests reach the dialog."""
    bridge = _Bridge()
    cancel = threading.Event()
    dlg = QProgressDialog(text, "Cancel", 0, 100, parent)
    dlg.setWindowTitle(title)
    label = QLabel(text)
    label.setWordWrap(True)
    label.setMinimumWidth(420)
    dlg.setLabel(label)
    dlg.setWindowModality(Qt.WindowModality.WindowModal)
    dlg.setMinimumDuration(0)
    dlg.setAutoClose(False)
    dlg.setAutoReset(False)
    dlg.canceled.connect(cancel.set)
    outcome: list[tuple[Any, str]] = []
    loop = QEventLoop()
    value: list[Any] = [None]

    def progress(done: int, total: int) -> None:
        if cancel.is_set():
            raise mzarr_core.SaveCancelled(f"{title.lower()} cancelled")
        bridge.progress.emit(int(done), int(total))

    def run() -> None:
        try:
            value[0] = work(progress, bridge.report.emit)
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
        outcome.append((None if msg else value[0], msg))
        loop.quit()

    bridge.progress.connect(on_progress)
    bridge.report.connect(lambda line: dlg.setLabelText(f"{text}\n{line}"))
    bridge.finished.connect(on_finished)
    dlg.show()
    if on_dialog is not None:
        on_dialog(dlg)
    th = threading.Thread(target=run, name="mzarr-task", daemon=True)
    th.start()
    if not outcome:
        loop.exec()
    th.join()
    dlg.close()
    dlg.deleteLater()
    return outcome[0] if outcome else (None, "cancelled")
