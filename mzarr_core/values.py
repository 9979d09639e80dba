"""Checks that a value written into an image fits its dtype: no silent wrap of 300 into uint8."""

from __future__ import annotations

import numpy as np

from .errors import MzarrDtypeError, MzarrValueError


def _range_error(v: np.ndarray, dtype: np.dtype, lo: float, hi: float) -> MzarrValueError:
    return MzarrValueError(
        f"values from {v.min()} to {v.max()} do not fit the image's dtype {dtype} ({lo}..{hi}); "
        f"clip or rescale them first, e.g. numpy.clip(value, {lo}, {hi})"
    )


def coerce(value: object, dtype: np.dtype) -> np.ndarray:
    """``value`` as an array of ``dtype``, or a clear error if that would change any value."""
    dtype = np.dtype(dtype)
    v = np.asarray(value)
    if v.dtype == dtype:
        return v
    if v.dtype.kind not in "biuf":
        raise MzarrDtypeError(f"cannot write {v.dtype} values into a {dtype} image; give numbers")
    if v.size == 0:
        return v.astype(dtype)
    if dtype.kind == "b":
        if v.dtype.kind != "b" and not np.isin(v, (0, 1)).all():
            raise MzarrValueError(f"a bool image takes only 0/1 or True/False; got values {v.min()}..{v.max()}")
        return v.astype(bool)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        if v.dtype.kind == "f":
            if not np.isfinite(v).all():
                raise MzarrValueError(f"cannot write NaN or infinity into a {dtype} image")
            if not (np.floor(v) == v).all():
                raise MzarrValueError(
                    f"cannot write fractional values into a {dtype} image without losing them; round them first"
                )
        if v.dtype.kind != "b" and (v.min() < info.min or v.max() > info.max):
            raise _range_error(v, dtype, info.min, info.max)
        return v.astype(dtype)
    finfo = np.finfo(dtype)
    if v.dtype.kind == "f":
        finite = v[np.isfinite(v)]
        if finite.size and (finite.min() < finfo.min or finite.max() > finfo.max):
            raise _range_error(finite, dtype, finfo.min, finfo.max)
    return v.astype(dtype)
