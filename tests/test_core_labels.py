"""Label images inside an image's file (issue 10, deliverable 1): NGFF labels layout, API, pyramids by the mode
rule, transactional edits, metadata checks, save/convert/info."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mzarr_core import Mzarr
from mzarr_core.errors import MzarrError, MzarrFormatError, MzarrReadOnlyError, MzarrStorageError, MzarrValueError
from mzarr_core.pyramid import downsample
from mzarr_core.testing import failing_sqlite

NIBABEL_DATA = None
try:
    from nibabel.testing import data_path as NIBABEL_DATA  # noqa: N812
except ImportError:  # pragma: no cover
    pass


def _coins_and_cells() -> tuple[np.ndarray, np.ndarray]:
    from skimage import data, measure

    coins = data.coins()
    return coins, measure.label(coins > 110).astype(np.uint16)


def _blobs_3d() -> np.ndarray:
    from skimage import data, measure

    blobs = data.binary_blobs(length=64, n_dim=3, volume_fraction=0.3, rng=1)
    return measure.label(blobs).astype(np.int32)


def _expected_pyramid(level0: np.ndarray, levels: int) -> list[np.ndarray]:
    out = [level0]
    for _ in range(1, levels):
        prev = out[-1]
        out.append(downsample(prev, tuple(n > 1 for n in prev.shape), "mode"))
    return out


def _check_pyramid(label, what: str = "") -> None:
    levels = label.levels
    full = label[...]
    for i, level in enumerate(levels[1:], 1):
        prev = levels[i - 1][...] if i > 1 else full
        expected = downsample(prev, tuple(n > 1 for n in prev.shape), "mode")
        np.testing.assert_array_equal(level[...], expected, err_msg=f"{what} level {i}")


@pytest.fixture(params=["mzarr", "folder"])
def coins_file(request, tmp_path):
    coins, _ = _coins_and_cells()
    out = tmp_path / ("coins.mzarr" if request.param == "mzarr" else "coins.ome.zarr")
    Mzarr(coins).save(out, levels=3)
    return out


# -- round trips ---------------------------------------------------------------------------------------------------
def test_round_trip_real_segmentation_with_pyramid(coins_file):
    coins, cells = _coins_and_cells()
    assert cells.max() > 10  # a real segmentation: many coins
    with Mzarr(coins_file, "r+") as m:
        assert m.labels() == []
        lab = m.create_labels("coins", cells, colors={1: (255, 0, 0), 2: (0, 255, 0, 128)},
                              properties={1: {"class": "coin", "area": int((cells == 1).sum())}})
        assert m.labels() == ["coins"]
        assert lab.shape == coins.shape and lab.dtype == np.uint16 and lab.axes == "yx"
        assert [lv.shape for lv in lab.levels] == [lv.shape for lv in m.levels]
        np.testing.assert_array_equal(lab[...], cells)
    with Mzarr(coins_file) as m:  # reopened
        lab = m.label("coins")
        np.testing.assert_array_equal(lab[...], cells)
        np.testing.assert_array_equal(lab[40:90, 100:180], cells[40:90, 100:180])
        for got, want in zip(lab.levels, _expected_pyramid(cells, 3)):
            np.testing.assert_array_equal(got[...], want)
        assert lab.colors == {1: (255, 0, 0, 255), 2: (0, 255, 0, 128)}
        assert lab.properties == {1: {"class": "coin", "area": int((cells == 1).sum())}}
        np.testing.assert_array_equal(m[...], coins)  # the image is untouched
        with pytest.raises(MzarrReadOnlyError):
            lab[0, 0] = 1


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "bool"])
def test_every_integer_dtype_bit_exact(tmp_path, dtype):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (90, 70), dtype=np.uint8)
    info = np.iinfo(dtype) if dtype != "bool" else None
    if info is None:
        labels = rng.random((90, 70)) > 0.5
    else:
        labels = rng.integers(info.min, info.max, (90, 70), dtype=dtype, endpoint=True)
        labels[:10, :10] = info.max
        labels[10:20, :10] = info.min
    path = Mzarr(image).save(tmp_path / "x.mzarr", levels=3, chunks=(32, 32))
    with Mzarr(path, "r+") as m:
        m.create_labels("l", labels)
    with Mzarr(path) as m:
        lab = m.label("l")
        assert lab.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(lab[...], labels)
        _check_pyramid(lab, dtype)


def test_volume_labels_3d(tmp_path):
    blobs = _blobs_3d()
    volume = (blobs > 0).astype(np.uint8) * 200
    path = Mzarr(volume).save(tmp_path / "v.mzarr", levels=3)
    with Mzarr(path, "r+") as m:
        lab = m.create_labels("blobs", blobs)
        assert lab.axes == "zyx" and lab.shape == blobs.shape
    with Mzarr(path) as m:
        lab = m.label("blobs")
        np.testing.assert_array_equal(lab[...], blobs)
        np.testing.assert_array_equal(lab[10], blobs[10])
        np.testing.assert_array_equal(lab.levels[0].z_plane(10), blobs[10])  # the z-plane path of bricks
        np.testing.assert_array_equal(lab.levels[1].z_plane(3, slice(2, 20)), lab.levels[1][3, 2:20])
        assert len(lab.levels) == len(m.levels) == 3
        _check_pyramid(lab, "blobs")


@pytest.mark.skipif(NIBABEL_DATA is None, reason="nibabel is not installed")
def test_nifti_volume_segmentation(tmp_path):
    import nibabel as nib
    from skimage import measure

    anat = np.asarray(nib.load(Path(NIBABEL_DATA) / "anatomical.nii").dataobj)
    vol = np.ascontiguousarray(np.moveaxis(anat, -1, 0)).astype(np.int16)
    seg = measure.label(vol > np.percentile(vol, 80)).astype(np.uint32)
    assert seg.max() > 1
    path = Mzarr(vol).save(tmp_path / "anat.mzarr", levels=2)
    with Mzarr(path, "r+") as m:
        m.create_labels("seg", seg)
    with Mzarr(path) as m:
        np.testing.assert_array_equal(m.label("seg")[...], seg)
        _check_pyramid(m.label("seg"), "nifti")


def test_empty_labels_and_edits_update_every_level(coins_file):
    coins, cells = _coins_and_cells()
    with Mzarr(coins_file, "r+") as m:
        lab = m.create_labels("paint", dtype="uint8")
        assert lab.dtype == np.uint8 and not lab[...].any()
        lab[100:140, 50:90] = 5
        lab[0, :] = 3
        expected = np.zeros(coins.shape, np.uint8)
        expected[100:140, 50:90] = 5
        expected[0, :] = 3
        np.testing.assert_array_equal(lab[...], expected)
        for got, want in zip(lab.levels, _expected_pyramid(expected, 3)):
            np.testing.assert_array_equal(got[...], want)
        assert (lab.levels[2][...] == 5).any()  # the stroke reached the coarsest level
    with Mzarr(coins_file) as m:  # committed
        for got, want in zip(m.label("paint").levels, _expected_pyramid(expected, 3)):
            np.testing.assert_array_equal(got[...], want)


def test_refuses_wrong_shapes_dtypes_names(coins_file):
    coins, cells = _coins_and_cells()
    with Mzarr(coins_file, "r+") as m:
        with pytest.raises(MzarrValueError, match=r"spatial shape \(303, 384\)"):
            m.create_labels("x", cells[:100])
        with pytest.raises(MzarrValueError, match="integer label values"):
            m.create_labels("x", cells.astype(np.float32))
        with pytest.raises(MzarrValueError, match="integer label values"):
            m.create_labels("x", dtype="float64")
        with pytest.raises(MzarrValueError, match="name"):
            m.create_labels("../evil", cells)
        m.create_labels("x", cells)
        with pytest.raises(MzarrValueError, match="already has"):
            m.create_labels("x", cells)
        with pytest.raises(MzarrValueError, match="no label image 'nope'"):
            m.label("nope")
        with pytest.raises(MzarrValueError, match="colour"):
            m.create_labels("y", cells, colors={1: (300, 0, 0)})
        assert m.labels() == ["x"]
    with pytest.raises(MzarrValueError, match="in memory"):
        Mzarr(coins).create_labels("x", cells)
    assert Mzarr(coins).labels() == []


def test_rgb_image_labels_have_no_channel_axis(tmp_path):
    from skimage import data

    rgb = data.astronaut()[:200, :160]
    path = Mzarr(rgb).save(tmp_path / "rgb.mzarr")
    seg = (rgb[..., 0] > 128).astype(np.uint8)
    with Mzarr(path, "r+") as m:
        with pytest.raises(MzarrValueError, match="no channel"):
            m.create_labels("s", np.stack([seg] * 3, -1))
        m.create_labels("s", seg)
    with Mzarr(path) as m:
        np.testing.assert_array_equal(m.label("s")[...], seg)


# -- transactions --------------------------------------------------------------------------------------------------
def test_transaction_covers_image_and_labels(tmp_path):
    coins, cells = _coins_and_cells()
    path = Mzarr(coins).save(tmp_path / "t.mzarr", levels=3)
    with Mzarr(path, "r+") as m:
        lab = m.create_labels("cells", cells)
        with pytest.raises(RuntimeError):
            with m.transaction():
                m[0:50, 0:50] = 0
                lab[0:50, 0:50] = 9
                raise RuntimeError("cancelled")
        np.testing.assert_array_equal(m[...], coins)
        np.testing.assert_array_equal(lab[...], cells)
        _check_pyramid(lab, "after rollback")
        with m.transaction():
            m[0:50, 0:50] = 0
            lab[0:50, 0:50] = 9
    with Mzarr(path) as m:
        assert (m[0:50, 0:50] == 0).all() and (m.label("cells")[0:50, 0:50] == 9).all()


@pytest.mark.parametrize("fail_at", [1, 2, 3, 5, 8])
def test_failure_mid_way_leaves_image_and_labels_as_before(tmp_path, fail_at):
    coins, cells = _coins_and_cells()
    path = Mzarr(coins).save(tmp_path / "f.mzarr", levels=3, chunks=(64, 64))
    with Mzarr(path, "r+") as m:
        lab = m.create_labels("cells", cells, colors={1: (1, 2, 3)})
        with failing_sqlite(m, fail_at), pytest.raises(MzarrStorageError):
            with m.transaction():
                m[:, :] = 7
                lab[:, :] = 4
                lab.colors = {}
        np.testing.assert_array_equal(m[...], coins)
        np.testing.assert_array_equal(lab[...], cells)
        assert lab.colors == {1: (1, 2, 3, 255)}
        _check_pyramid(lab, f"fail at {fail_at}")
    with Mzarr(path) as m:
        np.testing.assert_array_equal(m[...], coins)
        np.testing.assert_array_equal(m.label("cells")[...], cells)


@pytest.mark.parametrize("fail_at", [1, 2, 4, 10])
def test_failed_create_rename_delete_keep_previous_state(tmp_path, fail_at):
    coins, cells = _coins_and_cells()
    path = Mzarr(coins).save(tmp_path / "g.mzarr", levels=3, chunks=(64, 64))
    with Mzarr(path, "r+") as m:
        m.create_labels("keep", cells)
        with failing_sqlite(m, fail_at), pytest.raises(MzarrStorageError):
            m.create_labels("new", cells)
        assert m.labels() == ["keep"]
        with failing_sqlite(m, 1), pytest.raises(MzarrStorageError):
            m.rename_labels("keep", "other")
        with failing_sqlite(m, 2), pytest.raises(MzarrStorageError):
            m.delete_labels("keep")
        assert m.labels() == ["keep"]
        np.testing.assert_array_equal(m.label("keep")[...], cells)
    with Mzarr(path) as m:
        assert m.labels() == ["keep"]
        np.testing.assert_array_equal(m.label("keep")[...], cells)
        import sqlite3

    keys = [k for (k,) in sqlite3.connect(path).execute("SELECT key FROM zarr WHERE key LIKE 'labels/new%'")]
    assert keys == []


# -- rename / delete / metadata ------------------------------------------------------------------------------------
def test_rename_delete_and_metadata(coins_file):
    coins, cells = _coins_and_cells()
    with Mzarr(coins_file, "r+") as m:
        a = m.create_labels("a", cells)
        m.create_labels("b", (cells > 0).astype(np.uint8))
        m.rename_labels("a", "cells")
        assert m.labels() == ["cells", "b"]
        with pytest.raises(MzarrValueError, match="renamed"):
            a[0, 0]
        np.testing.assert_array_equal(m.label("cells")[...], cells)
        _check_pyramid(m.label("cells"), "renamed")
        with pytest.raises(MzarrValueError, match="already has"):
            m.rename_labels("cells", "b")
        m.delete_labels("b")
        assert m.labels() == ["cells"]
        lab = m.label("cells")
        lab.colors = {3: (9, 8, 7, 6)}
        lab.properties = {3: {"name": "big coin", "score": 0.5}}
        assert lab.colors == {3: (9, 8, 7, 6)}
        m.delete_labels("cells")
        assert m.labels() == []
    with Mzarr(coins_file) as m:
        assert m.labels() == []
        np.testing.assert_array_equal(m[...], coins)
    if coins_file.is_dir():
        assert not (coins_file / "labels").exists()


# -- NGFF layout ---------------------------------------------------------------------------------------------------
def test_folder_export_follows_ngff_labels_layout(tmp_path):
    coins, cells = _coins_and_cells()
    out = Mzarr(coins).save(tmp_path / "c.ome.zarr", levels=3)
    with Mzarr(out, "r+") as m:
        m.create_labels("cells", cells, colors={1: (255, 0, 0, 255)}, properties={1: {"class": "coin"}})
    root = json.loads((out / "zarr.json").read_text())
    assert root["attributes"]["ome"]["version"] == "0.5"
    group = json.loads((out / "labels" / "zarr.json").read_text())
    assert group["zarr_format"] == 3 and group["node_type"] == "group"
    assert group["attributes"]["ome"]["labels"] == ["cells"]
    doc = json.loads((out / "labels" / "cells" / "zarr.json").read_text())
    ome = doc["attributes"]["ome"]
    assert ome["version"] == "0.5"
    label = ome["image-label"]
    assert label["source"] == {"image": "../../"}
    assert label["colors"] == [{"label-value": 1, "rgba": [255, 0, 0, 255]}]
    assert label["properties"] == [{"label-value": 1, "class": "coin"}]
    ms = ome["multiscales"][0]
    image_ms = root["attributes"]["ome"]["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["y", "x"]
    assert [d["coordinateTransformations"] for d in ms["datasets"]] == [
        d["coordinateTransformations"] for d in image_ms["datasets"]
    ]
    for d in ms["datasets"]:
        arr = json.loads((out / "labels" / "cells" / d["path"] / "zarr.json").read_text())
        assert arr["node_type"] == "array" and arr["data_type"] == "uint16"
    import zarr

    z = zarr.open_group(out, mode="r")
    np.testing.assert_array_equal(z["labels/cells/0"][...], cells)  # plain zarr reads the labels


def test_ome_zarr_py_reader_finds_labels(tmp_path):
    reader_mod = pytest.importorskip("ome_zarr.reader", reason="ome-zarr-py is not installed in this environment")
    from ome_zarr.io import parse_url

    coins, cells = _coins_and_cells()
    out = Mzarr(coins).save(tmp_path / "c.ome.zarr", levels=2)
    with Mzarr(out, "r+") as m:
        m.create_labels("cells", cells, colors={1: (255, 0, 0, 255)}, properties={1: {"class": "coin"}})
    nodes = list(reader_mod.Reader(parse_url(str(out)))())  # from the image: the reader follows labels/ itself
    labels = [n for n in nodes if any(isinstance(s, reader_mod.Label) for s in n.specs)]
    assert len(labels) == 1
    node = labels[0]
    assert node.metadata["name"] == "cells"
    assert node.metadata["color"] == {1: [1.0, 0.0, 0.0, 1.0]}
    assert node.metadata["properties"] == {1: {"class": "coin"}}
    assert [tuple(d.shape) for d in node.data] == [(303, 384), (152, 192)]
    np.testing.assert_array_equal(np.asarray(node.data[0]), cells)
    np.testing.assert_array_equal(np.asarray(node.data[1]), downsample(cells, (True, True), "mode"))


# -- hostile metadata ----------------------------------------------------------------------------------------------
def _put(path: Path, key: str, raw: bytes) -> None:
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("INSERT OR REPLACE INTO zarr (key, value) VALUES (?, ?)", (key, raw))


@pytest.mark.parametrize(
    "key,raw,message",
    [
        ("labels/zarr.json", b'{"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"labels": "cells"}}}',
         "attributes.ome.labels must be a list"),
        ("labels/zarr.json", b'{"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"labels": ["../../x"]}}}',
         "labels\\[0\\] must be a label image name"),
        ("labels/zarr.json", b"[" * 5000 + b"]" * 5000, "nested more than"),
        ("labels/zarr.json", b'{"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"labels": ["a", "a"]}}}',
         "twice"),
        ("labels/zarr.json", b"x" * (17 * 2**20), "MiB"),
        ("labels/cells/zarr.json", None, "image-label.colors\\[0\\].rgba"),
        ("labels/cells/0/zarr.json", None, "'shape'"),
    ],
)
def test_hostile_labels_metadata_is_a_format_error_naming_the_document(tmp_path, key, raw, message):
    coins, cells = _coins_and_cells()
    path = Mzarr(coins).save(tmp_path / "h.mzarr", levels=2)
    with Mzarr(path, "r+") as m:
        m.create_labels("cells", cells)
    if raw is None:
        import sqlite3

        with sqlite3.connect(path) as conn:
            doc = json.loads(conn.execute("SELECT value FROM zarr WHERE key=?", (key,)).fetchone()[0])
        if key == "labels/cells/zarr.json":
            doc["attributes"]["ome"]["image-label"]["colors"] = [{"label-value": 1, "rgba": [1, 2, 3, 999]}]
        else:
            doc["shape"] = [-1, 5]
        raw = json.dumps(doc).encode()
    _put(path, key, raw)
    with Mzarr(path) as m:
        np.testing.assert_array_equal(m[...], coins)  # the image itself still opens and reads
        with pytest.raises(MzarrFormatError, match=message) as info:
            m.labels() if key == "labels/zarr.json" else m.label("cells").colors
        assert key in str(info.value)


def test_label_of_wrong_shape_in_file_is_refused(tmp_path):
    coins, cells = _coins_and_cells()
    path = Mzarr(coins).save(tmp_path / "w.mzarr", levels=1)
    other = Mzarr(coins[:100]).save(tmp_path / "o.mzarr", levels=1)
    with Mzarr(other, "r+") as m:
        m.create_labels("cells", cells[:100])
    import sqlite3

    with sqlite3.connect(other) as src, sqlite3.connect(path) as dst:
        for key, value in src.execute("SELECT key, value FROM zarr WHERE key LIKE 'labels/%'"):
            dst.execute("INSERT OR REPLACE INTO zarr (key, value) VALUES (?, ?)", (key, value))
    with Mzarr(path) as m, pytest.raises(MzarrFormatError, match="not the image's spatial shape") as info:
        m.label("cells")
    assert "labels/cells/zarr.json" in str(info.value)
    assert isinstance(info.value, MzarrError)


# -- save / convert / info -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["copy.mzarr", "copy.ome.zarr", "same"])
def test_save_keeps_label_images(tmp_path, target):
    coins, cells = _coins_and_cells()
    path = Mzarr(coins).save(tmp_path / "s.mzarr", levels=3)
    with Mzarr(path, "r+") as m:
        m.create_labels("cells", cells, colors={2: (1, 2, 3, 4)}, properties={2: {"kind": "coin"}})
        m.create_labels("mask", cells > 0)
        m.label("mask")[0:5, 0:5] = True
        mask = m.label("mask")[...]
        out = path if target == "same" else tmp_path / target
        old = m.label("cells")
        m.save(out, levels=2 if target != "same" else None)
        if target == "same":
            with pytest.raises(MzarrValueError, match="saved again"):
                old[0, 0]
    with Mzarr(out) as m:
        assert m.labels() == ["cells", "mask"]
        lab = m.label("cells")
        np.testing.assert_array_equal(lab[...], cells)
        assert lab.colors == {2: (1, 2, 3, 4)} and lab.properties == {2: {"kind": "coin"}}
        assert len(lab.levels) == len(m.levels)
        _check_pyramid(lab, target)
        np.testing.assert_array_equal(m.label("mask")[...], mask)
        assert m.label("mask").dtype == np.bool_


def test_save_with_other_axes_leaves_labels_out(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (3, 64, 80), dtype=np.uint8)
    path = Mzarr(img, axes="cyx").save(tmp_path / "c.mzarr")
    with Mzarr(path, "r+") as m:
        m.create_labels("l", np.ones((64, 80), np.uint8))
        out = m.save(tmp_path / "z.mzarr", axes="zyx")
    with Mzarr(out) as m:
        assert m.labels() == []


def _cli(capsys, *argv) -> tuple[int, str, str]:
    from mzarr_core.cli import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.skipif(NIBABEL_DATA is None, reason="nibabel is not installed")
def test_cli_convert_labels_from_nifti_and_info(tmp_path, capsys):
    import nibabel as nib
    from skimage import measure

    vol = np.asarray(nib.load(Path(NIBABEL_DATA) / "anatomical.nii").dataobj).astype(np.int16)
    seg = measure.label(vol > np.percentile(vol, 80)).astype(np.uint16)  # (x, y, z) like the volume
    affine = np.diag([2.0, 2.0, 2.2, 1.0])
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "anat.nii.gz")
    nib.save(nib.Nifti1Image(seg, affine), tmp_path / "seg.nii.gz")
    out = tmp_path / "anat.mzarr"
    code, text, err = _cli(capsys, "convert", tmp_path / "anat.nii.gz", out, "--labels-from", tmp_path / "seg.nii.gz",
                           "--quiet")
    assert code == 0, err
    assert "label image: seg  dtype: uint16" in text
    with Mzarr(out) as m:
        assert m.labels() == ["seg"]
        assert m.shape == vol.T.shape
        np.testing.assert_array_equal(m[...], vol.T)
        lab = m.label("seg")
        np.testing.assert_array_equal(lab[...], seg.T)  # the same (z, y, x) layout as the image
        assert len(lab.levels) == len(m.levels)
        _check_pyramid(lab, "cli")
    code, text, err = _cli(capsys, "info", out, "--json")
    assert json.loads(text)["label_images"][0]["name"] == "seg"
    # a named label image, into the folder form
    code, text, err = _cli(capsys, "convert", tmp_path / "anat.nii.gz", tmp_path / "anat.ome.zarr", "--labels-from",
                           tmp_path / "seg.nii.gz", "--labels-name", "brain", "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "anat.ome.zarr" / "labels" / "zarr.json").read_text())["attributes"]["ome"]["labels"] == ["brain"]


@pytest.mark.skipif(NIBABEL_DATA is None, reason="nibabel is not installed")
def test_cli_convert_labels_from_refuses_mismatch(tmp_path, capsys):
    import nibabel as nib

    vol = np.arange(8 * 9 * 10, dtype=np.int16).reshape(8, 9, 10)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "v.nii")
    nib.save(nib.Nifti1Image(np.ones((8, 9, 11), np.uint8), np.eye(4)), tmp_path / "wrong.nii")
    nib.save(nib.Nifti1Image(np.ones((8, 9, 10), np.float32), np.eye(4)), tmp_path / "float.nii")
    out = tmp_path / "v.mzarr"
    code, text, err = _cli(capsys, "convert", tmp_path / "v.nii", out, "--labels-from", tmp_path / "wrong.nii", "--quiet")
    assert code != 0
    assert "is not the image's spatial shape (10, 9, 8)" in err and "nothing was written" in err
    assert not out.exists()
    code, text, err = _cli(capsys, "convert", tmp_path / "v.nii", out, "--labels-from", tmp_path / "float.nii", "--quiet")
    assert code != 0 and "integer label values" in err and "float32" in err
    assert not out.exists()


def test_label_reads_share_the_files_chunk_cache(tmp_path):
    coins, cells = _coins_and_cells()
    path = Mzarr(coins).save(tmp_path / "k.mzarr", levels=2, chunks=(64, 64))
    with Mzarr(path, "r+") as m:
        m.create_labels("cells", cells)
    with Mzarr(path) as m:
        lab = m.label("cells")
        m[...]
        image_entries = m.cache_info().entries
        assert image_entries > 0
        lab[...]
        assert m.cache_info().entries == 2 * image_entries  # kept apart from the image's chunks, in the same bound
        hits = m.cache_info().hits
        np.testing.assert_array_equal(lab[...], cells)
        np.testing.assert_array_equal(m[...], coins)
        assert m.cache_info().hits >= hits + 2 * image_entries
        assert lab.levels[0].read_chunk((0, 0), cached_only=True) is not None
    with Mzarr(path, "r+") as m:  # a label edit is seen by the next read (the cache is emptied)
        lab = m.label("cells")
        lab[...]
        lab[0:64, 0:64] = 3
        assert (lab[0:64, 0:64] == 3).all()
        assert (m.label("cells")[0:64, 0:64] == 3).all()


def test_rolled_back_creation_and_read_only(tmp_path):
    coins, cells = _coins_and_cells()
    path = Mzarr(coins).save(tmp_path / "r.mzarr", levels=2)
    with Mzarr(path, "r+") as m:
        with pytest.raises(RuntimeError), m.transaction():
            lab = m.create_labels("tmp", cells)
            lab[0:10, 0:10] = 1
            raise RuntimeError("cancel")
        assert m.labels() == []
        with pytest.raises(MzarrValueError, match="rolled back"):
            lab[0, 0]
        m.create_labels("cells", cells)
    with Mzarr(path) as m:
        with pytest.raises(MzarrReadOnlyError):
            m.create_labels("x", cells)
        with pytest.raises(MzarrReadOnlyError):
            m.delete_labels("cells")
        with pytest.raises(MzarrReadOnlyError):
            m.label("cells").colors = {1: (1, 1, 1)}
        assert m.labels() == ["cells"]


def test_plain_ome_zarr_label_without_mzarr_block_is_edited_by_mode(tmp_path):
    coins, cells = _coins_and_cells()
    out = Mzarr(coins).save(tmp_path / "p.ome.zarr", levels=2)
    with Mzarr(out, "r+") as m:
        m.create_labels("cells", cells)
    doc_path = out / "labels" / "cells" / "zarr.json"
    doc = json.loads(doc_path.read_text())
    del doc["attributes"]["mzarr"]  # as another OME-Zarr writer leaves it
    doc["attributes"]["ome"]["multiscales"][0].pop("type", None)
    doc_path.write_text(json.dumps(doc))
    with Mzarr(out, "r+") as m:
        lab = m.label("cells")
        lab[0:50, 0:50] = 9
        _check_pyramid(lab, "plain")


def test_convert_between_forms_keeps_labels(tmp_path):
    from mzarr_core import convert

    coins, cells = _coins_and_cells()
    src = Mzarr(coins).save(tmp_path / "a.mzarr", levels=3)
    with Mzarr(src, "r+") as m:
        m.create_labels("cells", cells, colors={1: (5, 6, 7, 8)})
    folder = convert(src, tmp_path / "a.ome.zarr")
    back = convert(folder, tmp_path / "b.mzarr")
    for path in (folder, back):
        with Mzarr(path) as m:
            assert m.labels() == ["cells"]
            np.testing.assert_array_equal(m.label("cells")[...], cells)
            assert m.label("cells").colors == {1: (5, 6, 7, 8)}
            _check_pyramid(m.label("cells"), str(path))


def test_zarr_v2_folder_has_no_labels_and_refuses_new_ones(tmp_path):
    import zarr

    a = np.arange(40 * 60, dtype=np.uint16).reshape(40, 60)
    root = zarr.open_group(tmp_path / "v2.zarr", mode="w", zarr_format=2)
    root.create_array("0", shape=a.shape, dtype=a.dtype, chunks=(16, 16))[...] = a
    root.attrs["multiscales"] = [{
        "version": "0.4", "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}],
    }]
    with Mzarr(tmp_path / "v2.zarr", "r+") as m:
        assert m.labels() == []
        with pytest.raises(MzarrValueError, match="Zarr v2"):
            m.create_labels("x", np.zeros(a.shape, np.uint8))


def test_labels_leave_the_images_metadata_and_format_version_alone(tmp_path):
    import shutil
    import sqlite3

    src = Path(__file__).parent / "data" / "format1_camera.mzarr"
    path = tmp_path / "f1.mzarr"
    shutil.copy(src, path)

    def root_doc() -> bytes:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT value FROM zarr WHERE key='zarr.json'").fetchone()[0]

    before = root_doc()
    with Mzarr(path, "r+") as m:
        image = m[...]
        m.create_labels("bright", (image > 128).astype(np.uint8))
    assert root_doc() == before  # an older reader sees the same image: labels/ is a group it ignores
    assert json.loads(before)["attributes"]["mzarr"]["format_version"] == 1
    with Mzarr(path) as m:
        np.testing.assert_array_equal(m[...], image)
        np.testing.assert_array_equal(m.label("bright")[...], (image > 128).astype(np.uint8))


def test_failure_inside_the_label_pyramid_update_rolls_back_everything(tmp_path):
    coins, cells = _coins_and_cells()
    path = Mzarr(coins).save(tmp_path / "p.mzarr", levels=3, chunks=(64, 64))
    with Mzarr(path, "r+") as m:
        lab = m.create_labels("cells", cells)
        # count the modifying statements of the image's part and of the label's part (then roll back)
        with failing_sqlite(m, 10**9) as counter, pytest.raises(RuntimeError), m.transaction():
            m[:, :] = 7
            image_part = counter.count
            lab[:, :] = 4
            total = counter.count
            raise RuntimeError("dry run")
        assert total > image_part + 3
        for fail_at in sorted({image_part + 1, image_part + 2, (image_part + total) // 2, total - 1, total}):
            with failing_sqlite(m, fail_at), pytest.raises(MzarrStorageError):
                with m.transaction():
                    m[:, :] = 7
                    lab[:, :] = 4
            np.testing.assert_array_equal(m[...], coins)
            for got, want in zip(lab.levels, _expected_pyramid(cells, 3)):
                np.testing.assert_array_equal(got[...], want, err_msg=f"fail at {fail_at} of {total}")
    with Mzarr(path) as m:
        np.testing.assert_array_equal(m.label("cells")[...], cells)


def test_info_of_a_file_with_a_damaged_labels_group_still_describes_the_image(tmp_path, capsys):
    coins, cells = _coins_and_cells()
    path = Mzarr(coins).save(tmp_path / "d.mzarr", levels=2)
    with Mzarr(path, "r+") as m:
        m.create_labels("cells", cells)
    _put(path, "labels/zarr.json", b'{"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"labels": 5}}}')
    code, text, err = _cli(capsys, "info", path)
    assert code == 0, err
    assert "shape:       (303, 384)" in text
    assert "label images: cannot be read" in text and "labels/zarr.json" in text


REAL_CT = Path("/work/data/src/fnndsc_andrei_abdomen_ct")


@pytest.fixture(scope="module")
def real_ct(tmp_path_factory):
    """The real CT series converted once, its NIfTI export (the world affine dcm2niix would write) and its bone mask
    (HU > 300) on the image's grid."""
    if not REAL_CT.is_dir():
        pytest.skip(f"real CT series {REAL_CT} not present")
    nib = pytest.importorskip("nibabel")
    pytest.importorskip("pydicom")
    import mzarr_core

    folder = tmp_path_factory.mktemp("ct")
    mzarr_core.convert(REAL_CT, folder / "ct.mzarr", levels=2)
    mzarr_core.export(folder / "ct.mzarr", folder / "ct.nii.gz")
    with Mzarr(folder / "ct.mzarr") as m:
        mask = (m[...] > 300).astype(np.uint8)
    return folder, nib.load(folder / "ct.nii.gz").affine, mask


