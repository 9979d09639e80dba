"""PyInstaller entry point for the Mzarr viewer (GUI executable ``mzarr-viewer``)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from mzarr_app.main import main

    sys.exit(main())
