"""How close restoring comes to the machine's arithmetic limit, in one process.

For each method: the restore path at its defaults (`restore_array` on an 8-bit RGB image, as `mdeblur restore`
does), its wall time, megapixels/s, and for the networks the achieved GFLOP/s counting useful pixels only
(FLOPs per input pixel from torch.utils.flop_counter on one whole-image pass, times the image's pixels,
over the time), against the fp32 matmul rate of the same machine (2048^2 torch.mm, median of 5) as a ratio.

    python benchmarks/restore_speed.py                  # 1024^2 RGB, shipped weights, CPU
    python benchmarks/restore_speed.py --size 512 --json speed.json
    python benchmarks/restore_speed.py --device cuda    # CUDA events for the timings
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from mdeblur_cli.restore.arrays import restore_array
from mdeblur_cli.weights import load_model


def _timer(device: torch.device):
    """A function that runs fn() and returns its seconds (CUDA events on CUDA)."""
    if device.type == "cuda":
        def run(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3
        return run

    def run(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    return run


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    timer = _timer(device)
    timer(lambda: a @ b)  # warm-up
    return 2 * n**3 / statistics.median(timer(lambda: a @ b) for _ in range(repeats)) / 1e9


def flops_per_pixel(model: torch.nn.Module, device: torch.device, side: int = 256) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, side, side, device=device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops() / side**2


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_method(name: str, img: np.ndarray, device: torch.device, ref_gflops: float, args) -> dict:
    h, w = img.shape[:2]
    timer = _timer(device)
    if name == "rl-sr":
        from mdeblur_cli.data.degrade import upscale_bicubic
        from mdeblur_cli.evaluate.psfs import parse_psf
        from mdeblur_cli.evaluate.rl import richardson_lucy

        psf = parse_psf("gaussian:1.5")
        x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1).contiguous()
        seconds = timer(lambda: upscale_bicubic(richardson_lucy(x, psf, 30), 2))
        return {"method": name, "seconds": seconds, "mpix_per_s": h * w / seconds / 1e6, "flops_per_pixel": None,
                "achieved_gflops": None, "ratio": None, "peak_rss_mb": peak_rss_mb()}
    model = load_model(args.weights if name == "mdeblurgan" else args.unet_weights, device)
    fpp = flops_per_pixel(model.net, device)
    restore_array(img[:64, :64], model, device=device)  # warm-up
    seconds = timer(lambda: restore_array(img, model, device=device, **({"tile": args.tile} if args.tile else {})))
    achieved = fpp * h * w / seconds / 1e9
    return {"method": name, "seconds": seconds, "mpix_per_s": h * w / seconds / 1e6, "flops_per_pixel": fpp,
            "achieved_gflops": achieved, "ratio": achieved / ref_gflops, "peak_rss_mb": peak_rss_mb()}


def onnx_vs_torch(weights: str, sides: tuple[int, ...] = (256, 400)) -> None:
    """One forward pass of the exported ONNX graph in onnxruntime against torch (channels_last, inference_mode)."""
    import tempfile

    import onnxruntime as ort

    from mdeblur_cli.export.networks import RestoredImage
    from mdeblur_cli.export.write import export

    model = load_model(weights)
    path = Path(tempfile.mkdtemp()) / "m.onnx"
    export(model, "onnx", path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    net = RestoredImage(model.net).to(memory_format=torch.channels_last)
    for side in sides:
        x = torch.rand(1, 3, side, side)
        session.run(None, {"input": x.numpy()})
        t = time.perf_counter()
        session.run(None, {"input": x.numpy()})
        t_ort = time.perf_counter() - t
        with torch.inference_mode():
            xc = x.contiguous(memory_format=torch.channels_last)
            net(xc)
            t = time.perf_counter()
            net(xc)
            t_torch = time.perf_counter() - t
        print(f"onnxruntime vs torch, one {side}^2 window: {t_ort:.3f} s vs {t_torch:.3f} s, ratio {t_ort / t_torch:.2f}")


def window_variants(weights: str, device: torch.device, ref_gflops: float, side: int, compile_too: bool) -> list:
    """One restore window through the network, per window: one per pass, four per pass (a batch), compiled.

    The same channels_last, inference_mode forward as `restore`; GFLOP/s here count every pixel of the window.
    """
    model = load_model(weights, device).net.to(memory_format=torch.channels_last)
    fpp = flops_per_pixel(model, device)
    timer = _timer(device)
    rows = []

    def measure(label: str, net, batch: int) -> None:
        x = torch.rand(batch, 3, side, side, device=device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            net(x)  # warm-up (and, compiled, the compilation)
            seconds = min(timer(lambda: net(x)) for _ in range(3)) / batch
        rate = fpp * side * side / seconds / 1e9
        rows.append({"variant": label, "seconds_per_window": seconds, "gflops": rate, "ratio": rate / ref_gflops})
        print(f"  {label:24s} {seconds:6.3f} s per window, {rate:6.1f} GFLOP/s, ratio {rate / ref_gflops:.2f}")

    print(f"one {side}^2 window, mdeblurgan forward:")
    measure("eager, 1 per pass", model, 1)
    measure("eager, 4 per pass", model, 4)
    if compile_too:
        t = time.perf_counter()
        compiled = torch.compile(model)
        measure("torch.compile, 1 per pass", compiled, 1)
        print(f"  (compiling, with the warm-up pass: {time.perf_counter() - t:.1f} s)")
    return rows


def trust_time(weights: str, img: np.ndarray, device: torch.device) -> dict:
    """restore with --trust against without, the same image, one run each."""
    from mdeblur_cli.restore.arrays import TrustRequest, restore_stack

    model = load_model(weights, device)
    timer = _timer(device)
    plain = timer(lambda: restore_stack(img, "YXS", model, channels="rgb", device=device))
    trusted = timer(lambda: restore_stack(img, "YXS", model, channels="rgb", device=device,
                                          trust=TrustRequest(model.trust)))
    print(f"trust map cost, {img.shape[0]}x{img.shape[1]}: restore {plain:.2f} s, with --trust {trusted:.2f} s, "
          f"ratio {trusted / plain:.2f}")
    return {"plain_seconds": plain, "trust_seconds": trusted, "ratio": trusted / plain}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tile", type=int, default=None, help="restore's --tile (default: restore's own default)")
    ap.add_argument("--methods", default="mdeblurgan,unet-sr,rl-sr")
    ap.add_argument("--weights", default="mdeblurgan-x2")
    ap.add_argument("--unet-weights", default="unet-sr-x2")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tiles", default=None, help="also sweep these --tile values for mdeblurgan, e.g. 256,320,512,0 "
                    "(0: the whole image in one pass)")
    ap.add_argument("--onnx", action="store_true", help="also time onnxruntime against torch on one window")
    ap.add_argument("--window", type=int, default=0, help="also time one window of this side: 1 and 4 per pass")
    ap.add_argument("--compile", action="store_true", help="with --window: also torch.compile (needs a C++ compiler)")
    ap.add_argument("--trust", action="store_true", help="also time restore --trust (the trust map) against plain")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    from skimage import data
    from skimage.transform import resize

    base = data.astronaut()  # a real photograph (not a reserved image), resized to the test size
    img = (resize(base, (args.size, args.size), anti_aliasing=True) * 255).astype(np.uint8)
    img = np.clip(img.astype(np.int16) + rng.integers(-2, 3, img.shape), 0, 255).astype(np.uint8)
    ref = matmul_gflops(device)
    rows = [run_method(m.strip(), img, device, ref, args) for m in args.methods.split(",") if m.strip()]
    print(f"restore speed, {args.size}x{args.size} 8-bit RGB, device {device}, {torch.get_num_threads()} threads; "
          f"fp32 matmul (2048^2 torch.mm, median of 5): {ref:.1f} GFLOP/s")
    print(f"{'method':12s} {'seconds':>8s} {'Mpx/s':>7s} {'kFLOP/px':>9s} {'GFLOP/s':>8s} {'ratio':>6s} {'peak RSS':>9s}")
    for r in rows:
        fpp = f"{r['flops_per_pixel'] / 1e3:9.0f}" if r["flops_per_pixel"] else f"{'-':>9s}"
        gf = f"{r['achieved_gflops']:8.1f}" if r["achieved_gflops"] else f"{'-':>8s}"
        ratio = f"{r['ratio']:6.2f}" if r["ratio"] else f"{'-':>6s}"
        print(f"{r['method']:12s} {r['seconds']:8.2f} {r['mpix_per_s']:7.3f} {fpp} {gf} {ratio} "
              f"{r['peak_rss_mb']:7.0f} MB")
    sweep = []
    if args.tiles:
        model = load_model(args.weights, device)
        fpp = flops_per_pixel(model.net, device)
        timer = _timer(device)
        print(f"tile sweep, mdeblurgan, {args.size}x{args.size}:")
        for tile in (int(t) for t in args.tiles.split(",")):
            seconds = timer(lambda: restore_array(img, model, device=device, tile=tile or 1 << 16))  # noqa: B023
            ratio = fpp * img.shape[0] * img.shape[1] / seconds / 1e9 / ref
            sweep.append({"tile": tile or "whole", "seconds": seconds, "ratio": ratio})
            print(f"  tile {tile or 'whole':>5}: {seconds:6.2f} s, ratio {ratio:.2f}")
    windows = window_variants(args.weights, device, ref, args.window, args.compile) if args.window else []
    trust_cost = trust_time(args.weights, img, device) if args.trust else {}
    if args.onnx:
        onnx_vs_torch(args.weights)
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "device": str(device), "threads": torch.get_num_threads(),
                                         "matmul_gflops": ref, "methods": rows, "tile_sweep": sweep,
                                         "windows": windows,
                                         "trust": trust_cost}, indent=2) + "\n")


if __name__ == "__main__":
    main()
