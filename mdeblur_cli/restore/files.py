"""One file through the restore, in three stages that a batch overlaps: read it (`load_file`), restore it
(`compute_file`), write it with its metadata (`write_file`); `restore_file` runs all three."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..device import CPU, as_device, resolve_precision
from ..errors import MdeblurError
from ..formats.images import atomic_write
from ..formats.ngff import is_zarr
from ..formats.paths import check_folder_path
from ..formats.series import Meta, Series, split_name
from ..formats.stacks import check_writable, lost_metadata, read_series, write_series
from ..scale import stream
from ..weights import LoadedModel
from .arrays import TrustRequest, choose_channels, nonfinite_mask, restore_stack
from .normalize import Normalization, choose
from .tiles import DEFAULT_TILE


@dataclass
class FileResult:
    """What restoring one file did: per series, the channel mode; the intensity mappings; lost calibration."""

    modes: list[str] = field(default_factory=list)
    norms: list[Normalization] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)  # calibration items of the input the output cannot keep
    nonfinite: int = 0  # NaN/Inf samples of the input: filled for the network, NaN again in the output
    streamed: bool = False  # restored band by band from a memory map into a tiled BigTIFF
    trust: dict | None = None  # --trust: median predicted error (file units), doubtful share, suspect
    colours: list[int] = field(default_factory=list)  # per series, its colour channels (1: a gray image)
    trust_path: Path | None = None
    streamed_note: str | None = None  # how a streamed input was done (a slide: its levels and the glass skipped)


@dataclass
class Loaded:
    """One input read and checked, on its way through the batch pipeline (read -> restore -> write)."""

    src: Path
    dst: Path
    series: list[Series] | None  # None: a large plain TIFF, restored by streaming in the restore stage
    result: FileResult
    stream_rgb: bool = False
    stream_meta: Meta | None = None  # the streamed TIFF's metadata
    trust_series: list[Series] | None = None  # --trust: the predicted-error maps, written beside the output
    slide: object | None = None  # a whole slide streamed to a pyramid (scale.slide.SlidePlan), with its options
    slide_opts: object | None = None


def trust_path(dst: str | Path) -> Path:
    """Where --trust writes the map of `dst`: NAME_trust.tif (NAME_trust.ome.tif beside an OME-TIFF)."""
    dst = Path(dst)
    stem, ext = split_name(dst)
    return dst.with_name(f"{stem}_trust{'.ome.tif' if ext.startswith('.ome.tif') else '.tif'}")


def load_file(src: str | Path, dst: str | Path, axes: str | None = None, channels: str = "auto",
              max_pixels: int | None = None, trust: bool = False, slide=None) -> Loaded:
    """Read and check one input (the read stage): everything that can refuse it before any compute.
    A trust map needs the whole image in memory, so `trust` turns streaming off. `slide`
    (formats.slide.SlideOptions): the level, region and output options of a whole slide."""
    from ..formats.slide import SlideOptions, is_slide

    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise MdeblurError(f"{dst}: refusing to write over an input")
    check_folder_path(dst.parent, f"the folder of {dst}")
    result = FileResult()
    slide = slide or SlideOptions()
    if is_slide(src):
        return _load_slide(src, dst, slide, result, trust, max_pixels)
    if slide.level or slide.region:
        raise MdeblurError(f"{src}: --level and --region apply to whole slides (SVS, NDPI, tiled pyramidal TIFF)")
    streamable = None if trust else stream.probe(src, dst, axes, channels)
    if streamable is not None:  # a large plain TIFF: bounded memory, tiles straight into a tiled BigTIFF
        rgb, meta = streamable
        return Loaded(src, dst, None, result, rgb, meta)
    series = read_series(src, axes, max_pixels)
    for s in series:
        if s.data.dtype.kind == "f":
            bad = int(np.count_nonzero(nonfinite_mask(s.data)))
            if bad == s.data.size:
                raise MdeblurError(f"{src}: no finite pixels (every sample is NaN or Inf)")
            result.nonfinite += bad
    check_writable(dst, series)
    result.lost = lost_metadata(dst, series)
    if trust:
        check_folder_path(trust_path(dst).parent, f"the folder of {trust_path(dst)}")
    return Loaded(src, dst, series, result)


def _load_slide(src: Path, dst: Path, opts, result: FileResult, trust: bool, max_pixels: int | None) -> Loaded:
    """A whole slide: streamed into a pyramid when the output is a TIFF or an OME-Zarr (and no trust map is
    asked); otherwise its level and region are read into memory and restored as any image."""
    from ..formats.series import TIFF_EXT, check_size
    from ..formats.slide import open_slide, window
    from ..scale.slide import plan

    ext = split_name(dst)[1].lower()
    if (ext in TIFF_EXT or ext.startswith(".ome.tif") or ext.endswith(".zarr")) and not trust:
        return Loaded(src, dst, None, result, True, slide=plan(src, dst, opts, 2), slide_opts=opts)
    sl = open_slide(src)
    try:
        y0, y1, x0, x1 = window(sl, opts.level, opts.region)
        check_size(src, (y1 - y0, x1 - x0, 3), "YXS", max_pixels)
        data = np.asarray(sl.array(opts.level)[y0:y1, x0:x1])[..., :3]
        mpp = sl.level_mpp(opts.level)
    finally:
        sl.close()
    ome = {"Pixels": {"PhysicalSizeX": mpp[1], "PhysicalSizeY": mpp[0], "PhysicalSizeXUnit": "µm",
                      "PhysicalSizeYUnit": "µm"}} if mpp else {}
    series = [Series(np.ascontiguousarray(data), "YXS", Meta(kind="ome" if mpp else "tiff", rgb=True, ome=ome))]
    check_writable(dst, series)
    result.lost = lost_metadata(dst, series)
    return Loaded(src, dst, series, result)


def _plane_progress(progress, plane_pixels: int):
    """The tile callback of one plane: (done, total) -> progress(done, total, input pixels of the plane)."""
    return None if progress is None else lambda done, total: progress(done, total, plane_pixels)


def compute_file(
    job: Loaded, model: LoadedModel, channels: str = "auto", normalize: str = "auto",
    percentiles: tuple[float, float] | None = None, tile: int = DEFAULT_TILE, device: torch.device = CPU,
    precision: str = "fp32", progress=None, trust_model=None,
) -> Loaded:
    """Restore a loaded input (the restore stage). A streamed input is read, restored and written here.
    With `trust_model` (trust.TrustModel), the predicted-error maps and the image's summary are made too."""
    result = job.result
    if job.slide is not None:
        return _compute_slide(job, model, tile, device, precision, progress)
    if job.series is None:
        dtype = resolve_precision(precision, device)
        pct = percentiles or model.percentiles
        shape = stream.plane_shape(job.src)
        prog = _plane_progress(progress, shape[0] * shape[1])
        try:
            atomic_write(job.dst, lambda tmp: result.norms.append(stream.write_streamed(
                job.src, tmp, model.net, job.stream_rgb, normalize, pct, tile, device, dtype, job.stream_meta, prog)))
        except OSError as exc:
            raise MdeblurError(f"{job.dst}: cannot write ({exc.strerror or exc})") from None
        result.modes, result.streamed = ["rgb" if job.stream_rgb else "independent"], True
        return job
    out, maps, summaries = [], [], []
    for s in job.series:
        try:
            mode = choose_channels(channels, s.channels - int(s.meta.alpha), s.data.dtype, s.meta.rgb)
        except MdeblurError as exc:
            raise MdeblurError(f"{job.src}: {exc}") from None
        ys, xs = s.axes.index("Y"), s.axes.index("X")
        req = TrustRequest(trust_model) if trust_model is not None else None
        data = restore_stack(s.data, s.axes, model, mode, s.meta.alpha, tile=tile, device=device,
                             precision=precision, progress=_plane_progress(progress, s.data.shape[ys] * s.data.shape[xs]),
                             normalize=normalize, percentiles=percentiles, norms=result.norms, trust=req)
        meta = s.meta.scaled(model.scale)
        meta.ome.setdefault("Name", split_name(job.src)[0])  # the image's name in OME outputs
        out.append(Series(data, s.axes, meta))
        result.modes.append(mode)
        result.colours.append(s.channels - int(s.meta.alpha))
        if req is not None:
            maps.append(Series(req.maps[0], s.axes, _trust_meta(meta, s.data.dtype, trust_model)))
            summaries += req.summaries
    job.series = out
    if trust_model is not None:
        from .trust import combine

        job.trust_series, result.trust = maps, combine(summaries, [m.data for m in maps])
        result.trust_path = trust_path(job.dst)
    return job


