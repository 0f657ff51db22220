"""Embedding reward models: reading preference data, embedding cache, deterministic training,
bit-exact save/load, ensembles, the reward, the CLI verb, and an end-to-end run on HH-RLHF.

Fast tests use a tiny randomly initialised sentence-transformers model built here; the
end-to-end tests (marked slow) use the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from pathlib import Path

import pytest

from rewardlab.core.types import Message, PreferencePair
from rewardlab.models.embedding import RatedResponse, read_pairs, read_rated

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HH = Path("preference") / "hh_rlhf_harmless_base_test.jsonl.gz"


# -- reading data (no torch needed) ---------------------------------------------------------------

def test_reads_hh_rlhf_pairs(shared_data: Path) -> None:
    pairs, problems = read_pairs(shared_data / HH)
    assert problems == [] and len(pairs) == 2312
    assert all(p.prompt.endswith("\n\nAssistant:") for p in pairs)
    assert all(p.chosen != p.rejected for p in pairs)
    with gzip.open(shared_data / HH, "rt", encoding="utf-8") as f:
        first = json.loads(f.readline())
    p = pairs[0]
    assert p.prompt + " " + p.chosen == first["chosen"]
    assert p.prompt_of_rejected + " " + p.rejected == first["rejected"]
    # whole dialogues whose earlier turns differ keep each side's own prompt
    differing = [q for q in pairs if q.rejected_prompt is not None]
    assert 0 < len(differing) < 20
    assert all(q.rejected_prompt != q.prompt for q in differing)


def test_reads_prompt_columns_messages_margins_and_reports_bad_rows(tmp_path: Path) -> None:
    rows = [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 2},
        {"prompt": "Q: capital?", "chosen": "Q: capital? Paris", "rejected": "Q: capital? Rome"},
        {"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}],
         "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "go"}]},
        {"chosen": "only one side"},
        {"prompt": "x", "chosen": "a", "rejected": "b", "margin": "big"},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    pairs, problems = read_pairs(path)
    hi = [Message(role="user", content="hi")]
    assert pairs == [
        PreferencePair(prompt="2+2?", chosen="4", rejected="5", margin=2.0),
        PreferencePair(prompt="Q: capital?", chosen=" Paris", rejected=" Rome"),
        PreferencePair(prompt=hi, chosen=[Message(role="assistant", content="hey")],
                       rejected=[Message(role="assistant", content="go")]),
    ]
    # the trainer embeds a conversation's prompt as role-prefixed lines and its last answer
    from rewardlab.models.embedding import pair_texts

    assert pair_texts(pairs[2:]) == (["user: hi", "user: hi"], ["hey", "go"])
    assert pair_texts(pairs[:2]) == (["2+2?", "Q: capital?"] * 2, ["4", " Paris", "5", " Rome"])
    assert [p.split(":")[0] for p in problems] == ["line 4", "line 5", "line 6"]
    assert "chosen" in problems[0] and "margin" in problems[1] and "JSON" in problems[2]

    rated = tmp_path / "rated.jsonl"
    rated.write_text(json.dumps({"prompt": "p", "response": "r", "rating": 3.5}) + "\n"
                     + json.dumps({"prompt": "p", "response": "r"}) + "\n")
    items, bad = read_rated(rated)
    assert items == [RatedResponse("p", "r", 3.5)] and len(bad) == 1


# -- training on a tiny local model ---------------------------------------------------------------

HAVE_MODELS = all(importlib.util.find_spec(m) for m in ("torch", "sentence_transformers"))
needs_models = pytest.mark.skipif(not HAVE_MODELS,
                                  reason="needs the models extra (torch, sentence-transformers)")


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised sentence-transformers model with the MiniLM tokenizer."""
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.models import Pooling, Transformer

    from rewardlab.models._hf import bundled_embedding_model

    root = tmp_path_factory.mktemp("tiny_st")
    tok = transformers.AutoTokenizer.from_pretrained(bundled_embedding_model(),
                                                     local_files_only=True)
    cfg = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64)
    torch.manual_seed(0)
    transformers.BertModel(cfg).save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    body = Transformer(str(root / "bert"), max_seq_length=64)
    SentenceTransformer(modules=[body, Pooling(32, "mean")], device="cpu").save(
        str(root / "st"))
    return root / "st"


