"""What every kind of image storage offers the :class:`~mzarr_core.image.Mzarr` API."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import MzarrReadOnlyError
from ..indexing import AxisIndex
from ..level import Level
from ..ngff import ImageInfo


class Backend(ABC):
    """One image's pixels (levels) and metadata, wherever they live.

    ``info`` is the image's metadata as last read or written; ``store`` the Zarr store (None in memory).
    """

    kind: ClassVar[str]
    #: True if attributes are saved somewhere (a file): attrs() then re-reads and writes them through the backend
    persistent: ClassVar[bool] = False

    def __init__(self, info: ImageInfo, path: Path | None = None):
        self.info = info
        self.path = path
        self.store: Any = None

    @property
    @abstractmethod
    def level0(self) -> Level:
        """The full-resolution level (available without computing or opening the others)."""

    @property
    @abstractmethod
    def levels(self) -> list[Level]:
        """Every pyramid level, full resolution first."""

    @property
    def stored_level_count(self) -> int | None:
        """How many levels exist without computing any (None where they are computed on demand)."""
        return len(self.levels)

    @property
    def writable(self) -> bool:
        return False

    def read_only_reason(self) -> str:
        return "this image is open read-only; open the file with Mzarr(path, 'r+') to edit it"

    def write_region(self, key: Any, index: tuple[AxisIndex, ...], value: np.ndarray) -> None:
        """Write ``value`` (already checked and broadcast to the region's shape) at ``key`` / ``index``."""
        raise MzarrReadOnlyError(self.read_only_reason())

    def write_regions(self, items: Sequence[tuple[Any, tuple[AxisIndex, ...], np.ndarray]]) -> None:
        """Write several ``(key, index, value)`` regions in order, as :meth:`write_region` each (storages with a
        stored pyramid update it once for all of them)."""
        for key, index, value in items:
            self.write_region(key, index, value)

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        """An atomic write (or a read snapshot) where the storage has them; nothing elsewhere."""
        yield

    def load_attrs(self) -> dict[str, Any]:
        """The user attributes as stored now (another session may have changed them)."""
        return dict(self.info.attrs)

    def store_attrs(self, attrs: dict[str, Any]) -> None:
        """Replace the stored user attributes (inside the caller's transaction)."""
        raise MzarrReadOnlyError(self.read_only_reason())

    @property
    def broken(self) -> str | None:
        """Why the storage dropped its connection after a failed rollback (None while it is usable)."""
        return None

    def close(self) -> None:
        """Release files and connections."""
