"""`mdeblur adapt`: fit a shipped model to one microscope from in-focus images of the user's own specimens and
that microscope's optics (a measured PSF or the objectives), within a time budget.

A thin composition: the forward model (data/forward.py) makes training pairs from the top of every image and a
held-out pair from its bottom, the training loop (train/loop.py) fine-tunes with a time limit, and the report
(evaluate/adapt_report.py) scores bicubic, Richardson-Lucy, the starting and the adapted model on the held-out
regions and recalibrates the trust map there.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import MdeblurError
from .config import DegradationSpec, TrainConfig

HOLDOUT = 0.25  # bottom share of each image's rows held out for the report (whole regions, never trained on)
MIN_HOLDOUT = 64  # HR px: at least this many rows held out
DRAWS = 6  # simulated training pairs per image (defocus and noise drawn anew)
SPEC_FILE = "adapt.json"
REPORT_SHARE = 0.1  # of the budget kept back for the report before the measured estimate replaces it


@dataclass
class AdaptSpec:
    """Everything an adapt run depends on (written to RUN/adapt.json; --resume reads it back)."""

    out: str
    infocus: str | None = None
    specimens: str | None = None  # plant | fibres | fundus: built-in specimens instead of a folder
    psf: str | None = None
    psf_pixel_um: float | None = None
    objective_lr: str = "5x/0.12"
    objective_hr: str = "10x/0.25"
    camera_pixel_um: float = 6.5
    defocus_um: tuple[float, float] = (40.0, 60.0)
    photons: float | None = 2000.0
    read_sigma: float = 0.002
    like: str | None = None
    minutes: float = 15.0
    init: str = "mdeblurgan-x2"
    device: str = "auto"
    seed: int = 0
    learning_rate: float = 5e-5
    patch: int = 64
    batch_size: int = 4
    estimated: dict = field(default_factory=dict)  # what --like found

    def check(self) -> None:
        if (self.infocus is None) == (self.specimens is None):
            raise MdeblurError("give a folder of in-focus images, or --specimens plant|fibres|fundus (not both)")
        if self.specimens is not None and self.specimens not in ("plant", "fibres", "fundus"):
            raise MdeblurError(f"--specimens {self.specimens}: use plant, fibres or fundus")
        if not (self.minutes > 0):
            raise MdeblurError(f"--minutes {self.minutes:g}: must be positive")


def images_in(folder: Path, label: str, want: str, none: str) -> list[Path]:
    """The image files below `folder`, or one line naming what is wrong."""
    from ..formats.images import list_images

    if not folder.is_dir():
        raise MdeblurError(f"{label} not {want}")
    files = list_images(folder, recursive=True)
    if not files:
        raise MdeblurError(f"{label} {none}")
    return files


def load_specimens(spec: AdaptSpec) -> list[tuple[str, np.ndarray, bool]]:
    """(name, (H, W, 3) float in [0, 1], gray) for every in-focus image (or built-in specimen)."""
    from ..data import read_rgb
    from ..data.specimens import SPECIMENS

    if spec.specimens is not None:
        make = SPECIMENS[spec.specimens]
        return [(f"{spec.specimens}_{s}", make(512, 200_000 + s), False) for s in range(4)]
    files = images_in(Path(spec.infocus), f"{spec.infocus}:", "a folder of in-focus images",
                      "no images found (TIFF, PNG, JPEG or OME, as restore reads them)")
    out = []
    for f in files:
        img = read_rgb(f)
        gray = bool(np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0], img[..., 2]))
        out.append((f.stem, img, gray))
    return out


def split_rows(img: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(training top, held-out bottom) of an HR image, both with sides on 8 * scale."""
    h = img.shape[0]
    m = 8 * scale
    held = max(MIN_HOLDOUT, int(h * HOLDOUT)) // m * m
    cut = (h - held) // m * m
    w = img.shape[1] // m * m
    if cut < 2 * MIN_HOLDOUT or held < MIN_HOLDOUT or w < 2 * MIN_HOLDOUT:
        raise MdeblurError(f"an in-focus image of {img.shape[1]}x{h} px is too small to split into training and "
                           f"held-out regions (need at least {2 * MIN_HOLDOUT}x{3 * MIN_HOLDOUT})")
    return img[:cut, :w], img[cut : cut + held, :w]


def forward_model(spec: AdaptSpec, say=print):
    """The forward model the options describe: optics, measured PSF, camera and noise (estimated with --like)."""
    from ..data.forward import Camera, ForwardModel
    from ..data.simulate import SimulationSpec, parse_objective

    sim = SimulationSpec(parse_objective(spec.objective_lr, spec.camera_pixel_um),
                         parse_objective(spec.objective_hr, spec.camera_pixel_um), tuple(spec.defocus_um),
                         spec.photons, spec.read_sigma)
    lr, hr = sim.objective_lr.magnification, sim.objective_hr.magnification
    if abs(hr / lr - 2) > 1e-6:
        raise MdeblurError(f"--objective-hr {spec.objective_hr}: mdeblur restores x2, so the sharp objective must "
                           f"have twice the blurry one's magnification ({2 * lr:g}x for {lr:g}x)")
    psf = None
    if spec.psf is not None:
        from ..data.psf import read_psf

        psf = read_psf(spec.psf, sim.objective_hr.pixel_um, sim.scale, spec.psf_pixel_um)
    camera = Camera(16)
    if spec.like is not None:
        from ..data import noise

        files = images_in(Path(spec.like), f"--like {spec.like}:", "a folder", "no readable image in it")
        est = noise.estimate(files, ForwardModel(sim).percentiles)
        say(f"--like {spec.like}: {est.describe()}")
        spec.estimated = est.to_dict()
        camera = Camera(est.bits, est.lo, est.hi)
        sim = SimulationSpec(sim.objective_lr, sim.objective_hr, sim.defocus_um, est.photons, est.read_sigma)
    return ForwardModel(sim, psf, camera)


