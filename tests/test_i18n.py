"""The UI in Brazilian Portuguese through real requests, and a complete pt_BR catalogue."""

import ast
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from calls.models import Call, CallState, Direction, Disposition
from mappings.models import SipMapping
from mappings.services import validate_credentials
from tests.conftest import make_mapping
from tests.fixtures.prereq import require

PO = Path(__file__).resolve().parents[1] / "locale" / "pt_BR" / "LC_MESSAGES" / "django.po"
PT = {"HTTP_ACCEPT_LANGUAGE": "pt-br"}


@pytest.fixture(autouse=True)
def _english_afterwards():
    # LocaleMiddleware activates a language for the thread; other tests expect the default.
    yield
    translation.deactivate()


@pytest.fixture
def world(departments, cc_app, django_user_model):
    vendas, _ = departments
    root = django_user_model.objects.create_superuser("root", password="pw-root")
    mapping = make_mapping(vendas, cc_app, "sip:vendas@empresa.com", display_name="Vendas")
    call = Call.objects.create(
        department=vendas,
        caller_number="+5511900000001",
        dialed="vendas",
        direction=Direction.INBOUND,
        state=CallState.UP,
    )
    Call.objects.create(
        department=vendas, caller_number="+5511900000002", dialed="vendas", state=CallState.ENDED,
        disposition=Disposition.NO_ANSWER,
    )
    return {"root": root, "vendas": vendas, "mapping": mapping, "call": call}


@pytest.fixture
def admin_client(client, world):
    client.force_login(world["root"])
    return client


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return html.unescape(response.content.decode())


def board_strings(text: str) -> dict:
    """Return the board's `window.BOARD.t` strings, decoded the way the browser decodes them."""
    block = re.search(r"\bt: (\{.*?\n    \})", text, re.S).group(1)
    block = re.sub(r"^\s*//.*$", "", block, flags=re.M)  # a comment line
    # The object literal as JSON: quote its keys; escapejs output is valid JSON string content.
    return json.loads(re.sub(r"(?m)([{,]\s*)(\w+): ", r'\1"\2": ', block))


# --- pages in Portuguese ---------------------------------------------------------------


def test_it_shows_the_admin_index_in_portuguese(admin_client):
    text = page(admin_client.get(reverse("admin:index"), **PT))

    assert '<html lang="pt-br"' in text
    for expected in [
        "Administração do ccbridge",
        "Ponte SIP ↔ ConnectyCube",
        "Mapeamentos SIP",
        "Departamentos",
        "Chamadas",
        "Eventos de chamada",
        "Painel de chamadas ao vivo",
        "Encerrar sessão",  # Django's own catalogue
    ]:
        assert expected in text, expected
    assert "SIP mappings" not in text


def test_it_offers_a_language_selector_in_the_admin_header(admin_client):
    text = page(admin_client.get(reverse("admin:index"), **PT))

    form = re.search(r'<form action="/i18n/setlang/".*?</form>', text, re.S).group(0)
    assert 'name="next" type="hidden" value="/admin/"' in form
    # Each language is named in itself, and the current one is selected.
    assert '<option value="pt-br" lang="pt-br" selected>Português Brasileiro</option>' in form
    assert '<option value="en" lang="en">English</option>' in form
    assert 'title="Idioma"' in form


