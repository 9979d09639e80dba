"""Decompression bombs: a chunk replaced by a small stream that declares far more than its array's chunk shape x
dtype (a 40000 x 40000 JPEG XL, thousands of frames, a zstd frame of 4 GiB) is refused with ChunkTooLargeError
before anything large is allocated; legitimate files still decode bit-exactly.

Every bomb is read in a subprocess whose address space is capped (RLIMIT_AS, a few hundred MB above what the
imports use), so an unguarded reader fails fast with MemoryError instead of eating the machine's memory; the child
also reports its peak RSS, which must stay small.

The files here are written without checksums (format 4): a crafted file can carry valid checksums, so the guards
behind them are what is tested; test_core_checksums checks that a bomb with a valid checksum is still refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import zarr
from conftest import assert_bit_exact, chunk_blobs, set_blob, smooth_array
from zarr.core.buffer.cpu import Buffer

from mzarr import Mzarr
from mzarr_core import guards, verify
from mzarr_core.errors import ChunkTooLargeError, CorruptChunkError

HEADROOM_MB = 1024  # address space the child may add after its imports: far less than any bomb decodes to
PEAK_MB = 500  # the child's peak RSS must stay below this


# -- building bombs cheaply ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def huge_jxl() -> bytes:
    """A valid 40000 x 40000 uint8 JPEG XL of zeros (~157 KiB, 1.6 GB decoded). libjxl's effort-1 lossless
    encoder streams, and np.zeros is untouched lazy memory: ~2 s and ~130 MB to build."""
    return imagecodecs.jpegxl_encode(np.zeros((40000, 40000), np.uint8), lossless=True, effort=1, photometric="GRAY")


def jxl_frames(frame: np.ndarray, n: int) -> bytes:
    """A valid ``n``-frame grey JPEG XL repeating ``frame``, spliced from 2- and 3-frame encodings (frames are
    byte-aligned and independent), so any ``n`` costs nothing to build."""
    def encode(k: int) -> bytes:
        return imagecodecs.jpegxl_encode(np.stack([frame] * k), lossless=True, effort=1, photometric="GRAY")

    two, three = encode(2), encode(3)
    size = len(three) - len(two)
    head = len(two) - 2 * size
    middle = two[head : head + size]
    assert three == two[:head] + middle * 2 + two[head + size :], "libjxl's output is not spliceable"
    return two[:head] + middle * (n - 1) + two[head + size :]


def shard(inner: list[bytes | None]) -> bytes:
    """A ``sharding_indexed`` shard of these inner chunks (None: never written), its index at the end (little-endian
    offset/length pairs + crc32c, zarr's default): how a slab brick (format 4) is stored."""
    import google_crc32c

    body, index = b"", b""
    for blob in inner:
        if blob is None:
            index += (2**64 - 1).to_bytes(8, "little") * 2
        else:
            index += len(body).to_bytes(8, "little") + len(blob).to_bytes(8, "little")
            body += blob
    return body + index + google_crc32c.value(index).to_bytes(4, "little")


def zstd_rle(total: int, *, declare: bool) -> bytes:
    """One zstd frame of ``total`` zero bytes as RLE blocks of 128 KiB (4 bytes each): 4 GiB in 128 KiB.
    ``declare`` puts the size in the frame header (single segment); otherwise only a 128 KiB window is declared."""
    block = 1 << 17
    count = -(-total // block)
    blocks = bytearray()
    for i in range(count):
        size = min(block, total - i * block)
        blocks += ((i == count - 1) | (1 << 1) | (size << 3)).to_bytes(3, "little") + b"\0"
    magic = b"\x28\xb5\x2f\xfd"
    header = bytes([0xE0]) + total.to_bytes(8, "little") if declare else bytes([0x00, 7 << 3])
    return magic + header + bytes(blocks)


# -- reading in a memory-capped child -----------------------------------------------------------------------------
_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from mzarr import Mzarr
    from mzarr_core.report import verify

    def vm_size():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))

    path, action, headroom = sys.argv[1], sys.argv[2], int(sys.argv[3]) << 20
    cap = vm_size() + headroom
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    result = {"error": None}
    try:
        with Mzarr(path) as m:
            if action == "read":
                m[...]
            elif action.startswith("z_plane:"):
                m.levels[0].z_plane(int(action.split(":")[1]))
            elif action == "verify":
                checked, problems = verify(m)
                result["problems"] = problems
    except BaseException as exc:
        result = {"error": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__], "message": str(exc)}
    # VmHWM: this process's own peak (ru_maxrss keeps the parent's peak across fork + exec, e.g. a big pytest)
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    result["peak_mb"] = hwm / 1024
    print(json.dumps(result))
    """
)


def read_capped(path: Path, action: str = "read") -> dict:
    """Run ``action`` on ``path`` in a child capped at HEADROOM_MB above its imports; its outcome and peak RSS."""
    env = {"MALLOC_ARENA_MAX": "2", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), action, str(HEADROOM_MB)],
        check=False, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0 and proc.stdout.strip(), f"child died ({proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_refused(result: dict, *patterns: str) -> None:
    assert result["error"] == "ChunkTooLargeError", result
    assert "CorruptChunkError" in result["mro"] and "MzarrError" in result["mro"]
    message = result["message"]
    assert "damaged" in message and "decompression bomb" in message, message
    for pattern in patterns:
        assert pattern in message, f"{pattern!r} not in {message!r}"
    assert result["peak_mb"] < PEAK_MB, f"peak RSS {result['peak_mb']:.0f} MB while refusing a bomb"


def grey_file(tmp_path: Path, dtype: str = "uint8", shape=(1024, 1024)) -> tuple[Path, np.ndarray]:
    a = smooth_array(shape, dtype, seed=3)
    return Mzarr(a).save(tmp_path / f"{dtype}.mzarr", checksums=False), a


# -- JPEG XL bombs ------------------------------------------------------------------------------------------------
def test_huge_jpegxl_image_is_refused(tmp_path, huge_jxl):
    """A 40000 x 40000 stream (157 KiB) in place of a 512 x 512 uint8 tile: refused from its header."""
    path, _ = grey_file(tmp_path)
    assert len(huge_jxl) < 200_000
    set_blob(path, "0/c/0/1", huge_jxl)
    result = read_capped(path)
    assert_refused(result, "40000 x 40000 pixels", "(512, 512) uint8")


def test_many_frames_jpegxl_is_refused(tmp_path):
    """4000 frames of 512 x 512 (1 GB decoded, ~340 kB stored) in place of one 512 x 512 tile."""
    path, _ = grey_file(tmp_path)
    bomb = jxl_frames(np.zeros((512, 512), np.uint8), 4000)
    assert len(bomb) < 1_000_000
    set_blob(path, "0/c/1/1", bomb)
    assert_refused(read_capped(path), "(4000, 512, 512) uint8", "4000 frames", "(512, 512) uint8")


def test_volume_brick_with_too_many_frames_is_refused(tmp_path):
    """A 64^3 brick replaced by 400000 frames of 64 x 64 (1.6 GB decoded, ~6 MB stored)."""
    vol = smooth_array((64, 128, 128), "uint8", seed=4)
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks="strip", checksums=False)
    assert "0/c/0/1/1" in chunk_blobs(path)
    set_blob(path, "0/c/0/1/1", jxl_frames(np.zeros((64, 64), np.uint8), 400_000))
    assert_refused(read_capped(path), "400000 frames", "(64, 64, 64) uint8")


@pytest.mark.parametrize("bricks", ["frames", "strip", "slabs"])
def test_z_plane_refuses_a_huge_frame(tmp_path, huge_jxl, bricks):
    """Level.z_plane decodes one frame per brick (frames), whole bricks (strip) or one slab (slabs): a 40000 x 40000
    frame is refused there too, naming the brick."""
    vol = smooth_array((64, 128, 128), "uint8", seed=4)
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks=bricks, checksums=False)
    set_blob(path, "0/c/0/1/0", shard([huge_jxl, None, None, None]) if bricks == "slabs" else huge_jxl)
    result = read_capped(path, "z_plane:0")
    frame = {"frames": "one frame of this array's chunks is (64, 64) uint8", "strip": "(64, 64, 64) uint8",
             "slabs": "(16, 64, 64) uint8"}[bricks]
    assert_refused(result, "chunk 0/c/0/1/0 ", "40000 x 40000 pixels", frame)


@pytest.mark.parametrize("action", ["read", "z_plane:40"])
def test_slab_with_too_many_frames_is_refused(tmp_path, action):
    """A slab brick (format 4) whose slab 2 is 400000 frames of 64 x 64 (1.6 GB decoded, ~6 MB stored) under a
    valid shard index: refused by the whole-brick read and by the plane read that decodes that slab alone."""
    vol = smooth_array((64, 128, 128), "uint8", seed=4)
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks="slabs", checksums=False)
    good = guards.shard_index(chunk_blobs(path)["0/c/0/1/1"], 4)
    blob = chunk_blobs(path)["0/c/0/1/1"]
    slabs = [blob[o : o + n] for o, n in good]
    slabs[2] = jxl_frames(np.zeros((64, 64), np.uint8), 400_000)
    set_blob(path, "0/c/0/1/1", shard(slabs))
    assert_refused(read_capped(path, action), "0/c/0/1/1", "400000 frames", "(16, 64, 64) uint8")


def _damaged_shards(blob: bytes) -> dict[str, bytes]:
    """One slab brick damaged in each way a shard index can be wrong."""
    entries = guards.shard_index(blob, 4)
    slabs = [blob[o : o + n] for o, n in entries]
    body = b"".join(slabs)
    index = b"".join(o.to_bytes(8, "little") + n.to_bytes(8, "little") for o, n in entries)
    outside = bytearray(shard(slabs))
    outside[len(body) + 16 : len(body) + 24] = (2**63).to_bytes(8, "little")  # slab 1 at 2^63: fix the checksum
    import google_crc32c

    outside[-4:] = google_crc32c.value(bytes(outside[len(body) : -4])).to_bytes(4, "little")
    return {
        "short": b"junk",
        "checksum": body + index + b"\0\0\0\0",
        "outside": bytes(outside),
        "truncated": shard(slabs)[len(slabs[0]) :],
        "slab swapped for garbage": shard([slabs[0], b"\xff\x0a" + bytes(200), slabs[2], slabs[3]]),
    }


@pytest.mark.parametrize("damage", ["short", "checksum", "outside", "truncated", "slab swapped for garbage"])
def test_damaged_slab_brick_is_named(tmp_path, damage):
    """A damaged or hostile shard (index short, failing its checksum, pointing outside the shard; a slab that is
    not JPEG XL) is a CorruptChunkError naming the brick, from whole-brick reads, plane reads and verify; the other
    bricks still read bit-exactly."""
    vol = smooth_array((64, 128, 128), "uint16", seed=5)
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks="slabs", checksums=False)
    set_blob(path, "0/c/0/1/1", _damaged_shards(chunk_blobs(path)["0/c/0/1/1"])[damage])
    with Mzarr(path) as m:
        with pytest.raises(CorruptChunkError, match="0/c/0/1/1"):
            m[...]
        with pytest.raises(CorruptChunkError, match="0/c/0/1/1"):
            m.levels[0].z_plane(20)
        assert_bit_exact(m[:, :64, :], vol[:, :64, :])
        assert_bit_exact(m.levels[0].z_plane(20, slice(0, 64)), vol[20, :64])
        report = verify(m)
        assert not report.ok and any("0/c/0/1/1" in str(p) for p in report.problems), report


def test_colour_stream_in_grey_array(tmp_path):
    """An RGB stream of the tile's size holds 3 values per pixel where the array stores 1."""
    path, a = grey_file(tmp_path)
    rgb = imagecodecs.jpegxl_encode(np.zeros((512, 512, 3), np.uint8), lossless=True, effort=1)
    set_blob(path, "0/c/1/0", rgb)
    with Mzarr(path) as m:
        with pytest.raises(ChunkTooLargeError, match=r"512 x 512 pixels x 3 channels of uint8.*\(512, 512\) uint8"):
            m[...]
        assert_bit_exact(m[:512, :], a[:512, :])  # the other chunks still read


