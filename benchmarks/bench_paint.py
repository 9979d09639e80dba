"""Painting benchmark (issue 10, deliverable 3): a stroke painted at 1:8 zoom on a big label image, saved, reopened.

Uses the file of ``bench_overlay.py`` (a square uint16 image with a uint16 label image of the same size, built once
under ``benchmarks/out/``), copied, and the real main window offscreen (1920x1080 view). At 1:8 zoom it paints a
curved brush stroke with real mouse events (one per screen pixel step, sent as fast as possible), then measures:
the stroke's edits (mask pieces built, drawn in the overlay), Save (one transaction: level 0 and every level of the
label pyramid), the view sharp again after the reopen, a flood fill of a label, and the "New label" level-0 scan;
and checks the saved file: level 0 changed exactly on the stroke's mask, every level in the stroke's footprint equals
the core's mode downsampling of the level below, nothing else changed.

    python benchmarks/bench_paint.py --size 8192      # quick run
    python benchmarks/bench_paint.py                  # 30000² (bench_overlay's file; building takes minutes once)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overlay import LABEL, build_file  # noqa: E402  (benchmarks are scripts)
from bench_viewer import Pump, _peak_mb, open_window  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def measure(path: str, vw: int, vh: int) -> dict:
    """Paint, save, reopen and check in a real window; the timings and checks as a dict."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from mzarr_core import Mzarr
    from mzarr_core.pyramid import downsample

    app, w = open_window(path, vw, vh)
    v = w.view
    pump = Pump(app)
    pump_until = lambda cond, timeout=300.0: pump.until(cond, timeout)  # noqa: E731 - a save at 30000² is slow

    def send(kind, x: float, y: float, button, buttons) -> None:
        p = QPointF(v.mapFromScene(v.vb.mapViewToScene(QPointF(x, y))))
        ev = QMouseEvent(kind, p, QPointF(v.viewport().mapToGlobal(p.toPoint())), button, buttons,
                         Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(v.viewport(), ev)

    out: dict = {"file": path, "view": f"{vw}x{vh}"}
    assert w.open_path(path), w.last_error
    pump_until(v.is_idle)
    rows, cols = v.plane_shape()
    cx, cy = cols / 2, rows / 2
    v.show_rect(cx - vw * 4, cy - vh * 4, cx + vw * 4, cy + vh * 4)  # 1:8
    pump_until(v.is_idle)
    out["level_on_screen"] = v.label_layer(LABEL).level
    w.editing.set_tool("brush")
    w.editing.radius.setValue(3)  # screen pixels: 24 level-0 pixels at 1:8
    value = 65000
    w.editing.value.setValue(value)
    strokes: list = []
    v.vb.brushStroke.connect(strokes.append)
    # a curve 6000 level-0 pixels wide (750 screen pixels), one mouse move per screen pixel
    n = 750
    xs = cx - 3000 + 6000 * np.arange(n) / (n - 1)
    ys = cy + 1500 * np.sin(np.linspace(0, 2 * np.pi, n))
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    t0 = time.perf_counter()
    send(QEvent.Type.MouseButtonPress, xs[0], ys[0], left, left)
    for x, y in zip(xs[1:], ys[1:]):
        send(QEvent.Type.MouseMove, x, y, none, left)
    t_moves = time.perf_counter() - t0
    send(QEvent.Type.MouseButtonRelease, xs[-1], ys[-1], left, none)
    out["stroke_events_s"] = t_moves
    out["stroke_release_to_drawn_s"] = time.perf_counter() - t0 - t_moves
    out["stroke_points"] = len(strokes[0]) if strokes else 0
    edits = [e for e in w.model.edits if e.target == LABEL]
    out["stroke_pieces"] = len(edits)
    layer = v.label_layer(LABEL)
    t0 = time.perf_counter()
    layer.render_all()
    out["overlay_rerender_s"] = time.perf_counter() - t0
    out["overlay_tiles"] = len(layer.tiles)
    # the box checked: the stroke's pieces, widened to whole blocks of the coarsest level
    r0 = min(e.region[0].start for e in edits)
    r1 = max(e.region[0].stop for e in edits)
    c0 = min(e.region[1].start for e in edits)
    c1 = max(e.region[1].stop for e in edits)
    with Mzarr(path) as m:
        lab = m.label(LABEL)
        f_top = int(lab.levels[-1].factor[0])
        r0, c0 = r0 // f_top * f_top, c0 // f_top * f_top
        r1, c1 = min(rows, -(-r1 // f_top) * f_top), min(cols, -(-c1 // f_top) * f_top)
        before = [lev[r0 // int(lev.factor[0]):-(-r1 // int(lev.factor[0])),
                      c0 // int(lev.factor[1]):-(-c1 // int(lev.factor[1]))] for lev in lab.levels]
    mask = np.zeros((r1 - r0, c1 - c0), bool)  # the stroke's pixels in the box
    for e in edits:
        view = mask[e.region[0].start - r0:e.region[0].stop - r0, e.region[1].start - c0:e.region[1].stop - c0]
        view |= np.broadcast_to(True if e.mask is None else e.mask, view.shape)
    out["stroke_pixels"] = int(mask.sum())
    # Save: one transaction, then the reopened file on screen
    t0 = time.perf_counter()
    assert w.save(), w.last_error
    out["save_s"] = time.perf_counter() - t0
    pump_until(v.is_idle)
    out["save_to_sharp_s"] = time.perf_counter() - t0
    with Mzarr(path) as m:
        lab = m.label(LABEL)
        after = [lev[r0 // int(lev.factor[0]):-(-r1 // int(lev.factor[0])),
                     c0 // int(lev.factor[1]):-(-c1 // int(lev.factor[1]))] for lev in lab.levels]
        sub = mask
        ok0 = bool(np.array_equal(after[0] != before[0], sub & (before[0] != value)) and (after[0][sub] == value).all())
        ok_levels = True
        for i in range(1, len(after)):
            halve = tuple(int(a) == 2 * int(b) for a, b in zip(lab.levels[i].factor, lab.levels[i - 1].factor))
            expected = downsample(after[i - 1], halve, "mode")
            ok_levels &= bool(np.array_equal(after[i], expected[:after[i].shape[0], :after[i].shape[1]]))
            f = int(lab.levels[i].factor[0])
            h, wd = after[i].shape
            pad = np.zeros((h * f, wd * f), bool)
            pad[:sub.shape[0], :sub.shape[1]] = sub[:h * f, :wd * f]
            touched = pad.reshape(h, f, wd, f).any(axis=(1, 3))
            ok_levels &= not bool((after[i] != before[i])[~touched].any())
            ok_levels &= bool((after[i] == value).any())
        out["level0_exact"] = ok0
        out["levels_mode_rule_and_only_stroke"] = ok_levels
        out["levels"] = len(lab.levels)
    # flood fills at 1:8: the background (0) around a point (bounded by the fill's window), then one label
    y_bg, x_bg = int(cy - 2000), int(cx)
    with Mzarr(path) as m:
        near = m.label(LABEL)[y_bg - 256:y_bg + 256, x_bg - 256:x_bg + 256]
    bg = np.argwhere(near == 0)
    cell = np.argwhere(near > 0)
    for name, (py, px) in (("background", bg[len(bg) // 2]), ("label", cell[len(cell) // 2])):
        t0 = time.perf_counter()
        w.edit_tools.flood_fill(x_bg - 256 + px + 0.5, y_bg - 256 + py + 0.5, 64999, LABEL)
        out[f"flood_fill_{name}_s"] = time.perf_counter() - t0
        out[f"flood_fill_{name}_pixels"] = int(sum(int(np.count_nonzero(e.mask)) if e.mask is not None
                                                   else int(np.prod([sl.stop - sl.start for sl in e.region]))
                                                   for e in w.model.edits[-1:]))
        out[f"flood_fill_{name}_notice"] = w.editing.notice.text()
        w.model.stack.undo()
    # "New label": the level-0 scan in the background
    w.editing.set_target(LABEL)
    t0 = time.perf_counter()
    w.editing.new_value.click()
    pump_until(lambda: "New label:" in w.editing.notice.text() or "could not" in w.editing.notice.text(), 1800)
    out["new_label_scan_s"] = time.perf_counter() - t0
    out["new_label_value"] = w.editing.value.value()
    out["peak_rss_mb"] = _peak_mb()
    w.model.reset()
    w.close()
    return out


def merge_bench(src: Path, work: Path, rounds: int) -> dict:
    """Save time (no window) of the same edits with Save's merging bound at 1 (one write per edit) .. 2^24
    pixels: a long curved stroke (8 pieces) and 30 short strokes in a 2000² area; bounds alternate per round."""
    import mzarr_app.document as D
    from mzarr_app.label_layer import LabelDocument
    from mzarr_app.panels.editing import brush_edits
    from mzarr_app.tiles import default_plane

    limits = (1, 1 << 20, 1 << 22, 1 << 24)
    times: dict[str, dict[int, list[float]]] = {"curve": {k: [] for k in limits}, "cluster": {k: [] for k in limits}}
    saved = D.MAX_WRITE_ELEMENTS
    try:
        for _ in range(rounds):
            for kind in times:
                for limit in limits:
                    shutil.copyfile(src, work)
                    doc = D.Document(work)
                    ld = LabelDocument(doc, LABEL)
                    plane = default_plane(doc.axes, channels=None)
                    cy, cx = doc.shape[0] / 2, doc.shape[1] / 2
                    if kind == "curve":
                        n = 750
                        xs = cx - 3000 + 6000 * np.arange(n) / (n - 1)
                        ys = cy + 1500 * np.sin(np.linspace(0, 2 * np.pi, n))
                        edits = brush_edits(ld, plane, list(zip(xs, ys)), 24, 65000, LABEL)
                    else:
                        rng = np.random.default_rng(0)
                        edits = []
                        for i in range(30):
                            x, y = rng.uniform(-1000, 1000, 2)
                            edits += brush_edits(ld, plane, [(cx + x, cy + y), (cx + x + 200, cy + y + 50)], 20,
                                                 100 + i, LABEL)
                    D.MAX_WRITE_ELEMENTS = limit
                    t0 = time.perf_counter()
                    doc.save_edits(edits)
                    times[kind][limit].append(time.perf_counter() - t0)
                    doc.close()
    finally:
        D.MAX_WRITE_ELEMENTS = saved
        work.unlink(missing_ok=True)
    return {kind: {str(k): float(np.median(v)) for k, v in d.items()} for kind, d in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=30_000, help="side of the square image and label image")
    p.add_argument("--view", default="1920x1080")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    p.add_argument("--merge", type=int, metavar="ROUNDS", default=0,
                   help="also time Save with merging bounds 1..2^24 (median of ROUNDS alternating rounds)")
    p.add_argument("--measure", metavar="FILE", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    vw, vh = (int(x) for x in a.view.lower().split("x"))
    if a.measure:
        print(json.dumps(measure(a.measure, vw, vh)))
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    src = a.out / f"overlay_{a.size}.mzarr"
    dt = build_file(src, a.size)
    if dt:
        print(f"built {src} in {dt:.0f} s ({src.stat().st_size / 2**20:.0f} MB)", flush=True)
    path = a.out / f"paint_{a.size}.mzarr"
    shutil.copyfile(src, path)  # painted and saved: a copy
    load = os.getloadavg()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    child = subprocess.run([sys.executable, __file__, "--measure", str(path), "--view", a.view],
                           capture_output=True, text=True, env=env)
    path.unlink(missing_ok=True)
    if child.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{child.stderr[-3000:]}")
    r = json.loads(child.stdout.strip().splitlines()[-1])
    load_after = os.getloadavg()
    print(f"\n{a.size}x{a.size} uint16 image + uint16 label image ({r['levels']} levels), view {r['view']}, "
          f"load average {load[0]:.1f} before / {load_after[0]:.1f} after")
    for k, val in r.items():
        if k not in ("file", "view"):
            print(f"  {k:36s} {val:.3f}" if isinstance(val, float) else f"  {k:36s} {val}")
    if a.merge:
        load = os.getloadavg()
        merged = merge_bench(src, a.out / f"merge_{a.size}.mzarr", a.merge)
        print(f"\nSave time by merging bound (pixels), median of {a.merge}, load average {load[0]:.1f} before / "
              f"{os.getloadavg()[0]:.1f} after")
        for kind, row in merged.items():
            print(f"  {kind:8s} " + "  ".join(f"{k:>9s}: {v:.2f} s" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
