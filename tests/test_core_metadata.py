"""User metadata (live ``attrs()``), OME-NGFF 0.5 group metadata, spacing/units, and the plain OME-Zarr folder
form read with nothing but zarr + imagecodecs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import zarr
from conftest import assert_bit_exact, assert_pyramid, chunk_blobs, reference_pyramid, smooth_array, to_storage

from mzarr import Mzarr
from mzarr_core.errors import MzarrReadOnlyError, MzarrValueError


def stored_attrs(path) -> dict:
    """The user attributes as stored in the file right now (group zarr.json read with sqlite3)."""
    return json.loads(chunk_blobs(path)["zarr.json"])["attributes"]["mzarr"]["attrs"]


# -- attrs() ------------------------------------------------------------------------------------------------------
def test_attrs_live_and_persisted_immediately(tmp_path):
    """In 'r+' every change is in the file at once (visible to sqlite3 and to a new reader, before close)."""
    path = Mzarr(smooth_array((20, 20), "uint8"), attrs={"a": 1}).save(tmp_path / "x.mzarr")
    with Mzarr(path, "r+") as m:
        attrs = m.attrs()
        assert dict(attrs) == {"a": 1}
        attrs["sample"] = {"name": "mouse 3", "stain": ["DAPI", "GFP"], "dose": 2.5, "ok": True, "none": None}
        assert stored_attrs(path)["sample"]["stain"] == ["DAPI", "GFP"]
        with Mzarr(path) as reader:
            assert reader.attrs()["sample"]["dose"] == 2.5
        del attrs["a"]
        assert "a" not in stored_attrs(path)
        attrs.update({"x": 1, "y": [1, 2]}, z="zed")
        assert stored_attrs(path) == {"sample": attrs["sample"], "x": 1, "y": [1, 2], "z": "zed"}
        m.attrs().replace({"only": "this"})
        assert stored_attrs(path) == {"only": "this"}
        assert dict(attrs) == {"only": "this"}, "attrs() mappings are views of the same metadata"
        assert len(attrs) == 1 and list(attrs) == ["only"] and attrs.to_dict() == {"only": "this"}
    with Mzarr(path) as m:
        assert dict(m.attrs()) == {"only": "this"}


def test_attrs_nested_edits_need_flush_or_close(tmp_path):
    """Edits inside a nested value are not seen by the mapping; flush() (or close()) writes them."""
    path = Mzarr(smooth_array((20, 20), "uint8"), attrs={"d": {"n": 1}}).save(tmp_path / "x.mzarr")
    m = Mzarr(path, "r+")
    m.attrs()["d"]["n"] = 2
    m.flush()
    assert stored_attrs(path) == {"d": {"n": 2}}
    m.attrs()["d"]["n"] = 3
    m.close()
    with Mzarr(path) as again:
        assert again.attrs()["d"] == {"n": 3}


def test_attrs_read_only(tmp_path):
    path = Mzarr(smooth_array((20, 20), "uint8"), attrs={"k": [1]}).save(tmp_path / "x.mzarr")
    with Mzarr(path) as m:
        attrs = m.attrs()
        assert attrs["k"] == [1]
        for action in (
            lambda: attrs.__setitem__("k", 2),
            lambda: attrs.__delitem__("k"),
            lambda: attrs.update(k=3),
            lambda: attrs.replace({}),
        ):
            with pytest.raises(MzarrReadOnlyError, match="read-only"):
                action()
        assert dict(attrs) == {"k": [1]}
    assert stored_attrs(path) == {"k": [1]}


def test_attrs_keys_and_values_checked(tmp_path):
    m = Mzarr(smooth_array((10, 10), "uint8"))
    with pytest.raises(MzarrValueError, match="keys must be strings"):
        m.attrs()[3] = "x"
    with pytest.raises(MzarrValueError, match="must be JSON"):
        m.attrs().update(k={1})
    with pytest.raises(MzarrValueError, match="must be a JSON object"):
        m.attrs().replace([1, 2])


def test_attrs_in_memory_saved_and_overridden(tmp_path):
    """In-memory attrs go into the saved file; save(attrs=) replaces them; saving a file again keeps them."""
    m = Mzarr(smooth_array((10, 10), "uint8"), attrs={"a": 1})
    m.attrs()["b"] = [1.5, "x"]
    p1 = m.save(tmp_path / "one.mzarr")
    p2 = m.save(tmp_path / "two.mzarr", attrs={"c": None})
    with Mzarr(p1) as one, Mzarr(p2) as two:
        assert dict(one.attrs()) == {"a": 1, "b": [1.5, "x"]}
        assert dict(two.attrs()) == {"c": None}
        p3 = one.save(tmp_path / "three.mzarr")
    with Mzarr(p3) as three:
        assert dict(three.attrs()) == {"a": 1, "b": [1.5, "x"]}


# -- NGFF metadata -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,axes,spacing,storage_names",
    [
        ((70, 50), "yx", (0.5, 0.25), "yx"),
        ((9, 40, 30), "zyx", (2.0, 0.3, 0.3), "zyx"),
        ((40, 30, 3), "yxc", (1.5, 1.5), "cyx"),
        ((3, 9, 40, 30), "czyx", None, "czyx"),
        ((9, 40, 30, 2), "zyxc", (4, 1, 1), "czyx"),
    ],
)
def test_ngff_group_metadata(tmp_path, shape, axes, spacing, storage_names):
    """zarr.json holds ome.version 0.5 and multiscales axes/datasets whose scale is spacing * factor per level."""
    a = smooth_array(shape, "uint8")
    path = Mzarr(a, axes=axes, spacing=spacing, unit="micrometer" if spacing else None).save(
        tmp_path / "x.mzarr", chunks=tuple(8 if ax != "c" else 1 for ax in axes)
    )
    blobs = chunk_blobs(path)
    group = json.loads(blobs["zarr.json"])
    assert group["zarr_format"] == 3 and group["node_type"] == "group"
    ome = group["attributes"]["ome"]
    assert ome["version"] == "0.5"
    (ms,) = ome["multiscales"]
    assert [ax["name"] for ax in ms["axes"]] == list(storage_names)
    for ax in ms["axes"]:
        assert ax["type"] == ("channel" if ax["name"] == "c" else "space")
        if spacing and ax["type"] == "space":
            assert ax["unit"] == "micrometer"
    with Mzarr(path) as m:
        assert m.axes == axes
        assert m.spacing == (tuple(float(s) for s in spacing) if spacing else None)
        spatial_spacing = list(spacing) if spacing else [1.0] * len(m.spatial_axes)
        assert len(ms["datasets"]) == len(m.levels) >= 2
        for lvl, ds in zip(m.levels, ms["datasets"]):
            assert ds["path"] == str(lvl.index)
            (transform,) = [t for t in ds["coordinateTransformations"] if t["type"] == "scale"]
            expected, it = [], iter(spatial_spacing)
            for name in storage_names:
                f = lvl.factor[axes.index(name)]
                expected.append(1.0 if name == "c" else float(next(it)) * f)
            assert transform["scale"] == pytest.approx(expected)
            meta = json.loads(blobs[f"{lvl.index}/zarr.json"])
            assert meta["node_type"] == "array"
            assert meta["shape"] == [lvl.shape[axes.index(n)] for n in storage_names]
            assert meta["dimension_names"] == list(storage_names)


def test_spacing_scalar_and_unit(tmp_path):
    path = Mzarr(smooth_array((5, 20, 20), "uint16"), spacing=0.7, unit="nanometer").save(tmp_path / "s.mzarr")
    with Mzarr(path) as m:
        assert m.spacing == (0.7, 0.7, 0.7) and m.unit == "nanometer"
        p2 = m.save(tmp_path / "s2.mzarr", spacing=(2, 1, 1))
    with Mzarr(p2) as m2:
        assert m2.spacing == (2.0, 1.0, 1.0) and m2.unit == "nanometer"


# -- the plain OME-Zarr folder form ----------------------------------------------------------------------------------
DIRECTORY_CASES = {
    "uint8_yx": (lambda: smooth_array((90, 70), "uint8"), None, (32, 32)),
    "int16_zyx": (lambda: smooth_array((10, 40, 36), "int16"), None, (4, 16, 16)),
    "bool_yx": (lambda: smooth_array((50, 45), "bool"), None, (16, 16)),
    "rgb_yxc": (lambda: smooth_array((40, 44, 3), "uint8"), None, (16, 16, 3)),
    "float32_czyx": (lambda: smooth_array((2, 6, 20, 22), "float32"), "czyx", (1, 4, 8, 8)),
}


@pytest.mark.parametrize("case", list(DIRECTORY_CASES))
def test_directory_form_reads_with_plain_zarr(tmp_path, case):
    """save('x.ome.zarr') writes a folder that zarr.open_group reads level by level (imagecodecs codecs
    registered), equal to the reference pyramid in NGFF order; Mzarr opens it too."""
    import imagecodecs.zarr

    imagecodecs.zarr.register_codecs()
    make, axes, chunks = DIRECTORY_CASES[case]
    a = make()
    path = Mzarr(a, axes=axes).save(tmp_path / "x.ome.zarr", chunks=chunks)
    assert path.is_dir() and (path / "zarr.json").is_file()
    group = zarr.open_group(path, mode="r")
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    with Mzarr(path) as m:
        ref = reference_pyramid(a, m.axes, len(datasets), "mean")
        assert len(m.levels) == len(datasets) >= 2
        for ds, expected in zip(datasets, ref):
            arr = group[ds["path"]]
            assert_bit_exact(arr[...], to_storage(expected, m.axes), f"plain zarr level {ds['path']}")
        assert_pyramid(m, a, "mean")


def test_directory_form_in_a_fresh_interpreter(tmp_path):
    """Only zarr + imagecodecs (no mzarr import at all) are needed to read the folder form."""
    a = smooth_array((6, 30, 34), "int16", seed=3)
    path = Mzarr(a).save(tmp_path / "v.ome.zarr", chunks=(4, 16, 16))
    np.save(tmp_path / "expected.npy", a)
    code = f"""
