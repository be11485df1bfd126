"""The rollout engine: batched, token-level agent loop over a Hugging Face causal LM.

One engine serves data synthesis, RL rollouts, evaluation and serving. For a batch of
prompts (``n`` rollouts each) it decodes all rows together with one KV cache and:

- stops a row inside the decoding loop as soon as it closes an action (``</search>``),
  closes its answer, or emits EOS: no token is wasted after an action;
- runs the waiting tool calls together (one batched index lookup) and appends each
  observation's token ids to its row (model-sampled ids are never decoded and re-encoded);
- keeps the cache across turns, so an observation costs its own prefill, not a re-encode of
  the prefix; finished rows leave the batch, or their slots take queued prompts (continuous
  batching, :meth:`Engine.continuous`);
- enforces the budget (``max_actions``, ``max_new_tokens``) and then forces an answer;
- ``env="simulated"``: after an action the model writes its own ``<result>`` (its world
  model), masked like a real observation; no tool is called.

How the cache stays rectangular: every forward step feeds each row its *pending* tokens
(one sampled token, or a whole observation) right-aligned in a ``[B, L]`` block, with
padding on the left that the attention mask hides. Rows waiting for a tool, or with nothing
to feed, leave masked holes. Position ids count each row's real tokens only, so holes never
shift positions. Tools run when ``tool_flush_fraction`` of the active rows wait (by default
half), which bounds both the waiting and the holes; the cache drops its holes once that
halves it (:meth:`GrowingCache.compact`).

Log-probs are those of the sampling distribution, ``log_softmax(logits / temperature)`` with
each row's own temperature (0 = greedy, log-probs at temperature 1), before top-p truncation, as TRL's
GRPO recomputes them.

Where this departs from the paper's Algorithm 1: the budget of N tokens counts the whole
response (observations included) and reserves room for the forced answer.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from autocoa.agent.cache import GrowingCache
from autocoa.agent.config import AgentConfig
from autocoa.agent.state import Rollout, Row, Status, TagIds
from autocoa.tags import DEFAULT_TAGS, Tags
from autocoa.tools.base import Toolbox
from autocoa.trajectory import encode_prompt, parse

if TYPE_CHECKING:
    from autocoa.agent.simulators import Simulator

MALFORMED_ACTION = "[error] malformed action: a closing tag without its opening tag"
BUDGET_SPENT = "[budget] no actions left; answer now"
COMPACT_MIN = 64  # cache length below which holes are left alone


@dataclass
class EngineStats:
    """Counters of one ``generate`` call (summed over batches)."""

    forward_steps: int = 0
    fed_tokens: int = 0  # real (non-padding) tokens fed to the model
    padded_tokens: int = 0  # padding fed (holes in the cache)
    sampled_tokens: int = 0
    tool_flushes: int = 0
    tool_calls: int = 0
    malformed_actions: int = 0
    compactions: int = 0  # times the KV cache's holes were dropped
    refills: int = 0  # finished rows' slots given to queued rows (continuous batching)
    seconds: float = 0.0
    # host-side wall time of the model's forward calls: decoding steps (every row fed at most
    # one token) and prefill steps (prompts, observations); on CUDA the host may not wait for
    # the kernels, so the rest of the step absorbs their time
    decode_seconds: float = 0.0
    prefill_seconds: float = 0.0

    def add(self, other: EngineStats) -> None:
        for k, v in vars(other).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                setattr(self, k, getattr(self, k) + v)


class Engine:
    """``Engine(model, tokenizer, toolbox).generate(prompts, cfg) -> list[Rollout]``.

    ``logits_hook(histories, logits) -> logits``, if given, edits the next-token logits of the
    generating rows before sampling (``histories[i]`` = row i's response ids so far):
    constrained decoding, banned tokens, scripted benchmark workloads.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        toolbox: Toolbox | None = None,
        tags: Tags | None = None,
        logits_hook: Callable[[list[list[int]], torch.Tensor], torch.Tensor] | None = None,
        simulator: Simulator | None = None,
    ):
        self.model, self.tokenizer, self.toolbox, self.logits_hook = model, tokenizer, toolbox, logits_hook
        self.simulator = simulator  # who answers simulated actions besides the world model
        self.tags = tags or (toolbox.tags if toolbox is not None else DEFAULT_TAGS)
        self.tag_ids = TagIds.of(tokenizer, self.tags)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stats = EngineStats()
        # transformers 5.x renamed the forward's cache argument (past_key_values is deprecated)
        params = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # long: the engine's public entry: a 15-line docstring (its API reference) and the continuous-batching setup
    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        cfg: AgentConfig | None = None,
        on_batch: Callable[[list[Rollout]], None] | None = None,
        prefixes: Sequence[Sequence[int]] | None = None,
        on_step: Callable[[list[Rollout]], None] | None = None,
        admit: Callable[[int], Sequence[str | tuple[str, AgentConfig]]] | None = None,
        row_configs: Sequence[AgentConfig] | None = None,
    ) -> list[Rollout]:
        """One rollout per prompt and sample (``cfg.n``), grouped: rows ``i*n .. i*n+n-1``
        belong to prompt ``i``. ``on_batch`` is called with rollouts as they finish (progress;
        their ``trajectory`` is set).
        ``prefixes[i]``, if given, are response tokens that prompt i's rollouts start with
        (see :meth:`Row.replay`). ``on_step``, if given, is called with the rollouts in the
        batch's slots after every decoding step (tools included; a rollout that finished in
        the step is among them): the tokens appended to ``r.ids`` since the last call are the
        new ones (streaming).
        ``row_configs[i]``, if given, is prompt i's own config for what a rollout may set for
        itself (:attr:`AgentConfig.ROW_FIELDS`: budget, environment, temperature, top-p); its
        seed must equal ``cfg``'s (one generator per call), its batching settings are ignored.
        ``admit(k)``, if given, is asked for up to ``k`` more prompts whenever slots are free
        and nothing is queued (a server's newly arrived requests); it must not block. It
        returns prompts, or ``(prompt, row_config)`` pairs; their rollouts follow the others'
        in the returned list."""
        if prefixes is not None and len(prefixes) != len(prompts):
            raise ValueError(f"{len(prefixes)} prefixes for {len(prompts)} prompts")
        if row_configs is not None and len(row_configs) != len(prompts):
            raise ValueError(f"{len(row_configs)} row configs for {len(prompts)} prompts")
        cfg = cfg or AgentConfig()
        self.stats = EngineStats()
        gen = torch.Generator(device=self.device)
        gen.manual_seed(cfg.seed if cfg.seed is not None else torch.seed())
        rollouts: list[Rollout] = []

        def rows_for(
            new_prompts: Sequence[str | tuple[str, AgentConfig]],
            new_prefixes: Sequence[Sequence[int]] | None = None,
        ) -> list[Row]:
            rows = []
            for k, item in enumerate(new_prompts):
                i = len(rollouts) // cfg.n
                p, row_cfg = item if isinstance(item, tuple) else (item, cfg)
                if row_cfg is not cfg and row_cfg.seed != cfg.seed:
                    raise ValueError(f"prompt {i}: its seed differs from the call's (one generator per call)")
                if row_cfg.env == "real" and self.toolbox is None:
                    raise ValueError("env='real' needs a toolbox; use env='simulated' to run without tools")
                ids = encode_prompt(self.tokenizer, p)
                if not ids:
                    raise ValueError(f"prompt {i} is empty")
                for j in range(cfg.n):
                    rollouts.append(Rollout(index=i * cfg.n + j, prompt=p, prompt_ids=ids))
                    row = Row(rollouts[-1], self.tag_ids, row_cfg)
                    if self.simulator is not None and row_cfg.env == "simulated":
                        row.external = self._takes(cfg.seed)
                    row.pending = list(ids)
                    if new_prefixes is not None:
                        row.replay(new_prefixes[k])
                    rows.append(row)
            return rows

        rows = rows_for(prompts if row_configs is None else list(zip(prompts, row_configs, strict=True)), prefixes)
        more = None if admit is None else (lambda k: rows_for(admit(max(1, k // cfg.n))))
        was_training = self.model.training
        self.model.eval()
        t0 = time.perf_counter()
        try:
            self._run(rows, cfg, gen, on_step, on_batch, more)
        finally:
            self.stats.seconds += time.perf_counter() - t0
            self.model.train(was_training)
        return rollouts

    # -- the decoding loop ---------------------------------------------------------------
    # Its five numbered steps (feed, sample, run tools, retire and refill, compact) share the
    # batch's cache, mask and slot tables; split into functions they would pass six mutable
    # values back and forth.
    # long: one decode loop whose steps share the batch's cache, mask and slot tables
    def _run(
        self,
        rows: list[Row],
        cfg: AgentConfig,
        gen: torch.Generator,
        on_step: Callable[[list[Rollout]], None] | None = None,
        on_batch: Callable[[list[Rollout]], None] | None = None,
        more: Callable[[int], list[Row]] | None = None,
    ) -> None:
        """Decode ``rows`` (their prompt and any replayed prefix pending), ``cfg.batch_size``
        slots at a time, until all are done. With continuous batching (see :meth:`continuous`),
        finished rows' slots are refilled from the queue once a quarter of the slots are free,
        and queued rows take new slots while the batch has fewer than ``batch_size``; otherwise
        (or for caches that cannot be compacted) a new batch starts when the last row of the
        current one finishes. ``more(k)`` (admission) is asked for rows when the queue is
        empty and slots are free."""
        queue = deque(rows)
        live: list[Row] = []  # rows that occupy a slot in the cache (what on_step sees)
        cache = attn = logits = None
        positions: list[int] = []
        compactable = refill = False
        while True:
            active = [r for r in live if r.status is not Status.DONE]
            if not active:
                if not queue and more is not None:
                    queue.extend(more(cfg.batch_size))
                if not queue:
                    return
                live = [queue.popleft() for _ in range(min(cfg.batch_size, len(queue)))]
                cache, attn, logits, positions = self._new_cache(), None, None, [0] * len(live)
                compactable = getattr(cache, "compactable", False)
                refill = compactable and self.continuous(cfg)
            # 1. feed every live row its pending tokens; rows with none leave a hole
            if any(r.pending for r in live):
                cache, attn, step_logits = self._forward(live, cache, attn, positions)
                fed = [bool(r.pending) for r in live]
                logits = (
                    step_logits
                    if logits is None
                    else torch.where(torch.tensor(fed, device=self.device)[:, None], step_logits, logits)
                )
                for i, r in enumerate(live):
                    positions[i] += len(r.pending)
                    r.pending = []
            # 2. sample for every generating row
            gen_idx = [i for i, r in enumerate(live) if r.status is Status.GENERATING]
            if gen_idx:
                step_logits = logits[gen_idx]
                if self.logits_hook is not None:
                    step_logits = self.logits_hook([live[i].r.ids for i in gen_idx], step_logits)
                toks, lps = self._sample(step_logits, [live[i].cfg for i in gen_idx], gen)
                self.stats.sampled_tokens += len(gen_idx)
                for i, tok, lp in zip(gen_idx, toks, lps, strict=True):
                    live[i].push(tok, lp, sampled=True)
            # 3. run tools once enough rows wait (or nothing else can move)
            waiting = [r for r in live if r.status is Status.WAITING_TOOL]
            active = [r for r in live if r.status is not Status.DONE]
            if waiting and (len(waiting) == len(active) or len(waiting) >= cfg.tool_flush_fraction * len(active)):
                self._run_tools(waiting)
            # 4. finished rows get their trajectory (before on_step sees them), then give up their slot
            done = [i for i, r in enumerate(live) if r.status is Status.DONE]
            finished = [live[i].r for i in done if live[i].r.trajectory is None]
            for r in finished:
                r.trajectory = parse(self.decode(r.ids), prompt=r.prompt, tags=self.tags)
            if on_step is not None:
                on_step([r.r for r in live])
            if finished and on_batch is not None:
                on_batch(finished)
            if not active:
                live = []
                continue
            free = len(done) + cfg.batch_size - len(live)
            if refill and not queue and free and more is not None:
                queue.extend(more(free))
            if refill and queue and (len(done) * 4 >= len(live) or len(live) < cfg.batch_size):
                for i in done[: len(queue)]:  # the new row sees none of the old row's keys
                    live[i] = queue.popleft()
                    positions[i] = 0
                    attn[i] = 0
                    self.stats.refills += 1
                added = [queue.popleft() for _ in range(min(len(queue), cfg.batch_size - len(live)))]
                if added:  # new slots, empty so far
                    cache.add_rows(len(added))
                    attn = torch.cat([attn, attn.new_zeros((len(added), attn.shape[1]))])
                    logits = torch.cat([logits, logits.new_zeros((len(added), logits.shape[1]))])
                    live += added
                    positions += [0] * len(added)
                    self.stats.refills += len(added)
            elif done and len(done) * 4 >= len(live):
                # rows leave the batch when they are many (copying the cache costs)
                keep = [i for i, r in enumerate(live) if r.status is not Status.DONE]
                live = [live[i] for i in keep]
                positions = [positions[i] for i in keep]
                idx = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(idx)
                attn, logits = attn[idx], logits[idx]
            # 5. drop the cache's holes once that halves it (the longest row sets its width)
            if compactable and attn.shape[1] >= COMPACT_MIN and int(attn.sum(1).max()) * 2 <= attn.shape[1]:
                attn = cache.compact(attn)
                self.stats.compactions += 1

    def continuous(self, cfg: AgentConfig) -> bool:
        """Whether finished rows' slots are refilled while others decode:
        ``cfg.continuous_batching``, or when unset, on CUDA only. The cache is rectangular, so
        refilled slots cost padding (a new row's prompt is fed beside one-token decoding steps;
        short rows sit beside the longest); on CPU a step's cost grows with its rows and
        padding, and batch by batch, with finished rows leaving, measured as fast or faster
        (bench/bench_engine.py: continuous 0.78-0.93x); on a GPU a step costs about the same
        for 8 rows as for 32, and fewer steps win."""
        if cfg.continuous_batching is not None:
            return cfg.continuous_batching
        return self.device.type == "cuda"

    def _new_cache(self) -> Any:
        """A :class:`GrowingCache` (no per-step copy of the cache); ``None`` (transformers'
        default) for models whose config does not describe its layers."""
        try:
            return GrowingCache(self.model.config)
        except (AttributeError, KeyError, TypeError):
            return None

    def _forward(self, live: list[Row], cache: Any, attn: torch.Tensor | None, positions: list[int]):
        """Feed each row's pending tokens right-aligned in one ``[B, L]`` block."""
        width = max(len(r.pending) for r in live)
        ids, mask, pos = [], [], []
        n_real = 0
        for r, p in zip(live, positions, strict=True):
            k, hole = len(r.pending), width - len(r.pending)
            ids.append([self.pad_id] * hole + r.pending)
            mask.append([0] * hole + [1] * k)
            pos.append([0] * hole + list(range(p, p + k)))
            n_real += k
        ids, block_mask, pos = (torch.tensor(x, dtype=torch.long, device=self.device) for x in (ids, mask, pos))
        attn = block_mask if attn is None else torch.cat([attn, block_mask], dim=1)
        t0 = time.perf_counter()
        out = self.model(
            input_ids=ids,
            attention_mask=attn,
            position_ids=pos,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kwarg: cache},
        )
        logits = out.logits[:, -1, :].float()
        if width == 1:
            self.stats.decode_seconds += time.perf_counter() - t0
        else:
            self.stats.prefill_seconds += time.perf_counter() - t0
        self.stats.forward_steps += 1
        self.stats.fed_tokens += n_real
        self.stats.padded_tokens += len(live) * width - n_real
        return (out.cache if hasattr(out, "cache") else out.past_key_values), attn, logits

    @staticmethod
    def _sample(
        logits: torch.Tensor, cfgs: Sequence[AgentConfig], gen: torch.Generator
    ) -> tuple[list[int], list[float]]:
        """Sample one token per row with that row's temperature and top-p (temperature 0 =
        greedy); return ids and their log-probs under the sampling distribution
        (temperature-scaled, before top-p; at temperature 1 for greedy rows). The generator
        draws for every row whenever any row samples, so a seeded call is reproducible."""
        toks = logits.argmax(dim=-1)
        if not any(c.temperature for c in cfgs):  # all greedy
            logp = torch.log_softmax(logits, dim=-1)
        else:
            temps = torch.tensor([c.temperature for c in cfgs], device=logits.device)
            greedy = temps == 0
            logp = torch.log_softmax(logits / torch.where(greedy, 1.0, temps)[:, None], dim=-1)
            probs = logp.exp()
            top_p = torch.tensor([c.top_p for c in cfgs], device=logits.device)
            if bool((top_p < 1.0).any()):
                sorted_p, order = probs.sort(dim=-1, descending=True)
                keep = sorted_p.cumsum(dim=-1) - sorted_p < top_p[:, None]
                keep[:, 0] = True  # the top token, also when top_p rounds to 0 in float32
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_p * keep)
            toks = torch.where(greedy, toks, torch.multinomial(probs, 1, generator=gen).squeeze(-1))
        lps = logp.gather(-1, toks[:, None]).squeeze(-1)
        return toks.tolist(), lps.tolist()

    def _takes(self, seed: int | None) -> Callable[[Rollout, int], bool]:
        simulator = self.simulator
        assert simulator is not None
        return lambda rollout, action: simulator.takes(seed, rollout.index, action)

    def _run_simulator(self, rows: list[Row]) -> None:
        """The external simulator's results for ``rows`` (their action's argument), in one call;
        a row it does not answer, or whose action is malformed, gets the world model's result."""
        from autocoa.agent.simulators import SimRequest

        asks, targets = [], []
        for r in rows:
            call = r.pending_call(self.decode)
            if call is None:
                r.simulate()
            else:
                asks.append(SimRequest(r.r.prompt, *call))
                targets.append(r)
        assert self.simulator is not None
        for r, text in zip(targets, self.simulator.results(asks) if asks else [], strict=True):
            if text is None:
                r.simulate()
            else:
                r.observe(text, self.tokenizer, source=self.simulator.name)

    def _run_tools(self, waiting: list[Row]) -> None:
        """All waiting calls in one toolbox call; observations are appended as ids."""
        simulated = [r for r in waiting if r.waiting_simulator]
        tools = [r for r in waiting if not r.waiting_simulator]  # before the simulator's rows stop waiting
        if simulated:
            self._run_simulator(simulated)
        calls, targets = [], []
        for r in tools:
            call = r.pending_call(self.decode)
            if r.over_action_budget:
                r.observe(BUDGET_SPENT, self.tokenizer, source="error")
            elif call is None:
                self.stats.malformed_actions += 1
                r.observe(MALFORMED_ACTION, self.tokenizer, source="error")
            else:
                calls.append(call)
                targets.append(r)
        if calls:
            assert self.toolbox is not None
            for r, obs in zip(targets, self.toolbox.run(calls), strict=True):
                r.r.n_tool_calls += 1
                r.observe(obs, self.tokenizer)
        self.stats.tool_flushes += 1
        self.stats.tool_calls += len(calls)
