"""Whole-slide images (Aperio SVS, Hamamatsu NDPI, Leica SCN, Ventana BIF, Philips TIFF, pyramidal OME-TIFF)
through tifffile: level 0 read lazily tile by tile, the physical pixel size (MPP) as the spacing in micrometres, the
scanner's metadata in ``attrs["slide"]``, and the thumbnail / macro (and, only when asked, the label) pictures as
associated images of the file (:meth:`mzarr_core.Mzarr.associated_images`).

Three ways to store level 0 (docs/BENCHMARKS.md, "Whole-slide images"; docs/FORMAT.md, "Whole-slide images"):

* ``"recompress"``: each JPEG tile transcoded by libjxl *without loss* (a JPEG XL that rebuilds the JPEG bit for
  bit); read back, the pixels are exactly those of the source. Level 0's chunks are the slide's tiles; levels 1+
  are lossy JPEG XL at :data:`RECOMPRESS_DISTANCE`. Format 3. The default where level 0 is JPEG tiles *and* the
  sampled estimate (:func:`estimate_sizes`) stays within :data:`FIT` of the source's size: the transcoding saves only
  6-9 % of YCbCr JPEG tiles at quality 70-80 (~45 % of RGB JPEG tiles), and Mzarr's pyramid halves every level
  where slides quarter them, so the exact copy of a usual Aperio slide is ~1.2x the source.
* ``"lossy"``: JPEG XL of the decoded pixels at a Butteraugli distance (default :data:`LOSSY_DISTANCE`: 0.8-0.9x
  the source): the default for other lossy sources (NDPI's one-JPEG level 0, JPEG 2000 SVS...) and for JPEG slides
  whose exact copy would be larger than the source.
* ``"lossless"``: lossless JPEG XL of the decoded pixels: the default for losslessly stored slides (LZW, deflate,
  uncompressed); 5-8x the source for JPEG slides.

The label picture usually shows patient identifiers (a barcode, handwriting): it is left out unless
``keep_label=True``, and so are the description fields that may identify the patient or the case (file name,
barcode, user...). Macro photographs of the whole glass slide may show the label area too: they are kept (say
``keep_macro=False`` to leave them out).
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import MzarrFileNotFoundError, MzarrFormatError, MzarrValueError
from .base import Source, head

__all__ = [
    "COMPRESSIONS",
    "LOSSY_DISTANCE",
    "RECOMPRESS_DISTANCE",
    "SlideInfo",
    "SlideSource",
    "convert_slide",
    "describe_slide",
    "open_slide",
    "sniff",
]

COMPRESSIONS = ("recompress", "lossless", "lossy")
#: Butteraugli distance of levels 1+ of recompressed slides: the lossy mode's, so both give the same coarser levels
#: (measured, docs/BENCHMARKS.md: no distance up to 6 brings a Q70-80 YCbCr slide's exact copy below the source)
RECOMPRESS_DISTANCE = 3.0
#: default distance of the "lossy" mode (measured: 0.8-0.9x the source for JPEG slides at quality 70-80, level 0
#: within 1.95 of the source's pixels on average; distance 2 is 0.95-1.07x)
LOSSY_DISTANCE = 3.0
#: "recompress" is the default only if its estimated size is at most this fraction of the source's (the estimate is
#: within ~5 % on the benchmark slides)
FIT = 0.97
#: TIFF compressions whose pixels are already approximations: a lossless copy would only store their artefacts
LOSSY_SOURCE = {6: "old-style JPEG", 7: "JPEG", 33003: "JPEG 2000 (Aperio YCbCr)", 33005: "JPEG 2000 (Aperio RGB)",
                34712: "JPEG 2000", 34892: "lossy JPEG", 50001: "WebP", 50002: "JPEG XL", 22610: "JPEG XR"}
VENDORS = (("svs", "Aperio"), ("ndpi", "Hamamatsu"), ("scn", "Leica"), ("bif", "Ventana"), ("philips", "Philips"),
           ("huron", "Huron"), ("motic", "Motic"), ("mikroscan", "Mikroscan"), ("ome", "OME-TIFF"))
ASSOCIATED = {"thumbnail": "thumbnail", "label": "label", "macro": "macro", "overview": "label", "map": "map",
              "probability": "thumbnail"}
#: description fields that may identify a patient or a case: left out unless keep_label=True
IDENTIFYING = re.compile(r"file ?name|user|barcode|title|patient|accession|specimen|case|comment|label|operator|"
                         r"slide ?(id|name)|name$", re.IGNORECASE)
MAX_PROPERTIES = 200
MAX_VALUE = 500
CHECK_TILES = 3  # tiles decoded both ways before choosing "recompress" (first, middle, last)
ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"  # APP14: the JPEG's components are R, G, B


# -- sniffing --------------------------------------------------------------------------------------------------------
def _open_tiff(path: Path) -> Any:
    import tifffile

    try:
        return tifffile.TiffFile(path)
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for damaged files
        raise MzarrFormatError(f"{path} could not be read as a TIFF-based slide: {exc}") from None


def _vendor(tif: Any) -> tuple[str, str] | None:
    for flag, name in VENDORS:
        if getattr(tif, f"is_{flag}", False):
            return flag, name
    return None


def sniff(path: Path) -> bool:
    """True for the slide formats tifffile recognises (SVS, NDPI, SCN, BIF, Philips, Huron, Motic, Mikroscan; the
    first page's tags only) and pyramidal OME-TIFFs of one 8-bit RGB plane in JPEG tiles (brightfield slides; other
    OME-TIFFs are read as TIFF)."""
    if head(Path(path), 4) not in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return False
    try:
        with _open_tiff(Path(path)) as tif:
            kind = _vendor(tif)
            if kind is None:
                return False
            if kind[0] != "ome":
                return True
            series = tif.series[0]
            return (len(series.levels) > 1 and series.axes.upper() in ("YXS", "ZYXS", "CYXS") and series.dtype == np.uint8
                    and math.prod(series.shape[:-3]) == 1 and int(_level0_page(series).compression) == 7)
    except Exception:  # noqa: BLE001 - a sniff never raises
        return False


# -- what the file says ----------------------------------------------------------------------------------------------
@dataclass
class SlideInfo:
    """What :func:`describe_slide` finds in a slide before anything is imported."""

    path: Path
    vendor: str  # "Aperio", "Hamamatsu", ... or "TIFF"
    kind: str  # tifffile's series kind ("svs", "ndpi", ...)
    shape: tuple[int, ...]  # level 0: (y, x) or (y, x, c)
    dtype: str
    levels: list[tuple[int, int]]  # (width, height) of each level the file holds
    tile: tuple[int, int] | None  # (height, width) of level 0's tiles; None: strips
    compression: str  # level 0's TIFF compression, e.g. "JPEG"
    jpeg_tiles: bool  # level 0 is JPEG tiles that transcode to JPEG XL without loss
    jpeg_note: str  # why (not)
    lossy_source: bool
    mpp: tuple[float, float] | None  # micrometres per pixel (x, y)
    objective_power: float | None
    scanner: str | None
    associated: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> shape, as found in the file
    file_bytes: int = 0
    level0_bytes: int = 0  # level 0's compressed tiles or strips
    associated_bytes: int = 0  # the thumbnail's, macro's and label's compressed bytes in the source
    focal_planes: int = 1
    #: estimated .mzarr bytes per compression (sampled: :func:`estimate_sizes`), filled by describe_slide/open_slide
    estimates: dict[str, int] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def height(self) -> int:
        return self.shape[0]

    def default_compression(self) -> str:
        """``recompress`` where level 0 is JPEG tiles and the estimate says the file stays within the source's size
        (else, and for other lossy sources, ``lossy``); ``lossless`` for sources stored without loss."""
        if self.jpeg_tiles and self.estimates.get("recompress", 0) <= FIT * self.file_bytes:
            return "recompress"
        return "lossy" if self.lossy_source else "lossless"

    def estimated_bytes(self, compression: str | None = None) -> int | None:
        """The sampled estimate of the .mzarr's size (None where it was not estimated)."""
        return self.estimates.get(compression or self.default_compression())

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "vendor": self.vendor, "kind": self.kind, "shape": list(self.shape),
            "dtype": self.dtype, "levels": [list(lv) for lv in self.levels],
            "tile": list(self.tile) if self.tile else None, "compression": self.compression,
            "jpeg_tiles": self.jpeg_tiles, "jpeg_note": self.jpeg_note, "mpp": list(self.mpp) if self.mpp else None,
            "objective_power": self.objective_power, "scanner": self.scanner,
            "associated": {k: list(v) for k, v in self.associated.items()}, "file_bytes": self.file_bytes,
            "focal_planes": self.focal_planes, "default_compression": self.default_compression(),
            "estimated_bytes": dict(self.estimates),
        }

    def compressions(self) -> tuple[str, ...]:
        return COMPRESSIONS if self.jpeg_tiles else ("lossless", "lossy")

    def lines(self) -> list[str]:
        """What the CLI and the app show before importing."""
        mpp = f"{self.mpp[0]:.4f} x {self.mpp[1]:.4f} um/pixel" if self.mpp else "not recorded"
        power = f", {self.objective_power:g}x objective" if self.objective_power else ""
        tile = f"tiles {self.tile[1]} x {self.tile[0]}" if self.tile else "strips (not tiled)"
        levels = ", ".join(f"{w} x {h}" for w, h in self.levels)
        extra = ", ".join(f"{k} {v[1]} x {v[0]}" for k, v in self.associated.items()) or "none"
        sizes = ", ".join(f"{m} ~{b / 1e6:.1f} MB ({b / max(self.file_bytes, 1):.2f}x)" for m, b in self.estimates.items())
        lines = [
            f"slide:       {self.vendor} ({self.kind}), {self.width} x {self.height} pixels, {self.dtype}"
            f"{' RGB' if len(self.shape) == 3 and self.shape[2] == 3 else ''}{power}",
            f"pixel size:  {mpp}",
            f"levels:      {levels}",
            f"level 0:     {tile}, {self.compression}; {self.jpeg_note}",
            f"associated:  {extra}",
            f"file:        {self.file_bytes / 1e6:.1f} MB; default compression {self.default_compression()}",
        ]
        if sizes:
            lines.append(f"estimates:   {sizes}")
        if self.scanner:
            lines.insert(2, f"scanner:     {self.scanner}")
        if self.focal_planes > 1:
            lines.append(f"focal planes: {self.focal_planes} (the first is imported)")
        return lines


