"""Blosc bricks (format 6): lossless volumes of 16-bit samples are stored as Blosc-compressed bytes (zstd, byte
shuffle) with a crc32c, read bit-exact by the core and by stock Zarr; 8-bit volumes, 2-D images, labels and lossy
volumes keep their codecs; a hostile or damaged Blosc chunk is refused before it is decoded, and named."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import chunk_blobs, set_blob

from mzarr import Mzarr
from mzarr_core import guards, salvage_file, verify
from mzarr_core.chunk_reader import ChunkCodec
from mzarr_core.codecs import Blosc, JpegxlFrames, JpegxlSlabs, Zstd, choose_codec, codec_from_json
from mzarr_core.errors import ChunkChecksumError, ChunkTooLargeError, CorruptChunkError, MzarrError, MzarrValueError


def root_meta(path: Path) -> dict:
    with Mzarr(path) as m:
        return json.loads(m._store.get_bytes_sync("zarr.json"))["attributes"]["mzarr"]


def mri(nifti_4d_volume: np.ndarray) -> np.ndarray:
    """nibabel's example4d (first volume, int16 128 x 96 x 24) as (z, y, x), stacked (mirrored) to 150 planes:
    3 brick layers, edge bricks in every axis."""
    vol = np.ascontiguousarray(np.transpose(nifti_4d_volume, (2, 1, 0)))
    return np.concatenate([vol, vol[::-1], vol[:, ::-1], vol[:, :, ::-1], vol[::-1, ::-1], vol, vol[::-1]])[:150]


# -- which codec -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["uint16", "int16"])
def test_16bit_lossless_volumes_default_to_blosc(dtype):
    assert choose_codec(np.dtype(dtype), volume=True) == Blosc(checksum=True)
    assert choose_codec(np.dtype(dtype), volume=True).version == 6


def test_other_images_keep_their_codecs():
    assert isinstance(choose_codec(np.dtype("uint8"), volume=True), JpegxlSlabs)  # JPEG XL is 25 % smaller at 8 bits
    assert type(choose_codec(np.dtype("uint16"))) is JpegxlFrames  # 2-D tiles
    assert type(choose_codec(np.dtype("uint16"), volume=True, lossless=False)) is JpegxlFrames
    assert type(choose_codec(np.dtype("uint16"), volume=True, is_label=True)) is Zstd
    assert type(choose_codec(np.dtype("float32"), volume=True)) is Zstd
    assert isinstance(choose_codec(np.dtype("uint16"), volume=True, bricks="slabs"), JpegxlSlabs)
    assert choose_codec(np.dtype("uint8"), volume=True, bricks="blosc") == Blosc(checksum=True)


def test_blosc_refused_where_it_cannot_apply():
    with pytest.raises(MzarrValueError, match="for volumes"):
        choose_codec(np.dtype("uint16"), bricks="blosc")
    with pytest.raises(MzarrValueError, match="lossless only"):
        choose_codec(np.dtype("uint16"), volume=True, bricks="blosc", distance=1.0)
    with pytest.raises(MzarrValueError, match="'blosc', 'slabs', 'strip', 'frames'"):
        choose_codec(np.dtype("uint16"), volume=True, bricks="zip")


def test_block_round_trips_and_odd_values_fall_back():
    codec = Blosc(checksum=True)
    assert codec.to_json() == {"name": "blosc", "lossless": True, "cname": "zstd", "level": 5, "shuffle": "shuffle",
                               "checksum": "crc32c"}
    assert codec_from_json(codec.to_json()) == codec
    assert codec_from_json({"name": "blosc", "cname": "evil", "level": 99, "shuffle": 3}) == Blosc()
    assert codec_from_json({"name": "blosc", "cname": "lz4", "level": 1}) == Blosc(cname="lz4", level=1)


# -- round trips -------------------------------------------------------------------------------------------------
def test_real_mri_round_trips_bit_exact_as_format6(tmp_path, nifti_4d_volume):
    vol = mri(nifti_4d_volume)
    path = Mzarr(vol, spacing=(3.0, 2.0, 2.0), unit="mm").save(tmp_path / "mri.mzarr")
    meta = root_meta(path)
    assert meta["format_version"] == 6 and meta["codec"]["name"] == "blosc" and meta["codec"]["checksum"] == "crc32c"
    with Mzarr(path) as m:
        assert m.dtype == np.int16 and np.array_equal(m[...], vol)
        for z in (0, 63, 64, 149):
            assert np.array_equal(m.levels[0].z_plane(z), vol[z])
        assert np.array_equal(m[:, 40], vol[:, 40]) and np.array_equal(m[:, :, 77], vol[:, :, 77])
        report = verify(m)
    assert report.damaged == [] and report.pyramid_checked and report.disagreement_count == 0 and report.checksums


def test_every_chunk_is_blosc_with_its_crc32c(tmp_path, nifti_4d_volume):
    """What the bytes on disk are: each chunk = a Blosc frame of the chunk's bytes (its header says so) + crc32c."""
    vol = mri(nifti_4d_volume)
    path = Mzarr(vol).save(tmp_path / "mri.mzarr")
    blobs = {k: v for k, v in chunk_blobs(path).items() if k.startswith("0/c/")}
    assert len(blobs) == 3 * 2 * 2  # 64³ bricks over 150 x 96 x 128
    for key, blob in blobs.items():
        payload = guards.strip_crc32c(blob, key)
        assert int.from_bytes(payload[4:8].tobytes(), "little") == 64**3 * 2  # full (padded) brick, int16
        assert int.from_bytes(payload[12:16].tobytes(), "little") == len(payload)


