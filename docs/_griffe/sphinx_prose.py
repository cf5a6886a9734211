"""A griffe extension that lets tensornet's docstrings (plain prose with Sphinx roles, ``>>>``
examples, ``::`` literal blocks and reStructuredText simple tables) render as Markdown in the API
reference, without changing the docstrings.

After the whole package is loaded, every docstring is rewritten:

- ``:class:`X```, ``:func:``, ``:meth:``, ``:mod:``, ``:data:``, ``:attr:``, ``:exc:`` become
  inline code, linked to the object's reference entry when the target resolves. A target is
  resolved the way Sphinx reads it: absolute (``tensornet.io.npz.read_npz``), relative to the
  docstring's package (``.selection``), or a bare name looked up in the enclosing class, then the
  module, then anywhere in the package when exactly one object's path ends with it. ``~`` shows only the last component; functions and methods get ``()``. Links are
  *optional* autorefs: a target that is not rendered on any page stays plain code, no warning.
- consecutive ``>>>`` / ``...`` lines become a fenced ``pycon`` block (Markdown would read
  ``>>>`` as nested block quotes);
- a paragraph ending in ``::`` ends in ``:`` (the indented block after it is already a Markdown
  code block);
- a simple table (rows of ``=====  =====`` rules) becomes a fenced text block.
"""
from __future__ import annotations

import html
import re

import griffe

_ROLE = re.compile(r":(class|func|meth|mod|data|attr|exc|obj):`([^`]+)`")
_RULE = re.compile(r"^\s*=+(\s+=+)+\s*$")
_CALLABLE_ROLES = ("func", "meth")


def _lookup(package: griffe.Module, path: str):
    """The object at dotted ``path`` inside ``package``, or None."""
    if path == package.path:
        return package
    prefix = package.path + "."
    if not path.startswith(prefix):
        return None
    try:
        return package[path[len(prefix):]]
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _candidates(obj: griffe.Object, target: str):
    """Dotted paths ``target`` may name, seen from the docstring of ``obj``."""
    if target.startswith("."):
        module = obj.module
        base = module if module.is_init_module else module.parent
        dots = len(target) - len(target.lstrip("."))
        for _ in range(dots - 1):
            base = base.parent if base is not None and base.parent is not None else base
        return [f"{base.path}.{target.lstrip('.')}"] if base is not None else []
    if target.startswith("tensornet"):
        return [target]
    scopes = []
    if obj.is_class:
        scopes.append(obj)
    if obj.parent is not None and obj.parent.is_class:
        scopes.append(obj.parent)
    scopes.append(obj.module)
    return [f"{scope.path}.{target}" for scope in scopes]


def _suffix_index(package: griffe.Module) -> dict:
    """Every object's dotted path under each of its dotted suffixes (``Trainer.fit``, ``fit``)."""
    index = {}
    for obj in _objects(package):
        parts = obj.path.split(".")
        for start in range(1, len(parts)):
            index.setdefault(".".join(parts[start:]), set()).add(obj.path)
    return index


def _role(package: griffe.Module, obj: griffe.Object, match: re.Match, index: dict) -> str:
    role, text = match.group(1), match.group(2).strip()
    short = text.startswith("~")
    target = text.lstrip("~")
    shown = target.rsplit(".", 1)[-1] if short else target
    if role in _CALLABLE_ROLES:
        shown += "()"
    code = f"<code>{html.escape(shown)}</code>"
    found = next((path for path in _candidates(obj, target) if _lookup(package, path) is not None), None)
    if found is None and not target.startswith((".", "tensornet")):
        matches = index.get(target, ())
        found = next(iter(matches)) if len(matches) == 1 else None
    if found is None:
        return code
    return f'<autoref identifier="{html.escape(found)}" optional>{code}</autoref>'


def _blocks(text: str) -> str:
    """``>>>`` examples and simple tables fenced; ``::`` paragraph ends made ``:``."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            out.append("```pycon")
            while i < len(lines) and lines[i].lstrip().startswith((">>>", "...")):
                out.append(lines[i].strip())
                i += 1
            out.append("```")
            continue
        if _RULE.match(line):
            out.append("```text")
            rules = 0
            while i < len(lines) and lines[i].strip() and rules < 3:
                rules += bool(_RULE.match(lines[i]))
                out.append(lines[i])
                i += 1
            out.append("```")
            continue
        if line.rstrip().endswith("::") and not line.strip() == "::":
            line = line.rstrip()[:-1]
        out.append(line)
        i += 1
    return "\n".join(out)


def _objects(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


class SphinxProse(griffe.Extension):
    """Rewrites every docstring of a loaded package as the module docstring describes."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        index = _suffix_index(pkg)
        for obj in _objects(pkg):
            if obj.docstring is None:
                continue
            text = _ROLE.sub(lambda match, obj=obj: _role(pkg, obj, match, index), obj.docstring.value)
            obj.docstring.value = _blocks(text)
