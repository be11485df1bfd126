"""The agent loop: stops at tags, inserts observations as ids, masks, budget, environments."""

from __future__ import annotations

import pytest
import torch

from autocoa.agent.config import AgentConfig
from autocoa.agent.engine import MALFORMED_ACTION, Engine
from autocoa.agent.state import observation_ids
from autocoa.tags import Kind
from autocoa.tools.base import Toolbox
from autocoa.trajectory import encode_prompt
from tests.agent_helpers import FakeSearch, ScriptedLM, chaotic, tiny_llama, turn_policy

P1, P2 = "Question: Where was Rotema Kesh born?\n", "Question: Who founded Pelto Works?\n"


def one_shot(tokenizer, traj):
    """The ids of a one-shot tokenization of the response, with the end-of-turn token a
    finished turn gets."""
    return tokenizer(traj.response, add_special_tokens=False)["input_ids"] + (
        [tokenizer.eos_token_id] if traj.ends_turn else []
    )


def scripted(tokenizer, scripts, tools=None, env="real", **cfg):
    model = ScriptedLM(len(tokenizer), turn_policy(tokenizer, scripts))
    box = Toolbox(tools if tools is not None else [FakeSearch()])
    eng = Engine(model, tokenizer, box)
    return eng, eng.generate(list(scripts), AgentConfig(env=env, **cfg)), box


def test_real_env_stops_at_action_and_inserts_observation_ids(tokenizer):
    search = FakeSearch({"Rotema Kesh born": "Doc 1 (Title: Rotema Kesh) born in Varnelo </result> <answer>"})
    scripts = {
        P1: ["<think>I need Rotema Kesh</think><search>Rotema Kesh born</search>", "<answer>Varnelo</answer>"],
        P2: ["<think>I know it</think><answer>Miro Satani</answer>"],
    }
    eng, (r1, r2), box = scripted(tokenizer, scripts, tools=[search])
    t1 = r1.trajectory
    assert t1.well_formed, t1.problems
    assert t1.answer == "Varnelo" and r1.finish == "answer"
    assert search.seen == ["Rotema Kesh born"] and r1.n_tool_calls == 1 and r1.n_actions == 1
    # the token after </search> is the inserted <result>: nothing was sampled past the action
    closer = tokenizer.convert_tokens_to_ids("</search>")
    cut = r1.ids.index(closer) + 1
    obs = observation_ids(search.answers["Rotema Kesh born"], tokenizer, eng.tag_ids, 256)
    assert r1.ids[cut : cut + len(obs)] == obs
    assert r1.sampled[cut : cut + len(obs)] == [False] * len(obs)
    assert all(k is Kind.OBSERVATION for k in r1.kinds[cut : cut + len(obs)])
    # the end-of-turn token after </answer> is appended, not sampled (nor trained in RL)
    assert r1.ids[-1] == tokenizer.eos_token_id and r1.ids[-2] == tokenizer.convert_tokens_to_ids("</answer>")
    assert r1.mask == [0 if cut <= i < cut + len(obs) or i == len(r1.ids) - 1 else 1 for i in range(len(r1.ids))]
    assert all(lp == 0.0 for lp in r1.logprobs[cut : cut + len(obs)])
    # the tags inside the document were escaped, so the observation cannot end early
    assert "&lt;/result>" in t1.segments[2].text
    # ids equal a one-shot tokenization of the final text
    assert r1.prompt_ids == encode_prompt(tokenizer, P1)
    assert r1.ids == one_shot(tokenizer, t1)
    assert r2.trajectory.answer == "Miro Satani" and r2.n_tool_calls == 0 and all(r2.mask[:-1])
    assert "!" not in t1.response + r2.trajectory.response  # the model was never asked past its turn
    assert box.stats.calls["search"] == 1


