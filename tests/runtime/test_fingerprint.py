"""The cache never returns another function's scores: fingerprints cover a reward's identity and
code, sample hashes are total and typed, and an unusable cache file is reported and skipped."""

from __future__ import annotations

import importlib
import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import rewardlab as rl
from rewardlab import Sample
from rewardlab.core.registry import registry
from rewardlab.runtime.cache import ScoreCache, UnhashableSample, sample_hash
from rewardlab.runtime.engine import CacheWarning

ROOT = Path(__file__).resolve().parents[2]


def _module(root: Path, name: str, body: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(body))
    importlib.invalidate_caches()


def _values(scores: list[rl.Score]) -> list[float | None]:
    return [s.value for s in scores]


SAMPLES = [Sample(response="abc"), Sample(response="abcdef")]


def test_same_name_in_two_modules_never_shares_cache_entries(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _module(tmp_path, "fp_team_a", """
        def score(response_text: str) -> float:
            return len(response_text) / 10
    """)
    _module(tmp_path, "fp_team_b", """
        def score(response_text: str) -> float:
            return 1.0 - len(response_text) / 10
    """)
    a, b = registry.get("fp_team_a:score")(), registry.get("fp_team_b:score")()
    assert a.fingerprint != b.fingerprint
    cache = tmp_path / "scores.db"
    assert _values(rl.score(SAMPLES, a, cache=cache)) == [0.3, 0.6]
    with rl.Runtime(cache=cache) as rt:
        assert _values(rl.score(SAMPLES, b, runtime=rt)) == [0.7, 0.4]
        assert rt.stats.cache_hits == 0


def test_editing_a_body_gives_a_new_fingerprint_and_fresh_scores(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    source = """
        def helper(n: int) -> float:
            return n / 10

        def score(response_text: str) -> float:
            return helper(len(response_text))
    """
    _module(tmp_path, "fp_edited", source)
    import fp_edited  # type: ignore[import-not-found]

    before = registry.get("fp_edited:score")()
    cache = tmp_path / "scores.db"
    assert _values(rl.score(SAMPLES, before, cache=cache)) == [0.3, 0.6]

    importlib.reload(fp_edited)  # unchanged code: the same fingerprint, cached scores reused
    same = registry.get("fp_edited:score")()
    assert same.fingerprint == before.fingerprint
    with rl.Runtime(cache=cache) as rt:
        assert _values(rl.score(SAMPLES, same, runtime=rt)) == [0.3, 0.6]
        assert rt.stats.cache_hits == 2

    _module(tmp_path, "fp_edited", source.replace("return n / 10", "return n / 20"))
    importlib.reload(fp_edited)  # only the helper it calls changed
    edited = registry.get("fp_edited:score")()
    assert edited.fingerprint != before.fingerprint
    with rl.Runtime(cache=cache) as rt:
        assert _values(rl.score(SAMPLES, edited, runtime=rt)) == [0.15, 0.3]
        assert rt.stats.cache_hits == 0

    _module(tmp_path, "fp_edited", source.replace("len(response_text)", "len(response_text) + 1"))
    importlib.reload(fp_edited)
    assert registry.get("fp_edited:score")().fingerprint not in {before.fingerprint,
                                                                 edited.fingerprint}


def test_constants_closures_and_defaults_are_part_of_the_code() -> None:
    def make(threshold: float):  # factory-made rewards differ by what they close over
        def above(response_text: str) -> float:
            return float(len(response_text) > threshold)
        return rl.reward(above, register=False)

    assert make(3)().fingerprint != make(4)().fingerprint
    assert make(3)().fingerprint == make(3)().fingerprint

    def one(response_text: str) -> float:
        return float(response_text in {"yes", "y"})

    def other(response_text: str) -> float:
        return float(response_text in {"yes", "ok"})

    other.__name__ = other.__qualname__ = one.__qualname__  # same identity, other constants
    fa = rl.reward(one, register=False)().fingerprint
    fb = rl.reward(other, register=False)().fingerprint
    assert fa != fb


def test_fingerprints_are_stable_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    _module(tmp_path, "fp_stable", """
        import rewardlab as rl

        @rl.reward(register=False)
        def in_set(response_text: str) -> float:
            return float(response_text.strip().lower() in {"yes", "true", "correct", "right"})
    """)
    code = ("import fp_stable, rewardlab as rl; "
            "print(fp_stable.in_set().fingerprint, rl.registry.get('math_answer')().fingerprint, "
            "rl.registry.get('exact_match')().fingerprint)")
    outs = set()
    for seed in ("1", "2", "3"):
        path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(tmp_path)]))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "PYTHONHASHSEED": seed,
                                                "PYTHONPATH": path})
        assert proc.returncode == 0, proc.stderr
        outs.add(proc.stdout)
    assert len(outs) == 1


def test_built_in_fingerprints_are_distinct() -> None:
    prints = {}
    for definition in registry.all():
        try:
            configured = definition()
        except (ValueError, TypeError):  # needs parameters (a model path...)
            continue
        prints[definition.info.name] = configured.fingerprint
    assert len(prints) >= 10
    assert len(set(prints.values())) == len(prints)


