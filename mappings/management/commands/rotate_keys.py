from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from mappings import crypto
from mappings.fields import EncryptedSecretField


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret under the newest key (the first in FIELD_ENCRYPTION_KEYS). "
        "Afterwards the older keys can be removed from the setting."
    )

    def handle(self, *args: object, **options: object) -> None:
        total = 0
        try:
            with transaction.atomic():
                for model in apps.get_models():
                    fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedSecretField)]
                    if fields:
                        total += self._rotate_model(model, fields)
        except crypto.SecretDecryptionError as exc:
            raise CommandError(f"{exc} Nothing was changed.") from None
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {total} secret(s) under the newest key."))

    def _rotate_model(self, model: type, fields: list[EncryptedSecretField]) -> int:
        names = [f.attname for f in fields]
        count = 0
        # values_list gives Secret objects (their ciphertext); write the rotated tokens back.
        rows = model._base_manager.values_list("pk", *[f.name for f in fields])
        for pk, *tokens in rows.iterator():
            changes = {}
            for name, token in zip(names, tokens, strict=True):
                if token:
                    token = token.token if hasattr(token, "token") else token
                    label = f"{model._meta.label}.{name} of row {pk}"
                    changes[name] = crypto.rotate(token, label=label)
            if changes:
                model._base_manager.filter(pk=pk).update(**changes)
                count += len(changes)
        return count