import sys, numpy as np, zarr, imagecodecs.zarr
assert "mzarr" not in sys.modules and "mzarr_core" not in sys.modules
imagecodecs.zarr.register_codecs()
g = zarr.open_group({str(path)!r}, mode="r")
ms = g.attrs["ome"]["multiscales"][0]
assert g.attrs["ome"]["version"] == "0.5"
level0 = g[ms["datasets"][0]["path"]][...]
assert np.array_equal(level0, np.load({str(tmp_path / "expected.npy")!r})), "level 0 differs"
print(len(ms["datasets"]), [g[d["path"]].shape for d in ms["datasets"]])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("3 [(6, 30, 34), (3, 15, 17), (2, 8, 9)]"), out.stdout


def test_directory_form_editable_and_resaved(tmp_path):
    """An OME-Zarr folder opened 'r+' takes writes on every level; saving over it replaces it atomically."""
    a = smooth_array((50, 60), "uint16", seed=4)
    path = Mzarr(a).save(tmp_path / "e.ome.zarr", chunks=(16, 16))
    ref = a.copy()
    with Mzarr(path, "r+") as m:
        m[10:40, 5:9] = 7
        ref[10:40, 5:9] = 7
        m.attrs()["edited"] = True
        assert_pyramid(m, ref, "mean")
    with Mzarr(path) as m:
        assert_pyramid(m, ref, "mean")
        assert m.attrs()["edited"] is True
    Mzarr(ref[::-1].copy()).save(path, chunks=(32, 32))
    with Mzarr(path) as m:
        assert m.chunks == (32, 32)
        assert_pyramid(m, ref[::-1].copy(), "mean")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "e.ome.zarr"]
    assert leftovers == [], leftovers


