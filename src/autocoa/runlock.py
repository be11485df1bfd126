"""One process per run directory.

A process that writes a run directory (a stage, a trainer, an evaluation) holds ``OUT/.lock``:
a JSON line naming its pid, host, start time and command. A second process that comes to the same
directory is refused with that line (:class:`RunLockedError`), instead of writing checkpoints and
metrics between the first one's. A lock whose process has ended (a kill, a crash) is stale: it is
cleared and taken. The lock is reentrant within a process (the demo's stage runner holds a stage's
directory, and the trainer it calls takes it again), and only the main process of a distributed run
(``RANK`` 0) takes it.

Why our own: ``filelock``'s OS locks cannot say who holds a lock, and leave nothing to clear
when the holder dies, so a refusal could not name the holder; a pid file is the smallest thing
that can.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

LOCK = ".lock"
_held: dict[Path, int] = {}  # directories this process holds -> nesting depth

F = TypeVar("F", bound=Callable[..., Any])


class RunLockedError(RuntimeError):
    """Another live process holds the run directory."""


def _main_process() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the holder may still run: on this host, its pid exists; on another, unknown (True)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # torn (a kill mid-write) or gone
    return value if isinstance(value, dict) and "pid" in value else None


def describe(holder: dict[str, Any]) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder['pid']} on {holder.get('host', '?')} since {started} ({holder.get('command', '?')})"


def acquire(out_dir: str | Path) -> bool:
    """Take ``out_dir``'s lock (creating the directory); True when the call is to be paired with
    :func:`release` (it took the lock, or nested in this process's hold of it), False in a
    process other than the main one. RunLockedError when a live process holds it."""
    out = Path(out_dir).resolve()
    if not _main_process():
        return False
    if out in _held:
        _held[out] += 1
        return True
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": " ".join(sys.argv)}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is None and path.exists() and time.time() - path.stat().st_mtime < 5:
                time.sleep(0.2)  # being written by its holder this moment
                continue
            if holder is not None and _alive(holder):
                raise RunLockedError(
                    f"{out}: in use by {describe(holder)}; wait for it to end or stop it "
                    f"(if that process is gone, delete {path}; see docs/troubleshooting.md#run-lock)"
                ) from None
            path.unlink(missing_ok=True)  # stale: its process has ended
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(me) + "\n")
        _held[out] = 1
        return True
    raise RunLockedError(
        f"{out}: could not take {path} (another process keeps taking it; see docs/troubleshooting.md#run-lock)"
    )


def release(out_dir: str | Path) -> None:
    out = Path(out_dir).resolve()
    if out not in _held:
        return
    _held[out] -= 1
    if _held[out] == 0:
        del _held[out]
        holder = _read(out / LOCK)
        if holder is not None and holder.get("pid") == os.getpid():
            (out / LOCK).unlink(missing_ok=True)


@contextmanager
def run_lock(out_dir: str | Path) -> Iterator[None]:
    """Hold ``out_dir``'s lock for the block (see the module)."""
    paired = acquire(out_dir)
    try:
        yield
    finally:
        if paired:
            release(out_dir)


def holds_lock(param: str = "out_dir") -> Callable[[F], F]:
    """Decorate a function that writes the run directory given as its argument ``param`` (or an
    attribute of an argument: ``"request.out"``): it runs holding that directory's lock."""
    name, *attrs = param.split(".")

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = sig.bind(*args, **kwargs).arguments[name]
            for attr in attrs:
                out = getattr(out, attr)
            with run_lock(out):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco
