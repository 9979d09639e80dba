"""DICOM series reader: a folder (searched recursively), a .zip of DICOM files or one DICOM file becomes ONE volume.

Public API (registered by name in :mod:`mzarr_core.formats`):

- :func:`open_dicom` -> :class:`~mzarr_core.importers.Source` (lazy array, axes ``zyx`` / ``zyxc``; one image gives
  ``yx`` / ``yxc``), spacing in millimetres (z, y, x), attrs with a ``dicom`` block.
- :func:`list_dicom_series` -> :class:`DicomSeries` records (headers only, no pixel read), :func:`format_dicom_series`
  renders them as text lines, :func:`is_dicom_path` is a cheap, bounded sniff.

What the reader does, as a radiologist's viewer would:

- **Grouping.** Images are grouped by SeriesInstanceUID and split further when one series mixes image sizes, pixel
  formats, orientations (a localizer inside an axial series) or echoes (EchoNumbers / EffectiveEchoTime); such parts
  are listed separately (``subset`` says what differs). With several series the one named by ``series=`` is read
  (a number, ``5`` or ``"5"``, is a SeriesNumber as for the CLI's ``--series 5``; ``"#N"`` the N-th of
  :func:`list_dicom_series`; else a SeriesInstanceUID or a :class:`DicomSeries`),
  else the one with most slices, with a :class:`~mzarr_core.errors.MzarrWarning` naming it and listing the others.
  A single-frame file inside a folder of its series means "that series": the whole series is read from the folder.
- **Order and spacing.** Slices are sorted by ImagePositionPatient projected on the slice normal (row cosines x column
  cosines of ImageOrientationPatient), InstanceNumber only when positions are missing (warned). PixelSpacing gives
  (y, x); z is the median step between measured positions (SliceThickness / SpacingBetweenSlices only for one slice
  or without positions). Uneven steps, a GantryDetectorTilt and positions that drift sideways off the normal
  (sheared stacks) are warned; the affine in attrs follows the measured step vector, so it stays exact for sheared
  stacks. Duplicate positions holding identical images keep one (warned); differing ones (multi-echo, time series)
  are refused with an :class:`~mzarr_core.errors.MzarrFormatError` telling how to pick one.
- **Values.** RescaleSlope/Intercept are applied when exact: slope 1, integer intercepts and a result that fits int16
  (the stored bit range proves it, else one min/max pass over the stored slices checks it) -> int16 (CT Hounsfield
  units), recorded as applied. A uniform inexact rescale keeps the stored values and records slope/intercept
  (``dicom.rescale``; the values mean ``stored * slope + intercept``); a rescale differing per slice is applied
  (to int16 when exact, else float32), with a warning. PALETTE COLOR and YBR are converted to RGB; MONOCHROME1 is
  kept as stored (``PhotometricInterpretation`` says to invert for display).
- **Pixels.** Native data is read straight from the file at the frame's offset; encapsulated frames are decoded with
  imagecodecs (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000/HTJ2K, RLE, JPEG XL); rarer encodings (deflated,
  1-bit, float pixel data, native YBR 4:2:2) through pydicom. A slice that cannot be decoded raises an
  :class:`~mzarr_core.errors.MzarrFormatError` naming the file and the transfer syntax. Multi-frame files (enhanced
  CT/MR with per-frame / shared functional groups, RT dose grids) are volumes like any series.
- **Memory.** Headers are read once with ``stop_before_pixels`` (zip members on demand); the returned array decodes
  only the slices a ``__getitem__`` asks for, so a 2000-slice series is never held in memory at once.

**Patient information (allow-list).** ``attrs["dicom"]`` holds only the keywords listed in :data:`SAFE_KEYWORDS`
(acquisition, geometry and display fields: Modality, Manufacturer, model, Study/SeriesDescription, SeriesNumber,
BodyPartExamined, window centre/width (all values), ImageOrientationPatient, the first ImagePositionPatient, slice
thickness, kVp, MR timing...) plus what the reader computed (``geometry``, ``rescale``, ``import``). Everything else
is left out, whatever its name: names, IDs, birth date, sex/age/weight, accession number, institution, physicians,
station, device serial number, comments, all dates and times (treated as PHI by default) and every UID that could
link the file to a patient. ``keep_phi=True`` adds the fields of :data:`PHI_KEYWORDS`. Private tags are never copied.
Descriptions (StudyDescription, SeriesDescription, ProtocolName) are free text typed at the scanner: they are kept,
as in the DICOM basic profile's "retain descriptors" option. A ``BurnedInAnnotation`` of YES is warned: the pixels
themselves may then show patient data. The input's file or folder name (often the patient's name in PACS exports)
is kept in ``attrs["source"]`` only with ``keep_phi``.

pydicom is an optional dependency (``pip install "mzarr[dicom]"``), imported when a function is called.
"""

from __future__ import annotations

import math
import os
import struct
import threading
import warnings
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from ..errors import MzarrFileNotFoundError, MzarrFormatError, MzarrWarning
from ..importers import Source

__all__ = [
    "PHI_KEYWORDS",
    "SAFE_KEYWORDS",
    "DicomSeries",
    "DicomVolume",
    "format_dicom_series",
    "is_dicom_path",
    "list_dicom_series",
    "open_dicom",
    "pick_series",
]

#: Header fields copied into ``attrs["dicom"]`` (from the first slice, or a multi-frame file's shared / first
#: per-frame functional groups). Nothing outside this list (and :data:`PHI_KEYWORDS` with ``keep_phi``) is copied.
SAFE_KEYWORDS: tuple[str, ...] = (
    # what the image is
    "Modality", "SOPClassUID", "ImageType", "Manufacturer", "ManufacturerModelName", "SoftwareVersions",
    "StudyDescription", "SeriesDescription", "SeriesNumber", "ProtocolName", "BodyPartExamined", "PatientPosition",
    "ImageLaterality", "Laterality", "ViewPosition", "PatientIdentityRemoved", "DeidentificationMethod",
    "BurnedInAnnotation", "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod",
    # pixels, geometry and display
    "PhotometricInterpretation", "SamplesPerPixel", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "NumberOfFrames", "PixelSpacing", "ImagerPixelSpacing", "SliceThickness", "SpacingBetweenSlices",
    "ImageOrientationPatient", "GantryDetectorTilt", "RescaleType", "WindowCenter", "WindowWidth",
    "WindowCenterWidthExplanation", "VOILUTFunction", "PixelPaddingValue",
    # CT
    "KVP", "XRayTubeCurrent", "ExposureTime", "Exposure", "CTDIvol", "ConvolutionKernel", "FilterType",
    "ReconstructionDiameter", "DataCollectionDiameter", "SpiralPitchFactor", "ScanOptions", "ContrastBolusAgent",
    # MR
    "MagneticFieldStrength", "ImagingFrequency", "ImagedNucleus", "EchoTime", "EffectiveEchoTime", "RepetitionTime",
    "InversionTime", "FlipAngle", "EchoTrainLength", "EchoNumbers", "NumberOfAverages", "SequenceName",
    "ScanningSequence", "SequenceVariant", "MRAcquisitionType", "PixelBandwidth", "ReceiveCoilName",
    "TransmitCoilName", "PercentSampling", "PercentPhaseFieldOfView", "DiffusionBValue",
    # PET / NM / RT dose
    "Units", "DecayCorrection", "CorrectedImage", "AttenuationCorrectionMethod", "ReconstructionMethod",
    "DoseUnits", "DoseType", "DoseSummationType", "DoseGridScaling",
)  # fmt: skip

#: Identifying fields, copied only with ``keep_phi=True``.
PHI_KEYWORDS: tuple[str, ...] = (
    "PatientName", "PatientID", "OtherPatientIDs", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight",
    "PatientSize", "EthnicGroup", "PatientComments", "AdditionalPatientHistory", "AccessionNumber", "StudyID",
    "StudyDate", "StudyTime", "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime",
    "AcquisitionDateTime", "ContentDate", "ContentTime", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord", "RequestingPhysician", "ImageComments",
    "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
)  # fmt: skip

_INSTALL = 'pip install "mzarr[dicom]"'
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima", ".dc3", "")
_SNIFF_FILES = 16  # is_dicom_path looks at no more files than this
_POSITION_TOL = 1e-4  # mm: two slices closer than this along the normal share a position
_ORIENTATION_TOL = 1e-3  # direction cosines differing less than this are the same orientation
_DECODED_CACHE_BYTES = 256 << 20  # decoded compressed slices kept for overlapping block reads
_SHEAR_DEGREES = 0.05  # positions this far off the normal are a tilted / sheared stack

# transfer syntaxes
_NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
_DEFLATED = {"1.2.840.10008.1.2.1.99"}
_JPEG = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"}
_JPEGLS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
_J2K = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93",
        "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}  # fmt: skip
_RLE = {"1.2.840.10008.1.2.5"}
_JXL = {"1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112"}
_COMPRESSED = _JPEG | _JPEGLS | _J2K | _RLE | _JXL
_DECODABLE = _NATIVE | _DEFLATED | _COMPRESSED
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR"}


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError:
        raise MzarrFormatError(f"reading DICOM needs pydicom: {_INSTALL}") from None
    return pydicom


