"""EM and the share past the last hop, by hop count, of evaluation predictions (re-derived from
each trajectory with autocoa.analysis.past_last_hop, so older predictions count by today's rule).
Usage: python past_hops.py QUESTIONS.jsonl PREDICTIONS.jsonl [...]"""

import json
import sys
from collections import defaultdict

from autocoa.analysis import past_last_hop
from autocoa.trajectory import Trajectory


def table(questions: str, predictions: str) -> dict:
    chains = {}
    with open(questions, encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            chains[q["id"]] = q["chain"]
    by = defaultdict(lambda: [0, 0.0, 0])  # n, em, past
    with open(predictions, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            past = past_last_hop(Trajectory.from_dict(r["trajectory"]), chains[r["id"]])
            for key in (r["hops"], "all"):
                by[key][0] += 1
                by[key][1] += r["em"]
                by[key][2] += past
    return {str(k): {"n": n, "em": round(em / n, 3), "past_last_hop": round(p / n, 3)} for k, (n, em, p) in by.items()}


if __name__ == "__main__":
    for path in sys.argv[2:]:
        print(path, json.dumps(table(sys.argv[1], path)))
