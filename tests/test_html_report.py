"""report.html: one self-contained page with the tables, the plots and a trajectory browser whose
filters work in a real headless browser (Chromium, when installed: `apt-get install chromium`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from autocoa.eval.html_report import render_html, sample_rows
from autocoa.eval.report import load_run, write_report


def fake_eval(d, n=6):
    """An `autocoa eval` output directory: metrics.json and predictions.jsonl (hops 1-2, half right)."""
    d.mkdir(parents=True)
    rows = []
    for i in range(n):
        ok = i % 2 == 0
        segs = [
            {"kind": "think", "text": f"I need fact {i}."},
            {"kind": "action", "text": f"fact {i}", "tool": "search"},
            {"kind": "observation", "text": f"Doc 1 (Title: F{i}) F{i} is in Varnelo."},
            {"kind": "answer", "text": "Varnelo" if ok else "Osmira"},
        ]
        rows.append(
            {
                "id": str(i),
                "method": "agent",
                "question": f"Where is F{i}?",
                "golden_answers": ["Varnelo"],
                "prediction": segs[-1]["text"],
                "em": float(ok),
                "hops": 1 + i % 2,
                "trajectory": {"prompt": f"Question: Where is F{i}?\n", "segments": segs},
            }
        )
    (d / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn', encoding="utf-8")
    by = {"hops": {"1": {"em": 1.0, "n": 3}, "2": {"em": 0.0, "n": 3}}}
    m = {"em": 0.5, "f1": 0.5, "cover_em": 0.5, "n": n, "tool_calls_per_question": 1.0, "by": by}
    (d / "metrics.json").write_text(json.dumps({"methods": {"agent": m}, "run": {"label": d.name}}), encoding="utf-8")
    return d, rows


def test_the_page_is_self_contained_and_shows_masked_observations(tmp_path):
    d, rows = fake_eval(tmp_path / "rl")
    samples = sample_rows(d / "predictions.jsonl", "rl")
    assert len(samples) == len(rows)  # the torn last line is skipped
    page = render_html([], {}, samples)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from a network
    assert page.count('class="traj ') == 6 and page.count("observation · masked") == 6
    assert 'data-outcome="wrong"' in page and 'data-hops="2"' in page and '<select id="f-outcome">' in page


def test_report_html_written_beside_report_md(tmp_path):
    d, _ = fake_eval(tmp_path / "rl")
    paths = write_report([load_run(d)], tmp_path / "report")
    page = paths["html"].read_text()
    assert paths["html"].name == "report.html" and "data:image/png;base64," in page
    assert page.count('class="traj ') == 6 and paths["html"].stat().st_size < 1_000_000


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (apt-get install chromium)")
def test_filters_in_a_headless_browser(tmp_path):
    d, rows = fake_eval(tmp_path / "rl")
    page = write_report([load_run(d)], tmp_path / "report")["html"]
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu"]
    dom = subprocess.run(
        [*base, "--dump-dom", f"file://{page}#outcome=wrong&hops=2"], capture_output=True, text=True, timeout=60
    ).stdout
    shown = re.findall(r'<details class="traj (\w+)" data-run="rl agent" data-hops="(\d)" data-outcome="(\w+)"', dom)
    hidden = re.findall(r'<details class="traj \w+ hidden"', dom)
    expected = [r for r in rows if r["em"] == 0 and r["hops"] == 2]
    assert len(shown) == len(expected) == 3 and {(c, h, o) for c, h, o in shown} == {("bad", "2", "wrong")}
    assert len(hidden) == len(rows) - len(expected)
    from autocoa.eval.html_report import screenshot

    shot = screenshot(page, tmp_path / "shot.png", 1000, 900)  # as the README's picture is made
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one


def test_rl_runs_add_their_curve_and_rollouts(tmp_path):
    d, _ = fake_eval(tmp_path / "eval")
    rl = tmp_path / "rl"
    rl.mkdir()
    steps = [
        {"step": s, "reward": 0.2 * s, "real_calls_total": 4 * max(0, s - 2), "rl/env_real": float(s > 2)}
        for s in (1, 2, 3)
    ]
    (rl / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in steps) + '{"step": 4, "rew', encoding="utf-8"
    )
    rollout = {"step": 3, "env": "real", "prompt": "Question: Where?\n", "golden_answers": ["Varnelo"],
               "response": "<think>x</think><answer>Varnelo</answer>", "answer": "Varnelo", "reward": 1.0}  # fmt: skip
    (rl / "rollouts.jsonl").write_text(json.dumps(rollout) + "\n", encoding="utf-8")
    paths = write_report([load_run(d)], tmp_path / "report", rl_runs=[rl])
    assert paths["rl"].name == "rl_curves.png" and paths["rl"].stat().st_size > 5000
    page = paths["html"].read_text()
    assert 'data-run="rl step 3 (real)"' in page and "RL training" in page
    assert "| RL run |" not in paths["report"].read_text()  # no rl.json: the run did not finish


def test_the_rl_table_states_what_each_kind_of_step_had_to_learn_from(tmp_path):
    from autocoa.eval.report import rl_table

    rl = tmp_path / "rl_a"
    rl.mkdir()
    steps = [  # two simulated steps, one real: rewards, groups without spread, KL
        {"step": 1, "reward": 0.0, "frac_reward_zero_std": 1.0, "kl": 0.0, "rl/env_real": 0.0, "rl/obs_fact": 0.1},
        {"step": 2, "reward": 0.1, "frac_reward_zero_std": 0.5, "kl": 0.002, "rl/env_real": 0.0, "rl/obs_fact": 0.3},
        {"step": 3, "reward": 0.6, "frac_reward_zero_std": 0.25, "kl": 0.0125, "rl/env_real": 1.0},
    ]
    (rl / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps), encoding="utf-8")
    summary = {"sim_steps_done": 2, "real_steps_done": 1, "real_calls_total": 37}
    (rl / "rl.json").write_text(json.dumps(summary), encoding="utf-8")
    curve = [{"step": 0, "em": 0.5, "n": 8, "real_calls_total": 0}, {"step": 3, "em": 0.75, "n": 8}]
    (rl / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve), encoding="utf-8")
    (tmp_path / "rl_unfinished").mkdir()  # no rl.json: left out
    table = rl_table([rl, tmp_path / "rl_unfinished"]).splitlines()
    assert len(table) == 3 and "rl_unfinished" not in table[2]
    assert table[2] == "| rl_a | 2 + 1 | 37 | 0.050 / 0.600 | 0.75 / 0.25 | 0.0125 | 0: 0.50, 3: 0.75 |"
    assert rl_table([tmp_path / "rl_unfinished"]) is None
