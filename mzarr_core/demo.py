"""Build a demo .mzarr from real photographs bundled with scikit-image (a large RGB mosaic with a pyramid).

Usage: ``python -m mzarr_core.demo [OUT.mzarr] [--size 8192]``. Needs scikit-image (``pip install scikit-image``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .cli import progress_bar
from .errors import MzarrError
from .image import Mzarr


def mosaic(size: int) -> np.ndarray:
    """A ``size`` x ``size`` RGB mosaic of scikit-image's bundled photographs, flipped so no tile repeats exactly."""
    try:
        from skimage import data, transform
    except ImportError:
        raise MzarrError("the demo image is made from scikit-image's bundled photos: pip install scikit-image") from None
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    tile = 512
    tiles = [np.ascontiguousarray((transform.resize(p, (tile, tile), anti_aliasing=True) * 255).astype(np.uint8)) for p in photos]
    out = np.empty((size, size, 3), np.uint8)
    n = -(-size // tile)
    for i in range(n):
        for j in range(n):
            t = tiles[(i * 7 + j * 3) % len(tiles)]
            t = t[:: (-1 if (i + j) % 2 else 1), :: (-1 if i % 3 == 0 else 1)]
            h, w = min(tile, size - i * tile), min(tile, size - j * tile)
            out[i * tile : i * tile + h, j * tile : j * tile + w] = t[:h, :w]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=Path("demo.mzarr"))
    parser.add_argument("--size", type=int, default=8192, help="edge of the square mosaic in pixels")
    args = parser.parse_args(argv)
    try:
        image = Mzarr(mosaic(args.size), attrs={"description": "Mosaic of scikit-image's bundled photographs"})
        with progress_bar(f"writing {args.output}") as bar:
            image.save(args.output, progress=bar)
    except MzarrError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: open it with  mzarr-viewer {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
