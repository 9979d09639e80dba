"""Reading one z-plane of a volume without decoding whole bricks, where bricks are frames.

Frame bricks (format 1, lossy volumes: :class:`~mzarr_core.codecs.JpegxlFrames`) store one JPEG XL frame per z, and
libjxl can decode a single frame: a viewer browsing z-slices decodes far fewer pixels. Strip bricks (format 2) are
one frame: their planes are cut from whole decoded bricks (a strip brick met among frame bricks is decoded whole
here too). Slab bricks (format 4) decode the slab holding a plane: :class:`~mzarr_core.chunk_reader.SlabDecoder`.

:class:`FrameDecoder` decodes one frame of one brick (bounded, damaged bricks named); the cached, parallel reads of
planes are :meth:`mzarr_core.chunk_reader.ChunkReader.read_z_plane` and ``read_chunk_plane``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import imagecodecs  # noqa: F401  (decode_jpegxl calls imagecodecs.jpegxl_decode; tests spy on it here)
import numpy as np
import zarr
from imagecodecs.zarr import Jpegxl
from zarr.codecs import TransposeCodec
from zarr.codecs.numcodecs import AsType, FixedScaleOffset
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from .codecs import ShapedFixedScaleOffset
from .errors import CorruptChunkError
from .guards import GuardedJpegxl, decode_jpegxl, ends_with_crc32c, read_jpegxl_header, strip_crc32c

#: The codec classes that store one frame per z of a brick, exactly (a subclass may lay frames out otherwise, e.g.
#: :class:`~mzarr_core.codecs.StripJpegxl`: its planes are cut from whole decoded bricks).
JPEGXL_TYPES = (Jpegxl, GuardedJpegxl)
FILTER_TYPES = (TransposeCodec, FixedScaleOffset, ShapedFixedScaleOffset, AsType)


def frame_decodable(array: Any) -> bool:
    """True if ``array`` (storage order, with a z axis) keeps each z of a chunk as one JPEG XL frame."""
    if not isinstance(array, zarr.Array) or array.metadata.zarr_format != 3:
        return False
    names = tuple(array.metadata.dimension_names or ())
    if "z" not in names or names[-2:] != ("y", "x"):
        return False
    codecs = list(array.metadata.codecs)
    if ends_with_crc32c(codecs):  # format 5: the brick's checksum, checked before decoding a frame
        codecs.pop()
    serializer = [c for c in codecs if type(c) in JPEGXL_TYPES]
    if len(serializer) != 1 or codecs[-1] is not serializer[0]:
        return False  # a bytes->bytes compressor after JPEG XL, or no JPEG XL at all
    chunks = dict(zip(names, array.chunks))
    # Chunks squeezed below (frames, y, x) by the serializer cannot be addressed by frame.
    scales = [c.codec_config.get("scale", 1) for c in codecs if isinstance(c, FixedScaleOffset)]
    return chunks["y"] > 1 and chunks["x"] > 1 and all(s == 1 for s in scales) and all(
        type(c) in FILTER_TYPES + JPEGXL_TYPES for c in codecs
    )


def _undo_filters(frame: np.ndarray, codecs: tuple, dtype: np.dtype) -> np.ndarray:
    """The inverse of the array->array filters Mzarr writes (offset of signed ints, bool as uint8)."""
    for codec in codecs:
        if isinstance(codec, FixedScaleOffset):
            config: Any = codec.codec_config  # numcodecs' JSON configuration
            return (frame.astype(np.int64) + int(config["offset"])).astype(dtype)
        if isinstance(codec, AsType):
            return frame.astype(dtype)
    return frame


def _stored_dtype(codecs: tuple, dtype: np.dtype) -> np.dtype:
    """The dtype JPEG XL holds: unsigned for offset signed ints, uint8 for bool."""
    for codec in codecs:
        config: Any  # numcodecs' JSON configuration
        if isinstance(codec, FixedScaleOffset):
            config = codec.codec_config
            return np.dtype(config.get("astype", dtype))
        if isinstance(codec, AsType):
            config = codec.codec_config
            return np.dtype(config["encode_dtype"])
    return dtype


def _fetch(store: Any, key: str) -> Any:
    """The stored bytes of one chunk; straight from SQLite when possible (no round trip through zarr's loop)."""
    get_bytes = getattr(store, "get_bytes_sync", None)  # the single-file store's capability
    if get_bytes is not None:
        return get_bytes(key)
    buffer = sync(store.get(key, default_buffer_prototype()))
    return None if buffer is None else buffer.as_numpy_array()


def undecodable(key: str, where: str, exc: Exception) -> CorruptChunkError:
    """The error for chunk ``key`` of ``where`` that failed to decode with ``exc``: too large (a bomb) or damaged."""
    error = type(exc) if isinstance(exc, CorruptChunkError) else CorruptChunkError
    return error(f"chunk {key} of {where} cannot be decoded ({type(exc).__name__}: {exc}). The file is damaged: "
                 "restore it from a backup, or save what still reads with 'mzarr salvage'; 'mzarr verify' lists every "
                 "damaged chunk")


class FrameDecoder:
    """Decodes frame ``i`` of one brick of a :func:`frame_decodable` array to ``(c, y, x)`` (channels: the
    brick's) or ``(y, x)``, in storage order and the array's dtype, refusing frames larger than the brick's."""

    def __init__(self, array: Any, where: str):
        names = tuple(array.metadata.dimension_names)
        self.chunks = dict(zip(names, array.chunks))
        self.dtype = np.dtype(array.dtype)
        self.codecs = array.metadata.codecs
        self.checksum = ends_with_crc32c(self.codecs)
        self.colour = any(isinstance(c, TransposeCodec) for c in self.codecs)
        self.has_channels = names[0] == "c"
        # One frame decodes to (y, x) or, for colour, (y, x, c): never more (decompression bombs are refused).
        self.frame_shape = (self.chunks["y"], self.chunks["x"]) + ((self.chunks["c"],) if self.colour else ())
        self.stored = _stored_dtype(self.codecs, self.dtype)
        self.what = f"one frame of this array's chunks is {self.frame_shape} {self.stored}"
        self.brick_shape = (self.chunks["z"],) + self.frame_shape
        self.brick_values = math.prod(self.brick_shape)
        self.brick_what = f"this array's bricks are {self.brick_shape} {self.stored}"
        self.where = where

    def decode(self, data: Any, frame_index: int, key: str) -> np.ndarray:
        """Frame ``frame_index`` of the brick stored as ``data`` under ``key`` (named in errors)."""
        try:
            if self.checksum:
                data = strip_crc32c(data)
            header = read_jpegxl_header(data)
            if header is not None and header.values_per_frame == self.brick_values != math.prod(self.frame_shape):
                # one frame holds the whole brick (a strip chunk among frame chunks): decode it, keep one plane
                brick = decode_jpegxl(data, self.brick_shape, self.stored, what=self.brick_what)
                frame = brick.reshape(self.brick_shape)[frame_index]
            else:
                frame = decode_jpegxl(data, self.frame_shape, self.stored, index=frame_index, what=self.what)
        except Exception as exc:
            raise undecodable(key, self.where, exc) from None
        if frame.size != math.prod(self.frame_shape):  # e.g. another level's smaller chunk stored under this key
            raise CorruptChunkError(
                f"chunk {key} of {self.where} decodes to frames of {frame.shape}, but {self.what}. The file is "
                "damaged: restore it from a backup, or save what still reads with 'mzarr salvage'; 'mzarr verify' "
                "lists every damaged chunk"
            )
        frame = _undo_filters(frame, self.codecs, self.dtype)
        cy, cx = self.chunks["y"], self.chunks["x"]
        if self.colour:
            return np.moveaxis(frame.reshape(cy, cx, -1), -1, 0)  # (y, x, c) -> (c, y, x)
        if self.has_channels:
            return frame.reshape(1, cy, cx)
        return frame.reshape(cy, cx)


def read_z_plane(array: Any, z: int, rows: tuple[int, int], cols: tuple[int, int], where: str) -> np.ndarray:
    """``array[..., z, r0:r1, c0:c1]`` (storage order; channel axis first if any), decoding one frame per chunk.

    Uncached and sequential: images read through :class:`~mzarr_core.Level` use ``Level.z_plane`` instead.
    """
    decoder = FrameDecoder(array, where)
    chunks = decoder.chunks
    names = tuple(array.metadata.dimension_names)
    n_channels = array.shape[0] if names[0] == "c" else None
    out_shape = ((n_channels,) if n_channels else ()) + (rows[1] - rows[0], cols[1] - cols[0])
    out = np.full(out_shape, array.metadata.fill_value, decoder.dtype)
    store = array.store_path.store
    prefix = f"{array.path}/" if array.path else ""
    cz, frame_index = divmod(z, chunks["z"])
    channel_chunks = range(0, n_channels, chunks["c"]) if n_channels else [None]
    y_chunks = range(rows[0] // chunks["y"], -(-rows[1] // chunks["y"]))
    x_chunks = range(cols[0] // chunks["x"], -(-cols[1] // chunks["x"]))
    for c0, cy, cx in itertools.product(channel_chunks, y_chunks, x_chunks):
        coords = ((c0 // chunks["c"],) if c0 is not None else ()) + (cz, cy, cx)
        key = prefix + array.metadata.encode_chunk_key(coords)
        data = _fetch(store, key)
        if data is None:
            continue  # never written: fill value
        frame = decoder.decode(data, frame_index, key)
        y0, x0 = cy * chunks["y"], cx * chunks["x"]
        src_y = slice(max(rows[0], y0) - y0, min(rows[1], y0 + chunks["y"]) - y0)
        src_x = slice(max(cols[0], x0) - x0, min(cols[1], x0 + chunks["x"]) - x0)
        dst_y = slice(max(rows[0], y0) - rows[0], min(rows[1], y0 + chunks["y"]) - rows[0])
        dst_x = slice(max(cols[0], x0) - cols[0], min(cols[1], x0 + chunks["x"]) - cols[0])
        if n_channels:
            c_stop = min(n_channels, c0 + chunks["c"])
            out[c0:c_stop, dst_y, dst_x] = frame[: c_stop - c0, src_y, src_x]
        else:
            out[dst_y, dst_x] = frame[src_y, src_x]
    return out