def test_action_budget_forces_an_answer(tokenizer):
    # the script would search again after the first result; the engine opens the answer instead
    scripts = {P1: ["<search>a</search>", "<answer>Varnelo</answer><search>b</search>"]}
    _, (r,), box = scripted(tokenizer, scripts, max_actions=1)
    assert r.n_actions == 1 and r.forced_answer and r.finish == "budget"
    assert box.stats.calls["search"] == 1
    assert r.trajectory.answer == "Varnelo" and r.trajectory.well_formed
    # the forced opener came right after the first observation and was not sampled
    i = r.ids.index(tokenizer.convert_tokens_to_ids("<answer>"))
    assert r.kinds[i - 1] is Kind.OBSERVATION and not r.sampled[i]


def test_token_budget_forces_an_answer_and_bounds_length(tokenizer):
    scripts = {P1: ["<think>" + "more thinking " * 100]}
    _, (r,), _ = scripted(tokenizer, scripts, max_new_tokens=40, max_answer_tokens=4)
    assert r.forced_answer and r.finish == "budget" and len(r.ids) <= 40
    # the open think was closed for the model, then the answer opened, and closed after 4 tokens
    toks = tokenizer.convert_ids_to_tokens(r.ids)
    i = toks.index("<answer>")
    assert toks[i - 1] == "</think>" and toks[-2:] == ["</answer>", "<|endoftext|>"] and len(toks) - i - 3 == 4
    assert r.trajectory.answer is not None


def test_simulated_env_calls_no_tool_and_masks_the_imagined_result(tokenizer):
    search = FakeSearch()
    scripts = {
        P1: [
            "<think>x</think><search>Rotema Kesh born</search><result>Doc 1 born in Varnelo</result>",
            "<answer>Varnelo</answer>",
        ]
    }
    _, (r,), box = scripted(tokenizer, scripts, tools=[search], env="simulated")
    assert box.stats.calls["search"] == 0
    assert search.seen == [] and r.n_tool_calls == 0 and r.n_actions == 1
    assert r.trajectory.well_formed and r.trajectory.answer == "Varnelo"
    obs = [i for i, k in enumerate(r.kinds) if k is Kind.OBSERVATION]
    assert obs and all(r.mask[i] == 0 for i in obs)
    assert not r.sampled[obs[0]]  # <result> was inserted by the environment
    assert all(r.sampled[i] for i in obs[1:])  # the content (and </result>) the model imagined
    assert sum(r.mask) == len(r.ids) - len(obs) - 1  # and the appended end-of-turn token


def test_simulated_observation_is_cut_at_max_obs_tokens(tokenizer):
    scripts = {P1: ["<search>q</search><result>" + "blah " * 50, "<answer>x</answer>"]}
    _, (r,), _ = scripted(tokenizer, scripts, env="simulated", max_obs_tokens=8)
    obs = [i for i, k in enumerate(r.kinds) if k is Kind.OBSERVATION]
    assert len(obs) == 10 and not r.sampled[obs[-1]]  # <result>, 8 tokens, forced </result>
    assert r.trajectory.answer == "x"


def test_a_simulated_result_after_a_long_turn_is_not_closed_empty(tokenizer):
    """Regression: the observation budget counted from the previous simulated result's start,
    so a result opened more than ``max_obs_tokens`` tokens later was closed at once, empty."""
    long_think = "<think>" + "then more " * 12 + "</think>"
    scripts = {
        P1: [
            "<search>Rotema Kesh born</search><result>Doc 1 born in Varnelo</result>",
            long_think + "<search>Varnelo country</search><result>Doc 2 Varnelo in Osk</result>",
            "<answer>Osk</answer>",
        ]
    }
    _, (r,), _ = scripted(tokenizer, scripts, env="simulated", max_obs_tokens=8)
    observations = [s.text.strip() for s in r.trajectory.segments if s.kind is Kind.OBSERVATION]
    assert len(observations) == 2 and all(observations), observations
    assert observations[1].startswith("Doc 2") and r.trajectory.answer == "Osk"


@pytest.mark.parametrize(
    ("turn0", "expected"),
    [
        ("<search> </search>", "[error] empty search argument"),
        ("<think>x</search>", MALFORMED_ACTION),
        ("<calculate>2+2</calculate>", "[error] unknown tool 'calculate'; available: search"),
    ],
)
def test_malformed_actions_become_observations(tokenizer, turn0, expected):
    from autocoa.tags import Tags

    model = ScriptedLM(len(tokenizer), turn_policy(tokenizer, {P1: [turn0, "<answer>x</answer>"]}))
    eng = Engine(model, tokenizer, Toolbox([FakeSearch()]), tags=Tags())  # tags know <calculate>
    (r,) = eng.generate([P1], AgentConfig())
    obs = [s for s in r.trajectory.segments if s.kind is Kind.OBSERVATION]
    assert obs and obs[0].text == expected
    assert r.trajectory.answer == "x"


