"""The `advantage` spec op: estimators by name through the entry-point group, in
`rewardlab.score` and in `rewardlab score` (the advantage as the reward, the raw reward in its
components)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import rewardlab as rl
from rewardlab import Sample, Status
from rewardlab.compose import transforms as tf
from rewardlab.compose.spec import SpecError, load_spec
from rewardlab.credit import advantages as adv

ROOT = Path(__file__).resolve().parents[2]
REWARD = "tests.credit.rewards_for_credit:meta_value"


def S(prompt: str, v: object) -> Sample:
    return Sample(prompt=prompt, response="r", metadata={"v": v})


def spec(**opts: object) -> dict[str, object]:
    return {"reward": {"advantage": {"reward": REWARD}, **opts}}


def test_grpo_by_name_on_the_worked_example() -> None:
    rows = [S("a", 1), S("a", 0), S("a", 0), S("a", 1)]
    verl = rl.score(rows, spec(estimator="grpo", convention="verl"))
    assert [s.value for s in verl] == pytest.approx([0.8660, -0.8660, -0.8660, 0.8660], abs=5e-5)
    trl = rl.score(rows, spec())  # grpo, trl by default
    assert [s.value for s in trl] == pytest.approx([0.86588, -0.86588, -0.86588, 0.86588], abs=5e-6)
    assert [s.components[REWARD] for s in trl] == [1.0, 0.0, 0.0, 1.0]  # the raw reward beside it
    assert [s.value for s in rl.score(rows, spec(estimator="dr_grpo"))] == [0.5, -0.5, -0.5, 0.5]
    assert [s.value for s in rl.score(rows, spec(estimator="rloo"))] == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])


def test_every_registered_estimator_runs_from_a_spec_and_matches_the_function() -> None:
    rows = [S("a", 1), S("a", 0), S("b", 3), S("b", 5), S("b", 4), S("c", 2)]
    r, g = [1, 0, 3, 5, 4, 2], ["a", "a", "b", "b", "b", "c"]
    for name in adv.ESTIMATORS:
        got = [s.value for s in rl.score(rows, spec(estimator=name))]
        assert got == pytest.approx(adv.ESTIMATORS[name](r, g).values.tolist()), name


def test_groups_by_metadata_field_and_failed_scores_pass_through() -> None:
    rows = [Sample(prompt="same", response="r", metadata={"v": v, "uid": u})
            for v, u in ((1, "x"), (0, "x"), ("bad", "x"), (None, "x"), (5, "y"))]
    out = rl.score(rows, spec(estimator="dr_grpo", by="uid"))
    assert [s.value for s in out[:2]] == [0.5, -0.5]  # the error and the abstain are not in the mean
    assert out[2].status is Status.error and out[3].status is Status.abstain
    assert out[4].value == 0.0  # a group of one (trl convention), which its details say
    assert "only scorable rollout of its group (uid)" in out[4].details["advantage"]
    assert out[0].details is None
    verl = rl.score(rows, spec(estimator="dr_grpo", by="uid", convention="verl"))
    assert verl[4].value == 5.0


def test_unknown_estimator_and_convention_are_spec_errors() -> None:
    with pytest.raises(SpecError) as exc:
        load_spec("reward:\n  advantage: {reward: exact_match}\n  estimator: gpro\n")
    msg = str(exc.value)
    assert "line 3" in msg and "unknown advantage estimator 'gpro'" in msg
    for name in ("grpo", "dr_grpo", "rloo", "reinforce_pp"):
        assert name in msg
    with pytest.raises(SpecError, match="no convention 'trl'.*known: verl, openrlhf"):
        load_spec({"reward": {"advantage": "exact_match", "estimator": "reinforce_pp", "convention": "trl"}})
    with pytest.raises(SpecError, match="unknown key"):
        load_spec({"reward": {"advantage": "exact_match", "estimator": "grpo", "epsilon": 1}})


def test_fingerprint_names_the_estimator_and_convention() -> None:
    prints = {load_spec(spec(estimator=e, convention=c)).fingerprint
              for e, c in (("grpo", "trl"), ("grpo", "verl"), ("rloo", "trl"))}
    assert len(prints) == 3


def test_an_estimator_that_gives_no_advantage_never_passes_the_raw_reward(monkeypatch: pytest.MonkeyPatch) -> None:
    class Nothing:
        def tolist(self) -> list[None]:
            return [None, math.nan]

    broken = tf.Estimator("broken", lambda r, g, convention=None: Nothing(), ())
    monkeypatch.setitem(tf.estimators.all(), "broken", broken)
    out = rl.score([S("a", 1), S("a", 0)], spec(estimator="broken"))
    assert all(s.status is Status.error and "no finite advantage" in (s.reason or "") for s in out)


def test_rewardlab_score_writes_advantages_next_to_rewards(tmp_path: Path) -> None:
    rows = [{"prompt": p, "completion": c, "v": v}
            for p, c, v in (("q1", "a", 1), ("q1", "b", 0), ("q1", "c", 0), ("q1", "d", 1),
                            ("q2", "e", 3), ("q2", "f", 3))]
    inp = tmp_path / "rollouts.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sp = tmp_path / "grpo.yaml"
    sp.write_text(f"reward:\n  advantage: {{reward: '{REWARD}', label: correct}}\n"
                  "  estimator: grpo\n  convention: verl\n")
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-m", "rewardlab.cli", "score", str(inp), "-r", str(sp), "-o", str(out),
                           "--no-cache", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["reward_components"]["correct"] for r in got] == [1.0, 0.0, 0.0, 1.0, 3.0, 3.0]
    assert [r["reward"] for r in got] == pytest.approx([0.8660, -0.8660, -0.8660, 0.8660, 0.0, 0.0], abs=5e-5)


def test_crashing_the_verifier_is_not_a_way_out_when_errors_have_a_value() -> None:
    # a policy that cannot answer may try to make the reward fail rather than be scored wrong
    rows = [S("a", 1), S("a", 0), S("a", "bad")]
    passed = rl.score(rows, spec(estimator="dr_grpo"))
    assert passed[2].status is Status.error and passed[2].value is None  # no advantage: the trainer sees None
    valued = rl.score(rows, {"reward": {"advantage": {"sum": [{"reward": REWARD}], "on_error": 0.0},
                                        "estimator": "dr_grpo"}})
    assert [s.value for s in valued] == pytest.approx([2 / 3, -1 / 3, -1 / 3])  # failing costs like being wrong
