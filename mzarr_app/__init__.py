"""Mzarr Viewer: a PySide6 + pyqtgraph viewer/editor for multi-resolution Mzarr images."""

from __future__ import annotations


def _version() -> str:
    """Installed distribution version, else the core's version."""
    try:
        from importlib.metadata import version

        return version("mzarr")
    except Exception:
        try:
            from mzarr_core import __version__

            return str(__version__)
        except Exception:
            return "0.1.0"


__version__ = _version()
APP_NAME = "Mzarr Viewer"
ORG_NAME = "Mzarr"
