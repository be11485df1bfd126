"""LLM teachers and rejection sampling: an OpenAI-compatible endpoint on loopback (scripted),
and a local model through the agent loop; resumable output; the CLI path."""

from __future__ import annotations

import itertools
import json

import pytest
from fastapi import FastAPI, Request
from typer.testing import CliRunner

from autocoa.agent.config import AgentConfig
from autocoa.data.qa import QARecord
from autocoa.jsonl import read_jsonl
from autocoa.synth.llm import EndpointTeacher, LocalTeacher, rejection_sample
from autocoa.tools.base import Toolbox
from autocoa.trajectory import Trajectory
from tests.agent_helpers import FakeSearch, ScriptedLM, turn_policy
from tests.servers import completions_app, serve

RECORDS = [QARecord(f"q{i}", f"Where was Person{i} born?", [f"City{i}"]) for i in range(4)]


def scripted_completions_app():
    """A /v1/completions endpoint that acts like a search agent: it searches, then answers;
    every second sample answers wrongly. Stop strings are stripped, as real servers do."""
    app = FastAPI()
    counter = itertools.count()
    app.state.requests = []

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        app.state.requests.append(body)
        assert "</search>" in body["stop"] and "</answer>" in body["stop"]
        texts = []
        for prompt in body["prompt"]:
            person = prompt.split("Where was ")[-1].split(" born?")[0]
            if "<result>" not in prompt.split("Question:")[-1]:  # the instructions name the tags too
                texts.append(f"<think>I need the birthplace of {person}.</think>\n<search>{person} born")
            else:
                good = next(counter) % 2 == 0
                city = "City" + person.removeprefix("Person") if good else "Nowhere"
                texts.append(f"<think>{person} was born in {city}.</think><answer>{city}")
        return {"choices": [{"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(texts)]}

    return app


def test_endpoint_teacher_keeps_only_correct_trajectories(tmp_path):
    app = scripted_completions_app()
    search = FakeSearch()
    with serve(app) as url:
        teacher = EndpointTeacher(url + "/v1", "teacher", Toolbox([search]))
        summary = rejection_sample(teacher, RECORDS, tmp_path, n=2, batch=2)
    assert summary["questions"] == 4 and summary["sampled"] == 8
    assert summary["kept"] == 4 and summary["rejected"] == 4
    rows = [r for _, r in read_jsonl(tmp_path / "coa.jsonl")]
    assert [r["id"] for r in rows] == ["q0", "q1", "q2", "q3"]
    for r, rec in zip(rows, RECORDS, strict=True):
        t = Trajectory.from_dict(r)
        assert t.well_formed and t.answer == rec.golden_answers[0] and t.n_actions == 1
        assert "Doc 1 (Title:" in t.response  # the real tool's observation
    assert len(search.seen) == 8  # every sample searched once, for real
    assert len(app.state.requests) == 4  # 2 batches x 2 turns: samples were batched


def test_rejection_sampling_resumes(tmp_path):
    app = scripted_completions_app()
    with serve(app) as url:
        teacher = EndpointTeacher(url + "/v1", "teacher", Toolbox([FakeSearch()]))
        first = rejection_sample(teacher, RECORDS[:2], tmp_path, n=2, batch=1)
        again = rejection_sample(teacher, RECORDS, tmp_path, n=2, batch=1)
    assert first["questions"] == 2 and again["resumed_from"] == 2 and again["questions"] == 4
    ids = [r["id"] for _, r in read_jsonl(tmp_path / "coa.jsonl")]
    assert sorted(ids) == ["q0", "q1", "q2", "q3"]  # nothing sampled twice


def test_a_kill_between_the_rows_and_the_progress_line_leaves_no_duplicate(tmp_path):
    app = scripted_completions_app()
    with serve(app) as url:
        teacher = EndpointTeacher(url + "/v1", "teacher", Toolbox([FakeSearch()]))
        rejection_sample(teacher, RECORDS[:2], tmp_path, n=2, batch=1)
        # a kill after q2's rows were written, before its progress line: q2 is sampled again
        coa = (tmp_path / "coa.jsonl").read_text().splitlines()
        (tmp_path / "coa.jsonl").write_text("\n".join([*coa, coa[0].replace('"q0"', '"q2"')]) + "\n")
        rejection_sample(teacher, RECORDS, tmp_path, n=2, batch=1)
    ids = [r["id"] for _, r in read_jsonl(tmp_path / "coa.jsonl")]
    assert sorted(ids) == ["q0", "q1", "q2", "q3"]


def test_endpoint_errors_are_clear(tmp_path):
    app = FastAPI()
    with serve(app) as url:
        teacher = EndpointTeacher(url + "/v1", "teacher", Toolbox([FakeSearch()]))
        with pytest.raises(RuntimeError, match="HTTP 404"):
            rejection_sample(teacher, RECORDS[:1], tmp_path)


def test_local_teacher_through_the_agent_loop(tokenizer, tmp_path):
    from autocoa.agent.prompts import format_prompt

    scripts = {
        format_prompt(r.question, tokenizer): ["<search>x</search>", f"<answer>{r.golden_answers[0]}</answer>"]
        for r in RECORDS[:2]
    }
    model = ScriptedLM(len(tokenizer), turn_policy(tokenizer, scripts))
    teacher = LocalTeacher(model, tokenizer, Toolbox([FakeSearch()]), AgentConfig())
    summary = rejection_sample(teacher, RECORDS[:2], tmp_path, n=2, keep_per_question=2)
    assert summary["kept"] == 4 and summary["rejected"] == 0


def test_cli_with_a_teacher_url(tmp_path):
    from autocoa.cli import app as cli
    from autocoa.data.corpus import Doc
    from autocoa.tools.index import BM25Index

    BM25Index.build([Doc(f"d{i}", f"Person{i}", f"Person{i} was born in City{i}.") for i in range(4)]).save(
        tmp_path / "index"
    )
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in RECORDS))
    with serve(scripted_completions_app()) as url:
        res = CliRunner().invoke(
            cli,
            [
                "synth",
                "--questions",
                str(qa),
                "--teacher-url",
                url + "/v1",
                "--index",
                str(tmp_path / "index"),
                "--out",
                str(tmp_path / "out"),
                "--n",
                "2",
            ],
        )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["kept"] == 4
    args = ["synth", "--questions", str(qa), "--index", str(tmp_path / "index"), "--out", str(tmp_path / "o2")]
    res = CliRunner().invoke(cli, args)  # no teacher at all
    assert res.exit_code != 0 and "exactly one of --teacher-model or --teacher-url" in str(res.exception or res.output)
    res = CliRunner().invoke(cli, [*args, "--teacher-url", url, "--teacher-model", str(tmp_path)])
    assert res.exit_code != 0 and "exactly one of" in str(res.exception or res.output)


def test_endpoint_teacher_retries_a_server_error(tmp_path):
    """A 503 is retried by the openai client (it was a hard failure with raw POSTs)."""
    app = scripted_completions_app()
    calls = itertools.count()

    @app.middleware("http")
    async def flaky(request, call_next):
        from fastapi.responses import JSONResponse

        if next(calls) == 0:
            return JSONResponse({"error": {"message": "busy"}}, status_code=503)
        return await call_next(request)

    with serve(app) as url:
        teacher = EndpointTeacher(url + "/v1", "teacher", Toolbox([FakeSearch()]))
        teacher.client = teacher.client.with_options(max_retries=2)
        out = teacher.sample([RECORDS[0].question], n=1)
    assert out[0][0].answer is not None and next(calls) >= 3  # the 503, then the two turns


def test_samples_that_disagree_about_acting_make_sft1_pairs(tmp_path, tokenizer):
    """Of each question's two samples one searches and is right, the other answers at once and
    is wrong: a "when to act" pair that SFT-1 reads."""
    from autocoa.train.contrastive import pair_example

    counter = itertools.count()

    def reply(prompt: str) -> str:
        person = prompt.split("Where was ")[-1].split(" born?")[0]
        if "<result>" in prompt.split("Question:")[-1]:
            return f"<think>Found it.</think><answer>City{person.removeprefix('Person')}"
        if next(counter) % 2 == 0:
            return f"<think>I need the birthplace of {person}.</think><search>{person} born"
        return "<think>I think I know.</think><answer>Nowhere"

    app = completions_app(reply)

    with serve(app) as url:
        teacher = EndpointTeacher(url + "/v1", "teacher", Toolbox([FakeSearch()]))
        summary = rejection_sample(teacher, RECORDS, tmp_path, n=2, batch=4)
    assert summary["pairs"] == 4
    pairs = [r for _, r in read_jsonl(tmp_path / "pairs.jsonl")]
    assert all(p["kind"] == "action" and p["prefix_segments"] == 0 for p in pairs)
    assert all("<search>" in Trajectory.from_dict(p["chosen"]).response for p in pairs)
    ex = pair_example(pairs[0], tokenizer, 256, (tmp_path / "pairs.jsonl", 1))
    assert ex is not None and ex["prefix_len"] > 0
