"""Fuzzing damaged files: whatever happens to a .mzarr file or an OME-Zarr folder, Mzarr raises an MzarrError.

A seeded mutator starts from small valid images (2D uint8, RGB, 3D uint16, float32/zstd, bool, labels, int16; the
.mzarr file and the OME-Zarr folder forms) and damages one thing per case: bit flips anywhere in the SQLite file,
truncation, a row deleted or rewritten (random bytes, another chunk's bytes, empty, cut short), an edit of a
``zarr.json`` (a value deleted or changed to another type, huge / negative / zero / NaN numbers, deep nesting, long
strings, the whole document replaced), and for folders files or level folders deleted, chunks overwritten and
``zarr.json`` edited or replaced by a folder.

For each case: open, read every level (and a z-plane of volumes), ``report.verify``, ``attrs()``, and the CLI's
``info`` and ``verify`` either work or raise an :class:`~mzarr_core.errors.MzarrError` subclass; never another
exception, a crash of the interpreter, a hang or unbounded memory. The cases run in worker subprocesses with a
per-case watchdog (faulthandler) and an address-space limit of ~500 MB above the worker's baseline; a crashed or
hung worker is restarted after the case it was running, which is recorded as a failure.

Every case is replayable from its id: ``python tests/test_core_fuzz.py --replay sqlite:123`` rebuilds the base
images, applies the same mutation and runs the checks in-process with full tracebacks (``--keep DIR`` also keeps
the damaged file). ``MZARR_FUZZ_CASES=2000`` runs more cases (default: a CI-sized run well under a minute), ``MZARR_FUZZ_SEED=n``
other ones (a replay needs the same seed).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

BASE_SEED = int(os.environ.get("MZARR_FUZZ_SEED", "20251130"))
SQLITE_CASES = int(os.environ.get("MZARR_FUZZ_CASES", "240"))
FOLDER_CASES = max(20, SQLITE_CASES * 3 // 8)
CASE_TIMEOUT_S = float(os.environ.get("MZARR_FUZZ_CASE_TIMEOUT", "10"))  # a case takes ~20-100 ms: more is a hang
MEMORY_HEADROOM = 500 * 2**20  # RLIMIT_AS above the worker's baseline
MAX_LEVEL_BYTES = 32 * 2**20  # a (legitimately) larger level is not read whole: that is a MemoryError, not a bug
MAX_VERIFY_CHUNKS = 20_000  # likewise, metadata declaring a huge chunk grid is not verified chunk by chunk
HERE = Path(__file__).resolve()


# -- base images ----------------------------------------------------------------------------------------------------
def _smooth(shape: tuple[int, ...], dtype: str, seed: int) -> Any:
    """conftest's smooth field, with NaN, inf and -0.0 planted in float images."""
    # the worker runs this file as a script: tests/ is on sys.path
    from conftest import smooth_array

    out = smooth_array(shape, dtype, seed)
    if out.dtype.kind == "f":
        out.flat[:3] = [float("nan"), float("inf"), -0.0]
    return out


BASES = {  # name: (shape, dtype, save options, constructor options)
    "grey": ((100, 90), "uint8", {"chunks": (32, 32)}, {}),
    "rgb": ((48, 40, 3), "uint8", {"chunks": (16, 16, 3)}, {}),
    "vol": ((12, 40, 36), "uint16", {"chunks": (4, 16, 16)}, {"spacing": (2.0, 0.5, 0.5)}),
    "float": ((50, 40), "float32", {"chunks": (16, 16)}, {}),
    "bool": ((40, 30), "bool", {"chunks": (16, 16)}, {}),
    "labels": ((40, 40), "uint16", {"chunks": (16, 16)}, {"is_label": True}),
    "int16": ((30, 34), "int16", {"chunks": (16, 16)}, {}),
    # without checksums (format 1/4): damaged bytes reach the decoders and their guards, not only the crc32c check
    "grey4": ((100, 90), "uint8", {"chunks": (32, 32), "checksums": False}, {}),
    "vol4": ((12, 40, 36), "uint16", {"chunks": (4, 16, 16), "checksums": False}, {"spacing": (2.0, 0.5, 0.5)}),
}
FOLDER_BASES = ("grey", "rgb", "vol", "float")
ATTRS = {"sample": "fuzz", "nested": {"a": [1, 2, {"b": None}], "c": 1.5}, "tags": ["x", "y"], "n": 7}


