"""Bad inputs raise the mzarr_core.errors exception for the problem, with a message that says what is wrong."""

from __future__ import annotations

import json
import re
import sqlite3
import zipfile

import numpy as np
import pytest
from conftest import assert_bit_exact, chunk_blobs, reference_pyramid, set_blob, smooth_array

from mzarr import Mzarr
from mzarr_core.errors import (
    CorruptChunkError,
    MzarrDtypeError,
    MzarrError,
    MzarrFileNotFoundError,
    MzarrFormatError,
    MzarrReadOnlyError,
    MzarrValueError,
)


@pytest.fixture
def small_file(tmp_path):
    """A 100 x 90 uint8 file with 32 x 32 chunks (4 x 3 chunks on level 0, 3 levels) and its pixels."""
    a = smooth_array((100, 90), "uint8", seed=1)
    path = Mzarr(a).save(tmp_path / "small.mzarr", chunks=(32, 32))
    return path, a


# -- opening things that are not images ---------------------------------------------------------------------------
def test_missing_path(tmp_path):
    missing = tmp_path / "nope.mzarr"
    with pytest.raises(MzarrFileNotFoundError, match=r"no such file or folder: .*nope\.mzarr") as info:
        Mzarr(missing)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, MzarrError)


def test_folder_that_is_not_an_image(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.txt").write_text("hello")
    with pytest.raises(MzarrFormatError, match=r"photos is a folder but not a Zarr/OME-Zarr image"):
        Mzarr(tmp_path / "photos")


def test_zarr_group_without_multiscales(tmp_path):
    import zarr

    zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=3).create_array("a", shape=(4, 4), dtype="u1")
    with pytest.raises(MzarrFormatError, match=r"without OME-NGFF 'multiscales' metadata"):
        Mzarr(tmp_path / "plain.zarr")


def test_sqlite_file_that_is_not_mzarr(tmp_path):
    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE zarr (key TEXT PRIMARY KEY, value BLOB)")  # even with the right table name
    conn.commit()
    conn.close()
    with pytest.raises(MzarrFormatError, match=r"notes\.db is an SQLite database but not a \.mzarr image"):
        Mzarr(path)


