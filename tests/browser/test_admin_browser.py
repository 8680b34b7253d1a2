"""Issue 2's walk-through in a real browser: log in, add a department and a mapping, and see the
password field stay blank on reload while the password is kept."""

import pytest

from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, chromium_available
from tests.fixtures.prereq import require

pytestmark = pytest.mark.browser


async def test_an_admin_adds_a_department_and_a_mapping_and_the_password_stays_blank(web_role, tmp_path):
    require(chromium_available(), f"Debian chromium at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        await page.goto(f"{web_role.url}/admin/")
        await page.fill("#id_username", "admin")
        await page.fill("#id_password", "ccbridge-demo")
        await page.click("input[type=submit]")
        await page.wait_for_selector("#site-name")

        await page.goto(f"{web_role.url}/admin/mappings/department/add/")
        await page.fill("#id_name", "Compras")
        await page.click("input[name=_save]")
        await page.wait_for_selector(".messagelist .success")

        await page.goto(f"{web_role.url}/admin/mappings/sipmapping/add/")
        await page.fill("#id_sip_uri", "<sip:Compras@EMPRESA.com>")
        await page.select_option("#id_department", label="Compras")
        await page.fill("#id_display_name", "Compras")
        await page.select_option("#id_app", index=1)
        await page.fill("#id_cc_login", "compras")
        await page.fill("#id_cc_password", "compras-Secret-1")
        await page.fill("#id_agents", "[2002]")
        await page.click("input[name=_continue]")
        await page.wait_for_selector(".messagelist .success")

        # The change page after saving (and after a reload) shows an empty password input.
        for _ in range(2):
            field = page.locator("#id_cc_password")
            assert await field.input_value() == ""
            assert await field.get_attribute("value") in (None, "")
            html = await page.content()
            assert "compras-Secret-1" not in html
            assert "Stored. Leave blank to keep it." in html
            await page.reload()
        assert "sip:compras@empresa.com" in await page.content()  # normalised

        # Saving again with the field left blank keeps the password.
        await page.fill("#id_display_name", "Compras BR")
        await page.click("input[name=_continue]")
        await page.wait_for_selector(".messagelist .success")
        await browser.close()

    out = web_role.manage(
        "shell", "-c",
        "from mappings.models import SipMapping; m = SipMapping.objects.get(sip_uri='sip:compras@empresa.com'); "
        "print(m.display_name, m.cc_password.reveal() == 'compras-Secret-1', m.department.slug)",
    )
    assert out.split()[-3:] == ["BR", "True", "compras"]