def test_foreign_ome_zarr_opens(tmp_path):
    """An NGFF 0.5 image written by plain zarr (other level names, no mzarr block) opens with its spacing."""
    a = smooth_array((40, 60), "uint16", seed=5)
    root = zarr.open_group(tmp_path / "foreign.zarr", mode="w", zarr_format=3)
    levels = [a, a[::2, ::2]]
    for i, data in enumerate(levels):
        arr = root.create_array(f"s{i}", shape=data.shape, dtype=data.dtype, chunks=(16, 16))
        arr[...] = data
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{
            "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "yx"],
            "datasets": [
                {"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [0.5, 0.5]}]},
                {"path": "s1", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]},
            ],
        }],
    }
    with Mzarr(tmp_path / "foreign.zarr") as m:
        assert m.axes == "yx" and m.spacing == (0.5, 0.5) and m.unit == "micrometer"
        assert [lvl.factor for lvl in m.levels] == [(1, 1), (2, 2)]
        assert_bit_exact(m.levels[1][...], a[::2, ::2])
        assert_bit_exact(m[...], a)


def test_untouched_session_keeps_other_sessions_attrs(tmp_path):
    """An r+ session that never changes attrs (only pixels) must not erase metadata another session wrote."""
    path = Mzarr(smooth_array((20, 20), "uint8"), attrs={"x": 0}).save(tmp_path / "x.mzarr")
    viewer = Mzarr(path, "r+")
    with Mzarr(path, "r+") as script:
        script.attrs()["note"] = "from the script"
    assert stored_attrs(path) == {"x": 0, "note": "from the script"}
    viewer[0, 0] = 5
    viewer.close()
    assert stored_attrs(path) == {"x": 0, "note": "from the script"}
    with Mzarr(path) as m:
        assert int(m[0, 0]) == 5


