"""The overview inset: the whole plane at a coarse level in a corner of a view, the visible part outlined; a click
or a drag in it moves the view there (as QuPath's and slide viewers' overviews).

The picture is the plane through the image layer's automatic-contrast level (``Layer.hist_data``: the whole
finest level with at most 2^18 elements, already read when the image opened), so the inset reads nothing; it is
drawn with the view's display settings and aspect and redrawn when the plane, the settings or the view rectangle
change.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QWidget

from . import tiles as T
from .contrast import render

#: the inset's larger side in screen pixels
OVERVIEW_PX = 180


def level_plane(data: np.ndarray, axes: str, factor: tuple[int, ...], plane: T.Plane) -> np.ndarray:
    """The whole ``plane`` of a level's array ``data`` (axes ``axes``, downsampling ``factor``): (rows, cols) or
    (rows, cols, C), the slice at ``slice_index // factor`` (clamped), the plane's channels."""
    key: list[Any] = []
    for ax, name in enumerate(axes):
        if name == plane.slice_axis:
            key.append(min(data.shape[ax] - 1, plane.slice_index // int(factor[ax])))
        elif name == "c" and plane.channels is not None:
            key.append(list(plane.channels))
        else:
            key.append(slice(None))
    sub = data[tuple(key)]
    kept = [a for a in axes if a != plane.slice_axis]
    order = [kept.index(plane.row), kept.index(plane.col)] + ([kept.index("c")] if "c" in kept else [])
    out = np.transpose(sub, order)
    if out.ndim == 3 and out.shape[2] == 1:
        out = out[:, :, 0]
    return np.ascontiguousarray(out)


class OverviewInset(QWidget):
    """A child of a :class:`~mzarr_app.view.TiledImageView` in its lower-left corner (hidden until enabled)."""

    def __init__(self, view: Any, source: Callable[[], Any] | None = None) -> None:
        super().__init__(view)
        self.view = view
        #: the image layer whose automatic-contrast level is drawn (default: the view's own; the orthogonal views
        #: take the main view's, which read it)
        self.source = source or (lambda: view.image)
        self.setObjectName("overviewInset")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.enabled = False
        self._key: Any = None
        self._image: QImage | None = None
        self._array: np.ndarray | None = None  # keeps the QImage's pixels alive
        self.hide()
        view.vb.sigRangeChanged.connect(lambda *_a: self.refresh())
        view.frameComplete.connect(self.refresh)
        view.autoDisplayReady.connect(lambda _s: self.refresh())

    def set_enabled(self, on: bool) -> None:
        """Show the inset (when the view has an image) or hide it."""
        self.enabled = bool(on)
        self.refresh()

    def refresh(self) -> None:
        """Re-place, and redraw if the plane, the settings or the view rectangle changed."""
        v = self.view
        image = self.source()
        ok = self.enabled and image is not None and image.hist_data is not None and v.plane is not None \
            and v.display is not None and image.doc is v.doc
        if not ok:
            self.hide()
            return
        h, w = v.plane_shape()
        a = v.aspect_ratio()  # a row is drawn 1/a times as tall as a column is wide
        dw, dh = float(w), float(h) / a
        s = OVERVIEW_PX / max(dw, dh)
        size = (max(8, int(round(dw * s))), max(8, int(round(dh * s))))
        if (self.width(), self.height()) != size:
            self.resize(*size)
        self.move(6, v.height() - self.height() - 6)
        self.show()
        self.raise_()
        self.update()

    def _picture(self) -> QImage | None:
        """The rendered plane (cached per plane, level data and settings)."""
        v = self.view
        image = self.source()
        if image is None or image.hist_data is None or v.plane is None or v.display is None:
            return None
        up, left = self._flips()
        key = (id(image.hist_data), v.plane, v.display, up, left)
        if key != self._key:
            lev = image.doc.levels[image.hist_level]
            data = level_plane(image.hist_data, image.doc.axes, lev.factor, v.plane)
            rgba = render(data, v.display)
            self._array = np.ascontiguousarray(rgba[::-1 if up else 1, ::-1 if left else 1])  # as the view draws it
            rows, cols = self._array.shape[:2]
            self._image = QImage(self._array.data, cols, rows, cols * 4, QImage.Format.Format_RGBA8888)
            self._key = key
        return self._image

    def _flips(self) -> tuple[bool, bool]:
        """(rows upward, columns leftward) as the view draws its plane (a patient image read radiologically)."""
        vb = self.view.vb
        return not vb.yInverted(), vb.xInverted()

    def view_rect(self) -> QRectF:
        """The visible part of the plane, in the inset's pixels."""
        v = self.view
        h, w = v.plane_shape()
        r = v.vb.viewRect()
        up, left = self._flips()
        sx, sy = self.width() / w, self.height() / h
        x = (w - r.right() if left else r.left()) * sx
        y = (h - r.bottom() if up else r.top()) * sy
        return QRectF(x, y, r.width() * sx, r.height() * sy)

    def paintEvent(self, ev: Any) -> None:  # noqa: N802 - Qt naming
        """The plane, a frame, and the view's rectangle in yellow."""
        img = self._picture()
        if img is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.fillRect(self.rect(), QColor(0, 0, 0))
        p.drawImage(QRectF(0, 0, self.width(), self.height()), img)
        p.setPen(QPen(QColor(160, 160, 160), 1))
        p.drawRect(0, 0, self.width() - 1, self.height() - 1)
        p.setPen(QPen(QColor(255, 210, 0), 2))
        p.drawRect(self.view_rect().intersected(QRectF(0, 0, self.width() - 1, self.height() - 1)))
        p.end()

    def centre_on(self, x: float, y: float) -> None:
        """Move the view (same zoom) so inset point (x, y) is its centre."""
        v = self.view
        h, w = v.plane_shape()
        r = v.vb.viewRect()
        up, left = self._flips()
        cx, cy = x / self.width() * w, y / self.height() * h
        cx, cy = (w - cx if left else cx), (h - cy if up else cy)
        v.vb.setRange(QRectF(cx - r.width() / 2, cy - r.height() / 2, r.width(), r.height()), padding=0)

    def mousePressEvent(self, ev: QMouseEvent) -> None:  # noqa: N802 - Qt naming
        """A left click centres the view there."""
        if ev.button() == Qt.MouseButton.LeftButton:
            self.centre_on(ev.position().x(), ev.position().y())
            ev.accept()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:  # noqa: N802 - Qt naming
        """A left drag keeps the view centred under the pointer."""
        if ev.buttons() & Qt.MouseButton.LeftButton:
            pos: QPointF = ev.position()
            self.centre_on(min(max(0.0, pos.x()), self.width()), min(max(0.0, pos.y()), self.height()))
            ev.accept()
