"""Reading and writing other image formats (issue 9): one module per format family, one registry of them.

:data:`FORMATS` is the one place that knows each format: its name, suffixes (multi-part ones like ``.nii.gz``
included), whether it can be a folder, a cheap content sniff, its reader (-> :class:`Source`), its writer (export)
and the pip extra providing its optional package. Everything that lists formats (``mzarr convert``'s help and
errors, ``mzarr export``, :func:`mzarr_core.convert`, the viewer's File > Import filter and drag-and-drop) asks the
functions below.

Readers and writers are named ``"module:function"`` inside this package and imported only when used, so the
registry costs nothing to import and a format whose module or package is missing says so when it is used.
"""

from __future__ import annotations

import importlib
import os
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MzarrError, MzarrFileNotFoundError, MzarrFormatError, MzarrValueError
from .base import Source, head

__all__ = [
    "FORMATS",
    "Format",
    "Source",
    "describe_readable",
    "export",
    "export_suffixes",
    "find_format",
    "get_format",
    "import_action",
    "qt_filter",
    "read",
    "readable_suffixes",
    "strip_suffix",
    "writer_for",
]


@dataclass(frozen=True)
class Format:
    """One image format Mzarr reads and/or writes."""

    name: str  # short id: "tiff", "nifti", ...
    title: str  # what users call it: "NIfTI"
    suffixes: tuple[str, ...]  # lower case, with the dot; multi-part ones (".nii.gz", ".ome.tif") included
    reader: str | None = None  # "module:function" -> function(path, **options) -> Source
    writer: str | None = None  # "module:function" -> function(selection, path, progress)
    write_suffixes: tuple[str, ...] = ()  # the suffixes the writer produces (default: all of ``suffixes``)
    folder: bool = False  # the image can be a folder (OME-Zarr, a DICOM series)
    sniff: str | None = None  # "module:function" -> function(path) -> bool: a cheap look at the content
    package: str | None = None  # the optional package the reader/writer needs (import name)
    extra: str | None = None  # the pip extra that installs it: pip install "mzarr[<extra>]"
    options: tuple[str, ...] = ()  # reader keyword options (DICOM: series, keep_phi)
    native: bool = False  # Mzarr's own storage: opened directly by the viewer, not imported
    sniff_first: bool = False  # its sniff is asked before the others (DICOM: "DICM" at byte 128 beats a TIFF preamble)
    note: str = ""  # one line for the documentation / help
    bundled: bool = True  # its packages are inside the app bundles (False: an optional extra of pip installs only)

    @property
    def offered(self) -> bool:
        """Whether help texts, dialogs and suffix lists show it here: everywhere but in a bundle it is not in."""
        return self.bundled or not getattr(sys, "frozen", False)

    @property
    def writes(self) -> tuple[str, ...]:
        return (self.write_suffixes or self.suffixes) if self.writer else ()

    def _load(self, spec: str, action: str) -> Callable[..., Any]:
        module_name, _, function = spec.partition(":")
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ImportError as exc:
            if exc.name == f"{__name__}.{module_name}":
                raise MzarrFormatError(
                    f"{action} {self.title} files is not available in this version of Mzarr"
                ) from None
            raise self.missing_package(exc, action) from None
        return getattr(module, function)

    def missing_package(self, exc: ImportError, action: str) -> Exception:
        """The error for an ImportError met while reading/writing: this format's optional package missing names
        its extra; anything else is re-raised as it is."""
        if self.package and (exc.name or "").split(".")[0] == self.package:
            return MzarrFormatError(
                f"{action} {self.title} files needs the optional package {self.package}, which is not "
                f'installed: pip install "mzarr[{self.extra}]" (or "mzarr[formats]" for every format)'
            )
        return exc

    def call(self, which: str, *args: Any, **kwargs: Any) -> Any:
        """Run the reader or writer, turning a missing optional package into the error naming the extra."""
        action = "reading" if which == "reader" else "writing"
        function = self.reader_function() if which == "reader" else self.writer_function()
        try:
            return function(*args, **kwargs)
        except ImportError as exc:
            raise self.missing_package(exc, action) from None

    def reader_function(self) -> Callable[..., Source]:
        if not self.reader:
            raise MzarrFormatError(f"Mzarr does not read {self.title} files")
        return self._load(self.reader, "reading")

    def writer_function(self) -> Callable[..., None]:
        if not self.writer:
            raise MzarrFormatError(f"Mzarr does not write {self.title} files")
        return self._load(self.writer, "writing")

    def sniffs(self, path: Path) -> bool:
        """True if the content looks like this format (False when unsure or the sniff cannot run)."""
        if not self.sniff:
            return False
        try:
            return bool(self._load(self.sniff, "reading")(path))
        except MzarrError:
            return _FALLBACK_SNIFFS.get(self.name, lambda p: False)(path)
        except Exception:  # noqa: BLE001 - a sniff must never break the lookup
            return False


