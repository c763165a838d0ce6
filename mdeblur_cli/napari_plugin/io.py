"""napari reader, writer and sample data: files open the way `mdeblur restore` reads them, with the physical
pixel size as the layer's scale; a whole slide opens as a lazily read multiscale RGB layer."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

READ_SUFFIXES = (".ome.tif", ".ome.tiff", ".tif", ".tiff", ".ome.zarr", ".svs", ".ndpi", ".scn", ".bif")
LEAD_AXES = {0: "", 1: "Z", 2: "TZ", 3: "TCZ"}  # names for a written layer's leading axes


def get_reader(path):
    """npe2 reader hook: a function for the paths mdeblur reads, else None."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    if len(paths) != 1 or not str(paths[0]).lower().rstrip("/").endswith(READ_SUFFIXES):
        return None
    return read


def read(path) -> list[tuple]:
    path = Path(path[0] if isinstance(path, list | tuple) else path)
    from ..formats.slide import is_slide

    if is_slide(path):
        return [_read_slide(path)]
    from ..formats.stacks import read_series

    return [_layer(s, path, i) for i, s in enumerate(read_series(path))]


def _read_slide(path: Path) -> tuple:
    from ..formats.slide import open_slide

    s = open_slide(path)
    levels = [s.array(k) for k in range(len(s.levels))]
    mpp = s.mpp or (1.0, 1.0)
    meta = {"vendor": s.vendor, "objective_power": s.objective, "mpp": s.mpp, "source": str(path),
            "downsamples": s.downsamples}
    return (levels, {"name": path.name, "multiscale": True, "rgb": True, "scale": list(mpp), "metadata": meta},
            "image")


def _layer(s, path: Path, i: int) -> tuple:
    """One series as a layer: C split into channel layers (napari's channel_axis), S as RGB, calibration as
    scale (µm where the file says so)."""
    data, axes = s.data, s.axes
    size, z = s.meta.pixel_size(), s.meta.z_spacing()
    rgb = axes.endswith("S") and data.shape[-1] in (3, 4)
    kw: dict = {"name": path.name if i == 0 else f"{path.name} [{i}]", "rgb": rgb,
                "metadata": {"axes": axes, "source": str(path), "pixel_size": list(size) if size else None}}
    spatial = [a for a in axes if a not in "CS"]
    scale = [1.0] * len(spatial)
    if size:
        f = _to_um(size[2])
        scale[spatial.index("Y")], scale[spatial.index("X")] = size[0] * f, size[1] * f
        kw["metadata"]["pixel_size_um"] = [size[0] * f, size[1] * f] if f != 1.0 or size[2] in ("µm", "um") else None
    if z and "Z" in spatial:
        scale[spatial.index("Z")] = z[0] * _to_um(z[1])
    kw["scale"] = scale
    if "C" in axes and not rgb:
        kw["channel_axis"] = axes.index("C")
        names = [c.get("Name") for c in _channels(s)]
        if names and all(names) and len(names) == data.shape[axes.index("C")]:
            kw["name"] = names
    elif "S" in axes and not rgb:  # other sample counts: as channels
        kw["channel_axis"] = axes.index("S")
    return data, kw, "image"


def _to_um(unit: str) -> float:
    """Factor from `unit` to µm (1 for units that are not lengths, such as pixels): layers of files in
    different units line up."""
    from ..formats.series import UNIT_CM

    return UNIT_CM[unit] / UNIT_CM["µm"] if unit in UNIT_CM else 1.0


def _channels(s) -> list[dict]:
    ch = s.meta.ome.get("Pixels", {}).get("Channel", [])
    return ch if isinstance(ch, list) else [ch]


def write_image(path: str, data, meta: dict) -> list[str]:
    """npe2 writer: an image layer to OME-TIFF, its scale on Y and X (and Z) as the physical pixel size in µm (a
scale of 1 writes none). OME-TIFF has no place for a layer's translate: it is not kept."""
    from ..formats.series import Meta, Series
    from ..formats.stacks import write_series

    data = np.asarray(data[0] if meta.get("multiscale") else data)
    rgb = bool(meta.get("rgb"))
    lead = data.ndim - (3 if rgb else 2)
    axes = LEAD_AXES.get(lead, "Q" * lead) + ("YXS" if rgb else "YX")
    scale = [float(v) for v in (meta.get("scale") or [1.0] * (data.ndim - int(rgb)))]
    pixels: dict = {}
    if scale[-2:] != [1.0, 1.0]:  # a layer of scale 1 is taken as uncalibrated: no pixel size is invented
        pixels = {"PhysicalSizeY": scale[-2], "PhysicalSizeX": scale[-1], "PhysicalSizeYUnit": "µm",
                  "PhysicalSizeXUnit": "µm"}
    if "Z" in axes and scale[axes.index("Z")] != 1.0:
        pixels.update(PhysicalSizeZ=scale[axes.index("Z")], PhysicalSizeZUnit="µm")
    series = Series(data, axes, Meta(kind="ome", rgb=rgb, ome={"Name": str(meta.get("name", "image")), "Pixels": pixels},
                                     description=None))
    write_series(Path(path), [series])
    return [str(path)]


def _sample(name: str) -> list[tuple]:
    import cv2

    ref = resources.files(__package__) / "samples" / f"{name}_blurry_lr.png"
    with resources.as_file(ref) as p:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img.ndim == 3 and (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all():
        img = np.ascontiguousarray(img[..., 0])  # a gray image stored as RGB
    rgb = img.ndim == 3
    if rgb:
        img = np.ascontiguousarray(img[..., ::-1])
    return [(img, {"name": f"{name}_blurry_lr", "rgb": rgb}, "image")]


def sample_cell() -> list[tuple]:
    return _sample("cell")


def sample_ihc() -> list[tuple]:
    return _sample("immunohistochemistry")


def sample_retina() -> list[tuple]:
    return _sample("retina")