# -- sample hashes ------------------------------------------------------------------------------

def test_sample_hash_is_typed_and_total() -> None:
    refs = [b"42", "42", 42, 42.0, True, None, math.nan, [42], (42,), {"v": 42}, bytearray(b"42")]
    hashes = {sample_hash(Sample(response="r", reference=r)) for r in refs}
    assert len(hashes) == len(refs)
    binary = Sample(response="r", reference=b"\xff\xfe\x00 not utf-8")
    assert sample_hash(binary) == sample_hash(Sample(response="r", reference=b"\xff\xfe\x00 not utf-8"))
    assert sample_hash(Sample(metadata={"a": 1, "b": 2})) == sample_hash(Sample(metadata={"b": 2, "a": 1}))
    deep: dict = {}
    node = deep
    for _ in range(5000):  # far beyond any recursion limit
        node["k"] = {}
        node = node["k"]
    assert len(sample_hash(Sample(metadata=deep))) == 32
    np = pytest.importorskip("numpy")
    arrays = [np.arange(3), np.arange(3, dtype=np.float32), np.arange(4)]
    assert len({sample_hash(Sample(reference=a)) for a in arrays}) == 3


def test_unhashable_samples_are_scored_but_not_cached(tmp_path: Path) -> None:
    class Opaque:
        pass

    with pytest.raises(UnhashableSample):
        sample_hash(Sample(response="x", metadata={"obj": Opaque()}))
    rows = [Sample(response="a", reference="a", metadata={"obj": Opaque()}),
            Sample(response="a", reference=b"\xff binary", metadata={"blob": b"\x00\x01"})]
    with rl.Runtime(cache=tmp_path / "scores.db") as rt:
        scores = rl.score(rows, "exact_match", runtime=rt)
        assert [s.status.value for s in scores] == ["ok", "ok"]
        assert len(rt.cache) == 1  # type: ignore[arg-type]


# -- unusable cache files -----------------------------------------------------------------------

def _score_with_cache(path: Path) -> tuple[list[rl.Score], list[str], rl.Runtime]:
    samples = [Sample(response="a", reference="a"), Sample(response="b", reference="a")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rt = rl.Runtime(cache=path)
        with rt:
            scores = rl.score(samples, "exact_match", runtime=rt)
    return scores, [str(w.message) for w in caught if issubclass(w.category, CacheWarning)], rt


def test_corrupt_cache_file_is_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "scores.db"
    path.write_bytes(os.urandom(8192))
    scores, messages, rt = _score_with_cache(path)
    assert _values(scores) == [1.0, 0.0]
    assert len(messages) == 1 and str(path) in messages[0]
    assert "without the cache" in messages[0]
    assert rt.cache is None and rt.cache_error == messages[0]


def test_truncated_cache_file_is_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "scores.db"
    cache = ScoreCache(path)
    many = [Sample(response=f"r{i}" * 50, reference="x") for i in range(3000)]
    rl.score(many, "exact_match", runtime=rl.Runtime(cache=cache))
    cache.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    data = path.read_bytes()
    assert len(data) > 20000
    path.write_bytes(data[:100] + data[100:len(data) // 3])  # the header kept, pages cut off
    scores, messages, _ = _score_with_cache(path)
    assert _values(scores) == [1.0, 0.0]
    assert len(messages) == 1 and str(path) in messages[0]


def test_cache_path_that_cannot_be_a_file_is_reported_and_skipped(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for path in (blocker / "scores.db", tmp_path):  # under a file; a directory
        scores, messages, _ = _score_with_cache(path)
        assert _values(scores) == [1.0, 0.0]
        assert len(messages) == 1 and str(path) in messages[0]


def test_cache_file_damaged_during_a_run_is_dropped_with_one_message(tmp_path: Path) -> None:
    path = tmp_path / "scores.db"
    samples = [Sample(response=f"{i}", reference="1") for i in range(5)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with rl.Runtime(cache=path) as rt:
            first = rl.score(samples, "exact_match", runtime=rt)
            rt.cache.close()  # type: ignore[union-attr]
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            path.mkdir()  # the file is gone and nothing can be opened there
            second = rl.score(samples, "math_answer", runtime=rt)
            third = rl.score(samples, "exact_match", runtime=rt)
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(messages) == 1 and str(path) in messages[0]
    assert _values(first) == _values(third) == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert len(second) == 5 and rt.cache is None


def test_cli_says_the_cache_is_unusable_and_scores_without_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rewardlab.cli import app

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "p", "response": "a", "reference": "a"}\n')
    cache = tmp_path / "broken.db"
    cache.write_bytes(os.urandom(4096))
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["score", str(rows), "-r", "exact_match", "-o", str(out),
                                      "--cache", str(cache), "-q"])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "broken.db" in result.output
    assert "continuing without the cache" in result.output
    assert "Traceback" not in result.output
    assert '"reward":1.0' in out.read_text().replace(" ", "")
