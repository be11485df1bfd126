"""EM, the share past the last hop and searches a question, by hop count, of evaluation predictions (re-derived from
each trajectory with autocoa.analysis.past_last_hop, so older predictions count by today's rule).
Usage: python past_hops.py QUESTIONS.jsonl PREDICTIONS.jsonl [...]"""

import json
import sys
from collections import defaultdict
from functools import lru_cache

from autocoa.analysis import past_last_hop
from autocoa.trajectory import Trajectory


@lru_cache
def gold_chains(questions: str) -> dict[str, list]:
    """Each question's gold chain by id."""
    with open(questions, encoding="utf-8") as f:
        return {q["id"]: q["chain"] for q in map(json.loads, f)}


def table(questions: str, predictions: str, method: str = "agent") -> dict:
    """By hop count and over ``all``: n, EM, the share past the last hop and searches a question, of
    ``method``'s rows (an evaluation of several methods writes them all to one file)."""
    chains = gold_chains(questions)
    by = defaultdict(lambda: [0, 0.0, 0, 0])  # n, em, past, searches
    with open(predictions, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["method"] != method:
                continue
            past = past_last_hop(Trajectory.from_dict(r["trajectory"]), chains[r["id"]])
            for key in (r["hops"], "all"):
                by[key][0] += 1
                by[key][1] += r["em"]
                by[key][2] += past
                by[key][3] += r["searches"]
    return {
        str(k): {"n": n, "em": round(em / n, 4), "past_last_hop": round(p / n, 4), "searches": round(sr / n, 2)}
        for k, (n, em, p, sr) in by.items()
    }


if __name__ == "__main__":
    for path in sys.argv[2:]:
        print(path, json.dumps(table(sys.argv[1], path)))
