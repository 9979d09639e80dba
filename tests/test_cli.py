"""The ``mzarr`` command on real images: convert (TIFF, PNG, .npy, NIfTI), info, export, verify, and its errors."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from skimage import data

from mzarr import Mzarr
import mzarr_core
from mzarr_core.cli import main
from mzarr_core.errors import MzarrValueError


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_convert_ome_tiff_keeps_pixels_axes_and_spacing(tmp_path, capsys):
    rgb = data.astronaut()
    src = tmp_path / "astronaut.ome.tif"
    tifffile.imwrite(src, rgb, photometric="rgb", tile=(256, 256), metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    code, out, err = run(capsys, "convert", src, tmp_path / "a.mzarr", "--levels", "3")
    assert code == 0, err
    assert "shape:       (512, 512, 3)" in out and "axes: yxc" in out
    with Mzarr(tmp_path / "a.mzarr") as m:
        assert np.array_equal(m.numpy(), rgb)
        assert m.spacing == (0.5, 0.5)
        assert len(m.levels) == 3
        assert m.attrs()["source"] == "astronaut.ome.tif"
    assert "converting astronaut.ome.tif" in err and "100%" in err  # the progress bar ran to the end


def test_convert_png_npy_and_labels(tmp_path, capsys):
    coins = data.coins()
    (tmp_path / "coins.png").write_bytes(imagecodecs.png_encode(coins))
    assert run(capsys, "convert", tmp_path / "coins.png", tmp_path / "c.mzarr", "--quiet")[0] == 0
    assert np.array_equal(Mzarr(tmp_path / "c.mzarr").numpy(), coins)

    labels = (coins > 100).astype(np.uint16) * 7
    np.save(tmp_path / "labels.npy", labels)
    assert run(capsys, "convert", tmp_path / "labels.npy", tmp_path / "l.mzarr", "--labels", "--levels", "3", "--quiet")[0] == 0
    m = Mzarr(tmp_path / "l.mzarr")
    assert m.is_label and m.downsample_method == "mode"
    assert set(np.unique(m.level(2).numpy())) <= {0, 7}


def test_convert_nifti_volume_with_spacing(tmp_path, capsys):
    nib = pytest.importorskip("nibabel", reason="nibabel (test extra) is needed to read NIfTI")
    src = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"
    if not src.exists():
        pytest.skip("nibabel's bundled anatomical.nii test volume is not installed")
    img = nib.load(src)
    code, _out, err = run(capsys, "convert", src, tmp_path / "brain.mzarr", "--quiet")
    assert code == 0, err
    m = Mzarr(tmp_path / "brain.mzarr")
    expected = np.asarray(img.dataobj).transpose(2, 1, 0)
    assert m.axes == "zyx" and np.array_equal(m.numpy(), expected)
    zooms = img.header.get_zooms()
    assert m.spacing == pytest.approx((zooms[2], zooms[1], zooms[0]))
    assert m.codec["name"] == "blosc" and not m.levels[0].plane_reads_are_fast  # int16: Blosc bricks (format 6)
    code, _out, err = run(capsys, "convert", src, tmp_path / "slabs.mzarr", "--quiet", "--bricks", "slabs")
    assert code == 0, err
    with Mzarr(tmp_path / "slabs.mzarr") as f:
        assert f.codec.get("bricks") == "slabs" and f.levels[0].plane_reads_are_fast
        assert np.array_equal(f.numpy(), expected)
    code, _out, err = run(capsys, "convert", src, tmp_path / "strip.mzarr", "--quiet", "--bricks", "strip")
    assert code == 0, err
    with Mzarr(tmp_path / "strip.mzarr") as f:
        assert f.codec.get("bricks") == "strip" and not f.levels[0].plane_reads_are_fast
        assert np.array_equal(f.numpy(), expected)
    code, _out, err = run(capsys, "convert", src, tmp_path / "frames.mzarr", "--quiet", "--bricks", "frames")
    assert code == 0, err
    with Mzarr(tmp_path / "frames.mzarr") as f:
        assert "bricks" not in f.codec and f.levels[0].plane_reads_are_fast
        assert np.array_equal(f.numpy(), expected)


def test_lossy_convert_is_smaller_and_close(tmp_path, capsys):
    cam = data.camera()
    np.save(tmp_path / "cam.npy", cam)
    run(capsys, "convert", tmp_path / "cam.npy", tmp_path / "lossless.mzarr", "--quiet")
    assert run(capsys, "convert", tmp_path / "cam.npy", tmp_path / "lossy.mzarr", "--lossy", "--distance", "1.0", "--quiet")[0] == 0
    assert (tmp_path / "lossy.mzarr").stat().st_size < 0.6 * (tmp_path / "lossless.mzarr").stat().st_size
    err = np.abs(Mzarr(tmp_path / "lossy.mzarr").numpy().astype(float) - cam)
    assert 0 < err.mean() < 3


def test_info_json_reports_levels_codec_and_ratio(tmp_path, capsys):
    Mzarr(data.camera(), attrs={"stain": "none"}).save(tmp_path / "cam.mzarr", levels=3)
    code, out, _ = run(capsys, "info", tmp_path / "cam.mzarr", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["shape"] == [512, 512] and info["dtype"] == "uint8"
    assert [lv["shape"] for lv in info["levels"]] == [[512, 512], [256, 256], [128, 128]]
    assert info["codec"]["name"] == "jpegxl" and info["codec"]["lossless"] is True
    assert info["attrs"] == {"stain": "none"}
    assert info["size_on_disk"] == (tmp_path / "cam.mzarr").stat().st_size
    assert info["compression_ratio"] > 1.2


def test_export_region_and_level_to_tif_npy_png(tmp_path, capsys):
    rgb = data.astronaut()
    m = Mzarr(rgb)
    m.save(tmp_path / "a.mzarr", levels=2)
    level1 = Mzarr(tmp_path / "a.mzarr").level(1).numpy()
    assert run(capsys, "export", tmp_path / "a.mzarr", tmp_path / "r.npy", "--region", "10:110,20:220")[0] == 0
    assert np.array_equal(np.load(tmp_path / "r.npy"), rgb[10:110, 20:220])
    assert run(capsys, "export", tmp_path / "a.mzarr", tmp_path / "l1.tif", "--level", "1")[0] == 0
    assert np.array_equal(tifffile.imread(tmp_path / "l1.tif"), level1)
    assert run(capsys, "export", tmp_path / "a.mzarr", tmp_path / "r.png", "--region", "0:64,0:64")[0] == 0
    assert np.array_equal(imagecodecs.imread(tmp_path / "r.png"), rgb[:64, :64])


def test_verify_finds_a_damaged_chunk(tmp_path, capsys):
    Mzarr(data.camera()).save(tmp_path / "cam.mzarr", chunks=(256, 256), levels=2)
    code, out, _ = run(capsys, "verify", tmp_path / "cam.mzarr", "--quiet")
    assert code == 0 and "5 chunks checked, 0 damaged" in out
    with sqlite3.connect(tmp_path / "cam.mzarr") as db:
        db.execute("UPDATE zarr SET value=? WHERE key='0/c/1/0'", (b"\x00garbage" * 10,))
    code, out, _ = run(capsys, "verify", tmp_path / "cam.mzarr", "--quiet")
    assert code == 1
    assert "DAMAGED: chunk 0/c/1/0" in out and "1 damaged" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "{tmp}/missing.mzarr"], "no such file or folder"),
        (["info", "{tmp}"], "not a Zarr/OME-Zarr image"),
        (["info", "{tmp}/notes.txt"], "is not a .mzarr image"),
        (["convert", "{tmp}/notes.txt", "{tmp}/x.mzarr"], "unknown image type .txt"),
        (["convert", "{tmp}/vol4d.npy", "{tmp}/x.mzarr"], "needs channel_axis"),
        (["convert", "{tmp}/complex.npy", "{tmp}/x.mzarr"], "cannot be stored"),
        (["convert", "{tmp}/vol4d.npy", "{tmp}/x.mzarr", "--lossy", "--channel-axis", "0", "--labels"], "label images must be stored lossless"),
        (["export", "{tmp}/ok.mzarr", "{tmp}/x.bmp"], "use a .tif, .npy or .png"),
        (["export", "{tmp}/ok.mzarr", "{tmp}/x.npy", "--level", "7"], "level 7 does not exist"),
        (["export", "{tmp}/ok.mzarr", "{tmp}/x.npy", "--region", "a:b"], "is not start:stop"),
    ],
)
def test_bad_input_gives_one_clear_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "notes.txt").write_text("hello")
    np.save(tmp_path / "vol4d.npy", np.zeros((2, 3, 4, 5), np.uint8))
    np.save(tmp_path / "complex.npy", np.zeros((4, 4), np.complex64))
    Mzarr(np.zeros((8, 8), np.uint8)).save(tmp_path / "ok.mzarr")
    code, _out, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.mzarr").exists()


def test_console_script_is_installed(tmp_path):
    Mzarr(data.moon()).save(tmp_path / "moon.mzarr")
    exe = Path(sys.executable).parent / "mzarr"
    result = subprocess.run([str(exe), "info", str(tmp_path / "moon.mzarr")], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "shape:       (512, 512)" in result.stdout


# -- verify checks the pyramid; repair rebuilds it -------------------------------------------------------------------
def _tear(path: Path, rows: slice, cols: slice, change) -> None:
    """Change level 0 directly, bypassing the pyramid update (a torn edit)."""
    with Mzarr(path, "r+") as m:
        lv = m.levels[0]
        with m._transaction():
            lv.storage[rows, cols] = change(lv[rows, cols])


def test_verify_names_a_torn_pyramid_chunk_and_repair_fixes_it(tmp_path, capsys):
    path = tmp_path / "cam.mzarr"
    Mzarr(data.camera()).save(path, chunks=(128, 128), levels=3)
    _tear(path, slice(100, 164), slice(300, 364), lambda a: np.clip(a.astype(int) + 40, 0, 255).astype(np.uint8))
    code, out, _ = run(capsys, "verify", path, "--quiet")
    assert code == 1
    assert "PYRAMID: level 1 chunk 1/c/0/1 disagrees with level 0: " in out and "pixels differ (max |diff| " in out
    assert "21 chunks checked, 0 damaged" in out and "5 pyramid chunks compared, 1 disagree" in out
    assert f"mzarr repair {path}" in out
    code, out, err = run(capsys, "repair", path)
    assert code == 0, err
    assert "level 1: 1 of 4 chunks rewritten" in out and "level 2: 1 of 1 chunks rewritten" in out
    assert "2 chunk(s) rewritten from level 0 by the 'mean' rule in one transaction" in out
    assert "repairing cam.mzarr" in err and "100%" in err
    code, out, _ = run(capsys, "verify", path, "--quiet")
    assert code == 0 and "5 pyramid chunks compared, 0 disagree" in out and "bit-exact" in out
    code, out, _ = run(capsys, "repair", path, "--quiet")
    assert code == 0 and "nothing to repair" in out


def test_verify_lists_the_first_ten_disagreements_and_counts_the_rest(tmp_path, capsys):
    path = tmp_path / "s.mzarr"
    Mzarr(data.moon()).save(path, chunks=(32, 32), levels=2)
    _tear(path, slice(0, 512), slice(0, 512), lambda a: 255 - a)
    code, out, _ = run(capsys, "verify", path, "--quiet")
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith("PYRAMID: level 1 chunk")]
    assert len(lines) == 10 and lines[0].startswith("PYRAMID: level 1 chunk 1/c/0/0 ")
    assert "PYRAMID: ... and 54 more chunks disagree" in out and "64 disagree" in out


def test_verify_of_a_folder_by_another_tool_says_pyramid_not_checked(tmp_path, capsys):
    import zarr

    a = data.coins()
    root = zarr.open_group(tmp_path / "other.zarr", mode="w", zarr_format=3)
    for i, level in enumerate([a, a[::2, ::2]]):
        root.create_array(f"s{i}", shape=level.shape, dtype=level.dtype, chunks=(64, 64))[...] = level
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n, "type": "space"} for n in "yx"],
        "datasets": [{"path": f"s{i}", "coordinateTransformations": [{"type": "scale", "scale": [2.0**i] * 2}]} for i in range(2)],
    }]}
    code, out, _ = run(capsys, "verify", tmp_path / "other.zarr", "--quiet")
    assert code == 0
    assert "pyramid not checked: it was written by another tool" in out
    code, out, err = run(capsys, "repair", tmp_path / "other.zarr", "--quiet")
    assert code == 2 and "mzarr repair: error: cannot repair the pyramid" in err and "another tool" in err
    assert len(err.strip().splitlines()) == 1


def test_repair_of_a_folder_says_it_is_not_atomic(tmp_path, capsys):
    path = tmp_path / "cam.ome.zarr"
    Mzarr(data.camera()).save(path, chunks=(128, 128), levels=2)
    _tear(path, slice(0, 64), slice(0, 64), lambda a: 255 - a)
    code, out, err = run(capsys, "repair", path, "--quiet")
    assert code == 0, err
    assert "level 1: 1 of 4 chunks rewritten" in out and "not in one transaction" in out
    assert run(capsys, "verify", path, "--quiet")[0] == 0


def test_repair_refuses_a_damaged_level_0(tmp_path, capsys):
    path = tmp_path / "cam.mzarr"
    Mzarr(data.camera()).save(path, chunks=(256, 256), levels=2)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE zarr SET value=? WHERE key='0/c/1/0'", (b"\x00garbage" * 10,))
    before = path.read_bytes()
    code, out, err = run(capsys, "repair", path, "--quiet")
    assert code == 2 and out == ""
    assert err.startswith("mzarr repair: error: 1 chunk(s) of level 0") and "restore the file from a backup" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert path.read_bytes() == before


# -- no traceback, ever ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exc", [RuntimeError("boom\nsecond line"), RecursionError("maximum recursion depth exceeded"), MemoryError()])
def test_unexpected_error_is_one_line_without_traceback(tmp_path, capsys, monkeypatch, exc):
    import mzarr_core.report

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(mzarr_core.report, "verify", fail)
    Mzarr(data.camera()).save(tmp_path / "cam.mzarr")
    code, out, err = run(capsys, "verify", tmp_path / "cam.mzarr", "--quiet")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mzarr verify: error: ")
    assert type(exc).__name__ in lines[0] and "this is a bug in mzarr, please report it" in lines[0]
    assert "Traceback" not in err


def test_unexpected_error_in_a_real_process_prints_no_traceback(tmp_path):
    """The installed entry point, with convert failing inside: one line on stderr, exit code 2."""
    np.save(tmp_path / "a.npy", data.camera())
    code = (
        "import sys, mzarr_core\n"
        "def boom(*a, **k): raise RuntimeError('injected failure')\n"
        "sys.modules['mzarr_core.convert'].convert = boom\n"
        "from mzarr_core.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "convert", str(tmp_path / "a.npy"), str(tmp_path / "a.mzarr"), "--quiet"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mzarr convert: error: failed unexpectedly: RuntimeError: injected failure -- this is a bug in mzarr, please report it"
    )


# -- file:// URLs as paths (issue 9) ---------------------------------------------------------------------------------
def test_local_path_decodes_file_urls():
    from mzarr_core.cli import local_path

    assert local_path("plain/name.mzarr") == Path("plain/name.mzarr")
    assert local_path("file-like:name") == Path("file-like:name")
    if sys.platform == "win32":
        assert local_path("file:///C:/data/a%20b.mzarr") == Path(r"C:\data\a b.mzarr")
        assert local_path("file://server/share/x.mzarr") == Path(r"\\server\share\x.mzarr")
        return
    assert local_path("file:///data/a%20b.mzarr") == Path("/data/a b.mzarr")
    assert local_path("FILE://localhost/data/x.mzarr") == Path("/data/x.mzarr")
    assert local_path("file:/data/x.mzarr") == Path("/data/x.mzarr")
    assert local_path("file:///data/%C3%A9t%C3%A9%3Fv%231.mzarr") == Path("/data/été?v#1.mzarr")
    with pytest.raises(ValueError, match="another computer"):
        local_path("file://server/share/x.mzarr")
    with pytest.raises(ValueError, match="%23"):
        local_path("file:///data/x.mzarr#frag")


def test_every_path_argument_takes_a_file_url(tmp_path, capsys):
    folder = tmp_path / "my images"
    folder.mkdir()
    np.save(folder / "cam é.npy", data.camera()[:64, :80])
    url = (folder / "cam é.npy").as_uri()  # file:///.../my%20images/cam%20%C3%A9.npy
    assert "%20" in url
    out_url = (folder / "out put.mzarr").as_uri()
    code, out, err = run(capsys, "convert", url, out_url, "--quiet")
    assert code == 0, err
    assert (folder / "out put.mzarr").is_file()
    code, out, err = run(capsys, "info", out_url.replace("file://", "file://localhost"))
    assert code == 0, err
    assert "shape:       (64, 80)" in out and str(folder / "out put.mzarr") in out
    code, out, err = run(capsys, "export", out_url, (folder / "back again.npy").as_uri())
    assert code == 0, err
    np.testing.assert_array_equal(np.load(folder / "back again.npy"), data.camera()[:64, :80])
    for command in ("verify", "repair", "optimize"):
        code, out, err = run(capsys, command, out_url, "--quiet")
        assert code == 0, (command, err)
    code, out, err = run(capsys, "info", url)  # an importable file, by URL: described, not converted
    assert code == 0 and "shape (64, 80)" in out, err


def test_a_file_url_of_another_computer_is_a_usage_error(capsys):
    if sys.platform == "win32":
        pytest.skip("file://server/share is a UNC path on Windows")
    with pytest.raises(SystemExit) as exc:
        main(["info", "file://server/share/x.mzarr"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "names a file on another computer (server)" in err and "Traceback" not in err


# -- warnings from the readers: clean lines, each once ---------------------------------------------------------------
def _dicom_series(folder: Path, zs: list[float], *, base: str, number: int, description: str, prefix: str) -> np.ndarray:
    """A series of ``len(zs)`` slices of pydicom's bundled ``base`` at z positions ``zs`` (axial), pixels varied."""
    import copy

    pydicom = pytest.importorskip("pydicom")
    from pydicom.uid import generate_uid

    src = Path(os.path.dirname(pydicom.data.__file__)) / "test_files" / base
    if not src.exists():
        pytest.skip(f"pydicom test file {base} not bundled")
    folder.mkdir(parents=True, exist_ok=True)
    ds0 = pydicom.dcmread(src)
    uid = generate_uid()
    out = []
    for k, z in enumerate(zs):
        ds = copy.deepcopy(ds0)
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = uid, number, description
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, z]
        ds.InstanceNumber = k + 1
        arr = (ds0.pixel_array.astype(np.int64) + 7 * k).astype(ds0.pixel_array.dtype)
        ds.PixelData = arr.tobytes()
        out.append(arr)
        ds.save_as(folder / f"{prefix}{k:03d}.dcm", enforce_file_format=True)
    return np.stack(out)


