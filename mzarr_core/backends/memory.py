"""An image held in memory (or read lazily from an array-like) until it is saved."""

from __future__ import annotations

from typing import Any, ClassVar, cast

import numpy as np

from ..axes import is_colour
from ..chunking import auto_chunks
from ..indexing import AxisIndex
from ..level import Level, StorageArray, StorageView
from ..ngff import ImageInfo
from ..pyramid import downsample, plan_levels
from .base import Backend


class MemoryBackend(Backend):
    """``source`` in the user's axis order; the pyramid is computed in memory when first asked for."""

    kind: ClassVar[str] = "memory"

    def __init__(self, source: Any, info: ImageInfo, perm: tuple[int, ...]):
        super().__init__(info)
        self.source = source
        view = StorageView(source, perm)
        st = info.storage_axes
        colour = is_colour(info.axes, view.shape[0] if "c" in st else None, view.dtype)
        self._level0 = Level(0, view, perm, info.axes, auto_chunks(view.shape, st, colour), (1,) * len(perm))
        self._pyramid: list[Level] | None = None

    @property
    def level0(self) -> Level:
        return self._level0

    @property
    def levels(self) -> list[Level]:
        if self._pyramid is None:
            self._pyramid = self._compute_pyramid()
        return list(self._pyramid)

    @property
    def stored_level_count(self) -> int | None:
        return None

    def _compute_pyramid(self) -> list[Level]:
        base = self._level0
        st = self.info.storage_axes
        storage_chunks = tuple(base.chunks[p] for p in base.perm)
        plan = plan_levels(base.storage.shape, st, storage_chunks)
        out = [base]
        data = np.asarray(base.storage[tuple(slice(None) for _ in st)])
        for i in range(1, len(plan)):
            halve = tuple(a != b for a, b in zip(plan[i].factor, plan[i - 1].factor))
            data = downsample(data, halve, self.info.downsample)
            chunks = tuple(min(c, n) for c, n in zip(storage_chunks, data.shape))
            out.append(Level(i, cast(StorageArray, data), base.perm, self.info.axes, chunks, plan[i].factor))
        return out

    @property
    def writable(self) -> bool:
        return isinstance(self.source, np.ndarray) and self.source.flags.writeable

    def read_only_reason(self) -> str:
        return "the source array of this in-memory image is read-only; pass a writable NumPy array"

    def write_region(self, key: Any, index: tuple[AxisIndex, ...], value: np.ndarray) -> None:
        self.source[key] = value
        self._pyramid = None