FORMATS: tuple[Format, ...] = (
    Format("mzarr", "Mzarr", (".mzarr",), reader="mzarr:read", sniff="mzarr:sniff", native=True,
           note="Mzarr's own file (SQLite; also the original ZIP form)"),
    Format("ome-zarr", "OME-Zarr", (".ome.zarr", ".zarr"), reader="mzarr:read", folder=True, sniff="mzarr:sniff",
           native=True, note="a plain OME-Zarr folder (Zarr v3, NGFF 0.5; v2 read)"),
    Format("slide", "Whole-slide image", (".svs", ".ndpi", ".scn", ".bif"), reader="slide:read", sniff="slide:sniff",
           options=("compression", "keep_label"),
           note="Aperio SVS, Hamamatsu NDPI, Leica SCN, Ventana BIF; Philips TIFF and JPEG-tiled pyramidal OME-TIFF "
           "slides by content: level 0 lazily, MPP, JPEG tiles kept exactly where that stays within the source's size"),
    Format("openslide", "Whole-slide image via OpenSlide", (".mrxs", ".vms", ".vmu", ".svslide", ".czi"),
           reader="openslide_reader:read", sniff="openslide_reader:sniff", package="openslide", extra="openslide",
           options=("compression", "keep_label"), bundled=False,
           note="3DHISTECH MIRAX (.mrxs + its folder of .dat files), Hamamatsu VMS/VMU, Sakura, brightfield Zeiss CZI "
           "through openslide-python + openslide-bin: level 0 lazily, MPP; not in the app bundles"),
    Format("ome-tiff", "OME-TIFF", (".ome.tif", ".ome.tiff", ".ome.btf"), reader="tiff:read",
           writer="tiff:write_ome_tiff", write_suffixes=(".ome.tif", ".ome.tiff"),
           note="export: pyramidal (SubIFDs), tiled 256, deflate, physical sizes"),
    Format("tiff", "TIFF", (".tif", ".tiff", ".btf", ".tf8"), reader="tiff:read", writer="tiff:write_tiff",
           write_suffixes=(".tif", ".tiff"), sniff="tiff:sniff",
           note="read lazily (tiled and pyramidal TIFFs block by block); export: one level, tiled, deflate"),
    Format("png", "PNG", (".png",), reader="pictures:read", writer="pictures:write_png", sniff="pictures:sniff_png"),
    Format("jpeg", "JPEG", (".jpg", ".jpeg"), reader="pictures:read", sniff="pictures:sniff_jpeg"),
    Format("jpegxl", "JPEG XL", (".jxl",), reader="pictures:read", sniff="pictures:sniff_jpegxl"),
    Format("bmp", "BMP", (".bmp",), reader="pictures:read", sniff="pictures:sniff_bmp"),
    Format("gif", "GIF", (".gif",), reader="pictures:read", sniff="pictures:sniff_gif"),
    Format("webp", "WebP", (".webp",), reader="pictures:read", sniff="pictures:sniff_webp"),
    Format("npy", "NumPy", (".npy",), reader="npy:read", writer="npy:write", sniff="npy:sniff",
           note="read memory-mapped"),
    Format("nifti", "NIfTI", (".nii", ".nii.gz"), reader="nifti:read", writer="nifti:write", sniff="nifti:sniff",
           package="nibabel", extra="nifti", note="with the affine; .nii read lazily"),
    Format("nrrd", "NRRD", (".nrrd", ".nhdr"), reader="nrrd:read", writer="nrrd:write", write_suffixes=(".nrrd",),
           sniff="nrrd:sniff", note="spacing, origin and direction; raw data read lazily"),
    Format("metaimage", "MetaImage", (".mha", ".mhd"), reader="metaimage:read", writer="metaimage:write",
           write_suffixes=(".mha",), sniff="metaimage:sniff",
           note="spacing, origin and direction; raw data read lazily"),
    Format("dicom", "DICOM", (".dcm", ".dicom", ".zip"), reader="dicom:open_dicom", folder=True,
           sniff="dicom:is_dicom_path", package="pydicom", extra="dicom", options=("series", "keep_phi"),
           sniff_first=True,
           note="a series: a folder or .zip of slices, or one (multi-frame) file"),
)


