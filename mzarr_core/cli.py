"""The ``mzarr`` command: convert, info, export, verify, repair, optimize, annotations, stats."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .formats import SLIDE_FORMATS
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from . import __version__
from .errors import MzarrError, MzarrFormatError, MzarrWarning
from .image import Mzarr

LISTED = 10  # pyramid disagreements printed by `mzarr verify` (all are counted)


# -- path arguments: plain paths or file:// URLs ------------------------------------------------------------------------
def local_path(text: str | os.PathLike) -> Path:
    """A path argument as given, or the local path of a ``file://`` URL (what file managers, browsers and some
    launchers pass): ``file:///data/a%20b.mzarr`` -> ``/data/a b.mzarr``. Percent escapes are decoded (as the
    file system's bytes on POSIX), ``file://localhost/...`` is local, ``file:///C:/...`` is a Windows drive and
    ``file://server/share/...`` a UNC path on Windows. Raises ValueError for a URL that names no local file."""
    text = os.fspath(text)
    if not text[:6].lower() == "file:/":
        return Path(text)
    rest = text[5:]
    host = ""
    if rest.startswith("//"):
        host, sep, tail = rest[2:].partition("/")
        rest = "/" + tail
        if re.fullmatch(r"[A-Za-z][:|]", host):  # file://C:/x, seen from some Windows tools
            rest, host = f"/{host[0]}:{rest}", ""
    if "#" in rest:
        raise ValueError(f"{text}: a file URL cannot hold '#' (write it as %23)")
    if host.lower() not in ("", "localhost"):
        if os.name == "nt":
            from urllib.request import url2pathname

            return Path(url2pathname(f"//{host}{rest}"))
        raise ValueError(f"{text}: the URL names a file on another computer ({unquote(host)}); only local files open")
    if os.name == "nt":
        from urllib.request import url2pathname

        return Path(url2pathname(rest))
    return Path(os.fsdecode(unquote_to_bytes(rest)))


