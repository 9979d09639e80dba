"""Reading other image files as Mzarr sources: a thin compatibility layer over :mod:`mzarr_core.formats`, the
registry of formats (TIFF/OME-TIFF, PNG/JPEG/..., .npy, NIfTI, NRRD, MetaImage, DICOM, .mzarr and OME-Zarr)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import formats
from .formats import Source

__all__ = ["NIFTI_SUFFIXES", "PICTURE_SUFFIXES", "Source", "TIFF_SUFFIXES", "read_image"]

# The suffixes of some format families, from the registry (kept for code that used these names).
PICTURE_SUFFIXES = tuple(
    s for name in ("png", "jpeg", "bmp", "gif", "webp", "jpegxl") for s in formats.get_format(name).suffixes
)
TIFF_SUFFIXES = formats.get_format("tiff").suffixes
NIFTI_SUFFIXES = formats.get_format("nifti").suffixes


def read_image(path: str | Path, **options: Any) -> Source:
    """Open an image file (or folder) for conversion; TIFF, .npy, uncompressed NIfTI and raw NRRD/MetaImage data stay
    on disk and are read block by block. ``options``: reader options such as DICOM's ``series`` and ``keep_phi``."""
    return formats.read(path, **options)
