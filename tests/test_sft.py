"""SFT stages 1-3: the masks reach the losses, CPO equals the paper's formula, runs train, save,
refuse to overwrite, and configs fail with the file and the field."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from autocoa.cli import app
from autocoa.config import ConfigError
from autocoa.jsonl import DataError
from autocoa.train.checkpoints import RunMismatchError, last_checkpoint
from autocoa.train.common import OutputExistsError
from autocoa.train.contrastive import build_cpo_trainer, cpo_columns, pair_examples
from autocoa.train.examples import masked_example, mix_rows, read_rows, trajectory_of
from autocoa.train.sft import build_sft_trainer, sft_examples, train_sft
from autocoa.train.stage_config import ContrastiveConfig, MaskedSFTConfig
from autocoa.trajectory import Trajectory, render
from tests.agent_helpers import tiny_llama
from tests.sft_helpers import PEOPLE, coa_traj, config_yaml, write_data, write_model

FAST = {"bf16": False, "logging_steps": 1, "warmup_ratio": 0.0}


def _token_losses(model, ids: list[int]) -> torch.Tensor:
    """-log p(ids[t] | ids[:t]) for t = 1..n-1, by hand."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    return F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")


def _trainer_loss(trainer, example: dict) -> float:
    batch = trainer._prepare_inputs(trainer.data_collator([example]))
    with torch.no_grad():
        return trainer.compute_loss(trainer.model, batch).item()


@pytest.fixture
def sft_trainer(tokenizer, tmp_path):
    def make(examples):
        cfg = MaskedSFTConfig(**FAST, batch_size=1)
        return build_sft_trainer(tiny_llama(tokenizer), tokenizer, examples, cfg, tmp_path, progress=False)

    return make


def test_labels_follow_render_mask(tokenizer):
    traj = coa_traj(*PEOPLE[0])
    obs_ids = {tokenizer.convert_tokens_to_ids(t) for t in ("<result>", "</result>")}
    for mask_obs in (True, False):
        ids, mask = render(traj, tokenizer, mask_observations=mask_obs)
        ex = masked_example(traj, tokenizer, mask_obs, max_length=4096)
        assert ex["input_ids"] == ids
        assert ex["labels"] == [t if m else -100 for t, m in zip(ids, mask, strict=True)]
        trained_tags = {t for t, lab in zip(ids, ex["labels"], strict=True) if lab != -100} & obs_ids
        assert trained_tags == (set() if mask_obs else obs_ids)  # the observation's tags follow its text
    n_prompt = next(i for i, m in enumerate(render(traj, tokenizer)[1]) if m)  # tokens before the first trained one
    assert masked_example(traj, tokenizer, True, max_length=n_prompt) is None  # nothing trained fits
    cut = masked_example(traj, tokenizer, True, max_length=n_prompt + 5)
    assert len(cut["input_ids"]) == n_prompt + 5 and sum(t != -100 for t in cut["labels"]) == 5


def _positions_in_loss(trainer, example: dict) -> list[int]:
    """1 where the prediction made at position t enters the trainer's loss, else 0: the final
    hidden state at t feeds only the logits at t, so its gradient is non-zero exactly then."""
    seen = {}

    def keep(module, args, out):
        out.retain_grad()
        seen["h"] = out

    hook = trainer.model.model.norm.register_forward_hook(keep)
    try:
        batch = trainer._prepare_inputs(trainer.data_collator([example]))
        trainer.compute_loss(trainer.model, batch).backward()
    finally:
        hook.remove()
    return (seen["h"].grad[0].abs().sum(-1) > 0).int().tolist()


