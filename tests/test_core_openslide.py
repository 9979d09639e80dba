"""Slides only OpenSlide reads (issue 9, deliverable 1: MRXS, VMS through openslide-python + openslide-bin, the
``[openslide]`` extra): mzarr_core/formats/openslide_reader.py.

No MRXS or VMS file exists offline and none is downloaded here. OpenSlide also reads Aperio SVS and generic tiled
TIFF, so the reader is exercised with its OpenSlide path forced on the SVS-like slides of tests/slide_fixtures.py
(written with tifffile from real pixels) and on tifffile-written tiled TIFFs: lazy reads in bounded tiles, pixels
against OpenSlide's own ``read_region`` and tifffile's decode, MPP, attributes, the label privacy rule, a convert
to .mzarr and back. The registry's routing of .mrxs / .vms (and what a MIRAX slide's properties become) is checked
with stand-in files and a stand-in ``openslide`` module; the missing-package error with the import blocked.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import tifffile

import mzarr_core  # noqa: F401  (registers the codecs)
from mzarr import Mzarr
from mzarr_core import formats
from mzarr_core.convert import convert
from mzarr_core.errors import MzarrFileNotFoundError, MzarrFormatError, MzarrValueError
from mzarr_core.formats import openslide_reader as osr
from mzarr_core.formats.openslide_reader import OpenSlideArray, OpenSlideSource, composite, open_slide
from slide_fixtures import label_image, slide_mosaic, write_svs_like

HAVE_OPENSLIDE = osr.available()
needs_openslide = pytest.mark.skipif(
    not HAVE_OPENSLIDE,
    reason='openslide-python / openslide-bin not installed (pip install "mzarr[openslide]", in the [dev] extra)',
)
H, W = 1100, 1400  # not multiples of the 256 tiles nor of the 1024 read tiles


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return slide_mosaic(H, W, seed=7)


@pytest.fixture(scope="module")
def svs(tmp_path_factory, pixels) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("openslide")
    return {
        "ycbcr": write_svs_like(d / "case-1208.svs", pixels, quality=80, reductions=(4,)),
        "rgb": write_svs_like(d / "rgb.svs", pixels[:700, :900], quality=90, photometric="rgb", reductions=()),
    }


class ReadRegionSpy:
    """Wraps openslide.OpenSlide.read_region: every call's (location, level, size)."""

    def __init__(self, monkeypatch):
        import openslide

        self.calls: list[tuple[tuple[int, int], int, tuple[int, int]]] = []
        real = openslide.OpenSlide.read_region

        def spy(slide, location, level, size):
            self.calls.append((tuple(location), level, tuple(size)))
            return real(slide, location, level, size)

        monkeypatch.setattr(openslide.OpenSlide, "read_region", spy)


