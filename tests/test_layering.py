"""Protocol packages never import Django, so they can be tested and reused alone."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL_PACKAGES = ["connectycube", "calls.ami", "sip", "media.rtp", "media.session"]
PURE_MODULES = ["mappings.sipuri", "media.control", "calls.numbers"]


def modules_of(package: str) -> list[str]:
    path = ROOT / package.replace(".", "/")
    if not path.is_dir():
        return []
    return [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(path)])]


@pytest.mark.parametrize("module", [m for p in PROTOCOL_PACKAGES for m in modules_of(p)] + PURE_MODULES)
def test_it_imports_without_django(module):
    code = (
        "import importlib, sys\n"
        # media/__init__.py and calls/__init__.py are Django apps' packages: they must stay import-light.
        f"importlib.import_module({module!r})\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not bad, bad[:5]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
