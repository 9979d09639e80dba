"""Collect the licence texts of everything a Mzarr bundle ships (run by packaging/mzarr.spec at build time).

The spec hands over every file PyInstaller collects (Python modules, extension modules, shared libraries, data);
each is traced to what it came from:

* an installed distribution (by the distribution's RECORD): its licence files from its ``.dist-info`` (PEP 639
  ``licenses/`` folder or the older ``License-File`` entries) plus licence texts the package ships inside itself
  (imagecodecs' ``licenses/`` folder: libjxl, zstd, libjpeg-turbo, ... the C libraries it links);
* Python itself (the standard library, libpython, base_library.zip): the interpreter's ``LICENSE.txt``;
* PyInstaller's bootloader and runtime modules: PyInstaller's licence (GPL-2.0+ with its bootloader exception);
* Mzarr's own code and resources: the repository's ``LICENSE``;
* on Linux, shared libraries copied from the build system: their Debian ``copyright`` file (found through dpkg).

Distributions whose wheels carry no licence file (PySide6 / shiboken6: LGPL-3.0) get the text their metadata
names from ``packaging/licence-texts/``. Everything lands in one folder: ``licenses/<distribution>/...``,
``licenses/system/<package>/copyright`` and the index ``licenses/THIRD_PARTY_LICENSES.txt`` (Mzarr's licence, the
Qt notice on replacing the Qt libraries, then one entry per component with its version, licence and files).

    python packaging/collect_licenses.py OUT      # the licences of this environment's mzarr dependencies
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEXTS = HERE / "licence-texts"
INDEX = "THIRD_PARTY_LICENSES.txt"

_QT_TEXTS = ("LGPL-3.0.txt", "GPL-3.0.txt")  # LGPL-3.0 is GPL-3.0 plus permissions: both texts go along
#: distributions whose wheels carry no licence file: (the licence chosen from their metadata, texts to ship)
FALLBACK: dict[str, tuple[str, tuple[str, ...]]] = {
    "pyside6-essentials": ("LGPL-3.0-only", _QT_TEXTS),
    "pyside6-addons": ("LGPL-3.0-only", _QT_TEXTS),
    "pyside6": ("LGPL-3.0-only", _QT_TEXTS),
    "shiboken6": ("LGPL-3.0-only", _QT_TEXTS),
}
QT_DISTS = ("pyside6-essentials", "pyside6-addons", "pyside6", "shiboken6")

_LICENCE_NAME = re.compile(r"^(licen[cs]es?|copying|copyright|notice|authors)([-._ ].*)?$", re.I)
_NOT_TEXT = {".py", ".pyc", ".pyi", ".pyx", ".pxd", ".so", ".pyd", ".dll", ".dylib", ".html", ".js", ".json",
             ".h", ".c", ".cpp"}
_LICENCE_DIRS = {"licenses", "licences", "license", "licence"}


def normalize(name: str) -> str:
    """PEP 503 name: ``PySide6_Essentials`` -> ``pyside6-essentials`` (the component's folder name)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _norm(path: str | os.PathLike) -> str:
    return os.path.normcase(os.path.abspath(os.fspath(path)))


@dataclass
class Component:
    key: str  # folder under licenses/
    name: str
    version: str = ""
    licence: str = ""
    kind: str = "Python package"
    files: list[str] = field(default_factory=list)  # paths relative to licenses/
    note: str = ""


# -- what a file belongs to ------------------------------------------------------------------------------------------
class Owners:
    """Which installed distribution a file belongs to (from every distribution's RECORD)."""

    def __init__(self) -> None:
        self.by_path: dict[str, md.Distribution] = {}
        for dist in md.distributions():
            for f in dist.files or ():
                self.by_path.setdefault(_norm(dist.locate_file(f)), dist)

    def owner(self, path: str) -> md.Distribution | None:
        return self.by_path.get(_norm(path)) or self.by_path.get(_norm(os.path.realpath(path)))


def _under(path: str, folder: str | os.PathLike | None) -> bool:
    if not folder:
        return False
    a, b = _norm(os.path.realpath(path)), _norm(os.path.realpath(folder))
    return a == b or a.startswith(b.rstrip(os.sep) + os.sep)


def _python_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    base = {"installed_base": sys.base_prefix, "base": sys.base_prefix, "platbase": sys.base_exec_prefix,
            "installed_platbase": sys.base_exec_prefix}
    out = [sysconfig.get_path(k, vars=base) for k in ("stdlib", "platstdlib")]
    out += [paths.get("stdlib", ""), os.path.join(sys.base_prefix, "DLLs")]
    return [p for p in out if p and os.path.isdir(p)]


def _is_python_binary(name: str) -> bool:
    base = os.path.basename(name).lower()
    return bool(re.match(r"^(lib)?python\d", base) or re.match(r"^(vcruntime|msvcp)\d", base))


# -- licence files of a distribution ---------------------------------------------------------------------------------
def dist_licence(dist: md.Distribution) -> str:
    meta = dist.metadata
    expr = meta.get("License-Expression")
    if expr:
        return expr.strip()
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 200 and text.upper() != "UNKNOWN":
        return text
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or () if c.startswith("License ::")]
    return " / ".join(classifiers) or "see the licence files"


