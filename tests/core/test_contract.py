"""The reward contract, checked over every reward rewardlab ships (`rewardlab.registry.all()`,
less rewards that test modules register, whose presence depends on collection order):

- the meaning line (the docstring's first line, shown by `rewardlab list`) is one sentence that
  says something about the score: its range or values, or which way is better;
- the declared range is a (lo, hi) pair with lo <= hi, and `direction` is higher or lower;
- configured with defaults (or, where parameters are required, with the small valid table
  `PARAMS` below), the fingerprint is the same for two configurations, in a fresh interpreter
  with another hash seed, and after a pickle round trip;
- `rewardlab.score` and `rewardlab.ascore` give the same statuses and values on two tiny
  samples (`SAMPLES`). Judges are asked a local scripted endpoint (`tests.models.fake_openai`),
  `remote` a `rewardlab serve` started for it;
  model rewards run with the bundled SmolLM2 or a tiny randomly initialised classifier, in the
  slow suite; `embedding_rm`, which needs a model trained by ``rewardlab train embedding-rm``,
  is skipped there, saying so.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import rewardlab
from rewardlab import Sample, Score
from rewardlab.core.reward import Reward, RewardDef
from rewardlab.runtime.current import current_runtime
from tests.conftest import SHARED_DATA

SMOLLM = "bundled:SmolLM2-135M-Instruct"
UNUSED_ENDPOINT = "http://127.0.0.1:9/v1"  # configuration only: never contacted
STORE = SHARED_DATA / "sql" / "spider_department_store" / "department_store.sqlite"


def shipped() -> list[RewardDef]:
    return [d for d in rewardlab.registry.all() if d.fn.__module__.startswith("rewardlab.")]


NAMES = [d.info.name for d in shipped()]
LOADED_AT = time.time()  # every shipped reward's module is imported by now
MODEL = {d.info.name for d in shipped() if d.info.kind == "model"}

# Valid parameters for rewards that require some (or that need a resource to run). "{model_dir}"
# is a directory holding a model's config (configuration fingerprints the files it finds).
PARAMS: dict[str, dict[str, Any]] = {
    "regex_match": {"pattern": r"\b42\b"},
    "json_schema": {"schema": {"type": "object", "required": ["answer"],
                               "properties": {"answer": {"type": "integer"}}}},
    **{name: {"db_path": str(STORE)} for name in
       ("sql_execution", "sql_partial", "sql_schema_linking", "sql_syntax")},
    **{name: {"model": "judge-model", "base_url": UNUSED_ENDPOINT} for name in
       ("judge_score", "judge_pairwise", "judge_rubric", "judge_principles")},
    "implicit_dpo": {"policy": SMOLLM, "ref": SMOLLM},
    "implicit_prm": {"policy": SMOLLM, "ref": SMOLLM},
    "simpo_likelihood": {"policy": SMOLLM},
    "self_certainty": {"policy": SMOLLM},
    "classifier_rm": {"path": "{model_dir}"},
    "embedding_rm": {"path": "{model_dir}"},
    "remote": {"url": "http://127.0.0.1:9"},  # configuration only; scoring asks a server it starts
}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("model")
    (d / "config.json").write_text(json.dumps({"model_type": "bert", "num_labels": 1}))
    return d


def params_of(name: str, model_dir: Path) -> dict[str, Any]:
    params = PARAMS.get(name, {})
    return {k: (str(model_dir) if v == "{model_dir}" else v) for k, v in params.items()}


def configure(name: str, model_dir: Path) -> Reward:
    d = rewardlab.registry.get(name)
    params = params_of(name, model_dir)
    if any(k.startswith("db_") for k in params) and not STORE.exists():
        pytest.skip(f"the Spider database is not at {STORE}")
    return d(**params)


def test_every_reward_needing_parameters_has_them_in_the_table() -> None:
    for d in shipped():
        assert d.required <= set(PARAMS.get(d.info.name, {})), (d.info.name, sorted(d.required))
    assert set(PARAMS) <= set(NAMES), sorted(set(PARAMS) - set(NAMES))


# -- what the score means -------------------------------------------------------------------------
SAYS_VALUES = re.compile(r"\[\s*-?(?:\d|inf)|\(\s*-?(?:\d|inf)|\b[01] if\b|\bat (?:most|least) "
                         r"-?\d|\b(?:logit|probability|fraction|share)\b", re.IGNORECASE)
SAYS_DIRECTION = re.compile(r"\b(?:higher|lower)\b[^.;]*\b(?:better|worse|surer)\b|"
                            r"\bhigher (?:=|means)", re.IGNORECASE)

# Meaning lines that say neither the range nor the direction yet.
VAGUE_MEANING: frozenset[str] = frozenset()


@pytest.mark.parametrize("name", NAMES)
def test_meaning_line_says_what_the_score_means(name: str) -> None:
    d = rewardlab.registry.get(name)
    line = d.info.description
    assert line and line == line.strip() and "\n" not in line, f"{name}: no meaning line"
    assert len(line) <= 100, f"{name}: meaning line of {len(line)} characters (at most 100)"
    says = bool(SAYS_VALUES.search(line) or SAYS_DIRECTION.search(line))
    if name in VAGUE_MEANING:
        assert not says, f"{name}'s meaning line now says it: remove it from VAGUE_MEANING"
        pytest.xfail(f"{name}'s meaning line does not say the range or the direction: {line!r}")
    assert says, f"{name}: the meaning line says neither range nor direction: {line!r}"
    opposite = "lower" if d.info.direction == "higher" else "higher"
    assert not re.search(rf"\b{opposite} is better\b", line), f"{name}: contradicts direction"


@pytest.mark.parametrize("name", NAMES)
def test_range_and_direction_are_valid(name: str, model_dir: Path) -> None:
    d = rewardlab.registry.get(name)
    for info in (d.info, configure(name, model_dir).info):
        lo, hi = info.range
        assert isinstance(lo, float) and isinstance(hi, float)
        assert not (math.isnan(lo) or math.isnan(hi)) and lo <= hi, (name, info.range)
        assert info.direction in ("higher", "lower")
        assert info.granularity in ("sequence", "step", "turn", "token")
        assert info.kind in ("inline", "cpu", "io", "model")


# -- fingerprints ---------------------------------------------------------------------------------
FRESH = """
import json, sys
import rewardlab
table = json.load(sys.stdin)
print(json.dumps({n: rewardlab.registry.get(n)(**p).fingerprint for n, p in table.items()}))
"""


@pytest.fixture(scope="session")
def fresh_fingerprints(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every shipped reward's fingerprint computed by one fresh interpreter, with another hash
    seed and working directory."""
    table = {n: params_of(n, model_dir) for n in NAMES}
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    out = subprocess.run([sys.executable, "-c", FRESH], input=json.dumps(table), env=env,
                         capture_output=True, text=True, timeout=240,
                         cwd=tmp_path_factory.mktemp("fresh"))
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", NAMES)
def test_fingerprint_is_stable(name: str, model_dir: Path,
                               fresh_fingerprints: dict[str, str]) -> None:
    a, b = configure(name, model_dir), configure(name, model_dir)
    assert isinstance(a.fingerprint, str) and len(a.fingerprint) >= 16
    assert a.fingerprint == b.fingerprint
    if fresh_fingerprints[name] != a.fingerprint:
        source = Path(sys.modules[a.definition.fn.__module__].__file__ or "")
        if source.is_file() and source.stat().st_mtime > LOADED_AT:
            pytest.skip(f"{source.name} was edited after this process imported it: its code, "
                        f"and so its fingerprint, differ in a fresh interpreter")
        pytest.fail(f"{name}: the fingerprint differs in a fresh interpreter", pytrace=False)