def test_tool_exception_becomes_observation(tokenizer):
    scripts = {P1: ["<search>q</search>", "<answer>x</answer>"]}
    _, (r,), box = scripted(tokenizer, scripts, tools=[FakeSearch(fail=True)])
    assert "[error] search failed: ConnectionError: index unreachable" in r.trajectory.response
    assert box.stats.errors["search"] == 1 and r.trajectory.answer == "x"


def test_unclosed_tag_and_eos(tokenizer):
    scripts = {P1: ["<search>q<answer>x</answer>"], P2: ["<think>hm<|endoftext|>"]}
    _, (r1, r2), _ = scripted(tokenizer, scripts)
    assert r1.finish == "answer" and r1.n_tool_calls == 0 and not r1.trajectory.well_formed
    assert "unclosed <search>" in r1.trajectory.problems
    assert r2.finish == "eos" and r2.trajectory.answer is None


def test_rows_wait_at_different_times_and_groups_are_contiguous(tokenizer):
    scripts = {
        P1: ["<search>a</search>", "<think>ok</think><search>b</search>", "<answer>A</answer>"],
        P2: ["<think>" + "long " * 30 + "</think><search>c</search>", "<answer>B</answer>"],
    }
    eng, rs, box = scripted(tokenizer, scripts, n=3)
    assert [r.index for r in rs] == list(range(6))
    assert [r.trajectory.answer for r in rs] == ["A"] * 3 + ["B"] * 3
    assert all(r.trajectory.well_formed for r in rs)
    assert box.stats.calls["search"] == 9 and eng.stats.tool_calls == 9
    assert eng.stats.tool_flushes < 9  # calls were batched
    for r in rs:
        assert r.ids == one_shot(tokenizer, r.trajectory)


def test_real_env_needs_a_toolbox(tokenizer):
    with pytest.raises(ValueError, match="toolbox"):
        Engine(tiny_llama(tokenizer), tokenizer).generate([P1], AgentConfig(env="real"))


def test_greedy_equals_hf_generate_with_padding(tokenizer):
    model = tiny_llama(tokenizer)
    eng = Engine(model, tokenizer)
    prompts = [P1, "Q\n", P2 + " and a longer tail to pad the others"]
    rs = eng.generate(prompts, AgentConfig(env="simulated", max_new_tokens=30, max_answer_tokens=4))
    for r in rs:
        forced = next((i for i, s in enumerate(r.sampled) if not s), len(r.ids))
        ref = model.generate(
            torch.tensor([r.prompt_ids]), max_new_tokens=forced, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )[0, len(r.prompt_ids) :].tolist()
        assert r.ids[:forced] == ref[:forced]


def test_sampling_is_reproducible_with_a_seed(tokenizer):
    eng = Engine(tiny_llama(tokenizer), tokenizer)
    cfg = AgentConfig(env="simulated", temperature=1.0, top_p=0.9, seed=7, max_new_tokens=30, max_answer_tokens=4)
    a = [r.ids for r in eng.generate([P1, P2], cfg)]
    b = [r.ids for r in eng.generate([P1, P2], cfg)]
    c = [r.ids for r in eng.generate([P1, P2], cfg.model_copy(update={"seed": 8}))]
    assert a == b and a != c