@pytest.fixture(scope="module")
def hh_pairs(shared_data: Path) -> list[PreferencePair]:
    return read_pairs(shared_data / HH)[0]


def _embedder(model: Path | None, cache: Path | bool) -> object:
    from rewardlab.models.embedding import Embedder

    return Embedder(model, device="cpu", cache=cache)


@needs_models
def test_embedding_cache_serves_the_same_vectors(tiny_st: Path, hh_pairs: list[PreferencePair],
                                                 tmp_path: Path) -> None:
    texts = [p.chosen for p in hh_pairs[:40]]
    first = _embedder(tiny_st, tmp_path / "emb.sqlite")
    vecs = first.embed(texts)
    assert vecs.shape == (40, 32) and vecs.dtype.name == "float32"
    again = _embedder(tiny_st, tmp_path / "emb.sqlite")

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("cached embeddings were recomputed")

    again.model.encode = refuse
    assert (again.embed(texts[::-1])[::-1] == vecs).all()
    # no cache: recomputed, same values
    fresh = _embedder(tiny_st, False).embed(texts)
    assert fresh == pytest.approx(vecs, abs=1e-6)


@needs_models
def test_training_is_deterministic_and_a_saved_model_reloads_bit_exact(
        tiny_st: Path, hh_pairs: list[PreferencePair], tmp_path: Path) -> None:
    import rewardlab
    from rewardlab.core.types import Sample
    from rewardlab.models.embedding import EmbeddingRM, TrainConfig, embedding_rm, train_embedding_rm

    pairs = hh_pairs[:150]
    cache = tmp_path / "emb.sqlite"
    cfg = TrainConfig(head="mlp", hidden=16, ensemble=3, epochs=4, seed=7, weight_decay=0.1)
    a = train_embedding_rm(pairs, cfg, embedder=_embedder(tiny_st, cache))
    b = train_embedding_rm(pairs, cfg, embedder=_embedder(tiny_st, cache))
    samples = [Sample(prompt=p.prompt, response=p.chosen) for p in hh_pairs[150:170]]
    sa, sb = a.score(samples), b.score(samples)
    assert [s.value for s in sa] == [s.value for s in sb]
    assert a.report is not None and a.report.val_size == 15 and a.report.train_size == 135
    assert a.report.val_accuracy is not None and len(a.report.epoch_losses) == 4
    other = train_embedding_rm(pairs, TrainConfig(**{**cfg.__dict__, "seed": 8}),
                               embedder=_embedder(tiny_st, cache))
    assert [s.value for s in other.score(samples)] != [s.value for s in sa]
    # a Bradley-Terry margin pushes chosen further above rejected on the training pairs
    lin = TrainConfig(epochs=8, weight_decay=0.1, val_fraction=0.0, seed=3)
    plain = train_embedding_rm(pairs, lin, embedder=_embedder(tiny_st, cache))
    wide = train_embedding_rm(pairs, TrainConfig(**{**lin.__dict__, "margin": 3.0}),
                              embedder=_embedder(tiny_st, cache))

    def gap(rm: EmbeddingRM) -> float:
        c = rm.score([Sample(prompt=p.prompt, response=p.chosen) for p in pairs])
        r = rm.score([Sample(prompt=p.prompt_of_rejected, response=p.rejected) for p in pairs])
        return sum(x.value - y.value for x, y in zip(c, r, strict=True)) / len(pairs)

    assert gap(wide) > gap(plain) > 0

    out = a.save(tmp_path / "rm")
    loaded = EmbeddingRM.load(out, embedding_model=str(tiny_st), device="cpu")
    assert [s.value for s in loaded.score(samples)] == [s.value for s in sa]
    # the registered reward reads the same directory (the saved model names its embedder)
    via = rewardlab.score(samples, embedding_rm(path=str(out)))
    assert [s.value for s in via] == [s.value for s in sa]
    assert [s.components for s in via] == [s.components for s in sa]


