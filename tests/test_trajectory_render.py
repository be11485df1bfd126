"""render(): the one loss-mask rule, and ids equal to a one-shot tokenization."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autocoa.tags import Kind
from autocoa.trajectory import (
    Segment,
    Trajectory,
    action,
    answer,
    check_tags,
    is_trained,
    observation,
    parse,
    render,
    render_pieces,
    think,
)

T = Trajectory(
    "Question: Where was Rotema Kesh born?\n",
    (
        think("I need Rotema Kesh"),
        action("search", "Rotema Kesh born"),
        observation("Doc 1 (Title: Rotema Kesh) born in Varnelo"),
        Segment(Kind.TEXT, "\n"),
        answer("Varnelo"),
    ),
)


def test_rule():
    assert not is_trained(Kind.PROMPT, True) and not is_trained(Kind.PROMPT, False)
    assert not is_trained(Kind.OBSERVATION, True) and is_trained(Kind.OBSERVATION, False)
    for k in (Kind.THINK, Kind.ACTION, Kind.ANSWER, Kind.TEXT):
        assert is_trained(k, True) and is_trained(k, False)


def test_mask_spans_by_hand(tokenizer):
    ids, mask = render(T, tokenizer, mask_observations=True)
    n_prompt = len(tokenizer(T.prompt)["input_ids"])
    obs = ["<result>", *tokenizer.tokenize("Doc 1 (Title: Rotema Kesh) born in Varnelo"), "</result>"]
    toks = tokenizer.convert_ids_to_tokens(ids)
    start = toks.index("<result>")
    end = toks.index("</result>") + 1
    assert end - start == len(obs)
    assert mask[:n_prompt] == [0] * n_prompt
    assert mask[start:end] == [0] * (end - start)
    assert all(m == 1 for i, m in enumerate(mask) if i >= n_prompt and not start <= i < end)
    ids3, mask3 = render(T, tokenizer, mask_observations=False)
    assert ids3 == ids
    assert mask3[start:end] == [1] * (end - start) and mask3[:n_prompt] == [0] * n_prompt


def test_tags_are_single_non_special_tokens(tokenizer):
    tag_ids = check_tags(tokenizer)
    assert len(set(tag_ids.values())) == len(tag_ids)
    ids, _ = render(T, tokenizer)
    assert tokenizer.decode(ids, skip_special_tokens=True) == T.text  # decoding keeps the tags


def test_a_finished_turn_ends_with_a_trained_end_of_turn_token(tokenizer):
    ids, mask = render(T, tokenizer)
    assert ids[-1] == tokenizer.eos_token_id and mask[-1] == 1
    assert ids[-2] == tokenizer.convert_tokens_to_ids("</answer>")
    # an unfinished response (no closed answer last) gets none
    for segs in (T.segments[:3], (*T.segments[:4], Segment(Kind.ANSWER, "Var", closed=False))):
        ids, _ = render(Trajectory(T.prompt, segs), tokenizer)
        assert tokenizer.eos_token_id not in ids
    # trailing blank text still ends the turn
    assert Trajectory(T.prompt, (*T.segments, Segment(Kind.TEXT, "\n"))).ends_turn


def test_check_tags_rejects_a_tokenizer_without_tags():
    from autocoa.tags import Tags
    from autocoa.tokenizer import train_tokenizer

    tok = train_tokenizer(["plain text only"] * 5, vocab_size=300, min_frequency=1, tags=Tags(actions=("lookup",)))
    with pytest.raises(ValueError, match="<search>"):
        check_tags(tok)


inner = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="<"), max_size=15)
segment = st.one_of(
    inner.map(think),
    st.tuples(st.sampled_from(["search", "calculate"]), inner).map(lambda p: action(*p)),
    inner.map(observation),
    inner.map(answer),
    st.sampled_from([" ", "\n", "x y"]).map(lambda s: Segment(Kind.TEXT, s)),
)


@st.composite
def trajectories(draw):
    segs = draw(st.lists(segment, max_size=8))
    # parse would merge adjacent text segments, so keep at most one in a row
    segs = [s for i, s in enumerate(segs) if not (s.kind is Kind.TEXT and i and segs[i - 1].kind is Kind.TEXT)]
    prompt = draw(st.sampled_from(["", "Q: where?\n", "Question: é 漢\n"]))
    return Trajectory(prompt, tuple(segs))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trajectories(), st.booleans())
def test_render_properties(tokenizer, t, mask_obs):
    ids, mask = render(t, tokenizer, mask_observations=mask_obs)
    assert len(ids) == len(mask)
    # ids equal a one-shot tokenization of the response (prompt tokenized alone, as in the agent loop)
    prompt_ids = tokenizer(t.prompt)["input_ids"] if t.prompt else []
    eot = [tokenizer.eos_token_id] if t.ends_turn else []  # a finished turn ends as its chat template does
    assert ids == prompt_ids + tokenizer(t.response, add_special_tokens=False)["input_ids"] + eot
    # the mask is 0 exactly on the prompt and (when masked) on observation spans
    expected = []
    for piece, kind in render_pieces(t, tokenizer):
        masked = kind is Kind.PROMPT or (mask_obs and kind is Kind.OBSERVATION)
        expected += [0 if masked else 1] * len(piece)
    assert mask == expected
    assert sum(mask) == len(ids) - len(prompt_ids) - (
        sum(len(p) for p, k in render_pieces(t, tokenizer) if k is Kind.OBSERVATION) if mask_obs else 0
    )
    # and decoding the ids gives back the text, which parses to the same trajectory
    assert parse(tokenizer.decode(ids[len(prompt_ids) :], skip_special_tokens=True), prompt=t.prompt) == t
