"""Region statistics over a polygon spanning a 20000² image of real content (issue 10: "a region statistic over a
20000² polygon is exact, streams with progress and cancel, peak memory under 1 GB"): mzarr_core.regions streamed
chunk by chunk against NumPy on the loaded full-resolution array, each in a fresh child process (time, peak memory),
results checked equal. Prints a markdown table and the machine's load.

    .venv/bin/python benchmarks/bench_regions.py [--size 20000] [--file benchmarks/out/regions_20000.mzarr]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import GREY_SOURCES, OUT, MemorySampler, markdown_table, mosaic, path_size  # noqa: E402


def polygon(size: int, vertices: int = 64, seed: int = 5) -> list[tuple[float, float]]:
    """An irregular star polygon whose bounding box is (almost) the whole ``size``² image; non-integer vertices."""
    rng = np.random.default_rng(seed)
    c = size / 2
    pts = []
    for i in range(vertices):
        t = 2 * math.pi * i / vertices
        r = (0.4999 if i % 4 == 0 else rng.uniform(0.3, 0.48)) * size
        pts.append((c + r * math.cos(t) + rng.uniform(0.01, 0.99), c + r * math.sin(t) + rng.uniform(0.01, 0.99)))
    return [(min(max(x, 0.1), size - 0.1), min(max(y, 0.1), size - 0.1)) for x, y in pts]


def build(path: Path, size: int) -> float:
    """Write the ``size``² uint8 mosaic of scikit-image's real images (lossless); returns seconds."""
    from mzarr_core import Mzarr

    t = time.perf_counter()
    image = mosaic(size, size, GREY_SOURCES, seed=3)
    Mzarr(image, spacing=(0.25, 0.25), unit="micrometer").save(path)
    return time.perf_counter() - t


def child(mode: str, path: str, size: int) -> dict:
    """One measurement in this (fresh) process."""
    from mzarr_core import Mzarr
    from mzarr_core.annotations import Annotation
    from mzarr_core.regions import region_mask, region_stats

    shape = Annotation("polygon", polygon(size))
    out: dict = {"mode": mode}
    calls = []
    with MemorySampler() as mem:
        t = time.perf_counter()
        if mode in ("streamed", "tracemalloc"):
            if mode == "tracemalloc":
                import tracemalloc

                tracemalloc.start()
            with Mzarr(path, cache_bytes=0) as m:
                s = region_stats(m, shape, progress=lambda d, n: calls.append((d, n, time.perf_counter())))
            if mode == "tracemalloc":
                out["traced_peak"] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            out.update(count=s.count, mean=s.mean[0], std=s.std[0], min=s.min[0], max=s.max[0],
                       hist=s.histogram[0].tolist(), edges=s.bin_edges[0].tolist(), windows=calls[-1][1],
                       calls=len(calls), first_progress=calls[0][2] - t,
                       longest_gap=max(b[2] - a[2] for a, b in zip(calls, calls[1:])))
        else:  # NumPy on the loaded full array (the mask rasterised in row blocks: a full-width scanline table
            # of 20000 rows would alone take 1.6 GB)
            with Mzarr(path, cache_bytes=0) as m:
                full = m.numpy()
            out["load_s"] = time.perf_counter() - t
            mask = np.zeros(full.shape, bool)
            for r in range(0, full.shape[0], 1024):
                mask[r:r + 1024] = region_mask(shape, (r, min(r + 1024, full.shape[0])), (0, full.shape[1]))
            values = full[mask]
            lo, hi = int(values.min()), int(values.max())  # integer data: integer-aligned bins (regions.integer_bins)
            width = -(-(hi - lo + 1) // 256)
            counts, edges = np.histogram(values, lo - 0.5 + width * np.arange(-(-(hi - lo + 1) // width) + 1))
            out.update(count=int(values.size), mean=float(values.mean()), std=float(values.std()),
                       min=int(values.min()), max=int(values.max()), hist=counts.tolist(), edges=edges.tolist())
        out["seconds"] = time.perf_counter() - t
    out["peak_anon"] = mem.peak_anon
    out["peak_rss"] = mem.peak_rss
    return out


def run_child(mode: str, path: Path, size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--file", str(path), "--size", str(size)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.file or OUT / f"regions_{args.size}.mzarr"
    if args.child:
        print(json.dumps(child(args.child, str(path), args.size)))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        print(f"writing {path} ({args.size}² uint8 mosaic of real images)...", flush=True)
        print(f"  {build(path, args.size):.0f} s, {path_size(path) / 1e6:.0f} MB", flush=True)
    load_before = os.getloadavg()
    results = {mode: run_child(mode, path, args.size) for mode in ("streamed", "tracemalloc", "numpy")}
    load_after = os.getloadavg()
    s, t, n = results["streamed"], results["tracemalloc"], results["numpy"]
    exact = {
        "count": s["count"] == n["count"], "mean": s["mean"] == n["mean"], "min/max": (s["min"], s["max"]) == (n["min"], n["max"]),
        "histogram": s["hist"] == n["hist"] and s["edges"] == n["edges"],
        "std (rel. diff)": abs(s["std"] - n["std"]) / n["std"],
    }
    mb = 1e6
    rows = [
        ["mzarr_core.regions.region_stats (streamed, cache 0)", f"{s['seconds']:.1f}", f"{s['peak_anon'] / mb:.0f}",
         f"{s['peak_rss'] / mb:.0f}", "-", f"{s['windows']} windows, first progress after {s['first_progress']:.2f} s, "
         f"longest gap {s['longest_gap']:.2f} s"],
        ["same, under tracemalloc", f"{t['seconds']:.1f}", f"{t['peak_anon'] / mb:.0f}", f"{t['peak_rss'] / mb:.0f}",
         f"{t['traced_peak'] / mb:.0f}", ""],
        ["NumPy on the loaded full array", f"{n['seconds']:.1f}", f"{n['peak_anon'] / mb:.0f}",
         f"{n['peak_rss'] / mb:.0f}", "-", f"load (decode all of level 0) {n['load_s']:.1f} s"],
    ]
    print(f"\n{args.size}² uint8, polygon of 64 vertices (bounding box {args.size}²), {s['count']} pixels inside; "
          f"file {path_size(path) / 1e6:.0f} MB")
    print(markdown_table(["method", "time (s)", "peak private memory (MB)", "peak RSS (MB)", "traced peak (MB)", "notes"], rows))
    print(f"\nexact: {json.dumps(exact)}")
    print(f"mean {s['mean']!r} std {s['std']!r} min {s['min']} max {s['max']}")
    print(f"load average (1, 5, 15 min): before {tuple(round(x, 2) for x in load_before)}, "
          f"after {tuple(round(x, 2) for x in load_after)}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
