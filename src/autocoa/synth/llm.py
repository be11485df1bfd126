"""LLM teachers for real-scale data: sample n trajectories per question with a real model and
the real tools, keep only the correct ones (rejection sampling).

Two teachers, one interface (``sample(questions, n) -> list[list[Trajectory]]``):

- :class:`LocalTeacher`: any local Hugging Face checkpoint through our agent loop (batched,
  token-level, tools run for real);
- :class:`EndpointTeacher`: an OpenAI-compatible ``/v1/completions`` endpoint (a vLLM server,
  say). The endpoint returns text, so this loop is text-level: it generates until
  ``</search>`` or ``</answer>`` (stop strings), restores the stop string the server strips,
  runs the tool, appends ``<result>...</result>`` and continues. The student never trains on
  the teacher's tokens: kept trajectories are parsed and later rendered with the student's
  tokenizer (``render``), so text is the right interface here.

:func:`rejection_sample` writes kept trajectories to ``coa.jsonl`` (with actions) and
``cot.jsonl`` (without), SFT-1's contrastive pairs to ``pairs.jsonl`` (:func:`sample_pair`), and
every question's outcome to ``progress.jsonl``, appending as it goes: a killed run resumes
where it stopped.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from autocoa.agent.config import AgentConfig
from autocoa.agent.prompts import instructions
from autocoa.data.qa import QARecord
from autocoa.jsonl import read_jsonl, trim_jsonl, write_jsonl
from autocoa.metrics import exact_match
from autocoa.tags import DEFAULT_TAGS, Kind, Tags, close_tag, open_tag
from autocoa.tools.base import Toolbox
from autocoa.trajectory import Trajectory, parse


class Teacher(Protocol):
    def sample(self, questions: Sequence[str], n: int) -> list[list[Trajectory]]: ...


class LocalTeacher:
    """A local checkpoint through the agent loop (``AgentConfig`` sets budget and sampling)."""

    def __init__(self, model: Any, tokenizer: Any, toolbox: Toolbox, cfg: AgentConfig):
        from autocoa.agent.engine import Engine

        self.engine, self.cfg, self.tokenizer = Engine(model, tokenizer, toolbox), cfg, tokenizer

    def sample(self, questions: Sequence[str], n: int) -> list[list[Trajectory]]:
        from autocoa.agent.prompts import format_prompt

        cfg = self.cfg.model_copy(update={"n": n})
        rollouts = self.engine.generate([format_prompt(q, self.tokenizer) for q in questions], cfg)
        return [[r.trajectory for r in rollouts[i * n : (i + 1) * n]] for i in range(len(questions))]


class EndpointTeacher:
    """A text-level agent loop over an OpenAI-compatible completions endpoint, through the
    ``openai`` client (retries with backoff on timeouts, 429 and 5xx: ``max_retries``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        toolbox: Toolbox,
        *,
        api_key: str | None = None,
        max_actions: int = 8,
        max_tokens: int = 512,
        temperature: float = 0.7,
        timeout: float = 60.0,
        max_retries: int = 3,
        tags: Tags = DEFAULT_TAGS,
    ):
        from autocoa.coa.llm import openai_client

        self.url = base_url.rstrip("/") + "/completions"
        self.model, self.toolbox, self.tags = model, toolbox, tags
        self.max_actions, self.max_tokens, self.temperature = max_actions, max_tokens, temperature
        self.client = openai_client(base_url, api_key, timeout, max_retries)
        self.stops = [*tags.action_closers, close_tag("answer")]

    def prompt(self, question: str) -> str:
        return instructions(self.tags) + f"\n\nQuestion: {question}\n"

    def _complete(self, prompts: list[str]) -> list[str]:
        from autocoa.coa.llm import endpoint_call

        create = self.client.completions.create
        kwargs = dict(model=self.model, prompt=prompts, max_tokens=self.max_tokens, temperature=self.temperature)
        r = endpoint_call(self.url, create, stop=self.stops, **kwargs)
        return [c.text for c in sorted(r.choices, key=lambda c: c.index)]

    def _restore_stop(self, text: str) -> str:
        """Servers strip the matched stop string: close the segment the text left open."""
        traj = parse(text, tags=self.tags)
        last = traj.segments[-1] if traj.segments else None
        if last is not None and not last.closed and last.kind in (Kind.ACTION, Kind.ANSWER):
            return text + close_tag(last.tag)
        return text

    def sample(self, questions: Sequence[str], n: int) -> list[list[Trajectory]]:
        rows = [(qi, self.prompt(q)) for qi, q in enumerate(questions) for _ in range(n)]
        responses = [""] * len(rows)
        active = list(range(len(rows)))
        for _turn in range(self.max_actions + 1):
            if not active:
                break
            outs = self._complete([rows[i][1] + responses[i] for i in active])
            calls, waiting = [], []
            for i, out in zip(active, outs, strict=True):
                responses[i] += self._restore_stop(out)
                t = parse(responses[i], tags=self.tags)
                last = [s for s in t.segments if not s.blank][-1:] or [None]
                if last[0] is not None and last[0].kind is Kind.ACTION and last[0].closed:
                    calls.append((last[0].tool, last[0].text))
                    waiting.append(i)
            for i, obs in zip(waiting, self.toolbox.run(calls), strict=True):
                responses[i] += open_tag("result") + obs + close_tag("result")
            active = waiting
        out: list[list[Trajectory]] = [[] for _ in questions]
        for (qi, prompt), resp in zip(rows, responses, strict=True):
            out[qi].append(parse(resp, prompt=prompt, tags=self.tags))
        return out


