"""NIfTI-1/2 (.nii, .nii.gz) through nibabel (the ``nifti`` extra): read lazily where the file is uncompressed and
unscaled, written slab by slab with the affine from the image's spacing and geometry."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MzarrFormatError
from .base import RescaledView, Source, head, integer_rescale, native, require
from .selection import Counter, Progress, Selection, writable_dtype

EXTRA = "nifti"
UNITS = {"mm": "millimeter", "micron": "micrometer", "meter": "meter"}
NIFTI_UNITS = {"millimeter": "mm", "micrometer": "micron", "meter": "meter"}
DTYPES = ("uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64")


def sniff(path: Path) -> bool:
    start = head(path, 348)
    if len(start) >= 348 and start[344:348] in (b"n+1\0", b"ni1\0"):
        return True
    return start[4:8] in (b"n+2\0", b"ni2\0")


def read(path: Path) -> Source:
    nibabel = require("nibabel", f"reading NIfTI ({path.name})", EXTRA)
    try:
        img = nibabel.load(str(path))
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for damaged headers
        raise MzarrFormatError(f"{path} could not be read as NIfTI: {exc}") from None
    shape = tuple(int(n) for n in img.shape)
    channels = None
    if len(shape) == 5 and shape[3] == 1:  # (x, y, z, 1, c): a vector / colour image (what our exporter writes)
        channels = shape[4]
    elif len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    elif len(shape) > 3:
        raise MzarrFormatError(
            f"{path} is a {len(shape)}D NIfTI image of shape {shape}; Mzarr imports 2D and 3D images "
            "(split the time points or volumes first, e.g. with nibabel.four_to_three)"
        )
    # uncompressed, unscaled files give a memory map (read lazily); an integer rescale stays integer (lazily), any
    # other is floats in memory
    attrs: dict[str, Any] = {"source": path.name, "nifti_affine": np.asarray(img.affine, float).tolist()}
    array, rescale = _values(img, attrs)
    if array.ndim >= 4:
        array = array[:, :, :, 0]  # the single time point
    if array.dtype.fields:  # RGB24 / RGBA32: one structured value per voxel
        names = list(array.dtype.names)
        array = np.stack([np.asarray(array[n]) for n in names], axis=-1)
        channels = len(names)
    # NIfTI stores x fastest: the (x, y, z) array transposed is C-ordered (z, y, x), a view of the memmap
    array = np.moveaxis(array, -1, 0).T if channels is not None else array.T
    # array is now (z, y, x[, c]) (or (y, x) for 2D files)
    spatial = 3 if array.ndim - (channels is not None) == 3 else 2
    # NIfTI stores float32: 0.8 mm is 0.800000011920929 as a float64; keep the decimal the header was written from
    zooms = [float(str(np.float32(z))) for z in img.header.get_zooms()[:spatial]]
    if spatial == 3 and array.shape[0] == 1:  # a single slice: a 2D picture
        array = array[0]
        spatial, zooms = 2, zooms[:2]
    units = img.header.get_xyzt_units()[0]
    axes = ("zyx" if spatial == 3 else "yx") + ("c" if channels is not None else "")
    values: Any = native(array) if rescale is None else RescaledView(native(array), *rescale)
    if np.dtype(values.dtype) == np.int16 and _says_hounsfield(path, img, attrs):
        attrs.setdefault("nifti", {})["hounsfield"] = True
    return Source(values, axes, tuple(zooms[::-1]), UNITS.get(units, "millimeter"), attrs)


def _values(img: Any, attrs: dict[str, Any]) -> tuple[Any, tuple[int, int, np.dtype] | None]:
    """The voxel values nibabel gives (``stored * scl_slope + scl_inter``): integers when the stored type, slope and
    intercept are integers and the scaled range (from one min/max pass) fits an integer type — e.g. uint16 with
    scl_inter -1024 becomes int16 Hounsfield units, bit-exact — else nibabel's floats. The rescale is recorded in
    ``attrs["nifti"]``. Returns the array to reshape and, for an integer rescale, (slope, intercept, dtype)."""
    proxy = img.dataobj
    slope, inter = float(getattr(proxy, "slope", 1.0)), float(getattr(proxy, "inter", 0.0))
    if (slope, inter) == (1.0, 0.0) or not hasattr(proxy, "get_unscaled"):
        return np.asanyarray(proxy), None
    stored = np.asanyarray(proxy.get_unscaled())
    info: dict[str, Any] = {"scl_slope": slope, "scl_inter": inter, "stored_dtype": str(stored.dtype)}
    attrs["nifti"] = info
    dtype = None
    if stored.dtype.kind in "ui" and stored.size and float(slope).is_integer() and float(inter).is_integer():
        dtype = integer_rescale(stored.dtype, int(stored.min()), int(stored.max()), slope, inter)
    if dtype is None:
        info["dtype"] = "float"
        return np.asanyarray(proxy), None
    info["dtype"] = str(dtype)
    return stored, (int(slope), int(inter), dtype)


HOUNSFIELD_NOTE = b"Hounsfield units (CT)"


def _says_hounsfield(path: Path, img: Any, attrs: dict[str, Any]) -> bool:
    """An int16 image in Hounsfield units: the file's description says so (Mzarr's export writes it), a BIDS sidecar
    (dcm2niix's ``.json``) says ``Modality: CT``, or the stored values were shifted by DICOM's CT intercept -1024."""
    descrip = bytes(np.asarray(img.header.get("descrip", b""))).split(b"\0")[0]
    if HOUNSFIELD_NOTE.lower() in descrip.lower():
        return True
    nifti = attrs.get("nifti", {})
    if nifti.get("scl_slope") == 1.0 and nifti.get("scl_inter") == -1024.0:
        return True
    name = path.name
    stem = name[:-7] if name.lower().endswith(".nii.gz") else path.stem
    sidecar = path.with_name(stem + ".json")
    try:
        if sidecar.is_file() and sidecar.stat().st_size < 1 << 20:
            meta = json.loads(sidecar.read_text(encoding="utf-8", errors="replace"))
            return isinstance(meta, dict) and str(meta.get("Modality", "")).upper() == "CT"
    except (OSError, ValueError):
        return False
    return False


def write(sel: Selection, path: Path, progress: Progress | None = None) -> None:
    """The selection as NIfTI-1: (x, y, z) fastest first, channels as a 5th (vector) dimension; the affine (sform
    and qform, RAS) from the image's direction/origin or NIfTI affine, else from the spacing; gzip for .nii.gz."""
    nibabel = require("nibabel", f"writing NIfTI ({path.name})", EXTRA)
    dtype = writable_dtype(sel.dtype, DTYPES, "NIfTI")
    sizes = list(sel.sizes_full_xyz)  # x first; an axis the region dropped is kept with size 1
    spacing = list(sel.spacing_full_xyz)
    geometry = sel.geometry_full.padded(3)
    if geometry.space is not None:
        geometry = geometry.in_space("RAS")
    if len(sizes) < 3 and sel.channels is not None:
        sizes.append(1)
    spacing += [1.0] * (3 - len(spacing))
    affine = np.eye(4)
    affine[:3, :3] = geometry.direction[:3, :3] * np.asarray(spacing, float)
    affine[:3, 3] = geometry.origin[:3]
    shape = tuple(sizes) + ((1, sel.channels) if sel.channels is not None else ())
    hdr = nibabel.Nifti1Header()
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(shape)
    hdr.set_zooms(tuple(spacing[: len(sizes)]) + ((1.0, 1.0) if sel.channels is not None else ()))
    code = 1 if sel.source_geometry is not None else 2  # scanner coordinates, else aligned to the voxel grid
    hdr.set_sform(affine, code=code)
    hdr.set_qform(affine, code=code)
    hdr.set_xyzt_units(NIFTI_UNITS.get(sel.unit or "", "unknown") if sel.has_spacing else "unknown")
    from ..display import looks_like_hu

    if not sel.is_label and looks_like_hu(sel.dtype, sel.host.attrs().to_dict()):
        hdr["descrip"] = HOUNSFIELD_NOTE  # read back as Hounsfield units (NIfTI has no modality)
    if sel.channels is not None:
        hdr.set_intent("vector")
    hdr.set_data_offset(352)
    first = sel.spatial[0]
    slabs = list(sel.slabs(first))
    channels = range(sel.channels) if sel.channels is not None else [None]
    counter = Counter(progress, len(slabs) * len(channels))
    opener = (lambda p: gzip.open(p, "wb", compresslevel=4)) if path.name.lower().endswith(".gz") else (
        lambda p: open(p, "wb")
    )
    with opener(path) as fh:
        fh.write(hdr.binaryblock)
        fh.write(b"\0" * (352 - len(hdr.binaryblock)))  # no extensions
        for c in channels:
            for block in slabs:
                if c is not None:
                    block = tuple(slice(c, c + 1) if a == "c" else b for a, b in zip(sel.axes, block))
                data = sel.read(block)
                if c is not None:
                    data = data[..., 0] if sel.axes.endswith("c") else data[0]
                fh.write(np.ascontiguousarray(data, dtype=dtype.newbyteorder("=")).tobytes())
                counter.step()