def path_arg(text: str) -> Path:
    """argparse ``type=`` of every path argument: :func:`local_path`, a bad URL as a usage error."""
    try:
        return local_path(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- warnings: one clean line each ---------------------------------------------------------------------------------------
@contextmanager
def clean_warnings() -> Iterator[list[str]]:
    """Show the warnings raised inside (the readers' MzarrWarning: several DICOM series, uneven slice gaps...) as
    ``warning: ...`` lines on stderr, each text once, without Python's file:line noise, above any progress bar.
    Yields the list of texts shown."""
    shown: list[str] = []

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        text = str(message).strip() or category.__name__
        if text in shown:
            return
        shown.append(text)
        first, *more = text.splitlines()
        out = "\n".join([f"warning: {first}", *(f"  {m}" for m in more)])
        try:
            from tqdm import tqdm

            tqdm.write(out, file=sys.stderr)  # clears and redraws an active progress bar
        except ImportError:  # pragma: no cover - tqdm is a dependency
            print(out, file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", MzarrWarning)  # dedup is by text, above: each shown once
        warnings.showwarning = show
        yield shown


# -- attributes, compactly -----------------------------------------------------------------------------------------------
ATTR_DEPTH = 3  # nested attribute dicts shown this deep; deeper ones as "{N keys}"
ATTR_INLINE = 72  # a list / dict whose one-line form is longer than this is summarised
ATTR_TEXT = 100  # a string longer than this is cut
ATTR_KEYS = 40  # keys listed per dict (the rest counted)


def _count(value: Any) -> str:
    """``[175 values]``, ``[4 x 4 values]``, ``[3 lists]``, ``{12 keys}``: a long value summarised."""
    if isinstance(value, dict):
        return f"{{{len(value)} key{'s' if len(value) != 1 else ''}}}"
    n = len(value)
    if n and all(isinstance(v, list) for v in value):
        inner = {len(v) for v in value}
        if len(inner) == 1 and all(not isinstance(x, (list, dict)) for v in value for x in v):
            return f"[{n} x {inner.pop()} values]"
        return f"[{n} lists]"
    return f"[{n} value{'s' if n != 1 else ''}]"


def _inline(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def format_attrs(attrs: dict[str, Any], indent: str = "", depth: int = 0) -> list[str]:
    """``key: value`` lines of JSON attributes, nested dicts indented; long lists and strings and deep dicts are
    summarised (``slice_positions_mm: [175 values]``): ``mzarr info --json`` prints everything."""
    lines: list[str] = []
    items = list(attrs.items())
    for key, value in items[:ATTR_KEYS]:
        if isinstance(value, dict) and value and depth < ATTR_DEPTH:
            if len(_inline(value)) <= ATTR_INLINE // 2:
                lines.append(f"{indent}{key}: {_inline(value)}")
            else:
                lines.append(f"{indent}{key}:")
                lines += format_attrs(value, indent + "  ", depth + 1)
            continue
        text = _inline(value)
        if isinstance(value, (list, dict)) and len(text) > ATTR_INLINE:
            text = _count(value)
        elif len(text) > ATTR_TEXT or "\n" in text:
            first = text.splitlines()[0] if text.strip() else ""
            text = f"{first[:ATTR_TEXT - 20].rstrip()}... ({len(text)} characters)"
        lines.append(f"{indent}{key}: {text}")
    if len(items) > ATTR_KEYS:
        lines.append(f"{indent}... and {len(items) - ATTR_KEYS} more keys")
    return lines


def _describe(image: Mzarr) -> dict[str, Any]:
    """:func:`mzarr_core.report.describe` plus the image's label images (name, dtype, levels, label count) and how
    many annotations it holds."""
    from .report import describe

    out = describe(image)
    label_images = []
    try:
        for name in image.labels():
            lab = image.label(name)
            label_images.append({"name": name, "dtype": str(lab.dtype), "levels": len(lab.levels),
                                 "colors": len(lab.colors), "properties": len(lab.properties)})
    except MzarrFormatError as exc:  # the image itself is fine: say what is wrong with its label images
        out["label_images_error"] = str(exc)
    if label_images:
        out["label_images"] = label_images
    try:
        count = len(image.annotations())
        if count:
            out["annotations"] = count
    except MzarrFormatError as exc:
        out["annotations_error"] = str(exc)
    return out


def format_info(info: dict[str, Any]) -> str:
    """``mzarr info``'s text: the report's lines with the attributes shown compactly (see :func:`format_attrs`)."""
    from .report import format_description

    lines = format_description({**info, "attrs": {}}).splitlines()
    while lines and not lines[-1].startswith("attrs:"):
        lines.pop()
    lines = lines[:-1]
    if info.get("label_images_error"):
        lines.append(f"label images: cannot be read: {info['label_images_error']}")
    for lab in info.get("label_images") or []:
        lines.append(
            f"label image: {lab['name']}  dtype: {lab['dtype']}  levels: {lab['levels']}  colours: {lab['colors']}  "
            f"properties: {lab['properties']}"
        )
    if info.get("annotations_error"):
        lines.append(f"annotations: cannot be read: {info['annotations_error']}")
    if info.get("annotations"):
        lines.append(f"annotations: {info['annotations']} ('mzarr annotations FILE' lists them)")
    attrs = info.get("attrs") or {}
    if not attrs:
        return "\n".join([*lines, "attrs:       {}"])
    return "\n".join([*lines, "attrs:", *format_attrs(attrs, "  ")])


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator:
    """A tqdm bar driven by the library's ``progress(done, total)`` callback, shown from the first report on."""
    from tqdm import tqdm

    bars: list = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=description, total=total, unit="chunk", disable=not enabled, file=sys.stderr))
        bar = bars[0]
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


def parse_region(text: str, ndim: int) -> tuple:
    """``"100:612,2000:2512"`` -> a tuple of slices/ints (NumPy syntax per axis, user axis order)."""
    from .formats.selection import parse_region as parse

    return parse(text, ndim)


def _export(image: Any, out: Path, level: int, region: str | None, quiet: bool = True) -> None:
    """Write a level / region of ``image`` (or of a label image) to ``out`` in the format its suffix names (the formats registry)."""
    from .formats import export

    with progress_bar(f"exporting {out.name}", not quiet) as bar:
        export(image, out, level=level, region=region, progress=bar)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mzarr",
        description="Mzarr multi-resolution images: convert, inspect, export, verify, repair, optimize; annotations "
                    "and region statistics.",
    )
    parser.add_argument("--version", action="version", version=f"mzarr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from . import formats

    readable = formats.describe_readable()
    conv = sub.add_parser(
        "convert", help="any image Mzarr reads -> .mzarr (or *.zarr folder)",
        description=f"Convert an image to .mzarr (or an OME-Zarr *.zarr folder). Reads {readable}.",
    )
    conv.add_argument("input", type=path_arg, help="image file or folder (OME-Zarr, DICOM series)")
    conv.add_argument("output", type=path_arg)
    conv.add_argument("--lossy", action="store_true", help="lossy JPEG XL (uint8/uint16/int8/int16 only)")
    conv.add_argument("--distance", type=float, help="lossy: Butteraugli distance (1.0 = visually lossless)")
    conv.add_argument("--quality", type=float, help="lossy: quality 0-100 instead of --distance")
    conv.add_argument("--effort", type=int, help="JPEG XL effort 1-10 (default 2; 1 for strip bricks)")
    conv.add_argument(
        "--bricks", choices=("blosc", "slabs", "strip", "frames"),
        help="lossless volumes: blosc = each brick Blosc-compressed (default for 16-bit volumes, format 6: ~5x "
        "faster to read than JPEG XL, 1-7 %% larger); slabs = each brick 4 JPEG XL frames of 16 z-slices "
        "(default for 8-bit volumes, format 4: fast bricks and z-planes); strip = each brick one frame (format 2: "
        "opens in Mzarr before format 4); frames = one frame per z-slice (format 1: opens in Mzarr 0.1)",
    )
    conv.add_argument(
        "--no-checksums", dest="checksums", action="store_false",
        help="write chunks without their crc32c checksums (by default every chunk carries one, format 5, so that a "
        "chunk changed on disk is an error, never other pixels): only for Mzarr versions before format 5",
    )
    conv.add_argument("--chunks", help="chunk shape per axis, e.g. 512,512 (default: automatic)")
    conv.add_argument("--levels", type=int, help="number of pyramid levels (default: until one tile)")
    conv.add_argument("--labels", action="store_true", help="segmentation labels: pyramid by mode, lossless")
    conv.add_argument(
        "--labels-from", type=path_arg, metavar="SEG",
        help="attach a segmentation of the image (any readable file: integer values, the image's spatial shape) as "
        "a label image inside the output (OME-NGFF labels/, its own pyramid by mode)",
    )
    conv.add_argument("--labels-name", help="name of the label image of --labels-from (default: SEG's file name)")
    conv.add_argument("--downsample", choices=("mean", "nearest", "mode"))
    conv.add_argument("--channel-axis", type=int, help="position of the channel axis (0 or -1)")
    conv.add_argument("--spacing", help="voxel size per spatial axis, e.g. 0.5,0.25,0.25")
    conv.add_argument("--unit", help="unit of --spacing (default micrometer; um, µm, micron, nm, mm, cm, m are stored "
                      "as their OME-NGFF names micrometer, nanometer...)")
    conv.add_argument(
        "--series",
        help="DICOM: the series to import (a SeriesInstanceUID, a SeriesNumber or #N, the N-th listed; "
        "default: the one with most slices)",
    )
    conv.add_argument("--keep-phi", action="store_true", help="DICOM: keep patient identifiers in the attributes")
    conv.add_argument(
        "--slide-compression", choices=("recompress", "lossless", "lossy"),
        help="whole-slide images: recompress = level 0's JPEG tiles transcoded to JPEG XL without loss (the exact "
        "pixels; levels 1+ lossy); lossy = JPEG XL of the pixels at --distance (default 3); lossless = exact, "
        "several times larger. Default: recompress where that stays within the source's size, else lossy "
        "(lossless for slides stored without loss)",
    )
    conv.add_argument(
        "--workers", type=int, metavar="N",
        help="build and encode the pyramid as dask tasks on N local worker processes (--scheduler threads: N "
        "threads); default: the plain threaded save",
    )
    conv.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="where the dask tasks run: a dask.distributed scheduler, e.g. tcp://host:8786 (its workers read INPUT "
        "by the same path: a shared file system; this process writes OUTPUT), or 'processes' (N local processes) "
        "or 'threads'",
    )
    conv.add_argument(
        "--keep-label", action="store_true",
        help="whole-slide images: keep the label picture and the fields that may identify the patient (left out "
        "by default: labels show barcodes and handwriting)",
    )

    info = sub.add_parser(
        "info", help="shape, dtype, levels, chunks, codec, size and attributes",
        description="Describe a .mzarr (or OME-Zarr): shape, dtype, levels, chunks, codec, size and attributes. "
        "Given any other image Mzarr reads (a DICOM folder or zip, a TIFF, NIfTI, NRRD...), describe what "
        "`mzarr convert` would import from it (for DICOM: the series found, the imported one marked), without "
        "converting.",
    )
    info.add_argument("file", type=path_arg, help=".mzarr file, OME-Zarr folder or any importable image (or file:// URL)")
    info.add_argument("--json", action="store_true", help="print JSON (every attribute in full)")
    info.add_argument("--series", help="DICOM: the series to describe as imported (as for convert --series)")

    writes = ", ".join(formats.export_suffixes())
    exp = sub.add_parser(
        "export", help=f"write a level or a region to {writes}",
        description=f"Write a level or a region of a .mzarr, streamed, in the format OUTPUT's suffix names: {writes}. "
        ".ome.tif: pyramidal OME-TIFF (every coarser level as SubIFDs); .nii/.nii.gz, .nrrd, .mha: with spacing, "
        "origin and direction (a label image, --label, gets the image's).",
    )
    exp.add_argument("file", type=path_arg)
    exp.add_argument("output", type=path_arg)
    exp.add_argument("--level", type=int, default=0)
    exp.add_argument("--region", help="NumPy-style region, e.g. 1000:1512,2000:2512 (an integer drops its axis)")
    exp.add_argument("--label", metavar="NAME",
                     help="export the label image NAME (a segmentation) instead of the image, in the image's geometry")
    exp.add_argument("--quiet", action="store_true", help="no progress bar")

    ver = sub.add_parser(
        "verify", help="decode every chunk of every level and check each level against the level below downsampled"
    )
    ver.add_argument("file", type=path_arg)

    sal = sub.add_parser(
        "salvage",
        help="write what still reads of a damaged file to a NEW file: every sound chunk bit for bit, damaged chunks "
        "from their planes that still decode or the next coarser level (listed, and recorded in its attributes)",
    )
    sal.add_argument("file", type=path_arg)
    sal.add_argument("output", type=path_arg, help="the new .mzarr (or .ome.zarr) file")
    rep = sub.add_parser(
        "repair",
        help="rebuild every pyramid level from level 0 (writes only the chunks that change; the chunks it replaces "
        "are kept in FILE.replaced-TIME.zip)",
    )
    rep.add_argument("file", type=path_arg)
    rep.add_argument("--undo", metavar="KEPT", type=path_arg,
                     help="put back the chunks a repair replaced, from the ZIP it kept beside the file (refused "
                     "when a chunk the repair wrote changed since: a later edit)")
    rep.add_argument("--force", action="store_true",
                     help="with --undo: put the chunks back even over chunks changed since the repair")
    rep.add_argument("--no-keep", dest="keep", action="store_false",
                     help="do not keep a copy of the chunks the repair replaces")

    opt = sub.add_parser(
        "optimize",
        help="re-encode lossless JPEG XL chunks at a higher effort, in place: smaller file, same pixels, slower decoding",
    )
    opt.add_argument("file", type=path_arg)
    opt.add_argument(
        "--effort", type=int, default=3,
        help="JPEG XL effort 1-10 (default 3: ~10%% smaller than the default 2, decodes ~2x slower; see BENCHMARKS.md)",
    )
    ann = sub.add_parser(
        "annotations", help="list a file's annotations, export them to GeoJSON or import GeoJSON (QuPath's convention)",
        description="List the annotations stored in a .mzarr (or OME-Zarr folder), write them as GeoJSON in QuPath's "
        "convention (--export), or add the features of a GeoJSON file (--import; QuPath: File > Object data > Export "
        "as GeoJSON). Coordinates are full-resolution pixels (x, y).",
    )
    ann.add_argument("file", type=path_arg)
    what = ann.add_mutually_exclusive_group()
    what.add_argument("--export", type=path_arg, metavar="OUT.geojson", help="write every annotation to this file")
    what.add_argument("--import", dest="import_", type=path_arg, metavar="IN.geojson",
                      help="add these features (one with the id of a stored annotation replaces it)")
    ann.add_argument("--replace", action="store_true", help="--import: drop the stored annotations first")
    ann.add_argument("--plane", help="--import into a volume: the plane of features that name none, e.g. z=10")
    ann.add_argument("--json", action="store_true", help="print the list as JSON")

    sts = sub.add_parser(
        "stats", help="statistics of a region (or length and profile of a line) from full-resolution pixels",
        description="Pixel count, physical area, mean, std, min, max (per channel) of a rectangle, ellipse or "
        "polygon, streamed chunk by chunk from level 0; or the physical length and the profile of a line. "
        "Coordinates are full-resolution pixels x,y (column, row) of the plane.",
    )
    sts.add_argument("file", type=path_arg)
    shape = sts.add_mutually_exclusive_group(required=True)
    shape.add_argument("--rect", metavar="X0,Y0,X1,Y1", help="rectangle given by two opposite corners (negative "
                       "numbers: --rect=-5,-5,3,3)")
    shape.add_argument("--ellipse", metavar="X0,Y0,X1,Y1", help="ellipse given by its bounding box")
    shape.add_argument("--polygon", metavar="X,Y,X,Y,...", help="polygon vertices (3 or more)")
    shape.add_argument("--line", metavar="X,Y,X,Y,...", help="line (or polyline): length and profile")
    shape.add_argument("--annotation", metavar="NAME", help="a stored annotation, by name or id")
    sts.add_argument("--plane", help="volumes: the plane, e.g. z=10 (y=... or x=... for the other axes)")
    sts.add_argument("--bins", type=int, default=256, help="histogram bins (0: none; default 256)")
    sts.add_argument("--json", action="store_true", help="print JSON (with the histogram or the profile)")
    for p in (conv, ver, rep, sal, opt, sts):
        p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    from .convert import convert
    from .report import verify

    if args.command == "convert":
        options: dict = {}
        if args.lossy or args.distance is not None or args.quality is not None:
            options.update(lossless=False, distance=args.distance, quality=args.quality)
        if args.chunks:
            options["chunks"] = tuple(int(c) for c in _number_list(args.chunks, "chunks", int, "512,512"))
        if args.spacing:
            options["spacing"] = tuple(_number_list(args.spacing, "spacing", float, "0.5,0.25,0.25"))
        for name in ("effort", "levels", "downsample", "channel_axis", "unit", "bricks"):
            if getattr(args, name) is not None:
                options[name] = getattr(args, name)
        if args.labels:
            options["is_label"] = True
        if not args.checksums:
            options["checksums"] = False
        if args.scheduler is not None:
            options["scheduler"] = args.scheduler
        elif args.workers is not None:
            options["scheduler"] = "processes"  # faster than threads: docs/BENCHMARKS.md, "Distributed conversion"
        if args.workers is not None:
            options["workers"] = args.workers
        read_options = {"series": args.series, "keep_phi": args.keep_phi, "compression": args.slide_compression,
                        "keep_label": args.keep_label}
        if args.lossy and args.slide_compression is None and getattr(_import_format(args.input), "name", "") in SLIDE_FORMATS:
            read_options["compression"] = "lossy"  # --lossy on a slide: its lossy mode
        if args.labels_name is not None and args.labels_from is None:
            raise MzarrError("--labels-name names the label image of --labels-from SEG: give --labels-from too")
        with progress_bar(f"converting {args.input.name}", not args.quiet) as bar:
            out = convert(args.input, args.output, progress=bar, read_options=read_options,
                          report=lambda line: print(line, flush=True), labels_from=args.labels_from,
                          labels_name=args.labels_name, **options)
        with Mzarr(out) as image:
            print(format_info(_describe(image)))
        return 0
    if args.command == "info":
        importing = _import_format(args.file)
        if importing is not None:
            summary = describe_import(args.file, args.series)
            print(json.dumps(summary, indent=2, default=str) if args.json else format_import(summary))
            return 0
        if args.series is not None:
            raise MzarrError(f"--series applies to DICOM sources only; {args.file.name} is a Mzarr image")
        with Mzarr(args.file) as image:
            summary = _describe(image)
        print(json.dumps(summary, indent=2) if args.json else format_info(summary))
        return 0
    if args.command == "export":
        with Mzarr(args.file) as image:
            source = image if args.label is None else image.label(args.label)
            _export(source, args.output, args.level, args.region, args.quiet)
        print(f"wrote {args.output}")
        return 0
    if args.command == "verify":
        with Mzarr(args.file) as image, progress_bar(f"verifying {args.file.name}", not args.quiet) as bar:
            report = verify(image, bar)
        for problem in report.damaged:
            print(f"DAMAGED: {problem}")
        for problem in report.structure_problems:
            print(f"PYRAMID: {problem}")
        for disagreement in report.disagreements[:LISTED]:
            print(f"PYRAMID: {disagreement}")
        for line in report.missing[:LISTED]:
            print(f"MISSING: {line}")
        if report.disagreement_count > LISTED:
            print(f"PYRAMID: ... and {report.disagreement_count - LISTED} more chunks disagree")
        print(f"{report.chunks_checked} chunks checked, {len(report.damaged)} damaged")
        print(report.pyramid_note)
        if report.pyramid_checked:
            print(f"{report.chunks_compared} pyramid chunks compared, {report.disagreement_count} disagree")
        for name, lab in report.labels.items():
            for problem in lab.problems[:LISTED]:
                print(f"label image {name!r}: {problem}")
            print(f"label image {name!r}: {lab.chunks_checked} chunks checked, {len(lab.damaged)} damaged, "
                  f"{lab.chunks_compared} pyramid chunks compared, {lab.disagreement_count} disagree")
        if report.disagreement_count or report.structure_problems or any(
            r.disagreement_count or r.structure_problems for r in report.labels.values()
        ):
            if report.checksums:  # every chunk passed its checksum: the coarser levels are stale, level 0 is sound
                print(f"the pyramid does not match level 0: 'mzarr repair {args.file}' rebuilds it from level 0")
            else:
                print("the pyramid does not match level 0. This file's chunks carry no checksums (written before "
                      "format 5), so a chunk of level 0 changed on disk cannot be told from a stale coarser level: "
                      f"if level 0 may be damaged, restore the file from a backup; 'mzarr repair {args.file}' "
                      "rebuilds the coarser levels from level 0")
        if any("checksum" in problem for problem in report.damaged):
            print("chunks whose bytes fail their checksum changed on disk after they were written (a failing disk, "
                  "a bad copy): restore the file from a backup; a damaged coarser level alone is rebuilt from level 0 "
                  f"by 'mzarr repair {args.file}'")
        if report.missing:
            print(f"chunks not stored read as the fill value: if they were lost rather than cleared, 'mzarr salvage "
                  f"{args.file} NEW.mzarr' recovers them from the level above (a repair would rebuild the overviews "
                  "from the holes; it keeps what it replaces, so it can be undone)")
        if 0 in report.damaged_at or any(0 in r.damaged_at for r in report.labels.values()):
            print(f"without a backup, 'mzarr salvage {args.file} NEW.mzarr' saves every sound pixel and fills the "
                  "damaged chunks from what is left (listed in the new file)")
        return 0 if report.ok else 1
    if args.command == "repair":
        return _repair(args)
    if args.command == "salvage":
        from .salvage import salvage_file

        with progress_bar(f"salvaging {args.file.name}", not args.quiet) as bar:
            salvaged = salvage_file(args.file, args.output, progress=bar)
        for line in salvaged.lines():
            print(line)
        return 0
    if args.command == "annotations":
        return _annotations(args)
    if args.command == "stats":
        return _stats(args)
    if args.command == "optimize":
        from .optimizer import optimize

        args.interrupt_note = "the chunks re-encoded so far are kept; the file is whole: run optimize again to finish"
        with progress_bar(f"optimizing {args.file.name}", not args.quiet) as bar:
            optimized = optimize(args.file, args.effort, bar)
        for line in optimized.lines():
            print(line)
        return 0
    raise AssertionError(args.command)


