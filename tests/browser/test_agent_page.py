"""The agent app page in headless Chromium: sign-in, errors, language, and screenshots of its states."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# Where to keep the screenshots (idle, ringing, in call) for a look; a temporary folder otherwise.
SCREENSHOTS = os.environ.get("AGENT_SCREENSHOTS")


async def test_it_shows_the_sdk_error_for_bad_credentials(web_role, launch_agent):
    page = await launch_agent(600)
    await page.open(web_role.url)
    await page.page.fill("#login", "ana")
    await page.page.fill("#password", "not-her-password")
    await page.page.click("#login-button")

    await page.page.wait_for_selector("#login-error:not([hidden])")
    assert await page.page.text_content("#login-error") == "Sign-in failed: Unauthorized"
    state = await page.state()
    assert state["phase"] == "offline" and state["userId"] is None
    # The form stays usable: the right password still gets in.
    await page.login("ana", "ana-demo")
    assert await page.page.is_hidden("#login-error")


async def test_it_speaks_portuguese_to_a_brazilian_browser(web_role, launch_agent):
    page = await launch_agent(600, locale="pt-BR")
    await page.open(web_role.url)
    assert await page.page.text_content("#login-button") == "Entrar"
    await page.page.fill("#login", "ana")
    await page.page.fill("#password", "errada")
    await page.page.click("#login-button")
    await page.page.wait_for_selector("#login-error:not([hidden])")
    assert await page.page.text_content("#login-error") == "Falha ao entrar: Unauthorized"

    await page.login("ana", "ana-demo")
    assert await page.page.text_content("#call-title") == "Pronto"
    assert await page.page.text_content("#whoami") == "Conectado como Ana Souza (id 2002)"


async def test_it_looks_calm_when_idle_ringing_and_in_a_call(web_role, launch_agent, tmp_path):
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    ana = await launch_agent(600, locale="pt-BR")
    bruno = await launch_agent(1000)
    await ana.open(web_role.url)
    await ana.page.screenshot(path=str(folder / "agent-login.png"))
    await ana.login("ana", "ana-demo")
    await bruno.open(web_role.url)
    await bruno.login("bruno", "bruno-demo")
    await ana.page.screenshot(path=str(folder / "agent-idle.png"))

    await bruno.call(2002)
    await ana.wait_for("ringing")
    await ana.page.screenshot(path=str(folder / "agent-ringing.png"))
    await ana.page.click("#accept-button")
    await ana.wait_for("connected")
    await ana.page.click(".key[data-digit='4']")
    await ana.page.click(".key[data-digit='2']")
    await ana.page.screenshot(path=str(folder / "agent-in-call.png"))
    assert (await ana.state())["dtmf"] == "42"

    await ana.page.click("#hangup-button")
    await bruno.wait_for("ended")
    await ana.page.screenshot(path=str(folder / "agent-ended.png"))
    assert all((folder / f"agent-{name}.png").stat().st_size > 0
               for name in ("login", "idle", "ringing", "in-call", "ended"))
