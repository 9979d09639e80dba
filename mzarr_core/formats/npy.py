""".npy arrays: read memory-mapped (lazy), written block by block into a memory-mapped file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MzarrFormatError
from .base import Source, head
from .selection import Counter, Progress, Selection


def sniff(path: Path) -> bool:
    return head(path, 6) == b"\x93NUMPY"


def read(path: Path) -> Source:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise MzarrFormatError(f"{path} could not be read as a .npy array: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise MzarrFormatError(f"{path} is not a single .npy array")
    return Source(array, attrs={"source": path.name})


def write(sel: Selection, path: Path, progress: Progress | None = None) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=sel.dtype, shape=sel.shape)
    try:
        blocks = list(sel.slabs(sel.spatial[0]))  # slabs of the slowest spatial axis, every channel in each
        counter = Counter(progress, len(blocks))
        for block in blocks:
            out[block] = sel.read(block)
            counter.step()
        out.flush()
    finally:
        del out
