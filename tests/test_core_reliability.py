"""Nothing lost under the errors of real disks: a full disk, I/O errors at any point of an edit (with and without
SQLite rolling the transaction back by itself), read-only media and files, a writer killed while editing through a
symlink, and metadata changes that fail. Each case ends with the file in its old (or new) state at EVERY pyramid
level, an ``MzarrError`` saying what happened, and the open object usable (or closed with a clear message)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_bit_exact, assert_pyramid

from mzarr import Mzarr
from mzarr_core.errors import (
    MzarrDiskFullError,
    MzarrError,
    MzarrReadOnlyError,
    MzarrStorageError,
    MzarrValueError,
)
from mzarr_core.testing import FlakyConnection, failing_sqlite

REPO = Path(__file__).resolve().parents[1]


def _camera_mosaic(n: int = 2) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(np.tile(skimage.data.camera(), (n, n)))


def _noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def assert_consistent(path: Path, expected_level0: np.ndarray) -> None:
    """The file's level 0 is ``expected_level0`` and every coarser level is its pyramid (no torn edit)."""
    with Mzarr(path) as m:
        assert_pyramid(m, expected_level0, m.downsample_method)


# -- a small file system that fills up --------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted for this test (needs root / CAP_SYS_ADMIN, as in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root/CAP_SYS_ADMIN): {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` up to ``leave`` free bytes with one filler file."""
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free
    with open(filler, "ab") as f:
        f.write(b"\1" * max(0, free - leave))
    return filler


def test_edit_on_a_full_disk_keeps_every_level(small_disk):
    """Edits bigger than the free space fail with MzarrDiskFullError; the file keeps its old pixels at every level
    (the bug: SQLite rolled back by itself and the rest of the edit was committed chunk by chunk), the open object
    still reads the old state, and the same edit succeeds once space is freed."""
    a = _camera_mosaic(2)
    path = Mzarr(a).save(small_disk / "x.mzarr", chunks=(256, 256))
    filler = _fill(small_disk, 150_000)
    rng = np.random.default_rng(1)
    new = _noise((1024, 1024), 7)
    with Mzarr(path, "r+") as m:
        with pytest.raises(MzarrDiskFullError, match=r"x\.mzarr failed: the disk is full.*free some space"):
            m[:, :] = new
        assert_bit_exact(m[...], a, "the open object after the failed edit")
        assert_consistent(path, a)
        # smaller edits, some of which fit: every outcome is all or nothing
        expected = a.copy()
        for i in range(6):
            y, x = rng.integers(0, 700, 2)
            block = _noise((300, 300), i)
            try:
                m[y : y + 300, x : x + 300] = block
                expected[y : y + 300, x : x + 300] = block
            except MzarrDiskFullError:
                pass
            assert_consistent(path, expected)
        filler.unlink()
        m[:, :] = new
        assert_bit_exact(m[...], new)
    assert_consistent(path, new)


def test_save_on_a_full_disk_keeps_the_old_file(small_disk):
    """A save that does not fit is an MzarrDiskFullError; the old file is byte-identical, no temporary is left."""
    a = _camera_mosaic(1)
    path = Mzarr(a).save(small_disk / "x.mzarr")
    before = path.read_bytes()
    _fill(small_disk, 200_000)
    with pytest.raises(MzarrDiskFullError, match=r"disk is full"):
        Mzarr(_noise((1024, 1024), 3)).save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(small_disk)) == ["filler", "x.mzarr"]
    with pytest.raises(MzarrDiskFullError, match=r"disk is full"):
        Mzarr(_noise((1024, 1024), 3)).save(small_disk / "y.ome.zarr")
    assert sorted(os.listdir(small_disk)) == ["filler", "x.mzarr"]


