"""Secrets at rest: round trip, rotation, and no plaintext anywhere it could leak."""

import io
import json
import logging
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from mappings import crypto
from mappings.fields import Secret
from mappings.models import ConnectyCubeApp, SipMapping
from tests.conftest import TEST_KEYS, make_mapping

PLAINTEXT = "hunter2-Sup3r-Secret"


@pytest.fixture
def mapping(departments, cc_app):
    return make_mapping(departments[0], cc_app, "sip:vendas@empresa.com", password=PLAINTEXT)


def raw_column(model, pk, column):
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_it_round_trips_a_secret(mapping):
    fresh = SipMapping.objects.get(pk=mapping.pk)
    assert isinstance(fresh.cc_password, Secret)
    assert fresh.cc_password.reveal() == PLAINTEXT


def test_it_stores_only_ciphertext(mapping):
    stored = raw_column(SipMapping, mapping.pk, "cc_password")
    assert PLAINTEXT not in stored
    assert Fernet(TEST_KEYS[0].encode()).decrypt(stored.encode()).decode() == PLAINTEXT


@pytest.mark.django_db(transaction=True)
def test_it_leaves_no_plaintext_in_the_database_file(mapping, cc_app):
    cc_app.auth_secret = "legacy-Auth-Secret-9"
    cc_app.save()
    if connection.vendor == "sqlite":
        # The test database lives in memory; write it out as a file and read its bytes.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "copy.sqlite3"
            with connection.cursor() as cursor:
                cursor.execute("VACUUM INTO %s", [str(path)])
            data = path.read_bytes()
            assert sqlite3.connect(path).execute("select count(*) from mappings_sipmapping").fetchone() == (
                1,
            )
    else:
        # PostgreSQL: every row of both tables as text, the way a SQL dump would write them.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT t::text FROM mappings_sipmapping t "
                "UNION ALL SELECT t::text FROM mappings_connectycubeapp t"
            )
            data = "\n".join(row[0] for row in cursor.fetchall()).encode()
    assert len(data) > 0
    assert PLAINTEXT.encode() not in data
    assert b"legacy-Auth-Secret-9" not in data


def test_it_keeps_dumpdata_encrypted_and_loaddata_faithful(mapping):
    out = io.StringIO()
    call_command("dumpdata", "mappings.sipmapping", stdout=out)
    dump = out.getvalue()
    assert PLAINTEXT not in dump
    stored = json.loads(dump)[0]["fields"]["cc_password"]
    assert stored == raw_column(SipMapping, mapping.pk, "cc_password")

    # Loading the dump back must keep the same ciphertext, not encrypt it a second time.
    SipMapping.objects.all().delete()
    with tempfile.NamedTemporaryFile("w", suffix=".json") as fixture:
        fixture.write(dump)
        fixture.flush()
        call_command("loaddata", fixture.name, verbosity=0)
    assert SipMapping.objects.get().cc_password.reveal() == PLAINTEXT


def test_it_masks_repr_and_str(mapping):
    fresh = SipMapping.objects.get(pk=mapping.pk)
    for text in (repr(fresh.cc_password), str(fresh.cc_password), repr(fresh.__dict__)):
        assert PLAINTEXT not in text
        assert fresh.cc_password.token not in repr(fresh.cc_password)


def test_it_never_logs_the_plaintext(mapping, caplog):
    fresh = SipMapping.objects.get(pk=mapping.pk)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("ccbridge.test").info(
            "mapping %s password %s vars %r", fresh, fresh.cc_password, vars(fresh)
        )
    assert "password <Secret ********>" in caplog.text
    assert PLAINTEXT not in caplog.text


def test_it_keeps_the_plaintext_off_the_debug_error_page(mapping, settings):
    settings.DEBUG = True
    fresh = SipMapping.objects.get(pk=mapping.pk)
    request = RequestFactory().get("/admin/")
    try:
        password = fresh.cc_password  # noqa: F841  (a local the error page shows)
        raise RuntimeError("boom")
    except RuntimeError:
        reporter = ExceptionReporter(request, *sys.exc_info())
        html = reporter.get_traceback_html()
        text = reporter.get_traceback_text()
    assert "boom" in html
    assert PLAINTEXT not in html
    assert PLAINTEXT not in text


def test_it_rotates_every_row_under_the_newest_key(mapping, cc_app, settings):
    cc_app.auth_secret = "legacy-secret"
    cc_app.save()
    old = raw_column(SipMapping, mapping.pk, "cc_password")

    settings.FIELD_ENCRYPTION_KEYS = [TEST_KEYS[1], TEST_KEYS[0]]
    out = io.StringIO()
    call_command("rotate_keys", stdout=out)
    assert "Re-encrypted 2 secret(s)" in out.getvalue()

    new = raw_column(SipMapping, mapping.pk, "cc_password")
    assert new != old
    assert Fernet(TEST_KEYS[1].encode()).decrypt(new.encode()).decode() == PLAINTEXT
    # The old key can now go.
    settings.FIELD_ENCRYPTION_KEYS = [TEST_KEYS[1]]
    assert SipMapping.objects.get(pk=mapping.pk).cc_password.reveal() == PLAINTEXT
    assert ConnectyCubeApp.objects.get(pk=cc_app.pk).auth_secret.reveal() == "legacy-secret"


def test_it_names_the_setting_when_the_key_is_wrong(mapping, settings):
    settings.FIELD_ENCRYPTION_KEYS = [TEST_KEYS[1]]
    fresh = SipMapping.objects.get(pk=mapping.pk)
    with pytest.raises(crypto.SecretDecryptionError, match="FIELD_ENCRYPTION_KEYS") as info:
        fresh.cc_password.reveal()
    assert "mappings.SipMapping.cc_password" in str(info.value)
    with pytest.raises(CommandError, match=r"FIELD_ENCRYPTION_KEYS.*Nothing was changed"):
        call_command("rotate_keys", stdout=io.StringIO())


def test_it_names_the_setting_when_a_key_is_malformed(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS: key #1") as info:
        crypto.encrypt("x")
    assert "not-a-key" not in str(info.value)


def test_it_refuses_a_missing_key_in_production(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    settings.PRODUCTION = True
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS is not set"):
        crypto.encrypt("x")


def test_it_encrypts_on_assignment(cc_app):
    cc_app.auth_secret = PLAINTEXT
    assert isinstance(cc_app.auth_secret, Secret)
    assert PLAINTEXT not in repr(vars(cc_app))
    assert cc_app.auth_secret.reveal() == PLAINTEXT
