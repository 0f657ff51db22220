"""Sequence-classifier reward models: any local ``AutoModelForSequenceClassification``
directory (Skywork-Reward, ArmoRM-style multi-output heads, DeBERTa cross-encoders...).

Input: when the tokenizer has a chat template (or ``chat_template=True``), the prompt (its
messages, or the text as one user message) and the response (as the assistant's message) are
rendered with it; otherwise the prompt and response are encoded as a text pair, the
cross-encoder convention. Over-long inputs are truncated (from the left by default, keeping the
response's end, where decoder RMs read their score) and every score says in ``details`` how many
tokens it used and whether, and by how much, it was truncated.

Batching is length-sorted and dynamic (at most `batch_size` items and `max_batch_tokens` padded
tokens a batch), padding always on the right with explicit attention masks, so a score does not
depend on the batch it ran in, the order of the samples, or the tokenizer's padding side.
On a GPU the model runs in bfloat16 (``dtype="auto"``).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.core.types import Sample, Score
from rewardlab.models._hf import (
    chat_messages,
    length_batches,
    loaded,
    model_fingerprint,
    model_reward,
    need,
    pick_device,
    pick_dtype,
)

__all__ = ["Encoded", "SequenceClassifierRM", "classifier_rm", "load_classifier"]

_FALLBACK_MAX_LENGTH = 4096


@dataclass
class Encoded:
    """One sample's model input, and what truncation did to it."""

    inputs: dict[str, list[int]]
    full_length: int
    chat_template: bool

    @property
    def length(self) -> int:
        return len(self.inputs["input_ids"])

    @property
    def truncated(self) -> bool:
        return self.full_length > self.length