def sample_pair(trajs: Sequence[Trajectory], golds: Sequence[str]) -> dict[str, Any] | None:
    """SFT-1's "when to act" pair from one question's samples, when they disagree about acting
    and only one side is right: a correct trajectory that acts against a wrong one that does not
    (``kind: action``: it needed the tool), else a correct one that does not act against a wrong
    one that does (``no_action``: it knew, searching was not needed). The shared prefix is their
    common leading segments (often only the prompt: independent samples diverge early, where the
    oracle's pairs diverge exactly at the hop). None when the samples give no such pair.

    >>> from autocoa.trajectory import action, answer, observation, think
    >>> right = Trajectory("Q", (think("t"), action("search", "x"), observation("d"), answer("Sabeto")))
    >>> wrong = Trajectory("Q", (think("t"), answer("Orvadi")))
    >>> p = sample_pair([wrong, right], ["Sabeto"])
    >>> p["kind"], p["prefix_segments"]
    ('action', 1)
    >>> sample_pair([right, right], ["Sabeto"]) is None
    True
    """
    good = [t for t in trajs if t.well_formed and exact_match(t.answer, golds)]
    bad = [t for t in trajs if t.answer is not None and not exact_match(t.answer, golds)]
    for kind, acts in (("action", True), ("no_action", False)):
        chosen = next((t for t in good if bool(t.n_actions) == acts), None)
        rejected = next((t for t in bad if bool(t.n_actions) != acts), None)
        if chosen is not None and rejected is not None:
            n = 0
            while n < min(len(chosen.segments), len(rejected.segments)) and chosen.segments[n] == rejected.segments[n]:
                n += 1
            n = min(n, len(chosen.segments) - 1, len(rejected.segments) - 1)  # each side keeps a trained segment
            return {
                "kind": kind,
                "hop": None,
                "prefix_segments": n,
                "chosen": chosen.to_dict(),
                "rejected": rejected.to_dict(),
            }
    return None


# long: the teacher loop in one pass (sample, check, keep, write, count), resumable from what it has written
def rejection_sample(
    teacher: Teacher,
    records: Sequence[QARecord],
    out_dir: str | Path,
    n: int = 4,
    keep_per_question: int = 1,
    batch: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Sample ``n`` trajectories per question; keep up to ``keep_per_question`` that are well
    formed and answer correctly (EM against any gold). Appends as it goes; resumable."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done_path = out_dir / "progress.jsonl"
    done = {row["id"] for _, row in read_jsonl(done_path)} if done_path.exists() else set()
    for name in ("coa.jsonl", "cot.jsonl", "pairs.jsonl"):  # rows of a question a kill left unmarked: sampled again
        trim_jsonl(out_dir / name, lambda row: row.get("id") in done)
    todo = [r for r in records if r.id not in done]
    counts: Counter[str] = Counter()
    t0 = time.perf_counter()
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        samples = teacher.sample([r.question for r in chunk], n)
        rows: dict[str, list[dict]] = {"coa.jsonl": [], "cot.jsonl": [], "pairs.jsonl": [], done_path.name: []}
        for rec, trajs in zip(chunk, samples, strict=True):
            good = [t for t in trajs if t.well_formed and exact_match(t.answer, rec.golden_answers)]
            kept = good[:keep_per_question]
            counts["kept"] += len(kept)
            counts["rejected"] += len(trajs) - len(kept)
            counts["questions with a kept trajectory"] += bool(kept)
            for t in kept:
                row = {
                    "id": rec.id,
                    "question": rec.question,
                    "golden_answers": rec.golden_answers,
                    "hops": rec.hops,
                    **t.to_dict(),
                    "n_actions": t.n_actions,
                }
                rows["coa.jsonl" if t.n_actions else "cot.jsonl"].append(row)
            pair = sample_pair(trajs, rec.golden_answers)
            if pair is not None:
                rows["pairs.jsonl"].append({"id": rec.id, "question": rec.question, **pair})
                counts["pairs"] += 1
            malformed = sum(not t.well_formed for t in trajs)
            rows[done_path.name].append(
                {
                    "id": rec.id,
                    "sampled": len(trajs),
                    "kept": len(kept),
                    "malformed": malformed,
                    "pair": pair is not None,
                }
            )
        for name, batch_rows in rows.items():  # the progress file last: a kill leaves no question marked done unwritten
            write_jsonl(out_dir / name, batch_rows, append=True)
        if progress is not None:
            progress(len(done) + start + len(chunk), len(records))
    totals: Counter[str] = Counter()
    for _, row in read_jsonl(done_path):
        totals["questions"] += 1
        totals["sampled"] += row["sampled"]
        totals["kept"] += row["kept"]
        totals["malformed"] += row["malformed"]
        totals["pairs"] += bool(row.get("pair"))
    summary = {
        **totals,
        "rejected": totals["sampled"] - totals["kept"],
        "this_run": dict(counts),
        "resumed_from": len(done),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
