"""User metadata: a live, JSON-only mapping that writes itself back to the file when it changes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from .errors import MzarrReadOnlyError, MzarrValueError


#: How deep metadata may nest: deep enough for any real document, shallow enough for every JSON parser.
MAX_DEPTH = 64


def _check_keys(value: Any, what: str, depth: int = 0) -> None:
    """Every mapping key, at every depth, is a string (json.dumps would silently turn 1 into "1")."""
    if depth > MAX_DEPTH:
        raise MzarrValueError(f"metadata {what} nests deeper than {MAX_DEPTH} levels; flatten it")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise MzarrValueError(
                    f"metadata {what} has the key {key!r} ({type(key).__name__}); keys must be strings at every "
                    f"level (JSON would turn it into {str(key)!r}, perhaps over another key): use str keys"
                )
            _check_keys(item, what, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_keys(item, what, depth + 1)


def check_json(value: Any, what: str = "value") -> Any:
    """Return a deep copy of ``value`` if it is plain JSON (string keys, no NaN), else raise a clear error."""
    _check_keys(value, what)
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise MzarrValueError(
            f"metadata {what} must be JSON (dict, list, str, int, float, bool, None; no NaN/inf): {exc}. "
            "Convert it first, e.g. numpy values with .tolist() or str(value)."
        ) from None
    _check_size(text.encode(), what)
    return json.loads(text)


def _check_size(raw: bytes, what: str) -> None:
    """Metadata a reader would refuse (see metadata_check: size and value-count bounds) is refused on writing."""
    from .metadata_check import MAX_DOCUMENT_BYTES, json_limits_problem

    budget = MAX_DOCUMENT_BYTES - 2**20  # the rest of the document (NGFF metadata) needs room too
    problem = json_limits_problem(raw) or (f"{len(raw)} bytes" if len(raw) > budget else None)
    if problem:
        raise MzarrValueError(
            f"metadata {what} is too large ({problem}; at most {budget // 2**20} MiB of JSON): store bulk data as "
            "pixels (an image or labels) or in a separate file and keep a reference in the metadata"
        )


class LiveAttrs(MutableMapping[str, Any]):
    """A dict-like view of the image's attributes; every change is validated and handed to ``on_change``."""

    def __init__(
        self,
        data: dict[str, Any],
        on_change: Callable[[dict[str, Any]], None] | None,
        read_only: bool,
        read_only_reason: str = "the image is open read-only; open it with mode='r+' to change its attributes",
    ):
        self._data = data
        self._on_change = on_change
        self._read_only = read_only
        self._read_only_reason = read_only_reason

    def _changed(self, before: dict[str, Any]) -> None:
        """Hand the new state to ``on_change``; if saving fails, go back to ``before`` (all or nothing)."""
        if self._on_change is None:
            return
        try:
            self._on_change(self._data)
        except BaseException:
            self._data.clear()
            self._data.update(before)
            raise

    def _check_writable(self) -> None:
        if self._read_only:
            raise MzarrReadOnlyError(self._read_only_reason)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        self._check_writable()
        before = copy.deepcopy(self._data)
        del self._data[key]
        self._changed(before)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def update(self, *args: Any, **kwargs: Any) -> None:  # one write for many keys, all or nothing
        self._check_writable()
        new = dict(*args, **kwargs)
        checked = {}
        for key, value in new.items():
            if not isinstance(key, str):
                raise MzarrValueError(f"metadata keys must be strings, got {key!r}")
            checked[key] = check_json(value, f"value for {key!r}")
        before = copy.deepcopy(self._data)
        self._data.update(checked)
        self._changed(before)

    def replace(self, data: dict[str, Any]) -> None:
        """Replace every attribute at once (e.g. from an editor)."""
        self._check_writable()
        checked = check_json(data, "attributes")
        if not isinstance(checked, dict):
            raise MzarrValueError("attributes must be a JSON object (dict)")
        before = copy.deepcopy(self._data)
        self._data.clear()
        self._data.update(checked)
        self._changed(before)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    def __repr__(self) -> str:
        return f"LiveAttrs({self._data!r})"
