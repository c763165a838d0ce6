"""Regenerate the benchmark results and paste them into docs/results.md and weights/README.md.

    python benchmarks/update_readme.py            # runs `mdeblur benchmark` on every offline dataset first
    python benchmarks/update_readme.py --no-run   # only re-paste docs/results_*.md
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = ("reserved", "fire", "micro", "pinecones", "defocus")


def command(name: str) -> list[str]:
    cmd = ["mdeblur", "benchmark", "--dataset", name, "--markdown", f"docs/results_{name}.md",
           "--json", f"docs/results_{name}.json", "--figure", f"docs/figure_{name}.png",
           "--figure-images", "3" if name == "reserved" else "2"]
    return cmd + (["--plot-params", "docs/params_reserved.png"] if name == "reserved" else []) + ["--overwrite"]


def ensemble_command(name: str) -> list[str]:
    """The learned methods again with the x8 self-ensemble (rows named NAME+)."""
    return ["mdeblur", "benchmark", "--dataset", name, "--methods", "unet-sr,mdeblurgan", "--self-ensemble",
            "--markdown", f"docs/results_{name}_self_ensemble.md", "--json", f"docs/results_{name}_self_ensemble.json",
            "--overwrite"]


def robustness_command(name: str = "reserved") -> list[str]:
    """Every method under float, 16-bit, 8-bit, JPEG q90, Poisson and dim 12-bit input: one table."""
    return ["mdeblur", "benchmark", "--dataset", name, "--robustness", "--markdown",
            f"docs/results_robustness_{name}.md", "--json", f"docs/results_robustness_{name}.json", "--overwrite"]


def splice(text: str, marker: str, body: str) -> str:
    block = f"<!-- {marker} -->\n{body.rstrip()}\n<!-- /{marker} -->"
    pattern = re.compile(rf"<!-- {marker} -->(.*?<!-- /{marker} -->)?", re.S)
    return pattern.sub(lambda _: block, text, count=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-run", action="store_true")
    args = ap.parse_args()
    if not args.no_run:
        for name in SETS:
            subprocess.run(command(name), cwd=ROOT, check=True)
            subprocess.run(ensemble_command(name), cwd=ROOT, check=True)
        subprocess.run(robustness_command(), cwd=ROOT, check=True)
    sections, ensemble = [], []
    for name in SETS:
        md = (ROOT / f"docs/results_{name}.md").read_text()
        sections.append(f"`{' '.join(command(name))}`\n\n{md}\n![{name}](figure_{name}.png)\n")
        md = (ROOT / f"docs/results_{name}_self_ensemble.md").read_text()
        ensemble.append(f"`{' '.join(ensemble_command(name))}`\n\n{md}")
    readme = ROOT / "docs" / "results.md"
    text = splice(readme.read_text(), "RESULTS-TABLES", "\n".join(sections))
    text = splice(text, "SELF-ENSEMBLE-TABLES", "\n".join(ensemble))
    robust = (ROOT / "docs/results_robustness_reserved.md").read_text()
    readme.write_text(splice(text, "ROBUSTNESS-TABLE", f"`{' '.join(robustness_command())}`\n\n{robust}"))
    front = ROOT / "README.md"  # the headline table
    front.write_text(splice(front.read_text(), "RESERVED-TABLE", (ROOT / "docs/results_reserved.md").read_text()))
    card = ROOT / "weights" / "README.md"
    card.write_text(splice(card.read_text(), "RESERVED-TABLE", (ROOT / "docs/results_reserved.md").read_text()))
    print("pasted results of", ", ".join(SETS))


if __name__ == "__main__":
    main()