def test_sft_loss_terms_are_exactly_the_trained_tokens(tokenizer, sft_trainer):
    """Which per-token loss terms the trainer sums, read from gradients, is render's mask shifted
    by one (the prediction at t is of token t+1); and the loss is their mean, computed by hand."""
    traj = coa_traj(*PEOPLE[1])
    for mask_obs in (True, False):
        ex = masked_example(traj, tokenizer, mask_obs, 4096)
        trainer = sft_trainer([ex])
        _, mask = render(traj, tokenizer, mask_observations=mask_obs)
        assert _positions_in_loss(trainer, ex) == [*mask[1:], 0]
        per_token = _token_losses(trainer.model, ex["input_ids"])
        expected = per_token[torch.tensor(mask[1:], dtype=torch.bool)].mean().item()
        assert _trainer_loss(trainer, ex) == pytest.approx(expected, rel=1e-5)
    assert mask != render(traj, tokenizer, mask_observations=True)[1]  # the two stages really differ here


def test_observation_tokens_leave_sft2_loss_and_move_sft3(tokenizer, sft_trainer):
    """Trajectories ending in their observation: changing its tokens touches no other token's
    context, so sft2's loss must not move, while sft3's (the world model) must."""
    name, place = PEOPLE[0]
    a, b = (Trajectory(t.prompt, t.segments[:3]) for t in (coa_traj(name, place), coa_traj(name, place, "Osmira.")))
    trainer = sft_trainer([masked_example(a, tokenizer, True, 4096)])
    sft2 = [_trainer_loss(trainer, masked_example(t, tokenizer, True, 4096)) for t in (a, b)]
    sft3 = [_trainer_loss(trainer, masked_example(t, tokenizer, False, 4096)) for t in (a, b)]
    assert sft2[0] == pytest.approx(sft2[1], abs=1e-6)
    assert abs(sft3[0] - sft3[1]) > 1e-3


def test_cpo_loss_equals_hand_formula(tokenizer, tmp_path):
    data = write_data(tmp_path / "data")
    cfg = ContrastiveConfig(**FAST, batch_size=1)
    examples, stats = pair_examples(data["pairs"], tokenizer, cfg)
    assert stats["examples"] == len(PEOPLE)
    trainer = build_cpo_trainer(tiny_llama(tokenizer), tokenizer, examples, cfg, tmp_path, progress=False)
    for ex in trainer.train_dataset:
        p = ex["prefix_len"]
        logp = {}
        for side in ("chosen", "rejected"):
            ids, mask = ex[f"{side}_ids"], ex[f"{side}_mask"]
            cont = torch.tensor([i >= p and m == 1 for i, m in enumerate(mask)])[1:]
            logp[side] = -_token_losses(trainer.model, ids)[cont].mean()
        hand = -F.logsigmoid(logp["chosen"] - logp["rejected"]) + cfg.alpha * -logp["chosen"]
        assert _trainer_loss(trainer, ex) == pytest.approx(hand.item(), rel=1e-5)


def test_cpo_columns_check_the_shared_prefix():
    cols = cpo_columns(2, [5, 6, 7, 8], [0, 0, 1, 1], [5, 6, 9], [0, 0, 1])
    assert cols["prompt_input_ids"] == [5, 6]
    assert cols["chosen_labels"] == [-100, -100, 7, 8] and cols["rejected_labels"] == [-100, -100, 9]
    with pytest.raises(ValueError, match="share"):
        cpo_columns(2, [5, 6, 7], [0, 0, 1], [5, 4, 7], [0, 0, 1])


def test_pair_rows_must_share_their_prefix(tokenizer, tmp_path):
    data = write_data(tmp_path)
    rows = [json.loads(x) for x in data["pairs"].read_text().splitlines()]
    rows[1]["prefix_segments"] = 1  # chosen starts with a different think than rejected
    data["pairs"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"pairs.jsonl:2: prefix_segments"):
        pair_examples(data["pairs"], tokenizer, ContrastiveConfig())


