"""Exceptions raised by mzarr_core: each says what was wrong and what to do about it."""

from __future__ import annotations


class MzarrError(Exception):
    """Base class of every error mzarr_core raises on purpose."""


class MzarrFileNotFoundError(MzarrError, FileNotFoundError):
    """The path given does not exist."""


class MzarrFormatError(MzarrError, ValueError):
    """The input is not a .mzarr / OME-Zarr image, or has a shape the format cannot hold."""


class MzarrDtypeError(MzarrError, TypeError):
    """The array's dtype cannot be stored, or a value's dtype cannot be written into the image."""


class MzarrValueError(MzarrError, ValueError):
    """A value or argument is out of range (e.g. 300 into uint8, non-JSON metadata)."""


class MzarrReadOnlyError(MzarrError, PermissionError):
    """A write was attempted on an image opened read-only."""


class CorruptChunkError(MzarrError, IOError):
    """A stored chunk could not be decoded; the message names the level and chunk."""


class ChunkChecksumError(CorruptChunkError):
    """A stored chunk's bytes do not match the crc32c checksum written with them (format 5): they changed on disk
    after they were written (a failing disk, a bad copy, a stray write)."""


class SaveCancelled(MzarrError):
    """Raised from a progress callback to abort a save; the previous file is left untouched."""


class MzarrStorageError(MzarrError, OSError):
    """The disk or the medium failed during a write (full, I/O error, lost lock); the previous state is kept."""


class MzarrDiskFullError(MzarrStorageError):
    """The disk (or the file system's quota / file size limit) is full; nothing of the failed write was kept."""


class ChunkTooLargeError(CorruptChunkError):
    """A stored chunk declares more decoded data than its array's chunk shape allows (a decompression bomb or a
    damaged header); refused before any large allocation."""


class MzarrWarning(UserWarning):
    """Something the user should know about an input that was still read (uneven slice gaps, a tilted gantry...)."""
