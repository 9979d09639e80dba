"""Persistent settings (QSettings): recent files, cache size, window state; redirectable for tests."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings

from . import APP_NAME, ORG_NAME

#: When set (tests), settings are kept in this INI file instead of the platform's native store.
SETTINGS_FILE: str | None = os.environ.get("MZARR_VIEWER_SETTINGS") or None
MAX_RECENT = 10
DEFAULT_CACHE_MB = 512


def app_settings() -> QSettings:
    """The application's QSettings."""
    if SETTINGS_FILE:
        return QSettings(SETTINGS_FILE, QSettings.Format.IniFormat)
    return QSettings(ORG_NAME, APP_NAME)


def recent_files() -> list[str]:
    """Recently opened paths, newest first."""
    v = app_settings().value("recentFiles", [])
    if isinstance(v, str):
        v = [v]
    return [str(x) for x in (v or [])]


def add_recent(path: str) -> list[str]:
    """Put ``path`` first in the recent list and return it."""
    path = os.path.abspath(path)
    items = [p for p in recent_files() if p != path]
    items.insert(0, path)
    items = items[:MAX_RECENT]
    app_settings().setValue("recentFiles", items)
    return items


def cache_mb() -> int:
    """Chunk cache budget in MB."""
    try:
        return max(16, int(app_settings().value("cacheMB", DEFAULT_CACHE_MB)))
    except (TypeError, ValueError):
        return DEFAULT_CACHE_MB


def set_cache_mb(mb: int) -> None:
    """Store the chunk cache budget."""
    app_settings().setValue("cacheMB", int(mb))
