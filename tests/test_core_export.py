"""Exports (``mzarr export`` / ``mzarr_core.formats.export``): pyramidal OME-TIFF, TIFF, NIfTI, NRRD, MetaImage, .npy.

Round trips on real data: a file X (nibabel's MRI volumes with their real affines, scikit-image's photographs, NRRD
and MetaImage files written by hand or by pynrrd / SimpleITK) is converted to .mzarr and exported back to X', and
X' is read by the reference tool (nibabel, tifffile, pynrrd, SimpleITK): pixels bit-exact, spacing, origin and
direction equal (float32 NIfTI fields within their precision). Every level of an OME-TIFF pyramid is read back
with tifffile and compared with the file's own levels. Exports are streamed (blocks bounded, checked), report
progress and leave no partial file when cancelled or failing.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import ALL_DTYPES, extreme_array, smooth_array, temp_leftovers

import mzarr_core
from mzarr import Mzarr
from mzarr_core import formats
from mzarr_core.cli import main
from mzarr_core.errors import MzarrError, MzarrValueError, SaveCancelled
from mzarr_core.formats import selection
from mzarr_core.pyramid import downsample

nibabel = pytest.importorskip("nibabel", reason="nibabel (test extra) reads and checks the NIfTI files")
NIB_DATA = Path(nibabel.__file__).parent / "tests" / "data"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def oblique_nifti(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """nibabel's example_nifti2 (an oblique MRI acquisition): its first volume, int16, with its real affine."""
    img = nibabel.load(NIB_DATA / "example_nifti2.nii.gz")
    data = np.ascontiguousarray(np.asarray(img.dataobj)[..., 0])
    path = tmp_path / "oblique.nii.gz"
    nibabel.save(nibabel.Nifti1Image(data, img.affine), path)
    return path, data, img.affine


# -- NIfTI ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_round_trip_keeps_pixels_and_affine(tmp_path, capsys, suffix):
    src, data, affine = oblique_nifti(tmp_path)
    assert run(capsys, "convert", src, tmp_path / "o.mzarr", "--quiet")[0] == 0
    code, out, err = run(capsys, "export", tmp_path / "o.mzarr", tmp_path / f"back{suffix}")
    assert code == 0 and f"wrote {tmp_path / f'back{suffix}'}" in out and "exporting" in err and "100%" in err
    back = nibabel.load(tmp_path / f"back{suffix}")
    assert back.get_data_dtype() == np.int16 and back.shape == data.shape
    assert np.array_equal(np.asarray(back.dataobj), data)
    assert np.allclose(back.affine, affine, atol=2e-5)  # pixdim are float32 in NIfTI-1
    assert back.header.get_xyzt_units()[0] == "mm"
    assert int(back.header["sform_code"]) == 1 and int(back.header["qform_code"]) == 1
    if suffix == ".nii.gz":
        assert (tmp_path / f"back{suffix}").read_bytes()[:2] == b"\x1f\x8b"
    # the real anatomical volume, big-endian on disk, too
    assert run(capsys, "convert", NIB_DATA / "anatomical.nii", tmp_path / "a.mzarr", "--quiet")[0] == 0
    assert run(capsys, "export", tmp_path / "a.mzarr", tmp_path / f"a{suffix}", "--quiet")[0] == 0
    original = nibabel.load(NIB_DATA / "anatomical.nii")
    back = nibabel.load(tmp_path / f"a{suffix}")
    assert np.array_equal(np.asarray(back.dataobj), np.asarray(original.dataobj))
    assert np.allclose(back.affine, original.affine, atol=1e-6)


def test_nifti_levels_regions_and_slices_keep_world_positions(tmp_path):
    """A level, a region, a reversed axis and a single slice: every exported voxel sits where it sat."""
    src, data, affine = oblique_nifti(tmp_path)
    mzarr_core.convert(src, tmp_path / "o.mzarr", levels=2)
    m = Mzarr(tmp_path / "o.mzarr")
    # region (z, y, x order): the exported voxel (0, 0, 0) is the original voxel (x=4, y=3, z=2)
    formats.export(m, tmp_path / "r.nii", region=(slice(2, 10), slice(3, 15), slice(4, 30)))
    r = nibabel.load(tmp_path / "r.nii")
    assert np.array_equal(np.asarray(r.dataobj), data[4:30, 3:15, 2:10])
    assert np.allclose(r.affine[:3, :3], affine[:3, :3], atol=2e-5)
    assert np.allclose(r.affine @ [0, 0, 0, 1], affine @ [4, 3, 2, 1], atol=1e-4)
    # level 1: voxels twice as large, the first one centred between the first two of level 0
    formats.export(m, tmp_path / "l1.nii", level=1)
    l1 = nibabel.load(tmp_path / "l1.nii")
    assert np.array_equal(np.asarray(l1.dataobj), m.level(1).numpy().T)
    assert np.allclose(l1.affine[:3, :3], 2 * affine[:3, :3], atol=5e-5)
    assert np.allclose(l1.affine @ [0, 0, 0, 1], affine @ [0.5, 0.5, 0.5, 1], atol=1e-4)
    # one z slice: an (x, y, 1) image at its place
    formats.export(m, tmp_path / "z.nii", region=(5,))
    z = nibabel.load(tmp_path / "z.nii")
    assert z.shape == (data.shape[0], data.shape[1], 1)
    assert np.array_equal(np.asarray(z.dataobj)[..., 0], data[:, :, 5])
    assert np.allclose(z.affine @ [0, 0, 0, 1], affine @ [0, 0, 5, 1], atol=1e-4)
    # z reversed: the direction flips, the first voxel is the last slice
    formats.export(m, tmp_path / "f.nii", region=(slice(None, None, -1),))
    f = nibabel.load(tmp_path / "f.nii")
    assert np.array_equal(np.asarray(f.dataobj), data[:, :, ::-1])
    assert np.allclose(f.affine @ [0, 0, 0, 1], affine @ [0, 0, data.shape[2] - 1, 1], atol=1e-4)
    assert np.allclose(f.affine[:3, 2], -affine[:3, 2], atol=2e-5)
    m.close()


