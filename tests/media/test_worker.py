"""A media session on a real Celery worker process, driven over Redis the way the edge drives it.

A UDP phone sends a PCMU tone to the worker's RTP port, an aiortc app peer (DTLS-SRTP) sends
another; each hears the other's frequency. Killing the worker ends the session on the edge side
through the missing heartbeat.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from media import control
from media.rtp import g711
from sip.sdp import parse_audio
from tests.fixtures.prereq import require

from .peers import AppPeer, PhoneSim, dominant_frequency, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PHONE_HZ, APP_HZ = 1000.0, 440.0


@pytest.fixture
def redis_url(tmp_path):
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    url = base.rsplit("/", 1)[0] + "/13"  # a database of its own: its own Celery queue
    try:
        redis.Redis.from_url(url).flushdb()
    except redis.RedisError:
        require(False, f"Redis at {url}")
    return url


@pytest.fixture
def worker(redis_url, tmp_path):
    env = {
        **os.environ,
        "BRIDGE_ENV_FILE": str(tmp_path / "none.env"),
        "BRIDGE_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "MEDIA_ICE_HOST_ADDRESSES": "127.0.0.1",
        "MEDIA_RTP_PORTS": "41000-41999",
    }
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bridgeproject",
            "worker",
            "-Q",
            "media",
            "-c",
            "1",
            "-n",
            "media-test@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log_path = tmp_path / "worker.log"
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def send_start(redis_url: str, session_id: str) -> None:
    from bridgeproject.celery import app
    from media.tasks import start_session

    with app.connection_for_write(redis_url) as connection:
        start_session.apply_async(args=[session_id], connection=connection, queue="media")


async def start_call(redis_url, worker):
    remote = control.RemoteSession(redis_url)
    events: list[tuple[str, dict]] = []
    remote.on_event = lambda name, data: events.append((name, data))
    send_start(redis_url, remote.session_id)
    try:
        await remote.wait_started(within=30)  # the first start includes the worker's boot
    except control.MediaError:
        pytest.fail("the worker did not start the session:\n" + worker.log_path.read_text()[-3000:])
    phone = PhoneSim(PHONE_HZ)
    await phone.open()
    local = await remote.request("prepare_rtp")
    assert local["port"] and "m=audio" in local["sdp"]
    answer = parse_audio((await remote.request("set_rtp_remote", sdp=phone.offer()))["sdp"])
    app = AppPeer(APP_HZ)
    offer = (await remote.request("make_offer"))["sdp"]
    await remote.request("set_answer", sdp=await app.answer(offer))
    phone.start((answer.host, answer.port))
    return remote, phone, app, events


async def test_a_worker_process_bridges_a_phone_and_an_app_over_redis(redis_url, worker):
    remote, phone, app, events = await start_call(redis_url, worker)
    try:
        await wait_for(lambda: len(app.samples) > 60 and len(phone.audio()) > 60, timeout=20)
        assert dominant_frequency(app.heard(), app.sample_rate) == pytest.approx(PHONE_HZ, abs=10)
        heard = np.concatenate([g711.decode("PCMU", p) for p in phone.audio()])[1600:]
        assert dominant_frequency(heard, 8000) == pytest.approx(APP_HZ, abs=10)
        assert ("ice_state", {"state": "completed"}) in events or ("ice_state", {"state": "connected"}) in events
        stats = await remote.request("stats")
        assert stats["rtp"]["codec"] == "PCMU"
        with pytest.raises(control.MediaError, match="unknown command"):
            await remote.request("launch_rockets")
    finally:
        await remote.close()
        await phone.close()
        await app.close()
    # Closed on the worker too: its heartbeat key is gone.
    assert not redis.Redis.from_url(redis_url).exists(control.WORKER_HB_KEY.format(sid=remote.session_id))


async def test_killing_the_worker_ends_the_session_on_the_edge(redis_url, worker):
    remote, phone, app, events = await start_call(redis_url, worker)
    try:
        await wait_for(lambda: len(app.samples) > 20, timeout=20)
        killed = time.monotonic()
        os.killpg(worker.pid, signal.SIGKILL)
        await wait_for(lambda: ("worker_lost", {}) in events, timeout=10)
        print(f"\nworker loss noticed {time.monotonic() - killed:.2f} s after SIGKILL")
        with pytest.raises(control.WorkerLost):
            await remote.request("stats")
    finally:
        await remote.close()
        await phone.close()
        await app.close()
