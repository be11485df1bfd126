"""Resumable training runs: the run manifest, complete checkpoints, data hashes.

A stage writes into its output directory::

    OUT/run.json            stage, resolved config, input model, sha256 of every data file
    OUT/checkpoints/        transformers' checkpoint-N directories (model, optimizer, RNG, state)
    OUT/metrics.jsonl       one line per logging step
    OUT/DONE                written last, with the summary: the run is finished

Running the same command again continues from the newest *complete* checkpoint: a run killed
while writing ``checkpoint-N`` leaves a directory without a readable ``trainer_state.json``
(transformers writes it last), which is skipped. A run whose manifest differs (other data,
other config) is refused rather than silently mixed; ``--overwrite`` starts over.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

from autocoa.train.common import DONE_MARKER

MANIFEST = "run.json"
CHECKPOINTS = "checkpoints"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class RunMismatchError(ValueError):
    pass


def file_hash(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_complete(checkpoint: Path, needs: tuple[str, ...] = ()) -> bool:
    """A checkpoint is complete when its trainer state (written last) parses and the files a
    stage writes into it before that state (``needs``) are there."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return all((checkpoint / name).exists() for name in needs)


def last_checkpoint(out_dir: Path, folder: str = CHECKPOINTS, needs: tuple[str, ...] = ()) -> Path | None:
    """The newest complete ``checkpoint-N`` under ``OUT/folder`` (see :func:`is_complete`), or None."""
    root = out_dir / folder
    if not root.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in root.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()),
        reverse=True,
    )
    return next((p for _, p in found if is_complete(p, needs)), None)


def clear_run(out_dir: Path, also: tuple[str, ...] = ()) -> None:
    """Remove what a stage wrote (for --overwrite): checkpoints, manifest, marker, metrics and
    the stage's own files or folders ``also``; leaves any other file in OUT alone."""
    for name in (CHECKPOINTS, MANIFEST, DONE_MARKER, "metrics.jsonl", *also):
        p = out_dir / name
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


# what a run keeps only while it runs: transformers' checkpoints (RL's under trainer/) and RL's
# best-window weights (best/: already copied into OUT when they became the output)
INTERMEDIATE = (CHECKPOINTS, "trainer", "best")


def prune_finished(out_dir: Path) -> None:
    """Delete a *finished* run's intermediate checkpoints (every folder of
    :data:`INTERMEDIATE`): its final model, metrics, manifest and DONE marker stay, which is
    all later stages read. A run without its DONE marker is left alone (its checkpoints are
    what it resumes from)."""
    if not (out_dir / DONE_MARKER).exists():
        return
    for name in INTERMEDIATE:
        shutil.rmtree(out_dir / name, ignore_errors=True)


def compact_weights(out_dir: Path, dtype: str = "bfloat16") -> int:
    """Store a *finished* stage's final weights in ``dtype`` (bfloat16: half the bytes of fp32);
    return the bytes saved. Each safetensors file is rewritten whole and swapped in (a kill leaves
    the old file), and ``config.json`` records the dtype. Trainers load any checkpoint as fp32
    master weights (:func:`autocoa.models.pick_dtype`), so a later stage trains as before, from
    weights rounded to bf16, as real checkpoints are published. A run without its DONE marker is
    left alone, and so are its intermediate checkpoints."""
    import torch
    from safetensors.torch import load_file, save_file

    from autocoa.atomic import replace, write_text

    if not (out_dir / DONE_MARKER).exists() or not (out_dir / "config.json").exists():
        return 0
    target = getattr(torch, dtype)
    saved = 0
    for path in sorted(out_dir.glob("*.safetensors")):
        tensors = load_file(path)
        if all(not t.is_floating_point() or t.dtype == target for t in tensors.values()):
            continue
        cast = {k: t.to(target) if t.is_floating_point() else t for k, t in tensors.items()}
        before = path.stat().st_size
        replace(path, lambda tmp, cast=cast: save_file(cast, str(tmp), metadata={"format": "pt"}))
        saved += before - path.stat().st_size
    config = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
    key = "torch_dtype" if "torch_dtype" in config else "dtype"
    if config.get(key) != dtype:
        write_text(out_dir / "config.json", json.dumps({**config, key: dtype}, indent=2, sort_keys=True) + "\n")
    return saved


def check_resumable(out_dir: Path, manifest: dict[str, Any]) -> bool:
    """True when ``out_dir`` holds an unfinished run with this manifest (resume it), False when it
    holds none; RunMismatchError when it holds another run. Reads only (every process calls it)."""
    path = out_dir / MANIFEST
    if not path.exists():
        return False
    old = json.loads(path.read_text(encoding="utf-8"))
    diff = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
    if diff:
        raise RunMismatchError(
            f"{out_dir} holds an unfinished run with a different {', '.join(diff)}; "
            "rerun with the same inputs to resume, or pass --overwrite to start over "
            "(see docs/troubleshooting.md#resume-mismatch)"
        )
    return True


def resume_point(out_dir: Path, manifest: dict[str, Any], overwrite: bool = False) -> Path | None:
    """The checkpoint a run of ``manifest`` resumes from: the newest complete one of the
    unfinished run in ``out_dir`` (RunMismatchError when that run is another's). None: a fresh
    start (``overwrite``, or nothing complete to resume: a start that failed, say on a data error
    since fixed, is then simply replaced). Reads only (every process calls it)."""
    if overwrite:
        return None
    ckpt = last_checkpoint(out_dir)
    return ckpt if ckpt is not None and check_resumable(out_dir, manifest) else None


def start_run(out_dir: Path, manifest: dict[str, Any], checkpoint: Path | None) -> None:
    """Set ``out_dir`` up for the run (main process, once its inputs have been read, so that a
    bad input leaves the previous run as it was): a fresh start clears the previous run and
    writes the manifest; a resumed one cuts its metrics back to ``checkpoint``."""
    if checkpoint is None:
        clear_run(out_dir)
        (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    else:
        trim_metrics(out_dir / "metrics.jsonl", checkpoint)


def step_of(checkpoint: Path | None) -> int:
    return int(_CHECKPOINT.match(checkpoint.name).group(1)) if checkpoint is not None else 0


def trim_metrics(path: Path, checkpoint: Path | None) -> None:
    """Drop metric lines logged after the checkpoint's step, and the end-of-training line
    (transformers' ``train_runtime`` row: a kill after it, at the last checkpoint's step): the
    resumed run logs them again."""
    from autocoa.jsonl import trim_jsonl

    step = step_of(checkpoint)
    trim_jsonl(path, lambda row: row.get("step", 0) <= step and "train_runtime" not in row)
