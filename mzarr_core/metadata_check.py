"""Reading and checking an image's metadata documents before zarr sees them.

A damaged or hostile ``zarr.json`` (a negative shape, an unknown dtype or codec, JSON nested 100000 deep, a 200 MB
string) must give one :class:`~mzarr_core.errors.MzarrFormatError` naming the file and the document, within a fixed
memory bound, never a bare zarr ``ValueError``, a ``RecursionError`` or a gigabyte of memory. So the open reads the
raw documents itself (the root ``zarr.json`` and each pyramid level's ``<path>/zarr.json``; ``.zgroup``/``.zattrs``/
``.zarray`` for Zarr v2 folders and legacy ZIPs) with a size limit, parses them with every JSON failure caught,
checks what zarr and Mzarr rely on, and then builds the zarr nodes from the checked documents: each document is read
and parsed once, and what zarr uses is exactly what was checked.

Limits (per metadata document; all far beyond anything Mzarr or other OME-Zarr writers produce):

* :data:`MAX_DOCUMENT_BYTES` = 16 MiB of JSON. User attributes live in the root ``zarr.json``, so this is also the
  largest ``attrs()`` a file can hold (several MB of text, tables of ~10^5 numbers all fit).
* :data:`MAX_JSON_VALUES` = 1,000,000 JSON values (estimated from the separators outside strings, only for documents
  above 1 MiB): with the size limit this caps the memory of a parse at ~100 MB whatever the content
  (16 MiB of ``[[],[],...]`` would otherwise take ~400 MB and 2.5 s).
* :data:`MAX_JSON_DEPTH` = 100 nested lists/objects, so no later ``json.dumps`` / ``copy.deepcopy`` of the
  attributes can hit Python's recursion limit.
* A level: rank 2-4 (the NGFF axes), at most :data:`MAX_ELEMENTS` = 2^48 pixels, chunks of at most
  :data:`MAX_CHUNK_BYTES` = 1 GiB decoded, at most :data:`~mzarr_core.ngff.MAX_LEVELS` levels.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.array import AsyncArray
from zarr.core.group import AsyncGroup, GroupMetadata
from zarr.core.metadata.v2 import ArrayV2Metadata
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.errors import UnknownCodecError
from zarr.registry import get_codec_class
from zarr.storage import StorePath

from .codecs import SUPPORTED_DTYPES
from .errors import MzarrError, MzarrFormatError
from .ngff import DAMAGED, ImageInfo, metadata_error, parse_group_attributes, show

MAX_DOCUMENT_BYTES = 16 * 2**20
MAX_JSON_VALUES = 1_000_000
MAX_JSON_DEPTH = 100
MAX_ELEMENTS = 2**48
MAX_CHUNK_BYTES = 2**30
RANKS = (2, 3, 4)
MAX_CODECS = 16

_COUNTED_ABOVE = 2**20  # documents up to 1 MiB cannot be expensive to parse: no value count for them
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_MZARR_DTYPES = frozenset(d.name for d in SUPPORTED_DTYPES)
_V2_METADATA_NAMES = (".zgroup", ".zattrs", ".zarray", ".zmetadata", "zarr.json")
#: What zarr and the stores raise for a document they cannot make sense of (zarr's own errors are ValueErrors).
ZARR_METADATA_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, NotImplementedError, OverflowError)


# -- the raw documents --------------------------------------------------------------------------------------------
def json_limits_problem(raw: bytes) -> str | None:
    """Why a JSON document of this size/shape is refused (before parsing it), or None. Usable before writing."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        return f"{len(raw)} bytes, more than the {MAX_DOCUMENT_BYTES // 2**20} MiB a metadata document may hold"
    if len(raw) > _COUNTED_ABOVE:
        structure = _JSON_STRING.sub(b'""', raw)
        values = sum(structure.count(c) for c in (b",", b":", b"[")) + 1
        if values > MAX_JSON_VALUES:
            return f"about {values} JSON values, more than the {MAX_JSON_VALUES} a metadata document may hold"
    return None


def _too_deep(doc: Any, raw: bytes) -> bool:
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_JSON_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def parse_document(raw: bytes, where: str, key: str) -> dict[str, Any]:
    """One metadata document as a dict; any size, encoding, JSON or nesting problem is an MzarrFormatError."""
    problem = json_limits_problem(raw)
    if problem:
        raise metadata_error(where, key, problem)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise metadata_error(where, key, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise metadata_error(where, key, f"JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:  # json.JSONDecodeError, or an integer too long to convert
        raise metadata_error(where, key, f"not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(doc, dict):
        raise metadata_error(where, key, f"must be a JSON object, got {show(doc)}")
    if _too_deep(doc, raw):
        raise metadata_error(where, key, f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return doc


class Documents:
    """Bounded reads of the metadata documents of a .mzarr file (SQLite) or an OME-Zarr folder."""

    def __init__(self, store: Any, kind: str, path: Path):
        self.store, self.kind, self.path, self.where = store, kind, Path(path), str(path)

    def raw(self, key: str) -> bytes | None:
        """The stored bytes of ``key`` (None if absent); refused without reading them if above the size limit."""
        if self.kind == "sqlite":
            return self._sqlite(key)
        if self.kind == "directory":
            return self._file(key)
        raise AssertionError(self.kind)

    def load(self, key: str) -> dict[str, Any] | None:
        raw = self.raw(key)
        return None if raw is None else parse_document(raw, self.where, key)

    def _too_big(self, key: str, size: int) -> MzarrFormatError:
        return metadata_error(self.where, key, f"{size} bytes, more than the {MAX_DOCUMENT_BYTES // 2**20} MiB a metadata document may hold")

    def _sqlite(self, key: str) -> bytes | None:
        try:
            # typeof()/length() of a blob come from the record header: a 200 MB value is measured, not loaded.
            rows = self.store._execute(
                "SELECT typeof(value), CASE WHEN typeof(value) = 'blob' THEN length(value) END, "
                "CASE WHEN typeof(value) = 'blob' AND length(value) <= ? THEN value END FROM zarr WHERE key=?",
                (MAX_DOCUMENT_BYTES, key),
            )
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            # sqlite3 raises UnicodeDecodeError when a damaged schema puts non-UTF-8 bytes in its error message.
            # (The store translates SQLite errors into MzarrErrors itself; these are the ones it may not.)
            raise MzarrFormatError(
                f"{self.where}: {key}: cannot be read from the SQLite container ({exc}); the file is damaged or "
                "was not written by Mzarr: restore it from a backup"
            ) from None
        if not rows:
            return None
        kind, size, value = rows[0]
        if kind == "null":
            return None
        if kind != "blob":
            raise metadata_error(self.where, key, f"stored as SQLite {kind}, not as bytes")
        if value is None:
            raise self._too_big(key, size)
        return bytes(value)

    def _file(self, key: str) -> bytes | None:
        file = self.path / key
        try:
            info = os.stat(file)
            if not stat.S_ISREG(info.st_mode):
                raise metadata_error(self.where, key, "not a regular file")
            if info.st_size > MAX_DOCUMENT_BYTES:
                raise self._too_big(key, info.st_size)
            with open(file, "rb") as f:
                data = f.read(MAX_DOCUMENT_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise MzarrFormatError(f"{self.where}: {key}: cannot be read ({exc.strerror or exc})") from None
        if len(data) > MAX_DOCUMENT_BYTES:  # grew since the stat
            raise self._too_big(key, len(data))
        return data


# -- checks of a level's array document -------------------------------------------------------------------------
def _positive_ints(value: Any, rank: int | None = None) -> bool:
    return (
        isinstance(value, list)
        and (rank is None or len(value) == rank)
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value)
    )


def _check_shape(doc: dict, where: str, key: str, names: str | None) -> tuple[int, ...]:
    shape: Any = doc.get("shape")
    if not _positive_ints(shape):
        raise metadata_error(where, key, f"'shape' must be a list of positive integers, got {show(shape)}")
    if names is not None and len(shape) != len(names):
        raise metadata_error(
            where, key, f"'shape' {show(shape)} has {len(shape)} dimensions but the NGFF axes are {names!r} "
            f"({len(names)} dimensions)"
        )
    if len(shape) not in RANKS:
        raise metadata_error(where, key, f"'shape' {show(shape)} has {len(shape)} dimensions; Mzarr images have 2 to 4")
    if any(n > MAX_ELEMENTS for n in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise metadata_error(where, key, f"'shape' {show(shape)} holds more than 2^48 pixels, which no image has")
    return tuple(shape)


def _check_chunks(chunks: Any, shape: tuple[int, ...], itemsize: int, where: str, key: str, what: str) -> tuple[int, ...]:
    if not _positive_ints(chunks):
        raise metadata_error(where, key, f"{what} must be a list of positive integers, got {show(chunks)}")
    if len(chunks) != len(shape):
        raise metadata_error(
            where, key, f"{what} {show(chunks)} has {len(chunks)} dimensions but 'shape' {list(shape)} has {len(shape)}"
        )
    if any(c > MAX_ELEMENTS for c in chunks) or math.prod(chunks) * itemsize > MAX_CHUNK_BYTES:
        raise metadata_error(
            where, key, f"{what} {show(chunks)} makes chunks of more than {MAX_CHUNK_BYTES // 2**20} MiB decoded"
        )
    return tuple(chunks)


def _check_dimension_names(doc: dict, where: str, key: str, names: str, strict: bool) -> None:
    dims = doc.get("dimension_names")
    if dims is None:
        return
    if not isinstance(dims, list) or len(dims) != len(names) or not all(d is None or isinstance(d, str) for d in dims):
        raise metadata_error(
            where, key, f"'dimension_names' must be null or a list of {len(names)} names, got {show(dims)}"
        )
    # Mzarr finds the z/y/x axes of a chunk by these names (fast z-slices): they must agree with the NGFF axes.
    if dims != list(names) and (strict or any(d in ("c", "z", "y", "x") for d in dims)):
        raise metadata_error(where, key, f"'dimension_names' {show(dims)} do not match the NGFF axes {names!r}")


def _check_codec_list(codecs: Any, where: str, key: str) -> None:
    if not isinstance(codecs, list) or not 1 <= len(codecs) <= MAX_CODECS:
        raise metadata_error(where, key, f"'codecs' must be a list of 1 to {MAX_CODECS} codec objects, got {show(codecs)}")
    for i, codec in enumerate(codecs):
        if not isinstance(codec, dict) or not isinstance(codec.get("name"), str):
            raise metadata_error(where, key, f"'codecs[{i}]' must be an object with a 'name', got {show(codec)}")
        config = codec.get("configuration")
        if config is not None and not isinstance(config, dict):
            raise metadata_error(where, key, f"'codecs[{i}].configuration' must be an object, got {show(config)}")
        try:
            get_codec_class(codec["name"])
        except (UnknownCodecError, KeyError, ValueError, TypeError):
            raise metadata_error(
                where, key, f"'codecs[{i}].name' is {show(codec['name'])}, a codec this installation cannot decode"
            ) from None


def _zarr_dtype(spec: Any, zarr_format: int, where: str, key: str, field: str, shown: Any = None) -> np.dtype:
    from zarr.core.dtype import get_data_type_from_json

    try:
        native = get_data_type_from_json(spec, zarr_format=zarr_format).to_native_dtype()  # type: ignore[arg-type]
    except ZARR_METADATA_ERRORS:
        shown = spec if shown is None else shown
        raise metadata_error(where, key, f"'{field}' {show(shown)} is not a data type zarr knows") from None
    return np.dtype(native)


def check_array_v3(doc: dict, where: str, key: str, names: str, strict: bool) -> tuple[tuple[int, ...], str]:
    """Check a level's Zarr v3 ``zarr.json``; returns its shape and data type name."""
    if doc.get("zarr_format") != 3:
        raise metadata_error(where, key, f"'zarr_format' must be 3, got {show(doc.get('zarr_format'))}")
    if doc.get("node_type") != "array":
        raise metadata_error(where, key, f"'node_type' must be \"array\" for a pyramid level, got {show(doc.get('node_type'))}")
    shape = _check_shape(doc, where, key, names)
    data_type = doc.get("data_type")
    if strict and not (isinstance(data_type, str) and data_type in _MZARR_DTYPES):
        raise metadata_error(
            where, key, f"'data_type' {show(data_type)} is not one Mzarr stores ({', '.join(sorted(_MZARR_DTYPES))})"
        )
    itemsize = max(1, _zarr_dtype(data_type, 3, where, key, "data_type").itemsize)
    grid = doc.get("chunk_grid")
    if not isinstance(grid, dict) or grid.get("name") != "regular" or not isinstance(grid.get("configuration"), dict):
        raise metadata_error(where, key, f"'chunk_grid' must be a regular chunk grid, got {show(grid)}")
    _check_chunks(grid["configuration"].get("chunk_shape"), shape, itemsize, where, key, "'chunk_grid.configuration.chunk_shape'")
    encoding = doc.get("chunk_key_encoding")
    if not isinstance(encoding, dict) or encoding.get("name") not in ("default", "v2"):
        raise metadata_error(where, key, f"'chunk_key_encoding' must be the default or v2 encoding, got {show(encoding)}")
    _check_codec_list(doc.get("codecs"), where, key)
    if "fill_value" not in doc:
        raise metadata_error(where, key, "'fill_value' is missing")
    _check_dimension_names(doc, where, key, names, strict)
    attributes = doc.get("attributes", {})
    if not isinstance(attributes, dict):
        raise metadata_error(where, key, f"'attributes' must be an object, got {show(attributes)}")
    transformers = doc.get("storage_transformers")
    if transformers not in (None, []):  # zarr ignores them silently: the chunks would be read wrongly
        raise metadata_error(where, key, f"'storage_transformers' must be empty, got {show(transformers)}")
    return shape, str(data_type)


def check_array_v2(doc: dict, where: str, key: str, names: str | None) -> tuple[tuple[int, ...], str]:
    """Check a Zarr v2 ``.zarray`` (OME-Zarr 0.4 folders; legacy ZIPs, which have no NGFF axes: ``names`` None);
    returns its shape and dtype."""
    if doc.get("zarr_format") != 2:
        raise metadata_error(where, key, f"'zarr_format' must be 2, got {show(doc.get('zarr_format'))}")
    shape = _check_shape(doc, where, key, names)
    dtype = doc.get("dtype")
    itemsize = max(1, _zarr_dtype({"name": dtype, "object_codec_id": None}, 2, where, key, "dtype", dtype).itemsize)
    _check_chunks(doc.get("chunks"), shape, itemsize, where, key, "'chunks'")
    compressor = doc.get("compressor")
    if compressor is not None and not (isinstance(compressor, dict) and isinstance(compressor.get("id"), str)):
        raise metadata_error(where, key, f"'compressor' must be null or an object with an 'id', got {show(compressor)}")
    filters = doc.get("filters")
    if filters is not None and not (
        isinstance(filters, list) and len(filters) <= MAX_CODECS
        and all(isinstance(f, dict) and isinstance(f.get("id"), str) for f in filters)
    ):
        raise metadata_error(where, key, f"'filters' must be null or a list of objects with an 'id', got {show(filters)}")
    if doc.get("order", "C") not in ("C", "F"):
        raise metadata_error(where, key, f"'order' must be \"C\" or \"F\", got {show(doc.get('order'))}")
    return shape, str(doc.get("dtype"))


def _check_level_shapes(
    info: ImageInfo, shapes: list[tuple[int, ...]], dtypes: list[str], keys: list[str], where: str, strict: bool
) -> None:
    """Levels go from fine to coarse; in an Mzarr file each is level 0 divided by its factor (rounded up)."""
    for i in range(1, len(shapes)):
        if strict and dtypes[i] != dtypes[0]:
            raise metadata_error(where, keys[i], f"level {i} has data type {dtypes[i]!r} but level 0 has {dtypes[0]!r}")
        if strict and info.level_factors:
            expected = tuple(-(-n // f) for n, f in zip(shapes[0], info.level_factors[i]))
            if shapes[i] != expected:
                raise metadata_error(
                    where, keys[i], f"'shape' {list(shapes[i])} of level {i} does not match level 0 {list(shapes[0])} "
                    f"downsampled by {list(info.level_factors[i])} (expected {list(expected)})"
                )
        elif any(n > p for n, p in zip(shapes[i], shapes[i - 1])):
            raise metadata_error(
                where, keys[i], f"'shape' {list(shapes[i])} of level {i} is larger than level {i - 1} {list(shapes[i - 1])}"
            )


# -- opening ------------------------------------------------------------------------------------------------------
def open_image(store: Any, kind: str, path: Path, prefix: str = "") -> tuple[ImageInfo, list[Any], Any]:
    """The image info, the level arrays (zarr) and the root group of a .mzarr file or OME-Zarr folder, built from
    checked metadata: every problem is an MzarrFormatError naming the file and the document. ``prefix`` (e.g.
    ``labels/cells/``) opens the multiscale image of a child group instead (a label image; Zarr v3 only)."""
    docs = Documents(store, kind, path)
    where = docs.where
    root = docs.load(f"{prefix}zarr.json")
    if prefix:
        if root is None:
            raise metadata_error(where, f"{prefix}zarr.json", "the group's metadata is missing")
        return _open_v3(store, docs, root, prefix)
    if root is not None:
        return _open_v3(store, docs, root)
    if kind == "directory":
        zgroup = docs.load(".zgroup")
        if zgroup is not None or docs.raw(".zattrs") is not None:
            return _open_v2(store, docs, zgroup)
    raise metadata_error(where, "zarr.json", "the root group's metadata is missing")


def read_group_info(store: Any, kind: str, path: Path) -> ImageInfo:
    """The group's metadata (user attrs included) re-read with the open's bounds and checks, without the levels:
    for re-reading attrs() that other sessions may have changed since the open (zarr.open_group reads unbounded)."""
    docs = Documents(store, kind, path)
    root = docs.load("zarr.json")
    if root is not None:
        if root.get("zarr_format") != 3 or root.get("node_type") != "group":
            raise metadata_error(docs.where, "zarr.json", "not the root group's metadata any more")
        return parse_group_attributes(root.get("attributes", {}), docs.where, "zarr.json", "attributes")
    if kind == "directory" and docs.raw(".zgroup") is not None:
        return parse_group_attributes(docs.load(".zattrs") or {}, docs.where, ".zattrs", "")
    raise metadata_error(docs.where, "zarr.json", "the root group's metadata is missing")


def _build(where: str, key: str, build: Any) -> Any:
    """Run a zarr constructor on checked metadata; what zarr still refuses names the document."""
    try:
        return build()
    except MzarrError:
        raise
    except ZARR_METADATA_ERRORS as exc:
        raise metadata_error(where, key, f"zarr cannot read it ({type(exc).__name__}: {str(exc)[:300]})") from None


def _open_v3(store: Any, docs: Documents, root: dict[str, Any], prefix: str = "") -> tuple[ImageInfo, list[Any], Any]:
    where = docs.where
    root_key = f"{prefix}zarr.json"
    if root.get("zarr_format") != 3:
        raise metadata_error(where, root_key, f"'zarr_format' must be 3, got {show(root.get('zarr_format'))}")
    if root.get("node_type") != "group":
        raise metadata_error(where, root_key, f"'node_type' must be \"group\", got {show(root.get('node_type'))}")
    attributes = root.get("attributes", {})
    info = parse_group_attributes(attributes, where, root_key, "attributes")
    strict = isinstance(attributes.get("mzarr"), dict) and bool(attributes["mzarr"])
    names = info.storage_axes
    level_docs, keys, shapes, dtypes = [], [], [], []
    for i, p in enumerate(info.level_paths):
        key = f"{prefix}{p}/zarr.json"
        doc = docs.load(key)
        if doc is None:
            raise metadata_error(
                where, key, f"pyramid level {i} ({p!r}, named in {root_key} attributes) is missing"
            )
        shape, dtype = check_array_v3(doc, where, key, names, strict)
        level_docs.append(doc)
        keys.append(key)
        shapes.append(shape)
        dtypes.append(dtype)
    _check_level_shapes(info, shapes, dtypes, keys, where, strict)
    # The levels come from their own zarr.json; consolidated metadata (other tools write it) is only checked here,
    # because zarr parses it again whenever attrs() re-reads the group.
    group = _build(
        where, root_key, lambda: zarr.Group(AsyncGroup(GroupMetadata.from_dict(root), StorePath(store, prefix.rstrip("/"))))
    )
    arrays = [
        _build(where, key, lambda d=doc, p=p: zarr.Array(AsyncArray(ArrayV3Metadata.from_dict(d), StorePath(store, prefix + p))))
        for doc, key, p in zip(level_docs, keys, info.level_paths)
    ]
    return info, arrays, group


def _open_v2(store: Any, docs: Documents, zgroup: dict[str, Any] | None) -> tuple[ImageInfo, list[Any], Any]:
    """A Zarr v2 OME-Zarr (NGFF 0.4) folder."""
    where = docs.where
    if zgroup is None:
        raise metadata_error(where, ".zgroup", "the root group's metadata is missing")
    if zgroup.get("zarr_format") != 2:
        raise metadata_error(where, ".zgroup", f"'zarr_format' must be 2, got {show(zgroup.get('zarr_format'))}")
    attributes = docs.load(".zattrs") or {}
    info = parse_group_attributes(attributes, where, ".zattrs", "")
    names = info.storage_axes
    level_docs, keys, shapes, dtypes = [], [], [], []
    for i, p in enumerate(info.level_paths):
        key = f"{p}/.zarray"
        doc = docs.load(key)
        if doc is None:
            raise metadata_error(where, key, f"pyramid level {i} ({p!r}, named in .zattrs) is missing")
        shape, dtype = check_array_v2(doc, where, key, names)
        level_attrs = docs.load(f"{p}/.zattrs") or {}
        level_docs.append({**doc, "attributes": level_attrs})
        keys.append(key)
        shapes.append(shape)
        dtypes.append(dtype)
    _check_level_shapes(info, shapes, dtypes, keys, where, strict=False)
    group = _build(
        where, ".zgroup", lambda: zarr.Group(AsyncGroup(GroupMetadata.from_dict({**zgroup, "attributes": attributes}), StorePath(store)))
    )
    arrays = [
        _build(where, key, lambda d=doc, p=p: zarr.Array(AsyncArray(ArrayV2Metadata.from_dict(d), StorePath(store, p))))
        for doc, key, p in zip(level_docs, keys, info.level_paths)
    ]
    return info, arrays, group


def open_legacy(store: Any, path: Path) -> tuple[ImageInfo, list[Any]]:
    """A legacy Mzarr 0.0.x ZIP: its metadata documents are size-bounded and parsed safely first, then read by
    :func:`mzarr_core.legacy.read_legacy`; anything zarr still refuses is an MzarrFormatError naming the file."""
    from . import legacy

    where = str(path)
    try:
        with zipfile.ZipFile(path) as z:
            for entry in z.infolist():
                name = entry.filename
                if name.rsplit("/", 1)[-1] not in _V2_METADATA_NAMES:
                    continue
                if entry.file_size > MAX_DOCUMENT_BYTES:
                    raise metadata_error(
                        where, name, f"{entry.file_size} bytes, more than the {MAX_DOCUMENT_BYTES // 2**20} MiB a "
                        "metadata document may hold"
                    )
                with z.open(entry) as f:
                    doc = parse_document(f.read(MAX_DOCUMENT_BYTES + 1), where, name)
                if name.endswith(".zarray"):
                    check_array_v2(doc, where, name, None)
    except MzarrError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError, ValueError) as exc:
        raise MzarrFormatError(f"{where} is a ZIP file but cannot be read as an Mzarr 0.0.x image ({exc}); {DAMAGED}") from None
    try:
        return legacy.read_legacy(store, path)
    except MzarrError:
        raise
    except (*ZARR_METADATA_ERRORS, zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError) as exc:
        raise MzarrFormatError(
            f"{where} is a ZIP file but cannot be read as an Mzarr 0.0.x image ({type(exc).__name__}: {str(exc)[:300]}); "
            f"{DAMAGED}"
        ) from None
