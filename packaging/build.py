#!/usr/bin/env python3
"""Build the Mzarr one-folder bundle for the machine this runs on.

    python packaging/build.py                 # -> packaging/dist/mzarr/ (+ Mzarr.app on macOS)
    python packaging/build.py --smoke-test    # build, then run both executables on a sample file
    python packaging/build.py --archive       # also pack the bundle for download (.zip / .tar.gz)

Needs the project's dependencies and PyInstaller in the running interpreter
(``pip install .[dev]``).  The bundle holds two executables sharing one
``_internal`` folder: ``mzarr-viewer`` (the viewer) and ``mzarr`` (the CLI),
and ``licenses/``: the licence texts of everything it ships, with the index
``licenses/THIRD_PARTY_LICENSES.txt`` (packaging/collect_licenses.py).
On Linux the bundle also gets ``install.sh`` and ``share/`` (desktop file,
MIME type, icons) so a user can register it with the desktop.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = HERE / "mzarr.spec"
IS_WIN = sys.platform == "win32"
IS_MAC = sys.platform == "darwin"
EXE_SUFFIX = ".exe" if IS_WIN else ""


def platform_tag() -> str:
    import platform

    system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    machine = platform.machine().lower().replace("amd64", "x86_64").replace("aarch64", "arm64")
    return f"{system}-{machine}"


def version() -> str:
    import tomllib

    try:
        with open(ROOT / "pyproject.toml", "rb") as fh:
            return tomllib.load(fh)["project"]["version"]
    except (OSError, KeyError):
        return "0.0.0"


def dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def executables(bundle: Path) -> tuple[Path, Path]:
    """(viewer, cli) executables inside a built one-folder bundle."""
    return bundle / f"mzarr-viewer{EXE_SUFFIX}", bundle / f"mzarr{EXE_SUFFIX}"


def run_pyinstaller(dist: Path, work: Path, clean: bool) -> None:
    cmd = [
        sys.executable, "-m", "PyInstaller", str(SPEC),
        "--noconfirm", "--log-level", "WARN",
        "--distpath", str(dist), "--workpath", str(work),
    ]
    if clean:
        cmd.append("--clean")
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def add_linux_desktop_files(bundle: Path) -> None:
    """install.sh + share/ (desktop entry, MIME XML) next to the executables."""
    share = bundle / "share"
    share.mkdir(exist_ok=True)
    for name in ("mzarr-viewer.desktop", "mzarr.xml"):
        shutil.copy2(HERE / "linux" / name, share / name)
    shutil.copy2(HERE / "linux" / "install.sh", bundle / "install.sh")
    os.chmod(bundle / "install.sh", 0o755)


def remove_dangling_links(folder: Path) -> list[Path]:
    """Delete every symbolic link under ``folder`` whose target does not exist (a link to a library the spec
    dropped); returns them. A user unpacking the bundle must not meet broken links."""
    removed = []
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() and not p.exists():
            print(f"removing dangling link {p.relative_to(folder)} -> {os.readlink(p)}", flush=True)
            p.unlink()
            removed.append(p)
    return removed


def place_licences(bundle: Path) -> Path | None:
    """The licences folder the spec collected (``_internal/licenses``) moved next to the executables, where a user
    looks (and the Windows installer's licence page reads THIRD_PARTY_LICENSES.txt). Not in Mzarr.app, which keeps
    it in Contents/Resources."""
    src, dst = bundle / "_internal" / "licenses", bundle / "licenses"
    if not src.is_dir():
        print("warning: the bundle has no licenses/ folder", file=sys.stderr)
        return None
    if dst.exists():
        shutil.rmtree(dst)
    shutil.move(str(src), str(dst))
    return dst


def make_archive(dist: Path) -> Path:
    stem = f"mzarr-{version()}-{platform_tag()}"
    if IS_MAC:
        src, out = dist / "Mzarr.app", dist / f"{stem}.zip"
    else:
        src, out = dist / "mzarr", dist / (f"{stem}.zip" if IS_WIN else f"{stem}.tar.gz")
    print(f"packing {src.name} -> {out.name}", flush=True)
    if out.suffix == ".zip":
        if IS_MAC:  # keep symlinks and permissions inside the .app
            subprocess.run(["ditto", "-c", "-k", "--keepParent", str(src), str(out)], check=True)
        else:
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in sorted(src.rglob("*")):
                    zf.write(p, p.relative_to(dist))
    else:
        with tarfile.open(out, "w:gz") as tf:
            tf.add(src, arcname=src.name)
    return out


def make_sample(path: Path) -> tuple[int, ...]:
    """Write a small real .mzarr image with the library; return its shape."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from mzarr_core import Mzarr

    y, x = np.mgrid[0:300, 0:400]
    img = ((x * 255 // 399) ^ (y * 255 // 299)).astype(np.uint8)
    Mzarr(img).save(str(path))
    return img.shape


def smoke_test(bundle: Path, sample: Path | None = None) -> None:
    """Run the bundled viewer headless and the bundled CLI on a real file."""
    viewer, cli = executables(bundle)
    tmp = None
    if sample is None:
        tmp = tempfile.TemporaryDirectory()
        sample = Path(tmp.name) / "sample.mzarr"
        shape = make_sample(sample)
        print(f"sample {sample} shape={shape}")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    try:
        for cmd in ([str(viewer), "--smoke-test", str(sample)], [str(cli), "info", str(sample)]):
            print("+", " ".join(cmd), flush=True)
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
            print(r.stdout, end="")
            print(r.stderr, end="", file=sys.stderr)
            if r.returncode != 0:
                raise SystemExit(f"FAILED ({r.returncode}): {' '.join(cmd)}")
            if "--smoke-test" in cmd and "smoke-test OK:" not in r.stdout:
                if IS_WIN and not r.stdout.strip():
                    # a windowed (GUI-subsystem) .exe may have no stdout to print to;
                    # its exit status 0 already says the first frame was rendered
                    print("note: windowed viewer printed nothing; exit status 0 accepted")
                else:
                    raise SystemExit("FAILED: viewer did not print 'smoke-test OK:'")
        print("bundle smoke test OK")
    finally:
        if tmp is not None:
            tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dist", type=Path, default=HERE / "dist", help="output folder (default packaging/dist)")
    ap.add_argument("--work", type=Path, default=None, help="PyInstaller work folder (default packaging/build)")
    ap.add_argument("--no-clean", action="store_true", help="reuse PyInstaller's cache from an earlier build")
    ap.add_argument("--archive", action="store_true", help="also pack the bundle into a .zip/.tar.gz")
    ap.add_argument("--smoke-test", action="store_true", help="run the built executables on a sample file")
    args = ap.parse_args(argv)

    dist = args.dist.resolve()
    work = (args.work or HERE / "build").resolve()
    bundle = dist / "mzarr"
    t0 = time.monotonic()
    run_pyinstaller(dist, work, clean=not args.no_clean)
    for folder in (bundle, dist / "Mzarr.app"):
        if folder.is_dir():
            remove_dangling_links(folder)
    place_licences(bundle)
    if sys.platform.startswith("linux"):
        add_linux_desktop_files(bundle)
    elapsed = time.monotonic() - t0
    size = dir_size(bundle)
    print(f"built {bundle} in {elapsed:.0f} s, {size / 2**20:.1f} MiB")
    if IS_MAC:
        print(f"macOS app: {dist / 'Mzarr.app'}")
    if args.archive:
        out = make_archive(dist)
        print(f"archive {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    if args.smoke_test:
        smoke_test(bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
