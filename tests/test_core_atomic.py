"""Crash safety: a save that fails, is cancelled or is killed (-9) leaves the previous file intact; a kill -9 in the
middle of in-place writes leaves one of the committed states; a reader in another process, while a writer writes,
never errors and always sees a whole region from one state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_bit_exact, assert_pyramid, reference_pyramid, smooth_array, temp_leftovers

import mzarr_core.writer as writer
from mzarr import Mzarr
from mzarr_core.errors import SaveCancelled
from mzarr_core.sqlite_store import SqliteStore

OLD_SHAPE = (300, 260)


@pytest.fixture
def old_file(tmp_path) -> tuple[Path, np.ndarray, bytes]:
    """An existing image file (the 'old' state): its path, pixels and bytes."""
    old = smooth_array(OLD_SHAPE, "uint16", seed=1)
    path = Mzarr(old, attrs={"version": "old"}).save(tmp_path / "image.mzarr", chunks=(32, 32))
    return path, old, path.read_bytes()


def assert_old_intact(path: Path, old: np.ndarray, old_bytes: bytes | None = None) -> None:
    """The file at ``path`` still opens with the old pixels, pyramid and attrs (and bytes, when given), and no
    temporary file is left beside it."""
    if old_bytes is not None:
        assert path.read_bytes() == old_bytes, "the old file was modified"
    with Mzarr(path) as m:
        assert m.attrs()["version"] == "old"
        assert_pyramid(m, old, "mean")
    assert temp_leftovers(path.parent) == []


def _new_image() -> Mzarr:
    return Mzarr(smooth_array((400, 350), "uint16", seed=2)[::-1].copy(), attrs={"version": "new"})


# -- interrupted saves (in process) -----------------------------------------------------------------------------
@pytest.mark.parametrize("exc_type", [SaveCancelled, RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("after_calls", [1, 2, 6])
def test_progress_raising_aborts_save(old_file, monkeypatch, exc_type, after_calls):
    """Raising from progress() after some calls propagates, keeps the old file byte-identical, leaves no temp."""
    path, old, old_bytes = old_file
    monkeypatch.setattr(writer, "BLOCK_BUDGET", 4 * 32 * 32 * 2)  # many superblocks: many progress calls
    calls = []

    def progress(done, total):
        calls.append((done, total))
        if len(calls) >= after_calls:
            raise exc_type("stop")

    with pytest.raises(exc_type):
        _new_image().save(path, chunks=(32, 32), progress=progress)
    assert len(calls) == after_calls
    assert_old_intact(path, old, old_bytes)


def test_cancel_new_path_leaves_nothing(tmp_path):
    """A cancelled save to a new path creates nothing at all."""
    def progress(done, total):
        if done:
            raise SaveCancelled("user pressed cancel")

    with pytest.raises(SaveCancelled, match="user pressed cancel"):
        _new_image().save(tmp_path / "fresh.mzarr", chunks=(32, 32), progress=progress)
    assert os.listdir(tmp_path) == []


def test_failure_inside_writing(old_file, monkeypatch):
    """A failure deep inside the write (disk full while storing the 20th chunk) keeps the old file."""
    path, old, old_bytes = old_file
    original = SqliteStore.set_bytes_sync
    count = {"n": 0}

    def failing(self, key, data):
        if "/c/" in key:
            count["n"] += 1
            if count["n"] == 20:
                raise OSError(28, "No space left on device")
        return original(self, key, data)

    monkeypatch.setattr(SqliteStore, "set_bytes_sync", failing)
    with pytest.raises(OSError, match="No space left"):
        _new_image().save(path, chunks=(32, 32))
    assert count["n"] >= 20  # zarr stores chunks concurrently: a few more may have been attempted
    assert_old_intact(path, old, old_bytes)


def test_failure_in_downsampling_and_finalize(old_file, monkeypatch):
    """Failures in the pyramid step and in the final commit of the temporary file keep the old file too."""
    path, old, old_bytes = old_file
    real = writer.downsample
    calls = {"n": 0}

    def bad_downsample(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("simulated")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, "downsample", bad_downsample)
    with pytest.raises(MemoryError):
        _new_image().save(path, chunks=(32, 32))
    assert_old_intact(path, old, old_bytes)
    monkeypatch.setattr(writer, "downsample", real)

    def bad_finalize(self):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(SqliteStore, "finalize", bad_finalize)
    with pytest.raises(OSError, match="Input/output error"):
        _new_image().save(path, chunks=(32, 32))
    assert_old_intact(path, old, old_bytes)


def test_cancelled_save_over_itself_keeps_working(old_file):
    """Cancelling a save of an open file over its own path leaves the file and the open object usable."""
    path, old, _ = old_file
    with Mzarr(path, "r+") as m:
        def progress(done, total):
            if done:
                raise SaveCancelled()

        with pytest.raises(SaveCancelled):
            m.save(path, chunks=(16, 16), progress=progress)
        assert m.chunks == (32, 32)
        assert_bit_exact(m[...], old)
        m[0, 0] = 1
    expected = old.copy()
    expected[0, 0] = 1
    with Mzarr(path) as m:
        assert_pyramid(m, expected, "mean")
    assert temp_leftovers(path.parent) == []


def test_cancelled_directory_save_keeps_old_folder(tmp_path):
    """The OME-Zarr folder form: a cancelled save over an existing folder keeps it and removes the temporary."""
    old = smooth_array((120, 100), "uint8", seed=3)
    path = Mzarr(old, attrs={"version": "old"}).save(tmp_path / "img.ome.zarr", chunks=(32, 32))

    def progress(done, total):
        if done:
            raise SaveCancelled()

    with pytest.raises(SaveCancelled):
        Mzarr(old[::-1].copy()).save(path, chunks=(16, 16), progress=progress)
    assert_old_intact(path, old)
    assert sorted(os.listdir(tmp_path)) == ["img.ome.zarr"]


# -- kill -9 ------------------------------------------------------------------------------------------------------
SAVE_CHILD = """
import sys, time, numpy as np
import mzarr_core.writer as writer
from mzarr import Mzarr
writer.BLOCK_BUDGET = 64 * 64 * 2 * 4                  # many superblocks
rng = np.random.default_rng(7)
a = rng.integers(0, 65535, (1200, 1100), dtype=np.uint16)   # noise: slow to encode
def progress(done, total):
    print("progress", done, total, flush=True)
