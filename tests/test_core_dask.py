"""``Level.to_dask()`` / ``Mzarr.to_dask(level)``: lazy dask arrays chunked like the file, whose tasks carry the path
(not the open image), so they pickle small and run in other processes (dask's process scheduler, a distributed
LocalCluster); a file changed after the array was made is a clear error, never stale pixels."""

from __future__ import annotations

import builtins
import os
import pickle
import time

import numpy as np
import pytest
from conftest import assert_bit_exact, smooth_array

from mzarr import Mzarr
from mzarr_core.errors import MzarrError

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")


def _expected_chunks(level) -> tuple[tuple[int, ...], ...]:
    return tuple(
        tuple(min(c, n - i) for i in range(0, n, c)) for n, c in zip(level.shape, level.chunks)
    )


def _check_every_level(m: Mzarr) -> None:
    for i, level in enumerate(m.levels):
        arr = m.to_dask(i)
        assert isinstance(arr, da.Array)
        assert arr.shape == level.shape and arr.dtype == level.dtype and arr.chunks == _expected_chunks(level)
        assert_bit_exact(arr.compute(scheduler="threads"), level[...], f"level {i}")


@pytest.fixture
def grey_file(tmp_path):
    a = smooth_array((300, 340), "uint16")
    return Mzarr(a).save(tmp_path / "grey.mzarr", chunks=(32, 32), levels=3), a


@pytest.mark.parametrize(
    "shape,dtype,axes,chunks",
    [
        ((300, 340), "uint16", "yx", (64, 64)),
        ((130, 150, 3), "uint8", "yxc", (64, 64, 3)),
        ((40, 70, 60), "uint16", "zyx", (16, 32, 32)),
        ((2, 20, 70, 50), "uint8", "czyx", (1, 8, 32, 32)),
    ],
)
def test_bit_exact_every_level_and_after_arithmetic(tmp_path, shape, dtype, axes, chunks):
    a = smooth_array(shape, dtype)
    path = Mzarr(a, axes=axes).save(tmp_path / "x.mzarr", chunks=chunks, levels=2)
    with Mzarr(path) as m:
        assert m.axes == axes
        _check_every_level(m)
        arr = m.to_dask()
        assert arr.chunks == _expected_chunks(m.level(0))
        assert m.level(0).to_dask().name == arr.name  # the name is the file, level and identity
        assert (arr[::2] + 1).sum().compute() == (a[::2].astype(np.int64) + 1).sum()
        assert_bit_exact(arr[..., 3:-5].compute(), a[..., 3:-5])


def test_task_graph_pickles_small_without_pixels(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 60000, (320, 320), dtype=np.uint16)  # noise: its bytes cannot hide in a small pickle
    path = Mzarr(a).save(tmp_path / "n.mzarr", chunks=(32, 32), levels=1)
    with Mzarr(path) as m:
        arr = m.to_dask()
        assert arr.npartitions == 100
        blob = pickle.dumps(arr)
        assert len(blob) < 100_000, len(blob)
        assert a[:32, :32].tobytes()[:64] not in blob
        again = pickle.loads(blob)
        assert_bit_exact(again.compute(), a)
        # the graph's tasks (each of which a worker receives) are small too
        assert len(pickle.dumps(dict(arr.__dask_graph__()))) < 100_000


def test_threaded_scheduler_and_labels(tmp_path):
    a = smooth_array((200, 230), "uint8")
    path = Mzarr(a).save(tmp_path / "l.mzarr", chunks=(64, 64), levels=2)
    seg = (a > 120).astype(np.uint16) * 7
    with Mzarr(path, "r+") as m:
        m.create_labels("cells", seg)
    with Mzarr(path) as m:
        lab = m.label("cells")
        for i, level in enumerate(lab.levels):
            arr = lab.to_dask(i)
            assert arr.chunks == _expected_chunks(level) and arr.dtype == np.uint16
            with dask.config.set(scheduler="threads"):
                assert_bit_exact(arr.compute(), level[...])
        assert lab.to_dask().name != m.to_dask().name


def test_processes_scheduler(grey_file):
    path, a = grey_file
    with Mzarr(path) as m:
        arr = m.to_dask()
        coarse = m.to_dask(2)
        expected_coarse = m.level(2)[...]
    with dask.config.set(scheduler="processes", num_workers=2):
        assert int(arr.sum(dtype=np.uint64).compute()) == int(a.sum(dtype=np.uint64))
        assert_bit_exact(coarse.compute(), expected_coarse)


def test_distributed_local_cluster(grey_file):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    path, a = grey_file
    with Mzarr(path) as m:
        arr = m.to_dask()
    try:
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=40
        )
    except Exception as exc:  # e.g. no sockets in a sandbox
        pytest.skip(f"a LocalCluster cannot start here: {exc}")
    with cluster, distributed.Client(cluster) as client:
        total = client.compute(arr.astype(np.int64).sum()).result()
        assert int(total) == int(a.sum(dtype=np.int64))
        pids = set(client.run(os.getpid).values())
        assert os.getpid() not in pids and len(pids) == 2
        # each worker process opened the file once, read-only, and keeps it for its next tasks
        opened = client.run(_opened_here)
        assert all(modes == [(str(path.resolve()), "r")] for modes in opened.values() if modes), opened
        assert sum(1 for modes in opened.values() if modes) >= 1
        assert_bit_exact(client.compute(arr[::3, 1::2]).result(), a[::3, 1::2])


