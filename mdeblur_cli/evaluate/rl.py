"""Richardson-Lucy deconvolution in torch: FFT convolution, batched over channels, reflect-padded.

A PSF of rank one (a Gaussian, for instance: an outer product of two 1-D kernels) of modest size is
convolved directly instead, as two 1-D passes of shifted adds: the same 'same'-mode linear convolution,
2k multiply-adds per pixel against four FFTs of the padded canvas per iteration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..padding import edge_pad

# Regulariser of the division. scikit-image uses 1e-12 in float64; in float32 the FFT's round-off near black
# pixels is ~1e-7, so 1e-7 keeps those pixels stable (it matches the float64 reference within 3e-5 on the
# astronaut image, where 1e-12 in float32 is off by 1e-3).
EPS = 1e-7

# A PSF is treated as separable when its rank-one SVD approximation is this close (relative Frobenius norm):
# far below float32's resolution, so both paths agree to round-off.
SEPARABLE_RTOL = 1e-6
# Largest separable PSF side convolved directly; above it the FFT path is cheaper
# (benchmarks/bench_rl.py --psf-sizes prints the two paths' times by PSF size).
SEPARABLE_MAX_SIZE = 31


def fft_size(n: int) -> int:
    """The smallest 2^a * 3^b >= n: sizes the FFT is fast at."""
    best = 1 << max(0, (n - 1).bit_length())
    p3 = 1
    while p3 < best:
        p2 = p3
        while p2 < n:
            p2 *= 2
        best = min(best, p2)
        p3 *= 3
    return best


def _centred_otf(psf: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """rfft2 of the PSF with its centre, pixel (k - 1) // 2 as in scipy's 'same' mode, at the canvas origin."""
    kh, kw = psf.shape[-2:]
    canvas = torch.zeros(*psf.shape[:-2], *size, dtype=psf.dtype, device=psf.device)
    canvas[..., :kh, :kw] = psf
    return torch.fft.rfft2(torch.roll(canvas, (-((kh - 1) // 2), -((kw - 1) // 2)), (-2, -1)))


def separable_factors(psf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(vertical, horizontal) 1-D kernels, each (C, k), whose outer products are the (C, kh, kw) PSFs; None
    when some channel's PSF is not of rank one within SEPARABLE_RTOL."""
    p = psf.detach().reshape(-1, *psf.shape[-2:]).cpu().double()  # on the CPU: MPS has no float64
    u, s, vh = torch.linalg.svd(p)
    if s.shape[-1] > 1 and bool((s[:, 1:].norm(dim=-1) > SEPARABLE_RTOL * s[:, :1].norm(dim=-1)).any()):
        return None
    root = s[:, :1].sqrt()
    return (u[:, :, 0] * root).to(psf), (vh[:, 0, :] * root).to(psf)


def _shift_add(z: torch.Tensor, taps: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """sum_t taps[t] * z[..., t : t + n, ...] along dim (-1 or -2); taps is (k,) or per channel (C, k)."""
    k = taps.shape[-1]
    per_channel = taps.dim() == 2 and taps.shape[0] > 1
    w = taps.reshape(1, -1, 1, 1, k) if per_channel else taps.reshape(-1)
    out = None
    for t in range(k):
        sl = z.narrow(dim, t, n)
        wt = w[..., t] if per_channel else float(w[t])
        if out is None:
            out = sl * wt
        elif per_channel:
            out.addcmul_(sl, wt)
        else:
            out.add_(sl, alpha=wt)
    return out


def _conv_same_separable(x: torch.Tensor, col_taps: torch.Tensor, row_taps: torch.Tensor) -> torch.Tensor:
    """Linear 'same' convolution of (B, C, H, W), zeros outside, by the kernel whose 1-D factors, flipped, are
    col_taps and row_taps (taps in correlation order, so the loop flips nothing); the kernel's centre is pixel
    (k - 1) // 2, as in scipy. The mirrored kernel is the same call with the factors unflipped."""
    h, w = x.shape[-2:]
    kh, kw = col_taps.shape[-1], row_taps.shape[-1]
    z = F.pad(x, ((kw - 1) - (kw - 1) // 2, (kw - 1) // 2))
    z = _shift_add(z, row_taps, w, -1)
    z = F.pad(z, (0, 0, (kh - 1) - (kh - 1) // 2, (kh - 1) // 2))
    return _shift_add(z, col_taps, h, -2)


def _rl_separable(x: torch.Tensor, col: torch.Tensor, row: torch.Tensor, iterations: int) -> torch.Tensor:
    """RL on the padded image x with the PSF col (x) row, by direct 'same' convolution."""
    col_f, row_f = col.flip(-1), row.flip(-1)
    est = torch.full_like(x, 0.5)
    for _ in range(iterations):
        ratio = _conv_same_separable(est, col_f, row_f).add_(EPS).reciprocal_().mul_(x)
        est.mul_(_conv_same_separable(ratio, col, row))
    return est


def _rl_fft(x: torch.Tensor, psf: torch.Tensor, iterations: int) -> torch.Tensor:
    """RL on the padded image x by FFT on a zero canvas (see richardson_lucy); returns the estimate on x's grid."""
    kh, kw = psf.shape[-2:]
    ph, pw = x.shape[-2:]
    size = (fft_size(ph + kh - 1), fft_size(pw + kw - 1))
    x = F.pad(x, (0, size[1] - pw, 0, size[0] - ph))
    otf = _centred_otf(psf, size)
    otf_mirror = _centred_otf(psf.flip(-1, -2), size)
    est = torch.zeros_like(x)
    est[..., :ph, :pw] = 0.5
    for _ in range(iterations):
        blurred = torch.fft.irfft2(torch.fft.rfft2(est).mul_(otf), s=size).add_(EPS)
        ratio = blurred.reciprocal_().mul_(x)  # x is 0 outside the padded image, so the ratio is too
        est.mul_(torch.fft.irfft2(torch.fft.rfft2(ratio).mul_(otf_mirror), s=size))
    return est[..., :ph, :pw]


def richardson_lucy(img: torch.Tensor, psf: torch.Tensor, iterations: int = 30, pad: int | None = None,
                    method: str = "auto") -> torch.Tensor:
    """Deconvolve (C, H, W) or (B, C, H, W) in [0, 1] by a (k, k) PSF or one (C, k, k) PSF per channel.

    The image is reflect-padded by `pad` (default: twice the PSF size) so the borders see
    plausible content instead of zeros; the iteration is scikit-image's (start at 0.5, a small eps,
    clip to [-1, 1]) with linear convolution done by FFT.

    The padded image sits in the corner of a zero canvas of a fast FFT size at least k - 1 larger, and the
    estimate starts at 0 outside it, so circular convolution on the canvas equals linear convolution and the
    estimate stays 0 there: the loop needs no crop or re-pad, and works in place.

    method: "fft", "separable" (a rank-one PSF, convolved directly), or "auto": separable when the PSF is
    of rank one and at most SEPARABLE_MAX_SIZE on a side, else FFT. Both give the same result to round-off.
    """
    if method not in ("auto", "fft", "separable"):
        raise ValueError(f"unknown RL method {method!r}: use auto, fft or separable")
    squeeze = img.dim() == 3
    x = img[None] if squeeze else img
    kh, kw = psf.shape[-2:]
    pad = 2 * max(kh, kw) if pad is None else pad
    h, w = x.shape[-2:]
    x = edge_pad(x, pad, pad, pad, pad)
    psf = psf.to(x)
    factors = None if method == "fft" else separable_factors(psf)
    if method == "separable" and factors is None:
        raise ValueError("the PSF is not separable (rank one); use method 'fft' or 'auto'")
    if factors is not None and (method == "separable" or max(kh, kw) <= SEPARABLE_MAX_SIZE):
        est = _rl_separable(x, *factors, iterations)
    else:
        est = _rl_fft(x, psf, iterations)
    est = est[..., pad : pad + h, pad : pad + w].clamp(-1, 1)
    return est[0] if squeeze else est
