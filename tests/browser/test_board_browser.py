"""The live call board in Chromium, fed by runami on the real Asterisk lab (issue 6, "done when").

The web role (daphne) and the AMI listener (runami) run as separate processes on one database
and one Redis, as in production. SIPp phones make the calls.
"""

import asyncio
import subprocess
import sys
import time

import pytest

from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, chromium_available
from tests.fixtures.liveserver import ROOT
from tests.fixtures.prereq import require

pytestmark = [pytest.mark.browser, pytest.mark.asterisk]

SETUP = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from calls.models import Pbx
from mappings.models import Department
User = get_user_model()
Pbx.objects.update_or_create(name="lab", defaults=dict(host="127.0.0.1", port={ami_port}, username="{user}",
                             secret="{secret}", context="from-phones", enabled=True))
suporte, _ = Department.objects.get_or_create(slug="suporte", defaults={{"name": "Suporte"}})
bob, created = User.objects.get_or_create(username="bob", defaults={{"is_staff": True}})
bob.set_password("ccbridge-demo"); bob.save()
bob.groups.add(Group.objects.get(name="Operators")); suporte.operators.add(bob)
print("ok")
"""


@pytest.fixture
def runami(web_role, asterisk_lab):
    out = web_role.manage("shell", "-c", SETUP.format(ami_port=asterisk_lab.ports.ami, user=asterisk_lab.ami_username,
                                                      secret=asterisk_lab.ami_secret))
    assert "ok" in out
    log = open(web_role.log_path.with_name("runami.log"), "wb")
    proc = subprocess.Popen([sys.executable, "manage.py", "runami"], cwd=ROOT,
                            env=web_role.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


async def open_board(browser, base, username):
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    # confirm() is accepted; prompt() gets the next answer a test queued in page.answers.
    page.answers = []
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept(page.answers.pop(0) if page.answers else "")))
    await page.goto(f"{base}/admin/login/?next=/calls/board/")
    await page.fill("#id_username", username)
    await page.fill("#id_password", "ccbridge-demo")
    await page.click("input[type=submit]")
    await page.wait_for_function("window.boardState && window.boardState.connected", timeout=10_000)
    await page.wait_for_selector("#ami-status[data-state=up]", timeout=15_000)
    return page


async def rows(page):
    return await page.eval_on_selector_all("#call-rows tr", "rs => rs.map(r => [r.dataset.call, r.dataset.state])")


async def test_the_board_follows_live_calls_and_acts_on_them(web_role, asterisk_lab, sipp, runami, tmp_path):
    require(chromium_available(), f"Debian chromium at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        operator = await open_board(browser, web_role.url, "operador")  # Vendas
        other = await open_board(browser, web_role.url, "bob")  # Suporte

        # 1. A call to vendas (the desk phone answers) appears, changes state, and goes at hangup.
        desk = await asyncio.to_thread(sipp.answer_as, "vendas", ring_ms=1500)
        started = time.monotonic()
        caller = sipp.call("1001", "vendas", hold_ms=60_000)
        await operator.wait_for_selector("#call-rows tr[data-state=ringing]", timeout=10_000)
        appeared = time.monotonic() - started
        # From Asterisk's Newchannel (its own timestamp) to the row in the page, same clock.
        lag_ms = await operator.evaluate(
            "Date.now() - Date.parse([...window.boardState.calls.values()][0].started_at)")
        await operator.wait_for_selector("#call-rows tr[data-state=up]", timeout=10_000)
        print(f"\ncall on the board {lag_ms:.0f} ms after Asterisk's Newchannel "
              f"({appeared * 1000:.0f} ms after SIPp started)")
        await operator.screenshot(path=str(tmp_path / "board-live.png"))

        # 3. The other department's operator sees nothing of it.
        assert await rows(other) == []

        # 2a. Hang up from the board.
        await operator.click("#call-rows tr[data-state=up] button[data-action=hangup]")
        await operator.wait_for_selector("#notice.ok", timeout=10_000)
        await operator.wait_for_function("document.querySelectorAll('#call-rows tr').length === 0", timeout=10_000)
        # The board's hangup reaches the caller as a BYE: its SIPp ends on the peer_bye branch,
        # long before its own 60 s hold (wait() raises SippError after 20 s).
        ended = await asyncio.to_thread(caller.wait, 20)
        assert ended.ok, ended.describe()
        desk.kill()

        # 2b. Blind transfer from the board: the caller lands on extension 1003.
        desk = await asyncio.to_thread(sipp.answer_as, "vendas", ring_ms=200)
        target = await asyncio.to_thread(sipp.answer_as, "1003", ring_ms=200)
        caller = sipp.call("1001", "vendas", hold_ms=60_000)
        await operator.wait_for_selector("#call-rows tr[data-state=up]", timeout=10_000)
        operator.answers.append("1003")
        await operator.click("#call-rows tr[data-state=up] button[data-action=transfer]")
        await operator.wait_for_selector("#notice.ok", timeout=15_000)
        out = web_role.manage("shell", "-c", "from calls.models import CallEvent as E; "
                              "print([e.kind for e in E.objects.filter(kind__startswith='action.')])")
        assert "action.blind_transfer" in out

        # 4. Drop the board's socket; a call ends and another starts meanwhile; it catches up.
        await operator.evaluate("window.boardState.drop()")
        caller.kill()
        for proc in (desk, target):
            proc.kill()
        desk = await asyncio.to_thread(sipp.answer_as, "vendas", ring_ms=200)
        caller2 = sipp.call("1002", "vendas", hold_ms=60_000)
        await operator.wait_for_function("window.boardState.connected", timeout=15_000)
        await operator.wait_for_function(
            "[...document.querySelectorAll('#call-rows tr')].length === 1", timeout=15_000)
        states = await rows(operator)
        assert len({call_id for call_id, _ in states}) == len(states) == 1  # no duplicates, none missing
        assert await rows(other) == []
        await operator.screenshot(path=str(tmp_path / "board-after-drop.png"))
        caller2.kill()
        desk.kill()
        await browser.close()