# -- NRRD and MetaImage ------------------------------------------------------------------------------------------------
def _oblique_nrrd(path: Path, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.array([[1.9, 0.3, 0.0], [-0.3, 1.9, 0.1], [0.0, -0.2, 2.5]])  # rows: the x, y, z axis steps
    origin = np.array([-90.25, 126.5, -72.0])
    header = ("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
              f"sizes: {a.shape[2]} {a.shape[1]} {a.shape[0]}\n"
              "space directions: "
              + " ".join("(" + ",".join(repr(float(v)) for v in row) + ")" for row in vectors) + "\n"
              "kinds: domain domain domain\nendian: little\nencoding: raw\n"
              "space origin: (" + ",".join(repr(float(v)) for v in origin) + ")\n\n")
    path.write_bytes(header.encode() + a.astype("<i2").tobytes())
    return vectors, origin


def test_nrrd_round_trip_and_to_nifti(tmp_path, capsys):
    """A real MRI volume as an oblique NRRD -> .mzarr -> NRRD (bit-exact pixels, same geometry) and -> NIfTI (the
    same world positions, LPS turned into RAS)."""
    img = nibabel.load(NIB_DATA / "anatomical.nii")
    a = np.ascontiguousarray(np.asarray(img.dataobj).T.astype("<i2"))
    vectors, origin = _oblique_nrrd(tmp_path / "anat.nrrd", a)
    assert run(capsys, "convert", tmp_path / "anat.nrrd", tmp_path / "anat.mzarr", "--quiet")[0] == 0
    assert run(capsys, "export", tmp_path / "anat.mzarr", tmp_path / "back.nrrd", "--quiet")[0] == 0
    back = formats.read(tmp_path / "back.nrrd")
    assert np.array_equal(np.asarray(back.array[...]), a) and back.axes == "zyx"
    g = back.attrs["geometry"]
    assert g["space"] == "LPS" and np.allclose(g["origin"], origin, rtol=1e-15)
    assert np.allclose(np.asarray(g["direction"]) * np.asarray(back.spacing[::-1]), vectors.T, rtol=1e-14)
    text = (tmp_path / "back.nrrd").read_bytes().split(b"\n\n")[0].decode()
    assert "encoding: gzip" in text and 'space units: "mm" "mm" "mm"' in text
    try:
        import nrrd
    except ImportError:
        nrrd = None
    if nrrd is not None:  # and pynrrd agrees
        data, hdr = nrrd.read(str(tmp_path / "back.nrrd"))
        assert np.array_equal(data.T, a) and np.allclose(hdr["space directions"], vectors, rtol=1e-14)
    # to NIfTI: world = origin + vectors @ index, in RAS
    assert run(capsys, "export", tmp_path / "anat.mzarr", tmp_path / "anat.nii.gz", "--quiet")[0] == 0
    nii = nibabel.load(tmp_path / "anat.nii.gz")
    assert np.array_equal(np.asarray(nii.dataobj).T, a)
    for ijk in ([0, 0, 0], [5, 7, 3], [32, 40, 24]):
        world_lps = origin + np.asarray(ijk, float) @ vectors
        assert np.allclose(nii.affine @ [*ijk, 1], [*(LPS_TO_RAS @ world_lps), 1], atol=1e-4)
    # and back from NIfTI to NRRD: the RAS affine becomes an RAS NRRD
    mzarr_core.convert(tmp_path / "anat.nii.gz", tmp_path / "from_nii.mzarr")
    formats.export(tmp_path / "from_nii.mzarr", tmp_path / "from_nii.nrrd")
    again = formats.read(tmp_path / "from_nii.nrrd")
    ga = again.attrs["geometry"]
    assert ga["space"] == "RAS" and np.array_equal(np.asarray(again.array[...]), a)
    assert np.allclose(ga["origin"], nii.affine[:3, 3], atol=1e-5)


def test_metaimage_round_trip_cross_checked_with_simpleitk(tmp_path, capsys):
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK is not installed (pip install SimpleITK) "
                                                   "for the cross-check")
    img = nibabel.load(NIB_DATA / "anatomical.nii")
    a = np.ascontiguousarray(np.asarray(img.dataobj).T.astype("<i2"))
    s = sitk.GetImageFromArray(a)
    s.SetSpacing((0.7, 0.8, 3.0))
    s.SetOrigin((11.0, -3.5, 42.0))
    th = np.deg2rad(-15)
    direction = np.array([[1, 0, 0], [0, np.cos(th), -np.sin(th)], [0, np.sin(th), np.cos(th)]])
    s.SetDirection(direction.reshape(-1).tolist())
    sitk.WriteImage(s, str(tmp_path / "in.mha"), useCompression=True)
    assert run(capsys, "convert", tmp_path / "in.mha", tmp_path / "m.mzarr", "--quiet")[0] == 0
    for name in ("out.mha", "out.nrrd", "out.nii.gz"):
        assert run(capsys, "export", tmp_path / "m.mzarr", tmp_path / name, "--quiet")[0] == 0
        back = sitk.ReadImage(str(tmp_path / name))
        assert np.array_equal(sitk.GetArrayFromImage(back), a), name
        tol = 1e-6 if name.endswith(".nii.gz") else 1e-14
        assert np.allclose(back.GetSpacing(), (0.7, 0.8, 3.0), rtol=tol), name
        assert np.allclose(back.GetOrigin(), (11.0, -3.5, 42.0), rtol=tol, atol=tol), name
        assert np.allclose(np.reshape(back.GetDirection(), (3, 3)), direction, atol=1e-6 if tol == 1e-6 else 1e-14)
    header = (tmp_path / "out.mha").read_bytes()[:600].decode("latin-1")
    assert "CompressedData = True" in header and "ElementType = MET_SHORT" in header