@pytest.fixture
def two_series(tmp_path) -> Path:
    """A folder holding an MR series with an uneven gap (5 slices) and a smaller CT series (3 slices)."""
    folder = tmp_path / "study"
    _dicom_series(folder, [0.0, 2.5, 5.0, 10.0, 12.5], base="MR_small.dcm", number=3, description="AX big", prefix="mr")
    _dicom_series(folder, [0.0, 2.5, 5.0], base="CT_small.dcm", number=8, description="small", prefix="ct")
    return folder


def test_reader_warnings_are_clean_lines_each_once(two_series, tmp_path, capsys):
    code, out, err = run(capsys, "convert", two_series, tmp_path / "s.mzarr", "--quiet")
    assert code == 0, err
    lines = err.splitlines()
    several = [ln for ln in lines if ln.startswith("warning: folder study holds 2 image series; reading #0")]
    uneven = [ln for ln in lines if ln.startswith("warning: #0 series 3") and "uneven slice gaps" in ln]
    assert len(several) == 1 and len(uneven) == 1, err
    assert any(ln.startswith("    #1  series 8") for ln in lines), err  # the other series, listed under it
    assert "MzarrWarning" not in err and ".py:" not in err and "warnings.warn" not in err
    assert "slice_positions_mm: [0.0, 2.5, 5.0, 10.0, 12.5]" in out  # short lists are shown whole