def _ts_name(uid: str) -> str:
    try:
        from pydicom.uid import UID

        name = UID(uid).name
        return f"{name} ({uid})" if name and name != uid else uid
    except Exception:
        return uid


# -- where the files are ---------------------------------------------------------------------------------------------
class _Store:
    """A folder, a zip or a single file's folder: member names, opened on demand."""

    def __init__(self, root: Path, zf: zipfile.ZipFile | None = None):
        self.root = root
        self.zf = zf
        self._lock = threading.Lock()

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        if self.zf is None:
            with open(name, "rb") as fh:
                yield fh
        else:
            with self._lock:  # ZipFile.open is cheap; the member stream itself is independent
                member = self.zf.open(name)
            with member:
                yield member

    def size(self, name: str) -> int:
        """The member's size in bytes (a zip member's uncompressed size)."""
        return self.zf.getinfo(name).file_size if self.zf is not None else os.path.getsize(name)

    def label(self, name: str) -> str:
        if self.zf is not None:
            return f"{self.root.name}:{name}"
        try:
            return str(Path(name).relative_to(self.root if self.root.is_dir() else self.root.parent))
        except ValueError:
            return name

    def close(self) -> None:
        if self.zf is not None:
            self.zf.close()


def _has_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) >= 132 and head[128:132] == b"DICM"


def _walk(folder: Path, recursive: bool = True) -> list[str]:
    names: list[str] = []
    if not recursive:
        return sorted(str(p) for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith("."))
    return names


def _zip_names(zf: zipfile.ZipFile) -> list[str]:
    return sorted(
        i.filename
        for i in zf.infolist()
        if not i.is_dir() and not i.filename.startswith("__MACOSX/") and not Path(i.filename).name.startswith(".")
    )


# -- header scan ------------------------------------------------------------------------------------------------------
@dataclass(slots=True, eq=False)
class _File:
    name: str
    label: str
    ts: str
    little: bool
    mode: str  # "native" | "encapsulated" | "pydicom"
    value_offset: int
    rows: int
    cols: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    planar: int
    nframes: int
    float_kind: str = ""  # "f4"/"f8" for (Double) Float Pixel Data
    extended_offsets: Any = None


@dataclass(slots=True, eq=False)
class _Frame:
    file: _File
    index: int
    uid: str
    number: int | None
    description: str
    modality: str
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    instance: int | None
    spacing: tuple[float, float] | None
    spacing_source: str
    thickness: float | None
    between: float | None
    slope: float | None
    intercept: float | None
    echo: str
    sop: str
    tilt: float | None
    acquisition: str
    temporal: str


def _float(value: Any) -> float | None:
    try:
        if value is None or value == "":
            return None
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0]
        f = float(value)
        return f if math.isfinite(f) else None
    except (TypeError, ValueError, IndexError):
        return None


def _floats3(value: Any) -> tuple[float, float, float] | None:
    """:func:`_floats` of 3 values (a position), typed as such."""
    return cast("tuple[float, float, float] | None", _floats(value, 3))


def _floats2(value: Any) -> tuple[float, float] | None:
    """:func:`_floats` of 2 values (a pixel spacing), typed as such."""
    return cast("tuple[float, float] | None", _floats(value, 2))


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return vals if len(vals) == n and all(math.isfinite(v) for v in vals) else None


def _int(value: Any) -> int | None:
    f = _float(value)
    return int(f) if f is not None and f == int(f) else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _pixel_element(fh: IO[bytes], little: bool, implicit: bool) -> tuple[str, int, int, bytes] | None:
    """At the position ``dcmread(stop_before_pixels=True)`` leaves: (kind, value offset, length, VR) or None."""
    start = fh.tell()
    head = fh.read(12)
    if len(head) < 8:
        return None
    e = "<" if little else ">"
    group, elem = struct.unpack(e + "HH", head[:4])
    kinds = {0x0010: "int", 0x0008: "f4", 0x0009: "f8"}
    if group != 0x7FE0 or elem not in kinds:
        return None
    vr = head[4:6]
    if implicit or not (vr.isalpha() and vr.isupper()):  # some files say explicit VR and are written implicit
        (length,) = struct.unpack(e + "L", head[4:8])
        vr = b""
        offset = start + 8
    elif vr in _LONG_VRS:
        (length,) = struct.unpack(e + "L", head[8:12])
        offset = start + 12
    else:
        (length,) = struct.unpack(e + "H", head[6:8])
        offset = start + 8
    return kinds[elem], offset, length, vr