class SequenceClassifierRM:
    """A loaded sequence-classification reward model."""

    def __init__(self, path: str | os.PathLike[str], *, device: str | None = None,
                 dtype: str | None = "auto") -> None:
        torch = need("torch")
        tf = need("transformers")
        self.path = Path(path).expanduser().resolve()
        if not (self.path / "config.json").exists():
            raise FileNotFoundError(f"no local model directory at {self.path}")
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.tokenizer = tf.AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        model = tf.AutoModelForSequenceClassification.from_pretrained(
            self.path, dtype=self.dtype, local_files_only=True)
        self.model = model.to(self.device).eval()
        tok = self.tokenizer
        if tok.pad_token_id is None:
            fallback = tok.eos_token if tok.eos_token is not None else tok.unk_token
            if fallback is None:
                raise ValueError(f"{self.path}: the tokenizer has no pad, eos or unk token")
            tok.pad_token = fallback
        if getattr(self.model.config, "pad_token_id", None) is None:
            # decoder heads pool the last non-pad token; they need to know the pad id
            self.model.config.pad_token_id = tok.pad_token_id
        n = int(self.model.config.num_labels)
        id2label = getattr(self.model.config, "id2label", None) or {}
        self.labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(n)]
        self.input_names = [k for k in getattr(tok, "model_input_names", ["input_ids"])
                            if k in ("input_ids", "attention_mask", "token_type_ids")]
        self._lock = threading.Lock()
        self._tok_lock = threading.Lock()
        self._torch = torch

    @property
    def default_max_length(self) -> int:
        limits = [_FALLBACK_MAX_LENGTH]
        tml = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tml, int) and 0 < tml < 1_000_000:
            limits.append(tml)
        mpe = getattr(self.model.config, "max_position_embeddings", None)
        if isinstance(mpe, int) and mpe > 0:
            limits.append(mpe)
        return min(limits)

    def encode(self, sample: Sample, *, max_length: int | None = None,
               chat_template: bool | None = None, truncation_side: str = "left") -> Encoded:
        """Tokens of one sample, rendered with the chat template when there is one."""
        tok = self.tokenizer
        limit = max_length or self.default_max_length
        use_template = (tok.chat_template is not None) if chat_template is None else chat_template
        if use_template:
            if tok.chat_template is None:
                raise ValueError(f"{self.path}: the tokenizer has no chat template")
            msgs = chat_messages(sample.prompt, "user") + chat_messages(sample.response, "assistant")
            text = tok.apply_chat_template(msgs, tokenize=False)
            args: tuple[str, ...] = (text,)
            kw: dict[str, Any] = {"add_special_tokens": False}
        elif sample.prompt_text:
            args, kw = (sample.prompt_text, sample.response_text), {}
        else:
            args, kw = (sample.response_text,), {}
        full = tok(*args, **kw, truncation=False)
        full_len = len(full["input_ids"])
        if full_len <= limit:
            enc = full
        else:
            with self._tok_lock:  # the side is tokenizer state: set it for this call only
                old = tok.truncation_side
                tok.truncation_side = truncation_side
                try:
                    enc = tok(*args, **kw, truncation=True, max_length=limit)
                finally:
                    tok.truncation_side = old
        inputs = {k: list(enc[k]) for k in self.input_names if k in enc}
        inputs.setdefault("attention_mask", [1] * len(inputs["input_ids"]))
        return Encoded(inputs, full_len, use_template)

    def logits(self, encoded: Sequence[Encoded], *, batch_size: int = 16,
               max_batch_tokens: int = 16384) -> list[list[float]]:
        """The model's outputs for each encoded sample (in input order)."""
        torch = self._torch
        pad_id = int(self.tokenizer.pad_token_id)
        out: list[list[float]] = [[] for _ in encoded]
        for batch in length_batches([e.length for e in encoded], batch_size, max_batch_tokens):
            width = max(encoded[i].length for i in batch)
            tensors: dict[str, Any] = {}
            for name in encoded[batch[0]].inputs:
                fill = pad_id if name == "input_ids" else 0
                rows = [encoded[i].inputs[name] + [fill] * (width - encoded[i].length)
                        for i in batch]
                tensors[name] = torch.tensor(rows, dtype=torch.long, device=self.device)
            with self._lock, torch.inference_mode():
                logits = self.model(**tensors).logits.float().cpu()
            for row, i in enumerate(batch):
                out[i] = [float(v) for v in logits[row]]
        return out

    def score(self, samples: Sequence[Sample], *, output: str | int | None = None,
              weights: dict[str, float] | None = None, max_length: int | None = None,
              chat_template: bool | None = None, truncation_side: str = "left",
              batch_size: int = 16, max_batch_tokens: int = 16384) -> list[Score]:
        """One `Score` per sample: the output named by `output` (a label or index), or the
        `weights`-weighted sum of outputs; a single-output model needs neither. Every output
        is in ``components`` (by label) when there are several."""
        if truncation_side not in ("left", "right"):
            raise ValueError("truncation_side must be left or right")
        pick = self._picker(output, weights)
        encoded: list[Encoded | None] = []
        results: list[Score | None] = [None] * len(samples)
        for i, s in enumerate(samples):
            try:
                encoded.append(self.encode(s, max_length=max_length, chat_template=chat_template,
                                           truncation_side=truncation_side))
            except Exception as exc:  # this sample cannot be rendered: its score says why
                encoded.append(None)
                results[i] = Score.error(f"cannot encode: {exc}")
        todo = [i for i, e in enumerate(encoded) if e is not None]
        logits = self.logits([encoded[i] for i in todo],  # type: ignore[misc]
                             batch_size=batch_size, max_batch_tokens=max_batch_tokens)
        for i, row in zip(todo, logits, strict=True):
            e = encoded[i]
            assert e is not None
            details: dict[str, Any] = {"tokens": e.length, "truncated": e.truncated,
                                       "chat_template": e.chat_template}
            if e.truncated:
                details["dropped_tokens"] = e.full_length - e.length
                details["truncation_side"] = truncation_side
            comps = dict(zip(self.labels, row, strict=True)) if len(row) > 1 else {}
            if not all(math.isfinite(v) for v in row):
                results[i] = Score.error(f"non-finite model output {row}", details=details)
                continue
            if isinstance(pick, str):
                results[i] = Score.error(pick, components=comps, details=details)
            else:
                results[i] = Score.of(pick(row), components=comps, details=details)
        return results  # type: ignore[return-value]

    def _picker(self, output: str | int | None, weights: dict[str, float] | None) -> Any:
        """A function from a row of outputs to the value, or the reason there is none."""
        labels = self.labels
        if output is not None and weights is not None:
            raise ValueError("give output or weights, not both")
        if weights is not None:
            unknown = set(weights) - set(labels)
            if unknown:
                raise ValueError(f"weights name unknown outputs {sorted(unknown)} "
                                 f"(outputs: {', '.join(labels)})")
            idx = [(labels.index(k), float(w)) for k, w in weights.items()]
            return lambda row: sum(row[j] * w for j, w in idx)
        if output is not None:
            if isinstance(output, int) or (isinstance(output, str) and output not in labels
                                           and output.lstrip("-").isdigit()):
                j = int(output)
                if not -len(labels) <= j < len(labels):
                    raise ValueError(f"output {j} out of range: the model has {len(labels)}")
            elif output in labels:
                j = labels.index(output)
            else:
                raise ValueError(f"no output {output!r} (outputs: {', '.join(labels)})")
            return lambda row: row[j]
        if len(labels) == 1:
            return lambda row: row[0]
        return (f"the model has {len(labels)} outputs ({', '.join(labels)}); choose one with "
                "output=... or combine them with weights={...}")


