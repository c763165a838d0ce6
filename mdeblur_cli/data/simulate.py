"""Microscope optics: incoherent defocus PSFs from the pupil function, depth of field, x5-defocus/x10 pairs."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MdeblurError
from .degrade import convolve, poisson_gaussian_noise
from .draws import chance, uniform

RGB_WAVELENGTHS_UM = (0.61, 0.54, 0.47)


@dataclass(frozen=True)
class Objective:
    """A dry objective and the camera behind it."""

    magnification: float
    na: float
    camera_pixel_um: float = 6.5
    immersion_n: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.magnification) and self.magnification > 0):
            raise MdeblurError(f"objective magnification {self.magnification:g}: must be positive")
        if not (0 < self.na < self.immersion_n):
            raise MdeblurError(f"objective NA {self.na:g}: must lie between 0 and the immersion index "
                               f"{self.immersion_n:g} (a dry objective reaches at most about 0.95)")
        if not (math.isfinite(self.camera_pixel_um) and self.camera_pixel_um > 0):
            raise MdeblurError(f"--camera-pixel {self.camera_pixel_um:g}: must be a positive size in um")

    @property
    def pixel_um(self) -> float:
        """Camera pixel size at the sample."""
        return self.camera_pixel_um / self.magnification

    def depth_of_field_um(self, wavelength_um: float = 0.55) -> float:
        """d = lambda n / NA^2 + n e / (M NA): the wave-optical and the detector terms."""
        n = self.immersion_n
        return wavelength_um * n / self.na**2 + n * self.camera_pixel_um / (self.magnification * self.na)

    def to_dict(self) -> dict:
        return asdict(self)


OBJ_X5 = Objective(5, 0.12)
OBJ_X10 = Objective(10, 0.25)


def parse_objective(spec: str, camera_pixel_um: float = 6.5) -> Objective:
    """'5x/0.12' -> Objective(5, 0.12); anything else is one MdeblurError."""
    from ..errors import MdeblurError

    mag, _, na = spec.strip().lower().partition("/")
    try:
        m, a = float(mag.rstrip("x")), float(na)
    except ValueError:
        raise MdeblurError(f"objective {spec!r}: give MAGNIFICATION/NA, such as 5x/0.12 or 10x/0.25") from None
    if m <= 0 or not 0 < a <= 1.7:
        raise MdeblurError(f"objective {spec!r}: magnification {m:g}x, NA {a:g}: the magnification must be > 0 and "
                           "the NA in (0, 1.7]")
    return Objective(m, a, camera_pixel_um)


def geometric_radius_um(dz_um: float, na: float, n: float = 1.0) -> float:
    """Radius of the geometric defocus blur: |dz| tan(asin(NA / n)) (the marginal ray's cone; NA/n capped below 1)."""
    return abs(dz_um) * math.tan(math.asin(min(na / n, 0.999)))


def defocus_psf(
    dz_um: float, na: float, wavelength_um: float, pixel_um: float, n: float = 1.0, radius_px: int | None = None
) -> np.ndarray:
    """Incoherent defocus PSF sampled on camera pixels of `pixel_um` at the sample, summing to 1.

    h(dz) = |IFFT{circ(|k| <= NA/lambda) exp(i 2 pi dz sqrt((n/lambda)^2 - |k|^2))}|^2 on a grid of pitch
    <= lambda / (4 NA), then integrated over each camera pixel.
    """
    geometric_um = geometric_radius_um(dz_um, na, n)
    airy_um = 0.61 * wavelength_um / na
    if radius_px is None:
        radius_px = max(2, math.ceil((geometric_um + 3 * airy_um) / pixel_um))
    sub = math.ceil(pixel_um / (wavelength_um / (4 * na)))
    sub += 1 - sub % 2  # odd, so one fine sample sits at each pixel centre
    dx = pixel_um / sub
    out_fine = (2 * radius_px + 1) * sub
    # The field must not wrap around: twice the PSF's extent, as a power of two.
    n_grid = 1 << math.ceil(math.log2(max(2 * out_fine, 64)))
    k = torch.fft.fftfreq(n_grid, d=dx, dtype=torch.float64)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    pupil = (k2 <= (na / wavelength_um) ** 2).to(torch.complex128)
    kz = torch.sqrt(torch.clamp((n / wavelength_um) ** 2 - k2, min=0))
    field = torch.fft.ifft2(pupil * torch.exp(2j * math.pi * dz_um * kz))
    intensity = torch.fft.fftshift(field.abs() ** 2)
    c = n_grid // 2
    half = out_fine // 2
    crop = intensity[c - half : c + half + 1, c - half : c + half + 1]
    binned = F.avg_pool2d(crop[None, None], sub)[0, 0]  # integrate over camera pixels
    psf = binned / binned.sum()
    psf = 0.5 * (psf + psf.flip(0, 1))  # exact symmetry, removing FFT round-off
    return psf.float().numpy()


def rms_radius_px(psf: np.ndarray) -> float:
    """Root-mean-square radius of a centred PSF, in pixels."""
    r = psf.shape[0] // 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return float(np.sqrt((psf * (x**2 + y**2)).sum() / psf.sum()))


def rgb_psfs(dz_um: float, objective: Objective, pixel_um: float, wavelengths=RGB_WAVELENGTHS_UM) -> torch.Tensor:
    """(3, k, k) defocus PSFs, one per colour channel, on a common grid."""
    geometric = geometric_radius_um(dz_um, objective.na, objective.immersion_n)
    radius = max(2, math.ceil((geometric + 3 * 0.61 * max(wavelengths) / objective.na) / pixel_um))
    return torch.from_numpy(np.stack([
        defocus_psf(dz_um, objective.na, w, pixel_um, objective.immersion_n, radius) for w in wavelengths
    ]))


@functools.lru_cache(maxsize=256)
def cached_rgb_psfs(dz_um: float, objective: Objective, pixel_um: float) -> torch.Tensor:
    """rgb_psfs, memoised for training-time simulation (the result is shared: do not modify it)."""
    return rgb_psfs(dz_um, objective, pixel_um)


@dataclass
class SimulationSpec:
    """x5-defocus -> x10 pair physics (defaults: the paper's objectives, 6.5 um camera pixel)."""

    objective_lr: Objective = OBJ_X5
    objective_hr: Objective = OBJ_X10
    defocus_um: tuple[float, float] = (30.0, 120.0)
    peak: float | None = 1000.0  # photons at white; None: noise-free
    read_sigma: float = 0.005

    def __post_init__(self) -> None:
        lo, hi = self.defocus_um
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
            raise MdeblurError(f"--defocus {lo:g}:{hi:g}: need 0 <= LO <= HI (um)")
        if self.peak is not None and not (math.isfinite(self.peak) and self.peak > 0):
            raise MdeblurError(f"--noise {self.peak:g}: photons at white must be positive (or 'none')")
        if not (math.isfinite(self.read_sigma) and self.read_sigma >= 0):
            raise MdeblurError(f"--read-noise {self.read_sigma:g}: must be 0 or more")
        ratio = self.objective_hr.magnification / self.objective_lr.magnification
        if ratio < 1.5 or abs(ratio - round(ratio)) > 1e-6:
            raise MdeblurError(f"objectives x{self.objective_lr.magnification:g} and x{self.objective_hr.magnification:g}:"
                               " the high-res magnification must be a whole multiple (2 or more) of the low-res one")

    @property
    def scale(self) -> int:
        return round(self.objective_hr.magnification / self.objective_lr.magnification)


def simulate_pair(
    specimen: torch.Tensor, spec: SimulationSpec, generator: torch.Generator, dz_um: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """From a specimen (3, H, W) at the HR sampling: (x5 defocused LR, x10 in-focus HR, metadata).

    HR = specimen (x) h10(0); LR = bin_s(specimen (x) h5(dz)) + Poisson-Gaussian noise, with h5 sampled
    on the HR pixel grid and binned by the magnification ratio s.
    """
    s = spec.scale
    hr_px = spec.objective_hr.pixel_um
    if dz_um is None:
        lo, hi = spec.defocus_um
        dz_um = uniform(generator, lo, hi)
        dz_um *= 1 if chance(generator, 0.5) else -1
    h, w = specimen.shape[-2] // s * s, specimen.shape[-1] // s * s
    specimen = specimen[:, :h, :w]
    hr = convolve(specimen, cached_rgb_psfs(0.0, spec.objective_hr, hr_px)).clamp(0, 1)
    lr_psfs = cached_rgb_psfs(dz_um, spec.objective_lr, hr_px)
    lr = F.avg_pool2d(convolve(specimen, lr_psfs)[None], s)[0].clamp(0, 1)
    if spec.peak is not None:
        lr = poisson_gaussian_noise(lr, spec.peak, spec.read_sigma, generator)
    meta = {"defocus_um": dz_um, "objective_lr": spec.objective_lr.to_dict(), "objective_hr": spec.objective_hr.to_dict(),
            "wavelengths_um": list(RGB_WAVELENGTHS_UM), "hr_pixel_um": hr_px, "lr_pixel_um": hr_px * s,
            "peak_photons": spec.peak, "read_sigma": spec.read_sigma if spec.peak is not None else None}
    return lr, hr, meta


def lr_psf(meta: dict) -> torch.Tensor:
    """The (3, k, k) PSF on the LR grid that a pair's metadata implies, for Richardson-Lucy."""
    obj = Objective(**meta["objective_lr"])
    return rgb_psfs(meta["defocus_um"], obj, meta["lr_pixel_um"], tuple(meta["wavelengths_um"]))


def write_pairs(
    specimens, out_dir, spec: SimulationSpec, seed: int = 0, overwrite: bool = False, inputs: tuple = ()
) -> tuple[list[dict], list[str]]:
    """Write a paired dataset (lr/, hr/ as 16-bit PNG, meta/ as JSON) from (stem, load) specimens, where
    load() gives an (H, W, 3) float image. Returns (records, errors): a specimen that fails to load is named in
    `errors` and skipped, and the others are written. `inputs` are folders the output must not touch.
    """
    import json
    from pathlib import Path

    from ..formats.images import from_float, write_image
    from ..formats.paths import check_output_folder

    out = Path(out_dir)
    existing = sorted((out / "lr").iterdir()) if (out / "lr").is_dir() else []
    check_output_folder(out, [out / "lr", out / "hr", out / "meta"], list(inputs), overwrite, existing[:1], "OUT_DIR")
    records, errors = [], []
    for i, (stem, load) in enumerate(specimens):
        try:
            img = load()
        except MdeblurError as exc:
            errors.append(str(exc))
            continue
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        lr, hr, meta = simulate_pair(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), spec, g)
        write_image(out / "lr" / f"{stem}.png", from_float(lr.permute(1, 2, 0).numpy(), np.uint16))
        write_image(out / "hr" / f"{stem}.png", from_float(hr.permute(1, 2, 0).numpy(), np.uint16))
        (out / "meta").mkdir(parents=True, exist_ok=True)
        (out / "meta" / f"{stem}.json").write_text(json.dumps(meta, indent=2) + "\n")
        records.append({"stem": stem, **meta})
    return records, errors


def explain(spec: SimulationSpec) -> list[str]:
    """Human-readable optics of a simulation set-up."""
    lines = []
    for label, obj in (("low-res", spec.objective_lr), ("high-res", spec.objective_hr)):
        dof = ", ".join(f"{obj.depth_of_field_um(w):.1f}" for w in RGB_WAVELENGTHS_UM)
        lines.append(f"{label}: x{obj.magnification:g}/NA {obj.na}, camera pixel {obj.camera_pixel_um} um -> "
                     f"{obj.pixel_um:.3f} um at the sample; depth of field (R, G, B) {dof} um; "
                     f"Airy radius (G) {0.61 * 0.54 / obj.na:.2f} um")
    lo, hi = spec.defocus_um
    for dz in (lo, hi):
        r = geometric_radius_um(dz, spec.objective_lr.na, spec.objective_lr.immersion_n)
        lines.append(f"defocus {dz:g} um: geometric blur radius {r:.1f} um = {r / spec.objective_lr.pixel_um:.1f} "
                     f"low-res px")
    noise = "none" if spec.peak is None else f"Poisson {spec.peak:g} photons at white + Gaussian read {spec.read_sigma}"
    lines.append(f"sampling ratio x{spec.scale}; noise: {noise}")
    return lines
