"""Format versions: files of format 1 (frame bricks, written by Mzarr 0.1.0 and committed in tests/data) keep
opening, reading and editing; new volumes are format 2 (strip bricks) that stock Zarr readers still decode; every
storage codec class round-trips its block and says how its planes are read."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from skimage import data

from mzarr_core import Mzarr, codecs, verify
from mzarr_core.codecs import JpegxlFrames, JpegxlStrip, Zstd, choose_codec, codec_from_json
from mzarr_core.errors import MzarrValueError

DATA = Path(__file__).parent / "data"


def moon_stack() -> np.ndarray:
    """The pixels of the committed format-1 volumes (made from scikit-image's moon by Mzarr 0.1.0)."""
    moon = data.moon().astype(np.int64)
    return np.stack([np.roll(moon, 5 * z, axis=1)[100:190, 50:150] for z in range(70)])


def expected(name: str) -> np.ndarray:
    vol = moon_stack()
    return {
        "format1_volume_uint16.mzarr": (vol * 37 + 11).astype(np.uint16),
        "format1_volume_int16.mzarr": (vol - 128).astype(np.int16)[:20, :50, :60] * 100,
        "format1_volume_rgb.mzarr": np.stack([vol, vol // 2, 255 - vol], -1).astype(np.uint8)[:, :40, :50],
        "format1_camera.mzarr": data.camera()[:300, :260],
    }[name]


def root_meta(path: Path) -> dict:
    with Mzarr(path) as m:
        return json.loads(m._store.get_bytes_sync("zarr.json"))["attributes"]["mzarr"]


FORMAT1 = ["format1_volume_uint16.mzarr", "format1_volume_int16.mzarr", "format1_volume_rgb.mzarr", "format1_camera.mzarr"]


@pytest.mark.parametrize("name", FORMAT1)
def test_format1_files_open_and_read_bit_exact(name):
    want = expected(name)
    assert root_meta(DATA / name)["format_version"] == 1
    with Mzarr(DATA / name) as m:
        assert "bricks" not in m.codec
        assert np.array_equal(m[...], want)
        if "z" in m.axes:
            assert all(level.plane_reads_are_fast for level in m.levels)  # one frame per z: the fast plane path
            level = m.levels[0]
            for z in sorted({0, 13, min(64, want.shape[0] - 1), want.shape[0] - 1}):
                assert np.array_equal(level.z_plane(z), want[z])
            assert verify(m).ok


def test_format1_volume_edits_stay_format1(tmp_path):
    """Editing a format-1 file writes frame bricks (an Mzarr 0.1.0 reader keeps reading it) and updates the pyramid."""
    path = shutil.copy(DATA / "format1_volume_uint16.mzarr", tmp_path / "v.mzarr")
    want = expected("format1_volume_uint16.mzarr")
    with Mzarr(path, "r+") as m:
        m[10:40, 5:80, 60:100] = 4000
        raw = m._store.get_bytes_sync("0/c/0/0/1")
    want[10:40, 5:80, 60:100] = 4000
    assert imagecodecs.jpegxl_decode(raw).shape == (64, 64, 64)  # 64 frames: still format 1 bricks
    assert root_meta(path)["format_version"] == 1
    with Mzarr(path) as m:
        assert np.array_equal(m[...], want)
        assert np.array_equal(m.levels[0].z_plane(20), want[20])
    with Mzarr(path) as m:
        assert verify(m).ok


def test_new_volumes_are_format2_strips_and_2d_stays_format1(tmp_path):
    vol = expected("format1_volume_uint16.mzarr")
    path = Mzarr(vol).save(tmp_path / "v.mzarr")
    meta = root_meta(path)
    assert meta["format_version"] == 2 and meta["codec"] == {"name": "jpegxl", "lossless": True, "effort": 1,
                                                            "bricks": "strip"}
    with Mzarr(path) as m:
        raw = m._store.get_bytes_sync("0/c/0/0/0")
        assert imagecodecs.jpegxl_decode(raw).shape == (64 * 64, 64)  # one frame: the brick's slices stacked
        assert np.array_equal(m[...], vol)
    flat = Mzarr(vol[0]).save(tmp_path / "flat.mzarr")
    assert root_meta(flat)["format_version"] == 1 and "bricks" not in root_meta(flat)["codec"]
    frames = Mzarr(vol).save(tmp_path / "frames.mzarr", bricks="frames")
    assert root_meta(frames)["format_version"] == 1
    lossy = Mzarr(vol).save(tmp_path / "lossy.mzarr", distance=1.0)
    assert root_meta(lossy)["codec"].get("bricks") is None  # lossy volumes keep frames
    with pytest.raises(MzarrValueError, match="strip bricks are lossless only"):
        Mzarr(vol).save(tmp_path / "x.mzarr", distance=1.0, bricks="strip")
    with pytest.raises(MzarrValueError, match="bricks must be"):
        Mzarr(vol).save(tmp_path / "x.mzarr", bricks="mosaic")


def test_a_strip_brick_among_frame_bricks_still_reads_planes(tmp_path):
    """The plane path looks at each brick's header: a brick stored as one frame (however it got there) is decoded
    whole, never refused or misread."""
    path = shutil.copy(DATA / "format1_volume_uint16.mzarr", tmp_path / "v.mzarr")
    want = expected("format1_volume_uint16.mzarr")
    brick = want[64:70, 0:64, 0:64]
    padded = np.zeros((64, 64, 64), np.uint16)  # zarr stores edge chunks padded to the chunk shape
    padded[:6] = brick
    strip = imagecodecs.jpegxl_encode(padded.reshape(-1, 64), lossless=True, effort=1, photometric="GRAY")
    with Mzarr(path, "r+") as m, m.transaction():
        m._store.set_bytes_sync("0/c/1/0/0", strip)
    with Mzarr(path) as m:
        assert m.levels[0].plane_reads_are_fast
        for z in (64, 69):
            assert np.array_equal(m.levels[0].z_plane(z), want[z])
        assert np.array_equal(m[...], want)


def test_stock_zarr_reads_a_strip_volume(tmp_path):
    """The folder form of a format-2 volume opens in plain zarr + imagecodecs (another process, no mzarr code):
    the codec entry is the stock imagecodecs_jpegxl, whose decoder reshapes the one frame to the chunk."""
    vol = expected("format1_volume_uint16.mzarr")
    folder = Mzarr(vol).save(tmp_path / "v.ome.zarr")
    np.save(tmp_path / "want.npy", vol)
    code = (
        "import sys, numpy as np, zarr, imagecodecs.zarr\n"
        "imagecodecs.zarr.register_codecs()\n"
        "assert 'mzarr_core' not in sys.modules\n"
        f"a = zarr.open_array({str(folder)!r}, path='0', mode='r')\n"
        f"assert np.array_equal(a[...], np.load({str(tmp_path / 'want.npy')!r}))\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize(
    "codec",
    [JpegxlFrames(), JpegxlFrames(lossless=False, distance=2.5, effort=3), JpegxlStrip(), JpegxlStrip(effort=3), Zstd()],
)
def test_storage_codecs_round_trip_their_block(codec):
    block = codec.to_json()
    assert codec_from_json(json.loads(json.dumps(block))) == codec
    assert codec.format_version == (2 if isinstance(codec, JpegxlStrip) else 1)


def test_codec_choice_and_unknown_blocks():
    import numpy as np

    assert isinstance(choose_codec(np.uint16, volume=True), JpegxlStrip)
    assert isinstance(choose_codec(np.uint16, volume=True, bricks="frames"), JpegxlFrames)
    assert type(choose_codec(np.uint16)) is JpegxlFrames
    assert type(choose_codec(np.float32, volume=True)) is Zstd
    assert choose_codec(np.uint8, volume=True, effort=4).effort == 4
    assert codec_from_json({"name": "jpegxl", "legacy": True}) is None
    assert codec_from_json({"name": "jpegxl", "bricks": "spiral"}) is None
    assert codec_from_json(None) is None
    assert codecs.format_version_of({"name": "jpegxl", "bricks": "strip"}) == 2


@pytest.mark.parametrize("bricks", ["frames", "strip"])
def test_each_codec_reads_planes_as_it_says(tmp_path, bricks):
    """The plane fast path cannot switch off silently: a frame-brick volume has it on every level, a strip volume on
    none, on every dtype JPEG XL stores."""
    vol = expected("format1_volume_int16.mzarr")
    for dtype in ("uint8", "int16", "bool"):
        image = vol > 0 if dtype == "bool" else vol.astype(dtype) if dtype == "int16" else (vol // 256 + 128).astype(dtype)
        path = Mzarr(image).save(tmp_path / f"{dtype}.mzarr", bricks=bricks)
        with Mzarr(path) as m:
            assert [lv.plane_reads_are_fast for lv in m.levels] == [bricks == "frames"] * len(m.levels)
            assert np.array_equal(m.levels[0].z_plane(7), image[7])
