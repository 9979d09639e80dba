"""Saving what can be saved of a damaged file (``mzarr salvage DAMAGED NEW``), when there is no backup.

A chunk whose bytes changed on disk (a checksum that fails, format 5) or that no longer decodes makes every read
through it an error, so without this a single bad chunk keeps a user from exporting or converting the rest. Salvage
writes a NEW file (the damaged one is never written) from everything that still reads, bit for bit, and fills each
damaged chunk of level 0 from the best that is left, in this order:

1. the chunk's z-planes that still decode alone (slab bricks: the other slabs of the brick; frame bricks: the other
   frames), exactly;
2. the finest coarser level whose covering region decodes, enlarged by repeating its pixels (an approximation, at
   that level's resolution);
3. the fill value, if no level covers it.

Label images are salvaged the same way (their coarser levels hold real labels: the mode rule). Every damaged chunk,
how it was filled and the region it covers are listed in the report and recorded in the new file's attributes under
``"salvaged"``, so that a reader later knows which pixels are approximations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import CorruptChunkError

__all__ = ["SalvageReport", "SalvagedChunk", "SalvagingLevel"]


@dataclass
class SalvagedChunk:
    """One damaged chunk of level 0 and how its region was filled."""

    image: str  # "image" or "label image 'NAME'"
    chunk: tuple[int, ...]  # user-order chunk index
    region: tuple[tuple[int, int], ...]  # (start, stop) per user axis
    exact_planes: int = 0  # z-planes read exactly (slab/frame bricks)
    approximated_planes: int = 0  # z-planes (or the whole 2-D chunk: 1) filled from a coarser level
    from_level: int | None = None  # that level (None: no level decoded, filled with the fill value)
    error: str = ""

    def __str__(self) -> str:
        box = ", ".join(f"{a}:{b}" for a, b in self.region)
        if self.approximated_planes == 0:
            how = f"all {self.exact_planes} planes read exactly"
        elif self.from_level is None:
            how = "filled with the fill value (no level decodes there)"
        else:
            how = f"approximated from level {self.from_level}"
            if self.exact_planes:
                how = (f"{self.exact_planes} planes read exactly, {self.approximated_planes} approximated from level "
                       f"{self.from_level}")
        return f"{self.image} chunk {self.chunk} [{box}]: {how}"

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "chunk": list(self.chunk), "region": [list(r) for r in self.region],
                "exact_planes": self.exact_planes, "approximated_planes": self.approximated_planes,
                "from_level": self.from_level}


@dataclass
class SalvageReport:
    """What :meth:`~mzarr_core.Mzarr.salvage` kept and filled (``path``: the new file)."""

    path: str
    chunks: list[SalvagedChunk] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """True if nothing had to be approximated (no damage, or only planes that still decoded)."""
        return all(c.approximated_planes == 0 for c in self.chunks)

    def lines(self) -> list[str]:
        out = [str(c) for c in self.chunks]
        if not self.chunks:
            out.append(f"no damaged chunk: {self.path} holds every pixel, bit for bit")
        else:
            out.append(f"wrote {self.path}: {len(self.chunks)} damaged chunk(s) of level 0 filled as listed, every other "
                       "pixel bit for bit; the list is kept in its attributes under 'salvaged'")
        return out


def _upsampled(coarse: np.ndarray, factors: tuple[int, ...], origin: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """``coarse`` (the coarser level's pixels from the covering region's origin) enlarged by ``factors`` (nearest),
    cut to ``shape`` starting at ``origin`` (level-0 coordinates relative to the coarse block's start)."""
    out = coarse
    for axis, f in enumerate(factors):
        if f > 1:
            out = np.repeat(out, f, axis=axis)
    return out[tuple(slice(o, o + n) for o, n in zip(origin, shape))]


class SalvagingLevel:
    """Level 0 of ``image`` (its user order) whose damaged chunks read as the best that is left (see the module);
    each damaged chunk is added to ``report`` once. What :meth:`Mzarr.save` reads when salvaging."""

    def __init__(self, image: Any, name: str, report: SalvageReport):
        self.levels = image.levels
        self.level0 = self.levels[0]
        self.shape = tuple(self.level0.shape)
        self.dtype = np.dtype(self.level0.dtype)
        self.chunks = tuple(self.level0.chunks)
        self.axes = self.level0.axes
        self.name = name
        self.report = report
        self._fill = np.zeros((), self.dtype)
        self._done: dict[tuple[int, ...], np.ndarray] = {}  # salvaged chunks (their pixels, kept for later reads)

    def __getitem__(self, key: Any) -> np.ndarray:
        region = tuple(slice(*k.indices(n)[:2]) for k, n in zip(key, self.shape))  # the writer reads boxes
        try:
            return np.asarray(self.level0[region])
        except CorruptChunkError:
            pass
        out = np.empty(tuple(r.stop - r.start for r in region), self.dtype)
        for coords in self.level0.chunks_in(region):
            box = self.level0.chunk_region(coords)
            part = tuple(slice(max(b.start, r.start), min(b.stop, r.stop)) for b, r in zip(box, region))
            dst = tuple(slice(p.start - r.start, p.stop - r.start) for p, r in zip(part, region))
            try:
                out[dst] = self.level0[part]
            except CorruptChunkError as exc:
                chunk = self._salvage(coords, box, exc)
                out[dst] = chunk[tuple(slice(p.start - b.start, p.stop - b.start) for p, b in zip(part, box))]
        return out

    def _salvage(self, coords: tuple[int, ...], box: tuple[slice, ...], exc: Exception) -> np.ndarray:
        if coords in self._done:
            return self._done[coords]
        shape = tuple(b.stop - b.start for b in box)
        chunk = np.empty(shape, self.dtype)
        record = SalvagedChunk(self.name, coords, tuple((b.start, b.stop) for b in box), error=str(exc))
        zi = self.axes.index("z") if "z" in self.axes else None
        missing: list[int] = []  # z-planes (positions in the chunk) still to fill; [0] for a 2-D chunk
        if zi is not None:
            for i, z in enumerate(range(box[zi].start, box[zi].stop)):
                try:
                    plane = self.level0.read_chunk_plane(coords, z)
                except CorruptChunkError:
                    missing.append(i)
                    continue
                chunk[(slice(None),) * zi + (i,)] = plane
                record.exact_planes += 1
        else:
            missing = [0]
        if missing:
            record.approximated_planes = len(missing)
            filled = self._from_coarser(box, record)
            for i in missing:
                index = (slice(None),) * zi + (i,) if zi is not None else (Ellipsis,)
                chunk[index] = filled[index]
        self.report.chunks.append(record)
        self._done[coords] = chunk
        return chunk

    def _from_coarser(self, box: tuple[slice, ...], record: SalvagedChunk) -> np.ndarray:
        """The chunk's region from the finest coarser level that decodes there, enlarged; else the fill value."""
        shape = tuple(b.stop - b.start for b in box)
        base = self.level0.factor
        for level in self.levels[1:]:
            factors = tuple(f // b for f, b in zip(level.factor, base))
            start = tuple(b.start // f for b, f in zip(box, factors))
            stop = tuple(min(n, -(-b.stop // f)) for b, f, n in zip(box, factors, level.shape))
            try:
                coarse = np.asarray(level[tuple(slice(a, b) for a, b in zip(start, stop))])
            except CorruptChunkError:
                continue
            record.from_level = level.index
            origin = tuple(b.start - a * f for b, a, f in zip(box, start, factors))
            out = _upsampled(coarse, factors, origin, shape)
            if out.shape == shape:
                return out
            padded = np.empty(shape, self.dtype)  # an odd edge: repeat the last sample, as the pyramid rule does
            padded[...] = np.pad(out, [(0, n - m) for n, m in zip(shape, out.shape)], mode="edge")
            return padded
        record.from_level = None
        return np.full(shape, self._fill, self.dtype)


def salvaged_attrs(report: SalvageReport, source: str) -> dict[str, Any]:
    """The ``"salvaged"`` attribute of the new file: where it came from and what was filled how."""
    return {"from": source, "chunks": [c.to_json() for c in report.chunks[:10_000]],
            "count": len(report.chunks)}