def test_cot_mix_ratio(tokenizer, tmp_path):
    assert len(mix_rows(10, ["a", "b", "c"], 0.2, 0)) == 2
    five = mix_rows(10, ["a", "b"], 0.5, 0)  # more than the file holds: every row twice, then a sample
    assert len(five) == 5 and five.count("a") >= 2 and five.count("b") >= 2
    assert mix_rows(10, ["a"], 0.0, 0) == []
    data = write_data(tmp_path)
    _ex, stats = sft_examples(data["coa"], tokenizer, MaskedSFTConfig(cot_ratio=0.5), True, data["cot"])
    assert (stats["rows"], stats["cot_rows"], stats["examples"]) == (4, 2, 6)
    # a teacher calibrated to a model that recalls no whole chain writes no CoT row: no CoT, no error
    empty = tmp_path / "empty_cot.jsonl"
    empty.write_text("")
    _ex, stats = sft_examples(data["coa"], tokenizer, MaskedSFTConfig(cot_ratio=0.5), True, empty)
    assert (stats["cot_rows"], stats["examples"]) == (0, 4)
    with pytest.raises(DataError, match="no rows"):
        read_rows(empty, ("question", "segments"))


def test_pool_rows_are_added_pool_repeats_times(tokenizer, tmp_path):
    data = write_data(tmp_path)
    cfg = MaskedSFTConfig(cot_ratio=0.0, pool_repeats=3)
    examples, stats = sft_examples(data["coa"], tokenizer, cfg, False, pool_path=data["coa"])
    assert (stats["rows"], stats["pool_rows"], stats["cot_rows"], stats["examples"]) == (4, 12, 0, 16)
    # the pool's copies are the same rendered examples as its rows
    assert examples[4:8] == examples[:4] and examples[4:8] * 3 == examples[4:]


def test_observations_trained_in_the_pool_rows_only(tokenizer, tmp_path):
    data = write_data(tmp_path)
    cfg = MaskedSFTConfig(cot_ratio=0.0, pool_repeats=1, observations_in="pool")
    examples, _ = sft_examples(data["coa"], tokenizer, cfg, False, pool_path=data["coa"])
    rest, pool = examples[:4], examples[4:]

    def trained(ex):
        return sum(t != -100 for t in ex["labels"])

    assert [r["input_ids"] for r in rest] == [p["input_ids"] for p in pool]
    assert all(trained(p) > trained(r) for r, p in zip(rest, pool, strict=True))  # observations: pool rows only
    sft2_like, _ = sft_examples(data["coa"], tokenizer, MaskedSFTConfig(cot_ratio=0.0), True)
    assert [e["labels"] for e in sft2_like] == [r["labels"] for r in rest]  # the rest is masked exactly as sft2


def test_pool_rows_can_train_their_observations_only(tokenizer, tmp_path):
    data = write_data(tmp_path)
    cfg = MaskedSFTConfig(cot_ratio=0.0, pool_repeats=1, observations_in="pool", pool_loss="observations")
    examples, _ = sft_examples(data["coa"], tokenizer, cfg, False, pool_path=data["coa"])
    rest, pool = examples[:4], examples[4:]
    for (row_n, row), r, p in zip(read_rows(data["coa"], ("segments",)), rest, pool, strict=True):
        traj = trajectory_of(row, tokenizer, (data["coa"], row_n))
        _, m_all = render(traj, tokenizer, mask_observations=False)
        _, m_model = render(traj, tokenizer, mask_observations=True)
        obs = [a and not b for a, b in zip(m_all, m_model, strict=True)]
        assert [t != -100 for t in p["labels"]] == obs  # the pool row: observation tokens only
        assert [t != -100 for t in r["labels"]] == [bool(b) for b in m_model]  # the rest: as sft2
        assert any(obs) and not any(o and (lab != -100) for o, lab in zip(obs, r["labels"], strict=True))


@pytest.mark.parametrize(
    "field, value, path_arg", [("pool_repeats", 2, "pool_path"), ("replay_ratio", 0.5, "replay_path")]
)
def test_a_data_file_and_its_ratio_go_together(tokenizer, tmp_path, field, value, path_arg):
    data = write_data(tmp_path / "data")
    model_dir = write_model(tokenizer, tmp_path / "init")
    with pytest.raises(ValueError, match=field):
        train_sft("sft3", model_dir, data["coa"], tmp_path / "a", MaskedSFTConfig(), **{path_arg: data["coa"]})
    with pytest.raises(ValueError, match=field):
        train_sft("sft3", model_dir, data["coa"], tmp_path / "b", MaskedSFTConfig(**{field: value}))
    with pytest.raises(ValueError, match="sft2/sft3"):
        train_sft("sft1", model_dir, data["pairs"], tmp_path / "c", ContrastiveConfig(), pool_path=data["coa"])


