"""Headless viewer benchmark: first frame, sharp frame after zoom/pan/slice step, FPS on a scripted path, peak memory.

Builds (once, cached under ``benchmarks/out/``) a large 2D mosaic of real scikit-image pictures (default
50,000 x 50,000 uint8) and a 3D volume (default 1024^3 uint8) through ``mzarr_core`` (out-of-core, block by
block), then measures ``mzarr_app`` in a fresh offscreen process per file and compares it with reading the same
regions through plain zarr (the level-0 array, no pyramid) into a single pyqtgraph ImageItem.

    python benchmarks/bench_viewer.py                       # full size (building takes several minutes once)
    python benchmarks/bench_viewer.py --size2d 8192 --size3d 256 --skip-baseline   # quick run
    python benchmarks/bench_viewer.py --ortho               # only the orthogonal-views part (issue 11), below

``--ortho`` builds a 1024^3 uint16 volume (:class:`Volume16`: the same real pictures at 12 bits plus 4 bits of
noise, isotropic 1 µm), a 512 x 1024 x 1024 one (the issue's plane-jump goal is on that shape) and a
256 x 1024 x 1024 one with (4, 1, 1) µm voxels (the same physical extent as the cube), then times
in the real window at 1920x1080: a crosshair move in the orthogonal layout until all three views are sharp, a jump
of 100 planes along z, y and x in the single view, the same on the anisotropic volume drawn at its physical aspect,
and the peak memory of the process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GOALS = {"first_frame_s": 0.5, "sharp_after_move_s": 0.2, "peak_rss_mb": 1024}
#: issue 11: all three orthogonal views sharp after a crosshair move; a y/x/z plane after a jump of 100 planes
ORTHO_GOALS = {"ortho_move_sharp_s": 0.4, "plane_jump_sharp_s": 0.3, "peak_rss_mb": 1024}


# --------------------------------------------------------------------------------------------- sources (lazy)
def real_tiles(size: int = 512) -> list[np.ndarray]:
    """uint8 grey size x size versions of scikit-image's bundled pictures (no download)."""
    from skimage import data, transform
    from skimage.color import rgb2gray

    def grey(a: np.ndarray) -> np.ndarray:
        return (rgb2gray(a) * 255).astype(np.uint8) if a.ndim == 3 else a

    pics = [data.camera(), grey(data.astronaut()), data.moon(), data.page(), data.text(), grey(data.coffee()),
            grey(data.chelsea()), data.coins(), data.grass(), data.gravel(), data.brick(), grey(data.rocket())]
    return [transform.resize(grey(p), (size, size), preserve_range=True, anti_aliasing=True).astype(np.uint8)
            for p in pics]


