"""Whole-slide images only OpenSlide reads (3DHISTECH MIRAX ``.mrxs`` with its folder of ``.dat`` files, Hamamatsu
VMS/VMU, Sakura ``.svslide``, Zeiss ``.czi``), through openslide-python and the OpenSlide library of openslide-bin:
the optional extra ``pip install "mzarr[openslide]"`` (not in the ready-made app bundles).

Same shape as :mod:`mzarr_core.formats.slide` (the tifffile-based reader of SVS, NDPI, SCN, BIF...): ``sniff``,
``describe_slide`` (-> :class:`~mzarr_core.formats.slide.SlideInfo`), ``open_slide`` (->
:class:`OpenSlideSource`, a :class:`~mzarr_core.formats.slide.SlideSource`), ``read`` (the registry's reader) and
``convert_slide``. What it gives:

* level 0 as a lazy ``(y, x, 3)`` uint8 RGB array (:class:`OpenSlideArray`): a read asks OpenSlide's
  ``read_region`` for the requested region only, in tiles of at most :data:`READ_TILE` x :data:`READ_TILE` pixels,
  RGBA composited over the slide's background colour (``openslide.background-color``, white when unset) as
  OpenSlide's own thumbnails and Deep Zoom tiles are. Level 0 keeps OpenSlide's full coordinates (MIRAX's empty
  margins included: uniform background costs next to nothing in JPEG XL); ``openslide.bounds-*`` are kept in the
  properties.
* ``openslide.mpp-x/y`` as the spacing in micrometres; the objective power; OpenSlide's and the vendor's properties
  in ``attrs["slide"]["properties"]`` (OpenSlide's own names, e.g. ``mirax.GENERAL.OBJECTIVE_MAGNIFICATION``).
* the associated pictures (thumbnail, macro, and the label only with ``keep_label=True``) as associated images.
* the storage mode: OpenSlide decodes the tiles, so their JPEG streams cannot be transcoded without loss
  ("recompress" is :mod:`slide`'s tifffile path only): ``"lossy"`` (JPEG XL at distance 3, slide.py's measured
  default) for sources stored lossy (MIRAX JPEG, VMS, Sakura, JPEG/JPEG 2000 TIFFs), ``"lossless"`` for the others
  and where the compression is not known.

Privacy, as in :mod:`slide`: the label picture, the file name and the properties that may identify the patient or
the case (slide.py's ``IDENTIFYING`` fields, plus OpenSlide's file references, ``openslide.comment`` and the TIFF
description that repeats them, slide IDs and names, DICOM UIDs...) are left out unless ``keep_label=True``.

Any file OpenSlide reads can be forced through this module (``open_slide(path)``, ``convert_slide(src, dst)``),
e.g. a TIFF slide tifffile cannot read.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import MzarrFileNotFoundError, MzarrFormatError, MzarrValueError
from . import slide as _slide
from .base import head
from .slide import LOSSY_DISTANCE, RECOMPRESS_DISTANCE, SlideInfo, SlideSource

__all__ = [
    "COMPRESSIONS",
    "LOSSY_DISTANCE",
    "READ_TILE",
    "RECOMPRESS_DISTANCE",
    "OpenSlideArray",
    "OpenSlideSource",
    "available",
    "convert_slide",
    "describe_slide",
    "open_slide",
    "read",
    "sniff",
]

#: the modes OpenSlide's decoded pixels can be stored with (no "recompress": the JPEG streams are not reachable)
COMPRESSIONS = ("lossless", "lossy")
#: largest side of one ``read_region`` call (RGBA: at most 4 MiB a call, whatever the caller asks for)
READ_TILE = 1024
#: threads reading the tiles of one large request at once (an OpenSlide handle is safe to share between threads)
READ_THREADS = min(4, os.cpu_count() or 1)
EXTRA = "openslide"
INSTALL = f'pip install "mzarr[{EXTRA}]"'

#: OpenSlide vendor -> (what users call it, the kind shown beside it)
VENDORS = {
    "mirax": ("3DHISTECH MIRAX", "mrxs"), "hamamatsu": ("Hamamatsu", "vms"), "sakura": ("Sakura", "svslide"),
    "zeiss": ("Zeiss", "czi"), "aperio": ("Aperio", "svs"), "leica": ("Leica", "scn"),
    "ventana": ("Ventana", "bif"), "philips": ("Philips", "tiff"), "trestle": ("Trestle", "tif"),
    "generic-tiff": ("TIFF", "tiff"), "dicom": ("DICOM", "dicom"), "synthetic": ("OpenSlide synthetic", "synthetic"),
}
#: vendors whose files are TIFFs tifffile reads (slide.py / tiff.py): a file of unknown suffix sniffed as one of
#: these is left to them
TIFF_VENDORS = {"aperio", "leica", "ventana", "philips", "trestle", "generic-tiff"}
#: properties that may identify the patient or the case beyond slide.py's IDENTIFYING fields (OpenSlide's and the
#: vendors' names): the TIFF description that repeats the vendor's fields, file references named after the case,
#: slide / project / container identifiers, DICOM UIDs and names. Left out unless keep_label=True.
IDENTIFYING = re.compile(
    r"image ?description|document ?name|artist|host ?computer|reference|(?<!pro)file(_?\d+)?$|file\(|"
    r"macro ?image|slide[ _-]?(id|name|barcode)|project[ _-]?name|container ?identifier|study ?id|institution|"
    r"physician|uid$|birth|address",
    re.IGNORECASE,
)
#: OpenSlide's structural properties, already in the slide record (levels, tile, associated)
STRUCTURAL = re.compile(r"^openslide\.(level\[|level-count$|associated\.)")
LOSSY_WORDS = re.compile(r"jpe?g|j2k|jp2|jpeg ?2000|jpg ?xr|jpeg ?xr|webp|lossy", re.IGNORECASE)


# -- the optional package ---------------------------------------------------------------------------------------------
def missing_message(detail: str = "") -> str:
    """What to do when openslide-python or its OpenSlide library is missing."""
    text = ("reading MRXS, VMS and other OpenSlide-only slides needs the optional packages openslide-python and "
            f"openslide-bin (the OpenSlide library), which are not installed: {INSTALL}")
    if getattr(sys, "frozen", False):
        text += (" -- the ready-made Mzarr bundles do not include OpenSlide: install Mzarr with Python (docs/INSTALL.md)"
                 " to import these slides")
    return text + (f" ({detail})" if detail else "")


def _openslide() -> Any:
    """The ``openslide`` module (imported by name only when used: never pulled into the app bundles)."""
    try:
        return importlib.import_module("openslide")
    except ImportError as exc:
        name = (getattr(exc, "name", None) or "").split(".")[0]
        raise MzarrFormatError(missing_message("" if name == "openslide" else str(exc))) from None
    except OSError as exc:  # openslide-python present, the shared library broken
        raise MzarrFormatError(missing_message(str(exc))) from None


def available() -> bool:
    """True if openslide-python and the OpenSlide library can be used."""
    try:
        _openslide()
    except MzarrFormatError:
        return False
    return True


# -- sniffing ---------------------------------------------------------------------------------------------------------
VMS_HEADERS = (b"[Virtual Microscope Specimen]", b"[Uncompressed Virtual Microscope Specimen]")


def sniff(path: Path) -> bool:
    """True for a slide only OpenSlide reads (MIRAX, Hamamatsu VMS/VMU, Sakura, Zeiss; TIFF-based ones are left to
    the slide and TIFF readers). Without openslide-python, the files that say so in their first bytes (VMS/VMU
    headers, CZI's ``ZISRAWFILE``)."""
    path = Path(path)
    if not path.is_file():
        return False
    start = head(path, 64)
    if start[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return False  # a TIFF: tifffile's (slide.py, tiff.py); force OpenSlide with open_slide()
    try:
        openslide = _openslide()
    except MzarrFormatError:
        text = start.lstrip(b"\xef\xbb\xbf").lstrip()
        return text.startswith(VMS_HEADERS) or start.startswith(b"ZISRAWFILE")
    try:
        vendor = openslide.OpenSlide.detect_format(str(path))
    except Exception:  # noqa: BLE001 - a sniff never raises
        return False
    return bool(vendor) and vendor not in TIFF_VENDORS and vendor != "dicom"


# -- the lazy level 0 -------------------------------------------------------------------------------------------------
def _background(properties: Any) -> tuple[int, int, int]:
    text = str(properties.get("openslide.background-color") or "FFFFFF").strip().lstrip("#")
    try:
        value = int(text, 16)
    except ValueError:
        return (255, 255, 255)
    return ((value >> 16) & 255, (value >> 8) & 255, value & 255) if len(text) == 6 else (255, 255, 255)


def composite(rgba: np.ndarray, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Non-premultiplied RGBA (what openslide-python returns) over ``background`` -> RGB uint8 (opaque pixels
    unchanged; transparent ones the background)."""
    rgba = np.asarray(rgba)
    rgb, alpha = rgba[..., :3], rgba[..., 3]
    if alpha.size == 0 or int(alpha.min()) == 255:
        return np.array(rgb, np.uint8)
    a = alpha.astype(np.uint16)[..., None]
    out = (rgb.astype(np.uint16) * a + np.asarray(background, np.uint16) * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _axis(key: Any, n: int) -> tuple[range, bool]:
    """(the indices ``key`` selects on an axis of length ``n``, whether the axis is dropped)."""
    if isinstance(key, Integral) and not isinstance(key, bool):
        i = int(key) + (n if int(key) < 0 else 0)
        if not 0 <= i < n:
            raise IndexError(f"index {int(key)} is out of bounds for an axis of size {n}")
        return range(i, i + 1), True
    if isinstance(key, slice):
        return range(*key.indices(n)), False
    raise IndexError(f"a slide's level 0 takes integers and slices (basic indexing), not {type(key).__name__}")


def _spans(r: range, tile: int) -> list[tuple[int, int, int, int]]:
    """For an ascending range ``r``: (output start, output stop, first source index, last source index + 1) of its
    part in each ``tile``-aligned band of the source (bands holding none of its indices skipped)."""
    out: list[tuple[int, int, int, int]] = []
    if len(r) == 0:
        return out
    first, last, step = r[0], r[-1], r.step
    for band in range(first // tile * tile, last + 1, tile):
        lo, hi = max(band, first), min(band + tile, last + 1)
        p0, p1 = -(-(lo - first) // step), -(-(hi - first) // step)
        if p0 < p1:
            out.append((p0, p1, first + p0 * step, first + (p1 - 1) * step + 1))
    return out


class OpenSlideArray:
    """Level 0 of an OpenSlide slide as a lazy ``(y, x, 3)`` uint8 RGB array: NumPy basic indexing reads only the
    requested region, through ``read_region`` calls of at most :data:`READ_TILE` x :data:`READ_TILE` pixels
    (aligned to that grid; a few at once for large requests), composited over ``background``. ``reads`` counts the
    ``read_region`` calls."""

    def __init__(self, slide: Any, *, background: tuple[int, int, int] = (255, 255, 255), name: str = "slide",
                 tile: int = READ_TILE, threads: int = READ_THREADS):
        width, height = (int(n) for n in slide.level_dimensions[0])
        self.slide, self.name = slide, name
        self.background = cast(tuple[int, int, int], tuple(background))
        self.tile, self.threads = int(tile), max(1, int(threads))
        self.shape = (height, width, 3)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 3
        self.reads = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.shape[0]

    def _key(self, key: Any) -> tuple[Any, Any, Any]:
        key = key if isinstance(key, tuple) else (key,)
        if sum(k is Ellipsis for k in key) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (3 - (len(key) - 1)) + key[i + 1 :]
        if len(key) > 3:
            raise IndexError(f"too many indices: the slide has 3 axes (y, x, c), got {len(key)}")
        return tuple(key) + (slice(None),) * (3 - len(key))  # type: ignore[return-value]

    def _read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        with self._lock:
            self.reads += 1
        try:
            region = self.slide.read_region((x, y), 0, (w, h))
        except Exception as exc:  # noqa: BLE001 - OpenSlideError and friends: one clear error naming the region
            raise MzarrFormatError(
                f"{self.name}: OpenSlide could not read the region x {x}:{x + w}, y {y}:{y + h} of level 0: {exc}"
            ) from None
        return composite(np.asarray(region), self.background)

    def __getitem__(self, key: Any) -> np.ndarray:
        ky, kx, kc = self._key(key)
        rows, drop_y = _axis(ky, self.shape[0])
        cols, drop_x = _axis(kx, self.shape[1])
        flip_y, flip_x = rows.step < 0, cols.step < 0
        rows, cols = (rows[::-1] if flip_y else rows), (cols[::-1] if flip_x else cols)
        out = np.empty((len(rows), len(cols), 3), np.uint8)
        tasks = [(ry, rx) for ry in _spans(rows, self.tile) for rx in _spans(cols, self.tile)]

        def fill(task: tuple[tuple[int, int, int, int], tuple[int, int, int, int]]) -> None:
            (py0, py1, y0, y1), (px0, px1, x0, x1) = task
            block = self._read(x0, y0, x1 - x0, y1 - y0)
            out[py0:py1, px0:px1] = block[:: rows.step, :: cols.step]

        if len(tasks) > 1 and self.threads > 1:
            with ThreadPoolExecutor(min(self.threads, len(tasks)), "mzarr-openslide") as pool:
                list(pool.map(fill, tasks))
        else:
            for task in tasks:
                fill(task)
        if flip_y or flip_x:
            out = out[:: -1 if flip_y else 1, :: -1 if flip_x else 1]
        out = out[..., kc]
        if drop_y or drop_x:
            out = out[(0 if drop_y else slice(None), 0 if drop_x else slice(None))]
        return np.ascontiguousarray(out)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)


class _Handle:
    """The open OpenSlide object, closed once."""

    def __init__(self, slide: Any):
        self.slide = slide
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.slide.close()


# -- what the file says -----------------------------------------------------------------------------------------------
def _open(path: Path) -> Any:
    openslide = _openslide()
    if not path.exists():
        raise MzarrFileNotFoundError(f"no such file: {path}")
    try:
        return openslide.OpenSlide(str(path))
    except Exception as exc:  # noqa: BLE001 - OpenSlideUnsupportedFormatError, OpenSlideError, OSError
        hint = ""
        if path.suffix.lower() == ".mrxs" and not (path.with_suffix("") / "Slidedat.ini").is_file():
            hint = (f"; a MIRAX slide is the .mrxs file and the folder of the same name beside it "
                    f"({path.with_suffix('').name}/Slidedat.ini and its .dat files): copy both")
        elif path.suffix.lower() in (".vms", ".vmu"):
            hint = "; a VMS/VMU slide needs the image files its header names, in the same folder"
        what = "not a slide format OpenSlide reads" if type(exc).__name__ == "OpenSlideUnsupportedFormatError" else exc
        raise MzarrFormatError(f"{path.name} could not be read through OpenSlide: {what}{hint}") from None


def _float(value: Any) -> float | None:
    return _slide._float(value)


def _source_files(path: Path, vendor: str) -> list[Path]:
    """The files a slide is made of: a MIRAX .mrxs and its folder, a VMS/VMU header and the images it names."""
    files = [path]
    if vendor == "mirax" and path.with_suffix("").is_dir():
        files += [p for p in sorted(path.with_suffix("").rglob("*")) if p.is_file()]
    elif path.suffix.lower() in (".vms", ".vmu"):
        try:
            text = path.read_text("latin-1", "replace")
        except OSError:
            text = ""
        for line in text.splitlines():
            _key, sep, value = line.partition("=")
            candidate = path.parent / Path(value.strip()).name if sep and value.strip() else None
            if candidate is not None and candidate.is_file() and candidate not in files:
                files.append(candidate)
    return files


def _tiff_compression(path: Path) -> tuple[str, bool] | None:
    """(name, lossy) of the largest page's compression of a TIFF-based slide (tifffile's tags only)."""
    if head(path, 4) not in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return None
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            pages: Any = tif.pages  # TiffPage | TiffFrame to the type checker; a slide's are pages
            page = max(pages, key=lambda p: int(p.imagewidth) * int(p.imagelength))
            code = int(page.compression)
            return _slide.LOSSY_SOURCE.get(code, _slide._compression_name(page)), code in _slide.LOSSY_SOURCE
    except Exception:  # noqa: BLE001 - a TIFF tifffile cannot read (the reason to force OpenSlide)
        return None


def _compression(path: Path, vendor: str, props: dict[str, str]) -> tuple[str, bool | None]:
    """(level 0's compression as far as it is known, lossy? -- None when not known)."""
    if vendor == "mirax":
        fmt = props.get("mirax.LAYER_0_LEVEL_0_SECTION.IMAGE_FORMAT", "")
        if fmt:
            return fmt, bool(LOSSY_WORDS.search(fmt))
        return "JPEG (MIRAX's usual)", True
    if vendor == "hamamatsu" and path.suffix.lower() == ".vmu":
        return "uncompressed (VMU)", False
    if vendor == "hamamatsu" and path.suffix.lower() == ".vms":
        return "JPEG (VMS)", True
    found = _tiff_compression(path)
    if found is not None:
        return found
    if vendor == "sakura":
        return "JPEG (Sakura)", True
    for key, value in props.items():
        if re.search(r"compression", key, re.IGNORECASE) and value.strip():
            word = value.strip()
            if LOSSY_WORDS.search(word):
                return word, True
            if re.search(r"^(none|uncompressed|raw|lzw|zstd|zlib|deflate|png|bmp|lossless)", word, re.IGNORECASE):
                return word, False
    return "not known", None


def _scanner(props: dict[str, str]) -> str | None:
    for keys in (("aperio.ScanScope ID",), ("tiff.Make", "tiff.Model"), ("leica.device-model",),
                 ("philips.DICOM_MANUFACTURER", "philips.DICOM_DEVICE_SERIAL_NUMBER"),
                 ("mirax.NONHIERLAYER_0_SECTION.SCANNER_HARDWARE_VERSION",), ("hamamatsu.Product",),
                 ("dicom.Manufacturer", "dicom.ManufacturerModelName")):
        text = " ".join(props[k].strip() for k in keys if props.get(k, "").strip())
        if text:
            return _slide._short(text)
    return None


def _associated_name(name: str) -> str | None:
    """OpenSlide's associated image name as a Mzarr associated image name ([a-z0-9_], at most 32)."""
    clean = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")[:32]
    return clean or None


def _associated_shapes(slide: Any, props: dict[str, str]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for name in list(slide.associated_images.keys()):
        mine = _associated_name(str(name))
        if mine is None or mine in shapes:
            continue
        w = _float(props.get(f"openslide.associated.{name}.width"))
        h = _float(props.get(f"openslide.associated.{name}.height"))
        shapes[mine] = (int(h), int(w), 3) if w and h else (0, 0, 3)
    return shapes


@dataclass
class _Opened:
    slide: Any
    info: SlideInfo
    props: dict[str, str]
    array: OpenSlideArray
    vendor: str


def _describe(path: Path, slide: Any) -> _Opened:
    props = {str(k): str(v) for k, v in dict(slide.properties).items()}
    vendor_id = props.get("openslide.vendor") or (slide.detect_format(str(path)) or "unknown")
    vendor, kind = VENDORS.get(vendor_id, (vendor_id, vendor_id))
    if vendor_id == "hamamatsu":
        kind = path.suffix.lower().lstrip(".") or kind
    array = OpenSlideArray(slide, background=_background(props), name=path.name)
    mpp_x, mpp_y = _float(props.get("openslide.mpp-x")), _float(props.get("openslide.mpp-y"))
    tile_w = _float(props.get("openslide.level[0].tile-width"))
    tile_h = _float(props.get("openslide.level[0].tile-height"))
    compression, lossy = _compression(path, vendor_id, props)
    if lossy is None:
        note = ("read through OpenSlide, which decodes the tiles; the source's compression is not known, so the "
                "default keeps the decoded pixels exactly (lossless)")
    else:
        note = ("read through OpenSlide, which decodes the tiles: JPEG XL of the decoded pixels (the tiles' own "
                "streams cannot be transcoded without loss)")
    files = _source_files(path, vendor_id)
    info = SlideInfo(
        path=path, vendor=vendor, kind=kind, shape=array.shape, dtype="uint8",
        levels=[(int(w), int(h)) for w, h in slide.level_dimensions],
        tile=(int(tile_h), int(tile_w)) if tile_w and tile_h else None,
        compression=compression, jpeg_tiles=False, jpeg_note=note, lossy_source=bool(lossy),
        mpp=(mpp_x, mpp_y) if mpp_x and mpp_y else None,
        objective_power=_float(props.get("openslide.objective-power")), scanner=_scanner(props),
        associated=_associated_shapes(slide, props), file_bytes=sum(os.path.getsize(f) for f in files),
    )
    return _Opened(slide, info, props, array, vendor_id)


def describe_slide(path: str | os.PathLike) -> SlideInfo:
    """What a slide holds, before importing it (OpenSlide's properties and 8 sampled blocks for the size
    estimates): the same :class:`~mzarr_core.formats.slide.SlideInfo` slide.py gives (``lines()`` is what the CLI
    and the viewer show; ``compressions()`` is lossless and lossy)."""
    path = Path(path)
    if not path.exists():
        raise MzarrFileNotFoundError(f"no such file: {path}")
    slide = _open(path)
    try:
        opened = _describe(path, slide)
        opened.info.estimates = _slide.estimate_sizes(opened.info, opened.array, None, COMPRESSIONS)
        return opened.info
    finally:
        slide.close()


# -- opening ----------------------------------------------------------------------------------------------------------
@dataclass
class OpenSlideSource(SlideSource):
    """A slide opened through OpenSlide (see :class:`~mzarr_core.formats.slide.SlideSource`). ``asked``: the
    compression was given (else it was chosen, and ``save``'s explicit ``lossless``/``distance``/``quality``
    options -- the CLI's ``--lossy``, the viewer's lossless/lossy choice -- choose it instead)."""

    asked: bool = False

    def save(self, dst: str | os.PathLike, progress: Callable[[int, int], Any] | None = None, *,
             report: Callable[[str], Any] | None = None, **save_options: Any) -> Path:
        lossless = save_options.get("lossless")
        if not self.asked:
            wants_lossy = lossless is False or (lossless is None and (save_options.get("distance") is not None or
                                                                      save_options.get("quality") is not None))
            mode = "lossy" if wants_lossy else "lossless" if lossless is True else None
            if mode is not None and mode != self.compression:
                self.compression, self.reason = mode, "as asked"
                self.distance = LOSSY_DISTANCE if mode == "lossy" else None
        if self.compression == "lossless" and lossless is True:
            save_options.pop("lossless")
        return super().save(dst, progress, report=report, **save_options)


def _properties(props: dict[str, str], keep_label: bool) -> tuple[dict[str, str], list[str]]:
    """OpenSlide's properties to keep (``openslide.*`` first), and those left out as possibly identifying."""
    ordered = sorted((k for k in props if not STRUCTURAL.match(k)), key=lambda k: (not k.startswith("openslide."), k))
    kept: dict[str, str] = {}
    dropped: list[str] = []
    for key in ordered:
        if not keep_label and IDENTIFYING.search(key.rsplit(".", 1)[-1]):
            dropped.append(key)
        else:
            kept[key] = props[key]
    return kept, dropped


def _read_associated(slide: Any, shapes: dict[str, tuple[int, ...]], background: tuple[int, int, int],
                     keep_label: bool, keep_macro: bool, lossy: bool) -> dict[str, Any]:
    """name -> RGB array (lossless) or (array, distance) for the previews of a lossy slide; the label only with
    ``keep_label`` (stored lossless: its text and barcode stay readable)."""
    from ..associated import MAX_PIXELS

    out: dict[str, Any] = {}
    for name in list(slide.associated_images.keys()):
        mine = _associated_name(str(name))
        if mine is None or mine in out or (mine == "label" and not keep_label) or (mine == "macro" and not keep_macro):
            continue
        h, w = shapes.get(mine, (0, 0, 3))[:2]
        if h * w > MAX_PIXELS:
            continue
        try:
            image = composite(np.asarray(slide.associated_images[name].convert("RGBA")), background)
        except Exception:  # noqa: BLE001 - a damaged associated picture is skipped, the slide still imports
            continue
        if image.ndim != 3 or image.shape[0] * image.shape[1] == 0 or image.shape[0] * image.shape[1] > MAX_PIXELS:
            continue
        image = np.ascontiguousarray(image)
        out[mine] = (image, _slide.ASSOCIATED_DISTANCE) if lossy and mine != "label" else image
    return out


def open_slide(path: str | os.PathLike, *, compression: str | None = None, keep_label: bool = False,
               keep_macro: bool = True) -> OpenSlideSource:
    """Open any slide OpenSlide reads for conversion: level 0 lazily (:class:`OpenSlideArray`), MPP as the spacing
    (micrometre), the properties in ``attrs["slide"]``, the thumbnail and macro (and the label only with
    ``keep_label``) as associated images. ``compression``: "lossy" or "lossless"; None chooses lossy for sources
    stored lossy, lossless otherwise ("recompress" needs the JPEG tiles themselves: slide.py's tifffile path)."""
    path = Path(path)
    if compression == "recompress":
        raise MzarrValueError(
            f"{path.name} is read through OpenSlide, which decodes the tiles: they cannot be recompressed without "
            "loss; use --slide-compression lossy (smaller, approximate) or lossless (the decoded pixels, exact)"
        )
    if compression is not None and compression not in COMPRESSIONS:
        raise MzarrValueError(f"slide compression must be one of {', '.join(COMPRESSIONS)}; got {compression!r}")
    if not path.exists():
        raise MzarrFileNotFoundError(f"no such file: {path}")
    slide = _open(path)
    try:
        opened = _describe(path, slide)
        info = opened.info
        chosen = compression or info.default_compression()
        if compression:
            reason = "as asked"
        elif chosen == "lossy":
            reason = (f"chosen because the source is already lossy ({info.compression}) and OpenSlide gives its "
                      "decoded pixels: lossless JPEG XL of them would be several times larger; "
                      "--slide-compression lossless keeps them exactly")
        elif info.lossy_source is False and info.compression != "not known":
            reason = f"chosen because the source is stored without loss ({info.compression})"
        else:
            reason = "chosen because the source's compression is not known (lossless keeps the decoded pixels exactly)"
        background = opened.array.background
        associated = _read_associated(slide, info.associated, background, keep_label, keep_macro,  # type: ignore[arg-type]
                                      info.lossy_source)
        properties, dropped = _properties(opened.props, keep_label)
        meta = _slide._Metadata(mpp=info.mpp, objective_power=info.objective_power, scanner=info.scanner,
                                properties=properties)
        attrs = _slide._slide_attrs(info, meta, keep_label, associated)
        record = attrs["slide"]
        openslide = _openslide()
        record["reader"] = (f"OpenSlide {getattr(openslide, '__library_version__', '?')} "
                            f"(openslide-python {getattr(openslide, '__version__', '?')})")
        record["openslide_vendor"] = opened.vendor
        if background != (255, 255, 255):
            record["background"] = list(background)
        if dropped:
            record["left_out_fields"] = sorted(set(record.get("left_out_fields", [])) | set(dropped))
        spacing = (info.mpp[1], info.mpp[0]) if info.mpp else None
        return OpenSlideSource(
            array=opened.array, axes="yxc", spacing=spacing, unit="micrometer" if spacing else None, attrs=attrs,
            owner=_Handle(slide), info=info, compression=chosen, reason=reason,
            distance=LOSSY_DISTANCE if chosen == "lossy" else None, associated=associated,
            asked=compression is not None,
        )
    except BaseException:
        slide.close()
        raise


def read(path: str | os.PathLike, *, compression: str | None = None, keep_label: bool = False) -> OpenSlideSource:
    """The registry's reader: :func:`open_slide`."""
    return open_slide(path, compression=compression, keep_label=keep_label)


def convert_slide(src: str | os.PathLike, dst: str | os.PathLike, progress: Callable[[int, int], Any] | None = None, *,
                  compression: str | None = None, keep_label: bool = False,
                  report: Callable[[str], Any] | None = None, **save_options: Any) -> Path:
    """Convert any slide OpenSlide reads to ``dst`` (.mzarr or *.zarr): :func:`open_slide`, then
    :meth:`OpenSlideSource.save` (``save_options`` as :meth:`mzarr_core.Mzarr.save`'s)."""
    source = open_slide(src, compression=compression, keep_label=keep_label)
    try:
        return source.save(dst, progress, report=report, **save_options)
    finally:
        source.close()
