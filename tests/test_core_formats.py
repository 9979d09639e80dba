"""The formats registry (``mzarr_core.formats``) and the NRRD / MetaImage readers.

Registry: every list of formats (CLI help and errors, the viewer's File > Import filter and drops, the default
destination) comes from one table; content sniffs find files with unknown suffixes; optional packages that are
missing name the pip extra; DICOM is routed (folders, zips, .dcm) to ``formats/dicom.py`` with ``--series`` and
``--keep-phi`` passed through.

NRRD and MetaImage: files written here by hand (headers typed out, data from nibabel's real MRI volume and
synthetic arrays with every extreme value) in every encoding, byte order and type Mzarr stores, attached and
detached, plus cross-checks against pynrrd and SimpleITK when they are installed: pixels bit-exact, spacing,
origin and direction as the other tools see them, raw data memory-mapped.
"""

from __future__ import annotations

import bz2
import gzip
import sys
import types
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import ALL_DTYPES, extreme_array, smooth_array

from mzarr import Mzarr
from mzarr_core import formats
from mzarr_core.cli import main
from mzarr_core.errors import MzarrFileNotFoundError, MzarrFormatError, MzarrValueError
from mzarr_core.formats import Source, read

try:
    import nibabel

    NIB_DATA = Path(nibabel.__file__).parent / "tests" / "data"
except ImportError:  # pragma: no cover - nibabel is a test extra
    NIB_DATA = Path("nibabel-is-not-installed")
STORED = [d for d in ALL_DTYPES if d not in ("bool", "float16")]  # what NRRD / MetaImage can hold


def anatomical() -> tuple[np.ndarray, np.ndarray]:
    """nibabel's real MRI volume as (z, y, x) int16, and its affine."""
    nibabel = pytest.importorskip("nibabel")
    img = nibabel.load(NIB_DATA / "anatomical.nii")
    return np.ascontiguousarray(np.asarray(img.dataobj).T.astype("<i2")), img.affine


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def values(source: Source) -> np.ndarray:
    return np.asarray(source.array[...])


# -- the registry ------------------------------------------------------------------------------------------------
def test_every_suffix_finds_its_format_longest_first(tmp_path):
    for fmt in formats.FORMATS:
        for suffix in fmt.suffixes:
            path = tmp_path / f"x{suffix}"
            if fmt.folder and suffix != ".zip" and fmt.name != "dicom":
                path.mkdir()
            else:
                path.write_bytes(b"\0" * 200)
            if suffix == ".zip":
                continue  # a zip is DICOM only if it holds DICOM files (tested below)
            assert formats.find_format(path) is fmt, suffix
    assert formats.find_format(tmp_path / "x.nii.gz").name == "nifti"
    assert formats.find_format(tmp_path / "x.ome.tif").name == "ome-tiff"
    assert formats.writer_for("a.OME.TIFF").name == "ome-tiff" and formats.writer_for("a.tif").name == "tiff"
    assert formats.writer_for("a.nii.gz").name == "nifti" and formats.writer_for("b.nrrd").name == "nrrd"
    assert formats.writer_for("c.mha").name == "metaimage"
    with pytest.raises(MzarrFormatError, match=r"cannot export to a\.jpg: use a \.tif, \.npy or \.png .*\.nii\.gz"):
        formats.writer_for("a.jpg")


def test_lists_come_from_the_registry(capsys):
    """The CLI help, the export help and the viewer's import filter list exactly the registry's formats; the filter
    now has the NIfTI, BMP and JPEG XL files the core always read (issue 9)."""
    readable = formats.readable_suffixes(native=False)
    for suffix in (".nii", ".nii.gz", ".bmp", ".jxl", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".ome.tif", ".npy"):
        assert suffix in readable
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for fmt in formats.FORMATS:
        assert fmt.title in help_text
        for suffix in fmt.suffixes:
            assert suffix in help_text, suffix
    assert "--series" in help_text and "--keep-phi" in help_text
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for suffix in formats.export_suffixes():
        assert suffix in help_text, suffix
    pytest.importorskip("PySide6")
    from mzarr_app.importer import IMPORT_FILTER

    assert IMPORT_FILTER == formats.qt_filter()
    everything = IMPORT_FILTER.split(";;")[0]
    assert everything.startswith("Images (") and everything.endswith(")")
    assert everything[len("Images (") : -1].split() == [f"*{s}" for s in readable]
    assert "NIfTI (*.nii *.nii.gz)" in IMPORT_FILTER and IMPORT_FILTER.endswith("All files (*)")
    assert ".mzarr" not in everything  # opened, not imported


