"""What an import will do, before it starts (no Qt here): :func:`inspect` asks ``mzarr_core``'s formats registry
what a file or folder holds (shape, dtype, axes, spacing, the DICOM series or the slide's description, the library's
warnings) and :func:`estimate` predicts the size of the .mzarr by encoding a few sample chunks of the source with
the chosen compression.

Everything here may take seconds (a DICOM folder's headers, decoding sample chunks): the import dialog runs it on a
worker thread, never on the GUI thread.

How the size is estimated (non-slide formats): the image's level-0 chunk grid is the one ``mzarr_core`` would use
(``Mzarr(source).chunks``); up to :data:`SAMPLE_CHUNKS` chunks are picked at random (fixed seed) over the grid, read
from the source, put side by side along x and saved as a small .mzarr with the chosen compression (same chunk shape,
so the same codec path, pyramid included). The estimate is the file's bytes minus a container's fixed bytes, scaled
by (image voxels / sample voxels), plus the fixed bytes. An image of at most :data:`SAMPLE_CHUNKS` chunks is
encoded whole (the estimate is then the real size, give or take the attributes). Measured against real imports
(docs/VIEWER.md, "Importing other formats"): within 6 % lossless and 8 % lossy. Slides are sampled the same way from their
level 0, except the "recompress" mode (JPEG tiles transcoded without loss), whose size comes from the slide
module's own sampled estimate (:attr:`SlideInfo.estimates`).
"""

from __future__ import annotations

import importlib
import math
import os
import random
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mzarr_core import formats

SAMPLE_CHUNKS = 16  # chunks encoded to estimate the size (an image of at most this many is encoded whole)
LOSSY_DTYPES = ("uint8", "uint16", "int8", "int16")  # what mzarr_core stores lossy (JPEG XL)
DEFAULT_DISTANCE = 1.0  # lossy default offered in the dialog (mzarr_core's own default)
DEFAULT_QUALITY = 90.0
SLIDE_MODULE = "mzarr_core.formats.slide"
DICOM_MODULE = "mzarr_core.formats.dicom"
SLIDE_TEXT = {
    "recompress": "Recompress the JPEG tiles without loss (level 0 keeps the slide's exact pixels; levels 1+ lossy)",
    "lossless": "Lossless JPEG XL of the decoded pixels (exact, several times larger for JPEG slides)",
    "lossy": "Lossy JPEG XL of the decoded pixels",
}

_warn_lock = threading.Lock()  # warnings.catch_warnings is process-wide: one capture at a time
# One estimate at a time in the process (all dialogs): two saves cancelled at once both wait in mzarr_core's
# wait_for_zarr_io for the other's wait task, a 60 s stall (reported to mzarr_core).
_estimate_lock = threading.Lock()


@contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Record the MzarrWarnings raised inside the block (the library's notes about an input) as text."""
    from mzarr_core.errors import MzarrWarning

    out: list[str] = []
    with _warn_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield out
        finally:
            out += [str(w.message) for w in caught if issubclass(w.category, MzarrWarning)]


# -- the plan --------------------------------------------------------------------------------------------------------
@dataclass
class Compression:
    """The compression asked for: lossless (default), lossy at a distance or a quality, or a slide mode."""

    lossless: bool = True
    distance: float | None = None
    quality: float | None = None
    slide: str | None = None  # the slide module's mode ("recompress", "lossless", "lossy") for slides

    def save_options(self) -> dict[str, Any]:
        """Keyword options of ``Mzarr.save`` / ``mzarr_core.convert`` / the slide module's ``convert_slide``."""
        if self.slide is not None:
            return {"distance": self.distance} if self.slide != "lossless" and self.distance is not None else {}
        if self.lossless:
            return {}
        if self.quality is not None:
            return {"lossless": False, "quality": float(self.quality)}
        return {"lossless": False, "distance": float(self.distance or DEFAULT_DISTANCE)}

    def describe(self) -> str:
        if self.slide is not None:
            text = SLIDE_TEXT.get(self.slide, self.slide)
            return text + (f", distance {self.distance:g}" if self.slide != "lossless" and self.distance else "")
        if self.lossless:
            return "lossless (the exact pixels)"
        if self.quality is not None:
            return f"lossy JPEG XL, quality {self.quality:g}"
        return f"lossy JPEG XL, distance {self.distance or DEFAULT_DISTANCE:g}"


@dataclass
class ImportPlan:
    """What :func:`inspect` found in a source."""

    src: str
    format_name: str
    format_title: str
    shape: tuple[int, ...]
    dtype: str
    axes: str
    spacing: tuple[float, ...] | None
    unit: str | None
    is_label: bool = False
    warnings: list[str] = field(default_factory=list)
    source_bytes: int = 0
    series: list[Any] = field(default_factory=list)  # DICOM: DicomSeries records
    series_lines: list[str] = field(default_factory=list)  # DICOM: one line per series (format_dicom_series)
    series_index: int | None = None  # DICOM: DicomSeries.index of the series this plan describes
    slide_info: Any = None  # slides: the slide module's SlideInfo
    slide_compressions: tuple[str, ...] = ()
    slide_default: str | None = None
    slide_distances: dict[str, float] = field(default_factory=dict)  # default distance per slide mode
    details: list[str] = field(default_factory=list)  # extra lines (the slide's description)
    #: the reader option that keeps patient identifiers (DICOM: keep_phi; slides: keep_label), when it takes one
    privacy_option: str | None = None
    source: Any = None  # the opened Source (kept for the estimates; close with close())

    @property
    def is_slide(self) -> bool:
        return self.slide_info is not None

    @property
    def row_of_series(self) -> int | None:
        """Row of the planned series in :attr:`series` (the list the dialog shows)."""
        for row, s in enumerate(self.series):
            if s.index == self.series_index:
                return row
        return None

    def lossy_refusal(self) -> str:
        """Why lossy is not offered ("" if it is)."""
        if self.is_label:
            return "label images are stored lossless (lossy compression would invent labels)"
        if self.dtype not in LOSSY_DTYPES:
            return f"lossy compression is available for {', '.join(LOSSY_DTYPES)} images, not {self.dtype}"
        return ""

    def default_compression(self) -> Compression:
        if self.is_slide:
            mode = self.slide_default or "lossless"
            return Compression(slide=mode, distance=self.slide_distances.get(mode))
        return Compression()

    def read_options(self) -> dict[str, Any]:
        """The reader options that import exactly what this plan describes (DICOM: the series)."""
        return {"series": f"#{self.series_index}"} if self.series_index is not None else {}  # the N-th listed

    def close(self) -> None:
        src, self.source = self.source, None
        if src is not None:
            owner = getattr(src, "owner", None)
            closer = getattr(src, "close", None) or getattr(owner, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception:  # noqa: BLE001 - closing a source must never fail the dialog
                    pass


def _bytes_on_disk(path: Path, files: tuple[str, ...] = ()) -> int:
    if files:
        sizes = [os.path.getsize(f) for f in files if os.path.isfile(f)]
        if sizes:
            return sum(sizes)
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, names in os.walk(path):
        for n in names:
            try:
                total += os.path.getsize(os.path.join(root, n))
            except OSError:
                pass
    return total


def slide_module(fmt: formats.Format) -> Any:
    """The whole-slide module of ``fmt`` (tifffile's or OpenSlide's reader), None for other formats."""
    return formats.slide_module(fmt)


def inspect(src: str | os.PathLike, series: int | None = None) -> ImportPlan:
    """Look at ``src`` (headers, a few sample tiles for slides) and open it lazily; raises MzarrError types with
    the library's message when it cannot be imported. ``series``: DICOM ``DicomSeries.index`` (None: the
    library's choice, the largest)."""
    path = Path(src)
    fmt = formats.find_format(path)
    if fmt.native:
        raise ValueError(f"{path.name} is a {fmt.title} image: open it (File > Open), no import needed")
    slide = slide_module(fmt)
    if slide is not None:
        return _inspect_slide(path, fmt, slide)
    listed: list[Any] = []
    lines: list[str] = []
    chosen: int | None = None
    with captured_warnings() as notes:
        if fmt.name == "dicom":
            dicom = importlib.import_module(DICOM_MODULE)
            listed = list(dicom.list_dicom_series(path))
            default = dicom.pick_series(listed)  # the series the library reads when none is named
            chosen = series if series is not None else (default.index if default is not None else None)
            # "#N": the N-th listed (a bare number would be a SeriesNumber); None: the library chooses (and says so)
            source = formats.read(path, series=None if series is None else f"#{series}")
            lines = list(dicom.format_dicom_series(listed, next((s for s in listed if s.index == chosen), None)))
        else:
            source = formats.read(path)
    arr = source.array
    files = next((tuple(s.files) for s in listed if s.index == chosen), ())
    return ImportPlan(
        src=str(path), format_name=fmt.name, format_title=fmt.title,
        shape=tuple(int(n) for n in arr.shape), dtype=str(np.dtype(arr.dtype)),
        axes=source.axes or _guess_axes(arr), spacing=tuple(source.spacing) if source.spacing else None,
        unit=source.unit, is_label=bool(source.is_label), warnings=_unique(notes),
        source_bytes=_bytes_on_disk(path, files if path.is_dir() else ()),
        series=listed, series_lines=lines, series_index=chosen, source=source,
        privacy_option="keep_phi" if "keep_phi" in fmt.options else None,
    )


def _guess_axes(arr: Any) -> str:
    from mzarr_core import Mzarr

    return Mzarr(arr).axes


def _unique(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if line not in out:
            out.append(line)
    return out


def _inspect_slide(path: Path, fmt: formats.Format, slide: Any) -> ImportPlan:
    with captured_warnings() as notes:
        info = slide.describe_slide(path)
    shape = tuple(int(n) for n in info.shape)
    mpp = info.mpp
    compressions = tuple(info.compressions()) if hasattr(info, "compressions") else tuple(slide.COMPRESSIONS)
    distances = {"recompress": float(getattr(slide, "RECOMPRESS_DISTANCE", 2.0)),
                 "lossy": float(getattr(slide, "LOSSY_DISTANCE", 3.0))}
    return ImportPlan(
        src=str(path), format_name=fmt.name, format_title=f"{fmt.title} ({info.vendor})",
        shape=shape, dtype=str(info.dtype), axes="yxc" if len(shape) == 3 else "yx",
        spacing=(float(mpp[1]), float(mpp[0])) if mpp else None, unit="micrometer" if mpp else None,
        warnings=_unique(notes), source_bytes=int(info.file_bytes or _bytes_on_disk(path)),
        slide_info=info, slide_compressions=compressions, slide_default=info.default_compression(),
        slide_distances=distances, details=list(info.lines()),
        privacy_option="keep_label" if "keep_label" in fmt.options else None,
    )


# -- the size estimate -----------------------------------------------------------------------------------------------
@dataclass
class Estimate:
    """A predicted .mzarr size and how it was obtained."""

    bytes: int
    method: str  # "whole", "sampled" or "slide"
    sampled: int = 0  # chunks encoded
    chunks: int = 0  # chunks in the image
    chunk_shape: tuple[int, ...] = ()
    seconds: float = 0.0

    def how(self) -> str:
        shape = " × ".join(str(n) for n in self.chunk_shape)
        if self.method == "whole":
            return "the whole image encoded with the chosen compression"
        if self.method == "slide":
            return ("the slide module's estimate: the JPEG tiles of sample blocks transcoded and scaled to the "
                    "whole slide, plus the lossy levels 1+")
        return (f"{self.sampled} of its {self.chunks} chunks ({shape}) encoded with the chosen compression and "
                "scaled to the whole image; typically within ±15 %")


class Cancelled(Exception):
    """The estimate was no longer wanted."""


def _fixed_bytes(dtype: np.dtype, axes: str, channels: int, options: dict[str, Any], is_label: bool,
                 tmp: Path) -> int:
    """Bytes of a .mzarr holding a single voxel: the container's fixed part (SQLite pages, metadata)."""
    from mzarr_core import Mzarr

    shape = tuple(channels if a == "c" else 1 for a in axes)
    p = tmp / "fixed.mzarr"
    Mzarr(np.zeros(shape, dtype), axes=axes, is_label=is_label).save(p, **options)
    return p.stat().st_size


def _sample_regions(shape: tuple[int, ...], chunks: tuple[int, ...], k: int) -> tuple[list[tuple[slice, ...]], int]:
    """``k`` chunk-aligned regions of the chunk shape picked at random (seed 0) over the grid (edge chunks shifted
    inwards so every region is a whole chunk), and the number of chunks in the grid."""
    grid = [-(-s // c) for s, c in zip(shape, chunks)]
    n = math.prod(grid)
    picks = sorted(random.Random(0).sample(range(n), min(k, n)))
    regions = []
    for flat in picks:
        coords = np.unravel_index(flat, grid)
        start = [min(int(i) * c, s - c) for i, c, s in zip(coords, chunks, shape)]
        regions.append(tuple(slice(a, a + c) for a, c in zip(start, chunks)))
    return regions, n


def estimate(plan: ImportPlan, compression: Compression, cancel: threading.Event | None = None,
             note: Callable[[str], None] | None = None) -> Estimate:
    """Predict the size of the .mzarr ``plan`` would write with ``compression`` (see the module docstring).
    Raises :class:`Cancelled` soon after ``cancel`` is set."""
    cancel = cancel or threading.Event()
    with _estimate_lock:
        if cancel.is_set():
            raise Cancelled()
        return _estimate(plan, compression, cancel, note)


def _estimate(plan: ImportPlan, compression: Compression, cancel: threading.Event,
              note: Callable[[str], None] | None) -> Estimate:
    import time

    from mzarr_core import Mzarr, SaveCancelled

    t0 = time.perf_counter()

    def check(*_args: Any) -> None:
        if cancel.is_set():
            raise SaveCancelled("estimate no longer wanted")

    if plan.is_slide:
        mode = compression.slide or plan.slide_default or "lossless"
        known = getattr(plan.slide_info, "estimates", {}) or {}
        if mode == "recompress" and mode in known:
            # the JPEG tiles' transcoding cannot be sampled through Mzarr.save: the slide module's own estimate
            return Estimate(int(known[mode]), "slide", seconds=time.perf_counter() - t0)
        if plan.source is None:  # the slide's level 0, opened lazily for sampling
            slide = formats.slide_module(formats.find_format(plan.src)) or importlib.import_module(SLIDE_MODULE)
            plan.source = slide.open_slide(plan.src, compression="lossless")
        options = {"lossless": True} if mode == "lossless" else {
            "lossless": False,
            "distance": compression.distance or plan.slide_distances.get(mode) or DEFAULT_DISTANCE}
    else:
        options = compression.save_options()
    source = plan.source
    if source is None:
        raise ValueError("the source is closed")
    array = source.array
    axes = plan.axes
    try:
        with tempfile.TemporaryDirectory(prefix="mzarr-estimate-") as tmp_name:
            tmp = Path(tmp_name)
            image = Mzarr(array, axes=axes, spacing=plan.spacing, unit=plan.unit, is_label=plan.is_label)
            chunks = tuple(int(c) for c in image.chunks)
            regions, n = _sample_regions(plan.shape, chunks, SAMPLE_CHUNKS)
            check()
            if n <= SAMPLE_CHUNKS:
                if note:
                    note(f"encoding the whole image ({n} chunk{'s' if n != 1 else ''})…")
                p = tmp / "whole.mzarr"
                attrs = dict(getattr(source, "attrs", {}) or {})
                image = Mzarr(array, axes=axes, spacing=plan.spacing, unit=plan.unit, is_label=plan.is_label,
                              attrs=attrs)
                image.save(p, progress=check, **options)
                return Estimate(p.stat().st_size, "whole", n, n, chunks, time.perf_counter() - t0)
            blocks = []
            for i, region in enumerate(regions):
                check()
                if note:
                    note(f"reading sample chunk {i + 1} of {len(regions)}…")
                blocks.append(np.ascontiguousarray(np.asarray(array[region])))
            check()
            if note:
                note(f"encoding {len(blocks)} sample chunks…")
            sample = np.concatenate(blocks, axis=axes.index("x"))
            p = tmp / "sample.mzarr"
            Mzarr(sample, axes=axes, is_label=plan.is_label).save(p, chunks=chunks, progress=check, **options)
            sample_channels = sample.shape[axes.index("c")] if "c" in axes else 1
            fixed = _fixed_bytes(sample.dtype, axes, sample_channels, options, plan.is_label, tmp)
            scale = math.prod(plan.shape) / sample.size
            data = max(p.stat().st_size - fixed, 0)
            return Estimate(int(fixed + data * scale), "sampled", len(blocks), n, chunks, time.perf_counter() - t0)
    except SaveCancelled:
        raise Cancelled() from None


def format_bytes(n: float) -> str:
    """``1.2 MB`` (decimal units, as file managers show them)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def folder_writable(folder: str) -> bool:
    """Whether a new file can be made in ``folder`` (it exists and this user may write there)."""
    return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)
