"""3D brick layout by measurement (issue 8): which JPEG XL brick encoding should Mzarr write for volumes?

Every layout is measured directly with imagecodecs / numcodecs on real volumes (not through the library, so the
numbers are the codec and the brick geometry only):

* JPEG XL, lossless, one brick = ``frames`` JPEG XL frames; each frame is a mosaic of the brick's z-slices
  (``frames`` = brick depth: one slice per frame, today's layout; ``frames`` = 1: ONE mosaic frame per brick).
  Bricks 64³ (64, 16, 4 and 1 frames), 32³, 32x128x128 and 16x256x256 (one slice per frame, and one mosaic frame).
* JPEG XL "strip": ONE frame per brick holding the z-slices stacked vertically (64³ -> 4096x64), i.e. the brick
  simply reshaped, which zarr's stock imagecodecs codec already reads back (checked at start).
* JPEG XL "slabs" (format 4): a brick as 4 or 8 z-slabs, each its own one-frame strip stream, in a Zarr
  ``sharding_indexed`` shard (index at the end, crc32c checked on read): a z plane decodes one slab.
* Zarr's Blosc(zstd, clevel 5, bitshuffle) on 64³ chunks (numcodecs, the codec zarr uses), and raw 64³ bricks.

Measures: size (level 0, and with a 3D pyramid estimated as +1/7), encode MB/s, full-volume decode MB/s (one thread
and all cores), random 128³ patches (cold: every touched brick decoded), a 128³ window sliding with stride 64 (with
and without a cache of decoded bricks), and full z / y / x planes as a viewer reads them (z: one frame per brick
where the layout allows it).

    python benchmarks/bench_layout.py VOLUME [VOLUME ...]     # .nii/.nii.gz, .npy, .tif, or a folder of DICOM files
    MZARR_BENCH_VOLUMES=/data/a.nii.gz:/data/ct_dicom python benchmarks/bench_layout.py
    python benchmarks/bench_layout.py --quick                 # first volume only, fewer layouts, one round
    python benchmarks/bench_layout.py --files A.mzarr B.mzarr  # the same volume stored two ways, read through Mzarr
    python benchmarks/bench_layout.py --viewer-scroll A.mzarr  # a scripted z scroll in the viewer (offscreen)

Without volumes it falls back to nibabel's bundled test data, upsampled (labelled as such: not a real resolution).
Nothing is downloaded. Writes benchmarks/out/bench_layout.md and .json. See docs/BENCHMARKS.md, "3D brick layout".
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, markdown_table

MB = 1e6
PATCH = 128
STRIDE = 64
PYRAMID = 8 / 7  # a 3D pyramid halving every axis adds 1/8 + 1/64 + ... = 1/7 of level 0
NCPU = os.cpu_count() or 1
TODAY = "64³ 64 frames (today)"
BLOSC = "64³ Blosc-zstd5 bitshuffle"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# volumes
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Volume:
    name: str
    source: str
    data: np.ndarray  # (z, y, x) uint8 or uint16, as Mzarr would store it
    note: str = ""


def storage_dtype(a: np.ndarray) -> tuple[np.ndarray, str]:
    """The array JPEG XL would hold, as Mzarr stores it: uint8/uint16 as they are, int8/int16 offset to unsigned."""
    if a.dtype in (np.uint8, np.uint16):
        return a, ""
    if a.dtype == np.int8:
        return (a.astype(np.int16) + 128).astype(np.uint8), "int8 offset +128 to uint8 (as Mzarr stores int8)"
    if a.dtype == np.int16:
        return (a.astype(np.int32) + 32768).astype(np.uint16), "int16 offset +32768 to uint16 (as Mzarr stores int16)"
    if a.dtype.kind in "iu" and a.min() >= -32768 and a.max() <= 32767:
        return (a.astype(np.int32) + 32768).astype(np.uint16), f"{a.dtype} with int16 range, offset +32768 to uint16"
    raise SystemExit(f"volume dtype {a.dtype} is not stored as JPEG XL by Mzarr (zstd); give a uint8/uint16/int16 volume")


def load_dicom_dir(path: Path) -> tuple[np.ndarray, str]:
    """The largest series of a folder of DICOM files, slices sorted along the slice normal, stored values (no rescale)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    series: dict[Any, list[Any]] = collections.defaultdict(list)
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(f, force=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            ds = None
        if ds is None or "PixelData" not in ds:
            continue
        series[(ds.get("SeriesInstanceUID"), ds.Rows, ds.Columns)].append(ds)
    if not series:
        raise SystemExit(f"{path}: no DICOM images found")
    slices = max(series.values(), key=len)

    def position(ds: Any) -> float:
        try:
            o = np.array(ds.ImageOrientationPatient, float)
            return float(np.dot(np.cross(o[:3], o[3:]), np.array(ds.ImagePositionPatient, float)))
        except (AttributeError, TypeError, ValueError):
            return float(ds.get("InstanceNumber", 0))

    slices.sort(key=position)
    first = slices[0]
    desc = f"{first.get('Modality', '?')} '{first.get('SeriesDescription', '')}', {len(slices)} slices, " \
           f"stored {first.BitsStored}-bit values (no rescale)"
    return np.stack([s.pixel_array for s in slices]), desc


def load_volume(spec: str) -> Volume:
    path = Path(spec).expanduser()
    if path.is_dir():
        a, desc = load_dicom_dir(path)
    elif path.name.endswith((".nii", ".nii.gz")):
        import nibabel

        img = nibabel.load(str(path))
        a = np.asanyarray(img.dataobj)  # the stored integers (scaling, if any, is metadata)
        if a.ndim == 4:
            a = a[..., 0]
        a = np.ascontiguousarray(a.T)  # NIfTI (x, y, z) -> (z, y, x)
        desc = f"NIfTI {img.get_data_dtype()}, voxel {tuple(round(float(v), 3) for v in img.header.get_zooms()[:3])} mm"
    elif path.suffix == ".npy":
        a, desc = np.load(path), "npy"
    elif path.suffix in (".tif", ".tiff"):
        import tifffile

        a, desc = tifffile.imread(path), "TIFF"
    else:
        raise SystemExit(f"{spec}: give a .nii/.nii.gz, .npy, .tif or a folder of DICOM files")
    if a.ndim != 3:
        raise SystemExit(f"{spec}: need a 3D volume, got shape {a.shape}")
    a, conv = storage_dtype(np.ascontiguousarray(a))
    name = path.name.replace(".nii.gz", "").replace(".nii", "")
    return Volume(name, str(path), a, "; ".join(s for s in (desc, conv) if s))


def fallback_volumes() -> list[Volume]:
    """nibabel's bundled anatomical.nii (33x41x25 int16), trilinear upsampled 4x: a FALLBACK, not real data."""
    import nibabel
    from nibabel.testing import data_path
    from scipy import ndimage

    img = nibabel.load(os.path.join(data_path, "anatomical.nii"))
    a = np.asanyarray(img.dataobj).T.astype(np.float32)
    up = np.rint(ndimage.zoom(a, 4, order=1)).astype(np.int16)
    data, conv = storage_dtype(up)
    return [Volume("anatomical.nii x4 (FALLBACK)", "nibabel.testing data_path/anatomical.nii", data,
                   f"FALLBACK: nibabel's 33x41x25 int16 test volume, trilinear upsampled 4x per axis (smoother than "
                   f"any real scan); {conv}")]


# ---------------------------------------------------------------------------------------------------------------
# layouts: one brick <-> bytes
# ---------------------------------------------------------------------------------------------------------------
def mosaic_grid(n: int) -> tuple[int, int]:
    """Rows x columns of tiles for n slices in one frame (n a power of two): 64 -> 8x8, 32 -> 4x8, 16 -> 4x4."""
    rows = 1 << (int(math.log2(n)) // 2)
    return rows, n // rows


@dataclass(frozen=True)
class Layout:
    """How one brick is stored.

    JPEG XL: ``frames`` frames per brick, each holding brick_z / frames z-slices, either as a mosaic (tiles in a grid,
    row-major: 64 slices of 64x64 -> 512x512) or as a strip (slices stacked vertically: 64 slices of 64x64 -> 4096x64).
    A strip is exactly ``brick.reshape(frames, -1, x)``: the stock imagecodecs Zarr codec, which reshapes what it
    decodes to the chunk shape, reads it without any new codec. A mosaic needs a reordering codec to be read.
    """

    brick: tuple[int, int, int]
    codec: str  # "jxl", "blosc", "raw"
    frames: int = 1  # JPEG XL frames per brick
    effort: int = 0
    strip: bool = False
    slabs: bool = False  # the strip frames as separate one-frame streams in one Zarr shard (format 4)
    shuffle: str = "bitshuffle"  # Blosc: Zarr's usual bitshuffle (the peer), or byte "shuffle" (Mzarr's format 6)

    @property
    def family(self) -> str:
        bz, by, bx = self.brick
        shape = f"{bz}³" if bz == by == bx else f"{bz}x{by}x{bx}"
        if self.codec == "blosc":
            return f"{shape} Blosc-zstd5 {self.shuffle}" + (" (format 6)" if self.shuffle == "shuffle" else "")
        if self.codec == "raw":
            return f"{shape} raw"
        n = bz // self.frames
        if n == 1:
            return f"{shape} {self.frames} frames" + (" (today)" if self.brick == (64, 64, 64) else "")
        if self.slabs:
            return f"{shape} {self.frames} slabs of {n * by}x{bx}"
        if self.strip:
            what = "1 strip frame" if self.frames == 1 else f"{self.frames} strip frames of"
            return f"{shape} {what} {n * by}x{bx}"
        r, c = mosaic_grid(n)
        if self.frames == 1:
            return f"{shape} 1 mosaic frame {r * by}x{c * bx}"
        return f"{shape} {self.frames} frames of {r * by}x{c * bx}"

    @property
    def name(self) -> str:
        return self.family + (f" e{self.effort}" if self.codec == "jxl" else "")

    @property
    def slices_per_frame(self) -> int:
        return self.brick[0] // self.frames

    def to_frames(self, brick: np.ndarray) -> np.ndarray:
        _, by, bx = brick.shape
        if self.strip:
            return brick.reshape(self.frames, -1, bx)
        r, c = mosaic_grid(self.slices_per_frame)
        return brick.reshape(self.frames, r, c, by, bx).transpose(0, 1, 3, 2, 4).reshape(self.frames, r * by, c * bx)

    def from_frames(self, frames: np.ndarray) -> np.ndarray:
        bz, by, bx = self.brick
        if self.strip:
            return frames.reshape(self.brick)
        r, c = mosaic_grid(self.slices_per_frame)
        return frames.reshape(self.frames, r, by, c, bx).transpose(0, 1, 3, 2, 4).reshape(bz, by, bx)

    def encode(self, brick: np.ndarray) -> bytes:
        import imagecodecs

        if self.codec == "raw":
            return brick.tobytes()
        if self.codec == "blosc":
            return bytes(blosc_codec(self.shuffle).encode(brick))
        frames = self.to_frames(brick)
        if self.slabs:
            return shard_bytes([imagecodecs.jpegxl_encode(f, lossless=True, effort=self.effort, photometric="GRAY",
                                                          numthreads=1) for f in frames])
        return imagecodecs.jpegxl_encode(frames[0] if self.frames == 1 else frames, lossless=True, effort=self.effort,
                                         photometric="GRAY", numthreads=1)

    def decode(self, data: bytes, dtype: np.dtype) -> np.ndarray:
        import imagecodecs

        if self.codec == "raw":
            return np.frombuffer(data, dtype).reshape(self.brick).copy()
        if self.codec == "blosc":
            return np.frombuffer(blosc_codec(self.shuffle).decode(data), dtype).reshape(self.brick)
        if self.slabs:
            out = np.empty(self.brick, dtype)
            n = self.slices_per_frame
            for i, (offset, length) in enumerate(shard_pieces(data, self.frames)):
                out[i * n : (i + 1) * n] = imagecodecs.jpegxl_decode(data[offset : offset + length], numthreads=1).reshape(
                    n, *self.brick[1:])
            return out
        frames = imagecodecs.jpegxl_decode(data, numthreads=1)
        if self.slices_per_frame == 1:
            return frames.reshape(self.brick)
        return self.from_frames(frames)

    def frame_of(self, k: int) -> int:
        """Which decodable unit holds z-slice k of a brick: its JPEG XL frame (Blosc/raw: the whole brick, 0)."""
        return k // self.slices_per_frame if self.codec == "jxl" else 0

    def decode_frame(self, data: bytes, index: int, dtype: np.dtype) -> np.ndarray:
        """Frame ``index`` alone (libjxl skips the others; a one-frame mosaic is decoded whole); Blosc/raw: the brick."""
        import imagecodecs

        if self.codec != "jxl":
            return self.decode(data, dtype)
        if self.slabs:
            offset, length = shard_pieces(data, self.frames)[index]
            return imagecodecs.jpegxl_decode(data[offset : offset + length], numthreads=1)
        return imagecodecs.jpegxl_decode(data, index=index if self.frames > 1 else None, numthreads=1)

    def slice_from_frame(self, frame: np.ndarray, k: int) -> np.ndarray:
        """z-slice k of the brick out of the unit ``decode_frame`` returned for it."""
        if self.codec != "jxl":
            return frame[k]
        if self.slices_per_frame == 1:
            return frame
        _, by, bx = self.brick
        if self.strip:
            j = k % self.slices_per_frame
            return frame[j * by : (j + 1) * by]
        r, c = divmod(k % self.slices_per_frame, mosaic_grid(self.slices_per_frame)[1])
        return frame[r * by : (r + 1) * by, c * bx : (c + 1) * bx]

    def decode_z(self, data: bytes, k: int, dtype: np.dtype) -> np.ndarray:
        """Slice k of the brick: JPEG XL decodes only the frame holding it (the whole brick for Blosc/raw)."""
        return self.slice_from_frame(self.decode_frame(data, self.frame_of(k), dtype), k)


def shard_bytes(pieces: list[bytes]) -> bytes:
    """Inner chunks as a Zarr ``sharding_indexed`` shard: the pieces, then (offset, length) uint64 pairs + crc32c."""
    import google_crc32c

    index, offset = b"", 0
    for piece in pieces:
        index += offset.to_bytes(8, "little") + len(piece).to_bytes(8, "little")
        offset += len(piece)
    return b"".join(pieces) + index + google_crc32c.value(index).to_bytes(4, "little")


def shard_pieces(data: bytes, count: int) -> list[tuple[int, int]]:
    """Where each inner chunk of a shard is, its index validated as Mzarr reads it (checksum, bounds)."""
    from mzarr_core.guards import shard_index

    return [e for e in shard_index(data, count) if e is not None]


def blosc_codec(shuffle: str = "bitshuffle") -> Any:
    from numcodecs import Blosc

    return Blosc(cname="zstd", clevel=5, shuffle=Blosc.BITSHUFFLE if shuffle == "bitshuffle" else Blosc.SHUFFLE)


def all_layouts(efforts: list[int]) -> list[Layout]:
    """Every layout of the study.

    Effort 1 only for one-frame mosaics: libjxl's effort-1 fast lossless path encodes single frames only, and a
    multi-frame stream at effort 1 comes out byte-identical to effort 2 (checked by ``check_effort1_multiframe``).
    Effort 3 and above only for 64³ today / mosaic (slow encodes). One-frame strips: effort 1 for every brick
    shape, effort 2 for 64³.
    """
    out = [Layout((64, 64, 64), "blosc"), Layout((64, 64, 64), "blosc", shuffle="shuffle"), Layout((64, 64, 64), "raw")]
    shapes = [((64, 64, 64), (64, 16, 4, 1)), ((32, 32, 32), (32, 1)), ((32, 128, 128), (32, 1)), ((16, 256, 256), (16, 1))]
    for e in efforts:
        for brick, frame_counts in shapes:
            for f in frame_counts:
                if e == 1 and f > 1:
                    continue
                if e >= 3 and not (brick == (64, 64, 64) and f in (64, 1)):
                    continue
                out.append(Layout(brick, "jxl", f, e))
        for brick, _ in shapes:
            if e == 1 or (e == 2 and brick == (64, 64, 64)):
                out.append(Layout(brick, "jxl", 1, e, strip=True))
        if e == 1:  # slab bricks (format 4): effort 1 only (each slab a single frame on the fast path)
            out += [Layout((64, 64, 64), "jxl", f, 1, strip=True, slabs=True) for f in (4, 8)]
    return out


def check_strip_interop() -> str:
    """A one-frame strip chunk read back through a stock zarr array with imagecodecs' own Jpegxl codec."""
    import zarr
    from imagecodecs.zarr import Jpegxl
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync
    from zarr.storage import MemoryStore

    rng = np.random.default_rng(0)
    brick = rng.integers(0, 4096, (64, 64, 64)).astype(np.uint16)
    store = MemoryStore()
    arr = zarr.create_array(store=store, shape=brick.shape, chunks=brick.shape, dtype=brick.dtype, fill_value=0,
                            serializer=Jpegxl(lossless=True, effort=1, photometric="GRAY"), compressors=None)
    data = Layout((64, 64, 64), "jxl", 1, 1, strip=True).encode(brick)
    sync(store.set("c/0/0/0", default_buffer_prototype().buffer.from_bytes(data)))
    ok = np.array_equal(arr[...], brick)
    return ("a 64³ brick written as one 4096x64 strip frame reads back "
            + ("bit-exact" if ok else "WRONG") + " through zarr's stock imagecodecs_jpegxl codec (no new codec)")


def check_effort1_multiframe(vol: np.ndarray) -> str:
    """Are effort-1 and effort-2 streams of multi-frame bricks identical? (Why the study skips effort 1 for them.)"""
    import imagecodecs

    same, n = 0, 0
    for f in (64, 16, 4):
        lay = Layout((64, 64, 64), "jxl", f, 2)
        enc = Encoded(lay, vol)
        for key in central_bricks(enc)[:2]:
            frames = lay.to_frames(enc.brick_of(vol, key))
            a, b = (imagecodecs.jpegxl_encode(frames, lossless=True, effort=e, photometric="GRAY", numthreads=1)
                    for e in (1, 2))
            same += a == b
            n += 1
    return f"{same} of {n} sampled multi-frame 64³ bricks (64, 16 and 4 frames) encode byte-identically at effort 1 and 2"


QUICK_FAMILIES = ("64³ 64 frames", "64³ 4 frames", "64³ 1 mosaic", "64³ 1 strip", "64³ 4 slabs", "64³ 8 slabs",
                  "32³ 1 mosaic", "16x256x256 1 mosaic", "Blosc", "raw")
SCROLL = 32  # consecutive z planes a viewer scrolls through


# ---------------------------------------------------------------------------------------------------------------
# an encoded volume and its reads
# ---------------------------------------------------------------------------------------------------------------
class Encoded:
    def __init__(self, layout: Layout, vol: np.ndarray):
        self.layout, self.shape, self.dtype = layout, vol.shape, vol.dtype
        self.grid = tuple(-(-s // b) for s, b in zip(vol.shape, layout.brick))
        self.chunks: dict[tuple[int, int, int], bytes] = {}

    def brick_of(self, vol: np.ndarray, key: tuple[int, int, int]) -> np.ndarray:
        """The brick at ``key``, zero-padded to the full brick shape at the volume's edges (as zarr stores it)."""
        sl = tuple(slice(k * b, min(s, (k + 1) * b)) for k, b, s in zip(key, self.layout.brick, self.shape))
        part = vol[sl]
        if part.shape == self.layout.brick:
            return np.ascontiguousarray(part)
        brick = np.zeros(self.layout.brick, vol.dtype)
        brick[tuple(slice(0, n) for n in part.shape)] = part
        return brick

    def keys(self) -> list[tuple[int, int, int]]:
        return [(z, y, x) for z in range(self.grid[0]) for y in range(self.grid[1]) for x in range(self.grid[2])]

    def encode_all(self, vol: np.ndarray, pool: ThreadPoolExecutor) -> float:
        keys = self.keys()
        t0 = time.perf_counter()
        blobs = list(pool.map(lambda k: self.layout.encode(self.brick_of(vol, k)), keys))
        dt = time.perf_counter() - t0
        self.chunks = dict(zip(keys, blobs))
        return dt

    def size(self) -> int:
        return sum(len(b) for b in self.chunks.values())

    def touched(self, box: tuple[tuple[int, int], ...]) -> list[tuple[int, int, int]]:
        ranges = [range(lo // b, -(-hi // b)) for (lo, hi), b in zip(box, self.layout.brick)]
        return [(z, y, x) for z in ranges[0] for y in ranges[1] for x in ranges[2]]

    def decode(self, key: tuple[int, int, int]) -> np.ndarray:
        return self.layout.decode(self.chunks[key], self.dtype)

    def read_box(self, box: tuple[tuple[int, int], ...], pool: ThreadPoolExecutor | None = None,
                 cache: BrickCache | None = None) -> np.ndarray:
        """``volume[box]`` decoding every brick it touches (from ``cache`` when given)."""
        out = np.empty(tuple(hi - lo for lo, hi in box), self.dtype)

        def one(key: tuple[int, int, int]) -> None:
            brick = cache.get(key, self.decode) if cache is not None else self.decode(key)
            src, dst = [], []
            for (lo, hi), k, b in zip(box, key, self.layout.brick):
                a, z = max(lo, k * b), min(hi, (k + 1) * b)
                src.append(slice(a - k * b, z - k * b))
                dst.append(slice(a - lo, z - lo))
            out[tuple(dst)] = brick[tuple(src)]

        keys = self.touched(box)
        if pool is None:
            for key in keys:
                one(key)
        else:
            list(pool.map(one, keys))
        return out

    def read_plane(self, axis: int, index: int) -> np.ndarray:
        """A full plane through the volume, one thread: for z, one frame per brick where the layout allows it."""
        box = [(0, s) for s in self.shape]
        box[axis] = (index, index + 1)
        if axis != 0:
            return self.read_box(tuple(box)).squeeze(axis)
        bz, by, bx = self.layout.brick
        cz, k = divmod(index, bz)
        out = np.empty(self.shape[1:], self.dtype)
        for cy in range(self.grid[1]):
            for cx in range(self.grid[2]):
                tile = self.layout.decode_z(self.chunks[(cz, cy, cx)], k, self.dtype)
                h, w = min(by, self.shape[1] - cy * by), min(bx, self.shape[2] - cx * bx)
                out[cy * by : cy * by + h, cx * bx : cx * bx + w] = tile[:h, :w]
        return out


    def scroll_z(self, z0: int, n: int) -> None:
        """``n`` consecutive full z planes from ``z0``, one thread, keeping decoded frames (or bricks) while they serve.

        One slice per frame: every plane decodes one small frame per brick (nothing to reuse). A mosaic frame, or a
        Blosc/raw brick, is decoded once and serves every plane it holds.
        """
        bz, by, bx = self.layout.brick
        cache: dict[tuple[int, int], np.ndarray] = {}  # (cy, cx) -> decoded unit of the current layer
        layer = None
        out = np.empty(self.shape[1:], self.dtype)
        for z in range(z0, min(self.shape[0], z0 + n)):
            cz, k = divmod(z, bz)
            fi = self.layout.frame_of(k)
            if (cz, fi) != layer:
                cache.clear()
                layer = (cz, fi)
            for cy in range(self.grid[1]):
                for cx in range(self.grid[2]):
                    frame = cache.get((cy, cx))
                    if frame is None:
                        frame = cache[(cy, cx)] = self.layout.decode_frame(self.chunks[(cz, cy, cx)], fi, self.dtype)
                    tile = self.layout.slice_from_frame(frame, k)
                    h, w = min(by, self.shape[1] - cy * by), min(bx, self.shape[2] - cx * bx)
                    out[cy * by : cy * by + h, cx * bx : cx * bx + w] = tile[:h, :w]


class BrickCache:
    """LRU cache of decoded bricks holding at most ``capacity`` bricks; counts decodes."""

    def __init__(self, capacity: int):
        self.capacity, self.decodes = capacity, 0
        self.items: collections.OrderedDict[Any, np.ndarray] = collections.OrderedDict()

    def get(self, key: Any, decode: Callable[[Any], np.ndarray]) -> np.ndarray:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        self.decodes += 1
        value = decode(key)
        if self.capacity > 0:
            self.items[key] = value
            if len(self.items) > self.capacity:
                self.items.popitem(last=False)
        return value


# ---------------------------------------------------------------------------------------------------------------
# access patterns (the same for every layout of a volume)
# ---------------------------------------------------------------------------------------------------------------
def random_patches(shape: tuple[int, ...], n: int, seed: int) -> list[tuple[tuple[int, int], ...]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        box = []
        for s in shape:
            e = min(PATCH, s)
            lo = int(rng.integers(0, s - e + 1))
            box.append((lo, lo + e))
        out.append(tuple(box))
    return out


def sliding_region(shape: tuple[int, ...], edge: int) -> tuple[tuple[int, int], ...]:
    """A central box of ``edge`` per axis (the whole axis if shorter), its start a multiple of the stride."""
    box = []
    for s in shape:
        e = min(edge, s)
        lo = ((s - e) // 2) // STRIDE * STRIDE
        box.append((lo, lo + e))
    return tuple(box)


def sliding_windows(region: tuple[tuple[int, int], ...]) -> list[tuple[tuple[int, int], ...]]:
    """128³ windows with stride 64 over ``region``, x fastest (a training data loader's scan order)."""
    starts = []
    for lo, hi in region:
        e = min(PATCH, hi - lo)
        starts.append([(a, a + e) for a in range(lo, hi - e + 1, STRIDE)])
    return [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]


def slab_capacity(layout: Layout, region: tuple[tuple[int, int], ...]) -> int:
    """Bricks in one slab (window + stride deep) of the region: enough for every brick to be decoded once."""
    n = 1
    for i, ((lo, hi), b) in enumerate(zip(region, layout.brick)):
        extent = min(hi - lo, PATCH + STRIDE) if i == 0 else hi - lo
        n *= -(-extent // b) + 1
    return n


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# ---------------------------------------------------------------------------------------------------------------
# one volume
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    layout: Layout
    size: int = 0
    raw_padded: int = 0
    enc_all_s: float = float("inf")
    enc1_mbs: float = 0.0
    full1_s: float = float("inf")
    fulln_s: float = float("inf")
    patch1: list[float] = field(default_factory=list)
    patchn: list[float] = field(default_factory=list)
    slide_nocache_s: float = float("inf")
    slide_cache_s: float = float("inf")
    slide_decodes: tuple[int, int] = (0, 0)
    planes: list[float] = field(default_factory=lambda: [float("inf")] * 3)
    scroll_s: float = float("inf")


def central_bricks(enc: Encoded) -> list[tuple[int, int, int]]:
    """Bricks covering the central 128x256x256 box (whole bricks): the single-thread encode sample."""
    region = sliding_region(enc.shape, 256)
    z0, z1 = region[0]
    zc = (z0 + z1) // 2
    region = ((max(0, zc - 64), min(enc.shape[0], zc + 64)),) + region[1:]
    return enc.touched(region)


def run_volume(vol: Volume, layouts: list[Layout], rounds: int, n_patches: int, pool: ThreadPoolExecutor) -> dict[str, Any]:
    data = vol.data
    log(f"{vol.name}: {data.shape} {data.dtype}, {data.nbytes / MB:.1f} MB")
    results: list[Result] = []
    encs: list[Encoded] = []
    for layout in layouts:
        enc = Encoded(layout, data)
        res = Result(layout)
        res.enc_all_s = enc.encode_all(data, pool)
        res.size = enc.size()
        res.raw_padded = math.prod(enc.grid) * math.prod(layout.brick) * data.dtype.itemsize
        sample = central_bricks(enc)
        bricks = [enc.brick_of(data, k) for k in sample]
        t = best_of(lambda layout=layout, bricks=bricks: [layout.encode(b) for b in bricks], 1 if layout.effort >= 3 else 2)
        res.enc1_mbs = sum(b.nbytes for b in bricks) / MB / t
        back = enc.read_box(tuple((0, s) for s in data.shape), pool)
        if not np.array_equal(back, data):
            raise AssertionError(f"{layout.name}: decoded volume differs from the original")
        planes_ok = all(
            np.array_equal(enc.read_plane(ax, data.shape[ax] // 2), np.take(data, data.shape[ax] // 2, axis=ax))
            for ax in range(3))
        if not planes_ok:
            raise AssertionError(f"{layout.name}: plane read differs from the original")
        log(f"  {layout.name}: {res.size / MB:.2f} MB, encode {data.nbytes / MB / res.enc_all_s:.0f} MB/s ({NCPU} threads)")
        results.append(res)
        encs.append(enc)

    full = tuple((0, s) for s in data.shape)
    patches = random_patches(data.shape, n_patches, seed=8)
    region = sliding_region(data.shape, 256)
    windows = sliding_windows(region)
    mids = [s // 2 for s in data.shape]
    scroll_z0 = max(0, min(data.shape[0] - SCROLL, data.shape[0] // 2 // 64 * 64))
    for r in range(rounds):
        log(f"  round {r + 1}/{rounds}")
        for enc, res in zip(encs, results):
            res.full1_s = min(res.full1_s, best_of(lambda enc=enc: enc.read_box(full), 1))
            res.fulln_s = min(res.fulln_s, best_of(lambda enc=enc: enc.read_box(full, pool), 1))
            p1 = [best_of(lambda b=b, enc=enc: enc.read_box(b), 1) for b in patches]
            pn = [best_of(lambda b=b, enc=enc: enc.read_box(b, pool), 1) for b in patches]
            res.patch1 = p1 if not res.patch1 else [min(a, b) for a, b in zip(res.patch1, p1)]
            res.patchn = pn if not res.patchn else [min(a, b) for a, b in zip(res.patchn, pn)]
            for which, cap in (("nocache", 0), ("cache", slab_capacity(enc.layout, region))):
                cache = BrickCache(cap)
                t0 = time.perf_counter()
                for w in windows:
                    enc.read_box(w, cache=cache)
                dt = time.perf_counter() - t0
                if which == "nocache":
                    res.slide_nocache_s = min(res.slide_nocache_s, dt)
                    nocache_decodes = cache.decodes
                else:
                    res.slide_cache_s = min(res.slide_cache_s, dt)
                    res.slide_decodes = (nocache_decodes, cache.decodes)
            for ax in range(3):
                res.planes[ax] = min(res.planes[ax], best_of(lambda ax=ax, enc=enc: enc.read_plane(ax, mids[ax]), 1))
            res.scroll_s = min(res.scroll_s, best_of(lambda enc=enc: enc.scroll_z(scroll_z0, SCROLL), 1))
    return {"volume": vol, "results": results, "n_windows": len(windows), "region": region, "scroll_z0": scroll_z0,
            "effort1_note": check_effort1_multiframe(data),
            "patches": patches, "n_bricks": {r.layout.name: math.prod(e.grid) for r, e in zip(results, encs)}}


# ---------------------------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------------------------
def fmt(v: float, digits: int = 1) -> str:
    return f"{v:.{digits}f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else ""


def summarise(res: Result, vol: np.ndarray) -> dict[str, float]:
    nb = vol.nbytes
    return {
        "size_mb": res.size / MB,
        "size_pct": 100 * res.size / nb,
        "size_pyr_mb": res.size * PYRAMID / MB,
        "enc1_mbs": res.enc1_mbs,
        "encn_mbs": nb / MB / res.enc_all_s,
        "full1_mbs": nb / MB / res.full1_s,
        "fulln_mbs": nb / MB / res.fulln_s,
        "patch1_ms": 1e3 * statistics.median(res.patch1),
        "patchn_ms": 1e3 * statistics.median(res.patchn),
        "slide_nocache_ms": 1e3 * res.slide_nocache_s,
        "slide_cache_ms": 1e3 * res.slide_cache_s,
        "z_ms": 1e3 * res.planes[0],
        "y_ms": 1e3 * res.planes[1],
        "x_ms": 1e3 * res.planes[2],
        "scroll_ms": 1e3 * res.scroll_s / min(SCROLL, vol.shape[0]),
    }


def volume_tables(run: dict[str, Any]) -> tuple[str, dict[str, dict[str, float]]]:
    vol: Volume = run["volume"]
    results: list[Result] = run["results"]
    s = {r.layout.name: summarise(r, vol.data) for r in results}
    blosc = s[BLOSC]
    today = s.get(TODAY + " e2") or next((v for k, v in s.items() if k.startswith(TODAY)), blosc)
    nw = run["n_windows"]
    rows_a, rows_b = [], []
    for r in results:
        m = s[r.layout.name]
        name = f"**{r.layout.name}**" if r.layout.name.startswith(TODAY) and r.layout.effort == 2 else r.layout.name
        rows_a.append([
            name, fmt(m["size_mb"], 2), fmt(m["size_pct"]), fmt(m["size_pyr_mb"], 2), ratio(m["size_mb"], blosc["size_mb"]),
            ratio(m["size_mb"], today["size_mb"]), fmt(m["enc1_mbs"], 0), fmt(m["encn_mbs"], 0), fmt(m["full1_mbs"], 0),
            fmt(m["fulln_mbs"], 0), ratio(blosc["fulln_mbs"], m["fulln_mbs"]), ratio(today["fulln_mbs"], m["fulln_mbs"]),
        ])
        rows_b.append([
            name, fmt(m["patch1_ms"]), fmt(m["patchn_ms"]), ratio(m["patch1_ms"], blosc["patch1_ms"]),
            ratio(m["patchn_ms"], blosc["patchn_ms"]), ratio(m["patch1_ms"], today["patch1_ms"]),
            fmt(m["slide_nocache_ms"] / nw), fmt(m["slide_cache_ms"] / nw), ratio(m["slide_cache_ms"], blosc["slide_cache_ms"]),
            ratio(m["slide_cache_ms"], today["slide_cache_ms"]), fmt(m["z_ms"]), fmt(m["scroll_ms"]), fmt(m["y_ms"]),
            fmt(m["x_ms"]), ratio(m["z_ms"], blosc["z_ms"]),
        ])
    table_a = markdown_table(
        ["layout", "L0 MB", "L0 % raw", "MB incl. pyramid (est.)", "size / Blosc", "size / today", "encode MB/s 1 thr",
         f"encode MB/s {NCPU} thr", "full read MB/s 1 thr", f"full read MB/s {NCPU} thr", "full read time / Blosc",
         "full read time / today"], rows_a)
    table_b = markdown_table(
        ["layout", "patch 128³ ms 1 thr", f"patch ms {NCPU} thr", "patch / Blosc 1 thr", f"patch / Blosc {NCPU} thr",
         "patch / today", "window ms no cache", "window ms cached", "cached / Blosc", "cached / today",
         "z plane ms (cold)", "z scroll ms/plane", "y plane ms", "x plane ms", "z plane / Blosc"], rows_b)
    return table_a + "\n\n" + table_b, s


def goals_table(runs: list[dict[str, Any]], summaries: list[dict[str, dict[str, float]]]) -> str:
    """Issue 8 goals for 3D: size <= 0.75x Blosc (pyramid incl.), patch <= 3x, cached sliding window <= 1.5x."""
    names = [r.layout.name for r in runs[0]["results"] if r.layout.codec == "jxl"]
    rows = []
    for name in names:
        row = [name]
        met_all = True
        for s in summaries:
            if name not in s:
                row += ["", "", "", ""]
                continue
            m, b = s[name], s[BLOSC]
            size, patch, slide = m["size_mb"] / b["size_mb"], m["patch1_ms"] / b["patch1_ms"], m["slide_cache_ms"] / b["slide_cache_ms"]
            met = [size <= 0.75, patch <= 3.0, slide <= 1.5]
            met_all &= all(met)
            row += [f"{size:.2f}" + ("" if met[0] else " ✗"), f"{patch:.1f}" + ("" if met[1] else " ✗"),
                    f"{slide:.1f}" + ("" if met[2] else " ✗"), f"{m['z_ms']:.0f}"]
        row.append("all" if met_all else "")
        rows.append(row)
    header = ["layout"]
    for run in runs:
        v = run["volume"].name
        header += [f"{v}: size", "patch", "window", "z plane ms"]
    header.append("all goals, every volume")
    return markdown_table(header, rows)


def machine_line() -> str:
    import imagecodecs
    import numcodecs

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"Machine: {cpu}, {NCPU} cores (shared with other jobs); Python {sys.version.split()[0]}, "
            f"imagecodecs {imagecodecs.__version__} (libjxl {imagecodecs.jpegxl_version()}), numcodecs {numcodecs.__version__}; "
            f"{datetime.date.today().isoformat()}")


# ---------------------------------------------------------------------------------------------------------------
# through the library: the same volume stored two ways (e.g. format 2 strip vs format 4 slab bricks)
# ---------------------------------------------------------------------------------------------------------------
def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall s, CPU s of this process: every thread) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def level0_bytes(path: Path) -> int:
    """The stored bytes of level 0's chunks of a .mzarr file (plain sqlite3, read-only)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{path.resolve().as_posix()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT sum(length(value)) FROM zarr WHERE key LIKE '0/c/%'").fetchone()[0] or 0)
    finally:
        conn.close()


def measure_file(path: Path, n_bricks: int, n_patches: int) -> dict[str, float]:
    """Cold reads of level 0 through Mzarr, the decoded-chunk cache emptied before each: full z / y / x planes
    through the middle (decoded on the file's pool), a z scroll of SCROLL planes from a brick boundary, whole
    bricks one by one (one thread) and 128³ patches."""
    from mzarr import Mzarr

    out: dict[str, float] = {}
    with Mzarr(path) as m:
        level = m.levels[0]
        nz, ny, nx = level.shape
        out["l0_mb"] = level0_bytes(path) / MB
        reads = {"z": lambda: level.z_plane(nz // 2), "y": lambda: level[:, ny // 2, :], "x": lambda: level[:, :, nx // 2]}
        for axis, read in reads.items():
            m.clear_cache()
            out[f"{axis}_wall_ms"], out[f"{axis}_cpu_ms"] = (1e3 * t for t in _timed(read))
        z0 = nz // 2 // 64 * 64
        m.clear_cache()
        wall, cpu = _timed(lambda: [level.z_plane(z) for z in range(z0, min(nz, z0 + SCROLL))])
        out["scroll_wall_ms"], out["scroll_cpu_ms"] = 1e3 * wall / SCROLL, 1e3 * cpu / SCROLL
        grid = level.chunk_grid
        rng = np.random.default_rng(3)
        bricks = [tuple(int(rng.integers(0, g)) for g in grid) for _ in range(n_bricks)]
        m.clear_cache()
        wall, cpu = _timed(lambda: [level.read_chunk(b) for b in bricks])
        out["brick_wall_ms"], out["brick_cpu_ms"] = 1e3 * wall / n_bricks, 1e3 * cpu / n_bricks
        patches = random_patches(level.shape, n_patches, seed=8)
        times = []
        for box in patches:
            m.clear_cache()
            times.append(_timed(lambda box=box: level[tuple(slice(lo, hi) for lo, hi in box)]))
        out["patch_wall_ms"] = 1e3 * statistics.median(t[0] for t in times)
        out["patch_cpu_ms"] = 1e3 * statistics.median(t[1] for t in times)
    return out


def run_files(paths: list[Path], rounds: int, n_bricks: int, n_patches: int) -> str:
    """A table of :func:`measure_file` for each file (best of ``rounds`` interleaved rounds)."""
    from mzarr import Mzarr

    best: dict[Path, dict[str, float]] = {}
    for r in range(rounds):
        for path in paths:
            log(f"round {r + 1}/{rounds}: {path}")
            got = measure_file(path, n_bricks, n_patches)
            best[path] = got if path not in best else {k: min(v, best[path][k]) for k, v in got.items()}
    rows = []
    ref = best[paths[0]]
    for path in paths:
        with Mzarr(path) as m:
            codec, shape = m.codec or {}, m.shape
        b = best[path]
        rows.append([f"{path.name} ({codec.get('bricks', 'frames') if codec.get('name') == 'jpegxl' else codec.get('name')})", fmt(b["l0_mb"], 1), ratio(b["l0_mb"], ref["l0_mb"]),
                     *(f"{fmt(b[f'{a}_wall_ms'])} / {fmt(b[f'{a}_cpu_ms'])}" for a in ("z", "y", "x")),
                     f"{fmt(b['scroll_wall_ms'], 2)} / {fmt(b['scroll_cpu_ms'], 2)}",
                     f"{fmt(b['brick_wall_ms'], 2)} / {fmt(b['brick_cpu_ms'], 2)}",
                     f"{fmt(b['patch_wall_ms'])} / {fmt(b['patch_cpu_ms'])}"])
    table = markdown_table(
        ["file", "level 0 MB", "size / first", "cold z plane ms wall / CPU", "cold y plane", "cold x plane",
         f"z scroll ms/plane ({SCROLL} planes)", "whole brick ms (1 thread)", "128³ patch ms"], rows)
    return (f"Level 0 of {' x '.join(map(str, shape))}, read through Mzarr on {NCPU} cores, cache emptied before "
            f"each read; best of {rounds} interleaved rounds; {n_bricks} random bricks, {n_patches} patches. "
            f"Load average (1 min) at the end {os.getloadavg()[0]:.1f}.\n\n" + table)


def viewer_scroll(path: Path, steps: int = 48) -> dict[str, Any]:
    """A z scroll in the real viewer (1920x1080, fitted, offscreen): ``steps`` steps of one plane from z 128 and
    from z 320, cache emptied at each start; seconds from each step until the new plane is on screen and sharp (the
    viewer's read-ahead then finishes before the next step, as for a user scrolling at a steady pace)."""
    from bench_viewer import Pump, open_window

    app, w = open_window(str(path), 1920, 1080)
    pump = Pump(app, lambda: w.view.viewport().repaint())
    assert w.open_path(str(path)), w.last_error
    w.slicing.set_axis("z")
    w.view.fit()
    idle = lambda: w.view.complete and not w.view._timer.isActive() and w.view.is_idle()  # noqa: E731
    pump.until(idle)
    times = []
    for start in (128, 320):
        w.slicing.set_index(start)
        pump.until(idle)
        w.doc.clear_cache()
        for z in range(start + 1, start + 1 + steps):
            t0 = time.perf_counter()
            w.slicing.set_index(z)
            w.view._update()
            pump.until(lambda: w.view.complete)
            times.append(time.perf_counter() - t0)
            pump.until(idle)
    level = w.view.level
    w.close()
    return {"file": path.name, "level": level, "steps": len(times), "first_s": [times[0], times[steps]],
            "median_s": statistics.median(times), "mean_s": statistics.mean(times), "max_s": max(times)}


# ---------------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("volumes", nargs="*", help="volume files/folders (default: $MZARR_BENCH_VOLUMES, else nibabel fallback)")
    p.add_argument("--quick", action="store_true", help="first volume, main layouts, efforts 1-2, one round")
    p.add_argument("--efforts", help="JPEG XL efforts (default 1,2,3; 3 only for 64³ today/mosaic; quick 1,2)")
    p.add_argument("--rounds", type=int, help="interleaved measuring rounds, best kept (default 2; quick 1)")
    p.add_argument("--patches", type=int, help="random 128³ patches (default 8; quick 6)")
    p.add_argument("--layouts", help="comma list of substrings: keep layouts whose name contains one (Blosc always kept)")
    p.add_argument("--out", type=Path, default=OUT, help="output folder (default benchmarks/out)")
    p.add_argument("--files", nargs="+", type=Path, help="instead: .mzarr files of one volume, read through Mzarr")
    p.add_argument("--bricks", type=int, default=64, help="--files: random whole bricks decoded (default 64)")
    p.add_argument("--viewer-scroll", type=Path, metavar="FILE", help="instead: a scripted z scroll in the viewer")
    args = p.parse_args(argv)
    if args.viewer_scroll:
        print(json.dumps(viewer_scroll(args.viewer_scroll)))
        return 0
    if args.files:
        print(run_files(args.files, args.rounds or 2, args.bricks, args.patches or 6))
        return 0

    import numcodecs.blosc

    numcodecs.blosc.use_threads = False  # contextual Blosc calls: one thread each, GIL released, like imagecodecs
    numcodecs.blosc.set_nthreads(1)

    specs = args.volumes or [s for s in os.environ.get("MZARR_BENCH_VOLUMES", "").split(os.pathsep) if s]
    if args.quick and specs:
        specs = specs[:1]
    vols = [load_volume(s) for s in specs] if specs else fallback_volumes()
    efforts = [int(e) for e in (args.efforts or ("1,2" if args.quick else "1,2,3")).split(",")]
    rounds = args.rounds or (1 if args.quick else 2)
    n_patches = args.patches or (6 if args.quick else 8)
    layouts = all_layouts(efforts)
    if args.quick:
        layouts = [lay for lay in layouts if any(f in lay.name for f in QUICK_FAMILIES)]
    if args.layouts:
        keep = [s.strip() for s in args.layouts.split(",") if s.strip()]
        layouts = [lay for lay in layouts if lay.codec == "blosc" or any(k in lay.name for k in keep)]
    args.out.mkdir(parents=True, exist_ok=True)

    t_start, load_start = time.perf_counter(), os.getloadavg()[0]
    runs, summaries, sections = [], [], []
    with ThreadPoolExecutor(NCPU) as pool:
        for vol in vols:
            run = run_volume(vol, layouts, rounds, n_patches, pool)
            tables, s = volume_tables(run)
            runs.append(run)
            summaries.append(s)
            d = vol.data
            region = " x ".join(f"{lo}-{hi}" for lo, hi in run["region"])
            sections += [
                "",
                f"#### {vol.name}: {d.shape[0]}x{d.shape[1]}x{d.shape[2]} (z, y, x) {d.dtype}, {d.nbytes / MB:.1f} MB raw",
                "",
                (f"Source: `{vol.source}` ({vol.note}). Stored range {int(d.min())}-{int(d.max())}; "
                 f"{100 * float((d == 0).mean()):.0f} % zero voxels. Sliding window: {run['n_windows']} windows over "
                 f"z, y, x = {region}. z scroll: planes {run['scroll_z0']}-{run['scroll_z0'] + SCROLL - 1}. "
                 f"Effort 1 vs 2: {run['effort1_note']}."),
                "",
                tables,
            ]
            print("\n".join(sections[-5:]), file=sys.stderr, flush=True)

    header = [
        "# 3D brick layout benchmark (issue 8)",
        "",
        machine_line(),
        "",
        f"Interoperability check: {check_strip_interop()}.",
        "",
        f"Command: `python benchmarks/bench_layout.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        (f"Lossless everywhere (every decoded volume and plane is checked equal to the original). Sizes are the sum of "
         f"the encoded bricks (edge bricks zero-padded to the full brick, as zarr stores them); 'incl. pyramid' adds the "
         f"1/7 a 3D pyramid costs. Encode 1 thr = the bricks covering the central 128x256x256 box, one thread; encode "
         f"{NCPU} thr = the whole volume on a pool of {NCPU} threads. Full read = decode every brick into one array. "
         f"Patch = median of {n_patches} random 128³ boxes, every touched brick decoded (cold). Window = mean time per "
         f"128³ window sliding with stride 64 over the central 256³ box (x fastest), one thread, without cache and with "
         f"an LRU cache of decoded bricks one slab deep (each brick decoded once). Planes = one full z / y / x plane "
         f"through the middle, one thread, cold; a z plane decodes only the frame holding it where the layout has frames. "
         f"z scroll = {SCROLL} consecutive z planes, one thread, each decoded frame (mosaic) or brick (Blosc/raw) kept "
         f"while it serves the next planes: mean ms per plane. "
         f"Times are the best of {rounds} interleaved rounds. Ratios are layout / reference (< 1: better)."),
    ]
    goals = ["", "#### Issue 8 goals for 3D (size <= 0.75x Blosc incl. pyramid; patch 1 thread <= 3x; cached window <= 1.5x)",
             "", goals_table(runs, summaries)]
    footer = ["", (f"Total run time: {time.perf_counter() - t_start:.0f} s. Load average (1 min) at start "
                   f"{load_start:.1f}, at end {os.getloadavg()[0]:.1f}.")]
    text = "\n".join(header + sections + goals + footer) + "\n"
    print("\n".join(goals + footer), file=sys.stderr)
    (args.out / "bench_layout.md").write_text(text)
    (args.out / "bench_layout.json").write_text(json.dumps(
        [{"volume": r["volume"].name, "source": r["volume"].source, "shape": list(r["volume"].data.shape),
          "dtype": str(r["volume"].data.dtype), "results": s} for r, s in zip(runs, summaries)], indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
