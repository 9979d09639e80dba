"""The group metadata: OME-NGFF 0.5 ``multiscales`` (so other tools find the pyramid) and the ``mzarr`` block."""

from __future__ import annotations

import json
import math
import reprlib
from dataclasses import dataclass, field
from typing import Any, cast

from .axes import USER_AXES, storage_axes
from .codecs import format_version_of
from .errors import MzarrFormatError, MzarrValueError
from .pyramid import DOWNSAMPLE_METHODS

FORMAT_VERSION = 6  # the newest format this version reads (see docs/FORMAT.md, format versions)
NGFF_VERSION = "0.5"
AXIS_TYPES = {"c": "channel", "z": "space", "y": "space", "x": "space"}


# OME-NGFF's units of space axes (UDUNITS-2 names; Mzarr's axes z, y, x are all spatial)
SPACE_UNITS = (
    "angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer", "foot", "gigameter", "hectometer",
    "inch", "kilometer", "megameter", "meter", "micrometer", "mile", "millimeter", "nanometer", "parsec", "petameter",
    "picometer", "terameter", "yard", "yoctometer", "yottameter", "zeptometer", "zettameter",
)
TIME_UNITS = (
    "attosecond", "centisecond", "day", "decisecond", "exasecond", "femtosecond", "gigasecond", "hectosecond", "hour",
    "kilosecond", "megasecond", "microsecond", "millisecond", "minute", "nanosecond", "petasecond", "picosecond",
    "second", "terasecond", "yoctosecond", "yottasecond", "zeptosecond", "zettasecond",
)
UNIT_SPELLINGS = {  # common spellings -> the NGFF name (also every NGFF name, any case, "metre" and plural forms)
    "um": "micrometer", "µm": "micrometer", "μm": "micrometer", "micron": "micrometer", "mu": "micrometer",
    "mm": "millimeter", "nm": "nanometer", "cm": "centimeter", "dm": "decimeter", "m": "meter", "km": "kilometer",
    "pm": "picometer", "fm": "femtometer", "å": "angstrom", "a": "angstrom", "in": "inch", "ft": "foot",
    "yd": "yard", "mi": "mile", "pc": "parsec",
    "s": "second", "sec": "second", "ms": "millisecond", "us": "microsecond", "µs": "microsecond",
    "μs": "microsecond", "ns": "nanosecond", "ps": "picosecond", "min": "minute", "h": "hour", "hr": "hour", "d": "day",
}
COMMON_UNITS = "micrometer (um, µm, micron), nanometer (nm), millimeter (mm), centimeter (cm), meter (m)"
COMMON_NAMES = ("micrometer", "nanometer", "millimeter", "centimeter", "meter")


def _unit_name(text: str) -> str | None:
    """The NGFF name of a unit spelling (``"um"``, ``"µm"``, ``"Microns"``, ``"millimetre"``...), or None."""
    t = text.strip().lower().replace("metre", "meter")
    for candidate in (t, t[:-1] if t.endswith("s") and len(t) > 2 else t, t[:-2] if t.endswith("es") else t):
        name = UNIT_SPELLINGS.get(candidate, candidate)
        if name in SPACE_UNITS or name in TIME_UNITS:
            return name
    return None


def normalize_unit(unit: str | None, option: str = "unit") -> str | None:
    """The OME-NGFF (UDUNITS-2) name of a spatial unit given in a common spelling (``um``, ``µm``, ``micron`` ->
    ``micrometer``; ``mm``, ``nm``...), None for none: what every image stores, so other NGFF tools read it. Any
    other text (or a time unit: Mzarr's axes are spatial) is an MzarrValueError listing the valid names."""
    if unit is None or (isinstance(unit, str) and not unit.strip()):
        return None
    if not isinstance(unit, str):
        raise MzarrValueError(f"{option} must be a unit name such as 'micrometer', got {type(unit).__name__}")
    name = _unit_name(unit)
    if name in SPACE_UNITS:
        return name
    if name is not None:
        raise MzarrValueError(f"{option} {unit!r} is a time unit ({name}); the spacing of Mzarr's axes z, y, x is a "
                              f"length: give a spatial unit, e.g. {COMMON_UNITS}")
    raise MzarrValueError(f"unknown {option} {unit[:40]!r}: give an OME-NGFF spatial unit: {COMMON_UNITS}, or one of "
                          f"{', '.join(n for n in SPACE_UNITS if n not in COMMON_NAMES)}")


