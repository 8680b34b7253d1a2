"""A model field that keeps a secret encrypted at rest and masked everywhere else."""

import re
from typing import Any

from django.db import models
from django.db.models.query_utils import DeferredAttribute

from . import crypto

# A Fernet token: url-safe base64 of at least 73 bytes (100 characters), starting with the
# version byte 0x80 and a timestamp's zero high bytes, hence "gAAAAA".
_TOKEN_RE = re.compile(r"^gAAAAA[A-Za-z0-9_\-]+={0,2}$")
_TOKEN_MIN_LENGTH = 100
MASK = "********"


class Secret:
    """A stored secret. It holds only the ciphertext; `reveal()` decrypts on demand.

    str(), repr() and the debug page show a mask, so a secret can't leak into a
    log line, a traceback or a template by accident.
    """

    __slots__ = ("label", "token")

    def __init__(self, token: str, label: str = "a secret") -> None:
        self.token = token
        self.label = label

    @classmethod
    def from_plaintext(cls, plaintext: str, label: str = "a secret") -> "Secret":
        return cls(crypto.encrypt(plaintext), label)

    def reveal(self) -> str:
        return crypto.decrypt(self.token, label=self.label)

    def __repr__(self) -> str:
        return f"<Secret {MASK}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)

    def __bool__(self) -> bool:
        return bool(self.token)


def looks_encrypted(value: str) -> bool:
    return len(value) >= _TOKEN_MIN_LENGTH and len(value) % 4 == 0 and bool(_TOKEN_RE.match(value))


class _SecretAttribute(DeferredAttribute):
    """Encrypt on assignment, so a plaintext never sits on a model instance."""

    def __set__(self, instance: models.Model, value: Any) -> None:
        instance.__dict__[self.field.attname] = self.field.to_python(value)


class EncryptedSecretField(models.TextField):
    """Store text encrypted with Fernet; the Python value is a `Secret` (or None).

    Assign plain text to set it (`mapping.cc_password = "s3cret"`): it is encrypted
    on save. Serialisation (`dumpdata`) writes the ciphertext, and loading it back
    keeps the ciphertext as is.
    """

    descriptor_class = _SecretAttribute

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blank", True)
        kwargs.setdefault("null", True)
        kwargs.setdefault("editable", True)
        super().__init__(*args, **kwargs)

    def _label(self) -> str:
        model = getattr(self, "model", None)
        return f"{model._meta.label}.{self.name}" if model else "a secret"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Secret | None:
        return Secret(value, self._label()) if value else None

    def to_python(self, value: Any) -> Secret | None:
        if value is None or value == "":
            return None
        if isinstance(value, Secret):
            return value
        text = str(value)
        if looks_encrypted(text):
            return Secret(text, self._label())
        return Secret.from_plaintext(text, self._label())

    def get_prep_value(self, value: Any) -> str | None:
        secret = self.to_python(value)
        return secret.token if secret else None

    def value_to_string(self, obj: models.Model) -> str:
        secret = self.to_python(self.value_from_object(obj))
        return secret.token if secret else ""

    def formfield(self, **kwargs: Any) -> Any:
        from .forms import WriteOnlySecretField, WriteOnlySecretWidget

        # The widget is forced: the admin would otherwise swap in its textarea for a TextField.
        return super().formfield(
            **{**kwargs, "form_class": WriteOnlySecretField, "widget": WriteOnlySecretWidget}
        )
