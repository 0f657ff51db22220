"""Text-to-SQL verifiers: execution match on a read-only SQLite database, and the partial
rewards of Reasoning-SQL (Pourreza et al. 2025): syntax check, schema-linking Jaccard and SQL
n-gram similarity.

The reference is the gold SQL. The database comes from the sample's metadata (``db_path``, or
``db_id`` with a ``db_dir`` parameter or metadata key; Spider's ``db_dir/db_id/db_id.sqlite``
layout and a flat ``db_dir/db_id.sqlite`` both work) or from the ``db_path`` parameter.

Queries run on a connection opened read-only (``mode=ro``) with an authorizer that allows
reading and nothing else (no writes, no DDL, no ATTACH, no PRAGMA, no transactions), budgets
enforced by SQLite's progress handler (CPU seconds of the running thread, and wall-clock
seconds), a cap on result rows and on string length.

What a trainer gets:

- a response with no SQL, or a predicted query that fails (syntax, unknown names, a refused
  write, too many rows, a string too long) or uses up its CPU budget: 0 with the reason (the
  response's own failure; ``timeout_value`` changes the value given for the CPU budget);
- a failure that is not the response's fault: a gold query that fails, a missing database, or
  a predicted query stopped by the wall clock before it used its CPU budget (the machine was
  too busy to judge it): ``error`` with the reason.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sqlite3
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rewardlab.core.reward import reward
from rewardlab.core.settings import splice
from rewardlab.core.text import fenced_blocks, final_text
from rewardlab.core.types import Score

# -- extraction ----------------------------------------------------------------------------------

_SQL_LANGS = {"sql", "sqlite", "postgresql", "mysql", "postgres"}


def extract_sql(text: str, prompt_text: str = "") -> str | None:
    """The SQL in a model response: the last ```sql fenced block, else the last fenced block
    of any language, else the whole text, read from the final text (after the thinking: see
    `rewardlab.core.text`); None if empty."""
    text = final_text(text, prompt_text)
    blocks = fenced_blocks(text)
    sql_blocks = [b.body for b in blocks if b.lang in _SQL_LANGS]
    if sql_blocks:
        candidate = sql_blocks[-1]
    elif blocks:
        candidate = blocks[-1].body
    else:
        candidate = text
    candidate = candidate.strip()
    return candidate or None


# -- tokens --------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|$))
  | (?P<str>'(?:[^']|'')*')
  | (?P<dq>"(?:[^"]|"")*")
  | (?P<bq>`(?:[^`]|``)*`|\[[^\][]*\])
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op><=|>=|<>|!=|==|\|\||<<|>>|[-+*/%<>=~&|.,;()])
  | (?P<other>.)
    """,
    re.X | re.S,
)

KEYWORDS = frozenset(
    """
    abort action add all alter analyze and as asc attach autoincrement before begin between by
    cascade case cast check collate column commit conflict constraint create cross current
    current_date current_time current_timestamp database default deferrable deferred delete desc
    detach distinct do drop each else end escape except exclude exclusive exists explain fail
    filter first following for foreign from full glob group groups having if ignore immediate in
    index indexed initially inner insert instead intersect into is isnull join key last left like
    limit match materialized natural no not nothing notnull null nulls of offset on or order
    others outer over partition plan pragma preceding primary query raise range recursive
    references regexp reindex release rename replace restrict returning right rollback row rows
    savepoint select set table temp temporary then ties to transaction trigger unbounded union
    unique update using vacuum values view virtual when where window with without
    """.split()
)


@dataclass(frozen=True)
class Token:
    """One SQL token: `kind` is ``kw``, ``name``, ``str``, ``qname`` (double-quoted: an
    identifier or, in SQLite, possibly a string), ``num`` or ``op``; `text` is normalised
    (keywords upper-case, names lower-case, quotes removed)."""

    kind: str
    text: str


def tokenize(sql: str) -> list[Token]:
    """SQL tokens without whitespace and comments."""
    out: list[Token] = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        raw = m.group()
        if kind in ("ws", "comment"):
            continue
        if kind == "name":
            low = raw.lower()
            out.append(Token("kw", low.upper()) if low in KEYWORDS else Token("name", low))
        elif kind == "str":
            out.append(Token("str", raw[1:-1].replace("''", "'")))
        elif kind == "dq":
            out.append(Token("qname", raw[1:-1].replace('""', '"')))
        elif kind == "bq":
            out.append(Token("name", raw[1:-1].lower()))
        elif kind == "num":
            out.append(Token("num", raw))
        else:
            out.append(Token("op", raw))
    return out


@functools.lru_cache(maxsize=4096)
def has_top_level_order_by(sql: str) -> bool:
    """True when the statement's outermost query has an ORDER BY (one inside parentheses,
    e.g. in a subquery or a window, does not count)."""
    depth = 0
    toks = tokenize(sql)
    for i, t in enumerate(toks):
        if t.kind == "op" and t.text == "(":
            depth += 1
        elif t.kind == "op" and t.text == ")":
            depth -= 1
        elif depth == 0 and t.kind == "kw" and t.text == "ORDER":
            if i + 1 < len(toks) and toks[i + 1].kind == "kw" and toks[i + 1].text == "BY":
                return True
    return False


# -- similarity without execution ----------------------------------------------------------------

Schema = Mapping[str, "set[str] | list[str] | tuple[str, ...]"]


def _norm_schema(schema: Schema) -> dict[str, set[str]]:
    return {t.lower(): {c.lower() for c in cols} for t, cols in schema.items()}


_SET_OPS = frozenset({"UNION", "INTERSECT", "EXCEPT"})
_END_FROM = frozenset({"WHERE", "GROUP", "ORDER", "HAVING", "LIMIT", "ON", "USING", "WINDOW",
                       "UNION", "INTERSECT", "EXCEPT", "SELECT"})


def schema_items(sql: str, schema: Schema) -> set[str]:
    """The schema items a query uses: ``table`` for each table and ``table.column`` for each
    column, resolved through aliases. A bare column is attributed to the tables of its own
    SELECT that have it, else of the enclosing ones, else to every schema table that has it."""
    tables = _norm_schema(schema)
    all_columns = set().union(*tables.values()) if tables else set()
    toks = tokenize(sql)
    n = len(toks)

    def ident(t: Token) -> str | None:
        if t.kind == "name":
            return t.text
        if t.kind == "qname":
            low = t.text.lower()
            if low in tables or low in all_columns:
                return low
        return None

    # Scopes: each parenthesis and each branch of a set operation opens one.
    parent: list[int] = [-1]
    scope_of: list[int] = []
    stack = [0]
    in_from = {0: False}
    table_pos: list[bool] = []
    for i, t in enumerate(toks):
        cur = stack[-1]
        if t.kind == "op" and t.text == "(":
            parent.append(cur)
            stack.append(len(parent) - 1)
            in_from[stack[-1]] = False
        elif t.kind == "op" and t.text == ")" and len(stack) > 1:
            stack.pop()
        elif t.kind == "kw" and t.text in _SET_OPS:
            parent.append(parent[cur])
            stack[-1] = len(parent) - 1
            in_from[stack[-1]] = False
        scope_of.append(stack[-1])
        prev = toks[i - 1] if i else None
        table_pos.append(prev is not None and (
            (prev.kind == "kw" and prev.text in ("FROM", "JOIN"))
            or (prev.text == "," and in_from.get(stack[-1], False))))
        if t.kind == "kw":
            if t.text in ("FROM", "JOIN"):
                in_from[stack[-1]] = True
            elif t.text in _END_FROM:
                in_from[stack[-1]] = False

    used: dict[int, set[str]] = {}
    aliases: dict[str, str] = {}
    skip: set[str] = set()
    is_table = [False] * n
    for i, t in enumerate(toks):
        name = ident(t)
        if name is None or name not in tables:
            continue
        dotted = (i > 0 and toks[i - 1].text == ".") or (i + 1 < n and toks[i + 1].text == ".")
        if dotted or (name in all_columns and not table_pos[i]):
            continue
        is_table[i] = True
        used.setdefault(scope_of[i], set()).add(name)
        j = i + 1
        if j < n and toks[j].kind == "kw" and toks[j].text == "AS":
            j += 1
        if j < n and toks[j].kind == "name" and toks[j].text not in tables:
            aliases[toks[j].text] = name
    for i, t in enumerate(toks[1:], start=1):
        name = ident(t)
        if name is not None and toks[i - 1].kind == "kw" and toks[i - 1].text == "AS" \
                and name not in aliases:
            skip.add(name)  # a column or subquery alias

    items = {t for ts in used.values() for t in ts}
    for i, t in enumerate(toks):
        name = ident(t)
        if name is None or is_table[i] or name in aliases or name in skip:
            continue
        if (i + 1 < n and toks[i + 1].text in (".", "(")):
            continue
        if i > 0 and toks[i - 1].text == ".":
            owner = ident(toks[i - 2]) if i >= 2 else None
            table = aliases.get(owner or "", owner or "")
            if table in tables and name in tables[table]:
                items.add(f"{table}.{name}")
            continue
        owners: list[str] = []
        scope = scope_of[i]
        while scope >= 0 and not owners:
            owners = [tb for tb in used.get(scope, ()) if name in tables[tb]]
            scope = parent[scope]
        if not owners:
            owners = [tb for tb, cols in tables.items() if name in cols]
        items.update(f"{tb}.{name}" for tb in owners)
    return items


def jaccard(a: set[Any] | Counter[Any], b: set[Any] | Counter[Any]) -> float:
    """|a ∩ b| / |a ∪ b| (for multisets, with counts); 1 when both are empty."""
    if isinstance(a, Counter) and isinstance(b, Counter):
        union = sum((a | b).values())
        return 1.0 if union == 0 else sum((a & b).values()) / union
    sa, sb = set(a), set(b)
    union_n = len(sa | sb)
    return 1.0 if union_n == 0 else len(sa & sb) / union_n


def _ngram_tokens(sql: str) -> list[str]:
    out = []
    for t in tokenize(sql):
        if t.kind in ("str", "qname"):
            out.append(f"'{t.text}'")
        elif t.kind == "op" and t.text == ";":
            continue
        else:
            out.append(t.text)
    return out


def ngram_similarity(pred: str, gold: str, n: int = 2) -> float:
    """Jaccard similarity in [0, 1] of the multisets of token n-grams of two queries (keywords
    case-folded, quoting ignored); queries shorter than `n` tokens compare as one n-gram."""
    if n < 1:
        raise ValueError("n must be at least 1")

    def grams(sql: str) -> Counter[tuple[str, ...]]:
        toks = _ngram_tokens(sql)
        if len(toks) < n:
            return Counter([tuple(toks)]) if toks else Counter()
        return Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))

    return jaccard(grams(pred), grams(gold))


# -- read-only execution -------------------------------------------------------------------------

# Everything but reading is refused: writes, DDL, ATTACH/DETACH, PRAGMA, transactions...
_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                              sqlite3.SQLITE_RECURSIVE})
_DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})


def _authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None,
                trigger: str | None) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


_MAX_LENGTH = 10_000_000  # bytes in one string or blob value
_local = threading.local()
_GOLD_CACHE: OrderedDict[tuple[Any, ...], QueryResult] = OrderedDict()
_GOLD_CACHE_SIZE = 256
_SCHEMA_CACHE: dict[tuple[Any, ...], dict[str, list[str]]] = {}
_gold_lock = threading.Lock()

ResultKind = Literal["ok", "refused", "timeout", "cpu_limit", "error", "too_many_rows"]


@dataclass
class QueryResult:
    """What running one query gave: `rows` when `kind` is ``ok`` (or the first rows over the
    cap for ``too_many_rows``), else `message` says what went wrong. ``timeout`` is the
    wall-clock budget, ``cpu_limit`` the CPU budget; `cpu_seconds` is the CPU time the
    running thread spent on the query."""

    kind: ResultKind
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


_MAX_CONNECTIONS = 64  # per thread, least recently used closed first


def _connection(path: Path) -> sqlite3.Connection:
    conns: OrderedDict[tuple[str, int, int], sqlite3.Connection] | None = getattr(
        _local, "conns", None)
    if conns is None:
        conns = _local.conns = OrderedDict()
    st = path.stat()
    key = (str(path), st.st_dev, st.st_ino)  # a replaced file gets a new connection
    conn = conns.get(key)
    if conn is not None:
        conns.move_to_end(key)
        return conn
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)
    conn.set_authorizer(_authorizer)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _MAX_LENGTH)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conns[key] = conn
    while len(conns) > _MAX_CONNECTIONS:
        conns.popitem(last=False)[1].close()
    return conn


def _classify(exc: sqlite3.Error) -> tuple[ResultKind, str]:
    msg = str(exc)
    low = msg.lower()
    if any(k in low for k in ("not authorized", "authorization denied", "readonly")):
        return "refused", f"refused (only reading is allowed): {msg}"
    return "error", f"{type(exc).__name__}: {msg}"


def run_query(db_path: str | Path, sql: str, *, time_budget: float = 5.0,
              max_rows: int = 10_000, cpu_budget: float | None = None) -> QueryResult:
    """Run one statement read-only on a SQLite file, within `time_budget` wall-clock seconds
    and `cpu_budget` CPU seconds of this thread (no CPU limit when None), keeping at most
    `max_rows` rows. Never raises for a bad query: the result says what happened."""
    path = db_path if isinstance(db_path, Path) and db_path.is_absolute() else _resolved(str(db_path))
    conn = _connection(path)
    t0 = time.monotonic()
    c0 = time.thread_time()
    deadline = t0 + time_budget
    cpu_deadline = c0 + cpu_budget if cpu_budget is not None else math.inf
    stopped: ResultKind | None = None

    def progress() -> int:
        nonlocal stopped
        if time.thread_time() > cpu_deadline:
            stopped = "cpu_limit"
            return 1
        if time.monotonic() > deadline:
            stopped = "timeout"
            return 1
        return 0

    def result(kind: ResultKind, rows: list[tuple[Any, ...]] | None = None,
               message: str = "") -> QueryResult:
        if stopped == "cpu_limit":
            kind, rows, message = "cpu_limit", None, f"CPU budget of {cpu_budget:g}s exceeded"
        elif stopped == "timeout":
            kind, rows = "timeout", None
            message = f"time budget of {time_budget:g}s exceeded"
        return QueryResult(kind, rows or [], message, time.monotonic() - t0,
                           time.thread_time() - c0)

    conn.set_progress_handler(progress, 1000)
    cur = conn.cursor()
    try:
        cur.execute(sql)
        rows: list[tuple[Any, ...]] = []
        while True:
            chunk = cur.fetchmany(512)
            if not chunk:
                break
            rows.extend(chunk)
            if len(rows) > max_rows:
                return result("too_many_rows", rows[: max_rows + 1], f"more than {max_rows} rows")
        return result("ok", rows)  # a budget that fired while SQLite finished still counts
    except (sqlite3.Error, sqlite3.Warning) as exc:
        if isinstance(exc, sqlite3.Warning):
            exc = sqlite3.ProgrammingError(str(exc))
        kind, msg = _classify(exc)
        return result(kind, None, msg)
    except (OverflowError, ValueError, MemoryError) as exc:
        # a value Python cannot hold (e.g. text that is not UTF-8) or a result too large
        return result("error", None, f"{type(exc).__name__}: {exc}")
    finally:
        cur.close()
        conn.set_progress_handler(None, 0)


def _gold_result(path: Path, sql: str, time_budget: float, max_rows: int) -> QueryResult:
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, sql, max_rows)
    with _gold_lock:
        hit = _GOLD_CACHE.get(key)
        if hit is not None:
            _GOLD_CACHE.move_to_end(key)
            return hit
    result = run_query(path, sql, time_budget=time_budget, max_rows=max_rows)
    if result.ok:
        with _gold_lock:
            _GOLD_CACHE[key] = result
            while len(_GOLD_CACHE) > _GOLD_CACHE_SIZE:
                _GOLD_CACHE.popitem(last=False)
    return result


def _norm_value(v: Any) -> Any:
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if v.is_integer():
            return int(v)
        return float(f"{v:.12g}")
    return v


def _norm_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(_norm_value(v) for v in row) for row in rows]


def results_equal(pred: list[tuple[Any, ...]], gold: list[tuple[Any, ...]], ordered: bool) -> bool:
    """Whether two results hold the same rows: as sequences when `ordered`, else as multisets.
    Floats compare to 12 significant digits; integral floats equal integers."""
    p, g = _norm_rows(pred), _norm_rows(gold)
    if ordered:
        return p == g
    return len(p) == len(g) and Counter(p) == Counter(g)


def explain_ok(db_path: str | Path, sql: str) -> tuple[bool, str]:
    """Whether `sql` is one read-only statement that compiles against the database's schema
    (checked with EXPLAIN, which prepares without running the query), and why not."""
    result = run_query(db_path, f"EXPLAIN {sql}", time_budget=2.0, max_rows=1_000_000)
    return result.ok, result.message


def database_schema(db_path: str | Path) -> dict[str, list[str]]:
    """Tables and their columns (lower-case) of a SQLite database, read read-only."""
    path = Path(db_path).resolve()
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _gold_lock:
        hit = _SCHEMA_CACHE.get(key)
    if hit is not None:
        return hit
    conn = _connection(path)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND name NOT LIKE 'sqlite_%'")]
    schema: dict[str, list[str]] = {}
    for t in tables:
        quoted = '"' + t.replace('"', '""') + '"'
        cur = conn.execute(f"SELECT * FROM {quoted} LIMIT 0")
        schema[t.lower()] = [d[0].lower() for d in cur.description or ()]
        cur.close()
    with _gold_lock:
        if len(_SCHEMA_CACHE) >= 64:
            _SCHEMA_CACHE.clear()
        _SCHEMA_CACHE[key] = schema
    return schema


def schema_from_spider(entry: Mapping[str, Any]) -> dict[str, list[str]]:
    """A schema ``{table: [columns]}`` from one entry of Spider's ``tables.json``."""
    names = entry["table_names_original"]
    schema: dict[str, list[str]] = {t.lower(): [] for t in names}
    for table_idx, col in entry["column_names_original"]:
        if table_idx >= 0:
            schema[names[table_idx].lower()].append(col.lower())
    return schema


