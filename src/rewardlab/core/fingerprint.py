"""Fingerprints: stable hashes of what decides a reward's scores.

A reward's fingerprint keys its cached scores, so two rewards that may score differently must
never share one. It covers the reward's name, declared version and parameters, the function's
full identity (module and qualified name) and its code: the bytecode with its constants and
nested functions, default values, closure values, and the code of the functions and classes of
the same module that it calls by name. Line numbers and file names are left out, so moving a
function or editing a comment elsewhere keeps its cached scores; changing what it computes
gives a new fingerprint. Code in other modules (libraries, other files of a project) is not
followed: bump the reward's ``version`` when a change there alters what it scores.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
from typing import Any

_CODE_FIELDS = ("co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_flags", "co_names",
                "co_varnames", "co_freevars", "co_cellvars")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=repr)


def fingerprint_of(obj: Any) -> str:
    """A short stable hash of a JSON-able description."""
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()[:24]


def identity(fn: Any) -> str:
    """``module:qualname`` of a function (of the callable's type for other callables)."""
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    module = getattr(target, "__module__", None) or "?"
    return f"{module}:{getattr(target, '__qualname__', repr(target))}"


def _const(value: Any, h: Any, seen: set[int]) -> None:
    """Feed a code constant; sets are ordered (their order varies with string hashing)."""
    if isinstance(value, types.CodeType):
        _code(value, h, seen)
    elif isinstance(value, tuple):
        h.update(b"(")
        for v in value:
            _const(v, h, seen)
        h.update(b")")
    elif isinstance(value, frozenset):
        h.update(b"{" + "|".join(sorted(repr(v) for v in value)).encode() + b"}")
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def _code(co: types.CodeType, h: Any, seen: set[int]) -> None:
    h.update(co.co_code)
    h.update(repr(tuple(getattr(co, f) for f in _CODE_FIELDS)).encode())
    for c in co.co_consts:
        _const(c, h, seen)


def _names(co: types.CodeType) -> set[str]:
    out = set(co.co_names)
    for c in co.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out


def _value(value: Any) -> str:
    """A closure or default value, described; an object without a stable description is named
    by type only (its identity would differ per process and make the cache useless)."""
    if isinstance(value, types.FunctionType):
        return f"fn:{identity(value)}"
    text = repr(value)
    if " at 0x" in text:
        return f"obj:{type(value).__module__}.{type(value).__qualname__}"
    return text


def _function(fn: types.FunctionType, h: Any, seen: set[int]) -> None:
    if id(fn) in seen:
        return
    seen.add(id(fn))
    h.update(identity(fn).encode())
    _code(fn.__code__, h, seen)
    h.update(repr([_value(d) for d in fn.__defaults__ or ()]).encode())
    h.update(repr(sorted((k, _value(v)) for k, v in (fn.__kwdefaults__ or {}).items())).encode())
    for cell in fn.__closure__ or ():
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell
            h.update(b"<empty>")
            continue
        if isinstance(content, types.FunctionType):
            _function(content, h, seen)
        else:
            h.update(_value(content).encode())
    module = fn.__module__
    for name in sorted(_names(fn.__code__)):
        _global(fn.__globals__.get(name), module, h, seen)


def _global(obj: Any, module: str, h: Any, seen: set[int]) -> None:
    """Follow a name a function uses into the same module's functions, rewards and classes."""
    inner = getattr(obj, "fn", None)  # a reward definition calls its function
    if isinstance(inner, types.FunctionType):
        obj = inner
    if isinstance(obj, types.FunctionType) and obj.__module__ == module:
        _function(obj, h, seen)
    elif isinstance(obj, type) and obj.__module__ == module and id(obj) not in seen:
        seen.add(id(obj))
        h.update(f"class:{obj.__qualname__}".encode())
        for key, member in sorted(vars(obj).items()):
            member = getattr(member, "__func__", member)  # static and class methods
            if isinstance(member, types.FunctionType):
                h.update(key.encode())
                _function(member, h, seen)


def code_hash(fn: Any) -> str:
    """A hash of what a callable computes (see the module docstring)."""
    h = hashlib.sha256()
    seen: set[int] = set()
    target = fn
    while isinstance(target, functools.partial):
        h.update(f"partial:{[_value(a) for a in target.args]}:"
                 f"{sorted((k, _value(v)) for k, v in target.keywords.items())}".encode())
        target = target.func
    if isinstance(target, types.MethodType):
        h.update(_value(target.__self__).encode())
        target = target.__func__
    if isinstance(target, types.FunctionType):
        _function(target, h, seen)
    else:  # a callable object: its class's code and its state
        cls = type(target)
        _global(cls, cls.__module__, h, seen)
        h.update(_value(getattr(target, "__dict__", None)).encode())
    return h.hexdigest()[:24]
