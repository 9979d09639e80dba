"""``Mzarr``: an image in memory or in a .mzarr file, with NumPy-style reads and writes and a pyramid."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from . import legacy
from .attrs import LiveAttrs, check_json
from .axes import infer_axes, is_colour, storage_axes, storage_permutation
from .chunking import auto_chunks
from .codecs import check_dtype, choose_codec
from .containers import atomic_target, open_store
from .errors import CorruptChunkError, MzarrError, MzarrFormatError, MzarrReadOnlyError, MzarrValueError
from .indexing import AxisIndex, broadcast_value, normalize, result_shape
from .level import Level, StorageArray, StorageView
from .locks import ReadWriteLock
from .ngff import ImageInfo, parse_group_attributes
from .pyramid import DOWNSAMPLE_METHODS, downsample, plan_levels
from .sqlite_store import SqliteStore
from .values import coerce
from .writer import Progress, write_image

MODES = ("r", "r+", "a", "w", "w-")


class _Zeros:
    """A source of zeros, for creating an empty image file to fill region by region."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype):
        self.shape, self.dtype = shape, np.dtype(dtype)

    def __getitem__(self, key: tuple) -> np.ndarray:
        return np.zeros(tuple(len(range(*s.indices(n))) for s, n in zip(key, self.shape)), self.dtype)


def _check_spacing(spacing: Any, n_spatial: int) -> tuple[float, ...] | None:
    if spacing is None:
        return None
    values = (spacing,) * n_spatial if np.isscalar(spacing) else tuple(spacing)
    if len(values) != n_spatial or not all(np.isfinite(v) and float(v) > 0 for v in values):
        raise MzarrValueError(f"spacing must be {n_spatial} positive numbers (one per spatial axis), got {spacing!r}")
    return tuple(float(v) for v in values)


