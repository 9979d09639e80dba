"""Measurement geometry of the viewer, Qt-free: annotations from mouse gestures on a plane, lengths, areas, texts.

The shapes, their storage and the statistics are the library's (:mod:`mzarr_core.annotations`,
:mod:`mzarr_core.regions`); this module maps the viewer's gestures and planes onto them and formats results.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from mzarr_core.annotations import Annotation
from mzarr_core.regions import LineProfile, RegionStats, line_length

from .tiles import Plane, is_turned

#: the view's tool names -> the annotation kind they draw
TOOLS = {"measure_point": "point", "measure_line": "line", "measure_rect": "rectangle",
         "measure_ellipse": "ellipse", "measure_polygon": "polygon"}
#: regions whose bounding box holds more level-0 pixels than this get a cancellable progress dialog
BIG_REGION_PX = 4_000_000
#: a polygon click this close (screen pixels) to the first vertex closes it
CLOSE_POLYGON_PX = 8.0

_UNIT_SHORT = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "meter": "m", "centimeter": "cm",
               "angstrom": "Å", "picometer": "pm", "kilometer": "km", "inch": "in", "foot": "ft"}
_METRES = {"nanometer": 1e-9, "micrometer": 1e-6, "millimeter": 1e-3, "centimeter": 1e-2, "meter": 1.0,
           "kilometer": 1e3, "picometer": 1e-12, "angstrom": 1e-10}


def format_length(value: float, unit: str) -> str:
    """Human length such as ``50 µm`` or ``1.2 mm`` (metric units rescaled)."""
    if unit in _METRES and value > 0:
        metres = value * _METRES[unit]
        for name in ("kilometer", "meter", "millimeter", "micrometer", "nanometer", "picometer"):
            if metres >= _METRES[name] * 0.999:
                v = metres / _METRES[name]
                return f"{v:.4g} {_UNIT_SHORT[name]}"
    return f"{value:.4g} {_UNIT_SHORT.get(unit, unit)}".strip()


def format_area(value: float, unit: str) -> str:
    """Human area such as ``1.5 mm²`` (metric units rescaled so the number stays readable)."""
    if unit in _METRES and value > 0:
        m2 = value * _METRES[unit] ** 2
        for name in ("kilometer", "meter", "millimeter", "micrometer", "nanometer", "picometer"):
            if m2 >= (_METRES[name] ** 2) * 0.999:
                return f"{m2 / _METRES[name] ** 2:.4g} {_UNIT_SHORT[name]}²"
    short = _UNIT_SHORT.get(unit, unit)
    return f"{value:.4g} {short}²" if short else f"{value:.4g}"


def annotation_plane(plane: Plane) -> tuple[str, int] | None:
    """The library's plane of an annotation drawn on the view's ``plane`` (None for 2D images)."""
    return (plane.slice_axis, int(plane.slice_index)) if plane.slice_axis else None


def on_plane(a: Annotation, plane: Plane | None) -> bool:
    """Whether ``a`` lies on the plane shown."""
    return plane is not None and a.plane == annotation_plane(plane)


def swap_points(points: Sequence[tuple[float, float]], plane: Plane | None) -> list[tuple[float, float]]:
    """``points`` between the view's (x, y) on ``plane`` and an annotation's (x, y) (the plane's columns and rows
    in the stored order, ``mzarr_core.annotations.plane_axes``): swapped when the plane is drawn turned a quarter
    (``tiles.is_turned``: a patient image read radiologically), else the same. Its own inverse."""
    if plane is not None and is_turned(plane):
        return [(float(y), float(x)) for x, y in points]
    return [(float(x), float(y)) for x, y in points]


def point_from_click(p: tuple[float, float], plane: Plane, **fields: Any) -> Annotation:
    """The point annotation of a click at ``p`` (the view's level-0 x, y)."""
    return Annotation("point", swap_points([p], plane), plane=annotation_plane(plane), **fields)


def shape_from_drag(tool: str, p0: tuple[float, float], p1: tuple[float, float], plane: Plane,
                    **fields: Any) -> Annotation | None:
    """The line, rectangle or ellipse a drag from ``p0`` to ``p1`` (the view's level-0 x, y) draws; None if it has
    no size."""
    kind = TOOLS.get(tool)
    if kind not in ("line", "rectangle", "ellipse"):
        return None
    if kind == "line" and p0 == p1:
        return None
    if kind != "line" and (p0[0] == p1[0] or p0[1] == p1[1]):
        return None
    return Annotation(kind, swap_points([p0, p1], plane), plane=annotation_plane(plane), **fields)


def polygon_from_clicks(points: Sequence[tuple[float, float]], plane: Plane, **fields: Any) -> Annotation | None:
    """The polygon of the clicked vertices (the view's level-0 x, y; repeats of a vertex dropped); None with fewer
    than 3."""
    pts: list[tuple[float, float]] = []
    for p in points:
        if not pts or p != pts[-1]:
            pts.append(p)
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts.pop()
    if len(pts) < 3:
        return None
    return Annotation("polygon", swap_points(pts, plane), plane=annotation_plane(plane), **fields)


def bbox_pixels(a: Annotation) -> float:
    """Level-0 pixels of the shape's bounding box (how much a statistic reads, at most)."""
    x0, y0, x1, y1 = a.bounds()
    return (x1 - x0 + 1) * (y1 - y0 + 1)


def length_text(points: Sequence[tuple[float, float]], spacing: tuple[float, float] | None, unit: str | None) -> str:
    """The ruler's label: physical length (with a spacing) and pixels."""
    line = Annotation("line", list(points)) if len(points) >= 2 else None
    px = 0.0 if line is None else line_length(line)
    if spacing is None or line is None:
        return f"{px:.4g} px"
    return f"{format_length(line_length(line, spacing), unit or '')} ({px:.4g} px)"


def stats_text(stats: RegionStats) -> str:
    """The panel's lines for a region: area, then mean ± std, min-max per channel (and the NaN/Inf pixels left out)."""
    area = f"{stats.count} px"
    if stats.area is not None:
        area = f"{format_area(stats.area, stats.unit or '')} ({stats.count} px)"
    lines = [f"Area: {area}"]
    for c in range(stats.channels):
        tag = f"Channel {c}: " if stats.channels > 1 else ""
        if stats.count == 0:
            lines.append(f"{tag}no pixel inside")
            continue
        lines.append(f"{tag}mean {stats.mean[c]:.6g} ± {stats.std[c]:.6g} (std), min {stats.min[c]:g}, "
                     f"max {stats.max[c]:g}")
        skipped = stats.nonfinite_text(c)
        if skipped:
            lines.append(f"{tag}left out: {skipped} (statistics over {stats.finite(c)} finite px)")
    return "\n".join(lines)


def profile_text(profile: LineProfile) -> str:
    """The panel's line for a line: its length, samples and range of values."""
    unit = profile.unit
    length = format_length(profile.length, unit) if unit else f"{profile.length:.4g} px"
    v = profile.values
    return (f"Length: {length} ({profile.length_px:.4g} px), {len(v)} samples from full resolution, "
            f"values {v.min():g}-{v.max():g}")


def describe(a: Annotation) -> str:
    """One line of the annotations list: name, kind, class and plane."""
    name = a.name or f"({a.kind})"
    klass = f" [{a.class_name}]" if a.class_name else ""
    where = f" @ {a.plane[0]}={a.plane[1]}" if a.plane else ""
    return f"{name} — {a.kind}{klass}{where}"


def next_name(items: Sequence[Annotation], kind: str) -> str:
    """A fresh default name such as ``Polygon 3``."""
    base = kind.capitalize() if kind != "line" else "Line"
    used = {a.name for a in items}
    n = sum(1 for a in items if a.kind == kind) + 1
    while f"{base} {n}" in used:
        n += 1
    return f"{base} {n}"


def view_bounds(a: Annotation, plane: Plane | None) -> tuple[float, float, float, float]:
    """``a``'s bounding box (x0, y0, x1, y1) in the view's level-0 coordinates on ``plane``."""
    x0, y0, x1, y1 = a.bounds()
    return (y0, x0, y1, x1) if plane is not None and is_turned(plane) else (x0, y0, x1, y1)


def view_rect_for(a: Annotation, margin: float = 0.25, minimum: float = 64.0,
                  plane: Plane | None = None) -> tuple[float, float, float, float]:
    """The level-0 rectangle (x0, y0, x1, y1) of the view on ``plane`` that shows ``a`` with some margin (a point:
    a small square)."""
    x0, y0, x1, y1 = view_bounds(a, plane)
    w, h = max(x1 - x0, minimum), max(y1 - y0, minimum)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def near(p: tuple[float, float], q: tuple[float, float], tolerance: float) -> bool:
    """Whether two level-0 points are within ``tolerance`` level-0 pixels."""
    return math.hypot(p[0] - q[0], p[1] - q[1]) <= tolerance
