"""Measurements from full-resolution pixels: region statistics, line lengths and line profiles.

A region (rectangle, ellipse or polygon :class:`~mzarr_core.annotations.Annotation`) holds the pixels whose centre
``(c + 0.5, r + 0.5)`` lies inside it (polygons: even-odd rule; a centre exactly on the left/top edge is inside, on
the right/bottom edge outside). :func:`region_stats` streams level 0 window by window (windows aligned to the chunk
grid, about ``window`` pixels a side), rasterises the shape per window and reads only windows the shape touches, so
memory stays bounded by a few windows whatever the region's size. The results equal NumPy on the full array:
integer sums are exact (Python integers), the variance of 8/16-bit images is computed exactly from integer sums of
squares (one pass: counts per value), other types combine per-window float64 means and squared deviations (Chan et al.).
Float statistics are over the finite pixels (NaN marks "no data" in PET and parameter maps); the NaN, +Inf and -Inf
pixels are counted beside them. Histograms of float data are the bins ``numpy.histogram(finite_values, bins)`` gives
(range = the region's min..max); those of integer data have integer-aligned bins (see :func:`integer_bins`) so that
no bin falls between two integers and stays empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .annotations import Annotation, plane_axes
from .errors import MzarrValueError

if TYPE_CHECKING:
    from .image import Mzarr

__all__ = ["LineProfile", "RegionStats", "integer_bins", "line_length", "line_profile", "region_mask", "region_stats",
           "value_unit"]

Progress = Callable[[int, int], Any]
WINDOW = 2048  #: default side of a streamed window, in pixels (rounded to whole chunks)


@dataclass(frozen=True)
class RegionStats:
    """Statistics of the pixels of a region, one value per channel (one entry for a grey image)."""

    count: int  #: pixels inside
    area: float | None  #: physical area (count x pixel area), None without a spacing
    unit: str | None  #: the spacing's unit, a length (the area is in :attr:`area_unit`)
    mean: tuple[float, ...]
    std: tuple[float, ...]  #: population standard deviation (NumPy's default, ddof=0)
    min: tuple[float, ...]
    max: tuple[float, ...]
    histogram: tuple[np.ndarray, ...]  #: counts per bin, per channel
    bin_edges: tuple[np.ndarray, ...]  #: bins + 1 edges per channel
    nan: tuple[int, ...] = ()  #: NaN pixels per channel (not in mean/std/min/max/histogram)
    posinf: tuple[int, ...] = ()  #: +Inf pixels per channel (likewise left out)
    neginf: tuple[int, ...] = ()  #: -Inf pixels per channel (likewise left out)
    value_unit: str | None = None  #: the unit of mean/std/min/max when the file records one (:func:`value_unit`)

    @property
    def area_unit(self) -> str | None:
        """The unit of :attr:`area`: the spacing's unit squared (``"millimeter^2"``), None without a spacing."""
        return None if self.area is None or self.unit is None else f"{self.unit}^2"

    @property
    def channels(self) -> int:
        return len(self.mean)

    def finite(self, channel: int = 0) -> int:
        """Pixels of ``channel`` the statistics are computed from (inside and finite)."""
        skipped = sum(t[channel] for t in (self.nan, self.posinf, self.neginf) if t)
        return self.count - skipped

    def nonfinite_text(self, channel: int = 0) -> str | None:
        """'N NaN, M +Inf, K -Inf' for the pixels left out of ``channel``'s statistics, None when all are finite."""
        parts = [f"{t[channel]} {name}" for t, name in ((self.nan, "NaN"), (self.posinf, "+Inf"), (self.neginf, "-Inf"))
                 if t and t[channel]]
        return ", ".join(parts) or None

    def lines(self) -> list[str]:
        """Human-readable lines (the CLI's output)."""
        area = f"{self.count} px" + (f" = {self.area:.6g} {self.unit or 'unit'}²" if self.area is not None else "")
        out = [f"area:   {area}"]
        for c in range(self.channels):
            tag = f" (channel {c})" if self.channels > 1 else ""
            out.append(f"mean{tag}: {self.mean[c]:.6g}  std: {self.std[c]:.6g}  min: {self.min[c]:.6g}  max: {self.max[c]:.6g}"
                       + (f"  ({self.value_unit})" if self.value_unit else ""))
            skipped = self.nonfinite_text(c)
            if skipped:
                out.append(f"non-finite{tag}: {skipped} (left out: statistics over {self.finite(c)} finite px)")
        return out


