"""Label pyramid (mode) speed: the previous mode kernel (stack the 2^k inputs, count matches per candidate along a
last axis of length 4 or 8) against the current one (pairwise equality counts chunk by chunk), on real
segmentations. Prints a table; every result is checked equal to the previous kernel's.

    .venv/bin/python benchmarks/bench_mode.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import mzarr_core.pyramid as pyramid
from mzarr_core import Mzarr
from mzarr_core.pyramid import downsample


def legacy_mode(views: list[np.ndarray]) -> np.ndarray:
    """The mode kernel before this change, verbatim (it received ``np.stack(views, axis=-1)``)."""
    values = np.stack(views, axis=-1)
    counts = np.stack([(values == values[..., j : j + 1]).sum(-1) for j in range(values.shape[-1])], axis=-1)
    best = counts.argmax(-1)
    return np.take_along_axis(values, best[..., None], -1)[..., 0]


def images() -> dict[str, np.ndarray]:
    from skimage import data, measure

    coins = measure.label(data.coins() > 100)  # 303 x 384, 100+ labels
    reps = (4096 // coins.shape[0] + 1, 4096 // coins.shape[1] + 1)
    tiled = np.tile(coins, reps)[:4096, :4096].astype(np.uint16)
    blobs = measure.label(data.binary_blobs(length=256, n_dim=3, volume_fraction=0.3, rng=1)).astype(np.uint32)
    return {"coins tiled 4096² uint16": tiled, "blobs 256³ uint32": blobs}


def pyramid_levels(a: np.ndarray, chunk: int) -> list[np.ndarray]:
    out = [a]
    while any(n > chunk for n in out[-1].shape):
        prev = out[-1]
        out.append(downsample(prev, tuple(n > 1 for n in prev.shape), "mode"))
    return out


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    current = pyramid._mode
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, a in images().items():
            chunk = 512 if a.ndim == 2 else 64
            halve = (True,) * a.ndim
            tasks = {
                "level 0 -> 1": lambda a=a, halve=halve: downsample(a, halve, "mode"),
                "whole pyramid": lambda a=a, chunk=chunk: pyramid_levels(a, chunk),
                "save(is_label)": lambda a=a: Mzarr(a, is_label=True).save(Path(tmp) / "l.mzarr"),
            }
            for task, fn in tasks.items():
                timings = {}
                for kernel_name, kernel in (("before", legacy_mode), ("after", current)):
                    pyramid._mode = kernel
                    try:
                        timings[kernel_name] = best_of(fn, args.repeat)
                    finally:
                        pyramid._mode = current
                rows.append((name, task, timings["before"], timings["after"]))
            pyramid._mode = legacy_mode
            try:
                old = pyramid_levels(a, chunk)
            finally:
                pyramid._mode = current
            new = pyramid_levels(a, chunk)
            assert len(old) == len(new) and all(np.array_equal(x, y) for x, y in zip(old, new)), name
    print(f"{'image':<26} {'what':<15} {'before s':>9} {'after s':>9} {'speed-up':>9}")
    for name, task, before, after in rows:
        print(f"{name:<26} {task:<15} {before:>9.3f} {after:>9.3f} {before / after:>8.1f}x")
    print("every pyramid level identical to the previous kernel's")


if __name__ == "__main__":
    main()
