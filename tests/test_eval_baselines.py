"""Each evaluation method's prompt/hook/prefix behaviour, with a scripted model."""

from __future__ import annotations

from functools import cache

import pytest

from autocoa.agent.config import AgentConfig
from autocoa.agent.state import TagIds
from autocoa.data.qa import QARecord
from autocoa.eval.baselines import ReactController, react_prompt, setup
from autocoa.eval.runner import method_metrics, run_method
from autocoa.tags import DEFAULT_TAGS
from autocoa.tools.base import Toolbox
from autocoa.trajectory import encode_prompt
from tests.agent_helpers import FakeSearch, ScriptedLM, turn_policy

Q1, Q2 = "Where was Rotema Kesh born?", "Who founded Pelto Works?"
DOC = "Doc 1 (Title: Rotema Kesh) Rotema Kesh was born in Varnelo."
RECORDS = [QARecord("1", Q1, ["Varnelo"]), QARecord("2", Q2, ["Miro Satani"])]


def tag_policy(tokenizer, continuation):
    """A scripted model that reacts to its context: after the last tag token ``t`` (None right
    after the prompt) it writes ``continuation(t, history)`` token by token, then ``!``."""
    tag_ids = {tokenizer.convert_tokens_to_ids(s): s for s in DEFAULT_TAGS.strings}
    prompts = [encode_prompt(tokenizer, f"Question: {r.question}\n") for r in RECORDS]
    waste = tokenizer("!", add_special_tokens=False)["input_ids"][0]

    @cache
    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def policy(history):
        start = next(len(p) for p in prompts if history[: len(p)] == p)
        last = max((i for i in range(start, len(history)) if history[i] in tag_ids), default=start - 1)
        text = continuation(tag_ids.get(history[last]) if last >= start else None, history)
        pos = len(history) - last - 1
        cont = ids(text)
        return cont[pos] if pos < len(cont) else waste

    return policy


def run(tokenizer, policy, method, tools=None, **cfg):
    model = ScriptedLM(len(tokenizer), policy)
    box = Toolbox(tools if tools is not None else [FakeSearch()])
    cfg = AgentConfig(max_new_tokens=120, max_answer_tokens=8, **cfg)
    rows, info = run_method(model, tokenizer, RECORDS, method, cfg, box, react_steps=cfg.max_actions)
    return rows, info, box


def test_direct_never_calls_a_tool(tokenizer):
    scripts = {
        f"Question: {r.question}\n": ["<search>q</search><answer>x</answer>", "<answer>x</answer>"] for r in RECORDS
    }
    search = FakeSearch()
    rows, _, _ = run(tokenizer, turn_policy(tokenizer, scripts), "agent", [search])
    assert [r["n_tool_calls"] for r in rows] == [1, 1] and len(search.seen) == 2  # the script does search
    search = FakeSearch()
    rows, _, box = run(tokenizer, turn_policy(tokenizer, scripts), "direct", [search])
    assert search.seen == [] and box.stats.calls["search"] == 0
    for r in rows:
        assert r["n_tool_calls"] == 0 and r["n_actions"] == 0 and r["prediction"] == "x"
        assert all(s["kind"] != "action" for s in r["trajectory"]["segments"])


def test_rag_retrieves_once_and_the_model_sees_the_docs(tokenizer):
    doc_ids = tokenizer(DOC, add_special_tokens=False)["input_ids"]

    def continuation(tag, history):
        seen = any(history[i : i + len(doc_ids)] == doc_ids for i in range(len(history)))
        if tag in (None, "</result>"):  # tries to search again; rag bans it
            return "<search>again</search><answer>"
        return {"<search>": "again</search>", "<answer>": f"{'Varnelo' if seen else 'nothing'}</answer>"}.get(tag, "")

    search = FakeSearch({Q1: DOC})
    rows, _, _ = run(tokenizer, tag_policy(tokenizer, continuation), "rag", [search])
    assert search.seen == [Q1, Q2]  # exactly one real call per question, with the question
    assert [r["prediction"] for r in rows] == ["Varnelo", "nothing"]  # only Q1's docs name Varnelo
    for r in rows:
        assert r["n_tool_calls"] == 1 and r["n_actions"] == 1 and r["searches"] == 1
        segs = r["trajectory"]["segments"]
        assert segs[0] == {"kind": "action", "tool": "search", "text": r["question"]}
        assert segs[1]["kind"] == "observation"
    assert rows[0]["trajectory"]["segments"][1]["text"] == DOC
    # the same model deciding by itself searches "again" and never sees Q1's docs
    search = FakeSearch({Q1: DOC})
    rows, _, _ = run(tokenizer, tag_policy(tokenizer, continuation), "agent", [search], max_actions=1)
    assert search.seen == ["again", "again"] and rows[0]["prediction"] == "nothing"


