"""Convert any readable image file into a .mzarr file or an OME-Zarr folder (and back)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .image import Mzarr
from .importers import read_image
from .writer import Progress


def convert(src: str | Path, dst: str | Path, progress: Progress | None = None, **save_options: Any) -> Path:
    """Read ``src`` (lazily where possible) and save it to ``dst`` with a pyramid.

    ``save_options`` are those of :meth:`Mzarr.save`; ``axes``/``spacing``/``unit``/``attrs`` default to what
    the source file says.
    """
    source = read_image(src)
    try:
        axes = save_options.pop("axes", None) or (None if save_options.get("channel_axis") is not None else source.axes)
        image = Mzarr(
            source.array,
            axes=axes,
            channel_axis=save_options.pop("channel_axis", None),
            spacing=save_options.pop("spacing", None) or source.spacing,
            unit=save_options.pop("unit", None) or source.unit,
            is_label=bool(save_options.get("is_label") or False),
            attrs={**source.attrs, **(save_options.pop("attrs", None) or {})},
        )
        return image.save(dst, progress=progress, **save_options)
    finally:
        if source.owner is not None and hasattr(source.owner, "close"):
            source.owner.close()
