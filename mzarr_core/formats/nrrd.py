"""NRRD (.nrrd with attached data, .nhdr with detached data files): a small in-house reader and writer.

Read: raw (memory-mapped, lazy), gzip, bzip2, ascii and hex encodings, either endianness, every integer and float
type; spacing from "space directions" (or "spacings"), direction and origin kept in ``attrs["geometry"]``; one
non-spatial axis (vector, RGB-color, ...) becomes the channel axis. Write: attached, gzip-encoded, little-endian,
channels as the fastest (vector) axis, geometry from the image.
Format: https://teem.sourceforge.net/nrrd/format.html
"""

from __future__ import annotations

import bz2
import gzip
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MzarrFormatError
from .base import SHORT_UNITS, UNITS, Source, head, native
from .selection import Counter, Progress, Selection, writable_dtype
from .geometry import NRRD_SPACES, SPACES, Geometry

HEADER_LIMIT = 1 << 20  # a header longer than 1 MiB is not an NRRD header
TYPES = {
    "int8": ("signed char", "int8", "int8_t"),
    "uint8": ("uchar", "unsigned char", "uint8", "uint8_t"),
    "int16": ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    "uint16": ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    "int32": ("int", "signed int", "int32", "int32_t"),
    "uint32": ("uint", "unsigned int", "uint32", "uint32_t"),
    "int64": ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
              "int64_t"),
    "uint64": ("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
    "float32": ("float",),
    "float64": ("double",),
}
DTYPES = {alias: np.dtype(name) for name, aliases in TYPES.items() for alias in aliases}
WRITE_TYPES = {"int8": "int8", "uint8": "uint8", "int16": "int16", "uint16": "uint16", "int32": "int32",
               "uint32": "uint32", "int64": "int64", "uint64": "uint64", "float32": "float", "float64": "double"}
SPATIAL_KINDS = ("domain", "space", "???", "none")  # any other kind (vector, RGB-color, list...) is not
ENCODINGS = {"raw": "raw", "txt": "text", "text": "text", "ascii": "text", "hex": "hex",
             "gz": "gzip", "gzip": "gzip", "bz2": "bzip2", "bzip2": "bzip2"}


def sniff(path: Path) -> bool:
    return head(path, 8).startswith(b"NRRD000")


class _Header:
    def __init__(self, path: Path):
        self.path = path
        self.fields: dict[str, str] = {}
        self.keys: dict[str, str] = {}
        self.data_files: list[Path] = []
        self.data_offset = 0
        self._parse()

    def error(self, what: str) -> MzarrFormatError:
        return MzarrFormatError(f"{self.path} is not a valid NRRD file: {what}")

    def _parse(self) -> None:
        with open(self.path, "rb") as fh:
            raw = fh.read(HEADER_LIMIT)
        end = raw.find(b"\n\n")
        end_crlf = raw.find(b"\r\n\r\n")
        if end_crlf >= 0 and (end < 0 or end_crlf < end):
            text, self.data_offset = raw[:end_crlf], end_crlf + 4
        elif end >= 0:
            text, self.data_offset = raw[:end], end + 2
        elif len(raw) < HEADER_LIMIT:  # a detached header may simply end
            text, self.data_offset = raw, len(raw)
        else:
            raise self.error("no blank line ends the header within its first MiB")
        try:
            lines = text.decode("latin-1").splitlines()
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
            raise self.error("the header is not text") from None
        if not lines or not re.fullmatch(r"NRRD000[1-5]", lines[0].strip()):
            raise self.error("the first line is not NRRD0001..NRRD0005")
        i = 1
        while i < len(lines):
            line = lines[i].rstrip("\r")
            i += 1
            if not line.strip() or line.startswith("#"):
                continue
            if ":=" in line and (": " not in line or line.index(":=") < line.index(": ")):
                k, v = line.split(":=", 1)
                self.keys[k] = v
                continue
            if ": " not in line:
                raise self.error(f"header line {line[:80]!r} is neither 'field: value' nor 'key:=value'")
            k, v = line.split(": ", 1)
            k = k.strip().lower()
            k = {"datafile": "data file", "lineskip": "line skip", "byteskip": "byte skip"}.get(k, k)
            self.fields[k] = v.strip()
            if k == "data file":
                self._data_files(v.strip(), lines[i:])
                if v.strip().split()[0] == "LIST":
                    break

    def _data_files(self, value: str, rest: list[str]) -> None:
        base = self.path.parent
        parts = value.split()
        if parts[0] == "LIST":
            self.data_files = [base / ln.strip() for ln in rest if ln.strip()]
        elif len(parts) >= 4 and "%" in parts[0]:
            try:
                lo, hi, step = int(parts[1]), int(parts[2]), int(parts[3])
            except ValueError:
                raise self.error(f"data file pattern {value!r} needs integer min max step") from None
            if step == 0 or (hi - lo) * step < 0:
                raise self.error(f"data file pattern {value!r} has a bad range")
            self.data_files = [base / (parts[0] % n) for n in range(lo, hi + (1 if step > 0 else -1), step)]
        else:
            self.data_files = [base / value]

    def need(self, field: str) -> str:
        if field not in self.fields:
            raise self.error(f"the required field '{field}' is missing")
        return self.fields[field]

    def ints(self, field: str) -> list[int]:
        try:
            return [int(v) for v in self.need(field).split()]
        except ValueError:
            raise self.error(f"'{field}: {self.fields[field]}' is not a list of integers") from None

    def floats(self, field: str) -> list[float]:
        try:
            return [float(v) for v in self.fields[field].split()]
        except ValueError:
            raise self.error(f"'{field}: {self.fields[field]}' is not a list of numbers") from None

    def vectors(self, field: str) -> list[list[float] | None]:
        out: list[list[float] | None] = []
        for token in re.findall(r"\([^)]*\)|none", self.fields[field]):
            if token == "none":
                out.append(None)
                continue
            try:
                out.append([float(v) for v in token.strip("()").split(",")])
            except ValueError:
                raise self.error(f"'{field}' holds a vector {token!r} that is not numbers") from None
        return out

    def strings(self, field: str) -> list[str]:
        value = self.fields[field]
        quoted = re.findall(r'"([^"]*)"', value)
        return quoted if quoted else value.split()


