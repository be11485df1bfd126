"""Resume after SIGKILL, and a 2-process (gloo, CPU) run with accelerate (both slow)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.rl_helpers import read_metrics, save_tiny_model, write_questions

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "rl_subprocess.py"


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "0"}


def _summary(stdout: str) -> dict:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("SUMMARY "))
    return json.loads(line.removeprefix("SUMMARY "))


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_from_the_last_checkpoint(tokenizer, tmp_path):
    model = save_tiny_model(tokenizer, tmp_path / "model")
    questions = write_questions(tmp_path / "q.jsonl", n=4)
    out = tmp_path / "out"
    args = [sys.executable, str(SCRIPT), str(model), str(questions), str(out)]
    killed = subprocess.run([*args, "5"], env=_env(), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (out / "DONE").exists()
    assert sorted(p.name for p in (out / "trainer").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    # a checkpoint cut short by a kill (no trainer_state.json yet) is skipped
    shutil.copytree(out / "trainer" / "checkpoint-4", out / "trainer" / "checkpoint-5")
    (out / "trainer" / "checkpoint-5" / "trainer_state.json").unlink()
    for name in ("metrics.jsonl", "rollouts.jsonl"):  # a kill mid-write leaves a torn last line
        with (out / name).open("a") as f:
            f.write('{"step": 5, "loss": 0.')

    done = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = _summary(done.stdout)
    assert summary["resumed_from_step"] == 4 and summary["steps"] == 6
    # real steps are 0-based 3..5, 4 rollouts x 1 search each; calls made in a killed step are redone
    assert summary["real_calls_total"] == 12 and summary["real_calls_this_run"] == 8
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # no duplicated or missing step
    assert [r["real_calls_total"] for r in rows] == [0, 0, 0, 4, 8, 12]
    assert (out / "DONE").exists()
    again = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "finished run" in again.stderr


@pytest.mark.slow
def test_two_process_accelerate_run(tokenizer, tmp_path):
    """Two CPU processes (gloo DDP). `accelerate launch --cpu --num_processes 2` starts a single
    process unless an MPI hostfile is given; the torch.distributed launcher behind
    `--multi_gpu` runs CPU processes when no GPU is visible."""
    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists():
        pytest.skip("accelerate CLI not installed")
    model = save_tiny_model(tokenizer, tmp_path / "model")
    questions = write_questions(tmp_path / "q.jsonl", n=4, chain=True)  # the hop signal is gathered over processes
    out = tmp_path / "out"
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    cmd += ["--mixed_precision", "no"]
    cmd += ["--dynamo_backend", "no", str(SCRIPT), str(model), str(questions), str(out)]
    run = subprocess.run(cmd, env={**_env(), "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = _summary(run.stdout)
    assert summary["num_processes"] == 2 and summary["steps"] == 6
    # 3 real steps x 4 rollouts (2 per process) x 1 search: counted across both processes
    assert summary["real_calls_total"] == 12
    rows = read_metrics(out)
    assert [r["rl/real_calls"] for r in rows] == [0, 0, 0, 4, 4, 4]
    # every scripted rollout answers right: reward 1, no group with a spread, on both processes
    assert [(r["rl/reward_1hop"], r["rl/zero_spread_1hop"]) for r in rows] == [(1.0, 1.0)] * 6
    assert (out / "DONE").exists()