def test_edit_hitting_the_file_size_limit(tmp_path):
    """With a file size limit (RLIMIT_FSIZE: writes fail with EFBIG, an SQLite I/O error) an edit fails cleanly
    in a fresh process, and the file keeps its old state at every level."""
    a = _camera_mosaic(2)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(256, 256))
    limit = path.stat().st_size + 20_000
    script = textwrap.dedent(f"""
        import resource, signal, sys, numpy as np
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from mzarr import Mzarr, MzarrError
        m = Mzarr({str(path)!r}, "r+")
        try:
            m[:, :] = np.random.default_rng(0).integers(0, 256, (1024, 1024), dtype=np.uint8)
        except MzarrError as exc:
            print(type(exc).__name__, exc)
            print("old state", bool((m[...] == np.asarray(m.level(0)[...])).all()))
            sys.exit(3)
        sys.exit(0)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "MzarrStorageError" in result.stdout or "MzarrDiskFullError" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr
    assert_consistent(path, a)


# -- injected SQLite errors at random points of an edit ---------------------------------------------------------
@pytest.mark.parametrize("seed", range(20))
def test_injected_errors_at_random_points_of_an_edit(tmp_path, seed):
    """20 random injection points (a chunk write of level 0, of a coarser level, or the commit), SQLITE_FULL or
    SQLITE_IOERR, with and without SQLite's automatic rollback: each edit is all or nothing at every level, the
    error is an MzarrStorageError, and the object edits fine afterwards."""
    rng = np.random.default_rng(seed)
    a = _camera_mosaic(2)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(128, 128))
    with Mzarr(path, "r+") as m:
        y, x = rng.integers(0, 600, 2)
        size = int(rng.integers(100, 400))
        block = _noise((size, size), seed)
        with failing_sqlite(m, int(rng.integers(1, 30)), int(rng.choice([13, 10])), bool(seed % 2)):
            try:
                m[y : y + size, x : x + size] = block
                failed = False
            except MzarrStorageError as exc:
                failed = True
                assert "nothing of this change was kept" in str(exc).lower() or "as it was" in str(exc), exc
        expected = a.copy()
        if not failed:
            expected[y : y + size, x : x + size] = block
        assert_bit_exact(m[...], expected, f"seed {seed}: open object")
        assert_consistent(path, expected)
        m[0:64, 0:64] = 9  # still usable
        expected[0:64, 0:64] = 9
    assert_consistent(path, expected)


def test_late_writes_after_a_failed_edit_are_refused(tmp_path):
    """zarr stores chunks in concurrent tasks and goes on after the first failure: none of those late writes may
    land in the file after the rollback (in autocommit mode)."""
    a = _camera_mosaic(2)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(64, 64))
    with Mzarr(path, "r+") as m, failing_sqlite(m, 2) as flaky:
        with pytest.raises(MzarrDiskFullError):
            m[:, :] = _noise((1024, 1024), 1)
        attempts = flaky.count
    assert attempts >= 2
    assert_consistent(path, a)


def test_refuses_writes_outside_a_transaction(tmp_path):
    from mzarr_core.sqlite_store import SqliteStore

    path = Mzarr(_camera_mosaic(1)).save(tmp_path / "x.mzarr")
    store = SqliteStore(path)
    with pytest.raises(MzarrStorageError, match="outside a transaction"):
        store.set_bytes_sync("0/c/0/0", b"junk")
    store.close()
    with Mzarr(path) as m:
        m[...]


# -- read-only files, folders and media ---------------------------------------------------------------------------
def _run_without_dac_override(script: str) -> subprocess.CompletedProcess:
    """Run a Python snippet as a user would be: as root, without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH; as
    anyone else, plainly."""
    cmd = [sys.executable, "-c", script]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv (util-linux) is missing to drop CAP_DAC_OVERRIDE")
        cmd = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)


OPEN_AND_EDIT = """
import sys
from mzarr import Mzarr, MzarrReadOnlyError
path = sys.argv[1] if len(sys.argv) > 1 else {path!r}
for mode in ("r+", "a"):
    try:
        Mzarr(path, mode)
    except MzarrReadOnlyError as exc:
        print("refused", mode, exc)
with Mzarr(path) as m:
    print("read", int(m[...].sum()))
    try:
        m.attrs()["x"] = 1
    except MzarrReadOnlyError as exc:
        print("attrs refused")
"""


def test_read_only_file_is_refused_at_open(tmp_path):
    """A file without write permission opened with r+/a: MzarrReadOnlyError at open naming the reason (before:
    the open succeeded and the first write said the file was corrupt); reading works."""
    a = _camera_mosaic(1)
    path = Mzarr(a).save(tmp_path / "x.mzarr")
    os.chmod(path, 0o444)
    result = _run_without_dac_override(OPEN_AND_EDIT.format(path=str(path)))
    assert result.returncode == 0, result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines() if line.startswith("refused ")] == [["refused", "r+"], ["refused", "a"]], result.stdout
    assert "no permission to write" in result.stdout and "Open it read-only (mode 'r')" in result.stdout
    assert f"read {int(a.sum())}" in result.stdout
    assert "attrs refused" in result.stdout


def test_read_only_folder_is_refused_at_open(tmp_path):
    """A writable file in a folder where SQLite cannot create its journal is read-only too, and says why."""
    folder = tmp_path / "locked"
    folder.mkdir()
    a = _camera_mosaic(1)
    path = Mzarr(a).save(folder / "x.mzarr")
    os.chmod(folder, 0o555)
    try:
        result = _run_without_dac_override(OPEN_AND_EDIT.format(path=str(path)))
    finally:
        os.chmod(folder, 0o755)
    assert result.returncode == 0, result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines() if line.startswith("refused ")] == [["refused", "r+"], ["refused", "a"]], result.stdout
    assert "journal" in result.stdout
    assert f"read {int(a.sum())}" in result.stdout


def test_read_only_mount(small_disk):
    """On a file system mounted read-only (a CD, a write-protected share): r+ is refused at open naming the
    mount, reading works (nothing is created beside the file), saving there is refused clearly."""
    a = _camera_mosaic(1)
    path = Mzarr(a).save(small_disk / "x.mzarr")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(MzarrReadOnlyError, match=r"mounted read-only.*Open it read-only"):
        Mzarr(path, "r+")
    with Mzarr(path) as m:
        assert_bit_exact(m[...], a)
    with pytest.raises(MzarrReadOnlyError, match=r"cannot save to .*mounted read-only"):
        Mzarr(a).save(small_disk / "y.mzarr")
    assert os.listdir(small_disk) == ["x.mzarr"]


# -- a writer killed while editing through a symlink --------------------------------------------------------------
KILLED_WRITER = """
import os, signal, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size=1")  # spill the changes into the file before the commit: the journal is hot
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE zarr SET value = zeroblob(length(value)) WHERE key LIKE '%/c/%'")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_writer_through_a_symlink(tmp_path):
    """A writer killed mid-edit through a symlink leaves its hot journal beside the real file; opening the link
    read-only rolls it back and reads the old pixels (before: 'attempt to write a readonly database')."""
    real_dir, link_dir = tmp_path / "data", tmp_path / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    a = _camera_mosaic(2)
    path = Mzarr(a).save(real_dir / "x.mzarr", chunks=(128, 128))
    link = link_dir / "alias.mzarr"
    link.symlink_to(path)
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(link)], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert (real_dir / "x.mzarr-journal").exists(), "the killed writer left no hot journal"
    with Mzarr(link) as m:
        assert_pyramid(m, a, "mean")
    assert not (real_dir / "x.mzarr-journal").exists()
    assert sorted(os.listdir(link_dir)) == ["alias.mzarr"]


