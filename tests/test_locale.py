"""The committed pt_BR catalogue: the .mo Django loads matches the .po translators edit."""

import gettext
import shutil
import subprocess
from pathlib import Path

from tests.fixtures.prereq import require

LOCALE = Path(__file__).resolve().parents[1] / "locale" / "pt_BR" / "LC_MESSAGES"


def catalog(path: Path) -> dict:
    with path.open("rb") as fp:
        return dict(gettext.GNUTranslations(fp)._catalog)


def test_it_has_a_compiled_catalogue_in_step_with_the_po(tmp_path):
    require(shutil.which("msgfmt") is not None, "msgfmt (Debian package gettext)")
    fresh = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "--check", "-o", str(fresh), str(LOCALE / "django.po")], check=True)

    assert catalog(LOCALE / "django.mo") == catalog(fresh), (
        "locale/pt_BR/LC_MESSAGES/django.mo is stale: run "
        "`msgfmt -o locale/pt_BR/LC_MESSAGES/django.mo locale/pt_BR/LC_MESSAGES/django.po`"
    )


def test_it_translates_the_agent_app():
    translations = catalog(LOCALE / "django.mo")

    assert translations["{name} calling..."] == "{name} ligando..."
    assert translations["Accept"] == "Atender"