def _level0_page(series: Any) -> Any:
    level = series.levels[0] if getattr(series, "levels", None) else series
    return level.keyframe if getattr(level, "keyframe", None) is not None else level.pages[0]


def _associated_name(series: Any) -> str | None:
    """"thumbnail", "label", "macro"... for a series tifffile names as an associated picture, else None."""
    return ASSOCIATED.get((series.name or "").lower().replace(" image", "").replace("_image", "").strip())


def _main_series(tif: Any) -> Any:
    """The slide itself: series 0, except where tifffile lists the macro first (Leica SCN): the largest series."""
    series = [s for s in tif.series if _associated_name(s) is None]
    if not series:
        raise MzarrFormatError(f"{tif.filename} holds no slide image (only {[s.name for s in tif.series]})")
    if getattr(tif, "is_scn", False):
        return max(series, key=lambda s: math.prod(s.shape))
    return series[0]


def _compression_name(page: Any) -> str:
    try:
        return page.compression.name
    except AttributeError:
        return str(page.compression)


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _resolution_mpp(page: Any) -> tuple[float, float] | None:
    """Micrometres per pixel from the TIFF resolution tags, when their unit is a length."""
    try:
        unit = int(page.resolutionunit)
        if unit not in (2, 3):  # inch, centimetre
            return None
        xres, yres = page.get_resolution("centimeter")
    except Exception:  # noqa: BLE001 - missing or odd tags
        return None
    if not xres or not yres or (unit == 2 and xres == yres == 72 / 2.54):  # 72 dpi: a default, not a measurement
        return None
    x, y = _float(1e4 / xres), _float(1e4 / yres)
    return (x, y) if x and y else None