@needs_models
def test_ensemble_components_and_aggregates(tiny_st: Path, hh_pairs: list[PreferencePair],
                                            tmp_path: Path) -> None:
    from rewardlab.core.types import Sample
    from rewardlab.models.embedding import TrainConfig, train_embedding_rm

    rm = train_embedding_rm(hh_pairs[:100], TrainConfig(ensemble=4, epochs=3, seed=1),
                            embedder=_embedder(tiny_st, tmp_path / "e.sqlite"))
    samples = [Sample(prompt=p.prompt, response=p.rejected) for p in hh_pairs[200:210]]
    per_head = rm.score_texts([s.prompt_text for s in samples],
                              [s.response_text for s in samples])
    assert per_head.shape == (10, 4)
    for agg in ("mean", "min", "lcb"):
        for s, row in zip(rm.score(samples, agg), per_head, strict=True):
            c = s.components
            assert c["mean"] == pytest.approx(row.mean()) and c["min"] == row.min()
            assert c["std"] == pytest.approx(row.std()) and c["std"] > 0
            want = {"mean": c["mean"], "min": c["min"], "lcb": c["mean"] - c["std"]}[agg]
            assert s.value == pytest.approx(want)
    with pytest.raises(ValueError, match="aggregate"):
        rm.score(samples, "max")  # type: ignore[arg-type]


@needs_models
def test_trains_on_sets_and_conversations_read_from_real_rows(tiny_st: Path, shared_data: Path,
                                                             tmp_path: Path) -> None:
    """RewardBench 2-style sets and chat-message pairs (built from real HH-RLHF rows) train
    like dialogue pairs: a set counts as one pair per rejected response."""
    from rewardlab.core.types import PreferenceSet
    from rewardlab.io.preferences import read_preferences, split_dialogue
    from rewardlab.models.embedding import TrainConfig, train_embedding_rm

    with gzip.open(shared_data / HH, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(60), f, strict=False)]
    sets = []
    for i in range(0, 30, 3):
        prompt, chosen = split_dialogue(rows[i]["chosen"])
        sets.append({"prompt": prompt, "chosen": [chosen],
                     "rejected": [split_dialogue(rows[i + k]["rejected"])[1] for k in range(3)]})
    chats = [{"prompt": [{"role": "user", "content": f"question {i}"}],
              "chosen": [{"role": "assistant", "content": split_dialogue(r["chosen"])[1]}],
              "rejected": [{"role": "assistant", "content": split_dialogue(r["rejected"])[1]}]}
             for i, r in enumerate(rows[30:])]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*sets, *chats]))
    data = read_preferences(path)
    assert data.problems == [] and sum(isinstance(x, PreferenceSet) for x in data.items) == 10
    pairs, problems = read_pairs(path)
    assert problems == [] and len(pairs) == 10 * 3 + 30 == len(data.pairs())
    cfg = TrainConfig(epochs=2, val_fraction=0.0)
    rm = train_embedding_rm(data.items, cfg, embedder=_embedder(tiny_st, tmp_path / "e.sqlite"))
    assert rm.report is not None and rm.report.train_size == 60
    again = train_embedding_rm(pairs, cfg, embedder=_embedder(tiny_st, tmp_path / "e.sqlite"))
    probe = [p.samples()[0] for p in pairs[:5]]
    assert [s.value for s in rm.score(probe)] == [s.value for s in again.score(probe)]
    with pytest.raises(ValueError, match="needs preference pairs"):
        train_embedding_rm([RatedResponse("p", "r", 1.0)], cfg, embedder=_embedder(tiny_st, False))


@needs_models
def test_reload_refuses_a_different_embedding_model(tiny_st: Path, hh_pairs: list[PreferencePair],
                                                    tmp_path: Path) -> None:
    from rewardlab.models._hf import BUNDLED_EMBEDDING
    from rewardlab.models.embedding import EmbeddingRM, TrainConfig, train_embedding_rm

    rm = train_embedding_rm(hh_pairs[:50], TrainConfig(epochs=1),
                            embedder=_embedder(tiny_st, tmp_path / "e.sqlite"))
    out = rm.save(tmp_path / "rm")
    with pytest.raises(ValueError, match="not the one"):
        EmbeddingRM.load(out, embedding_model=BUNDLED_EMBEDDING)
    with pytest.raises(FileNotFoundError):
        EmbeddingRM.load(tmp_path)