def make_bases(folder: Path) -> dict[str, Path]:
    """The valid images every case starts from (deterministic), as .mzarr files and OME-Zarr folders."""
    from mzarr import Mzarr

    out: dict[str, Path] = {}
    for i, (name, (shape, dtype, save, ctor)) in enumerate(BASES.items()):
        image = Mzarr(_smooth(shape, dtype, seed=i), attrs=ATTRS, **ctor)
        out[f"{name}.mzarr"] = image.save(folder / f"{name}.mzarr", **save)
        if name in FOLDER_BASES:
            out[f"{name}.ome.zarr"] = image.save(folder / f"{name}.ome.zarr", **save)
    return out


# -- mutations ------------------------------------------------------------------------------------------------------
DEEP = "\u0000DEEP\u0000"
NAN = "\u0000NAN\u0000"


def _nodes(doc: Any, path: tuple = ()) -> list[tuple]:
    """Every (path) inside a JSON document, the root excluded."""
    out = []
    if isinstance(doc, dict):
        items = list(doc.items())
    elif isinstance(doc, list):
        items = list(enumerate(doc))
    else:
        return out
    for k, v in items:
        out.append(path + (k,))
        out.extend(_nodes(v, path + (k,)))
    return out


def _replacement(rng: random.Random, old: Any) -> tuple[Any, str]:
    choice = rng.choice(
        ["null", "true", "int", "negative", "zero", "huge", "hugefloat", "float", "nan", "string", "long", "verylong",
         "list", "dict", "emptylist", "emptydict", "deep", "shrink", "grow"]
    )
    if choice == "null":
        return None, "null"
    if choice == "true":
        return True, "true"
    if choice == "int":
        return rng.randint(1, 100), "small int"
    if choice == "negative":
        return -rng.randint(1, 2**31), "negative int"
    if choice == "zero":
        return 0, "zero"
    if choice == "huge":
        return rng.choice([2**31, 2**53 + 1, 2**63, 2**64 + 5, 10**30, 10**300]), "huge int"
    if choice == "hugefloat":
        return rng.choice([1e308, -1e308, 1e-320, 3.5]), "extreme float"
    if choice == "float":
        return rng.uniform(-5, 5), "float"
    if choice == "nan":
        return NAN, "NaN/Infinity"
    if choice == "string":
        return rng.choice(["", "x", "uint8", "zstd", "0", "../..", "c/0", "\u00e9\u4e2d", "\ud800"]), "short string"
    if choice == "long":
        return "x" * rng.randint(1000, 100_000), "long string"
    if choice == "verylong":
        return "y" * rng.choice([17 * 2**20, 40 * 2**20]), "string above the document limit"
    if choice == "list":
        return [rng.randint(-3, 3) for _ in range(rng.randint(1, 5))], "list of ints"
    if choice == "dict":
        return {"name": "x", "configuration": {}}, "dict"
    if choice == "emptylist":
        return [], "empty list"
    if choice == "emptydict":
        return {}, "empty dict"
    if choice == "deep":
        return DEEP, "deep nesting"
    if choice == "shrink" and isinstance(old, (list, str)) and old:
        return old[: rng.randrange(len(old))], "shortened"
    if choice == "grow" and isinstance(old, list) and old:
        return old + [old[-1]] * rng.randint(1, 3), "lengthened"
    if isinstance(old, int) and not isinstance(old, bool):
        return old * rng.choice([-1, 2, 1000, 2**40]) + rng.choice([0, 1]), "int scaled"
    return None, "null"


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def mutate_json_text(text: str, rng: random.Random) -> tuple[bytes, str]:
    """One edit of a JSON document: a value replaced or deleted, or the whole document replaced."""
    if rng.random() < 0.12:
        choice = rng.choice(["empty", "garbage", "array", "number", "utf8", "cut", "deep", "bom", "utf16"])
        raw = text.encode()
        return {
            "empty": (b"", "document emptied"),
            "garbage": (bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))), "document replaced by random bytes"),
            "array": (b"[1, 2, 3]", "document is a list"),
            "number": (b"5", "document is a number"),
            "utf8": (raw[:10] + b"\xff\xfe\xc3" + raw[10:], "invalid UTF-8"),
            "cut": (raw[: rng.randrange(len(raw))], "document cut short"),
            "deep": (b"[" * 100_000 + b"]" * 100_000, "100000-deep list"),
            "bom": (b"\xef\xbb\xbf" + raw, "UTF-8 BOM"),
            "utf16": (text.encode("utf-16"), "UTF-16 document"),
        }[choice]
    doc = json.loads(text)
    nodes = _nodes(doc)
    if not nodes:
        return b"{}", "document emptied to {}"
    # Favour the keys zarr and Mzarr interpret over user attributes.
    weighted = [p for p in nodes if "attrs" not in p] * 3 + nodes
    path = rng.choice(weighted)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    where = "/".join(str(k) for k in path)
    containers = [p for p in nodes if isinstance(_get(doc, p), dict)] + [()]
    if rng.random() < 0.1:  # a key added (extra fields zarr or Mzarr might interpret)
        target = rng.choice(containers)
        name = rng.choice(["consolidated_metadata", "must_understand", "extra", "ome", "mzarr", "storage_transformers",
                           "dimension_names", "attributes", "configuration", "scale", "multiscales"])
        new, how = _replacement(rng, None)
        _get(doc, target)[name] = new
        what = f"added {'/'.join(str(k) for k in target + (name,))} := {how}"
    elif rng.random() < 0.2:
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
        what = f"deleted {where}"
    else:
        new, how = _replacement(rng, parent[key])
        parent[key] = new
        what = f"{where} := {how}"
    out = json.dumps(doc)
    depth = rng.choice([150, 990, 5000, 100_000])
    out = out.replace(json.dumps(DEEP), "[" * depth + "]" * depth).replace(json.dumps(NAN), rng.choice(["NaN", "Infinity", "-Infinity"]))
    return out.encode("utf-8", "surrogatepass"), what


