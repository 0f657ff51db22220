"""Implicit rewards from log-probabilities, with SmolLM2-135M-Instruct (from the package
registry, converted once from GGUF) as the policy and a seeded, noise-perturbed copy of it as
the reference. Checked against plain unbatched forward passes."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest

from rewardlab.core.types import Sample
from rewardlab.models.implicit import _step_sums, split_steps

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# -- steps (no model) -----------------------------------------------------------------------------

def test_split_steps_on_blank_lines() -> None:
    text = "First step.\n\nSecond step,\nstill second.\n\n\n\nThird."
    starts = split_steps(text)
    assert [text[a:a + 6] for a in starts] == ["First ", "Second", "Third."]
    assert split_steps("\n\nlead-in blank\n\nnext") == [0, len("\n\nlead-in blank\n\n")]
    assert split_steps("one step only") == [0]
    assert len(split_steps(text, "\n")) == 4
    with pytest.raises(ValueError):
        split_steps(text, "")


def test_token_values_go_to_the_step_of_their_first_character() -> None:
    text = "ab\n\ncd"
    starts = split_steps(text)  # [0, 4]
    offsets = [(0, 2), (2, 3), (3, 4), (4, 6)]  # "ab", "\n", "\n", "cd"
    assert _step_sums([1.0, 10.0, 100.0, 1000.0], offsets, starts) == [111.0, 1000.0]


# -- with SmolLM2 ---------------------------------------------------------------------------------

HAVE_MODELS = all(importlib.util.find_spec(m) for m in ("torch", "transformers", "gguf"))
needs_models = pytest.mark.skipif(not HAVE_MODELS,
                                  reason="needs the models extra (torch, transformers, gguf)")


@pytest.fixture(scope="module")
def policy_dir() -> Path:
    from rewardlab.models._hf import bundled_smollm2_gguf, resolve_causal_lm

    try:
        gguf = bundled_smollm2_gguf()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return resolve_causal_lm(gguf)


@pytest.fixture(scope="module")
def ref_dir(policy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The policy with seeded Gaussian noise (5% of each tensor's std) on every weight."""
    import torch
    import transformers

    out = tmp_path_factory.mktemp("ref")
    model = transformers.AutoModelForCausalLM.from_pretrained(policy_dir, local_files_only=True)
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05 * float(p.std()))
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(policy_dir, local_files_only=True).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def gsm8k(shared_data: Path) -> list[Sample]:
    """Real GSM8K questions with their worked solutions as responses (steps on blank lines)."""
    out = []
    with (shared_data / "verifiable" / "gsm8k_test.jsonl").open() as f:
        for line, _ in zip(f, range(3), strict=False):
            row = json.loads(line)
            steps = row["answer"].replace("\n#### ", "\nThe answer is ").split("\n")
            out.append(Sample(prompt=row["question"], response="\n\n".join(steps)))
    return out


