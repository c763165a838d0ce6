"""Self-describing safetensors weights: save, load by shipped name or path, and the manifest."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .errors import MdeblurError
from .formats.images import atomic_write
from .models import ARCHS, build_model
from .restore.error_head import HEAD_PREFIX

FORMAT_VERSION = "1"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"
SHIPPED = ("mdeblurgan-x2", "unet-sr-x2")


def weights_dirs() -> list[Path]:
    """Folders searched for shipped weight names: $MDEBLUR_WEIGHTS, then the repository's weights/."""
    env = os.environ.get("MDEBLUR_WEIGHTS")
    return ([Path(env)] if env else []) + [SHIPPED_DIR]


def resolve_weights(name_or_path: str | Path) -> Path:
    """A shipped name (e.g. 'mdeblurgan-x2'), a path to a .safetensors file, or a run folder (mdeblur adapt or
    train) holding best.safetensors."""
    p = Path(name_or_path)
    if p.is_dir():
        if not (p / "best.safetensors").is_file():
            raise MdeblurError(f"{p}: a folder without best.safetensors (give a weights file, a shipped name, or the "
                               "folder of a finished mdeblur adapt or train run)")
        return p / "best.safetensors"
    if p.suffix == ".safetensors" or p.exists():
        if not p.is_file():
            raise MdeblurError(f"{p}: weights file not found")
        return p
    for d in weights_dirs():
        cand = d / f"{name_or_path}.safetensors"
        if cand.is_file():
            return cand
    raise MdeblurError(f"{name_or_path}: not a weights file nor a shipped model (shipped: {', '.join(SHIPPED)})")


def save_weights(path: str | Path, model: nn.Module, arch: str, provenance: dict | None = None) -> None:
    """Write inference tensors plus architecture, config and provenance metadata, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = {
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "config": json.dumps(model.cfg.to_dict()),
        "scale": str(model.scale),
        "provenance": json.dumps(provenance or {}),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def read_metadata(path: str | Path) -> dict:
    """The metadata of a weights file, with config and provenance decoded."""
    from safetensors import safe_open

    path = resolve_weights(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as exc:
        raise MdeblurError(f"{path}: not a valid safetensors file ({exc})".splitlines()[0]) from None
    for key in ("arch", "config", "format_version"):
        if key not in meta:
            raise MdeblurError(f"{path}: not an mdeblur weights file (metadata lacks '{key}')")
    if meta["format_version"] != FORMAT_VERSION:
        raise MdeblurError(f"{path}: weights format {meta['format_version']} is not supported (need {FORMAT_VERSION})")
    if meta["arch"] not in ARCHS:
        raise MdeblurError(f"{path}: unknown architecture {meta['arch']!r}")
    try:
        meta["config"] = json.loads(meta["config"])
        meta["provenance"] = json.loads(meta.get("provenance", "{}"))
    except ValueError as exc:
        raise MdeblurError(f"{path}: unreadable metadata in the weights file ({exc})".splitlines()[0]) from None
    if not isinstance(meta["config"], dict) or not isinstance(meta["provenance"], dict):
        raise MdeblurError(f"{path}: unreadable metadata in the weights file (config and provenance must be objects)")
    return meta


def _rewrite(path: str | Path, tensors: dict | None, key: str, value) -> None:
    """Rewrite a weights file atomically with provenance[key] = value and, with `tensors`, those tensors in place
    of any stored under their prefix (HEAD_PREFIX); the rest unchanged."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = resolve_weights(path)
    read_metadata(path)  # an mdeblur weights file, or a one-line error
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys() if tensors is None or not k.startswith(HEAD_PREFIX)}
    state.update(tensors or {})
    prov = json.loads(meta.get("provenance", "{}"))
    prov[key] = value
    meta["provenance"] = json.dumps(prov)
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def set_provenance(path: str | Path, key: str, value) -> None:
    """Store `value` under provenance[key] of a weights file, the tensors and the rest of the metadata unchanged
    (written atomically): how fitted extras, such as the trust map's coefficients, travel with the weights."""
    _rewrite(path, None, key, value)


