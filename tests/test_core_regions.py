"""Region statistics, line lengths and line profiles from full-resolution pixels (issue 10, deliverable 4): exact
against NumPy on the whole array, streamed window by window with progress and cancel, any slice axis of a volume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mzarr_core import Mzarr
from mzarr_core.annotations import Annotation
from mzarr_core.errors import MzarrValueError, SaveCancelled
from mzarr_core.regions import line_length, line_profile, region_mask, region_stats


def _centres_in_polygon(shape: tuple[int, int], pts: list[tuple[float, float]]) -> np.ndarray:
    """Independent reference: matplotlib-free even-odd test of every pixel centre (skimage's points_in_poly)."""
    from skimage.measure import points_in_poly

    rr, cc = np.mgrid[0:shape[0], 0:shape[1]]
    centres = np.c_[cc.ravel() + 0.5, rr.ravel() + 0.5]
    return points_in_poly(centres, np.asarray(pts)).reshape(shape)


def _reference_histogram(v: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """NumPy's histogram of ``v``; for integers on integer-aligned bins (w whole values each, edges at half-integers,
    w = ceil(span / bins)), so that no bin lies between two integers."""
    if v.dtype.kind not in "iub":
        return np.histogram(v, bins)
    lo, hi = int(v.min()), int(v.max())
    width = math.ceil((hi - lo + 1) / bins)
    edges = lo - 0.5 + width * np.arange(math.ceil((hi - lo + 1) / width) + 1, dtype=np.float64)
    return np.histogram(v.astype(np.float64) if width <= 2**40 else v, edges)


def _check(stats, values: np.ndarray, bins: int = 256) -> None:
    """``stats`` equals NumPy on ``values`` (pixels x channels)."""
    values = values.reshape(len(values), -1)
    assert stats.count == len(values)
    for c in range(values.shape[1]):
        v = values[:, c]
        assert stats.min[c] == v.min() and stats.max[c] == v.max()
        if v.dtype.kind in "iu":
            assert stats.mean[c] == v.mean()  # exact integer sums (NumPy's float64 sum is exact here too)
        else:
            assert stats.mean[c] == pytest.approx(v.astype(np.float64).mean(), rel=1e-13)
        assert stats.std[c] == pytest.approx(v.astype(np.float64).std(), rel=1e-12)
        counts, edges = _reference_histogram(v, bins)
        assert np.array_equal(stats.histogram[c], counts)
        assert np.array_equal(stats.bin_edges[c], edges)


POLY = [(10.3, 20.7), (800.2, 50.1), (600.5, 650.9), (300.1, 400.4), (450.7, 300.2), (50.2, 600.6)]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "int32", "float32", "uint64"])
def test_polygon_stats_equal_numpy(tmp_path: Path, dtype: str) -> None:
    from skimage import data

    img = np.tile(data.camera(), (2, 2))[:700, :900].astype(np.int64)
    if dtype == "float32":
        arr = (img / 7.3).astype(np.float32)
    elif dtype == "uint64":
        arr = (img.astype(np.uint64) * np.uint64(2**40) + np.uint64(12345))
    elif dtype == "int16":
        arr = (img * 100 - 12000).astype(np.int16)
    elif dtype == "int32":
        arr = (img * 1_000_003 - 10**8).astype(np.int32)
    else:
        arr = (img * (257 if dtype == "uint16" else 1)).astype(dtype)
    path = Mzarr(arr).save(tmp_path / "a.mzarr", chunks=(128, 128))
    poly = Annotation("polygon", POLY)
    mask = _centres_in_polygon(arr.shape, POLY)
    calls: list[tuple[int, int]] = []
    with Mzarr(path) as m:
        stats = region_stats(m, poly, window=256, progress=lambda d, t: calls.append((d, t)))
    _check(stats, arr[mask])
    assert calls and calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == list(range(1, len(calls) + 1))
    assert stats.area is None  # no spacing


