"""Label images inside an image's file: OME-NGFF ``labels`` (docs/FORMAT.md "Label images").

A ``labels`` child group of the image's root group lists the label images (``ome.labels``: names); each
``labels/<name>`` is a multiscale image of the image's spatial shape (no channel axis), integer or bool, lossless,
whose pyramid is built by the ``mode`` rule with the image's factors, and whose ``ome.image-label`` holds its
colours (label value -> RGBA), properties (label value -> a JSON object) and ``source: {"image": "../../"}``.

Every document is read with the bounds of :mod:`mzarr_core.metadata_check` and checked here: a damaged or hostile
labels group is an :class:`~mzarr_core.errors.MzarrFormatError` naming the document. It is read only when label images
are asked for, so the image itself opens and reads whatever its labels group holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MzarrReadOnlyError, MzarrValueError
from .indexing import prepare_write
from .ngff import NGFF_VERSION, is_number, metadata_error, show

if TYPE_CHECKING:
    from .backends.stored import StoredBackend
    from .image import Mzarr
    from .level import Level

__all__ = ["GROUP", "LABEL_DTYPES", "LabelImage", "MAX_LABEL_IMAGES", "check_label_name", "check_label_dtype"]

GROUP = "labels"
MAX_LABEL_IMAGES = 256
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
LABEL_DTYPES = tuple(
    np.dtype(d) for d in ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "bool")
)


def check_label_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise MzarrValueError(
            f"a label image's name must be 1-64 characters A-Z, a-z, 0-9, '_', '.' or '-' (not starting with '.' "
            f"or '-'), got {name!r}"
        )
    return name


def check_label_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise MzarrValueError(f"{dtype!r} is not a data type") from None
    if dt.byteorder == ">":
        dt = dt.newbyteorder("<")
    if dt not in LABEL_DTYPES:
        raise MzarrValueError(
            f"a label image holds integer label values (uint8..uint64, int8..int64) or a bool mask, not {dt}: "
            "labels are stored lossless and their pyramid keeps the most frequent value, which needs integers; "
            "convert the array first, e.g. array.astype('uint16')"
        )
    return dt


def prefix_of(name: str) -> str:
    return f"{GROUP}/{name}/"


# -- image-label metadata ------------------------------------------------------------------------------------------
def _label_value(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    raise MzarrValueError(f"a label value must be an integer, got {value!r}")


def colors_to_json(colors: Any) -> list[dict[str, Any]]:
    """``{value: (r, g, b, a)}`` (0-255 each; a may be left out) as NGFF's ``colors`` list."""
    if colors is None:
        return []
    if not isinstance(colors, dict):
        raise MzarrValueError(f"colors must be a dict {{label value: (r, g, b, a)}}, got {type(colors).__name__}")
    out = []
    for value, rgba in sorted(colors.items(), key=lambda kv: _label_value(kv[0])):
        rgba = list(rgba) if isinstance(rgba, (list, tuple, np.ndarray)) else rgba
        if not isinstance(rgba, list) or len(rgba) not in (3, 4):
            raise MzarrValueError(f"the colour of label {value!r} must be (r, g, b) or (r, g, b, a), got {rgba!r}")
        if len(rgba) == 3:
            rgba.append(255)
        if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c <= 255 for c in rgba):
            raise MzarrValueError(f"the colour of label {value!r} must be integers 0-255, got {rgba!r}")
        out.append({"label-value": _label_value(value), "rgba": [int(c) for c in rgba]})
    return out


def properties_to_json(properties: Any) -> list[dict[str, Any]]:
    """``{value: {key: JSON value}}`` as NGFF's ``properties`` list."""
    from .attrs import check_json

    if properties is None:
        return []
    if not isinstance(properties, dict):
        raise MzarrValueError(
            f"properties must be a dict {{label value: {{key: value}}}}, got {type(properties).__name__}"
        )
    out = []
    for value, props in sorted(properties.items(), key=lambda kv: _label_value(kv[0])):
        if not isinstance(props, dict) or "label-value" in props:
            raise MzarrValueError(
                f"the properties of label {value!r} must be a dict of JSON values (without 'label-value'), got {props!r}"
            )
        check_json(dict(props), f"properties of label {value}")
        out.append({"label-value": _label_value(value), **props})
    return out


def image_label_block(colors: Any, properties: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"version": NGFF_VERSION, "source": {"image": "../../"}}
    c, p = colors_to_json(colors), properties_to_json(properties)
    if c:
        block["colors"] = c
    if p:
        block["properties"] = p
    return block


