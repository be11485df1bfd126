"""Benchmark: the rollout engine on a multi-turn workload vs two `model.generate` baselines.

Workload: batch 32, each trajectory = 3 x (<think> 40 tokens </think> <search> 8 tokens
</search> + a ~95-token observation) + <answer> 6 tokens </answer>. The model is a random
tiny Llama (hidden 128, 4 layers, vocab 1000: the size of the embedded default); a scripted
logits hook decides *where* tags go, the model's own logits pick every other token, so all
three runs do the same work on the same model.

- engine: autocoa's agent loop (one KV cache across turns, observations prefilled);
- naive:  per turn, `model.generate` on the full re-encoded prefix, stopping at </search>;
- plain:  one single-turn `model.generate` producing the same number of tokens (no tools).

Prints tokens/s of each (all response tokens, observations included) and the ratios
engine/naive (target >= 3) and engine/plain (target >= 0.8), measured in the same run, and
where the engine's time goes: decoding-step forwards, prefill forwards (prompts and
observations) and the rest (sampling, bookkeeping, tools, the scripted hook). The naive loop
decodes the same tokens one step at a time as the engine does; what it wastes is re-encoding
its prefixes. So the naive time divided by the engine's decoding-step time bounds the ratio
any engine with the same decoding steps can reach: it is printed as the "ceiling".

    python bench/bench_engine.py [--batch 32] [--repeats 3]
    python bench/bench_engine.py --model smollm2-135m-instruct --batch 8   # a real 30-layer model

``--model`` (a checkpoint directory or named model; the tags are added as for training) runs
the first part on that model with its own tokenizer, where re-encoding a prefix costs 30 layers
rather than 4; the queue part, which re-draws the weights, is then skipped.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from autocoa.agent.config import AgentConfig
from autocoa.agent.engine import Engine
from autocoa.tokenizer import train_tokenizer
from autocoa.tools.base import Toolbox
from autocoa.train.pretrain import PretrainConfig, build_model
from autocoa.trajectory import encode_prompt

THINK, QUERY, ANSWER, TURNS = 40, 8, 6, 3
SYL = ["ka", "lo", "mi", "ra", "tu", "ve", "no", "si", "be", "da", "ri", "zo", "pe", "gu", "fa", "le"]


def make_tokenizer():
    import random

    rng = random.Random(0)
    words = ["".join(rng.choice(SYL) for _ in range(rng.randint(2, 3))) for _ in range(3000)]
    texts = [" ".join(rng.choice(words) for _ in range(30)) + "." for _ in range(2000)]
    return train_tokenizer(texts, vocab_size=1000)


class Obs:
    name, description = "search", "fixed ~60-token observation"

    def __init__(self, tokenizer):
        import random

        rng = random.Random(1)
        self.text = "Doc 1 (Title: Kalora) " + " ".join("".join(rng.choice(SYL) for _ in range(3)) for _ in range(40))

    def call(self, argument: str) -> str:
        return self.text


class Script:
    """Where the tags go: turn k (k = number of </result> so far) is
    <think> THINK </think> <search> QUERY </search> for k < TURNS, then <answer> ANSWER </answer>."""

    def __init__(self, tok):
        i = tok.convert_tokens_to_ids
        self.res_close = i("</result>")
        turn = [i("<think>"), *[None] * THINK, i("</think>"), i("<search>"), *[None] * QUERY, i("</search>")]
        self.turns = [turn] * TURNS + [[i("<answer>"), *[None] * ANSWER, i("</answer>")]]
        self.banned = torch.tensor(
            sorted(
                {
                    *tok.all_special_ids,
                    *(x for x in tok.get_vocab().values() if tok.convert_ids_to_tokens(x).startswith("<")),
                }
            )
        )

    def want(self, response: list[int]) -> int | None:
        k = response.count(self.res_close)
        pos = response[::-1].index(self.res_close) if k else len(response)  # tokens since the last </result>
        turn = self.turns[min(k, TURNS)]
        return turn[pos] if pos < len(turn) else None

    def apply(self, histories, logits):
        logits = logits.clone()
        logits[:, self.banned] = -1e9
        for row, h in enumerate(histories):
            w = self.want(h)
            if w is not None:
                logits[row] = -1e9
                logits[row, w] = 0.0
        return logits


class VariedScript(Script):
    """The queue workload's script: a row's number of tool calls (0-3) and the lengths of its
    thoughts (8-80 tokens) follow from the first token the model picks, so the rows of a batch
    finish at different steps. Every turn starts with a thought; the last ends in the answer."""

    def __init__(self, tok):
        super().__init__(tok)
        i = tok.convert_tokens_to_ids
        self.think = [i("<think>"), i("</think>")]
        self.search = [i("<search>"), *[None] * QUERY, i("</search>")]
        self.answer = [i("<answer>"), *[None] * ANSWER, i("</answer>")]
        self._turns: dict[tuple[int, bool], list[int | None]] = {}

    def want(self, response: list[int]) -> int | None:
        if len(response) < 2:  # <think>, then the model's first pick
            return None if response else self.think[0]
        seed = response[1]
        k = response.count(self.res_close)
        pos = response[::-1].index(self.res_close) if k else len(response)
        length, last = 8 + (seed * (k + 1) * 7919) % 73, k >= seed % 4
        turn = self._turns.get((length, last))
        if turn is None:
            turn = [self.think[0], *[None] * length, self.think[1], *(self.answer if last else self.search)]
            self._turns[length, last] = turn
        return turn[pos] if pos < len(turn) else None


class ScriptProcessor(LogitsProcessor):
    """The same script for `generate`: the response starts after each row's prompt."""

    def __init__(self, script: Script, starts: list[int]):
        self.script, self.starts = script, starts

    def __call__(self, input_ids, scores):
        return self.script.apply([row[s:].tolist() for row, s in zip(input_ids, self.starts, strict=True)], scores)