@pytest.mark.parametrize("content,said", [
    (bytes(range(256)) * 40, r"junk\.mzarr is named \.mzarr but does not start with an SQLite header"),  # damaged
    (b"", r"junk\.mzarr is empty \(0 bytes\): it holds no image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, r"junk\.mzarr is not a \.mzarr image.*import it"),  # a misnamed PNG
])
def test_random_binary_and_empty_files(tmp_path, content, said):
    path = tmp_path / "junk.mzarr"
    path.write_bytes(content)
    with pytest.raises(MzarrFormatError, match=said):
        Mzarr(path)
    if content:  # the same bytes under another suffix: a foreign file, to import
        other = path.rename(tmp_path / "junk.bin")
        with pytest.raises(MzarrFormatError, match=r"junk\.bin is not a \.mzarr image.*import it"):
            Mzarr(other)


def test_cut_short_and_zeroed_header_say_what_happened(small_file, tmp_path, capsys):
    """A copy cut short says so (bytes on disk against the bytes its SQLite header declares) and what to do; a .mzarr
    whose first page was zeroed says its header is damaged, not 'another image: import it'."""
    from mzarr_core.cli import main as cli_main

    path, _ = small_file
    data = path.read_bytes()
    cut = tmp_path / "cut.mzarr"
    cut.write_bytes(data[: len(data) // 2])
    assert cli_main(["info", str(cut)]) == 2
    err = capsys.readouterr().err
    assert f"the file was cut short (an interrupted copy or download?): it holds {len(data) // 2} of the {len(data)} bytes" in err
    assert f"'mzarr salvage {cut} NEW.mzarr' saves what still reads" in err and "restore it from a backup" in err
    zeroed = tmp_path / "zeroed.mzarr"
    zeroed.write_bytes(bytes(4096) + data[4096:])
    with pytest.raises(MzarrFormatError, match=r"zeroed\.mzarr is named \.mzarr but does not start with an SQLite header: "
                       r"its header \(first page\) is damaged or was overwritten.*restore it from a backup") as info:
        Mzarr(zeroed)
    assert "is not a .mzarr image" not in str(info.value)


def test_zip_that_is_not_legacy_mzarr(tmp_path):
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "not an image")
    with pytest.raises(MzarrFormatError, match=r"archive\.zip is a ZIP file .*not an Mzarr 0\.0\.x image"):
        Mzarr(path)


@pytest.mark.parametrize("size", [0.02, 0.3, 0.6, 0.95, 2000, 100])
def test_truncated_file(small_file, tmp_path, size):
    """A file cut short (e.g. an interrupted copy; ``size`` is a fraction or a byte count) is reported as damaged,
    naming the file."""
    path, _ = small_file
    data = path.read_bytes()
    cut = tmp_path / "cut.mzarr"
    cut.write_bytes(data[: int(len(data) * size) if size < 1 else size])
    with pytest.raises(MzarrError, match=r"cut\.mzarr") as info:
        m = Mzarr(cut)
        m.numpy()
        for lvl in m.levels:
            lvl[...]
    assert isinstance(info.value, (MzarrFormatError, CorruptChunkError))  # the file, or the one chunk it cost
    kept = int(len(data) * size) if size < 1 else size
    assert f"cut short (an interrupted copy or download?): it holds {kept} of the {len(data)} bytes" in str(info.value)


def test_truncated_inside_the_sqlite_header(small_file, tmp_path):
    """A file cut inside the 100-byte SQLite header is damaged, not 'an SQLite database of another application'."""
    path, _ = small_file
    cut = tmp_path / "cut.mzarr"
    cut.write_bytes(path.read_bytes()[:50])
    with pytest.raises(MzarrFormatError, match=r"cut\.mzarr") as info:
        Mzarr(cut)
    message = str(info.value).replace(str(cut), "")
    assert any(w in message for w in ("truncated", "damaged", "malformed")), message


def test_file_from_a_newer_format_version(small_file):
    """A file whose mzarr block has a format_version from the future asks to upgrade instead of misreading it."""
    path, _ = small_file
    meta = json.loads(chunk_blobs(path)["zarr.json"])
    meta["attributes"]["mzarr"]["format_version"] = 99
    set_blob(path, "zarr.json", json.dumps(meta).encode())
    with pytest.raises(MzarrFormatError, match=r"newer Mzarr \(format 99\).*upgrade"):
        Mzarr(path)


# -- arrays that cannot be images --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,pattern",
    [
        ((2, 3, 4, 5), r"4D array \(shape \(2, 3, 4, 5\)\) needs channel_axis="),
        ((2, 3, 4, 5, 6), r"2D and 3D images .* got a 5D array"),
        ((7,), r"got a 1D array"),
        ((), r"got a 0D array"),
        ((0, 5), r"cannot store an empty image \(shape \(0, 5\)\)"),
    ],
)
def test_unsupported_dimensions(shape, pattern):
    with pytest.raises(MzarrFormatError, match=pattern):
        Mzarr(np.zeros(shape, np.uint8))


def test_bad_axes_and_channel_axis():
    with pytest.raises(MzarrFormatError, match=r"channel_axis=1 is in the middle"):
        Mzarr(np.zeros((4, 3, 5), np.uint8), channel_axis=1)
    with pytest.raises(MzarrFormatError, match=r"axes must be one of"):
        Mzarr(np.zeros((4, 5), np.uint8), axes="xy")
    with pytest.raises(MzarrFormatError, match=r"axes 'zyx' has 3 letters but the array has 2 dimensions"):
        Mzarr(np.zeros((4, 5), np.uint8), axes="zyx")
    with pytest.raises(MzarrFormatError, match=r"channel axis needs a 3D or 4D array"):
        Mzarr(np.zeros((4, 5), np.uint8), channel_axis=0)


@pytest.mark.parametrize("dtype", ["complex64", "complex128", "object", "U3", "S2", "datetime64[s]", "V4"])
def test_unsupported_dtypes(dtype):
    a = np.zeros((4, 5), dtype)
    pattern = re.escape(f"dtype {np.dtype(dtype)} cannot be stored") + ".*supported dtypes are uint8"
    with pytest.raises(MzarrDtypeError, match=pattern):
        Mzarr(a)


def test_unsupported_dtype_for_empty_create(tmp_path):
    with pytest.raises(MzarrDtypeError, match="complex64 cannot be stored"):
        Mzarr(tmp_path / "c.mzarr", "w", shape=(4, 4), dtype="complex64")
    assert not (tmp_path / "c.mzarr").exists()


# -- metadata ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value,why",
    [({1, 2}, "set is not JSON serializable"), (float("nan"), "nan"), (np.arange(3), "ndarray is not JSON"),
     (float("inf"), "inf"), (b"bytes", "bytes is not JSON")],
)
def test_non_json_attrs(small_file, value, why):
    """Non-JSON metadata is refused everywhere it can enter: constructor, save(attrs=), live attrs()."""
    path, a = small_file
    with pytest.raises(MzarrValueError, match=rf"must be JSON.*{why}"):
        Mzarr(a, attrs={"k": value})
    with pytest.raises(MzarrValueError, match=rf"must be JSON.*{why}"):
        Mzarr(a).save(path.with_name("other.mzarr"), attrs={"k": value})
    assert not path.with_name("other.mzarr").exists()
    with Mzarr(path, "r+") as m:
        with pytest.raises(MzarrValueError, match=rf"value for 'k' must be JSON.*{why}"):
            m.attrs()["k"] = value
        assert "k" not in m.attrs()
    with Mzarr(path) as m:
        assert "k" not in m.attrs()