def _read_header(store: _Store, name: str, pyd: Any) -> tuple[str, Any, _File | None]:
    """('dicom', dataset, file) for an image, ('nonimage', dataset, None), ('broken', reason, None) for a file
    marked DICOM that cannot be parsed, or ('other', None, None)."""
    magic = False
    try:
        with store.open(name) as fh:
            head = fh.read(132)
            magic = len(head) >= 132 and head[128:132] == b"DICM"
            if not magic and Path(name).suffix.lower() not in _DICOM_SUFFIXES:
                return "other", None, None
            fh.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pyd.dcmread(fh, stop_before_pixels=True, force=not magic)
                if not magic and not ("SOPClassUID" in ds or ("Rows" in ds and "Columns" in ds)):
                    return "other", None, None
                ts = _text(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
                implicit, little = ds.original_encoding if ds.original_encoding[0] is not None else (True, True)
                if not ts:
                    ts = (
                        "1.2.840.10008.1.2"
                        if implicit
                        else ("1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")
                    )
                element = None if ts in _DEFLATED else _pixel_element(fh, little, implicit)
    except Exception as exc:
        return ("broken", f"{type(exc).__name__}: {exc}", None) if magic else ("other", None, None)
    rows, cols = _int(ds.get("Rows")), _int(ds.get("Columns"))
    if not rows or not cols or (element is None and ts not in _DEFLATED):
        if "Image Storage" in _sop_name(ds):  # an image object without its pixels: cut short
            return "broken", "an image object without pixel data (truncated?)", None
        return "nonimage", ds, None
    kind, offset, length, vr = element if element is not None else ("int", 0, 0, b"")
    bits = _int(ds.get("BitsAllocated")) or (32 if kind == "f4" else 64 if kind == "f8" else 16)
    photometric = _text(ds.get("PhotometricInterpretation")) or "MONOCHROME2"
    samples = _int(ds.get("SamplesPerPixel")) or 1
    encapsulated = length == 0xFFFFFFFF or ts in _COMPRESSED
    if (
        ts in _DEFLATED
        or kind != "int"
        or bits not in (8, 16, 32)
        or (not encapsulated and photometric.startswith("YBR") and photometric != "YBR_FULL")
        or (not encapsulated and not little and bits == 8 and vr == b"OW")  # bytes swapped in 16-bit words
    ):
        mode = "pydicom"
    else:
        mode = "encapsulated" if encapsulated else "native"
    eot = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        eot = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    file = _File(
        name=name,
        label=store.label(name),
        ts=ts,
        little=little,
        mode=mode,
        value_offset=offset,
        rows=rows,
        cols=cols,
        samples=samples,
        bits_allocated=bits,
        bits_stored=_int(ds.get("BitsStored")) or bits,
        signed=_int(ds.get("PixelRepresentation")) == 1,
        photometric=photometric,
        planar=_int(ds.get("PlanarConfiguration")) or 0,
        nframes=max(1, _int(ds.get("NumberOfFrames")) or 1),
        float_kind=kind if kind != "int" else "",
        extended_offsets=eot,
    )
    return "dicom", ds, file


def _group_item(item: Any, seq: str, kw: str) -> Any:
    if item is None or seq not in item or not len(item[seq].value):
        return None
    sub = item[seq].value[0]
    return sub[kw].value if kw in sub else None


def _frames_of(ds: Any, file: _File) -> list[_Frame]:
    """One record per frame: where it is, how it scales, which series part it belongs to."""
    n = file.nframes
    uid = _text(ds.get("SeriesInstanceUID"))
    ipp = _floats3(ds.get("ImagePositionPatient"))
    iop = _floats(ds.get("ImageOrientationPatient"), 6)
    spacing, spacing_source = _floats2(ds.get("PixelSpacing")), "PixelSpacing"
    if spacing is None and _floats(ds.get("ImagerPixelSpacing"), 2) is not None:
        spacing, spacing_source = _floats2(ds.get("ImagerPixelSpacing")), "ImagerPixelSpacing"
    common: dict[str, Any] = dict(
        uid=uid,
        number=_int(ds.get("SeriesNumber")),
        description=_text(ds.get("SeriesDescription")),
        modality=_text(ds.get("Modality")),
        instance=_int(ds.get("InstanceNumber")),
        tilt=_float(ds.get("GantryDetectorTilt")),
        acquisition=_text(ds.get("AcquisitionNumber")),
    )
    thickness, between = _float(ds.get("SliceThickness")), _float(ds.get("SpacingBetweenSlices"))
    slope, intercept = _float(ds.get("RescaleSlope")), _float(ds.get("RescaleIntercept"))
    echo = _text(ds.get("EchoNumbers"))
    sop = _text(ds.get("SOPInstanceUID"))
    temporal = _text(ds.get("TemporalPositionIdentifier"))
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq is not None and len(shared_seq) else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    frames: list[_Frame] = []
    if shared is not None or per_frame is not None:  # enhanced multi-frame
        for i in range(n):
            item = per_frame[i] if per_frame is not None and i < len(per_frame) else None

            def fg(seq: str, kw: str) -> Any:
                value = _group_item(item, seq, kw)
                return value if value is not None else _group_item(shared, seq, kw)

            ps = _floats2(fg("PixelMeasuresSequence", "PixelSpacing"))
            s, b = (
                _float(fg("PixelValueTransformationSequence", "RescaleSlope")),
                _float(fg("PixelValueTransformationSequence", "RescaleIntercept")),
            )
            te = fg("MREchoSequence", "EffectiveEchoTime")
            frames.append(
                _Frame(
                    file=file,
                    index=i,
                    position=_floats3(fg("PlanePositionSequence", "ImagePositionPatient"))
                    or (ipp if n == 1 else None),
                    orientation=_floats(fg("PlaneOrientationSequence", "ImageOrientationPatient"), 6) or iop,
                    spacing=ps or spacing,
                    spacing_source="PixelSpacing" if ps else spacing_source,
                    thickness=_float(fg("PixelMeasuresSequence", "SliceThickness")) or thickness,
                    between=_float(fg("PixelMeasuresSequence", "SpacingBetweenSlices")) or between,
                    slope=s if s is not None else slope,
                    intercept=b if b is not None else intercept,
                    echo=f"TE {_float(te):g} ms" if _float(te) is not None else (f"echo {echo}" if echo else ""),
                    sop=f"{sop}#{i}",
                    temporal=_text(fg("FrameContentSequence", "TemporalPositionIndex")) or temporal,
                    **common,
                )
            )
        return frames
    positions: list[tuple[float, float, float] | None] = [ipp] if n == 1 else [None] * n
    offsets = ds.get("GridFrameOffsetVector")
    if n > 1 and ipp is not None and iop is not None and offsets is not None and len(offsets) == n:
        normal = np.cross(iop[:3], iop[3:])
        offs = [float(v) for v in offsets]
        base = offs[0] if offs[0] != 0 and abs(offs[0] - float(np.dot(ipp, normal))) < _POSITION_TOL else 0.0
        positions = [tuple(float(v) for v in np.asarray(ipp) + (o - base) * normal) for o in offs]  # type: ignore[misc]
    for i in range(n):
        frames.append(
            _Frame(
                file=file,
                index=i,
                position=positions[i],
                orientation=iop,
                spacing=spacing,
                spacing_source=spacing_source,
                thickness=thickness,
                between=between,
                slope=slope,
                intercept=intercept,
                echo=f"echo {echo}" if echo else "",
                sop=f"{sop}#{i}",
                temporal=temporal,
                **common,
            )
        )
    return frames


def _series_frames(series: DicomSeries) -> tuple[_Frame, ...]:
    """The scan's per-frame records of ``series`` (the attribute ``_frames``, outside its dataclass fields)."""
    return getattr(series, "_frames")


@dataclass(frozen=True)
class DicomSeries:
    """One series (or one part of a series split by size / orientation / echo) found in a DICOM input."""

    index: int
    uid: str
    number: int | None
    description: str
    modality: str
    slices: int
    rows: int
    cols: int
    spacing: tuple[float, float, float] | None  # (z, y, x) mm, from the headers
    dtype: str  # stored pixel type (before any rescale)
    files: tuple[str, ...]
    subset: str = ""  # what sets this part apart when a SeriesInstanceUID was split
    samples: int = 1
    picked: bool = False  # it holds the one file the user gave: read when no series is named
    # (the scan's per-frame records ride along as the attribute ``_frames``, outside the dataclass fields)

    @property
    def label(self) -> str:
        """Short human name: number, description and part."""
        text = f"series {self.number}" if self.number is not None else "series"
        if self.description:
            text += f' "{self.description}"'
        return text + (f" ({self.subset})" if self.subset else "")


def _stored_dtype(file: _File) -> np.dtype:
    if file.float_kind:
        return np.dtype(file.float_kind)
    if file.bits_allocated == 1:
        return np.dtype(np.uint8)
    return np.dtype(f"{'i' if file.signed else 'u'}{max(1, file.bits_allocated // 8)}")


@dataclass
class _Scan:
    store: _Store
    series: list[DicomSeries]
    counts: Counter
    preferred: str | None = None  # a picked file's name
    broken: list[str] = field(default_factory=list)  # files marked DICOM whose header could not be read


def _orientation_match(a: tuple[float, ...] | None, b: tuple[float, ...] | None) -> bool:
    if a is None or b is None:
        return a is b
    return max(abs(x - y) for x, y in zip(a, b)) < _ORIENTATION_TOL


def _group(frames: list[_Frame]) -> list[list[_Frame]]:
    groups: list[tuple[tuple, tuple[float, ...] | None, list[_Frame]]] = []
    index: dict[tuple, list[int]] = {}
    for fr in frames:
        f = fr.file
        key = (fr.uid, f.rows, f.cols, f.samples, f.bits_allocated, f.signed, f.photometric, f.float_kind, fr.echo)
        for gi in index.get(key, []):
            if _orientation_match(groups[gi][1], fr.orientation):
                groups[gi][2].append(fr)
                break
        else:
            index.setdefault(key, []).append(len(groups))
            groups.append((key, fr.orientation, [fr]))
    return [g[2] for g in groups]


def _subset_labels(parts: list[list[_Frame]]) -> list[str]:
    if len(parts) == 1:
        return [""]
    firsts = [p[0] for p in parts]
    labels = []
    for fr in firsts:
        bits = []
        if len({(p.file.rows, p.file.cols) for p in firsts}) > 1:
            bits.append(f"{fr.file.cols}x{fr.file.rows}")
        if len({p.echo for p in firsts}) > 1:
            bits.append(fr.echo or "no echo")
        if len({(p.file.samples, p.file.photometric, p.file.bits_allocated, p.file.signed) for p in firsts}) > 1:
            bits.append(f"{fr.file.photometric} {_stored_dtype(fr.file)}")
        oris = [p.orientation for p in firsts]
        if any(not _orientation_match(fr.orientation, o) for o in oris):
            bits.append(_orientation_name(fr.orientation))
        labels.append(", ".join(bits) or "part")
    seen: Counter = Counter()
    out = []
    for lab in labels:
        seen[lab] += 1
        out.append(lab if labels.count(lab) == 1 else f"{lab} {seen[lab]}")
    return out


def _orientation_name(iop: tuple[float, ...] | None) -> str:
    if iop is None:
        return "no orientation"
    normal = np.abs(np.cross(iop[:3], iop[3:]))
    main = int(np.argmax(normal))
    if normal[main] > 0.9:
        return ("sagittal", "coronal", "axial")[main]
    return "oblique " + ",".join(f"{v:.2f}" for v in iop)


def _scan(path: Path, pyd: Any) -> _Scan:
    """Read every header once and group the images into series (no pixel is read)."""
    if not path.exists():
        raise MzarrFileNotFoundError(f"no such file or folder: {path}")
    preferred = None
    if path.is_file() and path.name.upper() == "DICOMDIR":  # the index of a CD / export: read its folder
        path = path.parent
    if path.is_dir():
        store, names, what = _Store(path), _walk(path), f"folder {path}"
    elif not _has_magic(path) and zipfile.is_zipfile(path):
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise MzarrFormatError(f"{path.name} is not a readable zip archive: {exc}") from None
        store, names, what = _Store(path, zf), _zip_names(zf), f"zip archive {path.name}"
    else:
        store = _Store(path)
        kind, ds, file = _read_header(store, str(path), pyd)
        if kind == "broken":
            raise MzarrFormatError(f"{path.name} is a damaged or incomplete DICOM file: {ds}")
        if kind == "other":
            raise MzarrFormatError(
                f"{path.name} is not a DICOM file (no 'DICM' marker at byte 128 and no readable DICOM header); "
                "give a DICOM file, a folder of DICOM slices or a .zip of them"
            )
        if kind == "nonimage":
            raise MzarrFormatError(
                f"{path.name} is a DICOM {_sop_name(ds)} object without pixel data; give the image files "
                "(or the folder holding them)"
            )
        assert file is not None
        if file.nframes == 1 and _text(ds.get("SeriesInstanceUID")):
            # a slice picked in a folder of its series: the whole series, read from that folder
            store, names, preferred = _Store(path.parent), _walk(path.parent, recursive=False), str(path)
            what = f"folder {path.parent}"
        else:
            names = [str(path)]
            what = f"file {path.name}"
    frames: list[_Frame] = []
    counts: Counter = Counter()
    broken: list[str] = []
    for name in names:
        kind, ds, file = _read_header(store, name, pyd)
        if kind == "other":
            counts["not DICOM"] += 1
            continue
        if kind == "broken":
            counts["unreadable DICOM"] += 1
            broken.append(store.label(name))
            continue
        if kind == "nonimage":
            counts[_sop_name(ds)] += 1
            continue
        assert file is not None
        counts["images"] += 1
        file_frames = _frames_of(ds, file)
        frames.extend(file_frames)
    if not frames:
        store.close()
        _raise_nothing(what, counts, len(names))
    parts = _group(frames)
    by_uid: dict[str, list[list[_Frame]]] = {}
    for p in parts:
        by_uid.setdefault(p[0].uid, []).append(p)
    ordered = sorted(
        by_uid.values(),
        key=lambda ps: (ps[0][0].number is None, ps[0][0].number or 0, ps[0][0].uid),
    )
    series: list[DicomSeries] = []
    for ps in ordered:
        ps = sorted(ps, key=lambda p: -len(p))
        for p, lab in zip(ps, _subset_labels(ps)):
            first = p[0]
            geo = _arrange(p)
            names_in = tuple(dict.fromkeys(fr.file.name for fr in p))
            found = DicomSeries(
                index=len(series),
                uid=first.uid,
                number=first.number,
                description=first.description,
                modality=first.modality,
                slices=len(p),
                rows=first.file.rows,
                cols=first.file.cols,
                spacing=geo.spacing,
                dtype=str(_stored_dtype(first.file)),
                files=names_in,
                subset=lab,
                samples=first.file.samples,
                picked=preferred is not None and preferred in names_in,
            )
            object.__setattr__(found, "_frames", tuple(p))
            series.append(found)
    return _Scan(store, series, counts, preferred, broken)


def _sop_name(ds: Any) -> str:
    if ds is None:
        return "unknown"
    meta = getattr(ds, "file_meta", None)
    uid = _text(ds.get("SOPClassUID")) or (_text(meta.get("MediaStorageSOPClassUID")) if meta is not None else "")
    if uid == _DICOMDIR_CLASS:
        return "DICOMDIR"
    try:
        from pydicom.uid import UID

        name = UID(uid).name if uid else ""
    except Exception:
        name = ""
    return name if name and name != uid else (uid or "unknown")


def _raise_nothing(what: str, counts: Counter, total: int) -> None:
    if total == 0:
        raise MzarrFormatError(f"{what} holds no files; give the folder (or .zip) holding the DICOM slices")
    if counts["not DICOM"] == total:
        raise MzarrFormatError(
            f"{what} holds {total} file(s) but none is DICOM; give the folder (or .zip) holding the DICOM slices"
        )
    found = ", ".join(f"{n} x {k}" for k, n in sorted(counts.items()) if k != "not DICOM")
    hint = (
        " A DICOMDIR is only an index: point to the folder that holds the image files it lists."
        if counts["DICOMDIR"]
        else ""
    )
    raise MzarrFormatError(
        f"{what} holds DICOM files but no images with pixel data (found: {found}"
        + (f", and {counts['not DICOM']} non-DICOM file(s)" if counts["not DICOM"] else "")
        + f").{hint} Give the folder (or .zip) holding the image slices."
    )


# -- geometry ---------------------------------------------------------------------------------------------------------
@dataclass
class _Geometry:
    frames: list[_Frame]  # in z order (duplicates still in, adjacent)
    clusters: list[list[int]]  # indices into frames sharing one position
    spacing: tuple[float, float, float] | None
    normal: np.ndarray | None
    step_vector: np.ndarray | None
    steps: list[float]
    sorted_by: str
    warnings: list[str]
    positions: list[float]


def _arrange(frames: Sequence[_Frame]) -> _Geometry:
    """Sort the frames along the slice normal, measure their steps, and say what is odd about them."""
    notes: list[str] = []
    n = len(frames)
    iop = frames[0].orientation
    have_positions = iop is not None and all(f.position is not None for f in frames)
    normal = step_vector = None
    steps: list[float] = []
    positions: list[float] = []
    clusters: list[list[int]]
    if have_positions:
        assert iop is not None
        normal = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))
        norm = float(np.linalg.norm(normal))
        normal = normal / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
        d = [float(np.dot(f.position, normal)) for f in frames]  # type: ignore[arg-type]
        order = sorted(range(n), key=lambda i: (d[i], frames[i].instance or 0, frames[i].file.name, frames[i].index))
        ordered = [frames[i] for i in order]
        dist = [d[i] for i in order]
        clusters = []
        for i, v in enumerate(dist):
            if clusters and v - dist[clusters[-1][0]] < _POSITION_TOL:
                clusters[-1].append(i)
            else:
                clusters.append([i])
        positions = [dist[c[0]] for c in clusters]
        steps = [b - a for a, b in zip(positions, positions[1:])]
        sorted_by = "ImagePositionPatient"
        if len(clusters) > 1:
            first_position = np.asarray(ordered[clusters[0][0]].position)
            last = np.asarray(ordered[clusters[-1][0]].position)
            step_vector = (last - first_position) / (len(clusters) - 1)
            along = float(np.dot(last - first_position, normal))
            lateral = float(np.linalg.norm((last - first_position) - along * normal))
            angle = math.degrees(math.atan2(lateral, abs(along)))
            if angle > _SHEAR_DEGREES:
                notes.append(
                    f"slice positions are not stacked along the slice normal (a tilted gantry or a sheared stack: "
                    f"they drift {lateral:.2f} mm sideways over the series, {angle:.2f} degrees); the volume is stored "
                    "as acquired, with spacing along the normal, and attrs dicom.geometry.affine_lps follows the "
                    "slices; resample it (e.g. in 3D Slicer) for a rectangular grid"
                )
    else:
        missing = sum(f.position is None for f in frames) if iop is not None else n
        has_instance = all(f.instance is not None for f in frames)
        key = (lambda f: (f.instance, f.file.name, f.index)) if has_instance else (lambda f: (f.file.name, f.index))
        ordered = sorted(frames, key=key)
        clusters = [[i] for i in range(n)]
        single_file = len({f.file.name for f in frames}) == 1
        sorted_by = "frame order" if single_file else "InstanceNumber" if has_instance else "file name"
        if n > 1:
            what = "ImageOrientationPatient" if iop is None else f"ImagePositionPatient in {missing} of {n} images"
            notes.append(
                f"no {what}: slices sorted by {sorted_by} (their real order and spacing are not known for sure)"
            )
    first = ordered[0]
    tilt = next((f.tilt for f in frames if f.tilt), None)
    if tilt and abs(tilt) > 0.01:
        notes.append(f"gantry tilt of {tilt:g} degrees (GantryDetectorTilt): slices are sheared, not orthogonal")
    if len(steps) >= 1:
        # positions are stored with ~10 digits: 0.9999999999997 mm is 1 mm (rounded to 0.1 um)
        dz = round(float(np.median(steps)), 4)
        lo, hi = min(steps), max(steps)
        if hi - lo > max(1e-3, 0.01 * abs(dz)):
            notes.append(
                f"uneven slice gaps: steps between slice positions range from {lo:.4g} to {hi:.4g} mm "
                f"(median {dz:.4g} mm used as z spacing; missing slices or a variable-thickness scan); "
                "the positions are in attrs dicom.geometry.slice_positions_mm"
            )
    else:
        header_dz = first.between or first.thickness
        if header_dz is None and len(clusters) > 1:
            notes.append(
                "no slice spacing in the headers (SpacingBetweenSlices / SliceThickness): z spacing 1.0 assumed"
            )
        dz = header_dz or 1.0
    spacing = None
    if first.spacing is not None:
        spacing = (abs(dz) or 1.0, first.spacing[0], first.spacing[1])
    return _Geometry(ordered, clusters, spacing, normal, step_vector, steps, sorted_by, notes, positions)


