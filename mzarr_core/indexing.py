"""NumPy basic indexing (ints, slices with any step, negative indices, Ellipsis) reduced to a canonical form."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from .errors import MzarrValueError


@dataclass(frozen=True)
class AxisIndex:
    """One axis of a selection: ``start:stop:step`` with step > 0, or a single integer (``drop=True``).

    ``reverse`` marks a negative-step slice, read forwards then flipped.
    """

    start: int
    stop: int
    step: int = 1
    drop: bool = False
    reverse: bool = False

    @property
    def slice(self) -> slice | int:
        return self.start if self.drop else slice(self.start, self.stop, self.step)

    @property
    def size(self) -> int:
        return 1 if self.drop else len(range(self.start, self.stop, self.step))

    @property
    def bounds(self) -> tuple[int, int]:
        """Half-open range of positions this index touches (empty selections give start == stop)."""
        if self.drop:
            return self.start, self.start + 1
        if self.size == 0:
            return self.start, self.start
        return self.start, self.start + (self.size - 1) * self.step + 1


def _one(item: object, n: int, axis: int) -> AxisIndex:
    if isinstance(item, slice):
        start, stop, step = item.indices(n)
        if step > 0:
            return AxisIndex(start, stop, step)
        r = range(start, stop, step)
        if len(r) == 0:
            return AxisIndex(0, 0, 1, reverse=True)
        return AxisIndex(r[-1], r[0] + 1, -step, reverse=True)
    if isinstance(item, bool) or item is None:
        raise IndexError(f"Mzarr indexing takes integers, slices and Ellipsis; got {item!r} for axis {axis}")
    try:
        i = operator.index(cast(Any, item))  # TypeError for what is not an integer
    except TypeError:
        raise IndexError(
            f"Mzarr indexing takes integers, slices and Ellipsis; got {type(item).__name__} for axis {axis}. "
            "For fancy or boolean indexing, read a region first and index the NumPy array it returns."
        ) from None
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
    return AxisIndex(i % n, i % n + 1, 1, drop=True)


def normalize(key: object, shape: tuple[int, ...]) -> tuple[AxisIndex, ...]:
    """Expand ``key`` to one :class:`AxisIndex` per axis of ``shape``."""
    items = list(key) if isinstance(key, tuple) else [key]
    n_ellipsis = sum(1 for k in items if k is Ellipsis)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    real = len(items) - n_ellipsis
    if real > len(shape):
        raise IndexError(f"too many indices: the image has {len(shape)} dimensions but {real} were given")
    if n_ellipsis:
        at = items.index(Ellipsis)
        items[at : at + 1] = [slice(None)] * (len(shape) - real)
    items += [slice(None)] * (len(shape) - len(items))
    return tuple(_one(item, n, axis) for axis, (item, n) in enumerate(zip(items, shape)))


def result_shape(index: tuple[AxisIndex, ...]) -> tuple[int, ...]:
    """Shape NumPy would give for this selection."""
    return tuple(ix.size for ix in index if not ix.drop)


def broadcast_value(value: object, target: tuple[int, ...]) -> "np.ndarray":
    """``value`` broadcast to ``target`` as NumPy assignment would (leading length-1 axes dropped)."""
    arr = np.asarray(value)
    while arr.ndim > len(target) and arr.shape[0] == 1:
        arr = arr[0]
    try:
        return np.broadcast_to(arr, target)
    except ValueError:
        raise MzarrValueError(
            f"cannot assign a value of shape {np.shape(cast(Any, value))} to a region of shape {target}"
        ) from None


def prepare_write(key: object, value: object, shape: tuple[int, ...], dtype: np.dtype) -> tuple[tuple[AxisIndex, ...], np.ndarray]:
    """``array[key] = value`` checked as NumPy would: the normalised index and ``value`` converted to ``dtype``
    (refused when it does not fit) and broadcast to the region's shape."""
    from .values import coerce

    index = normalize(key, shape)
    return index, broadcast_value(coerce(value, dtype), result_shape(index))