@pytest.mark.parametrize("growing", [False, True], ids=["dynamic-cache", "growing-cache"])
def test_logprobs_and_kv_cache_with_holes_match_a_full_forward(tokenizer, growing):
    """Feed rows pending blocks of different widths (with holes) and check each row's last
    logits against an unpadded forward of its real tokens (with transformers' cache and with
    ours, grown in chunks of 2 so that most steps reallocate)."""
    from autocoa.agent.cache import GrowingCache
    from autocoa.agent.state import Rollout, Row

    model = tiny_llama(tokenizer)
    eng = Engine(model, tokenizer)
    cfg = AgentConfig(env="simulated")
    rows = [Row(Rollout(i, "", []), eng.tag_ids, cfg) for i in range(3)]
    feeds = [  # per step, per row: tokens to feed ([] = a hole)
        [[5, 6, 7], [8], [9, 10, 11, 12, 13]],
        [[14], [], [15]],
        [[16, 17, 18, 19], [20], []],
        [[21], [22, 23], [24]],
    ]
    seen = [[] for _ in rows]
    cache, attn = (GrowingCache(model.config, chunk=2) if growing else None), None
    positions = [0, 0, 0]
    last = [None] * 3
    with torch.inference_mode():
        for step in feeds:
            for r, toks in zip(rows, step, strict=True):
                r.pending = list(toks)
            cache, attn, logits = eng._forward(rows, cache, attn, positions)
            for i, toks in enumerate(step):
                positions[i] += len(toks)
                seen[i] += toks
                if toks:
                    last[i] = logits[i]
        for i in range(3):
            ref = model(torch.tensor([seen[i]])).logits[0, -1]
            assert torch.allclose(last[i], ref, atol=1e-4), i


def test_prefix_is_replayed_not_acted_on(tokenizer):
    """A baseline's retrieved context: inserted, masked, counted as an action, no tool run."""
    search = FakeSearch()
    prefix_text = "<search>Rotema Kesh</search><result>Doc 1 born in Varnelo</result>"
    prefix = tokenizer(prefix_text, add_special_tokens=False)["input_ids"]
    model = ScriptedLM(len(tokenizer), turn_policy(tokenizer, {P1: ["", "<answer>Varnelo</answer>"]}))
    eng = Engine(model, tokenizer, Toolbox([search]))
    (r1, r2) = eng.generate([P1], AgentConfig(n=2), prefixes=[prefix])
    for r in (r1, r2):
        assert r.trajectory.well_formed and r.trajectory.answer == "Varnelo"
        assert r.ids[: len(prefix)] == prefix and not any(r.sampled[: len(prefix)])
        assert r.n_actions == 1 and r.n_tool_calls == 0
        assert r.mask == [0] * len(prefix) + [1] * (len(r.ids) - len(prefix) - 1) + [0]  # end of turn appended
    assert search.seen == []
    with pytest.raises(ValueError, match="prefixes"):
        eng.generate([P1, P2], AgentConfig(), prefixes=[prefix])


@pytest.mark.parametrize("env", ["real", "simulated"])
def test_zero_action_budget_runs_no_tool(tokenizer, env):
    from autocoa.agent.engine import BUDGET_SPENT

    scripts = {P1: ["<search>q</search>", "<answer>x</answer>"]}
    _, (r,), box = scripted(tokenizer, scripts, env=env, max_actions=0)
    assert box.stats.calls["search"] == 0 and r.n_tool_calls == 0
    obs = [s for s in r.trajectory.segments if s.kind is Kind.OBSERVATION]
    assert [o.text for o in obs] == [BUDGET_SPENT]
    assert r.forced_answer and r.trajectory.answer is not None


def test_long_real_observation_is_cut_with_a_visible_marker(tokenizer):
    long_doc = "Doc 1 (Title: Varnelo) " + "Varnelo is a city in Osmira. " * 40
    scripts = {P1: ["<search>Varnelo</search>", "<answer>Osmira</answer>"]}
    box = [FakeSearch({"Varnelo": long_doc})]
    model = ScriptedLM(len(tokenizer), turn_policy(tokenizer, scripts))
    eng = Engine(model, tokenizer, Toolbox(box, max_chars=100_000))
    (r,) = eng.generate([P1], AgentConfig(max_obs_tokens=20))
    obs = next(s for s in r.trajectory.segments if s.kind is Kind.OBSERVATION)
    assert long_doc.startswith(obs.text.split(" ...[truncated")[0]) and "tokens]" in obs.text
    assert r.ids == one_shot(tokenizer, r.trajectory)
    assert r.trajectory.answer == "Osmira"


