"""Imports point one way: apps and roles use the protocol packages, never the reverse.

Two checks. The Django-free packages import in a fresh interpreter without Django (a real
import, so a module-level side effect that pulls Django in is caught too). And a static
AST pass over every product module checks the direction of imports between packages
against ALLOWED, imports inside functions included, without executing anything.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Django-free modules of the edge: the call machine and its media legs. The Django side of the
# call (records, recorder, service, runedge) implements the machine's ports.
EDGE_PURE = [
    "edge.call", "edge.endings", "edge.events", "edge.legs", "edge.media", "edge.ports", "edge.ringing",
    "edge.talking",
]

# Protocol packages: tested and reused without Django, callers reach them, never the reverse.
PROTOCOL = [
    "sip", "connectycube", "common", "calls.ami", "calls.numbers",
    "media.rtp", "media.session", "media.control",
]
# Every package or module that must import without Django.
DJANGO_FREE = [*PROTOCOL, "sandbox.xmpp_stream", *EDGE_PURE]

# Top-level product packages the static check walks, and what counts as "ours".
PRODUCT = ["sip", "connectycube", "common", "calls", "edge", "media", "sandbox", "agent", "mappings",
           "bridgeproject"]
OURS = {*PRODUCT, "tests", "bench"}
# Django, and the frameworks that load it.
FRAMEWORK = "django"
FRAMEWORK_ROOTS = {"django", "channels", "celery", "daphne"}

_protocol = frozenset(PROTOCOL)
# What the apps may use: the protocol packages that are not part of a role (media's are).
_shared = frozenset({"sip", "connectycube", "common"})
# Allowed targets per package: the most specific key that prefixes a module rules it; a target is
# allowed if an entry equals it or is one of its parent packages. FRAMEWORK means Django & co.
# A package may always import itself.
ALLOWED: dict[str, frozenset[str]] = {
    # Django-free: one another only.
    **{name: _protocol for name in PROTOCOL},
    "sandbox.xmpp_stream": _protocol,
    **{name: frozenset({"sip", "connectycube", "common", "calls.ami", "calls.numbers", "media.control",
                        *EDGE_PURE}) for name in EDGE_PURE},
    # Apps (calls.ami and calls.numbers are calls' own).
    "mappings": _shared | {FRAMEWORK},
    "calls": _shared | {"mappings", FRAMEWORK},
    # Roles.
    "media": _shared | {FRAMEWORK},
    "sandbox": _shared | {"mappings", "calls", FRAMEWORK},
    "agent": _shared | {"mappings", "calls", FRAMEWORK},
    "edge": _shared | {"media.control", "media.tasks", "calls", "mappings", FRAMEWORK},
    # The project wires everything together.
    "bridgeproject": frozenset({*PRODUCT, FRAMEWORK}),
}


def _path_of(module: str) -> Path:
    return ROOT / module.replace(".", "/")


def _modules_of(name: str) -> list[str]:
    """Return `name` and, for a package, every module below it (found on disk, not imported)."""
    path = _path_of(name)
    if not path.is_dir():
        return [name]
    found = []
    for file in sorted(path.rglob("*.py")):
        parts = list(file.relative_to(ROOT).with_suffix("").parts)
        if "__pycache__" in parts or "migrations" in parts:
            continue
        if parts[-1] == "__init__":
            parts.pop()
        found.append(".".join(parts))
    return found


# --- 1. Django-free packages import without Django -------------------------------------------

IMPORT_ALL = """
import importlib, sys
frameworks = {frameworks!r}
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except Exception as exc:
        sys.exit(f"importing {{name}} failed: {{exc!r}}")
    bad = sorted(m for m in sys.modules if m.split(".")[0] in frameworks)
    if bad:
        sys.exit(f"importing {{name}} pulled in {{bad[:5]}}")
"""


@pytest.mark.parametrize("package", DJANGO_FREE)
def test_it_imports_without_django(package: str) -> None:
    # One interpreter per package; the output names the first module that pulled Django in.
    path = _path_of(package)
    assert path.is_dir() or path.with_suffix(".py").is_file(), f"{package} is missing"
    code = IMPORT_ALL.format(frameworks=FRAMEWORK_ROOTS, modules=_modules_of(package))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},  # no DJANGO_SETTINGS_MODULE
    )
    assert result.returncode == 0, result.stderr[-2000:]


# --- 2. Imports point one way ------------------------------------------------------------------


def _files() -> Iterator[tuple[str, Path]]:
    for top in PRODUCT:
        for file in sorted(_path_of(top).rglob("*.py")):
            if "__pycache__" in file.parts:
                continue
            parts = list(file.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), file


def _resolve(module: str, file: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if file.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_module(name: str) -> bool:
    path = _path_of(name)
    return path.is_dir() or path.with_suffix(".py").is_file()


def imports_of(module: str, file: Path) -> Iterator[tuple[int, str]]:
    """Yield (line, imported module) for every import in the file, nested ones included."""
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, file, node)
            for alias in node.names:
                # `from media import control` imports the module media.control.
                sub = f"{source}.{alias.name}" if source else alias.name
                yield node.lineno, sub if source.split(".")[0] in OURS and _is_module(sub) else source


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def rule_for(module: str) -> str:
    return max((key for key in ALLOWED if _within(module, key)), key=len)


def allowed(owner: str, target: str) -> bool:
    top = target.split(".")[0]
    if top in FRAMEWORK_ROOTS:
        return FRAMEWORK in ALLOWED[owner]
    if top not in OURS:
        return True  # the standard library and third-party packages
    return _within(target, owner) or any(_within(target, entry) for entry in ALLOWED[owner])


def test_every_product_module_has_a_rule() -> None:
    assert {top for top in PRODUCT if _path_of(top).is_dir()} <= set(ALLOWED)


@pytest.mark.parametrize("owner", sorted(ALLOWED))
def test_imports_point_one_way(owner: str) -> None:
    violations = [
        f"{file.relative_to(ROOT)}:{line}: {module} ({owner}) imports {target}"
        for module, file in _files()
        if rule_for(module) == owner
        for line, target in imports_of(module, file)
        if not allowed(owner, target)
    ]
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize(("module", "target", "ok"), [
    ("sip.message", "django.conf", False),
    ("sip.dialog", "sip.message", True),
    ("media.rtp.packet", "media.tasks", False),
    ("calls.ami.client", "calls.models", False),
    ("calls.tracker", "calls.ami", True),
    ("calls.tracker", "edge.records", False),
    ("mappings.models", "calls.models", False),
    ("media.worker", "mappings.models", False),
    ("sandbox.views", "media.control", False),
    ("edge.records", "media.tasks", True),
    ("edge.service", "media.session", False),
    ("edge.ports", "edge.records", False),
    ("edge.ports", "tests.lab", False),
    ("bridgeproject.asgi", "sandbox.routing", True),
])
def test_the_table_reads_as_intended(module: str, target: str, ok: bool) -> None:
    assert allowed(rule_for(module), target) is ok
