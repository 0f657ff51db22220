"""Judge prompt templates: text files users can override.

A template is plain text with ``{{name}}`` placeholders and ``{{#name}}...{{/name}}`` sections
(kept only when ``name`` is non-empty). Lines ``[system]`` and ``[user]`` split it into chat
messages; a file without them is one user message. Sample text is substituted in one pass, so
braces inside prompts or responses are never expanded.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_SECTION = re.compile(r"\{\{#(\w+)\}\}(.*?)\{\{/\1\}\}", re.DOTALL)
_VAR = re.compile(r"\{\{\s*([#/]?)(\w+)\s*\}\}")
_ROLE = re.compile(r"^\[(system|user)\][ \t]*$", re.MULTILINE)


class TemplateError(ValueError):
    """A template that cannot be used: unreadable, unknown or missing placeholders."""


@dataclass(frozen=True)
class Template:
    """A loaded template: its source, text, and content hash (which enters fingerprints)."""

    source: str
    text: str
    sha256: str

    def placeholders(self) -> set[str]:
        return {m.group(2) for m in _VAR.finditer(self.text)}

    def check(self, allowed: set[str], required: set[str]) -> None:
        """Raise `TemplateError` on unknown or missing placeholders or unbalanced sections."""
        unknown = self.placeholders() - allowed
        if unknown:
            raise TemplateError(
                f"template {self.source}: unknown placeholder(s) {sorted(unknown)} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
        missing = required - self.placeholders()
        if missing:
            raise TemplateError(f"template {self.source}: needs placeholder(s) {sorted(missing)}")
        leftover = _SECTION.sub("", self.text)
        stray = [m.group(0) for m in _VAR.finditer(leftover) if m.group(1)]
        if stray:
            raise TemplateError(f"template {self.source}: unbalanced section marker {stray[0]}")

    def render(self, values: dict[str, str]) -> list[dict[str, str]]:
        """Chat messages with `values` substituted."""

        def section(m: re.Match[str]) -> str:
            return m.group(2) if values.get(m.group(1)) else ""

        def var(m: re.Match[str]) -> str:
            return values.get(m.group(2), "")

        text = _VAR.sub(var, _SECTION.sub(section, self.text))
        parts = _ROLE.split(text)
        messages: list[dict[str, str]] = []
        if parts[0].strip():
            messages.append({"role": "user", "content": parts[0].strip()})
        for role, body in zip(parts[1::2], parts[2::2], strict=True):
            if body.strip():
                messages.append({"role": role, "content": body.strip()})
        if not messages:
            raise TemplateError(f"template {self.source} renders to no message")
        return messages


_CACHE: dict[tuple[str, int, int], Template] = {}


@functools.cache
def _builtin(name: str) -> Template:
    text = resources.files("rewardlab.models").joinpath("prompts", name).read_text(encoding="utf-8")
    return Template(f"<builtin {name}>", text, hashlib.sha256(text.encode()).hexdigest())


def load_template(path: str | None, default: str) -> Template:
    """The template at `path`, or the packaged default `default` (a file name under prompts/)."""
    if path is None:
        return _builtin(default)
    p = Path(path).expanduser()
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror or exc}") from None
    tpl = Template(str(p), text, hashlib.sha256(text.encode()).hexdigest())
    _CACHE[key] = tpl
    return tpl
