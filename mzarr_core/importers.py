"""Reading other image files as Mzarr sources: TIFF/OME-TIFF (lazy, via tifffile), PNG/JPEG, .npy (memmap),
NIfTI (if nibabel is installed), .mzarr and OME-Zarr."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np

from .errors import MzarrFileNotFoundError, MzarrFormatError
from .level import StorageView

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".jxl")
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass
class Source:
    """A readable image (lazy where the file format allows) and what its file says about it."""

    array: Any
    axes: str | None = None
    spacing: tuple[float, ...] | None = None
    unit: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    owner: Any = None  # object to keep open while the array is used (e.g. a TiffFile)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _tiff(path: Path) -> Source:
    import tifffile
    import zarr

    tif = tifffile.TiffFile(path)
    series = tif.series[0]
    tif_axes = series.axes.upper()
    shape = series.shape
    # S (samples, e.g. RGB) and C (channels) both become our channel axis; I/Q (plain page stacks) become z.
    mapping = {"S": "c", "C": "c", "Z": "z", "I": "z", "Q": "z", "Y": "y", "X": "x"}
    extra = [a for a, n in zip(tif_axes, shape) if a not in mapping and n > 1]
    ours = [mapping.get(a) for a in tif_axes]
    if extra or ours.count("c") > 1 or ours.count("z") > 1:
        tif.close()
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
    spacing, unit = None, None
    ome = tif.ome_metadata or ""
    sizes = {a: re.search(rf'PhysicalSize{a.upper()}="([0-9.eE+-]+)"', ome) for a in "zyx"}
    if all(sizes[a] for a in axes if a != "c"):
        spacing = tuple(float(sizes[a].group(1)) for a in axes if a != "c")
        found = re.search(r'PhysicalSizeXUnit="([^"]+)"', ome)
        unit = {"µm": "micrometer", "um": "micrometer", "nm": "nanometer", "mm": "millimeter"}.get(
            found.group(1) if found else "µm", "micrometer"
        )
    return Source(array, axes, spacing, unit, {"source": path.name}, owner=tif)


def _nifti(path: Path) -> Source:
    try:
        import nibabel
    except ImportError:
        raise MzarrFormatError(f"reading NIfTI ({path.name}) needs nibabel: pip install nibabel") from None
    img = nibabel.load(str(path))
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise MzarrFormatError(f"{path} is a {data.ndim}D NIfTI image of shape {data.shape}; Mzarr imports 3D volumes")
    zooms = img.header.get_zooms()[:3]
    return Source(
        np.ascontiguousarray(data.transpose(2, 1, 0)),
        "zyx",
        (float(zooms[2]), float(zooms[1]), float(zooms[0])),
        "millimeter",
        {"source": path.name, "nifti_affine": img.affine.tolist()},
    )


def read_image(path: str | Path) -> Source:
    """Open an image file for conversion; TIFF and .npy stay on disk and are read block by block."""
    path = Path(path)
    if not path.exists():
        raise MzarrFileNotFoundError(f"no such file or folder: {path}")
    suffix = _suffix(path)
    if path.is_dir() or suffix in (".mzarr", ".zarr") or path.name.lower().endswith(".ome.zarr"):
        from .image import Mzarr

        m = Mzarr(path)
        return Source(m.levels[0], m.axes, m.spacing, m.unit, m.attrs().to_dict(), owner=m)
    if suffix in TIFF_SUFFIXES:
        return _tiff(path)
    if suffix == ".npy":
        return Source(np.load(path, mmap_mode="r"), attrs={"source": path.name})
    if suffix in NIFTI_SUFFIXES:
        return _nifti(path)
    if suffix in PICTURE_SUFFIXES:
        try:
            array = imagecodecs.imread(str(path))
        except Exception as exc:
            raise MzarrFormatError(f"{path} could not be decoded as {suffix[1:].upper()}: {exc}") from None
        return Source(array, "yxc" if array.ndim == 3 else None, attrs={"source": path.name})
    raise MzarrFormatError(
        f"{path.name}: unknown image type {suffix or '(no extension)'}; Mzarr imports TIFF/OME-TIFF, PNG, JPEG, "
        ".npy, NIfTI, .mzarr and OME-Zarr"
    )
