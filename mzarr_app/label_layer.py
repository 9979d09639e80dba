"""Label images of the open file drawn over the image: a document per label image and its layer.

A :class:`LabelDocument` wraps one ``mzarr_core`` ``LabelImage`` of the open :class:`~mzarr_app.document.Document`
(its levels, read through the library's chunk reader and decoded-chunk cache of the file) with the interface a
:class:`~mzarr_app.layers.Layer` needs. A :class:`LabelLayer` is planned like the image (same planner, same
factors: the same level as the image underneath) and renders its tiles as RGBA: NGFF ``colors`` when given, else a
stable pseudo-random colour per label value (a hash of the value, so the same value has the same colour in every
session and any 64-bit value works without a table), 0 transparent; filled or as contours (pixels whose
4-neighbours within the tile differ); the overlay opacity is the items' opacity (Qt blends).
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np
import pyqtgraph as pg

from . import chunk_loader
from .contrast import DisplaySettings
from .document import Document, Edit, check_value, full_region, overlay_edits
from .layers import Layer, _Tile

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser of ``values`` (any integer dtype, viewed as uint64): well-spread 64-bit hashes."""
    x = values.astype(np.int64, copy=False).view(np.uint64) if values.dtype.kind == "i" else values.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def hashed_colors(values: np.ndarray) -> np.ndarray:
    """(n, 4) uint8 RGBA: a stable bright colour per label value (HSV from a hash of the value), 0 transparent."""
    v = np.asarray(values).ravel()
    if v.dtype == bool:
        v = v.astype(np.uint8)
    h = _mix(v)
    hue = (h & np.uint64(0xFFFF)).astype(np.float64) / 65536.0
    sat = 0.6 + 0.4 * ((h >> np.uint64(16)) & np.uint64(0xFF)).astype(np.float64) / 255.0
    val = 0.75 + 0.25 * ((h >> np.uint64(24)) & np.uint64(0xFF)).astype(np.float64) / 255.0
    i = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    r = np.choose(i, [val, q, p, p, t, val])
    g = np.choose(i, [t, val, val, q, p, p])
    b = np.choose(i, [p, p, t, val, val, q])
    out = np.round(np.stack([r, g, b, np.ones_like(r)], axis=1) * 255).astype(np.uint8)
    out[v == 0] = 0
    return out


def color_table(values: np.ndarray, colors: dict[int, tuple[int, ...]] | None) -> np.ndarray:
    """(n, 4) uint8 RGBA of label ``values``: ``colors[value]`` (NGFF) when given, else :func:`hashed_colors`."""
    v = np.asarray(values).ravel()
    out = hashed_colors(v)
    if colors:
        if v.size > 1 and v.dtype != bool and bool(np.all(v[1:] > v[:-1])):  # sorted (a table, np.unique)
            for value, c in colors.items():
                j = int(np.searchsorted(v, value))
                if j < v.size and int(v[j]) == int(value):
                    out[j] = (tuple(c) + (255,))[:4]
        else:
            for j, x in enumerate(v.tolist()):
                given = colors.get(int(x))
                if given is not None:
                    out[j] = (tuple(given) + (255,))[:4]
    return out


def contour_mask(labels: np.ndarray) -> np.ndarray:
    """True where a pixel's label differs from one of its 4-neighbours inside ``labels`` (edges replicated)."""
    d = np.asarray(labels)
    m = np.zeros(d.shape, bool)
    if d.shape[0] > 1:
        dr = d[1:] != d[:-1]
        m[1:] |= dr
        m[:-1] |= dr
    if d.shape[1] > 1:
        dc = d[:, 1:] != d[:, :-1]
        m[:, 1:] |= dc
        m[:, :-1] |= dc
    return m