def _seg_nifti(path: Path, mask_zyx: np.ndarray, affine: np.ndarray, flip=(), swap_xy=False, shift=None, zoom=1.0,
               tilt=0.0, unit="mm") -> Path:
    """The mask as a NIfTI (x, y, z array) whose affine keeps every voxel at its world place when axes are flipped or
    x/y swapped, or when it is written in another length ``unit`` (NIfTI's "micron", "meter"); ``shift`` (voxels),
    ``zoom`` (voxel size factor) and ``tilt`` (radians about z) move it off."""
    import nibabel as nib

    data = mask_zyx.T.copy()  # x, y, z
    aff = affine.copy()
    for j in flip:
        aff[:3, 3] += aff[:3, j] * (data.shape[j] - 1)
        aff[:3, j] *= -1
        data = np.flip(data, axis=j)
    if swap_xy:
        data = data.transpose(1, 0, 2)
        aff[:, [0, 1]] = aff[:, [1, 0]]
    if shift is not None:
        aff[:3, 3] += aff[:3, :3] @ np.asarray(shift, float)
    aff[:3, :3] *= zoom
    if tilt:
        c, s = np.cos(tilt), np.sin(tilt)
        aff[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ aff[:3, :3]
    aff[:3, :] *= {"mm": 1.0, "micron": 1000.0, "meter": 0.001}[unit]
    img = nib.Nifti1Image(np.ascontiguousarray(data), aff)
    img.header.set_xyzt_units(unit)
    nib.save(img, path)
    return path


@pytest.mark.parametrize("flip, swap_xy, said", [((1,), False, "y stored as the image's -y"),
                                                 ((0, 2), True, "x stored as the image's y")])
def test_labels_from_a_flipped_or_permuted_nifti_land_on_the_image_voxels(real_ct, tmp_path, flip, swap_xy, said):
    """QA repro_9: a segmentation NIfTI of a DICOM CT storing the same voxels with axes flipped (dcm2niix,
    TotalSegmentator) was attached misaligned (Dice 0.02). Now it is turned onto the image's grid: Dice 1.0, the
    label equal to the mask voxel for voxel, and the report says what was done."""
    import mzarr_core

    folder, affine, mask = real_ct
    seg = _seg_nifti(tmp_path / "bone.nii.gz", mask, affine, flip=flip, swap_xy=swap_xy)
    lines: list[str] = []
    mzarr_core.convert(folder / "ct.mzarr", tmp_path / "out.mzarr", labels_from=seg, report=lines.append)
    with Mzarr(tmp_path / "out.mzarr") as m:
        lab = m.label("bone")[...]
        bone = m[...] > 300
    assert 2 * (bone & (lab > 0)).sum() / (bone.sum() + (lab > 0).sum()) == 1.0
    np.testing.assert_array_equal(lab, mask)
    assert any("the same voxels as the image" in line and said in line for line in lines), lines


@pytest.mark.parametrize("change, why", [({"shift": (0, 3, 0)}, "their origins differ: the segmentation is shifted "
                                                                 "by 3 voxels along the image's y"),
                                         ({"zoom": 1.5}, "their voxel sizes differ"),
                                         ({"tilt": 0.2}, "one is oblique to the other")])
def test_labels_from_another_geometry_are_refused_stating_both(real_ct, tmp_path, capsys, change, why):
    """A segmentation of the same shape on another grid (shifted, other voxel size, oblique) is refused before
    anything is written, stating both geometries and what to do; the image and the segmentation are untouched."""
    from mzarr_core.cli import main

    folder, affine, mask = real_ct
    seg = _seg_nifti(tmp_path / "bone.nii.gz", mask, affine, **change)
    before = seg.read_bytes()
    code = main(["convert", str(folder / "ct.mzarr"), str(tmp_path / "out.mzarr"), "--labels-from", str(seg),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and why in err
    assert "The image: shape (z, y, x) (" in err and "; bone.nii.gz: shape (z, y, x)" in err
    assert "resample the segmentation onto the image's grid" in err and "nothing was written" in err
    assert not (tmp_path / "out.mzarr").exists() and seg.read_bytes() == before


@pytest.mark.parametrize("unit, flip", [("micron", (1,)), ("meter", ())])
def test_labels_from_a_segmentation_in_another_unit_are_converted(real_ct, tmp_path, unit, flip):
    """QA: a segmentation whose affine is in micrometres (or metres) of a CT in millimetres was refused as "their
    voxel sizes differ". Its origin and voxel sizes are now converted to the image's unit before the geometries
    are compared: attached voxel for voxel (flipped axes turned too), and the report says it was converted."""
    import mzarr_core

    folder, affine, mask = real_ct
    seg = _seg_nifti(tmp_path / "bone.nii.gz", mask, affine, flip=flip, unit=unit)
    lines: list[str] = []
    mzarr_core.convert(folder / "ct.mzarr", tmp_path / "out.mzarr", labels_from=seg, report=lines.append)
    with Mzarr(tmp_path / "out.mzarr") as m:
        np.testing.assert_array_equal(m.label("bone")[...], mask)
    name = {"micron": "micrometer", "meter": "meter"}[unit]
    assert len(lines) == 1 and f"(its {name} converted to millimeter)" in lines[0], lines
    assert ("the same voxels as the image" if flip else "its geometry matches the image's") in lines[0]


def test_labels_from_another_unit_still_on_another_grid_are_refused(real_ct, tmp_path, capsys):
    """Converted to millimetres, a micrometre segmentation with 1.5 times the image's voxel size still differs: it
    is refused, its geometry stated in the image's unit."""
    from mzarr_core.cli import main

    folder, affine, mask = real_ct
    seg = _seg_nifti(tmp_path / "bone.nii.gz", mask, affine, zoom=1.5, unit="micron")
    code = main(["convert", str(folder / "ct.mzarr"), str(tmp_path / "out.mzarr"), "--labels-from", str(seg),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "their voxel sizes differ" in err and not (tmp_path / "out.mzarr").exists()
    dx = round(float(np.linalg.norm(affine[:3, 0])) * 1.5, 4)
    assert f"bone.nii.gz: shape (z, y, x) {mask.shape}, spacing (x, y, z) [{dx}, " in err
    assert "millimeter, origin" in err.split("bone.nii.gz: shape")[1] and "(its micrometer converted to millimeter)" in err


def test_labels_from_a_file_without_geometry_are_checked_by_shape_and_said(real_ct, tmp_path):
    """A .npy has no geometry: today's shape check, and the report says the geometry could not be checked."""
    import mzarr_core

    folder, _, mask = real_ct
    np.save(tmp_path / "bone.npy", mask)
    lines: list[str] = []
    mzarr_core.convert(folder / "ct.mzarr", tmp_path / "out.mzarr", labels_from=tmp_path / "bone.npy",
                       report=lines.append)
    with Mzarr(tmp_path / "out.mzarr") as m:
        np.testing.assert_array_equal(m.label("bone")[...], mask)
    assert lines == ["labels bone.npy: only the shape could be checked, not the geometry (bone.npy does not say where "
                     "its voxels are in the world)"]