def read(path: Path) -> Source:
    h = _Header(path)
    type_name = h.need("type").strip().lower()
    if type_name == "block":
        raise h.error("type 'block' (opaque blocks) cannot be imported; Mzarr stores numbers")
    if type_name not in DTYPES:
        raise h.error(f"unknown type {type_name!r}")
    dtype = DTYPES[type_name]
    ndim = h.ints("dimension")[0] if h.ints("dimension") else 0
    sizes = h.ints("sizes")
    if ndim < 1 or len(sizes) != ndim or any(n < 1 for n in sizes):
        raise h.error(f"dimension {ndim} and sizes {sizes} do not agree")
    encoding = ENCODINGS.get(h.need("encoding").strip().lower())
    if encoding is None:
        raise h.error(f"unknown encoding {h.fields['encoding']!r} (raw, gzip, bzip2, ascii, hex are known)")
    if dtype.itemsize > 1 and encoding != "text":
        endian = h.need("endian").strip().lower()
        if endian not in ("little", "big"):
            raise h.error(f"endian must be little or big, not {endian!r}")
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")

    # which axes are spatial (NRRD lists axes fastest first)
    directions = h.vectors("space directions") if "space directions" in h.fields else None
    kinds = [k.lower() for k in h.strings("kinds")] if "kinds" in h.fields else None
    if directions is not None and len(directions) != ndim:
        raise h.error(f"'space directions' has {len(directions)} entries for {ndim} axes")
    if kinds is not None and len(kinds) != ndim:
        raise h.error(f"'kinds' has {len(kinds)} entries for {ndim} axes")
    if directions is not None:
        spatial = [d is not None for d in directions]
    elif kinds is not None:
        spatial = [k in SPATIAL_KINDS for k in kinds]
    else:
        spatial = [True] * ndim
    other = [i for i in range(ndim) if not spatial[i] and sizes[i] > 1]
    n_spatial = sum(spatial)
    if len(other) > 1 or not 2 <= n_spatial <= 3 or (kinds and any(kinds[i] == "time" for i in other)):
        raise MzarrFormatError(
            f"{path} is an NRRD of sizes {sizes} (kinds {kinds or 'not given'}); Mzarr imports 2D/3D images with at "
            "most one channel axis. Split the extra dimensions (e.g. time) first"
        )

    array = _data(h, path, dtype, sizes, encoding)  # C order: the NRRD axes reversed
    # drop length-1 non-spatial axes, move the channel axis last
    np_axes = list(range(ndim))[::-1]  # numpy axis j holds NRRD axis np_axes[j]
    drop = [j for j, a in enumerate(np_axes) if not spatial[a] and a not in other]
    if drop:
        array = array.reshape([n for j, n in enumerate(array.shape) if j not in drop])
        np_axes = [a for j, a in enumerate(np_axes) if j not in drop]
    if other:
        j = np_axes.index(other[0])
        array = np.moveaxis(array, j, -1)
        np_axes = np_axes[:j] + np_axes[j + 1 :] + [np_axes[j]]
    spatial_nrrd = [a for a in range(ndim) if spatial[a]]  # x, y, z
    axes = ("zyx" if n_spatial == 3 else "yx") + ("c" if other else "")

    spacing_xyz: tuple[float, ...] | None = None
    attrs: dict[str, Any] = {"source": path.name}
    space_name = h.fields.get("space", "").strip().lower() or None
    space = SPACES.get(space_name, space_name) if space_name else None
    if directions is not None:
        vectors = np.array([directions[a] for a in spatial_nrrd], float).T  # S x I
        if not np.all(np.isfinite(vectors)):
            raise h.error("'space directions' holds NaN or infinite values")
        origin = np.zeros(vectors.shape[0])
        if "space origin" in h.fields:
            found = h.vectors("space origin")
            if len(found) != 1 or found[0] is None or len(found[0]) != vectors.shape[0]:
                raise h.error(f"'space origin: {h.fields['space origin']}' does not match the space dimension")
            origin = np.asarray(found[0], float)
        geometry, spacing_xyz = Geometry.from_vectors(origin, vectors, space)
        attrs["geometry"] = geometry.to_attrs()
    elif "spacings" in h.fields:
        values = h.floats("spacings")
        if len(values) == ndim:
            picked = [values[a] for a in spatial_nrrd]
            if all(np.isfinite(v) and v > 0 for v in picked):
                spacing_xyz = tuple(float(v) for v in picked)
    unit = None
    if spacing_xyz is not None:
        names = h.strings("space units") if "space units" in h.fields else (
            [h.strings("units")[a] for a in spatial_nrrd if a < len(h.strings("units"))] if "units" in h.fields else []
        )
        unit = UNITS.get(names[0].strip().lower()) if names else None
        if unit is None and (space in ("LPS", "RAS", "LAS") or not names):
            unit = "millimeter"  # medical NRRDs (Slicer, ITK) are in mm unless they say otherwise
    if h.keys:
        attrs["nrrd_keys"] = {k: v for k, v in list(h.keys.items())[:1000]}
    for field in ("content", "kinds"):
        if field in h.fields:
            attrs[f"nrrd_{field}"] = h.fields[field]
    return Source(native(array), axes, tuple(spacing_xyz[::-1]) if spacing_xyz else None, unit, attrs)


