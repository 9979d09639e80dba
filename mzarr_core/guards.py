"""Decompression-bomb guards: a chunk may never decode to more than its array's chunk shape x dtype.

A stored chunk is untrusted input. A valid 40000 x 40000 JPEG XL of zeros is 156 KiB, a zstd frame of 4 GiB of
zeros is 128 KiB; decoded blindly, either one puts gigabytes in the reader's memory. The reader already knows how
large every chunk decodes (the array metadata: chunk shape and dtype), so each codec here checks what the stream
declares against that before decoding anything, and decodes into a buffer of exactly that size:

* JPEG XL: the codestream header (SizeHeader and the image metadata up to the colour space: width, height,
  bit depth, channels) is parsed here from the first bytes (microseconds; bare codestream or ISOBMFF container).
  The decode then writes into a preallocated array of the chunk's shape, which makes imagecodecs refuse, before
  any pixel is allocated, a stream whose frame count, channels or sample type differ (a multi-frame bomb).
* zstd: the frame header's declared content size is checked, and the decode writes into a buffer of the chunk's
  byte size, so frames without a declared size, or several concatenated frames, cannot grow memory either.
* Blosc (format 6 volumes): the 16-byte header's uncompressed size must be the chunk's byte size and its compressed
  size the stored length, and the decode writes into a buffer of exactly the chunk's size.
* JPEG XL holding a recompressed JPEG (a ``jbrd`` box, format 3 slides): the JPEG XL header is checked as above,
  the JPEG is reconstructed into a buffer of at most :func:`jpeg_limit` bytes, its frame header (size, components,
  precision) is checked against the chunk, and libjpeg decodes into a preallocated chunk-sized array.

Refusals raise :class:`~mzarr_core.errors.ChunkTooLargeError`. The codec classes keep the stock names and
configurations ("imagecodecs_jpegxl", "zstd", "blosc"): files are unchanged and stock readers still read them.
:func:`register_guarded_codecs` makes zarr build the guarded classes whenever it opens an array.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import imagecodecs
import imagecodecs.numcodecs
import numpy as np
import zarr
from imagecodecs.zarr import Jpegxl
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from zarr.registry import register_codec

from .errors import ChunkChecksumError, ChunkTooLargeError

__all__ = [
    "BoundedJpegxlV2",
    "GuardedBlosc",
    "decode_blosc",
    "GuardedJpegxl",
    "GuardedZstd",
    "JxlHeader",
    "check_jpegxl_header",
    "decode_jpegxl",
    "decode_jpegxl_chunk",
    "decode_recompressed_jpeg",
    "has_jpeg_reconstruction",
    "jpeg_frame_header",
    "decode_zstd",
    "guard_v2_array",
    "shard_index",
    "read_jpegxl_header",
    "register_guarded_codecs",
    "register_zarr_codec",
    "zstd_declared_size",
]

HOSTILE = "the file is damaged or was crafted to exhaust memory (a decompression bomb); refused before decoding"


def _human(nbytes: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} bytes"


def _chunk_text(shape: tuple[int, ...], dtype: np.dtype) -> str:
    nbytes = math.prod(shape) * dtype.itemsize
    return f"this array's chunks are {tuple(shape)} {dtype} ({_human(nbytes)})"


# -- JPEG XL header --------------------------------------------------------------------------------------------
_JXL_CODESTREAM = b"\xff\x0a"
_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_HEADER_BYTES = 4096  # plenty for SizeHeader + ImageMetadata up to the colour space (names are <= 1071 bytes)
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}
# U32 distributions as (bits, offset); Val(v) is (0, v)
_SIZE = ((9, 1), (13, 1), (18, 1), (30, 1))
_PREVIEW_DIV8 = ((0, 16), (0, 32), (5, 1), (9, 33))
_PREVIEW = ((6, 1), (8, 65), (10, 321), (12, 1345))
_ENUM = ((0, 0), (0, 1), (4, 2), (6, 18))
_INT_BITS = ((0, 8), (0, 10), (0, 12), (6, 1))
_FLOAT_BITS = ((0, 32), (0, 16), (0, 24), (6, 1))
_ALPHA, _SPOT_COLOUR, _CFA = 0, 2, 5  # ExtraChannel types
_GREY = 1  # ColorSpace::kGray


class _Truncated(Exception):
    """The header needs more bytes than were given: no verdict (libjxl will judge the stream)."""


class _BitReader:
    """JPEG XL's bit order: least significant bit of each byte first."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos, self.end = data, pos, len(data) * 8

    def bits(self, n: int) -> int:
        if n == 0:
            return 0
        pos = self.pos
        if pos + n > self.end:
            raise _Truncated
        self.pos = pos + n
        i, shift = pos >> 3, pos & 7
        word = int.from_bytes(self.data[i : i + (shift + n + 7) // 8], "little")
        return (word >> shift) & ((1 << n) - 1)

    def u32(self, dist: tuple[tuple[int, int], ...]) -> int:
        n, offset = dist[self.bits(2)]
        return self.bits(n) + offset

    def skip(self, n: int) -> None:
        if self.pos + n > self.end:
            raise _Truncated
        self.pos += n


@dataclass(frozen=True)
class JxlHeader:
    """What a JPEG XL codestream declares about each frame, as imagecodecs would decode it."""

    width: int
    height: int
    bits_per_sample: int
    exponent_bits: int
    colour_channels: int  # 1 (grey) or 3
    extra_channels: tuple[int, ...]  # the ExtraChannel type of each

    @property
    def samples(self) -> int:
        """Values per pixel of imagecodecs' output (it keeps alpha, or all extras of a grey image)."""
        extra = len(self.extra_channels)
        if extra == 0:
            return self.colour_channels
        if _ALPHA in self.extra_channels:
            return self.colour_channels + 1
        return self.colour_channels if self.colour_channels != 1 else 1 + extra

    @property
    def dtype(self) -> np.dtype | None:
        """imagecodecs' output dtype, None for sample types it refuses anyway (float24...)."""
        if self.exponent_bits:
            floats: dict[int, np.dtype] = {32: np.dtype("float32"), 16: np.dtype("float16")}
            return floats.get(self.bits_per_sample)
        if self.bits_per_sample <= 8:
            return np.dtype("uint8")
        return np.dtype("uint16") if self.bits_per_sample <= 16 else np.dtype("float32")

    @property
    def values_per_frame(self) -> int:
        return self.width * self.height * self.samples

    def describe(self) -> str:
        channels = f"{self.samples} channel{'s' if self.samples != 1 else ''}"
        sample = f"{self.dtype}" if self.dtype is not None else f"{self.bits_per_sample}-bit float"
        nbytes = self.values_per_frame * (self.dtype.itemsize if self.dtype is not None else 4)
        return f"{self.width} x {self.height} pixels x {channels} of {sample} per frame ({_human(nbytes)})"


def _jxl_codestream_start(data: Any) -> bytes | None:
    """The first bytes of the codestream: the data itself, or gathered from the container's jxlc/jxlp boxes."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    if bytes(view[:2]) == _JXL_CODESTREAM:
        return bytes(view[:_HEADER_BYTES])
    if bytes(view[:12]) != _JXL_CONTAINER:
        return None
    parts: list[bytes] = []
    have, pos, n = 0, 12, len(view)
    while pos + 8 <= n and have < _HEADER_BYTES:
        head = bytes(view[pos : pos + 16])
        size, kind, start = int.from_bytes(head[:4], "big"), head[4:8], 8
        if size == 1:
            if len(head) < 16:
                return None
            size, start = int.from_bytes(head[8:16], "big"), 16
        elif size == 0:
            size = n - pos
        if size < start:
            return None
        end = min(pos + size, n)
        if kind == b"jxlc":
            parts.append(bytes(view[pos + start : min(end, pos + start + _HEADER_BYTES - have)]))
            break
        if kind == b"jxlp":
            piece = bytes(view[pos + start + 4 : min(end, pos + start + 4 + _HEADER_BYTES - have)])
            parts.append(piece)
            have += len(piece)
        pos += size
    stream = b"".join(parts)
    return stream if stream[:2] == _JXL_CODESTREAM else None


def _size_header(r: _BitReader) -> tuple[int, int]:
    small = r.bits(1)
    height = (r.bits(5) + 1) * 8 if small else r.u32(_SIZE)
    ratio = r.bits(3)
    if ratio:
        num, den = _RATIOS[ratio]
        width = height * num // den
    else:
        width = (r.bits(5) + 1) * 8 if small else r.u32(_SIZE)
    return width, height


def _bit_depth(r: _BitReader) -> tuple[int, int]:
    if r.bits(1):  # floating point
        return r.u32(_FLOAT_BITS), r.bits(4) + 1
    return r.u32(_INT_BITS), 0


def read_jpegxl_header(data: Any) -> JxlHeader | None:
    """Parse the codestream's SizeHeader and ImageMetadata (up to the colour space) from ``data``'s first bytes.

    Returns None when the bytes are not a JPEG XL stream or end inside the header: then there is nothing to
    check here and libjxl decides (the decode into a chunk-sized array still bounds memory).
    """
    stream = _jxl_codestream_start(data)
    if stream is None:
        return None
    r = _BitReader(stream, 16)
    try:
        width, height = _size_header(r)
        if r.bits(1):  # ImageMetadata.all_default: 8-bit sRGB, no extra channels
            return JxlHeader(width, height, 8, 0, 3, ())
        if r.bits(1):  # extra_fields
            r.skip(3)  # orientation
            if r.bits(1):  # intrinsic size
                _size_header(r)
            if r.bits(1):  # preview
                div8 = r.bits(1)
                r.u32(_PREVIEW_DIV8 if div8 else _PREVIEW)
                if r.bits(3) == 0:
                    r.u32(_PREVIEW_DIV8 if div8 else _PREVIEW)
            if r.bits(1):  # animation
                r.u32(((0, 100), (0, 1000), (10, 1), (30, 1)))
                r.u32(((0, 1), (0, 1001), (8, 1), (10, 1)))
                r.u32(((0, 0), (3, 0), (16, 0), (32, 0)))
                r.skip(1)
        bits, exponent = _bit_depth(r)
        r.skip(1)  # modular_16_bit_buffer_sufficient
        extra: list[int] = []
        for _ in range(r.u32(((0, 0), (0, 1), (4, 2), (12, 1)))):
            if r.bits(1):  # all_default: 8-bit alpha
                extra.append(_ALPHA)
                continue
            kind = r.u32(_ENUM)
            _bit_depth(r)
            r.u32(((0, 0), (0, 3), (0, 4), (3, 1)))  # dim_shift
            r.skip(8 * r.u32(((0, 0), (4, 0), (5, 16), (10, 48))))  # name
            if kind == _ALPHA:
                r.skip(1)
            elif kind == _SPOT_COLOUR:
                r.skip(4 * 16)
            elif kind == _CFA:
                r.u32(((0, 1), (2, 0), (4, 3), (8, 19)))
            extra.append(kind)
        r.skip(1)  # xyb_encoded
        if r.bits(1):  # ColourEncoding.all_default: sRGB
            colour_space = 0
        else:
            r.skip(1)  # want_icc
            colour_space = r.u32(_ENUM)
    except _Truncated:
        return None
    return JxlHeader(width, height, bits, exponent, 1 if colour_space == _GREY else 3, tuple(extra))


def check_jpegxl_header(header: JxlHeader, shape: tuple[int, ...], dtype: np.dtype, what: str | None = None) -> None:
    """Raise ChunkTooLargeError if one frame of ``header`` holds more than a chunk of ``shape`` and ``dtype``
    (or deeper samples). ``what`` describes that chunk in the message."""
    dtype = np.dtype(dtype)
    declared = header.dtype
    too_deep = declared is not None and declared.itemsize > dtype.itemsize
    if too_deep or header.values_per_frame > math.prod(shape):
        what = what or _chunk_text(shape, dtype)
        raise ChunkTooLargeError(f"its JPEG XL stream declares {header.describe()}, but {what}: {HOSTILE}")


_OUT_SHAPE = re.compile(r"invalid out\.shape=\(([\d, ]*)\), shape=\(([\d, ]*)\)")
_OUT_DTYPE = re.compile(r"invalid out\.dtype=dtype\('(\w+)'\), dtype=<class 'numpy\.(\w+)'>")


def _decoded_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The array imagecodecs' Jpegxl codec encodes for a chunk of ``shape`` (squeezed, at least 2-D)."""
    squeezed = tuple(n for n in shape if n != 1)
    return squeezed if len(squeezed) >= 2 else (1,) * (2 - len(squeezed)) + squeezed


def decode_jpegxl(
    data: Any,
    shape: tuple[int, ...],
    dtype: Any,
    *,
    index: int | None = None,
    keeporientation: bool | None = None,
    numthreads: int | None = None,
    what: str | None = None,
) -> np.ndarray:
    """``imagecodecs.jpegxl_decode`` of a chunk (or of frame ``index`` of it) that decodes to ``shape`` x
    ``dtype``, refusing with ChunkTooLargeError, before allocating, a stream that declares more.

    The header check catches oversized frames, channels and samples; the preallocated output catches the rest
    (more frames than the chunk's z): imagecodecs compares it with the stream's basic info before decoding.
    A stream declaring *less* (an unusual but legitimate layout) is decoded into an array of its own size.
    ``what`` describes the expected chunk in messages (default: "this array's chunks are <shape> <dtype>").
    """
    dtype = np.dtype(dtype)
    what = what or _chunk_text(shape, dtype)
    header = read_jpegxl_header(data)
    if header is not None:
        check_jpegxl_header(header, shape, dtype, what)
    limit = math.prod(shape) * dtype.itemsize
    out_shape = _decoded_shape(shape)
    if header is not None and index is None and len(out_shape) > 2 and header.values_per_frame == math.prod(shape):
        # one frame holds the whole chunk (a strip brick): decode it as that frame, no retry
        out_shape = (header.height, header.width) + ((header.samples,) if header.samples > 1 else ())
    out_dtype = header.dtype if header is not None and header.dtype is not None else dtype
    for _ in range(3):
        out = np.empty(out_shape, out_dtype)
        try:
            return imagecodecs.jpegxl_decode(
                data, index=index, keeporientation=keeporientation, numthreads=numthreads, out=out
            )
        except ValueError as exc:
            message = str(exc)
            shape_match, dtype_match = _OUT_SHAPE.search(message), _OUT_DTYPE.search(message)
            if shape_match:
                out_shape = tuple(int(n) for n in shape_match.group(2).split(",") if n.strip())
            elif dtype_match:
                out_dtype = np.dtype(dtype_match.group(2))
            else:
                raise
            if math.prod(out_shape) * out_dtype.itemsize > limit:
                expected = _decoded_shape(shape)
                more_frames = len(out_shape) > len(expected) or (len(out_shape) >= 3 and out_shape[1:] == expected[1:])
                frames = f"{out_shape[0]} frames: " if more_frames else ""
                nbytes = math.prod(out_shape) * out_dtype.itemsize
                raise ChunkTooLargeError(
                    f"its JPEG XL stream declares {frames}an array of {out_shape} {out_dtype} ({_human(nbytes)}), "
                    f"but {what}: {HOSTILE}"
                ) from None
    raise ValueError(f"JPEG XL stream does not decode to a {shape} {dtype} chunk")


# -- JPEG XL holding a recompressed JPEG (jbrd) ------------------------------------------------------------------
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def has_jpeg_reconstruction(data: Any) -> bool:
    """True if ``data`` is a JPEG XL container with a ``jbrd`` box (JPEG bitstream reconstruction data): a JPEG
    transcoded losslessly by libjxl, whose exact JPEG (and so libjpeg's pixels) can be rebuilt. A bare codestream
    (what Mzarr's lossy and lossless encoders write) never has one. Only box headers are read."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    if bytes(view[:12]) != _JXL_CONTAINER:
        return False
    pos, n = 12, len(view)
    for _ in range(64):  # jbrd comes right after ftyp (and jxll/jxlp) in libjxl's output
        if pos + 8 > n:
            return False
        head = bytes(view[pos : pos + 16])
        size, kind = int.from_bytes(head[:4], "big"), head[4:8]
        if kind == b"jbrd":
            return True
        if kind in (b"jxlc",) or size == 0:
            return False  # the rest of the file is the codestream
        if size == 1:
            if len(head) < 16:
                return False
            size = int.from_bytes(head[8:16], "big")
        if size < 8:
            return False
        pos += size
    return False


def jpeg_frame_header(jpeg: Any) -> tuple[int, int, int, int] | None:
    """(precision, height, width, components) from a JPEG stream's SOF segment; None if there is none."""
    view = memoryview(jpeg).cast("B") if not isinstance(jpeg, bytes) else jpeg
    n, pos = len(view), 2
    if bytes(view[:2]) != b"\xff\xd8":
        return None
    while pos + 4 <= n:
        if view[pos] != 0xFF:
            return None
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(bytes(view[pos + 2 : pos + 4]), "big")
        if marker in _JPEG_SOF:
            seg = bytes(view[pos + 4 : pos + 10])
            if len(seg) < 6:
                return None
            return seg[0], int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"), seg[5]
        if marker in (0xDA, 0xD9) or length < 2:
            return None
        pos += 2 + length
    return None


def jpeg_limit(values: int) -> int:
    """The most bytes a reconstructed JPEG of ``values`` samples may take: far above any real JPEG (even quality
    100 of noise stays under 2 bytes a sample), plus room for its markers (an ICC profile, EXIF...)."""
    return 4 * values + (1 << 20)


def decode_recompressed_jpeg(data: Any, shape: tuple[int, ...], dtype: Any, *, numthreads: int | None = None,
                             what: str | None = None) -> np.ndarray:
    """The pixels of the JPEG that ``data`` (JPEG XL with a ``jbrd`` box) reconstructs, as libjpeg decodes it:
    bit for bit what the source's own JPEG decoder gives (libjxl's own pixel decode of the same stream differs by up
    to 17 levels, 0.5 on average, on the test slides). Refuses, before allocating, a stream or a JPEG declaring
    more than a chunk of ``shape``."""
    dtype = np.dtype(dtype)
    what = what or _chunk_text(shape, dtype)
    values = math.prod(shape)
    header = read_jpegxl_header(data)
    if header is not None:
        check_jpegxl_header(header, shape, dtype, what)
    if dtype != np.dtype("uint8"):
        raise ValueError(f"a recompressed JPEG decodes to uint8, but {what}")
    try:
        jpeg = imagecodecs.jpegxl_decode_jpeg(  # its stub says int; None is its own default (all threads)
            data, numthreads=numthreads, out=bytearray(jpeg_limit(values))  # type: ignore[arg-type]
        )
    except ValueError as exc:
        if "resize" in str(exc):
            raise ChunkTooLargeError(
                f"its JPEG XL stream reconstructs a JPEG of more than {_human(jpeg_limit(values))}, but {what}: "
                f"{HOSTILE}"
            ) from None
        raise
    frame = jpeg_frame_header(jpeg)
    if frame is None:
        raise ValueError("the JPEG reconstructed from this JPEG XL stream has no frame header")
    precision, height, width, components = frame
    if precision != 8 or height * width * components > values or components not in (1, 3):
        raise ChunkTooLargeError(
            f"its reconstructed JPEG declares {width} x {height} pixels x {components} components of {precision} "
            f"bits, but {what}: {HOSTILE}"
        )
    out_shape = (height, width) + ((components,) if components > 1 else ())
    return imagecodecs.jpeg8_decode(jpeg, out=np.empty(out_shape, np.uint8))


def decode_jpegxl_chunk(data: Any, shape: tuple[int, ...], dtype: Any, *, numthreads: int | None = None,
                        keeporientation: bool | None = None, what: str | None = None) -> np.ndarray:
    """A chunk of an array whose chunks may be recompressed JPEGs: reconstructed and decoded as JPEG where
    ``data`` holds reconstruction data, decoded by libjxl otherwise (bounded either way)."""
    if has_jpeg_reconstruction(data):
        return decode_recompressed_jpeg(data, shape, dtype, numthreads=numthreads, what=what)
    return decode_jpegxl(data, shape, dtype, keeporientation=keeporientation, numthreads=numthreads, what=what)


# -- zstd ------------------------------------------------------------------------------------------------------
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_declared_size(data: Any) -> int | None:
    """The content size declared by the first zstd frame's header (skippable frames skipped), None if absent."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    pos, n = 0, len(view)
    while pos + 8 <= n:
        magic = bytes(view[pos : pos + 4])
        if magic[1:] == b"\x2a\x4d\x18" and 0x50 <= magic[0] <= 0x5F:  # skippable frame
            pos += 8 + int.from_bytes(bytes(view[pos + 4 : pos + 8]), "little")
            continue
        if magic != _ZSTD_MAGIC:
            return None
        descriptor = view[pos + 4]
        fcs_flag, single_segment, dict_flag = descriptor >> 6, (descriptor >> 5) & 1, descriptor & 3
        field = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
        if field == 0:
            return None
        start = pos + 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
        raw = bytes(view[start : start + field])
        if len(raw) < field:
            return None
        return int.from_bytes(raw, "little") + (256 if field == 2 else 0)
    return None


def decode_zstd(data: Any, limit: int, what: str) -> bytes | bytearray | memoryview:
    """zstd-decode ``data`` (one frame or several) into at most ``limit`` bytes, else ChunkTooLargeError.

    ``what`` describes the expected chunk for the message (e.g. "this array's chunks are (512, 512) float32").
    """
    declared = zstd_declared_size(data)
    if declared is not None and declared > limit:
        raise ChunkTooLargeError(
            f"its zstd stream declares {declared} bytes ({_human(declared)}) of content, but {what}: {HOSTILE}"
        )
    try:
        return imagecodecs.zstd_decode(data, out=max(limit, 1))
    except imagecodecs.ZstdError as exc:
        if "too small" in str(exc):
            raise ChunkTooLargeError(
                f"its zstd stream decodes to more than {limit} bytes, but {what}: {HOSTILE}"
            ) from None
        raise


# -- blosc (format 6) -------------------------------------------------------------------------------------------
BLOSC_HEADER = 16  # c-blosc 1.x: version, versionlz, flags, typesize, then nbytes, blocksize, cbytes (uint32 LE)


def decode_blosc(data: Any, nbytes: int, what: str) -> np.ndarray:
    """Blosc-decode ``data`` into exactly ``nbytes`` bytes (uint8), checking the header first: a declared size other
    than ``nbytes`` is refused (ChunkTooLargeError when larger), and so is a compressed size other than the stored
    length or a nonsensical block size (ValueError: the chunk is damaged), before the decoder runs."""
    view = np.frombuffer(data, np.uint8)
    if len(view) < BLOSC_HEADER:
        raise ValueError(f"the chunk holds {len(view)} bytes, fewer than a Blosc header ({BLOSC_HEADER}): it was cut short")
    version, flags, typesize = int(view[0]), int(view[2]), int(view[3])
    declared, blocksize, cbytes = (int.from_bytes(view[i : i + 4].tobytes(), "little") for i in (4, 8, 12))
    if declared > nbytes:
        raise ChunkTooLargeError(
            f"its Blosc header declares {declared} bytes ({_human(declared)}) of content, but {what}: {HOSTILE}"
        )
    if declared != nbytes:
        raise ValueError(f"its Blosc header declares {declared} bytes of content, but {what} ({nbytes} bytes)")
    if cbytes != len(view):
        raise ValueError(f"its Blosc header says {cbytes} bytes were stored, but {len(view)} are: the chunk was cut "
                         "short or overwritten")
    if version not in (1, 2) or typesize < 1 or (nbytes and not 0 < blocksize <= max(nbytes, BLOSC_HEADER)):
        raise ValueError(f"its Blosc header is not one Blosc writes (version {version}, type size {typesize}, "
                         f"block size {blocksize}, flags {flags:#x})")
    out = np.empty(nbytes, np.uint8)  # not zeroed: the decode writes every byte (its size was checked above)
    if nbytes:
        imagecodecs.blosc_decode(view, numthreads=1, out=memoryview(out))
    return out


class GuardedBlosc(BloscCodec):
    """zarr's blosc codec (same name and configuration) whose decode is :func:`decode_blosc`: the header checked
    against the chunk's byte size before anything is decoded, then c-blosc into a buffer of exactly that size."""

    def _decode_sync(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        shape, dtype = _spec(chunk_spec)
        if dtype is None:  # variable-size values: no bound known
            return super()._decode_sync(chunk_bytes, chunk_spec)
        decoded = decode_blosc(chunk_bytes.as_numpy_array(), math.prod(shape) * dtype.itemsize, _chunk_text(shape, dtype))
        return chunk_spec.prototype.buffer.from_array_like(decoded)


# -- crc32c checksums (format 5) -----------------------------------------------------------------------------
CHECKSUM_BYTES = 4  # Zarr's crc32c codec: the payload's crc32c, little-endian, after it


def _crc32c(data: Any) -> int:
    import google_crc32c  # a zarr dependency (hardware crc32c); takes bytes and arrays, not memoryviews

    return int(google_crc32c.value(data if isinstance(data, (bytes, np.ndarray)) else np.frombuffer(data, np.uint8)))


def append_crc32c(data: Any) -> bytes:
    """``data`` followed by its crc32c, as Zarr's ``crc32c`` codec encodes it."""
    payload = bytes(data)
    return payload + _crc32c(payload).to_bytes(CHECKSUM_BYTES, "little")


def strip_crc32c(data: Any, what: str = "the chunk") -> np.ndarray:
    """The payload of ``data`` (bytes written by Zarr's ``crc32c`` codec) once its checksum is checked, as uint8
    (no copy); raises :class:`~mzarr_core.errors.ChunkChecksumError` when the bytes changed since they were written."""
    blob = np.frombuffer(data, np.uint8)
    if len(blob) < CHECKSUM_BYTES:
        raise ChunkChecksumError(f"{what} holds {len(blob)} bytes, too few for its crc32c checksum: it was cut short")
    payload = blob[: len(blob) - CHECKSUM_BYTES]
    stored = int.from_bytes(blob[len(blob) - CHECKSUM_BYTES :].tobytes(), "little")
    if _crc32c(payload) != stored:
        raise ChunkChecksumError(
            f"the bytes of {what} do not match their crc32c checksum: they changed on disk after they were written"
        )
    return payload


def ends_with_crc32c(codecs: Any) -> bool:
    """Whether a codec list (zarr codec objects) ends with a crc32c checksum of the encoded bytes."""
    codecs = list(codecs)
    return bool(codecs) and isinstance(codecs[-1], Crc32cCodec)


class CheckedCrc32c(Crc32cCodec):
    """zarr's crc32c codec (same name and bytes) whose mismatch is a ChunkChecksumError saying what happened."""

    def _decode_sync(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        return chunk_spec.prototype.buffer.from_array_like(strip_crc32c(chunk_bytes.as_numpy_array()))


# -- Zarr v3 shards (slab bricks) ------------------------------------------------------------------------------
_EMPTY = 2**64 - 1  # an index entry (offset, length) of an inner chunk never written


def shard_index(data: Any, count: int) -> list[tuple[int, int] | None]:
    """The ``(offset, length)`` of each of the ``count`` inner chunks of a ``sharding_indexed`` shard whose index
    (little-endian uint64 pairs + crc32c, zarr's default) is at the end of ``data``; None for an inner chunk never
    written. Raises ValueError, naming what is wrong, for a shard whose index is short, fails its checksum, or
    points outside the shard's data."""
    import google_crc32c

    blob = memoryview(data).cast("B")
    size = 16 * count + 4
    if count < 1 or len(blob) < size:
        raise ValueError(f"the shard holds {len(blob)} bytes, less than its index of {count} inner chunks ({size} bytes)")
    index = blob[len(blob) - size : len(blob) - 4]
    if google_crc32c.value(bytes(index)) != int.from_bytes(blob[len(blob) - 4 :], "little"):
        raise ValueError("the shard index fails its crc32c checksum")
    entries = np.frombuffer(index, "<u8").reshape(count, 2).tolist()
    limit = len(blob) - size
    out: list[tuple[int, int] | None] = []
    for i, (offset, length) in enumerate(entries):
        if offset == _EMPTY and length == _EMPTY:
            out.append(None)
        elif length == 0 or offset + length > limit:
            raise ValueError(f"the shard index places inner chunk {i} at bytes {offset}..{offset + length}, outside the "
                             f"shard's {limit} bytes of data")
        else:
            out.append((offset, length))
    return out


# -- zarr v3 codecs --------------------------------------------------------------------------------------------
def _spec(chunk_spec: Any) -> tuple[tuple[int, ...], np.dtype | None]:
    """The chunk shape and NumPy dtype of a zarr ArraySpec (dtype None if it has no fixed size)."""
    try:
        dtype = np.dtype(chunk_spec.dtype.to_native_dtype())
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return tuple(chunk_spec.shape), None
    return tuple(chunk_spec.shape), (dtype if dtype.itemsize and not dtype.hasobject else None)


class GuardedJpegxl(Jpegxl):
    """imagecodecs' Zarr 3 JPEG XL codec that never decodes more than the chunk spec (same name and config)."""

    def _decode_sync(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        shape, dtype = _spec(chunk_spec)
        if dtype is None:
            return super()._decode_sync(chunk_bytes, chunk_spec)
        decoded = decode_jpegxl(
            chunk_bytes.as_numpy_array(),
            shape,
            dtype,
            index=self.index,
            keeporientation=self.keeporientation,
            numthreads=self.numthreads,
        )
        return chunk_spec.prototype.nd_buffer.from_numpy_array(decoded.reshape(shape))


class GuardedZstd(ZstdCodec):
    """zarr's zstd codec decoding into at most the chunk's byte size (same name and config)."""

    def _decode_sync(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        shape, dtype = _spec(chunk_spec)
        if dtype is None:  # variable-size values: no bound known
            return super()._decode_sync(chunk_bytes, chunk_spec)
        nbytes = math.prod(shape) * dtype.itemsize
        # The chunk's raw size, plus room for a compressing serializer's overhead when zstd follows one
        # (Mzarr always puts zstd after 'bytes', whose output is exactly nbytes).
        limit = nbytes + nbytes // 16 + 4096
        decoded = decode_zstd(chunk_bytes.as_numpy_array(), limit, _chunk_text(shape, dtype))
        return chunk_spec.prototype.buffer.from_bytes(decoded)


def register_zarr_codec(name: str, cls: type) -> None:
    """Make zarr build ``cls`` for the codec ``name`` (also when it reopens arrays from their metadata)."""
    register_codec(name, cls)
    codecs = dict(zarr.config.get("codecs", {}))
    codecs[name] = f"{cls.__module__}.{cls.__qualname__}"
    zarr.config.set({"codecs": codecs})


def register_guarded_codecs() -> None:
    """Make zarr build GuardedJpegxl for 'imagecodecs_jpegxl' and GuardedZstd for 'zstd' (also when reopening
    files). Idempotent."""
    register_zarr_codec("imagecodecs_jpegxl", GuardedJpegxl)
    register_zarr_codec("zstd", GuardedZstd)
    register_zarr_codec("blosc", GuardedBlosc)
    register_zarr_codec("crc32c", CheckedCrc32c)


# -- Zarr v2 (original Mzarr 0.0.x files) ----------------------------------------------------------------------
class BoundedJpegxlV2(imagecodecs.numcodecs.Jpegxl):
    """imagecodecs' numcodecs JPEG XL codec bound to one Zarr v2 array's chunk shape and dtype.

    numcodecs codecs are not told the chunk they decode, so this one is built per array by
    :func:`guard_v2_array`; its configuration (``get_config``) is the stock codec's.
    """

    def __init__(self, chunk_shape: tuple[int, ...], dtype: Any, **config: Any):
        super().__init__(**config)
        self._chunk_shape = tuple(int(n) for n in chunk_shape)
        self._dtype = np.dtype(dtype)

    def decode(self, buf: Any, out: Any = None) -> Any:
        decoded = decode_jpegxl(
            np.frombuffer(buf, np.uint8) if isinstance(buf, (bytes, bytearray)) else buf,
            self._chunk_shape,
            self._dtype,
            index=self.index,
            keeporientation=self.keeporientation,
            numthreads=self.numthreads,
        )
        if out is not None:
            np.copyto(np.asarray(out).reshape(decoded.shape), decoded, casting="no")
            return out
        return decoded


def guard_v2_array(array: Any) -> Any:
    """``array`` (a zarr.Array of format 2) reopened with a bounded JPEG XL compressor; unchanged if its
    compressor is not imagecodecs_jpegxl. Nothing is written: the metadata on disk keeps the stock codec."""
    import dataclasses

    meta = array.metadata
    compressor: Any = getattr(meta, "compressor", None)
    if getattr(compressor, "codec_id", None) != "imagecodecs_jpegxl" or isinstance(compressor, BoundedJpegxlV2):
        return array
    config = {k: v for k, v in compressor.get_config().items() if k != "id"}
    guarded = BoundedJpegxlV2(meta.chunks, meta.dtype.to_native_dtype(), **config)
    async_array = array._async_array
    bounded = type(async_array)(
        metadata=dataclasses.replace(meta, compressor=guarded),
        store_path=async_array.store_path,
        config=async_array.config,
    )
    return type(array)(bounded)
