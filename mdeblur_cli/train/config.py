"""Training configuration: TrainConfig and its DegradationSpec with their value checks, TOML I/O, and the run
folder's files. Free of torch, so that the command line starts fast."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from ..errors import MdeblurError

# phi_{5,4}, the perceptual loss's layer: VGG19 features index 34, the 4th convolution after the 4th pooling
# (conv5_4), taken before its ReLU as in ESRGAN.
DEFAULT_LAYER = 34
# The architectures and their size presets, as models.ARCHS defines them (a test keeps the two equal): named here
# so that checking a config, and `train --print-config`, import no torch.
ARCH_PRESETS = {"mdeblurgan": ("tiny", "small", "paper"), "unet-sr": ("tiny", "small", "paper")}
TRAIN_BYTES_PER_LR_PIXEL = 20_000  # training memory per low-res patch pixel (measured ~4.7 kB, small preset)


def _check_types(obj, where: str) -> None:
    """Each field of a config dataclass holds its default's kind: a whole number, a number, text, true/false, or
    a [low, high] pair of numbers (None: not set). A config file can hold anything; this names what is wrong."""
    for f in fields(obj):
        default = f.default if f.default is not MISSING else None
        v = getattr(obj, f.name)
        if v is None or default is None or f.name == "degradation":
            continue
        if isinstance(default, bool):
            ok, kind = isinstance(v, bool), "true or false"
        elif isinstance(default, int):
            ok, kind = isinstance(v, int) and not isinstance(v, bool), "a whole number"
        elif isinstance(default, float):
            ok, kind = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v), "a number"
        elif isinstance(default, str):
            ok, kind = isinstance(v, str), "text"
        else:  # a (low, high) pair
            ok = (isinstance(v, tuple | list) and len(v) == 2
                  and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v))
            kind = "[low, high]"
        if not ok:
            raise MdeblurError(f"{where}{f.name} = {v!r}: must be {kind}")


@dataclass
class DegradationSpec:
    """The random degradation mix used for training (blur sizes in low-res pixels).

    After the blur, a patch is dimmed onto a dark offset (dim_prob), gets Poisson-Gaussian noise (noise_prob, in
    every branch), is stored as a user's file would be (8-bit, JPEG, 12-bit or float) and normalised as
    `restore --normalize auto` does: 8-bit by its range, everything else by percentiles; the targets get the
    same intensity mapping.
    """

    scale: int = 2
    protocol_prob: float = 0.5  # share of Gaussian blur near the paper's FIRE protocol
    protocol_sigma_range: tuple[float, float] = (1.2, 1.8)
    sigma_range: tuple[float, float] = (0.6, 2.4)  # Gaussian blur of the broad share
    disk_prob: float = 0.25  # share of defocus disks instead of Gaussians
    disk_range: tuple[float, float] = (1.0, 3.5)  # defocus disk radius
    noise_prob: float = 0.5  # share with Poisson-Gaussian noise (of the broad share only if not noise_all_branches)
    peak_range: tuple[float, float] = (50.0, 5000.0)  # photons at white
    read_sigma_max: float = 0.01
    noise_all_branches: bool = True  # False: the FIRE-protocol share stays noise-free (phases A-H)
    dim_prob: float = 0.25  # share of dim images on a dark offset
    dim_gain_range: tuple[float, float] = (0.05, 1.0)  # content's share of the range (log-uniform)
    dim_offset_max: float = 0.1  # dark offset, fraction of the range
    bits8_prob: float = 0.6  # share stored as 8-bit files (range-normalised)
    bits12_prob: float = 0.15  # share stored as 12-bit (percentile-normalised); the rest float (percentile)
    jpeg_prob: float = 0.25  # of the 8-bit share: JPEG-compressed
    jpeg_quality_range: tuple[int, int] = (60, 95)
    percentiles: tuple[float, float] = (0.1, 99.9)  # as restore's default

    def __post_init__(self) -> None:
        _check_types(self, "[degradation] ")
        for name in ("protocol_prob", "disk_prob", "noise_prob", "dim_prob", "bits8_prob", "bits12_prob", "jpeg_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise MdeblurError(f"[degradation] {name} = {getattr(self, name):g}: a share lies in [0, 1]")
        if self.bits8_prob + self.bits12_prob > 1:
            raise MdeblurError(f"[degradation] bits8_prob + bits12_prob = {self.bits8_prob + self.bits12_prob:g}: "
                               "at most 1 (the rest is float)")
        for name in ("protocol_sigma_range", "sigma_range", "disk_range", "peak_range", "dim_gain_range",
                     "jpeg_quality_range", "percentiles"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise MdeblurError(f"[degradation] {name} = [{lo:g}, {hi:g}]: give [low, high] with 0 <= low <= high")
        for name in ("peak_range", "dim_gain_range"):  # drawn log-uniformly
            if getattr(self, name)[0] <= 0:
                raise MdeblurError(f"[degradation] {name} = {list(getattr(self, name))}: its low end must be above 0")
        if self.jpeg_quality_range[1] > 100 or self.percentiles[1] > 100:
            raise MdeblurError("[degradation] jpeg_quality_range and percentiles lie within [0, 100]")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainConfig:
    """Everything a training run depends on."""

    data: str | None = None  # None: scikit-image's bundled images (reserved ones excluded)
    model: str = "mdeblurgan"  # mdeblurgan | unet-sr
    preset: str = "small"
    use_oa: bool = True
    scale: int = 2
    iters: int = 6000
    epochs: int | None = None  # alternative to iters, resolved by train.setup once the data are loaded
    batch_size: int = 8
    patch: int = 48  # low-res patch side
    learning_rate: float = 2e-4
    final_learning_rate: float = 1e-7
    decay_start: float = 0.75  # share of iterations at constant learning rate, then linear decay
    deblur_weight: float = 1.0  # MSE(deblurred, clear LR)
    ssim_weight: float = 0.01  # beta: (1 - SSIM(SR, HR))
    perceptual_weight: float = 0.0  # alpha: VGG19 feature MSE
    adversarial_weight: float = 0.0  # gamma: generator BCE against the discriminator
    loss_balance: str = "fixed"  # fixed | auto (alpha, beta from the first batches)
    vgg19_weights: str | None = None
    vgg_layer: int = DEFAULT_LAYER
    adv_start: int = 0  # iteration at which the adversarial term starts (pixel-loss warm-up)
    ema: float = 0.0  # EMA decay of the generator weights; 0: off
    zoom_prob: float = 0.5  # share of patches magnified x1-3 for smooth content
    soft_prob: float = 0.0  # share of patches whose ground truth is itself softened (and validation copies)
    microscope_prob: float = 0.0  # share of patches simulated through the x5-defocus/x10 optics (and validation pairs)
    microscope_optics: str = "x5"  # x5 (5x/0.12 -> 10x/0.25) | range (common dry objectives 4x-20x, NA 0.1-0.45)
    pixel_loss: str = "mse"  # mse (the paper's) | log-mse: mean over patches of log(1 + MSE/eps), i.e. mean PSNR
    time_limit_s: float | None = None  # stop (validated, saved and resumable) once training has run this long
    val_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA only)
    threads: int | None = None
    init: str | None = None  # start from these weights (shipped name or path): fine-tuning
    init_sha256: str | None = None  # the parent's sha256: checked before training, recorded by every run with init
    out: str = "runs/train"
    degradation: DegradationSpec = field(default_factory=DegradationSpec)

    def __post_init__(self) -> None:
        """Every value checked here, so a config file and a resumed run are checked like the command line."""
        _check_types(self, "")
        choices = {"model": tuple(ARCH_PRESETS), "loss_balance": ("fixed", "auto"),
                   "pixel_loss": ("mse", "log-mse"),
                   "microscope_optics": ("x5", "range"), "precision": ("fp32", "fp16", "bf16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise MdeblurError(f"--{name.replace('_', '-')} {getattr(self, name)}: use {' or '.join(allowed)}")
        presets = ARCH_PRESETS[self.model]
        if self.preset not in presets:
            raise MdeblurError(f"--preset {self.preset}: use {' or '.join(presets)}")
        at_least = {"scale": 2, "iters": 1, "batch_size": 1, "patch": 16, "val_every": 1, "checkpoint_every": 1}
        for name, low in at_least.items():
            if getattr(self, name) < low:  # a whole number already (_check_types)
                raise MdeblurError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be a whole number "
                                   f">= {low}")
        if self.patch % 8:
            raise MdeblurError(f"--patch {self.patch}: must be a multiple of 8 (the network's stride)")
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise MdeblurError(f"--epochs {self.epochs}: must be 1 or more")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise MdeblurError(f"--threads {self.threads}: must be 1 or more")
        if not (0 < self.learning_rate < 1 and 0 <= self.final_learning_rate <= self.learning_rate):
            raise MdeblurError(f"--learning-rate {self.learning_rate:g}: must lie in (0, 1), above the final rate")
        if not 0 <= self.ema < 1:
            raise MdeblurError(f"--ema {self.ema:g}: an EMA decay lies in [0, 1) (0: off; 0.999 is usual)")
        for name in ("zoom_prob", "soft_prob", "microscope_prob", "decay_start"):
            if not 0 <= getattr(self, name) <= 1:
                raise MdeblurError(f"--{name.replace('_', '-')} {getattr(self, name):g}: a share lies in [0, 1]")
        for name in ("deblur_weight", "ssim_weight", "perceptual_weight", "adversarial_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise MdeblurError(f"--{name.replace('_', '-')} {getattr(self, name):g}: a loss weight is 0 or more")
        if self.init_sha256 is not None:
            self.init_sha256 = self.init_sha256.lower()
            if self.init is None:
                raise MdeblurError("init_sha256 names a parent, but init (the parent's file) is not given")
            if len(self.init_sha256) != 64 or any(c not in "0123456789abcdef" for c in self.init_sha256):
                raise MdeblurError(f"init_sha256 {self.init_sha256}: give the 64 hex digits of the init file's sha256")
        if self.time_limit_s is not None and not (isinstance(self.time_limit_s, int | float)
                                                  and math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise MdeblurError(f"--time-limit-s {self.time_limit_s}: give a positive number of seconds")
        if self.adv_start < 0:
            raise MdeblurError(f"--adv-start {self.adv_start}: must be 0 or more")
        if not 0 <= self.seed < 2**31:
            raise MdeblurError(f"--seed {self.seed}: use 0 to 2^31 - 1")


# The fields `mdeblur train` offers as options, with their help; the default each shows is the dataclass's own.
OPTION_HELP = {
    "model": "mdeblurgan or unet-sr.",
    "preset": "Network size: tiny (tests), small (CPU) or paper (GPU).",
    "iters": "Training iterations.",
    "epochs": "Alternative to --iters: one epoch shows about as many HR pixels as the data holds.",
    "batch_size": "Patches per iteration and process.",
    "patch": "Low-res patch side in pixels (a multiple of 8).",
    "learning_rate": "Adam learning rate before the decay.",
    "ssim_weight": "beta, weight of (1 - SSIM).",
    "perceptual_weight": "alpha, weight of the VGG19 perceptual loss.",
    "adversarial_weight": "gamma, weight of the adversarial loss.",
    "adv_start": "Iteration at which the adversarial term starts.",
    "loss_balance": "fixed, or auto: alpha and beta from the first batches.",
    "vgg19_weights": "torchvision's vgg19-dcbb9e9d.pth (or safetensors); else torch's hub cache.",
    "pixel_loss": "mse (the paper's), or log-mse: per-patch log(1 + MSE/1e-6), which optimises mean PSNR.",
    "microscope_prob": "Share of patches simulated through the x5-defocus/x10 optics (procedural specimens).",
    "microscope_optics": "x5 (5x/0.12 defocused -> 10x/0.25), or range: dry objectives 4x-20x, NA 0.1-0.45.",
    "ema": "EMA decay of the generator, e.g. 0.999; 0 = off.",
    "time_limit_s": "Stop after this many seconds of training (validated and saved; --resume goes on).",
    "val_every": "Validate and save weights every N iterations.",
    "checkpoint_every": "Write state.pt every N iterations.",
    "device": "auto, cpu, cuda, cuda:N or mps.",
    "precision": "fp32, or bf16/fp16 autocast on CUDA.",
    "threads": "CPU threads for torch (not set: torch's own choice, usually every core).",
    "seed": "Random seed.",
    "init": "Fine-tune: start from these weights (shipped name or path).",
    "out": "Run directory for weights and logs.",
}


RUN_FILES = ("state.pt", "best.safetensors", "last.safetensors", "metrics.csv", "config.toml")


def check_run_folder(out: Path, data: str | None, overwrite: bool) -> None:
    """A new run never lands in (or around) its data folder, nor replaces an earlier run without --overwrite."""
    from ..formats.paths import check_output_folder

    inputs = [Path(data)] if data is not None else []
    if (out / "state.pt").is_file() and not overwrite:
        raise MdeblurError(f"{out}: holds a training run; continue it with --resume {out}, give --overwrite to "
                           "start afresh there, or choose another --out")
    if (out / "config.toml").is_file() and not overwrite:
        raise MdeblurError(f"{out}: holds a run that stopped before its first checkpoint (no state.pt to resume "
                           "from); give --overwrite to start afresh there, or choose another --out")
    check_output_folder(out, [out], inputs, overwrite, [out / f for f in RUN_FILES], "--out")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def config_to_toml(cfg: TrainConfig) -> str:
    """The config as TOML; a key that is not set (None) is written as a comment, so every key is named."""
    d = asdict(cfg)
    deg = d.pop("degradation")
    lines = [f"{k} = {_toml_value(v)}" if v is not None else f"# {k} = (not set)" for k, v in d.items()]
    lines += ["", "[degradation]", *(f"{k} = {_toml_value(v)}" for k, v in deg.items())]
    return "\n".join(lines) + "\n"


def config_from_toml(path: Path, overrides: dict) -> TrainConfig:
    """A TOML file, then CLI overrides (non-None values), on top of the defaults."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MdeblurError(f"{path}: not a readable TOML config ({exc})") from None
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise MdeblurError(f"{path}: unknown config keys {', '.join(sorted(unknown))}")
    deg = raw.pop("degradation", {})
    unknown = set(deg) - {f.name for f in fields(DegradationSpec)}
    if unknown:
        raise MdeblurError(f"{path}: unknown [degradation] keys {', '.join(sorted(unknown))}")
    try:
        spec = DegradationSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in deg.items()})
        return TrainConfig(**{**raw, **{k: v for k, v in overrides.items() if v is not None}, "degradation": spec})
    except MdeblurError as exc:
        raise MdeblurError(f"{path}: {exc}") from None
