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

Label images are salvaged the same way (their coarser levels hold real labels: the mode rule). A lossy file keeps
its codec and its sound chunks byte for byte. A chunk missing from a lossless file while the level above holds data
there is lost, not empty, and filled the same way. A file that no longer opens (cut short, a damaged key index) is
read page by page first (:func:`recover_rows`, :func:`salvage_file`). Every damaged chunk, how it was filled and the
region it covers are listed in the report and recorded in the new file's attributes under ``"salvaged"``, so that
a reader later knows which pixels are approximations.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .chunk_reader import fetch_chunks
from .errors import CorruptChunkError, MzarrError, MzarrValueError
from .guards import ends_with_crc32c, strip_crc32c
from .repair import chunk_key, stored_chunk_keys

__all__ = ["SalvageReport", "SalvagedChunk", "SalvagingLevel", "recover_rows", "salvage_file"]


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
    lost: bool = False  # the chunk is missing from the file while the coarser level holds data there

    def __str__(self) -> str:
        box = ", ".join(f"{a}:{b}" for a, b in self.region)
        lost = " (missing from the file: lost, or never stored because it held only the fill value)" if self.lost else ""
        return f"{self.image} chunk {self.chunk} [{box}]{lost}: {self._how()}"

    def _how(self) -> str:
        if self.approximated_planes == 0:
            how = f"all {self.exact_planes} planes read exactly"
        elif self.from_level is None:
            how = "filled with the fill value (no level decodes there)"
        else:
            how = f"approximated from level {self.from_level}"
            if self.exact_planes:
                how = (f"{self.exact_planes} planes read exactly, {self.approximated_planes} approximated from level "
                       f"{self.from_level}")
        return how

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "chunk": list(self.chunk), "region": [list(r) for r in self.region],
                "exact_planes": self.exact_planes, "approximated_planes": self.approximated_planes,
                "from_level": self.from_level, "lost": self.lost}