def _import_format(path: Path) -> Any:
    """The registry's format of ``path`` when it is an image to import (not a .mzarr / OME-Zarr), else None (also
    when no format claims it: opening it as a Mzarr then says what is wrong)."""
    from . import formats

    try:
        fmt = formats.find_format(path)
    except MzarrError:
        return None
    return None if fmt.native else fmt


def describe_import(path: Path, series: str | None = None) -> dict[str, Any]:
    """What ``mzarr convert`` would import from ``path`` (an image that is not a .mzarr), from its headers and a lazy
    open: format, shape, dtype, axes, spacing and attributes; for DICOM the series found and the one imported.
    Nothing is converted and no file is written."""
    from dataclasses import asdict

    import numpy as np

    from . import formats
    from .axes import infer_axes

    fmt = formats.find_format(path)
    out: dict[str, Any] = {"path": str(path), "format": fmt.title, "imported_by": "mzarr convert"}
    options: dict[str, Any] = {"series": series}
    if fmt.name == "dicom":
        try:
            from .formats.dicom import (
                format_dicom_series,
                list_dicom_series,
                pick_series,
            )
        except ImportError as exc:
            raise fmt.missing_package(exc, "reading") from None
        try:
            found = list_dicom_series(path)
        except ImportError as exc:
            raise fmt.missing_package(exc, "reading") from None
        chosen = pick_series(found, series)
        if chosen is not None:
            options["series"] = chosen  # exactly this one: no "several series" warning, the list says it
        out["dicom_series"] = [{**asdict(s), "files": len(s.files)} for s in found]
        out["chosen_series"] = chosen.index if chosen is not None else None
        out["series_listing"] = format_dicom_series(found, chosen)
    slide = formats.slide_module(fmt)
    if slide is not None:  # what the scanner wrote, the compressions and their estimated sizes
        out["slide_listing"] = slide.describe_slide(path).lines()
    source = formats.read(path, **options)
    try:
        shape = tuple(int(n) for n in source.array.shape)
        dtype = np.dtype(source.array.dtype)
        try:
            axes: str | None = infer_axes(shape, dtype, source.axes)
        except MzarrError as exc:
            axes = None
            out["axes_note"] = str(exc)
        out.update(
            shape=list(shape),
            dtype=str(dtype),
            axes=axes,
            spacing=list(source.spacing) if source.spacing else None,
            unit=source.unit,
            is_label=source.is_label,
            raw_bytes=int(np.prod(shape, dtype=np.int64)) * dtype.itemsize,
            attrs=source.attrs,
        )
    finally:
        if source.owner is not None and hasattr(source.owner, "close"):
            source.owner.close()
    return out