# -- locating the database -----------------------------------------------------------------------


def resolve_db(metadata: Mapping[str, Any] | None, db_path: str | None,
               db_dir: str | None) -> Path | str:
    """The database file for a sample, or a sentence saying why there is none.

    Order: ``metadata["db_path"]``; ``metadata["db_id"]`` under ``metadata["db_dir"]`` or the
    `db_dir` parameter (``<dir>/<id>/<id>.sqlite`` or ``<dir>/<id>.sqlite``, also ``.db``); the
    `db_path` parameter."""
    meta = metadata or {}
    candidates: list[str] = []
    if meta.get("db_path"):
        candidates.append(str(meta["db_path"]))
    elif meta.get("db_id") and (meta.get("db_dir") or db_dir):
        base = str(meta.get("db_dir") or db_dir)
        db_id = str(meta["db_id"])
        if "/" in db_id or "\\" in db_id or db_id in (".", ".."):
            return f"invalid db_id {db_id!r}"
        for ext in (".sqlite", ".db", ".sqlite3"):
            candidates += [os.path.join(base, db_id, db_id + ext), os.path.join(base, db_id + ext)]
    elif db_path:
        candidates.append(db_path)
    else:
        return "no database: set metadata 'db_path', or 'db_id' with a db_dir, or db_path"
    for c in candidates:
        if os.path.isfile(c):
            return _resolved(c)
    return f"database not found: {', '.join(candidates[:2])}"


