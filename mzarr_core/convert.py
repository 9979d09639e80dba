"""Convert any readable image file into a .mzarr file or an OME-Zarr folder (and back); export a .mzarr to other
formats. Which formats: :mod:`mzarr_core.formats`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .formats import export, read
from .image import Mzarr
from .writer import Progress

__all__ = ["convert", "export"]


def convert(
    src: str | Path,
    dst: str | Path,
    progress: Progress | None = None,
    *,
    read_options: dict[str, Any] | None = None,
    report: Callable[[str], Any] | None = None,
    **save_options: Any,
) -> Path:
    """Read ``src`` (lazily where possible) and save it to ``dst`` with a pyramid.

    ``read_options`` go to the source's reader (DICOM: ``series``, ``keep_phi``; slides: ``compression``,
    ``keep_label``); ``save_options`` are those of :meth:`Mzarr.save`; ``axes``/``spacing``/``unit``/``attrs``
    default to what the source file says. ``report(line)`` is told choices made for the user before writing (a
    slide's compression and why).
    """
    source = read(src, **(read_options or {}))
    from .formats.slide import SlideSource

    if isinstance(source, SlideSource):  # a whole-slide image stores itself (its JPEG tiles, associated images)
        try:
            return source.save(dst, progress, report=report, **save_options)
        finally:
            source.close()
    try:
        axes = save_options.pop("axes", None) or (None if save_options.get("channel_axis") is not None else source.axes)
        image = Mzarr(
            source.array,
            axes=axes,
            channel_axis=save_options.pop("channel_axis", None),
            spacing=save_options.pop("spacing", None) or source.spacing,
            unit=save_options.pop("unit", None) or source.unit,
            is_label=bool(save_options.get("is_label") or source.is_label),
            attrs={**source.attrs, **(save_options.pop("attrs", None) or {})},
        )
        return image.save(dst, progress=progress, **save_options)
    finally:
        if source.owner is not None and hasattr(source.owner, "close"):
            source.owner.close()
