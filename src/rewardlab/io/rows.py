"""Map the rows users already have on disk to `Sample`s, without a conversion step.

Understood layouts (the first field present wins):

- TRL: ``prompt`` / ``completion`` (text or messages), reference in ``solution`` / ``answer``;
  a conversational ``messages`` column (the last assistant message is the response);
- verl: ``data_source``, ``prompt`` (messages), ``reward_model.ground_truth``, ``extra_info``,
  response in ``response`` / ``responses`` / ``solution_str``;
- OpenRLHF: ``query`` (prompt + response as one string), ``prompt``, ``label``;
- plain: ``prompt`` / ``question`` / ``problem`` / ``instruction`` and ``response`` /
  ``output``, reference in ``reference`` / ``ground_truth`` / ``gold`` / ``label``.

Columns not used for prompt, response, reference and id go to `metadata`. A `mapping` (the
CLI's ``--map response=output.text``) names the field for any of ``prompt``, ``response``,
``reference``, ``id``, ``trajectory`` by a dotted path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rewardlab.core.types import Sample

PROMPT_KEYS = ("prompt", "question", "problem", "instruction", "input")
RESPONSE_KEYS = ("response", "completion", "responses", "solution_str", "output", "generation")
REFERENCE_KEYS = ("reference", "reward_model.ground_truth", "ground_truth", "solution", "answer",
                  "label", "gold", "target")
ID_KEYS = ("id", "uid", "task_id", "unique_id", "sample_id")
_MISSING = object()
_TEXT_FIELDS = {"prompt", "response", "reference", "id"}


def get_path(row: Mapping[str, Any], dotted: str) -> Any:
    """``row["a"]["b"]`` for ``"a.b"``; a missing step gives the `_MISSING` marker."""
    cur: Any = row
    for part in dotted.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def _first(row: Mapping[str, Any], keys: tuple[str, ...], used: set[str],
           chosen: dict[str, str] | None = None, target: str = "") -> Any:
    for k in keys:
        v = row.get(k) if "." not in k else get_path(row, k)
        if v is not _MISSING and v is not None:
            used.add(k.split(".", 1)[0])
            if chosen is not None:
                chosen[target] = k
            return v
    return _MISSING


@dataclass(frozen=True)
class _Plan:
    """Which plain column gives each field, for rows with one key layout (text rows only)."""

    response: str
    prompt: str | None
    reference: str | None
    id: str | None
    meta: tuple[str, ...]


_PLANS: dict[tuple[str, ...], _Plan | None] = {}
_CANDIDATES = {"response": RESPONSE_KEYS, "prompt": PROMPT_KEYS, "reference": REFERENCE_KEYS,
               "id": ID_KEYS}


def _layout_decides(row: Mapping[str, Any], chosen: dict[str, str]) -> bool:
    """True when the keys alone decide the choices: no candidate ahead of (or instead of) a
    chosen column is present, so another row's values could not change them."""
    for target, keys in _CANDIDATES.items():
        pick = chosen.get(target)
        ahead = keys[: keys.index(pick)] if pick else keys
        if any(k.split(".", 1)[0] in row for k in ahead):
            return False
    return True


def _planned(row: Mapping[str, Any], plan: _Plan, row_id: str | None) -> Sample | None:
    """The sample by a cached plan, or None when this row's values need the full rules."""
    response = row[plan.response]
    prompt = row[plan.prompt] if plan.prompt else ""
    if type(response) is not str or type(prompt) is not str:
        return None
    reference = None
    if plan.reference is not None:
        reference = row[plan.reference]
        if reference is None:
            return None
    sid = row_id
    if plan.id is not None:
        raw = row[plan.id]
        if raw is None:
            return None
        sid = str(raw)
    return Sample.from_text(prompt, response, reference, {k: row[k] for k in plan.meta}, sid)


def _is_messages(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(m, Mapping) and "role" in m for m in v)


