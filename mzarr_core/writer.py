"""Out-of-core writing of an image and its pyramid into a fresh Zarr store, block by block, bounded memory.

Level 0 is read from the source in "superblocks" (a chunk scaled up by 2^k, at most BLOCK_BUDGET bytes), and each
superblock is downsampled in memory to produce the matching, chunk-aligned blocks of levels 1..k. Levels beyond k
are built the same way from level k as written. Superblocks are downsampled and written by one worker per core,
zarr encoding each write's chunks on its thread pool (imagecodecs releases the GIL), while the next block is read
ahead.

Level 0 may come partly pre-encoded: ``encoded_chunks(coords)`` returns the stored bytes of level 0's chunk at
storage ``coords`` (e.g. a slide's JPEG tile transcoded to JPEG XL), or None to encode that chunk from the pixels.
It is called on a pool of one thread per core, for the chunks of one superblock while the superblock's pixels build
the coarser levels; memory stays bounded (at most one superblock per core in flight, within BUILD_BUDGET).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

import numpy as np
import zarr
from zarr.abc.store import Store

from .axes import is_colour
from .codecs import StorageCodec
from .guards import append_crc32c, ends_with_crc32c
from .level import StorageArray
from .ngff import ImageInfo, group_attributes
from .pyramid import LevelGeometry, downsample, plan_levels

BLOCK_BUDGET = 64 * 2**20
BUILD_BUDGET = 256 * 2**20  # superblocks being downsampled and written at once (one per core, within this)
Progress = Callable[[int, int], Any]
EncodedChunks = Callable[[tuple[int, ...]], "bytes | None"]


def _cores() -> int:
    return max(1, os.cpu_count() or 1)


def colour_transpose(storage_axes: str, colour: bool) -> tuple[int, ...] | None:
    """Chunk order for JPEG XL colour: channel-first storage -> channel-last pixels."""
    if not colour:
        return None
    return tuple(range(1, len(storage_axes))) + (0,)


def create_arrays(
    store: Store, info: ImageInfo, plan: list[LevelGeometry], dtype: np.dtype, chunks: tuple[int, ...], codec: StorageCodec,
    path: str = "", ome_extra: dict[str, Any] | None = None,
) -> list[zarr.Array]:
    """Create the group (with its metadata) and one empty array per level. ``path``: the group's place in the store
    ("" the root; ``labels/<name>`` a label image); ``ome_extra``: more keys of its ``ome`` block (``image-label``)."""
    st = info.storage_axes
    channel_count = plan[0].shape[st.index("c")] if "c" in st else None
    transpose = colour_transpose(st, is_colour(info.axes, channel_count, dtype))
    info.level_paths = [str(i) for i in range(len(plan))]
    info.level_factors = [g.factor for g in plan]
    info.codec = codec.to_json()
    attributes = group_attributes(info)
    attributes["ome"].update(ome_extra or {})
    root = zarr.create_group(store, path=path or None, zarr_format=3, attributes=attributes, overwrite=True)
    arrays = []
    for path, geom in zip(info.level_paths, plan):
        level_chunks = tuple(min(c, n) if a != "c" else c for a, c, n in zip(st, chunks, geom.shape))
        arrays.append(
            root.create_array(
                path,
                shape=geom.shape,
                dtype=dtype,
                fill_value=False if dtype == np.dtype(bool) else 0,
                dimension_names=list(st),
                **codec.array_options(dtype, transpose, level_chunks, tuple(geom.shape), st),
            )
        )
    return arrays


def _count_chunks(region: tuple[slice, ...], chunks: tuple[int, ...]) -> int:
    return math.prod(-(-(s.stop - s.start) // c) for s, c in zip(region, chunks))


def _write_batch(batch: list[tuple[zarr.Array, tuple[slice, ...], np.ndarray]]) -> int:
    """Write blocks (chunk-aligned, so no chunk is read back) and return how many chunks they covered."""
    count = 0
    for array, region, data in batch:
        array[region] = data
        count += _count_chunks(region, tuple(array.chunks))
    return count


def _chunk_coords(region: tuple[slice, ...], chunks: tuple[int, ...]) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(s.start // c, -(-s.stop // c)) for s, c in zip(region, chunks))))


def store_chunk_bytes(array: zarr.Array, coords: tuple[int, ...], data: bytes) -> None:
    """Store ``data`` as the encoded chunk ``coords`` of ``array`` as it is (no codec runs but the checksum, which
    an array of format 5 writes after every chunk)."""
    key = (f"{array.path}/" if array.path else "") + array.metadata.encode_chunk_key(coords)
    if ends_with_crc32c(getattr(array.metadata, "codecs", ())):
        data = append_crc32c(data)
    store_key_bytes(array.store_path.store, key, data)


def store_key_bytes(store: Store, key: str, data: bytes | memoryview) -> None:
    """Store ``data`` under ``key`` of ``store`` as it is (an encoded chunk)."""
    set_bytes = getattr(store, "set_bytes_sync", None)  # the single-file store's capability
    if set_bytes is not None:
        set_bytes(key, data)
        return
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    sync(store.set(key, default_buffer_prototype().buffer.from_bytes(bytes(data))))


def _write_encoded(array: zarr.Array, region: tuple[slice, ...], data: np.ndarray,
                   encoded: list[tuple[tuple[int, ...], Future]]) -> int:
    """Level 0's chunks of one superblock: pre-encoded bytes where the provider gave them, pixels encoded by
    zarr where it gave None. Returns the number of chunks."""
    chunks = tuple(array.chunks)
    for coords, future in encoded:
        blob = future.result()
        if blob is not None:
            store_chunk_bytes(array, coords, blob)
            continue
        box = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, chunks, array.shape))
        array[box] = data[tuple(slice(b.start - r.start, b.stop - r.start) for b, r in zip(box, region))]
    return len(encoded)


def _levels_per_pass(plan: list[LevelGeometry], start: int, chunks: tuple[int, ...], itemsize: int) -> int:
    """How many levels below ``start`` one superblock can produce within BLOCK_BUDGET."""
    k = 0
    while start + k + 1 < len(plan):
        rel = [f1 // f0 for f1, f0 in zip(plan[start + k + 1].factor, plan[start].factor)]
        block = [min(c * r, n) for c, r, n in zip(chunks, rel, plan[start].shape)]
        if math.prod(block) * itemsize > BLOCK_BUDGET:
            break
        k += 1
    return max(k, 1) if start + 1 < len(plan) else 0


def plan_pass(
    plan: list[LevelGeometry], start: int, chunks: tuple[int, ...], itemsize: int
) -> tuple[int, list[list[int]], list[int], list[tuple[slice, ...]]]:
    """One pass of the build from level ``start``: how many levels ``k`` it produces, each one's factor relative to
    ``start``, the superblock shape and the superblocks (regions of level ``start``, C order)."""
    k = _levels_per_pass(plan, start, chunks, itemsize)
    base = plan[start]
    rel = [[f1 // f0 for f1, f0 in zip(plan[start + j].factor, base.factor)] for j in range(k + 1)]
    block = [c * r for c, r in zip(chunks, rel[k])]
    origins = itertools.product(*(range(0, n, b) for n, b in zip(base.shape, block)))
    regions = [tuple(slice(o, min(o + b, n)) for o, b, n in zip(org, block, base.shape)) for org in origins]
    return k, rel, block, regions


def superblock_blocks(
    arrays: list[zarr.Array], start: int, k: int, rel: list[list[int]], region: tuple[slice, ...], data: np.ndarray,
    method: str, with_start: bool,
) -> list[tuple[zarr.Array, tuple[slice, ...], np.ndarray]]:
    """The chunk-aligned blocks one superblock (``data`` at ``region`` of level ``start``) gives: itself if
    ``with_start``, then levels ``start+1..start+k`` downsampled from it."""
    batch = [(arrays[start], region, data)] if with_start else []
    for j in range(1, k + 1):
        halve = tuple(a != b for a, b in zip(rel[j], rel[j - 1]))
        data = downsample(data, halve, method)
        origin = [s.start // r for s, r in zip(region, rel[j])]
        batch.append((arrays[start + j], tuple(slice(o, o + n) for o, n in zip(origin, data.shape)), data))
    return batch


def build_pyramid(
    source: StorageArray,
    arrays: list[zarr.Array],
    plan: list[LevelGeometry],
    chunks: tuple[int, ...],
    method: str,
    progress: Progress | None = None,
    encoded_chunks: EncodedChunks | None = None,
) -> None:
    """Write ``source`` into ``arrays[0]`` and every coarser level, superblock by superblock; ``encoded_chunks``
    (see the module docstring) supplies level 0's chunks already encoded."""
    itemsize = np.dtype(arrays[0].dtype).itemsize
    total = sum(_count_chunks(tuple(slice(0, n) for n in g.shape), chunks) for g in plan)
    done = 0
    if progress:
        progress(0, total)
    start, src = 0, source
    while True:
        k, rel, block, regions = plan_pass(plan, start, chunks, itemsize)

        def read(region: tuple[slice, ...], src: StorageArray = src) -> np.ndarray:
            return np.asarray(src[region])

        # One thread reads ahead; each superblock then is downsampled and written (zarr encodes each write's
        # chunks on its own pool) by a pool of one worker per core, so several superblocks are downsampled and
        # encoded at once: with fast codecs (strip bricks) the downsampling and zarr's per-chunk work would
        # otherwise keep the save on one core. At most ``in_flight`` superblocks are held (bounded memory).
        # Pre-encoded level-0 chunks are made on a pool of one thread per core meanwhile.
        transcode = encoded_chunks if start == 0 else None
        block_bytes = math.prod(block) * itemsize
        in_flight = max(1, min(_cores(), BUILD_BUDGET // max(1, block_bytes)))

        def process(region: tuple[slice, ...], data: np.ndarray, start: int = start, k: int = k,
                    rel: list = rel, transcode: Any = transcode, encoder: Any = None) -> int:
            level0 = None
            if transcode is not None:
                encoded = [(c, encoder.submit(transcode, c)) for c in _chunk_coords(region, tuple(arrays[0].chunks))]
                level0 = (arrays[0], region, data, encoded)
            batch = superblock_blocks(arrays, start, k, rel, region, data, method, with_start=start == 0 and level0 is None)
            return (_write_encoded(*level0) if level0 is not None else 0) + _write_batch(batch)

        with ThreadPoolExecutor(1, "mzarr-read") as reader, ThreadPoolExecutor(in_flight, "mzarr-build") as builder, \
                ThreadPoolExecutor(_cores() if transcode else 1, "mzarr-encode") as encoder:
            pending = reader.submit(read, regions[0]) if regions else None
            writes: list[Future] = []
            for n_region, region in enumerate(regions):
                assert pending is not None
                data = pending.result()
                pending = reader.submit(read, regions[n_region + 1]) if n_region + 1 < len(regions) else None
                writes.append(builder.submit(process, region, data, encoder=encoder))
                del data
                while len(writes) >= in_flight:
                    done += writes.pop(0).result()
                    if progress:
                        progress(done, total)
            for future in writes:
                done += future.result()
                if progress:
                    progress(done, total)
        if start + k >= len(plan) - 1:
            break
        start, src = start + k, cast(StorageArray, arrays[start + k])


def write_image(
    store: Store,
    source: StorageArray,
    info: ImageInfo,
    codec: StorageCodec,
    chunks: tuple[int, ...],
    levels: int | None = None,
    progress: Progress | None = None,
    empty: bool = False,
    encoded_chunks: EncodedChunks | None = None,
    path: str = "",
    ome_extra: dict[str, Any] | None = None,
    build: Callable[..., None] | None = None,
) -> list[zarr.Array]:
    """Write a whole image (all levels + metadata) into an empty store. ``empty`` leaves every chunk unwritten;
    ``encoded_chunks`` supplies level 0's chunks already encoded (see the module docstring); ``path`` and
    ``ome_extra`` as for :func:`create_arrays` (a label image inside an image's hierarchy); ``build`` replaces
    :func:`build_pyramid` (same arguments; :func:`mzarr_core.dask_write.dask_builder`)."""
    dtype = np.dtype(source.dtype)
    plan = plan_levels(tuple(source.shape), info.storage_axes, chunks, levels)
    arrays = create_arrays(store, info, plan, dtype, chunks, codec, path, ome_extra)
    if not empty:
        (build or build_pyramid)(source, arrays, plan, chunks, info.downsample, progress, encoded_chunks)
    elif progress:
        progress(1, 1)
    return arrays
