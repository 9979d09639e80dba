"""How Mzarr stores chunks: one :class:`StorageCodec` class per choice, owning its configuration (the ``codec``
block of the file's ``mzarr`` metadata), its Zarr codec pipeline and its plane reader.

| class           | block                                     | dtypes                                   | lossy | z-plane reads   |
| --------------- | ----------------------------------------- | ---------------------------------------- | ----- | --------------- |
| JpegxlFrames    | ``{"name": "jpegxl"}``                    | uint8/16; int8/16 offset; bool as uint8  | yes   | one frame       |
| JpegxlSlabs     | ``{"name": "jpegxl", "bricks": "slabs"}`` | the same, volumes, lossless (format 4)   | no    | one slab        |
| JpegxlStrip     | ``{"name": "jpegxl", "bricks": "strip"}`` | the same, volumes, lossless (format 2)   | no    | whole bricks    |
| Zstd            | ``{"name": "zstd"}``                      | float16/32/64, (u)int32/64               | no    | whole chunks    |
| Blosc           | ``{"name": "blosc"}``                     | uint16/int16 volumes, lossless (format 6)| no    | whole bricks    |
| JpegxlJpeg      | ``{"name": "jpegxl", "jpeg": "recompressed"}`` | uint8 2-D slides (format 3)         | yes   | -               |

* **JpegxlFrames**: a chunk is one JPEG XL image; a 3-D brick one frame per z (libjxl decodes one frame alone,
  so a z-plane costs one frame per brick). Every 2-D image, lossy volumes and volumes of format 1.
* **JpegxlSlabs** (format 4, the default for lossless volumes): a brick is a Zarr ``sharding_indexed`` shard of
  ``slab``-plane z-slabs (16), each one strip frame (below): whole bricks decode 13-19 % slower than one strip, a
  z-plane decodes the slab holding it (a quarter of the brick; docs/BENCHMARKS.md, "3D brick layout"). Stock
  zarr-python reads it (its own sharding codec, imagecodecs' JPEG XL inside); the core reads shards itself
  (:class:`~mzarr_core.chunk_reader.ChunkCodec`, :class:`~mzarr_core.chunk_reader.SlabDecoder`).
* **JpegxlStrip** (format 2, ``bricks="strip"``): a brick is ONE frame of its z-slices stacked
  vertically, ``chunk.reshape(z * y, x)``: libjxl's fast single-frame path (effort 1) makes bricks decode 2.5-3x
  and encode 6-11x faster than 64 frames, for ~5 % more bytes (docs/BENCHMARKS.md, "3D brick layout"). The zarr
  codec entry is unchanged (``imagecodecs_jpegxl``): stock readers decode the frame and reshape it to the chunk.
* **Blosc** (format 6, the default for lossless volumes of 16-bit samples, ``bricks="blosc"``): a brick is its
  raw bytes, byte-shuffled and zstd-compressed by Zarr's standard ``blosc`` codec. On 12-bit CT and MR it is 1-7 %
  larger than slab bricks and whole bricks decode 5-6x faster, so a y or x plane (whole bricks) costs less than a
  z-plane of slabs; on 8-bit volumes JPEG XL stays ~20 % smaller and remains their default (docs/BENCHMARKS.md, "Blosc bricks").
* Floats go to zstd because libjxl rejects NaN/Inf, which scientific images use as "no data".
* **JpegxlJpeg** (format 3, whole-slide images): level 0's chunks are the source slide's JPEG tiles transcoded by
  libjxl without loss (a JPEG XL container with a ``jbrd`` box); reading reconstructs the JPEG and decodes it with
  libjpeg, so the pixels are exactly the source's. Coarser levels, and level-0 chunks rewritten by an edit, are
  lossy JPEG XL at the block's ``distance``: the decoder tells the two apart per chunk (the ``jbrd`` box). Same
  zarr codec entry (``imagecodecs_jpegxl``): stock readers decode libjxl's approximation of the JPEG pixels.

Reading goes through :mod:`mzarr_core.guards` (same codec names on disk): a chunk never decodes to more than its
chunk shape x dtype. :func:`register_codecs` (called once by ``mzarr_core/__init__.py``) registers the zarr codec
classes and the storage codecs; a new storage codec is one subclass plus one :func:`register_storage_codec` call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import imagecodecs
import numpy as np
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, TransposeCodec
from zarr.codecs.numcodecs import AsType, FixedScaleOffset

from .errors import MzarrDtypeError, MzarrValueError
from .guards import (
    CheckedCrc32c,
    GuardedBlosc,
    GuardedJpegxl,
    append_crc32c,
    GuardedZstd,
    _spec,
    decode_jpegxl_chunk,
    register_guarded_codecs,
    register_zarr_codec,
)

__all__ = [
    "Blosc",
    "DEFAULT_EFFORT",
    "JpegxlFrames",
    "JpegxlJpeg",
    "JpegxlSlabs",
    "JpegxlStrip",
    "RecompressedJpegxl",
    "ShapedFixedScaleOffset",
    "SlabSharding",
    "StorageCodec",
    "StripJpegxl",
    "Zstd",
    "check_dtype",
    "choose_codec",
    "codec_from_json",
    "register_codecs",
    "register_storage_codec",
]

JPEGXL_NATIVE = (np.dtype("uint8"), np.dtype("uint16"))
JPEGXL_OFFSET: dict[np.dtype, np.dtype] = {np.dtype("int8"): np.dtype("uint8"), np.dtype("int16"): np.dtype("uint16")}
ZSTD_DTYPES = tuple(
    np.dtype(d) for d in ("float16", "float32", "float64", "int32", "uint32", "int64", "uint64")
)
SUPPORTED_DTYPES: tuple[np.dtype, ...] = (*JPEGXL_NATIVE, *JPEGXL_OFFSET, np.dtype(bool), *ZSTD_DTYPES)
DEFAULT_EFFORT = 2  # 2-D tiles and frames: decodes as fast as 1 and compresses within ~5% of 7 on photos/micrographs
STRIP_EFFORT = 1  # strip bricks: libjxl's single-frame fast path (effort 2 is ~9 % smaller but 2x slower)
ZSTD_LEVEL = 5
#: lossless volumes of these dtypes are Blosc bricks by default (8-bit volumes: JPEG XL is ~20 % smaller there)
BLOSC_VOLUME_DTYPES = (np.dtype("uint16"), np.dtype("int16"))
BRICKS = ("blosc", "slabs", "strip", "frames")  # what ``bricks=`` may ask for (volumes)
CHECKSUM_FORMAT = 5  # the format version of files whose chunks carry a crc32c (docs/FORMAT.md, "Checksums")


# -- zarr codec classes ----------------------------------------------------------------------------------------------
class ShapedFixedScaleOffset(FixedScaleOffset):
    """numcodecs' FixedScaleOffset that keeps the chunk's shape when encoding.

    zarr's wrapper returns numcodecs' flattened output, so the JPEG XL serializer after it would see a 1 x N strip
    and lose all 2-D prediction (int16 files were twice the size of the same pixels as uint16). Same name and
    configuration on disk: any reader decodes it with the stock codec.
    """

    def _encode_sync(self, chunk_data: Any, chunk_spec: Any) -> Any:
        out = super()._encode_sync(chunk_data, chunk_spec)
        array = out.as_ndarray_like()
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(array.reshape(chunk_spec.shape))


class StripJpegxl(GuardedJpegxl):
    """Encodes a chunk as ONE JPEG XL frame: ``(..., y, x)`` as ``(rows, x)``, colour ``(..., y, x, c)`` as
    ``(rows, x, c)``. Same name and configuration on disk as imagecodecs' codec, whose decoder reshapes the frame
    to the chunk: a strip chunk reads back through any Zarr reader. Decoding is GuardedJpegxl's."""

    frames_per_z: ClassVar[bool] = False

    def _encode_sync(self, chunk_array: Any, chunk_spec: Any) -> Any:
        data = np.ascontiguousarray(chunk_array.as_numpy_array())
        colour = self.photometric is None and data.ndim >= 3
        if colour:
            data = data.reshape(-1, data.shape[-2], data.shape[-1])
        else:
            data = data.reshape(-1, data.shape[-1])
        encoded = imagecodecs.jpegxl_encode(
            data,
            level=self.level,
            effort=self.effort,
            distance=self.distance,
            lossless=self.lossless,
            decodingspeed=self.decodingspeed,
            bitspersample=self.bitspersample,
            photometric=self.photometric,
            planar=self.planar,
            primaries=self.primaries,
            transfer=self.transfer,
            perceptualheuristics=self.perceptualheuristics,
            usecontainer=self.usecontainer,
            numthreads=self.numthreads,
        )
        return chunk_spec.prototype.buffer.from_bytes(encoded)