def to_sample(row: Mapping[str, Any], mapping: Mapping[str, str] | None = None,
              row_id: str | None = None) -> Sample:
    """A `Sample` from one row; raises `ValueError` (with what is wrong) when it cannot."""
    if not mapping and isinstance(row, dict):
        layout = tuple(row)
        plan = _PLANS.get(layout)
        if plan is not None:
            fast = _planned(row, plan, row_id)
            if fast is not None:
                return fast
        elif layout not in _PLANS and len(_PLANS) < 256:
            sample, made = _to_sample(row, {}, row_id, plan=True)
            _PLANS[layout] = made
            return sample
    return _to_sample(row, mapping or {}, row_id, plan=False)[0]


def _to_sample(row: Mapping[str, Any], mapping: Mapping[str, str], row_id: str | None,
               plan: bool) -> tuple[Sample, _Plan | None]:
    """The full rules; with `plan`, also the plan that reproduces them for this key layout
    (None when the row needs more than plain columns)."""
    used: set[str] = set()
    fields: dict[str, Any] = {}
    chosen: dict[str, str] = {}
    for target, src in mapping.items():
        v = get_path(row, src)
        if v is _MISSING:
            raise ValueError(f"mapped field {src!r} (for {target}) is not in the row")
        fields[target] = v
        used.add(src.split(".")[0])

    if "response" not in fields:
        v = _first(row, RESPONSE_KEYS, used, chosen, "response")
        if v is not _MISSING:
            if isinstance(v, list) and not _is_messages(v):  # verl's `responses`: one per row
                if len(v) != 1:
                    raise ValueError(f"response is a list of {len(v)} items; one row, one response")
                v = v[0]
        elif _is_messages(row.get("messages")):
            msgs = row["messages"]
            last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=-1)
            if last < 0:
                raise ValueError("'messages' has no assistant message to score")
            v = [msgs[last]]
            fields.setdefault("prompt", msgs[:last])
            used.add("messages")
        elif isinstance(row.get("query"), str):
            query, prompt = row["query"], row.get("prompt")
            v = query
            if isinstance(prompt, str) and query.startswith(prompt):
                v = query[len(prompt):]
                fields.setdefault("prompt", prompt)
                used.add("prompt")
            used.add("query")
        else:
            raise ValueError(
                "no response field (looked for " + ", ".join(RESPONSE_KEYS)
                + ", messages, query; use --map response=FIELD)")
        fields["response"] = v
    if "prompt" not in fields:
        v = _first(row, PROMPT_KEYS, used, chosen, "prompt")
        fields["prompt"] = "" if v is _MISSING else v
    if "reference" not in fields:
        v = _first(row, REFERENCE_KEYS, used, chosen, "reference")
        if v is not _MISSING:
            fields["reference"] = v
    if "id" not in fields:
        v = _first(row, ID_KEYS, used, chosen, "id")
        if v is not _MISSING:
            fields["id"] = str(v)
    if row_id is not None and fields.get("id") is None:
        fields["id"] = row_id
    if "trajectory" not in fields and isinstance(row.get("trajectory"), list):
        fields["trajectory"] = row["trajectory"]
        used.add("trajectory")
    meta = {k: v for k, v in row.items() if k not in used}
    if isinstance(row.get("metadata"), Mapping):
        meta.pop("metadata")
        meta = {**row["metadata"], **meta}
    if isinstance(fields.get("prompt"), str | list) is False:
        fields["prompt"] = str(fields["prompt"])
    if not isinstance(fields["response"], str | list):
        raise ValueError(f"response is a {type(fields['response']).__name__}, expected text or messages")
    if type(fields["prompt"]) is str and type(fields["response"]) is str \
            and fields.keys() <= _TEXT_FIELDS and isinstance(fields.get("id"), str | None):
        made = None
        if plan and "response" in chosen and "metadata" not in row \
                and all("." not in k for k in chosen.values()) and _layout_decides(row, chosen):
            made = _Plan(chosen["response"], chosen.get("prompt"), chosen.get("reference"),
                         chosen.get("id"), tuple(meta))
        return Sample.from_text(fields["prompt"], fields["response"], fields.get("reference"),
                                meta, fields.get("id")), made
    try:
        return Sample(metadata=meta, **fields), None
    except ValueError as exc:
        first = str(exc).splitlines()
        raise ValueError("; ".join(first[:3])) from None
