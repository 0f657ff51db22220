"""Token credit: spans, steps and turns placed on tokens through character offsets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.core.types import TokenScores
from rewardlab.credit import tokens
from rewardlab.credit.steps import segment

OFFSETS = [(0, 3), (3, 5), (5, 9), (9, 9), (9, 12)]
SPANS = [(0, 5), (5, 12)]


def test_placements_by_hand() -> None:
    last = tokens.spans_to_tokens(OFFSETS, SPANS, [0.2, 0.8])
    assert last.values.tolist() == [0.0, 0.2, 0.0, 0.0, 0.8]
    assert last.mask.tolist() == [True, True, True, False, True]  # the empty token belongs to no step
    assert tokens.spans_to_tokens(OFFSETS, SPANS, [0.2, 0.8], place="all").values.tolist() == [
        0.2, 0.2, 0.8, 0.0, 0.8]
    spread = tokens.spans_to_tokens(OFFSETS, SPANS, [0.2, 0.8], place="spread")
    assert spread.values.tolist() == pytest.approx([0.1, 0.1, 0.4, 0.0, 0.4])
    assert spread.values.sum() == pytest.approx(1.0)


def test_trainer_mask_and_unplaced_spans() -> None:
    out = tokens.spans_to_tokens(OFFSETS, SPANS, [0.2, 0.8], mask=[1, 1, 0, 0, 0])
    assert out.values.tolist() == [0.0, 0.2, 0.0, 0.0, 0.0]
    assert out.unplaced == [1]  # the second span's tokens are all masked: reported, not lost silently
    with pytest.raises(ValueError, match="3 values for 2 spans"):
        tokens.spans_to_tokens(OFFSETS, SPANS, [1, 2, 3])
    with pytest.raises(ValueError, match="not overlap"):
        tokens.spans_to_tokens(OFFSETS, [(0, 5), (4, 9)], [1, 2])
    with pytest.raises(ValueError, match="not finite"):
        tokens.spans_to_tokens(OFFSETS, SPANS, [1.0, float("nan")])


def test_turns_from_the_response_mask() -> None:
    mask = [1, 1, 0, 0, 1, 1, 1, 0, 1]
    assert tokens.turn_runs(mask) == [(0, 2), (4, 7), (8, 9)]
    out = tokens.turns_to_tokens([0.5, -1.0, 2.0], mask)
    assert out.values.tolist() == [0.5, 0.5, 0, 0, -1, -1, -1, 0, 2]
    assert out.mask.tolist() == [bool(m) for m in mask]  # tool outputs get no credit
    assert tokens.turns_to_tokens([0.5, -1.0, 2.0], mask, place="last").values.tolist() == [
        0, 0.5, 0, 0, 0, 0, -1, 0, 2]
    with pytest.raises(ValueError, match="2 turn values but the mask has 3 turns"):
        tokens.turns_to_tokens([1, 2], mask)


def test_reproject_keeps_the_sum() -> None:
    src = TokenScores(tokenizer="a", values=[1.0, 2.0, 3.0], offsets=[(0, 2), (2, 4), (4, 6)])
    out = tokens.reproject(src, [(0, 3), (3, 6)])
    assert out.values.tolist() == [1.0, 5.0] and out.unplaced == []
    # byte-level targets: two tokens share the character 3 (a split multi-byte character)
    split = tokens.reproject(src, [(0, 3), (3, 4), (3, 4), (4, 6)])
    assert split.values.sum() == pytest.approx(6.0) and split.unplaced == []
    with pytest.raises(ValueError, match="no character offsets"):
        tokens.reproject(TokenScores(tokenizer="a", values=[1.0]), [(0, 1)])


def test_pad() -> None:
    a = tokens.spans_to_tokens([(0, 1), (1, 2)], [(0, 2)], [1.0])
    b = tokens.spans_to_tokens([(0, 1)], [(0, 1)], [3.0])
    vals, mask = tokens.pad([a, b])
    assert vals.tolist() == [[0.0, 1.0], [3.0, 0.0]] and mask.tolist() == [[True, True], [True, False]]
    vals, mask = tokens.pad([b], 3, side="left")
    assert vals.tolist() == [[0.0, 0.0, 3.0]] and mask.tolist() == [[False, False, True]]
    with pytest.raises(ValueError, match="more than the length"):
        tokens.pad([a], 1)


def test_steps_on_a_real_tokenizer() -> None:
    transformers = pytest.importorskip("transformers")
    from rewardlab.models._hf import bundled_embedding_model

    try:
        tok = transformers.AutoTokenizer.from_pretrained(bundled_embedding_model(), local_files_only=True)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    text = "First, 12 apples.\n\nThen we eat 5 of them.\n\nSo 7 are left."
    offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    out = tokens.steps_to_tokens(text, offsets, [0.1, 0.2, 0.3], place="all")
    parts = segment(text)
    for (a, _), v, m in zip(offsets, out.values, out.mask, strict=True):
        assert m
        step = next(i for i, s in enumerate(parts) if s.start <= a < s.end)
        assert v == [0.1, 0.2, 0.3][step]
    last = tokens.steps_to_tokens(text, offsets, [0.1, 0.2, 0.3])
    placed = np.flatnonzero(last.values)
    assert [offsets[i][1] for i in placed] == [len("First, 12 apples."), text.index("\n\nSo") , len(text)]
    with pytest.raises(ValueError, match="2 step values but the text has 3 steps"):
        tokens.steps_to_tokens(text, offsets, [0.1, 0.2])


@st.composite
def stepped_text(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]]]:
    pieces = draw(st.lists(st.text(alphabet="ab c.\n", min_size=1, max_size=12).filter(str.strip),
                           min_size=1, max_size=8))
    text = "\n\n".join(pieces)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=len(text)))))
    bounds = [0, *[c for c in cuts if 0 < c < len(text)], len(text)]
    return text, list(zip(bounds, bounds[1:], strict=False))


@settings(max_examples=200, deadline=None)
@given(stepped_text())
def test_every_step_reward_lands_on_tokens_of_that_step(case: tuple[str, list[tuple[int, int]]]) -> None:
    text, offsets = case
    parts = segment(text)
    values = [float(i + 1) for i in range(len(parts))]  # distinct, non-zero
    size = [sum(1 for o in offsets if s.start <= o[0] < s.end) for s in parts]  # tokens per step
    for place in ("last", "all", "spread"):
        out = tokens.steps_to_tokens(text, offsets, values, place=place)  # type: ignore[arg-type]
        for (a, _), v in zip(offsets, out.values, strict=True):
            if v:
                step = next(i for i, s in enumerate(parts) if s.start <= a < s.end)
                assert v == pytest.approx(values[step] / (size[step] if place == "spread" else 1))
        assert out.unplaced == [i for i, k in enumerate(size) if k == 0]
        want = sum(v * (k if place == "all" else 1) for v, k in zip(values, size, strict=True) if k)
        assert out.values.sum() == pytest.approx(want)