def test_16bit_stream_in_uint8_array(tmp_path):
    path, a = grey_file(tmp_path)
    deep = imagecodecs.jpegxl_encode(np.zeros((512, 512), np.uint16), lossless=True, effort=1, photometric="GRAY")
    set_blob(path, "0/c/0/0", deep)
    with Mzarr(path) as m:
        with pytest.raises(ChunkTooLargeError, match=r"1 channel of uint16.*\(512, 512\) uint8"):
            m[0, 0]
        assert_bit_exact(m[512:, 512:], a[512:, 512:])


def test_legacy_zip_bomb_is_refused(tmp_path, huge_jxl):
    """Original Mzarr 0.0.x ZIPs (Zarr v2, numcodecs JPEG XL) are guarded too, per array."""
    import zipfile

    from test_core_legacy import write_legacy

    a = smooth_array((300, 260), "uint8", seed=1)
    path = write_legacy(tmp_path / "old.mzarr", {"base": a, "subsampled_2": a[::2, ::2]}, (128, 128))
    bombed = tmp_path / "bombed.mzarr"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bombed, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, huge_jxl if item.filename == "base/1.1" else src.read(item.filename))
    assert_refused(read_capped(bombed), "40000 x 40000 pixels", "(128, 128) uint8")
    with Mzarr(bombed) as m:  # the rest of the file still reads
        assert_bit_exact(m[:128, :], a[:128, :])
        assert_bit_exact(m.levels[1][...], a[::2, ::2])


