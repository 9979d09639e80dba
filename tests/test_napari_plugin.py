"""The napari plugin (mzarr_napari, npe2): the manifest validates and is found through the package's entry point;
the reader opens .mzarr files and OME-Zarr folders in a headless napari (``ViewerModel``) as multiscale image layers
(lazy dask levels equal to the file's pixels, scale/units/axis labels from the spacing, rgb or channel_axis, contrast
from the file's window, user attributes in ``metadata``) plus one labels layer per label image; the writers save image
and labels layers back bit for bit; and a 30000 x 30000 RGB file shows the pyramid level its zoom needs.

Needs napari and npe2 (the [napari] extra, in [dev]).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason='napari is not installed (pip install -e ".[dev]" or "mzarr[napari]")')
npe2 = pytest.importorskip("npe2", reason='npe2 is not installed (pip install -e ".[dev]" or "mzarr[napari]")')

from conftest import smooth_array  # noqa: E402
from mzarr import Mzarr  # noqa: E402
from mzarr_core import MzarrError, MzarrFormatError  # noqa: E402
from mzarr_core.demo import mosaic  # noqa: E402
from mzarr_core.errors import MzarrWarning  # noqa: E402
from mzarr_napari import get_reader, read_layers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "mzarr_napari" / "napari.yaml"


@pytest.fixture(scope="module")
def plugins():
    """npe2's plugin manager with the installed plugins (napari discovers them at start the same way)."""
    pm = npe2.PluginManager.instance()
    pm.discover()
    if "mzarr" not in pm._manifests:  # noqa: SLF001 - the public iter_manifests() would hide a disabled one
        pytest.fail('the "napari.manifest" entry point of mzarr is not installed: pip install -e ".[dev]"')
    return pm


@pytest.fixture
def viewer(plugins):
    from napari.components import ViewerModel

    v = ViewerModel()
    yield v
    v.layers.clear()


def _open(viewer, path: Path, plugin: str | None = None) -> list:
    """Open as napari's command line and drag-and-drop do (plugin None: the one compatible reader)."""
    return viewer.open(str(path), plugin=plugin)


# --------------------------------------------------------------------------
# The manifest
# --------------------------------------------------------------------------