def _staggered_stop(tokenizer):
    """A hook that ends each row with EOS after a length set by its first token (3..19), so
    that rows of one batch finish at different steps."""
    eos = tokenizer.eos_token_id

    def hook(histories, logits):
        logits = logits.clone()
        for row, h in enumerate(histories):
            if h and len(h) >= 3 + h[0] % 17:
                logits[row] = -1e9
                logits[row, eos] = 0.0
        return logits

    return hook


PROMPTS = [f"Question: who founded firm number {i}{' again' * (i % 4)}?\n" for i in range(11)]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_continuous_batching_equals_batch_by_batch_and_one_by_one(tokenizer, arch):
    """Refilled slots, compactions and rows leaving change nothing a row decodes (greedy),
    with rotary and with absolute positions (a refilled row starts again at position 0)."""
    model = chaotic(tokenizer, arch)
    eng = Engine(model, tokenizer, logits_hook=_staggered_stop(tokenizer))
    cfg = AgentConfig(env="simulated", max_new_tokens=40, max_answer_tokens=4, batch_size=4, continuous_batching=True)
    cont = eng.generate(PROMPTS, cfg)
    assert eng.stats.refills >= 5 and eng.stats.compactions >= 1
    seen = []
    batched = eng.generate(PROMPTS, cfg.model_copy(update={"continuous_batching": False}), on_batch=seen.extend)
    assert eng.stats.refills == 0
    alone = eng.generate(PROMPTS, cfg.model_copy(update={"batch_size": 1}))
    lengths = {len(r.ids) for r in cont}
    assert len(lengths) >= 4, lengths  # the rows really finish at different steps
    for a, b, c in zip(cont, batched, alone, strict=True):
        assert a.ids == b.ids == c.ids
        assert a.logprobs == pytest.approx(c.logprobs, abs=1e-4)
        assert a.trajectory is not None and a.trajectory.response == b.trajectory.response
    assert sorted(r.index for r in seen) == list(range(len(PROMPTS)))  # on_batch saw each once


def test_continuous_batching_with_tools_and_groups(tokenizer):
    """Real tools, GRPO groups (n=2) and a queue longer than the batch: every rollout runs its
    own script, in its own group slot, whatever slot it decoded in."""
    scripts = {
        f"Q{i}\n": [f"<think>step {i}</think><search>q{i}</search>"] * (i % 3) + [f"<answer>a{i}</answer>"]
        for i in range(7)
    }
    model = ScriptedLM(len(tokenizer), turn_policy(tokenizer, scripts))
    eng = Engine(model, tokenizer, Toolbox([FakeSearch()]))
    rs = eng.generate(list(scripts), AgentConfig(n=2, batch_size=3))
    assert [r.index for r in rs] == list(range(14))
    for i, r in enumerate(rs):
        k = i // 2
        assert r.trajectory.answer == f"a{k}" and r.n_tool_calls == k % 3


def test_admitted_prompts_join_a_running_batch(tokenizer):
    """``admit`` hands in prompts while others decode (a server's new requests): they take new
    and finished slots, come back in order after the first ones, and decode as if alone."""
    eng = Engine(chaotic(tokenizer), tokenizer, logits_hook=_staggered_stop(tokenizer))
    cfg = AgentConfig(env="simulated", max_new_tokens=40, max_answer_tokens=4, batch_size=4, continuous_batching=True)
    arriving, asked = list(PROMPTS[1:]), []

    def admit(k):
        asked.append(k)
        take = arriving[: min(k, 2)]  # two requests arrive at a time
        del arriving[: len(take)]
        return take

    rs = eng.generate(PROMPTS[:1], cfg, admit=admit)
    assert not arriving and max(asked) <= 4
    assert [r.prompt for r in rs] == PROMPTS and [r.index for r in rs] == list(range(len(PROMPTS)))
    assert eng.stats.refills >= len(PROMPTS) - 1  # every admitted row took a slot mid-batch
    alone = eng.generate(PROMPTS, cfg.model_copy(update={"batch_size": 1}))
    assert [r.ids for r in rs] == [r.ids for r in alone]
    # batch by batch, admitted prompts wait for the running batch, then start a new one
    arriving[:] = PROMPTS[1:]
    rs = eng.generate(PROMPTS[:1], cfg.model_copy(update={"continuous_batching": False}), admit=admit)
    assert eng.stats.refills == 0 and [r.ids for r in rs] == [r.ids for r in alone]