def _trust_meta(meta, dtype: np.dtype, trust_model):
    """The map's metadata: the output's calibration, gray samples, and a description of what it holds."""
    from dataclasses import replace

    units = "counts of the output's integer samples" if np.issubdtype(dtype, np.integer) else "the output's units"
    desc = {"mdeblur": "trust map", "quantity": "predicted error standard deviation of the restored image, per pixel",
            "units": units}
    if getattr(trust_model, "head", None) is not None:
        desc.update({"map": "learned error head",
                     "band": f"+-2 times this value holds the true error (mean over channels) of at least "
                             f"{trust_model.level:.0%} of an image's pixels on average, for images exchangeable with "
                             "the calibration images (conformal risk control); not guaranteed for other microscopes "
                             "or specimens (mdeblur adapt recalibrates on yours)",
                     "made_from": "a small network on the input and the restored image (run in the same pass), "
                                  "scaled by the conformal factor stored in the weights"})
    else:
        desc.update({"map": "sampling (these weights carry no error head)",
                     "band": "the true error lies within +-2 times this value for about 95% of pixels on the "
                             "held-out calibration images; it is wider (97-100%) on others, and overstates the "
                             "error in flat regions",
                     "made_from": "spread: SD over 8 restorations under flips/quarter turns, each with a re-sample "
                                  "of the input's noise; change: |output - bicubic of the input|; combined "
                                  "log-linearly with the coefficients and calibration factor stored in the weights"})
    desc["trust"] = trust_model.to_dict()
    m = replace(meta, rgb=False, alpha=False, description=json.dumps(desc), ome=dict(meta.ome), imagej=dict(meta.imagej))
    return m