def test_manifest_validates_with_npe2():
    r = subprocess.run([sys.executable, "-m", "npe2", "validate", str(MANIFEST)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid" in (r.stdout + r.stderr).lower()


def test_the_entry_point_gives_the_reader_and_the_writers(plugins):
    manifest = plugins.get_manifest("mzarr")
    assert manifest.display_name == "Mzarr"
    (reader,) = manifest.contributions.readers
    assert set(reader.filename_patterns) == {"*.mzarr", "*.ome.zarr"} and reader.accepts_directories
    kinds = sorted(tuple(w.layer_types) for w in manifest.contributions.writers)
    assert kinds == [("image",), ("image", "labels+"), ("labels",)]
    assert {tuple(w.filename_extensions) for w in manifest.contributions.writers} == {(".mzarr",)}


def test_mzarr_napari_is_qt_free():
    """Importing the plugin pulls in neither Qt nor napari's GUI nor the viewer."""
    code = ("import sys, mzarr_napari; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('PySide6', 'PyQt5', 'PyQt6', 'qtpy', 'pyqtgraph', 'mzarr_app', 'napari')]; print(bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# --------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rgb_file(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A real 2048 x 2048 RGB photograph mosaic (scikit-image's bundled photos) with a pyramid and a pixel size."""
    pixels = mosaic(2048)
    path = tmp_path_factory.mktemp("rgb") / "photos.mzarr"
    Mzarr(pixels, spacing=(0.25, 0.25), attrs={"description": "mosaic", "stain": {"name": "H&E"}}).save(path)
    return path, pixels


def test_rgb_image_opens_as_one_multiscale_rgb_layer(viewer, rgb_file):
    path, pixels = rgb_file
    layers = _open(viewer, path)  # no plugin named: .mzarr has one reader, as on the command line
    assert len(layers) == 1
    layer = layers[0]
    m = Mzarr(path)
    assert type(layer).__name__ == "Image" and layer.rgb and layer.multiscale
    assert layer.name == "photos"
    assert len(layer.data) == len(m.levels) >= 3
    assert [tuple(d.shape) for d in layer.data] == [lv.shape for lv in m.levels]
    np.testing.assert_array_equal(np.asarray(layer.data[0][1000:1100, 500:700]), pixels[1000:1100, 500:700])
    np.testing.assert_array_equal(np.asarray(layer.data[2]), m.levels[2][...])
    assert tuple(layer.scale) == (0.25, 0.25)
    assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    assert tuple(layer.axis_labels) == ("y", "x")
    assert tuple(layer.contrast_limits) == (0, 255)
    assert layer.metadata == {"description": "mosaic", "stain": {"name": "H&E"}, "mzarr_path": str(path)}
    assert layer.source.reader_plugin == "mzarr"


def test_reader_levels_are_lazy_dask_arrays_chunked_like_the_file(rgb_file):
    import dask.array as da

    path, _ = rgb_file
    ((data, meta, kind),) = read_layers(str(path))
    m = Mzarr(path)
    assert kind == "image" and meta["rgb"] and meta["multiscale"]
    assert all(isinstance(d, da.Array) for d in data)
    assert tuple(c[0] for c in data[0].chunks) == m.levels[0].chunks


@pytest.fixture(scope="module")
def volume_file(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 3D uint16 volume with anisotropic spacing and a label image with a colour and a property."""
    vol = smooth_array((48, 160, 120), "uint16", seed=3)
    labels = np.zeros(vol.shape, np.uint16)
    labels[4:30, 20:90, 10:70] = 7
    labels[30:40, 100:150, 60:110] = 2
    path = tmp_path_factory.mktemp("vol") / "cells.mzarr"
    Mzarr(vol, spacing=(2.0, 0.5, 0.5), unit="micrometer", attrs={"sample": 12}).save(path, chunks=(32, 64, 64))
    with Mzarr(path, "r+") as m:
        m.create_labels("nuclei", labels, colors={7: (255, 0, 0)}, properties={7: {"kind": "nucleus"}, 2: {"kind": "debris"}})
    return path, vol, labels


def test_volume_opens_with_its_physical_scale_and_its_label_image(viewer, volume_file):
    path, vol, labels = volume_file
    image, lab = _open(viewer, path)
    m = Mzarr(path)
    assert type(image).__name__ == "Image" and not image.rgb and image.multiscale
    assert len(image.data) == len(m.levels) >= 2
    assert tuple(image.scale) == (2.0, 0.5, 0.5)
    assert tuple(image.axis_labels) == ("z", "y", "x")
    assert [str(u) for u in image.units] == ["micrometer"] * 3
    np.testing.assert_array_equal(np.asarray(image.data[0]), vol)
    np.testing.assert_array_equal(np.asarray(image.data[1]), m.levels[1][...])
    assert image.metadata == {"sample": 12, "mzarr_path": str(path)}
    lo, hi = image.contrast_limits  # no window in the file: napari's range from the data (not 0..65535)
    coarse = m.levels[-1][...]
    assert coarse.min() <= lo < hi <= coarse.max()

    label = m.label("nuclei")
    assert type(lab).__name__ == "Labels" and lab.name == "nuclei" and lab.multiscale
    assert len(lab.data) == len(label.levels) == len(image.data)
    assert tuple(lab.scale) == tuple(image.scale) and tuple(lab.units) == tuple(image.units)
    np.testing.assert_array_equal(np.asarray(lab.data[0]), labels)
    np.testing.assert_array_equal(np.asarray(lab.data[1]), label.levels[1][...])
    assert lab.metadata == {"mzarr_path": str(path), "mzarr_label": "nuclei"}
    np.testing.assert_allclose(lab.get_color(7), (1, 0, 0, 1))
    assert lab.get_color(0) is None or lab.get_color(0)[3] == 0  # background transparent
    assert dict(zip(lab.features["index"], lab.features["kind"])) == {2: "debris", 7: "nucleus"}


def test_channels_open_as_one_layer_each_with_the_scale(viewer, tmp_path):
    cells = np.stack([smooth_array((20, 64, 80), "uint16", seed=s) for s in range(3)])  # c, z, y, x
    path = tmp_path / "channels.mzarr"
    Mzarr(cells, axes="czyx", spacing=(1.5, 0.3, 0.3)).save(path)
    layers = _open(viewer, path)
    assert [layer.name for layer in layers] == ["channels [0]", "channels [1]", "channels [2]"]
    for i, layer in enumerate(layers):
        assert not layer.rgb and tuple(layer.scale) == (1.5, 0.3, 0.3)
        np.testing.assert_array_equal(np.asarray(layer.data[0] if layer.multiscale else layer.data), cells[i])


def test_a_dicom_window_in_the_file_sets_the_contrast(viewer, tmp_path):
    ct = (smooth_array((8, 64, 64), "int16", seed=1) // 20).astype(np.int16)
    path = tmp_path / "ct.mzarr"
    Mzarr(ct, attrs={"dicom": {"Modality": "CT", "WindowCenter": [40, 400], "WindowWidth": [400, 1800]}}).save(path)
    (layer,) = _open(viewer, path)
    assert tuple(layer.contrast_limits) == (-160.0, 240.0)  # the first window: C 40, W 400


def test_a_label_image_file_opens_as_a_labels_layer(viewer, tmp_path):
    seg = np.zeros((300, 200), np.uint32)
    seg[10:100, 20:150] = 70000
    path = tmp_path / "seg.mzarr"
    Mzarr(seg, is_label=True).save(path)
    (layer,) = _open(viewer, path)
    assert type(layer).__name__ == "Labels"
    np.testing.assert_array_equal(np.asarray(layer.data[0] if layer.multiscale else layer.data), seg)


def test_ome_zarr_folder_opens_the_same_way(viewer, volume_file, tmp_path):
    from mzarr_core import convert

    path, vol, labels = volume_file
    folder = tmp_path / "cells.ome.zarr"
    convert(path, folder)
    image, lab = _open(viewer, folder, plugin="mzarr")  # napari's own zarr reader claims *.zarr too
    assert tuple(image.scale) == (2.0, 0.5, 0.5) and image.name == "cells"
    np.testing.assert_array_equal(np.asarray(image.data[0]), vol)
    np.testing.assert_array_equal(np.asarray(lab.data[0]), labels)
    assert image.metadata["sample"] == 12


def test_16_bit_rgb_opens_as_red_green_blue_channels(viewer, tmp_path):
    rgb16 = (mosaic(256).astype(np.uint16) * 257)
    path = tmp_path / "rgb16.mzarr"
    Mzarr(rgb16).save(path)
    layers = _open(viewer, path)
    assert [layer.colormap.name for layer in layers] == ["red", "green", "blue"]
    assert all(layer.blending == "additive" and not layer.rgb for layer in layers)
    for i, layer in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(layer.data[0] if layer.multiscale else layer.data), rgb16[..., i])


def test_a_legacy_zip_opens_with_its_levels(viewer, tmp_path):
    import skimage.data
    from test_core_legacy import write_legacy

    a = np.ascontiguousarray(skimage.data.camera()[:300, :260])
    path = write_legacy(tmp_path / "old.mzarr", {"base": a, "subsampled_2": a[::2, ::2], "subsampled_4": a[::4, ::4]},
                        (128, 128), {"description": "made by mzarr 0.0.3"})
    (layer,) = _open(viewer, path)
    assert layer.multiscale and [tuple(d.shape) for d in layer.data] == [(300, 260), (150, 130), (75, 65)]
    np.testing.assert_array_equal(np.asarray(layer.data[0]), a)
    np.testing.assert_array_equal(np.asarray(layer.data[2]), a[::4, ::4])
    assert layer.metadata["description"] == "made by mzarr 0.0.3"


def test_other_paths_are_not_claimed(tmp_path):
    tif = tmp_path / "a.tif"
    tif.write_bytes(b"II*\0")
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "notes.txt").write_text("no image")
    assert get_reader(str(tif)) is None
    assert get_reader(str(folder)) is None  # a folder without an OME-Zarr group
    assert get_reader([str(tmp_path / "x.mzarr"), str(tmp_path / "y.mzarr")]) is None  # a stack is not one image
    assert get_reader(str(tmp_path / "x.mzarr")) is read_layers


def test_a_damaged_file_is_an_mzarr_error_not_a_traceback(viewer, tmp_path):
    from napari.errors import ReaderPluginError

    bad = tmp_path / "bad.mzarr"
    bad.write_bytes(b"SQLite format 3\0" + bytes(2000))
    with pytest.raises(ReaderPluginError) as info:
        _open(viewer, bad)
    cause = info.value.__cause__
    assert isinstance(cause, MzarrFormatError)
    assert "bad.mzarr" in str(cause)
    with pytest.raises(MzarrError, match="not.*mzarr|no such"):
        read_layers(str(tmp_path / "missing.mzarr"))


# --------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------

def test_image_layer_round_trip_is_bit_exact(viewer, tmp_path):
    vol = smooth_array((12, 90, 70), "uint16", seed=5)
    layer = viewer.add_image(vol, scale=(3.0, 0.5, 0.5), units=("nanometer",) * 3, metadata={"note": "x", "n": [1, 2]})
    out = tmp_path / "saved.mzarr"
    assert layer.save(str(out), plugin="mzarr") == [str(out)]
    m = Mzarr(out)
    assert m.axes == "zyx" and m.dtype == np.uint16 and not m.is_label
    np.testing.assert_array_equal(m.numpy(), vol)
    assert m.spacing == (3.0, 0.5, 0.5) and m.unit == "nanometer"
    assert m.attrs().to_dict() == {"note": "x", "n": [1, 2]}


def test_rgb_and_multiscale_layers_save_their_level_0(viewer, rgb_file, tmp_path):
    path, pixels = rgb_file
    (layer,) = _open(viewer, path)
    out = tmp_path / "again"  # napari adds the extension
    (written,) = layer.save(str(out), plugin="mzarr")
    assert written == str(out) + ".mzarr"
    m = Mzarr(written)
    assert m.axes == "yxc" and m.spacing == (0.25, 0.25) and m.unit == "micrometer"
    np.testing.assert_array_equal(m.numpy(), pixels)
    assert m.attrs().to_dict() == {"description": "mosaic", "stain": {"name": "H&E"}}  # not the reader's path


def test_saving_over_the_file_a_layer_came_from(viewer, tmp_path):
    vol = smooth_array((10, 70, 50), "uint16", seed=8)
    path = tmp_path / "same.mzarr"
    Mzarr(vol, spacing=(2.0, 1.0, 1.0), attrs={"k": 1}).save(path)
    (layer,) = _open(viewer, path)
    assert layer.save(str(path), plugin="mzarr") == [str(path)]
    m = Mzarr(path)
    np.testing.assert_array_equal(m.numpy(), vol)
    assert m.spacing == (2.0, 1.0, 1.0) and m.attrs().to_dict() == {"k": 1}
    with pytest.raises(MzarrError, match="changed since the dask array was made"):
        np.asarray((layer.data[0] if layer.multiscale else layer.data)[0])  # the old lazy levels: open it again


def test_labels_layer_saves_as_a_label_image_file(viewer, tmp_path):
    seg = np.zeros((64, 80, 96), np.int32)
    seg[5:30, 10:50, 20:90] = 3
    seg[40:60, 60:80, 0:10] = -1
    layer = viewer.add_labels(seg, scale=(1.0, 0.2, 0.2))
    out = tmp_path / "seg.mzarr"
    layer.save(str(out), plugin="mzarr")
    m = Mzarr(out)
    assert m.is_label and m.dtype == np.int32 and m.downsample_method == "mode"
    np.testing.assert_array_equal(m.numpy(), seg)
    assert m.spacing == (1.0, 0.2, 0.2) and m.unit == "micrometer"  # napari's pixel units: Mzarr's default unit


def test_an_image_and_its_labels_save_as_one_file(viewer, volume_file, tmp_path):
    path, vol, labels = volume_file
    image, lab = _open(viewer, path)
    extra = viewer.add_labels((labels > 0).astype(np.uint8), name="mask", scale=image.scale)
    out = tmp_path / "both.mzarr"
    viewer.layers.selection = {image, lab, extra}
    assert viewer.layers.save(str(out), selected=True, plugin="mzarr") == [str(out)]
    m = Mzarr(out)
    np.testing.assert_array_equal(m.numpy(), vol)
    assert sorted(m.labels()) == ["mask", "nuclei"]
    np.testing.assert_array_equal(m.label("nuclei").numpy(), labels)
    np.testing.assert_array_equal(m.label("mask").numpy(), labels > 0)
    # the colours and properties the reader gave napari come back (the new mask has napari's automatic colours)
    assert m.label("nuclei").colors == {7: (255, 0, 0, 255)}
    assert m.label("nuclei").properties == {2: {"kind": "debris"}, 7: {"kind": "nucleus"}}
    assert m.label("mask").colors == {} and m.label("mask").properties == {}


def test_writer_refusals_say_what_to_do(viewer, tmp_path):
    from mzarr_napari import write_image, write_layers

    with pytest.raises(MzarrError, match="2D and 3D"):
        write_image(str(tmp_path / "t.mzarr"), np.zeros((2, 3, 8, 8), np.uint8), {"scale": (1, 1, 1, 1)})
    two = [(np.zeros((8, 8), np.uint8), {}, "image"), (np.zeros((8, 8), np.uint8), {}, "image")]
    with pytest.raises(MzarrError, match="one image"):
        write_layers(str(tmp_path / "t.mzarr"), two)
    with pytest.raises(MzarrError, match="one unit"):
        write_image(str(tmp_path / "t.mzarr"), np.zeros((4, 8, 8), np.uint8),
                    {"scale": (2, 1, 1), "units": ("nanometer", "micrometer", "micrometer")})
    with pytest.warns(MzarrWarning, match=r"not JSON values\): obj"):
        write_image(str(tmp_path / "m.mzarr"), np.ones((8, 8), np.uint8), {"metadata": {"obj": object(), "ok": 1}})
    assert Mzarr(tmp_path / "m.mzarr").attrs().to_dict() == {"ok": 1}


# --------------------------------------------------------------------------
# The goal: a 30000 x 30000 RGB file shows the pyramid level the zoom needs
# --------------------------------------------------------------------------

def _draw(viewer, layer, canvas: tuple[int, int]) -> None:
    """What napari's canvas does on each draw (napari/_vispy/canvas.py, ``on_draw``), without OpenGL: the visible
    world rectangle from the camera's centre and zoom, handed to the layer to choose its level and tiles."""
    camera = getattr(viewer, "scene", viewer).camera
    size = np.asarray(canvas, float)
    centre = np.asarray(camera.center, float)[-2:]
    half = size / 2 / camera.zoom
    layer._update_draw(scale_factor=1 / camera.zoom, corner_pixels_displayed=np.array([centre - half, centre + half]),
                       shape_threshold=tuple(canvas))


def test_a_30000_pixel_rgb_file_shows_the_level_its_zoom_needs(viewer, tmp_path):
    path = tmp_path / "big.mzarr"
    tile = mosaic(1024)
    with Mzarr(path, "w", shape=(30000, 30000, 3), dtype="uint8") as m:
        m[14500:15524, 14500:15524] = tile  # the rest stays the fill value: no chunk stored
    (layer,) = _open(viewer, path)
    m = Mzarr(path)
    assert layer.rgb and len(layer.data) == len(m.levels) == 7
    camera = getattr(viewer, "scene", viewer).camera
    canvas = (800, 1200)
    seen = []
    for zoom in (0.019, 0.05, 0.2, 0.3, 0.5, 1.0, 2.0):
        camera.zoom = zoom
        camera.center = (15000, 15000)
        _draw(viewer, layer, canvas)
        # the coarsest level with at least one image pixel per screen pixel: 2 ** level < 1 / zoom
        expected = max(0, min(len(m.levels) - 1, int(np.ceil(np.log2(1 / zoom))) - 1))
        assert layer.data_level == expected, zoom
        lo, hi = layer.corner_pixels
        shown = np.asarray(layer._slice.image.raw)  # what napari hands to the canvas
        np.testing.assert_array_equal(shown, m.levels[expected][lo[0]:hi[0] + 1, lo[1]:hi[1] + 1])
        assert shown.shape[0] <= 2 * canvas[0] + 2 * 512 and shown.shape[1] <= 2 * canvas[1] + 2 * 512
        seen.append(expected)
    assert seen == [5, 4, 2, 1, 0, 0, 0]
    # the centre tile at full resolution is the photo mosaic written there
    camera.zoom = 1.0
    camera.center = (15000, 15000)
    _draw(viewer, layer, canvas)
    lo, _ = layer.corner_pixels
    shown = np.asarray(layer._slice.image.raw)
    np.testing.assert_array_equal(shown[14500 - lo[0]:15524 - lo[0], 14500 - lo[1]:15524 - lo[1]], tile)

