"""What is in a file (``mzarr info``) and whether every chunk still decodes (``mzarr verify``)."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Any

from .errors import CorruptChunkError
from .image import Mzarr
from .writer import Progress


def size_on_disk(path: Path) -> int:
    """Bytes a file (with any SQLite side files) or a folder takes."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())


def describe(image: Mzarr) -> dict[str, Any]:
    """A JSON-ready summary: shape, dtype, axes, levels, chunks, codec, size on disk, compression ratio, attrs."""
    raw = math.prod(image.shape) * image.dtype.itemsize
    levels = image.levels
    pyramid_raw = sum(math.prod(lv.shape) * lv.dtype.itemsize for lv in levels)
    out: dict[str, Any] = {
        "path": str(image.path) if image.path else None,
        "shape": list(image.shape),
        "dtype": str(image.dtype),
        "axes": image.axes,
        "spacing": list(image.spacing) if image.spacing else None,
        "unit": image.unit,
        "is_label": image.is_label,
        "downsample": image.downsample_method,
        "codec": image.codec,
        "levels": [
            {"index": lv.index, "shape": list(lv.shape), "chunks": list(lv.chunks), "factor": list(lv.factor)}
            for lv in levels
        ],
        "raw_bytes": raw,
        "attrs": image.attrs().to_dict(),
    }
    if image.path is not None:
        disk = size_on_disk(image.path)
        out["size_on_disk"] = disk
        out["compression_ratio"] = round(pyramid_raw / disk, 3) if disk else None
        out["pyramid_overhead"] = round(pyramid_raw / raw - 1, 3)
    return out


def format_description(info: dict[str, Any]) -> str:
    """Human-readable lines for ``mzarr info``."""
    lines = [
        f"file:        {info['path']}",
        f"shape:       {tuple(info['shape'])}  axes: {info['axes']}  dtype: {info['dtype']}",
        f"spacing:     {tuple(info['spacing']) if info['spacing'] else 'not set'} {info['unit'] or ''}".rstrip(),
        f"codec:       {info['codec']}",
        f"labels:      {'yes (pyramid by mode)' if info['is_label'] else 'no'}; downsample: {info['downsample']}",
        f"levels:      {len(info['levels'])}",
    ]
    for lv in info["levels"]:
        lines.append(f"  level {lv['index']}: shape {tuple(lv['shape'])} chunks {tuple(lv['chunks'])} factor {tuple(lv['factor'])}")
    if "size_on_disk" in info:
        mb = info["size_on_disk"] / 1e6
        lines.append(f"size:        {mb:.2f} MB on disk, {info['raw_bytes'] / 1e6:.2f} MB raw (level 0)")
        lines.append(f"ratio:       {info['compression_ratio']}x (whole pyramid raw / disk); pyramid overhead {info['pyramid_overhead']:.1%}")
    lines.append(f"attrs:       {info['attrs'] if info['attrs'] else '{}'}")
    return "\n".join(lines)


def verify(image: Mzarr, progress: Progress | None = None) -> tuple[int, list[str]]:
    """Decode every chunk of every level; return (chunks checked, problems found)."""
    problems: list[str] = []
    levels = image.levels
    total = sum(math.prod(lv.chunk_grid) for lv in levels)
    done = 0
    for lv in levels:
        for coords in itertools.product(*(range(n) for n in lv.chunk_grid)):
            try:
                lv[lv.chunk_region(coords)]
            except CorruptChunkError as exc:
                problems.append(str(exc))
            done += 1
            if progress and (done % 16 == 0 or done == total):
                progress(done, total)
    return done, problems
