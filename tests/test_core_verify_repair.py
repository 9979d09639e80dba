"""``verify`` checks every pyramid level against the level below downsampled by the file's rule (bit-exact when
lossless, within a tolerance when lossy) and names the chunks that disagree; ``repair_pyramid`` rebuilds the levels
from level 0 in one transaction, writing only the chunks that change."""

from __future__ import annotations

import itertools
import math
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from conftest import (
    assert_bit_exact,
    assert_pyramid,
    chunk_blobs,
    extreme_array,
    set_blob,
    smooth_array,
)

import mzarr_core.repair as repair_module
from mzarr import Mzarr
from mzarr_core.errors import (
    CorruptChunkError,
    MzarrFormatError,
    MzarrReadOnlyError,
    MzarrValueError,
)
from mzarr_core.repair import (
    LOSSY_UNCHECKED_DISTANCE,
    RepairReport,
    lossy_tolerance,
    repair_pyramid,
)
from mzarr_core.report import VerifyReport, verify


# -- helpers -----------------------------------------------------------------------------------------------------
def tear(path: Path, region: tuple[slice, ...], change) -> np.ndarray:
    """Write ``change(old)`` into ``region`` of level 0 directly, bypassing the pyramid update (a torn edit), in one
    transaction; return the new level 0."""
    with Mzarr(path, "r+") as m:
        lv = m.levels[0]
        with m._lock.writing(), m._transaction():
            new = np.asarray(change(lv[region])).astype(lv.dtype)
            lv.storage[tuple(region[p] for p in lv.perm)] = np.transpose(new, lv.perm)
        return m.levels[0][...]


def plus(offset):
    """A change adding ``offset`` (clipped to the dtype's range for integers)."""

    def change(old: np.ndarray) -> np.ndarray:
        if old.dtype.kind in "ui":
            info = np.iinfo(old.dtype)
            return np.clip(old.astype(np.int64) + offset, info.min, info.max)
        return old + old.dtype.type(offset)

    return change


def level_keys(path: Path, level: int) -> dict[str, bytes]:
    return {k: v for k, v in chunk_blobs(path).items() if k.startswith(f"{level}/c/")}


def assert_levels_equal_fresh_save(path: Path, tmp_path: Path, **save_options) -> None:
    """Every level of ``path`` equals (bit-exact) the level of a fresh save of its level 0 with the same options."""
    with Mzarr(path) as m:
        fresh = Mzarr(m).save(tmp_path / "fresh.mzarr", chunks=m.chunks, levels=len(m.levels), downsample=m.downsample_method, **save_options)
        with Mzarr(fresh) as f:
            assert [lv.shape for lv in f.levels] == [lv.shape for lv in m.levels]
            for a, b in zip(m.levels, f.levels):
                assert_bit_exact(a[...], b[...], f"level {a.index}")


def total_chunks(path: Path, from_level: int = 0) -> int:
    with Mzarr(path) as m:
        return sum(math.prod(lv.chunk_grid) for lv in m.levels[from_level:])


CAMERA_TEAR = (slice(100, 164), slice(300, 364))  # level 1: [50:82, 150:182] -> chunk (0, 1) of 128 x 128 chunks


@pytest.fixture
def camera_file(tmp_path) -> Path:
    """camera, lossless, 128 x 128 chunks, 3 levels (16 + 4 + 1 chunks)."""
    return Mzarr(skimage.data.camera()).save(tmp_path / "cam.mzarr", chunks=(128, 128), levels=3)


# -- healthy files -----------------------------------------------------------------------------------------------
def _kinds() -> dict:
    coins = skimage.data.coins()
    labels = (coins > 100).astype(np.uint16) * 7 + (coins > 160).astype(np.uint16) * 5
    floats = smooth_array((150, 170), "float32", seed=3)
    floats[10:13, 20:24] = np.nan
    floats[40, 50] = np.inf
    return {
        "grey-mean": (skimage.data.camera(), {}, {"chunks": (128, 128)}),
        "rgb": (skimage.data.astronaut(), {}, {"chunks": (128, 128, 3)}),
        "labels-mode": (labels, {"is_label": True}, {"chunks": (96, 96)}),
        "nearest": (skimage.data.moon(), {}, {"chunks": (128, 128), "downsample": "nearest"}),
        "odd-shape": (smooth_array((301, 203), "uint8", seed=4), {}, {"chunks": (64, 64)}),
        "volume": (smooth_array((70, 90, 110), "uint16", seed=5), {}, {"chunks": (32, 32, 32)}),
        "float32": (floats, {}, {"chunks": (64, 64)}),
        "int16": (smooth_array((130, 150), "int16", seed=6), {}, {"chunks": (64, 64)}),
        "bool": (skimage.data.horse() > 0, {}, {"chunks": (128, 128)}),
        "extreme-float64": (extreme_array((90, 70), "float64"), {}, {"chunks": (32, 32)}),
        "channels-czyx": (smooth_array((2, 20, 40, 50), "uint16", seed=7), {"axes": "czyx"}, {"chunks": (1, 16, 16, 16)}),
    }