@pytest.mark.parametrize("name", NAMES)
def test_configured_reward_pickles(name: str, model_dir: Path) -> None:
    r = configure(name, model_dir)
    back = pickle.loads(pickle.dumps(r))
    assert type(back) is type(r) and back.name == r.name
    assert back.fingerprint == r.fingerprint and back.params == r.params
    assert back.definition is r.definition  # sent by reference, not copied


# -- sync and async agree -------------------------------------------------------------------------
def _generic() -> list[Sample]:
    return [Sample(prompt="What is 6 times 7?", response="6 times 7 is 42. The answer is 42.",
                   reference="42"),
            Sample(prompt="What is 6 times 7?", response="I think it is 41.", reference="42")]


_MUL = {"tests": ["assert mul(6, 7) == 42", "assert mul(0, 5) == 0"], "entry_point": "mul"}
_CALLS = {"ground_truth": [{"get_weather": {"city": ["Paris"], "unit": ["celsius", ""]}}]}
_SQL = [Sample(response="SELECT count(*) FROM staff", reference="SELECT count(*) FROM staff"),
        Sample(response="SELECT count(*) FROM staff WHERE staff_id < 0",
               reference="SELECT count(*) FROM staff")]
_JUDGED = [Sample(prompt="What is 6 times 7?", response="42", reference="41",
                  metadata={"rubric": ["gives a number"], "principles": ["be brief"]}),
           Sample(prompt="Say hi.", response="Hi.")]