def test_default_destination_and_drop_actions(tmp_path):
    pytest.importorskip("PySide6")
    from mzarr_app.importer import default_destination, drop_action

    for name, stem in [("scan.nii.gz", "scan"), ("slide.ome.tiff", "slide"), ("photo.JPG", "photo"),
                       ("vol.nhdr", "vol"), ("ct.mha", "ct"), ("x.npy", "x"), ("CT.zip", "CT")]:
        assert default_destination(str(tmp_path / name)) == str(tmp_path / f"{stem}.mzarr"), name
    folder = tmp_path / "CT series"
    folder.mkdir()
    assert default_destination(str(folder) + "/") == str(tmp_path / "CT series.mzarr")
    # drops: .mzarr and OME-Zarr open, other images import, anything else is refused
    Mzarr(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.mzarr")
    Mzarr(np.zeros((8, 8), np.uint8)).save(tmp_path / "b.ome.zarr")
    np.save(tmp_path / "c.npy", np.zeros((4, 4)))
    (tmp_path / "notes.txt").write_text("hello")
    tifffile.imwrite(tmp_path / "no_suffix", np.zeros((4, 4), np.uint8))
    assert drop_action(str(tmp_path / "a.mzarr")) == "open"
    assert drop_action(str(tmp_path / "b.ome.zarr")) == "open"
    assert drop_action(str(tmp_path / "c.npy")) == "import"
    assert drop_action(str(tmp_path / "no_suffix")) == "import"  # a TIFF, by its content
    assert drop_action(str(tmp_path / "notes.txt")) is None
    assert drop_action(str(folder)) is None  # an empty folder is no image
    assert drop_action(str(tmp_path / "missing.tif")) is None


def test_content_sniffs_find_files_with_unknown_suffixes(tmp_path):
    a = smooth_array((20, 30), "uint16", seed=4)
    tifffile.imwrite(tmp_path / "tiff.dat", a)
    np.save(tmp_path / "array.npy", a)
    (tmp_path / "array.npy").rename(tmp_path / "array.bin")
    _nrrd(tmp_path / "vol.img", a, "raw")
    (tmp_path / "image.meta").write_bytes(b"ObjectType = Image\nNDims = 2\nDimSize = 30 20\nElementType = MET_USHORT\n"
                                          b"ElementDataFile = LOCAL\n" + a.astype("<u2").tobytes())
    for name, fmt in [("tiff.dat", "tiff"), ("array.bin", "npy"), ("vol.img", "nrrd"), ("image.meta", "metaimage")]:
        assert formats.find_format(tmp_path / name).name == fmt
        assert np.array_equal(values(read(tmp_path / name)), a), name
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MzarrFormatError, match=r"notes\.txt: unknown image type \.txt; Mzarr imports .*NRRD"):
        read(tmp_path / "notes.txt")
    with pytest.raises(MzarrFileNotFoundError, match="no such file"):
        read(tmp_path / "missing.nrrd")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MzarrFormatError, match="folder that holds neither an OME-Zarr image nor DICOM"):
        read(tmp_path / "empty")


def test_missing_optional_package_names_the_extra(tmp_path, monkeypatch):
    """Without nibabel, NIfTI says which extra installs it (and so would any other optional format)."""
    import nibabel

    img = nibabel.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.eye(4))
    nibabel.save(img, tmp_path / "x.nii")
    Mzarr(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.mzarr")
    monkeypatch.setitem(sys.modules, "nibabel", None)  # import nibabel now raises ImportError
    with pytest.raises(MzarrFormatError, match=r'needs the optional package nibabel.*pip install "mzarr\[nifti\]"'):
        read(tmp_path / "x.nii")
    with pytest.raises(MzarrFormatError, match=r'mzarr\[nifti\]'):
        formats.export(tmp_path / "a.mzarr", tmp_path / "x.nii.gz")
    assert not (tmp_path / "x.nii.gz").exists()
    fmt = formats.get_format("dicom")
    assert fmt.extra == "dicom" and fmt.package == "pydicom"


def test_pyproject_extras_match_the_registry():
    import tomllib

    with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    extras = project["optional-dependencies"]
    for fmt in formats.FORMATS:
        if fmt.extra:
            names = " ".join(extras[fmt.extra]).lower()
            assert fmt.package.lower() in names, (fmt.extra, names)
            assert any(d.lower().startswith(fmt.package.lower()) for d in extras["formats"])
    assert set(extras["formats"]) <= set(extras["all"])


def test_reader_options_go_to_formats_that_take_them(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4), np.uint8))
    with pytest.raises(MzarrValueError, match=r"--series applies to DICOM sources only; a\.npy is read as NumPy"):
        read(tmp_path / "a.npy", series="2")
    assert values(read(tmp_path / "a.npy", series=None, keep_phi=False)).shape == (4, 4)  # defaults are fine


@pytest.fixture
def fake_dicom(monkeypatch):
    """A stand-in for formats/dicom.py (another module of issue 9) recording how it is called."""
    calls: list[tuple] = []
    module = types.ModuleType("mzarr_core.formats.dicom")

    def open_dicom(path, *, series=None, keep_phi=False):
        calls.append((Path(path), series, keep_phi))
        return Source(np.arange(2 * 6 * 7, dtype=np.int16).reshape(2, 6, 7), "zyx", (3.0, 0.5, 0.5), "millimeter",
                      {"modality": "CT"})

    def is_dicom_path(path):
        return formats._looks_like_dicom(Path(path))

    module.open_dicom, module.is_dicom_path = open_dicom, is_dicom_path
    monkeypatch.setitem(sys.modules, "mzarr_core.formats.dicom", module)
    return calls


