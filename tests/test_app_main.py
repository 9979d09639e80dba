"""Tests of the application shell: entry point, smoke test, single instance, FileOpen, import, icon."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

from app_fixtures import image_dir, isolated_settings, open_and_wait, window  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def run_py(args: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """Run python with the repo on the path, offscreen."""
    e = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen", MZARR_VIEWER_SINGLE_INSTANCE="0", **env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=e)


def test_version(capsys) -> None:
    from mzarr_app import __version__
    from mzarr_app.main import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_smoke_test_prints_what_it_showed(image_dir, tmp_path) -> None:
    r = run_py(["-m", "mzarr_app", "--smoke-test", str(image_dir / "mosaic.mzarr")],
               MZARR_VIEWER_SETTINGS=str(tmp_path / "s.ini"))
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("smoke-test OK:")]
    assert line, r.stdout
    assert "shape=(2048, 3072)" in line[0] and "dtype=uint8" in line[0] and "level=" in line[0]
    assert "tiles=" in line[0] and "mean=" in line[0]
    mean = float(line[0].split("mean=")[1].split()[0])
    assert 20 < mean < 235
    r = run_py(["-c", "import sys; from mzarr_app.main import main; sys.exit(main(['--smoke-test', sys.argv[1]]))",
                str(image_dir / "volume.mzarr")], MZARR_VIEWER_SETTINGS=str(tmp_path / "s.ini"))
    assert r.returncode == 0 and "shape=(96, 200, 260)" in r.stdout, r.stderr


def test_smoke_test_fails_cleanly_on_bad_file(tmp_path) -> None:
    bad = tmp_path / "bad.mzarr"
    bad.write_text("nope")
    r = run_py(["-m", "mzarr_app", "--smoke-test", str(bad)], MZARR_VIEWER_SETTINGS=str(tmp_path / "s.ini"))
    assert r.returncode != 0
    assert "smoke-test FAILED" in r.stderr and "Traceback" not in r.stderr


def test_second_launch_hands_files_to_running_instance(qtbot, image_dir) -> None:
    from mzarr_app.single_instance import SingleInstanceServer

    name = f"mzarr-test-{uuid.uuid4().hex[:8]}"
    server = SingleInstanceServer(name)
    assert server.listen()
    got: list[list[str]] = []
    server.filesReceived.connect(got.append)
    code = textwrap.dedent(f"""
        import sys
        from PySide6.QtCore import QCoreApplication
        from mzarr_app.single_instance import send_to_running
        app = QCoreApplication([])
        sys.exit(0 if send_to_running([{str(image_dir / 'mosaic.mzarr')!r}], {name!r}, 5000) else 1)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)))
    qtbot.waitUntil(lambda: bool(got), timeout=20000)
    assert proc.wait(20) == 0
    assert got == [[str(image_dir / "mosaic.mzarr")]]
    # a second server does not steal the name of the live one
    other = SingleInstanceServer(name)
    assert not other.listen()
    server.close()
    assert other.listen(), "once the first instance is gone the name is free again"
    other.close()
    # let Qt finish the sockets' pending events while the servers' Python objects are still alive
    server.deleteLater()
    other.deleteLater()
    qtbot.wait(200)


def test_nothing_listening_means_not_handed_off(qapp) -> None:
    from mzarr_app.single_instance import send_to_running

    assert not send_to_running(["x.mzarr"], f"mzarr-none-{uuid.uuid4().hex[:8]}", 200)


def test_application_handles_file_open_events_and_icon(image_dir, tmp_path) -> None:
    code = textwrap.dedent(f"""
        import sys
        from PySide6.QtCore import QCoreApplication
        from PySide6.QtGui import QFileOpenEvent
        from mzarr_app.app import MzarrApplication
        app = MzarrApplication([sys.argv[0]], 64)
        assert not app.windowIcon().isNull(), "icon not found"
        QCoreApplication.postEvent(app, QFileOpenEvent({str(image_dir / 'astronaut.mzarr')!r}))
        for _ in range(50):
            app.processEvents()
        docs = [w.doc.path for w in app.windows if w.doc]
        print("DOCS", docs)
        sys.exit(0 if docs == [{str(image_dir / 'astronaut.mzarr')!r}] else 1)
    """)
    r = run_py(["-c", code], MZARR_VIEWER_SETTINGS=str(tmp_path / "s.ini"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_missing_icon_does_not_crash(qapp, monkeypatch, tmp_path) -> None:
    import mzarr_app.app as appmod

    monkeypatch.setattr(appmod, "resource_dirs", lambda: [tmp_path / "nothing"])
    assert appmod.app_icon().isNull()


def test_open_dialog_resolves_ome_zarr_folder(tmp_path) -> None:
    from mzarr_app.window import resolve_open_path

    assert resolve_open_path(str(tmp_path / "a.ome.zarr" / "zarr.json")) == str(tmp_path / "a.ome.zarr")
    assert resolve_open_path(str(tmp_path / "a.mzarr")) == str(tmp_path / "a.mzarr")


def test_open_ome_zarr_folder(qtbot, window, tmp_path) -> None:
    from skimage import data

    from mzarr_core import Mzarr

    folder = tmp_path / "cam.ome.zarr"
    try:
        Mzarr(data.camera()).save(folder)
    except Exception as exc:  # pragma: no cover - depends on the core's OME-Zarr writer
        pytest.skip(f"mzarr_core cannot write an OME-Zarr folder yet: {exc}")
    open_and_wait(qtbot, window, folder)
    tiles = window.view.shown_tiles()
    np.testing.assert_array_equal(next(iter(tiles.values())), data.camera())


def test_import_png_with_progress_and_cancel(qtbot, window, tmp_path) -> None:
    from PIL import Image
    from skimage import data

    from mzarr_app.importer import run_import
    from mzarr_core import Mzarr

    src = tmp_path / "coins.png"
    Image.fromarray(data.coins()).save(src)
    dst = tmp_path / "coins.mzarr"
    # cancelled at the first progress report: no file is left behind
    from PySide6.QtWidgets import QPushButton

    msg = run_import(window, str(src), str(dst), on_dialog=lambda d: d.findChild(QPushButton).click())
    assert msg == "cancelled" and not dst.exists()
    assert window.import_file(str(src), str(dst))
    assert window.doc is not None and window.doc.path == str(dst)
    np.testing.assert_array_equal(Mzarr(dst).numpy(), data.coins())
    # a broken source becomes a message
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert not window.import_file(str(bad), str(tmp_path / "bad.mzarr"))
    assert window.error_box is not None and "bad.png" in window.error_box.text()


def test_main_opens_files_from_the_command_line(image_dir, tmp_path) -> None:
    ini = tmp_path / "s.ini"
    r = run_py(["-m", "mzarr_app", str(image_dir / "mosaic.mzarr"), str(image_dir / "volume.mzarr"),
                "--new-instance", "--quit-after", "3"], MZARR_VIEWER_SETTINGS=str(ini))
    assert r.returncode == 0, r.stderr
    text = ini.read_text()
    assert "volume.mzarr" in text and "mosaic.mzarr" in text and "geometry" in text