def _plain_logits(directory: Path, prompt_ids: list[int], response_ids: list[int]) -> object:
    """Log-softmax at each response position from one unpadded forward pass."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logits = model(ids).logits[0].float().log_softmax(-1)
    n = len(prompt_ids)
    return logits[n - 1: n - 1 + len(response_ids)]


@pytest.mark.slow
@needs_models
def test_dpo_implicit_reward_is_the_beta_scaled_log_ratio(policy_dir: Path, ref_dir: Path,
                                                          gsm8k: list[Sample]) -> None:
    import torch

    import rewardlab
    from rewardlab.models.implicit import implicit_dpo, load_causal_lm

    beta = 0.1
    scores = rewardlab.score(gsm8k, implicit_dpo(policy=str(policy_dir), ref=str(ref_dir),
                                                 beta=beta, device="cpu"))
    assert all(s.ok for s in scores), [s.reason for s in scores]
    lm = load_causal_lm(policy_dir, "cpu")
    r = lm.render(gsm8k[0])
    assert r.details["chat_template"] is True  # SmolLM2-Instruct has one
    lp_pi = _plain_logits(policy_dir, r.prompt_ids, r.response_ids)
    lp_ref = _plain_logits(ref_dir, r.prompt_ids, r.response_ids)
    idx = torch.tensor(r.response_ids)[:, None]
    ratio = (lp_pi.gather(-1, idx) - lp_ref.gather(-1, idx)).squeeze(-1)
    s = scores[0]
    assert s.value == pytest.approx(beta * float(ratio.sum()), abs=2e-3)
    assert s.tokens is not None and len(s.tokens.values) == len(r.response_ids)
    assert s.tokens.values == pytest.approx([beta * float(v) for v in ratio], abs=2e-4)
    assert math.fsum(s.tokens.values) == pytest.approx(s.value, abs=1e-9)
    # offsets tile the response text
    text = gsm8k[0].response_text
    assert s.tokens.offsets is not None
    assert "".join(text[a:b] for a, b in s.tokens.offsets) == text
    assert len({round(x.value, 6) for x in scores}) == len(scores)  # type: ignore[arg-type]
    # the reference equal to the policy gives exactly zero
    same = rewardlab.score(gsm8k[:2], implicit_dpo(policy=str(policy_dir), ref=str(policy_dir),
                                                   device="cpu"))
    assert [x.value for x in same] == [0.0, 0.0]


@pytest.mark.slow
@needs_models
def test_prime_process_rewards_per_step(policy_dir: Path, ref_dir: Path,
                                        gsm8k: list[Sample]) -> None:
    from rewardlab.models.implicit import dpo_scores, load_causal_lm, prm_scores

    pol, ref = load_causal_lm(policy_dir, "cpu"), load_causal_lm(ref_dir, "cpu")
    dpo = dpo_scores(pol, ref, gsm8k, beta=0.05)
    prm = prm_scores(pol, ref, gsm8k, beta=0.05)
    for sample, d, p in zip(gsm8k, dpo, prm, strict=True):
        n_steps = sample.response_text.count("\n\n") + 1
        assert p.steps is not None and len(p.steps) == n_steps
        assert math.fsum(p.steps) == pytest.approx(d.value, abs=1e-6)
        assert p.value == min(p.steps)
        assert p.details is not None and len(p.details["step_starts"]) == n_steps
    summed = prm_scores(pol, ref, gsm8k[:1], beta=0.05, aggregate="sum")[0]
    assert summed.value == pytest.approx(dpo[0].value, abs=1e-4)  # another batch: float noise
    # a finer separator gives more steps over the same tokens
    fine = prm_scores(pol, ref, gsm8k[:1], beta=0.05, separator=" ")[0]
    assert fine.steps is not None and len(fine.steps) > len(prm[0].steps or [])
    assert math.fsum(fine.steps) == pytest.approx(dpo[0].value, abs=1e-4)


@pytest.mark.slow
@needs_models
def test_simpo_and_self_certainty_match_a_plain_forward(policy_dir: Path,
                                                        gsm8k: list[Sample]) -> None:
    import torch

    from rewardlab.models.implicit import load_causal_lm, self_certainty_scores, simpo_scores

    lm = load_causal_lm(policy_dir, "cpu")
    s = gsm8k[1]
    r = lm.render(s)
    lp = _plain_logits(policy_dir, r.prompt_ids, r.response_ids)
    tok_lp = lp.gather(-1, torch.tensor(r.response_ids)[:, None]).squeeze(-1)
    simpo = simpo_scores(lm, [s], beta=2.0)[0]
    assert simpo.value == pytest.approx(2.0 * float(tok_lp.mean()), abs=1e-3)
    kl_uniform = -lp.mean(-1) - math.log(lp.shape[-1])
    cert = self_certainty_scores(lm, [s])[0]
    assert cert.value == pytest.approx(float(kl_uniform.mean()), abs=1e-3)
    assert cert.tokens is not None and min(cert.tokens.values) >= 0.0


@pytest.mark.slow
@needs_models
def test_likelihood_rewards_prefer_fluent_text(policy_dir: Path) -> None:
    import random

    import rewardlab
    from rewardlab.models.implicit import self_certainty, simpo_likelihood

    fluent = "The capital of France is Paris. It is known for the Eiffel Tower."
    words = fluent.split()
    random.Random(0).shuffle(words)
    shuffled = " ".join(words)
    samples = [Sample(prompt="What is the capital of France?", response=fluent),
               Sample(prompt="What is the capital of France?", response=shuffled)]
    simpo = rewardlab.score(samples, simpo_likelihood(policy=str(policy_dir), device="cpu"))
    assert simpo[0].value > simpo[1].value  # type: ignore[operator]
    assert all(s.value is not None and s.value <= 0 for s in simpo)
    cert = rewardlab.score(samples, self_certainty(policy=str(policy_dir), device="cpu"))
    assert all(c.ok and c.value is not None and c.value > 0 for c in cert)


@pytest.mark.slow
@needs_models
def test_scores_do_not_depend_on_batching(policy_dir: Path, ref_dir: Path,
                                          gsm8k: list[Sample]) -> None:
    from rewardlab.models.implicit import dpo_scores, load_causal_lm

    pol, ref = load_causal_lm(policy_dir, "cpu"), load_causal_lm(ref_dir, "cpu")
    one = dpo_scores(pol, ref, gsm8k, batch_size=1)
    together = dpo_scores(pol, ref, gsm8k[::-1], batch_size=8, max_batch_tokens=100_000)[::-1]
    for a, b in zip(one, together, strict=True):
        assert b.value == pytest.approx(a.value, abs=1e-4)
        assert b.tokens.values == pytest.approx(a.tokens.values, abs=1e-4)  # type: ignore[union-attr]


@pytest.mark.slow
@needs_models
def test_empty_response_truncation_and_gguf_path(policy_dir: Path, ref_dir: Path,
                                                 gsm8k: list[Sample]) -> None:
    from rewardlab.models._hf import bundled_smollm2_gguf, resolve_causal_lm
    from rewardlab.models.implicit import dpo_scores, load_causal_lm

    assert resolve_causal_lm(bundled_smollm2_gguf()) == policy_dir  # converted once, reused
    pol, ref = load_causal_lm(policy_dir, "cpu"), load_causal_lm(ref_dir, "cpu")
    empty = dpo_scores(pol, ref, [Sample(prompt="hi", response="")])[0]
    assert empty.status.value == "abstain" and "empty response" in (empty.reason or "")
    full = pol.render(gsm8k[0])
    n_p, n_r = len(full.prompt_ids), len(full.response_ids)
    assert n_r > 20
    cut = dpo_scores(pol, ref, gsm8k[:1], max_length=n_p + n_r - 10)[0]
    assert cut.ok and cut.details is not None and cut.details["truncated"] is True
    assert cut.details["truncated_prompt_tokens"] == 10
    assert "truncated_response_tokens" not in cut.details
    assert cut.tokens is not None and len(cut.tokens.values) == n_r
    tiny = dpo_scores(pol, ref, gsm8k[:1], max_length=20)[0]
    assert tiny.details is not None and tiny.details["truncated_response_tokens"] == n_r - 19
    assert tiny.details["truncated_prompt_tokens"] == n_p - 1
    assert tiny.tokens is not None and len(tiny.tokens.values) == 19


# -- the shared model-running options (no model) --------------------------------------------------

def test_lm_options_are_keyword_parameters_of_every_implicit_reward() -> None:
    import dataclasses

    from rewardlab.models.implicit import (
        LMOptions,
        implicit_dpo,
        implicit_prm,
        self_certainty,
        simpo_likelihood,
    )

    for d in (implicit_dpo, implicit_prm, simpo_likelihood, self_certainty):
        for f in dataclasses.fields(LMOptions):
            assert d.params[f.name] == f.default, (d.info.name, f.name)
    smollm = "bundled:SmolLM2-135M-Instruct"
    # the options enter the fingerprint (they can change a score: truncation, dtype)
    a = simpo_likelihood(policy=smollm)
    assert simpo_likelihood(policy=smollm, max_length=128).fingerprint != a.fingerprint
    assert simpo_likelihood(policy=smollm, dtype="float32").fingerprint != a.fingerprint
    assert simpo_likelihood(policy=smollm).fingerprint == a.fingerprint


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"max_batch_tokens": -1},
                                 {"max_length": 0}, {"batch_size": True}])
def test_unusable_lm_options_fail_every_sample_before_loading_a_model(bad: dict) -> None:
    import rewardlab
    from rewardlab.models.implicit import LMOptions, simpo_likelihood

    with pytest.raises(ValueError, match="positive integer"):
        LMOptions(**bad)
    reward = simpo_likelihood(policy="bundled:SmolLM2-135M-Instruct", **bad)
    scores = rewardlab.score([Sample(prompt="q", response="a"), Sample(response="b")], reward)
    assert [s.status.value for s in scores] == ["error", "error"]
    assert all("positive integer" in (s.reason or "") for s in scores)
