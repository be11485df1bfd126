"""What the scale-model scripts read from a study's seed directory (aggregate.py, compare_try.py):
one owner of the evaluation metrics' path and of the closed-book recall share of a checkpoint."""

import json
from pathlib import Path


def metrics(root: Path, label: str, method: str = "agent") -> dict:
    """The metrics of ``method`` in the seed directory's evaluation ``label`` (``eval/<label>``)."""
    return json.loads((root / "eval" / label / "metrics.json").read_text())["methods"][method]


def recalled_share(checkpoint: Path, facts: list) -> float:
    """The share of ``facts`` the checkpoint recalls closed-book (autocoa.knowledge.recall)."""
    from autocoa.knowledge import recall
    from autocoa.models import load_model

    model, tok = load_model(checkpoint, device="cpu")
    return sum(known for known, _ in recall(model, tok, facts)) / len(facts)