def test_a_warning_repeated_by_the_library_is_shown_once(tmp_path, capsys, monkeypatch):
    import warnings

    import mzarr_core.formats as formats
    from mzarr_core.errors import MzarrWarning

    real_read = formats.read

    def read_warning_twice(path, **options):
        for _ in range(3):
            warnings.warn("slices 4-6 look odd\nsecond line", MzarrWarning, stacklevel=2)
        return real_read(path, **options)

    monkeypatch.setattr(formats, "read", read_warning_twice)
    monkeypatch.setattr(sys.modules["mzarr_core.convert"], "read", read_warning_twice)
    np.save(tmp_path / "a.npy", data.camera()[:32, :32])
    code, _out, err = run(capsys, "convert", tmp_path / "a.npy", tmp_path / "a.mzarr", "--quiet")
    assert code == 0, err
    assert err.count("warning: slices 4-6 look odd\n  second line\n") == 1, err


# -- mzarr info on an importable input: what would be imported --------------------------------------------------------
def test_info_of_a_dicom_folder_lists_its_series_without_converting(two_series, capsys):
    before = sorted(p.name for p in two_series.parent.iterdir())
    code, out, err = run(capsys, "info", two_series)
    assert code == 0, err
    assert "format:      DICOM: not a .mzarr" in out
    assert "series:      2 found; * = the one imported" in out
    lines = out.splitlines()
    assert any(ln.startswith("  * #0  series 3  MR \"AX big\"  5 x 64 x 64") for ln in lines), out
    assert any(ln.startswith("    #1  series 8  CT \"small\"  3 x 128 x 128") for ln in lines), out
    assert "import:      shape (5, 64, 64)  axes: zyx  dtype: int16" in out
    assert "spacing:     (2.5, 0.3125, 0.3125) millimeter" in out
    assert "uneven slice gaps" in err and "holds 2 image series" not in err  # the list says that already
    assert sorted(p.name for p in two_series.parent.iterdir()) == before  # nothing written
    code, out, err = run(capsys, "info", two_series, "--series", "8")
    assert code == 0, err
    assert any(ln.startswith("  * #1  series 8") for ln in out.splitlines()), out
    assert "import:      shape (3, 128, 128)" in out
    code, out, err = run(capsys, "info", two_series, "--json")
    info = json.loads(out)
    assert info["format"] == "DICOM" and info["chosen_series"] == 0 and info["shape"] == [5, 64, 64]
    assert [s["number"] for s in info["dicom_series"]] == [3, 8] and info["dicom_series"][1]["files"] == 3
    assert info["attrs"]["dicom"]["geometry"]["slice_positions_mm"] == pytest.approx([0, 2.5, 5, 10, 12.5])
    code, _out, err = run(capsys, "info", two_series, "--series", "99")
    assert code == 2 and "no series matches '99'" in err


