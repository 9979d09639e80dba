"""The QApplication: windows, macOS FileOpen events, single-instance hand-off and the app icon."""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from . import APP_NAME, ORG_NAME, __version__
from .window import MainWindow


def resource_dirs() -> list[Path]:
    """Places where ``resources/`` may be: the PyInstaller bundle, next to the package, the repo root."""
    here = Path(__file__).resolve().parent
    out = []
    if getattr(sys, "_MEIPASS", None):
        out.append(Path(sys._MEIPASS) / "resources")  # type: ignore[attr-defined]
    out += [here / "resources", here.parent / "resources", Path(sys.prefix) / "share" / "mzarr" / "resources"]
    return out


def app_icon() -> QIcon:
    """``resources/mzarr.svg`` / ``.png`` when present (an empty icon otherwise)."""
    icon = QIcon()
    for d in resource_dirs():
        for name in ("mzarr.svg", "mzarr.png"):
            p = d / name
            if p.is_file():
                icon.addFile(str(p))
        if not icon.isNull():
            break
    return icon


class MzarrApplication(QApplication):
    """Owns the main windows and routes "open this file" requests to them."""

    def __init__(self, argv: list[str], cache_mb: float | None = None) -> None:
        super().__init__(argv)
        self.setApplicationName(APP_NAME)
        self.setOrganizationName(ORG_NAME)
        self.setApplicationVersion(__version__)
        self.setWindowIcon(app_icon())
        self.cache_mb = cache_mb
        self.windows: list[MainWindow] = []
        self.single: Any = None
        self.aboutToQuit.connect(self.shutdown)
        # zarr stops its IO loop in an atexit handler; ours must run first (atexit is LIFO), so import it now
        import mzarr_core  # noqa: F401

        atexit.register(self.shutdown)

    def install_excepthook(self) -> None:
        """Report unexpected errors in a message on the active window instead of only on stderr."""
        import traceback

        previous = sys.excepthook

        def hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
            previous(kind, exc, tb)
            w = self.activeWindow()
            target = w if isinstance(w, MainWindow) else (self.windows[-1] if self.windows else None)
            if target is not None:
                detail = "".join(traceback.format_exception_only(kind, exc)).strip()
                target.show_error("Unexpected error", detail)

        sys.excepthook = hook

    def shutdown(self) -> None:
        """Stop every window's background loading (safe to call more than once)."""
        for w in list(getattr(self, "windows", [])):
            try:
                w.view.close_document()
            except RuntimeError:  # already deleted by Qt
                pass

    def new_window(self) -> MainWindow:
        """Create and show an empty window."""
        w = MainWindow(self.cache_mb)
        w.openInNewWindow.connect(self.open_file)
        w.multi_window = True
        w.destroyed.connect(lambda *_a, w=w: self.windows.remove(w) if w in self.windows else None)
        self.windows.append(w)
        if self.windows[:-1]:
            prev = self.windows[-2]
            w.move(prev.pos().x() + 30, prev.pos().y() + 30)
        w.show()
        return w

    def open_file(self, path: str) -> MainWindow:
        """Open ``path`` in an empty window if there is one, else in a new window."""
        w = next((w for w in self.windows if w.doc is None and w.isVisible()), None) or self.new_window()
        w.open_path(path)
        w.raise_()
        w.activateWindow()
        return w

    def open_files(self, paths: list[str]) -> None:
        """Open several paths (from a second launch)."""
        for p in paths:
            self.open_file(p)

    def event(self, ev: QEvent) -> bool:  # noqa: D401 - Qt override
        """macOS sends files double-clicked in the Finder as FileOpen events."""
        if ev.type() == QEvent.Type.FileOpen:
            path = ev.file() or ev.url().toLocalFile()  # type: ignore[attr-defined]
            if path:
                QTimer.singleShot(0, lambda p=os.fspath(path): self.open_file(p))
            return True
        return super().event(ev)