def mutate_sqlite(path: Path, rng: random.Random) -> str:
    """One damage to a .mzarr file; returns its description."""
    conn = sqlite3.connect(path)
    try:
        keys = [k for (k,) in conn.execute("SELECT key FROM zarr ORDER BY key")]
    finally:
        conn.close()
    meta = [k for k in keys if k.endswith("zarr.json")]
    chunks = [k for k in keys if not k.endswith("zarr.json")]
    kind = rng.choices(["bitflip", "truncate", "delete", "rewrite", "json"], weights=[3, 1, 2, 3, 6])[0]
    if kind == "bitflip":
        data = bytearray(path.read_bytes())
        n = rng.choice([1, 1, 2, 8, 64])
        spots = []
        for _ in range(n):
            i = rng.randrange(len(data)) if rng.random() < 0.8 else rng.randrange(min(len(data), 4096))
            bit = rng.randrange(8)
            data[i] ^= 1 << bit
            spots.append(i)
        path.write_bytes(bytes(data))
        return f"bitflip x{n} at {spots[:4]}"
    if kind == "truncate":
        data = path.read_bytes()
        cut = rng.randrange(len(data))
        path.write_bytes(data[:cut])
        return f"truncated to {cut} of {len(data)} bytes"
    conn = sqlite3.connect(path)
    try:
        if kind == "delete":
            key = rng.choice(meta if rng.random() < 0.4 else keys)
            conn.execute("DELETE FROM zarr WHERE key=?", (key,))
            what = f"row {key} deleted"
        elif kind == "rewrite":
            key = rng.choice(chunks if chunks and rng.random() < 0.7 else keys)
            (old,) = conn.execute("SELECT value FROM zarr WHERE key=?", (key,)).fetchone()
            how = rng.choice(["random", "other", "empty", "cut", "flip", "text", "append"])
            if how == "random":
                new: Any = rng.randbytes(rng.choice([1, 16, 300, 5000]))
            elif how == "other":
                new = conn.execute("SELECT value FROM zarr WHERE key=?", (rng.choice(keys),)).fetchone()[0]
            elif how == "empty":
                new = b""
            elif how == "cut":
                new = old[: rng.randrange(max(1, len(old)))]
            elif how == "flip":
                b = bytearray(old)
                if b:
                    i = rng.randrange(len(b))
                    b[i] ^= 1 << rng.randrange(8)
                new = bytes(b)
            elif how == "text":
                new = old.decode("latin-1")  # stored as TEXT instead of BLOB
            else:
                new = old + rng.randbytes(rng.randint(1, 100))
            conn.execute("UPDATE zarr SET value=? WHERE key=?", (new, key))
            what = f"row {key} rewritten ({how})"
        else:
            key = rng.choice(meta)
            (old,) = conn.execute("SELECT value FROM zarr WHERE key=?", (key,)).fetchone()
            new, what = mutate_json_text(bytes(old).decode(), rng)
            conn.execute("UPDATE zarr SET value=? WHERE key=?", (new, key))
            what = f"{key}: {what}"
        conn.commit()
    finally:
        conn.close()
    return what