def _looks_like_dicom(path: Path) -> bool:
    """DICOM's 'DICM' preamble in a file, or in a few files of a folder / zip (when dicom.py cannot say)."""

    def is_dicom_bytes(data: bytes) -> bool:
        return data[128:132] == b"DICM"

    if path.is_dir():
        for i, (root, _dirs, files) in enumerate(os.walk(path)):
            for name in files[:20]:
                if is_dicom_bytes(head(Path(root) / name, 132)):
                    return True
            if i > 20:
                break
        return False
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                for info in z.infolist()[:20]:
                    if not info.is_dir():
                        with z.open(info) as fh:
                            if is_dicom_bytes(fh.read(132)):
                                return True
        except (OSError, zipfile.BadZipFile):
            return False
        return False
    return is_dicom_bytes(head(path, 132))


_FALLBACK_SNIFFS: dict[str, Callable[[Path], bool]] = {"dicom": _looks_like_dicom}


def get_format(name: str) -> Format:
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise KeyError(name)


def _suffix_match(name: str, formats: tuple[Format, ...], writing: bool = False) -> Format | None:
    """The format whose (longest) suffix ends ``name``."""
    name = name.lower()
    best: tuple[int, Format] | None = None
    for fmt in formats:
        for suffix in fmt.writes if writing else fmt.suffixes:
            if name.endswith(suffix) and len(name) > len(suffix) and (best is None or len(suffix) > best[0]):
                best = (len(suffix), fmt)
    return best[1] if best else None


def _suffix_of(path: Path) -> str:
    name = path.name.lower()
    for fmt in FORMATS:
        for suffix in fmt.suffixes:
            if "." in suffix[1:] and name.endswith(suffix):
                return suffix
    return path.suffix.lower()