KINDS = _kinds()


@pytest.mark.parametrize("kind", list(KINDS))
def test_healthy_file_verifies_and_repair_writes_nothing(tmp_path, kind):
    data, init, save = KINDS[kind]
    path = Mzarr(data, **init).save(tmp_path / "x.mzarr", **save)
    with Mzarr(path) as m:
        assert len(m.levels) >= 2
        report = verify(m)
    assert isinstance(report, VerifyReport)
    assert report.ok and report.pyramid_checked, report.problems
    assert report.chunks_checked == total_chunks(path)
    assert report.chunks_compared == total_chunks(path, from_level=1)
    assert "bit-exact" in report.pyramid_note
    before = chunk_blobs(path)
    with Mzarr(path, "r+") as m:
        result = repair_pyramid(m)
    assert isinstance(result, RepairReport) and result.rewritten == 0 and result.atomic
    assert chunk_blobs(path) == before


def test_verify_still_unpacks_as_checked_and_problems(camera_file):
    with Mzarr(camera_file) as m:
        checked, problems = verify(m)
    assert (checked, problems) == (21, [])


# -- torn edits ----------------------------------------------------------------------------------------------------
def test_torn_edit_is_named_and_repair_rebuilds_the_pyramid(camera_file, tmp_path):
    tear(camera_file, CAMERA_TEAR, plus(40))
    with Mzarr(camera_file) as m:
        report = verify(m)
    assert not report.ok and report.pyramid_checked and not report.damaged
    assert report.disagreement_count == 1
    (d,) = report.disagreements
    assert (d.level, d.chunk, d.key) == (1, (0, 1), "1/c/0/1")
    assert str(d).startswith("level 1 chunk 1/c/0/1 disagrees with level 0: ")
    assert "pixels differ (max |diff| " in str(d)
    assert 0 < d.pixels <= 32 * 32 and 0 < d.max_diff <= 40

    untouched = {k: v for k, v in chunk_blobs(camera_file).items() if k not in ("1/c/0/1", "2/c/0/0")}
    calls = []
    with Mzarr(camera_file, "r+") as m:
        result = repair_pyramid(m, lambda done, total: calls.append((done, total)))
    assert [(lv.level, lv.rewritten) for lv in result.levels] == [(0, 0), (1, 1), (2, 1)]
    assert result.rewritten == 2 and result.atomic
    assert calls[-1] == (21, 21) and all(a <= b for (a, _), (b, _) in itertools.pairwise(calls))
    after = chunk_blobs(camera_file)
    assert {k: v for k, v in after.items() if k in untouched} == untouched  # only the two chunks were written
    with Mzarr(camera_file) as m:
        assert verify(m).ok
    assert_levels_equal_fresh_save(camera_file, tmp_path)


def test_chunk_copied_from_another_file_is_found(tmp_path):
    """A level-0 chunk's bytes replaced by another file's (same geometry): level 1 above it disagrees."""
    a = Mzarr(skimage.data.camera()).save(tmp_path / "a.mzarr", chunks=(128, 128), levels=3)
    b = Mzarr(skimage.data.moon()).save(tmp_path / "b.mzarr", chunks=(128, 128), levels=3)
    set_blob(a, "0/c/2/3", chunk_blobs(b)["0/c/2/3"])
    with Mzarr(a) as m:
        report = verify(m)
    assert [d.key for d in report.disagreements] == ["1/c/1/1"]
    with Mzarr(a, "r+") as m:
        assert repair_pyramid(m).rewritten == 2
    with Mzarr(a) as m:
        assert verify(m).ok
        assert_bit_exact(m[256:384, 384:512], skimage.data.moon()[256:384, 384:512], "copied chunk")
    assert_levels_equal_fresh_save(a, tmp_path)