def format_import(info: dict[str, Any]) -> str:
    """Human-readable lines of :func:`describe_import`."""
    lines = [
        f"file:        {info['path']}",
        f"format:      {info['format']}: not a .mzarr; `mzarr convert` imports it as below (nothing was converted)",
    ]
    if "series_listing" in info:
        count = len(info["series_listing"])
        lines.append(
            f"series:      {count} found" + ("; * = the one imported (pick another with --series #N, a SeriesNumber "
                                             "or a SeriesInstanceUID)" if count > 1 else "")
        )
        lines += [f"  {line}" for line in info["series_listing"]]
    lines += info.get("slide_listing", [])
    shape = tuple(info["shape"])
    axes = info["axes"] or f"? ({info.get('axes_note', 'unknown')})"
    lines.append(f"import:      shape {shape}  axes: {axes}  dtype: {info['dtype']}"
                 + ("  (labels)" if info.get("is_label") else ""))
    spacing = tuple(info["spacing"]) if info["spacing"] else "not set"
    lines.append(f"spacing:     {spacing} {info['unit'] or ''}".rstrip())
    lines.append(f"size:        {info['raw_bytes'] / 1e6:.2f} MB raw (level 0)")
    attrs = info.get("attrs") or {}
    lines += ["attrs:", *format_attrs(attrs, "  ")] if attrs else ["attrs:       {}"]
    return "\n".join(lines)


