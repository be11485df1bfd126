"""The request batcher: many concurrent requests, one model, one thread.

Requests (a prompt, an :class:`AgentConfig`, an optional streaming callback) go into a
queue. One worker thread, the only thread that touches the model, takes the first waiting
request, keeps collecting for ``max_wait_s`` (a few ms) or until ``max_batch_rows`` rows,
and decodes what it collected as one :meth:`Engine.generate` batch. A request's future is
resolved as soon as all its rows are done, not when the whole batch is, so a short answer
is not held back by a long one in the same batch.

Trade-offs, frankly:

- Each row keeps its own budget, environment and sampling (``max_tokens``, ``env``,
  ``temperature``, ``top_p``: :attr:`AgentConfig.ROW_FIELDS`), so requests that differ only
  there share a call. A seeded request that samples (temperature > 0) runs in a call of its
  own, so that its seed reproduces its output whatever else is being served.
- Requests that arrive while a batch decodes join it (the engine's ``admit``: they take
  free or finished rows' slots) when their key matches; continuous batching is on unless
  the config turns it off, also on CPU where it costs some throughput. The first request
  whose key does not match (a seeded sampler, other batching settings) ends admission: the
  running call drains and that request goes next, so none waits behind an endless stream
  of others. A matching request that finds no free slot waits at the head of the line for
  one. A call admits at most ``16 x max_batch_rows`` rows, then drains, so its bookkeeping
  stays bounded.
- A batch whose ``generate`` raises is not failed as a whole: every request it had not
  finished is decoded again alone, so only a request that fails by itself gets the error
  (a request that already streamed text fails with it instead: re-decoding would stream its
  text twice). Requests are validated at admission (:mod:`autocoa.serve.app`); this is the
  net below that.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from autocoa.agent.config import AgentConfig
from autocoa.agent.engine import Engine
from autocoa.agent.state import Rollout
from autocoa.serve.stream import Piece, TokenStream

log = logging.getLogger(__name__)

OnPieces = Callable[[int, list[Piece]], None]  # (choice index, new text pieces), from the worker thread


class QueueFull(RuntimeError):
    """More requests wait than the batcher accepts."""


@dataclass
class Job:
    prompt: str
    cfg: AgentConfig
    on_pieces: OnPieces | None = None
    future: Future = field(default_factory=Future)
    rollouts: list[Rollout | None] = field(default_factory=list)

    def key(self) -> str:
        """Jobs with equal keys can share one ``generate`` call."""
        if self.cfg.temperature > 0 and self.cfg.seed is not None:
            return f"alone-{id(self)}"
        call = self.cfg.model_dump(exclude={*AgentConfig.ROW_FIELDS, "n", "batch_size"})  # seed, batching
        return json.dumps(call, sort_keys=True)


@dataclass
class BatcherStats:
    requests: int = 0
    batches: int = 0  # generate calls
    rows: int = 0
    largest_batch: int = 0  # most rows in one generate call (admitted ones included)
    failed_batches: int = 0  # generate calls that raised
    isolated: int = 0  # requests decoded again alone after their batch failed

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Batcher:
    """``Batcher(engine).submit(prompt, cfg, on_pieces) -> Future[list[Rollout]]`` (``cfg.n``
    rollouts, with trajectories). Thread-safe; ``close()`` stops the worker."""

    def __init__(self, engine: Engine, max_batch_rows: int = 64, max_wait_s: float = 0.005, max_queue: int = 256):
        self.engine, self.max_batch_rows, self.max_wait_s = engine, max_batch_rows, max_wait_s
        self.max_rows_per_call = 16 * max_batch_rows  # admission stops there; the call drains
        self._q: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self._held: collections.deque[Job | None] = collections.deque()  # taken from _q, not yet run
        self.stats = BatcherStats()
        self._thread = threading.Thread(target=self._work, name="autocoa-batcher", daemon=True)
        self._thread.start()

    def submit(self, prompt: str, cfg: AgentConfig, on_pieces: OnPieces | None = None) -> Future:
        job = Job(prompt, cfg, on_pieces, rollouts=[None] * cfg.n)
        try:
            self._q.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self._q.maxsize} requests are waiting; try again later") from None
        return job.future

    def close(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join(timeout)

    # -- worker thread -----------------------------------------------------------------
    def _take(self, timeout: float | None = None) -> Job | None:
        """The next job: one held back by admission first, else from the queue (``queue.Empty``
        after ``timeout`` seconds; ``None`` waits)."""
        return self._held.popleft() if self._held else self._q.get(timeout=timeout)

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._take()
            if first is None:
                return
            jobs, rows = [first], first.cfg.n
            deadline = time.monotonic() + self.max_wait_s
            while rows < self.max_batch_rows:
                try:
                    nxt = self._take(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                jobs.append(nxt)
                rows += nxt.cfg.n
            groups: dict[str, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.key(), []).append(job)
            for group in groups.values():
                self._run(group)

    # long: one generate call for a group of jobs and its failure isolation, sharing who owns each row
    def _run(self, jobs: list[Job], isolate: bool = True) -> None:
        """One ``generate`` call for jobs with one config; each job's ``n`` samples become
        ``n`` rows (so that jobs with different ``n`` share the call). ``isolate``: when the
        call raises, decode its unfinished jobs again one by one (without admission)."""
        owners = [(job, j) for job in jobs for j in range(job.cfg.n)]
        cfg = jobs[0].cfg.model_copy(update={"n": 1, "batch_size": self.max_batch_rows})
        if cfg.continuous_batching is None:  # a server favours the waiting request's latency
            cfg.continuous_batching = True
        stream = TokenStream(self.engine.decode)
        left = {id(job): job.cfg.n for job in jobs}
        key = jobs[0].key()

        def admit(k: int) -> list[tuple[str, AgentConfig]]:
            """Waiting requests with this call's config, up to ``k`` rows, without blocking. A
            request with another config (or the shutdown mark) ends admission: it is held and
            runs next. One that only lacks room is held and taken first when slots free up. A
            call admits rows up to ``max_rows_per_call``, then drains (no call runs forever)."""
            prompts: list[tuple[str, AgentConfig]] = []
            while len(owners) < self.max_rows_per_call:
                if not self._held:
                    try:
                        self._held.append(self._q.get_nowait())
                    except queue.Empty:
                        break
                job = self._held[0]
                if job is None or job.key() != key or len(prompts) + job.cfg.n > max(k, job.cfg.n):
                    break
                self._held.popleft()
                jobs.append(job)
                owners.extend((job, j) for j in range(job.cfg.n))
                left[id(job)] = job.cfg.n
                prompts += [(job.prompt, job.cfg)] * job.cfg.n
                self.stats.requests += 1
                self.stats.rows += job.cfg.n
            return prompts

        sent: set[int] = set()  # jobs that have streamed text

        def on_step(rollouts: list[Rollout]) -> None:
            streamed = [r for r in rollouts if owners[r.index][0].on_pieces is not None]
            for idx, pieces in stream.update(streamed).items():
                job, j = owners[idx]
                if job.on_pieces is not None and pieces:
                    sent.add(id(job))
                    _safely(job.on_pieces, j, pieces)
            for r in rollouts:
                job, j = owners[r.index]
                if r.finish and job.rollouts[j] is None:  # the engine has set its trajectory
                    job.rollouts[j] = dataclasses.replace(r, index=j)
                    left[id(job)] -= 1
                    if left[id(job)] == 0 and not job.future.done():  # (a client may have cancelled)
                        job.future.set_result(list(job.rollouts))

        self.stats.requests += len(jobs)
        self.stats.batches += 1
        self.stats.rows += len(owners)
        try:
            self.engine.generate(
                [job.prompt for job, _ in owners],
                cfg,
                on_step=on_step,
                admit=admit if isolate else None,
                row_configs=[job.cfg for job, _ in owners],
            )
            self.stats.largest_batch = max(self.stats.largest_batch, len(owners))
        except Exception as e:  # a model failure fails the requests it belongs to, not the batch
            log.exception("generate failed for a batch of %d rows", len(owners))
            self.stats.failed_batches += 1
            unfinished = [job for job in jobs if not job.future.done()]
            for job in unfinished:
                if isolate and len(jobs) > 1 and id(job) not in sent:
                    self.stats.isolated += 1
                    job.rollouts = [None] * job.cfg.n
                    self._run([job], isolate=False)
                elif not job.future.done():
                    job.future.set_exception(e)
            return
        for job in jobs:  # every row finishes inside generate; this is a safety net
            if not job.future.done():
                job.future.set_exception(RuntimeError("a rollout ended without finishing"))


def _safely(fn: OnPieces, j: int, pieces: list[Piece]) -> None:
    try:
        fn(j, pieces)
    except Exception:  # a consumer that went away must not stop the batch
        log.exception("streaming callback failed")
