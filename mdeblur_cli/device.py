"""Device and precision selection."""

from __future__ import annotations

import torch

from .errors import MdeblurError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CPU = torch.device("cpu")


def as_device(device: str | torch.device) -> torch.device:
    """The one conversion at a public entry point (restore_array, restore_file, load_model, the commands): a name
    is resolved (resolve_device), a torch.device passes; everything below takes a torch.device."""
    return resolve_device(device) if isinstance(device, str) else device


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise MdeblurError(f"--device {name}: not a device (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise MdeblurError(f"--device {name}: not a device mdeblur runs on (use auto, cpu, cuda, cuda:N or mps)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise MdeblurError(f"--device {name}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise MdeblurError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise MdeblurError(f"--device {name}: MPS is not available on this machine")
    return dev


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """fp32 anywhere; fp16/bf16 only on CUDA."""
    if precision not in DTYPES:
        raise MdeblurError(f"--precision {precision}: use fp32, fp16 or bf16")
    if precision != "fp32" and device.type != "cuda":
        raise MdeblurError(f"--precision {precision}: half precision needs a CUDA device (this run uses {device.type})")
    return DTYPES[precision]
