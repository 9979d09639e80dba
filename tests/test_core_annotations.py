"""Annotations stored in the image's file (issue 10, deliverable 4): model checks, the versioned document in
.mzarr and OME-Zarr folders, transactions, hostile documents, and GeoJSON in QuPath's convention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mzarr_core import Mzarr
from mzarr_core.annotations import (
    KEY, MAX_ANNOTATIONS, Annotation, from_geojson, read_geojson, to_geojson, write_geojson,
)
from mzarr_core.errors import MzarrError, MzarrFormatError, MzarrReadOnlyError, MzarrValueError
from mzarr_core.labels import put_json


def _coins() -> np.ndarray:
    from skimage import data

    return data.coins()


def _sample() -> list[Annotation]:
    return [
        Annotation("point", [(10.5, 20.25)], name="nucleus A", class_name="Tumor", color=(200, 0, 0)),
        Annotation("line", [(0, 0), (30, 40)], name="ruler"),
        Annotation("rectangle", [(5, 6), (50, 60)], name="box", class_name="Stroma", color=(0, 150, 0),
                   properties={"score": 0.5, "tags": ["a", "b"]}),
        Annotation("ellipse", [(100.5, 80), (180, 140.25)], name="oval", locked=True),
        Annotation("polygon", [(200, 10), (300, 15.5), (280, 120), (210, 90)], name="tumour edge",
                   class_name="Tumor", color=(200, 0, 0)),
    ]


@pytest.mark.parametrize("suffix", [".mzarr", ".ome.zarr"])
def test_round_trip_in_file_and_folder(tmp_path: Path, suffix: str) -> None:
    path = Mzarr(_coins()).save(tmp_path / f"c{suffix}")
    with Mzarr(path) as m:
        assert m.annotations() == []  # a file without annotations has none
    items = _sample()
    with Mzarr(path, "r+") as m:
        m.set_annotations(items)
    with Mzarr(path) as m:
        back = m.annotations()
        assert back == items  # every field, coordinates as floats, same order
        assert np.array_equal(m[...], _coins())  # the image is untouched
    with Mzarr(path, "r+") as m:
        m.set_annotations(items[:2])
        assert [a.name for a in m.annotations()] == ["nucleus A", "ruler"]
        m.set_annotations([])
        assert m.annotations() == []


def test_older_readers_see_a_plain_image(tmp_path: Path) -> None:
    """The document is its own child group: the root metadata and the levels are unchanged, so a reader that does
    not know annotations (any Zarr/NGFF reader, older Mzarr) reads the image exactly as before."""
    import zarr

    path = Mzarr(_coins()).save(tmp_path / "c.ome.zarr")
    root_before = (path / "zarr.json").read_bytes()
    with Mzarr(path, "r+") as m:
        m.set_annotations(_sample())
    assert (path / "zarr.json").read_bytes() == root_before
    doc = json.loads((path / KEY).read_text())
    assert doc["attributes"]["mzarr"]["annotations"]["version"] == 1
    assert len(doc["attributes"]["mzarr"]["annotations"]["items"]) == 5
    group = zarr.open_group(str(path), mode="r")
    assert np.array_equal(group["0"][...], _coins())


def test_in_memory_then_saved_and_kept_by_later_saves(tmp_path: Path) -> None:
    m = Mzarr(_coins())
    items = _sample()
    m.set_annotations(items)
    assert m.annotations() == items
    first = m.save(tmp_path / "a.mzarr")
    with Mzarr(first) as a:
        assert a.annotations() == items
        second = a.save(tmp_path / "b.mzarr", lossless=False, distance=1.0)
    with Mzarr(second) as b:
        assert b.annotations() == items


def test_transaction_rolls_annotations_back(tmp_path: Path) -> None:
    path = Mzarr(_coins()).save(tmp_path / "c.mzarr")
    with Mzarr(path, "r+") as m:
        m.set_annotations(_sample()[:1])
        with pytest.raises(RuntimeError):
            with m.transaction():
                m.set_annotations(_sample())
                m[0:4, 0:4] = 7
                raise RuntimeError("boom")
        assert [a.name for a in m.annotations()] == ["nucleus A"]
        assert np.array_equal(m[0:4, 0:4], _coins()[0:4, 0:4])


def test_read_only_refuses(tmp_path: Path) -> None:
    path = Mzarr(_coins()).save(tmp_path / "c.mzarr")
    with Mzarr(path) as m, pytest.raises(MzarrReadOnlyError):
        m.set_annotations(_sample())


def test_volume_planes_are_checked(tmp_path: Path) -> None:
    vol = np.arange(8 * 30 * 40, dtype=np.uint16).reshape(8, 30, 40)
    path = Mzarr(vol).save(tmp_path / "v.mzarr")
    with Mzarr(path, "r+") as m:
        with pytest.raises(MzarrValueError, match="no plane.*volume"):
            m.set_annotations([Annotation("point", [(1, 2)])])
        with pytest.raises(MzarrValueError, match="beyond the 8 planes"):
            m.set_annotations([Annotation("point", [(1, 2)], plane=("z", 8))])
        items = [Annotation("point", [(1, 2)], plane=("z", 7)), Annotation("line", [(0, 0), (5, 5)], plane=("x", 39))]
        m.set_annotations(items)
    with Mzarr(path) as m:
        assert m.annotations() == items
    m2 = Mzarr(np.zeros((20, 20), np.uint8))
    with pytest.raises(MzarrValueError, match="the image is 2D"):
        m2.set_annotations([Annotation("point", [(1, 2)], plane=("z", 0))])


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="circle", points=[(0, 0)]), "kind must be one of"),
    (dict(kind="polygon", points=[(0, 0), (1, 1)]), "3 to"),
    (dict(kind="rectangle", points=[(0, 0)]), "exactly 2"),
    (dict(kind="point", points=[(float("nan"), 0)]), "finite"),
    (dict(kind="point", points=[("a", 0)]), "numbers"),
    (dict(kind="point", points=[(0, 0)], color=(300, 0, 0)), "0-255"),
    (dict(kind="point", points=[(0, 0)], plane=("q", 1)), "plane must be"),
    (dict(kind="point", points=[(0, 0)], name="x" * 2000), "at most 1000"),
    (dict(kind="point", points=[(0, 0)], properties={"v": float("inf")}), "JSON"),
    (dict(kind="point", points=[(0, 0)], id=""), "must not be empty"),
])
def test_bad_annotations_say_what_is_wrong(kwargs: dict, message: str) -> None:
    with pytest.raises(MzarrValueError, match=message):
        Annotation(**kwargs)


def test_duplicate_ids_and_too_many_refused() -> None:
    m = Mzarr(np.zeros((20, 20), np.uint8))
    a = Annotation("point", [(1, 1)], id="same")
    with pytest.raises(MzarrValueError, match="repeats the id"):
        m.set_annotations([a, a.with_(name="other")])
    with pytest.raises(MzarrValueError, match="more than the"):
        m.set_annotations([Annotation("point", [(1, 1)])] * (MAX_ANNOTATIONS + 1))


@pytest.mark.parametrize("doc, message", [
    ({"zarr_format": 3, "node_type": "array"}, "Zarr v3 group"),
    ({"zarr_format": 3, "node_type": "group", "attributes": {}}, "must be an object"),
    ({"zarr_format": 3, "node_type": "group", "attributes": {"mzarr": {"annotations": {"version": 99, "items": []}}}},
     "newer Mzarr"),
    ({"zarr_format": 3, "node_type": "group", "attributes": {"mzarr": {"annotations": {"version": 1, "items": 5}}}},
     "items must be a list"),
    ({"zarr_format": 3, "node_type": "group", "attributes": {"mzarr": {"annotations": {"version": 1, "items": [
        {"id": "a", "type": "polygon", "coordinates": [[0, 0]]}]}}}}, r"items\[0\]: a polygon has 3 to"),
    ({"zarr_format": 3, "node_type": "group", "attributes": {"mzarr": {"annotations": {"version": 1, "items": [
        {"id": "a", "type": "point", "coordinates": [[0, 0]]}, {"id": "a", "type": "point", "coordinates": [[1, 1]]}]}}}},
     "repeats the id"),
])
def test_hostile_documents_give_format_errors(tmp_path: Path, doc: dict, message: str) -> None:
    path = Mzarr(_coins()).save(tmp_path / "c.ome.zarr")
    (path / "annotations").mkdir()
    (path / KEY).write_text(json.dumps(doc))
    with Mzarr(path) as m:
        with pytest.raises(MzarrFormatError, match=message):
            m.annotations()
        assert np.array_equal(m[0:5, 0:5], _coins()[0:5, 0:5])  # the image still reads


def test_oversized_and_deep_documents_refused_bounded(tmp_path: Path) -> None:
    path = Mzarr(_coins()).save(tmp_path / "c.mzarr")
    with Mzarr(path, "r+") as m:
        store = m._store
        with m.transaction():
            put_json(store, KEY, {"x": "a" * (17 * 2**20)})
    with Mzarr(path) as m, pytest.raises(MzarrFormatError, match="MiB"):
        m.annotations()
    folder = Mzarr(_coins()).save(tmp_path / "d.ome.zarr")
    (folder / "annotations").mkdir()
    (folder / KEY).write_text("[" * 100_000 + "]" * 100_000)
    with Mzarr(folder) as m, pytest.raises(MzarrError):
        m.annotations()


# -- GeoJSON -------------------------------------------------------------------------------------------------------
QUPATH_EXPORT = {
    # Written by hand after QuPath's documentation (docs/advanced/exporting_annotations.rst: File > Object data >
    # Export as GeoJSON, "FEATURE_COLLECTION"; coordinates in full-resolution pixels, origin top left) and the
    # structure QuPath 0.4+ writes: Feature id (UUID), properties objectType/name/classification{name,color}/isLocked.
    "type": "FeatureCollection",
    "features": [
        {"type": "Feature", "id": "6f1c5b6a-0d7c-4a7e-9a53-6c1a1d2e3f40",
         "geometry": {"type": "Polygon", "coordinates": [[[100, 200], [400, 210], [380, 500], [90, 480], [100, 200]]]},
         "properties": {"objectType": "annotation", "name": "Region 1",
                        "classification": {"name": "Tumor", "color": [200, 0, 0]}, "isLocked": False}},
        {"type": "Feature", "id": "0a9e1f3c-77b2-4f15-8c61-2b4d6e8f9a01",
         "geometry": {"type": "LineString", "coordinates": [[10.5, 10.5], [250.25, 30.75]]},
         "properties": {"objectType": "annotation", "isLocked": True}},
        {"type": "Feature", "id": "3d2c1b0a-9f8e-4d7c-b6a5-443322110000",
         "geometry": {"type": "MultiPoint", "coordinates": [[5, 6], [7, 8]]},
         "properties": {"objectType": "annotation", "name": "cells",
                        "classification": {"name": "Immune cells", "colorRGB": -16744448}}},
        {"type": "Feature", "id": "d1e2f3a4-b5c6-4789-9abc-def012345678",
         "geometry": {"type": "Point", "coordinates": [33.0, 44.0]},
         "properties": {"objectType": "annotation", "name": "mitosis"}},
    ],
}


def test_qupath_geojson_imports_and_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "qupath.geojson"
    src.write_text(json.dumps(QUPATH_EXPORT))
    items = read_geojson(src)
    assert [a.kind for a in items] == ["polygon", "line", "point", "point", "point"]
    poly = items[0]
    assert poly.points == ((100, 200), (400, 210), (380, 500), (90, 480))  # closing vertex dropped
    assert (poly.id, poly.name, poly.class_name, poly.color, poly.locked) == (
        "6f1c5b6a-0d7c-4a7e-9a53-6c1a1d2e3f40", "Region 1", "Tumor", (200, 0, 0), False)
    assert items[1].locked and items[1].points == ((10.5, 10.5), (250.25, 30.75))
    assert [a.name for a in items[2:4]] == ["cells 1", "cells 2"]
    assert items[2].color == (0, 128, 0)  # QuPath 0.2's packed colorRGB
    assert items[4].points == ((33.0, 44.0),)
    # into a file and out again: the same features QuPath would read
    path = Mzarr(_coins()).save(tmp_path / "c.mzarr")
    with Mzarr(path, "r+") as m:
        m.set_annotations(items)
    with Mzarr(path) as m:
        out = write_geojson(m.annotations(), tmp_path / "out.geojson")
    back = json.loads(out.read_text())
    assert back["type"] == "FeatureCollection"
    f0 = back["features"][0]
    assert f0["id"] == QUPATH_EXPORT["features"][0]["id"]
    assert f0["geometry"] == QUPATH_EXPORT["features"][0]["geometry"]
    assert {k: f0["properties"][k] for k in ("objectType", "name", "classification", "isLocked")} == \
        QUPATH_EXPORT["features"][0]["properties"]
    assert back["features"][1]["geometry"] == QUPATH_EXPORT["features"][1]["geometry"]
    assert read_geojson(out) == items


def test_geojson_keeps_rectangles_ellipses_planes_and_properties() -> None:
    items = _sample() + [Annotation("polygon", [(0, 0), (4, 0), (0, 4)], plane=("y", 3), properties={"k": [1, 2]})]
    gj = to_geojson(items)
    rect = gj["features"][2]["geometry"]
    assert rect == {"type": "Polygon", "coordinates": [[[5, 6], [50, 6], [50, 60], [5, 60], [5, 6]]]}
    ell = gj["features"][3]["geometry"]["coordinates"][0]
    assert len(ell) == 73 and ell[0] == ell[-1]  # an ellipse is a polygon in GeoJSON (as in QuPath)
    assert from_geojson(json.loads(json.dumps(gj))) == items


@pytest.mark.parametrize("data, message", [
    ({"type": "FeatureCollection", "features": 3}, "FeatureCollection"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[0, 0], [5, 0], [5, 5], [0, 0]], [[1, 1], [2, 1], [2, 2], [1, 1]]]}}]}, "holes"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "MultiPolygon",
                                                                                 "coordinates": []}}]}, "MultiPolygon"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1]}}]},
     "feature 0"),
])
def test_bad_geojson_says_which_feature(data: dict, message: str) -> None:
    with pytest.raises(MzarrValueError, match=message):
        from_geojson(data)


def test_geojson_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(MzarrValueError, match="not valid GeoJSON"):
        read_geojson(bad)
    with pytest.raises(MzarrError, match="does not exist"):
        read_geojson(tmp_path / "missing.geojson")


def test_cli_annotations_import_export_list(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from mzarr_core.cli import main

    path = Mzarr(_coins()).save(tmp_path / "c.mzarr")
    src = tmp_path / "q.geojson"
    src.write_text(json.dumps(QUPATH_EXPORT))
    assert main(["annotations", str(path), "--import", str(src)]) == 0
    assert "imported 5 annotations from q.geojson; c.mzarr holds 5" in capsys.readouterr().out
    assert main(["annotations", str(path), "--import", str(src)]) == 0  # same ids: replaced, not doubled
    assert "holds 5" in capsys.readouterr().out
    assert main(["annotations", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "polygon   Region 1 [Tumor]: 4 points, id 6f1c5b6a-0d7c-4a7e-9a53-6c1a1d2e3f40" in listing
    assert listing.strip().endswith("5 annotations")
    out = tmp_path / "out.geojson"
    assert main(["annotations", str(path), "--export", str(out)]) == 0
    assert "wrote 5 annotations" in capsys.readouterr().out
    assert read_geojson(out) == read_geojson(src)
    assert main(["stats", str(path), "--annotation", "Region 1", "--json", "--quiet"]) == 0
    stats = json.loads(capsys.readouterr().out)
    from mzarr_core.regions import region_mask

    mask = region_mask(read_geojson(src)[0], (0, _coins().shape[0]), (0, _coins().shape[1]))
    assert stats["count"] == int(mask.sum()) and stats["mean"] == [_coins()[mask].mean()]
    vol = Mzarr(np.zeros((4, 600, 600), np.uint8)).save(tmp_path / "v.mzarr")
    assert main(["annotations", str(vol), "--import", str(src)]) == 2
    assert "4 of the 4 features of q.geojson name no plane" in capsys.readouterr().err  # 5 annotations: a MultiPolygon
    mixed = tmp_path / "mixed.geojson"  # QA: 3 features (a 2-piece MultiPolygon, a point, one on a plane) said "2 of the 4"
    square = [[[0, 0], [9, 0], [9, 9], [0, 0]]]
    mixed.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [square, [[[20, 20], [29, 20], [29, 29], [20, 20]]]]},
         "properties": {}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}, "properties": {}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square},
         "properties": {"mzarr": {"plane": {"axis": "z", "index": 1}}}},
    ]}))
    assert main(["annotations", str(vol), "--import", str(mixed)]) == 2
    assert "2 of the 3 features of mixed.geojson name no plane" in capsys.readouterr().err
    assert main(["annotations", str(vol), "--import", str(src), "--plane", "z=2"]) == 0
    with Mzarr(vol) as m:
        assert {a.plane for a in m.annotations()} == {("z", 2)}
    assert main(["annotations", str(path), "--replace"]) == 2
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    assert "annotations: 5 ('mzarr annotations FILE' lists them)" in capsys.readouterr().out
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["annotations"] == 5


def test_convert_between_forms_keeps_annotations(tmp_path: Path) -> None:
    from mzarr_core import convert

    src = Mzarr(_coins()).save(tmp_path / "c.mzarr")
    items = _sample()
    with Mzarr(src, "r+") as m:
        m.set_annotations(items)
    folder = convert(src, tmp_path / "c.ome.zarr")
    back = convert(folder, tmp_path / "back.mzarr")
    for path in (folder, back):
        with Mzarr(path) as m:
            assert m.annotations() == items


def test_qupath_multipolygon_and_multilinestring_import_one_annotation_per_piece() -> None:
    """QuPath writes an annotation of several pieces as a MultiPolygon: each piece becomes a polygon annotation of
    the same class (names and ids numbered), so the file imports instead of being refused; a hole still refuses
    its feature (it would be measured with the hole's pixels), naming the feature."""
    from mzarr_core.annotations import from_geojson

    square = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    far = [[50, 50], [60, 50], [60, 58], [50, 50]]
    items = from_geojson({"type": "Feature", "id": "a1", "geometry": {
        "type": "MultiPolygon", "coordinates": [[square], [far]]},
        "properties": {"objectType": "annotation", "name": "Tumor area",
                       "classification": {"name": "Tumor", "color": [200, 0, 0]}}})
    assert [(a.kind, a.name, a.id, a.class_name) for a in items] == [
        ("polygon", "Tumor area 1", "a1", "Tumor"), ("polygon", "Tumor area 2", "a1-2", "Tumor")]
    assert items[0].points == ((0, 0), (10, 0), (10, 10), (0, 10)) and items[1].points == ((50, 50), (60, 50), (60, 58))
    lines = from_geojson({"type": "Feature", "geometry": {"type": "MultiLineString",
                                                          "coordinates": [[[0, 0], [5, 5]], [[1, 1], [2, 9]]]}})
    assert [(a.kind, a.points) for a in lines] == [("line", ((0, 0), (5, 5))), ("line", ((1, 1), (2, 9)))]
    hole = [[2, 2], [4, 2], [4, 4], [2, 2]]
    with pytest.raises(MzarrValueError, match="feature 0: a polygon with holes"):
        from_geojson([{"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [[square, hole]]}}])