def _xml(text: str | None) -> Any:
    if not text:
        return None
    from xml.etree import ElementTree

    try:
        return ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None


def _short(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if isinstance(value, (int, float, bool)) and not (isinstance(value, float) and not math.isfinite(value)):
        return value
    text = str(value).strip()
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def _keep(properties: dict[str, Any], keep_identifiers: bool) -> tuple[dict[str, Any], list[str]]:
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in properties.items():
        if len(kept) >= MAX_PROPERTIES:
            break
        if value is None or (isinstance(value, (list, tuple, dict)) and not isinstance(value, str)):
            continue
        if not keep_identifiers and IDENTIFYING.search(str(key)):
            dropped.append(str(key))
            continue
        kept[str(key)[:100]] = _short(value)
    return kept, dropped


@dataclass
class _Metadata:
    mpp: tuple[float, float] | None = None
    objective_power: float | None = None
    scanner: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


def _vendor_metadata(tif: Any, kind: str, page: Any) -> _Metadata:
    """MPP, objective power, scanner and the vendor's properties of a slide (each vendor's own record)."""
    meta = _Metadata()
    if kind in ("svs", "motic", "mikroscan"):
        from tifffile.tifffile import svs_description_metadata

        try:
            props = svs_description_metadata(page.description)
        except ValueError:
            props = {}
        meta.properties = props
        mpp = _float(props.get("MPP"))
        meta.mpp = (mpp, mpp) if mpp else None
        meta.objective_power = _float(props.get("AppMag"))
        meta.scanner = _short(props["ScanScope ID"]) if props.get("ScanScope ID") else None
    elif kind == "ndpi":
        props = dict(page.ndpi_tags or {})
        props = {k: v for k, v in props.items() if k not in ("McuStarts", "McuStartsHighBytes")}
        meta.properties = props
        meta.objective_power = _float(props.get("Magnification"))
        model = " ".join(str(props[k]) for k in ("Make", "Model") if props.get(k))
        meta.scanner = (model + (f" {props['ScannerSerialNumber']}" if props.get("ScannerSerialNumber") else "")) or None
    elif kind == "philips":
        root = _xml(tif.philips_metadata)
        if root is not None:
            for attr in root.iter("Attribute"):
                name = attr.get("Name")
                text = (attr.text or "").strip().strip('"')
                if name and text and name not in meta.properties and len(meta.properties) < MAX_PROPERTIES:
                    meta.properties[name] = text
            spacing = [a.text for a in root.iter("Attribute") if a.get("Name") == "DICOM_PIXEL_SPACING" and a.text]
            if spacing:
                values = [_float(v) for v in spacing[0].replace('"', " ").split()]
                if len(values) >= 2 and all(values):
                    row_mm, column_mm = cast(float, values[0]), cast(float, values[1])  # (row, column) spacing in mm
                    meta.mpp = (column_mm * 1000.0, row_mm * 1000.0)
            meta.scanner = " ".join(str(meta.properties[k]) for k in ("DICOM_MANUFACTURER", "DICOM_DEVICE_SERIAL_NUMBER")
                                    if k in meta.properties) or None
    elif kind == "bif":
        root = _xml(tif.bif_metadata)
        if root is not None:
            scan = next((e for e in root.iter() if e.tag.endswith("iScan")), None)
            if scan is not None:
                meta.properties = dict(scan.attrib)
                mpp = _float(scan.get("ScanRes"))
                meta.mpp = (mpp, mpp) if mpp else None
                meta.objective_power = _float(scan.get("Magnification"))
                meta.scanner = scan.get("ScannerModel") or scan.get("UnitNumber")
    elif kind == "scn":
        root = _xml(tif.scn_metadata)
        if root is not None:
            for elem in root.iter():
                tag = elem.tag.split("}")[-1]
                if tag in ("device", "objective", "creationDate", "illumination") or tag.startswith("scanSettings"):
                    if elem.attrib:
                        meta.properties.update({f"{tag}.{k}": v for k, v in elem.attrib.items()})
                    if elem.text and elem.text.strip():
                        meta.properties[tag] = elem.text.strip()
            meta.objective_power = _float(meta.properties.get("objective"))
            meta.scanner = meta.properties.get("device.model")
    elif kind == "ome":
        ome = tif.ome_metadata or ""
        sizes = [re.search(rf'PhysicalSize{a}="([0-9.eE+-]+)"', ome) for a in "XY"]
        units = [re.search(rf'PhysicalSize{a}Unit="([^"]+)"', ome) for a in "XY"]
        scale = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}
        if all(sizes):
            factors = [scale.get(u.group(1), None) if u else 1.0 for u in units]
            if all(f is not None for f in factors):
                x, y = (_float(float(cast(re.Match, s).group(1)) * cast(float, f)) for s, f in zip(sizes, factors))
                meta.mpp = (x, y) if x and y else None
        power = re.search(r'NominalMagnification="([0-9.eE+-]+)"', ome)
        meta.objective_power = _float(power.group(1)) if power else None
        microscope = re.search(r'<Microscope[^>]*Model="([^"]+)"', ome)
        meta.scanner = microscope.group(1) if microscope else None
    if meta.mpp is None:
        meta.mpp = _resolution_mpp(page)
    return meta