@needs_models
def test_cli_trains_reports_validation_and_the_dir_is_a_reward(
        tiny_st: Path, shared_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import rewardlab
    from rewardlab.cli.train import train_app
    from rewardlab.core.types import Sample

    src = tmp_path / "pairs.jsonl.gz"
    with gzip.open(shared_data / HH, "rt", encoding="utf-8") as f, \
            gzip.open(src, "wt", encoding="utf-8") as g:
        for _, line in zip(range(120), f, strict=False):
            g.write(line)
        g.write("not json\n")
    out = tmp_path / "rm"
    res = CliRunner().invoke(train_app, [
        "embedding-rm", str(src), "--out", str(out), "--model", str(tiny_st), "-k", "2",
        "--epochs", "3", "--cache", str(tmp_path / "e.sqlite"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "validation accuracy" in res.output and "on 12 held-out pairs" in res.output
    assert "line 121" in res.output  # the unreadable row is reported, not hidden
    saved = json.loads((out / "embedding_rm.json").read_text())
    assert saved["config"]["ensemble"] == 2 and saved["report"]["val_size"] == 12
    spec = {"reward": {"reward": "rewardlab.models.embedding:embedding_rm",
                       "params": {"path": str(out)}}}
    scores = rewardlab.score([Sample(prompt="\n\nHuman: hi\n\nAssistant:", response="Hello!")],
                             spec)
    assert scores[0].ok and set(scores[0].components) == {"mean", "min", "std"}
    bad = CliRunner().invoke(train_app, ["embedding-rm", str(tmp_path / "missing.jsonl"),
                                         "--out", str(out)])
    assert bad.exit_code == 2


# -- end to end on HH-RLHF with the bundled MiniLM (slow) -----------------------------------------

@pytest.fixture(scope="module")
def minilm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the slow tests, so HH-RLHF is embedded once."""
    return tmp_path_factory.mktemp("minilm") / "emb.sqlite"


def _split(pairs: list[PreferencePair], seed: int = 0) -> tuple[list[PreferencePair], list[PreferencePair]]:
    import random

    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    return [pairs[i] for i in order[:1800]], [pairs[i] for i in order[1800:]]


@pytest.mark.slow
@needs_models
@pytest.mark.timeout(1800)  # embeds 2,312 dialogues: minutes on 2 cores
def test_minilm_rm_beats_chance_on_held_out_hh_rlhf(hh_pairs: list[PreferencePair],
                                                    minilm_cache: Path) -> None:
    """Trained on 1,800 HH-RLHF harmless-base pairs, tested on the other 512. Measured here:
    held-out accuracy 0.61 (the longer-response baseline gets 0.45 on this set)."""
    from rewardlab.audit.pairs import pair_accuracy
    from rewardlab.models.embedding import TrainConfig, train_embedding_rm

    train, test = _split(hh_pairs)
    emb = _embedder(None, minilm_cache)
    rm = train_embedding_rm(train, TrainConfig(), embedder=emb)
    result = pair_accuracy(rm.score, test)
    acc = result.accuracy
    assert result.n == len(test) and result.unscored == 0
    longer = sum(len(p.chosen) > len(p.rejected) for p in test) / len(test)
    print(f"held-out accuracy {acc:.4f} on {len(test)} pairs; longer-wins {longer:.4f}")
    assert acc > 0.57
    assert acc > longer + 0.08


@pytest.mark.slow
@needs_models
@pytest.mark.timeout(1800)
def test_minilm_regression_head_on_hh_ratings(hh_pairs: list[PreferencePair], minilm_cache: Path) -> None:
    """A regression head on chosen = 1 / rejected = 0 ratings also ranks held-out pairs."""
    from rewardlab.audit.pairs import pair_accuracy
    from rewardlab.models.embedding import TrainConfig, train_embedding_rm

    train, test = _split(hh_pairs)
    rows = [RatedResponse(p.prompt, p.chosen, 1.0) for p in train] + \
        [RatedResponse(p.prompt_of_rejected, p.rejected, 0.0) for p in train]
    rm = train_embedding_rm(rows, TrainConfig(objective="regression", val_fraction=0.1),
                            embedder=_embedder(None, minilm_cache))
    assert rm.report is not None and rm.report.val_rmse is not None
    assert rm.report.val_rmse < 0.6  # ratings are 0/1 with mean 0.5: predicting it gives 0.5
    assert rm.target_mean == pytest.approx(0.5, abs=0.02)
    assert pair_accuracy(rm.score, test).accuracy > 0.55
