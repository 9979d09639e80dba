"""Reliability under the errors of real machines: is anything lost, is any file torn?

Runs, on a real image (a mosaic of scikit-image photographs), and checks every outcome with ``mzarr verify`` (every
chunk decodes and every pyramid level agrees with the level below) plus an exact comparison with the expected
pixels of one committed state:

- injected SQLite errors (SQLITE_FULL / SQLITE_IOERR, with and without SQLite's own automatic rollback) at random
  statements of edits;
- ``kill -9`` of a process editing in place, at random moments;
- ``kill -9`` of a process saving a new image over the file, at random moments;
- edits and saves on a nearly full file system (a small tmpfs; needs root) and under a file size limit.

Usage: ``python benchmarks/reliability.py [--runs 20] [--markdown out.md]``. Prints a table: runs, data lost, torn
files, failed verifications, error types seen. Not a unit test (a few minutes); the unit tests run a subset.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, mosaic  # noqa: E402

from mzarr import Mzarr  # noqa: E402
from mzarr_core.errors import MzarrError  # noqa: E402
from mzarr_core.pyramid import downsample  # noqa: E402
from mzarr_core.testing import failing_sqlite  # noqa: E402

SHAPE = (1536, 1536)
CHUNKS = (256, 256)


class Outcome:
    """Counts for one scenario."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runs = self.lost = self.torn = self.verify_failed = 0
        self.errors: collections.Counter[str] = collections.Counter()

    def row(self) -> list:
        errors = ", ".join(f"{k} x{v}" for k, v in sorted(self.errors.items())) or "-"
        return [self.name, self.runs, self.lost, self.torn, self.verify_failed, errors]


def verify_cli(path: Path) -> bool:
    """``mzarr verify`` (chunks + pyramid agreement) exits 0."""
    result = subprocess.run([sys.executable, "-m", "mzarr_core.cli", "verify", "--quiet", str(path)], capture_output=True, text=True)
    return result.returncode == 0


def pyramid_agrees(m: Mzarr) -> bool:
    """Every level equals the downsampled level below (independent of the verify command)."""
    levels = m.levels
    prev = levels[0][...]
    for lv in levels[1:]:
        cur = lv[...]
        halve = tuple(a != b for a, b in zip(lv.factor, levels[lv.index - 1].factor))
        if not np.array_equal(downsample(prev, halve, m.downsample_method), cur):
            return False
        prev = cur
    return True


def judge(out: Outcome, path: Path, candidates: list[np.ndarray]) -> None:
    """The file must hold exactly one of the ``candidates`` (committed states) with a consistent pyramid."""
    out.runs += 1
    try:
        with Mzarr(path) as m:
            data = m[...]
            consistent = pyramid_agrees(m)
    except MzarrError as exc:
        out.lost += 1
        out.errors[f"unreadable: {type(exc).__name__}"] += 1
        return
    if not any(np.array_equal(data, c) for c in candidates):
        out.lost += 1
    if not consistent:
        out.torn += 1
    if not verify_cli(path):
        out.verify_failed += 1


def injections(base: np.ndarray, folder: Path, runs: int, rng: np.random.Generator) -> Outcome:
    out = Outcome("SQLITE_FULL / SQLITE_IOERR injected in an edit")
    path = Mzarr(base).save(folder / "inject.mzarr", chunks=CHUNKS)
    state = base.copy()
    for _ in range(runs):
        with Mzarr(path, "r+") as m:
            y, x = (int(v) for v in rng.integers(0, SHAPE[0] - 512, 2))
            block = rng.integers(0, 256, (512, 512), dtype=np.uint8)
            new = state.copy()
            new[y : y + 512, x : x + 512] = block
            with failing_sqlite(m, int(rng.integers(1, 40)), int(rng.choice([10, 13])), bool(rng.integers(2))):
                try:
                    m[y : y + 512, x : x + 512] = block
                    state = new
                except MzarrError as exc:
                    out.errors[type(exc).__name__] += 1
            if not np.array_equal(m[...], state):  # the open object shows the file's state
                out.lost += 1
        judge(out, path, [state])
    return out


EDIT_CHILD = textwrap.dedent("""
    import sys, numpy as np
    from mzarr import Mzarr
    m = Mzarr(sys.argv[1], "r+")
    rng = np.random.default_rng(int(sys.argv[2]))
    for i in range(1, 10**6):
        y, x = (int(v) for v in rng.integers(0, {h} - 400, 2))
        m[y : y + 400, x : x + 400] = i % 256
        print(i, y, x, flush=True)
""").format(h=SHAPE[0])


