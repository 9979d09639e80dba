"""Pictures decoded whole by imagecodecs: PNG, JPEG, BMP, GIF, WebP, JPEG XL (and PNG export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MzarrFormatError, MzarrValueError
from .base import Source, head
from .selection import Counter, Progress, Selection

MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "bmp": (b"BM",),
    "gif": (b"GIF87a", b"GIF89a"),
    "jpegxl": (b"\xff\x0a", b"\0\0\0\x0cJXL \r\n\x87\n"),
}
PNG_LIMIT = 1 << 30  # a PNG is encoded in memory: refuse selections over 1 GiB


def _sniffer(name: str):
    def sniff(path: Path) -> bool:
        start = head(path, 16)
        if name == "webp":
            return start[:4] == b"RIFF" and start[8:12] == b"WEBP"
        return any(start.startswith(m) for m in MAGIC[name])

    sniff.__name__ = f"sniff_{name}"
    return sniff


sniff_png, sniff_jpeg, sniff_bmp, sniff_gif, sniff_webp, sniff_jpegxl = (
    _sniffer(n) for n in ("png", "jpeg", "bmp", "gif", "webp", "jpegxl")
)


def read(path: Path) -> Source:
    """The whole picture, decoded in memory (these formats cannot be read region by region)."""
    import imagecodecs

    try:
        array = imagecodecs.imread(str(path))
    except Exception as exc:  # noqa: BLE001 - every codec has its own error type
        kind = path.suffix[1:].upper() or "a picture"
        raise MzarrFormatError(f"{path} could not be decoded as {kind}: {exc}") from None
    if array.ndim == 4:  # an animation (GIF, WebP, APNG): its frames as z-slices of colour pictures
        axes = "zyxc"
    elif array.ndim == 3:
        axes = "yxc" if array.shape[-1] in (3, 4) else "zyx"
    else:
        axes = None
    return Source(array, axes, attrs={"source": path.name})


def write_png(sel: Selection, path: Path, progress: Progress | None = None) -> None:
    """A grey or RGB(A) uint8/uint16 plane as PNG (encoded in memory)."""
    import imagecodecs

    shape, dtype = sel.shape, sel.dtype
    two_d = sel.axes in ("yx",) or (sel.axes == "yxc" and sel.channels in (3, 4))
    if not two_d or dtype not in (np.uint8, np.uint16) or sel.nbytes > PNG_LIMIT:
        raise MzarrValueError(
            f"PNG holds a 2D grey or RGB(A) uint8/uint16 picture; this region is {shape} {dtype}: "
            "export a 2D region (--region) or use .tif / .npy"
        )
    counter = Counter(progress, 2)
    data = sel.read()
    counter.step()
    path.write_bytes(imagecodecs.png_encode(data))
    counter.step()