# -- values that do not fit ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dtype,value,error,pattern",
    [
        ("uint8", 300, MzarrValueError, r"values from 300 to 300 do not fit the image's dtype uint8 \(0\.\.255\)"),
        ("uint8", np.array([0, 256]), MzarrValueError, r"do not fit the image's dtype uint8"),
        ("uint16", -1, MzarrValueError, r"values from -1 to -1 do not fit the image's dtype uint16 \(0\.\.65535\)"),
        ("int16", 1.5, MzarrValueError, r"fractional values into a int16 image"),
        ("uint8", 1.5, MzarrValueError, r"fractional values into a uint8 image"),
        ("int8", -129, MzarrValueError, r"do not fit the image's dtype int8 \(-128\.\.127\)"),
        ("uint16", float("nan"), MzarrValueError, r"NaN or infinity into a uint16 image"),
        ("bool", 2, MzarrValueError, r"bool image takes only 0/1 or True/False"),
        ("float32", 1e40, MzarrValueError, r"do not fit the image's dtype float32"),
        ("uint8", "a", MzarrDtypeError, r"cannot write <U1 values into a uint8 image"),
        ("int32", 2**31, MzarrValueError, r"do not fit the image's dtype int32"),
        ("uint64", -1, MzarrValueError, r"do not fit the image's dtype uint64"),
    ],
)
def test_values_out_of_range(tmp_path, dtype, value, error, pattern):
    """Writing a value the dtype cannot hold raises (no silent wrap), in memory and in a file, changing nothing."""
    a = np.zeros((20, 20), dtype)
    mem = Mzarr(a)
    with pytest.raises(error, match=pattern):
        mem[0:2, 0:2] = value
    assert not a.any()
    path = Mzarr(a).save(tmp_path / "v.mzarr", chunks=(8, 8))
    with Mzarr(path, "r+") as m:
        with pytest.raises(error, match=pattern):
            m[0:2, 0:2] = value
        assert_bit_exact(m[...], a)


def test_values_that_fit_are_accepted(tmp_path):
    """The range check is exact: the dtype's limits, whole floats and bools are accepted."""
    a = np.zeros((4, 4), np.uint8)
    m = Mzarr(a)
    m[0, 0] = 255
    m[0, 1] = 3.0
    m[0, 2] = True
    m[1] = np.array([0, 1, 254, 255], np.int64)
    assert a[0, :3].tolist() == [255, 3, 1] and a[1].tolist() == [0, 1, 254, 255]


