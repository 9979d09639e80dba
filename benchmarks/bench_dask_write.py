"""Distributed conversion with dask (issue 12, deliverable 4): ``mzarr convert`` of real volumes on 1, 2, 4 workers.

For each volume and configuration, a fresh child process runs :func:`mzarr_core.convert` (what ``mzarr convert``
runs) and reports: wall time of the conversion, the build's wall time, the writer's busy fraction (time inserting
encoded chunks / build wall time), the writer's peak RSS and each worker process's peak RSS
(:class:`mzarr_core.dask_write.DaskSaveStats`). Configurations:

* ``plain``: today's threaded save (no dask), the reference every output is compared to, key by key;
* ``processes N``: ``mzarr convert --workers N --scheduler processes`` (a spawned process pool; its start-up is
  in the time);
* ``threads N``: ``mzarr convert --workers N`` (N superblocks at once, encoded on zarr's thread pool);
* ``cluster N``: a ``distributed.LocalCluster`` of N single-threaded worker processes, started before the clock
  (``mzarr convert --scheduler ADDRESS``), workers started without distributed's ``MALLOC_TRIM_THRESHOLD_``.

*CPU s* is the CPU time of the whole conversion, writer and workers (the pool's and cluster's processes once ended):
what the dask path costs beyond the plain save, and a measure the machine's load hardly changes.

Volumes: ``$MZARR_BENCH_VOLUMES`` (colon-separated files or DICOM folders, see /work/data/README.md) or arguments.
``--stack N`` also converts each volume stacked N times along z (mirrored every other copy; written once to a TIFF
under benchmarks/out/): the same real content, larger, so fixed costs (process start, the reader's set-up in each
worker) weigh less. Prints the machine's load (``uptime``) with the results: the machine may be shared.

    MZARR_BENCH_VOLUMES=/work/data/src/fnndsc_andrei_abdomen_ct python benchmarks/bench_dask_write.py --stack 4

Writes benchmarks/out/bench_dask_write.md and .json. See docs/BENCHMARKS.md, "Distributed conversion with dask".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
ROOT = Path(__file__).resolve().parent.parent


def load() -> str:
    return os.getloadavg().__repr__()


def cpu() -> float:
    """CPU seconds of this process and of its children that have ended (the pool's and cluster's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def child(src: str, dst: str, mode: str, workers: int) -> dict:
    """One conversion in this (fresh) process; returns its measures."""
    from mzarr_core import convert
    from mzarr_core.dask_write import DaskSaveStats, _peak_rss

    stats = DaskSaveStats()
    options: dict = {}
    cluster = client = None
    if mode == "processes":
        options = {"scheduler": "processes", "workers": workers, "dask_stats": stats}
    elif mode == "threads":
        options = {"scheduler": "threads", "workers": workers, "dask_stats": stats}
    elif mode == "cluster":
        import dask
        import distributed

        # distributed's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap threshold:
        # every chunk-sized buffer is then mapped and faulted in afresh (~2x slower reads and downsampling)
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
        client = distributed.Client(cluster, set_as_default=False)
        options = {"scheduler": cluster.scheduler_address, "dask_stats": stats}
    cpu0 = cpu()
    t0 = time.perf_counter()
    convert(src, dst, **options)
    wall = time.perf_counter() - t0
    if client is not None:
        client.close()
        cluster.close()
    return {
        "wall": wall,
        "cpu": cpu() - cpu0,
        "build": stats.wall_seconds or None,
        "insert": stats.insert_seconds,
        "busy": stats.writer_busy if stats.wall_seconds else None,
        "workers_busy": stats.workers_busy if stats.wall_seconds else None,
        "tasks": stats.tasks,
        "writer_rss": _peak_rss(),
        "worker_rss": sorted(stats.worker_peak_rss.values()),
        "bytes": Path(dst).stat().st_size,
    }


def run_child(src: Path, dst: Path, mode: str, workers: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(src), str(dst), mode, str(workers)],
        capture_output=True, text=True, env=env, check=False,
    )
    if out.returncode:
        raise SystemExit(f"{mode} {workers} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def digest(path: Path) -> str:
    """A hash of every stored key and its bytes (the file's table, not its SQLite page layout)."""
    h = hashlib.sha256()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for key, value in conn.execute("SELECT key, value FROM zarr ORDER BY key"):
            h.update(key.encode() + b"\0" + len(value).to_bytes(8, "little") + value)
    finally:
        conn.close()
    return h.hexdigest()


def stacked(src: Path, n: int) -> Path:
    """``src`` stacked ``n`` times along z (every other copy mirrored in z), as a TIFF under benchmarks/out."""
    import numpy as np
    import tifffile

    from mzarr_core.formats import read

    out = OUT / f"stack{n}-{src.name.split('.')[0]}.tif"
    if out.exists():
        return out
    source = read(src)
    a = np.asarray(source.array[...])
    tifffile.imwrite(out, np.concatenate([a if i % 2 == 0 else a[::-1] for i in range(n)]), imagej=False)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("volumes", nargs="*", type=Path)
    p.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4; this machine's cores: "
                   f"{os.cpu_count()})")
    p.add_argument("--modes", default="processes,threads,cluster", help="dask configurations besides plain")
    p.add_argument("--stack", type=int, default=0, help="also each volume stacked N times along z")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds, best wall time kept (default 2)")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        src, dst, mode, workers = args.child
        print(json.dumps(child(src, dst, mode, int(workers))))
        return 0
    volumes = args.volumes or [Path(s) for s in os.environ.get("MZARR_BENCH_VOLUMES", "").split(os.pathsep) if s]
    if not volumes:
        raise SystemExit("give volumes (arguments or $MZARR_BENCH_VOLUMES; see /work/data/README.md)")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.stack > 1:
        volumes = volumes + [stacked(v, args.stack) for v in volumes]
    counts = [int(n) for n in args.workers.split(",")]
    configs = [("plain", 0)] + [(m, n) for m in args.modes.split(",") for n in counts]
    results = []
    loads = [load()]
    print(f"load before: {loads[0]}", flush=True)
    for vol in volumes:
        best: dict[tuple[str, int], dict] = {}
        same: dict[tuple[str, int], bool] = {}  # every round's output had the plain save's keys and bytes
        reference = ""
        for _round in range(args.rounds):
            for mode, n in configs:
                dst = OUT / f"dask-{vol.name.split('.')[0]}-{mode}{n}.mzarr"
                r = run_child(vol, dst, mode, n)
                r["load"] = os.getloadavg()[0]
                r["digest"] = digest(dst)
                dst.unlink()  # the outputs of a large volume would fill the disk: their hashes are kept
                reference = reference or r["digest"]  # plain runs first
                same[(mode, n)] = same.get((mode, n), True) and r["digest"] == reference
                if (mode, n) not in best or r["wall"] < best[(mode, n)]["wall"]:
                    best[(mode, n)] = r
                print(vol.name, mode, n, f"{r['wall']:.2f} s", f"load {r['load']:.2f}", flush=True)
        for (mode, n), r in best.items():
            r["identical"] = same[(mode, n)]
            one = best.get((mode, 1))
            r.update(volume=vol.name, mode=mode, workers=n, vs_plain=best[("plain", 0)]["wall"] / r["wall"],
                     vs_one=(one["wall"] / r["wall"]) if one else None)
            results.append(r)
    loads.append(load())
    lines = [f"load (1, 5, 15 min) before: {loads[0]}, after: {loads[1]}; {os.cpu_count()} cores", "",
             "| volume | configuration | wall s | CPU s | build s | x vs 1 worker | x vs plain | writer busy | workers busy | tasks | "
             "writer peak RSS MB | worker peak RSS MB | bit-identical |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        mb = 2**20
        workers = ", ".join(f"{v / mb:.0f}" for v in r["worker_rss"]) if r["mode"] not in ("plain", "threads") else "-"
        lines.append(
            f"| {r['volume']} | {r['mode']}{'' if r['mode'] == 'plain' else ' ' + str(r['workers'])} | "
            f"{r['wall']:.2f} | {r['cpu']:.1f} | {'-' if r['build'] is None else f'{r['build']:.2f}'} | {'-' if r['vs_one'] is None else f'{r['vs_one']:.2f}'} | "
            f"{r['vs_plain']:.2f} | {pct(r['busy'])} | {pct(r['workers_busy'])} | {r['tasks'] or '-'} | "
            f"{r['writer_rss'] / mb:.0f} | {workers} | {'yes' if r['identical'] else 'NO'} |"
        )
    text = "\n".join(lines)
    print(text)
    (OUT / "bench_dask_write.md").write_text(text + "\n")
    (OUT / "bench_dask_write.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