# -- pixels -----------------------------------------------------------------------------------------------------------
def _jpeg_adobe_transform(data: bytes) -> int | None:
    """The Adobe APP14 colour transform flag of a JPEG stream, None without that marker."""
    i, n = 2, len(data)
    while i + 4 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in (0xDA, 0xD9):  # start of scan / end
            break
        length = (data[i + 2] << 8) | data[i + 3]
        if marker == 0xEE and length >= 14 and data[i + 4 : i + 9] == b"Adobe" and i + 15 < n:
            return data[i + 15]
        i += 2 + length
    return None


def _decode_encapsulated(data: bytes, file: _File) -> np.ndarray:
    """One compressed frame -> array (rows, cols[, samples]) of the stored dtype."""
    import imagecodecs

    ts, stored = file.ts, _stored_dtype(file)
    if ts in _JPEG:
        adobe = _jpeg_adobe_transform(data) if file.samples == 3 else None
        try:
            if file.samples == 3 and adobe is None and file.photometric == "RGB":
                arr = imagecodecs.jpeg8_decode(data, colorspace="RGB")  # RGB stored without colour transform
            else:
                arr = imagecodecs.jpeg8_decode(data)
        except Exception:
            arr = imagecodecs.jpeg_decode(data)  # lossless / 16-bit through ljpeg or jpegsof3
        if file.samples == 3 and adobe == 0 and file.photometric.startswith("YBR"):
            arr = _ybr_to_rgb(arr)
    elif ts in _JPEGLS:
        arr = imagecodecs.jpegls_decode(data)
    elif ts in _J2K:
        arr = imagecodecs.jpeg2k_decode(data)
    elif ts in _RLE:
        le = stored.newbyteorder("<")
        raw: np.ndarray = np.frombuffer(imagecodecs.dicomrle_decode(data, le.str), le)
        raw = raw.reshape(file.samples, file.rows, file.cols)
        arr = raw[0] if file.samples == 1 else raw.transpose(1, 2, 0)
        if file.photometric == "YBR_FULL":
            arr = _ybr_to_rgb(arr)
    elif ts in _JXL:
        arr = imagecodecs.jpegxl_decode(data)
    else:
        raise MzarrFormatError(f"{file.label}: transfer syntax {_ts_name(ts)} is not supported")
    arr = np.asarray(arr)
    want = (file.rows, file.cols) if file.samples == 1 else (file.rows, file.cols, file.samples)
    if arr.shape != want and arr.size == math.prod(want):
        arr = arr.reshape(want)
    if arr.shape != want:
        raise MzarrFormatError(f"{file.label}: a frame decoded to shape {arr.shape}, the header says {want}")
    return _fit_dtype(arr, file, stored)


