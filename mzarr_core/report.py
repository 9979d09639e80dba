"""What is in a file (``mzarr info``) and whether every chunk still decodes and every pyramid level still agrees
with the level below (``mzarr verify``)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .image import Mzarr
from .repair import ChunkDisagreement, PyramidWalk, label_pyramids, offset_progress, pyramid_check_problem
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
    slide = out["attrs"].get("slide")
    if isinstance(slide, dict):  # a whole-slide image's summary line (mzarr_core.formats.slide)
        out["slide"] = {k: slide.get(k) for k in ("vendor", "format", "objective_power", "mpp", "associated")}
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
    slide = info.get("slide")
    if isinstance(slide, dict):  # a whole-slide image (mzarr_core.formats.slide): the scanner's own record
        mpp = slide.get("mpp")
        parts = [f"{slide.get('vendor', '?')} ({slide.get('format', '?')})"]
        if slide.get("objective_power"):
            parts.append(f"{slide['objective_power']:g}x objective")
        if isinstance(mpp, list) and len(mpp) == 2 and all(isinstance(v, (int, float)) for v in mpp):
            parts.append(f"MPP {mpp[0]:.4f} x {mpp[1]:.4f} um/pixel")
        if slide.get("associated"):
            parts.append("associated images: " + ", ".join(str(a) for a in slide["associated"]))
        lines.append(f"slide:       {', '.join(parts)}")
    if "size_on_disk" in info:
        mb = info["size_on_disk"] / 1e6
        lines.append(f"size:        {mb:.2f} MB on disk, {info['raw_bytes'] / 1e6:.2f} MB raw (level 0)")
        lines.append(f"ratio:       {info['compression_ratio']}x (whole pyramid raw / disk); pyramid overhead {info['pyramid_overhead']:.1%}")
    lines.append(f"attrs:       {info['attrs'] if info['attrs'] else '{}'}")
    return "\n".join(lines)


@dataclass
class VerifyReport:
    """What :func:`verify` found. Unpacks as ``checked, problems = verify(image)`` (the 0.1 return value)."""

    chunks_checked: int = 0  # chunks decoded (every chunk of every level)
    damaged: list[str] = field(default_factory=list)  # one message per chunk that cannot be decoded
    pyramid_checked: bool = False  # False for legacy ZIPs and folders written by other tools
    pyramid_note: str = ""  # how the pyramid was checked, or why not
    chunks_compared: int = 0  # chunks of levels 1.. compared with the level below downsampled
    chunks_not_compared: int = 0  # chunks whose source in the level below cannot be decoded
    disagreements: list[ChunkDisagreement] = field(default_factory=list)  # the first MAX_KEPT, by level and chunk
    disagreement_count: int = 0  # all of them
    structure_problems: list[str] = field(default_factory=list)  # levels whose shape does not follow the rule
    labels: dict[str, "VerifyReport"] = field(default_factory=dict)  # each label image, checked by the mode rule
    checksums: bool = False  # the file's chunks carry crc32c checksums (format 5): a changed chunk is "damaged"
    damaged_at: list[int] = field(default_factory=list)  # the level of each entry of ``damaged``
    missing: list[str] = field(default_factory=list)  # chunks not stored under disagreeing ones (cleared or lost)

    @property
    def ok(self) -> bool:
        return not (self.damaged or self.disagreement_count or self.structure_problems) and all(
            r.ok for r in self.labels.values()
        )

    @property
    def problems(self) -> list[str]:
        """Every problem as a line of text: damaged chunks, misshapen levels, disagreeing chunks (label images'
        prefixed with their name)."""
        out = list(self.damaged) + list(self.structure_problems) + [str(d) for d in self.disagreements]
        if self.disagreement_count > len(self.disagreements):
            out.append(f"... and {self.disagreement_count - len(self.disagreements)} more disagreeing chunks")
        for name, report in self.labels.items():
            out += [f"label image {name!r}: {p}" for p in report.problems]
        return out

    def __iter__(self) -> Iterator[Any]:
        yield self.chunks_checked
        yield self.problems


def verify(image: Mzarr, progress: Progress | None = None) -> VerifyReport:
    """Decode every chunk of every level and check each pyramid level against the level below, downsampled by the
    file's rule (bit-exact for lossless files, within :func:`~mzarr_core.repair.lossy_tolerance` for lossy ones).

    Memory stays bounded (superblock by superblock); each block is read in one snapshot, so a concurrent writer's
    committed edit (level 0 and its pyramid update together) is never mistaken for a disagreement.
    ``progress(done, total)`` counts chunk decodes.
    """
    why_not = pyramid_check_problem(image)
    levels = image.levels
    if why_not is None and len(levels) < 2:
        why_not = "the image has a single level"

    walk = PyramidWalk(image, None, check=why_not is None, snapshot=image.snapshot)
    labels, label_problems = label_pyramids(image)
    label_walks = [(lab, PyramidWalk(lab, None, check=len(lab.levels) > 1, snapshot=image.snapshot)) for lab in labels]
    total = walk.total + sum(w.total for _, w in label_walks)
    walk.progress = offset_progress(progress, 0, total)
    walk.run()
    offset = walk.total
    label_reports: dict[str, VerifyReport] = {}
    for lab, lab_walk in label_walks:
        lab_walk.progress = offset_progress(progress, offset, total)
        lab_walk.run()
        offset += lab_walk.total
        label_reports[lab.name] = VerifyReport(
            chunks_checked=sum(math.prod(lv.chunk_grid) for lv in lab.levels),
            damaged=[msg for _, msg in sorted(lab_walk.damaged.items())],
            damaged_at=[j for (j, _), _ in sorted(lab_walk.damaged.items())],
            pyramid_checked=lab_walk.check,
            pyramid_note="pyramid checked: every level is the level below downsampled by the 'mode' rule, bit-exact"
            if lab_walk.check else "pyramid not checked: the label image has a single level",
            chunks_compared=lab_walk.compared,
            chunks_not_compared=lab_walk.not_compared,
            disagreements=lab_walk.disagreements(),
            disagreement_count=lab_walk.disagreement_count,
            structure_problems=list(lab_walk.structure),
        )
    if why_not is not None:
        note = f"pyramid not checked: {why_not}"
    elif walk.tolerance is None:
        note = f"pyramid checked: every level is the level below downsampled by the '{image.downsample_method}' rule, bit-exact"
    else:
        note = (
            f"pyramid checked: every level is the level below downsampled by the '{image.downsample_method}' rule, "
            f"within the lossy tolerance ({walk.tolerance:.3g} on the mean of any tile)"
        )
    return VerifyReport(
        chunks_checked=sum(math.prod(lv.chunk_grid) for lv in levels),
        damaged=[msg for _, msg in sorted(walk.damaged.items())],
        pyramid_checked=why_not is None,
        pyramid_note=note,
        chunks_compared=walk.compared,
        chunks_not_compared=walk.not_compared,
        disagreements=walk.disagreements(),
        disagreement_count=walk.disagreement_count,
        structure_problems=list(walk.structure) + label_problems,
        labels=label_reports,
        checksums=image.checksums,
        damaged_at=[j for (j, _), _ in sorted(walk.damaged.items())],
        missing=[msg for _, msg in sorted(walk.missing.items())],
    )
