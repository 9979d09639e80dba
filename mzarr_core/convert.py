"""Convert any readable image file into a .mzarr file or an OME-Zarr folder (and back); export a .mzarr to other
formats. Which formats: :mod:`mzarr_core.formats`."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .dask_write import PathSource
from .errors import MzarrFormatError, MzarrValueError
from .formats import export, read
from .image import Mzarr
from .ngff import SPACE_UNITS, normalize_unit, stored_unit
from .writer import Progress

__all__ = ["convert", "export"]


def convert(
    src: str | Path,
    dst: str | Path,
    progress: Progress | None = None,
    *,
    read_options: dict[str, Any] | None = None,
    report: Callable[[str], Any] | None = None,
    labels_from: str | Path | None = None,
    labels_name: str | None = None,
    **save_options: Any,
) -> Path:
    """Read ``src`` (lazily where possible) and save it to ``dst`` with a pyramid.

    ``read_options`` go to the source's reader (DICOM: ``series``, ``keep_phi``; slides: ``compression``,
    ``keep_label``); ``save_options`` are those of :meth:`Mzarr.save` (with ``scheduler``/``workers`` the
    conversion runs on dask, each worker reading ``src`` by path: :mod:`mzarr_core.dask_write`); ``axes``/``spacing``/``unit``/``attrs``
    default to what the source file says. ``report(line)`` is told choices made for the user before writing (a
    slide's compression and why). ``labels_from``: any readable file holding a segmentation of the image (integer
    values, the image's spatial shape), attached as the label image ``labels_name`` (default: its file name); it is
    checked before anything is written, and a failure to attach it leaves no output behind.
    """
    check_convert_target(src, dst, labels_from)
    seg = None
    if labels_from is not None:
        seg = read(labels_from)
        labels_name = labels_name or _default_label_name(Path(labels_from))
    try:
        out = _convert(src, dst, progress, read_options, report, seg, labels_from, save_options)
        if seg is not None:
            _attach_labels(out, seg, labels_name, Path(labels_from))  # type: ignore[arg-type]
        return out
    finally:
        if seg is not None and seg.owner is not None and hasattr(seg.owner, "close"):
            seg.owner.close()


def _convert(src, dst, progress, read_options, report, seg, labels_from, save_options) -> Path:
    source = read(src, **(read_options or {}))
    from .formats.slide import SlideSource

    on_dask = save_options.get("scheduler") is not None or save_options.get("workers") is not None
    if isinstance(source, SlideSource):  # a whole-slide image stores itself (its JPEG tiles, associated images)
        if on_dask:
            source.close()
            raise MzarrValueError("--workers/--scheduler do not apply to whole-slide images (they convert tile by "
                                  "tile on this machine's cores already): leave them out")
        try:
            return source.save(dst, progress, report=report, **save_options)
        finally:
            source.close()
    try:
        axes = save_options.pop("axes", None) or (None if save_options.get("channel_axis") is not None else source.axes)
        # on dask, every worker reads the file itself, by path (a cluster's workers: on a shared file system)
        array = PathSource.of(src, read_options, source.array) if on_dask else source.array
        image = Mzarr(
            array,
            axes=axes,
            channel_axis=save_options.pop("channel_axis", None),
            spacing=save_options.pop("spacing", None) or source.spacing,
            unit=normalize_unit(save_options.pop("unit", None)) or _reader_unit(source.unit),
            is_label=bool(save_options.get("is_label") or source.is_label),
            attrs={**source.attrs, **(save_options.pop("attrs", None) or {})},
        )
        if seg is not None:
            seg.array, note = _orient_labels(seg, image, Path(labels_from))
            _check_labels_fit(seg, image, Path(labels_from))
            if note and report is not None:
                report(note)
        out = image.save(dst, progress=progress, **save_options)
        if isinstance(source.owner, Mzarr) and image.axes == source.owner.axes:
            _keep_labels(out, source.owner)
        if isinstance(source.owner, Mzarr) and image.spatial_axes == source.owner.spatial_axes:
            _keep_annotations(out, source.owner)
        return out
    finally:
        if source.owner is not None and hasattr(source.owner, "close"):
            source.owner.close()


def check_convert_target(src: str | Path, dst: str | Path, *other_inputs: str | Path | None) -> None:
    """``dst`` is a place :func:`convert` may write: a ``.mzarr`` file or an OME-Zarr folder (``.ome.zarr``/``.zarr``)
    that is not ``src`` (nor another input) itself, through a link or not, and neither inside an input folder nor
    holding an input; else an MzarrValueError, before anything is read or written (a convert over its own input
    would destroy it)."""
    from .containers import is_directory_target
    from .formats import export_suffixes

    src, dst = Path(src), Path(dst)
    if not (dst.name.lower().endswith(".mzarr") and len(dst.name) > len(".mzarr")) and not is_directory_target(dst):
        exported = [s for s in export_suffixes() if dst.name.lower().endswith(s)]
        then = (f"to write {exported[-1]}, convert to a .mzarr first, then 'mzarr export IMAGE.mzarr {dst.name}' "
                "(mzarr_core.export)" if exported else
                f"other formats are written by 'mzarr export' ({', '.join(export_suffixes())})")
        raise MzarrValueError(
            f"cannot convert to {dst.name}: convert writes a .mzarr file or an OME-Zarr folder (.ome.zarr, .zarr); "
            f"{then}; nothing was written"
        )
    for given in (src, *other_inputs):
        if given is None:
            continue
        given = Path(given)
        what = "the input" if given == src else f"the input {given.name}"
        if given.exists() and dst.exists() and os.path.samefile(given, dst):
            raise MzarrValueError(
                f"cannot convert {src.name} to {dst}: that is {what} itself (the same file or folder, through a "
                "link or not) and converting over it would destroy it: give another output name; nothing was written"
            )
        inp, out = given.resolve(), dst.resolve()
        if given.is_dir() and out.is_relative_to(inp):
            raise MzarrValueError(
                f"cannot convert {src.name} to {dst}: the output would be inside {what} folder {given}, which is "
                "being read: write it outside that folder; nothing was written"
            )
        if dst.is_dir() and inp.is_relative_to(out):
            raise MzarrValueError(
                f"cannot convert {src.name} to {dst}: {what} lies inside that folder, which the conversion replaces: "
                "give another output name; nothing was written"
            )


def _reader_unit(unit: str | None) -> str | None:
    """The unit a reader found, as its OME-NGFF name; None for one NGFF has no name for (the stored unit must be
    valid for other NGFF tools)."""
    name = stored_unit(unit)
    return name if name in SPACE_UNITS else None


def _default_label_name(path: Path) -> str:
    stem = path.name
    for suffix in (".gz", ".bz2", ".zst"):
        stem = stem.removesuffix(suffix)
    stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".-")[:64]
    return name or "labels"


DIRECTION_TOLERANCE = 1e-3  # |cos| of the angle between matching index axes at least 1 - this (~2.6 degrees)
SPACING_TOLERANCE = 1e-3  # relative difference of matching voxel sizes
ORIGIN_TOLERANCE = 0.1  # voxels: how far the segmentation's first voxel may be from the image's matching corner


def _geometry_of(attrs: dict[str, Any], spacing: tuple[float, ...] | None, n: int) -> tuple[Any, np.ndarray] | None:
    """What a reader says about where the voxels are: (Geometry, spacing x first), or None when it says nothing."""
    from .formats.geometry import image_geometry

    geometry = image_geometry(attrs, n)
    if geometry is None or geometry.direction.shape != (n, n):
        return None
    xyz = np.asarray(spacing[::-1] if spacing and len(spacing) == n else [1.0] * n, float)
    return geometry, xyz


def _describe_geometry(geometry: Any, spacing_xyz: np.ndarray, shape_zyx: tuple[int, ...], unit: str | None) -> str:
    np_round = lambda v: [float(round(x, 4)) for x in v]  # noqa: E731
    return (f"shape (z, y, x) {shape_zyx}, spacing (x, y, z) {np_round(spacing_xyz)} {unit or '(no unit)'}, origin "
            f"{np_round(geometry.origin)}, axis directions {[np_round(c) for c in geometry.direction.T]}"
            + (f" ({geometry.space})" if geometry.space else ""))


def _orient_labels(seg: Any, image: Mzarr, path: Path) -> tuple[Any, str]:
    """The segmentation's array on the image's voxel grid, and a line saying how it was matched.

    When both the image and the segmentation say where their voxels are (NIfTI affine, DICOM, NRRD/MetaImage
    geometry), a segmentation that stores the same voxels with its axes flipped or permuted (as dcm2niix and
    TotalSegmentator write the segmentation of a DICOM series) is turned onto the image's grid; other geometries
    (voxel size, origin, obliquity) are refused, stating both. Without a geometry only the shape can be checked."""
    array = seg.array
    n = len(image.spatial_axes)
    attrs = image.attrs().to_dict() if hasattr(image.attrs(), "to_dict") else dict(image.attrs())
    spatial = tuple(n_ for a, n_ in zip(image.axes, image.shape) if a != "c")
    if array.ndim != n:
        return array, ""
    mine = _geometry_of(attrs, image.spacing, n)
    theirs = _geometry_of(seg.attrs, seg.spacing, n)
    if mine is None or theirs is None:
        which = "neither file says" if mine is None and theirs is None else (
            f"{path.name} does not say" if theirs is None else "the image does not say")
        return array, (f"labels {path.name}: only the shape could be checked, not the geometry ({which} where its "
                       "voxels are in the world)")
    (g_img, s_img), (g_seg, s_seg) = mine, theirs
    g_seg, s_seg, seg_unit, converted = _in_unit(g_seg, s_seg, seg.unit, image.unit)
    if (g_img.space is None) != (g_seg.space is None):
        return array, (f"labels {path.name}: only the shape could be checked, not the geometry (one of the files "
                       "names no world frame)")
    if g_img.space is not None:
        g_seg = g_seg.in_space(g_img.space)
    seg_shape_xyz = tuple(int(v) for v in array.shape[::-1])
    img_shape_xyz = spatial[::-1]

    def refuse(why: str) -> MzarrValueError:
        return MzarrValueError(
            f"--labels-from {path.name}: its voxels are not the image's ({why}). The image: "
            f"{_describe_geometry(g_img, s_img, spatial, image.unit)}; {path.name}: "
            f"{_describe_geometry(g_seg, s_seg, tuple(int(v) for v in array.shape), seg_unit)}{converted}. A label "
            "image holds one value "
            "per voxel of the image: resample the segmentation onto the image's grid (e.g. with SimpleITK's Resample "
            "using the image as reference) or segment this very image; nothing was written"
        )

    cosines = g_img.direction.T @ g_seg.direction  # [k, j]: image axis k against segmentation axis j
    match: list[tuple[int, int]] = []  # per segmentation axis j: (image axis k, sign)
    for j in range(n):
        k = int(np.argmax(np.abs(cosines[:, j])))
        if abs(cosines[k, j]) < 1 - DIRECTION_TOLERANCE or any(k == m for m, _ in match):
            raise refuse("their axes are at an angle: one is oblique to the other")
        match.append((k, 1 if cosines[k, j] > 0 else -1))
    same_axes = all(k == j and sign > 0 for j, (k, sign) in enumerate(match))
    if seg_shape_xyz != tuple(img_shape_xyz[k] for k, _ in match):
        if same_axes:
            return array, ""  # the shape check says it
        raise refuse("their sizes along matching axes differ")
    for j, (k, _) in enumerate(match):
        if abs(s_seg[j] - s_img[k]) > SPACING_TOLERANCE * max(s_img[k], 1e-12):
            raise refuse("their voxel sizes differ")
    # where the segmentation's voxel 0 lies in the image's voxel coordinates (x first)
    start = np.linalg.solve(g_img.direction * s_img, g_seg.origin - g_img.origin)
    for j, (k, sign) in enumerate(match):
        expected = 0 if sign > 0 else img_shape_xyz[k] - 1
        if abs(start[k] - expected) > ORIGIN_TOLERANCE:
            raise refuse("their origins differ: the segmentation is shifted by "
                         f"{float(start[k] - expected):.3g} voxels along the image's {'xyz'[k] if n == 3 else 'xy'[k]}")
    if same_axes:
        return array, f"labels {path.name}: its geometry matches the image's{converted}"
    # array axes are z, y, x (xyz axis j is array axis n - 1 - j): image array axis b takes segmentation axis a
    order = [0] * n
    flips = []
    for j, (k, sign) in enumerate(match):
        order[n - 1 - k] = n - 1 - j
        if sign < 0:
            flips.append(n - 1 - k)
    oriented = np.asarray(array).transpose(order)
    if flips:
        oriented = np.flip(oriented, axis=tuple(flips))
    said = [f"{'xyz'[j]} stored as the image's {'-' if sign < 0 else ''}{'xyz'[k]}" for j, (k, sign) in
            enumerate(match) if (k, sign) != (j, 1)]
    return np.ascontiguousarray(oriented), (f"labels {path.name}: the same voxels as the image{converted}, stored "
                                            f"with other axes ({', '.join(said)}): turned onto the image's grid")


def _in_unit(geometry: Any, spacing_xyz: np.ndarray, unit: str | None,
             to: str | None) -> tuple[Any, np.ndarray, str | None, str]:
    """A segmentation's geometry and spacing in the image's length unit ``to`` (its origin and voxel sizes scaled:
    500 micrometer is 0.5 millimeter), its unit then, and the words saying so; unchanged when either unit is not a
    known length unit or they are the same."""
    from .formats.base import METERS
    from .formats.geometry import Geometry

    unit = stored_unit(unit)
    if unit == to or unit not in METERS or to not in METERS:
        return geometry, spacing_xyz, unit, ""
    factor = METERS[unit] / METERS[to]
    return (Geometry(geometry.origin * factor, geometry.direction, geometry.space), spacing_xyz * factor, to,
            f" (its {unit} converted to {to})")


def _check_labels_fit(seg: Any, image: Mzarr, path: Path) -> None:
    """The segmentation read from ``path`` fits ``image`` as a label image, or an MzarrValueError saying why."""
    from .labels import check_label_dtype

    spatial = tuple(n for a, n in zip(image.axes, image.shape) if a != "c")
    shape = tuple(int(n) for n in seg.array.shape)
    if shape != spatial:
        raise MzarrValueError(
            f"--labels-from {path.name}: its shape {shape} is not the image's spatial shape {spatial} (axes "
            f"{image.spatial_axes!r}): a label image holds one value per pixel of the image, so it must come from a "
            "segmentation of this very image; nothing was written"
        )
    try:
        check_label_dtype(seg.array.dtype)
    except MzarrValueError as exc:
        raise MzarrValueError(f"--labels-from {path.name}: {exc}; nothing was written") from None


def _keep_labels(out: Path, original: Mzarr) -> None:
    """A .mzarr / OME-Zarr converted to the other form keeps its label images (colours and properties included)."""
    names = original.labels()
    if not names:
        return
    try:
        with Mzarr(out, "r+") as image:
            for name in names:
                lab = original.label(name)
                image.create_labels(name, lab.levels[0], colors=lab.colors, properties=lab.properties)
    except BaseException:
        if out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        else:
            out.unlink(missing_ok=True)
        raise


def _keep_annotations(out: Path, original: Mzarr) -> None:
    """A .mzarr / OME-Zarr converted to the other form keeps its annotations (docs/FORMAT.md section 12)."""
    try:
        items = original.annotations()
    except MzarrFormatError:
        return  # damaged annotations are not carried over (the image is)
    if items:
        with Mzarr(out, "r+") as image:
            image.set_annotations(items)


def _attach_labels(out: Path, seg: Any, name: str, path: Path) -> None:
    try:
        with Mzarr(out, "r+") as image:
            _check_labels_fit(seg, image, path)
            image.create_labels(name, seg.array)
    except BaseException:
        if out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        else:
            out.unlink(missing_ok=True)
        raise
