"""Benchmark mzarr_core against plain Zarr + Blosc-zstd, pyramidal OME-TIFF (tifffile) and PNG on real images.

    python benchmarks/bench_core.py              # default sizes, ~10 minutes on 2 cores
    python benchmarks/bench_core.py --quick      # small sizes, 1-2 minutes
    python benchmarks/bench_core.py --big-3d     # also: peak memory of a pyramid build from a >2 GB np.memmap
    python benchmarks/bench_core.py --parts 2d,effort --grey-size 4096
    python benchmarks/bench_core.py --parts reads  # reads vs the decode floor, the cache, sliding windows
    MZARR_BENCH_VOLUMES=/data/ct_dicom:/data/t1.nii.gz python benchmarks/bench_core.py --parts goals
                                                   # issue 8's goal ratios, side by side, on real volumes + a mosaic

Prints Markdown tables and writes them to benchmarks/out/bench_core.md. Every image is made at run time from the
real images bundled with scikit-image (nothing is downloaded), except the real volumes of the goals part
(``--volumes`` / $MZARR_BENCH_VOLUMES: DICOM folders, NIfTI, .npy, .tif, read by bench_layout.load_volume; without
any it falls back to nibabel's bundled test volume, labelled "fallback, not real data"). See docs/BENCHMARKS.md for
the measured numbers.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    GREY_SOURCES,
    OUT,
    RGB_SOURCES,
    MemorySampler,
    make_volume,
    markdown_table,
    mosaic,
    path_size,
    remove,
    skimage_image,
)

REGION = 512
CHUNK_2D = 512
CHUNK_3D = 64
PARTS = ("2d", "small", "effort", "3d", "reads", "goals")
MB = 1e6


# ---------------------------------------------------------------------------------------------------------------
# pyramid geometry shared by every pyramidal format (the same levels as mzarr writes)
# ---------------------------------------------------------------------------------------------------------------
def level_count(shape: tuple[int, ...], axes: str, chunk: int) -> int:
    """mzarr's rule: halve until every spatial axis fits in one chunk."""
    n, cur = 1, [s for s, a in zip(shape, axes) if a != "c"]
    while any(s > chunk for s in cur):
        cur = [(s + 1) // 2 if s > 1 else s for s in cur]
        n += 1
    return n


def build_levels(img: np.ndarray, axes: str, n: int) -> list[np.ndarray]:
    """The pyramid as NumPy arrays, with mzarr's own 2x mean kernel (so every format stores the same pixels)."""
    from mzarr_core.pyramid import downsample

    out = [img]
    for _ in range(n - 1):
        prev = out[-1]
        out.append(downsample(prev, tuple(a != "c" and s > 1 for a, s in zip(axes, prev.shape)), "mean"))
    return out


# ---------------------------------------------------------------------------------------------------------------
# formats: write(img) -> seconds; reader with full() and region(level, key); sizes
# ---------------------------------------------------------------------------------------------------------------
class Format:
    name = ""
    ext = ""
    pyramid = True

    def __init__(self, path: Path):
        self.path = path

    def write(self, img: np.ndarray, axes: str, n_levels: int) -> None:
        raise NotImplementedError

    def open(self) -> None: ...

    def close(self) -> None: ...

    def full(self) -> np.ndarray:
        raise NotImplementedError

    def region(self, level: int, key: tuple[slice, ...]) -> np.ndarray:
        raise NotImplementedError

    def level_shape(self, level: int) -> tuple[int, ...]:
        raise NotImplementedError

    def n_levels(self) -> int:
        return 1

    def size(self) -> int:
        return path_size(self.path)

    def level0_size(self) -> int:
        return self.size()


class MzarrFormat(Format):
    name = "mzarr"
    ext = ".mzarr"

    def __init__(self, path: Path, **save_options: Any):
        super().__init__(path)
        self.save_options = save_options
        self.m: Any = None

    def write(self, img: np.ndarray, axes: str, n_levels: int) -> None:
        from mzarr import Mzarr

        Mzarr(img).save(self.path, **self.save_options)

    def open(self) -> None:
        from mzarr import Mzarr

        # The comparison tables read cold: no decoded-chunk cache (the peers have none); the "reads" part measures it.
        self.m = Mzarr(self.path, "r", cache_bytes=0)

    def close(self) -> None:
        if self.m is not None:
            self.m.close()
            self.m = None

    def full(self) -> np.ndarray:
        return self.m.numpy()

    def region(self, level: int, key: tuple[slice, ...]) -> np.ndarray:
        return self.m.level(level)[key]

    def level_shape(self, level: int) -> tuple[int, ...]:
        return self.m.level(level).shape

    def n_levels(self) -> int:
        return len(self.m.levels)

    def level0_size(self) -> int:
        import sqlite3

        con = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True)  # immutable: no -shm/-wal
        try:
            return int(con.execute("SELECT COALESCE(SUM(LENGTH(value)),0) FROM zarr WHERE key LIKE '0/c/%'").fetchone()[0])
        finally:
            con.close()


class ZarrBloscFormat(Format):
    """Plain Zarr v3 directory, Blosc(zstd, clevel 5), same chunk shape as mzarr, pyramid built level by level."""

    ext = ".zarr"

    def __init__(self, path: Path, shuffle: str = "bitshuffle"):
        super().__init__(path)
        self.shuffle = shuffle
        self.name = f"zarr+blosc-zstd5 ({shuffle})"
        self.group: Any = None

    def codec(self) -> Any:
        from zarr.codecs import BloscCodec

        return BloscCodec(cname="zstd", clevel=5, shuffle=self.shuffle)

    def write(self, img: np.ndarray, axes: str, n_levels: int) -> None:
        import zarr

        chunk = CHUNK_2D if len(axes.replace("c", "")) == 2 else CHUNK_3D
        group = zarr.open_group(str(self.path), mode="w", zarr_format=3)
        for i, lv in enumerate(build_levels(img, axes, n_levels)):
            chunks = tuple(min(chunk, s) if a != "c" else s for a, s in zip(axes, lv.shape))
            arr = group.create_array(str(i), shape=lv.shape, chunks=chunks, dtype=lv.dtype, compressors=[self.codec()])
            arr[...] = lv

    def open(self) -> None:
        import zarr

        self.group = zarr.open_group(str(self.path), mode="r")
        self.arrays = [self.group[str(i)] for i in range(len(list(self.group.array_keys())))]

    def full(self) -> np.ndarray:
        return self.arrays[0][...]

    def region(self, level: int, key: tuple[slice, ...]) -> np.ndarray:
        return self.arrays[level][key]

    def level_shape(self, level: int) -> tuple[int, ...]:
        return self.arrays[level].shape

    def n_levels(self) -> int:
        return len(self.arrays)

    def level0_size(self) -> int:
        return path_size(self.path / "0" / "c")


class OmeTiffFormat(Format):
    """Pyramidal OME-TIFF the way tifffile documents it: level 0 with ``subifds=``, then ``subfiletype=1`` levels.

    Tiled 512 x 512, horizontal-differencing predictor (smaller files for zlib and zstd on these images).
    """

    ext = ".ome.tif"

    def __init__(self, path: Path, compression: str = "zlib", predictor: bool = True):
        super().__init__(path)
        self.compression = compression
        self.predictor = predictor
        self.name = f"OME-TIFF {compression}" + (" +pred" if predictor else "")
        self.arrays: list[Any] = []

    def write(self, img: np.ndarray, axes: str, n_levels: int) -> None:
        import tifffile

        colour = axes.endswith("c")
        options = {
            "tile": (512, 512),
            "compression": self.compression,
            "predictor": self.predictor,
            "photometric": "rgb" if colour else "minisblack",
            "maxworkers": os.cpu_count(),
        }
        levels = build_levels(img, axes, n_levels)
        with tifffile.TiffWriter(self.path, bigtiff=img.nbytes > 2**31, ome=True) as tif:
            tif.write(levels[0], subifds=n_levels - 1, metadata={"axes": axes.upper().replace("C", "S")}, **options)
            for lv in levels[1:]:
                tif.write(lv, subfiletype=1, **options)

    def open(self) -> None:
        import tifffile
        import zarr

        self.store = tifffile.imread(self.path, aszarr=True)
        node = zarr.open(self.store, mode="r")
        if isinstance(node, zarr.Array):
            self.arrays = [node]
        else:
            self.arrays = [node[k] for k in sorted(node.array_keys(), key=int)]

    def close(self) -> None:
        if getattr(self, "store", None) is not None:
            self.store.close()
            self.store = None

    def full(self) -> np.ndarray:
        import tifffile

        return tifffile.imread(self.path, maxworkers=os.cpu_count())

    def region(self, level: int, key: tuple[slice, ...]) -> np.ndarray:
        return self.arrays[level][key]

    def level_shape(self, level: int) -> tuple[int, ...]:
        return self.arrays[level].shape

    def n_levels(self) -> int:
        return len(self.arrays)

    def level0_size(self) -> int:
        import tifffile

        with tifffile.TiffFile(self.path) as tif:
            return int(sum(tif.pages[0].databytecounts))