Mzarr(a, attrs={"version": "new"}).save(sys.argv[1], chunks=(64, 64), progress=progress)
print("saved", flush=True)
"""


def _start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def _wait_for_lines(proc: subprocess.Popen, n: int, prefix: str, timeout: float = 60.0) -> list[str]:
    """Read the child's stdout until ``n`` lines starting with ``prefix`` arrived (fails on timeout/exit)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while sum(1 for line in lines if line.startswith(prefix)) < n:
        assert time.monotonic() < deadline, f"child too slow: {lines[-3:]}"
        line = proc.stdout.readline()
        if not line:
            proc.wait()
            pytest.fail(f"child exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        lines.append(line.strip())
    return lines


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("progress_lines", [2, 12])
def test_kill_9_during_save_keeps_old_file(old_file, progress_lines):
    """kill -9 of a process saving a large image over an existing file: the old file opens with old content.
    (A hidden .NAME.tmp-* temporary may remain after a kill; it never replaces the file.)"""
    path, old, old_bytes = old_file
    proc = _start(SAVE_CHILD, str(path))
    try:
        lines = _wait_for_lines(proc, progress_lines, "progress")
    finally:
        _kill(proc)
    done, total = map(int, lines[-1].split()[1:])
    assert 0 < done < total, "the kill must land mid-save"
    assert path.read_bytes() == old_bytes
    with Mzarr(path) as m:
        assert m.attrs()["version"] == "old"
        assert_pyramid(m, old, "mean")
    leftovers = temp_leftovers(path.parent)
    assert all(n.startswith(".image.mzarr.tmp-") for n in leftovers), leftovers
    # and the next save over the same path still works
    new = smooth_array(OLD_SHAPE, "uint16", seed=9)
    Mzarr(new).save(path, chunks=(32, 32))
    with Mzarr(path) as m:
        assert_bit_exact(m.numpy(), new)


WRITE_CHILD = """
import sys, numpy as np
from mzarr import Mzarr
m = Mzarr(sys.argv[1], "r+")
i = 0
while True:
    i += 1
    m[20:250, 10:230] = i          # many chunks of level 0 and of every coarser level
    print("committed", i, flush=True)
"""


@pytest.mark.parametrize("delay", [0.0, 0.013, 0.037])
def test_kill_9_during_in_place_writes(old_file, delay):
    """kill -9 while a process writes region after region in place: the file opens, the region holds a single
    committed value (the last reported one or the next), outside it the old pixels, and every level matches."""
    path, old, _ = old_file
    proc = _start(WRITE_CHILD, str(path))
    try:
        lines = _wait_for_lines(proc, 3, "committed")
        time.sleep(delay)
    finally:
        _kill(proc)
    rest = proc.stdout.read().split()
    reported = [int(x) for x in " ".join(lines).split() + rest if x.isdigit()]
    last = max(reported)
    with Mzarr(path) as m:
        data = m.numpy()
        region = data[20:250, 10:230]
        values = np.unique(region)
        assert len(values) == 1, f"half-written region: values {values[:10]}"
        assert values[0] in (last, last + 1), f"region holds {values[0]}, last committed {last}"
        expected = old.copy()
        expected[20:250, 10:230] = values[0]
        assert_bit_exact(data, expected)
        assert_pyramid(m, expected, "mean")


# -- a reader while a writer writes --------------------------------------------------------------------------------
WRITER_LOOP = """
import sys, time, numpy as np
from mzarr import Mzarr
m = Mzarr(sys.argv[1], "r+")
end = time.monotonic() + float(sys.argv[2])
i = 0
print("start", flush=True)
while time.monotonic() < end:
    i += 1
    m[0:200, 0:180] = i
m.close()
print("done", i, flush=True)
"""


def test_reader_sees_whole_states_while_writer_writes(old_file):
    """A reader process-side loop over a multi-chunk region (and its level-1 counterpart) while another process
    writes it: never an error, every read is one uniform value, values never go back, levels agree."""
    path, old, _ = old_file
    reader = Mzarr(path)
    proc = _start(WRITER_LOOP, str(path), "3.0")
    try:
        _wait_for_lines(proc, 1, "start")
        seen: list[int] = []
        reads = 0
        while proc.poll() is None:
            region = reader[0:200, 0:180]
            reads += 1
            if np.array_equal(region, old[0:200, 0:180]):
                state = 0  # before the writer's first commit
            else:
                values = np.unique(region)
                assert len(values) == 1, f"read {reads}: mixed values {values[:8]} in one region read"
                state = int(values[0])
            seen.append(state)
            coarse = reader.levels[1][0:100, 0:90]
            assert len(np.unique(coarse)) == 1 or np.array_equal(
                coarse, reference_pyramid(old, "yx", 2, "mean")[1][0:100, 0:90]
            ), f"level 1 mixed: {np.unique(coarse)[:8]}"
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            _kill(proc)
        reader.close()
    assert reads > 10, reads
    assert all(b >= a for a, b in zip(seen, seen[1:])), "a reader saw an older state after a newer one"
    n_writes = int(out.split()[-1])
    assert n_writes > 10
    with Mzarr(path) as m:
        expected = old.copy()
        expected[0:200, 0:180] = n_writes
        assert_pyramid(m, expected, "mean")


def test_thread_reader_while_writer_in_same_process(old_file):
    """The same with a reader thread on its own Mzarr object in the writer's process."""
    import threading

    path, old, _ = old_file
    errors: list[str] = []
    stop = threading.Event()
    reads = {"n": 0}

    def read_loop():
        with Mzarr(path) as r:
            while not stop.is_set():
                try:
                    region = r[0:200, 0:180]
                except Exception as exc:  # noqa: BLE001 - any error is a failure of the test
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
                reads["n"] += 1
                if len(np.unique(region)) != 1 and not np.array_equal(region, old[0:200, 0:180]):
                    errors.append(f"mixed values {np.unique(region)[:8]}")
                    return

    thread = threading.Thread(target=read_loop)
    with Mzarr(path, "r+") as m:
        thread.start()
        for i in range(1, 40):
            m[0:200, 0:180] = i
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors[:3]
    assert reads["n"] > 0
    expected = old.copy()
    expected[0:200, 0:180] = 39
    with Mzarr(path) as m:
        assert_bit_exact(m.numpy(), expected)
        assert_bit_exact(m.levels[1][...], reference_pyramid(expected, "yx", 2, "mean")[1])


TWO_WRITERS = """
import sys, time
from mzarr import Mzarr
m = Mzarr(sys.argv[1], "r+")
y0, n = int(sys.argv[2]), 0
print("start", flush=True)
end = time.monotonic() + 1.0
while time.monotonic() < end or n == 0:
    n += 1
    m[y0:y0 + 100, 0:200] = n
m.close()
print("done", n, flush=True)
"""


def test_two_writer_processes(old_file):
    """Two processes editing different regions of one file at the same time: both finish without errors and
    the file holds each one's last write, with a consistent pyramid (the shared coarse chunks included)."""
    path, old, _ = old_file
    procs = [_start(TWO_WRITERS, str(path), str(y0)) for y0 in (0, 150)]
    try:
        results = [p.communicate(timeout=90) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                _kill(p)
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-2000:]
    counts = [int(out.split()[-1]) for out, _ in results]
    expected = old.copy()
    expected[0:100, 0:200] = counts[0]
    expected[150:250, 0:200] = counts[1]
    with Mzarr(path) as m:
        assert_pyramid(m, expected, "mean")


def test_reader_threads_on_the_writing_object(old_file):
    """Threads reading through the very Mzarr object that is writing (a viewer's loader threads while the user
    edits) see each region before or after a write, never half of it; levels agree with level 0."""
    import threading

    path, old, _ = old_file
    problems: list[str] = []
    stop = threading.Event()
    reads = {"n": 0}
    with Mzarr(path, "r+") as m:

        def read_loop():
            while not stop.is_set() and not problems:
                try:
                    region = m[0:200, 0:180]
                except Exception as exc:  # noqa: BLE001 - any error is a failure of the test
                    problems.append(f"{type(exc).__name__}: {exc}")
                    return
                reads["n"] += 1
                if len(np.unique(region)) != 1 and not np.array_equal(region, old[0:200, 0:180]):
                    problems.append(f"mixed values {np.unique(region)[:8]}")

        threads = [threading.Thread(target=read_loop) for _ in range(2)]
        for t in threads:
            t.start()
        for i in range(1, 60):
            m[0:200, 0:180] = i
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert reads["n"] > 0
    assert not problems, problems[:3]


MID_TRANSACTION_CHILD = """
import sys, time
import mzarr_core.backends.stored as image
from mzarr import Mzarr
real = image.downsample
def slow_downsample(*args, **kwargs):          # runs inside the write transaction, after level 0 was written
    print("inside", flush=True)
    time.sleep(30)
    return real(*args, **kwargs)
m = Mzarr(sys.argv[1], "r+")
m[0:100, 0:100] = 1
print("committed 1", flush=True)
image.downsample = slow_downsample
m[50:250, 50:250] = 2
"""


def test_kill_9_inside_a_write_transaction(old_file):
    """kill -9 while a write is between level 0 and the coarser levels (a hot journal is left): a read-only open
    gives the last committed state exactly (level 0 rolled back, pyramid consistent); then r+ works again."""
    path, old, _ = old_file
    proc = _start(MID_TRANSACTION_CHILD, str(path))
    try:
        _wait_for_lines(proc, 1, "inside")
    finally:
        _kill(proc)
    expected = old.copy()
    expected[0:100, 0:100] = 1
    with Mzarr(path) as m:
        assert_bit_exact(m.numpy(), expected)
        assert_pyramid(m, expected, "mean")
    with Mzarr(path, "r+") as m:
        m[200:, 200:] = 3
        expected[200:, 200:] = 3
        assert_pyramid(m, expected, "mean")
    assert sorted(n for n in os.listdir(path.parent) if n.startswith(path.name)) == [path.name]


def test_readers_while_saving_over_itself(tmp_path):
    """Reader threads on an object that saves over its own path (re-chunking) keep getting the right pixels:
    no error, and above all no false 'file is damaged' report."""
    import threading

    old = smooth_array((600, 520), "uint16", seed=1)
    path = Mzarr(old).save(tmp_path / "self.mzarr", chunks=(64, 64))
    problems: list[str] = []
    stop = threading.Event()
    reads = {"n": 0}
    with Mzarr(path, "r+") as m:

        def read_loop():
            while not stop.is_set():
                try:
                    region = m[100:300, 100:300]
                except Exception as exc:  # noqa: BLE001 - any error is a failure of the test
                    problems.append(f"{type(exc).__name__}: {exc}")
                    continue
                reads["n"] += 1
                if not np.array_equal(region, old[100:300, 100:300]):
                    problems.append("wrong pixels")

        threads = [threading.Thread(target=read_loop) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.1)
        for i in range(3):
            m.save(path, chunks=(32, 32) if i % 2 == 0 else (64, 64))
        time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert m.chunks == (32, 32)
    assert reads["n"] > 0
    assert not problems, sorted(set(problems))[:3]


def test_a_save_over_a_private_file_keeps_it_private(tmp_path):
    """A .mzarr the user made private (chmod 600: a patient's scan) stayed 0600 only until the next save, which
    rebuilt it as SQLite's 0644, readable by everyone. A save keeps the replaced file's mode; a new file gets
    0666 less the umask (checked in test_core_export with exports)."""
    import os
    import stat

    pixels = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    path = Mzarr(pixels).save(tmp_path / "scan.mzarr")
    os.chmod(path, 0o600)
    Mzarr(pixels + 1).save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with Mzarr(path, "r+") as m:
        m.save(path)  # saved over itself
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with Mzarr(path) as m:
        np.testing.assert_array_equal(m.numpy(), pixels + 1)
