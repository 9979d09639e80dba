"""Which Zarr codec pipeline stores which dtype: JPEG XL wherever it is bit-exact, zstd where it cannot be.

| dtype            | pipeline                                              | lossy allowed |
| ---------------- | ----------------------------------------------------- | ------------- |
| uint8, uint16    | imagecodecs_jpegxl                                    | yes           |
| int8, int16      | fixedscaleoffset (shift to unsigned) + jpegxl         | yes           |
| bool             | astype uint8 + jpegxl                                 | no            |
| everything else  | bytes + zstd (float16/32/64, (u)int32/64)             | no            |

Floats go to zstd because libjxl rejects NaN/Inf, which scientific images use as "no data".

Reading goes through :mod:`mzarr_core.guards` (registered below, same codec names on disk): a chunk never decodes to
more than its chunk shape x dtype, so a decompression bomb is refused with ChunkTooLargeError before allocating.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BytesCodec, TransposeCodec
from zarr.codecs.numcodecs import AsType, FixedScaleOffset
from zarr.registry import register_codec

from .errors import MzarrDtypeError, MzarrValueError
from .guards import GuardedJpegxl, GuardedZstd, register_guarded_codecs


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


def _use_shaped_fixedscaleoffset() -> None:
    """Make zarr build ShapedFixedScaleOffset for 'numcodecs.fixedscaleoffset' (also when reopening files)."""
    name = "numcodecs.fixedscaleoffset"
    register_codec(name, ShapedFixedScaleOffset)
    codecs = dict(zarr.config.get("codecs", {}))
    codecs[name] = f"{ShapedFixedScaleOffset.__module__}.{ShapedFixedScaleOffset.__qualname__}"
    zarr.config.set({"codecs": codecs})


_use_shaped_fixedscaleoffset()
register_guarded_codecs()  # JPEG XL and zstd chunks never decode to more than their chunk shape x dtype

JPEGXL_NATIVE = (np.dtype("uint8"), np.dtype("uint16"))
JPEGXL_OFFSET = {np.dtype("int8"): np.dtype("uint8"), np.dtype("int16"): np.dtype("uint16")}
ZSTD_DTYPES = tuple(
    np.dtype(d) for d in ("float16", "float32", "float64", "int32", "uint32", "int64", "uint64")
)
SUPPORTED_DTYPES = (*JPEGXL_NATIVE, *JPEGXL_OFFSET, np.dtype(bool), *ZSTD_DTYPES)
DEFAULT_EFFORT = 2  # libjxl effort: 2 decodes as fast as 1 and compresses within ~5% of 7 on photos/micrographs
ZSTD_LEVEL = 5


def quality_to_distance(quality: float) -> float:
    """libjxl's mapping from a JPEG-like quality (0-100) to a Butteraugli distance."""
    if not 0 <= quality <= 100:
        raise MzarrValueError(f"quality must be between 0 and 100, got {quality}")
    if quality >= 30:
        return 0.1 + (100 - quality) * 0.09
    return 53.0 / 3000.0 * quality * quality - 23.0 / 20.0 * quality + 25.0


@dataclass(frozen=True)
class CodecChoice:
    """The codec decision for one image: recorded in the file's ``mzarr`` metadata block."""

    name: str  # "jpegxl" or "zstd"
    lossless: bool = True
    distance: float | None = None
    effort: int = DEFAULT_EFFORT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "lossless": self.lossless}
        if self.name == "jpegxl":
            out["effort"] = self.effort
            if not self.lossless:
                out["distance"] = self.distance
        else:
            out["level"] = ZSTD_LEVEL
        return out


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


def choose_codec(
    dtype: np.dtype,
    *,
    lossless: bool = True,
    distance: float | None = None,
    quality: float | None = None,
    effort: int | None = None,
    is_label: bool = False,
) -> CodecChoice:
    """Pick the codec for a dtype and the user's lossy/lossless request, refusing impossible combinations."""
    dtype = check_dtype(dtype)
    effort = DEFAULT_EFFORT if effort is None else int(effort)
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
        return CodecChoice("jpegxl", lossless=False, distance=distance, effort=effort)
    if dtype in JPEGXL_NATIVE or dtype in JPEGXL_OFFSET or dtype == np.dtype(bool):
        return CodecChoice("jpegxl", lossless=True, effort=effort)
    return CodecChoice("zstd", lossless=True)


def zarr_codecs(choice: CodecChoice, dtype: np.dtype, transpose: tuple[int, ...] | None) -> dict[str, Any]:
    """Keyword arguments (filters, serializer, compressors) for ``zarr.create_array``.

    ``transpose`` reorders a chunk before encoding: colour images are stored channel-first (NGFF order) but
    JPEG XL wants interleaved (y, x, c) pixels, which its colour transform compresses far better.
    """
    dtype = np.dtype(dtype)
    filters: list[Any] = []
    if transpose is not None:
        filters.append(TransposeCodec(order=transpose))
    if choice.name == "zstd":
        return {"filters": filters or None, "serializer": BytesCodec(), "compressors": [GuardedZstd(level=ZSTD_LEVEL)]}
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
    if choice.lossless:
        serializer = GuardedJpegxl(lossless=True, effort=choice.effort, photometric=photometric)
    else:
        serializer = GuardedJpegxl(
            lossless=False, distance=choice.distance, effort=choice.effort, photometric=photometric
        )
    return {"filters": filters or None, "serializer": serializer, "compressors": None}