def run_engine(model, tok, prompts, script, batch=None, continuous=None):
    """The engine on ``prompts`` with ``batch`` slots (default: all at once): its rollouts
    (checked well formed), seconds and counters."""
    eng = Engine(model, tok, Toolbox([Obs(tok)], max_chars=10_000), logits_hook=script.apply)
    cfg = AgentConfig(
        max_new_tokens=2048,
        max_obs_tokens=512,
        batch_size=batch or len(prompts),
        max_actions=TURNS,
        continuous_batching=continuous,
    )
    t0 = time.perf_counter()
    rs = eng.generate(prompts, cfg)
    dt = time.perf_counter() - t0
    bad = [r.trajectory.problems for r in rs if not r.trajectory.well_formed]
    assert not bad, bad[0]
    return rs, dt, eng.stats


@torch.inference_mode()
def run_naive(model, tok, prompts, script):
    """Per turn: left-pad the full re-encoded prefixes, generate to </search>, run the tool."""
    tool = Obs(tok)
    tok.padding_side = "left"
    closers = [tok.convert_tokens_to_ids("</search>"), tok.convert_tokens_to_ids("</answer>")]
    texts = list(prompts)
    prompt_lens = [len(encode_prompt(tok, p)) for p in prompts]
    n_tokens = 0
    t0 = time.perf_counter()
    for _turn in range(TURNS + 1):
        enc = tok(texts, return_tensors="pt", padding=True)
        width = enc["input_ids"].shape[1]
        starts = [width - int(m.sum()) + pl for m, pl in zip(enc["attention_mask"], prompt_lens, strict=True)]
        out = model.generate(
            **enc,
            max_new_tokens=THINK + QUERY + 8,
            do_sample=False,
            eos_token_id=closers,
            pad_token_id=tok.pad_token_id,
            logits_processor=LogitsProcessorList([ScriptProcessor(script, starts)]),
        )
        for i in range(len(texts)):
            new = out[i, width:].tolist()
            new = new[: next((j + 1 for j, x in enumerate(new) if x in closers), len(new))]
            n_tokens += len(new)
            texts[i] += tok.decode(new)
            if new and new[-1] == closers[0]:
                obs = f"<result>{tool.call('')}</result>"
                texts[i] += obs
                n_tokens += len(tok(obs, add_special_tokens=False)["input_ids"])
    dt = time.perf_counter() - t0
    assert all(t.endswith("</answer>") for t in texts)
    return n_tokens, dt