def dist_licence_files(dist: md.Distribution) -> list[tuple[str, Path]]:
    """(path inside the component's folder, source file) of every licence text the distribution carries."""
    declared = {d.strip().replace("\\", "/") for d in dist.metadata.get_all("License-File") or ()}
    out: list[tuple[str, Path]] = []
    for f in dist.files or ():
        parts = PurePosixPath(str(f).replace("\\", "/")).parts
        if not parts or parts[0] == ".." or parts[-1].lower().endswith((".pyc",)):
            continue
        name = parts[-1]
        if parts[0].endswith(".dist-info"):
            inner = parts[1:]
            if not inner or inner[-1] in ("RECORD", "WHEEL", "METADATA", "INSTALLER", "REQUESTED"):
                continue
            rel = "/".join(inner[1:] if inner[0] == "licenses" and len(inner) > 1 else inner)
            if inner[0] == "licenses" or rel in declared or _LICENCE_NAME.match(name):
                out.append((rel, Path(dist.locate_file(f))))
        elif (
            Path(name).suffix.lower() not in _NOT_TEXT
            and (any(p.lower() in _LICENCE_DIRS for p in parts[:-1]) or (len(parts) <= 2 and _LICENCE_NAME.match(name)))
        ):
            # licence texts a package ships inside itself: imagecodecs/licenses/LICENSE-libjxl, ...
            out.append(("/".join(parts), Path(dist.locate_file(f))))
    return [(rel, src) for rel, src in out if src.is_file()]


# -- system libraries (Linux: Debian / Ubuntu packages) --------------------------------------------------------------
def _dpkg_owners(paths: Iterable[str]) -> dict[str, str]:
    """path -> Debian package owning it (empty where dpkg is missing or does not know the file)."""
    if not shutil.which("dpkg-query"):
        return {}
    cands: dict[str, list[str]] = {}
    for p in paths:
        real = os.path.realpath(p)
        variants = [p, real]
        for v in (p, real):
            if v.startswith("/lib"):
                variants.append("/usr" + v)
            elif v.startswith("/usr/lib"):
                variants.append(v[4:])
        cands[p] = list(dict.fromkeys(variants))
    query = sorted({v for vs in cands.values() for v in vs})
    if not query:
        return {}
    r = subprocess.run(["dpkg-query", "-S", *query], capture_output=True, text=True)
    found: dict[str, str] = {}
    for line in r.stdout.splitlines():
        pkgs, sep, path = line.partition(": ")
        if sep:
            found[path.strip()] = pkgs.split(",")[0].strip().split(":")[0]
    return {p: next((found[v] for v in vs if v in found), "") for p, vs in cands.items()}