def test_rectangle_and_ellipse_rgb_per_channel_with_physical_area(tmp_path: Path) -> None:
    from skimage import data

    rgb = data.astronaut()  # 512 x 512 x 3
    path = Mzarr(rgb, spacing=(0.5, 0.25), unit="micrometer").save(tmp_path / "rgb.mzarr")
    with Mzarr(path) as m:
        rect = region_stats(m, Annotation("rectangle", [(300.2, 40.6), (100.4, 250.5)]), window=128)
        ell = region_stats(m, Annotation("ellipse", [(100.2, 100.7), (400.9, 300.3)]), window=128)
    # rectangle: centres c + 0.5 in [100.4, 300.2) -> columns 100..299; rows 41..249
    _check(rect, rgb[41:250, 100:300].reshape(-1, 3))
    assert rect.channels == 3 and rect.count == 209 * 200
    assert rect.area == pytest.approx(209 * 200 * 0.5 * 0.25) and rect.unit == "micrometer"
    rr, cc = np.mgrid[0:512, 0:512]
    inside = ((cc + 0.5 - 250.55) / 150.35) ** 2 + ((rr + 0.5 - 200.5) / 99.8) ** 2 <= 1
    _check(ell, rgb[inside])


@pytest.mark.parametrize("axis", ["z", "y", "x"])
def test_volume_planes_any_axis(tmp_path: Path, axis: str) -> None:
    rng = np.random.default_rng(3)
    vol = rng.integers(0, 4000, (20, 70, 90), dtype=np.uint16)
    path = Mzarr(vol, spacing=(2.0, 0.5, 0.25), unit="millimeter").save(tmp_path / "v.mzarr")
    index = 7
    plane = np.take(vol, index, axis="zyx".index(axis))  # rows, cols = the other two axes in order
    h, w = plane.shape
    pts = [(1.2, 1.7), (w - 3.3, 2.1), (w / 2 + 0.3, h - 1.4)]
    with Mzarr(path) as m:
        stats = region_stats(m, Annotation("polygon", pts, plane=(axis, index)), window=32)
        with pytest.raises(MzarrValueError, match="no plane"):
            region_stats(m, Annotation("polygon", pts))
    _check(stats, plane[_centres_in_polygon(plane.shape, pts)])
    sp = {"z": 2.0, "y": 0.5, "x": 0.25}
    rows, cols = [a for a in "zyx" if a != axis]
    assert stats.area == pytest.approx(stats.count * sp[rows] * sp[cols])


