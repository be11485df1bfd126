"""kill -9 at 5 random points of every stage, then the same command again: each run finishes
with the uninterrupted run's metrics and weights.

Every stage runs as its own process (the CLI a user types), is killed with SIGKILL (the whole
process group) at a point drawn uniformly over the uninterrupted run's working time (from its
first output file to its end), and is then run again to the end. Pretraining, SFT-1/2/3 and RL:
5 independent kills each. The demo and a study: 5 kills in a row (each restart killed again),
then a last run. Inputs are one ``autocoa demo --fast`` (its world, data and checkpoints).

Slow (a few minutes): ``pytest -m slow tests/test_kill_resume.py``.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "COLUMNS": "200",
}
AUTOCOA = [sys.executable, "-m", "autocoa"]
KILLS = 5
# what differs between two runs of one computation: wall time (a study's ``timings``: the stages'
# minutes, which "time" does not match), and transformers' end-of-training summary
# (``train_loss`` averages only the steps the resumed process ran)
VARYING = (
    "time",
    "timings",
    "seconds",
    "latency",
    "runtime",
    "per_second",
    "train_loss",
    "skipped",
    "resumed_from_step",
)

pytestmark = pytest.mark.slow


def timed_run(cmd: list[str], out: Path) -> tuple[float, float]:
    """Run ``cmd`` to its end; (seconds until ``out`` holds a file, seconds in all)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = None
    while proc.poll() is None:
        if first is None and out.is_dir() and any(out.iterdir()):
            first = time.monotonic() - t0
        time.sleep(0.01)
    assert proc.returncode == 0, proc.stderr.read()[-3000:]
    total = time.monotonic() - t0
    return (first if first is not None else 0.0), total


def kill_after(cmd: list[str], seconds: float) -> bool:
    """Start ``cmd``; SIGKILL its process group after ``seconds``. False if it ended first."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def finish(cmd: list[str]) -> None:
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]


def kill_points(name: str, first: float, total: float, n: int = KILLS) -> list[float]:
    """``n`` points drawn uniformly over the working time [first, total] (seeded by ``name``)."""
    rng = random.Random(name)
    return sorted(first + rng.random() * (total - first) for _ in range(n))


def steady(value):
    """``value`` without what legitimately varies between runs (see VARYING).

    >>> steady({"em": 0.5, "timings": {"stages": {"rl": {"mean": 1.2}}}, "train_seconds": 3})
    {'em': 0.5}
    """
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if not any(w in k for w in VARYING)}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


def close(a, b, rel: float = 1e-5) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-7) or (math.isnan(a) and math.isnan(b))
    return a == b


def jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def assert_same_run(full: Path, resumed: Path, logs: tuple[str, ...], what: str = "") -> None:
    """Logs equal line by line (steady keys, floats to 1e-5), weights equal to 1e-6."""
    assert (resumed / "DONE").exists(), what
    for name in logs:
        a, b = steady(jsonl(full / name)), steady(jsonl(resumed / name))
        assert a, f"{full / name}: empty"
        assert [r.get("step") for r in b] == [r.get("step") for r in a], f"{what}: {name}"  # none lost or doubled
        for ra, rb in zip(a, b, strict=True):
            assert close(ra, rb), f"{what}: {name} step {ra.get('step')}: {ra} != {rb}"
    wa, wb = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], atol=1e-6, rtol=0, msg=f"{what}: {k}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One uninterrupted ``autocoa demo --fast``: the stages' inputs and the demo's reference."""
    out = tmp_path_factory.mktemp("kill") / "demo"
    first, total = timed_run([*AUTOCOA, "demo", "--fast", "--out", str(out)], out)
    return out, first, total


def _yaml(path: Path, fields: dict) -> Path:
    path.write_text(yaml.safe_dump(fields), encoding="utf-8")
    return path