def test_continuous_batching_is_on_by_default_on_cuda_only(tokenizer):
    eng = Engine(tiny_llama(tokenizer), tokenizer)
    assert not eng.continuous(AgentConfig())  # the model is on the CPU
    assert eng.continuous(AgentConfig(continuous_batching=True))

    class OnCuda(Engine):
        device = torch.device("cuda")

    cuda = OnCuda(tiny_llama(tokenizer), tokenizer)
    assert cuda.continuous(AgentConfig()) and not cuda.continuous(AgentConfig(continuous_batching=False))


def test_rows_keep_their_own_budget_and_environment_in_one_call(tokenizer):
    eng = Engine(chaotic(tokenizer), tokenizer, Toolbox([FakeSearch()]))
    base = AgentConfig(env="simulated", max_new_tokens=40, max_answer_tokens=4, batch_size=8)
    own = [base.model_copy(update={"max_new_tokens": 12 + 9 * i, "max_actions": i % 3}) for i in range(4)]
    own[3] = own[3].model_copy(update={"env": "real"})
    together = eng.generate(PROMPTS[:4], base, row_configs=own)
    for p, c, r in zip(PROMPTS, own, together, strict=False):
        (alone,) = eng.generate([p], c)
        assert r.ids == alone.ids and len(r.ids) <= c.max_new_tokens
    with pytest.raises(ValueError, match="prompt 1: its seed differs from the call's"):
        eng.generate(PROMPTS[:2], base, row_configs=[base, base.model_copy(update={"seed": 3})])


def test_rows_sample_with_their_own_temperature(tokenizer):
    """Greedy and sampling rows share a call: greedy rows decode as alone, sampled rows are
    reproducible with the call's seed and log-probs follow each row's temperature."""
    eng = Engine(chaotic(tokenizer), tokenizer)
    base = AgentConfig(env="simulated", max_new_tokens=30, max_answer_tokens=4, seed=5)
    own = [
        base,
        base.model_copy(update={"temperature": 1.5, "top_p": 0.9}),
        base,
        base.model_copy(update={"temperature": 0.7}),
    ]
    a = eng.generate(PROMPTS[:4], base, row_configs=own)
    b = eng.generate(PROMPTS[:4], base, row_configs=own)
    assert [r.ids for r in a] == [r.ids for r in b]  # seeded: reproducible
    greedy = eng.generate(PROMPTS[:4], base)
    assert a[0].ids == greedy[0].ids and a[2].ids == greedy[2].ids
    assert a[1].ids != greedy[1].ids and a[3].ids != greedy[3].ids
    # a sampled token's log-prob is under its row's temperature: recompute one from the model
    r = a[1]
    with torch.inference_mode():
        logits = eng.model(torch.tensor([r.prompt_ids + r.ids[:1]])).logits[0, -2]
    assert r.logprobs[0] == pytest.approx(torch.log_softmax(logits / 1.5, -1)[r.ids[0]].item(), abs=1e-4)


def test_tag_tracker_follows_parse(tokenizer):
    """The token-level segment state agrees with parse() on the kind of every token."""
    from autocoa.agent.state import TagIds, TagTracker
    from autocoa.tags import DEFAULT_TAGS

    text = "<think>a</search>b</think><search>q</calculate>x</search><result>d</result>c<answer>z</answer>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    tr = TagTracker(TagIds.of(tokenizer, DEFAULT_TAGS))
    kinds = [tr.push(i) for i in ids]
    toks = tokenizer.convert_ids_to_tokens(ids)
    assert kinds[toks.index("</search>")] is Kind.TEXT  # a stray closer inside a think
    assert kinds[toks.index("</calculate>")] is Kind.ACTION  # another action's closer ends the action (its kind)
    assert tr.actions == 3 and tr.last == "answer" and tr.open is None and tr.kind is Kind.TEXT