def test_replayed_text_blocks_are_packed_seeded_and_fully_trained(tokenizer, tmp_path):
    from autocoa.train.examples import replay_examples

    text = tmp_path / "pretrain.txt"
    text.write_text("".join(f"{p} was born in Lavis. {p} studied at Oro University.\n" for p in PEOPLE) * 20)
    blocks = replay_examples(text, tokenizer, n_coa=40, ratio=0.25, block=16, seed=3)
    assert len(blocks) == 10 and all(len(b["input_ids"]) == 16 for b in blocks)
    assert all(b["labels"] == b["input_ids"] for b in blocks)  # every token trained, as in pretraining
    assert blocks == replay_examples(text, tokenizer, n_coa=40, ratio=0.25, block=16, seed=3)
    assert blocks != replay_examples(text, tokenizer, n_coa=40, ratio=0.25, block=16, seed=4)
    data = write_data(tmp_path / "data")
    cfg = MaskedSFTConfig(cot_ratio=0.0, replay_ratio=0.5, replay_block=16)
    ex, stats = sft_examples(data["coa"], tokenizer, cfg, True, replay_path=text)
    assert (stats["rows"], stats["replay_rows"], stats["examples"]) == (4, 2, 6)
    assert ex[-1]["labels"] == ex[-1]["input_ids"] and -100 in ex[0]["labels"]  # CoA rows keep their mask
    short = tmp_path / "short.txt"
    short.write_text("Lavis.\n")
    with pytest.raises(ValueError, match=r"short.txt: too little text"):
        replay_examples(short, tokenizer, n_coa=4, ratio=1.0, block=128, seed=0)


def test_sft2_cli_replays_the_pretraining_text(tokenizer, tmp_path):
    data = write_data(tmp_path / "data")
    model_dir = write_model(tokenizer, tmp_path / "init")
    text = tmp_path / "pretrain.txt"
    text.write_text("".join(f"{p} was born in Lavis.\n" for p in PEOPLE) * 40)
    cfg = config_yaml(tmp_path / "c.yaml", **FAST, max_steps=2, batch_size=4, cot_ratio=0.0)
    args = ["train", "sft2", "--model", str(model_dir), "--data", str(data["coa"]), "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(app, [*args, "--replay-text", str(text), "--config", str(cfg), "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "sft.json").read_text())
    assert summary["replay_rows"] == 1 and summary["examples"] == 5  # 0.25 per CoA row by default
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert str(text.resolve()) in run["data"]  # a changed text is another run (not resumed)


def test_sft3_cli_trains_on_the_pool(tokenizer, tmp_path):
    data = write_data(tmp_path / "data")
    model_dir = write_model(tokenizer, tmp_path / "init")
    cfg = config_yaml(tmp_path / "c.yaml", **FAST, max_steps=2, batch_size=4, cot_ratio=0.0)
    args = ["train", "sft3", "--model", str(model_dir), "--data", str(data["coa"]), "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(
        app, [*args, "--pool-data", str(data["coa"]), "--pool-repeats", "2", "--config", str(cfg), "--quiet"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "sft.json").read_text())
    assert summary["pool_rows"] == 8 and summary["examples"] == 12
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["config"]["pool_repeats"] == 2