def _eager_answerer(think_first: bool):
    table = {
        None: "<think>" if think_first else "<answer>",
        "<think>": "hm<answer>",  # tries to answer from inside the think
        "</think>": "<answer>",
        "</result>": "<answer>",
        "<answer>": "x</answer>",
        "<search>": "q</search>",
    }
    return lambda tag, history: table.get(tag, "")


@pytest.mark.parametrize("think_first", [False, True])
def test_react_lets_the_model_finish_when_it_answers(tokenizer, think_first):
    """ReAct's Finish: a model that knows the answer answers without a search; the workflow
    only makes it think first (and closes the thought it tries to answer from)."""
    policy = tag_policy(tokenizer, _eager_answerer(think_first))
    search = FakeSearch()
    rows, info, _ = run(tokenizer, policy, "react", [search], max_actions=3)
    assert search.seen == []
    for r in rows:
        assert r["n_actions"] == 0 and r["prediction"] == "x" and r["well_formed"], r["trajectory"]
        kinds = [s["kind"] for s in r["trajectory"]["segments"]]
        assert kinds == ["think", "answer"]
    assert info["controller_forced_tokens"] >= 2 * (1 + (not think_first))


def _eager_searcher():
    table = {
        None: "<search>",  # would act without a thought
        "</think>": "<search>",
        "</result>": "<search>",  # would search again and again without thinking
        "<think>": "hm</think>",
        "<search>": "q</search>",
        "<answer>": "x</answer>",
    }
    return lambda tag, history: table.get(tag, "")


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_react_thinks_before_each_action_and_stops_at_its_steps(tokenizer, steps):
    policy = tag_policy(tokenizer, _eager_searcher())
    search = FakeSearch()
    rows, info, _ = run(tokenizer, policy, "react", [search], max_actions=steps)
    assert len(search.seen) == 2 * steps and set(search.seen) == {"q"}
    for r in rows:  # T steps of thought, action, observation; then a thought and the answer
        kinds = [s["kind"] for s in r["trajectory"]["segments"]]
        assert kinds == ["think", "action", "observation"] * steps + ["think", "answer"]
        assert r["n_tool_calls"] == steps and r["well_formed"] and not r["forced_answer"]
    assert info["max_actions"] == steps + 1


def test_react_grammar_at_the_top_level(tokenizer):
    import torch

    t = TagIds.of(tokenizer, DEFAULT_TAGS)
    ctl = ReactController(t, steps=1)
    ans, srch, think = t.open_id("answer"), t.open_id("search"), t.open_id("think")
    logits = torch.full((3, len(tokenizer)), -5.0)
    logits[:, ans] = 0.0
    logits[:, srch] = -1.0
    fresh = []
    thought = tokenizer("<think>a</think>", add_special_tokens=False)["input_ids"]
    spent = tokenizer("<think>a</think><search>q</search><result>d</result>", add_special_tokens=False)["input_ids"]
    out = ctl([fresh, thought, spent], logits)
    # a step opens with a thought; after a thought the model's choice (here the answer) stands
    assert [row.argmax().item() for row in out] == [think, ans, think]
    assert out[1, srch] == -1.0 and out[1, think] == -5.0  # the model's own scores among the allowed
    assert torch.isinf(out[1, t.close_id("answer")]) and torch.isinf(out[2, ans])  # the rest is not allowed
    with pytest.raises(ValueError):
        ReactController(t, steps=0)


