"""Out-of-core saving: lazy array-like sources (np.memmap, zarr arrays) are read block by block within
``mzarr_core.writer.BLOCK_BUDGET`` (forced tiny here to get many superblocks and multi-pass pyramids), giving exactly
the in-memory result; and the progress callback reports monotonically up to done == total."""

from __future__ import annotations

import math

import numpy as np
import pytest
import zarr
from conftest import assert_bit_exact, assert_pyramid, extreme_array, smooth_array

import mzarr_core.writer as writer
from mzarr import Mzarr


class CountingSource:
    """An array-like that records every region read from it (lazy source instrumentation)."""

    def __init__(self, array):
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.reads: list[tuple] = []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.array[key]

    def read_sizes(self) -> list[int]:
        """Number of elements of each read."""
        return [int(np.asarray(self.array[k]).size) for k in self.reads]


@pytest.fixture
def tiny_budget(monkeypatch) -> list[tuple[int, int]]:
    """BLOCK_BUDGET = 4 chunks of 32 x 32 uint16 (forces many superblocks and several pyramid passes); returns
    the list of (start level, levels produced) of every pass."""
    monkeypatch.setattr(writer, "BLOCK_BUDGET", 4 * 32 * 32 * 2)
    passes: list[tuple[int, int]] = []
    original = writer._levels_per_pass

    def spy(plan, start, chunks, itemsize):
        k = original(plan, start, chunks, itemsize)
        passes.append((start, k))
        return k

    monkeypatch.setattr(writer, "_levels_per_pass", spy)
    return passes


def _memmap(tmp_path, array: np.ndarray) -> np.memmap:
    """``array`` written to a .npy file and opened again as a read-only memmap."""
    path = tmp_path / "source.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    mm[...] = array
    mm.flush()
    del mm
    return np.load(path, mmap_mode="r")


def _same_files(path_a, path_b) -> None:
    with Mzarr(path_a) as a, Mzarr(path_b) as b:
        assert len(a.levels) == len(b.levels)
        for la, lb in zip(a.levels, b.levels):
            assert la.shape == lb.shape and la.chunks == lb.chunks
            assert_bit_exact(la[...], lb[...], f"level {la.index}")


def test_memmap_source_with_tiny_budget(tmp_path, tiny_budget):
    """A memmap larger than the budget is saved in many superblocks, each read within the budget, and the
    result equals saving the same array from memory (and the reference pyramid)."""
    a = smooth_array((333, 290), "uint16", seed=1)
    a[::7, ::5] = 65535
    source = CountingSource(_memmap(tmp_path, a))
    m = Mzarr(source)
    assert source.reads == [], "constructing must not read pixels"
    assert (m.shape, m.dtype, m.axes) == (a.shape, np.dtype("uint16"), "yx")
    path = m.save(tmp_path / "mm.mzarr", chunks=(32, 32))
    sizes = source.read_sizes()
    budget_elements = writer.BLOCK_BUDGET // 2
    assert len(sizes) >= 20, f"only {len(sizes)} reads: not out-of-core"
    assert max(sizes) <= max(budget_elements, 4 * 32 * 32), f"a read of {max(sizes)} elements exceeds the budget"
    assert sum(sizes) == a.size, "every pixel read exactly once"
    starts = [s for s, _ in tiny_budget]
    assert len(set(starts)) >= 3, f"expected several pyramid passes, got {tiny_budget}"
    with Mzarr(path) as saved:
        assert len(saved.levels) >= 5
        assert_pyramid(saved, a, "mean")
    ref_path = Mzarr(a).save(tmp_path / "mem.mzarr", chunks=(32, 32))
    _same_files(path, ref_path)


@pytest.mark.parametrize("method", ["mean", "nearest", "mode"])
def test_multi_pass_pyramid_methods(tmp_path, tiny_budget, method):
    """Every downsampling method gives the same pyramid in many passes as the reference (repeated halving)."""
    a = extreme_array((150, 170), "int16", seed=2) // 1000 if method == "mode" else smooth_array((150, 170), "int16")
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(16, 16), downsample=method)
    assert len({s for s, _ in tiny_budget}) >= 2, tiny_budget
    with Mzarr(path) as m:
        assert_pyramid(m, a, method)


def test_zarr_array_source_3d(tmp_path, tiny_budget):
    """A zarr array (3D, odd shape) as the source: saved out-of-core, equal to the in-memory save."""
    a = smooth_array((37, 70, 61), "uint8", seed=3)
    z = zarr.create_array(store=tmp_path / "src.zarr", shape=a.shape, chunks=(10, 20, 20), dtype=a.dtype)
    z[...] = a
    src = zarr.open_array(tmp_path / "src.zarr", mode="r")
    path = Mzarr(src).save(tmp_path / "z.mzarr", chunks=(8, 16, 16))
    with Mzarr(path) as m:
        assert m.axes == "zyx"
        assert_pyramid(m, a, "mean")
    _same_files(path, Mzarr(a).save(tmp_path / "mem.mzarr", chunks=(8, 16, 16)))


