"""The group metadata: OME-NGFF 0.5 ``multiscales`` (so other tools find the pyramid) and the ``mzarr`` block."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .axes import USER_AXES, storage_axes
from .errors import MzarrFormatError

FORMAT_VERSION = 1
NGFF_VERSION = "0.5"
AXIS_TYPES = {"c": "channel", "z": "space", "y": "space", "x": "space"}


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
        "format_version": FORMAT_VERSION,
        "axes": info.axes,
        "is_label": info.is_label,
        "downsample": info.downsample,
        "codec": info.codec,
        "spacing": list(info.spacing) if info.spacing else None,
        "unit": info.unit,
        "attrs": info.attrs,
    }
    return {"ome": ome, "mzarr": mzarr}


def parse_group_attributes(attrs: dict[str, Any], where: str) -> ImageInfo:
    """Read an Mzarr or plain OME-Zarr (NGFF 0.4/0.5) group's attributes into an :class:`ImageInfo`."""
    ome = attrs.get("ome", attrs)
    multiscales = ome.get("multiscales")
    if not multiscales:
        raise MzarrFormatError(
            f"{where} is a Zarr group without OME-NGFF 'multiscales' metadata, so it is not a .mzarr or OME-Zarr "
            "image; convert the source image with 'mzarr convert'"
        )
    ms = multiscales[0]
    names = "".join(a["name"] if isinstance(a, dict) else str(a) for a in ms.get("axes", [])).lower()
    block = attrs.get("mzarr") or {}
    version = block.get("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise MzarrFormatError(
            f"{where} was written by a newer Mzarr (format {version}); this version reads format {FORMAT_VERSION}: "
            "upgrade mzarr"
        )
    if names not in ("yx", "zyx", "cyx", "czyx"):
        raise MzarrFormatError(
            f"{where} has axes {names!r}; Mzarr reads 2D/3D images with an optional channel axis "
            "(yx, zyx, cyx, czyx)"
        )
    user_axes = block.get("axes", names)
    if user_axes not in USER_AXES or storage_axes(user_axes) != names:
        raise MzarrFormatError(f"{where}: the mzarr axes {user_axes!r} do not match the NGFF axes {names!r}")
    paths = [d["path"] for d in ms["datasets"]]
    scales = []
    for d in ms["datasets"]:
        scale = next((t["scale"] for t in d.get("coordinateTransformations", []) if t.get("type") == "scale"), None)
        scales.append(scale)
    factors: list[tuple[int, ...]] = []
    if all(sc and len(sc) == len(names) for sc in scales):
        factors = [tuple(max(1, round(float(a) / float(b))) if b else 1 for a, b in zip(sc, scales[0])) for sc in scales]
    spacing = block.get("spacing")
    unit = block.get("unit")
    if spacing is None and block == {} and scales and scales[0]:
        spacing = [s for a, s in zip(names, scales[0]) if a != "c"]
        axis_units = [a.get("unit") for a in ms.get("axes", []) if isinstance(a, dict) and a.get("type") == "space"]
        unit = next((u for u in axis_units if u), None)
        if all(float(s) == 1.0 for s in spacing) and unit is None:
            spacing = None
    return ImageInfo(
        axes=user_axes,
        spacing=tuple(float(s) for s in spacing) if spacing else None,
        unit=unit,
        is_label=bool(block.get("is_label", False)),
        downsample=block.get("downsample", ms.get("type") or "mean"),
        codec=block.get("codec"),
        attrs=dict(block.get("attrs", {})) if block else {k: v for k, v in attrs.items() if k not in ("ome", "multiscales", "omero")},
        level_paths=paths,
        level_factors=factors,
        name=ms.get("name", "image"),
    )