def _rotation(axis: tuple[float, ...], degrees: float) -> np.ndarray:
    """The rotation by ``degrees`` about ``axis`` (Rodrigues' formula)."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = np.deg2rad(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


# LPS directions (columns: the x, y, z index axes) and the AnatomicalOrientation SimpleITK 2.5.7 (ITK 5.4) writes
# for them: per index axis the side it comes from; oblique ones get the nearest axes, matched largest cosine first
ITK_ORIENTATIONS = [
    (np.eye(3), "RAI"),
    (np.diag([-1.0, -1.0, 1.0]), "LPI"),
    (np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]), "RSA"),  # coronal planes
    (np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), "PSR"),  # sagittal planes
    (_rotation((0, 0, 1), 135), "ALI"),
    (_rotation((1, -2, 0.5), 100), "IAL"),
    (_rotation((3, 1, 2), 60), "RIP"),  # two index axes nearest the same world axis: the larger cosine wins it
]


def test_metaimage_orientation_follows_the_direction(tmp_path):
    """The exported AnatomicalOrientation is the direction's ITK code (not always RAI), and the file reads back
    with the same direction, origin and spacing; a RAS geometry is written in LPS; no anatomical frame, no code."""
    a = smooth_array((4, 5, 6), "uint16", seed=1)
    origin = [12.5, -40.25, 7.0]
    for k, (direction, code) in enumerate(ITK_ORIENTATIONS):
        geometry = {"space": "LPS", "origin": origin, "direction": direction.tolist()}
        Mzarr(a, spacing=(2.0, 0.75, 0.5), unit="millimeter", attrs={"geometry": geometry}).save(tmp_path / f"{k}.mzarr")
        formats.export(tmp_path / f"{k}.mzarr", tmp_path / f"{k}.mha")
        header = (tmp_path / f"{k}.mha").read_bytes()[:800].decode("latin-1")
        assert f"\nAnatomicalOrientation = {code}\n" in header, (code, header)
        back = formats.read(tmp_path / f"{k}.mha")
        g = back.attrs["geometry"]
        assert back.attrs["metaimage_orientation"] == code and g["space"] == "LPS"
        assert np.allclose(g["direction"], direction, atol=1e-15) and g["origin"] == origin, code
        assert back.spacing == (2.0, 0.75, 0.5) and np.array_equal(np.asarray(back.array[...]), a)
    ras = {"space": "RAS", "origin": origin, "direction": np.eye(3).tolist()}  # RAS identity = LPS diag(-1, -1, 1)
    Mzarr(a, spacing=(2.0, 0.75, 0.5), unit="millimeter", attrs={"geometry": ras}).save(tmp_path / "ras.mzarr")
    formats.export(tmp_path / "ras.mzarr", tmp_path / "ras.mha")
    assert "\nAnatomicalOrientation = LPI\n" in (tmp_path / "ras.mha").read_bytes()[:800].decode("latin-1")
    Mzarr(a, spacing=(2.0, 0.75, 0.5), unit="micrometer").save(tmp_path / "grid.mzarr")  # a microscope stack
    formats.export(tmp_path / "grid.mzarr", tmp_path / "grid.mha")
    assert b"AnatomicalOrientation" not in (tmp_path / "grid.mha").read_bytes()[:800]


def test_metaimage_orientation_is_what_simpleitk_writes(tmp_path):
    """SimpleITK reads each exported file with the exported direction, origin and spacing, and writes the same
    AnatomicalOrientation for that image as our export."""
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK is not installed (pip install SimpleITK) "
                                                   "for the cross-check")
    a = smooth_array((4, 5, 6), "uint16", seed=1)
    for k, (direction, code) in enumerate(ITK_ORIENTATIONS):
        geometry = {"space": "LPS", "origin": [1.5, 2.0, -3.0], "direction": direction.tolist()}
        Mzarr(a, spacing=(2.0, 0.75, 0.5), unit="millimeter", attrs={"geometry": geometry}).save(tmp_path / f"{k}.mzarr")
        formats.export(tmp_path / f"{k}.mzarr", tmp_path / f"{k}.mha")
        back = sitk.ReadImage(str(tmp_path / f"{k}.mha"))
        assert np.allclose(np.reshape(back.GetDirection(), (3, 3)), direction, atol=1e-14), code
        assert back.GetOrigin() == (1.5, 2.0, -3.0) and back.GetSpacing() == (0.5, 0.75, 2.0)
        assert np.array_equal(sitk.GetArrayFromImage(back), a)
        sitk.WriteImage(back, str(tmp_path / f"{k}_itk.mha"))
        header = (tmp_path / f"{k}_itk.mha").read_bytes()[:800].decode("latin-1")
        theirs = re.search(r"AnatomicalOrientation = (\w+)", header)
        assert theirs is not None and theirs.group(1) == code


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_every_dtype_exports_exactly(tmp_path, dtype):
    """Extreme values of every Mzarr dtype survive NRRD, MetaImage, NIfTI, TIFF and .npy; bool is written as 0/1
    bytes and float16 as float32 where a format has no such type (values unchanged)."""
    a = extreme_array((5, 18, 21), dtype, seed=3)
    Mzarr(a, spacing=(2.0, 0.5, 0.25), unit="millimeter").save(tmp_path / "v.mzarr", chunks=(4, 16, 16))
    widened = {"bool": np.uint8, "float16": np.float32}.get(dtype)
    for name in ("v.nrrd", "v.mha", "v.nii", "v.tif", "v.npy"):
        formats.export(tmp_path / "v.mzarr", tmp_path / name)
        if name == "v.tif":
            got = tifffile.imread(tmp_path / name)
        elif name == "v.npy":
            got = np.load(tmp_path / name)
        else:
            src = formats.read(tmp_path / name)
            got = np.asarray(src.array[...])
            assert np.allclose(src.spacing, (2.0, 0.5, 0.25)), name
        expected = a.astype(widened) if widened and name not in ("v.npy",) else a
        if name == "v.tif" and dtype == "float16":
            expected = a  # TIFF holds half floats
        assert got.dtype == expected.dtype, (name, got.dtype)
        assert np.array_equal(got.view(np.uint8), np.ascontiguousarray(expected).view(np.uint8)), name


def test_channels_and_a_plane_of_a_volume(tmp_path):
    """czyx channels become the fastest (vector) axis of NRRD/MetaImage and the 5th NIfTI dimension; a single
    z-plane of an oblique volume keeps its place in space (NRRD: 2 axes in 3D space; MetaImage: a z of 1)."""
    c = smooth_array((3, 6, 40, 30), "uint16", seed=2)
    Mzarr(c, axes="czyx", spacing=(1.5, 0.5, 0.5), unit="millimeter").save(tmp_path / "c.mzarr")
    for name in ("c.nrrd", "c.mha", "c.nii.gz"):
        formats.export(tmp_path / "c.mzarr", tmp_path / name)
        src = formats.read(tmp_path / name)
        assert src.axes == "zyxc" and np.array_equal(np.asarray(src.array[...]), np.moveaxis(c, 0, -1)), name
    formats.export(tmp_path / "c.mzarr", tmp_path / "c.npy")
    assert np.array_equal(np.load(tmp_path / "c.npy"), c)  # .npy keeps the image's own axis order
    assert "kinds: vector domain domain domain" in (tmp_path / "c.nrrd").read_bytes().split(b"\n\n")[0].decode()
    assert nibabel.load(tmp_path / "c.nii.gz").header.get_intent()[0] == "vector"
    a = np.ascontiguousarray(np.asarray(nibabel.load(NIB_DATA / "anatomical.nii").dataobj).T.astype("<i2"))
    vectors, origin = _oblique_nrrd(tmp_path / "o.nrrd", a)
    mzarr_core.convert(tmp_path / "o.nrrd", tmp_path / "o.mzarr")
    formats.export(tmp_path / "o.mzarr", tmp_path / "plane.nrrd", region=(7, slice(2, 30)))
    plane = formats.read(tmp_path / "plane.nrrd")
    assert plane.axes == "yx" and np.array_equal(np.asarray(plane.array[...]), a[7, 2:30])
    g = plane.attrs["geometry"]
    assert np.asarray(g["direction"]).shape == (3, 2)
    assert np.allclose(g["origin"], origin + np.array([0, 2, 7]) @ vectors, rtol=1e-13)
    formats.export(tmp_path / "o.mzarr", tmp_path / "plane.mha", region=(7,))
    mha = formats.read(tmp_path / "plane.mha")
    assert mha.axes == "zyx" and np.array_equal(np.asarray(mha.array[...])[0], a[7])
    assert np.allclose(mha.attrs["geometry"]["origin"], origin + np.array([0, 0, 7]) @ vectors, rtol=1e-13)


# -- OME-TIFF ----------------------------------------------------------------------------------------------------------
def _ome_pixels(path: Path) -> dict[str, str]:
    with tifffile.TiffFile(path) as tif:
        found = re.search(r"<Pixels ([^>]*)>", tif.ome_metadata)
    return dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))


def test_ome_tiff_pyramid_is_every_level_of_the_file(tmp_path, capsys, real_rgb):
    """A real RGB photograph (and scikit-image's camera) with a physical pixel size: the OME-TIFF holds every level
    of the file as SubIFDs, tiled 256 x 256, deflate + predictor, PhysicalSize from the spacing; tifffile reads each
    level back bit-exact, and converting it again gives the same image."""
    import skimage.data

    for name, image in (("rgb", real_rgb), ("camera", skimage.data.camera())):
        chunks = (128, 128) + image.shape[2:]
        Mzarr(image, spacing=(0.25, 0.25)).save(tmp_path / f"{name}.mzarr", chunks=chunks)
        code, _, err = run(capsys, "export", tmp_path / f"{name}.mzarr", tmp_path / f"{name}.ome.tif")
        assert code == 0 and "100%" in err
        with Mzarr(tmp_path / f"{name}.mzarr") as m, tifffile.TiffFile(tmp_path / f"{name}.ome.tif") as tif:
            series = tif.series[0]
            assert len(series.levels) == len(m.levels) >= 3
            for level, stored in zip(series.levels, m.levels):
                assert level.shape == stored.shape
                assert np.array_equal(level.asarray(), stored.numpy())
            page = tif.pages[0]
            assert page.is_tiled and (page.tilelength, page.tilewidth) == (256, 256)
            assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE and page.predictor == 2
            assert len(page.subifds) == len(m.levels) - 1
            assert page.photometric == (tifffile.PHOTOMETRIC.RGB if name == "rgb" else tifffile.PHOTOMETRIC.MINISBLACK)
        px = _ome_pixels(tmp_path / f"{name}.ome.tif")
        assert float(px["PhysicalSizeX"]) == 0.25 and px["PhysicalSizeXUnit"] == "µm"
        # and back: OME-TIFF -> .mzarr -> OME-TIFF, the same pixels and pixel size
        mzarr_core.convert(tmp_path / f"{name}.ome.tif", tmp_path / f"{name}2.mzarr")
        with Mzarr(tmp_path / f"{name}2.mzarr") as again:
            assert np.array_equal(again.numpy(), image) and again.spacing == (0.25, 0.25)
        formats.export(tmp_path / f"{name}2.mzarr", tmp_path / f"{name}2.ome.tif")
        assert np.array_equal(tifffile.imread(tmp_path / f"{name}2.ome.tif"), image)


def test_ome_tiff_of_a_volume_halves_each_plane(tmp_path):
    """OME-TIFF sub-resolutions halve y and x of each z-plane (the file's 3D levels also halve z): computed from the
    exported planes with the file's rule, z-planes as pages, PhysicalSizeZ kept."""
    v = smooth_array((9, 600, 520), "uint16", seed=5)
    Mzarr(v, spacing=(3.0, 0.5, 0.5)).save(tmp_path / "v.mzarr", chunks=(8, 128, 128))
    formats.export(tmp_path / "v.mzarr", tmp_path / "v.ome.tif")
    with tifffile.TiffFile(tmp_path / "v.ome.tif") as tif:
        series = tif.series[0]
        assert series.axes == "ZYX" and len(tif.pages) == 9
        shapes = [lv.shape for lv in series.levels]
        assert shapes == [(9, 600, 520), (9, 300, 260), (9, 150, 130)]
        expected = v
        for k, level in enumerate(series.levels):
            if k:
                expected = np.stack([downsample(p, (True, True)) for p in expected])
            assert np.array_equal(level.asarray(), expected), k
    px = _ome_pixels(tmp_path / "v.ome.tif")
    assert float(px["PhysicalSizeZ"]) == 3.0 and float(px["PhysicalSizeY"]) == 0.5 and px["SizeZ"] == "9"


def test_exported_voxel_sizes_are_the_image_spacing_without_float_noise(tmp_path):
    """An oblique MR series (the real direction cosines of a brain MEMPRAGE, unit vectors to 1e-14): OME-TIFF's
    PhysicalSize is the image's spacing as written (1.1458333730698, not 1.1458333730697998; 1.0, not
    0.9999999999999999), times 2 per level and times a region's step (3.4375001192094, the exact decimal); NRRD and
    MetaImage carry the same numbers."""
    direction = np.array([[0.07520114153212, 0.02644275019617, -0.9968177211879458],
                          [0.99716595584538, 0.00021240134921, 0.07523304718437898],
                          [0.00220109410209, -0.9996503067812, -0.026351837450620547]])
    geometry = {"space": "LPS", "origin": [-96.3, -112.7, 88.1], "direction": direction.tolist()}
    v = smooth_array((6, 40, 36), "uint16", seed=4)
    Mzarr(v, spacing=(1.0, 1.1458333730698, 1.1458333730698), unit="millimeter",
          attrs={"geometry": geometry}).save(tmp_path / "mr.mzarr", chunks=(4, 16, 16))
    cases = [({}, ("1.0", "1.1458333730698")), ({"level": 1}, ("2.0", "2.2916667461396")),
             ({"region": "::3,::3,::3"}, ("3.0", "3.4375001192094"))]
    for k, (options, (z, xy)) in enumerate(cases):
        formats.export(tmp_path / "mr.mzarr", tmp_path / f"{k}.ome.tif", **options)
        px = _ome_pixels(tmp_path / f"{k}.ome.tif")
        assert (px["PhysicalSizeZ"], px["PhysicalSizeY"], px["PhysicalSizeX"]) == (z, xy, xy), options
        for suffix in ("nrrd", "mha"):
            formats.export(tmp_path / "mr.mzarr", tmp_path / f"{k}.{suffix}", **options)
            back = formats.read(tmp_path / f"{k}.{suffix}")
            expected = (float(z), float(xy), float(xy))  # NRRD has vectors only: their lengths, to the last bit
            assert back.spacing == (expected if suffix == "mha" else pytest.approx(expected, rel=1e-15)), suffix
            assert np.allclose(back.attrs["geometry"]["direction"], direction, atol=1e-13), (suffix, options)


def test_ome_tiff_regions_levels_and_channels(tmp_path):
    import skimage.data

    cam = skimage.data.camera()
    Mzarr(cam).save(tmp_path / "cam.mzarr", chunks=(64, 64))
    m = Mzarr(tmp_path / "cam.mzarr")
    # a region: level 0 exact, the sub-levels are the file's levels over the region (their edges rounded outwards)
    formats.export(m, tmp_path / "r.ome.tif", region=(slice(37, 500), slice(100, 413)))
    with tifffile.TiffFile(tmp_path / "r.ome.tif") as tif:
        levels = tif.series[0].levels
        assert np.array_equal(levels[0].asarray(), cam[37:500, 100:413])
        for k, level in enumerate(levels[1:], 1):
            f = 2**k
            stored = m.level(k).numpy()
            assert np.array_equal(level.asarray(), stored[37 // f : math.ceil(500 / f), 100 // f : math.ceil(413 / f)])
    # a level: its own pyramid below it
    formats.export(m, tmp_path / "l2.ome.tif", level=2)
    with tifffile.TiffFile(tmp_path / "l2.ome.tif") as tif:
        assert [lv.shape for lv in tif.series[0].levels] == [lv.shape for lv in m.levels[2:]]
    # a stepped region: one resolution, no SubIFDs
    formats.export(m, tmp_path / "s.ome.tif", region=(slice(None, None, 3), slice(None, None, 2)))
    with tifffile.TiffFile(tmp_path / "s.ome.tif") as tif:
        assert len(tif.series[0].levels) == 1 and np.array_equal(tif.asarray(), cam[::3, ::2])
    m.close()
    # five channels (not RGB): one page per channel, CYX
    c = smooth_array((5, 300, 280), "uint8", seed=6)
    Mzarr(c, axes="cyx").save(tmp_path / "c.mzarr", chunks=(1, 128, 128))
    formats.export(tmp_path / "c.mzarr", tmp_path / "c.ome.tif")
    with tifffile.TiffFile(tmp_path / "c.ome.tif") as tif:
        assert tif.series[0].axes == "CYX" and np.array_equal(tif.series[0].asarray(), c)
        assert tif.series[0].levels[1].shape == (5, 150, 140)
    with pytest.raises(MzarrValueError, match="holds y-x planes"):
        formats.export(tmp_path / "c.mzarr", tmp_path / "x.ome.tif", region=(slice(None), 5))


# -- streaming, progress, cancelling, errors ---------------------------------------------------------------------------
def test_exports_are_streamed_in_bounded_blocks(tmp_path, monkeypatch):
    v = smooth_array((24, 256, 200), "uint16", seed=7)
    Mzarr(v).save(tmp_path / "v.mzarr", chunks=(8, 64, 64))
    monkeypatch.setattr(selection, "BLOCK_BYTES", v.nbytes // 8)
    biggest: list[int] = []
    read, read_plane = selection.Selection.read, selection.Selection.read_plane

    def counting_read(self, block=()):
        out = read(self, block)
        biggest.append(out.nbytes)
        return out

    def counting_plane(self, *args, **kwargs):
        out = read_plane(self, *args, **kwargs)
        biggest.append(out.nbytes)
        return out

    monkeypatch.setattr(selection.Selection, "read", counting_read)
    monkeypatch.setattr(selection.Selection, "read_plane", counting_plane)
    for name in ("v.nrrd", "v.mha", "v.nii.gz", "v.npy", "v.ome.tif", "v.tif"):
        biggest.clear()
        formats.export(tmp_path / "v.mzarr", tmp_path / name)
        assert biggest and max(biggest) <= v.nbytes // 8, (name, max(biggest))
        assert len(biggest) >= 8, name
    assert np.array_equal(np.load(tmp_path / "v.npy"), v)
    assert np.array_equal(tifffile.imread(tmp_path / "v.tif"), v)


def test_progress_and_cancel_leave_no_partial_file(tmp_path, monkeypatch):
    v = smooth_array((16, 300, 300), "uint8", seed=8)
    Mzarr(v).save(tmp_path / "v.mzarr", chunks=(8, 64, 64))
    monkeypatch.setattr(selection, "BLOCK_BYTES", v.nbytes // 4)  # several blocks: a cancel lands mid-way
    for name in ("v.ome.tif", "v.nrrd", "v.nii", "v.mha", "v.npy"):
        calls: list[tuple[int, int]] = []
        formats.export(tmp_path / "v.mzarr", tmp_path / name, progress=lambda d, t: calls.append((d, t)))
        assert calls[-1][0] == calls[-1][1] > 1, name
        assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:])), name
        before = (tmp_path / name).read_bytes()

        def cancel(done, total):
            if done >= 1:
                raise SaveCancelled("cancelled")

        with pytest.raises(SaveCancelled):
            formats.export(tmp_path / "v.mzarr", tmp_path / name, progress=cancel)
        assert (tmp_path / name).read_bytes() == before, name  # the previous export is untouched
        with pytest.raises(SaveCancelled):
            formats.export(tmp_path / "v.mzarr", tmp_path / f"new-{name}", progress=cancel)
        assert not (tmp_path / f"new-{name}").exists()
    assert not [p for p in temp_leftovers(tmp_path) if not p.endswith(".mzarr")]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{tmp}/x.jpg"], r"cannot export to x\.jpg: use a \.tif, \.npy or \.png file name .*\.nrrd"),
        (["{tmp}/x.nrrd", "--level", "9"], "level 9 does not exist"),
        (["{tmp}/x.nrrd", "--region", "5:5"], "the region selects nothing along axis z"),
        (["{tmp}/x.ome.tif", "--region", "2,3"], "holds y-x planes"),
        (["{tmp}/x.png"], "PNG holds a 2D grey or RGB"),
        (["{tmp}/missing/x.nrrd"], "the folder .*missing does not exist"),
    ],
)
def test_export_errors_are_one_line(tmp_path, capsys, argv, message):
    Mzarr(smooth_array((4, 30, 20), "uint8")).save(tmp_path / "v.mzarr")
    code, out, err = run(capsys, "export", tmp_path / "v.mzarr", *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2, out
    assert err.startswith("mzarr export: error: ") and re.search(message, err), err
    assert len(err.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["v.mzarr"]


def test_export_api_accepts_an_open_image_or_a_path(tmp_path):
    a = smooth_array((50, 60), "uint16", seed=9)
    with Mzarr(a, spacing=(0.5, 0.5)) as m:
        m.save(tmp_path / "a.mzarr")
    with Mzarr(tmp_path / "a.mzarr") as m:
        out = formats.export(m, tmp_path / "a.nrrd")
        assert out == tmp_path / "a.nrrd"
        assert np.array_equal(m[:5, :5], a[:5, :5])  # the caller's image stays open
    from mzarr_core.convert import export

    assert export is formats.export
    mzarr_core.convert(tmp_path / "a.mzarr", tmp_path / "a.ome.zarr")
    export(tmp_path / "a.ome.zarr", tmp_path / "b.mha")  # an OME-Zarr folder exports the same way
    assert np.array_equal(np.asarray(formats.read(tmp_path / "b.mha").array[...]), a)
    with pytest.raises(MzarrError, match="no such file"):
        formats.export(tmp_path / "missing.mzarr", tmp_path / "c.nrrd")
    assert not (tmp_path / "c.nrrd").exists()


@pytest.mark.parametrize("axes", ["zyx", "czyx", "zyxc"])
@pytest.mark.parametrize("lossless", [True, False])
def test_plane_reads_match_block_reads(tmp_path, axes, lossless):
    """The OME-TIFF writer reads volumes plane by plane (one JPEG XL frame per brick where the file allows it): every
    plane of a selection, with regions, steps and a dropped z, equals the same pixels read as a block."""
    shape = {"zyx": (20, 70, 60), "czyx": (3, 20, 70, 60), "zyxc": (20, 70, 60, 3)}[axes]
    a = smooth_array(shape, "uint8", seed=1)
    chunks = tuple(n if ax == "c" else 16 for ax, n in zip(axes, shape))
    options = {} if lossless else {"lossless": False, "distance": 1.0}
    Mzarr(a, axes=axes).save(tmp_path / "p.mzarr", chunks=chunks, **options)
    with Mzarr(tmp_path / "p.mzarr") as m:
        lead = (slice(None),) if axes == "czyx" else ()
        for region in (lead, lead + (slice(2, 18, 3),), lead + (4,)):
            sel = selection.Selection(m, 0, region)
            full = sel.read()
            others = [a for a in sel.axes if a not in "yx"]
            for pos in np.ndindex(*[sel.shape[sel.axes.index(a)] for a in others]):
                where = dict(zip(others, pos))
                key = tuple(where.get(a, slice(5, 40) if a == "y" else slice(0, 33)) for a in sel.axes)
                assert np.array_equal(sel.read_plane(where, slice(5, 40), slice(0, 33)), full[key]), (region, where)


def _tilted_ct_series(folder: Path):
    """A tilted CT series built from pydicom's CT_small.dcm (real pixels, six slices 2.5 mm apart along the slice
    normal, files named in reverse) in ``folder``: its volume (HU) and ijk -> the patient position (LPS, mm)."""
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("mzarr_core.formats.dicom", reason="formats/dicom.py (the DICOM reader) is not there yet")
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    th = np.deg2rad(20)
    row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(th), np.sin(th)])
    normal = np.cross(row, col)
    first = np.array([-158.1, -179.0, -75.7])
    dx, dy = (float(v) for v in base.PixelSpacing[::-1])
    folder.mkdir()
    slices = []
    for k in range(6):
        ds = base.copy()
        ds.ImageOrientationPatient = [*row, *(round(v, 8) for v in col)]
        ds.ImagePositionPatient = [round(v, 6) for v in first + 2.5 * k * normal]
        ds.InstanceNumber, ds.SOPInstanceUID = 6 - k, generate_uid()
        pixels = (base.pixel_array + 7 * k).astype(base.pixel_array.dtype)
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"IM{5 - k:04d}")  # files named in reverse: sorted by position, not name
        slices.append(pixels.astype(np.int32) * int(base.RescaleSlope) + int(base.RescaleIntercept))
    positions = lambda ijk: first + ijk[0] * dx * row + ijk[1] * dy * col + ijk[2] * 2.5 * normal  # noqa: E731
    return np.stack(slices), positions