def test_edit_through_a_symlink(tmp_path):
    a = _camera_mosaic(1)
    path = Mzarr(a).save(tmp_path / "x.mzarr")
    link = tmp_path / "alias.mzarr"
    link.symlink_to(path)
    with Mzarr(link, "r+") as m:
        m[0:100, 0:100] = 5
    expected = a.copy()
    expected[0:100, 0:100] = 5
    assert link.is_symlink()
    assert_consistent(path, expected)


# -- attributes ---------------------------------------------------------------------------------------------------
def test_nested_non_string_keys_are_refused(tmp_path):
    """{1: 'a', '1': 'b'} would silently lose 'a' in JSON: refused at every depth, nothing saved."""
    path = Mzarr(_camera_mosaic(1), attrs={"keep": 1}).save(tmp_path / "x.mzarr")
    with Mzarr(path, "r+") as m:
        with pytest.raises(MzarrValueError, match=r"key 1 \(int\); keys must be strings"):
            m.attrs()["meta"] = {1: "a", "1": "b"}
        with pytest.raises(MzarrValueError, match=r"key \(1, 2\) \(tuple\)"):
            m.attrs()["meta"] = [{"ok": {(1, 2): 3}}]
        assert m.attrs().to_dict() == {"keep": 1}
        m.attrs()["nested"] = {"a": {}}
        m.attrs()["nested"]["a"][5] = "x"  # a nested edit through the live mapping, checked when flushed
        with pytest.raises(MzarrValueError, match=r"key 5 \(int\)"):
            m.flush()
        del m.attrs()["nested"]["a"][5]
    with Mzarr(path) as m:
        assert m.attrs().to_dict() == {"keep": 1, "nested": {"a": {}}}