def _fit_dtype(arr: np.ndarray, file: _File, stored: np.dtype) -> np.ndarray:
    """Decoded integers in the header's dtype, sign-corrected from BitsStored (as pydicom does for J2K/JPEG-LS)."""
    if arr.dtype == stored:
        return arr
    if arr.dtype.kind in "ui" and arr.dtype.itemsize == stored.itemsize:
        out = arr.view(stored).copy()
        if stored.kind == "i" and arr.dtype.kind == "u" and file.bits_stored < 8 * stored.itemsize:
            shift = 8 * stored.itemsize - file.bits_stored
            out = (out << shift) >> shift  # sign extension from BitsStored
        elif stored.kind == "u" and arr.dtype.kind == "i" and file.bits_stored < 8 * stored.itemsize:
            out &= (1 << file.bits_stored) - 1
        return out
    if arr.dtype.kind in "ui" and np.can_cast(arr.dtype, stored):
        return arr.astype(stored)
    if arr.dtype.kind in "ui" and arr.size and arr.min() >= np.iinfo(stored).min and arr.max() <= np.iinfo(stored).max:
        return arr.astype(stored)
    raise MzarrFormatError(f"{file.label}: a frame decoded to {arr.dtype}, the header says {stored}")


def _ybr_to_rgb(arr: np.ndarray) -> np.ndarray:
    from pydicom.pixels import convert_color_space

    return convert_color_space(np.ascontiguousarray(arr), "YBR_FULL", "RGB")


def _damaged_advice(files: str = "the file") -> str:
    """What to do about damaged slice ``files`` (said with every error about one)."""
    return ("copy or export the series again from the scanner or PACS; to convert the other slices without them, "
            f"move {files} out of the folder or archive (the slices then leave a gap there, which the conversion "
            "warns about as uneven slice gaps)")


_ITEM = 0xE000  # (FFFE,E000): an item (offset table or fragment) of encapsulated pixel data
_ITEMS_PER_FRAME = 64  # fragments walked per frame at most when looking for a cut (past that, decoding tells)


def _cut_short(store: _Store, file: _File) -> str | None:
    """How ``file``'s pixel data are cut short (what they need, what the file holds), or None when they are complete
    as far as the sizes tell: native frames against the file size; encapsulated fragments walked (folders only: a
    zip member would be decompressed) until one runs past the end. Nothing is decoded."""
    try:
        size = store.size(file.name)
        if file.mode == "native":
            need = file.nframes * file.rows * file.cols * file.samples * _stored_dtype(file).itemsize
            held = max(0, size - file.value_offset)
            return f"its pixel data need {need} bytes, it holds {held}" if held < need else None
        if file.mode != "encapsulated" or store.zf is not None:
            return None
        e = "<" if file.little else ">"
        pos = file.value_offset
        with store.open(file.name) as fh:
            for _ in range(2 + _ITEMS_PER_FRAME * min(file.nframes, 10_000)):  # the offset table, the fragments
                fh.seek(pos)
                head = fh.read(8)
                if len(head) == 0:
                    return None  # ends after a whole fragment without the delimiter: decoding tells if frames are short
                if len(head) < 8:
                    return f"it ends inside its pixel data, {size - file.value_offset} bytes after their start"
                group, elem, length = struct.unpack(e + "HHL", head)
                if group != 0xFFFE or elem != _ITEM:
                    return None  # the delimiter, or something decoding will name
                pos += 8 + length
                if pos > size:
                    return (f"its pixel data run to byte {pos} (a fragment of {length} bytes at {pos - length}), "
                            f"it holds {size}")
    except (OSError, KeyError, struct.error):
        return None
    return None


def _refuse_cut_short(store: _Store, frames: Sequence[_Frame], label: str) -> None:
    """An MzarrFormatError naming every file of the series whose pixel data are cut short, before anything is read."""
    files = {f.file.name: f.file for f in frames}
    cut = [(f.label, why) for f in files.values() if (why := _cut_short(store, f)) is not None]
    if not cut:
        return
    named = "; ".join(f"{name} ({why})" for name, why in cut[:5]) + ("; ..." if len(cut) > 5 else "")
    if len(files) == 1:
        raise MzarrFormatError(f"{label}: {named}: the file is cut short (damaged or copied incompletely); copy or "
                               "export it again from the scanner or PACS")
    advice = _damaged_advice("that file" if len(cut) == 1 else "those files")
    raise MzarrFormatError(
        f"{label}: {len(cut)} of its {len(files)} files {'is' if len(cut) == 1 else 'are'} cut short (damaged or "
        f"copied incompletely): {named}. {advice[:1].upper()}{advice[1:]}"
    )


def _read_native(fh: IO[bytes], file: _File, index: int) -> np.ndarray:
    stored = _stored_dtype(file)
    size = file.rows * file.cols * file.samples * stored.itemsize
    fh.seek(file.value_offset + index * size)
    buf = fh.read(size)
    if len(buf) < size:
        raise MzarrFormatError(
            f"{file.label}: frame {index} is truncated ({len(buf)} of {size} bytes): the file is damaged or "
            f"incomplete; {_damaged_advice()}"
        )
    arr: np.ndarray = np.frombuffer(buf, stored.newbyteorder("<" if file.little else ">"))
    if file.samples == 1:
        arr = arr.reshape(file.rows, file.cols)
    elif file.planar:
        arr = arr.reshape(file.samples, file.rows, file.cols).transpose(1, 2, 0)
    else:
        arr = arr.reshape(file.rows, file.cols, file.samples)
    arr = arr.astype(stored)  # native byte order, writeable
    if file.photometric == "YBR_FULL":
        arr = _ybr_to_rgb(arr)
    return arr


