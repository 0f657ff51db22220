"""The reward server against a naive per-request server, side by side in one run.

- **rewardlab**: ``rewardlab serve REWARD --no-cache --workers 2`` (micro-batching across
  requests onto one long-lived Runtime; defaults: batches of at most 64, 5 ms wait, 2 at once).
- **naive**: the OpenRLHF ``serve_rm`` pattern: a FastAPI ``async def /get_reward`` handler that
  scores its request's samples itself, synchronously (blocking the event loop), with
  ``rewardlab.score(samples, REWARD)`` on the process-wide default Runtime (the same reward, the
  same process pool and sandbox; no batching across requests). Written here for the comparison.

Both answer OpenRLHF's protocol. The load is OpenRLHF's: one sample per ``POST /get_reward``,
from 1, 16 and 64 concurrent clients (asyncio + one aiohttp session) on 127.0.0.1, for
``math_answer`` (GSM8K test questions, answers right and wrong in turn), the sandboxed
``code_pass`` (HumanEval canonical solutions and ``return None`` bodies in turn) and the model
reward ``embedding_rm`` (a linear head on the bundled all-MiniLM-L6-v2, trained in the setup on
the first ``--rm-pairs`` HH-RLHF harmless-base pairs, scoring the chosen and rejected responses
of the next pairs in turn). Per cell: requests/s (= samples/s: one sample a request), p50 and p99
request latency, errors (failed requests, or replies whose reward differs from the expected one:
exactly for the rule rewards, within 1e-3 for the model, whose expected values are scored in
process before the load), and the ratio of rewardlab's throughput to the naive server's.

    python -m benchmarks.bench_serve            # full run
    python -m benchmarks.bench_serve --quick    # small smoke run
    python -m benchmarks.bench_serve --rewards embedding_rm
    python -m benchmarks.bench_serve --rm-batching   # the model in process: one sample a call vs one batch
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "verifiable"
HH = ROOT.parent / "shared" / "data" / "preference" / "hh_rlhf_harmless_base_test.jsonl.gz"
CONCURRENCY = (1, 16, 64)
MODEL_TOLERANCE = 1e-3  # a model's logits may differ in the last digits with the batch they are scored in


def train_rm(out: Path, pairs: int) -> list[Any]:
    """Train a linear embedding reward model on the first `pairs` HH-RLHF harmless-base pairs
    (bundled all-MiniLM-L6-v2, no embedding cache), save it in `out`, and return the pairs it
    was not trained on."""
    from rewardlab.models.embedding import Embedder, TrainConfig, read_pairs, train_embedding_rm

    data, _ = read_pairs(HH)
    t0 = time.perf_counter()
    embedder = Embedder(cache=False)
    rm = train_embedding_rm(data[:pairs], TrainConfig(epochs=20, seed=0), embedder=embedder)
    rm.save(out)
    embedder.close()
    r = rm.report
    print(f"embedding_rm: trained on {pairs} HH-RLHF pairs in {time.perf_counter() - t0:.1f} s; "
          f"validation accuracy {r.val_accuracy if r else float('nan'):.3f}", flush=True)
    return data[pairs:]


def naive_server(reward: str, port: int) -> None:
    """Run the naive per-request server (the OpenRLHF serve_rm pattern) until SIGTERM."""
    import uvicorn
    from fastapi import FastAPI, Request

    import rewardlab
    from rewardlab.api import build
    from rewardlab.serve.openrlhf import QuerySplitter, reply

    spec = build(reward)
    splitter = QuerySplitter()
    app = FastAPI()

    async def get_reward(request: Request) -> dict[str, Any]:
        data = await request.json()
        labels = data.get("labels") or [None] * len(data["query"])
        samples = [splitter.sample(q, p, lab) for q, p, lab in zip(data["query"], data["prompts"], labels, strict=True)]
        scores = rewardlab.score(samples, spec)  # synchronous, in the handler: blocks the loop
        return reply(scores, [], 0.0)

    get_reward.__annotations__ = {"request": Request}  # resolved here: the module's annotations are strings
    app.post("/get_reward")(get_reward)

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    rewardlab.score([rewardlab.Sample()], spec)  # warm up: the pool, the sandbox
    print("ready", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _start(cmd: list[str]) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == "ready":
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(300) or proc.poll() is not None:
        _stop(proc)
        raise RuntimeError(f"server did not start: {cmd}: {lines}")
    return proc, lines


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def workload(reward: str, n: int, held_out: list[Any] | None = None,
             model_path: Path | None = None) -> tuple[list[dict[str, Any]], list[float]]:
    """`n` one-sample OpenRLHF payloads and the reward each should get."""
    payloads, expected = [], []
    if reward == "math_answer":
        rows = [json.loads(line) for line in (DATA / "gsm8k_test.jsonl").read_text().splitlines()]
        for i in range(n):
            r = rows[i % len(rows)]
            gold = r["answer"].split("####")[-1].strip().replace(",", "")
            prompt = f"<|im_start|>user\n{r['question']}<|im_end|>\n<|im_start|>assistant\n"
            answer = gold if i % 2 == 0 else str(int(gold) + 1)
            payloads.append({"query": [prompt + f"The answer is \\boxed{{{answer}}}."], "prompts": [prompt],
                             "labels": [gold]})
            expected.append(1.0 if i % 2 == 0 else 0.0)
    elif reward == "code_pass":
        with gzip.open(DATA / "HumanEval.jsonl.gz", "rt") as fh:
            rows = [json.loads(line) for line in fh]
        for i in range(n):
            r = rows[(i // 2) % len(rows)]
            body = r["canonical_solution"] if i % 2 == 0 else "    return None\n"
            prompt = f"<|im_start|>user\n{r['prompt']}<|im_end|>\n<|im_start|>assistant\n"
            payloads.append({"query": [prompt + f"```python\n{r['prompt']}{body}\n```"], "prompts": [prompt],
                             "labels": [r]})
            expected.append(1.0 if i % 2 == 0 else 0.0)
    else:  # a model reward: HH-RLHF dialogues the model was not trained on, chosen and rejected in turn
        import rewardlab
        from rewardlab.api import build
        from rewardlab.core.types import Sample

        assert held_out and model_path, "embedding_rm needs its model and held-out pairs"
        samples = []
        for i in range(n):
            pair = held_out[(i // 2) % len(held_out)]
            response = pair.chosen if i % 2 == 0 else pair.rejected
            prompt = pair.prompt if i % 2 == 0 else (pair.rejected_prompt or pair.prompt)
            prompt = prompt if isinstance(prompt, str) else json.dumps(prompt)
            response = response if isinstance(response, str) else json.dumps(response)
            payloads.append({"query": [prompt + response], "prompts": [prompt], "labels": [""]})
            samples.append(Sample.from_text(prompt, response))
        # the expected values, scored in process in one batch before the load
        scores = rewardlab.score(samples, build(reward, path=str(model_path)))
        if not all(s.ok for s in scores):
            raise RuntimeError(f"{reward}: the expected scores are not all ok")
        expected = [float(s.value) for s in scores]  # type: ignore[arg-type]
    return payloads, expected


async def _load(url: str, payloads: list[dict[str, Any]], expected: list[float], clients: int,
                tolerance: float = 0.0) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    todo = iter(range(len(payloads)))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:

        async def client() -> None:
            nonlocal errors
            for i in todo:
                t0 = time.perf_counter()
                try:
                    async with session.post(url, json=payloads[i]) as resp:
                        body = await resp.json()
                        got = body["rewards"]
                        ok = (resp.status == 200 and len(got) == 1
                              and abs(got[0] - expected[i]) <= tolerance * max(1.0, abs(expected[i])))
                except (aiohttp.ClientError, KeyError, TypeError, ValueError):
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - t0
    latencies.sort()
    return {"requests": len(payloads), "seconds": seconds, "rps": len(payloads) / seconds,
            "p50": statistics.median(latencies), "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "errors": errors}


def run_reward(reward: str, n: int, concurrency: tuple[int, ...], held_out: list[Any] | None = None,
               model_path: Path | None = None) -> list[dict[str, Any]]:
    """Both servers for `reward` (a registered name; `model_path`: the saved model of a model
    reward), loaded at each concurrency in turn."""
    spec = f"{reward}(timeout=10)" if reward == "code_pass" else reward
    if model_path is not None:
        spec = f"{reward}(path={model_path})"
    payloads, expected = workload(reward, n, held_out, model_path)
    tolerance = MODEL_TOLERANCE if model_path is not None else 0.0
    served = _served(spec)
    ours, lines = _start([sys.executable, "-m", "rewardlab.cli", "serve", *served, "--no-cache",
                          "--workers", "2", "--port", "0"])
    url_ours = next(line.split()[1] for line in lines if line.startswith("listening http")) + "/get_reward"
    port = _free_port()
    naive, _ = _start([sys.executable, "-m", "benchmarks.bench_serve", "--naive-server", spec, "--port", str(port)])
    url_naive = f"http://127.0.0.1:{port}/get_reward"
    rows = []
    try:
        for url in (url_naive, url_ours):  # warm both
            asyncio.run(_load(url, payloads[:8], expected[:8], 4, tolerance))
        for c in concurrency:
            cell = {}
            for name, url in (("naive", url_naive), ("rewardlab", url_ours)):
                cell[name] = asyncio.run(_load(url, payloads, expected, c, tolerance))
            rows.append({"reward": reward if model_path is not None else spec, "clients": c, **cell})
            print(_row(rows[-1]), flush=True)
    finally:
        _stop(ours)
        _stop(naive)
    return rows


def model_batching(model_path: Path, held_out: list[Any], n: int = 64) -> None:
    """In process, no server: the model reward's milliseconds per sample scored one sample a
    call and `n` samples in one call (what micro-batching can gain for it on this machine)."""
    import rewardlab
    from rewardlab.api import build
    from rewardlab.core.types import Sample

    spec = build("embedding_rm", path=str(model_path))
    samples = [Sample.from_text(p.prompt if isinstance(p.prompt, str) else json.dumps(p.prompt),
                                p.chosen if isinstance(p.chosen, str) else json.dumps(p.chosen)) for p in held_out[:n]]
    rewardlab.score(samples[:4], spec)  # load the model
    t0 = time.perf_counter()
    for s in samples:
        rewardlab.score([s], spec)
    one = (time.perf_counter() - t0) / len(samples)
    t0 = time.perf_counter()
    rewardlab.score(samples, spec)
    batched = (time.perf_counter() - t0) / len(samples)
    print(f"embedding_rm in process: {one * 1e3:.1f} ms/sample one at a time, {batched * 1e3:.1f} ms/sample in one "
          f"batch of {len(samples)} ({one / batched:.2f}x)", flush=True)


def _served(spec: str) -> list[str]:
    """`rewardlab serve` arguments for a spec written ``name`` or ``name(key=value, ...)``."""
    name, _, args = spec.partition("(")
    params = [kv.strip() for kv in args.rstrip(")").split(",") if kv.strip()]
    return [name, *(x for kv in params for x in ("-p", kv))]


def _row(r: dict[str, Any]) -> str:
    n, o = r["naive"], r["rewardlab"]
    return (f"| `{r['reward']}` | {r['clients']} | {n['requests']} | {n['rps']:.1f} | {n['p50'] * 1e3:.1f} | "
            f"{n['p99'] * 1e3:.1f} | {n['errors']} | {o['rps']:.1f} | {o['p50'] * 1e3:.1f} | {o['p99'] * 1e3:.1f} | "
            f"{o['errors']} | {o['rps'] / n['rps']:.2f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--naive-server", metavar="REWARD", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--rewards", nargs="*", default=["math_answer", "code_pass", "embedding_rm"])
    ap.add_argument("--rm-batching", action="store_true",
                    help="only train the embedding_rm and time it one sample a call and in one batch")
    ap.add_argument("--rm-pairs", type=int, default=256, help="HH-RLHF pairs the embedding_rm is trained on")
    args = ap.parse_args(argv)
    if args.naive_server:
        from rewardlab.api import build

        name, _, _ = args.naive_server.partition("(")
        params = dict(kv.split("=", 1) for kv in _served(args.naive_server)[2::2])
        if name == "code_pass":
            params = {k: float(v) for k, v in params.items()}
        naive_server(build(name, **params) if params else name, args.port)  # type: ignore[arg-type]
        return
    if args.rm_batching:
        with tempfile.TemporaryDirectory(prefix="bench-serve-rm-") as tmp:
            model_batching(Path(tmp) / "rm", train_rm(Path(tmp) / "rm", args.rm_pairs))
        return
    sizes = {"math_answer": 40 if args.quick else 2000, "code_pass": 16 if args.quick else 480,
             "embedding_rm": 32 if args.quick else 480}
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| reward | clients | requests | naive req/s | naive p50 ms | naive p99 ms | naive errors | "
          "rewardlab req/s | rewardlab p50 ms | rewardlab p99 ms | rewardlab errors | ratio (req/s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-serve-rm-") as tmp:
        for reward in args.rewards:
            if reward == "embedding_rm":
                path = Path(tmp) / "rm"
                held_out = train_rm(path, args.rm_pairs)
                run_reward(reward, sizes[reward], CONCURRENCY, held_out, path)
            else:
                run_reward(reward, sizes[reward], CONCURRENCY)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