def parse_image_label(attributes: Any, where: str, key: str) -> tuple[dict[int, tuple[int, ...]], dict[int, dict]]:
    """The colours and properties of a label image's ``zarr.json`` attributes, checked."""
    ome = attributes.get("ome") if isinstance(attributes, dict) else None
    block = ome.get("image-label") if isinstance(ome, dict) else None
    path = "attributes.ome.image-label"
    if not isinstance(block, dict):
        raise metadata_error(where, key, f"{path} must be an object (a label image's metadata), got {show(block)}")
    source = block.get("source")
    if source is not None and not (isinstance(source, dict) and isinstance(source.get("image", ""), str)):
        raise metadata_error(where, key, f"{path}.source must be an object with an 'image' path, got {show(source)}")
    colors: dict[int, tuple[int, ...]] = {}
    raw_colors = block.get("colors", [])
    if not isinstance(raw_colors, list):
        raise metadata_error(where, key, f"{path}.colors must be a list, got {show(raw_colors)}")
    for i, entry in enumerate(raw_colors):
        value: Any = entry.get("label-value") if isinstance(entry, dict) else None
        rgba: Any = entry.get("rgba") if isinstance(entry, dict) else None
        if not (is_number(value) and float(value).is_integer()):
            raise metadata_error(where, key, f"{path}.colors[{i}].label-value must be an integer, got {show(value)}")
        if not (isinstance(rgba, list) and len(rgba) == 4 and all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in rgba)):
            raise metadata_error(where, key, f"{path}.colors[{i}].rgba must be 4 integers 0-255, got {show(rgba)}")
        colors[int(value)] = tuple(rgba)
    properties: dict[int, dict] = {}
    raw_props = block.get("properties", [])
    if not isinstance(raw_props, list):
        raise metadata_error(where, key, f"{path}.properties must be a list, got {show(raw_props)}")
    for i, entry in enumerate(raw_props):
        value = entry.get("label-value") if isinstance(entry, dict) else None  # checked below
        if not (is_number(value) and float(value).is_integer()):
            raise metadata_error(
                where, key, f"{path}.properties[{i}] must be an object with an integer 'label-value', got {show(entry)}"
            )
        properties[int(value)] = {k: v for k, v in entry.items() if k != "label-value"}
    return colors, properties


def parse_labels_index(doc: Any, where: str, key: str) -> list[str]:
    """The names listed by ``labels/zarr.json``, checked."""
    if doc.get("zarr_format") != 3 or doc.get("node_type") != "group":
        raise metadata_error(where, key, "must be a Zarr v3 group's metadata ('zarr_format' 3, 'node_type' \"group\")")
    attributes = doc.get("attributes", {})
    ome = attributes.get("ome") if isinstance(attributes, dict) else None
    names = ome.get("labels") if isinstance(ome, dict) else None
    if not isinstance(names, list) or len(names) > MAX_LABEL_IMAGES:
        raise metadata_error(
            where, key, f"attributes.ome.labels must be a list of at most {MAX_LABEL_IMAGES} names, got {show(names)}"
        )
    for i, name in enumerate(names):
        if not isinstance(name, str) or not _NAME.match(name):
            raise metadata_error(
                where, key, f"attributes.ome.labels[{i}] must be a label image name (1-64 characters A-Z, a-z, 0-9, "
                f"'_', '.', '-'), got {show(name)}"
            )
    if len(set(names)) != len(names):
        raise metadata_error(where, key, f"attributes.ome.labels names a label image twice: {show(names)}")
    return list(names)


def labels_index_doc(names: list[str]) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": NGFF_VERSION, "labels": names}}}


def check_label_levels(backend: StoredBackend, image_axes: str, image_shape: tuple[int, ...], where: str) -> None:
    """A label image opened from a file matches its image: spatial axes only, the image's spatial shape, a label
    data type."""
    key = f"{backend.prefix}zarr.json"
    info = backend.info
    if info.axes != image_axes.replace("c", ""):
        raise metadata_error(
            where, key, f"a label image has the image's spatial axes {image_axes.replace('c', '')!r}, not {info.axes!r}"
        )
    level0 = backend.level0
    expected = tuple(n for a, n in zip(image_axes, image_shape) if a != "c")
    if tuple(level0.shape) != expected:
        raise metadata_error(
            where, key, f"the label image's shape {tuple(level0.shape)} is not the image's spatial shape {expected}"
        )
    if np.dtype(level0.dtype) not in LABEL_DTYPES:
        raise metadata_error(where, key, f"the label image's data type {level0.dtype} is not an integer or bool type")


