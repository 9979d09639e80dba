"""File > Check file… and File > Save salvaged copy…: ``mzarr verify`` and ``mzarr salvage`` for people who never
open a terminal. Both run on their own read session of the file (the view keeps reading meanwhile) behind a
cancellable progress dialog; the findings are shown in a box that offers the salvaged copy when chunks are damaged.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

import mzarr_core

from .tasks import run_task

if TYPE_CHECKING:
    from .window import MainWindow

LISTED = 12  # problems shown in the box's details (all of them are counted)


def _verify(path: str, progress: Any, _report: Any) -> Any:
    with mzarr_core.Mzarr(path, "r") as image:
        return mzarr_core.verify(image, progress)


def summary(report: Any, name: str) -> tuple[str, str, str]:
    """(title, text, details) of a :class:`~mzarr_core.VerifyReport` for ``name``, in the viewer's words."""
    if report.ok:
        sums = "every chunk passes its checksum and decodes" if report.checksums else "every chunk decodes"
        return (f"{name} is sound", f"{report.chunks_checked} chunks checked: {sums}; {report.pyramid_note}.", "")
    lines = report.problems + [f"missing: {line}" for line in report.missing]
    details = "\n".join(lines[:LISTED] + ([f"… and {len(lines) - LISTED} more"] if len(lines) > LISTED else []))
    damaged = len(report.damaged) + sum(len(r.damaged) for r in report.labels.values())
    full_resolution = 0 in report.damaged_at or any(0 in r.damaged_at for r in report.labels.values())
    if damaged and not full_resolution:
        text = (f"{damaged} chunk(s) of the overview levels cannot be read: their bytes changed on disk after they "
                "were written. The full resolution is sound, so nothing is lost: \"Save salvaged copy…\" writes a new "
                f"file with them rebuilt exactly from it (or 'mzarr repair {name}' rebuilds them in place).")
    elif damaged:
        text = (f"{damaged} chunk(s) cannot be read: their bytes changed on disk after they were written "
                "(a failing disk, a bad copy). Restore the file from a backup if you have one; otherwise "
                "\"Save salvaged copy…\" writes a new file with every other pixel exact and the damaged chunks "
                "filled from what is left (listed in the copy).")
    elif report.checksums:
        text = ("Every chunk is sound, but the overview levels do not match the full resolution (a stale "
                f"pyramid): 'mzarr repair {name}' rebuilds them from level 0.")
    else:
        text = ("The overview levels do not match the full resolution. This file was written before chunks carried "
                "checksums, so a damaged full-resolution chunk cannot be told from a stale overview: restore it from "
                f"a backup if the full resolution may be damaged, else 'mzarr repair {name}' rebuilds the overviews.")
    if report.missing:
        text += (f" {len(report.missing)} full-resolution chunk(s) are not stored where the overviews hold data: if "
                 "they were lost rather than cleared, \"Save salvaged copy…\" recovers them from the overviews.")
    return (f"{name} has problems", text, details)


def check_file(window: MainWindow) -> Any:
    """Verify the open file with progress; show the findings (``window.check_box``, non-blocking) and return the
    report (None when cancelled or failed: the error is shown)."""
    if window.doc is None:
        return None
    path = window.doc.path
    name = os.path.basename(path.rstrip("/\\"))
    report, msg = run_task(window, "Check file", f"Checking {name}…",
                           lambda progress, rep: _verify(path, progress, rep), window.progress_hook)
    if msg:
        if msg != "cancelled":
            window.show_error(f"Cannot check {name}", msg)
        return None
    title, text, details = summary(report, name)
    icon = QMessageBox.Icon.Information if report.ok else QMessageBox.Icon.Warning
    box = QMessageBox(icon, "Check file", title, QMessageBox.StandardButton.Close, window)
    box.setInformativeText(text)
    if details:
        box.setDetailedText(details)
    box.setObjectName("checkBox")
    if report.damaged or report.missing or any(r.damaged for r in report.labels.values()):
        salvage = box.addButton("Save salvaged copy…", QMessageBox.ButtonRole.ActionRole)
        salvage.setObjectName("salvageButton")
        salvage.clicked.connect(lambda: salvage_copy(window))
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.open()
    window.check_box = box
    return report


def salvage_copy(window: MainWindow, target: str | None = None, path: str | None = None) -> Any:
    """Write what still reads of the open file (or of ``path``, a file that does not open) to a new file (asked
    with ``window.ask_salvage_path`` unless ``target``), with progress; show what was filled how
    (``window.check_box``) and offer to open the copy."""
    if path is None:
        if window.doc is None:
            return None
        path = window.doc.path
    target = target or window.ask_salvage_path(path)
    if not target:
        return None
    name = os.path.basename(path.rstrip("/\\"))

    def work(progress: Any, _report: Any) -> Any:
        return mzarr_core.salvage_file(path, target, progress=progress)

    report, msg = run_task(window, "Save salvaged copy", f"Salvaging {name}…", work, window.progress_hook)
    if msg:
        if msg != "cancelled":
            window.show_error(f"Cannot salvage {name}", msg)
        return None
    lines = report.lines()
    box = QMessageBox(QMessageBox.Icon.Information, "Save salvaged copy", f"Wrote {os.path.basename(target)}",
                      QMessageBox.StandardButton.Close, window)
    box.setInformativeText(lines[-1])
    if len(lines) > 1:
        box.setDetailedText("\n".join(lines[:-1][:200]))
    box.setObjectName("salvageBox")
    opener = box.addButton("Open the copy", QMessageBox.ButtonRole.ActionRole)
    opener.setObjectName("openSalvaged")
    opener.clicked.connect(lambda: window._open_here_or_new(target))
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.open()
    window.check_box = box
    return report
