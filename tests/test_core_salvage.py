"""Salvage (``Mzarr.salvage`` / ``mzarr salvage``): a damaged file with no backup gives a new file holding every sound
chunk bit for bit, each damaged level-0 chunk from its planes that still decode, else the finest coarser level that
decodes (enlarged), else the fill value; labels alike; the damaged file is never written; what was filled how is
reported and recorded in the new file's attributes."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from conftest import chunk_blobs, set_blob

from mzarr_core import CorruptChunkError, Mzarr, guards, verify
from mzarr_core.cli import main as cli_main
from mzarr_core.errors import MzarrValueError


def flip(blob: bytes, at: int) -> bytes:
    out = bytearray(blob)
    out[at] ^= 0x08
    return bytes(out)


def volume() -> np.ndarray:
    moon = skimage.data.moon().astype(np.int64)
    return (np.stack([np.roll(moon, 3 * z, axis=1)[:100, :90] for z in range(70)]) * 60).astype(np.uint16)


def enlarged(level1: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """Level 1 repeated 2x along each axis, cut to ``box`` of level 0 (what salvage fills a lost region with)."""
    out = level1
    for axis in range(level1.ndim):
        out = np.repeat(out, 2, axis=axis)
    return out[box]


def test_a_damaged_slab_is_filled_from_level1_and_the_rest_is_exact(tmp_path):
    vol = volume()
    path = Mzarr(vol).save(tmp_path / "v.mzarr")
    with Mzarr(path) as m:
        level1 = m.levels[1][...]
    blob = chunk_blobs(path)["0/c/0/0/0"]
    offset, length = guards.shard_index(blob, 4)[1]  # slab 1: planes 16..31 of brick (0, 0, 0)
    set_blob(path, "0/c/0/0/0", flip(blob, offset + length // 2))
    damaged = chunk_blobs(path)
    with Mzarr(path) as m:
        report = m.salvage(tmp_path / "saved.mzarr")
    assert chunk_blobs(path) == damaged  # the damaged file is never written
    (chunk,) = report.chunks
    assert chunk.chunk == (0, 0, 0) and (chunk.exact_planes, chunk.approximated_planes, chunk.from_level) == (48, 16, 1)
    assert "48 planes read exactly, 16 approximated from level 1" in str(chunk) and not report.exact
    lost = (slice(16, 32), slice(0, 64), slice(0, 64))
    with Mzarr(tmp_path / "saved.mzarr") as out:
        got = out[...]
        assert np.array_equal(got[lost], enlarged(level1, lost))
        mask = np.ones(vol.shape, bool)
        mask[lost] = False
        assert np.array_equal(got[mask], vol[mask])  # every other pixel bit for bit
        record = out.attrs()["salvaged"]
        assert record["count"] == 1 and record["chunks"][0]["region"] == [[0, 64], [0, 64], [0, 64]]
        assert record["chunks"][0]["from_level"] == 1 and out.checksums and verify(out).ok


def test_2d_chunk_from_the_finest_level_that_decodes_else_the_fill_value(tmp_path):
    image = np.tile(skimage.data.camera(), (2, 2))[:1000, :900]
    path = Mzarr(image).save(tmp_path / "c.mzarr", chunks=(256, 256), levels=3)
    with Mzarr(path) as m:
        level2 = m.levels[2][...]
    blobs = chunk_blobs(path)
    set_blob(path, "0/c/1/1", flip(blobs["0/c/1/1"], 200))
    set_blob(path, "1/c/0/0", flip(blobs["1/c/0/0"], 200))  # level 1 over it is damaged too: level 2 is used
    with Mzarr(path) as m:
        report = m.salvage(tmp_path / "s.mzarr")
    assert [(c.chunk, c.from_level, c.approximated_planes) for c in report.chunks] == [((1, 1), 2, 1)]
    box = (slice(256, 512), slice(256, 512))
    want = np.repeat(np.repeat(level2, 4, axis=0), 4, axis=1)[box]
    with Mzarr(tmp_path / "s.mzarr") as out:
        assert np.array_equal(out[box], want)
        assert np.array_equal(out[0:256, :], image[0:256, :]) and np.array_equal(out[512:, :], image[512:, :])

    single = Mzarr(image[:300, :300]).save(tmp_path / "one.mzarr", chunks=(256, 256), levels=1)
    set_blob(single, "0/c/0/0", flip(chunk_blobs(single)["0/c/0/0"], 100))
    with Mzarr(single) as m:
        report = m.salvage(tmp_path / "one-saved.mzarr")
    assert report.chunks[0].from_level is None and "fill value" in str(report.chunks[0])
    with Mzarr(tmp_path / "one-saved.mzarr") as out:
        assert not out[0:256, 0:256].any() and np.array_equal(out[256:, :], image[256:300, :300])


def test_damaged_label_chunks_are_salvaged_with_real_labels(tmp_path):
    vol = volume()
    seg = (vol > 6000).astype(np.uint8) + (vol > 9000)
    path = Mzarr(vol).save(tmp_path / "v.mzarr")
    with Mzarr(path, "r+") as m:
        m.create_labels("seg", seg)
        label1 = m.label("seg").levels[1][...]
    key = "labels/seg/0/c/1/0/0"
    set_blob(path, key, flip(chunk_blobs(path)[key], len(chunk_blobs(path)[key]) // 2))
    with Mzarr(path) as m:
        with pytest.raises(CorruptChunkError):
            m.label("seg")[...]
        report = m.salvage(tmp_path / "saved.mzarr")
    (chunk,) = report.chunks
    assert chunk.image == "label image 'seg'" and chunk.from_level == 1
    lost = (slice(64, 70), slice(0, 64), slice(0, 64))
    with Mzarr(tmp_path / "saved.mzarr") as out:
        got = out.label("seg")[...]
        assert np.array_equal(got[lost], enlarged(label1, lost))
        assert set(np.unique(got)) <= {0, 1, 2}  # labels that exist, never a mean of them
        assert np.array_equal(out[...], vol) and np.array_equal(got[:64], seg[:64])


def test_a_sound_file_is_copied_exactly_and_the_cli_reports(tmp_path, capsys):
    vol = volume()
    path = Mzarr(vol).save(tmp_path / "v.mzarr")
    assert cli_main(["salvage", str(path), str(tmp_path / "copy.mzarr"), "--quiet"]) == 0
    assert "no damaged chunk" in capsys.readouterr().out
    with Mzarr(tmp_path / "copy.mzarr") as out:
        assert np.array_equal(out[...], vol) and "salvaged" not in out.attrs()
    blob = chunk_blobs(path)["0/c/1/1/1"]
    set_blob(path, "0/c/1/1/1", flip(blob, len(blob) // 4))
    assert cli_main(["salvage", str(path), str(tmp_path / "s.mzarr"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "image chunk (1, 1, 1)" in out and "wrote" in out
    with Mzarr(path) as m, pytest.raises(MzarrValueError, match="itself"):
        m.salvage(path)
    assert cli_main(["salvage", str(path), str(tmp_path / "x.tif"), "--quiet"]) == 2
