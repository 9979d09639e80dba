"""mzarr_core: the Mzarr multi-resolution image format (Zarr + OME-NGFF + JPEG XL) and its library."""

from __future__ import annotations

from .codecs import register_codecs

register_codecs()  # the one registration: zarr's codec classes for Mzarr's chunks and the storage codecs

from .errors import (  # noqa: E402
    ChunkChecksumError,
    ChunkTooLargeError,
    CorruptChunkError,
    MzarrDtypeError,
    MzarrError,
    MzarrFileNotFoundError,
    MzarrFormatError,
    MzarrDiskFullError,
    MzarrReadOnlyError,
    MzarrStorageError,
    MzarrValueError,
    SaveCancelled,
)
from .chunk_cache import DEFAULT_CACHE_BYTES, get_cache_bytes, set_cache_bytes  # noqa: E402
from .convert import convert  # noqa: E402
from .formats import export  # noqa: E402
from .image import Mzarr  # noqa: E402
from .importers import Source, read_image  # noqa: E402
from .level import Level  # noqa: E402
from .optimizer import OptimizeReport, optimize  # noqa: E402
from .repair import RepairReport, repair_pyramid  # noqa: E402
from .report import VerifyReport, verify  # noqa: E402
from .salvage import SalvageReport, salvage_file  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ChunkChecksumError",
    "ChunkTooLargeError",
    "CorruptChunkError",
    "DEFAULT_CACHE_BYTES",
    "Level",
    "Mzarr",
    "MzarrDtypeError",
    "MzarrError",
    "MzarrFileNotFoundError",
    "MzarrFormatError",
    "MzarrDiskFullError",
    "MzarrReadOnlyError",
    "MzarrStorageError",
    "MzarrValueError",
    "OptimizeReport",
    "RepairReport",
    "SaveCancelled",
    "Source",
    "VerifyReport",
    "__version__",
    "convert",
    "export",
    "get_cache_bytes",
    "optimize",
    "read_image",
    "repair_pyramid",
    "set_cache_bytes",
    "verify",
    "SalvageReport",
    "salvage_file",
]