def test_dicom_series_exports_with_its_patient_geometry(tmp_path, capsys):
    """A tilted CT series built from pydicom's CT_small.dcm (real pixels, six slices along the slice normal) ->
    .mzarr -> NIfTI and NRRD: the same pixels, and every voxel at the patient position the DICOM headers give
    (NRRD in LPS like DICOM, NIfTI in RAS)."""
    volume, positions = _tilted_ct_series(tmp_path / "ct")
    assert run(capsys, "convert", tmp_path / "ct", tmp_path / "ct.mzarr", "--quiet")[0] == 0
    with Mzarr(tmp_path / "ct.mzarr") as m:
        assert np.array_equal(m.numpy(), volume)
    assert run(capsys, "export", tmp_path / "ct.mzarr", tmp_path / "ct.nii.gz", "--quiet")[0] == 0
    nii = nibabel.load(tmp_path / "ct.nii.gz")
    assert np.array_equal(np.asarray(nii.dataobj).T, volume)
    for ijk in ([0, 0, 0], [127, 0, 5], [17, 99, 3]):
        assert np.allclose(nii.affine @ [*ijk, 1], [*(LPS_TO_RAS @ positions(ijk)), 1], atol=1e-3), ijk
    assert run(capsys, "export", tmp_path / "ct.mzarr", tmp_path / "ct.nrrd", "--quiet")[0] == 0
    back = formats.read(tmp_path / "ct.nrrd")
    g = back.attrs["geometry"]
    vectors = np.asarray(g["direction"]) * np.asarray(back.spacing[::-1])
    assert g["space"] == "LPS" and np.array_equal(np.asarray(back.array[...]), volume)
    for ijk in ([0, 0, 0], [127, 0, 5], [17, 99, 3]):
        assert np.allclose(np.asarray(g["origin"]) + vectors @ ijk, positions(ijk), atol=1e-4), ijk