def _dpkg_field(pkg: str, fmt: str) -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f", fmt, pkg], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def _copyright_file(pkg: str) -> Path | None:
    """The package's /usr/share/doc/<pkg>/copyright, or one of a package built from the same source."""
    own = Path("/usr/share/doc") / pkg / "copyright"
    if own.is_file():
        return own
    source = _dpkg_field(pkg, "${source:Package}") or pkg
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${source:Package}\\n"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        other, _, src = line.partition(" ")
        if src == source or other == source:
            cand = Path("/usr/share/doc") / other / "copyright"
            if cand.is_file():
                return cand
    return None


# -- the collection ----------------------------------------------------------------------------------------------------
QT_NOTICE = """\
Qt and PySide6 (LGPL-3.0)
-------------------------
Mzarr's viewer uses Qt {qt} (The Qt Company Ltd and other contributors, https://www.qt.io/) through PySide6 /
shiboken6 {pyside} (Qt for Python), used under the GNU Lesser General Public License version 3; its text and
that of the GNU GPL version 3 it builds on are in:
{files}
Qt and PySide6 are linked dynamically and shipped unmodified as separate library files:

  Linux:    _internal/PySide6/ (Qt libraries in _internal/PySide6/Qt/lib/, linked from _internal/libQt6*.so.6;
            plugins in _internal/PySide6/Qt/plugins/) and _internal/shiboken6/
  Windows:  _internal\\PySide6\\ (Qt6*.dll, pyside6.abi3.dll, plugins\\) and _internal\\shiboken6\\
  macOS:    Mzarr.app/Contents/Frameworks/PySide6/ (Qt/lib/Qt*.framework, Qt/plugins/) and .../shiboken6/

You may replace them with your own (for instance modified) builds of the same Qt / PySide6 version: rebuild
Qt and PySide6 {pyside} from their sources and put your libraries in place of these files (keep the file names;
on macOS, re-sign the app afterwards: codesign --force --deep -s - Mzarr.app). Alternatively, run Mzarr from
its source code (BSD-3-Clause) with any PySide6 you like: pip install . in an environment holding your PySide6.
Sources: Qt https://download.qt.io/official_releases/qt/ , PySide6 / shiboken6
https://download.qt.io/official_releases/QtForPython/ (or https://code.qt.io/cgit/pyside/pyside-setup.git/).
Qt itself contains third-party code under its own permissive licences, listed at
https://doc.qt.io/qt-6/licenses-used-in-qt.html; the PySide6 wheels ship no texts of them.
"""


def _python_licence() -> Path | None:
    for cand in (
        Path(sysconfig.get_path("stdlib", vars={"installed_base": sys.base_prefix, "base": sys.base_prefix}))
        / "LICENSE.txt",
        Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt",
        Path(sys.base_prefix) / "LICENSE.txt",
        Path(sys.base_prefix) / "LICENSE",
    ):
        if cand.is_file():
            return cand
    return None


def _mzarr_licence(root: Path) -> Path | None:
    if (root / "LICENSE").is_file():
        return root / "LICENSE"
    try:
        files = dist_licence_files(md.distribution("mzarr"))
    except md.PackageNotFoundError:
        return None
    return files[0][1] if files else None


