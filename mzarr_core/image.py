"""``Mzarr``: an image in memory or in a .mzarr file, with NumPy-style reads and writes and a pyramid."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .associated import check_associated, read_associated, write_associated
from .attrs import LiveAttrs, check_json
from .axes import infer_axes, is_colour, storage_axes, storage_permutation
from .backends import Backend, MemoryBackend, open_backend
from .chunk_cache import CacheInfo, _check_bytes, get_cache_bytes, note_write
from .chunking import auto_chunks
from .codecs import check_dtype, choose_codec, codec_from_json, recompressing_codec
from .containers import atomic_target
from .errors import MzarrError, MzarrFormatError, MzarrReadOnlyError, MzarrValueError
from .indexing import prepare_write
from .level import Level, StorageArray, StorageView
from .locks import ReadWriteLock
from .ngff import ImageInfo, normalize_unit, stored_unit
from .pyramid import DOWNSAMPLE_METHODS
from .writer import Progress, write_image

if TYPE_CHECKING:
    from .annotations import Annotation
    from .labels import LabelImage

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
    values: tuple[Any, ...] = (spacing,) * n_spatial if np.isscalar(spacing) else tuple(spacing)
    if len(values) != n_spatial or not all(np.isfinite(v) and float(v) > 0 for v in values):
        raise MzarrValueError(f"spacing must be {n_spatial} positive numbers (one per spatial axis), got {spacing!r}")
    return tuple(float(v) for v in values)


class Mzarr:
    """A 2D/3D image (optional channel axis) with a multi-resolution pyramid.

    ``Mzarr(array)`` keeps pixels in memory (or reads an array-like lazily) until :meth:`save`;
    ``Mzarr(path, mode)`` opens a .mzarr file, an OME-Zarr folder or a legacy Mzarr ZIP lazily.

    ``cache_bytes`` bounds this file's cache of decoded chunks (None: the global bound of
    :func:`mzarr_core.set_cache_bytes`, 256 MiB by default; 0: no cache); see :attr:`cache_bytes`.
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
        cache_bytes: int | None = None,
        **save_options: Any,
    ):
        if mode not in MODES:
            raise MzarrValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        self._backend: Backend
        self._mode = mode
        self._closed = False
        self._lock = ReadWriteLock()  # reads from many threads at once; a write excludes them until committed
        self._attrs_saved = ""  # JSON of the attrs as last read/written: close() rewrites them only if changed
        self._cache_bytes = None if cache_bytes is None else _check_bytes(cache_bytes)
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if mode in ("w", "w-") or (mode == "a" and not path.exists() and shape is not None):
                self._create_file(path, mode, shape, dtype, axes, channel_axis, spacing, unit, is_label, attrs, save_options)
            self._open_file(path, mode)
        else:
            self._init_array(source, axes, channel_axis, spacing, unit, is_label, attrs)

    # -- construction --------------------------------------------------------------------------------------------
    def _init_array(self, source: Any, axes, channel_axis, spacing, unit, is_label, attrs) -> None:
        unit = normalize_unit(unit)
        if isinstance(source, Mzarr):  # a copy keeps what the original knows about itself
            axes = axes or (source.axes if channel_axis is None else None)
            spacing = spacing if spacing is not None else source.spacing
            unit = unit or stored_unit(source.unit)
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
        info = ImageInfo(
            axes=user_axes,
            spacing=spacing,
            unit=unit or ("micrometer" if spacing else None),
            is_label=bool(is_label),
            downsample="mode" if is_label else "mean",
            attrs=check_json(dict(attrs or {}), "attributes"),
        )
        self._backend = MemoryBackend(source, info, storage_permutation(user_axes))

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
        self._backend = open_backend(path, writable, self._lock)
        cache = getattr(self._backend, "cache", None)
        if cache is not None:
            cache.max_bytes = self._cache_bytes
        self._attrs_saved = json.dumps(self._info.attrs, sort_keys=True)
        self._mode = "r+" if writable else "r"

    @property
    def _info(self) -> ImageInfo:
        return self._backend.info

    @property
    def _store(self) -> Any:
        """The Zarr store of a file (None in memory)."""
        return self._backend.store

    # -- properties ----------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._backend.level0.shape

    @property
    def dtype(self) -> np.dtype:
        return self._backend.level0.dtype

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
    def checksums(self) -> bool:
        """Whether every chunk of this file carries a crc32c checksum, checked on every read (format 5): a chunk
        changed on disk is then an error naming it, never silently different pixels."""
        storage_codec = codec_from_json(self._info.codec)
        return storage_codec is not None and storage_codec.checksum

    @property
    def chunks(self) -> tuple[int, ...]:
        return self._backend.level0.chunks

    @property
    def path(self) -> Path | None:
        return self._backend.path

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def writable(self) -> bool:
        return self._backend.writable

    @property
    def levels(self) -> list[Level]:
        """Every pyramid level, full resolution first (computed in memory on first use for in-memory images)."""
        return self._backend.levels

    @property
    def cache_bytes(self) -> int:
        """The bound in bytes of this file's cache of decoded chunks, shared by all its levels (0: no caching).

        Region reads, :meth:`Level.read_chunk` and z-planes keep the chunks they decode there, least recently used
        dropped first; writes (and, for a .mzarr file, other processes' commits) empty it. Set it to change this
        file's bound (0 also empties the cache), or to None to follow :func:`mzarr_core.set_cache_bytes` again.
        In-memory images have no cache.
        """
        cache = getattr(self._backend, "cache", None)
        if cache is not None:
            return cache.max_bytes
        return get_cache_bytes() if self._cache_bytes is None else self._cache_bytes

    @cache_bytes.setter
    def cache_bytes(self, n: int | None) -> None:
        self._cache_bytes = None if n is None else _check_bytes(n)
        cache = getattr(self._backend, "cache", None)
        if cache is not None:
            cache.max_bytes = self._cache_bytes

    def cache_info(self) -> CacheInfo:
        """How much of this file's decoded-chunk cache is in use (bytes, entries, hits and misses)."""
        cache = getattr(self._backend, "cache", None)
        return cache.info() if cache is not None else CacheInfo(self.cache_bytes, 0, 0, 0, 0)

    def clear_cache(self) -> None:
        """Drop every decoded chunk this file keeps (the next reads decode again)."""
        cache = getattr(self._backend, "cache", None)
        if cache is not None:
            cache.clear()

    def level(self, index: int) -> Level:
        """Pyramid level ``index`` (0 = full resolution; negative counts from the coarsest)."""
        levels = self.levels
        if not -len(levels) <= index < len(levels):
            raise IndexError(f"level {index} does not exist: this image has {len(levels)} levels (0..{len(levels) - 1})")
        return levels[index]

    def to_dask(self, level: int = 0) -> Any:
        """Pyramid level ``level`` as a lazy ``dask.array.Array`` chunked like the file: :meth:`Level.to_dask`."""
        self._check_open()
        return self.level(level).to_dask()

    def attrs(self) -> LiveAttrs:
        """The user metadata as a live mapping: changes are saved at once in mode 'r+' (JSON values only).

        For a file, each call re-reads the attributes other sessions may have saved meanwhile.
        """
        persistent = self._backend.persistent
        if persistent and not self._closed and self._attrs_unchanged():
            fresh = self._backend.load_attrs()
            self._info.attrs.clear()
            self._info.attrs.update(fresh)
            self._attrs_saved = json.dumps(fresh, sort_keys=True)
        read_only = persistent and self._mode != "r+"
        return LiveAttrs(
            self._info.attrs, self._write_attrs if persistent else None, read_only, self._read_only_reason()
        )

    def _attrs_unchanged(self) -> bool:
        """True if this session holds no attribute change that is not in the file yet (e.g. a nested edit)."""
        return json.dumps(self._info.attrs, sort_keys=True) == self._attrs_saved

    def _write_attrs(self, data: dict[str, Any]) -> None:
        """Save the keys this session set or deleted onto the attributes in the file (others' keys survive)."""
        self._check_open()
        check_json(data, "attributes")  # nested edits made through the live mapping are checked here
        base = json.loads(self._attrs_saved or "{}")
        with self._lock.writing(), self._transaction():
            merged = self._backend.load_attrs()
            for key in set(base) | set(data):
                if key not in data:
                    merged.pop(key, None)
                elif key not in base or base[key] != data[key]:
                    merged[key] = data[key]
            self._backend.store_attrs(merged)
        data.clear()
        data.update(merged)
        self._attrs_saved = json.dumps(merged, sort_keys=True)

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "in memory"
        count = self._backend.stored_level_count
        return f"<Mzarr {where} shape={self.shape} dtype={self.dtype} axes={self.axes!r} levels={'?' if count is None else count}>"

    def __len__(self) -> int:
        return self.shape[0]

    # -- pixels --------------------------------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> np.ndarray:
        with self._lock.reading():  # taken before picking the level: a save over this file swaps the levels
            self._check_open()
            return self._backend.level0[key]

    def numpy(self) -> np.ndarray:
        """The whole full-resolution image as a NumPy array."""
        return self[...]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.write_regions([(key, value)])

    def write_regions(self, regions: Iterable[tuple[Any, Any]]) -> None:
        """``self[key] = value`` for every ``(key, value)`` of ``regions``, in order, in one transaction (all or
        none), the pyramid updated once at the end: each coarser-level chunk the regions touch is recomputed once,
        which makes many scattered edits (a painting session's strokes) much faster than one assignment each."""
        self._check_open()
        if not self.writable:
            raise MzarrReadOnlyError(self._read_only_reason())
        items = [(key, *prepare_write(key, value, self.shape, self.dtype)) for key, value in regions]
        with self._lock.writing(), self._transaction():
            try:
                self._backend.write_regions(items)
            except BaseException:
                self._close_if_broken()
                raise

    def _read_only_reason(self) -> str:
        return self._backend.read_only_reason()

    def _close_if_broken(self) -> None:
        """After a failed edit the file keeps its old state; if even the rollback failed, the store dropped its
        connection, and this object is closed rather than left half-usable."""
        if self._backend.broken:
            self._closed = True
            with contextlib.suppress(Exception):
                self._backend.close()

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
            if self._backend.persistent:  # metadata saved inside the block was rolled back with it
                self._info.attrs.clear()
                self._info.attrs.update(json.loads(attrs_before))
                self._attrs_saved = saved_before
                self._close_if_broken()
                self._forget_rolled_back_labels()
            raise

    @contextlib.contextmanager
    def snapshot(self) -> Iterator["Mzarr"]:
        """Every read inside the block sees one committed state of the file (a long check over many reads)."""
        self._check_open()
        with self._lock.reading(), self._transaction(write=False):
            yield self

    def _transaction(self, write: bool = True) -> contextlib.AbstractContextManager[None]:
        """A write transaction (or a read snapshot) where the storage has them (the single-file container)."""
        return self._backend.transaction(write)

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
        bricks: str | None = None,
        progress: Progress | None = None,
        jpeg_tiles: Any = None,
        associated: dict[str, Any] | None = None,
        scheduler: Any = None,
        workers: int | None = None,
        dask_stats: Any = None,
        checksums: bool = True,
    ) -> Path:
        """Write full resolution + pyramid + metadata to ``path`` (``.mzarr`` file, or ``*.zarr`` OME-Zarr folder).

        The write goes to a temporary name and replaces ``path`` only when complete, so a failure, a kill or a
        cancellation (raise :class:`SaveCancelled` from ``progress(done, total)``) leaves any previous file intact.
        ``bricks`` overrides how lossless volumes store a brick: "blosc" (default for 16-bit samples, format 6)
        Blosc-compressed bytes, whole bricks ~5x faster to decode than JPEG XL for 1-7 % more bytes; JPEG XL "slabs"
        (default for 8-bit samples, format 4) decode a z-plane from a quarter of each brick, "strip" (format 2)
        reads whole bricks 13-19 % faster, "frames" (format 1) decodes one z-plane alone and opens in Mzarr 0.1. ``checksums`` (default True, format 5): every
        chunk carries a crc32c that every read checks, so a chunk changed on disk is an error naming it, never
        silently different pixels; False writes the layout's own format for Mzarr versions before format 5.

        ``jpeg_tiles(chunk_index) -> bytes | None`` (uint8 2-D images; ``chunks`` = the JPEG tile shape): level 0's
        chunks are these JPEG streams transcoded to JPEG XL without loss, read back as exactly the pixels libjpeg
        decodes from them (format 3, docs/FORMAT.md "Whole-slide images"); ``chunk_index`` is in user axis order
        (``(row, column, 0)`` for ``yxc``); None (or a JPEG libjxl cannot transcode) encodes that chunk from the
        pixels. Coarser levels and later edits are lossy at ``distance``. ``associated``: named small pictures
        stored beside the pyramid (:meth:`associated_images`; ``(array, distance)`` stores one lossy); by default a
        file's own are kept.

        With dask (an image made from a dask array, or ``scheduler``/``workers`` given) the chunks and the pyramid
        are computed and encoded by dask tasks and inserted here as they arrive, bit for bit the plain save's
        (:mod:`mzarr_core.dask_write`, docs/API.md "Writing with dask"). ``scheduler``: "threads", "processes", a
        dask.distributed scheduler address or ``Client``, or a ``concurrent.futures`` executor (default: the
        active distributed client, else threads); ``workers``: how many tasks run at once (at most twice as many
        are in flight); ``dask_stats``: a :class:`~mzarr_core.dask_write.DaskSaveStats` to fill.
        """
        return self._save(
            Path(path), lossless=lossless, distance=distance, quality=quality, effort=effort, chunks=chunks,
            levels=levels, downsample=downsample, channel_axis=channel_axis, axes=axes, spacing=spacing, unit=unit,
            is_label=is_label, attrs=attrs, bricks=bricks, progress=progress, jpeg_tiles=jpeg_tiles,
            associated=associated, scheduler=scheduler, workers=workers, dask_stats=dask_stats, checksums=checksums,
        )

    def _save(
        self, path: Path, *, empty: bool = False, lossless: bool = True, distance=None, quality=None, effort=None,
        chunks=None, levels=None, downsample=None, channel_axis=None, axes=None, spacing=None, unit=None,
        is_label=None, attrs=None, bricks=None, progress=None, jpeg_tiles=None, associated=None, scheduler=None,
        workers=None, dask_stats=None, checksums=True, salvage=None, codec=None,
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
            unit=normalize_unit(unit) or stored_unit(self.unit) or ("micrometer" if new_spacing else None),
            is_label=label,
            downsample=method,
            attrs=check_json(dict(attrs if attrs is not None else self._info.attrs), "attributes"),
        )
        if codec is None:
            codec = choose_codec(self.dtype, lossless=lossless, distance=distance, quality=quality, effort=effort,
                                 is_label=label, volume="z" in user_axes, bricks=bricks, checksum=checksums)
        if jpeg_tiles is not None:
            codec = recompressing_codec(self.dtype, user_axes, chunks, distance, effort, label, checksum=checksums)
        extras = check_associated(self._associated_to_keep(salvage) if associated is None else associated)
        level0 = self._backend.level0
        salvaging = None
        if salvage is not None:  # damaged chunks read as the best that is left (mzarr_core.salvage)
            from .salvage import SalvagingLevel

            salvaging = SalvagingLevel(self, "image", salvage, lossless=codec.lossless)
            source: StorageArray = StorageView(salvaging, storage_permutation(user_axes))
        elif user_axes == self.axes:
            source = level0.storage
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
        same_file = self.path is not None and path.exists() and path.resolve() == self.path.resolve()
        encoded: Callable[[tuple[int, ...]], bytes | None] | None = None
        if salvaging is not None and not codec.lossless:  # lossy chunks copied, never coded again (quality kept)
            salvage.copied = True
            encoded = salvaging.stored_payload
        if jpeg_tiles is not None:
            def transcoded(coords: tuple[int, ...]) -> bytes | None:  # storage order -> the caller's chunk index
                jpeg = jpeg_tiles(tuple(int(coords[p]) for p in np.argsort(perm)))
                try:
                    return None if jpeg is None else cast(Any, codec).transcode(jpeg)  # JpegxlJpeg
                except (ValueError, RuntimeError):  # libjxl refuses this JPEG (12-bit, arithmetic...): from pixels
                    return None

            encoded = transcoded
        build = self._dask_build(perm, info, codec, scheduler, workers, dask_stats) if not empty else None
        if build is not None and jpeg_tiles is not None:
            build.close()
            raise MzarrValueError("a dask save cannot keep JPEG tiles (jpeg_tiles): save without scheduler/workers")
        kept_labels = self._labels_to_keep(user_axes)
        try:
            with atomic_target(path) as (store, _tmp):
                arrays = write_image(store, source, info, codec, storage_chunks, levels, progress, empty=empty,
                                     encoded_chunks=encoded, build=build)
                write_associated(store, extras, codec.checksum)
                self._copy_labels(store, kept_labels, info, st, storage_chunks, len(arrays), codec.checksum, salvage)
                self._copy_annotations(store)
        finally:
            if build is not None:
                build.close()  # the dask workers it started end even when the save failed before the build
        note_write(os.path.realpath(path))  # other open images of this path drop their cached chunks
        if same_file:  # swap to the new file while no other thread is reading
            with self._lock.writing():
                mode = self._mode
                self.close()
                self._closed = False
                self._open_file(path, mode)
                for obj in list(self._label_objects()):
                    obj._gone = f"{path} was saved again: open its label image with m.label({obj.name!r})"
                    self._label_objects().discard(obj)
        return path

    def _dask_build(self, perm: tuple[int, ...], info: ImageInfo, codec: Any, scheduler: Any, workers: int | None,
                    stats: Any) -> Any:
        """The dask pyramid build of this image's save (:mod:`.dask_write`), or None for the plain threaded one:
        an image made from a dask array or a :class:`~.dask_write.PathSource`, or ``scheduler``/``workers`` given."""
        from .dask_write import PathSource, dask_builder, is_dask_array

        source = getattr(self._backend, "source", None)  # in memory: the array given, in the user's order
        if not (is_dask_array(source) or isinstance(source, PathSource)):
            if scheduler is None and workers is None:
                return None
            source = self.to_dask(0) if self.path is not None else source
        return dask_builder(source, perm, info, codec, scheduler=scheduler, workers=workers, stats=stats)

    def _associated_to_keep(self, salvage: Any) -> dict[str, Any]:
        """The file's associated images, carried into a save; a salvage leaves out damaged ones (they are small
        pictures beside the image, e.g. a slide's macro photo) instead of failing."""
        try:
            return self.associated_images()
        except MzarrFormatError:
            if salvage is None:
                raise
            return {}

    def salvage(self, path: str | os.PathLike, *, progress: Progress | None = None, checksums: bool = True,
                report: Any = None) -> Any:
        """Write what still reads of this (damaged) file to a NEW file ``path``: every chunk that decodes bit for bit,
        each damaged chunk of level 0 from its z-planes that still decode, else from the finest coarser level that
        does (enlarged), else the fill value; label images alike. Returns a
        :class:`~mzarr_core.salvage.SalvageReport` listing each damaged chunk and how it was filled (also recorded in
        the new file's attributes under ``"salvaged"``). This file is never written (``path`` may not be it).
        A file that no longer opens (cut short, a damaged index): :func:`mzarr_core.salvage.salvage_file`."""
        from .salvage import SalvageReport, damaged_chunks, salvaged_attrs

        from .convert import check_convert_target

        self._check_open()
        target = Path(path)
        if self.path is not None:
            check_convert_target(self.path, target)  # a new .mzarr / OME-Zarr, never over (or inside) this one
        if target.exists():
            raise MzarrValueError(f"{target} exists: salvage writes a new file and never replaces one; give another name")
        report = report if report is not None else SalvageReport(str(target), source=str(self.path))
        storage_codec = codec_from_json(self.codec)  # the file's own codec (lossy distance, slide JPEG tiles, bricks)
        codec = None if storage_codec is None else dataclasses.replace(storage_codec, checksum=checksums)
        report.rebuilt = damaged_chunks(self.levels, "image") + [
            line for lab in self._labels_to_keep(self.axes) for line in damaged_chunks(lab.levels, f"label image {lab.name!r}")]
        self._save(target, chunks=self.chunks, levels=len(self.levels), downsample=self.downsample_method,
                   progress=progress, checksums=checksums, salvage=report, codec=codec)
        if report.chunks or report.rebuilt or report.rows_lost:
            with Mzarr(target, "r+") as out:
                out.attrs().update(salvaged=salvaged_attrs(report))
        return report

    def _labels_to_keep(self, user_axes: str) -> list["LabelImage"]:
        """The label images a save carries over: all of them, unless the save changes the image's axes (then
        their layout would no longer match: they are left out)."""
        if self._label_host() is None or user_axes != self.axes:
            return []
        return [self.label(name) for name in self.labels()]

    def _copy_labels(self, store: Any, labels: list["LabelImage"], info: ImageInfo, st: str,
                     storage_chunks: tuple[int, ...], level_count: int, checksum: bool, salvage: Any = None) -> None:
        """Write ``labels`` into the image being saved to ``store``, each with its pyramid rebuilt by the mode rule
        at the new image's level count, and its colours and properties."""
        from .labels import GROUP, image_label_block, labels_index_doc, put_json, write_label_image

        if not labels:
            return
        chunks = tuple(c for a, c in zip(st, storage_chunks) if a != "c")
        for lab in labels:
            lab_info = ImageInfo(axes=info.spatial_axes, spacing=info.spacing, unit=info.unit, is_label=True,
                                 downsample="mode", name=lab.name)
            block = image_label_block(lab.colors, lab.properties)
            source: Any = lab.levels[0].storage
            if salvage is not None:
                from .salvage import SalvagingLevel

                source = SalvagingLevel(lab, f"label image {lab.name!r}", salvage)  # spatial axes: storage order
            write_label_image(store, lab.name, source, lab_info, chunks, level_count, block, checksum=checksum)
        put_json(store, f"{GROUP}/zarr.json", labels_index_doc([lab.name for lab in labels]))

    def _copy_annotations(self, store: Any) -> None:
        """Write this image's annotations into the image being saved to ``store`` (they keep their coordinates)."""
        from .annotations import KEY, document
        from .labels import put_json

        try:
            items = self.annotations()
        except MzarrFormatError:
            return  # damaged annotations are not carried into a new file (the image is)
        if items:
            put_json(store, KEY, document(items))

    def associated_images(self) -> dict[str, np.ndarray]:
        """The named small pictures stored beside the pyramid (a slide's ``thumbnail``, ``macro``, ``label``...;
        docs/FORMAT.md "Whole-slide images"), decoded; {} if there are none or the image is in memory."""
        self._check_open()
        if self._store is None:
            return {}
        with self._lock.reading(), self._transaction(write=False):
            return read_associated(self._store, str(self.path))

    # -- label images (docs/FORMAT.md "Label images") ------------------------------------------------------------
    def _child_group_host(self, doing: str | None, written_in: str) -> Any:
        """The stored backend (a .mzarr file or a Zarr v3 folder) that holds child groups such as label images and
        annotations, or None for other storage; writing (``doing``) into a Zarr v2 folder is refused, naming what
        ``written_in`` needs."""
        from .backends import StoredBackend

        backend = self._backend
        if not (isinstance(backend, StoredBackend) and backend.kind in ("sqlite", "directory")):
            return None
        if backend.kind == "directory" and doing is not None and not (backend.path / "zarr.json").is_file():
            raise MzarrValueError(
                f"cannot {doing}: {backend.path} is a Zarr v2 (OME-NGFF 0.4) folder; {written_in}: convert it first, "
                f"e.g. 'mzarr convert {backend.path} new.ome.zarr'"
            )
        return backend

    def _label_host(self, doing: str | None = None) -> Any:
        """The stored backend that can hold label images (None, or an MzarrValueError saying why, if it cannot)."""
        host = self._child_group_host(doing, "label images are written in Zarr v3 (NGFF 0.5)")
        if host is not None:
            return host
        backend = self._backend
        if doing is None:
            return None
        where = "in memory: save it first" if backend.kind == "memory" else "an Mzarr 0.0.x ZIP: convert it first"
        raise MzarrValueError(f"cannot {doing}: label images live inside a .mzarr file or an OME-Zarr folder, and this image is {where}")

    def _label_names(self, host: Any) -> list[str]:
        from .labels import GROUP, parse_labels_index
        from .metadata_check import Documents

        docs = Documents(host.store, host.kind, host.path)
        key = f"{GROUP}/zarr.json"
        doc = docs.load(key)
        return [] if doc is None else parse_labels_index(doc, docs.where, key)

    def labels(self) -> list[str]:
        """The names of this image's label images (NGFF ``labels``), in the order stored; [] if none."""
        self._check_open()
        host = self._label_host()
        if host is None:
            return []
        with self._lock.reading(), self._transaction(write=False):
            return self._label_names(host)

    def label(self, name: str) -> "LabelImage":
        """The label image ``name``: levels, NumPy-style reads and writes (every level updated), colours, properties."""
        from .labels import LabelImage, check_label_levels, check_label_name, prefix_of

        self._check_open()
        host = self._label_host("open a label image")
        check_label_name(name)
        with self._lock.reading(), self._transaction(write=False):
            names = self._label_names(host)
            if name not in names:
                raise MzarrValueError(
                    f"{self.path} has no label image {name!r}; it has {', '.join(map(repr, names)) or 'none'}"
                )
            child = host.open_child(prefix_of(name))
        check_label_levels(child, self.axes, self.shape, str(self.path))
        child.info.downsample = "mode"  # edits keep labels (another tool's label image may not say so)
        out = LabelImage(self, name, child)
        self._label_objects().add(out)
        return out

    def _label_objects(self) -> "weakref.WeakSet[LabelImage]":
        """The LabelImage objects handed out (weakly held), marked unusable when their label image is renamed or
        deleted or the file is saved over."""
        if not hasattr(self, "_open_labels"):
            self._open_labels: weakref.WeakSet = weakref.WeakSet()
        return self._open_labels

    def create_labels(
        self, name: str, data: Any = None, *, dtype: Any = "uint16", colors: dict | None = None,
        properties: dict | None = None,
    ) -> "LabelImage":
        """Add the label image ``name``: ``data`` (an array of the image's spatial shape, integer or bool), or all
        zeros of ``dtype``. Its pyramid (mode rule, the image's factors) is written in one transaction with the
        list of label images. ``colors``: {value: (r, g, b[, a])}; ``properties``: {value: {key: JSON value}}."""
        from .labels import (
            GROUP, MAX_LABEL_IMAGES, check_label_dtype, check_label_name, image_label_block, labels_index_doc,
            write_label_image,
        )

        self._check_open()
        host = self._label_host("create a label image")
        if not self.writable:
            raise MzarrReadOnlyError(self._read_only_reason())
        check_label_name(name)
        spatial = self.spatial_axes
        shape = tuple(n for a, n in zip(self.axes, self.shape) if a != "c")
        if data is not None:
            source = data
            if not (hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__")):
                source = np.asarray(source)
            if tuple(int(n) for n in source.shape) != shape:
                raise MzarrValueError(
                    f"label image {name!r} must have the image's spatial shape {shape} (axes {spatial!r}, no channel "
                    f"axis), got {tuple(source.shape)}: a label is one value per pixel of the image"
                )
            dt = check_label_dtype(source.dtype)
            if isinstance(source, np.ndarray) and source.dtype != dt:
                source = source.astype(dt)
        else:
            dt = check_label_dtype(dtype)
            source = _Zeros(shape, dt)
        block = image_label_block(colors, properties)
        info = ImageInfo(axes=spatial, spacing=self.spacing, unit=self.unit, is_label=True, downsample="mode", name=name)
        chunks = tuple(c for a, c in zip(self.axes, self.chunks) if a != "c")
        levels = self._backend.stored_level_count
        with self._lock.writing(), self._transaction():
            try:
                names = self._label_names(host)
                if name in names:
                    raise MzarrValueError(f"{self.path} already has a label image {name!r}; delete or rename it first")
                if len(names) >= MAX_LABEL_IMAGES:
                    raise MzarrValueError(f"{self.path} already has {len(names)} label images, the most a file holds")
                write_label_image(host.store, name, source, info, chunks, levels, block, empty=data is None,
                                  checksum=self.checksums)
                host.put_document(f"{GROUP}/zarr.json", labels_index_doc(names + [name]))
            except BaseException:
                self._close_if_broken()
                raise
        return self.label(name)

    def rename_labels(self, old: str, new: str) -> None:
        """Rename the label image ``old`` to ``new`` (its chunks are not rewritten)."""
        from .labels import GROUP, check_label_name, labels_index_doc, prefix_of
        from .metadata_check import Documents

        self._check_open()
        host = self._label_host("rename a label image")
        if not self.writable:
            raise MzarrReadOnlyError(self._read_only_reason())
        check_label_name(old)
        check_label_name(new)
        with self._lock.writing(), self._transaction():
            try:
                names = self._label_names(host)
                if old not in names:
                    raise MzarrValueError(f"{self.path} has no label image {old!r}; it has {', '.join(map(repr, names)) or 'none'}")
                if new in names:
                    raise MzarrValueError(f"{self.path} already has a label image {new!r}; delete it or pick another name")
                if old == new:
                    return
                host.delete_prefix(prefix_of(new))  # leftovers of an unlisted group of that name
                host.move_prefix(prefix_of(old), prefix_of(new))
                key = f"{prefix_of(new)}zarr.json"
                doc = Documents(host.store, host.kind, host.path).load(key)
                if doc is not None and isinstance(doc.get("attributes", {}).get("ome"), dict):
                    for ms in doc["attributes"]["ome"].get("multiscales") or []:
                        if isinstance(ms, dict):
                            ms["name"] = new
                    host.put_document(key, doc)
                host.put_document(f"{GROUP}/zarr.json", labels_index_doc([new if n == old else n for n in names]))
            except BaseException:
                self._close_if_broken()
                raise
        self._forget_labels(old, f"the label image {old!r} was renamed to {new!r}: open it with m.label({new!r})")

    def delete_labels(self, name: str) -> None:
        """Remove the label image ``name`` and all its levels."""
        from .labels import GROUP, check_label_name, labels_index_doc, prefix_of

        self._check_open()
        host = self._label_host("delete a label image")
        if not self.writable:
            raise MzarrReadOnlyError(self._read_only_reason())
        check_label_name(name)
        with self._lock.writing(), self._transaction():
            try:
                names = self._label_names(host)
                if name not in names:
                    raise MzarrValueError(f"{self.path} has no label image {name!r}; it has {', '.join(map(repr, names)) or 'none'}")
                host.delete_prefix(prefix_of(name))
                rest = [n for n in names if n != name]
                if rest:
                    host.put_document(f"{GROUP}/zarr.json", labels_index_doc(rest))
                else:
                    host.delete_prefix(f"{GROUP}/")
            except BaseException:
                self._close_if_broken()
                raise
        self._forget_labels(name, f"the label image {name!r} was deleted")

    def _forget_rolled_back_labels(self) -> None:
        """After a rolled-back block: label image objects of label images created in it no longer exist."""
        if self._closed or not getattr(self, "_open_labels", None):
            return
        try:
            names = set(self.labels())
        except MzarrError:
            names = set()
        for obj in list(self._label_objects()):
            if obj.name not in names:
                self._forget_labels(obj.name, f"the label image {obj.name!r} does not exist (its creation was rolled back)")

    def _forget_labels(self, name: str, reason: str) -> None:
        for obj in list(self._label_objects()):
            if obj.name == name:
                obj._gone = reason
                self._label_objects().discard(obj)

    # -- annotations (docs/FORMAT.md "Annotations") -------------------------------------------------------------
    def _annotation_host(self, doing: str | None = None) -> Any:
        """The stored backend holding annotations (None in memory; an MzarrValueError if this storage cannot)."""
        host = self._child_group_host(doing, "annotations are written in Zarr v3")
        if host is not None:
            return host
        if self._backend.kind == "memory":
            return None
        raise MzarrValueError(f"cannot {doing or 'read annotations'}: {self.path} is an Mzarr 0.0.x ZIP: convert it first")

    def _spatial_shape(self) -> tuple[int, ...]:
        return tuple(n for a, n in zip(self.axes, self.shape) if a != "c")

    def annotations(self) -> list["Annotation"]:
        """The annotations stored with this image (points, lines, rectangles, ellipses, polygons), in order; []
        if none. A damaged annotations document is an MzarrFormatError (the image itself still reads)."""
        from .annotations import KEY, parse_document
        from .metadata_check import Documents

        self._check_open()
        try:
            host = self._annotation_host()
        except MzarrValueError:
            return []  # a legacy ZIP has none
        if host is None:
            return list(getattr(self, "_memory_annotations", []))
        with self._lock.reading(), self._transaction(write=False):
            doc = Documents(host.store, host.kind, host.path).load(KEY)
        return [] if doc is None else parse_document(doc, str(self.path))

    def set_annotations(self, items: list["Annotation"]) -> None:
        """Replace all annotations with ``items`` in one transaction (or in the caller's ``with m.transaction():``);
        in memory they are kept until :meth:`save`. Each is checked against the image (a plane exactly for volumes)."""
        from .annotations import KEY, NODE, check_annotations, document

        self._check_open()
        checked = check_annotations(list(items) if isinstance(items, (list, tuple)) else items,
                                    self.spatial_axes, self._spatial_shape())
        host = self._annotation_host("store annotations")
        if host is None:
            self._memory_annotations = checked
            return
        if not self.writable:
            raise MzarrReadOnlyError(self._read_only_reason())
        doc = document(checked)
        from .attrs import _check_size

        _check_size(json.dumps(doc).encode(), "annotations")
        with self._lock.writing(), self._transaction():
            try:
                if checked:
                    host.put_document(KEY, doc)
                else:
                    host.delete_prefix(f"{NODE}/")
            except BaseException:
                self._close_if_broken()
                raise

    # -- life cycle ----------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise MzarrValueError(self._backend.broken or "this image has been closed; open it again with Mzarr(path)")

    def flush(self) -> None:
        """Write pending metadata changes (nested edits inside attrs() values) to the file."""
        if self._backend.persistent and self._mode == "r+" and not self._closed:
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
                self._backend.close()
                self._closed = True

    def __enter__(self) -> "Mzarr":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