def test_info_of_tiff_nrrd_and_nifti_describes_the_import(tmp_path, capsys):
    from mzarr_core import formats

    rgb = data.astronaut()[:100, :120]
    tifffile.imwrite(tmp_path / "p.ome.tif", rgb, photometric="rgb",
                     metadata={"axes": "YXS", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25})
    code, out, err = run(capsys, "info", tmp_path / "p.ome.tif")
    assert code == 0, err
    assert "format:      OME-TIFF" in out and "shape (100, 120, 3)  axes: yxc  dtype: uint8" in out
    assert "spacing:     (0.25, 0.25)" in out
    vol = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    Mzarr(vol, spacing=(2.0, 0.5, 0.75), unit="millimeter").save(tmp_path / "v.mzarr")
    formats.export(tmp_path / "v.mzarr", tmp_path / "v.nrrd")
    code, out, err = run(capsys, "info", tmp_path / "v.nrrd")
    assert code == 0, err
    assert "format:      NRRD" in out and "shape (4, 5, 6)  axes: zyx  dtype: int16" in out
    assert "spacing:     (2.0, 0.5, 0.75) millimeter" in out
    assert not list(tmp_path.glob("*.nrrd.mzarr"))
    pytest.importorskip("nibabel")
    formats.export(tmp_path / "v.mzarr", tmp_path / "v.nii.gz")
    code, out, err = run(capsys, "info", tmp_path / "v.nii.gz", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["format"], info["shape"], info["axes"], info["dtype"]) == ("NIfTI", [4, 5, 6], "zyx", "int16")
    assert info["spacing"] == pytest.approx([2.0, 0.5, 0.75])
    code, _out, err = run(capsys, "info", tmp_path / "v.nrrd", "--series", "2")
    assert code == 2 and "--series applies to DICOM" in err