def small_table(dtype: np.dtype, colors: dict[int, tuple[int, ...]] | None,
                hidden: frozenset[int] = frozenset()) -> np.ndarray | None:
    """(2^bits, 4) RGBA table indexed by ``value - min`` for 8- and 16-bit (and bool) label dtypes, else None."""
    dt = np.dtype(dtype)
    if dt == bool:
        dt = np.dtype(np.uint8)
    if dt.kind not in "ui" or dt.itemsize > 2:
        return None
    info = np.iinfo(dt)
    table = color_table(np.arange(info.min, int(info.max) + 1, dtype=np.int64), colors)
    for v in hidden:
        if info.min <= v <= info.max:
            table[v - info.min] = 0
    return table


def premultiplied(table: np.ndarray) -> np.ndarray:
    """An (n, 4) RGBA colour table in the byte order of ``QImage.Format_ARGB32_Premultiplied`` (native-endian
    0xAARRGGBB: B, G, R, A on little-endian machines), each colour scaled by its alpha: what Qt draws without
    converting the image first."""
    t = np.asarray(table, np.uint16)
    alpha = t[:, 3:4]
    rgb = (t[:, :3] * alpha + 127) // 255
    argb = np.concatenate([alpha, rgb], axis=1)  # A, R, G, B: the 32-bit value's bytes from the most significant
    return np.ascontiguousarray(argb[:, ::-1] if sys.byteorder == "little" else argb, dtype=np.uint8)


