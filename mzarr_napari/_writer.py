"""The writers: a napari image or labels layer (or an image with its labels) -> a .mzarr file, through the public API.

A layer's ``scale`` becomes the spacing, its ``units`` the unit, its ``metadata`` the user attributes (JSON values
only); a multiscale layer is saved from its level 0 (Mzarr builds its own pyramid). Images are stored lossless.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mzarr_core import Mzarr, MzarrValueError
from mzarr_core.errors import MzarrWarning

from ._reader import LABEL_KEY, PATH_KEY

SUFFIX = ".mzarr"


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """napari's single-layer writer for image layers: ``path`` (.mzarr) holding the layer's level 0."""
    return [str(_save(path, [(data, meta, "image")]))]


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """napari's single-layer writer for labels layers: ``path`` (.mzarr) as a label image file (``is_label``)."""
    return [str(_save(path, [(data, meta, "labels")]))]


def write_layers(path: str, layer_data: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
    """napari's multi-layer writer: one image layer and its labels layers -> one .mzarr (the labels as its label
    images, named after the layers); labels layers alone are not accepted (save them one by one)."""
    return [str(_save(path, list(layer_data)))]


def _save(path: str, layers: list[tuple[Any, dict[str, Any], str]]) -> Path:
    out = Path(path)
    if not out.name.lower().endswith(SUFFIX):
        out = out.with_name(out.name + SUFFIX)
    images = [layer for layer in layers if layer[2] == "image"]
    labels = [layer for layer in layers if layer[2] == "labels"]
    if len(layers) > 1 and len(images) != 1:
        raise MzarrValueError(
            f"a .mzarr holds one image and its label images; got {len(images)} image layers and {len(labels)} "
            "labels layers: select one image layer (and its labels layers), or save the layers one by one"
        )
    if len(labels) + len(images) != len(layers):
        kinds = sorted({layer[2] for layer in layers} - {"image", "labels"})
        raise MzarrValueError(f"Mzarr saves image and labels layers, not {', '.join(kinds)} layers")
    main = images[0] if images else labels[0]
    data, meta, kind = main
    image = _mzarr(data, meta, kind == "labels")
    with _napari_progress(f"Saving {out.name}") as progress:
        image.save(out, progress=progress)
    rest = [layer for layer in layers if layer is not main]
    if rest:
        with Mzarr(out, "r+") as m, m.transaction():
            for data, meta, _ in rest:
                name = str((meta.get("metadata") or {}).get(LABEL_KEY) or meta.get("name") or "labels")
                label_data = _level0(data, meta)
                if tuple(label_data.shape) != tuple(m.shape[i] for i, a in enumerate(m.axes) if a != "c"):
                    raise MzarrValueError(
                        f"labels layer {name!r} has shape {tuple(label_data.shape)}, but a label image must have "
                        f"the image's spatial shape {tuple(s for s, a in zip(m.shape, m.axes) if a != 'c')}"
                    )
                m.create_labels(name, np.asarray(label_data), colors=_label_colors(meta.get("colormap")),
                                properties=_label_properties(meta.get("features")))
    return out


def _level0(data: Any, meta: dict[str, Any]) -> Any:
    """The full-resolution array of a layer's data (level 0 of a multiscale layer)."""
    if meta.get("multiscale") or isinstance(data, (list, tuple)):
        return data[0]
    return data


def _mzarr(data: Any, meta: dict[str, Any], is_label: bool) -> Mzarr:
    """An in-memory (or lazy, for dask data) Mzarr of one layer, with its axes, spacing, unit and attributes."""
    array = _level0(data, meta)
    ndim = len(array.shape)
    rgb = bool(meta.get("rgb")) and not is_label
    spatial = ndim - 1 if rgb else ndim
    if spatial not in (2, 3):
        raise MzarrValueError(
            f"Mzarr stores 2D and 3D images; this layer has {spatial} dimensions ({tuple(array.shape)}): "
            "save a 2D or 3D layer (split channels into layers, or take one time point)"
        )
    axes = ("yx" if spatial == 2 else "zyx") + ("c" if rgb else "")
    scale = [float(s) for s in (meta.get("scale") or (1.0,) * spatial)][-spatial:]
    unit = _unit(meta.get("units"), spatial)
    spacing = None if all(s == 1.0 for s in scale) and unit is None else tuple(scale)
    attrs = _json_attrs(meta.get("metadata") or {})
    return Mzarr(array, axes=axes, spacing=spacing, unit=unit if spacing else None, is_label=is_label, attrs=attrs)


def _label_colors(colormap: Any) -> dict[int, tuple[int, ...]] | None:
    """The colours of a labels layer in napari's direct mode (``{value: RGBA 0-255}``), None in its automatic mode."""
    color_dict = getattr(colormap, "color_dict", None)
    if not color_dict:
        return None
    out = {}
    for value, rgba in color_dict.items():
        if value is None or (value == 0 and float(rgba[3]) == 0.0):
            continue  # napari's default and its transparent background
        out[int(value)] = tuple(int(round(float(c) * 255)) for c in rgba)
    return out or None


def _label_properties(features: Any) -> dict[int, dict[str, Any]] | None:
    """A labels layer's ``features`` table as ``{value: {column: JSON value}}`` (the value from its ``index`` column,
    else the row number, as napari counts them); missing values (NaN, None) are left out."""
    if features is None or not len(features):
        return None
    columns = [c for c in features.columns if c != "index"]
    values = features["index"] if "index" in features.columns else range(len(features))
    out: dict[int, dict[str, Any]] = {}
    for row, value in enumerate(values):
        entry = {}
        for column in columns:
            v = features[column].iloc[row]
            v = v.item() if isinstance(v, np.generic) else v
            if v is None or (isinstance(v, float) and not np.isfinite(v)):
                continue
            entry[str(column)] = v
        if entry:
            out[int(value)] = entry
    return out or None


def _unit(units: Any, spatial: int) -> str | None:
    """The layer's one physical unit (napari's per-axis units, pint), or None for pixels."""
    if not units:
        return None
    names = {str(u) for u in list(units)[-spatial:]}
    names.discard("pixel")
    if not names:
        return None
    if len(names) > 1:
        raise MzarrValueError(f"Mzarr stores one unit for all axes; this layer has {', '.join(sorted(names))}")
    return names.pop()


def _json_attrs(metadata: dict[str, Any]) -> dict[str, Any]:
    """The layer's metadata as user attributes: the JSON values (other plugins' objects are left out, with a
    warning naming them); the keys the reader added are dropped."""
    out, skipped = {}, []
    for key, value in metadata.items():
        if key in (PATH_KEY, LABEL_KEY):
            continue
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            skipped.append(str(key))
            continue
        out[str(key)] = value
    if skipped:
        warnings.warn(f"layer metadata not saved (not JSON values): {', '.join(skipped)}", MzarrWarning, stacklevel=3)
    return out


@contextmanager
def _napari_progress(text: str) -> Iterator[Any]:
    """A ``progress(done, total)`` callback shown as napari's progress bar (none outside napari)."""
    try:
        from napari.utils import progress as napari_progress
    except ImportError:
        yield None
        return
    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = napari_progress(total=max(int(total), 1), desc=text)
        bar.n = min(int(done), bar.total)
        bar.refresh()

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


__all__ = ["write_image", "write_labels", "write_layers"]
