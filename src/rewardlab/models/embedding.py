"""Embedding-based reward models: a frozen sentence-embedding model turns (prompt, response)
into a vector; a small head trained on CPU in seconds maps it to a reward.

- `Embedder` embeds text with a local sentence-transformers model (the bundled all-MiniLM-L6-v2
  by default) and caches embeddings on disk, keyed by the model's content and the text's hash,
  so retraining a head with other settings never re-embeds.
- `train_embedding_rm` fits a Bradley–Terry head (linear or MLP, optional margin) on preference
  pairs and sets (`rewardlab.core.types.PreferencePair` / `PreferenceSet`, read from files by
  `rewardlab.io.preferences`), or a regression head on rated responses; ``ensemble=k`` trains k heads on bootstrap
  resamples, whose mean, worst case (min) and spread (std) come with every score. Training is
  seeded and deterministic.
- `EmbeddingRM` is the trained model: `save` / `load` a directory, `score` samples.
- The reward ``embedding_rm(path=DIR)`` scores with a saved model: reward logits in
  (-inf, inf), higher is better; ``components`` hold the ensemble's mean, min and std.

Heavy packages (torch, sentence-transformers) are imported on first use, not at import.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rewardlab.core.types import PreferencePair, PreferenceSet, Sample, Score
from rewardlab.io.preferences import preference_rows, read_preferences, split_dialogue
from rewardlab.models._hf import (
    BUNDLED_EMBEDDING,
    cache_root,
    dir_fingerprint,
    loaded,
    model_fingerprint,
    model_reward,
    need,
    pick_device,
    resolve_embedding_model,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "EmbeddingCache",
    "EmbeddingRM",
    "Embedder",
    "RatedResponse",
    "TrainConfig",
    "TrainReport",
    "embedding_rm",
    "read_pairs",
    "read_rated",
    "split_dialogue",
    "train_embedding_rm",
]

FORMAT = "rewardlab.embedding_rm"
FORMAT_VERSION = 1
CONFIG_FILE = "embedding_rm.json"
WEIGHTS_FILE = "heads.safetensors"

Progress = Callable[[str, int, int], None]
"""A progress callback: (stage, done, total)."""

Aggregate = Literal["mean", "min", "lcb"]


# -- data -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RatedResponse:
    """A (prompt, response) with a numeric rating, for a regression head."""

    prompt: str
    response: str
    rating: float


RATING_KEYS = ("rating", "score", "reward", "label")


def rated_from_row(row: dict[str, Any]) -> RatedResponse:
    """A `RatedResponse` from a row with a prompt, a response and a numeric rating
    (``rating`` / ``score`` / ``reward`` / ``label``)."""
    from rewardlab.io.rows import to_sample

    rating = next((row[k] for k in RATING_KEYS if isinstance(row.get(k), int | float)
                   and not isinstance(row.get(k), bool)), None)
    if rating is None or not math.isfinite(rating):
        raise ValueError("a rated row needs a finite number in one of: " + ", ".join(RATING_KEYS))
    clean = {k: v for k, v in row.items() if k not in RATING_KEYS}
    s = to_sample(clean)
    return RatedResponse(s.prompt_text, s.response_text, float(rating))


def read_pairs(path: str | os.PathLike[str]) -> tuple[list[PreferencePair], list[str]]:
    """Preference pairs from a file in any layout `rewardlab.io.preferences` reads (a set gives
    one pair per rejected response), and the rows that could not be read, each with its line
    and why."""
    data = read_preferences(path)
    return data.pairs(), data.problems


def read_rated(path: str | os.PathLike[str]) -> tuple[list[RatedResponse], list[str]]:
    """Rated responses from JSONL (``.gz`` too), JSON or Parquet, and the unreadable rows."""
    items: list[RatedResponse] = []
    problems: list[str] = []
    for row in preference_rows(path):
        if row.data is None:
            problems.append(f"{row.where}: {row.error}")
            continue
        try:
            items.append(rated_from_row(row.data))
        except ValueError as exc:
            problems.append(f"{row.where}: {exc}")
    return items, problems


def pair_texts(pairs: Sequence[PreferencePair]) -> tuple[list[str], list[str]]:
    """(prompts, responses) to embed for pairs: every chosen side, then every rejected side
    (each with the prompt it answers), as text."""
    prompts: list[str] = []
    responses: list[str] = []
    sides = [p.samples() for p in pairs]
    for k in (0, 1):
        for side in sides:
            prompts.append(side[k].prompt_text)
            responses.append(side[k].response_text)
    return prompts, responses


# -- embeddings -----------------------------------------------------------------------------------

def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    """Embeddings on disk (SQLite), keyed by (model content fingerprint, text sha256)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (model TEXT, text TEXT, dim INTEGER, "
                         "vec BLOB, PRIMARY KEY (model, text)) WITHOUT ROWID")
        self._db.commit()

    def get(self, model: str, keys: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i:i + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT text, vec FROM emb WHERE model=? AND text IN ({marks})",
                    [model, *chunk])
                out.update(rows)
        return out

    def put(self, model: str, items: Iterable[tuple[str, bytes, int]]) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?, ?)",
                                 [(model, k, d, v) for k, v, d in items])
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def default_embedding_cache() -> Path:
    """Where embeddings are cached by default: ``<model cache>/embeddings.sqlite``."""
    return cache_root() / "embeddings.sqlite"


