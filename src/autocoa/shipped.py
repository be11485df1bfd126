"""The default recipe's base model, pretrained once and shipped with the package.

The paper starts every run from one pretrained LM. The tiny default does too: its base model
was pretrained by ``autocoa pretrain`` with the default preset's ``pretrain`` config on the
default world (world seed 0), and its files ship in ``autocoa/assets/default-base/``. Why not
pretrain in every demo: pretraining takes ~10 of the demo's minutes on 2 CPU cores, and whether
the base learns to *read* (copy a name just read, an induction-like skill that appears abruptly)
depended on the seed: of five seeds' bases, one read well, one never (docs/scale-model.md). A
demo's and a study's seeds then varied how well the base reads more than anything the recipe does.

``SHIPPED.json`` records what the base was made from: the pretraining config, the sha256 of each
world file pretraining read, the command, the commit and the machine. :func:`install` copies the
base into a run's ``base/`` only when the run's pretraining config and world files are exactly
those; anything else (another world seed, another size, ``--from-scratch``) pretrains as before.
A test regenerates the default world and checks that the shipped base still applies, so a change
to world generation or to the preset cannot silently turn the demo back into pretraining.

Re-making it: ``autocoa ship-base`` pretrains on a fresh default world (as ``autocoa pretrain``
does) and writes the asset directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from autocoa.train.pretrain import PretrainConfig

ASSET = Path(__file__).parent / "assets" / "default-base"
RECORD = "SHIPPED.json"
# the world files pretraining reads (its manifest's): text, tokenizer texts, the reading test
WORLD_FILES = ("pretrain.txt", "corpus.jsonl", "entities.jsonl", "train.jsonl")
# the base's files a run's base/ gets: the model and tokenizer, the closed-book probe that synthesis
# reads, the summary, curve and config the report reads
FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "knowledge.jsonl",
    "pretrain.json",
    "metrics.jsonl",
    "pretrain_config.yaml",
)
# fields that do not change the model: how often it checkpoints, where it logs
UNUSED = ("save_steps", "save_total_limit", "report_to")


def matched_config(cfg: PretrainConfig) -> dict[str, Any]:
    """The fields of a pretraining config that decide the model (what the shipped base must match)."""
    return cfg.model_dump(mode="json", exclude=set(UNUSED))


def world_hashes(world_dir: Path) -> dict[str, str]:
    from autocoa.train.checkpoints import file_hash

    return {name: file_hash(world_dir / name) for name in WORLD_FILES if (world_dir / name).exists()}


def mismatch(world_dir: Path, cfg: PretrainConfig, asset: Path = ASSET) -> str | None:
    """None when the shipped base at ``asset`` was pretrained with ``cfg`` on exactly these world
    files; else why not, in one line (the first differing field or file)."""
    record_path = asset / RECORD
    if not record_path.exists():
        return f"no shipped base at {asset}"
    record = json.loads(record_path.read_text(encoding="utf-8"))
    want, have = record["config"], matched_config(cfg)
    for key in sorted(set(want) | set(have)):
        if want.get(key) != have.get(key):
            return f"pretrain.{key} is {have.get(key)!r}, the shipped base's {want.get(key)!r}"
    hashes = world_hashes(Path(world_dir))
    for name, digest in record["world"].items():
        if hashes.get(name) != digest:
            return f"{Path(world_dir) / name} is not the world the shipped base read (world seed or size differ)"
    missing = [name for name in FILES if not (asset / name).exists()]
    if missing:
        return f"the shipped base at {asset} lacks {', '.join(missing)}"
    return None


def install(world_dir: Path, out_dir: Path, cfg: PretrainConfig, asset: Path = ASSET) -> dict[str, Any] | None:
    """Copy the shipped base into ``out_dir`` when it applies (:func:`mismatch` is None) and return
    its pretraining summary (``pretrain.json``, with ``"base": "shipped"``) as :func:`pretrain`
    would; None when it does not apply (the caller pretrains)."""
    from autocoa.train.common import mark_done

    if mismatch(world_dir, cfg, asset) is not None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(asset / name, out_dir / name)
    record = json.loads((asset / RECORD).read_text(encoding="utf-8"))
    summary = {
        **json.loads((out_dir / "pretrain.json").read_text(encoding="utf-8")),
        "base": "shipped",
        "made_by": {k: record[k] for k in ("command", "commit", "machine") if k in record},
    }
    (out_dir / "pretrain.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    mark_done(out_dir, summary)
    return summary


def make(world_cfg: Any, cfg: PretrainConfig, work: Path, asset: Path = ASSET) -> dict[str, Any]:
    """Pretrain a base with ``cfg`` on a fresh world of ``world_cfg`` under ``work`` (resumable: the
    same call after a kill continues) and write it, with its record, to ``asset``."""
    import platform
    import subprocess

    from autocoa.train.common import read_done
    from autocoa.train.pretrain import pretrain
    from autocoa.world import generate_world, write_world

    world_dir, base_dir = work / "world", work / "base"
    if not (world_dir / "world.json").exists():
        write_world(generate_world(world_cfg), world_dir)
    if read_done(base_dir) is None:
        pretrain(world_dir, base_dir, cfg)
    asset.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(base_dir / name, asset / name)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    record = {
        "config": matched_config(cfg),
        "world": world_hashes(world_dir),
        "command": "autocoa ship-base (the default preset's world and pretrain config)",
        "commit": commit,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    (asset / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