# -- zstd bombs ---------------------------------------------------------------------------------------------------
def test_zstd_frame_declaring_4_gib_is_refused(tmp_path):
    """128 KiB of RLE blocks whose frame header declares 4 GiB, in place of a 1 MB float32 chunk."""
    path, _ = grey_file(tmp_path, "float32")
    bomb = zstd_rle(4 << 30, declare=True)
    assert len(bomb) < 140_000
    set_blob(path, "0/c/0/0", bomb)
    assert_refused(read_capped(path), "declares 4294967296 bytes", "(512, 512) float32")


def test_zstd_frame_without_declared_size_is_bounded(tmp_path):
    """The same 4 GiB without a declared size: the decode stops at the chunk's size."""
    path, _ = grey_file(tmp_path, "float32")
    set_blob(path, "0/c/1/0", zstd_rle(4 << 30, declare=False))
    assert_refused(read_capped(path), "decodes to more than", "(512, 512) float32")


def test_zstd_bomb_after_a_valid_frame_is_bounded(tmp_path):
    """A valid frame (the chunk's own bytes) followed by a 4 GiB frame: concatenated frames are bounded too."""
    path, _ = grey_file(tmp_path, "float32")
    good = chunk_blobs(path)["0/c/1/1"]
    set_blob(path, "0/c/1/1", good + zstd_rle(4 << 30, declare=False))
    assert_refused(read_capped(path), "decodes to more than")