def test_chat_models_get_the_few_shot_react_prompt(tokenizer):
    chat = tokenizer.__class__(
        tokenizer_object=tokenizer.backend_tokenizer, pad_token="<|pad|>", eos_token="<|endoftext|>"
    )
    chat.chat_template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant] "
    s = setup("react", [Q1], chat, AgentConfig(), Toolbox([FakeSearch()]), react_steps=3)
    assert isinstance(s.hook, ReactController) and s.cfg.max_actions == 4
    assert "at most 3 search actions" in s.prompts[0] and s.prompts[0].count("[assistant] <think>") == 2
    assert s.prompts[0].endswith(f"[user] {Q1}\n[assistant] ")
    assert react_prompt(Q1, tokenizer, 3) == f"Question: {Q1}\n"
    d = setup("direct", [Q1], chat, AgentConfig(), None)
    assert d.hook is not None and d.cfg.env == "simulated" and "own knowledge" in d.prompts[0]
    with pytest.raises(ValueError, match="rag"):
        setup("rag", [Q1], tokenizer, AgentConfig(), None)
    with pytest.raises(ValueError, match="unknown method"):
        setup("cot", [Q1], tokenizer, AgentConfig(), None)


def test_simulated_fidelity_from_imagined_results(tokenizer):
    chain = [
        {"subject": "Rotema Kesh", "relation": "born_in", "object": "Varnelo", "known": False},
    ]
    records = [
        QARecord("1", Q1, ["Varnelo"], hops=1, meta={"chain": chain, "n_search": 1}),
        QARecord("2", Q2, ["Miro Satani"], hops=1, meta={"chain": chain, "n_search": 0}),
    ]
    table = {
        None: "<search>Rotema Kesh born</search><result>Rotema Kesh was born in Osmira</result>",
        "</result>": "<answer>Varnelo</answer>",
        "<search>": "Rotema Kesh born</search>",
        "<result>": "Rotema Kesh was born in Varnelo</result>",  # what the model imagines
        "<answer>": "Varnelo</answer>",
    }
    model = ScriptedLM(len(tokenizer), tag_policy(tokenizer, lambda tag, h: table.get(tag, "")))
    cfg = AgentConfig(env="simulated", max_new_tokens=120, max_answer_tokens=8)
    rows, _ = run_method(model, tokenizer, records, "agent", cfg, None)
    assert [r["n_tool_calls"] for r in rows] == [0, 0] and [r["searches"] for r in rows] == [1, 1]
    assert [(r["unneeded"], r["missed"]) for r in rows] == [(0, 0), (1, 0)]
    m = method_metrics(rows, simulated=True)
    assert m["fidelity"] == 1.0 and m["unneeded_searches"] == 0.5 and m["missed_searches"] == 0.0
    assert m["em"] == 0.5 and set(m["by"]) == {"hops", "n_actions"}
    assert m["by"]["n_actions"][1]["accuracy"] == 0.5


def test_react_closes_a_forced_action_with_its_own_closer(tokenizer):
    """A model that wanted to answer writes its answer as the forced query and tries to close
    it with </answer>: the controller turns that into </search>."""
    import torch

    t = TagIds.of(tokenizer, DEFAULT_TAGS)
    ctl = ReactController(t, steps=2)
    inside = tokenizer("<search>Dahome", add_special_tokens=False)["input_ids"]
    logits = torch.full((1, len(tokenizer)), -5.0)
    logits[0, t.close_id("answer")] = 0.0
    assert ctl([inside], logits)[0].argmax().item() == t.close_id("search")
    logits = torch.full((1, len(tokenizer)), -5.0)
    logits[0, t.close_id("search")] = 0.0  # its own closer passes untouched
    assert ctl([list(inside)], logits)[0].argmax().item() == t.close_id("search")