def write_pairs(fm, specimens, folder: Path, seed: int) -> int:
    """DRAWS simulated (input, truth) pairs per training region as float32 TIFFs in restore's units."""
    import tifffile

    from ..data import to_tensor

    (folder / "lr").mkdir(parents=True, exist_ok=True)
    (folder / "hr").mkdir(parents=True, exist_ok=True)
    n = 0
    for i, (name, img, gray) in enumerate(specimens):
        top, _ = split_rows(img, fm.scale)
        for k in range(DRAWS):
            g = torch.Generator().manual_seed(seed * 1_000_003 + 97 * i + k)
            file_lr, hr, _ = fm.simulate(to_tensor(top), g, gray=gray)
            x, y = fm.normalised_pair(file_lr, hr)
            tifffile.imwrite(folder / "lr" / f"{name}_{k}.tif", x)
            tifffile.imwrite(folder / "hr" / f"{name}_{k}.tif", y)
            n += 1
    (folder / "done.json").write_text(json.dumps({"pairs": n}) + "\n")
    return n


def fit_config(spec: AdaptSpec, run: Path, seconds: float) -> TrainConfig:
    """The fine-tuning run: the simulated pairs, from --init, stopped (and its decay finished) at the time limit."""
    return TrainConfig(data=str(run / "pairs"), init=spec.init, out=str(run / "fit"), iters=1_000_000,
                       time_limit_s=max(10.0, seconds), batch_size=spec.batch_size, patch=spec.patch,
                       learning_rate=spec.learning_rate, decay_start=0.3, pixel_loss="log-mse", zoom_prob=0.0,
                       soft_prob=0.0, microscope_prob=0.0, val_every=50, checkpoint_every=50, seed=spec.seed,
                       device=spec.device, degradation=DegradationSpec())


def check_out(run: Path, resume: bool) -> None:
    if resume:
        if not (run / SPEC_FILE).is_file():
            raise MdeblurError(f"--resume {run}: no adapt run there ({SPEC_FILE} missing)")
        return
    if run.exists() and any(run.iterdir()):
        what = "an adapt run" if (run / SPEC_FILE).is_file() else "other files"
        raise MdeblurError(f"--out {run}: holds {what}; continue an adapt run with --resume, or choose an empty "
                           "folder")


def adapt(spec: AdaptSpec, console=None, resume: bool = False) -> dict:
    """Run (or resume) an adapt run; returns the report."""
    from ..device import resolve_device
    from ..evaluate import adapt_report as rep
    from .loop import train

    t0 = time.time()
    say = console.print if console is not None else print
    run = Path(spec.out)
    check_out(run, resume)
    if resume:
        saved = json.loads((run / SPEC_FILE).read_text())
        t0 -= saved.pop("_spent_s", 0.0)
        spec = AdaptSpec(**{**saved, "defocus_um": tuple(saved["defocus_um"])})
    spec.check()
    device = resolve_device(spec.device)  # once, here; passed down as a torch.device
    budget = spec.minutes * 60
    specimens = load_specimens(spec)
    fm = forward_model(spec, say)
    if fm.psf is not None:
        from ..data.psf import check_fits

        check_fits(fm.psf, [(n, img) for n, img, _ in specimens])
    for _, img, _ in specimens:
        split_rows(img, fm.scale)
    run.mkdir(parents=True, exist_ok=True)
    (run / SPEC_FILE).write_text(json.dumps(asdict(spec), indent=1) + "\n")
    if not (run / "pairs" / "done.json").is_file():
        n = write_pairs(fm, specimens, run / "pairs", spec.seed)
        say(f"simulated {n} training pairs from the top {1 - HOLDOUT:.0%} of {len(specimens)} image(s) "
            f"({time.time() - t0:.0f} s)")
    seconds = {"simulate": time.time() - t0}
    held = rep.held_out(fm, specimens, split_rows, spec.seed)
    before = rep.baselines(fm, specimens, held, spec, split_rows, device, say)  # bicubic, RL, the starting model (timed)
    seconds["baselines"] = time.time() - t0 - seconds["simulate"]
    deadline = t0 + budget - rep.report_seconds(before, budget)
    if deadline - time.time() <= 10 and not (run / "fit" / "done").is_file():
        used = (time.time() - t0) / 60
        raise MdeblurError(f"--minutes {spec.minutes:g}: simulating the pairs and measuring the baselines took "
                           f"{used:.1f} min, which leaves no time to fit (and the report needs some); give a larger "
                           f"--minutes, at least {max(3, round(3 * used))}")
    say(f"fitting {spec.init} for {max(0, deadline - time.time()) / 60:.1f} min of the {spec.minutes:g}-minute budget")
    _save_spent(run, spec, t0)
    t_fit = time.time()
    if deadline - time.time() > 10 and not (run / "fit" / "done").is_file():
        again = (run / "fit" / "state.pt").is_file()
        cfg = fit_config(spec, run, deadline - time.time())
        if again:  # the run's own config: its time limit counts the training time already spent
            from .config import config_from_toml

            cfg = config_from_toml(run / "fit" / "config.toml", {})
        train(cfg, console, resume=again, deadline=deadline)
        (run / "fit" / "done").write_text("")
    seconds["fit"] = time.time() - t_fit
    report = rep.finish(fm, spec, run, held, before, device, say, time.time() - t0, seconds)
    _save_spent(run, spec, t0)
    return report


def _save_spent(run: Path, spec: AdaptSpec, t0: float) -> None:
    (run / SPEC_FILE).write_text(json.dumps({**asdict(spec), "_spent_s": time.time() - t0}, indent=1) + "\n")
