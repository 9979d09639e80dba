"""Shared fixtures and helpers for the viewer's GUI tests (real .mzarr files from scikit-image's bundled data)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skimage import data as skdata
from skimage.color import rgb2gray
from skimage.measure import label as sklabel

import mzarr_app.chunk_loader as chunk_loader
import mzarr_app.settings as app_settings_mod

VIEW_W, VIEW_H = 640, 480


def mosaic_2d(rows: int = 4, cols: int = 6) -> np.ndarray:
    """uint8 mosaic of the camera image, each 512x512 tile rotated/flipped differently (distinct chunks)."""
    cam = skdata.camera()
    out = np.empty((rows * 512, cols * 512), np.uint8)
    for r in range(rows):
        for c in range(cols):
            t = np.rot90(cam, (r + c) % 4)
            if (r * cols + c) % 3 == 1:
                t = t[:, ::-1]
            out[r * 512:(r + 1) * 512, c * 512:(c + 1) * 512] = t
    return out


def volume_3d(z: int = 96, y: int = 200, x: int = 260) -> np.ndarray:
    """uint16 volume whose z slices are shifted crops of real images (every slice different)."""
    base = (rgb2gray(skdata.astronaut()) * 4000).astype(np.uint16)
    out = np.empty((z, y, x), np.uint16)
    for i in range(z):
        out[i] = base[2 * i:2 * i + y, i:i + x] + np.uint16(10 * i)
    return out


def labels_2d() -> np.ndarray:
    """uint16 segmentation: connected components of scikit-image's generated binary blobs."""
    blobs = skdata.binary_blobs(length=1024, blob_size_fraction=0.08, volume_fraction=0.3, rng=3)
    return sklabel(blobs).astype(np.uint16)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep QSettings (recent files, window state) out of the user's real settings."""
    p = tmp_path_factory.mktemp("settings") / "viewer.ini"
    monkeypatch.setattr(app_settings_mod, "SETTINGS_FILE", str(p))
    return p


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session folder with the test images saved once."""
    from mzarr_core import Mzarr

    d = tmp_path_factory.mktemp("images")
    Mzarr(mosaic_2d(), spacing=(0.25, 0.25), unit="micrometer").save(d / "mosaic.mzarr")
    Mzarr(volume_3d(), spacing=(2.0, 0.5, 0.5)).save(d / "volume.mzarr", bricks="strip")  # strip bricks (format 2)
    Mzarr(volume_3d(), spacing=(2.0, 0.5, 0.5)).save(d / "volume_slabs.mzarr", bricks="slabs")  # format 4 slabs
    Mzarr(volume_3d(), spacing=(2.0, 0.5, 0.5)).save(d / "volume_blosc.mzarr")  # Blosc bricks (format 6, the default)
    Mzarr(volume_3d(), spacing=(2.0, 0.5, 0.5)).save(d / "volume_frames.mzarr", bricks="frames")  # format 1 bricks
    Mzarr(labels_2d(), is_label=True).save(d / "labels.mzarr")
    Mzarr(skdata.astronaut()).save(d / "astronaut.mzarr")
    Mzarr(np.moveaxis(skdata.astronaut(), 2, 0).copy(), axes="cyx").save(d / "channels.mzarr")
    Mzarr(((skdata.coins() / 255.0 - 0.5) * 2.5).astype(np.float32)).save(d / "coins_float.mzarr")
    Mzarr((skdata.camera().astype(np.int16) - 128) * 100).save(d / "camera_int16.mzarr")
    return d


@pytest.fixture
def image_copy(image_dir: Path, tmp_path: Path):
    """Copy of one of the session images that a test may modify: ``image_copy("mosaic")``."""
    import shutil

    def make(name: str) -> Path:
        dst = tmp_path / f"{name}.mzarr"
        shutil.copyfile(image_dir / f"{name}.mzarr", dst)
        return dst

    return make


class ReadLog:
    """Thread-safe record of every read: ``(level, chunk)`` from ``read_chunk``, ``(level, chunk, z)`` from
    ``read_chunk_plane``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reads: list[tuple] = []
        self.delay = 0.0
        self.delay_levels: set[int] | None = None

    def clear(self) -> None:
        with self.lock:
            self.reads.clear()

    def keys(self) -> list[tuple]:
        with self.lock:
            return list(self.reads)

    def chunks(self) -> list[tuple[int, tuple[int, ...]]]:
        """Whole-chunk reads only."""
        return [k for k in self.keys() if len(k) == 2]

    def planes(self) -> list[tuple[int, tuple[int, ...], int]]:
        """Plane reads only."""
        return [k for k in self.keys() if len(k) == 3]