def test_info_prints_long_attributes_compactly_and_json_in_full(tmp_path, capsys):
    positions = [round(0.5 * k, 3) for k in range(175)]
    attrs = {
        "stain": "H&E",
        "slice_positions_mm": positions,
        "dicom": {"Modality": "CT", "geometry": {"affine_lps": np.eye(4).tolist(), "slice_step_mm": 0.5}},
        "note": "n" * 500,
        "table": {f"k{i}": i for i in range(60)},
    }
    Mzarr(np.zeros((16, 16), np.uint8), attrs=attrs).save(tmp_path / "a.mzarr")
    code, out, err = run(capsys, "info", tmp_path / "a.mzarr")
    assert code == 0, err
    assert "  slice_positions_mm: [175 values]" in out
    assert "  stain: H&E" in out and "    Modality: CT" in out
    assert "      affine_lps: [4 x 4 values]" in out and "      slice_step_mm: 0.5" in out
    assert "(500 characters)" in out and "n" * 200 not in out
    assert "... and 20 more keys" in out
    assert max(len(line) for line in out.splitlines()) < 140
    code, out, err = run(capsys, "info", tmp_path / "a.mzarr", "--json")
    assert json.loads(out)["attrs"]["slice_positions_mm"] == positions


def test_viewer_takes_file_urls(tmp_path):
    """``mzarr-viewer file:///...`` (what some launchers and browsers pass): opened as the local file."""
    from mzarr_app.main import parse_args

    if sys.platform != "win32":
        args = parse_args(["file:///data/a%20b.mzarr", "file://localhost/x/y.ome.zarr", "plain.mzarr"])
        assert args.files == ["/data/a b.mzarr", "/x/y.ome.zarr", "plain.mzarr"]
        assert parse_args(["--smoke-test", "file:///d/%C3%A9.mzarr"]).smoke_test == "/d/é.mzarr"
    folder = tmp_path / "with space"
    folder.mkdir()
    Mzarr(data.camera()[:96, :128]).save(folder / "cam era.mzarr")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MZARR_VIEWER_SINGLE_INSTANCE="0",
               MZARR_VIEWER_SETTINGS=str(tmp_path / "s.ini"),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    r = subprocess.run([sys.executable, "-m", "mzarr_app", "--smoke-test", (folder / "cam era.mzarr").as_uri()],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "smoke-test OK:" in r.stdout and "shape=(96, 128)" in r.stdout, r.stdout


def test_convert_never_writes_over_its_input_nor_to_a_foreign_suffix(tmp_path, capsys):
    """QA repro_13: `convert scan.nii.gz scan.nii.gz` replaced the NIfTI with a .mzarr, `convert a.tif b.nii.gz` wrote
    a .mzarr named .nii.gz. Now: only .mzarr / *.zarr outputs, never the input (nor a link to it, nor inside an input
    folder); the user's files are byte for byte as they were and the message says what to do."""
    nib = pytest.importorskip("nibabel")
    vol = np.arange(4 * 5 * 6, dtype=np.int16).reshape(6, 5, 4)
    src = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), src)
    before = src.read_bytes()
    code, _, err = run(capsys, "convert", src, src, "--quiet")
    assert code == 2 and "convert writes a .mzarr file or an OME-Zarr folder" in err and "mzarr export" in err
    tif = tmp_path / "a.tif"
    tifffile.imwrite(tif, vol[0].astype(np.uint8))
    code, _, err = run(capsys, "convert", tif, tmp_path / "b.nii.gz", "--quiet")
    assert code == 2 and "'mzarr export IMAGE.mzarr b.nii.gz'" in err and not (tmp_path / "b.nii.gz").exists()
    link = tmp_path / "link.mzarr"
    link.symlink_to(src)
    hard = tmp_path / "hard.mzarr"
    os.link(src, hard)
    for out in (link, hard):
        code, _, err = run(capsys, "convert", src, out, "--quiet")
        assert code == 2 and "that is the input itself" in err and "nothing was written" in err
    assert src.read_bytes() == before and link.is_symlink()
    np.testing.assert_array_equal(np.asarray(nib.load(src).dataobj), vol)
    folder = tmp_path / "dicom"
    folder.mkdir()
    (folder / "slice.dcm").write_bytes(b"x")
    with pytest.raises(MzarrValueError, match="inside the input folder"):
        mzarr_core.convert(folder, folder / "sub" / ".." / "out.mzarr")
    assert sorted(p.name for p in folder.iterdir()) == ["slice.dcm"]
    os.link(src, tmp_path / "seg.mzarr")
    with pytest.raises(MzarrValueError, match="that is the input scan.nii.gz itself"):
        mzarr_core.convert(tif, tmp_path / "seg.mzarr", labels_from=src)
    # export and annotations --export refuse to write over the image
    Mzarr(vol[0].astype(np.uint8)).save(tmp_path / "img.mzarr")
    alias = tmp_path / "img.tif"
    os.link(tmp_path / "img.mzarr", alias)
    image_bytes = (tmp_path / "img.mzarr").read_bytes()
    code, _, err = run(capsys, "export", tmp_path / "img.mzarr", alias, "--quiet")
    assert code == 2 and "that is the image itself" in err
    code, _, err = run(capsys, "annotations", tmp_path / "img.mzarr", "--export", tmp_path / "img.mzarr")
    assert code == 2 and "give a .geojson file name" in err
    assert (tmp_path / "img.mzarr").read_bytes() == image_bytes


