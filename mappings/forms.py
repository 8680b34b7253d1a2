"""Admin form pieces: a write-only secret input that never renders the stored value."""

from typing import Any

from django import forms
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

CLEAR = object()  # the "clear the stored secret" choice


class WriteOnlySecretWidget(forms.PasswordInput):
    """A password input that is always blank; says whether a value is stored."""

    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__(attrs={"autocomplete": "new-password", **(attrs or {})}, render_value=False)
        self.is_set = False
        self.can_clear = False

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer: Any = None) -> str:
        html = super().render(name, None, attrs, renderer)
        if not self.is_set:
            return format_html('{} <span class="help">{}</span>', html, _("Not set."))
        note = format_html('{} <span class="help">{}</span>', html, _("Stored. Leave blank to keep it."))
        if self.can_clear:
            note = format_html(
                '{} <label><input type="checkbox" name="{}__clear"> {}</label>', note, name, _("Clear")
            )
        return note

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        if self.can_clear and data.get(f"{name}__clear"):
            return CLEAR
        return super().value_from_datadict(data, files, name)


class WriteOnlySecretField(forms.CharField):
    widget = WriteOnlySecretWidget

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("max_length", None)
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> None:
        return None  # never send a stored value back to the browser

    def to_python(self, value: Any) -> Any:
        return value if value is CLEAR else super().to_python(value)

    def validate(self, value: Any) -> None:
        if value is not CLEAR:
            super().validate(value)

    def has_changed(self, initial: Any, data: Any) -> bool:
        return data is CLEAR or bool(data)


class SecretFieldsFormMixin:
    """Keep a stored secret when its input is left blank, and let a blank required one pass."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = getattr(self, "instance", None)
        for name, field in self.fields.items():
            if isinstance(field, WriteOnlySecretField):
                stored = bool(instance is not None and getattr(instance, name, None))
                field.widget.is_set = stored
                field.widget.can_clear = stored and not field.required
                if stored:
                    field.required = False

    def clean(self) -> dict:
        cleaned = super().clean()
        instance = getattr(self, "instance", None)
        for name, field in self.fields.items():
            if not isinstance(field, WriteOnlySecretField) or name not in cleaned:
                continue
            value = cleaned[name]
            if value is CLEAR:
                cleaned[name] = None
            elif not value:
                cleaned[name] = getattr(instance, name, None) if instance is not None else None
        return cleaned