TEARS = {
    "grey-mean": ((slice(100, 164), slice(300, 364)), plus(40)),
    "rgb": ((slice(200, 264), slice(10, 74), slice(None)), plus(40)),
    "labels-mode": ((slice(150, 230), slice(100, 180)), lambda old: np.full_like(old, 99)),
    "nearest": ((slice(61, 99), slice(37, 71)), plus(-30)),
    "odd-shape": ((slice(250, 301), slice(150, 203)), plus(25)),  # the odd bottom-right edge
    "volume": ((slice(10, 40), slice(20, 50), slice(30, 60)), plus(1000)),
    "float32": ((slice(0, 30), slice(10, 40)), plus(1.5)),
    "int16": ((slice(64, 100), slice(0, 64)), plus(-500)),
    "bool": ((slice(100, 200), slice(100, 200)), lambda old: ~old),
    "extreme-float64": ((slice(30, 60), slice(30, 60)), plus(-2.25)),
    "channels-czyx": ((slice(1, 2), slice(0, 20), slice(8, 24), slice(8, 24)), plus(300)),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_torn_file_is_found_and_repaired_bit_exact(tmp_path, kind):
    data, init, save = KINDS[kind]
    path = Mzarr(data, **init).save(tmp_path / "x.mzarr", **save)
    region, change = TEARS[kind]
    level0 = tear(path, region, change)
    with Mzarr(path) as m:
        report = verify(m)
        method, axes = m.downsample_method, m.axes
    assert report.pyramid_checked and report.disagreement_count >= 1 and not report.ok
    assert all(d.level == 1 for d in report.disagreements)  # the levels above level 1 still agree with level 1
    with Mzarr(path, "r+") as m:
        result = repair_pyramid(m)
    assert result.levels[1].rewritten == report.disagreement_count
    with Mzarr(path) as m:
        assert verify(m).ok
        assert_pyramid(m, level0, method)  # every level = the reference pyramid of the torn level 0
        assert m.axes == axes
    assert_levels_equal_fresh_save(path, tmp_path)


def test_damaged_pyramid_chunk_is_reported_not_compared_and_repaired(camera_file, tmp_path):
    set_blob(camera_file, "1/c/1/1", b"\x00garbage" * 10)
    with Mzarr(camera_file) as m:
        report = verify(m)
    assert len(report.damaged) == 1 and "chunk 1/c/1/1" in report.damaged[0]
    assert report.disagreement_count == 0  # no false disagreement around the damaged chunk
    assert report.chunks_not_compared == 1  # level 2's only chunk sits on it
    assert report.chunks_compared == 4 + 1 - 1 - 1
    with Mzarr(camera_file, "r+") as m:
        result = repair_pyramid(m)
    assert result.levels[1].rewritten == 1 and result.levels[1].damaged == 1 and result.levels[2].rewritten == 0
    with Mzarr(camera_file) as m:
        assert verify(m).ok
    assert_levels_equal_fresh_save(camera_file, tmp_path)


# -- bounded memory: many superblocks and passes give the same answer ------------------------------------------
@pytest.mark.parametrize("budget", [64 * 2**20, 128 * 128 * 4, 1])
def test_small_block_budget_same_result(camera_file, tmp_path, monkeypatch, budget):
    monkeypatch.setattr(repair_module, "BLOCK_BUDGET", budget)
    tear(camera_file, CAMERA_TEAR, plus(40))
    tear(camera_file, (slice(400, 512), slice(0, 30)), plus(-20))
    calls = []
    with Mzarr(camera_file) as m:
        report = verify(m, lambda done, total: calls.append((done, total)))
    assert [d.key for d in report.disagreements] == ["1/c/0/1", "1/c/1/0"]
    assert report.chunks_checked == 21 and report.chunks_compared == 5
    assert calls[-1][0] == calls[-1][1] and all(a <= b for (a, _), (b, _) in itertools.pairwise(calls))
    with Mzarr(camera_file, "r+") as m:
        assert repair_pyramid(m).rewritten == 3
    with Mzarr(camera_file) as m:
        assert verify(m).ok
    assert_levels_equal_fresh_save(camera_file, tmp_path)


def test_many_disagreements_are_counted_and_the_first_listed(tmp_path, monkeypatch):
    monkeypatch.setattr(repair_module, "MAX_KEPT", 10)
    path = Mzarr(smooth_array((512, 512), "uint8")).save(tmp_path / "s.mzarr", chunks=(32, 32), levels=2)
    tear(path, (slice(0, 512), slice(0, 512)), lambda old: 255 - old)
    with Mzarr(path) as m:
        report = verify(m)
    assert report.disagreement_count == 8 * 8 and len(report.disagreements) == 10
    assert [d.key for d in report.disagreements[:3]] == ["1/c/0/0", "1/c/0/1", "1/c/0/2"]
    assert report.problems[-1] == "... and 54 more disagreeing chunks"


# -- lossy files -------------------------------------------------------------------------------------------------
LOSSY_TEAR = (slice(160, 224), slice(160, 224))  # level 1: [80:112, 80:112], in chunk (0, 0)


def _lossy_tear(old: np.ndarray) -> np.ndarray:
    """+40 (or -40 where the block is bright) on every pixel and channel: a real edit without the pyramid update."""
    return plus(40 if old.mean() < 128 else -40)(old)


@pytest.mark.parametrize("distance", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("name", ["camera", "astronaut", "coins"])
def test_lossy_honest_file_passes_and_a_torn_edit_is_caught(tmp_path, name, distance):
    data = getattr(skimage.data, name)()
    path = Mzarr(data).save(tmp_path / "l.mzarr", distance=distance, chunks=(128, 128) + data.shape[2:])
    with Mzarr(path) as m:
        tol = lossy_tolerance(m)
        assert tol == pytest.approx(4 + distance)
        report = verify(m)
    assert report.ok and report.pyramid_checked, report.problems
    assert "lossy tolerance" in report.pyramid_note
    with Mzarr(path, "r+") as m:
        assert repair_pyramid(m).rewritten == 0  # a healthy lossy file is not re-encoded
    region = LOSSY_TEAR + (slice(None),) * (data.ndim - 2)
    tear(path, region, _lossy_tear)
    with Mzarr(path) as m:
        report = verify(m)
    assert [d.key for d in report.disagreements] == ["1/c/0/0" if data.ndim == 2 else "1/c/0/0/0"]
    (d,) = report.disagreements
    assert d.tile_offset > 20 and d.tolerance == pytest.approx(tol)
    assert "more than the lossy tolerance" in str(d)
    with Mzarr(path, "r+") as m:
        result = repair_pyramid(m)
    assert result.levels[1].rewritten == 1
    with Mzarr(path) as m:
        assert verify(m).ok


@pytest.mark.parametrize("distance", [1.0, 3.0])
def test_lossy_file_after_many_edits_still_passes(tmp_path, distance):
    """Each edit re-encodes whole chunks of level 0 and of the pyramid: the generation loss stays within tolerance."""
    data = skimage.data.astronaut()
    path = Mzarr(data).save(tmp_path / "l.mzarr", distance=distance, chunks=(128, 128, 3))
    rng = np.random.default_rng(1)
    with Mzarr(path, "r+") as m:
        for _ in range(40):
            y, x = rng.integers(0, 450, 2)
            m[y : y + 60, x : x + 60] = plus(int(rng.integers(-20, 20)))(m[y : y + 60, x : x + 60])
    with Mzarr(path) as m:
        report = verify(m)
    assert report.ok, report.problems


def test_lossy_file_at_large_distance_is_decoded_but_not_compared(tmp_path):
    path = Mzarr(skimage.data.camera()).save(tmp_path / "l.mzarr", distance=LOSSY_UNCHECKED_DISTANCE, chunks=(128, 128))
    tear(path, LOSSY_TEAR, _lossy_tear)
    with Mzarr(path) as m:
        report = verify(m)
    assert report.ok and not report.pyramid_checked and report.chunks_checked == 21
    assert report.pyramid_note.startswith("pyramid not checked: it is lossy at distance 10")
    with Mzarr(path, "r+") as m:  # repair still rebuilds what is clearly off
        assert repair_pyramid(m).levels[1].rewritten == 1


# -- what cannot be checked or repaired --------------------------------------------------------------------------
def _legacy(tmp_path: Path) -> Path:
    from test_core_legacy import write_legacy

    a = np.ascontiguousarray(skimage.data.camera()[:300, :260])
    return write_legacy(tmp_path / "old.mzarr", {"base": a, "subsampled_2": a[::2, ::2]}, (128, 128))


def _foreign(tmp_path: Path) -> Path:
    import zarr

    a = smooth_array((40, 60), "uint16", seed=5)
    root = zarr.open_group(tmp_path / "foreign.zarr", mode="w", zarr_format=3)
    for i, data in enumerate([a, a[::2, ::2]]):
        root.create_array(f"s{i}", shape=data.shape, dtype=data.dtype, chunks=(16, 16))[...] = data
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{
            "axes": [{"name": n, "type": "space"} for n in "yx"],
            "datasets": [
                {"path": f"s{i}", "coordinateTransformations": [{"type": "scale", "scale": [2.0**i, 2.0**i]}]}
                for i in range(2)
            ],
        }],
    }
    return tmp_path / "foreign.zarr"


