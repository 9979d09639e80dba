"""Region reads at the codec's limit: the chunks a read touches are looked up in the file's decoded-chunk cache,
the others fetched (one SQLite query per batch, inside the read's snapshot) and decoded in parallel on every core,
each straight into its place in the output.

Where a level's codec pipeline is one Mzarr writes (:class:`ChunkCodec`: JPEG XL, possibly after a transpose of
colour chunks and the offset of signed integers or the uint8 of booleans; or bytes + zstd; or slab bricks: a
``sharding_indexed`` shard of JPEG XL inner chunks), the chunks are decoded here with the bounded decoders of
:mod:`mzarr_core.guards`. Anything else (a foreign OME-Zarr with blosc or other sharding, Zarr v2 legacy files) is
read through zarr as before. A chunk this strict decoder refuses is handed to zarr, so
results never differ from zarr's, and a chunk zarr cannot decode either is named in the
:class:`~mzarr_core.errors.CorruptChunkError` (or :class:`~mzarr_core.errors.ChunkTooLargeError`).

imagecodecs releases the GIL while it decodes, so the shared pool (:func:`decode_pool`, one thread per core)
decodes as many chunks at once as there are cores; a read touching a single chunk decodes it in the calling thread.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import imagecodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, TransposeCodec, ZstdCodec
from zarr.codecs.numcodecs import FixedScaleOffset
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.metadata.v3 import RegularChunkGridMetadata
from zarr.core.sync import sync

from .chunk_cache import ChunkCache, freeze
from .errors import ChunkChecksumError, CorruptChunkError, MzarrError, MzarrFormatError, MzarrStorageError
from .codecs import RecompressedJpegxl, SlabSharding, StorageCodec, StripJpegxl
from .frames import FILTER_TYPES, JPEGXL_TYPES, FrameDecoder, frame_decodable, undecodable
from .guards import (
    GuardedBlosc,
    GuardedZstd,
    _chunk_text,
    decode_blosc,
    decode_jpegxl,
    decode_jpegxl_chunk,
    decode_zstd,
    ends_with_crc32c,
    shard_index,
    strip_crc32c,
)

__all__ = ["CacheSession", "ChunkCodec", "ChunkReader", "SlabDecoder", "decode_pool", "decode_workers", "fetch_chunks"]

# -- the shared decoding pool ----------------------------------------------------------------------------------------
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_in_pool = threading.local()


def decode_workers() -> int:
    """Threads of the decoding pool: one per core."""
    return max(1, os.cpu_count() or 1)


def _mark_worker() -> None:
    _in_pool.active = True


def decode_pool() -> ThreadPoolExecutor:
    """The process-wide pool that decodes chunks (created on first use)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(decode_workers(), thread_name_prefix="mzarr-decode", initializer=_mark_worker)
    return _pool


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool there on first use."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _parallel() -> bool:
    """Whether to hand decodes to the pool (not from inside it: a pool thread waiting on the pool could starve it)."""
    return decode_workers() > 1 and not getattr(_in_pool, "active", False)


# -- fetching bytes --------------------------------------------------------------------------------------------------
_SQL_BATCH = 500  # keys per statement: far below SQLite's variable limit


def fetch_chunks(store: Any, keys: Sequence[str]) -> dict[str, Any]:
    """The stored bytes of ``keys`` (absent keys are missing from the result): one ``SELECT ... WHERE key IN``
    for a .mzarr file (inside the caller's read snapshot), concurrent gets through zarr for other stores."""
    if not keys:
        return {}
    get_many = getattr(store, "get_many_bytes_sync", None)  # the single-file store's capability
    if get_many is not None:
        found: dict[str, Any] = {}
        for i in range(0, len(keys), _SQL_BATCH):
            found.update(get_many(list(keys[i : i + _SQL_BATCH])))
        return found
    prototype = default_buffer_prototype()

    async def get_all() -> list[Any]:
        return await asyncio.gather(*(store.get(k, prototype) for k in keys))

    return {k: b.as_numpy_array() for k, b in zip(keys, sync(get_all())) if b is not None}


def _batches(jobs: list[Any]) -> Iterator[list[Any]]:
    """Small reads in one query; large ones in growing batches, so decoding starts while the rest is fetched."""
    if len(jobs) <= 8:
        yield jobs
        return
    i, size = 0, 2 * decode_workers()
    while i < len(jobs):
        yield jobs[i : i + size]
        i += size
        size = min(64, size * 2)


# -- known codec pipelines -------------------------------------------------------------------------------------------
def _spec(shape: tuple[int, ...], array: Any) -> ArraySpec:
    meta = array.metadata
    return ArraySpec(shape=shape, dtype=meta.data_type, fill_value=meta.fill_value,
                     config=array._async_array.config, prototype=default_buffer_prototype())


def _native(spec: ArraySpec) -> np.dtype:
    return np.dtype(spec.dtype.to_native_dtype())