def mutate_folder(path: Path, rng: random.Random) -> str:
    """One damage to an OME-Zarr folder; returns its description."""
    files = sorted(p for p in path.rglob("*") if p.is_file())
    metas = [p for p in files if p.name == "zarr.json"]
    chunks = [p for p in files if p.name != "zarr.json"]
    levels = sorted(p for p in path.iterdir() if p.is_dir())
    kind = rng.choices(["delete", "rmdir", "json", "chunk", "dir"], weights=[3, 1, 6, 3, 1])[0]
    if kind == "delete":
        victim = rng.choice(metas if rng.random() < 0.5 else files)
        victim.unlink()
        return f"deleted {victim.relative_to(path)}"
    if kind == "rmdir" and levels:
        victim = rng.choice(levels)
        shutil.rmtree(victim)
        return f"deleted level folder {victim.relative_to(path)}"
    if kind == "chunk" and chunks:
        victim = rng.choice(chunks)
        how = rng.choice(["random", "empty", "cut", "other"])
        data = victim.read_bytes()
        new = {"random": rng.randbytes(rng.choice([3, 300, 4000])), "empty": b"", "cut": data[: rng.randrange(max(1, len(data)))],
               "other": rng.choice(files).read_bytes() if rng.choice(files).exists() else b""}[how]
        victim.write_bytes(new)
        return f"chunk {victim.relative_to(path)} rewritten ({how})"
    if kind == "dir":
        victim = rng.choice(metas)
        victim.unlink()
        victim.mkdir()
        return f"{victim.relative_to(path)} replaced by a folder"
    victim = rng.choice(metas)
    new, what = mutate_json_text(victim.read_text(), rng)
    victim.write_bytes(new)
    return f"{victim.relative_to(path)}: {what}"


# -- one case -------------------------------------------------------------------------------------------------------
def case_list() -> list[str]:
    return [f"sqlite:{i}" for i in range(SQLITE_CASES)] + [f"folder:{i}" for i in range(FOLDER_CASES)]


