"""What the paper-scale run costs, on paper, from measurements made here.

    python bench/paper_cost.py [--bm25-sizes 100000,300000,1000000] [--out docs/results/paper_cost]

1. **Trajectory lengths, measured**: tokens of real search-agent trajectories (a 7B agent's
   HotpotQA outputs with their retrieved documents, ``../shared/realdata``) and of the
   synthetic world's oracle trajectories, counted with the named model's tokenizer
   (SmolLM2's Llama-style BPE: Qwen's differs by some percent; the tokenizer is named in the
   output).
2. **Tokens per stage** from ``configs/paper/*.yaml`` and the paper's data sizes (1.5k pairs;
   5k CoA + 1k CoT; RL 80 + 16 steps x 48 prompts x 5 rollouts).
3. **GPU-hours** under a stated assumption: training FLOPs = 6 N per token (forward + backward,
   N parameters), the KL reference's forward 2 N, generation 2 N per token at a lower
   utilisation (decoding is memory-bound), on a named GPU's dense bf16 peak.
4. **The retrieval index**: our ``BM25Index`` (bm25s) built over N passages of real Wikipedia
   text (100-word windows of the KILT sample), each size in a fresh process: build seconds and
   peak memory, fitted as a power law and extrapolated to wiki-18's 21M passages.

Prints a Markdown table; writes ``results.json`` and ``bm25_scaling.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"
WIKI18 = 21_015_324  # passages of the 2018 Wikipedia dump (DPR / Search-R1 / FlashRAG)
PAPER_DATA = {"sft1_pairs": 1500, "sft2_coa": 5000, "sft2_cot": 1000}
# evaluation sets as Search-R1 / FlashRAG count them (test where it exists, else dev)
EVAL_QUESTIONS = {"nq": 3610, "triviaqa": 11313, "hotpotqa": 7405, "2wiki": 12576, "musique": 2417, "bamboogle": 125}
GPUS = {"H100": 989e12, "A100": 312e12, "H200": 989e12}  # dense bf16 peak FLOP/s


def stats(xs: list[int]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "n": len(xs),
        "mean": sum(xs) / len(xs),
        "p50": xs[len(xs) // 2],
        "p90": xs[int(len(xs) * 0.9)],
        "max": xs[-1],
    }


def real_trajectory_tokens(tok) -> dict | None:
    """Tokens of a 7B search agent's trajectories (R1-Searcher's HotpotQA outputs, documents
    included), and the share inside the retrieved-document spans."""
    path = REALDATA / "r1searcher_hotpotqa_qwen_predictions.jsonl"
    if not path.exists():
        return None
    total, docs = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["gen_text_store"]
        total.append(len(tok(text, add_special_tokens=False)["input_ids"]))
        inside = "".join(part.split("<|end_of_documents|>")[0] for part in text.split("<|begin_of_documents|>")[1:])
        docs.append(len(tok(inside, add_special_tokens=False)["input_ids"]) if inside else 0)
    return {"source": path.name, **stats(total), "observation_share": sum(docs) / sum(total)}


def synthetic_trajectory_tokens(tok, coa: Path | None) -> dict | None:
    if coa is None or not coa.exists():
        return None
    from autocoa.tokenizer import add_tags
    from autocoa.trajectory import Trajectory, render

    add_tags(tok)
    rows = [json.loads(line) for line in coa.read_text(encoding="utf-8").splitlines()[:2000]]
    lens = [len(render(Trajectory.from_dict(r), tok)[0]) for r in rows]
    return {"source": str(coa), **stats(lens)}


def stage_tokens(
    traj_tokens: float, prompt_tokens: float = 150, teacher_n: int = 4, keep_rate: float = 0.5, methods: int = 4
) -> dict[str, dict[str, float]]:
    """Tokens each stage processes at the paper's sizes (``configs/paper``); the teacher samples
    ``teacher_n`` per question and keeps ``keep_rate`` of the questions (an assumption: not
    measured here); evaluation runs ``methods`` methods over :data:`EVAL_QUESTIONS`."""
    from autocoa.train.rl_config import RLConfig
    from autocoa.train.stage_config import ContrastiveConfig, MaskedSFTConfig

    paper = ROOT / "configs" / "paper"
    sft1 = ContrastiveConfig.load(paper / "sft1.yaml")
    sft2 = MaskedSFTConfig.load(paper / "sft2.yaml")
    sft3 = MaskedSFTConfig.load(paper / "sft3.yaml")
    rl = RLConfig.load(paper / "rl.yaml")
    example = prompt_tokens + traj_tokens
    pair = prompt_tokens + traj_tokens * 1.5  # the shared prefix once, both branches after it (~half each)
    sft_rows = PAPER_DATA["sft2_coa"] + PAPER_DATA["sft2_cot"]
    rollouts = rl.total_steps * rl.prompts_per_step * rl.num_generations
    questions = (PAPER_DATA["sft2_coa"] + PAPER_DATA["sft2_cot"]) / keep_rate
    return {
        "synth": {"teacher_generate": questions * teacher_n * traj_tokens},
        "sft1": {"train": PAPER_DATA["sft1_pairs"] * sft1.epochs * pair},
        "sft2": {"train": sft_rows * sft2.epochs * example},
        "sft3": {"train": sft_rows * sft3.epochs * example},
        "rl": {
            "generate": rollouts * traj_tokens,  # observations are inserted, but still prefilled
            "train": rollouts * example,
            "reference": rollouts * example,
        },
        "eval": {"generate": sum(EVAL_QUESTIONS.values()) * methods * traj_tokens},
    }


def gpu_hours(
    tokens: dict, params: float, peak: float, mfu_train: float, mfu_gen: float, teacher_params: float
) -> dict[str, float]:
    out = {}
    for stage, parts in tokens.items():
        flops = 6 * params * parts.get("train", 0) / mfu_train
        flops += 2 * teacher_params * parts.get("teacher_generate", 0) / mfu_gen
        flops += 2 * params * parts.get("reference", 0) / mfu_train
        flops += 2 * params * parts.get("generate", 0) / mfu_gen
        out[stage] = flops / peak / 3600
    return out


def wiki_passages(n: int, seed: int = 0) -> list[dict]:
    """``n`` 100-word passages of real Wikipedia text: windows of the KILT sample's pages."""
    path = REALDATA / "r1searcher_kilt_wiki_sample_100.jsonl"
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        page = json.loads(line)
        words += " ".join(page["text"]).split()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        start = rng.randrange(0, len(words) - 100)
        out.append({"id": str(i), "title": words[start], "text": " ".join(words[start : start + 100])})
    return out


