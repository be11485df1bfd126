"""Load: a client sending maximal requests to the retrieval server (the most queries x topk it
accepts, back to back) does not raise a normal client's p99 latency above 10x its idle p99: the
index lock is held per chunk of queries, so a normal request waits for one chunk at most."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from autocoa.data.corpus import Doc
from autocoa.tools.index import BM25Index
from autocoa.tools.server import ServerLimits, create_app
from tests.servers import serve


def corpus(n: int = 20_000, seed: int = 0) -> list[Doc]:
    rng = random.Random(seed)
    syl = ["ka", "lo", "mi", "ra", "tu", "ve", "no", "si", "be", "da", "ri", "zo", "pe", "gu", "fa", "le"]
    words = ["".join(rng.choice(syl) for _ in range(3)) for _ in range(4000)]
    return [Doc(str(i), words[i % 4000], " ".join(rng.choice(words) for _ in range(30))) for i in range(n)]


def p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]


def normal_latencies(url: str, queries: list[str]) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as c:
        for q in queries:
            t = time.perf_counter()
            c.post(url, json={"queries": [q], "topk": 3}).raise_for_status()
            out.append(time.perf_counter() - t)
    return out


@pytest.mark.slow
def test_a_maximal_client_does_not_stall_a_normal_one():
    docs = corpus()
    limits = ServerLimits()
    app = create_app(BM25Index.build(docs), limits)
    rng = random.Random(1)
    queries = [" ".join(rng.choice(docs).text.split()[:3]) for _ in range(200)]
    topk = 4
    big = {"queries": [rng.choice(queries) for _ in range(limits.max_results // topk)], "topk": topk}
    with serve(app) as base:
        url = base + "/retrieve"
        normal_latencies(url, queries[:20])  # warm up
        idle = normal_latencies(url, queries)
        stop, served = threading.Event(), []

        def flood():
            with httpx.Client(timeout=60) as c:
                while not stop.is_set():
                    c.post(url, json=big).raise_for_status()
                    served.append(1)

        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        time.sleep(0.5)
        loaded = normal_latencies(url, queries)
        stop.set()
        flooder.join(timeout=60)
    assert served, "the maximal client was never answered"
    ratio = p99(loaded) / p99(idle)
    print(f"idle p99 {p99(idle) * 1e3:.1f} ms, under load {p99(loaded) * 1e3:.1f} ms ({ratio:.1f}x), "
          f"{len(served)} maximal requests of {len(big['queries'])} queries served meanwhile")  # fmt: skip
    assert ratio < 10, ratio