def prepare_case(case: str, bases: dict[str, Path], work: Path) -> tuple[Path, str]:
    """Copy the case's base image into ``work`` and damage it; (path, description)."""
    family, _ = case.split(":")
    rng = random.Random(f"{BASE_SEED}:{case}")
    if family == "sqlite":
        name = rng.choice(sorted(n for n in bases if n.endswith(".mzarr")))
        target = work / f"case-{case.replace(':', '-')}.mzarr"
        shutil.copyfile(bases[name], target)
        what = mutate_sqlite(target, rng)
    else:
        name = rng.choice(sorted(n for n in bases if n.endswith(".ome.zarr")))
        target = work / f"case-{case.replace(':', '-')}.ome.zarr"
        shutil.copytree(bases[name], target)
        what = mutate_folder(target, rng)
    return target, f"{name}: {what}"


def _step(results: list, failures: list, step: str, fn: Any, label: Any = None) -> Any:
    """Run one check: record "ok" (or ``label(value)``), the MzarrError's class, or a failure with its traceback."""
    from mzarr_core.errors import MzarrError

    try:
        value = fn()
    except MzarrError as exc:
        results.append((step, type(exc).__name__))
        return None
    except BaseException as exc:  # noqa: BLE001 - anything but an MzarrError is what the fuzz looks for
        if isinstance(exc, KeyboardInterrupt):
            raise
        results.append((step, f"FAIL {type(exc).__name__}"))
        failures.append({"step": step, "type": type(exc).__name__, "message": str(exc)[:500], "traceback": traceback.format_exc()[-4000:]})
        return None
    results.append((step, label(value) if label else "ok"))
    return value if value is not None else True


def _cli(argv: list[str]) -> int:
    """The console script in-process: an exception escaping main() is what `python -m` shows as a traceback."""
    from mzarr_core import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    if "Traceback" in err.getvalue():
        raise AssertionError(f"mzarr {' '.join(argv[:1])} printed a traceback: {err.getvalue()[-2000:]}")
    if code not in (0, 1, 2):
        raise AssertionError(f"mzarr {argv[0]} exited {code}")
    return code


def _damaged(report: Any) -> str:
    """What report.verify found: a (checked, problems) tuple or a report object with ``damaged``."""
    problems = report.damaged if hasattr(report, "damaged") else report[1]
    return f"ok, {len(problems)} damaged" if problems else "ok, clean"


def exercise(path: Path) -> tuple[list, list]:
    """Open, read, verify, attrs, CLI info/verify; returns (step outcomes, failures)."""
    from mzarr import Mzarr
    from mzarr_core.report import verify

    results: list = []
    failures: list = []
    image = _step(results, failures, "open", lambda: Mzarr(path))
    chunk_count = None
    if image is not None:
        try:
            levels = _step(results, failures, "levels", lambda: image.levels) or []
            for lv in levels if isinstance(levels, list) else []:
                if lv.nbytes > MAX_LEVEL_BYTES:
                    results.append((f"read {lv.index}", "skipped: too large"))
                    continue
                _step(results, failures, f"read {lv.index}", lambda lv=lv: lv[...])
                if "z" in lv.axes:
                    z = lv.shape[lv.axes.index("z")] // 2
                    _step(results, failures, f"z_plane {lv.index}", lambda lv=lv, z=z: lv.z_plane(z))
            if isinstance(levels, list):
                chunk_count = sum(math.prod(lv.chunk_grid) for lv in levels)
                if chunk_count <= MAX_VERIFY_CHUNKS:
                    _step(results, failures, "verify", lambda: verify(image), _damaged)
                else:
                    results.append(("verify", f"skipped: {chunk_count} chunks"))
            _step(results, failures, "attrs", lambda: image.attrs().to_dict())
        finally:
            _step(results, failures, "close", image.close)
    _step(results, failures, "cli info", lambda: _cli(["info", str(path)]), lambda code: f"exit {code}")
    if chunk_count is None or chunk_count <= MAX_VERIFY_CHUNKS:
        _step(results, failures, "cli verify", lambda: _cli(["verify", str(path), "--quiet"]), lambda code: f"exit {code}")
    return results, failures


