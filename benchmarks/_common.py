"""Shared helpers for the benchmarks: real test images (no downloads), timing, sizes, memory sampling."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Self

import numpy as np

OUT = Path(__file__).resolve().parent / "out"

GREY_SOURCES = ("camera", "coins", "moon", "page", "text", "brick", "grass", "gravel", "cell", "clock")
RGB_SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry")


def skimage_image(name: str) -> np.ndarray:
    """One of scikit-image's bundled real images (shipped in the wheel: never downloaded)."""
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)())


def mosaic(height: int, width: int, sources: tuple[str, ...], seed: int = 0) -> np.ndarray:
    """A large image of real content: rows of random crops of real images, flipped/rotated, with a gain.

    Row heights and piece widths are random, so the seams between pieces do not line up with 512 chunk edges
    and no chunk repeats another one exactly.
    """
    rng = np.random.default_rng(seed)
    images = [skimage_image(n) for n in sources]
    images += [np.ascontiguousarray(np.swapaxes(im, 0, 1)) for im in images]  # rotated copies: more shapes
    sample = images[0]
    out = np.empty((height, width) + sample.shape[2:], sample.dtype)
    y = 0
    while y < height:
        row_h = min(int(rng.integers(160, 480)), height - y)
        x = 0
        while x < width:
            candidates = [im for im in images if im.shape[0] >= row_h]
            im = candidates[int(rng.integers(len(candidates)))]
            w = min(int(rng.integers(160, min(im.shape[1], 720) + 1)), width - x, im.shape[1])
            oy = int(rng.integers(0, im.shape[0] - row_h + 1))
            ox = int(rng.integers(0, im.shape[1] - w + 1))
            piece = im[oy : oy + row_h, ox : ox + w]
            if rng.random() < 0.5:
                piece = piece[::-1]
            if rng.random() < 0.5:
                piece = piece[:, ::-1]
            gain = rng.uniform(0.8, 1.15)
            out[y : y + row_h, x : x + w] = np.clip(piece.astype(np.float32) * gain, 0, 255).astype(out.dtype)
            x += w
        y += row_h
    return out


def volume_slice(base: np.ndarray, second: np.ndarray, z: int, shape_yx: tuple[int, int]) -> np.ndarray:
    """Slice ``z`` of a uint16 test volume made from two real grey mosaics.

    Neighbouring slices are the same content shifted by a few pixels with a slowly varying gain (the z
    correlation of a real stack), mixed with a second real image so values use ~12 bits, not multiples of 257.
    """
    h, w = shape_yx
    oy, ox = (3 * z) % (base.shape[0] - h), (2 * z) % (base.shape[1] - w)
    a = base[oy : oy + h, ox : ox + w].astype(np.float32)
    b = second[(oy // 2) : (oy // 2) + h, (ox // 3) : (ox // 3) + w].astype(np.float32)
    gain = 14.0 * (1.0 + 0.25 * np.sin(z / 37.0))
    return np.clip(a * gain + b * 1.7 + 100.0, 0, 65535).astype(np.uint16)


def make_volume(shape: tuple[int, int, int], seed: int = 1, out: Any = None) -> np.ndarray:
    """A uint16 (z, y, x) volume of real content; ``out`` may be an ``np.memmap`` to build it on disk."""
    z, h, w = shape
    big = max(h, w) + 3 * z + 64
    base = mosaic(max(big, 1024), max(big, 1024), GREY_SOURCES, seed)
    second = mosaic(max(big, 1024), max(big, 1024), GREY_SOURCES, seed + 7)
    if out is None:
        out = np.empty(shape, np.uint16)
    for i in range(z):
        out[i] = volume_slice(base, second, i, (h, w))
    return out


def path_size(path: Path) -> int:
    """Bytes of a file, or of all files under a folder (apparent sizes); SQLite -wal/-shm siblings included."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    total = path.stat().st_size
    for suffix in ("-wal", "-shm", "-journal"):
        extra = Path(str(path) + suffix)
        if extra.exists():
            total += extra.stat().st_size
    return total


def remove(path: Path) -> None:
    import shutil

    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
    for suffix in ("-wal", "-shm", "-journal"):  # SQLite sidecars a reader may leave behind
        extra = Path(str(path) + suffix)
        if extra.exists():
            extra.unlink()


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class MemorySampler:
    """Peak resident memory of this process while the block runs (Linux: /proc/self/status).

    ``peak_rss`` is the kernel's high-water mark VmHWM (includes pages of memory-mapped files such as an
    ``np.memmap`` source); ``peak_anon`` is the sampled maximum of RssAnon (private memory the process allocated:
    what actually has to fit in RAM).
    """

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak_anon = 0
        self.peak_rss = 0
        self.base_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_anon = max(self.peak_anon, _status_kb("RssAnon") * 1024)
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self.base_anon = _status_kb("RssAnon") * 1024
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_anon = max(self.peak_anon, _status_kb("RssAnon") * 1024)
        self.peak_rss = _status_kb("VmHWM") * 1024
        if not self.peak_rss:  # not Linux
            import resource

            self.peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if os.uname().sysname == "Darwin" else 1024)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