def _compute_slide(job: Loaded, model: LoadedModel, tile: int, device: torch.device, precision: str,
                   progress=None) -> Loaded:
    """A whole slide into a pyramidal OME-TIFF (atomically) or a multiscale OME-Zarr (under NAME.partial, renamed
    when complete, so that --resume can go on from it)."""
    from ..scale.slide import restore_slide

    p, result = job.slide, job.result
    y0, y1, x0, x1 = p.box
    prog = None
    if progress is not None:
        def prog(done, total, glass):
            progress(done, total, (y1 - y0) * (x1 - x0), note=f"tiles ({glass} of {total} glass, by bicubic)")
    dtype = resolve_precision(precision, device)
    done: dict = {}
    try:
        if is_zarr(job.dst):
            done = restore_slide(p, job.dst, model.net, job.slide_opts, tile, device, dtype, prog)
        else:
            atomic_write(job.dst, lambda tmp: done.update(restore_slide(p, tmp, model.net, job.slide_opts, tile,
                                                                        device, dtype, prog)))
    except OSError as exc:
        raise MdeblurError(f"{job.dst}: cannot write ({exc.strerror or exc})") from None
    finally:
        p.slide.close()
    result.modes, result.streamed, result.colours = ["rgb"], True, [3]
    result.norms.append(choose(np.zeros((1, 1, 3), np.uint8), "range"))
    result.streamed_note = (f"slide level {p.level}, {x1 - x0} x {y1 - y0} px streamed into {done['levels']} "
                            f"pyramid level(s); {done['glass_tiles']} of {done['tiles']} tiles glass (bicubic)"
                            + (f"; resuming from output row {done['resumed_from_row']}" if done["resumed_from_row"] else ""))
    return job


def write_file(job: Loaded) -> FileResult:
    """Write a restored input (the write stage), atomically; a streamed one is already written. The trust map
    goes first, so that an output never stands without the map it was asked with."""
    if job.trust_series is not None:
        path = trust_path(job.dst)
        try:
            atomic_write(path, lambda tmp: write_series(tmp, job.trust_series))
        except OSError as exc:
            raise MdeblurError(f"{path}: cannot write ({exc.strerror or exc})") from None
    if not job.result.streamed:
        try:
            atomic_write(job.dst, lambda tmp: write_series(tmp, job.series))
        except OSError as exc:
            raise MdeblurError(f"{job.dst}: cannot write ({exc.strerror or exc})") from None
    return job.result


def restore_file(
    src: str | Path, dst: str | Path, model: LoadedModel, axes: str | None = None, channels: str = "auto",
    normalize: str = "auto", percentiles: tuple[float, float] | None = None, tile: int = DEFAULT_TILE,
    device: torch.device | str = "cpu", precision: str = "fp32", progress=None, max_pixels: int | None = None,
    trust: bool = False,
) -> FileResult:
    """Restore one file into `dst` (atomically, replacing it if it exists), keeping axes, channels,
    calibration and OME/ImageJ metadata. `progress(done, total, plane_pixels)` is called after each tile.

    The output format follows `dst`: .ome.tif gives OME-TIFF, .tif an ImageJ hyperstack for an ImageJ or OME
    input (else a TIFF with its axes), PNG/JPEG one 2-D image. What the format cannot keep is in `lost`.
    """
    job = load_file(src, dst, axes, channels, max_pixels, trust)
    tm = model.trust if trust else None
    return write_file(compute_file(job, model, channels, normalize, percentiles, tile, as_device(device), precision,
                                   progress, tm))