_EMPTY = np.uint64(2**64 - 1)  # a shard index entry of an inner chunk that is not stored


class SlabSharding(ShardingCodec):
    """zarr's ``sharding_indexed`` codec (same name and configuration on disk) that encodes a whole shard in one
    call on one thread: each inner chunk by the inner serializer, then the index at the end (offset and length per
    inner chunk in C order, little-endian uint64, crc32c), inner chunks equal to the fill value left out, as the
    sharding specification and zarr-python write it. zarr's own encode runs a task per inner chunk on its event
    loop, which cost more CPU than the JPEG XL encodes of the slabs (docs/BENCHMARKS.md, "Slab bricks"). Anything
    else (another index layout, several inner codecs, a shard the inner chunks do not tile) is zarr's."""

    async def _encode_single(self, shard_array: Any, shard_spec: Any) -> Any:
        if not self._encodes_whole(shard_spec):
            return await super()._encode_single(shard_array, shard_spec)
        return await asyncio.to_thread(self.encode_shard, shard_array, shard_spec)

    def _encodes_whole(self, shard_spec: Any) -> bool:
        index = [c.to_dict() for c in self.index_codecs]
        return (
            str(getattr(self.index_location, "value", self.index_location)) == "end"
            and (len(self.codecs) == 1 or (len(self.codecs) == 2 and isinstance(self.codecs[1], Crc32cCodec)))
            and index == [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
            and all(s % c == 0 for s, c in zip(shard_spec.shape, self.chunk_shape))
        )

    def encode_shard(self, shard_array: Any, shard_spec: Any) -> Any:
        """The shard's bytes (None when every inner chunk equals the fill value: the shard is not stored)."""
        import google_crc32c

        data = shard_array.as_numpy_array()
        inner = tuple(self.chunk_shape)
        grid = tuple(s // c for s, c in zip(data.shape, inner))
        serializer: Any = self.codecs[0]  # the slabs' JPEG XL serializer (a sync encoder)
        checksum = len(self.codecs) == 2  # each slab followed by its crc32c (format 5)
        inner_spec = dataclasses.replace(shard_spec, shape=inner)
        fill = shard_spec.fill_value
        skip_empty = not shard_spec.config.write_empty_chunks
        index = np.full(grid + (2,), _EMPTY, dtype="<u8")
        pieces, offset = [], 0
        for coords in np.ndindex(*grid):
            block = data[tuple(slice(i * n, (i + 1) * n) for i, n in zip(coords, inner))]
            if skip_empty and bool(np.all(block == fill)):
                continue
            encoded = serializer._encode_sync(shard_spec.prototype.nd_buffer.from_numpy_array(block), inner_spec)
            piece = encoded.as_numpy_array()
            if checksum:
                piece = np.frombuffer(append_crc32c(piece), np.uint8)
            index[coords] = (offset, piece.nbytes)
            pieces.append(piece)
            offset += piece.nbytes
        if not pieces:
            return None
        index_bytes = index.tobytes()
        crc = google_crc32c.value(index_bytes).to_bytes(4, "little")
        return shard_spec.prototype.buffer.from_bytes(b"".join([*(p.tobytes() for p in pieces), index_bytes, crc]))


class RecompressedJpegxl(GuardedJpegxl):
    """JPEG XL whose chunks may hold a losslessly transcoded JPEG: those (a ``jbrd`` box) decode by rebuilding the
    JPEG and decoding it with libjpeg, bit for bit the source's pixels; the others as any JPEG XL. Encodes like
    imagecodecs' codec (an edited chunk becomes lossy JPEG XL at the configured distance). Same name and
    configuration on disk as imagecodecs' codec."""

    def _decode_sync(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        shape, dtype = _spec(chunk_spec)
        if dtype is None:
            return super()._decode_sync(chunk_bytes, chunk_spec)
        decoded = decode_jpegxl_chunk(chunk_bytes.as_numpy_array(), shape, dtype, keeporientation=self.keeporientation,
                                      numthreads=self.numthreads)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(decoded.reshape(shape))


# -- storage codecs --------------------------------------------------------------------------------------------------
def _adopt_serializer(array: Any, serializer_class: type[Any], sharding_class: type[Any] | None = None) -> Any:
    """``array`` reopened with its JPEG XL serializer built as ``serializer_class`` (and its sharding codec as
    ``sharding_class``; same configuration on disk): what decides how this process encodes the chunks it writes.
    Unchanged if it has no such codecs."""
    meta = array.metadata
    codecs = list(getattr(meta, "codecs", ()))

    def swap(c: Any) -> Any:
        if isinstance(c, ShardingCodec):  # slab bricks: the serializer of the shard's inner chunks
            inner = tuple(swap(i) for i in c.codecs)
            cls = sharding_class if sharding_class is not None else type(c)
            if cls is type(c) and all(a is b for a, b in zip(inner, c.codecs)):
                return c
            return cls(chunk_shape=c.chunk_shape, codecs=inner, index_codecs=c.index_codecs,
                       index_location=c.index_location)
        if isinstance(c, GuardedJpegxl) and type(c) is not serializer_class:
            return serializer_class.from_dict(c.to_dict())
        return c

    swapped = [swap(c) for c in codecs]
    if all(a is b for a, b in zip(swapped, codecs)):
        return array
    async_array = array._async_array
    adopted = type(async_array)(
        metadata=dataclasses.replace(meta, codecs=tuple(swapped)),
        store_path=async_array.store_path,
        config=async_array.config,
    )
    return type(array)(adopted)


@dataclass(frozen=True)
class StorageCodec(ABC):
    """One way of storing an image's chunks, recorded as the ``codec`` block of its ``mzarr`` metadata."""

    lossless: bool = True
    #: every chunk (every slab of a slab brick) followed by its crc32c, checked on every read (format 5)
    checksum: bool = False

    #: the block's "name"
    name: ClassVar[str]
    #: the lowest Mzarr format version that reads files stored this way (without checksums)
    format_version: ClassVar[int] = 1

    @property
    def version(self) -> int:
        """The lowest Mzarr format version that reads files stored this way."""
        return max(self.format_version, CHECKSUM_FORMAT if self.checksum else 1)

    @classmethod
    @abstractmethod
    def from_json(cls, block: dict[str, Any]) -> "StorageCodec":
        """The codec a file's block describes (the block was matched to this class by :func:`codec_from_json`;
        the ``checksum`` key is read there)."""

    @abstractmethod
    def _block(self) -> dict[str, Any]:
        """The block recorded in the file, without the ``checksum`` key."""

    def to_json(self) -> dict[str, Any]:
        """The block recorded in the file."""
        return {**self._block(), **({"checksum": "crc32c"} if self.checksum else {})}

    def _compressors(self, *compressors: Any) -> list[Any] | None:
        """The bytes-to-bytes codecs after the serializer: ``compressors``, then the checksum if any."""
        out = [*compressors, *([CheckedCrc32c()] if self.checksum else [])]
        return out or None

    @abstractmethod
    def pipeline(self, dtype: np.dtype, transpose: tuple[int, ...] | None) -> dict[str, Any]:
        """Keyword arguments (filters, serializer, compressors) for ``zarr.create_array``. ``transpose`` reorders a
        chunk before encoding (colour: channel-first storage, channel-last pixels)."""

    def array_options(self, dtype: np.dtype, transpose: tuple[int, ...] | None, chunks: tuple[int, ...],
                      shape: tuple[int, ...], axes: str) -> dict[str, Any]:
        """Keyword arguments for ``zarr.create_array`` of one level of ``shape`` whose chunks are ``chunks``
        (storage ``axes``, clipped to the level): its chunk shape and :meth:`pipeline`."""
        return {"chunks": chunks, **self.pipeline(dtype, transpose)}

    def adopt(self, array: Any) -> Any:
        """``array`` as opened from its zarr.json, made to encode what it writes this codec's way."""
        return array

    def plane_reader(self, array: Any, where: str) -> Any:
        """A :class:`~mzarr_core.frames.FrameDecoder` for z-planes without decoding whole bricks, or None (planes
        are cut from whole decoded chunks)."""
        return None

    @classmethod
    def matches(cls, block: dict[str, Any]) -> bool:
        """Whether ``block`` describes this class (its name; subclasses add their own keys)."""
        return block.get("name") == cls.name


@dataclass(frozen=True)
class JpegxlFrames(StorageCodec):
    """JPEG XL, one frame per z of a brick (a 2-D chunk is one frame); lossless or lossy at ``distance``."""

    distance: float | None = None
    effort: int = DEFAULT_EFFORT

    name: ClassVar[str] = "jpegxl"
    serializer_class: ClassVar[type] = GuardedJpegxl

    @classmethod
    def matches(cls, block: dict[str, Any]) -> bool:
        return (block.get("name") == cls.name and block.get("bricks", "frames") == "frames" and not block.get("legacy")
                and "jpeg" not in block)

    @classmethod
    def from_json(cls, block: dict[str, Any]) -> "JpegxlFrames":
        lossless = block.get("lossless", True) is not False
        distance = None if lossless else float(block.get("distance") or 1.0)
        effort = block.get("effort", DEFAULT_EFFORT)
        return cls(lossless=lossless, distance=distance, effort=int(effort) if isinstance(effort, int) else DEFAULT_EFFORT)

    def _block(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "lossless": self.lossless, "effort": self.effort}
        if not self.lossless:
            out["distance"] = self.distance
        return out

    def with_effort(self, effort: int) -> "JpegxlFrames":
        return dataclasses.replace(self, effort=int(effort))

    def pipeline(self, dtype: np.dtype, transpose: tuple[int, ...] | None) -> dict[str, Any]:
        dtype = np.dtype(dtype)
        filters: list[Any] = [TransposeCodec(order=transpose)] if transpose is not None else []
        if dtype in JPEGXL_OFFSET:
            info = np.iinfo(dtype)
            filters.append(
                ShapedFixedScaleOffset(offset=int(info.min), scale=1, dtype=dtype.str, astype=JPEGXL_OFFSET[dtype].str)
            )
        elif dtype == np.dtype(bool):
            filters.append(AsType(encode_dtype="|u1", decode_dtype="|b1"))
        # Non-colour chunks are grey frames: without this, a chunk only 2-4 pixels wide would be taken for
        # grey+alpha/RGB/RGBA and lossy coding would treat neighbouring pixels as colours.
        photometric = None if transpose is not None else "GRAY"
        if self.lossless:
            serializer = self.serializer_class(lossless=True, effort=self.effort, photometric=photometric)
        else:
            serializer = self.serializer_class(
                lossless=False, distance=self.distance, effort=self.effort, photometric=photometric
            )
        return {"filters": filters or None, "serializer": serializer, "compressors": self._compressors()}

    def plane_reader(self, array: Any, where: str) -> Any:
        from .frames import FrameDecoder, frame_decodable

        return FrameDecoder(array, where) if frame_decodable(array) else None


@dataclass(frozen=True)
class JpegxlStrip(JpegxlFrames):
    """JPEG XL, a whole brick as one frame of its z-slices stacked vertically (lossless volumes, format 2)."""

    effort: int = STRIP_EFFORT

    format_version: ClassVar[int] = 2
    serializer_class: ClassVar[type] = StripJpegxl

    @classmethod
    def matches(cls, block: dict[str, Any]) -> bool:
        return block.get("name") == cls.name and block.get("bricks") == "strip" and not block.get("legacy")

    @classmethod
    def from_json(cls, block: dict[str, Any]) -> "JpegxlStrip":
        effort = block.get("effort", STRIP_EFFORT)
        return cls(lossless=True, effort=int(effort) if isinstance(effort, int) else STRIP_EFFORT)

    def _block(self) -> dict[str, Any]:
        return {"name": self.name, "lossless": True, "effort": self.effort, "bricks": "strip"}

    def adopt(self, array: Any) -> Any:
        return _adopt_serializer(array, StripJpegxl)

    def plane_reader(self, array: Any, where: str) -> Any:
        return None  # libjxl cannot decode part of a frame: planes come from whole bricks (cached)


SLAB = 16  # z-planes per slab (docs/BENCHMARKS.md, "3D brick layout": whole bricks 12 % slower, z-planes 3.5x faster)


def slab_layout(chunks: tuple[int, ...], shape: tuple[int, ...], axes: str, slab: int) -> tuple[tuple[int, ...], int]:
    """``(shard shape, planes per slab)`` of a slab-brick level of ``shape`` whose chunks (clipped to it) are
    ``chunks``. Zarr's inner chunks tile their shard exactly: a chunk thinner than a slab is one slab; a chunk z
    that is not a multiple of ``slab`` takes its largest divisor if that is at least half a slab (or the chunk
    is not the level's last along z), else (a level held in one chunk along z, e.g. 37 planes) the shard is
    rounded up to whole slabs."""
    zi = axes.index("z")
    z = chunks[zi]
    if z <= slab or z % slab == 0:
        return chunks, min(z, slab)
    divisor = max(d for d in range(1, slab + 1) if z % d == 0)
    if 2 * divisor >= slab or z < shape[zi]:
        return chunks, divisor
    return chunks[:zi] + (-(-z // slab) * slab,) + chunks[zi + 1 :], slab


@dataclass(frozen=True)
class JpegxlSlabs(JpegxlStrip):
    """JPEG XL bricks as Zarr shards of ``slab``-plane z-slabs, each slab one strip frame (lossless volumes,
    format 4): a z-plane decodes one slab, a whole brick every slab with the core's decoder."""

    slab: int = SLAB

    format_version: ClassVar[int] = 4

    @classmethod
    def matches(cls, block: dict[str, Any]) -> bool:
        return block.get("name") == cls.name and block.get("bricks") == "slabs" and not block.get("legacy")

    @classmethod
    def from_json(cls, block: dict[str, Any]) -> "JpegxlSlabs":
        effort, slab = block.get("effort", STRIP_EFFORT), block.get("slab", SLAB)
        return cls(lossless=True, effort=int(effort) if isinstance(effort, int) else STRIP_EFFORT,
                   slab=slab if isinstance(slab, int) and not isinstance(slab, bool) and 1 <= slab <= 4096 else SLAB)

    def _block(self) -> dict[str, Any]:
        return {"name": self.name, "lossless": True, "effort": self.effort, "bricks": "slabs", "slab": self.slab}

    def array_options(self, dtype: np.dtype, transpose: tuple[int, ...] | None, chunks: tuple[int, ...],
                      shape: tuple[int, ...], axes: str) -> dict[str, Any]:
        options = self.pipeline(dtype, transpose)
        if "z" not in axes or transpose is not None:
            # 2-D arrays, and colour volumes (zarr checks inner chunks against the chunk before the filters, so a
            # channel-last transpose cannot come before the shards): plain strip chunks
            return {"chunks": chunks, **options}
        shard, planes = slab_layout(chunks, shape, axes, self.slab)
        inner = tuple(planes if a == "z" else n for a, n in zip(axes, shard))
        # An identity transpose when no filter is needed: zarr-python takes a lone sharding codec's inner chunks
        # for the array's chunks; after a filter, the shard is the chunk (what every Mzarr reader and writer uses).
        filters = options["filters"] or [TransposeCodec(order=tuple(range(len(axes))))]
        # the checksum of a slab brick is each slab's (a z-plane checks the one slab it decodes); the index has its own
        inner_codecs = [options["serializer"], *(options["compressors"] or [])]
        return {"chunks": shard, "filters": filters, "compressors": None,
                "serializer": SlabSharding(chunk_shape=inner, codecs=inner_codecs, index_location="end")}

    def adopt(self, array: Any) -> Any:
        return _adopt_serializer(array, StripJpegxl, SlabSharding)

    def plane_reader(self, array: Any, where: str) -> Any:
        from .chunk_reader import SlabDecoder

        return SlabDecoder.for_array(array, where)


DEFAULT_SLIDE_DISTANCE = 3.0  # levels 1+ of recompressed slides (docs/BENCHMARKS.md, "Whole-slide images")


@dataclass(frozen=True)
class JpegxlJpeg(JpegxlFrames):
    """A whole-slide image whose level 0 holds the source's JPEG tiles transcoded without loss (format 3); coarser
    levels and edited chunks lossy JPEG XL at ``distance``."""

    lossless: bool = False
    distance: float | None = DEFAULT_SLIDE_DISTANCE

    format_version: ClassVar[int] = 3
    serializer_class: ClassVar[type] = RecompressedJpegxl

    @classmethod
    def matches(cls, block: dict[str, Any]) -> bool:
        return block.get("name") == cls.name and block.get("jpeg") == "recompressed" and not block.get("legacy")

    @classmethod
    def from_json(cls, block: dict[str, Any]) -> "JpegxlJpeg":
        distance = block.get("distance")
        effort = block.get("effort", DEFAULT_EFFORT)
        return cls(
            distance=float(distance) if isinstance(distance, (int, float)) and distance > 0 else DEFAULT_SLIDE_DISTANCE,
            effort=int(effort) if isinstance(effort, int) else DEFAULT_EFFORT,
        )

    def _block(self) -> dict[str, Any]:
        return {"name": self.name, "lossless": False, "distance": self.distance, "effort": self.effort,
                "jpeg": "recompressed"}

    def adopt(self, array: Any) -> Any:
        return _adopt_serializer(array, RecompressedJpegxl)

    def plane_reader(self, array: Any, where: str) -> Any:
        return None  # 2-D slides: whole chunks

    @staticmethod
    def transcode(jpeg: bytes) -> bytes:
        """A JPEG stream as JPEG XL that reconstructs it bit for bit (libjxl; ~20 % smaller). Raises ValueError
        (imagecodecs' error) for JPEGs libjxl cannot transcode (12-bit, arithmetic coding, odd layouts)."""
        return bytes(imagecodecs.jpegxl_encode_jpeg(jpeg))


@dataclass(frozen=True)
class Zstd(StorageCodec):
    """Raw little-endian bytes + zstd: every dtype JPEG XL cannot hold exactly."""

    level: int = ZSTD_LEVEL

    name: ClassVar[str] = "zstd"

    @classmethod
    def from_json(cls, block: dict[str, Any]) -> "Zstd":
        level = block.get("level", ZSTD_LEVEL)
        return cls(level=int(level) if isinstance(level, int) else ZSTD_LEVEL)

    def _block(self) -> dict[str, Any]:
        return {"name": self.name, "lossless": True, "level": self.level}

    def pipeline(self, dtype: np.dtype, transpose: tuple[int, ...] | None) -> dict[str, Any]:
        filters = [TransposeCodec(order=transpose)] if transpose is not None else None
        return {"filters": filters, "serializer": BytesCodec(), "compressors": self._compressors(GuardedZstd(level=self.level))}


BLOSC_CNAME, BLOSC_LEVEL, BLOSC_SHUFFLE = "zstd", 5, "shuffle"  # docs/BENCHMARKS.md, "Blosc bricks (format 6)"


@dataclass(frozen=True)
class Blosc(StorageCodec):
    """Raw little-endian bytes + Blosc (zstd, byte shuffle): lossless volumes of 16-bit samples (format 6). On
    scanners' 12-16-bit volumes it is within 1-7 % of lossless JPEG XL's size and decodes 5-6x faster,
    which is what planes along y and x, patches and windows wait for (docs/BENCHMARKS.md). Zarr's standard
    ``blosc`` codec: every Zarr v3 reader reads it."""

    cname: str = BLOSC_CNAME
    level: int = BLOSC_LEVEL
    shuffle: str = BLOSC_SHUFFLE

    name: ClassVar[str] = "blosc"
    format_version: ClassVar[int] = 6

    @classmethod
    def from_json(cls, block: dict[str, Any]) -> "Blosc":
        cname, level, shuffle = block.get("cname"), block.get("level"), block.get("shuffle")
        return cls(cname=cname if cname in ("zstd", "lz4", "lz4hc", "zlib", "blosclz") else BLOSC_CNAME,
                   level=level if isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 9 else BLOSC_LEVEL,
                   shuffle=shuffle if shuffle in ("noshuffle", "shuffle", "bitshuffle") else BLOSC_SHUFFLE)

    def _block(self) -> dict[str, Any]:
        return {"name": self.name, "lossless": True, "cname": self.cname, "level": self.level, "shuffle": self.shuffle}

    def pipeline(self, dtype: np.dtype, transpose: tuple[int, ...] | None) -> dict[str, Any]:
        filters = [TransposeCodec(order=transpose)] if transpose is not None else None
        blosc = GuardedBlosc(cname=cast(Any, self.cname), clevel=self.level, shuffle=cast(Any, self.shuffle),
                             typesize=np.dtype(dtype).itemsize)
        return {"filters": filters, "serializer": BytesCodec(), "compressors": self._compressors(blosc)}


# -- registry --------------------------------------------------------------------------------------------------------
_STORAGE_CODECS: list[type[StorageCodec]] = []
_registered = False


def register_storage_codec(cls: type[StorageCodec]) -> type[StorageCodec]:
    """Make files whose codec block ``cls.matches`` open with ``cls`` (later registrations are tried first)."""
    if cls not in _STORAGE_CODECS:
        _STORAGE_CODECS.insert(0, cls)
    return cls


def register_codecs() -> None:
    """Register Mzarr's codecs, once: zarr builds the guarded JPEG XL / zstd classes and the shape-keeping offset
    filter whenever it opens an array, imagecodecs' other zarr codecs are known (OME-Zarr/TIFF sources), and the
    storage codecs are known to :func:`codec_from_json`. Idempotent; ``mzarr_core/__init__.py`` calls it."""
    global _registered
    if _registered:
        return
    import imagecodecs.zarr

    imagecodecs.zarr.register_codecs(verbose=False)
    register_zarr_codec("numcodecs.fixedscaleoffset", ShapedFixedScaleOffset)
    register_guarded_codecs()  # JPEG XL and zstd chunks never decode to more than their chunk shape x dtype
    # Slab bricks put a filter before the sharding codec on purpose (the shard is the array's chunk): zarr's notice
    # that this turns off its partial shard reads is about a path Mzarr does not use (it reads slabs itself).
    warnings.filterwarnings("ignore", message="Combining a `sharding_indexed` codec disables partial reads")
    for cls in (Zstd, JpegxlFrames, JpegxlStrip, JpegxlJpeg, JpegxlSlabs, Blosc):
        register_storage_codec(cls)
    _registered = True


def codec_from_json(block: Any) -> StorageCodec | None:
    """The storage codec a file's ``codec`` block names; None for files of other tools, legacy files and blocks
    no registered class matches (they are read through their zarr pipeline)."""
    if not isinstance(block, dict):
        return None
    for cls in _STORAGE_CODECS:
        if cls.matches(block):
            codec = cls.from_json(block)
            return dataclasses.replace(codec, checksum=True) if block.get("checksum") == "crc32c" else codec
    return None


def format_version_of(block: Any) -> int:
    """The lowest format version that reads a file whose codec block is ``block``."""
    codec = codec_from_json(block)
    return codec.version if codec is not None else 1


# -- choosing ----------------------------------------------------------------------------------------------------------
def quality_to_distance(quality: float) -> float:
    """libjxl's mapping from a JPEG-like quality (0-100) to a Butteraugli distance."""
    if not 0 <= quality <= 100:
        raise MzarrValueError(f"quality must be between 0 and 100, got {quality}")
    if quality >= 30:
        return 0.1 + (100 - quality) * 0.09
    return 53.0 / 3000.0 * quality * quality - 23.0 / 20.0 * quality + 25.0


def check_dtype(dtype: np.dtype) -> np.dtype:
    """Return the dtype if Mzarr can store it, else raise a clear MzarrDtypeError."""
    dtype = np.dtype(dtype)
    if dtype.byteorder == ">":
        dtype = dtype.newbyteorder("<")
    if dtype not in SUPPORTED_DTYPES:
        names = ", ".join(str(d) for d in SUPPORTED_DTYPES)
        raise MzarrDtypeError(
            f"dtype {dtype} cannot be stored in a .mzarr; supported dtypes are {names}. "
            f"Convert the array first, e.g. array.astype('float32')."
        )
    return dtype


def recompressing_codec(dtype: np.dtype, axes: str, chunks: Any, distance: float | None, effort: int | None,
                        is_label: bool, checksum: bool = True) -> JpegxlJpeg:
    """The codec of an image whose level 0 is JPEG tiles transcoded without loss (``save(jpeg_tiles=...)``):
    2-D uint8 (grey or RGB) only, with the tile shape as ``chunks``; coarser levels lossy at ``distance``."""
    if np.dtype(dtype) != np.dtype("uint8") or axes not in ("yx", "yxc"):
        raise MzarrValueError(f"JPEG tiles can be kept only in 2-D uint8 images (yx or yxc), not {axes!r} {np.dtype(dtype)}")
    if is_label:
        raise MzarrValueError("a labels image cannot be stored from JPEG tiles: JPEG is lossy")
    if chunks is None:
        raise MzarrValueError("jpeg_tiles needs chunks= (the JPEG tile shape, e.g. (256, 256, 3))")
    distance = DEFAULT_SLIDE_DISTANCE if distance is None else float(distance)
    if not 0.0 < distance <= 25.0:
        raise MzarrValueError(f"distance must be in (0, 25], got {distance}")
    if effort is not None and not 1 <= int(effort) <= 10:
        raise MzarrValueError(f"effort must be between 1 and 10, got {effort}")
    return JpegxlJpeg(distance=distance, effort=DEFAULT_EFFORT if effort is None else int(effort), checksum=checksum)


def choose_codec(
    dtype: np.dtype,
    *,
    lossless: bool = True,
    distance: float | None = None,
    quality: float | None = None,
    effort: int | None = None,
    is_label: bool = False,
    volume: bool = False,
    bricks: str | None = None,
    checksum: bool = True,
) -> StorageCodec:
    """Pick the storage codec for a dtype, the user's lossy/lossless request and whether the image is a volume
    (lossless volumes of 16-bit samples are Blosc bricks, other lossless JPEG XL volumes slab bricks, unless
    ``bricks`` says ``"blosc"``, ``"slabs"``, ``"strip"`` or ``"frames"``), refusing impossible combinations. ``checksum``: every chunk carries a crc32c (format 5; off only for readers before it)."""
    return dataclasses.replace(_choose(dtype, lossless, distance, quality, effort, is_label, volume, bricks),
                               checksum=bool(checksum))


def _choose(dtype: np.dtype, lossless: bool, distance: float | None, quality: float | None, effort: int | None,
            is_label: bool, volume: bool, bricks: str | None) -> StorageCodec:
    dtype = check_dtype(dtype)
    if bricks not in (None, *BRICKS):
        raise MzarrValueError(f"bricks must be one of {', '.join(repr(b) for b in BRICKS)}, got {bricks!r}")
    if effort is not None:
        effort = int(effort)
        if not 1 <= effort <= 10:
            raise MzarrValueError(f"effort must be between 1 and 10, got {effort}")
    if distance is not None or quality is not None:
        lossless = False
    if not lossless:
        if is_label:
            raise MzarrValueError("label images must be stored lossless: lossy compression would invent labels")
        if dtype not in JPEGXL_NATIVE and dtype not in JPEGXL_OFFSET:
            raise MzarrValueError(
                f"lossy compression is available for uint8, uint16, int8 and int16 images, not {dtype}; "
                "save lossless or convert the array first"
            )
        if quality is not None:
            distance = quality_to_distance(quality)
        distance = 1.0 if distance is None else float(distance)
        if not 0.0 < distance <= 25.0:
            raise MzarrValueError(f"distance must be in (0, 25], got {distance}")
        # lossy volumes keep one frame per z: a lossy strip would let JPEG XL's smoothing filters mix slices
        if bricks in ("strip", "slabs", "blosc"):
            raise MzarrValueError(f"{bricks} bricks are lossless only: save lossy volumes with bricks='frames' (default)")
        return JpegxlFrames(lossless=False, distance=distance, effort=DEFAULT_EFFORT if effort is None else effort)
    if is_label:
        # segmentations: zstd decodes a label chunk 9-22x faster than lossless JPEG XL (what the overlay and painting
        # wait for) at a size from half to twice JPEG XL's (docs/BENCHMARKS.md, "Label image codec")
        return Zstd()
    if volume and (bricks == "blosc" or (bricks is None and dtype in BLOSC_VOLUME_DTYPES)):
        return Blosc()
    if bricks == "blosc":
        raise MzarrValueError("bricks='blosc' is for volumes (images with a z axis); 2-D images are stored as JPEG XL tiles")
    if dtype in JPEGXL_NATIVE or dtype in JPEGXL_OFFSET or dtype == np.dtype(bool):
        if volume and bricks == "strip":
            return JpegxlStrip(effort=STRIP_EFFORT if effort is None else effort)
        if volume and bricks != "frames":
            return JpegxlSlabs(effort=STRIP_EFFORT if effort is None else effort)
        return JpegxlFrames(effort=DEFAULT_EFFORT if effort is None else effort)
    return Zstd()
