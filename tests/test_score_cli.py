"""``autocoa score`` on small fixtures, its errors, and on a real R1-Searcher predictions file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import autocoa.cli  # noqa: F401  (registers every command on the app)
from autocoa.cli.app import CLIError, app
from autocoa.jsonl import DataError

# The checkout sits next to ../shared (tests/ -> repo root -> its parent).
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
R1_PREDICTIONS = REALDATA / "r1searcher_hotpotqa_qwen_predictions.jsonl"

runner = CliRunner()


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _score(*args: str):
    result = runner.invoke(app, ["score", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def preds(tmp_path):
    return _write(
        tmp_path / "preds.jsonl",
        [
            {"prediction": "The Beatles", "golden_answers": ["Beatles", "Fab Four"], "hops": 1},
            {"prediction": "Paris, France", "golden_answers": ["Paris"], "hops": 2},
            {"prediction": "no", "golden_answers": "yes", "hops": 2},
            {"prediction": None, "golden_answers": ["London"], "hops": 10},
        ],
    )


def test_scores_a_fixture_with_breakdown(preds, tmp_path):
    out = _score("--pred", str(preds), "--by", "hops", "--out", str(tmp_path / "s.json"))
    assert out["n"] == 4 and out["skipped"] == 0
    assert out["em"] == pytest.approx(1 / 4)
    assert out["f1"] == pytest.approx((1 + 2 / 3 + 0 + 0) / 4)
    assert out["cover_em"] == pytest.approx(2 / 4)
    assert out["fields"] == {"prediction": ["prediction"], "gold": ["golden_answers"]}
    hops = out["by"]["hops"]
    assert list(hops) == ["1", "2", "10"]  # numeric order (JSON keys are strings)
    assert hops["1"]["accuracy"] == 1.0 and hops["1"]["share_of_correct"] == 1.0
    assert hops["2"]["n"] == 2 and hops["2"]["accuracy"] == 0.0
    assert json.loads((tmp_path / "s.json").read_text()) == out


def test_correct_by_cover_em_and_rows_out(preds, tmp_path):
    out = _score("--pred", str(preds), "--by", "hops", "--correct", "cover_em", "--rows-out", str(tmp_path / "r.jsonl"))
    assert out["n_correct"] == 2 and out["by"]["hops"]["2"]["accuracy"] == 0.5
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4]
    assert rows[1] == {"line": 2, "em": 0.0, "f1": pytest.approx(2 / 3), "cover_em": 1.0, "hops": 2}


def test_r1searcher_and_verl_field_layouts(tmp_path):
    r1 = _write(tmp_path / "r1.jsonl", [{"pred_ans": " Peter Parker ", "answer": "Peter Parker"}])
    assert _score("--pred", str(r1))["em"] == 1.0
    verl = _write(
        tmp_path / "verl.jsonl",
        [{"response": "x", "answer": {"text": "Lyon"}, "reward_model": {"ground_truth": ["Lyon", "Lyons"]}}],
    )
    out = _score("--pred", str(verl), "--pred-field", "answer.text", "--gold-field", "reward_model.ground_truth")
    assert out["em"] == 1.0 and out["fields"] == {"prediction": ["answer.text"], "gold": ["reward_model.ground_truth"]}
    # a key that itself contains a dot is found too; list indices walk into lists
    dotted = _write(tmp_path / "dotted.jsonl", [{"a.b": "x", "golds": [{"t": "x"}]}])
    assert _score("--pred", str(dotted), "--pred-field", "a.b", "--gold-field", "golds.0.t")["em"] == 1.0


def test_judge_and_action_counts(tmp_path):
    rows = [
        {"pred_ans": "Paris", "answer": "Paris", "verdict": "True", "gen": "<search>a</search><search>b</search>"},
        {"pred_ans": "Lyon", "answer": "Paris", "verdict": "False", "gen": "<search>a</search>"},
        {"pred_ans": "in Paris", "answer": "Paris", "verdict": True, "gen": "<search>a</search>"},
    ]
    out = _score("--pred", str(_write(tmp_path / "p.jsonl", rows)), "--judge-field", "verdict", "--actions-in", "gen")
    assert out["judge"] == {
        "field": "verdict",
        "accuracy": pytest.approx(2 / 3),
        "agreement": {"em": pytest.approx(2 / 3), "cover_em": 1.0},
    }
    acts = out["by"]["n_actions"]
    assert acts["2"]["n"] == 1 and acts["1"]["n"] == 2 and acts["1"]["accuracy"] == 0.0


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"golden_answers": ["x"]}, "prediction", "missing (looked for prediction and pred_ans)"),
        ({"prediction": "x"}, "golden_answers", "missing"),
        ({"prediction": 3, "answer": "3"}, "prediction", "must be a string or null"),
        ({"prediction": "x", "answer": 1998}, "answer", "must be a string or a list of strings"),
        ({"prediction": "x", "answer": ["a", None]}, "answer", "must be a string or a list of strings"),
        ({"prediction": "x", "answer": []}, "answer", "empty list"),
        ({"prediction": "x", "answer": "x", "hops": [1]}, "hops", "to group by"),
        ({"prediction": "x", "answer": "x"}, "hops", "missing"),
        (["prediction", "x"], None, "a row is a JSON object"),
    ],
)
def test_bad_row_names_file_line_and_field(tmp_path, row, field, message):
    path = _write(tmp_path / "bad.jsonl", [{"prediction": "a", "answer": "a", "hops": 1}, "", row])
    with pytest.raises(DataError) as e:
        _score("--pred", str(path), "--by", "hops")
    assert (e.value.path, e.value.line, e.value.field) == (str(path), 3, field)
    assert message in e.value.message
    assert str(e.value).startswith(f"{path}:3: ")


def test_skip_bad_counts_and_skips(tmp_path):
    path = _write(tmp_path / "p.jsonl", [{"prediction": "x", "answer": "x"}, {"prediction": "y"}, {"answer": "z"}])
    out = _score("--pred", str(path), "--skip-bad")
    assert out["n"] == 1 and out["em"] == 1.0 and out["skipped"] == 2
    assert out["skipped_first"][0] == f"{path}:2: golden_answers: missing (looked for golden_answers and answer)"
    with pytest.raises(CLIError, match="no rows to score"):
        _score("--pred", str(_write(tmp_path / "all_bad.jsonl", [{"x": 1}])), "--skip-bad")


def test_bad_json_and_bad_options(tmp_path):
    path = _write(tmp_path / "p.jsonl", [{"prediction": "a", "answer": "a"}, "{not json"])
    with pytest.raises(DataError, match=r"p\.jsonl:2: invalid JSON"):
        _score("--pred", str(path))
    for option, value in (("--correct", "f1"), ("--cover-mode", "fuzzy")):  # typer refuses choices not listed
        result = runner.invoke(app, ["score", "--pred", str(path), option, value], env={"COLUMNS": "200"})
        assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output


def test_entry_point_reports_errors_without_traceback(tmp_path):
    path = _write(tmp_path / "p.jsonl", [{"prediction": "a"}])
    env = {**os.environ, "COLUMNS": "400", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", "from autocoa.cli import main; main()", "score", "--pred", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"{path}:1: golden_answers: missing" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not R1_PREDICTIONS.exists(), reason="shared/realdata is absent (a fresh clone has none)")
def test_real_r1searcher_predictions():
    out = _score("--pred", str(R1_PREDICTIONS), "--judge-field", "gpt4o_output")
    assert out["n"] == 500 and out["skipped"] == 0
    assert out["fields"] == {"prediction": ["pred_ans"], "gold": ["answer"]}
    # a 7B search agent on HotpotQA: EM 57.6, F1 71.3, cover EM 64.6 with this code
    assert 0.45 < out["em"] < 0.70
    assert out["em"] < out["cover_em"] < out["judge"]["accuracy"]
    assert out["em"] < out["f1"] < 0.85
    # the judge is more lenient, but it agrees with cover EM on most questions
    assert out["judge"]["agreement"]["cover_em"] > 0.8