def stored_unit(unit: str | None) -> str | None:
    """A unit read from a file: its NGFF name when it is a known spelling (files written before units were checked
    may say ``um``), else kept as written (it is the file's to say)."""
    name = _unit_name(unit) if isinstance(unit, str) else None
    return name if name in SPACE_UNITS else unit


@dataclass
class ImageInfo:
    """Everything about an image except its pixels; shapes and factors of levels are in storage order."""

    axes: str  # user order, e.g. "yxc"
    spacing: tuple[float, ...] | None = None  # per spatial axis (z, y, x order)
    unit: str | None = None
    is_label: bool = False
    downsample: str = "mean"
    codec: dict[str, Any] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    level_paths: list[str] = field(default_factory=list)
    level_factors: list[tuple[int, ...]] = field(default_factory=list)
    name: str = "image"

    @property
    def storage_axes(self) -> str:
        return storage_axes(self.axes)

    @property
    def spatial_axes(self) -> str:
        return self.axes.replace("c", "")


def _axis_json(name: str, unit: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "type": AXIS_TYPES[name]}
    if unit and AXIS_TYPES[name] == "space":
        out["unit"] = unit
    return out


def group_attributes(info: ImageInfo) -> dict[str, Any]:
    """The group's ``attributes``: NGFF ``ome`` block plus the ``mzarr`` block."""
    st = info.storage_axes
    spacing = list(info.spacing) if info.spacing else [1.0] * len(info.spatial_axes)
    datasets = []
    for path, factor in zip(info.level_paths, info.level_factors):
        scale, it = [], iter(spacing)
        for a, f in zip(st, factor):
            scale.append(1.0 if a == "c" else float(next(it)) * f)
        datasets.append({"path": path, "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    multiscale = {
        "name": info.name,
        "axes": [_axis_json(a, info.unit) for a in st],
        "datasets": datasets,
        "type": info.downsample,
    }
    ome: dict[str, Any] = {"version": NGFF_VERSION, "multiscales": [multiscale]}
    mzarr = {
        "format_version": format_version_of(info.codec),  # the lowest that reads it: 2D files stay readable by 1
        "axes": info.axes,
        "is_label": info.is_label,
        "downsample": info.downsample,
        "codec": info.codec,
        "spacing": list(info.spacing) if info.spacing else None,
        "unit": info.unit,
        "attrs": info.attrs,
    }
    return {"ome": ome, "mzarr": mzarr}


DAMAGED = "the file is damaged or was not written by Mzarr: restore it from a backup"
MAX_LEVELS = 64  # a pyramid that halves each time needs at most ~50 levels for any plausible shape
MAX_FACTOR = 2**48  # a downsampling factor beyond any plausible level shape
_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxlong = 3, 60, 60, 8, 4, 40


def show(value: Any) -> str:
    """A short, bounded repr of a metadata value for an error message (long strings and deep lists are cut)."""
    try:
        return _SHOW.repr(value)
    except (ValueError, RecursionError):  # e.g. an int too long to print
        return f"<{type(value).__name__}>"


def metadata_error(where: str, key: str, problem: str) -> MzarrFormatError:
    """``x.mzarr: 0/zarr.json: <problem>; the file is damaged ...``: names the file and the metadata document."""
    return MzarrFormatError(f"{where}: {key}: {problem}; {DAMAGED}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__
    )


def is_number(value: Any) -> bool:
    """A JSON number (not a bool) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_positive_number(value: Any) -> bool:
    return is_number(value) and value > 0


def valid_node_path(path: Any) -> bool:
    """A relative Zarr node path: '/'-separated names, none empty, '.' or '..', no backslash or control character."""
    if not isinstance(path, str) or not 0 < len(path) <= 512:
        return False
    if any(ch in path for ch in "\\\0") or any(ord(ch) < 32 for ch in path):
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Doc:
    """Where a group document lives, for error messages naming the file, the document and the key path."""

    def __init__(self, where: str, key: str):
        self.where, self.key = where, key

    def error(self, key_path: str, expected: str, value: Any) -> MzarrFormatError:
        return metadata_error(self.where, self.key, f"{key_path} must be {expected}, got {show(value)} ({_json_type(value)})")

    def get(self, obj: dict[str, Any], name: str, key_path: str, types: tuple[type, ...], expected: str, default: Any = None) -> Any:
        """``obj[name]`` if present and not null, checked against ``types`` (bool is never a number)."""
        value = obj.get(name)
        if value is None:
            return default
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.error(_join(key_path, name), expected, value)
        return value


def parse_group_attributes(
    attrs: Any, where: str, key: str = "zarr.json", prefix: str = "attributes"
) -> ImageInfo:
    """Read an Mzarr or plain OME-Zarr (NGFF 0.4/0.5) group's attributes into an :class:`ImageInfo`.

    ``key`` names the metadata document (``zarr.json``, or ``.zattrs`` for Zarr v2) and ``prefix`` the path of
    ``attrs`` inside it, so that a value of the wrong type is reported as e.g.
    ``x.mzarr: zarr.json: attributes.ome.multiscales[0].datasets[1].path must be a string, got 5``.
    """
    doc = _Doc(where, key)
    if not isinstance(attrs, dict):
        raise doc.error(prefix or "the attributes", "an object", attrs)
    if "ome" in attrs:
        ome, ome_path = attrs["ome"], _join(prefix, "ome")
        if not isinstance(ome, dict):
            raise doc.error(ome_path, "an object", ome)
    else:
        ome, ome_path = attrs, prefix
    block = attrs.get("mzarr")
    block_path = _join(prefix, "mzarr")
    if block is None:
        block = {}
    elif not isinstance(block, dict):
        raise doc.error(block_path, "an object", block)
    has_block = bool(block)  # an empty block is read like a plain OME-Zarr image
    version = block.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise doc.error(f"{block_path}.format_version", "a positive integer", version)
    if version > FORMAT_VERSION:
        raise MzarrFormatError(
            f"{where} was written by a newer Mzarr (format {version}); this version reads format {FORMAT_VERSION}: "
            "upgrade mzarr"
        )
    multiscales = ome.get("multiscales")
    if multiscales is None or multiscales == []:
        raise MzarrFormatError(
            f"{where} is a Zarr group without OME-NGFF 'multiscales' metadata, so it is not a .mzarr or OME-Zarr "
            "image; convert the source image with 'mzarr convert'"
        )
    ms_path = _join(ome_path, "multiscales")
    if not isinstance(multiscales, list):
        raise doc.error(ms_path, "a list of multiscale objects", multiscales)
    ms, ms_path = multiscales[0], f"{ms_path}[0]"
    if not isinstance(ms, dict):
        raise doc.error(ms_path, "an object", ms)
    names, axis_units = _parse_axes(doc, ms, ms_path, where)
    user_axes = doc.get(block, "axes", block_path, (str,), "a string such as 'yxc'", names)
    if user_axes not in USER_AXES or storage_axes(user_axes) != names:
        raise MzarrFormatError(
            f"{where}: {key}: the mzarr axes {user_axes!r} ({block_path}.axes) do not match the NGFF axes {names!r}"
        )
    paths, scales = _parse_datasets(doc, ms, ms_path, names)
    factors: list[tuple[int, ...]] = []
    if scales and all(sc is not None for sc in scales):
        for i, sc in enumerate(scales):
            factor = []
            for a, b in zip(cast("list[float]", sc), cast("list[float]", scales[0])):
                ratio = float(a) / float(b)
                if not math.isfinite(ratio) or ratio > MAX_FACTOR:
                    raise doc.error(
                        f"{ms_path}.datasets[{i}].coordinateTransformations",
                        f"a scale at most {MAX_FACTOR} times that of level 0", sc,
                    )
                factor.append(max(1, round(ratio)))
            factors.append(tuple(factor))
    n_spatial = len(names.replace("c", ""))
    if has_block:
        spacing = block.get("spacing")
        if spacing is not None and not (
            isinstance(spacing, list) and len(spacing) == n_spatial and all(is_positive_number(s) for s in spacing)
        ):
            raise doc.error(f"{block_path}.spacing", f"null or a list of {n_spatial} finite positive numbers", spacing)
        unit = doc.get(block, "unit", block_path, (str,), "null or a string")
        is_label = doc.get(block, "is_label", block_path, (bool,), "true or false", False)
        ms_type = ms.get("type")
        downsample = doc.get(block, "downsample", block_path, (str,), "a string", ms_type if ms_type in DOWNSAMPLE_METHODS else "mean")
        if downsample not in DOWNSAMPLE_METHODS:
            raise doc.error(f"{block_path}.downsample", f"one of {', '.join(DOWNSAMPLE_METHODS)}", downsample)
        codec = doc.get(block, "codec", block_path, (dict,), "null or an object")
        user_attrs = dict(doc.get(block, "attrs", block_path, (dict,), "an object", {}))
    else:
        spacing, unit = None, None
        if scales and scales[0]:
            spacing = [s for a, s in zip(names, scales[0]) if a != "c"]
            unit = next((u for u in axis_units if u), None)
            if all(float(s) == 1.0 for s in spacing) and unit is None:
                spacing = None
        is_label = False
        downsample = doc.get(ms, "type", ms_path, (str,), "a string", "mean")
        codec = None
        user_attrs = {k: v for k, v in attrs.items() if k not in ("ome", "multiscales", "omero")}
    name = doc.get(ms, "name", ms_path, (str,), "a string", "image")
    return ImageInfo(
        axes=user_axes,
        spacing=tuple(float(s) for s in spacing) if spacing else None,
        unit=stored_unit(unit),
        is_label=is_label,
        downsample=downsample,
        codec=codec,
        attrs=user_attrs,
        level_paths=paths,
        level_factors=factors,
        name=name,
    )


def _parse_axes(doc: _Doc, ms: dict[str, Any], ms_path: str, where: str) -> tuple[str, list[str | None]]:
    """The NGFF axis names joined (e.g. ``"cyx"``) and the unit of each spatial axis."""
    axes = ms.get("axes", [])
    if not isinstance(axes, list):
        raise doc.error(f"{ms_path}.axes", "a list of axis objects", axes)
    names, units = [], []
    for i, axis in enumerate(axes[:8]):
        if isinstance(axis, dict):
            name = axis.get("name")
            if not isinstance(name, str):
                raise doc.error(f"{ms_path}.axes[{i}].name", "a string", name)
            unit = axis.get("unit")
            if unit is not None and not isinstance(unit, str):
                raise doc.error(f"{ms_path}.axes[{i}].unit", "a string", unit)
            if axis.get("type") == "space":
                units.append(unit)
        elif isinstance(axis, str):
            name = axis
        else:
            raise doc.error(f"{ms_path}.axes[{i}]", "an axis object or name", axis)
        names.append(name.lower())
    joined = "".join(names)
    if len(axes) > 8 or joined not in ("yx", "zyx", "cyx", "czyx") or len(names) != len(joined):
        shown = joined if len(axes) <= 8 and len(joined) <= 40 else show(names)
        raise MzarrFormatError(
            f"{where} has axes {shown!r}; Mzarr reads 2D/3D images with an optional channel axis "
            "(yx, zyx, cyx, czyx)"
        )
    return joined, units


def _parse_datasets(
    doc: _Doc, ms: dict[str, Any], ms_path: str, names: str
) -> tuple[list[str], list[list[float] | None]]:
    """Each level's path and its scale (None where the dataset has no inline scale)."""
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not 1 <= len(datasets) <= MAX_LEVELS:
        raise doc.error(f"{ms_path}.datasets", f"a list of 1 to {MAX_LEVELS} dataset objects", datasets)
    paths: list[str] = []
    scales: list[list[float] | None] = []
    for i, d in enumerate(datasets):
        d_path = f"{ms_path}.datasets[{i}]"
        if not isinstance(d, dict):
            raise doc.error(d_path, "an object", d)
        path = d.get("path")
        if not isinstance(path, str):
            raise doc.error(f"{d_path}.path", "a string", path)
        if not valid_node_path(path):
            raise doc.error(f"{d_path}.path", "a relative path inside the image (no '..', '.', empty parts)", path)
        if path in paths:
            raise doc.error(f"{d_path}.path", f"different from the path of level {paths.index(path)}", path)
        paths.append(path)
        transforms = d.get("coordinateTransformations", [])
        if not isinstance(transforms, list):
            raise doc.error(f"{d_path}.coordinateTransformations", "a list of transformation objects", transforms)
        scale = None
        for j, t in enumerate(transforms):
            t_path = f"{d_path}.coordinateTransformations[{j}]"
            if not isinstance(t, dict):
                raise doc.error(t_path, "an object", t)
            kind = t.get("type")
            if not isinstance(kind, str):
                raise doc.error(f"{t_path}.type", "a string", kind)
            if kind == "scale" and scale is None and "scale" in t:
                scale = t["scale"]
                if not (isinstance(scale, list) and len(scale) == len(names) and all(is_positive_number(s) for s in scale)):
                    raise doc.error(
                        f"{t_path}.scale", f"a list of {len(names)} finite positive numbers (one per axis {names!r})", scale
                    )
        scales.append(scale)
    return paths, scales
