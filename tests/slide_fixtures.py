"""Whole-slide test images shaped like the files scanners write, built offline from real pixels.

No real SVS/NDPI file can be downloaded at test time, so :func:`write_svs_like` writes what an Aperio scanner writes,
with tifffile: a tiled JPEG level 0 whose tiles are *abbreviated* JPEG streams sharing one ``JPEGTables`` tag (as
Aperio does), either YCbCr (photometric 6, 4:2:0 or 4:2:2) or RGB JPEG without JFIF/Adobe markers (Aperio's
``JPEG/RGB``, decoded by tifffile without a colour transform); a stripped JPEG thumbnail as the second page; the
reduced levels as tiled JPEG pages; the label (LZW, ``NewSubfileType`` 1) and the macro (JPEG, 9) at the end; and an
Aperio ``ImageDescription`` (``Aperio Image Library ... |AppMag = 40|MPP = 0.2520|...``). The pixels are a mosaic
of scikit-image's real photographs, weighted towards its immunohistochemistry slide crop.

:func:`write_ndpi_like` writes a small Hamamatsu-like file (NDPI tags, resolution in centimetres, one JPEG strip
per page; tifffile cannot write the restart-marker index of real NDPI files, so it is decoded as a whole strip,
nor NDPI's 64-bit IFD offsets: the file is a classic TIFF and must not be named .ndpi, which tifffile opens with
64-bit offsets).

Used by tests/test_core_slides.py and benchmarks/bench_slides.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np

SLIDE_SOURCES = ("immunohistochemistry",) * 6 + ("retina", "coffee",
                 "chelsea", "astronaut")


def _mosaic(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of random crops (flipped, with a gain) of real photographs, mostly the IHC slide crop."""
    from skimage import data

    images = [np.ascontiguousarray(getattr(data, n)()[..., :3]) for n in SLIDE_SOURCES]
    images += [np.ascontiguousarray(np.swapaxes(im, 0, 1)) for im in images]
    out = np.empty((height, width, 3), np.uint8)
    y = 0
    while y < height:
        row_h = min(int(rng.integers(160, 480)), height - y)
        x = 0
        while x < width:
            candidates = [im for im in images if im.shape[0] >= row_h]
            im = candidates[int(rng.integers(len(candidates)))]
            w = min(int(rng.integers(160, min(im.shape[1], 720) + 1)), width - x, im.shape[1])
            oy = int(rng.integers(0, im.shape[0] - row_h + 1))
            ox = int(rng.integers(0, im.shape[1] - w + 1))
            piece = im[oy : oy + row_h, ox : ox + w]
            if rng.random() < 0.5:
                piece = piece[::-1]
            if rng.random() < 0.5:
                piece = piece[:, ::-1]
            gain = rng.uniform(0.85, 1.1)
            out[y : y + row_h, x : x + w] = np.clip(piece.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            x += w
        y += row_h
    return out


def slide_mosaic(height: int, width: int, seed: int = 0, tissue: float = 0.4) -> np.ndarray:
    """An RGB uint8 slide of real content: tissue (a mosaic of real photographs, mostly scikit-image's IHC slide
    crop) in a few irregular regions covering about ``tissue`` of the area, blended over ~16 pixels into bright
    glass with a little sensor noise and a slow gradient, as a brightfield scan looks (``tissue=1``: no glass)."""
    from scipy.ndimage import map_coordinates
    from skimage.filters import gaussian
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    out = _mosaic(height, width, rng)
    if tissue >= 1:
        return out
    small = (max(8, height // 16), max(8, width // 16))
    field = gaussian(rng.standard_normal((max(4, height // 512) * 4, max(4, width // 512) * 4)), sigma=1.2)
    field = resize(field, small, order=3)
    field += 0.3 * (1 - np.hypot(*np.meshgrid(np.linspace(-1, 1, small[1]), np.linspace(-1, 1, small[0]))))
    alpha_small = (field > np.quantile(field, 1 - tissue)).astype(np.float32)
    alpha_small = gaussian(alpha_small, sigma=1.0).astype(np.float32)
    glass_tint = np.array([233.0, 229.0, 236.0], np.float32)
    sy, sx = alpha_small.shape[0] / height, alpha_small.shape[1] / width
    xs = np.clip((np.arange(width) + 0.5) * sx - 0.5, 0, alpha_small.shape[1] - 1)
    for y0 in range(0, height, 512):  # row blocks: bounded memory for large slides
        y1 = min(height, y0 + 512)
        ys = np.clip((np.arange(y0, y1) + 0.5) * sy - 0.5, 0, alpha_small.shape[0] - 1)
        rows = map_coordinates(alpha_small, np.meshgrid(ys, xs, indexing="ij"), order=1)
        a = rows[..., None]
        glass = glass_tint - 6.0 * (np.arange(y0, y1, dtype=np.float32)[:, None, None] / height)
        glass = glass + rng.normal(0, 1.2, (y1 - y0, width, 1)).astype(np.float32)
        block = out[y0:y1].astype(np.float32) * a + glass * (1 - a)
        out[y0:y1] = np.clip(block + 0.5, 0, 255).astype(np.uint8)
    return out


# -- JPEG streams ----------------------------------------------------------------------------------------------------
def _segments(jpeg: bytes) -> list[tuple[int, bytes]]:
    """(marker, whole segment) up to the SOS, then (0xDA, the rest of the stream) -- enough to split off tables."""
    out, i = [], 2
    while i < len(jpeg):
        marker = jpeg[i + 1]
        if marker == 0xDA:
            out.append((marker, jpeg[i:]))
            break
        length = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        out.append((marker, jpeg[i : i + 2 + length]))
        i += 2 + length
    return out


def split_jpeg(jpeg: bytes) -> tuple[bytes, bytes]:
    """A complete JPEG stream as (tables-only stream: SOI DQT DHT EOI, abbreviated stream without tables and
    without APP markers), the way Aperio stores tiles with a JPEGTables tag."""
    segs = _segments(bytes(jpeg))
    tables = b"".join(s for m, s in segs if m in (0xDB, 0xC4))
    rest = b"".join(s for m, s in segs if m not in (0xDB, 0xC4) and not 0xE0 <= m <= 0xEF)
    return b"\xff\xd8" + tables + b"\xff\xd9", b"\xff\xd8" + rest


def encode_tile(tile: np.ndarray, quality: int, photometric: str, subsampling: str) -> bytes:
    if photometric == "rgb":
        return bytes(imagecodecs.jpeg8_encode(tile, level=quality, colorspace="RGB", outcolorspace="RGB"))
    if tile.ndim == 2:
        return bytes(imagecodecs.jpeg8_encode(tile, level=quality))
    return bytes(imagecodecs.jpeg8_encode(tile, level=quality, subsampling=subsampling))


def jpeg_tiles(image: np.ndarray, tile: int, quality: int, photometric: str, subsampling: str,
               abbreviated: bool) -> tuple[list[bytes], bytes | None]:
    """Every tile (row-major, edge tiles padded to full size by repeating the last row/column, as scanners do)
    as a JPEG stream; with ``abbreviated``, the shared tables separately."""
    h, w = image.shape[:2]
    tiles, tables = [], None
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            block = image[y : y + tile, x : x + tile]
            if block.shape[:2] != (tile, tile):
                pad = [(0, tile - block.shape[0]), (0, tile - block.shape[1])] + [(0, 0)] * (block.ndim - 2)
                block = np.pad(block, pad, mode="edge")
            stream = encode_tile(np.ascontiguousarray(block), quality, photometric, subsampling)
            if abbreviated:
                t, stream = split_jpeg(stream)
                assert tables is None or t == tables, "tiles must share one set of tables"
                tables = t
            tiles.append(stream)
    return tiles, tables


APERIO_HEAD = "Aperio Image Library v12.0.15 \r\n"


def aperio_description(w: int, h: int, tile: int, quality: int, mpp: float, app_mag: int, extra: str = "") -> str:
    return (
        f"{APERIO_HEAD}{w}x{h} [0,100 {w}x{h}] ({tile}x{tile}) JPEG/RGB Q={quality}|AppMag = {app_mag}"
        f"|StripeWidth = 2040|ScanScope ID = SS7281|Filename = 1208-A3|Date = 03/14/25|Time = 10:21:07"
        f"|Time Zone = GMT+0100|User = 7d1f3c2e-93aa-4a1e-b5f5-0c4f3c1d2e11|MPP = {mpp:.4f}|Left = 25.691574"
        f"|Top = 23.449873|LineCameraSkew = -0.000424|LineAreaXOffset = 0.019265|LineAreaYOffset = -0.000313"
        f"|Focus Offset = 0.000000|ImageID = 1004486|OriginalWidth = {w}|OriginalHeight = {h}|Filtered = 5"
        f"|ICC Profile = ScanScope v1{extra}"
    )


def label_image(seed: int = 3) -> np.ndarray:
    """A slide label: light card, a barcode-like pattern and 'handwriting' strokes (what must not leak)."""
    rng = np.random.default_rng(seed)
    img = np.full((387, 463, 3), 238, np.uint8)
    bars = rng.integers(0, 2, 60).repeat(4)
    img[40:160, 60 : 60 + bars.size] = np.where(bars[None, :, None] == 1, 20, 238)
    for k in range(6):
        y = 220 + 22 * k
        img[y : y + 6, 40 : 40 + int(rng.integers(200, 380))] = (30, 30, 120)
    return img


def write_svs_like(
    path: str | Path,
    image: np.ndarray,
    *,
    tile: int = 256,
    quality: int = 80,
    photometric: str = "ycbcr",
    subsampling: str = "420",
    mpp: float = 0.252,
    app_mag: int = 40,
    reductions: tuple[int, ...] = (4, 16),
    label: bool = True,
    macro: bool = True,
    compression: str = "jpeg",
    description: str | None = None,
) -> Path:
    """An Aperio-SVS-like file of ``image`` (RGB uint8, or grey), see the module docstring.

    ``photometric``: "ycbcr" (YCbCr JPEG with ``subsampling`` "420"/"422"/"444") or "rgb" (RGB JPEG, no JFIF).
    ``compression="zlib"`` writes a level 0 that is not JPEG (for the fallback); levels are tiled like level 0.
    """
    import tifffile

    from mzarr_core.pyramid import downsample

    path = Path(path)
    h, w = image.shape[:2]
    rgb = image.ndim == 3
    desc = description if description is not None else aperio_description(w, h, tile, quality, mpp, app_mag)
    sub = {"420": (2, 2), "422": (2, 1), "444": (1, 1)}[subsampling]

    def level(data: np.ndarray, desc: str, **extra: Any) -> dict[str, Any]:
        ph, pw = data.shape[:2]
        if compression != "jpeg":
            return dict(data=data, tile=(tile, tile), compression=compression, description=desc,
                        photometric="rgb" if rgb else "minisblack", **extra)
        if rgb and photometric == "ycbcr":
            tiles, tables = jpeg_tiles(data, tile, quality, "ycbcr", subsampling, abbreviated=True)
            return dict(data=iter(tiles), shape=data.shape, dtype=np.uint8, tile=(tile, tile), compression="jpeg",
                        photometric="ycbcr", subsampling=sub, jpegtables=tables, description=desc, **extra)
        tiles, tables = jpeg_tiles(data, tile, quality, photometric if rgb else "grey", subsampling, abbreviated=True)
        rgb_args = dict(subsampling=(1, 1), compressionargs={"outcolorspace": "RGB"}) if rgb else {}
        return dict(data=iter(tiles), shape=data.shape, dtype=np.uint8, tile=(tile, tile), compression="jpeg",
                    photometric="rgb" if rgb else "minisblack", jpegtables=tables, description=desc, **rgb_args,
                    **extra)

    def reduce(data: np.ndarray, factor: int) -> np.ndarray:
        out = data
        halve = (True, True) + ((False,) if out.ndim == 3 else ())
        while factor > 1:
            out = downsample(out, halve, "mean")
            factor //= 2
        return out

    resolution = dict(resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit="CENTIMETER")
    with tifffile.TiffWriter(path, bigtiff=image.nbytes > 2**31) as tif:
        tif.write(**level(image, desc), **resolution, metadata=None)
        thumb = reduce(image, 32 if max(h, w) > 4096 else 8)
        tif.write(thumb, compression="jpeg", compressionargs={"level": 90}, photometric="rgb" if rgb else "minisblack",
                  description=f"{APERIO_HEAD}{w}x{h} -> {thumb.shape[1]}x{thumb.shape[0]} - |AppMag = {app_mag}"
                  f"|MPP = {mpp:.4f}", metadata=None)
        for r in reductions:
            data = reduce(image, r)
            if max(data.shape[:2]) < tile:
                break
            tif.write(**level(data, f"{APERIO_HEAD}{w}x{h} [0,100 {w}x{h}] ({tile}x{tile}) -> "
                                    f"{data.shape[1]}x{data.shape[0]} JPEG/RGB Q={quality}|AppMag = {app_mag}"
                                    f"|MPP = {mpp * r:.4f}"), metadata=None)
        if label:
            lab = label_image() if rgb else label_image()[..., 0]
            tif.write(lab, compression="lzw", subfiletype=1, photometric="rgb" if rgb else "minisblack",
                      description=f"{APERIO_HEAD}label {lab.shape[1]}x{lab.shape[0]}", metadata=None)
        if macro:
            mac = reduce(image, 16 if max(h, w) > 4096 else 4)[:600, :1500]
            mac = np.ascontiguousarray(mac)
            tif.write(mac, compression="jpeg", subfiletype=9, photometric="rgb" if rgb else "minisblack",
                      description=f"{APERIO_HEAD}macro {mac.shape[1]}x{mac.shape[0]}", metadata=None)
    return path


def write_ndpi_like(path: str | Path, image: np.ndarray, *, mpp: float = 0.2265, magnification: int = 40) -> Path:
    """A Hamamatsu-NDPI-like file: NDPI tags (format flag 65420, source lens 65421, ...), Make/Model, resolution
    in centimetres, level 0 and a 1/4 level as one JPEG strip each (real NDPI level 0 is one JPEG with restart
    markers; tifffile cannot write its McuStarts index), and a macro page (source lens -1)."""
    import tifffile

    from mzarr_core.pyramid import downsample

    path = Path(path)
    h, w = image.shape[:2]

    def tags(lens: float) -> list[tuple]:
        return [(65420, "I", 1, 1, True), (65421, "f", 1, float(lens), True), (65422, "f", 1, 0.0, True),
                (65423, "f", 1, 0.0, True), (65424, "f", 1, 0.0, True), (65442, "s", 0, "4A7B-SN123", True),
                (65449, "s", 0, "[ScanSettings]\r\nObjective.Lens.Magnificant=40\r\n", True),
                (271, "s", 0, "Hamamatsu", True), (272, "s", 0, "C13220", True)]

    quarter = downsample(downsample(image, (True, True, False), "mean"), (True, True, False), "mean")
    res = dict(resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit="CENTIMETER")
    with tifffile.TiffWriter(path) as tif:
        for data, lens, scale in ((image, magnification, 1), (quarter, magnification / 4, 4)):
            tif.write(data, compression="jpeg", compressionargs={"level": 85}, photometric="rgb", rowsperstrip=data.shape[0],
                      description="", extratags=tags(lens), software="NDP.scan 3.2.15", metadata=None,
                      resolution=(1e4 / (mpp * scale), 1e4 / (mpp * scale)), resolutionunit="CENTIMETER")
        mac = np.ascontiguousarray(quarter[:300, :800])
        tif.write(mac, compression="jpeg", compressionargs={"level": 85}, photometric="rgb", description="", extratags=tags(-1),
                  software="NDP.scan 3.2.15", metadata=None, **res)
    return path
