"""Slab bricks (format 4, the default for lossless 8-bit volumes; asked for with bricks="slabs"): bit-exact round trips on real and synthetic volumes of
every JPEG XL dtype, odd shapes (edge bricks, volumes thinner than a slab, a level whose z is no multiple of the slab),
edits, verify / repair and the CLI on such files, all keeping the layout."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_bit_exact, chunk_blobs, set_blob, smooth_array

from mzarr import Mzarr
from mzarr_core import guards, verify
from mzarr_core.chunk_reader import ChunkCodec
from mzarr_core.cli import main as cli_main
from mzarr_core.codecs import JpegxlSlabs, slab_layout
from mzarr_core.repair import repair_pyramid


def noisy_u16(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A smooth 12-bit-like volume with sensor noise (what CT/light-sheet data looks like to the codec)."""
    rng = np.random.default_rng(seed)
    base = smooth_array(shape, "uint16", seed=seed).astype(np.int64) // 16
    return np.clip(base + rng.normal(0, 40, shape), 0, 65535).astype(np.uint16)


def assert_slab_file(path, image: np.ndarray) -> None:
    """Every level of ``path`` is slab bricks and equals the in-memory pyramid of ``image``; z-planes read by slab."""
    want = Mzarr(image)
    with Mzarr(path) as m:
        assert m.codec["bricks"] == "slabs"
        assert np.array_equal(m[...], image) and m.dtype == image.dtype
        for level, expected in zip(m.levels, want.levels, strict=True):
            assert ChunkCodec.for_array(level.storage).kind == "slabs" and level.plane_reads_are_fast
            assert np.array_equal(level[...], expected[...]), level.index
            nz = level.shape[0]
            for z in sorted({0, nz // 2, nz - 1}):
                assert np.array_equal(level.z_plane(z), expected[z]), (level.index, z)
        assert verify(m).ok


def test_real_mr_volume_int16_round_trips(tmp_path, nifti_volume):
    """nibabel's anatomical MRI (big-endian int16, 33 x 41 x 25): offset to uint16 before the shards; 33 planes are
    3 slabs of 11."""
    image = nifti_volume.astype("<i2")
    path = Mzarr(image).save(tmp_path / "mr.mzarr", bricks="slabs")
    with Mzarr(path) as m:
        assert ChunkCodec.for_array(m.levels[0].storage).inner == (11, 41, 25)
    assert_slab_file(path, image)


@pytest.mark.parametrize("dtype", ["uint16", "uint8", "int16", "int8", "bool"])
def test_every_jpegxl_dtype_round_trips(tmp_path, dtype):
    """Synthetic volumes with noise, 100 x 130 x 90: edge bricks in every axis, a partial last slab."""
    if dtype == "bool":
        image = noisy_u16((100, 130, 90), seed=2) > 2000
    elif dtype == "uint16":
        image = noisy_u16((100, 130, 90), seed=2)
    else:
        image = smooth_array((100, 130, 90), dtype, seed=2)
    path = Mzarr(image).save(tmp_path / "v.mzarr", bricks="slabs")
    assert_slab_file(path, image)


@pytest.mark.parametrize(("shape", "shard_z", "slab"), [
    ((5, 70, 90), 5, 5),  # thinner than a slab: one slab of its thickness
    ((16, 70, 90), 16, 16),
    ((37, 64, 64), 48, 16),  # one chunk along z, 37 planes (prime): the shard rounded up to 3 whole slabs
    ((40, 64, 64), 40, 10),  # 40 planes: 4 slabs of 10
    ((130, 66, 65), 64, 16),  # edge bricks of 2 planes: slab 0 holds them, slabs 1-3 are never written
])
def test_odd_shapes(tmp_path, shape, shard_z, slab):
    image = noisy_u16(shape, seed=4)
    path = Mzarr(image).save(tmp_path / "v.mzarr", bricks="slabs")
    with Mzarr(path) as m:
        codec = ChunkCodec.for_array(m.levels[0].storage)
        assert codec.enc_shape[0] == shard_z and codec.inner[0] == slab
    assert_slab_file(path, image)
    if shape[0] == 130:  # the last brick layer: one slab written, three empty index entries
        blob = chunk_blobs(path)["0/c/2/0/0"]
        entries = guards.shard_index(blob, 4)
        assert entries[0] is not None and entries[1:] == [None, None, None]


def test_slab_layout_rule():
    axes = "zyx"
    assert slab_layout((64, 64, 64), (512, 100, 100), axes, 16) == ((64, 64, 64), 16)
    assert slab_layout((64, 64, 64), (512, 100, 100), axes, 8) == ((64, 64, 64), 8)
    assert slab_layout((7, 64, 64), (7, 100, 100), axes, 16) == ((7, 64, 64), 7)
    assert slab_layout((37, 64, 64), (37, 100, 100), axes, 16) == ((48, 64, 64), 16)
    assert slab_layout((50, 64, 64), (50, 100, 100), axes, 16) == ((50, 64, 64), 10)
    assert slab_layout((37, 64, 64), (100, 100, 100), axes, 16) == ((37, 64, 64), 1)  # a user's chunk: never grown
    assert slab_layout((1, 64, 64, 64), (2, 70, 100, 100), "czyx", 16) == ((1, 64, 64, 64), 16)


def test_edits_on_edge_and_rounded_shards_stay_bit_exact(tmp_path):
    """Edits through the rounded shard (37 planes in a 48-plane shard) and the edge bricks keep slabs, the pyramid
    and every plane exact."""
    image = noisy_u16((37, 100, 70), seed=6)
    path = Mzarr(image).save(tmp_path / "v.mzarr", bricks="slabs")
    with Mzarr(path, "r+") as m:
        m[30:37, 60:100, 50:70] = 7
        m.write_regions([((slice(0, 3), slice(0, 10), slice(0, 10)), np.uint16(65535)),
                         ((slice(20, 22), slice(90, 100), slice(0, 70)), np.arange(1400, dtype=np.uint16).reshape(2, 10, 70))])
    image[30:37, 60:100, 50:70] = 7
    image[0:3, 0:10, 0:10] = 65535
    image[20:22, 90:100, 0:70] = np.arange(1400, dtype=np.uint16).reshape(2, 10, 70)
    assert_slab_file(path, image)
    assert Mzarr(path).codec == JpegxlSlabs(checksum=True).to_json()


def test_repair_rewrites_a_damaged_slab_brick_as_slabs(tmp_path):
    image = noisy_u16((64, 256, 256), seed=8)
    path = Mzarr(image).save(tmp_path / "v.mzarr", bricks="slabs")
    good = chunk_blobs(path)["1/c/0/1/1"]
    set_blob(path, "1/c/0/1/1", good[: len(good) // 2])  # a torn brick of level 1
    with Mzarr(path, "r+") as m:
        assert not verify(m).ok
        assert repair_pyramid(m).rewritten == 1
    repaired = chunk_blobs(path)["1/c/0/1/1"]
    assert repaired == good  # rebuilt from level 0 exactly as the writer made it: the same four slabs
    assert_slab_file(path, image)


def test_cli_converts_and_verifies_slab_volumes(tmp_path, capsys):
    """`mzarr convert --bricks slabs|strip` and `mzarr verify` on the result (another Mzarr file as the source)."""
    image = noisy_u16((70, 80, 90), seed=9)
    source = Mzarr(image).save(tmp_path / "src.mzarr", bricks="strip")
    assert cli_main(["convert", str(source), str(tmp_path / "slabs.mzarr"), "--quiet", "--bricks", "slabs"]) == 0
    assert cli_main(["convert", str(source), str(tmp_path / "strip.mzarr"), "--quiet", "--bricks", "strip"]) == 0
    assert cli_main(["verify", str(tmp_path / "slabs.mzarr")]) == 0
    assert Mzarr(tmp_path / "strip.mzarr").codec["bricks"] == "strip"
    assert_slab_file(tmp_path / "slabs.mzarr", image)


def test_other_tools_sharded_jpegxl_reads_through_zarr(tmp_path):
    """An OME-Zarr volume written by plain zarr with a lone sharding codec (JPEG XL inner chunks of 16 x 32 x 32 in
    64 x 64 x 64 shards, what OME-Zarr 0.5 writers do): not Mzarr's layout, so zarr decodes it; bit-exact."""
    import imagecodecs.zarr
    import zarr

    image = noisy_u16((70, 90, 80), seed=10)
    group = zarr.open_group(tmp_path / "other.ome.zarr", mode="w", zarr_format=3)
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}]}]}
    array = group.create_array("0", shape=image.shape, dtype=image.dtype, chunks=(16, 32, 32), shards=(64, 64, 64),
                               serializer=imagecodecs.zarr.Jpegxl(lossless=True, effort=1), compressors=None,
                               dimension_names=["z", "y", "x"])
    array[...] = image
    assert ChunkCodec.for_array(zarr.open_array(tmp_path / "other.ome.zarr", path="0")) is None
    with Mzarr(tmp_path / "other.ome.zarr") as m:
        assert np.array_equal(m[...], image)
        assert np.array_equal(m.levels[0].z_plane(40), image[40])


