"""Voxel sizes of TIFF files written by tifffile the way ImageJ/Fiji, microscopes and Mzarr's own export write them
(QA: ImageJ stacks and Mzarr's .tif export lost their spacing; OME-TIFF's per-axis units were ignored)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from mzarr_core import Mzarr, convert, export
from mzarr_core.errors import MzarrWarning


def _import(tmp_path: Path, src: Path) -> Mzarr:
    out = convert(src, tmp_path / (src.name + ".mzarr"))
    return Mzarr(out)


VOL = (np.arange(6 * 40 * 50) % 251).astype(np.uint8).reshape(6, 40, 50)


@pytest.mark.parametrize("unit, expected_unit", [("um", "micrometer"), ("micron", "micrometer"),
                                                 ("\\u00B5m", "micrometer"), ("nm", "nanometer")])
def test_imagej_hyperstack_resolution_and_spacing(tmp_path: Path, unit: str, expected_unit: str) -> None:
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, VOL, imagej=True, resolution=(1 / 0.26, 1 / 0.3),
                     metadata={"axes": "ZYX", "spacing": 0.5, "unit": unit})
    with _import(tmp_path, path) as m:
        assert m.spacing == (0.5, 0.3, 0.26) and m.unit == expected_unit
        assert np.array_equal(m.numpy(), VOL)


def test_imagej_stack_without_spacing_has_imagejs_depth_of_one_unit(tmp_path: Path) -> None:
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, VOL, imagej=True, resolution=(4.0, 4.0), metadata={"axes": "ZYX", "unit": "mm"})
    with _import(tmp_path, path) as m:
        assert m.spacing == (1.0, 0.25, 0.25) and m.unit == "millimeter"


def test_resolution_tags_in_centimetres_and_inch_dpi(tmp_path: Path) -> None:
    img = VOL[0]
    cm = tmp_path / "cm.tif"
    tifffile.imwrite(cm, img, resolution=(1 / 0.65e-4, 1 / 0.65e-4), resolutionunit="CENTIMETER")
    with _import(tmp_path, cm) as m:
        assert m.spacing == (0.65, 0.65) and m.unit == "micrometer"
    dpi = tmp_path / "dpi.tif"  # a photo's 72 dpi is print size, not a calibration
    tifffile.imwrite(dpi, img, resolution=(72, 72), resolutionunit="INCH")
    with _import(tmp_path, dpi) as m:
        assert m.spacing is None
    stack = tmp_path / "stack_cm.tif"  # a volume with no z size in the file: no guessed spacing
    tifffile.imwrite(stack, VOL, resolution=(1e4, 1e4), resolutionunit="CENTIMETER")
    with _import(tmp_path, stack) as m:
        assert m.spacing is None and np.array_equal(m.numpy(), VOL)


def test_mzarr_tif_export_round_trips_spacing_and_axes(tmp_path: Path) -> None:
    vol = np.stack([VOL, VOL[::-1]], axis=0).astype(np.uint16)  # c, z, y, x
    src = Mzarr(vol, axes="czyx", spacing=(0.35, 0.26, 0.13), unit="micrometer").save(tmp_path / "s.mzarr")
    with Mzarr(src) as m:
        export(m, tmp_path / "s.tif")
    with tifffile.TiffFile(tmp_path / "s.tif") as t:  # the resolution tags are there for other readers too
        assert t.pages.first.resolution == pytest.approx((1 / 0.13e-4, 1 / 0.26e-4))
    with _import(tmp_path, tmp_path / "s.tif") as m:
        assert m.spacing == (0.35, 0.26, 0.13) and m.unit == "micrometer" and m.axes == "czyx"
        assert np.array_equal(m.numpy(), vol)


def test_ome_tiff_per_axis_units_are_converted_to_one(tmp_path: Path) -> None:
    path = tmp_path / "u.ome.tif"
    tifffile.imwrite(path, VOL, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.1,
        "PhysicalSizeYUnit": "µm", "PhysicalSizeZ": 500, "PhysicalSizeZUnit": "nm"})
    with _import(tmp_path, path) as m:
        assert m.spacing == (0.5, 0.1, 0.1) and m.unit == "micrometer"
    nm = tmp_path / "nm.ome.tif"  # the plane's unit wins: x/y in nm, z in µm -> nanometres
    tifffile.imwrite(nm, VOL, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 65, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 65,
        "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 0.2, "PhysicalSizeZUnit": "µm"})
    with _import(tmp_path, nm) as m:
        assert m.spacing == (200.0, 65.0, 65.0) and m.unit == "nanometer"
    default = tmp_path / "d.ome.tif"  # no unit attributes: OME's default micrometre
    tifffile.imwrite(default, VOL, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2, "PhysicalSizeZ": 1.5})
    with _import(tmp_path, default) as m:
        assert m.spacing == (1.5, 0.2, 0.2) and m.unit == "micrometer"
    px = tmp_path / "px.ome.tif"
    tifffile.imwrite(px, VOL, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 1, "PhysicalSizeXUnit": "pixel", "PhysicalSizeY": 1,
        "PhysicalSizeYUnit": "pixel", "PhysicalSizeZ": 1, "PhysicalSizeZUnit": "pixel"})
    with pytest.warns(MzarrWarning, match="'pixel' is not a length unit"):
        m = _import(tmp_path, px)
    with m:
        assert m.spacing is None
