"""Axis conventions: the user's axis order (e.g. ``yxc``) and the NGFF storage order (channel first, then z, y, x)."""

from __future__ import annotations

import numpy as np

from .errors import MzarrFormatError

USER_AXES = ("yx", "zyx", "yxc", "zyxc", "cyx", "czyx")
COLOUR_DTYPES = (np.dtype("uint8"), np.dtype("uint16"))


def storage_axes(user_axes: str) -> str:
    """NGFF order of the same axes: ``c`` first, then the spatial axes (``yxc`` -> ``cyx``)."""
    return "c" + user_axes.replace("c", "") if "c" in user_axes else user_axes


def storage_permutation(user_axes: str) -> tuple[int, ...]:
    """``perm`` such that storage axis ``i`` is user axis ``perm[i]``."""
    return tuple(user_axes.index(a) for a in storage_axes(user_axes))


def infer_axes(
    shape: tuple[int, ...], dtype: np.dtype, axes: str | None = None, channel_axis: int | None = None
) -> str:
    """The user axes of an array: given explicitly, from ``channel_axis``, or guessed from the shape.

    A 3D uint8/uint16 array whose last axis has 3 or 4 entries is an RGB(A) picture (``yxc``); any other 3D
    array is a volume (``zyx``); 4D needs to be told where the channels are.
    """
    ndim = len(shape)
    if axes is not None:
        axes = axes.lower()
        if axes not in USER_AXES:
            raise MzarrFormatError(f"axes must be one of {', '.join(USER_AXES)}; got {axes!r}")
        if len(axes) != ndim:
            raise MzarrFormatError(f"axes {axes!r} has {len(axes)} letters but the array has {ndim} dimensions")
        return axes
    if channel_axis is not None:
        if ndim not in (3, 4):
            raise MzarrFormatError(f"a channel axis needs a 3D or 4D array; this array is {ndim}D with shape {shape}")
        ca = channel_axis + ndim if channel_axis < 0 else channel_axis
        if ca == 0:
            return "cyx" if ndim == 3 else "czyx"
        if ca == ndim - 1:
            return "yxc" if ndim == 3 else "zyxc"
        raise MzarrFormatError(
            f"channel_axis={channel_axis} is in the middle of shape {shape}; move it first or last "
            "with numpy.moveaxis(array, channel_axis, 0)"
        )
    if ndim == 2:
        return "yx"
    if ndim == 3:
        if shape[-1] in (3, 4) and np.dtype(dtype) in COLOUR_DTYPES:
            return "yxc"
        return "zyx"
    if ndim == 4:
        raise MzarrFormatError(
            f"a 4D array (shape {shape}) needs channel_axis= (0 or -1) or axes= ('czyx' or 'zyxc'): "
            "Mzarr stores 2D and 3D images with an optional channel axis"
        )
    raise MzarrFormatError(
        f"Mzarr stores 2D and 3D images with an optional channel axis; got a {ndim}D array of shape {shape}. "
        "Split time points or other extra dimensions into separate files."
    )


def is_colour(user_axes: str, channel_count: int | None, dtype: np.dtype) -> bool:
    """True for interleaved RGB/RGBA pictures, stored as colour JPEG XL."""
    return user_axes.endswith("c") and channel_count in (3, 4) and np.dtype(dtype) in COLOUR_DTYPES
