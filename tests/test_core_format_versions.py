"""Format versions: files of format 1 (frame bricks, written by Mzarr 0.1.0 and committed in tests/data), format 2
(strip bricks), format 4 (slab bricks), format 5 (checksums) and format 6 (Blosc bricks) keep opening, reading
and editing in their own layout; new files carry a crc32c after every chunk (lossless 16-bit volumes as Blosc
bricks, format 6; other lossless volumes as slab bricks: Zarr shards of z-slabs) that stock Zarr readers decode; ``checksums=False`` writes the layout's own format; every storage codec class round-trips
its block and says how its planes are read."""

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
from mzarr_core import guards
from mzarr_core.chunk_reader import ChunkCodec
from mzarr_core.codecs import JpegxlFrames, JpegxlSlabs, JpegxlStrip, Zstd, choose_codec, codec_from_json
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
        "format2_volume_uint16.mzarr": (vol * 37 + 11).astype(np.uint16),
        "format4_volume_uint16.mzarr": (vol * 37 + 11).astype(np.uint16),
        "format4_volume_int16.mzarr": (vol - 128).astype(np.int16)[:20, :50, :60] * 100,
        "format5_volume_int16.mzarr": (vol - 128).astype(np.int16)[:20, :50, :60] * 100,
        "format5_camera_labels.mzarr": data.camera()[:300, :260],
        "format6_volume_uint16.mzarr": (vol * 37 + 11).astype(np.uint16),
        "format6_volume_int16.mzarr": (vol - 128).astype(np.int16)[:20, :50, :60] * 100,
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


# Committed files of formats 2, 4, 5 and 6 (written 2026-11-30 from the same pixels: format 2 strip bricks, 4 slab
# bricks, 5 slabs with checksums, 6 Blosc bricks, no "bricks" key), so a later change of the writer cannot change
# how they read.
LATER = [("format2_volume_uint16.mzarr", 2, "strip"), ("format4_volume_uint16.mzarr", 4, "slabs"),
         ("format4_volume_int16.mzarr", 4, "slabs"), ("format5_volume_int16.mzarr", 5, "slabs"),
         ("format6_volume_uint16.mzarr", 6, None), ("format6_volume_int16.mzarr", 6, None)]


@pytest.mark.parametrize("name,version,bricks", LATER)
def test_committed_strip_and_slab_files_open_read_and_edit_in_their_layout(tmp_path, name, version, bricks):
    want = expected(name)
    codec_name = "blosc" if version == 6 else "jpegxl"
    assert root_meta(DATA / name)["format_version"] == version
    with Mzarr(DATA / name) as m:
        assert m.codec.get("bricks") == bricks and m.codec["name"] == codec_name
        assert np.array_equal(m[...], want)
        level = m.levels[0]
        for z in sorted({0, 13, min(64, want.shape[0] - 1), want.shape[0] - 1}):
            assert np.array_equal(level.z_plane(z), want[z])
        assert verify(m).ok
    path = shutil.copy(DATA / name, tmp_path / name)
    with Mzarr(path, "r+") as m:
        m[3:9, 5:30, 7:40] = 77
    want[3:9, 5:30, 7:40] = 77
    assert root_meta(path)["format_version"] == version
    with Mzarr(path) as m:
        assert m.codec.get("bricks") == bricks and m.codec["name"] == codec_name
        assert np.array_equal(m[...], want) and verify(m).ok


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


def test_slab_volumes_are_format5_checksummed_slabs(tmp_path):
    vol = expected("format1_volume_uint16.mzarr")
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks="slabs")
    meta = root_meta(path)
    assert meta["format_version"] == 5 and meta["codec"] == {"name": "jpegxl", "lossless": True, "effort": 1,
                                                            "bricks": "slabs", "slab": 16, "checksum": "crc32c"}
    with Mzarr(path) as m:
        raw = m._store.get_bytes_sync("0/c/0/0/0")
        entries = guards.shard_index(raw, 4)  # a shard of 4 slabs, its index at the end
        assert all(e is not None for e in entries) and entries[0][0] == 0
        for offset, length in entries:  # each slab one frame (its 16 slices stacked), then the slab's crc32c
            slab = raw[offset : offset + length]
            assert guards.append_crc32c(slab[:-4]) == bytes(slab)
            assert imagecodecs.jpegxl_decode(slab[:-4]).shape == (16 * 64, 64)
        codec = ChunkCodec.for_array(m.levels[0].storage)
        assert codec is not None and codec.kind == "slabs" and codec.inner_checksum  # decoded in the core
        assert np.array_equal(codec.decode(raw)[:64, :64, :64], vol[:64, :64, :64])
        assert np.array_equal(m[...], vol)