class DicomVolume:
    """The lazy array of a DICOM series: ``shape``/``dtype``/``[]`` decode only the slices asked for.

    ``frames_read`` counts decoded frames (for diagnostics and tests); :meth:`close` releases a zip archive.
    Compressed slices stay decoded in a small LRU (``cache_bytes``, 256 MiB): a writer reading one z-block per y/x
    tile then decodes each slice once, not once per tile. Native (uncompressed) slices are read from the file again.
    """

    def __init__(
        self,
        store: _Store,
        frames: Sequence[_Frame],
        flat: bool = False,
        lut: Any = None,
    ):
        self._store = store
        self._frames = list(frames)
        first = self._frames[0].file
        self._rows, self._cols, self._samples = first.rows, first.cols, first.samples
        self.stored_dtype = _stored_dtype(first)
        self._lut = lut  # a header dataset for PALETTE COLOR
        colour = self._samples > 1 or lut is not None
        if lut is not None:
            from pydicom.pixels import apply_color_lut

            probe = apply_color_lut(np.zeros((1, 1), self.stored_dtype), lut)
            self.stored_dtype = probe.dtype
            self._samples = probe.shape[-1]
        self._flat = flat
        plane = (self._rows, self._cols) + ((self._samples,) if colour else ())
        self.shape: tuple[int, ...] = plane if flat else (len(self._frames),) + plane
        self.dtype = np.dtype(self.stored_dtype)
        self._mode = "none"  # "none" | "int16" | "float32"
        self._offsets: list[float] = []
        self._slopes: list[float] = []
        self._cache_lock = threading.Lock()
        self._cache: tuple[str, np.ndarray] | None = None  # the last whole file decoded through pydicom
        # Compressed slices decoded lately (a writer reads a z-block once per y/x tile): bounded by cache_bytes.
        self._decoded: OrderedDict[int, np.ndarray] = OrderedDict()
        self._decoded_bytes = 0
        self.cache_bytes = _DECODED_CACHE_BYTES
        self.frames_read = 0

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<DicomVolume shape={self.shape} dtype={self.dtype}>"

    def _set_rescale(self, mode: str, slopes: list[float], intercepts: list[float]) -> None:
        self._mode = mode
        self._slopes, self._offsets = slopes, intercepts
        self.dtype = np.dtype({"int16": np.int16, "float32": np.float32}.get(mode, self.stored_dtype))

    # -- reading -----------------------------------------------------------------------------------------------------
    def _decode(self, fh: IO[bytes], fr: _File, index: int) -> np.ndarray:
        if fr.mode == "native":
            arr = _read_native(fh, fr, index)
        elif fr.mode == "encapsulated":
            from pydicom.encaps import get_frame

            fh.seek(fr.value_offset)
            data = get_frame(
                fh,
                index,
                number_of_frames=fr.nframes,
                extended_offsets=fr.extended_offsets,
                endianness="<" if fr.little else ">",
            )
            arr = _decode_encapsulated(data, fr)
        else:
            arr = self._decode_pydicom(fh, fr, index)
        if self._lut is not None:
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, self._lut)
        return arr

    def _decode_pydicom(self, fh: IO[bytes], fr: _File, index: int) -> np.ndarray:
        with self._cache_lock:
            if self._cache is not None and self._cache[0] == fr.name:
                whole = self._cache[1]
            else:
                pyd = _pydicom()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = pyd.dcmread(fh)
                    whole = ds.pixel_array
                self._cache = (fr.name, whole)
        arr = whole if fr.nframes == 1 else whole[index]
        return np.array(arr, dtype=arr.dtype.newbyteorder("="))

    def read_raw(self, index: int) -> np.ndarray:
        """Stored (not rescaled) pixels of slice ``index`` in z order."""
        return self._read_raw([index])[0]

    def _read_raw(self, indices: Sequence[int], each: Callable[[int, int, np.ndarray], None] | None = None) -> list:
        """Decode slices ``indices`` (z order), each file opened once; ``each(k, z, raw)`` consumes every slice as it is
        decoded (so that only one full slice is in memory at a time), else they are returned."""
        out: list[np.ndarray | None] = [None] * len(indices)
        by_file: dict[str, list[tuple[int, int]]] = {}
        for k, z in enumerate(indices):
            with self._cache_lock:
                hit = self._decoded.get(z)
                if hit is not None:
                    self._decoded.move_to_end(z)
            if hit is not None:
                if each is None:
                    out[k] = hit
                else:
                    each(k, z, hit)
                continue
            fr = self._frames[z]
            by_file.setdefault(fr.file.name, []).append((fr.index, k))
        for name, wanted in by_file.items():
            file = self._frames[indices[wanted[0][1]]].file
            try:
                with self._store.open(name) as fh:
                    for frame_index, k in sorted(wanted):
                        raw = self._decode(fh, file, frame_index)
                        self.frames_read += 1
                        if file.mode != "native":  # decoded slices are kept a while: block reads overlap in z
                            self._remember(indices[k], raw)
                        if each is None:
                            out[k] = raw
                        else:
                            each(k, indices[k], raw)
            except MzarrFormatError:
                raise
            except OSError as exc:
                raise MzarrFormatError(f"{file.label}: could not be read ({exc})") from None
            except Exception as exc:
                cut = _cut_short(self._store, file)
                raise MzarrFormatError(
                    f"{file.label}: a slice could not be decoded (transfer syntax {_ts_name(file.ts)}): "
                    f"{type(exc).__name__}: {exc}. The file is "
                    + (f"cut short ({cut})" if cut else "damaged or incomplete")
                    + f"; {_damaged_advice()}"
                ) from None
        return out  # type: ignore[return-value]

    def _remember(self, z: int, raw: np.ndarray) -> None:
        if raw.nbytes > self.cache_bytes:
            return
        raw.flags.writeable = False
        with self._cache_lock:
            self._decoded[z] = raw
            self._decoded_bytes += raw.nbytes
            while self._decoded_bytes > self.cache_bytes:
                _, old = self._decoded.popitem(last=False)
                self._decoded_bytes -= old.nbytes

    def _values(self, raw: np.ndarray, z: int) -> np.ndarray:
        if self._mode == "int16":
            v = raw.astype(np.int32) + int(self._offsets[z])
            if v.size and (v.min() < -32768 or v.max() > 32767):
                fr = self._frames[z].file
                raise MzarrFormatError(
                    f"{fr.label}: rescaled values {v.min()}..{v.max()} exceed int16 although the header's "
                    f"BitsStored={fr.bits_stored} promised they would fit (unused high bits set?)"
                )
            return v.astype(np.int16)
        if self._mode == "float32":
            return (raw.astype(np.float64) * self._slopes[z] + self._offsets[z]).astype(np.float32)
        return raw

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices for a {self.ndim}D DICOM volume")
        key = key + (slice(None),) * (self.ndim - len(key))
        if self._flat:
            zkey, rest = 0, key
        else:
            zkey, rest = key[0], key[1:]
        n = len(self._frames)
        squeeze = False
        if isinstance(zkey, (int, np.integer)):
            z = int(zkey) + (n if zkey < 0 else 0)
            if not 0 <= z < n:
                raise IndexError(f"slice {zkey} is out of range for {n} slices")
            indices, squeeze = [z], True
        elif isinstance(zkey, slice):
            indices = list(range(*zkey.indices(n)))
        else:
            idx = np.asarray(zkey)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            indices = [int(i) + (n if i < 0 else 0) for i in idx.ravel()]
        plane = self.shape if self._flat else self.shape[1:]
        cropped = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), plane, (0,) * len(plane))[rest].shape
        result = np.empty((len(indices),) + cropped, self.dtype)

        def put(k: int, z: int, raw: np.ndarray) -> None:
            result[k] = self._values(raw, z)[rest]

        self._read_raw(indices, put)
        return result[0] if squeeze else result

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self[...]
        return arr if dtype is None else arr.astype(dtype)

    def close(self) -> None:
        """Release the zip archive (if any) and the decoded-slice caches."""
        with self._cache_lock:
            self._cache = None
            self._decoded.clear()
            self._decoded_bytes = 0
        self._store.close()


# -- rescale ----------------------------------------------------------------------------------------------------------
def _stored_range(file: _File, stored: np.dtype) -> tuple[int, int] | None:
    if stored.kind not in "ui":
        return None
    bits = min(file.bits_stored, 8 * stored.itemsize)
    if stored.kind == "i":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _scan_minmax(volume: DicomVolume) -> list[tuple[int, int]]:
    out = [(0, 0)] * len(volume._frames)

    def note(k: int, z: int, raw: np.ndarray) -> None:
        out[z] = (int(raw.min()), int(raw.max())) if raw.size else (0, 0)

    volume._read_raw(range(len(volume._frames)), note)
    return out


def _plan_rescale(volume: DicomVolume, frames: list[_Frame], label: str) -> tuple[dict[str, Any], list[str]]:
    """Decide how RescaleSlope/Intercept become values (see the module docstring) and set it on the volume."""
    notes: list[str] = []
    pairs = [(f.slope, f.intercept) for f in frames]
    if all(s is None and b is None for s, b in pairs) or volume._lut is not None:
        return {}, notes
    slopes = [1.0 if s is None else s for s, _ in pairs]
    intercepts = [0.0 if b is None else b for _, b in pairs]
    stored = volume.stored_dtype
    uniform = len(set(slopes)) == 1 and len(set(intercepts)) == 1
    info: dict[str, Any] = {
        "slope": slopes[0] if uniform else sorted(set(slopes)),
        "intercept": intercepts[0] if uniform else sorted(set(intercepts)),
        "stored_dtype": str(stored),
    }
    exact = stored.kind in "ui" and all(s == 1 for s in slopes) and all(b == int(b) for b in intercepts)
    if uniform and slopes[0] == 1 and intercepts[0] == 0:
        info.update(applied=True, note="identity rescale: the stored values are the modality values")
        return info, notes
    fits = False
    if exact:
        rng = _stored_range(frames[0].file, stored)
        assert rng is not None
        fits = all(-32768 <= rng[0] + b and rng[1] + b <= 32767 for b in intercepts)
        if not fits:  # the header's bit range does not prove it: look at the stored values once
            mm = _scan_minmax(volume)
            fits = all(-32768 <= lo + b and hi + b <= 32767 for (lo, hi), b in zip(mm, intercepts))
            info["checked_by"] = "min/max pass over the stored values"
    if exact and fits:
        volume._set_rescale("int16", slopes, intercepts)
        info.update(applied=True, dtype="int16")
        if not uniform:
            notes.append(
                f"RescaleIntercept differs between slices ({min(intercepts):g}..{max(intercepts):g}); "
                "applied per slice (exactly, to int16)"
            )
        return info, notes
    if uniform:
        why = "values would not fit int16" if exact else "the rescale is not an integer shift"
        info.update(applied=False, note=f"stored values kept ({why}); values = stored * slope + intercept")
        notes.append(
            f"RescaleSlope {slopes[0]:g} / RescaleIntercept {intercepts[0]:g} not applied ({why}); "
            "the stored values are kept and the rescale is recorded in attrs dicom.rescale"
        )
        return info, notes
    volume._set_rescale("float32", slopes, intercepts)
    info.update(applied=True, dtype="float32", note="rescale differs per slice: applied to float32")
    notes.append(
        f"RescaleSlope/Intercept differ between slices (slopes {min(slopes):g}..{max(slopes):g}, "
        f"intercepts {min(intercepts):g}..{max(intercepts):g}); applied per slice, values stored as float32"
    )
    return info, notes


