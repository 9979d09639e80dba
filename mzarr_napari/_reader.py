"""The reader: a .mzarr file, an OME-Zarr folder or a legacy Mzarr ZIP -> napari layer data tuples.

One multiscale image layer (one lazy dask array per pyramid level, ``to_dask``: tiles are decoded only when napari
draws them) and one multiscale labels layer per label image, all with the physical scale of the file.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mzarr_core import Mzarr, MzarrError
from mzarr_core.display import opening_window
from mzarr_core.formats import import_action, strip_suffix

#: ``layer.metadata`` keys the reader adds beside the file's user attributes (the writer leaves them out)
PATH_KEY = "mzarr_path"
LABEL_KEY = "mzarr_label"
#: the colour of label values the file gives no colour when it gives some (napari draws either all direct or none)
UNLISTED_COLOR = (0.6, 0.6, 0.6, 1.0)

LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[Any], list[LayerData]]


def get_reader(path: str | list[str]) -> ReaderFunction | None:
    """napari's reader hook: :func:`read_layers` for a .mzarr file or an OME-Zarr folder, None for anything else."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None  # a stack of files is not one Mzarr image
        path = path[0]
    if not isinstance(path, (str, os.PathLike)):
        return None
    p = Path(path)
    if p.name.lower().endswith(".mzarr"):  # SQLite or the legacy ZIP form: a damaged one gets the reader's error
        return read_layers
    # a folder by its content (an OME-Zarr group), or by its .ome.zarr name (the reader says what is wrong)
    return read_layers if p.is_dir() and import_action(p) == "open" else None


def read_layers(path: str | list[str]) -> list[LayerData]:
    """The image (multiscale, lazy) and its label images as napari layer data tuples.

    Raises :class:`~mzarr_core.MzarrError` saying what is wrong with a file that cannot be opened."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    p = Path(path)
    with Mzarr(p, "r") as m:
        return [_image_layer(m, p)] + [_labels_layer(m, p, name) for name in m.labels()]


def _pyramid(levels: list[Any]) -> Any:
    """The layer data: one array per level (napari's multiscale), or the array itself for a single level."""
    return levels if len(levels) > 1 else levels[0]


def _geometry(m: Mzarr) -> dict[str, Any]:
    """``scale`` from the physical spacing, ``units`` and ``axis_labels`` (napari >= 0.6) of the spatial axes."""
    n = len(m.spatial_axes)
    out: dict[str, Any] = {"scale": tuple(float(s) for s in m.spacing) if m.spacing else (1.0,) * n}
    if _layers_take("axis_labels"):
        out["axis_labels"] = tuple(m.spatial_axes)
    if m.spacing and m.unit and _layers_take("units") and _known_unit(m.unit):
        out["units"] = (m.unit,) * n
    return out


def _image_layer(m: Mzarr, path: Path) -> LayerData:
    levels = [m.to_dask(i) for i in range(len(m.levels))]
    attrs = m.attrs().to_dict()
    metadata = {**attrs, PATH_KEY: str(path)}
    kwargs: dict[str, Any] = {
        "name": strip_suffix(path.name), "multiscale": len(levels) > 1, "metadata": metadata, **_geometry(m),
    }
    if m.is_label:  # the file itself is a segmentation
        return _pyramid(levels), kwargs, "labels"
    rgb = m.axes.endswith("c") and m.channel_count in (3, 4) and m.dtype == np.uint8
    if rgb:
        kwargs["rgb"] = True
    elif m.channel_count:
        kwargs["channel_axis"] = m.axes.index("c")
        kwargs["name"] = [f"{kwargs['name']} [{i}]" for i in range(m.channel_count)]
        if m.channel_count in (3, 4) and m.axes.endswith("c"):  # RGB(A) of more than 8 bits: red, green, blue
            kwargs["colormap"] = ["red", "green", "blue", "gray"][: m.channel_count]
            kwargs["blending"] = "additive"
    window = opening_window(m.dtype, attrs, m.channel_count, m.is_label)
    if window is not None:
        kwargs["contrast_limits"] = window
    elif m.dtype == np.uint8 and not rgb:
        kwargs["contrast_limits"] = (0.0, 255.0)  # 8 bits: the full range; other types: napari's from the coarsest level
    return _pyramid(levels), kwargs, "image"


def _labels_layer(m: Mzarr, path: Path, name: str) -> LayerData:
    label = m.label(name)
    levels = [label.to_dask(i) for i in range(len(label.levels))]
    kwargs: dict[str, Any] = {
        "name": name,
        "multiscale": len(levels) > 1,
        "metadata": {PATH_KEY: str(path), LABEL_KEY: name},
        **_geometry(m),
    }
    colors = label.colors
    if colors:  # the file's colours (napari's "direct" mode); values without one are grey, 0 transparent
        kwargs["colormap"] = {None: UNLISTED_COLOR, 0: (0.0, 0.0, 0.0, 0.0),
                              **{v: tuple(c / 255.0 for c in rgba) for v, rgba in colors.items()}}
    properties = label.properties
    if properties:
        keys = sorted({k for p in properties.values() for k in p})
        values = sorted(properties)
        kwargs["features"] = {"index": values, **{k: [properties[v].get(k) for v in values] for k in keys}}
    return _pyramid(levels), kwargs, "labels"


@lru_cache(maxsize=8)
def _layers_take(keyword: str) -> bool:
    """Whether this napari's layers accept ``keyword`` (``units`` and ``axis_labels`` arrived in napari 0.6)."""
    import inspect

    try:
        from napari.layers import Image
    except ImportError:
        return True  # not in napari: the tuple is only data
    return keyword in inspect.signature(Image.__init__).parameters


@lru_cache(maxsize=32)
def _known_unit(unit: str) -> bool:
    """Whether pint (napari's unit library) knows ``unit`` (NGFF's names such as ``micrometer`` all are)."""
    try:
        import pint
    except ImportError:
        return True
    try:
        pint.get_application_registry().Unit(unit)
    except Exception:  # noqa: BLE001 - an unknown unit is left out, the scale kept
        return False
    return True


__all__ = ["LABEL_KEY", "PATH_KEY", "get_reader", "read_layers"]
