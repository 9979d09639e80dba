"""JPEG XL effort per pyramid level: size, encode and decode time relative to the default effort 2.

Lossless, 8 tiles of 512² per level of a 4096² mosaic of real photographs (grey and RGB), each level the `mean`
pyramid of the one above. Usage: ``python benchmarks/bench_effort.py``. Results: docs/BENCHMARKS.md, "JPEG XL effort
per level".
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import imagecodecs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import GREY_SOURCES, RGB_SOURCES, mosaic  # noqa: E402

from mzarr_core.pyramid import downsample  # noqa: E402

EFFORTS = (1, 2, 3, 4, 5, 7)


def main() -> None:
    print("| image, level | " + " | ".join(f"e{e} size / enc / dec" for e in EFFORTS if e != 2) + " |")
    for name, sources in (("grey", GREY_SOURCES), ("RGB", RGB_SOURCES)):
        levels = [mosaic(4096, 4096, sources, seed=1)]
        for _ in range(3):
            halve = (True, True, False) if levels[-1].ndim == 3 else (True, True)
            levels.append(downsample(levels[-1], halve, "mean"))
        for index, image in enumerate(levels):
            tiles = [image[y : y + 512, x : x + 512] for y in range(0, min(1024, image.shape[0]), 512) for x in range(0, min(2048, image.shape[1]), 512)][:8]
            rows = {}
            for effort in EFFORTS:
                photometric = None if image.ndim == 3 else "GRAY"
                t0 = time.perf_counter()
                encoded = [imagecodecs.jpegxl_encode(t, lossless=True, effort=effort, photometric=photometric) for t in tiles]
                t_enc = time.perf_counter() - t0
                t0 = time.perf_counter()
                for e in encoded:
                    imagecodecs.jpegxl_decode(e)
                rows[effort] = (sum(map(len, encoded)), t_enc, time.perf_counter() - t0)
            size2, enc2, dec2 = rows[2]
            cells = [f"{s / size2:.3f} / {te / enc2:.1f}x / {td / dec2:.2f}x" for e, (s, te, td) in rows.items() if e != 2]
            print(f"| {name}, {index} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
