"""Packaging and layering: the library and the ``mzarr`` command work without Qt, and the layers stay apart.

- ``pip install mzarr`` is the library and the CLI only; the Qt viewer is the ``[viewer]`` extra (pyproject.toml),
  and ``mzarr-viewer`` without it prints the pip line (mzarr/viewer_entry.py).
- ``import mzarr_core`` and every CLI command run on a real image in a process where PySide6, pyqtgraph, shiboken6
  and ``mzarr_app`` cannot be imported (a meta-path finder refuses them, as in an environment that lacks them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tifffile

ROOT = Path(__file__).resolve().parent.parent
QT_PACKAGES = ("PySide6", "pyqtgraph", "shiboken6")


def _project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]


def _names(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings, lower-case ("PySide6-Essentials>=6.7" -> "pyside6-essentials")."""
    import re

    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}


# --------------------------------------------------------------------------
# pyproject: what each install brings
# --------------------------------------------------------------------------

def test_base_install_has_no_qt_and_the_viewer_is_an_extra():
    project = _project()
    base = _names(project["dependencies"])
    assert not base & {"pyside6", "pyside6-essentials", "pyside6-addons", "pyqtgraph", "shiboken6", "pyqt5", "pyqt6"}
    assert {"numpy", "zarr", "imagecodecs", "tifffile", "tqdm"} <= base
    extras = {name: _names(reqs) for name, reqs in project["optional-dependencies"].items()}
    assert extras["viewer"] == {"pyside6-essentials", "pyqtgraph"}
    assert extras["viewer"] | extras["formats"] <= extras["all"]
    # the README's set-up command (pip install -e ".[dev]") keeps giving the viewer and the checkers
    assert extras["viewer"] | {"pytest", "pytest-qt", "import-linter", "mypy"} <= extras["dev"]
    assert project["scripts"]["mzarr"] == "mzarr_core.cli:main"
    assert project["gui-scripts"]["mzarr-viewer"] == "mzarr.viewer_entry:main"


# --------------------------------------------------------------------------
# The library and every CLI command in a process without Qt
# --------------------------------------------------------------------------

NO_QT_PRELUDE = textwrap.dedent(
    """
    import sys

    BLOCKED = ("PySide6", "pyqtgraph", "shiboken6", "mzarr_app")


    class NoViewer:
        '''As in an environment without the [viewer] extra: these packages cannot be imported.'''

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"No module named {name!r} (blocked: no viewer installed)", name=name)
            return None


    sys.meta_path.insert(0, NoViewer())
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            raise SystemExit(f"{name} was imported before the blocker was installed")
    """
)

NO_QT_CLI = NO_QT_PRELUDE + textwrap.dedent(
    """
    import contextlib
    import io
    import json
    from pathlib import Path

    import mzarr_core
    from mzarr import Mzarr
    from mzarr_core.cli import main

    tmp = Path(sys.argv[1])
    src, out = tmp / "astronaut.tif", tmp / "astronaut.mzarr"
    results = {}


    def run(name, *argv):
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exc:  # argparse's --help
                code = exc.code
        results[name] = {"code": code, "out": stdout.getvalue(), "err": stderr.getvalue()}


    run("help", "--help")
    run("convert", "convert", src, out, "--levels", "3", "--quiet")
    run("info", "info", out)
    run("info_json", "info", out, "--json")
    run("export", "export", out, tmp / "level1.tif", "--level", "1", "--quiet")
    run("export_region", "export", out, tmp / "region.png", "--region", "100:228,50:306", "--quiet")
    run("verify", "verify", out, "--quiet")
    run("repair", "repair", out, "--quiet")
    run("optimize", "optimize", out, "--quiet")
    run("verify_after", "verify", out, "--quiet")
    with Mzarr(out) as m:
        results["levels"] = len(m.levels)
        results["sum"] = int(m.numpy().astype("int64").sum())
    from mzarr.viewer_entry import main as viewer_main

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        results["viewer"] = {"code": viewer_main([]), "err": stderr.getvalue()}
    results["leaked"] = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
    results["version"] = mzarr_core.__version__
    print(json.dumps(results))
    """
)


def _run_without_qt(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def test_library_and_every_cli_command_work_without_qt(tmp_path):
    from skimage import data

    rgb = data.astronaut()  # a real photograph, 512 x 512 RGB
    tifffile.imwrite(tmp_path / "astronaut.tif", rgb, photometric="rgb")
    r = _run_without_qt(NO_QT_CLI, str(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    commands = ("help", "convert", "info", "info_json", "export", "export_region", "verify", "repair", "optimize",
                "verify_after")
    for name in commands:
        assert res[name]["code"] == 0, (name, res[name])
    for command in ("convert", "info", "export", "verify", "repair", "optimize"):
        assert command in res["help"]["out"]
    assert "(512, 512, 3)" in res["info"]["out"]
    assert json.loads(res["info_json"]["out"])  # valid JSON
    assert res["levels"] == 3 and res["sum"] == int(rgb.astype(np.int64).sum())  # lossless, through optimize
    assert tifffile.imread(tmp_path / "level1.tif").shape == (256, 256, 3)
    assert (tmp_path / "region.png").stat().st_size > 0
    assert res["leaked"] == []  # nothing of Qt or the viewer was imported
    # mzarr-viewer without the viewer's packages: one line naming the extra, exit status 1, no traceback
    assert res["viewer"]["code"] == 1
    err = res["viewer"]["err"]
    assert err.count("\n") == 1 and 'pip install "mzarr[viewer]"' in err and "Traceback" not in err, err


def test_mzarr_viewer_launcher_is_qt_free_and_starts_the_viewer_when_installed():
    """The launcher module imports nothing of Qt itself; with the viewer installed it hands over to mzarr_app."""
    pytest.importorskip("PySide6", reason="PySide6 not installed (pip install \"mzarr[viewer]\")")
    script = textwrap.dedent(
        """
        import sys
        import mzarr.viewer_entry as launcher
        assert not [n for n in sys.modules if n.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6")]
        assert launcher.missing_viewer_packages() == []
        sys.exit(launcher.main(["--version"]))
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("mzarr-viewer "), r.stdout


# --------------------------------------------------------------------------
# Layering: import-linter's contracts ([tool.importlinter] in pyproject.toml)
# --------------------------------------------------------------------------

def test_import_contracts_are_kept():
    """mzarr_core never imports Qt, pyqtgraph, shiboken6 or mzarr_app; mzarr_app and the napari plugin
    (mzarr_napari, which imports no Qt either) use only mzarr_core's public API."""
    pytest.importorskip("importlinter", reason='import-linter not installed (pip install -e ".[dev]")')
    r = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         "--no-cache"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]
    assert "0 broken" in r.stdout and "5 kept" in r.stdout, r.stdout


# --------------------------------------------------------------------------
# Types: mypy on mzarr_core ([tool.mypy] in pyproject.toml)
# --------------------------------------------------------------------------

def test_mypy_finds_no_errors_in_mzarr_core():
    pytest.importorskip("mypy", reason='mypy not installed (pip install -e ".[dev]")')
    import time

    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-3000:]
    assert "Success: no issues found" in r.stdout, r.stdout
    assert seconds < 60, f"mypy took {seconds:.0f} s"
