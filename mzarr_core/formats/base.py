"""What every reader returns (:class:`Source`) and the helpers the format modules share."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MzarrFormatError


@dataclass
class Source:
    """A readable image (lazy where the file format allows) and what its file says about it."""

    array: Any
    axes: str | None = None
    spacing: tuple[float, ...] | None = None
    unit: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    owner: Any = None  # object to keep open while the array is used (e.g. a TiffFile); closed by convert
    is_label: bool = False  # a segmentation (a .mzarr / OME-Zarr labels image): converted as labels


def require(package: str, what: str, extra: str) -> Any:
    """Import an optional package, or say which extra installs it (one clear MzarrFormatError)."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise MzarrFormatError(
            f"{what} needs the optional package {package}, which is not installed: "
            f'pip install "mzarr[{extra}]" (or pip install "mzarr[formats]" for every format)'
        ) from None


def head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a file (b"" if it cannot be read): for the cheap sniffs."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


class NativeView:
    """A lazy array read as native (little-endian) byte order: blocks are byte-swapped as they are read, so a
    big-endian memmap stays on disk."""

    def __init__(self, source: Any):
        self.source = source
        self.shape = tuple(int(n) for n in source.shape)
        self.dtype = np.dtype(source.dtype).newbyteorder("=")
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.source[key]).astype(self.dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)


def native(array: np.ndarray) -> Any:
    """``array`` itself when its byte order is native, else a lazy byte-swapping view of it."""
    if array.dtype.isnative:
        return array
    return NativeView(array)


UNITS = {
    "mm": "millimeter", "millimeter": "millimeter", "millimeters": "millimeter", "millimetre": "millimeter",
    "um": "micrometer", "µm": "micrometer", "μm": "micrometer", "micron": "micrometer", "microns": "micrometer",
    "micrometer": "micrometer", "micrometre": "micrometer",
    "nm": "nanometer", "nanometer": "nanometer", "cm": "centimeter", "centimeter": "centimeter",
    "m": "meter", "meter": "meter",
}
SHORT_UNITS = {"millimeter": "mm", "micrometer": "um", "nanometer": "nm", "centimeter": "cm", "meter": "m"}

#: metres per length unit, NGFF (UDUNITS-2) names: for converting spacings between units
METERS = {
    "angstrom": 1e-10, "picometer": 1e-12, "nanometer": 1e-9, "micrometer": 1e-6, "millimeter": 1e-3,
    "centimeter": 1e-2, "decimeter": 1e-1, "meter": 1.0, "kilometer": 1e3, "inch": 0.0254, "foot": 0.3048,
    "yard": 0.9144, "mile": 1609.344,
}


def convert_length(value: float, unit: str, to: str) -> float:
    """``value`` in ``unit`` expressed in ``to`` (both keys of :data:`METERS`), to 12 significant digits so that
    decimal spacings survive the round trip (0.5 nm -> 0.0005 µm, not 0.0005000000000000001)."""
    return float(f"{value * METERS[unit] / METERS[to]:.12g}")


#: integer types a rescaled image may take, smallest first (int16 before uint16: CT Hounsfield units stay int16)
RESCALED_DTYPES = ("uint8", "int8", "int16", "uint16", "int32", "uint32", "int64")


def integer_rescale(stored: np.dtype, lo: int, hi: int, slope: float, inter: float) -> np.dtype | None:
    """The smallest integer dtype holding ``stored * slope + inter`` for stored values ``lo..hi``, or None when the
    rescale is not an integer one (integer stored type, slope and intercept) or the result fits no integer type."""
    if stored.kind not in "ui" or not (float(slope).is_integer() and float(inter).is_integer()) or slope == 0:
        return None
    ends = [int(lo) * int(slope) + int(inter), int(hi) * int(slope) + int(inter)]
    a, b = min(ends), max(ends)
    for name in RESCALED_DTYPES:
        info = np.iinfo(name)
        if info.min <= a and b <= info.max:
            return np.dtype(name)
    return None


class RescaledView:
    """A lazy array of ``stored * slope + inter`` computed exactly in an integer ``dtype`` block by block."""

    def __init__(self, source: Any, slope: int, inter: int, dtype: np.dtype):
        self.source, self.slope, self.inter = source, int(slope), int(inter)
        self.shape = tuple(int(n) for n in source.shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        raw = np.asarray(self.source[key])
        wide = raw.astype(np.int64)  # every stored/result pair of the checked range fits int64
        if self.slope != 1:
            wide *= self.slope
        if self.inter:
            wide += self.inter
        return wide.astype(self.dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)