SAMPLES: dict[str, list[Sample]] = {
    **{name: [Sample(prompt="What is 6 times 7?", response="42", reference="42"),
              Sample(prompt="What is 6 times 7?", response="41", reference="42")]
       for name in ("exact_match", "cosine_length")},
    "think_answer_format": [Sample(response="<think>6*7</think><answer>42</answer>"),
                            Sample(response="42")],
    "json_valid": [Sample(response='{"answer": 42}'), Sample(response="answer: 42")],
    "json_schema": [Sample(response='{"answer": 42}'), Sample(response='{"answer": "42"}')],
    **{name: [Sample(response="```python\ndef mul(a, b):\n    return a * b\n```", reference=_MUL),
              Sample(response="def mul(a, b):\n    return a + b\n", reference=_MUL)]
       for name in ("code_pass", "code_pass_fraction", "code_pass_weighted")},
    # a failing program only: a passing one earns a runtime bonus measured per run
    "code_efficiency": [Sample(response="def mul(a, b):\n    return a + b\n", reference=_MUL),
                        Sample(response="def mul(a, b):\n    return a - b\n", reference=_MUL)],
    **{name: _SQL for name in ("sql_execution", "sql_partial", "sql_schema_linking",
                               "sql_syntax", "sql_ngram")},
    **{name: [Sample(response=json.dumps([{"name": "get_weather",
                                           "arguments": {"city": "Paris"}}]), reference=_CALLS),
              Sample(response="I cannot call tools.", reference=_CALLS)]
       for name in ("tool_call_format", "tool_call_match")},
    **{name: _JUDGED for name in ("judge_score", "judge_pairwise", "judge_rubric",
                                  "judge_principles")},
}

JUDGE_ANSWER = {"judge_score": "Mostly right. [[7]]", "judge_pairwise": "[[A]]",
                "judge_rubric": "[[YES]]", "judge_principles": "[[NO]]"}


def _outcome(scores: list[Score]) -> list[tuple[str, float | None, dict[str, float]]]:
    return [(s.status.value, s.value, dict(s.components)) for s in scores]


def _agree(reward: Reward, samples: list[Sample]) -> list[tuple[str, float | None, Any]]:
    assert current_runtime().cache is None  # both calls compute; neither reads the other's
    sync = rewardlab.score(samples, reward)
    async_ = asyncio.run(rewardlab.ascore(samples, reward))
    assert _outcome(sync) == _outcome(async_)
    return _outcome(sync)


def _sync_async_cases() -> list[Any]:
    out = []
    for name in NAMES:
        marks = [pytest.mark.slow] if name in MODEL else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.parametrize("name", _sync_async_cases())
def test_sync_and_async_calls_agree(name: str, model_dir: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    samples = SAMPLES.get(name, _generic())
    if name in JUDGE_ANSWER:
        from tests.models.fake_openai import FakeOpenAI, completion

        pytest.importorskip("openai")
        with FakeOpenAI(lambda i, body: completion(JUDGE_ANSWER[name])) as srv:
            reward = rewardlab.registry.get(name)(**{**PARAMS[name], "base_url": srv.base_url})
            outcome = _agree(reward, samples)
            assert srv.requests, "the judge asked nothing"
    elif name == "remote":
        pytest.importorskip("fastapi")
        from tests.serve.server import Server

        server = Server(["exact_match", "--no-cache", "--workers", "1"])
        try:
            server.wait_ready()
            outcome = _agree(rewardlab.registry.get(name)(url=server.url), samples)
        finally:
            server.stop()
    elif name in MODEL:
        outcome = _agree(_model_reward(name, tmp_path_factory), samples)
    else:
        outcome = _agree(configure(name, model_dir), samples)
    assert any(status != "error" for status, _, _ in outcome), outcome


def _model_reward(name: str, tmp_path_factory: pytest.TempPathFactory) -> Reward:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    if name == "embedding_rm":
        pytest.skip("embedding_rm needs a model trained by `rewardlab train embedding-rm` "
                    "(tests/models/test_embedding.py trains and scores one)")
    if name == "classifier_rm":
        from tests.models.test_classifier import _build

        return rewardlab.registry.get(name)(path=str(_build("bert", tmp_path_factory.mktemp("rm"))))
    pytest.importorskip("gguf")
    from rewardlab.models._hf import bundled_smollm2_gguf

    try:
        bundled_smollm2_gguf()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return rewardlab.registry.get(name)(**PARAMS[name])