def test_slab_shards_are_encoded_in_one_call_bit_identical_to_zarrs_sharding_codec():
    """Mzarr's whole-shard encoder writes exactly what zarr-python's own sharding codec writes (same keys, same bytes;
    empty slabs and empty shards left out), and stock zarr reads it back."""
    import zarr
    from zarr.codecs import ShardingCodec, TransposeCodec
    from zarr.storage import MemoryStore

    from mzarr_core.codecs import SlabSharding, StripJpegxl

    def stored(cls, a):
        keys: dict = {}
        serializer = StripJpegxl(lossless=True, effort=1, photometric="GRAY")
        array = zarr.create_array(MemoryStore(keys), shape=a.shape, chunks=(32, 64, 64), dtype=a.dtype,
                                  filters=[TransposeCodec(order=(0, 1, 2))], compressors=None, fill_value=0,
                                  serializer=cls(chunk_shape=(16, 64, 64), codecs=[serializer], index_location="end"))
        array[...] = a
        return keys

    rng = np.random.default_rng(3)
    for dtype in ("uint16", "uint8"):
        a = rng.integers(0, 4000 if dtype == "uint16" else 250, (70, 100, 90)).astype(dtype)
        a[:16] = 0  # an empty slab in a stored shard
        a[32:, 64:, 64:] = 0  # shards with nothing to store
        ours, zarrs = stored(SlabSharding, a), stored(ShardingCodec, a)
        assert sorted(ours) == sorted(zarrs) and len(ours) < 1 + 3 * 2 * 2
        assert all(ours[k].to_bytes() == zarrs[k].to_bytes() for k in zarrs)
        assert_bit_exact(zarr.open_array(MemoryStore(ours))[...], a)