@dataclass
class SalvageReport:
    """What :meth:`~mzarr_core.Mzarr.salvage` kept and filled (``path``: the new file)."""

    path: str
    source: str = ""  # the damaged file
    chunks: list[SalvagedChunk] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)  # damaged chunks of coarser levels: rebuilt from level 0
    copied: bool = False  # level 0's sound chunks were copied byte for byte (lossy files), not re-encoded
    recovered: str = ""  # why the file did not open, when its rows were read from its pages (recover_rows)
    rows_recovered: int = 0  # rows read whole from the pages then
    rows_lost: int = 0  # rows found in the pages but not whole (their keys are unknown)

    @property
    def exact(self) -> bool:
        """True if nothing had to be approximated (no damage, or only planes that still decoded)."""
        return all(c.approximated_planes == 0 for c in self.chunks)

    def lines(self) -> list[str]:
        out = []
        if self.recovered:
            out.append(f"{self.source} does not open ({self.recovered}); its pages were read directly: "
                       f"{self.rows_recovered} rows recovered whole, {self.rows_lost} found but not whole; every chunk "
                       "not recovered is listed as missing, filled from the level above where that was recovered, "
                       "else with the fill value")
        out += [str(c) for c in self.chunks] + [f"{r}: damaged, rebuilt exactly from level 0" for r in self.rebuilt]
        kept = ("its sound chunks copied byte for byte" if self.copied else "every other pixel bit for bit")
        if not self.chunks:
            rebuilt = f" ({len(self.rebuilt)} damaged chunk(s) of coarser levels rebuilt from it)" if self.rebuilt else ""
            out.append(f"wrote {self.path}: level 0 holds every pixel of the file, bit for bit{rebuilt}")
        else:
            out.append(f"wrote {self.path}: {len(self.chunks)} damaged or missing chunk(s) of level 0 filled as listed, "
                       f"{kept}; the list is kept in its attributes under 'salvaged'")
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
    each damaged chunk is added to ``report`` once. What :meth:`Mzarr.save` reads when salvaging.

    In a lossless file a chunk missing from the file (a deleted row, a file lost from a folder copy) whose coarser
    level holds data there is lost, not empty (the pyramid rule: an empty chunk's footprint is empty), and is
    filled like a damaged one."""

    def __init__(self, image: Any, name: str, report: SalvageReport, lossless: bool = True):
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
        self._lock = threading.Lock()
        # rows read one by one from pages (a cut file): a chunk not found may as well be lost as empty
        self._assume_lost = bool(report.recovered)
        self._present = (stored_chunk_keys(self.level0) if self._assume_lost or (lossless and len(self.levels) > 1)
                         else None)

    def __getitem__(self, key: Any) -> np.ndarray:
        region = tuple(slice(*k.indices(n)[:2]) for k, n in zip(key, self.shape))  # the writer reads boxes
        lost = self._lost_in(region)
        if not lost:
            try:
                return np.asarray(self.level0[region])
            except CorruptChunkError:
                pass
        out = np.empty(tuple(r.stop - r.start for r in region), self.dtype)
        for coords in self.level0.chunks_in(region):
            box = self.level0.chunk_region(coords)
            part = tuple(slice(max(b.start, r.start), min(b.stop, r.stop)) for b, r in zip(box, region))
            dst = tuple(slice(p.start - r.start, p.stop - r.start) for p, r in zip(part, region))
            if coords in lost:
                chunk = self._salvage(coords, box, None)
            else:
                try:
                    out[dst] = self.level0[part]
                    continue
                except CorruptChunkError as exc:
                    chunk = self._salvage(coords, box, exc)
            out[dst] = chunk[tuple(slice(p.start - b.start, p.stop - b.start) for p, b in zip(part, box))]
        return out

    def _lost_in(self, region: tuple[slice, ...]) -> set[tuple[int, ...]]:
        """Chunks of ``region`` missing from the file whose footprint in the next level is not empty."""
        if self._present is None:
            return set()
        out = set()
        for coords in self.level0.chunks_in(region):
            if chunk_key(self.level0, coords) in self._present or coords in self._done:
                continue
            if self._assume_lost:
                out.add(coords)
                continue
            record = SalvagedChunk(self.name, coords, ())
            if bool(np.any(self._from_coarser(self.level0.chunk_region(coords), record, finest_only=True) != self._fill)):
                out.add(coords)
        return out

    def stored_payload(self, storage_coords: tuple[int, ...]) -> bytes | None:
        """The stored bytes of a sound level-0 chunk without its checksum (what a lossy file's salvage copies);
        None for a damaged, missing or never written one (encoded from the salvaged pixels instead)."""
        coords = tuple(storage_coords[self.level0.perm.index(i)] for i in range(len(storage_coords)))
        try:
            self.level0.read_chunk(coords)  # decodes (and checks the checksum): a damaged chunk is not copied
            key = chunk_key(self.level0, coords)
            data = fetch_chunks(self.level0.storage.store_path.store, [key]).get(key)
        except MzarrError:
            return None
        if data is None:
            return None
        return bytes(strip_crc32c(data)) if ends_with_crc32c(self.level0.storage.metadata.codecs) else bytes(data)

    def _salvage(self, coords: tuple[int, ...], box: tuple[slice, ...], exc: Exception | None) -> np.ndarray:
        with self._lock:
            if coords in self._done:
                return self._done[coords]
        shape = tuple(b.stop - b.start for b in box)
        chunk = np.empty(shape, self.dtype)
        record = SalvagedChunk(self.name, coords, tuple((b.start, b.stop) for b in box),
                               error="missing from the file" if exc is None else str(exc), lost=exc is None)
        zi = self.axes.index("z") if "z" in self.axes else None
        missing: list[int] = []  # z-planes (positions in the chunk) still to fill; [0] for a 2-D chunk
        if zi is not None and exc is not None:
            for i, z in enumerate(range(box[zi].start, box[zi].stop)):
                try:
                    plane = self.level0.read_chunk_plane(coords, z)
                except CorruptChunkError:
                    missing.append(i)
                    continue
                chunk[(slice(None),) * zi + (i,)] = plane
                record.exact_planes += 1
        else:
            missing = list(range(shape[zi])) if zi is not None else [0]
        if missing:
            record.approximated_planes = len(missing)
            filled = self._from_coarser(box, record)
            for i in missing:
                index = (slice(None),) * zi + (i,) if zi is not None else (Ellipsis,)
                chunk[index] = filled[index]
        with self._lock:
            if coords not in self._done:
                self.report.chunks.append(record)
                self._done[coords] = chunk
            return self._done[coords]

    def _from_coarser(self, box: tuple[slice, ...], record: SalvagedChunk, finest_only: bool = False) -> np.ndarray:
        """The chunk's region from the finest coarser level that decodes there, enlarged; else the fill value."""
        shape = tuple(b.stop - b.start for b in box)
        base = self.level0.factor
        for level in self.levels[1:2] if finest_only else self.levels[1:]:
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


def damaged_chunks(levels: Any, name: str) -> list[str]:
    """``"NAME level i chunk c"`` for each chunk of the coarser ``levels`` that cannot be decoded (salvage rebuilds
    them from level 0: it says so)."""
    out = []
    for level in levels[1:]:
        for coords in itertools.product(*(range(g) for g in level.chunk_grid)):
            try:
                level.read_chunk(coords)
            except CorruptChunkError:
                out.append(f"{name} level {level.index} chunk {coords}")
    return out


def _varint(buf: Any, i: int) -> tuple[int, int]:
    """SQLite's big-endian varint at ``buf[i]``: (value, index after it)."""
    value = 0
    for k in range(8):
        byte = buf[i + k]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i + k + 1
    return (value << 8) | buf[i + 8], i + 9


def _free_pages(data: Any, page_size: int, pages: int) -> set[int]:
    """The pages on the file's freelist that can still be read (free pages may hold stale rows: never recovered)."""
    out: set[int] = set()
    trunk = int.from_bytes(data[32:36], "big")
    while 0 < trunk <= pages and trunk not in out:
        out.add(trunk)
        base = (trunk - 1) * page_size
        count = int.from_bytes(data[base + 4 : base + 8], "big")
        for k in range(min(count, page_size // 4 - 2)):
            out.add(int.from_bytes(data[base + 8 + 4 * k : base + 12 + 4 * k], "big"))
        trunk = int.from_bytes(data[base : base + 4], "big")
    return out


class _Pages:
    """The table leaf cells of a SQLite file held in ``data`` (the part of the file that is left: pages past its
    end, and overflow chains reaching them, are lost); free pages are skipped (they may hold stale rows)."""

    def __init__(self, data: Any):
        self.data = data
        header = bytes(data[:16]) == SQLITE_MAGIC
        size = int.from_bytes(data[16:18], "big") if header else MZARR_PAGE_SIZE  # no header: the size Mzarr writes
        self.page_size = 65536 if size == 1 else size
        self.valid = self.page_size >= 512 and not self.page_size & (self.page_size - 1)
        if not self.valid:
            return
        self.usable = self.page_size - (data[20] if header else 0)
        self.pages = len(data) // self.page_size
        # without the header the freelist is unknown: of a key's rows the newest is still the one kept
        self.free = _free_pages(data, self.page_size, self.pages) if header else set()
        self.most = self.usable - 35  # a table leaf cell's largest local payload
        self.least = ((self.usable - 12) * 32 // 255) - 23

    def cells(self) -> Iterator[tuple[int, int]]:
        """(page, cell index) of every cell of every table leaf page."""
        if not self.valid:
            return
        data, size = self.data, self.page_size
        for page in range(1, self.pages + 1):
            if page in self.free:
                continue
            head = (page - 1) * size + (100 if page == 1 else 0)
            if data[head] == 0x0D:  # a table leaf
                yield from ((page, c) for c in range(min(int.from_bytes(data[head + 3 : head + 5], "big"), size // 2)))

    def row(self, page: int, cell: int) -> tuple[int, str, bytes] | None:
        """(rowid, key, value) of a ``(key TEXT, value BLOB)`` cell; None for another table's row (sqlite_master);
        ValueError (IndexError, UnicodeDecodeError) for one that is not whole."""
        data, size = self.data, self.page_size
        base = (page - 1) * size
        head = base + (100 if page == 1 else 0)
        pos = base + int.from_bytes(data[head + 8 + 2 * cell : head + 10 + 2 * cell], "big")
        length, pos = _varint(data, pos)
        rowid, pos = _varint(data, pos)
        if length > len(data):
            raise ValueError("a payload larger than the file")
        spill = self.least + (length - self.least) % (self.usable - 4)
        local = length if length <= self.most else (spill if spill <= self.most else self.least)
        payload = bytearray(data[pos : pos + local])
        following = int.from_bytes(data[pos + local : pos + local + 4], "big") if local < length else 0
        seen: set[int] = set()
        while len(payload) < length:
            if not 0 < following <= self.pages or following in seen:
                raise ValueError("an overflow page is lost")
            seen.add(following)
            at = (following - 1) * size
            payload += data[at + 4 : at + 4 + min(self.usable - 4, length - len(payload))]
            following = int.from_bytes(data[at : at + 4], "big")
        header, j = _varint(payload, 0)
        types = []
        while j < header:
            kind, j = _varint(payload, j)
            types.append(kind)
        if len(types) != 2 or types[0] < 13 or types[0] % 2 == 0 or types[1] < 12 or types[1] % 2:
            return None
        key_len, value_len = (types[0] - 13) // 2, (types[1] - 12) // 2
        if header + key_len + value_len != len(payload):
            raise ValueError("a row whose record does not add up")
        return rowid, payload[header : header + key_len].decode("utf-8"), bytes(payload[header + key_len :])


_NOT_WHOLE = (IndexError, ValueError, UnicodeDecodeError)
SQLITE_MAGIC = b"SQLite format 3\x00"
MZARR_PAGE_SIZE = 4096  # the page size every .mzarr is written with (mzarr_core.sqlite_store)


def recover_rows(path: Path, into: Path) -> tuple[int, int]:
    """Copy every ``(key, value)`` row still held whole in the pages of the damaged .mzarr ``path`` into a new
    container ``into`` by reading its pages directly (as SQLite's ``.recover`` does): a cut (an interrupted copy),
    a damaged index or interior page costs only the rows whose own pages are gone. Free pages are skipped (they may
    hold stale rows) and, of several rows with one key, the newest (largest rowid) is kept. Returns ``(rows
    copied, rows found but not whole)``."""
    import mmap

    from .sqlite_store import SqliteStore

    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size < 512:
            return 0, 0
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if bytes(data[:16]) != SQLITE_MAGIC and Path(path).suffix.lower() != ".mzarr":
                return 0, 0  # not an SQLite file, and not one whose header page was lost
            pages = _Pages(data)
            newest: dict[str, tuple[int, int, int]] = {}  # key -> (rowid, page, cell): one row's bytes at a time
            lost = 0
            for page, cell in pages.cells():
                try:
                    row = pages.row(page, cell)
                except _NOT_WHOLE:
                    lost += 1
                    continue
                if row is not None and (row[1] not in newest or newest[row[1]][0] < row[0]):
                    newest[row[1]] = (row[0], page, cell)
            out = SqliteStore(into, create=True, fast_build=True)
            try:
                for _, page, cell in newest.values():
                    row = pages.row(page, cell)
                    assert row is not None
                    out.set_bytes_sync(row[1], row[2])
                out.finalize()  # commit, journal on, close
            finally:
                out.close()
    return len(newest), lost


def salvaged_attrs(report: SalvageReport) -> dict[str, Any]:
    """The ``"salvaged"`` attribute of the new file: where it came from and what was filled how."""
    return {"from": report.source, "chunks": [c.to_json() for c in report.chunks[:10_000]],
            "count": len(report.chunks), "rebuilt": report.rebuilt[:10_000], "rows_lost": report.rows_lost}


def salvage_file(path: str | Path, target: str | Path, *, progress: Any = None, checksums: bool = True) -> SalvageReport:
    """:meth:`Mzarr.salvage` of the file at ``path`` into the new file ``target``; a .mzarr that no longer opens
    (cut short by an interrupted copy, a damaged page of its key index) has its rows read one by one
    (:func:`recover_rows`) into a temporary container beside ``target`` first, and is salvaged from that."""
    import uuid

    from .errors import MzarrFormatError
    from .image import Mzarr

    path, target = Path(path), Path(target)
    try:
        image = Mzarr(path)
    except MzarrFormatError as exc:
        if path.is_dir() or not path.is_file():
            raise
        reason = str(exc)
        if target.exists():
            raise MzarrValueError(f"{target} exists: salvage writes a new file and never replaces one; give another name") from None
        scratch = target.with_name(f".{target.name}.rows-{uuid.uuid4().hex[:8]}.mzarr")
        try:
            copied, lost = recover_rows(path, scratch)
            if copied == 0:
                raise MzarrFormatError(f"nothing of {path} can be read ({reason}): restore it from a backup") from None
            report = SalvageReport(str(target), source=str(path), recovered=reason.split(": ", 1)[-1],
                                   rows_recovered=copied, rows_lost=lost)
            try:
                recovered = Mzarr(scratch)
            except MzarrFormatError as again:
                raise MzarrFormatError(f"{path} cannot be salvaged: even read row by row, {again}") from None
            with recovered:
                return recovered.salvage(target, progress=progress, checksums=checksums, report=report)
        finally:
            scratch.unlink(missing_ok=True)
    with image:
        return image.salvage(target, progress=progress, checksums=checksums)