# -- read-only and closed ----------------------------------------------------------------------------------------
def test_write_to_read_only_file(small_file):
    path, a = small_file
    with Mzarr(path) as m:
        assert not m.writable and m.mode == "r"
        with pytest.raises(MzarrReadOnlyError, match=r"read-only; open the file with Mzarr\(path, 'r\+'\)"):
            m[0, 0] = 1
        with pytest.raises(MzarrReadOnlyError, match=r"read-only.*'r\+'"):
            m.attrs()["x"] = 1
    with Mzarr(path) as m:
        assert_bit_exact(m[...], a)


def test_write_to_read_only_array():
    a = np.zeros((5, 5), np.uint8)
    a.flags.writeable = False
    m = Mzarr(a)
    assert not m.writable
    with pytest.raises(MzarrReadOnlyError, match=r"source array .* is read-only"):
        m[0, 0] = 1


def test_read_only_file_on_disk(small_file):
    """A file without write permission opens read-only; asking for 'r+' fails with an error, not a crash later."""
    import os
    import stat

    path, a = small_file
    os.chmod(path, stat.S_IRUSR)
    try:
        if os.access(path, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("permissions are not enforced for this user")
        with Mzarr(path) as m:
            assert_bit_exact(m[...], a)
        with pytest.raises((MzarrError, PermissionError)):
            with Mzarr(path, "r+") as m:
                m[0, 0] = 1
    finally:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def test_use_after_close(small_file):
    path, _ = small_file
    m = Mzarr(path, "r+")
    m.close()
    m.close()  # closing twice is harmless
    with pytest.raises(MzarrValueError, match="has been closed"):
        m[0, 0]
    with pytest.raises(MzarrValueError, match="has been closed"):
        m[0, 0] = 1


def test_bad_mode(small_file):
    path, _ = small_file
    with pytest.raises(MzarrValueError, match=r"mode must be one of r, r\+, a, w, w-; got 'x'"):
        Mzarr(path, "x")


def test_level_out_of_range(small_file):
    path, _ = small_file
    with Mzarr(path) as m:
        n = len(m.levels)
        assert m.level(-1).index == n - 1
        with pytest.raises(IndexError, match=rf"level {n} does not exist: this image has {n} levels"):
            m.level(n)


# -- corrupt chunks ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["uint8", "float32", "bool", "int16"])
def test_first_chunk_garbage(tmp_path, dtype):
    """The first chunk '0/c/0/0' overwritten with garbage (random bytes, empty, truncated codestream): reading it
    raises CorruptChunkError naming '0/c/0/0' and level 0; the other chunks still read."""
    a = smooth_array((70, 60), dtype, seed=5)
    path = Mzarr(a).save(tmp_path / "g.mzarr", chunks=(32, 32))
    good = chunk_blobs(path)["0/c/0/0"]
    for garbage in (np.random.default_rng(0).bytes(300), b"", good[: len(good) // 2]):
        set_blob(path, "0/c/0/0", garbage)
        with Mzarr(path) as m:
            with pytest.raises(CorruptChunkError, match=r"chunk 0/c/0/0 \(level 0, chunk \(0, 0\)\) of .*g\.mzarr"):
                m[0, 0]
            with pytest.raises(CorruptChunkError, match=r"damaged"):
                m.numpy()
            assert_bit_exact(m[32:, :], a[32:, :])
            assert_bit_exact(m[:32, 32:], a[:32, 32:])


@pytest.mark.parametrize("dtype", ["uint8", "float32", "bool", "int16"])
def test_corrupt_chunk_is_named(tmp_path, dtype):
    """A chunk overwritten with garbage raises CorruptChunkError naming that chunk when (and only when) read."""
    a = smooth_array((100, 90), dtype, seed=2)
    path = Mzarr(a).save(tmp_path / "c.mzarr", chunks=(32, 32))
    set_blob(path, "0/c/1/2", b"\x00garbage" * 20)
    with Mzarr(path) as m:
        assert_bit_exact(m[0:32, :], a[0:32, :])  # chunks (0, *) are fine
        assert_bit_exact(m[32:64, 0:64], a[32:64, 0:64])  # so are (1, 0) and (1, 1)
        with pytest.raises(CorruptChunkError, match=r"chunk 0/c/1/2 \(level 0, chunk \(1, 2\)\) of .*c\.mzarr"):
            m[...]
        with pytest.raises(CorruptChunkError, match=r"chunk 0/c/1/2 "):
            m[40, 70]
        assert_bit_exact(m.levels[1][...], reference_pyramid(a, "yx", 2, "mean")[1])  # other levels still read
    set_blob(path, "1/c/0/0", b"")
    with Mzarr(path) as m:
        with pytest.raises(CorruptChunkError, match=r"chunk 1/c/0/0 \(level 1, chunk \(0, 0\)\)"):
            m.levels[1][0:5, 0:5]


def test_corrupt_chunk_in_rgb_and_3d(tmp_path):
    """The chunk name uses storage order (channel first): the key as stored in the file."""
    rgb = smooth_array((40, 40, 3), "uint8")
    path = Mzarr(rgb).save(tmp_path / "rgb.mzarr", chunks=(16, 16, 3))
    set_blob(path, "0/c/0/1/2", b"junk")
    with Mzarr(path) as m:
        with pytest.raises(CorruptChunkError, match=r"chunk 0/c/0/1/2 "):
            m[20, 35, 0]
    vol = smooth_array((10, 20, 20), "uint16")
    path = Mzarr(vol).save(tmp_path / "v.mzarr", chunks=(4, 8, 8))
    set_blob(path, "0/c/2/0/1", b"junk")
    with Mzarr(path) as m:
        with pytest.raises(CorruptChunkError, match=r"chunk 0/c/2/0/1 "):
            m[8:, :, 10:12]
        assert_bit_exact(m[0:8], vol[0:8])


# -- bad save arguments ------------------------------------------------------------------------------------------
def test_bad_save_arguments(tmp_path):
    a = smooth_array((40, 40), "uint8")
    m = Mzarr(a)
    cases = [
        (dict(chunks=(16,)), r"chunks must be 2 positive integers"),
        (dict(chunks=(0, 16)), r"chunks must be 2 positive integers"),
        (dict(downsample="median"), r"downsample must be one of mean, nearest, mode"),
        (dict(spacing=(1.0, -2.0)), r"spacing must be 2 positive numbers"),
        (dict(spacing=(1.0, 2.0, 3.0)), r"spacing must be 2 positive numbers"),
        (dict(quality=120), r"quality must be between 0 and 100"),
        (dict(lossless=False, distance=30), r"distance must be in \(0, 25\]"),
        (dict(effort=11), r"effort must be between 1 and 10"),
        (dict(levels=0), r"levels must be at least 1"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(MzarrValueError, match=pattern):
            m.save(tmp_path / "bad.mzarr", **kwargs)
        assert not (tmp_path / "bad.mzarr").exists(), kwargs
    with pytest.raises(MzarrValueError, match=r"lossy compression is available for uint8, uint16, int8 and int16"):
        Mzarr(a.astype(np.float32)).save(tmp_path / "bad.mzarr", lossless=False)
    with pytest.raises(MzarrFileNotFoundError, match=r"the folder .*no_such_dir does not exist"):
        m.save(tmp_path / "no_such_dir" / "x.mzarr")
    (tmp_path / "taken").mkdir()
    with pytest.raises(MzarrFormatError, match=r"cannot save a single-file \.mzarr over the folder"):
        m.save(tmp_path / "taken")
    assert (tmp_path / "taken").is_dir()


def test_write_into_corrupt_chunk(small_file):
    """A partial write into a damaged chunk raises CorruptChunkError naming it and changes nothing; writes that
    do not need the damaged chunk still work."""
    path, a = small_file
    set_blob(path, "0/c/1/1", b"junk")
    before = chunk_blobs(path)
    with Mzarr(path, "r+") as m:
        with pytest.raises(CorruptChunkError, match=r"chunk 0/c/1/1 "):
            m[40:50, 40:50] = 1
        assert chunk_blobs(path) == before, "a failed write must roll back"
        m[0:10, 0:10] = 1
        assert_bit_exact(m[0:10, 0:10], np.ones((10, 10), np.uint8))
