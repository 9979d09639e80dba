"""A pyramid level as a lazy, sliceable array in the user's axis order, over a storage-order array."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .indexing import AxisIndex, normalize


class StorageArray(Protocol):
    """What a level needs from its backing array (a zarr array, a NumPy array, a StorageView...)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __getitem__(self, key: Any) -> Any: ...

    def __setitem__(self, key: Any, value: Any) -> None: ...


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


class ChunkSource(Protocol):
    """How a stored level reads (:class:`mzarr_core.chunk_reader.ChunkReader`): storage order, cached, parallel."""

    frames: Any

    @property
    def fast(self) -> bool: ...

    def read(self, key: tuple, out: np.ndarray | None = None) -> np.ndarray: ...

    def read_chunk(self, coords: tuple[int, ...], cached_only: bool = False) -> np.ndarray | None: ...

    def read_chunk_plane(self, coords: tuple[int, ...], frame: int, cached_only: bool = False) -> np.ndarray | None: ...

    def read_z_plane(self, z: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray: ...


class Level:
    """One pyramid level: ``shape``/``chunks``/``factor`` in user order, NumPy basic indexing via ``[]``.

    A stored level reads through its ``source`` (a :class:`~mzarr_core.chunk_reader.ChunkReader`: the file's
    decoded-chunk cache, chunks decoded in parallel); an in-memory one through ``reader`` (storage key -> array).
    Whole chunks and z-planes of chunks: :meth:`read_chunk`, :meth:`read_chunk_plane`, :attr:`plane_reads_are_fast`.
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
        source: ChunkSource | None = None,
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
        self._source = source
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
        kept_storage = [p for p in self.perm if not index[p].drop]
        kept_user = sorted(kept_storage)
        to_user = [kept_storage.index(p) for p in kept_user]
        flips = tuple(slice(None, None, -1) if index[p].reverse else slice(None) for p in kept_user)
        if self._source is not None:
            # Decode straight into the C-ordered result: its storage-order (and flipped) view is what the source fills.
            out = np.empty(tuple(index[p].size for p in kept_user), self.dtype)
            view = np.transpose(out[flips] if flips else out[...], [kept_user.index(p) for p in kept_storage])
            block = self._source.read(self.storage_key(index), out=view)
            if block is view:
                return out
        else:
            block = self._reader(self.storage, self.storage_key(index))
        block = np.transpose(block, to_user)
        if any(index[p].reverse for p in kept_user):
            block = block[flips]
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

        Where the chunks are JPEG XL frame bricks, only frame ``z`` of each brick is decoded (15-35x less work than
        whole 64^3 bricks), for slab bricks the slab holding ``z`` (a quarter of the brick); frames, slabs and
        bricks already in the file's cache are reused. Anything else reads through ``level[...]``.
        """
        if "z" not in self.axes:
            raise IndexError(f"z_plane needs a volume; this level's axes are {self.axes!r}")
        key: list[Any] = [slice(None)] * self.ndim
        key[self.axes.index("z")], key[self.axes.index("y")], key[self.axes.index("x")] = z, rows, cols
        index = normalize(tuple(key), self.shape)
        y, x = index[self.axes.index("y")], index[self.axes.index("x")]
        if y.step != 1 or x.step != 1 or y.reverse or x.reverse or not self.plane_reads_are_fast:
            return self._read(index)
        assert self._source is not None  # plane reads are fast only for a level backed by a file
        plane = self._source.read_z_plane(index[self.axes.index("z")].start, (y.start, y.stop), (x.start, x.stop))
        if self.axes.endswith("c"):
            plane = np.moveaxis(plane, 0, -1)
        return np.ascontiguousarray(plane)

    def to_dask(self) -> Any:
        """This level as a lazy ``dask.array.Array`` (user axis order, chunked exactly like the level, its dtype).

        For a file, each task reads one chunk through the library and carries only the file's path, the level and
        the file's identity, not the open image: its pickle is small, and a process that runs it (dask's
        ``processes`` scheduler, a ``dask.distributed`` worker) opens the file read-only once. A task whose file
        changed since the array was made raises MzarrError ("... rebuild it"). In memory (no path), the array is
        built from the in-memory arrays, which are then part of the graph (pickling it pickles the pixels).
        Needs dask: ``pip install "mzarr[dask]"``; docs/API.md "dask".
        """
        from .dask_array import level_to_dask

        return level_to_dask(self)

    # -- whole chunks and their planes ------------------------------------------------------------------------------
    @property
    def plane_reads_are_fast(self) -> bool:
        """True if this is a volume whose chunks decode less than a whole brick for one z-plane (JPEG XL bricks of
        one frame per z, or slab bricks): :meth:`read_chunk_plane` and :meth:`z_plane` then decode only the frame or
        slab they need (a slab is cached, its other planes are then free)."""
        return self._source is not None and getattr(self._source, "frames", None) is not None

    def _storage_coords(self, chunk_index: Any) -> tuple[int, ...]:
        try:
            idx = tuple(int(i) for i in chunk_index)
        except TypeError:
            raise IndexError(f"a chunk index is one integer per axis ({self.axes!r}), got {chunk_index!r}") from None
        grid = self.chunk_grid
        if len(idx) != len(grid) or not all(0 <= i < g for i, g in zip(idx, grid)):
            raise IndexError(f"chunk {idx} does not exist: level {self.index} has {grid} chunks (axes {self.axes!r})")
        return tuple(idx[p] for p in self.perm)

    def read_chunk(self, chunk_index: Any, *, cached_only: bool = False) -> np.ndarray | None:
        """Chunk ``chunk_index`` (user axis order; the region :meth:`chunk_region` gives) as a **read-only** array,
        shared with the file's decoded-chunk cache (copy it to change it): decoded once, then served from the cache
        while it stays there. With ``cached_only=True``, returns None instead of reading if it is not cached.
        """
        coords = self._storage_coords(chunk_index)
        if self._source is None:
            if cached_only:
                return None
            block = self[self.chunk_region(tuple(coords[i] for i in self.inverse))]
            block.flags.writeable = False  # a fresh array (in memory: nothing is cached), read-only like a cached one
            return block
        stored = self._source.read_chunk(coords, cached_only)
        return None if stored is None else np.transpose(stored, self.inverse)

    def read_chunk_plane(self, chunk_index: Any, z: int, *, cached_only: bool = False) -> np.ndarray | None:
        """Plane ``z`` (this level's z coordinate) of chunk ``chunk_index`` of a volume: ``level[region]`` of the chunk
        with its z axis replaced by ``z`` (dropped; the chunk's channels kept, user axis order), **read-only**.

        Where :attr:`plane_reads_are_fast`, only that frame (or slab) of the brick is decoded (and cached on its
        own); otherwise the whole chunk is read (and cached) and the plane is a view of it. With ``cached_only=True``,
        returns None instead of reading if neither the plane nor its chunk is cached.
        """
        if "z" not in self.axes:
            raise IndexError(f"read_chunk_plane needs a volume; this level's axes are {self.axes!r}")
        coords = self._storage_coords(chunk_index)
        zi = self.axes.index("z")
        region = self.chunk_region(tuple(coords[i] for i in self.inverse))
        z = int(z)
        if not region[zi].start <= z < region[zi].stop:
            raise IndexError(
                f"plane z={z} is outside chunk {tuple(chunk_index)} (z {region[zi].start}..{region[zi].stop - 1})"
            )
        if not self.plane_reads_are_fast:
            chunk = self.read_chunk(chunk_index, cached_only=cached_only)
            return None if chunk is None else chunk[(slice(None),) * zi + (z - region[zi].start,)]
        assert self._source is not None  # plane reads are fast only for a level backed by a file
        plane = self._source.read_chunk_plane(coords, z - region[zi].start, cached_only)
        if plane is None:
            return None
        kept_storage = [p for p in self.perm if p != zi]
        return np.transpose(plane, [kept_storage.index(p) for p in sorted(kept_storage)])
