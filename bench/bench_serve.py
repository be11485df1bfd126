"""Benchmark: the agent server under load: requests/s and p50/p99 latency at 1, 8, 32 clients.

    PYTHONPATH=src python bench/bench_serve.py [--concurrency 1 8 32] [--max-tokens 64]

What it measures, honestly: the whole serving stack (HTTP, validation, the batcher, batched
decoding with a KV cache, response building) on a *tiny random-weight Llama* (vocab ~1k,
hidden 128, 4 layers) with a byte-level BPE trained in this script. A random model would
stop or call tools at random, so a logits hook bans every tag and EOS: each request then
generates exactly ``--max-tokens`` tokens (the budget forces and closes the answer), in the
simulated environment, with no tool calls. Numbers are for this fixed workload, not for a
trained agent.

Then a late arrival: one 16-token request sent while 8 requests of 256 tokens decode, on a
server with continuous batching (its default: the request joins the running batch) and one
without (it waits until that batch is done); its latency in each, and the ratio.

The server runs in a child process (uvicorn on 127.0.0.1, a free port); the clients are
asyncio tasks in this process, each sending its requests one after another. The child is
stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import statistics
import time

import httpx


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def serve(port: int, max_tokens: int, threads: int, continuous: bool | None = None) -> None:
    """The child process: build the tokenizer and model, serve them."""
    import torch
    import uvicorn
    from transformers import LlamaConfig, LlamaForCausalLM

    from autocoa.agent.config import AgentConfig
    from autocoa.agent.engine import Engine
    from autocoa.serve.app import ServeLimits, create_app
    from autocoa.tags import DEFAULT_TAGS
    from autocoa.tokenizer import train_tokenizer

    torch.set_num_threads(threads)
    words = ["Varnelo", "Osmira", "born", "city", "founded", "the", "in", "of", "was", "Kesh", "Lumora", "river"]
    corpus = [" ".join(words[(i * k) % len(words)] for k in range(1, 12)) for i in range(400)]
    tok = train_tokenizer(corpus, vocab_size=1000, min_frequency=1)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(cfg).eval()
    banned = torch.tensor([tok.convert_tokens_to_ids(t) for t in DEFAULT_TAGS.strings] + [tok.eos_token_id])

    def no_tags(_histories, logits):  # a fixed-length workload: no tag, no early stop
        logits[:, banned] = float("-inf")
        return logits

    engine = Engine(model, tok, None, logits_hook=no_tags)
    agent = AgentConfig(env="simulated", max_new_tokens=max_tokens, max_answer_tokens=8, continuous_batching=continuous)
    app = create_app(engine, agent, ServeLimits(max_batch_rows=64, batch_wait_ms=5), model_name="tiny")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


async def client(http: httpx.AsyncClient, url: str, n: int, tag: int, lat: list[float], tokens: list[int]) -> None:
    for i in range(n):
        body = {"model": "tiny", "messages": [{"role": "user", "content": f"Where was person {tag}-{i} born?"}]}
        t = time.perf_counter()
        r = await http.post(url, json=body)
        r.raise_for_status()
        lat.append(time.perf_counter() - t)
        tokens.append(r.json()["usage"]["completion_tokens"])


async def level(base: str, concurrency: int, per_client: int) -> dict:
    lat: list[float] = []
    tokens: list[int] = []
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        before = (await http.get(base + "/health")).json()["batcher"]
        start = time.perf_counter()
        url = base + "/v1/chat/completions"
        await asyncio.gather(*(client(http, url, per_client, c, lat, tokens) for c in range(concurrency)))
        wall = time.perf_counter() - start
        after = (await http.get(base + "/health")).json()["batcher"]
    batches = after["batches"] - before["batches"]
    return {
        "clients": concurrency,
        "requests": len(lat),
        "req/s": len(lat) / wall,
        "tok/s": sum(tokens) / wall,
        "p50 ms": 1000 * percentile(lat, 50),
        "p99 ms": 1000 * percentile(lat, 99),
        "mean ms": 1000 * statistics.fmean(lat),
        "rows/batch": (after["rows"] - before["rows"]) / max(1, batches),
        "tokens/req": statistics.fmean(tokens),
    }


async def late_arrival(base: str, busy: int, long_tokens: int, short_tokens: int) -> float:
    """Seconds for one short request sent while ``busy`` long requests decode."""
    url = base + "/v1/chat/completions"

    def body(i: int, n: int) -> dict:
        return {"model": "tiny", "messages": [{"role": "user", "content": f"Where was {i} born?"}], "max_tokens": n}

    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=busy + 4)) as http:
        longs = [asyncio.create_task(http.post(url, json=body(i, long_tokens))) for i in range(busy)]
        await asyncio.sleep(0.3)  # the long ones are decoding
        t = time.perf_counter()
        (await http.post(url, json=body(-1, short_tokens))).raise_for_status()
        took = time.perf_counter() - t
        for r in await asyncio.gather(*longs):
            r.raise_for_status()
    return took


def start_server(max_tokens: int, threads: int, continuous: bool | None = None):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = mp.get_context("spawn").Process(target=serve, args=(port, max_tokens, threads, continuous), daemon=True)
    proc.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(base + "/health", timeout=1).raise_for_status()
            return proc, base
        except httpx.TransportError:
            if time.monotonic() > deadline or not proc.is_alive():
                proc.terminate()
                raise RuntimeError("the server did not start") from None
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--requests-per-client", type=int, default=4, help="at least 16 requests per level in all")
    ap.add_argument("--max-tokens", type=int, default=64, help="tokens generated per request (fixed)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads of the server")
    args = ap.parse_args()

    proc, base = start_server(args.max_tokens, args.threads)
    try:
        asyncio.run(level(base, 2, 2))  # warm up
        print(
            f"tiny random-weight Llama (hidden 128, 4 layers), tags and EOS banned: every request generates "
            f"{args.max_tokens} tokens, simulated env, no tool calls; server on {args.threads} torch threads"
        )
        print(
            f"{'clients':>7} {'requests':>8} {'req/s':>7} {'tok/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'rows/batch':>10}"
        )
        for c in args.concurrency:
            per = max(args.requests_per_client, -(-16 // c))
            r = asyncio.run(level(base, c, per))
            print(
                f"{r['clients']:>7} {r['requests']:>8} {r['req/s']:>7.2f} {r['tok/s']:>7.0f} {r['p50 ms']:>8.0f} "
                f"{r['p99 ms']:>8.0f} {r['rows/batch']:>10.1f}"
            )
    finally:
        proc.terminate()
        proc.join(timeout=10)

    # a short request (16 tokens) that arrives while 8 long ones (256 tokens) decode: it joins
    # the running batch (continuous batching, the server's default) or waits for it to finish
    took = {}
    for continuous in (True, False):
        proc, base = start_server(256, args.threads, continuous)
        try:
            asyncio.run(level(base, 2, 1))  # warm up
            took[continuous] = statistics.median(asyncio.run(late_arrival(base, 8, 256, 16)) for _ in range(3))
        finally:
            proc.terminate()
            proc.join(timeout=10)
    print(
        f"a 16-token request arriving while 8 x 256-token requests decode (median of 3): "
        f"{1000 * took[True]:.0f} ms when it joins the running batch, {1000 * took[False]:.0f} ms when it waits "
        f"for the batch to finish ({took[False] / took[True]:.1f}x)"
    )


if __name__ == "__main__":
    main()
