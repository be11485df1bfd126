"""Writing so that a kill leaves the old version or the new one, never half of either.

One rule for files and directories: write a sibling ``<name>.tmp``, then swap it in. A file is
swapped by one ``os.replace`` (atomic). A directory cannot be replaced in one call while it
exists, so the old one steps aside to ``<name>.old`` first; a kill between the two renames
leaves only ``<name>.old``, which :func:`current` returns.

>>> import tempfile; d = Path(tempfile.mkdtemp())
>>> write_text(d / "a.txt", "one"); write_text(d / "a.txt", "two"); (d / "a.txt").read_text()
'two'
>>> def model(n): return lambda t: (t.mkdir(), (t / "w").write_text(n))
>>> replace(d / "m", model("1")); replace(d / "m", model("2"))
>>> (current(d / "m") / "w").read_text(), sorted(p.name for p in d.iterdir())
('2', ['a.txt', 'm'])
>>> _ = (d / "m").rename(d / "m.old"); current(d / "m").name  # killed between the two renames
'm.old'
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def replace(dest: str | Path, write: Callable[[Path], Any]) -> None:
    """Make ``dest`` (a file or a directory) through ``write(tmp)``, then swap it in."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = dest.with_name(dest.name + ".tmp"), dest.with_name(dest.name + ".old")
    _remove(tmp)
    write(tmp)
    if tmp.is_dir():
        _remove(old)
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
        _remove(old)
    else:
        tmp.replace(dest)


def current(dest: str | Path) -> Path:
    """``dest``, or the old version a kill left aside while a directory was being swapped."""
    dest = Path(dest)
    old = dest.with_name(dest.name + ".old")
    return old if not dest.exists() and old.exists() else dest


def write_text(path: str | Path, text: str) -> None:
    """``text`` into ``path`` (UTF-8), swapped in whole."""
    replace(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_model(model: Any, tokenizer: Any, dest: str | Path) -> None:
    """A model (and its tokenizer, if any) saved as one directory, swapped in whole."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)

    replace(dest, write)