def test_a_label_image_exports_in_the_geometry_of_its_image(tmp_path, capsys):
    """QA repro_3: a segmentation of a real (tilted) CT series exports to NIfTI/NRRD/MHA/TIFF with the image's
    spacing, origin and direction: nibabel reads the same affine as the image's own export, the painted voxels hold
    their values there, and it is not marked as Hounsfield units; a LabelImage was a bare TypeError before."""
    volume, positions = _tilted_ct_series(tmp_path / "ct")
    path = tmp_path / "ct.mzarr"
    assert run(capsys, "convert", tmp_path / "ct", path, "--quiet")[0] == 0
    seg = np.zeros(volume.shape, np.uint8)
    seg[1:4, 20:60, 30:90] = 3
    seg[5, 100:110, 0:5] = 9
    with Mzarr(path, "r+") as m:
        m.create_labels("bone", seg)
    assert run(capsys, "export", path, tmp_path / "ct.nii.gz", "--quiet")[0] == 0
    code, out, _ = run(capsys, "export", path, tmp_path / "bone.nii.gz", "--label", "bone", "--quiet")
    assert code == 0 and "wrote" in out
    image, label = nibabel.load(tmp_path / "ct.nii.gz"), nibabel.load(tmp_path / "bone.nii.gz")
    assert np.array_equal(label.affine, image.affine)
    assert np.allclose(label.affine @ [17, 99, 3, 1], [*(LPS_TO_RAS @ positions([17, 99, 3])), 1], atol=1e-3)
    assert label.get_data_dtype() == np.uint8 and np.array_equal(np.asarray(label.dataobj).T, seg)
    assert b"Hounsfield" not in label.header["descrip"].tobytes() and b"Hounsfield" in image.header["descrip"].tobytes()
    with Mzarr(path) as m:  # the Python API: export(image.label(name), ...), a region and a level as for the image
        formats.export(m.label("bone"), tmp_path / "bone.nrrd")
        formats.export(m.label("bone"), tmp_path / "slab.nii", region=(slice(1, 4),))
        formats.export(m.label("bone"), tmp_path / "bone.tif")
    back = formats.read(tmp_path / "bone.nrrd")
    g = back.attrs["geometry"]
    vectors = np.asarray(g["direction"]) * np.asarray(back.spacing[::-1])
    assert np.array_equal(np.asarray(back.array[...]), seg)
    assert np.allclose(np.asarray(g["origin"]) + vectors @ [17, 99, 3], positions([17, 99, 3]), atol=1e-4)
    slab = nibabel.load(tmp_path / "slab.nii")
    assert np.array_equal(np.asarray(slab.dataobj).T, seg[1:4])
    assert np.allclose(slab.affine @ [0, 0, 0, 1], image.affine @ [0, 0, 1, 1])  # starts at slice 1 of the image
    assert np.array_equal(tifffile.imread(tmp_path / "bone.tif"), seg)
    code, _, err = run(capsys, "export", path, tmp_path / "x.nii", "--label", "liver")
    assert code == 2 and "no label image 'liver'" in err and "'bone'" in err and not (tmp_path / "x.nii").exists()
    with pytest.raises(MzarrValueError, match=r"export takes an image \(Mzarr\), a label image \(m\.label\(name\)\)"):
        formats.export(seg, tmp_path / "x.nii")
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK is not installed (pip install SimpleITK) to cross-check .mha")
    for name, args in (("ct.mha", ()), ("bone.mha", ("--label", "bone"))):
        assert run(capsys, "export", path, tmp_path / name, "--quiet", *args)[0] == 0
    ct_mha, bone_mha = (sitk.ReadImage(str(tmp_path / n)) for n in ("ct.mha", "bone.mha"))
    for get in ("GetOrigin", "GetSpacing", "GetDirection"):
        assert getattr(bone_mha, get)() == getattr(ct_mha, get)(), get
    assert np.array_equal(sitk.GetArrayFromImage(bone_mha), seg)


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_exports_get_the_permissions_of_a_plain_new_file(tmp_path, umask, capsys):
    """QA repro_3: every export was mode 0600 (mkstemp's), whatever the umask. Now a new export gets 0666 & ~umask,
    like a .mzarr save, and an export over an existing file keeps that file's mode; the pixels are the image's."""
    import os
    import stat

    pixels = smooth_array((40, 48), np.uint8)
    Mzarr(pixels).save(tmp_path / "a.mzarr")
    old = os.umask(umask)
    try:
        Mzarr(pixels).save(tmp_path / "b.mzarr")
        assert stat.S_IMODE(os.stat(tmp_path / "b.mzarr").st_mode) == 0o666 & ~umask
        for suffix in ("tif", "ome.tif", "npy", "png", "nii.gz", "nrrd", "mha"):
            out = tmp_path / f"out.{suffix}"
            assert main(["export", str(tmp_path / "a.mzarr"), str(out), "--quiet"]) == 0
            assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~umask, suffix
        os.chmod(tmp_path / "out.npy", 0o640)
        formats.export(tmp_path / "a.mzarr", tmp_path / "out.npy")
        assert stat.S_IMODE(os.stat(tmp_path / "out.npy").st_mode) == 0o640
        np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), pixels)
    finally:
        os.umask(old)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temporary left behind


def test_export_into_a_folder_without_write_permission_says_so(tmp_path, capsys, monkeypatch):
    """QA repro_15: the error named the internal temporary file and gave no advice. (The folder is made unwritable
    by refusing the create, as the tests may run as root, whom permissions do not stop.)"""
    import errno
    import os

    Mzarr(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.mzarr")
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and Path(path).parent == tmp_path / "ro":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", refuse)
    code = main(["export", str(tmp_path / "a.mzarr"), str(tmp_path / "ro" / "out.nii.gz"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot write {tmp_path / 'ro' / 'out.nii.gz'}: Permission denied" in err
    assert "choose a folder you can write to" in err and ".out.nii.gz" not in err
    assert list((tmp_path / "ro").iterdir()) == []