def _dicom_file(path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    src = get_testdata_file("CT_small.dcm")
    if src is None:
        pytest.skip("pydicom's test data are not installed")
    pydicom.dcmread(src).save_as(path)


def test_dicom_folders_zips_and_files_go_to_the_dicom_reader(tmp_path, capsys, fake_dicom):
    folder = tmp_path / "series"
    (folder / "sub").mkdir(parents=True)
    _dicom_file(folder / "sub" / "IM0001")  # no suffix, one level down, as scanners write them
    with zipfile.ZipFile(tmp_path / "series.zip", "w") as z:
        z.write(folder / "sub" / "IM0001", "IM0001")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "no images")
    _dicom_file(tmp_path / "one.dcm")
    _dicom_file(tmp_path / "IM0002")
    for path in (folder, tmp_path / "series.zip", tmp_path / "one.dcm", tmp_path / "IM0002"):
        assert formats.find_format(path).name == "dicom", path
        assert formats.import_action(path) == "import"
    with pytest.raises(MzarrFormatError, match=r"other\.zip: this \.zip holds no DICOM files"):
        read(tmp_path / "other.zip")
    # the CLI passes --series and --keep-phi through
    code, out, err = run(capsys, "convert", folder, tmp_path / "ct.mzarr", "--series", "2", "--keep-phi", "--quiet")
    assert code == 0, err
    assert fake_dicom[-1] == (folder, "2", True)
    with Mzarr(tmp_path / "ct.mzarr") as m:
        assert m.shape == (2, 6, 7) and m.spacing == (3.0, 0.5, 0.5) and m.attrs()["modality"] == "CT"
    assert run(capsys, "convert", tmp_path / "series.zip", tmp_path / "z.mzarr", "--quiet")[0] == 0
    assert fake_dicom[-1] == (tmp_path / "series.zip", None, False)
    code, _, err = run(capsys, "convert", tmp_path / "one.dcm", tmp_path / "t.mzarr", "--series", "1", "--quiet")
    assert code == 0 and fake_dicom[-1] == (tmp_path / "one.dcm", "1", False)
    np.save(tmp_path / "a.npy", np.zeros((4, 4), np.uint8))
    code, _, err = run(capsys, "convert", tmp_path / "a.npy", tmp_path / "a.mzarr", "--keep-phi")
    assert code == 2 and "--keep-phi applies to DICOM sources only" in err


def test_dicom_reader_module_missing_or_without_pydicom(tmp_path, monkeypatch):
    """Before formats/dicom.py exists, or without pydicom, a DICOM source gives one clear error."""
    _dicom_file(tmp_path / "one.dcm")
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(MzarrFormatError, match=r"DICOM") as err:
        read(tmp_path / "one.dcm")
    msg = str(err.value)
    assert 'pip install "mzarr[dicom]"' in msg or "not available in this version" in msg
    assert formats.find_format(tmp_path / "one.dcm").name == "dicom"


# -- NRRD ----------------------------------------------------------------------------------------------------------
def _nrrd(path: Path, a: np.ndarray, encoding: str = "raw", *, endian: str = "little", fields: str = "",
          detached: str | None = None, kinds: str | None = None, skip: bytes = b"",
          type_name: str | None = None) -> None:
    """A hand-written NRRD of ``a`` (C order: the NRRD axes reversed)."""
    dtype = a.dtype.newbyteorder("<" if endian == "little" else ">")
    raw = np.ascontiguousarray(a, dtype=dtype).tobytes()
    data = {"raw": raw, "gzip": gzip.compress(raw), "bzip2": bz2.compress(raw),
            "ascii": " ".join(str(v) for v in a.reshape(-1).tolist()).encode(),
            "hex": raw.hex().encode()}[encoding]
    sizes = " ".join(str(n) for n in a.shape[::-1])
    type_name = type_name or {"int8": "signed char", "uint8": "uchar", "int16": "short", "uint16": "ushort",
                              "int32": "int", "uint32": "uint", "int64": "longlong", "uint64": "ulonglong",
                              "float32": "float", "float64": "double"}[a.dtype.name]
    header = f"NRRD0004\n# a comment\ntype: {type_name}\ndimension: {a.ndim}\nsizes: {sizes}\n"
    header += f"encoding: {encoding}\nendian: {endian}\n" + fields
    if kinds:
        header += f"kinds: {kinds}\n"
    if detached:
        header += f"data file: {detached}\n"
        path.write_text(header)
        (path.parent / detached).write_bytes(skip + data)
    else:
        path.write_bytes(header.encode() + b"\n" + skip + data)


GEOMETRY = ("space: left-posterior-superior\nspace directions: (0.9,0.1,0) (-0.1,0.9,0) (0,0.25,2.4)\n"
            "space origin: (10.5,-20,30.25)\nspace units: \"mm\" \"mm\" \"mm\"\n")