def find_format(path: str | os.PathLike) -> Format:
    """The format to read ``path`` with: a folder by its content (OME-Zarr, DICOM), a file by its suffix, a file with
    an unknown suffix by its content. Raises MzarrFileNotFoundError / MzarrFormatError naming what is readable."""
    path = Path(path)
    fmt: Format | None
    if not path.exists():
        raise MzarrFileNotFoundError(f"no such file or folder: {path}")
    if path.is_dir():
        for fmt in FORMATS:
            if fmt.folder and fmt.sniffs(path):
                return fmt
        fmt = _suffix_match(path.name, FORMATS)
        if fmt is not None and fmt.folder:
            return fmt  # e.g. an .ome.zarr folder whose metadata is damaged: the reader says what is wrong
        raise MzarrFormatError(
            f"{path} is a folder that holds neither an OME-Zarr image nor DICOM files; Mzarr imports "
            f"{describe_readable()}"
        )
    fmt = _suffix_match(path.name, FORMATS)
    if fmt is not None and fmt.name in ("tiff", "ome-tiff") and get_format("slide").sniffs(path):
        return get_format("slide")  # Philips, Ventana .tif, a JPEG-tiled OME-TIFF slide: the slide reader
    if fmt is not None:
        if fmt.name == "dicom" and path.suffix.lower() == ".zip" and not fmt.sniffs(path):
            raise MzarrFormatError(
                f"{path.name}: this .zip holds no DICOM files; Mzarr imports .zip files of DICOM slices"
            )
        return fmt
    for fmt in sorted(FORMATS, key=lambda f: not f.sniff_first):
        if fmt.reader and fmt.sniffs(path):
            return fmt
    suffix = _suffix_of(path)
    raise MzarrFormatError(
        f"{path.name}: unknown image type {suffix or '(no extension)'}; Mzarr imports {describe_readable()}"
    )


def read(path: str | os.PathLike, **options: Any) -> Source:
    """Open an image file or folder for conversion, lazily where its format allows. ``options`` go to readers that
    take them (DICOM: ``series``, ``keep_phi``); an option the format does not take, given a value, is an error."""
    path = Path(path)
    fmt = find_format(path)
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    wrong = [k for k in given if k not in fmt.options]
    if wrong:
        takers = [f.title for f in FORMATS if set(wrong) <= set(f.options)]
        names = ", ".join("--" + k.replace("_", "-") for k in wrong)
        raise MzarrValueError(
            f"{names} applies to {' and '.join(takers) or 'no'} sources only; {path.name} is read as {fmt.title}"
        )
    return fmt.call("reader", path, **{k: v for k, v in options.items() if k in fmt.options})


def writer_for(path: str | os.PathLike) -> Format:
    """The format ``export`` writes for ``path``'s suffix, or an MzarrFormatError listing the export suffixes."""
    fmt = _suffix_match(Path(path).name, FORMATS, writing=True)
    if fmt is None:
        raise MzarrFormatError(f"cannot export to {Path(path).name}: {describe_exports()}")
    return fmt


