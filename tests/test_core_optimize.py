"""``mzarr optimize``: lossless JPEG XL chunks re-encoded at another effort, in place, pixels bit-exact, in
transactions (an interrupted run leaves a whole, partly optimized file), the space given back to the file system."""

from __future__ import annotations

import subprocess
import sys

import imagecodecs
import numpy as np
import pytest
from conftest import assert_pyramid, chunk_blobs, smooth_array

import mzarr_core.optimizer as optimize_module
from mzarr import Mzarr
from mzarr_core import guards
from mzarr_core.errors import MzarrFormatError, MzarrValueError
from mzarr_core.optimizer import optimize
from mzarr_core.report import verify


def _mosaic() -> np.ndarray:
    """1024 x 1024 of four real photographs (scikit-image's camera, moon, coins, brick)."""
    import skimage.data

    tiles = [skimage.data.camera(), skimage.data.moon(), skimage.data.coins(), skimage.data.brick()]
    tiles = [np.pad(t[:512, :512], ((0, 512 - min(512, t.shape[0])), (0, 512 - min(512, t.shape[1]))), mode="reflect") for t in tiles]
    return np.ascontiguousarray(np.block([tiles[:2], tiles[2:]]))


def _efforts(path) -> list[int]:
    with Mzarr(path) as m:
        return [int(next(c for c in lv.storage.metadata.codecs if hasattr(c, "effort")).effort) for lv in m.levels]


def test_optimize_is_lossless_smaller_and_recorded(tmp_path):
    a = _mosaic()
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(256, 256))
    before = {k: v for k, v in chunk_blobs(path).items() if "/c/" in k}
    size = path.stat().st_size
    report = optimize(path, effort=3)
    assert report.chunks == len(before) and report.effort == 3
    assert report.payload_after < report.payload_before * 0.97, report.lines()
    assert path.stat().st_size == report.file_after < size - 0.03 * report.payload_before  # VACUUM gave it back
    with Mzarr(path) as m:
        assert_pyramid(m, a, "mean")
        assert m.codec["effort"] == 3
    assert _efforts(path) == [3] * len(_efforts(path))
    after = {k: v for k, v in chunk_blobs(path).items() if "/c/" in k}
    assert set(after) == set(before) and all(len(after[k]) <= len(before[k]) for k in before)
    with Mzarr(path) as m:
        assert verify(m).ok
    # later edits encode at the new effort and keep the pyramid right
    with Mzarr(path, "r+") as m:
        m[10:50, 10:50] = 7
    a[10:50, 10:50] = 7
    with Mzarr(path) as m:
        assert_pyramid(m, a, "mean")


@pytest.mark.parametrize("dtype,shape", [("uint16", (40, 70, 90)), ("int16", (90, 100)), ("uint8", (120, 100, 3)), ("bool", (100, 90))])
def test_optimize_every_jpegxl_dtype_bit_exact(tmp_path, dtype, shape):
    a = smooth_array(shape, dtype, seed=4)
    volume = len(shape) == 3 and shape[-1] != 3
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=tuple(min(32, n) if n != 3 else 3 for n in shape),
                         bricks="slabs" if volume else None)
    optimize(path, effort=4)
    with Mzarr(path) as m:
        assert_pyramid(m, a, "mean")
        if len(shape) == 3 and shape[-1] != 3:  # a volume: slab bricks stay slabs (one frame each) at the new effort
            assert m.codec == {"name": "jpegxl", "lossless": True, "effort": 4, "bricks": "slabs", "slab": 16,
                               "checksum": "crc32c"}
            raw = m._store.get_bytes_sync("0/c/0/0/0")
            for offset, length in guards.shard_index(raw, 2):  # 32-plane bricks: two slabs, each with its crc32c
                slab = raw[offset : offset + length]
                assert guards.append_crc32c(slab[:-4]) == slab
                assert imagecodecs.jpegxl_decode(slab[:-4]).shape == (16 * 32, 32)


def test_interrupted_optimize_leaves_a_whole_file(tmp_path, monkeypatch):
    """Ctrl+C after some batches: the batches done are kept, the one in flight is rolled back, every pixel and
    level is intact, and running optimize again finishes the job."""
    a = _mosaic()
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(64, 64))
    monkeypatch.setattr(optimize_module, "BATCH_BYTES", 4 * 64 * 64)  # 4 chunks per transaction
    calls = []

    def stop(done, total):
        calls.append(done)
        if len(calls) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimize(path, effort=3, progress=stop)
    with Mzarr(path) as m:
        assert_pyramid(m, a, "mean")
        assert verify(m).ok
    report = optimize(path, effort=3)
    assert report.chunks > 0
    with Mzarr(path) as m:
        assert_pyramid(m, a, "mean")


def test_optimize_refuses_what_it_cannot_do_losslessly(tmp_path):
    a = _mosaic()
    lossy = Mzarr(a).save(tmp_path / "lossy.mzarr", distance=1.0)
    before = lossy.read_bytes()
    with pytest.raises(MzarrValueError, match=r"lossy\).*re-encoding lossy chunks would lose quality"):
        optimize(lossy)
    assert lossy.read_bytes() == before
    floats = Mzarr(a.astype(np.float32)).save(tmp_path / "f.mzarr")
    with pytest.raises(MzarrValueError, match=r"stored with zstd"):
        optimize(floats)
    folder = Mzarr(a).save(tmp_path / "x.ome.zarr")
    with pytest.raises(MzarrFormatError, match=r"not a single-file \.mzarr"):
        optimize(folder)
    with pytest.raises(MzarrValueError, match=r"effort must be between 1 and 10"):
        optimize(lossy, effort=11)


def test_optimize_cli(tmp_path):
    path = Mzarr(_mosaic()).save(tmp_path / "x.mzarr")
    result = subprocess.run([sys.executable, "-m", "mzarr_core.cli", "optimize", "--quiet", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "re-encoded at JPEG XL effort 3" in result.stdout and "MB saved" in result.stdout
    result = subprocess.run([sys.executable, "-m", "mzarr_core.cli", "optimize", str(tmp_path / "missing.mzarr")], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "no such file" in result.stderr
