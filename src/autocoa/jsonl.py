"""JSONL reading and writing with errors that name the file, the line and the field."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A bad input row: says where (file, 1-based line, field) and what is wrong."""

    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str):
        self.path, self.line, self.field, self.message = str(path), line, field, message
        where = self.path + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, value)`` for every non-blank line; DataError on bad JSON."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, n, None, f"invalid UTF-8 (byte {e.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, n, None, f"invalid JSON ({e.msg} at column {e.colno})") from None


def write_jsonl(path: str | Path, rows: Iterable[Any], append: bool = False) -> int:
    """Write rows (one JSON object a line, UTF-8 kept readable); return how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("a" if append else "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def trim_jsonl(path: Path, keep) -> None:
    """Keep the JSONL rows for which ``keep(row)`` holds, dropping a line torn by a kill
    (the resumed run writes those rows again). Written atomically."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a line cut short by the kill
            continue
        if isinstance(row, dict) and keep(row):
            kept.append(line)
    from autocoa.atomic import write_text

    write_text(path, "".join(x + "\n" for x in kept))


def read_logged(path: str | Path) -> list[dict[str, Any]]:
    r"""The JSON objects of a log a run appends to (``metrics.jsonl``, ``rollouts.jsonl``,
    ``predictions.jsonl``) for reading, not resuming: a torn line (a run killed mid-write, or
    still writing) and anything not an object are passed over.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.jsonl"
    >>> _ = p.write_text('{"step": 1}\n[2]\n{"step": 2}\n{"ste')
    >>> read_logged(p)
    [{'step': 1}, {'step': 2}]
    """
    out = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out
