"""Where the voxels are in the world: the ``geometry`` attribute the NRRD/MetaImage readers keep, the NIfTI reader's
``nifti_affine``, and what the exporters write from them.

``attrs["geometry"]`` (JSON)::

    {"space": "LPS",                    # the world frame: "LPS" (ITK, DICOM, MetaImage), "RAS" (NIfTI), ... or null
     "origin": [x, y, z],               # world position of the centre of voxel (0, 0, 0)
     "direction": [[...], [...], [...]]} # unit vectors: column j is the world direction of index axis j,
                                        # index axes in x, y, z order (x = the image's last spatial axis)

The voxel size is not repeated there: it is the image's ``spacing`` (z, y, x order, like every Mzarr axis), so an
edit of the spacing is never contradicted by a stale matrix. World position of voxel (x, y, z) indices ``v``:
``origin + direction @ (spacing_xyz * v)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

SPACES = {  # NRRD's space names (and the short forms some writers use) -> ours
    "left-posterior-superior": "LPS", "lps": "LPS",
    "right-anterior-superior": "RAS", "ras": "RAS",
    "left-anterior-superior": "LAS", "las": "LAS",
}
NRRD_SPACES = {"LPS": "left-posterior-superior", "RAS": "right-anterior-superior", "LAS": "left-anterior-superior"}
# sign flips of the world axes from a frame to RAS (and back: the same flips)
TO_RAS = {"RAS": (1, 1, 1), "LPS": (-1, -1, 1), "LAS": (-1, 1, 1)}
# ITK's orientation letters per LPS world axis: (where an index axis pointing along +axis comes from, along -axis)
ITK_FROM = (("R", "L"), ("A", "P"), ("I", "S"))


@dataclass
class Geometry:
    """``origin`` (S,), ``direction`` (S x I: one unit column per index axis, x first), ``space`` (world frame)."""

    origin: np.ndarray
    direction: np.ndarray
    space: str | None = None

    def to_attrs(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "origin": [float(v) for v in self.origin],
            "direction": [[float(v) for v in row] for row in self.direction],
        }

    @classmethod
    def from_vectors(cls, origin: Any, vectors: Any, space: str | None) -> tuple[Geometry, tuple[float, ...]]:
        """From per-axis spacing-scaled vectors (NRRD's space directions, columns of an affine): the geometry and
        the spacing (x, y, z order: the vectors' lengths)."""
        vectors = np.asarray(vectors, float)  # S x I, columns are the axes
        spacing = np.linalg.norm(vectors, axis=0)
        spacing = np.where(spacing > 0, spacing, 1.0)
        return cls(np.asarray(origin, float), vectors / spacing, space), tuple(float(s) for s in spacing)

    def in_space(self, space: str) -> Geometry:
        """The same geometry in another anatomical frame ("RAS", "LPS", "LAS"); unknown frames are kept as they are."""
        if self.space == space or self.space not in TO_RAS or space not in TO_RAS or len(self.origin) != 3:
            return self
        flip = np.asarray(TO_RAS[self.space], float) * np.asarray(TO_RAS[space], float)
        return Geometry(self.origin * flip, self.direction * flip[:, None], space)

    def itk_orientation(self) -> str | None:
        """ITK's ``AnatomicalOrientation`` code of a 3D geometry ("RAI" for identity directions in LPS): per index
        axis x, y, z the side it comes from, matched to the nearest world axis (the largest cosine first, as ITK
        does for an oblique image); None when it is not 3D or its frame is not anatomical."""
        if self.space not in TO_RAS or self.direction.shape != (3, 3) or not np.all(np.isfinite(self.direction)):
            return None
        d = self.in_space("LPS").direction
        left = np.abs(d)
        world = [0, 0, 0]  # per index axis: its world axis
        for _ in range(3):
            k, j = np.unravel_index(int(np.argmax(left)), left.shape)
            world[j] = int(k)
            left[k, :] = -1.0
            left[:, j] = -1.0
        return "".join(ITK_FROM[k][0 if d[k, j] > 0 else 1] for j, k in enumerate(world))

    def padded(self, n_index: int) -> Geometry:
        """With at least ``n_index`` index axes and as many world axes (a 2D image gets z = the normal)."""
        origin, direction = self.origin, self.direction
        s, i = direction.shape
        if s < n_index:
            origin = np.concatenate([origin, np.zeros(n_index - s)])
            direction = np.vstack([direction, np.zeros((n_index - s, i))])
        while direction.shape[1] < n_index:
            cols = direction.shape[1]
            if direction.shape[0] == 3 and cols == 2:
                extra = np.cross(direction[:, 0], direction[:, 1])
                extra = extra / (np.linalg.norm(extra) or 1.0)
            else:
                extra = np.zeros(direction.shape[0])
                extra[cols] = 1.0
            direction = np.column_stack([direction, extra])
        return Geometry(origin, direction, self.space)


def _matrix(value: Any, rows: int | None = None, cols: int | None = None) -> np.ndarray | None:
    try:
        m = np.asarray(value, float)
    except (TypeError, ValueError):
        return None
    if m.ndim != 2 or not np.all(np.isfinite(m)) or (rows and m.shape[0] != rows) or (cols and m.shape[1] != cols):
        return None
    return m


def image_geometry(attrs: dict[str, Any], n_spatial: int) -> Geometry | None:
    """The geometry an image's attributes give: ``geometry`` (NRRD, MetaImage), else the DICOM reader's
    ``dicom.geometry.affine_lps``, else a NIfTI ``nifti_affine``; or None."""
    g = attrs.get("geometry")
    if isinstance(g, dict):
        direction = _matrix(g.get("direction"), cols=n_spatial)
        try:
            origin = np.asarray(g.get("origin"), float)
        except (TypeError, ValueError):
            origin = None
        if direction is not None and origin is not None and origin.shape == (direction.shape[0],):
            space = g.get("space") if isinstance(g.get("space"), str) else None
            return Geometry(origin, direction, space)
    dicom = attrs.get("dicom")
    dicom_geometry = dicom.get("geometry") if isinstance(dicom, dict) else None
    affine = _matrix(dicom_geometry.get("affine_lps"), 4, 4) if isinstance(dicom_geometry, dict) else None
    if affine is not None and n_spatial == 3:  # the DICOM reader's (x, y, z) -> patient LPS affine
        geometry, _ = Geometry.from_vectors(affine[:3, 3], affine[:3, :3], "LPS")
        return geometry
    affine = _matrix(attrs.get("nifti_affine"), 4, 4)
    if affine is not None and n_spatial == 3:
        geometry, _ = Geometry.from_vectors(affine[:3, 3], affine[:3, :3], "RAS")
        return geometry
    return None


@dataclass
class AxisMap:
    """How output voxel ``i`` of one spatial axis maps to level-0 voxel coordinates: ``offset + scale * i``
    (``scale`` None: the axis was dropped by an integer index)."""

    offset: float
    scale: float | None


def selection_geometry(
    geometry: Geometry | None, spacing0_xyz: tuple[float, ...], maps_xyz: list[AxisMap]
) -> tuple[Geometry, tuple[float, ...]]:
    """The geometry and spacing (both over the kept axes, x first) of a selection of the image.

    ``spacing0_xyz``: level-0 spacing, x first; ``maps_xyz``: one :class:`AxisMap` per level-0 spatial axis, x first.
    Without a geometry the image's index grid is the world (identity directions, origin 0 at voxel 0).
    """
    n = len(maps_xyz)
    if geometry is None:
        geometry = Geometry(np.zeros(n), np.eye(n), None)
    vectors = geometry.direction * np.asarray(spacing0_xyz, float)  # columns: one level-0 voxel step
    origin = geometry.origin + vectors @ np.asarray([m.offset for m in maps_xyz], float)
    steps = {j: m.scale for j, m in enumerate(maps_xyz) if m.scale is not None}
    # the voxel size is the image's spacing times the step, not the length of a vector (0.9999999999999999 mm)
    spacing = tuple(_scaled(float(spacing0_xyz[j]), step) for j, step in steps.items())
    norms = np.linalg.norm(geometry.direction, axis=0)
    units = geometry.direction / np.where(norms > 0, norms, 1.0)
    columns = (np.column_stack([units[:, j] * (1.0 if step > 0 else -1.0) for j, step in steps.items()]) if steps
               else np.zeros((len(origin), 0)))
    return Geometry(origin, columns, geometry.space), spacing


def _scaled(spacing: float, scale: float) -> float:
    """``spacing * |scale|`` without the product's float noise (0.1 x 3 is 0.3, not 0.30000000000000004): exact for
    power-of-two steps (levels), else rounded to 15 significant digits, the precision of a decimal spacing."""
    product = spacing * abs(scale)
    return product if math.frexp(abs(scale))[0] == 0.5 else float(f"{product:.15g}")