# -- the API object ------------------------------------------------------------------------------------------------
class LabelImage:
    """One label image of an :class:`~mzarr_core.Mzarr` file (``m.label(name)``): NumPy-style reads of its levels
    through the file's parallel chunk reader and cache, and writes that update every level of its pyramid (mode
    rule) in one transaction, or in the image's ``with m.transaction():`` block."""

    def __init__(self, image: "Mzarr", name: str, backend: "StoredBackend"):
        self._image = image
        self._name = name
        self._backend = backend
        self._gone: str | None = None

    def __repr__(self) -> str:
        return f"<LabelImage {self._name!r} of {self._image.path} shape={self.shape} dtype={self.dtype} levels={len(self.levels)}>"

    def _check(self) -> None:
        self._image._check_open()
        if self._gone:
            raise MzarrValueError(self._gone)

    @property
    def name(self) -> str:
        return self._name

    @property
    def image(self) -> "Mzarr":
        return self._image

    @property
    def levels(self) -> list["Level"]:
        return self._backend.levels

    def level(self, index: int) -> "Level":
        levels = self.levels
        if not -len(levels) <= index < len(levels):
            raise IndexError(f"level {index} does not exist: this label image has {len(levels)} levels")
        return levels[index]

    def to_dask(self, level: int = 0) -> Any:
        """Level ``level`` of this label image as a lazy dask array chunked like the file (:meth:`Level.to_dask`)."""
        self._check()
        return self.level(level).to_dask()

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._backend.level0.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._backend.level0.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def axes(self) -> str:
        return self._backend.info.axes

    @property
    def chunks(self) -> tuple[int, ...]:
        return self._backend.level0.chunks

    def __getitem__(self, key: Any) -> np.ndarray:
        with self._backend._lock.reading():
            self._check()
            return self._backend.level0[key]

    def numpy(self) -> np.ndarray:
        return self[...]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.write_regions([(key, value)])

    def write_regions(self, regions: Iterable[tuple[Any, Any]]) -> None:
        """``self[key] = value`` for every ``(key, value)``, in one transaction, each chunk of the label pyramid
        recomputed once (:meth:`Mzarr.write_regions <mzarr_core.Mzarr.write_regions>`)."""
        self._check()
        if not self._backend.writable:
            raise MzarrReadOnlyError(self._backend.read_only_reason())
        items = [(key, *prepare_write(key, value, self.shape, self.dtype)) for key, value in regions]
        with self._backend._lock.writing(), self._backend.transaction():
            try:
                self._backend.write_regions(items)
            except BaseException:
                self._image._close_if_broken()
                raise

    # -- metadata ------------------------------------------------------------------------------------------------
    def _document(self) -> tuple[dict[str, Any], str]:
        from .metadata_check import Documents

        key = f"{self._backend.prefix}zarr.json"
        with self._backend._lock.reading(), self._backend.transaction(write=False):
            doc = Documents(self._backend.store, self._backend.kind, self._backend.path).load(key)
        if doc is None:
            raise metadata_error(str(self._backend.path), key, "the label image's metadata is missing")
        return doc, key

    def _metadata(self) -> tuple[dict[int, tuple[int, ...]], dict[int, dict]]:
        self._check()
        doc, key = self._document()
        return parse_image_label(doc.get("attributes"), str(self._backend.path), key)

    @property
    def colors(self) -> dict[int, tuple[int, int, int, int]]:
        """Label value -> (r, g, b, a), 0-255 (NGFF ``image-label.colors``); set it to replace them all."""
        return self._metadata()[0]  # type: ignore[return-value]

    @colors.setter
    def colors(self, colors: Any) -> None:
        self._update_block(colors=colors_to_json(colors))

    @property
    def properties(self) -> dict[int, dict[str, Any]]:
        """Label value -> {key: JSON value} (NGFF ``image-label.properties``); set it to replace them all."""
        return self._metadata()[1]

    @properties.setter
    def properties(self, properties: Any) -> None:
        self._update_block(properties=properties_to_json(properties))

    def _update_block(self, **entries: list) -> None:
        self._check()
        if not self._backend.writable:
            raise MzarrReadOnlyError(self._backend.read_only_reason())
        from .metadata_check import json_limits_problem
        import json

        with self._backend._lock.writing(), self._backend.transaction():
            doc, key = self._document()
            block = doc["attributes"]["ome"]["image-label"]
            for name, value in entries.items():
                if value:
                    block[name] = value
                else:
                    block.pop(name, None)
            problem = json_limits_problem(json.dumps(doc).encode())
            if problem:
                raise MzarrValueError(f"the label image's metadata would be too large: {problem}")
            self._backend.put_document(key, doc)


def put_json(store: Any, key: str, doc: dict[str, Any]) -> None:
    """Write the JSON document ``key`` into ``store`` (a fresh store being saved, or inside a write transaction)."""
    import json

    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    data = json.dumps(doc, indent=2).encode()
    set_bytes = getattr(store, "set_bytes_sync", None)
    if set_bytes is not None:
        set_bytes(key, data)
    else:
        sync(store.set(key, default_buffer_prototype().buffer.from_bytes(data)))


def write_label_image(store: Any, name: str, source: Any, info: Any, chunks: tuple[int, ...], levels: int | None,
                      block: dict[str, Any], empty: bool = False, checksum: bool = True) -> None:
    """Write the label image ``name`` (all levels, mode rule, lossless) into ``store``: ``source`` in the label's
    axis order (spatial, z-y-x), ``info`` its ImageInfo, ``chunks`` the image's spatial chunks, ``levels`` the
    image's level count (as many as the shape allows), ``block`` its ``image-label`` metadata, ``checksum``
    whether its chunks carry a crc32c (as the image's do: format 5)."""
    from .codecs import choose_codec
    from .writer import write_image

    codec = choose_codec(np.dtype(source.dtype), lossless=True, is_label=True, volume="z" in info.axes, checksum=checksum)
    write_image(store, source, info, codec, chunks, levels, empty=empty, path=f"{GROUP}/{name}",
                ome_extra={"image-label": block})