def test_legacy_zip_is_decoded_pyramid_not_checked_and_repair_refused(tmp_path):
    path = _legacy(tmp_path)
    with Mzarr(path) as m:
        report = verify(m)
        assert report.ok and not report.pyramid_checked
        assert report.chunks_checked == sum(math.prod(lv.chunk_grid) for lv in m.levels) == 9 + 4
        assert report.pyramid_note == (
            "pyramid not checked: it is an Mzarr 0.0.x ZIP file, whose pyramid was built by a Gaussian or subsampling rule"
        )
        with pytest.raises(MzarrFormatError, match="0.0.x ZIP .* Convert it"):
            repair_pyramid(m)


def test_foreign_ome_zarr_pyramid_not_checked_and_repair_refused(tmp_path):
    path = _foreign(tmp_path)
    with Mzarr(path) as m:
        report = verify(m)
    assert report.ok and not report.pyramid_checked
    assert "another tool" in report.pyramid_note
    with Mzarr(path, "r+") as m, pytest.raises(MzarrFormatError, match="another tool"):
        repair_pyramid(m)


def test_repair_refuses_read_only_and_in_memory(camera_file):
    with Mzarr(camera_file) as m, pytest.raises(MzarrReadOnlyError, match="read-only"):
        repair_pyramid(m)
    with pytest.raises(MzarrValueError, match="in-memory"):
        repair_pyramid(Mzarr(skimage.data.camera()))
    assert verify(Mzarr(skimage.data.camera())).ok  # in memory: the computed pyramid is checked