def test_sft2_trains_saves_and_refuses_a_finished_out(tokenizer, tmp_path):
    data = write_data(tmp_path / "data")
    model_dir = write_model(tokenizer, tmp_path / "init")
    out = tmp_path / "sft2"
    cfg = MaskedSFTConfig(**FAST, lr=1e-2, batch_size=4, max_steps=25, save_steps=10, cot_ratio=0.5)
    summary = train_sft("sft2", model_dir, data["coa"], out, cfg, cot_path=data["cot"], progress=False)
    assert summary["steps"] == 25 and summary["cot_rows"] == 2
    losses = [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    from autocoa.models import load_model

    before, _ = load_model(model_dir, device="cpu")
    after, tok = load_model(out, device="cpu")
    assert any(not torch.equal(p, q) for p, q in zip(before.parameters(), after.parameters(), strict=True))
    assert len(tok) == len(tokenizer)
    run = json.loads((out / "run.json").read_text())
    assert set(run["data"]) == {str(data["coa"].resolve()), str(data["cot"].resolve())}
    assert MaskedSFTConfig.load(out / "sft_config.yaml") == cfg and (out / "DONE").exists()
    assert last_checkpoint(out).name == "checkpoint-25"

    with pytest.raises(OutputExistsError):
        train_sft("sft2", model_dir, data["coa"], out, cfg, cot_path=data["cot"], progress=False)
    res = CliRunner().invoke(
        app, ["train", "sft2", "--model", str(model_dir), "--data", str(data["coa"]), "--out", str(out), "--quiet"]
    )
    assert res.exit_code != 0 and "finished run" in str(res.exception or res.output)


def test_sft1_logs_pair_metrics(tokenizer, tmp_path):
    data = write_data(tmp_path / "data")
    model_dir = write_model(tokenizer, tmp_path / "init")
    cfg = ContrastiveConfig(**FAST, lr=1e-2, batch_size=2, max_steps=4)
    summary = train_sft("sft1", model_dir, data["pairs"], tmp_path / "sft1", cfg, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "sft1" / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "loss" in r]
    assert len(logged) == 4
    for key in ("logps/chosen", "logps/rejected", "rewards/margins", "rewards/accuracies", "nll_loss"):
        assert key in logged[0], key
    assert logged[-1]["rewards/margins"] > logged[0]["rewards/margins"]
    assert summary["last"]["rewards/accuracies"] >= 0.5
    c = summary["collapse"]  # the collapse monitor reads the same logs (4 logs: windows of 2)
    assert c["chosen_first"] == pytest.approx(sum(r["logps/chosen"] for r in logged[:2]) / 2, abs=1e-3)
    assert c["rejected_last"] == pytest.approx(sum(r["logps/rejected"] for r in logged[-2:]) / 2, abs=1e-3)
    assert c["collapsed"] == (
        c["chosen_last"] < c["chosen_first"] - 0.02 and c["rejected_last"] < c["rejected_first"] - 0.02
    )


def test_contrastive_collapse_monitor():
    from autocoa.train.contrastive import contrastive_collapse

    def logs(chosen, rejected):
        return [{"logps/chosen": c, "logps/rejected": r} for c, r in zip(chosen, rejected, strict=True)]

    # both sink while the margin grows: collapsed
    assert contrastive_collapse(logs([-1, -1, -1, -2, -2, -2], [-1, -1, -1, -4, -4, -4]))["collapsed"]
    # chosen rises: healthy, however far rejected falls
    assert not contrastive_collapse(logs([-2, -2, -2, -1, -1, -1], [-1, -1, -1, -5, -5, -5]))["collapsed"]
    # a fall inside the tolerance is noise
    assert not contrastive_collapse(logs([-1, -1.01], [-1, -1.01]), window=1)["collapsed"]
    assert contrastive_collapse([{"loss": 1.0}]) is None
    import doctest

    from autocoa.train import contrastive

    assert doctest.run_docstring_examples is not None
    result = doctest.testmod(contrastive)
    assert result.attempted > 0 and result.failed == 0


def test_unfinished_run_with_other_inputs_is_refused(tokenizer, tmp_path):
    data = write_data(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"stage": "sft2", "data": {}}))
    (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").write_text("{}")
    with pytest.raises(RunMismatchError, match="different"):
        train_sft("sft2", tmp_path / "nomodel", data["coa"], out, progress=False)


def test_a_bad_row_fails_before_overwrite_deletes_and_a_failed_start_does_not_block(tokenizer, tmp_path):
    data = write_data(tmp_path / "data")
    model_dir = write_model(tokenizer, tmp_path / "init")
    cfg = MaskedSFTConfig(**FAST, batch_size=4, max_steps=2, cot_ratio=0.0)
    out = tmp_path / "out"
    train_sft("sft2", model_dir, data["coa"], out, cfg, progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(data["coa"].read_text() + '{"question": "q", "segments": [{"kind": "nope", "text": "x"}]}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:5: segments"):
        train_sft("sft2", model_dir, bad, out, cfg, overwrite=True, progress=False)
    assert (out / "DONE").exists() and (out / "model.safetensors").exists()  # the finished run is untouched
    # a start that failed on its data leaves a run.json, which does not block the corrected re-run
    out2 = tmp_path / "out2"
    with pytest.raises(DataError):
        train_sft("sft2", model_dir, bad, out2, cfg, progress=False)
    assert train_sft("sft2", model_dir, data["coa"], out2, cfg, progress=False)["steps"] == 2


def test_incomplete_checkpoint_is_skipped(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        d = tmp_path / "checkpoints" / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "trainer_state.json").write_text("{}" if complete else '{"global_st')
    assert last_checkpoint(tmp_path).name == "checkpoint-4"


def test_config_errors_name_file_and_field(tmp_path):
    bad = config_yaml(tmp_path / "s2.yaml", lr=-1, cot_ratio=0.2)
    with pytest.raises(ConfigError, match=r"s2\.yaml.*lr"):
        MaskedSFTConfig.load(bad)
    extra = config_yaml(tmp_path / "s1.yaml", cot_ratio=0.2)
    with pytest.raises(ConfigError, match=r"s1\.yaml.*cot_ratio"):
        ContrastiveConfig.load(extra)
    res = CliRunner().invoke(
        app, ["train", "sft1", "--model", "m", "--data", "d", "--out", str(tmp_path / "o"), "--config", str(extra)]
    )
    assert res.exit_code != 0 and "cot_ratio" in str(res.exception)
    for cls in (MaskedSFTConfig, ContrastiveConfig):
        assert all(f.description for f in cls.model_fields.values())


def test_trim_jsonl_keeps_rows_and_drops_a_torn_line(tmp_path):
    from autocoa.jsonl import trim_jsonl

    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4, "lo')
    trim_jsonl(path, lambda r: r["step"] <= 2)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
    trim_jsonl(tmp_path / "missing.jsonl", lambda r: True)  # nothing to trim


def test_lora_trains_adapters_and_tag_rows_and_saves_a_plain_checkpoint(tokenizer, tmp_path):
    from autocoa.models import load_model
    from autocoa.trajectory import check_tags

    data = write_data(tmp_path / "data")
    model_dir = write_model(tokenizer, tmp_path / "init")
    out = tmp_path / "lora"
    cfg = MaskedSFTConfig(**FAST, lr=1e-2, batch_size=4, max_steps=4, save_steps=2, cot_ratio=0.0, lora_rank=4)
    summary = train_sft("sft2", model_dir, data["coa"], out, cfg, progress=False)
    assert summary["steps"] == 4 and not (out / "adapter_config.json").exists()  # merged: a plain checkpoint
    before, _ = load_model(model_dir, device="cpu")
    after, _ = load_model(out, device="cpu")
    b, a = dict(before.named_parameters()), dict(after.named_parameters())
    assert set(b) == set(a)
    assert not torch.equal(b["model.layers.0.self_attn.q_proj.weight"], a["model.layers.0.self_attn.q_proj.weight"])
    emb_b, emb_a = b["model.embed_tokens.weight"], a["model.embed_tokens.weight"]
    tags = sorted(check_tags(tokenizer).values())
    others = [i for i in range(emb_b.shape[0]) if i not in tags]
    assert torch.equal(emb_b[others], emb_a[others])  # only the tags' rows of the embedding train
    assert not torch.equal(emb_b[tags], emb_a[tags])


def test_lora_refuses_weight_decay():
    with pytest.raises(ValueError, match="decay"):
        MaskedSFTConfig(lora_rank=4, weight_decay=0.1)


def test_a_stage_shows_its_steps_and_loss_on_the_live_display(tokenizer, tmp_path):
    import io

    from rich.console import Console

    from autocoa.progress import live, live_display, progress_bar

    data = write_data(tmp_path / "data")
    model_dir = write_model(tokenizer, tmp_path / "init")
    display = live_display(Console(file=io.StringIO(), force_terminal=True))
    seen = []
    update = display.update
    display.update = lambda task, **kw: (seen.append(kw), update(task, **kw))[1]
    with display, live(display):
        cfg = MaskedSFTConfig(**FAST, batch_size=2, max_steps=3, save_steps=100, cot_ratio=0.0)
        train_sft("sft2", model_dir, data["coa"], tmp_path / "sft2", cfg, progress=False)
        assert not display.tasks  # the stage's bar is gone when it ends
        with progress_bar(2, "eval agent", disable=True) as bar:  # evaluation joins the display too
            bar.update(2)
            assert [t.completed for t in display.tasks] == [2]
    assert [kw["completed"] for kw in seen if "completed" in kw] == [1, 2, 3]
    assert any("loss" in kw.get("description", "") for kw in seen)


def test_checkpoints_fall_on_metric_lines():
    """transformers averages a logged loss over the steps since this process's last line: a run
    resumed from a checkpoint between two lines would log another loss."""
    from autocoa.train.stage_config import MaskedSFTConfig

    assert MaskedSFTConfig(save_steps=40, logging_steps=10).save_steps == 40
    with pytest.raises(ValueError, match="multiple of logging_steps"):
        MaskedSFTConfig(save_steps=15, logging_steps=10)


def test_trim_metrics_drops_lines_after_the_checkpoint_and_the_end_of_training_line(tmp_path):
    from autocoa.train.checkpoints import trim_metrics

    log = tmp_path / "metrics.jsonl"
    rows = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 2, "train_runtime": 3.0}, {"step": 3}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "lo')
    trim_metrics(log, tmp_path / "checkpoint-2")
    assert [json.loads(x) for x in log.read_text().splitlines()] == rows[:2]


def test_a_resumed_run_continues_trls_token_count_from_its_checkpoint_line(tmp_path):
    from types import SimpleNamespace

    from autocoa.train.sft import restore_token_count

    log = tmp_path / "metrics.jsonl"
    rows = [{"step": 2, "num_tokens": 300.0}, {"step": 4, "num_tokens": 610.0}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    trainer = SimpleNamespace(_total_train_tokens=0)
    restore_token_count(trainer, log, None)  # a fresh start counts from 0
    assert trainer._total_train_tokens == 0
    restore_token_count(trainer, log, tmp_path / "checkpoint-4")
    assert trainer._total_train_tokens == 610


def test_batches_by_length_draw_rows_of_similar_length(tokenizer, tmp_path):
    """``batches: by_length`` (the default preset's SFT-2/3): every row is still drawn once an
    epoch, with far less padding than random batches of rows from 1 to 40 tokens."""
    import random

    rng = random.Random(0)
    examples = [{"input_ids": [5] * n, "labels": [5] * n} for n in (rng.randint(1, 40) for _ in range(128))]

    def padding(batches: str) -> tuple[float, list[int]]:
        cfg = MaskedSFTConfig(**{**FAST, "batch_size": 8, "batches": batches})
        trainer = build_sft_trainer(tiny_llama(tokenizer), tokenizer, examples, cfg, tmp_path / batches, progress=False)
        sizes, real, padded = [], 0, 0
        for batch in trainer.get_train_dataloader():
            mask = batch["attention_mask"]
            real, padded = real + int(mask.sum()), padded + mask.numel()
            sizes += mask.sum(dim=1).tolist()
        return padded / real, sorted(sizes)

    random_pad, random_rows = padding("random")
    length_pad, length_rows = padding("by_length")
    assert random_rows == length_rows == sorted(len(e["input_ids"]) for e in examples)  # each row once
    assert random_pad > 1.5 and length_pad < 1.3, (random_pad, length_pad)  # measured 1.73, 1.19