def label_rgba(data: np.ndarray, colors: dict[int, tuple[int, ...]] | None = None,
               contour: bool = False, table: np.ndarray | None = None,
               hidden: frozenset[int] = frozenset(), as_premultiplied: bool = False) -> np.ndarray:
    """(rows, cols, 4) uint8 RGBA of a label tile: each value's colour (0 transparent; values in ``hidden`` too);
    ``contour``: only pixels on a boundary (:func:`contour_mask`) keep their colour. ``table``: the
    :func:`small_table` of the tile's dtype (a lookup instead of finding the tile's values).
    ``as_premultiplied``: the pixels in :func:`premultiplied` layout (a given ``table`` must be in it already)."""
    d = data if data.ndim == 2 else data[:, :, 0]
    if table is not None:
        if d.dtype == bool:
            d = d.view(np.uint8)
        lo = int(np.iinfo(d.dtype).min)
        idx = d.astype(np.int32) - lo if lo else d
    else:
        lo, hi = (int(d.min()), int(d.max())) if d.size else (0, 0)
        uniq: np.ndarray
        if hi - lo < max(4096, d.size // 4):  # values in a narrow range: a table of that range
            if d.dtype.kind == "u":  # uint64 values above 2^63 too
                uniq = np.arange(lo, hi + 1, dtype=np.uint64)
                idx = (d - d.dtype.type(lo)).astype(np.intp)
            else:
                uniq = np.arange(lo, hi + 1, dtype=np.int64)
                idx = d.astype(np.int64) - lo
        else:  # scattered values (e.g. hashes as labels): colour the values present
            uniq, inv = np.unique(d, return_inverse=True)
            idx = inv.reshape(d.shape)
        table = color_table(uniq, colors)
        if hidden:
            info = np.iinfo(uniq.dtype)
            fit = [v for v in hidden if info.min <= v <= info.max]
            table[np.isin(uniq, np.array(fit, dtype=uniq.dtype))] = 0
        if as_premultiplied:
            table = premultiplied(table)
    # one 4-byte gather per pixel (4x faster than gathering rows of 4 bytes)
    px = np.take(np.ascontiguousarray(table).view(np.uint32).ravel(), idx)
    if contour:
        px[~contour_mask(d)] = 0
    return px.view(np.uint8).reshape(d.shape + (4,))


class LabelDocument:
    """One label image of an open :class:`Document`, with the interface a :class:`Layer` reads through.

    Reads go through ``Level.read_chunk`` / ``read_chunk_plane`` of the label image's levels (the file's
    decoded-chunk cache); the cache budget is the image's (one cache per file). :meth:`refresh` opens the label
    image again after the image's document was reopened (a save)."""

    is_label = True
    channel_count = None

    def __init__(self, image: Document, name: str) -> None:
        self.image = image
        self.name = name
        self.path = image.path
        self._m: Any = None
        self.refresh()

    def refresh(self) -> None:
        """Open the label image again if the image's file handle changed."""
        if self._m is self.image.m:
            return
        lab = self.image.m.label(self.name)
        self._m = self.image.m
        self.label = lab
        self.levels = list(lab.levels)
        self.shape: tuple[int, ...] = tuple(int(s) for s in lab.shape)
        self.dtype = np.dtype(lab.dtype)
        self.axes: str = lab.axes
        self.spatial_axes = self.axes
        self.chunks = tuple(lab.chunks)
        self.spacing = self.image.spacing
        self.unit = self.image.unit
        self.plane_reads: list[bool] = [chunk_loader.plane_decodable(lev) for lev in self.levels]
        self.colors: dict[int, tuple[int, ...]] = {int(k): tuple(v) for k, v in dict(lab.colors).items()}
        self.properties: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in dict(lab.properties).items()}

    # --- reading (as Document) ---------------------------------------------------------------------------------
    def read_chunk(self, key: tuple) -> np.ndarray:
        if len(key) == 3:
            return chunk_loader.read_chunk_plane(self.levels[key[0]], key[1], key[2])
        return chunk_loader.read_chunk(self.levels[key[0]], key[1])

    def cached(self, key: tuple) -> np.ndarray | None:
        try:
            if len(key) == 3:
                return self.levels[key[0]].read_chunk_plane(tuple(key[1]), int(key[2]), cached_only=True)
            return self.levels[key[0]].read_chunk(tuple(key[1]), cached_only=True)
        except Exception:  # a closed file (being reopened): not cached
            return None

    def shared_chunk_cache(self, max_bytes: int) -> chunk_loader.LibraryCache:
        """A view of the file's decoded-chunk cache (sized and emptied by the image's loader, which starts first)."""
        return chunk_loader.LibraryCache(self)

    @property
    def cache_bytes(self) -> int:
        return int(self.image.cache_bytes or self.image.m.cache_info().max_bytes)

    def set_cache_bytes(self, n: int) -> None:
        self.image.set_cache_bytes(n)

    def cache_nbytes(self) -> int:
        return self.image.cache_nbytes()

    def cache_entries(self) -> int:
        return self.image.cache_entries()

    def clear_cache(self) -> None:
        self.image.clear_cache()

    # --- painting (as Document) ---------------------------------------------------------------------------------
    def full_region(self, spatial: dict[str, slice]) -> tuple[slice, ...]:
        """Region over every axis of the label image from per-axis slices."""
        return full_region(self.axes, self.shape, spatial)

    def check_value(self, value: float) -> float | int | bool:
        """``value`` as a label value of this image's dtype (ValueError if it does not fit)."""
        return check_value(self.dtype, value)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """Level-0 label values of ``region``, as saved (pending edits not applied)."""
        return np.asarray(self.label[region])

    def overlay(self, data: np.ndarray, level_index: int, plane: Any, tile: Any, edits: Sequence[Edit]) -> np.ndarray:
        """Tile ``data`` with pending label ``edits`` drawn in (nearest sampling at coarse levels)."""
        return overlay_edits(self, data, level_index, plane, tile, edits)

    def name_of(self, value: Any) -> str | None:
        """The ``name`` (or first string property) of label ``value`` from ``properties``, if any."""
        try:
            props = self.properties.get(int(value))
        except (TypeError, ValueError):
            return None
        if not props:
            return None
        for k in ("name", "label", "class"):
            if isinstance(props.get(k), str):
                return str(props[k])
        for v in props.values():
            if isinstance(v, str):
                return v
        return None