def test_cli_messages_name_cli_options_not_python_calls(tmp_path, capsys, monkeypatch):
    """QA repro_16 and read-only files: the CLI said "give plane=(axis, index)" and "open it read-only (mode 'r')",
    Python API advice; it now names --plane z=10 and what to do from the shell. The file is left as it was."""
    import mzarr_core.sqlite_store as sqlite_store
    from mzarr_core.annotations import Annotation, write_geojson

    vol = np.zeros((4, 16, 16), np.uint8)
    Mzarr(vol).save(tmp_path / "v.mzarr")
    write_geojson([Annotation("rectangle", [(1, 1), (5, 5)], name="tumor")], tmp_path / "q.geojson")
    before = (tmp_path / "v.mzarr").read_bytes()
    code, _, err = run(capsys, "annotations", tmp_path / "v.mzarr", "--import", tmp_path / "q.geojson")
    assert code == 2 and "1 of the 1 features of q.geojson name no plane" in err and "plane=(" not in err
    assert "say which plane they lie on with --plane AXIS=INDEX, e.g. --plane z=10" in err
    assert (tmp_path / "v.mzarr").read_bytes() == before
    code, out, err = run(capsys, "annotations", tmp_path / "v.mzarr", "--import", tmp_path / "q.geojson", "--plane", "z=2")
    assert code == 0, err
    with Mzarr(tmp_path / "v.mzarr") as m:
        assert [(a.name, a.plane) for a in m.annotations()] == [("tumor", ("z", 2))]
    # a file the user may not write (permissions do not stop root, who runs the tests: the check is told so)
    monkeypatch.setattr(sqlite_store, "why_not_writable", lambda p: f"you have no permission to write {p}")
    before = (tmp_path / "v.mzarr").read_bytes()
    for command in ("repair", "optimize"):
        code, _, err = run(capsys, command, tmp_path / "v.mzarr", "--quiet")
        assert code == 2 and "you have no permission to write" in err and "mode 'r'" not in err
        assert f"copy it to a writable folder and run 'mzarr {command}' on the copy" in err
    assert (tmp_path / "v.mzarr").read_bytes() == before


