"""What crc32c checksums (format 5) cost: the same images saved with and without them, in the same run.

Measures, for a real CT volume (the abdomen CT stack in benchmarks/out, int16, slab bricks) and a 2-D mosaic of
scikit-image's pictures (uint8): file size, save time, a whole read with the cache emptied, and cold z-planes (each
read with the cache emptied: one slab per brick, the viewer's case). Prints a Markdown table of ratios
(checksums / none) for docs/BENCHMARKS.md, "Checksums".

Then ``--flips`` trials of silent corruption: one random bit flipped in a random stored level-0 chunk of each file
(what a failing disk or a bad copy does), the chunk's region read back, and the outcome counted: an error naming the
chunk, the same pixels (a bit the decoder never looks at), or other pixels returned without a word.

    python benchmarks/bench_checksums.py [--planes 512] [--rounds 3] [--flips 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, mosaic  # noqa: E402

from mzarr import Mzarr  # noqa: E402

CT = OUT / "stack4-fnndsc_andrei_abdomen_ct.tif"


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn) -> tuple[float, float]:
    """(wall s, process CPU s) of ``fn()``."""
    w, c = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - w, cpu() - c


def measure(image: np.ndarray, folder: Path, name: str, checksums: bool, rounds: int) -> dict[str, float]:
    path = folder / f"{name}-{'crc' if checksums else 'none'}.mzarr"
    save = min(timed(lambda: Mzarr(image).save(path, checksums=checksums)) for _ in range(rounds))
    out = {"size_mb": path.stat().st_size / 1e6, "save_s": save[0], "save_cpu": save[1]}

    def whole() -> None:
        with Mzarr(path) as m:
            m.cache_bytes = 0
            m[...]

    out["read_s"], out["read_cpu"] = min(timed(whole) for _ in range(rounds))
    if image.ndim == 3:
        planes = np.random.default_rng(0).integers(0, image.shape[0], 40)

        def cold_planes() -> None:
            with Mzarr(path) as m:
                level = m.levels[0]
                for z in planes:
                    m.cache_bytes = 0  # empties the cache: every plane decodes its slabs
                    m.cache_bytes = 256 << 20
                    level.z_plane(int(z))

        wall, c = min(timed(cold_planes) for _ in range(rounds))
        out["plane_ms"], out["plane_cpu_ms"] = 1000 * wall / len(planes), 1000 * c / len(planes)
    with Mzarr(path) as m:
        assert np.array_equal(m[...], image)  # lossless either way
    path.unlink()
    return out


def flip_trials(image: np.ndarray, folder: Path, checksums: bool, trials: int, seed: int) -> dict[str, int]:
    """Outcomes of ``trials`` single-bit flips in random level-0 chunks of ``image`` saved with/without checksums."""
    import shutil
    import sqlite3

    from mzarr_core.errors import MzarrError

    path = Mzarr(image).save(folder / f"flip-{checksums}.mzarr", checksums=checksums)
    conn = sqlite3.connect(path)
    keys = [k for (k,) in conn.execute("SELECT key FROM zarr WHERE key LIKE '0/c/%'")]
    conn.close()
    rng = np.random.default_rng(seed)
    out = {"error naming the chunk": 0, "same pixels": 0, "other pixels, silently": 0}
    work = folder / "flip-work.mzarr"
    for _ in range(trials):
        shutil.copyfile(path, work)
        key = keys[int(rng.integers(len(keys)))]
        conn = sqlite3.connect(work)
        blob = bytearray(conn.execute("SELECT value FROM zarr WHERE key=?", (key,)).fetchone()[0])
        blob[int(rng.integers(len(blob)))] ^= 1 << int(rng.integers(8))
        conn.execute("UPDATE zarr SET value=? WHERE key=?", (bytes(blob), key))
        conn.commit()
        conn.close()
        with Mzarr(work) as m:
            coords = tuple(int(i) for i in key.split("/")[2:])
            level = m.levels[0]
            user = tuple(coords[level.perm.index(i)] for i in range(len(coords))) if hasattr(level, "perm") else coords
            region = level.chunk_region(user)
            try:
                got = m[region]
            except MzarrError as exc:
                out["error naming the chunk" if key in str(exc) else "error (chunk not named)"] = out.get(
                    "error naming the chunk" if key in str(exc) else "error (chunk not named)", 0) + 1
                continue
            out["same pixels" if np.array_equal(got, image[region]) else "other pixels, silently"] += 1
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--planes", type=int, default=512, help="CT planes used (default 512 of 1100)")
    p.add_argument("--rounds", type=int, default=3, help="best of this many runs per measure")
    p.add_argument("--flips", type=int, default=200, help="bit-flip trials per image and format (0: none)")
    args = p.parse_args()
    images: dict[str, np.ndarray] = {}
    if CT.exists():
        import tifffile

        images[f"CT {args.planes}x512x512 int16 (slabs)"] = np.ascontiguousarray(
            tifffile.imread(CT, key=range(min(args.planes, 1100))))
    else:
        print(f"note: {CT} is missing (made by bench_dask_write.py): the CT row is left out", file=sys.stderr)
    images["mosaic 8192x8192 uint8 (2-D tiles)"] = mosaic(8192, 8192, ("camera", "coins", "moon", "page", "brick"))
    rows = []
    with tempfile.TemporaryDirectory(dir=OUT if OUT.exists() else None) as tmp:
        for name, image in images.items():
            none = measure(image, Path(tmp), "x", False, args.rounds)
            crc = measure(image, Path(tmp), "x", True, args.rounds)
            rows.append((name, none, crc))
    load = os.getloadavg()
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; best of {args.rounds}; ratio = checksums / none\n")
    print("| image | size MB none / crc (ratio) | save s (ratio) | whole read s, CPU s (ratios) | cold z-plane ms, CPU ms (ratios) |")
    print("| --- | --- | --- | --- | --- |")
    for name, a, b in rows:
        plane = (f"{a['plane_ms']:.1f} / {b['plane_ms']:.1f} ({b['plane_ms'] / a['plane_ms']:.3f}), CPU "
                 f"{a['plane_cpu_ms']:.1f} / {b['plane_cpu_ms']:.1f} ({b['plane_cpu_ms'] / a['plane_cpu_ms']:.3f})"
                 if "plane_ms" in a else "-")
        print(f"| {name} | {a['size_mb']:.2f} / {b['size_mb']:.2f} ({b['size_mb'] / a['size_mb']:.4f}) "
              f"| {a['save_s']:.2f} / {b['save_s']:.2f} ({b['save_s'] / a['save_s']:.3f}) "
              f"| {a['read_s']:.2f} / {b['read_s']:.2f} ({b['read_s'] / a['read_s']:.3f}), CPU "
              f"{a['read_cpu']:.2f} / {b['read_cpu']:.2f} ({b['read_cpu'] / a['read_cpu']:.3f}) | {plane} |")
    if args.flips:
        print(f"\n{args.flips} single-bit flips in random level-0 chunks, each read back:\n")
        print("| image | format | error naming the chunk | same pixels | other pixels, silently |")
        print("| --- | --- | --- | --- | --- |")
        with tempfile.TemporaryDirectory(dir=OUT if OUT.exists() else None) as tmp:
            for name, image in images.items():
                small = image[:128, :256, :256] if image.ndim == 3 else image[:2048, :2048]
                for checksums in (False, True):
                    counts = flip_trials(small, Path(tmp), checksums, args.flips, seed=1)
                    fmt = "5 (crc32c)" if checksums else ("4" if image.ndim == 3 else "1")
                    extra = {k: v for k, v in counts.items() if k not in ("error naming the chunk", "same pixels",
                                                                           "other pixels, silently")}
                    print(f"| {name.split(' (')[0]} cut to {'x'.join(map(str, small.shape))} | {fmt} "
                          f"| {counts['error naming the chunk']} | {counts['same pixels']} "
                          f"| {counts['other pixels, silently']} |" + (f" {extra}" if extra else ""))


if __name__ == "__main__":
    main()
