"""The ``mzarr`` command: convert, info, export, verify, repair, optimize."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import __version__
from .errors import MzarrError
from .image import Mzarr

LISTED = 10  # pyramid disagreements printed by `mzarr verify` (all are counted)


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


def _export(image: Mzarr, out: Path, level: int, region: str | None, quiet: bool = True) -> None:
    """Write a level / region of ``image`` to ``out`` in the format its suffix names (the formats registry)."""
    from .formats import export

    with progress_bar(f"exporting {out.name}", not quiet) as bar:
        export(image, out, level=level, region=region, progress=bar)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mzarr", description="Mzarr multi-resolution images: convert, inspect, export, verify, repair.")
    parser.add_argument("--version", action="version", version=f"mzarr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from . import formats

    readable = formats.describe_readable()
    conv = sub.add_parser(
        "convert", help="any image Mzarr reads -> .mzarr (or *.zarr folder)",
        description=f"Convert an image to .mzarr (or an OME-Zarr *.zarr folder). Reads {readable}.",
    )
    conv.add_argument("input", type=Path, help="image file or folder (OME-Zarr, DICOM series)")
    conv.add_argument("output", type=Path)
    conv.add_argument("--lossy", action="store_true", help="lossy JPEG XL (uint8/uint16/int8/int16 only)")
    conv.add_argument("--distance", type=float, help="lossy: Butteraugli distance (1.0 = visually lossless)")
    conv.add_argument("--quality", type=float, help="lossy: quality 0-100 instead of --distance")
    conv.add_argument("--effort", type=int, help="JPEG XL effort 1-10 (default 2; 1 for strip bricks)")
    conv.add_argument(
        "--bricks", choices=("strip", "frames"),
        help="lossless volumes: strip = each brick one JPEG XL frame (default, format 2: ~3x faster reads); "
        "frames = one frame per z-slice (format 1: a z-plane decodes alone; opens in Mzarr 0.1)",
    )
    conv.add_argument("--chunks", help="chunk shape per axis, e.g. 512,512 (default: automatic)")
    conv.add_argument("--levels", type=int, help="number of pyramid levels (default: until one tile)")
    conv.add_argument("--labels", action="store_true", help="segmentation labels: pyramid by mode, lossless")
    conv.add_argument("--downsample", choices=("mean", "nearest", "mode"))
    conv.add_argument("--channel-axis", type=int, help="position of the channel axis (0 or -1)")
    conv.add_argument("--spacing", help="voxel size per spatial axis, e.g. 0.5,0.25,0.25")
    conv.add_argument("--unit", help="unit of --spacing (default micrometer)")
    conv.add_argument(
        "--series",
        help="DICOM: the series to import (a SeriesInstanceUID, a SeriesNumber or #N, the N-th listed; "
        "default: the one with most slices)",
    )
    conv.add_argument("--keep-phi", action="store_true", help="DICOM: keep patient identifiers in the attributes")

    info = sub.add_parser("info", help="shape, dtype, levels, chunks, codec, size and attributes")
    info.add_argument("file", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON")

    writes = ", ".join(formats.export_suffixes())
    exp = sub.add_parser(
        "export", help=f"write a level or a region to {writes}",
        description=f"Write a level or a region of a .mzarr, streamed, in the format OUTPUT's suffix names: {writes}. "
        ".ome.tif: pyramidal OME-TIFF (every coarser level as SubIFDs); .nii/.nii.gz, .nrrd, .mha: with spacing, "
        "origin and direction.",
    )
    exp.add_argument("file", type=Path)
    exp.add_argument("output", type=Path)
    exp.add_argument("--level", type=int, default=0)
    exp.add_argument("--region", help="NumPy-style region, e.g. 1000:1512,2000:2512 (an integer drops its axis)")
    exp.add_argument("--quiet", action="store_true", help="no progress bar")

    ver = sub.add_parser(
        "verify", help="decode every chunk of every level and check each level against the level below downsampled"
    )
    ver.add_argument("file", type=Path)

    rep = sub.add_parser("repair", help="rebuild every pyramid level from level 0 (writes only the chunks that change)")
    rep.add_argument("file", type=Path)

    opt = sub.add_parser(
        "optimize",
        help="re-encode lossless JPEG XL chunks at a higher effort, in place: smaller file, same pixels, slower decoding",
    )
    opt.add_argument("file", type=Path)
    opt.add_argument(
        "--effort", type=int, default=3,
        help="JPEG XL effort 1-10 (default 3: ~10%% smaller than the default 2, decodes ~2x slower; see BENCHMARKS.md)",
    )
    for p in (conv, ver, rep, opt):
        p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    from .convert import convert
    from .report import describe, format_description, verify

    if args.command == "convert":
        options: dict = {}
        if args.lossy or args.distance is not None or args.quality is not None:
            options.update(lossless=False, distance=args.distance, quality=args.quality)
        if args.chunks:
            options["chunks"] = tuple(int(c) for c in args.chunks.split(","))
        if args.spacing:
            options["spacing"] = tuple(float(s) for s in args.spacing.split(","))
        for name in ("effort", "levels", "downsample", "channel_axis", "unit", "bricks"):
            if getattr(args, name) is not None:
                options[name] = getattr(args, name)
        if args.labels:
            options["is_label"] = True
        read_options = {"series": args.series, "keep_phi": args.keep_phi}
        with progress_bar(f"converting {args.input.name}", not args.quiet) as bar:
            out = convert(args.input, args.output, progress=bar, read_options=read_options, **options)
        with Mzarr(out) as image:
            print(format_description(describe(image)))
        return 0
    if args.command == "info":
        with Mzarr(args.file) as image:
            summary = describe(image)
        print(json.dumps(summary, indent=2) if args.json else format_description(summary))
        return 0
    if args.command == "export":
        with Mzarr(args.file) as image:
            _export(image, args.output, args.level, args.region, args.quiet)
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
        if report.disagreement_count > LISTED:
            print(f"PYRAMID: ... and {report.disagreement_count - LISTED} more chunks disagree")
        print(f"{report.chunks_checked} chunks checked, {len(report.damaged)} damaged")
        print(report.pyramid_note)
        if report.pyramid_checked:
            print(f"{report.chunks_compared} pyramid chunks compared, {report.disagreement_count} disagree")
        if report.disagreement_count or report.structure_problems:
            print(f"the pyramid does not match level 0: 'mzarr repair {args.file}' rebuilds it from level 0")
        return 0 if report.ok else 1
    if args.command == "repair":
        return _repair(args)
    if args.command == "optimize":
        from .optimizer import optimize

        args.interrupt_note = "the chunks re-encoded so far are kept; the file is whole: run optimize again to finish"
        with progress_bar(f"optimizing {args.file.name}", not args.quiet) as bar:
            report = optimize(args.file, args.effort, bar)
        for line in report.lines():
            print(line)
        return 0
    raise AssertionError(args.command)


def _repair(args: argparse.Namespace) -> int:
    from .repair import repair_pyramid

    args.interrupt_note = (
        "the pyramid may be partly rebuilt (a folder cannot be repaired in one transaction; level 0 is never "
        f"changed): run 'mzarr repair {args.file}' again"
        if args.file.is_dir()
        else "the repair was rolled back; no file was changed"
    )
    # A file that cannot be written (read-only media, permissions) is refused by the open with 'r+'.
    with Mzarr(args.file, "r+") as image, progress_bar(f"repairing {args.file.name}", not args.quiet) as bar:
        report = repair_pyramid(image, bar)
    for line in report.lines():
        print(line)
    if not report.atomic and report.rewritten:
        print("note: a folder is repaired chunk by chunk, not in one transaction")
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mzarr`` console script: never a traceback. Bad input and damaged files give one clear
    line and exit code 2; an unexpected exception (a bug) gives one line naming its type and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BrokenPipeError:  # e.g. `mzarr info x.mzarr | head`: the reader went away, nothing to report
        sys.stderr.close()
        return 0
    except (MzarrError, OSError, IndexError, ValueError) as exc:
        print(f"mzarr {args.command}: error: {_one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
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