def test_an_empty_mzarr_file_is_said_to_be_empty(tmp_path, capsys):
    """A 0-byte .mzarr (an interrupted copy) given to convert was told to "use 'mzarr convert'"."""
    (tmp_path / "e.mzarr").write_bytes(b"")
    for argv in (("convert", tmp_path / "e.mzarr", tmp_path / "f.mzarr", "--quiet"), ("info", tmp_path / "e.mzarr")):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "e.mzarr is empty (0 bytes): it holds no image" in err and "use 'mzarr convert'" not in err
    (tmp_path / "t.mzarr").write_bytes(b"II*\0" + bytes(100))
    code, _, err = run(capsys, "info", tmp_path / "t.mzarr")
    assert code == 2 and "give it that format's suffix (.tif, .png, .npy...) and import it with 'mzarr convert'" in err
    assert not (tmp_path / "f.mzarr").exists()


def test_convert_never_replaces_a_folder_or_file_that_is_not_a_zarr_image(tmp_path, capsys):
    """A save to NAME.zarr replaces an existing Zarr folder of that name; a user's own folder (or a file, e.g. a
    zipped Zarr) under that name was deleted with it. Now refused, their content untouched; a Zarr folder is still
    replaced."""
    tif = tmp_path / "a.tif"
    pixels = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32)
    tifffile.imwrite(tif, pixels)
    mine = tmp_path / "results.zarr"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    (tmp_path / "zipped.zarr").write_bytes(b"PK\x03\x04 my zipped store")
    for out in (mine, tmp_path / "zipped.zarr"):
        code, _, err = run(capsys, "convert", tif, out, "--quiet")
        assert code == 2 and "which the save would replace and delete" in err and "nothing was written" in err
    assert (mine / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "zipped.zarr").read_bytes() == b"PK\x03\x04 my zipped store"
    assert run(capsys, "convert", tif, tmp_path / "img.ome.zarr", "--quiet")[0] == 0
    assert run(capsys, "convert", tif, tmp_path / "img.ome.zarr", "--quiet")[0] == 0  # an image: replaced
    with Mzarr(tmp_path / "img.ome.zarr") as m:
        np.testing.assert_array_equal(m.numpy(), pixels)