def test_sessions_editing_different_keys_merge(tmp_path):
    """Two r+ sessions setting different keys both keep their key; readers see the file's current attrs."""
    path = Mzarr(smooth_array((20, 20), "uint8"), attrs={"x": 0}).save(tmp_path / "x.mzarr")
    viewer = Mzarr(path)
    editor = Mzarr(path, "r+")
    with Mzarr(path, "r+") as script:
        script.attrs()["n"] = 1
    editor.attrs()["m"] = 2
    editor.close()
    assert stored_attrs(path) == {"x": 0, "n": 1, "m": 2}
    assert dict(viewer.attrs()) == {"x": 0, "n": 1, "m": 2}
    viewer.close()


def test_sessions_merge_deletes_and_nested_edits(tmp_path):
    """A delete in one session and a new key in another both survive; a flushed nested edit merges too."""
    path = Mzarr(smooth_array((20, 20), "uint8"), attrs={"x": 0, "keep": 1}).save(tmp_path / "x.mzarr")
    a, b = Mzarr(path, "r+"), Mzarr(path, "r+")
    del a.attrs()["x"]
    b.attrs()["y"] = 2
    assert stored_attrs(path) == {"keep": 1, "y": 2}
    assert dict(a.attrs()) == dict(b.attrs()) == {"keep": 1, "y": 2}
    a.attrs()["d"] = {"n": 1}
    b.attrs()["e"] = [1]
    a.attrs()["d"]["n"] = 5
    a.flush()
    a.close()
    b.close()
    assert stored_attrs(path) == {"keep": 1, "y": 2, "d": {"n": 5}, "e": [1]}


@pytest.mark.parametrize("given, stored", [("um", "micrometer"), ("µm", "micrometer"), ("μm", "micrometer"),
                                           ("Microns", "micrometer"), ("micrometre", "micrometer"), ("MM", "millimeter"),
                                           ("nm", "nanometer"), ("cm", "centimeter"), ("m", "meter"),
                                           ("millimeters", "millimeter"), ("Å", "angstrom")])
def test_units_are_stored_as_their_ome_ngff_names(tmp_path, given, stored):
    """QA repro_12: `--unit um` was stored as typed, an invalid NGFF unit other tools drop. Common spellings become
    the UDUNITS-2 name in the file's NGFF axes, in memory and through a save, a convert and the CLI."""
    import mzarr_core
    from mzarr_core.cli import main

    pixels = np.arange(2 * 6 * 8, dtype=np.uint8).reshape(2, 6, 8)
    m = Mzarr(pixels, spacing=(2, 0.5, 0.5), unit=given)
    assert m.unit == stored
    m.save(tmp_path / "a.mzarr")
    Mzarr(pixels, spacing=(2, 0.5, 0.5)).save(tmp_path / "b.ome.zarr", unit=given)
    np.save(tmp_path / "c.npy", pixels)
    mzarr_core.convert(tmp_path / "c.npy", tmp_path / "c.mzarr", spacing=(2, 0.5, 0.5), unit=given)
    assert main(["convert", str(tmp_path / "c.npy"), str(tmp_path / "d.mzarr"), "--spacing", "2,0.5,0.5", "--unit",
                 given, "--quiet"]) == 0
    for name in ("a.mzarr", "b.ome.zarr", "c.mzarr", "d.mzarr"):
        with Mzarr(tmp_path / name) as back:
            assert back.unit == stored and back.spacing == (2, 0.5, 0.5), name
            assert_bit_exact(back.numpy(), pixels)
    axes = json.loads((tmp_path / "b.ome.zarr" / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]["axes"]
    assert [a.get("unit") for a in axes] == [stored] * 3


def test_unknown_and_time_units_are_refused_with_the_valid_names(tmp_path, capsys):
    """`--unit furlong` was accepted; now it (and a time unit for a spatial axis) is refused before anything is
    written, naming the valid units."""
    from mzarr_core.cli import main

    pixels = np.zeros((4, 4), np.uint8)
    with pytest.raises(MzarrValueError, match=r"unknown unit 'furlong': give an OME-NGFF spatial unit: micrometer "
                                              r"\(um, µm, micron\), nanometer \(nm\).*or one of angstrom, .*parsec"):
        Mzarr(pixels, spacing=(1, 1), unit="furlong")
    with pytest.raises(MzarrValueError, match=r"'ms' is a time unit \(millisecond\).* give a spatial unit"):
        Mzarr(pixels, spacing=(1, 1)).save(tmp_path / "t.mzarr", unit="ms")
    np.save(tmp_path / "p.npy", pixels)
    assert main(["convert", str(tmp_path / "p.npy"), str(tmp_path / "p.mzarr"), "--spacing", "1,1", "--unit",
                 "furlong", "--quiet"]) == 2
    assert "unknown unit 'furlong'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npy"]