def test_verify_lists_the_bomb(tmp_path):
    """'mzarr verify' reports a bomb like any damaged chunk, without blowing up."""
    path, _ = grey_file(tmp_path, "float32")
    set_blob(path, "0/c/0/1", zstd_rle(4 << 30, declare=True))
    result = read_capped(path, "verify")
    assert result["error"] is None, result
    assert [p for p in result["problems"] if "declares 4294967296 bytes" in p], result["problems"]
    assert result["peak_mb"] < PEAK_MB


def test_refusal_names_the_chunk(tmp_path):
    path, _ = grey_file(tmp_path)
    deep = imagecodecs.jpegxl_encode(np.zeros((512, 512), np.uint16), lossless=True, effort=1, photometric="GRAY")
    set_blob(path, "0/c/1/0", deep)
    with Mzarr(path) as m, pytest.raises(ChunkTooLargeError, match=r"chunk 0/c/1/0 \(level 0, chunk \(1, 0\)\) of"):
        m[...]


# -- the guards themselves ----------------------------------------------------------------------------------------
def _stream_cases() -> list[tuple[str, np.ndarray, dict]]:
    from skimage import data

    cam, astro = data.camera(), data.astronaut()
    return [
        ("grey", cam, {"photometric": "GRAY"}),
        ("rgb", astro, {}),
        ("rgba", np.dstack([astro, cam]), {}),
        ("uint16", cam.astype(np.uint16) * 257, {"photometric": "GRAY"}),
        ("12-bit", cam.astype(np.uint16) * 16, {"photometric": "GRAY", "bitspersample": 12}),
        ("float32", cam.astype(np.float32) / 255, {"photometric": "GRAY"}),
        ("frames", np.stack([cam[:64, :96]] * 5), {"photometric": "GRAY"}),
        ("lossy", cam, {"photometric": "GRAY", "lossless": False, "distance": 2.0}),
        ("container", astro[:100, :70], {"usecontainer": True}),
        ("odd size", cam[:37, :300], {"photometric": "GRAY"}),
        ("one row", cam[:1, :300], {"photometric": "GRAY"}),
    ]