def test_convert_option_errors_name_the_options(tmp_path, capsys):
    """Bad --chunks/--spacing/--levels/--channel-axis values were told in Python terms ("chunks must", "could not
    convert string to float", "numpy.moveaxis(array, channel_axis, 0)"); now they name the option to fix."""
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, np.zeros((8, 16, 16), np.uint8))
    out = tmp_path / "o.mzarr"
    cases = {
        ("--chunks", "5"): "--chunks must be 3 positive integers (axes 'zyx'), got (5,)",
        ("--chunks", "x"): "--chunks takes whole numbers separated by commas, e.g. 512,512; got 'x'",
        ("--spacing", "a,b"): "--spacing takes numbers separated by commas, e.g. 0.5,0.25,0.25; got 'a,b'",
        ("--spacing", "1,2"): "--spacing must be 3 positive numbers",
        ("--levels", "0"): "--levels must be at least 1, got 0",
        ("--channel-axis", "1"): "--channel-axis 1 is in the middle of shape (8, 16, 16): the channel axis is the "
                                 "first or the last one (--channel-axis 0 or -1)",
    }
    for option, said in cases.items():
        code, _, err = run(capsys, "convert", src, out, *option, "--quiet")
        assert code == 2 and said in err and "numpy" not in err, (option, err)
    assert not out.exists()