def test_update_is_all_or_nothing(tmp_path):
    path = Mzarr(_camera_mosaic(1), attrs={"keep": 1}).save(tmp_path / "x.mzarr")
    with Mzarr(path, "r+") as m:
        with pytest.raises(MzarrValueError, match=r"value for 'bad'"):
            m.attrs().update({"good": 2, "bad": float("nan"), "also_good": 3})
        assert m.attrs().to_dict() == {"keep": 1}
        with pytest.raises(MzarrValueError, match=r"keys must be strings"):
            m.attrs().update({"good": 2, 7: 3})
        assert m.attrs().to_dict() == {"keep": 1}
    with Mzarr(path) as m:
        assert m.attrs().to_dict() == {"keep": 1}


def test_attrs_change_that_fails_to_save_is_undone(tmp_path):
    """A metadata change whose transaction fails (disk full) is not kept in memory either."""
    path = Mzarr(_camera_mosaic(1), attrs={"keep": 1}).save(tmp_path / "x.mzarr")
    with Mzarr(path, "r+") as m:
        m.attrs()["warm"] = 0

        def change_on_a_full_disk(change) -> None:
            with failing_sqlite(m, 1), pytest.raises(MzarrDiskFullError):
                change(m.attrs())

        change_on_a_full_disk(lambda attrs: attrs.__setitem__("stain", "H&E"))
        change_on_a_full_disk(lambda attrs: attrs.update(a=1, b=2))
        change_on_a_full_disk(lambda attrs: attrs.__delitem__("keep"))
        change_on_a_full_disk(lambda attrs: attrs.replace({"new": 1}))
        assert m.attrs().to_dict() == {"keep": 1, "warm": 0}
    with Mzarr(path) as m:
        assert m.attrs().to_dict() == {"keep": 1, "warm": 0}


def test_failed_rollback_closes_the_object(tmp_path):
    """If even the rollback fails, the object closes with a message saying the file kept its old state."""
    a = _camera_mosaic(1)
    path = Mzarr(a).save(tmp_path / "x.mzarr", chunks=(128, 128))

    class NoRollback(FlakyConnection):
        def execute(self, sql, params=()):
            if sql.strip().upper() == "ROLLBACK":
                raise sqlite3.OperationalError("disk I/O error")
            return super().execute(sql, params)

    m = Mzarr(path, "r+")
    m[0, 0] = a[0, 0]
    real = m._store._conn
    m._store._conn = NoRollback(real, 3, 10, False)  # the store drops it: no need to put the real one back
    with pytest.raises(MzarrStorageError):
        m[:, :] = 1
    with pytest.raises(MzarrError, match=r"could not be rolled back.*previous state: open it again"):
        m[0, 0]
    with contextlib.suppress(Exception):
        real.close()
    assert_consistent(path, a)