def test_nrrd_real_volume_with_geometry_is_read_lazily(tmp_path):
    a, _ = anatomical()
    _nrrd(tmp_path / "anat.nrrd", a, "raw", endian="big", fields=GEOMETRY + "my key:=my value\n")
    src = read(tmp_path / "anat.nrrd")
    assert src.axes == "zyx" and src.unit == "millimeter"
    base = getattr(src.array, "source", src.array)  # big-endian data: a byte-swapping view of the memmap
    assert isinstance(base, np.memmap) and not isinstance(src.array, np.ndarray)
    assert np.dtype(src.array.dtype) == np.dtype("int16")
    assert np.array_equal(np.asarray(src.array[3:5, 10:20]), a[3:5, 10:20])
    vectors = np.array([[0.9, 0.1, 0], [-0.1, 0.9, 0], [0, 0.25, 2.4]]).T  # columns: the x, y, z axes
    spacing_xyz = np.linalg.norm(vectors, axis=0)
    assert np.allclose(src.spacing, spacing_xyz[::-1], rtol=1e-15)
    g = src.attrs["geometry"]
    assert g["space"] == "LPS" and g["origin"] == [10.5, -20.0, 30.25]
    assert np.allclose(np.asarray(g["direction"]) * spacing_xyz, vectors, rtol=1e-15)
    assert src.attrs["nrrd_keys"] == {"my key": "my value"} and src.attrs["source"] == "anat.nrrd"
    with Mzarr(src.array, axes=src.axes, spacing=src.spacing, unit=src.unit, attrs=src.attrs) as m:
        m.save(tmp_path / "anat.mzarr")
    with Mzarr(tmp_path / "anat.mzarr") as m:
        assert np.array_equal(m.numpy(), a) and m.attrs()["geometry"] == g


@pytest.mark.parametrize("dtype", STORED)
@pytest.mark.parametrize("encoding", ["raw", "gzip", "bzip2", "ascii", "hex"])
def test_nrrd_every_type_and_encoding(tmp_path, dtype, encoding):
    a = extreme_array((3, 5, 4), dtype, seed=1)
    if encoding == "ascii":
        if a.dtype.kind == "f":
            a = np.where(np.isfinite(a), a, 0).astype(dtype)  # repr of NaN/inf as text is not portable
    for endian in ("little", "big"):
        _nrrd(tmp_path / "v.nrrd", a, encoding, endian=endian)
        got = values(read(tmp_path / "v.nrrd"))
        assert got.dtype == np.dtype(dtype) and got.dtype.isnative
        assert np.array_equal(got.view(np.uint8), np.ascontiguousarray(a).view(np.uint8)), (encoding, endian)


def test_nrrd_detached_headers_skips_and_type_spellings(tmp_path):
    a = smooth_array((4, 6, 5), "uint16", seed=2)
    _nrrd(tmp_path / "v.nhdr", a, "raw", detached="v.raw", type_name="unsigned short int")
    src = read(tmp_path / "v.nhdr")
    assert isinstance(src.array, np.memmap) and np.array_equal(values(src), a)
    _nrrd(tmp_path / "g.nhdr", a, "gzip", detached="g.raw.gz", fields="spacings: 0.5 0.25 3\n")
    src = read(tmp_path / "g.nhdr")
    assert np.array_equal(values(src), a) and src.spacing == (3.0, 0.25, 0.5) and "geometry" not in src.attrs
    _nrrd(tmp_path / "s.nhdr", a, "raw", detached="s.raw", skip=b"junk line\n" + b"\xff" * 7,
          fields="line skip: 1\nbyte skip: 7\n")
    assert np.array_equal(values(read(tmp_path / "s.nhdr")), a)
    _nrrd(tmp_path / "e.nhdr", a, "raw", detached="e.raw", skip=b"\x00" * 100, fields="byte skip: -1\n")
    assert np.array_equal(values(read(tmp_path / "e.nhdr")), a)
    _nrrd(tmp_path / "b.nhdr", a, "raw", detached="b.raw", skip=b"\x01" * 3, fields="byteskip: 3\n")  # old spelling
    assert np.array_equal(values(read(tmp_path / "b.nhdr")), a)
    # one file per slice: "data file: LIST"
    header = ("NRRD0005\ntype: uint16\ndimension: 3\nsizes: 5 6 4\nencoding: raw\nendian: little\n"
              "data file: LIST\n" + "".join(f"slice{i}.raw\n" for i in range(4)))
    (tmp_path / "list.nhdr").write_text(header)
    for i in range(4):
        (tmp_path / f"slice{i}.raw").write_bytes(a[i].astype("<u2").tobytes())
    assert np.array_equal(values(read(tmp_path / "list.nhdr")), a)
    header = header.replace("data file: LIST\n" + "".join(f"slice{i}.raw\n" for i in range(4)),
                            "data file: slice%d.raw 0 3 1\n")
    (tmp_path / "pattern.nhdr").write_text(header)
    assert np.array_equal(values(read(tmp_path / "pattern.nhdr")), a)


