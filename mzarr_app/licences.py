"""Where the licence texts of Mzarr and of what it uses are (for the About box's link). No Qt here.

* In a bundle (PyInstaller), the build collected them into one ``licenses/`` folder (see
  packaging/collect_licenses.py): next to the executables on Linux and Windows, in the app's resources on macOS
  (reached through ``sys._MEIPASS``). Its index, ``THIRD_PARTY_LICENSES.txt``, lists every component with its
  version and licence and says how to replace the Qt libraries (LGPL-3.0).
* From a source checkout or a pip install there is no such folder: :func:`licence_files` then lists the
  repository's (or the installed ``mzarr`` distribution's) LICENSE and the licence files of the installed
  distributions Mzarr depends on, directly or not.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path, PurePosixPath

__all__ = ["INDEX", "dependency_distributions", "licence_dir", "licence_files"]

INDEX = "THIRD_PARTY_LICENSES.txt"
_REPO = Path(__file__).resolve().parent.parent
_LICENCE_NAME = re.compile(r"^(licen[cs]es?|copying|copyright|notice|authors)([-._ ].*)?$", re.I)
_QT_DISTS = {"pyside6-essentials", "pyside6-addons", "pyside6", "shiboken6"}
_CODE = (".py", ".pyc", ".pyi", ".pyx", ".pxd", ".so", ".pyd", ".dll", ".dylib", ".json", ".h", ".c")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _bundle_candidates() -> list[Path]:
    exe_dir = Path(sys.executable).resolve().parent
    out = [exe_dir / "licenses"]
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        out.append(Path(meipass) / "licenses")
    if sys.platform == "darwin":  # Mzarr.app/Contents/MacOS/mzarr-viewer -> Contents/Resources/licenses
        out.append(exe_dir.parent / "Resources" / "licenses")
    return out


def licence_dir() -> Path | None:
    """The bundle's ``licenses/`` folder (holding ``THIRD_PARTY_LICENSES.txt``), or None when not running from a
    bundle (see :func:`licence_files`)."""
    if not getattr(sys, "frozen", False):
        return None
    for cand in _bundle_candidates():
        if (cand / INDEX).is_file():
            return cand
    return None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")
_TOOL_EXTRAS = {"dev", "test", "tests", "testing", "doc", "docs", "lint", "benchmark", "benchmarks"}


def dependency_distributions(root: str = "mzarr") -> list[md.Distribution]:
    """The installed distributions ``root`` runs with, directly or through others, ``root`` excluded; sorted by
    name. ``root``'s optional formats count when installed (not its dev/test tools); of the others, only their
    plain requirements (a platform's when installed)."""
    seen: dict[str, md.Distribution] = {}
    try:
        pending = [
            r for r in md.distribution(root).requires or ()
            if not (m := _EXTRA.search(r)) or m.group(1).lower() not in _TOOL_EXTRAS
        ]
    except md.PackageNotFoundError:
        return []
    if root == "mzarr":  # the optional format packages the registry uses (also when the metadata predates them)
        try:
            from mzarr_core.formats import FORMATS

            pending += sorted({f.package for f in FORMATS if f.package})
        except ImportError:  # pragma: no cover
            pass
    while pending:
        m = _REQ_NAME.match(pending.pop())
        if not m:
            continue
        key = _normalize(m.group(1))
        if key in seen or key == _normalize(root):
            continue
        try:
            dist = md.distribution(m.group(1))
        except md.PackageNotFoundError:
            continue  # an extra or a platform's requirement that is not installed
        seen[key] = dist
        pending += [r for r in dist.requires or () if not _EXTRA.search(r)]
    return [seen[k] for k in sorted(seen)]


def _dist_licence_files(dist: md.Distribution) -> list[Path]:
    """A distribution's licence texts: its .dist-info licence files, and those its package ships inside itself."""
    declared = {d.strip().replace("\\", "/") for d in dist.metadata.get_all("License-File") or ()}
    out: list[Path] = []
    for f in dist.files or ():
        parts = PurePosixPath(str(f).replace("\\", "/")).parts
        if not parts or parts[0] == "..":
            continue
        if parts[0].endswith(".dist-info"):
            inner = parts[1:]
            if not inner or inner[-1] in ("RECORD", "WHEEL", "METADATA", "INSTALLER", "REQUESTED"):
                continue
            rel = "/".join(inner[1:] if inner[0] == "licenses" and len(inner) > 1 else inner)
            if not (inner[0] == "licenses" or rel in declared or _LICENCE_NAME.match(inner[-1])):
                continue
        elif not (len(parts) > 2 and parts[-2].lower() in ("licenses", "licences")) or parts[-1].lower().endswith(
            _CODE
        ):
            continue  # only texts a package ships in a licenses/ folder (not the packaging.licenses module)
        path = Path(dist.locate_file(f))
        if path.is_file():
            out.append(path)
    return out


def licence_files() -> list[Path]:
    """Every licence text: in a bundle, the index first, then the files of :func:`licence_dir`; otherwise Mzarr's
    LICENSE first, then the licence files of the installed distributions Mzarr depends on."""
    folder = licence_dir()
    if folder is not None:
        index = folder / INDEX
        return [index, *sorted(p for p in folder.rglob("*") if p.is_file() and p != index)]
    out: list[Path] = []
    if (_REPO / "LICENSE").is_file() and (_REPO / "pyproject.toml").is_file():  # a source checkout
        out.append(_REPO / "LICENSE")
    else:
        try:
            out += _dist_licence_files(md.distribution("mzarr"))[:1]
        except md.PackageNotFoundError:
            pass
    texts = _REPO / "packaging" / "licence-texts"  # Qt / PySide6's LGPL-3.0: their wheels carry no licence file
    for dist in dependency_distributions():
        found = _dist_licence_files(dist)
        if not found and _normalize(dist.metadata["Name"]) in _QT_DISTS and texts.is_dir():
            found = sorted(texts.glob("*.txt"))
        out += found
    return list(dict.fromkeys(out))