class Mzarr:
    """A 2D/3D image (optional channel axis) with a multi-resolution pyramid.

    ``Mzarr(array)`` keeps pixels in memory (or reads an array-like lazily) until :meth:`save`;
    ``Mzarr(path, mode)`` opens a .mzarr file, an OME-Zarr folder or a legacy Mzarr ZIP lazily.
    """

    def __init__(
        self,
        source: Any,
        mode: str = "r",
        *,
        axes: str | None = None,
        channel_axis: int | None = None,
        spacing: Any = None,
        unit: str | None = None,
        is_label: bool = False,
        attrs: dict[str, Any] | None = None,
        shape: tuple[int, ...] | None = None,
        dtype: Any = None,
        **save_options: Any,
    ):
        if mode not in MODES:
            raise MzarrValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        self._store: Any = None
        self._group: Any = None
        self._path: Path | None = None
        self._mode = mode
        self._closed = False
        self._mem_levels: list[Level] | None = None
        self._source: Any = None
        self._lock = ReadWriteLock()  # reads from many threads at once; a write excludes them until committed
        self._attrs_saved = ""  # JSON of the attrs as last read/written: close() rewrites them only if changed
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if mode in ("w", "w-") or (mode == "a" and not path.exists() and shape is not None):
                self._create_file(path, mode, shape, dtype, axes, channel_axis, spacing, unit, is_label, attrs, save_options)
            self._open_file(path, mode)
        else:
            self._init_array(source, axes, channel_axis, spacing, unit, is_label, attrs)

    # -- construction --------------------------------------------------------------------------------------------
    def _init_array(self, source: Any, axes, channel_axis, spacing, unit, is_label, attrs) -> None:
        if isinstance(source, Mzarr):  # a copy keeps what the original knows about itself
            axes = axes or (source.axes if channel_axis is None else None)
            spacing = spacing if spacing is not None else source.spacing
            unit = unit or source.unit
            is_label = is_label or source.is_label
            attrs = attrs if attrs is not None else source.attrs().to_dict()
            source = source.levels[0]
        if not (hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__")):
            source = np.asarray(source)
        if isinstance(source, np.ndarray) and source.dtype.byteorder == ">":
            source = source.astype(source.dtype.newbyteorder("<"))
        dtype = check_dtype(source.dtype)
        shape = tuple(int(n) for n in source.shape)
        if any(n == 0 for n in shape):
            raise MzarrFormatError(f"cannot store an empty image (shape {shape})")
        user_axes = infer_axes(shape, dtype, axes, channel_axis)
        n_spatial = len(user_axes.replace("c", ""))
        spacing = _check_spacing(spacing, n_spatial)
        self._source = source
        self._info = ImageInfo(
            axes=user_axes,
            spacing=spacing,
            unit=unit or ("micrometer" if spacing else None),
            is_label=bool(is_label),
            downsample="mode" if is_label else "mean",
            attrs=check_json(dict(attrs or {}), "attributes"),
        )
        self._kind = "memory"
        self._setup_memory_level0()

    def _setup_memory_level0(self) -> None:
        perm = storage_permutation(self._info.axes)
        view = StorageView(self._source, perm)
        chunks = auto_chunks(view.shape, self._info.storage_axes, self._colour(view.shape, view.dtype))
        self._levels_cache = [Level(0, view, perm, self._info.axes, chunks, (1,) * len(perm))]
        self._mem_levels = None

    def _colour(self, storage_shape: tuple[int, ...], dtype: np.dtype) -> bool:
        st = self._info.storage_axes
        return is_colour(self._info.axes, storage_shape[0] if "c" in st else None, dtype)

    def _create_file(self, path, mode, shape, dtype, axes, channel_axis, spacing, unit, is_label, attrs, options):
        if mode == "w-" and path.exists():
            raise MzarrValueError(f"{path} already exists (mode 'w-' never overwrites); use mode 'w' to replace it")
        if shape is None or dtype is None:
            raise MzarrValueError(
                f"mode {mode!r} creates an empty image: give shape= and dtype=, e.g. "
                f"Mzarr('{path}', '{mode}', shape=(4096, 4096), dtype='uint8'); to save pixels use Mzarr(array).save(path)"
            )
        blank = Mzarr(
            _Zeros(tuple(int(n) for n in shape), check_dtype(dtype)),
            axes=axes, channel_axis=channel_axis, spacing=spacing, unit=unit, is_label=is_label, attrs=attrs,
        )
        blank._save(path, empty=True, **options)
        self._mode = "r+"

    def _open_file(self, path: Path, mode: str) -> None:
        writable = mode in ("r+", "a", "w", "w-")
        store, kind = open_store(path, writable)
        try:
            from .metadata_check import open_image, open_legacy

            if kind == "legacy-zip":
                info, arrays = open_legacy(store, path)
            else:
                # The metadata documents are read once, size-bounded and checked; zarr's nodes are built from them,
                # so a damaged or hostile document is an MzarrFormatError naming the file and the document.
                info, arrays, self._group = open_image(store, kind, path)
        except BaseException:
            store.close()
            raise
        self._store, self._kind, self._path, self._info = store, kind, path, info
        self._attrs_saved = json.dumps(info.attrs, sort_keys=True)
        self._mode = "r+" if writable else "r"
        perm = storage_permutation(info.axes)
        factors = info.level_factors or [
            tuple(max(1, round(s0 / s)) for s0, s in zip(arrays[0].shape, a.shape)) for a in arrays
        ]
        self._levels_cache = [
            Level(i, arr, perm, info.axes, tuple(arr.chunks), tuple(f), reader=self._reader(i), guard=self._read_guard, name=str(path))
            for i, (arr, f) in enumerate(zip(arrays, factors))
        ]

    # -- errors on read ------------------------------------------------------------------------------------------
    def _reader(self, level_index: int):
        def read(arr: Any, key: tuple) -> np.ndarray:
            try:
                with self._read_guard():
                    return np.asarray(arr[key])
            except (MzarrError, IndexError, MemoryError):
                raise
            except Exception as exc:  # a codec error: find and name the damaged chunk
                raise self._corrupt_chunk_error(level_index, arr, key, exc) from None

        return read

    @contextlib.contextmanager
    def _read_guard(self) -> Iterator[None]:
        """What every read of a file holds: the read lock (no half-done write) and one read snapshot."""
        with self._lock.reading(), self._transaction(write=False):
            yield

    def _corrupt_chunk_error(self, level_index: int, arr: Any, key: tuple, exc: Exception) -> CorruptChunkError:
        level = self._levels_cache[level_index]
        storage_region = tuple(
            slice(k, k + 1) if isinstance(k, (int, np.integer)) else slice(k.start, k.stop) for k in key
        )
        storage_chunks = tuple(arr.chunks)
        ranges = [range(s.start // c, max(s.start // c + 1, -(-s.stop // c))) for s, c in zip(storage_region, storage_chunks)]
        for coords in itertools.product(*ranges):
            region = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, storage_chunks, arr.shape))
            try:
                arr[region]
            except Exception as chunk_exc:
                name = f"{self._info.level_paths[level_index]}/c/" + "/".join(str(i) for i in coords)
                return CorruptChunkError(
                    f"chunk {name} (level {level_index}, chunk {coords}) of {self._path} cannot be decoded "
                    f"({type(chunk_exc).__name__}: {chunk_exc}). The file is damaged: restore it from a backup; "
                    f"'mzarr verify {self._path}' lists every damaged chunk"
                )
        return CorruptChunkError(f"level {level.index} of {self._path} could not be read: {type(exc).__name__}: {exc}")

    # -- properties ----------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._levels_cache[0].shape

    @property
    def dtype(self) -> np.dtype:
        return self._levels_cache[0].dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def axes(self) -> str:
        return self._info.axes

    @property
    def spatial_axes(self) -> str:
        return self._info.spatial_axes

    @property
    def channel_count(self) -> int | None:
        return self.shape[self.axes.index("c")] if "c" in self.axes else None

    @property
    def spacing(self) -> tuple[float, ...] | None:
        return self._info.spacing

    @property
    def unit(self) -> str | None:
        return self._info.unit

    @property
    def is_label(self) -> bool:
        return self._info.is_label

    @property
    def downsample_method(self) -> str:
        return self._info.downsample

    @property
    def codec(self) -> dict[str, Any] | None:
        return self._info.codec

    @property
    def chunks(self) -> tuple[int, ...]:
        return self._levels_cache[0].chunks

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def writable(self) -> bool:
        if self._kind == "memory":
            return isinstance(self._source, np.ndarray) and self._source.flags.writeable
        return self._mode == "r+"

    @property
    def levels(self) -> list[Level]:
        """Every pyramid level, full resolution first (computed in memory on first use for in-memory images)."""
        if self._kind != "memory":
            return list(self._levels_cache)
        if self._mem_levels is None:
            self._mem_levels = self._memory_pyramid()
        return list(self._mem_levels)

    def level(self, index: int) -> Level:
        """Pyramid level ``index`` (0 = full resolution; negative counts from the coarsest)."""
        levels = self.levels
        if not -len(levels) <= index < len(levels):
            raise IndexError(f"level {index} does not exist: this image has {len(levels)} levels (0..{len(levels) - 1})")
        return levels[index]

    def _memory_pyramid(self) -> list[Level]:
        base = self._levels_cache[0]
        st = self._info.storage_axes
        storage_chunks = tuple(base.chunks[p] for p in base.perm)
        plan = plan_levels(base.storage.shape, st, storage_chunks)
        out = [base]
        data = np.asarray(base.storage[tuple(slice(None) for _ in st)])
        for i in range(1, len(plan)):
            halve = tuple(a != b for a, b in zip(plan[i].factor, plan[i - 1].factor))
            data = downsample(data, halve, self._info.downsample)
            chunks = tuple(min(c, n) for c, n in zip(storage_chunks, data.shape))
            out.append(Level(i, data, base.perm, self.axes, chunks, plan[i].factor))
        return out

    def attrs(self) -> LiveAttrs:
        """The user metadata as a live mapping: changes are saved at once in mode 'r+' (JSON values only).

        For a file, each call re-reads the attributes other sessions may have saved meanwhile.
        """
        if self._group is not None and not self._closed and self._attrs_unchanged():
            fresh = self._file_attrs(self._open_group())
            self._info.attrs.clear()
            self._info.attrs.update(fresh)
            self._attrs_saved = json.dumps(fresh, sort_keys=True)
        read_only = self._kind != "memory" and self._mode != "r+"
        return LiveAttrs(
            self._info.attrs, None if self._kind == "memory" else self._write_attrs, read_only, self._read_only_reason()
        )

    def _attrs_unchanged(self) -> bool:
        """True if this session holds no attribute change that is not in the file yet (e.g. a nested edit)."""
        return json.dumps(self._info.attrs, sort_keys=True) == self._attrs_saved

    def _open_group(self) -> Any:
        """The root group with its metadata read afresh from the store."""
        return zarr.open_group(self._store, mode="r+" if self._mode == "r+" else "r")

    @staticmethod
    def _file_attrs(group: Any) -> dict[str, Any]:
        return dict((group.attrs.get("mzarr") or {}).get("attrs", {}))

    def _write_attrs(self, data: dict[str, Any]) -> None:
        """Save the keys this session set or deleted onto the attributes in the file (others' keys survive)."""
        self._check_open()
        check_json(data, "attributes")  # nested edits made through the live mapping are checked here
        base = json.loads(self._attrs_saved or "{}")
        with self._lock.writing(), self._transaction():
            group = self._open_group()
            merged = self._file_attrs(group)
            for key in set(base) | set(data):
                if key not in data:
                    merged.pop(key, None)
                elif key not in base or base[key] != data[key]:
                    merged[key] = data[key]
            block = dict(group.attrs.get("mzarr") or {})
            block["attrs"] = merged
            group.attrs.update({"mzarr": block})
        data.clear()
        data.update(merged)
        self._attrs_saved = json.dumps(merged, sort_keys=True)

    def __repr__(self) -> str:
        where = str(self._path) if self._path else "in memory"
        return f"<Mzarr {where} shape={self.shape} dtype={self.dtype} axes={self.axes!r} levels={len(self._levels_cache) if self._kind != 'memory' else '?'}>"

    def __len__(self) -> int:
        return self.shape[0]

    # -- pixels --------------------------------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> np.ndarray:
        with self._lock.reading():  # taken before picking the level: a save over this file swaps the levels
            self._check_open()
            return self._levels_cache[0][key]

    def numpy(self) -> np.ndarray:
        """The whole full-resolution image as a NumPy array."""
        return self[...]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_open()
        if not self.writable:
            raise MzarrReadOnlyError(self._read_only_reason())
        index = normalize(key, self.shape)
        value = broadcast_value(coerce(value, self.dtype), result_shape(index))
        if self._kind == "memory":
            self._source[key] = value
            self._mem_levels = None
            return
        self._write_region(index, value)

    def _read_only_reason(self) -> str:
        if self._kind == "legacy-zip":
            return (
                f"{self._path} is an original Mzarr 0.0.x file, which can only be read; migrate it with "
                f"m.save('new.mzarr') or 'mzarr convert {self._path} new.mzarr' and edit the new file"
            )
        if self._kind == "memory":
            return "the source array of this in-memory image is read-only; pass a writable NumPy array"
        return "this image is open read-only; open the file with Mzarr(path, 'r+') to edit it"

    def _write_region(self, index: tuple[AxisIndex, ...], value: np.ndarray) -> None:
        """Write level 0 and recompute the touched part of every coarser level, as one transaction."""
        level0 = self._levels_cache[0]
        kept_user = [p for p in range(self.ndim) if not index[p].drop]
        flips = tuple(slice(None, None, -1) if index[p].reverse else slice(None) for p in kept_user)
        value = value[flips]
        kept_storage = [p for p in level0.perm if not index[p].drop]
        storage_value = np.transpose(value, [kept_user.index(p) for p in kept_storage])
        box = [index[p].bounds for p in level0.perm]
        if any(lo >= hi for lo, hi in box):
            return
        try:
            with self._lock.writing(), self._transaction():
                level0.storage[level0.storage_key(index)] = storage_value
                self._update_pyramid(box)
        except (MzarrError, MemoryError, KeyboardInterrupt):
            self._close_if_broken()
            raise
        except Exception as exc:  # a damaged chunk that had to be decoded to merge the edit into it
            self._close_if_broken()
            raise self._corrupt_chunk_error(0, level0.storage, level0.storage_key(index), exc) from None

    def _close_if_broken(self) -> None:
        """After a failed edit the file keeps its old state; if even the rollback failed, the store dropped its
        connection, and this object is closed rather than left half-usable."""
        if getattr(self._store, "broken", None):
            self._closed = True
            with contextlib.suppress(Exception):
                self._store.close()

    def _update_pyramid(self, box: list[tuple[int, int]]) -> None:
        """Recompute the region ``box`` (storage order, level 0 coordinates) in every coarser level."""
        for i in range(1, len(self._levels_cache)):
            prev, cur = self._levels_cache[i - 1].storage, self._levels_cache[i].storage
            halve = tuple(
                cur_f != prev_f
                for cur_f, prev_f in zip(self._storage_factor(i), self._storage_factor(i - 1))
            )
            src = []
            for (lo, hi), h, n in zip(box, halve, prev.shape):
                src.append((lo // 2 * 2, min(-(-hi // 2) * 2, n)) if h else (lo, hi))
            block = np.asarray(prev[tuple(slice(lo, hi) for lo, hi in src)])
            down = downsample(block, halve, self._info.downsample)
            box = [((lo // 2) if h else lo, (lo // 2 if h else lo) + n) for (lo, _), h, n in zip(src, halve, down.shape)]
            cur[tuple(slice(lo, hi) for lo, hi in box)] = down

    def _storage_factor(self, level_index: int) -> tuple[int, ...]:
        level = self._levels_cache[level_index]
        return tuple(level.factor[p] for p in level.perm)

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Mzarr"]:
        """Make every write and metadata change inside the block one atomic edit of the file: all are saved
        together at the end, or, if anything fails (or the block raises), none is and the file keeps its old state.

        Other threads' reads wait until the block ends; a single ``m[...] = v`` is already one transaction.
        """
        self._check_open()
        if not self.writable:
            raise MzarrReadOnlyError(self._read_only_reason())
        attrs_before, saved_before = json.dumps(self._info.attrs), self._attrs_saved
        try:
            with self._lock.writing(), self._transaction():
                yield self
        except BaseException:
            if self._kind != "memory":  # metadata saved inside the block was rolled back with it
                self._info.attrs.clear()
                self._info.attrs.update(json.loads(attrs_before))
                self._attrs_saved = saved_before
                self._close_if_broken()
            raise

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[None]:
        """A write transaction (or a read snapshot) on the single-file container; nothing for folders."""
        if isinstance(self._store, SqliteStore):
            with self._store.transaction(write):
                yield
        else:
            yield

    # -- saving --------------------------------------------------------------------------------------------------
    def save(
        self,
        path: str | os.PathLike,
        *,
        lossless: bool = True,
        distance: float | None = None,
        quality: float | None = None,
        effort: int | None = None,
        chunks: tuple[int, ...] | None = None,
        levels: int | None = None,
        downsample: str | None = None,
        channel_axis: int | None = None,
        axes: str | None = None,
        spacing: Any = None,
        unit: str | None = None,
        is_label: bool | None = None,
        attrs: dict[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """Write full resolution + pyramid + metadata to ``path`` (``.mzarr`` file, or ``*.zarr`` OME-Zarr folder).

        The write goes to a temporary name and replaces ``path`` only when complete, so a failure, a kill or a
        cancellation (raise :class:`SaveCancelled` from ``progress(done, total)``) leaves any previous file intact.
        """
        return self._save(
            Path(path), lossless=lossless, distance=distance, quality=quality, effort=effort, chunks=chunks,
            levels=levels, downsample=downsample, channel_axis=channel_axis, axes=axes, spacing=spacing, unit=unit,
            is_label=is_label, attrs=attrs, progress=progress,
        )

    def _save(
        self, path: Path, *, empty: bool = False, lossless: bool = True, distance=None, quality=None, effort=None,
        chunks=None, levels=None, downsample=None, channel_axis=None, axes=None, spacing=None, unit=None,
        is_label=None, attrs=None, progress=None,
    ) -> Path:
        self._check_open()
        path = Path(path)
        user_axes = infer_axes(self.shape, self.dtype, axes, channel_axis) if (axes or channel_axis is not None) else self.axes
        label = self.is_label if is_label is None else bool(is_label)
        method = downsample or ("mode" if label else ("mean" if is_label is False else self._info.downsample))
        if method not in DOWNSAMPLE_METHODS:
            raise MzarrValueError(f"downsample must be one of {', '.join(DOWNSAMPLE_METHODS)}; got {method!r}")
        n_spatial = len(user_axes.replace("c", ""))
        new_spacing = _check_spacing(spacing, n_spatial) if spacing is not None else (
            self.spacing if user_axes == self.axes else None
        )
        info = ImageInfo(
            axes=user_axes,
            spacing=new_spacing,
            unit=unit or self.unit or ("micrometer" if new_spacing else None),
            is_label=label,
            downsample=method,
            attrs=check_json(dict(attrs if attrs is not None else self._info.attrs), "attributes"),
        )
        codec = choose_codec(self.dtype, lossless=lossless, distance=distance, quality=quality, effort=effort, is_label=label)
        level0 = self._levels_cache[0]
        if user_axes == self.axes:
            source: StorageArray = level0.storage
        else:
            source = StorageView(level0, storage_permutation(user_axes))
        st = storage_axes(user_axes)
        perm = storage_permutation(user_axes)
        colour = is_colour(user_axes, self.channel_count, self.dtype)
        if chunks is None:
            storage_chunks = auto_chunks(tuple(source.shape), st, colour)
        else:
            if len(chunks) != self.ndim or not all(int(c) > 0 for c in chunks):
                raise MzarrValueError(f"chunks must be {self.ndim} positive integers (axes {user_axes!r}), got {chunks!r}")
            storage_chunks = tuple(min(int(chunks[p]), source.shape[i]) for i, p in enumerate(perm))
            if colour:
                storage_chunks = (source.shape[0],) + storage_chunks[1:]
            elif "c" in st:
                storage_chunks = (1,) + storage_chunks[1:]  # one channel per chunk: only RGB(A) shares chunks
        same_file = self._path is not None and path.exists() and path.resolve() == self._path.resolve()
        with atomic_target(path) as (store, _tmp):
            write_image(store, source, info, codec, storage_chunks, levels, progress, empty=empty)
        if same_file:  # swap to the new file while no other thread is reading
            with self._lock.writing():
                mode = self._mode
                self.close()
                self._closed = False
                self._open_file(path, mode)
        return path

    # -- life cycle ----------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            broken = getattr(self._store, "broken", None)
            raise MzarrValueError(broken or "this image has been closed; open it again with Mzarr(path)")

    def flush(self) -> None:
        """Write pending metadata changes (nested edits inside attrs() values) to the file."""
        if self._kind != "memory" and self._mode == "r+" and not self._closed:
            if not self._attrs_unchanged():  # e.g. a nested edit inside an attribute's value
                self._write_attrs(self._info.attrs)

    def close(self) -> None:
        """Flush and release the file, after reads running in other threads have finished. Further use raises."""
        if self._closed:
            return
        with self._lock.writing():
            try:
                self.flush()
            finally:
                if self._store is not None:
                    self._store.close()
                self._closed = True

    def __enter__(self) -> "Mzarr":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
