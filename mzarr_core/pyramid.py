"""Pyramid geometry (how many levels, their shapes) and the downsampling kernels (mean, nearest, mode)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .errors import MzarrValueError

DOWNSAMPLE_METHODS = ("mean", "nearest", "mode")


@dataclass(frozen=True)
class LevelGeometry:
    """Shape of one pyramid level and its downsampling factor per axis, both in storage order."""

    shape: tuple[int, ...]
    factor: tuple[int, ...]


def halving_axes(shape: tuple[int, ...], storage_axes: str) -> tuple[bool, ...]:
    """Which axes the next level halves: every spatial axis still longer than one pixel."""
    return tuple(a != "c" and n > 1 for a, n in zip(storage_axes, shape))


def next_shape(shape: tuple[int, ...], halve: tuple[bool, ...]) -> tuple[int, ...]:
    return tuple((n + 1) // 2 if h else n for n, h in zip(shape, halve))


def plan_levels(
    shape: tuple[int, ...], storage_axes: str, chunks: tuple[int, ...], levels: int | None = None
) -> list[LevelGeometry]:
    """Level shapes: halve until the coarsest level fits in one chunk (or exactly ``levels`` levels)."""
    if levels is not None and levels < 1:
        raise MzarrValueError(f"levels must be at least 1, got {levels}")
    out = [LevelGeometry(tuple(shape), tuple(1 for _ in shape))]
    while True:
        cur = out[-1]
        if levels is not None and len(out) >= levels:
            break
        fits = all(n <= c for a, n, c in zip(storage_axes, cur.shape, chunks) if a != "c")
        if levels is None and fits:
            break
        halve = halving_axes(cur.shape, storage_axes)
        if not any(halve):
            break
        out.append(
            LevelGeometry(next_shape(cur.shape, halve), tuple(f * (2 if h else 1) for f, h in zip(cur.factor, halve)))
        )
    return out


def _pad_even(block: np.ndarray, halve: tuple[bool, ...]) -> np.ndarray:
    pad = [(0, n % 2 if h else 0) for n, h in zip(block.shape, halve)]
    if any(p[1] for p in pad):
        block = np.pad(block, pad, mode="edge")
    return block


def _offset_views(block: np.ndarray, halve: tuple[bool, ...]) -> list[np.ndarray]:
    """The 2^k strided views whose element-wise combination gives each output pixel's inputs (no copies)."""
    steps = [(0, 1) if h else (None,) for h in halve]
    views = []
    for offsets in itertools.product(*steps):
        views.append(block[tuple(slice(o, None, 2) if o is not None else slice(None) for o in offsets)])
    return views


def _accumulator(dtype: np.dtype) -> np.dtype:
    if dtype.kind == "b":
        return np.dtype("uint8")
    if dtype.kind in "ui":
        if dtype.itemsize == 1:
            return np.dtype("int16")
        return np.dtype("int32") if dtype.itemsize == 2 else np.dtype("int64")
    return np.dtype("float64")


_MODE_CHUNK = 1 << 15  # output pixels per chunk of the mode kernel: its temporaries stay in the CPU cache


