"""`mdeblur restore`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import MdeblurError
from .app import app, console, parse_percentiles


@app.command(epilog="Examples:\n\n  mdeblur restore in.tif -o out.png\n\n  mdeblur restore cells.ome.tif --out-dir restored/          # -> restored/cells_x2.ome.tif, pixel size halved\n\n  mdeblur restore scans/ --recursive --out-dir restored/ --skip-existing\n\n  mdeblur restore stack.tif -o out.tif --axes ZYX --channels independent\n\n  mdeblur restore 'slides/*.png' --out-dir out/ --weights unet-sr-x2 --device cuda --precision bf16\n\n  mdeblur restore folder/ --out-dir r/ --trust --report r/report.json\n\n  mdeblur restore slide.svs -o slide_x2.ome.tif              # a whole slide, streamed into a pyramid\n\n  mdeblur restore slide.svs --level 1 --region 2000,1200,4096,4096 -o crop_x2.tif")
def restore(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output file (one input only).")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Output folder for one or many inputs.")] = None,
    weights: Annotated[str, typer.Option(help="Shipped model name or .safetensors path.")] = "mdeblurgan-x2",
    recursive: Annotated[bool, typer.Option(help="Descend into sub-folders of folder inputs.")] = False,
    tile: Annotated[int, typer.Option(help="Largest tile side in low-res pixels (at least 64); windows are balanced over the image. Windows of 256-512 measured within 4% of each other on CPU (benchmarks/restore_speed.py --tiles).")] = 320,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, or fp16/bf16 on CUDA.")] = "fp32",
    suffix: Annotated[str, typer.Option(help="Added to the file name in --out-dir.")] = "_x2",
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose output exists: resumes an interrupted batch.")] = False,
    axes: Annotated[str | None, typer.Option(help="Override the file's axes: YX, CYX, YXC, ZYX, TZCYX, YXS (samples)... Only Y and X are restored; the rest are iterated.")] = None,
    max_pixels: Annotated[int | None, typer.Option(help="Refuse images of more pixels than this (every plane counted, channels not), read from the header before decoding. \\[default: what this machine's memory can restore, ~200 bytes per pixel]")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of unexpected errors instead of a one-line report.")] = False,
    channels: Annotated[str, typer.Option(help="auto (rgb for 8-bit images declared RGB: PNG/JPEG colour, TIFF photometric RGB; else independent), rgb (colour mixed: brightfield, histology) or independent (each channel alone: fluorescence).")] = "auto",
    self_ensemble: Annotated[bool, typer.Option("--self-ensemble", help="Average over the 8 flips/quarter turns: 8x slower; measured +0.3 dB for the shipped model.")] = False,
    normalize: Annotated[str, typer.Option(help="Intensity mapping before the network, undone after: auto (8-bit: range; 16-bit and float: percentile), percentile, range or none.")] = "auto",
    percentiles: Annotated[str | None, typer.Option(help="LO,HI percentiles for --normalize percentile. \\[default: the model's own, 0.1,99.9]")] = None,
    trust: Annotated[bool, typer.Option("--trust", help="Also write NAME_trust.tif: the predicted error (standard deviation, output units) of every pixel, and say per image whether it is suspect of invented detail. With the shipped M-Deblurgan weights (a learned error head) about 1.5x the restore's time; weights without a head use the sampling map, about 10x.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write a JSON report: one record per input (output, error, and with --trust the map and its summary).")] = None,
    fail_on_suspect: Annotated[bool, typer.Option("--fail-on-suspect", help="With --trust: exit 3 if any image is suspect (for pipelines).")] = False,
    cluster: Annotated[str | None, typer.Option(help="Run on Dask: 'local' (a LocalCluster on this machine) or a scheduler address such as tcp://head:8786. One task per file; one huge gray plane to .ome.zarr is spread over the workers. Needs the distributed extra.")] = None,
    workers: Annotated[int | None, typer.Option(help="--cluster local: worker processes. \\[default: cores / threads]")] = None,
    threads_per_worker: Annotated[int | None, typer.Option(help="--cluster local: threads per worker. \\[default: 1]")] = None,
    level: Annotated[int, typer.Option(help="Whole slides: the pyramid level to restore (0: full resolution; see mdeblur info).")] = 0,
    region: Annotated[str | None, typer.Option(help="Whole slides: x,y,w,h in pixels of --level; only that region is restored.")] = None,
    compression: Annotated[str, typer.Option(help="Whole slides to a pyramidal OME-TIFF: zlib (Deflate, lossless), zstd (lossless) , jpeg (see --quality) or none.")] = "zlib",
    quality: Annotated[int, typer.Option(help="JPEG quality of --compression jpeg (1-100).")] = 90,
    skip_background: Annotated[bool, typer.Option("--skip-background/--no-skip-background", help="Whole slides: tiles that hold only glass (Otsu on saturation of a low level) are upscaled by bicubic instead of the network.")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="Whole slides to .ome.zarr: go on from the unfinished NAME.ome.zarr.partial an interrupted run left, skipping the rows already written.")] = False,
) -> None:
    """Deblur and super-resolve images x2 (any size; tiled, seamless)."""
    from ..formats.images import atomic_write
    from ..formats.paths import check_folder_path
    from ..formats.slide import COMPRESSIONS, SlideOptions, parse_region
    from ..scale.batch import restore_files
    from ..scale.job import RestoreJob

    if compression not in COMPRESSIONS:
        raise MdeblurError(f"--compression {compression!r}: choose one of {', '.join(COMPRESSIONS)}")
    if not 1 <= quality <= 100:
        raise MdeblurError(f"--quality {quality}: give 1-100")
    if level < 0:
        raise MdeblurError(f"--level {level}: levels count from 0 (full resolution)")
    slide = SlideOptions(level, parse_region(region), compression, quality, skip_background, resume, overwrite)
    job = RestoreJob(inputs=inputs, output=output, out_dir=out_dir, weights=weights, recursive=recursive,
                     tile=tile, device=device, precision=precision, suffix=suffix, overwrite=overwrite,
                     skip_existing=skip_existing, self_ensemble=self_ensemble, normalize=normalize,
                     percentiles=parse_percentiles(percentiles), axes=axes, channels=channels, max_pixels=max_pixels,
                     debug=debug, trust=trust, cluster=cluster, workers=workers,
                     threads_per_worker=threads_per_worker, slide=slide)
    if fail_on_suspect and not trust:
        raise MdeblurError("--fail-on-suspect needs --trust (it acts on the trust maps' verdicts)")
    if report is not None:
        check_folder_path(report.parent, "the folder of --report")
        if report.is_dir():
            raise MdeblurError(f"--report {report}: is a folder; give a file such as {report / 'report.json'}")
    records: list = []
    failures, total = restore_files(job, console, records)
    if report is not None:
        import json

        summary = {"inputs": len(records), "failed": failures, "skipped": sum("skipped" in r for r in records),
                   "suspect": sum(bool(r.get("suspect")) for r in records), "records": records}
        atomic_write(report, lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
    if failures:
        if total > 1:
            console.print(f"[red]{failures} of {total} inputs failed[/red]")
        raise typer.Exit(2)
    if fail_on_suspect and any(r.get("suspect") for r in records):
        raise typer.Exit(3)