@pytest.mark.parametrize("name,image,options", _stream_cases(), ids=[c[0] for c in _stream_cases()])
def test_header_parser_agrees_with_libjxl(name, image, options):
    """read_jpegxl_header gives exactly the frame shape and dtype libjxl decodes, from the first bytes only."""
    options = dict(options)
    lossless = options.pop("lossless", True)
    stream = imagecodecs.jpegxl_encode(image, lossless=lossless, effort=1, **options)
    header = guards.read_jpegxl_header(stream)
    decoded = imagecodecs.jpegxl_decode(stream)
    frame = decoded[0] if name == "frames" else decoded
    assert header is not None
    assert (header.height, header.width) == frame.shape[:2]
    assert header.samples == (frame.shape[2] if frame.ndim == 3 else 1)
    assert header.dtype == decoded.dtype
    assert guards.read_jpegxl_header(stream[:4096]) == header  # the header needs the first bytes only
    assert guards.read_jpegxl_header(b"\xff\x0a") is None  # truncated: no verdict, libjxl decides
    assert guards.read_jpegxl_header(b"junk") is None


def test_header_split_across_jxlp_boxes():
    """A container whose codestream is cut into jxlp boxes, the header straddling them, parses the same."""
    from skimage import data

    stream = imagecodecs.jpegxl_encode(data.camera()[:100, :150], lossless=True, effort=1, photometric="GRAY")

    def box(kind: bytes, payload: bytes) -> bytes:
        return (8 + len(payload)).to_bytes(4, "big") + kind + payload

    parts = [stream[:3], stream[3:7], stream[7:]]
    container = b"\x00\x00\x00\x0cJXL \r\n\x87\n" + box(b"ftyp", b"jxl \0\0\0\0jxl ")
    for i, part in enumerate(parts):
        container += box(b"jxlp", (i | (1 << 31 if i == len(parts) - 1 else 0)).to_bytes(4, "big") + part)
    assert imagecodecs.jpegxl_decode(container).shape == (100, 150)  # a valid file
    assert guards.read_jpegxl_header(container) == guards.read_jpegxl_header(stream)
    assert guards.read_jpegxl_header(stream).width == 150


def test_smaller_or_shallower_streams_decode_as_before():
    """Streams declaring less than the chunk (not bombs) decode to what they hold, as the stock codec did; the
    layer above then reports the mismatch."""
    small = imagecodecs.jpegxl_encode(np.zeros((256, 200), np.uint8), lossless=True, effort=1, photometric="GRAY")
    assert guards.decode_jpegxl(small, (512, 512), np.uint8).shape == (256, 200)
    shallow = imagecodecs.jpegxl_encode(np.ones((64, 64), np.uint8), lossless=True, effort=1, photometric="GRAY")
    got = guards.decode_jpegxl(shallow, (64, 64), np.uint16)
    assert got.dtype == np.uint8 and got.shape == (64, 64) and (got == 1).all()
    frames = jxl_frames(np.full((64, 64), 7, np.uint8), 3)
    assert guards.decode_jpegxl(frames, (4, 64, 64), np.uint8).shape == (3, 64, 64)
    assert guards.decode_jpegxl(frames, (3, 64, 64), np.uint8, index=2).shape == (64, 64)