def _mode(views: list[np.ndarray]) -> np.ndarray:
    """Most frequent value across ``views`` (the 2^k inputs of each output pixel, in C order); ties go to the first.

    Exactly ``argmax`` over the counts ``sum_i(views[i] == views[j])`` (first maximum wins), computed chunk by chunk
    from pairwise equality tests, never stacking or sorting the inputs. Values compare with ``==`` (so ``-0.0 ==
    0.0`` and a NaN equals nothing, not even itself)."""
    out = np.empty(views[0].shape, views[0].dtype)
    if out.size == 0:
        return out
    shape = out.shape
    # Split the leading axes into single indices and one axis into row blocks so each chunk has <= _MODE_CHUNK pixels.
    axis, inner = len(shape) - 1, 1
    while axis > 0 and inner * shape[axis] <= _MODE_CHUNK:
        inner *= shape[axis]
        axis -= 1
    step = max(1, _MODE_CHUNK // inner)
    kernel = _mode_kernel(out.dtype, len(views))
    for lead in np.ndindex(*shape[:axis]):
        for start in range(0, shape[axis], step):
            sel = lead + (slice(start, start + step),)
            kernel([v[sel] for v in views], out[sel])
    return out


def _mode_kernel(dtype: np.dtype, n: int):
    exact = dtype.kind in "biu"  # every value equals itself: the self-match adds 1 to every count and can be left out
    if exact and n == 2:
        return _mode2_exact
    if exact and n == 4:
        return _mode4_exact
    return _mode_counts if exact else _mode_counts_self


def _mode2_exact(vs: list[np.ndarray], out: np.ndarray) -> None:
    out[...] = vs[0]  # either both equal or a 1-1 tie: the first wins


def _mode4_exact(vs: list[np.ndarray], out: np.ndarray) -> None:
    """2x2 block a b / c d: a if it occurs twice (nothing can then occur 3 times); else b if it occurs twice; else
    c if c == d; else all differ and a wins the tie."""
    a, b, c, d = vs
    out[...] = a
    tmp = np.empty(out.shape, bool)
    np.equal(c, d, out=tmp)
    np.copyto(out, c, where=tmp)
    hit = np.equal(b, c)
    hit |= np.equal(b, d, out=tmp)
    np.copyto(out, b, where=hit)
    np.equal(a, b, out=hit)
    hit |= np.equal(a, c, out=tmp)
    hit |= np.equal(a, d, out=tmp)
    np.copyto(out, a, where=hit)


def _mode_counts(vs: list[np.ndarray], out: np.ndarray, self_match: bool = False) -> None:
    """General case: count the matches of each candidate from the n(n-1)/2 pairwise tests, then keep the first
    candidate with the highest count. ``self_match`` also counts ``v == v`` (false only for NaN)."""
    n = len(vs)
    vs = [np.ascontiguousarray(v) for v in vs]  # each input is compared n-1 times: read it contiguously
    counts = [np.zeros(out.shape, np.uint8) for _ in range(n)]
    eq = np.empty(out.shape, bool)
    eq8 = eq.view(np.uint8)
    for i in range(n):
        if self_match:
            np.equal(vs[i], vs[i], out=eq)
            counts[i] += eq8
        for j in range(i + 1, n):
            np.equal(vs[i], vs[j], out=eq)
            counts[i] += eq8
            counts[j] += eq8
    out[...] = vs[0]
    best = counts[0]
    for j in range(1, n):
        np.greater(counts[j], best, out=eq)
        np.copyto(out, vs[j], where=eq)
        np.maximum(best, counts[j], out=best)


def _mode_counts_self(vs: list[np.ndarray], out: np.ndarray) -> None:
    _mode_counts(vs, out, self_match=True)


def downsample(block: np.ndarray, halve: tuple[bool, ...], method: str = "mean") -> np.ndarray:
    """Halve ``block`` along the axes flagged in ``halve``. Odd edges repeat their last pixel."""
    if method not in DOWNSAMPLE_METHODS:
        raise MzarrValueError(f"downsample must be one of {', '.join(DOWNSAMPLE_METHODS)}; got {method!r}")
    block = np.asarray(block)
    if not any(halve):
        return block.copy()
    if method == "nearest":
        return np.ascontiguousarray(block[tuple(slice(None, None, 2) if h else slice(None) for h in halve)])
    padded = _pad_even(block, halve)
    views = _offset_views(padded, halve)
    n = len(views)
    if method == "mode":
        return _mode(views)
    if block.dtype.kind in "ui" and block.dtype.itemsize == 8:
        return _exact_int_mean(views)
    if block.dtype.kind == "f":
        return _float_mean(views)
    acc = _accumulator(block.dtype)
    total = views[0].astype(acc)
    for view in views[1:]:
        np.add(total, view, out=total, casting="unsafe")
    if block.dtype.kind == "b":
        return total * 2 >= n  # majority vote; a tie counts as True so thin masks survive
    total += n // 2
    total //= n
    return total.astype(block.dtype)


def _exact_int_mean(views: list[np.ndarray]) -> np.ndarray:
    """Mean rounded half up for 64-bit integers without overflow: sum the quotients and remainders by n apart."""
    n = len(views)
    quotient: np.ndarray = sum((v // n for v in views), np.zeros_like(views[0]))
    remainder: np.ndarray = sum((v % n for v in views), np.zeros_like(views[0]))
    return np.asarray(quotient + (remainder + n // 2) // n).astype(views[0].dtype)


def _float_mean(views: list[np.ndarray]) -> np.ndarray:
    """Correctly rounded mean: summed in float64; where a float64 sum overflows, divided before summing."""
    n = len(views)
    with np.errstate(over="ignore", invalid="ignore"):
        total = views[0].astype(np.float64)
        for view in views[1:]:
            total += view
        mean = total / n
        if views[0].dtype.itemsize == 8:
            overflow = np.isinf(mean)
            if overflow.any():
                divided = sum(v[overflow] / n for v in views)
                mean[overflow] = divided
    return mean.astype(views[0].dtype)