def test_nrrd_vector_pixels_become_channels(tmp_path):
    import skimage.data

    rgb = np.ascontiguousarray(skimage.data.astronaut()[:64, :80])
    _nrrd(tmp_path / "rgb.nrrd", rgb, "gzip", kinds="RGB-color domain domain",
          fields="space dimension: 2\nspace directions: none (0.5,0) (0,0.5)\n")
    src = read(tmp_path / "rgb.nrrd")
    assert src.axes == "yxc" and np.array_equal(values(src), rgb) and src.spacing == (0.5, 0.5)
    assert src.attrs["geometry"]["space"] is None and src.attrs["geometry"]["direction"] == [[1.0, 0.0], [0.0, 1.0]]
    vol = smooth_array((2, 4, 5, 6), "float32", seed=3)  # NRRD axes: x y z vector (the channel is the slowest)
    _nrrd(tmp_path / "vec.nrrd", vol, "raw", kinds="domain domain domain vector")
    src = read(tmp_path / "vec.nrrd")
    assert src.axes == "zyxc" and np.array_equal(values(src), np.moveaxis(vol, 0, -1))
    one = smooth_array((1, 4, 5, 6), "uint8", seed=3)  # a length-1 list axis is dropped
    _nrrd(tmp_path / "one.nrrd", one, "raw", kinds="domain domain domain list")
    src = read(tmp_path / "one.nrrd")
    assert src.axes == "zyx" and np.array_equal(values(src), one[0])
    two_d = smooth_array((7, 9), "int16", seed=5)
    _nrrd(tmp_path / "2d.nrrd", two_d, "raw")
    src = read(tmp_path / "2d.nrrd")
    assert src.axes == "yx" and src.spacing is None and np.array_equal(values(src), two_d)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 4\nencoding: raw\nendian: little\n\n" + b"\0" * 20,
         r"the data are 128 bytes \(4 x 4 x 4 int16\) but .* holds 20 after the header: the file is truncated"),
        (b"NRRD0004\ntype: block\nblock size: 4\ndimension: 2\nsizes: 2 2\nencoding: raw\n\n" + b"\0" * 16,
         "type 'block'"),
        (b"NRRD0004\ntype: complex\ndimension: 2\nsizes: 2 2\nencoding: raw\n\n", "unknown type 'complex'"),
        (b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4\nencoding: raw\nendian: little\n\n",
         r"dimension 3 and sizes \[4, 4\] do not agree"),
        (b"NRRD0004\ntype: short\ndimension: 2\nsizes: 2 2\nencoding: raw\n\n" + b"\0" * 8, "'endian' is missing"),
        (b"NRRD0004\ntype: uchar\ndimension: 4\nsizes: 2 3 4 5\nencoding: raw\n\n" + b"\0" * 120,
         r"Mzarr imports 2D/3D images with at most one channel axis"),
        (b"NRRD0004\ntype: uchar\ndimension: 4\nsizes: 2 3 4 5\nkinds: domain domain domain time\nencoding: raw\n\n",
         r"Split the extra dimensions \(e.g. time\)"),
        (b"NRRD0004\ntype: uchar\ndimension: 2\nsizes: 2 2\nencoding: lzw\n\n", "unknown encoding 'lzw'"),
        (b"NRRD0004\ntype: uchar\ndimension: 2\nsizes: 2 2\nencoding: gzip\n\nnot gzip data",
         "cannot be decompressed"),
        (b"NRRD0004\ntype: uchar\ndimension: 2\nsizes: 2 2\nencoding: raw\ndata file: gone.raw\n\n",
         r"the data file gone\.raw it names does not exist"),
        (b"NRRD0004\ntype: uchar\ndimension: 2\nsizes: 2 2\nspace directions: (1,0) (0,nan)\nencoding: raw\n\n"
         + b"\0" * 4, "NaN or infinite"),
        (b"NRRD9\ntype: uchar\n\n", "the first line is not NRRD0001..NRRD0005"),
        (b"NRRD0004\nthis is not a field\n\n", "neither 'field: value' nor 'key:=value'"),
    ],
)
def test_nrrd_bad_files_give_clear_errors(tmp_path, capsys, text, message):
    (tmp_path / "bad.nrrd").write_bytes(text)
    with pytest.raises(MzarrFormatError, match=message):
        read(tmp_path / "bad.nrrd")
    code, _, err = run(capsys, "convert", tmp_path / "bad.nrrd", tmp_path / "x.mzarr")
    assert code == 2 and err.startswith("mzarr convert: error: ") and "Traceback" not in err
    assert not (tmp_path / "x.mzarr").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning:nrrd.*")  # pynrrd stamps headers with utcnow()
def test_nrrd_cross_checked_with_pynrrd(tmp_path):
    nrrd = pytest.importorskip("nrrd", reason="pynrrd is not installed (pip install pynrrd) for the cross-check")
    a, _ = anatomical()
    directions = np.array([[0.0, 2.0, 0.1], [-2.0, 0.0, 0.0], [0.0, 0.1, 2.0]])  # rows: axis vectors (x, y, z)
    header = {"space": "right-anterior-superior", "space directions": directions,
              "space origin": np.array([-5.0, 7.5, 100.0]), "kinds": ["domain"] * 3, "encoding": "gzip"}
    nrrd.write(str(tmp_path / "p.nrrd"), np.asfortranarray(a.T), header)  # pynrrd's default x-first order
    src = read(tmp_path / "p.nrrd")
    assert np.array_equal(values(src), a)
    g = src.attrs["geometry"]
    assert g["space"] == "RAS" and g["origin"] == [-5.0, 7.5, 100.0]
    assert np.allclose((np.asarray(g["direction"]) * np.asarray(src.spacing[::-1])).T, directions, rtol=1e-15)
    # and pynrrd reads what the exporter writes
    with Mzarr(src.array, axes=src.axes, spacing=src.spacing, unit=src.unit, attrs=src.attrs) as m:
        m.save(tmp_path / "p.mzarr")
    formats.export(tmp_path / "p.mzarr", tmp_path / "back.nrrd")
    data, hdr = nrrd.read(str(tmp_path / "back.nrrd"))
    assert np.array_equal(data.T, a) and hdr["space"] == "right-anterior-superior"
    assert np.allclose(hdr["space directions"], directions, rtol=1e-14)
    assert np.array_equal(hdr["space origin"], [-5.0, 7.5, 100.0])


