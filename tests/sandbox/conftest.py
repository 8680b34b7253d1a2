"""Run the real sandbox: two daphne processes on one fresh database and the real Redis layer.

Two processes prove that chat routing goes through the channel layer, not process memory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
APP_ID = 1
AUTH_KEY = "sandbox-key"
DOMAIN = "localhost"
USERS = {"alice": ("alicepass", 1001), "bob": ("bobpass", 1002), "carol": ("carolpass", 1003)}

SEED = f"""
from mappings.models import ConnectyCubeApp
from sandbox.models import SandboxUser
ConnectyCubeApp.objects.create(name="Sandbox", app_id={APP_ID}, auth_key="{AUTH_KEY}",
    chat_domain="{DOMAIN}")
for login, (password, uid) in {USERS!r}.items():
    u = SandboxUser(id=uid, login=login, full_name=login.title(), email=login + "@example.com")
    u.set_password(password)
    u.save()
"""


@dataclass
class Sandbox:
    ports: list[int]

    def api(self, index: int = 0) -> str:
        return f"http://127.0.0.1:{self.ports[index]}/cc-sandbox/api"

    def chat(self, index: int = 0) -> str:
        return f"ws://127.0.0.1:{self.ports[index]}/cc-sandbox/chat/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_up(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def _wait_http(url: str, proc: subprocess.Popen, log: Path) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            pytest.fail(f"daphne exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is serving
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"daphne did not answer at {url}:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Sandbox:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    require(_redis_up(redis_url), f"a Redis server at {redis_url} (REDIS_URL)")
    tmp = tmp_path_factory.mktemp("sandbox")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bridgeproject.settings",
        "BRIDGE_ENV": "development",
        "BRIDGE_ENV_FILE": str(tmp / "no.env"),
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "CONNECTYCUBE_SANDBOX": "true",
        "REDIS_URL": redis_url,
        "PYTHONPATH": str(ROOT),
    }
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                   check=True)
    subprocess.run([python, "manage.py", "shell", "-c", SEED], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    ports = [_free_port(), _free_port()]
    procs = []
    try:
        for port in ports:
            log = tmp / f"daphne-{port}.log"
            proc = subprocess.Popen(
                [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                 "bridgeproject.asgi:application"],
                cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
            )
            procs.append((proc, log))
        for port, (proc, log) in zip(ports, procs, strict=True):
            _wait_http(f"http://127.0.0.1:{port}/cc-sandbox/api/session.json", proc, log)
        yield Sandbox(ports)
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
