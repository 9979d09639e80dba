"""A pyramid level as a lazy, sliceable array in the user's axis order, over a storage-order array."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .frames import frame_decodable, read_z_plane
from .indexing import AxisIndex, normalize


class StorageArray(Protocol):
    """What a level needs from its backing array (a zarr array, a NumPy array, a StorageView...)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __getitem__(self, key: Any) -> Any: ...


class StorageView:
    """A user-order array seen in storage order, without copying (for in-memory and out-of-core sources)."""

    def __init__(self, source: Any, perm: tuple[int, ...]):
        self.source = source
        self.perm = perm
        self.inverse = tuple(int(i) for i in np.argsort(perm))
        self.shape = tuple(int(source.shape[p]) for p in perm)
        self.dtype = np.dtype(source.dtype)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The source's chunk shape in storage order (the whole shape for unchunked sources)."""
        source_chunks = getattr(self.source, "chunks", None) or self.source.shape
        return tuple(int(source_chunks[p]) for p in self.perm)

    def __getitem__(self, key: tuple) -> np.ndarray:
        user_key = tuple(key[i] for i in self.inverse)
        block = np.asarray(self.source[user_key])
        kept = [p for p in self.perm if not isinstance(user_key[p], (int, np.integer))]
        user_kept = [p for p in range(len(self.perm)) if not isinstance(user_key[p], (int, np.integer))]
        order = [user_kept.index(p) for p in kept]
        return np.transpose(block, order)

    def __setitem__(self, key: tuple, value: np.ndarray) -> None:
        user_key = tuple(key[i] for i in self.inverse)
        kept = [p for p in self.perm if not isinstance(user_key[p], (int, np.integer))]
        user_kept = sorted(kept)
        order = [kept.index(p) for p in user_kept]
        self.source[user_key] = np.transpose(value, order)


class Level:
    """One pyramid level: ``shape``/``chunks``/``factor`` in user order, NumPy basic indexing via ``[]``.

    ``reader`` (storage key -> array) is the single place pixels are read, so that errors can be translated and
    reads instrumented.
    """

    def __init__(
        self,
        index: int,
        storage: StorageArray,
        perm: tuple[int, ...],
        axes: str,
        storage_chunks: tuple[int, ...],
        storage_factor: tuple[int, ...],
        reader: Callable[[StorageArray, tuple], np.ndarray] | None = None,
        guard: Callable[[], Any] | None = None,
        name: str = "the image",
    ):
        self.index = index
        self.storage = storage
        self.perm = perm
        self.inverse = tuple(int(i) for i in np.argsort(perm))
        self.axes = axes
        self.shape = tuple(int(storage.shape[i]) for i in self.inverse)
        self.dtype = np.dtype(storage.dtype)
        self.chunks = tuple(int(storage_chunks[i]) for i in self.inverse)
        self.factor = tuple(int(storage_factor[i]) for i in self.inverse)
        self._reader = reader or (lambda arr, key: np.asarray(arr[key]))
        self._guard = guard or contextlib.nullcontext  # read lock + snapshot of the owning image
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"<Level {self.index} shape={self.shape} dtype={self.dtype} factor={self.factor} axes={self.axes!r}>"

    # -- chunk geometry (user order) -----------------------------------------------------------------------------
    @property
    def chunk_grid(self) -> tuple[int, ...]:
        """Number of chunks along each axis."""
        return tuple(-(-n // c) for n, c in zip(self.shape, self.chunks))

    def chunk_region(self, chunk_index: tuple[int, ...]) -> tuple[slice, ...]:
        """The region (clipped to the shape) that chunk ``chunk_index`` covers."""
        return tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(chunk_index, self.chunks, self.shape))

    def chunks_in(self, region: tuple[slice, ...]) -> list[tuple[int, ...]]:
        """Indices of the chunks a region (slices with step 1) touches."""
        ranges = []
        for sl, c, n in zip(region, self.chunks, self.shape):
            start, stop, _ = sl.indices(n)
            ranges.append(range(start // c, -(-stop // c)) if stop > start else range(0))
        return list(itertools.product(*ranges))

    # -- reading --------------------------------------------------------------------------------------------------
    def storage_key(self, index: tuple[AxisIndex, ...]) -> tuple:
        """User-order canonical index -> storage-order key of ints and forward slices."""
        return tuple(index[p].slice for p in self.perm)

    def _read(self, index: tuple[AxisIndex, ...]) -> np.ndarray:
        block = self._reader(self.storage, self.storage_key(index))
        kept_storage = [p for p in self.perm if not index[p].drop]
        kept_user = sorted(kept_storage)
        block = np.transpose(block, [kept_storage.index(p) for p in kept_user])
        if any(index[p].reverse for p in kept_user):
            block = block[tuple(slice(None, None, -1) if index[p].reverse else slice(None) for p in kept_user)]
        block = np.asarray(block)
        return block if block.flags.c_contiguous else block.copy(order="C")

    def __getitem__(self, key: Any) -> np.ndarray:
        return self._read(normalize(key, self.shape))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    def numpy(self) -> np.ndarray:
        """The whole level as a NumPy array."""
        return self[...]

    def z_plane(self, z: int, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        """``level[z, rows, cols]`` of a volume (channels kept, in this level's axis order), fast.

        Where the chunks are JPEG XL bricks, only frame ``z`` of each brick is decoded (15-35x less work than
        whole 64^3 bricks); anything else reads through ``level[...]``.
        """
        if "z" not in self.axes:
            raise IndexError(f"z_plane needs a volume; this level's axes are {self.axes!r}")
        key: list[Any] = [slice(None)] * self.ndim
        key[self.axes.index("z")], key[self.axes.index("y")], key[self.axes.index("x")] = z, rows, cols
        index = normalize(tuple(key), self.shape)
        y, x = index[self.axes.index("y")], index[self.axes.index("x")]
        if y.step != 1 or x.step != 1 or y.reverse or x.reverse or not frame_decodable(self.storage):
            return self._read(index)
        with self._guard():
            plane = read_z_plane(self.storage, index[self.axes.index("z")].start, (y.start, y.stop), (x.start, x.stop), self.name)
        if self.axes.endswith("c"):
            plane = np.moveaxis(plane, 0, -1)
        return np.ascontiguousarray(plane)
