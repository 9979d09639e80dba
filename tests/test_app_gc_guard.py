"""Qt objects in reference cycles are destroyed on the GUI thread while a window is open (a worker thread that
triggered Python's collector used to destroy them there and hang the app: an import after a cancelled import)."""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject

from app_fixtures import isolated_settings, window  # noqa: F401
from mzarr_app import gc_guard


class _Cyclic(QObject):
    """A QObject that references itself and records the thread that finalises it."""

    finalised_in: list[int] = []

    def __init__(self) -> None:
        super().__init__()
        self.me = self

    def __del__(self) -> None:
        _Cyclic.finalised_in.append(threading.get_ident())


def _allocate_in_a_worker() -> None:
    """Allocate enough container objects in another thread to pass every generation's threshold."""
    def churn() -> None:
        keep = []
        for i in range(200_000):
            keep.append([i])
            if len(keep) > 1000:
                keep.clear()

    t = threading.Thread(target=churn)
    t.start()
    t.join()


def test_cycles_are_collected_on_the_gui_thread_while_a_window_is_open(qtbot, window) -> None:  # noqa: F811
    assert gc_guard.active() and not gc.isenabled()
    _Cyclic.finalised_in.clear()
    for _ in range(5):
        _Cyclic()  # garbage at once: only the cyclic collector can free it
    _allocate_in_a_worker()
    assert _Cyclic.finalised_in == []  # the worker's allocations did not collect them
    qtbot.waitUntil(lambda: len(_Cyclic.finalised_in) == 5, timeout=5000)
    assert set(_Cyclic.finalised_in) == {threading.main_thread().ident}


def test_collection_is_given_back_when_the_last_window_closes(qtbot) -> None:
    from mzarr_app.window import MainWindow

    assert not gc_guard.active() and gc.isenabled()
    first, second = MainWindow(), MainWindow()
    qtbot.addWidget(first)
    qtbot.addWidget(second)
    first.ask_save_changes = second.ask_save_changes = lambda: None
    assert gc_guard.active() and not gc.isenabled()
    first.close()
    assert gc_guard.active()  # the other window still holds it
    second.close()
    assert not gc_guard.active() and gc.isenabled()
    second.show()  # shown again: held again
    assert gc_guard.active()
    second.close()
    assert not gc_guard.active() and gc.isenabled()
