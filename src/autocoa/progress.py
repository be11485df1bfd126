"""Progress bars: the one owner of how autocoa's own long loops show progress (rich, like every
other terminal view here). The trainers' bars are transformers' own (tqdm), quiet in the demo.

A *live display* (:func:`live`, the demo's and the studies') is one rich ``Progress`` that every
bar joins while it is active: each training stage adds a bar with its step count, ETA and the
few numbers that say whether it learns (:func:`autocoa.train.common.live_steps`), evaluation a
bar per method; rich allows one live display at a time, so nothing opens a second one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


def _progress(unit: str = "", console: Any = None, disable: bool = False) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(unit)] if unit else []
    return Progress(
        *columns, TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, disable=disable
    )


def live_display(console: Any = None) -> Any:
    """A rich ``Progress`` for :func:`live` (the demo's and the studies'): one bar for the run,
    one for the stage at work, with its numbers and ETA; drawn nowhere under :func:`verbose`."""
    return _progress(console=console, disable=verbose())


_LIVE: list[Any] = []  # the active live display (at most one)
_VERBOSE = [False]


def set_verbose(on: bool) -> None:
    """``--verbose``: the recipe's stages show the libraries' own bars and every log line, and
    no live display is drawn (the two would interleave)."""
    _VERBOSE[0] = on


def verbose() -> bool:
    return _VERBOSE[0]


@contextmanager
def live(progress: Any) -> Iterator[Any]:
    """Make ``progress`` (a started rich ``Progress``) the display every bar joins (not under
    :func:`verbose`)."""
    if verbose():
        yield progress
        return
    _LIVE.append(progress)
    try:
        yield progress
    finally:
        _LIVE.remove(progress)


def active() -> Any:
    """The live display, or None."""
    return _LIVE[-1] if _LIVE else None


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
    shared = active()
    if shared is not None:  # join the live display (shown even when ``disable``: the display is the choice)
        task = shared.add_task(f"  {desc}", total=total)
        try:
            yield _Bar(shared, task)
        finally:
            shared.remove_task(task)
        return
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