@functools.lru_cache(maxsize=1024)
def _resolved(path: str) -> Path:
    return Path(path).resolve()


def _gold_sql(reference: Any) -> str | None:
    if isinstance(reference, Mapping):
        reference = reference.get("sql") or reference.get("query")
    if isinstance(reference, str) and reference.strip():
        return reference.strip()
    return None


# -- rewards -------------------------------------------------------------------------------------


@dataclass
class _Exec:
    score: Score | None  # set when the comparison could not be made (error) or was decided early
    pred: QueryResult | None = None
    gold: QueryResult | None = None
    ordered: bool = False
    match: bool = False
    sql: str | None = None
    gold_sql: str | None = None
    db: Path | None = None


_GOLD_CPU_FACTOR = 10.0  # a predicted query may spend this many times the gold query's CPU


def predicted_cpu_budget(cpu_budget: float, gold: QueryResult, time_budget: float) -> float:
    """CPU seconds a predicted query may spend: `cpu_budget`, or ten times what the gold query
    spent when that is more (a heavy question gets room), never more than half the wall-clock
    `time_budget` (so the wall clock runs out first only on a machine too busy to give the
    query half of its time: then the query is not judged, an error)."""
    return min(time_budget / 2, max(cpu_budget, _GOLD_CPU_FACTOR * gold.cpu_seconds))