def _repair(args: argparse.Namespace) -> int:
    from .repair import repair_pyramid

    if args.undo is not None:
        from .replaced import restore_replaced

        args.interrupt_note = "the undo was rolled back; no file was changed"
        with Mzarr(args.file, "r+") as image:
            count = restore_replaced(image, args.undo, force=args.force)
        print(f"put back {count} chunk(s) from {args.undo} into {args.file}")
        return 0
    args.interrupt_note = (
        "the pyramid may be partly rebuilt (a folder cannot be repaired in one transaction; level 0 is never "
        f"changed): run 'mzarr repair {args.file}' again"
        if args.file.is_dir()
        else "the repair was rolled back; no file was changed"
    )
    # A file that cannot be written (read-only media, permissions) is refused by the open with 'r+'.
    with Mzarr(args.file, "r+") as image, progress_bar(f"repairing {args.file.name}", not args.quiet) as bar:
        report = repair_pyramid(image, bar, keep_replaced=args.keep)
    for line in report.lines():
        print(line)
    if not report.atomic and report.rewritten:
        print("note: a folder is repaired chunk by chunk, not in one transaction")
    return 0


def _plane(text: str | None) -> tuple[str, int] | None:
    """``"z=10"`` -> ("z", 10)."""
    if text is None:
        return None
    axis, _, index = text.partition("=")
    if axis.strip() not in ("z", "y", "x") or not index.strip().isdigit():
        raise MzarrError(f"--plane must be AXIS=INDEX with AXIS z, y or x, e.g. z=10; got {text!r}")
    return axis.strip(), int(index)