def test_nan_and_inf_are_counted_and_left_out_of_float_statistics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """PET / parameter maps mark "no data" with NaN: statistics over the finite pixels equal NumPy's on them, the NaN,
    +Inf and -Inf pixels are counted beside them (also in the CLI's lines), across windows and channels."""
    rng = np.random.default_rng(5)
    arr = rng.normal(10, 3, (300, 260, 2)).astype(np.float32)
    arr[10:60, 20:90, 0] = np.nan
    arr[100, 5:8, 0] = np.inf
    arr[200, 100, 0] = -np.inf
    arr[150:170, 150:170, 1] = np.nan
    path = Mzarr(arr, axes="yxc").save(tmp_path / "nan.mzarr", chunks=(64, 64, 2))
    with Mzarr(path) as m:
        stats = region_stats(m, Annotation("rectangle", [(0, 0), (260, 300)]), window=64)
        all_nan = region_stats(m, Annotation("rectangle", [(25, 15), (45, 35)]), window=64)
    assert stats.count == 300 * 260
    assert stats.nan == (50 * 70, 20 * 20) and stats.posinf == (3, 0) and stats.neginf == (1, 0)
    for c in range(2):
        v = arr[..., c].ravel()
        _check_finite = v[np.isfinite(v)]
        assert stats.finite(c) == _check_finite.size
        assert stats.min[c] == _check_finite.min() and stats.max[c] == _check_finite.max()
        assert stats.mean[c] == pytest.approx(_check_finite.astype(np.float64).mean(), rel=1e-13)
        assert stats.std[c] == pytest.approx(_check_finite.astype(np.float64).std(), rel=1e-12)
        counts, edges = np.histogram(_check_finite, 256)
        assert np.array_equal(stats.histogram[c], counts) and np.array_equal(stats.bin_edges[c], edges)
    text = "\n".join(stats.lines())
    assert "non-finite (channel 0): 3500 NaN, 3 +Inf, 1 -Inf (left out: statistics over 74496 finite px)" in text
    assert "non-finite (channel 1): 400 NaN (left out" in text
    # a region of NaN only in channel 0: no statistics there (NaN), channel 1 still measured
    assert all_nan.count == 400 and all_nan.nan[0] == 400 and math.isnan(all_nan.mean[0]) and math.isnan(all_nan.min[0])
    assert all_nan.histogram[0].size == 0 and all_nan.mean[1] == pytest.approx(arr[15:35, 25:45, 1].mean(dtype=np.float64))
    # the CLI's JSON: the counts beside the statistics, null (JSON has no NaN) where a channel has no finite pixel
    import json

    from mzarr_core.cli import main

    assert main(["stats", str(path), "--rect", "25,15,45,35", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["nan"] == [400, 0] and out["posinf"] == [0, 0] and out["neginf"] == [0, 0]
    assert out["finite"] == [0, 400] and out["mean"][0] is None and out["min"][0] is None
    assert out["mean"][1] == pytest.approx(arr[15:35, 25:45, 1].mean(dtype=np.float64))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32"])
def test_integer_histogram_bins_hold_whole_values(tmp_path: Path, dtype: str) -> None:
    """Integers spanning 341 values in 256 bins: NumPy's 1.33-wide bins leave every third one empty; the bins hold
    2 whole values each (171 bins, edges at half-integers), none empty for data covering every value."""
    values = np.arange(-100, 241) if dtype != "uint8" else np.arange(0, 200)
    arr = np.tile(values, (3, 1)).astype(dtype)
    path = Mzarr(arr).save(tmp_path / "i.mzarr")
    with Mzarr(path) as m:
        stats = region_stats(m, Annotation("rectangle", [(0, 0), (arr.shape[1], 3)]))
    h, e = stats.histogram[0], stats.bin_edges[0]
    if dtype == "uint8":  # 200 values <= 256 bins: one bin per value
        assert len(h) == 200 and (h == 3).all() and e[0] == -0.5 and e[-1] == 199.5
    else:
        assert len(h) == 171 and (h[:-1] == 6).all() and h[-1] == 3 and e[0] == -100.5 and e[1] == -98.5
    assert h.sum() == arr.size and (h > 0).all()


def test_cancel_from_progress_stops_reading(tmp_path: Path) -> None:
    arr = np.zeros((1024, 1024), np.uint8)
    path = Mzarr(arr).save(tmp_path / "z.mzarr", chunks=(128, 128))
    seen = []

    def cancel(done: int, total: int) -> None:
        seen.append(done)
        if done == 3:
            raise SaveCancelled("stop")

    with Mzarr(path) as m, pytest.raises(SaveCancelled):
        region_stats(m, Annotation("rectangle", [(0, 0), (1024, 1024)]), window=128, progress=cancel)
    assert seen == [1, 2, 3]


def test_windows_outside_the_shape_are_not_read(tmp_path: Path) -> None:
    """A thin diagonal polygon across a big image reads the chunks it crosses, not its whole bounding box."""
    arr = np.arange(2048 * 2048, dtype=np.uint32).reshape(2048, 2048) % 65521
    path = Mzarr(arr).save(tmp_path / "d.mzarr", chunks=(128, 128))
    pts = [(0.3, 0.3), (10.3, 0.3), (2048, 2038.3), (2048, 2048), (2038.3, 2048), (0.3, 10.3)]  # no centre on an edge
    with Mzarr(path) as m:
        m.clear_cache()
        stats = region_stats(m, Annotation("polygon", pts), window=128, bins=0)
        read = m.cache_info().misses
    _check_mask = _centres_in_polygon(arr.shape, pts)
    assert stats.count == int(_check_mask.sum())
    assert stats.mean[0] == arr[_check_mask].mean() and stats.histogram == ()
    assert read <= 3 * 16 + 2  # the band crosses ~3 chunks per chunk row, of 256 in the bounding box


def test_region_mask_edges_follow_pixel_centres() -> None:
    # a square exactly on pixel edges covers exactly those pixels; a centre on the left/top edge is inside
    sq = Annotation("polygon", [(2, 3), (6, 3), (6, 8), (2, 8)])
    expected = np.zeros((10, 10), bool)
    expected[3:8, 2:6] = True
    assert np.array_equal(region_mask(sq, (0, 10), (0, 10)), expected)
    assert np.array_equal(region_mask(sq.with_(kind="rectangle", points=[(2, 3), (6, 8)]), (0, 10), (0, 10)), expected)
    assert np.array_equal(region_mask(sq, (4, 9), (1, 5)), expected[4:9, 1:5])  # any window
    tri = Annotation("polygon", [(0.5, 0.5), (9.5, 0.5), (0.5, 9.5)])  # centres on the hypotenuse
    m = region_mask(tri, (0, 10), (0, 10))
    assert m.sum() == 45 and m[0, 0] and not m[9, 0]


def test_stats_refuse_points_and_lines() -> None:
    m = Mzarr(np.zeros((10, 10), np.uint8))
    with pytest.raises(MzarrValueError, match="rectangle, ellipse or polygon"):
        region_stats(m, Annotation("line", [(0, 0), (3, 3)]))
    empty = region_stats(m, Annotation("rectangle", [(20, 20), (30, 30)]))  # outside the image
    assert empty.count == 0 and math.isnan(empty.mean[0])


def test_line_length_and_profile(tmp_path: Path) -> None:
    from skimage import data

    img = data.camera()
    path = Mzarr(img, spacing=(0.5, 0.25), unit="micrometer").save(tmp_path / "c.mzarr", chunks=(64, 64))
    line = Annotation("line", [(10.5, 20.5), (410.5, 320.5)])
    assert line_length(line) == 500.0
    assert line_length(line, (0.5, 0.25)) == pytest.approx(math.hypot(400 * 0.25, 300 * 0.5))
    with Mzarr(path) as m:
        prof = line_profile(m, line)
    assert prof.length == pytest.approx(math.hypot(100, 150)) and prof.length_px == 500 and prof.unit == "micrometer"
    n = len(prof.values)
    assert n == 501 and prof.distance[0] == 0 and prof.distance[-1] == pytest.approx(prof.length)
    t = np.linspace(0, 1, 501)
    expected = img[np.floor(20.5 + 300 * t).astype(int), np.floor(10.5 + 400 * t).astype(int)]
    assert np.array_equal(prof.values, expected)
    # a polyline on a volume's x plane, RGB-free: values from that plane
    vol = np.random.default_rng(1).integers(0, 60000, (30, 40, 50), dtype=np.uint16)
    vpath = Mzarr(vol).save(tmp_path / "v.mzarr")
    poly = Annotation("line", [(0.5, 0.5), (30.5, 0.5), (30.5, 20.5)], plane=("x", 4))  # x = y axis, y = z axis
    with Mzarr(vpath) as m:
        prof = line_profile(m, poly)
    assert len(prof.values) == 31 + 20
    assert np.array_equal(prof.values[:31], vol[0, 0:31, 4])
    assert np.array_equal(prof.values[31:], vol[1:21, 30, 4])


def test_cli_stats(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    from skimage import data

    from mzarr_core.cli import main

    img = data.camera()
    path = Mzarr(img, spacing=(0.5, 0.5), unit="micrometer").save(tmp_path / "c.mzarr")
    assert main(["stats", str(path), "--rect", "10,20,110,70", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    region = img[20:70, 10:110]
    assert out["count"] == 5000 and out["area"] == 1250.0 and out["mean"] == [region.mean()]
    assert out["area_unit"] == "micrometer^2" and out["unit"] == "micrometer" and out["value_unit"] is None
    assert out["min"] == [region.min()] and out["histogram"][0] == _reference_histogram(region.ravel(), 256)[0].tolist()
    assert main(["stats", str(path), "--polygon", "0,0,100,0,0,100", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "area:   " in text and "micrometer²" in text and "mean: " in text
    assert main(["stats", str(path), "--line", "0.5,0.5,30.5,40.5", "--quiet"]) == 0
    assert "length: 25 micrometer (50 px), 51 samples" in capsys.readouterr().out
    assert main(["stats", str(path), "--rect", "1,2,3", "--quiet"]) == 2
    assert "--rect takes 4 numbers" in capsys.readouterr().err
    assert main(["stats", str(path), "--rect", "9000,9000,9100,9100", "--quiet"]) == 2
    assert "no pixel of the image" in capsys.readouterr().err
    assert main(["stats", str(path), "--rect", "1,2,3,4", "--plane", "z=1", "--quiet"]) == 2
    assert "the image is 2D" in capsys.readouterr().err
    # a volume: the plane named in the CLI's words, checked against the volume
    vol = Mzarr(np.arange(4 * 30 * 40, dtype=np.uint16).reshape(4, 30, 40)).save(tmp_path / "v.mzarr")
    assert main(["stats", str(vol), "--rect", "0,0,10,10", "--quiet"]) == 2
    assert "--plane AXIS=INDEX, e.g. --plane z=10" in capsys.readouterr().err
    assert main(["stats", str(vol), "--rect", "0,0,10,10", "--plane", "z=9", "--quiet"]) == 2
    assert "--plane z=9 is beyond the volume: axis z has planes 0..3" in capsys.readouterr().err
    assert main(["stats", str(vol), "--rect=0,0,10,10", "--plane", "z=2", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["mean"] == [float(np.arange(4 * 30 * 40).reshape(4, 30, 40)[2, :10, :10].mean())]


def test_stats_give_the_area_unit_and_the_value_unit_of_a_ct(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """QA: ``stats --json`` said ``"unit": "millimeter"`` for an area and gave values without a unit. The area's unit
    is ``area_unit`` ("millimeter^2"); a CT's values are in HU (what the DICOM reader records), in the JSON of a
    region and of a line and after the text's numbers; stored values of an unapplied rescale, and label images, have
    none; another recorded RescaleType (an applied PET rescale) is its own unit."""
    import json

    from mzarr_core.cli import main
    from mzarr_core.regions import value_unit

    hu = (np.arange(40 * 50, dtype=np.int16).reshape(40, 50) - 1000).astype(np.int16)
    ct = Mzarr(hu, spacing=(0.7, 0.7), unit="millimeter",
               attrs={"dicom": {"Modality": "CT", "rescale": {"type": "HU", "slope": 1, "intercept": -1024}}}
               ).save(tmp_path / "ct.mzarr")
    assert main(["stats", str(ct), "--rect", "0,0,10,10", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["area"], out["area_unit"], out["unit"], out["value_unit"]) == (pytest.approx(49.0), "millimeter^2",
                                                                              "millimeter", "HU")
    assert out["mean"] == [float(hu[:10, :10].mean())]
    assert main(["stats", str(ct), "--rect", "0,0,10,10", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "49 millimeter²" in text and text.splitlines()[1].endswith("(HU)")
    assert main(["stats", str(ct), "--line", "0.5,0.5,9.5,0.5", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["value_unit"] == "HU"
    stored = Mzarr(hu.astype(np.uint16), attrs={"dicom": {"Modality": "CT", "rescale": {
        "type": "HU", "slope": 1, "intercept": -1024, "applied": False}}})
    pet = Mzarr(np.ones((8, 8), np.float32), attrs={"dicom": {"Modality": "PT", "rescale": {"type": "BQML"}}})
    plain = Mzarr(np.ones((8, 8), np.int16))
    segmentation = Mzarr(np.ones((8, 8), np.int16), is_label=True, attrs={"dicom": {"Modality": "CT"}})
    assert [value_unit(m) for m in (stored, pet, plain, segmentation)] == [None, "BQML", None, None]


def test_region_mask_windows_without_edges_are_wholly_in_or_out() -> None:
    """A window no edge reaches is decided by one centre: inside a U-shaped polygon's arms, in its notch, and out."""
    u = Annotation("polygon", [(0.5, 0.5), (90.5, 0.5), (90.5, 90.5), (60.5, 90.5), (60.5, 30.5), (30.5, 30.5),
                               (30.5, 90.5), (0.5, 90.5)])
    full = _centres_in_polygon((100, 100), [tuple(p) for p in u.points])
    for rows, cols in (((40, 60), (5, 25)), ((40, 60), (35, 55)), ((5, 25), (5, 85)), ((92, 99), (0, 99))):
        m = region_mask(u, rows, cols)
        assert np.array_equal(m, full[rows[0]:rows[1], cols[0]:cols[1]])
    assert region_mask(u, (40, 60), (5, 25)).all() and not region_mask(u, (40, 60), (35, 55)).any()
