"""The engine's ``on_step`` seam and :class:`TokenStream`: streamed text is exactly the
response, arrives in several steps, keeps segment kinds apart and never splits a character."""

from __future__ import annotations

from autocoa.agent.config import AgentConfig
from autocoa.agent.state import Rollout
from autocoa.serve.stream import TokenStream
from autocoa.tags import Kind
from tests.agent_helpers import FakeSearch
from tests.serve_helpers import echo_engine

PROMPTS = ["Question: Where is Varnelo?\n", "Question: Who founded Osmira?\n"]


def test_on_step_streams_every_token_by_kind(tokenizer):
    eng = echo_engine(tokenizer, [FakeSearch()])
    stream = TokenStream(eng.decode)
    got: dict[int, list[tuple[Kind, str]]] = {0: [], 1: []}
    steps = []

    def on_step(rollouts: list[Rollout]) -> None:
        steps.append({r.index: len(r.ids) for r in rollouts})
        for i, pieces in stream.update(rollouts).items():
            got[i] += pieces

    rollouts = eng.generate(PROMPTS, AgentConfig(), on_step=on_step)
    plain = eng.generate(PROMPTS, AgentConfig())
    assert [r.ids for r in rollouts] == [r.ids for r in plain]  # the callback changes nothing
    assert len(steps) > 10
    for r in rollouts:  # every rollout is seen in the step it finished (it may leave the batch after)
        assert any(step.get(r.index) == len(r.ids) for step in steps)
    for r in rollouts:
        pieces = got[r.index]
        assert "".join(t for _, t in pieces) == eng.decode(r.ids) == r.trajectory.response
        # pieces come in order of kind runs; the observation arrived whole in one step
        kinds = [k for k, _ in pieces]
        assert kinds[0] is Kind.THINK and kinds[-1] is Kind.ANSWER
        obs = [t for k, t in pieces if k is Kind.OBSERVATION]
        assert len(obs) == 1 and obs[0].startswith("<result>") and obs[0].endswith("</result>")
        assert sum(1 for k, _ in pieces if k is Kind.THINK) > 3  # token by token, not at the end
    assert [r.trajectory.answer for r in rollouts] == ["Varnelo", "Osmira"]


def test_incomplete_utf8_is_held_back_and_prefix_skipped():
    text = "aé漢b"
    data = list(text.encode())

    def decode(ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    stream = TokenStream(decode, skip={0: 1})  # the first byte is a replayed prefix
    r = Rollout(index=0, prompt="", prompt_ids=[1])
    shown = []
    for i, b in enumerate(data):
        r.ids.append(b)
        r.kinds.append(Kind.THINK if i < 3 else Kind.ANSWER)
        if i == len(data) - 1:
            r.finish = "answer"
        for pieces in stream.update([r]).values():
            shown += pieces
    assert all("\ufffd" not in t for _, t in shown)
    assert "".join(t for _, t in shown) == text[1:]
    assert [k for k, _ in shown if k is Kind.ANSWER] and stream.update([r]) == {}


def test_left_context_keeps_spaces_of_sentencepiece_style_decoders():
    vocab = ["▁the", "▁city", "▁of", "▁Osmira"]

    def decode(ids: list[int]) -> str:  # like SentencePiece: a leading space is dropped
        return "".join(vocab[i] for i in ids).replace("▁", " ").lstrip()

    stream = TokenStream(decode)
    r = Rollout(index=0, prompt="", prompt_ids=[1])
    shown = ""
    for i, kind in enumerate([Kind.THINK, Kind.THINK, Kind.ANSWER, Kind.ANSWER]):
        r.ids.append(i)
        r.kinds.append(kind)
        shown += "".join(t for _, t in stream.update([r]).get(0, []))
    assert shown == decode(r.ids) == "the city of Osmira"