def _number_list(text: str, option: str, kind: type, example: str) -> list:
    """``"0.5,0.25"`` -> [0.5, 0.25]; anything else a clear error naming ``--option``."""
    try:
        return [kind(v) for v in text.split(",")]
    except ValueError:
        what = "whole numbers" if kind is int else "numbers"
        raise MzarrError(f"--{option} takes {what} separated by commas, e.g. {example}; got {text!r}") from None


def _numbers(text: str, option: str, count: int | None = None) -> list[tuple[float, float]]:
    """``"1,2,3,4"`` -> [(1, 2), (3, 4)]."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise MzarrError(f"--{option} takes numbers separated by commas (x,y,x,y...), got {text!r}") from None
    if len(values) % 2 or (count is not None and len(values) != 2 * count):
        need = f"{2 * count} numbers" if count else "an even count of numbers"
        raise MzarrError(f"--{option} takes {need} (x,y pairs), got {len(values)}")
    return list(zip(values[0::2], values[1::2]))


def _annotations(args: argparse.Namespace) -> int:
    from .annotations import read_geojson_features, write_geojson

    if args.import_ is None and (args.replace or args.plane):
        raise MzarrError("--replace and --plane apply to --import only")
    if args.import_ is not None:
        plane = _plane(args.plane)
        features = read_geojson_features(args.import_)  # a Multi- geometry's pieces: one annotation each
        incoming = [a if a.plane is not None or plane is None else a.with_(plane=plane) for f in features for a in f]
        with Mzarr(args.file, "r+") as image:
            planeless = sum(any(a.plane is None for a in f) for f in features)
            if plane is None and planeless and len(image.spatial_axes) == 3:
                raise MzarrError(f"{planeless} of the {len(features)} features of {args.import_.name} name no plane, but "
                                 f"the image is a volume (axes {image.axes!r}, shape {image.shape}): say which plane "
                                 "they lie on with --plane AXIS=INDEX, e.g. --plane z=10")
            if plane is not None:
                _check_cli_plane(image, plane)
            kept = [] if args.replace else image.annotations()
            ids = {a.id for a in incoming}
            image.set_annotations([a for a in kept if a.id not in ids] + incoming)
            total = len(image.annotations())
        print(f"imported {len(incoming)} annotations from {args.import_.name}; {args.file.name} holds {total}")
        return 0
    with Mzarr(args.file) as image:
        items = image.annotations()
    if args.export is not None:
        if args.export.name.lower().endswith((".mzarr", ".zarr")) or (
                args.export.exists() and os.path.samefile(args.export, args.file)):
            raise MzarrError(f"--export {args.export.name}: annotations are written as GeoJSON, over no image: give "
                             "a .geojson file name")
        write_geojson(items, args.export)
        print(f"wrote {len(items)} annotations to {args.export}")
        return 0
    if args.json:
        print(json.dumps([a.to_json() for a in items], indent=2))
        return 0
    for a in items:
        where = f" on {a.plane[0]}={a.plane[1]}" if a.plane else ""
        klass = f" [{a.class_name}]" if a.class_name else ""
        print(f"{a.kind:9} {a.name or '(no name)'}{klass}{where}: {len(a.points)} points, id {a.id}")
    print(f"{len(items)} annotations")
    return 0


def _check_cli_plane(image: Mzarr, plane: tuple[str, int] | None) -> None:
    """``--plane`` against the image: required for a volume, refused for a 2D image, within the axis."""
    spatial = image.spatial_axes
    shape = dict(zip(image.axes, image.shape))
    if len(spatial) == 2:
        if plane is not None:
            raise MzarrError(f"the image is 2D (axes {image.axes!r}): leave out --plane")
        return
    if plane is None:
        raise MzarrError(f"the image is a volume (axes {image.axes!r}, shape {image.shape}): say which plane with "
                         "--plane AXIS=INDEX, e.g. --plane z=10")
    axis, index = plane
    if not 0 <= index < shape[axis]:
        raise MzarrError(f"--plane {axis}={index} is beyond the volume: axis {axis} has planes 0..{shape[axis] - 1}")


def _stats(args: argparse.Namespace) -> int:
    from .annotations import Annotation
    from .regions import line_profile, region_stats

    plane = _plane(args.plane)
    with Mzarr(args.file) as image:
        if args.annotation is None:
            _check_cli_plane(image, plane)
        if args.annotation is not None:
            found = [a for a in image.annotations() if args.annotation in (a.name, a.id)]
            if not found:
                raise MzarrError(f"{args.file.name} has no annotation named {args.annotation!r} ('mzarr annotations "
                                 f"{args.file}' lists them)")
            shape = found[0]
            if plane is not None and plane != shape.plane:
                where = "no plane" if shape.plane is None else f"plane {shape.plane[0]}={shape.plane[1]}"
                raise MzarrError(f"annotation {args.annotation!r} lies on {where}: --plane applies to --rect, "
                                 "--ellipse, --polygon and --line only")
        elif args.line is not None:
            shape = Annotation("line", _numbers(args.line, "line"), plane=plane)
        elif args.polygon is not None:
            shape = Annotation("polygon", _numbers(args.polygon, "polygon"), plane=plane)
        else:
            kind, text = ("rectangle", args.rect) if args.rect is not None else ("ellipse", args.ellipse)
            shape = Annotation(kind, _numbers(text, "rect" if kind == "rectangle" else kind, 2), plane=plane)
        if shape.kind == "point":
            raise MzarrError(f"{args.annotation!r} is a point: statistics need a region or a line")
        if shape.kind == "line":
            with progress_bar(f"profile of {args.file.name}", not args.quiet) as bar:
                prof = line_profile(image, shape, progress=bar)
            unit = prof.unit or "px"
            if args.json:
                print(json.dumps({"length": prof.length, "length_px": prof.length_px, "unit": prof.unit,
                                  "value_unit": prof.value_unit, "distance": prof.distance.tolist(),
                                  "values": prof.values.tolist()}))
            else:
                print(f"length: {prof.length:.6g} {unit} ({prof.length_px:.6g} px), {len(prof.values)} samples, "
                      f"min {prof.values.min()} max {prof.values.max()}")
            return 0
        with progress_bar(f"statistics of {args.file.name}", not args.quiet) as bar:
            stats = region_stats(image, shape, bins=args.bins, progress=bar)
    if stats.count == 0:
        raise MzarrError("no pixel of the image has its centre inside that region (coordinates are full-resolution "
                         f"pixels x,y; the image is {image.shape} {image.axes!r})")
    if args.json:
        def numbers(values: tuple[float, ...]) -> list[float | None]:  # JSON has no NaN: an all-NaN region's is null
            return [float(v) if math.isfinite(v) else None for v in values]

        channels = range(stats.channels)
        print(json.dumps({
            "count": stats.count, "area": stats.area, "area_unit": stats.area_unit, "unit": stats.unit,
            "value_unit": stats.value_unit, "mean": numbers(stats.mean),
            "std": numbers(stats.std), "min": numbers(stats.min), "max": numbers(stats.max),
            "finite": [stats.finite(c) for c in channels],
            "nan": list(stats.nan or [0] * stats.channels), "posinf": list(stats.posinf or [0] * stats.channels),
            "neginf": list(stats.neginf or [0] * stats.channels),
            "histogram": [h.tolist() for h in stats.histogram], "bin_edges": [e.tolist() for e in stats.bin_edges],
        }, allow_nan=False))
    else:
        print("\n".join(stats.lines()))
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


# The library's advice written for Python callers, as the command line says it ({command}: the mzarr command run)
CLI_WORDS = (
    (re.compile(r"^(chunks|spacing|levels|effort|distance|quality) must"), r"--\1 must"),
    (re.compile(r"channel_axis=(-?\d+) is in the middle of shape (\([^)]*\)); move it first or last with numpy\.moveaxis\("
                r"array, channel_axis, 0\)"),
     r"--channel-axis \1 is in the middle of shape \2: the channel axis is the first or the last one (--channel-axis 0 "
     "or -1)"),
    (re.compile(r"Open it read-only \(mode 'r'\), or copy it to a writable (?:folder|place) to edit it"),
     "'mzarr {command}' changes the file in place: copy it to a writable folder and run 'mzarr {command}' on the "
     "copy ('mzarr info', 'export' and 'verify' only read it)"),
)


def cli_words(text: str, command: str) -> str:
    """An error's text with the library's Python-call advice (``mode 'r'``) replaced by what the ``mzarr`` user
    types."""
    for pattern, words in CLI_WORDS:
        text = pattern.sub(words.replace("{command}", command), text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mzarr`` console script: never a traceback. Bad input and damaged files give one clear
    line and exit code 2; an unexpected exception (a bug) gives one line naming its type and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        with clean_warnings():
            return run(args)
    except BrokenPipeError:  # e.g. `mzarr info x.mzarr | head`: the reader went away, nothing to report
        sys.stderr.close()
        return 0
    except (MzarrError, OSError, IndexError, ValueError) as exc:
        text = cli_words(_one_line(str(exc)), args.command)
        print(f"mzarr {args.command}: error: {text or type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mzarr: interrupted; {getattr(args, 'interrupt_note', 'no file was changed')}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 -- includes MemoryError and RecursionError: one line, no traceback
        detail = _one_line(str(exc))[:500]
        what = "ran out of memory" if isinstance(exc, MemoryError) else "failed unexpectedly"
        print(
            f"mzarr {args.command}: error: {what}: {type(exc).__name__}{': ' + detail if detail else ''} "
            "-- this is a bug in mzarr, please report it",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
