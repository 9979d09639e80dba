"""Salvage (``Mzarr.salvage`` / ``mzarr salvage``): a damaged file with no backup gives a new file holding every sound
chunk bit for bit, each damaged level-0 chunk from its planes that still decode, else the finest coarser level that
decodes (enlarged), else the fill value; labels alike; the damaged file is never written; what was filled how is
reported and recorded in the new file's attributes."""

from __future__ import annotations

import itertools

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
    path = Mzarr(vol).save(tmp_path / "v.mzarr", bricks="slabs")
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
    assert "holds every pixel of the file, bit for bit" in capsys.readouterr().out
    with Mzarr(tmp_path / "copy.mzarr") as out:
        assert np.array_equal(out[...], vol) and "salvaged" not in out.attrs()
    blob = chunk_blobs(path)["0/c/1/1/1"]
    set_blob(path, "0/c/1/1/1", flip(blob, len(blob) // 4))
    assert cli_main(["salvage", str(path), str(tmp_path / "s.mzarr"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "image chunk (1, 1, 1)" in out and "wrote" in out
    with Mzarr(path) as m, pytest.raises(MzarrValueError, match="itself"):
        m.salvage(path)
    with Mzarr(path) as m, pytest.raises(MzarrValueError, match="never replaces"):
        m.salvage(tmp_path / "copy.mzarr")  # an existing (healthy) file is never overwritten
    with Mzarr(tmp_path / "copy.mzarr") as out:
        assert np.array_equal(out[...], vol)
    assert cli_main(["salvage", str(path), str(tmp_path / "x.tif"), "--quiet"]) == 2


def test_a_lossy_file_keeps_its_sound_chunks_byte_for_byte(tmp_path):
    """Salvage never codes a lossy chunk again (that would lose quality again): the sound level-0 chunks are copied,
    checksum and all, so every sound pixel is the file's own."""
    image = np.tile(skimage.data.camera(), (2, 2))[:1000, :900]
    path = Mzarr(image).save(tmp_path / "lossy.mzarr", distance=2.0, chunks=(256, 256))
    with Mzarr(path) as m:
        before = m[...]
    blobs = chunk_blobs(path)
    set_blob(path, "0/c/1/2", flip(blobs["0/c/1/2"], 300))
    with Mzarr(path) as m:
        report = m.salvage(tmp_path / "s.mzarr")
    assert report.copied and [c.chunk for c in report.chunks] == [(1, 2)]
    after = chunk_blobs(tmp_path / "s.mzarr")
    sound = [k for k in blobs if k.startswith("0/c/") and k != "0/c/1/2"]
    assert sound and all(after[k] == blobs[k] for k in sound)
    with Mzarr(tmp_path / "s.mzarr") as out:
        got = out[...]
        assert out.codec["lossless"] is False and out.codec["distance"] == 2.0
    mask = np.ones(image.shape, bool)
    mask[256:512, 512:768] = False
    assert np.array_equal(got[mask], before[mask])


def test_a_missing_chunk_is_lost_not_empty_and_a_damaged_overview_is_rebuilt(tmp_path):
    """A level-0 row deleted from the file reads as the fill value, but the level above holds data there: salvage
    fills it from that level and says it was missing; a damaged chunk of level 1 alone is rebuilt from level 0."""
    import sqlite3

    vol = volume()
    path = Mzarr(vol).save(tmp_path / "v.mzarr")
    with Mzarr(path) as m:
        level1 = m.levels[1][...]
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM zarr WHERE key='0/c/1/0/1'")
    conn.commit()
    conn.close()
    with Mzarr(path) as m:
        assert not m[64:70, 0:64, 64:90].any()  # read back as the fill value: the loss is silent to a reader
        report = m.salvage(tmp_path / "s.mzarr")
    (chunk,) = report.chunks
    assert chunk.lost and chunk.chunk == (1, 0, 1) and chunk.from_level == 1 and "missing from the file" in str(chunk)
    lost = (slice(64, 70), slice(0, 64), slice(64, 90))
    with Mzarr(tmp_path / "s.mzarr") as out:
        assert np.array_equal(out[lost], enlarged(level1, lost))
        assert out.attrs()["salvaged"]["chunks"][0]["lost"] is True

    path2 = Mzarr(vol).save(tmp_path / "w.mzarr")
    set_blob(path2, "1/c/0/0/0", flip(chunk_blobs(path2)["1/c/0/0/0"], 100))
    with Mzarr(path2) as m:
        report = m.salvage(tmp_path / "w-s.mzarr")
    assert report.chunks == [] and report.rebuilt == ["image level 1 chunk (0, 0, 0)"]
    assert "rebuilt exactly from level 0" in "\n".join(report.lines())
    with Mzarr(tmp_path / "w-s.mzarr") as out:
        assert np.array_equal(out[...], vol) and verify(out).ok


def test_a_damaged_page_of_the_container_costs_only_its_chunk(tmp_path):
    """A zeroed page of the SQLite file (a bad sector): reads of the other chunks go on, verify names the chunk(s)
    whose rows cannot be read, and salvage keeps everything else bit for bit."""
    import sqlite3

    rng = np.random.default_rng(3)
    vol = (volume().astype(np.int64) + rng.integers(0, 400, (70, 100, 90))).astype(np.uint16)  # large chunks
    path = Mzarr(vol).save(tmp_path / "v.mzarr")
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # a page in the middle of the chunk data
        fh.seek((size // 4096 // 2) * 4096)
        fh.write(bytes(4096))
    conn = sqlite3.connect(path)
    unreadable = []
    for (key,) in conn.execute("SELECT key FROM zarr").fetchall():
        try:
            conn.execute("SELECT value FROM zarr WHERE key=?", (key,)).fetchone()
        except sqlite3.DatabaseError:
            unreadable.append(key)
    conn.close()
    assert len(unreadable) == 1 and unreadable[0].startswith("0/c/")  # the page belongs to one level-0 chunk
    with Mzarr(path) as m:
        report = verify(m)
        assert len(report.damaged) == 1 and unreadable[0] in report.damaged[0]
        salvage = m.salvage(tmp_path / "s.mzarr")
    (chunk,) = salvage.chunks
    box = tuple(slice(a, b) for a, b in chunk.region)
    mask = np.ones(vol.shape, bool)
    mask[box] = False
    with Mzarr(tmp_path / "s.mzarr") as out:
        assert np.array_equal(out[...][mask], vol[mask])


def test_verify_points_to_salvage_for_full_resolution_damage_only(tmp_path, capsys):
    vol = volume()
    path = Mzarr(vol).save(tmp_path / "v.mzarr")
    set_blob(path, "1/c/0/0/0", flip(chunk_blobs(path)["1/c/0/0/0"], 100))
    assert cli_main(["verify", str(path), "--quiet"]) == 1
    assert "saves every sound pixel" not in capsys.readouterr().out  # an overview: 'mzarr repair' rebuilds it
    set_blob(path, "0/c/0/0/0", flip(chunk_blobs(path)["0/c/0/0/0"], 100))
    assert cli_main(["verify", str(path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"without a backup, 'mzarr salvage {path} NEW.mzarr' saves every sound pixel" in out


def test_a_file_cut_short_is_salvaged_row_by_row(tmp_path, capsys):
    """An interrupted copy: the .mzarr holds only the first part of its bytes and no longer opens. Salvage reads
    the rows left in its pages and saves what they hold: every chunk whose row survived is exact, the others are
    listed as missing and filled from the level above where it survived, else the fill value."""
    import shutil

    from mzarr_core import salvage_file
    from mzarr_core.errors import MzarrFormatError

    rng = np.random.default_rng(4)
    vol = (volume().astype(np.int64) + rng.integers(0, 400, (70, 100, 90))).astype(np.uint16)
    whole = Mzarr(vol).save(tmp_path / "whole.mzarr")
    cut = tmp_path / "cut.mzarr"
    shutil.copyfile(whole, cut)
    size = cut.stat().st_size
    with open(cut, "r+b") as fh:
        fh.truncate(size * 3 // 5)
    with pytest.raises(MzarrFormatError, match="cut short"):
        Mzarr(cut)
    assert cli_main(["salvage", str(cut), str(tmp_path / "saved.mzarr"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "does not open" in out and "pages were read directly" in out and "rows recovered whole" in out
    assert not list(tmp_path.glob(".saved.mzarr.rows-*"))  # the scratch container is gone
    sound = {k: v for k, v in chunk_blobs(whole).items() if k.startswith("0/c/")}
    with Mzarr(tmp_path / "saved.mzarr") as saved:
        got = saved[...]
        record = saved.attrs()["salvaged"]
    assert record["from"] == str(cut)
    exact = 0
    with Mzarr(whole) as m:
        for key in sound:
            coords = tuple(int(i) for i in key.split("/")[2:])
            box = m.levels[0].chunk_region(coords)
            if np.array_equal(got[box], vol[box]):
                exact += 1
    assert 0 < exact < len(sound)  # the rows in the part that survived: bit for bit
    assert exact + record["count"] >= len(sound)  # every other chunk is listed as filled
    report = salvage_file(whole, tmp_path / "again.mzarr")  # a sound file: nothing to recover
    assert not report.recovered and report.chunks == []


def test_rows_recovered_from_pages_are_the_newest_never_stale(tmp_path):
    """An edited file holds old versions of rewritten chunks in free pages: reading pages directly must return each
    key's current bytes only (free pages skipped, the newest rowid kept)."""
    from mzarr_core.salvage import recover_rows

    vol = volume()
    path = Mzarr(vol).save(tmp_path / "v.mzarr")
    with Mzarr(path, "r+") as m:
        for value in (100, 2000, 4000):  # each edit rewrites the same chunks (old rows freed)
            m[0:40, 0:60, 0:60] = value
    current = chunk_blobs(path)
    copied, lost = recover_rows(path, tmp_path / "rows.mzarr")
    recovered = chunk_blobs(tmp_path / "rows.mzarr")
    assert copied == len(current) and lost == 0 and recovered == current


@pytest.mark.parametrize("seed", range(6))
def test_reading_pages_of_a_scrambled_file_never_fails(tmp_path, seed):
    """Random bytes over random pages (a hostile or badly damaged file): recover_rows returns, and the rows the
    scrambles did not touch come back byte-identical (checksummed chunks then decide whether the others are sound)."""
    from mzarr_core.salvage import recover_rows

    path = Mzarr(volume()).save(tmp_path / "v.mzarr")
    original = chunk_blobs(path)
    rng = np.random.default_rng(seed)
    data = bytearray(path.read_bytes())
    for _ in range(20):
        at = int(rng.integers(100, len(data) - 64))
        data[at : at + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    copied, lost = recover_rows(path, tmp_path / "rows.mzarr")
    recovered = chunk_blobs(tmp_path / "rows.mzarr")
    assert copied == len(recovered) and copied + lost > 0
    sound = [k for k in recovered if k in original and recovered[k] == original[k]]
    assert len(sound) >= len(original) - 20 - lost  # a scramble costs at most the row it fell into


def test_a_file_whose_header_page_is_lost_is_salvaged_from_its_pages(tmp_path):
    """The first 4 KiB overwritten (the SQLite header and the schema): the file does not open, salvage reads the
    rows left in the other pages (Mzarr writes 4096-byte pages) and the chunks come back exact."""
    from mzarr_core import salvage_file
    from mzarr_core.errors import MzarrFormatError

    vol = volume()
    path = Mzarr(vol).save(tmp_path / "v.mzarr")
    data = bytearray(path.read_bytes())
    data[:4096] = bytes(4096)
    path.write_bytes(bytes(data))
    with pytest.raises(MzarrFormatError, match="mzarr salvage"):
        Mzarr(path)
    report = salvage_file(path, tmp_path / "saved.mzarr")
    assert report.recovered and report.rows_recovered > 0
    with Mzarr(tmp_path / "saved.mzarr") as saved:
        got = saved[...]
    exact = sum(np.array_equal(got[b], vol[b]) for b in (
        tuple(slice(i * 64, (i + 1) * 64) for i in idx) for idx in itertools.product(range(2), range(2), range(2))))
    assert exact == 8  # page 1 holds the header and the schema, no chunk: every chunk comes back exact