def test_edit_updates_every_level_and_stays_blosc(tmp_path, nifti_4d_volume):
    vol = mri(nifti_4d_volume)
    path = Mzarr(vol).save(tmp_path / "mri.mzarr")
    patch = np.full((10, 20, 30), -1000, np.int16)
    with Mzarr(path, "r+") as m:
        m[60:70, 30:50, 50:80] = patch
    want = vol.copy()
    want[60:70, 30:50, 50:80] = patch
    with Mzarr(path) as m:
        assert np.array_equal(m[...], want)
        assert verify(m).disagreement_count == 0
    assert root_meta(path)["codec"]["name"] == "blosc"


def test_folder_form_reads_with_stock_zarr(tmp_path, nifti_4d_volume):
    """The OME-Zarr folder of a Blosc volume opens in a fresh process with plain zarr-python (no Mzarr codecs)."""
    vol = mri(nifti_4d_volume)
    folder = Mzarr(vol).save(tmp_path / "mri.ome.zarr")
    np.save(tmp_path / "want.npy", vol)
    script = textwrap.dedent(f"""
        import numpy as np, zarr
        a = zarr.open_group({str(folder)!r}, mode="r")["0"]
        assert [c["name"] for c in a.metadata.to_dict()["codecs"]] == ["bytes", "blosc", "crc32c"], a.metadata.codecs
        assert np.array_equal(a[...], np.load({str(tmp_path / 'want.npy')!r}))
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_conversion_between_layouts_is_exact(tmp_path, nifti_4d_volume):
    vol = mri(nifti_4d_volume)
    slabs = Mzarr(vol).save(tmp_path / "slabs.mzarr", bricks="slabs")
    with Mzarr(slabs) as m:
        blosc = m.save(tmp_path / "blosc.mzarr", bricks="blosc")
    with Mzarr(blosc) as m:
        assert m.codec["name"] == "blosc" and np.array_equal(m[...], vol)
        back = m.save(tmp_path / "back.mzarr", bricks="slabs")
    with Mzarr(back) as m:
        assert m.codec["bricks"] == "slabs" and np.array_equal(m[...], vol)


def test_without_checksums_still_format6(tmp_path, nifti_4d_volume):
    path = Mzarr(mri(nifti_4d_volume)).save(tmp_path / "v.mzarr", checksums=False)
    meta = root_meta(path)
    assert meta["format_version"] == 6 and "checksum" not in meta["codec"]


# -- damage and hostile chunks -----------------------------------------------------------------------------------
def _blosc_file(tmp_path: Path, nifti_4d_volume: np.ndarray, checksums: bool = True) -> tuple[Path, np.ndarray]:
    vol = mri(nifti_4d_volume)
    return Mzarr(vol).save(tmp_path / "v.mzarr", checksums=checksums), vol


def _with_crc(payload: bytes) -> bytes:
    return guards.append_crc32c(payload)


def test_a_flipped_bit_is_a_checksum_error_naming_the_chunk(tmp_path, nifti_4d_volume):
    path, _ = _blosc_file(tmp_path, nifti_4d_volume)
    blob = bytearray(chunk_blobs(path)["0/c/1/0/1"])
    blob[len(blob) // 2] ^= 0x10
    set_blob(path, "0/c/1/0/1", bytes(blob))
    with Mzarr(path) as m, pytest.raises(ChunkChecksumError, match=r"0/c/1/0/1"):
        m[64:128, 0:64, 64:128]
    with Mzarr(path) as m:
        report = verify(m)
    assert [d for d in report.damaged if "0/c/1/0/1" in d]


def test_declared_size_larger_than_the_chunk_is_refused_before_decoding(tmp_path, nifti_4d_volume):
    """A Blosc header claiming 4 GiB in place of a 512 KiB brick (valid crc32c, so only the guard stands)."""
    path, _ = _blosc_file(tmp_path, nifti_4d_volume)
    payload = bytearray(guards.strip_crc32c(chunk_blobs(path)["0/c/0/0/0"]).tobytes())
    payload[4:8] = (2**32 - 1).to_bytes(4, "little")
    set_blob(path, "0/c/0/0/0", _with_crc(bytes(payload)))
    with Mzarr(path) as m, pytest.raises(ChunkTooLargeError, match=r"declares 4294967295 bytes.*decompression bomb"):
        m[0:10, 0:10, 0:10]


@pytest.mark.parametrize("damage", ["cut", "short_header", "smaller_size", "bad_blocksize", "garbage"])
def test_damaged_blosc_chunk_is_a_corrupt_chunk(tmp_path, nifti_4d_volume, damage):
    path, vol = _blosc_file(tmp_path, nifti_4d_volume)
    payload = bytes(guards.strip_crc32c(chunk_blobs(path)["0/c/0/1/0"]))
    bad = {
        "cut": payload[: len(payload) // 2],
        "short_header": payload[:9],
        "smaller_size": payload[:4] + (1000).to_bytes(4, "little") + payload[8:],
        "bad_blocksize": payload[:8] + (0).to_bytes(4, "little") + payload[12:],
        "garbage": payload[:16] + bytes(len(payload) - 16),
    }[damage]
    set_blob(path, "0/c/0/1/0", _with_crc(bad))
    with Mzarr(path) as m:
        with pytest.raises(CorruptChunkError, match=r"0/c/0/1/0"):
            m[0:64, 64:96, 0:64]
        assert np.array_equal(m[0:64, 0:64, 0:64], vol[0:64, 0:64, 0:64])  # the other bricks read


def test_hostile_header_through_zarr_is_refused(tmp_path, nifti_4d_volume):
    """zarr's own pipeline (the folder form, another tool's reader path) uses the guarded codec too."""
    import zarr

    folder = Mzarr(mri(nifti_4d_volume)).save(tmp_path / "v.ome.zarr")
    chunk = folder / "0" / "c" / "0" / "0" / "0"
    payload = bytearray(guards.strip_crc32c(chunk.read_bytes()).tobytes())
    payload[4:8] = (2**31).to_bytes(4, "little")
    chunk.write_bytes(_with_crc(bytes(payload)))
    array = zarr.open_group(folder, mode="r")["0"]
    with pytest.raises(ChunkTooLargeError, match="declares 2147483648 bytes"):
        array[0:4, 0:4, 0:4]


def test_chunk_codec_reads_blosc_of_other_tools(tmp_path):
    """A plain Zarr v3 array with bytes + blosc (bitshuffle, lz4: another tool's choice) is decoded by the core's
    own chunk decoder, bit-exact."""
    import zarr
    from zarr.codecs import BloscCodec

    rng = np.random.default_rng(5)
    a = rng.integers(0, 4000, (40, 50, 60), dtype=np.uint16)
    arr = zarr.create_array(tmp_path / "plain.zarr", shape=a.shape, chunks=(16, 32, 32), dtype=a.dtype,
                            compressors=[BloscCodec(cname="lz4", clevel=3, shuffle="bitshuffle", typesize=2)])
    arr[...] = a
    codec = ChunkCodec.for_array(zarr.open_array(tmp_path / "plain.zarr", mode="r"))
    assert codec is not None and codec.kind == "blosc"
    blob = (tmp_path / "plain.zarr" / "c" / "1" / "0" / "1").read_bytes()
    assert np.array_equal(codec.decode(blob), _padded(a, (1, 0, 1)))


def _padded(a: np.ndarray, index: tuple[int, int, int], chunk=(16, 32, 32)) -> np.ndarray:
    out = np.zeros(chunk, a.dtype)
    box = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, chunk))
    part = a[box]
    out[tuple(slice(0, n) for n in part.shape)] = part
    return out


def test_salvage_fills_a_lost_brick_from_the_level_above(tmp_path, nifti_4d_volume):
    path, vol = _blosc_file(tmp_path, nifti_4d_volume)
    blob = bytearray(chunk_blobs(path)["0/c/2/1/1"])
    blob[100] ^= 0xFF
    set_blob(path, "0/c/2/1/1", bytes(blob))
    report = salvage_file(path, tmp_path / "saved.mzarr")
    with Mzarr(tmp_path / "saved.mzarr") as m:
        assert m.codec["name"] == "blosc"
        got = m[...]
    sound = np.ones(vol.shape, bool)
    sound[128:, 64:, 64:] = False
    assert np.array_equal(got[sound], vol[sound])  # every other brick bit for bit
    assert [(c.chunk, c.from_level, c.approximated_planes) for c in report.chunks] == [((2, 1, 1), 1, 150 - 128)]
    assert not report.exact


def test_optimize_says_what_to_do_with_a_blosc_volume(tmp_path, nifti_4d_volume):
    from mzarr_core import optimize

    path, _ = _blosc_file(tmp_path, nifti_4d_volume)
    before = path.read_bytes()
    with pytest.raises(MzarrValueError, match=r"stored with blosc.*--bricks slabs"):
        optimize(path, effort=4)
    assert path.read_bytes() == before


def test_a_missing_codec_module_is_not_called_damage(tmp_path, nifti_4d_volume, monkeypatch):
    """A build without imagecodecs' Blosc module (a trimmed bundle) says the software is incomplete, not the file."""
    import imagecodecs

    path, _ = _blosc_file(tmp_path, nifti_4d_volume)

    def missing(*args, **kwargs):
        raise imagecodecs.DelayedImportError("blosc")

    monkeypatch.setattr(imagecodecs, "blosc_decode", missing)
    with Mzarr(path) as m, pytest.raises(MzarrError, match="codec module is missing .*not damaged") as info:
        m[0:10, 0:10, 0:10]
    assert not isinstance(info.value, CorruptChunkError)
