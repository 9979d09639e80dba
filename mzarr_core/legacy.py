"""Read-only support for original Mzarr 0.0.x files: a ZIP holding a Zarr v2 group with ``base`` and
``subsampled_N`` / ``gaussian_N`` arrays whose chunks are imagecodecs JPEG XL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import imagecodecs.numcodecs
import zarr

from .axes import infer_axes, storage_permutation
from .errors import MzarrFormatError
from .guards import guard_v2_array
from .level import StorageView
from .ngff import ImageInfo

imagecodecs.numcodecs.register_codecs(verbose=False)

_LEVEL_NAME = re.compile(r"^(subsampled|gaussian)_(\d+)$")


def read_legacy(store: Any, path: Path) -> tuple[ImageInfo, list[Any]]:
    """The legacy group's image info and its levels (finest first), as storage-order arrays."""
    try:
        group = zarr.open_group(store, mode="r", zarr_format=2)
        names = list(group.array_keys())
    except Exception as exc:
        raise MzarrFormatError(f"{path} is a ZIP file but not an Mzarr 0.0.x image ({exc})") from None
    if "base" not in names:
        raise MzarrFormatError(
            f"{path} is a ZIP file without a 'base' array, so it is not an Mzarr 0.0.x image (found: {names or 'nothing'})"
        )
    family: dict[str, list[tuple[int, str]]] = {"subsampled": [], "gaussian": []}
    for name in names:
        match = _LEVEL_NAME.match(name)
        if match:
            family[match.group(1)].append((int(match.group(2)), name))
    # Plain subsampling is what the new format's "nearest" gives; Gaussian pyramids are used when that is all there is.
    chosen = sorted(family["subsampled"] or family["gaussian"])
    # Each level decodes through a JPEG XL codec bound to its chunk shape and dtype (decompression bombs).
    base = guard_v2_array(group["base"])
    arrays = [base] + [guard_v2_array(group[name]) for _, name in chosen]
    arrays.sort(key=lambda a: -int(a.size))
    attrs = dict(group.attrs)
    axes_attr = attrs.get("axes")
    axes = infer_axes(tuple(base.shape), base.dtype, axes_attr if isinstance(axes_attr, str) else None)
    perm = storage_permutation(axes)
    info = ImageInfo(
        axes=axes,
        downsample="nearest" if family["subsampled"] else "mean",
        codec={"name": "jpegxl", "lossless": None, "legacy": True},
        attrs={k: v for k, v in attrs.items() if k != "axes"},
        level_paths=["base"] + [name for _, name in chosen],
    )
    return info, [StorageView(a, perm) if perm != tuple(range(len(perm))) else a for a in arrays]