# -- the worker subprocess ------------------------------------------------------------------------------------------
def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _selftest(kind: str) -> None:
    import ctypes

    import numpy as np

    if kind == "crash":
        ctypes.string_at(0)  # a segmentation fault
    elif kind == "hang":
        time.sleep(3600)
    elif kind == "memory":
        np.ones(2**31, np.uint8)  # 2 GiB: beyond the address-space limit


def worker(cases: list[str], out_file: Path, work: Path) -> None:
    import faulthandler
    import resource

    import numpy as np

    faulthandler.enable()
    bases = make_bases(work)
    # Warm up (threads, codecs, caches) on a valid file before limiting the address space.
    exercise(bases["vol.mzarr"])
    np.zeros(1)
    if sys.platform.startswith("linux"):
        limit = _vm_size() + MEMORY_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with open(out_file, "a") as out:
        for case in cases:
            out.write(json.dumps({"case": case, "event": "start"}) + "\n")
            out.flush()
            faulthandler.dump_traceback_later(CASE_TIMEOUT_S, exit=True)
            t0 = time.perf_counter()
            if case.startswith("selftest:"):  # the harness's own test: a crash, a hang, a memory blow-up
                out.write(json.dumps({"case": case, "event": "mutated", "mutation": case}) + "\n")
                out.flush()
                results: list = []
                failures: list = []
                _step(results, failures, "open", lambda: _selftest(case.split(":")[1]))
                faulthandler.cancel_dump_traceback_later()
                out.write(json.dumps({"case": case, "event": "done", "mutation": case, "results": results, "failures": failures}) + "\n")
                out.flush()
                continue
            target, what = prepare_case(case, bases, work)
            out.write(json.dumps({"case": case, "event": "mutated", "mutation": what}) + "\n")
            out.flush()
            results, failures = exercise(target)
            faulthandler.cancel_dump_traceback_later()
            out.write(json.dumps({
                "case": case, "event": "done", "mutation": what, "results": results, "failures": failures,
                "seconds": round(time.perf_counter() - t0, 3),
            }) + "\n")
            out.flush()
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)


def run_cases(cases: list[str], tmp: Path, workers: int = 2) -> dict[str, dict]:
    """Run the cases in worker subprocesses (restarted after a crash or hang); one record per case."""
    chunks = [cases[i::workers] for i in range(workers)]
    records: dict[str, dict] = {}
    pending = [(i, c) for i, c in enumerate(chunks) if c]
    env = dict(os.environ, MALLOC_ARENA_MAX="2", PYTHONFAULTHANDLER="1")
    while pending:
        procs = []
        for i, todo in pending:
            out_file = tmp / f"worker-{i}.jsonl"
            out_file.unlink(missing_ok=True)
            work = tmp / f"work-{i}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            proc = subprocess.Popen(
                [sys.executable, str(HERE), "--worker", json.dumps(todo), str(out_file), str(work)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=str(HERE.parent.parent),
            )
            procs.append((i, todo, out_file, proc))
        pending = []
        for i, todo, out_file, proc in procs:
            try:
                _, stderr = proc.communicate(timeout=60 + CASE_TIMEOUT_S * 2 + 2 * len(todo))
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
            events = [json.loads(line) for line in out_file.read_text().splitlines()] if out_file.exists() else []
            started = None
            mutation = None
            for e in events:
                if e["event"] == "start":
                    started, mutation = e["case"], None
                elif e["event"] == "mutated":
                    mutation = e["mutation"]
                else:
                    records[e["case"]] = e
                    started = None
            if not events and proc.returncode != 0:  # the worker did not get to its first case
                for case in todo:
                    records[case] = {
                        "case": case, "event": "done", "mutation": None, "results": [("worker", "FAIL start")],
                        "failures": [{"step": "worker", "type": "start", "message": f"exit code {proc.returncode}",
                                      "traceback": stderr.decode(errors="replace")[-6000:]}],
                    }
                continue
            if proc.returncode != 0 or started is not None:
                stuck = started
                if stuck is not None:
                    hang = b"Timeout (" in stderr
                    records[stuck] = {
                        "case": stuck, "event": "done", "mutation": mutation,
                        "results": [("worker", "FAIL hang" if hang else f"FAIL crash (exit {proc.returncode})")],
                        "failures": [{"step": "worker", "type": "hang" if hang else "crash",
                                      "message": f"exit code {proc.returncode}",
                                      "traceback": stderr.decode(errors="replace")[-6000:]}],
                    }
                    rest = todo[todo.index(stuck) + 1 :]
                    if rest:
                        pending.append((i, rest))
    return records