# -- the real OpenSlide, forced on SVS-like slides and tiled TIFFs ----------------------------------------------------
@needs_openslide
def test_level0_is_read_lazily_in_bounded_tiles(svs, monkeypatch):
    spy = ReadRegionSpy(monkeypatch)
    source = open_slide(svs["ycbcr"], compression="lossless")
    try:
        assert spy.calls == []  # opening reads no pixel
        a = source.array
        assert isinstance(a, OpenSlideArray) and (a.shape, a.dtype, a.ndim) == ((H, W, 3), np.uint8, 3)
        block = a[100:400, 200:500]
        assert block.shape == (300, 300, 3) and spy.calls == [((200, 100), 0, (300, 300))]  # only the region asked
        spy.calls.clear()
        a[1000:1050, 1000:1030]  # crosses the 1024 grid in both directions: 4 reads, each inside one grid cell
        assert sorted(spy.calls) == [((1000, 1000), 0, (24, 24)), ((1000, 1024), 0, (24, 26)),
                                     ((1024, 1000), 0, (6, 24)), ((1024, 1024), 0, (6, 26))]
        spy.calls.clear()
        a.tile = 256
        whole = a[...]
        assert whole.shape == (H, W, 3) and len(spy.calls) == -(-H // 256) * -(-W // 256)
        assert all(w <= 256 and h <= 256 and x % 256 == 0 and y % 256 == 0 for (x, y), _lv, (w, h) in spy.calls)
        assert a.reads == 1 + 4 + len(spy.calls)
        spy.calls.clear()
        a[::300, ::500]  # steps: only the tiles holding a requested pixel, each read as small as it can be
        assert len(spy.calls) == 4 * 3 and all(size == (1, 1) for _loc, _lv, size in spy.calls)
    finally:
        source.close()


@needs_openslide
@pytest.mark.parametrize("kind", ["ycbcr", "rgb"])
def test_pixels_are_openslides_and_tifffiles(kind, svs):
    import openslide

    want = tifffile.imread(svs[kind])  # opaque RGB JPEG slides: OpenSlide's decode is libjpeg's, like tifffile's
    with openslide.OpenSlide(str(svs[kind])) as ref:
        region = np.asarray(ref.read_region((130, 70), 0, (400, 333)))
        assert region[..., 3].min() == 255
    source = open_slide(svs[kind], compression="lossless")
    try:
        a = source.array
        assert np.array_equal(a[70:403, 130:530], region[..., :3])
        assert np.array_equal(a[...], want) and np.array_equal(np.asarray(a), want)
        h, w = want.shape[:2]
        for key in (np.s_[5], np.s_[-1, :, 2], np.s_[:, 17], np.s_[::-7, 3::11], np.s_[h - 40 :, w - 300 :: 2, :2],
                    np.s_[..., 1], np.s_[300:100], np.s_[0:0, 5:9], np.s_[-5:, -3]):
            got, expected = a[key], want[key]
            assert got.shape == expected.shape and np.array_equal(got, expected), key
        for bad in (np.s_[h], np.s_[0, 0, 0, 0], np.s_[[1, 2]]):
            with pytest.raises(IndexError):
                a[bad]
    finally:
        source.close()


@needs_openslide
def test_generic_tiled_tiff_and_transparency_over_white(tmp_path):
    """OpenSlide's generic-tiff vendor, an RGBA tile set whose transparent pixels become white (composited as
    OpenSlide users expect); the alpha-free RGB one is exactly tifffile's pixels, read in bounded tiles."""
    rgb = slide_mosaic(600, 700, seed=2, tissue=1)
    alpha = np.full((600, 700), 255, np.uint8)
    alpha[:100], alpha[:, :50] = 0, 0
    tifffile.imwrite(tmp_path / "rgba.tif", np.dstack([rgb, alpha]), tile=(256, 256), photometric="rgb",
                     extrasamples=[2], compression="zlib", metadata=None)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, tile=(256, 256), photometric="rgb", compression="zlib",
                     resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER", metadata=None)
    source = open_slide(tmp_path / "rgba.tif")
    try:
        expected = np.where(alpha[..., None] == 255, rgb, 255).astype(np.uint8)
        assert np.array_equal(source.array[...], expected)
        assert source.info.vendor == "TIFF" and source.info.compression == "ADOBE_DEFLATE"
        assert source.compression == "lossless" and "stored without loss" in source.reason
    finally:
        source.close()
    source = open_slide(tmp_path / "rgb.tif")
    try:
        assert np.array_equal(source.array[...], rgb)
        assert source.spacing == (0.5, 0.5)  # OpenSlide's MPP from the TIFF resolution tags
    finally:
        source.close()


def test_composite_is_over_the_background():
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [200, 100, 50, 128], [0, 0, 0, 51]]], np.uint8)
    out = composite(rgba)
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)
    assert out[0, 0].tolist() == [200, 100, 50] and out[0, 1].tolist() == [255, 255, 255]
    want = np.round(rgba[0, 2:, :3] * (rgba[0, 2:, 3:] / 255) + 255 * (1 - rgba[0, 2:, 3:] / 255))
    assert np.abs(out[0, 2:].astype(int) - want).max() <= 1
    assert composite(rgba, (0, 0, 0))[0, 1].tolist() == [0, 0, 0]


