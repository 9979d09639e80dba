"""Hostile or broken metadata documents (issue 7): every one gives an MzarrFormatError naming the file and the
document (and the key path inside it), within a fixed memory bound, never a bare zarr ValueError, a RecursionError or
gigabytes of memory; ``mzarr info`` prints one line and exits 2."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mzarr_core.ngff import FORMAT_VERSION
from conftest import chunk_blobs, set_blob, smooth_array

from mzarr import Mzarr
from mzarr_core import cli
from mzarr_core.errors import MzarrError, MzarrFormatError
from mzarr_core.metadata_check import (
    MAX_DOCUMENT_BYTES,
    MAX_JSON_DEPTH,
    MAX_JSON_VALUES,
    parse_document,
)
from mzarr_core.ngff import parse_group_attributes
from mzarr_core.sqlite_store import SqliteStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def small(tmp_path) -> Path:
    """A 100 x 90 uint8 file, 32 x 32 chunks: levels 0, 1, 2 (key '0/zarr.json' etc.), with user attrs."""
    return Mzarr(smooth_array((100, 90), "uint8", seed=1), attrs={"k": [1, 2]}).save(tmp_path / "x.mzarr", chunks=(32, 32))


def edit(path: Path, key: str, change) -> None:
    """Apply ``change(doc)`` to the JSON document ``key`` of a .mzarr file (or of a folder)."""
    if path.is_dir():
        doc = json.loads((path / key).read_text())
        change(doc)
        (path / key).write_text(json.dumps(doc))
        return
    doc = json.loads(chunk_blobs(path)[key])
    change(doc)
    set_blob(path, key, json.dumps(doc).encode())


def opening_fails(path: Path, *fragments: str) -> str:
    """Opening ``path`` raises exactly MzarrFormatError whose message holds every fragment; returns the message."""
    with pytest.raises(MzarrFormatError) as info:
        Mzarr(path)
    assert type(info.value) is MzarrFormatError
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "Traceback" not in message and len(message) < 1200, message
    return message


def ngff(doc: dict) -> dict:
    return doc["attributes"]["ome"]["multiscales"][0]


# -- the failure modes of issue 7 -----------------------------------------------------------------------------------
def test_negative_shape(small):
    edit(small, "0/zarr.json", lambda d: d.update(shape=[-5, 10]))
    opening_fails(
        small, "x.mzarr: 0/zarr.json: 'shape' must be a list of positive integers, got [-5, 10]",
        "damaged or was not written by Mzarr: restore it from a backup",
    )


def test_unknown_dtype(small):
    edit(small, "1/zarr.json", lambda d: d.update(data_type="complex512"))
    opening_fails(small, "x.mzarr: 1/zarr.json: 'data_type' 'complex512' is not one Mzarr stores")


def test_unknown_dtype_in_foreign_ome_zarr(tmp_path):
    """Without an mzarr block (another tool's OME-Zarr) any dtype zarr knows is accepted; an unknown one is not."""
    path = Mzarr(smooth_array((40, 30), "uint8")).save(tmp_path / "f.ome.zarr", chunks=(16, 16))
    edit(path, "zarr.json", lambda d: d["attributes"].pop("mzarr"))
    with Mzarr(path) as m:
        assert m.shape == (40, 30)
    edit(path, "0/zarr.json", lambda d: d.update(data_type="uint7"))
    opening_fails(path, "f.ome.zarr: 0/zarr.json: 'data_type' 'uint7' is not a data type zarr knows")


def test_unknown_codec(small):
    edit(small, "0/zarr.json", lambda d: d["codecs"][0].update(name="nope_codec"))
    opening_fails(small, "x.mzarr: 0/zarr.json: 'codecs[0].name' is 'nope_codec', a codec this installation cannot decode")


def test_deeply_nested_json_in_a_level(small):
    set_blob(small, "0/zarr.json", b"[" * 100_000)
    opening_fails(small, "x.mzarr: 0/zarr.json: JSON nested more than 100 levels deep")


def test_deeply_nested_json_in_the_root(small):
    set_blob(small, "zarr.json", b"[" * 100_000 + b"]" * 100_000)
    opening_fails(small, "x.mzarr: zarr.json: JSON nested more than 100 levels deep")


def test_nesting_within_the_parser_limit_is_refused_too(small):
    """900 levels parse, but a later json.dumps / deepcopy of the attributes would hit the recursion limit."""
    raw = chunk_blobs(small)["zarr.json"].decode()
    raw = raw.replace('"k": [', '"k": ' + "[" * 900 + "]" * 900 + ", \"old\": [", 1)
    set_blob(small, "zarr.json", raw.encode())
    opening_fails(small, "x.mzarr: zarr.json: JSON nested more than 100 levels deep")


def _write_big_string_doc(path: Path, n_bytes: int) -> None:
    """Put an ``n_bytes`` string into the user attrs of zarr.json, written in place (no n_bytes copy in memory)."""
    doc = json.loads(chunk_blobs(path)["zarr.json"])
    doc["attributes"]["mzarr"]["attrs"]["note"] = "@@"
    pre, post = json.dumps(doc).encode().split(b"@@")
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("UPDATE zarr SET value=zeroblob(?) WHERE key='zarr.json'", (len(pre) + n_bytes + len(post),))
        (rowid,) = conn.execute("SELECT rowid FROM zarr WHERE key='zarr.json'").fetchone()
        with conn.blobopen("zarr", "value", rowid) as blob:
            blob.write(pre)
            piece = b"x" * 2**20
            for _ in range(n_bytes // len(piece)):
                blob.write(piece)
            blob.write(b"x" * (n_bytes % len(piece)))
            blob.write(post)
        conn.commit()
    finally:
        conn.close()


MEASURE_OPEN = """
import sys
def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) * 1024
from mzarr import Mzarr
from mzarr_core.errors import MzarrFormatError
before = hwm()
try:
    Mzarr(sys.argv[1])
    print("OPENED")
except MzarrFormatError as exc:
    print(type(exc).__name__, exc)
print(before, hwm())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory measured from /proc/self/status")
def test_200_mb_metadata_string_is_refused_in_bounded_memory(small):
    """A 200 MB string in zarr.json (the user attrs) used to cost >1 GB; it is now refused unread: the open's peak
    memory grows by less than 64 MB and the whole process stays below 300 MB."""
    t0 = time.perf_counter()
    _write_big_string_doc(small, 200 * 2**20)
    assert time.perf_counter() - t0 < 20
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_OPEN, str(small)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    first, last = result.stdout.strip().splitlines()[0], result.stdout.strip().splitlines()[-1]
    assert first.startswith("MzarrFormatError ") and "x.mzarr: zarr.json: 209715" in first, first
    assert "more than the 16 MiB a metadata document may hold" in first
    before, peak = (int(v) for v in last.split())
    assert peak - before < 64 * 2**20, (before, peak)
    assert peak < 300 * 2**20, peak


def test_legitimate_large_attrs_still_open(tmp_path):
    """Several MB of user metadata (a long text, a table of 100k numbers) are far inside the limits."""
    attrs = {"text": "lorem ipsum, " * 400_000, "table": [i * 0.5 for i in range(100_000)], "deep": [[[[{"a": 1}]]]]}
    path = Mzarr(np.zeros((8, 8), np.uint8), attrs=attrs).save(tmp_path / "big.mzarr")
    assert len(chunk_blobs(path)["zarr.json"]) > 5 * 2**20
    with Mzarr(path) as m:
        assert m.attrs().to_dict() == attrs


def test_the_value_count_bound(tmp_path):
    """Above 1 MiB, a document is also refused for holding more than MAX_JSON_VALUES values (counted outside
    strings): 16 MiB of [[],[],...] would otherwise take ~400 MB to parse. Commas inside strings do not count."""
    crowd = ("[" + ",".join(["[]"] * (MAX_JSON_VALUES + 10)) + "]").encode()
    doc = b'{"a": ' + crowd + b"}"
    with pytest.raises(MzarrFormatError, match=r"f\.mzarr: zarr\.json: about \d+ JSON values, more than the 1000000"):
        parse_document(doc, "f.mzarr", "zarr.json")
    text = json.dumps({"csv": "1,2,3;" * 600_000}).encode()  # 2 M commas, all inside one string
    assert parse_document(text, "f.mzarr", "zarr.json")["csv"].startswith("1,2,3")
    with pytest.raises(MzarrFormatError, match="more than the 16 MiB"):
        parse_document(b" " * (MAX_DOCUMENT_BYTES + 1), "f.mzarr", "zarr.json")
    nested = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(MzarrFormatError, match="nested more than 100 levels"):
        parse_document(b'{"a": ' + nested + b"}", "f.mzarr", "zarr.json")
    ok = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
    assert parse_document(b'{"a": ' + ok + b"}", "f.mzarr", "zarr.json")


# -- wrong types in the NGFF and mzarr blocks ---------------------------------------------------------------------
def _set(path: list, value):
    def change(doc):
        target = doc
        for k in path[:-1]:
            target = target[k]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


MS = ["attributes", "ome", "multiscales", 0]
MZ = ["attributes", "mzarr"]


@pytest.mark.parametrize(
    "where,value,expected",
    [
        (["attributes"], [], "attributes must be an object, got []"),
        (["attributes", "ome"], [1], "attributes.ome must be an object, got [1]"),
        (["attributes", "ome", "multiscales"], "abc", "attributes.ome.multiscales must be a list of multiscale objects, got 'abc'"),
        (MS, 5, "attributes.ome.multiscales[0] must be an object, got 5"),
        (MS + ["axes"], "yx", "attributes.ome.multiscales[0].axes must be a list of axis objects, got 'yx'"),
        (MS + ["axes", 0], 5, "attributes.ome.multiscales[0].axes[0] must be an axis object or name, got 5"),
        (MS + ["axes", 1, "name"], 7, "attributes.ome.multiscales[0].axes[1].name must be a string, got 7"),
        (MS + ["axes", 1, "unit"], [1], "attributes.ome.multiscales[0].axes[1].unit must be a string"),
        (MS + ["datasets"], {"path": "0"}, "attributes.ome.multiscales[0].datasets must be a list of 1 to 64 dataset objects"),
        (MS + ["datasets"], KeyError, "attributes.ome.multiscales[0].datasets must be a list of 1 to 64 dataset objects, got None"),
        (MS + ["datasets"], [], "attributes.ome.multiscales[0].datasets must be a list of 1 to 64"),
        (MS + ["datasets", 1], "1", "attributes.ome.multiscales[0].datasets[1] must be an object, got '1'"),
        (MS + ["datasets", 1, "path"], 5, "attributes.ome.multiscales[0].datasets[1].path must be a string, got 5 (an integer)"),
        (MS + ["datasets", 1, "path"], KeyError, "attributes.ome.multiscales[0].datasets[1].path must be a string, got None"),
        (MS + ["datasets", 1, "path"], "../../etc", "attributes.ome.multiscales[0].datasets[1].path must be a relative path"),
        (MS + ["datasets", 2, "path"], "0", "attributes.ome.multiscales[0].datasets[2].path must be different from the path of level 0"),
        (MS + ["datasets", 0, "coordinateTransformations"], "scale", "attributes.ome.multiscales[0].datasets[0].coordinateTransformations must be a list"),
        (MS + ["datasets", 1, "coordinateTransformations", 0], None, "attributes.ome.multiscales[0].datasets[1].coordinateTransformations[0] must be an object"),
        (MS + ["datasets", 1, "coordinateTransformations", 0, "type"], 3, "attributes.ome.multiscales[0].datasets[1].coordinateTransformations[0].type must be a string"),
        (MS + ["datasets", 1, "coordinateTransformations", 0, "scale"], {"y": 2}, "attributes.ome.multiscales[0].datasets[1].coordinateTransformations[0].scale must be a list of 2 finite positive numbers"),
        (MS + ["datasets", 1, "coordinateTransformations", 0, "scale"], [2.0, -2.0], "attributes.ome.multiscales[0].datasets[1].coordinateTransformations[0].scale must be a list of 2 finite positive numbers (one per axis 'yx'), got [2.0, -2.0]"),
        (MS + ["datasets", 1, "coordinateTransformations", 0, "scale"], [2.0, "2"], "attributes.ome.multiscales[0].datasets[1].coordinateTransformations[0].scale must be a list of 2"),
        (MS + ["datasets", 1, "coordinateTransformations", 0, "scale"], [2.0], "attributes.ome.multiscales[0].datasets[1].coordinateTransformations[0].scale must be a list of 2"),
        (MS + ["datasets", 2, "coordinateTransformations", 0, "scale"], [1e300, 4.0], "attributes.ome.multiscales[0].datasets[2].coordinateTransformations must be a scale at most"),
        (MS + ["name"], {"n": 1}, "attributes.ome.multiscales[0].name must be a string"),
        (MZ, "x", "attributes.mzarr must be an object, got 'x'"),
        (MZ + ["format_version"], "1", "attributes.mzarr.format_version must be a positive integer, got '1'"),
        (MZ + ["format_version"], 0, "attributes.mzarr.format_version must be a positive integer, got 0"),
        (MZ + ["axes"], ["y", "x"], "attributes.mzarr.axes must be a string such as 'yxc'"),
        (MZ + ["is_label"], "false", "attributes.mzarr.is_label must be true or false, got 'false'"),
        (MZ + ["spacing"], [1.0, "a"], "attributes.mzarr.spacing must be null or a list of 2 finite positive numbers"),
        (MZ + ["spacing"], [1.0, 2.0, 3.0], "attributes.mzarr.spacing must be null or a list of 2"),
        (MZ + ["unit"], 3, "attributes.mzarr.unit must be null or a string, got 3"),
        (MZ + ["downsample"], "median", "attributes.mzarr.downsample must be one of mean, nearest, mode, got 'median'"),
        (MZ + ["codec"], 5, "attributes.mzarr.codec must be null or an object, got 5"),
        (MZ + ["attrs"], [1], "attributes.mzarr.attrs must be an object, got [1]"),
    ],
)
def test_wrong_types_in_ngff_and_mzarr_metadata(small, where, value, expected):
    edit(small, "zarr.json", _set(where, value))
    opening_fails(small, f"x.mzarr: zarr.json: {expected}", "damaged")


def test_unsupported_axes_and_newer_format_keep_their_messages(small):
    edit(small, "zarr.json", lambda d: ngff(d)["axes"].append({"name": "t", "type": "time"}))
    opening_fails(small, "x.mzarr has axes 'yxt'; Mzarr reads 2D/3D images")
    edit(small, "zarr.json", lambda d: d["attributes"]["mzarr"].update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(MzarrFormatError, match=rf"newer Mzarr \(format {FORMAT_VERSION + 1}\).*upgrade"):
        Mzarr(small)


def test_parse_group_attributes_names_the_v2_document():
    """Zarr v2 (NGFF 0.4) keeps the attributes in .zattrs, without the 'ome' wrapper."""
    attrs = {"multiscales": [{"axes": ["y", "x"], "datasets": [{"path": 3}]}]}
    with pytest.raises(MzarrFormatError, match=r"^a\.zarr: \.zattrs: multiscales\[0\]\.datasets\[0\]\.path must be a string"):
        parse_group_attributes(attrs, "a.zarr", ".zattrs", "")


# -- levels --------------------------------------------------------------------------------------------------------
def test_missing_level_array(small):
    with sqlite3.connect(small) as conn:
        conn.execute("DELETE FROM zarr WHERE key LIKE '1/%'")
    conn.close()
    opening_fails(small, "x.mzarr: 1/zarr.json: pyramid level 1 ('1', named in zarr.json attributes) is missing")


def test_missing_level_folder(tmp_path):
    import shutil

    path = Mzarr(smooth_array((60, 50), "uint8")).save(tmp_path / "m.ome.zarr", chunks=(16, 16))
    shutil.rmtree(path / "2")
    opening_fails(path, "m.ome.zarr: 2/zarr.json: pyramid level 2 ('2', named in zarr.json attributes) is missing")


def test_chunk_shape_rank_mismatch(small):
    edit(small, "0/zarr.json", lambda d: d["chunk_grid"]["configuration"].update(chunk_shape=[32]))
    opening_fails(
        small, "x.mzarr: 0/zarr.json: 'chunk_grid.configuration.chunk_shape' [32] has 1 dimensions but 'shape' [100, 90] has 2"
    )


def test_shape_rank_does_not_match_the_axes(small):
    def change(d):
        d["shape"] = [100, 90, 1]
        d["chunk_grid"]["configuration"]["chunk_shape"] = [32, 32, 1]
        d["dimension_names"] = None

    edit(small, "0/zarr.json", change)
    opening_fails(small, "x.mzarr: 0/zarr.json: 'shape' [100, 90, 1] has 3 dimensions but the NGFF axes are 'yx'")


def test_level_shape_that_does_not_follow_level_0(small):
    edit(small, "0/zarr.json", lambda d: d.update(shape=[10**9, 90]))
    opening_fails(small, "x.mzarr: 1/zarr.json: 'shape' [50, 45] of level 1 does not match level 0 [1000000000, 90]")


def hostile_array_docs():
    """(key, change, expected message fragment) for array documents."""
    cfg = lambda d: d["chunk_grid"]["configuration"]  # noqa: E731
    return [
        ("0/zarr.json", lambda d: d.update(shape="100x90"), "'shape' must be a list of positive integers, got '100x90'"),
        ("0/zarr.json", lambda d: d.update(shape=[100, 0]), "'shape' must be a list of positive integers, got [100, 0]"),
        ("0/zarr.json", lambda d: d.update(shape=[100, 90.0]), "'shape' must be a list of positive integers"),
        ("0/zarr.json", lambda d: d.update(shape=[True, 90]), "'shape' must be a list of positive integers"),
        ("2/zarr.json", lambda d: d.update(shape=[2**40, 2**40]), "holds more than 2^48 pixels"),
        ("0/zarr.json", lambda d: d.pop("shape"), "'shape' must be a list of positive integers, got None"),
        ("0/zarr.json", lambda d: cfg(d).update(chunk_shape=[0, 32]), "chunk_shape' must be a list of positive integers, got [0, 32]"),
        ("0/zarr.json", lambda d: cfg(d).update(chunk_shape=[2**20, 2**20]), "makes chunks of more than 1024 MiB decoded"),
        ("0/zarr.json", lambda d: d.update(chunk_grid={"name": "rectilinear"}), "'chunk_grid' must be a regular chunk grid"),
        ("0/zarr.json", lambda d: d.update(chunk_grid="regular"), "'chunk_grid' must be a regular chunk grid, got 'regular'"),
        ("0/zarr.json", lambda d: d.update(chunk_key_encoding={"name": "weird"}), "'chunk_key_encoding' must be the default or v2"),
        ("0/zarr.json", lambda d: d.update(codecs={"name": "bytes"}), "'codecs' must be a list of 1 to 16 codec objects"),
        ("0/zarr.json", lambda d: d.update(codecs=[]), "'codecs' must be a list of 1 to 16 codec objects, got []"),
        ("0/zarr.json", lambda d: d.update(codecs=["bytes"]), "'codecs[0]' must be an object with a 'name', got 'bytes'"),
        ("0/zarr.json", lambda d: d["codecs"][0].update(configuration=[1]), "'codecs[0].configuration' must be an object"),
        ("0/zarr.json", lambda d: d["codecs"][0].update(name=["x"]), "'codecs[0]' must be an object with a 'name'"),
        ("0/zarr.json", lambda d: d.update(data_type=7), "'data_type' 7 is not one Mzarr stores"),
        ("1/zarr.json", lambda d: d.update(data_type="uint16"), "1/zarr.json: level 1 has data type 'uint16' but level 0 has 'uint8'"),
        ("0/zarr.json", lambda d: d.pop("fill_value"), "'fill_value' is missing"),
        ("0/zarr.json", lambda d: d.update(fill_value="lots"), "zarr cannot read it"),
        ("0/zarr.json", lambda d: d.update(fill_value=10**30), "zarr cannot read it"),
        ("0/zarr.json", lambda d: d.update(dimension_names=["x", "y"]), "'dimension_names' ['x', 'y'] do not match the NGFF axes 'yx'"),
        ("0/zarr.json", lambda d: d.update(dimension_names="yx"), "'dimension_names' must be null or a list of 2 names"),
        ("0/zarr.json", lambda d: d.update(attributes=[]), "'attributes' must be an object"),
        ("0/zarr.json", lambda d: d.update(zarr_format=2), "'zarr_format' must be 3, got 2"),
        ("0/zarr.json", lambda d: d.update(node_type="group"), "'node_type' must be \"array\" for a pyramid level, got 'group'"),
        ("0/zarr.json", lambda d: d.update(storage_transformers=[{"name": "sharding?"}]), "'storage_transformers' must be empty"),
        ("0/zarr.json", lambda d: d["codecs"][0]["configuration"].update(effort="max"), "0/zarr.json"),
        ("zarr.json", lambda d: d.update(zarr_format="3"), "'zarr_format' must be 3, got '3'"),
        ("zarr.json", lambda d: d.update(node_type="array"), "'node_type' must be \"group\", got 'array'"),
    ]


@pytest.mark.parametrize("key,change,expected", hostile_array_docs(), ids=lambda v: v if isinstance(v, str) and "/" not in v else None)
def test_hostile_array_documents(small, key, change, expected):
    edit(small, key, change)
    with pytest.raises(MzarrError) as info:
        with Mzarr(small) as m:  # an effort zarr accepts as a config value but the codec rejects is found on read
            m.numpy()
    message = str(info.value)
    assert f"x.mzarr: {key}: " in message or "chunk" in message, message
    assert expected in message, message
    if expected != "0/zarr.json":
        assert type(info.value) is MzarrFormatError


@pytest.mark.parametrize(
    "raw,expected",
    [
        (b"", "not valid JSON"),
        (b"{\"shape\": [1, 2]", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b"[1, 2]", "must be a JSON object, got [1, 2]"),
        (b"null", "must be a JSON object, got None"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "not valid JSON (Exceeds the limit"),
    ],
)
def test_documents_that_are_not_json_objects(small, raw, expected):
    set_blob(small, "1/zarr.json", raw)
    opening_fails(small, "x.mzarr: 1/zarr.json: " + expected)
    set_blob(small, "zarr.json", raw)
    opening_fails(small, "x.mzarr: zarr.json: " + expected)


def test_root_document_missing_or_stored_as_text(small):
    raw = chunk_blobs(small)["zarr.json"]
    with sqlite3.connect(small) as conn:
        conn.execute("UPDATE zarr SET value=? WHERE key='zarr.json'", (raw.decode(),))
    conn.close()
    opening_fails(small, "x.mzarr: zarr.json: stored as SQLite text, not as bytes")
    with sqlite3.connect(small) as conn:
        conn.execute("DELETE FROM zarr WHERE key='zarr.json'")
    conn.close()
    opening_fails(small, "x.mzarr: zarr.json: the root group's metadata is missing")


def test_folder_documents(tmp_path):
    """The OME-Zarr folder form: the same checks on its files; a zarr.json that is a folder; a huge zarr.json."""
    path = Mzarr(smooth_array((60, 50), "uint8")).save(tmp_path / "f.ome.zarr", chunks=(16, 16))
    edit(path, "1/zarr.json", lambda d: d.update(shape=[-1, 25]))
    opening_fails(path, "f.ome.zarr: 1/zarr.json: 'shape' must be a list of positive integers, got [-1, 25]")
    (path / "1" / "zarr.json").unlink()
    (path / "1" / "zarr.json").mkdir()
    opening_fails(path, "f.ome.zarr: 1/zarr.json: not a regular file")
    with open(path / "zarr.json", "r+b") as f:
        f.truncate(MAX_DOCUMENT_BYTES + 10)  # sparse: 16 MiB of NUL bytes that are never read
    opening_fails(path, "f.ome.zarr: zarr.json: 16777226 bytes, more than the 16 MiB")


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_consolidated_metadata(tmp_path):
    """Consolidated metadata (written by other tools) is not used for the levels but must be readable: attrs()
    re-reads the group through zarr, which parses it; a broken block is refused at open, naming zarr.json."""
    import zarr

    path = Mzarr(smooth_array((40, 30), "uint8"), attrs={"a": 1}).save(tmp_path / "c.ome.zarr", chunks=(16, 16))
    zarr.consolidate_metadata(str(path))
    assert "consolidated_metadata" in json.loads((path / "zarr.json").read_text())
    with Mzarr(path) as m:
        assert m.attrs().to_dict() == {"a": 1} and m.shape == (40, 30)
    edit(path, "zarr.json", lambda d: d.update(consolidated_metadata={"kind": "inline", "must_understand": False, "metadata": {"0": {"x": 1}}}))
    opening_fails(path, "c.ome.zarr: zarr.json: zarr cannot read it (KeyError")


def test_ome_zarr_v2_folder_still_opens_and_is_checked(tmp_path):
    """An NGFF 0.4 (Zarr v2) folder written by zarr opens; a broken .zarray in it names that document."""
    import zarr

    a = smooth_array((40, 60), "uint16", seed=3)
    root = zarr.open_group(tmp_path / "v2.zarr", mode="w", zarr_format=2)
    for i, data in enumerate([a, a[::2, ::2]]):
        root.create_array(str(i), shape=data.shape, dtype=data.dtype, chunks=(16, 16))[...] = data
    root.attrs["multiscales"] = [{
        "version": "0.4", "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [2.0**i, 2.0**i]}]} for i in range(2)],
    }]
    with Mzarr(tmp_path / "v2.zarr") as m:
        assert m.shape == (40, 60) and [lv.factor for lv in m.levels] == [(1, 1), (2, 2)]
        assert np.array_equal(m.levels[1][...], a[::2, ::2])
    edit(tmp_path / "v2.zarr", "1/.zarray", lambda d: d.update(chunks=[16]))
    opening_fails(tmp_path / "v2.zarr", "v2.zarr: 1/.zarray: 'chunks' [16] has 1 dimensions but 'shape' [20, 30] has 2")
    edit(tmp_path / "v2.zarr", ".zattrs", lambda d: d["multiscales"][0]["datasets"][0].update(path=None))
    opening_fails(tmp_path / "v2.zarr", "v2.zarr: .zattrs: multiscales[0].datasets[0].path must be a string, got None")


def _legacy_zip(path: Path, zattrs: bytes) -> Path:
    """A minimal Mzarr 0.0.x-like ZIP whose .zattrs is ``zattrs``."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(".zgroup", json.dumps({"zarr_format": 2}))
        z.writestr(".zattrs", zattrs)
        z.writestr("base/.zarray", json.dumps({
            "zarr_format": 2, "shape": [4, 4], "chunks": [4, 4], "dtype": "|u1", "compressor": None,
            "fill_value": 0, "filters": None, "order": "C",
        }))
    return path


def test_legacy_zip_documents_are_bounded(tmp_path):
    deep = _legacy_zip(tmp_path / "deep.mzarr", b"[" * 100_000)
    opening_fails(deep, "deep.mzarr: .zattrs: JSON nested more than 100 levels deep")
    huge = _legacy_zip(tmp_path / "huge.mzarr", b'{"a": "' + b"x" * (MAX_DOCUMENT_BYTES + 1) + b'"}')
    opening_fails(huge, "huge.mzarr: .zattrs: 16777226 bytes, more than the 16 MiB")
    ok = _legacy_zip(tmp_path / "ok.mzarr", b'{"note": "fine"}')
    with Mzarr(ok) as m:
        assert m.shape == (4, 4) and m.attrs().to_dict() == {"note": "fine"}


def test_read_group_info_rereads_attrs_with_the_same_bounds(small):
    """For attrs() re-reads: the group metadata read again, bounded and checked like the open."""
    from mzarr_core.metadata_check import read_group_info

    store = SqliteStore(small, read_only=True)
    try:
        assert read_group_info(store, "sqlite", small).attrs == {"k": [1, 2]}
        set_blob(small, "zarr.json", b"[" * 100_000)
        with pytest.raises(MzarrFormatError, match=r"x\.mzarr: zarr\.json: JSON nested more than 100"):
            read_group_info(store, "sqlite", small)
    finally:
        store.close()


# -- opening stays fast ------------------------------------------------------------------------------------------
def test_each_metadata_document_is_read_once_and_no_chunk(tmp_path, monkeypatch):
    """A 10-level file opens with 11 reads (root + one per level), each document read once, no chunk read."""
    path = tmp_path / "ten.mzarr"
    Mzarr(path, "w", shape=(2048, 2048), dtype="uint8", chunks=(4, 4)).close()
    reads: list[str] = []
    original = SqliteStore._execute

    def spy(self, sql, params=()):
        reads.extend(p for p in params if isinstance(p, str))
        return original(self, sql, params)

    monkeypatch.setattr(SqliteStore, "_execute", spy)
    t0 = time.perf_counter()
    with Mzarr(path) as m:
        elapsed = time.perf_counter() - t0
        assert len(m.levels) == 10
        assert sorted(reads) == sorted(["zarr.json"] + [f"{i}/zarr.json" for i in range(10)]), reads
    assert elapsed < 1.0, elapsed


# -- the command line ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key,raw_or_change,fragment",
    [
        ("0/zarr.json", lambda d: d.update(shape=[-5, 10]), "0/zarr.json: 'shape' must be a list of positive integers"),
        ("zarr.json", b"[" * 100_000, "zarr.json: JSON nested more than 100 levels deep"),
        ("zarr.json", lambda d: ngff(d)["datasets"][1].update(path=5), "zarr.json: attributes.ome.multiscales[0].datasets[1].path"),
        ("0/zarr.json", lambda d: d["codecs"][0].update(name="nope"), "0/zarr.json: 'codecs[0].name' is 'nope'"),
    ],
)
def test_cli_info_prints_one_line_and_exits_2(small, capsys, key, raw_or_change, fragment):
    if isinstance(raw_or_change, bytes):
        set_blob(small, key, raw_or_change)
    else:
        edit(small, key, raw_or_change)
    assert cli.main(["info", str(small)]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "x.mzarr: " + fragment in err, err


def test_cli_info_subprocess_on_deeply_nested_json(small):
    """The issue's report: `mzarr info` on a file with 100000 nested '[' printed a RecursionError traceback."""
    set_blob(small, "zarr.json", b"[" * 100_000)
    result = subprocess.run(
        [sys.executable, "-m", "mzarr_core.cli", "info", str(small)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "x.mzarr: zarr.json: JSON nested more than 100 levels deep" in result.stderr
