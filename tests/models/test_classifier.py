"""Sequence-classifier reward models, on tiny randomly initialised models built here (no
downloads): scores must not depend on batch size, order or padding side; truncation is
reported; chat templates are applied; several outputs become components."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import rewardlab  # noqa: E402
from rewardlab.core.types import Sample  # noqa: E402
from rewardlab.models._hf import bundled_embedding_model  # noqa: E402
from rewardlab.models.classifier import SequenceClassifierRM, classifier_rm  # noqa: E402
from rewardlab.models.embedding import split_dialogue  # noqa: E402

TEMPLATE = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}")


def _tokenizer(padding_side: str = "right") -> object:
    tok = transformers.AutoTokenizer.from_pretrained(bundled_embedding_model(),
                                                     local_files_only=True)
    tok.padding_side = padding_side
    return tok


def _build(kind: str, out: Path, *, num_labels: int = 1, seed: int = 0,
           template: str | None = None) -> Path:
    tok = _tokenizer()
    common = {"vocab_size": tok.vocab_size, "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 4, "intermediate_size": 64, "num_labels": num_labels,
              "pad_token_id": tok.pad_token_id, "max_position_embeddings": 512}
    if num_labels > 1:
        names = ["helpful", "harmless", "honest"][:num_labels]
        common["id2label"] = dict(enumerate(names))
        common["label2id"] = {n: i for i, n in enumerate(names)}
    if kind == "llama":
        config = transformers.LlamaConfig(**common, num_key_value_heads=2)
        model_cls = transformers.LlamaForSequenceClassification
    else:
        config = transformers.BertConfig(**common)
        model_cls = transformers.BertForSequenceClassification
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    # a random head on a random body gives near-identical outputs; spread them out
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    if template is not None:
        tok.chat_template = template
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def hh_samples(shared_data: Path) -> list[Sample]:
    """Real dialogues of varied lengths: the chosen side of the first HH-RLHF pairs."""
    path = shared_data / "preference" / "hh_rlhf_harmless_base_test.jsonl.gz"
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            prompt, response = split_dialogue(json.loads(line)["chosen"])
            out.append(Sample(prompt=prompt, response=response))
            if len(out) == 14:
                break
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clf")
    return {
        "llama": _build("llama", root / "llama"),
        "bert": _build("bert", root / "bert"),
        "bert3": _build("bert", root / "bert3", num_labels=3, seed=1),
        "llama_chat": _build("llama", root / "llama_chat", template=TEMPLATE, seed=2),
    }


def _values(rm: SequenceClassifierRM, samples: list[Sample], **kw: object) -> list[float]:
    scores = rm.score(samples, **kw)
    assert all(s.ok for s in scores), [s.reason for s in scores if not s.ok]
    return [s.value for s in scores]  # type: ignore[misc]


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_scores_do_not_depend_on_batch_order_or_padding_side(
        kind: str, models: dict[str, Path], hh_samples: list[Sample], tmp_path: Path) -> None:
    rm = SequenceClassifierRM(models[kind], device="cpu")
    lengths = [rm.encode(s).length for s in hh_samples]
    assert max(lengths) > 2 * min(lengths)  # real padding happens in a shared batch
    one = _values(rm, hh_samples, batch_size=1)
    assert len(set(one)) == len(one)  # the model tells the samples apart
    batched = _values(rm, hh_samples, batch_size=5)
    reordered = _values(rm, hh_samples[::-1], batch_size=len(hh_samples))[::-1]
    tight = _values(rm, hh_samples, batch_size=64, max_batch_tokens=600)
    # the same model saved with a left-padding tokenizer
    left_dir = tmp_path / "left"
    shutil.copytree(models[kind], left_dir)
    cfg = json.loads((left_dir / "tokenizer_config.json").read_text())
    cfg["padding_side"] = "left"
    (left_dir / "tokenizer_config.json").write_text(json.dumps(cfg))
    left_rm = SequenceClassifierRM(left_dir, device="cpu")
    assert left_rm.tokenizer.padding_side == "left"
    left = _values(left_rm, hh_samples, batch_size=7)
    for other in (batched, reordered, tight, left):
        assert other == pytest.approx(one, abs=1e-5, rel=1e-5)


def test_single_sample_matches_a_plain_forward(models: dict[str, Path],
                                               hh_samples: list[Sample]) -> None:
    rm = SequenceClassifierRM(models["bert"], device="cpu")
    s = hh_samples[3]
    enc = rm.tokenizer(s.prompt_text, s.response_text, return_tensors="pt")
    with torch.no_grad():
        expected = float(rm.model(**enc).logits[0, 0])
    assert _values(rm, [s])[0] == pytest.approx(expected, abs=1e-6)


def test_truncation_is_reported_and_keeps_the_response_end(models: dict[str, Path],
                                                           hh_samples: list[Sample]) -> None:
    rm = SequenceClassifierRM(models["llama_chat"], device="cpu")
    long, short = hh_samples[0], Sample(prompt="hi", response="hello")
    full = rm.encode(long)
    cut = rm.encode(long, max_length=24)
    assert full.length > 24 and cut.length == 24
    assert cut.inputs["input_ids"] == full.inputs["input_ids"][-24:]
    scores = rm.score([long, short], max_length=24)
    assert scores[0].ok and scores[1].ok
    assert scores[0].details == {"tokens": 24, "truncated": True, "chat_template": True,
                                 "dropped_tokens": full.length - 24, "truncation_side": "left"}
    assert scores[1].details is not None and scores[1].details["truncated"] is False
    right = rm.score([long], max_length=24, truncation_side="right")[0]
    assert right.details is not None and right.details["truncation_side"] == "right"
    assert right.value != scores[0].value


def test_chat_template_renders_messages(models: dict[str, Path]) -> None:
    rm = SequenceClassifierRM(models["llama_chat"], device="cpu")
    sample = Sample(prompt=[{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "What is the capital of France?"}],
                    response="Paris.")
    text = "[system] Be brief.\n[user] What is the capital of France?\n[assistant] Paris.\n"
    enc = rm.tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        expected = float(rm.model(**enc).logits[0, 0])
    got = rm.score([sample])[0]
    assert got.ok and got.details is not None and got.details["chat_template"] is True
    assert got.value == pytest.approx(expected, abs=1e-6)
    # without the template the prompt and response are a text pair: a different input
    plain = rm.score([sample], chat_template=False)[0]
    assert plain.details is not None and plain.details["chat_template"] is False
    assert plain.value != pytest.approx(expected, abs=1e-6)


def test_several_outputs_become_components(models: dict[str, Path],
                                           hh_samples: list[Sample]) -> None:
    rm = SequenceClassifierRM(models["bert3"], device="cpu")
    assert rm.labels == ["helpful", "harmless", "honest"]
    unpicked = rm.score(hh_samples[:2])
    assert [s.status.value for s in unpicked] == ["error", "error"]
    assert "helpful, harmless, honest" in (unpicked[0].reason or "")
    assert set(unpicked[0].components) == {"helpful", "harmless", "honest"}
    picked = rm.score(hh_samples[:2], output="harmless")
    by_index = rm.score(hh_samples[:2], output=1)
    for p, q in zip(picked, by_index, strict=True):
        assert p.value == p.components["harmless"] == q.value
    mixed = rm.score(hh_samples[:2], weights={"helpful": 0.5, "honest": 2.0})
    for m in mixed:
        c = m.components
        assert m.value == pytest.approx(0.5 * c["helpful"] + 2.0 * c["honest"])  # type: ignore[operator]
    with pytest.raises(ValueError, match="no output 'kind'"):
        rm.score(hh_samples[:1], output="kind")


def test_registered_reward_scores_and_fingerprints_content(models: dict[str, Path],
                                                           hh_samples: list[Sample],
                                                           tmp_path: Path) -> None:
    direct = SequenceClassifierRM(models["llama"], device="cpu").score(hh_samples[:4])
    via = rewardlab.score(hh_samples[:4], classifier_rm(path=str(models["llama"]),
                                                        device="cpu"))
    assert [s.value for s in via] == pytest.approx([s.value for s in direct], abs=1e-6)
    spec = {"reward": {"reward": "rewardlab.models.classifier:classifier_rm",
                       "params": {"path": str(models["llama"]), "device": "cpu"}}}
    assert [s.value for s in rewardlab.score(hh_samples[:4], spec)] == \
        pytest.approx([s.value for s in direct], abs=1e-6)
    # a different model saved to the same path is a different reward for the score cache
    target = tmp_path / "rm"
    shutil.copytree(models["llama"], target)
    before = classifier_rm(path=str(target)).fingerprint
    _build("llama", target, seed=9)
    after = classifier_rm(path=str(target)).fingerprint
    assert before != after
    with pytest.raises(ValueError, match="does not exist"):
        classifier_rm(path=str(tmp_path / "missing"))