def classify(entries: Iterable[tuple[str, str | None, str]], root: Path, workpath: Path | None = None):
    """Group bundled files by origin: ({dist name: Distribution}, python?, pyinstaller?, mzarr?, [system lib paths],
    [unknown source paths])."""
    owners = Owners()
    py_dirs = _python_dirs()
    dists: dict[str, md.Distribution] = {}
    python = pyinstaller = mzarr = False
    system: list[str] = []
    unknown: list[str] = []
    for dest, src, typecode in entries:
        if typecode == "SYMLINK" or not src or not os.path.exists(src):
            continue
        dist = owners.owner(src)
        if dist is not None:
            dists.setdefault(normalize(dist.metadata["Name"]), dist)
        elif _under(src, root):
            mzarr = True
        elif workpath is not None and _under(src, workpath):
            if os.path.basename(dest) == "base_library.zip":
                python = True
            else:
                pyinstaller = True  # the bootloader executables
        elif any(_under(src, d) for d in py_dirs) or _is_python_binary(src):
            python = True
        elif typecode in ("BINARY", "EXTENSION"):
            system.append(src)
        elif _under(src, sys.base_prefix) or _under(src, sys.base_exec_prefix):
            python = True
        else:
            unknown.append(src)
    if pyinstaller:
        for name in ("pyinstaller",):
            try:
                dists.setdefault(name, md.distribution(name))
            except md.PackageNotFoundError:
                pass
    return dists, python, mzarr, sorted(set(system)), sorted(set(unknown))


def _copy(src: Path, out: Path, rel: str) -> str:
    dest = out / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return rel