def test_zstd_declared_size():
    payload = np.arange(1000, dtype=np.float32).tobytes()
    assert guards.zstd_declared_size(imagecodecs.zstd_encode(payload)) == 4000
    assert guards.zstd_declared_size(zstd_rle(4 << 30, declare=True)) == 4 << 30
    assert guards.zstd_declared_size(zstd_rle(1 << 20, declare=False)) is None
    skippable = b"\x50\x2a\x4d\x18" + (3).to_bytes(4, "little") + b"abc"
    assert guards.zstd_declared_size(skippable + imagecodecs.zstd_encode(payload)) == 4000
    assert guards.decode_zstd(imagecodecs.zstd_encode(payload) * 2, 8000, "x") == payload * 2
    with pytest.raises(ChunkTooLargeError, match="declares 4000 bytes"):
        guards.decode_zstd(imagecodecs.zstd_encode(payload), 3999, "x")


def test_guarded_codecs_keep_the_file_format(tmp_path):
    """Files keep the stock codec names and configurations (any reader opens them); reopened arrays decode
    through the guarded classes."""
    for dtype, name in (("uint8", "imagecodecs_jpegxl"), ("float32", "zstd")):
        path, a = grey_file(tmp_path, dtype, (100, 90))
        meta = json.loads(chunk_blobs(path)["0/zarr.json"])
        names = [c["name"] for c in meta["codecs"]]
        assert name in names and not any("uard" in n for n in names), names
        with Mzarr(path) as m:
            codecs = m.levels[0].storage.metadata.codecs
            assert any(isinstance(c, (guards.GuardedJpegxl, guards.GuardedZstd)) for c in codecs), codecs
            assert_bit_exact(m[...], a)
        stock_codecs = dict(zarr.config.get("codecs"))
        stock_codecs.update(imagecodecs_jpegxl="imagecodecs.zarr.Jpegxl", zstd="zarr.codecs.zstd.ZstdCodec")
        blobs = {k: Buffer.from_bytes(v) for k, v in chunk_blobs(path).items()}
        with zarr.config.set({"codecs": stock_codecs}):
            stock = zarr.open_array(zarr.storage.MemoryStore(blobs), path="0", mode="r")
            assert not any(isinstance(c, (guards.GuardedJpegxl, guards.GuardedZstd)) for c in stock.metadata.codecs)
            assert_bit_exact(stock[...], a)


@pytest.mark.parametrize(
    "dtype,shape,kwargs",
    [
        ("uint8", (700, 600), {}),
        ("uint16", (300, 520), {}),
        ("int16", (300, 520), {}),
        ("bool", (300, 520), {}),
        ("uint8", (300, 520, 3), {}),
        ("uint16", (70, 90, 80), {}),
        ("int8", (70, 90, 80), {}),
        ("float32", (600, 530), {}),
        ("float64", (40, 50, 60), {}),
        ("uint8", (700, 600), {"quality": 90}),
    ],
)
def test_legitimate_files_still_round_trip(tmp_path, dtype, shape, kwargs):
    a = smooth_array(shape, dtype, seed=7)
    path = Mzarr(a).save(tmp_path / "ok.mzarr", checksums=False, **kwargs)
    with Mzarr(path) as m:
        got = m[...]
        if kwargs:
            assert got.shape == a.shape and got.dtype == a.dtype
            assert np.abs(got.astype(float) - a).mean() < 2
        else:
            assert_bit_exact(got, a, f"{dtype} {shape}")
        if len(shape) == 3 and shape[-1] != 3:  # a volume
            z = shape[0] // 2
            assert_bit_exact(m.levels[0].z_plane(z), a[z], "z_plane")
        for level in m.levels[1:]:
            level[...]  # coarser levels decode too


def test_refused_chunk_is_a_corrupt_chunk(tmp_path):
    """ChunkTooLargeError is a CorruptChunkError: code catching damaged chunks catches bombs."""
    assert issubclass(ChunkTooLargeError, CorruptChunkError)
    path, _ = grey_file(tmp_path, "float32", (100, 90))
    set_blob(path, "0/c/0/0", zstd_rle(1 << 30, declare=True))
    with Mzarr(path) as m, pytest.raises(CorruptChunkError, match=r"declares 1073741824 bytes .*\(100, 90\) float32"):
        m[...]
