"""The stop decision, teacher-forced: for each held-out question, the prefix of SFT-1&2&3's greedy
trajectory up to the end of the thought that follows its first observation ("Rute was produced by
Rifo Group.</think>"); each model's next-token probability there of opening <answer> (stop) rather
than <think> or <search> (go on), by hop count and by what the oracle teacher does there. The same
prefixes for every model, so a policy that RL moved shows it even where greedy decoding still picks
the same tag.
Usage: python stop_prob.py SEED_DIR OUT.json RUN [RUN ...]  (RUN: sft123, rl_G, ...; the prefixes
from SEED_DIR/eval/sft123/predictions.jsonl)"""

import json
import sys
from pathlib import Path

import torch

from autocoa.models import load_model
from autocoa.tags import Kind, open_tag
from autocoa.trajectory import Trajectory, render


def prefixes(preds: Path) -> list[tuple[dict, Trajectory]]:
    """(prediction row, prefix) of every prediction whose trajectory has a thought after its first
    observation."""
    out = []
    for line in preds.open(encoding="utf-8"):
        row = json.loads(line)
        traj = Trajectory.from_dict(row["trajectory"])
        kinds = [s.kind for s in traj.segments]
        if Kind.OBSERVATION not in kinds:
            continue
        first = kinds.index(Kind.OBSERVATION)
        if first + 1 < len(kinds) and kinds[first + 1] is Kind.THINK:
            out.append((row, Trajectory(traj.prompt, traj.segments[: first + 2])))
    return out


@torch.no_grad()
def stop_probs(run: Path, items: list[tuple[dict, Trajectory]]) -> dict:
    """By hop count, and by what the teacher does there (stop: the question needs at most one search,
    n_search <= 1; go on: two or more), the mean probabilities of the three tags and the share of
    prefixes where <answer> is the most likely."""
    model, tok = load_model(run, device="cpu")
    model.eval()
    ids = {name: tok.convert_tokens_to_ids(open_tag(name)) for name in ("answer", "think", "search")}
    by: dict[str, list[dict]] = {}
    for row, traj in items:
        ids_in, _ = render(traj, tok)
        p = torch.softmax(model(torch.tensor([ids_in])).logits[0, -1].float(), -1)
        probs = {k: p[i].item() for k, i in ids.items()}
        by.setdefault(str(row["hops"]), []).append(probs)
        by.setdefault("teacher stops" if row["n_search"] <= 1 else "teacher goes on", []).append(probs)
    out = {}
    for h, rows in sorted(by.items()):
        mean = {k: round(sum(r[k] for r in rows) / len(rows), 3) for k in ids}
        greedy_stop = sum(r["answer"] > max(r["think"], r["search"]) for r in rows) / len(rows)
        out[h] = {"n": len(rows), "p": mean, "stop_is_argmax": round(greedy_stop, 3)}
    return out


def main() -> None:
    root, out, runs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    items = prefixes(root / "eval" / "sft123" / "predictions.jsonl")
    result = {run: stop_probs(root / run, items) for run in runs}
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    groups = ["1", "2", "3", "4", "teacher stops", "teacher goes on"]
    print("| run | P(stop): 1 / 2 / 3 / 4 hops; teacher stops / goes on | stop is the greedy choice (same groups) |")
    print("|---|---|---|")
    for run, r in result.items():
        cells = [[f"{r[h]['p']['answer']:.2f}" for h in groups], [f"{r[h]['stop_is_argmax']:.2f}" for h in groups]]
        p, g = (" / ".join(c[:4]) + "; " + " / ".join(c[4:]) for c in cells)
        print(f"| {run} | {p} | {g} |")


if __name__ == "__main__":
    main()
