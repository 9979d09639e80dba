"""Where an image lives: the single-file SQLite `.mzarr`, an OME-Zarr folder, or a legacy Mzarr 0.0.x ZIP."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

from zarr.abc.store import Store
from zarr.storage import LocalStore, ZipStore

from .errors import (
    MzarrDiskFullError,
    MzarrError,
     MzarrFileNotFoundError,
    MzarrFormatError,
    MzarrReadOnlyError,
    MzarrStorageError,
    MzarrValueError,
)
from .sqlite_store import SqliteStore, has_mzarr_application_id, is_sqlite_file, wait_for_zarr_io, why_not_writable

ZIP_MAGIC = b"PK\x03\x04"
DIRECTORY_SUFFIXES = (".zarr",)


def container_kind(path: Path) -> str:
    """``"sqlite"``, ``"directory"`` or ``"legacy-zip"``; raises a clear error for anything else."""
    if not path.exists():
        raise MzarrFileNotFoundError(f"no such file or folder: {path}")
    if path.is_dir():
        if (path / "zarr.json").exists() or (path / ".zgroup").exists() or (path / ".zattrs").exists():
            return "directory"
        raise MzarrFormatError(
            f"{path} is a folder but not a Zarr/OME-Zarr image (no zarr.json or .zgroup inside); "
            "open a .mzarr file or an OME-Zarr folder"
        )
    if path.stat().st_size == 0:
        raise MzarrFormatError(
            f"{path} is empty (0 bytes): it holds no image (an interrupted copy, download or save?); restore it from "
            "a backup or save the image again"
        )
    if is_sqlite_file(path):
        if path.stat().st_size < 100:
            raise MzarrFormatError(
                f"{path} starts like a .mzarr file but is only {path.stat().st_size} bytes long: it is truncated or "
                "damaged; restore it from a backup or save it again"
            )
        if not has_mzarr_application_id(path):
            raise MzarrFormatError(f"{path} is an SQLite database but not a .mzarr image (wrong application id)")
        return "sqlite"
    with open(path, "rb") as f:
        head = f.read(132)
    if head[:4] == ZIP_MAGIC:
        return "legacy-zip"
    if path.suffix.lower() == ".mzarr" and not _foreign_image(head):
        raise MzarrFormatError(
            f"{path} is named .mzarr but does not start with an SQLite header: its header (first page) is damaged or "
            f"was overwritten, and without it the file cannot be opened: restore it from a backup, or save what "
            f"still reads with 'mzarr salvage {path} NEW.mzarr' (it reads the rows left in its pages)"
        )
    raise MzarrFormatError(
        f"{path} is not a .mzarr image (it is neither an Mzarr SQLite container nor a legacy Mzarr ZIP); "
        "if it is another image (TIFF, PNG, NumPy...), give it that format's suffix (.tif, .png, .npy...) and import "
        "it with 'mzarr convert' (mzarr_core.convert)"
    )


#: The first bytes of image files that are sometimes misnamed .mzarr: such a file is foreign, not a damaged .mzarr.
FOREIGN_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+", b"\x89PNG", b"\xff\xd8\xff", b"\x93NUMPY", b"GIF8", b"BM",
                 b"\xff\x0a", b"\0\0\0\x0cJXL ", b"NRRD", b"ObjectType", b"\x1f\x8b", b"\x5c\x01\0\0")


def _foreign_image(head: bytes) -> bool:
    """``head`` (a file's first 132 bytes) starts like another image format (TIFF, PNG, NumPy, DICOM, NIfTI...)."""
    return head.startswith(FOREIGN_MAGIC) or head[128:132] == b"DICM"


def open_store(path: Path, writable: bool) -> tuple[Store, str]:
    """Open the store of an existing image for reading (or writing, where the container allows it)."""
    kind = container_kind(path)
    if kind == "sqlite":
        store = SqliteStore(path, read_only=not writable)
        if writable:
            store.check_writable()
        return store, kind
    if kind == "directory":
        if writable and (reason := why_not_writable(path / "zarr.json")) is not None:
            raise MzarrReadOnlyError(
                f"{path} cannot be opened for writing: {reason}. Open it read-only (mode 'r'), or copy it to a "
                "writable place to edit it"
            )
        return LocalStore(path, read_only=not writable), kind
    if writable:
        raise MzarrFormatError(
            f"{path} is an original Mzarr 0.0.x ZIP file, which can only be read; migrate it with "
            f"'mzarr convert {path} NEW.mzarr' and edit the new file"
        )
    return ZipStore(path, mode="r", read_only=True), kind


def is_directory_target(path: Path) -> bool:
    """A save to ``*.zarr`` (e.g. ``image.ome.zarr``) writes the plain OME-Zarr folder form."""
    return path.suffix.lower() in DIRECTORY_SUFFIXES


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _is_zarr_folder(path: Path) -> bool:
    """An existing (OME-)Zarr folder: one a save may replace."""
    return path.is_dir() and any((path / name).exists() for name in ("zarr.json", ".zgroup", ".zattrs", ".zarray"))


def create_plain_file(new: Path, like: Path) -> None:
    """Create the empty file ``new`` (which must not exist) with the permissions a file written at ``like`` gets
    from a plain open: ``like``'s own mode when it is an existing file (a save or an export over it keeps who may
    read it), else 0666 less the umask. Every file written through a temporary and a rename starts here (mkstemp's
    0600, or SQLite's 0644, would ignore both)."""
    try:
        mode = stat.S_IMODE(like.stat().st_mode) if like.is_file() else None
    except OSError:
        mode = None
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for any new file
    try:
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[tuple[Store, Path]]:
    """Yield a fresh store at a temporary name beside ``path``; on success it replaces ``path`` in one rename.

    On any failure (or a kill) the previous file at ``path`` is untouched and the temporary is removed (after a
    kill it is left under a hidden ``.NAME.tmp-*`` name that never opens as ``path``).
    """
    path = Path(path)
    if not path.parent.exists():
        raise MzarrFileNotFoundError(f"cannot save to {path}: the folder {path.parent} does not exist")
    if (reason := why_not_writable(path)) is not None:
        raise MzarrReadOnlyError(f"cannot save to {path}: {reason}")
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    directory = is_directory_target(path)
    if directory and (path.is_symlink() or path.exists()) and not _is_zarr_folder(path):
        what = "a file" if not path.is_dir() else "a folder that is not a Zarr image (no zarr.json or .zgroup inside)"
        raise MzarrValueError(f"cannot save to {path}: it is {what}, which the save would replace and delete: give "
                              "another name, or move it away first; nothing was written")
    if not directory:
        try:
            create_plain_file(tmp, path)  # SQLite then builds the database in it
        except OSError as exc:
            raise _save_error(exc, path) from None
    store: Store = LocalStore(tmp) if directory else SqliteStore(tmp, create=True, fast_build=True)
    try:
        yield store, tmp
        if hasattr(store, "finalize"):  # the single-file store: commit, journal on, close
            store.finalize()
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        else:
            store.close()
        if directory and path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            if path.is_dir():
                raise MzarrFormatError(f"cannot save a single-file .mzarr over the folder {path}")
            for side in ("-wal", "-shm"):
                _remove(path.with_name(path.name + side))
            os.replace(tmp, path)
    except BaseException as exc:
        wait_for_zarr_io()  # chunk writes still in flight would re-create the temporary after its removal
        with contextlib.suppress(Exception):
            store.close()
        _remove(tmp)
        for side in ("-wal", "-shm", "-journal"):
            _remove(tmp.with_name(tmp.name + side))
        if isinstance(exc, OSError) and not isinstance(exc, MzarrError):
            raise _save_error(exc, path) from None
        raise


def _save_error(exc: OSError, path: Path) -> MzarrError:
    """A failed file operation during a save, in words; the previous file is untouched."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return MzarrDiskFullError(
            f"saving {path} failed: the disk is full ({exc.strerror}); the previous file (if any) is untouched: "
            "free some space and save again"
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return MzarrReadOnlyError(f"saving {path} failed: {exc.strerror}; the previous file (if any) is untouched")
    return MzarrStorageError(f"saving {path} failed: {exc}; the previous file (if any) is untouched")
