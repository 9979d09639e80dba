"""``python -m mzarr_app``."""

import sys

from .main import main

sys.exit(main())