@dataclass(frozen=True)
class SqlDatabase:
    """Where a sample's database is, for every SQL reward that needs one (written flat among
    the reward's parameters): `db_path`, one database file for every sample; `db_dir`, the
    directory of a data set's databases, found by the sample's ``db_id`` (see `resolve_db`;
    the sample's metadata wins over both)."""

    db_path: str | None = None
    db_dir: str | None = None

    def resolve(self, metadata: Mapping[str, Any] | None) -> Path | str:
        return resolve_db(metadata, self.db_path, self.db_dir)


@dataclass(frozen=True)
class SqlRun(SqlDatabase):
    """The database and the budgets of the rewards that run queries: `time_budget` wall-clock
    seconds and `max_rows` rows per query, `cpu_budget` CPU seconds for the predicted query
    (see `predicted_cpu_budget`), and `timeout_value`, the value given to a predicted query that
    uses up its CPU budget (None: an error instead)."""

    time_budget: float = 5.0
    max_rows: int = 10_000
    cpu_budget: float = 1.0
    timeout_value: float | None = 0.0

    def __post_init__(self) -> None:
        for name in ("time_budget", "cpu_budget"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if isinstance(self.max_rows, bool) or not isinstance(self.max_rows, int) \
                or self.max_rows <= 0:
            raise ValueError(f"max_rows must be a positive integer, not {self.max_rows!r}")
        tv = self.timeout_value
        if tv is not None and (isinstance(tv, bool) or not isinstance(tv, int | float)
                               or not 0 <= tv <= 1):
            raise ValueError(f"timeout_value must be None or in [0, 1], not {tv!r}")


with_database = splice(SqlDatabase)
with_run = splice(SqlRun)


def _execute_pair(response_text: str, reference: Any, metadata: Mapping[str, Any] | None,
                  run: SqlRun, prompt_text: str = "") -> _Exec:
    db_path, db_dir, time_budget, max_rows = run.db_path, run.db_dir, run.time_budget, run.max_rows
    timeout_value, cpu_budget = run.timeout_value, run.cpu_budget
    gold_sql = _gold_sql(reference)
    if gold_sql is None:
        return _Exec(Score.abstain("no gold SQL in the reference"))
    db = resolve_db(metadata, db_path, db_dir)
    if isinstance(db, str):
        return _Exec(Score.error(db))
    gold = _gold_result(db, gold_sql, time_budget, max_rows)
    if not gold.ok:
        return _Exec(Score.error(f"the gold query failed ({gold.kind}): {gold.message}"))
    sql = extract_sql(response_text, prompt_text)
    if sql is None:
        return _Exec(None, gold=gold, gold_sql=gold_sql, db=db)
    pred = run_query(db, sql, time_budget=time_budget, max_rows=max_rows,
                     cpu_budget=predicted_cpu_budget(cpu_budget, gold, time_budget))
    if pred.kind == "timeout":  # the wall clock ran out first: the machine, not the query
        return _Exec(Score.error(
            f"predicted query: {pred.message} after {pred.cpu_seconds:.2f}s of CPU, under its "
            "CPU budget (the machine is too busy to judge it)"), pred, gold, sql=sql)
    if pred.kind == "cpu_limit" and timeout_value is None:
        return _Exec(Score.error(f"predicted query: {pred.message}"), pred, gold, sql=sql)
    ordered = has_top_level_order_by(gold_sql)
    match = pred.ok and results_equal(pred.rows, gold.rows, ordered)
    return _Exec(None, pred, gold, ordered, match, sql, gold_sql, db)


def _exec_details(ex: _Exec) -> dict[str, Any]:
    d: dict[str, Any] = {"sql": ex.sql, "ordered": ex.ordered}
    if ex.pred is not None:
        d["pred_status"] = ex.pred.kind
        d["pred_rows"] = len(ex.pred.rows)
        if ex.pred.message:
            d["pred_error"] = ex.pred.message
    if ex.gold is not None:
        d["gold_rows"] = len(ex.gold.rows)
    return d


def _reason(ex: _Exec) -> str | None:
    if ex.sql is None:
        return "no SQL found in the response"
    assert ex.pred is not None
    if not ex.pred.ok:
        return f"predicted query: {ex.pred.message}"
    if not ex.match:
        return "results differ" + (" (order-sensitive: the gold query orders)" if ex.ordered
                                   else "")
    return None


@reward(range=(0, 1), kind="cpu", timeout=60.0)
@with_run
def sql_execution(response_text: str, reference: Any, metadata: dict[str, Any],
                  prompt_text: str = "", **settings: Any) -> Score:
    r"""1 if the predicted SQL returns the gold query's result on the database, else 0.

    Rows compare as multisets, as sequences when the gold query has a top-level ORDER BY.
    Both queries run read-only (writes, DDL, ATTACH and PRAGMA are refused) within
    `time_budget` wall-clock seconds each and `max_rows` rows; the predicted query also within
    `cpu_budget` CPU seconds (see `predicted_cpu_budget`). A failing
    predicted query scores 0 with the reason, and so does one that uses up its CPU budget
    (`timeout_value`; None makes that an error). A failure that is not the response's fault
    (gold query, database, the wall clock running out before the CPU budget) is an error.
    The database and budgets (`db_path`, `db_dir`, `time_budget`, `max_rows`, `cpu_budget`,
    `timeout_value`) are `SqlRun`.

    >>> import sqlite3, tempfile
    >>> from pathlib import Path
    >>> from rewardlab import Sample
    >>> tmp = tempfile.TemporaryDirectory()
    >>> db = str(Path(tmp.name) / "shop.sqlite")
    >>> con = sqlite3.connect(db)
    >>> _ = con.executescript("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL);"
    ...     "INSERT INTO orders VALUES (1, 'ann', 30.0), (2, 'bob', 12.5), (3, 'ann', 7.5);")
    >>> con.close()
    >>> from rewardlab.rewards.sql import sql_execution
    >>> gold = "SELECT SUM(total) FROM orders WHERE customer = 'ann'"
    >>> run = sql_execution(db_path=db)
    >>> run(Sample(response="```sql\nSELECT sum(total) FROM orders WHERE customer = 'ann';\n```",
    ...            reference=gold)).value
    1.0
    >>> wrong = run(Sample(response="SELECT SUM(total) FROM orders", reference=gold))
    >>> wrong.value, wrong.reason
    (0.0, 'results differ')
    >>> tmp.cleanup()
    """
    run = SqlRun(**settings)
    ex = _execute_pair(response_text, reference, metadata, run, prompt_text)
    if ex.score is not None:
        return ex.score
    value = 1.0 if ex.match else 0.0
    if ex.pred is not None and ex.pred.kind == "cpu_limit":
        assert run.timeout_value is not None
        value = run.timeout_value
    return Score.of(value, reason=_reason(ex), details=_exec_details(ex))


@reward(range=(0, 1))
@with_database
def sql_syntax(response_text: str, metadata: dict[str, Any], prompt_text: str = "",
               **settings: Any) -> Score:
    r"""1 if the predicted SQL compiles, read-only, against the database schema, else 0.

    It must be one read-only statement with valid syntax naming known tables and columns; it is
    prepared (EXPLAIN), not run. It does not look at the question: ``SELECT 1`` scores 1 on
    every sample. Use it as a format check beside execution, not as a reward on its own
    (`sql_partial` counts it only in proportion to the gold result a query returns). The
    database is found as `SqlDatabase` says (`db_path`, `db_dir`).

    >>> import sqlite3, tempfile
    >>> from pathlib import Path
    >>> from rewardlab import Sample
    >>> tmp = tempfile.TemporaryDirectory()
    >>> db = str(Path(tmp.name) / "shop.sqlite")
    >>> con = sqlite3.connect(db)
    >>> _ = con.executescript("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL);"
    ...     "INSERT INTO orders VALUES (1, 'ann', 30.0), (2, 'bob', 12.5), (3, 'ann', 7.5);")
    >>> con.close()
    >>> from rewardlab.rewards.sql import sql_syntax
    >>> syntax = sql_syntax(db_path=db)
    >>> syntax(Sample(response="SELECT customer FROM orders")).value
    1.0
    >>> unknown = syntax(Sample(response="SELECT name FROM customers"))
    >>> unknown.value, unknown.reason
    (0.0, 'OperationalError: no such table: customers')
    >>> tmp.cleanup()
    """
    db = SqlDatabase(**settings).resolve(metadata)
    if isinstance(db, str):
        return Score.error(db)
    sql = extract_sql(response_text, prompt_text)
    if sql is None:
        return Score.of(0.0, reason="no SQL found in the response")
    ok, message = explain_ok(db, sql)
    return Score.of(1.0 if ok else 0.0, reason=None if ok else message)


def _schema_for(metadata: Mapping[str, Any] | None, where: SqlDatabase
                ) -> dict[str, list[str]] | str:
    meta = metadata or {}
    if isinstance(meta.get("schema"), Mapping):
        return {str(k): [str(c) for c in v] for k, v in meta["schema"].items()}
    db = where.resolve(meta)
    if isinstance(db, str):
        return f"no schema (metadata 'schema' or a database): {db}"
    return database_schema(db)


@reward(range=(0, 1))
@with_database
def sql_schema_linking(response_text: str, reference: Any, metadata: dict[str, Any],
                       prompt_text: str = "", **settings: Any) -> Score:
    """Jaccard similarity in [0, 1] of the tables and columns used by predicted and gold SQL.

    Higher is closer. The schema comes from metadata 'schema' ({table: [columns]}) or the
    database (`SqlDatabase`: `db_path`, `db_dir`). A query that names the busiest tables earns
    it without reading the question: use it beside execution (as `sql_partial` does), not on
    its own.

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.sql import sql_schema_linking
    >>> schema = {"orders": ["id", "customer", "total"], "customers": ["name", "city"]}
    >>> linked = sql_schema_linking()(Sample(
    ...     response="SELECT total FROM orders", metadata={"schema": schema},
    ...     reference="SELECT SUM(total) FROM orders WHERE customer = 'ann'"))
    >>> round(linked.value, 3), linked.details
    (0.667, {'pred': ['orders', 'orders.total'], 'gold': ['orders', 'orders.customer', 'orders.total']})
    """
    gold_sql = _gold_sql(reference)
    if gold_sql is None:
        return Score.abstain("no gold SQL in the reference")
    schema = _schema_for(metadata, SqlDatabase(**settings))
    if isinstance(schema, str):
        return Score.error(schema)
    sql = extract_sql(response_text, prompt_text)
    if sql is None:
        return Score.of(0.0, reason="no SQL found in the response")
    pred_items, gold_items = schema_items(sql, schema), schema_items(gold_sql, schema)
    return Score.of(jaccard(pred_items, gold_items),
                    details={"pred": sorted(pred_items), "gold": sorted(gold_items)})


@reward(range=(0, 1))
def sql_ngram(response_text: str, reference: Any, prompt_text: str = "", *, n: int = 2) -> Score:
    """Jaccard similarity in [0, 1] of the SQL token n-grams of predicted and gold queries.

    Higher is closer; needs no database. A fixed query full of common SQL earns it without
    reading the question: use it beside execution (as `sql_partial` does), not on its own.

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.sql import sql_ngram
    >>> gold = "SELECT SUM(total) FROM orders WHERE customer = 'ann'"
    >>> round(sql_ngram()(Sample(response=gold.replace("ann", "bob"), reference=gold)).value, 3)
    0.818
    >>> sql_ngram()(Sample(response="SELECT 1", reference=gold)).value
    0.0
    """
    gold_sql = _gold_sql(reference)
    if gold_sql is None:
        return Score.abstain("no gold SQL in the reference")
    sql = extract_sql(response_text, prompt_text)
    if sql is None:
        return Score.of(0.0, reason="no SQL found in the response")
    return Score.of(ngram_similarity(sql, gold_sql, n))


_DEFAULT_WEIGHTS = {"execution": 3.0, "syntax": 1.0, "schema_linking": 1.0, "ngram": 1.0}


def result_overlap(pred: list[tuple[Any, ...]], gold: list[tuple[Any, ...]]) -> float:
    """How much of the gold result a predicted result holds, in [0, 1], column by column.

    Each column is the multiset of its values (normalised as in `results_equal`); columns pair
    one-to-one by an optimal assignment of their multiset Jaccard similarities, and the sum is
    divided by the larger column count, so a missing, extra or wrong column costs and so do
    missing or extra rows. 1 when both results are empty, 0 when only one is."""
    if not pred or not gold:
        return 1.0 if not pred and not gold else 0.0
    pcols = [Counter(c) for c in zip(*_norm_rows(pred), strict=True)]
    gcols = [Counter(c) for c in zip(*_norm_rows(gold), strict=True)]
    sims = [[jaccard(p, g) for g in gcols] for p in pcols]
    if len(pcols) == 1 or len(gcols) == 1:
        best = max(max(row) for row in sims)
    else:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(sims, maximize=True)
        best = sum(sims[i][j] for i, j in zip(rows, cols, strict=True))
    return best / max(len(pcols), len(gcols))


@reward(range=(0, 1), kind="cpu", timeout=60.0)
@with_run
def sql_partial(response_text: str, reference: Any, metadata: dict[str, Any],
                prompt_text: str = "", *,
                n: int = 2, weights: dict[str, float] | None = None,
                full_credit_on_match: bool = True, **settings: Any) -> Score:
    r"""Execution match with partial credit in [0, 1] that a question-blind query cannot earn.

    Higher is better. The parts are those of Reasoning-SQL: execution match; syntax (1 when the
    query runs); schema linking and n-gram similarity (Jaccard similarities with the gold
    query). The last three do not depend on the answer being right (``SELECT 1`` runs; one
    query naming the busiest tables earns linking and n-gram credit on every question), so here
    they count only in proportion to ``result_overlap``, how much of the gold query's result
    the predicted query returned (`result_overlap`; 0 for a query that fails or returns
    unrelated values):

        value = (w_exec * execution + overlap * (w_syntax * syntax + w_link * schema_linking
                 + w_ngram * ngram)) / sum(w)

    `weights` (keys execution, syntax, schema_linking, ngram; default 3/1/1/1) set the mix;
    with `full_credit_on_match` a query whose result matches scores 1. Each part, and
    ``result_overlap``, is reported in `components`. Execution, budgets and failures follow
    `sql_execution`.

    >>> import sqlite3, tempfile
    >>> from pathlib import Path
    >>> from rewardlab import Sample
    >>> tmp = tempfile.TemporaryDirectory()
    >>> db = str(Path(tmp.name) / "shop.sqlite")
    >>> con = sqlite3.connect(db)
    >>> _ = con.executescript("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL);"
    ...     "INSERT INTO orders VALUES (1, 'ann', 30.0), (2, 'bob', 12.5), (3, 'ann', 7.5);")
    >>> con.close()
    >>> from rewardlab.rewards.sql import sql_partial
    >>> gold = "SELECT total FROM orders WHERE customer = 'ann'"
    >>> partial = sql_partial(db_path=db)
    >>> half = partial(Sample(response="SELECT total FROM orders WHERE total > 10", reference=gold))
    >>> round(half.value, 3), round(half.components["result_overlap"], 3)
    (0.115, 0.333)
    >>> partial(Sample(response="SELECT 1", reference=gold)).value
    0.0
    >>> tmp.cleanup()
    """
    w = dict(_DEFAULT_WEIGHTS if weights is None else weights)
    unknown = set(w) - set(_DEFAULT_WEIGHTS)
    if unknown:
        return Score.error(f"unknown weight(s) {sorted(unknown)}; use {sorted(_DEFAULT_WEIGHTS)}")
    total = sum(w.values())
    if total <= 0 or any(v < 0 for v in w.values()):
        return Score.error("weights must be non-negative with a positive sum")
    run = SqlRun(**settings)
    ex = _execute_pair(response_text, reference, metadata, run, prompt_text)
    if ex.score is not None:
        return ex.score
    assert ex.gold_sql is not None and ex.db is not None and ex.gold is not None
    details = _exec_details(ex)
    if ex.sql is None:
        comps = {k: 0.0 for k in (*_DEFAULT_WEIGHTS, "result_overlap")}
        return Score.of(0.0, reason=_reason(ex), components=comps, details=details)
    assert ex.pred is not None
    schema = _schema_for(metadata, run)
    if isinstance(schema, str):
        return Score.error(schema)
    if ex.pred.kind == "cpu_limit":
        assert run.timeout_value is not None
        execution = run.timeout_value
    else:
        execution = 1.0 if ex.match else 0.0
    comps = {
        "execution": execution,
        "syntax": 1.0 if ex.pred.kind in ("ok", "too_many_rows") else 0.0,
        "schema_linking": jaccard(schema_items(ex.sql, schema), schema_items(ex.gold_sql, schema)),
        "ngram": ngram_similarity(ex.sql, ex.gold_sql, n),
    }
    overlap = result_overlap(ex.pred.rows, ex.gold.rows) if ex.pred.ok else 0.0
    if full_credit_on_match and ex.match:
        value = 1.0
    else:
        value = (w.get("execution", 0.0) * execution + overlap * sum(
            w.get(k, 0.0) * v for k, v in comps.items() if k != "execution")) / total
    comps["result_overlap"] = overlap
    return Score.of(value, reason=_reason(ex), components=comps, details=details)
