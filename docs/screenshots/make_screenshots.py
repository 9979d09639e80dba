"""Regenerate docs/screenshots/viewer-2d.png and viewer-3d.png (offscreen; real scikit-image pictures), and with
``--ct FOLDER`` (a folder of CT DICOM slices, e.g. the abdomen CT of /work/data, never downloaded here)
viewer-ortho.png (the orthogonal views) and viewer-aniso.png (a coronal plane drawn at its physical aspect).

    PYTHONPATH=. QT_QPA_PLATFORM=offscreen python docs/screenshots/make_screenshots.py [--ct FOLDER] [--only-ct]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def colour_mosaic(rows: int = 6, cols: int = 8, tile: int = 512) -> np.ndarray:
    """RGB mosaic of scikit-image's colour pictures."""
    from skimage import data, transform

    pics = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry(),
            data.retina()]
    pics = [transform.resize(p, (tile, tile), preserve_range=True, anti_aliasing=True).astype(np.uint8)
            for p in pics]
    out = np.empty((rows * tile, cols * tile, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            out[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = pics[(r * 5 + c * 3) % len(pics)]
    return out


def save_small(w: object, path: Path) -> None:
    """Grab window ``w`` to a 256-colour PNG (greyscale views and Qt's widgets lose nothing visible; < 300 KB)."""
    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice

    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    w.grab().save(buf, "PNG")  # type: ignore[attr-defined]
    import io

    img = Image.open(io.BytesIO(bytes(buf.data()))).convert("RGB")
    img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print("wrote", path, f"{path.stat().st_size / 1024:.0f} KB")


def ct_screenshots(folder: str, tmp: Path) -> None:
    """The orthogonal layout and a physical-aspect coronal plane of a real CT (DICOM folder)."""
    from PySide6.QtWidgets import QApplication

    from mzarr_app.ortho import ORTHO, SINGLE
    from mzarr_app.window import MainWindow
    from mzarr_core.convert import convert

    app = QApplication.instance()
    ct = tmp / "ct.mzarr"
    convert(folder, ct)
    w = MainWindow(cache_mb=256)
    w.resize(1280, 800)
    w.show()
    assert w.open_path(str(ct)), w.last_error
    w.wait_until_idle(30)
    doc = w.doc
    assert doc is not None
    w.set_layout(ORTHO)
    w.wait_until_idle(30)
    z, y, x = doc.shape
    w.layout_views.set_position([int(z * 0.45), int(y * 0.55), int(x * 0.42)])
    for p in w.window_presets:  # an abdomen: the soft-tissue window
        if p.name.lower().startswith("soft"):
            w.contrast.apply_preset(p)
    w.wait_until_idle(30)
    app.processEvents()
    save_small(w, HERE / "viewer-ortho.png")
    w.set_layout(SINGLE)
    w.slicing.set_axis("y")
    w.slicing.set_index(int(y * 0.55))
    w.wait_until_idle(30)
    w.view.fit()
    w.view.zoom(1.35)
    w.view.pan(-30, 25)
    w.act_overview.trigger()  # View > Overview: where the zoomed view is
    w.wait_until_idle(30)
    app.processEvents()
    save_small(w, HERE / "viewer-aniso.png")
    w.close()


def main() -> int:
    import argparse

    import mzarr_app.settings as st

    ap = argparse.ArgumentParser()
    ap.add_argument("--ct", help="a folder of CT DICOM slices for viewer-ortho.png and viewer-aniso.png")
    ap.add_argument("--only-ct", action="store_true", help="only the two CT screenshots")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    st.SETTINGS_FILE = str(tmp / "s.ini")
    if a.ct:
        from PySide6.QtWidgets import QApplication

        QApplication.instance() or QApplication([])
        ct_screenshots(a.ct, tmp)
    if a.only_ct:
        return 0
    from bench_viewer import Volume
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication

    from mzarr_app.app import app_icon
    from mzarr_app.window import MainWindow
    from mzarr_core import Mzarr

    app = QApplication.instance() or QApplication([])
    app.setWindowIcon(app_icon())
    Mzarr(colour_mosaic(), spacing=(0.5, 0.5), attrs={"title": "colour mosaic", "source": "scikit-image",
                                                      "stain": {"name": "H&E", "lot": 42}}).save(tmp / "2d.mzarr")
    Mzarr(Volume(256)[:, :, :], spacing=(1.0, 0.4, 0.4), attrs={"title": "volume"}).save(tmp / "3d.mzarr")
    for name, path in (("viewer-2d.png", tmp / "2d.mzarr"), ("viewer-3d.png", tmp / "3d.mzarr")):
        w = MainWindow(cache_mb=256)
        w.resize(1400, 860)
        w.show()
        assert w.open_path(str(path)), w.last_error
        w.wait_until_idle(30)
        if name == "viewer-2d.png":
            w.view.show_rect(900, 700, 900 + 2400, 700 + 1500)
            w.docks["Metadata"].raise_()
        else:
            w.slicing.set_index(140)
            w.contrast.cmap.setCurrentText("magma")
            w.view.fit()
        w.wait_until_idle(30)
        v = w.view
        r = v.vb.viewRect()
        v._mouse_moved(v.vb.mapViewToScene(QPointF(r.center().x() + 37.3, r.center().y() + 11.6)))
        app.processEvents()
        w.grab().save(str(HERE / name))
        print("wrote", HERE / name)
        w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
