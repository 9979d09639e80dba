"""``mzarr optimize``: re-encode a file's lossless JPEG XL chunks at another effort, in place, without loss.

Effort only changes how hard the encoder searches; every effort decodes to the same pixels, so chunks of different
efforts can live in one array. That makes the work safe to interrupt: each batch of chunks is one transaction, the
level's metadata names the new effort first, and a file stopped half-way is whole (partly optimized; run again).
Measured trade-off (docs/BENCHMARKS.md): effort 3 stores lossless photographs ~10 % smaller than the default 2 but
decodes ~2x slower; higher efforts gain 1-3 % more and decode 4-5x slower.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zarr

from .codecs import codec_from_json
from .errors import MzarrError, MzarrFormatError, MzarrValueError
from .image import Mzarr
from .writer import Progress

DEFAULT_EFFORT = 3
JPEGXL_CODEC = "imagecodecs_jpegxl"
BATCH_BYTES = 64 * 2**20  # decoded bytes re-encoded per transaction


@dataclass
class OptimizeReport:
    """What ``optimize`` did: chunks re-encoded and bytes before/after (payload and file)."""

    path: str
    effort: int
    chunks: int = 0
    kept_old: int = 0  # chunks whose re-encoding was larger and were left as they were
    payload_before: int = 0
    payload_after: int = 0
    file_before: int = 0
    file_after: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def saved(self) -> int:
        return self.file_before - self.file_after

    def lines(self) -> list[str]:
        pct = 100.0 * self.payload_after / self.payload_before if self.payload_before else 100.0
        return [
            f"{self.chunks} chunks re-encoded at JPEG XL effort {self.effort}"
            + (f" ({self.kept_old} kept as they were: no smaller)" if self.kept_old else ""),
            f"chunk data: {self.payload_before / 1e6:.2f} MB -> {self.payload_after / 1e6:.2f} MB ({pct:.1f} %)",
            f"file: {self.file_before / 1e6:.2f} MB -> {self.file_after / 1e6:.2f} MB ({self.saved / 1e6:+.2f} MB saved)",
            *self.notes,
        ]


def _jpegxl_config(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The configuration of a level's lossless JPEG XL serializer, or None if the level is stored otherwise."""
    for codec in doc.get("codecs", []):
        if isinstance(codec, dict) and codec.get("name") == JPEGXL_CODEC:
            config = codec.setdefault("configuration", {})
            return config if config.get("lossless") else None
    return None


def optimize(path: str | os.PathLike, effort: int = DEFAULT_EFFORT, progress: Progress | None = None) -> OptimizeReport:
    """Re-encode every lossless JPEG XL chunk of the .mzarr file at ``path`` at ``effort``, in place.

    Pixels never change (bit-exact); with a higher effort, a chunk whose new encoding is not smaller keeps its old
    bytes. Batches of chunks are committed one transaction at a time, so Ctrl+C, a kill or a full disk leaves a
    whole file (partly optimized); the freed space is returned to the file system at the end (SQLite VACUUM).
    """
    effort = int(effort)
    if not 1 <= effort <= 10:
        raise MzarrValueError(f"effort must be between 1 and 10, got {effort}")
    path = Path(path)
    with Mzarr(path, "r+") as image:
        store = image._store
        if not hasattr(store, "vacuum"):
            raise MzarrFormatError(
                f"{path} is not a single-file .mzarr: optimize re-encodes .mzarr files in place (convert a folder "
                f"with 'mzarr convert {path} NEW.mzarr --effort {effort}')"
            )
        codec = image.codec or {}
        if codec.get("name") != "jpegxl" or not codec.get("lossless"):
            if codec.get("lossless", True) is False:
                why = "only (re-encoding lossy chunks would lose quality again)"
            elif codec.get("name") == "blosc":
                why = (f"only; for a smaller file store its bricks as JPEG XL (slower to read): 'mzarr convert {path} "
                       "NEW.mzarr --bricks slabs'")
            else:
                why = "only"
            raise MzarrValueError(
                f"{path} is stored with {codec.get('name', 'an unknown codec')}"
                f"{'' if codec.get('lossless', True) else ' (lossy)'}: optimize re-encodes lossless JPEG XL chunks "
                + why
            )
        storage_codec = codec_from_json(codec)
        report = OptimizeReport(str(path), effort, payload_before=store.total_bytes(), file_before=path.stat().st_size)
        levels = image.levels
        total = sum(math.prod(lv.chunk_grid) for lv in levels)
        done = 0
        if progress:
            progress(0, total)
        for level in levels:
            array: Any = level.storage  # the zarr array (path, chunks, metadata)
            meta_key = f"{array.path}/zarr.json"
            doc = json.loads(store.get_bytes_sync(meta_key))
            config = _jpegxl_config(doc)
            if config is None:
                done += math.prod(level.chunk_grid)
                continue
            old_effort = int(config.get("effort", 2))
            config["effort"] = effort
            with image.transaction():  # every effort decodes the same: the metadata may name the new one first
                store.set_bytes_sync(meta_key, json.dumps(doc, indent=2).encode())
            reencode = zarr.open_array(store, path=array.path, mode="r+")
            if storage_codec is not None:  # encode as the file's codec says (strip bricks stay strips)
                reencode = storage_codec.adopt(reencode)
            chunk_bytes = math.prod(array.chunks) * array.dtype.itemsize
            per_batch = max(1, BATCH_BYTES // chunk_bytes)
            coords = itertools.product(*(range(-(-n // c)) for n, c in zip(array.shape, array.chunks)))
            while batch := list(itertools.islice(coords, per_batch)):
                with image.transaction():
                    for index in batch:
                        key = array.path + "/" + array.metadata.encode_chunk_key(index)
                        old = store.get_bytes_sync(key)
                        if old is None:  # never written: the fill value
                            continue
                        region = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, array.chunks, array.shape))
                        reencode[region] = reencode[region]
                        new = store.get_bytes_sync(key)
                        report.chunks += 1
                        if effort > old_effort and (new is None or len(new) >= len(old)):
                            store.set_bytes_sync(key, old)
                            report.kept_old += 1
                done += len(batch)
                if progress:
                    progress(done, total)
        with image.transaction():  # the file's own record of its codec
            root = json.loads(store.get_bytes_sync("zarr.json"))
            root["attributes"]["mzarr"]["codec"]["effort"] = effort
            store.set_bytes_sync("zarr.json", json.dumps(root, indent=2).encode())
        report.payload_after = store.total_bytes()
        try:
            store.vacuum()
        except MzarrError as exc:
            report.notes.append(f"note: the file could not be compacted ({exc}); it is whole and optimized")
    report.file_after = path.stat().st_size
    return report