def _opened_here() -> list[tuple[str, str]]:
    from mzarr_core import dask_array

    return [(key[0], image.mode) for key, image in dask_array._open.items()]


def test_changed_file_is_a_clear_error(grey_file, tmp_path):
    path, a = grey_file
    with Mzarr(path) as m:
        arr = m.to_dask()
    assert_bit_exact(arr.compute(), a)  # this process has the file open now (per-process cache)
    with Mzarr(path, "r+") as m:
        m[:10, :10] = 0  # a commit to the same file
    with pytest.raises(MzarrError, match="changed since the dask array was made: rebuild it"):
        arr.compute()
    with Mzarr(path) as m:
        fresh = m.to_dask()
        assert fresh.name != arr.name
        expected = m[...]
    assert_bit_exact(fresh.compute(), expected)
    # replaced by a save of another image
    Mzarr(a[::-1].copy()).save(path, chunks=(32, 32), levels=3)
    with pytest.raises(MzarrError, match="rebuild it"):
        fresh.compute()


def test_folder_form_and_foreign_ome_zarr(tmp_path):
    a = smooth_array((120, 100, 3), "uint8")
    path = Mzarr(a).save(tmp_path / "x.ome.zarr", chunks=(32, 32, 3), levels=2)
    with Mzarr(path) as m:
        _check_every_level(m)
        arr = m.to_dask()
    with dask.config.set(scheduler="processes", num_workers=2):
        assert_bit_exact(arr.compute(), a)
    arr1 = Mzarr(path).to_dask(1)
    time.sleep(0.05)  # past the file system's timestamp granularity
    with Mzarr(path, "r+") as m:
        m[:8, :8] = 0  # an edit in place: only chunk files change
    with pytest.raises(MzarrError, match="written after the dask array was made"):
        arr.compute()
    with pytest.raises(MzarrError, match="rebuild it"):
        arr1[:4, :4].compute()  # its coarser level's chunk was rewritten by the pyramid update
    assert_bit_exact(Mzarr(path).to_dask()[4:40, 30:].compute(), a[4:40, 30:])  # untouched chunks
    arr = Mzarr(path).to_dask()
    Mzarr(a[::-1].copy()).save(path, chunks=(32, 32, 3), levels=2)  # saved over: new metadata documents
    with pytest.raises(MzarrError, match="rebuild it"):
        arr.compute()
    # another pipeline's OME-Zarr: blosc-compressed zarr arrays, NGFF multiscales written by hand
    import zarr

    foreign = tmp_path / "foreign.zarr"
    g = zarr.open_group(foreign, mode="w", zarr_format=3)
    b = smooth_array((96, 80), "uint16")
    for i, data in enumerate([b, b[::2, ::2]]):
        g.create_array(str(i), data=data, chunks=(24, 40))
    g.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{
            "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": [
                {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [2.0**i, 2.0**i]}]}
                for i in range(2)
            ],
        }],
    }
    with Mzarr(foreign) as m:
        _check_every_level(m)
        assert m.to_dask().chunks == ((24, 24, 24, 24), (40, 40))


def test_legacy_file(tmp_path):
    import skimage.data
    from test_core_legacy import write_legacy

    a = np.ascontiguousarray(skimage.data.camera()[:300, :260])
    path = write_legacy(tmp_path / "old.mzarr", {"base": a, "subsampled_2": a[::2, ::2]}, (128, 128))
    with Mzarr(path) as m:
        _check_every_level(m)
        arr = m.to_dask()
    assert_bit_exact(arr.compute(), a)
    with dask.config.set(scheduler="processes", num_workers=2):
        assert int(arr.sum(dtype=np.uint64).compute()) == int(a.sum(dtype=np.uint64))


def test_in_memory_image_builds_from_its_arrays():
    a = smooth_array((130, 150, 3), "uint8")
    m = Mzarr(a)
    for i, level in enumerate(m.levels):
        arr = m.to_dask(i)
        assert arr.chunks == _expected_chunks(level)
        assert_bit_exact(arr.compute(), level[...])


def test_missing_dask_is_a_clear_error(grey_file, monkeypatch):
    path, _ = grey_file
    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name == "dask" or name.startswith("dask."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    with Mzarr(path) as m, pytest.raises(MzarrError, match=r'pip install "mzarr\[dask\]"'):
        m.to_dask()


def test_dask_extra_is_in_all_and_dev():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert {d.split(">")[0] for d in extras["dask"]} == {"dask[array]", "distributed"}
    assert set(extras["dask"]) <= set(extras["all"]) and set(extras["dask"]) <= set(extras["dev"])
    assert not any(d.startswith("dask") or d.startswith("distributed") for d in project["dependencies"])