def test_without_checksums_each_layout_keeps_its_own_format_version(tmp_path):
    """``checksums=False`` writes files the readers of formats 1-4 open: the layout's own version, no crc32c."""
    vol = expected("format1_volume_uint16.mzarr")
    slabs = Mzarr(vol).save(tmp_path / "slabs.mzarr", bricks="slabs", checksums=False)
    assert root_meta(slabs)["format_version"] == 4 and "checksum" not in root_meta(slabs)["codec"]
    with Mzarr(slabs) as m:
        raw = m._store.get_bytes_sync("0/c/0/0/0")
        offset, length = guards.shard_index(raw, 4)[0]
        assert imagecodecs.jpegxl_decode(raw[offset : offset + length]).shape == (16 * 64, 64)  # no crc after it
        assert np.array_equal(m[...], vol)
    strip = Mzarr(vol).save(tmp_path / "strip.mzarr", bricks="strip", checksums=False)
    assert root_meta(strip)["format_version"] == 2 and root_meta(strip)["codec"]["bricks"] == "strip"
    flat = Mzarr(vol[0]).save(tmp_path / "flat.mzarr", checksums=False)
    assert root_meta(flat)["format_version"] == 1 and "bricks" not in root_meta(flat)["codec"]
    frames = Mzarr(vol).save(tmp_path / "frames.mzarr", bricks="frames", checksums=False)
    assert root_meta(frames)["format_version"] == 1
    for name in ("strip.mzarr", "flat.mzarr", "frames.mzarr"):
        with Mzarr(tmp_path / name) as m:
            assert np.array_equal(m[...], vol[0] if name == "flat.mzarr" else vol)
            assert not any(type(c).__name__ == "CheckedCrc32c" for c in m.levels[0].storage.metadata.codecs)
    with_crc = Mzarr(vol).save(tmp_path / "strip5.mzarr", bricks="strip")
    assert root_meta(with_crc)["format_version"] == 5 and root_meta(with_crc)["codec"]["bricks"] == "strip"
    lossy = Mzarr(vol).save(tmp_path / "lossy.mzarr", distance=1.0)
    assert root_meta(lossy)["codec"].get("bricks") is None  # lossy volumes keep frames
    for bricks in ("strip", "slabs"):
        with pytest.raises(MzarrValueError, match=f"{bricks} bricks are lossless only"):
            Mzarr(vol).save(tmp_path / "x.mzarr", distance=1.0, bricks=bricks)
    with pytest.raises(MzarrValueError, match="bricks must be"):
        Mzarr(vol).save(tmp_path / "x.mzarr", bricks="mosaic")


@pytest.mark.parametrize(("bricks", "version", "checksums"), [("strip", 2, False), ("slabs", 4, False),
                                                              ("strip", 5, True), ("slabs", 5, True)])
def test_edits_keep_a_files_layout(tmp_path, bricks, version, checksums):
    """Editing a format-2, 4 or 5 volume writes bricks of its own layout (strips stay one frame, slab files stay
    shards, checksummed files keep a crc32c after every brick or slab, others get none) and keeps its format
    version; the pyramid follows."""
    want = expected("format1_volume_uint16.mzarr")
    path = Mzarr(want).save(tmp_path / "v.mzarr", bricks=bricks, checksums=checksums)
    with Mzarr(path, "r+") as m:
        m[10:40, 5:80, 60:100] = 4000
        raw = m._store.get_bytes_sync("0/c/0/0/1")
    want[10:40, 5:80, 60:100] = 4000
    if bricks == "strip":
        frame = raw[:-4] if checksums else raw
    else:
        offset, length = guards.shard_index(raw, 4)[1]
        frame = raw[offset : offset + length - (4 if checksums else 0)]
    if checksums:
        assert guards.append_crc32c(frame) == bytes(raw if bricks == "strip" else raw[offset : offset + length])
    assert imagecodecs.jpegxl_decode(frame).shape == ((64 if bricks == "strip" else 16) * 64, 64)
    assert root_meta(path)["format_version"] == version and root_meta(path)["codec"]["bricks"] == bricks
    with Mzarr(path) as m:
        assert np.array_equal(m[...], want)
        assert np.array_equal(m.levels[0].z_plane(20), want[20])
        assert np.array_equal(m.levels[1][...], Mzarr(want).levels[1][...])
        assert verify(m).ok


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


@pytest.mark.parametrize(("bricks", "dtype"), [("strip", "uint16"), ("slabs", "uint16"), ("slabs", "int16"),
                                            ("slabs", "bool")])
