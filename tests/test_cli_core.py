"""The CLI: --help everywhere, show-mask, tokenizer, and clean errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from autocoa.cli import app
from autocoa.trajectory import Trajectory, action, answer, observation, think

runner = CliRunner()


def test_every_command_has_help():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert "show-mask" in names and "tokenizer" in names
    for name in names:
        r = runner.invoke(app, [name, "--help"])
        assert r.exit_code == 0, (name, r.output)


def _traj_file(tmp_path):
    t = Trajectory("Q: x?\n", (think("a"), action("search", "x"), observation("Doc 1 x"), answer("y")))
    p = tmp_path / "t.jsonl"
    rows = [
        t.to_dict(),
        {"prompt": "Q\n", "response": "<think>b</think><answer>z"},
        {"chosen": t.to_dict(), "rejected": {"prompt": t.prompt, "response": "<answer>w</answer>"}},
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_show_mask(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path / "tok")
    p = _traj_file(tmp_path)
    wide = {"COLUMNS": "200"}
    res = runner.invoke(app, ["show-mask", str(p), "--tokenizer", str(tmp_path / "tok"), "--limit", "10"], env=wide)
    assert res.exit_code == 0, res.output
    assert "observation 7 (masked)" in res.output and "prompt 6 (masked)" in res.output
    assert "think 3 (trained)" in res.output
    assert "line 2" in res.output and "unclosed <answer>" in res.output
    assert "line 3 chosen" in res.output and "line 3 rejected" in res.output
    res3 = runner.invoke(
        app,
        ["show-mask", str(p), "--tokenizer", str(tmp_path / "tok"), "--line", "1", "--unmask-observations"],
        env=wide,
    )
    assert res3.exit_code == 0
    assert "observation 7 (trained)" in res3.output and "prompt 6 (masked)" in res3.output


def test_bad_row_error_names_file_line_and_field(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path / "tok")
    p = tmp_path / "bad.jsonl"
    p.write_text('{"prompt": "", "segments": []}\n\n{"segments": [{"kind": "thonk", "text": ""}]}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "autocoa", "show-mask", str(p), "--tokenizer", str(tmp_path / "tok")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert f"{p}:3:" in proc.stderr and "segments[0].kind" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tokenizer_command(tmp_path):
    texts = tmp_path / "t.txt"
    texts.write_text("Rotema Kesh was born in Varnelo.\n" * 50)
    res = runner.invoke(
        app, ["tokenizer", "--texts", str(texts), "--out", str(tmp_path / "tok"), "--vocab-size", "300"]
    )
    assert res.exit_code == 0, res.output
    from transformers import AutoTokenizer

    from autocoa.trajectory import check_tags

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert len(tok) <= 300 + 20 and len(check_tags(tok)) >= 8  # the size asked for, the tags single tokens
    res = runner.invoke(app, ["tokenizer", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "give either --texts" in str(res.exception or res.output)
    assert not (tmp_path / "x").exists()
