"""Annotations inside an image's file: points, lines, rectangles, ellipses and polygons (docs/FORMAT.md section 12).

An :class:`Annotation` is a shape in full-resolution pixel coordinates ``(x, y)`` = (column, row) of one plane, with
an id, a name, a class (name + RGB colour), the plane it lies on for volumes (slice axis + index) and free JSON
properties. They are stored as one versioned JSON document, ``annotations/zarr.json`` (a Zarr v3 group beside the
levels that older readers ignore), and exchanged as GeoJSON in QuPath's convention (:func:`to_geojson`,
:func:`from_geojson`). Nothing here imports Qt.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from .errors import MzarrFormatError, MzarrValueError

__all__ = [
    "Annotation", "KINDS", "NODE", "VERSION", "MAX_ANNOTATIONS", "MAX_VERTICES", "from_geojson", "to_geojson",
    "read_geojson", "write_geojson", "plane_axes", "geojson_features", "read_geojson_features",
]

KINDS = ("point", "line", "rectangle", "ellipse", "polygon")
NODE = "annotations"  #: the child group holding the document
KEY = f"{NODE}/zarr.json"
VERSION = 1
MAX_ANNOTATIONS = 100_000
MAX_VERTICES = 1_000_000  #: in all annotations together (the document stays within the 16 MiB metadata bound)
MAX_TEXT = 1_000  #: characters of an id, a name or a class name
MAX_COORD = 2.0**48  #: |x|, |y| (the largest image side the format holds)
MAX_GEOJSON_BYTES = 256 * 2**20
ELLIPSE_VERTICES = 72  #: vertices of an ellipse written as a GeoJSON polygon (GeoJSON has no ellipse)
_COUNTS = {"point": (1, 1), "line": (2, MAX_VERTICES), "rectangle": (2, 2), "ellipse": (2, 2),
           "polygon": (3, MAX_VERTICES)}


def plane_axes(spatial_axes: str, plane: tuple[str, int] | None) -> tuple[str, str]:
    """The (row, column) axes of a plane: the spatial axes other than the slice axis, in storage order."""
    rest = [a for a in spatial_axes if plane is None or a != plane[0]]
    if len(rest) != 2:
        raise MzarrValueError(
            f"an annotation of a volume (axes {spatial_axes!r}) lies on one plane: give plane=(axis, index), e.g. "
            "('z', 10)" if plane is None else f"the plane's axis {plane[0]!r} is not one of {spatial_axes!r}"
        )
    return rest[0], rest[1]


def _text(value: Any, what: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise MzarrValueError(f"{what} must be a string of at most {MAX_TEXT} characters, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Annotation:
    """One shape on one plane, coordinates ``(x, y)`` in full-resolution pixels (origin: the top-left corner of
    the image; pixel (row r, column c) covers x in [c, c+1), y in [r, r+1)).

    ``kind``: "point" (1 vertex), "line" (2 or more: a polyline), "rectangle" and "ellipse" (2 opposite corners of
    the box), "polygon" (3 or more, closed implicitly). ``plane``: ``(axis, index)`` for volumes (x, y are then the
    plane's column and row axes, :func:`plane_axes`), None for 2D images.
    """

    kind: str
    points: Sequence[Sequence[float]]  #: stored as a tuple of (x, y) float pairs
    name: str = ""
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    class_name: str | None = None
    color: tuple[int, int, int] | None = None
    plane: tuple[str, int] | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    locked: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MzarrValueError(f"an annotation's kind must be one of {', '.join(KINDS)}, got {_show(self.kind)}")
        pts = self.points
        if not isinstance(pts, (list, tuple)):
            raise MzarrValueError(f"an annotation's points must be a list of (x, y), got {_show(pts)}")
        checked = []
        for p in pts:
            if not (isinstance(p, (list, tuple)) and len(p) == 2):
                raise MzarrValueError(f"a {self.kind}'s points must be (x, y) pairs, got {_show(p)}")
            try:
                x, y = float(p[0]), float(p[1])
            except (TypeError, ValueError):
                raise MzarrValueError(f"a {self.kind}'s coordinates must be numbers, got {_show(p)}") from None
            if not (math.isfinite(x) and math.isfinite(y) and abs(x) <= MAX_COORD and abs(y) <= MAX_COORD):
                raise MzarrValueError(f"a {self.kind}'s coordinates must be finite pixel positions, got {_show(p)}")
            checked.append((x, y))
        lo, hi = _COUNTS[self.kind]
        if not lo <= len(checked) <= hi:
            need = f"exactly {lo}" if lo == hi else f"{lo} to {hi}"
            raise MzarrValueError(f"a {self.kind} has {need} points, got {len(checked)}")
        object.__setattr__(self, "points", tuple(checked))
        _text(self.name, "an annotation's name")
        if not _text(self.id, "an annotation's id"):
            raise MzarrValueError("an annotation's id must not be empty")
        _text(self.class_name, "an annotation's class name", optional=True)
        if self.color is not None:
            c = self.color
            if not (isinstance(c, (list, tuple)) and len(c) == 3 and all(
                    isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)):
                raise MzarrValueError(f"an annotation's colour must be 3 integers 0-255 (r, g, b), got {_show(c)}")
            object.__setattr__(self, "color", tuple(int(v) for v in c))
        if self.plane is not None:
            pl = self.plane
            if not (isinstance(pl, (list, tuple)) and len(pl) == 2 and pl[0] in ("z", "y", "x")
                    and isinstance(pl[1], int) and not isinstance(pl[1], bool) and pl[1] >= 0):
                raise MzarrValueError(
                    f"an annotation's plane must be (axis, index) with axis 'z', 'y' or 'x' and index >= 0, got {_show(pl)}"
                )
            object.__setattr__(self, "plane", (str(pl[0]), int(pl[1])))
        if not isinstance(self.properties, dict):
            raise MzarrValueError(f"an annotation's properties must be a dict, got {_show(self.properties)}")
        from .attrs import check_json

        object.__setattr__(self, "properties", check_json(dict(self.properties), "annotation properties"))
        if not isinstance(self.locked, bool):
            raise MzarrValueError(f"an annotation's 'locked' must be true or false, got {_show(self.locked)}")

    def with_(self, **changes: Any) -> "Annotation":
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)

    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): the smallest box holding the shape."""
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return min(xs), min(ys), max(xs), max(ys)

    def outline(self) -> list[tuple[float, float]]:
        """The vertices drawn or exported: a rectangle's 4 corners, an ellipse as a polygon, others as stored."""
        if self.kind == "rectangle":
            x0, y0, x1, y1 = self.bounds()
            return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        if self.kind == "ellipse":
            x0, y0, x1, y1 = self.bounds()
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            steps = [2 * math.pi * i / ELLIPSE_VERTICES for i in range(ELLIPSE_VERTICES)]
            return [(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in steps]
        return [(float(p[0]), float(p[1])) for p in self.points]

    def to_json(self) -> dict[str, Any]:
        """The entry of the stored document (docs/FORMAT.md section 12)."""
        return {
            "id": self.id, "type": self.kind, "name": self.name,
            "class": None if self.class_name is None and self.color is None else
            {"name": self.class_name, "color": list(self.color) if self.color else None},
            "plane": None if self.plane is None else {"axis": self.plane[0], "index": self.plane[1]},
            "coordinates": [list(p) for p in self.points],
            "locked": self.locked,
            "properties": self.properties,
        }

    @classmethod
    def from_json(cls, entry: Any) -> "Annotation":
        """An entry of the stored document, checked (MzarrValueError saying what is wrong)."""
        plane: Any
        if not isinstance(entry, dict):
            raise MzarrValueError(f"must be an object, got {_show(entry)}")
        klass = entry.get("class")
        if klass is not None and not isinstance(klass, dict):
            raise MzarrValueError(f"'class' must be an object {{name, color}} or null, got {_show(klass)}")
        plane = entry.get("plane")
        if plane is not None:
            if not isinstance(plane, dict):
                raise MzarrValueError(f"'plane' must be an object {{axis, index}} or null, got {_show(plane)}")
            plane = (plane.get("axis"), plane.get("index"))
        coords = entry.get("coordinates")
        if not isinstance(coords, list):
            raise MzarrValueError(f"'coordinates' must be a list of [x, y], got {_show(coords)}")
        return cls(
            kind=entry.get("type", ""), points=coords, name=entry.get("name", ""), id=entry.get("id", ""),
            class_name=(klass or {}).get("name"), color=(klass or {}).get("color"), plane=plane,
            properties=entry.get("properties", {}), locked=entry.get("locked", False),
        )


# -- the stored document -------------------------------------------------------------------------------------------
def check_annotations(items: Any, spatial_axes: str | None = None, spatial_shape: tuple[int, ...] | None = None) -> list[Annotation]:
    """``items`` as a checked list: Annotation objects, at most MAX_ANNOTATIONS and MAX_VERTICES, unique ids, and
    for an image (``spatial_axes``/``spatial_shape`` given) a plane exactly where the image is a volume."""
    if isinstance(items, Annotation) or not isinstance(items, (list, tuple)):
        raise MzarrValueError(f"annotations must be a list of Annotation objects, got {type(items).__name__}")
    if len(items) > MAX_ANNOTATIONS:
        raise MzarrValueError(f"{len(items)} annotations are more than the {MAX_ANNOTATIONS} a file holds")
    out: list[Annotation] = []
    seen: set[str] = set()
    vertices = 0
    for i, a in enumerate(items):
        if not isinstance(a, Annotation):
            raise MzarrValueError(f"annotation {i} must be an Annotation, got {type(a).__name__}")
        if a.id in seen:
            raise MzarrValueError(f"annotation {i} repeats the id {a.id!r}: every annotation needs its own id")
        seen.add(a.id)
        vertices += len(a.points)
        if spatial_axes is not None and spatial_shape is not None:
            _check_plane(a, i, spatial_axes, spatial_shape)
        out.append(a)
    if vertices > MAX_VERTICES:
        raise MzarrValueError(f"the annotations have {vertices} vertices, more than the {MAX_VERTICES} a file holds")
    return out


def _check_plane(a: Annotation, i: int, spatial_axes: str, spatial_shape: tuple[int, ...]) -> None:
    if len(spatial_axes) == 2:
        if a.plane is not None:
            raise MzarrValueError(f"annotation {i} ({a.name or a.id}) names a plane {a.plane}, but the image is 2D: use plane=None")
        return
    if a.plane is None:
        raise MzarrValueError(
            f"annotation {i} ({a.name or a.id}) has no plane, but the image is a volume ({spatial_axes!r}): give "
            "plane=(axis, index), e.g. ('z', 10)"
        )
    axis, index = a.plane
    n = spatial_shape[spatial_axes.index(axis)]
    if index >= n:
        raise MzarrValueError(f"annotation {i} ({a.name or a.id}) lies on plane {axis}={index}, beyond the {n} planes of axis {axis!r}")


def document(items: list[Annotation]) -> dict[str, Any]:
    """The ``annotations/zarr.json`` document holding ``items``."""
    return {
        "zarr_format": 3, "node_type": "group",
        "attributes": {"mzarr": {"annotations": {"version": VERSION, "items": [a.to_json() for a in items]}}},
    }


def parse_document(doc: dict[str, Any], where: str) -> list[Annotation]:
    """The annotations of a stored (already size-bounded) document; anything wrong is an MzarrFormatError."""
    def bad(problem: str) -> MzarrFormatError:
        return MzarrFormatError(
            f"{where}: {KEY}: {problem}; the annotations are damaged (the image itself is fine): remove them with "
            "m.set_annotations([]) or restore the file from a backup"
        )

    if doc.get("zarr_format") != 3 or doc.get("node_type") != "group":
        raise bad("must be a Zarr v3 group's metadata ('zarr_format' 3, 'node_type' \"group\")")
    attributes = doc.get("attributes")
    mz = attributes.get("mzarr") if isinstance(attributes, dict) else None
    block = mz.get("annotations") if isinstance(mz, dict) else None
    if not isinstance(block, dict):
        raise bad("attributes.mzarr.annotations must be an object {version, items}")
    version = block.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"attributes.mzarr.annotations.version must be a positive integer, got {_show(version)}")
    if version > VERSION:
        raise MzarrFormatError(
            f"{where}: {KEY}: annotations of version {version} were written by a newer Mzarr (this one reads version "
            f"{VERSION}): update mzarr to read them (the image itself reads as usual)"
        )
    items = block.get("items")
    if not isinstance(items, list):
        raise bad(f"attributes.mzarr.annotations.items must be a list, got {_show(items)}")
    out = []
    for i, entry in enumerate(items):
        try:
            out.append(Annotation.from_json(entry))
        except MzarrValueError as exc:
            raise bad(f"items[{i}]: {exc}") from None
    try:
        return check_annotations(out)
    except MzarrValueError as exc:
        raise bad(str(exc)) from None


# -- GeoJSON (QuPath's convention) ---------------------------------------------------------------------------------
def to_geojson(items: list[Annotation]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection as QuPath exports annotations: one Feature each, geometry Point / LineString /
    Polygon in full-resolution pixel (x, y), ``properties`` with ``objectType: "annotation"``, ``name``,
    ``classification {name, color [r, g, b]}``, ``isLocked``; what QuPath has no field for (the kind of a rectangle
    or ellipse, the plane, free properties) goes into ``properties.mzarr``."""
    features = []
    for a in check_annotations(list(items)):
        if a.kind == "point":
            geometry: dict[str, Any] = {"type": "Point", "coordinates": list(a.points[0])}
        elif a.kind == "line":
            geometry = {"type": "LineString", "coordinates": [list(p) for p in a.points]}
        else:
            ring = [list(p) for p in a.outline()]
            geometry = {"type": "Polygon", "coordinates": [ring + [ring[0]]]}
        props: dict[str, Any] = {"objectType": "annotation", "name": a.name, "isLocked": a.locked}
        if a.class_name is not None or a.color is not None:
            props["classification"] = {"name": a.class_name or "", "color": list(a.color or (255, 0, 0))}
        extra: dict[str, Any] = {"type": a.kind}
        if a.kind in ("rectangle", "ellipse"):
            extra["box"] = list(a.bounds())
        if a.plane is not None:
            extra["plane"] = {"axis": a.plane[0], "index": a.plane[1]}
        if a.properties:
            extra["properties"] = a.properties
        props["mzarr"] = extra
        features.append({"type": "Feature", "id": a.id, "geometry": geometry, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def _color(classification: dict[str, Any], where: str) -> tuple[int, int, int] | None:
    color = classification.get("color")
    if color is None and isinstance(classification.get("colorRGB"), int):  # QuPath 0.2: packed (A)RGB integer
        packed = classification["colorRGB"] & 0xFFFFFF
        return (packed >> 16) & 255, (packed >> 8) & 255, packed & 255
    if color is None:
        return None
    if not (isinstance(color, list) and len(color) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in color)):
        raise MzarrValueError(f"{where}: classification.color must be [r, g, b] (0-255), got {_show(color)}")
    return tuple(color)  # type: ignore[return-value]


def _outer_ring(polygon: Any) -> Any:
    """The ring of a GeoJSON Polygon's coordinates (closing point dropped); holes are refused: a polygon with a
    hole would be measured with the hole's pixels."""
    if not isinstance(polygon, list) or not polygon:
        raise MzarrValueError("a Polygon's coordinates must be a list of rings")
    if len(polygon) > 1:
        raise MzarrValueError(
            "a polygon with holes cannot be stored (Mzarr annotations are simple polygons, measured without holes): "
            "fill or split it in QuPath first (Objects > Annotations > Fill holes)"
        )
    ring = polygon[0]
    if isinstance(ring, list) and len(ring) > 1 and ring[0] == ring[-1]:
        ring = ring[:-1]
    return ring


def from_geojson(data: Any) -> list[Annotation]:
    """Annotations from GeoJSON (:func:`geojson_features`, the pieces of every feature in order)."""
    return [a for feature in geojson_features(data) for a in feature]


def geojson_features(data: Any) -> list[list[Annotation]]:
    """The annotations of each feature of GeoJSON as QuPath writes it (a FeatureCollection, a single Feature, or a list of Features):
    Point, LineString and Polygon geometries (holes refused: they would be measured), and their Multi- forms as one
    annotation per piece (ids ``<id>-2``, ``<id>-3``... after the first, names numbered); ``properties.name``, ``classification``, ``isLocked`` and this library's ``properties.mzarr`` read
    back. Features with another ``objectType`` (QuPath's detections and cells) are imported as annotations too."""
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    else:
        features = data
    if not isinstance(features, list):
        raise MzarrValueError("GeoJSON annotations must be a FeatureCollection, a Feature or a list of Features")
    if len(features) > MAX_ANNOTATIONS:
        raise MzarrValueError(f"{len(features)} features are more than the {MAX_ANNOTATIONS} annotations a file holds")
    out: list[Annotation] = []
    sizes: list[int] = []  # annotations per feature
    ids: set[str] = set()
    for i, f in enumerate(features):
        where = f"feature {i}"
        if not isinstance(f, dict) or f.get("type") != "Feature" or not isinstance(f.get("geometry"), dict):
            raise MzarrValueError(f"{where}: must be a GeoJSON Feature with a geometry, got {_show(f)}")
        props = f.get("properties") or {}
        if not isinstance(props, dict):
            raise MzarrValueError(f"{where}: properties must be an object")
        klass = props.get("classification") or {}
        if not isinstance(klass, dict):
            raise MzarrValueError(f"{where}: classification must be an object {{name, color}}")
        extra: dict[str, Any] = props["mzarr"] if isinstance(props.get("mzarr"), dict) else {}
        plane = extra.get("plane")
        fields: dict[str, Any] = dict(
            name=props.get("name") if isinstance(props.get("name"), str) else "",
            class_name=klass.get("name") or None, color=_color(klass, where),
            plane=None if not isinstance(plane, dict) else (plane.get("axis"), plane.get("index")),
            properties=extra.get("properties") or {}, locked=bool(props.get("isLocked", False)),
        )
        fid = f.get("id") if isinstance(f.get("id"), str) and f.get("id") else None
        if fid is None or fid in ids:
            fid = str(uuid.uuid4())
        geometry: dict[str, Any] = f["geometry"]
        shapes: list[tuple[str, Any]]
        kind, coords = geometry.get("type"), geometry.get("coordinates")
        try:
            if kind == "Point":
                shapes = [("point", [coords])]
            elif kind == "MultiPoint":
                shapes = [("point", [c]) for c in (coords or [])]
            elif kind == "LineString":
                shapes = [("line", coords)]
            elif kind == "MultiLineString":
                shapes = [("line", c) for c in (coords or [])]
            elif kind == "Polygon":
                hint = extra.get("type")
                box = extra.get("box")
                if hint in ("rectangle", "ellipse") and isinstance(box, list) and len(box) == 4:
                    shapes = [(hint, [box[:2], box[2:]])]
                else:
                    shapes = [("polygon", _outer_ring(coords))]
            elif kind == "MultiPolygon":  # QuPath's annotation of several pieces: one polygon annotation per piece
                if not isinstance(coords, list) or not coords:
                    raise MzarrValueError("a MultiPolygon's coordinates must be a list of polygons")
                shapes = [("polygon", _outer_ring(c)) for c in coords]
            else:
                raise MzarrValueError(
                    f"geometry {kind!r} is not an annotation Mzarr stores (Point, MultiPoint, LineString, "
                    "MultiLineString, Polygon, MultiPolygon)"
                )
            for n, (shape_kind, pts) in enumerate(shapes):
                extra_fields = dict(fields)
                if len(shapes) > 1:
                    extra_fields["name"] = f"{fields['name'] or shape_kind} {n + 1}"
                out.append(Annotation(kind=shape_kind, points=pts, id=fid if n == 0 else f"{fid}-{n + 1}", **extra_fields))
        except MzarrValueError as exc:
            raise MzarrValueError(f"{where}: {exc}") from None
        ids.add(fid)
        sizes.append(len(shapes))
    checked = iter(check_annotations(out))
    return [[next(checked) for _ in range(n)] for n in sizes]


def write_geojson(items: list[Annotation], path: str | Path) -> Path:
    """Write ``items`` to ``path`` as QuPath-style GeoJSON (:func:`to_geojson`)."""
    path = Path(path)
    path.write_text(json.dumps(to_geojson(items), indent=1))
    return path


def read_geojson(path: str | Path) -> list[Annotation]:
    """Annotations from a GeoJSON file (:func:`from_geojson`), at most MAX_GEOJSON_BYTES, read with clear errors."""
    return [a for feature in read_geojson_features(path) for a in feature]


def read_geojson_features(path: str | Path) -> list[list[Annotation]]:
    """The annotations of each feature of a GeoJSON file (:func:`geojson_features`; a Multi- geometry gives several),
    read as :func:`read_geojson` does."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_GEOJSON_BYTES:
            raise MzarrValueError(f"{path}: {size} bytes of GeoJSON, more than the {MAX_GEOJSON_BYTES // 2**20} MiB read")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        from .errors import MzarrFileNotFoundError

        raise MzarrFileNotFoundError(f"{path} does not exist") from None
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        if isinstance(exc, MzarrValueError):
            raise
        raise MzarrValueError(f"{path}: not valid GeoJSON ({str(exc)[:200]})") from None
    try:
        return geojson_features(data)
    except MzarrValueError as exc:
        raise MzarrValueError(f"{path}: {exc}") from None