def export(
    image: Any,
    path: str | os.PathLike,
    *,
    level: int = 0,
    region: Any = None,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> Path:
    """Write a level (or a region of it: NumPy basic indexing, or ``"z,y0:y1,x0:x1"`` text) of ``image`` (a Mzarr, a
    label image ``m.label(name)``: its pixels with the image's spacing and patient geometry, or a path to open
    read-only) to ``path``, in the format its suffix names, streamed block by block.

    ``progress(done, total)`` is called as blocks are written; raising from it (e.g. SaveCancelled) stops the
    export and leaves no partial file (any previous file at ``path`` is kept). Returns ``path``.
    """
    from ..image import Mzarr
    from ..labels import LabelImage
    from .selection import Selection, atomic_output

    path = Path(path)
    fmt = writer_for(path)
    fmt.writer_function()  # a missing module or package is said before anything is opened
    own = not isinstance(image, (Mzarr, LabelImage))
    if own and not isinstance(image, (str, os.PathLike)):
        raise MzarrValueError(f"export takes an image (Mzarr), a label image (m.label(name)) or the path of a file, "
                              f"not a {type(image).__name__}")
    source_path = Path(image) if own else opened_path(image.image if isinstance(image, LabelImage) else image)
    if source_path is not None and path.exists() and source_path.exists() and os.path.samefile(source_path, path):
        raise MzarrValueError(f"cannot export {source_path.name} to {path}: that is the image itself (the same file, "
                              "through a link or not) and writing over it would destroy it: give another output name")
    opened = Mzarr(image) if own else image
    try:
        sel = Selection(opened, level, region)
        with atomic_output(path) as tmp:
            fmt.call("writer", sel, tmp, progress, **options)
    finally:
        if own:
            opened.close()
    return path


def opened_path(image: Any) -> Path | None:
    """Where an open image is stored (None for one in memory)."""
    path = getattr(image, "path", None)
    return Path(path) if path is not None else None


# -- listing -----------------------------------------------------------------------------------------------------------
def readable_suffixes(*, native: bool | None = None) -> tuple[str, ...]:
    """Every suffix Mzarr reads (``native=False``: only those imported into a .mzarr, True: only Mzarr's own)."""
    out: list[str] = []
    for fmt in FORMATS:
        if fmt.reader and fmt.offered and (native is None or fmt.native == native):
            out += [s for s in fmt.suffixes if s not in out]
    return tuple(out)


def export_suffixes() -> tuple[str, ...]:
    out: list[str] = []
    for fmt in FORMATS:
        out += [s for s in fmt.writes if s not in out]
    return tuple(out)


def describe_readable() -> str:
    """``"Mzarr (.mzarr), OME-Zarr (.ome.zarr, .zarr folders), ..., DICOM (.dcm, .zip, folders; pip install
    "mzarr[dicom]")"`` for help texts and errors."""
    parts = []
    for fmt in FORMATS:
        if not fmt.reader or not fmt.offered:
            continue
        where = ", ".join(fmt.suffixes) + (" files or folders" if fmt.folder and fmt.name == "dicom" else
                                           " folders" if fmt.folder else "")
        parts.append(f"{fmt.title} ({where})")
    return ", ".join(parts)


def describe_exports() -> str:
    """The export suffixes, as an instruction: ``use a .tif, .npy or .png file name ..., or ...``."""
    plain = [s for s in (".tif", ".npy", ".png") if s in export_suffixes()]
    rest = [s for s in export_suffixes() if s not in plain and s != ".tiff"]
    return (f"use a {', '.join(plain[:-1])} or {plain[-1]} file name (the level or region as it is), or "
            f"{', '.join(rest)} (with spacing and geometry; .ome.tif with its pyramid)")


def qt_filter() -> str:
    """A Qt file dialog name filter: every importable format first, then one entry per format, then all files."""
    globs = lambda suffixes: " ".join(f"*{s}" for s in suffixes)  # noqa: E731
    entries = [f"Images ({globs(readable_suffixes(native=False))})"]
    for fmt in FORMATS:
        if fmt.reader and fmt.offered and not fmt.native:
            entries.append(f"{fmt.title} ({globs(fmt.suffixes)})")
    entries.append("All files (*)")
    return ";;".join(entries)


def strip_suffix(name: str) -> str:
    """``scan.nii.gz`` -> ``scan``: the name without its (longest) known suffix (unchanged if none is known)."""
    base = name.rstrip("/\\")
    fmt = _suffix_match(base, FORMATS)
    if fmt is None:
        return base
    lower = base.lower()
    suffix = max((s for s in fmt.suffixes if lower.endswith(s)), key=len)
    return base[: -len(suffix)]


#: formats whose reader module is a whole-slide module (open_slide, describe_slide, sniff, compression modes)
SLIDE_FORMATS = ("slide", "openslide")


def slide_module(fmt: Format) -> Any:
    """The whole-slide module behind ``fmt`` (``open_slide``, ``describe_slide``...), None for other formats."""
    if fmt.name not in SLIDE_FORMATS or not fmt.reader:
        return None
    return importlib.import_module(f"{__name__}.{fmt.reader.split(':')[0]}")


def import_action(path: str | os.PathLike) -> str | None:
    """What the viewer does with a dropped path: ``"open"`` (a .mzarr / OME-Zarr), ``"import"`` (anything else Mzarr
    reads: converted to a .mzarr first) or None (not an image Mzarr knows)."""
    try:
        fmt = find_format(path)
    except MzarrError:
        return None
    return "open" if fmt.native else "import"