@pytest.fixture
def read_log(monkeypatch: pytest.MonkeyPatch) -> ReadLog:
    """Instrument the single whole-chunk reader and the single plane reader (optionally slowed down per level)."""
    log = ReadLog()
    real = chunk_loader.read_chunk

    def instrumented(level: Any, chunk_index: Any) -> np.ndarray:
        if log.delay and (log.delay_levels is None or level.index in log.delay_levels):
            time.sleep(log.delay)
        out = real(level, chunk_index)
        with log.lock:
            log.reads.append((int(level.index), tuple(int(i) for i in chunk_index)))
        return out

    real_plane = chunk_loader.read_chunk_plane

    def instrumented_plane(level: Any, chunk_index: Any, z: int) -> np.ndarray:
        if log.delay and (log.delay_levels is None or level.index in log.delay_levels):
            time.sleep(log.delay)
        out = real_plane(level, chunk_index, z)
        with log.lock:
            log.reads.append((int(level.index), tuple(int(i) for i in chunk_index), int(z)))
        return out

    monkeypatch.setattr(chunk_loader, "read_chunk", instrumented)
    monkeypatch.setattr(chunk_loader, "read_chunk_plane", instrumented_plane)
    return log


@pytest.fixture
def window(qtbot):
    """A shown main window with a fixed-size view (640x480) and 2 loader threads."""
    from mzarr_app.window import MainWindow

    w = MainWindow(cache_mb=256, threads=2)
    w.ask_save_changes = lambda: __import__("PySide6.QtWidgets", fromlist=["QMessageBox"]).QMessageBox.StandardButton.Discard
    qtbot.addWidget(w)
    for d in w.docks.values():
        d.setFloating(False)
    w.show()
    w.view.setFixedSize(VIEW_W, VIEW_H)
    qtbot.waitExposed(w)
    yield w
    w.close()


def open_and_wait(qtbot, w, path: Path | str, timeout: float = 20.0) -> None:
    """Open ``path`` in window ``w`` and wait for a complete frame with nothing loading."""
    assert w.open_path(str(path)), w.last_error
    wait_idle(qtbot, w, timeout)


def wait_idle(qtbot, w, timeout: float = 20.0) -> None:
    """Wait until the view is idle (complete frame, no pending chunk)."""
    qtbot.waitUntil(w.view.is_idle, timeout=int(timeout * 1000))


def grab_view(w) -> np.ndarray:
    """The rendered viewport as an (H, W, 4) uint8 RGBA array."""
    from PySide6.QtGui import QImage

    img = w.view.viewport().grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    ptr = img.constBits()
    arr = np.frombuffer(ptr, np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 4].reshape(img.height(), img.width(), 4).copy()


def set_identity_grey(w, lo: float = 0.0, hi: float = 255.0) -> None:
    """Grey colormap with levels lo..hi (identity for uint8 with 0..255)."""
    from dataclasses import replace

    s = w.view.display
    w.contrast.set_settings(replace(s, mode="single", colormap="grey").with_levels(lo, hi))


def chunk_rect(level, axes: str, row: str, col: str, idx: tuple[int, ...]) -> tuple[float, float, float, float]:
    """Level-0 rectangle (x0, y0, x1, y1) covered by chunk ``idx`` of ``level`` in the (row, col) plane."""
    ri, ci = axes.index(row), axes.index(col)
    reg = level.chunk_region(idx)
    fr, fc = level.factor[ri], level.factor[ci]
    return (reg[ci].start * fc, reg[ri].start * fr, reg[ci].stop * fc, reg[ri].stop * fr)


def intersects(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Open-rectangle intersection."""
    return a[0] < b[2] and a[2] > b[0] and a[1] < b[3] and a[3] > b[1]