# -- several edits as one transaction -----------------------------------------------------------------------------
def test_transaction_groups_edits_and_metadata(tmp_path):
    """``with m.transaction():`` saves every write and attribute change together, or none of them: a failure at the
    third write leaves the file, its pyramid, its attributes and the open object as they were."""
    a = _camera_mosaic(2)
    path = Mzarr(a, attrs={"keep": 1}).save(tmp_path / "x.mzarr", chunks=(128, 128))
    with Mzarr(path, "r+") as m:
        with pytest.raises(MzarrDiskFullError):
            with m.transaction():
                m[0:100, 0:100] = 1
                m.attrs()["stain"] = "H&E"
                m[200:300, 200:300] = 2
                with failing_sqlite(m, 1):
                    m[500:700, 500:700] = 3
        assert_bit_exact(m[...], a, "open object after the failed transaction")
        assert m.attrs().to_dict() == {"keep": 1}
        with pytest.raises(KeyboardInterrupt):
            with m.transaction():
                m[0:10, 0:10] = 4
                raise KeyboardInterrupt
        assert_consistent(path, a)
        with m.transaction():
            m[0:100, 0:100] = 1
            m.attrs()["stain"] = "H&E"
            m[200:300, 200:300] = 2
    expected = a.copy()
    expected[0:100, 0:100] = 1
    expected[200:300, 200:300] = 2
    assert_consistent(path, expected)
    with Mzarr(path) as m:
        assert m.attrs().to_dict() == {"keep": 1, "stain": "H&E"}
        with pytest.raises(MzarrReadOnlyError):
            with m.transaction():
                pass


def test_attrs_too_large_to_read_back_are_refused(tmp_path):
    """Metadata a reader would refuse (over the per-document size or value bounds) cannot be written either."""
    path = Mzarr(_camera_mosaic(1), attrs={"keep": 1}).save(tmp_path / "x.mzarr")
    with Mzarr(path, "r+") as m:
        with pytest.raises(MzarrValueError, match=r"too large .*MiB of JSON"):
            m.attrs()["big"] = "x" * (16 * 2**20)
        with pytest.raises(MzarrValueError, match=r"too large .*JSON values"):
            m.attrs()["many"] = list(range(1_200_000))
        m.attrs()["fine"] = list(range(100_000))
    with Mzarr(path) as m:
        assert len(m.attrs()["fine"]) == 100_000 and "big" not in m.attrs()
    with pytest.raises(MzarrValueError, match=r"too large"):
        Mzarr(_camera_mosaic(1), attrs={"big": "x" * (16 * 2**20)})


def test_two_failing_saves_do_not_wait_for_each_other():
    """wait_for_zarr_io (run when a write fails, before the rollback) waits for zarr's other I/O tasks; two of them
    at once (two saves cancelled together) must not wait for each other until the timeout."""
    import asyncio
    import threading
    import time

    from zarr.core import sync as zarr_sync

    from mzarr_core.sqlite_store import wait_for_zarr_io

    loop = zarr_sync._get_loop()
    slow = asyncio.run_coroutine_threadsafe(asyncio.sleep(0.3), loop)  # an I/O task still in flight
    took: list[float] = []

    def waiter() -> None:
        t0 = time.perf_counter()
        wait_for_zarr_io(timeout=20)
        took.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    loop.call_soon_threadsafe(time.sleep, 0.3)  # hold the loop so both waits start in the same turn (see each other)
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    slow.result(1)
    assert len(took) == 2 and max(took) < 5, took  # both return once the real I/O is done, not after 20 s
