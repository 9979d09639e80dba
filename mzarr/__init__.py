"""Top-level import name for Mzarr: ``from mzarr import Mzarr``. Implemented in :mod:`mzarr_core`."""

from mzarr_core import *  # noqa: F401,F403
from mzarr_core import __all__, __version__  # noqa: F401