@torch.inference_mode()
def run_plain(model, tok, prompts, n_new):
    tok.padding_side = "left"
    enc = tok(list(prompts), return_tensors="pt", padding=True)
    t0 = time.perf_counter()
    out = model.generate(
        **enc, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, pad_token_id=tok.pad_token_id
    )
    dt = time.perf_counter() - t0
    return (out.shape[1] - enc["input_ids"].shape[1]) * len(prompts), dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None, help="a checkpoint directory or named model instead of the tiny one")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.model:
        from autocoa.models import load_model

        model, tok = load_model(args.model, device="cpu")
        model.eval()
    else:
        tok = make_tokenizer()
        # the embedded default's architecture (hidden 128, 4 layers), built the way `autocoa pretrain` builds it
        model = build_model(PretrainConfig(max_position_embeddings=4096, seed=0), tok).eval()
    script = Script(tok)
    prompts = [f"Question: where was {SYL[i % 16]}{SYL[(3 * i) % 16]} born?\n" for i in range(args.batch)]
    rates = {"engine": [], "naive": [], "plain": []}
    parts = {"decode forward": [], "prefill forward": [], "the rest": []}
    ceilings = []
    for _ in range(args.repeats):
        rs, dt, stats = run_engine(model, tok, prompts, script)
        assert all(r.n_tool_calls == TURNS for r in rs)
        n = sum(len(r.ids) for r in rs)
        rates["engine"].append(n / dt)
        parts["decode forward"].append(stats.decode_seconds)
        parts["prefill forward"].append(stats.prefill_seconds)
        parts["the rest"].append(dt - stats.decode_seconds - stats.prefill_seconds)
        n_naive, dt = run_naive(model, tok, prompts, script)
        rates["naive"].append(n_naive / dt)
        # an engine that spent nothing on prefill or bookkeeping would still run its decoding steps
        ceilings.append(n / n_naive * dt / stats.decode_seconds)
        per_row = n // args.batch
        n_plain, dt = run_plain(model, tok, prompts, per_row)
        rates["plain"].append(n_plain / dt)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(
        f"workload: batch {args.batch}, {TURNS} tool calls per trajectory, {n // args.batch} response tokens each; "
        f"model {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, {args.threads} threads"
    )
    for k, v in med.items():
        print(f"  {k:6s} {v:8.0f} tok/s  (median of {args.repeats})")
    total = sum(statistics.median(v) for v in parts.values())
    split = ", ".join(f"{k} {statistics.median(v):.2f}s" for k, v in parts.items())
    print(f"  engine time: {split} (~{total:.2f}s)")
    print(f"engine / naive per-turn generate: {med['engine'] / med['naive']:.2f}x  (target >= 3)")
    print(
        f"  ceiling with these decoding steps (naive time / engine decode-forward time): "
        f"{statistics.median(ceilings):.2f}x"
    )
    print(f"engine / plain single-turn generate: {med['engine'] / med['plain']:.2f}x  (target >= 0.8)")
    if args.model:
        return

    # a queue of 4 batches of varied rollouts: continuous batching vs one batch at a time. The
    # weights are re-drawn larger so that greedy picks differ from prompt to prompt (the init
    # writes one token everywhere, and the rows' lengths follow from their first pick); a
    # step's cost does not depend on the weights' values.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    varied = VariedScript(tok)
    queue = [
        f"Question: who founded {SYL[i % 16]}{SYL[(5 * i) % 16]}{SYL[(7 * i) % 16]}?\n" for i in range(4 * args.batch)
    ]
    times = {True: [], False: []}
    for _ in range(args.repeats):
        for continuous in (True, False):
            rs, dt, _ = run_engine(model, tok, queue, varied, args.batch, continuous)
            ids = [r.ids for r in rs]
            times[continuous].append(dt)
            if continuous:
                first = ids
            assert ids == first, "continuous batching changed what a rollout decodes"
    n = sum(len(x) for x in first)
    cont, by_batch = statistics.median(times[True]), statistics.median(times[False])
    calls = [x.count(tok.convert_tokens_to_ids("</search>")) for x in first]
    print(
        f"queue: {len(queue)} prompts, {args.batch} slots, 0-3 tool calls (mean {statistics.mean(calls):.1f}), "
        f"{min(map(len, first))}-{max(map(len, first))} response tokens"
    )
    print(
        f"  continuous batching {n / cont:8.0f} tok/s, batch by batch {n / by_batch:8.0f} tok/s: {by_batch / cont:.2f}x"
    )


if __name__ == "__main__":
    main()