# -- JPEG tiles ------------------------------------------------------------------------------------------------------
def _jpeg_layout(page: Any, kind: str) -> str | None:
    """None if level 0's tiles are JPEG streams Mzarr can transcode, else why not."""
    compression = int(page.compression)
    if kind == "ndpi":
        return "NDPI stores level 0 as one JPEG stream with restart markers, not as separate JPEG tiles"
    if compression != 7:
        if compression in LOSSY_SOURCE:
            return f"level 0 is {LOSSY_SOURCE[compression]}, not JPEG tiles"
        return f"level 0 is not JPEG ({_compression_name(page)})"
    if not page.is_tiled:
        return "level 0 is JPEG strips, not tiles"
    if int(page.planarconfig) != 1:
        return "level 0's JPEG tiles hold one colour plane each (planar configuration 2)"
    if page.bitspersample != 8 or int(page.photometric) not in (1, 2, 6) or page.extrasamples:
        return f"level 0's JPEG tiles are {page.bitspersample}-bit {page.photometric.name} (8-bit grey/RGB/YCbCr only)"
    if page.samplesperpixel not in (1, 3):
        return f"level 0's JPEG tiles hold {page.samplesperpixel} samples per pixel"
    if page.tiledepth > 1:
        return "level 0's JPEG tiles are 3-D"
    if page.imagelength < page.tilelength or page.imagewidth < page.tilewidth:
        return "the slide is smaller than one of its tiles"
    return None