class Embedder:
    """Sentence embeddings from a local sentence-transformers model, cached on disk.

    `model` is a local model directory, or None for the bundled all-MiniLM-L6-v2. `cache` is an
    SQLite path, True for the default location, or False for none. Embeddings are L2-normalised
    float32; texts are embedded in a fixed (length-sorted) order, so the same texts give the
    same vectors bit for bit.
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, *, device: str | None = None,
                 batch_size: int = 64, cache: str | os.PathLike[str] | bool = True) -> None:
        self.path = resolve_embedding_model(model)
        bundled = model is None or str(model) == BUNDLED_EMBEDDING
        self.name = BUNDLED_EMBEDDING if bundled else str(self.path)
        self.fingerprint = dir_fingerprint(self.path)
        self.device = device
        self.batch_size = batch_size
        if cache is True:
            cache = default_embedding_cache()
        self.cache = EmbeddingCache(cache) if cache else None
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                st = need("sentence_transformers")
                device = pick_device(self.device)
                self._model = st.SentenceTransformer(str(self.path), device=device,
                                                     local_files_only=True)
            return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """One normalised float32 row per text."""
        np = need("numpy")
        keys = [text_key(t) for t in texts]
        unique: dict[str, str] = dict(zip(keys, texts, strict=True))
        found: dict[str, np.ndarray] = {}
        if self.cache is not None:
            for k, blob in self.cache.get(self.fingerprint, list(unique)).items():
                found[k] = np.frombuffer(blob, dtype=np.float32)
        todo = sorted((k for k in unique if k not in found), key=lambda k: (len(unique[k]), k))
        total = len(todo)
        if progress:
            progress("embed", 0, total)
        step = max(self.batch_size * 4, 256)
        for i in range(0, total, step):
            chunk = todo[i:i + step]
            vecs = self.model.encode([unique[k] for k in chunk], batch_size=self.batch_size,
                                     convert_to_numpy=True, normalize_embeddings=True,
                                     show_progress_bar=False).astype(np.float32)
            new = dict(zip(chunk, vecs, strict=True))
            found.update(new)
            if self.cache is not None:
                self.cache.put(self.fingerprint,
                               [(k, v.tobytes(), v.shape[0]) for k, v in new.items()])
            if progress:
                progress("embed", min(i + step, total), total)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def prompt_view(prompt: str, prompt_chars: int) -> str:
    """The part of the prompt that is embedded: its last `prompt_chars` characters (the latest
    turns matter most and embedding models truncate from the end)."""
    if prompt_chars <= 0 or len(prompt) <= prompt_chars:
        return prompt
    return prompt[-prompt_chars:]


def features(embedder: Embedder, prompts: Sequence[str], responses: Sequence[str],
             prompt_chars: int, progress: Progress | None = None) -> np.ndarray:
    """Features of (prompt, response) pairs: [response, prompt * response, prompt] embeddings."""
    np = need("numpy")
    n = len(prompts)
    views = [prompt_view(p, prompt_chars) for p in prompts]
    emb = embedder.embed([*views, *responses], progress)
    ep, er = emb[:n], emb[n:]
    return np.concatenate([er, ep * er, ep], axis=1).astype(np.float32, copy=False)


# -- heads ----------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """How a head is trained. `objective`: ``bt`` (Bradley–Terry on pairs) or ``regression``
    (on ratings). `head`: ``linear`` or ``mlp`` (`hidden` units). `margin`: fixed margin added
    to every pair (a pair's own ``margin`` field is added to it). `ensemble`: number of heads,
    each on a bootstrap resample when more than one. `aggregate`: what a score's value is —
    ``mean``, ``min`` (worst case over heads) or ``lcb`` (mean minus std). `prompt_chars`: how
    much of the prompt's end is embedded.

    The defaults (a linear head with strong decoupled weight decay) were the best held-out
    setting on HH-RLHF harmless-base with all-MiniLM-L6-v2: small embedding models overfit
    pairwise data quickly, and an unregularised MLP reaches 100% train accuracy within epochs.
    """

    objective: Literal["bt", "regression"] = "bt"
    head: Literal["linear", "mlp"] = "linear"
    hidden: int = 64
    dropout: float = 0.0
    ensemble: int = 1
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 30.0
    margin: float = 0.0
    val_fraction: float = 0.1
    seed: int = 0
    prompt_chars: int = 500
    aggregate: Aggregate = "mean"

    def check(self) -> None:
        if self.objective not in ("bt", "regression"):
            raise ValueError(f"objective must be bt or regression, not {self.objective!r}")
        if self.head not in ("linear", "mlp"):
            raise ValueError(f"head must be linear or mlp, not {self.head!r}")
        if self.aggregate not in ("mean", "min", "lcb"):
            raise ValueError(f"aggregate must be mean, min or lcb, not {self.aggregate!r}")
        if self.ensemble < 1 or self.epochs < 1 or self.batch_size < 1 or self.hidden < 1:
            raise ValueError("ensemble, epochs, batch_size and hidden must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in [0, 1)")


@dataclass
class TrainReport:
    """What training did: sizes, seconds, and held-out figures (accuracy for pairs, a tie
    counting as wrong; RMSE and Pearson r for ratings; None without a held-out split)."""

    train_size: int
    val_size: int
    seconds_embed: float
    seconds_train: float
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    val_loss: float | None = None
    val_rmse: float | None = None
    val_pearson: float | None = None
    epoch_losses: list[float] = field(default_factory=list)


def _make_head(kind: str, dim: int, hidden: int, dropout: float = 0.0) -> Any:
    nn = need("torch.nn")
    if kind == "linear":
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, 1))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden), nn.GELU(),
                         nn.Dropout(dropout), nn.Linear(hidden, 1))


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    import random

    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = int(round(n * fraction))
    if fraction > 0 and n_val == 0 and n > 1:
        n_val = 1
    return sorted(order[n_val:]), sorted(order[:n_val])


class EmbeddingRM:
    """A trained embedding reward model: feature normalisation plus k heads."""

    def __init__(self, config: TrainConfig, embedder: Embedder, heads: list[Any],
                 mean: Any, std: Any, target_mean: float = 0.0, target_std: float = 1.0,
                 report: TrainReport | None = None) -> None:
        self.config = config
        self.embedder = embedder
        self.heads = heads
        self.mean = mean
        self.std = std
        self.target_mean = target_mean
        self.target_std = target_std
        self.report = report
        for h in self.heads:
            h.eval()

    # scoring
    def head_scores(self, x: np.ndarray) -> np.ndarray:
        """Raw scores, one column per head, for feature rows `x`."""
        torch = need("torch")
        with torch.no_grad():
            t = (torch.from_numpy(x) - self.mean) / self.std
            cols = [h(t).squeeze(-1) for h in self.heads]
            out = torch.stack(cols, dim=1) * self.target_std + self.target_mean
        return out.numpy().astype("float64")

    def score_texts(self, prompts: Sequence[str], responses: Sequence[str],
                    progress: Progress | None = None) -> np.ndarray:
        """Per-head scores (n, k) of (prompt, response) texts."""
        x = features(self.embedder, prompts, responses, self.config.prompt_chars, progress)
        return self.head_scores(x)

    def score(self, samples: Sequence[Sample], aggregate: Aggregate | None = None) -> list[Score]:
        """Scores of samples: value by `aggregate` (default: the trained setting), with
        components mean / min / std over the heads."""
        agg = aggregate or self.config.aggregate
        if agg not in ("mean", "min", "lcb"):
            raise ValueError(f"aggregate must be mean, min or lcb, not {agg!r}")
        if not samples:
            return []
        per = self.score_texts([s.prompt_text for s in samples],
                               [s.response_text for s in samples])
        out = []
        for row in per:
            mean = float(row.mean())
            lo = float(row.min())
            std = float(row.std()) if len(row) > 1 else 0.0
            value = {"mean": mean, "min": lo, "lcb": mean - std}[agg]
            if not math.isfinite(value):
                out.append(Score.error(f"non-finite reward {value!r}"))
                continue
            out.append(Score.of(value, components={"mean": mean, "min": lo, "std": std}))
        return out

    # persistence
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the model to `directory` (config JSON and safetensors weights)."""
        st = need("safetensors.torch")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {"feature_mean": self.mean.contiguous(), "feature_std": self.std.contiguous()}
        for i, h in enumerate(self.heads):
            for k, v in h.state_dict().items():
                tensors[f"head{i}.{k}"] = v.detach().contiguous()
        st.save_file(tensors, str(d / WEIGHTS_FILE))
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "embedding_model": self.embedder.name,
            "embedding_fingerprint": self.embedder.fingerprint,
            "embedding_dim": int(self.mean.shape[0]),
            "features": ["response", "prompt*response", "prompt"],
            "config": asdict(self.config),
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "report": asdict(self.report) if self.report else None,
        }
        (d / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, embedding_model: str | None = None,
             device: str | None = None, cache: str | os.PathLike[str] | bool = False,
             batch_size: int = 64) -> EmbeddingRM:
        """Load a saved model. The embedding model is the one it was trained with (its path as
        saved, or `embedding_model`); a different model is refused (its vectors would not
        match the heads)."""
        st = need("safetensors.torch")
        d = Path(directory)
        cfg_path = d / CONFIG_FILE
        if not cfg_path.exists():
            raise FileNotFoundError(f"{d} is not an embedding reward model (no {CONFIG_FILE})")
        meta = json.loads(cfg_path.read_text())
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{cfg_path}: unsupported format {meta.get('format')!r} "
                             f"v{meta.get('format_version')}")
        config = TrainConfig(**meta["config"])
        embedder = Embedder(embedding_model or meta["embedding_model"], device=device,
                            cache=cache, batch_size=batch_size)
        if embedder.fingerprint != meta["embedding_fingerprint"]:
            raise ValueError(
                f"the embedding model at {embedder.path} is not the one {d} was trained with "
                f"(fingerprint {embedder.fingerprint} != {meta['embedding_fingerprint']})")
        tensors = st.load_file(str(d / WEIGHTS_FILE))
        dim = int(tensors["feature_mean"].shape[0])
        heads = []
        for i in range(config.ensemble):
            h = _make_head(config.head, dim, config.hidden, config.dropout)
            state = {k.split(".", 1)[1]: v for k, v in tensors.items()
                     if k.startswith(f"head{i}.")}
            h.load_state_dict(state)
            heads.append(h)
        report = TrainReport(**meta["report"]) if meta.get("report") else None
        return cls(config, embedder, heads, tensors["feature_mean"], tensors["feature_std"],
                   float(meta["target_mean"]), float(meta["target_std"]), report)