def _data(h: _Header, path: Path, dtype: np.dtype, sizes: list[int], encoding: str) -> Any:
    count = int(np.prod(sizes, dtype=np.int64))
    shape = tuple(sizes[::-1])
    nbytes = count * dtype.itemsize
    files = h.data_files or [path]
    attached = not h.data_files
    for f in files:
        if not f.is_file():
            raise MzarrFormatError(f"{path}: the data file {f.name} it names does not exist (looked in {f.parent})")
    line_skip = int(h.fields.get("line skip", "0") or 0)
    byte_skip = int(h.fields.get("byte skip", "0") or 0)
    if byte_skip < -1 or line_skip < 0:
        raise h.error("'byte skip' must be -1 or more and 'line skip' 0 or more")
    if byte_skip == -1 and encoding != "raw":
        raise h.error("'byte skip: -1' is only allowed with raw encoding")

    def start_of(f: Path) -> int:
        offset = h.data_offset if attached else 0
        if line_skip:
            with open(f, "rb") as fh:
                fh.seek(offset)
                for _ in range(line_skip):
                    if not fh.readline():
                        raise h.error(f"'line skip: {line_skip}' skips past the end of {f.name}")
                offset = fh.tell()
        return offset

    if encoding == "raw" and len(files) == 1:
        f = files[0]
        size = f.stat().st_size
        offset = size - nbytes if byte_skip == -1 else start_of(f) + byte_skip
        if offset < 0 or offset + nbytes > size:
            raise MzarrFormatError(
                f"{path}: the data are {nbytes} bytes ({' x '.join(map(str, sizes))} {dtype.name}) but "
                f"{f.name} holds {max(0, size - max(offset, 0))} after the header: the file is truncated or the "
                "header is wrong"
            )
        return np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=shape)

    parts: list[bytes] = []
    for f in files:
        with open(f, "rb") as fh:
            fh.seek(start_of(f))
            raw = fh.read()
        try:
            if encoding == "gzip":
                raw = _gunzip(raw)
            elif encoding == "bzip2":
                raw = bz2.decompress(raw)
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise MzarrFormatError(f"{path}: the {encoding} data of {f.name} cannot be decompressed: {exc}") from None
        if encoding in ("text", "hex"):
            parts.append(raw)
        elif byte_skip == -1:
            parts.append(raw[len(raw) - nbytes // len(files):])
        else:
            parts.append(raw[byte_skip:])
    if encoding == "text":
        tokens = b" ".join(parts).replace(b",", b" ").split()
        try:
            values = (np.array(tokens, dtype=np.float64) if dtype.kind == "f"
                      else np.array([int(t) for t in tokens], dtype=dtype.newbyteorder("=")))
        except (ValueError, OverflowError):
            raise MzarrFormatError(f"{path}: the ascii data hold something that is not a number") from None
        if values.size != count:
            raise MzarrFormatError(f"{path}: {values.size} ascii values for {count} voxels")
        return values.astype(dtype.newbyteorder("=")).reshape(shape)
    data = b"".join(parts)
    if encoding == "hex":
        try:
            data = bytes.fromhex(data.decode("ascii"))
        except ValueError:
            raise MzarrFormatError(f"{path}: the hex data are not hexadecimal digits") from None
    if len(data) < nbytes:
        raise MzarrFormatError(
            f"{path}: the data are {nbytes} bytes ({' x '.join(map(str, sizes))} {dtype.name}) but only "
            f"{len(data)} could be read: the file is truncated or the header is wrong"
        )
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape)


def _gunzip(raw: bytes) -> bytes:
    """gzip members or a bare zlib stream (some writers use either for 'gzip')."""
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    return zlib.decompressobj(47).decompress(raw)


# -- writing --------------------------------------------------------------------------------------------------------
def _vector(values: Any) -> str:
    return "(" + ",".join(repr(float(v)) for v in values) + ")"


def write(sel: Selection, path: Path, progress: Progress | None = None, *, compresslevel: int = 4) -> None:
    """The selection as an attached, gzip-encoded NRRD (channels as the fastest, vector axis)."""
    dtype = writable_dtype(sel.dtype, tuple(WRITE_TYPES), "NRRD")
    spatial_xyz = sel.spatial[::-1]
    sizes = [sel.shape[sel.axes.index(a)] for a in spatial_xyz]
    lines = ["NRRD0004", "# Complete NRRD file format specification at:",
             "# http://teem.sourceforge.net/nrrd/format.html", "# written by mzarr"]
    lines.append(f"type: {WRITE_TYPES[dtype.name]}")
    ndim = len(sizes) + (1 if sel.channels is not None else 0)
    lines.append(f"dimension: {ndim}")
    g = sel.geometry
    spatial_lines: list[str] = []
    if sel.has_spacing or sel.source_geometry is not None:
        space = NRRD_SPACES.get(g.space or "") if len(g.origin) == 3 else None
        spatial_lines.append(f"space: {space}" if space else f"space dimension: {len(g.origin)}")
    kinds = ["domain"] * len(sizes)
    if sel.channels is not None:
        colour = sel.image.axes.endswith("c") and sel.channels in (3, 4) and sel.dtype == np.uint8
        kinds = [("RGB-color" if sel.channels == 3 else "RGBA-color") if colour else "vector"] + kinds
        sizes = [sel.channels] + sizes
    lines.append("sizes: " + " ".join(str(n) for n in sizes))
    lines += spatial_lines
    if spatial_lines:
        vectors = g.direction * np.asarray(sel.spacing[::-1], float)
        entries = [_vector(vectors[:, j]) for j in range(vectors.shape[1])]
        if sel.channels is not None:
            entries = ["none"] + entries
        lines.append("space directions: " + " ".join(entries))
    lines.append("kinds: " + " ".join(kinds))
    lines.append("endian: little")
    lines.append("encoding: gzip")
    if spatial_lines:
        short = SHORT_UNITS.get(sel.unit or "", sel.unit) if sel.has_spacing else None
        if short:
            lines.append("space units: " + " ".join(f'"{short}"' for _ in g.origin))
        lines.append("space origin: " + _vector(g.origin))
    header = ("\n".join(lines) + "\n\n").encode("latin-1")
    first = sel.spatial[0]
    slabs = list(sel.slabs(first))
    counter = Counter(progress, len(slabs))
    le = dtype.newbyteorder("<")
    with open(path, "wb") as raw:
        raw.write(header)
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0) as fh:
            for block in slabs:
                data = sel.read(block)
                if sel.channels is not None and not sel.axes.endswith("c"):
                    data = np.moveaxis(data, sel.axes.index("c"), -1)
                fh.write(np.ascontiguousarray(data, dtype=le).tobytes())
                counter.step()