def test_react_turns_a_further_action_into_the_answer(tokenizer):
    import torch

    t = TagIds.of(tokenizer, DEFAULT_TAGS)
    ctl = ReactController(t, steps=1)
    done = tokenizer("<search>q</search><result>d</result><think>ok</think>", add_special_tokens=False)["input_ids"]
    logits = torch.full((1, len(tokenizer)), -5.0)
    logits[0, t.open_id("search")] = 0.0
    assert ctl([done], logits)[0].argmax().item() == t.open_id("answer")


def test_failed_tool_calls_are_counted_apart_and_flagged(tokenizer):
    scripts = {f"Question: {r.question}\n": ["<search>q</search>", "<answer>x</answer>"] for r in RECORDS}
    rows, _, _ = run(tokenizer, turn_policy(tokenizer, scripts), "agent", [FakeSearch(fail=True)])
    assert [(r["n_tool_calls"], r["n_tool_errors"]) for r in rows] == [(1, 1), (1, 1)]
    m = method_metrics(rows)
    assert (m["tool_calls_per_question"], m["tool_errors_per_question"], m["tool_error_rate"]) == (0.0, 1.0, 1.0)
    ok, _, _ = run(tokenizer, turn_policy(tokenizer, scripts), "agent", [FakeSearch()])
    assert method_metrics(ok)["tool_calls_per_question"] == 1.0 and method_metrics(ok)["tool_errors_per_question"] == 0

    from autocoa.eval.runner import evaluate

    model = ScriptedLM(len(tokenizer), turn_policy(tokenizer, scripts))
    cfg = AgentConfig(max_new_tokens=120, max_answer_tokens=8)
    with pytest.warns(UserWarning, match="100% of the tool calls failed"):
        evaluate(model, tokenizer, RECORDS, ["agent"], cfg, Toolbox([FakeSearch(fail=True)]), progress=False)

    from autocoa.eval.report import result_rows, results_table

    table = results_table(result_rows([{"methods": {"agent": m}, "run": {"label": "x"}}]))
    assert "errors/q" in table and "| 1.00 |" in table


def test_past_the_last_hop_share_overall_and_by_hop_count():
    """A trajectory that reads the answer and then searches about it, or states the next hop
    from memory, went past the question's last hop: counted per question, overall and by hop
    count, and it answers wrong."""
    from autocoa.eval.runner import scored_row
    from autocoa.trajectory import Trajectory, action, answer, observation, think

    one = [{"subject": "Rute", "relation": "producer", "object": "Rifo Group", "known": False}]
    two = [*one, {"subject": "Rifo Group", "relation": "headquarters", "object": "Bekila", "known": False}]
    read = (action("search", "Rute producer"), observation("Rute was produced by Rifo Group."))
    on = (*read, action("search", "Rifo Group headquarters"), observation("Bekila."), answer("Bekila"))
    past, stop, hop2 = Trajectory("Q", on), Trajectory("Q", (*read, answer("Rifo Group"))), Trajectory("Q", on)
    recall = Trajectory("Q", (*read, think("Rute: Rifo Group."), think("Rifo Group is in Bekila."), answer("Bekila")))

    def row(i, chain, traj):
        meta = {"chain": chain, "n_search": len(chain)}
        rec = QARecord(str(i), "Q", [chain[-1]["object"]], hops=len(chain), meta=meta)
        counts = {"n_actions": len(traj.actions), "n_tool_calls": len(traj.actions), "forced_answer": False}
        return scored_row(rec, traj, "agent", **counts)

    rows = [row(0, one, past), row(1, one, stop), row(2, one, recall), row(3, two, hop2)]
    assert [r["past_last_hop"] for r in rows] == [1, 0, 1, 0]  # the 2-hop chain's second search is its own hop
    assert [r["em"] for r in rows] == [0.0, 1.0, 0.0, 1.0]
    m = method_metrics(rows)
    assert m["past_last_hop"] == 0.5
    assert m["past_last_hop_by_hops"] == {1: pytest.approx(2 / 3), 2: 0.0}