def load_classifier(path: str | os.PathLike[str], device: str | None = None,
                    dtype: str | None = "auto") -> SequenceClassifierRM:
    """A loaded classifier RM, once per process (reloaded when its files change)."""
    p = Path(path).expanduser().resolve()
    key = ("classifier_rm", str(p), model_fingerprint(p), device, dtype)
    return loaded.get(key, lambda: SequenceClassifierRM(p, device=device, dtype=dtype))  # type: ignore[no-any-return]


@model_reward(path_params=("path",), range=(-math.inf, math.inf), batch_size=256,
              timeout=1800.0)
def classifier_rm(samples: list[Sample], *, path: str, output: str | int | None = None,
                  weights: dict[str, float] | None = None, max_length: int | None = None,
                  chat_template: bool | None = None, truncation_side: str = "left",
                  batch_size: int = 16, max_batch_tokens: int = 16384,
                  device: str | None = None, dtype: str = "auto") -> list[Score]:
    """Sequence-classifier reward model from a local HF directory: output logit, higher is better.

    The value is a logit in (-inf, inf). Several outputs go to ``components`` by label;
    `output` picks the value (label or index) or `weights` combines them. Truncation is
    reported per sample in ``details``.

    Configuring checks that the directory exists and fingerprints its files without loading the
    model, so scores cached for one model are never served for another saved at the same path:

    >>> import json, pathlib, shutil, tempfile
    >>> from rewardlab.models.classifier import classifier_rm
    >>> classifier_rm.info.describe()
    '[-inf, inf], higher is better, per sequence'
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text(json.dumps({"num_labels": 1}))
    >>> before = classifier_rm(path=str(folder), output=0).fingerprint
    >>> _ = (folder / "model.safetensors").write_bytes(b"weights of a retrained model")
    >>> classifier_rm(path=str(folder), output=0).fingerprint == before
    False
    >>> shutil.rmtree(folder)
    >>> classifier_rm(path="/models/no-such-rm")
    Traceback (most recent call last):
    ...
    ValueError: reward 'classifier_rm': path='/models/no-such-rm' does not exist
    """
    rm = load_classifier(path, device, dtype)
    return rm.score(samples, output=output, weights=weights, max_length=max_length,
                    chat_template=chat_template, truncation_side=truncation_side,
                    batch_size=batch_size, max_batch_tokens=max_batch_tokens)
