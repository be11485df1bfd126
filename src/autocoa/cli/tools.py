"""Commands on search indexes and tools: ``index``, ``serve-retriever``, ``search``, ``calculate``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from autocoa.cli.app import CLIError, app
from autocoa.cli.options import AllowHost, ApiKey, IndexDir, RetrieverURL, TopK
from autocoa.httpguard import LOOPBACK_BIND, LOOPBACK_HOSTS


@app.command("index")
def index_cmd(
    corpus: Annotated[
        list[Path],
        typer.Option(help="corpus file(s): JSONL {id, contents} / {id, title, text} / KILT, or a DPR TSV (repeatable)"),
    ],
    out: Annotated[Path, typer.Option(help="index directory to write")],
    skip_bad: Annotated[bool, typer.Option(help="skip malformed rows (reported) instead of stopping")] = False,
    dense_encoder: Annotated[
        str | None,
        typer.Option(help="build a dense index with this sentence-transformers model path instead of BM25"),
    ] = None,
    k1: Annotated[float, typer.Option(help="BM25 k1")] = 1.5,
    b: Annotated[float, typer.Option(help="BM25 b")] = 0.75,
) -> None:
    """Build a search index (BM25 by default) from corpus files and save it to --out."""
    from autocoa.data.corpus import iter_corpus
    from autocoa.progress import track

    bad: list = []
    docs = []
    start = time.perf_counter()
    for path in corpus:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        docs.extend(track(iter_corpus(path, skip_bad=skip_bad, bad=bad), f"read {path.name}", "docs"))
    if not docs:
        raise CLIError(f"no documents in {', '.join(map(str, corpus))}")
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        typer.echo(f"warning: {len(ids) - len(set(ids))} duplicate document id(s); hits may be ambiguous", err=True)
    if dense_encoder:
        from autocoa.tools.dense import DenseIndex

        index = DenseIndex.build(docs, encoder=dense_encoder, progress=True)
    else:
        from autocoa.tools.index import BM25Index

        index = BM25Index.build(docs, k1=k1, b=b, progress=True)
    index.save(out)
    for e in bad[:10]:
        typer.echo(f"skipped: {e}", err=True)
    if len(bad) > 10:
        typer.echo(f"... and {len(bad) - 10} more skipped rows", err=True)
    kind = "dense" if dense_encoder else "BM25"
    typer.echo(f"indexed {len(docs)} documents ({kind}) in {time.perf_counter() - start:.1f}s; saved to {out}")


@app.command("serve-retriever")
def serve_retriever(
    index: Annotated[Path, typer.Option(help="index directory written by `autocoa index`")],
    host: Annotated[
        str,
        typer.Option(
            help="address to bind; beyond loopback, set --api-key (without it anyone who can reach the port can query)"
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    topk: Annotated[int, typer.Option(help="documents per query when a request gives no topk")] = 3,
    max_topk: Annotated[int, typer.Option(help="largest topk a request may ask for")] = 100,
    max_queries: Annotated[int, typer.Option(help="most queries in one request")] = 1024,
    max_query_chars: Annotated[int, typer.Option(help="longest query in characters")] = 2000,
    backend: Annotated[str, typer.Option(help="BM25 scoring: auto (numba if installed), numba, numpy")] = "auto",
    allow_host: AllowHost = None,
    api_key: ApiKey = None,
) -> None:
    """Serve an index over HTTP with the Search-R1 /retrieve protocol (POST /retrieve, GET /health)."""
    import uvicorn

    from autocoa.tools.index import BM25Index
    from autocoa.tools.server import ServerLimits, create_app

    limits = ServerLimits(
        default_topk=topk, max_topk=max_topk, max_queries=max_queries, max_query_chars=max_query_chars
    )
    retriever = _load(index, backend)
    if isinstance(retriever, BM25Index):
        retriever.warmup()  # pay numba's JIT compilation before the first request
    if host not in LOOPBACK_BIND and not api_key:
        typer.echo(f"warning: binding {host} without --api-key: anyone who can reach it can query the index", err=True)
    typer.echo(f"serving {len(retriever)} documents from {index} at http://{host}:{port}/retrieve")
    app_ = create_app(retriever, limits, allowed_hosts=allow_host or list(LOOPBACK_HOSTS), api_key=api_key)
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@app.command("search")
def search_cmd(
    queries: Annotated[list[str], typer.Argument(help="one or more queries")],
    index: IndexDir = None,
    retriever: RetrieverURL = None,
    topk: TopK = 3,
) -> None:
    """Search an index (or a retrieval server) and print the observation the agent would see."""
    from autocoa.cli.agent import toolbox_from_options

    box = toolbox_from_options(index, retriever, topk, "real", max_chars=0)  # whole documents
    for q, obs in zip(queries, box.run([("search", q) for q in queries]), strict=True):
        if len(queries) > 1:
            typer.echo(f"== {q}")
        typer.echo(obs)
    if box.stats.errors:
        raise typer.Exit(1)


def _load(index: Path, backend: str = "auto"):
    from autocoa.tools.index import IndexFormatError
    from autocoa.tools.search import load_index

    if not index.exists():
        raise FileNotFoundError(f"{index}: no such index directory")
    if backend not in ("auto", "numba", "numpy"):
        raise CLIError(f"--backend must be auto, numba or numpy, not {backend!r}")
    try:
        return load_index(index, backend=backend)
    except IndexFormatError as e:
        raise CLIError(str(e)) from None


@app.command("calculate")
def calculate_cmd(expression: Annotated[str, typer.Argument(help="arithmetic expression, e.g. '(3 + 4) * 2 ** 10'")]):
    """Evaluate an expression with the calculator tool (safe: no eval)."""
    from autocoa.tools.calculator import CalculatorError, calculate, format_number

    try:
        typer.echo(format_number(calculate(expression)))
    except CalculatorError as e:
        raise CLIError(str(e)) from None
