"""Entry point of ``mzarr-viewer``: open files, hand them to a running instance, or run the smoke test."""

from __future__ import annotations

import argparse
import os
import sys
import time

from . import APP_NAME, __version__


def file_arg(text: str) -> str:
    """A file argument: a path, or a ``file://`` URL (percent-decoded; ``file://localhost/`` too) as launchers, file
    managers and browsers pass them; another URL is a usage error."""
    from mzarr_core.cli import local_path

    try:
        return os.fspath(local_path(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="mzarr-viewer", description=f"{APP_NAME}: view and edit .mzarr images.")
    p.add_argument("files", nargs="*", type=file_arg,
                   help=".mzarr files, OME-Zarr folders or images to import (paths or file:// URLs)")
    p.add_argument("--version", action="version", version=f"mzarr-viewer {__version__}")
    p.add_argument("--licenses", "--licences", action="store_true",
                   help="print where the licence texts of Mzarr and of the software it includes are, and exit")
    p.add_argument("--smoke-test", metavar="FILE", type=file_arg,
                   help="open FILE (offscreen), wait for the first full frame, print what was shown and exit")
    p.add_argument("--timeout", type=float, default=120.0, help="smoke-test timeout in seconds")
    p.add_argument("--new-instance", action="store_true",
                   help="do not hand files to a running viewer (also MZARR_VIEWER_SINGLE_INSTANCE=0)")
    p.add_argument("--cache-mb", type=float, default=None, help="chunk cache size in MB (default: setting, 512)")
    p.add_argument("--quit-after", type=float, default=None, metavar="SECONDS",
                   help="close all windows after SECONDS (scripted checks)")
    return p.parse_args(argv)


def smoke_test(path: str, timeout: float, cache_mb: float | None) -> int:
    """Open ``path`` offscreen-capable, wait for a complete frame, print one line; 0 on success."""
    # no window on screen (CI, installers' post-build checks) unless QT_QPA_PLATFORM says otherwise
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from .app import MzarrApplication

    app = MzarrApplication([sys.argv[0]], cache_mb)
    w = app.new_window()
    t0 = time.perf_counter()
    if not w.open_path(path):
        print(f"smoke-test FAILED: cannot open {path}: {w.last_error.replace(chr(10), ' ')}", file=sys.stderr)
        w.close()
        return 2
    if not w.wait_until_idle(timeout):
        print(f"smoke-test FAILED: no complete frame within {timeout:g} s for {path}", file=sys.stderr)
        return 3
    dt = time.perf_counter() - t0
    v = w.view
    doc = w.doc
    assert doc is not None
    tiles = {k: a for k, a in v.shown_tiles().items() if k.level == v.level}
    total = sum(float(a.astype("float64").sum()) for a in tiles.values())
    count = sum(a.size for a in tiles.values())
    mean = total / count if count else float("nan")
    failed = len(v.loader.failed) if v.loader else 0
    print(f"smoke-test OK: file={path} shape={tuple(doc.shape)} dtype={doc.dtype} axes={doc.axes} "
          f"level={v.level} tiles={len(tiles)} mean={mean:.4f} seconds={dt:.3f}"
          + (f" failed_chunks={failed}" if failed else ""))
    w.close()
    app.processEvents()
    return 0


def print_licences() -> int:
    """``--licenses``: the bundle's licence folder and its index, or (source install) every licence file."""
    from .licences import INDEX, licence_dir, licence_files

    folder = licence_dir()
    if folder is not None:
        print(f"licence texts: {folder}")
        print(f"index (versions, licences, replacing the Qt libraries): {folder / INDEX}")
        return 0
    files = licence_files()
    print(f"licence texts ({len(files)} files: Mzarr's LICENSE and those of the installed packages it uses):")
    for f in files:
        print(f"  {f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the viewer; returns the process exit code."""
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.licenses:
        return print_licences()
    if args.smoke_test:
        return smoke_test(args.smoke_test, args.timeout, args.cache_mb)
    from .app import MzarrApplication
    from .single_instance import SingleInstanceServer, send_to_running

    use_single = not args.new_instance and os.environ.get("MZARR_VIEWER_SINGLE_INSTANCE", "1") != "0"
    app = MzarrApplication([sys.argv[0]], args.cache_mb)
    app.install_excepthook()
    if use_single and args.files and send_to_running(args.files):
        print(f"opened in the running {APP_NAME}")
        return 0
    if use_single:
        app.single = SingleInstanceServer(parent=app)
        app.single.filesReceived.connect(app.open_files)
        app.single.listen()
    if args.files:
        for f in args.files:
            app.open_file(f)
    else:
        app.new_window()
    if args.quit_after is not None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(int(args.quit_after * 1000), app.closeAllWindows)
    code = app.exec()
    if app.single is not None:
        app.single.close()
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
