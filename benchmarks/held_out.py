"""Held-out validation figures of weights files on the training sources' validation strips (never reserved images).

    python benchmarks/held_out.py WEIGHTS [WEIGHTS ...] [--config configs/history/soft-mdeblurgan.toml]

The validation pairs are built as in training from the given config (degradation mix, softened copies), so
weights from different runs are compared on one and the same held-out set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mdeblur_cli.data.train import MICRO_VAL_COUNT, load_sources, split_sources, validation_set
from mdeblur_cli.evaluate.validate import validate
from mdeblur_cli.train.config import config_from_toml
from mdeblur_cli.weights import load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--config", type=Path, default=Path("configs/history/soft-mdeblurgan.toml"))
    args = ap.parse_args()
    cfg = config_from_toml(args.config, {})
    _, val_src = split_sources(load_sources(cfg.data, cfg.scale)[0], cfg.scale)
    optics = cfg.microscope_optics if cfg.microscope_prob > 0 else None
    pairs = validation_set(val_src, cfg.degradation, soft=cfg.soft_prob > 0, microscope=optics)
    n_micro = MICRO_VAL_COUNT * {None: 0, "x5": 1, "range": 2}[optics]  # validation_set puts them first
    groups = {"all": pairs, "image strips": pairs[n_micro:], "simulated microscope": pairs[:n_micro]}
    print(f"{len(pairs)} held-out pairs from {args.config} ({n_micro} simulated microscope pairs)")
    for w in args.weights:
        model = load_model(w)
        parts = []
        for name, group in groups.items():
            if group:
                p, s = validate(model.net, group, torch.device("cpu"), cfg.scale)
                parts.append(f"{name} {p:.3f} dB / {s:.4f}")
        print(f"{w}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