def kills_during_edits(base: np.ndarray, folder: Path, runs: int, rng: np.random.Generator) -> Outcome:
    out = Outcome("kill -9 during in-place edits")
    for run in range(runs):
        path = Mzarr(base).save(folder / "edit.mzarr", chunks=CHUNKS)
        proc = subprocess.Popen([sys.executable, "-c", EDIT_CHILD, str(path), str(run)], stdout=subprocess.PIPE, text=True)
        time.sleep(1.0 + float(rng.uniform(0, 1.5)))
        proc.send_signal(signal.SIGKILL)
        lines = proc.communicate()[0].split("\n")
        proc.wait()
        committed = [tuple(int(v) for v in line.split()) for line in lines if line.strip()]
        # the candidates: every reported edit applied, and possibly the one in flight
        state = base.copy()
        for i, y, x in committed:
            state[y : y + 400, x : x + 400] = i % 256
        nxt = len(committed) + 1
        child_rng = np.random.default_rng(run)
        for _ in range(nxt):
            y, x = (int(v) for v in child_rng.integers(0, SHAPE[0] - 400, 2))
        in_flight = state.copy()
        in_flight[y : y + 400, x : x + 400] = nxt % 256
        judge(out, path, [state, in_flight])
    return out


SAVE_CHILD = textwrap.dedent("""
    import sys, numpy as np
    from mzarr import Mzarr
    new = np.load(sys.argv[2])
    Mzarr(new).save(sys.argv[1], chunks=(256, 256), progress=lambda d, t: print("progress", d, t, flush=True))
    print("saved", flush=True)
""")


def kills_during_saves(base: np.ndarray, folder: Path, runs: int, rng: np.random.Generator) -> Outcome:
    out = Outcome("kill -9 during a save over the file")
    new = np.ascontiguousarray(base[::-1, ::-1])
    np.save(folder / "new.npy", new)
    for _ in range(runs):
        path = Mzarr(base).save(folder / "save.mzarr", chunks=CHUNKS)
        proc = subprocess.Popen([sys.executable, "-c", SAVE_CHILD, str(path), str(folder / "new.npy")], stdout=subprocess.PIPE, text=True)
        time.sleep(0.6 + float(rng.uniform(0, 1.4)))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        judge(out, path, [base, new])
        for leftover in folder.glob(".save.mzarr.tmp-*"):
            leftover.unlink()
    return out


def disk_full(base: np.ndarray, runs: int, rng: np.random.Generator) -> Outcome | None:
    out = Outcome("edits and saves on a full disk (tmpfs)")
    mount = Path(tempfile.mkdtemp(prefix="mzarr-full-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True).returncode:
        mount.rmdir()
        return None
    try:
        for _ in range(runs):
            for name in os.listdir(mount):
                target = mount / name
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            path = Mzarr(base).save(mount / "x.mzarr", chunks=CHUNKS)
            free = shutil.disk_usage(mount).free
            (mount / "filler").write_bytes(b"\1" * max(0, free - int(rng.integers(100_000, 2_500_000))))
            state = base.copy()
            with Mzarr(path, "r+") as m:
                for _ in range(3):
                    size = int(rng.integers(256, 1024))
                    y, x = (int(v) for v in rng.integers(0, SHAPE[0] - size, 2))
                    block = rng.integers(0, 256, (size, size), dtype=np.uint8)
                    try:
                        m[y : y + size, x : x + size] = block
                        state[y : y + size, x : x + size] = block
                    except MzarrError as exc:
                        out.errors[type(exc).__name__] += 1
            try:
                Mzarr(np.ascontiguousarray(base.T)).save(path, chunks=CHUNKS)
                state = np.ascontiguousarray(base.T)
            except MzarrError as exc:
                out.errors[f"save: {type(exc).__name__}"] += 1
            judge(out, path, [state])
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    base = mosaic(*SHAPE, ("camera", "coins", "moon", "page", "brick", "grass"), seed=3)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mzarr-reliability-") as tmp:
        folder = Path(tmp)
        for scenario in (injections, kills_during_edits, kills_during_saves):
            outcome = scenario(base, folder, args.runs, rng)
            rows.append(outcome.row())
            print(" | ".join(str(c) for c in outcome.row()), flush=True)
        outcome = disk_full(base, max(5, args.runs // 2), rng)
        if outcome is None:
            rows.append(["edits and saves on a full disk (tmpfs)", "skipped: cannot mount tmpfs (needs root)", "", "", "", ""])
        else:
            rows.append(outcome.row())
            print(" | ".join(str(c) for c in outcome.row()), flush=True)
    table = markdown_table(["scenario", "runs", "data lost", "torn files", "verify failed", "errors raised"], rows)
    print(table)
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