# -- MetaImage ------------------------------------------------------------------------------------------------------
def _mha_header(a: np.ndarray, channels: int = 1, **extra: str) -> str:
    met = {"int8": "MET_CHAR", "uint8": "MET_UCHAR", "int16": "MET_SHORT", "uint16": "MET_USHORT",
           "int32": "MET_INT", "uint32": "MET_UINT", "int64": "MET_LONG_LONG", "uint64": "MET_ULONG_LONG",
           "float32": "MET_FLOAT", "float64": "MET_DOUBLE"}[a.dtype.name]
    spatial = a.shape[:-1] if channels > 1 else a.shape
    fields = {"ObjectType": "Image", "NDims": str(len(spatial)), "BinaryData": "True",
              "BinaryDataByteOrderMSB": "False", "CompressedData": "False",
              "DimSize": " ".join(str(n) for n in spatial[::-1])}
    if channels > 1:
        fields["ElementNumberOfChannels"] = str(channels)
    fields.update(extra)
    fields["ElementType"] = met
    fields.setdefault("ElementDataFile", "LOCAL")
    fields["ElementDataFile"] = fields.pop("ElementDataFile")  # always the last line
    return "".join(f"{k} = {v}\n" for k, v in fields.items())


def test_metaimage_real_volume_geometry_and_lazy_reads(tmp_path):
    a, _ = anatomical()
    header = _mha_header(a, TransformMatrix="0 1 0 -1 0 0 0 0 1", Offset="1.5 -2 3",
                         ElementSpacing="0.5 0.75 2", AnatomicalOrientation="RAI")
    (tmp_path / "a.mha").write_bytes(header.encode() + a.astype("<i2").tobytes())
    src = read(tmp_path / "a.mha")
    assert isinstance(src.array, np.memmap) and np.array_equal(values(src), a)
    assert src.axes == "zyx" and src.spacing == (2.0, 0.75, 0.5) and src.unit == "millimeter"
    g = src.attrs["geometry"]
    # TransformMatrix lists the direction of each index axis in turn: x -> (0, 1, 0), y -> (-1, 0, 0)
    assert g == {"space": "LPS", "origin": [1.5, -2.0, 3.0], "direction": [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0],
                                                                          [0.0, 0.0, 1.0]]}
    assert src.attrs["metaimage_orientation"] == "RAI"
    # detached raw (big-endian), HeaderSize skip, and HeaderSize -1 (data at the end)
    header = _mha_header(a, ElementDataFile="a.raw", BinaryDataByteOrderMSB="True", HeaderSize="16")
    (tmp_path / "a.mhd").write_text(header)
    (tmp_path / "a.raw").write_bytes(b"\xee" * 16 + a.astype(">i2").tobytes())
    src = read(tmp_path / "a.mhd")
    assert np.array_equal(values(src), a) and values(src).dtype.isnative
    (tmp_path / "e.mhd").write_text(_mha_header(a, ElementDataFile="e.raw", HeaderSize="-1"))
    (tmp_path / "e.raw").write_bytes(b"\xee" * 33 + a.astype("<i2").tobytes())
    assert np.array_equal(values(read(tmp_path / "e.mhd")), a)


@pytest.mark.parametrize("dtype", STORED)
def test_metaimage_every_type_compressed_and_not(tmp_path, dtype):
    a = extreme_array((3, 4, 5), dtype, seed=2)
    for msb in (False, True):
        raw = np.ascontiguousarray(a, a.dtype.newbyteorder(">" if msb else "<")).tobytes()
        packed = zlib.compress(raw)
        header = _mha_header(a, BinaryDataByteOrderMSB=str(msb), CompressedData="True",
                             CompressedDataSize=str(len(packed)), ElementDataFile="v.zraw")
        (tmp_path / "v.mhd").write_text(header)
        (tmp_path / "v.zraw").write_bytes(packed)
        got = values(read(tmp_path / "v.mhd"))
        assert got.dtype == np.dtype(dtype) and np.array_equal(got.view(np.uint8), a.view(np.uint8)), msb
        header = _mha_header(a, BinaryDataByteOrderMSB=str(msb))
        (tmp_path / "v.mha").write_bytes(header.encode() + raw)
        got = values(read(tmp_path / "v.mha"))
        assert np.array_equal(got.view(np.uint8), a.view(np.uint8)), msb