def test_it_switches_the_language_with_the_selector_and_back(admin_client):
    response = admin_client.post(
        reverse("set_language"), {"language": "pt-br", "next": reverse("calls:board")}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("calls:board")
    assert admin_client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "pt-br"

    assert "Nenhuma chamada em andamento." in page(admin_client.get(reverse("calls:board")))
    assert "Administração do ccbridge" in page(admin_client.get(reverse("admin:index")))

    admin_client.post(reverse("set_language"), {"language": "en", "next": "/admin/"})
    assert "ccbridge administration" in page(admin_client.get(reverse("admin:index")))


def test_it_reads_the_language_cookie(admin_client):
    admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "pt-br"

    text = page(admin_client.get(reverse("admin:index")))

    assert "Administração do ccbridge" in text


def test_it_shows_the_sip_mapping_form_with_portuguese_labels_and_help(admin_client):
    text = page(admin_client.get(reverse("admin:mappings_sipmapping_add"), **PT))

    for expected in [
        "Adicionar mapeamento SIP",  # Django's "Add %s" around our verbose name
        "URI SIP",
        "Ex.: sip:vendas@empresa.com. Maiúsculas, colchetes angulares e parâmetros são ignorados.",
        "Departamento",
        "Nome de exibição",
        "Mostrado aos atendentes, como em “Vendas ligando...”.",
        "Conta ConnectyCube",
        "Senha ConnectyCube",
        "Não definido.",
        "Toque",
        "Estratégia de toque",
        "Paralelo: todos os atendentes ao mesmo tempo",
        "Tempo limite de toque (segundos)",
        "Na estratégia sequencial, vale para cada atendente.",
        "Ids de usuário ConnectyCube que devem tocar, como lista JSON, por exemplo [1001, 1002].",
    ]:
        assert expected in text, expected
    assert "ring strategy" not in text.lower()


def test_it_reports_form_errors_in_portuguese(admin_client, world):
    response = admin_client.post(
        reverse("admin:mappings_sipmapping_add"),
        {
            "sip_uri": "vendas-sem-esquema",
            "department": world["vendas"].pk,
            "display_name": "Vendas",
            "enabled": "on",
            "app": world["mapping"].app_id,
            "cc_login": "x",
            "cc_password": "y",
            "agents": "[1001, 1001]",
            "ring_strategy": "parallel",
            "ring_timeout": "30",
        },
        **PT,
    )
    text = page(response)

    assert "Informe uma URI SIP como sip:vendas@empresa.com" in text
    assert "Cada atendente só pode aparecer uma vez." in text
    assert SipMapping.objects.count() == 1


def test_it_shows_the_sip_mapping_changelist_in_portuguese(admin_client):
    text = page(admin_client.get(reverse("admin:mappings_sipmapping_changelist"), **PT))

    for expected in [
        "Selecione mapeamento SIP para modificar",
        "Nome de exibição",
        "Login ConnectyCube",
        "Atendentes",
        "Estratégia de toque",
        "Ativo",
        "Testar credenciais (entrar no ConnectyCube)",
        "sip:vendas@empresa.com",
    ]:
        assert expected in text, expected


def test_it_shows_the_call_changelist_in_portuguese(admin_client):
    text = page(admin_client.get(reverse("admin:calls_call_changelist"), **PT))

    for expected in [
        "Início",
        "Sentido",
        "Número do chamador (original)",
        "Resultado",
        "Tempo de toque (s)",
        "Tempo de conversa (s)",
        "Duração (s)",
        "Entrada (telefone → app)",  # a row and the filter
        "Em conversa",
        "Sem resposta",
        "Exportar as chamadas selecionadas em CSV",
    ]:
        assert expected in text, expected


def test_it_shows_a_call_in_portuguese(admin_client, world):
    text = page(admin_client.get(reverse("admin:calls_call_change", args=[world["call"].pk]), **PT))

    for expected in ["Horários", "Desfecho", "Lado SIP", "Lado do app", "Linha do tempo"]:
        assert expected in text, expected


def test_it_shows_the_board_in_portuguese(admin_client):
    text = page(admin_client.get(reverse("calls:board"), **PT))

    for expected in [
        "<title>Painel de chamadas ao vivo | ccbridge</title>",
        "Chamadas em andamento:",
        "Chamador",
        "Discado",
        "Lado SIP",
        "Ações",
        "Nenhuma chamada em andamento.",
        "AMI: aguardando status",
        'placeholder="Seu ramal"',
        ">Ligar</button>",
    ]:
        assert expected in text, expected
    t = board_strings(text)
    assert t["hangup"] == "Desligar"
    assert t["transfer"] == "Transferir"
    assert t["attended"] == "Assistida"
    assert t["bridge"] == "Conectar"
    assert t["up"] == "em conversa"
    assert t["ringing"] == "chamando"
    assert t["connected"] == "Ao vivo"
    assert t["extPrompt"] == "Transferir para qual ramal?"
    assert t["originating"] == "Chamando seu ramal…"
    assert t["attendedHint"].startswith("Transferência assistida")
    assert t["appStates"]["connected"] == "conectado"


def test_it_keeps_the_board_strings_valid_javascript(admin_client):
    # escapejs, not HTML escaping: the raw page must hold no entity inside a JS string.
    raw = admin_client.get(reverse("calls:board"), **PT).content.decode()

    t = board_strings(raw)
    assert len(t) >= 25
    assert all("&" not in value for value in t.values() if isinstance(value, str)), t


def test_it_translates_messages_built_in_code():
    with translation.override("pt-br"):
        assert str(Direction.OUTBOUND.label) == "Saída (app → telefone)"
        assert str(Disposition.BUSY.label) == "Ocupado"
        assert str(SipMapping._meta.verbose_name_plural) == "mapeamentos SIP"


def test_it_reports_a_credential_check_in_portuguese(world):
    mapping = world["mapping"]
    SipMapping.objects.filter(pk=mapping.pk).update(cc_password=None)
    mapping.refresh_from_db()

    with translation.override("pt-br"):
        result = validate_credentials(mapping)

    assert not result.ok
    assert result.message == "Nenhuma senha ConnectyCube está armazenada para este mapeamento."


# --- English still works ---------------------------------------------------------------


def test_it_still_shows_english_by_default(admin_client):
    index = page(admin_client.get(reverse("admin:index")))
    form = page(admin_client.get(reverse("admin:mappings_sipmapping_add"), HTTP_ACCEPT_LANGUAGE="en"))
    board = page(admin_client.get(reverse("calls:board"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9"))

    assert "ccbridge administration" in index
    assert "SIP mappings" in index
    assert "Ring strategy" in form
    assert "With the sequential strategy, this is per agent." in form
    assert "No live calls." in board
    assert board_strings(board)["hangup"] == "Hang up"


# --- the catalogue ---------------------------------------------------------------------


def po_entries(path: Path) -> list[dict]:
    """Parse makemessages output: a list of {"flags", "msgctxt", "msgid", "msgstr": [...]}."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry: dict = {"flags": set(), "msgstr": []}
        field = None
        for line in block.strip().splitlines():
            if line.startswith("#,"):
                entry["flags"] |= {f.strip() for f in line[2:].split(",")}
            elif line.startswith("#"):
                continue
            elif match := re.match(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?) (\".*\")$", line):
                field = match.group(1)
                value = ast.literal_eval(match.group(2))
                if field.startswith("msgstr"):
                    entry["msgstr"].append(value)
                else:
                    entry[field] = value
            elif line.startswith('"'):
                value = ast.literal_eval(line)
                if field.startswith("msgstr"):
                    entry["msgstr"][-1] += value
                else:
                    entry[field] += value
        if entry.get("msgid"):
            entries.append(entry)
    return entries


def placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\(\w+\)[sd]|\{\w+\}", text))


def test_it_translates_every_message_of_the_catalogue():
    entries = po_entries(PO)

    assert len(entries) > 250
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    untranslated = [e["msgid"] for e in entries if not all(e["msgstr"])]
    assert fuzzy == []
    assert untranslated == []
    # pt_BR has two plural forms: n > 1.
    assert all(len(e["msgstr"]) == 2 for e in entries if "msgid_plural" in e)
    assert 'Plural-Forms: nplurals=2; plural=(n > 1);' in PO.read_text(encoding="utf-8")


def test_it_puts_no_markup_in_any_message():
    # The admin renders help texts unescaped: "<name>" would vanish as an unknown tag.
    for entry in po_entries(PO):
        for text in [entry["msgid"], *entry["msgstr"]]:
            assert not re.search(r"<[A-Za-z/!]", text), text


def test_it_keeps_the_placeholders_of_every_message():
    for entry in po_entries(PO):
        for translated in entry["msgstr"]:
            assert placeholders(translated) == placeholders(entry["msgid"]), entry["msgid"]


def test_msgfmt_counts_no_untranslated_or_fuzzy_message(tmp_path):
    require(shutil.which("msgfmt") is not None, "msgfmt (Debian package gettext)")

    done = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", str(tmp_path / "django.mo"), str(PO)],
        capture_output=True,
        text=True,
        check=True,
        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
    )

    assert re.fullmatch(r"\d+ translated messages\.\n", done.stderr), done.stderr
