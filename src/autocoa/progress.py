"""Progress bars: the one owner of how autocoa's own long loops show progress (rich, like every
other terminal view here). The trainers' bars are transformers' own (tqdm), quiet in the demo."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


def _progress(unit: str) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
    )


class _Bar:
    def __init__(self, progress: Any, task: Any):
        self._progress, self._task = progress, task

    def update(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


@contextmanager
def progress_bar(total: int | None, desc: str, unit: str = "", disable: bool = False) -> Iterator[_Bar]:
    """A bar with ``.update(n)``; nothing is drawn when ``disable``.

    >>> with progress_bar(3, "work", disable=True) as bar:
    ...     bar.update(3)
    """
    if disable:
        yield _Bar(None, None)
        return
    with _progress(unit) as p:
        yield _Bar(p, p.add_task(desc, total=total))


def track(
    items: Iterable[T], desc: str, unit: str = "", disable: bool = False, total: int | None = None
) -> Iterator[T]:
    """``items`` with a bar advancing by one per item.

    >>> list(track(range(3), "count", disable=True))
    [0, 1, 2]
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_bar(total, desc, unit, disable) as bar:
        for item in items:
            yield item
            bar.update(1)