def _build_child(n: int) -> None:
    """In a fresh process: build the index over n passages; print seconds and peak RSS."""
    from autocoa.data.corpus import Doc
    from autocoa.tools.index import BM25Index

    docs = [Doc(d["id"], d["title"], d["text"]) for d in wiki_passages(n)]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    BM25Index.build(docs)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"n": n, "seconds": dt, "peak_rss_gb": peak / 2**20, "build_rss_gb": (peak - base) / 2**20}))


def bm25_scaling(sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        r = subprocess.run([sys.executable, __file__, "--_child", str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(
            f"  bm25 {n:>9,} passages: {rows[-1]['seconds']:.1f} s, peak RSS {rows[-1]['peak_rss_gb']:.2f} GB",
            flush=True,
        )
    return rows


def power_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """y = a * x^b by least squares in log-log space."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    b = sum((x - mx) * (y - my) for x, y in zip(lx, ly, strict=True)) / sum((x - mx) ** 2 for x in lx)
    return math.exp(my - b * mx), b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", default="smollm2-135m-instruct", help="model (named or dir) whose tokenizer counts")
    ap.add_argument("--synth-coa", type=Path, default=None, help="a synthetic world's coa.jsonl (optional)")
    ap.add_argument("--params", type=float, default=7.6e9, help="parameters of the trained model (R1-Distill-7B)")
    ap.add_argument("--teacher-params", type=float, default=32.8e9, help="the teacher's parameters (QwQ-32B)")
    ap.add_argument("--keep-rate", type=float, default=0.5, help="assumed share of questions with a kept sample")
    ap.add_argument("--gpu", default="H100", choices=sorted(GPUS))
    ap.add_argument("--mfu-train", type=float, default=0.40, help="assumed utilisation in training")
    ap.add_argument("--mfu-gen", type=float, default=0.10, help="assumed utilisation in generation (memory-bound)")
    ap.add_argument("--bm25-sizes", default="100000,300000,1000000")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "paper_cost")
    ap.add_argument("--_child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child is not None:
        _build_child(args._child)
        return
    if not REALDATA.exists():
        sys.exit(f"{REALDATA}: the real-data samples are needed (trajectories and Wikipedia text)")
    from transformers import AutoTokenizer

    from autocoa.named_models import model_dir

    tok = AutoTokenizer.from_pretrained(str(model_dir(args.tokenizer)))
    real = real_trajectory_tokens(tok)
    synth = synthetic_trajectory_tokens(tok, args.synth_coa)
    tokens = stage_tokens(real["mean"], keep_rate=args.keep_rate)
    hours = gpu_hours(tokens, args.params, GPUS[args.gpu], args.mfu_train, args.mfu_gen, args.teacher_params)
    sizes = [int(s) for s in args.bm25_sizes.split(",")]
    bm25 = bm25_scaling(sizes)
    a_t, b_t = power_fit([r["n"] for r in bm25], [r["seconds"] for r in bm25])
    a_m, b_m = power_fit([r["n"] for r in bm25], [r["peak_rss_gb"] for r in bm25])
    extrapolated = {"seconds": a_t * WIKI18**b_t, "peak_rss_gb": a_m * WIKI18**b_m}
    result = {
        "tokenizer": args.tokenizer,
        "trajectory_tokens_real": real,
        "trajectory_tokens_synthetic": synth,
        "stage_tokens": tokens,
        "assumptions": {
            "params": args.params,
            "gpu": args.gpu,
            "peak_flops": GPUS[args.gpu],
            "mfu_train": args.mfu_train,
            "mfu_gen": args.mfu_gen,
        },
        "gpu_hours": hours,
        "bm25": bm25,
        "bm25_fit": {"seconds": [a_t, b_t], "peak_rss_gb": [a_m, b_m]},
        "bm25_wiki18": extrapolated,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        xs = [r["n"] for r in bm25]
        grid = [xs[0] * (WIKI18 / xs[0]) ** (i / 40) for i in range(41)]
        for ax, key, (a, b), unit in (
            (axes[0], "seconds", (a_t, b_t), "build seconds"),
            (axes[1], "peak_rss_gb", (a_m, b_m), "peak RSS (GB)"),
        ):
            ax.loglog(xs, [r[key] for r in bm25], "o", label="measured (2 CPU cores)")
            ax.loglog(grid, [a * g**b for g in grid], "--", label=f"fit: {a:.3g} N^{b:.2f}")
            ax.axvline(WIKI18, color="grey", lw=0.8)
            ax.set_xlabel("passages N")
            ax.set_ylabel(unit)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3, which="both")
        fig.suptitle("BM25 (bm25s) index build over real Wikipedia passages; grey: wiki-18 (21M)", fontsize=9)
        fig.tight_layout()
        fig.savefig(args.out / "bm25_scaling.png", dpi=110)
    except ImportError:
        pass
    print(
        f"\ntrajectory tokens ({args.tokenizer} tokenizer): real 7B agent mean {real['mean']:.0f} "
        f"(p90 {real['p90']}, observations {real['observation_share']:.0%})"
        + (f"; synthetic world mean {synth['mean']:.0f}" if synth else "")
    )
    print(f"\n| stage | tokens processed | {args.gpu} GPU-hours |")
    print("|---|---:|---:|")
    for stage, parts in tokens.items():
        print(f"| {stage} | {sum(parts.values()) / 1e6:.1f}M | {hours[stage]:.1f} |")
    print(f"| all | {sum(sum(p.values()) for p in tokens.values()) / 1e6:.1f}M | {sum(hours.values()):.1f} |")
    print(
        f"\nBM25 over wiki-18 ({WIKI18:,} passages), extrapolated: build {extrapolated['seconds'] / 3600:.1f} h "
        f"on 2 cores, peak RSS {extrapolated['peak_rss_gb']:.0f} GB (fit exponents {b_t:.2f}, {b_m:.2f})"
    )


if __name__ == "__main__":
    main()