# -- training -------------------------------------------------------------------------------------

def _fit_head(x: Any, y: Any, config: TrainConfig, seed: int, loss_fn: Callable[..., Any],
              pairs: bool, on_epoch: Callable[[float], None] | None = None) -> Any:
    """Train one head. For pairs, `x` is (n, 2, F) [chosen, rejected] and `y` the margins."""
    torch = need("torch")
    with torch.random.fork_rng(devices=[]):  # seeded without touching the global RNG
        torch.manual_seed(seed)
        return _fit(x, y, config, loss_fn, pairs, on_epoch)


def _fit(x: Any, y: Any, config: TrainConfig, loss_fn: Callable[..., Any], pairs: bool,
         on_epoch: Callable[[float], None] | None) -> Any:
    torch = need("torch")
    head = _make_head(config.head, x.shape[-1], config.hidden, config.dropout)
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = x.shape[0]
    head.train()
    for _ in range(config.epochs):
        order = torch.randperm(n)
        total = 0.0
        for i in range(0, n, config.batch_size):
            idx = order[i:i + config.batch_size]
            xb, yb = x[idx], y[idx]
            if pairs:
                r = head(xb).squeeze(-1)
                loss = loss_fn(r[:, 0] - r[:, 1], yb)
            else:
                loss = loss_fn(head(xb).squeeze(-1), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if on_epoch:
            on_epoch(total / n)
    head.eval()
    return head


def train_embedding_rm(
    data: Sequence[PreferencePair | PreferenceSet] | Sequence[RatedResponse],
    config: TrainConfig | None = None,
    *,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> EmbeddingRM:
    """Train an embedding reward model on preference pairs (``objective="bt"``; a set counts as
    one pair per chosen and rejected response) or rated responses (``objective="regression"``).
    A held-out split of `config.val_fraction` of the pairs is kept aside and reported in
    ``rm.report``. Deterministic for a given seed and data."""
    torch = need("torch")
    np = need("numpy")
    config = config or TrainConfig()
    config.check()
    pairs = config.objective == "bt"
    if not data:
        raise ValueError("no training data")
    if pairs and not all(isinstance(d, PreferencePair | PreferenceSet) for d in data):
        raise ValueError("objective 'bt' needs preference pairs")
    if not pairs and not all(isinstance(d, RatedResponse) for d in data):
        raise ValueError("objective 'regression' needs rated responses")
    embedder = embedder or Embedder()

    t0 = time.perf_counter()
    if pairs:
        ps = [q for d in data for q in (d.pairs() if isinstance(d, PreferenceSet) else [d])]
        n = len(ps)
        prompts, responses = pair_texts(ps)  # type: ignore[arg-type]
        feats = features(embedder, prompts, responses, config.prompt_chars, progress)
        x_all = torch.from_numpy(np.stack([feats[:n], feats[n:]], axis=1))
        y_all = torch.tensor([config.margin + (p.margin or 0.0) for p in ps],  # type: ignore[union-attr]
                             dtype=torch.float32)
    else:
        rs: list[RatedResponse] = list(data)  # type: ignore[arg-type]
        n = len(rs)
        feats = features(embedder, [r.prompt for r in rs], [r.response for r in rs],
                         config.prompt_chars, progress)
        x_all = torch.from_numpy(feats)
        y_all = torch.tensor([r.rating for r in rs], dtype=torch.float32)
    seconds_embed = time.perf_counter() - t0

    train_idx, val_idx = _split(n, config.val_fraction, config.seed)
    tr = torch.tensor(train_idx, dtype=torch.long)
    x_tr, y_tr = x_all[tr], y_all[tr]
    flat = x_tr.reshape(-1, x_tr.shape[-1])
    mean = flat.mean(0)
    std = flat.std(0).clamp_min(1e-6)
    target_mean, target_std = 0.0, 1.0
    if not pairs:
        target_mean = float(y_tr.mean())
        target_std = float(y_tr.std()) if len(y_tr) > 1 and float(y_tr.std()) > 0 else 1.0
    xn = (x_tr - mean) / std
    yn = y_tr if pairs else (y_tr - target_mean) / target_std

    def bt_loss(diff: Any, margin: Any) -> Any:
        return torch.nn.functional.softplus(-(diff - margin)).mean()

    def mse(pred: Any, target: Any) -> Any:
        return torch.nn.functional.mse_loss(pred, target)

    loss_fn = bt_loss if pairs else mse
    t1 = time.perf_counter()
    heads = []
    losses: list[float] = []
    k = config.ensemble
    steps_total = k * config.epochs
    done = 0
    if progress:
        progress("train", 0, steps_total)
    for i in range(k):
        if k > 1:
            g = torch.Generator().manual_seed(config.seed * 1_000_003 + i)
            boot = torch.randint(0, len(train_idx), (len(train_idx),), generator=g)
            xb, yb = xn[boot], yn[boot]
        else:
            xb, yb = xn, yn

        def tick(loss: float, first: bool = i == 0) -> None:
            nonlocal done
            done += 1
            if first:
                losses.append(loss)
            if progress:
                progress("train", done, steps_total)

        heads.append(_fit_head(xb, yb, config, config.seed + 7919 * i, loss_fn, pairs, tick))
    seconds_train = time.perf_counter() - t1

    rm = EmbeddingRM(config, embedder, heads, mean, std, target_mean, target_std)
    report = TrainReport(len(train_idx), len(val_idx), seconds_embed, seconds_train,
                         epoch_losses=losses)
    if pairs:
        report.train_accuracy = _pair_accuracy(rm, x_all[tr])
        if val_idx:
            va = torch.tensor(val_idx, dtype=torch.long)
            report.val_accuracy = _pair_accuracy(rm, x_all[va])
            with torch.no_grad():
                s = _mean_scores(rm, x_all[va])
                report.val_loss = float(bt_loss(torch.from_numpy(s[:, 0] - s[:, 1]),
                                                y_all[va].double()))
    elif val_idx:
        va = torch.tensor(val_idx, dtype=torch.long)
        pred = rm.head_scores(x_all[va].numpy()).mean(1)
        true = y_all[va].numpy().astype("float64")
        report.val_rmse = float(np.sqrt(np.mean((pred - true) ** 2)))
        if len(val_idx) > 1 and pred.std() > 0 and true.std() > 0:
            report.val_pearson = float(np.corrcoef(pred, true)[0, 1])
    rm.report = report
    return rm


def _mean_scores(rm: EmbeddingRM, x_pairs: Any) -> np.ndarray:
    n = x_pairs.shape[0]
    flat = x_pairs.reshape(2 * n, -1).numpy()
    return rm.head_scores(flat).mean(1).reshape(n, 2)


def _pair_accuracy(rm: EmbeddingRM, x_pairs: Any) -> float:
    """Fraction of pairs whose chosen response scores strictly higher (a tie counts as wrong,
    as in `rewardlab.audit.pairs`)."""
    s = _mean_scores(rm, x_pairs)
    return float((s[:, 0] > s[:, 1]).sum() / max(1, len(s)))


# -- the reward -----------------------------------------------------------------------------------

def load_cached(path: str, device: str | None = None) -> EmbeddingRM:
    """A saved model, loaded once per process (reloaded when its files change)."""
    d = Path(path).expanduser().resolve()
    key = ("embedding_rm", str(d), model_fingerprint(d), device)
    return loaded.get(key, lambda: EmbeddingRM.load(d, device=device))  # type: ignore[no-any-return]


@model_reward(path_params=("path",), range=(-math.inf, math.inf), batch_size=256,
              timeout=600.0)
def embedding_rm(samples: list[Sample], *, path: str, aggregate: str | None = None,
                 device: str | None = None) -> list[Score]:
    """Embedding reward model saved by `rewardlab train embedding-rm`: a reward logit, higher better.

    Scores are reward logits in (-inf, inf). `path` is the saved model directory.
    ``components`` hold the ensemble heads' mean, min and std; `aggregate` (``mean``, ``min``,
    ``lcb`` = mean - std; default: as trained) picks the value.

    Train a model with ``rewardlab train embedding-rm PAIRS --out DIR`` (or
    `train_embedding_rm` and ``rm.save(DIR)``), then score with ``embedding_rm(path=DIR)``.
    A path that holds no model is refused when the reward is configured, before any scoring:

    >>> embedding_rm.info.describe()
    '[-inf, inf], higher is better, per sequence'
    >>> embedding_rm(path="no/such/model")
    Traceback (most recent call last):
    ...
    ValueError: reward 'embedding_rm': path='no/such/model' does not exist
    """
    rm = load_cached(path, device)
    return rm.score(samples, aggregate)  # type: ignore[arg-type]