def summarize(records: dict[str, dict]) -> tuple[Counter, Counter, list[dict]]:
    """(outcome of the open per case, outcome per step over all cases, failures)."""
    opens: Counter = Counter()
    steps: Counter = Counter()
    failures = []
    for case, rec in sorted(records.items()):
        results = [tuple(r) for r in rec["results"]]
        opens[next((o for s, o in results if s in ("open", "worker")), "?")] += 1
        for step, outcome in results:
            steps[(step.split()[0] if step.startswith(("read", "z_plane")) else step, outcome)] += 1
        for f in rec["failures"]:
            failures.append({"case": case, "mutation": rec.get("mutation"), **f})
    return opens, steps, failures


def _report(records: dict[str, dict], seconds: float) -> str:
    opens, steps, failures = summarize(records)
    lines = [f"{len(records)} cases in {seconds:.1f} s", "open: " + ", ".join(f"{k} {v}" for k, v in opens.most_common())]
    lines.append("steps: " + ", ".join(f"{s}={o}: {n}" for (s, o), n in sorted(steps.items())))
    for f in failures[:30]:
        lines.append(f"FAILURE {f['case']} [{f['mutation']}] at {f['step']}: {f['type']}: {f['message'][:300]}\n{f['traceback'][-1500:]}")
    return "\n".join(lines)


# Failures whose fix belongs to a module this test's author does not own: kept out of the main assertion (so the
# suite stays green) and asserted by an xfail(strict=False) test naming the missing fix. Each: (reason, predicate).
KNOWN_ISSUES: list = []  # none left: the z_plane reshape ValueError is now a CorruptChunkError (frames.py)


def known_issue(failure: dict) -> str | None:
    return next((reason for reason, match in KNOWN_ISSUES if match(failure)), None)


# -- the tests ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_records(tmp_path_factory) -> tuple[dict[str, dict], float]:
    if not sys.platform.startswith("linux"):
        pytest.skip("the fuzz workers use /proc and RLIMIT_AS (Linux)")
    tmp = tmp_path_factory.mktemp("fuzz")
    t0 = time.perf_counter()
    records = run_cases(case_list(), tmp)
    seconds = time.perf_counter() - t0
    (tmp / "summary.txt").write_text(_report(records, seconds))
    print("\n" + _report(records, seconds).split("\nFAILURE")[0])
    return records, seconds


def test_fuzz_every_case_ran(fuzz_records):
    """Every seeded case ran to its end (or its crash/hang was recorded), and the mutations really damaged files."""
    records, _ = fuzz_records
    assert set(records) == set(case_list())
    opens, _, _ = summarize(records)
    assert opens["MzarrFormatError"] > len(records) // 10, opens  # the mutations do break metadata
    assert opens["ok"] > len(records) // 10, opens  # and many leave a file that opens (damage found on read)


@pytest.mark.parametrize("family", ["sqlite", "folder"])
def test_fuzz_only_mzarr_errors(fuzz_records, family):
    """Damaged files raise MzarrError subclasses only: no other exception, crash, hang, or CLI traceback."""
    records, seconds = fuzz_records
    mine = {c: r for c, r in records.items() if c.startswith(family + ":")}
    _, _, failures = summarize(mine)
    unknown = [f for f in failures if not known_issue(f)]
    assert not unknown, _report(mine, seconds)