def test_metaimage_channels_2d_and_ascii(tmp_path):
    import skimage.data

    rgb = skimage.data.astronaut()[:50, :60]
    (tmp_path / "rgb.mha").write_bytes(_mha_header(rgb, channels=3, ElementSpacing="0.25 0.25").encode()
                                       + rgb.tobytes())
    src = read(tmp_path / "rgb.mha")
    assert src.axes == "yxc" and np.array_equal(values(src), rgb) and src.spacing == (0.25, 0.25)
    assert src.attrs["geometry"]["space"] is None  # 2D: no anatomical frame
    vec = smooth_array((3, 4, 5, 2), "float32", seed=1)
    (tmp_path / "vec.mha").write_bytes(_mha_header(vec, channels=2).encode() + vec.tobytes())
    src = read(tmp_path / "vec.mha")
    assert src.axes == "zyxc" and np.array_equal(values(src), vec)
    small = np.arange(12, dtype=np.int16).reshape(3, 4) - 5
    (tmp_path / "t.mha").write_text(_mha_header(small, BinaryData="False") + " ".join(map(str, small.ravel())))
    assert np.array_equal(values(read(tmp_path / "t.mha")), small)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\nElementDataFile = LOCAL\n",
         r"the data are 128 bytes .* the file is truncated"),
        ("ObjectType = Image\nNDims = 4\nDimSize = 2 2 2 2\nElementType = MET_SHORT\nElementDataFile = LOCAL\n",
         "Mzarr imports 2D and 3D MetaImages"),
        ("ObjectType = Image\nNDims = 2\nDimSize = 2 2\nElementType = MET_STRING\nElementDataFile = LOCAL\n",
         "ElementType = MET_STRING is not one of"),
        ("ObjectType = Image\nNDims = 2\nDimSize = 2 2\nElementType = MET_UCHAR\nElementDataFile = gone.raw\n",
         r"the data file gone\.raw it names does not exist"),
        ("ObjectType = Image\nNDims = 2\nDimSize = 2 2\nElementType = MET_UCHAR\nElementDataFile = LIST\n",
         "one file per slice"),
        ("ObjectType = Image\nNDims = 2\nDimSize = 2 2\nElementType = MET_UCHAR\nCompressedData = True\n"
         "ElementDataFile = LOCAL\nnot zlib", "cannot be decompressed"),
        ("ObjectType = Image\nNDims = 2\nDimSize = 2 2\nElementType = MET_UCHAR\n", "no ElementDataFile line"),
        ("ObjectType = Image\nNDims = 2\nDimSize = 2 2\nElementSpacing = 1 0\nElementType = MET_UCHAR\n"
         "ElementDataFile = LOCAL\n\0\0\0\0", "ElementSpacing = 1 0 is not 2 positive numbers"),
        ("ObjectType = Scene\nNDims = 2\nElementDataFile = LOCAL\n", "is not an Image"),
    ],
)
def test_metaimage_bad_files_give_clear_errors(tmp_path, capsys, header, message):
    (tmp_path / "bad.mha").write_bytes(header.encode("latin-1"))
    with pytest.raises(MzarrFormatError, match=message):
        read(tmp_path / "bad.mha")
    code, _, err = run(capsys, "convert", tmp_path / "bad.mha", tmp_path / "x.mzarr")
    assert code == 2 and err.startswith("mzarr convert: error: ") and "Traceback" not in err


def test_metaimage_and_nrrd_cross_checked_with_simpleitk(tmp_path):
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK is not installed (pip install SimpleITK) "
                                                   "for the cross-check")
    a, _ = anatomical()
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((0.8, 0.9, 2.5))
    img.SetOrigin((-12.5, 30.0, 4.25))
    th = np.deg2rad(25)
    direction = np.array([[np.cos(th), 0, np.sin(th)], [0, 1, 0], [-np.sin(th), 0, np.cos(th)]])
    img.SetDirection(direction.reshape(-1).tolist())
    for name, compress in [("s.mha", True), ("s.mhd", False), ("s.nrrd", True), ("r.nrrd", False)]:
        sitk.WriteImage(img, str(tmp_path / name), useCompression=compress)
        src = read(tmp_path / name)
        assert np.array_equal(values(src), a), name
        assert np.allclose(src.spacing, (2.5, 0.9, 0.8), rtol=1e-15), name
        g = src.attrs["geometry"]
        assert g["space"] == "LPS" and np.allclose(g["origin"], (-12.5, 30.0, 4.25), rtol=1e-15), name
        assert np.allclose(g["direction"], direction, atol=1e-15), name
        if not compress:
            assert isinstance(getattr(src.array, "source", src.array), np.memmap), name


