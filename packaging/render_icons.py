#!/usr/bin/env python3
"""Render the Mzarr icons from their SVG sources.

Sources (hand-written, committed):
    resources/mzarr.svg        application icon (an image pyramid)
    resources/mzarr-file.svg   file-type / document icon

Outputs (committed too, so a build needs no rendering step):
    resources/mzarr.png                     256 px app icon (window icon fallback)
    resources/icons/mzarr-<N>.png           app icon, N in SIZES
    resources/icons/mzarr-file-<N>.png      document icon, N in SIZES
    resources/mzarr.ico, mzarr-file.ico     Windows (EXE icon, Inno Setup, file association)
    resources/mzarr.icns, mzarr-file.icns   macOS (.app icon, CFBundleTypeIconFile)

Rendering uses PySide6's QSvgRenderer (QtSvg ships with PySide6-Essentials);
.ico/.icns are written with Pillow.  Run:  python packaging/render_icons.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RES = ROOT / "resources"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512)


def render(svg: Path, size: int, out: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"invalid SVG: {svg}")
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    painter = QPainter(img)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    renderer.render(painter)
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not img.save(str(out), "PNG"):
        raise SystemExit(f"could not write {out}")


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (fonts need it)
    from PIL import Image

    for stem in ("mzarr", "mzarr-file"):
        svg = RES / f"{stem}.svg"
        pngs = {}
        for n in SIZES:
            out = RES / "icons" / f"{stem}-{n}.png"
            render(svg, n, out)
            pngs[n] = out
        if stem == "mzarr":
            render(svg, 256, RES / "mzarr.png")
        # Windows .ico: every size drawn from its own rendering (crisper than downscaling)
        imgs = [Image.open(pngs[n]).convert("RGBA") for n in ICO_SIZES]
        imgs[-1].save(RES / f"{stem}.ico", format="ICO",
                      sizes=[(n, n) for n in ICO_SIZES], append_images=imgs[:-1])
        # macOS .icns: Pillow writes the standard sizes from the largest image
        big = Image.open(pngs[512]).convert("RGBA")
        big.save(RES / f"{stem}.icns", format="ICNS",
                 append_images=[Image.open(pngs[n]).convert("RGBA") for n in ICNS_SIZES[:-1]])
        print(f"rendered {stem}: {', '.join(str(n) for n in SIZES)} px, .ico, .icns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
