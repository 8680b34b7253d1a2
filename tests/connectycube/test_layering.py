"""The ConnectyCube client and the sandbox's stream logic import without Django."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_it_imports_without_django():
    code = (
        "import sys\n"
        "import connectycube.client, connectycube.call, sandbox.xmpp_stream\n"
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if 'django' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