class LabelLayer(Layer):
    """A label image drawn over the image: coloured by value, filled or contour, with an overlay opacity."""

    def __init__(self, doc: LabelDocument, vb: pg.ViewBox, z_base: float, opacity: float = 0.5,
                 contour: bool = False, visible: bool = True) -> None:
        super().__init__(doc, vb, doc.name, z_base)  # type: ignore[arg-type]
        self.display = DisplaySettings(mode="labels", colormap="labels")  # no automatic contrast to compute
        self.opacity = float(opacity)
        self.contour = bool(contour)
        self.visible = bool(visible)
        #: label values not drawn
        self.hidden_values: frozenset[int] = frozenset()
        self._table: np.ndarray | None = None
        self._table_of: Any = None

    def table(self) -> np.ndarray | None:
        """The colour lookup of an 8/16-bit label image in :func:`premultiplied` layout (rebuilt when its colours
        or hidden values change)."""
        doc: LabelDocument = self.doc  # type: ignore[assignment]
        of = (doc.dtype, tuple(sorted(doc.colors.items())), self.hidden_values)
        if self._table_of != of:
            table = small_table(doc.dtype, doc.colors, self.hidden_values)
            self._table_of, self._table = of, None if table is None else premultiplied(table)
        return self._table

    def start_histogram(self) -> None:
        self.hist_keys = []

    def finish_histogram(self) -> tuple[bool, bool]:
        return True, False

    def apply(self, plan: Any, cache: Any) -> tuple[bool, bool]:
        """As :meth:`Layer.apply`, but tiles of another slice are hidden, not kept beneath: labels of another slice
        are never drawn over this one (the overlay of a new slice appears as its tiles arrive)."""
        out = super().apply(plan, cache)
        for t in self.tiles.values():
            self._show(t)
        return out

    def render_into(self, t: _Tile) -> None:
        doc: LabelDocument = self.doc  # type: ignore[assignment]
        data = doc.overlay(t.raw, t.key.level, t.plane, t.key, self.edits) if self.edits else t.raw
        t.item.premultiplied = True  # drawn as is: no conversion on the GUI thread
        #: a tile of background only (label 0) is transparent: neither coloured nor drawn
        zero = doc.colors.get(0)
        t.item.background = not np.any(data) and (zero is None or (len(zero) == 4 and zero[3] == 0))
        if t.item.background:
            # an image of the tile's size all the same (the item's rect scales by it), uncoloured and not drawn:
            # zeros from calloc, never touched
            t.item.setImage(np.zeros(data.shape[:2] + (4,), np.uint8), autoLevels=False, levels=None, lut=None)
        else:
            argb = label_rgba(data, doc.colors, self.contour, self.table(), self.hidden_values,
                              as_premultiplied=True)
            t.item.setImage(argb, autoLevels=False, levels=None, lut=None)
        t.item.setOpacity(self.opacity)
        self._show(t)

    def _show(self, t: _Tile) -> None:
        """Draw tile ``t`` when the layer is shown, the tile is of the current plane and not background only."""
        t.item.setVisible(self.visible and t.plane == self.plane and not getattr(t.item, "background", False))

    def set_opacity(self, opacity: float) -> None:
        self.opacity = float(min(1.0, max(0.0, opacity)))
        for t in self.tiles.values():
            t.item.setOpacity(self.opacity)

    def set_contour(self, contour: bool) -> None:
        if bool(contour) != self.contour:
            self.contour = bool(contour)
            self.render_all()

    def set_hidden_values(self, values: Sequence[int]) -> None:
        """Label values not to draw (the others keep their colours)."""
        hidden = frozenset(int(v) for v in values)
        if hidden != self.hidden_values:
            self.hidden_values = hidden
            self.render_all()

    def set_visible(self, visible: bool) -> None:
        self.visible = bool(visible)
        for t in self.tiles.values():
            self._show(t)


def label_documents(image: Document) -> tuple[list[LabelDocument], list[str]]:
    """The label images of ``image`` as documents, and messages for those that cannot be opened."""
    docs, errors = [], []
    try:
        names: Sequence[str] = image.m.labels()
    except Exception as exc:  # a damaged labels group: the image still opens
        return [], [f"labels: {type(exc).__name__}: {exc}"]
    for name in names:
        try:
            docs.append(LabelDocument(image, name))
        except Exception as exc:
            errors.append(f"label image {name}: {type(exc).__name__}: {exc}")
    return docs, errors