def collect(
    entries: Iterable[tuple[str, str | None, str]],
    out: Path,
    *,
    root: Path = ROOT,
    workpath: Path | None = None,
    version: str = "",
    log=print,
) -> list[Component]:
    """Write ``out`` (a fresh folder: the bundle's ``licenses/``) for the bundled files ``entries`` (PyInstaller TOC
    tuples ``(dest, source, typecode)``); returns the components listed in its index."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    dists, python, _mzarr, system, unknown = classify(entries, root, workpath)
    components: list[Component] = []

    own = _mzarr_licence(root)
    mz = Component("mzarr", "Mzarr", version, "BSD-3-Clause", "this program")
    if own is not None:
        mz.files.append(_copy(own, out, "mzarr/LICENSE"))
    else:
        log("collect_licenses: WARNING: Mzarr's own LICENSE not found")
    components.append(mz)

    if python:
        c = Component("python", "Python (interpreter, standard library)", sys.version.split()[0], "PSF-2.0",
                      "runtime")
        lic = _python_licence()
        if lic is not None:
            c.files.append(_copy(lic, out, "python/LICENSE.txt"))
        else:
            c.note = "the interpreter's LICENSE.txt was not found on the build machine: https://docs.python.org/3/license.html"
            log(f"collect_licenses: WARNING: {c.note}")
        components.append(c)

    for key in sorted(dists):
        dist = dists[key]
        if key == "mzarr":
            continue
        c = Component(key, dist.metadata["Name"], dist.version, dist_licence(dist))
        inside = 0
        for rel, src in dist_licence_files(dist):
            c.files.append(_copy(src, out, f"{key}/{rel}"))
            inside += not any(part.endswith(".dist-info") for part in src.parts)
        if inside:
            c.note = f"with the licences of the {inside} libraries / parts it ships texts for inside its package"
        if not c.files and key in FALLBACK:
            c.licence, texts = FALLBACK[key][0], FALLBACK[key][1]
            c.note = f"the wheel carries no licence file; its metadata says: {dist_licence(dist)} (used under LGPL-3.0)"
            for name in texts:
                c.files.append(_copy(TEXTS / name, out, f"{key}/{name}"))
        if not c.files:
            c.note = "the distribution carries no licence file"
            log(f"collect_licenses: WARNING: {dist.metadata['Name']} {dist.version} has no licence file ({c.licence})")
        components.append(c)

    if system:
        owners = _dpkg_owners(system)
        by_pkg: dict[str, list[str]] = {}
        for path in system:
            by_pkg.setdefault(owners.get(path, ""), []).append(os.path.basename(path))
        for pkg in sorted(by_pkg):
            libs = ", ".join(sorted(by_pkg[pkg]))
            if not pkg:
                c = Component("system/unknown", "libraries from the build system", "", "unknown", "system library",
                              note=f"{libs}: no package database names their licence")
                log(f"collect_licenses: WARNING: no licence found for {libs}")
                components.append(c)
                continue
            c = Component(f"system/{pkg}", pkg, _dpkg_field(pkg, "${Version}"), "see copyright", "system library",
                          note=libs)
            cr = _copyright_file(pkg)
            if cr is not None:
                c.files.append(_copy(cr, out, f"system/{pkg}/copyright"))
            else:
                c.note += "; its copyright file is missing on the build machine"
                log(f"collect_licenses: WARNING: no copyright file for the Debian package {pkg} ({libs})")
            components.append(c)
    if unknown:
        log(f"collect_licenses: note: {len(unknown)} bundled file(s) belong to no known distribution, e.g. "
            + ", ".join(unknown[:3]))

    licence_text = (out / "mzarr" / "LICENSE").read_text(encoding="utf-8", errors="replace") if mz.files else ""
    # CRLF on Windows: the index is also the installer's licence page and is opened in Notepad
    (out / INDEX).write_text(render_index(components, version, licence_text), encoding="utf-8",
                             newline="\r\n" if sys.platform == "win32" else "\n")
    return components


def render_index(components: list[Component], version: str, licence_text: str = "") -> str:
    """The index: Mzarr's licence in short, the Qt notice, one entry per component, Mzarr's licence text."""
    by_key = {c.key: c for c in components}
    lines = [
        f"Mzarr {version}: licences".strip(),
        "=" * 72,
        "",
        "Mzarr is free software under the BSD 3-Clause licence, Copyright (c) 2026, Mzarr developers",
        "(full text: mzarr/LICENSE, and at the end of this file).",
        "",
        "This program bundles the third-party software listed below, each under its own licence. The",
        "complete licence texts, as each project ships them, are in the folders named below, next to",
        "this file (the licenses/ folder of the program).",
        "",
    ]
    qt = [by_key[k] for k in QT_DISTS if k in by_key]
    if qt:
        pyside = next((c.version for c in qt if c.key != "shiboken6"), qt[0].version)
        files = "\n".join(f"  {f}" for c in qt for f in c.files if f.endswith(_QT_TEXTS))
        lines += QT_NOTICE.format(qt=".".join(pyside.split(".")[:2]), pyside=pyside, files=files or "-").splitlines()
        lines.append("")
    lines += ["Components", "----------", ""]
    for c in components:
        if c.key == "mzarr":
            continue
        head = f"{c.name} {c.version}".strip()
        lines.append(f"* {head}  [{c.kind}]")
        lines.append(f"    licence: {c.licence}")
        if c.note:
            lines += textwrap.wrap(c.note, 100, initial_indent="    ", subsequent_indent="      ")
        for f in c.files:
            lines.append(f"    {f}")
        if not c.files:
            lines.append("    (no licence text found)")
        lines.append("")
    text = "\n".join(lines) + "\n"
    if licence_text:
        text += "\nMzarr's licence\n---------------\n\n" + licence_text
    return text


def toc(out: Path, prefix: str = "licenses") -> list[tuple[str, str, str]]:
    """PyInstaller DATA entries placing the folder ``out`` at ``prefix/`` in the bundle."""
    return [
        (f"{prefix}/{p.relative_to(out).as_posix()}", str(p), "DATA")
        for p in sorted(out.rglob("*"))
        if p.is_file()
    ]


if __name__ == "__main__":  # the licences of this environment's mzarr dependencies, for a look
    sys.path.insert(0, str(ROOT))
    from mzarr_app.licences import dependency_distributions

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "licenses")
    files = [(str(f), str(d.locate_file(f)), "DATA") for d in dependency_distributions() for f in d.files or ()]
    try:
        ver = md.version("mzarr")
    except md.PackageNotFoundError:
        ver = ""
    comps = collect(files, target, version=ver)
    print(f"{target / INDEX}: {len(comps)} components")
