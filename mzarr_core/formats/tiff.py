"""TIFF and OME-TIFF: reading through tifffile's zarr store (lazy), writing plain tiled TIFF and pyramidal OME-TIFF
(tifffile's SubIFD recipe), both streamed tile row by tile row."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import MzarrFormatError, MzarrValueError, MzarrWarning
from ..level import StorageView
from .base import METERS, UNITS, Source, convert_length, head
from .selection import Counter, Progress, Selection

TILE = 256
OME_UNITS = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "centimeter": "cm", "meter": "m"}
FROM_OME_UNITS = {"µm": "micrometer", "um": "micrometer", "nm": "nanometer", "mm": "millimeter",
                  "cm": "centimeter", "m": "meter", "Å": "angstrom", "pm": "picometer", "dm": "decimeter",
                  "km": "kilometer", "in": "inch", "ft": "foot", "yd": "yard", "mi": "mile"}


def sniff(path: Path) -> bool:
    return head(path, 4) in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


def read(path: Path) -> Source:
    """Series 0 of a TIFF (level 0 of a pyramidal one), lazily, with the OME physical sizes."""
    import tifffile
    import zarr

    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for damaged files
        raise MzarrFormatError(f"{path} could not be read as TIFF: {exc}") from None
    try:
        return _read(path, tif, zarr)
    except BaseException:
        tif.close()
        raise


def _read(path: Path, tif: Any, zarr: Any) -> Source:
    series = tif.series[0]
    tif_axes = series.axes.upper()
    shape = series.shape
    # S (samples, e.g. RGB) and C (channels) both become our channel axis; I/Q (plain page stacks) become z.
    mapping = {"S": "c", "C": "c", "Z": "z", "I": "z", "Q": "z", "Y": "y", "X": "x"}
    extra = [a for a, n in zip(tif_axes, shape) if a not in mapping and n > 1]
    ours = [mapping.get(a) for a in tif_axes]
    if extra or ours.count("c") > 1 or ours.count("z") > 1:
        raise MzarrFormatError(
            f"{path} holds a {tif_axes} series of shape {shape}; Mzarr stores 2D/3D images with one channel axis. "
            "Split time points / extra dimensions first (e.g. with tifffile) and convert each."
        )
    array: Any = zarr.open(series.aszarr(), mode="r")
    if isinstance(array, zarr.Group):  # pyramidal TIFF: level 0 is the first array
        array = array["0"]
    kept = [o for a, o in zip(tif_axes, ours) if o is not None]
    if len(kept) != array.ndim:
        array = np.asarray(array).reshape([n for a, n in zip(tif_axes, shape) if mapping.get(a)])
    axes = "".join(kept)
    if axes not in ("yx", "zyx", "yxc", "zyxc", "cyx", "czyx"):
        order = ("c" if "c" in axes else "") + "".join(a for a in "zyx" if a in axes)
        array = StorageView(array, tuple(axes.index(a) for a in order))
        axes = order
    spatial = [a for a in axes if a != "c"]
    if tif.ome_metadata:
        spacing, unit = _ome_spacing(tif.ome_metadata, spatial, path)
    else:
        spacing, unit = _tiff_spacing(tif, spatial, path)
    return Source(array, axes, spacing, unit, {"source": path.name}, owner=tif)


def _common_unit(sizes: dict[str, tuple[float, str]], spatial: list[str]) -> tuple[tuple[float, ...], str]:
    """Per-axis (size, unit) in one unit: x's (the plane's), each other axis converted to it."""
    unit = sizes["x"][1] if "x" in sizes else sizes[spatial[-1]][1]
    return tuple(convert_length(sizes[a][0], sizes[a][1], unit) for a in spatial), unit


def _ome_spacing(ome: str, spatial: list[str], path: Path) -> tuple[tuple[float, ...] | None, str | None]:
    """PhysicalSizeX/Y/Z of the first image's Pixels, each in its own PhysicalSize?Unit (OME's default µm),
    converted to one unit; None unless every spatial axis has a size in a length unit."""
    pixels = re.search(r"<(?:\w+:)?Pixels\b([^>]*)>", ome[:1_000_000])
    attrs = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', pixels.group(1))) if pixels else {}
    sizes: dict[str, tuple[float, str]] = {}
    for a in spatial:
        text, symbol = attrs.get(f"PhysicalSize{a.upper()}"), attrs.get(f"PhysicalSize{a.upper()}Unit", "µm")
        try:
            value = float(text) if text is not None else math.nan
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            return None, None
        unit = FROM_OME_UNITS.get(symbol)
        if unit is None:
            warnings.warn(f"{path.name}: PhysicalSize{a.upper()}Unit {symbol!r} is not a length unit Mzarr knows; "
                          "the image is imported without a spacing", MzarrWarning, stacklevel=4)
            return None, None
        sizes[a] = (value, unit)
    return _common_unit(sizes, spatial)


def _imagej_unit(text: Any) -> str | None:
    """An ImageJ calibration unit ('micron', 'µm', '\\u00B5m', 'um', 'nm', 'inch', ...) as an NGFF unit name."""
    if not isinstance(text, str):
        return None
    text = text.strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    return UNITS.get(text.lower()) or UNITS.get(text) or ({"inch": "inch", "inches": "inch"}.get(text.lower()))


def _tiff_spacing(tif: Any, spatial: list[str], path: Path) -> tuple[tuple[float, ...] | None, str | None]:
    """The voxel size of a plain TIFF: Mzarr's own description (exact), else the resolution tags (pixels per unit:
    ImageJ's calibration unit, or centimetre) with ImageJ's ``spacing`` for z (1 unit when ImageJ has none, as
    ImageJ itself assumes). Inch resolutions (dpi of photos and scans) and files without z size give none."""
    shaped = tif.shaped_metadata[0] if tif.is_shaped and tif.shaped_metadata else {}
    sizes_in = shaped.get("physical_size") if isinstance(shaped, dict) else None
    if isinstance(sizes_in, dict) and shaped.get("unit") in METERS:
        try:
            values = tuple(float(sizes_in[a]) for a in spatial)
        except (KeyError, TypeError, ValueError):
            values = ()
        if values and all(math.isfinite(v) and v > 0 for v in values):
            return values, str(shaped["unit"])
    page = tif.pages.first
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None, None
    try:
        rx, ry = (float(n) / float(d) for n, d in (tags["XResolution"].value, tags["YResolution"].value))
    except (TypeError, ValueError, ZeroDivisionError):
        return None, None
    if not (math.isfinite(rx) and math.isfinite(ry) and rx > 0 and ry > 0):
        return None, None
    imagej = tif.imagej_metadata if tif.is_imagej else None
    resunit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2  # TIFF's default: inch
    if imagej and _imagej_unit(imagej.get("unit")):
        unit = cast(str, _imagej_unit(imagej.get("unit")))
        sizes = {"x": (1.0 / rx, unit), "y": (1.0 / ry, unit)}
    elif resunit == 3:  # centimetre
        per_cm = 1.0 / rx
        unit = "micrometer" if per_cm < 0.1 else "millimeter"
        sizes = {"x": (1.0 / rx, "centimeter"), "y": (1.0 / ry, "centimeter")}
    else:
        return None, None
    if "z" in spatial:
        z = imagej.get("spacing", 1.0) if imagej else None
        try:
            z = float(z) if z is not None else math.nan
        except (TypeError, ValueError):
            z = math.nan
        if not (math.isfinite(z) and z > 0):
            return None, None
        sizes["z"] = (z, unit)
    spacing = tuple(convert_length(sizes[a][0], sizes[a][1], unit) for a in spatial)
    return spacing, unit


# -- writing --------------------------------------------------------------------------------------------------------
class _Pages:
    """One resolution of the written image: its pages (every c/z position outside the samples) and how to read
    a strip of rows of one page."""

    def __init__(self, sel: Selection, page_axes: str, rgb: bool, halvings: int = 0):
        self.sel, self.page_axes, self.rgb, self.halvings = sel, page_axes, rgb, halvings
        ny, nx = sel.shape[sel.axes.index("y")], sel.shape[sel.axes.index("x")]
        for _ in range(halvings):
            ny, nx = (ny + 1) // 2, (nx + 1) // 2
        self.ny, self.nx = ny, nx
        self.counts = [sel.shape[sel.axes.index(a)] for a in page_axes]
        self._plane: tuple[Any, np.ndarray] | None = None

    def positions(self) -> Iterator[dict[str, int]]:
        for flat in np.ndindex(*self.counts):
            yield dict(zip(self.page_axes, (int(i) for i in flat)))

    def rows(self, where: dict[str, int], r0: int, r1: int) -> np.ndarray:
        """Rows r0:r1 of one page: (rows, x) or (rows, x, samples)."""
        if self.halvings == 0:
            return self._read(where, slice(r0, r1))
        key = tuple(sorted(where.items()))
        if self._plane is None or self._plane[0] != key:  # computed levels: the whole page, halved, kept for its rows
            from ..pyramid import downsample

            plane = self._read(where, slice(None))
            halve = (True, True) + ((False,) if plane.ndim == 3 else ())
            method = "nearest" if self.sel.is_label else "mean"
            for _ in range(self.halvings):
                plane = downsample(plane, halve, method)
            self._plane = (key, plane)
        return self._plane[1][r0:r1]

    def _read(self, where: dict[str, int], rows: slice) -> np.ndarray:
        sel = self.sel
        if self.rgb:
            block = [slice(where[a], where[a] + 1) if a in where else (rows if a == "y" else slice(None))
                     for a in sel.axes]
            data = sel.read(tuple(block))
            channels = cast(int, sel.channels)  # an RGB(A) selection has its samples
            return data.reshape(data.shape[sel.axes.index("y")], sel.shape[sel.axes.index("x")], channels)
        return sel.read_plane(where, rows)

    def tiles(self, counter: Counter) -> Iterator[np.ndarray]:
        samples = (self.sel.channels,) if self.rgb else ()
        for where in self.positions():
            self._plane = None
            for r0 in range(0, self.ny, TILE):
                strip = self.rows(where, r0, min(self.ny, r0 + TILE))
                if strip.dtype == np.bool_:
                    strip = strip.view(np.uint8)
                row = []
                for c0 in range(0, self.nx, TILE):
                    tile = strip[:, c0 : c0 + TILE]
                    if tile.shape[:2] != (TILE, TILE):
                        padded = np.zeros((TILE, TILE, *samples), tile.dtype)
                        padded[: tile.shape[0], : tile.shape[1]] = tile
                        tile = padded
                    row.append(np.ascontiguousarray(tile))
                counter.step()  # counted once read (tifffile stops pulling after the very last tile)
                yield from row

    def shape(self) -> tuple[int, ...]:
        return (*self.counts, self.ny, self.nx) + ((cast(int, self.sel.channels),) if self.rgb else ())

    @property
    def tile_rows(self) -> int:
        return int(np.prod(self.counts, dtype=np.int64)) * -(-self.ny // TILE)


def _layout(sel: Selection, what: str) -> tuple[str, bool]:
    if "y" not in sel.axes or "x" not in sel.axes:
        raise MzarrValueError(
            f"{what} holds y-x planes; this selection has axes {sel.axes!r}: keep y and x in --region "
            "(an integer may pick one z or one channel)"
        )
    rgb = sel.axes.endswith("c") and sel.channels in (3, 4) and sel.dtype in (np.uint8, np.uint16) \
        and sel.image.axes.endswith("c")
    page_axes = "".join(a for a in "cz" if a in sel.axes and not (a == "c" and rgb))
    return page_axes, rgb


def _sublevels(sel: Selection, page_axes: str, rgb: bool) -> list[_Pages]:
    """The pyramid under the selection: the file's own coarser levels for a 2D selection of whole voxels (the region
    mapped onto each), planes halved from the selection for volumes (OME-TIFF pyramids halve y and x only)."""
    plain = all(ix.step == 1 and not ix.reverse for ix in sel.index)
    if not plain:
        return []
    out: list[_Pages] = []
    if "z" not in sel.axes:
        image = sel.image
        base = sel.level
        for j in range(sel.level_index + 1, len(image.levels)):
            lv = image.level(j)
            ratio = [fj // fi for fj, fi in zip(lv.factor, base.factor)]
            if any(lv.factor[i] % base.factor[i] for i in range(lv.ndim)):
                break
            region: list[Any] = []
            for a, ix, r, n in zip(lv.axes, sel.index, ratio, lv.shape):
                if ix.drop:
                    region.append(min(ix.start // r, n - 1))
                else:
                    region.append(slice(ix.start // r, min(n, -(-ix.stop // r))))
            sub = Selection(image, j, tuple(region))
            out.append(_Pages(sub, page_axes, rgb))
        return out
    ny, nx = sel.shape[sel.axes.index("y")], sel.shape[sel.axes.index("x")]
    k = 0
    while ny > TILE or nx > TILE:
        k += 1
        ny, nx = (ny + 1) // 2, (nx + 1) // 2
        out.append(_Pages(sel, page_axes, rgb, halvings=k))
    return out


def _tiff_options(sel: Selection, rgb: bool, compression: str) -> dict[str, Any]:
    options: dict[str, Any] = dict(
        tile=(TILE, TILE),
        photometric="rgb" if rgb else "minisblack",
        compression=compression,
        dtype=np.dtype("uint8") if sel.dtype == np.bool_ else sel.dtype,  # masks as 0/1 bytes
    )
    if compression in ("zlib", "deflate", "zstd", "lzw") and sel.dtype.kind in "ui" and sel.dtype.itemsize <= 4:
        options["predictor"] = True  # horizontal differencing: every reader of deflate TIFFs knows it
    if rgb and sel.channels == 4:
        options["extrasamples"] = ("unassalpha",)
    return options


def _resolution(sel: Selection, halvings_or_factor: float) -> dict[str, Any]:
    """Resolution tags (pixels per cm) when the spacing is a length, for readers that ignore the OME-XML."""
    if not sel.has_spacing or sel.unit not in ("micrometer", "nanometer", "millimeter", "centimeter", "meter"):
        return {}
    to_cm = {"micrometer": 1e-4, "nanometer": 1e-7, "millimeter": 0.1, "centimeter": 1.0, "meter": 100.0}[sel.unit]
    sy, sx = sel.spacing[sel.spatial.index("y")], sel.spacing[sel.spatial.index("x")]
    f = halvings_or_factor
    return {"resolution": (1.0 / (sx * f * to_cm), 1.0 / (sy * f * to_cm)), "resolutionunit": "CENTIMETER"}


def write_ome_tiff(sel: Selection, path: Path, progress: Progress | None = None, *, pyramid: bool = True,
                   compression: str = "zlib") -> None:
    """A tiled (256 x 256) OME-TIFF of the selection, deflate + horizontal predictor (integers), every coarser
    level of the file (2D) or 2x halvings of each plane (volumes) as SubIFDs, PhysicalSize from the spacing."""
    _write(sel, path, progress, ome=True, pyramid=pyramid, compression=compression)


def write_tiff(sel: Selection, path: Path, progress: Progress | None = None, *, compression: str = "zlib") -> None:
    """A plain tiled TIFF of the selection (one resolution), streamed."""
    _write(sel, path, progress, ome=False, pyramid=False, compression=compression)


def _write(sel: Selection, path: Path, progress: Progress | None, *, ome: bool, pyramid: bool,
           compression: str) -> None:
    import tifffile

    page_axes, rgb = _layout(sel, "an OME-TIFF" if ome else "a TIFF")
    top = _Pages(sel, page_axes, rgb)
    subs = _sublevels(sel, page_axes, rgb) if pyramid else []
    counter = Counter(progress, top.tile_rows + sum(s.tile_rows for s in subs))
    options = _tiff_options(sel, rgb, compression)
    metadata: dict[str, Any] | None = None
    if ome:
        axes = page_axes.upper() + "YX" + ("S" if rgb else "")
        metadata = {"axes": axes}
        if sel.has_spacing:
            unit = OME_UNITS.get(sel.unit or "", None)
            for a, s in zip(sel.spatial, sel.spacing):
                metadata[f"PhysicalSize{a.upper()}"] = float(s)
                if unit:
                    metadata[f"PhysicalSize{a.upper()}Unit"] = unit
    else:  # tifffile's JSON description: the page axes and the exact voxel size (the resolution tags round it)
        metadata = {"axes": page_axes.upper() + "YX" + ("S" if rgb else "")}
        if sel.has_spacing and sel.unit in METERS:
            metadata["physical_size"] = {a: float(s) for a, s in zip(sel.spatial, sel.spacing)}
            metadata["unit"] = sel.unit
    big = sel.nbytes > (2 << 30)
    with tifffile.TiffWriter(path, bigtiff=big, ome=ome) as tif:
        tif.write(
            top.tiles(counter), shape=top.shape(), subifds=len(subs), metadata=metadata,
            **_resolution(sel, 1.0), **options,
        )
        for sub in subs:
            factor = (sub.sel.level.factor[sub.sel.level.axes.index("x")] / sel.level.factor[sel.level.axes.index("x")]
                      if sub.halvings == 0 else 2.0 ** sub.halvings)
            res = _resolution(sel, factor)
            tif.write(sub.tiles(counter), shape=sub.shape(), subfiletype=1, metadata=None, **res, **options)
