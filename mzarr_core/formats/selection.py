"""What the exporters share: the :class:`Selection` of an image they write (a level, a region of it, its geometry),
read block by block, and the atomic temporary output file."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MzarrError, MzarrReadOnlyError, MzarrValueError
from ..indexing import AxisIndex, normalize
from .geometry import AxisMap, Geometry, image_geometry, selection_geometry

Progress = Callable[[int, int], None]
BLOCK_BYTES = 64 << 20  # a block read for writing holds at most about this many bytes (plus one chunk row)


def parse_region(text: str, ndim: int) -> tuple:
    """``"100:612,2000:2512"`` -> a tuple of slices/ints (NumPy syntax per axis, user axis order)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > ndim:
        raise MzarrError(f"--region has {len(parts)} parts but the image has {ndim} axes")
    out: list[Any] = []
    for part in parts:
        try:
            if ":" in part:
                fields = [int(f) if f.strip() else None for f in part.split(":")]
                if len(fields) > 3:
                    raise ValueError(part)
                out.append(slice(*fields))
            else:
                out.append(int(part))
        except ValueError:
            raise MzarrError(f"--region part {part!r} is not start:stop[:step] or an integer") from None
    return tuple(out)


class Selection:
    """A level of an image, or a region of it (NumPy basic indexing in the image's axis order), to be written out.

    ``axes`` are the kept axes (an integer index drops its axis: ``5`` on z of a ``zyx`` volume gives ``yx``),
    ``shape``/``dtype`` those of the result; :meth:`read` reads a block of it (slices with step 1 in output
    coordinates) through the file's cache; ``spacing``/``geometry`` are those of the selected voxels.
    """

    def __init__(self, image: Any, level: int = 0, region: Any = None):
        from ..labels import LabelImage

        self.image = image  # what is written: a Mzarr, or a LabelImage (``m.label(name)``)
        # where spacing, unit, patient geometry and attrs come from: the image itself, or the label image's image
        self.host = image.image if isinstance(image, LabelImage) else image
        host = self.host
        n_levels = len(image.levels)
        if not -n_levels <= int(level) < n_levels:
            raise MzarrValueError(f"level {level} does not exist: the image has levels 0..{n_levels - 1}")
        self.level_index = int(level) % n_levels
        self.level = image.level(self.level_index)
        lv = self.level
        if isinstance(region, str):
            region = parse_region(region, lv.ndim)
        self.index: tuple[AxisIndex, ...] = normalize(region if region is not None else (), lv.shape)
        for a, ix, n in zip(lv.axes, self.index, lv.shape):
            if not ix.drop and ix.size == 0:
                raise MzarrValueError(f"the region selects nothing along axis {a} (size {n})")
        self.axes = "".join(a for a, ix in zip(lv.axes, self.index) if not ix.drop)
        self.shape = tuple(ix.size for ix in self.index if not ix.drop)
        self.dtype = np.dtype(lv.dtype)
        self.spatial = self.axes.replace("c", "")
        self.channels = self.shape[self.axes.index("c")] if "c" in self.axes else None
        self.is_label = host is not image or bool(image.is_label)
        self.unit = host.unit
        # geometry: level-0 voxel coordinate of output voxel i along each level-0 spatial axis
        maps: dict[str, AxisMap] = {}
        for a, ix, f in zip(lv.axes, self.index, lv.factor):
            if a == "c":
                continue
            centre = (f - 1) / 2  # a level-k voxel is the mean of f level-0 voxels: its centre sits in their middle
            if ix.drop:
                maps[a] = AxisMap(f * ix.start + centre, None)
            elif ix.reverse:
                maps[a] = AxisMap(f * (ix.bounds[1] - 1) + centre, -f * ix.step)
            else:
                maps[a] = AxisMap(f * ix.start + centre, f * ix.step)
        spatial0 = host.axes.replace("c", "")  # level-0 spatial axes, e.g. "zyx"
        xyz = spatial0[::-1]
        spacing0 = host.spacing or (1.0,) * len(spatial0)
        self.has_spacing = host.spacing is not None
        self.source_geometry = image_geometry(host.attrs().to_dict(), len(spatial0))
        geometry, spacing_xyz = selection_geometry(
            self.source_geometry, tuple(spacing0[::-1]), [maps[a] for a in xyz]
        )
        self.geometry: Geometry = geometry  # over the kept spatial axes, x first
        # the same over every spatial axis of the image, a dropped one as a size-1 axis (NIfTI, MetaImage)
        full = [maps[a] if maps[a].scale is not None else AxisMap(maps[a].offset, float(lv.factor[lv.axes.index(a)]))
                for a in xyz]
        self.geometry_full, self.spacing_full_xyz = selection_geometry(
            self.source_geometry, tuple(spacing0[::-1]), full
        )
        self.sizes_full_xyz = tuple(
            self.shape[self.axes.index(a)] if a in self.axes else 1 for a in xyz
        )
        kept_xyz = [a for a in xyz if a in self.spatial]
        by_axis = dict(zip(kept_xyz, spacing_xyz))
        self.spacing: tuple[float, ...] = tuple(by_axis[a] for a in self.spatial)  # output order (z, y, x)
        self.kept_xyz = "".join(kept_xyz)
        # whole-voxel offset of the selection in level-0 units (for formats that only keep an origin and spacing)
        self.maps = maps

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def _level_key(self, block: tuple[slice, ...]) -> tuple[list[Any], list[int]]:
        key: list[Any] = []
        flips: list[int] = []
        it = iter(block)
        out_axis = 0
        for ix in self.index:
            if ix.drop:
                key.append(ix.start)
                continue
            sl = next(it, slice(None))
            o0, o1, _ = sl.indices(ix.size)
            if ix.reverse:
                last = ix.bounds[1] - 1
                hi = last - o0 * ix.step
                lo = last - (o1 - 1) * ix.step
                key.append(slice(lo, hi + 1, ix.step))
                flips.append(out_axis)
            else:
                key.append(slice(ix.start + o0 * ix.step, ix.start + (o1 - 1) * ix.step + 1, ix.step))
            out_axis += 1
        return key, flips

    def read(self, block: tuple[slice, ...] = ()) -> np.ndarray:
        """The block (output coordinates, slices with step 1) of the selection as a NumPy array."""
        key, flips = self._level_key(block)
        data = self.level[tuple(key)]
        for axis in flips:
            data = np.flip(data, axis)
        return np.ascontiguousarray(data)

    def read_plane(self, index: dict[str, int], rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        """One y-x plane (``index`` gives the output position of every other axis, e.g. ``{"z": 3, "c": 0}``),
        rows/cols of it; decoded frame by frame where the level's bricks allow it."""
        block = []
        for a in self.axes:
            if a == "y":
                block.append(rows)
            elif a == "x":
                block.append(cols)
            else:
                block.append(slice(index[a], index[a] + 1))
        key, flips = self._level_key(tuple(block))
        lv = self.level
        if "z" in lv.axes and not flips and lv.plane_reads_are_fast and all(
            key[lv.axes.index(a)].step == 1 for a in "yx"
        ):
            zi = lv.axes.index("z")
            z = key[zi] if isinstance(key[zi], int) else key[zi].start  # one plane: a step does not matter
            plane = lv.z_plane(z, key[lv.axes.index("y")], key[lv.axes.index("x")])
            if "c" in lv.axes:
                ci = lv.axes.index("c")
                c_key = key[ci]
                channel = c_key if isinstance(c_key, int) else c_key.start
                # z_plane keeps the channel axis where the level has it, after dropping z
                plane = np.take(plane, channel, axis=ci - (1 if zi < ci else 0))
            return np.ascontiguousarray(plane)
        data = self.read(tuple(block))
        keep = [i for i, a in enumerate(self.axes) if a in "yx"]
        return np.ascontiguousarray(data.reshape([data.shape[i] for i in keep]))

    def slabs(self, axis: str, max_bytes: int | None = None) -> Iterator[tuple[slice, ...]]:
        """Blocks of whole hyper-planes along output ``axis`` (the slowest axis a writer streams), each at most about
        ``max_bytes`` (at least one plane), aligned to the level's chunks where they can be."""
        max_bytes = BLOCK_BYTES if max_bytes is None else max_bytes
        pos = self.axes.index(axis)
        n = self.shape[pos]
        plane = max(1, self.nbytes // max(n, 1))
        step = max(1, min(n, max_bytes // plane))
        chunk = self.level.chunks[self.level.axes.index(axis)] if axis in self.level.axes else 1
        ix = [i for a, i in zip(self.level.axes, self.index) if not i.drop][pos]
        if ix.step == 1 and not ix.reverse and step >= chunk:
            step -= step % chunk
        for start in range(0, n, step):
            block = [slice(None)] * len(self.axes)
            block[pos] = slice(start, min(n, start + step))
            yield tuple(block)


def _new_temporary(path: Path, folder: Path) -> Path:
    """A new empty file ``.<random>.<name>`` in ``folder`` (hidden, ending like the real name: writers may choose by
    suffix, e.g. .nii.gz) with the permissions ``path`` would get (:func:`~mzarr_core.containers.create_plain_file`)."""
    from ..containers import create_plain_file

    for _ in range(100):
        tmp = folder / f".{uuid.uuid4().hex[:8]}.{path.name}"
        try:
            create_plain_file(tmp, path)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise MzarrReadOnlyError(f"cannot write {path}: {exc.strerror}: files cannot be created in {folder}; "
                                     "choose a folder you can write to (nothing was written)") from None
        return tmp
    raise MzarrError(f"cannot write {path}: no free temporary name in {folder}")  # pragma: no cover


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary file next to ``path`` that becomes ``path`` only when the block succeeds (a failure or a
    cancel leaves no partial file and any previous file untouched)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MzarrError(f"cannot write {path}: the folder {folder} does not exist")
    tmp_path = _new_temporary(path, folder)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


class Counter:
    """``progress(done, total)`` in steps of work, for a writer that knows its total up front."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.done = progress, max(int(total), 1), 0
        if progress is not None:
            progress(0, self.total)

    def step(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        if self.progress is not None:
            self.progress(self.done, self.total)


def writable_dtype(dtype: np.dtype, allowed: tuple[str, ...], what: str) -> np.dtype:
    """The dtype a format stores ``dtype`` as: itself, bool as uint8, float16 as float32 (values exact)."""
    dtype = np.dtype(dtype)
    if dtype.name in allowed:
        return dtype
    if dtype == np.bool_ and "uint8" in allowed:
        return np.dtype("uint8")
    if dtype == np.float16 and "float32" in allowed:
        return np.dtype("float32")
    raise MzarrValueError(f"{what} cannot hold {dtype} pixels; export to .tif or .npy instead")