def stage_command(stage: str, demo: Path, cfg_dir: Path):
    """The CLI of ``stage`` on the demo's inputs, longer than the demo's (more steps) and
    checkpointing often: a function of the output directory, and the logs to compare."""
    recipe = yaml.safe_load((demo / "demo_config.yaml").read_text(encoding="utf-8"))
    data = demo / "data"
    logs: tuple[str, ...] = ("metrics.jsonl",)
    if stage == "pretrain":
        cfg = _yaml(cfg_dir / "pretrain.yaml", {**recipe["pretrain"], "epochs": 12, "save_steps": 3, "eval_facts": 40})
        args = ["pretrain", "--world", str(demo / "world"), "--config", str(cfg)]
    elif stage in ("sft1", "sft2", "sft3"):
        sft = dict(max_steps=16, save_steps=3, logging_steps=1, save_total_limit=2)
        cfg = _yaml(cfg_dir / f"{stage}.yaml", {**recipe[stage], **sft})
        src = {"sft1": "base", "sft2": "sft1", "sft3": "sft12"}[stage]
        args = ["train", stage, "--model", str(demo / src), "--config", str(cfg), "--quiet"]
        if stage == "sft1":
            args += ["--data", str(data / "pairs.jsonl")]
        else:
            args += ["--data", str(data / "coa.jsonl"), "--cot-data", str(data / "cot.jsonl")]
        if stage == "sft3" and recipe["sft3"]["pool_repeats"]:  # as the recipe runs it (stages.run_sft)
            args += ["--pool-data", str(data / "rl_pool.jsonl"), "--pool-repeats", str(recipe["sft3"]["pool_repeats"])]
    else:
        assert stage == "rl"
        rl = {**recipe["rl"], "save_every": 1, "rollouts_every": 1, "eval_every": 2, "heldout_every": 2}
        cfg = _yaml(cfg_dir / "rl.yaml", {**rl, "heldout_questions": 4, "topk": recipe["topk"]})
        args = ["train", "rl", "--model", str(demo / "sft123"), "--questions", str(data / "rl_pool.jsonl")]
        args += ["--sim-steps", "3", "--real-steps", "3", "--index", str(demo / "index_train"), "--config", str(cfg)]
        args += ["--heldout", str(demo / "world" / "dev.jsonl"), "--heldout-index", str(demo / "index")]
        logs = ("metrics.jsonl", "rollouts.jsonl", "heldout.jsonl")
    return (lambda out: [*AUTOCOA, *args, "--out", str(out)]), logs


@pytest.mark.parametrize("stage", ["pretrain", "sft1", "sft2", "sft3", "rl"])
def test_a_stage_killed_at_5_random_points_resumes_to_the_uninterrupted_result(demo, tmp_path, stage):
    demo_dir = demo[0]
    command, logs = stage_command(stage, demo_dir, tmp_path)
    full = tmp_path / "full"
    first, total = timed_run(command(full), full)
    for i, t in enumerate(kill_points(stage, first, total)):
        out = tmp_path / f"killed{i}"
        while not kill_after(command(out), t):  # it ended first (faster than the reference): again, earlier
            assert t > 0.1, f"{stage}: run {i} ends before any kill point"
            shutil.rmtree(out)
            t /= 2
        if not (out / "DONE").exists():  # killed after DONE: the same command refuses a finished run, by design
            finish(command(out))
        assert_same_run(full, out, logs, f"{stage} killed at {t:.2f} s")
    if stage == "pretrain":  # the summary, and what the model knows, too
        a, b = (json.loads((d / "pretrain.json").read_text()) for d in (full, tmp_path / "killed0"))
        assert close(steady(a), steady(b))


def _chained_kills(command: list[str], name: str, first: float, total: float) -> str:
    """Kill restarts of ``command`` at the increments of 5 sorted points over [first, total]
    (each restart's own startup, ``first``, added), so that the kills sweep the run from start
    to end; then run it to the end. Returns what happened, for the failure messages."""
    points = kill_points(name, 0.0, total - first)
    kills, prev = [], 0.0
    for p in points:
        kills.append(kill_after(command, first + p - prev))
        prev = p
    finish(command)
    what = f"{name} killed at {[round(first + p, 1) for p in points]} s of work (still running: {kills})"
    assert sum(kills) >= KILLS - 1, what  # a restart may end before its point when the reference ran slowly
    return what


def _steady_demo(out: Path) -> dict:
    results = steady(json.loads((out / "demo.json").read_text(encoding="utf-8")))
    results.pop("timings", None)
    return results


def test_the_demo_killed_at_5_random_points_resumes_to_the_uninterrupted_result(demo, tmp_path):
    ref, first, total = demo
    out = tmp_path / "demo"
    what = _chained_kills([*AUTOCOA, "demo", "--fast", "--out", str(out)], "demo", first, total)
    assert close(_steady_demo(out), _steady_demo(ref)), what
    for ckpt in ("base", "sft1", "sft12", "sft123", "rl"):
        assert_same_run(ref / ckpt, out / ckpt, ("metrics.jsonl",), f"{what}: {ckpt}")
    for pred in sorted((ref / "eval").glob("*/predictions.jsonl")):
        mine = out / "eval" / pred.parent.name / "predictions.jsonl"
        assert steady(jsonl(mine)) == steady(jsonl(pred)), f"{what}: {pred.parent.name}"
    a, b = (json.loads((d / "report" / "results.json").read_text()) for d in (ref, out))
    assert close(steady(a), steady(b)), what


def test_a_study_killed_at_5_random_points_resumes_to_the_uninterrupted_result(tmp_path):
    command = [*AUTOCOA, "study", "frontier", "--fast", "--seeds", "0"]
    ref, out = tmp_path / "ref", tmp_path / "killed"
    first, total = timed_run([*command, "--out", str(ref)], ref)
    what = _chained_kills([*command, "--out", str(out)], "study", first, total)
    a, b = (json.loads((d / "frontier" / "results.json").read_text()) for d in (ref, out))
    assert close(steady(a), steady(b)), what
    for rl in sorted(ref.glob("seed0/rl*/metrics.jsonl")):
        assert_same_run(rl.parent, out / "seed0" / rl.parent.name, ("metrics.jsonl", "rollouts.jsonl"), what)
