"""Display windows: the file's own DICOM windows, Hounsfield presets, and window <-> levels.

Public (docs/API.md, "Display windows"): the viewer and the napari plugin both read an image's contrast from here.

A window is (centre C, width W); the view maps ``C - W/2 .. C + W/2`` to black..white (the usual viewer
convention; DICOM's "LINEAR" VOI function of PS3.3 C.11.2.1.2 differs from it by half a unit).

Hounsfield presets are Radiopaedia's "Windowing (CT)" values (https://radiopaedia.org/articles/windowing-ct):
brain W80 L40, subdural W215 L75 (the middle of its W130-300 / L50-100), stroke W40 L40 (Radiopaedia also lists
W8 L32), lung W1500 L-600, mediastinum W350 L50, bone W1800 L400, soft tissue W400 L50 (of W350-400 L20-60).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True)
class WindowPreset:
    """A named window: ``centre``/``width`` in the image's stored values."""

    name: str
    centre: float
    width: float
    source: str = "preset"  # "file" (the file's DICOM window) or "preset" (Hounsfield)

    @property
    def levels(self) -> tuple[float, float]:
        return window_to_levels(self.centre, self.width)


#: Hounsfield-unit presets (Radiopaedia, "Windowing (CT)"): name, centre (level), width
HU_PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("Brain", 40, 80),
    WindowPreset("Subdural", 75, 215),
    WindowPreset("Stroke", 40, 40),
    WindowPreset("Lung", -600, 1500),
    WindowPreset("Mediastinum", 50, 350),
    WindowPreset("Bone", 400, 1800),
    WindowPreset("Soft tissue", 50, 400),
)


def window_to_levels(centre: float, width: float) -> tuple[float, float]:
    """(lo, hi) shown black..white for window ``centre``/``width``."""
    return float(centre) - float(width) / 2.0, float(centre) + float(width) / 2.0


def levels_to_window(lo: float, hi: float) -> tuple[float, float]:
    """(centre, width) of levels ``lo``..``hi``."""
    return (float(lo) + float(hi)) / 2.0, float(hi) - float(lo)


def _numbers(v: Any) -> list[float]:
    """A DICOM multi-value (number, list of numbers, or the text ``"40\\400"``) as floats; [] if unreadable."""
    if v is None:
        return []
    if isinstance(v, str):
        v = [p for p in v.replace("\\", " ").split() if p]
    if not isinstance(v, (list, tuple)):
        v = [v]
    out = []
    for x in v:
        try:
            f = float(x)
        except (TypeError, ValueError):
            return []
        if not np.isfinite(f):
            return []
        out.append(f)
    return out


def _fmt(v: float) -> str:
    return f"{v:g}"


