"""Checksums (format 5): every chunk of a new file (every slab of a slab brick) ends with the crc32c of its bytes,
Zarr's own ``crc32c`` codec. A chunk whose bytes changed on disk is never read as different pixels: every read
path (regions, whole chunks, z-planes of slabs and frames, zarr's own pipeline) raises ChunkChecksumError naming
the chunk, ``verify`` lists it at its level instead of blaming the pyramid, and ``repair`` rebuilds a damaged
coarser level but never "repairs" the pyramid from a damaged level 0."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from conftest import chunk_blobs, set_blob

from mzarr_core import ChunkChecksumError, CorruptChunkError, Mzarr, verify
from mzarr_core import guards
from mzarr_core.chunk_reader import ChunkCodec
from mzarr_core.cli import main as cli_main
from mzarr_core.repair import repair_pyramid


def flip(blob: bytes, at: int) -> bytes:
    """``blob`` with one bit of byte ``at`` flipped (what a failing disk or a bad copy does)."""
    out = bytearray(blob)
    out[at] ^= 0x10
    return bytes(out)


def volume(shape=(70, 100, 90), dtype=np.uint16) -> np.ndarray:
    moon = skimage.data.moon().astype(np.int64)
    vol = np.stack([np.roll(moon, 3 * z, axis=1)[: shape[1], : shape[2]] for z in range(shape[0])]) * 60
    return vol.astype(dtype)


def camera() -> np.ndarray:
    """A 2-D image of 2 x 2 chunks and two levels."""
    return np.tile(skimage.data.camera(), (2, 2))[:1000, :900]


KINDS = {
    "2d uint8 frames": lambda: (camera(), {}),
    "2d float32 zstd": lambda: (camera()[:700, :600].astype(np.float32) / 7, {}),
    "rgb": lambda: (np.tile(skimage.data.astronaut(), (2, 2, 1))[:600, :700], {}),
    "volume slabs": lambda: (volume(), {"bricks": "slabs"}),
    "volume int16 slabs": lambda: ((volume().astype(np.int32) - 20000).astype(np.int16), {"bricks": "slabs"}),
    "volume blosc": lambda: (volume(), {}),
    "volume int16 blosc": lambda: ((volume().astype(np.int32) - 20000).astype(np.int16), {}),
    "volume strip": lambda: (volume(), {"bricks": "strip"}),
    "volume lossy frames": lambda: (volume(dtype=np.uint8), {"distance": 1.0}),
    "labels (zstd)": lambda: ((volume() // 3000).astype(np.uint8), {"is_label": True}),
}


def saved(tmp_path: Path, kind: str) -> tuple[Path, np.ndarray]:
    data, options = KINDS[kind]()
    return Mzarr(data).save(tmp_path / "f.mzarr", **options), data


def level0_keys(path: Path) -> list[str]:
    return sorted(k for k in chunk_blobs(path) if k.startswith("0/c/"))


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_chunk_carries_its_crc32c_and_reads_bit_exact(tmp_path, kind):
    path, data = saved(tmp_path, kind)
    with Mzarr(path) as m:
        assert m.checksums and m.codec["checksum"] == "crc32c"
        if m.codec.get("lossless", True):
            assert np.array_equal(m[...], data)
        slabs = m.codec.get("bricks") == "slabs"
        counts = {str(lv.index): math.prod(ChunkCodec.for_array(lv.storage).grid) for lv in m.levels}
    for key, blob in chunk_blobs(path).items():
        if "/c/" not in key:
            continue
        if slabs:  # a shard: each slab followed by its crc32c, the index by its own
            for offset, length in filter(None, guards.shard_index(blob, counts[key.split("/")[0]])):
                slab = blob[offset : offset + length]
                assert guards.append_crc32c(slab[:-4]) == slab, key
        else:
            assert guards.append_crc32c(blob[:-4]) == blob, key
    assert verify(Mzarr(path)).ok


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_flipped_bit_is_an_error_naming_the_chunk_never_other_pixels(tmp_path, kind):
    path, data = saved(tmp_path, kind)
    key = level0_keys(path)[0]
    blob = chunk_blobs(path)[key]
    set_blob(path, key, flip(blob, len(blob) // 3))  # inside the (first slab's) compressed bytes
    with Mzarr(path) as m:
        with pytest.raises(ChunkChecksumError, match="changed on disk") as info:
            m[...]
        assert key in str(info.value) and "level 0" in str(info.value)
        level = m.levels[0]
        with pytest.raises(ChunkChecksumError):
            level.read_chunk((0,) * level.ndim)  # the damaged chunk: the first of the grid
        if m.codec.get("lossless", True):  # every other chunk still reads, bit-exact
            last = level.chunk_region(tuple(g - 1 for g in level.chunk_grid))
            assert np.array_equal(m[last], data[last])


def test_z_planes_check_the_one_slab_they_decode(tmp_path):
    """A slab brick's checksums are per slab: a damaged slab fails the planes in it, the brick's other planes read."""
    path, data = saved(tmp_path, "volume slabs")
    key = "0/c/0/0/0"
    blob = chunk_blobs(path)[key]
    offset, length = guards.shard_index(blob, 4)[1]  # planes 16..31
    set_blob(path, key, flip(blob, offset + length // 2))
    with Mzarr(path) as m:
        level = m.levels[0]
        for z in (0, 15, 32, 63):
            assert np.array_equal(level.z_plane(z), data[z])
        with pytest.raises(ChunkChecksumError, match=key):
            level.z_plane(20)
        with pytest.raises(ChunkChecksumError, match=key):
            m[:, 10, :]  # a y-plane decodes the whole brick


def test_frame_bricks_planes_check_the_brick(tmp_path):
    path, data = saved(tmp_path, "volume lossy frames")
    key = "0/c/0/0/1"
    blob = chunk_blobs(path)[key]
    set_blob(path, key, flip(blob, len(blob) - 10))
    with Mzarr(path) as m:
        assert m.levels[0].plane_reads_are_fast  # one frame per z, after the brick's checksum
        with pytest.raises(ChunkChecksumError, match=key):
            m.levels[0].z_plane(5)
        assert m.levels[0].z_plane(66).shape == data.shape[1:]  # the next row of bricks is whole


def test_zarr_pipeline_names_a_checksum_failure(tmp_path):
    """Reads through zarr (verify's repair pass, foreign readers in this process) give the same clear error."""
    path, _ = saved(tmp_path, "2d uint8 frames")
    key = "0/c/0/1"
    blob = chunk_blobs(path)[key]
    set_blob(path, key, flip(blob, 100))
    with Mzarr(path) as m, pytest.raises(ChunkChecksumError, match="do not match their crc32c checksum"):
        m.levels[0].storage[0:512, 512:600]


def test_verify_names_a_damaged_level0_chunk_and_repair_changes_nothing(tmp_path, capsys):
    path, data = saved(tmp_path, "volume slabs")
    key = "0/c/1/0/0"
    blob = chunk_blobs(path)[key]
    set_blob(path, key, flip(blob, 50))
    before = chunk_blobs(path)
    with Mzarr(path) as m:
        report = verify(m)
    assert not report.ok and report.checksums
    assert len(report.damaged) == 1 and key in report.damaged[0] and "checksum" in report.damaged[0]
    assert report.disagreement_count == 0  # the level above it is not blamed: it is not compared
    with Mzarr(path, "r+") as m, pytest.raises(CorruptChunkError, match="level 0"):
        repair_pyramid(m)
    assert chunk_blobs(path) == before
    assert cli_main(["verify", str(path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"DAMAGED: chunk {key}" in out and "restore the file from a backup" in out


def test_a_damaged_coarser_chunk_is_rebuilt_from_level0_bit_exact(tmp_path):
    path, data = saved(tmp_path, "2d uint8 frames")
    fresh = chunk_blobs(path)
    key = "1/c/0/0"
    set_blob(path, key, flip(fresh[key], 40))
    with Mzarr(path) as m:
        report = verify(m)
        assert [key in d for d in report.damaged] == [True]
    with Mzarr(path, "r+") as m:
        result = repair_pyramid(m)
    assert result.levels[1].rewritten == 1 and result.levels[1].damaged == 1
    assert chunk_blobs(path) == fresh  # the same bytes as written the first time, checksum included
    assert verify(Mzarr(path)).ok


def test_edits_and_new_label_images_keep_checksums(tmp_path):
    path, data = saved(tmp_path, "volume slabs")
    with Mzarr(path, "r+") as m:
        m[5:40, 10:60, 20:80] = 1234
        m.create_labels("cells", (data > 3000).astype(np.uint8))
    data[5:40, 10:60, 20:80] = 1234
    blobs = chunk_blobs(path)
    label_keys = [k for k in blobs if k.startswith("labels/cells/") and "/c/" in k]
    assert label_keys
    for key in label_keys:
        assert guards.append_crc32c(blobs[key][:-4]) == blobs[key]
    for key, slabs in (("0/c/0/0/0", 4), ("1/c/0/0/0", 3)):  # level 1: 35 planes in a shard of 3 slabs
        for offset, length in filter(None, guards.shard_index(blobs[key], slabs)):
            assert guards.append_crc32c(blobs[key][offset : offset + length - 4]) == blobs[key][offset : offset + length]
    with Mzarr(path) as m:
        assert np.array_equal(m[...], data) and verify(m).ok
        assert np.array_equal(m.label("cells")[...], (volume() > 3000).astype(np.uint8))


def test_recompressed_jpeg_tiles_carry_checksums(tmp_path):
    """Level-0 chunks stored as given (JPEG tiles transcoded without loss) get their checksum too."""
    import imagecodecs

    image = skimage.data.astronaut()[:512, :512]
    tiles = {(r, c, 0): imagecodecs.jpeg8_encode(image[r * 256 : (r + 1) * 256, c * 256 : (c + 1) * 256], level=90)
             for r in range(2) for c in range(2)}
    decoded = np.zeros_like(image)
    for (r, c, _), jpeg in tiles.items():
        decoded[r * 256 : (r + 1) * 256, c * 256 : (c + 1) * 256] = imagecodecs.jpeg8_decode(jpeg)
    path = Mzarr(decoded).save(tmp_path / "s.mzarr", chunks=(256, 256, 3), jpeg_tiles=tiles.get)
    blob = chunk_blobs(path)["0/c/0/0/0"]
    assert guards.append_crc32c(blob[:-4]) == blob
    with Mzarr(path) as m:
        assert m.codec.get("jpeg") == "recompressed" and m.checksums
        assert np.array_equal(m.levels[0][0:256, 0:256], decoded[0:256, 0:256])


def test_stock_zarr_checks_the_checksums_of_a_folder(tmp_path):
    """A plain zarr-python reader (another process, no mzarr code) reads a format-5 folder and refuses a chunk
    whose bytes changed: the checksum is Zarr's standard crc32c codec."""
    folder = Mzarr(volume()).save(tmp_path / "v.ome.zarr")
    chunk = folder / "0" / "c" / "0" / "0" / "0"
    chunk.write_bytes(flip(chunk.read_bytes(), 30))
    code = (
        "import sys, numpy as np, zarr, imagecodecs.zarr\n"
        "imagecodecs.zarr.register_codecs()\n"
        "assert 'mzarr_core' not in sys.modules\n"
        f"a = zarr.open_array({str(folder)!r}, path='0', mode='r')\n"
        "assert a[64:, :, :].shape == (6, 100, 90)\n"
        "try:\n"
        "    a[:10, :10, :10]\n"
        "except Exception as exc:\n"
        "    print('refused', 'checksum' in str(exc))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "refused True", result.stderr


def test_a_chunk_cut_short_is_named(tmp_path):
    path, _ = saved(tmp_path, "2d float32 zstd")
    set_blob(path, "0/c/0/0", b"\x01\x02")
    with Mzarr(path) as m, pytest.raises(ChunkChecksumError, match="cut short"):
        m[0:10, 0:10]


def test_associated_images_carry_checksums(tmp_path):
    thumb = skimage.data.astronaut()[::4, ::4]
    path = Mzarr(camera()).save(tmp_path / "a.mzarr", associated={"thumbnail": thumb})
    key = "associated/thumbnail/c/0/0/0"
    blob = chunk_blobs(path)[key]
    assert guards.append_crc32c(blob[:-4]) == blob
    with Mzarr(path) as m:
        assert np.array_equal(m.associated_images()["thumbnail"], thumb)
    set_blob(path, key, flip(blob, 60))
    with Mzarr(path) as m, pytest.raises(Exception, match="checksum"):
        m.associated_images()


def test_cli_convert_writes_checksums_unless_asked_not_to(tmp_path, capsys):
    source = tmp_path / "camera.tif"
    import tifffile

    tifffile.imwrite(source, camera())
    assert cli_main(["convert", str(source), str(tmp_path / "a.mzarr"), "--quiet"]) == 0
    assert cli_main(["convert", str(source), str(tmp_path / "b.mzarr"), "--quiet", "--no-checksums"]) == 0
    with Mzarr(tmp_path / "a.mzarr") as a, Mzarr(tmp_path / "b.mzarr") as b:
        assert a.checksums and not b.checksums
        assert np.array_equal(a[...], camera()) and np.array_equal(b[...], camera())
    assert chunk_blobs(tmp_path / "a.mzarr")["0/c/0/0"][:-4] == chunk_blobs(tmp_path / "b.mzarr")["0/c/0/0"]