def _segments(jpeg: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of the segments before the SOS (which is (0xDA, start, len)); [] if not a JPEG."""
    out: list[tuple[int, int, int]] = []
    if jpeg[:2] != b"\xff\xd8":
        return out
    pos, n = 2, len(jpeg)
    while pos + 4 <= n and jpeg[pos] == 0xFF:
        marker = jpeg[pos + 1]
        if marker == 0xDA:
            out.append((marker, pos, n))
            break
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        out.append((marker, pos, pos + 2 + length))
        pos += 2 + length
    return out


class JpegTiles:
    """Level 0's tiles as complete JPEG streams: the shared ``JPEGTables`` put after each abbreviated tile's SOI,
    and, where tifffile decodes the tiles as RGB without a colour transform (Aperio's RGB JPEG, photometric RGB
    without JFIF), an Adobe APP14 marker saying so, so that libjpeg decodes each stream alone to exactly tifffile's
    pixels. Reads through its own file handle (thread-safe: the pool transcodes many tiles at once)."""

    def __init__(self, path: Path, page: Any):
        from tifffile.tifffile import jpeg_decode_colorspace

        self.path = path
        self.offsets = [int(o) for o in page.dataoffsets]
        self.counts = [int(c) for c in page.databytecounts]
        self.tile = (int(page.tilelength), int(page.tilewidth))
        self.across = -(-int(page.imagewidth) // self.tile[1])
        self.down = -(-int(page.imagelength) // self.tile[0])
        tables = page.jpegtables
        self.tables = bytes(tables[2:-2]) if tables and len(tables) > 4 else b""
        colorspace, _ = jpeg_decode_colorspace(int(page.photometric), int(page.planarconfig), page.extrasamples,
                                               page.is_jfif)
        self.force_rgb = colorspace == 2  # tifffile decodes them as RGB, whatever their markers say
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()
        self.reads = 0

    def close(self) -> None:
        self._fh.close()

    def raw(self, index: int) -> bytes | None:
        if not 0 <= index < len(self.offsets) or self.counts[index] == 0:
            return None
        with self._lock:
            self._fh.seek(self.offsets[index])
            data = self._fh.read(self.counts[index])
            self.reads += 1
        return data

    def full(self, data: bytes) -> bytes | None:
        """A tile's stream made complete (tables, colour marker); None if it is not a JPEG stream."""
        segments = _segments(data)
        if not segments or segments[-1][0] != 0xDA:
            return None
        body = data[2:]
        marker = b""
        if self.force_rgb:  # drop JFIF/Adobe markers that would make libjpeg convert from YCbCr; say RGB
            body = b"".join(data[s:e] for m, s, e in segments if m not in (0xE0, 0xEE))
            marker = ADOBE_RGB
        return b"\xff\xd8" + marker + self.tables + body

    def __call__(self, index: tuple[int, ...]) -> bytes | None:
        """The complete JPEG stream of the tile at chunk ``index`` (row, column[, 0]); None if it is missing."""
        ty, tx = int(index[0]), int(index[1])
        if not (0 <= ty < self.down and 0 <= tx < self.across):
            return None
        data = self.raw(ty * self.across + tx)
        return None if data is None else self.full(data)


def _check_tiles(tiles: JpegTiles, array: Any) -> str | None:
    """Decode a few tiles both ways (tifffile's pixels, libjpeg on the complete stream) and transcode them: None if
    all agree, else why "recompress" cannot give the source's pixels."""
    import imagecodecs

    n = tiles.down * tiles.across
    th, tw = tiles.tile
    for i in sorted({0, n // 2, n - 1})[:CHECK_TILES]:
        ty, tx = divmod(i, tiles.across)
        jpeg = tiles((ty, tx))
        if jpeg is None:
            continue
        region = (slice(ty * th, min((ty + 1) * th, array.shape[0])), slice(tx * tw, min((tx + 1) * tw, array.shape[1])))
        want = np.asarray(array[region])
        try:
            got = imagecodecs.jpeg8_decode(jpeg)
            imagecodecs.jpegxl_encode_jpeg(jpeg)
        except Exception as exc:  # noqa: BLE001 - libjpeg/libjxl refusals
            return f"a JPEG tile cannot be transcoded without loss ({exc})"
        got = got[: want.shape[0], : want.shape[1]]
        if got.shape != want.shape or not np.array_equal(got, want):
            return "the JPEG tiles do not decode on their own to the slide's pixels (an unusual colour layout)"
    return None


# -- the lazy level 0 ------------------------------------------------------------------------------------------------
class _Plane:
    """A lazy 2-D (y, x[, c]) view of tifffile's level-0 array, dropping leading axes (focal plane 0)."""

    def __init__(self, array: Any, lead: int):
        self.array, self.lead = array, lead
        self.shape = tuple(int(n) for n in array.shape[lead:])
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.chunks = tuple(array.chunks[lead:]) if getattr(array, "chunks", None) else self.shape

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        return np.asarray(self.array[(0,) * self.lead + key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)


def _level0_array(series: Any, path: Path) -> tuple[Any, str, int]:
    """tifffile's zarr store of level 0, read chunk by chunk, as (array, axes, focal planes)."""
    import zarr

    level = series.levels[0] if getattr(series, "levels", None) else series
    axes = level.axes.upper()
    array: Any = zarr.open(series.aszarr(level=0), mode="r")
    if isinstance(array, zarr.Group):
        array = array["0"]
    spatial = axes[-3:] if axes.endswith("YXS") else axes[-2:]
    if spatial not in ("YX", "YXS"):
        raise MzarrFormatError(f"{path}: level 0 has axes {axes}; a slide's level 0 is Y, X (and samples)")
    lead = len(axes) - len(spatial)
    if any(n != 1 for a, n in zip(axes[:lead], level.shape[:lead]) if a not in "ZI"):
        raise MzarrFormatError(
            f"{path}: level 0 has axes {axes} of shape {level.shape}; Mzarr imports one brightfield plane "
            "(read multi-channel images as TIFF: mzarr convert on a .tif name)"
        )
    planes = math.prod(level.shape[:lead]) if lead else 1
    view = _Plane(array, lead) if lead else array
    if spatial == "YXS" and view.shape[-1] not in (3, 4):
        raise MzarrFormatError(f"{path}: level 0 has {view.shape[-1]} samples per pixel; slides are grey or RGB(A)")
    return view, ("yxc" if spatial == "YXS" else "yx"), planes


# -- associated images -----------------------------------------------------------------------------------------------
def _associated(tif: Any, main: Any, keep_label: bool, keep_macro: bool) -> tuple[dict[str, Any], dict[str, tuple]]:
    """(name -> series to read, name -> shape of every associated picture found)."""
    found: dict[str, Any] = {}
    shapes: dict[str, tuple] = {}
    for s in tif.series:
        if s is main:
            continue
        name = _associated_name(s)
        if name is None or name in found:
            continue
        shape = tuple(int(n) for n in s.shape if n != 1) if len(s.shape) > 3 else tuple(int(n) for n in s.shape)
        shapes[name] = shape
        if (name == "label" and not keep_label) or (name == "macro" and not keep_macro):
            continue
        found[name] = s
    return found, shapes


ASSOCIATED_DISTANCE = 1.0  # JPEG thumbnails and macros: previews of a lossy source, stored visually lossless


def _read_associated(series: dict[str, Any]) -> dict[str, Any]:
    """name -> array (stored lossless) or (array, distance) for pictures the slide stores lossy (JPEG)."""
    from ..associated import MAX_PIXELS

    out: dict[str, Any] = {}
    for name, s in series.items():
        try:
            shape = [n for n in s.shape if n != 1] if len(s.shape) > 3 else list(s.shape)
            if len(shape) < 2 or shape[0] * shape[1] > MAX_PIXELS:
                continue
            image = np.asarray(s.asarray()).reshape(shape)
        except Exception:  # noqa: BLE001 - a damaged associated picture is skipped, the slide still imports
            continue
        if image.dtype in (np.uint8, np.uint16) and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
            image = np.ascontiguousarray(image)
            lossy = int(s.keyframe.compression) in LOSSY_SOURCE
            out[name] = (image, ASSOCIATED_DISTANCE) if lossy else image
    return out


# -- estimating sizes ------------------------------------------------------------------------------------------------
SAMPLES = 8  # blocks of 2 x 2 tiles (512 x 512) sampled across the slide to estimate the sizes
ROW_OVERHEAD = 700  # measured: SQLite page bytes a stored 1-10 kB chunk costs beyond its own bytes
LEVELS_AFTER_1 = 1.45  # measured: levels 2+ add ~45 % of level 1's bytes (halved content is denser)


def _sample_blocks(shape: tuple[int, ...], block: int) -> list[tuple[int, int]]:
    rows, cols = -(-shape[0] // block), -(-shape[1] // block)
    n = rows * cols
    picks = sorted({min(n - 1, int((i + 0.5) * n / SAMPLES)) for i in range(min(SAMPLES, n))})
    return [divmod(i, cols) for i in picks]


def estimate_sizes(info: SlideInfo, array: Any, tiles: JpegTiles | None, modes: tuple[str, ...], *,
                   distances: dict[str, float] | None = None, effort: int = 2) -> dict[str, int]:
    """Estimated .mzarr bytes for each of ``modes``, from :data:`SAMPLES` blocks of 512 x 512 pixels spread over the
    slide: their JPEG tiles transcoded (recompress), their pixels and their halved pixels encoded as each mode
    would (level 0 and level 1), scaled to the slide, plus the pyramid's coarser levels and the container's bytes
    per chunk (measured constants). Within ~10 % on the benchmark slides (docs/BENCHMARKS.md)."""
    import imagecodecs

    from ..pyramid import downsample

    distances = {"recompress": RECOMPRESS_DISTANCE, "lossy": LOSSY_DISTANCE, **(distances or {})}
    tile_h, tile_w = tiles.tile if tiles is not None else (256, 256)
    block = 2 * max(tile_h, tile_w) if tiles is not None else 512
    samples = []
    for by, bx in _sample_blocks(info.shape, block):  # read here, one after another: tifffile's handle is shared
        region = (slice(by * block, min((by + 1) * block, info.shape[0])),
                  slice(bx * block, min((bx + 1) * block, info.shape[1])))
        pixels = np.ascontiguousarray(np.asarray(array[region]))
        jpegs = []
        if tiles is not None and "recompress" in modes:
            for ty in range(by * block // tile_h, -(-region[0].stop // tile_h)):
                for tx in range(bx * block // tile_w, -(-region[1].stop // tile_w)):
                    raw = tiles.raw(ty * tiles.across + tx)
                    if raw is not None:
                        jpegs.append((len(raw), tiles.full(raw)))
        samples.append((pixels, jpegs))

    def lossy(a: np.ndarray, d: float) -> int:
        total = 0
        for y in range(0, a.shape[0], 256):
            for x in range(0, a.shape[1], 256):
                total += len(imagecodecs.jpegxl_encode(np.ascontiguousarray(a[y : y + 256, x : x + 256]),
                                                       lossless=False, distance=d, effort=effort))
        return total

    def measure(sample: tuple[np.ndarray, list]) -> dict[str, float]:
        pixels, jpegs = sample
        halved = downsample(pixels, (True, True) + ((False,) if pixels.ndim == 3 else ()), "mean")
        out = {"px0": pixels.shape[0] * pixels.shape[1], "px1": halved.shape[0] * halved.shape[1]}
        if "recompress" in modes and jpegs:
            out["raw"] = sum(n for n, _ in jpegs)
            out["jxl"] = sum(len(imagecodecs.jpegxl_encode_jpeg(j)) for _, j in jpegs if j is not None)
            out["c1"] = lossy(halved, distances["recompress"])
        if "lossy" in modes:
            out["b0"], out["b1"] = lossy(pixels, distances["lossy"]), lossy(halved, distances["lossy"])
        if "lossless" in modes:
            out["a0"] = len(imagecodecs.jpegxl_encode(pixels, lossless=True, effort=2))
            out["a1"] = len(imagecodecs.jpegxl_encode(halved, lossless=True, effort=2))
        return out

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, os.cpu_count() or 1), "mzarr-estimate") as pool:
        measured = list(pool.map(measure, samples))
    total = {k: sum(m.get(k, 0) for m in measured) for k in ("px0", "px1", "raw", "jxl", "c1", "b0", "b1", "a0", "a1")}
    if not total["px0"]:
        return {}
    h, w = info.shape[:2]
    px0, px1 = h * w, -(-h // 2) * -(-w // 2)

    def pyramid(level0: float, level1_key: str, chunk: tuple[int, int]) -> int:
        rows = sum(-(-(-(-h // 2**i)) // chunk[0]) * -(-(-(-w // 2**i)) // chunk[1])
                   for i in range(max(1, math.ceil(math.log2(max(h / chunk[0], w / chunk[1], 1)))) + 1))
        level1 = total[level1_key] / max(total["px1"], 1) * px1
        return int(level0 + level1 * LEVELS_AFTER_1 + rows * ROW_OVERHEAD + info.associated_bytes)

    out: dict[str, int] = {}
    if "recompress" in modes and total["raw"]:
        out["recompress"] = pyramid(total["jxl"] / total["raw"] * info.level0_bytes, "c1", (tile_h, tile_w))
    if "lossy" in modes:
        out["lossy"] = pyramid(total["b0"] / total["px0"] * px0, "b1", (512, 512))
    if "lossless" in modes:
        out["lossless"] = pyramid(total["a0"] / total["px0"] * px0, "a1", (512, 512))
    return out


# -- describing ------------------------------------------------------------------------------------------------------
def _describe(path: Path, tif: Any, array: Any = None) -> tuple[SlideInfo, Any, Any]:
    kind_name = _vendor(tif)
    main = _main_series(tif)
    kind = kind_name[0] if kind_name else (main.kind or "tiff")
    vendor = kind_name[1] if kind_name else "TIFF"
    page = _level0_page(main)
    if array is None:
        array, _axes, planes = _level0_array(main, path)
    else:
        planes = 1
    meta = _vendor_metadata(tif, kind, page)
    levels = [(int(lv.shape[lv.axes.upper().index("X")]), int(lv.shape[lv.axes.upper().index("Y")]))
              for lv in (main.levels or [main])]
    why_not = _jpeg_layout(page, kind)
    _series, associated = _associated(tif, main, True, True)
    compression = int(page.compression)
    info = SlideInfo(
        path=path, vendor=vendor, kind=kind, shape=tuple(int(n) for n in array.shape), dtype=str(array.dtype),
        levels=levels, tile=(int(page.tilelength), int(page.tilewidth)) if page.is_tiled else None,
        compression=LOSSY_SOURCE.get(compression, _compression_name(page)), jpeg_tiles=why_not is None,
        jpeg_note=why_not or "JPEG tiles: they transcode to JPEG XL without loss (pixels identical)",
        lossy_source=compression in LOSSY_SOURCE, mpp=meta.mpp, objective_power=meta.objective_power,
        scanner=meta.scanner, associated=associated, file_bytes=os.path.getsize(path),
        level0_bytes=int(sum(page.databytecounts)), focal_planes=planes,
        associated_bytes=sum(int(sum(s.keyframe.databytecounts)) for s in _series.values()),
    )
    return info, main, meta


def describe_slide(path: str | os.PathLike) -> SlideInfo:
    """What a slide holds, before importing it (cheap: tags, metadata and a few tiles): dimensions, levels, tile
    grid, JPEG or not (and whether its tiles transcode without loss), MPP, objective power, associated pictures,
    the default compression and the estimated size."""
    path = Path(path)
    if not path.is_file():
        raise MzarrFileNotFoundError(f"no such file: {path}")
    with _open_tiff(path) as tif:
        info, main, _meta = _describe(path, tif)
        array, _axes, _planes = _level0_array(main, path)
        tiles = JpegTiles(path, _level0_page(main)) if info.jpeg_tiles and info.dtype == "uint8" else None
        try:
            if tiles is not None:
                why = _check_tiles(tiles, array)
                if why:
                    info.jpeg_tiles, info.jpeg_note = False, why
                    tiles.close()
                    tiles = None
            if info.dtype in ("uint8", "uint16"):
                info.estimates = estimate_sizes(info, array, tiles, info.compressions())
        finally:
            if tiles is not None:
                tiles.close()
        return info


class _Owner:
    """What an open slide holds: the TiffFile and the tile reader's file handle (closed together)."""

    def __init__(self, tif: Any, tiles: JpegTiles | None):
        self.tif, self.tiles = tif, tiles

    def close(self) -> None:
        if self.tiles is not None:
            self.tiles.close()
        self.tif.close()


# -- opening ---------------------------------------------------------------------------------------------------------
@dataclass
class SlideSource(Source):
    """A slide opened for conversion: level 0 (lazy), its spacing and attributes, and how it will be stored:
    ``compression`` ("recompress", "lossy" or "lossless"), ``distance`` (lossy levels), ``reason`` (one line for
    the user), ``jpeg_tiles`` (the recompress mode's tile provider) and ``associated`` pictures."""

    info: SlideInfo | None = None
    compression: str = "lossless"
    distance: float | None = None
    reason: str = ""
    jpeg_tiles: Callable[[tuple[int, ...]], bytes | None] | None = None
    chunks: tuple[int, ...] | None = None
    associated: dict[str, Any] = field(default_factory=dict)  # name -> array, or (array, lossy distance)

    def note(self, distance: float | None = None) -> str:
        """The plain line printed before converting: what was chosen and why."""
        d = self.distance if distance is None else distance
        if self.compression == "recompress":
            assert self.info is not None and self.info.tile is not None
            what = (f"recompress: level 0's JPEG tiles ({self.info.tile[1]} x {self.info.tile[0]}) transcoded to "
                    f"JPEG XL without loss (the source's exact pixels), levels 1+ lossy JPEG XL at "
                    f"distance {d:g}")
        elif self.compression == "lossy":
            what = f"lossy: JPEG XL of the decoded pixels at distance {d:g}"
        else:
            what = "lossless: JPEG XL of the decoded pixels (bit-exact)"
        return f"slide compression {what}; {self.reason}"

    def close(self) -> None:
        if self.owner is not None:
            self.owner.close()

    def save(self, dst: str | os.PathLike, progress: Callable[[int, int], Any] | None = None, *,
             report: Callable[[str], Any] | None = None, **save_options: Any) -> Path:
        """Write the slide to ``dst`` (.mzarr or *.zarr) the chosen way. ``save_options`` are :meth:`Mzarr.save`'s:
        ``distance``/``quality`` set the lossy distance (levels 1+ when recompressing); ``report(line)`` is told
        what was chosen and why before the first block is written."""
        from ..codecs import quality_to_distance
        from ..image import Mzarr

        options = dict(save_options)
        distance = options.pop("distance", None)
        quality = options.pop("quality", None)
        lossless = options.pop("lossless", None)
        if quality is not None:
            distance = quality_to_distance(quality)
        if self.compression == "lossless":
            if distance is not None or lossless is False:
                raise MzarrValueError(
                    "the slide is converted lossless (--slide-compression lossless); --distance/--quality/--lossy "
                    "apply to --slide-compression lossy or recompress"
                )
        elif self.compression == "recompress" and options.get("chunks") is not None:
            raise MzarrValueError(
                "recompressed slides keep the source's tile shape as level 0's chunks; drop --chunks, or choose "
                "--slide-compression lossy or lossless"
            )
        distance = float(distance) if distance is not None else self.distance
        image = Mzarr(
            self.array,
            axes=options.pop("axes", None) or self.axes,
            channel_axis=options.pop("channel_axis", None),
            spacing=options.pop("spacing", None) or self.spacing,
            unit=options.pop("unit", None) or self.unit,
            attrs={**self.attrs, **(options.pop("attrs", None) or {})},
        )
        if report is not None:
            report(self.note(distance))
        options.setdefault("associated", self.associated)
        if self.compression == "recompress":
            return image.save(dst, distance=distance, chunks=self.chunks, jpeg_tiles=self.jpeg_tiles,
                              progress=progress, **options)
        if self.compression == "lossy":
            return image.save(dst, lossless=False, distance=distance, progress=progress, **options)
        return image.save(dst, lossless=True, progress=progress, **options)


def _slide_attrs(info: SlideInfo, meta: _Metadata, keep_label: bool, associated: dict[str, Any]) -> dict[str, Any]:
    properties, dropped = _keep(meta.properties, keep_label)
    slide: dict[str, Any] = {
        "vendor": info.vendor,
        "format": info.kind,
        "source": info.path.name if keep_label else None,
        "mpp": list(info.mpp) if info.mpp else None,
        "objective_power": info.objective_power,
        "scanner": info.scanner,
        "levels": [list(lv) for lv in info.levels],
        "tile": list(info.tile) if info.tile else None,
        "compression": info.compression,
        "associated": sorted(associated),
        "properties": properties,
    }
    if "label" in info.associated:
        slide["label"] = ("kept (keep_label=True)" if keep_label else
                          "left out: slide labels show patient identifiers (convert with keep_label=True / "
                          "--keep-label to keep it)")
    if dropped:
        slide["left_out_fields"] = dropped
    if info.focal_planes > 1:
        slide["focal_planes"] = info.focal_planes
    return {"slide": {k: v for k, v in slide.items() if v is not None}}


def open_slide(path: str | os.PathLike, *, compression: str | None = None, keep_label: bool = False,
               keep_macro: bool = True) -> SlideSource:
    """Open a whole-slide image for conversion (see the module docstring): level 0 lazily, MPP as the spacing
    (micrometre), the vendor metadata in ``attrs["slide"]``, the thumbnail and macro (and the label only with
    ``keep_label``) as associated images, and the way it will be stored: ``compression`` None chooses
    "recompress" for JPEG tiles, "lossy" for other lossy sources, "lossless" otherwise."""
    path = Path(path)
    if compression is not None and compression not in COMPRESSIONS:
        raise MzarrValueError(f"slide compression must be one of {', '.join(COMPRESSIONS)}; got {compression!r}")
    if not path.is_file():
        raise MzarrFileNotFoundError(f"no such file: {path}")
    tif = _open_tiff(path)
    tiles: JpegTiles | None = None
    try:
        main = _main_series(tif)
        array, axes, planes = _level0_array(main, path)
        info, main, meta = _describe(path, tif, array)
        info.focal_planes = planes
        if np.dtype(array.dtype) not in (np.uint8, np.uint16):
            raise MzarrFormatError(f"{path}: level 0 is {array.dtype}; slides are 8- or 16-bit")
        page = _level0_page(main)
        why_not = None if info.jpeg_tiles else info.jpeg_note
        if info.jpeg_tiles and compression in (None, "recompress"):
            tiles = JpegTiles(path, page)
            why_not = _check_tiles(tiles, array)
            if why_not:
                tiles.close()
                tiles = None
                info.jpeg_tiles, info.jpeg_note = False, why_not
        if compression is None and tiles is not None:
            info.estimates = estimate_sizes(info, array, tiles, ("recompress",))
        chosen = compression or info.default_compression()
        if chosen == "recompress" and tiles is None:
            raise MzarrValueError(
                f"{path.name} cannot be recompressed without loss: {why_not}; use --slide-compression lossy "
                f"(smaller, approximate) or lossless (exact, larger)"
            )
        estimate = info.estimates.get("recompress", 0)
        ratio = f"~{estimate / 1e6:.1f} MB, {estimate / max(info.file_bytes, 1):.2f}x the source's {info.file_bytes / 1e6:.1f} MB"
        if compression:
            reason = "as asked"
            if chosen != "recompress" and info.jpeg_tiles:
                reason += " (--slide-compression recompress keeps the JPEG tiles' exact pixels)"
        elif chosen == "recompress":
            reason = (f"chosen because level 0 is JPEG tiles and their exact copy stays within the source's size "
                      f"(estimated {ratio})")
        elif chosen == "lossy" and tiles is not None:
            reason = (f"chosen because keeping the JPEG tiles exactly (recompress) would make the file larger than the "
                      f"source (estimated {ratio}: Mzarr's pyramid halves each level where the slide's quarters them); "
                      "--slide-compression recompress keeps the source's exact pixels")
        elif chosen == "lossy":
            reason = (f"chosen because {why_not}; the source is already lossy ({info.compression}), and lossless "
                      "JPEG XL of its decoded pixels would be several times larger")
        else:
            reason = f"chosen because the source is stored without loss ({info.compression})"
        if tiles is not None and chosen != "recompress":
            tiles.close()
        series, _shapes = _associated(tif, main, keep_label, keep_macro)
        associated = _read_associated(series)
        attrs = _slide_attrs(info, meta, keep_label, associated)
        spacing = (info.mpp[1], info.mpp[0]) if info.mpp else None
        return SlideSource(
            array=array, axes=axes, spacing=spacing, unit="micrometer" if spacing else None, attrs=attrs,
            owner=_Owner(tif, tiles if chosen == "recompress" else None),
            info=info, compression=chosen, reason=reason,
            distance=RECOMPRESS_DISTANCE if chosen == "recompress" else (LOSSY_DISTANCE if chosen == "lossy" else None),
            jpeg_tiles=tiles if chosen == "recompress" else None,
            chunks=(info.tile + ((array.shape[2],) if axes == "yxc" else ())) if chosen == "recompress" and info.tile else None,
            associated=associated,
        )
    except BaseException:
        if tiles is not None:
            tiles.close()
        tif.close()
        raise


def read(path: str | os.PathLike, *, compression: str | None = None, keep_label: bool = False) -> SlideSource:
    """The registry's reader: :func:`open_slide`."""
    return open_slide(path, compression=compression, keep_label=keep_label)


def convert_slide(src: str | os.PathLike, dst: str | os.PathLike, progress: Callable[[int, int], Any] | None = None, *,
                  compression: str | None = None, keep_label: bool = False,
                  report: Callable[[str], Any] | None = None, **save_options: Any) -> Path:
    """Convert a slide to ``dst`` (see :func:`open_slide` and :meth:`SlideSource.save`)."""
    source = open_slide(src, compression=compression, keep_label=keep_label)
    try:
        return source.save(dst, progress, report=report, **save_options)
    finally:
        source.close()