def _check_shapes(path: Path, arch: str, config: dict) -> None:
    """Compare the declared architecture with the file's tensors on the meta device: a wrong or corrupt
    config fails here, by name, before any memory is allocated for it."""
    from safetensors import safe_open

    with torch.device("meta"):
        skeleton = build_model(arch, config)
    want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    with safe_open(str(path), framework="pt") as f:
        have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys() if not k.startswith(HEAD_PREFIX)}
    for key in sorted(want.keys() | have.keys()):
        if want.get(key) != have.get(key):
            what = ("missing" if key not in have else "unexpected" if key not in want else
                    f"shape {list(have[key])}, the architecture needs {list(want[key])}")
            raise MdeblurError(f"{path}: weights do not match their declared architecture ({key}: {what})")


@dataclass
class LoadedModel:
    """A generator rebuilt from its weights file: the network (in eval mode), its architecture's name and what
    the file records about it (`provenance`: data, losses, normalisation, trust calibration)."""

    net: nn.Module
    arch: str
    provenance: dict = field(default_factory=dict)
    head: object = None  # restore.error_head.HeadTrust, when the file carries a fitted error head

    @property
    def scale(self) -> int:
        return self.net.scale

    @property
    def percentiles(self) -> tuple[float, float]:
        """The percentiles the network was trained with (recorded in its weights), else the default."""
        from .restore.normalize import DEFAULT_PERCENTILES

        for rec in (self.provenance.get("normalization"), self.provenance.get("degradation")):
            if rec and "percentiles" in rec:
                return tuple(rec["percentiles"])
        return DEFAULT_PERCENTILES

    @property
    def trust(self):
        """What --trust uses: the learned error head stored with the weights (restore/error_head.py), else the
        sampling map's coefficients (provenance['trust']), else its unfitted default."""
        return self.head if self.head is not None else self.sampling_trust

    @property
    def sampling_trust(self):
        """The sampling map's coefficients, whether or not a head is stored."""
        from .restore.trust import TrustModel

        return TrustModel.from_dict(self.provenance["trust"]) if "trust" in self.provenance else TrustModel()

    def self_ensemble(self) -> LoadedModel:
        """The same model averaged over the 8 flips and quarter turns (8 forward passes)."""
        from .models import SelfEnsemble

        return replace(self, net=SelfEnsemble(self.net).eval())


def load_model(name_or_path: str | Path = "mdeblurgan-x2", device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild a generator from a weights file alone, in eval mode."""
    from safetensors.torch import load_file

    path = resolve_weights(name_or_path)
    meta = read_metadata(path)
    try:
        _check_shapes(path, meta["arch"], meta["config"])
        model = build_model(meta["arch"], meta["config"])
        state = load_file(str(path))
        head_state = {k: state.pop(k) for k in [k for k in state if k.startswith(HEAD_PREFIX)]}
        bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
        if bad is not None:
            raise MdeblurError(f"{path}: weights hold NaN/Inf values ({bad}): a diverged or corrupt training run")
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = next((ln for ln in lines if ln.startswith(("size mismatch", "Missing key", "Unexpected key"))), lines[0]
                   if lines else type(exc).__name__)
        raise MdeblurError(f"{path}: weights do not match their declared architecture ({why.rstrip('.')})") from None
    from .device import as_device

    head = None
    if head_state and "error_head" in meta["provenance"]:
        from .restore.error_head import HeadTrust

        try:
            head = HeadTrust.from_state(meta["provenance"]["error_head"], head_state)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise MdeblurError(f"{path}: its error head does not load ({str(exc).splitlines()[0]})") from None
    return LoadedModel(model.to(as_device(device)).eval(), meta["arch"], meta["provenance"], head)


def store_error_head(path: str | Path, trust) -> None:
    """Store a fitted error head (restore.error_head.HeadTrust) in a weights file: its tensors under
    HEAD_PREFIX and its calibration in provenance['error_head'], replacing any earlier head (atomic)."""
    _rewrite(path, trust.tensors(), "error_head", trust.to_dict())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path = SHIPPED_DIR) -> dict:
    """weights/manifest.json: sha256, size and provenance of every shipped file."""
    entries = {}
    for p in sorted(folder.glob("*.safetensors")):
        meta = read_metadata(p)
        entries[p.stem] = {
            "file": p.name, "sha256": sha256(p), "bytes": p.stat().st_size,
            "arch": meta["arch"], "config": meta["config"], "provenance": meta["provenance"],
        }
    (folder / "manifest.json").write_text(json.dumps(entries, indent=2) + "\n")
    return entries
