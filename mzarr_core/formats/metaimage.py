"""MetaImage (ITK): .mha (header and data in one file), .mhd (header) + .raw/.zraw data; a small in-house reader
and writer.

Read: raw data memory-mapped (lazy), zlib/gzip-compressed data (CompressedData = True) in memory, ASCII data, either
byte order, every MET_ integer and float type, ElementNumberOfChannels as the channel axis, spacing from
ElementSpacing, direction (TransformMatrix) and origin (Offset) kept in ``attrs["geometry"]`` (space LPS, as ITK).
Write: .mha, zlib-compressed, little-endian.
Format: https://itk.org/Wiki/ITK/MetaIO/Documentation
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MzarrFormatError
from .base import Source, head, native
from .selection import Counter, Progress, Selection, writable_dtype
from .geometry import Geometry

HEADER_LIMIT = 1 << 20
TYPES = {
    "MET_CHAR": "int8", "MET_UCHAR": "uint8", "MET_SHORT": "int16", "MET_USHORT": "uint16",
    "MET_INT": "int32", "MET_UINT": "uint32", "MET_LONG": "int32", "MET_ULONG": "uint32",
    "MET_LONG_LONG": "int64", "MET_ULONG_LONG": "uint64", "MET_FLOAT": "float32", "MET_DOUBLE": "float64",
}
WRITE_TYPES = {"int8": "MET_CHAR", "uint8": "MET_UCHAR", "int16": "MET_SHORT", "uint16": "MET_USHORT",
               "int32": "MET_INT", "uint32": "MET_UINT", "int64": "MET_LONG_LONG", "uint64": "MET_ULONG_LONG",
               "float32": "MET_FLOAT", "float64": "MET_DOUBLE"}
FIRST_KEYS = ("objecttype", "ndims", "comment", "objectsubtype", "transformtype", "name", "id")


def sniff(path: Path) -> bool:
    start = head(path, 64)
    found = re.match(rb"\s*([A-Za-z]+)\s*=", start)
    return found is not None and found.group(1).decode().lower() in FIRST_KEYS


class _Header:
    def __init__(self, path: Path):
        self.path = path
        self.fields: dict[str, str] = {}
        self.data_offset = 0
        with open(path, "rb") as fh:
            raw = fh.read(HEADER_LIMIT)
        pos = 0
        while True:
            nl = raw.find(b"\n", pos)
            line = raw[pos:] if nl < 0 else raw[pos:nl]
            nxt = len(raw) if nl < 0 else nl + 1
            text = line.decode("latin-1").strip()
            if text:
                if "=" not in text:
                    raise self.error(f"header line {text[:80]!r} is not 'Key = Value'")
                key, value = (s.strip() for s in text.split("=", 1))
                self.fields[key.lower()] = value
                if key.lower() == "elementdatafile":  # always the last header line
                    self.data_offset = nxt
                    break
            if nl < 0 or nxt >= HEADER_LIMIT:
                raise self.error("no ElementDataFile line ends the header")
            pos = nxt

    def error(self, what: str) -> MzarrFormatError:
        return MzarrFormatError(f"{self.path} is not a valid MetaImage file: {what}")

    def need(self, key: str) -> str:
        if key.lower() not in self.fields:
            raise self.error(f"the required key {key} is missing")
        return self.fields[key.lower()]

    def numbers(self, key: str, kind: type = float) -> list:
        try:
            return [kind(v) for v in self.fields[key.lower()].split()]
        except ValueError:
            raise self.error(f"{key} = {self.fields[key.lower()]} is not a list of numbers") from None

    def flag(self, key: str) -> bool:
        return self.fields.get(key.lower(), "False").strip().lower() in ("true", "1", "yes")


def read(path: Path) -> Source:
    h = _Header(path)
    if h.fields.get("objecttype", "Image").strip().lower() != "image":
        raise h.error(f"ObjectType = {h.fields['objecttype']} is not an Image")
    ndims = h.numbers("NDims", int)[0] if "ndims" in h.fields else 0
    if "dimsize" not in h.fields:
        raise h.error("the required key DimSize is missing")
    sizes = h.numbers("DimSize", int)
    if len(sizes) != ndims or not 2 <= ndims <= 3 or any(n < 1 for n in sizes):
        raise MzarrFormatError(
            f"{path}: NDims = {ndims} with DimSize = {sizes}; Mzarr imports 2D and 3D MetaImages "
            "(split 4D time series first)"
        )
    element = h.need("ElementType").strip().upper()
    if element not in TYPES:
        raise h.error(f"ElementType = {element} is not one of {', '.join(TYPES)}")
    dtype = np.dtype(TYPES[element])
    msb = h.flag("BinaryDataByteOrderMSB") or h.flag("ElementByteOrderMSB")
    dtype = dtype.newbyteorder(">" if msb else "<")
    channels = int(h.fields.get("elementnumberofchannels", "1") or 1)
    if channels < 1:
        raise h.error(f"ElementNumberOfChannels = {channels}")
    shape = tuple(sizes[::-1]) + ((channels,) if channels > 1 else ())
    array = _data(h, path, dtype, shape)

    spacing = h.numbers("ElementSpacing") if "elementspacing" in h.fields else (
        h.numbers("ElementSize") if "elementsize" in h.fields else None
    )
    if spacing is not None and (len(spacing) != ndims or not all(np.isfinite(s) and s > 0 for s in spacing)):
        raise h.error(f"ElementSpacing = {h.fields.get('elementspacing')} is not {ndims} positive numbers")
    origin_key = next((k for k in ("offset", "origin", "position") if k in h.fields), None)
    origin = np.asarray(h.numbers(origin_key), float) if origin_key else np.zeros(ndims)
    matrix_key = next((k for k in ("transformmatrix", "rotation", "orientation") if k in h.fields), None)
    if matrix_key:
        values = h.numbers(matrix_key)
        if len(values) != ndims * ndims:
            raise h.error(f"{matrix_key} has {len(values)} values for {ndims} dimensions")
        # ITK: the k-th group of NDims values is the direction of index axis k (a column of the direction matrix)
        direction = np.asarray(values, float).reshape(ndims, ndims).T
    else:
        direction = np.eye(ndims)
    if origin.shape != (ndims,) or not np.all(np.isfinite(origin)) or not np.all(np.isfinite(direction)):
        raise h.error("Offset and TransformMatrix must be NDims finite numbers")
    norms = np.linalg.norm(direction, axis=0)
    direction = direction / np.where(norms > 0, norms, 1.0)
    attrs: dict[str, Any] = {"source": path.name,
                             "geometry": Geometry(origin, direction, "LPS" if ndims == 3 else None).to_attrs()}
    if "anatomicalorientation" in h.fields:
        attrs["metaimage_orientation"] = h.fields["anatomicalorientation"]
    axes = ("zyx" if ndims == 3 else "yx") + ("c" if channels > 1 else "")
    return Source(native(array), axes, tuple(float(s) for s in spacing[::-1]) if spacing else None,
                  "millimeter" if spacing else None, attrs)


def _data(h: _Header, path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> Any:
    name = h.need("ElementDataFile").strip()
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    if name.upper() == "LOCAL":
        files, offset = [path], h.data_offset
    elif name.upper().startswith("LIST") or re.search(r"%\d*d", name):
        raise MzarrFormatError(
            f"{path}: ElementDataFile = {name} (one file per slice) is not supported; "
            "save the volume as one .mha or .mhd + .raw first"
        )
    else:
        files, offset = [path.parent / name], 0
    f = files[0]
    if not f.is_file():
        raise MzarrFormatError(f"{path}: the data file {f.name} it names does not exist (looked in {f.parent})")
    header_size = int(float(h.fields.get("headersize", "0") or 0))
    compressed = h.flag("CompressedData")
    binary = h.flag("BinaryData") if "binarydata" in h.fields else True
    size = f.stat().st_size
    if binary and not compressed:
        start = size - nbytes if header_size == -1 else offset + max(header_size, 0)
        if start < 0 or start + nbytes > size:
            raise MzarrFormatError(
                f"{path}: the data are {nbytes} bytes ({' x '.join(map(str, shape))} {dtype.name}) but {f.name} "
                f"holds {max(0, size - max(start, 0))} after the header: the file is truncated or the header is wrong"
            )
        return np.memmap(f, dtype=dtype, mode="r", offset=start, shape=shape)
    with open(f, "rb") as fh:
        fh.seek(offset + max(header_size, 0))
        raw = fh.read()
    if compressed:
        declared = int(float(h.fields.get("compresseddatasize", "0") or 0))
        if declared > 0:
            raw = raw[:declared]
        try:
            raw = zlib.decompressobj(47).decompress(raw)  # zlib or gzip wrapper, as MetaIO accepts
        except zlib.error as exc:
            raise MzarrFormatError(f"{path}: the compressed data of {f.name} cannot be decompressed: {exc}") from None
    if not binary:
        tokens = raw.split()
        try:
            values = (np.array(tokens, dtype=np.float64) if dtype.kind == "f"
                      else np.array([int(t) for t in tokens], dtype=dtype.newbyteorder("=")))
        except (ValueError, OverflowError):
            raise MzarrFormatError(f"{path}: the ASCII data hold something that is not a number") from None
        if values.size != count:
            raise MzarrFormatError(f"{path}: {values.size} ASCII values for {count} voxels")
        return values.astype(dtype.newbyteorder("=")).reshape(shape)
    if len(raw) < nbytes:
        raise MzarrFormatError(
            f"{path}: the data are {nbytes} bytes ({' x '.join(map(str, shape))} {dtype.name}) but only {len(raw)} "
            "could be read: the file is truncated or the header is wrong"
        )
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)


# -- writing --------------------------------------------------------------------------------------------------------
def _numbers(values: Any) -> str:
    return " ".join(repr(float(v)) for v in values)


def write(sel: Selection, path: Path, progress: Progress | None = None, *, compresslevel: int = 4) -> None:
    """The selection as a .mha (header and zlib-compressed data in one file; channels interleaved)."""
    dtype = writable_dtype(sel.dtype, tuple(WRITE_TYPES), "MetaImage")
    sizes = list(sel.sizes_full_xyz)  # x first; an axis the region dropped is kept with size 1
    n = len(sizes)
    g = sel.geometry_full
    if g.space is not None and n == 3:
        g = g.in_space("LPS")
    if g.direction.shape[0] != n:  # a world of another dimension than the image: keep the grid only
        g = Geometry(np.zeros(n), np.eye(n), None)
    lines = [
        "ObjectType = Image",
        f"NDims = {n}",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = True",
        "CompressedDataSize = " + "0" * 20,  # patched once the data are written
        "TransformMatrix = " + _numbers(g.direction.T.reshape(-1)),
        "Offset = " + _numbers(g.origin),
        "CenterOfRotation = " + _numbers(np.zeros(n)),
        "ElementSpacing = " + _numbers(sel.spacing_full_xyz),
        "DimSize = " + " ".join(str(s) for s in sizes),
    ]
    orientation = g.itk_orientation()
    if orientation is not None:  # informative only (readers use TransformMatrix): what ITK writes for this direction
        lines.insert(9, f"AnatomicalOrientation = {orientation}")
    if sel.channels is not None:
        lines.append(f"ElementNumberOfChannels = {sel.channels}")
    lines.append(f"ElementType = {WRITE_TYPES[dtype.name]}")
    lines.append("ElementDataFile = LOCAL")
    header = ("\n".join(lines) + "\n").encode("latin-1")
    size_at = header.index(b"CompressedDataSize = ") + len(b"CompressedDataSize = ")
    slabs = list(sel.slabs(sel.spatial[0]))
    counter = Counter(progress, len(slabs))
    le = dtype.newbyteorder("<")
    compressor = zlib.compressobj(compresslevel)
    written = 0
    with open(path, "wb") as fh:
        fh.write(header)
        for block in slabs:
            data = sel.read(block)
            if sel.channels is not None and not sel.axes.endswith("c"):
                data = np.moveaxis(data, sel.axes.index("c"), -1)
            out = compressor.compress(np.ascontiguousarray(data, dtype=le).tobytes())
            fh.write(out)
            written += len(out)
            counter.step()
        out = compressor.flush()
        fh.write(out)
        written += len(out)
        fh.seek(size_at)
        fh.write(f"{written:020d}".encode())