@dataclass(frozen=True)
class LineProfile:
    """Values sampled along a line from full-resolution pixels (the pixel under each sample point)."""

    distance: np.ndarray  #: along the line from its first point, physical units (pixels without a spacing)
    values: np.ndarray  #: (samples,) or (samples, channels)
    length: float  #: total length, physical units (pixels without a spacing)
    length_px: float
    unit: str | None
    value_unit: str | None = None  #: the unit of ``values`` when the file records one (:func:`value_unit`)


def value_unit(image: "Mzarr") -> str | None:
    """The unit of the image's values when the file records one: ``"HU"`` for Hounsfield data (a CT imported from
    DICOM or NIfTI, :func:`~mzarr_core.display.looks_like_hu`), else the DICOM ``RescaleType`` of an applied rescale
    (``"US"``, unspecified, is none); None otherwise, or when a recorded rescale was not applied (stored values)."""
    from .display import dicom_block, looks_like_hu

    if image.is_label:
        return None
    attrs = image.attrs().to_dict()
    rescale = dicom_block(attrs).get("rescale")
    rescale = rescale if isinstance(rescale, Mapping) else {}
    if rescale.get("applied") is False:
        return None
    if looks_like_hu(image.dtype, attrs):
        return "HU"
    kind = str(rescale.get("type") or "").strip()
    return kind if kind and kind.upper() != "US" else None


def _plane_spacing(image: "Mzarr", plane: tuple[str, int] | None) -> tuple[float, float] | None:
    """Physical size of a pixel of the plane: (row spacing, column spacing), or None without a spacing."""
    if image.spacing is None:
        return None
    rows, cols = plane_axes(image.spatial_axes, plane)
    sp = dict(zip(image.spatial_axes, image.spacing))
    return sp[rows], sp[cols]


def line_length(line: Annotation, spacing: tuple[float, float] | None = None) -> float:
    """Length of a line (polyline) in physical units given (row, column) ``spacing``, in pixels without."""
    sy, sx = spacing or (1.0, 1.0)
    pts = line.points
    return float(sum(math.hypot((b[0] - a[0]) * sx, (b[1] - a[1]) * sy) for a, b in zip(pts, pts[1:])))


def _check_region(image: "Mzarr", shape: Annotation) -> tuple[str, int] | None:
    if shape.kind not in ("rectangle", "ellipse", "polygon"):
        raise MzarrValueError(f"region statistics need a rectangle, ellipse or polygon, got a {shape.kind}")
    from .annotations import check_annotations

    check_annotations([shape], image.spatial_axes, tuple(n for a, n in zip(image.axes, image.shape) if a != "c"))
    return shape.plane


