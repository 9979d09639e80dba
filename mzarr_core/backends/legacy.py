"""Original Mzarr 0.0.x files (a ZIP holding a Zarr v2 group): read-only, migrated by saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..locks import ReadWriteLock
from .stored import StoredBackend


class LegacyBackend(StoredBackend):
    """Levels read from the ZIP; no writes, no attribute changes."""

    kind: ClassVar[str] = "legacy-zip"

    @classmethod
    def open(cls, store: Any, path: Path, writable: bool, lock: ReadWriteLock) -> "LegacyBackend":
        from ..metadata_check import open_legacy

        info, arrays = open_legacy(store, path)
        return cls(store, path, info, arrays, None, False, lock)

    def read_only_reason(self) -> str:
        return (
            f"{self.path} is an original Mzarr 0.0.x file, which can only be read; migrate it with "
            f"m.save('new.mzarr') or 'mzarr convert {self.path} new.mzarr' and edit the new file"
        )

    def load_attrs(self) -> dict[str, Any]:
        return dict(self.info.attrs)