# -- the viewer: drops and File > Import use the registry ----------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Function.*QDragEnterEvent.*deprecated:DeprecationWarning")
def test_viewer_drop_imports_nrrd_and_nifti_and_opens_them(qtbot, tmp_path, monkeypatch):
    """Dropping an NRRD and a NIfTI on the window converts each next to it (progress dialog) and opens the result;
    a drag of a text file is not accepted."""
    pytest.importorskip("PySide6")
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    import mzarr_app.settings as app_settings
    from mzarr_app.window import MainWindow

    monkeypatch.setattr(app_settings, "SETTINGS_FILE", str(tmp_path / "viewer.ini"))
    a, affine = anatomical()
    _nrrd(tmp_path / "anat.nrrd", a, "gzip", fields=GEOMETRY)
    nibabel.save(nibabel.Nifti1Image(np.ascontiguousarray(a.T), affine), tmp_path / "anat2.nii.gz")
    (tmp_path / "notes.txt").write_text("hello")
    w = MainWindow(cache_mb=64, threads=2)
    qtbot.addWidget(w)
    w.show()

    def mime(*paths: Path) -> QMimeData:
        data = QMimeData()
        data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        return data

    def drag(data: QMimeData) -> bool:
        ev = QDragEnterEvent(QPointF(5, 5).toPoint(), Qt.DropAction.CopyAction, data, Qt.MouseButton.NoButton,
                             Qt.KeyboardModifier.NoModifier)
        ev.ignore()
        w.dragEnterEvent(ev)
        return ev.isAccepted()

    datas = [mime(tmp_path / n) for n in ("anat.nrrd", "anat2.nii.gz", "notes.txt")]  # events do not own them
    assert drag(datas[0]) and drag(datas[1]) and not drag(datas[2])
    for data, stem in zip(datas, ("anat", "anat2")):
        w.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.NoButton,
                               Qt.KeyboardModifier.NoModifier))
        dlg = w.import_box  # the import dialog shows what will be imported; Import starts it
        assert dlg is not None and dlg.src.endswith(data.urls()[0].fileName())
        qtbot.waitUntil(lambda dlg=dlg: dlg.plan is not None or bool(dlg.inspect_error), timeout=20000)
        assert not dlg.inspect_error, dlg.inspect_error
        qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
        out = tmp_path / f"{stem}.mzarr"
        assert w.doc is not None and w.doc.path == str(out), stem
        with Mzarr(out) as m:
            assert np.array_equal(m.numpy(), a) and m.axes == "zyx", stem
    w.close()


def test_nifti_is_read_lazily_and_labels_stay_labels(tmp_path):
    src = read(NIB_DATA / "anatomical.nii")  # uncompressed, big-endian: a byte-swapping view of a memory map
    assert isinstance(getattr(src.array, "source", None), np.memmap) and src.array.dtype == np.int16
    a, _ = anatomical()
    assert np.array_equal(np.asarray(src.array[2:4]), a[2:4])
    labels = (smooth_array((40, 50), "uint16", seed=1) // 5000).astype(np.uint16)
    Mzarr(labels, is_label=True).save(tmp_path / "l.mzarr")
    assert read(tmp_path / "l.mzarr").is_label
    import mzarr_core

    mzarr_core.convert(tmp_path / "l.mzarr", tmp_path / "l.ome.zarr")
    with Mzarr(tmp_path / "l.ome.zarr") as m:
        assert m.is_label and m.downsample_method == "mode" and np.array_equal(m.numpy(), labels)


def test_every_picture_format_reads_real_pixels(tmp_path):
    """PNG, BMP, lossless WebP and JPEG XL of a real photograph give its pixels; JPEG its decoded pixels; scikit-image's
    animated GIF becomes a z-stack of colour frames."""
    import imagecodecs
    import skimage.data

    rgb = skimage.data.astronaut()[:128, :160]
    files = {"p.png": imagecodecs.png_encode(rgb), "p.bmp": imagecodecs.bmp_encode(rgb),
             "p.webp": imagecodecs.webp_encode(rgb, lossless=True),
             "p.jxl": imagecodecs.jpegxl_encode(rgb, lossless=True)}
    names = {"p.png": "png", "p.bmp": "bmp", "p.webp": "webp", "p.jxl": "jpegxl"}
    for name, blob in files.items():
        (tmp_path / name).write_bytes(blob)
        src = read(tmp_path / name)
        assert src.axes == "yxc" and np.array_equal(values(src), rgb), name
        renamed = (tmp_path / name).rename(tmp_path / f"{name}.data")
        assert formats.find_format(renamed).name == names[name], name  # found by its content too
    jpeg = Path(skimage.data.__file__).parent / "retina.jpg"
    assert np.array_equal(values(read(jpeg)), imagecodecs.imread(str(jpeg)))
    gif = read(Path(skimage.data.__file__).parent / "no_time_for_that_tiny.gif")
    assert gif.axes == "zyxc" and values(gif).shape == (24, 25, 14, 3)
    import mzarr_core

    mzarr_core.convert(Path(skimage.data.__file__).parent / "no_time_for_that_tiny.gif", tmp_path / "gif.mzarr")
    with Mzarr(tmp_path / "gif.mzarr") as m:
        assert m.axes == "zyxc" and np.array_equal(m.numpy(), values(gif))


def test_a_bundle_offers_only_the_formats_it_holds(monkeypatch):
    """OpenSlide is a pip extra, not in the app bundles: a frozen app (sys.frozen) leaves it out of help texts, the
    import filter and the suffix lists; a pip install lists it with its extra."""
    from mzarr_core import formats

    openslide = formats.get_format("openslide")
    assert not openslide.bundled and openslide.offered
    assert ".mrxs" in formats.describe_readable() and "*.mrxs" in formats.qt_filter()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert not openslide.offered and formats.get_format("nifti").offered
    assert ".mrxs" not in formats.describe_readable() and "*.mrxs" not in formats.qt_filter()
    assert ".mrxs" not in formats.readable_suffixes() and ".nii.gz" in formats.readable_suffixes()