def test_repair_refuses_damaged_level_0_and_changes_nothing(camera_file, monkeypatch):
    monkeypatch.setattr(repair_module, "BLOCK_BUDGET", 128 * 128 * 4)  # many blocks: the tear is fixed first
    tear(camera_file, CAMERA_TEAR, plus(40))
    set_blob(camera_file, "0/c/3/3", b"\x00garbage" * 10)  # in a later block than the tear
    before = chunk_blobs(camera_file)
    with Mzarr(camera_file, "r+") as m, pytest.raises(CorruptChunkError, match="restore the file from a backup"):
        repair_pyramid(m)
    assert chunk_blobs(camera_file) == before  # rolled back: the torn chunk was not rewritten either


def test_single_level_file(tmp_path):
    path = Mzarr(skimage.data.camera()).save(tmp_path / "one.mzarr")
    with Mzarr(path) as m:
        report = verify(m)
    assert report.ok and not report.pyramid_checked and report.chunks_checked == 1
    assert report.pyramid_note == "pyramid not checked: the image has a single level"


def test_folder_written_by_mzarr_is_checked_and_repaired(tmp_path):
    data = skimage.data.camera()
    path = Mzarr(data).save(tmp_path / "cam.ome.zarr", chunks=(128, 128), levels=3)
    tear(path, CAMERA_TEAR, plus(40))
    with Mzarr(path) as m:
        assert [d.key for d in verify(m).disagreements] == ["1/c/0/1"]
    with Mzarr(path, "r+") as m:
        result = repair_pyramid(m)
    assert result.rewritten == 2 and not result.atomic
    with Mzarr(path) as m:
        assert verify(m).ok


# -- one transaction -----------------------------------------------------------------------------------------------
def test_failure_midway_rolls_everything_back(camera_file, monkeypatch):
    monkeypatch.setattr(repair_module, "BLOCK_BUDGET", 128 * 128 * 4)
    tear(camera_file, CAMERA_TEAR, plus(40))
    tear(camera_file, (slice(400, 512), slice(0, 30)), plus(-20))
    before = chunk_blobs(camera_file)

    def progress(done, total):
        if done > total // 2:
            raise RuntimeError("stop here")

    with Mzarr(camera_file, "r+") as m, pytest.raises(RuntimeError, match="stop here"):
        repair_pyramid(m, progress)
    assert chunk_blobs(camera_file) == before


