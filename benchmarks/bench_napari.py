"""napari and a 30000 x 30000 RGB .mzarr (photographs in its middle 8192²): opening time, and the level and tiles
napari reads at each zoom.

Usage: ``python benchmarks/bench_napari.py [--size 30000] [--canvas 800,1200]`` in an environment with napari
(``pip install -e ".[dev]"`` or ``"mzarr[napari]"``). Headless (``napari.components.ViewerModel``): each "draw" is
what napari's canvas does on a frame (the visible world rectangle from the camera, handed to the layer), so the
times are napari's level choice plus the reads of the tiles it asks for (dask -> Mzarr), without OpenGL.

``--gui`` uses the real ``napari.Viewer`` instead (its vispy canvas draws with OpenGL: needs a display, e.g.
``xvfb-run -a -s "-screen 0 1600x1200x24" python benchmarks/bench_napari.py --gui`` with Mesa), times each zoom
until napari's screenshot of the canvas, and saves the screenshots with ``--shots DIR``.
Prints a Markdown table and the load average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _draw(viewer, layer, canvas: tuple[int, int]) -> None:
    """napari's canvas ``on_draw`` for one layer: the visible world rectangle from the camera's centre and zoom."""
    camera = getattr(viewer, "scene", viewer).camera
    size = np.asarray(canvas, float)
    centre = np.asarray(camera.center, float)[-2:]
    half = size / 2 / camera.zoom
    layer._update_draw(scale_factor=1 / camera.zoom, corner_pixels_displayed=np.array([centre - half, centre + half]),
                       shape_threshold=tuple(canvas))


def _write_file(path: Path, n: int) -> None:
    """An empty n x n RGB file with photographs written in its middle 8192² (the rest is never stored)."""
    from mzarr_core import Mzarr
    from mzarr_core.demo import mosaic

    t = time.perf_counter()
    with Mzarr(path, "w", shape=(n, n, 3), dtype="uint8") as m:
        side = min(8192, n)
        y0 = (n - side) // 2
        m[y0:y0 + side, y0:y0 + side] = mosaic(side)
        levels = len(m.levels)
    print(f"file: {n} x {n} RGB uint8, {levels} levels, written in {time.perf_counter() - t:.1f} s")


def headless(path: Path, n: int, canvas: tuple[int, int]) -> None:
    """The ViewerModel table: level, region read and time per zoom, and a pan of one screen."""
    import npe2
    from napari.components import ViewerModel

    from mzarr_napari import read_layers

    npe2.PluginManager.instance().discover()
    t = time.perf_counter()
    read_layers(str(path))
    reader_s = time.perf_counter() - t
    viewer = ViewerModel()
    t = time.perf_counter()
    (layer,) = viewer.open(str(path), plugin=None)
    open_s = time.perf_counter() - t
    print(f"reader (read_layers): {reader_s * 1000:.0f} ms; viewer.open (+ napari's first slice): {open_s:.2f} s")

    camera = getattr(viewer, "scene", viewer).camera
    print("\n| zoom (screen px per image px) | level | region read (px) | draw (ms) | pan one screen right (ms) |")
    print("| --- | --- | --- | --- | --- |")
    viewer.reset_view()
    fit = camera.zoom
    for zoom in (fit, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0):
        camera.zoom = zoom
        camera.center = (n / 2, n / 2)
        t = time.perf_counter()
        _draw(viewer, layer, canvas)
        shape = np.asarray(layer._slice.image.raw).shape
        first = time.perf_counter() - t
        camera.center = (n / 2, n / 2 + canvas[1] / zoom)  # new tiles at the same level
        t = time.perf_counter()
        _draw(viewer, layer, canvas)
        pan = time.perf_counter() - t
        label = f"{zoom:.3f} (fit)" if zoom == fit else f"{zoom:g}"
        print(f"| {label} | {layer.data_level} | {shape[0]} x {shape[1]} | {first * 1000:.0f} | {pan * 1000:.0f} |")


def gui(path: Path, n: int, shots: Path | None) -> None:
    """The real napari.Viewer (OpenGL): level per zoom through napari's own canvas, time until the screenshot."""
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 1000)
    app = QApplication.instance()
    t = time.perf_counter()
    (layer,) = viewer.open(str(path), plugin=None)
    print(f"napari.Viewer.open: {time.perf_counter() - t:.2f} s")
    for _ in range(20):
        app.processEvents()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    viewer.reset_view()
    fit = camera.zoom
    print(f"canvas {viewer.window._qt_viewer.canvas._current_viewbox_size} px")
    print("\n| zoom (screen px per image px) | level napari draws | until the screenshot (ms) |")
    print("| --- | --- | --- |")
    for zoom in (fit, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0):
        camera.zoom = zoom
        camera.center = (n / 2, n / 2)
        t = time.perf_counter()
        app.processEvents()
        shot = viewer.screenshot(canvas_only=True, flash=False)  # draws the canvas (the level chosen on draw)
        elapsed = time.perf_counter() - t
        label = f"{zoom:.3f} (fit)" if zoom == fit else f"{zoom:g}"
        print(f"| {label} | {layer.data_level} | {elapsed * 1000:.0f} |")
        if shots is not None:
            import imageio.v3 as iio

            shots.mkdir(parents=True, exist_ok=True)
            iio.imwrite(shots / f"napari_zoom_{zoom:.3f}.png", shot)
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=30000)
    parser.add_argument("--canvas", default="800,1200", help="canvas height,width in screen pixels (headless)")
    parser.add_argument("--gui", action="store_true", help="the real napari.Viewer (needs an OpenGL display)")
    parser.add_argument("--shots", type=Path, default=None, help="with --gui: save the canvas screenshots here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.mzarr"
        _write_file(path, args.size)
        if args.gui:
            gui(path, args.size, args.shots)
        else:
            headless(path, args.size, tuple(int(v) for v in args.canvas.split(",")))
    print(f"\nload average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
