"""Learned-reward benchmark: embedding reward models on HH-RLHF, and scoring throughput of the
embedding RM and of SmolLM2 implicit rewards, on CPU.

- Embedding RM: all-MiniLM-L6-v2 (bundled) embeddings of HH-RLHF harmless-base (2,312 pairs),
  a seeded split of 1,800 pairs to train on and 512 held out; heads: linear (the default), MLP,
  and a 5-head bootstrap ensemble. Baseline in the same run: longer response wins.
- Throughput: `rewardlab.score` with ``embedding_rm`` (embeddings computed, not cached) and with
  ``implicit_dpo`` (SmolLM2-135M-Instruct policy vs a noise-perturbed copy: two forward passes)
  and ``self_certainty`` (one), on HH-RLHF prompts and responses; items/s and tokens/s.

    python -m benchmarks.bench_models            # full run
    python -m benchmarks.bench_models --quick    # small smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(os.environ.get("REWARDLAB_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
HH = DATA / "preference" / "hh_rlhf_harmless_base_test.jsonl.gz"


def _split(pairs: list, n_train: int, seed: int = 0) -> tuple[list, list]:
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    return [pairs[i] for i in order[:n_train]], [pairs[i] for i in order[n_train:]]


def bench_embedding(quick: bool, work: Path, cache: Path | None = None
                    ) -> tuple[list[str], Path, list]:
    from rewardlab.audit.pairs import pair_accuracy
    from rewardlab.models.embedding import (
        Embedder,
        TrainConfig,
        read_pairs,
        train_embedding_rm,
    )

    pairs, _ = read_pairs(HH)
    if quick:
        pairs = pairs[:240]
    train, test = _split(pairs, 180 if quick else 1800)
    emb = Embedder(cache=cache or work / "emb.sqlite")  # default: fresh, so embedding is timed
    configs = [
        ("linear (default)", TrainConfig()),
        ("MLP 64, dropout 0.3", TrainConfig(head="mlp", hidden=64, dropout=0.3, weight_decay=10.0,
                                            epochs=10)),
        ("linear, 5-head ensemble", TrainConfig(ensemble=5)),
    ]
    rows = []
    saved: Path | None = None
    first_embed = 0.0
    for i, (name, cfg) in enumerate(configs):
        t0 = time.perf_counter()
        rm = train_embedding_rm(train, cfg, embedder=emb)
        total = time.perf_counter() - t0
        assert rm.report is not None
        acc = pair_accuracy(rm.score, test).accuracy
        extra = ""
        if cfg.ensemble > 1:
            lo = pair_accuracy(lambda batch, rm=rm: rm.score(batch, "min"), test).accuracy
            lcb = pair_accuracy(lambda batch, rm=rm: rm.score(batch, "lcb"), test).accuracy
            extra = f"; min over heads: {lo:.4f}, mean - std: {lcb:.4f}"
        rows.append(f"| embedding RM, {name} | {rm.report.seconds_embed:.1f} | "
                    f"{rm.report.seconds_train:.2f} | {total:.1f} | {acc:.4f}{extra} |")
        if i == 0:
            saved = rm.save(work / "rm")
            first_embed = rm.report.seconds_embed
    longer = sum((len(p.chosen) > len(p.rejected)) + 0.5 * (len(p.chosen) == len(p.rejected))
                 for p in test) / len(test)
    rows.append(f"| baseline: longer response wins | - | - | 0.0 | {longer:.4f} |")
    lines = [
        f"Embedding RM on HH-RLHF harmless-base: {len(train)} training pairs (10% of them held "
        f"out for the validation figure printed by training), {len(test)} test pairs; "
        f"all-MiniLM-L6-v2 on CPU ({os.cpu_count()} cores). The first row embeds the "
        f"training pairs' prompts and responses ({first_embed:.0f} s) and, in its total, the "
        "test pairs', into an empty cache; later rows reuse the cached embeddings. Test "
        "accuracy: share of test pairs where the chosen response scores higher (mean over "
        "heads unless said).",
        "",
        "| model | embed s | train s | total s | test accuracy |",
        "|---|---|---|---|---|",
        *rows,
    ]
    assert saved is not None
    return lines, saved, test


def bench_throughput(quick: bool, work: Path, rm_dir: Path, test: list) -> list[str]:
    import torch
    import transformers

    import rewardlab
    from rewardlab.core.types import Sample
    from rewardlab.models._hf import bundled_smollm2_gguf, resolve_causal_lm
    from rewardlab.models.embedding import embedding_rm, load_cached, prompt_view
    from rewardlab.models.implicit import implicit_dpo, load_causal_lm, self_certainty

    rows = []
    # embedding RM: every item embeds its prompt view and its response
    n_emb = 64 if quick else 512
    samples = [Sample(prompt=p.prompt, response=p.chosen) for p in test[:n_emb]]
    reward = embedding_rm(path=str(rm_dir))
    rewardlab.score(samples[:2], reward)  # load the model outside the timing
    t0 = time.perf_counter()
    scores = rewardlab.score(samples, reward)
    dt = time.perf_counter() - t0
    assert all(s.ok for s in scores)
    st = load_cached(str(rm_dir))  # the instance the reward used
    tok = st.embedder.model.tokenizer
    limit = st.embedder.model.max_seq_length
    n_tok = sum(len(tok(text, truncation=True, max_length=limit)["input_ids"])
                for s in samples for text in (prompt_view(s.prompt_text, 500), s.response_text))
    rows.append(f"| `embedding_rm` (MiniLM + linear head) | {len(samples)} | {dt:.1f} | "
                f"{len(samples) / dt:.1f} | {n_tok / dt:,.0f} | 1 encoder pass per text |")

    # SmolLM2 implicit rewards
    t0 = time.perf_counter()
    policy = resolve_causal_lm(bundled_smollm2_gguf())
    convert = time.perf_counter() - t0
    ref = work / "ref"
    model = transformers.AutoModelForCausalLM.from_pretrained(policy, local_files_only=True)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05 * float(p.std()))
    model.save_pretrained(ref)
    transformers.AutoTokenizer.from_pretrained(policy, local_files_only=True).save_pretrained(ref)
    del model
    t0 = time.perf_counter()
    lm = load_causal_lm(policy, "cpu")
    load_s = time.perf_counter() - t0
    load_causal_lm(ref, "cpu")
    n_lm = 8 if quick else 48
    lm_samples = [Sample(prompt=p.prompt, response=p.chosen) for p in test[:n_lm]]
    rendered = [lm.render(s) for s in lm_samples]
    n_tok = sum(len(r.prompt_ids) + len(r.response_ids) for r in rendered)
    for name, reward, passes in [
        ("`implicit_dpo` (policy + reference)", implicit_dpo(policy=str(policy), ref=str(ref),
                                                             device="cpu"), 2),
        ("`self_certainty` (policy only)", self_certainty(policy=str(policy), device="cpu"), 1),
    ]:
        t0 = time.perf_counter()
        scores = rewardlab.score(lm_samples, reward)
        dt = time.perf_counter() - t0
        assert all(s.ok for s in scores), [s.reason for s in scores if not s.ok][:3]
        rows.append(f"| {name} | {len(lm_samples)} | {dt:.1f} | {len(lm_samples) / dt:.2f} | "
                    f"{n_tok / dt:,.0f} | {passes} SmolLM2 pass(es) per item; "
                    f"{passes * n_tok / dt:,.0f} model tokens/s |")
    return [
        f"Scoring throughput on CPU ({os.cpu_count()} cores, torch {torch.__version__}, "
        f"{platform.python_version()}), HH-RLHF test prompts with their chosen responses "
        "(dialogue prompts rendered with SmolLM2's chat template). tokens/s counts the tokens "
        "of an item (prompt + response) once. SmolLM2-135M-Instruct: GGUF to safetensors "
        f"{convert:.1f} s (0 when already converted), load {load_s:.1f} s.",
        "",
        "| reward | items | seconds | items/s | tokens/s | notes |",
        "|---|---|---|---|---|---|",
        *rows,
    ]


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--embedding-cache", type=Path, default=None,
                    help="reuse this embedding cache (default: a fresh one, so embedding is timed)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        work = Path(tmp)
        emb_lines, rm_dir, test = bench_embedding(args.quick, work, args.embedding_cache)
        thr_lines = bench_throughput(args.quick, work, rm_dir, test)
    text = "\n".join([*emb_lines, "", *thr_lines, "",
                      f"Command: `python -m benchmarks.bench_models{' --quick' if args.quick else ''}`"])
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