def test_kill_9_during_repair_leaves_the_old_state(camera_file):
    """A process killed (-9) after repair wrote some chunks: the file reopens in its torn, untouched state."""
    tear(camera_file, CAMERA_TEAR, plus(40))
    tear(camera_file, (slice(400, 512), slice(0, 30)), plus(-20))
    before = chunk_blobs(camera_file)
    code = textwrap.dedent(
        """
        import os, signal, sys
        import mzarr_core.repair as r
        from mzarr import Mzarr
        r.BLOCK_BUDGET = 128 * 128 * 4
        m = Mzarr(sys.argv[1], "r+")
        def progress(done, total):
            if done > total // 2:
                os.kill(os.getpid(), signal.SIGKILL)
        r.repair_pyramid(m, progress)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code, str(camera_file)], check=False, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Mzarr(camera_file) as m:  # opening rolls back the hot journal
        report = verify(m)
    assert [d.key for d in report.disagreements] == ["1/c/0/1", "1/c/1/0"]
    assert chunk_blobs(camera_file) == before
    with Mzarr(camera_file, "r+") as m:  # and it can be repaired now
        assert repair_pyramid(m).rewritten == 3


# -- concurrent writer -------------------------------------------------------------------------------------------
def test_verify_during_concurrent_edits_sees_no_false_disagreement(camera_file, monkeypatch):
    """Each superblock is read in one snapshot: edits committed meanwhile (level 0 + pyramid together) never look
    like a torn pyramid."""
    import threading

    monkeypatch.setattr(repair_module, "BLOCK_BUDGET", 128 * 128 * 4)
    stop = threading.Event()

    def edit():
        rng = np.random.default_rng(0)
        with Mzarr(camera_file, "r+") as w:
            while not stop.is_set():
                y, x = rng.integers(0, 450, 2)
                w[y : y + 60, x : x + 60] = rng.integers(0, 255, (60, 60), dtype=np.uint8)

    thread = threading.Thread(target=edit)
    thread.start()
    try:
        for _ in range(5):
            with Mzarr(camera_file) as m:
                report = verify(m)
            assert report.ok, report.problems
    finally:
        stop.set()
        thread.join()


def test_level_geometry_that_breaks_the_rule_is_named():
    """Levels must halve each spatial axis (odd sizes round up) or keep it; anything else is a structure problem
    (the file's metadata check refuses most such files at open already)."""
    from mzarr_core.level import Level
    from mzarr_core.repair import level_link

    def level(i, shape, factor, axes="yx"):
        return Level(i, np.zeros(shape, np.uint8), tuple(range(len(shape))), axes, shape, factor)

    base = level(0, (11, 9), (1, 1))
    assert level_link(base, level(1, (6, 5), (2, 2))) == (True, True)
    assert level_link(base, level(1, (11, 5), (1, 2))) == (False, True)
    assert "gives (6, 5)" in level_link(base, level(1, (5, 4), (2, 2)))
    assert "must halve" in level_link(base, level(1, (4, 3), (3, 3)))
    assert "same factors" in level_link(base, level(1, (11, 9), (1, 1)))
    rgb = Level(0, np.zeros((3, 11, 9), np.uint8), (2, 0, 1), "yxc", (3, 11, 9), (1, 1, 1))
    assert level_link(rgb, Level(1, np.zeros((3, 6, 5), np.uint8), (2, 0, 1), "yxc", (3, 6, 5), (1, 2, 2))) == (True, True, False)


def test_label_pyramids_are_verified_and_repaired(tmp_path, capsys):
    """A label image's pyramid is checked by the mode rule: a torn edit of its level 0 (the levels above left stale)
    is named with the label image's name, and repair rebuilds it in the same transaction as the image's."""
    from skimage.measure import label as connected

    from mzarr_core.cli import main
    from mzarr_core.pyramid import downsample

    coins = skimage.data.coins()
    seg = connected(coins > 110).astype(np.uint16)
    path = Mzarr(coins).save(tmp_path / "coins.mzarr", chunks=(128, 128))
    with Mzarr(path, "r+") as m:
        m.create_labels("cells", seg)
    with Mzarr(path) as m:
        report = verify(m)
        assert report.ok and set(report.labels) == {"cells"} and report.labels["cells"].chunks_compared > 0
    with Mzarr(path, "r+") as m:  # a torn label edit: level 0 only
        lv = m.label("cells").levels[0]
        with m._lock.writing(), m._transaction():
            lv.storage[10:60, 20:90] = 4242
    with Mzarr(path) as m:
        report = verify(m)
        assert not report.ok and report.labels["cells"].disagreement_count > 0 and report.disagreement_count == 0
        assert any(p.startswith("label image 'cells': level 1 chunk") for p in report.problems)
    assert main(["verify", str(path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "label image 'cells': level 1 chunk" in out and "LABELS" not in out  # one wording, as in repair's lines
    assert any(line.startswith("label image 'cells': ") and "chunks checked" in line for line in out.splitlines())
    with Mzarr(path, "r+") as m:
        rep = repair_pyramid(m)
        assert rep.labels["cells"][1].rewritten > 0 and rep.rewritten == sum(lv.rewritten for lv in rep.labels["cells"])
        assert any(line.startswith("label image 'cells' level 1:") for line in rep.lines())
    with Mzarr(path) as m:
        assert verify(m).ok
        lab = m.label("cells")
        want = seg.copy()
        want[10:60, 20:90] = 4242
        assert_bit_exact(lab.levels[0][...], want)
        assert_bit_exact(lab.levels[1][...], downsample(want, (True, True), "mode"))


# -- what a repair replaces is kept --------------------------------------------------------------------------------
def test_repair_keeps_the_chunks_it_replaces_and_undo_puts_them_back(tmp_path, capsys):
    """A format-4 file (no checksums) whose level 0 changed on disk looks like a stale pyramid: the repair rewrites
    the coarser chunks, but their old bytes (the only intact copy of that region) go to a ZIP beside the file first,
    and ``mzarr repair --undo`` restores the file byte for byte."""
    import zipfile

    from mzarr_core.cli import main as cli_main

    path = Mzarr(skimage.data.camera()).save(tmp_path / "cam.mzarr", chunks=(128, 128), levels=3, checksums=False)
    coarse_before = {k: v for k, v in chunk_blobs(path).items() if k[0] in "12" and "/c/" in k}
    tear(path, CAMERA_TEAR, plus(40))  # level 0 changed, pyramid not
    torn = chunk_blobs(path)
    with Mzarr(path, "r+") as m:
        report = repair_pyramid(m)
    kept = Path(report.kept)
    assert kept.parent == tmp_path and kept.name.startswith("cam.mzarr.replaced-") and kept.suffix == ".zip"
    with zipfile.ZipFile(kept) as z:
        names = sorted(n for n in z.namelist() if n != "manifest.json")
        assert names == ["1/c/0/1", "2/c/0/0"]
        assert all(z.read(n) == coarse_before[n] for n in names)  # exactly what was there before the repair
    assert any("mzarr repair --undo" in line for line in report.lines())
    assert chunk_blobs(path) != torn
    assert cli_main(["repair", str(path), "--undo", str(kept)]) == 0
    assert "put back 2 chunk(s)" in capsys.readouterr().out
    assert chunk_blobs(path) == torn
    with Mzarr(path) as m:
        assert not verify(m).ok  # the torn state again, as it was before the repair


def test_repair_with_nothing_to_replace_or_failing_leaves_no_zip(camera_file, monkeypatch):
    with Mzarr(camera_file, "r+") as m:
        assert repair_pyramid(m).kept is None
    tear(camera_file, CAMERA_TEAR, plus(40))
    tear(camera_file, (slice(400, 512), slice(0, 30)), plus(-20))
    monkeypatch.setattr(repair_module, "BLOCK_BUDGET", 128 * 128 * 4)

    def progress(done, total):
        if done > total // 2:
            raise RuntimeError("stop here")

    with Mzarr(camera_file, "r+") as m, pytest.raises(RuntimeError, match="stop here"):
        repair_pyramid(m, progress)
    with Mzarr(camera_file, "r+") as m:
        assert repair_pyramid(m, keep_replaced=False).kept is None and m.levels  # --no-keep
    assert sorted(p.name for p in camera_file.parent.iterdir()) == ["cam.mzarr"]


def test_undo_refuses_what_a_repair_did_not_keep(camera_file, tmp_path):
    import json
    import zipfile

    from mzarr_core.replaced import restore_replaced

    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("1/c/0/0", b"junk")
    elsewhere = tmp_path / "elsewhere.zip"
    with zipfile.ZipFile(elsewhere, "w") as z:
        z.writestr("manifest.json", json.dumps({"kind": "mzarr-replaced-chunks", "file": "x.mzarr", "absent": []}))
    before = chunk_blobs(camera_file)
    with Mzarr(camera_file, "r+") as m:
        with pytest.raises(MzarrFormatError, match="manifest"):
            restore_replaced(m, other)
        with pytest.raises(MzarrValueError, match="x.mzarr"):
            restore_replaced(m, elsewhere)
        with pytest.raises(MzarrFormatError, match="cannot be read"):
            restore_replaced(m, camera_file)
    assert chunk_blobs(camera_file) == before


def test_a_chunk_not_stored_under_a_disagreement_is_named(tmp_path, capsys):
    """A level-0 chunk missing from the file (a deleted row) reads as the fill value while the level above still
    holds the data: verify names it (cleared, or lost) besides the disagreement, and says how to recover it; a
    repair rebuilds the overviews but keeps what it replaced and says so; salvage recovers it from level 1."""
    import sqlite3

    from mzarr_core.cli import main as cli_main

    path = Mzarr(skimage.data.camera()).save(tmp_path / "cam.mzarr", chunks=(128, 128), levels=3)
    conn = sqlite3.connect(path)
    assert conn.execute("DELETE FROM zarr WHERE key='0/c/1/2'").rowcount == 1
    conn.commit()
    conn.close()
    with Mzarr(path) as m:
        report = verify(m)
    assert not report.ok and report.disagreement_count == 1 and report.disagreements[0].key == "1/c/0/1"
    assert len(report.missing) == 1 and "0/c/1/2" in report.missing[0] and "lost" in report.missing[0]
    assert cli_main(["verify", str(path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "MISSING: chunk 0/c/1/2" in out and f"'mzarr salvage {path} NEW.mzarr' recovers them" in out
    with Mzarr(path) as m:
        salvaged = m.salvage(tmp_path / "saved.mzarr")
    assert [c.chunk for c in salvaged.chunks] == [(1, 2)] and salvaged.chunks[0].lost
    with Mzarr(path, "r+") as m:
        result = repair_pyramid(m)
    assert result.kept and "0/c/1/2" in result.missing[0]
    assert any("mzarr salvage" in line for line in result.lines())
    empty = Mzarr(np.zeros((512, 512), np.uint8)).save(tmp_path / "empty.mzarr", chunks=(128, 128))
    with Mzarr(empty) as m:  # chunks of the fill value are not stored: nothing is missing
        assert verify(m).ok


def test_undo_refuses_to_revert_a_later_edit_unless_forced(tmp_path, capsys):
    """The manifest records the SHA-256 of what the repair wrote; an edit after the repair changes those chunks, so
    ``--undo`` refuses (naming the chunk, changing nothing) and ``--force`` puts the old chunks back anyway."""
    import hashlib
    import json
    import zipfile

    from mzarr_core.cli import main as cli_main

    vol = np.random.default_rng(0).integers(0, 4000, (64, 128, 128)).astype(np.uint16)
    path = Mzarr(vol).save(tmp_path / "r4.mzarr", chunks=(32, 64, 64), levels=2)
    stale = chunk_blobs(Mzarr(vol // 2).save(tmp_path / "other.mzarr", chunks=(32, 64, 64), levels=2))["1/c/0/0/0"]
    set_blob(path, "1/c/0/0/0", stale)  # a stale level-1 chunk with a valid checksum
    with Mzarr(path, "r+") as m:
        kept = Path(repair_pyramid(m).kept)
    repaired = chunk_blobs(path)
    with zipfile.ZipFile(kept) as z:
        manifest = json.loads(z.read("manifest.json"))
        assert z.read("1/c/0/0/0") == stale
    assert manifest["repaired"] == {"1/c/0/0/0": hashlib.sha256(repaired["1/c/0/0/0"]).hexdigest()}
    with Mzarr(path, "r+") as m:  # a later edit rewrites level 0 and the repaired level-1 chunk
        m[0:32, 0:64, 0:64] = 7
    edited = chunk_blobs(path)
    assert cli_main(["repair", str(path), "--undo", str(kept)]) == 2
    err = capsys.readouterr().err
    assert "chunk 1/c/0/0/0 changed since the repair" in err and "--force" in err
    assert chunk_blobs(path) == edited
    with Mzarr(path) as m:
        assert m.level(1)[0:16, 0:32, 0:32].tolist() == np.full((16, 32, 32), 7).tolist()
    assert cli_main(["repair", str(path), "--undo", str(kept), "--force"]) == 0
    assert chunk_blobs(path)["1/c/0/0/0"] == stale


def test_undo_with_a_damaged_zip_names_it_and_changes_nothing(tmp_path, capsys):
    """A bit flipped inside a kept chunk of the ZIP (Bad CRC-32) is an MzarrFormatError naming the ZIP and the entry."""
    import zipfile

    from mzarr_core.cli import main as cli_main
    from mzarr_core.replaced import restore_replaced

    vol = np.random.default_rng(3).integers(0, 4000, (64, 128, 128)).astype(np.uint16)
    path = Mzarr(vol).save(tmp_path / "r10.mzarr", chunks=(32, 64, 64), levels=2)
    blob = bytearray(chunk_blobs(path)["1/c/0/0/0"])
    blob[len(blob) // 2] ^= 1
    set_blob(path, "1/c/0/0/0", bytes(blob))
    with Mzarr(path, "r+") as m:
        kept = Path(repair_pyramid(m).kept)
    info = zipfile.ZipFile(kept).getinfo("1/c/0/0/0")
    data = bytearray(kept.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + 100] ^= 1
    kept.write_bytes(bytes(data))
    before = chunk_blobs(path)
    with Mzarr(path, "r+") as m, pytest.raises(MzarrFormatError, match=r"is damaged: its entry '1/c/0/0/0'"):
        restore_replaced(m, kept, force=True)
    assert cli_main(["repair", str(path), "--undo", str(kept)]) == 2
    err = capsys.readouterr().err
    assert str(kept) in err and "damaged" in err and "bug" not in err
    assert chunk_blobs(path) == before
