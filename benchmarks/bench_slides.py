"""Whole-slide images (issue 9): the three ways to store a JPEG slide, measured on SVS-like slides.

No real slide can be downloaded, so the slides are built offline (tests/slide_fixtures.py) the way Aperio writes
them: a mosaic of real photographs (mostly scikit-image's immunohistochemistry crop) as tissue over ~40 % of the
area, bright glass with sensor noise elsewhere, tiled 256 x 256 abbreviated JPEG tiles sharing JPEGTables, a 4x and
a 16x level, a thumbnail, a label and a macro, an Aperio ImageDescription. Three JPEG settings: Q70 4:2:2 (Aperio's
usual "JPEG/RGB Q=70"), Q80 4:2:0 and Q90 RGB (no colour transform, no subsampling).

For each slide and each mode (through ``mzarr_core.formats.slide.convert_slide``):

* (a) ``lossless``: lossless JPEG XL of the decoded pixels;
* (b) ``lossy`` at distance 1, 2 and 3 (JPEG XL effort 2, the library's default), and 2 and 3 at effort 5;
* (c) ``recompress``: level 0's JPEG tiles transcoded without loss, levels 1+ lossy at distance 2, 3, 4 and 6
  (effort 2), and 3 at effort 5.

Measured: the .mzarr size against the source file (and level 0 against the source's level 0), the conversion time,
region reads (random 1024 x 1024 regions of level 0 with the cache off, median; and the same regions read from the
source through tifffile's zarr store), and the pixel error of level 0 and of level 1 against the source's decoded
pixels (level 1: against the source's level 0 decoded and halved by the mean rule).

    python benchmarks/bench_slides.py                # 8192 x 8192 slides
    python benchmarks/bench_slides.py --size 4096    # quicker
    python benchmarks/bench_slides.py --slides /path/a.svs /path/b.svs   # real slides, if you have some

Writes benchmarks/out/bench_slides.md and .json. See docs/BENCHMARKS.md, "Whole-slide images".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _common import OUT, markdown_table, remove  # noqa: E402

MB = 1e6
REGION = 1024
SLIDES = (("Q70 4:2:2", 70, "ycbcr", "422"), ("Q80 4:2:0", 80, "ycbcr", "420"), ("Q90 RGB", 90, "rgb", "444"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def modes(quick: bool) -> list[tuple[str, str, dict[str, Any]]]:
    if quick:
        return [("(a) lossless", "lossless", {}), ("(b) lossy d=3", "lossy", {"distance": 3.0}),
                ("(c) recompress, levels 1+ d=3", "recompress", {"distance": 3.0})]
    out = [("(a) lossless", "lossless", {})]
    out += [(f"(b) lossy d={d:g}", "lossy", {"distance": d}) for d in (1.0, 2.0, 3.0)]
    out += [(f"(b) lossy d={d:g} effort 5", "lossy", {"distance": d, "effort": 5}) for d in (2.0, 3.0)]
    out += [(f"(c) recompress, levels 1+ d={d:g}", "recompress", {"distance": d}) for d in (2.0, 3.0, 4.0, 6.0)]
    out.append(("(c) recompress, levels 1+ d=3 effort 5", "recompress", {"distance": 3.0, "effort": 5}))
    return out


def level_bytes(path: Path) -> dict[str, int]:
    """Stored bytes per top-level key ('0', '1', ..., 'associated') of a .mzarr."""
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT substr(key, 1, instr(key, '/') - 1), SUM(LENGTH(value)) FROM zarr GROUP BY 1"
        ).fetchall()
    return {k or "(root)": int(v) for k, v in rows}


def source_reads(path: Path, regions: list[tuple[int, int]]) -> float:
    import tifffile
    import zarr

    with tifffile.TiffFile(path) as tif:
        arr = zarr.open(tif.series[0].aszarr(level=0), mode="r")
        times = []
        for y, x in regions:
            t = time.perf_counter()
            np.asarray(arr[y : y + REGION, x : x + REGION])
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(source: Path, out: Path, mode: str, options: dict[str, Any], ref0: np.ndarray, ref1: np.ndarray,
            regions: list[tuple[int, int]]) -> dict[str, Any]:
    from mzarr import Mzarr
    from mzarr_core.formats.slide import convert_slide

    remove(out)
    t = time.perf_counter()
    convert_slide(source, out, compression=mode, **options)
    encode = time.perf_counter() - t
    size = os.path.getsize(out)
    parts = level_bytes(out)
    with Mzarr(out) as m:
        m.cache_bytes = 0
        times = []
        for y, x in regions:
            t = time.perf_counter()
            m[y : y + REGION, x : x + REGION]
            times.append(time.perf_counter() - t)
        level0 = m[...]
        err0 = np.abs(level0.astype(np.int16) - ref0)
        del level0
        level1 = m.level(1)[...]
        err1 = np.abs(level1.astype(np.int16) - ref1)
        del level1
        codec = m.codec
    return {
        "bytes": size, "level0_bytes": parts.get("0", 0), "levels1_bytes": sum(v for k, v in parts.items() if k.isdigit() and k != "0"),
        "associated_bytes": parts.get("associated", 0), "encode_s": encode, "region_ms": statistics.median(times) * 1e3,
        "max0": int(err0.max()), "mean0": float(err0.mean()), "max1": int(err1.max()), "mean1": float(err1.mean()),
        "codec": codec,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--slides", nargs="*", type=Path, help="real slides to measure instead of built ones")
    args = parser.parse_args()

    import tifffile

    import mzarr_core  # noqa: F401
    from mzarr_core.pyramid import downsample
    from slide_fixtures import slide_mosaic, write_svs_like

    work = OUT / "slides"
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                               "cpus": os.cpu_count(), "size": args.size, "slides": {}}
    sources: list[tuple[str, Path]] = []
    if args.slides:
        sources = [(p.name, p) for p in args.slides]
    else:
        log(f"building a {args.size} x {args.size} slide of real pixels")
        image = slide_mosaic(args.size, args.size, seed=1)
        for name, quality, photometric, subsampling in SLIDES[:1] if args.quick else SLIDES:
            path = work / f"slide_{args.size}_q{quality}_{subsampling}.svs"
            write_svs_like(path, image, quality=quality, photometric=photometric, subsampling=subsampling)
            sources.append((name, path))
        del image
    rng = np.random.default_rng(7)
    for name, path in sources:
        with tifffile.TiffFile(path) as tif:
            ref0 = tif.series[0].asarray()
            l0_bytes = int(sum(tif.series[0].levels[0].keyframe.databytecounts))
        ref1 = downsample(ref0, (True, True) + ((False,) if ref0.ndim == 3 else ()), "mean").astype(np.int16)
        ref0 = ref0.astype(np.int16)
        h, w = ref0.shape[:2]
        regions = [(int(rng.integers(0, h - REGION)), int(rng.integers(0, w - REGION))) for _ in range(12)]
        from mzarr_core.formats.slide import describe_slide

        info = describe_slide(path)
        entry: dict[str, Any] = {"path": str(path), "bytes": os.path.getsize(path), "level0_bytes": l0_bytes,
                                 "estimates": info.estimates, "default": info.default_compression(),
                                 "shape": list(ref0.shape), "source_region_ms": source_reads(path, regions) * 1e3,
                                 "modes": {}}
        log(f"{name}: {entry['bytes'] / MB:.1f} MB, level 0 {l0_bytes / MB:.1f} MB")
        for label, mode, options in modes(args.quick):
            row = measure(path, work / "out.mzarr", mode, options, ref0, ref1, regions)
            entry["modes"][label] = row
            log(f"  {label}: {row['bytes'] / MB:.2f} MB ({row['bytes'] / entry['bytes']:.2f}x), {row['encode_s']:.1f} s, "
                f"region {row['region_ms']:.0f} ms, level 0 err max {row['max0']} mean {row['mean0']:.2f}, "
                f"level 1 err max {row['max1']} mean {row['mean1']:.2f}")
        remove(work / "out.mzarr")
        results["slides"][name] = entry
        del ref0, ref1

    lines = [f"Whole-slide images, {results['date']}, {results['cpus']} cores, slides {args.size} x {args.size} RGB "
             "(40 % tissue), 256 x 256 JPEG tiles.", ""]
    for name, entry in results["slides"].items():
        raw = np.prod(entry["shape"])
        lines.append(f"**{name}**: source {entry['bytes'] / MB:.2f} MB (level 0 {entry['level0_bytes'] / MB:.2f} MB, "
                     f"{entry['level0_bytes'] * 8 / raw * 3:.2f} bits/pixel); source region read "
                     f"{entry['source_region_ms']:.0f} ms (tifffile); estimated before converting: "
                     + ", ".join(f"{m} {b / MB:.2f} MB" for m, b in entry["estimates"].items())
                     + f"; default: {entry['default']}")
        lines.append("")
        rows = []
        for label, r in entry["modes"].items():
            rows.append([
                label, f"{r['bytes'] / MB:.2f}", f"{r['bytes'] / entry['bytes']:.2f}",
                f"{r['level0_bytes'] / entry['level0_bytes']:.2f}", f"{r['levels1_bytes'] / MB:.2f}",
                f"{r['encode_s']:.1f}", f"{r['region_ms']:.0f}", f"{r['max0']} / {r['mean0']:.2f}",
                f"{r['max1']} / {r['mean1']:.2f}",
            ])
        lines.append(markdown_table(
            ["mode", "MB", "/ source", "level 0 / source's", "levels 1+ MB", "encode s", "1024² region ms",
             "level 0 error max / mean", "level 1 error max / mean"], rows))
        lines.append("")
    text = "\n".join(lines)
    (OUT / "bench_slides.md").write_text(text)
    (OUT / "bench_slides.json").write_text(json.dumps(results, indent=1, default=str))
    print(text)


if __name__ == "__main__":
    main()