def test_stock_zarr_reads_a_strip_or_slab_volume(tmp_path, bricks, dtype):
    """The folder form of a format-2 or format-4 volume opens in plain zarr + imagecodecs (another process, no mzarr
    code): the codec entry is the stock imagecodecs_jpegxl, whose decoder reshapes the one frame to the chunk (for
    slabs: the inner chunk of zarr's own sharding_indexed codec), every level bit-exact."""
    base = expected("format1_volume_uint16.mzarr")[:, :, :70]
    vol = {"uint16": base, "int16": (base.astype(np.int32) - 20000).astype(np.int16), "bool": base > 3000}[dtype]
    folder = Mzarr(vol).save(tmp_path / "v.ome.zarr", bricks=bricks)
    with Mzarr(folder) as m:
        for level in m.levels:
            np.save(tmp_path / f"want{level.index}.npy", level[...])
        count = len(m.levels)
    assert count == 2
    code = (
        "import sys, numpy as np, zarr, imagecodecs.zarr\n"
        "imagecodecs.zarr.register_codecs()\n"
        "assert 'mzarr_core' not in sys.modules\n"
        f"for i in range({count}):\n"
        f"    a = zarr.open_array({str(folder)!r}, path=str(i), mode='r')\n"
        f"    assert np.array_equal(a[...], np.load({str(tmp_path)!r} + f'/want{{i}}.npy')), i\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("checksum", [False, True])
@pytest.mark.parametrize(
    "codec",
    [JpegxlFrames(), JpegxlFrames(lossless=False, distance=2.5, effort=3), JpegxlStrip(), JpegxlStrip(effort=3),
     JpegxlSlabs(), JpegxlSlabs(effort=2, slab=8), Zstd()],
)
def test_storage_codecs_round_trip_their_block(codec, checksum):
    import dataclasses

    codec = dataclasses.replace(codec, checksum=checksum)
    block = codec.to_json()
    assert ("checksum" in block) == checksum
    assert codec_from_json(json.loads(json.dumps(block))) == codec
    version = 4 if isinstance(codec, JpegxlSlabs) else 2 if isinstance(codec, JpegxlStrip) else 1
    assert codec.format_version == version
    assert codec.version == (5 if checksum else version)
    assert codecs.format_version_of(block) == codec.version


def test_codec_choice_and_unknown_blocks():
    import numpy as np

    assert type(choose_codec(np.uint16, volume=True)) is codecs.Blosc
    assert type(choose_codec(np.uint8, volume=True)) is JpegxlSlabs
    assert type(choose_codec(np.uint16, volume=True, bricks="slabs")) is JpegxlSlabs
    assert type(choose_codec(np.uint16, volume=True, bricks="strip")) is JpegxlStrip
    assert isinstance(choose_codec(np.uint16, volume=True, bricks="frames"), JpegxlFrames)
    assert type(choose_codec(np.uint16)) is JpegxlFrames
    assert type(choose_codec(np.float32, volume=True)) is Zstd
    assert choose_codec(np.uint8, volume=True, effort=4).effort == 4
    assert codec_from_json({"name": "jpegxl", "legacy": True}) is None
    assert codec_from_json({"name": "jpegxl", "bricks": "spiral"}) is None
    assert codec_from_json(None) is None
    assert codecs.format_version_of({"name": "jpegxl", "bricks": "strip"}) == 2
    assert codecs.format_version_of({"name": "jpegxl", "bricks": "slabs", "slab": 16}) == 4
    assert codecs.format_version_of({"name": "zstd", "checksum": "crc32c"}) == 5
    assert codecs.format_version_of({"name": "blosc"}) == codecs.format_version_of({"name": "blosc", "checksum": "crc32c"}) == 6
    assert choose_codec(np.uint16).checksum and not choose_codec(np.uint16, checksum=False).checksum
    assert codec_from_json({"name": "jpegxl", "bricks": "slabs", "slab": -3}) == JpegxlSlabs()  # a bad slab: default


@pytest.mark.parametrize("bricks", ["frames", "strip", "slabs"])
def test_each_codec_reads_planes_as_it_says(tmp_path, bricks):
    """The plane fast path cannot switch off silently: frame-brick and slab-brick volumes have it on every level, a
    strip volume on none, on every dtype JPEG XL stores."""
    vol = expected("format1_volume_int16.mzarr")
    for dtype in ("uint8", "int16", "bool"):
        image = vol > 0 if dtype == "bool" else vol.astype(dtype) if dtype == "int16" else (vol // 256 + 128).astype(dtype)
        path = Mzarr(image).save(tmp_path / f"{dtype}.mzarr", bricks=bricks)
        with Mzarr(path) as m:
            assert [lv.plane_reads_are_fast for lv in m.levels] == [bricks != "strip"] * len(m.levels)
            assert np.array_equal(m.levels[0].z_plane(7), image[7])


def test_committed_format5_image_with_labels_opens_reads_and_edits_with_checksums(tmp_path):
    """A 2-D format-5 file with a label image (written 2026-11-30): every chunk checksummed, read bit-exact, edits keep
    the checksums (tests/test_core_checksums.py checks what a damaged chunk does)."""
    want = expected("format5_camera_labels.mzarr")
    labels = (want > 128).astype(np.uint8) + (want > 200)
    assert root_meta(DATA / "format5_camera_labels.mzarr")["format_version"] == 5
    with Mzarr(DATA / "format5_camera_labels.mzarr") as m:
        assert m.checksums and np.array_equal(m[...], want)
        assert np.array_equal(m.label("bright")[...], labels)
        assert verify(m).ok
    path = shutil.copy(DATA / "format5_camera_labels.mzarr", tmp_path / "c.mzarr")
    with Mzarr(path, "r+") as m:
        m[10:200, 20:100] = 7
        m.label("bright")[0:50, 0:50] = 3
    want[10:200, 20:100] = 7
    labels[0:50, 0:50] = 3
    with Mzarr(path) as m:
        raw = m._store.get_bytes_sync("0/c/0/0")
        assert guards.append_crc32c(raw[:-4]) == raw
        assert np.array_equal(m[...], want) and np.array_equal(m.label("bright")[...], labels) and verify(m).ok
