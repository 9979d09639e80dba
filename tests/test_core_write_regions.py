"""``write_regions``: many edits in one transaction with one pyramid update give the same file as one assignment
after another, every level recomputed by the pyramid rule (mean for images, mode for label images), all or none."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata
from skimage.measure import label as sklabel

from mzarr_core import Mzarr
from mzarr_core.errors import MzarrError, MzarrValueError
from mzarr_core.pyramid import downsample


def scattered_edits(shape: tuple[int, ...], count: int, seed: int, high: int, max_side: int = 40) -> list:
    """``count`` random boxes (some overlapping, some at the far edges) with random values or arrays."""
    rng = np.random.default_rng(seed)
    edits = []
    for i in range(count):
        lo = [int(rng.integers(0, n)) for n in shape]
        hi = [min(n, a + int(rng.integers(1, max_side))) for a, n in zip(lo, shape)]
        key = tuple(slice(a, b) for a, b in zip(lo, hi))
        if i % 3 == 0:  # an array value (a brush stroke's block), else a constant
            value = rng.integers(0, high, size=tuple(b - a for a, b in zip(lo, hi)))
        else:
            value = int(rng.integers(0, high))
        edits.append((key, value))
    edits.append((tuple(slice(n - 3, n) for n in shape), high - 1))  # the last pixels of every axis (edge chunks)
    return edits


def levels_of(levels) -> list[np.ndarray]:
    return [np.asarray(level[...]) for level in levels]


def assert_pyramid_rule(levels: list[np.ndarray], method: str) -> None:
    """Each level is the level below it downsampled by the file's rule (what a full rebuild writes)."""
    for fine, coarse in zip(levels, levels[1:]):
        halve = tuple(c != f for c, f in zip(coarse.shape, fine.shape))
        assert (downsample(fine, halve, method) == coarse).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_image_edits_equal_one_by_one_and_the_pyramid_rule(tmp_path, seed) -> None:
    img = skdata.camera()[:500, :433]  # odd edges: partial chunks at every level
    one, batch = tmp_path / "one.mzarr", tmp_path / "batch.mzarr"
    for p in (one, batch):
        Mzarr(img).save(p, chunks=(64, 64), levels=4)
    edits = scattered_edits(img.shape, 40, seed, 256)
    with Mzarr(one, "r+") as m, m.transaction():
        for key, value in edits:
            m[key] = value
    with Mzarr(batch, "r+") as m:
        m.write_regions(edits)
    expected = img.copy()
    for key, value in edits:
        expected[key] = value
    with Mzarr(one) as a, Mzarr(batch) as b:
        got_one, got_batch = levels_of(a.levels), levels_of(b.levels)
    assert (got_batch[0] == expected).all()
    for x, y in zip(got_one, got_batch):
        assert x.shape == y.shape and (x == y).all()
    assert_pyramid_rule(got_batch, "mean")


def test_label_volume_edits_follow_the_mode_rule(tmp_path) -> None:
    rng = np.random.default_rng(3)
    vol = (rng.random((40, 90, 70)) > 0.6).astype(np.uint8)
    seg = sklabel(vol).astype(np.uint16)
    p = tmp_path / "vol.mzarr"
    Mzarr((vol * 200).astype(np.uint8)).save(p, chunks=(16, 32, 32), levels=3)
    with Mzarr(p, "r+") as m:
        m.create_labels("cells", seg)
        edits = scattered_edits(seg.shape, 30, 4, int(seg.max()) + 5, max_side=12)
        m.label("cells").write_regions(edits)
    expected = seg.copy()
    for key, value in edits:
        expected[key] = value
    with Mzarr(p) as m:
        got = levels_of(m.label("cells").levels)
        image_levels = levels_of(m.levels)
    assert (got[0] == expected).all()
    assert len(got) == 3
    assert_pyramid_rule(got, "mode")
    assert (image_levels[0] == (vol * 200)).all()  # the image itself untouched


def test_in_memory_image(tmp_path) -> None:
    img = skdata.coins().copy()
    m = Mzarr(img)
    edits = scattered_edits(img.shape, 10, 5, 256)
    m.write_regions(edits)
    expected = skdata.coins().copy()
    for key, value in edits:
        expected[key] = value
    assert (m[...] == expected).all()


def test_all_or_nothing(tmp_path, monkeypatch) -> None:
    img = skdata.camera()[:256, :256]
    p = tmp_path / "a.mzarr"
    Mzarr(img).save(p, chunks=(64, 64), levels=3)
    with Mzarr(p) as m:
        before = levels_of(m.levels)
    # a value that does not fit: refused before anything is written
    with Mzarr(p, "r+") as m:
        with pytest.raises(MzarrValueError, match="does not fit|out of range|uint8"):
            m.write_regions([((slice(0, 10), slice(0, 10)), 7), ((slice(20, 30), slice(0, 10)), 300)])
    # a failure in the pyramid update after level 0 was written: rolled back
    import mzarr_core.backends.stored as stored

    def broken(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(stored, "downsample", broken)
    with Mzarr(p, "r+") as m:
        with pytest.raises(MemoryError):
            m.write_regions([((slice(0, 10), slice(0, 10)), 7), ((slice(100, 110), slice(0, 10)), 9)])
    monkeypatch.undo()
    with Mzarr(p) as m:
        after = levels_of(m.levels)
    for x, y in zip(before, after):
        assert (x == y).all()


def test_read_only_and_bad_keys(tmp_path) -> None:
    p = tmp_path / "a.mzarr"
    Mzarr(skdata.camera()[:128, :128]).save(p, chunks=(64, 64))
    with Mzarr(p) as m, pytest.raises(MzarrError, match="read-only|r\\+"):
        m.write_regions([((slice(0, 1), slice(0, 1)), 1)])
    with Mzarr(p, "r+") as m, pytest.raises(IndexError, match="too many indices"):  # as NumPy
        m.write_regions([((slice(0, 1), slice(0, 1)), 1), ((slice(0, 1), slice(0, 1), slice(0, 1)), 1)])
    with Mzarr(p, "r+") as m:
        m.write_regions([])  # nothing to do


def test_rgb_edits_equal_one_by_one(tmp_path) -> None:
    """Channels last in the caller's order, stored in another: the chunk grid of each level in storage order."""
    img = skdata.astronaut()[:300, :270]
    one, batch = tmp_path / "one.mzarr", tmp_path / "batch.mzarr"
    for p in (one, batch):
        Mzarr(img).save(p, chunks=(64, 64, 3), levels=3)
    edits = [((slice(r, r + 20), slice(c, c + 33), slice(None)), [r % 256, c % 256, 7])
             for r, c in [(0, 0), (10, 250), (280, 5), (150, 140), (60, 61)]]
    with Mzarr(one, "r+") as m, m.transaction():
        for key, value in edits:
            m[key] = value
    with Mzarr(batch, "r+") as m:
        m.write_regions(edits)
        assert m.axes == "yxc"
    with Mzarr(one) as a, Mzarr(batch) as b:
        for x, y in zip(levels_of(a.levels), levels_of(b.levels)):
            assert (x == y).all()
        assert (b[0:20, 0:33] == [0, 0, 7]).all()
