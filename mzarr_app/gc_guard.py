"""Python's cyclic garbage collector run on the GUI thread only, while a main window is open.

A Qt object caught in a reference cycle (a dialog referenced by a closure connected to its own signals, ...) is
destroyed by whichever thread's allocation happens to trigger the collector. Destroyed on a worker thread (an import,
a chunk reader), its C++ destructor takes Qt's locks while the GUI thread, holding the GIL, waits on them: the app
hangs (seen: an import's reader thread collecting the previous import's progress dialog). As pyqtgraph's
``GarbageCollector`` does, automatic collection is switched off and a GUI-thread timer collects instead, with
Python's own thresholds.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

#: how often the GUI thread looks at the collector's counts
INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    """Automatic garbage collection off; :meth:`check` (on a GUI-thread timer) collects what Python would have."""

    def __init__(self, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__()
        self.thresholds = gc.get_threshold()
        self.was_enabled = gc.isenabled()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    def check(self) -> None:
        """Collect the generations whose allocation counts passed their thresholds (youngest first)."""
        counts = gc.get_count()
        for generation in range(3):
            if counts[generation] <= self.thresholds[generation]:
                break
            gc.collect(generation)

    def stop(self) -> None:
        """Collect once here, on the GUI thread, then give collection back to Python."""
        self.timer.stop()
        gc.collect()
        if self.was_enabled:
            gc.enable()


_collector: GuiThreadCollector | None = None
_users = 0


def acquire() -> None:
    """A window opened (call on the GUI thread): collection runs on the GUI thread until every window released it."""
    global _collector, _users
    _users += 1
    if _collector is None:
        _collector = GuiThreadCollector()


def release() -> None:
    """A window closed: the last one gives collection back to Python (after one collection on the GUI thread)."""
    global _collector, _users
    _users = max(0, _users - 1)
    if _users == 0 and _collector is not None:
        _collector.stop()
        _collector.deleteLater()
        _collector = None


def active() -> bool:
    """Whether collection is currently run by the GUI thread."""
    return _collector is not None
