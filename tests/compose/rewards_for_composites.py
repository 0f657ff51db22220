"""Small rewards with finer values and declared costs, for the composite tests. Each reads what it
returns from the sample's metadata, so a test states the children's scores exactly."""

from __future__ import annotations

import math
import re
from typing import Any

from rewardlab import reward
from rewardlab.core.types import Cost, Score, TokenScores


@reward(register=False, range=(-100, 100), granularity="step")
def stepped(metadata: dict[str, Any], *, key: str = "steps") -> Score:
    """The sum of the per-step values metadata[key] (kept in `steps`); abstains without them."""
    steps = metadata.get(key)
    if steps is None:
        return Score.abstain(f"no {key}")
    return Score.of(math.fsum(steps), steps=[float(v) for v in steps])


@reward(register=False, range=(0, 1), granularity="step")
def unit_stepped(metadata: dict[str, Any], *, key: str = "u") -> Score:
    """metadata[key] in [0, 1], with per-step values metadata[key + "_steps"]."""
    return Score.of(float(metadata[key]), steps=[float(v) for v in metadata[key + "_steps"]])


@reward(register=False, range=(-100, 100), granularity="token")
def tokened(response_text: str, metadata: dict[str, Any], *, key: str = "tok", tokenizer: str = "ws",
            skip_first: bool = False) -> Score:
    """The sum of per-token values metadata[key] over the whitespace tokens of the response
    (kept in `tokens` with their offsets); `skip_first` leaves out the first token."""
    offsets = [(m.start(), m.end()) for m in re.finditer(r"\S+", response_text)]
    if skip_first:
        offsets = offsets[1:]
    values = [float(v) for v in metadata[key]]
    if len(values) != len(offsets):
        return Score.error(f"{len(values)} values for {len(offsets)} tokens")
    return Score.of(math.fsum(values), tokens=TokenScores(tokenizer=tokenizer, values=values, offsets=offsets))


@reward(register=False, range=(0, 1))
def flag(metadata: dict[str, Any], *, key: str = "ok") -> float:
    """metadata[key], a number in [0, 1] (a sequence-level reward)."""
    return float(metadata[key])


@reward(register=False, range=(0, 1))
def priced(metadata: dict[str, Any], *, key: str = "p") -> Score:
    """metadata[key]["v"] in [0, 1], with the cost in metadata[key] (seconds, input_tokens,
    output_tokens, usd) as a judge would report it; an error, with the cost, when "v" is absent."""
    spec = metadata[key]
    cost = Cost(seconds=spec["seconds"], input_tokens=spec["input_tokens"],
                output_tokens=spec["output_tokens"], usd=spec["usd"])
    if spec.get("v") is None:
        return Score.error("judge outage", cost=cost, details={"attempts": 3})
    return Score.of(spec["v"], cost=cost, details={"raw": f"[[{spec['v']}]]"})