# -- attributes -------------------------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    name = type(value).__name__
    if name in ("Sequence",) or isinstance(value, (bytes, bytearray)):
        return None
    if isinstance(value, (list, tuple)) or name == "MultiValue":
        items = [_jsonable(v) for v in value]
        return [v for v in items if v is not None] or None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    text = str(value).strip()
    return text or None


def _header_fields(ds: Any, keywords: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def take(item: Any) -> None:
        for kw in keywords:
            if kw not in out and kw in item:
                try:
                    v = _jsonable(item[kw].value)
                except Exception:
                    v = None
                if v is not None:
                    out[kw] = v

    take(ds)
    for seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = ds.get(seq)
        if not items:
            continue
        for elem in items[0]:
            if elem.VR == "SQ" and elem.value:
                take(elem.value[0])
                for sub in elem.value[0]:
                    if sub.VR == "SQ" and sub.value:
                        take(sub.value[0])
    return out


WINDOW_KEYWORDS = ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation")


def _middle_window(store: Any, kept: list[_Frame], first_ds: Any) -> dict[str, Any] | None:
    """The middle slice's window (centre/width/explanation) with a ``note``, when it differs from the first
    slice's: scanners set a window per slice (an MR series' edge slices are dark and get a narrow one), and the
    middle of the volume is what the window is for. None when they agree (the first slice's header is kept)."""
    if len(kept) < 3:
        return None
    middle = kept[len(kept) // 2]
    if middle.file.name == kept[0].file.name:
        return None
    with store.open(middle.file.name) as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = _pydicom().dcmread(fh, stop_before_pixels=True, force=True)
    first, mid = _header_fields(first_ds, WINDOW_KEYWORDS), _header_fields(ds, WINDOW_KEYWORDS)
    if not mid.get("WindowCenter") or not mid.get("WindowWidth") or mid == first:
        return None
    out: dict[str, Any] = dict(mid)
    out["note"] = (
        f"the window centre/width differ between slices (first {first.get('WindowCenter')}/"
        f"{first.get('WindowWidth')}, middle {mid['WindowCenter']}/{mid['WindowWidth']}): the middle slice's is kept"
    )
    return out


def _attrs(
    source_name: str,
    ds: Any,
    chosen: DicomSeries,
    geo: _Geometry,
    kept: list[_Frame],
    rescale: dict[str, Any],
    counts: Counter,
    n_series: int,
    dropped: int,
    keep_phi: bool,
) -> dict[str, Any]:
    block = _header_fields(ds, SAFE_KEYWORDS)
    if keep_phi:
        block.update(_header_fields(ds, PHI_KEYWORDS))
    first = kept[0]
    if first.orientation is not None:
        block["ImageOrientationPatient"] = list(first.orientation)
    if first.position is not None:
        block["ImagePositionPatient"] = list(first.position)
    if first.spacing is not None:
        block[first.spacing_source] = list(first.spacing)
    block["TransferSyntaxUID"] = first.file.ts
    geometry: dict[str, Any] = {
        "frame": "DICOM patient coordinates (LPS), millimetres",
        "index_order": "affines map (x, y, z, 1) = (column, row, slice, 1) voxel indices to patient mm",
        "sorted_by": geo.sorted_by,
    }
    if first.orientation is not None and first.position is not None and geo.spacing is not None:
        row = np.asarray(first.orientation[:3])
        col = np.asarray(first.orientation[3:])
        normal = geo.normal if geo.normal is not None else np.cross(row, col)
        dz, dy, dx = geo.spacing
        zcol = geo.step_vector if geo.step_vector is not None else normal * dz
        affine = np.eye(4)
        affine[:3, 0], affine[:3, 1], affine[:3, 2] = row * dx, col * dy, zcol
        affine[:3, 3] = first.position
        geometry["origin"] = list(first.position)
        geometry["direction"] = [list(map(float, row)), list(map(float, col)), list(map(float, normal))]
        geometry["affine_lps"] = affine.round(9).tolist()
        geometry["affine_ras"] = (np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine).round(9).tolist()
    if geo.steps:
        geometry["slice_step_mm"] = round(float(np.median(geo.steps)), 6)
        geometry["slice_step_min_mm"] = round(float(min(geo.steps)), 6)
        geometry["slice_step_max_mm"] = round(float(max(geo.steps)), 6)
        if any("uneven" in w for w in geo.warnings):
            geometry["slice_positions_mm"] = [round(p, 6) for p in geo.positions]
    block["geometry"] = geometry
    if rescale:
        rescale = dict(rescale)
        rescale.setdefault("type", block.get("RescaleType") or ("HU" if first.modality == "CT" else "US"))
        block["rescale"] = rescale
    skipped = {k: v for k, v in counts.items() if k != "images"}
    block["import"] = {
        "files": len(chosen.files),
        "slices": len(kept),
        "series_in_input": n_series,
        "duplicate_slices_dropped": dropped,
        "skipped_files": skipped,
        "phi": "kept" if keep_phi else "removed (allow-list; see mzarr_core.formats.dicom)",
    }
    if chosen.subset:
        block["import"]["subset"] = chosen.subset
    # exported folder and file names are often the patient's name or ID: kept only with keep_phi
    return {"source": source_name if keep_phi else "DICOM series", "dicom": block}


# -- public API -------------------------------------------------------------------------------------------------------
def list_dicom_series(path: str | os.PathLike[str]) -> list[DicomSeries]:
    """The image series in a DICOM folder, zip or file (headers only), most useful order: by SeriesNumber."""
    pyd = _pydicom()
    scan = _scan(Path(path), pyd)
    scan.store.close()
    if scan.preferred is not None:  # a picked file: just its series
        keep = [s for s in scan.series if any(f.file.name == scan.preferred for f in _series_frames(s))]
        uid = keep[0].uid if keep else None
        return [s for s in scan.series if s.uid == uid] or scan.series
    return scan.series


def format_dicom_series(series: Sequence[DicomSeries], chosen: DicomSeries | None = None) -> list[str]:
    """One readable line per series (``*`` marks ``chosen``), e.g. for ``mzarr info`` or the import dialog."""
    lines = []
    for s in series:
        mark = "*" if chosen is not None and s.index == chosen.index else " "
        size = f"{s.slices} x {s.rows} x {s.cols}" + (f" x {s.samples}" if s.samples > 1 else "")
        spacing = (
            "spacing " + " x ".join(f"{v:.4g}" for v in s.spacing) + " mm"
            if s.spacing is not None
            else "spacing unknown"
        )
        desc = f' "{s.description}"' if s.description else ""
        number = f"series {s.number}" if s.number is not None else "series -"
        part = f" [{s.subset}]" if s.subset else ""
        lines.append(
            f"{mark} #{s.index}  {number}  {s.modality or '?'}{desc}{part}  {size} {s.dtype}  {spacing}  "
            f"({len(s.files)} file{'s' if len(s.files) != 1 else ''})  uid {s.uid or '-'}"
        )
    return lines


def _matching(found: Sequence[DicomSeries], series: int | str | DicomSeries | None) -> list[DicomSeries]:
    """The series ``series`` names among ``found``: a DicomSeries (the same UID and part), a number (SeriesNumber:
    what pydicom's ds.SeriesNumber gives, as the CLI's --series 5), text (a SeriesInstanceUID, "#N" the N-th listed,
    else a SeriesNumber); None names them all."""
    if isinstance(series, DicomSeries):
        return [s for s in found if s.uid == series.uid and s.subset == series.subset]
    if isinstance(series, (int, np.integer)) and not isinstance(series, bool):
        return [s for s in found if s.number is not None and s.number == int(series)]
    if isinstance(series, str):
        text = series.strip()
        cands = [s for s in found if s.uid == text]
        if not cands and text.startswith("#") and text[1:].isdigit():
            cands = [s for s in found if s.index == int(text[1:])]
        return cands or [s for s in found if s.number is not None and str(s.number) == text]
    if series is None:
        return list(found)
    raise MzarrFormatError(f'series= takes "#N", a UID or a SeriesNumber, not {type(series).__name__}')


def pick_series(found: Sequence[DicomSeries], series: int | str | DicomSeries | None = None) -> DicomSeries | None:
    """The series :func:`open_dicom` reads from the input ``found`` lists (:func:`list_dicom_series`): the one
    ``series`` names (a SeriesNumber, "#N" the N-th listed, a SeriesInstanceUID or a DicomSeries; of several, the one
    with most slices); none named: the picked file's, else the one with most slices. None when ``series`` matches
    nothing (open_dicom then raises, listing them). The one place these rules live (the CLI's ``info`` uses it)."""
    if series is None:
        mine = [s for s in found if s.picked]
        if mine:
            return mine[0]
    cands = _matching(found, series)
    return max(cands, key=lambda s: (s.slices, -s.index)) if cands else None


def _choose(scan: _Scan, series: int | str | DicomSeries | None, what: str) -> DicomSeries:
    found = scan.series
    chosen = pick_series(found, series)
    if chosen is None:
        if isinstance(series, DicomSeries):
            why = f"series {series.label} is not"
        elif isinstance(series, (int, np.integer)):
            why = f"no series has SeriesNumber {int(series)} (series=\"#{int(series)}\" is the position)"
        elif isinstance(series, str) and series.strip().startswith("#") and series.strip()[1:].isdigit():
            why = f"there is no series {series.strip()} ({len(found)} found)"
        else:
            why = f"no series matches {series!r}"
        raise MzarrFormatError(
            f"{why} in {what}; give series= as an index (#N), a SeriesInstanceUID or a SeriesNumber from:\n"
            + "\n".join(format_dicom_series(found))
        )
    cands = _matching(found, series)
    if len(cands) > 1 and not (series is None and chosen.picked):
        others = [line for s, line in zip(found, format_dicom_series(found, chosen)) if s.index != chosen.index]
        head = (
            f"{what} holds {len(found)} image series" if series is None else f"series={series!r} matches {len(cands)}"
        )
        warnings.warn(
            f"{head}; reading #{chosen.index} {chosen.label} ({chosen.slices} slices, the largest). Pick another "
            "with series= (index #N, SeriesInstanceUID or SeriesNumber). The others:\n" + "\n".join(others),
            MzarrWarning,
            stacklevel=3,
        )
    return chosen


def _deduplicate(volume_store: _Store, geo: _Geometry, label: str) -> tuple[list[_Frame], int, list[str]]:
    """One frame per position: identical duplicates are dropped (warned), differing ones refused."""
    kept: list[_Frame] = []
    dropped = 0
    conflicts: list[list[_Frame]] = []
    probe = DicomVolume(volume_store, geo.frames)
    for cluster in geo.clusters:
        frames = [geo.frames[i] for i in cluster]
        kept.append(frames[0])
        if len(frames) == 1:
            continue
        ref = None
        for i, fr in zip(cluster[1:], frames[1:]):
            dropped += 1
            if fr.sop == frames[0].sop:
                continue  # the same image twice (a copied file)
            if ref is None:
                ref = probe.read_raw(cluster[0])
            if not np.array_equal(ref, probe.read_raw(i)):
                conflicts.append(frames)
                break
    if conflicts:
        example = conflicts[0]
        tags = []
        for name, values in (
            ("echo", {f.echo for f in example}),
            ("TemporalPositionIdentifier", {f.temporal for f in example}),
            ("AcquisitionNumber", {f.acquisition for f in example}),
        ):
            if len(values) > 1:
                tags.append(f"{name} " + ", ".join(sorted(v or "-" for v in values)))
        raise MzarrFormatError(
            f"{label}: {len(conflicts)} slice position(s) hold several different images (e.g. "
            f"{len(example)} at {example[0].position}"
            + (f": {'; '.join(tags)}" if tags else "")
            + "): the series holds several volumes (echoes, time points, diffusion directions...). Mzarr imports "
            "one 3D volume: pick one part with series= (see list_dicom_series / `mzarr info`), or export each "
            "echo / phase as its own series from the scanner or PACS"
        )
    notes = []
    if dropped:
        notes.append(f"{dropped} duplicate slice(s) at positions already present (identical images) were skipped")
    return kept, dropped, notes


def open_dicom(
    path: str | os.PathLike[str], *, series: int | str | DicomSeries | None = None, keep_phi: bool = False
) -> Source:
    """Open a DICOM series (folder, zip or file) as one lazily read volume with spacing in mm and safe attrs."""
    pyd = _pydicom()
    path = Path(path)
    scan = _scan(path, pyd)
    try:
        what = (
            f"folder {path.name}"
            if path.is_dir()
            else f"zip {path.name}"
            if scan.store.zf is not None
            else f"the folder of {path.name}"
        )
        chosen = _choose(scan, series, what)
        label = f"#{chosen.index} {chosen.label}"
        frames = list(_series_frames(chosen))
        bad = sorted({f.file.ts for f in frames if f.file.ts not in _DECODABLE})
        if bad:
            raise MzarrFormatError(
                f"{label} is encoded as {', '.join(_ts_name(t) for t in bad)}, which Mzarr cannot decode "
                "(video or an unknown compression); convert it to a standard transfer syntax first (e.g. with "
                "dcmtk's dcmdjpeg / gdcmconv --raw)"
            )
        _refuse_cut_short(scan.store, frames, label)
        _refuse_mosaic(scan.store, frames[0], label, pyd)
        geo = _arrange(frames)
        notes = list(geo.warnings)
        if scan.broken:
            notes.append(
                f"{len(scan.broken)} damaged or incomplete DICOM file(s) skipped: {', '.join(scan.broken[:5])}"
                + (", ..." if len(scan.broken) > 5 else "")
            )
        kept, dropped, dup_notes = _deduplicate(scan.store, geo, label)
        notes += dup_notes
        first = kept[0]
        with scan.store.open(first.file.name) as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pyd.dcmread(fh, stop_before_pixels=True, force=True)
        lut = ds if first.file.photometric == "PALETTE COLOR" else None
        window = _middle_window(scan.store, kept, ds)
        if window is not None:
            notes.append(window.pop("note"))
        flat = len(kept) == 1
        volume = DicomVolume(scan.store, kept, flat=flat, lut=lut)
        rescale, rescale_notes = _plan_rescale(volume, kept, label)
        notes += rescale_notes
        if first.spacing is None:
            notes.append("no PixelSpacing in the headers: the physical size is unknown")
        elif first.spacing_source != "PixelSpacing":
            notes.append("no PixelSpacing; ImagerPixelSpacing (at the detector, not corrected for magnification) used")
        if _text(ds.get("BurnedInAnnotation")).upper() == "YES":
            notes.append(
                "BurnedInAnnotation is YES: the pixels themselves may show patient details, which "
                "leaving the header fields out does not remove"
            )
        colour = volume.ndim == (3 if flat else 4)
        axes = ("yx" if flat else "zyx") + ("c" if colour else "")
        spacing = None
        if geo.spacing is not None:
            spacing = geo.spacing[1:] if flat else geo.spacing
        attrs = _attrs(path.name, ds, chosen, geo, kept, rescale, scan.counts, len(scan.series), dropped, keep_phi)
        if window is not None:
            attrs["dicom"].update(window)
        for note in notes:
            warnings.warn(f"{label}: {note}", MzarrWarning, stacklevel=2)
        return Source(
            volume,
            axes,
            tuple(float(v) for v in spacing) if spacing is not None else None,
            "millimeter" if spacing is not None else None,
            attrs,
            owner=volume,
        )
    except BaseException:
        scan.store.close()
        raise


def _refuse_mosaic(store: _Store, first: _Frame, label: str, pyd: Any) -> None:
    """A Siemens MOSAIC (``ImageType`` MOSAIC, or the CSA ``NumberOfImagesInMosaic`` (0019,100A) above 1) tiles a
    volume's slices in one image; their positions need Siemens' private CSA header, so it is refused, never read
    as one wrong 2D picture."""
    with store.open(first.file.name) as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pyd.dcmread(fh, stop_before_pixels=True, force=True)
    image_type = [str(v).strip().upper() for v in (ds.get("ImageType") or [])] if "ImageType" in ds else []
    tiles = None
    if (0x0019, 0x100A) in ds:
        try:
            tiles = int(ds[0x0019, 0x100A].value)
        except (TypeError, ValueError):
            tiles = None
    if "MOSAIC" not in image_type and not (tiles is not None and tiles > 1):
        return
    grid = math.ceil(math.sqrt(tiles)) if tiles else None
    layout = (f"{tiles} slices of {first.file.rows // grid} x {first.file.cols // grid} tiled in each "
              f"{first.file.rows} x {first.file.cols} image" if grid else "its slices tiled in each image")
    raise MzarrFormatError(
        f"{label} is a Siemens MOSAIC ({layout}); Mzarr does not unpack mosaics (the slice positions are in Siemens' "
        "private CSA header) and will not import it as one 2D picture. Convert it to NIfTI with dcm2niix and import "
        "that, or pick another series with series= (see mzarr info)"
    )


def is_dicom_path(path: str | os.PathLike[str]) -> bool:
    """Cheap sniff: a DICOM file (DICM at byte 128), or a folder / zip whose first few files are DICOM."""
    p = Path(path)
    try:
        if p.is_file():
            if p.name.upper() == "DICOMDIR":
                return True
            with open(p, "rb") as fh:
                head = fh.read(132)
            if len(head) >= 132 and head[128:132] == b"DICM":
                return True
            if p.suffix.lower() == ".zip" and zipfile.is_zipfile(p):
                with zipfile.ZipFile(p) as zf:
                    for name in _zip_names(zf)[:_SNIFF_FILES]:
                        if Path(name).name.upper() == "DICOMDIR":
                            return True
                        with zf.open(name) as fh:
                            head = fh.read(132)
                        if len(head) >= 132 and head[128:132] == b"DICM":
                            return True
            return False
        if p.is_dir():
            looked = 0
            pending = [p]
            while pending and looked < _SNIFF_FILES:
                folder = pending.pop(0)
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                    elif entry.is_file() and looked < _SNIFF_FILES:
                        looked += 1
                        if entry.name.upper() == "DICOMDIR":
                            return True
                        with open(entry.path, "rb") as fh:
                            head = fh.read(132)
                        if len(head) >= 132 and head[128:132] == b"DICM":
                            return True
    except OSError:
        return False
    return False
