"""Torch Richardson-Lucy vs scikit-image's richardson_lucy on a 3 x 512^2 image, same iterations.

Reports the speed ratios measured in one run, and the largest difference from a reflect-padded float64
reference (scikit-image run on the reflect-padded image, then cropped).

scikit-image works in the input's float type: float64 for float64 or integer (uint8/uint16) images, float32
for float32 images. The torch RL always works in float32, so both ratios are printed; the float32 one
compares like with like.

The Gaussian PSF is of rank one, so the torch RL's default ("auto") convolves it directly as two 1-D passes;
the FFT path, which every other PSF takes (a defocus PSF, a measured one), is timed and checked too.
--psf-sizes times the two torch paths against each other over Gaussian PSF sizes, which is where
rl.SEPARABLE_MAX_SIZE comes from.

    python benchmarks/bench_rl.py [--iterations 30] [--repeats 3] [--psf-sizes]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from skimage.restoration import richardson_lucy as sk_richardson_lucy

from mdeblur_cli.data import skimage_image
from mdeblur_cli.data.degrade import convolve, gaussian_kernel
from mdeblur_cli.data.eval import centre_crop
from mdeblur_cli.evaluate.rl import richardson_lucy


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--psf-sizes", action="store_true", help="time the separable and FFT paths by PSF size")
    args = ap.parse_args()
    img = torch.from_numpy(centre_crop(skimage_image("astronaut"), 512, 2)).permute(2, 0, 1).contiguous()
    psf = gaussian_kernel(1.5)
    blurred = convolve(img, psf)
    pad = 2 * psf.shape[0]
    b64, k64 = blurred.double().numpy(), psf.double().numpy()

    b32, k32 = blurred.numpy(), psf.numpy()

    def skimage_zero_padded(image, psf_np):
        return np.stack([sk_richardson_lucy(image[c], psf_np, num_iter=args.iterations, clip=False)
                         for c in range(3)])

    def reference():
        return np.stack([sk_richardson_lucy(np.pad(b64[c], pad, mode="reflect"), k64, num_iter=args.iterations)
                         [pad:-pad, pad:-pad] for c in range(3)])

    if args.psf_sizes:
        for sigma in (1.0, 1.5, 2.5, 4.0, 6.0, 8.0):
            k = gaussian_kernel(sigma)
            b = convolve(img, k)
            t_sep, _ = best_of(lambda b=b, k=k: richardson_lucy(b, k, args.iterations, method="separable"), args.repeats)
            t_fft, _ = best_of(lambda b=b, k=k: richardson_lucy(b, k, args.iterations, method="fft"), args.repeats)
            print(f"gaussian sigma {sigma} ({k.shape[0]}x{k.shape[1]}): separable {t_sep:.3f} s, fft {t_fft:.3f} s, "
                  f"fft / separable {t_fft / t_sep:.2f}x")
        return
    t_torch, out = best_of(lambda: richardson_lucy(blurred, psf, args.iterations), args.repeats)
    t_fft, out_fft = best_of(lambda: richardson_lucy(blurred, psf, args.iterations, method="fft"), args.repeats)
    t_sk64, _ = best_of(lambda: skimage_zero_padded(b64, k64), args.repeats)
    t_sk32, out32 = best_of(lambda: skimage_zero_padded(b32, k32), args.repeats)
    assert out32.dtype == np.float32, out32.dtype
    ref = reference()
    err = float(np.abs(out.numpy() - ref).max())
    err_fft = float(np.abs(out_fft.numpy() - ref).max())
    print(f"image 3x512x512, PSF gaussian sigma 1.5 px (13x13), {args.iterations} iterations, "
          f"{torch.get_num_threads()} torch threads, best of {args.repeats}")
    print(f"torch RL (reflect-padded, float32), default path (separable: the PSF is of rank one): {t_torch:.3f} s; "
          f"FFT path (any PSF): {t_fft:.3f} s")
    print(f"scikit-image richardson_lucy (zero-padded, per channel), float64: {t_sk64:.3f} s, "
          f"float32: {t_sk32:.3f} s")
    for name, t in (("default path", t_torch), ("FFT path", t_fft)):
        print(f"speed ratio scikit-image / torch {name}: {t_sk64 / t:.1f}x against float64 (integer or float64 "
              f"input), {t_sk32 / t:.1f}x against float32 (same precision)")
    print(f"max |torch - reflect-padded float64 reference|: default path {err:.2e}, FFT path {err_fft:.2e}")


if __name__ == "__main__":
    main()
