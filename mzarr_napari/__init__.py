"""napari plugin (npe2) for Mzarr: open .mzarr files and OME-Zarr folders as multiscale layers, save layers as .mzarr.

Installed with ``pip install "mzarr[napari]"``; napari finds it through the ``napari.manifest`` entry point
(``mzarr_napari:napari.yaml``). No Qt here: the functions return napari's layer data tuples and napari draws them.
"""

from __future__ import annotations

from ._reader import get_reader, read_layers
from ._writer import write_image, write_labels, write_layers

__all__ = ["get_reader", "read_layers", "write_image", "write_labels", "write_layers"]
