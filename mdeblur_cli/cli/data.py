"""`mdeblur simulate`, `mdeblur pairs` and `mdeblur datasets`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import MdeblurError
from .app import app, console, fail, parse_range_and_noise


@app.command(epilog="Examples:\n\n  mdeblur simulate my_x10_images/ sim/ --defocus 30:120\n\n  mdeblur simulate plant sim/ --count 50\n\n  mdeblur simulate --explain")
def simulate(
    source: Annotated[str | None, typer.Argument(help="Folder of in-focus HR (x10) images, or plant|fundus|fibres.")] = None,
    out_dir: Annotated[Path | None, typer.Argument(help="Output folder: lr/, hr/ and meta/.")] = None,
    objective_lr: Annotated[str, typer.Option(help="Low-res objective, MAG/NA.")] = "5x/0.12",
    objective_hr: Annotated[str, typer.Option(help="High-res objective, MAG/NA.")] = "10x/0.25",
    camera_pixel: Annotated[float, typer.Option(help="Camera pixel size in um.")] = 6.5,
    defocus: Annotated[str, typer.Option(help="Defocus range |dz| in um, LO:HI.")] = "30:120",
    noise: Annotated[str, typer.Option(help="Photons at white (Poisson) or 'none'.")] = "1000",
    read_noise: Annotated[float, typer.Option(help="Gaussian read noise (fraction of white).")] = 0.005,
    count: Annotated[int, typer.Option(help="Procedural specimens to make.")] = 20,
    size: Annotated[int, typer.Option(help="Procedural specimen side in HR px.")] = 512,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    explain: Annotated[bool, typer.Option("--explain", help="Print the optics (pixel sizes, depth of field) and exit.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Write into a folder that already holds a dataset.")] = False,
) -> None:
    """Make a paired x5-defocus/x10 dataset with the microscope optics simulator, ready for `mdeblur train`."""
    from ..data.simulate import SimulationSpec, parse_objective, write_pairs

    dz, photons = parse_range_and_noise(defocus, noise)
    try:
        spec = SimulationSpec(parse_objective(objective_lr, camera_pixel), parse_objective(objective_hr, camera_pixel),
                              dz, photons, read_noise)
    except ValueError:
        raise MdeblurError(f"bad objective '{objective_lr}'/'{objective_hr}': give MAG/NA such as 5x/0.12") from None
    if explain:
        from ..data.simulate import explain as explain_lines

        for line in explain_lines(spec):
            print(line)
        return
    if source is None or out_dir is None:
        fail(MdeblurError("simulate needs SOURCE and OUT_DIR (or --explain)"))
    import functools

    from rich.markup import escape

    from ..data import TRAIN_SEED_LIMIT, read_rgb
    from ..data.specimens import SPECIMENS
    from ..formats.images import list_images

    inputs: tuple = ()
    if source in SPECIMENS:
        if count < 1 or not 64 <= size <= 8192:
            raise MdeblurError(f"--count {count} --size {size}: need at least 1 specimen of 64 to 8192 px")
        if seed < 0 or seed * count >= TRAIN_SEED_LIMIT:
            raise MdeblurError(f"--seed {seed}: procedural training seeds must lie in 0..{TRAIN_SEED_LIMIT // count - 1}")
        items = ((f"{source}_{seed * count + i:06d}", functools.partial(SPECIMENS[source], size, seed * count + i))
                 for i in range(count))
    else:
        files = list_images(Path(source), recursive=True) if Path(source).is_dir() else []
        if not files:
            raise MdeblurError(f"{source}: not a folder of images nor one of {', '.join(SPECIMENS)}")
        inputs = (Path(source),)
        items = ((f.stem, functools.partial(read_rgb, f)) for f in files)
    records, errors = write_pairs(items, out_dir, spec, seed, overwrite, inputs)
    for err in errors:
        console.print(f"[red]error:[/red] {escape(err)} (skipped)", highlight=False, soft_wrap=True)
    console.print(f"wrote {len(records)} pairs to {out_dir} (lr/, hr/, meta/)", highlight=False, markup=False,
                  soft_wrap=True)
    if errors:
        raise typer.Exit(2)

pairs_app = typer.Typer(help="Build training pairs from real x5/x10 images.", no_args_is_help=True)
app.add_typer(pairs_app, name="pairs")


@pairs_app.command("align", epilog="Example:\n\n  mdeblur pairs align raw/x5 raw/x10 pairs/ && mdeblur train pairs/")
def pairs_align(
    lr_dir: Annotated[Path, typer.Argument(help="Low-res (x5) images.")],
    hr_dir: Annotated[Path, typer.Argument(help="High-res (x10) images of the same fields, same file stems.")],
    out_dir: Annotated[Path, typer.Argument(help="Output: lr/, hr/ and align.json.")],
    scale: Annotated[int, typer.Option(help="Magnification ratio.")] = 2,
    overwrite: Annotated[bool, typer.Option(help="Replace earlier outputs in OUT (the inputs are never written).")] = False,
) -> None:
    """Register x5/x10 pairs (scale, shift, small rotation), crop to the common field, normalise exposure."""
    from rich.markup import escape

    from ..data.registration import align_folder

    report = align_folder(lr_dir, hr_dir, out_dir, scale, overwrite)
    for r in report:
        if r["status"] == "aligned":
            console.print(f"{escape(r['stem'])}: aligned, rotation {r['rotation_deg']:.2f} deg, shift "
                          f"({r['translation_lr_px'][0]:.2f}, {r['translation_lr_px'][1]:.2f}) LR px, "
                          f"correlation {r['correlation']:.3f}, residual RMS {r['residual_rms']:.4f}", highlight=False)
        else:
            colour = "red" if r["status"] == "error" else "yellow"
            console.print(f"[{colour}]{escape(r['stem'])}: {r['status']}[/{colour}] ({escape(r['reason'])})",
                          highlight=False, soft_wrap=True)
    n = sum(r["status"] == "aligned" for r in report)
    errors = sum(r["status"] == "error" for r in report)
    console.print(f"{n} of {len(report)} pairs aligned into {out_dir}; report in {out_dir / 'align.json'}"
                  + (f"; {errors} unreadable" if errors else ""), highlight=False, markup=False, soft_wrap=True)
    if n == 0 or errors:
        raise typer.Exit(2)

datasets_app = typer.Typer(help="Named datasets: what is found where.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
def datasets_list(
    data_root: Annotated[Path | None, typer.Option(help="Where real data sets live (else $MDEBLUR_DATA, user data dir).")] = None,
) -> None:
    """Show each named dataset: real data found or stand-in, where, and how many images."""
    from rich.table import Table

    from ..data.eval import data_roots, list_datasets

    table = Table(title="searched: " + ", ".join(str(r) for r in data_roots(data_root)), title_justify="left")
    for col in ("dataset", "data", "where", "images"):
        table.add_column(col)
    for d in list_datasets(data_root):
        table.add_row(d["name"], "real" if d["real"] else f"STAND-IN ({d['stand_in']})", d["where"] or "-",
                      str(d["images"]))
    Console().print(table)
