"""PyInstaller entry point for the Mzarr command line tool (console executable ``mzarr``)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from mzarr_core.cli import main

    sys.exit(main())
