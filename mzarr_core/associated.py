"""Associated images: small named pictures stored beside the pyramid (a slide's thumbnail, macro and label).

Each is a Zarr v3 array ``associated/<name>`` of the file (a child group of the image's root group, which NGFF
readers ignore): ``(y, x)`` or ``(y, x, c)`` uint8/uint16 with c = 3 or 4, one chunk, lossless JPEG XL
(``imagecodecs_jpegxl``, the pixels interleaved as JPEG XL wants them). Names are lower-case words
(``[a-z0-9_]``, at most 32 characters). They are read whole: at most :data:`MAX_PIXELS` pixels each, bounded by the
guarded JPEG XL decoder like every chunk. A picture given as ``(array, distance)`` is stored lossy at that
Butteraugli distance (a slide's JPEG thumbnail and macro: previews whose source is lossy already).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from .errors import MzarrFormatError, MzarrValueError

__all__ = ["GROUP", "MAX_PIXELS", "check_associated", "read_associated", "write_associated"]

GROUP = "associated"
MAX_PIXELS = 64 * 2**20  # a macro photograph of a whole slide is a few megapixels
_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_MAX_DOC = 64 * 1024


def check_associated(images: dict[str, Any]) -> dict[str, tuple[np.ndarray, float | None]]:
    """The images as (C-contiguous array, lossy distance or None), or an MzarrValueError saying what is wrong."""
    out: dict[str, tuple[np.ndarray, float | None]] = {}
    for name, image in images.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise MzarrValueError(f"an associated image's name must be 1-32 characters a-z, 0-9 or _, got {name!r}")
        distance = None
        if isinstance(image, tuple) and len(image) == 2:
            image, distance = image
            if distance is not None and not (isinstance(distance, (int, float)) and 0 < distance <= 25):
                raise MzarrValueError(f"associated image {name!r}: distance must be in (0, 25], got {distance!r}")
        a = np.ascontiguousarray(np.asarray(image))
        ok_shape = a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))
        if not ok_shape or a.dtype not in (np.uint8, np.uint16) or a.size == 0:
            raise MzarrValueError(
                f"associated image {name!r} must be a (y, x) or (y, x, 3|4) uint8/uint16 array, got {a.shape} {a.dtype}"
            )
        if a.shape[0] * a.shape[1] > MAX_PIXELS:
            raise MzarrValueError(f"associated image {name!r} has {a.shape[0]} x {a.shape[1]} pixels (at most {MAX_PIXELS})")
        out[name] = (a, None if distance is None else float(distance))
    return out


def write_associated(store: Any, images: dict[str, tuple[np.ndarray, float | None]], checksum: bool = True) -> None:
    """Write ``images`` (already checked) under ``associated/`` of the image in ``store``; ``checksum``: each
    followed by its crc32c, as the image's chunks (format 5)."""
    if not images:
        return
    import zarr

    from .guards import CheckedCrc32c, GuardedJpegxl

    group = zarr.open_group(store, path=GROUP, mode="a", zarr_format=3)
    for name, (image, distance) in images.items():
        photometric = "GRAY" if image.ndim == 2 else None
        serializer = (GuardedJpegxl(lossless=True, effort=2, photometric=photometric) if distance is None else
                      GuardedJpegxl(lossless=False, distance=distance, effort=7, photometric=photometric))
        array = group.create_array(
            name, shape=image.shape, chunks=image.shape, dtype=image.dtype, fill_value=0,
            dimension_names=["y", "x"] + (["c"] if image.ndim == 3 else []),
            serializer=serializer, compressors=[CheckedCrc32c()] if checksum else None, overwrite=True,
        )
        array[...] = image


def _doc(store: Any, key: str) -> dict[str, Any] | None:
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    get_bytes = getattr(store, "get_bytes_sync", None)
    if get_bytes is not None:
        raw = get_bytes(key)
    else:
        buffer = sync(store.get(key, default_buffer_prototype()))
        raw = None if buffer is None else buffer.to_bytes()
    if raw is None:
        return None
    if len(raw) > _MAX_DOC:
        raise MzarrFormatError(f"{key} is {len(raw)} bytes, more than an associated image's metadata can be")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise MzarrFormatError(f"{key} is not JSON ({exc})") from None
    return doc if isinstance(doc, dict) else None


def _names(store: Any) -> list[str]:
    from zarr.core.sync import sync

    async def listing() -> list[str]:
        return [name async for name in store.list_dir(GROUP)]

    try:
        found = sync(listing())
    except (FileNotFoundError, NotImplementedError):
        return []
    return sorted({n.strip("/") for n in found if _NAME.match(n.strip("/"))})


def read_associated(store: Any, where: str = "the file") -> dict[str, np.ndarray]:
    """The associated images of the image in ``store`` ({} when it has none). A damaged or hostile one is an
    MzarrFormatError naming it (shapes and codecs are checked before anything is decoded)."""
    import zarr

    if _doc(store, f"{GROUP}/zarr.json") is None:
        return {}
    out: dict[str, np.ndarray] = {}
    for name in _names(store):
        key = f"{GROUP}/{name}/zarr.json"
        doc = _doc(store, key)
        if doc is None or doc.get("node_type") != "array":
            continue
        shape, chunks = doc.get("shape"), (doc.get("chunk_grid") or {}).get("configuration", {}).get("chunk_shape")
        codecs = doc.get("codecs")
        ok = (isinstance(shape, list) and len(shape) in (2, 3) and all(isinstance(n, int) and n > 0 for n in shape)
              and shape == chunks and doc.get("data_type") in ("uint8", "uint16")
              and (len(shape) == 2 or shape[2] in (3, 4)) and math.prod(shape[:2]) <= MAX_PIXELS
              and isinstance(codecs, list) and len(codecs) in (1, 2) and all(isinstance(c, dict) for c in codecs)
              and codecs[0].get("name") == "imagecodecs_jpegxl"
              and (len(codecs) == 1 or codecs[1] == {"name": "crc32c"}))
        if not ok:
            raise MzarrFormatError(f"{where}: {key} does not describe an associated image Mzarr writes; the file is damaged")
        try:
            array = zarr.open_array(store, path=f"{GROUP}/{name}", mode="r", zarr_format=3)
            out[name] = np.asarray(array[...])
        except MzarrFormatError:
            raise
        except Exception as exc:  # a damaged chunk (the guarded decoder refuses bombs)
            raise MzarrFormatError(
                f"{where}: the associated image {name!r} cannot be decoded ({type(exc).__name__}: {exc}); "
                "the file is damaged"
            ) from None
    return out
