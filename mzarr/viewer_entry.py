"""The ``mzarr-viewer`` command: a Qt-free launcher that imports the viewer (:mod:`mzarr_app`) only when its packages
are installed.

``pip install mzarr`` is the library and the ``mzarr`` command without Qt; the viewer's packages (PySide6,
pyqtgraph) come with ``pip install "mzarr[viewer]"``. Without them ``mzarr-viewer`` prints that one line and exits
with status 1 instead of an ImportError traceback. (The PyInstaller bundle starts ``mzarr_app.main`` directly:
packaging/entry_viewer.py.)
"""

from __future__ import annotations

import importlib.util
import sys

#: the packages the viewer imports that the base install does not bring (PySide6 brings shiboken6)
VIEWER_PACKAGES = ("PySide6", "pyqtgraph")
INSTALL_HINT = 'pip install "mzarr[viewer]"'


def missing_viewer_packages() -> list[str]:
    """The viewer's packages that cannot be imported here (not installed, or blocked)."""
    missing = []
    for name in VIEWER_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a blocked import (sys.modules[name] = None) or a broken package
            found = False
        if not found:
            missing.append(name)
    return missing


def main(argv: list[str] | None = None) -> int:
    """Run the viewer (``mzarr_app.main.main``), or say in one line how to install it; returns the exit code."""
    missing = missing_viewer_packages()
    if missing:
        print(f"mzarr-viewer: the viewer needs {' and '.join(missing)}, which are not installed: {INSTALL_HINT}",
              file=sys.stderr)
        return 1
    from mzarr_app.main import main as viewer_main

    return viewer_main(argv)


if __name__ == "__main__":
    sys.exit(main())