class PngFormat(Format):
    """One PNG of the full image (imagecodecs/libpng, default zlib level); no pyramid, no random access."""

    name = "PNG"
    ext = ".png"
    pyramid = False

    def write(self, img: np.ndarray, axes: str, n_levels: int) -> None:
        import imagecodecs

        self.path.write_bytes(imagecodecs.png_encode(img))

    def full(self) -> np.ndarray:
        import imagecodecs

        return imagecodecs.png_decode(self.path.read_bytes())

    def region(self, level: int, key: tuple[slice, ...]) -> np.ndarray:
        return self.full()[key]  # the whole file has to be decoded

    def open(self) -> None:
        self.shape = self.full().shape

    def level_shape(self, level: int) -> tuple[int, ...]:
        return self.shape


def peer_formats(work: Path, tag: str, formats: list[str]) -> list[Format]:
    out: list[Format] = []
    for f in formats:
        if f == "mzarr":
            out.append(MzarrFormat(work / f"{tag}.mzarr"))
        elif f == "zarr":
            out.append(ZarrBloscFormat(work / f"{tag}.bitshuffle.zarr", "bitshuffle"))
            out.append(ZarrBloscFormat(work / f"{tag}.shuffle.zarr", "shuffle"))
        elif f == "tiff":
            out.append(OmeTiffFormat(work / f"{tag}.zlib.ome.tif", "zlib"))
            out.append(OmeTiffFormat(work / f"{tag}.zstd.ome.tif", "zstd"))
        elif f == "png":
            out.append(PngFormat(work / f"{tag}.png"))
        else:
            raise SystemExit(f"unknown format {f!r}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# measuring one format on one image
# ---------------------------------------------------------------------------------------------------------------
def random_keys(shape: tuple[int, ...], axes: str, n: int, seed: int, edge: int = REGION) -> list[tuple[slice, ...]]:
    """``n`` random ``edge``-sized boxes (clipped to the level) in the spatial axes; whole channel axis."""
    rng = np.random.default_rng(seed)
    keys = []
    for _ in range(n):
        key = []
        for a, s in zip(axes, shape):
            if a == "c":
                key.append(slice(None))
            else:
                lo = int(rng.integers(0, max(1, s - edge + 1)))
                key.append(slice(lo, min(s, lo + edge)))
        keys.append(tuple(key))
    return keys


def plane_keys(shape: tuple[int, ...], n: int, seed: int, edge: int = REGION) -> list[tuple]:
    """Random 512 x 512 yx regions of a random z plane of a (z, y, x) volume."""
    rng = np.random.default_rng(seed)
    keys = []
    for _ in range(n):
        z = int(rng.integers(0, shape[0]))
        y = int(rng.integers(0, max(1, shape[1] - edge + 1)))
        x = int(rng.integers(0, max(1, shape[2] - edge + 1)))
        keys.append((z, slice(y, min(shape[1], y + edge)), slice(x, min(shape[2], x + edge))))
    return keys


def best_time(fn: Any, min_time: float) -> tuple[float, Any]:
    """Wall time of one call (repeated up to 5 times while under ``min_time``: best of them), and the result."""
    best, result, total = float("inf"), None, 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        best, total = min(best, dt), total + dt
        if total >= min_time:
            break
    return best, result


def measure_group(
    fmts: list[Format], img: np.ndarray, axes: str, n_levels: int, n_regions: int, *, rounds: int = 2,
    planes: bool = False, edge: int = REGION, lossy: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Measure several formats on one image, interleaved so that load from other processes hits all of them alike.

    Writes and full reads: ``rounds`` round-robin rounds, best time. Regions: for each random region, every format
    reads it in turn; median per format. ``lossy`` names formats whose read-back is not checked for equality.
    """
    results = [{"format": f.name, "raw": img.nbytes, "write_s": float("inf"), "read_s": float("inf")} for f in fmts]
    for _ in range(rounds):
        for fmt, res in zip(fmts, results):
            log(f"  write {fmt.name}")
            remove(fmt.path)
            dt, _ = best_time(lambda fmt=fmt: (remove(fmt.path), fmt.write(img, axes, n_levels)), 0.3)
            res["write_s"] = min(res["write_s"], dt)
    for fmt, res in zip(fmts, results):
        res["size"], res["size0"] = fmt.size(), fmt.level0_size()  # before opening: readers may add -shm files
        fmt.open()
    try:
        for r in range(rounds + 1):
            for fmt, res in zip(fmts, results):
                dt, back = best_time(fmt.full, 0.3)
                res["read_s"] = min(res["read_s"], dt)
                if r == 0:
                    if fmt.name in lossy:
                        err = (back.astype(np.float64) - img) ** 2
                        res["psnr"] = 10 * np.log10(float(np.iinfo(img.dtype).max) ** 2 / max(float(err.mean()), 1e-12))
                    elif not np.array_equal(back, img):
                        raise AssertionError(f"{fmt.name}: full read differs from the original (lossless check failed)")
                del back
        for fmt, res in zip(fmts, results):
            res["levels"] = fmt.n_levels()
        jobs = [("reg0", lambda f: 0, lambda f: random_keys(f.level_shape(0), axes, n_regions, 42, edge)),
                ("regc", lambda f: f.n_levels() - 1,
                 lambda f: random_keys(f.level_shape(f.n_levels() - 1), axes, n_regions, 43, edge))]
        if planes:
            jobs.append(("plane", lambda f: 0, lambda f: plane_keys(f.level_shape(0), n_regions, 44)))
        for name, level_of, keys_of in jobs:
            timed_fmts = [(f, res, level_of(f), keys_of(f)) for f, res in zip(fmts, results) if f.pyramid]
            times: dict[str, list[float]] = {f.name: [] for f, *_ in timed_fmts}
            for f, _, level, keys in timed_fmts:
                f.region(level, keys[0])  # warm-up
            for i in range(n_regions):
                for f, _, level, keys in timed_fmts:
                    t0 = time.perf_counter()
                    f.region(level, keys[i])
                    times[f.name].append(time.perf_counter() - t0)
            for f, res, *_ in timed_fmts:
                res[name] = statistics.median(times[f.name])
        for fmt, res in zip(fmts, results):
            if not fmt.pyramid:  # PNG: any region needs the whole file decoded
                res["reg0"] = res["regc"] = res["plane"] = res["read_s"]
    finally:
        for fmt in fmts:
            fmt.close()
            remove(fmt.path)
    return results


# ---------------------------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------------------------
def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def ms(s: float) -> str:
    return f"{s * 1e3:.1f}" if s < 10 else f"{s * 1e3:.0f}"


def comparison_table(results: dict[str, list[dict[str, Any]]], planes: bool = False) -> str:
    header = [
        "image (raw MB)", "format", "file MB", "file % raw", "L0 % raw", "size mzarr/peer", "write MB/s",
        "full read MB/s", "region L0 ms", "mzarr/peer", "region coarsest ms", "mzarr/peer",
    ]
    if planes:
        header += ["yx plane 512² ms", "mzarr/peer"]
    rows = []
    for image, res in results.items():
        mz = next(r for r in res if r["format"] == "mzarr")
        for r in res:
            peer = r is not mz
            raw = r["raw"]
            row = [
                f"{image} ({raw / MB:.1f})",
                f"**{r['format']}**" if not peer else r["format"],
                f"{r['size'] / MB:.2f}",
                f"{100 * r['size'] / raw:.1f}",
                f"{100 * r['size0'] / raw:.1f}",
                fmt_ratio(mz["size"], r["size"]) if peer else "",
                f"{raw / MB / r['write_s']:.1f}",
                f"{raw / MB / r['read_s']:.0f}",
                ms(r["reg0"]) + (" (full decode)" if r["format"] == "PNG" else ""),
                fmt_ratio(mz["reg0"], r["reg0"]) if peer else "",
                ms(r["regc"]) + (" (full decode)" if r["format"] == "PNG" else ""),
                fmt_ratio(mz["regc"], r["regc"]) if peer else "",
            ]
            if planes:
                row += [ms(r["plane"]), fmt_ratio(mz["plane"], r["plane"]) if peer else ""]
            rows.append(row)
    return markdown_table(header, rows)


def goals_table(results: dict[str, list[dict[str, Any]]]) -> str:
    """The issue's goal: smaller than every peer (lossless) and region reads within 2x of the fastest peer."""
    header = [
        "image", "smallest peer (file)", "mzarr/smallest file", "smallest peer (L0 only)", "mzarr/smallest L0",
        "fastest peer L0 region", "mzarr/fastest", "fastest peer coarsest", "mzarr/fastest", "goal met",
    ]
    rows = []
    for image, res in results.items():
        mz = next(r for r in res if r["format"] == "mzarr")
        peers = [r for r in res if r is not mz]
        if not peers:
            continue
        small = min(peers, key=lambda r: r["size"])
        small0 = min(peers, key=lambda r: r["size0"])
        fast0 = min(peers, key=lambda r: r["reg0"])
        fastc = min(peers, key=lambda r: r["regc"])
        size_ok = mz["size"] < small["size"]
        size0_ok = mz["size0"] < small0["size0"]
        read_ok = mz["reg0"] <= 2 * fast0["reg0"] and mz["regc"] <= 2 * fastc["regc"]
        verdict = []
        verdict.append("size: yes" if size_ok else ("size: L0 only" if size0_ok else "size: NO"))
        verdict.append("reads: yes" if read_ok else "reads: NO")
        rows.append([
            image,
            small["format"], fmt_ratio(mz["size"], small["size"]),
            small0["format"], fmt_ratio(mz["size0"], small0["size0"]),
            f"{fast0['format']} {ms(fast0['reg0'])} ms", fmt_ratio(mz["reg0"], fast0["reg0"]),
            f"{fastc['format']} {ms(fastc['regc'])} ms", fmt_ratio(mz["regc"], fastc["regc"]),
            ", ".join(verdict),
        ])
    return markdown_table(header, rows)


# ---------------------------------------------------------------------------------------------------------------
# parts
# ---------------------------------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_images(images: dict[str, tuple[np.ndarray, str]], formats: list[str], work: Path, n_regions: int,
               rounds: int, planes: bool = False) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    for tag, (img, axes) in images.items():
        chunk = CHUNK_2D if len(axes.replace("c", "")) == 2 else CHUNK_3D
        n_levels = level_count(img.shape, axes, chunk)
        fmts = [f for f in peer_formats(work, tag.split(" ")[0], formats)
                if not (planes and isinstance(f, (OmeTiffFormat, PngFormat)))]
        log(f"{tag}: {', '.join(f.name for f in fmts)}")
        results[tag] = measure_group(fmts, img, axes, n_levels, n_regions, rounds=rounds, planes=planes,
                                     edge=128 if planes else REGION)
    return results


def part_effort(images: dict[str, tuple[np.ndarray, str]], work: Path, n_regions: int, efforts: list[int],
                rounds: int) -> str:
    header = ["image", "mzarr setting", "file MB", "file % raw", "write MB/s", "full read MB/s", "region L0 ms",
              "size vs effort 2", "PSNR dB"]
    rows = []
    for tag, (img, axes) in images.items():
        n_levels = level_count(img.shape, axes, CHUNK_2D)
        fmts: list[Format] = []
        for e in efforts:
            fmts.append(MzarrFormat(work / f"{tag.split(' ')[0]}.e{e}.mzarr", effort=e))
            fmts[-1].name = f"lossless, effort {e}"
        lossy = MzarrFormat(work / f"{tag.split(' ')[0]}.lossy.mzarr", distance=1.0, effort=2)
        lossy.name = "lossy distance 1.0, effort 2"
        fmts.append(lossy)
        log(f"effort: {tag}")
        res = measure_group(fmts, img, axes, n_levels, n_regions, rounds=rounds, lossy=(lossy.name,))
        ref = next((r["size"] for r in res if r["format"] == "lossless, effort 2"), None)
        for r in res:
            rows.append([
                tag, r["format"], f"{r['size'] / MB:.2f}", f"{100 * r['size'] / r['raw']:.1f}",
                f"{r['raw'] / MB / r['write_s']:.1f}", f"{r['raw'] / MB / r['read_s']:.0f}", ms(r["reg0"]),
                fmt_ratio(r["size"], ref) if ref else "-", f"{r['psnr']:.1f}" if "psnr" in r else "lossless",
            ])
    return markdown_table(header, rows)


# -- reads at the codec's limit: the decode floor, the cache, sliding windows --------------------------------------
def level0_blobs(path: Path) -> dict[str, bytes]:
    """key -> stored bytes of every level-0 chunk of a .mzarr file."""
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT key, value FROM zarr WHERE key LIKE '0/c/%'"))
    finally:
        con.close()


def chunk_keys(level: Any, key: tuple[slice, ...]) -> list[str]:
    """Storage keys of the level-0 chunks a user-order region touches."""
    return ["0/c/" + "/".join(str(c[p]) for p in level.perm) for c in level.chunks_in(key)]


def floor_decoder() -> Any:
    """The decode floor: imagecodecs' JPEG XL decoder on a ThreadPoolExecutor of os.cpu_count() threads, on chunk
    bytes already in memory (no storage, no assembly, no bounds checks)."""
    import imagecodecs
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(os.cpu_count())

    def decode(blobs: list[bytes]) -> None:
        list(pool.map(imagecodecs.jpegxl_decode, blobs))

    return decode


class DecodeCounter:
    """Counts imagecodecs' JPEG XL decodes while installed (mzarr's bounded decoder calls it by module attribute)."""

    def __init__(self) -> None:
        import imagecodecs

        self.module, self.real, self.count = imagecodecs, imagecodecs.jpegxl_decode, 0
        self.lock = threading.Lock()

    def __enter__(self) -> "DecodeCounter":
        def counting(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.count += 1
            return self.real(*args, **kwargs)

        self.module.jpegxl_decode = counting
        return self

    def __exit__(self, *exc: Any) -> None:
        self.module.jpegxl_decode = self.real


def windows(shape: tuple[int, ...], axes: str, edge: int, stride: int) -> list[tuple[slice, ...]]:
    """A sliding window pass: ``edge``-sized windows every ``stride`` along each spatial axis, last axis fastest."""
    ranges = []
    for a, n in zip(axes, shape):
        ranges.append([None] if a == "c" else list(range(0, max(1, n - edge + 1), stride)))
    out = []
    for starts in itertools.product(*ranges):
        out.append(tuple(slice(None) if s is None else slice(s, min(s + edge, n)) for s, n in zip(starts, shape)))
    return out


def part_reads(images: dict[str, tuple[np.ndarray, str]], work: Path, n_regions: int, rounds: int,
               cache_sizes: list[int]) -> str:
    """mzarr's whole read path against the decode floor and the old zarr path; cold and repeated region reads;
    sliding-window passes against Zarr + Blosc; the cache size against the decodes a pass needs."""
    from mzarr import Mzarr

    decode = floor_decoder()
    floor_rows, pass_rows, size_rows = [], [], []
    for tag, (img, axes) in images.items():
        three_d = "z" in axes
        edge = 128 if three_d else REGION
        stride = 64 if three_d else 256
        short = tag.split(" ")[0]
        mz_path, blosc = work / f"reads-{short}.mzarr", ZarrBloscFormat(work / f"reads-{short}.zarr", "shuffle")
        remove(mz_path)
        remove(blosc.path)
        log(f"reads: {tag}: writing")
        Mzarr(img, axes=axes).save(mz_path)
        blosc.write(img, axes, level_count(img.shape, axes, CHUNK_3D if three_d else CHUNK_2D))
        blobs = level0_blobs(mz_path)
        blosc.open()
        m = Mzarr(mz_path, "r")
        try:
            level = m.levels[0]
            storage_key = tuple(slice(None) for _ in level.shape)
            # full level 0: floor, mzarr cold (cache emptied), the old path (zarr through mzarr's codecs)
            best = {"floor": float("inf"), "mzarr": float("inf"), "zarr": float("inf")}
            all_blobs = list(blobs.values())
            log(f"reads: {tag}: full read")
            for _ in range(rounds + 2):
                t0 = time.perf_counter()
                decode(all_blobs)
                best["floor"] = min(best["floor"], time.perf_counter() - t0)
                m.clear_cache()
                t0 = time.perf_counter()
                back = m.numpy()
                best["mzarr"] = min(best["mzarr"], time.perf_counter() - t0)
                t0 = time.perf_counter()
                level.storage[storage_key]
                best["zarr"] = min(best["zarr"], time.perf_counter() - t0)
            if not np.array_equal(back, img):
                raise AssertionError(f"{tag}: mzarr full read differs from the original")
            del back
            # random regions: each read by every method in turn, best of `rounds + 1`, summed over the regions
            log(f"reads: {tag}: {n_regions} regions")
            keys = random_keys(level.shape, axes, n_regions, 45, edge)
            total = {"floor": 0.0, "cold": 0.0, "warm": 0.0, "zarr": 0.0, "blosc": 0.0}
            per_region: dict[str, list[float]] = {k: [] for k in total}
            for key in keys:
                region_blobs = [blobs[k] for k in chunk_keys(level, key) if k in blobs]
                skey = tuple(key[p] for p in level.perm)
                b = {k: float("inf") for k in total}
                for _ in range(rounds + 1):
                    for name, fn in (
                        ("floor", lambda: decode(region_blobs)),
                        ("cold", lambda: level[key]),  # after emptying the cache
                        ("warm", lambda: level[key]),  # the same region again
                        ("zarr", lambda: level.storage[skey]),
                        ("blosc", lambda: blosc.region(0, key)),
                    ):
                        if name == "cold":
                            m.clear_cache()
                        t0 = time.perf_counter()
                        fn()
                        b[name] = min(b[name], time.perf_counter() - t0)
                for k in total:
                    total[k] += b[k]
                    per_region[k].append(b[k])
            med = {k: statistics.median(v) for k, v in per_region.items()}
            floor_rows.append([
                tag, f"{len(all_blobs)} chunks, {img.nbytes / MB:.0f} MB",
                f"{ms(best['floor'])}", f"{ms(best['mzarr'])} (**{best['mzarr'] / best['floor']:.2f}**)",
                f"{ms(best['zarr'])} ({best['zarr'] / best['floor']:.2f})",
                f"{ms(med['floor'])}", f"{ms(med['cold'])} (**{total['cold'] / total['floor']:.2f}**)",
                f"{ms(med['zarr'])} ({total['zarr'] / total['floor']:.2f})",
                f"{ms(med['warm'])} ({total['warm'] / total['floor']:.3f})",
                f"{ms(med['blosc'])} (mzarr cold / blosc {total['cold'] / total['blosc']:.1f}, warm {total['warm'] / total['blosc']:.2f})",
            ])
            # sliding window pass
            wins = windows(level.shape, axes, edge, stride)
            log(f"reads: {tag}: sliding window {edge} stride {stride}, {len(wins)} windows")
            res = {}
            for label, cache in (("mzarr (default cache)", None), ("mzarr, cache off", 0)):
                m.cache_bytes = cache
                m.clear_cache()
                with DecodeCounter() as counter:
                    t0 = time.perf_counter()
                    for w in wins:
                        level[w]
                    res[label] = (time.perf_counter() - t0, counter.count)
            m.cache_bytes = None
            t0 = time.perf_counter()
            for w in wins:
                blosc.region(0, w)
            t_blosc = time.perf_counter() - t0
            n_chunks = len(all_blobs)
            for label, (secs, misses) in res.items():
                pass_rows.append([
                    tag, f"{edge}{'³' if three_d else '²'} stride {stride} ({len(wins)} windows)", label, f"{secs:.2f}",
                    f"{misses} / {n_chunks}", f"{secs / t_blosc:.2f}",
                ])
            pass_rows.append([tag, f"{edge}{'³' if three_d else '²'} stride {stride} ({len(wins)} windows)",
                              "zarr+blosc-zstd5 (shuffle)", f"{t_blosc:.2f}", "-", "1.00"])
            # cache size vs decodes of the pass
            log(f"reads: {tag}: cache sizes")
            for size in cache_sizes:
                m.cache_bytes = size * 2**20
                m.clear_cache()
                with DecodeCounter() as counter:
                    t0 = time.perf_counter()
                    for w in wins:
                        level[w]
                    secs = time.perf_counter() - t0
                size_rows.append([tag, f"{size}", f"{counter.count}", f"{n_chunks}", f"{secs:.2f}"])
            m.cache_bytes = None
        finally:
            m.close()
            blosc.close()
            remove(mz_path)
            remove(blosc.path)
    floor_table = markdown_table(
        ["image", "level 0", "full read: decode floor ms", "mzarr ms (/ floor)", "before: zarr path ms (/ floor)",
         "region: floor ms", "mzarr cold ms (/ floor)", "before: zarr path ms (/ floor)", "mzarr repeated ms (/ floor)",
         "zarr+blosc ms"],
        floor_rows)
    pass_table = markdown_table(["image", "window", "reader", "seconds", "chunks decoded / level-0 chunks", "time / blosc"],
                                pass_rows)
    size_table = markdown_table(["image", "cache MiB", "chunk decodes in the pass", "level-0 chunks", "seconds"], size_rows)
    return "\n".join([
        ("Decode floor = the same level-0 chunk bytes, already in memory, decoded by `imagecodecs.jpegxl_decode` on a "
         f"ThreadPoolExecutor of os.cpu_count() = {os.cpu_count()} threads. mzarr = the whole read path (cache emptied "
         "first: SQLite fetch in the read snapshot, bounded decode on the pool, assembly into the result). Before = "
         "the same read through zarr (`level.storage[...]`, mzarr's guarded codecs: the path of the previous release). "
         "Repeated = the same region read again (decoded chunks cached). Full read: best of "
         f"{rounds + 2} interleaved; region: {n_regions} random regions ({REGION}² in 2D, 128³ in 3D), each read by "
         f"every method in turn, best of {rounds + 1}; median ms shown, ratios of the sums over all regions."),
        "", floor_table, "",
        "### Sliding-window passes (windows in order, last axis fastest; mzarr's default cache vs none vs Zarr + Blosc)",
        "", pass_table, "",
        "### Cache size against the decodes of the same pass", "", size_table,
    ])


# -- issue 8 goals: every goal ratio side by side, in one run, on real data --------------------------------------
PATCH = 128  # edge of a random 3D patch and of a sliding window (the inference pattern)
STRIDE = 64  # sliding-window stride
# mzarr variants: label -> save options. "mzarr" is the default save (format 2 strip bricks for lossless volumes);
# "mzarr f1" writes format 1 (64 frames per brick, effort 2), volumes only, to show what format 2 changed.
VARIANTS: dict[str, dict[str, Any]] = {"mzarr": {}, "mzarr f1": {"bricks": "frames"}}
OK, NO = "✓", "✗"


def goal_volumes(specs: list[str], quick: bool) -> list[tuple[str, np.ndarray, str]]:
    """(column label, (z, y, x) array, note) of the real volumes; bench_layout's fallback (labelled) without any.

    ``--quick`` takes a central crop of at most 128 x 256 x 256 of each (a smoke run, labelled as such).
    """
    from bench_layout import fallback_volumes, load_volume

    vols = [load_volume(s) for s in specs] if specs else fallback_volumes()
    out = []
    for v in vols:
        a, note, name = v.data, v.note, v.name.replace(" (FALLBACK)", "")
        if quick:
            lim = (128, 256, 256)
            lo = [(s - min(s, n)) // 2 for s, n in zip(a.shape, lim)]
            a = np.ascontiguousarray(a[tuple(slice(o, o + min(s, n)) for o, s, n in zip(lo, a.shape, lim))])
            note += "; --quick: central crop"
        label = f"{name} {'x'.join(str(s) for s in a.shape)} {a.dtype.name.replace('uint', 'u')}"
        if not specs:
            label += " (fallback, not real data)"
        out.append((label, a, note))
    return out


def central_box(shape: tuple[int, ...], box: tuple[int, ...], chunk: int) -> tuple[slice, ...]:
    """A central box of at most ``box``, its start on the chunk grid (windows then start on brick edges)."""
    out = []
    for s, b in zip(shape, box):
        n = min(s, b)
        lo = ((s - n) // 2) // chunk * chunk
        out.append(slice(lo, lo + n))
    return tuple(out)


def encode_work(path: Path) -> tuple[list[np.ndarray], int]:
    """What an encode floor encodes: every stored chunk of every level of a .mzarr file, as the array its JPEG XL
    stream holds (a 2D tile, a 4096 x 64 strip, 64 frames), and the file's JPEG XL effort."""
    import imagecodecs
    import sqlite3

    from mzarr import Mzarr

    with Mzarr(path) as m:
        effort = int(m.codec["effort"])
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        blobs = [v for (v,) in con.execute("SELECT value FROM zarr WHERE key GLOB '[0-9]*/c/*'")]
    finally:
        con.close()
    return [imagecodecs.jpegxl_decode(b) for b in blobs], effort


def floor_encoder() -> Any:
    """The encode floor: ``imagecodecs.jpegxl_encode`` (lossless, grey) of arrays already in memory on a
    ThreadPoolExecutor of os.cpu_count() threads: no pyramid to compute, no storage, no transaction."""
    import imagecodecs
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(os.cpu_count())

    def encode(arrays: list[np.ndarray], effort: int) -> None:
        list(pool.map(lambda a: imagecodecs.jpegxl_encode(a, lossless=True, effort=effort, photometric="GRAY"), arrays))

    return encode


def measure_goals_image(label: str, img: np.ndarray, axes: str, work: Path, rounds: int, n_regions: int,
                        window_box: tuple[int, ...], decode: Any, encode: Any) -> dict[str, Any]:
    """Every issue-8 measure of one image: mzarr (default save, pyramid; + format 1 for volumes) vs the peers
    without a pyramid (Zarr + Blosc-zstd5 bitshuffle; tiled TIFF zlib + predictor in 2D), same chunk shape, level 0.
    Writes, full reads, cold regions / patches and (3D) the sliding window, each best of ``rounds`` interleaved
    rounds; the decode floor of the same chunk bytes for every mzarr read. Every read-back is checked bit-exact."""
    from mzarr import Mzarr

    three_d = axes == "zyx"
    tag = "goals-" + label.split(" ")[0]
    variants = [v for v in VARIANTS if three_d or v == "mzarr"]
    mz_paths = {v: work / f"{tag}.{v.replace(' ', '-')}.mzarr" for v in variants}
    blosc = ZarrBloscFormat(work / f"{tag}.zarr", "bitshuffle")
    tiff = None if three_d else OmeTiffFormat(work / f"{tag}.tif", "zlib", predictor=True)
    paths: dict[str, Path] = {**mz_paths, "blosc": blosc.path}
    writes: dict[str, Any] = {v: (lambda v=v: Mzarr(img).save(mz_paths[v], **VARIANTS[v])) for v in variants}
    writes["blosc"] = lambda: blosc.write(img, axes, 1)  # level 0 only, no pyramid
    if tiff is not None:
        paths["tiff"] = tiff.path
        writes["tiff"] = lambda: tiff.write(img, axes, 1)
    res: dict[str, Any] = {"label": label, "three_d": three_d, "raw": img.nbytes, "variants": variants,
                           "write": {}, "size": {}, "full": {}, "region": {}, "region_med": {}, "window": {}}
    inf = float("inf")
    log(f"goals: {label}: writes ({', '.join(writes)}) and encode floors, {rounds} rounds")
    work_of: dict[str, tuple[list[np.ndarray], int]] = {}

    def write_job(name: str) -> Any:
        def run() -> float:
            remove(paths[name])
            t0 = time.perf_counter()
            writes[name]()
            return time.perf_counter() - t0
        return run

    def floor_job(v: str) -> Any:  # the encode floor: the same chunks (every level) encoded on all cores, nothing else
        def run() -> float:
            if v not in work_of:  # untimed: the chunks of the file just written
                work_of[v] = encode_work(mz_paths[v])
            t0 = time.perf_counter()
            encode(*work_of[v])
            return time.perf_counter() - t0
        return run

    jobs = [(name, write_job(name)) for name in writes] + [(f"floor {v}", floor_job(v)) for v in variants]
    r, n = 0, rounds
    while r < n:  # rounds of every job in turn; short jobs get more rounds (up to 5x), as the reads below
        spent = 0.0
        for name, run in jobs:
            secs = run()
            res["write"][name] = min(res["write"].get(name, inf), secs)
            spent += secs
        if r == 0:
            n = rounds * max(1, min(5, int(3.0 / max(spent, 1e-3))))
        r += 1
    work_of.clear()  # free the arrays
    for name, path in paths.items():
        res["size"][name] = path_size(path)  # before opening: a reader may add SQLite sidecars
    res["size0"] = {v: MzarrFormat(p).level0_size() for v, p in mz_paths.items()}  # level-0 chunk bytes
    files = {v: Mzarr(p, "r") for v, p in mz_paths.items()}  # the default decoded-chunk cache (256 MiB)
    blobs = {v: level0_blobs(p) for v, p in mz_paths.items()}
    res["chunks"] = len(blobs["mzarr"])
    blosc.open()
    if tiff is not None:
        tiff.open()
    peers: dict[str, Format] = {"blosc": blosc, **({"tiff": tiff} if tiff is not None else {})}
    try:
        levels = {v: m.levels[0] for v, m in files.items()}

        def check(name: str, got: np.ndarray, key: Any = None) -> None:
            want = img if key is None else img[key]
            if got.shape != want.shape or not np.array_equal(got, want):
                raise AssertionError(f"{label}: {name} read {'level 0' if key is None else key} differs from the original")

        def interleaved(jobs: list[tuple[str, Any]], what: str) -> None:
            """``rounds`` rounds of every job in turn (``run(checking) -> seconds``), best kept in res[what];
            short jobs get more rounds (up to 5x, aiming at ~3 s per job kind), still interleaved, so that a burst
            of load from other processes hits every method alike."""
            r, n = 0, rounds
            while r < n:
                spent = 0.0
                for name, run in jobs:
                    secs = run(r == 0)
                    res[what][name] = min(res[what].get(name, inf), secs)
                    spent += secs
                if r == 0:
                    n = rounds * max(1, min(5, int(3.0 / max(spent, 1e-3))))
                r += 1

        def timed_call(name: str, prepare: Any, fn: Any, key: Any = None) -> Any:
            """A job: ``prepare()`` untimed, then ``fn()`` timed; the result checked (untimed) when asked."""
            def run(checking: bool) -> float:
                if prepare is not None:
                    prepare()
                t0 = time.perf_counter()
                out = fn()
                secs = time.perf_counter() - t0
                if checking and not name.startswith("floor"):
                    check(name, out, key)
                return secs
            return run

        # full read of level 0: decode floor, mzarr with its cache emptied, the peers
        log(f"goals: {label}: full reads")
        full_jobs: list[tuple[str, Any]] = []
        for v in variants:
            all_blobs = list(blobs[v].values())
            full_jobs.append((f"floor {v}", timed_call(f"floor {v}", None, lambda b=all_blobs: decode(b))))
            full_jobs.append((v, timed_call(v, files[v].clear_cache, files[v].numpy)))
        full_jobs += [(name, timed_call(name, None, f.full)) for name, f in peers.items()]
        interleaved(full_jobs, "full")
        # cold random regions (3D: 128³ patches; 2D: 512² regions): each read by every method in turn
        edge = PATCH if three_d else REGION
        keys = random_keys(img.shape, axes, n_regions, 46, edge)
        log(f"goals: {label}: {n_regions} cold {edge}{'³' if three_d else '²'} regions")
        reg_jobs: list[tuple[str, Any, Any]] = []
        for v in variants:
            per_key = [[blobs[v][k] for k in chunk_keys(levels[v], key) if k in blobs[v]] for key in keys]
            reg_jobs.append((f"floor {v}", None, lambda i, key, b=per_key: decode(b[i])))
            reg_jobs.append((v, files[v].clear_cache, lambda i, key, lv=levels[v]: lv[key]))
        reg_jobs += [(name, None, lambda i, key, f=f: f.region(0, key)) for name, f in peers.items()]
        for name, prepare, fn in reg_jobs:
            fn(0, keys[0])  # warm-up (imports, metadata, thread pools)
        best = {name: [inf] * len(keys) for name, *_ in reg_jobs}
        for r in range(rounds):
            for i, key in enumerate(keys):
                for name, prepare, fn in reg_jobs:
                    run = timed_call(name, prepare, lambda fn=fn, i=i, key=key: fn(i, key), key)
                    best[name][i] = min(best[name][i], run(r == 0))
        res["n_regions"], res["edge"] = len(keys), edge
        for name, times in best.items():
            res["region"][name], res["region_med"][name] = sum(times), statistics.median(times)
        # sliding window 128³ stride 64 over a central box, mzarr with its default cache (emptied first) vs Blosc;
        # its floor: every brick the windows touch, decoded once (what a cache that holds them all achieves)
        if three_d:
            box = central_box(img.shape, window_box, CHUNK_3D)
            box_shape = tuple(s.stop - s.start for s in box)
            wins = [tuple(slice(b.start + w.start, b.start + w.stop) for b, w in zip(box, win))
                    for win in windows(box_shape, axes, PATCH, STRIDE)]
            res["box"], res["n_windows"] = box_shape, len(wins)
            log(f"goals: {label}: sliding window {PATCH}³ stride {STRIDE}, {len(wins)} windows in a "
                f"{'x'.join(map(str, box_shape))} box")

            def window_pass(name: str, prepare: Any, fn: Any) -> Any:
                """A job: one pass, the sum of the window reads' times (the checks are not timed)."""
                def run(checking: bool) -> float:
                    if prepare is not None:
                        prepare()
                    secs = 0.0
                    for w in wins:
                        t0 = time.perf_counter()
                        out = fn(w)
                        secs += time.perf_counter() - t0
                        if checking:
                            check(name, out, w)
                        del out
                    return secs
                return run

            win_jobs: list[tuple[str, Any]] = []
            for v in variants:
                touched = sorted({k for w in wins for k in chunk_keys(levels[v], w) if k in blobs[v]})  # empty: not stored
                win_jobs.append((f"floor {v}", timed_call(f"floor {v}", None,
                                                          lambda b=[blobs[v][k] for k in touched]: decode(b))))
                win_jobs.append((v, window_pass(v, files[v].clear_cache, lambda w, lv=levels[v]: lv[w])))
            win_jobs.append(("blosc", window_pass("blosc", None, lambda w: blosc.region(0, w))))
            interleaved(win_jobs, "window")
            for m in files.values():
                m.clear_cache()
    finally:
        for m in files.values():
            m.close()
        for f in peers.values():
            f.close()
        for path in paths.values():
            remove(path)
    return res


# goal rows: (row label, goal text, applies to 2D / 3D, variant-independent?, value(res, v) -> float, limit, kind)
# kind "le": the ratio must be <= limit; "ge": >= limit; "pct": a share of the floor's throughput, >= limit.
def _goal_specs() -> list[tuple[str, str, tuple[bool, ...], Any, Any, str]]:
    def fastest_peer(r: dict[str, Any]) -> float:
        return min(r["region"][p] for p in ("blosc", "tiff") if p in r["region"])

    return [
        ("file size incl. pyramid / Blosc (no pyramid)", "≤ 0.75 (3D), ≤ 0.90 (2D)", (False, True),
         lambda r, v: r["size"][v] / r["size"]["blosc"], lambda r: 0.75 if r["three_d"] else 0.90, "le"),
        ("file size incl. pyramid / TIFF zlib+predictor (no pyramid)", "≤ 1.0", (False,),
         lambda r, v: r["size"][v] / r["size"]["tiff"], lambda r: 1.0, "le"),
        ("full read of level 0: throughput / decode floor", "≥ 90 %", (False, True),
         lambda r, v: r["full"][f"floor {v}"] / r["full"][v], lambda r: 0.90, "pct"),
        ("cold region reads (2D 512², 3D 128³): throughput / decode floor", "≥ 90 %", (False, True),
         lambda r, v: r["region"][f"floor {v}"] / r["region"][v], lambda r: 0.90, "pct"),
        ("sliding window 128³ stride 64 (default cache) / Blosc", "≤ 1.5", (True,),
         lambda r, v: r["window"][v] / r["window"]["blosc"], lambda r: 1.5, "le"),
        ("random 128³ patch, cold / Blosc", "≤ 3", (True,),
         lambda r, v: r["region"][v] / r["region"]["blosc"], lambda r: 3.0, "le"),
        ("random 512² region, cold / fastest peer", "≤ 2.5", (False,),
         lambda r, v: r["region"][v] / fastest_peer(r), lambda r: 2.5, "le"),
        ("write incl. pyramid: throughput / Blosc's level-0 write", "≥ 0.5", (False, True),
         lambda r, v: r["write"]["blosc"] / r["write"][v], lambda r: 0.5, "ge"),
    ]


def _bound_specs() -> list[tuple[str, tuple[bool, ...], Any]]:
    """What bounds a goal's ratio: mzarr's size without its pyramid; the ratio if mzarr read at the decode floor."""
    return [
        ("bound: level-0 chunk bytes alone (no pyramid) / Blosc", (False, True),
         lambda r, v: r["size0"][v] / r["size"]["blosc"]),
        ("bound: encode floor (every level's chunks, all cores) vs Blosc's write, throughput", (False, True),
         lambda r, v: r["write"]["blosc"] / r["write"][f"floor {v}"]),
        ("bound: window decode floor (every box brick once) / Blosc window", (True,),
         lambda r, v: r["window"][f"floor {v}"] / r["window"]["blosc"]),
        ("bound: patch decode floor / Blosc patch", (True,),
         lambda r, v: r["region"][f"floor {v}"] / r["region"]["blosc"]),
        ("bound: region decode floor / fastest peer", (False,),
         lambda r, v: r["region"][f"floor {v}"] / min(r["region"][p] for p in ("blosc", "tiff"))),
    ]


def goal_cell(value: float, limit: float, kind: str) -> tuple[str, bool]:
    met = value <= limit if kind == "le" else value >= limit
    if kind == "pct":  # one more digit where the rounded value would read as the threshold
        digits = 1 if round(100 * value) == round(100 * limit) else 0
        return f"{100 * value:.{digits}f} % (≥ {100 * limit:.0f} %) {OK if met else NO}", met
    sign = "≤" if kind == "le" else "≥"
    digits = 3 if round(value, 2) == round(limit, 2) else 2
    return f"{value:.{digits}f} ({sign} {limit:g}) {OK if met else NO}", met


def goals_summary(results: list[dict[str, Any]]) -> str:
    header = ["goal (issue 8)", "threshold"] + [r["label"] for r in results] + ["met everywhere"]
    rows = []
    for variant, prefix in (("mzarr", ""), ("mzarr f1", "format 1 (bricks='frames'): ")):
        for name, goal, dims, value, limit, kind in _goal_specs():
            if variant == "mzarr f1" and False in dims and True not in dims:
                continue
            cells, all_met, any_cell = [], True, False
            for r in results:
                if r["three_d"] not in dims or variant not in r["variants"]:
                    cells.append("-")
                    continue
                text, met = goal_cell(value(r, variant), limit(r), kind)
                cells.append(text)
                all_met, any_cell = all_met and met, True
            if any_cell:
                rows.append([prefix + name, goal, *cells, "**yes**" if all_met else "no"])
        for name, dims, value in _bound_specs():
            cells = [f"{value(r, variant):.2f}" if r["three_d"] in dims and variant in r["variants"] else "-"
                     for r in results]
            if any(c != "-" for c in cells):
                rows.append([f"{prefix}*{name}*", "(info)", *cells, ""])
    return markdown_table(header, rows)


def goals_numbers(results: list[dict[str, Any]]) -> str:
    header = ["image (raw MB)", "writer", "file MB (% raw; mzarr: level 0 alone MB)", "write s (MB/s)", "encode floor s", "full read ms (MB/s)",
              "decode floor ms", "cold regions: sum ms (median)", "decode floor sum ms",
              "window pass s", "window floor s"]
    rows = []
    who = {"mzarr": "**mzarr** (default, pyramid)", "mzarr f1": "mzarr format 1 (pyramid)",
           "blosc": "Zarr + Blosc-zstd5 bitshuffle (L0)", "tiff": "TIFF zlib + predictor (L0)"}
    for r in results:
        raw = r["raw"]
        for name in [*r["variants"], *(p for p in ("blosc", "tiff") if p in r["size"])]:
            mzarr = name in r["variants"]
            rows.append([
                f"{r['label']} ({raw / MB:.1f})", who[name],
                f"{r['size'][name] / MB:.2f} ({100 * r['size'][name] / raw:.1f}"
                + (f"; L0 {r['size0'][name] / MB:.2f})" if mzarr else ")"),
                f"{r['write'][name]:.2f} ({raw / MB / r['write'][name]:.0f})",
                f"{r['write'][f'floor {name}']:.2f}" if mzarr else "",
                f"{ms(r['full'][name])} ({raw / MB / r['full'][name]:.0f})",
                ms(r["full"][f"floor {name}"]) if mzarr else "",
                f"{ms(r['region'][name])} ({ms(r['region_med'][name])})",
                ms(r["region"][f"floor {name}"]) if mzarr else "",
                f"{r['window'][name]:.2f}" if name in r["window"] else "",
                f"{r['window'][f'floor {name}']:.2f}" if mzarr and r["window"] else "",
            ])
    return markdown_table(header, rows)


def part_goals(volumes: list[tuple[str, np.ndarray, str]], grey: np.ndarray, work: Path, rounds: int,
               n_patches: int, n_regions: int, window_box: tuple[int, ...]) -> str:
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    decode, encode = floor_decoder(), floor_encoder()
    results = []
    for label, vol, _ in volumes:
        results.append(measure_goals_image(label, vol, "zyx", work, rounds, n_patches, window_box, decode, encode))
    grey_label = f"grey mosaic {grey.shape[0]}x{grey.shape[1]} u8"
    results.append(measure_goals_image(grey_label, grey, "yx", work, rounds, n_regions, window_box, decode, encode))
    load1 = os.getloadavg()
    notes = [f"- {label}: {note}" for label, _, note in volumes]
    windows_text = "; ".join(f"{r['label'].split(' ')[0]}: {r['n_windows']} windows in a central "
                             f"{'x'.join(map(str, r['box']))} box" for r in results if r["three_d"])
    return "\n".join([
        (f"One run, every ratio measured side by side; best of {rounds} interleaved rounds (each method takes its "
         "turn within a round, region by region for the random reads; writes, full reads and window passes of small "
         "images get up to 5x as many rounds, ~3 s per round kind). mzarr = `Mzarr(img).save(path)` with the "
         "default options (pyramid included; lossless volumes are format 2: one JPEG XL frame per 64³ brick, "
         "effort 1; 2D: 512² tiles, effort 2), read with its default decoded-chunk cache, emptied before every "
         "cold read (`m.clear_cache()`). Format 1 = the same with `bricks='frames'` (64 frames per brick, effort 2). "
         "Peers: level 0 only (no pyramid), the same chunk shape: Zarr v3 + Blosc(zstd, clevel 5, bitshuffle); in 2D "
         "also a tiled TIFF (tifffile, 512² tiles, zlib, horizontal predictor). Decode floor = the same level-0 "
         "chunk bytes, already in memory, decoded by `imagecodecs.jpegxl_decode` on a ThreadPoolExecutor of "
         f"os.cpu_count() = {os.cpu_count()} threads. Cold regions: {results[0]['n_regions']} random "
         f"{PATCH}³ patches per volume, {results[-1]['n_regions']} random {REGION}² regions in 2D; ratios of the "
         f"sums. Sliding window: {PATCH}³ windows every {STRIDE} voxels, last axis fastest ({windows_text}). "
         "Write = the whole save (mzarr: pyramid included) vs Blosc's level-0 write. Every read-back is checked "
         "bit-exact against the original. Encode floor = every stored chunk of every level (as the array its JPEG XL "
         "stream holds) encoded again by `imagecodecs.jpegxl_encode` with the file's effort on the same number of "
         "threads: the write without downsampling, storage or zarr."),
        "",
        f"Load average (1, 5, 15 min) at the start of this part: {', '.join(f'{x:.2f}' for x in load0)}; at the "
        f"end: {', '.join(f'{x:.2f}' for x in load1)}; part run time {time.perf_counter() - t_start:.0f} s.",
        "",
        "Volumes:", *notes,
        f"- {grey_label}: `mosaic({grey.shape[0]}, {grey.shape[1]}, GREY_SOURCES, seed=0)` (random crops of "
        "scikit-image's real photographs and textures)",
        "",
        "### Summary: issue 8 goal ratios (✓ met, ✗ not met; *bound* rows: mzarr's level 0 alone, and the ratio if "
        "mzarr read at exactly the decode floor)",
        "",
        goals_summary(results),
        "",
        "### Absolute numbers",
        "",
        goals_numbers(results),
    ])


# -- peak memory of a big 3D pyramid build, each in a fresh child process ----------------------------------------
def child_peak(spec: dict[str, Any]) -> None:
    """Runs in a child process: build the pyramid of the memmapped volume, print JSON with time and memory."""
    shape = tuple(spec["shape"])
    with MemorySampler() as idle:
        pass
    base_rss = idle.peak_anon
    mm = np.memmap(spec["source"], dtype=np.uint16, mode="r", shape=shape)
    out = Path(spec["out"])
    remove(out)
    t0 = time.perf_counter()
    with MemorySampler() as mem:
        if spec["kind"] == "mzarr":
            from mzarr import Mzarr

            Mzarr(mm).save(out)
        else:  # plain zarr + blosc, naive: level 0 streamed from the memmap, coarser levels computed in memory
            import zarr
            from zarr.codecs import BloscCodec

            from mzarr_core.pyramid import downsample

            group = zarr.open_group(str(out), mode="w", zarr_format=3)
            n = level_count(shape, "zyx", CHUNK_3D)
            prev: Any = mm
            for i in range(n):
                data = prev if i == 0 else downsample(np.asarray(prev), (True, True, True), "mean")
                arr = group.create_array(str(i), shape=data.shape, chunks=tuple(min(CHUNK_3D, s) for s in data.shape),
                                         dtype=data.dtype, compressors=[BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")])
                arr[...] = data
                prev = data
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "seconds": seconds, "peak_rss": mem.peak_rss, "peak_anon": mem.peak_anon, "base_anon": base_rss,
        "size": path_size(out),
    }))


def part_big3d(work: Path, shape: tuple[int, int, int]) -> str:
    src = work / "big_volume.u16"
    nbytes = int(np.prod(shape)) * 2
    log(f"big-3d: making a {shape} uint16 volume ({nbytes / 2**30:.2f} GiB) on disk")
    mm = np.memmap(src, dtype=np.uint16, mode="w+", shape=shape)
    make_volume(shape, out=mm)
    mm.flush()
    del mm
    rows = []
    for kind, label, out in (
        ("mzarr", "mzarr: Mzarr(np.memmap).save()", work / "big.mzarr"),
        ("zarr", "zarr+blosc-zstd5 (shuffle), naive: each coarser level computed from the whole previous level in memory", work / "big.zarr"),
    ):
        log(f"big-3d: {kind}")
        spec = {"kind": kind, "source": str(src), "shape": list(shape), "out": str(out)}
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            rows.append([label, "failed: " + proc.stderr.strip().splitlines()[-1], "", "", "", "", ""])
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        remove(out)
        rows.append([
            label, f"{r['seconds']:.0f}", f"{nbytes / MB / r['seconds']:.1f}", f"{100 * r['size'] / nbytes:.1f}",
            f"{r['peak_rss'] / 2**20:.0f} ({r['peak_rss'] / nbytes:.2f}x)",
            f"{r['peak_anon'] / 2**20:.0f} ({r['peak_anon'] / nbytes:.2f}x)",
            f"{r['base_anon'] / 2**20:.0f}",
        ])
    remove(src)
    header = ["pyramid build", "seconds", "MB/s", "file % raw", "peak RSS MiB (x volume)",
              "peak private (anon) MiB (x volume)", "interpreter baseline anon MiB"]
    title = f"volume {shape[0]}x{shape[1]}x{shape[2]} uint16 = {nbytes / 2**30:.2f} GiB ({nbytes / MB:.0f} MB), np.memmap on disk"
    return title + "\n\n" + markdown_table(header, rows)


# ---------------------------------------------------------------------------------------------------------------
def machine_line() -> str:
    import imagecodecs
    import tifffile
    import zarr

    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.0f} GB RAM"
    except ImportError:
        mem = ""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({cpu}), {mem}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, zarr {zarr.__version__}, "
        f"imagecodecs {imagecodecs.__version__}, tifffile {tifffile.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes and fewer regions (1-2 minutes)")
    p.add_argument("--big-3d", action="store_true", help="also measure peak memory building the pyramid of a >2 GB volume")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}, or none (default: all)")
    p.add_argument("--formats", default="mzarr,zarr,tiff,png", help="comma list of mzarr, zarr, tiff, png")
    p.add_argument("--grey-size", type=int,
                   help="edge of the grey uint8 mosaic (default 8192, goals part 4096; quick 2048)")
    p.add_argument("--rgb-size", type=int, help="edge of the RGB uint8 mosaic (default 6144; quick 1536)")
    p.add_argument("--vol-shape", help="z,y,x of the uint16 test volume (default 128,1024,1024; quick 64,256,256)")
    p.add_argument("--big-shape", default="1100,1100,1100", help="z,y,x of the --big-3d volume (default 1100^3 uint16)")
    p.add_argument("--regions", type=int, help="random regions per level (default 50; quick 20)")
    p.add_argument("--rounds", type=int, help="interleaved write/read rounds, best kept (default 2, goals part 3; quick 1)")
    p.add_argument("--efforts", default="1,2,3", help="JPEG XL efforts for the effort part (default 1,2,3)")
    p.add_argument("--cache-sizes", default="0,8,32,128,256", help="cache MiB for the reads part's size study")
    p.add_argument("--reads-vol-shape", help="z,y,x of the reads part's volume (default 256,512,512; quick 128,256,256)")
    p.add_argument("--volumes", default=os.environ.get("MZARR_BENCH_VOLUMES", ""),
                   help="goals part: real volumes, os.pathsep-separated (default $MZARR_BENCH_VOLUMES; DICOM folder, "
                   ".nii/.nii.gz, .npy, .tif); none: bench_layout's fallback, labelled as not real data")
    p.add_argument("--patches", type=int, help="goals part: random 128³ patches per volume (default 30; quick 6)")
    p.add_argument("--window-box", default="256,512,512",
                   help="goals part: the sliding window covers a central box of at most z,y,x (default 256,512,512)")
    p.add_argument("--out", type=Path, default=OUT, help="output folder (default benchmarks/out)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child_peak(json.loads(args.child))
        return 0

    grey = args.grey_size or (2048 if args.quick else 8192)
    rgb = args.rgb_size or (1536 if args.quick else 6144)
    vol = tuple(int(v) for v in (args.vol_shape or ("64,256,256" if args.quick else "128,1024,1024")).split(","))
    n_regions = args.regions or (20 if args.quick else 50)
    rounds = args.rounds or (1 if args.quick else 2)
    parts = [s.strip() for s in args.parts.split(",") if s.strip() and s.strip() != "none"]
    if set(parts) - set(PARTS):
        p.error(f"--parts: unknown {', '.join(sorted(set(parts) - set(PARTS)))}; choose from {', '.join(PARTS)} or none")
    formats = [s.strip() for s in args.formats.split(",") if s.strip()]
    if "mzarr" not in formats:
        formats.insert(0, "mzarr")
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]

    sections = [
        "# mzarr_core benchmark",
        "",
        machine_line(),
        "",
        f"Command: `python benchmarks/bench_core.py {' '.join(argv if argv is not None else sys.argv[1:])}`".replace("  ", " "),
        "",
        ("Sizes are file bytes (all pyramid levels; PNG has none) and level-0 chunk/tile payload (L0), as % of the raw "
        f"level-0 bytes. Write MB/s = raw level-0 MB / time to write everything (pyramid included), full read MB/s = "
        f"raw MB / time to read level 0 whole; both best of {rounds} interleaved rounds. Region = median of "
        f"{n_regions} random {REGION}x{REGION} reads (file open, OS cache warm), the formats taking turns region by "
        f"region; the coarsest level is at most {REGION} px, so its region is the whole level; mzarr reads "
        "with its decoded-chunk cache off (cache_bytes=0), like the peers. Every read-back is "
        "checked equal to the original. Ratios are mzarr / peer (size and latency: < 1 is better for mzarr)."),
    ]
    images2d: dict[str, tuple[np.ndarray, str]] = {}
    if "2d" in parts or "effort" in parts or "reads" in parts:
        log("making test images")
        images2d[f"grey {grey}² u8"] = (mosaic(grey, grey, GREY_SOURCES, seed=0), "yx")
        images2d[f"rgb {rgb}² u8"] = (mosaic(rgb, rgb, RGB_SOURCES, seed=3), "yxc")
    if "2d" in parts:
        res = run_images(images2d, formats, work, n_regions, rounds)
        sections += ["", "## Large 2D images (mosaics of scikit-image's real images), lossless", "",
                     comparison_table(res), "", "### Goal check (lossless): smaller than every peer, regions within 2x of the fastest", "",
                     goals_table(res)]
        print("\n".join(sections[-6:]), file=sys.stderr, flush=True)
    if "small" in parts:
        names = ["camera", "coins", "moon", "astronaut"] if args.quick else ["camera", "coins", "moon", "page", "astronaut", "coffee", "hubble_deep_field"]
        small = {}
        for n in names:
            im = skimage_image(n)
            small[f"{n} {im.shape[0]}x{im.shape[1]}" + (" rgb" if im.ndim == 3 else "")] = (im, "yxc" if im.ndim == 3 else "yx")
        res = run_images(small, formats, work, n_regions, rounds)
        sections += ["", "## Unmodified small scikit-image images, lossless", "", comparison_table(res), "",
                     "### Goal check (small images)", "", goals_table(res)]
        print("\n".join(sections[-6:]), file=sys.stderr, flush=True)
    if "effort" in parts:
        efforts = [int(e) for e in args.efforts.split(",")]
        table = part_effort(images2d, work, n_regions, efforts, rounds)
        sections += ["", "## mzarr JPEG XL effort and lossy trade-off (default: lossless, effort 2)", "", table]
        print("\n".join(sections[-4:]), file=sys.stderr, flush=True)
    if "3d" in parts:
        log(f"making a {vol} uint16 volume")
        volume = make_volume(vol)
        fmts3 = [f for f in formats if f in ("mzarr", "zarr")]
        res = run_images({f"volume {vol[0]}x{vol[1]}x{vol[2]} u16": (volume, "zyx")}, fmts3, work, n_regions, rounds,
                         planes=True)
        sections += ["", "## 3D uint16 volume (stacked real slices), lossless, 64³ chunks", "",
                     ("OME-TIFF and PNG are left out: their pyramids (if any) are 2D only. Region = a random 128³ box "
                     "(the coarsest level is at most 64³: the whole level); yx plane = a 512x512 region of one random "
                     "z plane at level 0 (touches 8x8 to 9x9 bricks)."), "", comparison_table(res, planes=True)]
        print("\n".join(sections[-4:]), file=sys.stderr, flush=True)
    if "reads" in parts:
        reads_images = dict(images2d)
        rv = tuple(int(v) for v in (args.reads_vol_shape or ("128,256,256" if args.quick else "256,512,512")).split(","))
        reads_images[f"volume {rv[0]}x{rv[1]}x{rv[2]} u16"] = (make_volume(rv), "zyx")
        table = part_reads(reads_images, work, n_regions, rounds, [int(c) for c in args.cache_sizes.split(",")])
        sections += ["", "## Reads at the codec's limit: decode floor, cache, sliding windows", "", table]
        print("\n".join(sections[-4:]), file=sys.stderr, flush=True)
    if "goals" in parts:
        specs = [s for s in args.volumes.split(os.pathsep) if s.strip()]
        log("goals: loading " + (", ".join(specs) if specs else "the fallback volume (no --volumes given)"))
        goal_vols = goal_volumes(specs, args.quick)
        g = args.grey_size or (2048 if args.quick else 4096)
        key = f"grey {g}² u8"
        grey_img = images2d[key][0] if key in images2d else mosaic(g, g, GREY_SOURCES, seed=0)
        table = part_goals(goal_vols, grey_img, work, args.rounds or (1 if args.quick else 3),
                           args.patches or (6 if args.quick else 30),
                           n_regions, tuple(int(v) for v in args.window_box.split(",")))
        sections += ["", "## Issue 8 goals (format 2): every ratio side by side, on real data", "", table]
        print("\n".join(sections[-4:]), file=sys.stderr, flush=True)
    if args.big_3d:
        big = tuple(int(v) for v in args.big_shape.split(","))
        table = part_big3d(work, big)  # type: ignore[arg-type]
        sections += ["", "## Peak memory building the pyramid of a volume larger than 2 GB (fresh child process each)", "",
                     table, "",
                     ("Peak RSS is the kernel's high-water mark (VmHWM); it counts the pages of the np.memmap source that "
                     "were read, which the kernel can drop at any time. Private (anon) memory is what must really fit in RAM.")]
        print("\n".join(sections[-4:]), file=sys.stderr, flush=True)
    sections += ["", (f"Total run time: {time.perf_counter() - t_start:.0f} s. Load average (1 min) at start "
                 f"{load_start:.1f}, at end {os.getloadavg()[0]:.1f} (other processes on the machine share the cores).")]
    text = "\n".join(sections) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_core.md").write_text(text)
    print(text)
    try:
        work.rmdir()
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