@needs_openslide
def test_mpp_attributes_and_privacy(svs):
    info = osr.describe_slide(svs["ycbcr"])
    assert (info.vendor, info.kind, info.shape, info.dtype) == ("Aperio", "svs", (H, W, 3), "uint8")
    assert info.mpp == (0.252, 0.252) and info.objective_power == 40 and info.scanner == "SS7281"
    assert info.levels == [(W, H), (W // 4, H // 4)] and info.tile == (256, 256) and not info.jpeg_tiles
    assert info.associated == {"label": (387, 463, 3), "macro": (275, 350, 3), "thumbnail": (138, 175, 3)}
    assert info.compression == "JPEG" and info.lossy_source and info.default_compression() == "lossy"
    assert info.compressions() == ("lossless", "lossy") and set(info.estimates) == {"lossless", "lossy"}
    assert info.estimates["lossy"] < info.file_bytes < info.estimates["lossless"]
    text = "\n".join(info.lines())  # what `mzarr info` and the import dialog show for slides
    assert "Aperio (svs)" in text and "0.2520 x 0.2520 um/pixel" in text and "read through OpenSlide" in text
    source = open_slide(svs["ycbcr"])
    try:
        assert source.spacing == (0.252, 0.252) and source.unit == "micrometer" and source.axes == "yxc"
        assert source.compression == "lossy" and "already lossy (JPEG)" in source.reason
        s = source.attrs["slide"]
        assert s["vendor"] == "Aperio" and s["mpp"] == [0.252, 0.252] and s["objective_power"] == 40
        assert s["reader"].startswith("OpenSlide 4") and s["openslide_vendor"] == "aperio"
        props = s["properties"]
        assert props["aperio.AppMag"] == "40" and props["openslide.mpp-x"] == "0.252" and "aperio.Date" in props
        for identifying in ("aperio.Filename", "aperio.User", "openslide.comment", "tiff.ImageDescription"):
            assert identifying not in props and identifying in s["left_out_fields"], identifying
        assert "1208-A3" not in repr(source.attrs) and "case-1208" not in repr(source.attrs)
        assert "source" not in s and "left out" in s["label"]
        assert sorted(source.associated) == ["macro", "thumbnail"]  # no label
        assert all(isinstance(v, tuple) and v[1] == 1.0 for v in source.associated.values())  # JPEG previews
    finally:
        source.close()
    source = open_slide(svs["ycbcr"], keep_label=True)
    try:
        s = source.attrs["slide"]
        assert s["properties"]["aperio.Filename"] == "1208-A3" and s["source"] == "case-1208.svs"
        assert np.array_equal(source.associated["label"], label_image())  # LZW label, stored lossless
        assert "kept" in s["label"]
    finally:
        source.close()


@needs_openslide
def test_convert_round_trip(svs, tmp_path):
    lines: list[str] = []
    out = osr.convert_slide(svs["ycbcr"], tmp_path / "exact.mzarr", compression="lossless", report=lines.append)
    assert lines == ["slide compression lossless: JPEG XL of the decoded pixels (bit-exact); as asked"]
    want = tifffile.imread(svs["ycbcr"])
    with Mzarr(out) as m:
        assert np.array_equal(m[...], want) and m.codec["lossless"] is True
        assert m.spacing == (0.252, 0.252) and m.unit == "micrometer" and m.axes == "yxc"
        assert m.attrs()["slide"]["vendor"] == "Aperio" and "aperio.User" not in m.attrs()["slide"]["properties"]
        assert sorted(m.associated_images()) == ["macro", "thumbnail"] and len(m.levels) >= 2
    lines.clear()
    out = osr.convert_slide(svs["rgb"], tmp_path / "default.mzarr", report=lines.append)  # default: lossy
    assert lines[0].startswith("slide compression lossy: JPEG XL of the decoded pixels at distance 3")
    with Mzarr(out) as m:
        err = np.abs(m[...].astype(int) - tifffile.imread(svs["rgb"]))
        assert m.codec["lossless"] is False and err.mean() < 5
    with pytest.raises(MzarrValueError, match="cannot be recompressed without loss.*lossy.*lossless"):
        open_slide(svs["rgb"], compression="recompress")


# -- the registry, stand-in files, a stand-in openslide ---------------------------------------------------------------
MIRAX_PROPERTIES = {
    "openslide.vendor": "mirax", "openslide.mpp-x": "0.2431", "openslide.mpp-y": "0.2433",
    "openslide.objective-power": "20", "openslide.background-color": "F0E0D0",
    "openslide.bounds-x": "40", "openslide.bounds-y": "30", "openslide.bounds-width": "300",
    "openslide.bounds-height": "200", "openslide.level[0].tile-width": "256", "openslide.level[0].tile-height": "256",
    "openslide.associated.label.width": "60", "openslide.associated.label.height": "40",
    "openslide.associated.macro.width": "90", "openslide.associated.macro.height": "30",
    "mirax.GENERAL.SLIDE_ID": "4B2C9F0E3D", "mirax.GENERAL.SLIDE_NAME": "H-1234-56 liver",
    "mirax.GENERAL.PROJECT_NAME": "oncology 2025", "mirax.GENERAL.OBJECTIVE_MAGNIFICATION": "20",
    "mirax.GENERAL.SLIDE_CREATIONDATETIME": "19/03/2025 11:02:13",
    "mirax.DATAFILE.FILE_0": "Data0000.dat", "mirax.HIERARCHICAL.INDEXFILE": "Index.dat",
    "mirax.LAYER_0_LEVEL_0_SECTION.IMAGE_FORMAT": "JPEG",
    "mirax.NONHIERLAYER_0_SECTION.SCANNER_HARDWARE_VERSION": "P250 Flash III",
}


def fake_openslide(rgba: np.ndarray, properties: dict[str, str], calls: list | None = None) -> types.ModuleType:
    """A stand-in ``openslide`` module whose OpenSlide serves ``rgba`` (level 0) and a label and macro picture."""
    from PIL import Image

    class OpenSlideError(Exception):
        pass

    class OpenSlideUnsupportedFormatError(OpenSlideError):
        pass

    class OpenSlide:
        def __init__(self, filename):
            if not Path(filename).is_file():
                raise OpenSlideUnsupportedFormatError(filename)
            self.properties = dict(properties)
            self.level_dimensions = ((rgba.shape[1], rgba.shape[0]), (rgba.shape[1] // 4, rgba.shape[0] // 4))
            self.associated_images = {"label": Image.fromarray(np.full((40, 60, 4), 99, np.uint8)),
                                      "macro": Image.fromarray(np.full((30, 90, 4), 200, np.uint8))}
            self.closed = False

        @classmethod
        def detect_format(cls, filename):
            return "mirax" if str(filename).endswith(".mrxs") else None

        def read_region(self, location, level, size):
            assert level == 0 and not self.closed
            (x, y), (w, h) = location, size
            if calls is not None:
                calls.append((x, y, w, h))
            return Image.fromarray(np.ascontiguousarray(rgba[y : y + h, x : x + w]), "RGBA")

        def close(self):
            self.closed = True

    module = types.ModuleType("openslide")
    module.OpenSlide, module.OpenSlideError = OpenSlide, OpenSlideError
    module.OpenSlideUnsupportedFormatError = OpenSlideUnsupportedFormatError
    module.__version__, module.__library_version__ = "1.4.7", "4.0.1 (stand-in)"
    return module


@pytest.fixture
def mirax(tmp_path, monkeypatch):
    """A stand-in MIRAX slide: the .mrxs file, its folder (Slidedat.ini, .dat files), a stand-in OpenSlide serving
    real pixels inside ``openslide.bounds-*`` and transparency around them."""
    rgb = slide_mosaic(260, 380, seed=3, tissue=1)
    alpha = np.zeros((260, 380), np.uint8)
    alpha[30:230, 40:340] = 255
    rgba = np.dstack([rgb, alpha])
    path = tmp_path / "H-1234-56.mrxs"
    path.write_bytes(b"\xff\xd8 stand-in preview")
    folder = tmp_path / "H-1234-56"
    folder.mkdir()
    (folder / "Slidedat.ini").write_text("[GENERAL]\nSLIDE_ID=4B2C9F0E3D\n")
    (folder / "Data0000.dat").write_bytes(b"\0" * 5000)
    calls: list = []
    monkeypatch.setitem(sys.modules, "openslide", fake_openslide(rgba, MIRAX_PROPERTIES, calls))
    expected = np.where(alpha[..., None] == 255, rgb, np.array([0xF0, 0xE0, 0xD0], np.uint8)).astype(np.uint8)
    return types.SimpleNamespace(path=path, rgb=rgb, expected=expected, calls=calls,
                                 bytes=sum(p.stat().st_size for p in (path, *folder.iterdir())))


def test_registry_routes_openslide_suffixes(tmp_path):
    fmt = formats.get_format("openslide")
    assert fmt.extra == "openslide" and fmt.package == "openslide" and set(fmt.options) == {"compression", "keep_label"}
    for suffix in (".mrxs", ".vms", ".vmu", ".svslide", ".czi", ".MRXS"):
        (tmp_path / f"x{suffix}").write_bytes(b"\0" * 64)
        assert formats.find_format(tmp_path / f"x{suffix}") is fmt, suffix
    assert {".mrxs", ".vms"} <= set(formats.readable_suffixes(native=False))
    assert "Whole-slide image via OpenSlide (*.mrxs *.vms *.vmu *.svslide *.czi)" in formats.qt_filter()
    assert formats.import_action(tmp_path / "x.mrxs") == "import"
    assert formats.strip_suffix("slide.mrxs") == "slide"
    # svs / ndpi stay with tifffile's slide reader
    assert formats.find_format(tmp_path / "x.vms").name == "openslide"
    (tmp_path / "y.svs").write_bytes(b"\0" * 64)
    assert formats.find_format(tmp_path / "y.svs").name == "slide"


def test_mirax_through_the_registry(mirax):
    source = formats.read(mirax.path)
    try:
        assert isinstance(source, OpenSlideSource) and source.array.shape == (260, 380, 3)
        assert mirax.calls == []  # lazy
        assert np.array_equal(source.array[...], mirax.expected)  # transparency over openslide.background-color
        assert source.spacing == (0.2433, 0.2431) and source.unit == "micrometer"
        info = source.info
        assert (info.vendor, info.kind, info.compression) == ("3DHISTECH MIRAX", "mrxs", "JPEG")
        assert info.file_bytes == mirax.bytes and info.scanner == "P250 Flash III" and info.tile == (256, 256)
        assert source.compression == "lossy" and info.associated == {"label": (40, 60, 3), "macro": (30, 90, 3)}
        s = source.attrs["slide"]
        props = s["properties"]
        assert props["mirax.GENERAL.OBJECTIVE_MAGNIFICATION"] == "20" and props["openslide.bounds-width"] == "300"
        assert "mirax.GENERAL.SLIDE_CREATIONDATETIME" in props and s["background"] == [0xF0, 0xE0, 0xD0]
        for identifying in ("mirax.GENERAL.SLIDE_ID", "mirax.GENERAL.SLIDE_NAME", "mirax.GENERAL.PROJECT_NAME",
                            "mirax.DATAFILE.FILE_0", "mirax.HIERARCHICAL.INDEXFILE"):
            assert identifying not in props and identifying in s["left_out_fields"], identifying
        assert "H-1234" not in repr(source.attrs) and "4B2C9F0E3D" not in repr(source.attrs)
        assert sorted(source.associated) == ["macro"] and source.associated["macro"][0].shape == (30, 90, 3)
        assert not any(k.startswith(("openslide.level[", "openslide.associated.")) for k in props)
    finally:
        source.close()
    source = formats.read(mirax.path, keep_label=True, compression="lossless")
    try:
        assert sorted(source.associated) == ["label", "macro"] and source.compression == "lossless"
        assert source.attrs["slide"]["properties"]["mirax.GENERAL.SLIDE_NAME"] == "H-1234-56 liver"
        assert source.associated["label"].shape == (40, 60, 3)  # the label lossless (no distance)
    finally:
        source.close()


def test_mirax_converts_with_the_chosen_and_the_asked_compression(mirax, tmp_path, capsys):
    from mzarr_core.cli import main

    out = convert(mirax.path, tmp_path / "exact.mzarr", read_options={"compression": "lossless"})
    with Mzarr(out) as m:
        assert np.array_equal(m[...], mirax.expected) and m.spacing == (0.2433, 0.2431)
        assert sorted(m.associated_images()) == ["macro"] and m.attrs()["slide"]["format"] == "mrxs"
    assert main(["convert", "--quiet", str(mirax.path), str(tmp_path / "cli.mzarr")]) == 0
    printed = capsys.readouterr().out
    assert "slide compression lossy: JPEG XL of the decoded pixels at distance 3" in printed
    # no compression asked: the caller's lossless / lossy save options choose (the CLI's --lossy, the viewer's choice)
    out = convert(mirax.path, tmp_path / "asked.mzarr", lossless=True)
    with Mzarr(out) as m:
        assert m.codec["lossless"] is True and np.array_equal(m[...], mirax.expected)
    out = convert(mirax.path, tmp_path / "lossy.mzarr", lossless=False, distance=1.0)
    with Mzarr(out) as m:
        assert m.codec["lossless"] is False and m.codec["distance"] == 1.0
    with pytest.raises(MzarrValueError, match="cannot be recompressed"):
        formats.read(mirax.path, compression="recompress")


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "a.mrxs").write_bytes(b"\0" * 64)
    monkeypatch.setitem(sys.modules, "openslide", None)  # import openslide now raises ImportError
    assert not osr.available()
    pattern = r'openslide-python and openslide-bin.*pip install "mzarr\[openslide\]"'
    with pytest.raises(MzarrFormatError, match=pattern):
        formats.read(tmp_path / "a.mrxs")
    with pytest.raises(MzarrFormatError, match=pattern):
        osr.describe_slide(tmp_path / "a.mrxs")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(MzarrFormatError, match="bundles do not include OpenSlide"):
        open_slide(tmp_path / "a.mrxs")
    monkeypatch.delattr(sys, "frozen")
    # the content sniff still knows VMS/VMU headers and CZI files by their first bytes
    (tmp_path / "scan.hdr").write_text("[Virtual Microscope Specimen]\nNoLayers=1\nImageFile=scan.jpg\n")
    (tmp_path / "raw.hdr").write_text("[Uncompressed Virtual Microscope Specimen]\nNoLayers=1\n")
    (tmp_path / "z.bin").write_bytes(b"ZISRAWFILE" + b"\0" * 100)
    (tmp_path / "notes.hdr").write_text("hello")
    assert osr.sniff(tmp_path / "scan.hdr") and osr.sniff(tmp_path / "raw.hdr") and osr.sniff(tmp_path / "z.bin")
    assert not osr.sniff(tmp_path / "notes.hdr") and not osr.sniff(tmp_path / "missing.vms")
    assert formats.find_format(tmp_path / "scan.hdr").name == "openslide"


@needs_openslide
def test_real_openslide_errors_are_clear(tmp_path, svs):
    (tmp_path / "lonely.mrxs").write_bytes(b"\xff\xd8 no folder beside it")
    with pytest.raises(MzarrFormatError, match=r"lonely\.mrxs could not be read through OpenSlide.*copy both"):
        formats.read(tmp_path / "lonely.mrxs")
    with pytest.raises(MzarrFileNotFoundError):
        open_slide(tmp_path / "missing.vms")
    assert not osr.sniff(svs["ycbcr"])  # a TIFF slide is tifffile's (force OpenSlide with open_slide)
    assert not osr.sniff(tmp_path / "lonely.mrxs")  # no folder: OpenSlide does not detect it