def missing_codec_error(exc: ImportError) -> MzarrError:
    """The error for a chunk whose codec this installation cannot load (a trimmed bundle, a broken imagecodecs):
    the file is not damaged, the software is incomplete."""
    return MzarrError(f"this installation of Mzarr cannot decode the file's chunks: a codec module is missing ({exc}); "
                      "the file itself is not damaged. Reinstall Mzarr (pip install --force-reinstall mzarr "
                      "imagecodecs), or use a complete build")


class ChunkCodec:
    """Decodes whole chunks of one array whose codec pipeline is one Mzarr writes, to the chunk in storage order
    and the array's dtype (a full chunk, edge chunks included, as zarr stores them).

    Steps are undone in reverse order of the filters: ``("offset", xor)`` flips the sign bit (numcodecs'
    FixedScaleOffset with scale 1 and the dtype's minimum as offset, as Mzarr writes signed integers),
    ``("bool", None)`` is AsType uint8 -> bool, ``("transpose", inverse)`` undoes a TransposeCodec.

    Kind "slabs" (format 4): the chunk is a ``sharding_indexed`` shard (index at the end, bytes + crc32c) of inner
    chunks ``inner`` (in the filtered order ``order`` of the storage axes), each one JPEG XL stream; the index is
    validated and each inner chunk decodes into its own box, bounded by the inner chunk's shape.

    ``checksum`` (format 5): the chunk's bytes end with their crc32c, checked before decoding; ``inner_checksum``:
    each inner chunk of a shard ends with its own.
    """

    def __init__(self, kind: str, shape: tuple[int, ...], dtype: np.dtype, enc_shape: tuple[int, ...],
                 enc_dtype: np.dtype, steps: list[tuple[str, Any]], serializer: Any,
                 inner: tuple[int, ...] | None = None, order: tuple[int, ...] | None = None, enc_fill: Any = 0,
                 checksum: bool = False, inner_checksum: bool = False):
        self.checksum, self.inner_checksum = checksum, inner_checksum
        self.kind = kind  # "jpegxl", "jpeg" (JPEG XL chunks that may be recompressed JPEGs), "zstd", "blosc", "bytes", "slabs"
        self.shape, self.dtype = shape, dtype
        self.enc_shape, self.enc_dtype = enc_shape, enc_dtype
        self.steps = steps
        self.serializer = serializer
        self.nbytes = math.prod(enc_shape) * enc_dtype.itemsize
        self.what = _chunk_text(enc_shape, enc_dtype)
        self.inner = inner or enc_shape
        self.order = order or tuple(range(len(shape)))  # storage axis of each encoded axis
        self.grid = tuple(n // c for n, c in zip(enc_shape, self.inner))
        self.enc_fill = np.array(enc_fill).astype(enc_dtype)
        self.inner_what = _chunk_text(self.inner, enc_dtype)

    @classmethod
    def for_array(cls, array: Any) -> "ChunkCodec | None":
        """The decoder of ``array``'s chunks, or None where zarr must decode them (another pipeline or grid)."""
        if not isinstance(array, zarr.Array) or array.metadata.zarr_format != 3:
            return None
        meta = array.metadata
        if not isinstance(meta.chunk_grid, RegularChunkGridMetadata) or getattr(meta, "storage_transformers", None):
            return None
        try:
            dtype = np.dtype(array.dtype)
        except TypeError:
            return None
        if dtype.hasobject or dtype.itemsize == 0:
            return None
        codecs: list[Any] = list(meta.codecs)  # the exact classes are checked below
        spec = _spec(tuple(array.chunks), array)
        steps: list[tuple[str, Any]] = []
        while codecs and type(codecs[0]) in FILTER_TYPES:  # exact classes: a subclass may decode otherwise
            codec = codecs.pop(0)
            before = _native(spec)
            if isinstance(codec, TransposeCodec):
                steps.append(("transpose", tuple(int(i) for i in np.argsort(codec.order))))
            elif isinstance(codec, FixedScaleOffset):
                config: Any = codec.codec_config  # numcodecs' JSON configuration
                if before.kind != "i" or config.get("scale", 1) != 1:
                    return None
                stored = np.dtype(config.get("astype", before))
                if stored.kind != "u" or stored.itemsize != before.itemsize or np.dtype(config.get("dtype", before)) != before:
                    return None
                if config.get("offset") != int(np.iinfo(before).min):
                    return None
                steps.append(("offset", before))
            else:  # AsType
                config = codec.codec_config
                if before != np.dtype(bool) or np.dtype(config.get("encode_dtype")) != np.dtype("u1"):
                    return None
                steps.append(("bool", None))
            spec = codec.resolve_metadata(spec)
        enc_shape, enc_dtype = tuple(spec.shape), _native(spec)
        checksum = ends_with_crc32c(codecs)
        if checksum:
            codecs.pop()
        if len(codecs) == 1 and type(codecs[0]) in (ShardingCodec, SlabSharding):
            if not steps:  # a lone sharding codec: zarr addresses the inner chunks (another tool's layout)
                return None
            return cls._for_shards(codecs[0], tuple(array.chunks), dtype, enc_shape, enc_dtype, steps, spec, meta.codecs,
                                   checksum)
        if len(codecs) == 1 and type(codecs[0]) in JPEGXL_TYPES + (StripJpegxl, RecompressedJpegxl):
            serializer = codecs[0]
            if serializer.index is not None or enc_dtype not in (np.dtype("u1"), np.dtype("u2")):
                return None
            kind = "jpeg" if type(serializer) is RecompressedJpegxl else "jpegxl"
        elif codecs and type(codecs[0]) is BytesCodec and len(codecs) <= 2:
            serializer = codecs[0]
            endian = getattr(serializer.endian, "value", serializer.endian)
            if enc_dtype.itemsize > 1 and (endian != "little" or sys.byteorder != "little"):
                return None
            if len(codecs) == 2 and type(codecs[1]) not in (ZstdCodec, GuardedZstd, BloscCodec, GuardedBlosc):
                return None
            kind = "bytes" if len(codecs) == 1 else "blosc" if isinstance(codecs[1], BloscCodec) else "zstd"
        else:
            return None
        return cls(kind, tuple(array.chunks), dtype, enc_shape, enc_dtype, list(reversed(steps)), serializer,
                   checksum=checksum)

    @classmethod
    def _for_shards(cls, sharding: ShardingCodec, shape: tuple[int, ...], dtype: np.dtype, enc_shape: tuple[int, ...],
                    enc_dtype: np.dtype, steps: list[tuple[str, Any]], spec: ArraySpec,
                    codecs: Any, checksum: bool) -> "ChunkCodec | None":
        """The decoder of shards of JPEG XL inner chunks (slab bricks), or None for any other sharding."""
        inner_codecs, index_codecs = list(sharding.codecs), sharding.index_codecs
        inner_checksum = ends_with_crc32c(inner_codecs)
        if inner_checksum:
            inner_codecs.pop()
        if len(inner_codecs) != 1 or type(inner_codecs[0]) not in JPEGXL_TYPES + (StripJpegxl,):
            return None
        serializer: Any = inner_codecs[0]
        if serializer.index is not None or enc_dtype not in (np.dtype("u1"), np.dtype("u2")):
            return None
        if (sharding.index_location != "end" or len(index_codecs) != 2 or type(index_codecs[0]) is not BytesCodec
                or not isinstance(index_codecs[1], Crc32cCodec) or sys.byteorder != "little"
                or getattr(index_codecs[0].endian, "value", index_codecs[0].endian) != "little"):
            return None
        inner = tuple(int(c) for c in sharding.chunk_shape)
        if len(inner) != len(enc_shape) or any(c < 1 or n % c for n, c in zip(enc_shape, inner)):
            return None
        transposes = [c for c in codecs if isinstance(c, TransposeCodec)]
        order = tuple(int(i) for i in transposes[0].order) if len(transposes) == 1 else tuple(range(len(shape)))
        return cls("slabs", shape, dtype, enc_shape, enc_dtype, list(reversed(steps)), serializer, inner, order,
                   spec.fill_value, checksum, inner_checksum)

    def _undo_filters(self, chunk: np.ndarray) -> np.ndarray:
        """The filters' steps undone on a decoded (piece of a) chunk: storage order and the array's dtype."""
        for step, arg in self.steps:
            if step == "offset":
                if not chunk.flags.writeable:
                    chunk = chunk.copy()
                np.bitwise_xor(chunk, np.array(1 << (8 * arg.itemsize - 1), chunk.dtype), out=chunk)
                chunk = chunk.view(arg)
            elif step == "bool":
                chunk = chunk.astype(bool)
            else:
                chunk = chunk.transpose(arg)
        return chunk

    def _decode_inner(self, blob: np.ndarray, entry: tuple[int, int] | None, i: int, out: np.ndarray) -> None:
        """Inner chunk ``i`` of a shard (``entry``: its place in the shard, None: never written) decoded into
        ``out`` (the inner shape, encoded dtype)."""
        if entry is None:
            out[...] = self.enc_fill
            return
        data = blob[entry[0] : entry[0] + entry[1]]
        if self.inner_checksum:
            data = strip_crc32c(data, f"inner chunk {i} (a slab)")
        if out.flags.c_contiguous:
            try:  # one strip frame straight into place: imagecodecs refuses, before decoding, a stream whose basic
                # info (size, channels, frames, bit depth) does not match ``out``
                imagecodecs.jpegxl_decode(data, numthreads=self.serializer.numthreads,
                                          out=out.reshape(-1, self.inner[-1]))
                return
            except Exception:  # the bounded decoder decides: another layout (frames), or a bomb / damage it names
                pass
        decoded = decode_jpegxl(data, self.inner, self.enc_dtype, what=self.inner_what,
                                numthreads=self.serializer.numthreads)
        if decoded.dtype != self.enc_dtype or decoded.size != math.prod(self.inner):
            raise ValueError(f"inner chunk {i} decodes to {decoded.shape} {decoded.dtype}, not {self.inner} "
                             f"{self.enc_dtype}")
        out[...] = decoded.reshape(self.inner)

    def decode_slab(self, data: Any, axis: int, index: int) -> np.ndarray:
        """The inner chunks of a shard whose index along encoded ``axis`` is ``index`` (a z-slab of a slab
        brick), decoded into the chunk's storage order and dtype: the chunk with that axis cut to the slab."""
        blob = strip_crc32c(data) if self.checksum else np.frombuffer(data, np.uint8)
        entries = shard_index(blob, math.prod(self.grid))
        shape = tuple(c if a == axis else n for a, (n, c) in enumerate(zip(self.enc_shape, self.inner)))
        out = np.empty(shape, self.enc_dtype)
        for i, pos in enumerate(itertools.product(*(range(g) for g in self.grid))):
            if pos[axis] != index:
                continue
            box = tuple(slice(0, c) if a == axis else slice(p * c, (p + 1) * c) for a, (p, c) in enumerate(zip(pos, self.inner)))
            self._decode_inner(blob, entries[i], i, out[box])
        return self._undo_filters(out)

    def decode(self, data: Any) -> np.ndarray:
        """The chunk stored as ``data``; raises (ChunkTooLargeError for a declared bomb, ValueError...) where the
        bytes do not decode to exactly one chunk (ChunkChecksumError: they fail their checksum)."""
        if self.checksum:
            data = strip_crc32c(data)
        if self.kind == "slabs":
            blob = np.frombuffer(data, np.uint8)
            entries = shard_index(blob, math.prod(self.grid))
            chunk = np.empty(self.enc_shape, self.enc_dtype)
            for i, pos in enumerate(itertools.product(*(range(g) for g in self.grid))):
                box = tuple(slice(p * c, (p + 1) * c) for p, c in zip(pos, self.inner))
                self._decode_inner(blob, entries[i], i, chunk[box])
            return self._undo_filters(chunk)
        if self.kind in ("jpegxl", "jpeg"):
            s = self.serializer
            # "jpeg": a chunk holding a recompressed JPEG is rebuilt and decoded by libjpeg (the source's exact pixels)
            decode = decode_jpegxl_chunk if self.kind == "jpeg" else decode_jpegxl
            out = decode(data, self.enc_shape, self.enc_dtype, keeporientation=s.keeporientation,
                         numthreads=s.numthreads, what=self.what)
            if out.dtype != self.enc_dtype or out.size != math.prod(self.enc_shape):
                raise ValueError(f"JPEG XL chunk decodes to {out.shape} {out.dtype}, not {self.enc_shape} {self.enc_dtype}")
            chunk = out.reshape(self.enc_shape)
        else:
            if self.kind == "zstd":
                # GuardedZstd's bound: the chunk's size plus room for a compressing serializer's overhead
                raw: Any = decode_zstd(data, self.nbytes + self.nbytes // 16 + 4096, self.what)
            elif self.kind == "blosc":
                raw = decode_blosc(data, self.nbytes, self.what)
            else:
                raw = data
            if len(memoryview(raw).cast("B")) != self.nbytes:
                raise ValueError(f"chunk holds {len(memoryview(raw).cast('B'))} bytes, not {self.nbytes}")
            chunk = np.frombuffer(raw, self.enc_dtype).reshape(self.enc_shape)
        return self._undo_filters(chunk)


class SlabDecoder:
    """The plane reader of slab bricks (format 4): decodes the z-slab of a brick holding a plane, as
    ``(c, slab, y, x)`` or ``(slab, y, x)`` (storage order, the brick's channels, the array's dtype); the reader
    caches the slab, so the brick's next planes in it are free. Damaged or hostile shards are named."""

    def __init__(self, codec: ChunkCodec, names: tuple[str, ...], where: str):
        self.codec = codec
        self.chunks = dict(zip(names, codec.shape))
        self.has_channels = names[0] == "c"
        self.zaxis = names.index("z")  # the slab axis in storage order
        self.axis = codec.order.index(self.zaxis)  # ... and among the encoded (filtered) axes
        self.slab = codec.inner[self.axis]
        self.count = codec.grid[self.axis]  # slabs per brick
        self.where = where

    @classmethod
    def for_array(cls, array: Any, where: str) -> "SlabDecoder | None":
        """The decoder of ``array``'s slabs, or None if its shards are not whole-plane z-slabs of JPEG XL."""
        codec = ChunkCodec.for_array(array)
        names = tuple(array.metadata.dimension_names or ())
        if codec is None or codec.kind != "slabs" or "z" not in names or names[-2:] != ("y", "x"):
            return None
        axis = codec.order.index(names.index("z"))
        if any(g != 1 for a, g in enumerate(codec.grid) if a != axis):
            return None  # inner chunks that split y or x: planes are cut from whole bricks
        return cls(codec, names, where)

    def decode_slab(self, data: Any, index: int, key: str) -> np.ndarray:
        """Slab ``index`` of the brick stored as ``data`` under ``key`` (named in errors)."""
        try:
            return self.codec.decode_slab(data, self.axis, index)
        except MemoryError:
            raise
        except Exception as exc:
            raise undecodable(key, self.where, exc) from None


# -- reading ---------------------------------------------------------------------------------------------------------
class CacheSession:
    """What one read may do with its file's cache: look up, and keep what it decodes unless the cache was emptied
    since the read's snapshot began."""

    __slots__ = ("cache", "generation")

    def __init__(self, cache: ChunkCache):
        self.cache = cache
        self.generation = cache.generation

    def get(self, key: Any, count: bool = True) -> np.ndarray | None:
        return self.cache.get(key, count)

    def put(self, key: Any, value: np.ndarray) -> np.ndarray:
        return self.cache.put(key, value, self.generation)


class ReadOwner(Protocol):
    """What a :class:`ChunkReader` needs from the image it belongs to (a stored backend)."""

    def read_guard(self) -> AbstractContextManager[CacheSession | None]:
        """The read lock and one read snapshot; yields the cache session (None: no caching now)."""

    def peek_session(self) -> CacheSession | None:
        """The cache for a lookup that reads nothing (no lock, no snapshot); None: nothing to look up now."""

    def chunk_error(self, level_index: int, coords: tuple[int, ...], exc: Exception) -> CorruptChunkError:
        """The error naming chunk ``coords`` of level ``level_index``, which cannot be decoded."""

    def corrupt_chunk_error(self, level_index: int, arr: Any, key: tuple, exc: Exception) -> CorruptChunkError:
        """The error naming the first chunk of ``arr[key]`` that cannot be decoded."""


@dataclass
class _Job:
    coords: tuple[int, ...]
    key: str
    src: tuple
    dst: tuple


def _axis_pieces(item: Any, n: int, c: int) -> list[tuple[int, Any, Any]]:
    """(chunk index, index into the chunk, index into the output) for each chunk one axis of a key touches;
    ``item`` is an int (axis dropped) or a slice with step > 0."""
    if isinstance(item, (int, np.integer)):
        i = int(item)
        return [(i // c, i % c, None)]
    start, stop, step = item.indices(n)
    if stop <= start:
        return []
    last = start + (len(range(start, stop, step)) - 1) * step
    pieces = []
    for ci in range(start // c, last // c + 1):
        lo, hi = ci * c, min((ci + 1) * c, n)
        first = start if start >= lo else start + -(-(lo - start) // step) * step
        if first >= hi or first > last:
            continue
        end = min(hi - 1, last)
        count = (end - first) // step + 1
        k0 = (first - start) // step
        pieces.append((ci, slice(first - lo, first - lo + (count - 1) * step + 1, step), slice(k0, k0 + count)))
    return pieces


def _capture(work: Callable[[_Job, Any], None], job: _Job, data: Any) -> BaseException | None:
    try:
        work(job, data)
    except BaseException as exc:  # handed to the reading thread, which raises the first in chunk order
        return exc
    return None


class ChunkReader:
    """Reads one stored level (a zarr array in storage order): regions, whole chunks and z-planes of bricks,
    through its file's cache, with parallel decoding where :class:`ChunkCodec` knows the pipeline."""

    def __init__(self, array: Any, owner: ReadOwner, level_index: int, where: str,
                 storage_codec: StorageCodec | None = None):
        self.array = array
        self.owner = owner
        self.level_index = level_index
        self.shape = tuple(int(n) for n in array.shape)
        self.chunks = tuple(int(c) for c in array.chunks)
        self.dtype = np.dtype(array.dtype)
        self.codec = ChunkCodec.for_array(array)
        if storage_codec is not None:  # a file Mzarr wrote: its codec knows how planes are read
            self.frames = storage_codec.plane_reader(array, where)
        else:  # another tool's Zarr: one frame per z if its pipeline is stock JPEG XL
            self.frames = FrameDecoder(array, where) if frame_decodable(array) else None
        if self.codec is not None or self.frames is not None:
            self.store = array.store_path.store
            self.fill_value = array.metadata.fill_value
            self._prefix = f"{array.path}/" if array.path else ""
            self._encode = array.metadata.encode_chunk_key

    @property
    def fast(self) -> bool:
        """True if this level's chunks are decoded here (in parallel), not through zarr."""
        return self.codec is not None

    def chunk_key(self, coords: tuple[int, ...]) -> str:
        return self._prefix + self._encode(coords)

    def _cache_key(self, coords: tuple[int, ...], frame: int | None = None) -> tuple:
        return ("c", self.level_index, coords) if frame is None else ("p", self.level_index, coords, frame)

    def _slab_key(self, coords: tuple[int, ...], slab: int) -> tuple:
        return ("s", self.level_index, coords, slab)

    def _clip(self, coords: tuple[int, ...]) -> tuple[slice, ...]:
        """A chunk's extent inside the array, relative to the chunk's origin."""
        return tuple(slice(0, min(c, n - i * c)) for i, c, n in zip(coords, self.chunks, self.shape))

    def _check_coords(self, coords: tuple[int, ...]) -> None:
        grid = tuple(-(-n // c) for n, c in zip(self.shape, self.chunks))
        if len(coords) != len(grid) or not all(0 <= i < g for i, g in zip(coords, grid)):
            raise IndexError(f"chunk {coords} does not exist: this level has {grid} chunks")

    # -- decoding one chunk ----------------------------------------------------------------------------------------
    def _zarr_chunk(self, coords: tuple[int, ...]) -> np.ndarray:
        """Chunk ``coords`` (clipped to the array) decoded by zarr; a failure names the chunk."""
        region = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, self.chunks, self.shape))
        try:
            return np.asarray(self.array[region])
        except CorruptChunkError as exc:  # a guard or the checksum refused it (they do not know the chunk's key)
            raise self.owner.chunk_error(self.level_index, coords, exc) from None
        except ImportError as exc:
            raise missing_codec_error(exc) from None
        except (MzarrError, IndexError, MemoryError):
            raise
        except Exception as exc:
            raise self.owner.chunk_error(self.level_index, coords, exc) from None

    def _decode(self, coords: tuple[int, ...], data: Any) -> np.ndarray | None:
        """The chunk stored as ``data`` (None: never written), by the codec here, else by zarr."""
        if data is None:
            return None
        if self.codec is not None:
            try:
                return self.codec.decode(data)
            except MemoryError:
                raise
            except ImportError as exc:  # a codec this installation lacks: not damage
                raise missing_codec_error(exc) from None
            except ChunkChecksumError as exc:  # zarr would find the same: name the chunk
                raise self.owner.chunk_error(self.level_index, coords, exc) from None
            except Exception:  # refused by the strict decoder: zarr decides (and a failure there names the chunk)
                pass
        return self._zarr_chunk(coords)

    def _decode_cached_slabs(self, session: CacheSession | None, coords: tuple[int, ...], key: str,
                             data: Any) -> np.ndarray | None:
        """The chunk stored as ``data``; for a slab brick some of whose slabs are cached (a z-plane read them),
        only the other slabs are decoded."""
        fr = self.frames
        if session is None or data is None or getattr(fr, "slab", None) is None:
            return self._decode(coords, data)
        pieces = [session.get(self._slab_key(coords, i), count=False) for i in range(fr.count)]
        if all(p is None for p in pieces):
            return self._decode(coords, data)
        try:
            return np.concatenate([p if p is not None else fr.decode_slab(data, i, key) for i, p in enumerate(pieces)],
                                  axis=fr.zaxis)
        except CorruptChunkError:
            return self._decode(coords, data)  # the whole-chunk path names the damaged chunk

    def _fetch(self, jobs: list[_Job]) -> tuple[dict[str, Any], dict[str, Exception]]:
        """The stored bytes of ``jobs`` (absent: never written) and, where the container cannot give a job's bytes
        (a damaged page of the SQLite file, a bad sector), the error naming that chunk: one query for all, then,
        if it fails, one per chunk, so that sound chunks next to a damaged row still read."""
        keys = [j.key for j in jobs]
        try:
            return fetch_chunks(self.store, keys), {}
        except (MzarrFormatError, MzarrStorageError):
            pass
        found: dict[str, Any] = {}
        failed: dict[str, Exception] = {}
        for job in jobs:
            try:
                found.update(fetch_chunks(self.store, [job.key]))
            except (MzarrFormatError, MzarrStorageError) as exc:
                failed[job.key] = self.owner.chunk_error(self.level_index, job.coords, exc)
        return found, failed

    def _fetch_one(self, coords: tuple[int, ...], key: str) -> Any:
        """The stored bytes of one chunk (None: never written); a container that cannot give them names the chunk."""
        try:
            return fetch_chunks(self.store, [key]).get(key)
        except (MzarrFormatError, MzarrStorageError) as exc:
            raise self.owner.chunk_error(self.level_index, coords, exc) from None

    def _run(self, jobs: list[_Job], work: Callable[[_Job, Any], None], meanwhile: Callable[[], None]) -> None:
        """Fetch the bytes of ``jobs`` and run ``work(job, bytes)`` for each (on the pool when there are several),
        ``meanwhile()`` in this thread; raise the first failure in the jobs' order."""
        if len(jobs) <= 1 or not _parallel():
            found, failed = self._fetch(jobs)
            meanwhile()
            for job in jobs:
                if job.key in failed:
                    raise failed[job.key]
                work(job, found.get(job.key))
            return
        pool = decode_pool()
        futures: list[Future] = []
        failures: dict[str, Exception] = {}
        try:
            for batch in _batches(jobs):
                found, failed = self._fetch(batch)
                failures.update(failed)
                futures += [pool.submit(_capture, work, j, found.get(j.key)) for j in batch if j.key not in failed]
            meanwhile()
        finally:
            outcomes = [f.result() for f in futures]  # every decode has finished before this read returns
        if failures:  # the first failure in the jobs' order
            raise failures[next(j.key for j in jobs if j.key in failures)]
        for exc in outcomes:
            if exc is not None:
                raise exc

    # -- regions ---------------------------------------------------------------------------------------------------
    def read(self, key: tuple, out: np.ndarray | None = None) -> np.ndarray:
        """``array[key]`` (ints and slices with step > 0, storage order), into ``out`` where given and the chunks
        are decoded here (the returned array is then ``out``)."""
        if self.codec is None:
            with self.owner.read_guard():
                return self._zarr_read(key)
        pieces = [_axis_pieces(k, n, c) for k, n, c in zip(key, self.shape, self.chunks)]
        out_shape = tuple(len(range(*k.indices(n))) for k, n in zip(key, self.shape) if not isinstance(k, (int, np.integer)))
        if out is None:
            out = np.empty(out_shape, self.dtype)
        with self.owner.read_guard() as session:
            if out.size == 0:
                return out
            hits: list[tuple[np.ndarray, _Job]] = []
            misses: list[_Job] = []
            for combo in itertools.product(*pieces):
                coords = tuple(p[0] for p in combo)
                src = tuple(p[1] for p in combo)
                dst = tuple(p[2] for p in combo if p[2] is not None)
                cached = session.get(self._cache_key(coords)) if session is not None else None
                job = _Job(coords, self.chunk_key(coords), src, dst)
                if cached is not None:
                    hits.append((cached, job))
                else:
                    misses.append(job)

            def work(job: _Job, data: Any) -> None:
                chunk = self._decode_cached_slabs(session, job.coords, job.key, data)
                if chunk is None:
                    out[job.dst] = self.fill_value
                    return
                if session is not None:
                    chunk = session.put(self._cache_key(job.coords), chunk)
                out[job.dst] = chunk[job.src]

            def copy_hits() -> None:
                for chunk, job in hits:
                    out[job.dst] = chunk[job.src]

            self._run(misses, work, copy_hits)
        return out

    def _zarr_read(self, key: tuple) -> np.ndarray:
        arr = self.array
        try:
            return np.asarray(arr[key])
        except CorruptChunkError as exc:  # refused by a codec guard or the checksum, which do not know the chunk's key
            raise self.owner.corrupt_chunk_error(self.level_index, arr, key, exc) from None
        except ImportError as exc:
            raise missing_codec_error(exc) from None
        except (MzarrError, IndexError, MemoryError):
            raise
        except Exception as exc:  # a codec error: find and name the damaged chunk
            raise self.owner.corrupt_chunk_error(self.level_index, arr, key, exc) from None

    # -- whole chunks ----------------------------------------------------------------------------------------------
    def read_chunk(self, coords: tuple[int, ...], cached_only: bool = False) -> np.ndarray | None:
        """Chunk ``coords`` (storage order, clipped to the array), read-only and shared with the cache; with
        ``cached_only``, None unless it is cached."""
        coords = tuple(int(i) for i in coords)
        self._check_coords(coords)
        clip = self._clip(coords)
        cache_key = self._cache_key(coords)
        if cached_only:
            session = self.owner.peek_session()
            chunk = session.get(cache_key) if session is not None else None
            return None if chunk is None else chunk[clip]
        with self.owner.read_guard() as session:
            chunk = session.get(cache_key) if session is not None else None
            if chunk is not None:
                return chunk[clip]
            if self.codec is None:
                chunk = self._zarr_chunk(coords)
            else:
                key = self.chunk_key(coords)
                chunk = self._decode_cached_slabs(session, coords, key, self._fetch_one(coords, key))
                if chunk is None:
                    chunk = np.full(tuple(s.stop for s in clip), self.fill_value, self.dtype)
            if session is not None:
                chunk = session.put(cache_key, chunk)
            else:
                freeze(chunk)
            return chunk[clip]

    # -- z-planes of bricks ----------------------------------------------------------------------------------------
    def _cached_frame(self, session: CacheSession | None, coords: tuple[int, ...], frame: int) -> np.ndarray | None:
        """Frame ``frame`` of brick ``coords`` from the cache: the whole brick's, or the frame's own entry."""
        if session is None:
            return None
        whole = session.get(self._cache_key(coords), count=False)  # a plane lookup: counted below
        if whole is not None:
            return whole[:, frame] if self.frames.has_channels else whole[frame]
        slab = getattr(self.frames, "slab", None)
        if slab is None:
            return session.get(self._cache_key(coords, frame))
        piece = session.get(self._slab_key(coords, frame // slab))
        if piece is None:
            return None
        return piece[:, frame % slab] if self.frames.has_channels else piece[frame % slab]

    def _decode_frame(self, session: CacheSession | None, coords: tuple[int, ...], frame: int, key: str, data: Any) -> np.ndarray | None:
        if data is None:
            return None
        slab = getattr(self.frames, "slab", None)
        if slab is not None:  # slab bricks: the slab holding the plane, cached whole (its next planes are free)
            piece = self.frames.decode_slab(data, frame // slab, key)
            if session is not None:
                piece = session.put(self._slab_key(coords, frame // slab), piece)
            return piece[:, frame % slab] if self.frames.has_channels else piece[frame % slab]
        plane = self.frames.decode(data, frame, key)
        if session is not None:
            return session.put(self._cache_key(coords, frame), plane)
        return plane

    def read_z_plane(self, z: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """``array[..., z, r0:r1, c0:c1]`` (storage order, channel axis first if any), one frame per brick."""
        fr = self.frames
        chunks = fr.chunks
        n_channels = self.shape[0] if fr.has_channels else None
        out_shape = ((n_channels,) if n_channels else ()) + (rows[1] - rows[0], cols[1] - cols[0])
        out = np.empty(out_shape, self.dtype)
        cz, frame = divmod(z, chunks["z"])
        channel_chunks = range(0, n_channels, chunks["c"]) if n_channels else [None]
        y_chunks = range(rows[0] // chunks["y"], -(-rows[1] // chunks["y"]))
        x_chunks = range(cols[0] // chunks["x"], -(-cols[1] // chunks["x"]))
        jobs = []
        for c0, cy, cx in itertools.product(channel_chunks, y_chunks, x_chunks):
            coords = ((c0 // chunks["c"],) if c0 is not None else ()) + (cz, cy, cx)
            y0, x0 = cy * chunks["y"], cx * chunks["x"]
            src: tuple[slice, ...] = (slice(max(rows[0], y0) - y0, min(rows[1], y0 + chunks["y"]) - y0),
                   slice(max(cols[0], x0) - x0, min(cols[1], x0 + chunks["x"]) - x0))
            dst: tuple[slice, ...] = (slice(max(rows[0], y0) - rows[0], min(rows[1], y0 + chunks["y"]) - rows[0]),
                   slice(max(cols[0], x0) - cols[0], min(cols[1], x0 + chunks["x"]) - cols[0]))
            if c0 is not None:
                c_stop = min(n_channels, c0 + chunks["c"])
                src, dst = (slice(0, c_stop - c0),) + src, (slice(c0, c_stop),) + dst
            jobs.append(_Job(coords, self.chunk_key(coords), src, dst))
        with self.owner.read_guard() as session:
            if out.size == 0:
                return out
            hits, misses = [], []
            for job in jobs:
                plane = self._cached_frame(session, job.coords, frame)
                if plane is not None:
                    hits.append((plane, job))
                else:
                    misses.append(job)

            def work(job: _Job, data: Any) -> None:
                plane = self._decode_frame(session, job.coords, frame, job.key, data)
                out[job.dst] = self.fill_value if plane is None else plane[job.src]

            def copy_hits() -> None:
                for plane, job in hits:
                    out[job.dst] = plane[job.src]

            self._run(misses, work, copy_hits)
        return out

    def read_chunk_plane(self, coords: tuple[int, ...], frame: int, cached_only: bool = False) -> np.ndarray | None:
        """Frame ``frame`` of brick ``coords`` as ``(c, y, x)`` or ``(y, x)`` (storage order, the brick's channels,
        clipped to the array), read-only; with ``cached_only``, None unless cached."""
        coords = tuple(int(i) for i in coords)
        self._check_coords(coords)
        clip = self._clip(coords)
        names = tuple(self.array.metadata.dimension_names)
        zi = names.index("z")
        if not 0 <= frame < clip[zi].stop:
            raise IndexError(f"frame {frame} is outside brick {coords} ({clip[zi].stop} frames)")
        plane_clip = clip[:zi] + clip[zi + 1 :]
        if cached_only:
            plane = self._cached_frame(self.owner.peek_session(), coords, frame)
            return None if plane is None else plane[plane_clip]
        with self.owner.read_guard() as session:
            plane = self._cached_frame(session, coords, frame)
            if plane is None:
                key = self.chunk_key(coords)
                plane = self._decode_frame(session, coords, frame, key, self._fetch_one(coords, key))
                if plane is None:
                    plane = np.full(tuple(s.stop for s in plane_clip), self.fill_value, self.dtype)
                freeze(plane)
            return plane[plane_clip]
