"""Output locations that never alias inputs, and existing outputs that are replaced only when asked."""

from __future__ import annotations

from pathlib import Path

from ..errors import MdeblurError


def overlaps(a: Path, b: Path) -> bool:
    """Whether a is b, lies inside b, or contains b (after resolving links and '..')."""
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def check_output_folder(out: Path, written: list[Path], inputs: list[Path], overwrite: bool, existing: list[Path],
                        option: str = "the output folder") -> None:
    """Refuse an output folder that could touch the inputs, or replace earlier outputs without --overwrite.

    `written` are the folders and files the command will write (inside `out`), `inputs` the input folders and
    files, `existing` the earlier outputs that would be replaced. Writing into an input folder is refused
    always; an output folder that merely contains, or lies inside, an input folder needs --overwrite.
    """
    check_folder_path(out, option)
    for inp in inputs:
        for w in written:
            if overlaps(w, inp):
                raise MdeblurError(f"{out}: {option} would write {w}, which is, holds or lies inside the input "
                                   f"{inp}; choose another output folder")
        if overlaps(out, inp) and not overwrite:
            raise MdeblurError(f"{out}: {option} is, holds or lies inside the input {inp} (the inputs would stay "
                               "untouched: give --overwrite to write there anyway, or choose another folder)")
    found = [p for p in existing if p.exists()]
    if found and not overwrite:
        raise MdeblurError(f"{found[0]}: exists (use --overwrite to replace it, or choose another output)")


def check_folder_path(folder: Path, option: str) -> None:
    """A folder to be written must be a folder, or creatable: no file where it or a parent should be."""
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                raise MdeblurError(f"{folder}: {option} cannot be made there: {p} is a file, not a folder")
            return


def check_new_file(path: Path | None, overwrite: bool, option: str) -> None:
    """A report file (--json, --csv, ...) that exists is replaced only with --overwrite; a folder never."""
    if path is None:
        return
    check_folder_path(path.parent, option)
    if path.is_dir():
        raise MdeblurError(f"{option} {path}: is a folder; give a file name")
    if path.exists() and not overwrite:
        raise MdeblurError(f"{option} {path}: exists (use --overwrite to replace it)")