def test_fuzz_harness_catches_crash_hang_and_memory(tmp_path, monkeypatch):
    """The harness itself: a segfault and a hang are recorded against their case (with the native/faulthandler
    traceback), the worker restarts after them, and a 2 GiB allocation fails under the address-space limit."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the fuzz workers use /proc and RLIMIT_AS (Linux)")
    monkeypatch.setenv("MZARR_FUZZ_CASE_TIMEOUT", "3")
    cases = ["selftest:crash", "sqlite:0", "selftest:hang", "selftest:memory", "folder:0"]
    records = run_cases(cases, tmp_path, workers=1)
    assert set(records) == set(cases)
    failures = {f["case"]: f for f in summarize(records)[2]}
    assert failures["selftest:crash"]["type"] == "crash" and "Segmentation fault" in failures["selftest:crash"]["traceback"]
    assert failures["selftest:hang"]["type"] == "hang" and "_selftest" in failures["selftest:hang"]["traceback"]
    assert failures["selftest:memory"]["type"] == "MemoryError"
    assert set(failures) == {"selftest:crash", "selftest:hang", "selftest:memory"}, failures.keys()


def _first_case(family: str, bases: dict[str, Path], work: Path, wanted: str) -> Path:
    """The damaged image of the first case of ``family`` whose mutation description contains ``wanted``."""
    pick = Path(tempfile.mkdtemp(dir=work))
    for i in range(2000):
        folder = pick / f"{family}-{i}"
        folder.mkdir()
        path, what = prepare_case(f"{family}:{i}", bases, folder)
        if wanted in what:
            return path
        shutil.rmtree(folder)
    raise AssertionError(f"no {family} case with {wanted!r}")


def test_cli_subprocess_never_prints_a_traceback(tmp_path):
    """The real console entry point (``python -m mzarr_core.cli``) on damaged files: no traceback, exit 0/1/2, and
    an error is one line."""
    bases = make_bases(tmp_path)
    damaged = [
        _first_case("sqlite", bases, tmp_path, "rewritten (random)"),  # a damaged chunk: verify lists it, exit 1
        _first_case("sqlite", bases, tmp_path, "truncated"),
        _first_case("sqlite", bases, tmp_path, "bitflip x64"),
        _first_case("sqlite", bases, tmp_path, ":= deep nesting"),
        _first_case("folder", bases, tmp_path, "deleted 1/zarr.json"),
    ]
    codes = []
    for path in damaged:
        for command in (["info"], ["verify", "--quiet"]):
            result = subprocess.run(
                [sys.executable, "-m", "mzarr_core.cli", command[0], str(path), *command[1:]],
                capture_output=True, text=True, timeout=120, cwd=str(HERE.parent.parent),
            )
            assert "Traceback" not in result.stderr, (path, command, result.stderr)
            assert result.returncode in (0, 1, 2), (path, command, result.returncode, result.stderr)
            if result.returncode == 2:
                assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            codes.append(result.returncode)
    assert 2 in codes and (1 in codes or 0 in codes), codes


# -- replay ---------------------------------------------------------------------------------------------------------
def replay(case: str, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bases = make_bases(work)
        target, what = prepare_case(case, bases, work)
        print(f"{case}: {what}")
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            dest = keep / target.name
            (shutil.copytree if target.is_dir() else shutil.copyfile)(target, dest)
            print(f"damaged file kept as {dest}")
        results, failures = exercise(target)
        for step, outcome in results:
            print(f"  {step}: {outcome}")
        for f in failures:
            print(f"\n{f['step']}: {f['traceback']}")


if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        sys.path.insert(0, str(HERE.parent.parent))
        worker(json.loads(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    elif sys.argv[1] == "--replay":
        keep = Path(sys.argv[sys.argv.index("--keep") + 1]) if "--keep" in sys.argv else None
        for c in sys.argv[2].split(","):
            replay(c, keep)
    else:
        raise SystemExit("usage: test_core_fuzz.py --replay sqlite:12[,folder:3] [--keep DIR]")