class Mosaic:
    """Lazy 2D uint8 array-like: a grid of real pictures, each tile picked/rotated/flipped by a hash."""

    def __init__(self, h: int, w: int, tile: int = 512) -> None:
        self.shape, self.dtype, self.ndim, self.tile = (h, w), np.dtype(np.uint8), 2, tile
        self.tiles = real_tiles(tile)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        ys, xs = key
        y0, y1, _ = ys.indices(self.shape[0])
        x0, x1, _ = xs.indices(self.shape[1])
        out = np.empty((y1 - y0, x1 - x0), np.uint8)
        t = self.tile
        for ty in range(y0 // t, (y1 - 1) // t + 1):
            for tx in range(x0 // t, (x1 - 1) // t + 1):
                h = (ty * 7919 + tx * 104729) % 1000003
                im = np.rot90(self.tiles[h % len(self.tiles)], (h // 13) % 4)
                if (h // 52) % 2:
                    im = im[:, ::-1]
                a0, a1 = max(y0, ty * t), min(y1, (ty + 1) * t)
                b0, b1 = max(x0, tx * t), min(x1, (tx + 1) * t)
                out[a0 - y0:a1 - y0, b0 - x0:b1 - x0] = im[a0 - ty * t:a1 - ty * t, b0 - tx * t:b1 - tx * t]
        return out


class Volume:
    """Lazy 3D uint8 array-like: slice z is a window of a real-picture mosaic shifted with z."""

    def __init__(self, n: int) -> None:
        self.shape, self.dtype, self.ndim = (n, n, n), np.dtype(np.uint8), 3
        self.mosaic = Mosaic(3 * n, 3 * n)

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        zs, ys, xs = key
        z0, z1, _ = zs.indices(self.shape[0])
        y0, y1, _ = ys.indices(self.shape[1])
        x0, x1, _ = xs.indices(self.shape[2])
        oy0, oy1 = y0 + z0, y1 + z1  # slice z shows mosaic rows y + z, columns x + 2z
        ox0, ox1 = x0 + 2 * z0, x1 + 2 * z1
        big = self.mosaic[oy0:oy1, ox0:ox1]
        out = np.empty((z1 - z0, y1 - y0, x1 - x0), np.uint8)
        for i, z in enumerate(range(z0, z1)):
            out[i] = big[z - z0:z - z0 + (y1 - y0), 2 * (z - z0):2 * (z - z0) + (x1 - x0)]
        return out


class Volume16:
    """Lazy 3D uint16 array-like: :class:`Volume`'s real pictures at 12 bits (x16) plus 4 bits of deterministic
    noise (a hash of z, y, x), so the low bits are as incompressible as a camera's or scanner's noise floor."""

    def __init__(self, n: int, nz: int | None = None) -> None:
        self.base = Volume(n)
        self.shape, self.dtype, self.ndim = (nz or n, n, n), np.dtype(np.uint16), 3

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        (z0, z1, _), (y0, y1, _), (x0, x1, _) = (s.indices(n) for s, n in zip(key, self.shape))
        z, y, x = np.ogrid[z0:z1, y0:y1, x0:x1]
        h = (z.astype(np.uint32) * 73856093) ^ (y.astype(np.uint32) * 19349663) ^ (x.astype(np.uint32) * 83492791)
        noise = ((h >> 7) & 15).astype(np.uint16)
        return self.base[key].astype(np.uint16) * 16 + noise


def build(path: Path, source: object, **save_options: object) -> float:
    """Save ``source`` to ``path`` with mzarr_core (skipped when cached); returns seconds spent."""
    if path.exists():
        return 0.0
    from mzarr_core import Mzarr

    tmp = path.with_suffix(".building.mzarr")
    t0 = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 10:
            last[0] = now
            print(f"  building {path.name}: {done}/{total} chunks, {now - t0:.0f} s", flush=True)

    Mzarr(source).save(tmp, progress=progress, **save_options)
    os.replace(tmp, path)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------- measurements
_process: Any = None


def _rss_mb() -> float:
    """Resident memory of this process now (one psutil handle, made once: making one reads /proc twice)."""
    global _process
    if _process is None:
        import psutil

        _process = psutil.Process()
    return _process.memory_info().rss / 2**20


def _peak_mb() -> float:
    try:
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return ru / 1024 if sys.platform != "darwin" else ru / 2**20
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset / 2**20


def open_window(path: str, vw: int, vh: int, cache_mb: float = 512, size_of: str = "view") -> tuple[Any, Any]:
    """The real main window offscreen, docks hidden, its view (``size_of="layout"``: the orthogonal layout) fixed at
    vw x vh, settings beside ``path``: (QApplication, MainWindow)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import mzarr_app.settings as st

    st.SETTINGS_FILE = str(Path(path).with_suffix(".bench-settings.ini"))
    from PySide6.QtWidgets import QApplication

    from mzarr_app.window import MainWindow

    app = QApplication.instance() or QApplication([])
    w = MainWindow(cache_mb=cache_mb)
    for d in w.docks.values():
        d.hide()
    w.show()
    (w.layout_views if size_of == "layout" else w.view).setFixedSize(vw, vh)
    app.processEvents()
    return app, w


class Pump:
    """Runs the window's event loop until a condition holds, keeping the process's peak RSS meanwhile.

    A ``QEventLoop`` runs (it sleeps between events and lets the reader threads have the GIL, as the application's
    own loop does; a Python loop polling every half millisecond took ~10 % of a core, and the GIL, from the
    viewer's readers); a timer checks the condition every ``CHECK_MS`` and samples the memory every ``RSS_MS``."""

    CHECK_MS, RSS_MS = 1, 20

    def __init__(self, app: Any, repaint: Any = None) -> None:
        self.app, self.repaint = app, repaint
        self.peak_mb = _rss_mb()

    def until(self, cond: Any, timeout: float = 120.0) -> float:
        """Seconds until ``cond()`` held (then the view repainted); TimeoutError after ``timeout``."""
        from PySide6.QtCore import QEventLoop, QTimer

        t0 = time.perf_counter()
        if not cond():
            loop, check = QEventLoop(), QTimer()
            state = {"rss_at": t0, "late": False}

            def tick() -> None:
                now = time.perf_counter()
                if now - state["rss_at"] >= self.RSS_MS / 1000:
                    self.peak_mb, state["rss_at"] = max(self.peak_mb, _rss_mb()), now
                if cond():
                    loop.quit()
                elif now - t0 > timeout:
                    state["late"] = True
                    loop.quit()

            check.setInterval(self.CHECK_MS)
            check.timeout.connect(tick)
            check.start()
            loop.exec()
            check.stop()
            if state["late"]:
                raise TimeoutError("the viewer did not get there in time")
        if self.repaint is not None:
            self.repaint()
        return time.perf_counter() - t0


def measure_viewer(path: str, kind: str, vw: int, vh: int, cache_mb: float, steps: int) -> dict:
    """Run the real main window offscreen on ``path`` and time what a user would wait for."""
    app, w = open_window(path, vw, vh, cache_mb)
    v = w.view
    pump = Pump(app, v.viewport().repaint)
    pump_until = pump.until

    def sharp_after(action) -> float:
        """Seconds from ``action`` until every visible tile of the needed level is on screen and painted."""
        t0 = time.perf_counter()
        action()
        v._timer.stop()  # the update the action scheduled runs now (not a second time on the next loop turn)
        v._update()
        pump_until(lambda: v.complete and not v._timer.isActive())
        return time.perf_counter() - t0

    out: dict = {"file": path, "view": f"{vw}x{vh}", "cache_mb": cache_mb}
    t0 = time.perf_counter()
    assert w.open_path(path), w.last_error
    pump_until(lambda: v.covered and v.display is not None)
    out["first_covered_s"] = time.perf_counter() - t0
    pump_until(lambda: v.complete and v.display is not None and not v._timer.isActive())
    out["first_frame_s"] = time.perf_counter() - t0
    out["first_level"] = v.level
    doc = w.doc
    pump_until(v.is_idle)
    rows, cols = v.plane_shape()
    rng = np.random.default_rng(0)
    zooms, pans = [], []
    for _ in range(5):
        cx, cy = rng.uniform(0.2, 0.8) * cols, rng.uniform(0.2, 0.8) * rows
        v.fit()
        pump_until(v.is_idle)
        zooms.append(sharp_after(lambda: v.show_rect(cx - vw / 2, cy - vh / 2, cx + vw / 2, cy + vh / 2)))
        pump_until(v.is_idle)
        pans.append(sharp_after(lambda: v.pan(vw / 2, vh / 3)))
        pump_until(v.is_idle)
    out["zoom_in_sharp_s"] = float(np.median(zooms))
    out["pan_sharp_s"] = float(np.median(pans))
    out["zoom_in_sharp_max_s"] = float(np.max(zooms))
    out["pan_sharp_max_s"] = float(np.max(pans))
    if kind == "3d":
        v.fit()
        pump_until(v.is_idle)
        def idle_then(delta: int) -> float:
            """One slice move after the view went idle (a user looking at each slice; read-ahead done)."""
            pump_until(v.is_idle)
            return sharp_after(lambda: w.slicing.step(delta))

        stepsl = [idle_then(1) for _ in range(5)]
        out["slice_step_sharp_s"] = float(np.median(stepsl))
        out["slice_step_sharp_max_s"] = float(np.max(stepsl))
        # PgDown held: each step starts as soon as the previous slice is sharp (no time for read-ahead)
        held = [sharp_after(lambda: w.slicing.step(1)) for _ in range(5)]
        out["slice_held_sharp_s"] = float(np.median(held))
        # a jump of one brick depth: slices no read has touched yet (what browsing beyond the cache costs)
        jumps = [idle_then(64) for _ in range(3)]
        out["slice_jump_sharp_s"] = float(np.median(jumps))
        v.show_rect(cols / 2 - vw / 2, rows / 2 - vh / 2, cols / 2 + vw / 2, rows / 2 + vh / 2)
        pump_until(v.is_idle)
        stepsl = [idle_then(1) for _ in range(5)]
        out["slice_step_1to1_sharp_s"] = float(np.median(stepsl))
    # scripted path: zoom in from the overview to 1:1, pan, zoom out (and step slices in 3D), no waiting
    v.fit()
    pump_until(v.is_idle)
    cx, cy = cols * 0.37, rows * 0.41
    n = max(3, steps // 3)
    start = v.vb.viewRect()
    path_actions = []
    for i in range(n):
        f = (vw / start.width()) ** ((i + 1) / n)  # geometric zoom towards 1:1
        wdt, hgt = vw / f, vh / f
        path_actions.append(lambda wdt=wdt, hgt=hgt: v.show_rect(cx - wdt / 2, cy - hgt / 2, cx + wdt / 2, cy + hgt / 2))
    for i in range(n):
        path_actions.append(lambda: (v.pan(vw / 25, vh / 60), w.slicing.step(1) if kind == "3d" else None))
    for i in range(n):
        path_actions.append(lambda: v.zoom(0.93))
    sharp_frames = 0
    t0 = time.perf_counter()
    for act in path_actions:
        act()
        app.processEvents()
        v.viewport().repaint()
        sharp_frames += bool(v.complete)
        pump.peak_mb = max(pump.peak_mb, _rss_mb())
    dt = time.perf_counter() - t0
    out["path_frames"] = len(path_actions)
    out["path_fps"] = len(path_actions) / dt
    out["path_sharp_frac"] = sharp_frames / len(path_actions)
    out["chunks_decoded"] = v.loader.decoded_count
    out["cache_mb_used"] = v.loader.cache.nbytes / 2**20
    out["shape"] = list(doc.shape)
    out["levels"] = len(doc.levels)
    out["peak_rss_mb"] = max(pump.peak_mb, _peak_mb())
    w.close()
    return out


def measure_ortho(path: str, vw: int, vh: int, cache_mb: float, moves: int, jumps_only: bool = False) -> dict:
    """The orthogonal layout and single-view plane jumps on a volume in the real window (offscreen); with
    ``jumps_only``, only the single-view jumps (a short run for the plane-jump goal)."""
    from mzarr_app.ortho import ORTHO, SINGLE

    app, w = open_window(path, vw, vh, cache_mb, size_of="layout")
    lv = w.layout_views
    pump = Pump(app, lambda: [v.viewport().repaint() for v in lv.views()])
    pump_until = pump.until

    def sharp() -> bool:
        return all(v.complete and not v._timer.isActive() for v in lv.views())

    covered_at: list[float] = []

    cpu_at: list[float] = []

    def sharp_after(action) -> float:
        """Seconds from ``action`` until every view on screen is sharp (``covered_at``: until each shows at least a
        coarse stand-in; ``cpu_at``: the process's CPU seconds meanwhile, every thread)."""
        t0, c0 = time.perf_counter(), time.process_time()
        action()
        for v in lv.views():
            v._timer.stop()  # the update the action scheduled runs now (not a second time on the next loop turn)
            v._update()
        pump_until(lambda: all(v.covered for v in lv.views()))
        covered_at.append(time.perf_counter() - t0)
        pump_until(sharp)
        cpu_at.append(time.process_time() - c0)
        return time.perf_counter() - t0

    def decoded() -> tuple[int, float]:
        loaders = [v.loader for v in lv.views() if v.loader is not None]
        return sum(ld.decoded_count for ld in loaders), sum(ld.decode_seconds for ld in loaders)

    def moves_at(tag: str) -> None:
        """``moves`` crosshair moves >= 100 voxels along every axis (three new planes), each then a step of one
        voxel (a crosshair drag: the planes' bricks are cached)."""
        times, steps, n0 = [], [], decoded()
        covered_at.clear()
        for _ in range(moves):
            pos = list(lv.position)
            d = [min(100, n // 4) for n in shape]
            new = [int((p + rng.integers(k, n - k + 1)) % n) for p, n, k in zip(pos, shape, d)]
            pump_until(lambda: lv.is_idle())
            times.append(sharp_after(lambda new=new: lv.set_position(new)))
            nxt = [min(n - 1, p + 1) for p, n in zip(new, shape)]
            pump_until(lambda: lv.is_idle())
            steps.append(sharp_after(lambda nxt=nxt: lv.set_position(nxt)))
        n1 = decoded()
        out[f"ortho{tag}_levels"] = [v.level for v in lv.views()]
        out[f"ortho{tag}_move_covered_s"] = float(np.median(covered_at[0::2]))
        out[f"ortho{tag}_move_sharp_s"] = float(np.median(times))
        out[f"ortho{tag}_move_sharp_max_s"] = float(np.max(times))
        out[f"ortho{tag}_step_sharp_s"] = float(np.median(steps))
        out[f"ortho{tag}_chunks_per_move"] = (n1[0] - n0[0]) / moves
        out[f"ortho{tag}_ms_per_chunk"] = 1000 * (n1[1] - n0[1]) / max(1, n1[0] - n0[0])

    out: dict = {"file": path, "view": f"{vw}x{vh}", "cache_mb": cache_mb}
    assert w.open_path(path), w.last_error
    doc = w.doc
    out["shape"], out["spacing"], out["levels"] = list(doc.shape), list(doc.spacing or ()), len(doc.levels)
    pump_until(lambda: w.view.is_idle())
    rng = np.random.default_rng(1)
    shape = doc.shape
    if jumps_only:
        moves = 0
    # orthogonal layout: each move puts the cursor >= 100 voxels away along every axis (three new planes)
    t0 = time.perf_counter()
    w.set_layout(ORTHO)
    pump_until(lambda: lv.is_idle())
    out["ortho_first_s"] = time.perf_counter() - t0
    out["ortho_view_sizes"] = [f"{v.width()}x{v.height()}" for v in lv.views()]
    out["ortho_fit_scale"] = lv.fit_scale()
    if moves:
        moves_at("")  # View > Fit: each view at the level its scale needs
        # 1.7 level-0 voxels (display units) per screen pixel: level 0 (not drawn enlarged 1.1x from level 1)
        lv._set_ranges(lv.views(), 1.7 * min(lv._units().values()),
                       {a: n / 2 for a, n in zip(doc.spatial_axes, shape)})
        pump_until(lambda: lv.is_idle())
        moves_at("_exact")
        out["cache_mb_used"] = doc.cache_nbytes() / 2**20
    # single view: jumps of 100 planes along each axis, fitted
    w.set_layout(SINGLE)
    for axis in doc.spatial_axes:
        w.slicing.set_axis(axis)
        w.view.fit()
        pump_until(lambda: w.view.is_idle())
        n = shape[doc.axes.index(axis)]
        jumps, cold, cold_cpu = [], [], []
        for k in range(6):  # warm: as a user gets it (the next brick layer read ahead, what earlier moves left)
            pump_until(lambda: w.view.is_idle())
            target = (w.slicing.spin.value() + min(100, n // 2)) % n
            if k % 2:  # cold: the decoded-chunk cache emptied first (every brick of the new plane decoded)
                doc.clear_cache()
            (cold if k % 2 else jumps).append(sharp_after(lambda target=target: w.slicing.set_index(target)))
            if k % 2:
                cold_cpu.append(cpu_at[-1])
        out[f"jump_{axis}_sharp_s"] = float(np.median(jumps))
        out[f"jump_{axis}_cold_sharp_s"] = float(np.median(cold))
        out[f"jump_{axis}_cold_all_s"] = [round(t, 3) for t in cold]
        out[f"jump_{axis}_cold_cpu_s"] = float(np.median(cold_cpu))
        out[f"jump_{axis}_level"] = w.view.level
    out["peak_rss_mb"] = max(pump.peak_mb, _peak_mb())
    w.close()
    return out


def print_ortho_table(rows: list[tuple[str, dict]]) -> None:
    """Print the orthogonal-views results against issue 11's goals."""
    metrics = [("ortho layout first sharp (3 views)", "ortho_first_s", " s", None)]
    for tag, where in (("", "fit"), ("_exact", "1.7 vx/px")):
        metrics += [(f"{where}: crosshair move -> 3 views covered", f"ortho{tag}_move_covered_s", " s", None),
                    (f"{where}: crosshair move -> 3 views sharp", f"ortho{tag}_move_sharp_s", " s",
                     ORTHO_GOALS["ortho_move_sharp_s"]),
                    (f"{where}: crosshair move -> sharp (max)", f"ortho{tag}_move_sharp_max_s", " s", None),
                    (f"{where}: crosshair step +1 voxel -> sharp", f"ortho{tag}_step_sharp_s", " s", None),
                    (f"{where}: chunks decoded per move", f"ortho{tag}_chunks_per_move", "", None),
                    (f"{where}: decode per chunk (wall, threads)", f"ortho{tag}_ms_per_chunk", " ms", None)]
    metrics += [
               ("single view: z jump of 100 planes", "jump_z_sharp_s", " s", ORTHO_GOALS["plane_jump_sharp_s"]),
               ("single view: y jump of 100 planes", "jump_y_sharp_s", " s", ORTHO_GOALS["plane_jump_sharp_s"]),
               ("single view: x jump of 100 planes", "jump_x_sharp_s", " s", ORTHO_GOALS["plane_jump_sharp_s"]),
               ("  the same, cache emptied first: z", "jump_z_cold_sharp_s", " s", ORTHO_GOALS["plane_jump_sharp_s"]),
               ("  y", "jump_y_cold_sharp_s", " s", ORTHO_GOALS["plane_jump_sharp_s"]),
               ("  x", "jump_x_cold_sharp_s", " s", ORTHO_GOALS["plane_jump_sharp_s"]),
               ("decoded-chunk cache used", "cache_mb_used", " MB", None),
               ("peak memory (RSS)", "peak_rss_mb", " MB", ORTHO_GOALS["peak_rss_mb"])]
    for name, r in rows:
        print()
        print(f"== {name}: shape {tuple(r['shape'])}, spacing {tuple(r['spacing'])}, {r['levels']} levels, "
              f"window {r['view']} (views {', '.join(r['ortho_view_sizes'])} at levels {r['ortho_levels']}, "
              f"{r['ortho_exact_levels']} at 1.7 vx/px; fit {r['ortho_fit_scale']:.3g} units per pixel), "
              f"cache {r['cache_mb']} MB, load average after it {tuple(round(x, 1) for x in r['load'])} ==")
        print(f"{'metric':50s} {'mzarr_app':>12s} {'goal':>10s}  ok")
        for label, key, unit, goal in metrics:
            if key not in r:
                continue
            val = r[key]
            ok = "" if goal is None else ("yes" if val <= goal else "NO")
            gtxt = "" if goal is None else f"<= {goal:g}{unit}"
            print(f"{label:50s} {fmt(val, unit):>12s} {gtxt:>10s}  {ok}")


def measure_baseline(path: str, kind: str, vw: int, vh: int) -> dict:
    """Same regions through plain zarr (level-0 array, no pyramid) into one pyqtgraph ImageItem."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from mzarr_core import Mzarr

    app = QApplication.instance() or QApplication([])
    pg.setConfigOptions(imageAxisOrder="row-major")
    win = pg.GraphicsLayoutWidget()
    win.setFixedSize(vw, vh)
    vb = win.addViewBox(lockAspect=True, invertY=True)
    item = pg.ImageItem()
    vb.addItem(item)
    win.show()
    app.processEvents()
    out: dict = {"file": path}
    t0 = time.perf_counter()
    arr = Mzarr(path).levels[0].storage  # the zarr.Array of full resolution (what a pyramid-less viewer has)
    shape = arr.shape
    mid = shape[0] // 2 if kind == "3d" else None
    rows, cols = shape[-2], shape[-1]
    s = max(1, math.ceil(max(rows / vh, cols / vw)))
    img = arr[mid, ::s, ::s] if kind == "3d" else arr[::s, ::s]
    item.setImage(np.asarray(img), levels=(0, 255))
    vb.setRange(xRange=(0, img.shape[1]), yRange=(0, img.shape[0]), padding=0)
    win.viewport().repaint()
    out["first_frame_s"] = out["first_covered_s"] = time.perf_counter() - t0
    out["peak_rss_mb"] = _peak_mb()
    rng = np.random.default_rng(0)
    zooms, pans = [], []
    for _ in range(5):
        cx, cy = int(rng.uniform(0.2, 0.8) * cols), int(rng.uniform(0.2, 0.8) * rows)
        for lst, (x, y) in ((zooms, (cx - vw // 2, cy - vh // 2)), (pans, (cx, cy - vh // 6))):
            t1 = time.perf_counter()
            reg = (np.s_[mid, y:y + vh, x:x + vw] if kind == "3d" else np.s_[y:y + vh, x:x + vw])
            item.setImage(np.asarray(arr[reg]), levels=(0, 255))
            win.viewport().repaint()
            lst.append(time.perf_counter() - t1)
    out["zoom_in_sharp_s"] = float(np.median(zooms))
    out["pan_sharp_s"] = float(np.median(pans))
    out["peak_rss_mb"] = max(out["peak_rss_mb"], _peak_mb())
    win.close()
    return out


# --------------------------------------------------------------------------------------------- driver
def run_child(args: list[str]) -> dict:
    """Run one measurement in a fresh process (so peak memory is that of the viewer alone)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"measurement failed: {' '.join(args)}\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def fmt(v: object, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}{unit}" if unit == " s" else f"{v:.1f}{unit}"
    return f"{v}{unit}"


def print_table(rows: list[tuple[str, dict, dict | None]]) -> None:
    """Print the comparison table."""
    metrics = [("first frame (view covered)", "first_covered_s", " s", GOALS["first_frame_s"]),
               ("first sharp frame", "first_frame_s", " s", GOALS["first_frame_s"]),
               ("sharp after zoom-in (median)", "zoom_in_sharp_s", " s", GOALS["sharp_after_move_s"]),
               ("sharp after zoom-in (max)", "zoom_in_sharp_max_s", " s", None),
               ("sharp after pan (median)", "pan_sharp_s", " s", GOALS["sharp_after_move_s"]),
               ("sharp after pan (max)", "pan_sharp_max_s", " s", None),
               ("sharp after slice step, fit", "slice_step_sharp_s", " s", GOALS["sharp_after_move_s"]),
               ("sharp after slice step (max)", "slice_step_sharp_max_s", " s", None),
               ("sharp after slice step held, fit", "slice_held_sharp_s", " s", None),
               ("sharp after slice jump +64, fit", "slice_jump_sharp_s", " s", GOALS["sharp_after_move_s"]),
               ("sharp after slice step, 1:1", "slice_step_1to1_sharp_s", " s", GOALS["sharp_after_move_s"]),
               ("scripted path FPS", "path_fps", " fps", None),
               ("  frames already sharp", "path_sharp_frac", "", None),
               ("peak memory (RSS)", "peak_rss_mb", " MB", GOALS["peak_rss_mb"])]
    for name, viewer, base in rows:
        print()
        print(f"== {name}: shape {tuple(viewer.get('shape', []))}, {viewer.get('levels')} levels, "
              f"view {viewer.get('view')}, cache {viewer.get('cache_mb')} MB ==")
        print(f"{'metric':32s} {'mzarr_app':>12s} {'plain zarr':>12s} {'goal':>10s}  ok")
        for label, key, unit, goal in metrics:
            if key not in viewer:
                continue
            val = viewer[key]
            b = base.get(key) if base else None
            ok = "" if goal is None else ("yes" if val <= goal else "NO")
            gtxt = "" if goal is None else f"< {goal:g}{unit}"
            print(f"{label:32s} {fmt(val, unit):>12s} {fmt(b, unit):>12s} {gtxt:>10s}  {ok}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size2d", type=int, default=50_000, help="side of the square 2D mosaic (default 50000)")
    p.add_argument("--size3d", type=int, default=1024, help="side of the cubic 3D volume (default 1024)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out", help="where built files are cached")
    p.add_argument("--view", default="1920x1080", help="view size in pixels (default 1920x1080)")
    p.add_argument("--cache-mb", type=float, default=512, help="viewer chunk cache (default 512 MB)")
    p.add_argument("--steps", type=int, default=120, help="frames in the scripted pan/zoom path")
    p.add_argument("--skip-2d", action="store_true")
    p.add_argument("--skip-3d", action="store_true")
    p.add_argument("--bricks", default="strip", help="3D brick layouts to measure, comma list of strip (format 2, "
                   "default) and frames (format 1)")
    p.add_argument("--skip-baseline", action="store_true", help="do not measure plain zarr + pyqtgraph")
    p.add_argument("--build-only", action="store_true", help="only build (and cache) the benchmark files")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--ortho", action="store_true", help="only the orthogonal-views part (uint16 volumes, issue 11)")
    p.add_argument("--ortho-size", type=int, default=1024, help="side of the ortho part's cubic volume (1024)")
    p.add_argument("--moves", type=int, default=5, help="crosshair moves timed in the ortho part (5)")
    p.add_argument("--jumps-only", action="store_true",
                   help="with --measure-ortho FILE: only the single-view plane jumps (no crosshair moves)")
    p.add_argument("--measure-ortho", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--measure", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    p.add_argument("--baseline", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    vw, vh = (int(x) for x in a.view.lower().split("x"))
    if a.measure:
        print(json.dumps(measure_viewer(a.measure[1], a.measure[0], vw, vh, a.cache_mb, a.steps)))
        return 0
    if a.baseline:
        print(json.dumps(measure_baseline(a.baseline[1], a.baseline[0], vw, vh)))
        return 0
    if a.measure_ortho:
        print(json.dumps(measure_ortho(a.measure_ortho, vw, vh, a.cache_mb, a.moves, a.jumps_only)))
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    if a.ortho:
        n = a.ortho_size
        vols = [(f"3D volume {n}^3 uint16, 1 µm", a.out / f"volume16_{n}.mzarr", Volume16(n), (1.0, 1.0, 1.0)),
                (f"3D volume {n // 2}x{n}x{n} uint16, 1 µm (the issue's plane-jump goal)",
                 a.out / f"volume16_{n // 2}x{n}.mzarr", Volume16(n, n // 2), (1.0, 1.0, 1.0)),
                (f"3D volume {n // 4}x{n}x{n} uint16, (4, 1, 1) µm, physical aspect",
                 a.out / f"volume16_{n // 4}x{n}_aniso.mzarr", Volume16(n, n // 4), (4.0, 1.0, 1.0))]
        rows = []
        for name, path, source, spacing in vols:
            dt = build(path, source, spacing=spacing, unit="micrometer")
            if dt:
                print(f"built {path} in {dt:.0f} s ({path.stat().st_size / 2**20:.0f} MB)", flush=True)
            if a.build_only:
                continue
            r = run_child(["--measure-ortho", str(path), "--view", a.view, "--cache-mb", str(a.cache_mb),
                           "--moves", str(a.moves)])
            r["load"] = os.getloadavg()
            rows.append((name, r))
        print_ortho_table(rows)
        print(f"\nload average after the runs (1, 5, 15 min): {os.getloadavg()}")
        if a.json:
            a.json.write_text(json.dumps(dict(rows), indent=2))
        return 0
    jobs = []
    if not a.skip_2d:
        jobs.append(("2d", f"2D mosaic {a.size2d}x{a.size2d} uint8", a.out / f"mosaic_{a.size2d}.mzarr",
                     lambda: Mosaic(a.size2d, a.size2d)))
    if not a.skip_3d:
        for bricks in [b.strip() for b in a.bricks.split(",") if b.strip()]:
            jobs.append(("3d", f"3D volume {a.size3d}^3 uint8, {bricks} bricks",
                         a.out / f"volume_{a.size3d}_{bricks}.mzarr", lambda: Volume(a.size3d), {"bricks": bricks}))
    rows, results = [], {}
    for kind, name, path, make, *options in jobs:
        dt = build(path, make(), **(options[0] if options else {}))
        if dt:
            print(f"built {path} in {dt:.0f} s ({path.stat().st_size / 2**20:.0f} MB)", flush=True)
        if a.build_only:
            continue
        viewer = run_child(["--measure", kind, str(path), "--view", a.view, "--cache-mb", str(a.cache_mb),
                            "--steps", str(a.steps)])
        base = None if a.skip_baseline else run_child(["--baseline", kind, str(path), "--view", a.view])
        rows.append((name, viewer, base))
        results[name] = {"viewer": viewer, "baseline": base}
    print_table(rows)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
