"""The SQLite cache: re-scoring is free, a parameter change is a new key, errors are retried."""

from __future__ import annotations

from pathlib import Path

import rewardlab as rl
from rewardlab import Sample, Score, Status, reward
from rewardlab.runtime.cache import ScoreCache, sample_hash

SEEN: list[str] = []


@reward(kind="model", register=False, range=(0, 100))
def counted(samples: list[Sample], *, scale: float = 1.0) -> list[float | Score]:
    """len(response) * scale, or an error for "fail"; remembers what it computed."""
    out: list[float | Score] = []
    for s in samples:
        SEEN.append(s.response_text)
        out.append(Score.error("flaky") if s.response_text == "fail" else len(s.response_text) * scale)
    return out


def test_rescoring_hits_the_cache_and_params_change_the_key(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    samples = [Sample(response="ab"), Sample(response="abc"), Sample(response="fail")]
    SEEN.clear()
    with rl.Runtime(cache=db) as rt:
        first = rl.score(samples, counted(), runtime=rt)
        assert SEEN == ["ab", "abc", "fail"]
        second = rl.score(samples, counted(), runtime=rt)
        assert SEEN == ["ab", "abc", "fail", "fail"]  # only the error is recomputed
        assert [s.value for s in second[:2]] == [s.value for s in first[:2]] == [2.0, 3.0]
        assert second[2].status is Status.error
        assert rt.stats.cache_hits == 2
        rl.score(samples[:1], counted(scale=2.0), runtime=rt)
        assert SEEN[-1] == "ab"
    # a new process / runtime reads the same store
    with rl.Runtime(cache=db) as rt:
        rl.score(samples[:2], counted(), runtime=rt)
        assert rt.stats.cache_hits == 2 and rt.stats.computed == 0
    assert len(ScoreCache(db)) == 3


def test_sample_hash_ignores_id_but_not_content() -> None:
    a = Sample(id="1", prompt="p", response="r")
    assert sample_hash(a) == sample_hash(a.model_copy(update={"id": "2"}))
    assert sample_hash(a) != sample_hash(a.model_copy(update={"response": "r2"}))
    assert sample_hash(a) != sample_hash(a.model_copy(update={"metadata": {"k": 1}}))