def region_mask(shape: Annotation, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """The pixels of the window ``rows`` x ``cols`` (half-open, full-resolution) whose centre is inside ``shape``."""
    r0, r1 = rows
    c0, c1 = cols
    h, w = max(r1 - r0, 0), max(c1 - c0, 0)
    if shape.kind == "rectangle":
        x0, y0, x1, y1 = shape.bounds()
        mask = np.zeros((h, w), bool)
        ra, rb = _span(y0, y1, r0, r1)
        ca, cb = _span(x0, x1, c0, c1)
        mask[ra:rb, ca:cb] = True
        return mask
    if shape.kind == "ellipse":
        x0, y0, x1, y1 = shape.bounds()
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        if rx <= 0 or ry <= 0:
            return np.zeros((h, w), bool)
        yy = ((np.arange(r0, r1) + 0.5 - cy) / ry) ** 2
        xx = ((np.arange(c0, c1) + 0.5 - cx) / rx) ** 2
        return (yy[:, None] + xx[None, :]) <= 1.0
    if shape.kind == "polygon":
        return _polygon_mask(np.asarray(shape.points, np.float64), r0, r1, c0, c1)
    raise MzarrValueError(f"a {shape.kind} has no area")


def _span(a: float, b: float, lo: int, hi: int) -> tuple[int, int]:
    """Window-relative index range of pixels with centre in [a, b)."""
    start = max(math.ceil(a - 0.5), lo)
    stop = min(math.ceil(b - 0.5), hi)
    return start - lo, max(stop, start) - lo


def _polygon_mask(pts: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Scanline fill (even-odd) of pixel centres, vectorised over rows x edges in blocks of bounded size; a window
    that no edge's bounding box reaches is wholly inside or outside (one centre decides)."""
    h, w = r1 - r0, c1 - c0
    mask = np.zeros((h, w), bool)
    if h <= 0 or w <= 0:
        return mask
    xa, ya = pts[:, 0], pts[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    near = ((np.maximum(xa, xb) >= c0) & (np.minimum(xa, xb) <= c1)
            & (np.maximum(ya, yb) >= r0) & (np.minimum(ya, yb) <= r1))
    if not near.any():  # no edge in the window: all inside or all outside
        cx, cy = c0 + 0.5, r0 + 0.5
        hit = ((ya <= cy) & (cy < yb)) | ((yb <= cy) & (cy < ya))
        with np.errstate(divide="ignore", invalid="ignore"):
            at = xa + (cy - ya) * (xb - xa) / (yb - ya)
        mask[:] = bool(np.count_nonzero(hit & (at <= cx)) % 2)
        return mask
    keep = (ya != yb) & (np.maximum(ya, yb) > r0 + 0.5 - 1) & (np.minimum(ya, yb) < r1)
    xa, ya, xb, yb = xa[keep], ya[keep], xb[keep], yb[keep]
    if xa.size == 0:
        return mask
    slope = (xb - xa) / (yb - ya)
    step = max(1, 4_000_000 // xa.size)
    for start in range(0, h, step):
        yc = np.arange(r0 + start, min(r0 + start + step, r1), dtype=np.float64) + 0.5
        y = yc[:, None]
        crosses = ((ya <= y) & (y < yb)) | ((yb <= y) & (y < ya))
        x = np.where(crosses, xa + (y - ya) * slope, np.inf)
        x.sort(axis=1)
        n = crosses.sum(axis=1)
        for k in range(0, int(n.max(initial=0)) - 1, 2):
            rows = np.nonzero(n > k + 1)[0]
            # pixels with centre in [x_k, x_k+1): columns ceil(x - 0.5) .. ceil(x' - 0.5) - 1
            a = np.clip(np.ceil(x[rows, k] - 0.5) - c0, 0, w).astype(np.int64)
            b = np.clip(np.ceil(x[rows, k + 1] - 0.5) - c0, 0, w).astype(np.int64)
            filled = b > a
            for r, lo, hi in zip((rows[filled] + start).tolist(), a[filled].tolist(), b[filled].tolist()):
                mask[r, lo:hi] = True
    return mask


def _windows(image: "Mzarr", rows: tuple[int, int], cols: tuple[int, int], row_axis: str, col_axis: str,
             window: int) -> list[tuple[int, int, int, int]]:
    """Chunk-aligned windows of about ``window`` pixels a side covering ``rows`` x ``cols``."""
    chunks = dict(zip(image.axes, image.chunks))
    ch, cw = chunks[row_axis], chunks[col_axis]
    sh, sw = max(1, window // ch) * ch, max(1, window // cw) * cw
    out = []
    for r in range(rows[0] // sh * sh, rows[1], sh):
        for c in range(cols[0] // sw * sw, cols[1], sw):
            out.append((max(r, rows[0]), min(r + sh, rows[1]), max(c, cols[0]), min(c + sw, cols[1])))
    return out


def _read(image: "Mzarr", plane: tuple[str, int] | None, row_axis: str, col_axis: str,
          r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Level-0 pixels of a window of the plane as (rows, cols) or (rows, cols, channels)."""
    key: list[Any] = []
    kept: list[str] = []
    for a in image.axes:
        if plane is not None and a == plane[0]:
            key.append(plane[1])
        elif a == row_axis:
            key.append(slice(r0, r1))
            kept.append(a)
        elif a == col_axis:
            key.append(slice(c0, c1))
            kept.append(a)
        else:  # channel
            key.append(slice(None))
            kept.append(a)
    data = image[tuple(key)]
    order = [kept.index(row_axis), kept.index(col_axis)] + ([kept.index("c")] if "c" in kept else [])
    return np.transpose(data, order)


def _extent(image: "Mzarr", row_axis: str, col_axis: str) -> tuple[int, int]:
    dims = dict(zip(image.axes, image.shape))
    return dims[row_axis], dims[col_axis]


def integer_bins(lo: int, hi: int, bins: int) -> tuple[int, int]:
    """(width, count) of integer-aligned histogram bins for integers ``lo..hi``: each bin holds ``width`` whole
    values (edges at half-integers), ``count <= bins``; a fractional width would leave some bins without an integer."""
    span = int(hi) - int(lo) + 1
    width = -(-span // bins)
    return width, -(-span // width)


def _integer_edges(lo: int, hi: int, bins: int) -> np.ndarray:
    width, count = integer_bins(lo, hi, bins)
    return float(lo) - 0.5 + width * np.arange(count + 1, dtype=np.float64)


class _Channel:
    """Running statistics of one channel."""

    def __init__(self, dtype: np.dtype):
        self.exact = dtype.kind in "biu" and dtype.itemsize <= 2  # 8/16-bit: counts per value (exact sums)
        self.integer = dtype.kind in "biu"
        self.dtype = dtype
        self.n = 0  # finite values added
        self.nan = self.posinf = self.neginf = 0  # float values left out
        self.s1 = 0  # exact sum (integers)
        self.s2 = 0  # exact sum of squares (8/16-bit)
        self.mean = 0.0
        self.m2 = 0.0
        self.lo: Any = None
        self.hi: Any = None
        self.counts: np.ndarray | None = None  # per value (8/16-bit), offset by the dtype's min
        self.offset = int(np.iinfo(dtype).min) if self.exact and dtype.kind != "b" else 0
        if self.exact:
            self.counts = np.zeros(2 ** (8 * dtype.itemsize), np.int64)

    def add(self, v: np.ndarray) -> None:
        if v.size == 0:
            return
        if v.dtype == bool:
            v = v.view(np.uint8)
        if v.dtype.kind == "f":
            v = self._finite(v)
            if v.size == 0:
                return
        n = int(v.size)
        if self.exact:  # one pass: counts per value; sums, min and max follow from them exactly (settle)
            assert self.counts is not None
            index = v if v.dtype.kind == "u" else v.astype(np.int32) - self.offset
            self.counts += np.bincount(index.ravel(), minlength=self.counts.size)
            self.n += n
            return
        lo, hi = v.min(), v.max()
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)
        if self.integer:
            if v.dtype.itemsize >= 8:  # split into 32-bit halves: each sum fits 64 bits
                self.s1 += int(np.sum(v >> 32, dtype=np.int64 if v.dtype.kind == "i" else np.uint64)) * 2**32
                self.s1 += int(np.sum(v & 0xFFFFFFFF, dtype=np.uint64))
            else:
                self.s1 += int(np.sum(v, dtype=np.int64))
        f = v.astype(np.float64)
        mean_b = float(f.mean())
        m2_b = float(np.sum((f - mean_b) ** 2))
        total = self.n + n
        delta = mean_b - self.mean
        self.mean += delta * n / total
        self.m2 += m2_b + delta * delta * self.n * n / total
        self.n = total

    def _finite(self, v: np.ndarray) -> np.ndarray:
        """The finite values of ``v``; counts the NaN and infinite ones."""
        finite = np.isfinite(v)
        if finite.all():
            return v
        nan = int(np.count_nonzero(np.isnan(v)))
        pos = int(np.count_nonzero(v == np.inf))
        self.nan += nan
        self.posinf += pos
        self.neginf += int(v.size) - int(np.count_nonzero(finite)) - nan - pos
        return v[finite]

    def histogram(self, v: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """Counts of the (finite) values ``v`` in the bins ``edges`` (integer-aligned for integers, exact)."""
        if self.integer:
            width = int(round(edges[1] - edges[0])) if len(edges) > 1 else 1
            if v.dtype == bool:
                v = v.view(np.uint8)
            diff = v.astype(np.uint64) - np.uint64(int(self.lo) % 2**64)  # wraps to the true offset (< 2**64)
            return np.bincount((diff // np.uint64(width)).astype(np.intp), minlength=len(edges) - 1)
        if v.dtype.kind == "f":
            v = v[np.isfinite(v)]
        return np.histogram(v, len(edges) - 1, range=self.float_range())[0]

    def settle(self) -> None:
        """8/16-bit: the exact sum, sum of squares, min and max from the per-value counts (Python integers)."""
        if not self.exact or self.n == 0:
            return
        assert self.counts is not None
        present = np.nonzero(self.counts)[0]
        values = [int(i) + self.offset for i in present.tolist()]
        counts = [int(c) for c in self.counts[present].tolist()]
        self.s1 = sum(v * c for v, c in zip(values, counts))
        self.s2 = sum(v * v * c for v, c in zip(values, counts))
        self.lo, self.hi = values[0], values[-1]

    def result(self) -> tuple[float, float]:
        """(mean, std) of everything added."""
        if self.n == 0:
            return math.nan, math.nan
        mean = self.s1 / self.n if self.integer else self.mean
        if self.exact:
            var = (self.n * self.s2 - self.s1 * self.s1) / (self.n * self.n)
        else:
            var = self.m2 / self.n
        return float(mean), math.sqrt(max(var, 0.0))

    def edges(self, bins: int) -> np.ndarray:
        """Bin edges over min..max: integer-aligned for integers, NumPy's for floats."""
        if self.integer:
            return _integer_edges(int(self.lo), int(self.hi), bins)
        return np.histogram_bin_edges(np.zeros(0, self.dtype), bins, range=self.float_range())

    def float_range(self) -> tuple[Any, Any]:
        """The histogram range of float data as NumPy takes it from the values (their own dtype), widened if flat."""
        return (float(self.lo) - 0.5, float(self.hi) + 0.5) if self.lo == self.hi else (self.lo, self.hi)

    def histogram_from_counts(self, bins: int) -> tuple[np.ndarray, np.ndarray]:
        """The integer-aligned histogram of the values, from the per-value counts (8/16-bit)."""
        assert self.counts is not None
        lo, hi = int(self.lo), int(self.hi)
        width, _ = integer_bins(lo, hi, bins)
        weights = self.counts[lo - self.offset:hi - self.offset + 1]
        counts = np.add.reduceat(weights, np.arange(0, len(weights), width))
        return counts.astype(np.int64), _integer_edges(lo, hi, bins)


def region_stats(image: "Mzarr", shape: Annotation, *, bins: int = 256, progress: Progress | None = None,
                 window: int = WINDOW) -> RegionStats:
    """Statistics of the full-resolution pixels inside ``shape`` (a rectangle, ellipse or polygon annotation, on
    its plane for volumes): pixel count, physical area, mean, std, min, max and a ``bins``-bin histogram per channel,
    streamed window by window. ``progress(done, total)`` is called after each window; raise from it (e.g.
    :class:`~mzarr_core.errors.SaveCancelled`) to stop. ``bins=0`` skips the histogram (for 32/64-bit and float
    images it costs a second pass)."""
    plane = _check_region(image, shape)
    if not isinstance(bins, int) or bins < 0:
        raise MzarrValueError(f"bins must be a non-negative integer, got {bins!r}")
    row_axis, col_axis = plane_axes(image.spatial_axes, plane)
    height, width = _extent(image, row_axis, col_axis)
    x0, y0, x1, y1 = shape.bounds()
    rows = (max(0, math.floor(y0)), min(height, math.ceil(y1) + 1))
    cols = (max(0, math.floor(x0)), min(width, math.ceil(x1) + 1))
    windows = _windows(image, rows, cols, row_axis, col_axis, window) if rows[0] < rows[1] and cols[0] < cols[1] else []
    dtype = np.dtype(image.dtype)
    channels: list[_Channel] = []
    second = bins > 0 and not (dtype.kind in "biu" and dtype.itemsize <= 2)  # no per-value counts: a 2nd pass
    total = len(windows) * (2 if second else 1)
    done = 0
    touched = []
    for (r0, r1, c0, c1) in windows:
        mask = region_mask(shape, (r0, r1), (c0, c1))
        if mask.any():
            touched.append((r0, r1, c0, c1))
            data = _read(image, plane, row_axis, col_axis, r0, r1, c0, c1)
            values = data.reshape((mask.size,) + data.shape[2:]) if mask.all() else data[mask]  # inside: no copy
            if values.ndim == 1:
                values = values[:, None]
            if not channels:
                channels = [_Channel(dtype) for _ in range(values.shape[1])]
            for c, ch in enumerate(channels):
                ch.add(values[:, c])
        done += 1
        if progress is not None:
            progress(done, total)
    n_channels = image.channel_count or 1
    if not channels:
        channels = [_Channel(dtype) for _ in range(n_channels)]
    for ch in channels:
        ch.settle()
    hists: list[np.ndarray] = []
    edges: list[np.ndarray] = []
    if bins and any(ch.n for ch in channels):
        if not second:
            for ch in channels:
                h, e = ch.histogram_from_counts(bins)
                hists.append(h)
                edges.append(e)
        else:
            edges = [ch.edges(bins) if ch.n else np.zeros(0) for ch in channels]  # an all-NaN channel: none
            hists = [np.zeros(max(len(e) - 1, 0), np.int64) for e in edges]
            for (r0, r1, c0, c1) in windows:
                if (r0, r1, c0, c1) in touched:
                    mask = region_mask(shape, (r0, r1), (c0, c1))
                    values = _read(image, plane, row_axis, col_axis, r0, r1, c0, c1)[mask]
                    if values.ndim == 1:
                        values = values[:, None]
                    for c, ch in enumerate(channels):
                        if ch.n:
                            hists[c] += ch.histogram(values[:, c], edges[c])
                done += 1
                if progress is not None:
                    progress(done, total)
    results = [ch.result() for ch in channels]
    count = channels[0].n + channels[0].nan + channels[0].posinf + channels[0].neginf
    spacing = _plane_spacing(image, plane)
    as_number = (lambda v: math.nan if v is None else (int(v) if dtype.kind in "biu" else float(v)))
    return RegionStats(
        count=count,
        area=None if spacing is None else count * spacing[0] * spacing[1],
        unit=image.unit if spacing is not None else None,
        value_unit=value_unit(image),
        mean=tuple(r[0] for r in results),
        std=tuple(r[1] for r in results),
        min=tuple(as_number(ch.lo) for ch in channels),
        max=tuple(as_number(ch.hi) for ch in channels),
        histogram=tuple(hists),
        bin_edges=tuple(edges),
        nan=tuple(ch.nan for ch in channels),
        posinf=tuple(ch.posinf for ch in channels),
        neginf=tuple(ch.neginf for ch in channels),
    )


def line_profile(image: "Mzarr", line: Annotation, *, progress: Progress | None = None) -> LineProfile:
    """The full-resolution values under a line (polyline), one sample per pixel of length: each segment sampled at
    ``ceil(length) + 1`` evenly spaced points, each taking the pixel that contains it (clipped to the image).
    Reads only the chunks the line crosses."""
    if line.kind != "line":
        raise MzarrValueError(f"a line profile needs a line, got a {line.kind}")
    from .annotations import check_annotations

    check_annotations([line], image.spatial_axes, tuple(n for a, n in zip(image.axes, image.shape) if a != "c"))
    plane = line.plane
    row_axis, col_axis = plane_axes(image.spatial_axes, plane)
    height, width = _extent(image, row_axis, col_axis)
    spacing = _plane_spacing(image, plane)
    sy, sx = spacing or (1.0, 1.0)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    dist: list[np.ndarray] = []
    start = 0.0
    pts = line.points
    for i, (a, b) in enumerate(zip(pts, pts[1:])):
        n = max(2, math.ceil(math.hypot(b[0] - a[0], b[1] - a[1])) + 1)
        t = np.linspace(0.0, 1.0, n)
        if i:
            t = t[1:]  # the joint is the previous segment's last sample
        xs.append(a[0] + (b[0] - a[0]) * t)
        ys.append(a[1] + (b[1] - a[1]) * t)
        seg = math.hypot((b[0] - a[0]) * sx, (b[1] - a[1]) * sy)
        dist.append(start + seg * t)
        start += seg
    x, y = np.concatenate(xs), np.concatenate(ys)
    cols = np.clip(np.floor(x), 0, width - 1).astype(np.int64)
    rows = np.clip(np.floor(y), 0, height - 1).astype(np.int64)
    chunks = dict(zip(image.axes, image.chunks))
    ch, cw = chunks[row_axis], chunks[col_axis]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(zip((rows // ch).tolist(), (cols // cw).tolist())):
        groups.setdefault(key, []).append(i)
    values: np.ndarray | None = None
    for done, idx_list in enumerate(groups.values(), 1):
        idx = np.asarray(idx_list)
        r, c = rows[idx], cols[idx]
        block = _read(image, plane, row_axis, col_axis, int(r.min()), int(r.max()) + 1, int(c.min()), int(c.max()) + 1)
        picked = block[r - r.min(), c - c.min()]
        if values is None:
            values = np.empty((len(x),) + picked.shape[1:], block.dtype)
        values[idx] = picked
        if progress is not None:
            progress(done, len(groups))
    assert values is not None
    length_px = line_length(line)
    return LineProfile(
        distance=np.concatenate(dist), values=values, length=line_length(line, spacing),
        length_px=length_px, unit=image.unit if spacing is not None else None, value_unit=value_unit(image),
    )
