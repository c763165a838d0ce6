"""`mdeblur info`: what a file holds, before restoring it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, console


@app.command(epilog="Examples:\n\n  mdeblur info slide.svs\n\n  mdeblur info cells.ome.tif\n\n  mdeblur info slide.ndpi --json")
def info(
    path: Annotated[Path, typer.Argument(help="An image or a whole slide.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Levels, sizes, pixel size, vendor and compression of a slide; axes, shape, type and pixel size of an image."""
    import json

    from rich.table import Table

    from ..formats.slide import is_slide

    if is_slide(path):
        from ..formats.slide import info as slide_info

        d = slide_info(path)
        if as_json:
            print(json.dumps(d, indent=1))
            return
        mpp = f"{d['mpp'][1]:.4g} x {d['mpp'][0]:.4g} µm/px" if d["mpp"] else "unknown"
        power = f"{d['objective_power']:g}x" if d["objective_power"] else "unknown"
        console.print(f"{path}: whole slide, vendor {d['vendor']}, {d['compression']} tiles of {d['tile']}, "
                      f"objective {power}, level 0 pixel size {mpp}", highlight=False, soft_wrap=True)
        t = Table("level", "width", "height", "downsample", "µm/px")
        for lv in d["levels"]:
            t.add_row(str(lv["level"]), str(lv["width"]), str(lv["height"]), f"{lv['downsample']:g}",
                      f"{lv['mpp'][1]:.4g}" if lv["mpp"] else "-")
        console.print(t)
        if d["associated"]:
            console.print(f"associated images: {', '.join(d['associated'])}")
        return
    from ..formats.stacks import read_series

    rows = []
    for i, s in enumerate(read_series(path)):
        size = s.meta.pixel_size()
        rows.append({"series": i, "axes": s.axes, "shape": list(s.data.shape), "dtype": str(s.data.dtype),
                     "pixel_size": [size[0], size[1], size[2]] if size else None, "kind": s.meta.kind})
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    for r in rows:
        px = f"{r['pixel_size'][1]:.4g} x {r['pixel_size'][0]:.4g} {r['pixel_size'][2]}" if r["pixel_size"] else "unknown"
        console.print(f"{path} series {r['series']}: {r['kind']}, axes {r['axes']}, shape {tuple(r['shape'])}, "
                      f"{r['dtype']}, pixel size {px}", highlight=False, soft_wrap=True)
