"""Packaging: desktop integration files, icons, installer scripts and the PyInstaller bundle.

Fast tests check the Linux desktop entry (desktop-file-validate), the
shared-mime-info XML (xmllint, update-mime-database) and that its magic really
identifies a real .mzarr file, the per-user install script (install and
uninstall in a temporary HOME), the icons and the macOS/Windows declarations.

The slow test builds the bundle from a clean clone of the repository with
``python packaging/build.py`` and runs the bundled ``mzarr-viewer --smoke-test``
and ``mzarr info`` on a real image.

Tools come from Debian packages desktop-file-utils, libxml2-utils,
shared-mime-info (and xdg-utils / libglib2.0-bin for the content-type
queries); a test skips, naming the tool, only when a tool is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "packaging"
LINUX = PKG / "linux"
RES = ROOT / "resources"
DESKTOP = LINUX / "mzarr-viewer.desktop"
MIME_XML = LINUX / "mzarr.xml"
INSTALL_SH = LINUX / "install.sh"
MIME = "application/x-mzarr"
NS = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
IS_LINUX = sys.platform.startswith("linux")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (Debian package {package})")
    return path


def run(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run([str(c) for c in cmd], **kw)


def write_mzarr(path: Path, img: np.ndarray | None = None) -> tuple[int, ...]:
    """A real .mzarr written by the library (skimage's camera when no image is given)."""
    from mzarr_core import Mzarr

    if img is None:
        try:
            from skimage import data as skdata

            img = skdata.camera()
        except ImportError:  # pragma: no cover - scikit-image is a dev dependency
            y, x = np.mgrid[0:512, 0:512]
            img = ((x ^ y) & 255).astype(np.uint8)
    Mzarr(img).save(str(path))
    return tuple(img.shape)


def write_plain_sqlite(path: Path) -> None:
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()


@pytest.fixture(scope="module")
def real_mzarr(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("real") / "camera.mzarr"
    write_mzarr(path, np.arange(64 * 80, dtype=np.uint16).reshape(64, 80))
    return path


def mime_env(tmp: Path) -> dict[str, str]:
    """Environment of a fresh user: HOME and XDG dirs under tmp, no desktop session."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "DESKTOP_SESSION", "KDE_", "GNOME_"))}
    env.update(HOME=str(tmp / "home"), XDG_DATA_HOME=str(tmp / "home" / "data"),
               XDG_CONFIG_HOME=str(tmp / "home" / "config"), XDG_DATA_DIRS="/usr/local/share:/usr/share")
    (tmp / "home").mkdir(parents=True, exist_ok=True)
    return env


def content_type(path: Path, env: dict[str, str]) -> str:
    """The MIME type the desktop sees for path, from GLib (``gio info``), as GNOME and
    xdg-mime do (xdg-mime without gio falls back to ``file``, which knows no Mzarr)."""
    need("gio", "libglib2.0-bin")
    r = run(["gio", "info", "-a", "standard::content-type", path], env=env)
    m = re.search(r"standard::content-type:\s*(\S+)", r.stdout)
    assert r.returncode == 0 and m, r.stdout + r.stderr
    return m.group(1)


# --------------------------------------------------------------------------
# Linux desktop entry and MIME type
# --------------------------------------------------------------------------

def test_desktop_file_validates():
    tool = need("desktop-file-validate", "desktop-file-utils")
    r = run([tool, DESKTOP])
    assert r.returncode == 0 and "error" not in r.stdout.lower(), r.stdout + r.stderr
    text = DESKTOP.read_text()
    assert re.search(r"^MimeType=.*\bapplication/x-mzarr;", text, re.M)
    assert re.search(r"^Icon=mzarr$", text, re.M)
    assert re.search(r"^Exec=mzarr-viewer %[fF]$", text, re.M)
    assert re.search(r"^Type=Application$", text, re.M)


def test_mime_xml_is_well_formed_and_declares_magic():
    tool = need("xmllint", "libxml2-utils")
    r = run([tool, "--noout", MIME_XML])
    assert r.returncode == 0, r.stderr
    root = ET.parse(MIME_XML).getroot()
    (mt,) = root.findall("m:mime-type", NS)
    assert mt.get("type") == MIME
    assert mt.find("m:comment", NS).text == "Mzarr multi-resolution image"
    assert [g.get("pattern") for g in mt.findall("m:glob", NS)] == ["*.mzarr"]
    outer = mt.find("m:magic/m:match", NS)
    assert (outer.get("type"), outer.get("offset"), outer.get("value")) == ("string", "0", "SQLite format 3\\0")
    inner = outer.find("m:match", NS)
    assert (inner.get("type"), inner.get("offset"), inner.get("value")) == ("string", "68", "MZAR")


def test_magic_offsets_match_a_real_file(real_mzarr):
    """What the MIME magic tests, checked on the bytes of a file the library wrote."""
    head = real_mzarr.read_bytes()[:100]
    assert head[0:16] == b"SQLite format 3\x00"
    assert head[68:72] == b"MZAR"
    assert int.from_bytes(head[68:72], "big") == 0x4D5A4152


def test_update_mime_database_accepts_xml(tmp_path):
    tool = need("update-mime-database", "shared-mime-info")
    mime = tmp_path / "mime"
    (mime / "packages").mkdir(parents=True)
    shutil.copy(MIME_XML, mime / "packages" / "mzarr.xml")
    r = run([tool, "-V", mime])
    assert r.returncode == 0, r.stderr
    assert "error" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    assert "*.mzarr" in (mime / "globs2").read_text()
    magic = (mime / "magic").read_bytes()
    assert b"application/x-mzarr" in magic and b"SQLite format 3\x00" in magic and b"MZAR" in magic


@pytest.mark.skipif(not IS_LINUX, reason="freedesktop MIME database is Linux-only")
def test_desktop_recognises_mzarr_by_content(tmp_path, real_mzarr):
    """With the MIME XML registered, a .mzarr is application/x-mzarr even without its extension;
    a plain SQLite database is not."""
    need("update-mime-database", "shared-mime-info")
    need("gio", "libglib2.0-bin")
    env = mime_env(tmp_path)
    mime = Path(env["XDG_DATA_HOME"]) / "mime"
    (mime / "packages").mkdir(parents=True)
    shutil.copy(MIME_XML, mime / "packages" / "mzarr.xml")
    assert run(["update-mime-database", mime]).returncode == 0
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(real_mzarr, files / "image.mzarr")
    shutil.copy(real_mzarr, files / "image-without-extension")
    write_plain_sqlite(files / "plain.sqlite")
    assert content_type(files / "image.mzarr", env) == MIME
    assert content_type(files / "image-without-extension", env) == MIME
    assert content_type(files / "plain.sqlite", env) != MIME


# --------------------------------------------------------------------------
# install.sh
# --------------------------------------------------------------------------

def fake_bundle(root: Path) -> Path:
    """The layout build.py makes on Linux, with shell scripts as executables."""
    b = root / "My Apps" / "mzarr"  # a space in the path: Exec quoting
    (b / "share").mkdir(parents=True)
    shutil.copy(INSTALL_SH, b / "install.sh")
    shutil.copy(DESKTOP, b / "share" / "mzarr-viewer.desktop")
    shutil.copy(MIME_XML, b / "share" / "mzarr.xml")
    shutil.copytree(RES, b / "_internal" / "resources")
    for name in ("mzarr-viewer", "mzarr"):
        exe = b / name
        exe.write_text("#!/bin/sh\necho \"$0 $*\"\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return b


def installed_paths(env: dict[str, str]) -> list[Path]:
    data = Path(env["XDG_DATA_HOME"])
    hi = data / "icons" / "hicolor"
    return [
        data / "applications" / "mzarr-viewer.desktop",
        data / "mime" / "packages" / "mzarr.xml",
        hi / "48x48" / "apps" / "mzarr.png",
        hi / "256x256" / "apps" / "mzarr.png",
        hi / "scalable" / "apps" / "mzarr.svg",
        hi / "48x48" / "mimetypes" / "application-x-mzarr.png",
        hi / "scalable" / "mimetypes" / "application-x-mzarr.svg",
    ]


@pytest.mark.skipif(not IS_LINUX, reason="install.sh is for Linux desktops")
def test_install_script_registers_and_unregisters(tmp_path, real_mzarr):
    need("sh", "dash")
    bundle = fake_bundle(tmp_path)
    env = mime_env(tmp_path)
    home = Path(env["HOME"])

    r = run(["sh", bundle / "install.sh"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    for p in installed_paths(env):
        assert p.is_file(), p
    desktop = Path(env["XDG_DATA_HOME"]) / "applications" / "mzarr-viewer.desktop"
    text = desktop.read_text()
    # the bundle sits in "My Apps": the entry starts the viewer through the ~/.local/bin link (no spaces)
    link = home / ".local" / "bin" / "mzarr-viewer"
    assert f"Exec={link} %f" in text, text
    assert f"TryExec={link}" in text
    assert "My Apps" not in text
    if shutil.which("desktop-file-validate"):
        v = run(["desktop-file-validate", desktop])
        assert v.returncode == 0, v.stdout
    # default application for the type
    mimeapps = (Path(env["XDG_CONFIG_HOME"]) / "mimeapps.list").read_text()
    assert re.search(r"^application/x-mzarr=mzarr-viewer\.desktop;?$", mimeapps, re.M), mimeapps
    if shutil.which("xdg-mime"):
        q = run(["xdg-mime", "query", "default", MIME], env=env)
        assert q.stdout.strip() == "mzarr-viewer.desktop", q.stdout + q.stderr
    # the MIME database of the user knows the type, by content too
    if shutil.which("update-mime-database") and shutil.which("gio"):
        noext = tmp_path / "noext"
        shutil.copy(real_mzarr, noext)
        assert content_type(noext, env) == MIME
    # command line links
    for name in ("mzarr", "mzarr-viewer"):
        link = home / ".local" / "bin" / name
        assert link.is_symlink() and link.resolve() == (bundle / name).resolve()

    # running it twice is harmless
    assert run(["sh", bundle / "install.sh"], env=env).returncode == 0
    assert len(re.findall(r"^application/x-mzarr=", (Path(env["XDG_CONFIG_HOME"]) / "mimeapps.list")
                          .read_text(), re.M)) == 1

    r = run(["sh", bundle / "install.sh", "--uninstall"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    for p in installed_paths(env):
        assert not p.exists(), p
    assert not (home / ".local" / "bin" / "mzarr").exists()
    assert not (home / ".local" / "bin" / "mzarr-viewer").exists()
    assert "application/x-mzarr" not in (Path(env["XDG_CONFIG_HOME"]) / "mimeapps.list").read_text()
    if shutil.which("update-mime-database") and shutil.which("gio"):
        assert content_type(tmp_path / "noext", env) != MIME


@pytest.mark.skipif(not IS_LINUX, reason="install.sh is for Linux desktops")
def test_install_script_from_source_checkout_with_exec(tmp_path):
    """packaging/linux/install.sh --exec PATH: for a pip-installed viewer."""
    env = mime_env(tmp_path)
    exe = tmp_path / "bin" / "mzarr-viewer"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    r = run(["sh", INSTALL_SH, "--exec", exe], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (Path(env["XDG_DATA_HOME"]) / "applications" / "mzarr-viewer.desktop").read_text()
    assert f"Exec={exe} %f" in text
    assert not (Path(env["HOME"]) / ".local" / "bin" / "mzarr").exists()  # no links outside a bundle
    assert run(["sh", INSTALL_SH, "--uninstall"], env=env).returncode == 0
    assert not (Path(env["XDG_DATA_HOME"]) / "applications" / "mzarr-viewer.desktop").exists()


@pytest.mark.skipif(not IS_LINUX, reason="freedesktop desktop integration is Linux-only")
def test_double_click_opens_in_mzarr(tmp_path, real_mzarr):
    """After install.sh, the desktop's "open" of a .mzarr (here GLib's ``gio open``, what GNOME's
    file manager does on a double-click) runs the registered viewer with the file, even for a
    file without the extension (found by the MIME magic)."""
    need("gio", "libglib2.0-bin")
    need("update-mime-database", "shared-mime-info")
    env = mime_env(tmp_path)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    log = tmp_path / "opened.txt"
    viewer = tmp_path / "bin" / "mzarr-viewer"
    viewer.parent.mkdir()
    viewer.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{log}'\n")
    viewer.chmod(0o755)
    assert run(["sh", INSTALL_SH, "--exec", viewer], env=env).returncode == 0
    for name in ("double click.mzarr", "no-extension"):
        f = tmp_path / name
        shutil.copy(real_mzarr, f)
        r = run(["gio", "open", f], env=env, timeout=30)
        assert r.returncode == 0, r.stderr
        for _ in range(100):  # gio spawns the viewer and returns
            if log.exists() and str(f) in log.read_text():
                break
            time.sleep(0.05)
        assert log.exists() and str(f) in log.read_text().splitlines(), (name, log.read_text() if log.exists() else "")


def test_install_script_is_clean_posix_sh():
    r = run(["sh", "-n", INSTALL_SH])
    assert r.returncode == 0, r.stderr
    tool = need("shellcheck", "shellcheck")
    r = run([tool, "-s", "sh", INSTALL_SH])
    assert r.returncode == 0, r.stdout
    assert os.access(INSTALL_SH, os.X_OK)


def test_install_script_rejects_missing_viewer(tmp_path):
    env = mime_env(tmp_path)
    r = run(["sh", INSTALL_SH, "--exec", tmp_path / "nope"], env=env)
    assert r.returncode != 0
    assert not (Path(env["XDG_DATA_HOME"]) / "applications" / "mzarr-viewer.desktop").exists()


# --------------------------------------------------------------------------
# Icons, macOS and Windows declarations
# --------------------------------------------------------------------------

def test_icons_present_and_sized():
    from PIL import Image

    for stem in ("mzarr", "mzarr-file"):
        svg = (RES / f"{stem}.svg").read_text()
        ET.fromstring(svg)  # well-formed
        for n in (16, 24, 32, 48, 64, 128, 256, 512):
            with Image.open(RES / "icons" / f"{stem}-{n}.png") as im:
                assert im.size == (n, n) and im.mode == "RGBA"
                assert im.getchannel("A").getextrema()[1] == 255  # not blank
        with Image.open(RES / f"{stem}.ico") as ico:
            assert (256, 256) in ico.info["sizes"] and (16, 16) in ico.info["sizes"]
        with Image.open(RES / f"{stem}.icns") as icns:
            assert icns.format == "ICNS"
    with Image.open(RES / "mzarr.png") as im:
        assert im.size == (256, 256)


def test_macos_info_plist_declares_document_type():
    import importlib.util
    import plistlib

    spec_ = importlib.util.spec_from_file_location("info_plist", PKG / "macos" / "info_plist.py")
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    plist = plistlib.loads(plistlib.dumps(mod.info_plist("1.2.3")))  # serialisable as a real plist
    assert plist["CFBundleShortVersionString"] == "1.2.3"
    (doc,) = plist["CFBundleDocumentTypes"]
    (uti,) = plist["UTExportedTypeDeclarations"]
    assert doc["LSItemContentTypes"] == [uti["UTTypeIdentifier"]] == ["org.mzarr.mzarr"]
    assert doc["CFBundleTypeRole"] == "Editor" and doc["LSHandlerRank"] == "Owner"  # it edits and saves files
    assert {"public.data", "public.content"} <= set(uti["UTTypeConformsTo"])
    assert uti["UTTypeTagSpecification"]["public.filename-extension"] == ["mzarr"]
    assert uti["UTTypeTagSpecification"]["public.mime-type"] == [MIME]
    assert (RES / doc["CFBundleTypeIconFile"]).is_file()
    spec = (PKG / "mzarr.spec").read_text()
    assert "info_plist=info_plist(VERSION)" in spec
    assert "argv_emulation=False" in spec  # the app handles QFileOpenEvent itself
    assert f'(str(RES / "{doc["CFBundleTypeIconFile"]}"), ".")' in spec  # icon in Contents/Resources


def test_macos_info_plist_is_a_valid_property_list(tmp_path):
    """The generated Info.plist keys as an XML property list: well-formed (xmllint), Apple's plist doctype, and
    read back identically; the real Info.plist of the .app is checked with plutil -lint on the macOS CI runner."""
    import plistlib

    r = run([sys.executable, PKG / "macos" / "info_plist.py"])
    assert r.returncode == 0, r.stderr
    path = tmp_path / "Info.plist"
    path.write_text(r.stdout)
    assert '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"' in r.stdout
    tool = need("xmllint", "libxml2-utils")
    x = run([tool, "--noout", "--nonet", path])
    assert x.returncode == 0, x.stderr
    data = plistlib.loads(path.read_bytes())
    assert data["CFBundleDocumentTypes"][0]["CFBundleTypeRole"] == "Editor"
    assert data["UTExportedTypeDeclarations"][0]["UTTypeConformsTo"] == ["public.data", "public.content"]


def test_windows_installer_needs_inno_63_shows_licence_and_sets_path_per_mode():
    iss = (PKG / "windows" / "mzarr.iss").read_text()
    # x64compatible needs Inno Setup 6.3: older compilers stop with a message, before [Setup]
    guard = re.search(r"^#if VER < EncodeVer\(6, 3, 0\)\n\s*#error [^\n]*6\.3[^\n]*\n#endif", iss, re.M)
    assert guard and guard.start() < iss.index("[Setup]")
    assert re.search(r"^ArchitecturesAllowed=x64compatible$", iss, re.M)
    assert re.search(r"^MinVersion=10\.0", iss, re.M)
    # the licence page shows the index build.py puts in the bundle
    m = re.search(r"^LicenseFile=\{#SourceDir\}\\(\S+)$", iss, re.M)
    assert m and m.group(1).replace("\\", "/") == "licenses/THIRD_PARTY_LICENSES.txt"
    build = (PKG / "build.py").read_text()
    assert 'bundle / "licenses"' in build and "THIRD_PARTY_LICENSES.txt" in (PKG / "collect_licenses.py").read_text()
    # PATH: HKCU\Environment for a per-user install, the system environment (HKLM) for all users; never both,
    # never the whole value deleted on uninstall
    path_lines = [ln for ln in iss.splitlines() if 'ValueName: "Path"' in ln]
    assert len(path_lines) == 2, path_lines
    user = next(ln for ln in path_lines if ln.startswith("Root: HKCU;"))
    system = next(ln for ln in path_lines if ln.startswith("Root: HKLM;"))
    assert 'Subkey: "{#UserEnvKey}"' in user and "NeedsAddPath(False," in user
    assert 'Subkey: "{#SystemEnvKey}"' in system and "NeedsAddPath(True," in system
    assert '#define UserEnvKey "Environment"' in iss
    assert '#define SystemEnvKey "SYSTEM\\CurrentControlSet\\Control\\Session Manager\\Environment"' in iss
    assert all("uninsdelete" not in ln for ln in path_lines)
    code = iss[iss.index("[Code]"):]
    assert "IsAdminInstallMode" in code and "HKEY_LOCAL_MACHINE" in code and "HKEY_CURRENT_USER" in code
    assert "RegWriteExpandStringValue(PathRoot(), PathKey()" in code
    assert len(re.findall(r"\bbegin\b", code)) == len(re.findall(r"\bend;", code))


def test_windows_installer_declares_association():
    iss = (PKG / "windows" / "mzarr.iss").read_text()
    assert re.search(r"^ChangesAssociations=yes", iss, re.M)
    assert 'ValueData: "Mzarr.Image"' in iss or "Mzarr.Image" in iss
    assert r'Software\Classes\.mzarr' in iss
    assert r'shell\open\command' in iss and '"%1"' in iss
    assert "OpenWithProgids" in iss


def test_ci_workflow_builds_on_three_platforms():
    wf = (ROOT / ".github" / "workflows" / "build.yml").read_text()
    for os_name in ("ubuntu-", "macos-", "windows-"):
        assert os_name in wf
    assert "packaging/build.py" in wf and "--smoke-test" in wf


# --------------------------------------------------------------------------
# Installing as a new user: the documented commands, plain window managers
# --------------------------------------------------------------------------

def _doc_commands(section: str) -> list[str]:
    """The shell commands of the ```sh blocks in one section of docs/INSTALL.md (comments dropped)."""
    text = (ROOT / "docs" / "INSTALL.md").read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 3)
    body = text[start:end if end > 0 else None]
    blocks = re.findall(r"```sh\n(.*?)```", body, re.S)
    return [re.sub(r"\s+#.*$", "", ln.strip()) for b in blocks for ln in b.splitlines() if ln.strip()]


@pytest.mark.skipif(not IS_LINUX, reason="the Linux install instructions")
def test_documented_linux_install_works_for_a_new_user(tmp_path):
    """The commands docs/INSTALL.md gives, run as written by a user whose ~/.local/opt does not exist yet
    (`tar -C` alone fails there): unpack, register, then remove again."""
    import tarfile

    need("sh", "dash")
    cmds = _doc_commands("Linux")
    unpack = next(c for c in cmds if "tar -xzf" in c)
    assert "mkdir -p ~/.local/opt" in unpack and unpack.index("mkdir -p") < unpack.index("tar ")
    register = next(c for c in cmds if c.endswith("install.sh"))
    bundle = fake_bundle(tmp_path / "build")
    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    with tarfile.open(downloads / "mzarr-0.1.0-linux-x86_64.tar.gz", "w:gz") as tf:
        tf.add(bundle, arcname="mzarr")
    env = mime_env(tmp_path)
    home = Path(env["HOME"])
    assert not (home / ".local").exists()
    for cmd in (unpack, register):
        r = run(["sh", "-c", cmd], env=env, cwd=downloads)
        assert r.returncode == 0, (cmd, r.stdout + r.stderr)
    assert (home / ".local" / "opt" / "mzarr" / "install.sh").is_file()
    assert (Path(env["XDG_DATA_HOME"]) / "applications" / "mzarr-viewer.desktop").is_file()
    assert (home / ".local" / "bin" / "mzarr").is_symlink()
    uninstall = (ROOT / "docs" / "INSTALL.md").read_text()
    m = re.search(r"To remove it: `([^`]+)`", uninstall)
    assert m, "INSTALL.md says how to remove it"
    r = run(["sh", "-c", m.group(1)], env=env, cwd=downloads)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (Path(env["XDG_DATA_HOME"]) / "applications" / "mzarr-viewer.desktop").exists()


@pytest.mark.skipif(not IS_LINUX, reason="freedesktop desktop integration is Linux-only")
def test_xdg_open_under_a_plain_window_manager_with_spaces_in_the_bundle_path(tmp_path, real_mzarr):
    """xdg-open without a desktop environment (its "generic" mode) reads the desktop entry's Exec itself and splits
    it on spaces, quoting or not: the bundle in "My Apps" must still start, through the ~/.local/bin link."""
    need("xdg-open", "xdg-utils")
    need("xdg-mime", "xdg-utils")
    need("sh", "dash")
    bundle = fake_bundle(tmp_path)
    log = tmp_path / "opened.txt"
    viewer = bundle / "mzarr-viewer"
    viewer.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{log}'\n")
    env = mime_env(tmp_path)
    r = run(["sh", bundle / "install.sh"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    # a plain window manager: no desktop session; the file type comes from File::MimeInfo's `mimetype`, as
    # xdg-mime asks it in generic mode (here a stand-in that knows the .mzarr glob)
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "mimetype").write_text(
        "#!/bin/sh\n[ \"$1\" = --version ] && exit 0\n"
        "for a; do case \"$a\" in *.mzarr) echo application/x-mzarr; exit 0 ;; esac; done\n"
        "echo application/octet-stream\n"
    )
    (tools / "mimetype").chmod(0o755)
    env.update(XDG_CURRENT_DESKTOP="X-Generic", DISPLAY=":0", PATH=f"{tools}:{env.get('PATH', '')}")
    for key in ("WAYLAND_DISPLAY", "DESKTOP_SESSION", "BROWSER"):
        env.pop(key, None)
    target = tmp_path / "my scans" / "double click.mzarr"
    target.parent.mkdir()
    shutil.copy(real_mzarr, target)
    r = run(["xdg-open", target], env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert log.exists() and str(target) in log.read_text().splitlines(), (r.stdout + r.stderr)


@pytest.mark.skipif(not IS_LINUX, reason="install.sh is for Linux desktops")
def test_install_script_without_links_quotes_the_path_and_says_so(tmp_path):
    bundle = fake_bundle(tmp_path)
    env = mime_env(tmp_path)
    r = run(["sh", bundle / "install.sh", "--no-bin-links"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (Path(env["XDG_DATA_HOME"]) / "applications" / "mzarr-viewer.desktop").read_text()
    assert f'Exec="{bundle / "mzarr-viewer"}" %f' in text
    assert "holds spaces" in r.stderr
    assert not (Path(env["HOME"]) / ".local" / "bin").exists()
    if shutil.which("desktop-file-validate"):
        v = run(["desktop-file-validate", Path(env["XDG_DATA_HOME"]) / "applications" / "mzarr-viewer.desktop"])
        assert v.returncode == 0, v.stdout


# --------------------------------------------------------------------------
# Licences and the build's clean-up (fast parts)
# --------------------------------------------------------------------------

def _load(name: str, path: Path):
    import importlib.util

    spec_ = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec_)
    sys.modules[name] = mod
    spec_.loader.exec_module(mod)
    return mod


def test_repository_has_the_bsd_licence():
    import tomllib

    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "Mzarr developers" in text
    assert "Neither the name of the copyright holder" in text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "BSD-3-Clause"


def test_build_removes_dangling_links(tmp_path):
    build = _load("mzarr_build", PKG / "build.py")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "real.so").write_bytes(b"x")
    os.symlink("lib/real.so", tmp_path / "good.so")
    os.symlink("lib/pruned.so", tmp_path / "dangling.so")
    os.symlink("../nowhere", tmp_path / "lib" / "dangling2")
    removed = build.remove_dangling_links(tmp_path)
    assert sorted(p.name for p in removed) == ["dangling.so", "dangling2"]
    assert (tmp_path / "good.so").is_symlink() and not (tmp_path / "dangling.so").is_symlink()


def test_collect_licenses_traces_files_to_their_licences(tmp_path):
    """A few real files of this environment, as the spec hands them over: each traced to its distribution (or to
    Python / Mzarr), the licence files copied, PySide6's LGPL texts supplied, the index written."""
    import numpy
    import PySide6

    cl = _load("collect_licenses", PKG / "collect_licenses.py")
    import imagecodecs
    import tqdm

    entries = [
        ("numpy/__init__.py", numpy.__file__, "PYMODULE"),
        ("PySide6/__init__.py", PySide6.__file__, "PYMODULE"),
        ("imagecodecs/__init__.py", imagecodecs.__file__, "PYMODULE"),
        ("tqdm/__init__.py", tqdm.__file__, "PYMODULE"),
        ("os", os.__file__, "PYMODULE"),
        ("resources/mzarr.svg", str(RES / "mzarr.svg"), "DATA"),
        ("libQt6Core.so.6", "PySide6/Qt/lib/libQt6Core.so.6", "SYMLINK"),
    ]
    out = tmp_path / "licenses"
    comps = {c.key: c for c in cl.collect(entries, out, root=ROOT, version="9.9", log=lambda *a: None)}
    assert {"mzarr", "python", "numpy", "pyside6-essentials", "imagecodecs", "tqdm"} <= set(comps)
    assert (out / "mzarr" / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (out / "pyside6-essentials" / "LGPL-3.0.txt").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in (out / "pyside6-essentials" / "GPL-3.0.txt").read_text()
    assert (out / "numpy" / "LICENSE.txt").is_file()
    libs = {p.name for p in (out / "imagecodecs").rglob("LICENSE-*")}
    assert {"LICENSE-libjxl", "LICENSE-zstd", "LICENSE-libjpeg-turbo"} <= libs
    assert (out / "python").is_dir() and any((out / "python").iterdir())
    index = (out / "THIRD_PARTY_LICENSES.txt").read_text()
    assert "Mzarr 9.9" in index and "BSD 3-Clause" in index
    assert "LGPL" in index and "replace them with your own" in index and "pyside6-essentials/LGPL-3.0.txt" in index
    for c in comps.values():
        for f in c.files:
            assert (out / f).is_file(), f
            assert f in index
    assert all(ord(ch) < 128 for ch in index)  # the Windows installer's licence page
    # the TOC entries the spec appends to the bundle
    toc = cl.toc(out)
    assert ("licenses/THIRD_PARTY_LICENSES.txt", str(out / "THIRD_PARTY_LICENSES.txt"), "DATA") in toc


def test_licence_files_from_a_source_checkout():
    from mzarr_app.licences import licence_dir, licence_files

    assert licence_dir() is None  # not a bundle
    files = licence_files()
    assert files[0] == ROOT / "LICENSE"
    names = {(p.parent.name, p.name) for p in files}
    assert any(parent.startswith("numpy-") for parent, _ in names) or any("numpy-" in str(p) for p in files)
    assert any(p.name == "LICENSE-libjxl" for p in files)  # imagecodecs' C libraries
    assert any(p.name == "LGPL-3.0.txt" for p in files)  # PySide6's licence (its wheel carries none)
    assert all(p.is_file() for p in files)


# --------------------------------------------------------------------------
# The bundle, built from a clean checkout
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    pytest.importorskip("PyInstaller", reason="PyInstaller not installed (pip install .[dev])")
    git = need("git", "git")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot make a clean clone")
    tmp = tmp_path_factory.mktemp("bundle")
    src = tmp / "src"
    r = run([git, "clone", "--quiet", "--no-hardlinks", ROOT, src], timeout=300)
    assert r.returncode == 0, r.stderr
    dist = tmp / "dist"
    t0 = time.monotonic()
    r = run([sys.executable, src / "packaging" / "build.py", "--dist", dist, "--work", tmp / "work"],
            cwd=src, timeout=1200)
    elapsed = time.monotonic() - t0
    log = tmp / "build.log"
    log.write_text(r.stdout + r.stderr)
    assert r.returncode == 0, f"build failed (log {log}):\n{(r.stdout + r.stderr)[-6000:]}"
    out = dist / "mzarr"
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"\nbundle built from a clean clone in {elapsed:.0f} s: {out} ({size / 2**20:.0f} MiB)")
    return out


def bundle_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MZARR_VIEWER_SINGLE_INSTANCE="0")
    env.pop("PYTHONPATH", None)  # the bundle must not need the source tree
    env["HOME"] = str(tmp)
    return env


def exe(bundle: Path, name: str) -> Path:
    return bundle / (name + (".exe" if sys.platform == "win32" else ""))


@pytest.mark.slow
def test_bundle_viewer_smoke_test(bundle, tmp_path):
    sample = tmp_path / "camera.mzarr"
    shape = write_mzarr(sample)
    r = run([exe(bundle, "mzarr-viewer"), "--smoke-test", sample], env=bundle_env(tmp_path), cwd=tmp_path,
            timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("smoke-test OK:")), None)
    assert line is not None, r.stdout + r.stderr
    assert f"shape={shape}" in line, line
    assert "failed_chunks" not in line, line


@pytest.mark.slow
def test_bundle_cli_info(bundle, tmp_path):
    sample = tmp_path / "camera.mzarr"
    shape = write_mzarr(sample)
    r = run([exe(bundle, "mzarr"), "info", sample], env=bundle_env(tmp_path), cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert str(shape[0]) in out and str(shape[1]) in out, out
    assert "uint8" in out, out


@pytest.mark.slow
@pytest.mark.parametrize("compression", ["lzw", "zlib", "jpeg", "jpeg2000", "lzma", "zstd"])
def test_bundle_cli_converts_compressed_tiff(bundle, tmp_path, compression):
    """The imagecodecs extensions kept in the bundle decode the usual TIFF compressions."""
    tifffile = pytest.importorskip("tifffile")
    y, x = np.mgrid[0:256, 0:320]
    img = ((x + 2 * y) % 256).astype(np.uint8)
    src = tmp_path / f"in-{compression}.tif"
    tifffile.imwrite(src, img, compression=compression, tile=(128, 128))
    out = tmp_path / "out.mzarr"
    env = bundle_env(tmp_path)
    r = run([exe(bundle, "mzarr"), "convert", "--quiet", src, out], env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([exe(bundle, "mzarr"), "verify", out], env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    from mzarr_core import Mzarr  # read back with the library: the TIFF's pixels, losslessly

    with Mzarr(str(out), mode="r") as m:
        back = np.asarray(m[...])
    np.testing.assert_array_equal(back, tifffile.imread(src))


def _format_sources(folder: Path, dicom: bool, slide: bool = False) -> dict[str, np.ndarray | None]:
    """One file per format the registry advertises, written by the source tree's libraries; the pixels each must
    give (None: a lossy format, only the shape is compared)."""
    import imagecodecs
    import nibabel
    import tifffile
    from skimage import data as skdata

    from mzarr_core import Mzarr, formats

    y, x = np.mgrid[0:40, 0:50]
    vol = np.stack([((x * 7 + y * 3 + z * 11) % 3000 - 1000) for z in range(6)]).astype(np.int16)
    grey = skdata.camera()[:96, :120]
    rgb = skdata.astronaut()[:96, :120]
    out: dict[str, np.ndarray | None] = {}
    nibabel.save(nibabel.Nifti1Image(np.ascontiguousarray(vol.T), np.diag([0.5, 0.5, 2.0, 1.0])), folder / "v.nii.gz")
    out["v.nii.gz"] = vol
    Mzarr(vol, spacing=(2.0, 0.5, 0.5), unit="millimeter").save(folder / "v.mzarr")
    out["v.mzarr"] = vol
    for name in ("v.nrrd", "v.mha", "v.nii"):
        formats.export(folder / "v.mzarr", folder / name)
        out[name] = vol
    (folder / "v.nhdr").write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: 50 40 6\nencoding: raw\n"
                                   "endian: little\nspacings: 0.5 0.5 2\ndata file: v.raw\n")
    (folder / "v.raw").write_bytes(vol.astype("<i2").tobytes())
    out["v.nhdr"] = vol
    (folder / "v.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 50 40 6\nElementType = MET_SHORT\n"
                                  "CompressedData = True\nElementDataFile = v.zraw\n")
    (folder / "v.zraw").write_bytes(imagecodecs.zlib_encode(vol.astype("<i2").tobytes()))
    out["v.mhd"] = vol
    Mzarr(vol).save(folder / "v.ome.zarr")
    out["v.ome.zarr"] = vol
    np.save(folder / "p.npy", grey)
    out["p.npy"] = grey
    tifffile.imwrite(folder / "p.tif", grey, compression="zlib")
    out["p.tif"] = grey
    tifffile.imwrite(folder / "p.ome.tif", rgb, photometric="rgb", tile=(64, 64), compression="jpeg")
    out["p.ome.tif"] = None
    (folder / "p.png").write_bytes(imagecodecs.png_encode(rgb))
    out["p.png"] = rgb
    (folder / "p.bmp").write_bytes(imagecodecs.bmp_encode(rgb))
    out["p.bmp"] = rgb
    (folder / "p.webp").write_bytes(imagecodecs.webp_encode(rgb, lossless=True))
    out["p.webp"] = rgb
    (folder / "p.jxl").write_bytes(imagecodecs.jpegxl_encode(rgb, lossless=True))
    out["p.jxl"] = rgb
    (folder / "p.jpg").write_bytes(imagecodecs.jpeg8_encode(rgb, level=90))
    out["p.jpg"] = None
    import shutil as _shutil

    gif = Path(skdata.__file__).parent / "no_time_for_that_tiny.gif"
    _shutil.copy(gif, folder / "p.gif")
    out["p.gif"] = None
    if dicom:
        pydicom = pytest.importorskip("pydicom")
        from pydicom.data import get_testdata_file

        pydicom.dcmread(get_testdata_file("CT_small.dcm")).save_as(folder / "ct.dcm")
        out["ct.dcm"] = None
    if slide:  # an Aperio-like JPEG-tiled pyramid (tests/slide_fixtures.py); converted in its default mode
        from slide_fixtures import slide_mosaic, write_svs_like

        write_svs_like(folder / "s.svs", slide_mosaic(512, 768), reductions=(4,))
        out["s.svs"] = None
    return out


@pytest.mark.slow
def test_bundle_converts_and_exports_every_advertised_format(bundle, tmp_path):
    """Every format the bundled `mzarr convert --help` advertises converts in the bundle (its optional packages
    are inside: a bundled NIfTI import once answered "pip install nibabel"), and every export suffix writes."""
    from mzarr_core import Mzarr, formats

    env = bundle_env(tmp_path)
    cli = exe(bundle, "mzarr")
    r = run([cli, "convert", "--help"], env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    help_text = " ".join(r.stdout.split())
    src = tmp_path / "src"
    src.mkdir()
    # the DICOM reader (formats/dicom.py) is tried once the clone the bundle was built from has it
    clone = bundle.parent.parent / "src" / "mzarr_core" / "formats"
    sources = _format_sources(src, (clone / "dicom.py").is_file(), (clone / "slide.py").is_file())
    advertised = {s for fmt in formats.FORMATS for s in fmt.suffixes}
    tried = set()
    for name, expected in sources.items():
        suffix = next(s for s in sorted(advertised, key=len, reverse=True) if name.endswith(s))
        assert suffix in help_text, suffix
        tried.add(formats.find_format(src / name).name)
        out = tmp_path / f"{name}.mzarr"
        r = run([cli, "convert", "--quiet", src / name, out], env=env, cwd=tmp_path, timeout=300)
        assert r.returncode == 0, (name, r.stdout + r.stderr)
        with Mzarr(out) as m:
            got = m.numpy()
        if expected is not None:
            np.testing.assert_array_equal(got, expected, err_msg=name)
        else:
            assert got.size > 0, name
    missing = {f.name for f in formats.FORMATS if f.reader and f.bundled} - tried - {"dicom"}
    assert not missing, missing
    for fmt in formats.FORMATS:  # optional extras left out of the bundle are not advertised by it
        if not fmt.bundled:
            assert not any(s in help_text for s in fmt.suffixes), (fmt.name, help_text)
    for suffix in formats.export_suffixes():
        source = "p.npy.mzarr" if suffix == ".png" else "v.mzarr.mzarr"
        out = tmp_path / f"out{suffix}"
        r = run([cli, "export", "--quiet", tmp_path / source, out], env=env, cwd=tmp_path, timeout=300)
        assert r.returncode == 0, (suffix, r.stdout + r.stderr)
        back = formats.read(out)
        np.testing.assert_array_equal(np.asarray(back.array[...]), sources["p.npy" if suffix == ".png" else "v.mzarr"],
                                      err_msg=suffix)


@pytest.mark.slow
def test_bundle_versions(bundle, tmp_path):
    r = run([exe(bundle, "mzarr-viewer"), "--version"], env=bundle_env(tmp_path), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"\d+\.\d+", r.stdout + r.stderr)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="socket file check is POSIX-only")
def test_bundle_second_launch_opens_in_running_viewer(bundle, tmp_path):
    """A second double-click hands the file to the running bundled viewer (QtNetwork's
    QLocalSocket must be in the bundle) instead of starting another copy."""
    import uuid

    first, second = tmp_path / "first.mzarr", tmp_path / "second.mzarr"
    write_mzarr(first, np.zeros((64, 64), np.uint8))
    write_mzarr(second, np.ones((64, 64), np.uint8))
    user = f"mzarr-pkg-test-{uuid.uuid4().hex[:8]}"  # own socket name, apart from any real viewer
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir()
    env = bundle_env(tmp_path)
    env.update(MZARR_VIEWER_SINGLE_INSTANCE="1", USER=user, LOGNAME=user, TMPDIR=str(sock_dir))
    viewer = exe(bundle, "mzarr-viewer")
    p1 = subprocess.Popen([str(viewer), str(first)], env=env, cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(sock_dir.glob("mzarr-viewer-*")):
            assert p1.poll() is None, f"first viewer exited: {p1.communicate()[0]}"
            assert time.monotonic() < deadline, "first viewer never listened"
            time.sleep(0.2)
        r = run([viewer, second], env=env, cwd=tmp_path, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "opened in the running" in r.stdout, r.stdout + r.stderr
        assert p1.poll() is None  # the first one is still up
    finally:
        p1.terminate()
        try:
            p1.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p1.kill()
            p1.wait()


@pytest.mark.slow
@pytest.mark.skipif(not IS_LINUX, reason="install.sh is for Linux desktops")
def test_bundle_install_script(bundle, tmp_path):
    """The bundle's own install.sh registers the bundled viewer and links both programs."""
    env = mime_env(tmp_path)
    r = run(["sh", bundle / "install.sh"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    desktop = (Path(env["XDG_DATA_HOME"]) / "applications" / "mzarr-viewer.desktop").read_text()
    bindir = Path(env["HOME"]) / ".local" / "bin"
    assert f"Exec={bindir / 'mzarr-viewer'} %f" in desktop
    assert (bindir / "mzarr-viewer").resolve() == (bundle / "mzarr-viewer").resolve()
    v = run([bindir / "mzarr-viewer", "--version"], env=bundle_env(tmp_path))
    assert v.returncode == 0 and re.search(r"\d+\.\d+", v.stdout + v.stderr), v.stdout + v.stderr
    assert run(["sh", bundle / "install.sh", "--uninstall"], env=env).returncode == 0
    assert not (bindir / "mzarr").exists()


@pytest.mark.slow
def test_bundle_contents_are_lean_and_complete(bundle):
    internal = bundle / "_internal"
    names = {p.relative_to(internal).as_posix() for p in internal.rglob("*")}
    # what the app needs
    assert "resources/mzarr.svg" in names and "resources/mzarr.png" in names
    assert any(n.startswith("imagecodecs/_jpegxl") for n in names)
    assert any(n.startswith("zarr-") and n.endswith(".dist-info/METADATA") for n in names)
    assert any(n.startswith("numcodecs-") and n.endswith(".dist-info/METADATA") for n in names)
    plugins = [n for n in names if "/plugins/platforms/" in n]
    for plat in ("offscreen", "minimal") + (("xcb",) if IS_LINUX else ()):
        assert any(plat in n for n in plugins), (plat, plugins)
    # what it must not carry
    top = {n.split("/")[0] for n in names}
    # the optional format packages the registry advertises are in (issue 9)
    assert any(n.startswith("nibabel-") and n.endswith(".dist-info/METADATA") for n in names)
    assert any(n.startswith("pydicom-") and n.endswith(".dist-info/METADATA") for n in names)
    for pkg in ("matplotlib", "scipy", "skimage", "tkinter", "_tkinter", "IPython", "pytest", "_pytest",
                "PyQt5", "PyQt6", "hypothesis", "PyInstaller", "setuptools", "SimpleITK", "nrrd"):
        assert not any(t == pkg or t.startswith(pkg + ".") or t.startswith(pkg + "-") for t in top), pkg
    forbidden = ("Qt6Quick", "Qt6Qml", "Qt6WebEngine", "Qt63D", "Qt6Multimedia", "Qt6Charts", "Qt6Pdf",
                 "QtQuick.", "QtQml.", "imagecodecs/_avif", "imagecodecs/_heif", "imagecodecs/_exr",
                 "PySide6/Qt/translations", "libgtk-3", "libtk8", "libtcl8")
    for bad in forbidden:
        hits = [n for n in names if bad.lower() in n.lower()]
        assert not hits, (bad, hits[:5])
    if IS_LINUX:
        assert (bundle / "install.sh").is_file() and (bundle / "share" / "mzarr.xml").is_file()


@pytest.mark.slow
def test_bundle_has_no_dangling_links(bundle):
    """Qt's EGLFS libraries are pruned from the bundle: their top-level links must go with them."""
    dangling = [p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_symlink() and not p.exists()]
    assert not dangling, dangling
    r = run(["find", bundle, "-xtype", "l"]) if shutil.which("find") and IS_LINUX else None
    assert r is None or (r.returncode == 0 and r.stdout.strip() == ""), r.stdout if r else ""


def _bundled_distributions(bundle: Path) -> dict[str, object]:
    """The installed distributions whose files PyInstaller put into the bundle, read from the build's own tables
    (COLLECT: binaries and data; PYZ: the Python modules), each traced by the distributions' RECORD files."""
    import ast
    import importlib.metadata as md

    work = bundle.parent.parent / "work" / "mzarr"
    sources: set[str] = set()
    for toc in [work / "COLLECT-00.toc", *sorted(work.glob("PYZ-*.toc"))]:
        for part in ast.literal_eval(toc.read_text()):
            if isinstance(part, list):
                sources |= {os.path.realpath(e[1]) for e in part if e[2] != "SYMLINK" and e[1]}
    found = {}
    for dist in md.distributions():
        for f in dist.files or ():
            if os.path.realpath(dist.locate_file(f)) in sources:
                found[re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()] = dist
                break
    return found


@pytest.mark.slow
def test_bundle_ships_the_licences_of_what_it_bundles(bundle, tmp_path):
    """licenses/ next to the executables: the index, Mzarr's BSD licence, Qt/PySide6's LGPL-3.0 with the note on
    replacing the Qt libraries, and the licence files of every bundled distribution that has some, as it ships them
    (imagecodecs with the licences of the C libraries it links)."""
    lic = bundle / "licenses"
    index = (lic / "THIRD_PARTY_LICENSES.txt").read_text()
    assert (lic / "mzarr" / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (lic / "pyside6-essentials" / "LGPL-3.0.txt").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in (lic / "pyside6-essentials" / "GPL-3.0.txt").read_text()
    assert "replace them with your own" in index and "Qt" in index
    assert "Python Software Foundation" in "".join(p.read_text(errors="replace") for p in (lic / "python").iterdir())
    libs = {p.name for p in (lic / "imagecodecs").rglob("LICENSE-*")}
    assert {"LICENSE-libjxl", "LICENSE-zstd", "LICENSE-libjpeg-turbo"} <= libs, libs
    bundled = _bundled_distributions(bundle)
    for name in ("numpy", "zarr", "numcodecs", "imagecodecs", "tifffile", "pyqtgraph", "nibabel", "pydicom",
                 "pillow", "tqdm", "pyside6-essentials", "shiboken6"):
        assert name in bundled, (name, sorted(bundled))
    from mzarr_app.licences import _dist_licence_files

    for name, dist in sorted(bundled.items()):
        if name == "mzarr":
            continue
        expected = {p.name for p in _dist_licence_files(dist)}
        if not expected and name not in ("pyside6-essentials", "shiboken6"):
            continue  # a distribution without licence files: the index says so
        shipped = {p.name for p in (lic / name).rglob("*") if p.is_file()} if (lic / name).is_dir() else set()
        assert shipped and expected <= shipped, (name, expected - shipped)
        assert f"{name}/" in index, name
    if IS_LINUX and shutil.which("dpkg-query"):  # libraries copied from the build system: their copyright files
        assert any((lic / "system").rglob("copyright")), "no system library copyright collected"
    # the viewer finds them (the About box link): mzarr-viewer --licenses
    r = run([exe(bundle, "mzarr-viewer"), "--licenses"], env=bundle_env(tmp_path), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"licence texts: {lic}" in r.stdout, r.stdout


@pytest.mark.slow
def test_bundle_takes_file_urls_in_folders_with_spaces(bundle, tmp_path):
    folder = tmp_path / "my scans"
    folder.mkdir()
    sample = folder / "cam era.mzarr"
    shape = write_mzarr(sample, np.arange(96 * 128, dtype=np.uint16).reshape(96, 128))
    env = bundle_env(tmp_path)
    r = run([exe(bundle, "mzarr-viewer"), "--smoke-test", sample.as_uri()], env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and f"shape={shape}" in r.stdout, r.stdout + r.stderr
    r = run([exe(bundle, "mzarr"), "info", sample.as_uri().replace("file://", "file://localhost")], env=env,
            cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and "shape:       (96, 128)" in r.stdout, r.stdout + r.stderr