@pytest.mark.parametrize(
    "shape,dtype,axes,chunks",
    [((130, 110, 3), "uint8", None, (16, 16, 3)), ((2, 20, 60, 50), "float32", "czyx", (1, 4, 16, 16)),
     ((20, 60, 50, 2), "uint16", "zyxc", (4, 16, 16, 1))],
)
def test_channel_sources_out_of_core(tmp_path, tiny_budget, shape, dtype, axes, chunks):
    """Channel-last memmaps are seen in storage order lazily (no copy) and saved exactly."""
    a = extreme_array(shape, dtype, seed=4) if dtype != "float32" else smooth_array(shape, dtype, seed=4)
    source = CountingSource(_memmap(tmp_path, a))
    path = Mzarr(source, axes=axes).save(tmp_path / "c.mzarr", chunks=chunks)
    assert max(source.read_sizes()) < a.size / 4
    with Mzarr(path) as m:
        assert_bit_exact(m.numpy(), a)
        assert_pyramid(m, a, "mean")


def test_saving_an_opened_file_is_out_of_core(tmp_path, tiny_budget):
    """Saving a .mzarr to another file (re-chunking) streams it too, with equal content."""
    a = smooth_array((200, 180), "uint16", seed=5)
    first = Mzarr(a).save(tmp_path / "a.mzarr", chunks=(64, 64))
    with Mzarr(first) as m:
        second = m.save(tmp_path / "b.mzarr", chunks=(16, 16))
    with Mzarr(second) as m:
        assert m.chunks == (16, 16)
        assert_pyramid(m, a, "mean")


# -- progress ---------------------------------------------------------------------------------------------------------
def _check_progress(calls: list[tuple[int, int]]) -> None:
    """(done, total) calls: at least two, constant positive total, done strictly increasing, ending at total."""
    assert len(calls) >= 2, calls
    totals = {t for _, t in calls}
    assert len(totals) == 1 and next(iter(totals)) > 0, f"total changed: {sorted(totals)}"
    dones = [d for d, _ in calls]
    assert all(b > a for a, b in zip(dones, dones[1:])), f"done not strictly increasing: {dones}"
    assert dones[0] <= dones[-1] and dones[-1] == calls[-1][1], f"ended at {calls[-1]}"
    assert all(0 <= d <= t for d, t in calls)


@pytest.mark.parametrize("budget", [None, 4 * 32 * 32 * 2])
def test_progress_monotonic_to_total(tmp_path, monkeypatch, budget):
    """progress(done, total) rises monotonically to done == total (in-memory and out-of-core); total equals the
    number of chunks of all levels."""
    if budget:
        monkeypatch.setattr(writer, "BLOCK_BUDGET", budget)
    a = smooth_array((300, 250), "uint16", seed=6)
    calls: list[tuple[int, int]] = []
    path = Mzarr(a).save(tmp_path / "p.mzarr", chunks=(32, 32), progress=lambda d, t: calls.append((d, t)))
    _check_progress(calls)
    with Mzarr(path) as m:
        n_chunks = sum(math.prod(lvl.chunk_grid) for lvl in m.levels)
    assert calls[-1] == (n_chunks, n_chunks)
    if budget:  # many superblocks: many intermediate reports
        assert len(calls) > 5 and len({d for d, _ in calls}) > 5


def test_progress_for_other_targets(tmp_path):
    """The OME-Zarr folder form, 3D/RGB images and the empty-create path report progress the same way."""
    cases = [
        (smooth_array((40, 90, 70), "uint8"), "v.ome.zarr", {}),
        (smooth_array((100, 120, 3), "uint8"), "rgb.mzarr", {"chunks": (32, 32, 3)}),
    ]
    for a, name, kwargs in cases:
        calls: list[tuple[int, int]] = []
        Mzarr(a).save(tmp_path / name, progress=lambda d, t, c=calls: c.append((d, t)), **kwargs)
        _check_progress(calls)
    empty_calls: list[tuple[int, int]] = []
    Mzarr(tmp_path / "empty.mzarr", "w", shape=(500, 500), dtype="uint8",
          progress=lambda d, t: empty_calls.append((d, t))).close()
    assert empty_calls and empty_calls[-1][0] == empty_calls[-1][1]