def dicom_block(attrs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``attrs["dicom"]`` (the block mzarr's DICOM reader writes), or {}."""
    if not attrs:
        return {}
    d = attrs.get("dicom") if hasattr(attrs, "get") else None
    return d if isinstance(d, Mapping) else {}


def file_windows(attrs: Mapping[str, Any] | None) -> list[WindowPreset]:
    """The windows in the file's DICOM metadata (``WindowCenter``/``WindowWidth``, numbers or lists), first first,
    named ``From file: C/W`` (plus the file's explanation when it has one), in the stored values' units.

    When the rescale was recorded but not applied (``dicom.rescale.applied`` false: values = stored * slope +
    intercept), the windows (which DICOM gives in rescaled units) are converted to stored values."""
    d = dicom_block(attrs)
    cs, ws = _numbers(d.get("WindowCenter")), _numbers(d.get("WindowWidth"))
    if not cs or not ws:
        return []
    n = max(len(cs), len(ws))
    cs += [cs[-1]] * (n - len(cs))
    ws += [ws[-1]] * (n - len(ws))
    expl = d.get("WindowCenterWidthExplanation")
    if isinstance(expl, str):
        expl = [p for p in expl.split("\\")]
    expl = list(expl) if isinstance(expl, (list, tuple)) else []
    slope, intercept = _unapplied_rescale(d) or (1.0, 0.0)
    out: list[WindowPreset] = []
    seen = set()
    for i, (c, w) in enumerate(zip(cs, ws)):
        if w <= 0 or (c, w) in seen:
            continue
        seen.add((c, w))
        name = f"From file: {_fmt(c)}/{_fmt(w)}"
        if i < len(expl) and str(expl[i]).strip():
            name += f" ({str(expl[i]).strip()})"
        out.append(WindowPreset(name, (c - intercept) / slope, w / abs(slope), "file"))
    return out


def _unapplied_rescale(d: Mapping[str, Any]) -> tuple[float, float] | None:
    """(slope, intercept) when mzarr's DICOM reader kept the stored values and recorded a uniform rescale."""
    r = d.get("rescale")
    if isinstance(r, Mapping) and r.get("applied") is False:
        s, b = _numbers(r.get("slope")), _numbers(r.get("intercept"))
        if len(s) == 1 and len(b) == 1 and s[0] != 0:
            return s[0], b[0]
    return None


def _hu_rescale(d: Mapping[str, Any]) -> bool:
    r = d.get("rescale")
    return isinstance(r, Mapping) and str(r.get("type", "")).upper() == "HU"


def looks_like_hu(dtype: Any, attrs: Mapping[str, Any] | None) -> bool:
    """True for Hounsfield data: int16 values from a DICOM CT (``Modality`` CT) or a rescale applied to HU, or a
    NIfTI the reader found to be in Hounsfield units (``nifti.hounsfield``)."""
    if np.dtype(dtype) != np.int16:
        return False
    d = dicom_block(attrs)
    if str(d.get("Modality", "")).upper() == "CT":
        return True
    nifti = attrs.get("nifti") if attrs and hasattr(attrs, "get") else None
    if isinstance(nifti, Mapping) and nifti.get("hounsfield") is True:  # the NIfTI reader's finding
        return True
    return _hu_rescale(d) and d["rescale"].get("applied") is not False


def hu_presets_in_stored_units(attrs: Mapping[str, Any] | None) -> list[WindowPreset]:
    """The Hounsfield presets converted to stored values for a CT whose HU rescale was recorded but not applied
    (values = stored * slope + intercept); [] otherwise."""
    d = dicom_block(attrs)
    rs = _unapplied_rescale(d)
    if rs is None or not (_hu_rescale(d) or str(d.get("Modality", "")).upper() == "CT"):
        return []
    slope, intercept = rs
    return [WindowPreset(p.name, (p.centre - intercept) / slope, p.width / abs(slope)) for p in HU_PRESETS]


def presets_for(dtype: Any, attrs: Mapping[str, Any] | None) -> list[WindowPreset]:
    """The windows offered for an image: the file's own first, then the Hounsfield presets for HU data (in stored
    units when the HU rescale was recorded but not applied)."""
    out = file_windows(attrs)
    if looks_like_hu(dtype, attrs):
        out += list(HU_PRESETS)
    else:
        out += hu_presets_in_stored_units(attrs)
    return out


def opening_window(dtype: Any, attrs: Mapping[str, Any] | None, channel_count: int | None = None,
                   is_label: bool = False) -> tuple[float, float] | None:
    """(lo, hi) an image opens with from its own metadata: the file's first window for a single-channel image that
    is not a label image; None otherwise (the viewer then uses automatic contrast)."""
    if is_label or channel_count:
        return None
    windows = file_windows(attrs)
    return windows[0].levels if windows else None


#: the anatomical plane perpendicular to each patient axis (DICOM's LPS: x left-right, y front-back, z feet-head)
_PLANE_ACROSS = ("sagittal", "coronal", "axial")


def anatomical_plane_names(attrs: Mapping[str, Any] | None) -> tuple[str, str, str] | None:
    """Names of the planes through the z, y and x axes of a DICOM volume ("axial", "coronal", "sagittal" in the
    order the acquisition gives them), from ``ImageOrientationPatient``: a sagittal series' z plane is sagittal.
    None without an orientation, or when two planes would get one name (an oblique acquisition)."""
    iop = dicom_block(attrs).get("ImageOrientationPatient")
    try:
        v = np.asarray(iop, dtype=np.float64).reshape(6)
    except (TypeError, ValueError):
        return None
    row, col = v[:3], v[3:]  # along the image's columns (x), along its rows (y)
    normal = np.cross(row, col)  # along the slices (z)
    if not np.all(np.isfinite(normal)) or np.linalg.norm(normal) < 0.5:
        return None
    names = tuple(_PLANE_ACROSS[int(np.argmax(np.abs(d)))] for d in (normal, col, row))
    return names if len(set(names)) == 3 else None  # type: ignore[return-value]


def _ras_directions(attrs: Mapping[str, Any] | None, axes: str) -> np.ndarray | None:
    """The image's index axes as RAS directions (3x3, columns: the x, y, z axes; +x right, +y anterior, +z up) from
    its patient geometry (``image_geometry``); None for a 2-D image, without a geometry or with a damaged one."""
    from .formats.geometry import image_geometry

    if not attrs or len([a for a in axes if a in "zyx"]) != 3:
        return None
    try:
        geometry = image_geometry(dict(attrs), 3)
    except Exception:  # noqa: BLE001 - damaged geometry: draw the stored order
        return None
    if geometry is None or geometry.space not in ("RAS", "LPS", "LAS") or geometry.direction.shape != (3, 3):
        return None
    ras = np.asarray(geometry.in_space("RAS").direction, dtype=np.float64)
    return ras if np.all(np.isfinite(ras)) else None


#: two directions' components closer than this are a tie: the plane is drawn in the stored order
_TIE = 1e-3


def radiological_axes(attrs: Mapping[str, Any] | None, axes: str, slice_axis: str | None) -> tuple[str, str] | None:
    """(row axis, column axis) to draw the plane perpendicular to ``slice_axis`` of a patient image with, so it
    reads as radiologists expect whatever the acquisition: rows along the shown axis pointing most nearly
    superior-inferior when the plane holds that direction (coronal, sagittal), else along the one pointing most
    nearly anterior-posterior (axial). A sagittal acquisition's y plane (an axial image) is then turned a quarter
    instead of lying on its side. The stored order (the two other spatial axes of ``axes``) for a 2-D image, without
    patient geometry and when the geometry leaves it open (a plane at 45 degrees); None when ``slice_axis`` is not
    one of three spatial axes. Combine with :func:`radiological_flips` for the directions."""
    spatial = [a for a in axes if a in "zyx"]
    if len(spatial) != 3 or slice_axis not in spatial:
        return None
    shown = [a for a in spatial if a != slice_axis]
    stored = (shown[0], shown[1])
    ras = _ras_directions(attrs, axes)
    if ras is None:
        return stored
    normal = np.abs(ras[:, "xyz".index(slice_axis)])
    if abs(normal[2] - max(normal[0], normal[1])) < _TIE:
        return stored  # as much axial as not: no reading convention applies
    k = 1 if normal[2] > max(normal[0], normal[1]) else 2  # axial: rows anterior-posterior; else superior-inferior
    a, b = (abs(float(ras[k, "xyz".index(s)])) for s in shown)
    if abs(a - b) < _TIE:
        return stored
    return stored if a > b else (shown[1], shown[0])


def radiological_flips(attrs: Mapping[str, Any] | None, axes: str, row_axis: str, col_axis: str) -> tuple[bool, bool]:
    """(rows upward, columns leftward): how to draw the plane of a patient image whose rows run along ``row_axis``
    and columns along ``col_axis`` (of the spatial ``axes``, e.g. "zyx") so that it reads as radiologists expect:
    superior at the top of coronal and sagittal planes, anterior at the top of axial ones, the patient's right on
    the screen's left, anterior on the left of sagittal planes. From the image's patient geometry (the DICOM
    reader's affine, a NIfTI affine, NRRD/MetaImage directions); (False, False) without one (a microscope image:
    row 0 at the top, column 0 at the left). The rows and columns to draw come from :func:`radiological_axes`."""
    spatial = "".join(a for a in axes if a in "zyx")
    if len(spatial) != 3 or row_axis not in spatial or col_axis not in spatial:
        return False, False
    ras = _ras_directions(attrs, axes)
    if ras is None:
        return False, False

    def direction(axis: str) -> np.ndarray:
        return ras[:, "xyz".index(axis)]

    def points(d: np.ndarray) -> tuple[int, float]:
        k = int(np.argmax(np.abs(d)))
        return k, float(d[k])

    k, v = points(direction(row_axis))
    rows_up = (k == 2 and v > 0) or (k == 1 and v > 0)  # toward superior (coronal, sagittal), anterior (axial)
    k, v = points(direction(col_axis))
    cols_left = (k == 0 and v > 0) or (k == 1 and v > 0)  # toward the patient's right, toward anterior (sagittal)
    return rows_up, cols_left
